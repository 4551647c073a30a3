// SPDX-License-Identifier: GPL-2.0
/*
 * Timeline: recordings of one or more hosts on one clock, replayed through the correlator.
 * See timeline.h for the clock alignment argument.
 *
 * A recording is input from elsewhere: every lookup here goes through a hash index (or a
 * sorted array), so the work stays near linear in the events whatever a file holds.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"
#include "correlate/multifd_wire.h"
#include "correlate/pairing.h"
#include "store/timeline.h"

#define PID_SPACE 4194304u /* PID_MAX_LIMIT: remapped pids start above it */
#define MAX_CANDIDATES 64  /* connections of one 4-tuple looked at when pairing (port reuse) */

void mft_tl_init(struct mft_timeline *tl)
{
	memset(tl, 0, sizeof(*tl));
	tl->keep = true;
}

/* A pid the host knows, in the order it first appears (mft_tl_host_of, pid collisions). */
static void host_pid(struct mft_tl_host *h, uint32_t pid)
{
	if (mft_index_find(&h->pids, pid, NULL, NULL) != SIZE_MAX)
		return;
	if (mft_index_set(&h->pids, pid, h->n_pid_order, NULL, NULL))
		return; /* out of memory: that pid is unknown */
	h->pid_order = mft_grow(h->pid_order, &h->cap_pid_order, h->n_pid_order + 1, sizeof(*h->pid_order));
	h->pid_order[h->n_pid_order++] = pid;
}

/* ------------------------------------------------------------------ event sources */

/* A host's events in file order: from memory, or read from its file again. */
struct tl_src {
	const struct mft_event *evs;
	size_t n, k;
	struct mft_rec_iter *it;
	struct mft_recording scratch; /* the metadata the second read finds (dropped) */
};

static void src_mem(struct tl_src *s, const struct mft_recording *r)
{
	memset(s, 0, sizeof(*s));
	s->evs = r->events;
	s->n = r->events ? r->n_events : 0;
}

static void src_host(struct tl_src *s, const struct mft_tl_host *h)
{
	src_mem(s, &h->rec);
	if (h->streamed)
		s->it = mft_rec_open(h->path, &s->scratch);
}

/* The source's next event, in place (valid until the next call); NULL at its end. */
static const struct mft_event *src_next(struct tl_src *s)
{
	const struct mft_event *ev;

	if (s->it)
		return mft_rec_next_ref(s->it, &ev) == 1 ? ev : NULL;
	if (s->k == s->n)
		return NULL;
	return &s->evs[s->k++];
}

static void src_close(struct tl_src *s)
{
	mft_rec_close(s->it);
	mft_rec_free(&s->scratch);
	s->it = NULL;
}

static void note(struct mft_timeline *tl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct mft_timeline *tl, const char *fmt, ...)
{
	va_list ap;

	if (tl->n_notes == (int)(sizeof(tl->notes) / sizeof(tl->notes[0])))
		return;
	va_start(ap, fmt);
	vsnprintf(tl->notes[tl->n_notes++], sizeof(tl->notes[0]), fmt, ap);
	va_end(ap);
}

int mft_tl_add(struct mft_timeline *tl, const char *path, struct mft_recording *rec)
{
	struct mft_tl_host *h;
	int same = 0;

	if (tl->n_hosts == MFT_TL_MAX_HOSTS)
		return -1;
	h = &tl->hosts[tl->n_hosts++];
	memset(h, 0, sizeof(*h));
	snprintf(h->path, sizeof(h->path), "%s", path);
	h->rec = *rec;
	memset(rec, 0, sizeof(*rec));
	/* the pids it knows, targets first (mft_tl_host_of, pid collisions between hosts) */
	for (size_t k = 0; k < h->rec.n_targets; k++)
		host_pid(h, h->rec.targets[k].pid);
	for (size_t k = 0; h->rec.events && k < h->rec.n_events; k++) {
		host_pid(h, h->rec.events[k].pid);
		h->has_dst |= h->rec.events[k].type == MFT_EV_SOCK_ACCEPT;
	}
	for (int i = 0; i < tl->n_hosts - 1; i++) /* two hosts of one name (one host, twice, is one label) */
		if (!strcmp(tl->hosts[i].rec.host.hostname, h->rec.host.hostname) &&
		    strcmp(tl->hosts[i].rec.host.boot_id, h->rec.host.boot_id))
			same++;
	{
		char name[64];

		snprintf(name, sizeof(name), "%s", h->rec.host.hostname[0] ? h->rec.host.hostname : "unknown-host");
		snprintf(h->label, sizeof(h->label), "%s", name);
	}
	if (same)
		snprintf(h->label + strlen(h->label), sizeof(h->label) - strlen(h->label), "#%d", same + 1);
	return 0;
}

