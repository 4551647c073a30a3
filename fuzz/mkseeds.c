// SPDX-License-Identifier: GPL-2.0
/* Seeds for the fuzzer: a plain recording and a wrapped flight recorder, made by the writer. */
#include <stdio.h>
#include <string.h>
#include "store/recfile.h"

static void fill(struct mft_recw *w, int n)
{
	struct mft_rec_host h = { .tls_records = true };
	struct mft_rec_clock c = { .mono_ns = 1000, .real_ns = 1700000000000000000ll, .err_ns = 10 };
	struct mft_rec_target t = { .pid = 42, .incoming = true };
	struct mft_rec_probe p = { .pid = 42, .ok = true };
	struct mft_rec_counters k = { .mono_ns = 5000, .rb_dropped = 1 };

	snprintf(h.hostname, sizeof(h.hostname), "seed");
	snprintf(h.boot_id, sizeof(h.boot_id), "b00t");
	snprintf(t.name, sizeof(t.name), "vm");
	snprintf(t.cmdline, sizeof(t.cmdline), "qemu-system-x86_64 -incoming defer");
	snprintf(p.what, sizeof(p.what), "gnutls_bye");
	snprintf(p.mech, sizeof(p.mech), "uprobe");
	mft_recw_host(w, &h);
	mft_recw_clock(w, &c);
	mft_recw_target(w, &t);
	mft_recw_probe(w, &p);
	for (int i = 0; i < n; i++) {
		struct mft_event e = { .ts_ns = 2000 + (uint64_t)i,
				       .sk = 0x100 + (uint64_t)(i % 5),
				       .pid = 42,
				       .type = (uint16_t)(1 + i % (MFT_EV__MAX - 1)),
				       .family = 2,
				       .lport = 4444,
				       .rport = (uint16_t)(50000 + i % 5),
				       .role = MFT_ROLE_DEST };

		mft_recw_event(w, &e);
		if (i == n / 2)
			mft_recw_counters(w, &k);
	}
	mft_recw_close(w, &k, NULL);
}

int main(int argc, char **argv)
{
	struct mft_recw_opts ring = { .max_size = MFT_REC_PREAMBLE_LEN + 4 * MFT_REC_MIN_SEGMENT,
				      .n_segments = 4,
				      .force = true };
	char path[512], err[256];
	struct mft_recw *w;

	if (argc != 2) {
		fprintf(stderr, "usage: mkseeds DIR\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/plain.mftrec", argv[1]);
	if (!(w = mft_recw_open(path, &(struct mft_recw_opts){ .force = true }, err, sizeof(err))))
		return fprintf(stderr, "%s\n", err), 1;
	fill(w, 12);
	snprintf(path, sizeof(path), "%s/ring.mftrec", argv[1]);
	if (!(w = mft_recw_open(path, &ring, err, sizeof(err))))
		return fprintf(stderr, "%s\n", err), 1;
	fill(w, 120);
	return 0;
}
