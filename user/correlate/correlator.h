/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The correlator: plain C, no kernel dependency. It is fed struct mft_event records
 * (from the ring buffer live, or from a test) and groups them into channels (one TCP
 * connection as one process sees it) and groups of channels (those one process opened
 * to, or accepted from, one endpoint during one migration attempt).
 *
 * A group becomes a migration only on migration evidence for one of its sockets: read
 * inside multifd_recv_new_channel(), a MultiFDInit_t read or sent on it, a multifd SYNC
 * packet or a USDT multifd probe on its thread, or touched inside multifd teardown; or
 * its other end, traced too, is such a socket. Other connections of a QEMU (NBD, VNC,
 * SPICE, chardevs, slirp) never become migrations: their events are held back and
 * dropped, and the "other" sink (if set) hears of each group when it ends.
 *
 * A process is a pid and its start time: a pid that comes back after its process exited
 * is a new process with fresh state. Each migration attempt of a process (a state
 * machine leaving a final state, or its first state seen) is its own migration, and its
 * outcome is that attempt's own final state. When a migration ends the correlator
 * computes each channel's verdict (verdict.c) and hands everything to the sink.
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
struct mft_process;
struct mft_pending;

struct mft_chan {
	uint64_t sk;
	uint32_t pid;
	int role;    /* MFT_ROLE_* */
	int kind;    /* enum mft_kind */
	int index;   /* order within its migration: 0 is the first connection */
	int chan_id; /* QEMU's multifd channel number, -1 if not seen */
	int family;
	uint16_t lport, rport;
	uint8_t laddr[16], raddr[16];
	struct mft_evidence evidence; /* everything verdict.c looks at */
	struct mft_verdict verdict;
	bool named_multifd; /* named a multifd channel by multifd_recv_new_channel() */
	bool ended;         /* socket destroyed */
	bool judged;
	bool mig_failed;          /* its migration failed (set when judged; read by a traced peer) */
	uint64_t attempt;         /* its process's migration attempt when it opened, 0 if none known */
	struct mft_process *proc; /* the process (pid and start time) it belongs to */
	struct mft_migration *mig;
	struct mft_pending *pending; /* event lines held back until its group shows evidence */
	size_t n_pending, cap_pending;
	uint64_t pending_dropped;
	/* correlator.c's memo of chan_peer(): valid while peer_gen equals its pairing generation */
	struct mft_chan *peer_memo;
	uint64_t peer_gen;
};

/*
 * One migration attempt of a process, from QEMU's own state changes: it begins with the
 * first state seen after a final one (or the first state seen at all) and ends with a
 * final state (completed, failed, cancelled).
 */
struct mft_attempt {
	uint64_t id; /* from 1, unique in a correlator */
	uint64_t t_start, t_last, t_end;
	char state[MFT_STR_LEN]; /* its latest state */
	bool terminal;
};

#define MFT_MAX_ATTEMPTS 16

/* A process: a pid and its start time. A reused pid is another mft_process. */
struct mft_process {
	uint32_t pid;
	uint64_t start_time; /* /proc/PID/stat starttime, 0 if not known */
	uint64_t t_traced;   /* its probes were complete: sockets opened before are mid-life */
	uint64_t generation; /* 1 for the first process seen with this pid, 2 for the next... */
	char name[64];       /* VM name or comm */
	bool exited;
	int exit_status; /* wait status */
	uint64_t t_exit;
	struct mft_attempt att[MFT_MAX_ATTEMPTS]; /* its latest attempts, oldest first */
	int n_att;
	bool in_use; /* correlator.c's mark while it forgets processes */
};

struct mft_migration {
	uint64_t id; /* sequence number of migrations, from 1; 0 while it shows no evidence */
	uint32_t pid;
	const struct mft_process *proc;
	uint64_t attempt;              /* the attempt it belongs to (struct mft_attempt.id), 0 if none known */
	bool evidence;                 /* a socket of it is a migration channel: it is a migration */
	size_t n_pruned, n_pruned_tls; /* no migration: connections that ended and were let go */
	int role;
	char endpoint[64]; /* the peer (source) or listening address (destination) */
	struct mft_chan **chans;
	size_t n_chans, cap_chans;
	uint64_t t_first, t_last_end, t_cleanup;
	uint8_t uuid[16]; /* from a channel's MultiFDInit_t, when decoded */
	bool has_uuid;
	uint32_t n_sync; /* sync points (multifd_{send,recv}_sync_main) */
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
	void (*event)(void *ctx, const struct mft_correlator *c, const struct mft_chan *ch, const struct mft_event *ev);
	/* a migration ended: all channels judged */
	void (*migration)(void *ctx, const struct mft_correlator *c, const struct mft_migration *m);
	/* a group of connections that never showed migration evidence ended (not judged) */
	void (*other)(void *ctx, const struct mft_correlator *c, const struct mft_migration *m);
};

struct mft_corr_opts {
	bool tls_records;   /* full-fidelity: gnutls_record_recv results are probed */
	bool newchan_probe; /* multifd_recv_new_channel() marks multifd channels */
	uint64_t grace_ns;  /* how long after the last multifd channel ends to wait */
};

struct mft_correlator *mft_corr_new(const struct mft_corr_opts *opts, const struct mft_sink *sink);
void mft_corr_free(struct mft_correlator *c);
void mft_corr_feed(struct mft_correlator *c, const struct mft_event *ev);
/* Close migrations whose grace period has passed. now_ns is CLOCK_MONOTONIC. */
void mft_corr_tick(struct mft_correlator *c, uint64_t now_ns);
/* Tracing stops: judge everything still open (unfinished channels are incomplete). */
void mft_corr_finish(struct mft_correlator *c, uint64_t now_ns);
/*
 * A traced process, before any of its events: pid and start time (0 if not known), when
 * its probes were complete (CLOCK_MONOTONIC ns, 0 if not known: sockets opened before
 * are mid-life, never plain), and its name. A pid whose process exited, or whose start
 * time differs, becomes a new process with fresh state.
 */
void mft_corr_set_process(struct mft_correlator *c, uint32_t pid, uint64_t start_time, uint64_t t_traced,
			  const char *name);
/* Name the current process of pid (output). */
void mft_corr_set_process_name(struct mft_correlator *c, uint32_t pid, const char *name);
/* The current process of pid (the latest one seen), or NULL. */
const struct mft_process *mft_corr_process(const struct mft_correlator *c, uint32_t pid);
/* Groups of connections not yet ended (migrations or not). */
size_t mft_corr_open_migrations(const struct mft_correlator *c);


#endif
