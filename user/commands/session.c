// SPDX-License-Identifier: GPL-2.0
/*
 * The tracing loop every command runs (session.h). Its tables are bounded (targets, the
 * processes refused once) and every bound is counted: mft_session_limits() gives them to
 * the exporter's metrics, and the summary printed at the end names each one that was
 * reached.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <time.h>
#include "collect/elfsym.h"
#include "collect/host.h"
#include "commands/session.h"

/* Look for new QEMUs every 100 ms: libvirt's destination QEMU opens its migration
 * sockets about half a second after it starts, and a target found after that has those
 * channels judged incomplete. A rescan reads /proc and one exe link per unknown pid. */
#define RESCAN_NS 100000000ull
#define SWEEP_NS 1000000000ull /* the collector's housekeeping: once a second */
#define MAX_REFUSED MFT_MAX_TARGETS
#define FORGET_AFTER_NS 3000000000ull /* keep an exited target's probes this long */
#define RETRIES 3

struct mft_session {
	const struct mft_session_opts *o;
	struct mft_collector *col;
	struct mft_correlator *corr;
	/* the targets: a process is its pid and its start time (a reused pid is another one) */
	uint32_t pids[MFT_MAX_TARGETS];
	uint64_t starts[MFT_MAX_TARGETS];
	int n_pids;
	/* processes refused (pid, start time): asked again at the next rescans at most
	 * RETRIES times (a QEMU met while it starts can refuse for a moment: its mappings
	 * move under /proc/PID/map_files), then no more; those refused only because the
	 * table was full (full) are asked again once a slot frees */
	struct {
		uint32_t pid;
		uint64_t start;
		bool full;
		unsigned tries;
	} refused[MAX_REFUSED];
	unsigned n_refused;
	uint64_t targets_over_limit; /* QEMUs not traced because MFT_MAX_TARGETS were */
};

uint64_t mft_session_counter(const struct mft_session *s, int idx)
{
	return mft_collector_counter(s->col, idx);
}

uint64_t mft_session_bad_events(const struct mft_session *s)
{
	return mft_collector_bad_events(s->col);
}

const struct mft_attach_status *mft_session_status(const struct mft_session *s, size_t *n)
{
	return mft_collector_status(s->col, n);
}

size_t mft_session_n_targets(const struct mft_session *s)
{
	return mft_collector_n_targets(s->col);
}

static void on_event(void *ctx, const struct mft_event *ev)
{
	struct mft_session *s = ctx;

	if (s->o->raw)
		s->o->raw(s->o->ctx, ev);
	mft_corr_feed(s->corr, ev);
	if (ev->type == MFT_EV_PROC_EXIT && s->o->chatter)
		fprintf(stderr, "mftrace: pid %u exited (status %lld)\n", ev->pid, (long long)ev->ret);
}

static void print_status(const struct mft_collector *col, bool verbose)
{
	size_t n;
	const struct mft_attach_status *st = mft_collector_status(col, &n);

	for (size_t i = 0; i < n; i++) {
		if (st[i].ok && !verbose)
			continue;
		if (!st[i].ok && !verbose && !st[i].required && st[i].mech == MFT_MECH_SYMBOL)
			continue;
		char why[sizeof(st[i].why)]; /* may name the target's files */

		fprintf(stderr, "mftrace: %s%s%u %-26s %-10s %s%s\n",
			st[i].ok ? "" : "note: ", st[i].pid ? "pid " : "kernel", st[i].pid ? st[i].pid : 0, st[i].what,
			mft_mech_name(st[i].mech),
			st[i].ok ? "" : "unavailable: ", mft_sanitize(why, sizeof(why), st[i].why));
	}
}

static int known(const struct mft_session *s, uint32_t pid)
{
	for (int i = 0; i < s->n_pids; i++)
		if (s->pids[i] == pid)
			return i;
	return -1;
}

static void forget_target(struct mft_session *s, int idx);

static bool needs_gnutls(const struct mft_procinfo *pi)
{
	char err[256];
	struct mft_elf *e = mft_elf_open(pi->exe_open, err, sizeof(err));
	bool yes = mft_elf_needs(e, "libgnutls.so");

	mft_elf_close(e);
	return yes;
}

/* How many times this (pid, start time) has been refused for this reason, now included. */
static unsigned remember_refused(struct mft_session *s, uint32_t pid, uint64_t start, bool full)
{
	for (unsigned i = 0; i < s->n_refused && i < MAX_REFUSED; i++)
		if (s->refused[i].pid == pid && s->refused[i].start == start && s->refused[i].full == full)
			return ++s->refused[i].tries;
	s->refused[s->n_refused % MAX_REFUSED].tries = 1;
	s->refused[s->n_refused % MAX_REFUSED].pid = pid;
	s->refused[s->n_refused % MAX_REFUSED].start = start;
	s->refused[s->n_refused % MAX_REFUSED].full = full;
	s->n_refused++;
	return 1;
}

