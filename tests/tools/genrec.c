// SPDX-License-Identifier: GPL-2.0
/*
 * A generated recording for benchmarking `mftrace report` (scripts/bench-report.py): a
 * host where one VM migrates again and again between two local QEMUs, both traced, as
 * `mftrace record -p DST -p SRC` would record it. Each migration is a 7.2 -> 7.2 TLS
 * multifd migration: a main channel and C multifd channels, opened, TLS set up and
 * identified (MultiFDInit_t), then S SYNC packets on every destination channel, then the
 * source's shutdown without gnutls_bye, FINs, some final reads, closes and the states.
 * The destination of one migration is the source of the next; the old source exits.
 * Times, byte counts and lengths jitter (a fixed seed): the file is the same every run.
 *
 * Written by the real writer (user/store/recfile.c), in the current format or, with
 * --format 1, in format 1.0 (what an older mftrace reads, for "before" numbers).
 *
 * usage: genrec [-n MIGRATIONS] [-c CHANNELS] [-s SYNCS] [--format 1|2] -o FILE
 *        (defaults: 1000 migrations, 4 channels, 2500 syncs: 10.0 M SYNC events)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "store/recfile.h"

#define MS 1000000ull
#define US 1000ull
#define PORT 4444

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return n ? rng % n : 0;
}

struct gen {
	struct mft_recw *w;
	uint64_t t;
	uint64_t n;
	int channels;
};

struct end {
	uint32_t pid;
	int role;
	uint64_t sk;
	uint16_t lport, rport;
	struct mft_sock_snap snap;
};

static void put(struct gen *g, const struct mft_event *e)
{
	mft_recw_event(g->w, e);
	g->n++;
}

static void sock_ev(struct gen *g, struct end *s, int type, int64_t ret, uint64_t arg, uint32_t tid, const char *comm)
{
	struct mft_event e = { 0 };

	e.ts_ns = g->t;
	e.type = (uint16_t)type;
	e.pid = s->pid;
	e.tid = tid;
	e.sk = s->sk;
	e.ret = ret;
	e.arg = arg;
	e.role = (uint8_t)s->role;
	e.family = AF_INET;
	e.laddr[0] = e.raddr[0] = 127;
	e.laddr[3] = e.raddr[3] = 1;
	e.lport = s->lport;
	e.rport = s->rport;
	e.snap = s->snap;
	if (comm)
		snprintf(e.str, sizeof(e.str), "%s", comm);
	put(g, &e);
}

static void state_ev(struct gen *g, uint32_t pid, const char *name, int64_t new_state, uint64_t old_state)
{
	struct mft_event e = { 0 };

	e.ts_ns = g->t;
	e.type = MFT_EV_MIG_STATE;
	e.pid = pid;
	e.tid = pid + 7;
	e.sk = 0x55d0c0de0000ull + pid; /* the state machine's address */
	e.ret = new_state;
	e.arg = old_state;
	snprintf(e.str, sizeof(e.str), "%s", name);
	put(g, &e);
}

static void target(struct gen *g, uint32_t pid, bool incoming, int vm, bool removed)
{
	struct mft_rec_target t = { .pid = pid, .incoming = incoming, .removed = removed, .t_mono = g->t };

	snprintf(t.name, sizeof(t.name), "vm%d", vm);
	snprintf(t.exe, sizeof(t.exe), "/usr/bin/qemu-system-x86_64");
	snprintf(t.qemu_version, sizeof(t.qemu_version), "7.2.15");
	snprintf(t.gnutls, sizeof(t.gnutls), "/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3");
	snprintf(t.gnutls_version, sizeof(t.gnutls_version), "3.7.9");
	snprintf(t.cmdline, sizeof(t.cmdline),
		 "qemu-system-x86_64 -name guest=vm%d -M pc -m 1024 -nodefaults -display none -accel tcg "
		 "-object tls-creds-psk,id=tls0,endpoint=%s,dir=/etc/pki/qemu%s",
		 vm, incoming ? "server" : "client", incoming ? " -incoming defer" : "");
	mft_recw_target(g->w, &t);
}

static void init_ev(struct gen *g, struct end *s, int id)
{
	struct mft_event e = { 0 };
	uint8_t raw[32] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };

	for (int i = 0; i < 16; i++)
		raw[8 + i] = (uint8_t)(0xa0 + i);
	raw[24] = (uint8_t)id;
	e.ts_ns = g->t;
	e.type = MFT_EV_CHAN_INIT;
	e.pid = s->pid;
	e.tid = s->pid + 20 + (uint32_t)id;
	e.sk = s->sk;
	e.ret = -1;
	e.role = (uint8_t)s->role;
	e.family = AF_INET;
	e.laddr[0] = e.raddr[0] = 127;
	e.laddr[3] = e.raddr[3] = 1;
	e.lport = s->lport;
	e.rport = s->rport;
	e.snap = s->snap;
	memcpy(&e.arg, raw, 8);
	memcpy(e.str, raw + 8, 24);
	put(g, &e);
}

