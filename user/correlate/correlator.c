// SPDX-License-Identifier: GPL-2.0
/*
 * Correlator: events -> channels -> migrations -> verdicts. No kernel dependency.
 * Live mode feeds it from the ring buffer; the unit tests feed it by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "correlate/correlator.h"
#include "correlate/multifd_wire.h"

#define DEFAULT_GRACE_NS (2ull * 1000 * 1000 * 1000)

struct mft_correlator {
	struct mft_corr_opts opts;
	struct mft_sink sink;
	struct mft_chan **chans;     /* channels of migrations not yet done */
	size_t n_chans, cap_chans;
	struct mft_migration **migs; /* migrations not yet done */
	size_t n_migs, cap_migs;
	struct mft_process *procs;
	size_t n_procs, cap_procs;
	uint64_t next_mig_id;
	uint64_t now;                /* latest time seen */
	uint64_t bad_inits;          /* channel-init events that did not decode */
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
	return c;
}

static void free_migration(struct mft_migration *m)
{
	for (size_t i = 0; i < m->n_chans; i++)
		free(m->chans[i]);
	free(m->chans);
	free(m);
}

void mft_corr_free(struct mft_correlator *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_migs; i++)
		free_migration(c->migs[i]);
	/* channels not in a migration */
	for (size_t i = 0; i < c->n_chans; i++)
		if (!c->chans[i]->mig)
			free(c->chans[i]);
	free(c->migs);
	free(c->chans);
	free(c->procs);
	free(c);
}

static struct mft_process *proc_get(struct mft_correlator *c, uint32_t pid)
{
	for (size_t i = 0; i < c->n_procs; i++)
		if (c->procs[i].pid == pid)
			return &c->procs[i];
	c->procs = mft_grow(c->procs, &c->cap_procs, c->n_procs + 1, sizeof(*c->procs));
	struct mft_process *p = &c->procs[c->n_procs++];

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	return p;
}

const struct mft_process *mft_corr_process(const struct mft_correlator *c, uint32_t pid)
{
	for (size_t i = 0; i < c->n_procs; i++)
		if (c->procs[i].pid == pid)
			return &c->procs[i];
	return NULL;
}

void mft_corr_set_process_name(struct mft_correlator *c, uint32_t pid, const char *name)
{
	struct mft_process *p = proc_get(c, pid);

	snprintf(p->name, sizeof(p->name), "%s", name);
}

size_t mft_corr_open_migrations(const struct mft_correlator *c)
{
	return c->n_migs;
}

static struct mft_chan *chan_find(struct mft_correlator *c, uint32_t pid, uint64_t sk)
{
	for (size_t i = c->n_chans; i-- > 0;)
		if (c->chans[i]->pid == pid && c->chans[i]->sk == sk)
			return c->chans[i];
	return NULL;
}

/* The same connection as seen by the other end, if that end is traced too. */
static struct mft_chan *chan_peer(struct mft_correlator *c, const struct mft_chan *ch)
{
	if (!ch->lport || !ch->rport)
		return NULL;
	for (size_t i = 0; i < c->n_chans; i++) {
		struct mft_chan *o = c->chans[i];

		if (o == ch || o->pid == ch->pid || o->lport != ch->rport || o->rport != ch->lport)
			continue;
		if (memcmp(o->laddr, ch->raddr, 16) || memcmp(o->raddr, ch->laddr, 16))
			continue;
		/* where both ends know QEMU's channel id or the migration UUID, they must agree */
		if (o->chan_id >= 0 && ch->chan_id >= 0 && o->chan_id != ch->chan_id)
			continue;
		if (o->mig && ch->mig && o->mig->has_uuid && ch->mig->has_uuid &&
		    memcmp(o->mig->uuid, ch->mig->uuid, 16))
			continue;
		return o;
	}
	return NULL;
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

