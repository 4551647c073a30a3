// SPDX-License-Identifier: GPL-2.0
/*
 * The collector (collector.h). Detaching a uprobe link makes the kernel wait for RCU grace
 * periods (tens to hundreds of milliseconds here), under a mutex that every perf-event
 * attach and detach on the host takes: a target has about 20 links, so forgetting one
 * inline would stall the ring buffer for seconds. Links are therefore handed to a reaper
 * thread. One is enough (the kernel serialises detaches anyway), and it pauses while a
 * target is being attached, so that picking up a new QEMU does not queue behind the old
 * one's links. Closing waits for it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "base/util.h"
#include "collect/collector.h"
#include "collect/elfsym.h"
#include "collect/probe_site.h"
#include "collect/host.h"
#include "mftrace.skel.h"

#define MAX_LINKS_PER_TARGET 48 /* a target needs about 20 (25 with USDT) */
#define REAPERS 1

/* Links waiting to be destroyed, and the threads that destroy them. */
struct reaper {
	pthread_mutex_t lock;
	pthread_cond_t more, idle;
	struct bpf_link **q;
	size_t n, cap;
	unsigned busy;
	bool stop;
	bool hold; /* a target is being attached: wait */
	pthread_t th[REAPERS];
	int n_threads;
};

struct target {
	uint32_t pid;
	uint8_t track; /* MFT_TRACK_*: the sockets its threads are remembered by (slot_track) */
	struct bpf_link *links[MAX_LINKS_PER_TARGET];
	int n_links;
};

struct mft_collector {
	struct mftrace_bpf *skel;
	struct ring_buffer *rb;
	struct mft_collector_opts opts;
	mft_event_fn fn;
	void *ctx;
	struct bpf_link *klinks[32];
	int n_klinks;
	struct target targets[MFT_MAX_TARGETS];
	size_t n_targets;
	struct mft_attach_status *status; /* grown as needed, at most MFT_MAX_STATUS */
	size_t n_status, cap_status;
	uint64_t status_seq, status_dropped;
	uint64_t bad_events;
	uint64_t no_fd; /* attaches that failed for want of a file descriptor */
	bool up_multi;  /* uprobes as uprobe_multi links (one per binary and direction) */
	struct reaper reaper;
};

static void *reap_loop(void *arg)
{
	struct reaper *r = arg;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		while ((!r->n || r->hold) && !r->stop)
			pthread_cond_wait(&r->more, &r->lock);
		if (!r->n)
			break;
		struct bpf_link *l = r->q[--r->n];

		r->busy++;
		pthread_mutex_unlock(&r->lock);
		bpf_link__destroy(l);
		pthread_mutex_lock(&r->lock);
		if (!--r->busy && !r->n)
			pthread_cond_broadcast(&r->idle);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void reaper_init(struct reaper *r)
{
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->more, NULL);
	pthread_cond_init(&r->idle, NULL);
	while (r->n_threads < REAPERS && !pthread_create(&r->th[r->n_threads], NULL, reap_loop, r))
		r->n_threads++;
}

/* Destroy a link soon, in a reaper thread (at once, here, if there is none). */
static void reap(struct reaper *r, struct bpf_link *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&r->lock);
	if (r->n_threads) {
		r->q = mft_grow(r->q, &r->cap, r->n + 1, sizeof(*r->q));
		r->q[r->n++] = l;
		pthread_cond_signal(&r->more);
		l = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	bpf_link__destroy(l);
}

/* Attaching a target: the reaper waits (hold) until it is done. */
static void reaper_hold(struct reaper *r, bool hold)
{
	pthread_mutex_lock(&r->lock);
	r->hold = hold;
	if (!hold)
		pthread_cond_broadcast(&r->more);
	pthread_mutex_unlock(&r->lock);
}

/* Wait until every link handed over is destroyed, then end the threads. */
static void reaper_finish(struct reaper *r)
{
	pthread_mutex_lock(&r->lock);
	r->hold = false;
	pthread_cond_broadcast(&r->more);
	while (r->n || r->busy)
		pthread_cond_wait(&r->idle, &r->lock);
	r->stop = true;
	pthread_cond_broadcast(&r->more);
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < r->n_threads; i++)
		pthread_join(r->th[i], NULL);
	r->n_threads = 0;
	free(r->q);
	r->q = NULL;
	pthread_cond_destroy(&r->more);
	pthread_cond_destroy(&r->idle);
	pthread_mutex_destroy(&r->lock);
}

static bool g_verbose;

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	if (!g_verbose)
		return 0; /* failures become attach statuses; -v shows libbpf's own words */
	return vfprintf(stderr, fmt, args);
}

void mft_libbpf_log(bool verbose)
{
	g_verbose = verbose;
	libbpf_set_print(libbpf_log);
}

static struct mft_attach_status *add_status(struct mft_collector *c, uint32_t pid, const char *what, int mech, bool ok,
					    bool required, const char *fmt, ...)
{
	struct mft_attach_status *s;
	va_list ap;

	if (c->n_status == MFT_MAX_STATUS) {
		c->status_dropped++;
		return NULL;
	}
	c->status = mft_grow(c->status, &c->cap_status, c->n_status + 1, sizeof(*c->status));
	s = &c->status[c->n_status++];
	memset(s, 0, sizeof(*s));
	s->seq = ++c->status_seq;
	s->pid = pid;
	snprintf(s->what, sizeof(s->what), "%s", what);
	s->mech = mech;
	s->ok = ok;
	s->required = required;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return s;
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct mft_collector *c = ctx;

	if (size < sizeof(struct mft_event)) {
		c->bad_events++;
		return 0;
	}
	c->fn(c->ctx, data);
	return 0;
}

