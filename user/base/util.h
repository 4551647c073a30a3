/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The bottom floor: helpers every stage uses and that know nothing of migrations.
 * Memory growth, clocks, and the one place each of these is formatted: an address and
 * port, a UUID, a time span, a JSON string, and a name that came from a traced process.
 */
#ifndef MFT_BASE_UTIL_H
#define MFT_BASE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* No span measured: mft_fmt_span() prints "-". */
#define MFT_NO_SPAN INT64_MIN

/* Grow an array of elem-sized items to hold need of them; exits on out of memory. */
void *mft_grow(void *p, size_t *cap, size_t need, size_t elem);

/* CLOCK_MONOTONIC now, in ns. */
uint64_t mft_mono_now(void);
/* CLOCK_REALTIME - CLOCK_MONOTONIC, in ns. */
int64_t mft_mono_to_real(void);

/* "10.0.0.1:4242" or "[::1]:4242"; family is AF_INET or AF_INET6, addr 4 or 16 bytes. */
void mft_fmt_addr(char *buf, size_t len, int family, const uint8_t *addr, uint16_t port);
/* The canonical 8-4-4-4-12 text of 16 bytes. */
void mft_fmt_uuid(char *buf, size_t len, const uint8_t *uuid);
/* "1.234ms", "56us", "-" for MFT_NO_SPAN. */
void mft_fmt_span(int64_t ns, char *buf, size_t len);
/* A JSON string literal, escaped. */
void mft_json_str(FILE *f, const char *s);
/*
 * A name that a traced process chose (VM name, command line, state name), made safe for
 * a terminal: control characters (C0, DEL, and C1 in UTF-8) become '?'. Copies at most
 * len - 1 bytes. Returns dst.
 */
char *mft_sanitize(char *dst, size_t len, const char *src);

#endif
