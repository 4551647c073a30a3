/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The collector: loads bpf/mftrace.bpf.c, picks a mechanism for each kernel probe,
 * attaches the uprobes of each target QEMU, and hands ring-buffer events to a callback.
 */
#ifndef MFT_COLLECTOR_H
#define MFT_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mftrace.h"
#include "collect/probe_select.h"
#include "collect/procinfo.h"

struct mft_collector_opts {
	bool tls_records;  /* per-record gnutls_record_recv probes (full fidelity, costly) */
	int forced_mech;   /* MFT_MECH_NONE for automatic */
	bool verbose;      /* libbpf's log on stderr */
};

/* One attach point and how it went: shown by doctor, -v, and at start-up on failure. */
struct mft_attach_status {
	uint32_t pid;      /* 0 for kernel-wide probes */
	char what[48];     /* "shutdown", "gnutls_bye", ... */
	char mech[16];     /* fentry, kprobe, tracepoint, uprobe, uretprobe */
	bool ok;
	bool required;
	char why[320];
};

struct mft_collector;
typedef void (*mft_event_fn)(void *ctx, const struct mft_event *ev);

/* NULL on failure, with a one-line reason in err. */
struct mft_collector *mft_collector_open(const struct mft_collector_opts *o, mft_event_fn fn,
					 void *ctx, char *err, size_t errlen);
/* Start tracing a QEMU process: the kernel-side filter, then its uprobes. t_traced (may
 * be NULL) gets the CLOCK_MONOTONIC ns when its probes were complete: sockets opened
 * before then are mid-life for the correlator. -1 with a one-line reason on failure. */
int mft_collector_add_target(struct mft_collector *c, const struct mft_procinfo *pi, uint64_t *t_traced,
			     char *err, size_t errlen);
void mft_collector_remove_target(struct mft_collector *c, uint32_t pid);
bool mft_collector_has_target(const struct mft_collector *c, uint32_t pid);
size_t mft_collector_n_targets(const struct mft_collector *c);
/* Poll the ring buffer; returns events handled, or -errno (-EINTR on a signal). */
int mft_collector_poll(struct mft_collector *c, int timeout_ms);
/* Counters kept in the kernel (enum mft_counter). */
uint64_t mft_collector_counter(const struct mft_collector *c, int idx);
/* Events that user space rejected (wrong size). */
uint64_t mft_collector_bad_events(const struct mft_collector *c);
const struct mft_attach_status *mft_collector_status(const struct mft_collector *c, size_t *n);
void mft_collector_close(struct mft_collector *c);

/* libbpf's log: quiet unless verbose. */
void mft_libbpf_log(bool verbose);

#endif
