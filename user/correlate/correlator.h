/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The correlator: plain C, no kernel dependency. It is fed struct mft_event records
 * (from the ring buffer live, or from a test) and groups them into channels (one TCP
 * connection as one process sees it) and migrations (the channels one process opened
 * to, or accepted from, one endpoint). When a migration ends it computes each
 * channel's verdict (verdict.c) and hands everything to the output callbacks.
 */
#ifndef MFT_CORRELATOR_H
#define MFT_CORRELATOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "mftrace.h"
#include "correlate/verdict.h"
#include "correlate/names.h"


struct mft_migration;

struct mft_chan {
	uint64_t sk;
	uint32_t pid;
	int role;             /* MFT_ROLE_* */
	int kind;             /* enum mft_kind */
	int index;            /* order within its migration: 0 is the first connection */
	int chan_id;          /* QEMU's multifd channel number, -1 if not seen */
	int family;
	uint16_t lport, rport;
	uint8_t laddr[16], raddr[16];
	struct mft_evidence ev; /* everything verdict.c looks at */
	struct mft_verdict verdict;
	bool flagged;         /* named a multifd channel by multifd_recv_new_channel() */
	bool ended;           /* socket destroyed */
	bool judged;
	bool mig_failed;      /* its migration failed (set when judged; read by a traced peer) */
	struct mft_migration *mig;
};

/* One migration state machine (QEMU's MigrationState or MigrationIncomingState). */
struct mft_statemachine {
	uint64_t ptr;
	char state[MFT_STR_LEN];
	uint64_t t_last;
	bool terminal;
};

struct mft_process {
	uint32_t pid;
	char name[64];        /* VM name or comm */
	bool exited;
	int exit_status;      /* wait status */
	uint64_t t_exit;
	struct mft_statemachine sm[4];
	int n_sm;
};

struct mft_migration {
	uint64_t id;          /* sequence number, from 1 */
	uint32_t pid;
	int role;
	char endpoint[64];    /* the peer (source) or listening address (destination) */
	struct mft_chan **chans;
	size_t n_chans, cap_chans;
	uint64_t t_first, t_last_end, t_cleanup;
	uint8_t uuid[16];     /* from a channel's MultiFDInit_t, when decoded */
	bool has_uuid;
	uint32_t n_sync;      /* sync points (multifd_{send,recv}_sync_main) */
	uint64_t t_first_sync, t_last_sync;
	bool done;
	/* filled in at the end */
	char outcome[MFT_STR_LEN]; /* completed, failed, cancelled, exited(N), unknown */
	bool failed;
	struct mft_mig_verdict verdict;
};

struct mft_correlator;

struct mft_sink {
	void *ctx;
	/* a channel boundary, as it happens (live lines) */
	void (*event)(void *ctx, const struct mft_correlator *c, const struct mft_chan *ch,
		      const struct mft_event *ev);
	/* a migration ended: all channels judged */
	void (*migration)(void *ctx, const struct mft_correlator *c, const struct mft_migration *m);
};

struct mft_corr_opts {
	bool tls_records;            /* full-fidelity: gnutls_record_recv results are probed */
	bool newchan_probe;          /* multifd_recv_new_channel() marks multifd channels */
	uint64_t grace_ns;           /* how long after the last multifd channel ends to wait */
};

struct mft_correlator *mft_corr_new(const struct mft_corr_opts *opts, const struct mft_sink *sink);
void mft_corr_free(struct mft_correlator *c);
void mft_corr_feed(struct mft_correlator *c, const struct mft_event *ev);
/* Close migrations whose grace period has passed. now_ns is CLOCK_MONOTONIC. */
void mft_corr_tick(struct mft_correlator *c, uint64_t now_ns);
/* Tracing stops: judge everything still open (unfinished channels are incomplete). */
void mft_corr_finish(struct mft_correlator *c, uint64_t now_ns);
/* Describe a traced process (name shown in output). */
void mft_corr_set_process_name(struct mft_correlator *c, uint32_t pid, const char *name);
const struct mft_process *mft_corr_process(const struct mft_correlator *c, uint32_t pid);
/* Tracing of pid started at now_ns (sockets found later are mid-life). */
size_t mft_corr_open_migrations(const struct mft_correlator *c);

/* Grow an array to hold need elements (doubling); exits on out-of-memory. */
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */

#endif