		if (o->done || o->pid != ch->pid)
			continue;
		for (size_t k = 0; k < o->n_chans; k++) {
			const struct mft_chan *x = o->chans[k];
			int role = MFT_ROLE_UNKNOWN;

			if (!x->ev.midlife)
				continue;
			if (x->lport == ch->lport && !memcmp(x->laddr, ch->laddr, 16))
				role = MFT_ROLE_DEST;
			else if (x->rport == ch->rport && !memcmp(x->raddr, ch->raddr, 16))
				role = MFT_ROLE_SOURCE;
			if (role == MFT_ROLE_UNKNOWN || (o->role != MFT_ROLE_UNKNOWN && o->role != role))
				continue;
			o->role = role;
			for (size_t j = 0; j < o->n_chans; j++)
				o->chans[j]->role = o->chans[j]->ev.role = role;
			ch->role = ch->ev.role = role;
			mft_fmt_addr(o->endpoint, sizeof(o->endpoint), ch->family,
				     role == MFT_ROLE_DEST ? ch->laddr : ch->raddr,
				     role == MFT_ROLE_DEST ? ch->lport : ch->rport);
			return o;
		}
	}
	return NULL;
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
	for (size_t i = 0; i < c->n_migs; i++) {
		struct mft_migration *o = c->migs[i];

		if (!o->done && o->pid == ch->pid && o->role == ch->role && !strcmp(o->endpoint, ep)) {
			m = o;
			break;
		}
	}
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m) {
			fprintf(stderr, "mftrace: out of memory\n");
			exit(1);
		}
		m->id = c->next_mig_id++;
		m->pid = ch->pid;
		m->role = ch->role;
		m->t_first = ch->ev.t_created;
		snprintf(m->endpoint, sizeof(m->endpoint), "%s", ep);
		c->migs = mft_grow(c->migs, &c->cap_migs, c->n_migs + 1, sizeof(*c->migs));
		c->migs[c->n_migs++] = m;
	}
add:
	m->chans = mft_grow(m->chans, &m->cap_chans, m->n_chans + 1, sizeof(*m->chans));
	ch->index = (int)m->n_chans;
	m->chans[m->n_chans++] = ch;
	ch->mig = m;
	if (ch->kind == MFT_KIND_UNKNOWN && !ch->ev.midlife)
		ch->kind = ch->index == 0 ? MFT_KIND_MAIN : MFT_KIND_MULTIFD;
	if (ch->flagged)
		ch->kind = MFT_KIND_MULTIFD;
}

static bool addr_known(const struct mft_chan *ch)
{
	return ch->role == MFT_ROLE_DEST ? ch->lport != 0 : ch->rport != 0;
}

static void take_addrs(struct mft_chan *ch, const struct mft_event *ev)
{
	if (!ev->family)
		return;
	ch->family = ev->family;
	if (ev->lport) {
		ch->lport = ev->lport;
		memcpy(ch->laddr, ev->laddr, 16);
	}
	if (ev->rport) {
		ch->rport = ev->rport;
		memcpy(ch->raddr, ev->raddr, 16);
	}
}

static void take_snap(struct mft_chan *ch, const struct mft_event *ev)
{
	struct mft_evidence *e = &ch->ev;
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

		if (!o->flagged && !o->ev.midlife)
			o->kind = MFT_KIND_MAIN;
	}
}

