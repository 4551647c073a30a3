// SPDX-License-Identifier: GPL-2.0
/*
 * doctor: report what this host allows and prove that the chosen probes fire, the way
 * retsnoop calibrates: attach to ourselves, make a loopback TCP connection and a few
 * GnuTLS calls, and check that each expected event arrived. For a target, it also says
 * what mftrace can and cannot tell of its migrations: a unix-socket migration (KubeVirt's
 * proxy, a libvirt tunnel) or one without TLS, read from its command line and sockets.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <getopt.h>
#include <stdarg.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include "base/util.h"
#include "commands/cli.h"
#include "commands/commands.h"
#include "collect/elfsym.h"
#include "collect/host.h"
#include "collect/procinfo.h"

static const char usage[] =
	"Usage: mftrace doctor [-p PID ...] [--mechanism M] [--btf FILE] [-v]\n"
	"\n"
	"Say what this host lets mftrace observe, and prove it: privileges, kernel BTF, tracefs,\n"
	"which mechanism carries each kernel probe (fentry, kprobe, tracepoint; tp_btf, raw_tp,\n"
	"tracepoint) and why, whether uprobes go in uprobe_multi links, and every other\n"
	"tracepoint mftrace uses. Then load and attach the probes for real and make a\n"
	"loopback TCP exchange and a few GnuTLS calls in this process, and check that each\n"
	"expected event arrived. With -p, also report on each QEMU process: its binary and\n"
	"version, owner, which of QEMU's functions and USDT probes it offers, its libgnutls\n"
	"(as mapped) and the SYNC landmarks that follow. Without -p, list the QEMU processes\n"
	"found on this host. A target's files are read as data only: nothing it names is run.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID        also report on this QEMU process (repeat for several)\n"
	"      --mechanism M    kernel probes for shutdown/close: auto, fentry, kprobe, tracepoint\n"
	"      --tls-records    also prove the per-record probe (gnutls_record_recv)\n"
	"      --btf FILE       kernel types for a kernel without /sys/kernel/btf/vmlinux\n"
	"  -v, --verbose        libbpf's log\n"
	"  -h, --help           this help\n"
	"\n"
	"Exit status: 0 if every check passed, 1 if one failed (each says why) or on a usage\n"
	"error. Needs root (or CAP_SYS_ADMIN).\n";

static int failures;

static void line(const char *tag, const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("  %-6s %-24s ", tag, what);
	fflush(stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!strcmp(tag, "[FAIL]"))
		failures++;
}

struct seen {
	unsigned types; /* bit per event type */
	uint32_t pid;
};

static void on_ev(void *ctx, const struct mft_event *ev)
{
	struct seen *s = ctx;

	if (ev->pid == s->pid && ev->type < 32)
		s->types |= 1u << ev->type;
}

/* A loopback TCP exchange that crosses every socket boundary mftrace watches. */
static int tcp_exercise(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int ls = socket(AF_INET, SOCK_STREAM, 0), cs = -1, as = -1, rc = -1;
	char buf[16];

	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1) ||
	    getsockname(ls, (struct sockaddr *)&a, &al))
		goto out;
	cs = socket(AF_INET, SOCK_STREAM, 0);
	if (cs < 0 || connect(cs, (struct sockaddr *)&a, sizeof(a)))
		goto out;
	as = accept(ls, NULL, NULL);
	if (as < 0 || send(cs, "mftrace", 7, 0) != 7 || recv(as, buf, sizeof(buf), 0) <= 0)
		goto out;
	shutdown(cs, SHUT_RDWR);
	usleep(20000);
	if (recv(as, buf, sizeof(buf), 0) != 0)
		goto out;
	rc = 0;
out:
	if (cs >= 0)
		close(cs);
	if (as >= 0)
		close(as);
	if (ls >= 0)
		close(ls);
	return rc;
}

/*
 * A few GnuTLS calls in our own process on a dummy session: two handshakes and a
 * deinit. (gnutls_bye cannot be called on a session without keys: GnuTLS crashes.)
 */
