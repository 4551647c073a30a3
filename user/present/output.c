// SPDX-License-Identifier: GPL-2.0
/* Output sinks for the correlator: text for people, JSON lines for programs. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include "correlate/multifd_wire.h"
#include "present/output.h"

#define DEFAULT_WIDTH 80
#define MEDIUM_WIDTH 120 /* from here on, the verdict table shows more columns */

void mft_out_fit(struct mft_output *o, bool wide)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");
	bool tty = isatty(fileno(o->out));

	o->color = tty && !getenv("NO_COLOR");
	o->width = DEFAULT_WIDTH;
	if (tty && !ioctl(fileno(o->out), TIOCGWINSZ, &ws) && ws.ws_col)
		o->width = ws.ws_col;
	else if (cols && atoi(cols) > 0)
		o->width = atoi(cols);
	if (o->width < 40)
		o->width = 40;
	if (wide)
		o->width = 0;
}

/* Which columns and fields text shows: 0 compact, 1 medium (>= 120 columns), 2 everything. */
static int tier(const struct mft_output *o)
{
	return o->width == 0 ? 2 : o->width >= MEDIUM_WIDTH ? 1 : 0;
}

/*
 * One line of text, wrapped at spaces to the output's width with a hanging indent of
 * indent spaces (never cut: what does not fit goes on the next line).
 */
static void put_wrapped(const struct mft_output *o, int indent, const char *text)
{
	FILE *f = o->out;
	const char *p = text;
	int first = 1;

	while (*p) {
		int room = o->width ? o->width - (first ? 0 : indent) : 0;
		size_t n = strlen(p);

		if (!first)
			fprintf(f, "%*s", indent, "");
		if (!room || (int)n <= room) {
			fputs(p, f);
			break;
		}
		size_t cut = (size_t)room;

		while (cut > 0 && p[cut] != ' ')
			cut--;
		if (cut == 0)
			cut = (size_t)room; /* one long word: break it */
		fwrite(p, 1, cut, f);
		fputc('\n', f);
		p += cut;
		while (*p == ' ')
			p++;
		first = 0;
	}
	fputc('\n', f);
}

/* "\033[1;31mpremature\033[0m" on a colour terminal; the visible text padded to width. */
static void put_verdict(const struct mft_output *o, int kind, const char *text, int width)
{
	static const char *const colour[MFT_V__MAX] = {
		[MFT_V_CLEAN] = "32",   [MFT_V_PREMATURE] = "1;31", [MFT_V_UNREAD] = "33",
		[MFT_V_RESET] = "1;35", [MFT_V_PLAIN] = "36",       [MFT_V_INCOMPLETE] = "2",
	};
	int n = (int)strlen(text);

	if (o->color && kind >= 0 && kind < MFT_V__MAX && colour[kind])
		fprintf(o->out, "\033[%sm%s\033[0m", colour[kind], text);
	else
		fputs(text, o->out);
	if (width > n)
		fprintf(o->out, "%*s", width - n, "");
}

static const char *tcp_state_name(int s)
{
	static const char *const n[] = { "?",         "ESTABLISHED", "SYN_SENT",   "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
					 "TIME_WAIT", "CLOSE",       "CLOSE_WAIT", "LAST_ACK", "LISTEN",    "CLOSING" };

	return s > 0 && s < (int)(sizeof(n) / sizeof(n[0])) ? n[s] : "?";
}

