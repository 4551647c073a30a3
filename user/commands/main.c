// SPDX-License-Identifier: GPL-2.0
/*
 * mftrace: who closed first on each multifd channel of a QEMU live migration, and
 * what the last read saw. This file is the CLI: argument parsing and the live loop.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "commands/cli.h"
#include "collect/collector.h"
#include "commands/commands.h"
#include "correlate/correlator.h"
#include "commands/doctor.h"
#include "collect/host.h"
#include "present/output.h"
#include "collect/procinfo.h"
#include "commands/session.h"
#include "version.h"

#define MAX_PIDS 64

const struct mft_command mft_commands[] = {
	/* { "name", "one-line summary", mft_cmd_name }, */
	{ "exporter", "serve Prometheus metrics for every QEMU on this host", mft_cmd_exporter },
	{ "record", "write the raw event stream to a file (flight recorder with --max-size)", mft_cmd_record },
	{ "report", "analyse recordings: verdicts as live, one timeline from two hosts, JSON/Perfetto/HTML", mft_cmd_report },
	{ NULL, NULL, NULL },
};

static const char usage[] =
"Usage: mftrace -p PID [-p PID ...] [options]\n"
"       mftrace doctor [-p PID]\n"
"       mftrace COMMAND --help   (exporter, record, report: see Commands below)\n"
"\n"
"Trace every multifd channel of a QEMU live migration and tell, per channel, who\n"
"closed first and what the last read saw: did the source's shutdown beat the\n"
"destination's final TLS recv (\"The TLS connection was non-properly terminated\")?\n"
"\n"
"Attach to the source QEMU, the destination QEMU, or both (on one host, both ends\n"
"give the most exact verdicts). mftrace prints one line per channel event as it\n"
"happens, and a verdict table when each migration ends. It stays attached for the\n"
"next migration until Ctrl-C, --duration, or until every traced QEMU has exited.\n"
"\n"
"Options:\n"
"  -p, --pid PID        trace this QEMU process (repeat for several)\n"
"  -j, --json           JSON lines: events, then one record per channel and per\n"
"                       migration (see mftrace(8) for the fields)\n"
"  -q, --quiet          no event lines: only the verdict tables\n"
"  -d, --duration SECS  stop after SECS seconds (at most a year)\n"
"      --tls-records    full fidelity: probe every gnutls_record_recv() result. Costs\n"
"                       ~10 us per TLS record (a 1 GiB migration has ~250,000), so it\n"
"                       is off by default; the default mode reaches its verdicts from\n"
"                       kernel events and rare GnuTLS calls\n"
"      --mechanism M    kernel probes for shutdown/close: auto (default: fentry, then\n"
"                       kprobe, then tracepoint), fentry, kprobe or tracepoint\n"
"  -v, --verbose        show libbpf's log and every attach point, and list the other\n"
"                       connections of the traced QEMUs (NBD, VNC, chardevs: no\n"
"                       migration evidence, never judged)\n"
"  -V, --version        print the version\n"
"  -h, --help           this help\n"
"\n"
"Verdicts (per multifd channel; the main migration channel is shown, not judged):\n"
"  clean       close_notify arrived before EOF; the final read returned 0 through TLS\n"
"  premature   the shutdown beat the final read: it hit EOF without close_notify\n"
"              (GnuTLS -110); tolerated or fatal, by the migration's outcome\n"
"  unread      the peer shut down and the receiver never read again (safe by luck)\n"
"  reset       the connection was reset\n"
"  plain       no TLS on the channel; EOF is the normal end\n"
"  incomplete  tracing started or stopped in the middle of the channel's life\n"
"A side that cannot see a verdict alone prints the ones still possible, e.g.\n"
"\"premature|unread\" on a source whose destination is on another host.\n"
"\n"
"Examples:\n"
"  mftrace -p $(pidof qemu-system-x86_64)      # both ends on this host\n"
"  mftrace -p 4242 --json -q > verdicts.jsonl  # destination only, machine-readable\n"
"  mftrace doctor -p 4242                      # what this host can observe, proven\n"
"\n"
"Needs root (or CAP_SYS_ADMIN). Exit status: 0 on success, 1 on a usage or\n"
"set-up error, 2 if a traced migration was flagged (a shutdown beat a final read).\n";

