// SPDX-License-Identifier: GPL-2.0
/*
 * A QEMU's command line, read for what it says about migration (qemu_args.h). Every
 * argument is bounded by the n bytes given; nothing is assumed NUL-terminated.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "collect/qemu_args.h"

/* Does the argument (al bytes) equal opt or, with a second dash, --opt? */
static bool is_opt(const char *arg, size_t al, const char *opt)
{
	size_t ol = strlen(opt);

	if (al == ol && !memcmp(arg, opt, ol))
		return true;
	return al == ol + 1 && arg[0] == '-' && !memcmp(arg + 1, opt, ol);
}

/* 1 for on/true/yes/y, 0 for off/false/no/n, -1 otherwise (vl bytes at v). */
static int bool_value(const char *v, size_t vl)
{
	static const char *const yes[] = { "on", "true", "yes", "y" }, *const no[] = { "off", "false", "no", "n" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (vl == strlen(yes[i]) && !strncasecmp(v, yes[i], vl))
			return 1;
		if (vl == strlen(no[i]) && !strncasecmp(v, no[i], vl))
			return 0;
	}
	return -1;
}

/* The value of key= among the ','-separated items of v (vl bytes); NULL if absent. */
static const char *item(const char *v, size_t vl, const char *key, size_t *len)
{
	size_t kl = strlen(key);

	for (size_t i = 0; i < vl;) {
		const char *it = v + i;
		const char *comma = memchr(it, ',', vl - i);
		size_t il = comma ? (size_t)(comma - it) : vl - i;

		if (il > kl && !memcmp(it, key, kl) && it[kl] == '=') {
			*len = il - kl - 1;
			return it + kl + 1;
		}
		i += il + 1;
	}
	return NULL;
}

static void copy(char *dst, size_t cap, const char *src, size_t n)
{
	snprintf(dst, cap, "%.*s", (int)(n < cap ? n : cap - 1), src);
}

static bool uuid_shaped(const char *v, size_t vl)
{
	if (vl != 36)
		return false;
	for (size_t i = 0; i < vl; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? v[i] != '-' : !isxdigit((unsigned char)v[i]))
			return false;
	return true;
}

/* -machine VALUE: its type is the first item without '=', or type=. */
static void machine(struct mft_qemu_args *a, const char *v, size_t vl)
{
	const char *comma = memchr(v, ',', vl);
	size_t fl = comma ? (size_t)(comma - v) : vl, tl;
	const char *t;

	if (fl && !memchr(v, '=', fl)) {
		copy(a->machine, sizeof(a->machine), v, fl);
		return;
	}
	t = item(v, vl, "type", &tl);
	if (t)
		copy(a->machine, sizeof(a->machine), t, tl);
}

static void incoming(struct mft_qemu_args *a, const char *v, size_t vl)
{
	static const char *const known[] = { "tcp", "unix", "fd", "exec", "rdma", "file", "vsock" };
	const char *colon = memchr(v, ':', vl);

	if (a->incoming[0])
		return; /* the first one */
	if (vl == 5 && !memcmp(v, "defer", 5)) {
		snprintf(a->incoming, sizeof(a->incoming), "defer");
		return;
	}
	if (vl && v[0] == '{') {
		snprintf(a->incoming, sizeof(a->incoming), "channel");
		return;
	}
	for (size_t i = 0; colon && i < sizeof(known) / sizeof(known[0]); i++)
		if ((size_t)(colon - v) == strlen(known[i]) && !memcmp(v, known[i], strlen(known[i]))) {
			snprintf(a->incoming, sizeof(a->incoming), "%s", known[i]);
			return;
		}
	snprintf(a->incoming, sizeof(a->incoming), "other");
}

/* -global migration.multifd-clean-tls-termination=on, or driver=,property=,value= */
static void global(struct mft_qemu_args *a, const char *v, size_t vl)
{
	static const char prop[] = "migration.multifd-clean-tls-termination=";
	const char *d, *p, *val;
	size_t dl, pl, ll;

	if (vl > sizeof(prop) - 1 && !memcmp(v, prop, sizeof(prop) - 1)) {
		int b = bool_value(v + sizeof(prop) - 1, vl - (sizeof(prop) - 1));

		if (b >= 0)
			a->clean_tls = b;
		return;
	}
	d = item(v, vl, "driver", &dl);
	p = item(v, vl, "property", &pl);
	val = item(v, vl, "value", &ll);
	if (d && p && val && dl == 9 && !memcmp(d, "migration", 9) && pl == 29 &&
	    !memcmp(p, "multifd-clean-tls-termination", 29)) {
		int b = bool_value(val, ll);

		if (b >= 0)
			a->clean_tls = b;
	}
}