static int gnutls_exercise(void)
{
	void *h = dlopen("libgnutls.so.30", RTLD_NOW | RTLD_LOCAL);
	int (*init)(void **, unsigned), (*hs)(void *);
	void (*deinit)(void *);
	void *s = NULL;

	if (!h)
		return -1;
	init = (int (*)(void **, unsigned))dlsym(h, "gnutls_init");
	hs = (int (*)(void *))dlsym(h, "gnutls_handshake");
	deinit = (void (*)(void *))dlsym(h, "gnutls_deinit");
	if (!init || !hs || !deinit || init(&s, 2 /* GNUTLS_CLIENT */))
		return -1;
	hs(s); /* fails at once: no credentials, no transport */
	hs(s);
	deinit(s);
	return 0; /* keep the library mapped: uprobes are attached to it */
}

/* Sockets (of any kind) a process holds now: an upper bound on its TCP sockets. */
static unsigned sockets_of(uint32_t pid)
{
	char path[64], link[64];
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%u/fd", pid);
	if (!(d = opendir(path)))
		return 0;
	while ((de = readdir(d))) {
		char fd[336];
		ssize_t l;

		snprintf(fd, sizeof(fd), "%s/%s", path, de->d_name);
		l = readlink(fd, link, sizeof(link) - 1);
		if (l > 7 && !strncmp(link, "socket:", 7))
			n++;
	}
	closedir(d);
	return n;
}

/*
 * The bounded tables, against what this host holds now: the QEMUs (targets) and their
 * sockets (socket map). Each is also counted when reached, in the exporter's
 * mftrace_resource_* metrics and in the summary a session prints when it ends.
 */
static void limits(const uint32_t *qemus, int n_qemus)
{
	unsigned socks = 0;

	for (int i = 0; i < n_qemus; i++)
		socks += sockets_of(qemus[i]);
	printf("\nlimits (sized for a few hundred QEMUs; each is counted when reached):\n");
	line(n_qemus > MFT_MAX_TARGETS ? "[FAIL]" : "[ok]", "targets",
	     "%d QEMU process%s here now; at most %d traced "
	     "at once",
	     n_qemus > MFT_MAX_TARGETS ? MFT_MAX_TARGETS + 1 : n_qemus, n_qemus == 1 ? "" : "es", MFT_MAX_TARGETS);
	line(socks > MFT_MAX_SOCKS ? "[FAIL]" : "[ok]", "socket_map",
	     "their %u sockets (TCP or not) now; at most %d TCP "
	     "sockets tracked at once (not LRU: a full map is counted)",
	     socks, MFT_MAX_SOCKS);
	line("[info]", "tls_session_map", "at most %d TLS sessions at once", MFT_MAX_SESSIONS);
	line("[info]", "call_maps",
	     "at most %d threads inside a probed GnuTLS call at once (x2: handshake/bye, "
	     "--tls-records)",
	     MFT_MAX_THREADS);
	line("[info]", "attach_statuses", "at most %d attach points remembered (about 25 per target)", MFT_MAX_STATUS);
}

static void wait_events(struct mft_collector *c)
{
	for (int i = 0; i < 10; i++)
		mft_collector_poll(c, 50);
}

static void prove(const struct mft_collector_opts *co)
{
	struct seen s = { .pid = (uint32_t)getpid() };
	struct mft_procinfo self;
	char err[512];
	struct mft_collector *c = mft_collector_open(co, on_ev, &s, err, sizeof(err));
	static const struct {
		int type;
		const char *name;
	} want[] = {
		{ MFT_EV_SOCK_CONNECT, "connect (tcp state)" },
		{ MFT_EV_SOCK_ACCEPT, "accept" },
		{ MFT_EV_FIRST_READ, "recv result" },
		{ MFT_EV_SHUTDOWN, "shutdown" },
		{ MFT_EV_FIN_RCVD, "FIN received" },
		{ MFT_EV_READ_EOF, "EOF read" },
		{ MFT_EV_CLOSE, "close" },
		{ MFT_EV_DESTROY, "socket destroyed" },
	};

	printf("\nproof that the probes fire (a loopback TCP exchange and GnuTLS calls in this process):\n");
	if (!c) {
		line("[FAIL]", "load and attach", "%s", err);
		return;
	}
	bool tls = dlopen("libgnutls.so.30", RTLD_NOW | RTLD_LOCAL) != NULL;

	if (mft_procinfo_read(s.pid, &self, err, sizeof(err)) ||
	    mft_collector_add_target(c, &self, NULL, err, sizeof(err))) {
		line("[FAIL]", "self as target", "%s", err);
		mft_collector_close(c);
		return;
	}
	if (tcp_exercise())
		line("[FAIL]", "loopback exercise", "the loopback TCP exchange itself failed");
	wait_events(c);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		line(s.types & (1u << want[i].type) ? "[ok]" : "[FAIL]", want[i].name, "%s",
		     s.types & (1u << want[i].type) ? "event seen" : "expected event did not arrive");
	if (tls && self.gnutls[0]) {
		uint64_t before = mft_collector_counter(c, MFT_CNT_UPROBE_HITS);

		gnutls_exercise();
		wait_events(c);
		uint64_t hits = mft_collector_counter(c, MFT_CNT_UPROBE_HITS) - before;

		line(hits >= 3 ? "[ok]" : "[FAIL]", "GnuTLS uprobes", "%llu of 3 calls seen (handshake x2, deinit)",
		     (unsigned long long)hits);
	} else {
		line("[--]", "GnuTLS uprobes", "libgnutls.so.30 not loadable here: not proven");
	}
	uint64_t lost = mft_collector_counter(c, MFT_CNT_RB_DROPPED);

	line(lost ? "[FAIL]" : "[ok]", "events lost", "%llu", (unsigned long long)lost);
	mft_collector_close(c);
}