static void apply(struct mft_correlator *c, struct mft_chan *ch, const struct mft_event *ev)
{
	struct mft_evidence *e = &ch->ev;
	uint64_t t = ev->ts_ns;

	take_addrs(ch, ev);
	take_snap(ch, ev);
	switch (ev->type) {
	case MFT_EV_SOCK_CONNECT:
	case MFT_EV_SOCK_ACCEPT:
		ch->role = ev->type == MFT_EV_SOCK_CONNECT ? MFT_ROLE_SOURCE : MFT_ROLE_DEST;
		e->midlife = false;
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
	case MFT_EV_MULTIFD_CHANNEL:
		ch->kind = MFT_KIND_MULTIFD;
		break;
	case MFT_EV_CHAN_INIT: {
		uint8_t uuid[16];
		bool has_uuid;
		int id;

		if (mft_chan_init_of_event(ev, &id, uuid, &has_uuid) != MFT_WIRE_OK) {
			c->bad_inits++; /* not a MultiFDInit_t after all */
			break;
		}
		ch->kind = MFT_KIND_MULTIFD;
		ch->chan_id = id;
		if (has_uuid && ch->mig) {
			memcpy(ch->mig->uuid, uuid, 16);
			ch->mig->has_uuid = true;
		}
		break;
	}
	case MFT_EV_THREAD_END:
		set_once(&e->t_thread_end, t);
		ch->chan_id = (int)ev->ret;
		break;
	case MFT_EV_CHAN_SYNC:
		if (!e->sync_per_channel) {
			e->sync_per_channel = true;
			e->n_sync = 0;
		}
		e->n_sync++;
		e->t_last_sync = t;
		if (ev->ret >= 0)
			ch->chan_id = (int)ev->ret;
		break;
	default:
		break;
	}
	if (ev->type == MFT_EV_MULTIFD_CHANNEL || (ev->type == MFT_EV_CHAN_INIT && ch->kind == MFT_KIND_MULTIFD)) {
		ch->flagged = true;
		if (ch->mig && c->opts.newchan_probe)
			mark_main(ch->mig);
	}
}

static void state_event(struct mft_correlator *c, const struct mft_event *ev)
{
	struct mft_process *p = proc_get(c, ev->pid);
	struct mft_statemachine *sm = NULL;

	for (int i = 0; i < p->n_sm; i++)
		if (p->sm[i].ptr == ev->sk)
			sm = &p->sm[i];
	if (!sm) {
		if (p->n_sm == (int)(sizeof(p->sm) / sizeof(p->sm[0]))) {
			memmove(&p->sm[0], &p->sm[1], sizeof(p->sm[0]) * (size_t)(p->n_sm - 1));
			p->n_sm--;
		}
		sm = &p->sm[p->n_sm++];
		memset(sm, 0, sizeof(*sm));
		sm->ptr = ev->sk;
	}
	sm->t_last = ev->ts_ns;
	if (ev->str[0])
		snprintf(sm->state, sizeof(sm->state), "%.*s", MFT_STR_LEN - 1, ev->str);
	else
		snprintf(sm->state, sizeof(sm->state), "state-%lld", (long long)ev->ret);
	sm->terminal = !strcmp(sm->state, "completed") || !strcmp(sm->state, "failed") ||
		       !strcmp(sm->state, "cancelled");
}

/* The state machine that ran this migration, if the process showed one. */
static const struct mft_statemachine *mig_statemachine(const struct mft_correlator *c,
						       const struct mft_migration *m)
{
	const struct mft_process *p = mft_corr_process(c, m->pid);
	const struct mft_statemachine *best = NULL;

	if (!p)
		return NULL;
	for (int i = 0; i < p->n_sm; i++) {
		const struct mft_statemachine *sm = &p->sm[i];

		if (sm->t_last + c->opts.grace_ns < m->t_first)
			continue; /* finished before this migration began */
		if (!best || (sm->terminal && !best->terminal) ||
		    (sm->terminal == best->terminal && sm->t_last > best->t_last))
			best = sm;
	}
	return best;
}

static bool outcome_known(const struct mft_correlator *c, const struct mft_migration *m)
{
	const struct mft_statemachine *sm = mig_statemachine(c, m);
	const struct mft_process *p = mft_corr_process(c, m->pid);

	return (sm && sm->terminal) || (p && p->exited);
}

