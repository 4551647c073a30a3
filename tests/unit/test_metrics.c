/* The exporter's metric registry: updates from migrations, targets and probes, and the
 * two renderings (text 0.0.4 and OpenMetrics 1.0.0), read back line by line. */
#include <stdlib.h>
#include "unit.h"
#include "present/metrics.h"

#define MS 1000000ll

static const struct mft_metrics_build build = { "1.2.3", "v1.1", "0.9.75", "v1.2.3-4-gabcdef" };

static char *render(struct mft_metrics *m, bool om)
{
	char *buf;
	size_t len;

	if (mft_metrics_render(m, om, &buf, &len))
		return NULL;
	if (strlen(buf) != len) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Is `line` a whole line of text? */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, line, n) && (p[n] == '\n' || !p[n]))
			return true;
	return false;
}

static int count_prefix(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, prefix, strlen(prefix)))
			n++;
	return n;
}

/* A migration with up to 8 multifd channels and a main channel. */
struct fake {
	struct mft_migration mig;
	struct mft_chan ch[9];
	struct mft_chan *chp[9];
};

static void no_margins(struct mft_verdict *v)
{
	v->fin_to_final_read = v->fin_to_local_shutdown = v->last_read_to_fin = MFT_NO_MARGIN;
	v->bye_to_shutdown = v->shutdown_to_close = v->peer_shutdown_to_final_read = MFT_NO_MARGIN;
	v->last_sync_to_shutdown = v->last_sync_to_fin = MFT_NO_MARGIN;
}

static void fake_init(struct fake *f, int role, const char *outcome, const int *kinds, int n)
{
	memset(f, 0, sizeof(*f));
	f->mig.role = role;
	snprintf(f->mig.outcome, sizeof(f->mig.outcome), "%s", outcome);
	snprintf(f->mig.endpoint, sizeof(f->mig.endpoint), "127.0.0.1:4444");
	f->mig.verdict.kind = -1;
	f->mig.chans = f->chp;
	f->ch[0].kind = MFT_KIND_MAIN; /* never counted */
	f->ch[0].verdict.kind = MFT_V_UNREAD;
	no_margins(&f->ch[0].verdict);
	for (int i = 0; i <= n; i++) {
		f->chp[i] = &f->ch[i];
		f->ch[i].role = role;
		if (!i)
			continue;
		f->ch[i].kind = MFT_KIND_MULTIFD;
		f->ch[i].verdict.kind = kinds[i - 1];
		f->ch[i].verdict.possible = kinds[i - 1] >= 0 ? MFT_VBIT(kinds[i - 1]) : 0;
		no_margins(&f->ch[i].verdict);
	}
	f->mig.n_chans = (size_t)n + 1;
}

static void render_text_empty(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	char *t = render(m, false);

	CHECK(t);
	CHECK(has_line(t, "# TYPE mftrace_migrations_total counter"));
	CHECK(has_line(t, "# TYPE mftrace_channel_fin_to_final_read_seconds histogram"));
	CHECK(has_line(t, "# TYPE mftrace_build_info gauge"));
	CHECK(has_line(
		t,
		"mftrace_build_info{version=\"1.2.3\",revision=\"v1.2.3-4-gabcdef\",libbpf=\"v1.1\",libmicrohttpd=\"0.9.75\"} 1"));
	CHECK(has_line(t, "mftrace_events_lost_total 0"));
	CHECK(has_line(t, "mftrace_sockets_untracked_total 0"));
	CHECK(!strstr(t, "# EOF"));
	CHECK(!strstr(t, "# UNIT"));
	/* no series yet: a labelled family shows its metadata only */
	CHECK_INT(count_prefix(t, "mftrace_migrations_total"), 0);
	free(t);
	mft_metrics_free(m);
}

static void render_openmetrics_empty(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	char *t = render(m, true);
	size_t n;

	CHECK(t);
	n = strlen(t);
	CHECK(n > 6 && !strcmp(t + n - 6, "# EOF\n"));
	CHECK(strstr(t, "# EOF") == t + n - 6);
	CHECK(has_line(t, "# TYPE mftrace_migrations counter"));
	CHECK(!strstr(t, "# TYPE mftrace_migrations_total"));
	CHECK(has_line(t, "# TYPE mftrace_build info"));
	CHECK(has_line(
		t,
		"mftrace_build_info{version=\"1.2.3\",revision=\"v1.2.3-4-gabcdef\",libbpf=\"v1.1\",libmicrohttpd=\"0.9.75\"} 1"));
	CHECK(has_line(t, "# UNIT mftrace_channel_fin_to_final_read_seconds seconds"));
	CHECK(has_line(t, "# UNIT mftrace_channel_received_bytes bytes"));
	CHECK(has_line(t, "mftrace_events_lost_total 0"));
	free(t);
	mft_metrics_free(m);
}