/* A kernel probe with three possible mechanisms: pick one, disable the others. */
struct kprobe_set {
	const char *what, *func, *tracepoint;
	struct bpf_program *fentry, *kprobe, *tp;
	int mech;
};

static void choose(struct mft_collector *c, struct kprobe_set *k)
{
	struct mft_probe_results r;
	struct mft_choice ch;

	mft_probe_kernel_func(k->func, k->tracepoint, &r);
	mft_choose_mech(k->what, &r, c->opts.forced_mech, &ch);
	k->mech = ch.mech;
	bpf_program__set_autoload(k->fentry, ch.mech == MFT_MECH_FENTRY);
	bpf_program__set_autoload(k->kprobe, ch.mech == MFT_MECH_KPROBE);
	bpf_program__set_autoload(k->tp, ch.mech == MFT_MECH_TRACEPOINT);
	add_status(c, 0, k->what, ch.mech, ch.mech != MFT_MECH_NONE, true, "%s", ch.why);
}

/* A tracepoint with three possible mechanisms (tp_btf, raw_tp, perf tracepoint). */
struct tp_set {
	const char *what, *tp;
	struct bpf_program *btf, *raw, *perf;
	bool required;
};

static void choose_tp(struct mft_collector *c, const struct tp_set *k)
{
	struct mft_tp_results r;
	struct mft_choice ch;

	mft_probe_tracepoint(k->tp, &r);
	mft_choose_tp_mech(k->what, &r, c->opts.forced_mech, &ch);
	bpf_program__set_autoload(k->btf, ch.mech == MFT_MECH_TP_BTF);
	bpf_program__set_autoload(k->raw, ch.mech == MFT_MECH_RAW_TP);
	bpf_program__set_autoload(k->perf, ch.mech == MFT_MECH_TRACEPOINT);
	if (ch.mech == MFT_MECH_NONE)
		add_status(c, 0, k->what, ch.mech, false, k->required, "%s", ch.why);
}

/* uprobe_multi if the kernel has it: the dispatchers must then be loaded for it. */
static void choose_uprobes(struct mft_collector *c)
{
	struct mft_avail multi;
	struct mft_choice ch;

	mft_probe_uprobe_multi(&multi);
	mft_choose_uprobe_mech(&multi, false, &ch);
	c->up_multi = ch.mech == MFT_MECH_UPROBE_MULTI;
	if (c->up_multi) {
		bpf_program__set_expected_attach_type(c->skel->progs.up_dispatch, MFT_BPF_TRACE_UPROBE_MULTI);
		bpf_program__set_expected_attach_type(c->skel->progs.ur_dispatch, MFT_BPF_TRACE_UPROBE_MULTI);
	}
	add_status(c, 0, "uprobes", ch.mech, true, false, "%s", ch.why);
}

static void attach_kernel(struct mft_collector *c, struct bpf_program *p, const char *what, bool required)
{
	struct bpf_link *l;
	const char *sec = bpf_program__section_name(p);
	int mech = !strncmp(sec, "fentry", 6)   ? MFT_MECH_FENTRY
		   : !strncmp(sec, "kprobe", 6) ? MFT_MECH_KPROBE
		   : !strncmp(sec, "tp_btf", 6) ? MFT_MECH_TP_BTF
		   : !strncmp(sec, "raw_tp", 6) ? MFT_MECH_RAW_TP
						: MFT_MECH_TRACEPOINT;

	if (!bpf_program__autoload(p))
		return;
	l = bpf_program__attach(p);
	if (!l) {
		add_status(c, 0, what, mech, false, required, "%s: attach failed: %s", sec, strerror(errno));
		return;
	}
	c->klinks[c->n_klinks++] = l;
	add_status(c, 0, what, mech, true, required, "%s", sec);
}