/* Start tracing pid. -1 on failure (reason on stderr when chatter, or always if fatal). */
static int add_target(struct mft_session *s, uint32_t pid, bool fatal)
{
	struct mft_procinfo pi;
	char err[512];
	uint64_t t_traced = 0;
	int k = known(s, pid);
	bool say = fatal; /* a refusal is said once per process: when it is final */

	if (mft_procinfo_read(pid, &pi, err, sizeof(err)))
		goto fail;
	if (k >= 0) {
		if (!pi.start_time || pi.start_time == s->starts[k])
			return 0;
		/* the pid now names another process: the old one is gone */
		forget_target(s, k);
	}
	if (s->n_pids == MFT_MAX_TARGETS) { /* counted and said once per process */
		s->targets_over_limit++;
		say |= remember_refused(s, pid, pi.start_time, true) == 1;
		snprintf(err, sizeof(err),
			 "not traced: %d QEMU processes are traced already, the limit "
			 "(mftrace_resource_refused_total{resource=\"targets\"})",
			 MFT_MAX_TARGETS);
		goto fail;
	}
	/* Found while its dynamic loader is still at work: come back at the next rescan,
	 * or its TLS channels would look plain. */
	if (!fatal && !pi.gnutls[0] && needs_gnutls(&pi))
		return 0;
	mft_procinfo_versions(&pi);
	if (mft_collector_add_target(s->col, &pi, &t_traced, err, sizeof(err))) {
		/* A QEMU still starting can remap its libgnutls between our reading its maps and
		 * opening the mapping: that is worth another look at the next rescan. */
		if (fatal || !pi.gnutls_open[0] || !access(pi.gnutls_open, F_OK))
			say |= remember_refused(s, pid, pi.start_time, false) == RETRIES;
fail:
		if (say && (fatal || s->o->chatter)) {
			char safe[sizeof(err)];

			fprintf(stderr, "mftrace: pid %u: %s\n", pid, mft_sanitize(safe, sizeof(safe), err));
		}
		return -1;
	}
	s->pids[s->n_pids] = pid;
	s->starts[s->n_pids++] = pi.start_time;
	/* before any of its events is read: a new process of this pid starts fresh */
	mft_corr_set_process(s->corr, pid, pi.start_time, t_traced, pi.name);
	if (s->o->chatter) {
		char name[64];
		const char *exe = strrchr(pi.exe, '/');

		/* "10.0.2 (Debian ...)": the version number is enough here */
		fprintf(stderr, "mftrace: tracing pid %u (%s): %s %.*s, %s%s\n", pid,
			mft_sanitize(name, sizeof(name), pi.name),
			pi.qemu_version[0] ? "QEMU"
			: exe              ? exe + 1
					   : pi.exe,
			(int)strcspn(pi.qemu_version, " "), pi.qemu_version,
			pi.gnutls[0] ? "GnuTLS " : "no GnuTLS mapped",
			pi.gnutls[0] ? (pi.gnutls_version[0] ? pi.gnutls_version : "(version unknown)") : "");
		if (s->o->co.verbose)
			fprintf(stderr, "mftrace: pid %u: binary %s, libgnutls %s\n", pid, pi.exe,
				pi.gnutls[0] ? pi.gnutls : "none");
	}
	if (s->o->target)
		s->o->target(s->o->ctx, s, &pi, true);
	return 0;
}

static void forget_target(struct mft_session *s, int idx)
{
	struct mft_procinfo pi = { .pid = s->pids[idx] };

	mft_collector_remove_target(s->col, s->pids[idx]);
	s->n_pids--;
	s->pids[idx] = s->pids[s->n_pids];
	s->starts[idx] = s->starts[s->n_pids];
	for (unsigned i = 0; i < s->n_refused && i < MAX_REFUSED; i++)
		if (s->refused[i].full) /* a slot is free: ask them again */
			s->refused[i].pid = 0;
	if (s->o->target)
		s->o->target(s->o->ctx, s, &pi, false);
}

