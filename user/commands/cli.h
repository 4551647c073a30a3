/* SPDX-License-Identifier: GPL-2.0 */
/* What every command's CLI shares: one-line option errors, value parsing, Ctrl-C. */
#ifndef MFT_CLI_H
#define MFT_CLI_H

#include <signal.h>
#include <stdint.h>

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
/* Before touching the kernel: the privileges, and that every pid is a QEMU. */
int mft_cli_check_targets(const uint32_t *pids, int n_pids);

#endif
