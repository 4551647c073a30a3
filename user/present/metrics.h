/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The exporter's metric registry: plain C, no HTTP, no kernel. The session thread
 * updates it from the correlator's callbacks and the collector's counters; the HTTP
 * thread renders it, as Prometheus text 0.0.4 or OpenMetrics 1.0.0. One mutex guards
 * it, held only to update or to render a snapshot into memory.
 *
 * Labels stay bounded: role, verdict (a closed set) and possible, impact, outcome, probe,
 * mechanism, program, and the domain (the VM name, as libvirt's exporter calls it; at most
 * MFT_METRICS_MAX_VMS of them; when the table is full, the least recently active domain
 * that is no longer traced is forgotten, with its series). Never a pid, a port or a UUID
 * on a counter: those appear only on the info metrics (mftrace_last_migration_info,
 * mftrace_target_info).
 */
#ifndef MFT_METRICS_H
#define MFT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "collect/collector.h"
#include "collect/procinfo.h"
#include "correlate/correlator.h"

#define MFT_METRICS_MAX_VMS 1024
#define MFT_METRICS_MAX_SERIES 16384 /* per metric family: 1024 VMs x 2 roles x 8 verdicts */
#define MFT_METRICS_OVERFLOW_VM "_overflow"

struct mft_metrics;

struct mft_metrics_build {
	const char *version;
	const char *libbpf;
	const char *libmicrohttpd;
	const char *revision; /* git describe at build time; NULL or "": "unknown" */
};

/* The process_* metrics, as the Prometheus client libraries define them. */
struct mft_metrics_process {
	double cpu_seconds, resident_bytes, virtual_bytes, open_fds, max_fds, start_time_seconds;
};

/* What the collector counts (enum mft_counter), as read by the session thread. */
struct mft_metrics_self {
	uint64_t events, lost, untracked, malformed;
};

struct mft_metrics *mft_metrics_new(const struct mft_metrics_build *b);
void mft_metrics_free(struct mft_metrics *m);

/* A migration ended (the sink's callback). vm: the process name the correlator knows.
 * now_s: wall-clock time, for mftrace_last_migration_timestamp_seconds. */
void mft_metrics_migration(struct mft_metrics *m, const char *vm, const struct mft_migration *mig, double now_s);
/* A QEMU process is traced from now on (added) or forgotten. */
void mft_metrics_target(struct mft_metrics *m, uint32_t pid, const char *vm, bool added);
/* What a traced QEMU's /proc says (mftrace_target_info): call after mft_metrics_target(added). */
void mft_metrics_target_info(struct mft_metrics *m, const struct mft_procinfo *pi);
void mft_metrics_set_process(struct mft_metrics *m, const struct mft_metrics_process *p);
/* kernel.bpf_stats_enabled, and the programs' run time and runs (shown when enabled, or
 * once any run was counted: BPF_ENABLE_STATS enables counting without the sysctl). */
void mft_metrics_set_bpf(struct mft_metrics *m, bool stats_enabled, const struct mft_prog_stat *st, size_t n);
void mft_metrics_set_self(struct mft_metrics *m, const struct mft_metrics_self *s);
/* The collector's attach statuses. Entries of pids that are not traced now are ignored. */
void mft_metrics_set_probes(struct mft_metrics *m, const struct mft_attach_status *st, size_t n);
/* Bounded tables and how full they are: mftrace_resource_{capacity,used,refused_total}.
 * The registry adds its own (vm_labels, series) when it renders. */
void mft_metrics_set_limits(struct mft_metrics *m, const struct mft_limit *l, size_t n);

/* HTTP side */
/* Does this Accept header ask for OpenMetrics (over text 0.0.4)? NULL: no. */
bool mft_metrics_wants_openmetrics(const char *accept);
const char *mft_metrics_content_type(bool openmetrics);
/* The exposition, malloc()ed into *buf (*len bytes, NUL-terminated). 0, or -1 when
 * out of memory. */
int mft_metrics_render(struct mft_metrics *m, bool openmetrics, char **buf, size_t *len);
void mft_metrics_scrape_done(struct mft_metrics *m, bool openmetrics, double seconds);
void mft_metrics_http_response(struct mft_metrics *m, unsigned int code);
/* The exporter closed a connection itself: reason "deadline" or "client_share". */
void mft_metrics_http_closed(struct mft_metrics *m, const char *reason);

#endif
