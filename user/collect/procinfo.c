// SPDX-License-Identifier: GPL-2.0
/* /proc/PID of a target, read as hostile data (see procinfo.h). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "collect/elfsym.h"
#include "collect/procinfo.h"

/* A /proc file into buf (NUL-terminated); the length, or -1. */
static int read_proc(uint32_t pid, const char *what, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%u/%s", pid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

void mft_cmdline_parse(const char *cmd, size_t n, char *name, size_t namelen, bool *incoming)
{
	name[0] = '\0';
	*incoming = false;
	for (size_t i = 0; i < n;) {
		const char *arg = cmd + i;
		size_t al = strnlen(arg, n - i);

		if ((al == 9 && !memcmp(arg, "-incoming", 9)) || (al == 10 && !memcmp(arg, "--incoming", 10)))
			*incoming = true;
		i += al + 1;
		if (!((al == 5 && !memcmp(arg, "-name", 5)) || (al == 6 && !memcmp(arg, "--name", 6))) || i >= n)
			continue;
		/* -name guest=NAME,debug-threads=on, or -name NAME */
		const char *v = cmd + i;
		size_t vl = strnlen(v, n - i);
		const char *g = memmem(v, vl, "guest=", 6);

		if (g) {
			vl -= (size_t)(g + 6 - v);
			v = g + 6;
		}
		const char *comma = memchr(v, ',', vl);

		vl = comma ? (size_t)(comma - v) : vl;
		snprintf(name, namelen, "%.*s", (int)(vl < namelen ? vl : namelen - 1), v);
	}
}

uint64_t mft_stat_starttime(const char *buf, size_t n)
{
	/* "pid (comm) S ppid ...": comm may hold spaces and ')'; the fields follow the last ')' */
	const char *p = NULL;

	for (size_t i = 0; i < n; i++)
		if (buf[i] == ')')
			p = buf + i;
	if (!p)
		return 0;
	const char *end = buf + n;
	int field = 2; /* the ')' closes field 2 */

	for (p++; p < end && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field != 22 || p >= end || !isdigit((unsigned char)*p))
		return 0;
	uint64_t v = 0;

	for (; p < end && isdigit((unsigned char)*p) && v < UINT64_MAX / 10; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	return v;
}

uint64_t mft_proc_start_time(uint32_t pid)
{
	char buf[1024];
	int n = read_proc(pid, "stat", buf, sizeof(buf));

	return n > 0 ? mft_stat_starttime(buf, (size_t)n) : 0;
}

int mft_maps_parse(char *line, struct mft_map *m)
{
	int pos = -1;

	memset(m, 0, sizeof(*m));
	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*4s %" SCNx64 " %x:%x %" SCNu64 " %n", &m->start, &m->end,
		   &m->offset, &m->dev_major, &m->dev_minor, &m->inode, &pos) != 6 ||
	    pos < 0 || m->end < m->start)
		return -1;
	char *p = line + pos;

	p[strcspn(p, "\n")] = '\0';
	m->path = p;
	return 0;
}

/* The libgnutls the process maps: its name, and the mapped file itself in map_files/. */
static void find_gnutls(struct mft_procinfo *pi)
{
	char path[64], line[PATH_MAX + 256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%u/maps", pi->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		struct mft_map m;

		if (mft_maps_parse(line, &m) || m.path[0] != '/' || !m.inode)
			continue;
		const char *base = strrchr(m.path, '/') + 1;
		struct stat st;

		if (strncmp(base, "libgnutls.so", 12))
			continue;
		snprintf(pi->gnutls, sizeof(pi->gnutls), "%s", m.path);
		snprintf(pi->gnutls_open, sizeof(pi->gnutls_open), "/proc/%u/map_files/%" PRIx64 "-%" PRIx64, pi->pid,
			 m.start, m.end);
		/* replaced on disk: the name now leads elsewhere (or nowhere), the mapping does not */
		char named[PATH_MAX + 32];

		snprintf(named, sizeof(named), "/proc/%u/root%s", pi->pid, m.path);
		pi->gnutls_replaced = strstr(m.path, " (deleted)") != NULL || lstat(named, &st) ||
				      st.st_ino != m.inode || major(st.st_dev) != m.dev_major ||
				      minor(st.st_dev) != m.dev_minor;
		break;
	}
	fclose(f);
}