void mft_fmt_clock(const struct mft_output *o, uint64_t mono_ns, char *buf, size_t len)
{
	int64_t real = (int64_t)mono_ns + o->mono_to_real;
	time_t sec = (time_t)(real / 1000000000);
	struct tm tm;

	localtime_r(&sec, &tm);
	snprintf(buf, len, "%02d:%02d:%02d.%06ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (long)((real % 1000000000) / 1000));
}

static void event_detail(const struct mft_event *ev, char *buf, size_t len)
{
	buf[0] = '\0';
	switch (ev->type) {
	case MFT_EV_SHUTDOWN: snprintf(buf, len, "how=%s", ev->ret == 0 ? "RD" : ev->ret == 1 ? "WR" : "RDWR"); break;
	case MFT_EV_TLS_BYE:
		snprintf(buf, len, "ret=%lld%s", (long long)ev->ret, ev->ret == 0 ? " (close_notify sent)" : "");
		break;
	case MFT_EV_TLS_RECV_END:
		snprintf(buf, len, "gnutls_record_recv=%lld%s", (long long)ev->ret,
			 ev->ret == 0      ? " (close_notify)"
			 : ev->ret == -110 ? " (premature termination)"
					   : "");
		break;
	case MFT_EV_FIN_RCVD:
	case MFT_EV_FIN_SENT:
		snprintf(buf, len, "%s->%s", tcp_state_name((int)ev->arg), tcp_state_name((int)ev->ret));
		break;
	case MFT_EV_READ_EOF: snprintf(buf, len, "recv=0 tid=%u", ev->tid); break;
	case MFT_EV_READ_ERR: snprintf(buf, len, "recv=%lld tid=%u", (long long)ev->ret, ev->tid); break;
	case MFT_EV_READ_LATE:
	case MFT_EV_FIRST_READ: snprintf(buf, len, "recv=%lld tid=%u", (long long)ev->ret, ev->tid); break;
	case MFT_EV_DESTROY:
		snprintf(buf, len, "rx=%lluB tx=%lluB reads=%llu", (unsigned long long)ev->snap.rx_bytes,
			 (unsigned long long)ev->snap.tx_bytes, (unsigned long long)ev->snap.rx_calls);
		break;
	case MFT_EV_MIG_STATE:
		if (ev->str[0]) { /* read from the target's memory: its own choice of bytes */
			char s[MFT_STR_LEN + 1];

			snprintf(s, sizeof(s), "%.*s", MFT_STR_LEN, ev->str);
			mft_sanitize(buf, len, s);
		} else
			snprintf(buf, len, "state %lld", (long long)ev->ret);
		break;
	case MFT_EV_SYNC_MAIN: snprintf(buf, len, "%s side", ev->ret == MFT_SIDE_SEND ? "send" : "recv"); break;
	case MFT_EV_CHAN_SYNC:
		snprintf(buf, len, "SYNC packet %llu%s", (unsigned long long)ev->arg, ev->ret >= 0 ? "" : " (decoded)");
		break;
	case MFT_EV_TERMINATE:
		if (ev->arg == 0xff)
			snprintf(buf, len, "%s side", ev->ret == MFT_SIDE_SEND ? "send" : "recv");
		else
			snprintf(buf, len, "%s side, error=%llu", ev->ret == MFT_SIDE_SEND ? "send" : "recv",
				 (unsigned long long)ev->arg);
		break;
	case MFT_EV_THREAD_END:
		snprintf(buf, len, "%s thread of channel %lld", ev->arg == MFT_SIDE_SEND ? "send" : "recv",
			 (long long)ev->ret);
		break;
	case MFT_EV_CHAN_INIT: {
		uint8_t uuid[16];
		bool has_uuid;
		int id;

		if (mft_chan_init_of_event(ev, &id, uuid, &has_uuid) == MFT_WIRE_OK)
			snprintf(buf, len, "multifd channel %d", id);
		else
			snprintf(buf, len, "not a MultiFDInit_t");
		break;
	}
	case MFT_EV_MULTIFD_CLEANUP: snprintf(buf, len, "%s side", ev->ret == MFT_SIDE_SEND ? "send" : "recv"); break;
	case MFT_EV_PROC_EXIT: {
		int st = (int)ev->ret;

		if (st & 0x7f)
			snprintf(buf, len, "killed by signal %d", st & 0x7f);
		else
			snprintf(buf, len, "exit status %d", (st >> 8) & 0xff);
		break;
	}
	default: break;
	}
}

static uint64_t real_ns(const struct mft_output *o, uint64_t mono)
{
	return mono ? (uint64_t)((int64_t)mono + o->mono_to_real) : 0;
}

void mft_out_event(void *ctx, const struct mft_correlator *c, const struct mft_chan *ch, const struct mft_event *ev)
{
	struct mft_output *o = ctx;
	char when[32], detail[96], la[64] = "", ra[64] = "";

	(void)c;
	if (!o->events)
		return;
	event_detail(ev, detail, sizeof(detail));
	if (ch) {
		mft_fmt_addr(la, sizeof(la), ch->family, ch->laddr, ch->lport);
		mft_fmt_addr(ra, sizeof(ra), ch->family, ch->raddr, ch->rport);
	}
	if (o->json) {
		fprintf(o->out, "{\"type\":\"event\",\"time_ns\":%" PRIu64 ",\"pid\":%u,\"tid\":%u,\"event\":",
			real_ns(o, ev->ts_ns), ev->pid, ev->tid);
		mft_json_str(o->out, mft_ev_name(ev->type));
		if (ch) {
			fprintf(o->out,
				",\"role\":\"%s\",\"migration\":%" PRIu64 ",\"channel\":%d,\"kind\":\"%s\",\"local\":",
				mft_role_name(ch->role), ch->mig ? ch->mig->id : 0, ch->index, mft_kind_name(ch->kind));
			mft_json_str(o->out, la);
			fputs(",\"peer\":", o->out);
			mft_json_str(o->out, ra);
		}
		fputs(",\"detail\":", o->out);
		mft_json_str(o->out, detail);
		fputs("}\n", o->out);
	} else {
		char line[512];

		mft_fmt_clock(o, ev->ts_ns, when, sizeof(when));
		if (ch && tier(o) == 2)
			snprintf(line, sizeof(line), "%s %7u %s #%" PRIu64 ".%d %-7s %s %s %s  %-15s %s", when, ev->pid,
				 mft_role_short(ch->role), ch->mig ? ch->mig->id : 0, ch->index,
				 mft_kind_name(ch->kind), la, ch->role == MFT_ROLE_DEST ? "<-" : "->", ra,
				 mft_ev_name(ev->type), detail);
		else if (ch && tier(o) == 1)
			snprintf(line, sizeof(line), "%s %7u %s #%" PRIu64 ".%d %-7s %s %-15s %s", when, ev->pid,
				 mft_role_short(ch->role), ch->mig ? ch->mig->id : 0, ch->index,
				 mft_kind_name(ch->kind), ra, mft_ev_name(ev->type), detail);
		else if (ch)
			snprintf(line, sizeof(line), "%s %s #%" PRIu64 ".%d %-7s %-15s %s", when,
				 mft_role_short(ch->role), ch->mig ? ch->mig->id : 0, ch->index,
				 mft_kind_name(ch->kind), mft_ev_name(ev->type), detail);
		else
			snprintf(line, sizeof(line), "%s %7u %-15s %s", when, ev->pid, mft_ev_name(ev->type), detail);
		put_wrapped(o, 8, line);
	}
	if (!o->buffered)
		fflush(o->out);
}

static void rel(uint64_t t, uint64_t t0, char *buf, size_t len)
{
	if (!t)
		snprintf(buf, len, "-");
	else
		mft_fmt_span((int64_t)(t - t0), buf, len);
}

/* Time zero of a verdict table: the first teardown step on any channel. */
static uint64_t teardown_t0(const struct mft_migration *m)
{
	uint64_t t0 = 0;

	for (size_t i = 0; i < m->n_chans; i++) {
		const struct mft_evidence *e = &m->chans[i]->evidence;
		uint64_t ts[] = { e->t_bye, e->t_shutdown, e->t_fin_rcvd, e->t_fin_sent, e->t_close };

		for (size_t k = 0; k < sizeof(ts) / sizeof(ts[0]); k++)
			if (ts[k] && (!t0 || ts[k] < t0))
				t0 = ts[k];
	}
	return t0;
}

static void final_read_text(const struct mft_verdict *v, uint64_t t0, char *buf, size_t len)
{
	char t[24];

	if (!v->t_final_read) {
		snprintf(buf, len, "none");
		return;
	}
	rel(v->t_final_read, t0, t, sizeof(t));
	snprintf(buf, len, "%s %s", t, v->final_read_ret == 0 ? "0" : v->final_read_ret == -110 ? "EOF/-110" : "err");
}

/* The verdict table's columns; a column shows from its tier on (see tier()). */
enum {
	C_CH,
	C_ID,
	C_KIND,
	C_LOCAL,
	C_PEER,
	C_TLS,
	C_SYNC,
	C_BYE,
	C_SHUT,
	C_FIN,
	C_CLOSE,
	C_FINAL,
	C_WOKEN,
	C_MARGIN,
	C_VERDICT,
	N_COLS
};
static const struct {
	const char *head;
	int width, tier;
} cols[N_COLS] = {
	[C_CH] = { "CH", 3, 0 },
	[C_ID] = { "ID", 3, 0 },
	[C_KIND] = { "KIND", 7, 0 },
	[C_LOCAL] = { "LOCAL", 21, 2 },
	[C_PEER] = { "PEER", 21, 1 },
	[C_TLS] = { "TLS", 3, 2 },
	[C_SYNC] = { "SYNCS/LAST", 14, 2 },
	[C_BYE] = { "BYE", 9, 2 },
	[C_SHUT] = { "SHUTDOWN", 9, 1 },
	[C_FIN] = { "FIN-IN", 9, 2 },
	[C_CLOSE] = { "CLOSE", 9, 2 },
	[C_FINAL] = { "FINAL-READ", 17, 0 },
	[C_WOKEN] = { "WOKEN-BY", 14, 1 },
	[C_MARGIN] = { "FIN->READ", 9, 0 },
	[C_VERDICT] = { "VERDICT", 0, 0 },
};

static void migration_text(struct mft_output *o, const struct mft_correlator *c, const struct mft_migration *m)
{
	const struct mft_process *p = m->proc;
	const struct mft_mig_verdict *mv = &m->verdict;
	uint64_t t0 = teardown_t0(m);

	(void)c;
	char poss[64], when[32], name[sizeof(p->name)] = "", line[1024], outcome[sizeof(m->outcome)];
	FILE *f = o->out;
	int t = tier(o);

	if (p && p->name[0])
		mft_sanitize(name, sizeof(name), p->name);
	mft_sanitize(outcome, sizeof(outcome), m->outcome);
	mft_fmt_clock(o, t0 ? t0 : m->t_first, when, sizeof(when));
	fputc('\n', f);
	snprintf(line, sizeof(line), "== migration #%" PRIu64 ": pid %u%s%s%s, %s %s %s, outcome %s", m->id, m->pid,
		 name[0] ? " (" : "", name, name[0] ? ")" : "", mft_role_name(m->role),
		 m->role == MFT_ROLE_DEST ? "listening on" : "connected to", m->endpoint, outcome);
	put_wrapped(o, 3, line);
	snprintf(line, sizeof(line), "   times are relative to the first teardown step at %s", when);
	put_wrapped(o, 3, line);
	if (m->n_sync || m->has_uuid) {
		char last[24] = "-", uuid[40] = "unknown";

		if (m->t_last_sync)
			rel(m->t_last_sync, t0, last, sizeof(last));
		if (m->has_uuid)
			mft_fmt_uuid(uuid, sizeof(uuid), m->uuid);
		snprintf(line, sizeof(line), "   sync points: %u, the last at %s; migration UUID %s", m->n_sync, last,
			 uuid);
		put_wrapped(o, 3, line);
	}
	fputs("  ", f);
	for (int k = 0; k < N_COLS; k++)
		if (cols[k].tier <= t)
			fprintf(f, " %-*s", cols[k].width, cols[k].head);
	fputc('\n', f);
	for (size_t i = 0; i < m->n_chans; i++) {
		const struct mft_chan *ch = m->chans[i];
		const struct mft_evidence *e = &ch->evidence;
		char cell[N_COLS][96] = { { 0 } }, ls[24];

		snprintf(cell[C_CH], sizeof(cell[0]), "%d", ch->index);
		snprintf(cell[C_ID], sizeof(cell[0]), ch->chan_id >= 0 ? "%d" : "-", ch->chan_id);
		snprintf(cell[C_KIND], sizeof(cell[0]), "%s", mft_kind_name(ch->kind));
		mft_fmt_addr(cell[C_LOCAL], sizeof(cell[0]), ch->family, ch->laddr, ch->lport);
		mft_fmt_addr(cell[C_PEER], sizeof(cell[0]), ch->family, ch->raddr, ch->rport);
		snprintf(cell[C_TLS], sizeof(cell[0]), "%s", e->tls ? "yes" : "no");
		rel(e->t_last_sync, t0, ls, sizeof(ls));
		if (e->sync_per_channel)
			snprintf(cell[C_SYNC], sizeof(cell[0]), "%u %s", e->n_sync, ls);
		else
			snprintf(cell[C_SYNC], sizeof(cell[0]), "-");
		rel(e->t_bye, t0, cell[C_BYE], sizeof(cell[0]));
		rel(e->t_shutdown, t0, cell[C_SHUT], sizeof(cell[0]));
		rel(e->t_fin_rcvd, t0, cell[C_FIN], sizeof(cell[0]));
		rel(e->t_close, t0, cell[C_CLOSE], sizeof(cell[0]));
		final_read_text(&ch->verdict, t0, cell[C_FINAL], sizeof(cell[0]));
		snprintf(cell[C_WOKEN], sizeof(cell[0]), "%s", ch->verdict.woken_by ? ch->verdict.woken_by : "-");
		mft_fmt_span(ch->verdict.fin_to_final_read, cell[C_MARGIN], sizeof(cell[0]));
		mft_verdict_str(&ch->verdict, cell[C_VERDICT], sizeof(cell[0]));
		fputs("  ", f);
		for (int k = 0; k < C_VERDICT; k++)
			if (cols[k].tier <= t)
				fprintf(f, " %-*s", cols[k].width, cell[k]);
		fputc(' ', f);
		put_verdict(o, ch->verdict.kind, cell[C_VERDICT], 0);
		fputc('\n', f);
	}
	int n = snprintf(line, sizeof(line), "   verdict: %s",
			 mft_verdict_label(mv->kind, mv->possible, poss, sizeof(poss)));

	if (mv->kind == MFT_V_PREMATURE)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " (%s)", mft_severity_name(mv->severity));
	if (mv->n_undecided)
		snprintf(line + n, sizeof(line) - (size_t)n, "; %d channel(s) undecided from this side: %s",
			 mv->n_undecided, poss);
	put_wrapped(o, 3, line);
	if (mv->flagged) {
		snprintf(line, sizeof(line),
			 "   %sFLAGGED%s: the shutdown beat the final read on %d of %d multifd channels%s",
			 o->color ? "\033[1;31m" : "", o->color ? "\033[0m" : "", mv->n_counts[MFT_V_PREMATURE],
			 mv->n_multifd, mv->lucky ? "; the migration survived by luck (the error was tolerated)" : "");
		put_wrapped(o, 3, line);
	}
	for (size_t i = 0; i < m->n_chans; i++)
		if (m->chans[i]->verdict.why) {
			snprintf(line, sizeof(line), "   ch %d: %s", m->chans[i]->index, m->chans[i]->verdict.why);
			put_wrapped(o, 9, line);
		}
	fflush(f);
}

