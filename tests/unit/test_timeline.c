/* Two hosts on one timeline: clock alignment from realtime snapshots and causality, pid
 * collisions, merged verdicts, and a wrapped flight recorder judged like a full recording. */
#include <stdlib.h>
#include <unistd.h>
#include "unit.h"
#include "store/timeline.h"

#define US 1000ll
#define MS 1000000ll
#define S 1000000000ll
#define SRC 300
#define DST 400
#define PORT 4444
#define THETA (5 * S + 123 * US) /* the truth: add it to the destination's clock to get the source's */

struct evs {
	struct mft_event *e;
	size_t n, cap;
	bool dst; /* the destination's events */
};

static void push(struct evs *b, uint32_t pid, int ch, int type, int64_t t, int64_t arg, int64_t ret)
{
	struct mft_event e = { 0 };
	bool dst = b->dst;

	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 256;
		b->e = realloc(b->e, b->cap * sizeof(*b->e));
	}
	e.ts_ns = (uint64_t)t;
	e.type = (uint16_t)type;
	e.pid = pid;
	e.arg = (uint64_t)arg;
	e.ret = ret;
	if (ch >= 0) {
		e.sk = 0xffff000000000000ull + (uint64_t)pid * 100 + (uint64_t)ch;
		e.role = dst ? MFT_ROLE_DEST : MFT_ROLE_SOURCE;
		e.family = 2;
		e.laddr[0] = e.raddr[0] = 127;
		e.laddr[3] = e.raddr[3] = 1;
		e.lport = dst ? PORT : (uint16_t)(51000 + ch);
		e.rport = dst ? (uint16_t)(51000 + ch) : PORT;
		e.snap.flags = type == MFT_EV_TLS_HANDSHAKE ? MFT_SF_TLS : 0;
	}
	if (type == MFT_EV_MIG_STATE) {
		e.sk = 0xabc0 + pid;
		snprintf(e.str, sizeof(e.str), "%s", ret == 2 ? "completed" : "active");
	}
	b->e[b->n++] = e;
}

/*
 * One TLS multifd migration, 1 main + 4 multifd channels, as each end's own clock saw it:
 * the destination's clock reads THETA less than the source's. Channels 1 and 2 read once
 * more after the FIN (premature), 3 and 4 never do (unread).
 */
static void migration(struct evs *src, struct evs *dst, int64_t t0, uint32_t src_pid, uint32_t dst_pid)
{
	int64_t T = t0 + 500 * MS;

	for (int ch = 0; ch < 5; ch++) {
		int64_t c = t0 + ch * 100 * US;

		push(src, src_pid, ch, MFT_EV_SOCK_CONNECT, c, 0, 0);
		push(src, src_pid, ch, MFT_EV_ESTABLISHED, c + 20 * US, 0, 0);
		push(dst, dst_pid, ch, MFT_EV_SOCK_ACCEPT, c + 35 * US - THETA, 0, 0);
		push(dst, dst_pid, ch, MFT_EV_FIRST_READ, c + 40 * US - THETA, 0, 517);
		push(src, src_pid, ch, MFT_EV_FIRST_READ, c + 60 * US, 0, 99);
		push(src, src_pid, ch, MFT_EV_TLS_HANDSHAKE, c + 70 * US, 0, 0);
		push(dst, dst_pid, ch, MFT_EV_TLS_HANDSHAKE, c + 75 * US - THETA, 0, 0);
		if (ch)
			push(dst, dst_pid, ch, MFT_EV_MULTIFD_CHANNEL, c + 80 * US - THETA, 0, 0);
	}
	push(src, src_pid, -1, MFT_EV_MIG_STATE, T - MS, 1, 2);
	for (int ch = 1; ch < 5; ch++) {
		int64_t c = T + ch * 10 * US;

		push(src, src_pid, ch, MFT_EV_SHUTDOWN, c, 0, 2);
		push(src, src_pid, ch, MFT_EV_FIN_SENT, c + 1 * US, 1, 4);
		push(dst, dst_pid, ch, MFT_EV_FIN_RCVD, c + 30 * US - THETA, 1, 8);
		if (ch <= 2)
			push(dst, dst_pid, ch, MFT_EV_READ_EOF, c + 50 * US - THETA, 0, 0);
	}
	for (int ch = 0; ch < 5; ch++) {
		int64_t c = T + 2 * MS + ch * 10 * US;

		push(dst, dst_pid, ch, MFT_EV_SHUTDOWN, c - THETA, 0, 2);
		push(dst, dst_pid, ch, MFT_EV_FIN_SENT, c + 1 * US - THETA, 8, 9);
		push(src, src_pid, ch, MFT_EV_FIN_RCVD, c + 25 * US, 5, 6);
		push(src, src_pid, ch, MFT_EV_CLOSE, c + 40 * US, 0, 0);
		push(src, src_pid, ch, MFT_EV_DESTROY, c + 50 * US, 0, 0);
		push(dst, dst_pid, ch, MFT_EV_CLOSE, c + 60 * US - THETA, 0, 0);
		push(dst, dst_pid, ch, MFT_EV_DESTROY, c + 70 * US - THETA, 0, 0);
	}
	push(dst, dst_pid, -1, MFT_EV_MIG_STATE, T + 3 * MS - THETA, 1, 2);
}

