/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which mechanism carries each kernel probe: for a kernel function fentry, else kprobe,
 * else a (syscall) tracepoint; for a tracepoint tp_btf, else raw_tp, else the classic
 * perf tracepoint; for a target's own code uprobe_multi (one link per program and
 * binary), else one uprobe link per probe. Pure logic over probe results, so that tests
 * can inject them; the host checks that produce the results live in host.c.
 */
#ifndef MFT_PROBE_SELECT_H
#define MFT_PROBE_SELECT_H

#include <stdbool.h>
#include <stddef.h>

/* How an attach point is (or would be) probed. The first four are the kernel-function
 * choice below; the others name how a target's own code is probed, in attach statuses. */
enum mft_mech {
	MFT_MECH_NONE = 0,
	MFT_MECH_FENTRY,
	MFT_MECH_KPROBE,
	MFT_MECH_TRACEPOINT,
	MFT_MECH_UPROBE,
	MFT_MECH_URETPROBE,
	MFT_MECH_USDT,
	MFT_MECH_SYMBOL, /* not a probe: a symbol looked up in the target (MigrationStatus_lookup) */
	MFT_MECH_TP_BTF, /* BTF-typed raw tracepoint: the cheapest per hit */
	MFT_MECH_RAW_TP,
	MFT_MECH_UPROBE_MULTI,    /* an entry probe in a uprobe_multi link */
	MFT_MECH_URETPROBE_MULTI, /* a return probe in a uprobe_multi link */
	MFT_MECH__MAX,
};

/* What the host said about one way to probe one thing. */
struct mft_avail {
	bool ok;
	char why[96]; /* when !ok: the reason, e.g. "load failed: EPERM" */
};

struct mft_probe_results {
	struct mft_avail fentry, kprobe, tracepoint;
};

struct mft_tp_results {
	struct mft_avail tp_btf, raw_tp, tracepoint;
};

struct mft_choice {
	int mech;      /* enum mft_mech; NONE if nothing works */
	char why[320]; /* what was tried and why it was passed over */
};

/* forced: MFT_MECH_NONE to choose automatically, else only that mechanism is tried */
void mft_choose_mech(const char *what, const struct mft_probe_results *r, int forced, struct mft_choice *out);
/*
 * Same for a tracepoint: tp_btf, raw_tp, tracepoint. forced: MFT_MECH_TRACEPOINT forces
 * classic tracepoints here too; fentry or kprobe (the other chain's) leaves this one automatic.
 */
void mft_choose_tp_mech(const char *what, const struct mft_tp_results *r, int forced, struct mft_choice *out);
/* uprobe_multi if the kernel has it and forced_single is false, else per-probe uprobes. */
void mft_choose_uprobe_mech(const struct mft_avail *multi, bool forced_single, struct mft_choice *out);
/* "fentry", "kprobe", "tracepoint", "uprobe", "uretprobe", "usdt", "symbol", "tp_btf",
 * "raw_tp", "uprobe_multi", "uretprobe_multi" or "none" */
const char *mft_mech_name(int mech);
/* "fentry", "kprobe", "tracepoint" or "auto" -> mechanism; -1 if unknown */
int mft_mech_parse(const char *s);

#endif
