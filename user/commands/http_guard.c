// SPDX-License-Identifier: GPL-2.0
/*
 * The exporter's guard against hostile HTTP clients: a deadline per request and a share
 * of the connections per client (http_guard.h). libmicrohttpd 0.9.75 has an idle timeout
 * and a per-address limit only: sixteen local connections trickling a header line every
 * few seconds held every slot of 127.0.0.1 for good. Here the deadline is absolute, and
 * local clients are told apart by the user that owns their socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "base/util.h"
#include "commands/http_guard.h"

#define WATCH_NS 100000000ull /* the watchdog's period */

struct client {
	bool local; /* the other end is a socket of this host: uid decides */
	uint32_t uid;
	struct sockaddr_storage ip; /* else its address (port zeroed) */
};

struct conn {
	bool used;
	bool refused; /* shut down by the guard */
	int fd;
	uint64_t deadline; /* CLOCK_MONOTONIC ns */
	struct client who;
};

struct mft_http_guard {
	pthread_mutex_t lock;
	pthread_t thread;
	bool running, stop;
	unsigned max_conn, per_client;
	uint64_t timeout_ns;
	struct conn *conns; /* max_conn of them: libmicrohttpd never holds more */
	unsigned n_open;
	uint64_t closed_share, closed_deadline;
	uint64_t full; /* times every connection was taken (new ones then wait) */
	int nl;        /* NETLINK_SOCK_DIAG, or -1 (then clients are addresses) */
	struct mft_metrics *m;
};

struct mft_http_guard *mft_http_guard_new(unsigned max_conn, unsigned per_client, unsigned timeout_s,
					  struct mft_metrics *m)
{
	struct mft_http_guard *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->conns = calloc(max_conn, sizeof(*g->conns));
	if (!g->conns) {
		free(g);
		return NULL;
	}
	pthread_mutex_init(&g->lock, NULL);
	g->max_conn = max_conn;
	g->per_client = per_client;
	g->timeout_ns = (uint64_t)timeout_s * 1000000000ull;
	g->m = m;
	g->nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	return g;
}

/*
 * The uid owning the other end of a TCP connection, when that end is a socket of this
 * host (this network namespace): an exact sock_diag lookup of the 4-tuple as the peer
 * sees it. -1 when it is not here (a remote client) or cannot be asked.
 */
static int peer_uid(int nl, const struct sockaddr_storage *local, const struct sockaddr_storage *peer, uint32_t *uid)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = {
		.nlh = { .nlmsg_len = sizeof(req),
			 .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			 .nlmsg_flags = NLM_F_REQUEST,
			 .nlmsg_seq = 1 },
		.r = { .sdiag_family = (uint8_t)peer->ss_family, .sdiag_protocol = IPPROTO_TCP, .idiag_states = ~0u },
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	union {
		struct nlmsghdr h;
		char buf[1024];
	} resp;
	ssize_t n;

	if (nl < 0 || peer->ss_family != local->ss_family)
		return -1;
	/* the peer's socket: its local end is the peer's address, its remote end ours */
	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *p = (const void *)peer, *l = (const void *)local;

		req.r.id.idiag_sport = p->sin_port;
		req.r.id.idiag_dport = l->sin_port;
		memcpy(req.r.id.idiag_src, &p->sin_addr, 4);
		memcpy(req.r.id.idiag_dst, &l->sin_addr, 4);
	} else if (peer->ss_family == AF_INET6) {
		const struct sockaddr_in6 *p = (const void *)peer, *l = (const void *)local;

		req.r.id.idiag_sport = p->sin6_port;
		req.r.id.idiag_dport = l->sin6_port;
		memcpy(req.r.id.idiag_src, &p->sin6_addr, 16);
		memcpy(req.r.id.idiag_dst, &l->sin6_addr, 16);
	} else {
		return -1;
	}
	req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) != (ssize_t)sizeof(req))
		return -1;
	do
		n = recv(nl, &resp, sizeof(resp), 0);
	while (n < 0 && errno == EINTR);
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct inet_diag_msg)) || !NLMSG_OK(&resp.h, (unsigned)n) ||
	    resp.h.nlmsg_type != SOCK_DIAG_BY_FAMILY)
		return -1; /* NLMSG_ERROR: no such socket here */
	*uid = ((const struct inet_diag_msg *)NLMSG_DATA(&resp.h))->idiag_uid;
	return 0;
}

static void who_is(struct mft_http_guard *g, int fd, struct client *who)
{
	struct sockaddr_storage local, peer;
	socklen_t ll = sizeof(local), pl = sizeof(peer);

	memset(who, 0, sizeof(*who));
	if (getsockname(fd, (struct sockaddr *)&local, &ll) || getpeername(fd, (struct sockaddr *)&peer, &pl))
		return;
	if (!peer_uid(g->nl, &local, &peer, &who->uid)) {
		who->local = true;
		return;
	}
	who->ip.ss_family = peer.ss_family;
	if (peer.ss_family == AF_INET)
		((struct sockaddr_in *)&who->ip)->sin_addr = ((struct sockaddr_in *)&peer)->sin_addr;
	else if (peer.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&who->ip)->sin6_addr = ((struct sockaddr_in6 *)&peer)->sin6_addr;
}

static bool same_client(const struct client *a, const struct client *b)
{
	if (a->local != b->local)
		return false;
	if (a->local)
		return a->uid == b->uid;
	return !memcmp(&a->ip, &b->ip, sizeof(a->ip));
}

/* The client closed it already, libmicrohttpd has not noticed yet: it holds nothing. (A
 * script fetching in a loop opens the next connection before the last one is reaped.) */
