/* Verdict policy, driven by evidence tables: every verdict and its edges. */
#include "unit.h"
#include "mftrace.h"
#include "correlate/verdict.h"

#define MS 1000000ull

/* A TLS multifd channel on the destination that lived and ended normally. */
static struct mft_evidence dst_tls(void)
{
	struct mft_evidence e = { 0 };

	e.role = MFT_ROLE_DEST;
	e.tls = true;
	e.t_created = 1 * MS;
	e.t_tls = 2 * MS;
	e.t_first_read = 3 * MS;
	e.t_last_rx = 50 * MS;
	e.prev_rx_len = 5;
	e.last_rx_len = 1361;
	e.rx_bytes = 100000;
	e.t_close = 120 * MS;
	e.t_destroy = 121 * MS;
	return e;
}

static void judge(const struct mft_evidence *e, struct mft_verdict *v)
{
	mft_judge_channel(e, true, false, true, v);
}

static void premature_woken_by_peer_fin(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.t_fin_rcvd = 100 * MS;
	e.t_eof = 100 * MS + 50000;
	e.t_shutdown = 110 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_PREMATURE);
	CHECK_INT(v.possible, MFT_VBIT(MFT_V_PREMATURE));
	CHECK_STR(v.woken_by, "peer-fin");
	CHECK_INT(v.fin_to_final_read, 50000);
	CHECK_INT(v.final_read_ret, -110);
	CHECK_INT(v.severity, MFT_SEV_TOLERATED);
	CHECK_INT(v.fin_to_local_shutdown, 10 * MS);
}

static void premature_woken_by_local_shutdown(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.t_shutdown = 100 * MS;
	e.t_eof = 100 * MS + 7000;
	e.t_fin_rcvd = 102 * MS; /* the peer's FIN came later */
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_PREMATURE);
	CHECK_STR(v.woken_by, "local-shutdown");
	CHECK_INT(v.fin_to_final_read, MFT_NO_MARGIN);
}

static void premature_severity_follows_outcome(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.t_fin_rcvd = 100 * MS;
	e.t_eof = 101 * MS;
	mft_judge_channel(&e, true, true, true, &v);
	CHECK_INT(v.severity, MFT_SEV_FATAL);
	mft_judge_channel(&e, true, false, false, &v);
	CHECK_INT(v.severity, MFT_SEV_PENDING);
	CHECK_STR(mft_severity_name(MFT_SEV_FATAL), "fatal");
}

static void clean_from_alert_sized_final_record(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.prev_rx_len = 5;
	e.last_rx_len = 19; /* TLS 1.3 close_notify */
	e.t_last_rx = 99 * MS;
	e.t_fin_rcvd = 100 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_CLEAN);
	CHECK_STR(v.woken_by, "close-notify");
	CHECK_INT(v.t_final_read, 99 * MS);
}

static void clean_when_close_notify_read_after_fin(void)
{
	/* 10.0 -> 10.0 seen here: the FIN was in CLOSE_WAIT while 14 records were still
	 * queued; the receiver drained them and the last was the close_notify */
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.t_fin_rcvd = 100 * MS;
	e.late_reads = 14;
	e.prev_rx_len = 5;
	e.last_rx_len = 19;
	e.t_last_rx = 103 * MS;
	e.t_shutdown = 104 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_CLEAN);
	CHECK_INT(v.t_final_read, 103 * MS);
}

static void unread_when_fin_and_no_read(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.t_fin_rcvd = 100 * MS;
	e.t_shutdown = 130 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_UNREAD);
	CHECK_INT(v.t_final_read, 0);
	CHECK_INT(v.fin_to_local_shutdown, 30 * MS);
	CHECK_INT(v.last_read_to_fin, 50 * MS);
}

static void unread_when_only_local_shutdown(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.t_shutdown = 100 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_UNREAD);
}

static void tls_records_decide(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.tls_records = true;
	e.t_fin_rcvd = 100 * MS;
	e.t_tls_end = 101 * MS;
	e.tls_end_ret = 0;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_CLEAN);
	e.tls_end_ret = -110;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_PREMATURE);
	CHECK_INT(v.final_read_ret, -110);
	CHECK_STR(v.woken_by, "peer-fin");
	e.tls_end_ret = -9;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_PREMATURE);
	e.tls_end_ret = -54;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_RESET);
}

static void tls_records_ignore_size_heuristic(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	/* with per-record probes on, no gnutls_record_recv end means no final read */
	e.tls_records = true;
	e.prev_rx_len = 5;
	e.last_rx_len = 19;
	e.t_fin_rcvd = 100 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_UNREAD);
}

static void plain_channel(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.tls = false;
	e.t_fin_rcvd = 100 * MS;
	e.t_eof = 100 * MS + 1000;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_PLAIN);
	CHECK_STR(v.woken_by, "peer-fin");
}

static void reset_before_final_read(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.t_rst_rcvd = 100 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_RESET);
}

static void reset_after_final_read_does_not_hide_it(void)
{
	/* 10.0 -> 10.0 seen here: the destination shut down, read EOF, then the
	 * source's late close_notify hit the shut socket and drew an RST */
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.t_shutdown = 100 * MS;
	e.t_eof = 100 * MS + 6000;
	e.t_rst_rcvd = 102 * MS;
	e.t_rst_sent = 102 * MS;
	e.t_fin_rcvd = 102 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_PREMATURE);
	CHECK_STR(v.woken_by, "local-shutdown");
}

