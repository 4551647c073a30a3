// SPDX-License-Identifier: GPL-2.0
#include <string.h>
#include "correlate/multifd_wire.h"

#define INIT_ID_OFF 24 /* magic 4, version 4, uuid 16, then the id */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int mft_multifd_init_decode(const uint8_t *buf, size_t len, struct mft_multifd_init *out)
{
	if (!buf || len < INIT_ID_OFF + 1)
		return MFT_WIRE_SHORT;
	if (be32(buf) != MFT_MULTIFD_MAGIC)
		return MFT_WIRE_BAD_MAGIC;
	out->version = be32(buf + 4);
	if (out->version != MFT_MULTIFD_VERSION)
		return MFT_WIRE_BAD_VERSION;
	memcpy(out->uuid, buf + 8, sizeof(out->uuid));
	out->id = buf[INIT_ID_OFF];
	return MFT_WIRE_OK;
}

const char *mft_wire_strerror(int rc)
{
	switch (rc) {
	case MFT_WIRE_OK: return "ok";
	case MFT_WIRE_SHORT: return "too short for a MultiFDInit_t";
	case MFT_WIRE_BAD_MAGIC: return "not a multifd magic";
	case MFT_WIRE_BAD_VERSION: return "unknown multifd version";
	default: return "unknown error";
	}
}

int mft_chan_init_of_event(const struct mft_event *ev, int *id, uint8_t uuid[16], bool *has_uuid)
{
	uint8_t raw[8 + MFT_STR_LEN];
	struct mft_multifd_init in;
	int rc;

	*has_uuid = false;
	if (!ev->arg) {
		*id = (int)ev->ret;
		return MFT_WIRE_OK;
	}
	memcpy(raw, &ev->arg, 8);
	memcpy(raw + 8, ev->str, MFT_STR_LEN);
	rc = mft_multifd_init_decode(raw, sizeof(raw), &in);
	if (rc)
		return rc;
	*id = in.id;
	memcpy(uuid, in.uuid, 16);
	*has_uuid = true;
	return MFT_WIRE_OK;
}
