/* The correlator driven by hand-made event sequences: grouping, kinds, outcomes, joins. */
#include <stdlib.h>
#include "unit.h"
#include "correlate/correlator.h"
#include "correlate/pairing.h"

#define MS 1000000ull
#define DST 100
#define SRC 200
#define PORT 4444

struct capture {
	const struct mft_migration *migs[8];
	struct mft_migration copies[8];
	struct mft_chan chans[8][8];
	int n;
	int events;
	size_t others, other_conns, other_tls; /* groups that showed no migration evidence */
};

/* The correlator frees a migration after the callback: keep a deep copy. */
static void on_mig(void *ctx, const struct mft_correlator *c, const struct mft_migration *m)
{
	struct capture *cap = ctx;

	(void)c;
	if (cap->n == 8)
		return;
	cap->copies[cap->n] = *m;
	for (size_t i = 0; i < m->n_chans && i < 8; i++)
		cap->chans[cap->n][i] = *m->chans[i];
	cap->migs[cap->n] = &cap->copies[cap->n];
	cap->n++;
}

static void on_ev(void *ctx, const struct mft_correlator *c, const struct mft_chan *ch, const struct mft_event *ev)
{
	(void)c;
	(void)ch;
	(void)ev;
	((struct capture *)ctx)->events++;
}

static void on_other(void *ctx, const struct mft_correlator *c, const struct mft_migration *m)
{
	struct capture *cap = ctx;

	(void)c;
	cap->others++;
	cap->other_conns += m->n_chans + m->n_pruned;
	cap->other_tls += m->n_pruned_tls;
	for (size_t i = 0; i < m->n_chans; i++)
		cap->other_tls += m->chans[i]->evidence.tls;
}

static struct mft_correlator *mk(struct capture *cap, bool tls_records)
{
	struct mft_corr_opts o = { .tls_records = tls_records, .newchan_probe = true, .grace_ns = 100 * MS };
	struct mft_sink s = { .ctx = cap, .event = on_ev, .migration = on_mig, .other = on_other };

	memset(cap, 0, sizeof(*cap));
	return mft_corr_new(&o, &s);
}

static uint64_t sk_of(uint32_t pid, int ch)
{
	return ((uint64_t)pid << 16) | (uint64_t)(ch + 1);
}

/* An event on channel ch of pid; ports as a loopback migration would have them. */
static void ev(struct mft_correlator *c, uint32_t pid, int ch, int type, uint64_t t, int64_t ret)
{
	struct mft_event e = { 0 };
	int role = pid == DST ? MFT_ROLE_DEST : MFT_ROLE_SOURCE;

	e.ts_ns = t;
	e.type = (uint16_t)type;
	e.pid = pid;
	e.sk = ch >= 0 ? sk_of(pid, ch) : 0;
	e.ret = ret;
	e.role = (uint8_t)role;
	/* the kernel's own context (softirq) has no thread; calls made by QEMU do */
	if (type != MFT_EV_FIN_RCVD && type != MFT_EV_FIN_SENT && type != MFT_EV_DESTROY &&
	    type != MFT_EV_ESTABLISHED && type != MFT_EV_RST_RCVD && type != MFT_EV_RST_SENT)
		e.tid = pid + 1;
	if (ch >= 0) {
		e.family = 2;
		e.laddr[0] = e.raddr[0] = 127;
		e.laddr[3] = e.raddr[3] = 1;
		e.lport = role == MFT_ROLE_DEST ? PORT : (uint16_t)(50000 + ch);
		e.rport = role == MFT_ROLE_DEST ? (uint16_t)(50000 + ch) : PORT;
	}
	if (type == MFT_EV_TLS_HANDSHAKE)
		e.snap.flags = MFT_SF_TLS;
	mft_corr_feed(c, &e);
}

/* The MultiFDInit_t that opens multifd channel ch (id = ch - 1), as the BPF side copies its
 * first 32 bytes: read on a destination, sent by a source. uuid_byte 0: the default all-zero UUID. */
static void init_ev(struct mft_correlator *c, uint32_t pid, int ch, uint64_t t, uint8_t uuid_byte)
{
	struct mft_event e = { 0 };
	uint8_t raw[32] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };
	int role = pid == DST ? MFT_ROLE_DEST : MFT_ROLE_SOURCE;

	memset(raw + 8, uuid_byte, 16);
	raw[24] = (uint8_t)(ch - 1);
	e.ts_ns = t;
	e.type = MFT_EV_CHAN_INIT;
	e.pid = pid;
	e.tid = pid + 1;
	e.sk = sk_of(pid, ch);
	e.ret = -1;
	e.role = (uint8_t)role;
	e.family = 2;
	e.laddr[0] = e.raddr[0] = 127;
	e.laddr[3] = e.raddr[3] = 1;
	e.lport = role == MFT_ROLE_DEST ? PORT : (uint16_t)(50000 + ch);
	e.rport = role == MFT_ROLE_DEST ? (uint16_t)(50000 + ch) : PORT;
	memcpy(&e.arg, raw, 8);
	memcpy(e.str, raw + 8, 24);
	mft_corr_feed(c, &e);
}

static void state(struct mft_correlator *c, uint32_t pid, uint64_t t, const char *name)
{
	struct mft_event e = { 0 };

	e.ts_ns = t;
	e.type = MFT_EV_MIG_STATE;
	e.pid = pid;
	e.tid = pid + 1;
	e.sk = 0xabc; /* the state machine's address */
	snprintf(e.str, sizeof(e.str), "%s", name);
	mft_corr_feed(c, &e);
}

/* The destination of a 7.2 -> 7.2 TLS migration: main + 4 multifd; channel 2 reads
 * EOF after the source's FIN, the others never read again. */
