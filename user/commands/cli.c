// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "base/util.h"
#include "commands/cli.h"
#include "collect/host.h"
#include "collect/probe_select.h"
#include "collect/procinfo.h"

#define MAX_PID 4194304                   /* PID_MAX_LIMIT */
#define MAX_DURATION (366 * 24 * 3600)    /* a year: larger values are a typo */

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
