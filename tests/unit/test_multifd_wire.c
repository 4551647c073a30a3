/* The MultiFDInit_t decoder, with good, short and corrupt headers. */
#include "unit.h"
#include "correlate/multifd_wire.h"

/* A MultiFDInit_t as QEMU sends it (docs/qemu-behaviour.md §7.1), 64 bytes. */
static void init_packet(uint8_t *p, uint8_t id)
{
	static const uint8_t head[8] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };

	memset(p, 0, 64);
	memcpy(p, head, 8);
	for (int i = 0; i < 16; i++)
		p[8 + i] = (uint8_t)(0xa0 + i);
	p[24] = id;
}

static void decodes_a_real_init_packet(void)
{
	uint8_t p[64];
	struct mft_multifd_init in;

	init_packet(p, 3);
	CHECK_INT(mft_multifd_init_decode(p, sizeof(p), &in), MFT_WIRE_OK);
	CHECK_INT(in.id, 3);
	CHECK_INT(in.version, 1);
	CHECK_INT(in.uuid[0], 0xa0);
	CHECK_INT(in.uuid[15], 0xaf);
}

static void rejects_short_and_corrupt(void)
{
	uint8_t p[64];
	struct mft_multifd_init in;

	init_packet(p, 1);
	for (size_t len = 0; len < 25; len++)
		CHECK_INT(mft_multifd_init_decode(p, len, &in), MFT_WIRE_SHORT);
	CHECK_INT(mft_multifd_init_decode(NULL, 64, &in), MFT_WIRE_SHORT);
	CHECK_INT(mft_multifd_init_decode(p, 25, &in), MFT_WIRE_OK);
	p[0] ^= 0xff;
	CHECK_INT(mft_multifd_init_decode(p, 64, &in), MFT_WIRE_BAD_MAGIC);
	init_packet(p, 1);
	p[3] = 0x45; /* little-endian writers would get this wrong */
	CHECK_INT(mft_multifd_init_decode(p, 64, &in), MFT_WIRE_BAD_MAGIC);
	init_packet(p, 1);
	p[7] = 2;
	CHECK_INT(mft_multifd_init_decode(p, 64, &in), MFT_WIRE_BAD_VERSION);
	/* a TLS record header or a QEVM main channel are not init packets */
	memcpy(p, "QEVM\0\0\0\3", 8);
	CHECK_INT(mft_multifd_init_decode(p, 64, &in), MFT_WIRE_BAD_MAGIC);
	CHECK(strcmp(mft_wire_strerror(MFT_WIRE_BAD_VERSION), "unknown multifd version") == 0);
}

static void events_raw_and_usdt(void)
{
	uint8_t p[64], uuid[16];
	struct mft_event ev = { 0 };
	bool has_uuid;
	int id = -1;

	init_packet(p, 2);
	memcpy(&ev.arg, p, 8); /* what the BPF side sends */
	memcpy(ev.str, p + 8, MFT_STR_LEN);
	CHECK_INT(mft_chan_init_of_event(&ev, &id, uuid, &has_uuid), MFT_WIRE_OK);
	CHECK_INT(id, 2);
	CHECK(has_uuid);
	CHECK_INT(uuid[1], 0xa1);
	ev.str[16] = 9; /* byte 24: the id */
	CHECK_INT(mft_chan_init_of_event(&ev, &id, uuid, &has_uuid), MFT_WIRE_OK);
	CHECK_INT(id, 9);
	memset(&ev, 0, sizeof(ev)); /* USDT: the id alone */
	ev.ret = 5;
	CHECK_INT(mft_chan_init_of_event(&ev, &id, uuid, &has_uuid), MFT_WIRE_OK);
	CHECK_INT(id, 5);
	CHECK(!has_uuid);
	ev.arg = 0x0102030405060708ull; /* garbage raw bytes */
	CHECK_INT(mft_chan_init_of_event(&ev, &id, uuid, &has_uuid), MFT_WIRE_BAD_MAGIC);
	CHECK(!has_uuid);
}

int main(void)
{
	RUN(decodes_a_real_init_packet);
	RUN(rejects_short_and_corrupt);
	RUN(events_raw_and_usdt);
	UNIT_EXIT();
}
