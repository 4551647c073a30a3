// SPDX-License-Identifier: GPL-2.0
/*
 * mftrace kernel side: watch the TCP sockets of target QEMU processes and emit an
 * event at each boundary of a channel's life (connect/accept, TLS handshake, bye,
 * shutdown, FIN, RST, EOF read, close, destroy). Per-socket state lives here, keyed
 * by struct sock *; nothing is sent per packet. Policy (verdicts) lives in user space.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/usdt.bpf.h>
#include "mftrace.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MSG_PEEK 0x2
#define MSG_ERRQUEUE 0x2000
#define EAGAIN 11
#define EINTR 4
#define ERESTARTSYS 512
#define MAX_LATE_READ_EVENTS 4
#define TCP_EV_CLEANUP 1 /* MFT_EV_MULTIFD_CHANNEL ret: touched inside multifd teardown */

char LICENSE[] SEC("license") = "GPL";

struct mft_sock {
	struct mft_sock_snap snap;
	__u64 session;
	__u32 tgid;
	__u32 noted_tid; /* thread_sock[noted_tid] names this socket (note_thread), or 0 */
	__u8 role;
};

struct mft_call {
	__u64 session;
	__u64 sk;
	__u32 kind;
};

/*
 * The first filter of every hook that fires host-wide: slot tgid % MFT_TARGET_SLOTS holds
 * the one target that maps there, MFT_SLOT_SHARED if several do, 0 if none (user space
 * keeps it, collector.c, setting a slot after the targets map entry and clearing it
 * before; a target's exit clears it here). A non-target pays one load from here; a slot
 * that names the tgid answers alone; a shared one asks the targets map.
 */
volatile __u32 target_slot[MFT_TARGET_SLOTS];

/*
 * Beside each slot: whose sockets its target's threads must be remembered by, on recv
 * (MFT_TRACK_RECV: a destination's per-packet SYNC probes) and on send (MFT_TRACK_SEND: a
 * source's USDT packet probes); the union where targets share a slot. 0 for a source
 * without USDT: its sends then look nothing up.
 */
volatile __u8 slot_track[MFT_TARGET_SLOTS];

/*
 * Entries in the per-thread call maps (tls_calls, record_calls, newchan_calls, init_writes). While
 * there are none, which is nearly always, a recv or send has nothing to look up there.
 * Only ever too high (user space subtracts what its sweep deletes): that costs lookups,
 * never an event.
 */
volatile __s64 calls_open = 0;

struct mft_state_call {
	__u64 state_ptr;
	__s32 old_state;
	__s32 new_state;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MFT_MAX_TARGETS);
	__type(key, __u32); /* tgid */
	__type(value, struct mft_target);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MFT_MAX_SOCKS); /* not LRU: a full map is counted, never evicts a live channel */
	__type(key, __u64);                 /* struct sock * */
	__type(value, struct mft_sock);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MFT_MAX_SESSIONS);
	__type(key, __u64);   /* gnutls_session_t */
	__type(value, __u64); /* struct sock * */
} sessions SEC(".maps");

/* A hash map keyed by thread id (tid): what a thread is in the middle of. */
#define TID_MAP(name, value_type, entries)       \
	struct {                                 \
		__uint(type, BPF_MAP_TYPE_HASH); \
		__uint(max_entries, entries);    \
		__type(key, __u32);              \
		__type(value, value_type);       \
	} name SEC(".maps")

/* A gnutls_handshake()/gnutls_bye() in progress on a thread. */
TID_MAP(tls_calls, struct mft_call, MFT_MAX_THREADS);

/* --tls-records: a gnutls_record_recv() in progress on a thread. */
TID_MAP(record_calls, struct mft_call, MFT_MAX_THREADS);

/* multifd_recv_new_channel() in progress on a thread: the socket it read (0 before). */
TID_MAP(newchan_calls, __u64, 1024);

/* The socket each thread of a target last sent or received on (as slot_track says): what a
 * SYNC packet seen by a probe on the thread belongs to. Not LRU: a full map is counted, and
 * an entry goes when its thread exits. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MFT_MAX_THREADS);
	__type(key, __u32);
	__type(value, __u64);
} thread_sock SEC(".maps");

TID_MAP(state_calls, struct mft_state_call, 1024);

/* qio_channel_read_all() of a MultiFDInit_t in progress on a thread: its buffer */
TID_MAP(init_reads, __u64, 1024);

/* A source's send thread writing its MultiFDInit_t (qio_channel_write_all): its buffer,
 * until the first send on the thread says which socket it goes to */
TID_MAP(init_writes, __u64, 1024);

/* A packet header read in progress on a thread (qio_channel_readv_full_all_eof) */
struct hdr_read {
	__u64 base;
	__u64 len;
};

TID_MAP(hdr_reads, struct hdr_read, 1024);

/* multifd teardown in progress on a thread (its uprobe pair): the sockets it shuts down
 * or closes are the multifd channels, evidence of a migration found mid-life too */
TID_MAP(cleanup_calls, __u8, 1024);

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MFT_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		*c += 1;
}

/*
 * Socket flags are set from process context and from softirq (a FIN, on another CPU) at
 * once: atomically. Returns whether f was already set, so that "first time" tests and
 * the set are one step.
 */
static __always_inline bool flag_test_set(struct mft_sock *st, __u32 f)
{
	return __sync_fetch_and_or(&st->snap.flags, f) & f;
}

static __always_inline long call_put(void *map, __u32 tid, void *val)
{
	if (!bpf_map_update_elem(map, &tid, val, BPF_NOEXIST)) {
		__sync_fetch_and_add(&calls_open, 1);
		return 0;
	}
	return bpf_map_update_elem(map, &tid, val, BPF_EXIST);
}

static __always_inline void call_del(void *map, __u32 tid)
{
	if (!bpf_map_delete_elem(map, &tid))
		__sync_fetch_and_add(&calls_open, -1);
}

