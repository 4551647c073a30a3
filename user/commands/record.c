// SPDX-License-Identifier: GPL-2.0
/*
 * `mftrace record`: a tracing session whose every raw event goes to a recording
 * (recfile.c), with the host, the targets, the probes and the lost-event counters, for
 * `mftrace report` to analyse later on any machine. With --max-size it is a flight
 * recorder: a file of bounded size that keeps the newest events, and that keeps the
 * incident too: a flagged or failed migration, or SIGUSR2, copies the ring as it stands
 * into a timestamped snapshot next to it (FILE.YYYYMMDDTHHMMSSZ.snapshot, a complete
 * recording), the oldest snapshots beyond --max-snapshots removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include "commands/commands.h"
#include "collect/host.h"
#include "present/output.h"
#include "collect/procinfo.h"
#include "store/recfile.h"
#include "commands/session.h"

#include "commands/cli.h"
#include "version.h"
#define RECORD_TOOL_VERSION MFT_VERSION
#define MIN_MAX_SIZE (512ull << 10) /* 8 segments of 64 KiB: room for the metadata each repeats */
#define COUNTERS_EVERY_NS 1000000000ull
#define CLOCK_EVERY_NS (60ull * 1000000000ull)
#define DEFAULT_OUTPUT "mftrace.data" /* perf's habit: perf.data */
#define DEFAULT_SNAPSHOTS 8
#define MAX_SNAPSHOTS 10000

static const char usage[] =
	"Usage: mftrace record [-p PID ...] [-o FILE] [options]\n"
	"\n"
	"Write every event of a tracing session to FILE, for `mftrace report` to analyse later,\n"
	"on any machine: the host, kernel, QEMU and GnuTLS versions and command lines of the\n"
	"targets, a clock snapshot, the probes attached and how, the events, and the count of\n"
	"lost events. Without -p, every QEMU on this host, including those that start later.\n"
	"The file reads back up to its last complete record after a kill -9 or a cut at any byte.\n"
	"Secrets in the command lines are redacted (data=, password=, key=, ...: see mftrace(8)).\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID        record this QEMU process (repeat for several)\n"
	"  -o, --output FILE    the recording (default mftrace.data in the current folder):\n"
	"                       created with mode 0640, never through a symbolic link, never\n"
	"                       over an existing file (see --force)\n"
	"      --force          replace an existing FILE (a link is replaced, not followed)\n"
	"      --max-size SIZE  flight recorder: keep the newest events in a file of at most SIZE\n"
	"                       bytes (K, M, G suffixes; at least 512K), a ring of 8 segments.\n"
	"                       A flagged or failed migration, or SIGUSR2, then writes a\n"
	"                       snapshot of the ring next to FILE: FILE.YYYYMMDDTHHMMSSZ.snapshot\n"
	"                       (UTC), a complete recording of what the ring held then\n"
	"      --max-snapshots N keep at most N snapshots of FILE, the oldest removed (default\n"
	"                       8; 0: none are taken automatically, SIGUSR2 still takes one)\n"
	"  -d, --duration SECS  stop after SECS seconds (default: Ctrl-C, or when every -p target\n"
	"                       has exited)\n"
	"      --tls-records[=SITE]\n"
	"                       full fidelity: probe every gnutls_record_recv() result; SITE is\n"
	"                       cheapest (default) or entry (see mftrace --help)\n"
	"      --mechanism M    kernel probes for shutdown/close: auto, fentry, kprobe, tracepoint\n"
	"      --btf FILE       kernel types for a kernel without /sys/kernel/btf/vmlinux\n"
	"                       (see mftrace --help)\n"
	"      --show           also print what live mode prints: the verdict tables as\n"
	"                       migrations end (with -q), and event lines (without)\n"
	"  -j, --json           with --show: JSON lines, as `mftrace --json` (= --format json)\n"
	"  -f, --format F       with --show: text (default) or json\n"
	"  -q, --quiet          with --show: verdict tables only\n"
	"  -w, --wide           with --show: every column of the verdict table (see mftrace --help)\n"
	"  -v, --verbose        libbpf's log and every attach point; with --show, the other\n"
	"                       connections too (no migration evidence, never judged)\n"
	"  -h, --help           this help\n"
	"\n"
	"Examples:\n"
	"  mftrace record -p 4242                          # one QEMU, until it exits, to mftrace.data\n"
	"  mftrace record -o /var/lib/mftrace/mftrace.data --max-size 64M   # always on\n"
	"  kill -USR2 $(pidof mftrace)                     # keep what the ring holds now\n"
	"  mftrace report src.data dst.data                # later: one timeline, two hosts\n";

