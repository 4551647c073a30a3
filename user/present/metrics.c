// SPDX-License-Identifier: GPL-2.0
/*
 * The exporter's metric registry and its two text renderings (see metrics.h).
 *
 * Every family is declared once in families[]; its series live in a growable array,
 * found by linear search (a family holds at most MFT_METRICS_MAX_SERIES series, and
 * updates happen once per migration, not per event). Histograms keep per-bucket counts
 * and are made cumulative when rendered. Margins are signed: a negative one (the
 * second event came first) is observed as its absolute value with order="reversed",
 * so that every _sum stays a counter, as OpenMetrics requires.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "base/util.h"
#include "present/metrics.h"
#include "correlate/verdict.h"
#include "collect/qemu_args.h"

#define MAX_LABELS 10
#define LV_LEN 64 /* a label value, NUL included: VM names are at most 63 bytes too */
#define MAX_TARGETS MFT_MAX_TARGETS
#define N(a) (int)(sizeof(a) / sizeof((a)[0]))

enum mtype { T_COUNTER, T_GAUGE, T_HISTOGRAM, T_INFO };

/* 1 us to 5 s: the race is decided in microseconds to milliseconds */
static const double margin_bounds[] = { 1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1, 5 };
/* 1 KiB to 16 GiB, by powers of 4 */
static const double bytes_bounds[] = { 1024,     4096,     16384,     65536,      262144,       1048576,      4194304,
				       16777216, 67108864, 268435456, 1073741824, 4294967296.0, 17179869184.0 };
static const double scrape_bounds[] = { 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25 };

enum fam {
	F_MIGRATIONS,
	F_OUTCOMES,
	F_FLAGGED,
	F_LUCKY,
	F_CHANNELS,
	F_PREMATURE,
	F_FIN_TO_FINAL_READ,
	F_FIN_TO_LOCAL_SHUTDOWN,
	F_BYE_TO_SHUTDOWN,
	F_SYNC_TO_SHUTDOWN,
	F_SYNC_TO_FIN,
	F_RX_BYTES,
	F_LAST_INFO,
	F_LAST_TIME,
	F_TARGETS,
	F_EVENTS,
	F_LOST,
	F_UNTRACKED,
	F_MALFORMED,
	F_PROBE,
	F_BUILD,
	F_SCRAPE,
	F_HTTP,
	F_DROPPED,
	F_EVICTED,
	F_RES_CAPACITY,
	F_RES_USED,
	F_RES_REFUSED,
	F_HTTP_CLOSED,
	F_TARGET_INFO,
	F_RELAXED,
	F_BPF_ENABLED,
	F_BPF_TIME,
	F_BPF_RUNS,
	F_PROC_CPU,
	F_PROC_RSS,
	F_PROC_VSZ,
	F_PROC_FDS,
	F_PROC_MAX_FDS,
	F_PROC_START,
	F__MAX
};

struct family {
	const char *name; /* without the _total (counter) or _info (info) suffix */
	int type;
	const char *unit; /* OpenMetrics UNIT; the name ends with it */
	const char *help;
	const char *labels[MAX_LABELS];
	const double *bounds;
	int n_bounds;
};

#define MARGIN(n, h)                                                                                    \
	{                                                                                               \
		"mftrace_channel_" n "_seconds", T_HISTOGRAM, "seconds",                                \
			h " per multifd channel. "                                                      \
			  "order=reversed: the second event came first; the absolute gap is observed.", \
			{ "role", "order" }, margin_bounds, N(margin_bounds)                            \
	}

