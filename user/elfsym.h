/* SPDX-License-Identifier: GPL-2.0 */
/* ELF lookups with libelf: symbols, their file offsets, USDT notes. */
#ifndef MFT_ELFSYM_H
#define MFT_ELFSYM_H

#include <stdint.h>

/* Find a defined symbol by exact name in .dynsym or .symtab. 0 on success. */
int mft_elf_symbol(const char *path, const char *name, uint64_t *vaddr);
/* Convert a virtual address to a file offset through the program headers. 0 on success. */
int mft_elf_vaddr_to_offset(const char *path, uint64_t vaddr, uint64_t *offset);
/* Number of SystemTap SDT (USDT) notes, optionally only of one provider; -1 on error. */
int mft_elf_usdt_count(const char *path, const char *provider);

#endif
