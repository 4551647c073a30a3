// SPDX-License-Identifier: GPL-2.0
/*
 * Verdict policy. Pure functions: the unit tests drive them with evidence tables.
 *
 * Destination (the side that reads a multifd channel):
 *   reset       an RST arrived, or a recv failed with a connection error
 *   plain       no TLS handshake on the channel: EOF is the normal end
 *   premature   under TLS, the final read hit EOF without close_notify. Default mode:
 *               a socket-level recv() returned 0 (GnuTLS then reports -110, observed
 *               every time). --tls-records: gnutls_record_recv() returned -110.
 *   clean       under TLS, the final read consumed close_notify. --tls-records:
 *               gnutls_record_recv() returned 0. Default mode: the last two socket reads
 *               were a 5-byte record header and an alert-sized record body, and no EOF
 *               was read after it.
 *   unread      the peer's FIN (or our own shutdown) came and no read followed
 *   incomplete  tracing started after the channel opened, or stopped before it ended
 * Source (the side that writes; it never reads a multifd channel): it cannot see the
 * final read, so its verdict is the set that remains possible: after a successful
 * gnutls_bye, clean, premature or unread (premature: the destination's own shutdown can
 * wake its final read before the close_notify arrives, as libvirt's destination does);
 * without one, premature or unread. An RST that came after either end had finished
 * (the source's bye or shutdown, the destination's FIN) does not decide: it adds reset
 * to that set (the destination may have closed after its final read, or without one).
 */
#include <stdio.h>
#include <string.h>
#include "correlate/verdict.h"
#include "mftrace.h"

#define GNUTLS_E_PREMATURE_TERMINATION (-110)
#define GNUTLS_E_UNEXPECTED_PACKET_LENGTH (-9)
#define GNUTLS_E_PUSH_ERROR (-53)
#define GNUTLS_E_PULL_ERROR (-54)
#define TLS_RECORD_HEADER 5

static const char *const vnames[MFT_V__MAX] = {
	[MFT_V_CLEAN] = "clean", [MFT_V_PREMATURE] = "premature", [MFT_V_UNREAD] = "unread",
	[MFT_V_RESET] = "reset", [MFT_V_PLAIN] = "plain",         [MFT_V_INCOMPLETE] = "incomplete",
};

const char *mft_vkind_name(int kind)
{
	return kind >= 0 && kind < MFT_V__MAX ? vnames[kind] : "undecided";
}

const char *mft_severity_name(int sev)
{
	switch (sev) {
	case MFT_SEV_TOLERATED: return "tolerated";
	case MFT_SEV_FATAL: return "fatal";
	case MFT_SEV_PENDING: return "pending";
	default: return "";
	}
}

void mft_possible_str(unsigned possible, char *buf, size_t len)
{
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	for (int k = 0; k < MFT_V__MAX; k++) {
		if (!(possible & MFT_VBIT(k)))
			continue;
		int n = snprintf(buf + off, len > off ? len - off : 0, "%s%s", off ? "|" : "", vnames[k]);

		if (n > 0)
			off += (size_t)n;
	}
	if (!possible)
		snprintf(buf, len, "undecided");
}

const char *mft_verdict_label(int kind, unsigned possible, char *buf, size_t len)
{
	if (kind >= 0 || !possible)
		snprintf(buf, len, "%s", mft_vkind_name(kind));
	else
		mft_possible_str(possible, buf, len);
	return buf;
}

void mft_verdict_str(const struct mft_verdict *v, char *buf, size_t len)
{
	char label[64];

	mft_verdict_label(v->kind, v->possible, label, sizeof(label));
	if (v->kind == MFT_V_PREMATURE && v->severity)
		snprintf(buf, len, "%s (%s)", label, mft_severity_name(v->severity));
	else
		snprintf(buf, len, "%s", label);
}

/*
 * A TLS alert is 2 bytes of plaintext. Its record body on the wire is 19 bytes in TLS 1.3
 * (alert + content type + 16-byte AEAD tag), 26 in TLS 1.2 AES-GCM (8-byte explicit nonce),
 * 18 in TLS 1.2 ChaCha20-Poly1305. GnuTLS reads the 5-byte header and then exactly the body.
 * QEMU never sends application records that small on a multifd channel (the smallest is the
 * 64-byte MultiFDInit_t).
 */
bool mft_alert_sized(int prev_len, int len)
{
	return prev_len == TLS_RECORD_HEADER && (len == 19 || len == 26 || len == 18);
}

static int64_t diff(uint64_t later, uint64_t earlier)
{
	if (!later || !earlier)
		return MFT_NO_MARGIN;
	return (int64_t)(later - earlier);
}

static void decide(struct mft_verdict *v, int kind, const char *why)
{
	v->possible = MFT_VBIT(kind);
	v->kind = kind;
	v->why = why;
}