static const struct family families[F__MAX] = {
	[F_MIGRATIONS] = { "mftrace_migrations",
			   T_COUNTER,
			   NULL,
			   "Migrations that ended, by role, verdict (the worst decided multifd channel verdict: clean, "
			   "premature, unread, reset, plain, incomplete; or undecided) and domain. On an undecided one, "
			   "possible holds the verdicts still possible, e.g. premature|unread.",
			   { "role", "verdict", "possible", "domain" } },
	[F_OUTCOMES] = { "mftrace_migration_outcomes",
			 T_COUNTER,
			 NULL,
			 "Migrations that ended, by role, outcome (completed, failed, cancelled, destination-failed, "
			 "source-failed, exited, killed, unknown, other) and domain.",
			 { "role", "outcome", "domain" } },
	[F_FLAGGED] = { "mftrace_flagged_migrations",
			T_COUNTER,
			NULL,
			"Migrations in which a multifd channel's shutdown beat its final read.",
			{ "role", "domain" } },
	[F_LUCKY] = { "mftrace_migrations_survived_by_luck",
		      T_COUNTER,
		      NULL,
		      "Migrations that completed although a multifd channel terminated prematurely.",
		      { "role", "domain" } },
	[F_CHANNELS] = { "mftrace_channels",
			 T_COUNTER,
			 NULL,
			 "Multifd channels judged, by role, verdict (as on mftrace_migrations_total; possible on an "
			 "undecided one) and domain.",
			 { "role", "verdict", "possible", "domain" } },
	[F_PREMATURE] = { "mftrace_premature_terminations",
			  T_COUNTER,
			  NULL,
			  "Multifd channels whose final read hit EOF without close_notify (GnuTLS -110), by impact: "
			  "tolerated (the migration completed), fatal (it failed), pending (outcome unknown).",
			  { "role", "impact", "domain" } },
	[F_FIN_TO_FINAL_READ] = MARGIN("fin_to_final_read", "Time from the peer's FIN arrival to the final read,"),
	[F_FIN_TO_LOCAL_SHUTDOWN] = MARGIN("fin_to_local_shutdown",
					   "Time from the peer's FIN arrival to this side's own shutdown(),"),
	[F_BYE_TO_SHUTDOWN] = MARGIN("bye_to_shutdown", "Time from gnutls_bye() to shutdown(),"),
	[F_SYNC_TO_SHUTDOWN] = MARGIN("last_sync_to_shutdown", "Time from the last SYNC to this side's shutdown(),"),
	[F_SYNC_TO_FIN] = MARGIN("last_sync_to_fin", "Time from the last SYNC to the peer's FIN arrival,"),
	[F_RX_BYTES] = { "mftrace_channel_received_bytes",
			 T_HISTOGRAM,
			 "bytes",
			 "Bytes received per multifd channel, by role.",
			 { "role" },
			 bytes_bounds,
			 N(bytes_bounds) },
	[F_LAST_INFO] = { "mftrace_last_migration",
			  T_INFO,
			  NULL,
			  "The last migration of each domain and role: the endpoint (peer, or listening address) and the "
			  "migration UUID, to join source and destination in PromQL; this end's QEMU version and, on a "
			  "destination, its multifd-clean-tls-termination (on, off, unknown).",
			  { "domain", "role", "endpoint", "uuid", "verdict", "possible", "outcome", "qemu_version",
			    "clean_tls_termination" } },
	[F_LAST_TIME] = { "mftrace_last_migration_timestamp_seconds",
			  T_GAUGE,
			  "seconds",
			  "Wall-clock time when the last migration of each domain and role ended.",
			  { "domain", "role" } },
	[F_TARGETS] = { "mftrace_targets", T_GAUGE, NULL, "QEMU processes traced now, by domain.", { "domain" } },
	[F_EVENTS] = { "mftrace_events", T_COUNTER, NULL, "Events the kernel side submitted to the ring buffer." },
	[F_LOST] = { "mftrace_events_lost", T_COUNTER, NULL,
		     "Events lost because the ring buffer was full: verdicts may be incomplete." },
	[F_UNTRACKED] = { "mftrace_sockets_untracked", T_COUNTER, NULL,
			  "Sockets the kernel side could not track (socket map full)." },
	[F_MALFORMED] = { "mftrace_events_malformed", T_COUNTER, NULL,
			  "Ring buffer records that user space rejected (wrong size)." },
	[F_PROBE] = { "mftrace_probe_attached",
		      T_GAUGE,
		      NULL,
		      "1 if the probe is attached (kernel-wide, or in every traced QEMU), else 0: a probe that "
		      "cannot attach is reported here, not fatal.",
		      { "probe", "mechanism" } },
	[F_BUILD] = { "mftrace_build",
		      T_INFO,
		      NULL,
		      "mftrace build information (revision: git describe at build time).",
		      { "version", "revision", "libbpf", "libmicrohttpd" } },
	[F_SCRAPE] = { "mftrace_exporter_scrape_duration_seconds",
		       T_HISTOGRAM,
		       "seconds",
		       "Time to render the exposition, by format (openmetrics or text).",
		       { "format" },
		       scrape_bounds,
		       N(scrape_bounds) },
	[F_HTTP] = { "mftrace_exporter_http_responses",
		     T_COUNTER,
		     NULL,
		     "HTTP responses the exporter sent, by status code.",
		     { "code" } },
	[F_DROPPED] = { "mftrace_exporter_series_dropped", T_COUNTER, NULL,
			"Updates lost because a metric family reached its series limit." },
	[F_EVICTED] = { "mftrace_exporter_domains_evicted", T_COUNTER, NULL,
			"Domains no longer traced that were forgotten, with their series, to keep the domain table bounded." },
	[F_RES_CAPACITY] = { "mftrace_resource_capacity",
			     T_GAUGE,
			     NULL,
			     "Capacity of each bounded table: targets, attach_statuses, socket_map, tls_session_map, "
			     "call_maps, thread_map (kernel), domain_labels, series (per metric family), http_connections, "
			     "http_connections_per_client.",
			     { "resource" } },
	[F_RES_USED] = { "mftrace_resource_used",
			 T_GAUGE,
			 NULL,
			 "Entries of each bounded table in use now (series: the fullest family; "
			 "http_connections_per_client: the client holding the most).",
			 { "resource" } },
	[F_RES_REFUSED] = { "mftrace_resource_refused",
			    T_COUNTER,
			    NULL,
			    "What could not be added because a bounded table was full (a QEMU not traced, a socket "
			    "untracked, a VM evicted, a connection closed, ...).",
			    { "resource" } },
	[F_HTTP_CLOSED] = { "mftrace_exporter_connections_closed",
			    T_COUNTER,
			    NULL,
			    "HTTP connections the exporter closed itself, by reason: deadline (no request answered within "
			    "--timeout of opening or of the previous answer) or client_share (one local user or address "
			    "holding its share of --max-connections already).",
			    { "reason" } },
	[F_TARGET_INFO] = { "mftrace_target",
			    T_INFO,
			    NULL,
			    "Each QEMU traced now: its domain, uuid (-uuid, else the migration UUID once seen), QEMU and "
			    "GnuTLS versions, machine type, -incoming transport (tcp, unix, defer, ...; empty on a QEMU "
			    "that is not a destination) and, on a destination, multifd-clean-tls-termination as read from "
			    "its command line or derived from its machine type and version (on, off, unknown).",
			    { "domain", "uuid", "qemu_version", "gnutls_version", "machine", "incoming",
			      "clean_tls_termination" } },
	[F_RELAXED] = { "mftrace_premature_tolerated_by_relaxed_eof",
			T_COUNTER,
			NULL,
			"Counterfactual: multifd channels received by a destination whose multifd-clean-tls-termination is "
			"off (or absent, QEMU < 10.0) that ended premature, woken by the peer's FIN, in a migration that "
			"completed. With the property on, each would have failed the migration.",
			{ "domain" } },
	[F_BPF_ENABLED] = { "mftrace_bpf_stats_enabled", T_GAUGE, NULL,
			    "kernel.bpf_stats_enabled: 1 if the kernel counts BPF program run time and runs." },
	[F_BPF_TIME] = { "mftrace_bpf_program_run_time_seconds",
			 T_COUNTER,
			 "seconds",
			 "Time spent in each of mftrace's BPF programs while the kernel counts it (kernel.bpf_stats_enabled, "
			 "or BPF_ENABLE_STATS); shown once anything was counted.",
			 { "program" } },
	[F_BPF_RUNS] = { "mftrace_bpf_program_runs",
			 T_COUNTER,
			 NULL,
			 "Runs of each of mftrace's BPF programs while the kernel counts them (kernel.bpf_stats_enabled, "
			 "or BPF_ENABLE_STATS); shown once anything was counted.",
			 { "program" } },
	[F_PROC_CPU] = { "process_cpu_seconds", T_COUNTER, "seconds",
			 "Total user and system CPU time spent in seconds." },
	[F_PROC_RSS] = { "process_resident_memory_bytes", T_GAUGE, "bytes", "Resident memory size in bytes." },
	[F_PROC_VSZ] = { "process_virtual_memory_bytes", T_GAUGE, "bytes", "Virtual memory size in bytes." },
	[F_PROC_FDS] = { "process_open_fds", T_GAUGE, NULL, "Number of open file descriptors." },
	[F_PROC_MAX_FDS] = { "process_max_fds", T_GAUGE, NULL, "Maximum number of open file descriptors." },
	[F_PROC_START] = { "process_start_time_seconds", T_GAUGE, "seconds",
			   "Start time of the process since unix epoch in seconds." },
};

