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

/* The kernel BTF id of name (kind), or -1 with the reason in a. */
static int vmlinux_btf_id(const char *name, int kind, struct mft_avail *a)
{
	struct btf *btf = btf__load_vmlinux_btf();
	int id;

	if (!btf) {
		snprintf(a->why, sizeof(a->why), "no kernel BTF");
		return -1;
	}
	id = btf__find_by_name_kind(btf, name, kind);
	btf__free(btf);
	if (id < 0)
		snprintf(a->why, sizeof(a->why), "%.70s not in kernel BTF", name);
	return id < 0 ? -1 : id;
}

/*
 * Really load a do-nothing program of type (opts o) and attach it with
 * bpf_raw_tracepoint_open(tp, fd) (tp NULL: where its BTF id says), then let go of it:
 * the only honest test. a says whether that worked, and if not, why.
 */
static void load_and_attach(enum bpf_prog_type type, struct bpf_prog_load_opts *o, const char *tp, struct mft_avail *a)
{
	struct bpf_insn insns[] = {
		{ .code = 0xb7, .dst_reg = 0, .imm = 0 }, /* r0 = 0 */
		{ .code = 0x95 },                         /* exit */
	};
	int fd = bpf_prog_load(type, "mft_probe", "GPL", insns, 2, o), lfd;

	a->ok = false;
	if (fd < 0) {
		snprintf(a->why, sizeof(a->why), "test program failed to load: %s", strerror(errno));
		return;
	}
	lfd = bpf_raw_tracepoint_open(tp, fd);
	if (lfd < 0)
		snprintf(a->why, sizeof(a->why), "test program failed to attach: %s", strerror(errno));
	else
		close(lfd);
	close(fd);
	a->ok = lfd >= 0;
}

static void probe_fentry(const char *func, struct mft_avail *a)
{
	libbpf_print_fn_t old = libbpf_set_print(silent_print);
	int id = vmlinux_btf_id(func, BTF_KIND_FUNC, a);

	a->ok = false;
	if (id >= 0) {
		LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_TRACE_FENTRY,
			    .attach_btf_id = (__u32)id);
		load_and_attach(BPF_PROG_TYPE_TRACING, &o, NULL, a);
	}
	libbpf_set_print(old);
}

/* Tracepoint name as tp_btf (btf) or raw_tp. */
static void probe_raw(const char *name, bool btf, struct mft_avail *a)
{
	libbpf_print_fn_t old = libbpf_set_print(silent_print);
	char tname[128];
	int id;

	a->ok = false;
	if (!btf) {
		load_and_attach(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL, name, a);
	} else {
		snprintf(tname, sizeof(tname), "btf_trace_%s", name);
		id = vmlinux_btf_id(tname, BTF_KIND_TYPEDEF, a);
		if (id >= 0) {
			LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_TRACE_RAW_TP,
				    .attach_btf_id = (__u32)id);
			load_and_attach(BPF_PROG_TYPE_TRACING, &o, NULL, a);
		}
	}
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

void mft_probe_tracepoint(const char *tp, struct mft_tp_results *r)
{
	const char *name = strchr(tp, '/') ? strchr(tp, '/') + 1 : tp;

	memset(r, 0, sizeof(*r));
	probe_raw(name, true, &r->tp_btf);
	probe_raw(name, false, &r->raw_tp);
	probe_tracepoint(tp, &r->tracepoint);
}

/*
 * Load a do-nothing uprobe_multi program and create a link on "/" (not a regular file):
 * a kernel with uprobe_multi refuses the path (EBADF), one without refuses the attach
 * type (EINVAL). This is how libbpf tells them apart too.
 */
void mft_probe_uprobe_multi(struct mft_avail *a)
{
	struct bpf_insn insns[] = {
		{ .code = 0xb7, .dst_reg = 0, .imm = 0 }, /* r0 = 0 */
		{ .code = 0x95 },                         /* exit */
	};
	unsigned long off = 0;
	libbpf_print_fn_t old = libbpf_set_print(silent_print);
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = MFT_BPF_TRACE_UPROBE_MULTI);
	LIBBPF_OPTS(bpf_link_create_opts, lo, .uprobe_multi.path = "/", .uprobe_multi.offsets = &off,
		    .uprobe_multi.cnt = 1);
	int fd, lfd, err;

	a->ok = false;
	fd = bpf_prog_load(BPF_PROG_TYPE_KPROBE, "mft_upm_probe", "GPL", insns, 2, &o);
	if (fd < 0) {
		snprintf(a->why, sizeof(a->why), "test program failed to load: %s", strerror(errno));
		goto out;
	}
	lfd = bpf_link_create(fd, -1, MFT_BPF_TRACE_UPROBE_MULTI, &lo);
	err = errno;
	if (lfd >= 0)
		close(lfd);
	close(fd);
	a->ok = lfd < 0 && err == EBADF;
	if (!a->ok)
		snprintf(a->why, sizeof(a->why), "test link: %s (kernel older than 6.6?)",
			 lfd >= 0 ? "accepted a directory" : strerror(err));
out:
	libbpf_set_print(old);
}