static bool skip_known(void *ctx, uint32_t pid)
{
	const struct mft_session *s = ctx;
	int k = known(s, pid);
	uint64_t start = 0;

	/* a known pid whose process is another one now (its start time says) is new */
	if (k >= 0)
		return (start = mft_proc_start_time(pid)) == 0 || start == s->starts[k];

	for (unsigned i = 0; i < s->n_refused && i < MAX_REFUSED; i++)
		if (s->refused[i].pid == pid &&
		    s->refused[i].start == (start ? start : (start = mft_proc_start_time(pid))))
			return s->refused[i].full || s->refused[i].tries >= RETRIES;
	return false;
}

static void rescan(struct mft_session *s)
{
	static uint32_t found[MFT_MAX_TARGETS];
	int n = mft_find_qemu_pids(found, MFT_MAX_TARGETS, skip_known, s);

	for (int i = 0; i < n; i++)
		add_target(s, found[i], false);
}

/* Descriptors open now: every probe link holds two (the link and its perf event). */
static uint64_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	uint64_t n = 0;

	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own */
}

/* Every probe link holds two descriptors: a few hundred QEMUs need thousands. Take the
 * hard limit (the systemd unit sets LimitNOFILE); a shortfall shows as a limit. */
static void raise_nofile(void)
{
	struct rlimit r;

	if (!getrlimit(RLIMIT_NOFILE, &r) && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

size_t mft_session_prog_stats(const struct mft_session *s, struct mft_prog_stat *out, size_t max)
{
	return mft_collector_prog_stats(s->col, out, max);
}

size_t mft_session_limits(const struct mft_session *s, struct mft_limit *out, size_t max)
{
	const struct mft_collector *c = s->col;
	size_t n = 0, n_status;
	struct rlimit nofile = { 0 };
	struct mft_limit l[7] = {
		{ "targets", (uint64_t)s->n_pids, MFT_MAX_TARGETS, s->targets_over_limit,
		  "QEMU processes traced at once; one over it is not traced (said once, retried when one exits)" },
		{ "attach_statuses", 0, MFT_MAX_STATUS, mft_collector_statuses_dropped(c),
		  "attach points remembered (about 25 per target); past it a probe's status is not shown" },
		{ "socket_map", 0, 0, mft_collector_counter(c, MFT_CNT_SOCK_MAP_FULL),
		  "TCP sockets of targets tracked in the kernel (not LRU); past it a socket is untracked" },
		{ "tls_session_map", 0, 0, mft_collector_counter(c, MFT_CNT_SESSION_MAP_FULL),
		  "TLS sessions tied to their socket; past it a bye or deinit cannot be placed" },
		{ "call_maps", 0, 0, mft_collector_counter(c, MFT_CNT_CALL_MAP_FULL),
		  "target threads inside a probed GnuTLS call; past it the call is not followed" },
		{ "thread_map", 0, 0, mft_collector_counter(c, MFT_CNT_THREAD_MAP_FULL),
		  "target threads bound to the socket they read or write; past it a channel's SYNC packets "
		  "on that thread are not seen" },
		{ "file_descriptors", open_fds(), 0, mft_collector_attach_no_fd(c),
		  "two per probe link (about 20 links per target); past RLIMIT_NOFILE a probe cannot attach" },
	};

	mft_collector_status(c, &n_status);
	l[1].used = n_status;
	mft_collector_map_fill(c, MFT_FILL_SOCKS, &l[2].used, &l[2].capacity);
	mft_collector_map_fill(c, MFT_FILL_SESSIONS, &l[3].used, &l[3].capacity);
	mft_collector_map_fill(c, MFT_FILL_CALLS, &l[4].used, &l[4].capacity);
	mft_collector_map_fill(c, MFT_FILL_THREADS, &l[5].used, &l[5].capacity);
	if (!getrlimit(RLIMIT_NOFILE, &nofile))
		l[6].capacity = nofile.rlim_cur == RLIM_INFINITY ? UINT64_MAX : nofile.rlim_cur;
	for (size_t i = 0; i < sizeof(l) / sizeof(l[0]) && n < max; i++)
		out[n++] = l[i];
	return n;
}

/* The end-of-run summary: every bounded table, and a warning for each that overflowed. */
static void print_limits(const struct mft_session *s)
{
	struct mft_limit l[8];
	size_t n = mft_session_limits(s, l, 8);
	const char *head = "mftrace: limits (in use/capacity):";
	size_t col = strlen(head);

	/* wrapped to fit an 80-column terminal */
	fputs(head, stderr);
	for (size_t i = 0; i < n; i++) {
		char item[128];
		int len = snprintf(item, sizeof(item), " %s %llu/%llu%s", l[i].resource, (unsigned long long)l[i].used,
				   (unsigned long long)l[i].capacity, i + 1 < n ? "," : "");

		if (col + (size_t)len > 79) {
			fputs("\nmftrace:  ", stderr);
			col = strlen("mftrace:  ");
		}
		fputs(item, stderr);
		col += (size_t)len;
	}
	fputc('\n', stderr);
	for (size_t i = 0; i < n; i++)
		if (l[i].refused)
			fprintf(stderr, "mftrace: warning: limit reached: %s: %llu refused (%s)\n", l[i].resource,
				(unsigned long long)l[i].refused, l[i].what);
}

int mft_session_run(const struct mft_session_opts *o, volatile sig_atomic_t *stop)
{
	struct mft_session s = { .o = o };
	struct mft_corr_opts copts = { .tls_records = o->co.tls_records, .newchan_probe = true };
	char err[512];
	bool mounted;
	int rc = 1;
	uint64_t t_end = 0, t_empty = 0, t_scan = 0, t_sweep = 0;
	bool stay = o->stay || o->all_qemus;

	raise_nofile();
	if (mft_check_btf(o->co.btf, err, sizeof(err)) || mft_ensure_tracefs(&mounted, err, sizeof(err))) {
		fprintf(stderr, "mftrace: %s\n", err);
		return 1;
	}
	s.corr = mft_corr_new(&copts, &o->sink);
	s.col = mft_collector_open(&o->co, on_event, &s, err, sizeof(err));
	if (!s.corr || !s.col) {
		fprintf(stderr, "mftrace: %s\n", s.col ? "out of memory" : err);
		goto out;
	}
	for (int i = 0; i < o->n_pids; i++)
		if (add_target(&s, o->pids[i], true))
			goto out;
	if (o->all_qemus)
		rescan(&s);
	if (o->chatter) {
		print_status(s.col, o->co.verbose);
		fprintf(stderr, "mftrace: ready (%s mode%s); Ctrl-C to stop\n",
			o->co.tls_records ? "full-fidelity --tls-records" : "default",
			o->all_qemus ? ", every QEMU on this host" : "");
	}
	if (o->duration > 0)
		t_end = mft_mono_now() + (uint64_t)(o->duration * 1e9);
	t_scan = t_sweep = mft_mono_now();
	while (!*stop) {
		int n = mft_collector_poll(s.col, 100);
		uint64_t now = mft_mono_now();

		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "mftrace: ring buffer poll failed: %s\n", strerror(-n));
			goto out;
		}
		mft_corr_tick(s.corr, now);
		if (o->tick)
			o->tick(o->ctx, &s, now);
		if (t_end && now >= t_end)
			break;
		/* forget targets that exited, once their last events are in */
		for (int i = 0; i < s.n_pids; i++) {
			const struct mft_process *p = mft_corr_process(s.corr, s.pids[i]);

			if (p && p->exited && now > p->t_exit + FORGET_AFTER_NS)
				forget_target(&s, i--);
		}
		if (o->all_qemus && now >= t_scan + RESCAN_NS) {
			rescan(&s);
			t_scan = now;
		}
		if (now >= t_sweep + SWEEP_NS) {
			mft_collector_sweep(s.col);
			t_sweep = now;
		}
		if (!stay && !s.n_pids) {
			if (!t_empty)
				t_empty = now;
			if (now > t_empty + 500000000ull && !mft_corr_open_migrations(s.corr)) {
				if (o->chatter)
					fprintf(stderr, "mftrace: every traced process has exited\n");
				break;
			}
		}
	}
	/* drain what is left, then judge what is still open */
	mft_collector_poll(s.col, 0);
	mft_corr_finish(s.corr, mft_mono_now());
	if (o->done)
		o->done(o->ctx, &s, mft_mono_now());
	rc = 0;
	if (o->chatter) {
		uint64_t dropped = mft_collector_counter(s.col, MFT_CNT_RB_DROPPED);
		uint64_t full = mft_collector_counter(s.col, MFT_CNT_SOCK_MAP_FULL);

		print_limits(&s); /* the events line stays the last: scripts read it */
		fprintf(stderr, "mftrace: %llu events, %llu lost, %llu sockets untracked, %llu malformed\n",
			(unsigned long long)mft_collector_counter(s.col, MFT_CNT_EVENTS), (unsigned long long)dropped,
			(unsigned long long)full, (unsigned long long)mft_collector_bad_events(s.col));
		if (dropped || full)
			fprintf(stderr, "mftrace: warning: the ring buffer or the socket map was full: events were "
					"lost, verdicts may be incomplete\n");
	}
out:
	mft_collector_close(s.col);
	mft_corr_free(s.corr);
	return rc;
}