static void migration_counters(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	const int kinds[] = { MFT_V_PREMATURE, MFT_V_PREMATURE, MFT_V_UNREAD, MFT_V_CLEAN };
	struct fake f;
	char *t;

	fake_init(&f, MFT_ROLE_DEST, "exited(1)", kinds, 4);
	f.ch[1].verdict.severity = f.ch[2].verdict.severity = MFT_SEV_FATAL;
	f.mig.verdict.kind = MFT_V_PREMATURE;
	f.mig.verdict.possible = MFT_VBIT(MFT_V_PREMATURE);
	f.mig.verdict.flagged = true;
	mft_metrics_migration(m, "vm1", &f.mig, 1000);
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(t, "mftrace_migrations_total{role=\"destination\",verdict=\"premature\",domain=\"vm1\"} 1"));
	CHECK(has_line(t,
		       "mftrace_migration_outcomes_total{role=\"destination\",outcome=\"exited\",domain=\"vm1\"} 1"));
	CHECK(has_line(t, "mftrace_flagged_migrations_total{role=\"destination\",domain=\"vm1\"} 1"));
	CHECK(has_line(t, "mftrace_channels_total{role=\"destination\",verdict=\"premature\",domain=\"vm1\"} 2"));
	CHECK(has_line(t, "mftrace_channels_total{role=\"destination\",verdict=\"unread\",domain=\"vm1\"} 1"));
	CHECK(has_line(t, "mftrace_channels_total{role=\"destination\",verdict=\"clean\",domain=\"vm1\"} 1"));
	CHECK_INT(count_prefix(t, "mftrace_channels_total{"), 3); /* the main channel is not counted */
	CHECK(has_line(t,
		       "mftrace_premature_terminations_total{role=\"destination\",impact=\"fatal\",domain=\"vm1\"} 2"));
	CHECK_INT(count_prefix(t, "mftrace_migrations_survived_by_luck_total{"), 0);
	CHECK(has_line(t, "mftrace_last_migration_info{domain=\"vm1\",role=\"destination\",endpoint=\"127.0.0.1:4444\","
			  "verdict=\"premature\",outcome=\"exited\"} 1"));
	CHECK(has_line(t, "mftrace_last_migration_timestamp_seconds{domain=\"vm1\",role=\"destination\"} 1000"));
	free(t);
	/* a second one adds up */
	mft_metrics_migration(m, "vm1", &f.mig, 1001.5);
	t = render(m, true);
	CHECK(t);
	CHECK(has_line(t, "mftrace_migrations_total{role=\"destination\",verdict=\"premature\",domain=\"vm1\"} 2"));
	CHECK(has_line(t, "mftrace_channels_total{role=\"destination\",verdict=\"premature\",domain=\"vm1\"} 4"));
	CHECK(has_line(t, "mftrace_last_migration_timestamp_seconds{domain=\"vm1\",role=\"destination\"} 1001.5"));
	free(t);
	mft_metrics_free(m);
}

static void undecided_source_verdict(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	const int kinds[] = { -1, -1 };
	struct fake f;
	char *t;

	fake_init(&f, MFT_ROLE_SOURCE, "completed", kinds, 2);
	f.ch[1].verdict.possible = f.ch[2].verdict.possible = MFT_VBIT(MFT_V_PREMATURE) | MFT_VBIT(MFT_V_UNREAD);
	f.mig.verdict.possible = MFT_VBIT(MFT_V_PREMATURE) | MFT_VBIT(MFT_V_UNREAD);
	mft_metrics_migration(m, "vm1", &f.mig, 0);
	t = render(m, false);
	CHECK(t);
	/* the verdict label is a closed set: a matcher verdict=~"premature|unread" never meets a set */
	CHECK(has_line(t,
		       "mftrace_migrations_total{role=\"source\",verdict=\"undecided\",possible=\"premature|unread\","
		       "domain=\"vm1\"} 1"));
	CHECK(has_line(t, "mftrace_channels_total{role=\"source\",verdict=\"undecided\",possible=\"premature|unread\","
			  "domain=\"vm1\"} 2"));
	CHECK(!strstr(t, "verdict=\"premature|unread\""));
	CHECK(has_line(t, "mftrace_migration_outcomes_total{role=\"source\",outcome=\"completed\",domain=\"vm1\"} 1"));
	CHECK_INT(count_prefix(t, "mftrace_premature_terminations_total{"), 0);
	free(t);
	mft_metrics_free(m);
}

static void outcome_labels(void)
{
	static const char *const in[] = { "completed", "failed",    "cancelled", "destination-failed",
					  "killed(9)", "exited(0)", "active",    "13",
					  "unknown" };
	static const char *const out[] = { "completed", "failed", "cancelled", "destination-failed", "killed", "exited",
					   "other",     "other",  "unknown" };

	for (int i = 0; i < 9; i++) {
		struct mft_metrics *m = mft_metrics_new(&build);
		struct fake f;
		char want[160], *t;

		fake_init(&f, MFT_ROLE_DEST, in[i], NULL, 0);
		mft_metrics_migration(m, "v", &f.mig, 0);
		t = render(m, false);
		snprintf(want, sizeof(want),
			 "mftrace_migration_outcomes_total{role=\"destination\",outcome=\"%s\",domain=\"v\"} 1",
			 out[i]);
		CHECK(t && has_line(t, want));
		free(t);
		mft_metrics_free(m);
	}
}