struct mft_collector *mft_collector_open(const struct mft_collector_opts *o, mft_event_fn fn, void *ctx, char *err,
					 size_t errlen)
{
	struct mft_collector *c = calloc(1, sizeof(*c));
	struct mftrace_bpf *s;
	const char *btf;
	int rc;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->opts = *o;
	c->fn = fn;
	c->ctx = ctx;
	reaper_init(&c->reaper);
	mft_libbpf_log(o->verbose);
	if (mft_btf_resolve(o->btf, &btf, NULL, 0, err, errlen))
		goto fail;
	LIBBPF_OPTS(bpf_object_open_opts, oo, .btf_custom_path = btf);
	s = c->skel = mftrace_bpf__open_opts(&oo);
	if (!s) {
		snprintf(err, errlen, "cannot open the BPF object: %s", strerror(errno));
		goto fail;
	}
	struct kprobe_set sets[] = {
		{ "shutdown", "inet_shutdown", "syscalls/sys_enter_shutdown", s->progs.fentry_inet_shutdown,
		  s->progs.kprobe_inet_shutdown, s->progs.tp_sys_enter_shutdown, 0 },
		{ "close", "tcp_close", "syscalls/sys_enter_close", s->progs.fentry_tcp_close,
		  s->progs.kprobe_tcp_close, s->progs.tp_sys_enter_close, 0 },
	};
	const struct tp_set tsets[] = {
		{ "recv results", "sock/sock_recv_length", s->progs.btf_sock_recv_length, s->progs.raw_sock_recv_length,
		  s->progs.tp_sock_recv_length, true },
		{ "send bytes", "sock/sock_send_length", s->progs.btf_sock_send_length, s->progs.raw_sock_send_length,
		  s->progs.tp_sock_send_length, false },
		{ "tcp state (connect, FIN)", "sock/inet_sock_set_state", s->progs.btf_inet_sock_set_state,
		  s->progs.raw_inet_sock_set_state, s->progs.tp_inet_sock_set_state, true },
		{ "rst received", "tcp/tcp_receive_reset", s->progs.btf_tcp_receive_reset,
		  s->progs.raw_tcp_receive_reset, s->progs.tp_tcp_receive_reset, false },
		{ "rst sent", "tcp/tcp_send_reset", s->progs.btf_tcp_send_reset, s->progs.raw_tcp_send_reset,
		  s->progs.tp_tcp_send_reset, false },
		{ "socket destroyed", "tcp/tcp_destroy_sock", s->progs.btf_tcp_destroy_sock,
		  s->progs.raw_tcp_destroy_sock, s->progs.tp_tcp_destroy_sock, true },
	};
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
		choose(c, &sets[i]);
	for (size_t i = 0; i < sizeof(tsets) / sizeof(tsets[0]); i++)
		choose_tp(c, &tsets[i]);
	choose_uprobes(c);
	rc = mftrace_bpf__load(s);
	if (rc) {
		snprintf(err, errlen, "cannot load the BPF programs: %s%s", strerror(-rc),
			 rc == -EPERM ? " (not enough privileges?)" : " (run with -v for the verifier log)");
		goto fail;
	}
	struct {
		struct bpf_program *p;
		const char *what;
		bool required;
	} tps[] = {
		{ s->progs.tp_sys_exit_accept4, "accept4", true },
		{ s->progs.tp_sys_exit_accept, "accept", false },
		{ s->progs.tp_sched_process_exit, "process exit", false },
	};
	for (size_t i = 0; i < sizeof(tsets) / sizeof(tsets[0]); i++) {
		attach_kernel(c, tsets[i].btf, tsets[i].what, tsets[i].required);
		attach_kernel(c, tsets[i].raw, tsets[i].what, tsets[i].required);
		attach_kernel(c, tsets[i].perf, tsets[i].what, tsets[i].required);
	}
	for (size_t i = 0; i < sizeof(tps) / sizeof(tps[0]); i++)
		attach_kernel(c, tps[i].p, tps[i].what, tps[i].required);
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		attach_kernel(c, sets[i].fentry, sets[i].what, true);
		attach_kernel(c, sets[i].kprobe, sets[i].what, true);
		attach_kernel(c, sets[i].tp, sets[i].what, true);
	}
	for (size_t i = 0; i < c->n_status; i++) {
		struct mft_attach_status *st = &c->status[i];

		if (st->required && !st->ok && st->mech != MFT_MECH_NONE) {
			snprintf(err, errlen, "cannot attach %s (%s): %s", st->what, mft_mech_name(st->mech), st->why);
			goto fail;
		}
		if (st->required && !st->ok) {
			snprintf(err, errlen, "no way to probe %s: %s", st->what, st->why);
			goto fail;
		}
	}
	c->rb = ring_buffer__new(bpf_map__fd(s->maps.events), on_sample, c, NULL);
	if (!c->rb) {
		snprintf(err, errlen, "cannot create the ring buffer: %s", strerror(errno));
		goto fail;
	}
	return c;
fail:
	mft_collector_close(c);
	return NULL;
}

/*
 * Recompute target_slot[slot]: the one target that maps there, MFT_SLOT_SHARED if more
 * do, 0 if none; and slot_track[slot], the union of their MFT_TRACK_* bits. A target is in
 * the targets map before its slot names it, and leaves the slot before the map (the
 * kernel side trusts only the map).
 */
static void slot_update(struct mft_collector *c, uint32_t slot)
{
	uint32_t v = 0;
	uint8_t track = 0;

	slot &= MFT_TARGET_SLOTS - 1;
	for (size_t i = 0; i < c->n_targets; i++)
		if ((c->targets[i].pid & (MFT_TARGET_SLOTS - 1)) == slot) {
			v = v ? MFT_SLOT_SHARED : c->targets[i].pid;
			track |= c->targets[i].track;
		}
	__atomic_store_n(&c->skel->bss->slot_track[slot], track, __ATOMIC_RELEASE);
	__atomic_store_n(&c->skel->bss->target_slot[slot], v, __ATOMIC_RELEASE);
}

/* Whose sockets the target's threads are remembered by (MFT_TRACK_*): before its probes
 * that need it can fire. */
static void set_track(struct mft_collector *c, struct target *t, uint8_t track)
{
	t->track = track;
	slot_update(c, t->pid);
}