static __always_inline bool is_target(__u32 tgid)
{
	__u32 slot = target_slot[tgid & (MFT_TARGET_SLOTS - 1)];

	if (slot == tgid)
		return tgid != 0;
	if (slot != MFT_SLOT_SHARED)
		return false;
	return bpf_map_lookup_elem(&targets, &tgid) != NULL;
}

static __always_inline void fill_addrs(struct mft_event *e, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	e->family = family;
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		bpf_core_read(e->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->raddr, 4, &sk->__sk_common.skc_daddr);
	} else if (family == AF_INET6) {
		bpf_core_read(e->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/*
 * Reserve and fill one event; NULL (and counted) when the ring buffer is full. st may be
 * NULL; sk may be 0 for process-level events. The caller may add to it, then submits.
 */
static __always_inline struct mft_event *event_start(__u16 type, __u64 sk, struct mft_sock *st, __u32 tgid,
						     bool process_ctx, __s64 ret, __u64 arg)
{
	struct mft_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(MFT_CNT_RB_DROPPED);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->type = type;
	e->sk = sk;
	e->ret = ret;
	e->arg = arg;
	e->pid = st ? st->tgid : tgid;
	if (process_ctx) {
		e->tid = (__u32)bpf_get_current_pid_tgid();
		bpf_get_current_comm(e->str, sizeof(e->str));
	}
	if (st) {
		e->snap = st->snap;
		e->role = st->role;
	}
	if (sk)
		fill_addrs(e, (struct sock *)sk);
	return e;
}

static __always_inline void event_submit(struct mft_event *e)
{
	bpf_ringbuf_submit(e, 0);
	count(MFT_CNT_EVENTS);
}

/* Emit one event, as event_start() fills it. */
static __always_inline void emit(__u16 type, __u64 sk, struct mft_sock *st, __u32 tgid, bool process_ctx, __s64 ret,
				 __u64 arg)
{
	struct mft_event *e = event_start(type, sk, st, tgid, process_ctx, ret, arg);

	if (e)
		event_submit(e);
}

/* A MultiFDInit_t (its first 32 bytes in h): raw, for user space to decode (multifd_wire.c). */
static __always_inline void emit_init(__u64 sk, struct mft_sock *st, const __u8 *h)
{
	struct mft_event *e = event_start(MFT_EV_CHAN_INIT, sk, st, st->tgid, true, -1, 0);

	if (!e)
		return;
	__builtin_memcpy(&e->arg, h, 8);
	__builtin_memcpy(e->str, h + 8, MFT_STR_LEN);
	event_submit(e);
}

static __always_inline struct mft_sock *track(__u64 sk, __u32 tgid, __u8 role, __u32 flags)
{
	struct mft_sock *st = bpf_map_lookup_elem(&socks, &sk);
	struct mft_sock fresh = {};

	if (st) {
		/* seen before its accept()/connect() was: that call tells the role */
		if (role != MFT_ROLE_UNKNOWN) {
			st->role = role;
			__sync_fetch_and_and(&st->snap.flags, ~MFT_SF_MIDLIFE);
		}
		return st;
	}
	fresh.tgid = tgid;
	fresh.role = role;
	fresh.snap.flags = flags;
	bpf_map_update_elem(&socks, &sk, &fresh, BPF_NOEXIST);
	st = bpf_map_lookup_elem(&socks, &sk);
	if (!st)
		count(MFT_CNT_SOCK_MAP_FULL);
	return st;
}

static __always_inline bool is_tcp_sock(struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 proto = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);

	return (family == AF_INET || family == AF_INET6) && proto == IPPROTO_TCP;
}

/* The socket a target thread touches; tracked lazily if it predates tracing. */
static __always_inline struct mft_sock *sock_of_target(__u64 sk, __u32 tgid)
{
	struct mft_sock *st = bpf_map_lookup_elem(&socks, &sk);

	if (st || !sk)
		return st;
	if (!is_tcp_sock((struct sock *)sk))
		return NULL;
	st = track(sk, tgid, MFT_ROLE_UNKNOWN, MFT_SF_MIDLIFE);
	if (st)
		emit(MFT_EV_SOCK_FOUND, sk, st, tgid, true, 0, 0);
	return st;
}

/* fd -> struct sock * for the current task, or 0 if fd is not a socket. */
static __always_inline __u64 fd_to_sk(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;
	struct socket *sock;

	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	sock = BPF_CORE_READ(f, private_data);
	if (!sock || BPF_CORE_READ(sock, file) != f)
		return 0;
	return (__u64)BPF_CORE_READ(sock, sk);
}

/* A thread inside gnutls_handshake/bye or multifd_recv_new_channel touched sk. */
static __always_inline void note_calls(__u32 tid, __u64 sk, struct mft_sock *st, bool is_recv)
{
	struct mft_call *c;

	if (!calls_open)
		return;
	c = bpf_map_lookup_elem(&tls_calls, &tid);
	if (c) {
		c->sk = sk;
		if (c->session) {
			st->session = c->session;
			flag_test_set(st, MFT_SF_TLS);
			if (bpf_map_update_elem(&sessions, &c->session, &sk, BPF_ANY))
				count(MFT_CNT_SESSION_MAP_FULL);
		}
	}
	if (!is_recv)
		return;
	c = bpf_map_lookup_elem(&record_calls, &tid);
	if (c)
		c->sk = sk;
	__u64 *nc = bpf_map_lookup_elem(&newchan_calls, &tid);

	if (nc) {
		*nc = sk;
		if (!flag_test_set(st, MFT_SF_MULTIFD))
			emit(MFT_EV_MULTIFD_CHANNEL, sk, st, st->tgid, true, 0, 0);
	}
}

/* The socket no longer knows that thread tid's thread_sock entry names it. */
static __always_inline void unnote(__u64 sk, __u32 tid)
{
	struct mft_sock *st = bpf_map_lookup_elem(&socks, &sk);

	if (st && st->noted_tid == tid)
		st->noted_tid = 0;
}

/*
 * thread_sock[tid] = sk. A channel's thread reads (or writes) only its own socket, so after
 * the first time this is one load: st->noted_tid == tid holds only while the entry names
 * sk (a thread that moves to another socket takes the old one's mark away here, and its
 * exit takes it away in tp_sched_process_exit). Only this thread writes its entry.
 */
static __always_inline void note_thread(__u64 id, __u64 sk, struct mft_sock *st, __u8 dir)
{
	__u32 tid = (__u32)id;
	__u64 *cur;

	if (!(slot_track[(id >> 32) & (MFT_TARGET_SLOTS - 1)] & dir) || st->noted_tid == tid)
		return;
	cur = bpf_map_lookup_elem(&thread_sock, &tid);
	if (cur && *cur != sk)
		unnote(*cur, tid);
	if ((!cur || *cur != sk) && bpf_map_update_elem(&thread_sock, &tid, &sk, BPF_ANY)) {
		count(MFT_CNT_THREAD_MAP_FULL);
		return;
	}
	st->noted_tid = tid;
}

/* ---- socket data path: counters only, events at boundaries ---------------------- */

/*
 * Every socket hook comes in three forms, cheapest per hit first (probe_select.h): tp_btf,
 * raw_tp, and the classic perf tracepoint. One body each; each form filters first. The
 * first two take the tracepoint's own arguments: one macro makes both.
 */
#define BTF_AND_RAW_TP(tp, call, args...)               \
	SEC("tp_btf/" #tp) int BPF_PROG(btf_##tp, args) \
	{                                               \
		return call;                            \
	}                                               \
	SEC("raw_tp/" #tp) int BPF_PROG(raw_##tp, args) \
	{                                               \
		return call;                            \
	}

static __always_inline int on_recv(__u64 sk, int ret, int flags)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct mft_sock *st;

	if (!is_target(tgid) || (flags & (MSG_PEEK | MSG_ERRQUEUE)))
		return 0;
	st = sock_of_target(sk, tgid); /* only TCP sockets are tracked */
	if (!st)
		return 0;
	note_calls(tid, sk, st, true);
	note_thread(id, sk, st, MFT_TRACK_RECV);

	if (ret > 0) {
		st->snap.rx_calls++;
		st->snap.rx_bytes += ret;
		st->snap.prev_rx_len = st->snap.last_rx_len;
		st->snap.last_rx_len = ret;
		st->snap.last_rx_ns = bpf_ktime_get_ns();
		st->snap.last_rx_tid = tid;
		if (st->snap.rx_calls == 1)
			emit(MFT_EV_FIRST_READ, sk, st, tgid, true, ret, 0);
		if (st->snap.flags & (MFT_SF_FIN_RCVD | MFT_SF_LOCAL_SHUT)) {
			st->snap.late_reads++;
			if (st->snap.late_reads <= MAX_LATE_READ_EVENTS)
				emit(MFT_EV_READ_LATE, sk, st, tgid, true, ret, 0);
		}
	} else if (ret == 0) {
		bpf_map_delete_elem(&hdr_reads, &tid); /* that header read fails: nothing to look at */
		if (!flag_test_set(st, MFT_SF_EOF_READ))
			emit(MFT_EV_READ_EOF, sk, st, tgid, true, 0, 0);
	} else if (ret != -EAGAIN && ret != -EINTR && ret != -ERESTARTSYS) {
		bpf_map_delete_elem(&hdr_reads, &tid);
		if (!flag_test_set(st, MFT_SF_READ_ERR))
			emit(MFT_EV_READ_ERR, sk, st, tgid, true, ret, 0);
	}
	return 0;
}

BTF_AND_RAW_TP(sock_recv_length, on_recv((__u64)sk, ret, flags), struct sock *sk, int ret, int flags)

SEC("tracepoint/sock/sock_recv_length")
int tp_sock_recv_length(struct trace_event_raw_sock_msg_length *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	return on_recv((__u64)ctx->sk, ctx->ret, ctx->flags);
}

/* A MultiFDInit_t written on this thread (up_qio_channel_write_all) goes to this socket. */
static __always_inline void note_init_write(__u32 tid, __u64 sk, struct mft_sock *st)
{
	__u64 *buf;
	__u8 h[32] = {};

	if (!calls_open)
		return;
	buf = bpf_map_lookup_elem(&init_writes, &tid);
	if (!buf)
		return;
	if (!bpf_probe_read_user(h, sizeof(h), (void *)*buf)) {
		flag_test_set(st, MFT_SF_MULTIFD);
		emit_init(sk, st, h);
	}
	call_del(&init_writes, tid);
}

static __always_inline int on_send(__u64 sk, int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct mft_sock *st;

	if (!is_target(tgid))
		return 0;
	st = sock_of_target(sk, tgid);
	if (!st)
		return 0;
	note_calls((__u32)id, sk, st, false);
	note_thread(id, sk, st, MFT_TRACK_SEND);
	note_init_write((__u32)id, sk, st);
	if (ret > 0)
		st->snap.tx_bytes += ret;
	return 0;
}

BTF_AND_RAW_TP(sock_send_length, on_send((__u64)sk, ret), struct sock *sk, int ret, int flags)

SEC("tracepoint/sock/sock_send_length")
int tp_sock_send_length(struct trace_event_raw_sock_msg_length *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	return on_send((__u64)ctx->sk, ctx->ret);
}

/* ---- TCP state: connect, FIN in/out ------------------------------------------------ */

/*
 * The peer's FIN reaching a socket in FIN_WAIT2 hands it to a time-wait mini socket: the
 * full socket goes FIN_WAIT2 -> CLOSE. A socket closed in FIN_WAIT2 (or whose FIN_WAIT2
 * times out) makes the same move with no FIN. tcp_fin() sets SOCK_DONE before that move;
 * nothing else on the way to it does.
 */
static __always_inline bool fin_done(__u64 sk)
{
	unsigned long flags = BPF_CORE_READ((struct sock *)sk, __sk_common.skc_flags);

	return flags & (1ul << SOCK_DONE);
}

static __always_inline int on_set_state(__u64 sk, int os, int ns)
{
	bool established = os == TCP_SYN_SENT && ns == TCP_ESTABLISHED;
	bool fin_rcvd = ns == TCP_CLOSE_WAIT || ns == TCP_CLOSING || ns == TCP_TIME_WAIT;
	bool fin_wait2_closed = os == TCP_FIN_WAIT2 && ns == TCP_CLOSE; /* a FIN only if fin_done() */
	bool fin_sent = ns == TCP_FIN_WAIT1 || ns == TCP_LAST_ACK;
	struct mft_sock *st;

	if (ns == TCP_SYN_SENT) {
		/* connect() runs in the caller's context */
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;

		if (!is_target(tgid) || !is_tcp_sock((struct sock *)sk))
			return 0;
		st = track(sk, tgid, MFT_ROLE_SOURCE, 0);
		if (st)
			emit(MFT_EV_SOCK_CONNECT, sk, st, tgid, true, 0, 0);
		return 0;
	}
	/* Every TCP socket on the host passes here, in softirq too: a transition that makes
	 * no event below (a server's SYN_RECV -> ESTABLISHED, FIN_WAIT1 -> FIN_WAIT2,
	 * LAST_ACK -> CLOSE, LISTEN, ...) returns before the lookup. */
	if (!established && !fin_rcvd && !fin_wait2_closed && !fin_sent)
		return 0;
	st = bpf_map_lookup_elem(&socks, &sk);
	if (!st)
		return 0;
	if (established)
		emit(MFT_EV_ESTABLISHED, sk, st, 0, false, 0, 0);
	else if ((fin_rcvd || (fin_wait2_closed && fin_done(sk))) && !flag_test_set(st, MFT_SF_FIN_RCVD))
		emit(MFT_EV_FIN_RCVD, sk, st, 0, false, ns, os);
	if (fin_sent && !flag_test_set(st, MFT_SF_FIN_SENT))
		emit(MFT_EV_FIN_SENT, sk, st, 0, false, ns, os);
	return 0;
}

BTF_AND_RAW_TP(inet_sock_set_state, on_set_state((__u64)sk, os, ns), const struct sock *sk, int os, int ns)

SEC("tracepoint/sock/inet_sock_set_state")
int tp_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	return on_set_state((__u64)ctx->skaddr, ctx->oldstate, ctx->newstate);
}

/* A tracked socket's RST in or out (type), or its destruction (MFT_EV_DESTROY). */
static __always_inline int on_sock_event(__u64 sk, __u16 type)
{
	struct mft_sock *st;

	if (!sk)
		return 0;
	st = bpf_map_lookup_elem(&socks, &sk);
	if (!st)
		return 0;
	emit(type, sk, st, 0, false, 0, 0);
	if (type != MFT_EV_DESTROY)
		return 0;
	if (st->session)
		bpf_map_delete_elem(&sessions, &st->session);
	bpf_map_delete_elem(&socks, &sk);
	return 0;
}

BTF_AND_RAW_TP(tcp_receive_reset, on_sock_event((__u64)sk, MFT_EV_RST_RCVD), struct sock *sk)

SEC("tracepoint/tcp/tcp_receive_reset")
int tp_tcp_receive_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
	return on_sock_event((__u64)ctx->skaddr, MFT_EV_RST_RCVD);
}

