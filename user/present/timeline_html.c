// SPDX-License-Identifier: GPL-2.0
/*
 * The timeline as one self-contained HTML page: no script, no stylesheet, font or image
 * from anywhere else. Per migration, an inline SVG with a lane per channel end (the
 * source's lane above the destination's when both were traced), the teardown steps as
 * marks, and the race in red: the window from what woke the final read to that read, and
 * an arrow from the source's shutdown() to it.
 *
 * The page stays proportional to the channels whatever their times: the axis step grows
 * with the span (at most a dozen ticks), a group is built with one pass over its lanes,
 * and a recording's timestamps (any 64-bit values) cannot overflow the plot.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"
#include "present/output.h"
#include "store/timeline.h"

#define W 1180      /* svg width */
#define LABEL_W 430 /* lane labels */
#define PLOT_X0 (LABEL_W + 20)
#define PLOT_X1 (W - 30)
#define LANE_H 38
#define TOP 46

static void esc(FILE *f, const char *s)
{
	for (; s && *s; s++)
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
}


struct plot {
	uint64_t t0, t1; /* the window */
	uint64_t zero;   /* times are shown relative to it */
};

static double px(const struct plot *p, uint64_t t)
{
	if (t < p->t0)
		t = p->t0;
	if (t > p->t1)
		t = p->t1;
	return PLOT_X0 + (double)(t - p->t0) * (PLOT_X1 - PLOT_X0) / (double)(p->t1 - p->t0);
}

static void widen(uint64_t *lo, uint64_t *hi, uint64_t t)
{
	if (!t)
		return;
	if (!*lo || t < *lo)
		*lo = t;
	if (t > *hi)
		*hi = t;
}

/* The lanes of one group: the migrations joined by connections traced at both ends. */
struct group {
	size_t *lanes; /* channel indices, in display order */
	size_t n;
	size_t *migs; /* the migrations it holds, in order */
	size_t n_migs;
	bool *lane_in;  /* per channel: a lane of some group already */
	bool *mig_done; /* per migration: in some group already */
	size_t *todo;   /* migrations still to walk (no recursion: a chain can be long) */
	double *ys;     /* per channel: its lane's y */
};

static void add_lane(struct group *g, size_t ci)
{
	if (!g->lane_in[ci]) {
		g->lane_in[ci] = true;
		g->lanes[g->n++] = ci;
	}
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

static void build_group(const struct mft_timeline *tl, struct group *g, size_t first)
{
	size_t n_todo = 0;

	g->n = g->n_migs = 0;
	g->mig_done[first] = true;
	g->todo[n_todo++] = first;
	while (n_todo) {
		size_t mi = g->todo[--n_todo];
		const struct mft_tl_mig *m = &tl->migs[mi];

		g->migs[g->n_migs++] = mi;
		for (size_t k = 0; k < m->n; k++) {
			size_t ci = m->first + k;
			long peer = tl->chans[ci].peer;

			/* the source's view first, then the destination's */
			if (peer >= 0 && tl->chans[peer].ch.role == MFT_ROLE_SOURCE)
				add_lane(g, (size_t)peer);
			add_lane(g, ci);
			if (peer >= 0)
				add_lane(g, (size_t)peer);
			if (peer >= 0 && !g->mig_done[tl->chans[peer].mig]) {
				g->mig_done[tl->chans[peer].mig] = true;
				g->todo[n_todo++] = tl->chans[peer].mig;
			}
		}
	}
	qsort(g->migs, g->n_migs, sizeof(*g->migs), cmp_size);
}

static void lane_label(FILE *f, const struct mft_timeline *tl, const struct mft_tl_chan *tc)
{
	char la[64], ra[64];

	mft_fmt_addr(la, sizeof(la), tc->ch.family, tc->ch.laddr, tc->ch.lport);
	mft_fmt_addr(ra, sizeof(ra), tc->ch.family, tc->ch.raddr, tc->ch.rport);
	fprintf(f, "#%" PRIu64 ".%d %s %s ", tl->migs[tc->mig].m.id, tc->ch.index,
		tc->ch.role == MFT_ROLE_SOURCE ? "src"
		: tc->ch.role == MFT_ROLE_DEST ? "dst"
					       : "?",
		mft_kind_name(tc->ch.kind));
	esc(f, la);
	fputs(tc->ch.role == MFT_ROLE_DEST ? " &#8592; " : " &#8594; ", f);
	esc(f, ra);
}

static void rel(const struct plot *p, uint64_t t, char *buf, size_t len)
{
	char s[32];

	mft_fmt_span((int64_t)(t - p->zero), s, sizeof(s));
	snprintf(buf, len, "%s%s", (int64_t)(t - p->zero) >= 0 ? "+" : "", s);
}

static void mark(FILE *f, const struct plot *p, uint64_t t, double y, const char *shape, const char *cls,
		 const char *what)
{
	char when[40];
	double x = px(p, t);

	if (!t)
		return;
	rel(p, t, when, sizeof(when));
	fprintf(f, "<g class=\"mark %s\"><title>%s at %s</title>", cls, what, when);
	if (!strcmp(shape, "diamond"))
		fprintf(f, "<path d=\"M%.1f %.1f l6 6 l-6 6 l-6 -6 z\"/>", x, y - 6);
	else if (!strcmp(shape, "square"))
		fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\"/>", x - 5, y - 5);
	else if (!strcmp(shape, "tri"))
		fprintf(f, "<path d=\"M%.1f %.1f l8 5 l-8 5 z\"/>", x - 4, y - 5);
	else if (!strcmp(shape, "tick"))
		fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"2.5\" height=\"18\"/>", x - 1.2, y - 9);
	else
		fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\"/>", x, y, !strcmp(shape, "big") ? "7" : "5");
	fputs("</g>", f);
}