static void histogram_buckets(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	const int kinds[] = { MFT_V_PREMATURE, MFT_V_UNREAD };
	struct fake f;
	char *t;

	fake_init(&f, MFT_ROLE_DEST, "completed", kinds, 2);
	f.ch[1].verdict.fin_to_final_read = 3 * MS;    /* 0.003 s: in le=0.005 */
	f.ch[2].verdict.fin_to_final_read = 1 * MS;    /* exactly on a bound: le=0.001 holds it */
	f.ch[1].verdict.fin_to_local_shutdown = -2000; /* our shutdown came 2 us before the FIN */
	f.ch[1].evidence.rx_bytes = 1024;
	f.ch[2].evidence.rx_bytes = 5000000;
	mft_metrics_migration(m, "vm1", &f.mig, 0);
	t = render(m, false);
	CHECK(t);
#define FIN "mftrace_channel_fin_to_final_read_seconds"
	CHECK(has_line(t, FIN "_bucket{role=\"destination\",order=\"expected\",le=\"0.0005\"} 0"));
	CHECK(has_line(t, FIN "_bucket{role=\"destination\",order=\"expected\",le=\"0.001\"} 1"));
	CHECK(has_line(t, FIN "_bucket{role=\"destination\",order=\"expected\",le=\"0.005\"} 2"));
	CHECK(has_line(t, FIN "_bucket{role=\"destination\",order=\"expected\",le=\"5\"} 2"));
	CHECK(has_line(t, FIN "_bucket{role=\"destination\",order=\"expected\",le=\"+Inf\"} 2"));
	CHECK(has_line(t, FIN "_sum{role=\"destination\",order=\"expected\"} 0.004"));
	CHECK(has_line(t, FIN "_count{role=\"destination\",order=\"expected\"} 2"));
	CHECK_INT(count_prefix(t, FIN "_bucket{"), 15); /* 14 bounds and +Inf */
#undef FIN
#define SHUT "mftrace_channel_fin_to_local_shutdown_seconds"
	CHECK(has_line(t, SHUT "_bucket{role=\"destination\",order=\"reversed\",le=\"1e-06\"} 0"));
	CHECK(has_line(t, SHUT "_bucket{role=\"destination\",order=\"reversed\",le=\"5e-06\"} 1"));
	CHECK(has_line(t, SHUT "_sum{role=\"destination\",order=\"reversed\"} 2e-06"));
	CHECK_INT(count_prefix(t, SHUT "_count{role=\"destination\",order=\"expected\"}"), 0);
#undef SHUT
	/* margins that do not apply are not observed */
	CHECK_INT(count_prefix(t, "mftrace_channel_bye_to_shutdown_seconds_count"), 0);
	CHECK(has_line(t, "mftrace_channel_received_bytes_bucket{role=\"destination\",le=\"1024\"} 1"));
	CHECK(has_line(t, "mftrace_channel_received_bytes_bucket{role=\"destination\",le=\"4194304\"} 1"));
	CHECK(has_line(t, "mftrace_channel_received_bytes_bucket{role=\"destination\",le=\"16777216\"} 2"));
	CHECK(has_line(t, "mftrace_channel_received_bytes_bucket{role=\"destination\",le=\"17179869184\"} 2"));
	CHECK(has_line(t, "mftrace_channel_received_bytes_sum{role=\"destination\"} 5001024"));
	free(t);
	mft_metrics_free(m);
}

static void escaping(void)
{
	const struct mft_metrics_build b = { "1.0\n\"x\"\\", "", "0.9.75", NULL };
	struct mft_metrics *m = mft_metrics_new(&b);
	struct fake f;
	char *t;

	fake_init(&f, MFT_ROLE_DEST, "completed", NULL, 0);
	/* a VM name from a command line: quote and backslash escaped; control bytes and
	 * invalid UTF-8 replaced; valid UTF-8 kept */
	mft_metrics_migration(m, "a\"b\\c\td\xff caf\xc3\xa9 \xc0\xaf", &f.mig, 0);
	for (int om = 0; om < 2; om++) {
		t = render(m, om);
		CHECK(t);
		CHECK(has_line(t, "mftrace_build_info{version=\"1.0\\n\\\"x\\\"\\\\\",revision=\"unknown\","
				  "libmicrohttpd=\"0.9.75\"} 1"));
		CHECK(has_line(t, "mftrace_migrations_total{role=\"destination\",verdict=\"undecided\","
				  "domain=\"a\\\"b\\\\c_d_ caf\xc3\xa9 __\"} 1"));
		free(t);
	}
	mft_metrics_free(m);
}

