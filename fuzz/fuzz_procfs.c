// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the /proc/PID parsers (user/collect/procinfo.c): a maps line, a stat
 * line and a command line are all written by, or named after, the target process.
 */
#include <stdlib.h>
#include <string.h>
#include "collect/procinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), name[64];
	struct mft_map m;
	bool incoming;

	if (!copy)
		return 0;
	/* the command line: NUL-separated, not NUL-terminated */
	memcpy(copy, data, size);
	mft_cmdline_parse(copy, size, name, sizeof(name), &incoming);
	struct mft_qemu_args a;

	mft_qemu_args_parse(copy, size, &a);
	if (strnlen(a.uuid, sizeof(a.uuid)) == sizeof(a.uuid) ||
	    strnlen(a.machine, sizeof(a.machine)) == sizeof(a.machine))
		abort();
	mft_clean_tls_termination(&a, copy[0] ? "10.0.2" : "7.2.0", name, sizeof(name));
	if (strnlen(name, sizeof(name)) == sizeof(name))
		abort();
	mft_stat_starttime(copy, size);
	/* a maps line is a C string */
	copy[size] = '\0';
	if (!mft_maps_parse(copy, &m) && (m.path < copy || m.path > copy + size || m.end < m.start))
		abort();
	free(copy);
	return 0;
}