static void migration(struct gen *g, int i, uint32_t src, uint32_t dst, int syncs)
{
	int nc = g->channels + 1;
	struct end s[nc], d[nc];
	char comm[24];

	target(g, dst, true, 1, false);
	state_ev(g, src, "setup", 1, 0);
	for (int c = 0; c < nc; c++) {
		uint16_t port = (uint16_t)(32768 + (i * nc + c) % 28000);

		s[c] = (struct end){ src,
				     MFT_ROLE_SOURCE,
				     0xffff888100000000ull + ((uint64_t)i << 12) + (uint64_t)c * 0x140,
				     port,
				     PORT,
				     { 0 } };
		d[c] = (struct end){
			dst,  MFT_ROLE_DEST, 0xffff888200000000ull + ((uint64_t)i << 12) + (uint64_t)c * 0x140,
			PORT, port,          { 0 }
		};
		g->t += 50 * US + rnd(50 * US);
		sock_ev(g, &s[c], MFT_EV_SOCK_CONNECT, 0, 0, src + 7, "live_migration");
		sock_ev(g, &s[c], MFT_EV_ESTABLISHED, 0, 0, 0, NULL);
		g->t += 20 * US + rnd(20 * US);
		sock_ev(g, &d[c], MFT_EV_SOCK_ACCEPT, 0, 0, dst + 1, "qemu-system-x86");
		if (c == 0) {
			g->t += 10 * US;
			state_ev(g, src, "active", 4, 1);
			state_ev(g, dst, "active", 4, 1);
		}
		g->t += 900 * US + rnd(200 * US);
		s[c].snap.flags = d[c].snap.flags = MFT_SF_TLS;
		s[c].snap.tx_bytes += 1800 + rnd(200);
		d[c].snap.rx_bytes += 1800 + rnd(200);
		d[c].snap.rx_calls += 3;
		d[c].snap.last_rx_ns = g->t - 5 * US;
		d[c].snap.last_rx_len = 1500 + (int32_t)rnd(300);
		d[c].snap.prev_rx_len = 5;
		d[c].snap.last_rx_tid = dst + 1;
		sock_ev(g, &s[c], MFT_EV_TLS_HANDSHAKE, 0, 0x7f0010000000ull + (uint64_t)c * 0x2000, src + 20 + c,
			"live_migration");
		sock_ev(g, &d[c], MFT_EV_TLS_HANDSHAKE, 0, 0x7f0020000000ull + (uint64_t)c * 0x2000, dst + 1,
			"qemu-system-x86");
		sock_ev(g, &d[c], MFT_EV_FIRST_READ, 0, 0, dst + 1, "qemu-system-x86");
		if (c) {
			g->t += 30 * US + rnd(10 * US);
			init_ev(g, &s[c], c - 1);
			g->t += 20 * US + rnd(10 * US);
			init_ev(g, &d[c], c - 1);
			s[c].snap.flags |= MFT_SF_MULTIFD;
			d[c].snap.flags |= MFT_SF_MULTIFD;
		}
	}
	for (int k = 0; k < syncs; k++)
		for (int c = 1; c < nc; c++) {
			struct end *e = &d[c];
			uint64_t bytes = 500000 + rnd(60000);

			g->t += 40 * US + rnd(40 * US);
			e->snap.rx_bytes += bytes;
			e->snap.rx_calls += 64 + rnd(4) * 2;
			e->snap.tls_records += 32 + (uint32_t)rnd(2);
			e->snap.last_rx_ns = g->t - 2 * US - rnd(3 * US);
			e->snap.prev_rx_len = e->snap.last_rx_len;
			e->snap.last_rx_len = rnd(8) ? 16401 : 5;
			e->snap.last_rx_tid = dst + 20 + (uint32_t)c;
			s[c].snap.tx_bytes += bytes + 29 * 32;
			snprintf(comm, sizeof(comm), "multifdrecv_%d", c - 1);
			sock_ev(g, e, MFT_EV_CHAN_SYNC, c - 1, (uint64_t)k, dst + 20 + (uint32_t)c, comm);
		}
	/* the end, as QEMU 7.2 does it: no gnutls_bye, shutdown(SHUT_RDWR), FIN */
	g->t += 2 * MS;
	state_ev(g, src, "completed", 5, 4);
	for (int c = 1; c < nc; c++) {
		g->t += 30 * US + rnd(30 * US);
		s[c].snap.flags |= MFT_SF_LOCAL_SHUT | MFT_SF_FIN_SENT;
		sock_ev(g, &s[c], MFT_EV_SHUTDOWN, 2, 0, src + 7, "live_migration");
		sock_ev(g, &s[c], MFT_EV_FIN_SENT, 0, 0, 0, NULL);
		g->t += 15 * US + rnd(10 * US);
		d[c].snap.flags |= MFT_SF_FIN_RCVD;
		sock_ev(g, &d[c], MFT_EV_FIN_RCVD, 0, 0, 0, NULL);
		if (rnd(2)) { /* this channel's recv thread reads once more */
			g->t += 5 * US + rnd(20 * US);
			d[c].snap.flags |= MFT_SF_EOF_READ;
			d[c].snap.rx_calls++;
			snprintf(comm, sizeof(comm), "multifdrecv_%d", c - 1);
			sock_ev(g, &d[c], MFT_EV_READ_EOF, 0, 0, dst + 20 + (uint32_t)c, comm);
		}
	}
	g->t += 1 * MS;
	s[0].snap.flags |= MFT_SF_LOCAL_SHUT | MFT_SF_FIN_SENT;
	sock_ev(g, &s[0], MFT_EV_FIN_SENT, 0, 0, 0, NULL);
	d[0].snap.flags |= MFT_SF_FIN_RCVD;
	sock_ev(g, &d[0], MFT_EV_FIN_RCVD, 0, 0, 0, NULL);
	g->t += 3 * MS;
	state_ev(g, dst, "completed", 5, 4);
	for (int c = 0; c < nc; c++) {
		g->t += 20 * US + rnd(20 * US);
		sock_ev(g, &d[c], MFT_EV_CLOSE, 0, 0, dst + 1, "qemu-system-x86");
		sock_ev(g, &d[c], MFT_EV_DESTROY, 0, 0, 0, NULL);
		sock_ev(g, &s[c], MFT_EV_CLOSE, 0, 0, src + 7, "live_migration");
		sock_ev(g, &s[c], MFT_EV_DESTROY, 0, 0, 0, NULL);
	}
	/* the old source exits; the next migration's source is this destination */
	g->t += 50 * MS + rnd(10 * MS);
	{
		struct mft_event e = { .ts_ns = g->t, .type = MFT_EV_PROC_EXIT, .pid = src, .tid = src };

		put(g, &e);
	}
	target(g, src, false, 1, true);
	g->t += 200 * MS + rnd(100 * MS);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int n_migs = 1000, syncs = 2500, format = MFT_REC_MAJOR, opt;
	const char *out = NULL;
	struct gen g = { .channels = 4, .t = 1000ull * 1000 * MS };
	struct mft_recw_opts wo = { .force = true };
	struct mft_rec_host host = { .tls_records = false };
	struct mft_rec_clock clk = { .mono_ns = g.t, .real_ns = 1764547200ll * 1000000000ll, .err_ns = 150 };
	struct mft_rec_counters fin = { 0 };
	char err[256];
	uint32_t src = 4000, dst;

	while ((opt = getopt_long(argc, argv, "n:c:s:o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': n_migs = atoi(optarg); break;
		case 'c': g.channels = atoi(optarg); break;
		case 's': syncs = atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'F': format = atoi(optarg); break;
		default:
			fprintf(stderr,
				"usage: genrec [-n MIGRATIONS] [-c CHANNELS] [-s SYNCS] [--format 1|2] -o FILE\n");
			return opt == 'h' ? 0 : 1;
		}
	}
	if (!out || n_migs < 1 || g.channels < 1 || g.channels > 64 || syncs < 0 || format < 1 ||
	    format > MFT_REC_MAJOR) {
		fprintf(stderr, "genrec: -o FILE is required; 1-64 channels, at least one migration, format 1 or %d\n",
			MFT_REC_MAJOR);
		return 1;
	}
	wo.format = (unsigned)format;
	g.w = mft_recw_open(out, &wo, err, sizeof(err));
	if (!g.w) {
		fprintf(stderr, "genrec: %s\n", err);
		return 1;
	}
	snprintf(host.hostname, sizeof(host.hostname), "genhost");
	snprintf(host.kernel, sizeof(host.kernel), "6.18.0 #1 SMP PREEMPT_DYNAMIC");
	snprintf(host.machine, sizeof(host.machine), "x86_64");
	snprintf(host.boot_id, sizeof(host.boot_id), "5f0c6a3e-1b7d-4c2a-9e51-0d6b1f2a3c4d");
	snprintf(host.tool_version, sizeof(host.tool_version), "genrec");
	mft_recw_host(g.w, &host);
	mft_recw_clock(g.w, &clk);
	target(&g, src, false, 1, false);
	for (int i = 0; i < n_migs; i++) {
		dst = src + 1 + (uint32_t)rnd(50);
		migration(&g, i, src, dst, syncs);
		src = dst;
		if (i % 16 == 15)
			mft_recw_flush(g.w);
	}
	fin.mono_ns = g.t;
	fin.kernel_events = g.n;
	if (mft_recw_close(g.w, &fin, NULL)) {
		fprintf(stderr, "genrec: writing %s failed\n", out);
		return 1;
	}
	printf("%llu\n", (unsigned long long)g.n);
	return 0;
}