void mft_qemu_args_parse(const char *cmd, size_t n, struct mft_qemu_args *a)
{
	memset(a, 0, sizeof(*a));
	a->clean_tls = -1;
	for (size_t i = 0; i < n;) {
		const char *arg = cmd + i;
		size_t al = strnlen(arg, n - i);
		const char *v;
		size_t vl;

		i += al + 1;
		if (i >= n)
			break; /* no value follows */
		v = cmd + i;
		vl = strnlen(v, n - i);
		if (is_opt(arg, al, "-uuid")) {
			if (uuid_shaped(v, vl))
				copy(a->uuid, sizeof(a->uuid), v, vl);
		} else if (is_opt(arg, al, "-machine") || is_opt(arg, al, "-M")) {
			machine(a, v, vl);
		} else if (is_opt(arg, al, "-incoming")) {
			incoming(a, v, vl);
		} else if (is_opt(arg, al, "-object")) {
			if (memmem(v, vl, "tls-creds-", 10))
				a->tls_creds = true;
		} else if (is_opt(arg, al, "-global")) {
			global(a, v, vl);
		} else {
			continue;
		}
		i += vl + 1; /* the value was consumed */
	}
}

int mft_qemu_version_parse(const char *v, int *major, int *minor)
{
	char *end;
	long ma, mi;

	if (!v || !isdigit((unsigned char)v[0]))
		return -1;
	ma = strtol(v, &end, 10);
	if (*end != '.' || !isdigit((unsigned char)end[1]))
		return -1;
	mi = strtol(end + 1, &end, 10);
	if (ma > 1000 || mi > 1000)
		return -1;
	*major = (int)ma;
	*minor = (int)mi;
	return 0;
}

/* The X.Y at the end of a versioned machine type (pc-q35-9.2, pc-i440fx-10.0, virt-9.2). */
static int machine_version(const char *m, int *major, int *minor)
{
	const char *dash = strrchr(m, '-');
	char *end;
	long ma, mi;

	if (!dash || !isdigit((unsigned char)dash[1]))
		return -1;
	ma = strtol(dash + 1, &end, 10);
	if (*end != '.' || !isdigit((unsigned char)end[1]))
		return -1;
	mi = strtol(end + 1, &end, 10);
	if (*end || ma > 1000 || mi > 1000)
		return -1;
	*major = (int)ma;
	*minor = (int)mi;
	return 0;
}

#define WHY(...)                                            \
	do {                                                \
		if (why)                                    \
			snprintf(why, whylen, __VA_ARGS__); \
	} while (0)

const char *mft_clean_tls_termination(const struct mft_qemu_args *a, const char *qemu_version, char *why, size_t whylen)
{
	int qmaj, qmin, mmaj, mmin;

	if (a->clean_tls >= 0) {
		WHY("set on the command line (-global migration.multifd-clean-tls-termination)");
		return a->clean_tls ? "on" : "off";
	}
	if (mft_qemu_version_parse(qemu_version, &qmaj, &qmin)) {
		WHY("QEMU version unknown");
		return "unknown";
	}
	if (qmaj < 10) {
		WHY("QEMU %d.%d has no such property: EOF without close_notify is accepted", qmaj, qmin);
		return "off";
	}
	if (!a->machine[0] || !strcmp(a->machine, "pc") || !strcmp(a->machine, "q35")) {
		WHY("QEMU %d.%d, machine type %s (the newest): the default", qmaj, qmin,
		    a->machine[0] ? a->machine : "not given");
		return "on";
	}
	if (machine_version(a->machine, &mmaj, &mmin)) {
		WHY("QEMU %d.%d, machine type without a version: cannot tell", qmaj, qmin);
		return "unknown";
	}
	if (mmaj < 9 || (mmaj == 9 && mmin <= 2)) {
		WHY("QEMU %d.%d, machine type %d.%d <= 9.2: its compat properties turn it off", qmaj, qmin, mmaj, mmin);
		return "off";
	}
	WHY("QEMU %d.%d, machine type %d.%d > 9.2: the default", qmaj, qmin, mmaj, mmin);
	return "on";
}
