/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A tracing session: the collector (kernel side) feeding the correlator, for a fixed
 * set of QEMU pids or for every QEMU on the host (found at start and while running).
 * Live mode, the exporter and the recorder are sessions with different sinks.
 */
#ifndef MFT_SESSION_H
#define MFT_SESSION_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include "base/util.h"
#include "collect/collector.h"
#include "correlate/correlator.h"
#include "collect/procinfo.h"

struct mft_session;

struct mft_session_opts {
	struct mft_collector_opts co;
	const uint32_t *pids; /* the targets, validated by the caller */
	int n_pids;
	bool all_qemus;       /* every QEMU on the host, including those that start later */
	bool stay;            /* keep running when no target is left (all_qemus implies it) */
	double duration;      /* seconds; 0 = until *stop */
	bool chatter;         /* "tracing pid ...", "ready", summary lines on stderr */
	struct mft_sink sink; /* the correlator's output */
	void *ctx;            /* passed to the hooks below */
	/* every event, before the correlator sees it (the recorder) */
	void (*raw)(void *ctx, const struct mft_event *ev);
	/* a target was added (added = true) or forgotten */
	void (*target)(void *ctx, const struct mft_session *s, const struct mft_procinfo *pi, bool added);
	/* once per loop turn, about every 100 ms */
	void (*tick)(void *ctx, const struct mft_session *s, uint64_t now_ns);
	/* once at the end, after the last events were drained and judged (final counters) */
	void (*done)(void *ctx, const struct mft_session *s, uint64_t now_ns);
};

/* Runs until *stop, the duration, or (unless stay) every target has exited.
 * Returns 0, or 1 after a one-line error on stderr. */
int mft_session_run(const struct mft_session_opts *o, volatile sig_atomic_t *stop);

uint64_t mft_session_counter(const struct mft_session *s, int idx);
uint64_t mft_session_bad_events(const struct mft_session *s);
const struct mft_attach_status *mft_session_status(const struct mft_session *s, size_t *n);
size_t mft_session_n_targets(const struct mft_session *s);
/* Every bounded table of the session and how full it is (walks the kernel maps' keys:
 * call it about once a second at most). Returns how many were written to out. */
/* The loaded BPF programs' run time and count (mft_collector_prog_stats). */
size_t mft_session_prog_stats(const struct mft_session *s, struct mft_prog_stat *out, size_t max);
size_t mft_session_limits(const struct mft_session *s, struct mft_limit *out, size_t max);


#endif