int mft_tl_add_file(struct mft_timeline *tl, const char *path, struct mft_recording *rec)
{
	struct mft_rec_iter *it = mft_rec_open(path, rec);
	struct mft_tl_host *h;
	const struct mft_event *ev;
	uint32_t *pids = NULL, last_pid = 0;
	size_t n = 0, cap = 0;
	bool dst = false;
	struct mft_index seen = { 0 };

	if (!it)
		return -1;
	/* the first read: metadata, counts, and the pids in order; no event is kept, and
	 * nothing of one but its time, pid and type is decoded */
	mft_rec_skim(it);
	while (mft_rec_next_ref(it, &ev)) {
		dst |= ev->type == MFT_EV_SOCK_ACCEPT;
		if (ev->pid == last_pid && n)
			continue; /* most events are of the process before */
		last_pid = ev->pid;
		if (mft_index_find(&seen, ev->pid, NULL, NULL) == SIZE_MAX &&
		    !mft_index_set(&seen, ev->pid, n, NULL, NULL)) {
			pids = mft_grow(pids, &cap, n + 1, sizeof(*pids));
			pids[n++] = ev->pid;
		}
	}
	mft_rec_close(it);
	mft_index_free(&seen);
	if (mft_tl_add(tl, path, rec)) {
		free(pids);
		return -2;
	}
	h = &tl->hosts[tl->n_hosts - 1];
	h->streamed = true;
	h->has_dst = dst;
	for (size_t k = 0; k < n; k++)
		host_pid(h, pids[k]);
	free(pids);
	return 0;
}

void mft_tl_free(struct mft_timeline *tl)
{
	for (int i = 0; i < tl->n_hosts; i++) {
		mft_rec_free(&tl->hosts[i].rec);
		mft_index_free(&tl->hosts[i].pids);
		free(tl->hosts[i].pid_order);
	}
	free(tl->migs);
	free(tl->chans);
	tl->migs = NULL;
	tl->chans = NULL;
	tl->n_hosts = 0;
}

/* ------------------------------------------------------------------ clock alignment */

/* One socket's life as its recording shows it: addresses and the first time of each event. */
struct sockview {
	uint32_t pid;
	uint64_t sk;
	int role, family;
	uint8_t la[16], ra[16];
	uint16_t lp, rp;
	uint64_t t[MFT_EV__MAX];
	int shut_how;
	bool has_uuid; /* the migration UUID and channel id from MultiFDInit_t */
	uint8_t uuid[16];
	int chan_id;
};

struct sv_key {
	const struct sockview *v;
	const struct mft_event *e;
};

static bool sv_is(const void *ctx, size_t pos)
{
	const struct sv_key *k = ctx;

	return k->v[pos].pid == k->e->pid && k->v[pos].sk == k->e->sk;
}

static struct sockview *sockviews(struct tl_src *src, size_t *n_out)
{
	struct sockview *v = NULL;
	struct mft_index ix = { 0 }; /* (pid, sk) -> its latest view */
	size_t n = 0, cap = 0;
	const struct mft_event *e;