static struct target *target_get(struct mft_collector *c, uint32_t pid)
{
	for (size_t i = 0; i < c->n_targets; i++)
		if (c->targets[i].pid == pid)
			return &c->targets[i];
	return NULL;
}

bool mft_collector_has_target(const struct mft_collector *c, uint32_t pid)
{
	return target_get((struct mft_collector *)c, pid) != NULL;
}

size_t mft_collector_n_targets(const struct mft_collector *c)
{
	return c->n_targets;
}

/*
 * A target's uprobes in one binary, collected, then attached at once (uprobe_flush): one
 * uprobe_multi link for the entries and one for the returns where the kernel has it, else
 * one link per probe. Each runs up_dispatch or ur_dispatch; the cookie says which probe.
 * The offsets come from our own reader, so libbpf never parses the target's file.
 */
#define MAX_BATCH 24

struct up_batch {
	const char *path; /* names the file e reads for the kernel: /proc/PID/exe or map_files/ */
	struct mft_elf *e;
	size_t n;
	struct {
		const char *func;
		unsigned long off;
		__u64 cookie;
		bool ret, required, must;
		char where[128]; /* where in func, when not plainly its entry */
	} p[MAX_BATCH];
};

/* Queue func's entry (and return, if ret) probe at off; where (or NULL) says why there. */
static bool uprobe_queue(struct mft_collector *c, struct target *t, struct up_batch *b, const char *func, int id,
			 int side, bool ret, bool required, uint64_t off, const char *where)
{
	for (int r = 0; r <= (int)ret; r++) {
		if (b->n == MAX_BATCH) {
			add_status(c, t->pid, func, MFT_MECH_UPROBE, false, required,
				   "not attached: %d probes in one binary", MAX_BATCH);
			return false;
		}
		b->p[b->n].func = func;
		b->p[b->n].off = (unsigned long)off;
		b->p[b->n].cookie = ((__u64)id << MFT_UPROBE_SHIFT) | (__u64)side;
		b->p[b->n].ret = r;
		b->p[b->n].required = required;
		b->p[b->n].must = false;
		snprintf(b->p[b->n].where, sizeof(b->p[b->n].where), "%s", where ? where : "");
		b->n++;
	}
	return true;
}

/* Queue func's entry (and return, if ret) probe; false (errno ENOENT) if it is not there. */
static bool uprobe_add(struct mft_collector *c, struct target *t, struct up_batch *b, const char *func, int id,
		       int side, bool ret, bool required)
{
	uint64_t off;

	if (mft_elf_symbol_offset(b->e, func, &off)) {
		add_status(c, t->pid, func, MFT_MECH_UPROBE, false, required, "%s: symbol not found", b->path);
		errno = ENOENT;
		return false;
	}
	return uprobe_queue(c, t, b, func, id, side, ret, required, off, NULL);
}

int mft_cheapest_site(struct mft_elf *e, const char *func, bool entry, uint64_t *off, char *where, size_t len)
{
	uint8_t code[MFT_PROBE_SITE_MAX_CODE];
	struct mft_probe_site site;
	size_t n;

	if (!entry && !mft_elf_symbol_code(e, func, off, code, sizeof(code), &n)) {
		if (!mft_tail_jump_site(code, n, &site)) {
			*off += site.off;
			snprintf(where, len, "+0x%llx, its tail jump (%u early return%s not seen)",
				 (unsigned long long)site.off, site.returns, site.returns == 1 ? "" : "s");
			return 1;
		}
		snprintf(where, len, "entry (no cheaper site: %s)", site.why);
		return 0;
	}
	if (mft_elf_symbol_offset(e, func, off))
		return -1;
	snprintf(where, len, "entry (%s)", entry ? "--tls-records=entry" : "its code is not readable as one function");
	return 0;
}

/* A per-call probe pair where it costs least (mft_cheapest_site); the status says where. */
static bool uprobe_add_cheap(struct mft_collector *c, struct target *t, struct up_batch *b, const char *func, int id,
			     bool required)
{
	char where[sizeof(b->p[0].where)];
	uint64_t off;

	if (mft_cheapest_site(b->e, func, c->opts.probe_entry, &off, where, sizeof(where)) < 0)
		return uprobe_add(c, t, b, func, id, 0, true, required); /* says it is not there */
	return uprobe_queue(c, t, b, func, id, 0, true, required, off, where);
}

static struct bpf_link *link_one(struct mft_collector *c, struct target *t, struct up_batch *b, size_t i)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .retprobe = b->p[i].ret, .bpf_cookie = b->p[i].cookie);
	struct bpf_program *p = b->p[i].ret ? c->skel->progs.ur_dispatch : c->skel->progs.up_dispatch;

	return bpf_program__attach_uprobe_opts(p, (pid_t)t->pid, b->path, b->p[i].off, &uo);
}

static struct bpf_link *link_multi(struct mft_collector *c, struct target *t, struct up_batch *b, bool ret, size_t *n)
{
	unsigned long offs[MAX_BATCH];
	__u64 cookies[MAX_BATCH];