struct series {
	char lv[MAX_LABELS][LV_LEN];
	double value;
	double sum;
	uint64_t count;
	uint64_t *buckets; /* histograms: n_bounds + 1 counts (the last is +Inf), not cumulative */
	uint32_t seen;     /* mft_metrics_set_probes: statuses folded in */
};

struct famstate {
	struct series *s;
	size_t n, cap;
};

struct vm {
	char name[LV_LEN];
	uint64_t used; /* m->clock when last active */
	int n_targets;
};

struct target {
	uint32_t pid;
	char vm[LV_LEN];
	/* mftrace_target_info */
	bool has_info;
	char uuid[40], qemu_version[LV_LEN], gnutls_version[LV_LEN], machine[LV_LEN], incoming[16];
	char clean_tls[16]; /* on, off, unknown; "" on a QEMU that is not a destination */
};

#define MAX_GONE 64 /* targets forgotten lately: a migration judged after its QEMU went still finds its versions */

struct mft_metrics {
	pthread_mutex_t lock;
	struct famstate f[F__MAX];
	struct vm vms[MFT_METRICS_MAX_VMS];
	int n_vms;
	struct target targets[MAX_TARGETS];
	int n_targets;
	uint64_t clock;
	uint64_t vm_overflow; /* names given MFT_METRICS_OVERFLOW_VM: the table was full of traced VMs */
	struct target gone[MAX_GONE];
	unsigned n_gone;
};

static int n_labels(const struct family *fd)
{
	int n = 0;

	while (n < MAX_LABELS && fd->labels[n])
		n++;
	return n;
}

static int label_index(const struct family *fd, const char *name)
{
	for (int i = 0; i < n_labels(fd); i++)
		if (!strcmp(fd->labels[i], name))
			return i;
	return -1;
}

static struct series *find(struct famstate *fs, const char *const *lv, int nkey)
{
	for (size_t i = 0; i < fs->n; i++) {
		int k = 0;

		while (k < nkey && !strncmp(fs->s[i].lv[k], lv[k], LV_LEN - 1))
			k++;
		if (k == nkey)
			return &fs->s[i];
	}
	return NULL;
}

static void set_labels(struct series *s, const char *const *lv, int n)
{
	for (int k = 0; k < n; k++)
		snprintf(s->lv[k], LV_LEN, "%s", lv[k]);
}

/* The series with these label values (the first nkey decide), created at zero if new.
 * NULL when the family is full (counted) or memory is short. */
static struct series *series_nkey(struct mft_metrics *m, int fam, const char *const *lv, int nkey)
{
	const struct family *fd = &families[fam];
	struct famstate *fs = &m->f[fam];
	struct series *s = find(fs, lv, nkey);

	if (s)
		return s;
	if (fs->n == MFT_METRICS_MAX_SERIES)
		goto dropped;
	if (fs->n == fs->cap) {
		size_t cap = fs->cap ? fs->cap * 2 : 8;
		struct series *ns = realloc(fs->s, cap * sizeof(*ns));

		if (!ns)
			goto dropped;
		fs->s = ns;
		fs->cap = cap;
	}
	s = &fs->s[fs->n];
	memset(s, 0, sizeof(*s));
	if (fd->type == T_HISTOGRAM) {
		s->buckets = calloc((size_t)fd->n_bounds + 1, sizeof(*s->buckets));
		if (!s->buckets)
			goto dropped;
	}
	set_labels(s, lv, n_labels(fd));
	fs->n++;
	return s;
dropped:
	if (m->f[F_DROPPED].n)
		m->f[F_DROPPED].s[0].value++;
	return NULL;
}

