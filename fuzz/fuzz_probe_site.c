// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the tail-jump search (user/collect/probe_site.c): the bytes of a
 * function in a library the traced process controls. Any bytes must give a site or a
 * reason, without a crash, a read outside them, or a site that is not a plain relative
 * jump leaving the function.
 */
#include <stdlib.h>
#include <string.h>
#include "collect/probe_site.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mft_probe_site s;
	/* an exact-size copy, so that AddressSanitizer sees any read past the end */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (!mft_tail_jump_site(copy, size, &s)) {
		const uint8_t *j = copy + s.off;
		size_t n = *j == 0xe9 ? 5 : 2;
		int64_t rel = *j == 0xe9 ? (int32_t)(j[1] | j[2] << 8 | j[3] << 16 | (uint32_t)j[4] << 24)
					 : (int8_t)j[1];
		int64_t target = (int64_t)s.off + (int64_t)n + rel;

		/* the site is a jmp rel8/rel32 inside the code whose target is outside it */
		if ((*j != 0xe9 && *j != 0xeb) || s.off + n > size || (target >= 0 && target < (int64_t)size))
			abort();
	} else if (!s.why[0]) {
		abort();
	}
	free(copy);
	return 0;
}