/* A target's sockets by kind: its descriptors' inodes looked up in the TCP and unix
 * tables of its network namespace (/proc/PID/net/). */
struct census {
	unsigned tcp_established, tcp_listening, tcp_other, unix_connected, unix_listening, other;
	char unix_paths[3][108];
	int n_paths;
};

static int ino_cmp(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;

	return (x > y) - (x < y);
}

static bool have_ino(const unsigned long *set, size_t n, unsigned long ino)
{
	return bsearch(&ino, set, n, sizeof(*set), ino_cmp) != NULL;
}

static void census(uint32_t pid, struct census *c)
{
	static unsigned long inos[16384];
	char path[64], line[512];
	struct dirent *de;
	size_t n = 0, seen = 0;
	DIR *d;
	FILE *f;

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "/proc/%u/fd", pid);
	if (!(d = opendir(path)))
		return;
	while ((de = readdir(d)) && n < sizeof(inos) / sizeof(inos[0])) {
		char fd[336], link[64];
		ssize_t l;

		snprintf(fd, sizeof(fd), "%s/%s", path, de->d_name);
		l = readlink(fd, link, sizeof(link) - 1);
		if (l > 8 && !strncmp(link, "socket:[", 8)) {
			link[l] = '\0';
			inos[n++] = strtoul(link + 8, NULL, 10);
		}
	}
	closedir(d);
	qsort(inos, n, sizeof(*inos), ino_cmp);
	for (int v6 = 0; v6 < 2; v6++) {
		snprintf(path, sizeof(path), "/proc/%u/net/tcp%s", pid, v6 ? "6" : "");
		if (!(f = fopen(path, "re")))
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned st;
			unsigned long ino;

			if (sscanf(line, " %*u: %*s %*s %x %*s %*s %*s %*u %*u %lu", &st, &ino) != 2 ||
			    !have_ino(inos, n, ino))
				continue;
			seen++;
			if (st == 1)
				c->tcp_established++;
			else if (st == 10)
				c->tcp_listening++;
			else
				c->tcp_other++;
		}
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%u/net/unix", pid);
	if ((f = fopen(path, "re"))) {
		while (fgets(line, sizeof(line), f)) {
			unsigned long flags, ino;
			unsigned type, st;
			int pos = 0;

			if (sscanf(line, "%*s %*s %*s %lx %x %x %lu%n", &flags, &type, &st, &ino, &pos) != 4 ||
			    !have_ino(inos, n, ino))
				continue;
			seen++;
			if (flags & 0x10000) { /* __SO_ACCEPTCON: listening */
				c->unix_listening++;
				continue;
			}
			c->unix_connected += st == 3;
			const char *p = line + pos;

			while (*p == ' ')
				p++;
			if (st == 3 && *p && *p != '\n' && c->n_paths < 3) {
				snprintf(c->unix_paths[c->n_paths], sizeof(c->unix_paths[0]), "%.*s",
					 (int)strcspn(p, "\n"), p);
				mft_sanitize(c->unix_paths[c->n_paths], sizeof(c->unix_paths[0]),
					     c->unix_paths[c->n_paths]);
				c->n_paths++;
			}
		}
		fclose(f);
	}
	c->other = n > seen ? (unsigned)(n - seen) : 0;
}