static void dst_72(struct mft_correlator *c, bool eof_on_2, uint64_t t0)
{
	for (int ch = 0; ch <= 4; ch++) {
		ev(c, DST, ch, MFT_EV_SOCK_ACCEPT, t0 + ch * MS, 0);
		ev(c, DST, ch, MFT_EV_TLS_HANDSHAKE, t0 + ch * MS + 100, 0);
		if (ch)
			ev(c, DST, ch, MFT_EV_MULTIFD_CHANNEL, t0 + ch * MS + 200, 0);
	}
	state(c, DST, t0 + 10 * MS, "active");
	for (int ch = 1; ch <= 4; ch++)
		ev(c, DST, ch, MFT_EV_FIN_RCVD, t0 + 100 * MS + ch, 8);
	if (eof_on_2)
		ev(c, DST, 2, MFT_EV_READ_EOF, t0 + 101 * MS, 0);
	for (int ch = 1; ch <= 4; ch++) {
		ev(c, DST, ch, MFT_EV_SHUTDOWN, t0 + 110 * MS, 2);
		ev(c, DST, ch, MFT_EV_CLOSE, t0 + 111 * MS, 0);
		ev(c, DST, ch, MFT_EV_DESTROY, t0 + 112 * MS, 0);
	}
	state(c, DST, t0 + 113 * MS, "completed");
	ev(c, DST, 0, MFT_EV_FIN_RCVD, t0 + 114 * MS, 8);
	ev(c, DST, 0, MFT_EV_CLOSE, t0 + 115 * MS, 0);
	ev(c, DST, 0, MFT_EV_DESTROY, t0 + 116 * MS, 0);
}

static void destination_migration_judged_once(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	dst_72(c, true, 1000 * MS);
	CHECK_INT(cap.n, 1);
	const struct mft_migration *m = cap.migs[0];

	CHECK_INT(m->n_chans, 5);
	CHECK_INT(m->role, MFT_ROLE_DEST);
	CHECK_STR(m->endpoint, "127.0.0.1:4444");
	CHECK_STR(m->outcome, "completed");
	CHECK_INT(cap.chans[0][0].kind, MFT_KIND_MAIN);
	for (int i = 1; i <= 4; i++)
		CHECK_INT(cap.chans[0][i].kind, MFT_KIND_MULTIFD);
	CHECK_INT(cap.chans[0][2].verdict.kind, MFT_V_PREMATURE);
	CHECK_INT(cap.chans[0][2].verdict.severity, MFT_SEV_TOLERATED);
	CHECK_INT(cap.chans[0][1].verdict.kind, MFT_V_UNREAD);
	CHECK_INT(m->verdict.kind, MFT_V_PREMATURE);
	CHECK_INT(m->verdict.n_multifd, 4);
	CHECK(m->verdict.flagged);
	CHECK(m->verdict.lucky);
	CHECK(cap.events > 20);
	mft_corr_finish(c, 2000 * MS);
	CHECK_INT(cap.n, 1); /* nothing judged twice */
	mft_corr_free(c);
}

/* A group is judged when time passes its deadline, whatever event brings that time: also
 * one that changes nothing (a SYNC), after ticks that had nothing to do were skipped. */
static void deadline_met_by_any_event(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);
	struct mft_event sync = { .type = MFT_EV_SYNC_MAIN, .pid = DST, .tid = DST + 1 };

	for (int ch = 0; ch <= 1; ch++)
		ev(c, DST, ch, MFT_EV_SOCK_ACCEPT, ch * MS, 0);
	ev(c, DST, 1, MFT_EV_MULTIFD_CHANNEL, 2 * MS, 0);
	ev(c, DST, 1, MFT_EV_FIN_RCVD, 10 * MS, 8);
	ev(c, DST, 1, MFT_EV_READ_EOF, 11 * MS, 0);
	ev(c, DST, 1, MFT_EV_DESTROY, 12 * MS, 0); /* due at 112 ms: the main channel stays open */
	for (uint64_t t = 20; t < 112; t += 10) {
		sync.ts_ns = t * MS;
		mft_corr_feed(c, &sync);
		mft_corr_tick(c, t * MS + 1);
	}
	CHECK_INT(cap.n, 0);
	sync.ts_ns = 112 * MS - 1;
	mft_corr_feed(c, &sync);
	CHECK_INT(cap.n, 0);
	sync.ts_ns = 112 * MS;
	mft_corr_feed(c, &sync);
	CHECK_INT(cap.n, 1);
	CHECK_INT(cap.chans[0][1].verdict.kind, MFT_V_PLAIN);
	mft_corr_free(c);
}

static void failed_destination_is_fatal(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);
	struct mft_event e = { .type = MFT_EV_PROC_EXIT, .pid = DST, .ret = 1 << 8 };

	for (int ch = 0; ch <= 2; ch++) {
		ev(c, DST, ch, MFT_EV_SOCK_ACCEPT, ch * MS, 0);
		ev(c, DST, ch, MFT_EV_TLS_HANDSHAKE, ch * MS + 1, 0);
		if (ch)
			ev(c, DST, ch, MFT_EV_MULTIFD_CHANNEL, ch * MS + 2, 0);
	}
	ev(c, DST, 1, MFT_EV_FIN_RCVD, 50 * MS, 8);
	ev(c, DST, 1, MFT_EV_READ_EOF, 51 * MS, 0);
	state(c, DST, 52 * MS, "failed");
	e.ts_ns = 53 * MS;
	mft_corr_feed(c, &e);
	for (int ch = 0; ch <= 2; ch++)
		ev(c, DST, ch, MFT_EV_DESTROY, 54 * MS, 0);
	CHECK_INT(cap.n, 1);
	CHECK_STR(cap.migs[0]->outcome, "failed");
	CHECK(cap.migs[0]->failed);
	CHECK_INT(cap.chans[0][1].verdict.kind, MFT_V_PREMATURE);
	CHECK_INT(cap.chans[0][1].verdict.severity, MFT_SEV_FATAL);
	CHECK_INT(cap.migs[0]->verdict.severity, MFT_SEV_FATAL);
	CHECK(!cap.migs[0]->verdict.lucky);
	mft_corr_free(c);
}

