/* SPDX-License-Identifier: GPL-2.0 */
/* Output: live event lines and verdict tables, as text or as JSON lines. */
#ifndef MFT_OUTPUT_H
#define MFT_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>
#include "correlate/correlator.h"

struct mft_output {
	FILE *out;
	bool json;
	bool events;          /* print one line per channel event */
	bool others;          /* list other connections (groups that were no migration) */
	int64_t mono_to_real; /* add to CLOCK_MONOTONIC ns to get CLOCK_REALTIME ns */
};

void mft_out_event(void *ctx, const struct mft_correlator *c, const struct mft_chan *ch,
		   const struct mft_event *ev);
void mft_out_migration(void *ctx, const struct mft_correlator *c, const struct mft_migration *m);
/* A group of connections that showed no migration evidence (NBD, VNC, ...): one line with
 * o->others, nothing otherwise. Never judged, never counted. */
void mft_out_other(void *ctx, const struct mft_correlator *c, const struct mft_migration *m);
/* "HH:MM:SS.uuuuuu" local time of a CLOCK_MONOTONIC timestamp */
void mft_fmt_clock(const struct mft_output *o, uint64_t mono_ns, char *buf, size_t len);

#endif
