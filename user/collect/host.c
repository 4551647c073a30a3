// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "collect/host.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static bool has_cap(const struct __user_cap_data_struct *d, int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

int mft_check_privileges(char *why, size_t len)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2] = {};

	if (syscall(SYS_capget, &h, d)) {
		snprintf(why, len, "cannot read capabilities: %s", strerror(errno));
		return -1;
	}
	/* CAP_BPF + CAP_PERFMON load the programs, but uprobes (GnuTLS, QEMU) need
	 * CAP_SYS_ADMIN on the kernels measured here: without them TLS would go unseen. */
	if (has_cap(d, CAP_SYS_ADMIN))
		return 0;
	snprintf(why, len,
		 "needs root, or CAP_SYS_ADMIN (for uprobes) with CAP_SYS_PTRACE (to read other "
		 "processes' /proc entries)");
	return -1;
}

static int silent_print(enum libbpf_print_level l, const char *f, va_list a);

/* Built in by the Makefile for make static (build/btf/embedded.c); absent otherwise. */
extern const struct mft_btf_blob mft_btf_embedded[] __attribute__((weak));

/* Is path a BTF libbpf can read (raw, or an ELF file's .BTF)? The type count, or -1. */
static long btf_types(const char *path, char *why, size_t len)
{
	libbpf_print_fn_t old = libbpf_set_print(silent_print);
	struct btf *b = btf__parse(path, NULL);
	int err = errno;
	long n = b ? (long)btf__type_cnt(b) : -1;

	libbpf_set_print(old);
	btf__free(b);
	if (n < 0)
		snprintf(why, len, "--btf %s: %s", path,
			 err == ENOENT || err == EACCES ? strerror(err) : "not a BTF file (raw BTF, or ELF with .BTF)");
	return n;
}

/* The minimal BTF built in for this kernel release, as a file libbpf can open (a memfd). */
static const char *embedded_btf(const char *release, size_t *size)
{
	static char path[64];
	static int fd = -1;

	for (const struct mft_btf_blob *b = mft_btf_embedded; b && b->release; b++) {
		if (strcmp(b->release, release))
			continue;
		*size = b->size;
		if (fd >= 0)
			return path;
		fd = memfd_create("mftrace-btf", MFD_CLOEXEC);
		if (fd < 0)
			return NULL;
		if (write(fd, b->data, b->size) != (ssize_t)b->size) {
			close(fd);
			fd = -1;
			return NULL;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd); /* kept open: libbpf reads it at load */
		return path;
	}
	return NULL;
}

int mft_btf_resolve(const char *file, const char **path, char *what, size_t wlen, char *why, size_t len)
{
	char dummy[8];
	struct utsname u;
	size_t size = 0;
	long n;

	if (!what) {
		what = dummy;
		wlen = sizeof(dummy);
	}
	*path = NULL;
	if (file) {
		n = btf_types(file, why, len);
		if (n < 0)
			return -1;
		*path = file;
		snprintf(what, wlen, "%s (--btf, %ld types)", file, n);
		return 0;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) == 0) {
		snprintf(what, wlen, "/sys/kernel/btf/vmlinux");
		return 0;
	}
	uname(&u);
	*path = embedded_btf(u.release, &size);
	if (*path) {
		snprintf(what, wlen, "built-in minimal BTF for %s (%zu bytes)", u.release, size);
		return 0;
	}
	snprintf(why, len,
		 "this kernel has no BTF (/sys/kernel/btf/vmlinux missing): CO-RE programs "
		 "cannot be relocated; give --btf FILE (this kernel's BTF, or one made by "
		 "`bpftool gen min_core_btf`), or use a kernel built with CONFIG_DEBUG_INFO_BTF=y");
	return -1;
}

int mft_check_btf(const char *file, char *why, size_t len)
{
	const char *path;

	return mft_btf_resolve(file, &path, NULL, 0, why, len);
}