static void exit_status_is_the_outcome_without_states(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);
	struct mft_event e = { .type = MFT_EV_PROC_EXIT, .pid = DST, .ret = 1 << 8, .ts_ns = 60 * MS };

	for (int ch = 0; ch <= 1; ch++) {
		ev(c, DST, ch, MFT_EV_SOCK_ACCEPT, ch * MS, 0);
		ev(c, DST, ch, MFT_EV_TLS_HANDSHAKE, ch * MS + 1, 0);
	}
	ev(c, DST, 1, MFT_EV_MULTIFD_CHANNEL, 3 * MS, 0);
	ev(c, DST, 1, MFT_EV_READ_EOF, 51 * MS, 0);
	mft_corr_feed(c, &e);
	ev(c, DST, 0, MFT_EV_DESTROY, 61 * MS, 0);
	ev(c, DST, 1, MFT_EV_DESTROY, 61 * MS, 0);
	CHECK_INT(cap.n, 1);
	CHECK_STR(cap.migs[0]->outcome, "exited(1)");
	CHECK_INT(cap.chans[0][1].verdict.severity, MFT_SEV_FATAL);
	mft_corr_free(c);
}

static void main_channel_left_open_waits_for_grace(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	for (int ch = 0; ch <= 1; ch++)
		ev(c, DST, ch, MFT_EV_SOCK_ACCEPT, ch * MS, 0);
	ev(c, DST, 1, MFT_EV_MULTIFD_CHANNEL, 2 * MS, 0);
	ev(c, DST, 1, MFT_EV_FIN_RCVD, 10 * MS, 8);
	ev(c, DST, 1, MFT_EV_READ_EOF, 11 * MS, 0);
	ev(c, DST, 1, MFT_EV_DESTROY, 12 * MS, 0);
	mft_corr_tick(c, 50 * MS);
	CHECK_INT(cap.n, 0); /* within the grace period */
	mft_corr_tick(c, 200 * MS);
	CHECK_INT(cap.n, 1);
	CHECK_INT(cap.chans[0][1].verdict.kind, MFT_V_PLAIN);
	CHECK_INT(cap.chans[0][0].verdict.kind, MFT_V_INCOMPLETE); /* main still open */
	mft_corr_free(c);
}

static void finish_judges_open_channels_incomplete(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	for (int ch = 0; ch <= 2; ch++) {
		ev(c, SRC, ch, MFT_EV_SOCK_CONNECT, ch * MS, 0);
		if (ch)
			init_ev(c, SRC, ch, ch * MS + 1, 0);
	}
	mft_corr_tick(c, 10000 * MS);
	CHECK_INT(cap.n, 0);
	mft_corr_finish(c, 20000 * MS);
	CHECK_INT(cap.n, 1);
	CHECK_INT(cap.chans[0][1].verdict.kind, MFT_V_INCOMPLETE);
	CHECK_INT(cap.chans[0][0].kind, MFT_KIND_MAIN); /* source: first connection */
	CHECK_INT(cap.chans[0][2].kind, MFT_KIND_MULTIFD);
	mft_corr_free(c);
}

/* A socket found mid-life: the kernel knows neither role nor the connect/accept. */
static void found(struct mft_correlator *c, uint32_t pid, int ch, uint64_t t)
{
	struct mft_event e = { 0 };

	e.ts_ns = t;
	e.type = MFT_EV_SOCK_FOUND;
	e.pid = pid;
	e.sk = sk_of(pid, ch);
	e.family = 2;
	e.laddr[0] = e.raddr[0] = 127;
	e.laddr[3] = e.raddr[3] = 1;
	e.lport = pid == DST ? PORT : (uint16_t)(50000 + ch);
	e.rport = pid == DST ? (uint16_t)(50000 + ch) : PORT;
	mft_corr_feed(c, &e);
}

static void midlife_sockets_are_incomplete(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	found(c, DST, 1, 1 * MS);
	found(c, DST, 2, 1 * MS);
	ev(c, DST, 2, MFT_EV_MULTIFD_CHANNEL, 1 * MS, 0);
	ev(c, DST, 1, MFT_EV_READ_EOF, 5 * MS, 0);
	ev(c, DST, 1, MFT_EV_DESTROY, 6 * MS, 0);
	ev(c, DST, 2, MFT_EV_DESTROY, 6 * MS, 0);
	mft_corr_finish(c, 100 * MS);
	CHECK_INT(cap.n, 1);                         /* one migration, not one per socket */
	CHECK_INT(cap.migs[0]->role, MFT_ROLE_DEST); /* they share the local (listening) end */
	CHECK_STR(cap.migs[0]->endpoint, "127.0.0.1:4444");
	CHECK_INT(cap.chans[0][0].verdict.kind, MFT_V_INCOMPLETE);
	CHECK_INT(cap.chans[0][1].verdict.kind, MFT_V_INCOMPLETE);
	mft_corr_free(c);
}

static void midlife_source_inferred(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	for (int ch = 0; ch < 3; ch++)
		found(c, SRC, ch, 1 * MS);
	/* multifd teardown shuts the multifd channels down: the evidence of a migration */
	for (int ch = 1; ch < 3; ch++)
		ev(c, SRC, ch, MFT_EV_MULTIFD_CHANNEL, 50 * MS, 1);
	mft_corr_finish(c, 100 * MS);
	CHECK_INT(cap.n, 1);
	CHECK_INT(cap.migs[0]->role, MFT_ROLE_SOURCE); /* they share the peer end */
	CHECK_INT(cap.migs[0]->n_chans, 3);
	CHECK_INT(cap.chans[0][2].role, MFT_ROLE_SOURCE);
	mft_corr_free(c);
}

