// SPDX-License-Identifier: GPL-2.0
/*
 * Target-controlled files, read as data only (see elfsym.h). libelf parses the ELF
 * structures and checks their bounds; what we add on top (note walking, version scans)
 * checks its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "collect/elfsym.h"

struct mft_elf {
	int fd; /* -1 for a memory image */
	const char *mem;
	uint64_t size;
	Elf *elf; /* NULL when the file is not ELF (version scans still work) */
};

static struct mft_elf *wrap(int fd, const void *mem, uint64_t size)
{
	struct mft_elf *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->fd = fd;
	e->mem = mem;
	e->size = size;
	if (elf_version(EV_CURRENT) != EV_NONE) {
		e->elf = fd >= 0 ? elf_begin(fd, ELF_C_READ, NULL) : elf_memory((char *)mem, size);
		if (e->elf && elf_kind(e->elf) != ELF_K_ELF) {
			elf_end(e->elf);
			e->elf = NULL;
		}
	}
	return e;
}

struct mft_elf *mft_elf_open(const char *path, char *err, size_t errlen)
{
	/* O_NONBLOCK: a FIFO or a tty put in the library's place must not hang us */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct mft_elf *e;
	struct stat st;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MFT_TARGET_FILE_MAX) {
		snprintf(err, errlen, "refusing %s: %s", path,
			 !S_ISREG(st.st_mode) ? "not a regular file" : "larger than 1 GiB");
		close(fd);
		return NULL;
	}
	e = wrap(fd, NULL, (uint64_t)st.st_size);
	if (!e) {
		snprintf(err, errlen, "out of memory");
		close(fd);
	}
	return e;
}

struct mft_elf *mft_elf_open_mem(void *buf, size_t len)
{
	return wrap(-1, buf, len);
}

void mft_elf_close(struct mft_elf *e)
{
	if (!e)
		return;
	if (e->elf)
		elf_end(e->elf);
	if (e->fd >= 0)
		close(e->fd);
	free(e);
}

/*
 * Visit every entry of every section of type sh_type (entries of sh_entsize bytes) until
 * fn returns non-zero; returns that value, or 0. libelf checks the bounds of each entry.
 */
static int each_entry(struct mft_elf *e, Elf64_Word sh_type,
		      int (*fn)(struct mft_elf *e, Elf_Data *d, GElf_Shdr *sh, int i, void *ctx), void *ctx)
{
	Elf_Scn *scn = NULL;

	if (!e || !e->elf)
		return 0;
	while ((scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != sh_type || !sh.sh_entsize || !(d = elf_getdata(scn, NULL)))
			continue;
		size_t n = d->d_size / sh.sh_entsize;

		for (size_t i = 0; i < n && i <= 0x7fffffff; i++) {
			int rc = fn(e, d, &sh, (int)i, ctx);

			if (rc)
				return rc;
		}
	}
	return 0;
}

struct sym_query {
	const char *name;
	uint64_t vaddr, size;
};

static int sym_match(struct mft_elf *e, Elf_Data *d, GElf_Shdr *sh, int i, void *ctx)
{
	struct sym_query *q = ctx;
	GElf_Sym sym;
	const char *s;

	if (!gelf_getsym(d, i, &sym) || sym.st_shndx == SHN_UNDEF || !sym.st_value)
		return 0;
	s = elf_strptr(e->elf, sh->sh_link, sym.st_name);
	if (!s || strcmp(s, q->name))
		return 0;
	q->vaddr = sym.st_value;
	q->size = sym.st_size;
	return 1;
}

static bool find_sym(struct mft_elf *e, struct sym_query *q)
{
	return each_entry(e, SHT_DYNSYM, sym_match, q) || each_entry(e, SHT_SYMTAB, sym_match, q);
}

int mft_elf_symbol(struct mft_elf *e, const char *name, uint64_t *vaddr)
{
	struct sym_query q = { .name = name };

	if (!find_sym(e, &q))
		return -1;
	*vaddr = q.vaddr;
	return 0;
}

