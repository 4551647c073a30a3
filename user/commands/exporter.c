// SPDX-License-Identifier: GPL-2.0
/*
 * `mftrace exporter`: trace every QEMU on this host (a session with all_qemus) and
 * serve what the correlator concludes as Prometheus metrics over HTTP.
 *
 * Two threads. The main thread runs the session: ring buffer, correlator, and the
 * metric updates from its callbacks. libmicrohttpd's internal polling thread serves
 * HTTP: a scrape takes the registry's mutex only to render a snapshot into memory,
 * so it never holds up event collection for longer than that. A third thread, the guard's
 * watchdog (http_guard.c), closes connections past their deadline; the guard also keeps
 * any one local user (or remote address) to its share of the connections.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include <microhttpd.h>
#include <gnutls/gnutls.h>
#include "commands/commands.h"
#include "collect/host.h"
#include "present/metrics.h"
#include "commands/session.h"

#include "commands/cli.h"
#include "commands/http_guard.h"
#include "commands/web_config.h"
#include "version.h"
#include "revision.h"

/* Outside 9100-9999 (the Prometheus wiki's exporter port allocations, all taken), below
 * the Linux ephemeral range (32768-60999), and not in /etc/services. */
#define DEFAULT_PORT 19353
#define DEFAULT_TIMEOUT 10 /* seconds a connection gets per request answered */
#define DEFAULT_MAX_CONN 64
#define MAX_CONN_LIMIT 1024
#define MAX_TIMEOUT 3600
#define REQUEST_MEMORY 16384 /* per connection: the request line and headers must fit */
#define LISTEN_BACKLOG 1024  /* a burst of connections waits here, not in SYN retries */
#define LIMITS_EVERY_NS 1000000000ull
#define MAX_PROGS 128
#define MAX_LISTEN 16 /* --web.listen-address, repeated */

