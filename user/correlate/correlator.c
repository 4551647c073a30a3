// SPDX-License-Identifier: GPL-2.0
/*
 * Correlator: events -> channels -> groups -> migrations -> verdicts. No kernel
 * dependency. Live mode feeds it from the ring buffer; the unit tests feed it by hand.
 * correlator.h says what makes a group a migration, a process and an attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "correlate/correlator.h"
#include "correlate/multifd_wire.h"
#include "correlate/pairing.h"

#define DEFAULT_GRACE_NS (2ull * 1000 * 1000 * 1000)
#define MAX_PENDING 32                     /* event lines held back per channel until evidence */
#define PEER_WAIT_GRACES 150               /* a source waits this long for its live traced destination */
#define PROC_KEEP_GRACES 30                /* an exited process nothing refers to is kept this long */
#define DUP_STATE_NS (10ull * 1000 * 1000) /* one state change seen by two probes: this close */

/* An event line held back: its group has shown no migration evidence yet. */
struct mft_pending {
	uint64_t seq;
	struct mft_event ev;
};

struct mft_correlator {
	struct mft_corr_opts opts;
	struct mft_sink sink;
	struct mft_chan **chans; /* channels of groups not yet done (and orphans kept for peers) */
	size_t n_chans, cap_chans;
	struct mft_migration **migs; /* groups not yet done */
	size_t n_migs, cap_migs;
	struct mft_process **procs; /* processes still referred to, or recent */
	size_t n_procs, cap_procs;
	uint64_t next_mig_id, next_attempt, next_seq;
	uint64_t now;       /* latest time seen */
	uint64_t bad_inits; /* channel-init events that did not decode */
	/* prune_procs() can only change its mind when a process comes, exits or loses a
	 * reference (dirty), or when an exited one's keep window ends (recheck): it is
	 * skipped otherwise, so a feed costs the same whatever the number of processes */
	bool procs_dirty;
	uint64_t procs_recheck;
	/* chan_peer() is asked for every channel of every open group at every tick: its answer
	 * is kept in the channel until anything that the pairing rule reads changes (a channel
	 * added or removed; a channel's addresses, number, group or its group's UUID: every
	 * place that changes one bumps this generation) */
	uint64_t pair_gen;
	/* mft_corr_tick() has work only when something changed since it last ran (dirty) or
	 * when time reaches the first deadline that it compared against (due) */
	bool tick_dirty;
	uint64_t tick_due;
	/* chan_find()'s memo: the newest channel of a (pid, socket), by a hash of the two;
	 * a slot is cleared when its channel is removed */
	struct mft_chan *found[64];
};

struct mft_correlator *mft_corr_new(const struct mft_corr_opts *opts, const struct mft_sink *sink)
{
	struct mft_correlator *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (opts)
		c->opts = *opts;
	if (!c->opts.grace_ns)
		c->opts.grace_ns = DEFAULT_GRACE_NS;
	if (sink)
		c->sink = *sink;
	c->next_mig_id = 1;
	c->pair_gen = 1;
	return c;
}

static void *xcalloc(size_t n)
{
	void *p = calloc(1, n);

	if (!p) {
		fprintf(stderr, "mftrace: out of memory\n");
		exit(1);
	}
	return p;
}

static void free_chan(struct mft_chan *ch)
{
	free(ch->pending);
	free(ch);
}

static void free_migration(struct mft_migration *m)
{
	for (size_t i = 0; i < m->n_chans; i++)
		if (m->chans[i])
			free_chan(m->chans[i]);
	free(m->chans);
	free(m);
}

void mft_corr_free(struct mft_correlator *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_migs; i++)
		free_migration(c->migs[i]);
	/* channels not in a group */
	for (size_t i = 0; i < c->n_chans; i++)
		if (!c->chans[i]->mig)
			free_chan(c->chans[i]);
	for (size_t i = 0; i < c->n_procs; i++)
		free(c->procs[i]);
	free(c->migs);
	free(c->chans);
	free(c->procs);
	free(c);
}

/* ------------------------------------------------------------------ processes */

static struct mft_process *proc_cur(const struct mft_correlator *c, uint32_t pid)
{
	for (size_t i = c->n_procs; i-- > 0;)
		if (c->procs[i]->pid == pid)
			return c->procs[i];
	return NULL;
}

static struct mft_process *proc_new(struct mft_correlator *c, uint32_t pid, uint64_t start_time)
{
	struct mft_process *old = proc_cur(c, pid), *p = xcalloc(sizeof(*p));

	p->pid = pid;
	p->start_time = start_time;
	p->generation = old ? old->generation + 1 : 1;
	c->procs_dirty = true;
	if (old)
		snprintf(p->name, sizeof(p->name), "%s", old->name); /* until it is named */
	c->procs = mft_grow(c->procs, &c->cap_procs, c->n_procs + 1, sizeof(*c->procs));
	c->procs[c->n_procs++] = p;
	return p;
}

/*
 * The process an event belongs to. A process makes no event in its own context after its
 * last thread's exit: one that does (tid set, later than that exit) is a new process that
 * got the same pid. Events of the kernel's own context (tid 0: FIN, destroy) concern
 * sockets and are routed by their channel.
 */
static struct mft_process *proc_of_event(struct mft_correlator *c, const struct mft_event *ev)
{
	struct mft_process *p = proc_cur(c, ev->pid);

	if (!p)
		return proc_new(c, ev->pid, 0);
	if (p->exited && ev->tid && ev->ts_ns > p->t_exit)
		return proc_new(c, ev->pid, 0);
	return p;
}

const struct mft_process *mft_corr_process(const struct mft_correlator *c, uint32_t pid)
{
	return proc_cur(c, pid);
}

