// SPDX-License-Identifier: GPL-2.0
#include <ctype.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "elfsym.h"
#include "procinfo.h"

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

static void vm_name_from_cmdline(struct mft_procinfo *pi, const char *cmd, int n)
{
	for (int i = 0; i < n; i += (int)strlen(cmd + i) + 1) {
		const char *arg = cmd + i;

		if (!strcmp(arg, "-incoming") || !strcmp(arg, "--incoming"))
			pi->incoming = true;
		if ((strcmp(arg, "-name") && strcmp(arg, "--name")) || i + (int)strlen(arg) + 1 >= n)
			continue;
		const char *v = arg + strlen(arg) + 1;
		const char *g = strstr(v, "guest=");

		v = g ? g + 6 : v;
		snprintf(pi->name, sizeof(pi->name), "%.*s", (int)strcspn(v, ","), v);
	}
}

static void find_gnutls(struct mft_procinfo *pi)
{
	char path[64], line[PATH_MAX + 128];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%u/maps", pi->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, '/');

		if (!p)
			continue;
		p[strcspn(p, "\n")] = '\0';
		const char *base = strrchr(p, '/') + 1;

		if (!strncmp(base, "libgnutls.so", 12)) {
			snprintf(pi->gnutls, sizeof(pi->gnutls), "%s", p);
			snprintf(pi->gnutls_open, sizeof(pi->gnutls_open), "/proc/%u/root%s", pi->pid, p);
			break;
		}
	}
	fclose(f);
}

int mft_procinfo_read(uint32_t pid, struct mft_procinfo *pi, char *err, size_t errlen)
{
	char path[64], cmd[8192];
	ssize_t n;
	int len;

	memset(pi, 0, sizeof(*pi));
	pi->pid = pid;
	snprintf(path, sizeof(path), "/proc/%u/comm", pid);
	if (read_file(path, pi->comm, sizeof(pi->comm)) < 0) {
		snprintf(err, errlen, "no such process: pid %u", pid);
		return -1;
	}
	pi->comm[strcspn(pi->comm, "\n")] = '\0';
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	n = readlink(path, pi->exe, sizeof(pi->exe) - 1);
	if (n < 0) {
		snprintf(err, errlen, "cannot read /proc/%u/exe: %s%s", pid, strerror(errno),
			 errno == ENOENT ? " (a kernel thread or a zombie?)" : "");
		return -1;
	}
	pi->exe[n] = '\0';
	snprintf(pi->exe_open, sizeof(pi->exe_open), "/proc/%u/exe", pid);
	snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
	len = read_file(path, cmd, sizeof(cmd));
	if (len > 0)
		vm_name_from_cmdline(pi, cmd, len);
	if (!pi->name[0])
		snprintf(pi->name, sizeof(pi->name), "%s", pi->comm);
	find_gnutls(pi);
	return 0;
}

bool mft_procinfo_is_qemu(const struct mft_procinfo *pi)
{
	const char *base = strrchr(pi->exe, '/');
	uint64_t v;

	base = base ? base + 1 : pi->exe;
	if (!strncmp(base, "qemu-system-", 12) || !strncmp(base, "qemu-kvm", 8))
		return true;
	return mft_elf_symbol(pi->exe_open, "migrate_set_state", &v) == 0 &&
	       mft_elf_symbol(pi->exe_open, "multifd_recv_sync_main", &v) == 0;
}

uint64_t mft_proc_symbol_addr(const struct mft_procinfo *pi, const char *sym)
{
	uint64_t vaddr, off, addr = 0;
	char path[64], line[PATH_MAX + 128];
	FILE *f;

	if (mft_elf_symbol(pi->exe_open, sym, &vaddr) || mft_elf_vaddr_to_offset(pi->exe_open, vaddr, &off))
		return 0;
	snprintf(path, sizeof(path), "/proc/%u/maps", pi->pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		uint64_t start, end, moff;
		char *p = strchr(line, '/');

		if (!p || sscanf(line, "%" SCNx64 "-%" SCNx64 " %*s %" SCNx64, &start, &end, &moff) != 3)
			continue;
		p[strcspn(p, "\n")] = '\0';
		if (strncmp(p, pi->exe, strlen(pi->exe)))
			continue;
		if (off >= moff && off < moff + (end - start)) {
			addr = start + (off - moff);
			break;
		}
	}
	fclose(f);
	return addr;
}

int mft_find_qemu_pids(uint32_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) && n < max) {
		struct mft_procinfo pi;
		char err[128];

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		uint32_t pid = (uint32_t)strtoul(de->d_name, NULL, 10);
		char path[64], exe[PATH_MAX];

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

void mft_qemu_version(const char *path, char *buf, size_t len)
{
	static const char tag[] = "QEMU emulator version ";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	void *map;

	buf[0] = '\0';
	if (fd < 0)
		return;
	if (fstat(fd, &st) || st.st_size <= 0) {
		close(fd);
		return;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return;
	const char *p = memmem(map, (size_t)st.st_size, tag, sizeof(tag) - 1);

	if (p) {
		const char *v = p + sizeof(tag) - 1, *end = (const char *)map + st.st_size;
		size_t n = 0;

		while (v + n < end && n + 1 < len && v[n] != '\n' && v[n] != '\0')
			n++;
		memcpy(buf, v, n);
		buf[n] = '\0';
	}
	munmap(map, (size_t)st.st_size);
}

void mft_gnutls_version(const char *path, char *buf, size_t len)
{
	void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	const char *(*check)(const char *);

	buf[0] = '\0';
	if (!h)
		return;
	check = (const char *(*)(const char *))dlsym(h, "gnutls_check_version");
	if (check && check(NULL))
		snprintf(buf, len, "%s", check(NULL));
	dlclose(h);
}
