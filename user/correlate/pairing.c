// SPDX-License-Identifier: GPL-2.0
/* The one pairing rule (see pairing.h). Pure C: the unit tests drive it. */
#include <string.h>
#include <sys/socket.h>
#include "correlate/pairing.h"

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool is_mapped(const uint8_t a[16])
{
	return !memcmp(a, v4mapped, sizeof(v4mapped));
}

static bool is_any(const uint8_t a[16])
{
	static const uint8_t zero[16];

	return !memcmp(a, zero, sizeof(zero));
}

static void to_v4(uint8_t a[16])
{
	uint8_t v4[4];

	memcpy(v4, a + 12, 4);
	memset(a, 0, 16);
	memcpy(a, v4, 4);
}

void mft_addr_normalize(int *family, uint8_t laddr[16], uint8_t raddr[16])
{
	if (*family != AF_INET6)
		return;
	if (!(is_mapped(laddr) || is_any(laddr)) || !(is_mapped(raddr) || is_any(raddr)))
		return;
	if (!is_mapped(laddr) && !is_mapped(raddr))
		return; /* [::] on both sides: nothing says IPv4 */
	if (is_mapped(laddr))
		to_v4(laddr);
	if (is_mapped(raddr))
		to_v4(raddr);
	*family = AF_INET;
}

bool mft_same_connection(const struct mft_end *a, const struct mft_end *b)
{
	uint8_t al[16], ar[16], bl[16], br[16];
	int af = a->family, bf = b->family;

	if (!a->lport || !a->rport || a->lport != b->rport || a->rport != b->lport)
		return false;
	if (a->chan_id >= 0 && b->chan_id >= 0 && a->chan_id != b->chan_id)
		return false;
	if (a->uuid && b->uuid && memcmp(a->uuid, b->uuid, 16))
		return false;
	memcpy(al, a->laddr, 16);
	memcpy(ar, a->raddr, 16);
	memcpy(bl, b->laddr, 16);
	memcpy(br, b->raddr, 16);
	mft_addr_normalize(&af, al, ar);
	mft_addr_normalize(&bf, bl, br);
	return af == bf && !memcmp(al, br, 16) && !memcmp(ar, bl, 16);
}