static void source_borrows_destination_verdict(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	for (int ch = 0; ch <= 2; ch++) {
		ev(c, SRC, ch, MFT_EV_SOCK_CONNECT, ch * MS, 0);
		ev(c, DST, ch, MFT_EV_SOCK_ACCEPT, ch * MS + 10, 0);
		ev(c, SRC, ch, MFT_EV_TLS_HANDSHAKE, ch * MS + 20, 0);
		ev(c, DST, ch, MFT_EV_TLS_HANDSHAKE, ch * MS + 20, 0);
		if (ch)
			ev(c, DST, ch, MFT_EV_MULTIFD_CHANNEL, ch * MS + 30, 0);
	}
	state(c, SRC, 90 * MS, "completed");
	for (int ch = 1; ch <= 2; ch++)
		ev(c, SRC, ch, MFT_EV_SHUTDOWN, 100 * MS, 2);
	ev(c, DST, 1, MFT_EV_FIN_RCVD, 101 * MS, 8);
	ev(c, DST, 1, MFT_EV_READ_EOF, 102 * MS, 0);
	ev(c, DST, 2, MFT_EV_FIN_RCVD, 101 * MS, 8);
	for (int ch = 0; ch <= 2; ch++)
		ev(c, SRC, ch, MFT_EV_DESTROY, 103 * MS, 0);
	CHECK_INT(cap.n, 0); /* the source waits for its traced destination */
	state(c, DST, 104 * MS, "completed");
	for (int ch = 0; ch <= 2; ch++)
		ev(c, DST, ch, MFT_EV_DESTROY, 105 * MS, 0);
	mft_corr_tick(c, 110 * MS);
	CHECK_INT(cap.n, 2);
	const struct mft_migration *src = cap.migs[0]->role == MFT_ROLE_SOURCE ? cap.migs[0] : cap.migs[1];
	int si = src == cap.migs[0] ? 0 : 1;

	CHECK_INT(cap.migs[1 - si]->role, MFT_ROLE_DEST);
	CHECK_INT(cap.chans[si][1].verdict.kind, MFT_V_PREMATURE);
	CHECK_INT(cap.chans[si][2].verdict.kind, MFT_V_UNREAD);
	CHECK_INT(cap.chans[si][1].verdict.peer_shutdown_to_final_read, 2 * MS);
	CHECK_STR(src->outcome, "completed");
	CHECK(src->verdict.flagged);
	mft_corr_free(c);
}

static void reused_socket_address_is_a_new_channel(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	ev(c, SRC, 0, MFT_EV_SOCK_CONNECT, 1 * MS, 0);
	ev(c, SRC, 1, MFT_EV_SOCK_CONNECT, 2 * MS, 0);
	init_ev(c, SRC, 1, 2 * MS + 1, 0);
	ev(c, SRC, 0, MFT_EV_DESTROY, 3 * MS, 0);
	ev(c, SRC, 1, MFT_EV_DESTROY, 3 * MS, 0);
	state(c, SRC, 4 * MS, "failed");
	mft_corr_tick(c, 5 * MS);
	CHECK_INT(cap.n, 1);
	/* a second migration whose first socket got the same kernel address */
	ev(c, SRC, 0, MFT_EV_SOCK_CONNECT, 500 * MS, 0);
	ev(c, SRC, 1, MFT_EV_SOCK_CONNECT, 501 * MS, 0);
	init_ev(c, SRC, 1, 501 * MS + 1, 0);
	ev(c, SRC, 0, MFT_EV_DESTROY, 600 * MS, 0);
	ev(c, SRC, 1, MFT_EV_DESTROY, 600 * MS, 0);
	state(c, SRC, 601 * MS, "completed");
	mft_corr_tick(c, 602 * MS);
	CHECK_INT(cap.n, 2);
	CHECK(cap.migs[1]->id != cap.migs[0]->id);
	CHECK_INT(cap.migs[1]->n_chans, 2);
	CHECK_STR(cap.migs[0]->outcome, "failed");
	CHECK_STR(cap.migs[1]->outcome, "completed");
	mft_corr_free(c);
}

/* CI saw it: a source socket closed by QEMU lingered in the kernel (never destroyed while
 * traced). The channel is over for QEMU; it is judged after the grace period, not
 * incomplete, and its late destroy does not come back as a new channel. */
static void closed_but_lingering_socket(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	for (int ch = 0; ch <= 2; ch++) {
		ev(c, SRC, ch, MFT_EV_SOCK_CONNECT, ch * MS, 0);
		ev(c, SRC, ch, MFT_EV_TLS_HANDSHAKE, ch * MS + 1, 0);
		if (ch)
			init_ev(c, SRC, ch, ch * MS + 2, 0);
	}
	state(c, SRC, 90 * MS, "completed");
	for (int ch = 1; ch <= 2; ch++)
		ev(c, SRC, ch, MFT_EV_SHUTDOWN, 100 * MS, 2);
	for (int ch = 0; ch <= 2; ch++)
		ev(c, SRC, ch, MFT_EV_CLOSE, 101 * MS, 0);
	ev(c, SRC, 0, MFT_EV_DESTROY, 102 * MS, 0);
	ev(c, SRC, 2, MFT_EV_DESTROY, 102 * MS, 0); /* channel 1 lingers */
	mft_corr_tick(c, 150 * MS);
	CHECK_INT(cap.n, 0); /* within the grace period after its close */
	mft_corr_tick(c, 300 * MS);
	CHECK_INT(cap.n, 1);
	CHECK_INT(cap.chans[0][1].verdict.kind, -1);
	CHECK_INT(cap.chans[0][1].verdict.possible, MFT_VBIT(MFT_V_PREMATURE) | MFT_VBIT(MFT_V_UNREAD));
	ev(c, SRC, 1, MFT_EV_DESTROY, 5000 * MS, 0); /* its late end */
	mft_corr_finish(c, 6000 * MS);
	CHECK_INT(cap.n, 1);
	mft_corr_free(c);
}