BTF_AND_RAW_TP(tcp_send_reset, on_sock_event((__u64)sk, MFT_EV_RST_SENT), const struct sock *sk)

SEC("tracepoint/tcp/tcp_send_reset")
int tp_tcp_send_reset(struct trace_event_raw_tcp_send_reset *ctx)
{
	return on_sock_event((__u64)ctx->skaddr, MFT_EV_RST_SENT);
}

BTF_AND_RAW_TP(tcp_destroy_sock, on_sock_event((__u64)sk, MFT_EV_DESTROY), struct sock *sk)

SEC("tracepoint/tcp/tcp_destroy_sock")
int tp_tcp_destroy_sock(struct trace_event_raw_tcp_event_sk *ctx)
{
	return on_sock_event((__u64)ctx->skaddr, MFT_EV_DESTROY);
}

/* ---- accept: the destination side of a channel -------------------------------------- */

static __always_inline int on_accept_exit(long ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 sk;
	struct mft_sock *st;

	if (ret < 0 || !is_target(tgid))
		return 0;
	sk = fd_to_sk((int)ret);
	if (!sk || !is_tcp_sock((struct sock *)sk))
		return 0;
	st = track(sk, tgid, MFT_ROLE_DEST, 0);
	if (st)
		emit(MFT_EV_SOCK_ACCEPT, sk, st, tgid, true, 0, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tp_sys_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tp_sys_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx->ret);
}