/*
 * What mftrace can and cannot tell of this QEMU's migrations: the transport (-incoming
 * on a destination; the sockets it holds now on either end) and TLS (a tls-creds object).
 */
static void transport(const struct mft_procinfo *pi)
{
	const struct mft_qemu_args *a = &pi->args;
	struct census c;
	char why[160];

	census(pi->pid, &c);
	line("[info]", "sockets now",
	     "TCP: %u established, %u listening, %u other; unix: %u connected, %u listening; "
	     "%u of other kinds",
	     c.tcp_established, c.tcp_listening, c.tcp_other, c.unix_connected, c.unix_listening, c.other);
	for (int i = 0; i < c.n_paths; i++)
		line("[info]", "unix socket peer", "%s", c.unix_paths[i]);
	if (!strcmp(a->incoming, "unix") || !strcmp(a->incoming, "fd") || !strcmp(a->incoming, "exec")) {
		line("[--]", "migration transport",
		     "-incoming %s: not TCP. A unix-socket migration (KubeVirt's "
		     "virt-handler proxy, a libvirt tunnel) is carried between hosts by another process, which "
		     "does the TLS if any (KubeVirt's proxy, in Go: no GnuTLS)",
		     a->incoming);
		line("[--]", "what mftrace sees",
		     "nothing of its channels: mftrace follows TCP sockets and GnuTLS "
		     "calls, so no channel, no verdict and no close_notify race is shown for this migration");
	} else if (a->incoming[0]) {
		line("[ok]", "migration transport", "-incoming %s%s", a->incoming,
		     !strcmp(a->incoming, "tcp")     ? ": TCP, every channel traced"
		     : !strcmp(a->incoming, "defer") ? ": the address comes later over QMP (migrate-incoming); "
						       "a tcp: one is traced, a unix: one is not"
						     : ": traced if the channels turn out to be TCP");
	} else if (c.unix_connected && !c.tcp_established) {
		line("[info]", "migration transport",
		     "not a destination; it holds connected unix sockets and no "
		     "established TCP socket now: a migration it starts to a unix: URI (KubeVirt, a libvirt "
		     "tunnel) would not be seen, one to a tcp: URI is");
	} else {
		line("[info]", "migration transport",
		     "not a destination (no -incoming): a destination's per-packet SYNC probes are "
		     "not attached to it; its outgoing migration's URI is given over QMP: a tcp: one is "
		     "traced, a unix: one is not");
	}
	if (a->tls_creds)
		line("[ok]", "TLS",
		     "a tls-creds object on the command line: TLS migrations possible, their "
		     "handshake and close_notify seen through GnuTLS");
	else
		line("[info]", "TLS",
		     "no tls-creds object on the command line (libvirt adds one over QMP when it "
		     "migrates with TLS). Without TLS, channels are judged plain: EOF is their normal end and "
		     "there is no close_notify race to tell");
	if (pi->incoming) {
		const char *v = mft_clean_tls_termination(a, pi->qemu_version, why, sizeof(why));

		line("[info]", "clean-tls-termination", "%s: %s%s", v, why,
		     !strcmp(v, "on") ? "; a source older than QEMU 10.0 (no close_notify) fails against it "
					"whenever its shutdown wins the race"
				      : "");
	}
}

