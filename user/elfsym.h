/* SPDX-License-Identifier: GPL-2.0 */
/* ELF lookups with libelf: symbols, their file offsets, USDT notes. */
#ifndef MFT_ELFSYM_H
#define MFT_ELFSYM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Find a defined symbol by exact name in .dynsym or .symtab. 0 on success. */
int mft_elf_symbol(const char *path, const char *name, uint64_t *vaddr);
/* Convert a virtual address to a file offset through the program headers. 0 on success. */
int mft_elf_vaddr_to_offset(const char *path, uint64_t vaddr, uint64_t *offset);
/* Number of SystemTap SDT (USDT) notes, optionally only of one provider; -1 on error. */
int mft_elf_usdt_count(const char *path, const char *provider);

/* Does the binary list a DT_NEEDED library whose name starts with prefix? */
bool mft_elf_needs(const char *path, const char *prefix);
/* The argument spec of USDT probe provider:name ("1@%al -8@%rsi ..."); 0 on success. */
int mft_elf_usdt_args(const char *path, const char *provider, const char *name, char *buf, size_t len);
/* How many arguments a spec string has. */
int mft_usdt_nargs(const char *spec);

#endif