struct recorder {
	struct mft_recw *w;
	const char *path;
	struct mft_output out;
	bool show;
	uint64_t status_seq; /* the last attach status written (mft_attach_status.seq) */
	struct mft_rec_counters last;
	uint64_t t_counters, t_clock;
	bool warned;
	bool ring;            /* --max-size */
	long keep;            /* --max-snapshots */
	const char *snap_why; /* a snapshot is due at the next tick, for this reason */
	char snap_ts[20];     /* the second of the latest snapshot, and its number in it: */
	int snap_n;           /* a later one that second never reuses a name pruned since */
	char snap_reason[96];
};

static volatile sig_atomic_t usr2;

static void on_usr2(int sig)
{
	(void)sig;
	usr2 = 1;
}

static void take_clock(struct mft_rec_clock *c)
{
	struct timespec m1, r, m2;

	clock_gettime(CLOCK_MONOTONIC, &m1);
	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m2);
	uint64_t a = (uint64_t)m1.tv_sec * 1000000000ull + (uint64_t)m1.tv_nsec;
	uint64_t b = (uint64_t)m2.tv_sec * 1000000000ull + (uint64_t)m2.tv_nsec;

	c->mono_ns = a + (b - a) / 2;
	c->real_ns = (int64_t)r.tv_sec * 1000000000ll + r.tv_nsec;
	c->err_ns = (b - a) / 2 + 1;
}

static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

static void host_info(struct mft_rec_host *h, const struct mft_collector_opts *co, bool all)
{
	struct utsname u;

	memset(h, 0, sizeof(*h));
	if (!uname(&u)) {
		snprintf(h->hostname, sizeof(h->hostname), "%s", u.nodename);
		snprintf(h->kernel, sizeof(h->kernel), "%s %s", u.release, u.version);
		snprintf(h->machine, sizeof(h->machine), "%.31s", u.machine);
	}
	read_line("/proc/sys/kernel/random/boot_id", h->boot_id, sizeof(h->boot_id));
	snprintf(h->tool_version, sizeof(h->tool_version), "%s", RECORD_TOOL_VERSION);
	if (co->forced_mech != MFT_MECH_NONE)
		snprintf(h->mechanism, sizeof(h->mechanism), "%s", mft_mech_name(co->forced_mech));
	h->tls_records = co->tls_records;
	h->all_qemus = all;
}

/* The arguments joined by spaces, secrets redacted (mft_redact_args: the rule is in mftrace(8)). */
static void cmdline(uint32_t pid, char *buf, size_t len)
{
	char path[64], raw[8192];
	int fd;
	ssize_t n;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, raw, sizeof(raw));
	close(fd);
	if (n > 0)
		mft_redact_args(buf, len, raw, (size_t)n);
}

/* Attach statuses not yet written: the kernel's at start, each target's as it is added.
 * By sequence number, not position: the statuses of a forgotten target are removed from
 * the collector's array, which moves the later ones down. */
static void write_statuses(struct recorder *r, const struct mft_session *s)
{
	size_t n;
	const struct mft_attach_status *st = mft_session_status(s, &n);
	uint64_t last = r->status_seq;

	for (size_t i = 0; i < n; i++) {
		const struct mft_attach_status *a = &st[i];
		struct mft_rec_probe p = { .pid = a->pid, .ok = a->ok, .required = a->required };

		if (a->seq <= r->status_seq)
			continue;
		if (a->seq > last)
			last = a->seq;
		snprintf(p.what, sizeof(p.what), "%s", a->what);
		snprintf(p.mech, sizeof(p.mech), "%s", mft_mech_name(a->mech));
		snprintf(p.why, sizeof(p.why), "%s", a->why);
		mft_recw_probe(r->w, &p);
	}
	r->status_seq = last;
}

static void on_raw(void *ctx, const struct mft_event *ev)
{
	struct recorder *r = ctx;

	mft_recw_event(r->w, ev);
}