static void long_vm_names(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	char name[128], want[256], *t;
	struct fake f;

	fake_init(&f, MFT_ROLE_DEST, "completed", NULL, 0);
	memset(name, 'a', 100);
	name[100] = '\0';
	mft_metrics_migration(m, name, &f.mig, 0);
	/* 62 bytes and a 2-byte character do not fit in 63: cut before it */
	memset(name, 'b', 62);
	snprintf(name + 62, sizeof(name) - 62, "\xc3\xa9zz");
	mft_metrics_migration(m, name, &f.mig, 0);
	mft_metrics_migration(m, "", &f.mig, 0);
	t = render(m, false);
	CHECK(t);
	snprintf(want, sizeof(want),
		 "mftrace_migrations_total{role=\"destination\",verdict=\"undecided\",domain=\"%.63s\"} 1",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	CHECK(has_line(t, want));
	name[62] = '\0';
	snprintf(want, sizeof(want),
		 "mftrace_migrations_total{role=\"destination\",verdict=\"undecided\",domain=\"%s\"} 1", name);
	CHECK(has_line(t, want));
	CHECK(has_line(t, "mftrace_migrations_total{role=\"destination\",verdict=\"undecided\",domain=\"unknown\"} 1"));
	free(t);
	mft_metrics_free(m);
}

static void accept_negotiation(void)
{
	/* Prometheus 2.x */
	CHECK(mft_metrics_wants_openmetrics("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
					    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
	CHECK(mft_metrics_wants_openmetrics("application/openmetrics-text"));
	CHECK(mft_metrics_wants_openmetrics("Application/OpenMetrics-Text; version=0.0.1"));
	CHECK(mft_metrics_wants_openmetrics(" text/plain;q=0.3 , application/openmetrics-text ; q=0.9"));
	CHECK(!mft_metrics_wants_openmetrics(NULL));
	CHECK(!mft_metrics_wants_openmetrics(""));
	CHECK(!mft_metrics_wants_openmetrics("*/*"));
	CHECK(!mft_metrics_wants_openmetrics("text/plain;version=0.0.4"));
	CHECK(!mft_metrics_wants_openmetrics("application/openmetrics-text;q=0"));
	CHECK(!mft_metrics_wants_openmetrics("application/openmetrics-text;version=2.0.0"));
	CHECK(!mft_metrics_wants_openmetrics("application/openmetrics-text;q=0.5,text/plain"));
	CHECK(!mft_metrics_wants_openmetrics("application/openmetrics-text;q=bogus"));
	CHECK(!mft_metrics_wants_openmetrics(";;;,,,=q;q=;version="));
	CHECK_STR(mft_metrics_content_type(true), "application/openmetrics-text; version=1.0.0; charset=utf-8");
	CHECK_STR(mft_metrics_content_type(false), "text/plain; version=0.0.4; charset=utf-8");
}

static void targets_gauge(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	char *t;

	mft_metrics_target(m, 10, "a", true);
	mft_metrics_target(m, 11, "a", true);
	mft_metrics_target(m, 12, "b", true);
	mft_metrics_target(m, 12, "b", true); /* twice: counted once */
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(t, "mftrace_targets{domain=\"a\"} 2"));
	CHECK(has_line(t, "mftrace_targets{domain=\"b\"} 1"));
	/* what alerts watch exists at 0 before the first increment */
	CHECK(has_line(t,
		       "mftrace_premature_terminations_total{role=\"destination\",impact=\"fatal\",domain=\"a\"} 0"));
	CHECK(has_line(t, "mftrace_premature_terminations_total{role=\"source\",impact=\"tolerated\",domain=\"b\"} 0"));
	CHECK(has_line(t, "mftrace_flagged_migrations_total{role=\"destination\",domain=\"b\"} 0"));
	CHECK(has_line(t, "mftrace_migrations_total{role=\"destination\",verdict=\"unread\",domain=\"a\"} 0"));
	CHECK(has_line(t, "mftrace_channels_total{role=\"source\",verdict=\"incomplete\",domain=\"b\"} 0"));
	CHECK(has_line(t, "mftrace_migration_outcomes_total{role=\"destination\",outcome=\"failed\",domain=\"a\"} 0"));
	/* per domain: every decided verdict of each role, and a source's two undecided sets */
	CHECK_INT(count_prefix(t, "mftrace_channels_total{"), 2 * (2 * MFT_V__MAX + 2));
	CHECK(has_line(
		t, "mftrace_channels_total{role=\"source\",verdict=\"undecided\",possible=\"clean|premature|unread\","
		   "domain=\"a\"} 0"));
	CHECK(has_line(t, "mftrace_premature_tolerated_by_relaxed_eof_total{domain=\"b\"} 0"));
	free(t);
	mft_metrics_target(m, 10, NULL, false);
	mft_metrics_target(m, 12, NULL, false);
	mft_metrics_target(m, 99, NULL, false); /* never added */
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(t, "mftrace_targets{domain=\"a\"} 1"));
	CHECK_INT(count_prefix(t, "mftrace_targets{domain=\"b\"}"), 0);
	free(t);
	mft_metrics_free(m);
}

static struct mft_attach_status status(uint32_t pid, const char *what, int mech, bool ok)
{
	struct mft_attach_status s = { .pid = pid, .ok = ok };

	snprintf(s.what, sizeof(s.what), "%s", what);
	s.mech = mech;
	return s;
}

static void probes(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	struct mft_attach_status st[] = {
		status(0, "shutdown", MFT_MECH_TRACEPOINT, true),    status(0, "close", MFT_MECH_TRACEPOINT, false),
		status(0, "close", MFT_MECH_TRACEPOINT, true), /* the later status of the same probe wins */
		status(10, "gnutls_bye", MFT_MECH_UPROBE, true),     status(11, "gnutls_bye", MFT_MECH_UPROBE, false),
		status(99, "gnutls_bye", MFT_MECH_UPROBE, false), /* not traced: ignored */
		status(99, "gnutls_deinit", MFT_MECH_UPROBE, false),
	};
	char *t;

	mft_metrics_target(m, 10, "a", true);
	mft_metrics_target(m, 11, "b", true);
	mft_metrics_set_probes(m, st, 7);
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(t, "mftrace_probe_attached{probe=\"shutdown\",mechanism=\"tracepoint\"} 1"));
	CHECK(has_line(t, "mftrace_probe_attached{probe=\"close\",mechanism=\"tracepoint\"} 1"));
	CHECK(has_line(t, "mftrace_probe_attached{probe=\"gnutls_bye\",mechanism=\"uprobe\"} 0"));
	CHECK_INT(count_prefix(t, "mftrace_probe_attached{probe=\"gnutls_deinit\""), 0);
	free(t);
	mft_metrics_target(m, 11, NULL, false);
	mft_metrics_set_probes(m, st, 7);
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(t, "mftrace_probe_attached{probe=\"gnutls_bye\",mechanism=\"uprobe\"} 1"));
	free(t);
	mft_metrics_free(m);
}

