/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one pairing rule: are two socket ends one TCP connection? The correlator uses it
 * to let a traced destination decide its source's verdicts (live mode, the exporter,
 * report), and the timeline uses it to align two hosts' clocks; nothing else pairs ends.
 *
 * Addresses are compared normalised: an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what
 * the sockets of a dual-stack listener on [::] carry) is its IPv4 address, so a
 * destination listening on [::] pairs with a source that connected to 127.0.0.1. Pure
 * IPv6 ([::1]) compares as IPv6.
 */
#ifndef MFT_PAIRING_H
#define MFT_PAIRING_H

#include <stdbool.h>
#include <stdint.h>

/* One end of a connection as one process saw it. */
struct mft_end {
	int family;           /* AF_INET or AF_INET6, as the kernel reported it */
	const uint8_t *laddr; /* 16 bytes each (IPv4 in the first 4) */
	const uint8_t *raddr;
	uint16_t lport, rport; /* 0: not known */
	int chan_id;           /* QEMU's multifd channel id, -1 if not known */
	const uint8_t *uuid;   /* the migration UUID (16 bytes), NULL if not known */
};

/*
 * Normalise an address pair in place: when both are IPv4-mapped IPv6 (or one is and the
 * other is still unbound, ::), the family becomes AF_INET and each address its IPv4 one.
 */
void mft_addr_normalize(int *family, uint8_t laddr[16], uint8_t raddr[16]);

/*
 * The same TCP connection seen from its two ends: both 4-tuples known and mirrored
 * (after normalisation), and where both ends know QEMU's channel id, or the migration
 * UUID, they agree.
 */
bool mft_same_connection(const struct mft_end *a, const struct mft_end *b);

#endif