/* The tick step: 1, 2 or 5 times a power of ten, the smallest that puts at most 8 steps
 * in span (whatever the span: up to 2^64 ns). */
uint64_t mft_html_axis_step(uint64_t span)
{
	static const uint64_t steps[] = { 1, 2, 5 };

	for (uint64_t mag = 1;; mag *= 10) {
		for (size_t i = 0; i < 3; i++)
			if (steps[i] * mag >= span / 8 + (span % 8 != 0))
				return steps[i] * mag;
		if (mag > UINT64_MAX / 100)
			return UINT64_MAX; /* one step covers any span */
	}
}

static void axis(FILE *f, const struct plot *p, double y_bottom)
{
	uint64_t span = p->t1 - p->t0, step = mft_html_axis_step(span);
	char lab[40];

	/* ticks at multiples of step from zero (zero lies inside [t0, t1]): at most a dozen */
	uint64_t t = p->zero - ((p->zero - p->t0) / step) * step;

	for (int n = 0; n < 12 && t <= p->t1; n++) {
		rel(p, t, lab, sizeof(lab));
		fprintf(f,
			"<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.1f\"/>"
			"<text class=\"tick\" x=\"%.1f\" y=\"%d\">%s</text>",
			px(p, t), px(p, t), TOP - 8, y_bottom, px(p, t), TOP - 14, lab);
		if (p->t1 - t < step)
			break;
		t += step;
	}
}