static bool peer_gone(const struct conn *k)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);

	return !getsockopt(k->fd, IPPROTO_TCP, TCP_INFO, &ti, &l) &&
	       (ti.tcpi_state == TCP_CLOSE_WAIT || ti.tcpi_state == TCP_LAST_ACK || ti.tcpi_state == TCP_CLOSE);
}

/* Close it now: the peer sees EOF, libmicrohttpd sees the socket shut and closes it. */
static void cut(struct conn *k)
{
	__atomic_store_n(&k->refused, true, __ATOMIC_RELEASE);
	shutdown(k->fd, SHUT_RDWR);
}

void mft_http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
			   enum MHD_ConnectionNotificationCode code)
{
	struct mft_http_guard *g = cls;
	const union MHD_ConnectionInfo *ci;
	struct conn *k = *socket_context, *slot = NULL;
	struct client who;
	unsigned same = 0;
	int fd;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (k) {
			pthread_mutex_lock(&g->lock);
			k->used = false;
			g->n_open--;
			pthread_mutex_unlock(&g->lock);
			*socket_context = NULL;
		}
		return;
	}
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return;
	fd = ci->connect_fd;
	who_is(g, fd, &who); /* outside the lock: a netlink round trip */
	pthread_mutex_lock(&g->lock);
	for (unsigned i = 0; i < g->max_conn; i++) {
		if (!g->conns[i].used)
			slot = slot ? slot : &g->conns[i];
		else if (same_client(&g->conns[i].who, &who) && !g->conns[i].refused)
			same++;
	}
	if (slot && same >= g->per_client) { /* over its share: unless some of those are gone */
		same = 0;
		for (unsigned i = 0; i < g->max_conn; i++)
			same += g->conns[i].used && !g->conns[i].refused && same_client(&g->conns[i].who, &who) &&
				!peer_gone(&g->conns[i]);
	}
	if (slot) {
		*slot = (struct conn){ .used = true, .fd = fd, .who = who, .deadline = mft_mono_now() + g->timeout_ns };
		if (++g->n_open == g->max_conn)
			g->full++;
		*socket_context = slot;
		if (same >= g->per_client) {
			cut(slot);
			g->closed_share++;
		}
	}
	pthread_mutex_unlock(&g->lock);
	if (slot && slot->refused && g->m)
		mft_metrics_http_closed(g->m, "client_share");
}

void mft_http_guard_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct mft_http_guard *g = cls;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *k = ci ? ci->socket_context : NULL;

	(void)con_cls;
	(void)toe;
	if (!k)
		return;
	pthread_mutex_lock(&g->lock);
	if (k->used) /* answered: the next request on it gets its own deadline */
		k->deadline = mft_mono_now() + g->timeout_ns;
	pthread_mutex_unlock(&g->lock);
}

bool mft_http_guard_refused(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	const struct conn *k = ci ? ci->socket_context : NULL;

	return k && __atomic_load_n(&k->refused, __ATOMIC_ACQUIRE); /* the watchdog may set it meanwhile */
}

static void *watchdog(void *arg)
{
	struct mft_http_guard *g = arg;
	struct timespec ts = { 0, (long)WATCH_NS };

	for (;;) {
		uint64_t now = mft_mono_now(), cut_now = 0;

		pthread_mutex_lock(&g->lock);
		if (g->stop) {
			pthread_mutex_unlock(&g->lock);
			return NULL;
		}
		for (unsigned i = 0; i < g->max_conn; i++) {
			struct conn *k = &g->conns[i];

			if (k->used && !k->refused && now > k->deadline) {
				cut(k);
				cut_now++;
			}
		}
		g->closed_deadline += cut_now;
		pthread_mutex_unlock(&g->lock);
		for (uint64_t i = 0; i < cut_now && g->m; i++)
			mft_metrics_http_closed(g->m, "deadline");
		nanosleep(&ts, NULL);
	}
}

int mft_http_guard_start(struct mft_http_guard *g)
{
	if (pthread_create(&g->thread, NULL, watchdog, g))
		return -1;
	g->running = true;
	return 0;
}

void mft_http_guard_stop(struct mft_http_guard *g)
{
	if (!g || !g->running)
		return;
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);
	g->running = false;
}

void mft_http_guard_free(struct mft_http_guard *g)
{
	if (!g)
		return;
	mft_http_guard_stop(g);
	if (g->nl >= 0)
		close(g->nl);
	pthread_mutex_destroy(&g->lock);
	free(g->conns);
	free(g);
}

void mft_http_guard_limits(struct mft_http_guard *g, struct mft_limit out[2])
{
	unsigned most = 0;

	pthread_mutex_lock(&g->lock);
	for (unsigned i = 0; i < g->max_conn; i++) {
		unsigned n = 0;

		if (!g->conns[i].used || g->conns[i].refused)
			continue;
		for (unsigned j = 0; j < g->max_conn; j++)
			n += g->conns[j].used && !g->conns[j].refused &&
			     same_client(&g->conns[i].who, &g->conns[j].who);
		if (n > most)
			most = n;
	}
	out[0] = (struct mft_limit){ "http_connections", g->n_open, g->max_conn, g->full,
				     "HTTP connections at once (--max-connections); when all are taken, new ones wait "
				     "in the listen backlog" };
	out[1] = (struct mft_limit){ "http_connections_per_client", most, g->per_client, g->closed_share,
				     "connections of one local user or address; past it one is closed at once" };
	pthread_mutex_unlock(&g->lock);
}
