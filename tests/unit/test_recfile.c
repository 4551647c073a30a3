/* The recording format: round trip, every-byte truncation, corruption, bad files,
 * kill -9 of a writer, flight-recorder wraparound, and what the writer costs. */
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "unit.h"
#include "store/recfile.h"

static char dir[64];

static const char *tmp(const char *name)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static struct mft_event mkev(uint64_t i)
{
	struct mft_event e = { 0 };

	e.ts_ns = 1000000000ull + i * 1000;
	e.sk = 0xffff888000000000ull + (i % 7) * 64;
	e.arg = i * 3;
	e.ret = -(int64_t)i;
	e.pid = 4242;
	e.tid = 4243 + (uint32_t)(i % 3);
	e.type = (uint16_t)(1 + i % (MFT_EV__MAX - 1));
	e.family = 2;
	e.lport = 4444;
	e.rport = (uint16_t)(50000 + i % 7);
	e.laddr[0] = e.raddr[0] = 127;
	e.laddr[3] = e.raddr[3] = 1;
	e.role = MFT_ROLE_DEST;
	e.snap.rx_bytes = i * 100;
	e.snap.last_rx_len = -5;
	e.snap.flags = MFT_SF_TLS;
	snprintf(e.str, sizeof(e.str), "ev%llu", (unsigned long long)i);
	return e;
}