	*n = 0;
	for (size_t i = 0; i < b->n; i++)
		if (b->p[i].ret == ret) {
			offs[*n] = b->p[i].off;
			cookies[(*n)++] = b->p[i].cookie;
		}
	if (!*n)
		return NULL;
	LIBBPF_OPTS(bpf_uprobe_multi_opts, uo, .offsets = offs, .cookies = cookies, .cnt = *n, .retprobe = ret);
	return bpf_program__attach_uprobe_multi(ret ? c->skel->progs.ur_dispatch : c->skel->progs.up_dispatch,
						(pid_t)t->pid, b->path, NULL, &uo);
}

/* Attach what b holds. -1 (errno set) if a probe marked must failed; statuses say the rest. */
static int uprobe_flush(struct mft_collector *c, struct target *t, struct up_batch *b)
{
	int rc = 0, saved = 0;

	for (int pass = 0; pass < (c->up_multi ? 2 : (int)b->n); pass++) {
		bool ret = pass == 1;
		size_t n = 1;
		struct bpf_link *l = NULL;
		int err = E2BIG;

		if (t->n_links < MAX_LINKS_PER_TARGET) {
			l = c->up_multi ? link_multi(c, t, b, ret, &n) : link_one(c, t, b, (size_t)pass);
			err = errno;
		}
		if (c->up_multi && !n)
			continue;
		if (l)
			t->links[t->n_links++] = l;
		else
			c->no_fd += err == EMFILE || err == ENFILE;
		for (size_t i = 0; i < b->n; i++) {
			int mech = b->p[i].ret ? (c->up_multi ? MFT_MECH_URETPROBE_MULTI : MFT_MECH_URETPROBE)
					       : (c->up_multi ? MFT_MECH_UPROBE_MULTI : MFT_MECH_UPROBE);

			if (c->up_multi ? b->p[i].ret != ret : i != (size_t)pass)
				continue;
			if (l)
				add_status(c, t->pid, b->p[i].func, mech, true, b->p[i].required, "%s%s%s%s", b->path,
					   b->p[i].where[0] ? " at " : "", b->p[i].where,
					   c->up_multi ? " (one link with the binary's other probes of its kind)" : "");
			else
				add_status(c, t->pid, b->p[i].func, mech, false, b->p[i].required, "%s: %s", b->path,
					   err == E2BIG ? "too many links in one target" : strerror(err));
			if (!l && b->p[i].must) {
				rc = -1;
				saved = err;
			}
		}
	}
	b->n = 0;
	errno = saved;
	return rc;
}

/* The first of several names a QEMU version may use for the same step (entry, and exit if ret). */
static void uprobe_first(struct mft_collector *c, struct target *t, struct up_batch *b, const char *const *names,
			 size_t n, const char *what, int id, int side, bool ret)
{
	uint64_t v;

	for (size_t i = 0; i < n; i++)
		if (!mft_elf_symbol(b->e, names[i], &v)) {
			uprobe_add(c, t, b, names[i], id, side, ret, false);
			return;
		}
	add_status(c, t->pid, what, MFT_MECH_UPROBE, false, false, "none of the expected QEMU functions is exported");
}

static bool usdt(struct mft_collector *c, struct target *t, struct bpf_program *p, const char *path, const char *name,
		 __u64 cookie)
{
	LIBBPF_OPTS(bpf_usdt_opts, uo, .usdt_cookie = cookie);
	struct bpf_link *l;

	if (t->n_links == MAX_LINKS_PER_TARGET) {
		add_status(c, t->pid, name, MFT_MECH_USDT, false, false,
			   "not attached: %d probes in one target already", MAX_LINKS_PER_TARGET);
		return false;
	}
	l = bpf_program__attach_usdt(p, (pid_t)t->pid, path, "qemu", name, &uo);
	if (!l) {
		c->no_fd += errno == EMFILE || errno == ENFILE;
		add_status(c, t->pid, name, MFT_MECH_USDT, false, false, "%s: %s", path, strerror(errno));
		return false;
	}
	t->links[t->n_links++] = l;
	add_status(c, t->pid, name, MFT_MECH_USDT, true, false, "%s", path);
	return true;
}

/*
 * A QEMU built with the dtrace trace backend: per-packet events (only SYNC packets become
 * mftrace events) and the channel id. The flags argument moved between versions; its
 * index, found from the probe's argument count, travels as the attach cookie.
 */