static void lane(FILE *f, const struct mft_timeline *tl, const struct plot *p, size_t ci, int row, double *ys)
{
	const struct mft_tl_chan *tc = &tl->chans[ci];
	const struct mft_evidence *e = &tc->ch.evidence;
	const struct mft_verdict *v = &tc->ch.verdict;
	double y = TOP + row * LANE_H + LANE_H / 2.0;
	uint64_t start = e->t_created && e->t_created > p->t0 ? e->t_created : p->t0;
	uint64_t end = e->t_destroy ? e->t_destroy : p->t1;
	char vt[96];
	bool race = v->kind == MFT_V_PREMATURE && tc->ch.role != MFT_ROLE_SOURCE;

	ys[ci] = y;
	mft_verdict_str(v, vt, sizeof(vt));
	fprintf(f,
		"<g class=\"lane%s\" data-migration=\"%" PRIu64 "\" data-channel=\"%d\" data-pid=\"%u\" "
		"data-role=\"%s\" data-kind=\"%s\" data-verdict=\"%s\" data-local-port=\"%u\" data-peer-port=\"%u\">",
		race ? " race" : "", tl->migs[tc->mig].m.id, tc->ch.index, tc->ch.pid, mft_role_name(tc->ch.role),
		mft_kind_name(tc->ch.kind), mft_vkind_name(v->kind), tc->ch.lport, tc->ch.rport);
	if (row % 2)
		fprintf(f, "<rect class=\"stripe\" x=\"0\" y=\"%.1f\" width=\"%d\" height=\"%d\"/>", y - LANE_H / 2.0,
			W, LANE_H);
	fprintf(f, "<text class=\"label\" x=\"8\" y=\"%.1f\">", y - 3);
	lane_label(f, tl, tc);
	fprintf(f, "</text><text class=\"verdict v-%s\" x=\"8\" y=\"%.1f\">%s", mft_vkind_name(v->kind), y + 12, vt);
	if (v->woken_by)
		fprintf(f, " &#183; woken by %s", v->woken_by);
	fputs("</text>", f);
	if (end >= p->t0 && start <= p->t1)
		fprintf(f, "<line class=\"life\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", px(p, start),
			px(p, end), y, y);
	if (race) { /* from what woke the final read to that read */
		uint64_t from = v->woken_by && !strcmp(v->woken_by, "local-shutdown") ? e->t_shutdown : e->t_fin_rcvd;

		if (from && v->t_final_read >= from)
			fprintf(f,
				"<rect class=\"race-window\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"18\"><title>the "
				"race: %s, then the final read hit EOF without close_notify</title></rect>",
				px(p, from), y - 9, px(p, v->t_final_read) - px(p, from) + 1,
				v->woken_by ? v->woken_by : "");
	}
	mark(f, p, e->t_bye, y, "diamond", "bye", "gnutls_bye");
	mark(f, p, e->t_shutdown, y, "square", "shutdown", "shutdown()");
	mark(f, p, e->t_fin_sent, y, "tri", "fin-sent", "FIN sent");
	mark(f, p, e->t_fin_rcvd, y, "circle", "fin-received", "FIN received");
	mark(f, p, e->t_rst_rcvd, y, "circle", "rst", "RST received");
	mark(f, p, e->t_close, y, "tick", "close", "close()");
	if (tc->ch.role != MFT_ROLE_SOURCE && v->t_final_read) {
		char what[96];

		snprintf(what, sizeof(what), "final read: %s",
			 v->final_read_ret == 0      ? "close_notify (0)"
			 : v->final_read_ret == -110 ? "EOF, GnuTLS -110"
						     : "error");
		mark(f, p, v->t_final_read, y, "big", race ? "final-read race" : "final-read", what);
	}
	fputs("</g>\n", f);
}

static void group_svg(FILE *f, const struct mft_timeline *tl, const struct group *g)
{
	struct plot p = { 0 };
	uint64_t lo = 0, hi = 0, life_lo = 0, life_hi = 0, margin;
	double *ys = g->ys;
	double h = TOP + (double)g->n * LANE_H + 10;
	struct mft_output o = { .mono_to_real = tl->mono_to_real };
	char when[32];

	for (size_t i = 0; i < g->n; i++) {
		const struct mft_evidence *e = &tl->chans[g->lanes[i]].ch.evidence;

		widen(&lo, &hi, e->t_bye);
		widen(&lo, &hi, e->t_shutdown);
		widen(&lo, &hi, e->t_fin_sent);
		widen(&lo, &hi, e->t_fin_rcvd);
		widen(&lo, &hi, e->t_close);
		widen(&lo, &hi, e->t_eof);
		widen(&lo, &hi, tl->chans[g->lanes[i]].ch.verdict.t_final_read);
		widen(&life_lo, &life_hi, e->t_created);
		widen(&life_lo, &life_hi, e->t_destroy);
	}
	p.zero = lo ? lo : life_lo;
	if (!lo) { /* no teardown seen: the channels' lives */
		lo = life_lo;
		hi = life_hi;
	}
	if (hi - lo < 10000)
		hi = lo <= UINT64_MAX - 10000 ? lo + 10000 : UINT64_MAX;
	if (hi - lo < 10000)
		lo = hi - 10000;
	margin = (hi - lo) / 12;
	p.t0 = lo >= margin ? lo - margin : 0;
	p.t1 = hi <= UINT64_MAX - margin ? hi + margin : UINT64_MAX;
	mft_fmt_clock(&o, p.zero, when, sizeof(when));
	fprintf(f, "<p class=\"axis-note\">Times are relative to the first teardown step, at %s (%s).</p>\n", when,
		tl->hosts[0].label);
	fprintf(f,
		"<svg class=\"timeline\" width=\"%d\" height=\"%.0f\" viewBox=\"0 0 %d %.0f\" role=\"img\">\n"
		"<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" "
		"orient=\"auto-start-reverse\"><path d=\"M0 0 L10 5 L0 10 z\" fill=\"#d11\"/></marker></defs>\n",
		W, h, W, h);
	axis(f, &p, h - 6);
	for (size_t i = 0; i < g->n; i++)
		lane(f, tl, &p, g->lanes[i], (int)i, ys);
	/* the source's shutdown -> the destination's final read */
	for (size_t i = 0; i < g->n; i++) {
		const struct mft_tl_chan *d = &tl->chans[g->lanes[i]], *s;

		if (d->ch.role != MFT_ROLE_DEST || d->peer < 0 || !d->ch.verdict.t_final_read)
			continue;
		s = &tl->chans[d->peer];
		if (!s->ch.evidence.t_shutdown)
			continue;
		fprintf(f,
			"<line class=\"flow%s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" marker-end=\"url(#arrow)\">"
			"<title>source shutdown() -&gt; destination final read</title></line>\n",
			d->ch.verdict.kind == MFT_V_PREMATURE ? " race" : "", px(&p, s->ch.evidence.t_shutdown),
			ys[d->peer] + 5, px(&p, d->ch.verdict.t_final_read), ys[g->lanes[i]] - 7);
	}
	fputs("</svg>\n", f);
}