static const char usage[] =
	"Usage: mftrace exporter [--web.listen-address ADDR:PORT ...] [options]\n"
	"\n"
	"Trace every QEMU process on this host, including those that start later (forgetting\n"
	"those that exit), and serve the verdicts of their multifd migrations as Prometheus\n"
	"metrics on http://ADDR:PORT/metrics. Prometheus does the cross-host work: the\n"
	"source and the destination of a migration are usually two exporters.\n"
	"\n"
	"Options (the web ones as the Prometheus exporter toolkit names them):\n"
	"  -l, --web.listen-address ADDR:PORT\n"
	"                          where to serve (default 127.0.0.1:19353); repeat it to serve\n"
	"                          on several. ADDR is an IPv4 address or [IPv6]; :PORT is every\n"
	"                          IPv4 address; port 0 picks a free one (printed). --listen is\n"
	"                          the same option\n"
	"      --web.telemetry-path PATH\n"
	"                          where the metrics are (default /metrics)\n"
	"      --web.config.file FILE\n"
	"                          TLS and basic authentication, in the exporter toolkit's YAML:\n"
	"                          tls_server_config (cert_file, key_file, client_auth_type,\n"
	"                          client_ca_file, min_version) and basic_auth_users (user: bcrypt\n"
	"                          hash); any other key is refused (see mftrace(8))\n"
	"      --max-connections N at most N connections at once (default 64); one client (a\n"
	"                          local user, told by the owner of its socket, or a remote\n"
	"                          address) holds at most an eighth of them (at least 2)\n"
	"      --timeout SECS      a deadline, not an idle timeout: a connection that has not\n"
	"                          had a request answered within SECS of opening or of its\n"
	"                          previous answer is closed, however slowly it sends (default 10)\n"
	"      --tls-records[=SITE]\n"
	"                          full fidelity: probe every gnutls_record_recv() result;\n"
	"                          SITE is cheapest (default) or entry (see mftrace --help).\n"
	"                          Off by default: it costs a trap per TLS record\n"
	"      --mechanism M       kernel probes for shutdown/close: auto, fentry, kprobe or\n"
	"                          tracepoint (see mftrace --help)\n"
	"      --btf FILE          kernel types for a kernel without /sys/kernel/btf/vmlinux\n"
	"                          (see mftrace --help)\n"
	"  -v, --verbose           libbpf's and libmicrohttpd's logs, every attach point\n"
	"  -h, --help              this help\n"
	"\n"
	"HTTP: GET and HEAD on the telemetry path (text format 0.0.4, or OpenMetrics 1.0.0 when\n"
	"the Accept header asks for it) and on / (an index page); 405 for other methods, 404\n"
	"elsewhere; 401 without the credentials basic_auth_users asks for. Requests larger than\n"
	"16 KiB are refused.\n"
	"\n"
	"Metrics (labels: role, verdict, possible, impact, outcome, domain; never a pid or a\n"
	"port on a counter):\n"
	"  mftrace_migrations_total, mftrace_channels_total    by role, verdict, possible, domain\n"
	"  mftrace_premature_terminations_total                by role, impact, domain\n"
	"  mftrace_premature_tolerated_by_relaxed_eof_total    what clean-tls-termination would break\n"
	"  mftrace_flagged_migrations_total, mftrace_migration_outcomes_total, ...\n"
	"  mftrace_channel_{fin_to_final_read,fin_to_local_shutdown,bye_to_shutdown,\n"
	"    last_sync_to_shutdown,last_sync_to_fin}_seconds   histograms of margins\n"
	"  mftrace_channel_received_bytes                      histogram per channel\n"
	"  mftrace_last_migration_info{domain,role,endpoint,uuid,qemu_version,...}\n"
	"                                                      joins source and destination\n"
	"  mftrace_target_info{domain,uuid,qemu_version,gnutls_version,machine,incoming,\n"
	"    clean_tls_termination}                            each QEMU traced\n"
	"  mftrace_events_lost_total, mftrace_probe_attached, mftrace_targets, mftrace_build_info,\n"
	"  mftrace_exporter_scrape_duration_seconds, process_*, mftrace_bpf_program_*\n"
	"                                                      the exporter's own health\n"
	"  mftrace_resource_{capacity,used,refused_total}{resource}  every bounded table (targets,\n"
	"    socket_map, ..., http_connections): its size, its use, what it refused\n"
	"  mftrace_exporter_connections_closed_total{reason}   deadline, client_share\n"
	"Each has a # HELP line; deploy/ has alert rules, a Grafana dashboard and a systemd unit.\n"
	"\n"
	"Binds to loopback by default; beyond it, use --web.config.file for TLS and basic\n"
	"authentication. Needs root, or CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN (uprobes) and\n"
	"CAP_SYS_PTRACE. Stops on SIGINT or SIGTERM; exit status 0, or 1 on a usage or set-up\n"
	"error.\n";

struct exporter {
	struct mft_metrics *m;
	const char *path;           /* --web.telemetry-path */
	char index[1024];           /* the index page, linking to it */
	struct mft_web_config *web; /* --web.config.file; NULL: plain HTTP, no authentication */
	struct mft_http_guard *guard;
	bool probes_known;
	uint64_t t_limits;
};

/* ---- the session side ---- */

/* kernel.bpf_stats_enabled, and what the kernel counted of each of our programs. */
static void update_bpf(struct exporter *x, const struct mft_session *s)
{
	struct mft_prog_stat st[MAX_PROGS];
	char v[8] = "";
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "re");
	bool on;

	if (f) {
		if (!fgets(v, sizeof(v), f))
			v[0] = '\0';
		fclose(f);
	}
	on = v[0] && v[0] != '0';
	mft_metrics_set_bpf(x->m, on, st, mft_session_prog_stats(s, st, MAX_PROGS));
}

