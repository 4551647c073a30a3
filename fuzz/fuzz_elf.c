// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the reader of target-controlled files (user/collect/elfsym.c): any bytes,
 * as a QEMU binary or a libgnutls, must be read without a crash or a read outside the
 * buffer, and whatever it finds must lie inside the file.
 */
#include <stdlib.h>
#include <string.h>
#include "collect/elfsym.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so that AddressSanitizer sees any read past the end */
	char *copy = malloc(size ? size : 1);
	struct mft_elf *e;
	char spec[256], ver[64];
	uint64_t v, off;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	e = mft_elf_open_mem(copy, size);
	if (e) {
		static const char *const names[] = { "migrate_set_state", "gnutls_handshake", "main", "" };

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			mft_elf_symbol(e, names[i], &v);
			if (!mft_elf_symbol_offset(e, names[i], &off) && off >= size)
				abort(); /* a uprobe offset outside the file */
		}
		mft_elf_needs(e, "libgnutls.so");
		mft_elf_usdt_count(e, NULL);
		mft_elf_usdt_count(e, "qemu");
		if (!mft_elf_usdt_args(e, "qemu", "migrate_set_state", spec, sizeof(spec)))
			mft_usdt_nargs(spec);
		mft_qemu_version(e, ver, sizeof(ver));
		if (strlen(ver) >= sizeof(ver))
			abort();
		mft_gnutls_version(e, ver, sizeof(ver));
		for (const char *p = ver; *p; p++)
			if (!strchr("0123456789.", *p))
				abort(); /* a GnuTLS version is digits and dots only */
		mft_elf_close(e);
	}
	free(copy);
	return 0;
}
