/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The timeline of `mftrace report`: one or more recordings (say a source host's and a
 * destination host's) put on one clock and replayed through one correlator, the same
 * one live mode runs. Channels of two hosts are joined by the correlator through their
 * TCP 4-tuple; pids of different hosts are kept apart. Plain C, no kernel.
 *
 * Connections are paired across hosts by their mirrored 4-tuple and, where both ends
 * decoded it, the multifd migration UUID and channel id.
 *
 * Clock alignment (host i onto the first recording's CLOCK_MONOTONIC): the same boot id
 * means the same clock (offset 0, exact). Otherwise the recorded CLOCK_REALTIME
 * snapshots give an estimate, and cause and effect on the connections seen from both
 * hosts bound the offset: a FIN, an RST, a handshake's last ACK, the server's first
 * data are received after they were sent. The estimate is kept when it lies inside the
 * bounds; else the bounds decide, and the report says by how much the clocks were off.
 */
#ifndef MFT_TIMELINE_H
#define MFT_TIMELINE_H

#include <stdio.h>
#include "base/util.h"
#include "correlate/correlator.h"
#include "store/recfile.h"

#define MFT_TL_MAX_HOSTS 16

struct mft_tl_align {
	bool ref;        /* the reference recording: offset 0 */
	int against;     /* aligned against this host's clock (then composed) */
	bool same_clock; /* same boot id: one CLOCK_MONOTONIC */
	bool have_realtime;
	int64_t realtime_offset; /* from the clock snapshots */
	int n_pairs;             /* connections seen from both hosts */
	int n_constraints;
	bool have_lo, have_hi;
	int64_t lo, hi;                /* causality: the offset lies in [lo, hi] */
	char lo_why[200], hi_why[200]; /* the constraints that set them */
	int64_t offset;                /* add to this host's CLOCK_MONOTONIC ns to get the reference's */
	const char *method;            /* same-clock, realtime, causality, realtime-only, none */
	char text[640];                /* what was done and how uncertain it is, in one paragraph */
};

struct mft_tl_host {
	char path[256];
	struct mft_recording rec;
	char label[96]; /* host name, "#2" appended if two recordings share it */
	struct mft_tl_align align;
	uint32_t pid_add;      /* added to its pids when they collide with another host's */
	uint32_t skip_pids[8]; /* processes recorded twice (same boot): read from the first only */
	int n_skip;
	struct mft_index pids; /* the pids it knows (its own numbers) */
	uint32_t *pid_order;   /* the same, targets first, then in the order events show them */
	size_t n_pid_order, cap_pid_order;
	bool streamed; /* its events are read from path when needed (rec.events is NULL) */
	bool has_dst;  /* it accepted a connection: it holds a destination */
};

/* Copies of what the correlator judged (it frees its own after the callback). */
struct mft_tl_chan {
	struct mft_chan ch; /* ch.mig is NULL */
	int host;
	size_t mig; /* index into migs */
	long peer;  /* index of the other end's channel, -1 if not traced */
};

struct mft_tl_mig {
	struct mft_migration m; /* m.chans is NULL */
	int host;
	char name[64];
	size_t first, n; /* its channels: chans[first .. first + n) */
};

struct mft_timeline {
	struct mft_tl_host hosts[MFT_TL_MAX_HOSTS];
	int n_hosts;
	bool tls_records;
	int64_t mono_to_real;    /* the reference host's CLOCK_REALTIME - CLOCK_MONOTONIC */
	uint64_t t_first, t_end; /* reference clock */
	struct mft_tl_mig *migs;
	size_t n_migs, cap_migs;
	struct mft_tl_chan *chans;
	size_t n_chans, cap_chans;
	uint64_t n_fed;
	bool keep; /* keep a copy of what was judged (migs, chans) for the renderers; mft_tl_init sets it */
	char notes[8][256];
	int n_notes;
};

void mft_tl_init(struct mft_timeline *tl);
/* Take a loaded recording (the timeline owns it now). -1 when full. */
int mft_tl_add(struct mft_timeline *tl, const char *path, struct mft_recording *rec);
/*
 * Read a recording as a stream (its events are not kept: mft_tl_align and mft_tl_run read
 * the file again) and add it. 0; -1 when it cannot be read at all (rec says why; the
 * caller frees it); -2 when the timeline is full. On success the host's rec holds the
 * file's metadata, problems and counts.
 */
int mft_tl_add_file(struct mft_timeline *tl, const char *path, struct mft_recording *rec);
/* Put every host on the first one's clock; keep pids apart. */
void mft_tl_align(struct mft_timeline *tl);
/* Replay everything through one correlator; out (may be NULL) gets every callback. */
void mft_tl_run(struct mft_timeline *tl, const struct mft_sink *out);
void mft_tl_free(struct mft_timeline *tl);
/* Which host a (possibly remapped) pid belongs to, -1 if none. */
int mft_tl_host_of(const struct mft_timeline *tl, uint32_t pid);

/* The alignment of one recording onto another (pure; the unit tests drive it). */
void mft_tl_align_pair(const struct mft_recording *ref, const struct mft_recording *other, struct mft_tl_align *a);

/* Renderers */
int mft_tl_chrome(const struct mft_timeline *tl, FILE *f);
int mft_tl_html(const struct mft_timeline *tl, FILE *f);
/* The HTML axis' tick step for a span in ns: at most 8 steps in it (1, 2 or 5 x 10^k). */
uint64_t mft_html_axis_step(uint64_t span);

/* Shared by the renderers: the role/kind/verdict words output.c uses. */
/* One of the times of a channel end, by name, or 0 */
uint64_t mft_tl_final_read(const struct mft_tl_chan *c);

#endif