/* ---- shutdown and close: three mechanisms, one body ---------------------------------- */


static __always_inline void in_cleanup(__u64 sk, struct mft_sock *st)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (bpf_map_lookup_elem(&cleanup_calls, &tid) && !flag_test_set(st, MFT_SF_MULTIFD))
		emit(MFT_EV_MULTIFD_CHANNEL, sk, st, st->tgid, true, TCP_EV_CLEANUP, 0);
}

static __always_inline int on_shutdown(__u64 sk, int how)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct mft_sock *st;

	if (!sk || !is_target(tgid))
		return 0;
	st = sock_of_target(sk, tgid);
	if (!st)
		return 0;
	flag_test_set(st, MFT_SF_LOCAL_SHUT);
	emit(MFT_EV_SHUTDOWN, sk, st, tgid, true, how, 0);
	in_cleanup(sk, st);
	return 0;
}

static __always_inline int on_close(__u64 sk)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct mft_sock *st;

	if (!sk || !is_target(tgid))
		return 0;
	st = bpf_map_lookup_elem(&socks, &sk);
	if (!st || flag_test_set(st, MFT_SF_CLOSED))
		return 0;
	emit(MFT_EV_CLOSE, sk, st, tgid, true, 0, 0);
	in_cleanup(sk, st);
	return 0;
}

