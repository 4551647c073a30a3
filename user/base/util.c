// SPDX-License-Identifier: GPL-2.0
/* The bottom floor's helpers (util.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
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
	snprintf(buf, len, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
		 u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

void mft_fmt_span(int64_t ns, char *buf, size_t len)
{
	uint64_t a = ns < 0 ? -(uint64_t)ns : (uint64_t)ns; /* INT64_MIN too */

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

/* ---- secrets in command lines ---- */

static const char *const secret_words[] = { "data",       "password",    "passwd", "pass",  "pwd",
					    "secret",     "key",         "psk",    "token", "passphrase",
					    "credential", "credentials", "auth",   "cookie" };

static bool word_is(const char *k, size_t n, const char *w)
{
	return strlen(w) == n && !strncasecmp(k, w, n);
}

/* A key that names a secret: one of the words, or ending in '-', '_' or '.' and one. */
static bool secret_key(const char *k, size_t n)
{
	for (size_t i = 0; i < sizeof(secret_words) / sizeof(secret_words[0]); i++) {
		size_t wl = strlen(secret_words[i]);

		if (word_is(k, n, secret_words[i]))
			return true;
		if (n > wl && strchr("-_.", k[n - wl - 1]) && word_is(k + n - wl, wl, secret_words[i]))
			return true;
	}
	return false;
}

static bool key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	       c == '.';
}

struct out {
	char *p;
	size_t len, n;
};

static void put(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n && o->n + 1 < o->len; i++)
		o->p[o->n++] = s[i];
}

/* One argument (space_ends: or a line of them joined by spaces) into o. */
static void redact(struct out *o, const char *src, size_t n, bool space_ends)
{
	size_t i = 0;
	bool item_start = true;

	while (i < n) {
		/* "key":"value" (QEMU's JSON syntax for -object, -blockdev) */
		if (src[i] == '"') {
			size_t k = i + 1, v;

			while (k < n && key_char(src[k]))
				k++;
			v = k + 1;
			while (v < n && src[v] == ' ')
				v++;
			if (k < n && src[k] == '"' && v < n && src[v] == ':' && secret_key(src + i + 1, k - i - 1)) {
				v++;
				while (v < n && src[v] == ' ')
					v++;
				if (v < n && src[v] == '"') {
					put(o, src + i, v + 1 - i);
					put(o, MFT_REDACTED, strlen(MFT_REDACTED));
					for (v++; v < n && src[v] != '"'; v++)
						if (src[v] == '\\' && v + 1 < n)
							v++;
					i = v; /* the closing quote is copied next */
					item_start = false;
					continue;
				}
			}
		}
		/* key=value, at the start of an item */
		if (item_start && key_char(src[i])) {
			size_t k = i;

			while (k < n && key_char(src[k]))
				k++;
			if (k < n && src[k] == '=' && secret_key(src + i, k - i)) {
				put(o, src + i, k + 1 - i);
				put(o, MFT_REDACTED, strlen(MFT_REDACTED));
				for (i = k + 1; i < n && !(space_ends && src[i] == ' '); i++) {
					if (src[i] == ',' && i + 1 < n && src[i + 1] == ',')
						i++; /* ",," is a comma inside the value */
					else if (src[i] == ',')
						break;
				}
				item_start = false;
				continue;
			}
		}
		/* scheme://user:password@host */
		if (src[i] == ':' && i + 2 < n && src[i + 1] == '/' && src[i + 2] == '/') {
			size_t u = i + 3, at = u, colon = 0;

			while (at < n && src[at] != '@' && src[at] != '/' && src[at] != ' ' && src[at] != ',')
				at++;
			for (size_t c = u; c < at; c++)
				if (src[c] == ':') {
					colon = c;
					break;
				}
			if (at < n && src[at] == '@' && colon) {
				put(o, src + i, colon + 1 - i);
				put(o, MFT_REDACTED, strlen(MFT_REDACTED));
				i = at;
				item_start = false;
				continue;
			}
		}
		put(o, src + i, 1);
		item_start = src[i] && strchr(",:;?& ", src[i]) != NULL;
		i++;
	}
}

char *mft_redact(char *dst, size_t len, const char *src)
{
	struct out o = { dst, len, 0 };

	if (!len)
		return dst;
	redact(&o, src, strlen(src), true);
	dst[o.n] = '\0';
	return dst;
}