/* ---- a process is (pid, start time) ---- */

static void proc_exit(struct mft_correlator *c, uint32_t pid, uint64_t t, int status)
{
	struct mft_event e = { .type = MFT_EV_PROC_EXIT, .pid = pid, .tid = pid, .ts_ns = t, .ret = status };

	mft_corr_feed(c, &e);
}

/* One TLS multifd destination migration of pid: main + 2 multifd, completed, all ended. */
static void dst_small(struct mft_correlator *c, uint32_t pid_unused, uint64_t t0)
{
	(void)pid_unused;
	for (int ch = 0; ch <= 2; ch++) {
		ev(c, DST, ch, MFT_EV_SOCK_ACCEPT, t0 + ch * MS, 0);
		ev(c, DST, ch, MFT_EV_TLS_HANDSHAKE, t0 + ch * MS + 100, 0);
		if (ch)
			ev(c, DST, ch, MFT_EV_MULTIFD_CHANNEL, t0 + ch * MS + 200, 0);
	}
	state(c, DST, t0 + 10 * MS, "active");
	for (int ch = 1; ch <= 2; ch++) {
		ev(c, DST, ch, MFT_EV_FIN_RCVD, t0 + 20 * MS, 8);
		ev(c, DST, ch, MFT_EV_SHUTDOWN, t0 + 21 * MS, 2);
		ev(c, DST, ch, MFT_EV_CLOSE, t0 + 22 * MS, 0);
		ev(c, DST, ch, MFT_EV_DESTROY, t0 + 23 * MS, 0);
	}
	state(c, DST, t0 + 24 * MS, "completed");
	ev(c, DST, 0, MFT_EV_CLOSE, t0 + 25 * MS, 0);
	ev(c, DST, 0, MFT_EV_DESTROY, t0 + 26 * MS, 0);
}

/* The case: a pid reused after its process exited inherited "exited", and its
 * migrations were judged at once (and the target flapped). Registered with its start
 * time, or seen acting after the exit, it is a new process with fresh state. */
static void reused_pid_is_a_new_process(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);
	const struct mft_process *old, *neu;

	mft_corr_set_process(c, DST, 1000, 1 * MS, "old-vm");
	dst_small(c, DST, 10 * MS);
	proc_exit(c, DST, 60 * MS, 0);
	mft_corr_tick(c, 500 * MS);
	CHECK_INT(cap.n, 1);
	old = mft_corr_process(c, DST);
	CHECK(old->exited);
	/* the pid comes back as another process, registered before any of its events */
	mft_corr_set_process(c, DST, 2000, 600 * MS, "new-vm");
	neu = mft_corr_process(c, DST);
	CHECK(neu != old);
	CHECK(!neu->exited);
	CHECK_INT(neu->start_time, 2000);
	CHECK_INT(neu->generation, 2);
	CHECK_STR(neu->name, "new-vm");
	/* its migration is not judged at once: it waits for its own end */
	for (int ch = 0; ch <= 2; ch++) {
		ev(c, DST, ch, MFT_EV_SOCK_ACCEPT, 700 * MS + ch, 0);
		ev(c, DST, ch, MFT_EV_TLS_HANDSHAKE, 700 * MS + ch + 10, 0);
		if (ch)
			ev(c, DST, ch, MFT_EV_MULTIFD_CHANNEL, 700 * MS + ch + 20, 0);
	}
	mft_corr_tick(c, 2000 * MS);
	CHECK_INT(cap.n, 1);
	CHECK_INT(mft_corr_open_migrations(c), 1);
	state(c, DST, 2100 * MS, "active");
	for (int ch = 0; ch <= 2; ch++) {
		ev(c, DST, ch, MFT_EV_FIN_RCVD, 2200 * MS, 8);
		ev(c, DST, ch, MFT_EV_CLOSE, 2201 * MS, 0);
		ev(c, DST, ch, MFT_EV_DESTROY, 2202 * MS, 0);
	}
	state(c, DST, 2203 * MS, "completed");
	mft_corr_tick(c, 2300 * MS);
	CHECK_INT(cap.n, 2);
	CHECK_STR(cap.migs[1]->outcome, "completed");
	CHECK(cap.migs[1]->proc == neu);
	CHECK_STR(cap.migs[1]->proc->name, "new-vm");
	CHECK_INT(cap.chans[1][1].verdict.kind, MFT_V_UNREAD);
	mft_corr_free(c);
}

/* Without a registration (a recording): the process acting after its exit is a new one. */
static void reused_pid_seen_in_events(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	dst_small(c, DST, 10 * MS);
	proc_exit(c, DST, 60 * MS, 1 << 8);
	mft_corr_tick(c, 500 * MS);
	CHECK_INT(cap.n, 1);
	CHECK_STR(cap.migs[0]->outcome, "completed");
	/* a late softirq event of the old process (no thread) is not a new process */
	ev(c, DST, 0, MFT_EV_FIN_RCVD, 510 * MS, 8);
	CHECK(mft_corr_process(c, DST)->exited);
	dst_small(c, DST, 1000 * MS);
	CHECK(!mft_corr_process(c, DST)->exited);
	CHECK_INT(mft_corr_process(c, DST)->generation, 2);
	mft_corr_tick(c, 1100 * MS);
	CHECK_INT(cap.n, 2);
	CHECK_STR(cap.migs[1]->outcome, "completed"); /* not exited(1): that was the old process */
	CHECK(!cap.migs[1]->failed);
	mft_corr_free(c);
}