/* A recording as the reader would return it. */
static void rec(struct mft_recording *r, struct evs *b, const char *host, const char *boot, int64_t mono_to_real,
		uint32_t pid)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->host.hostname, sizeof(r->host.hostname), "%s", host);
	snprintf(r->host.boot_id, sizeof(r->host.boot_id), "%s", boot);
	r->has_host = true;
	r->clocks = calloc(1, sizeof(*r->clocks));
	r->clocks[0] = (struct mft_rec_clock){ .mono_ns = 1000, .real_ns = 1000 + mono_to_real };
	r->n_clocks = 1;
	r->targets = calloc(1, sizeof(*r->targets));
	r->targets[0].pid = pid;
	snprintf(r->targets[0].name, sizeof(r->targets[0].name), "%s-vm", host);
	r->n_targets = 1;
	r->events = b->e;
	r->n_events = b->n;
	r->clean_end = true;
	b->e = NULL;
	b->n = b->cap = 0;
}

static const int64_t REAL0 = 1700000000 * S;

/* Source host and destination host; the destination's realtime clock is off by skew. */
static void two_hosts(struct mft_timeline *tl, int64_t skew, const char *dst_boot, uint32_t dst_pid)
{
	struct evs s = { 0 }, d = { .dst = true };
	struct mft_recording rs, rd;

	migration(&s, &d, 10 * S, SRC, dst_pid);
	rec(&rs, &s, "src-host", "boot-src", REAL0, SRC);
	rec(&rd, &d, "dst-host", dst_boot, REAL0 + THETA + skew, dst_pid);
	mft_tl_init(tl);
	mft_tl_add(tl, "src.mftrec", &rs);
	mft_tl_add(tl, "dst.mftrec", &rd);
	mft_tl_align(tl);
	mft_tl_run(tl, NULL);
}

static const struct mft_tl_chan *chan(const struct mft_timeline *tl, int role, int index)
{
	for (size_t i = 0; i < tl->n_chans; i++)
		if (tl->chans[i].ch.role == role && tl->chans[i].ch.index == index)
			return &tl->chans[i];
	return NULL;
}

/* Verdicts of a merged timeline, and the causal order of every channel's teardown. */
static int check_merged(const struct mft_timeline *tl)
{
	if (tl->n_migs != 2)
		return 1;
	for (int ch = 1; ch < 5; ch++) {
		const struct mft_tl_chan *d = chan(tl, MFT_ROLE_DEST, ch), *s = chan(tl, MFT_ROLE_SOURCE, ch);
		int want = ch <= 2 ? MFT_V_PREMATURE : MFT_V_UNREAD;

		if (!d || !s || d->peer < 0 || s->peer < 0)
			return 10 + ch;
		if (d->ch.verdict.kind != want || s->ch.verdict.kind != want)
			return 20 + ch;
		/* the source's shutdown, then the FIN at the destination, then its final read */
		if (!(s->ch.evidence.t_shutdown < d->ch.evidence.t_fin_rcvd))
			return 30 + ch;
		if (ch <= 2 && !(d->ch.evidence.t_fin_rcvd <= d->ch.verdict.t_final_read))
			return 40 + ch;
	}
	return 0;
}

