/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The exporter's guard against hostile HTTP clients (libmicrohttpd callbacks).
 *
 * - A deadline per request, not only an idle timeout: a connection is closed when it has
 *   not had a request answered within `timeout` seconds of opening or of its previous
 *   answer, however many bytes it trickles (a watchdog thread shuts its socket down).
 * - A share per client, so that no local user can take every connection: a client is the
 *   local user (uid) owning the other end when that end is on this host (the kernel's
 *   sock_diag says), else its IP address. Past its share a new connection is closed at once.
 *
 * The table of connections is guarded by a mutex; libmicrohttpd tells us that a connection
 * closed before it closes the socket, so the watchdog never touches a descriptor that was
 * reused.
 */
#ifndef MFT_HTTP_GUARD_H
#define MFT_HTTP_GUARD_H

#include <stdbool.h>
#include <microhttpd.h>
#include "collect/collector.h"
#include "present/metrics.h"

struct mft_http_guard;

/* NULL when out of memory. m (may be NULL) counts the connections closed, by reason. */
struct mft_http_guard *mft_http_guard_new(unsigned max_conn, unsigned per_client, unsigned timeout_s,
					  struct mft_metrics *m);
/* The watchdog thread. -1 if it cannot start. */
int mft_http_guard_start(struct mft_http_guard *g);
/* Stop the watchdog (before MHD_stop_daemon), then free (after it). */
void mft_http_guard_stop(struct mft_http_guard *g);
void mft_http_guard_free(struct mft_http_guard *g);

/* MHD_OPTION_NOTIFY_CONNECTION and MHD_OPTION_NOTIFY_COMPLETED, with the guard as cls. */
void mft_http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
			   enum MHD_ConnectionNotificationCode code);
void mft_http_guard_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe);
/* A connection closed by the guard (over its client's share, or past its deadline): the
 * access handler answers it with MHD_NO. */
bool mft_http_guard_refused(struct MHD_Connection *c);

/* http_connections and http_connections_per_client, as mft_limit entries (2). */
void mft_http_guard_limits(struct mft_http_guard *g, struct mft_limit out[2]);

#endif
