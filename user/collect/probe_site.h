/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where in a function a uprobe costs least (pure C over code bytes; capstone decodes).
 *
 * A uprobe traps on the instruction it replaces, and then either emulates it (relative
 * jumps and calls on x86) or single-steps a copy of it out of line, which is a second
 * trap. On the machines this project runs on the single step is most of a hit's cost:
 * a probe on gnutls_record_recv()'s first instruction (`sub $8,%rsp`) costs a 512 MiB
 * migration about a quarter of its time, one on its tail jump into GnuTLS's record layer
 * costs nothing measurable (README, Cost).
 *
 * mft_tail_jump_site() finds, in a thin wrapper such as gnutls_record_recv(), the one
 * relative jump that leaves the function with the stack as it was at entry (so the word
 * at %rsp is still the caller's return address, and a return probe placed there sees the
 * function's result) and with %rdi never written (so the first argument is still the
 * one the function was called with). It follows every path from the entry, bounded;
 * anything it cannot follow (an indirect jump, a write to %rsp other than push, pop, or
 * add/sub of a constant, two paths that meet with different stacks) means no site, and
 * the caller probes the entry as before. The code comes from a file the traced process
 * controls: it is data here, decoded (by capstone, loaded on first use; without it there
 * is no site) and never run; fuzz/fuzz_probe_site.c fuzzes this.
 */
#ifndef MFT_PROBE_SITE_H
#define MFT_PROBE_SITE_H

#include <stddef.h>
#include <stdint.h>

/* Longer functions are not searched (gnutls_record_recv is 158 bytes in GnuTLS 3.7). */
#define MFT_PROBE_SITE_MAX_CODE 4096

struct mft_probe_site {
	uint64_t off;     /* the jump's offset from the function's start */
	unsigned returns; /* paths that return without passing the jump (not seen there) */
	char why[96];     /* why there is no site, when there is none */
};

/* 0 and *out filled when code (the function's bytes, x86-64) has exactly one such jump;
 * -1 with out->why otherwise. */
int mft_tail_jump_site(const uint8_t *code, size_t len, struct mft_probe_site *out);

#endif
