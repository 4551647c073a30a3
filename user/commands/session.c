// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "collect/elfsym.h"
#include "collect/host.h"
#include "commands/session.h"

#define MAX_TARGETS 256
#define RESCAN_NS 1000000000ull     /* look for new QEMUs every second */
#define MAX_REFUSED 256
#define FORGET_AFTER_NS 3000000000ull /* keep an exited target's probes this long */

struct mft_session {
	const struct mft_session_opts *o;
	struct mft_collector *col;
	struct mft_correlator *corr;
	/* the targets: a process is its pid and its start time (a reused pid is another one) */
	uint32_t pids[MAX_TARGETS];
	uint64_t starts[MAX_TARGETS];
	int n_pids;
	/* processes refused once (pid, start time): not asked again at every rescan */
	struct { uint32_t pid; uint64_t start; } refused[MAX_REFUSED];
	unsigned n_refused;
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
		if (!st[i].ok && !verbose && !st[i].required && strcmp(st[i].mech, "symbol") == 0)
			continue;
		fprintf(stderr, "mftrace: %s%s%u %-26s %-10s %s%s\n", st[i].ok ? "" : "note: ",
			st[i].pid ? "pid " : "kernel", st[i].pid ? st[i].pid : 0, st[i].what, st[i].mech,
			st[i].ok ? "" : "unavailable: ", st[i].why);
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

/* Start tracing pid. -1 on failure (reason on stderr when chatter, or always if fatal). */
static int add_target(struct mft_session *s, uint32_t pid, bool fatal)
{
	struct mft_procinfo pi;
	char err[512];
	uint64_t t_traced = 0;
	int k = known(s, pid);

	if (s->n_pids == MAX_TARGETS && k < 0)
		return 0;
	if (mft_procinfo_read(pid, &pi, err, sizeof(err)))
		goto fail;
	if (k >= 0) {
		if (!pi.start_time || pi.start_time == s->starts[k])
			return 0;
		/* the pid now names another process: the old one is gone */
		forget_target(s, k);
	}
	/* Found while its dynamic loader is still at work: come back at the next rescan,
	 * or its TLS channels would look plain. */
	if (!fatal && !pi.gnutls[0] && needs_gnutls(&pi))
		return 0;
	mft_procinfo_versions(&pi);
	if (mft_collector_add_target(s->col, &pi, &t_traced, err, sizeof(err))) {
		s->refused[s->n_refused % MAX_REFUSED].pid = pid;
		s->refused[s->n_refused % MAX_REFUSED].start = pi.start_time;
		s->n_refused++;
fail:
		if (fatal || s->o->chatter)
			fprintf(stderr, "mftrace: pid %u: %s\n", pid, err);
		return -1;
	}
	s->pids[s->n_pids] = pid;
	s->starts[s->n_pids++] = pi.start_time;
	/* before any of its events is read: a new process of this pid starts fresh */
	mft_corr_set_process(s->corr, pid, pi.start_time, t_traced, pi.name);
	if (s->o->chatter)
		fprintf(stderr, "mftrace: tracing pid %u (%s, %s%s%s)\n", pid, pi.name, pi.exe,
			pi.gnutls[0] ? ", GnuTLS " : ", no GnuTLS mapped", pi.gnutls);
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
		if (s->refused[i].pid == pid && s->refused[i].start == (start ? start : (start = mft_proc_start_time(pid))))
			return true;
	return false;
}

static void rescan(struct mft_session *s)
{
	uint32_t found[MAX_TARGETS];
	int n = mft_find_qemu_pids(found, MAX_TARGETS, skip_known, s);

	for (int i = 0; i < n; i++)
		add_target(s, found[i], false);
}

int mft_session_run(const struct mft_session_opts *o, volatile sig_atomic_t *stop)
{
	struct mft_session s = { .o = o };
	struct mft_corr_opts copts = { .tls_records = o->co.tls_records, .newchan_probe = true };
	char err[512];
	bool mounted;
	int rc = 1;
	uint64_t t_end = 0, t_empty = 0, t_scan = 0;
	bool stay = o->stay || o->all_qemus;

	if (mft_check_btf(err, sizeof(err)) || mft_ensure_tracefs(&mounted, err, sizeof(err))) {
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
	t_scan = mft_mono_now();
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

		fprintf(stderr, "mftrace: %llu events, %llu lost (ring buffer full), %llu sockets untracked "
				"(map full), %llu malformed\n",
			(unsigned long long)mft_collector_counter(s.col, MFT_CNT_EVENTS), (unsigned long long)dropped,
			(unsigned long long)full, (unsigned long long)mft_collector_bad_events(s.col));
		if (dropped || full)
			fprintf(stderr, "mftrace: warning: events were lost; verdicts may be incomplete\n");
	}
out:
	mft_collector_close(s.col);
	mft_corr_free(s.corr);
	return rc;
}