static void on_migration(void *ctx, const struct mft_correlator *c, const struct mft_migration *mig)
{
	struct exporter *x = ctx;
	const struct mft_process *p = mig->proc;
	struct timespec now;

	(void)c;
	clock_gettime(CLOCK_REALTIME, &now);
	mft_metrics_migration(x->m, p ? p->name : NULL, mig, (double)now.tv_sec + now.tv_nsec / 1e9);
}

static void update_probes(struct exporter *x, const struct mft_session *s)
{
	size_t n;
	const struct mft_attach_status *st = mft_session_status(s, &n);

	mft_metrics_set_probes(x->m, st, n);
}

/* A target's probes are attached before this is called: its statuses are complete. */
static void on_target(void *ctx, const struct mft_session *s, const struct mft_procinfo *pi, bool added)
{
	struct exporter *x = ctx;

	mft_metrics_target(x->m, pi->pid, pi->name, added);
	if (added)
		mft_metrics_target_info(x->m, pi);
	update_probes(x, s);
}

static void on_tick(void *ctx, const struct mft_session *s, uint64_t now_ns)
{
	struct exporter *x = ctx;
	struct mft_metrics_self self = {
		.events = mft_session_counter(s, MFT_CNT_EVENTS),
		.lost = mft_session_counter(s, MFT_CNT_RB_DROPPED),
		.untracked = mft_session_counter(s, MFT_CNT_SOCK_MAP_FULL),
		.malformed = mft_session_bad_events(s),
	};

	mft_metrics_set_self(x->m, &self);
	if (!x->probes_known) { /* the kernel-wide probes, before any target */
		update_probes(x, s);
		x->probes_known = true;
	}
	if (now_ns >= x->t_limits + LIMITS_EVERY_NS) { /* walks the kernel maps: once a second */
		struct mft_limit l[16];
		size_t n = mft_session_limits(s, l, 14);

		mft_http_guard_limits(x->guard, l + n);
		mft_metrics_set_limits(x->m, l, n + 2);
		x->t_limits = now_ns;
		update_bpf(x, s);
	}
}

/* ---- the HTTP side ---- */

static const char index_fmt[] =
	"<!DOCTYPE html>\n<html><head><title>mftrace exporter</title></head><body>\n"
	"<h1>mftrace exporter</h1>\n"
	"<p>Who closed first on each multifd channel of the QEMU live migrations on this host.</p>\n"
	"<p><a href=\"%s\">%s</a></p>\n</body></html>\n";

static enum MHD_Result reply(struct exporter *x, struct MHD_Connection *conn, unsigned int code, const char *type,
			     const char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	mft_metrics_http_response(x->m, code);
	return ret;
}

static double mono_s(void)
{
	return (double)mft_mono_now() / 1e9;
}

/* process_*: as the Prometheus client libraries define them, from /proc/self. */
static void update_process(struct exporter *x)
{
	struct mft_metrics_process p = { 0 };
	static double boot_time; /* /proc/stat btime: it does not change */
	double tick = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
	char buf[1024], *rp;
	unsigned long long utime, stime, start, vsize, rss;
	struct rlimit nofile;
	struct dirent *de;
	DIR *d;
	FILE *f;

	if (!boot_time && (f = fopen("/proc/stat", "re"))) {
		while (fgets(buf, sizeof(buf), f))
			if (!strncmp(buf, "btime ", 6))
				boot_time = strtod(buf + 6, NULL);
		fclose(f);
	}
	if ((f = fopen("/proc/self/stat", "re"))) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		fclose(f);
		/* after "pid (comm) ": state is field 3; utime 14, stime 15, starttime 22, vsize 23, rss 24 */
		if ((rp = strrchr(buf, ')')) &&
		    sscanf(rp + 2,
			   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %llu",
			   &utime, &stime, &start, &vsize, &rss) == 5 &&
		    tick > 0) {
			p.cpu_seconds = (double)(utime + stime) / tick;
			p.start_time_seconds = boot_time + (double)start / tick;
			p.virtual_bytes = (double)vsize;
			p.resident_bytes = (double)rss * page;
		}
	}
	if ((d = opendir("/proc/self/fd"))) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				p.open_fds++;
		closedir(d);
		p.open_fds--; /* the directory's own */
	}
	if (!getrlimit(RLIMIT_NOFILE, &nofile))
		p.max_fds = nofile.rlim_cur == RLIM_INFINITY ? 1e300 : (double)nofile.rlim_cur;
	mft_metrics_set_process(x->m, &p);
}