	while ((e = src_next(src))) {
		struct sockview *s = NULL;
		struct sv_key k = { v, e };
		uint64_t h = mft_hash64(e->sk ^ mft_hash64(e->pid));
		size_t at;

		if (!e->sk || e->type == MFT_EV_MIG_STATE || e->type >= MFT_EV__MAX || e->type == 0)
			continue;
		at = mft_index_find(&ix, h, sv_is, &k);
		if (at != SIZE_MAX)
			s = &v[at];
		if (s && s->t[MFT_EV_DESTROY] && (e->type == MFT_EV_SOCK_CONNECT || e->type == MFT_EV_SOCK_ACCEPT))
			s = NULL; /* the address was reused */
		if (!s) {
			if (n == cap) {
				struct sockview *nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));

				if (!nv)
					break;
				v = nv;
				k.v = v;
			}
			s = &v[n++];
			memset(s, 0, sizeof(*s));
			s->pid = e->pid;
			s->sk = e->sk;
			s->role = e->role;
			s->chan_id = -1;
			if (mft_index_set(&ix, h, n - 1, sv_is, &k)) {
				n--;
				break;
			}
		}
		if (e->type == MFT_EV_SOCK_CONNECT)
			s->role = MFT_ROLE_SOURCE;
		else if (e->type == MFT_EV_SOCK_ACCEPT)
			s->role = MFT_ROLE_DEST;
		if (e->family) {
			s->family = e->family;
			if (e->lport) {
				s->lp = e->lport;
				memcpy(s->la, e->laddr, 16);
			}
			if (e->rport) {
				s->rp = e->rport;
				memcpy(s->ra, e->raddr, 16);
			}
		}
		if (e->type == MFT_EV_CHAN_INIT) {
			bool has_uuid;
			int id;
			uint8_t uuid[16];

			if (mft_chan_init_of_event(e, &id, uuid, &has_uuid) == MFT_WIRE_OK) {
				s->chan_id = id;
				if (has_uuid) {
					s->has_uuid = true;
					memcpy(s->uuid, uuid, 16);
				}
			}
		}
		if (!s->t[e->type]) {
			s->t[e->type] = e->ts_ns;
			if (e->type == MFT_EV_SHUTDOWN)
				s->shut_how = (int)e->ret;
		}
	}
	mft_index_free(&ix);
	*n_out = n;
	return v;
}

/*
 * A hash of the connection a 4-tuple names, as its own end sees it (swap the ends for
 * the peer's view), over the addresses as the pairing rule compares them (normalised:
 * an IPv4-mapped address is its IPv4 one). Equal hashes are candidates only: the rule
 * itself (mirrored(), mft_same_connection()) decides.
 */
static uint64_t tuple_hash(int family, const uint8_t *la, uint16_t lp, const uint8_t *ra, uint16_t rp)
{
	uint8_t l[16], r[16];
	uint64_t h;

	memcpy(l, la, 16);
	memcpy(r, ra, 16);
	mft_addr_normalize(&family, l, r);
	h = mft_hash_bytes(l, 16, (uint64_t)family << 32 | (uint64_t)lp << 16 | rp);
	return mft_hash_bytes(r, 16, h);
}

struct by_tuple {
	uint64_t h, t;
	size_t i;
};

static int cmp_tuple(const void *a, const void *b)
{
	const struct by_tuple *x = a, *y = b;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->t < y->t ? -1 : x->t > y->t;
}

/* The same TCP connection seen from both ends: the correlator's one rule (pairing.h). */
static bool mirrored(const struct sockview *a, const struct sockview *b)
{
	struct mft_end x = { a->family, a->la, a->ra, a->lp, a->rp, a->chan_id, a->has_uuid ? a->uuid : NULL };
	struct mft_end y = { b->family, b->la, b->ra, b->lp, b->rp, b->chan_id, b->has_uuid ? b->uuid : NULL };

	return mft_same_connection(&x, &y);
}

static uint64_t first_time(const struct sockview *s)
{
	uint64_t t = 0;

	for (int k = 1; k < MFT_EV__MAX; k++)
		if (s->t[k] && (!t || s->t[k] < t))
			t = s->t[k];
	return t;
}

struct bounds {
	struct mft_tl_align *a;
	const struct sockview *x, *y;
};

static void describe(char *buf, size_t len, const struct sockview *s, const char *what)
{
	char addr[64];

	mft_fmt_addr(addr, len < sizeof(addr) ? len : sizeof(addr), s->family, s->la, s->lp);
	snprintf(buf, len, "%s on %s (pid %u)", what, addr, s->pid);
}

/*
 * One order of cause and effect between event ex on the reference host (x) and event ey
 * on the other (y). x_first: ex happened before ey, so offset > tx - ty (a lower bound);
 * else ey happened before ex, so offset < tx - ty (an upper bound). The tightest is kept,
 * with the two events that set it.
 */
static void bound(struct bounds *b, bool x_first, int ex, const char *wx, int ey, const char *wy)
{
	uint64_t tx = b->x->t[ex], ty = b->y->t[ey];
	bool *have = x_first ? &b->a->have_lo : &b->a->have_hi;
	int64_t d, *v = x_first ? &b->a->lo : &b->a->hi;
	char dx[96], dy[96], *why = x_first ? b->a->lo_why : b->a->hi_why;

	if (!tx || !ty)
		return;
	d = (int64_t)(tx - ty);
	b->a->n_constraints++;
	if (*have && (x_first ? d <= *v : d >= *v))
		return;
	*have = true;
	*v = d;
	describe(dx, sizeof(dx), b->x, wx);
	describe(dy, sizeof(dy), b->y, wy);
	snprintf(why, sizeof(b->a->lo_why), "%.95s before %.95s", x_first ? dx : dy, x_first ? dy : dx);
}

