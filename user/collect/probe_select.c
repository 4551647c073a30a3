// SPDX-License-Identifier: GPL-2.0
/*
 * Two fallback chains, as pure functions: fentry -> kprobe -> tracepoint for a kernel
 * function (the way libbpf-tools picks), and tp_btf -> raw_tp -> tracepoint for a
 * tracepoint (cheapest per hit first).
 */
#include <stdio.h>
#include <string.h>
#include "collect/probe_select.h"

const char *mft_mech_name(int mech)
{
	switch (mech) {
	case MFT_MECH_FENTRY: return "fentry";
	case MFT_MECH_KPROBE: return "kprobe";
	case MFT_MECH_TRACEPOINT: return "tracepoint";
	case MFT_MECH_UPROBE: return "uprobe";
	case MFT_MECH_URETPROBE: return "uretprobe";
	case MFT_MECH_USDT: return "usdt";
	case MFT_MECH_SYMBOL: return "symbol";
	case MFT_MECH_TP_BTF: return "tp_btf";
	case MFT_MECH_RAW_TP: return "raw_tp";
	case MFT_MECH_UPROBE_MULTI: return "uprobe_multi";
	case MFT_MECH_URETPROBE_MULTI: return "uretprobe_multi";
	default: return "none";
	}
}

int mft_mech_parse(const char *s)
{
	if (!strcmp(s, "auto"))
		return MFT_MECH_NONE;
	for (int m = MFT_MECH_FENTRY; m <= MFT_MECH_TRACEPOINT; m++)
		if (!strcmp(s, mft_mech_name(m)))
			return m;
	return -1;
}

/* The first usable of n mechanisms, in order; forced (if one of them) is the only one tried. */
static void choose_from(const char *what, const int *mechs, const struct mft_avail *const *avail, int n, int forced,
			struct mft_choice *out)
{
	size_t off = 0;

	out->mech = MFT_MECH_NONE;
	out->why[0] = '\0';
	for (int i = 0; i < n; i++) {
		int mech = mechs[i];
		const struct mft_avail *a = avail[i];
		int k;

		if (forced && forced != mech)
			continue;
		if (a->ok) {
			out->mech = mech;
			snprintf(out->why + off, sizeof(out->why) - off, "%s%s: %s", off ? "; " : "",
				 mft_mech_name(mech), forced ? "forced by --mechanism" : "available");
			return;
		}
		k = snprintf(out->why + off, sizeof(out->why) - off, "%s%s unusable (%s)", off ? "; " : "",
			     mft_mech_name(mech), a->why[0] ? a->why : "unknown reason");
		if (k > 0 && (size_t)k < sizeof(out->why) - off)
			off += (size_t)k;
	}
	snprintf(out->why + off, sizeof(out->why) - off, "%snothing can probe %s", off ? "; " : "", what);
}

void mft_choose_mech(const char *what, const struct mft_probe_results *r, int forced, struct mft_choice *out)
{
	const int mechs[] = { MFT_MECH_FENTRY, MFT_MECH_KPROBE, MFT_MECH_TRACEPOINT };
	const struct mft_avail *avail[] = { &r->fentry, &r->kprobe, &r->tracepoint };

	choose_from(what, mechs, avail, 3, forced, out);
}

void mft_choose_tp_mech(const char *what, const struct mft_tp_results *r, int forced, struct mft_choice *out)
{
	const int mechs[] = { MFT_MECH_TP_BTF, MFT_MECH_RAW_TP, MFT_MECH_TRACEPOINT };
	const struct mft_avail *avail[] = { &r->tp_btf, &r->raw_tp, &r->tracepoint };

	/* --mechanism fentry or kprobe names the other chain: this one stays automatic */
	if (forced != MFT_MECH_TRACEPOINT && forced != MFT_MECH_TP_BTF && forced != MFT_MECH_RAW_TP)
		forced = MFT_MECH_NONE;
	choose_from(what, mechs, avail, 3, forced, out);
}

void mft_choose_uprobe_mech(const struct mft_avail *multi, bool forced_single, struct mft_choice *out)
{
	if (forced_single) {
		out->mech = MFT_MECH_UPROBE;
		snprintf(out->why, sizeof(out->why), "uprobe: one link per probe, forced");
	} else if (multi->ok) {
		out->mech = MFT_MECH_UPROBE_MULTI;
		snprintf(out->why, sizeof(out->why), "uprobe_multi: available (one link per program and binary)");
	} else {
		out->mech = MFT_MECH_UPROBE;
		snprintf(out->why, sizeof(out->why), "uprobe_multi unusable (%s); uprobe: one link per probe",
			 multi->why[0] ? multi->why : "unknown reason");
	}
}
