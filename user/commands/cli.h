/* SPDX-License-Identifier: GPL-2.0 */
/* What every command's CLI shares: one-line option errors, value parsing, Ctrl-C. */
#ifndef MFT_CLI_H
#define MFT_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include "collect/collector.h"

#define MFT_MAX_PIDS 64

/* What the tracing commands (live mode, record, exporter) share, as their options set it. */
struct mft_cli_trace {
	uint32_t pids[MFT_MAX_PIDS];
	int n_pids;
	double duration;              /* 0: until Ctrl-C */
	struct mft_collector_opts co; /* --tls-records, --mechanism, --verbose, --btf */
	bool json, quiet, wide;
};

/* Output formats: text and json for every command that prints; report adds the timelines. */
enum mft_format { MFT_FMT_TEXT, MFT_FMT_JSON, MFT_FMT_CHROME, MFT_FMT_HTML };
/* -f/--format VALUE: 0, or -1 after a one-line error. timelines: chrome and html allowed. */
int mft_cli_format(const char *s, bool timelines, int *fmt);

/* The long options behind struct mft_cli_trace, to put in a command's option table. */
#define MFT_CLI_PROBE_LONGOPTS                                                                          \
	{ "tls-records", optional_argument, NULL, 'T' }, { "mechanism", required_argument, NULL, 'M' }, \
		{ "verbose", no_argument, NULL, 'v' },                                                  \
	{                                                                                               \
		"btf", required_argument, NULL, 'B'                                                     \
	}
#define MFT_CLI_TARGET_LONGOPTS                          \
	{ "pid", required_argument, NULL, 'p' },         \
	{                                                \
		"duration", required_argument, NULL, 'd' \
	}
#define MFT_CLI_PRINT_LONGOPTS                                                          \
	{ "json", no_argument, NULL, 'j' }, { "format", required_argument, NULL, 'f' }, \
		{ "quiet", no_argument, NULL, 'q' },                                    \
	{                                                                               \
		"wide", no_argument, NULL, 'w'                                          \
	}

/* Returned by mft_cli_next_opt() after it printed a one-line error. */
#define MFT_CLI_BAD '!'
/*
 * getopt_long() for a tracing command: the shared options are taken into t, and the next
 * of the command's own is returned; -1 at the end, MFT_CLI_BAD after a one-line error
 * (for an unknown option or a missing value too). cmd names the command in errors.
 */
int mft_cli_next_opt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts,
		     struct mft_cli_trace *t);

/* Set by SIGINT/SIGTERM once mft_cli_catch_signals() ran. */
extern volatile sig_atomic_t mft_cli_stop;
void mft_cli_catch_signals(void);

/* getopt_long returned ':' or '?': one line naming the option, for "mftrace CMD". Returns 1. */
int mft_cli_option_error(const char *cmd, int opt, char **argv);
/* A stray argument at argv[optind]. Returns 1. */
int mft_cli_unexpected(const char *cmd, char **argv);

/* 0 on success; on failure, a one-line error on stderr and -1. */
int mft_cli_pid(const char *s, uint32_t *pid);
/* One more -p PID into pids[*n] (at most max of them). */
int mft_cli_add_pid(const char *s, uint32_t *pids, int *n, int max);
int mft_cli_duration(const char *s, double *secs);
int mft_cli_mechanism(const char *s, int *mech);
/* --btf FILE: a BTF that libbpf can read (checked now, for a one-line error). */
int mft_cli_btf(const char *s, const char **file);
/* Before touching the kernel: the privileges, and that every pid is a QEMU. */
int mft_cli_check_targets(const uint32_t *pids, int n_pids);

#endif
