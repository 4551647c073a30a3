/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading files that a traced process controls (its binary, its libgnutls): ELF symbols,
 * their file offsets, USDT notes, DT_NEEDED, and version strings. Nothing here executes,
 * loads or maps anything for execution. Every file is opened without following it into a
 * FIFO or a device (regular files only, size-capped), and read with pread (libelf's
 * ELF_C_READ), so that a file truncated under us cannot fault the reader. The parsers are
 * fuzzed: fuzz/fuzz_elf.c.
 */
#ifndef MFT_ELFSYM_H
#define MFT_ELFSYM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Files larger than this are refused (a QEMU binary with full debug info is ~200 MiB). */
#define MFT_TARGET_FILE_MAX (1ull << 30)

struct mft_elf;

/* Open a target-controlled file for reading. NULL with a one-line reason in err. */
struct mft_elf *mft_elf_open(const char *path, char *err, size_t errlen);
/* The same over bytes in memory (the fuzzer); buf must outlive the handle. */
struct mft_elf *mft_elf_open_mem(void *buf, size_t len);
void mft_elf_close(struct mft_elf *e);

/* A defined symbol by exact name, .dynsym first then .symtab. 0 on success. */
int mft_elf_symbol(struct mft_elf *e, const char *name, uint64_t *vaddr);
/* A virtual address to a file offset through the PT_LOAD program headers. 0 on success. */
int mft_elf_vaddr_to_offset(struct mft_elf *e, uint64_t vaddr, uint64_t *offset);
/* Both: the file offset of a defined function symbol, as a uprobe takes it. 0 on success. */
int mft_elf_symbol_offset(struct mft_elf *e, const char *name, uint64_t *offset);
/* A function's bytes (its symbol's st_size, at most cap) and their file offset. 0 on success. */
int mft_elf_symbol_code(struct mft_elf *e, const char *name, uint64_t *offset, uint8_t *buf, size_t cap, size_t *len);
/* Does the file list a DT_NEEDED library whose name starts with prefix? */
bool mft_elf_needs(struct mft_elf *e, const char *prefix);
/* Number of SystemTap SDT (USDT) notes, optionally only of one provider; -1 on error. */
int mft_elf_usdt_count(struct mft_elf *e, const char *provider);
/* The argument spec of USDT probe provider:name ("1@%al -8@%rsi ..."); 0 on success. */
int mft_elf_usdt_args(struct mft_elf *e, const char *provider, const char *name, char *buf, size_t len);
/* How many arguments a spec string has. */
int mft_usdt_nargs(const char *spec);

/*
 * A version string embedded in the file's data: the bytes after the first occurrence of
 * tag, as long as they are in charset (at most len - 1 of them). "" when not found.
 * QEMU: tag "QEMU emulator version ", GnuTLS: "Enabled GnuTLS " (its debug-log banner).
 */
void mft_elf_find_version(struct mft_elf *e, const char *tag, const char *charset, char *buf, size_t len);
void mft_qemu_version(struct mft_elf *e, char *buf, size_t len);
void mft_gnutls_version(struct mft_elf *e, char *buf, size_t len);

#endif
