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
	bool tls_records; /* per-record gnutls_record_recv probes (full fidelity) */
	bool probe_entry; /* --tls-records=entry: on the function's entry, not its tail jump */
	int forced_mech;  /* MFT_MECH_NONE for automatic */
	bool verbose;     /* libbpf's log on stderr */
	const char *btf;  /* --btf FILE: kernel types for CO-RE when the kernel has no BTF */
};

/* One attach point and how it went: shown by doctor, -v, and at start-up on failure. */
struct mft_attach_status {
	uint64_t seq;  /* 1, 2, ...: the order added (statuses of forgotten targets go) */
	uint32_t pid;  /* 0 for kernel-wide probes */
	char what[48]; /* "shutdown", "gnutls_bye", ... */
	int mech;      /* enum mft_mech (mft_mech_name() for its word) */
	bool ok;
	bool required;
	char why[320];
};

/* At most this many attach statuses are kept (a target makes about 25); more are counted. */
#define MFT_MAX_STATUS (MFT_MAX_TARGETS * 40 + 64)

/* A bounded table and how full it is (mft_session_limits, doctor, the exporter). */
struct mft_limit {
	const char *resource; /* targets, attach_statuses, socket_map, ... */
	uint64_t used, capacity;
	uint64_t refused; /* what could not be added since the start */
	const char *what; /* one line: what fills it, what a refusal costs */
};

/* The kernel maps whose fill is shown */
enum mft_map_fill {
	MFT_FILL_TARGETS,  /* targets */
	MFT_FILL_SOCKS,    /* socks */
	MFT_FILL_SESSIONS, /* sessions */
	MFT_FILL_CALLS,    /* tls_calls + record_calls: threads inside a GnuTLS call */
	MFT_FILL_THREADS,  /* thread_sock: target threads bound to the socket they last used */
};

struct mft_collector;
typedef void (*mft_event_fn)(void *ctx, const struct mft_event *ev);

/* NULL on failure, with a one-line reason in err. */
struct mft_collector *mft_collector_open(const struct mft_collector_opts *o, mft_event_fn fn, void *ctx, char *err,
					 size_t errlen);
/* Start tracing a QEMU process: the kernel-side filter, then its uprobes. t_traced (may
 * be NULL) gets the CLOCK_MONOTONIC ns when its probes were complete: sockets opened
 * before then are mid-life for the correlator. -1 with a one-line reason on failure. */
int mft_collector_add_target(struct mft_collector *c, const struct mft_procinfo *pi, uint64_t *t_traced, char *err,
			     size_t errlen);
void mft_collector_remove_target(struct mft_collector *c, uint32_t pid);
struct mft_elf;
/*
 * Where a per-call probe pair on func (gnutls_record_recv) goes in e: its tail jump where
 * it has one (collect/probe_site.h), else its entry, or the entry anyway if entry. *off
 * is the file offset; where says it in words. 1 for the tail jump, 0 for the entry, -1
 * if func is not in e.
 */
int mft_cheapest_site(struct mft_elf *e, const char *func, bool entry, uint64_t *off, char *where, size_t len);
bool mft_collector_has_target(const struct mft_collector *c, uint32_t pid);
size_t mft_collector_n_targets(const struct mft_collector *c);
/* Poll the ring buffer; returns events handled, or -errno (-EINTR on a signal). */
int mft_collector_poll(struct mft_collector *c, int timeout_ms);
/* Counters kept in the kernel (enum mft_counter). */
uint64_t mft_collector_counter(const struct mft_collector *c, int idx);
/* Events that user space rejected (wrong size). */
uint64_t mft_collector_bad_events(const struct mft_collector *c);
const struct mft_attach_status *mft_collector_status(const struct mft_collector *c, size_t *n);
/* Statuses not kept because MFT_MAX_STATUS were (counted). */
uint64_t mft_collector_statuses_dropped(const struct mft_collector *c);
/* Probes that could not attach for want of a file descriptor (each link holds two). */
uint64_t mft_collector_attach_no_fd(const struct mft_collector *c);
/* Entries in one of the kernel maps now (a walk of its keys), and its capacity. */
void mft_collector_map_fill(const struct mft_collector *c, enum mft_map_fill which, uint64_t *used, uint64_t *capacity);
/* One loaded BPF program and what the kernel counted of it (kernel.bpf_stats_enabled). */
struct mft_prog_stat {
	char name[32]; /* bpf_program__name(), bounded */
	uint64_t run_time_ns, run_cnt;
};
/* The programs that are loaded, at most max, read with bpf_obj_get_info_by_fd (Debian 12's
 * libbpf 1.1 predates bpf_prog_get_info_by_fd); the counts stay 0 while
 * kernel.bpf_stats_enabled is 0. Returns how many were written. */
size_t mft_collector_prog_stats(const struct mft_collector *c, struct mft_prog_stat *out, size_t max);

/* Forget the per-thread entries of threads that are gone (killed inside a probed call):
 * without this they would stay in the kernel maps for good. Returns entries removed. */
size_t mft_collector_sweep(struct mft_collector *c);
void mft_collector_close(struct mft_collector *c);

/* libbpf's log: quiet unless verbose. */
void mft_libbpf_log(bool verbose);

#endif