static void test_realtime_consistent(void)
{
	struct mft_timeline tl;
	const struct mft_tl_align *a;

	two_hosts(&tl, 10 * US, "boot-dst", DST); /* NTP-good: 10 us off */
	a = &tl.hosts[1].align;
	CHECK_STR(a->method, "realtime");
	CHECK_INT(a->n_pairs, 5);
	CHECK(a->have_lo && a->have_hi);
	CHECK(a->lo <= THETA && THETA <= a->hi);
	CHECK_INT(a->offset, THETA + 10 * US);
	CHECK(strstr(a->text, "consistent with causality"));
	CHECK_INT(check_merged(&tl), 0);
	mft_tl_free(&tl);
}

static void test_realtime_wrong_causality_decides(void)
{
	struct mft_timeline tl;
	const struct mft_tl_align *a;

	two_hosts(&tl, -2 * S, "boot-dst", DST); /* a host whose clock is 2 s behind */
	a = &tl.hosts[1].align;
	CHECK_STR(a->method, "causality");
	CHECK(a->lo <= THETA && THETA <= a->hi);
	/* the middle of the window: within half its width of the truth */
	CHECK(llabs(a->offset - THETA) <= (a->hi - a->lo) / 2);
	CHECK(a->hi - a->lo < 100 * US);
	CHECK(strstr(a->text, "rules out"));
	CHECK(strstr(a->text, "off by"));
	CHECK_INT(check_merged(&tl), 0);
	mft_tl_free(&tl);
}

static void test_same_boot_is_exact(void)
{
	struct mft_timeline tl;
	struct evs s = { 0 }, d = { .dst = true };
	struct mft_recording rs, rd;

	migration(&s, &d, 10 * S, SRC, DST);
	for (size_t i = 0; i < d.n; i++) /* one host: one clock */
		d.e[i].ts_ns += THETA;
	rec(&rs, &s, "host", "same-boot", REAL0, SRC);
	rec(&rd, &d, "host", "same-boot", REAL0 + 7, DST);
	mft_tl_init(&tl);
	mft_tl_add(&tl, "a", &rs);
	mft_tl_add(&tl, "b", &rd);
	mft_tl_align(&tl);
	mft_tl_run(&tl, NULL);
	CHECK_STR(tl.hosts[1].align.method, "same-clock");
	CHECK_INT(tl.hosts[1].align.offset, 0);
	CHECK(!strstr(tl.hosts[1].align.text, "VIOLATED"));
	CHECK_STR(tl.hosts[1].label, "host"); /* one host, twice: one name */
	CHECK_INT(check_merged(&tl), 0);
	mft_tl_free(&tl);
}

/* Two hosts whose QEMUs have the same pid: kept apart, still joined by their 4-tuple. */
static void test_pid_collision(void)
{
	struct mft_timeline tl;

	two_hosts(&tl, 0, "boot-dst", SRC);
	CHECK_INT(tl.hosts[1].pid_add, 4194304);
	CHECK(tl.n_notes >= 1 && strstr(tl.notes[0], "both have a pid"));
	CHECK_INT(tl.n_migs, 2);
	CHECK(tl.migs[0].m.pid != tl.migs[1].m.pid);
	CHECK_INT(check_merged(&tl), 0);
	mft_tl_free(&tl);
}

static int by_time(const void *a, const void *b)
{
	const struct mft_event *x = a, *y = b;

	return x->ts_ns < y->ts_ns ? -1 : x->ts_ns > y->ts_ns;
}