SEC("fentry/inet_shutdown")
int BPF_PROG(fentry_inet_shutdown, struct socket *sock, int how)
{
	return on_shutdown((__u64)BPF_CORE_READ(sock, sk), how);
}

SEC("kprobe/inet_shutdown")
int BPF_KPROBE(kprobe_inet_shutdown, struct socket *sock, int how)
{
	return on_shutdown((__u64)BPF_CORE_READ(sock, sk), how);
}

SEC("tracepoint/syscalls/sys_enter_shutdown")
int tp_sys_enter_shutdown(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!is_target(tgid))
		return 0;
	return on_shutdown(fd_to_sk((int)ctx->args[0]), (int)ctx->args[1]);
}

SEC("fentry/tcp_close")
int BPF_PROG(fentry_tcp_close, struct sock *sk, long timeout)
{
	return on_close((__u64)sk);
}

SEC("kprobe/tcp_close")
int BPF_KPROBE(kprobe_tcp_close, struct sock *sk, long timeout)
{
	return on_close((__u64)sk);
}

SEC("tracepoint/syscalls/sys_enter_close")
int tp_sys_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!is_target(tgid))
		return 0;
	return on_close(fd_to_sk((int)ctx->args[0]));
}

/* ---- process exit ---------------------------------------------------------------------- */

/*
 * Every thread's exit forgets what its thread id keyed (a thread that died inside a
 * probed call leaves its entry behind, and a later thread of that id would inherit it).
 * The last thread's exit is the process's: it leaves the targets map at once, so that a
 * new process given the same pid is not traced until it is a target of its own.
 */
SEC("tracepoint/sched/sched_process_exit")
int tp_sched_process_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct task_struct *task;

	/* Only a target's threads key these maps (what a removed target's threads left
	 * behind, mft_collector_sweep() clears). */
	if (!is_target(tgid))
		return 0;
	call_del(&tls_calls, tid);
	call_del(&record_calls, tid);
	call_del(&newchan_calls, tid);
	__u64 *sk = bpf_map_lookup_elem(&thread_sock, &tid);

	if (sk) {
		unnote(*sk, tid);
		bpf_map_delete_elem(&thread_sock, &tid);
	}
	bpf_map_delete_elem(&state_calls, &tid);
	bpf_map_delete_elem(&init_reads, &tid);
	call_del(&init_writes, tid);
	bpf_map_delete_elem(&hdr_reads, &tid);
	bpf_map_delete_elem(&cleanup_calls, &tid);
	task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0; /* not the last thread */
	emit(MFT_EV_PROC_EXIT, 0, NULL, tgid, true, BPF_CORE_READ(task, exit_code), 0);
	if (target_slot[tgid & (MFT_TARGET_SLOTS - 1)] == tgid)
		target_slot[tgid & (MFT_TARGET_SLOTS - 1)] = 0;
	bpf_map_delete_elem(&targets, &tgid);
	return 0;
}

/* ---- GnuTLS: rare calls only (handshake, bye, deinit) ----------------------------------- */

static __always_inline int call_enter(void *map, __u64 session, __u32 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct mft_call c = { .session = session, .kind = kind };

	if (!is_target(id >> 32))
		return 0;
	count(MFT_CNT_UPROBE_HITS);
	if (call_put(map, tid, &c))
		count(MFT_CNT_CALL_MAP_FULL);
	return 0;
}

/* Returns the call record (copied) and forgets it; sk resolved via sessions if needed. */
static __always_inline bool call_exit(void *map, struct mft_call *out)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct mft_call *c = bpf_map_lookup_elem(map, &tid);

	if (!c)
		return false;
	*out = *c;
	call_del(map, tid);
	if (!out->sk && out->session) {
		__u64 *sk = bpf_map_lookup_elem(&sessions, &out->session);

		if (sk)
			out->sk = *sk;
	}
	return true;
}

static __always_inline void emit_tls(__u16 type, struct mft_call *c, __s64 ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct mft_sock *st = c->sk ? bpf_map_lookup_elem(&socks, &c->sk) : NULL;

	emit(type, st ? c->sk : 0, st, tgid, true, ret, c->session);
}

static __always_inline int BPF_KPROBE(up_gnutls_handshake, void *session)
{
	return call_enter(&tls_calls, (__u64)session, MFT_CALL_HANDSHAKE);
}

static __always_inline int BPF_KRETPROBE(ur_gnutls_handshake, int ret)
{
	struct mft_call c;

	if (!call_exit(&tls_calls, &c))
		return 0;
	if (ret == 0)
		emit_tls(MFT_EV_TLS_HANDSHAKE, &c, ret);
	return 0;
}

static __always_inline int BPF_KPROBE(up_gnutls_bye, void *session)
{
	return call_enter(&tls_calls, (__u64)session, MFT_CALL_BYE);
}

static __always_inline int BPF_KRETPROBE(ur_gnutls_bye, int ret)
{
	struct mft_call c;

	if (call_exit(&tls_calls, &c))
		emit_tls(MFT_EV_TLS_BYE, &c, ret);
	return 0;
}

static __always_inline int BPF_KPROBE(up_gnutls_deinit, void *session)
{
	__u64 s = (__u64)session;
	struct mft_call c = { .session = s };

	if (!is_target(bpf_get_current_pid_tgid() >> 32))
		return 0;
	count(MFT_CNT_UPROBE_HITS);
	__u64 *sk = bpf_map_lookup_elem(&sessions, &s);

	if (!sk)
		return 0;
	c.sk = *sk;
	emit_tls(MFT_EV_TLS_DEINIT, &c, 0);
	bpf_map_delete_elem(&sessions, &s);
	return 0;
}

/* --tls-records only: one uprobe pair per record (~10 us each on these machines). */
static __always_inline int BPF_KPROBE(up_gnutls_record_recv, void *session)
{
	return call_enter(&record_calls, (__u64)session, MFT_CALL_RECORD);
}