/* ---- the attach window ---- */

/* A socket opened before its process's probes were complete may have had its TLS
 * handshake unseen: it is incomplete, never plain. */
static void attach_window_is_incomplete_not_plain(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	mft_corr_set_process(c, DST, 1000, 50 * MS, "vm");
	for (int ch = 0; ch <= 2; ch++)
		ev(c, DST, ch, MFT_EV_SOCK_ACCEPT, (40 + ch) * MS, 0); /* before the probes were complete */
	ev(c, DST, 3, MFT_EV_SOCK_ACCEPT, 60 * MS, 0);                 /* after */
	for (int ch = 1; ch <= 3; ch++)
		ev(c, DST, ch, MFT_EV_MULTIFD_CHANNEL, 61 * MS, 0);
	for (int ch = 0; ch <= 3; ch++) {
		ev(c, DST, ch, MFT_EV_FIN_RCVD, 80 * MS, 8);
		ev(c, DST, ch, MFT_EV_READ_EOF, 81 * MS, 0);
		ev(c, DST, ch, MFT_EV_DESTROY, 82 * MS, 0);
	}
	state(c, DST, 83 * MS, "completed");
	mft_corr_tick(c, 300 * MS);
	CHECK_INT(cap.n, 1);
	CHECK_INT(cap.chans[0][1].verdict.kind, MFT_V_INCOMPLETE);
	CHECK_INT(cap.chans[0][2].verdict.kind, MFT_V_INCOMPLETE);
	CHECK_INT(cap.chans[0][3].verdict.kind, MFT_V_PLAIN); /* seen from its start: no handshake */
	mft_corr_free(c);
}

/* ---- migration evidence ---- */

/* The case: two overlapping VNC-over-TLS viewers of a QEMU that is not migrating
 * made a flagged "premature (pending)" migration. No evidence: no migration, no event line. */
static void overlapping_tls_viewers_are_no_migration(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	for (int ch = 0; ch <= 1; ch++) {
		ev(c, DST, ch, MFT_EV_SOCK_ACCEPT, ch * 300 * MS, 0);
		ev(c, DST, ch, MFT_EV_TLS_HANDSHAKE, ch * 300 * MS + MS, 0);
	}
	for (int ch = 0; ch <= 1; ch++) {
		ev(c, DST, ch, MFT_EV_FIN_RCVD, (700 + ch * 100) * MS, 8);
		ev(c, DST, ch, MFT_EV_READ_EOF, (700 + ch * 100) * MS + 1, 0);
		ev(c, DST, ch, MFT_EV_CLOSE, (700 + ch * 100) * MS + 2, 0);
		ev(c, DST, ch, MFT_EV_DESTROY, (700 + ch * 100) * MS + 3, 0);
	}
	mft_corr_tick(c, 5000 * MS);
	mft_corr_finish(c, 6000 * MS);
	CHECK_INT(cap.n, 0);
	CHECK_INT(cap.events, 0); /* their event lines were held back, then dropped */
	CHECK_INT(cap.others, 1);
	CHECK_INT(cap.other_conns, 2);
	CHECK_INT(cap.other_tls, 2);
	mft_corr_free(c);
}

/* NBD clients of a destination during its migration: the migration alone is reported,
 * its event lines held back only until its first multifd channel; the NBD group is other. */
static void nbd_beside_a_migration(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);
	struct mft_event e = { 0 };

	/* two NBD-over-TLS clients on port 10809, overlapping, before the migration */
	for (int i = 0; i < 2; i++) {
		memset(&e, 0, sizeof(e));
		e.ts_ns = (1 + i) * MS;
		e.type = MFT_EV_SOCK_ACCEPT;
		e.pid = DST;
		e.tid = DST;
		e.sk = 0x9000 + (uint64_t)i;
		e.role = MFT_ROLE_DEST;
		e.family = 2;
		e.laddr[0] = e.raddr[0] = 127;
		e.laddr[3] = e.raddr[3] = 1;
		e.lport = 10809;
		e.rport = (uint16_t)(40000 + i);
		mft_corr_feed(c, &e);
		e.type = MFT_EV_TLS_HANDSHAKE;
		e.snap.flags = MFT_SF_TLS;
		mft_corr_feed(c, &e);
	}
	CHECK_INT(cap.events, 0);
	dst_72(c, true, 10 * MS);
	CHECK_INT(cap.n, 1);
	CHECK_INT(cap.migs[0]->id, 1);
	CHECK_INT(cap.migs[0]->n_chans, 5);
	CHECK_STR(cap.migs[0]->endpoint, "127.0.0.1:4444");
	CHECK(cap.events > 20);
	for (int i = 0; i < 2; i++) {
		e.ts_ns = 500 * MS + (uint64_t)i;
		e.sk = 0x9000 + (uint64_t)i;
		e.rport = (uint16_t)(40000 + i);
		e.type = MFT_EV_DESTROY;
		e.tid = 0;
		mft_corr_feed(c, &e);
	}
	mft_corr_tick(c, 1000 * MS);
	CHECK_INT(cap.n, 1);
	mft_corr_finish(c, 2000 * MS);
	CHECK_INT(cap.n, 1);
	CHECK_INT(cap.others, 1);
	CHECK_INT(cap.other_conns, 2);
	mft_corr_free(c);
}

/* ---- every attempt its own migration ---- */

/* The case: a retry within the grace period merged with the cancelled attempt;
 * the retry's main channel counted as multifd, the outcome was whichever came last. */