void mft_corr_set_process(struct mft_correlator *c, uint32_t pid, uint64_t start_time, uint64_t t_traced,
			  const char *name)
{
	struct mft_process *p = proc_cur(c, pid);

	c->tick_dirty = true;
	if (!p || p->exited || (start_time && p->start_time && start_time != p->start_time))
		p = proc_new(c, pid, start_time);
	if (!p->start_time)
		p->start_time = start_time;
	if (t_traced > p->t_traced)
		p->t_traced = t_traced;
	if (name)
		snprintf(p->name, sizeof(p->name), "%s", name);
}

void mft_corr_set_process_name(struct mft_correlator *c, uint32_t pid, const char *name)
{
	struct mft_process *p = proc_cur(c, pid);

	if (!p)
		p = proc_new(c, pid, 0);
	snprintf(p->name, sizeof(p->name), "%s", name);
}

size_t mft_corr_open_migrations(const struct mft_correlator *c)
{
	return c->n_migs;
}

/*
 * Forget processes that nothing refers to any more: superseded, or exited long ago. One
 * pass each over processes, groups and channels: a process is current when no later one
 * in the array has its pid (proc_cur()), which a walk from the end with an index of the
 * pids seen tells.
 */
static void prune_procs(struct mft_correlator *c)
{
	struct mft_index seen = { 0 };
	size_t keep = 0;

	if (!c->procs_dirty && c->now < c->procs_recheck)
		return;
	c->procs_dirty = false;
	c->procs_recheck = UINT64_MAX;
	for (size_t i = c->n_procs; i-- > 0;) {
		struct mft_process *p = c->procs[i];
		/* out of memory: taken as current, so kept (a later prune tries again) */
		bool current = mft_index_find(&seen, p->pid, NULL, NULL) == SIZE_MAX;

		if (current && mft_index_set(&seen, p->pid, i, NULL, NULL))
			c->procs_dirty = true;
		p->in_use = current && !p->exited;
		if (p->exited) {
			uint64_t keep_until = p->t_exit + PROC_KEEP_GRACES * c->opts.grace_ns;

			if (c->now < keep_until) {
				p->in_use = true;
				if (keep_until < c->procs_recheck)
					c->procs_recheck = keep_until;
			}
		}
	}
	mft_index_free(&seen);
	for (size_t k = 0; k < c->n_migs; k++)
		((struct mft_process *)c->migs[k]->proc)->in_use = true;
	for (size_t k = 0; k < c->n_chans; k++)
		c->chans[k]->proc->in_use = true;
	for (size_t i = 0; i < c->n_procs; i++) {
		if (c->procs[i]->in_use)
			c->procs[keep++] = c->procs[i];
		else
			free(c->procs[i]);
	}
	c->n_procs = keep;
}

/* ------------------------------------------------------------------ attempts */

static const struct mft_attempt *attempt_find(const struct mft_process *p, uint64_t id)
{
	for (int i = 0; p && id && i < p->n_att; i++)
		if (p->att[i].id == id)
			return &p->att[i];
	return NULL;
}

/* The attempt of p running at time t, 0 if none. */
static uint64_t attempt_at(const struct mft_process *p, uint64_t t)
{
	for (int i = p->n_att; i-- > 0;) {
		const struct mft_attempt *a = &p->att[i];

		if (a->t_start <= t && (!a->terminal || a->t_end >= t))
			return a->id;
	}
	return 0;
}

