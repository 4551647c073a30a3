// SPDX-License-Identifier: GPL-2.0
/*
 * The timeline as Chrome Trace Event JSON (ui.perfetto.dev and chrome://tracing open it):
 * a process per traced QEMU (host and pid), a thread track per channel end, its life as
 * one slice with the channel's boundaries as instants, and a flow arrow from the source's
 * shutdown() to the destination's final read on every connection traced at both ends.
 * Timestamps are microseconds since the first event, so that nanoseconds survive.
 * The output is a fixed number of records per channel and per process, whatever the span.
 */
#include <inttypes.h>
#include <string.h>
#include "base/util.h"
#include "present/output.h"
#include "store/timeline.h"

struct chrome {
	FILE *f;
	const struct mft_timeline *tl;
	bool first;
};

static void sep(struct chrome *c)
{
	fputs(c->first ? "\n" : ",\n", c->f);
	c->first = false;
}

static double us(const struct chrome *c, uint64_t t)
{
	return (double)((int64_t)t - (int64_t)c->tl->t_first) / 1e3;
}

static int tid_of(const struct mft_timeline *tl, const struct mft_tl_chan *tc)
{
	return (int)(tl->migs[tc->mig].m.id * 1000 + (uint64_t)tc->ch.index + 1);
}

static void chan_name(const struct mft_tl_chan *tc, uint64_t mig_id, char *buf, size_t len)
{
	char la[64], ra[64], vt[96];

	mft_fmt_addr(la, sizeof(la), tc->ch.family, tc->ch.laddr, tc->ch.lport);
	mft_fmt_addr(ra, sizeof(ra), tc->ch.family, tc->ch.raddr, tc->ch.rport);
	mft_verdict_str(&tc->ch.verdict, vt, sizeof(vt));
	snprintf(buf, len, "#%" PRIu64 ".%d %s %s %s %s: %s", mig_id, tc->ch.index, mft_kind_name(tc->ch.kind), la,
		 tc->ch.role == MFT_ROLE_DEST ? "<-" : "->", ra, vt);
}

static void meta(struct chrome *c, const char *what, uint32_t pid, int tid, const char *key, const char *val)
{
	sep(c);
	fprintf(c->f, "{\"ph\":\"M\",\"name\":\"%s\",\"pid\":%u,\"tid\":%d,\"args\":{\"%s\":", what, pid, tid, key);
	mft_json_str(c->f, val);
	fputs("}}", c->f);
}

static void instant(struct chrome *c, uint32_t pid, int tid, uint64_t t, const char *name)
{
	if (!t)
		return;
	sep(c);
	fprintf(c->f,
		"{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"boundary\",\"name\":\"%s\",\"pid\":%u,\"tid\":%d,"
		"\"ts\":%.3f}",
		name, pid, tid, us(c, t));
}

/* A short slice: a flow binds to the slice that encloses its timestamp (Perfetto), or to
 * the event of the same category, pid, tid and timestamp (Chrome DevTools): both hold. */
static void mark(struct chrome *c, uint32_t pid, int tid, uint64_t t, const char *name, const char *cat)
{
	sep(c);
	fprintf(c->f, "{\"ph\":\"X\",\"cat\":\"%s\",\"name\":", cat);
	mft_json_str(c->f, name);
	fprintf(c->f, ",\"pid\":%u,\"tid\":%d,\"ts\":%.3f,\"dur\":0.001}", pid, tid, us(c, t));
}

static void margin_arg(FILE *f, const char *name, int64_t ns)
{
	if (ns != MFT_NO_MARGIN)
		fprintf(f, ",\"%s_ns\":%" PRId64, name, ns);
}

static void channel(struct chrome *c, const struct mft_tl_chan *tc)
{
	const struct mft_timeline *tl = c->tl;
	const struct mft_evidence *e = &tc->ch.evidence;
	const struct mft_verdict *v = &tc->ch.verdict;
	uint32_t pid = tc->ch.pid;
	int tid = tid_of(tl, tc);
	uint64_t start = e->t_created ? e->t_created : tl->t_first;
	uint64_t end = e->t_destroy ? e->t_destroy : e->t_close ? e->t_close : tl->t_end;
	char name[256], vt[96];

	chan_name(tc, tl->migs[tc->mig].m.id, name, sizeof(name));
	meta(c, "thread_name", pid, tid, "name", name);
	sep(c);
	fprintf(c->f,
		"{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":%u,\"tid\":%d,\"args\":{\"sort_index\":%d}}", pid,
		tid, tid);
	mft_verdict_str(v, vt, sizeof(vt));
	sep(c);
	fprintf(c->f, "{\"ph\":\"X\",\"cat\":\"channel\",\"name\":");
	mft_json_str(c->f, vt);
	fprintf(c->f, ",\"pid\":%u,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"verdict\":", pid, tid, us(c, start),
		end > start ? (double)(end - start) / 1e3 : 0.001);
	mft_json_str(c->f, vt);
	fputs(",\"why\":", c->f);
	mft_json_str(c->f, v->why ? v->why : "");
	fputs(",\"woken_by\":", c->f);
	mft_json_str(c->f, v->woken_by ? v->woken_by : "");
	fprintf(c->f, ",\"role\":\"%s\",\"kind\":\"%s\",\"host\":", mft_role_name(tc->ch.role),
		mft_kind_name(tc->ch.kind));
	mft_json_str(c->f, tc->host >= 0 ? tl->hosts[tc->host].label : "");
	fprintf(c->f, ",\"rx_bytes\":%" PRIu64 ",\"tx_bytes\":%" PRIu64, e->rx_bytes, e->tx_bytes);
	margin_arg(c->f, "fin_to_final_read", v->fin_to_final_read);
	margin_arg(c->f, "fin_to_local_shutdown", v->fin_to_local_shutdown);
	margin_arg(c->f, "peer_shutdown_to_final_read", v->peer_shutdown_to_final_read);
	margin_arg(c->f, "bye_to_shutdown", v->bye_to_shutdown);
	fputs("}}", c->f);
	instant(c, pid, tid, e->t_established, "established");
	instant(c, pid, tid, e->t_tls, "tls-handshake");
	instant(c, pid, tid, e->t_bye, "tls-bye");
	instant(c, pid, tid, e->t_fin_sent, "fin-sent");
	instant(c, pid, tid, e->t_fin_rcvd, "fin-received");
	instant(c, pid, tid, e->t_rst_rcvd, "rst-received");
	instant(c, pid, tid, e->t_eof, "read-eof");
	instant(c, pid, tid, e->t_close, "close");
	if (e->t_shutdown)
		mark(c, pid, tid, e->t_shutdown, "shutdown", "teardown");
	if (tc->ch.role != MFT_ROLE_SOURCE && v->t_final_read) {
		char fr[64];

		snprintf(fr, sizeof(fr), "final read (%s)",
			 v->final_read_ret == 0      ? "0: close_notify"
			 : v->final_read_ret == -110 ? "-110: premature"
						     : "error");
		mark(c, pid, tid, v->t_final_read, fr, "teardown");
	}
}