static void set_outcome(const struct mft_correlator *c, struct mft_migration *m)
{
	const struct mft_statemachine *sm = mig_statemachine(c, m);
	const struct mft_process *p = mft_corr_process(c, m->pid);

	m->failed = false;
	if (sm && sm->terminal) {
		snprintf(m->outcome, sizeof(m->outcome), "%s", sm->state);
		m->failed = strcmp(sm->state, "completed") != 0;
		if (!m->failed && p && p->exited && p->exit_status != 0 && m->role == MFT_ROLE_DEST &&
		    p->t_exit < m->t_last_end + c->opts.grace_ns) {
			snprintf(m->outcome, sizeof(m->outcome), "exited(%d)", p->exit_status >> 8);
			m->failed = true;
		}
	} else if (p && p->exited) {
		int st = p->exit_status;

		if (st & 0x7f)
			snprintf(m->outcome, sizeof(m->outcome), "killed(%d)", st & 0x7f);
		else
			snprintf(m->outcome, sizeof(m->outcome), "exited(%d)", (st >> 8) & 0xff);
		m->failed = st != 0;
	} else if (sm) {
		snprintf(m->outcome, sizeof(m->outcome), "%s", sm->state);
	} else {
		snprintf(m->outcome, sizeof(m->outcome), "unknown");
	}
}

static bool is_multifd(const struct mft_chan *ch)
{
	return ch->kind == MFT_KIND_MULTIFD || ch->kind == MFT_KIND_UNKNOWN;
}

static void judge(struct mft_correlator *c, struct mft_migration *m)
{
	const struct mft_verdict *vs[m->n_chans ? m->n_chans : 1];
	size_t nv = 0;
	bool known = outcome_known(c, m);
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
			ch->ev.peer_seen = true;
			ch->ev.t_peer_shutdown = peer->ev.t_shutdown;
			ch->ev.t_peer_bye = peer->ev.t_bye;
			ch->ev.peer_bye_ret = peer->ev.bye_ret;
		}
		ch->ev.tls_records = c->opts.tls_records;
		if (!ch->ev.sync_per_channel && m->n_sync) {
			ch->ev.n_sync = m->n_sync;
			ch->ev.t_last_sync = m->t_last_sync;
		}
		mft_judge_channel(&ch->ev, ch->ended || ch->ev.t_close, m->failed, known, &ch->verdict);
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
			if (peer->verdict.t_final_read && ch->ev.t_shutdown)
				ch->verdict.peer_shutdown_to_final_read =
					(int64_t)(peer->verdict.t_final_read - ch->ev.t_shutdown);
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
	for (size_t i = 0; i < c->n_chans; i++)
		if (c->chans[i] == ch) {
			c->chans[i] = c->chans[--c->n_chans];
			return;
		}
}