int mft_elf_vaddr_to_offset(struct mft_elf *e, uint64_t vaddr, uint64_t *offset)
{
	size_t n;

	if (!e || !e->elf || elf_getphdrnum(e->elf, &n))
		return -1;
	for (size_t i = 0; i < n && i <= 0x7fffffff; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(e->elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vaddr >= ph.p_vaddr && vaddr - ph.p_vaddr < ph.p_filesz) {
			*offset = vaddr - ph.p_vaddr + ph.p_offset;
			return *offset < e->size ? 0 : -1;
		}
	}
	return -1;
}

int mft_elf_symbol_offset(struct mft_elf *e, const char *name, uint64_t *offset)
{
	uint64_t vaddr;

	return mft_elf_symbol(e, name, &vaddr) ? -1 : mft_elf_vaddr_to_offset(e, vaddr, offset);
}

static ssize_t read_at(struct mft_elf *e, char *buf, size_t n, uint64_t off);

int mft_elf_symbol_code(struct mft_elf *e, const char *name, uint64_t *offset, uint8_t *buf, size_t cap, size_t *len)
{
	struct sym_query q = { .name = name };
	uint64_t last;

	if (!find_sym(e, &q))
		return -1;
	/* the whole function must lie in one PT_LOAD segment's file bytes, and fit in buf */
	if (!q.size || q.size > cap || mft_elf_vaddr_to_offset(e, q.vaddr, offset) ||
	    mft_elf_vaddr_to_offset(e, q.vaddr + q.size - 1, &last) || last - *offset != q.size - 1)
		return -1;
	if (read_at(e, (char *)buf, (size_t)q.size, *offset) != (ssize_t)q.size)
		return -1;
	*len = (size_t)q.size;
	return 0;
}

static int needed_match(struct mft_elf *e, Elf_Data *d, GElf_Shdr *sh, int i, void *ctx)
{
	const char *prefix = ctx, *s;
	GElf_Dyn dyn;

	if (!gelf_getdyn(d, i, &dyn) || dyn.d_tag != DT_NEEDED)
		return 0;
	s = elf_strptr(e->elf, sh->sh_link, dyn.d_un.d_val);
	return s && !strncmp(s, prefix, strlen(prefix));
}

bool mft_elf_needs(struct mft_elf *e, const char *prefix)
{
	return each_entry(e, SHT_DYNAMIC, needed_match, (void *)prefix) != 0;
}

/*
 * Walk the SystemTap SDT notes: desc is pc, base, semaphore (3 x 8 bytes), then
 * "provider\0name\0args\0". fn returns non-zero to stop.
 */