/* One host's recording given twice: each process is read once. */
static void test_same_process_twice(void)
{
	struct mft_timeline tl;
	struct evs s = { 0 }, d = { .dst = true }, s2 = { 0 }, d2 = { .dst = true };
	struct mft_recording a, b;

	migration(&s, &d, 10 * S, SRC, DST);
	migration(&s2, &d2, 10 * S, SRC, DST);
	for (size_t i = 0; i < d.n; i++) { /* one host, both QEMUs in each recording */
		d.e[i].ts_ns += THETA;
		d2.e[i].ts_ns += THETA;
		push(&s, d.e[i].pid, -1, 0, 0, 0, 0);
		s.e[s.n - 1] = d.e[i];
		push(&s2, d2.e[i].pid, -1, 0, 0, 0, 0);
		s2.e[s2.n - 1] = d2.e[i];
	}
	free(d.e);
	free(d2.e);
	qsort(s.e, s.n, sizeof(*s.e), by_time); /* as one host's ring buffer delivers them */
	qsort(s2.e, s2.n, sizeof(*s2.e), by_time);
	rec(&a, &s, "host", "boot", REAL0, SRC);
	rec(&b, &s2, "host", "boot", REAL0, SRC);
	mft_tl_init(&tl);
	mft_tl_add(&tl, "a", &a);
	mft_tl_add(&tl, "b", &b);
	mft_tl_align(&tl);
	mft_tl_run(&tl, NULL);
	CHECK_INT(tl.hosts[1].n_skip, 2);
	CHECK_INT(tl.hosts[1].pid_add, 0);
	CHECK(strstr(tl.notes[0], "also recorded"));
	CHECK_INT(check_merged(&tl), 0);
	mft_tl_free(&tl);
}

/* A CHAN_INIT event as the BPF side sends it: a MultiFDInit_t's first 32 bytes. */
static void init_bytes(struct mft_event *e, uint8_t uuid_byte, uint8_t id)
{
	static const uint8_t head[8] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };

	memcpy(&e->arg, head, 8);
	memset(e->str, uuid_byte, 16);
	e->str[16] = (char)id;
}

/* A migration UUID that differs between the two ends: not the same connection. */
static void test_uuid_pairing(void)
{
	struct mft_recording a, b;
	struct mft_tl_align al;

	for (int differ = 0; differ < 2; differ++) {
		struct evs s = { 0 }, d = { .dst = true };

		migration(&s, &d, 10 * S, SRC, DST);
		push(&s, SRC, 1, MFT_EV_CHAN_INIT, 10 * S + 200 * US, 0, 0);
		push(&d, DST, 1, MFT_EV_CHAN_INIT, 10 * S + 210 * US - THETA, 0, 0);
		init_bytes(&s.e[s.n - 1], 0x11, 1);
		init_bytes(&d.e[d.n - 1], differ ? 0x22 : 0x11, 1);
		rec(&a, &s, "a", "boot-a", REAL0, SRC);
		rec(&b, &d, "b", "boot-b", REAL0 + THETA, DST);
		mft_tl_align_pair(&a, &b, &al);
		CHECK_INT(al.n_pairs, differ ? 4 : 5);
		mft_rec_free(&a);
		mft_rec_free(&b);
	}
}

/* No connection seen from both hosts: the realtime estimate, and the unknown is said. */
static void test_no_shared_connection(void)
{
	struct mft_recording a = { 0 }, b = { 0 };
	struct mft_tl_align al;
	struct mft_rec_clock ca = { .mono_ns = 10, .real_ns = 110 }, cb = { .mono_ns = 10, .real_ns = 1010 };

	a.clocks = &ca;
	a.n_clocks = 1;
	b.clocks = &cb;
	b.n_clocks = 1;
	mft_tl_align_pair(&a, &b, &al);
	CHECK_STR(al.method, "realtime-only");
	CHECK_INT(al.offset, 900);
	CHECK(strstr(al.text, "unknown"));
}

/* Chrome JSON and HTML of a merged timeline: tracks, flows, lanes, the race in red. */
static void test_renderers(void)
{
	struct mft_timeline tl;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int flows = 0, tracks = 0, lanes = 0, races = 0;

	two_hosts(&tl, 0, "boot-dst", DST);
	f = open_memstream(&buf, &len);
	CHECK_INT(mft_tl_chrome(&tl, f), 0);
	fclose(f);
	for (char *p = buf; (p = strstr(p, "\"ph\":\"s\"")); p++)
		flows++;
	for (char *p = buf; (p = strstr(p, "\"thread_name\"")); p++)
		tracks++;
	CHECK_INT(flows, 2);       /* one per channel whose final read happened (1 and 2) */
	CHECK_INT(tracks, 10 + 2); /* a track per channel end, one per migration */
	free(buf);
	f = open_memstream(&buf, &len);
	CHECK_INT(mft_tl_html(&tl, f), 0);
	fclose(f);
	for (char *p = buf; (p = strstr(p, "<g class=\"lane")); p++)
		lanes++;
	for (char *p = buf; (p = strstr(p, "class=\"race-window\"")); p++)
		races++;
	CHECK_INT(lanes, 10);
	CHECK_INT(races, 2);
	CHECK(!strstr(buf, "http://") && !strstr(buf, "https://") && !strstr(buf, "<script"));
	free(buf);
	mft_tl_free(&tl);
}