static void before_xy(struct bounds *b, int ex, const char *wx, int ey, const char *wy)
{
	bound(b, true, ex, wx, ey, wy);
}

/* Event ey on the other host happened before event ex on the reference. */
static void before_yx(struct bounds *b, int ey, const char *wy, int ex, const char *wx)
{
	bound(b, false, ex, wx, ey, wy);
}

/* What one TCP connection, seen from both ends, says about the offset. */
static void connection_bounds(struct mft_tl_align *a, const struct sockview *x, const struct sockview *y)
{
	struct bounds b = { a, x, y };

	/* a FIN is received after it was sent: the state change (and shutdown()) come before
	 * the FIN leaves, the receiver's state change after it arrived */
	before_xy(&b, MFT_EV_FIN_SENT, "FIN sent", MFT_EV_FIN_RCVD, "FIN received");
	before_yx(&b, MFT_EV_FIN_SENT, "FIN sent", MFT_EV_FIN_RCVD, "FIN received");
	if (x->shut_how >= 1)
		before_xy(&b, MFT_EV_SHUTDOWN, "shutdown()", MFT_EV_FIN_RCVD, "FIN received");
	if (y->shut_how >= 1)
		before_yx(&b, MFT_EV_SHUTDOWN, "shutdown()", MFT_EV_FIN_RCVD, "FIN received");
	/* not an RST: tcp_send_reset fires after the transmit, and on loopback the peer can
	 * process the RST before that (observed: received 54 us "before" it was sent) */
	/* the client is ESTABLISHED (and sends the last ACK) before accept() returns; the server
	 * can write only after accept(), so the client's first data comes after it */
	if (x->role == MFT_ROLE_SOURCE && y->role == MFT_ROLE_DEST) {
		before_xy(&b, MFT_EV_ESTABLISHED, "established", MFT_EV_SOCK_ACCEPT, "accept");
		before_yx(&b, MFT_EV_SOCK_ACCEPT, "accept", MFT_EV_FIRST_READ, "first data read");
	} else if (x->role == MFT_ROLE_DEST && y->role == MFT_ROLE_SOURCE) {
		before_yx(&b, MFT_EV_ESTABLISHED, "established", MFT_EV_SOCK_ACCEPT, "accept");
		before_xy(&b, MFT_EV_SOCK_ACCEPT, "accept", MFT_EV_FIRST_READ, "first data read");
	}
}

static bool clock_offset(const struct mft_recording *r, int64_t *off)
{
	if (!r->n_clocks)
		return false;
	*off = r->clocks[0].real_ns - (int64_t)r->clocks[0].mono_ns;
	return true;
}

static void span(int64_t ns, char *buf, size_t len)
{
	mft_fmt_span(ns, buf, len);
	if (ns >= 0 && len > 1 && buf[0] != '-') { /* "+1.2us" */
		memmove(buf + 1, buf, strnlen(buf, len - 2) + 1);
		buf[0] = '+';
	}
}

static void align_pair(const struct mft_recording *ref, struct tl_src *sx, const struct mft_recording *other,
		       struct tl_src *sy, struct mft_tl_align *a)
{
	size_t nx, ny;
	struct sockview *x = sockviews(sx, &nx), *y = sockviews(sy, &ny);
	int64_t offx, offy;
	char est[32], lo[32], hi[32], w[32], tail[320];

	memset(a, 0, sizeof(*a));
	a->have_realtime = clock_offset(ref, &offx) && clock_offset(other, &offy);
	if (a->have_realtime)
		a->realtime_offset = offy - offx;
	a->same_clock = ref->host.boot_id[0] && !strcmp(ref->host.boot_id, other->host.boot_id);
	/* the other host's views by 4-tuple, then by time (on the reference clock, estimated) */
	struct by_tuple *ys = calloc(ny ? ny : 1, sizeof(*ys));