static void report_target(uint32_t pid)
{
	struct mft_procinfo pi;
	char err[512];
	uint64_t v;
	static const char *const syms[] = { "migrate_set_state",        "MigrationStatus_lookup",
					    "multifd_recv_new_channel", "multifd_send_shutdown",
					    "multifd_save_cleanup",     "multifd_recv_shutdown",
					    "multifd_load_cleanup",     "multifd_send_sync_main",
					    "multifd_recv_sync_main" };

	printf("\ntarget pid %u:\n", pid);
	if (mft_procinfo_read(pid, &pi, err, sizeof(err))) {
		line("[FAIL]", "process", "%s", mft_sanitize(err, sizeof(err), err));
		return;
	}
	bool qemu = mft_procinfo_is_qemu(&pi);
	struct mft_elf *e = mft_elf_open(pi.exe_open, err, sizeof(err));

	mft_procinfo_versions(&pi);
	/* what the target chose (paths, name, version texts) is shown sanitised */
	mft_sanitize(pi.exe, sizeof(pi.exe), pi.exe);
	mft_sanitize(pi.name, sizeof(pi.name), pi.name);
	mft_sanitize(pi.gnutls, sizeof(pi.gnutls), pi.gnutls);
	mft_sanitize(pi.qemu_version, sizeof(pi.qemu_version), pi.qemu_version);
	mft_sanitize(pi.gnutls_version, sizeof(pi.gnutls_version), pi.gnutls_version);
	line(qemu ? "[ok]" : "[FAIL]", "binary", "%s (%s)%s", pi.exe, pi.name, qemu ? "" : ": not a QEMU");
	line("[info]", "owner", "uid %u", pi.uid);
	if (qemu)
		line("[info]", "QEMU version", "%s",
		     pi.qemu_version[0] ? pi.qemu_version : "unknown (no version text in the binary)");
	line("[info]", "target files",
	     "read as data only (ELF symbols, notes, version text): nothing the "
	     "process names is run or loaded");
	if (!e)
		line("[FAIL]", "binary readable", "%s", err);
	int usdt = mft_elf_usdt_count(e, "qemu");

	line("[info]", "USDT probes (qemu)", "%d%s", usdt,
	     usdt > 0 ? " (built with the dtrace backend)" : " (none: uprobes on exported functions instead)");
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		bool have = mft_elf_symbol(e, syms[i], &v) == 0;

		line(have ? "[ok]" : "[--]", syms[i], "%s", have ? "exported (uprobe-able)" : "not exported");
	}
	if (pi.gnutls[0]) {
		struct mft_elf *g = mft_elf_open(pi.gnutls_open, err, sizeof(err));
		bool hs = mft_elf_symbol(g, "gnutls_handshake", &v) == 0;

		line(hs ? "[ok]" : "[FAIL]", "libgnutls", "%s (GnuTLS %s)%s", pi.gnutls,
		     pi.gnutls_version[0] ? pi.gnutls_version : "version unknown",
		     hs ? "" : ": no gnutls_handshake in it: the target would be refused");
		if (pi.gnutls_replaced)
			line("[info]", "libgnutls on disk",
			     "replaced since the process mapped it: traced through "
			     "the mapped file (%s)",
			     pi.gnutls_open);
		line("[info]", "fidelity",
		     "default: kernel events + gnutls_handshake/bye/deinit; "
		     "--tls-records adds every gnutls_record_recv result");
		char where[160];
		uint64_t off;

		int site = mft_cheapest_site(g, "gnutls_record_recv", false, &off, where, sizeof(where));

		if (site >= 0)
			line(site ? "[ok]" : "[info]", "--tls-records probe", "gnutls_record_recv %s%s", where,
			     site ? ": the kernel emulates the jump, no single step"
				  : ": two traps a call (README, Cost)");
		mft_elf_close(g);
	} else {
		line("[--]", "libgnutls", "not mapped: TLS probes absent, channels will be judged as plain TCP");
	}
	bool syncs = mft_elf_symbol(e, "multifd_recv_sync_main", &v) == 0;
	bool init = mft_elf_symbol(e, "qio_channel_read_all", &v) == 0;

	line("[info]", "SYNC landmarks", "%s%s%s%s",
	     syncs ? "sync points of each migration (uprobes)" : "no sync points (sync_main not exported)",
	     init ? "; destination channel ids and migration UUID from each MultiFDInit_t" : "",
	     usdt > 0 ? "; per-channel SYNC packets and channel ids from USDT" : "",
	     usdt > 0 ? "" : "; destination per-channel SYNC packets from the packet headers read");
	mft_elf_close(e);
	if (qemu)
		transport(&pi);
}

