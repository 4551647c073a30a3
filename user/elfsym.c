// SPDX-License-Identifier: GPL-2.0
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "elfsym.h"

static Elf *elf_open(const char *path, int *fd)
{
	Elf *e;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return NULL;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return NULL;
	e = elf_begin(*fd, ELF_C_READ_MMAP, NULL);
	if (!e) {
		close(*fd);
		return NULL;
	}
	return e;
}

static void elf_done(Elf *e, int fd)
{
	elf_end(e);
	close(fd);
}

int mft_elf_symbol(const char *path, const char *name, uint64_t *vaddr)
{
	int fd, rc = -1;
	Elf *e = elf_open(path, &fd);
	Elf_Scn *scn = NULL;

	if (!e)
		return -1;
	for (int pass = 0; pass < 2 && rc; pass++) {
		Elf64_Word want = pass == 0 ? SHT_DYNSYM : SHT_SYMTAB;

		scn = NULL;
		while ((scn = elf_nextscn(e, scn)) && rc) {
			GElf_Shdr sh;
			Elf_Data *d;

			if (!gelf_getshdr(scn, &sh) || sh.sh_type != want || !sh.sh_entsize)
				continue;
			d = elf_getdata(scn, NULL);
			for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
				GElf_Sym sym;
				const char *n;

				if (!gelf_getsym(d, (int)i, &sym) || sym.st_shndx == SHN_UNDEF || !sym.st_value)
					continue;
				n = elf_strptr(e, sh.sh_link, sym.st_name);
				if (n && !strcmp(n, name)) {
					*vaddr = sym.st_value;
					rc = 0;
					break;
				}
			}
		}
	}
	elf_done(e, fd);
	return rc;
}

bool mft_elf_needs(const char *path, const char *prefix)
{
	int fd;
	Elf *e = elf_open(path, &fd);
	Elf_Scn *scn = NULL;
	bool found = false;

	if (!e)
		return false;
	while (!found && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC || !sh.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Dyn dyn;
			const char *n;

			if (!gelf_getdyn(d, (int)i, &dyn) || dyn.d_tag != DT_NEEDED)
				continue;
			n = elf_strptr(e, sh.sh_link, dyn.d_un.d_val);
			if (n && !strncmp(n, prefix, strlen(prefix))) {
				found = true;
				break;
			}
		}
	}
	elf_done(e, fd);
	return found;
}

int mft_elf_vaddr_to_offset(const char *path, uint64_t vaddr, uint64_t *offset)
{
	int fd, rc = -1;
	Elf *e = elf_open(path, &fd);
	size_t n;

	if (!e)
		return -1;
	if (!elf_getphdrnum(e, &n)) {
		for (size_t i = 0; i < n; i++) {
			GElf_Phdr ph;

			if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
				continue;
			if (vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_memsz) {
				*offset = vaddr - ph.p_vaddr + ph.p_offset;
				rc = 0;
				break;
			}
		}
	}
	elf_done(e, fd);
	return rc;
}

/*
 * Walk the SystemTap SDT notes: desc is pc, base, semaphore (3 x 8 bytes), then
 * "provider\0name\0args\0". fn returns non-zero to stop.
 */
static int usdt_walk(const char *path, int (*fn)(void *ctx, const char *prov, const char *name,
						 const char *args), void *ctx)
{
	int fd, rc = 0;
	Elf *e = elf_open(path, &fd);
	Elf_Scn *scn = NULL;

	if (!e)
		return -1;
	while (!rc && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		GElf_Nhdr nh;
		size_t off = 0, name_off, desc_off;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		while (!rc && d && (off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
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
	elf_done(e, fd);
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

	(void)name; (void)args;
	if (!q->provider || !strcmp(prov, q->provider))
		q->count++;
	return 0;
}

int mft_elf_usdt_count(const char *path, const char *provider)
{
	struct usdt_query q = { .provider = provider };

	return usdt_walk(path, count_one, &q) < 0 ? -1 : q.count;
}

static int find_one(void *ctx, const char *prov, const char *name, const char *args)
{
	struct usdt_query *q = ctx;

	if (strcmp(prov, q->provider) || strcmp(name, q->name))
		return 0;
	snprintf(q->buf, q->len, "%s", args);
	return 1;
}

int mft_elf_usdt_args(const char *path, const char *provider, const char *name, char *buf, size_t len)
{
	struct usdt_query q = { .provider = provider, .name = name, .buf = buf, .len = len };

	return usdt_walk(path, find_one, &q) == 1 ? 0 : -1;
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
