// SPDX-License-Identifier: GPL-2.0
/*
 * An unrelated workload for measuring mftrace's tax on the rest of the host: two threads
 * of this process exchange 64-byte messages over a loopback TCP connection (a send and a
 * recv per message on each side, so every round trip crosses the socket tracepoints four
 * times), for a fixed number of seconds; it prints the round trips per second.
 * Also opens and closes a socket every 64 round trips, so close() and connect()/accept()
 * paths are exercised too. usage: pingpong [SECONDS]   (default 2; loopback only)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int full(int fd, char *buf, size_t n, int rd)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = rd ? recv(fd, buf + off, n - off, 0) : send(fd, buf + off, n - off, 0);

		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

static void *echo(void *arg)
{
	int fd = *(int *)arg;
	char buf[64];

	while (!full(fd, buf, sizeof(buf), 1) && !full(fd, buf, sizeof(buf), 0))
		;
	return NULL;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1, cs, as;
	char buf[64];
	pthread_t th;
	unsigned long n = 0;

	if (secs <= 0 || ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 8) ||
	    getsockname(ls, (struct sockaddr *)&a, &al)) {
		perror("pingpong: listen");
		return 1;
	}
	cs = socket(AF_INET, SOCK_STREAM, 0);
	if (cs < 0 || connect(cs, (struct sockaddr *)&a, sizeof(a)) || (as = accept(ls, NULL, NULL)) < 0) {
		perror("pingpong: connect");
		return 1;
	}
	setsockopt(cs, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(as, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_create(&th, NULL, echo, &as);
	memset(buf, 'x', sizeof(buf));
	double t0 = now(), t;

	do {
		if (full(cs, buf, sizeof(buf), 0) || full(cs, buf, sizeof(buf), 1)) {
			perror("pingpong: exchange");
			return 1;
		}
		if (++n % 64 == 0) { /* a short-lived connection: connect, accept, close */
			int c2 = socket(AF_INET, SOCK_STREAM, 0), a2;

			if (c2 < 0 || connect(c2, (struct sockaddr *)&a, sizeof(a)) ||
			    (a2 = accept(ls, NULL, NULL)) < 0) {
				perror("pingpong: connect");
				return 1;
			}
			close(a2);
			close(c2);
		}
		t = now();
	} while (t - t0 < secs);
	printf("%.0f\n", (double)n / (t - t0));
	shutdown(cs, SHUT_RDWR);
	pthread_join(th, NULL);
	return 0;
}
