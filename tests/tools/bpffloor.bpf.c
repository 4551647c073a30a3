// SPDX-License-Identifier: GPL-2.0
/*
 * Reference programs for make bench (tests/tools/bpffloor.c loads one pair): what
 * kernel.bpf_stats_enabled reports for a tp_btf program on the socket tracepoints that
 * does nothing, one clock read, or one hash lookup that misses. mftrace's own programs on
 * the same hooks are measured beside them, so that their figures read against this
 * machine's floor.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

volatile __u64 sink;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} keys SEC(".maps");

SEC("tp_btf/sock_recv_length")
int BPF_PROG(empty_recv, struct sock *sk, int ret, int flags)
{
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(empty_send, struct sock *sk, int ret, int flags)
{
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(clock_recv, struct sock *sk, int ret, int flags)
{
	sink = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(clock_send, struct sock *sk, int ret, int flags)
{
	sink = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int lookup(struct sock *sk)
{
	__u64 k = (__u64)sk;

	if (bpf_map_lookup_elem(&keys, &k))
		sink++;
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(lookup_recv, struct sock *sk, int ret, int flags)
{
	return lookup(sk);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(lookup_send, struct sock *sk, int ret, int flags)
{
	return lookup(sk);
}