static void mig_summary(FILE *f, const struct mft_timeline *tl, const struct mft_tl_mig *m)
{
	const struct mft_mig_verdict *mv = &m->m.verdict;
	char label[64];

	mft_verdict_label(mv->kind, mv->possible, label, sizeof(label));
	fprintf(f,
		"<p class=\"mig\" data-migration=\"%" PRIu64 "\" data-verdict=\"%s\" data-flagged=\"%s\">"
		"<b>migration #%" PRIu64 "</b>: %s pid %u (",
		m->m.id, label, mv->flagged ? "true" : "false", m->m.id, m->host >= 0 ? tl->hosts[m->host].label : "?",
		m->m.pid);
	esc(f, m->name);
	fprintf(f, "), %s %s ", mft_role_name(m->m.role), m->m.role == MFT_ROLE_DEST ? "listening on" : "connected to");
	esc(f, m->m.endpoint);
	fputs(", outcome <b>", f);
	esc(f, m->m.outcome);
	fprintf(f, "</b>, verdict <b class=\"v-%s\">%s</b>", mft_vkind_name(mv->kind), label);
	if (mv->kind == MFT_V_PREMATURE)
		fprintf(f, " (%s)", mft_severity_name(mv->severity));
	if (mv->flagged)
		fprintf(f,
			" <span class=\"flagged\">FLAGGED: the shutdown beat the final read on %d of %d multifd channels%s</span>",
			mv->n_counts[MFT_V_PREMATURE], mv->n_multifd, mv->lucky ? "; survived by luck" : "");
	fputs("</p>\n", f);
}

/* A table cell for each text, escaped */
static void cells(FILE *f, const char *const *texts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		fputs("<td>", f);
		esc(f, texts[i]);
		fputs("</td>", f);
	}
}

static void recordings(FILE *f, const struct mft_timeline *tl)
{
	fputs("<table class=\"recs\"><tr><th>recording</th><th>host</th><th>kernel</th><th>traced</th><th>events</th>"
	      "<th>lost</th><th>end of file</th><th>clock</th></tr>\n",
	      f);
	for (int i = 0; i < tl->n_hosts; i++) {
		const struct mft_tl_host *h = &tl->hosts[i];
		const struct mft_recording *r = &h->rec;
		const struct mft_rec_counters *c = &r->counters;

		fputs("<tr>", f);
		cells(f, (const char *const[]){ h->path, h->label, r->host.kernel }, 3);
		fputs("<td>", f);
		for (size_t k = 0; k < r->n_targets; k++) {
			fprintf(f, "%spid %u ", k ? "<br>" : "", r->targets[k].pid);
			esc(f, r->targets[k].name);
			fputs(" QEMU ", f);
			esc(f, r->targets[k].qemu_version[0] ? r->targets[k].qemu_version : "?");
			fputs(", GnuTLS ", f);
			esc(f, r->targets[k].gnutls_version[0] ? r->targets[k].gnutls_version : "none");
		}
		fprintf(f,
			"</td><td>%zu%s</td><td>%" PRIu64 " ring buffer, %" PRIu64 " untracked sockets, %" PRIu64
			" overwritten, %" PRIu64 " unwritten, %" PRIu64 " damaged records</td><td>",
			r->n_events, r->host.tls_records ? " (--tls-records)" : "", c->rb_dropped, c->sockmap_full,
			c->events_overwritten, c->events_unwritten, r->corrupt_regions + r->bad_records);
		esc(f, r->stopped);
		for (int k = 0; k < r->n_problems; k++) {
			fputs("<br>", f);
			esc(f, r->problems[k]);
		}
		fputs("</td><td>", f);
		esc(f, h->align.text);
		fputs("</td></tr>\n", f);
	}
	fputs("</table>\n", f);
	for (int i = 0; i < tl->n_notes; i++) {
		fputs("<p class=\"note\">", f);
		esc(f, tl->notes[i]);
		fputs("</p>\n", f);
	}
}