static struct series *series(struct mft_metrics *m, int fam, const char *const *lv)
{
	return series_nkey(m, fam, lv, n_labels(&families[fam]));
}

static void inc(struct mft_metrics *m, int fam, const char *const *lv)
{
	struct series *s = series(m, fam, lv);

	if (s)
		s->value++;
}

static void observe(struct mft_metrics *m, int fam, const char *const *lv, double x)
{
	const struct family *fd = &families[fam];
	struct series *s = series(m, fam, lv);
	int i = 0;

	if (!s)
		return;
	while (i < fd->n_bounds && x > fd->bounds[i])
		i++;
	s->buckets[i]++;
	s->sum += x;
	s->count++;
}

static void observe_margin(struct mft_metrics *m, int fam, const char *role, int64_t ns)
{
	const char *lv[] = { role, ns < 0 ? "reversed" : "expected" };

	if (ns == MFT_NO_MARGIN)
		return;
	observe(m, fam, lv, (double)(ns < 0 ? -ns : ns) / 1e9);
}

static void clear_family(struct mft_metrics *m, int fam)
{
	struct famstate *fs = &m->f[fam];

	for (size_t i = 0; i < fs->n; i++)
		free(fs->s[i].buckets);
	fs->n = 0;
}

/* Forget every series of one VM. */
static void drop_vm(struct mft_metrics *m, const char *vm)
{
	for (int fam = 0; fam < F__MAX; fam++) {
		struct famstate *fs = &m->f[fam];
		int k = label_index(&families[fam], "domain");
		size_t j = 0;

		if (k < 0)
			continue;
		for (size_t i = 0; i < fs->n; i++) {
			if (!strcmp(fs->s[i].lv[k], vm)) {
				free(fs->s[i].buckets);
				continue;
			}
			fs->s[j++] = fs->s[i];
		}
		fs->n = j;
	}
}

/* Length of a valid UTF-8 sequence of a printable character at s, else 0. */
static int utf8_len(const unsigned char *s)
{
	int n;

	if (s[0] >= 0x20 && s[0] < 0x7f)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (int i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) || (s[0] == 0xf0 && s[1] < 0x90) ||
	    (s[0] == 0xf4 && s[1] >= 0x90))
		return 0; /* overlong, surrogate, or beyond U+10FFFF */
	return n;
}

/* A label value from untrusted bytes: valid UTF-8, no control characters (each bad
 * byte becomes '_'), at most LV_LEN - 1 bytes, cut on a character boundary. */
static void sanitize(char *out, const char *in)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;

	while (*s) {
		int n = utf8_len(s);

		if (o + (n ? n : 1) > LV_LEN - 1)
			break;
		if (!n) {
			out[o++] = '_';
			s++;
			continue;
		}
		memcpy(out + o, s, (size_t)n);
		o += (size_t)n;
		s += n;
	}
	out[o] = '\0';
}

/* The vm label for a process name: known VMs are refreshed, new ones take a free slot,
 * or the slot of the least recently active VM no longer traced. */
static void vm_label(struct mft_metrics *m, const char *raw, char *out)
{
	struct vm *v = NULL;

	sanitize(out, raw && raw[0] ? raw : "unknown");
	if (!out[0])
		snprintf(out, LV_LEN, "unknown");
	for (int i = 0; i < m->n_vms && !v; i++)
		if (!strcmp(m->vms[i].name, out))
			v = &m->vms[i];
	if (!v && m->n_vms < MFT_METRICS_MAX_VMS) {
		v = &m->vms[m->n_vms++];
		memset(v, 0, sizeof(*v));
		snprintf(v->name, LV_LEN, "%s", out);
	}
	if (!v) {
		for (int i = 0; i < m->n_vms; i++)
			if (!m->vms[i].n_targets && (!v || m->vms[i].used < v->used))
				v = &m->vms[i];
		if (!v) {
			snprintf(out, LV_LEN, "%s", MFT_METRICS_OVERFLOW_VM);
			m->vm_overflow++;
			return;
		}
		drop_vm(m, v->name);
		m->f[F_EVICTED].s[0].value++;
		memset(v, 0, sizeof(*v));
		snprintf(v->name, LV_LEN, "%s", out);
	}
	v->used = ++m->clock;
}

static struct vm *vm_get(struct mft_metrics *m, const char *name)
{
	for (int i = 0; i < m->n_vms; i++)
		if (!strcmp(m->vms[i].name, name))
			return &m->vms[i];
	return NULL;
}

/* mft_migration.outcome without its numbers: a bounded set */
static const char *outcome_label(const char *o)
{
	static const char *const known[] = { "completed",          "failed",        "cancelled",
					     "destination-failed", "source-failed", "unknown" };

	for (int i = 0; i < N(known); i++)
		if (!strcmp(o, known[i]))
			return known[i];
	if (!strncmp(o, "exited(", 7))
		return "exited";
	if (!strncmp(o, "killed(", 7))
		return "killed";
	return "other";
}

/* The verdict label is a closed set (the six verdicts, or undecided); what an undecided
 * one may still be goes in the possible label ("" on a decided one: no label). */
static const char *verdict_label(int kind, unsigned possible, char *pos, size_t len)
{
	pos[0] = '\0';
	if (kind >= 0 && kind < MFT_V__MAX)
		return mft_vkind_name(kind);
	if (possible)
		mft_possible_str(possible, pos, len);
	return "undecided";
}

