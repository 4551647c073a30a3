/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What /proc says about a target process: is it QEMU, its identity (pid and start time),
 * its binary and its libgnutls as they are mapped, its VM name and versions. Everything
 * here is controlled by the target and treated as hostile: read as bounded data, never
 * executed or loaded; files are reached through the process's own mappings
 * (/proc/PID/exe, /proc/PID/map_files/), so a binary or library replaced or deleted on
 * disk is still the one read, and a path swapped for a FIFO is never opened.
 */
#ifndef MFT_PROCINFO_H
#define MFT_PROCINFO_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "collect/qemu_args.h"

struct mft_procinfo {
	uint32_t pid;
	uint64_t start_time; /* /proc/PID/stat starttime (clock ticks since boot): pid + this = a process */
	uint32_t uid;        /* real uid of the process */
	char comm[32];
	char exe[PATH_MAX];        /* as the process sees it (may end in " (deleted)") */
	char exe_open[64];         /* a path we can open from here: /proc/PID/exe */
	char name[64];             /* VM name (-name guest=X), else comm; as the target wrote it */
	bool incoming;             /* started with -incoming */
	struct mft_qemu_args args; /* -uuid, machine type, -incoming transport, TLS objects, -global */
	char gnutls[PATH_MAX];     /* libgnutls as mapped, as the process sees it; "" if none */
	char gnutls_open[96];      /* /proc/PID/map_files/START-END: the mapped file itself */
	bool gnutls_replaced;      /* the mapped libgnutls was deleted or replaced on disk */
	/* filled by mft_procinfo_versions(), read from the files' data */
	char qemu_version[128];
	char gnutls_version[32];
};

/* Fill pi for pid. On failure returns -1 with a one-line reason in err. */
int mft_procinfo_read(uint32_t pid, struct mft_procinfo *pi, char *err, size_t errlen);
/* Is this process a QEMU? By its binary's data: QEMU's migration symbols, or a qemu-system
 * or qemu-kvm name together with QEMU's version banner. */
bool mft_procinfo_is_qemu(const struct mft_procinfo *pi);
/* Read the QEMU and GnuTLS versions from the mapped files' data. */
void mft_procinfo_versions(struct mft_procinfo *pi);
/* Runtime address in pid of a symbol of its main binary, or 0. */
uint64_t mft_proc_symbol_addr(const struct mft_procinfo *pi, const char *sym);
/* The start time of pid (see start_time), or 0 if it is gone. */
uint64_t mft_proc_start_time(uint32_t pid);
/*
 * Every pid whose binary looks like QEMU (doctor, exporter, record). skip(ctx, pid) is
 * asked first, from the pid alone, so that known targets cost one readdir entry.
 * Returns how many were found, or -1.
 */
int mft_find_qemu_pids(uint32_t *pids, int max, bool (*skip)(void *ctx, uint32_t pid), void *ctx);

/* One line of /proc/PID/maps. */
struct mft_map {
	uint64_t start, end, offset, inode;
	unsigned dev_major, dev_minor;
	const char *path; /* into the line; "" for an anonymous mapping */
};
/* Parse (and NUL-terminate the path of) one maps line in place. 0 on success. */
int mft_maps_parse(char *line, struct mft_map *m);
/* The starttime field of a /proc/PID/stat text (n bytes), or 0 if malformed. */
uint64_t mft_stat_starttime(const char *buf, size_t n);
/* From a NUL-separated command line of n bytes: the VM name (-name guest=X or -name X)
 * into name ("" if none) and whether -incoming is there. */
void mft_cmdline_parse(const char *cmd, size_t n, char *name, size_t namelen, bool *incoming);

#endif
