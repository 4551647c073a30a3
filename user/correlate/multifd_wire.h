/* SPDX-License-Identifier: GPL-2.0 */
/*
 * QEMU's multifd wire format, as far as mftrace reads it: the MultiFDInit_t that opens
 * every multifd channel (docs/qemu-behaviour.md §7.1). The BPF side copies its first 32
 * bytes; this decodes them, trusting nothing.
 */
#ifndef MFT_MULTIFD_WIRE_H
#define MFT_MULTIFD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mftrace.h"

struct mft_multifd_init {
	uint32_t version;
	uint8_t uuid[16]; /* the VM's -uuid: the same on every channel of one migration */
	uint8_t id;       /* the channel number */
};

enum {
	MFT_WIRE_OK = 0,
	MFT_WIRE_SHORT = -1, /* fewer bytes than the fields read */
	MFT_WIRE_BAD_MAGIC = -2,
	MFT_WIRE_BAD_VERSION = -3,
};

/* Decode a MultiFDInit_t from len bytes at buf (at least the first 25 are needed). */
int mft_multifd_init_decode(const uint8_t *buf, size_t len, struct mft_multifd_init *out);
const char *mft_wire_strerror(int rc);

/*
 * A MFT_EV_CHAN_INIT event: either the raw first 32 bytes of the MultiFDInit_t (arg =
 * bytes 0-7, str = bytes 8-31; arg is never 0 then, as the magic is not) or, from USDT,
 * only the channel id in ret (arg = 0). Fills id, and uuid when has_uuid. Returns an
 * MFT_WIRE_* code.
 */
int mft_chan_init_of_event(const struct mft_event *ev, int *id, uint8_t uuid[16], bool *has_uuid);

#endif