static void read_error_is_reset(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.t_read_err = 100 * MS;
	e.read_err = -104;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_RESET);
}

static void incomplete_cases(void)
{
	struct mft_evidence e = dst_tls();
	struct mft_verdict v;

	e.midlife = true;
	e.t_eof = 100 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_INCOMPLETE);
	e = dst_tls();
	mft_judge_channel(&e, false, false, false, &v); /* tracing stopped first */
	CHECK_INT(v.kind, MFT_V_INCOMPLETE);
}

static void source_views(void)
{
	struct mft_evidence e = { 0 };
	struct mft_verdict v;
	char buf[64];

	e.role = MFT_ROLE_SOURCE;
	e.tls = true;
	e.t_created = 1;
	e.t_shutdown = 100 * MS;
	e.t_close = 101 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, -1);
	CHECK_INT(v.possible, MFT_VBIT(MFT_V_PREMATURE) | MFT_VBIT(MFT_V_UNREAD));
	mft_possible_str(v.possible, buf, sizeof(buf));
	CHECK_STR(buf, "premature|unread");
	e.t_bye = 99 * MS;
	e.bye_ret = 0;
	judge(&e, &v);
	CHECK_INT(v.possible, MFT_VBIT(MFT_V_CLEAN) | MFT_VBIT(MFT_V_PREMATURE) | MFT_VBIT(MFT_V_UNREAD));
	CHECK_INT(v.bye_to_shutdown, 1 * MS);
	e.t_rst_rcvd = 98 * MS;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_RESET);
	/* libvirt's order: the destination shut down and closed first; the close_notify the
	 * source sent after it met an RST, before the source's shutdown. Not decided. */
	e.t_rst_rcvd = 99 * MS + 10;
	judge(&e, &v);
	CHECK_INT(v.kind, -1);
	CHECK_INT(v.possible,
		  MFT_VBIT(MFT_V_CLEAN) | MFT_VBIT(MFT_V_PREMATURE) | MFT_VBIT(MFT_V_UNREAD) | MFT_VBIT(MFT_V_RESET));
	/* the RST during the bye's send, after the destination's FIN: not decided either */
	e.t_fin_rcvd = 98 * MS;
	e.t_rst_rcvd = 98 * MS + 10;
	judge(&e, &v);
	CHECK_INT(v.kind, -1);
	CHECK(v.possible & MFT_VBIT(MFT_V_PREMATURE));
	e.t_fin_rcvd = 0;
	e.t_rst_rcvd = 0;
	e.tls = false;
	judge(&e, &v);
	CHECK_INT(v.kind, MFT_V_PLAIN);
}

static void alert_sizes(void)
{
	CHECK(mft_alert_sized(5, 19));
	CHECK(mft_alert_sized(5, 26));
	CHECK(!mft_alert_sized(5, 1361));
	CHECK(!mft_alert_sized(1361, 19));
	CHECK(!mft_alert_sized(5, 0));
}

static void migration_rollup(void)
{
	struct mft_verdict a = { .possible = MFT_VBIT(MFT_V_UNREAD), .kind = MFT_V_UNREAD };
	struct mft_verdict b = { .possible = MFT_VBIT(MFT_V_PREMATURE), .kind = MFT_V_PREMATURE };
	struct mft_verdict c = { .possible = MFT_VBIT(MFT_V_CLEAN) | MFT_VBIT(MFT_V_UNREAD), .kind = -1 };
	const struct mft_verdict *all[] = { &a, &b, &c };
	struct mft_mig_verdict mv;

	mft_judge_migration(all, 3, true, false, &mv);
	CHECK_INT(mv.kind, MFT_V_PREMATURE);
	CHECK(mv.flagged);
	CHECK(mv.lucky);
	CHECK_INT(mv.severity, MFT_SEV_TOLERATED);
	CHECK_INT(mv.n_undecided, 1);
	CHECK_INT(mv.n_counts[MFT_V_PREMATURE], 1);
	mft_judge_migration(all, 3, false, true, &mv);
	CHECK_INT(mv.severity, MFT_SEV_FATAL);
	CHECK(!mv.lucky);
	mft_judge_migration(all, 1, true, false, &mv);
	CHECK_INT(mv.kind, MFT_V_UNREAD);
	CHECK(!mv.flagged);
	mft_judge_migration(all + 2, 1, true, false, &mv);
	CHECK_INT(mv.kind, -1);
	CHECK_INT(mv.possible, MFT_VBIT(MFT_V_CLEAN) | MFT_VBIT(MFT_V_UNREAD));
}

int main(void)
{
	RUN(premature_woken_by_peer_fin);
	RUN(premature_woken_by_local_shutdown);
	RUN(premature_severity_follows_outcome);
	RUN(clean_from_alert_sized_final_record);
	RUN(clean_when_close_notify_read_after_fin);
	RUN(unread_when_fin_and_no_read);
	RUN(unread_when_only_local_shutdown);
	RUN(tls_records_decide);
	RUN(tls_records_ignore_size_heuristic);
	RUN(plain_channel);
	RUN(reset_before_final_read);
	RUN(reset_after_final_read_does_not_hide_it);
	RUN(read_error_is_reset);
	RUN(incomplete_cases);
	RUN(source_views);
	RUN(alert_sizes);
	RUN(migration_rollup);
	UNIT_EXIT();
}