int mft_procinfo_read(uint32_t pid, struct mft_procinfo *pi, char *err, size_t errlen)
{
	char path[64], cmd[8192], status[4096];
	ssize_t n;
	int len;

	memset(pi, 0, sizeof(*pi));
	pi->pid = pid;
	if (read_proc(pid, "comm", pi->comm, sizeof(pi->comm)) < 0) {
		snprintf(err, errlen, "no such process: pid %u", pid);
		return -1;
	}
	pi->comm[strcspn(pi->comm, "\n")] = '\0';
	pi->start_time = mft_proc_start_time(pid);
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	n = readlink(path, pi->exe, sizeof(pi->exe) - 1);
	if (n < 0) {
		snprintf(err, errlen, "cannot read /proc/%u/exe: %s%s", pid, strerror(errno),
			 errno == ENOENT ? " (a kernel thread or a zombie?)" : "");
		return -1;
	}
	pi->exe[n] = '\0';
	snprintf(pi->exe_open, sizeof(pi->exe_open), "/proc/%u/exe", pid);
	len = read_proc(pid, "status", status, sizeof(status));
	const char *u = len > 0 ? strstr(status, "\nUid:") : NULL;

	pi->uid = u ? (uint32_t)strtoul(u + 5, NULL, 10) : UINT32_MAX;
	len = read_proc(pid, "cmdline", cmd, sizeof(cmd));
	if (len > 0) {
		mft_cmdline_parse(cmd, (size_t)len, pi->name, sizeof(pi->name), &pi->incoming);
		mft_qemu_args_parse(cmd, (size_t)len, &pi->args);
	} else {
		mft_qemu_args_parse("", 0, &pi->args);
	}
	if (!pi->name[0])
		snprintf(pi->name, sizeof(pi->name), "%s", pi->comm);
	find_gnutls(pi);
	return 0;
}

static bool qemu_named(const char *exe)
{
	const char *base = strrchr(exe, '/');

	base = base ? base + 1 : exe;
	return !strncmp(base, "qemu-system-", 12) || !strncmp(base, "qemu-kvm", 8);
}

bool mft_procinfo_is_qemu(const struct mft_procinfo *pi)
{
	char err[256], ver[64];
	uint64_t v;
	bool qemu;
	struct mft_elf *e = mft_elf_open(pi->exe_open, err, sizeof(err));

	if (!e)
		return false;
	qemu = !mft_elf_symbol(e, "migrate_set_state", &v) && !mft_elf_symbol(e, "multifd_recv_sync_main", &v);
	if (!qemu && qemu_named(pi->exe)) {
		mft_qemu_version(e, ver, sizeof(ver));
		qemu = ver[0] != '\0';
	}
	mft_elf_close(e);
	return qemu;
}

void mft_procinfo_versions(struct mft_procinfo *pi)
{
	char err[256];
	struct mft_elf *e = mft_elf_open(pi->exe_open, err, sizeof(err));

	mft_qemu_version(e, pi->qemu_version, sizeof(pi->qemu_version));
	mft_elf_close(e);
	pi->gnutls_version[0] = '\0';
	if (pi->gnutls_open[0] && (e = mft_elf_open(pi->gnutls_open, err, sizeof(err)))) {
		mft_gnutls_version(e, pi->gnutls_version, sizeof(pi->gnutls_version));
		mft_elf_close(e);
	}
}

uint64_t mft_proc_symbol_addr(const struct mft_procinfo *pi, const char *sym)
{
	uint64_t off, addr = 0;
	char path[64], line[PATH_MAX + 256], err[256];
	struct mft_elf *e = mft_elf_open(pi->exe_open, err, sizeof(err));
	struct stat st;
	FILE *f;
	int rc = e ? mft_elf_symbol_offset(e, sym, &off) : -1;

	mft_elf_close(e);
	if (rc || stat(pi->exe_open, &st))
		return 0;
	snprintf(path, sizeof(path), "/proc/%u/maps", pi->pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	/* the binary's mappings are the ones of its inode, whatever its path says now */
	while (fgets(line, sizeof(line), f)) {
		struct mft_map m;

		if (mft_maps_parse(line, &m) || m.inode != st.st_ino || m.dev_major != major(st.st_dev) ||
		    m.dev_minor != minor(st.st_dev))
			continue;
		if (off >= m.offset && off - m.offset < m.end - m.start) {
			addr = m.start + (off - m.offset);
			break;
		}
	}
	fclose(f);
	return addr;
}

int mft_find_qemu_pids(uint32_t *pids, int max, bool (*skip)(void *ctx, uint32_t pid), void *ctx)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) && n < max) {
		struct mft_procinfo pi;
		char err[128], path[64], exe[PATH_MAX];

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		uint32_t pid = (uint32_t)strtoul(de->d_name, NULL, 10);

		if (skip && skip(ctx, pid))
			continue;
		snprintf(path, sizeof(path), "/proc/%u/exe", pid);
		ssize_t l = readlink(path, exe, sizeof(exe) - 1);

		if (l <= 0)
			continue;
		exe[l] = '\0';
		if (!strstr(exe, "qemu"))
			continue;
		if (mft_procinfo_read(pid, &pi, err, sizeof(err)) == 0 && mft_procinfo_is_qemu(&pi))
			pids[n++] = pid;
	}
	closedir(d);
	return n;
}