static const char style[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222;background:#fff}"
	"h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
	"table.recs{border-collapse:collapse;font-size:12px}table.recs td,table.recs th{border:1px solid #ccc;"
	"padding:3px 6px;vertical-align:top;text-align:left}"
	".flagged,.v-premature{color:#c00;font-weight:bold}.v-clean{color:#080}.v-unread{color:#777}"
	".v-reset{color:#a50}.v-incomplete{color:#888;font-style:italic}"
	"svg.timeline{font:11px ui-monospace,monospace;border:1px solid #ddd;background:#fff}"
	".stripe{fill:#f6f7f9}.label{fill:#222}.verdict{font-weight:bold}"
	"text.v-premature{fill:#c00}text.v-clean{fill:#080}text.v-unread{fill:#777}text.v-reset{fill:#a50}"
	"text.v-incomplete,text.v-undecided{fill:#888}"
	".grid{stroke:#e4e4e4}.tick{fill:#666;text-anchor:middle}"
	".life{stroke:#9aa;stroke-width:3}"
	".bye{fill:#1a8f3a}.shutdown{fill:#e08a00}.fin-sent{fill:#555}.fin-received{fill:#1f6fd1}"
	".rst{fill:#a50}.close{fill:#222}.final-read{fill:#1a8f3a;stroke:#fff}.final-read.race{fill:#d11}"
	".race-window{fill:#d11;opacity:.28}.flow{stroke:#888;stroke-width:1.2;stroke-dasharray:3 2}"
	".flow.race{stroke:#d11;stroke-width:2;stroke-dasharray:none}"
	".legend span{margin-right:14px}.note{color:#555}";

int mft_tl_html(const struct mft_timeline *tl, FILE *f)
{
	size_t nm = tl->n_migs ? tl->n_migs : 1, nc = tl->n_chans ? tl->n_chans : 1;
	struct group g = {
		.lanes = calloc(nc, sizeof(size_t)),
		.lane_in = calloc(nc, sizeof(bool)),
		.ys = calloc(nc, sizeof(double)),
		.migs = calloc(nm, sizeof(size_t)),
		.mig_done = calloc(nm, sizeof(bool)),
		.todo = calloc(nm, sizeof(size_t)),
	};
	int rc = -1;

	if (!g.lanes || !g.lane_in || !g.ys || !g.migs || !g.mig_done || !g.todo)
		goto out;
	fprintf(f,
		"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
		"<title>mftrace report</title><style>%s</style></head><body>\n"
		"<h1>mftrace: who closed first on each multifd channel, and what the last read saw</h1>\n",
		style);
	recordings(f, tl);
	fputs("<p class=\"legend\"><span style=\"color:#1a8f3a\">&#9670; gnutls_bye</span>"
	      "<span style=\"color:#e08a00\">&#9632; shutdown()</span><span style=\"color:#555\">&#9654; FIN sent</span>"
	      "<span style=\"color:#1f6fd1\">&#9679; FIN received</span><span>&#9646; close()</span>"
	      "<span style=\"color:#1a8f3a\">&#11044; final read</span>"
	      "<span style=\"color:#d11\">&#11044; final read that lost the race, and its window</span>"
	      "<span style=\"color:#d11\">&#10230; source shutdown to destination final read</span></p>\n",
	      f);
	if (!tl->n_migs)
		fputs("<p>No migration with multifd channels in these recordings.</p>\n", f);
	for (size_t i = 0; i < tl->n_migs; i++) {
		if (g.mig_done[i])
			continue;
		build_group(tl, &g, i);
		fputs("<section class=\"group\">\n<h2>", f);
		for (size_t k = 0; k < g.n_migs; k++) /* the migrations this group holds */
			fprintf(f, "%smigration #%" PRIu64 " (%s)", k ? ", " : "", tl->migs[g.migs[k]].m.id,
				mft_role_name(tl->migs[g.migs[k]].m.role));
		fputs("</h2>\n", f);
		for (size_t k = 0; k < g.n_migs; k++)
			mig_summary(f, tl, &tl->migs[g.migs[k]]);
		group_svg(f, tl, &g);
		fputs("</section>\n", f);
	}
	fputs("</body></html>\n", f);
	rc = ferror(f) ? -1 : 0;
out:
	free(g.lanes);
	free(g.lane_in);
	free(g.ys);
	free(g.migs);
	free(g.mig_done);
	free(g.todo);
	return rc;
}