struct live {
	struct mft_output out;
	int flagged;
};

static void on_migration(void *ctx, const struct mft_correlator *c, const struct mft_migration *m)
{
	struct live *l = ctx;

	if (m->verdict.flagged)
		l->flagged++;
	mft_out_migration(&l->out, c, m);
}

static void on_chan_event(void *ctx, const struct mft_correlator *c, const struct mft_chan *ch,
			  const struct mft_event *ev)
{
	struct live *l = ctx;

	mft_out_event(&l->out, c, ch, ev);
}

static int live(uint32_t *pids, int n_pids, const struct mft_collector_opts *co, bool json, bool quiet,
		double duration)
{
	struct live l = { 0 };

	/* Validate everything before touching the kernel: one clear line per problem. */
	if (mft_cli_check_targets(pids, n_pids))
		return 1;
	l.out.out = stdout;
	l.out.json = json;
	l.out.events = !quiet;
	l.out.others = co->verbose;
	l.out.mono_to_real = mft_mono_to_real();

	struct mft_session_opts so = {
		.co = *co,
		.pids = pids,
		.n_pids = n_pids,
		.duration = duration,
		.chatter = true,
		.sink = { .ctx = &l, .event = on_chan_event, .migration = on_migration, .other = mft_out_other },
	};

	if (mft_session_run(&so, &mft_cli_stop))
		return 1;
	return l.flagged ? 2 : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "duration", required_argument, NULL, 'd' },
		{ "tls-records", no_argument, NULL, 'T' },
		{ "mechanism", required_argument, NULL, 'M' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mft_collector_opts co = { 0 };
	uint32_t pids[MAX_PIDS];
	int n_pids = 0, opt;
	bool json = false, quiet = false, doctor = false;
	double duration = 0;

	for (const struct mft_command *c = mft_commands; argc > 1 && c->name; c++)
		if (!strcmp(argv[1], c->name))
			return c->run(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "doctor")) {
		doctor = true;
		argv++;
		argc--;
	}
	opterr = 0; /* one line per error, in our words */
	while ((opt = getopt_long(argc, argv, ":p:jqd:vVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (mft_cli_add_pid(optarg, pids, &n_pids, MAX_PIDS))
				return 1;
			break;
		case 'j': json = true; break;
		case 'q': quiet = true; break;
		case 'd':
			if (mft_cli_duration(optarg, &duration))
				return 1;
			break;
		case 'T': co.tls_records = true; break;
		case 'M':
			if (mft_cli_mechanism(optarg, &co.forced_mech))
				return 1;
			break;
		case 'v': co.verbose = true; break;
		case 'V': printf("mftrace %s\n", MFT_VERSION); return 0;
		case 'h':
			fputs(usage, stdout);
			printf("\nCommands:\n  %-9s %s\n", "doctor", "what this host can observe, with proof that the probes fire");
			for (const struct mft_command *c = mft_commands; c->name; c++)
				printf("  %-9s %s\n", c->name, c->summary);
			return 0;
		default:
			return mft_cli_option_error(NULL, opt, argv);
		}
	}
	if (optind < argc)
		return mft_cli_unexpected(NULL, argv);
	if (doctor)
		return mft_doctor(pids, n_pids, &co);
	if (!n_pids) {
		fprintf(stderr, "mftrace: no target: give -p PID of a QEMU process. Try 'mftrace --help'.\n");
		return 1;
	}
	mft_cli_catch_signals();
	setvbuf(stdout, NULL, _IOLBF, 0);
	return live(pids, n_pids, &co, json, quiet, duration);
}