static void json_time(FILE *f, const struct mft_output *o, const char *name, uint64_t t)
{
	if (t)
		fprintf(f, ",\"%s\":%" PRIu64, name, real_ns(o, t));
	else
		fprintf(f, ",\"%s\":null", name);
}

static void json_span(FILE *f, const char *name, int64_t ns)
{
	if (ns == MFT_NO_MARGIN)
		fprintf(f, ",\"%s\":null", name);
	else
		fprintf(f, ",\"%s\":%" PRId64, name, ns);
}

static void json_possible(FILE *f, unsigned possible)
{
	bool first = true;

	fputs(",\"possible\":[", f);
	for (int k = 0; k < MFT_V__MAX; k++)
		if (possible & MFT_VBIT(k)) {
			fprintf(f, "%s\"%s\"", first ? "" : ",", mft_vkind_name(k));
			first = false;
		}
	fputc(']', f);
}

static void channel_json(struct mft_output *o, const struct mft_migration *m, const struct mft_chan *ch)
{
	const struct mft_evidence *e = &ch->evidence;
	const struct mft_verdict *v = &ch->verdict;
	char la[64], ra[64], poss[64];
	FILE *f = o->out;

	mft_fmt_addr(la, sizeof(la), ch->family, ch->laddr, ch->lport);
	mft_fmt_addr(ra, sizeof(ra), ch->family, ch->raddr, ch->rport);
	mft_verdict_label(v->kind, v->possible, poss, sizeof(poss));
	fprintf(f,
		"{\"type\":\"channel\",\"migration\":%" PRIu64 ",\"pid\":%u,\"role\":\"%s\",\"channel\":%d,"
		"\"kind\":\"%s\",\"local\":\"%s\",\"peer\":\"%s\",\"local_port\":%u,\"peer_port\":%u,"
		"\"tls\":%s,\"verdict\":",
		m->id, ch->pid, mft_role_name(ch->role), ch->index, mft_kind_name(ch->kind), la, ra, ch->lport,
		ch->rport, e->tls ? "true" : "false");
	mft_json_str(f, poss);
	json_possible(f, v->possible);
	fprintf(f, ",\"decided\":%s,\"severity\":", v->kind >= 0 ? "true" : "false");
	if (v->kind == MFT_V_PREMATURE)
		mft_json_str(f, mft_severity_name(v->severity));
	else
		fputs("null", f);
	fputs(",\"why\":", f);
	mft_json_str(f, v->why ? v->why : "");
	fputs(",\"woken_by\":", f);
	if (v->woken_by)
		mft_json_str(f, v->woken_by);
	else
		fputs("null", f);
	if (v->t_final_read)
		fprintf(f, ",\"final_read\":{\"time_ns\":%" PRIu64 ",\"ret\":%d,\"tid\":%u}",
			real_ns(o, v->t_final_read), v->final_read_ret, v->final_read_tid);
	else
		fputs(",\"final_read\":null", f);
	fprintf(f,
		",\"rx_bytes\":%" PRIu64 ",\"tx_bytes\":%" PRIu64 ",\"reads\":%" PRIu64
		",\"late_reads\":%u,\"tls_record_calls\":%u",
		e->rx_bytes, e->tx_bytes, e->rx_calls, e->late_reads, e->tls_record_calls);
	if (ch->chan_id >= 0)
		fprintf(f, ",\"channel_id\":%d", ch->chan_id);
	else
		fputs(",\"channel_id\":null", f);
	fprintf(f, ",\"syncs\":%u,\"sync_source\":\"%s\"", e->n_sync,
		e->sync_per_channel ? "channel"
		: e->n_sync         ? "migration"
				    : "none");
	json_time(f, o, "last_sync", e->t_last_sync);
	fputs(",\"times\":{\"created\":", f);
	fprintf(f, e->t_created ? "%" PRIu64 : "null", real_ns(o, e->t_created));
	json_time(f, o, "tls_handshake", e->t_tls);
	json_time(f, o, "first_read", e->t_first_read);
	json_time(f, o, "last_read", e->t_last_rx);
	json_time(f, o, "bye", e->t_bye);
	json_time(f, o, "shutdown", e->t_shutdown);
	json_time(f, o, "fin_sent", e->t_fin_sent);
	json_time(f, o, "fin_received", e->t_fin_rcvd);
	json_time(f, o, "rst_received", e->t_rst_rcvd);
	json_time(f, o, "eof_read", e->t_eof);
	json_time(f, o, "close", e->t_close);
	json_time(f, o, "destroyed", e->t_destroy);
	json_time(f, o, "thread_end", e->t_thread_end);
	fputs("},\"margins_ns\":{\"fin_to_final_read\":", f);
	fprintf(f, v->fin_to_final_read == MFT_NO_MARGIN ? "null" : "%" PRId64, v->fin_to_final_read);
	json_span(f, "fin_to_local_shutdown", v->fin_to_local_shutdown);
	json_span(f, "last_read_to_fin", v->last_read_to_fin);
	json_span(f, "bye_to_shutdown", v->bye_to_shutdown);
	json_span(f, "shutdown_to_close", v->shutdown_to_close);
	json_span(f, "peer_shutdown_to_final_read", v->peer_shutdown_to_final_read);
	json_span(f, "last_sync_to_shutdown", v->last_sync_to_shutdown);
	json_span(f, "last_sync_to_fin", v->last_sync_to_fin);
	fputs("}}\n", f);
}