static void self_and_http(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	struct mft_metrics_self s = { .events = 1234, .lost = 5, .untracked = 6, .malformed = 7 };
	char *t;

	mft_metrics_set_self(m, &s);
	mft_metrics_scrape_done(m, true, 0.0003);
	mft_metrics_scrape_done(m, false, 0.3);
	mft_metrics_http_response(m, 404);
	mft_metrics_http_response(m, 404);
	t = render(m, true);
	CHECK(t);
	CHECK(has_line(t, "mftrace_events_total 1234"));
	CHECK(has_line(t, "mftrace_events_lost_total 5"));
	CHECK(has_line(t, "mftrace_sockets_untracked_total 6"));
	CHECK(has_line(t, "mftrace_events_malformed_total 7"));
	CHECK(has_line(t, "mftrace_exporter_scrape_duration_seconds_bucket{format=\"openmetrics\",le=\"0.0005\"} 1"));
	CHECK(has_line(t, "mftrace_exporter_scrape_duration_seconds_bucket{format=\"openmetrics\",le=\"0.00025\"} 0"));
	CHECK(has_line(t, "mftrace_exporter_scrape_duration_seconds_bucket{format=\"text\",le=\"0.25\"} 0"));
	CHECK(has_line(t, "mftrace_exporter_scrape_duration_seconds_bucket{format=\"text\",le=\"+Inf\"} 1"));
	CHECK(has_line(t, "mftrace_exporter_scrape_duration_seconds_sum{format=\"text\"} 0.3"));
	CHECK(has_line(t, "mftrace_exporter_http_responses_total{code=\"404\"} 2"));
	free(t);
	mft_metrics_free(m);
}

static void info_replaced(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	struct fake f;
	char *t;

	fake_init(&f, MFT_ROLE_SOURCE, "completed", NULL, 0);
	mft_metrics_migration(m, "vm", &f.mig, 0);
	snprintf(f.mig.endpoint, sizeof(f.mig.endpoint), "10.0.0.2:4444");
	f.mig.has_uuid = true;
	for (int i = 0; i < 16; i++)
		f.mig.uuid[i] = (uint8_t)(0x10 + i);
	mft_metrics_migration(m, "vm", &f.mig, 0);
	t = render(m, false);
	CHECK(t);
	CHECK_INT(count_prefix(t, "mftrace_last_migration_info{"), 1);
	CHECK(has_line(t,
		       "mftrace_last_migration_info{domain=\"vm\",role=\"source\",endpoint=\"10.0.0.2:4444\","
		       "uuid=\"10111213-1415-1617-1819-1a1b1c1d1e1f\",verdict=\"undecided\",outcome=\"completed\"} 1"));
	free(t);
	mft_metrics_free(m);
}

