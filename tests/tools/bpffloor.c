// SPDX-License-Identifier: GPL-2.0
/*
 * make bench's reference for the BPF run-time figures: loads one pair of
 * tests/tools/bpffloor.bpf.c's programs (on sock_recv_length and sock_send_length) and
 * keeps them attached until stdin closes or a signal comes. Alone on the hooks, where
 * mftrace's are alone during its own rounds: bpf_stats reports the first program on a
 * hook higher than the ones after it.
 * usage: bpffloor empty|clock|lookup   (root; prints "READY" once attached)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "bpffloor.skel.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	static const char *const kinds[] = { "empty", "clock", "lookup" };
	struct bpffloor_bpf *s;
	struct bpf_program *p;
	char name[32];
	int kind = -1, rc = 1;

	for (int i = 0; argc == 2 && i < 3; i++)
		if (!strcmp(argv[1], kinds[i]))
			kind = i;
	if (kind < 0) {
		fprintf(stderr, "usage: bpffloor empty|clock|lookup\n");
		return 2;
	}
	s = bpffloor_bpf__open();
	if (!s) {
		fprintf(stderr, "bpffloor: cannot open the BPF object: %s\n", strerror(errno));
		return 1;
	}
	bpf_object__for_each_program(p, s->obj)
	{
		snprintf(name, sizeof(name), "%s_", kinds[kind]);
		bpf_program__set_autoload(p, !strncmp(bpf_program__name(p), name, strlen(name)));
	}
	if (bpffloor_bpf__load(s) || bpffloor_bpf__attach(s)) {
		fprintf(stderr, "bpffloor: cannot load or attach: %s\n", strerror(errno));
		goto out;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("READY\n");
	fflush(stdout);
	while (!stop) {
		char c;

		if (read(0, &c, 1) <= 0)
			break;
	}
	rc = 0;
out:
	bpffloor_bpf__destroy(s);
	return rc;
}
