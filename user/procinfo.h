/* SPDX-License-Identifier: GPL-2.0 */
/* What /proc says about a target process: is it QEMU, where are its binary and GnuTLS. */
#ifndef MFT_PROCINFO_H
#define MFT_PROCINFO_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct mft_procinfo {
	uint32_t pid;
	char comm[32];
	char exe[PATH_MAX];        /* as the process sees it */
	char exe_open[64];         /* a path we can open from here: /proc/PID/exe */
	char name[64];             /* VM name (-name guest=X), else comm */
	bool incoming;             /* started with -incoming */
	char gnutls[PATH_MAX];     /* libgnutls as mapped, as the process sees it; "" if none */
	char gnutls_open[PATH_MAX + 32]; /* /proc/PID/root/<gnutls> */
};

/* Fill pi for pid. On failure returns -1 with a one-line reason in err. */
int mft_procinfo_read(uint32_t pid, struct mft_procinfo *pi, char *err, size_t errlen);
/* Is this process a QEMU? (by binary name, or by QEMU's migration symbols) */
bool mft_procinfo_is_qemu(const struct mft_procinfo *pi);
/* Runtime address in pid of a symbol of its main binary, or 0. */
uint64_t mft_proc_symbol_addr(const struct mft_procinfo *pi, const char *sym);
/* "10.0.2 (Debian 1:10.0.2+ds-2...)" from the binary's --version text, or "" */
void mft_qemu_version(const char *path, char *buf, size_t len);
/* GnuTLS's own version string (gnutls_check_version) of the library at path, or "" */
void mft_gnutls_version(const char *path, char *buf, size_t len);
/* All pids whose binary looks like QEMU (for doctor and exporter use). n found, or -1. */
int mft_find_qemu_pids(uint32_t *pids, int max);

#endif
