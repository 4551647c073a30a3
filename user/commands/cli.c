// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"
#include "commands/cli.h"
#include "collect/host.h"
#include "collect/probe_select.h"
#include "collect/procinfo.h"

#define MAX_PID 4194304                /* PID_MAX_LIMIT */
#define MAX_DURATION (366 * 24 * 3600) /* a year: larger values are a typo */

volatile sig_atomic_t mft_cli_stop;

static void on_signal(int sig)
{
	(void)sig;
	mft_cli_stop = 1;
}

void mft_cli_catch_signals(void)
{
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
}

/* "mftrace --help" or "mftrace CMD --help" */
static void hint(const char *cmd)
{
	fprintf(stderr, " Try 'mftrace%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
}

int mft_cli_option_error(const char *cmd, int opt, char **argv)
{
	if (opt == ':')
		fprintf(stderr, "mftrace: option '%s' needs a value.", argv[optind - 1]);
	else if (optopt)
		fprintf(stderr, "mftrace: unknown option '-%c'.", optopt);
	else
		fprintf(stderr, "mftrace: unknown option '%s'.", argv[optind - 1]);
	hint(cmd);
	return 1;
}

int mft_cli_unexpected(const char *cmd, char **argv)
{
	fprintf(stderr, "mftrace: unexpected argument '%s'.", argv[optind]);
	hint(cmd);
	return 1;
}

int mft_cli_pid(const char *s, uint32_t *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || errno || *end || v <= 0 || v > MAX_PID) {
		fprintf(stderr, "mftrace: invalid pid '%s'\n", s);
		return -1;
	}
	*pid = (uint32_t)v;
	return 0;
}

int mft_cli_add_pid(const char *s, uint32_t *pids, int *n, int max)
{
	if (*n == max) {
		fprintf(stderr, "mftrace: at most %d -p options\n", max);
		return -1;
	}
	if (mft_cli_pid(s, &pids[*n]))
		return -1;
	(*n)++;
	return 0;
}

int mft_cli_duration(const char *s, double *secs)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !isfinite(v) || v <= 0 || v > MAX_DURATION) {
		fprintf(stderr, "mftrace: invalid duration '%s' (seconds, > 0 and at most %d)\n", s, MAX_DURATION);
		return -1;
	}
	*secs = v;
	return 0;
}

int mft_cli_mechanism(const char *s, int *mech)
{
	*mech = mft_mech_parse(s);
	if (*mech < 0) {
		fprintf(stderr, "mftrace: invalid mechanism '%s' (auto, fentry, kprobe, tracepoint)\n", s);
		return -1;
	}
	return 0;
}

int mft_cli_format(const char *s, bool timelines, int *fmt)
{
	static const struct {
		const char *name;
		int fmt;
		bool timeline;
	} f[] = {
		{ "text", MFT_FMT_TEXT, false },    { "json", MFT_FMT_JSON, false },
		{ "chrome", MFT_FMT_CHROME, true }, { "perfetto", MFT_FMT_CHROME, true },
		{ "html", MFT_FMT_HTML, true },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!strcmp(s, f[i].name) && (timelines || !f[i].timeline)) {
			*fmt = f[i].fmt;
			return 0;
		}
	fprintf(stderr, "mftrace: invalid format '%s' (%s)\n", s,
		timelines ? "text, json, chrome, html" : "text, json");
	return -1;
}

int mft_cli_btf(const char *s, const char **file)
{
	char why[512];

	if (mft_check_btf(s, why, sizeof(why))) {
		fprintf(stderr, "mftrace: %s\n", why);
		return -1;
	}
	*file = s;
	return 0;
}

/* One of the shared options: 1 taken, 0 not one of them, -1 after a one-line error. */
static int trace_opt(int opt, const char *arg, struct mft_cli_trace *t)
{
	switch (opt) {
	case 'p': return mft_cli_add_pid(arg, t->pids, &t->n_pids, MFT_MAX_PIDS) ? -1 : 1;
	case 'd': return mft_cli_duration(arg, &t->duration) ? -1 : 1;
	case 'T':
		t->co.tls_records = true;
		if (!arg || !strcmp(arg, "cheapest"))
			return 1;
		if (!strcmp(arg, "entry")) {
			t->co.probe_entry = true;
			return 1;
		}
		fprintf(stderr, "mftrace: invalid --tls-records site '%s' (cheapest, entry)\n", arg);
		return -1;
	case 'M': return mft_cli_mechanism(arg, &t->co.forced_mech) ? -1 : 1;
	case 'v': t->co.verbose = true; return 1;
	case 'B': return mft_cli_btf(arg, &t->co.btf) ? -1 : 1;
	case 'j': t->json = true; return 1;
	case 'w': t->wide = true; return 1;
	case 'f': {
		int fmt;

		if (mft_cli_format(arg, false, &fmt))
			return -1;
		t->json = fmt == MFT_FMT_JSON;
		return 1;
	}
	case 'q': t->quiet = true; return 1;
	default: return 0;
	}
}

int mft_cli_next_opt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts,
		     struct mft_cli_trace *t)
{
	int opt, taken;

	opterr = 0; /* one line per error, in our words */
	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (opt == '?' || opt == ':') {
			mft_cli_option_error(cmd, opt, argv);
			return MFT_CLI_BAD;
		}
		taken = trace_opt(opt, optarg, t);
		if (taken < 0)
			return MFT_CLI_BAD;
		if (!taken)
			return opt;
	}
	return -1;
}

int mft_cli_check_targets(const uint32_t *pids, int n_pids)
{
	struct mft_procinfo pi;
	char err[512];

	if (mft_check_privileges(err, sizeof(err))) {
		fprintf(stderr, "mftrace: %s\n", err);
		return -1;
	}
	for (int i = 0; i < n_pids; i++) {
		char comm[sizeof(pi.comm)], exe[sizeof(pi.exe)];

		if (mft_procinfo_read(pids[i], &pi, err, sizeof(err))) {
			fprintf(stderr, "mftrace: %s\n", mft_sanitize(exe, sizeof(exe), err));
			return -1;
		}
		if (!mft_procinfo_is_qemu(&pi)) {
			fprintf(stderr, "mftrace: pid %u (%s, %s) is not a QEMU process\n", pids[i],
				mft_sanitize(comm, sizeof(comm), pi.comm), mft_sanitize(exe, sizeof(exe), pi.exe));
			return -1;
		}
	}
	return 0;
}