static __always_inline int BPF_KRETPROBE(ur_gnutls_record_recv, long ret)
{
	struct mft_call c;
	struct mft_sock *st;

	if (!call_exit(&record_calls, &c) || !c.sk)
		return 0;
	st = bpf_map_lookup_elem(&socks, &c.sk);
	if (!st)
		return 0;
	st->snap.tls_records++;
	/* -28 GNUTLS_E_AGAIN and -52 GNUTLS_E_INTERRUPTED are not an end */
	if (ret <= 0 && ret != -28 && ret != -52)
		emit_tls(MFT_EV_TLS_RECV_END, &c, ret);
	return 0;
}

/* ---- QEMU's own exported functions: rare landmarks ------------------------------------- */

static __always_inline int BPF_KPROBE(up_multifd_recv_new_channel)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 none = 0;

	if (is_target(id >> 32))
		call_put(&newchan_calls, tid, &none);
	return 0;
}

/* A process-level landmark of a target (ret: the attach cookie, MFT_SIDE_*); true if emitted. */
static __always_inline bool emit_landmark(__u16 type, __u64 cookie)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!is_target(tgid))
		return false;
	emit(type, 0, NULL, tgid, true, (__s64)cookie, 0);
	return true;
}

/* multifd teardown entered; the attach cookie says which side (MFT_SIDE_*) */
static __always_inline int BPF_KPROBE(up_multifd_cleanup)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u8 one = 1;

	if (emit_landmark(MFT_EV_MULTIFD_CLEANUP, bpf_get_attach_cookie(ctx) & MFT_UPROBE_SIDE_MASK))
		bpf_map_update_elem(&cleanup_calls, &tid, &one, BPF_ANY);
	return 0;
}

static __always_inline int BPF_KRETPROBE(ur_multifd_cleanup)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&cleanup_calls, &tid);
	return 0;
}

/*
 * qio_channel_write_all(ioc, buf, buflen, errp) of 64 bytes starting with the multifd
 * magic and version: a source's send thread sending its channel's MultiFDInit_t, its first
 * act, through TLS or not. The next send on the thread names the socket (tp_sock_send_length).
 * One uprobe hit per packet header sent; no uretprobe.
 */
static __always_inline int BPF_KPROBE(up_qio_channel_write_all, void *ioc, void *buf, __u64 len)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u32 h[2] = {};
	__u64 b = (__u64)buf;

	if (len != MFT_MULTIFD_INIT_LEN || !is_target(id >> 32) || bpf_probe_read_user(h, sizeof(h), buf))
		return 0;
	if (bpf_ntohl(h[0]) != MFT_MULTIFD_MAGIC || bpf_ntohl(h[1]) != MFT_MULTIFD_VERSION)
		return 0;
	if (call_put(&init_writes, tid, &b))
		count(MFT_CNT_CALL_MAP_FULL);
	return 0;
}

/*
 * qio_channel_read_all(ioc, buf, buflen, errp) inside multifd_recv_new_channel() reads the
 * channel's 64-byte MultiFDInit_t, through TLS or not: its id and the migration UUID, in
 * default mode, for one uprobe hit per channel (nocomp multifd reads nothing else this way).
 * Entry only: the buffer is read when multifd_recv_new_channel() returns (the read is
 * inlined there, its buffer in that frame in every QEMU built so far; multifd_wire.c
 * checks magic and version). No uretprobe on qio_channel_read_all: NBD and other
 * coroutines yield inside it, and a uretprobe there kills QEMU (the kernel loses the
 * return address across the coroutine's stack switch: SIGILL).
 */
static __always_inline int BPF_KPROBE(up_qio_channel_read_all, void *ioc, void *buf, __u64 len)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 b = (__u64)buf;

	if (len == MFT_MULTIFD_INIT_LEN && bpf_map_lookup_elem(&newchan_calls, &tid))
		bpf_map_update_elem(&init_reads, &tid, &b, BPF_ANY);
	return 0;
}

/*
 * multifd_recv_new_channel() ran in the main loop, never in a coroutine: safe for a
 * uretprobe. Its MultiFDInit_t, if it read one, is in the buffer; QEMU may have turned
 * magic and version to host order in place: they go out in wire order, as read.
 */
static __always_inline void new_channel_done(__u32 tid)
{
	__u64 *buf = bpf_map_lookup_elem(&init_reads, &tid), *sk;
	struct mft_sock *st;
	__u8 h[32] = {};

	if (!buf)
		return;
	sk = bpf_map_lookup_elem(&newchan_calls, &tid);
	st = sk && *sk ? bpf_map_lookup_elem(&socks, sk) : NULL;
	if (st && !bpf_probe_read_user(h, sizeof(h), (void *)*buf)) {
		__u32 *w = (__u32 *)h;

		if (w[0] == MFT_MULTIFD_MAGIC) {
			w[0] = bpf_htonl(w[0]);
			w[1] = bpf_htonl(w[1]);
		}
		emit_init(*sk, st, h);
	}
	bpf_map_delete_elem(&init_reads, &tid);
}

static __always_inline int BPF_KRETPROBE(ur_multifd_recv_new_channel)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	new_channel_done(tid);
	call_del(&newchan_calls, tid);
	return 0;
}

/*
 * qio_channel_readv_full_all_eof(ioc, iov, niov, ...): how a multifd recv thread reads
 * each packet header, through TLS or not: the 12-byte MultiFDPacketHdr_t (10.0+), or the
 * whole 320 + 8 * pages_alloc bytes (7.2-9.x, pages_alloc agreeing). Entry only (NBD
 * coroutines yield inside it: no uretprobe, see above): the header read is looked at when
 * it is surely complete, at the thread's next header-shaped read, or at its
 * qemu_sem_post(), which a recv thread calls right after a SYNC packet; a recv that hits
 * EOF or fails forgets it. One uprobe hit per 512 KiB packet; only SYNC packets become
 * events, on the thread's socket. Not attached where USDT gives the same.
 */