static void meta(struct mft_recw *w)
{
	struct mft_rec_host h = { .tls_records = true };
	struct mft_rec_clock c = { .mono_ns = 999, .real_ns = 1700000000000000000ll, .err_ns = 20 };
	struct mft_rec_target t = { .pid = 4242, .incoming = true, .t_mono = 5 };
	struct mft_rec_probe p = { .pid = 4242, .ok = false, .required = false };

	snprintf(h.hostname, sizeof(h.hostname), "src-host");
	snprintf(h.kernel, sizeof(h.kernel), "6.18.0 #1 SMP");
	snprintf(h.boot_id, sizeof(h.boot_id), "b0b0");
	snprintf(t.name, sizeof(t.name), "guest1");
	snprintf(t.exe, sizeof(t.exe), "/usr/bin/qemu-system-x86_64");
	snprintf(t.qemu_version, sizeof(t.qemu_version), "7.2.15");
	snprintf(t.gnutls_version, sizeof(t.gnutls_version), "3.7.9");
	snprintf(t.cmdline, sizeof(t.cmdline), "qemu-system-x86_64 -M pc -incoming defer");
	snprintf(p.what, sizeof(p.what), "gnutls_bye");
	snprintf(p.mech, sizeof(p.mech), "uprobe");
	snprintf(p.why, sizeof(p.why), "symbol not found");
	mft_recw_host(w, &h);
	mft_recw_clock(w, &c);
	mft_recw_target(w, &t);
	mft_recw_probe(w, &p);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	b = malloc(*len + 1);
	if (fread(b, 1, *len, f) != *len) {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

/* The format small() writes: 0 (the current one), or 1 (a 1.0 fixture). */
static unsigned small_format;

/*
 * A small recording of n events, handed to the file one at a time (as the recorder does at
 * each batch: in format 2 a block per event); returns its bytes.
 */
static uint8_t *small(int n, size_t *len, bool close_it)
{
	char err[256];
	struct mft_recw *w = mft_recw_open(tmp("small.rec"),
					   &(struct mft_recw_opts){ .force = true, .format = small_format }, err,
					   sizeof(err));
	struct mft_rec_counters fin = { .mono_ns = 2000000000ull, .kernel_events = (uint64_t)n, .rb_dropped = 3 };

	if (!w)
		return NULL;
	meta(w);
	for (int i = 0; i < n; i++) {
		struct mft_event e = mkev((uint64_t)i);

		mft_recw_event(w, &e);
		mft_recw_flush(w);
	}
	if (close_it)
		mft_recw_close(w, &fin, NULL);
	else
		mft_recw_flush(w); /* leaked on purpose: the file is what a killed writer leaves */
	return slurp(tmp("small.rec"), len);
}

/* Record boundaries, walked independently of the reader: end offset and type of each. */
static int walk(const uint8_t *b, size_t len, size_t *ends, int *types, int max)
{
	size_t pos = MFT_REC_PREAMBLE_LEN;
	int n = 0;

	while (pos + MFT_REC_HDR_LEN <= len && n < max) {
		uint32_t l = (uint32_t)b[pos + 8] | (uint32_t)b[pos + 9] << 8 | (uint32_t)b[pos + 10] << 16 |
			     (uint32_t)b[pos + 11] << 24;

		if (pos + MFT_REC_HDR_LEN + l > len)
			break;
		types[n] = b[pos + 4];
		pos += MFT_REC_HDR_LEN + l;
		ends[n++] = pos;
	}
	return n;
}

static void test_round_trip(void)
{
	size_t len;
	uint8_t *b = small(40, &len, true);
	struct mft_recording r;

	CHECK(b);
	CHECK_INT(mft_rec_parse(b, len, &r), 0);
	CHECK_INT(r.n_events, 40);
	for (int i = 0; i < 40; i++) {
		struct mft_event e = mkev((uint64_t)i);

		CHECK(!memcmp(&e, &r.events[i], sizeof(e)));
	}
	CHECK(r.clean_end);
	CHECK_INT(r.n_problems, 0);
	CHECK(r.has_host);
	CHECK_STR(r.host.hostname, "src-host");
	CHECK_STR(r.host.boot_id, "b0b0");
	CHECK(r.host.tls_records);
	CHECK_INT(r.n_targets, 1);
	CHECK_INT(r.targets[0].pid, 4242);
	CHECK(r.targets[0].incoming);
	CHECK_STR(r.targets[0].qemu_version, "7.2.15");
	CHECK_STR(r.targets[0].cmdline, "qemu-system-x86_64 -M pc -incoming defer");
	CHECK_INT(r.n_probes, 1);
	CHECK_STR(r.probes[0].why, "symbol not found");
	CHECK_INT(r.n_clocks, 1);
	CHECK_INT(r.clocks[0].real_ns, 1700000000000000000ll);
	CHECK(r.has_counters && r.counters.final);
	CHECK_INT(r.counters.rb_dropped, 3);
	CHECK_INT(r.counters.events_written, 40);
	CHECK_INT(r.end_offset, len);
	CHECK(strstr(r.stopped, "complete"));
	mft_rec_free(&r);
	free(b);
}

/* Cut the file at every byte: never a crash, exactly the complete records, and where. */
static void test_truncate_every_byte(void)
{
	size_t len, ends[256];
	int types[256];
	uint8_t *b = small(25, &len, true);
	int n;

	CHECK(b);
	n = walk(b, len, ends, types, 256);
	CHECK(n > 25);
	for (size_t cut = 0; cut <= len; cut++) {
		struct mft_recording r;
		uint8_t *c = malloc(cut ? cut : 1); /* exact size: ASan sees any over-read */
		int rc, want = 0;
		size_t last_end = MFT_REC_PREAMBLE_LEN;

		memcpy(c, b, cut);
		rc = mft_rec_parse(c, cut, &r);
		for (int k = 0; k < n; k++)
			if (ends[k] <= cut) {
				want += types[k] == MFT_REC_EVENT || types[k] == MFT_REC_EVENTS;
				last_end = ends[k];
			}
		if (cut < MFT_REC_PREAMBLE_LEN) {
			CHECK_INT(rc, -1);
			CHECK(r.n_problems == 1);
		} else {
			CHECK_INT(rc, 0);
			CHECK_INT(r.n_events, want);
			if (cut > ends[0]) { /* past the segment opening */
				CHECK_INT(r.end_offset, last_end);
				CHECK_INT(r.tail_bytes, cut - last_end);
				CHECK(cut == len ? r.clean_end : !r.clean_end);
				CHECK(strstr(r.stopped, cut == len        ? "complete"
							: cut == last_end ? "no trailer"
									  : "cut short"));
			}
		}
		mft_rec_free(&r);
		free(c);
	}
	free(b);
}

/* One damaged byte anywhere after the preamble costs exactly the record it hit. */
static void test_corrupt_bytes(void)
{
	size_t len, ends[256];
	int types[256], n;
	uint8_t *b = small(25, &len, true);

	CHECK(b);
	n = walk(b, len, ends, types, 256);
	for (size_t pos = MFT_REC_PREAMBLE_LEN; pos < len; pos++) {
		struct mft_recording r;
		int k = 0, want = 25;

		while (ends[k] <= pos)
			k++;
		if (types[k] == MFT_REC_EVENT || types[k] == MFT_REC_EVENTS)
			want--;
		b[pos] ^= 0x41;
		CHECK_INT(mft_rec_parse(b, len, &r), 0);
		b[pos] ^= 0x41;
		CHECK_INT(r.n_events, want);
		if (k < n - 1 && k > 0) { /* damage between good records is reported, with its size */
			CHECK_INT(r.corrupt_regions, 1);
			CHECK_INT(r.corrupt_bytes, ends[k] - ends[k - 1]);
			CHECK(r.n_problems >= 1 && strstr(r.problems[0], "damaged"));
		}
		mft_rec_free(&r);
	}
	/* and every byte of the preamble: refused, with a reason */
	for (size_t pos = 0; pos < MFT_REC_PREAMBLE_LEN; pos++) {
		struct mft_recording r;

		b[pos] ^= 0x10;
		CHECK_INT(mft_rec_parse(b, len, &r), -1);
		b[pos] ^= 0x10;
		CHECK_INT(r.n_problems, 1);
		mft_rec_free(&r);
	}
	free(b);
}

static void test_wrong_magic(void)
{
	static const uint8_t png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13 };
	static const char text[] = "{\"type\":\"channel\"}\n";
	struct mft_recording r;

	CHECK_INT(mft_rec_parse(png, sizeof(png), &r), -1);
	CHECK(strstr(r.problems[0], "not an mftrace recording"));
	CHECK_INT(mft_rec_parse((const uint8_t *)text, sizeof(text) - 1, &r), -1);
	CHECK(strstr(r.problems[0], "wrong magic"));
	CHECK_INT(mft_rec_parse((const uint8_t *)"", 0, &r), -1);
	CHECK_INT(mft_rec_load(tmp("does-not-exist"), &r), -1);
	CHECK(strstr(r.problems[0], "cannot open"));
}

static void set_version(uint8_t *b, unsigned major, unsigned minor)
{
	uint32_t crc;

	b[8] = (uint8_t)major;
	b[9] = 0;
	b[10] = (uint8_t)minor;
	b[11] = 0;
	crc = mft_crc32(0, b, 60);
	for (int i = 0; i < 4; i++)
		b[60 + i] = (uint8_t)(crc >> (8 * i));
}

static void test_newer_version(void)
{
	size_t len;
	uint8_t *b = small(5, &len, true);
	struct mft_recording r;

	CHECK(b);
	set_version(b, MFT_REC_MAJOR + 1, 0);
	CHECK_INT(mft_rec_parse(b, len, &r), -1);
	CHECK(strstr(r.problems[0], "newer than this mftrace"));
	{
		char want[16];

		snprintf(want, sizeof(want), "%d.0", MFT_REC_MAJOR + 1);
		CHECK(strstr(r.problems[0], want));
	}
	free(b);
}

/* A newer minor may add record types: they are skipped and counted. */
static void test_newer_minor_unknown_record(void)
{
	size_t len, ends[64];
	int types[64], n;
	uint8_t *b = small(5, &len, true), *c;
	struct mft_recording r;
	uint8_t rec[MFT_REC_HDR_LEN + 3] = { 'M', 'F', 'R', 0xa5, 99, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 'x', 'y', 'z' };
	uint8_t seq[8] = { 0 };
	uint32_t crc;

	CHECK(b);
	set_version(b, MFT_REC_MAJOR, 7);
	n = walk(b, len, ends, types, 64);
	CHECK(n > 3);
	crc = mft_crc32(mft_crc32(mft_crc32(0, seq, 8), rec + 4, 8), rec + MFT_REC_HDR_LEN, 3);
	for (int i = 0; i < 4; i++)
		rec[12 + i] = (uint8_t)(crc >> (8 * i));
	c = malloc(len + sizeof(rec));
	memcpy(c, b, ends[2]);
	memcpy(c + ends[2], rec, sizeof(rec));
	memcpy(c + ends[2] + sizeof(rec), b + ends[2], len - ends[2]);
	CHECK_INT(mft_rec_parse(c, len + sizeof(rec), &r), 0);
	CHECK_INT(r.minor, 7);
	CHECK_INT(r.n_events, 5);
	CHECK_INT(r.unknown_records, 1);
	CHECK(r.clean_end);
	mft_rec_free(&r);
	free(b);
	free(c);
}

/* A writer killed with SIGKILL: everything it had flushed is read; no trailer, said so. */
static void test_kill9(void)
{
	pid_t pid = fork();
	int st;
	struct mft_recording r;

	CHECK(pid >= 0);
	if (pid == 0) {
		char err[256];
		struct mft_recw *w = mft_recw_open(tmp("killed.rec"), &(struct mft_recw_opts){ .force = true }, err,
						   sizeof(err));

		if (!w)
			_exit(3);
		meta(w);
		for (int i = 0; i < 50; i++) {
			struct mft_event e = mkev((uint64_t)i);

			mft_recw_event(w, &e);
			if (i % 10 == 9)
				mft_recw_flush(w);
		}
		raise(SIGKILL);
		_exit(4);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	CHECK_INT(mft_rec_load(tmp("killed.rec"), &r), 0);
	CHECK_INT(r.n_events, 50);
	CHECK(!r.clean_end);
	CHECK(strstr(r.stopped, "no trailer"));
	mft_rec_free(&r);
}

/* The flight recorder keeps the newest events, contiguous, and counts what it overwrote. */
static void test_flight_recorder_wraparound(void)
{
	struct mft_recw_opts o = { .max_size = MFT_REC_PREAMBLE_LEN + 4 * 8192, .n_segments = 4 };
	char err[256];
	struct mft_recw *w = mft_recw_open(tmp("ring.rec"), &o, err, sizeof(err));
	struct mft_rec_counters fin = { .mono_ns = 9000000000ull };
	struct mft_recording r;
	const int N = 3000;
	size_t own = 0;
	struct stat_like {
		size_t size;
	} st = { 0 };
	uint8_t *b;

	CHECK(w);
	meta(w);
	for (int i = 0; i < N; i++) {
		struct mft_event e = mkev((uint64_t)i);

		e.type = MFT_EV_READ_LATE;
		e.sk = 0; /* no socket: nothing to carry */
		mft_recw_event(w, &e);
	}
	CHECK_INT(mft_recw_close(w, &fin, NULL), 0);
	b = slurp(tmp("ring.rec"), &st.size);
	CHECK(b);
	CHECK(st.size <= o.max_size);
	CHECK_INT(mft_rec_parse(b, st.size, &r), 0);
	free(b);
	CHECK(r.ring && r.clean_end);
	CHECK(r.first_seq > 0);
	CHECK_INT(r.segments_read, 4);
	CHECK_INT(r.n_problems, 0);
	/* the newest event is there, and the events read are the newest, without a gap */
	CHECK(r.n_events > 100);
	for (size_t i = 0; i < r.n_events; i++) {
		struct mft_event e = mkev((uint64_t)(N - (int)r.n_events + (int)i));

		e.type = MFT_EV_READ_LATE;
		e.sk = 0;
		CHECK(!memcmp(&e, &r.events[i], sizeof(e)));
		own++;
	}
	CHECK_INT(r.counters.events_written, N);
	CHECK_INT(r.counters.events_overwritten + own, N);
	/* each segment repeats the metadata: the oldest one still says who was traced */
	CHECK(r.has_host && r.n_targets == 1 && r.n_probes == 1 && r.n_clocks >= 1);
	mft_rec_free(&r);
}

/* A channel opened before the oldest surviving segment: its opening is carried. */
static void test_flight_recorder_carries_openings(void)
{
	struct mft_recw_opts o = { .max_size = MFT_REC_PREAMBLE_LEN + 4 * 8192, .n_segments = 4 };
	char err[256];
	struct mft_recw *w = mft_recw_open(tmp("carry.rec"), &o, err, sizeof(err));
	struct mft_recording r;
	struct mft_event open = mkev(0), hs = mkev(1), late;

	CHECK(w);
	meta(w);
	open.type = MFT_EV_SOCK_ACCEPT;
	open.sk = 0x1234;
	hs.type = MFT_EV_TLS_HANDSHAKE;
	hs.sk = 0x1234;
	mft_recw_event(w, &open);
	mft_recw_event(w, &hs);
	for (int i = 2; i < 2000; i++) {
		late = mkev((uint64_t)i);
		late.type = MFT_EV_READ_LATE;
		late.sk = 0x9999; /* another socket, opened (as far as we know) at its first event */
		mft_recw_event(w, &late);
	}
	CHECK_INT(mft_recw_close(w, NULL, NULL), 0);
	CHECK_INT(mft_rec_load(tmp("carry.rec"), &r), 0);
	CHECK(r.first_seq > 0);
	CHECK(r.n_carried == 3);
	CHECK(!memcmp(&r.events[0], &open, sizeof(open)));
	CHECK(!memcmp(&r.events[1], &hs, sizeof(hs)));
	CHECK(r.events[2].sk == 0x9999 && r.events[2].ts_ns == mkev(2).ts_ns); /* its first event */
	CHECK(!r.clean_end && strstr(r.stopped, "no trailer"));
	mft_rec_free(&r);
}

/* A ring file cut at every byte of its newest segment: never a crash. */
static void test_ring_truncate(void)
{
	struct mft_recw_opts o = { .max_size = MFT_REC_PREAMBLE_LEN + 4 * 4096, .n_segments = 4 };
	char err[256];
	struct mft_recw *w = mft_recw_open(tmp("ring2.rec"), &o, err, sizeof(err));
	size_t len;
	uint8_t *b;

	CHECK(w);
	meta(w);
	for (int i = 0; i < 300; i++) {
		struct mft_event e = mkev((uint64_t)i);

		mft_recw_event(w, &e);
	}
	mft_recw_close(w, NULL, NULL);
	b = slurp(tmp("ring2.rec"), &len);
	CHECK(b);
	for (size_t cut = 0; cut <= len; cut += 3) {
		struct mft_recording r;
		uint8_t *c = malloc(cut ? cut : 1);

		memcpy(c, b, cut);
		mft_rec_parse(c, cut, &r);
		CHECK(r.n_events <= 300);
		mft_rec_free(&r);
		free(c);
	}
	free(b);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* What the writer costs: events per second into a 64 MiB flight recorder. */
static void test_writer_throughput(void)
{
	struct mft_recw_opts o = { .max_size = 64ull << 20 };
	char err[256];
	struct mft_recw *w = mft_recw_open(tmp("bench.rec"), &o, err, sizeof(err));
	const int N = 1000000;
	double t0, dt;

	CHECK(w);
	meta(w);
	t0 = now_s();
	for (int i = 0; i < N; i++) {
		struct mft_event e = mkev((uint64_t)i);

		mft_recw_event(w, &e);
		if (i % 1000 == 999)
			mft_recw_flush(w);
	}
	CHECK_INT(mft_recw_close(w, NULL, NULL), 0);
	dt = now_s() - t0;
	printf("# writer: %d events in %.3f s = %.0f events/s (%.0f MB/s) into a 64 MiB flight recorder, "
	       "%llu segments, wrapped\n",
	       N, dt, N / dt, N * 184.0 / dt / 1e6, (unsigned long long)(N * 184ull / (8ull << 20)));
	CHECK(N / dt > 200000); /* a QEMU migration makes a few hundred; the kernel side, tens of thousands */
}

/* ------------------------------------------------------------------ crafted files */

/* A plain recording built by hand: preamble, SEGMENT 0, then what the caller appends. */
struct craft {
	uint8_t *b;
	size_t len, cap;
};

static void cput(struct craft *c, const void *p, size_t n)
{
	if (c->len + n > c->cap) {
		c->cap = (c->len + n) * 2;
		c->b = realloc(c->b, c->cap);
	}
	memcpy(c->b + c->len, p, n);
	c->len += n;
}

static void le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A record of segment 0; a bad CRC when bad. */
static void crec(struct craft *c, unsigned type, const uint8_t *payload, uint32_t len, bool bad)
{
	uint8_t h[16] = { 'M', 'F', 'R', 0xa5 }, seq[8] = { 0 };
	uint32_t crc;

	le(h + 4, type, 2);
	le(h + 8, len, 4);
	crc = mft_crc32(mft_crc32(mft_crc32(0, seq, 8), h + 4, 8), payload, len);
	le(h + 12, bad ? ~crc : crc, 4);
	cput(c, h, 16);
	cput(c, payload, len);
}

static void craft_start(struct craft *c)
{
	uint8_t pre[64] = { 0x89, 'M', 'F', 'T', '\r', '\n', 0x1a, '\n' }, seg[16] = { 0 };
	uint8_t h[16] = { 'M', 'F', 'R', 0xa5 };

	memset(c, 0, sizeof(*c));
	le(pre + 8, 1, 2);
	le(pre + 24, 1, 4);
	le(pre + 28, 64, 4);
	le(pre + 60, mft_crc32(0, pre, 60), 4);
	cput(c, pre, 64);
	le(h + 4, MFT_REC_SEGMENT, 2);
	le(h + 8, 16, 4);
	le(h + 12, mft_crc32(mft_crc32(mft_crc32(0, seg, 8), h + 4, 8), seg, 16), 4);
	cput(c, h, 16);
	cput(c, seg, 16);
}

/* n distinct CLOCK records (each must be checked against all before it) */
static void craft_clocks(struct craft *c, size_t n)
{
	craft_start(c);
	for (size_t i = 0; i < n; i++) {
		uint8_t p[24] = { 0 };

		le(p, 1000 + i * 7, 8);
		le(p + 8, 1700000000000000000ull + i, 8);
		crec(c, MFT_REC_CLOCK, p, sizeof(p), false);
	}
}

/* n TARGET records of distinct pids, the smallest payload one can be */
static void craft_targets(struct craft *c, size_t n)
{
	craft_start(c);
	for (size_t i = 0; i < n; i++) {
		uint8_t p[12] = { 1, 0, 8, 0 };

		le(p + 4, 1 + i, 8);
		crec(c, MFT_REC_TARGET, p, sizeof(p), false);
	}
}

/* n PROBE records of distinct pids, one attach point each */
static void craft_probes(struct craft *c, size_t n)
{
	craft_start(c);
	for (size_t i = 0; i < n; i++) {
		uint8_t p[32] = { 1, 0, 8, 0 };

		le(p + 4, 1 + i, 8);
		memcpy(p + 12, "\x02\x00\x0a\x00gnutls_bye\x03\x00\x02\x00up", 20);
		crec(c, MFT_REC_PROBE, p, sizeof(p), false);
	}
}

/* Damage, then a sync word every 16 bytes, each claiming to run to the end of the file:
 * every candidate costs a checksum over the rest of the file. */
static void craft_resync(struct craft *c, size_t n)
{
	uint8_t p[24] = { 0 };
	size_t end;

	craft_start(c);
	crec(c, MFT_REC_CLOCK, p, sizeof(p), true); /* the damage */
	end = c->len + n * 16;
	for (size_t i = 0; i < n; i++) {
		uint8_t h[16] = { 'M', 'F', 'R', 0xa5 };
		size_t at = c->len;

		le(h + 4, MFT_REC_EVENT, 2);
		le(h + 8, end - at - 16, 4);
		cput(c, h, 16);
	}
}

static double parse_time(void (*make)(struct craft *, size_t), size_t n, size_t *bytes)
{
	struct craft c;
	double best = 1e9;

	make(&c, n);
	*bytes = c.len;
	for (int rep = 0; rep < 3; rep++) {
		struct mft_recording r;
		double t0 = now_s(), dt;

		mft_rec_parse(c.b, c.len, &r);
		dt = now_s() - t0;
		mft_rec_free(&r);
		if (dt < best)
			best = dt;
	}
	free(c.b);
	return best;
}

/*
 * The reader is linear in the file's size: the same crafted worst case at n and 4n
 * records, timed side by side (the best of three each). Linear comes out near 4 (up to 6
 * here when the smaller case's hash index still fits in the caches); quadratic near 16.
 * A complexity check with a generous bound, not a speed test.
 */
static void test_reader_linear(void)
{
	static const struct {
		const char *what;
		void (*make)(struct craft *, size_t);
		size_t n;
	} cases[] = {
		{ "distinct CLOCK records", craft_clocks, 400000 },
		{ "distinct TARGET pids", craft_targets, 100000 },
		{ "distinct PROBE records", craft_probes, 100000 },
		{ "sync words after damage", craft_resync, 100000 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t b1, b4;
		double t1 = parse_time(cases[i].make, cases[i].n, &b1);
		double t4 = parse_time(cases[i].make, 4 * cases[i].n, &b4);
		double ratio = t4 / (t1 > 1e-4 ? t1 : 1e-4);

		printf("# reader, %s: %zu bytes %.1f ms, %zu bytes %.1f ms: time x%.1f for size x%.1f\n", cases[i].what,
		       b1, t1 * 1e3, b4, t4 * 1e3, ratio, (double)b4 / (double)b1);
		CHECK(ratio < 10);
	}
}

/* Memory stays bounded: a file of TARGET records of distinct pids (28 bytes each) keeps at
 * most MFT_REC_MAX_TARGETS of them, and says so. */
static void test_reader_memory(void)
{
	struct craft c;
	struct mft_recording r;
	size_t n = 20000;
	struct mallinfo2 m0, m1;

	craft_targets(&c, n);
	m0 = mallinfo2();
	CHECK_INT(mft_rec_parse(c.b, c.len, &r), 0);
	m1 = mallinfo2();
	printf("# reader: %zu bytes of TARGET records (%zu pids) hold %.1f MB\n", c.len, n,
	       (double)(m1.uordblks - m0.uordblks) / 1e6);
	CHECK_INT(r.n_targets, MFT_REC_MAX_TARGETS);
	CHECK_INT(r.targets_dropped, n - MFT_REC_MAX_TARGETS);
	CHECK(m1.uordblks - m0.uordblks < (size_t)MFT_REC_MAX_TARGETS * sizeof(struct mft_rec_target) + (4u << 20));
	CHECK(r.n_problems >= 1 && strstr(r.problems[0], "more than 4096 traced processes"));
	CHECK_INT(r.bad_records, 0);
	mft_rec_free(&r);
	free(c.b);
	/* and the damage budget says where it stopped */
	craft_resync(&c, 100000);
	CHECK_INT(mft_rec_parse(c.b, c.len, &r), 0);
	CHECK(r.n_problems >= 1 && strstr(r.problems[r.n_problems - 1], "stopped looking for intact records"));
	mft_rec_free(&r);
	free(c.b);
}

/* A snapshot of a ring mid-way: a complete recording of what the ring held then, with
 * its trailer; the writer goes on; an existing file or link is never written through. */
static void test_snapshot(void)
{
	struct mft_recw_opts o = { .max_size = MFT_REC_PREAMBLE_LEN + 4 * 8192, .n_segments = 4 };
	char err[256];
	struct mft_recw *w = mft_recw_open(tmp("snap.rec"), &o, err, sizeof(err));
	struct mft_rec_counters fin = { .mono_ns = 9000000000ull, .rb_dropped = 3 };
	struct mft_recording r, live;
	const int N = 2000;
	size_t len;
	uint8_t *b;

	CHECK(w);
	meta(w);
	for (int i = 0; i < N; i++) {
		struct mft_event e = mkev((uint64_t)i);

		e.type = MFT_EV_READ_LATE;
		e.sk = 0;
		mft_recw_event(w, &e);
		if (i == N / 2)
			CHECK_INT(mft_recw_snapshot(w, tmp("snap.rec.1.snapshot"), &fin, err, sizeof(err)), 0);
	}
	/* never over an existing file, never through a link */
	char victim[128];

	snprintf(victim, sizeof(victim), "%s", tmp("victim")); /* tmp() has one buffer */
	CHECK(symlink(victim, tmp("snap.rec.2.snapshot")) == 0);
	CHECK_INT(mft_recw_snapshot(w, tmp("snap.rec.2.snapshot"), &fin, err, sizeof(err)), -1);
	CHECK(strstr(err, "already exists"));
	CHECK(access(victim, F_OK) != 0);
	CHECK_INT(mft_recw_close(w, &fin, NULL), 0);
	b = slurp(tmp("snap.rec.1.snapshot"), &len);
	CHECK(b);
	CHECK_INT(mft_rec_parse(b, len, &r), 0);
	free(b);
	CHECK(r.ring && r.clean_end);
	CHECK_INT(r.n_problems, 0);
	CHECK(r.has_host && r.n_targets == 1 && r.n_probes == 1);
	CHECK_INT(r.counters.rb_dropped, 3);
	CHECK(r.n_events > 100);
	/* the newest event in the snapshot is the one written just before it */
	struct mft_event last = mkev((uint64_t)(N / 2));

	last.type = MFT_EV_READ_LATE;
	last.sk = 0;
	CHECK(!memcmp(&last, &r.events[r.n_events - 1], sizeof(last)));
	/* and the ring went on past it */
	b = slurp(tmp("snap.rec"), &len);
	CHECK(b);
	CHECK_INT(mft_rec_parse(b, len, &live), 0);
	free(b);
	CHECK(live.clean_end && live.n_events > 0);
	CHECK_INT(live.events[live.n_events - 1].arg, (uint64_t)(N - 1) * 3);
	mft_rec_free(&r);
	mft_rec_free(&live);
}

/*
 * Format 2 loses nothing: events whose every field is random (the writer codes each
 * against the previous one of its socket) read back byte for byte, in blocks of many
 * events and across many sockets; and a 1.0 file (the fixture small_format = 1 writes)
 * still reads.
 */
static void test_format2_lossless(void)
{
	static struct mft_event evs[5000];
	char err[256];
	struct mft_recw *w = mft_recw_open(tmp("lossless.rec"), &(struct mft_recw_opts){ .force = true }, err,
					   sizeof(err));
	struct mft_recording r;
	uint64_t x = 88172645463325252ull;
	uint8_t *b;
	size_t len;

	CHECK(w);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		uint8_t *p = (uint8_t *)&evs[i];

		for (size_t k = 0; k < sizeof(evs[i]); k++) { /* random bytes, some fields kept */
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			p[k] = (uint8_t)x;
		}
		memset(evs[i].pad, 0, sizeof(evs[i].pad));       /* padding: not recorded (format 1 neither) */
		evs[i].sk = x % 3 ? 0x1000 + x % 70 : evs[i].sk; /* more sockets than a block holds */
		evs[i].pid = x % 5 ? 77 : evs[i].pid;
		if (i && x % 2)
			evs[i].snap = evs[i - 1].snap;
		if (i % 7 == 0)
			memset(evs[i].str + 5, 0, MFT_STR_LEN - 5);
		mft_recw_event(w, &evs[i]);
		if (i % 1000 == 999)
			mft_recw_flush(w);
	}
	CHECK_INT(mft_recw_close(w, NULL, NULL), 0);
	CHECK_INT(mft_rec_load(tmp("lossless.rec"), &r), 0);
	CHECK_INT(r.major, MFT_REC_MAJOR);
	CHECK_INT(r.n_events, sizeof(evs) / sizeof(evs[0]));
	for (size_t i = 0; i < r.n_events && i < sizeof(evs) / sizeof(evs[0]); i++)
		if (memcmp(&evs[i], &r.events[i], sizeof(evs[i]))) {
			CHECK(!"event read back differs");
			break;
		}
	CHECK_INT(r.n_problems, 0);
	mft_rec_free(&r);
	/* the 1.0 fixture: same events, old layout, read by this reader */
	small_format = 1;
	b = small(40, &len, true);
	small_format = 0;
	CHECK(b);
	CHECK_INT(mft_rec_parse(b, len, &r), 0);
	CHECK_INT(r.major, 1);
	CHECK_INT(r.n_events, 40);
	for (int i = 0; i < 40 && i < (int)r.n_events; i++) {
		struct mft_event e = mkev((uint64_t)i);

		CHECK(!memcmp(&e, &r.events[i], sizeof(e)));
	}
	CHECK(r.clean_end);
	mft_rec_free(&r);
	free(b);
}

/* A 1.0 file cut at every byte and damaged at every byte: the same guarantees. */
static void test_format1_cut_and_damage(void)
{
	small_format = 1;
	test_truncate_every_byte();
	test_corrupt_bytes();
	small_format = 0;
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/mft-recfile-XXXXXX");
	if (!mkdtemp(dir)) {
		printf("FAIL setup: mkdtemp\n");
		return 1;
	}
	RUN(test_round_trip);
	RUN(test_truncate_every_byte);
	RUN(test_corrupt_bytes);
	RUN(test_format2_lossless);
	RUN(test_format1_cut_and_damage);
	RUN(test_wrong_magic);
	RUN(test_newer_version);
	RUN(test_newer_minor_unknown_record);
	RUN(test_kill9);
	RUN(test_flight_recorder_wraparound);
	RUN(test_flight_recorder_carries_openings);
	RUN(test_ring_truncate);
	RUN(test_snapshot);
	RUN(test_writer_throughput);
	RUN(test_reader_linear);
	RUN(test_reader_memory);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			printf("# could not remove %s\n", dir);
	}
	UNIT_EXIT();
}
