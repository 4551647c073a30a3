/* fentry -> kprobe -> tracepoint, tp_btf -> raw_tp -> tracepoint and uprobe_multi -> uprobe
 * choices, with injected probe results. */
#include "unit.h"
#include "collect/probe_select.h"

static struct mft_probe_results results(bool f, bool k, bool t)
{
	struct mft_probe_results r = { 0 };

	r.fentry.ok = f;
	r.kprobe.ok = k;
	r.tracepoint.ok = t;
	if (!f)
		snprintf(r.fentry.why, sizeof(r.fentry.why), "test program failed to load: EPERM");
	if (!k)
		snprintf(r.kprobe.why, sizeof(r.kprobe.why), "CONFIG_KPROBES not set");
	if (!t)
		snprintf(r.tracepoint.why, sizeof(r.tracepoint.why), "tracefs not mounted");
	return r;
}

static void fentry_preferred(void)
{
	struct mft_probe_results r = results(true, true, true);
	struct mft_choice c;

	mft_choose_mech("close", &r, MFT_MECH_NONE, &c);
	CHECK_INT(c.mech, MFT_MECH_FENTRY);
}

static void kprobe_when_fentry_fails(void)
{
	struct mft_probe_results r = results(false, true, true);
	struct mft_choice c;

	mft_choose_mech("close", &r, MFT_MECH_NONE, &c);
	CHECK_INT(c.mech, MFT_MECH_KPROBE);
	CHECK(strstr(c.why, "fentry unusable (test program failed to load: EPERM)"));
}

static void tracepoint_on_this_kind_of_host(void)
{
	struct mft_probe_results r = results(false, false, true);
	struct mft_choice c;

	mft_choose_mech("shutdown", &r, MFT_MECH_NONE, &c);
	CHECK_INT(c.mech, MFT_MECH_TRACEPOINT);
	CHECK(strstr(c.why, "kprobe unusable (CONFIG_KPROBES not set)"));
	CHECK_STR(mft_mech_name(c.mech), "tracepoint");
}

static void nothing_works(void)
{
	struct mft_probe_results r = results(false, false, false);
	struct mft_choice c;

	mft_choose_mech("shutdown", &r, MFT_MECH_NONE, &c);
	CHECK_INT(c.mech, MFT_MECH_NONE);
	CHECK(strstr(c.why, "nothing can probe shutdown"));
}

static void forced_mechanism(void)
{
	struct mft_probe_results r = results(true, true, true);
	struct mft_choice c;

	mft_choose_mech("close", &r, MFT_MECH_TRACEPOINT, &c);
	CHECK_INT(c.mech, MFT_MECH_TRACEPOINT);
	r = results(false, true, true);
	mft_choose_mech("close", &r, MFT_MECH_FENTRY, &c);
	CHECK_INT(c.mech, MFT_MECH_NONE); /* forced and unusable: no silent fallback */
}

static void parse(void)
{
	CHECK_INT(mft_mech_parse("auto"), MFT_MECH_NONE);
	CHECK_INT(mft_mech_parse("kprobe"), MFT_MECH_KPROBE);
	CHECK_INT(mft_mech_parse("uprobe"), -1);
}

static struct mft_tp_results tp_results(bool b, bool r, bool t)
{
	struct mft_tp_results x = { 0 };

	x.tp_btf.ok = b;
	x.raw_tp.ok = r;
	x.tracepoint.ok = t;
	if (!b)
		snprintf(x.tp_btf.why, sizeof(x.tp_btf.why), "no kernel BTF");
	if (!r)
		snprintf(x.raw_tp.why, sizeof(x.raw_tp.why), "test program failed to attach: ENOENT");
	if (!t)
		snprintf(x.tracepoint.why, sizeof(x.tracepoint.why), "tracefs not mounted");
	return x;
}

static void tp_btf_preferred(void)
{
	struct mft_tp_results r = tp_results(true, true, true);
	struct mft_choice c;

	mft_choose_tp_mech("recv results", &r, MFT_MECH_NONE, &c);
	CHECK_INT(c.mech, MFT_MECH_TP_BTF);
	CHECK_STR(mft_mech_name(c.mech), "tp_btf");
	/* --mechanism fentry/kprobe speak of the other chain */
	mft_choose_tp_mech("recv results", &r, MFT_MECH_KPROBE, &c);
	CHECK_INT(c.mech, MFT_MECH_TP_BTF);
}

static void raw_tp_without_btf(void)
{
	struct mft_tp_results r = tp_results(false, true, true);
	struct mft_choice c;

	mft_choose_tp_mech("recv results", &r, MFT_MECH_NONE, &c);
	CHECK_INT(c.mech, MFT_MECH_RAW_TP);
	CHECK(strstr(c.why, "tp_btf unusable (no kernel BTF)"));
	CHECK_STR(mft_mech_name(c.mech), "raw_tp");
}

static void classic_tracepoint_last(void)
{
	struct mft_tp_results r = tp_results(false, false, true);
	struct mft_choice c;

	mft_choose_tp_mech("tcp state", &r, MFT_MECH_NONE, &c);
	CHECK_INT(c.mech, MFT_MECH_TRACEPOINT);
	CHECK(strstr(c.why, "raw_tp unusable (test program failed to attach: ENOENT)"));
	r = tp_results(false, false, false);
	mft_choose_tp_mech("tcp state", &r, MFT_MECH_NONE, &c);
	CHECK_INT(c.mech, MFT_MECH_NONE);
	CHECK(strstr(c.why, "nothing can probe tcp state"));
}

static void tracepoint_forced_on_both_chains(void)
{
	struct mft_tp_results r = tp_results(true, true, true);
	struct mft_choice c;

	mft_choose_tp_mech("recv results", &r, MFT_MECH_TRACEPOINT, &c);
	CHECK_INT(c.mech, MFT_MECH_TRACEPOINT);
	CHECK(strstr(c.why, "forced by --mechanism"));
	r = tp_results(true, true, false);
	mft_choose_tp_mech("recv results", &r, MFT_MECH_TRACEPOINT, &c);
	CHECK_INT(c.mech, MFT_MECH_NONE); /* forced and unusable: no silent fallback */
}

static void uprobe_multi_or_single(void)
{
	struct mft_avail multi = { .ok = true };
	struct mft_choice c;

	mft_choose_uprobe_mech(&multi, false, &c);
	CHECK_INT(c.mech, MFT_MECH_UPROBE_MULTI);
	CHECK_STR(mft_mech_name(c.mech), "uprobe_multi");
	mft_choose_uprobe_mech(&multi, true, &c);
	CHECK_INT(c.mech, MFT_MECH_UPROBE);
	multi.ok = false;
	snprintf(multi.why, sizeof(multi.why), "kernel older than 6.6: EINVAL");
	mft_choose_uprobe_mech(&multi, false, &c);
	CHECK_INT(c.mech, MFT_MECH_UPROBE);
	CHECK(strstr(c.why, "uprobe_multi unusable (kernel older than 6.6: EINVAL)"));
}

int main(void)
{
	RUN(fentry_preferred);
	RUN(kprobe_when_fentry_fails);
	RUN(tracepoint_on_this_kind_of_host);
	RUN(nothing_works);
	RUN(forced_mechanism);
	RUN(parse);
	RUN(tp_btf_preferred);
	RUN(raw_tp_without_btf);
	RUN(classic_tracepoint_last);
	RUN(tracepoint_forced_on_both_chains);
	RUN(uprobe_multi_or_single);
	UNIT_EXIT();
}