static bool attach_usdt(struct mft_collector *c, struct target *t, struct mft_elf *e, const char *path, bool incoming)
{
	static const struct {
		const char *name;
		int nargs, flags_idx;
	} packet[] = {
		{ "multifd_send_fill", 4, 2 }, /* 9.2+: id, packet_num, flags, next_packet_size */
		{ "multifd_recv_unfill", 4, 2 },
		{ "multifd_send", 5, 3 }, /* 7.2-8.2: id, packet_num, normal, flags, next */
		{ "multifd_recv", 5, 3 },
		{ "multifd_send", 6, 4 }, /* 9.0-9.1: id, packet_num, normal, zero, flags, next */
		{ "multifd_recv", 6, 4 },
	};
	struct mftrace_bpf *s = c->skel;
	char spec[256];
	bool any = false;

	if (mft_elf_usdt_count(e, "qemu") <= 0)
		return false;
	/* the packet probes name the thread's socket */
	set_track(c, t, MFT_TRACK_SEND | (incoming ? MFT_TRACK_RECV : 0));
	for (size_t i = 0; i < sizeof(packet) / sizeof(packet[0]); i++) {
		if (mft_elf_usdt_args(e, "qemu", packet[i].name, spec, sizeof(spec)) ||
		    mft_usdt_nargs(spec) != packet[i].nargs)
			continue;
		any |= usdt(c, t, s->progs.usdt_multifd_packet, path, packet[i].name, (__u64)packet[i].flags_idx);
	}
	if (!mft_elf_usdt_args(e, "qemu", "multifd_recv_new_channel", spec, sizeof(spec)))
		any |= usdt(c, t, s->progs.usdt_multifd_recv_new_channel, path, "multifd_recv_new_channel", 0);
	if (!mft_elf_usdt_args(e, "qemu", "migrate_set_state", spec, sizeof(spec)))
		usdt(c, t, s->progs.usdt_migrate_set_state, path, "migrate_set_state", 0);
	static const struct {
		const char *name;
		int side;
		bool end;
	} life[] = {
		{ "multifd_send_terminate_threads", MFT_SIDE_SEND, false }, /* (bool error) up to 8.2, () after */
		{ "multifd_recv_terminate_threads", MFT_SIDE_RECV, false },
		{ "multifd_send_thread_end", MFT_SIDE_SEND, true },
		{ "multifd_recv_thread_end", MFT_SIDE_RECV, true },
	};

	for (size_t i = 0; i < sizeof(life) / sizeof(life[0]); i++) {
		if (mft_elf_usdt_args(e, "qemu", life[i].name, spec, sizeof(spec)))
			continue;
		if (life[i].end)
			usdt(c, t, s->progs.usdt_multifd_thread_end, path, life[i].name, (__u64)life[i].side);
		else
			usdt(c, t, s->progs.usdt_multifd_terminate, path, life[i].name,
			     (__u64)life[i].side | (mft_usdt_nargs(spec) >= 1 ? MFT_USDT_HAS_ERROR_ARG : 0));
	}
	if (!any)
		set_track(c, t, 0);
	return any;
}

/* QEMU's own functions and USDT probes, in its binary. */
static void attach_qemu(struct mft_collector *c, struct target *t, struct mft_elf *e, const char *path,
			bool have_status_lookup, bool incoming)
{
	static const char *const send_cleanup[] = { "multifd_send_shutdown", "multifd_save_cleanup" };
	static const char *const recv_cleanup[] = { "multifd_recv_shutdown", "multifd_load_cleanup" };
	struct up_batch b = { .path = path, .e = e };

	uprobe_add(c, t, &b, "migrate_set_state", MFT_UP_MIGRATE_SET_STATE, 0, true, false);
	if (uprobe_add(c, t, &b, "multifd_recv_new_channel", MFT_UP_MULTIFD_RECV_NEW_CHANNEL, 0, true, false))
		uprobe_add(c, t, &b, "qio_channel_read_all", MFT_UP_QIO_CHANNEL_READ_ALL, 0, false, false);
	/* teardown: the sockets shut down or closed inside are the multifd channels */
	uprobe_first(c, t, &b, send_cleanup, 2, "multifd send cleanup", MFT_UP_MULTIFD_CLEANUP, MFT_SIDE_SEND, true);
	uprobe_first(c, t, &b, recv_cleanup, 2, "multifd recv cleanup", MFT_UP_MULTIFD_CLEANUP, MFT_SIDE_RECV, true);
	/* a source's send thread sends its MultiFDInit_t with it: the channel id and UUID there */
	uprobe_add(c, t, &b, "qio_channel_write_all", MFT_UP_QIO_CHANNEL_WRITE_ALL, 0, false, false);
	uprobe_add(c, t, &b, "multifd_send_sync_main", MFT_UP_MULTIFD_SYNC_MAIN, MFT_SIDE_SEND, false, false);
	uprobe_add(c, t, &b, "multifd_recv_sync_main", MFT_UP_MULTIFD_SYNC_MAIN, MFT_SIDE_RECV, false, false);
	if (!have_status_lookup)
		add_status(c, t->pid, "MigrationStatus_lookup", MFT_MECH_SYMBOL, false, false,
			   "not exported: migration states are shown as numbers");
	/*
	 * Per-channel SYNC packets on a destination, where USDT does not give them: a hit per
	 * packet, and every qemu_sem_post(). Only where the QEMU was started with -incoming,
	 * without which QEMU refuses migrate-incoming: on a source they would only cost, a trap
	 * for each of the migration thread's qemu_sem_post() calls. Its threads' sockets are
	 * remembered on recv, before the probes can fire.
	 */
	if (!attach_usdt(c, t, e, path, incoming) && incoming &&
	    uprobe_add(c, t, &b, "qio_channel_readv_full_all_eof", MFT_UP_QIO_CHANNEL_READV_FULL_ALL_EOF, 0, false,
		       false)) {
		uprobe_add(c, t, &b, "qemu_sem_post", MFT_UP_QEMU_SEM_POST, 0, false, false);
		set_track(c, t, MFT_TRACK_RECV);
	}
	uprobe_flush(c, t, &b);
}

