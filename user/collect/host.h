/* SPDX-License-Identifier: GPL-2.0 */
/* What this host allows: privileges, BTF, tracefs, and which probe mechanisms work. */
#ifndef MFT_HOST_H
#define MFT_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include "collect/probe_select.h"

#define MFT_TRACEFS "/sys/kernel/tracing"

/* 0 if we may load BPF and attach probes; else -1 with a one-line reason. */
int mft_check_privileges(char *why, size_t len);
/*
 * A minimal BTF built into the binary for one kernel release (make btf, then make
 * static: the Makefile generates the table; a binary without one has none).
 */
struct mft_btf_blob {
	const char *release; /* uname -r of the kernel it was generated from */
	const unsigned char *data;
	size_t size;
};

/*
 * The BTF that CO-RE relocations read kernel types from: file (--btf) if given; else the
 * running kernel's /sys/kernel/btf/vmlinux; else a minimal BTF built into this binary for
 * the running kernel's release. 0 with *path the file to hand libbpf (NULL: the kernel's
 * own) and what describing it (what may be NULL); else -1 with a one-line reason.
 */
int mft_btf_resolve(const char *file, const char **path, char *what, size_t wlen, char *why, size_t len);
/* 0 if there is a BTF to load with (mft_btf_resolve() without its answers). */
int mft_check_btf(const char *file, char *why, size_t len);
/* Make sure tracefs is mounted (mounting it if needed). 0 on success. */
int mft_ensure_tracefs(bool *mounted_now, char *why, size_t len);
/* Fill r for kernel function func (fentry, kprobe) and tracepoint "cat/name". */
void mft_probe_kernel_func(const char *func, const char *tracepoint, struct mft_probe_results *r);
/* Fill r for tracepoint "cat/name": tp_btf and raw_tp (a test program really attached), perf tracepoint. */
void mft_probe_tracepoint(const char *tp, struct mft_tp_results *r);
/* BPF_TRACE_UPROBE_MULTI (kernel 6.6+), which older UAPI headers lack */
#define MFT_BPF_TRACE_UPROBE_MULTI 48
/* Whether the kernel has uprobe_multi links (a test program loaded, a link tried). */
void mft_probe_uprobe_multi(struct mft_avail *a);

#endif