static void cancel_then_retry_at_once(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	state(c, SRC, 1 * MS, "setup");
	for (int ch = 0; ch <= 2; ch++) {
		ev(c, SRC, ch, MFT_EV_SOCK_CONNECT, (2 + ch) * MS, 0);
		ev(c, SRC, ch, MFT_EV_TLS_HANDSHAKE, (2 + ch) * MS + 1, 0);
		if (ch)
			init_ev(c, SRC, ch, (2 + ch) * MS + 2, 0);
	}
	state(c, SRC, 10 * MS, "active");
	state(c, SRC, 20 * MS, "cancelling");
	for (int ch = 0; ch <= 2; ch++) {
		ev(c, SRC, ch, MFT_EV_SHUTDOWN, 21 * MS, 2);
		ev(c, SRC, ch, MFT_EV_CLOSE, 22 * MS, 0);
	}
	state(c, SRC, 23 * MS, "cancelled");
	/* the retry, at once: same endpoint, within the grace period; the cancelled
	 * attempt's sockets linger (not destroyed yet) */
	state(c, SRC, 24 * MS, "setup");
	for (int ch = 3; ch <= 5; ch++) {
		ev(c, SRC, ch, MFT_EV_SOCK_CONNECT, (22 + ch) * MS, 0);
		ev(c, SRC, ch, MFT_EV_TLS_HANDSHAKE, (22 + ch) * MS + 1, 0);
		if (ch > 3)
			init_ev(c, SRC, ch, (22 + ch) * MS + 2, 0);
	}
	state(c, SRC, 30 * MS, "active");
	for (int ch = 0; ch <= 2; ch++)
		ev(c, SRC, ch, MFT_EV_DESTROY, 31 * MS, 0);
	for (int ch = 4; ch <= 5; ch++) {
		ev(c, SRC, ch, MFT_EV_SHUTDOWN, 40 * MS, 2);
		ev(c, SRC, ch, MFT_EV_CLOSE, 41 * MS, 0);
		ev(c, SRC, ch, MFT_EV_DESTROY, 42 * MS, 0);
	}
	state(c, SRC, 43 * MS, "completed");
	ev(c, SRC, 3, MFT_EV_CLOSE, 44 * MS, 0);
	ev(c, SRC, 3, MFT_EV_DESTROY, 45 * MS, 0);
	mft_corr_tick(c, 500 * MS);
	CHECK_INT(cap.n, 2);
	const struct mft_migration *a = cap.migs[0]->t_first < cap.migs[1]->t_first ? cap.migs[0] : cap.migs[1];
	const struct mft_migration *b = a == cap.migs[0] ? cap.migs[1] : cap.migs[0];
	int bi = b == cap.migs[0] ? 0 : 1;

	CHECK_STR(a->outcome, "cancelled");
	CHECK(a->failed);
	CHECK_STR(b->outcome, "completed");
	CHECK(!b->failed);
	CHECK_INT(a->n_chans, 3);
	CHECK_INT(b->n_chans, 3);
	CHECK(a->attempt != b->attempt);
	CHECK_INT(b->verdict.n_multifd, 2);
	CHECK_INT(cap.chans[bi][0].kind, MFT_KIND_MAIN); /* the retry's main channel */
	CHECK_INT(cap.chans[bi][0].sk, sk_of(SRC, 3));
	mft_corr_free(c);
}

/* One state change seen by the uprobe and the USDT probe is one, not a new attempt. */
static void state_told_twice_is_one_attempt(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	state(c, SRC, 1 * MS, "setup");
	state(c, SRC, 1 * MS + 5, "setup");
	for (int ch = 0; ch <= 1; ch++) {
		ev(c, SRC, ch, MFT_EV_SOCK_CONNECT, (2 + ch) * MS, 0);
		if (ch)
			init_ev(c, SRC, ch, (2 + ch) * MS + 2, 0);
	}
	state(c, SRC, 5 * MS, "completed");
	state(c, SRC, 5 * MS + 5, "completed");
	for (int ch = 0; ch <= 1; ch++)
		ev(c, SRC, ch, MFT_EV_DESTROY, 6 * MS, 0);
	mft_corr_tick(c, 500 * MS);
	CHECK_INT(cap.n, 1);
	CHECK_STR(cap.migs[0]->outcome, "completed");
	CHECK_INT(mft_corr_process(c, SRC)->n_att, 1);
	mft_corr_free(c);
}

/* ---- one pairing rule ---- */

/* A dual-stack destination ([::], ::ffff:127.0.0.1) and its IPv4 source are one connection. */
static void dual_stack_ends_pair(void)
{
	struct capture cap;
	struct mft_correlator *c = mk(&cap, false);

	for (int ch = 0; ch <= 1; ch++) {
		struct mft_event e = { 0 };

		ev(c, SRC, ch, MFT_EV_SOCK_CONNECT, ch * MS, 0);
		ev(c, SRC, ch, MFT_EV_TLS_HANDSHAKE, ch * MS + 20, 0);
		e.ts_ns = ch * MS + 10;
		e.type = MFT_EV_SOCK_ACCEPT;
		e.pid = DST;
		e.tid = DST;
		e.sk = sk_of(DST, ch);
		e.role = MFT_ROLE_DEST;
		e.family = 10;
		e.laddr[10] = e.laddr[11] = e.raddr[10] = e.raddr[11] = 0xff;
		e.laddr[12] = e.raddr[12] = 127;
		e.laddr[15] = e.raddr[15] = 1;
		e.lport = PORT;
		e.rport = (uint16_t)(50000 + ch);
		mft_corr_feed(c, &e);
		e.type = MFT_EV_TLS_HANDSHAKE;
		e.snap.flags = MFT_SF_TLS;
		e.ts_ns += 10;
		mft_corr_feed(c, &e);
		if (ch) {
			e.type = MFT_EV_MULTIFD_CHANNEL;
			e.ts_ns += 10;
			mft_corr_feed(c, &e);
		}
	}
	state(c, SRC, 50 * MS, "completed");
	ev(c, SRC, 1, MFT_EV_SHUTDOWN, 60 * MS, 2);
	ev(c, DST, 1, MFT_EV_FIN_RCVD, 61 * MS, 8);
	ev(c, DST, 1, MFT_EV_READ_EOF, 62 * MS, 0);
	for (int ch = 0; ch <= 1; ch++) {
		ev(c, SRC, ch, MFT_EV_DESTROY, 63 * MS, 0);
		ev(c, DST, ch, MFT_EV_DESTROY, 64 * MS, 0);
	}
	state(c, DST, 65 * MS, "completed");
	mft_corr_tick(c, 500 * MS);
	CHECK_INT(cap.n, 2);
	int si = cap.migs[0]->role == MFT_ROLE_SOURCE ? 0 : 1;

	CHECK_STR(cap.migs[1 - si]->endpoint, "127.0.0.1:4444");   /* normalised */
	CHECK_INT(cap.chans[si][1].verdict.kind, MFT_V_PREMATURE); /* decided by its destination */
	CHECK(cap.migs[si]->verdict.flagged);
	mft_corr_free(c);
}

