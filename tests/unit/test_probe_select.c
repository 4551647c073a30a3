/* fentry -> kprobe -> tracepoint choice, with injected probe results. */
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

int main(void)
{
	RUN(fentry_preferred);
	RUN(kprobe_when_fentry_fails);
	RUN(tracepoint_on_this_kind_of_host);
	RUN(nothing_works);
	RUN(forced_mechanism);
	RUN(parse);
	UNIT_EXIT();
}