static void vm_table_bounded(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	struct fake f;
	char name[32], want[160], *t;

	fake_init(&f, MFT_ROLE_DEST, "completed", NULL, 0);
	/* more VMs than the table holds, none traced: the oldest are forgotten */
	for (int i = 0; i < MFT_METRICS_MAX_VMS + 5; i++) {
		snprintf(name, sizeof(name), "vm%d", i);
		mft_metrics_migration(m, name, &f.mig, 0);
	}
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(t, "mftrace_exporter_domains_evicted_total 5"));
	CHECK_INT(count_prefix(t, "mftrace_migrations_total{"), MFT_METRICS_MAX_VMS);
	CHECK_INT(count_prefix(t, "mftrace_last_migration_info{"), MFT_METRICS_MAX_VMS);
	CHECK_INT(count_prefix(t,
			       "mftrace_migrations_total{role=\"destination\",verdict=\"undecided\",domain=\"vm4\"}"),
		  0);
	snprintf(want, sizeof(want),
		 "mftrace_migrations_total{role=\"destination\",verdict=\"undecided\",domain=\"vm%d\"} 1",
		 MFT_METRICS_MAX_VMS + 4);
	CHECK(has_line(t, want));
	free(t);
	mft_metrics_free(m);

	/* every slot held by a traced VM: a new name goes to the overflow label */
	m = mft_metrics_new(&build);
	for (int i = 0; i < MFT_METRICS_MAX_VMS; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		mft_metrics_target(m, (uint32_t)i + 1, name, true);
	}
	mft_metrics_migration(m, "latecomer", &f.mig, 0);
	mft_metrics_migration(m, "t7", &f.mig, 0);
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(t,
		       "mftrace_migrations_total{role=\"destination\",verdict=\"undecided\",domain=\"_overflow\"} 1"));
	CHECK(has_line(t, "mftrace_migrations_total{role=\"destination\",verdict=\"undecided\",domain=\"t7\"} 1"));
	CHECK(has_line(t, "mftrace_exporter_domains_evicted_total 0"));
	free(t);
	mft_metrics_free(m);
}

static void series_bounded(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	struct fake f;
	char name[32], *t;
	int attempts = 0;

	/* roles x possible sets x VMs: more label combinations than a family may hold */
	fake_init(&f, MFT_ROLE_DEST, "completed", NULL, 0);
	for (int vm = 0; vm < MFT_METRICS_MAX_SERIES / (3 * 63) + 2; vm++) {
		snprintf(name, sizeof(name), "vm%d", vm);
		for (int role = 0; role < 3; role++)
			for (unsigned p = 1; p < 64; p++) {
				f.mig.role = role;
				f.mig.verdict.possible = p;
				mft_metrics_migration(m, name, &f.mig, 0);
				attempts++;
			}
	}
	CHECK(attempts > MFT_METRICS_MAX_SERIES);
	t = render(m, false);
	CHECK(t);
	CHECK_INT(count_prefix(t, "mftrace_migrations_total{"), MFT_METRICS_MAX_SERIES);
	CHECK(!has_line(t, "mftrace_exporter_series_dropped_total 0"));
	CHECK_INT(count_prefix(t, "mftrace_exporter_series_dropped_total "), 1);
	/* and the bound is shown as one */
	CHECK(has_line(t, "mftrace_resource_capacity{resource=\"series\"} 16384"));
	CHECK(has_line(t, "mftrace_resource_used{resource=\"series\"} 16384"));
	CHECK(!has_line(t, "mftrace_resource_refused_total{resource=\"series\"} 0"));
	CHECK_INT(count_prefix(t, "mftrace_resource_refused_total{resource=\"series\"} "), 1);
	free(t);
	mft_metrics_free(m);
}

/* Every bounded table as three series: capacity, used, refused. */
static void resource_limits(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	const struct mft_limit l[] = {
		{ "targets", 3, 1024, 0, "" },
		{ "socket_map", 17, 32768, 5, "" },
	};
	char *t;

	mft_metrics_set_limits(m, l, 2);
	mft_metrics_set_limits(m, l, 2); /* set again: the same series */
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(t, "mftrace_resource_capacity{resource=\"targets\"} 1024"));
	CHECK(has_line(t, "mftrace_resource_used{resource=\"targets\"} 3"));
	CHECK(has_line(t, "mftrace_resource_refused_total{resource=\"targets\"} 0"));
	CHECK(has_line(t, "mftrace_resource_used{resource=\"socket_map\"} 17"));
	CHECK(has_line(t, "mftrace_resource_refused_total{resource=\"socket_map\"} 5"));
	CHECK(has_line(t, "mftrace_resource_capacity{resource=\"domain_labels\"} 1024"));
	CHECK_INT(count_prefix(t, "mftrace_resource_capacity{resource=\"targets\"}"), 1);
	free(t);
	mft_metrics_free(m);
}

static void fake_qemu(struct mft_procinfo *pi, uint32_t pid, const char *version, bool incoming, const char *cmd,
		      size_t n)
{
	memset(pi, 0, sizeof(*pi));
	pi->pid = pid;
	pi->incoming = incoming;
	snprintf(pi->qemu_version, sizeof(pi->qemu_version), "%s", version);
	snprintf(pi->gnutls_version, sizeof(pi->gnutls_version), "3.7.9");
	mft_qemu_args_parse(cmd, n, &pi->args);
}

