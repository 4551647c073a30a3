// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the recording reader: any bytes at all must parse without a
 * crash, a leak or a read outside the buffer (AddressSanitizer), and whatever it returns
 * must be self-consistent. Build and run: `make fuzz` (FUZZ_SECONDS=N, default 60).
 */
#include <stdlib.h>
#include <string.h>
#include "store/recfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mft_recording r;
	int rc = mft_rec_parse(data, size, &r);

	if (rc < 0 && (r.n_events || r.n_problems != 1))
		abort(); /* refused files say why, in one line, and yield nothing */
	if (r.n_problems > MFT_REC_MAX_PROBLEMS || r.n_carried > r.n_events || r.end_offset > size)
		abort();
	/* every event came from bytes of the file: a record each in 1.x, at least its
	 * context, mask and time (3 bytes) in a 2.x block */
	if (r.n_events * (r.major < 2 ? MFT_REC_HDR_LEN + MFT_REC_EVENT_LEN : 3) > size)
		abort();
	for (int i = 0; i < r.n_problems; i++)
		if (strnlen(r.problems[i], sizeof(r.problems[i])) == sizeof(r.problems[i]))
			abort();
	mft_rec_free(&r);
	return 0;
}