struct mft_metrics *mft_metrics_new(const struct mft_metrics_build *b)
{
	struct mft_metrics *m = calloc(1, sizeof(*m));
	static const int plain[] = { F_EVENTS,   F_LOST,         F_UNTRACKED, F_MALFORMED, F_DROPPED,
				     F_EVICTED,  F_BPF_ENABLED,  F_PROC_CPU,  F_PROC_RSS,  F_PROC_VSZ,
				     F_PROC_FDS, F_PROC_MAX_FDS, F_PROC_START };
	const char *none[1] = { NULL };

	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	/* the unlabelled counters exist from the start, at 0 */
	for (int i = 0; i < N(plain); i++)
		if (!series(m, plain[i], none)) {
			mft_metrics_free(m);
			return NULL;
		}
	/* the two reasons a connection is closed exist from the start, at 0 */
	series(m, F_HTTP_CLOSED, (const char *[]){ "deadline" });
	series(m, F_HTTP_CLOSED, (const char *[]){ "client_share" });
	const char *lv[] = { b->version ? b->version : "", b->revision && b->revision[0] ? b->revision : "unknown",
			     b->libbpf ? b->libbpf : "", b->libmicrohttpd ? b->libmicrohttpd : "" };
	struct series *s = series(m, F_BUILD, lv);

	if (s)
		s->value = 1;
	return m;
}