/* mftrace_target_info: versions, the -uuid (else the migration's), and a destination's
 * multifd-clean-tls-termination; mftrace_last_migration_info carries them on. */
static void target_info(void)
{
	static const char dst_cmd[] = "qemu\0-machine\0pc-q35-10.0,accel=kvm\0-incoming\0tcp:0:4444";
	static const char old_cmd[] = "qemu\0-M\0pc-i440fx-7.2\0-incoming\0unix:/run/x.sock";
	static const char src_cmd[] = "qemu\0-uuid\0"
				      "12345678-9abc-def0-1234-56789abcdef0";
	struct mft_metrics *m = mft_metrics_new(&build);
	struct mft_procinfo pi;
	struct fake f;
	char *t;

	mft_metrics_target(m, 20, "dst", true);
	fake_qemu(&pi, 20, "10.0.2 (Debian 1:10.0.2+ds-1~bpo12+1)", true, dst_cmd, sizeof(dst_cmd));
	mft_metrics_target_info(m, &pi);
	mft_metrics_target(m, 21, "old", true);
	fake_qemu(&pi, 21, "10.0.2", true, old_cmd, sizeof(old_cmd));
	mft_metrics_target_info(m, &pi);
	mft_metrics_target(m, 22, "src", true);
	fake_qemu(&pi, 22, "7.2.15", false, src_cmd, sizeof(src_cmd));
	mft_metrics_target_info(m, &pi);
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(
		t,
		"mftrace_target_info{domain=\"dst\",qemu_version=\"10.0.2 (Debian 1:10.0.2+ds-1~bpo12+1)\","
		"gnutls_version=\"3.7.9\",machine=\"pc-q35-10.0\",incoming=\"tcp\",clean_tls_termination=\"on\"} 1"));
	CHECK(has_line(t, "mftrace_target_info{domain=\"old\",qemu_version=\"10.0.2\",gnutls_version=\"3.7.9\","
			  "machine=\"pc-i440fx-7.2\",incoming=\"unix\",clean_tls_termination=\"off\"} 1"));
	CHECK(has_line(t, "mftrace_target_info{domain=\"src\",uuid=\"12345678-9abc-def0-1234-56789abcdef0\","
			  "qemu_version=\"7.2.15\",gnutls_version=\"3.7.9\"} 1"));
	free(t);
	/* the destination decodes the migration UUID: its target_info takes it */
	fake_init(&f, MFT_ROLE_DEST, "completed", NULL, 0);
	f.mig.pid = 20;
	f.mig.has_uuid = true;
	for (int i = 0; i < 16; i++)
		f.mig.uuid[i] = (uint8_t)(0x10 + i);
	mft_metrics_migration(m, "dst", &f.mig, 0);
	/* and the source's QEMU exits before its migration is judged */
	mft_metrics_target(m, 22, NULL, false);
	fake_init(&f, MFT_ROLE_SOURCE, "completed", NULL, 0);
	f.mig.pid = 22;
	mft_metrics_migration(m, "src", &f.mig, 0);
	t = render(m, false);
	CHECK(t);
	CHECK(strstr(t, "mftrace_target_info{domain=\"dst\",uuid=\"10111213-1415-1617-1819-1a1b1c1d1e1f\","));
	CHECK(!strstr(t, "mftrace_target_info{domain=\"src\""));
	CHECK(has_line(t, "mftrace_last_migration_info{domain=\"dst\",role=\"destination\",endpoint=\"127.0.0.1:4444\","
			  "uuid=\"10111213-1415-1617-1819-1a1b1c1d1e1f\",verdict=\"undecided\",outcome=\"completed\","
			  "qemu_version=\"10.0.2 (Debian 1:10.0.2+ds-1~bpo12+1)\",clean_tls_termination=\"on\"} 1"));
	CHECK(has_line(t, "mftrace_last_migration_info{domain=\"src\",role=\"source\",endpoint=\"127.0.0.1:4444\","
			  "verdict=\"undecided\",outcome=\"completed\",qemu_version=\"7.2.15\"} 1"));
	free(t);
	mft_metrics_free(m);
}

/* Premature channels tolerated on a destination that relaxes EOF, woken by the peer's FIN:
 * what turning multifd-clean-tls-termination on would break. */
