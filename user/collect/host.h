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
/* 0 if the running kernel has BTF (CO-RE needs it). */
int mft_check_btf(char *why, size_t len);
/* Make sure tracefs is mounted (mounting it if needed). 0 on success. */
int mft_ensure_tracefs(bool *mounted_now, char *why, size_t len);
/* Fill r for kernel function func (fentry, kprobe) and tracepoint "cat/name". */
void mft_probe_kernel_func(const char *func, const char *tracepoint, struct mft_probe_results *r);

#endif
