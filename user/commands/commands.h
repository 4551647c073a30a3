/* SPDX-License-Identifier: GPL-2.0 */
/* Subcommands other than live mode: `mftrace NAME [options]`, each in its own file. */
#ifndef MFT_COMMANDS_H
#define MFT_COMMANDS_H

struct mft_command {
	const char *name;
	const char *summary;               /* one line for `mftrace --help` */
	int (*run)(int argc, char **argv); /* argv[0] is the command's name */
};

/* The table lives in main.c; add a line there for each new command. */
extern const struct mft_command mft_commands[];

int mft_cmd_doctor(int argc, char **argv);
int mft_cmd_exporter(int argc, char **argv);

int mft_cmd_record(int argc, char **argv);
int mft_cmd_report(int argc, char **argv);

#endif