/* GnuTLS: handshake, bye, deinit; per-record results only with --tls-records. */
static int attach_gnutls(struct mft_collector *c, struct target *t, const struct mft_procinfo *pi, char *err,
			 size_t errlen)
{
	const char *path = pi->gnutls_open;
	struct mft_elf *e = mft_elf_open(path, err, errlen);
	struct up_batch b = { .path = path, .e = e };
	int rc;

	if (!e)
		return -1;
	if (!uprobe_add(c, t, &b, "gnutls_handshake", MFT_UP_GNUTLS_HANDSHAKE, 0, true, false)) {
		/* without it every TLS channel would look plain: refuse rather than mislead */
		snprintf(err, errlen, "refusing the target: the libgnutls it maps (%s) has no gnutls_handshake",
			 pi->gnutls);
		mft_elf_close(e);
		return -1;
	}
	b.p[0].must = b.p[1].must = true;
	uprobe_add(c, t, &b, "gnutls_bye", MFT_UP_GNUTLS_BYE, 0, true, false);
	uprobe_add(c, t, &b, "gnutls_deinit", MFT_UP_GNUTLS_DEINIT, 0, false, false);
	if (c->opts.tls_records)
		uprobe_add_cheap(c, t, &b, "gnutls_record_recv", MFT_UP_GNUTLS_RECORD_RECV, true);
	rc = uprobe_flush(c, t, &b);
	mft_elf_close(e);
	if (rc)
		snprintf(err, errlen, "cannot attach uprobes to %s (%s)%s", pi->gnutls, strerror(errno),
			 errno == EACCES || errno == EPERM ? ": uprobes need root or CAP_SYS_ADMIN" : "");
	return rc;
}

static int add_target(struct mft_collector *c, const struct mft_procinfo *pi, uint64_t *t_traced, char *err,
		      size_t errlen);

/*
 * The pid enters the kernel-side filter (the targets map) first, so that its sockets are
 * seen from now on, then its uprobes are attached, which can take seconds on a busy host
 * (each one is registered in every process that maps the file). *t_traced is when they
 * were complete (CLOCK_MONOTONIC ns): the correlator judges a socket opened before then
 * incomplete, never plain, as its TLS handshake may have gone unseen.
 */
int mft_collector_add_target(struct mft_collector *c, const struct mft_procinfo *pi, uint64_t *t_traced, char *err,
			     size_t errlen)
{
	int rc;

	reaper_hold(&c->reaper, true);
	rc = add_target(c, pi, t_traced, err, errlen);
	reaper_hold(&c->reaper, false);
	return rc;
}

static int add_target(struct mft_collector *c, const struct mft_procinfo *pi, uint64_t *t_traced, char *err,
		      size_t errlen)
{
	struct mftrace_bpf *s = c->skel;
	struct mft_target tv = {};
	struct mft_elf *e;
	struct target *t;

	if (target_get(c, pi->pid))
		return 0;
	if (c->n_targets == MFT_MAX_TARGETS) {
		snprintf(err, errlen, "too many targets (max %d)", MFT_MAX_TARGETS);
		return -1;
	}
	e = mft_elf_open(pi->exe_open, err, errlen);
	if (!e)
		return -1;
	t = &c->targets[c->n_targets++];
	memset(t, 0, sizeof(*t));
	t->pid = pi->pid;
	tv.status_lookup = mft_proc_symbol_addr(pi, "MigrationStatus_lookup");
	if (bpf_map__update_elem(s->maps.targets, &t->pid, sizeof(t->pid), &tv, sizeof(tv), BPF_ANY)) {
		snprintf(err, errlen, "cannot add pid %u to the targets map: %s", pi->pid, strerror(errno));
		c->n_targets--;
		mft_elf_close(e);
		return -1;
	}
	slot_update(c, t->pid);
	attach_qemu(c, t, e, pi->exe_open, tv.status_lookup != 0, pi->incoming);
	mft_elf_close(e);
	if (!pi->gnutls[0]) {
		add_status(c, t->pid, "gnutls", MFT_MECH_UPROBE, false, false,
			   "libgnutls is not mapped in pid %u: channels are traced as plain TCP", pi->pid);
	} else if (attach_gnutls(c, t, pi, err, errlen)) {
		mft_collector_remove_target(c, pi->pid);
		return -1;
	} else if (pi->gnutls_replaced) {
		add_status(c, t->pid, "gnutls", MFT_MECH_UPROBE, true, false,
			   "%s was replaced on disk: traced through the mapped file %s", pi->gnutls, pi->gnutls_open);
	}
	if (t_traced)
		*t_traced = mft_mono_now();
	return 0;
}

void mft_collector_remove_target(struct mft_collector *c, uint32_t pid)
{
	struct target *t = target_get(c, pid);

	if (!t)
		return;
	for (int i = 0; i < t->n_links; i++) /* the map entry goes now: they fire for nothing */
		reap(&c->reaper, t->links[i]);
	*t = c->targets[--c->n_targets];
	slot_update(c, pid);
	bpf_map__delete_elem(c->skel->maps.targets, &pid, sizeof(pid), 0);
	/* forget its attach statuses, so that a long-running session never fills up */
	size_t keep = 0;

	for (size_t i = 0; i < c->n_status; i++)
		if (c->status[i].pid != pid)
			c->status[keep++] = c->status[i];
	c->n_status = keep;
}

int mft_collector_poll(struct mft_collector *c, int timeout_ms)
{
	return ring_buffer__poll(c->rb, timeout_ms);
}