static enum MHD_Result serve_metrics(struct exporter *x, struct MHD_Connection *conn)
{
	const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	bool om = mft_metrics_wants_openmetrics(accept);
	double t0 = mono_s();
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t len;
	char *buf;

	update_process(x);
	if (mft_metrics_render(x->m, om, &buf, &len))
		return reply(x, conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "out of memory\n");
	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, mft_metrics_content_type(om));
	MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	mft_metrics_scrape_done(x->m, om, mono_s() - t0);
	mft_metrics_http_response(x->m, MHD_HTTP_OK);
	return ret;
}

/* --web.config.file: a client certificate as client_auth_type asks (403 otherwise), and
 * basic authentication when users are listed (401 with a challenge otherwise). true: the
 * request may go on; false: *ret holds the refusal. */
static bool access_ok(struct exporter *x, struct MHD_Connection *conn, enum MHD_Result *ret)
{
	struct mft_web_config *w = x->web;

	if (w->tls && w->client_auth != MFT_CLIENT_AUTH_NONE) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
		gnutls_session_t ts = ci ? (gnutls_session_t)ci->tls_session : NULL;
		unsigned int status = 1, n = 0;
		bool given = ts && gnutls_certificate_get_peers(ts, &n) && n;
		bool valid = given && !gnutls_certificate_verify_peers2(ts, &status) && !status;

		if (given ? !valid : w->client_auth == MFT_CLIENT_AUTH_REQUIRE_VERIFY) {
			*ret = reply(x, conn, MHD_HTTP_FORBIDDEN, "text/plain; charset=utf-8",
				     given ? "client certificate not trusted\n" : "a client certificate is required\n");
			return false;
		}
	}
	if (w->n_users) {
		char *pass = NULL, *user = MHD_basic_auth_get_username_password(conn, &pass);
		bool ok = user && pass && mft_web_auth_ok(w, user, pass);
		struct MHD_Response *r;

		if (pass)
			MHD_free(pass);
		if (user)
			MHD_free(user);
		if (ok)
			return true;
		r = MHD_create_response_from_buffer(13, (void *)"unauthorized\n", MHD_RESPMEM_PERSISTENT);
		if (!r) {
			*ret = MHD_NO;
			return false;
		}
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
		*ret = MHD_queue_basic_auth_fail_response(conn, "mftrace", r);
		MHD_destroy_response(r);
		mft_metrics_http_response(x->m, MHD_HTTP_UNAUTHORIZED);
		return false;
	}
	return true;
}