int mft_tl_chrome(const struct mft_timeline *tl, FILE *f)
{
	struct chrome c = { f, tl, true };
	struct mft_index named = { 0 }; /* pids whose process is named already */
	uint64_t flow = 0;

	fprintf(f,
		"{\"displayTimeUnit\":\"ns\",\"otherData\":{\"tool\":\"mftrace report\",\"t0_realtime_ns\":%" PRId64
		",\"hosts\":[",
		(int64_t)tl->t_first + tl->mono_to_real);
	for (int i = 0; i < tl->n_hosts; i++) {
		fputs(i ? "," : "", f);
		fputs("{\"label\":", f);
		mft_json_str(f, tl->hosts[i].label);
		fputs(",\"file\":", f);
		mft_json_str(f, tl->hosts[i].path);
		fprintf(f, ",\"clock_offset_ns\":%" PRId64 ",\"alignment\":", tl->hosts[i].align.offset);
		mft_json_str(f, tl->hosts[i].align.text);
		fputc('}', f);
	}
	fputs("]},\"traceEvents\":[", f);
	for (size_t i = 0; i < tl->n_migs; i++) {
		const struct mft_tl_mig *m = &tl->migs[i];
		bool seen = mft_index_find(&named, m->m.pid, NULL, NULL) != SIZE_MAX;
		char pname[256];

		if (!seen && mft_index_set(&named, m->m.pid, i, NULL, NULL)) {
			mft_index_free(&named);
			return -1;
		}
		if (!seen) {
			snprintf(pname, sizeof(pname), "%s: pid %u %s (%s)",
				 m->host >= 0 ? tl->hosts[m->host].label : "?", m->m.pid, m->name,
				 mft_role_name(m->m.role));
			meta(&c, "process_name", m->m.pid, 0, "name", pname);
			sep(&c);
			fprintf(f,
				"{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":%u,\"tid\":0,\"args\":{\"sort_index\":%d}}",
				m->m.pid, m->m.role == MFT_ROLE_SOURCE ? 0 : 1);
		}
		snprintf(pname, sizeof(pname), "migration #%" PRIu64, m->m.id);
		meta(&c, "thread_name", m->m.pid, (int)(m->m.id * 1000), "name", pname);
		sep(&c);
		/* the outcome can be a state name read from the target: escaped like every string */
		snprintf(pname, sizeof(pname), "%s %s%s", m->m.outcome, mft_vkind_name(m->m.verdict.kind),
			 m->m.verdict.flagged ? " FLAGGED" : "");
		fputs("{\"ph\":\"X\",\"cat\":\"migration\",\"name\":", f);
		mft_json_str(f, pname);
		fprintf(f, ",\"pid\":%u,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f}", m->m.pid, (int)(m->m.id * 1000),
			us(&c, m->m.t_first),
			m->m.t_last_end > m->m.t_first ? (double)(m->m.t_last_end - m->m.t_first) / 1e3 : 0.001);
		for (size_t k = 0; k < m->n; k++)
			channel(&c, &tl->chans[m->first + k]);
	}
	/* the race, as arrows: the source's shutdown -> the destination's final read */
	for (size_t i = 0; i < tl->n_chans; i++) {
		const struct mft_tl_chan *d = &tl->chans[i], *s;

		if (d->ch.role != MFT_ROLE_DEST || d->peer < 0 || !d->ch.verdict.t_final_read)
			continue;
		s = &tl->chans[d->peer];
		if (!s->ch.evidence.t_shutdown)
			continue;
		flow++;
		sep(&c);
		fprintf(f,
			"{\"ph\":\"s\",\"id\":%" PRIu64
			",\"cat\":\"teardown\",\"name\":\"shutdown -> final read\",\"pid\":%u,"
			"\"tid\":%d,\"ts\":%.3f}",
			flow, s->ch.pid, tid_of(tl, s), us(&c, s->ch.evidence.t_shutdown));
		sep(&c);
		fprintf(f,
			"{\"ph\":\"f\",\"bp\":\"e\",\"id\":%" PRIu64
			",\"cat\":\"teardown\",\"name\":\"shutdown -> final read\","
			"\"pid\":%u,\"tid\":%d,\"ts\":%.3f}",
			flow, d->ch.pid, tid_of(tl, d), us(&c, d->ch.verdict.t_final_read));
	}
	fputs("\n]}\n", f);
	mft_index_free(&named);
	return ferror(f) ? -1 : 0;
}