uint64_t mft_collector_counter(const struct mft_collector *c, int idx)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t sum = 0;
	__u32 key = (__u32)idx;

	if (ncpu <= 0)
		return 0;
	uint64_t vals[ncpu];

	if (bpf_map__lookup_elem(c->skel->maps.counters, &key, sizeof(key), vals, sizeof(vals), 0))
		return 0;
	for (int i = 0; i < ncpu; i++)
		sum += vals[i];
	return sum;
}

uint64_t mft_collector_bad_events(const struct mft_collector *c)
{
	return c->bad_events;
}

const struct mft_attach_status *mft_collector_status(const struct mft_collector *c, size_t *n)
{
	*n = c->n_status;
	return c->status;
}

uint64_t mft_collector_statuses_dropped(const struct mft_collector *c)
{
	return c->status_dropped;
}

uint64_t mft_collector_attach_no_fd(const struct mft_collector *c)
{
	return c->no_fd;
}

/* Keys of a map, one at a time (a hash map has no count the kernel would give us). */
static uint64_t map_entries(const struct bpf_map *m)
{
	uint8_t key[16], next[16];
	uint64_t n = 0;
	int fd = bpf_map__fd(m);
	const void *prev = NULL;

	if (fd < 0 || bpf_map__key_size(m) > sizeof(key))
		return 0;
	while (n <= bpf_map__max_entries(m) && !bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, bpf_map__key_size(m));
		prev = key;
		n++;
	}
	return n;
}

void mft_collector_map_fill(const struct mft_collector *c, enum mft_map_fill which, uint64_t *used, uint64_t *capacity)
{
	const struct mftrace_bpf *s = c->skel;
	const struct bpf_map *m[2] = { NULL, NULL };

	switch (which) {
	case MFT_FILL_TARGETS: m[0] = s->maps.targets; break;
	case MFT_FILL_SOCKS: m[0] = s->maps.socks; break;
	case MFT_FILL_SESSIONS: m[0] = s->maps.sessions; break;
	case MFT_FILL_CALLS:
		m[0] = s->maps.tls_calls;
		m[1] = s->maps.record_calls;
		break;
	case MFT_FILL_THREADS: m[0] = s->maps.thread_sock; break;
	}
	*used = *capacity = 0;
	for (int i = 0; i < 2 && m[i]; i++) {
		*used += map_entries(m[i]);
		*capacity += bpf_map__max_entries(m[i]);
	}
}

/* Delete the keys (thread ids) of map whose thread is gone. */
static size_t sweep_map(const struct bpf_map *m)
{
	__u32 key, next, dead[256];
	const void *prev = NULL;
	size_t n_dead = 0, walked = 0;
	int fd = bpf_map__fd(m);

	if (fd < 0 || bpf_map__key_size(m) != sizeof(__u32))
		return 0;
	while (walked++ <= bpf_map__max_entries(m) && !bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (kill((pid_t)key, 0) && errno == ESRCH && n_dead < sizeof(dead) / sizeof(dead[0]))
			dead[n_dead++] = key;
	}
	size_t deleted = 0;

	for (size_t i = 0; i < n_dead; i++) /* after the walk: deleting during it restarts it */
		deleted += bpf_map_delete_elem(fd, &dead[i]) == 0;
	return deleted;
}

size_t mft_collector_sweep(struct mft_collector *c)
{
	const struct mftrace_bpf *s = c->skel;
	const struct bpf_map *per_thread[] = { s->maps.tls_calls,   s->maps.record_calls, s->maps.newchan_calls,
					       s->maps.init_writes, s->maps.init_reads,   s->maps.hdr_reads,
					       s->maps.state_calls, s->maps.thread_sock };
	size_t n = 0;

	for (size_t i = 0; i < sizeof(per_thread) / sizeof(per_thread[0]); i++) {
		size_t k = sweep_map(per_thread[i]);

		if (i < 4) /* the call maps: calls_open counts their entries */
			__atomic_fetch_sub(&c->skel->bss->calls_open, (__s64)k, __ATOMIC_RELAXED);
		n += k;
	}
	return n;
}

size_t mft_collector_prog_stats(const struct mft_collector *c, struct mft_prog_stat *out, size_t max)
{
	struct bpf_program *p;
	size_t n = 0;

	bpf_object__for_each_program(p, c->skel->obj)
	{
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(p);

		if (n == max)
			break;
		memset(&info, 0, sizeof(info));
		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
			continue; /* not loaded (autoload off: the mechanism not chosen) */
		snprintf(out[n].name, sizeof(out[n].name), "%s", bpf_program__name(p));
		out[n].run_time_ns = info.run_time_ns;
		out[n].run_cnt = info.run_cnt;
		n++;
	}
	return n;
}

void mft_collector_close(struct mft_collector *c)
{
	if (!c)
		return;
	while (c->n_targets)
		mft_collector_remove_target(c, c->targets[0].pid);
	for (int i = 0; i < c->n_klinks; i++)
		reap(&c->reaper, c->klinks[i]);
	reaper_finish(&c->reaper); /* every link gone before the programs and maps */
	ring_buffer__free(c->rb);
	mftrace_bpf__destroy(c->skel);
	free(c->status);
	free(c);
}