void mft_metrics_free(struct mft_metrics *m)
{
	if (!m)
		return;
	for (int i = 0; i < F__MAX; i++) {
		clear_family(m, i);
		free(m->f[i].s);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static void channel(struct mft_metrics *m, const char *role, const char *vm, const struct target *t,
		    const struct mft_chan *ch)
{
	const struct mft_verdict *v = &ch->verdict;
	char possible[64];
	const char *verdict = verdict_label(v->kind, v->possible, possible, sizeof(possible));

	inc(m, F_CHANNELS, (const char *[]){ role, verdict, possible, vm });
	if (v->kind == MFT_V_PREMATURE) {
		inc(m, F_PREMATURE, (const char *[]){ role, mft_severity_name(v->severity), vm });
		/* tolerated only because this destination relaxes EOF: with the property on, the
		 * peer's FIN before close_notify is an error (one woken by our own shutdown is not) */
		if (ch->role == MFT_ROLE_DEST && v->severity == MFT_SEV_TOLERATED && t &&
		    !strcmp(t->clean_tls, "off") && !(v->woken_by && !strcmp(v->woken_by, "local-shutdown")))
			inc(m, F_RELAXED, (const char *[]){ vm });
	}
	observe_margin(m, F_FIN_TO_FINAL_READ, role, v->fin_to_final_read);
	observe_margin(m, F_FIN_TO_LOCAL_SHUTDOWN, role, v->fin_to_local_shutdown);
	observe_margin(m, F_BYE_TO_SHUTDOWN, role, v->bye_to_shutdown);
	observe_margin(m, F_SYNC_TO_SHUTDOWN, role, v->last_sync_to_shutdown);
	observe_margin(m, F_SYNC_TO_FIN, role, v->last_sync_to_fin);
	observe(m, F_RX_BYTES, (const char *[]){ role }, (double)ch->evidence.rx_bytes);
}

static struct target *target_find(struct mft_metrics *m, uint32_t pid)
{
	for (int i = 0; i < m->n_targets; i++)
		if (m->targets[i].pid == pid)
			return &m->targets[i];
	return NULL;
}

/* A traced target, else one forgotten lately (the newest of that pid). */
static struct target *target_or_gone(struct mft_metrics *m, uint32_t pid)
{
	struct target *t = target_find(m, pid);

	for (unsigned i = 0; !t && i < m->n_gone && i < MAX_GONE; i++) {
		struct target *g = &m->gone[(m->n_gone - 1 - i) % MAX_GONE];

		if (g->pid == pid)
			t = g;
	}
	return t;
}

static void rebuild_target_info(struct mft_metrics *m)
{
	clear_family(m, F_TARGET_INFO);
	for (int i = 0; i < m->n_targets; i++) {
		const struct target *t = &m->targets[i];
		const char *lv[] = { t->vm,      t->uuid,     t->qemu_version, t->gnutls_version,
				     t->machine, t->incoming, t->clean_tls };
		struct series *s;

		if (!t->has_info)
			continue;
		if ((s = series(m, F_TARGET_INFO, lv)))
			s->value = 1;
	}
}

void mft_metrics_migration(struct mft_metrics *m, const char *vm_name, const struct mft_migration *mig, double now_s)
{
	const struct mft_mig_verdict *mv = &mig->verdict;
	const char *role = mft_role_name(mig->role), *outcome = outcome_label(mig->outcome);
	char vm[LV_LEN], possible[64], endpoint[LV_LEN], uuid[40] = "";
	const char *verdict = verdict_label(mv->kind, mv->possible, possible, sizeof(possible));
	struct target *t;
	struct series *s;
	sanitize(endpoint, mig->endpoint);
	if (mig->has_uuid)
		mft_fmt_uuid(uuid, sizeof(uuid), mig->uuid);
	pthread_mutex_lock(&m->lock);
	vm_label(m, vm_name, vm);
	t = target_or_gone(m, mig->pid);
	if (t && uuid[0] && !t->uuid[0]) { /* no -uuid: the migration's, once seen */
		snprintf(t->uuid, sizeof(t->uuid), "%s", uuid);
		rebuild_target_info(m);
	}
	inc(m, F_MIGRATIONS, (const char *[]){ role, verdict, possible, vm });
	inc(m, F_OUTCOMES, (const char *[]){ role, outcome, vm });
	if (mv->flagged)
		inc(m, F_FLAGGED, (const char *[]){ role, vm });
	if (mv->lucky)
		inc(m, F_LUCKY, (const char *[]){ role, vm });
	for (size_t i = 0; i < mig->n_chans; i++)
		if (mig->chans[i] && mig->chans[i]->kind != MFT_KIND_MAIN)
			channel(m, role, vm, t, mig->chans[i]);
	/* one info series per domain and role: found by those two, the rest replaced */
	const char *info[] = { vm,
			       role,
			       endpoint,
			       uuid,
			       verdict,
			       possible,
			       outcome,
			       t ? t->qemu_version : "",
			       t && mig->role == MFT_ROLE_DEST ? t->clean_tls : "" };

	s = series_nkey(m, F_LAST_INFO, info, 2);
	if (s) {
		set_labels(s, info, N(info));
		s->value = 1;
	}
	s = series(m, F_LAST_TIME, (const char *[]){ vm, role });
	if (s)
		s->value = now_s;
	pthread_mutex_unlock(&m->lock);
}

static void rebuild_targets(struct mft_metrics *m)
{
	clear_family(m, F_TARGETS);
	for (int i = 0; i < m->n_targets; i++) {
		struct series *s = series(m, F_TARGETS, (const char *[]){ m->targets[i].vm });

		if (s)
			s->value++;
	}
}

/* The counters of a VM exist at 0 before their first increment, for every decided
 * verdict: a series that appears at 1 is an increase that increase() cannot see, and
 * the first migration into a host would escape the alerts and the dashboard. */
static void preinit_vm(struct mft_metrics *m, const char *vm)
{
	for (int r = MFT_ROLE_SOURCE; r <= MFT_ROLE_DEST; r++) {
		const char *role = mft_role_name(r);

		for (int k = 0; k < MFT_V__MAX; k++) {
			series(m, F_MIGRATIONS, (const char *[]){ role, mft_vkind_name(k), "", vm });
			series(m, F_CHANNELS, (const char *[]){ role, mft_vkind_name(k), "", vm });
		}
		/* what a source traced alone concludes (verdict.c): clean|premature|unread,
		 * premature|unread */
		for (int k = 0; r == MFT_ROLE_SOURCE && k < 2; k++) {
			const char *pos = k ? "premature|unread" : "clean|premature|unread";

			series(m, F_MIGRATIONS, (const char *[]){ role, "undecided", pos, vm });
			series(m, F_CHANNELS, (const char *[]){ role, "undecided", pos, vm });
		}
		series(m, F_PREMATURE, (const char *[]){ role, "fatal", vm });
		series(m, F_PREMATURE, (const char *[]){ role, "tolerated", vm });
		series(m, F_FLAGGED, (const char *[]){ role, vm });
		series(m, F_OUTCOMES, (const char *[]){ role, "completed", vm });
		series(m, F_OUTCOMES, (const char *[]){ role, "failed", vm });
	}
	series(m, F_RELAXED, (const char *[]){ vm });
}

void mft_metrics_target(struct mft_metrics *m, uint32_t pid, const char *vm_name, bool added)
{
	struct target *t;
	struct vm *v;

	pthread_mutex_lock(&m->lock);
	t = target_find(m, pid);
	if (added && !t && m->n_targets < MAX_TARGETS) {
		t = &m->targets[m->n_targets++];
		memset(t, 0, sizeof(*t));
		t->pid = pid;
		vm_label(m, vm_name, t->vm);
		v = vm_get(m, t->vm);
		if (v)
			v->n_targets++;
		preinit_vm(m, t->vm);
	} else if (!added && t) {
		v = vm_get(m, t->vm);
		if (v && v->n_targets > 0) {
			v->n_targets--;
			v->used = ++m->clock;
		}
		m->gone[m->n_gone++ % MAX_GONE] = *t;
		*t = m->targets[--m->n_targets];
	}
	rebuild_targets(m);
	rebuild_target_info(m);
	pthread_mutex_unlock(&m->lock);
}

void mft_metrics_target_info(struct mft_metrics *m, const struct mft_procinfo *pi)
{
	struct target *t;

	pthread_mutex_lock(&m->lock);
	t = target_find(m, pi->pid);
	if (t) {
		t->has_info = true;
		sanitize(t->qemu_version, pi->qemu_version);
		sanitize(t->gnutls_version, pi->gnutls_version);
		sanitize(t->machine, pi->args.machine);
		snprintf(t->uuid, sizeof(t->uuid), "%s", pi->args.uuid); /* hex and dashes only */
		snprintf(t->incoming, sizeof(t->incoming), "%s", pi->args.incoming);
		snprintf(t->clean_tls, sizeof(t->clean_tls), "%s",
			 pi->incoming ? mft_clean_tls_termination(&pi->args, pi->qemu_version, NULL, 0) : "");
		rebuild_target_info(m);
	}
	pthread_mutex_unlock(&m->lock);
}

void mft_metrics_set_process(struct mft_metrics *m, const struct mft_metrics_process *p)
{
	pthread_mutex_lock(&m->lock);
	m->f[F_PROC_CPU].s[0].value = p->cpu_seconds;
	m->f[F_PROC_RSS].s[0].value = p->resident_bytes;
	m->f[F_PROC_VSZ].s[0].value = p->virtual_bytes;
	m->f[F_PROC_FDS].s[0].value = p->open_fds;
	m->f[F_PROC_MAX_FDS].s[0].value = p->max_fds;
	m->f[F_PROC_START].s[0].value = p->start_time_seconds;
	pthread_mutex_unlock(&m->lock);
}

void mft_metrics_set_bpf(struct mft_metrics *m, bool stats_enabled, const struct mft_prog_stat *st, size_t n)
{
	pthread_mutex_lock(&m->lock);
	bool counted = stats_enabled;

	/* BPF_ENABLE_STATS (a descriptor held open) counts too, and the sysctl does not show
	 * it: once anything was counted the counters stay, as counters must */
	for (size_t i = 0; i < n; i++)
		counted |= st[i].run_cnt != 0;
	m->f[F_BPF_ENABLED].s[0].value = stats_enabled;
	clear_family(m, F_BPF_TIME);
	clear_family(m, F_BPF_RUNS);
	for (size_t i = 0; counted && i < n; i++) {
		char name[LV_LEN];
		struct series *s;

		sanitize(name, st[i].name);
		if ((s = series(m, F_BPF_TIME, (const char *[]){ name })))
			s->value = (double)st[i].run_time_ns / 1e9;
		if ((s = series(m, F_BPF_RUNS, (const char *[]){ name })))
			s->value = (double)st[i].run_cnt;
	}
	pthread_mutex_unlock(&m->lock);
}

void mft_metrics_set_self(struct mft_metrics *m, const struct mft_metrics_self *st)
{
	pthread_mutex_lock(&m->lock);
	m->f[F_EVENTS].s[0].value = (double)st->events;
	m->f[F_LOST].s[0].value = (double)st->lost;
	m->f[F_UNTRACKED].s[0].value = (double)st->untracked;
	m->f[F_MALFORMED].s[0].value = (double)st->malformed;
	pthread_mutex_unlock(&m->lock);
}

/* A later status of the same pid, probe and mechanism? A target's statuses are added
 * together, so only the run of its pid is looked at: linear in the statuses overall. */
static bool superseded(const struct mft_attach_status *st, size_t n, size_t i)
{
	for (size_t j = i + 1; j < n && st[j].pid == st[i].pid; j++)
		if (!strcmp(st[j].what, st[i].what) && st[j].mech == st[i].mech)
			return true;
	return false;
}

void mft_metrics_set_probes(struct mft_metrics *m, const struct mft_attach_status *st, size_t n)
{
	pthread_mutex_lock(&m->lock);
	clear_family(m, F_PROBE);
	for (size_t i = 0; i < n; i++) {
		struct series *s;

		if ((st[i].pid && !target_find(m, st[i].pid)) || superseded(st, n, i))
			continue;
		s = series(m, F_PROBE, (const char *[]){ st[i].what, mft_mech_name(st[i].mech) });
		if (s)
			s->value = (s->seen++ ? s->value != 0 : true) && st[i].ok;
	}
	pthread_mutex_unlock(&m->lock);
}

static void set_limit(struct mft_metrics *m, const char *resource, double used, double capacity, double refused)
{
	const char *lv[] = { resource };
	struct series *s;

	if ((s = series(m, F_RES_CAPACITY, lv)))
		s->value = capacity;
	if ((s = series(m, F_RES_USED, lv)))
		s->value = used;
	if ((s = series(m, F_RES_REFUSED, lv)))
		s->value = refused;
}

void mft_metrics_set_limits(struct mft_metrics *m, const struct mft_limit *l, size_t n)
{
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < n; i++)
		set_limit(m, l[i].resource, (double)l[i].used, (double)l[i].capacity, (double)l[i].refused);
	pthread_mutex_unlock(&m->lock);
}

/* The registry's own bounds, as of now (under the lock). */
static void own_limits(struct mft_metrics *m)
{
	size_t fullest = 0;

	for (int i = 0; i < F__MAX; i++)
		if (m->f[i].n > fullest)
			fullest = m->f[i].n;
	set_limit(m, "domain_labels", m->n_vms, MFT_METRICS_MAX_VMS, m->f[F_EVICTED].s[0].value + m->vm_overflow);
	set_limit(m, "series", (double)fullest, MFT_METRICS_MAX_SERIES, m->f[F_DROPPED].s[0].value);
}

void mft_metrics_scrape_done(struct mft_metrics *m, bool openmetrics, double seconds)
{
	pthread_mutex_lock(&m->lock);
	observe(m, F_SCRAPE, (const char *[]){ openmetrics ? "openmetrics" : "text" }, seconds);
	pthread_mutex_unlock(&m->lock);
}

void mft_metrics_http_closed(struct mft_metrics *m, const char *reason)
{
	pthread_mutex_lock(&m->lock);
	inc(m, F_HTTP_CLOSED, (const char *[]){ reason });
	pthread_mutex_unlock(&m->lock);
}

void mft_metrics_http_response(struct mft_metrics *m, unsigned int code)
{
	char c[12];

	snprintf(c, sizeof(c), "%u", code);
	pthread_mutex_lock(&m->lock);
	inc(m, F_HTTP, (const char *[]){ c });
	pthread_mutex_unlock(&m->lock);
}

/* ---- content negotiation ---- */

static bool token_is(const char *s, size_t n, const char *word)
{
	return n == strlen(word) && !strncasecmp(s, word, n);
}

static void trim(const char **s, size_t *n)
{
	while (*n && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* One media range of an Accept header ("type/sub;q=0.5;version=1.0.0"): raise the best
 * quality seen for OpenMetrics or for the text format. */
static void media_range(const char *s, size_t n, double *om, double *text)
{
	const char *type = s;
	size_t semi = 0, tl;
	double q = 1;
	bool version_ok = true;

	while (semi < n && s[semi] != ';')
		semi++;
	tl = semi;
	trim(&type, &tl);
	for (size_t i = semi; i < n;) { /* s[i] is a ';' */
		const char *p = s + i + 1;
		size_t pl = 0;
		char val[16];

		while (i + 1 + pl < n && p[pl] != ';')
			pl++;
		i += 1 + pl;
		trim(&p, &pl);
		if (pl > 2 && !strncasecmp(p, "q=", 2)) {
			char *end;

			snprintf(val, sizeof(val), "%.*s", (int)(pl - 2), p + 2);
			q = strtod(val, &end);
			if (end == val || *end || !(q >= 0 && q <= 1))
				q = 0;
		} else if (pl > 8 && !strncasecmp(p, "version=", 8)) {
			version_ok = token_is(p + 8, pl - 8, "1.0.0") || token_is(p + 8, pl - 8, "0.0.1");
		}
	}
	if (token_is(type, tl, "application/openmetrics-text")) {
		if (version_ok && q > *om)
			*om = q;
	} else if (token_is(type, tl, "text/plain") || token_is(type, tl, "text/*") || token_is(type, tl, "*/*")) {
		if (q > *text)
			*text = q;
	}
}

bool mft_metrics_wants_openmetrics(const char *accept)
{
	double om = 0, text = 0;

	if (!accept)
		return false;
	while (*accept) {
		size_t n = strcspn(accept, ",");

		media_range(accept, n, &om, &text);
		accept += n;
		if (*accept)
			accept++;
	}
	return om > 0 && om >= text;
}

const char *mft_metrics_content_type(bool openmetrics)
{
	return openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
			   : "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- rendering ---- */

/* HELP text and label values: backslash and newline escaped everywhere; the double
 * quote in label values, and in OpenMetrics HELP too. */
static void put_escaped(FILE *f, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '"' && quote)
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

/* A sample value or bucket bound: integers as such, others in the shortest of %.15g,
 * %.16g and %.17g that reads back exactly. No libm: the unit tests link without it. */
static void fmt_value(char *buf, size_t len, double v)
{
	if (v != v) {
		snprintf(buf, len, "NaN");
	} else if (v > 1.7976931348623157e308 || v < -1.7976931348623157e308) {
		snprintf(buf, len, "%s", v > 0 ? "+Inf" : "-Inf");
	} else if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v) {
		snprintf(buf, len, "%lld", (long long)v);
	} else {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(buf, len, "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
	}
}

static void put_value(FILE *f, double v)
{
	char buf[40];

	fmt_value(buf, sizeof(buf), v);
	fputs(buf, f);
}

/* {a="x",b="y"[,le="..."]}; labels with an empty value are left out (Prometheus reads
 * both the same way). */
static void put_labels(FILE *f, const struct family *fd, const struct series *s, const char *le)
{
	bool any = false;

	for (int k = 0; k < n_labels(fd); k++) {
		if (!s->lv[k][0])
			continue;
		fprintf(f, "%s%s=\"", any ? "," : "{", fd->labels[k]);
		put_escaped(f, s->lv[k], true);
		fputc('"', f);
		any = true;
	}
	if (le) {
		fprintf(f, "%sle=\"%s\"", any ? "," : "{", le);
		any = true;
	}
	if (any)
		fputc('}', f);
	fputc(' ', f);
}

static void render_family(FILE *f, const struct family *fd, const struct famstate *fs, bool om)
{
	static const char *const tnames[] = { "counter", "gauge", "histogram", "info" };
	const char *suffix = fd->type == T_COUNTER ? "_total" : fd->type == T_INFO ? "_info" : "";

	/* metadata: OpenMetrics names the family without _total/_info; 0.0.4 names the
	 * sample, and has no info type */
	fprintf(f, "# HELP %s%s ", fd->name, om ? "" : suffix);
	put_escaped(f, fd->help, om);
	fprintf(f, "\n# TYPE %s%s %s\n", fd->name, om ? "" : suffix,
		fd->type == T_INFO && !om ? "gauge" : tnames[fd->type]);
	if (om && fd->unit)
		fprintf(f, "# UNIT %s %s\n", fd->name, fd->unit);
	for (size_t i = 0; i < fs->n; i++) {
		const struct series *s = &fs->s[i];

		if (fd->type != T_HISTOGRAM) {
			fprintf(f, "%s%s", fd->name, suffix);
			put_labels(f, fd, s, NULL);
			put_value(f, s->value);
			fputc('\n', f);
			continue;
		}
		uint64_t cum = 0;

		for (int b = 0; b <= fd->n_bounds; b++) {
			char le[40] = "+Inf";

			if (b < fd->n_bounds)
				fmt_value(le, sizeof(le), fd->bounds[b]);
			cum += s->buckets[b];
			fprintf(f, "%s_bucket", fd->name);
			put_labels(f, fd, s, le);
			fprintf(f, "%llu\n", (unsigned long long)cum);
		}
		fprintf(f, "%s_sum", fd->name);
		put_labels(f, fd, s, NULL);
		put_value(f, s->sum);
		fprintf(f, "\n%s_count", fd->name);
		put_labels(f, fd, s, NULL);
		fprintf(f, "%llu\n", (unsigned long long)s->count);
	}
}

int mft_metrics_render(struct mft_metrics *m, bool openmetrics, char **buf, size_t *len)
{
	FILE *f;
	int err;

	*buf = NULL;
	*len = 0;
	f = open_memstream(buf, len);
	if (!f)
		return -1;
	pthread_mutex_lock(&m->lock);
	own_limits(m);
	for (int i = 0; i < F__MAX; i++)
		render_family(f, &families[i], &m->f[i], openmetrics);
	pthread_mutex_unlock(&m->lock);
	if (openmetrics)
		fputs("# EOF\n", f);
	err = ferror(f);
	if (fclose(f) || err) {
		free(*buf);
		*buf = NULL;
		*len = 0;
		return -1;
	}
	return 0;
}