static bool has_body(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

	return (cl && strcmp(cl, "0")) ||
	       MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
	static char seen;
	struct exporter *x = cls;

	(void)version;
	(void)upload_data;
	if (mft_http_guard_refused(conn))
		return MHD_NO; /* over its client's share, or past its deadline: closed */
	/* First call, with the headers. A refusal is sent now, without reading a body:
	 * libmicrohttpd then closes the connection. An accepted request is answered on
	 * the second call, so that the connection can be kept alive. */
	if (!*req_cls) {
		enum MHD_Result refused;

		*req_cls = &seen;
		if (x->web && !access_ok(x, conn, &refused))
			return refused;
		if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
			return reply(x, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
				     "only GET and HEAD are served\n");
		if (has_body(conn))
			return reply(x, conn, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8",
				     "a GET or HEAD request has no body\n");
		return MHD_YES;
	}
	if (*upload_size)
		return MHD_NO; /* a body after all: drop the connection */
	if (!strcmp(url, x->path))
		return serve_metrics(x, conn);
	if (!strcmp(url, "/"))
		return reply(x, conn, MHD_HTTP_OK, "text/html; charset=utf-8", x->index);
	return reply(x, conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", "not found: try the telemetry path\n");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fputs("mftrace: http: ", stderr);
	vfprintf(stderr, fmt, ap);
}

/* ---- set-up ---- */

/* "127.0.0.1:19353", "[::1]:19353". -1 with a one-line reason. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl, char *err, size_t errlen)
{
	const char *colon = strrchr(s, ':');
	char host[INET6_ADDRSTRLEN + 2], *end;
	long port;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (!colon) {
		snprintf(err, errlen, "invalid listen address '%s' (ADDR:PORT, e.g. 127.0.0.1:%d, [::1]:%d or :%d)", s,
			 DEFAULT_PORT, DEFAULT_PORT, DEFAULT_PORT);
		return -1;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port < 0 || port > 65535) {
		snprintf(err, errlen, "invalid port in listen address '%s' (0 to 65535)", s);
		return -1;
	}
	hl = (size_t)(colon - s);
	if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		snprintf(host, sizeof(host), "%.*s", (int)(hl - 2), s + 1);
		if (hl - 2 >= sizeof(host) || inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			goto bad_addr;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*a);
		return 0;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	snprintf(host, sizeof(host), "%.*s", (int)hl, hl ? s : "0.0.0.0"); /* ":PORT": every IPv4 address */
	if (hl >= sizeof(host) || inet_pton(AF_INET, host, &a->sin_addr) != 1)
		goto bad_addr;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	*sl = sizeof(*a);
	return 0;
bad_addr:
	snprintf(err, errlen, "invalid address in listen address '%s' (a numeric IPv4 address, or [IPv6])", s);
	return -1;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static void fmt_sockaddr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
	}
}

/* A listening socket of our own, so that a busy port gets its own one-line error. */
static int open_listener(struct sockaddr_storage *ss, socklen_t sl, char *err, size_t errlen)
{
	char where[INET6_ADDRSTRLEN + 16];
	int one = 1, fd;

	fmt_sockaddr(ss, where, sizeof(where));
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a socket for %s: %s", where, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)ss, sl) || listen(fd, LISTEN_BACKLOG)) {
		snprintf(err, errlen, "cannot listen on %s: %s", where, strerror(errno));
		close(fd);
		return -1;
	}
	getsockname(fd, (struct sockaddr *)ss, &sl);
	return fd;
}

static int parse_uint(const char *s, long lo, long hi, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(s, &end, 10);
	return (end == s || *end || errno || *v < lo || *v > hi) ? -1 : 0;
}

/* A telemetry path: absolute, printable, no query, no HTML metacharacters (it is shown
 * in the index page). */
static bool path_ok(const char *p)
{
	if (p[0] != '/' || strlen(p) > 128)
		return false;
	for (; *p; p++)
		if (!(isalnum((unsigned char)*p) || strchr("/_.-~", *p)))
			return false;
	return true;
}

struct listener {
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;
	struct MHD_Daemon *d;
};

static void stop_listeners(struct listener *l, int n)
{
	for (int i = 0; i < n; i++) {
		if (l[i].d)
			MHD_stop_daemon(l[i].d); /* closes the socket too */
		else if (l[i].fd >= 0)
			close(l[i].fd);
	}
}