static int count(const char *buf, const char *what)
{
	int n = 0;

	for (const char *p = buf; (p = strstr(p, what)); p++)
		n++;
	return n;
}

/* The axis step: 1, 2 or 5 x 10^k, at most 8 steps in any span. */
static void test_axis_step(void)
{
	static const uint64_t spans[] = { 0,
					  1,
					  9,
					  10000,
					  1000000000ull,
					  400 * 1000000000ull,
					  401 * 1000000000ull,
					  86400ull * 11 * 1000000000ull,
					  1ull << 62,
					  UINT64_MAX };

	for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
		uint64_t step = mft_html_axis_step(spans[i]);

		CHECK(step >= 1);
		CHECK(spans[i] / step <= 8);
		CHECK(step == 1 || step == UINT64_MAX || spans[i] / step >= 2 || step <= 5); /* not needlessly coarse */
	}
	CHECK_INT(mft_html_axis_step(500 * 1000000000ull), 100 * 1000000000ull);
}

/*
 * A group whose teardown spans 500 s, 11 days, or 2^62 ns (one channel closes that long
 * after the others): the HTML page and the Chrome trace stay the size they are for a
 * short one. (The axis once stepped by 1 ns past 400 s and never finished.)
 */
static void test_renderers_any_span(void)
{
	static const int64_t spans[] = { 500 * S, 86400 * 11 * S, 1ll << 62 };
	size_t short_html = 0, short_chrome = 0;

	alarm(60); /* a renderer that loops is a failure, not a hang */
	for (int k = -1; k < (int)(sizeof(spans) / sizeof(spans[0])); k++) {
		struct evs s = { 0 }, d = { .dst = true };
		struct mft_recording rs, rd;
		struct mft_timeline tl;
		char *buf = NULL;
		size_t len = 0, hlen;
		FILE *f;

		migration(&s, &d, 10 * S, SRC, DST);
		for (size_t i = 0; k >= 0 && i < d.n; i++) /* channel 4's teardown, span later */
			if ((d.e[i].sk - 0xffff000000000000ull) % 100 == 4 &&
			    d.e[i].ts_ns > (uint64_t)(10 * S + 400 * MS - THETA))
				d.e[i].ts_ns += (uint64_t)spans[k];
		rec(&rs, &s, "src-host", "boot-src", REAL0, SRC);
		rec(&rd, &d, "dst-host", "boot-dst", REAL0 + THETA, DST);
		mft_tl_init(&tl);
		mft_tl_add(&tl, "src.mftrec", &rs);
		mft_tl_add(&tl, "dst.mftrec", &rd);
		mft_tl_align(&tl);
		mft_tl_run(&tl, NULL);
		f = open_memstream(&buf, &len);
		CHECK_INT(mft_tl_html(&tl, f), 0);
		fclose(f);
		hlen = len;
		CHECK(count(buf, "<line class=\"grid\"") >= 2 && count(buf, "<line class=\"grid\"") <= 12);
		CHECK(count(buf, "<g class=\"lane") >= 10 && count(buf, "<g class=\"lane") <= 12);
		free(buf);
		buf = NULL;
		f = open_memstream(&buf, &len);
		CHECK_INT(mft_tl_chrome(&tl, f), 0);
		fclose(f);
		free(buf);
		if (k < 0) {
			short_html = hlen;
			short_chrome = len;
		} else {
			printf("# span %.0f s: HTML %zu bytes (%zu for 0.5 s), Chrome %zu bytes (%zu)\n",
			       spans[k] / 1e9, hlen, short_html, len, short_chrome);
			CHECK(hlen < 2 * short_html);
			CHECK(len < 2 * short_chrome);
		}
		mft_tl_free(&tl);
	}
	alarm(0);
}