static void on_target(void *ctx, const struct mft_session *s, const struct mft_procinfo *pi, bool added)
{
	struct recorder *r = ctx;
	struct mft_rec_target *t = calloc(1, sizeof(*t));

	if (!t)
		return;
	t->pid = pi->pid;
	t->t_mono = mft_mono_now();
	t->removed = !added;
	if (added) {
		t->incoming = pi->incoming;
		snprintf(t->name, sizeof(t->name), "%s", pi->name);
		snprintf(t->exe, sizeof(t->exe), "%.511s", pi->exe);
		snprintf(t->qemu_version, sizeof(t->qemu_version), "%s", pi->qemu_version);
		if (pi->gnutls[0]) {
			snprintf(t->gnutls, sizeof(t->gnutls), "%.511s", pi->gnutls);
			snprintf(t->gnutls_version, sizeof(t->gnutls_version), "%s", pi->gnutls_version);
		}
		cmdline(pi->pid, t->cmdline, sizeof(t->cmdline));
	}
	mft_recw_target(r->w, t);
	free(t);
	write_statuses(r, s);
	mft_recw_flush(r->w);
}

static struct mft_rec_counters read_counters(const struct mft_session *s, uint64_t now)
{
	struct mft_rec_counters c = {
		.mono_ns = now,
		.kernel_events = mft_session_counter(s, MFT_CNT_EVENTS),
		.rb_dropped = mft_session_counter(s, MFT_CNT_RB_DROPPED),
		.sockmap_full = mft_session_counter(s, MFT_CNT_SOCK_MAP_FULL),
		.bad_events = mft_session_bad_events(s),
	};

	return c;
}

static void counters(struct recorder *r, const struct mft_session *s, uint64_t now)
{
	r->last = read_counters(s, now);
	mft_recw_counters(r->w, &r->last);
}

/* The trailer's counters: read after the final drain, not at the last tick. */
static void on_done(void *ctx, const struct mft_session *s, uint64_t now)
{
	((struct recorder *)ctx)->last = read_counters(s, now);
}

/* "FILE.20261201T050400Z.snapshot" (n == 1) or "FILE.20261201T050400Z.N.snapshot" */
static void snapshot_name(char *buf, size_t len, const char *path, const struct tm *tm, int n)
{
	char ts[32];

	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", tm);
	if (n == 1)
		snprintf(buf, len, "%s.%s.snapshot", path, ts);
	else
		snprintf(buf, len, "%s.%s.%d.snapshot", path, ts, n);
}

/* Is name one of base's snapshots? Its timestamp and number (for the order) if so. */
static bool snapshot_of(const char *name, const char *base, char ts[17], long *n)
{
	size_t bl = strlen(base);
	const char *p = name + bl + 1, *rest;
	char *end;

	if (strncmp(name, base, bl) || name[bl] != '.' || strlen(p) < 16 + 9)
		return false;
	for (int i = 0; i < 16; i++)
		if (i == 8 ? p[i] != 'T' : i == 15 ? p[i] != 'Z' : (p[i] < '0' || p[i] > '9'))
			return false;
	memcpy(ts, p, 16);
	ts[16] = '\0';
	rest = p + 16;
	*n = 1;
	if (rest[0] == '.' && rest[1] >= '1' && rest[1] <= '9') {
		*n = strtol(rest + 1, &end, 10);
		rest = end;
	}
	return !strcmp(rest, ".snapshot");
}

struct snap {
	char ts[17];
	long n;
	char name[256];
};

