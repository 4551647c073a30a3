// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the MultiFDInit_t decoder and the CHAN_INIT event decoder: any
 * bytes must decode or be refused without a crash or a read outside the buffer.
 */
#include <stdlib.h>
#include <string.h>
#include "correlate/multifd_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mft_multifd_init in;
	struct mft_event ev;
	uint8_t uuid[16];
	bool has_uuid;
	int id = -1, rc;

	/* an exact-size copy, so that AddressSanitizer sees any read past the end */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	rc = mft_multifd_init_decode(copy, size, &in);
	if (rc == MFT_WIRE_OK && (size < 25 || in.id != copy[24] || in.version != MFT_MULTIFD_VERSION))
		abort();
	free(copy);
	if (size >= sizeof(ev)) {
		memcpy(&ev, data, sizeof(ev));
		rc = mft_chan_init_of_event(&ev, &id, uuid, &has_uuid);
		if (rc != MFT_WIRE_OK && has_uuid)
			abort();
	}
	return 0;
}