/* Long before the teardown, the ring wraps: the channels' openings are carried, and the
 * verdicts come out as from the whole recording. */
static void test_flight_recorder_same_verdicts(void)
{
	char dir[] = "/tmp/mft-tl-XXXXXX", full[64], ring[64];
	struct evs s = { 0 }, d = { .dst = true };
	struct mft_recw_opts ro = { .max_size = MFT_REC_PREAMBLE_LEN + 4 * 16384, .n_segments = 4 };
	struct mft_timeline a, b;
	struct mft_recording ra, rb;
	char err[256];
	size_t is = 0, id = 0;

	CHECK(mkdtemp(dir));
	snprintf(full, sizeof(full), "%s/full", dir);
	snprintf(ring, sizeof(ring), "%s/ring", dir);
	migration(&s, &d, 10 * S, SRC, DST);
	for (size_t i = 0; i < d.n; i++) /* one host */
		d.e[i].ts_ns += THETA;
	struct mft_recw *wf = mft_recw_open(full, NULL, err, sizeof(err));
	struct mft_recw *wr = mft_recw_open(ring, &ro, err, sizeof(err));

	CHECK(wf && wr);
	/* both ends interleaved by time, 30000 unrelated events after the openings (enough to
	 * wrap the ring several times, however compact the format) */
	while (is < s.n || id < d.n) {
		bool from_s = id == d.n || (is < s.n && s.e[is].ts_ns <= d.e[id].ts_ns);
		struct mft_event e = from_s ? s.e[is++] : d.e[id++];

		mft_recw_event(wf, &e);
		mft_recw_event(wr, &e);
		if (is + id == 20)
			for (int k = 0; k < 30000; k++) {
				struct mft_event x = { .ts_ns = e.ts_ns + 1 + (uint64_t)k,
						       .pid = 999,
						       .type = MFT_EV_SYNC_MAIN };

				mft_recw_event(wf, &x);
				mft_recw_event(wr, &x);
			}
	}
	CHECK_INT(mft_recw_close(wf, NULL, NULL), 0);
	CHECK_INT(mft_recw_close(wr, NULL, NULL), 0);
	CHECK_INT(mft_rec_load(full, &ra), 0);
	CHECK_INT(mft_rec_load(ring, &rb), 0);
	CHECK(rb.first_seq > 0 && rb.n_carried > 0 && rb.n_events < ra.n_events);
	mft_tl_init(&a);
	mft_tl_init(&b);
	mft_tl_add(&a, full, &ra);
	mft_tl_add(&b, ring, &rb);
	mft_tl_align(&a);
	mft_tl_align(&b);
	mft_tl_run(&a, NULL);
	mft_tl_run(&b, NULL);
	CHECK_INT(check_merged(&a), 0);
	CHECK_INT(check_merged(&b), 0);
	CHECK_INT(a.n_chans, b.n_chans);
	for (size_t i = 0; i < a.n_chans; i++) {
		const struct mft_chan *x = &a.chans[i].ch, *y = &b.chans[i].ch;

		CHECK_INT(x->index, y->index);
		CHECK_INT(x->kind, y->kind);
		CHECK_INT(x->verdict.kind, y->verdict.kind);
		CHECK_INT(x->verdict.possible, y->verdict.possible);
		CHECK_INT(x->verdict.t_final_read, y->verdict.t_final_read);
		CHECK_INT(x->evidence.t_created, y->evidence.t_created);
	}
	mft_tl_free(&a);
	mft_tl_free(&b);
	free(s.e);
	free(d.e);
	unlink(full);
	unlink(ring);
	rmdir(dir);
}

int main(void)
{
	RUN(test_realtime_consistent);
	RUN(test_realtime_wrong_causality_decides);
	RUN(test_same_boot_is_exact);
	RUN(test_pid_collision);
	RUN(test_same_process_twice);
	RUN(test_uuid_pairing);
	RUN(test_no_shared_connection);
	RUN(test_renderers);
	RUN(test_axis_step);
	RUN(test_renderers_any_span);
	RUN(test_flight_recorder_same_verdicts);
	UNIT_EXIT();
}