	for (size_t j = 0; ys && j < ny; j++)
		ys[j] = (struct by_tuple){ tuple_hash(y[j].family, y[j].la, y[j].lp, y[j].ra, y[j].rp),
					   first_time(&y[j]) + (uint64_t)(a->same_clock ? 0 : a->realtime_offset), j };
	if (ys)
		qsort(ys, ny, sizeof(*ys), cmp_tuple);
	for (size_t i = 0; ys && i < nx; i++) {
		const struct sockview *best = NULL;
		int64_t best_d = 0;
		struct by_tuple want = { tuple_hash(x[i].family, x[i].ra, x[i].rp, x[i].la, x[i].lp), first_time(&x[i]),
					 0 };
		size_t lo = 0, hi = ny;

		while (lo < hi) { /* the first view of that tuple at or after x's time */
			size_t mid = lo + (hi - lo) / 2;

			if (cmp_tuple(&ys[mid], &want) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		/* ports can be reused: the life closest in time under the estimate, among the
		 * nearest few on either side */
		for (size_t k = lo > MAX_CANDIDATES ? lo - MAX_CANDIDATES : 0; k < ny && k < lo + MAX_CANDIDATES; k++) {
			int64_t d;

			if (ys[k].h != want.h || !mirrored(&x[i], &y[ys[k].i]))
				continue;
			d = (int64_t)(want.t - ys[k].t);
			if (d < 0)
				d = -d;
			if (!best || d < best_d) {
				best = &y[ys[k].i];
				best_d = d;
			}
		}
		if (best) {
			a->n_pairs++;
			connection_bounds(a, &x[i], best);
		}
	}
	free(ys);
	free(x);
	free(y);
	span(a->realtime_offset, est, sizeof(est));
	span(a->lo, lo, sizeof(lo));
	span(a->hi, hi, sizeof(hi));
	span(a->hi - a->lo, w, sizeof(w));
	if (a->have_lo && a->have_hi)
		snprintf(tail, sizeof(tail),
			 "%d connections seen from both ends bound the offset to [%s, %s] (%d constraints)", a->n_pairs,
			 lo, hi, a->n_constraints);
	else if (a->have_lo)
		snprintf(tail, sizeof(tail),
			 "%d connections seen from both ends bound the offset from below only: >= %s", a->n_pairs, lo);
	else if (a->have_hi)
		snprintf(tail, sizeof(tail),
			 "%d connections seen from both ends bound the offset from above only: <= %s", a->n_pairs, hi);
	else
		snprintf(tail, sizeof(tail), "no event seen from both ends bounds it");

	if (a->same_clock) {
		a->method = "same-clock";
		a->offset = 0;
		snprintf(a->text, sizeof(a->text),
			 "same boot as the reference (boot id %.36s): one CLOCK_MONOTONIC, offset 0, "
			 "exact; %s%s",
			 ref->host.boot_id, tail,
			 (a->have_lo && a->lo > 0) || (a->have_hi && a->hi < 0) ? " -- VIOLATED: events out of order?"
										: "");
		return;
	}
	if (!a->have_lo && !a->have_hi) {
		a->method = a->have_realtime ? "realtime-only" : "none";
		a->offset = a->have_realtime ? a->realtime_offset : 0;
		if (a->have_realtime)
			snprintf(a->text, sizeof(a->text),
				 "realtime snapshots only: offset %s; no connection was seen from "
				 "both hosts, so the uncertainty is the hosts' clock synchronisation (unknown here)",
				 est);
		else
			snprintf(a->text, sizeof(a->text),
				 "no clock snapshot and no shared connection: not aligned (offset 0)");
		return;
	}
	if (a->have_realtime && (!a->have_lo || a->realtime_offset >= a->lo) &&
	    (!a->have_hi || a->realtime_offset <= a->hi)) {
		a->method = "realtime";
		a->offset = a->realtime_offset;
		snprintf(a->text, sizeof(a->text),
			 "realtime snapshots give offset %s, consistent with causality: %s; "
			 "the true offset lies in that window%s%s",
			 est, tail, a->have_lo && a->have_hi ? " of " : " (one-sided)",
			 a->have_lo && a->have_hi ? w : "");
		return;
	}
	a->method = "causality";
	if (a->have_lo && a->have_hi && a->lo <= a->hi)
		a->offset = a->lo + (a->hi - a->lo) / 2;
	else if (a->have_lo && a->have_hi) /* contradictory: clocks drifted, or a bug */
		a->offset = a->lo + (a->hi - a->lo) / 2;
	else
		a->offset = a->have_lo ? a->lo : a->hi;
	{
		char used[32], off[32], pm[32];

		span(a->offset, used, sizeof(used));
		span(a->have_realtime ? a->offset - a->realtime_offset : 0, off, sizeof(off));
		mft_fmt_span((a->hi - a->lo) / 2, pm, sizeof(pm));
		snprintf(a->text, sizeof(a->text), "%s%s%s; %s: used %s%s%s%s",
			 a->have_realtime ? "realtime snapshots give "
					    "offset "
					  : "no clock snapshot",
			 a->have_realtime ? est : "", a->have_realtime ? ", which causality rules out" : "", tail, used,
			 a->have_lo && a->have_hi ? (a->lo <= a->hi ? " (the middle), uncertainty +/-"
								    : " (the bounds CONTRADICT "
								      "each other: drift or reordering), +/-")
						  : " (the bound; uncertainty one-sided)",
			 a->have_lo && a->have_hi ? pm : "", a->have_realtime ? "" : "");
		if (a->have_realtime) {
			size_t l = strlen(a->text);

			snprintf(a->text + l, sizeof(a->text) - l, "; the realtime clocks were off by %s", off);
		}
	}
}

void mft_tl_align_pair(const struct mft_recording *ref, const struct mft_recording *other, struct mft_tl_align *a)
{
	struct tl_src sx, sy;

	src_mem(&sx, ref);
	src_mem(&sy, other);
	align_pair(ref, &sx, other, &sy, a);
}

/* The distinct pids a recording knows (targets, then events), the first max of them. */
static int host_pids(const struct mft_tl_host *h, uint32_t *pids, int max)
{
	int n = 0;

	for (size_t k = 0; k < h->n_pid_order && n < max; k++)
		pids[n++] = h->pid_order[k];
	return n;
}

void mft_tl_align(struct mft_timeline *tl)
{
	int64_t off0;

	if (!tl->n_hosts)
		return;
	tl->hosts[0].align.ref = true;
	tl->hosts[0].align.method = "reference";
	snprintf(tl->hosts[0].align.text, sizeof(tl->hosts[0].align.text), "the reference clock");
	tl->mono_to_real = clock_offset(&tl->hosts[0].rec, &off0) ? off0 : 0;
	for (int i = 1; i < tl->n_hosts; i++) {
		struct mft_tl_host *h = &tl->hosts[i];
		struct mft_tl_align best = { 0 };
		int against = 0;

		/* against the reference, or failing a shared connection, an aligned host that has one */
		for (int j = 0; j < i; j++) {
			struct mft_tl_align a;

			struct tl_src sx, sy;

			src_host(&sx, &tl->hosts[j]);
			src_host(&sy, h);
			align_pair(&tl->hosts[j].rec, &sx, &h->rec, &sy, &a);
			src_close(&sx);
			src_close(&sy);
			if (j == 0 || (a.n_pairs && !best.n_pairs && !best.same_clock)) {
				best = a;
				against = j;
			}
		}
		h->align = best;
		h->align.against = against;
		h->align.offset += tl->hosts[against].align.offset;
		/* pids: the same process recorded twice, or two processes with one number */
		uint32_t pids[256];
		int np = host_pids(h, pids, 256);

		for (int p = 0; p < np; p++)
			for (int j = 0; j < i; j++) {
				struct mft_tl_host *o = &tl->hosts[j];

				if (mft_index_find(&o->pids, pids[p], NULL, NULL) == SIZE_MAX)
					continue;
				if (o->rec.host.boot_id[0] && !strcmp(o->rec.host.boot_id, h->rec.host.boot_id)) {
					if (h->n_skip < (int)(sizeof(h->skip_pids) / sizeof(h->skip_pids[0]))) {
						h->skip_pids[h->n_skip++] = pids[p];
						note(tl,
						     "%s: pid %u was also recorded in %s (same boot): its events are read from there "
						     "only",
						     h->path, pids[p], o->path);
					}
				} else if (!h->pid_add) {
					h->pid_add = PID_SPACE * (uint32_t)i;
					note(tl, "%s and %s both have a pid %u: %s's pids are shown plus %u", o->path,
					     h->path, pids[p], h->label, h->pid_add);
				}
				break;
			}
	}
}

int mft_tl_host_of(const struct mft_timeline *tl, uint32_t pid)
{
	for (int i = tl->n_hosts; i-- > 0;) {
		const struct mft_tl_host *h = &tl->hosts[i];
		uint32_t p = pid - h->pid_add;

		if (h->pid_add && pid < h->pid_add)
			continue;
		if (mft_index_find(&h->pids, p, NULL, NULL) != SIZE_MAX)
			return i;
	}
	return -1;
}

/* ------------------------------------------------------------------ replay */

struct replay {
	struct mft_timeline *tl;
	const struct mft_sink *out;
};

static void on_event(void *ctx, const struct mft_correlator *c, const struct mft_chan *ch, const struct mft_event *ev)
{
	struct replay *r = ctx;

	if (r->out && r->out->event)
		r->out->event(r->out->ctx, c, ch, ev);
}

static void on_migration(void *ctx, const struct mft_correlator *c, const struct mft_migration *m)
{
	struct replay *r = ctx;
	struct mft_timeline *tl = r->tl;
	const struct mft_process *p = m->proc;
	struct mft_tl_mig *tm;

	if (r->out && r->out->migration)
		r->out->migration(r->out->ctx, c, m);
	if (!tl->keep)
		return;
	tl->migs = mft_grow(tl->migs, &tl->cap_migs, tl->n_migs + 1, sizeof(*tl->migs));
	tm = &tl->migs[tl->n_migs];
	memset(tm, 0, sizeof(*tm));
	tm->m = *m;
	tm->m.chans = NULL;
	tm->host = mft_tl_host_of(tl, m->pid);
	snprintf(tm->name, sizeof(tm->name), "%s", p ? p->name : "");
	tm->first = tl->n_chans;
	tm->n = m->n_chans;
	tl->chans = mft_grow(tl->chans, &tl->cap_chans, tl->n_chans + m->n_chans, sizeof(*tl->chans));
	for (size_t i = 0; i < m->n_chans; i++) {
		struct mft_tl_chan *tc = &tl->chans[tl->n_chans++];

		memset(tc, 0, sizeof(*tc));
		tc->ch = *m->chans[i];
		tc->ch.mig = NULL;
		tc->host = tm->host;
		tc->mig = tl->n_migs;
		tc->peer = -1;
	}
	tl->n_migs++;
}

static bool skipped(const struct mft_tl_host *h, uint32_t pid)
{
	for (int i = 0; i < h->n_skip; i++)
		if (h->skip_pids[i] == pid)
			return true;
	return false;
}

/* The event as the merged timeline sees it: on the reference clock, with its host's pid. */
static void place(const struct mft_tl_host *h, const struct mft_event *in, struct mft_event *out)
{
	*out = *in;
	out->ts_ns = (uint64_t)((int64_t)in->ts_ns + h->align.offset);
	if (in->snap.last_rx_ns)
		out->snap.last_rx_ns = (uint64_t)((int64_t)in->snap.last_rx_ns + h->align.offset);
	out->pid = in->pid + h->pid_add;
}

/* The host's next event that is not left out, placed in *out; false at its end. */
static bool refill(struct tl_src *src, const struct mft_tl_host *h, struct mft_event *out)
{
	const struct mft_event *raw;

	while ((raw = src_next(src)))
		if (!skipped(h, raw->pid)) {
			place(h, raw, out);
			return true;
		}
	return false;
}

static uint64_t host_end(const struct mft_tl_host *h)
{
	const struct mft_recording *r = &h->rec;
	uint64_t t = 0;

	if (r->has_counters)
		t = r->counters.mono_ns;
	for (size_t i = 0; i < r->n_clocks; i++)
		if (r->clocks[i].mono_ns > t)
			t = r->clocks[i].mono_ns;
	if (r->n_events && r->t_last_event > t)
		t = r->t_last_event;
	return t ? (uint64_t)((int64_t)t + h->align.offset) : 0;
}

void mft_tl_run(struct mft_timeline *tl, const struct mft_sink *out)
{
	struct replay rp = { tl, out };
	struct mft_sink sink = { .ctx = &rp, .event = on_event, .migration = on_migration };
	struct mft_corr_opts opts = { .newchan_probe = true };
	struct mft_correlator *c;
	struct tl_src srcs[MFT_TL_MAX_HOSTS];
	struct mft_event next[MFT_TL_MAX_HOSTS];
	bool more[MFT_TL_MAX_HOSTS] = { false };
	bool dst_tls = false, have_dst = false, any_tls = false;

	/* --tls-records decides how a destination's final read is judged: take the mode of
	 * the recordings that hold destinations */
	for (int i = 0; i < tl->n_hosts; i++) {
		const struct mft_recording *r = &tl->hosts[i].rec;
		bool dst = tl->hosts[i].has_dst;

		any_tls |= r->host.tls_records;
		if (dst) {
			if (have_dst && dst_tls != r->host.tls_records)
				note(tl, "recordings of destinations differ in --tls-records: judged in default mode");
			dst_tls = have_dst ? dst_tls && r->host.tls_records : r->host.tls_records;
			have_dst = true;
		}
	}
	tl->tls_records = have_dst ? dst_tls : any_tls;
	opts.tls_records = tl->tls_records;
	c = mft_corr_new(&opts, &sink);
	if (!c) {
		fprintf(stderr, "mftrace: out of memory\n");
		exit(1);
	}
	for (int i = 0; i < tl->n_hosts; i++) {
		const struct mft_tl_host *h = &tl->hosts[i];
		uint64_t e = host_end(h);

		for (size_t k = 0; k < h->rec.n_targets; k++)
			if (!skipped(h, h->rec.targets[k].pid))
				mft_corr_set_process_name(c, h->rec.targets[k].pid + h->pid_add,
							  h->rec.targets[k].name);
		if (e > tl->t_end)
			tl->t_end = e;
	}
	/* each host's next event (placed on the reference clock), read as the replay goes */
	for (int i = 0; i < tl->n_hosts; i++) {
		src_host(&srcs[i], &tl->hosts[i]);
		more[i] = refill(&srcs[i], &tl->hosts[i], &next[i]);
	}
	for (;;) { /* merge the hosts by time; each host's own order is kept */
		int best = -1;

		for (int i = 0; i < tl->n_hosts; i++)
			if (more[i] && (best < 0 || (int64_t)next[i].ts_ns < (int64_t)next[best].ts_ns))
				best = i;
		if (best < 0)
			break;
		if (!tl->t_first || next[best].ts_ns < tl->t_first)
			tl->t_first = next[best].ts_ns;
		/* the correlator ticks at each event's time (live mode also about every 100 ms
		 * between batches) */
		mft_corr_feed(c, &next[best]);
		tl->n_fed++;
		more[best] = refill(&srcs[best], &tl->hosts[best], &next[best]);
	}
	for (int i = 0; i < tl->n_hosts; i++)
		src_close(&srcs[i]);
	mft_corr_tick(c, tl->t_end);
	mft_corr_finish(c, tl->t_end);
	mft_corr_free(c);
	/* the other end of each connection, where both were traced: channels sorted by the
	 * hash of their 4-tuple, each looks up its mirror among the few with the mirrored hash
	 * (the first one, in channel order); the correlator's rule decides */
	struct by_tuple *bt = calloc(tl->n_chans ? tl->n_chans : 1, sizeof(*bt));

	for (size_t i = 0; bt && i < tl->n_chans; i++) {
		const struct mft_chan *a = &tl->chans[i].ch;

		bt[i] = (struct by_tuple){ tuple_hash(a->family, a->laddr, a->lport, a->raddr, a->rport), i, i };
	}
	if (bt)
		qsort(bt, tl->n_chans, sizeof(*bt), cmp_tuple);
	for (size_t i = 0; bt && i < tl->n_chans; i++) {
		const struct mft_tl_chan *a = &tl->chans[i];
		const struct mft_tl_mig *ma = &tl->migs[a->mig];
		struct mft_end x = { a->ch.family,
				     a->ch.laddr,
				     a->ch.raddr,
				     a->ch.lport,
				     a->ch.rport,
				     a->ch.chan_id,
				     ma->m.has_uuid ? ma->m.uuid : NULL };
		struct by_tuple want = { tuple_hash(a->ch.family, a->ch.raddr, a->ch.rport, a->ch.laddr, a->ch.lport),
					 0, 0 };
		size_t lo = 0, hi = tl->n_chans, seen = 0;

		if (!a->ch.lport || !a->ch.rport)
			continue;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (cmp_tuple(&bt[mid], &want) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t k = lo; k < tl->n_chans && bt[k].h == want.h && seen++ < MAX_CANDIDATES; k++) {
			size_t j = bt[k].i;
			const struct mft_tl_chan *b = &tl->chans[j];
			const struct mft_tl_mig *mb = &tl->migs[b->mig];
			struct mft_end y = { b->ch.family,
					     b->ch.laddr,
					     b->ch.raddr,
					     b->ch.lport,
					     b->ch.rport,
					     b->ch.chan_id,
					     mb->m.has_uuid ? mb->m.uuid : NULL };

			if (j != i && mft_same_connection(&x, &y)) {
				tl->chans[i].peer = (long)j;
				break;
			}
		}
	}
	free(bt);
}

/* ------------------------------------------------------------------ shared by the renderers */

uint64_t mft_tl_final_read(const struct mft_tl_chan *c)
{
	return c->ch.verdict.t_final_read;
}
