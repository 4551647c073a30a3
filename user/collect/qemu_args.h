/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a QEMU's command line says about its migrations, read as hostile data (the
 * target wrote it): -uuid, the machine type, the -incoming transport, TLS credentials
 * objects, and -global migration.multifd-clean-tls-termination. And, from those and the
 * QEMU version, the value of multifd-clean-tls-termination on a destination, without
 * asking QEMU's monitor. Pure C: the unit tests and the /proc fuzzer drive it.
 */
#ifndef MFT_QEMU_ARGS_H
#define MFT_QEMU_ARGS_H

#include <stdbool.h>
#include <stddef.h>

struct mft_qemu_args {
	char uuid[40];     /* -uuid, as given (checked: 8-4-4-4-12 hex), else "" */
	char machine[64];  /* -machine TYPE, -machine type=TYPE,..., -M TYPE; else "" */
	char incoming[16]; /* the -incoming transport: tcp, unix, fd, exec, rdma, file, defer,
			     * channel (a JSON channel list), other; "" without -incoming */
	bool tls_creds;    /* an -object tls-creds-* (x509, psk, anon) */
	int clean_tls;     /* -global migration.multifd-clean-tls-termination: 1 on, 0 off, -1 not set */
};

/* From a NUL-separated command line of n bytes (not necessarily NUL-terminated). */
void mft_qemu_args_parse(const char *cmd, size_t n, struct mft_qemu_args *a);

/*
 * multifd-clean-tls-termination as this QEMU would apply it as a destination: "on",
 * "off" or "unknown", and one line saying how it was told into why (may be NULL):
 *  - set with -global: that value;
 *  - QEMU < 10.0: "off" (the property does not exist: EOF without close_notify is accepted);
 *  - QEMU >= 10.0: "off" for a versioned machine type of 9.2 or older (its compat
 *    properties turn it off), "on" for a newer one, for the aliases pc and q35, and
 *    when no machine is given (x86's default is the newest pc);
 *  - "unknown" when the version or the machine type cannot be told.
 */
const char *mft_clean_tls_termination(const struct mft_qemu_args *a, const char *qemu_version, char *why,
				      size_t whylen);

/* "10.0.2 (Debian ...)" -> 10, 0. -1 when it does not start with MAJOR.MINOR. */
int mft_qemu_version_parse(const char *v, int *major, int *minor);

#endif