static bool terminal_state(const char *s)
{
	return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

static void state_event(struct mft_correlator *c, struct mft_process *p, const struct mft_event *ev)
{
	struct mft_attempt *a = p->n_att ? &p->att[p->n_att - 1] : NULL;
	char state[MFT_STR_LEN];
	bool terminal;

	if (ev->str[0])
		snprintf(state, sizeof(state), "%.*s", MFT_STR_LEN - 1, ev->str);
	else
		snprintf(state, sizeof(state), "state-%lld", (long long)ev->ret);
	terminal = terminal_state(state);
	if (a && a->terminal && terminal && !strcmp(a->state, state) && ev->ts_ns < a->t_end + DUP_STATE_NS)
		return; /* the same end told twice (the uprobe and the USDT probe of one call) */
	if (!a || a->terminal) {
		if (p->n_att == MFT_MAX_ATTEMPTS) {
			memmove(&p->att[0], &p->att[1], sizeof(p->att[0]) * (MFT_MAX_ATTEMPTS - 1));
			p->n_att--;
		}
		a = &p->att[p->n_att++];
		memset(a, 0, sizeof(*a));
		a->id = ++c->next_attempt;
		a->t_start = ev->ts_ns;
		/* groups of this process opened before the attempt's first state was seen
		 * (a 7.2 destination accepts every channel before "active") are its own */
		for (size_t i = 0; i < c->n_migs; i++) {
			struct mft_migration *m = c->migs[i];

			if (m->proc != p || m->attempt)
				continue;
			m->attempt = a->id;
			for (size_t k = 0; k < m->n_chans; k++)
				m->chans[k]->attempt = a->id;
		}
	}
	snprintf(a->state, sizeof(a->state), "%s", state);
	a->t_last = ev->ts_ns;
	if (terminal) {
		a->terminal = true;
		a->t_end = ev->ts_ns;
	}
}

/* ------------------------------------------------------------------ channels and groups */

static struct mft_chan **found_slot(struct mft_correlator *c, uint32_t pid, uint64_t sk)
{
	return &c->found[mft_hash64(sk ^ pid) % (sizeof(c->found) / sizeof(c->found[0]))];
}

/* The newest channel of this process and socket (the kernel reuses socket addresses). */
static struct mft_chan *chan_find(struct mft_correlator *c, uint32_t pid, uint64_t sk)
{
	struct mft_chan **memo = found_slot(c, pid, sk);

	if (*memo && (*memo)->pid == pid && (*memo)->sk == sk)
		return *memo;
	for (size_t i = c->n_chans; i-- > 0;)
		if (c->chans[i]->pid == pid && c->chans[i]->sk == sk)
			return *memo = c->chans[i];
	return NULL;
}

static void end_of(const struct mft_chan *ch, struct mft_end *e)
{
	e->family = ch->family;
	e->laddr = ch->laddr;
	e->raddr = ch->raddr;
	e->lport = ch->lport;
	e->rport = ch->rport;
	e->chan_id = ch->chan_id;
	e->uuid = ch->mig && ch->mig->has_uuid ? ch->mig->uuid : NULL;
}

/* The same connection as seen by the other end, if that end is traced too. */
static struct mft_chan *chan_peer(const struct mft_correlator *c, struct mft_chan *ch)
{
	struct mft_end a, b;
	struct mft_chan *found = NULL;

	if (ch->peer_gen == c->pair_gen)
		return ch->peer_memo;
	if (ch->lport && ch->rport) {
		end_of(ch, &a);
		for (size_t i = 0; i < c->n_chans && !found; i++) {
			struct mft_chan *o = c->chans[i];

			if (o == ch || o->lport != ch->rport || o->rport != ch->lport)
				continue; /* the rule's first test, without building its ends */
			end_of(o, &b);
			if (mft_same_connection(&a, &b))
				found = o;
		}
	}
	ch->peer_memo = found;
	ch->peer_gen = c->pair_gen;
	return found;
}

/*
 * What mft_corr_tick() reads of a channel and its group: an event that changes none of it
 * cannot make a group ready or a channel prunable, so no tick need follow it (the bulk of
 * a migration's events, its SYNCs, change none of it).
 */
struct tick_key { /* all of one width: no wide load of narrow stores just made */
	uint64_t ended, evidence, kind, role;
	uint64_t t_close, t_destroy, t_last_end, attempt, pair_gen;
	uintptr_t mig;
	uint64_t n_chans;
};

static inline void tick_key_of(const struct mft_correlator *c, const struct mft_chan *ch, struct tick_key *k)
{
	k->ended = ch->ended;
	k->kind = ch->kind;
	k->role = ch->role;
	k->t_close = ch->evidence.t_close;
	k->t_destroy = ch->evidence.t_destroy;
	k->pair_gen = c->pair_gen;
	k->mig = (uintptr_t)ch->mig;
	k->evidence = ch->mig && ch->mig->evidence;
	k->t_last_end = ch->mig ? ch->mig->t_last_end : 0;
	k->attempt = ch->mig ? ch->mig->attempt : 0;
	k->n_chans = ch->mig ? ch->mig->n_chans : 0;
}

static bool tick_key_same(const struct tick_key *a, const struct tick_key *b)
{
	return a->ended == b->ended && a->evidence == b->evidence && a->kind == b->kind && a->role == b->role &&
	       a->t_close == b->t_close && a->t_destroy == b->t_destroy && a->t_last_end == b->t_last_end &&
	       a->attempt == b->attempt && a->pair_gen == b->pair_gen && a->mig == b->mig && a->n_chans == b->n_chans;
}

/* A channel's number is read by the pairing rule: a new one is a change of pairing. */
static void set_chan_id(struct mft_correlator *c, struct mft_chan *ch, int id)
{
	if (ch->chan_id != id) {
		ch->chan_id = id;
		c->pair_gen++;
	}
}

static int pending_order(const void *a, const void *b)
{
	const struct mft_pending *x = *(const struct mft_pending *const *)a, *y = *(const struct mft_pending *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The group is a migration: give it its number and let its held-back event lines out. */
static void set_evidence(struct mft_correlator *c, struct mft_migration *m)
{
	size_t n = 0, k = 0;

	if (m->evidence)
		return;
	m->evidence = true;
	m->id = c->next_mig_id++;
	for (size_t i = 0; i < m->n_chans; i++)
		n += m->chans[i]->n_pending;
	if (n && c->sink.event) {
		struct mft_pending **all = xcalloc(n * sizeof(*all));
		struct mft_chan **owner = xcalloc(n * sizeof(*owner));

		for (size_t i = 0; i < m->n_chans; i++)
			for (size_t j = 0; j < m->chans[i]->n_pending; j++)
				all[k++] = &m->chans[i]->pending[j];
		qsort(all, n, sizeof(*all), pending_order);
		for (size_t j = 0; j < n; j++)
			for (size_t i = 0; i < m->n_chans && !owner[j]; i++)
				if (all[j] >= m->chans[i]->pending &&
				    all[j] < m->chans[i]->pending + m->chans[i]->n_pending)
					owner[j] = m->chans[i];
		for (size_t j = 0; j < n; j++)
			c->sink.event(c->sink.ctx, c, owner[j], &all[j]->ev);
		free(owner);
		free(all);
	}
	for (size_t i = 0; i < m->n_chans; i++) {
		struct mft_chan *ch = m->chans[i];

		free(ch->pending);
		ch->pending = NULL;
		ch->n_pending = ch->cap_pending = 0;
	}
	/* the other ends of its connections, where traced, are migration channels too */
	for (size_t i = 0; i < m->n_chans; i++) {
		struct mft_chan *peer = chan_peer(c, m->chans[i]);

		if (peer && peer->mig && !peer->mig->done)
			set_evidence(c, peer->mig);
	}
}

/* A traced other end whose group is a migration makes this one's group a migration. */
static void peer_evidence(struct mft_correlator *c, struct mft_chan *ch)
{
	struct mft_chan *peer;

	if (!ch->mig || ch->mig->evidence)
		return;
	peer = chan_peer(c, ch);
	if (peer && peer->mig && peer->mig->evidence)
		set_evidence(c, ch->mig);
}

/*
 * A socket found mid-life has no connect() or accept() to tell its role. The channels of
 * one migration share an endpoint: the destination's listening address is every
 * channel's local end there, the source's peer end here. Two such sockets say which.
 */
static struct mft_migration *infer_role(struct mft_correlator *c, struct mft_chan *ch)
{
	for (size_t i = 0; i < c->n_migs; i++) {
		struct mft_migration *o = c->migs[i];

		if (o->done || o->proc != ch->proc)
			continue;
		for (size_t k = 0; k < o->n_chans; k++) {
			const struct mft_chan *x = o->chans[k];
			int role = MFT_ROLE_UNKNOWN;

			if (!x->evidence.midlife)
				continue;
			if (x->lport == ch->lport && !memcmp(x->laddr, ch->laddr, 16))
				role = MFT_ROLE_DEST;
			else if (x->rport == ch->rport && !memcmp(x->raddr, ch->raddr, 16))
				role = MFT_ROLE_SOURCE;
			if (role == MFT_ROLE_UNKNOWN || (o->role != MFT_ROLE_UNKNOWN && o->role != role))
				continue;
			o->role = role;
			for (size_t j = 0; j < o->n_chans; j++)
				o->chans[j]->role = o->chans[j]->evidence.role = role;
			ch->role = ch->evidence.role = role;
			mft_fmt_addr(o->endpoint, sizeof(o->endpoint), ch->family,
				     role == MFT_ROLE_DEST ? ch->laddr : ch->raddr,
				     role == MFT_ROLE_DEST ? ch->lport : ch->rport);
			return o;
		}
	}
	return NULL;
}

/*
 * Does channel ch belong to the open group m (same process, role and endpoint)? Within
 * one attempt, yes; a group of no known attempt takes the channel's; a channel of no
 * known attempt joins a group whose attempt began after it opened (events cross CPUs a
 * little out of order, and a 7.2 destination's "active" comes after its accepts).
 */
static bool same_group(const struct mft_migration *m, const struct mft_chan *ch)
{
	const struct mft_attempt *a;

	if (m->attempt == ch->attempt || !m->attempt)
		return true;
	if (ch->attempt)
		return false;
	a = attempt_find(m->proc, m->attempt);
	return a && a->t_start >= ch->evidence.t_created;
}

static void mig_add_chan(struct mft_correlator *c, struct mft_chan *ch)
{
	char ep[64];
	struct mft_migration *m = ch->role == MFT_ROLE_UNKNOWN ? infer_role(c, ch) : NULL;

	if (m)
		goto add;
	if (ch->role == MFT_ROLE_DEST)
		mft_fmt_addr(ep, sizeof(ep), ch->family, ch->laddr, ch->lport);
	else
		mft_fmt_addr(ep, sizeof(ep), ch->family, ch->raddr, ch->rport);
	for (size_t i = c->n_migs; i-- > 0;) {
		struct mft_migration *o = c->migs[i];

		if (!o->done && o->proc == ch->proc && o->role == ch->role && !strcmp(o->endpoint, ep) &&
		    same_group(o, ch)) {
			m = o;
			break;
		}
	}
	if (!m) {
		m = xcalloc(sizeof(*m));
		m->pid = ch->pid;
		m->proc = ch->proc;
		m->role = ch->role;
		m->attempt = ch->attempt;
		m->t_first = ch->evidence.t_created;
		snprintf(m->endpoint, sizeof(m->endpoint), "%s", ep);
		c->migs = mft_grow(c->migs, &c->cap_migs, c->n_migs + 1, sizeof(*c->migs));
		c->migs[c->n_migs++] = m;
	}
add:
	if (!m->attempt && ch->attempt)
		m->attempt = ch->attempt;
	ch->attempt = m->attempt;
	m->chans = mft_grow(m->chans, &m->cap_chans, m->n_chans + 1, sizeof(*m->chans));
	ch->index = (int)m->n_chans;
	m->chans[m->n_chans++] = ch;
	ch->mig = m;
	c->pair_gen++;
	if (ch->kind == MFT_KIND_UNKNOWN && !ch->evidence.midlife)
		ch->kind = ch->index == 0 ? MFT_KIND_MAIN : MFT_KIND_MULTIFD;
	if (ch->named_multifd) {
		ch->kind = MFT_KIND_MULTIFD;
		set_evidence(c, m);
	}
}

static bool addr_known(const struct mft_chan *ch)
{
	return ch->role == MFT_ROLE_DEST ? ch->lport != 0 : ch->rport != 0;
}

static void take_addrs(struct mft_correlator *c, struct mft_chan *ch, const struct mft_event *ev)
{
	int family = ev->family;
	uint8_t la[16], ra[16];

	if (!ev->family)
		return;
	memcpy(la, ev->laddr, 16);
	memcpy(ra, ev->raddr, 16);
	/* a dual-stack listener's ::ffff:127.0.0.1 is 127.0.0.1 (pairing.h) */
	mft_addr_normalize(&family, la, ra);
	if (ch->family != family) {
		ch->family = family;
		c->pair_gen++;
	}
	if (ev->lport && (ch->lport != ev->lport || memcmp(ch->laddr, la, 16))) {
		ch->lport = ev->lport;
		memcpy(ch->laddr, la, 16);
		c->pair_gen++;
	}
	if (ev->rport && (ch->rport != ev->rport || memcmp(ch->raddr, ra, 16))) {
		ch->rport = ev->rport;
		memcpy(ch->raddr, ra, 16);
		c->pair_gen++;
	}
}
static void take_snap(struct mft_chan *ch, const struct mft_event *ev)
{
	struct mft_evidence *e = &ch->evidence;
	const struct mft_sock_snap *s = &ev->snap;

	if (ev->type == MFT_EV_MIG_STATE || !ev->sk)
		return;
	e->rx_bytes = s->rx_bytes;
	e->tx_bytes = s->tx_bytes;
	e->rx_calls = s->rx_calls;
	e->t_last_rx = s->last_rx_ns;
	e->last_rx_len = s->last_rx_len;
	e->prev_rx_len = s->prev_rx_len;
	e->last_rx_tid = s->last_rx_tid;
	e->late_reads = s->late_reads;
	e->tls_record_calls = s->tls_records;
	if (s->flags & MFT_SF_TLS)
		e->tls = true;
}

static void set_once(uint64_t *slot, uint64_t t)
{
	if (!*slot)
		*slot = t;
}

/* The first occurrence wins: its time, and the value that came with it. */
static void first_with(uint64_t *slot, uint64_t t, int *val, int64_t v)
{
	if (!*slot) {
		*slot = t;
		*val = (int)v;
	}
}

/* multifd_recv_new_channel() names the multifd channels: the others are not multifd. */
static void mark_main(struct mft_migration *m)
{
	for (size_t i = 0; i < m->n_chans; i++) {
		struct mft_chan *o = m->chans[i];

		if (!o->named_multifd && !o->evidence.midlife)
			o->kind = MFT_KIND_MAIN;
	}
}

static void apply(struct mft_correlator *c, struct mft_chan *ch, const struct mft_event *ev)
{
	struct mft_evidence *e = &ch->evidence;
	uint64_t t = ev->ts_ns;
	bool evidence = false;

	take_addrs(c, ch, ev);
	take_snap(ch, ev);
	switch (ev->type) {
	case MFT_EV_SOCK_CONNECT:
	case MFT_EV_SOCK_ACCEPT:
		ch->role = ev->type == MFT_EV_SOCK_CONNECT ? MFT_ROLE_SOURCE : MFT_ROLE_DEST;
		/* seen from its start, unless that was before its process's probes were complete */
		e->midlife = ch->proc->t_traced && t < ch->proc->t_traced;
		set_once(&e->t_created, t);
		break;
	case MFT_EV_SOCK_FOUND:
		e->midlife = true;
		set_once(&e->t_created, t);
		break;
	case MFT_EV_ESTABLISHED: set_once(&e->t_established, t); break;
	case MFT_EV_FIRST_READ: set_once(&e->t_first_read, t); break;
	case MFT_EV_TLS_HANDSHAKE:
		e->tls = true;
		set_once(&e->t_tls, t);
		break;
	case MFT_EV_TLS_BYE:
		e->tls = true;
		e->t_bye = t;
		e->bye_ret = (int)ev->ret;
		break;
	case MFT_EV_TLS_RECV_END:
		e->tls = true;
		first_with(&e->t_tls_end, t, &e->tls_end_ret, ev->ret);
		break;
	case MFT_EV_SHUTDOWN: first_with(&e->t_shutdown, t, &e->shutdown_how, ev->ret); break;
	case MFT_EV_CLOSE:
		set_once(&e->t_close, t);
		if (ch->mig && t > ch->mig->t_last_end)
			ch->mig->t_last_end = t;
		break;
	case MFT_EV_FIN_SENT: set_once(&e->t_fin_sent, t); break;
	case MFT_EV_FIN_RCVD: set_once(&e->t_fin_rcvd, t); break;
	case MFT_EV_RST_RCVD: set_once(&e->t_rst_rcvd, t); break;
	case MFT_EV_RST_SENT: set_once(&e->t_rst_sent, t); break;
	case MFT_EV_READ_EOF:
		if (!e->t_eof) {
			e->t_eof = t;
			e->eof_tid = ev->tid;
		}
		break;
	case MFT_EV_READ_ERR: first_with(&e->t_read_err, t, &e->read_err, ev->ret); break;
	case MFT_EV_DESTROY:
		e->t_destroy = t;
		ch->ended = true;
		if (ch->mig && t > ch->mig->t_last_end)
			ch->mig->t_last_end = t;
		break;
	case MFT_EV_MULTIFD_CHANNEL: ch->kind = MFT_KIND_MULTIFD; break;
	case MFT_EV_CHAN_INIT: {
		uint8_t uuid[16];
		bool has_uuid;
		int id;

		if (mft_chan_init_of_event(ev, &id, uuid, &has_uuid) != MFT_WIRE_OK) {
			c->bad_inits++; /* not a MultiFDInit_t after all */
			break;
		}
		evidence = true;
		ch->kind = MFT_KIND_MULTIFD;
		set_chan_id(c, ch, id);
		if (has_uuid && ch->mig) {
			memcpy(ch->mig->uuid, uuid, 16);
			ch->mig->has_uuid = true;
			c->pair_gen++;
		}
		break;
	}
	case MFT_EV_THREAD_END:
		set_once(&e->t_thread_end, t);
		set_chan_id(c, ch, (int)ev->ret);
		break;
	case MFT_EV_CHAN_SYNC:
		if (!e->sync_per_channel) {
			e->sync_per_channel = true;
			e->n_sync = 0;
		}
		e->n_sync++;
		e->t_last_sync = t;
		if (ev->ret >= 0)
			set_chan_id(c, ch, (int)ev->ret);
		break;
	default: break;
	}
	/* migration evidence for this socket: it is a multifd channel (correlator.h) */
	if (evidence || ev->type == MFT_EV_MULTIFD_CHANNEL || ev->type == MFT_EV_THREAD_END ||
	    ev->type == MFT_EV_CHAN_SYNC) {
		ch->kind = MFT_KIND_MULTIFD;
		ch->named_multifd = true;
		if (ch->mig) {
			set_evidence(c, ch->mig);
			if (c->opts.newchan_probe)
				mark_main(ch->mig);
		}
	}
}


static void set_outcome(const struct mft_correlator *c, struct mft_migration *m)
{
	const struct mft_attempt *a = attempt_find(m->proc, m->attempt);
	const struct mft_process *p = m->proc;

	m->failed = false;
	if (a && a->terminal) {
		snprintf(m->outcome, sizeof(m->outcome), "%s", a->state);
		m->failed = strcmp(a->state, "completed") != 0;
		if (!m->failed && p->exited && p->exit_status != 0 && m->role == MFT_ROLE_DEST &&
		    p->t_exit < m->t_last_end + c->opts.grace_ns) {
			snprintf(m->outcome, sizeof(m->outcome), "exited(%d)", p->exit_status >> 8);
			m->failed = true;
		}
	} else if (p->exited) {
		int st = p->exit_status;

		if (st & 0x7f)
			snprintf(m->outcome, sizeof(m->outcome), "killed(%d)", st & 0x7f);
		else
			snprintf(m->outcome, sizeof(m->outcome), "exited(%d)", (st >> 8) & 0xff);
		m->failed = st != 0;
	} else if (a) {
		snprintf(m->outcome, sizeof(m->outcome), "%s", a->state);
	} else {
		snprintf(m->outcome, sizeof(m->outcome), "unknown");
	}
}

/* The attempt's own final state, or the process's exit, says how it ended. */
static bool outcome_known(const struct mft_migration *m)
{
	const struct mft_attempt *a = attempt_find(m->proc, m->attempt);

	return (a && a->terminal) || m->proc->exited;
}

static bool is_multifd(const struct mft_chan *ch)
{
	return ch->kind == MFT_KIND_MULTIFD || ch->kind == MFT_KIND_UNKNOWN;
}

static void judge(struct mft_correlator *c, struct mft_migration *m)
{
	const struct mft_verdict *vs[m->n_chans ? m->n_chans : 1];
	size_t nv = 0;
	bool known = outcome_known(m);
	bool completed;

	set_outcome(c, m);
	/* Both ends traced: a migration whose other end failed has failed. */
	for (size_t i = 0; i < m->n_chans && !m->failed; i++) {
		struct mft_chan *peer = chan_peer(c, m->chans[i]);

		if (peer && peer->judged && peer->mig_failed) {
			m->failed = true;
			known = true;
			snprintf(m->outcome, sizeof(m->outcome), "%s-failed",
				 m->role == MFT_ROLE_SOURCE ? "destination" : "source");
		}
	}
	completed = !strcmp(m->outcome, "completed");
	for (size_t i = 0; i < m->n_chans; i++) {
		struct mft_chan *ch = m->chans[i];
		struct mft_chan *peer = chan_peer(c, ch);

		if (peer) {
			ch->evidence.peer_seen = true;
			ch->evidence.t_peer_shutdown = peer->evidence.t_shutdown;
			ch->evidence.t_peer_bye = peer->evidence.t_bye;
			ch->evidence.peer_bye_ret = peer->evidence.bye_ret;
		}
		ch->evidence.tls_records = c->opts.tls_records;
		if (!ch->evidence.sync_per_channel && m->n_sync) {
			ch->evidence.n_sync = m->n_sync;
			ch->evidence.t_last_sync = m->t_last_sync;
		}
		mft_judge_channel(&ch->evidence, ch->ended || ch->evidence.t_close, m->failed, known, &ch->verdict);
		/* The source cannot see the final read; a traced destination can. */
		if (ch->role == MFT_ROLE_SOURCE && peer && peer->judged && peer->verdict.kind >= 0) {
			ch->verdict.possible = peer->verdict.possible;
			ch->verdict.kind = peer->verdict.kind;
			ch->verdict.severity = peer->verdict.severity;
			ch->verdict.why = "decided by the destination's view of the same connection";
			ch->verdict.t_final_read = peer->verdict.t_final_read;
			ch->verdict.final_read_ret = peer->verdict.final_read_ret;
			ch->verdict.final_read_tid = peer->verdict.final_read_tid;
			ch->verdict.woken_by = peer->verdict.woken_by;
			if (peer->verdict.t_final_read && ch->evidence.t_shutdown)
				ch->verdict.peer_shutdown_to_final_read = (int64_t)(peer->verdict.t_final_read -
										    ch->evidence.t_shutdown);
		}
		ch->judged = true;
		ch->mig_failed = m->failed;
		if (is_multifd(ch))
			vs[nv++] = &ch->verdict;
	}
	mft_judge_migration(vs, nv, completed, m->failed, &m->verdict);
}

/* Worth reporting: it has a multifd channel, or several found mid-life (kinds unknown). */
static bool has_multifd(const struct mft_migration *m)
{
	size_t unknown = 0;

	for (size_t i = 0; i < m->n_chans; i++) {
		if (m->chans[i]->kind == MFT_KIND_MULTIFD)
			return true;
		unknown += m->chans[i]->kind == MFT_KIND_UNKNOWN;
	}
	return unknown >= 2;
}

static void remove_chan(struct mft_correlator *c, struct mft_chan *ch)
{
	struct mft_chan **memo = found_slot(c, ch->pid, ch->sk);

	if (*memo == ch)
		*memo = NULL;
	c->procs_dirty = true;
	c->pair_gen++;
	for (size_t i = 0; i < c->n_chans; i++)
		if (c->chans[i] == ch) {
			c->chans[i] = c->chans[--c->n_chans];
			return;
		}
}

static void finish_migration(struct mft_correlator *c, size_t idx)
{
	struct mft_migration *m = c->migs[idx];

	c->procs_dirty = true;
	for (size_t i = 0; i < m->n_chans && !m->evidence; i++)
		peer_evidence(c, m->chans[i]);
	if (m->evidence) {
		judge(c, m);
		m->done = true;
		if (has_multifd(m) && c->sink.migration)
			c->sink.migration(c->sink.ctx, c, m);
	} else {
		m->done = true;
		if (c->sink.other)
			c->sink.other(c->sink.ctx, c, m);
	}
	c->migs[idx] = c->migs[--c->n_migs];
	/* keep channels findable as peers until both ends are judged: drop only ours whose
	 * traced peer is judged, or that have none */
	for (size_t i = 0; i < m->n_chans; i++) {
		struct mft_chan *ch = m->chans[i], *peer = chan_peer(c, ch);

		if (m->evidence && peer && peer->mig && !peer->mig->done) {
			ch->mig = NULL; /* orphan: freed when the peer's migration is done */
			c->pair_gen++;
			m->chans[i] = NULL;
			continue;
		}
		if (peer && !peer->mig) {
			remove_chan(c, peer);
			free_chan(peer);
		}
		remove_chan(c, ch);
	}
	free_migration(m);
}

/*
 * Over for the process: the kernel destroyed the socket, or the process closed it a grace
 * period ago. A closed socket can linger in the kernel (an orphan in FIN_WAIT1 whose FIN
 * waits for a full receive window to open) long after QEMU is done with it.
 */
/* now >= t; if not yet, t is a deadline at which the answer changes */
static bool reached(uint64_t now, uint64_t t, uint64_t *due)
{
	if (now >= t)
		return true;
	if (t < *due)
		*due = t;
	return false;
}

static bool chan_over(const struct mft_chan *ch, uint64_t now, uint64_t grace, uint64_t *due)
{
	return ch->ended || (ch->evidence.t_close && reached(now, ch->evidence.t_close + grace, due));
}

/*
 * Is the group ready to be judged? Every comparison with the time goes through reached():
 * until the earliest deadline it noted, the same state gives the same answer.
 */
static bool ready(const struct mft_correlator *c, const struct mft_migration *m, uint64_t now, uint64_t *due)
{
	const struct mft_process *p = m->proc;
	bool all_ended = true, multifd_ended = true;

	for (size_t i = 0; i < m->n_chans; i++) {
		struct mft_chan *ch = m->chans[i];

		if (!chan_over(ch, now, c->opts.grace_ns, due)) {
			all_ended = false;
			if (ch->kind != MFT_KIND_MAIN)
				multifd_ended = false;
		}
		/* wait for a traced destination end to be judged first: while its process lives,
		 * up to PEER_WAIT_GRACES after our end (a fault on the wire can leave the
		 * destination waiting long after the source failed); once it exited, until its
		 * migration is judged (a grace period after the exit) */
		if (ch->role == MFT_ROLE_SOURCE) {
			const struct mft_chan *peer = chan_peer(c, ch);

			if (peer && peer->mig && !peer->mig->done) {
				const struct mft_process *pp = peer->mig->proc;
				uint64_t until = m->t_last_end + 4 * c->opts.grace_ns;

				if (pp && !pp->exited)
					until = m->t_last_end + PEER_WAIT_GRACES * c->opts.grace_ns;
				else if (pp && pp->t_exit + 2 * c->opts.grace_ns > until)
					until = pp->t_exit + 2 * c->opts.grace_ns;
				if (!reached(now, until, due))
					return false;
			}
		}
	}
	if (p->exited && reached(now, p->t_exit + c->opts.grace_ns, due))
		return true;
	if (!multifd_ended || !m->t_last_end)
		return false;
	if (all_ended && outcome_known(m))
		return true;
	return reached(now, m->t_last_end + c->opts.grace_ns, due);
}

/*
 * A group that is no migration (yet) keeps no channel that ended a grace period ago: a
 * VNC or NBD server with connections coming and going for months stays small. True when
 * it let one go.
 */
static bool prune_others(struct mft_correlator *c, uint64_t now, uint64_t *due)
{
	bool pruned = false;

	for (size_t i = 0; i < c->n_migs; i++) {
		struct mft_migration *m = c->migs[i];
		size_t keep = 0;

		if (m->evidence || m->n_chans < 2)
			continue;
		for (size_t k = 0; k < m->n_chans; k++) {
			struct mft_chan *ch = m->chans[k];
			uint64_t t_end = ch->evidence.t_destroy > ch->evidence.t_close ? ch->evidence.t_destroy
										       : ch->evidence.t_close;

			if (k + 1 < m->n_chans && chan_over(ch, now, c->opts.grace_ns, due) && t_end &&
			    reached(now, t_end + c->opts.grace_ns, due) && !chan_peer(c, ch)) {
				m->n_pruned++;
				m->n_pruned_tls += ch->evidence.tls;
				remove_chan(c, ch);
				free_chan(ch);
				pruned = true;
				continue;
			}
			m->chans[keep++] = ch;
		}
		m->n_chans = keep;
	}
	return pruned;
}

void mft_corr_tick(struct mft_correlator *c, uint64_t now_ns)
{
	if (now_ns > c->now)
		c->now = now_ns;
	if (c->tick_dirty || c->now >= c->tick_due) {
		c->tick_dirty = false;
		c->tick_due = UINT64_MAX;
		for (size_t i = 0; i < c->n_migs;) {
			if (ready(c, c->migs[i], c->now, &c->tick_due)) {
				finish_migration(c, i); /* swaps the last one into i */
				c->tick_dirty = true;   /* the others may wait for it */
			} else {
				i++;
			}
		}
		if (prune_others(c, c->now, &c->tick_due))
			c->tick_dirty = true;
	}
	prune_procs(c);
}

void mft_corr_finish(struct mft_correlator *c, uint64_t now_ns)
{
	if (now_ns > c->now)
		c->now = now_ns;
	/* destinations first, so that sources can borrow their verdicts */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < c->n_migs;) {
			if ((c->migs[i]->role == MFT_ROLE_SOURCE) == (pass == 0)) {
				i++;
				continue;
			}
			finish_migration(c, i);
		}
}

/* An event line of a channel: out now if its group is a migration, else held back. */
static void event_out(struct mft_correlator *c, struct mft_chan *ch, const struct mft_event *ev)
{
	struct mft_pending *pd;

	if (!c->sink.event)
		return;
	if (!ch || (ch->mig && ch->mig->evidence)) {
		c->sink.event(c->sink.ctx, c, ch, ev);
		return;
	}
	if (ch->n_pending == MAX_PENDING) {
		ch->pending_dropped++;
		return;
	}
	ch->pending = mft_grow(ch->pending, &ch->cap_pending, ch->n_pending + 1, sizeof(*ch->pending));
	pd = &ch->pending[ch->n_pending++];
	pd->seq = c->next_seq++;
	pd->ev = *ev;
}

/* Groups of this process that process-level events (sync points, teardown) speak of. */
static bool in_attempt(const struct mft_migration *m, const struct mft_process *p)
{
	uint64_t cur = p->n_att && !p->att[p->n_att - 1].terminal ? p->att[p->n_att - 1].id : 0;

	return m->proc == p && (!m->attempt || !cur || m->attempt == cur);
}

void mft_corr_feed(struct mft_correlator *c, const struct mft_event *ev)
{
	struct tick_key t_before, t_after;
	struct mft_chan *ch = NULL;
	struct mft_process *p;
	bool changed = true; /* may it have made a group ready (tick_key) */

	/* time moved on: what that alone ends is judged before this event counts (as a
	 * replay does, which ticks at each event's time) */
	if (ev->ts_ns > c->now)
		mft_corr_tick(c, ev->ts_ns);
	switch (ev->type) {
	case MFT_EV_PROC_EXIT:
		p = proc_of_event(c, ev);
		p->exited = true;
		c->procs_dirty = true;
		p->exit_status = (int)ev->ret;
		p->t_exit = ev->ts_ns;
		break;
	case MFT_EV_MIG_STATE: state_event(c, proc_of_event(c, ev), ev); break;
	case MFT_EV_MULTIFD_CLEANUP:
		p = proc_of_event(c, ev);
		for (size_t i = 0; i < c->n_migs; i++)
			if (in_attempt(c->migs[i], p) && !c->migs[i]->t_cleanup)
				c->migs[i]->t_cleanup = ev->ts_ns;
		break;
	case MFT_EV_SYNC_MAIN:
		p = proc_of_event(c, ev);
		for (size_t i = 0; i < c->n_migs; i++) {
			struct mft_migration *m = c->migs[i];

			if (!in_attempt(m, p) || m->t_cleanup)
				continue;
			m->n_sync++;
			set_once(&m->t_first_sync, ev->ts_ns);
			m->t_last_sync = ev->ts_ns;
		}
		changed = false; /* counts only */
		break;
	default:
		changed = false;
		if (!ev->sk)
			break;
		ch = chan_find(c, ev->pid, ev->sk);
		if (ch && ch->ended &&
		    (ev->type == MFT_EV_SOCK_CONNECT || ev->type == MFT_EV_SOCK_ACCEPT ||
		     ev->type == MFT_EV_SOCK_FOUND))
			ch = NULL; /* the kernel reused the address for a new socket */
		if (!ch && ev->type != MFT_EV_SOCK_CONNECT && ev->type != MFT_EV_SOCK_ACCEPT &&
		    ev->type != MFT_EV_SOCK_FOUND)
			break; /* the late end (destroy, FIN) of a channel already judged and forgotten */
		if (!ch) {
			p = proc_of_event(c, ev);
			ch = xcalloc(sizeof(*ch));
			ch->sk = ev->sk;
			ch->pid = ev->pid;
			ch->proc = p;
			ch->chan_id = -1;
			ch->role = ev->role;
			ch->evidence.role = ev->role;
			ch->evidence.midlife = ev->type != MFT_EV_SOCK_CONNECT && ev->type != MFT_EV_SOCK_ACCEPT;
			/* opened before its process's probes were complete: what happened to it
			 * before then (a TLS handshake) may be missing, so it is mid-life */
			if (p->t_traced && ev->ts_ns < p->t_traced)
				ch->evidence.midlife = true;
			ch->evidence.t_created = ev->ts_ns;
			ch->attempt = attempt_at(p, ev->ts_ns);
			c->chans = mft_grow(c->chans, &c->cap_chans, c->n_chans + 1, sizeof(*c->chans));
			c->chans[c->n_chans++] = ch;
			*found_slot(c, ch->pid, ch->sk) = ch;
			c->pair_gen++;
			changed = true;
		}
		tick_key_of(c, ch, &t_before);
		apply(c, ch, ev);
		ch->evidence.role = ch->role;
		if (!ch->mig && addr_known(ch))
			mig_add_chan(c, ch);
		else if (!ch->mig && ch->role == MFT_ROLE_UNKNOWN && ch->rport)
			mig_add_chan(c, ch);
		if (ev->type == MFT_EV_SOCK_CONNECT || ev->type == MFT_EV_SOCK_ACCEPT ||
		    ev->type == MFT_EV_SOCK_FOUND || ev->type == MFT_EV_ESTABLISHED)
			peer_evidence(c, ch);
		tick_key_of(c, ch, &t_after);
		changed |= !tick_key_same(&t_before, &t_after);
		break;
	}
	event_out(c, ch, ev);
	if (changed) {
		c->tick_dirty = true;
		mft_corr_tick(c, c->now);
	}
}