static void migration_json(struct mft_output *o, const struct mft_correlator *c, const struct mft_migration *m)
{
	const struct mft_mig_verdict *mv = &m->verdict;
	const struct mft_process *p = m->proc;
	char poss[64];
	FILE *f = o->out;

	(void)c;
	for (size_t i = 0; i < m->n_chans; i++)
		channel_json(o, m, m->chans[i]);
	fprintf(f, "{\"type\":\"migration\",\"migration\":%" PRIu64 ",\"pid\":%u,\"name\":", m->id, m->pid);
	mft_json_str(f, p ? p->name : "");
	fprintf(f, ",\"role\":\"%s\",\"endpoint\":\"%s\",\"outcome\":", mft_role_name(m->role), m->endpoint);
	mft_json_str(f, m->outcome);
	fputs(",\"verdict\":", f);
	mft_json_str(f, mft_verdict_label(mv->kind, mv->possible, poss, sizeof(poss)));
	json_possible(f, mv->possible);
	fputs(",\"severity\":", f);
	if (mv->kind == MFT_V_PREMATURE)
		mft_json_str(f, mft_severity_name(mv->severity));
	else
		fputs("null", f);
	fprintf(f, ",\"flagged\":%s,\"survived_by_luck\":%s,\"multifd_channels\":%d,\"undecided\":%d,\"counts\":{",
		mv->flagged ? "true" : "false", mv->lucky ? "true" : "false", mv->n_multifd, mv->n_undecided);
	for (int k = 0; k < MFT_V__MAX; k++)
		fprintf(f, "%s\"%s\":%d", k ? "," : "", mft_vkind_name(k), mv->n_counts[k]);
	fputc('}', f);
	json_time(f, o, "first_channel", m->t_first);
	json_time(f, o, "multifd_cleanup", m->t_cleanup);
	fprintf(f, ",\"sync_points\":%u", m->n_sync);
	json_time(f, o, "first_sync", m->t_first_sync);
	json_time(f, o, "last_sync", m->t_last_sync);
	if (m->has_uuid) {
		char u[40];

		mft_fmt_uuid(u, sizeof(u), m->uuid);
		fprintf(f, ",\"uuid\":\"%s\"", u);
	} else {
		fputs(",\"uuid\":null", f);
	}
	fputs("}\n", f);
	fflush(f);
}