int mft_cmd_exporter(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "web.listen-address", required_argument, NULL, 'l' },
		{ "listen", required_argument, NULL, 'l' },
		{ "web.telemetry-path", required_argument, NULL, 'P' },
		{ "web.config.file", required_argument, NULL, 'W' },
		{ "max-connections", required_argument, NULL, 'C' },
		{ "timeout", required_argument, NULL, 't' },
		MFT_CLI_PROBE_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mft_cli_trace t = { 0 };
	struct exporter x = { .path = "/metrics" };
	static struct mft_web_config web;
	struct listener ls[MAX_LISTEN];
	const char *listen_at[MAX_LISTEN], *config = NULL;
	int n_listen = 0;
	long max_conn = DEFAULT_MAX_CONN, timeout = DEFAULT_TIMEOUT;
	char err[PATH_MAX + 512], where[INET6_ADDRSTRLEN + 16], libbpf_v[32], default_listen[32];
	struct MHD_OptionItem mo[16];
	int opt, rc, n_mo = 0;
	unsigned int flags;
	bool open_wide = false;

	optind = 1;
	while ((opt = mft_cli_next_opt("exporter", argc, argv, ":l:vh", longopts, &t)) != -1) {
		switch (opt) {
		case 'l':
			if (n_listen == MAX_LISTEN) {
				fprintf(stderr, "mftrace: at most %d listen addresses\n", MAX_LISTEN);
				return 1;
			}
			listen_at[n_listen++] = optarg;
			break;
		case 'P':
			if (!path_ok(optarg)) {
				fprintf(stderr,
					"mftrace: invalid --web.telemetry-path '%s' (an absolute path of letters, "
					"digits and /_.-~, at most 128 bytes)\n",
					optarg);
				return 1;
			}
			x.path = optarg;
			break;
		case 'W': config = optarg; break;
		case 'C':
			if (parse_uint(optarg, 1, MAX_CONN_LIMIT, &max_conn)) {
				fprintf(stderr, "mftrace: invalid --max-connections '%s' (1 to %d)\n", optarg,
					MAX_CONN_LIMIT);
				return 1;
			}
			break;
		case 't':
			if (parse_uint(optarg, 1, MAX_TIMEOUT, &timeout)) {
				fprintf(stderr, "mftrace: invalid --timeout '%s' (seconds, 1 to %d)\n", optarg,
					MAX_TIMEOUT);
				return 1;
			}
			break;
		case 'h': fputs(usage, stdout); return 0;
		default: /* MFT_CLI_BAD: already said */ return 1;
		}
	}
	if (optind < argc)
		return mft_cli_unexpected("exporter", argv);
	snprintf(default_listen, sizeof(default_listen), "127.0.0.1:%d", DEFAULT_PORT);
	if (!n_listen)
		listen_at[n_listen++] = default_listen;
	for (int i = 0; i < n_listen; i++) {
		if (parse_listen(listen_at[i], &ls[i].ss, &ls[i].sl, err, sizeof(err))) {
			fprintf(stderr, "mftrace: %s\n", err);
			return 1;
		}
		ls[i].fd = -1;
		ls[i].d = NULL;
	}
	if (config) {
		if (mft_web_config_load(config, &web, err, sizeof(err))) {
			fprintf(stderr, "mftrace: %s\n", err);
			return 1;
		}
		if (web.tls && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			fprintf(stderr, "mftrace: %s: this libmicrohttpd (%s) has no TLS support\n", config,
				MHD_get_version());
			mft_web_config_free(&web);
			return 1;
		}
		x.web = &web;
	}
	snprintf(x.index, sizeof(x.index), index_fmt, x.path, x.path);
	if (mft_check_privileges(err, sizeof(err))) {
		fprintf(stderr, "mftrace: %s\n", err);
		goto fail_early;
	}
	for (int i = 0; i < n_listen; i++) {
		ls[i].fd = open_listener(&ls[i].ss, ls[i].sl, err, sizeof(err));
		if (ls[i].fd < 0) {
			fprintf(stderr, "mftrace: %s\n", err);
			stop_listeners(ls, i);
			goto fail_early;
		}
	}
	snprintf(libbpf_v, sizeof(libbpf_v), "%s", libbpf_version_string());
	struct mft_metrics_build b = { MFT_VERSION, libbpf_v, MHD_get_version(), MFT_REVISION };

	x.m = mft_metrics_new(&b);
	if (!x.m) {
		fprintf(stderr, "mftrace: out of memory\n");
		stop_listeners(ls, n_listen);
		goto fail_early;
	}
	signal(SIGPIPE, SIG_IGN);
	/* No per-address limit of libmicrohttpd's: every local user shares 127.0.0.1. The
	 * guard gives each client (local user or remote address) its share instead, over
	 * every listen address together. */
	x.guard = mft_http_guard_new((unsigned)max_conn, max_conn / 8 > 2 ? (unsigned)max_conn / 8 : 2,
				     (unsigned)timeout, x.m);
	if (!x.guard || mft_http_guard_start(x.guard)) {
		fprintf(stderr, "mftrace: cannot start the HTTP guard: %s\n", x.guard ? "no thread" : "out of memory");
		mft_http_guard_free(x.guard);
		stop_listeners(ls, n_listen);
		mft_metrics_free(x.m);
		goto fail_early;
	}
	flags = MHD_USE_AUTO_INTERNAL_THREAD | (t.co.verbose ? MHD_USE_ERROR_LOG : 0);
	mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)max_conn, NULL };
	mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)timeout, NULL };
	mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT, REQUEST_MEMORY, NULL };
	mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)mft_http_guard_notify, x.guard };
	mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)mft_http_guard_completed,
					      x.guard };
	mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL };
	if (x.web && web.tls) { /* libmicrohttpd over GnuTLS */
		flags |= MHD_USE_TLS;
		mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, web.cert_pem };
		mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, web.key_pem };
		if (web.ca_pem)
			mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0, web.ca_pem };
		if (web.priorities[0])
			mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, web.priorities };
	}
	mo[n_mo++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	for (int i = 0; i < n_listen; i++) {
		ls[i].d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &x, MHD_OPTION_LISTEN_SOCKET, ls[i].fd,
					   MHD_OPTION_ARRAY, mo, MHD_OPTION_END);
		fmt_sockaddr(&ls[i].ss, where, sizeof(where));
		if (!ls[i].d) {
			fprintf(stderr, "mftrace: cannot start the HTTP server on %s (libmicrohttpd %s%s)\n", where,
				MHD_get_version(), x.web && web.tls ? "; is the key the certificate's, both PEM?" : "");
			mft_http_guard_stop(x.guard);
			stop_listeners(ls, n_listen);
			mft_http_guard_free(x.guard);
			mft_metrics_free(x.m);
			goto fail_early;
		}
		fprintf(stderr, "mftrace: serving metrics on %s://%s%s%s\n", x.web && web.tls ? "https" : "http", where,
			x.path, x.web && web.n_users ? " (basic authentication)" : "");
		if (!is_loopback(&ls[i].ss))
			open_wide = true;
	}
	if (open_wide && !(x.web && (web.n_users || web.client_auth == MFT_CLIENT_AUTH_REQUIRE_VERIFY)))
		fprintf(stderr,
			"mftrace: note: serving beyond loopback without authentication (see --web.config.file)\n");

	struct mft_session_opts so = {
		.co = t.co,
		.all_qemus = true,
		.chatter = true,
		.sink = { .ctx = &x, .migration = on_migration },
		.ctx = &x,
		.target = on_target,
		.tick = on_tick,
	};

	mft_cli_catch_signals();
	rc = mft_session_run(&so, &mft_cli_stop);
	mft_http_guard_stop(x.guard); /* no shutdown() after libmicrohttpd closes the sockets */
	stop_listeners(ls, n_listen);
	mft_http_guard_free(x.guard);
	mft_metrics_free(x.m);
	if (x.web)
		mft_web_config_free(&web);
	return rc ? 1 : 0;
fail_early:
	if (x.web)
		mft_web_config_free(&web);
	return 1;
}
