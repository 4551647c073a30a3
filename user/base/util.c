// SPDX-License-Identifier: GPL-2.0
/* The bottom floor's helpers (util.h). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "base/util.h"

void *mft_grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t ncap = *cap ? *cap * 2 : 16;

	while (ncap < need)
		ncap *= 2;
	p = realloc(p, ncap * elem);
	if (!p) {
		fprintf(stderr, "mftrace: out of memory\n");
		exit(1);
	}
	*cap = ncap;
	return p;
}

uint64_t mft_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t mft_mono_to_real(void)
{
	struct timespec m, r;

	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &r);
	return ((int64_t)r.tv_sec - (int64_t)m.tv_sec) * 1000000000ll + (r.tv_nsec - m.tv_nsec);
}

void mft_fmt_addr(char *buf, size_t len, int family, const uint8_t *addr, uint16_t port)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (family == AF_INET || family == AF_INET6)
		inet_ntop(family, addr, a, sizeof(a));
	snprintf(buf, len, family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
}

void mft_fmt_uuid(char *buf, size_t len, const uint8_t *u)
{
	snprintf(buf, len, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
		 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

void mft_fmt_span(int64_t ns, char *buf, size_t len)
{
	int64_t a = ns < 0 ? -ns : ns;

	if (ns == MFT_NO_SPAN)
		snprintf(buf, len, "-");
	else if (a < 1000)
		snprintf(buf, len, "%" PRId64 "ns", ns);
	else if (a < 1000000)
		snprintf(buf, len, "%.1fus", ns / 1e3);
	else if (a < 1000000000)
		snprintf(buf, len, "%.3fms", ns / 1e6);
	else
		snprintf(buf, len, "%.3fs", ns / 1e9);
}

void mft_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

char *mft_sanitize(char *dst, size_t len, const char *src)
{
	size_t n = 0;

	if (!len)
		return dst;
	for (const unsigned char *s = (const unsigned char *)src; *s && n + 1 < len; s++) {
		/* C1 controls are U+0080..U+009F: 0xC2 0x80..0x9F in UTF-8 */
		if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
			dst[n++] = '?';
			s++;
		} else {
			dst[n++] = *s < 0x20 || *s == 0x7f ? '?' : (char)*s;
		}
	}
	dst[n] = '\0';
	return dst;
}
