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
#include "collect/host.h"
#include "present/output.h"
#include "collect/procinfo.h"
#include "commands/session.h"
#include "version.h"


const struct mft_command mft_commands[] = {
	/* { "name", "one-line summary", mft_cmd_name }, */
	{ "doctor", "what this host can observe, with proof that the probes fire", mft_cmd_doctor },
	{ "exporter", "serve Prometheus metrics for every QEMU on this host", mft_cmd_exporter },
	{ "record", "write the raw event stream to a file (flight recorder with --max-size)", mft_cmd_record },
	{ "report", "analyse recordings: verdicts as live, one timeline from two hosts, JSON/Perfetto/HTML",
	  mft_cmd_report },
	{ NULL, NULL, NULL },
};

static const char usage[] = "Usage: mftrace -p PID [-p PID ...] [options]\n"
			    "       mftrace doctor [-p PID] [--btf FILE]\n"
			    "       mftrace COMMAND --help   (doctor, exporter, record, report: see Commands below)\n"
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
			    "                       migration (see mftrace(8) for the fields); = --format json\n"
			    "  -f, --format F       text (default) or json\n"
			    "  -q, --quiet          no event lines: only the verdict tables\n"
			    "  -w, --wide           text: every column of the verdict table, whatever the width.\n"
			    "                       By default text fits the terminal (or $COLUMNS, else 80):\n"
			    "                       channel, id, kind, final read, FIN->read margin and verdict,\n"
			    "                       plus peer, shutdown and woken-by from 120 columns on.\n"
			    "                       Colour only on a terminal, and never with $NO_COLOR set\n"
			    "  -d, --duration SECS  stop after SECS seconds (at most a year)\n"
			    "      --tls-records[=SITE]\n"
			    "                       full fidelity: probe every gnutls_record_recv() result (a\n"
			    "                       1 GiB migration makes ~250,000 TLS records). SITE: cheapest\n"
			    "                       (default: the function's tail jump into GnuTLS's record\n"
			    "                       layer, which the kernel emulates: one trap a record, no single\n"
			    "                       step; doctor says whether the library has one) or entry (its\n"
			    "                       first instruction, as other uprobe tools do: three to four\n"
			    "                       times the overhead). Off by default: the default mode reaches\n"
			    "                       its verdicts from kernel events and rare GnuTLS calls\n"
			    "      --mechanism M    kernel probes for shutdown/close: auto (default: fentry, then\n"
			    "                       kprobe, then tracepoint), fentry, kprobe or tracepoint;\n"
			    "                       tracepoint also makes the socket tracepoints classic ones\n"
			    "                       (by default tp_btf, then raw_tp, then tracepoint)\n"
			    "      --btf FILE       kernel types for a kernel without /sys/kernel/btf/vmlinux:\n"
			    "                       its BTF, or a minimal one from `bpftool gen min_core_btf`\n"
			    "                       (`make btf`); also for doctor\n"
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

static int live(const struct mft_cli_trace *t)
{
	struct mft_output out = { 0 };

	/* Validate everything before touching the kernel: one clear line per problem. */
	if (mft_cli_check_targets(t->pids, t->n_pids))
		return 1;
	out.out = stdout;
	out.json = t->json;
	out.events = !t->quiet;
	out.mono_to_real = mft_mono_to_real();
	out.others = t->co.verbose;
	mft_out_fit(&out, t->wide);

	struct mft_session_opts so = {
		.co = t->co,
		.pids = t->pids,
		.n_pids = t->n_pids,
		.duration = t->duration,
		.chatter = true,
		.sink = { .ctx = &out, .event = mft_out_event, .migration = mft_out_migration, .other = mft_out_other },
	};

	if (mft_session_run(&so, &mft_cli_stop))
		return 1;
	return out.flagged ? 2 : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		MFT_CLI_TARGET_LONGOPTS,
		MFT_CLI_PRINT_LONGOPTS,
		MFT_CLI_PROBE_LONGOPTS,
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mft_cli_trace t = { 0 };
	int opt;

	for (const struct mft_command *c = mft_commands; argc > 1 && c->name; c++)
		if (!strcmp(argv[1], c->name))
			return c->run(argc - 1, argv + 1);
	while ((opt = mft_cli_next_opt(NULL, argc, argv, ":p:jf:qwd:vVh", longopts, &t)) != -1) {
		switch (opt) {
		case 'V': printf("mftrace %s\n", MFT_VERSION); return 0;
		case 'h':
			fputs(usage, stdout);
			printf("\nCommands:\n");
			for (const struct mft_command *c = mft_commands; c->name; c++)
				printf("  %-9s %s\n", c->name, c->summary);
			return 0;
		default: /* MFT_CLI_BAD: already said */ return 1;
		}
	}
	if (optind < argc)
		return mft_cli_unexpected(NULL, argv);
	if (!t.n_pids) {
		fprintf(stderr, "mftrace: no target: give -p PID of a QEMU process. Try 'mftrace --help'.\n");
		return 1;
	}
	mft_cli_catch_signals();
	setvbuf(stdout, NULL, _IOLBF, 0);
	return live(&t);
}