static void pairing_rule(void)
{
	uint8_t v4a[16] = { 127, 0, 0, 1 }, v4b[16] = { 127, 0, 0, 2 };
	uint8_t m4a[16] = { 0 }, m4b[16] = { 0 }, six[16] = { 0 }, any[16] = { 0 };
	uint8_t u1[16] = { 1 }, u2[16] = { 2 };
	int fam = 10;

	m4a[10] = m4a[11] = m4b[10] = m4b[11] = 0xff;
	m4a[12] = m4b[12] = 127;
	m4a[15] = 1;
	m4b[15] = 2;
	six[15] = 1;
	struct mft_end src = { 2, v4a, v4b, 50000, 4444, -1, NULL };
	struct mft_end dst = { 10, m4b, m4a, 4444, 50000, -1, NULL };

	CHECK(mft_same_connection(&src, &dst));
	CHECK(mft_same_connection(&dst, &src));
	dst.lport = 4445;
	CHECK(!mft_same_connection(&src, &dst));
	dst.lport = 4444;
	dst.raddr = m4b; /* 127.0.0.2 -> 127.0.0.2: not the mirror */
	CHECK(!mft_same_connection(&src, &dst));
	dst.raddr = m4a;
	src.chan_id = 1;
	dst.chan_id = 2;
	CHECK(!mft_same_connection(&src, &dst));
	dst.chan_id = -1;
	CHECK(mft_same_connection(&src, &dst));
	src.uuid = u1;
	dst.uuid = u2;
	CHECK(!mft_same_connection(&src, &dst));
	dst.uuid = u1;
	CHECK(mft_same_connection(&src, &dst));
	/* pure IPv6 stays IPv6 and pairs with IPv6 only */
	struct mft_end s6 = { 10, six, six, 50000, 4444, -1, NULL }, d6 = { 10, six, six, 4444, 50000, -1, NULL };
	struct mft_end d4 = { 2, v4a, v4a, 4444, 50000, -1, NULL };

	CHECK(mft_same_connection(&s6, &d6));
	CHECK(!mft_same_connection(&s6, &d4));
	/* normalisation: mapped pair, and a mapped peer with a local end not bound yet */
	uint8_t l[16], r[16];

	memcpy(l, m4a, 16);
	memcpy(r, m4b, 16);
	mft_addr_normalize(&fam, l, r);
	CHECK_INT(fam, 2);
	CHECK(!memcmp(l, v4a, 16) && !memcmp(r, v4b, 16));
	fam = 10;
	memcpy(l, any, 16);
	memcpy(r, m4b, 16);
	mft_addr_normalize(&fam, l, r);
	CHECK_INT(fam, 2);
	CHECK(!memcmp(r, v4b, 16));
	fam = 10;
	memcpy(l, six, 16);
	memcpy(r, m4b, 16);
	mft_addr_normalize(&fam, l, r);
	CHECK_INT(fam, 10); /* ::1 is not IPv4 */
	struct mft_end unbound = { 2, v4a, v4b, 0, 4444, -1, NULL };

	CHECK(!mft_same_connection(&unbound, &dst)); /* ports must be known */
}

static void event_names_and_addresses(void)
{
	char buf[64];
	uint8_t a4[16] = { 127, 0, 0, 1 };
	uint8_t a6[16] = { 0 };

	a6[15] = 1;
	CHECK_STR(mft_ev_name(MFT_EV_READ_EOF), "read-eof");
	CHECK_STR(mft_ev_name(999), "unknown");
	mft_fmt_addr(buf, sizeof(buf), 2, a4, 4444);
	CHECK_STR(buf, "127.0.0.1:4444");
	mft_fmt_addr(buf, sizeof(buf), 10, a6, 80);
	CHECK_STR(buf, "[::1]:80");
}

int main(void)
{
	RUN(destination_migration_judged_once);
	RUN(failed_destination_is_fatal);
	RUN(exit_status_is_the_outcome_without_states);
	RUN(main_channel_left_open_waits_for_grace);
	RUN(finish_judges_open_channels_incomplete);
	RUN(midlife_sockets_are_incomplete);
	RUN(midlife_source_inferred);
	RUN(source_borrows_destination_verdict);
	RUN(deadline_met_by_any_event);
	RUN(reused_socket_address_is_a_new_channel);
	RUN(closed_but_lingering_socket);
	RUN(reused_pid_is_a_new_process);
	RUN(reused_pid_seen_in_events);
	RUN(attach_window_is_incomplete_not_plain);
	RUN(overlapping_tls_viewers_are_no_migration);
	RUN(nbd_beside_a_migration);
	RUN(cancel_then_retry_at_once);
	RUN(state_told_twice_is_one_attempt);
	RUN(dual_stack_ends_pair);
	RUN(pairing_rule);
	RUN(event_names_and_addresses);
	UNIT_EXIT();
}
