/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the BPF side (bpf/mftrace.bpf.c) and user space share: the event record
 * that crosses the ring buffer, the per-target configuration, and the counters.
 * Fixed-width types only; kernel and user pointers travel as __u64.
 */
#ifndef MFTRACE_H
#define MFTRACE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define MFT_STR_LEN 24

/*
 * Capacities: the BPF maps and user space's tables are sized by these, for a host with a
 * few hundred QEMUs (200 VMs, each migrating with up to 16 channels, plus other sockets).
 * Every one is counted and shown: doctor, the exporter's mftrace_resource_* metrics, and
 * the summary a session prints when it ends (docs/mftrace.8, LIMITS).
 */
#define MFT_MAX_TARGETS 1024        /* QEMU processes traced at once (targets map) */
#define MFT_TARGET_SLOTS 4096       /* the first, cheapest target filter (target_slot, a power of 2) */
#define MFT_SLOT_SHARED 0xffffffffu /* a target_slot that more than one target maps to */
#define MFT_MAX_SOCKS 32768         /* TCP sockets of targets tracked at once (socks map) */
#define MFT_MAX_SESSIONS 32768      /* TLS sessions of targets (sessions map) */
#define MFT_MAX_THREADS 16384       /* target threads inside a probed call, or bound to a channel */

/* slot_track bits: remember the socket a target's thread last received on / sent on */
#define MFT_TRACK_RECV 1
#define MFT_TRACK_SEND 2

/* One event per boundary in a channel's life. Never one per packet. */
enum mft_ev_type {
	MFT_EV_SOCK_CONNECT = 1, /* target connect()ed a TCP socket: it is the source of the stream */
	MFT_EV_SOCK_ACCEPT,      /* target accept()ed a TCP socket: it is the destination */
	MFT_EV_SOCK_FOUND,       /* socket first seen mid-life (existed before tracing started) */
	MFT_EV_ESTABLISHED,      /* a connect()ed socket reached ESTABLISHED (addresses now known) */
	MFT_EV_FIRST_READ,       /* first recv that returned data */
	MFT_EV_TLS_HANDSHAKE,    /* gnutls_handshake() returned 0 on this socket; arg = session */
	MFT_EV_TLS_BYE,          /* gnutls_bye() returned; ret = its result; arg = session */
	MFT_EV_TLS_DEINIT,       /* gnutls_deinit() of the socket's session */
	MFT_EV_TLS_RECV_END,     /* --tls-records: gnutls_record_recv() returned <= 0 (ret) */
	MFT_EV_SHUTDOWN,         /* the target called shutdown(); ret = how */
	MFT_EV_CLOSE,            /* the target closed its last reference to the socket */
	MFT_EV_FIN_SENT,         /* our FIN left: ESTABLISHED->FIN_WAIT1 or CLOSE_WAIT->LAST_ACK */
	MFT_EV_FIN_RCVD,         /* the peer's FIN arrived: ->CLOSE_WAIT, ->CLOSING, ->TIME_WAIT, or
				  * FIN_WAIT2->CLOSE with SOCK_DONE set (not a close in FIN_WAIT2) */
	MFT_EV_RST_RCVD,         /* tcp_receive_reset */
	MFT_EV_RST_SENT,         /* tcp_send_reset */
	MFT_EV_READ_EOF,         /* recv returned 0 */
	MFT_EV_READ_ERR,         /* recv returned an error other than EAGAIN/EINTR; ret = -errno */
	MFT_EV_READ_LATE,        /* recv returned data after a FIN or shutdown (first few only) */
	MFT_EV_DESTROY,          /* tcp_destroy_sock: the socket is gone; carries final counters */
	MFT_EV_MULTIFD_CHANNEL,  /* a multifd channel: read inside multifd_recv_new_channel() (ret 0),
				  * or shut down or closed inside multifd teardown (ret 1) */
	MFT_EV_MIG_STATE,        /* migrate_set_state(); old/new in ret/arg, name in str */
	MFT_EV_MULTIFD_CLEANUP,  /* multifd teardown entered (save/load cleanup, send/recv shutdown); ret = side */
	MFT_EV_PROC_EXIT,        /* the target's last thread exited; ret = wait status */
	MFT_EV_SYNC_MAIN,        /* multifd_{send,recv}_sync_main(): a sync point of the migration; ret = side */
	MFT_EV_CHAN_SYNC,        /* a SYNC packet on this channel; ret = channel id or -1, arg = packet number */
	MFT_EV_CHAN_INIT,        /* the MultiFDInit_t read (destination) or sent (source): its raw bytes
				  * 0-7 in arg, 8-31 in str (user/correlate/multifd_wire.h);
				  * or, from USDT, arg = 0 and the channel id in ret */
	MFT_EV_TERMINATE,        /* USDT multifd_{send,recv}_terminate_threads: ret = side, arg = its error flag
				  * (1: a channel thread hit an error), or -1 where the probe has no argument */
	MFT_EV_THREAD_END,       /* USDT multifd_{send,recv}_thread_end on this channel's thread: ret = channel id */
	MFT_EV__MAX,
};

/* Per-socket flags kept in the kernel (struct mft_sock.flags) and copied to events. */
#define MFT_SF_FIN_RCVD (1u << 0)
#define MFT_SF_LOCAL_SHUT (1u << 1)
#define MFT_SF_EOF_READ (1u << 2)
#define MFT_SF_TLS (1u << 3)
#define MFT_SF_MIDLIFE (1u << 4) /* found after it was created */
#define MFT_SF_MULTIFD (1u << 5)
#define MFT_SF_CLOSED (1u << 6)
#define MFT_SF_READ_ERR (1u << 7) /* a recv failed: reported once */
#define MFT_SF_FIN_SENT (1u << 8)

