/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The bottom floor: helpers every stage uses and that know nothing of migrations.
 * Memory growth, clocks, a hash index, and the one place each of these is formatted: an
 * address and port, a UUID, a time span, a JSON string, a name that came from a traced
 * process, and a command line with its secrets redacted. And the one way mftrace creates
 * an output file.
 */
#ifndef MFT_BASE_UTIL_H
#define MFT_BASE_UTIL_H

#include <stdbool.h>
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

/*
 * A command line with its secrets replaced by MFT_REDACTED (docs/mftrace.8, REDACTION):
 *  - the value of every key=value item whose key names a secret: data, password, passwd,
 *    pass, secret, key, psk, token, passphrase, credential(s), auth, or any key ending in
 *    one of those after '-', '_' or '.' (key-secret=, iscsi password=, rbd :key=), at the
 *    start of an item (items are separated by ',' ':' ';' '?' '&' or a space); the value
 *    ends at the next ',' that is not QEMU's escaped ",," (or at a space between
 *    arguments), so a value holding ':' or '&' is redacted whole;
 *  - the string value of such a key in JSON ("data": "...", -object/-blockdev syntax);
 *  - the password of a URL's user:password@.
 * Copies at most len - 1 bytes. Returns dst.
 */
#define MFT_REDACTED "<redacted>"
char *mft_redact(char *dst, size_t len, const char *src);
/* The same for n bytes of NUL-separated arguments (/proc/PID/cmdline), joined by spaces:
 * a value then ends only at ',' or the end of its argument. */
char *mft_redact_args(char *dst, size_t len, const char *args, size_t n);

/*
 * Create an output file, mode 0640: never through a symbolic link (O_NOFOLLOW) and never
 * over an existing file (O_EXCL), unless force: then an existing file or link at path is
 * removed first (the link itself, never what it points to) and the file created anew.
 * The descriptor, or -1 with a one-line reason in err.
 */
int mft_create_output(const char *path, bool force, char *err, size_t errlen);

/* A 64-bit hash with a per-process random seed (hostile input cannot aim at one slot). */
uint64_t mft_hash64(uint64_t x);
uint64_t mft_hash_bytes(const void *p, size_t n, uint64_t h);

/*
 * An index of array positions by a 64-bit key: open addressing, grown at half full, so
 * a lookup is O(1) whatever the input. Keys may be hashes that collide: eq (NULL: the key
 * decides) tells whether the item at a position is the one looked for.
 */
struct mft_index_slot {
	uint64_t key;
	size_t val; /* position + 1; 0: an empty slot */
};
struct mft_index {
	struct mft_index_slot *slot;
	size_t cap, n; /* cap: a power of two */
};
typedef bool (*mft_index_eq)(const void *ctx, size_t pos);
/* The position stored for key that eq accepts, or SIZE_MAX. */
size_t mft_index_find(const struct mft_index *ix, uint64_t key, mft_index_eq eq, const void *ctx);
/* Store pos for key: replaces the entry eq accepts, else adds one. -1 when out of memory. */
int mft_index_set(struct mft_index *ix, uint64_t key, size_t pos, mft_index_eq eq, const void *ctx);
void mft_index_free(struct mft_index *ix);

#endif