static __always_inline bool header_shaped(__u64 len)
{
	return len == MFT_MULTIFD_HDR_LEN ||
	       (len >= MFT_MULTIFD_PACKET_LEN && len <= MFT_MULTIFD_PACKET_LEN + 8 * 65536 &&
		(len - MFT_MULTIFD_PACKET_LEN) % 8 == 0);
}

static __always_inline bool either_order(__u32 v, __u32 want)
{
	return v == want || bpf_ntohl(v) == want;
}

/* The header read of this thread, complete now: a SYNC packet becomes an event. */
static __always_inline void header_done(__u64 id)
{
	__u32 tid = (__u32)id;
	struct hdr_read *r = bpf_map_lookup_elem(&hdr_reads, &tid);
	__u8 h[32] = {};
	__u64 *sk, num = 0;
	struct mft_sock *st;

	if (!r)
		return;
	/* Read no more than QEMU did: 12 bytes, or 32 of at least 320. */
	if (r->len == MFT_MULTIFD_HDR_LEN ? bpf_probe_read_user(h, MFT_MULTIFD_HDR_LEN, (void *)r->base)
					  : bpf_probe_read_user(h, 32, (void *)r->base))
		goto out;
	/* By now QEMU may have turned fields to host order in place (7.2 does magic, version
	 * and pages_alloc, not flags): each is taken in either order. The flags in use fit in
	 * the low byte, so only one order can show the SYNC bit. */
	if (!either_order(*(__u32 *)&h[0], MFT_MULTIFD_MAGIC) || !either_order(*(__u32 *)&h[4], MFT_MULTIFD_VERSION) ||
	    !((bpf_ntohl(*(__u32 *)&h[8]) | *(__u32 *)&h[8]) & MFT_MULTIFD_FLAG_SYNC))
		goto out;
	if (r->len != MFT_MULTIFD_HDR_LEN) {
		if (!either_order(*(__u32 *)&h[12], (__u32)((r->len - MFT_MULTIFD_PACKET_LEN) / 8)))
			goto out; /* a page that merely starts like a header */
		num = bpf_be64_to_cpu(*(__u64 *)&h[24]);
	}
	sk = bpf_map_lookup_elem(&thread_sock, &tid);
	st = sk ? bpf_map_lookup_elem(&socks, sk) : NULL;
	if (st)
		emit(MFT_EV_CHAN_SYNC, *sk, st, id >> 32, true, -1, num);
out:
	bpf_map_delete_elem(&hdr_reads, &tid);
}

static __always_inline int BPF_KPROBE(up_qio_channel_readv_full_all_eof, void *ioc, const struct iovec *iov, __u64 niov)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct hdr_read r = {};

	if (!is_target(id >> 32))
		return 0;
	header_done(id); /* a new read: the previous one completed */
	if (niov != 1 || bpf_probe_read_user(&r, sizeof(r), iov) || !header_shaped(r.len))
		return 0;
	bpf_map_update_elem(&hdr_reads, &tid, &r, BPF_ANY);
	return 0;
}

/* qemu_sem_post(): a recv thread posts right after a SYNC packet (and its pages) */
static __always_inline int BPF_KPROBE(up_qemu_sem_post)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;

	if (bpf_map_lookup_elem(&hdr_reads, &tid))
		header_done(id);
	return 0;
}

/* multifd_send_sync_main / multifd_recv_sync_main: a sync point (cookie: MFT_SIDE_*) */
static __always_inline int BPF_KPROBE(up_multifd_sync_main)
{
	emit_landmark(MFT_EV_SYNC_MAIN, bpf_get_attach_cookie(ctx) & MFT_UPROBE_SIDE_MASK);
	return 0;
}

/* ---- USDT (QEMU built with the dtrace backend) ------------------------------------------ */

/*
 * Per-packet events: multifd_send_fill / multifd_recv_unfill (9.2+), multifd_send /
 * multifd_recv (7.2-9.1). Their argument lists differ by version: the cookie holds the
 * index of the flags argument. Only SYNC packets become events.
 */
SEC("usdt")
int usdt_multifd_packet(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	long chan = 0, num = 0, flags = 0;
	__u64 *sk;
	struct mft_sock *st;

	if (!is_target(tgid))
		return 0;
	if (bpf_usdt_arg(ctx, bpf_usdt_cookie(ctx), &flags) || !(flags & MFT_MULTIFD_FLAG_SYNC))
		return 0;
	bpf_usdt_arg(ctx, 0, &chan);
	bpf_usdt_arg(ctx, 1, &num);
	sk = bpf_map_lookup_elem(&thread_sock, &tid);
	st = sk ? bpf_map_lookup_elem(&socks, sk) : NULL;
	if (st)
		emit(MFT_EV_CHAN_SYNC, *sk, st, tgid, true, chan & 0xff, num);
	return 0;
}

/* multifd_{send,recv}_terminate_threads([bool error]): cookie = side | MFT_USDT_HAS_ERROR_ARG */
SEC("usdt")
int usdt_multifd_terminate(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	long cookie = bpf_usdt_cookie(ctx), error = -1;

	if (!is_target(tgid))
		return 0;
	if (cookie & MFT_USDT_HAS_ERROR_ARG)
		bpf_usdt_arg(ctx, 0, &error);
	emit(MFT_EV_TERMINATE, 0, NULL, tgid, true, cookie & MFT_USDT_SIDE_MASK, error & 0xff);
	return 0;
}

/* multifd_{send,recv}_thread_end(uint8_t id, ...): on the channel's own thread */
SEC("usdt")
int usdt_multifd_thread_end(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 *sk;
	struct mft_sock *st;
	long chan = 0;

	if (!is_target(id >> 32))
		return 0;
	bpf_usdt_arg(ctx, 0, &chan);
	sk = bpf_map_lookup_elem(&thread_sock, &tid);
	st = sk ? bpf_map_lookup_elem(&socks, sk) : NULL;
	if (st)
		emit(MFT_EV_THREAD_END, *sk, st, id >> 32, true, chan & 0xff, bpf_usdt_cookie(ctx));
	return 0;
}