static void relaxed_eof_counterfactual(void)
{
	static const char relaxed[] = "qemu\0-incoming\0defer\0-global\0migration.multifd-clean-tls-termination=off";
	static const char strict[] = "qemu\0-incoming\0defer";
	const int kinds[] = { MFT_V_PREMATURE, MFT_V_PREMATURE, MFT_V_PREMATURE, MFT_V_CLEAN };
	struct mft_metrics *m = mft_metrics_new(&build);
	struct mft_procinfo pi;
	struct fake f;
	char *t;

	mft_metrics_target(m, 30, "r", true);
	fake_qemu(&pi, 30, "10.0.2", true, relaxed, sizeof(relaxed));
	mft_metrics_target_info(m, &pi);
	mft_metrics_target(m, 31, "s", true);
	fake_qemu(&pi, 31, "10.0.2", true, strict, sizeof(strict));
	mft_metrics_target_info(m, &pi);
	for (int pid = 30; pid <= 31; pid++) {
		fake_init(&f, MFT_ROLE_DEST, "completed", kinds, 4);
		f.mig.pid = (uint32_t)pid;
		for (int i = 1; i <= 3; i++) {
			f.ch[i].verdict.severity = MFT_SEV_TOLERATED;
			f.ch[i].verdict.woken_by = "peer-fin";
		}
		f.ch[3].verdict.woken_by = "local-shutdown"; /* tolerated with the property on too */
		mft_metrics_migration(m, pid == 30 ? "r" : "s", &f.mig, 0);
	}
	/* a failed one is not tolerated: not counted */
	fake_init(&f, MFT_ROLE_DEST, "failed", kinds, 1);
	f.mig.pid = 30;
	f.ch[1].verdict.severity = MFT_SEV_FATAL;
	f.ch[1].verdict.woken_by = "peer-fin";
	mft_metrics_migration(m, "r", &f.mig, 0);
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(t, "mftrace_premature_tolerated_by_relaxed_eof_total{domain=\"r\"} 2"));
	CHECK(has_line(t, "mftrace_premature_tolerated_by_relaxed_eof_total{domain=\"s\"} 0"));
	CHECK(has_line(
		t, "mftrace_premature_terminations_total{role=\"destination\",impact=\"tolerated\",domain=\"r\"} 3"));
	free(t);
	mft_metrics_free(m);
}

static void process_and_bpf(void)
{
	struct mft_metrics *m = mft_metrics_new(&build);
	const struct mft_metrics_process p = { 1.5, 4096 * 100, 1 << 30, 17, 1024, 1700000000.25 };
	const struct mft_prog_stat st[] = { { "tp_recv_length", 2500000000ull, 12345 }, { "tp_destroy", 0, 0 } };
	char *t;

	mft_metrics_set_process(m, &p);
	mft_metrics_set_bpf(m, false, st, 2);
	t = render(m, false);
	CHECK(t);
	CHECK(has_line(t, "# TYPE process_cpu_seconds_total counter"));
	CHECK(has_line(t, "process_cpu_seconds_total 1.5"));
	CHECK(has_line(t, "process_resident_memory_bytes 409600"));
	CHECK(has_line(t, "process_virtual_memory_bytes 1073741824"));
	CHECK(has_line(t, "process_open_fds 17"));
	CHECK(has_line(t, "process_max_fds 1024"));
	CHECK(has_line(t, "process_start_time_seconds 1700000000.25"));
	CHECK(has_line(t, "mftrace_bpf_stats_enabled 0"));
	/* counted through BPF_ENABLE_STATS, which the sysctl does not show: shown */
	CHECK(has_line(t, "mftrace_bpf_program_runs_total{program=\"tp_recv_length\"} 12345"));
	free(t);
	const struct mft_prog_stat none[] = { { "tp_recv_length", 0, 0 } };

	mft_metrics_set_bpf(m, false, none, 1); /* never counted: not shown */
	t = render(m, false);
	CHECK(t);
	CHECK(!strstr(t, "mftrace_bpf_program_runs_total{"));
	free(t);
	mft_metrics_set_bpf(m, true, st, 2);
	t = render(m, true);
	CHECK(t);
	CHECK(has_line(t, "mftrace_bpf_stats_enabled 1"));
	CHECK(has_line(t, "# UNIT mftrace_bpf_program_run_time_seconds seconds"));
	CHECK(has_line(t, "mftrace_bpf_program_run_time_seconds_total{program=\"tp_recv_length\"} 2.5"));
	CHECK(has_line(t, "mftrace_bpf_program_runs_total{program=\"tp_recv_length\"} 12345"));
	CHECK(has_line(t, "mftrace_bpf_program_runs_total{program=\"tp_destroy\"} 0"));
	CHECK(has_line(t, "# UNIT process_start_time_seconds seconds"));
	free(t);
	mft_metrics_free(m);
}

int main(void)
{
	RUN(render_text_empty);
	RUN(render_openmetrics_empty);
	RUN(migration_counters);
	RUN(undecided_source_verdict);
	RUN(outcome_labels);
	RUN(histogram_buckets);
	RUN(escaping);
	RUN(long_vm_names);
	RUN(accept_negotiation);
	RUN(targets_gauge);
	RUN(probes);
	RUN(self_and_http);
	RUN(info_replaced);
	RUN(vm_table_bounded);
	RUN(series_bounded);
	RUN(resource_limits);
	RUN(target_info);
	RUN(relaxed_eof_counterfactual);
	RUN(process_and_bpf);
	UNIT_EXIT();
}
