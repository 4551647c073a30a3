/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one home of the correlator's words: event, role and channel-kind names, as every
 * output (text, JSON, metrics, timelines) shows them. Verdict and severity names live with
 * the policy, in verdict.c.
 */
#ifndef MFT_NAMES_H
#define MFT_NAMES_H

/* What a channel carries (struct mft_chan.kind). */
enum mft_kind { MFT_KIND_UNKNOWN = 0, MFT_KIND_MAIN, MFT_KIND_MULTIFD };

/* "connect", "fin-received", ... for enum mft_ev_type; "unknown" otherwise */
const char *mft_ev_name(int type);
/* "source", "destination", "unknown" for MFT_ROLE_* */
const char *mft_role_name(int role);
/* "src", "dst", "?": the same, for narrow columns */
const char *mft_role_short(int role);
/* "main", "multifd", "unknown" for enum mft_kind */
const char *mft_kind_name(int kind);

#endif
