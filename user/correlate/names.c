// SPDX-License-Identifier: GPL-2.0
/* The correlator's words (names.h). */
#include "mftrace.h"
#include "correlate/names.h"

static const char *const ev_names[MFT_EV__MAX] = {
	[MFT_EV_SOCK_CONNECT] = "connect",
	[MFT_EV_SOCK_ACCEPT] = "accept",
	[MFT_EV_SOCK_FOUND] = "found",
	[MFT_EV_ESTABLISHED] = "established",
	[MFT_EV_FIRST_READ] = "first-read",
	[MFT_EV_TLS_HANDSHAKE] = "tls-handshake",
	[MFT_EV_TLS_BYE] = "tls-bye",
	[MFT_EV_TLS_DEINIT] = "tls-deinit",
	[MFT_EV_TLS_RECV_END] = "tls-recv-end",
	[MFT_EV_SHUTDOWN] = "shutdown",
	[MFT_EV_CLOSE] = "close",
	[MFT_EV_FIN_SENT] = "fin-sent",
	[MFT_EV_FIN_RCVD] = "fin-received",
	[MFT_EV_RST_RCVD] = "rst-received",
	[MFT_EV_RST_SENT] = "rst-sent",
	[MFT_EV_READ_EOF] = "read-eof",
	[MFT_EV_READ_ERR] = "read-error",
	[MFT_EV_READ_LATE] = "late-read",
	[MFT_EV_DESTROY] = "destroyed",
	[MFT_EV_MULTIFD_CHANNEL] = "multifd-channel",
	[MFT_EV_MIG_STATE] = "migration-state",
	[MFT_EV_MULTIFD_CLEANUP] = "multifd-cleanup",
	[MFT_EV_PROC_EXIT] = "process-exit",
	[MFT_EV_SYNC_MAIN] = "sync-point",
	[MFT_EV_CHAN_SYNC] = "sync",
	[MFT_EV_CHAN_INIT] = "channel-id",
	[MFT_EV_TERMINATE] = "terminate-threads",
	[MFT_EV_THREAD_END] = "thread-end",
};

const char *mft_ev_name(int type)
{
	if (type > 0 && type < MFT_EV__MAX && ev_names[type])
		return ev_names[type];
	return "unknown";
}

const char *mft_role_name(int role)
{
	switch (role) {
	case MFT_ROLE_SOURCE: return "source";
	case MFT_ROLE_DEST: return "destination";
	default: return "unknown";
	}
}

const char *mft_role_short(int role)
{
	switch (role) {
	case MFT_ROLE_SOURCE: return "src";
	case MFT_ROLE_DEST: return "dst";
	default: return "?";
	}
}

const char *mft_kind_name(int kind)
{
	switch (kind) {
	case MFT_KIND_MAIN: return "main";
	case MFT_KIND_MULTIFD: return "multifd";
	default: return "unknown";
	}
}
