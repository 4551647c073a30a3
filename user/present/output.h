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
	bool buffered;        /* event lines stay in stdio's buffer (a report); live output flushes each */
	bool others;          /* list other connections (groups that were no migration) */
	int64_t mono_to_real; /* add to CLOCK_MONOTONIC ns to get CLOCK_REALTIME ns */
	int width;            /* text: fit lines to this many columns; 0 = every column (--wide) */
	bool color;           /* text: colour the verdicts (a terminal, and NO_COLOR unset) */
	int flagged;          /* out: migrations printed that were flagged (exit status 2) */
};

/*
 * How text output fits where it goes: the terminal's width when out is a terminal, else
 * $COLUMNS, else 80; 0 (every column) with wide. Colour only on a terminal without
 * $NO_COLOR.
 */
void mft_out_fit(struct mft_output *o, bool wide);

void mft_out_event(void *ctx, const struct mft_correlator *c, const struct mft_chan *ch, const struct mft_event *ev);
/* Sinks for the correlator (struct mft_sink), ctx = struct mft_output *. */
void mft_out_migration(void *ctx, const struct mft_correlator *c, const struct mft_migration *m);
/* A group of connections that showed no migration evidence (NBD, VNC, ...): one line with
 * o->others, nothing otherwise. Never judged, never counted. */
void mft_out_other(void *ctx, const struct mft_correlator *c, const struct mft_migration *m);
/* "HH:MM:SS.uuuuuu" local time of a CLOCK_MONOTONIC timestamp */
void mft_fmt_clock(const struct mft_output *o, uint64_t mono_ns, char *buf, size_t len);

#endif