static void finish_migration(struct mft_correlator *c, size_t idx)
{
	struct mft_migration *m = c->migs[idx];

	judge(c, m);
	m->done = true;
	if (has_multifd(m) && c->sink.migration)
		c->sink.migration(c->sink.ctx, c, m);
	c->migs[idx] = c->migs[--c->n_migs];
	/* keep channels findable as peers until both ends are judged: drop only ours whose
	 * traced peer is judged, or that have none */
	for (size_t i = 0; i < m->n_chans; i++) {
		struct mft_chan *ch = m->chans[i], *peer = chan_peer(c, ch);

		if (peer && peer->mig && !peer->mig->done) {
			ch->mig = NULL; /* orphan: freed when the peer's migration is done */
			m->chans[i] = NULL;
			continue;
		}
		if (peer && !peer->mig) {
			remove_chan(c, peer);
			free(peer);
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
static bool chan_over(const struct mft_chan *ch, uint64_t now, uint64_t grace)
{
	return ch->ended || (ch->ev.t_close && now >= ch->ev.t_close + grace);
}

static bool ready(const struct mft_correlator *c, const struct mft_migration *m, uint64_t now)
{
	const struct mft_process *p = mft_corr_process(c, m->pid);
	bool all_ended = true, multifd_ended = true;

	for (size_t i = 0; i < m->n_chans; i++) {
		const struct mft_chan *ch = m->chans[i];

		if (!chan_over(ch, now, c->opts.grace_ns)) {
			all_ended = false;
			if (ch->kind != MFT_KIND_MAIN)
				multifd_ended = false;
		}
		/* wait for a traced destination end to be judged first */
		if (ch->role == MFT_ROLE_SOURCE) {
			const struct mft_chan *peer = chan_peer((struct mft_correlator *)c, ch);

			if (peer && peer->mig && !peer->mig->done && now < m->t_last_end + 4 * c->opts.grace_ns)
				return false;
		}
	}
	if (p && p->exited && now >= p->t_exit + c->opts.grace_ns)
		return true;
	if (!multifd_ended || !m->t_last_end)
		return false;
	if (all_ended && outcome_known(c, m))
		return true;
	return now >= m->t_last_end + c->opts.grace_ns;
}

void mft_corr_tick(struct mft_correlator *c, uint64_t now_ns)
{
	if (now_ns > c->now)
		c->now = now_ns;
	for (size_t i = 0; i < c->n_migs;) {
		if (ready(c, c->migs[i], c->now))
			finish_migration(c, i); /* swaps the last one into i */
		else
			i++;
	}
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

void mft_corr_feed(struct mft_correlator *c, const struct mft_event *ev)
{
	struct mft_chan *ch = NULL;

	if (ev->ts_ns > c->now)
		c->now = ev->ts_ns;
	switch (ev->type) {
	case MFT_EV_PROC_EXIT: {
		struct mft_process *p = proc_get(c, ev->pid);

		p->exited = true;
		p->exit_status = (int)ev->ret;
		p->t_exit = ev->ts_ns;
		break;
	}
	case MFT_EV_MIG_STATE:
		state_event(c, ev);
		break;
	case MFT_EV_MULTIFD_CLEANUP:
		for (size_t i = 0; i < c->n_migs; i++)
			if (c->migs[i]->pid == ev->pid && !c->migs[i]->t_cleanup)
				c->migs[i]->t_cleanup = ev->ts_ns;
		break;
	case MFT_EV_SYNC_MAIN:
		for (size_t i = 0; i < c->n_migs; i++) {
			struct mft_migration *m = c->migs[i];

			if (m->pid != ev->pid || m->t_cleanup)
				continue;
			m->n_sync++;
			set_once(&m->t_first_sync, ev->ts_ns);
			m->t_last_sync = ev->ts_ns;
		}
		break;
	default:
		if (!ev->sk)
			break;
		ch = chan_find(c, ev->pid, ev->sk);
		if (ch && ch->ended && (ev->type == MFT_EV_SOCK_CONNECT || ev->type == MFT_EV_SOCK_ACCEPT))
			ch = NULL; /* the kernel reused the address for a new socket */
		if (!ch && ev->type != MFT_EV_SOCK_CONNECT && ev->type != MFT_EV_SOCK_ACCEPT &&
		    ev->type != MFT_EV_SOCK_FOUND)
			break; /* the late end (destroy, FIN) of a channel already judged and forgotten */
		if (!ch) {
			ch = calloc(1, sizeof(*ch));
			if (!ch) {
				fprintf(stderr, "mftrace: out of memory\n");
				exit(1);
			}
			ch->sk = ev->sk;
			ch->pid = ev->pid;
			ch->chan_id = -1;
			ch->role = ev->role;
			ch->ev.role = ev->role;
			ch->ev.midlife = ev->type != MFT_EV_SOCK_CONNECT && ev->type != MFT_EV_SOCK_ACCEPT;
			ch->ev.t_created = ev->ts_ns;
			c->chans = mft_grow(c->chans, &c->cap_chans, c->n_chans + 1, sizeof(*c->chans));
			c->chans[c->n_chans++] = ch;
		}
		apply(c, ch, ev);
		ch->ev.role = ch->role;
		if (!ch->mig && addr_known(ch))
			mig_add_chan(c, ch);
		else if (!ch->mig && ch->role == MFT_ROLE_UNKNOWN && ch->rport)
			mig_add_chan(c, ch);
		break;
	}
	if (c->sink.event)
		c->sink.event(c->sink.ctx, c, ch, ev);
	mft_corr_tick(c, c->now);
}