static int snap_cmp(const void *a, const void *b)
{
	const struct snap *x = a, *y = b;
	int c = strcmp(x->ts, y->ts);

	return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Remove the oldest snapshots of path beyond keep: regular files only, never through a
 * link (unlinkat removes a name, not what it points to). */
static void prune_snapshots(const char *path, long keep)
{
	char dirpath[PATH_MAX];
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	struct snap *sn = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	snprintf(dirpath, sizeof(dirpath), "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
	if (!(d = opendir(dirpath)))
		return;
	while ((de = readdir(d))) {
		struct snap x;
		struct stat st;

		if (!snapshot_of(de->d_name, base, x.ts, &x.n) || strlen(de->d_name) >= sizeof(x.name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		snprintf(x.name, sizeof(x.name), "%s", de->d_name);
		sn = mft_grow(sn, &cap, n + 1, sizeof(*sn));
		sn[n++] = x;
	}
	if (n > (size_t)keep) {
		qsort(sn, n, sizeof(*sn), snap_cmp);
		for (size_t i = 0; i < n - (size_t)keep; i++)
			if (!unlinkat(dirfd(d), sn[i].name, 0))
				fprintf(stderr, "mftrace: removed the oldest snapshot %s%s (--max-snapshots %ld)\n",
					slash ? dirpath : "", sn[i].name, keep);
	}
	closedir(d);
	free(sn);
}

/* The ring as it stands, into a new timestamped file next to it. */
static void take_snapshot(struct recorder *r, const struct mft_session *s, uint64_t now, const char *why)
{
	struct mft_rec_counters fin = read_counters(s, now);
	char path[PATH_MAX + 64], err[PATH_MAX + 128];
	time_t t = time(NULL);
	struct tm tm;
	int rc = -1;

	char ts[20];
	int n = 1;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
	if (!strcmp(ts, r->snap_ts))
		n = r->snap_n + 1;     /* names sort in the order they were taken */
	for (; n <= 1000 && rc; n++) { /* a name taken (or a link planted): the next */
		snapshot_name(path, sizeof(path), r->path, &tm, n);
		rc = mft_recw_snapshot(r->w, path, &fin, err, sizeof(err));
		if (rc && !strstr(err, "already exists"))
			break;
	}
	snprintf(r->snap_ts, sizeof(r->snap_ts), "%s", ts);
	r->snap_n = n - 1;
	if (rc) {
		fprintf(stderr, "mftrace: warning: no snapshot (%s): %s\n", why, err);
		return;
	}
	fprintf(stderr, "mftrace: snapshot (%s): %s\n", why, path);
	if (r->keep > 0)
		prune_snapshots(r->path, r->keep);
}

/* A flagged or failed migration freezes the ring: the incident is kept before newer
 * events overwrite it. Taken at the next tick, from the session's thread. */
static void on_migration(void *ctx, const struct mft_correlator *c, const struct mft_migration *m)
{
	struct recorder *r = ctx;

	if (r->show)
		mft_out_migration(&r->out, c, m);
	if (r->ring && r->keep > 0 && (m->verdict.flagged || m->failed) && !r->snap_why) {
		snprintf(r->snap_reason, sizeof(r->snap_reason), "migration of pid %u %s", m->pid,
			 m->failed ? "failed" : "flagged");
		r->snap_why = r->snap_reason;
	}
}

static void on_event(void *ctx, const struct mft_correlator *c, const struct mft_chan *ch, const struct mft_event *ev)
{
	struct recorder *r = ctx;

	mft_out_event(&r->out, c, ch, ev);
}

static void on_other(void *ctx, const struct mft_correlator *c, const struct mft_migration *m)
{
	struct recorder *r = ctx;

	mft_out_other(&r->out, c, m);
}

static void on_tick(void *ctx, const struct mft_session *s, uint64_t now)
{
	struct recorder *r = ctx;
	const struct mft_recw_stats *st = mft_recw_stats(r->w);

	write_statuses(r, s);
	if (now >= r->t_counters + COUNTERS_EVERY_NS) {
		counters(r, s, now);
		r->t_counters = now;
	}
	if (now >= r->t_clock + CLOCK_EVERY_NS) { /* for drift between the two clocks */
		struct mft_rec_clock c;

		take_clock(&c);
		mft_recw_clock(r->w, &c);
		r->t_clock = now;
	}
	mft_recw_flush(r->w); /* from here a kill -9 loses nothing the ring buffer gave us */
	if (usr2) {
		usr2 = 0;
		take_snapshot(r, s, now, "SIGUSR2");
	}
	if (r->snap_why) {
		take_snapshot(r, s, now, r->snap_why);
		r->snap_why = NULL;
	}
	if (st->last_errno && !r->warned) {
		fprintf(stderr, "mftrace: warning: cannot write %s: %s; events are being lost (counted)\n", r->path,
			strerror(st->last_errno));
		r->warned = true;
	}
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || !isfinite(v) || v <= 0)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		v *= 1024;
		end++;
		break;
	case 'm':
	case 'M':
		v *= 1024 * 1024;
		end++;
		break;
	case 'g':
	case 'G':
		v *= 1024.0 * 1024 * 1024;
		end++;
		break;
	default: break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > (double)(1ull << 50))
		return -1;
	*out = (uint64_t)v;
	return 0;
}

int mft_cmd_record(int argc, char **argv)
{
	static const struct option longopts[] = {
		MFT_CLI_TARGET_LONGOPTS,
		{ "output", required_argument, NULL, 'o' },
		{ "max-size", required_argument, NULL, 'S' },
		MFT_CLI_PROBE_LONGOPTS,
		{ "show", no_argument, NULL, 's' },
		MFT_CLI_PRINT_LONGOPTS,
		{ "force", no_argument, NULL, 'F' },
		{ "max-snapshots", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mft_cli_trace t = { 0 };
	struct mft_recw_opts wo = { 0 };
	struct recorder r = { .path = DEFAULT_OUTPUT, .keep = DEFAULT_SNAPSHOTS };
	struct mft_rec_host host;
	struct mft_rec_clock clk;
	int opt, rc;
	char err[512];

	optind = 1;
	while ((opt = mft_cli_next_opt("record", argc, argv, ":p:o:d:jf:qwvh", longopts, &t)) != -1) {
		switch (opt) {
		case 'o': r.path = optarg; break;
		case 'S':
			if (parse_size(optarg, &wo.max_size) || wo.max_size < MIN_MAX_SIZE) {
				fprintf(stderr,
					"mftrace: invalid --max-size '%s' (bytes with K, M or G; at least 512K)\n",
					optarg);
				return 1;
			}
			break;
		case 's': r.show = true; break;
		case 'F': wo.force = true; break;
		case 'K': {
			char *end;

			errno = 0;
			r.keep = strtol(optarg, &end, 10);
			if (end == optarg || *end || errno || r.keep < 0 || r.keep > MAX_SNAPSHOTS) {
				fprintf(stderr, "mftrace: invalid --max-snapshots '%s' (0 to %d)\n", optarg,
					MAX_SNAPSHOTS);
				return 1;
			}
			break;
		}
		case 'h': fputs(usage, stdout); return 0;
		default: /* MFT_CLI_BAD: already said */ return 1;
		}
	}
	if (optind < argc)
		return mft_cli_unexpected("record", argv);
	r.ring = wo.max_size != 0;
	if (mft_cli_check_targets(t.pids, t.n_pids))
		return 1;
	r.w = mft_recw_open(r.path, &wo, err, sizeof(err));
	if (!r.w) {
		fprintf(stderr, "mftrace: %s\n", err);
		return 1;
	}
	host_info(&host, &t.co, t.n_pids == 0);
	mft_recw_host(r.w, &host);
	take_clock(&clk);
	mft_recw_clock(r.w, &clk);
	mft_recw_flush(r.w);
	r.t_clock = r.t_counters = clk.mono_ns;
	/* what --show prints is what a report of this file prints: the same clock offset */
	r.out.out = stdout;
	r.out.json = t.json;
	r.out.events = !t.quiet;
	r.out.others = t.co.verbose;
	r.out.mono_to_real = clk.real_ns - (int64_t)clk.mono_ns;
	mft_out_fit(&r.out, t.wide);

	struct mft_session_opts so = {
		.co = t.co,
		.pids = t.pids,
		.n_pids = t.n_pids,
		.all_qemus = t.n_pids == 0,
		.duration = t.duration,
		.chatter = true,
		.ctx = &r,
		.raw = on_raw,
		.target = on_target,
		.tick = on_tick,
		.done = on_done,
	};

	/* the correlator judges every migration (the snapshot triggers); --show prints them */
	so.sink = (struct mft_sink){ .ctx = &r,
				     .event = r.show ? on_event : NULL,
				     .migration = on_migration,
				     .other = r.show ? on_other : NULL };
	mft_cli_catch_signals();
	signal(SIGUSR2, on_usr2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	fprintf(stderr, "mftrace: recording to %s%s\n", r.path,
		!wo.max_size ? ""
		: r.keep     ? " (flight recorder; a flagged or failed migration, or SIGUSR2, snapshots it)"
			     : " (flight recorder; SIGUSR2 snapshots it)");
	rc = mft_session_run(&so, &mft_cli_stop);
	{
		struct mft_recw_stats st;
		int crc = mft_recw_close(r.w, &r.last, &st);

		if (crc) {
			fprintf(stderr, "mftrace: error: finishing %s: %s\n", r.path, strerror(-crc));
			return 1;
		}
		fprintf(stderr, "mftrace: %s: %llu events recorded (%llu bytes written)\n", r.path,
			(unsigned long long)st.events_written, (unsigned long long)st.bytes_written);
		if (st.events_overwritten)
			fprintf(stderr, "mftrace: %s: the flight recorder overwrote its %llu oldest events\n", r.path,
				(unsigned long long)st.events_overwritten);
		if (st.events_unwritten)
			fprintf(stderr, "mftrace: %s: warning: %llu events could not be written\n", r.path,
				(unsigned long long)st.events_unwritten);
	}
	return rc;
}