/* multifd_recv_new_channel(uint8_t id): fires after the init packet was read. */
SEC("usdt")
int usdt_multifd_recv_new_channel(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	__u64 *sk = bpf_map_lookup_elem(&newchan_calls, &tid);
	struct mft_sock *st;
	long chan = 0;

	if (!sk || !*sk || !is_target(tgid))
		return 0;
	st = bpf_map_lookup_elem(&socks, sk);
	if (!st)
		return 0;
	bpf_usdt_arg(ctx, 0, &chan);
	emit(MFT_EV_CHAN_INIT, *sk, st, tgid, true, chan & 0xff, 0);
	return 0;
}

/* A migration state change; name points to the state's name in the target's memory. */
static __always_inline void emit_state(__u64 id, __u64 machine, __s64 new_state, __u64 old_state, __u64 name)
{
	/* not process_ctx: str holds the state's name, not the thread's */
	struct mft_event *e = event_start(MFT_EV_MIG_STATE, 0, NULL, id >> 32, false, new_state, old_state);

	if (!e)
		return;
	e->tid = (__u32)id;
	e->sk = machine; /* identifies which state machine (outgoing or incoming), 0 if unknown */
	if (name)
		bpf_probe_read_user_str(e->str, sizeof(e->str), (void *)name);
	event_submit(e);
}

/*
 * migrate_set_state(const char *new_state): fires only on a real transition. Where the
 * compiler inlined migrate_set_state() into its callers, the uprobe below misses those
 * calls; this probe does not. arg = -1: no state machine address.
 */
SEC("usdt")
int usdt_migrate_set_state(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	long name = 0;

	if (!is_target(id >> 32) || bpf_usdt_arg(ctx, 0, &name) || !name)
		return 0;
	emit_state(id, 0, -1, (__u64)-1, (__u64)name);
	return 0;
}

/* void migrate_set_state(MigrationStatus *state, MigrationStatus old, MigrationStatus new) */
static __always_inline int BPF_KPROBE(up_migrate_set_state, void *state, int old_state, int new_state)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct mft_state_call c = { .state_ptr = (__u64)state, .old_state = old_state, .new_state = new_state };

	if (is_target(id >> 32))
		bpf_map_update_elem(&state_calls, &tid, &c, BPF_ANY);
	return 0;
}

static __always_inline int BPF_KRETPROBE(ur_migrate_set_state)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	struct mft_state_call *c = bpf_map_lookup_elem(&state_calls, &tid);
	struct mft_target *t = bpf_map_lookup_elem(&targets, &tgid);
	__u64 array = 0, name = 0;
	int cur = -1;

	if (!c || !t)
		return 0;
	/* The transition happens only if the cmpxchg inside succeeded. */
	bpf_probe_read_user(&cur, sizeof(cur), (void *)c->state_ptr);
	if (cur == c->new_state) {
		/* QEnumLookup { const char *const *array; ... }: the name is array[new_state] */
		if (t->status_lookup && c->new_state >= 0 && c->new_state < 32) {
			bpf_probe_read_user(&array, sizeof(array), (void *)t->status_lookup);
			if (array)
				bpf_probe_read_user(&name, sizeof(name), (void *)(array + 8 * c->new_state));
		}
		emit_state(id, c->state_ptr, c->new_state, c->old_state, name);
	}
	bpf_map_delete_elem(&state_calls, &tid);
	return 0;
}

/* ---- the two uprobe programs: every entry probe, every return probe -------------------- */

/*
 * One entry and one return program serve every uprobe (the cookie says which probe), so
 * that with uprobe_multi a binary needs two links, whose detaching costs one RCU grace
 * period each; without it, the same programs are attached once per probe.
 */
static __always_inline int dispatch(struct pt_regs *ctx, bool ret)
{
	switch (bpf_get_attach_cookie(ctx) >> MFT_UPROBE_SHIFT) {
	case MFT_UP_GNUTLS_HANDSHAKE: return ret ? ur_gnutls_handshake(ctx) : up_gnutls_handshake(ctx);
	case MFT_UP_GNUTLS_BYE: return ret ? ur_gnutls_bye(ctx) : up_gnutls_bye(ctx);
	case MFT_UP_GNUTLS_DEINIT: return ret ? 0 : up_gnutls_deinit(ctx);
	case MFT_UP_GNUTLS_RECORD_RECV: return ret ? ur_gnutls_record_recv(ctx) : up_gnutls_record_recv(ctx);
	case MFT_UP_MIGRATE_SET_STATE: return ret ? ur_migrate_set_state(ctx) : up_migrate_set_state(ctx);
	case MFT_UP_MULTIFD_RECV_NEW_CHANNEL:
		return ret ? ur_multifd_recv_new_channel(ctx) : up_multifd_recv_new_channel(ctx);
	case MFT_UP_QIO_CHANNEL_READ_ALL: return ret ? 0 : up_qio_channel_read_all(ctx);
	case MFT_UP_MULTIFD_CLEANUP: return ret ? ur_multifd_cleanup(ctx) : up_multifd_cleanup(ctx);
	case MFT_UP_QIO_CHANNEL_WRITE_ALL: return ret ? 0 : up_qio_channel_write_all(ctx);
	case MFT_UP_MULTIFD_SYNC_MAIN: return ret ? 0 : up_multifd_sync_main(ctx);
	case MFT_UP_QIO_CHANNEL_READV_FULL_ALL_EOF: return ret ? 0 : up_qio_channel_readv_full_all_eof(ctx);
	case MFT_UP_QEMU_SEM_POST: return ret ? 0 : up_qemu_sem_post(ctx);
	}
	return 0;
}

SEC("uprobe")
int up_dispatch(struct pt_regs *ctx)
{
	return dispatch(ctx, false);
}

SEC("uretprobe")
int ur_dispatch(struct pt_regs *ctx)
{
	return dispatch(ctx, true);
}