/* Why a uprobe on this thread is open: mft_tls_call.kind */
#define MFT_CALL_HANDSHAKE 1
#define MFT_CALL_BYE 2
#define MFT_CALL_RECORD 3

/* Roles */
#define MFT_ROLE_UNKNOWN 0
#define MFT_ROLE_SOURCE 1 /* connect()ed: sends the stream */
#define MFT_ROLE_DEST 2   /* accept()ed: receives the stream */

/* Which side of multifd a QEMU function belongs to (MULTIFD_CLEANUP, SYNC_MAIN: ret) */
#define MFT_SIDE_SEND 1
#define MFT_SIDE_RECV 2

/*
 * The attach cookie of every uprobe: which probe (enum mft_uprobe, from bit 8) and,
 * for the multifd ones, the side (MFT_SIDE_*, low byte). All uprobes of a target run one
 * entry and one return program (up_dispatch, ur_dispatch), so that a binary needs one
 * uprobe_multi link for each: detaching a link costs an RCU grace period.
 */
#define MFT_UPROBE_SHIFT 8
#define MFT_UPROBE_SIDE_MASK 0xff
enum mft_uprobe {
	MFT_UP_NONE = 0,
	MFT_UP_GNUTLS_HANDSHAKE,
	MFT_UP_GNUTLS_BYE,
	MFT_UP_GNUTLS_DEINIT,
	MFT_UP_GNUTLS_RECORD_RECV,
	MFT_UP_MIGRATE_SET_STATE,
	MFT_UP_MULTIFD_RECV_NEW_CHANNEL,
	MFT_UP_QIO_CHANNEL_READ_ALL,
	MFT_UP_MULTIFD_CLEANUP,
	MFT_UP_QIO_CHANNEL_WRITE_ALL,
	MFT_UP_MULTIFD_SYNC_MAIN,
	MFT_UP_QIO_CHANNEL_READV_FULL_ALL_EOF,
	MFT_UP_QEMU_SEM_POST,
};

/* USDT attach cookie of multifd_{send,recv}_terminate_threads: MFT_SIDE_* in the low
 * byte, and this bit where the probe carries its (bool error) argument (up to QEMU 8.2) */
#define MFT_USDT_HAS_ERROR_ARG 0x100
#define MFT_USDT_SIDE_MASK 0xff

/* The multifd wire format (docs/qemu-behaviour.md §7), as far as the BPF side peeks at it */
#define MFT_MULTIFD_MAGIC 0x11223344u
#define MFT_MULTIFD_VERSION 1u
#define MFT_MULTIFD_FLAG_SYNC 0x1u
#define MFT_MULTIFD_INIT_LEN 64    /* MultiFDInit_t */
#define MFT_MULTIFD_HDR_LEN 12     /* MultiFDPacketHdr_t, the first read of a 10.0+ receiver */
#define MFT_MULTIFD_PACKET_LEN 320 /* MultiFDPacket_t without its offset[] array */

/* Read-side snapshot the kernel keeps per socket; sent with every event. */
struct mft_sock_snap {
	__u64 rx_bytes;
	__u64 tx_bytes;
	__u64 rx_calls;
	__u64 last_rx_ns;  /* last recv that returned data */
	__s32 last_rx_len; /* its length */
	__s32 prev_rx_len; /* the one before (a TLS record header read is 5 bytes) */
	__u32 last_rx_tid;
	__u32 late_reads;  /* reads that returned data after FIN/shutdown */
	__u32 tls_records; /* --tls-records: gnutls_record_recv calls seen */
	__u32 flags;       /* MFT_SF_* */
};

struct mft_event {
	__u64 ts_ns;  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 sk;     /* struct sock *, the channel's identity */
	__u64 arg;    /* type-specific: TLS session, old state, ... */
	__s64 ret;    /* type-specific: return value, how, new state, exit status */
	__u32 pid;    /* tgid of the target */
	__u32 tid;    /* thread that did it (0 in softirq context) */
	__u16 type;   /* enum mft_ev_type */
	__u16 family; /* AF_INET / AF_INET6 */
	__u16 lport;  /* host order */
	__u16 rport;  /* host order */
	__u8 laddr[16];
	__u8 raddr[16];
	__u8 role; /* MFT_ROLE_* as the kernel knows it */
	__u8 pad[7];
	struct mft_sock_snap snap;
	char str[MFT_STR_LEN]; /* migration state name, or the thread's comm */
};

/* targets map value: one per traced QEMU process */
struct mft_target {
	__u64 status_lookup; /* runtime address of QEMU's MigrationStatus_lookup, or 0 */
};

/* Counters the BPF side keeps (per-CPU array, index = enum mft_counter). */
enum mft_counter {
	MFT_CNT_RB_DROPPED = 0,   /* ring buffer reservation failed: event lost */
	MFT_CNT_SOCK_MAP_FULL,    /* a socket could not be tracked: socks map full */
	MFT_CNT_EVENTS,           /* events submitted */
	MFT_CNT_UPROBE_HITS,      /* GnuTLS/QEMU uprobe entries in a target (doctor proves they fire) */
	MFT_CNT_SESSION_MAP_FULL, /* a TLS session could not be tied to its socket: sessions map full */
	MFT_CNT_CALL_MAP_FULL,    /* a GnuTLS call could not be followed: tls_calls/record_calls full */
	MFT_CNT_THREAD_MAP_FULL,  /* a thread's socket could not be remembered: thread_sock full */
	MFT_CNT__MAX,
};

#endif /* MFTRACE_H */
