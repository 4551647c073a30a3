/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Verdicts: the policy of mftrace, as pure functions of the evidence gathered on
 * one channel (and, for a migration, on all of its channels). See docs/verdicts.md.
 */
#ifndef MFT_VERDICT_H
#define MFT_VERDICT_H

#include <stdbool.h>
#include <stdint.h>
#include "base/util.h"

enum mft_vkind {
	MFT_V_CLEAN = 0,
	MFT_V_PREMATURE,
	MFT_V_UNREAD,
	MFT_V_RESET,
	MFT_V_PLAIN,
	MFT_V_INCOMPLETE,
	MFT_V__MAX,
};
#define MFT_VBIT(k) (1u << (k))

enum mft_severity { MFT_SEV_NONE = 0, MFT_SEV_TOLERATED, MFT_SEV_FATAL, MFT_SEV_PENDING };

/* Times are CLOCK_MONOTONIC ns; 0 means "did not happen (or not seen)". */
struct mft_evidence {
	int role;     /* MFT_ROLE_* */
	bool midlife; /* tracing started after the socket was created */
	bool tls;     /* a GnuTLS handshake completed on it */
	uint64_t t_created, t_established, t_first_read, t_tls;
	uint64_t t_bye;
	int bye_ret;
	uint64_t t_shutdown;
	int shutdown_how;
	uint64_t t_close;
	uint64_t t_fin_sent, t_fin_rcvd;
	uint64_t t_rst_rcvd, t_rst_sent;
	uint64_t t_eof;
	uint32_t eof_tid; /* a recv returned 0 */
	uint64_t t_read_err;
	int read_err; /* a recv failed (-errno) */
	uint64_t t_tls_end;
	int tls_end_ret;  /* --tls-records: gnutls_record_recv <= 0 */
	bool tls_records; /* per-record probes were on for this channel's end */
	uint64_t t_destroy;
	uint64_t t_thread_end; /* USDT: the channel's QEMU thread ended */
	uint64_t rx_bytes, tx_bytes, rx_calls;
	uint64_t t_last_rx;
	int last_rx_len, prev_rx_len;
	uint32_t last_rx_tid;
	uint32_t late_reads;
	uint32_t tls_record_calls; /* --tls-records: gnutls_record_recv calls seen on the socket */
	uint64_t t_last_sync;      /* the last SYNC: on this channel, or the migration's last sync point */
	uint32_t n_sync;
	bool sync_per_channel;    /* t_last_sync/n_sync are this channel's own SYNC packets */
	uint64_t t_peer_shutdown; /* the peer's shutdown(), when both ends are traced */
	uint64_t t_peer_bye;
	int peer_bye_ret;
	bool peer_seen;
};

struct mft_verdict {
	unsigned possible;       /* MFT_VBIT set; one bit when decided */
	int kind;                /* the verdict when decided, else -1 */
	int severity;            /* premature only */
	const char *why;         /* one line of evidence */
	const char *woken_by;    /* final read woken by "peer-fin" or "local-shutdown" */
	uint64_t t_final_read;   /* 0: no final read happened */
	int final_read_ret;      /* result of the final read (0 EOF, -110, ...) */
	uint32_t final_read_tid; /* the thread that did it */
	/* margins, ns; INT64_MIN when not applicable */
	int64_t fin_to_final_read;     /* FIN arrival -> final read */
	int64_t fin_to_local_shutdown; /* FIN arrival -> our own shutdown() */
	int64_t last_read_to_fin;      /* last data read -> FIN arrival */
	int64_t bye_to_shutdown;       /* source: gnutls_bye -> shutdown() */
	int64_t shutdown_to_close;
	int64_t peer_shutdown_to_final_read; /* both ends traced */
	int64_t last_sync_to_shutdown;       /* last SYNC -> our shutdown() (source) */
	int64_t last_sync_to_fin;            /* last SYNC -> the peer's FIN arrived (destination) */
};

struct mft_mig_verdict {
	unsigned possible; /* union over multifd channels */
	int kind;          /* worst decided channel verdict, -1 if none decided */
	int severity;
	bool flagged; /* some channel's shutdown beat its final read */
	bool lucky;   /* completed although a channel terminated prematurely */
	int n_multifd, n_counts[MFT_V__MAX], n_undecided;
};

#define MFT_NO_MARGIN MFT_NO_SPAN

/* Does a final read of (prev_len, len) bytes look like a TLS alert record? */
bool mft_alert_sized(int prev_len, int len);
void mft_judge_channel(const struct mft_evidence *e, bool ended, bool failed, bool outcome_known,
		       struct mft_verdict *v);
void mft_judge_migration(const struct mft_verdict *const *chans, size_t n, bool completed, bool failed,
			 struct mft_mig_verdict *mv);

const char *mft_vkind_name(int kind);
const char *mft_severity_name(int sev);
/* "clean", "premature|unread", ...: the possible set, joined by '|' ("undecided" if empty) */
void mft_possible_str(unsigned possible, char *buf, size_t len);
/* The verdict as one word where decided, else the possible set: what text and JSON show.
 * Returns buf. */
const char *mft_verdict_label(int kind, unsigned possible, char *buf, size_t len);
/* A channel's verdict label, with the severity of a premature one: "premature (fatal)". */
void mft_verdict_str(const struct mft_verdict *v, char *buf, size_t len);

#endif