static void undecided(struct mft_verdict *v, unsigned possible, const char *why)
{
	v->possible = possible;
	v->kind = -1;
	v->why = why;
}

/* Which boundary woke the final read at time t: the peer's FIN or our own shutdown? */
static const char *waker(const struct mft_evidence *e, uint64_t t)
{
	bool fin = e->t_fin_rcvd && e->t_fin_rcvd <= t;
	bool shut = e->t_shutdown && e->t_shutdown <= t;

	if (fin && (!shut || e->t_fin_rcvd <= e->t_shutdown))
		return "peer-fin";
	if (shut)
		return "local-shutdown";
	return NULL;
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

/*
 * A reset decides the verdict only if it came before the channel's final read: a
 * destination that shut its socket down, read EOF, and then got data (a late
 * close_notify) answers with an RST, but its final read had already happened.
 */
static bool rst_first(const struct mft_evidence *e)
{
	uint64_t rst = earliest(e->t_rst_rcvd, e->t_rst_sent);
	uint64_t read = earliest(e->t_eof, e->t_tls_end);

	if (!rst)
		return false;
	if (!read && !e->tls_records && mft_alert_sized(e->prev_rx_len, e->last_rx_len))
		read = e->t_last_rx;
	/* a source: reset before either end had finished, that is before its bye or shutdown,
	 * or before the destination's FIN (which shut down first: an RST after that answers
	 * what the source sent to a closed socket, after the destination's final read) */
	if (e->role == MFT_ROLE_SOURCE) {
		uint64_t end = earliest(earliest(e->t_bye, e->t_shutdown), e->t_fin_rcvd);

		return !end || rst < end;
	}
	return !read || rst < read;
}

static void judge_source(const struct mft_evidence *e, struct mft_verdict *v)
{
	if (!e->tls) {
		decide(v, MFT_V_PLAIN, "no TLS handshake on the channel");
		return;
	}
	unsigned rst = e->t_rst_rcvd || e->t_rst_sent ? MFT_VBIT(MFT_V_RESET) : 0;

	if (e->t_bye && e->bye_ret == 0)
		undecided(v, MFT_VBIT(MFT_V_CLEAN) | MFT_VBIT(MFT_V_PREMATURE) | MFT_VBIT(MFT_V_UNREAD) | rst,
			  rst ? "gnutls_bye sent close_notify, then an RST came; the destination's final read is "
				"not visible here"
			      : "gnutls_bye sent close_notify; the destination's final read is not visible here");
	else if (e->t_bye)
		undecided(v, MFT_VBIT(MFT_V_PREMATURE) | MFT_VBIT(MFT_V_UNREAD) | rst,
			  "gnutls_bye failed; the destination's final read is not visible here");
	else
		undecided(v, MFT_VBIT(MFT_V_PREMATURE) | MFT_VBIT(MFT_V_UNREAD) | rst,
			  "shutdown without gnutls_bye; the destination's final read is not visible here");
}

static void judge_reader(const struct mft_evidence *e, struct mft_verdict *v)
{
	if (!e->tls) {
		decide(v, MFT_V_PLAIN, "no TLS handshake on the channel");
		if (e->t_eof) {
			v->t_final_read = e->t_eof;
			v->final_read_tid = e->eof_tid;
			v->woken_by = waker(e, e->t_eof);
		}
		return;
	}
	if (e->tls_records && e->t_tls_end) {
		v->t_final_read = e->t_tls_end;
		v->final_read_tid = e->eof_tid ? e->eof_tid : e->last_rx_tid;
		v->final_read_ret = e->tls_end_ret;
		v->woken_by = waker(e, e->t_tls_end);
		switch (e->tls_end_ret) {
		case 0:
			v->woken_by = "close-notify";
			decide(v, MFT_V_CLEAN, "gnutls_record_recv returned 0: close_notify");
			return;
		case GNUTLS_E_PREMATURE_TERMINATION:
			decide(v, MFT_V_PREMATURE, "gnutls_record_recv returned -110: EOF without close_notify");
			return;
		case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
			decide(v, MFT_V_PREMATURE, "gnutls_record_recv returned -9: EOF inside a record");
			return;
		case GNUTLS_E_PULL_ERROR:
		case GNUTLS_E_PUSH_ERROR: decide(v, MFT_V_RESET, "gnutls_record_recv failed on a socket error"); return;
		default: decide(v, MFT_V_PREMATURE, "gnutls_record_recv failed before close_notify"); return;
		}
	}
	if (e->t_eof) {
		v->t_final_read = e->t_eof;
		v->final_read_tid = e->eof_tid;
		v->final_read_ret = e->tls_records ? 0 : GNUTLS_E_PREMATURE_TERMINATION;
		v->woken_by = waker(e, e->t_eof);
		decide(v, MFT_V_PREMATURE, "recv returned 0 under TLS before any close_notify: GnuTLS reports -110");
		return;
	}
	/* The FIN often arrives while records are still queued: reads after it are normal. */
	if (!e->tls_records && e->t_last_rx && mft_alert_sized(e->prev_rx_len, e->last_rx_len)) {
		v->t_final_read = e->t_last_rx;
		v->final_read_ret = 0;
		v->final_read_tid = e->last_rx_tid;
		v->woken_by = "close-notify";
		decide(v, MFT_V_CLEAN, "final read was an alert-sized TLS record (close_notify); no EOF read");
		return;
	}
	if (e->t_fin_rcvd)
		decide(v, MFT_V_UNREAD, "the peer's FIN arrived and the receiver never read again");
	else if (e->t_shutdown)
		decide(v, MFT_V_UNREAD, "shut down locally; the receiver never read again");
	else
		decide(v, MFT_V_UNREAD, "closed with no final read");
}

void mft_judge_channel(const struct mft_evidence *e, bool ended, bool failed, bool outcome_known, struct mft_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->kind = -1;
	v->fin_to_final_read = v->fin_to_local_shutdown = v->last_read_to_fin = MFT_NO_MARGIN;
	v->bye_to_shutdown = v->shutdown_to_close = v->peer_shutdown_to_final_read = MFT_NO_MARGIN;
	v->last_sync_to_shutdown = v->last_sync_to_fin = MFT_NO_MARGIN;

	if (e->midlife)
		decide(v, MFT_V_INCOMPLETE, "tracing started after the channel was opened");
	else if (!ended && !e->t_eof && !e->t_tls_end && !e->t_rst_rcvd)
		decide(v, MFT_V_INCOMPLETE, "tracing stopped before the channel ended");
	else if (rst_first(e))
		decide(v, MFT_V_RESET,
		       e->t_rst_rcvd ? "an RST arrived before any final read"
				     : "an RST was sent before any final read");
	else if (e->t_read_err && !e->t_eof && (!e->t_tls_end || e->t_read_err < e->t_tls_end))
		decide(v, MFT_V_RESET, "recv failed with a connection error");
	else if (e->role == MFT_ROLE_SOURCE)
		judge_source(e, v);
	else
		judge_reader(e, v);

	if (v->kind == MFT_V_PREMATURE)
		v->severity = !outcome_known ? MFT_SEV_PENDING : failed ? MFT_SEV_FATAL : MFT_SEV_TOLERATED;

	v->fin_to_final_read = diff(v->t_final_read, e->t_fin_rcvd);
	if (v->t_final_read && e->t_fin_rcvd > v->t_final_read)
		v->fin_to_final_read = MFT_NO_MARGIN; /* the read came before the FIN */
	v->fin_to_local_shutdown = diff(e->t_shutdown, e->t_fin_rcvd);
	v->last_read_to_fin = diff(e->t_fin_rcvd, e->t_last_rx);
	v->bye_to_shutdown = diff(e->t_shutdown, e->t_bye);
	v->shutdown_to_close = diff(e->t_close, e->t_shutdown);
	v->peer_shutdown_to_final_read = diff(v->t_final_read, e->t_peer_shutdown);
	v->last_sync_to_shutdown = diff(e->t_shutdown, e->t_last_sync);
	v->last_sync_to_fin = diff(e->t_fin_rcvd, e->t_last_sync);
}

static int severity_rank(int kind)
{
	switch (kind) {
	case MFT_V_PREMATURE: return 6;
	case MFT_V_RESET: return 5;
	case MFT_V_INCOMPLETE: return 4;
	case MFT_V_UNREAD: return 3;
	case MFT_V_CLEAN: return 2;
	case MFT_V_PLAIN: return 1;
	default: return 0;
	}
}

void mft_judge_migration(const struct mft_verdict *const *chans, size_t n, bool completed, bool failed,
			 struct mft_mig_verdict *mv)
{
	memset(mv, 0, sizeof(*mv));
	mv->kind = -1;
	for (size_t i = 0; i < n; i++) {
		const struct mft_verdict *v = chans[i];

		mv->n_multifd++;
		mv->possible |= v->possible;
		if (v->kind < 0) {
			mv->n_undecided++;
			continue;
		}
		mv->n_counts[v->kind]++;
		if (severity_rank(v->kind) > severity_rank(mv->kind))
			mv->kind = v->kind;
		if (v->kind == MFT_V_PREMATURE)
			mv->flagged = true;
	}
	if (mv->kind == MFT_V_PREMATURE)
		mv->severity = failed ? MFT_SEV_FATAL : completed ? MFT_SEV_TOLERATED : MFT_SEV_PENDING;
	mv->lucky = completed && mv->flagged;
}