void mft_out_migration(void *ctx, const struct mft_correlator *c, const struct mft_migration *m)
{
	struct mft_output *o = ctx;

	if (m->verdict.flagged)
		o->flagged++;
	if (o->json)
		migration_json(o, c, m);
	else
		migration_text(o, c, m);
}

void mft_out_other(void *ctx, const struct mft_correlator *c, const struct mft_migration *m)
{
	struct mft_output *o = ctx;
	const struct mft_process *p = m->proc;
	size_t tls = m->n_pruned_tls, n = m->n_chans + m->n_pruned;
	FILE *f = o->out;

	(void)c;
	if (!o->others)
		return;
	for (size_t i = 0; i < m->n_chans; i++)
		tls += m->chans[i]->evidence.tls;
	if (o->json) {
		fprintf(f, "{\"type\":\"other\",\"pid\":%u,\"name\":", m->pid);
		mft_json_str(f, p ? p->name : "");
		fprintf(f, ",\"role\":\"%s\",\"endpoint\":\"%s\",\"connections\":%zu,\"tls\":%zu}\n",
			mft_role_name(m->role), m->endpoint, n, tls);
	} else {
		char name[sizeof(p->name)] = "";

		if (p)
			mft_sanitize(name, sizeof(name), p->name);
		fprintf(f,
			"-- other connections of pid %u%s%s%s: %s %s %s, %zu connection(s), %zu with TLS: "
			"no migration evidence, not judged\n",
			m->pid, name[0] ? " (" : "", name, name[0] ? ")" : "", mft_role_name(m->role),
			m->role == MFT_ROLE_DEST ? "on" : "to", m->endpoint, n, tls);
	}
	fflush(f);
}
