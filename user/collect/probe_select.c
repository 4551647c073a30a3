// SPDX-License-Identifier: GPL-2.0
/* fentry -> kprobe -> tracepoint, the way libbpf-tools picks, as a pure function. */
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

void mft_choose_mech(const char *what, const struct mft_probe_results *r, int forced, struct mft_choice *out)
{
	const struct mft_avail *order[] = { &r->fentry, &r->kprobe, &r->tracepoint };
	size_t off = 0;

	out->mech = MFT_MECH_NONE;
	out->why[0] = '\0';
	for (int i = 0; i < 3; i++) {
		int mech = MFT_MECH_FENTRY + i;
		const struct mft_avail *a = order[i];
		int n;

		if (forced && forced != mech)
			continue;
		if (a->ok) {
			out->mech = mech;
			n = snprintf(out->why + off, sizeof(out->why) - off, "%s%s: %s", off ? "; " : "",
				     mft_mech_name(mech), forced ? "forced by --mechanism" : "available");
			return;
		}
		n = snprintf(out->why + off, sizeof(out->why) - off, "%s%s unusable (%s)", off ? "; " : "",
			     mft_mech_name(mech), a->why[0] ? a->why : "unknown reason");
		if (n > 0 && (size_t)n < sizeof(out->why) - off)
			off += (size_t)n;
	}
	snprintf(out->why + off, sizeof(out->why) - off, "%snothing can probe %s", off ? "; " : "", what);
}