int mft_ensure_tracefs(bool *mounted_now, char *why, size_t len)
{
	struct stat st;

	if (mounted_now)
		*mounted_now = false;
	if (stat(MFT_TRACEFS "/events", &st) == 0)
		return 0;
	if (mount("nodev", MFT_TRACEFS, "tracefs", 0, NULL)) {
		snprintf(why, len, "tracefs is not mounted and mounting it at %s failed: %s", MFT_TRACEFS,
			 strerror(errno));
		return -1;
	}
	if (mounted_now)
		*mounted_now = true;
	return 0;
}

static int silent_print(enum libbpf_print_level l, const char *f, va_list a)
{
	(void)l;
	(void)f;
	(void)a;
	return 0;
}

/* Really load (and attach) a do-nothing fentry program: the only honest test. */
static void probe_fentry(const char *func, struct mft_avail *a)
{
	struct bpf_insn insns[] = {
		{ .code = 0xb7, .dst_reg = 0, .imm = 0 }, /* r0 = 0 */
		{ .code = 0x95 },                         /* exit */
	};
	libbpf_print_fn_t old = libbpf_set_print(silent_print);
	struct btf *btf = btf__load_vmlinux_btf();
	int id, fd, lfd;

	a->ok = false;
	if (!btf) {
		snprintf(a->why, sizeof(a->why), "no kernel BTF");
		goto out;
	}
	id = btf__find_by_name_kind(btf, func, BTF_KIND_FUNC);
	btf__free(btf);
	if (id < 0) {
		snprintf(a->why, sizeof(a->why), "%s not in kernel BTF", func);
		goto out;
	}
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_TRACE_FENTRY, .attach_btf_id = (__u32)id);
	fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "mft_fentry_probe", "GPL", insns, 2, &o);
	if (fd < 0) {
		snprintf(a->why, sizeof(a->why), "test program failed to load: %s", strerror(errno));
		goto out;
	}
	lfd = bpf_raw_tracepoint_open(NULL, fd);
	if (lfd < 0) {
		snprintf(a->why, sizeof(a->why), "test program failed to attach: %s", strerror(errno));
		close(fd);
		goto out;
	}
	close(lfd);
	close(fd);
	a->ok = true;
out:
	libbpf_set_print(old);
}

static bool file_has_word(const char *path, const char *word)
{
	char line[512];
	size_t wl = strlen(word);
	FILE *f = fopen(path, "re");
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = !strncmp(line, word, wl) && (line[wl] == ' ' || line[wl] == '\n' || line[wl] == '\t');
	fclose(f);
	return found;
}

static void probe_kprobe(const char *func, struct mft_avail *a)
{
	a->ok = false;
	if (access("/sys/bus/event_source/devices/kprobe/type", R_OK) && access(MFT_TRACEFS "/kprobe_events", F_OK)) {
		snprintf(a->why, sizeof(a->why), "kernel has no kprobes (CONFIG_KPROBES not set)");
		return;
	}
	if (access(MFT_TRACEFS "/available_filter_functions", R_OK) == 0) {
		if (!file_has_word(MFT_TRACEFS "/available_filter_functions", func)) {
			snprintf(a->why, sizeof(a->why), "%s is not a probe-able function", func);
			return;
		}
	}
	a->ok = true;
}

static void probe_tracepoint(const char *tp, struct mft_avail *a)
{
	char path[256];

	snprintf(path, sizeof(path), MFT_TRACEFS "/events/%s/id", tp);
	a->ok = access(path, R_OK) == 0;
	if (!a->ok)
		snprintf(a->why, sizeof(a->why), "%s: %s", tp,
			 access(MFT_TRACEFS "/events", F_OK) ? "tracefs not mounted" : "no such tracepoint");
}

void mft_probe_kernel_func(const char *func, const char *tracepoint, struct mft_probe_results *r)
{
	memset(r, 0, sizeof(*r));
	probe_fentry(func, &r->fentry);
	probe_kprobe(func, &r->kprobe);
	probe_tracepoint(tracepoint, &r->tracepoint);
}