char *mft_redact_args(char *dst, size_t len, const char *args, size_t n)
{
	struct out o = { dst, len, 0 };

	if (!len)
		return dst;
	for (size_t i = 0; i < n;) {
		size_t l = strnlen(args + i, n - i);

		if (o.n)
			put(&o, " ", 1);
		redact(&o, args + i, l, false);
		i += l + 1;
	}
	while (o.n && dst[o.n - 1] == ' ')
		o.n--;
	dst[o.n] = '\0';
	return dst;
}

/* ---- output files ---- */

int mft_create_output(const char *path, bool force, char *err, size_t errlen)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	struct stat st;
	int fd = open(path, flags, 0640);

	if (fd < 0 && errno == EEXIST && force) {
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "cannot create %s: it is a directory", path);
			return -1;
		}
		if (unlink(path) && errno != ENOENT) {
			snprintf(err, errlen, "cannot replace %s: %s", path, strerror(errno));
			return -1;
		}
		fd = open(path, flags, 0640); /* a link planted in between fails with EEXIST */
	}
	if (fd < 0) {
		if (errno == EEXIST)
			snprintf(err, errlen, "%s already exists (--force replaces it)", path);
		else
			snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	return fd;
}

/* ---- hashing and the index ---- */

static uint64_t hash_seed;

static uint64_t seed(void)
{
	while (!hash_seed) {
		uint64_t s = 0;

		if (getrandom(&s, sizeof(s), 0) != sizeof(s))
			s = (uint64_t)mft_mono_now() ^ ((uint64_t)getpid() << 32);
		hash_seed = s | 1;
	}
	return hash_seed;
}

uint64_t mft_hash64(uint64_t x)
{
	x ^= seed();
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull; /* splitmix64's finalizer */
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t mft_hash_bytes(const void *p, size_t n, uint64_t h)
{
	const unsigned char *s = p;

	h ^= 0xcbf29ce484222325ull; /* FNV-1a, then mixed */
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return mft_hash64(h);
}

static size_t slot_of(const struct mft_index *ix, uint64_t key, mft_index_eq eq, const void *ctx, bool *found)
{
	size_t mask = ix->cap - 1, i = (size_t)mft_hash64(key) & mask;

	for (;; i = (i + 1) & mask) {
		const struct mft_index_slot *s = &ix->slot[i];

		if (!s->val) {
			*found = false;
			return i;
		}
		if (s->key == key && (!eq || eq(ctx, s->val - 1))) {
			*found = true;
			return i;
		}
	}
}

size_t mft_index_find(const struct mft_index *ix, uint64_t key, mft_index_eq eq, const void *ctx)
{
	bool found;
	size_t i;

	if (!ix->cap)
		return SIZE_MAX;
	i = slot_of(ix, key, eq, ctx, &found);
	return found ? ix->slot[i].val - 1 : SIZE_MAX;
}

static int index_grow(struct mft_index *ix)
{
	struct mft_index nx = { .cap = ix->cap ? ix->cap * 2 : 64 };

	nx.slot = calloc(nx.cap, sizeof(*nx.slot));
	if (!nx.slot)
		return -1;
	for (size_t i = 0; i < ix->cap; i++) {
		size_t mask = nx.cap - 1, j;

		if (!ix->slot[i].val)
			continue;
		for (j = (size_t)mft_hash64(ix->slot[i].key) & mask; nx.slot[j].val; j = (j + 1) & mask)
			;
		nx.slot[j] = ix->slot[i];
	}
	nx.n = ix->n;
	mft_index_free(ix);
	*ix = nx;
	return 0;
}

int mft_index_set(struct mft_index *ix, uint64_t key, size_t pos, mft_index_eq eq, const void *ctx)
{
	bool found;
	size_t i;

	if ((ix->n + 1) * 2 > ix->cap && index_grow(ix))
		return -1;
	i = slot_of(ix, key, eq, ctx, &found);
	if (!found) {
		ix->slot[i].key = key;
		ix->n++;
	}
	ix->slot[i].val = pos + 1;
	return 0;
}

void mft_index_free(struct mft_index *ix)
{
	free(ix->slot);
	ix->slot = NULL;
	ix->cap = ix->n = 0;
}