static int doctor(const uint32_t *pids, int n_pids, const struct mft_collector_opts *co)
{
	struct mft_probe_results r;
	struct mft_choice ch;
	struct utsname u;
	char why[512];
	bool mounted = false;
	static const struct {
		const char *what, *func, *tp;
	} kp[] = {
		{ "shutdown", "inet_shutdown", "syscalls/sys_enter_shutdown" },
		{ "close", "tcp_close", "syscalls/sys_enter_close" },
	};
	/* tp_btf, else raw_tp, else the perf tracepoint (probe_select.h) */
	static const char *const socktps[] = { "sock/sock_recv_length",    "sock/sock_send_length",
					       "sock/inet_sock_set_state", "tcp/tcp_destroy_sock",
					       "tcp/tcp_receive_reset",    "tcp/tcp_send_reset" };
	static const char *const tps[] = { "syscalls/sys_exit_accept4", "sched/sched_process_exit" };
	struct mft_tp_results tr;

	failures = 0;
	uname(&u);
	printf("mftrace doctor: %s %s %s\n\nhost:\n", u.sysname, u.release, u.machine);
	if (mft_check_privileges(why, sizeof(why))) {
		line("[FAIL]", "privileges", "%s", why);
		return 1;
	}
	line("[ok]", "privileges", "%s", geteuid() == 0 ? "root" : "CAP_BPF + CAP_PERFMON");
	const char *btf_path;
	char btf_what[300];
	bool btf = mft_btf_resolve(co->btf, &btf_path, btf_what, sizeof(btf_what), why, sizeof(why)) == 0;

	if (!btf)
		line("[FAIL]", "BTF", "%s", why);
	else
		line("[ok]", "BTF", "%s", btf_what);
	if (mft_ensure_tracefs(&mounted, why, sizeof(why)))
		line("[FAIL]", "tracefs", "%s", why);
	else
		line("[ok]", "tracefs", "%s%s", MFT_TRACEFS, mounted ? " (mounted it now)" : "");
	for (size_t i = 0; i < sizeof(kp) / sizeof(kp[0]); i++) {
		mft_probe_kernel_func(kp[i].func, kp[i].tp, &r);
		mft_choose_mech(kp[i].what, &r, co->forced_mech, &ch);
		line(ch.mech ? "[ok]" : "[FAIL]", kp[i].what, "%s <- %s", mft_mech_name(ch.mech), ch.why);
	}
	{
		struct mft_avail multi;

		mft_probe_uprobe_multi(&multi);
		mft_choose_uprobe_mech(&multi, false, &ch);
		line("[ok]", "uprobes", "%s <- %s", mft_mech_name(ch.mech), ch.why);
	}
	for (size_t i = 0; i < sizeof(socktps) / sizeof(socktps[0]); i++) {
		mft_probe_tracepoint(socktps[i], &tr);
		mft_choose_tp_mech(socktps[i], &tr, co->forced_mech, &ch);
		line(ch.mech ? "[ok]" : "[FAIL]", socktps[i], "%s <- %s", mft_mech_name(ch.mech), ch.why);
	}
	for (size_t i = 0; i < sizeof(tps) / sizeof(tps[0]); i++) {
		char p[256];

		snprintf(p, sizeof(p), MFT_TRACEFS "/events/%s/id", tps[i]);
		line(access(p, R_OK) ? "[FAIL]" : "[ok]", tps[i], "%s", access(p, R_OK) ? "missing" : "tracepoint");
	}
	for (int i = 0; i < n_pids; i++)
		report_target(pids[i]);
	static uint32_t found[MFT_MAX_TARGETS + 1];
	int n = mft_find_qemu_pids(found, MFT_MAX_TARGETS + 1, NULL, NULL);

	if (!n_pids) {
		printf("\nQEMU processes on this host: ");
		if (n <= 0)
			printf("none\n");
		for (int k = 0; k < n && k < 64; k++)
			printf("%u%s", found[k],
			       k + 1 < n && k < 63 ? " "
			       : n > 64            ? " ... (use: mftrace doctor -p PID)\n"
						   : " (use: mftrace doctor -p PID)\n");
	}
	limits(found, n > 0 ? n : 0);
	if (btf)
		prove(co);
	else
		printf("\nproof that the probes fire: skipped: without BTF (the kernel's, or --btf FILE) nothing can load\n");
	printf("\n%s\n", failures ? "doctor: some checks FAILED" : "doctor: all checks passed");
	return failures ? 1 : 0;
}

int mft_cmd_doctor(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		MFT_CLI_PROBE_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mft_cli_trace t = { 0 };
	int opt;

	optind = 1;
	while ((opt = mft_cli_next_opt("doctor", argc, argv, ":p:vh", longopts, &t)) != -1) {
		switch (opt) {
		case 'h': fputs(usage, stdout); return 0;
		default: /* MFT_CLI_BAD: already said */ return 1;
		}
	}
	if (optind < argc)
		return mft_cli_unexpected("doctor", argv);
	return doctor(t.pids, t.n_pids, &t.co);
}