static int usdt_walk(struct mft_elf *e, int (*fn)(void *ctx, const char *prov, const char *name, const char *args),
		     void *ctx)
{
	Elf_Scn *scn = NULL;
	int rc = 0;

	if (!e || !e->elf)
		return -1;
	while (!rc && (scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		GElf_Nhdr nh;
		size_t off = 0, name_off, desc_off;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		while (!rc && d && d->d_buf && (off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
			const char *owner = (const char *)d->d_buf + name_off;
			const char *desc = (const char *)d->d_buf + desc_off, *end = desc + nh.n_descsz;
			const char *prov = desc + 24, *name, *args;

			if (nh.n_type != 3 || nh.n_namesz != 8 || memcmp(owner, "stapsdt", 8) || nh.n_descsz <= 24)
				continue;
			name = memchr(prov, '\0', (size_t)(end - prov));
			if (!name++ || name >= end)
				continue;
			args = memchr(name, '\0', (size_t)(end - name));
			if (!args++ || args >= end || !memchr(args, '\0', (size_t)(end - args)))
				continue;
			rc = fn(ctx, prov, name, args);
		}
	}
	return rc;
}

struct usdt_query {
	const char *provider, *name;
	char *buf;
	size_t len;
	int count;
};

static int count_one(void *ctx, const char *prov, const char *name, const char *args)
{
	struct usdt_query *q = ctx;

	(void)name;
	(void)args;
	if (!q->provider || !strcmp(prov, q->provider))
		q->count++;
	return 0;
}

int mft_elf_usdt_count(struct mft_elf *e, const char *provider)
{
	struct usdt_query q = { .provider = provider };

	return usdt_walk(e, count_one, &q) < 0 ? -1 : q.count;
}

static int find_one(void *ctx, const char *prov, const char *name, const char *args)
{
	struct usdt_query *q = ctx;

	if (strcmp(prov, q->provider) || strcmp(name, q->name))
		return 0;
	snprintf(q->buf, q->len, "%s", args);
	return 1;
}

int mft_elf_usdt_args(struct mft_elf *e, const char *provider, const char *name, char *buf, size_t len)
{
	struct usdt_query q = { .provider = provider, .name = name, .buf = buf, .len = len };

	return usdt_walk(e, find_one, &q) == 1 ? 0 : -1;
}

int mft_usdt_nargs(const char *spec)
{
	int n = 0;

	for (const char *p = spec; *p;) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		n++;
		while (*p && *p != ' ')
			p++;
	}
	return n;
}

/* Up to n bytes at off; the count read (short at the end), or -1. */
static ssize_t read_at(struct mft_elf *e, char *buf, size_t n, uint64_t off)
{
	if (off >= e->size)
		return 0;
	if (n > e->size - off)
		n = (size_t)(e->size - off);
	if (e->fd < 0) {
		memcpy(buf, e->mem + off, n);
		return (ssize_t)n;
	}
	ssize_t r;

	do
		r = pread(e->fd, buf, n, (off_t)off);
	while (r < 0 && errno == EINTR);
	return r;
}

void mft_elf_find_version(struct mft_elf *e, const char *tag, const char *charset, char *buf, size_t len)
{
	enum { CHUNK = 1 << 20 };
	size_t tl = strlen(tag), keep = tl + len; /* a match may straddle two chunks */
	char *chunk;
	uint64_t off = 0;

	buf[0] = '\0';
	if (!e || !len || !tl || !(chunk = malloc(CHUNK + keep)))
		return;
	size_t have = 0;

	while (off < e->size) {
		ssize_t r = read_at(e, chunk + have, CHUNK, off);

		if (r <= 0)
			break;
		off += (uint64_t)r;
		have += (size_t)r;
		const char *p = memmem(chunk, have, tag, tl);

		if (p) {
			const char *v = p + tl, *end = chunk + have;
			size_t n = 0;

			/* the version may run past this chunk's end: read a little more */
			if ((size_t)(end - v) < len) {
				memmove(chunk, p, (size_t)(end - p));
				have = (size_t)(end - p);
				r = read_at(e, chunk + have, keep, off);
				have += r > 0 ? (size_t)r : 0;
				v = chunk + tl;
				end = chunk + have;
			}
			while (v + n < end && n + 1 < len && v[n] && strchr(charset, v[n]))
				n++;
			memcpy(buf, v, n);
			buf[n] = '\0';
			break;
		}
		if (have > keep) {
			memmove(chunk, chunk + have - keep, keep);
			have = keep;
		}
	}
	free(chunk);
}

#define VERSION_CHARS "0123456789.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+-~:_ ()"

void mft_qemu_version(struct mft_elf *e, char *buf, size_t len)
{
	mft_elf_find_version(e, "QEMU emulator version ", VERSION_CHARS, buf, len);
	/* "10.0.2 (Debian 1:10.0.2+ds-2...)": drop a trailing space */
	for (size_t n = strlen(buf); n && buf[n - 1] == ' '; n--)
		buf[n - 1] = '\0';
}

void mft_gnutls_version(struct mft_elf *e, char *buf, size_t len)
{
	/* lib/global.c: _gnutls_debug_log("Enabled GnuTLS " VERSION " logging...\n") */
	mft_elf_find_version(e, "Enabled GnuTLS ", "0123456789.", buf, len);
}
