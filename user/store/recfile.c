// SPDX-License-Identifier: GPL-2.0
/*
 * The recording file format: writer and reader. See docs/recording-format.md for the
 * layout and for why a file cut at any byte still reads up to its last complete record.
 *
 * A file is a 64-byte preamble and then segments of records. Without --max-size there is
 * one segment that grows. With it, the file holds a ring of n segments of equal size;
 * each segment starts with its sequence number and repeats the metadata (host, clock,
 * targets, probes, counters) and the opening events of the channels still open, so that
 * the oldest surviving segment is self-contained. Every record carries a CRC-32 seeded
 * with its segment's sequence number: stale records of an older lap fail it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "base/util.h"
#include "store/recfile.h"

static const uint8_t rec_magic[8] = { 0x89, 'M', 'F', 'T', '\r', '\n', 0x1a, '\n' };
static const uint8_t rec_sync[4] = { 'M', 'F', 'R', 0xa5 };

/* The v1 event payload is the struct as x86-64 lays it out; a change to struct
 * mft_event or to the event numbering is a change of the file format. */
_Static_assert(sizeof(struct mft_event) == MFT_REC_EVENT_LEN, "struct mft_event changed: review the recording format");
_Static_assert(MFT_EV_PROC_EXIT == 23, "event types renumbered: the recording format numbers them");

#define CARRY_MAX_EVENTS 8
#define CARRY_KEEP_NS (10ull * 1000000000ull) /* keep a destroyed socket's opening this long */

/* ------------------------------------------------------------------ CRC-32 (zlib's) */

uint32_t mft_crc32(uint32_t crc, const void *buf, size_t len)
{
	return (uint32_t)crc32_z(crc, buf, len);
}

/* ------------------------------------------------------------------ little-endian codec */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}
static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}
static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}
static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void mft_rec_encode_event(uint8_t out[MFT_REC_EVENT_LEN], const struct mft_event *ev)
{
	const struct mft_sock_snap *s = &ev->snap;

	memset(out, 0, MFT_REC_EVENT_LEN);
	put64(out + 0, ev->ts_ns);
	put64(out + 8, ev->sk);
	put64(out + 16, ev->arg);
	put64(out + 24, (uint64_t)ev->ret);
	put32(out + 32, ev->pid);
	put32(out + 36, ev->tid);
	put16(out + 40, ev->type);
	put16(out + 42, ev->family);
	put16(out + 44, ev->lport);
	put16(out + 46, ev->rport);
	memcpy(out + 48, ev->laddr, 16);
	memcpy(out + 64, ev->raddr, 16);
	out[80] = ev->role;
	put64(out + 88, s->rx_bytes);
	put64(out + 96, s->tx_bytes);
	put64(out + 104, s->rx_calls);
	put64(out + 112, s->last_rx_ns);
	put32(out + 120, (uint32_t)s->last_rx_len);
	put32(out + 124, (uint32_t)s->prev_rx_len);
	put32(out + 128, s->last_rx_tid);
	put32(out + 132, s->late_reads);
	put32(out + 136, s->tls_records);
	put32(out + 140, s->flags);
	memcpy(out + 144, ev->str, MFT_STR_LEN);
}

void mft_rec_decode_event(const uint8_t in[MFT_REC_EVENT_LEN], struct mft_event *ev)
{
	struct mft_sock_snap *s = &ev->snap;

	memset(ev, 0, sizeof(*ev));
	ev->ts_ns = get64(in + 0);
	ev->sk = get64(in + 8);
	ev->arg = get64(in + 16);
	ev->ret = (int64_t)get64(in + 24);
	ev->pid = get32(in + 32);
	ev->tid = get32(in + 36);
	ev->type = get16(in + 40);
	ev->family = get16(in + 42);
	ev->lport = get16(in + 44);
	ev->rport = get16(in + 46);
	memcpy(ev->laddr, in + 48, 16);
	memcpy(ev->raddr, in + 64, 16);
	ev->role = in[80];
	s->rx_bytes = get64(in + 88);
	s->tx_bytes = get64(in + 96);
	s->rx_calls = get64(in + 104);
	s->last_rx_ns = get64(in + 112);
	s->last_rx_len = (int32_t)get32(in + 120);
	s->prev_rx_len = (int32_t)get32(in + 124);
	s->last_rx_tid = get32(in + 128);
	s->late_reads = get32(in + 132);
	s->tls_records = get32(in + 136);
	s->flags = get32(in + 140);
	memcpy(ev->str, in + 144, MFT_STR_LEN);
}

/* ------------------------------------------------------------------ format 2: event blocks */

/*
 * An EVENTS record holds a block of events, each coded against the previous event of the
 * same (pid, sk) in the block (its context), or against an all-zero event for the first
 * one: a context number, a mask of the fields that differ, the time as a difference to
 * the block's previous event, then each field that differs (docs/recording-format.md).
 * Numbers are LEB128 varints, differences zigzag-coded, so wrapping values survive.
 * Every block starts from nothing: it decodes alone (after damage, in a ring).
 */
enum {
	B_ARG = 1u << 0,
	B_RX_BYTES = 1u << 1,
	B_RX_CALLS = 1u << 2,
	B_LAST_RX_NS = 1u << 3,
	B_LAST_RX_LEN = 1u << 4,
	B_PREV_RX_LEN = 1u << 5,
	B_TX_BYTES = 1u << 6,
	B_RET = 1u << 7,
	B_TYPE = 1u << 8,
	B_TID = 1u << 9,
	B_TLS_RECORDS = 1u << 10,
	B_LATE_READS = 1u << 11,
	B_FLAGS = 1u << 12,
	B_LAST_RX_TID = 1u << 13,
	B_STR = 1u << 14,
	B_ROLE = 1u << 15,
	B_PORTS = 1u << 16, /* family, lport, rport */
	B_LADDR = 1u << 17,
	B_RADDR = 1u << 18,
	B_PID = 1u << 19,
	B_SK = 1u << 20,
	B__ALL = (1u << 21) - 1,
};

static uint8_t *put_var(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static uint8_t *put_zz(uint8_t *p, uint64_t delta)
{
	int64_t d = (int64_t)delta;

	return put_var(p, ((uint64_t)d << 1) ^ (uint64_t)(d >> 63));
}

static inline __attribute__((always_inline)) bool get_var(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;

	if (*p < end && !(**p & 0x80)) { /* most are one byte */
		*v = *(*p)++;
		return true;
	}
	for (int shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

static inline __attribute__((always_inline)) bool get_zz(const uint8_t **p, const uint8_t *end, uint64_t *delta)
{
	uint64_t z;

	if (!get_var(p, end, &z))
		return false;
	*delta = (z >> 1) ^ (uint64_t) - (int64_t)(z & 1);
	return true;
}

/* One event into out (at most MFT_REC_EVENT2_MAX bytes), against base; returns its end. */
static uint8_t *encode_event2(uint8_t *out, uint64_t ctx, uint64_t prev_ts, const struct mft_event *b,
			      const struct mft_event *e)
{
	const struct mft_sock_snap *s = &e->snap, *bs = &b->snap;
	uint32_t m = 0;
	uint8_t *p;
	int n;

	m |= e->arg != b->arg ? B_ARG : 0;
	m |= s->rx_bytes != bs->rx_bytes ? B_RX_BYTES : 0;
	m |= s->rx_calls != bs->rx_calls ? B_RX_CALLS : 0;
	m |= s->last_rx_ns != bs->last_rx_ns ? B_LAST_RX_NS : 0;
	m |= s->last_rx_len != bs->last_rx_len ? B_LAST_RX_LEN : 0;
	m |= s->prev_rx_len != bs->prev_rx_len ? B_PREV_RX_LEN : 0;
	m |= s->tx_bytes != bs->tx_bytes ? B_TX_BYTES : 0;
	m |= e->ret != b->ret ? B_RET : 0;
	m |= e->type != b->type ? B_TYPE : 0;
	m |= e->tid != b->tid ? B_TID : 0;
	m |= s->tls_records != bs->tls_records ? B_TLS_RECORDS : 0;
	m |= s->late_reads != bs->late_reads ? B_LATE_READS : 0;
	m |= s->flags != bs->flags ? B_FLAGS : 0;
	m |= s->last_rx_tid != bs->last_rx_tid ? B_LAST_RX_TID : 0;
	m |= memcmp(e->str, b->str, MFT_STR_LEN) ? B_STR : 0;
	m |= e->role != b->role ? B_ROLE : 0;
	m |= e->family != b->family || e->lport != b->lport || e->rport != b->rport ? B_PORTS : 0;
	m |= memcmp(e->laddr, b->laddr, 16) ? B_LADDR : 0;
	m |= memcmp(e->raddr, b->raddr, 16) ? B_RADDR : 0;
	m |= e->pid != b->pid ? B_PID : 0;
	m |= e->sk != b->sk ? B_SK : 0;
	p = put_var(out, ctx);
	p = put_var(p, m);
	p = put_zz(p, e->ts_ns - prev_ts);
	if (m & B_ARG)
		p = put_zz(p, e->arg - b->arg);
	if (m & B_RX_BYTES)
		p = put_zz(p, s->rx_bytes - bs->rx_bytes);
	if (m & B_RX_CALLS)
		p = put_zz(p, s->rx_calls - bs->rx_calls);
	if (m & B_LAST_RX_NS)
		p = put_zz(p, e->ts_ns - s->last_rx_ns);
	if (m & B_LAST_RX_LEN)
		p = put_zz(p, (uint64_t)(int64_t)s->last_rx_len);
	if (m & B_PREV_RX_LEN)
		p = put_zz(p, (uint64_t)(int64_t)s->prev_rx_len);
	if (m & B_TX_BYTES)
		p = put_zz(p, s->tx_bytes - bs->tx_bytes);
	if (m & B_RET)
		p = put_zz(p, (uint64_t)e->ret - (uint64_t)b->ret);
	if (m & B_TYPE)
		p = put_var(p, e->type);
	if (m & B_TID)
		p = put_var(p, e->tid);
	if (m & B_TLS_RECORDS)
		p = put_var(p, s->tls_records);
	if (m & B_LATE_READS)
		p = put_var(p, s->late_reads);
	if (m & B_FLAGS)
		p = put_var(p, s->flags);
	if (m & B_LAST_RX_TID)
		p = put_var(p, s->last_rx_tid);
	if (m & B_STR) { /* the bytes up to the last one that is not zero */
		for (n = MFT_STR_LEN; n > 0 && !e->str[n - 1]; n--)
			;
		*p++ = (uint8_t)n;
		memcpy(p, e->str, (size_t)n);
		p += n;
	}
	if (m & B_ROLE)
		*p++ = e->role;
	if (m & B_PORTS) {
		p = put_var(p, e->family);
		p = put_var(p, e->lport);
		p = put_var(p, e->rport);
	}
	if (m & B_LADDR) {
		memcpy(p, e->laddr, 16);
		p += 16;
	}
	if (m & B_RADDR) {
		memcpy(p, e->raddr, 16);
		p += 16;
	}
	if (m & B_PID)
		p = put_var(p, e->pid);
	if (m & B_SK)
		p = put_var(p, e->sk);
	return p;
}

/*
 * The inverse, defensively: false when the bytes are not an event. e holds base on entry.
 * With full false (a skim) it checks the same bytes the same way but keeps only the
 * time, pid and type.
 */
static inline __attribute__((always_inline)) bool decode_ev(const uint8_t **pp, const uint8_t *end, uint64_t prev_ts,
							    struct mft_event *e, bool full)
{
	struct mft_sock_snap *s = &e->snap;
	const uint8_t *p = *pp;
	uint64_t m, v;

#define VAR(dst, keep)                     \
	do {                               \
		if (!get_var(&p, end, &v)) \
			return false;      \
		if (keep)                  \
			dst = v;           \
	} while (0)
#define ZZ(dst, base)                     \
	do {                              \
		if (!get_zz(&p, end, &v)) \
			return false;     \
		if (full)                 \
			dst = (base) + v; \
	} while (0)
	if (!get_var(&p, end, &m) || m & ~(uint64_t)B__ALL)
		return false;
	if (!get_zz(&p, end, &v))
		return false;
	e->ts_ns = prev_ts + v;
	if (m & B_ARG)
		ZZ(e->arg, e->arg);
	if (m & B_RX_BYTES)
		ZZ(s->rx_bytes, s->rx_bytes);
	if (m & B_RX_CALLS)
		ZZ(s->rx_calls, s->rx_calls);
	if (m & B_LAST_RX_NS) { /* coded as its distance to the event's own time */
		if (!get_zz(&p, end, &v))
			return false;
		if (full)
			s->last_rx_ns = e->ts_ns - v;
	}
	if (m & B_LAST_RX_LEN)
		ZZ(s->last_rx_len, (int32_t)0);
	if (m & B_PREV_RX_LEN)
		ZZ(s->prev_rx_len, (int32_t)0);
	if (m & B_TX_BYTES)
		ZZ(s->tx_bytes, s->tx_bytes);
	if (m & B_RET)
		ZZ(e->ret, (uint64_t)e->ret);
	if (m & B_TYPE)
		VAR(e->type, true);
	if (m & B_TID)
		VAR(e->tid, full);
	if (m & B_TLS_RECORDS)
		VAR(s->tls_records, full);
	if (m & B_LATE_READS)
		VAR(s->late_reads, full);
	if (m & B_FLAGS)
		VAR(s->flags, full);
	if (m & B_LAST_RX_TID)
		VAR(s->last_rx_tid, full);
	if (m & B_STR) {
		if (p == end || *p > MFT_STR_LEN || (size_t)(end - p - 1) < *p)
			return false;
		if (full) {
			memset(e->str, 0, MFT_STR_LEN);
			memcpy(e->str, p + 1, *p);
		}
		p += 1 + *p;
	}
	if (m & B_ROLE) {
		if (p == end)
			return false;
		if (full)
			e->role = *p;
		p++;
	}
	if (m & B_PORTS) {
		VAR(e->family, full);
		VAR(e->lport, full);
		VAR(e->rport, full);
	}
	if (m & B_LADDR) {
		if (end - p < 16)
			return false;
		if (full)
			memcpy(e->laddr, p, 16);
		p += 16;
	}
	if (m & B_RADDR) {
		if (end - p < 16)
			return false;
		if (full)
			memcpy(e->raddr, p, 16);
		p += 16;
	}
	if (m & B_PID)
		VAR(e->pid, true);
	if (m & B_SK)
		VAR(e->sk, full);
#undef VAR
#undef ZZ
	*pp = p;
	return true;
}

static bool decode_event2(const uint8_t **pp, const uint8_t *end, uint64_t prev_ts, struct mft_event *e)
{
	return decode_ev(pp, end, prev_ts, e, true);
}

static bool skim_event2(const uint8_t **pp, const uint8_t *end, uint64_t prev_ts, struct mft_event *e)
{
	return decode_ev(pp, end, prev_ts, e, false);
}

/* Tag-length-value payloads (HOST, TARGET, PROBE): u16 tag, u16 length, bytes. */
struct tlv {
	uint8_t buf[12288];
	size_t len;
};

static void tlv_str(struct tlv *t, uint16_t tag, const char *s)
{
	size_t n = strnlen(s, 65535);

	if (!n || t->len + 4 + n > sizeof(t->buf))
		return;
	put16(t->buf + t->len, tag);
	put16(t->buf + t->len + 2, (uint16_t)n);
	memcpy(t->buf + t->len + 4, s, n);
	t->len += 4 + n;
}

static void tlv_u64(struct tlv *t, uint16_t tag, uint64_t v)
{
	if (t->len + 12 > sizeof(t->buf))
		return;
	put16(t->buf + t->len, tag);
	put16(t->buf + t->len + 2, 8);
	put64(t->buf + t->len + 4, v);
	t->len += 12;
}

/* TLV tags */
enum { H_HOSTNAME = 1, H_KERNEL, H_MACHINE, H_BOOT_ID, H_TOOL_VERSION, H_TLS_RECORDS, H_MECHANISM, H_ALL_QEMUS };
enum { T_PID = 1, T_NAME, T_EXE, T_QEMU_VERSION, T_GNUTLS, T_GNUTLS_VERSION, T_CMDLINE, T_INCOMING, T_REMOVED, T_TIME };
enum { P_PID = 1, P_WHAT, P_MECH, P_OK, P_REQUIRED, P_WHY };

/*
 * Each TLV payload is described once, by a table of its fields (in the order they are
 * written): the writer and the reader both walk it.
 */
enum tlv_kind { K_STR, K_U64, K_U32, K_BOOL };

struct tlv_field {
	uint16_t tag;
	uint8_t kind;
	size_t off, size;
};

#define FIELD(tag, kind, type, member)                                         \
	{                                                                      \
		tag, kind, offsetof(type, member), sizeof(((type *)0)->member) \
	}

static const struct tlv_field host_fields[] = {
	FIELD(H_HOSTNAME, K_STR, struct mft_rec_host, hostname),
	FIELD(H_KERNEL, K_STR, struct mft_rec_host, kernel),
	FIELD(H_MACHINE, K_STR, struct mft_rec_host, machine),
	FIELD(H_BOOT_ID, K_STR, struct mft_rec_host, boot_id),
	FIELD(H_TOOL_VERSION, K_STR, struct mft_rec_host, tool_version),
	FIELD(H_TLS_RECORDS, K_BOOL, struct mft_rec_host, tls_records),
	FIELD(H_MECHANISM, K_STR, struct mft_rec_host, mechanism),
	FIELD(H_ALL_QEMUS, K_BOOL, struct mft_rec_host, all_qemus),
	{ 0 },
};

static const struct tlv_field target_fields[] = {
	FIELD(T_PID, K_U32, struct mft_rec_target, pid),
	FIELD(T_NAME, K_STR, struct mft_rec_target, name),
	FIELD(T_EXE, K_STR, struct mft_rec_target, exe),
	FIELD(T_QEMU_VERSION, K_STR, struct mft_rec_target, qemu_version),
	FIELD(T_GNUTLS, K_STR, struct mft_rec_target, gnutls),
	FIELD(T_GNUTLS_VERSION, K_STR, struct mft_rec_target, gnutls_version),
	FIELD(T_INCOMING, K_BOOL, struct mft_rec_target, incoming),
	FIELD(T_REMOVED, K_BOOL, struct mft_rec_target, removed),
	FIELD(T_TIME, K_U64, struct mft_rec_target, t_mono),
	FIELD(T_CMDLINE, K_STR, struct mft_rec_target, cmdline),
	{ 0 },
};

static const struct tlv_field probe_fields[] = {
	FIELD(P_PID, K_U32, struct mft_rec_probe, pid),
	FIELD(P_WHAT, K_STR, struct mft_rec_probe, what),
	FIELD(P_MECH, K_STR, struct mft_rec_probe, mech),
	FIELD(P_OK, K_BOOL, struct mft_rec_probe, ok),
	FIELD(P_REQUIRED, K_BOOL, struct mft_rec_probe, required),
	FIELD(P_WHY, K_STR, struct mft_rec_probe, why),
	{ 0 },
};

/* obj as the TLV payload its table describes (an empty string is left out). */
static void tlv_encode(struct tlv *t, const struct tlv_field *f, const void *obj)
{
	t->len = 0;
	for (; f->tag; f++) {
		const char *m = (const char *)obj + f->off;

		switch (f->kind) {
		case K_STR: tlv_str(t, f->tag, m); break;
		case K_U64: tlv_u64(t, f->tag, *(const uint64_t *)m); break;
		case K_U32: tlv_u64(t, f->tag, *(const uint32_t *)m); break;
		default: tlv_u64(t, f->tag, *(const bool *)m); break;
		}
	}
}

static uint64_t tlv_num(const uint8_t *v, size_t n)
{
	return n == 8 ? get64(v) : 0;
}

/*
 * Read a TLV payload into obj by its table: tags it does not know are a newer minor's and
 * skipped. Strings are the bytes as they were recorded (a VM name is the target's choice):
 * whoever prints them as text sanitises them (mft_sanitize), JSON escapes them. false if
 * the payload is malformed.
 */
static bool tlv_decode(const uint8_t *p, size_t len, const struct tlv_field *fields, void *obj)
{
	size_t off = 0;

	while (off < len) {
		const struct tlv_field *f = fields;
		size_t n;
		const uint8_t *v;
		char *m;

		if (len - off < 4)
			return false;
		n = get16(p + off + 2);
		if (len - off - 4 < n)
			return false;
		v = p + off + 4;
		while (f->tag && f->tag != get16(p + off))
			f++;
		off += 4 + n;
		if (!f->tag)
			continue;
		m = (char *)obj + f->off;
		switch (f->kind) {
		case K_STR:
			if (n >= f->size)
				n = f->size - 1;
			memcpy(m, v, n);
			m[n] = '\0';
			break;
		case K_U64: *(uint64_t *)m = tlv_num(v, n); break;
		case K_U32: *(uint32_t *)m = (uint32_t)tlv_num(v, n); break;
		default: *(bool *)m = tlv_num(v, n) != 0; break;
		}
	}
	return true;
}

/* The CRC of a record binds it to its segment's sequence number. */
static uint32_t record_crc(uint64_t seq, const uint8_t *hdr, const uint8_t *payload, size_t len)
{
	uint8_t s[8];
	uint32_t crc;

	put64(s, seq);
	crc = mft_crc32(0, s, 8);
	crc = mft_crc32(crc, hdr + 4, 8);
	return mft_crc32(crc, payload, len);
}

/* ------------------------------------------------------------------ writer */

struct carry {
	uint32_t pid;
	uint64_t sk;
	bool state; /* a migration state machine (sk is its pointer) */
	uint64_t t_destroy;
	int n;
	struct mft_event ev[CARRY_MAX_EVENTS];
	uint64_t order[CARRY_MAX_EVENTS];
};

struct mft_recw {
	int fd;
	bool ring;
	uint64_t seg_size;
	unsigned n_segs, cur;
	uint64_t seq;
	uint64_t seg_pos; /* bytes of the current segment, buffered ones included */
	uint64_t buf_pos; /* where in the segment buf begins */
	uint8_t *buf;
	size_t buf_len, buf_cap;
	uint64_t buf_events;
	uint64_t *seg_events; /* events flushed into each segment */
	bool switching;       /* writing a new segment's opening */
	uint64_t limit;       /* while switching: how much of the segment the opening may use */
	bool has_host, has_clock, has_counters;
	struct mft_rec_host host;
	struct mft_rec_clock clock;
	struct mft_rec_counters counters;
	struct mft_rec_target *targets;
	size_t n_targets, cap_targets;
	struct mft_rec_probe *probes;
	size_t n_probes, cap_probes;
	struct carry *carry;
	size_t n_carry, cap_carry;
	uint64_t n_seen; /* events offered, for carry order */
	uint64_t now;
	struct mft_recw_stats st;
	struct tlv tlv;
	/* format 2: the block of events being coded (an EVENTS record once closed) */
	unsigned format;
	uint8_t *blk;
	size_t blk_len, blk_cap;
	uint64_t blk_events, blk_prev_ts;
	struct mft_event blk_ctx[MFT_REC_BLOCK_CTX]; /* the latest event of each (pid, sk) */
	unsigned blk_n_ctx;
};

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return p;
	ncap = *cap ? *cap * 2 : 16;
	while (ncap < need)
		ncap *= 2;
	np = realloc(p, ncap * elem);
	if (!np)
		return NULL;
	*cap = ncap;
	return np;
}

static uint64_t file_off(const struct mft_recw *w, uint64_t seg_pos)
{
	return MFT_REC_PREAMBLE_LEN + (uint64_t)w->cur * w->seg_size + seg_pos;
}

static int buf_flush(struct mft_recw *w)
{
	size_t done = 0;

	while (done < w->buf_len) {
		ssize_t n = pwrite(w->fd, w->buf + done, w->buf_len - done, (off_t)file_off(w, w->buf_pos + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* the events in the buffer are lost; the next records take their place */
			w->st.last_errno = n < 0 ? errno : EIO;
			w->st.events_unwritten += w->buf_events;
			w->seg_pos = w->buf_pos;
			w->buf_len = 0;
			w->buf_events = 0;
			return -w->st.last_errno;
		}
		done += (size_t)n;
	}
	w->st.bytes_written += w->buf_len;
	w->st.events_written += w->buf_events;
	w->seg_events[w->cur] += w->buf_events;
	w->buf_pos = w->seg_pos;
	w->buf_len = 0;
	w->buf_events = 0;
	return 0;
}

static void start_segment(struct mft_recw *w);
static void close_block(struct mft_recw *w, unsigned flags);

int mft_recw_flush(struct mft_recw *w)
{
	close_block(w, 0);
	return buf_flush(w);
}

/* Append one record. false if it was dropped (it cannot fit a segment). */
static bool put_record(struct mft_recw *w, unsigned type, unsigned flags, const uint8_t *payload, size_t len)
{
	size_t need = MFT_REC_HDR_LEN + len;
	uint8_t *h;

	if (type != MFT_REC_EVENTS)
		close_block(w, 0); /* the events before it, in their order */
	if (w->ring && w->switching && w->seg_pos + need > w->limit)
		return false;
	if (w->ring && w->seg_pos + need > w->seg_size) {
		if (need + 256 > w->seg_size || (start_segment(w), w->seg_pos + need > w->seg_size)) {
			if (type == MFT_REC_EVENT)
				w->st.events_unwritten++;
			return false;
		}
	}
	if (w->buf_len + need > w->buf_cap) {
		buf_flush(w);
		if (need > w->buf_cap) {
			uint8_t *nb = realloc(w->buf, need);

			if (!nb)
				return false;
			w->buf = nb;
			w->buf_cap = need;
		}
	}
	h = w->buf + w->buf_len;
	memcpy(h, rec_sync, 4);
	put16(h + 4, (uint16_t)type);
	put16(h + 6, (uint16_t)flags);
	put32(h + 8, (uint32_t)len);
	if (len)
		memcpy(h + MFT_REC_HDR_LEN, payload, len);
	put32(h + 12, record_crc(w->seq, h, h + MFT_REC_HDR_LEN, len));
	w->buf_len += need;
	w->seg_pos += need;
	if (type == MFT_REC_EVENT)
		w->buf_events++;
	return true;
}

static void put_host(struct mft_recw *w)
{
	tlv_encode(&w->tlv, host_fields, &w->host);
	put_record(w, MFT_REC_HOST, 0, w->tlv.buf, w->tlv.len);
}

static void put_clock(struct mft_recw *w, const struct mft_rec_clock *c)
{
	uint8_t p[24];

	put64(p, c->mono_ns);
	put64(p + 8, (uint64_t)c->real_ns);
	put64(p + 16, c->err_ns);
	put_record(w, MFT_REC_CLOCK, 0, p, sizeof(p));
}

static void encode_counters(const struct mft_recw *w, const struct mft_rec_counters *c, uint8_t p[64])
{
	put64(p, c->mono_ns);
	put64(p + 8, c->kernel_events);
	put64(p + 16, c->rb_dropped);
	put64(p + 24, c->sockmap_full);
	put64(p + 32, c->bad_events);
	put64(p + 40, w->st.events_written + w->buf_events);
	put64(p + 48, w->st.events_overwritten);
	put64(p + 56, w->st.events_unwritten);
}

static void put_counters(struct mft_recw *w, const struct mft_rec_counters *c)
{
	uint8_t p[64];

	close_block(w, 0); /* its events are counted as written */
	encode_counters(w, c, p);
	put_record(w, MFT_REC_COUNTERS, c->final ? MFT_RECF_FINAL : 0, p, sizeof(p));
}

/* Close the block being coded: one EVENTS record (with flags), its events counted. */
static void close_block(struct mft_recw *w, unsigned flags)
{
	uint64_t n = w->blk_events;
	size_t len = w->blk_len;

	if (!len)
		return;
	w->blk_len = 0;
	w->blk_events = 0;
	w->blk_n_ctx = 0;
	w->blk_prev_ts = 0;
	if (!put_record(w, MFT_REC_EVENTS, flags, w->blk, len)) {
		if (!(flags & MFT_RECF_CARRIED))
			w->st.events_unwritten += n;
		return;
	}
	if (!(flags & MFT_RECF_CARRIED)) /* carried ones are not new events */
		w->buf_events += n;
}

/* Code one event into the block, if it has room below cap. */
static bool block_add(struct mft_recw *w, const struct mft_event *ev, size_t cap)
{
	static const struct mft_event zero;
	unsigned k;

	for (k = 0; k < w->blk_n_ctx; k++)
		if (w->blk_ctx[k].pid == ev->pid && w->blk_ctx[k].sk == ev->sk)
			break;
	if (w->blk_len + MFT_REC_EVENT2_MAX > cap || (k == w->blk_n_ctx && k == MFT_REC_BLOCK_CTX))
		return false;
	w->blk_len = (size_t)(encode_event2(w->blk + w->blk_len, k, w->blk_prev_ts,
					    k < w->blk_n_ctx ? &w->blk_ctx[k] : &zero, ev) -
			      w->blk);
	w->blk_ctx[k] = *ev;
	w->blk_n_ctx += k == w->blk_n_ctx;
	w->blk_prev_ts = ev->ts_ns;
	w->blk_events++;
	return true;
}

struct carried {
	uint64_t order;
	const struct mft_event *ev;
};

static int carried_cmp(const void *a, const void *b)
{
	const struct carried *x = a, *y = b;

	return x->order < y->order ? -1 : x->order > y->order;
}

static void put_carry(struct mft_recw *w)
{
	size_t n = 0, k = 0;
	struct carried *all;
	uint8_t p[MFT_REC_EVENT_LEN];

	for (size_t i = 0; i < w->n_carry; i++)
		n += (size_t)w->carry[i].n;
	if (!n || !(all = calloc(n, sizeof(*all))))
		return;
	for (size_t i = 0; i < w->n_carry; i++)
		for (int j = 0; j < w->carry[i].n; j++)
			all[k++] = (struct carried){ w->carry[i].order[j], &w->carry[i].ev[j] };
	qsort(all, n, sizeof(*all), carried_cmp);          /* the order the correlator first saw them in */
	for (size_t i = 0; w->format >= 2 && i < n; i++) { /* one block of its own, flagged CARRIED */
		if (w->ring && w->seg_pos + MFT_REC_HDR_LEN + w->blk_len + MFT_REC_EVENT2_MAX > w->limit)
			break;
		if (!block_add(w, all[i].ev, MFT_REC_MAX_PAYLOAD))
			break;
	}
	if (w->format >= 2) {
		w->st.carried += w->blk_events;
		close_block(w, MFT_RECF_CARRIED);
	}
	for (size_t i = 0; w->format < 2 && i < n; i++) {
		mft_rec_encode_event(p, all[i].ev);
		if (!put_record(w, MFT_REC_EVENT, MFT_RECF_CARRIED, p, sizeof(p)))
			break;
		w->buf_events--; /* not new events: not counted as written */
		w->st.carried++;
	}
	free(all);
}

static void prune_carry(struct mft_recw *w)
{
	for (size_t i = 0; i < w->n_carry;)
		if (w->carry[i].t_destroy && w->now > w->carry[i].t_destroy + CARRY_KEEP_NS)
			w->carry[i] = w->carry[--w->n_carry];
		else
			i++;
}

/* A segment's opening: sequence number, metadata, and the carried events. */
static void start_segment(struct mft_recw *w)
{
	uint8_t p[16];

	if (w->st.segments_started) {
		buf_flush(w);
		w->cur = (w->cur + 1) % w->n_segs;
		w->seq++;
		w->st.events_overwritten += w->seg_events[w->cur];
		w->seg_events[w->cur] = 0;
		w->seg_pos = w->buf_pos = 0;
	}
	w->st.segments_started++;
	w->switching = true;
	w->limit = w->ring ? w->seg_size / 4 * 3 : UINT64_MAX;
	put64(p, w->seq);
	put64(p + 8, w->now);
	put_record(w, MFT_REC_SEGMENT, 0, p, sizeof(p));
	if (w->has_host)
		put_host(w);
	if (w->has_clock)
		put_clock(w, &w->clock);
	if (w->has_counters)
		put_counters(w, &w->counters);
	for (size_t i = 0; i < w->n_targets; i++) {
		tlv_encode(&w->tlv, target_fields, &w->targets[i]);
		put_record(w, MFT_REC_TARGET, 0, w->tlv.buf, w->tlv.len);
	}
	prune_carry(w);
	put_carry(w);
	for (size_t i = 0; i < w->n_probes; i++) {
		tlv_encode(&w->tlv, probe_fields, &w->probes[i]);
		put_record(w, MFT_REC_PROBE, 0, w->tlv.buf, w->tlv.len);
	}
	w->switching = false;
}

struct mft_recw *mft_recw_open(const char *path, const struct mft_recw_opts *o, char *err, size_t errlen)
{
	struct mft_recw *w = calloc(1, sizeof(*w));
	uint8_t pre[MFT_REC_PREAMBLE_LEN] = { 0 };
	unsigned n = o && o->n_segments ? o->n_segments : 8;

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->fd = -1;
	w->format = o && o->format ? o->format : MFT_REC_MAJOR;
	if (w->format < 1 || w->format > MFT_REC_MAJOR) {
		snprintf(err, errlen, "format %u: this mftrace writes 1 to %d", w->format, MFT_REC_MAJOR);
		goto fail;
	}
	if (o && o->max_size) {
		w->ring = true;
		w->n_segs = n;
		w->seg_size = (o->max_size - MFT_REC_PREAMBLE_LEN) / n;
		if (o->max_size <= MFT_REC_PREAMBLE_LEN || w->seg_size < MFT_REC_MIN_SEGMENT) {
			snprintf(err, errlen, "size %llu is too small for %u segments of at least %u bytes",
				 (unsigned long long)o->max_size, n, MFT_REC_MIN_SEGMENT);
			goto fail;
		}
	} else {
		w->n_segs = 1;
	}
	w->seg_events = calloc(w->n_segs, sizeof(*w->seg_events));
	w->buf_cap = 64 * 1024;
	w->buf = malloc(w->buf_cap);
	/* a block fits a segment's quarter: the opening (3/4 at most) leaves it room */
	w->blk_cap = w->ring && w->seg_size / 4 < MFT_REC_BLOCK_MAX ? (size_t)w->seg_size / 4 : MFT_REC_BLOCK_MAX;
	w->blk = malloc(MFT_REC_MAX_PAYLOAD);
	if (!w->seg_events || !w->buf || !w->blk) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	w->fd = mft_create_output(path, o && o->force, err, errlen);
	if (w->fd < 0)
		goto fail;
	memcpy(pre, rec_magic, 8);
	put16(pre + 8, (uint16_t)w->format);
	put16(pre + 10, 0);
	put32(pre + 12, w->ring ? MFT_RECP_RING : 0);
	put64(pre + 16, w->ring ? w->seg_size : 0);
	put32(pre + 24, w->n_segs);
	put32(pre + 28, MFT_REC_PREAMBLE_LEN);
	put32(pre + 60, mft_crc32(0, pre, 60));
	if (pwrite(w->fd, pre, sizeof(pre), 0) != (ssize_t)sizeof(pre)) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		goto fail;
	}
	start_segment(w);
	return w;
fail:
	if (w->fd >= 0)
		close(w->fd);
	free(w->seg_events);
	free(w->buf);
	free(w->blk);
	free(w);
	return NULL;
}

void mft_recw_host(struct mft_recw *w, const struct mft_rec_host *h)
{
	w->host = *h;
	w->has_host = true;
	put_host(w);
}

void mft_recw_clock(struct mft_recw *w, const struct mft_rec_clock *c)
{
	w->clock = *c;
	w->has_clock = true;
	if (c->mono_ns > w->now)
		w->now = c->mono_ns;
	put_clock(w, c);
}

void mft_recw_target(struct mft_recw *w, const struct mft_rec_target *t)
{
	size_t i;

	tlv_encode(&w->tlv, target_fields, t);
	put_record(w, MFT_REC_TARGET, 0, w->tlv.buf, w->tlv.len);
	for (i = 0; i < w->n_targets && w->targets[i].pid != t->pid; i++)
		;
	if (t->removed) { /* no longer repeated; its probes neither */
		if (i < w->n_targets)
			w->targets[i] = w->targets[--w->n_targets];
		for (size_t k = 0; k < w->n_probes;)
			if (w->probes[k].pid == t->pid)
				w->probes[k] = w->probes[--w->n_probes];
			else
				k++;
		return;
	}
	if (i == w->n_targets) {
		struct mft_rec_target *nt = grow(w->targets, &w->cap_targets, w->n_targets + 1, sizeof(*nt));

		if (!nt)
			return;
		w->targets = nt;
		w->n_targets++;
	}
	w->targets[i] = *t;
}

void mft_recw_probe(struct mft_recw *w, const struct mft_rec_probe *p)
{
	struct mft_rec_probe *np;

	tlv_encode(&w->tlv, probe_fields, p);
	put_record(w, MFT_REC_PROBE, 0, w->tlv.buf, w->tlv.len);
	np = grow(w->probes, &w->cap_probes, w->n_probes + 1, sizeof(*np));
	if (!np)
		return;
	w->probes = np;
	w->probes[w->n_probes++] = *p;
}

void mft_recw_counters(struct mft_recw *w, const struct mft_rec_counters *c)
{
	w->counters = *c;
	w->counters.final = false;
	w->has_counters = true;
	if (c->mono_ns > w->now)
		w->now = c->mono_ns;
	put_counters(w, c);
}

static struct carry *carry_find(struct mft_recw *w, uint32_t pid, uint64_t sk, bool state)
{
	for (size_t i = 0; i < w->n_carry; i++)
		if (w->carry[i].pid == pid && w->carry[i].sk == sk && w->carry[i].state == state)
			return &w->carry[i];
	return NULL;
}

static struct carry *carry_new(struct mft_recw *w, uint32_t pid, uint64_t sk, bool state)
{
	struct carry *c = carry_find(w, pid, sk, state), *nc;

	if (!c) {
		nc = grow(w->carry, &w->cap_carry, w->n_carry + 1, sizeof(*nc));
		if (!nc)
			return NULL;
		w->carry = nc;
		c = &w->carry[w->n_carry++];
	}
	memset(c, 0, sizeof(*c));
	c->pid = pid;
	c->sk = sk;
	c->state = state;
	return c;
}

static void carry_add(struct carry *c, const struct mft_event *ev, uint64_t order)
{
	if (c->n == CARRY_MAX_EVENTS)
		return;
	c->ev[c->n] = *ev;
	c->order[c->n++] = order;
}

/*
 * What a correlator needs of a channel's past to judge it like live mode does: its first
 * event (created, mid-life or not), and the set-once openings (established, TLS, multifd
 * identity). Plus each migration state machine's latest state.
 */
static void carry_track(struct mft_recw *w, const struct mft_event *ev)
{
	struct carry *c;
	uint64_t order = w->n_seen;

	switch (ev->type) {
	case MFT_EV_MIG_STATE:
		if ((c = carry_new(w, ev->pid, ev->sk, true)))
			carry_add(c, ev, order);
		return;
	case MFT_EV_PROC_EXIT:
		for (size_t i = 0; i < w->n_carry;)
			if (w->carry[i].pid == ev->pid)
				w->carry[i] = w->carry[--w->n_carry];
			else
				i++;
		return;
	case MFT_EV_MULTIFD_CLEANUP:
	case MFT_EV_SYNC_MAIN: return;
	default: break;
	}
	if (!ev->sk)
		return;
	c = carry_find(w, ev->pid, ev->sk, false);
	if (ev->type == MFT_EV_SOCK_CONNECT || ev->type == MFT_EV_SOCK_ACCEPT || !c ||
	    (c->t_destroy && ev->type == MFT_EV_SOCK_FOUND)) {
		if ((c = carry_new(w, ev->pid, ev->sk, false)))
			carry_add(c, ev, order);
		return;
	}
	switch (ev->type) {
	case MFT_EV_ESTABLISHED:
	case MFT_EV_FIRST_READ:
	case MFT_EV_TLS_HANDSHAKE:
	case MFT_EV_MULTIFD_CHANNEL:
	case MFT_EV_CHAN_INIT:
		for (int i = 0; i < c->n; i++)
			if (c->ev[i].type == ev->type)
				return;
		carry_add(c, ev, order);
		break;
	case MFT_EV_DESTROY: c->t_destroy = ev->ts_ns ? ev->ts_ns : 1; break;
	default: break;
	}
}

void mft_recw_event(struct mft_recw *w, const struct mft_event *ev)
{
	uint8_t p[MFT_REC_EVENT_LEN];

	if (ev->ts_ns > w->now)
		w->now = ev->ts_ns;
	if (w->format >= 2) {
		/* the block, with this event, must fit the segment: else it closes first, and a
		 * fresh block that cannot fit starts the next segment before this event */
		if (w->ring && w->seg_pos + MFT_REC_HDR_LEN + w->blk_len + MFT_REC_EVENT2_MAX > w->seg_size) {
			close_block(w, 0);
			if (w->seg_pos + MFT_REC_HDR_LEN + MFT_REC_EVENT2_MAX > w->seg_size)
				start_segment(w);
		}
		if (!block_add(w, ev, w->blk_cap)) {
			close_block(w, 0);
			block_add(w, ev, w->blk_cap);
		}
	} else {
		mft_rec_encode_event(p, ev);
		put_record(w, MFT_REC_EVENT, 0, p, sizeof(p));
	}
	if (w->ring)
		carry_track(w, ev);
	w->n_seen++;
}

int mft_recw_close(struct mft_recw *w, const struct mft_rec_counters *final, struct mft_recw_stats *st)
{
	int rc;

	if (final) {
		struct mft_rec_counters c = *final;

		c.final = true;
		if (c.mono_ns > w->now)
			w->now = c.mono_ns;
		put_counters(w, &c);
	}
	rc = mft_recw_flush(w);
	if (fsync(w->fd) && !rc)
		rc = -errno;
	if (close(w->fd) && !rc)
		rc = -errno;
	if (st)
		*st = w->st;
	free(w->buf);
	free(w->blk);
	free(w->seg_events);
	free(w->targets);
	free(w->probes);
	free(w->carry);
	free(w);
	return rc;
}

int mft_recw_snapshot(struct mft_recw *w, const char *path, const struct mft_rec_counters *final, char *err,
		      size_t errlen)
{
	uint8_t rec[MFT_REC_HDR_LEN + 64], *buf = NULL;
	char self[64];
	uint64_t at;
	struct stat st;
	off_t off = 0;
	int fd, in = -1;

	if (mft_recw_flush(w)) {
		snprintf(err, errlen, "cannot write the recording: %s", strerror(w->st.last_errno));
		return -1;
	}
	fd = mft_create_output(path, false, err, errlen);
	if (fd < 0)
		return -1;
	/* the writer's descriptor is write-only: the same file opened again, through it */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", w->fd);
	in = open(self, O_RDONLY | O_CLOEXEC);
	buf = malloc(1 << 20);
	if (!buf || in < 0 || fstat(in, &st))
		goto io;
	while (off < st.st_size) { /* the file as it stands: preamble and every segment */
		ssize_t n = pread(in, buf, (size_t)(st.st_size - off < (1 << 20) ? st.st_size - off : (1 << 20)), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || write(fd, buf, (size_t)n) != n) /* a regular file: a short write is an error */
			goto io;
		off += n;
	}
	/* the trailer, where mft_recw_close would put it (if the segment has room for it) */
	if (final && (!w->ring || w->seg_pos + sizeof(rec) <= w->seg_size)) {
		struct mft_rec_counters c = *final;

		memcpy(rec, rec_sync, 4);
		put16(rec + 4, MFT_REC_COUNTERS);
		put16(rec + 6, MFT_RECF_FINAL);
		put32(rec + 8, 64);
		encode_counters(w, &c, rec + MFT_REC_HDR_LEN);
		put32(rec + 12, record_crc(w->seq, rec, rec + MFT_REC_HDR_LEN, 64));
		at = file_off(w, w->seg_pos);
		if (pwrite(fd, rec, sizeof(rec), (off_t)at) != (ssize_t)sizeof(rec))
			goto io;
	}
	free(buf);
	close(in);
	if (fsync(fd) || close(fd)) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
io:
	snprintf(err, errlen, "cannot copy the recording to %s: %s", path, buf ? strerror(errno) : "out of memory");
	free(buf);
	if (in >= 0)
		close(in);
	close(fd);
	unlink(path); /* ours: created with O_EXCL above */
	return -1;
}

const struct mft_recw_stats *mft_recw_stats(const struct mft_recw *w)
{
	return &w->st;
}

/* ------------------------------------------------------------------ reader */

static void problem(struct mft_recording *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct mft_recording *r, const char *fmt, ...)
{
	va_list ap;

	if (r->n_problems == MFT_REC_MAX_PROBLEMS)
		return;
	va_start(ap, fmt);
	vsnprintf(r->problems[r->n_problems++], sizeof(r->problems[0]), fmt, ap);
	va_end(ap);
}

/*
 * Where the reader takes its bytes: a buffer in memory, or a file read through a window
 * of bounded size, so that reading a file of any size holds a few MiB, not the file.
 */
#define WIN_SIZE (4u << 20) /* at least twice the largest record (1 MiB payload + header) */

struct src {
	const uint8_t *mem; /* the whole input, or NULL: fd read through win */
	int fd;
	uint64_t len;
	uint8_t *win;
	uint64_t win_off;
	size_t win_len;
};

/* The bytes [pos, pos + n) of the input (n <= WIN_SIZE / 2), or NULL past its end. */
static const uint8_t *src_at(struct src *s, uint64_t pos, size_t n)
{
	size_t want, got = 0;

	if (pos > s->len || n > s->len - pos)
		return NULL;
	if (s->mem)
		return s->mem + pos;
	if (pos >= s->win_off && pos - s->win_off + n <= s->win_len)
		return s->win + (pos - s->win_off);
	want = s->len - pos < WIN_SIZE ? (size_t)(s->len - pos) : WIN_SIZE;
	while (got < want) {
		ssize_t k = pread(s->fd, s->win + got, want - got, (off_t)(pos + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	s->win_off = pos;
	s->win_len = got;
	if (got < want) /* the file shrank: what was there is all there is */
		s->len = pos + got;
	return got >= n ? s->win : NULL;
}

/*
 * Is there a valid record at [pos..end)? Its total length, or 0. seq < 0: accept a
 * SEGMENT record with the sequence number in its own payload (*seq_out).
 */
static size_t valid_at(struct src *s, uint64_t pos, uint64_t end, int64_t seq, uint64_t *seq_out, uint64_t *crc_bytes)
{
	const uint8_t *h;
	uint32_t len;

	if (pos > end || end - pos < MFT_REC_HDR_LEN || !(h = src_at(s, pos, MFT_REC_HDR_LEN)) ||
	    memcmp(h, rec_sync, 4))
		return 0;
	len = get32(h + 8);
	if (len > MFT_REC_MAX_PAYLOAD || end - pos - MFT_REC_HDR_LEN < len ||
	    !(h = src_at(s, pos, MFT_REC_HDR_LEN + len)))
		return 0;
	if (seq < 0) {
		if (get16(h + 4) != MFT_REC_SEGMENT || len < 16)
			return 0;
		seq = (int64_t)get64(h + MFT_REC_HDR_LEN);
		if (seq < 0)
			return 0;
		if (seq_out)
			*seq_out = (uint64_t)seq;
	}
	if (crc_bytes)
		*crc_bytes += len;
	if (record_crc((uint64_t)seq, h, h + MFT_REC_HDR_LEN, len) != get32(h + 12))
		return 0;
	return MFT_REC_HDR_LEN + len;
}

struct seg {
	uint64_t start, end;
	uint64_t seq;
};

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool push(void **arr, size_t *n, size_t *cap, const void *item, size_t elem)
{
	void *na = grow(*arr, cap, *n + 1, elem);

	if (!na)
		return false;
	*arr = na;
	memcpy((char *)na + *n * elem, item, elem);
	(*n)++;
	return true;
}

struct rd {
	struct mft_recording *r;
	size_t cap_clocks, cap_targets, cap_probes;
	bool use_carried;
	/* de-duplication in O(1) per record, whatever the input (docs/recording-format.md) */
	struct mft_index ix_clocks, ix_targets, ix_probes;
	/* checksum bytes that looking for intact records after damage may still spend */
	uint64_t resync_budget;
	bool gave_up;
	/* the event the last record held, for mft_rec_next */
	bool have_ev;
	const struct mft_event *evp; /* it: ev, or where an event block decoded it in place */
	bool skim;                   /* mft_rec_skim(): only time, pid and type */
	struct mft_event ev;
	/* a format-2 block being decoded: its bytes (valid until the next record is read) */
	const uint8_t *blk, *blk_end;
	size_t blk_off; /* where its record starts in the file */
	bool blk_carried;
	uint64_t blk_prev_ts;
	struct mft_event blk_ctx[MFT_REC_BLOCK_CTX];
	unsigned blk_n_ctx;
};

static void got_event(struct rd *d, bool carried)
{
	struct mft_recording *r = d->r;

	d->have_ev = true;
	if (!r->n_events++)
		r->t_first_event = d->evp->ts_ns;
	r->t_last_event = d->evp->ts_ns;
	if (carried)
		r->n_carried++;
}

/* The block's next event at d->evp; false at its end, or where it stops making sense. */
static bool block_next(struct rd *d)
{
	struct mft_recording *r = d->r;
	struct mft_event *e = NULL;
	uint64_t k;

	if (!d->blk)
		return false;
	if (d->blk == d->blk_end) {
		d->blk = NULL;
		return false;
	}
	if (!get_var(&d->blk, d->blk_end, &k) || k > d->blk_n_ctx || k == MFT_REC_BLOCK_CTX) {
		k = UINT64_MAX;
	} else {
		/* decoded in place, over the context it is coded against (a copy of a struct
		 * just written field by field stalls on store forwarding) */
		e = &d->blk_ctx[k];
		if (k == d->blk_n_ctx)
			memset(e, 0, sizeof(*e));
		if (d->skim ? !skim_event2(&d->blk, d->blk_end, d->blk_prev_ts, e)
			    : !decode_event2(&d->blk, d->blk_end, d->blk_prev_ts, e))
			k = UINT64_MAX;
	}
	if (k == UINT64_MAX) { /* a valid checksum over bytes that are no event block */
		if (!r->bad_records)
			problem(r, "malformed event block at byte %zu (checksum valid): the rest of it is skipped",
				d->blk_off);
		r->bad_records++;
		d->blk = NULL;
		d->blk_n_ctx = 0; /* what it decoded halfway is no context */
		return false;
	}
	d->blk_n_ctx += k == d->blk_n_ctx;
	d->blk_prev_ts = e->ts_ns;
	d->evp = e;
	got_event(d, d->blk_carried);
	return true;
}

static void rd_target(struct rd *d, const struct mft_rec_target *t)
{
	struct mft_recording *r = d->r;
	size_t i = mft_index_find(&d->ix_targets, t->pid, NULL, NULL);

	if (i != SIZE_MAX) {
		if (t->removed) /* says only that tracing of it ended */
			r->targets[i].removed = true;
		else
			r->targets[i] = *t;
		return;
	}
	if (r->n_targets == MFT_REC_MAX_TARGETS) {
		if (!r->targets_dropped++)
			problem(r,
				"more than %d traced processes: the others are left out of the summary "
				"(their events are still replayed)",
				MFT_REC_MAX_TARGETS);
		return;
	}
	if (push((void **)&r->targets, &r->n_targets, &d->cap_targets, t, sizeof(*t)) &&
	    mft_index_set(&d->ix_targets, t->pid, r->n_targets - 1, NULL, NULL))
		r->n_targets--; /* out of memory: as if never read */
}

struct probe_key {
	const struct mft_recording *r;
	const struct mft_rec_probe *p;
};

static bool probe_is(const void *ctx, size_t pos)
{
	const struct probe_key *k = ctx;
	const struct mft_rec_probe *q = &k->r->probes[pos];

	return q->pid == k->p->pid && !strcmp(q->what, k->p->what) && !strcmp(q->mech, k->p->mech);
}

static uint64_t probe_hash(const struct mft_rec_probe *p)
{
	uint64_t h = mft_hash_bytes(p->what, strlen(p->what), p->pid);

	return mft_hash_bytes(p->mech, strlen(p->mech), h);
}

static void rd_probe(struct rd *d, const struct mft_rec_probe *p)
{
	struct mft_recording *r = d->r;
	struct probe_key k = { r, p };
	uint64_t h = probe_hash(p);
	size_t i = mft_index_find(&d->ix_probes, h, probe_is, &k);

	if (i != SIZE_MAX) {
		r->probes[i] = *p;
		return;
	}
	if (r->n_probes == MFT_REC_MAX_PROBES) {
		if (!r->probes_dropped++)
			problem(r, "more than %d attach points: the others are left out of the summary",
				MFT_REC_MAX_PROBES);
		return;
	}
	if (push((void **)&r->probes, &r->n_probes, &d->cap_probes, p, sizeof(*p)) &&
	    mft_index_set(&d->ix_probes, h, r->n_probes - 1, probe_is, &k))
		r->n_probes--;
}

static void rd_record(struct rd *d, unsigned type, unsigned flags, const uint8_t *p, size_t len, size_t off)
{
	struct mft_recording *r = d->r;
	bool ok = true;

	switch (type) {
	case MFT_REC_SEGMENT:
		ok = false; /* only at a segment's start */
		break;
	case MFT_REC_HOST: {
		struct mft_rec_host h = { 0 };

		if ((ok = tlv_decode(p, len, host_fields, &h))) {
			r->host = h;
			r->has_host = true;
		}
		break;
	}
	case MFT_REC_CLOCK: {
		struct mft_rec_clock c;

		if (!(ok = len >= 24))
			break;
		c.mono_ns = get64(p);
		c.real_ns = (int64_t)get64(p + 8);
		c.err_ns = get64(p + 16);
		if (mft_index_find(&d->ix_clocks, c.mono_ns, NULL, NULL) != SIZE_MAX)
			return; /* repeated at a segment start */
		if (push((void **)&r->clocks, &r->n_clocks, &d->cap_clocks, &c, sizeof(c)) &&
		    mft_index_set(&d->ix_clocks, c.mono_ns, r->n_clocks - 1, NULL, NULL))
			r->n_clocks--;
		break;
	}
	case MFT_REC_TARGET: {
		struct mft_rec_target *t = calloc(1, sizeof(*t));

		if (!t)
			return;
		if ((ok = tlv_decode(p, len, target_fields, t) && t->pid))
			rd_target(d, t);
		free(t);
		break;
	}
	case MFT_REC_PROBE: {
		struct mft_rec_probe pr = { 0 };

		if ((ok = tlv_decode(p, len, probe_fields, &pr)))
			rd_probe(d, &pr);
		break;
	}
	case MFT_REC_COUNTERS: {
		struct mft_rec_counters c;

		if (!(ok = len >= 64))
			break;
		c.mono_ns = get64(p);
		c.kernel_events = get64(p + 8);
		c.rb_dropped = get64(p + 16);
		c.sockmap_full = get64(p + 24);
		c.bad_events = get64(p + 32);
		c.events_written = get64(p + 40);
		c.events_overwritten = get64(p + 48);
		c.events_unwritten = get64(p + 56);
		c.final = flags & MFT_RECF_FINAL;
		if (!r->has_counters || c.mono_ns >= r->counters.mono_ns || c.final) {
			r->counters = c;
			r->has_counters = true;
		}
		if (c.final)
			r->clean_end = true;
		break;
	}
	case MFT_REC_EVENT: {
		if (!(ok = len >= MFT_REC_EVENT_LEN))
			break;
		if ((flags & MFT_RECF_CARRIED) && !d->use_carried)
			return;
		mft_rec_decode_event(p, &d->ev);
		d->evp = &d->ev;
		got_event(d, flags & MFT_RECF_CARRIED);
		break;
	}
	case MFT_REC_EVENTS:
		if ((flags & MFT_RECF_CARRIED) && !d->use_carried)
			return;
		d->blk = p;
		d->blk_end = p + len;
		d->blk_off = off;
		d->blk_carried = flags & MFT_RECF_CARRIED;
		d->blk_prev_ts = 0;
		d->blk_n_ctx = 0;
		block_next(d);
		return;
	default: r->unknown_records++; return;
	}
	if (!ok) {
		if (!r->bad_records)
			problem(r, "malformed %s record at byte %zu (checksum valid): skipped",
				type == MFT_REC_SEGMENT ? "segment" : "metadata", off);
		r->bad_records++;
	}
}

/*
 * The next valid record of segment s after damage at pos, or s->end. Each candidate
 * costs a checksum over its claimed length, so crafted data could make this quadratic:
 * a budget proportional to the file bounds it.
 */
static uint64_t resync(struct rd *d, struct src *src, const struct seg *s, uint64_t pos, uint64_t *spent)
{
	uint64_t q;

	for (q = pos + 1; q < s->end; q++) {
		bool found = false;

		while (q < s->end) { /* the next sync byte, a window at a time */
			size_t n = s->end - q < WIN_SIZE / 2 ? (size_t)(s->end - q) : WIN_SIZE / 2;
			const uint8_t *b = src_at(src, q, n), *m;

			if (!b)
				return s->end;
			if ((m = memchr(b, rec_sync[0], n))) {
				q += (uint64_t)(m - b);
				found = true;
				break;
			}
			q += n;
		}
		if (!found)
			return s->end;
		if (*spent >= d->resync_budget)
			break;
		if (valid_at(src, q, s->end, (int64_t)s->seq, NULL, spent))
			break;
	}
	return q;
}

struct mft_rec_iter {
	struct src src;
	struct rd d;
	struct seg *segs;
	size_t n_segs, i;
	bool in_seg, finished;
	uint64_t pos, stop, newest_end;
};

/* One step in the current segment: a record read, or damage skipped. false at its end. */
static bool rd_step(struct mft_rec_iter *it)
{
	struct rd *d = &it->d;
	struct mft_recording *r = d->r;
	const struct seg *s = &it->segs[it->i];
	uint64_t pos = it->pos, q, spent = 0;
	size_t n;

	if (pos >= s->end)
		return false;
	n = valid_at(&it->src, pos, s->end, (int64_t)s->seq, NULL, NULL);
	if (n) {
		const uint8_t *h = src_at(&it->src, pos, n);

		rd_record(d, get16(h + 4), get16(h + 6), h + MFT_REC_HDR_LEN, get32(h + 8), (size_t)pos);
		it->pos = pos + n;
		return true;
	}
	q = resync(d, &it->src, s, pos, &spent);
	d->resync_budget -= spent < d->resync_budget ? spent : d->resync_budget;
	if (q < s->end && !d->resync_budget && !d->gave_up &&
	    !valid_at(&it->src, q, s->end, (int64_t)s->seq, NULL, NULL)) {
		d->gave_up = true;
		problem(r,
			"stopped looking for intact records after damage at byte %llu: bytes %llu-%llu are "
			"skipped (checksum budget of 4 x the file size spent)",
			(unsigned long long)pos, (unsigned long long)pos, (unsigned long long)(s->end - 1));
		return false;
	}
	if (q >= s->end || !valid_at(&it->src, q, s->end, (int64_t)s->seq, NULL, NULL))
		return false;
	problem(r, "damaged data at bytes %llu-%llu (%llu bytes) skipped", (unsigned long long)pos,
		(unsigned long long)(q - 1), (unsigned long long)(q - pos));
	r->corrupt_regions++;
	r->corrupt_bytes += q - pos;
	it->pos = q;
	return true;
}

/* The preamble and where each segment starts. -1 when nothing can be read. */
static int iter_start(struct mft_rec_iter *it)
{
	struct mft_recording *r = it->d.r;
	uint64_t len = it->src.len;
	const uint8_t *buf = src_at(&it->src, 0, len < MFT_REC_PREAMBLE_LEN ? (size_t)len : MFT_REC_PREAMBLE_LEN);
	uint32_t flags;

	r->file_size = len;
	it->d.resync_budget = 4 * len + (1u << 20);
	if (!buf || len < 8 || memcmp(buf, rec_magic, 8)) {
		if (buf && len >= 4 && !memcmp(buf, rec_magic, len < 8 ? len : 8))
			problem(r, "truncated inside its preamble (%llu of %d bytes)", (unsigned long long)len,
				MFT_REC_PREAMBLE_LEN);
		else
			problem(r, "not an mftrace recording (wrong magic)");
		return -1;
	}
	if (len < 12) {
		problem(r, "truncated inside its preamble (%llu of %d bytes)", (unsigned long long)len,
			MFT_REC_PREAMBLE_LEN);
		return -1;
	}
	r->major = get16(buf + 8);
	r->minor = get16(buf + 10);
	if (r->major > MFT_REC_MAJOR) {
		problem(r, "recording format %u.%u is newer than this mftrace reads (%u.x): use a newer mftrace",
			r->major, r->minor, MFT_REC_MAJOR);
		return -1;
	}
	if (len < MFT_REC_PREAMBLE_LEN) {
		problem(r, "truncated inside its preamble (%llu of %d bytes)", (unsigned long long)len,
			MFT_REC_PREAMBLE_LEN);
		return -1;
	}
	if (mft_crc32(0, buf, 60) != get32(buf + 60) || r->major == 0) {
		problem(r, "damaged preamble (checksum mismatch)");
		return -1;
	}
	flags = get32(buf + 12);
	r->ring = flags & MFT_RECP_RING;
	r->segment_size = get64(buf + 16);
	r->n_segments = get32(buf + 24);
	if (r->ring && (r->segment_size < MFT_REC_MIN_SEGMENT || r->n_segments == 0 || r->n_segments > 1u << 20)) {
		problem(r, "damaged preamble (segment size %llu, %u segments)", (unsigned long long)r->segment_size,
			r->n_segments);
		return -1;
	}
	if (!r->ring) {
		r->n_segments = 1;
		r->segment_size = len - MFT_REC_PREAMBLE_LEN;
	}
	/* no more segments than the file can hold, whatever the preamble claims */
	uint64_t fit = r->segment_size ? (len - MFT_REC_PREAMBLE_LEN) / r->segment_size + 1 : 1;

	it->segs = calloc(r->n_segments < fit ? r->n_segments : fit, sizeof(*it->segs));
	if (!it->segs) {
		problem(r, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < r->n_segments; i++) {
		uint64_t start, end, seq;

		if (i && r->segment_size > (len - MFT_REC_PREAMBLE_LEN) / i)
			break; /* this one and the next would start past the end */
		start = MFT_REC_PREAMBLE_LEN + (uint64_t)i * r->segment_size;
		if (start >= len)
			break;
		end = len - start < r->segment_size ? len : start + r->segment_size;
		if (!valid_at(&it->src, start, end, -1, &seq, NULL)) {
			if (!r->ring) { /* one segment, number 0: read on from the damage */
				if (end - start < MFT_REC_HDR_LEN + 16)
					problem(r, "cut short before its first complete record (%llu bytes)",
						(unsigned long long)len);
				else
					problem(r, "damaged segment opening at byte %llu", (unsigned long long)start);
				it->segs[it->n_segs++] = (struct seg){ start, end, 0 };
				continue;
			}
			r->segments_bad++;
			problem(r, "segment %u (bytes %llu-%llu): its opening record is damaged; skipped", i,
				(unsigned long long)start, (unsigned long long)(end - 1));
			continue;
		}
		it->segs[it->n_segs++] = (struct seg){ start, end, seq };
	}
	qsort(it->segs, it->n_segs, sizeof(*it->segs), seg_cmp);
	return 0;
}

/* After the last segment: where and how the recording ends. */
static void iter_finish(struct mft_rec_iter *it)
{
	struct mft_recording *r = it->d.r;

	if (it->finished)
		return;
	it->finished = true;
	if (it->n_segs) {
		r->first_seq = it->segs[0].seq;
		r->last_seq = it->segs[it->n_segs - 1].seq;
		r->end_offset = it->stop;
		r->tail_bytes = it->newest_end - it->stop;
	}
	if (!it->n_segs) {
		if (!r->n_problems)
			problem(r, "cut short right after its preamble: no records");
		snprintf(r->stopped, sizeof(r->stopped), "no readable record after the preamble");
		return;
	}
	if (r->clean_end)
		snprintf(r->stopped, sizeof(r->stopped), "complete: ends with its trailer at byte %llu",
			 (unsigned long long)r->end_offset);
	else if (r->ring)
		snprintf(r->stopped, sizeof(r->stopped),
			 "no trailer (mftrace was killed, or is still recording): the newest segment (#%llu) "
			 "stops after a complete record at byte %llu",
			 (unsigned long long)r->last_seq, (unsigned long long)r->end_offset);
	else if (r->tail_bytes)
		snprintf(r->stopped, sizeof(r->stopped),
			 "cut short: complete up to byte %llu; the %llu bytes after it are an incomplete record",
			 (unsigned long long)r->end_offset, (unsigned long long)r->tail_bytes);
	else
		snprintf(r->stopped, sizeof(r->stopped),
			 "no trailer (mftrace was killed, or is still recording): stops after a complete record at "
			 "byte %llu",
			 (unsigned long long)r->end_offset);
	if (r->unknown_records)
		problem(r, "%llu records of types newer than this mftrace (format %u.%u) were skipped",
			(unsigned long long)r->unknown_records, r->major, r->minor);
}

int mft_rec_next(struct mft_rec_iter *it, struct mft_event *ev)
{
	const struct mft_event *e;

	if (!mft_rec_next_ref(it, &e))
		return 0;
	*ev = *e;
	return 1;
}

void mft_rec_skim(struct mft_rec_iter *it)
{
	it->d.skim = true;
}

int mft_rec_next_ref(struct mft_rec_iter *it, const struct mft_event **ev)
{
	struct mft_recording *r = it->d.r;

	while (!it->finished) {
		if (block_next(&it->d)) {
			it->d.have_ev = false;
			*ev = it->d.evp;
			return 1;
		}
		if (!it->in_seg) {
			const struct seg *s;
			uint64_t seq;

			if (it->i == it->n_segs) {
				iter_finish(it);
				break;
			}
			s = &it->segs[it->i];
			/* carried openings stand in for a segment that is gone */
			it->d.use_carried = s->seq > 0 && (it->i == 0 || it->segs[it->i - 1].seq != s->seq - 1);
			if (it->i && it->segs[it->i - 1].seq == s->seq) {
				problem(r, "two segments claim sequence number %llu; the second is skipped",
					(unsigned long long)s->seq);
				it->i++;
				continue;
			}
			it->pos = s->start + valid_at(&it->src, s->start, s->end, -1, &seq, NULL);
			it->in_seg = true;
		}
		if (!rd_step(it)) {
			it->stop = it->pos;
			it->newest_end = it->segs[it->i].end;
			r->segments_read++;
			it->in_seg = false;
			it->i++;
			continue;
		}
		if (it->d.have_ev) {
			it->d.have_ev = false;
			*ev = it->d.evp;
			return 1;
		}
	}
	return 0;
}

static struct mft_rec_iter *iter_new(struct mft_recording *r)
{
	struct mft_rec_iter *it = calloc(1, sizeof(*it));

	memset(r, 0, sizeof(*r));
	if (!it) {
		problem(r, "out of memory");
		return NULL;
	}
	it->d.r = r;
	it->src.fd = -1;
	return it;
}

void mft_rec_close(struct mft_rec_iter *it)
{
	if (!it)
		return;
	if (it->src.fd >= 0)
		close(it->src.fd);
	free(it->src.win);
	free(it->segs);
	mft_index_free(&it->d.ix_clocks);
	mft_index_free(&it->d.ix_targets);
	mft_index_free(&it->d.ix_probes);
	free(it);
}

struct mft_rec_iter *mft_rec_open_mem(const uint8_t *buf, size_t len, struct mft_recording *r)
{
	struct mft_rec_iter *it = iter_new(r);

	if (!it)
		return NULL;
	it->src.mem = buf;
	it->src.len = len;
	if (iter_start(it)) {
		mft_rec_close(it);
		return NULL;
	}
	return it;
}

struct mft_rec_iter *mft_rec_open(const char *path, struct mft_recording *r)
{
	struct mft_rec_iter *it = iter_new(r);
	struct stat st;

	if (!it)
		return NULL;
	it->src.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (it->src.fd < 0 || fstat(it->src.fd, &st)) {
		problem(r, "cannot open: %s", strerror(errno));
		mft_rec_close(it);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		problem(r, "not a regular file");
		mft_rec_close(it);
		return NULL;
	}
	/* a file still being written may grow: what was there when it was opened is read */
	it->src.len = (uint64_t)st.st_size;
	it->src.win = malloc(WIN_SIZE);
	if (!it->src.win) {
		problem(r, "out of memory");
		mft_rec_close(it);
		return NULL;
	}
	if (iter_start(it)) {
		mft_rec_close(it);
		return NULL;
	}
	return it;
}

/* Every event kept in r->events (the unit tests, the fuzzer: small inputs). */
static int read_all(struct mft_rec_iter *it, struct mft_recording *r)
{
	struct mft_event ev;
	size_t n = 0, cap = 0;

	if (!it)
		return -1;
	while (mft_rec_next(it, &ev))
		if (!push((void **)&r->events, &n, &cap, &ev, sizeof(ev)))
			break;
	mft_rec_close(it);
	return 0;
}

int mft_rec_parse(const uint8_t *buf, size_t len, struct mft_recording *r)
{
	return read_all(mft_rec_open_mem(buf, len, r), r);
}

int mft_rec_load(const char *path, struct mft_recording *r)
{
	return read_all(mft_rec_open(path, r), r);
}

void mft_rec_free(struct mft_recording *r)
{
	free(r->events);
	free(r->clocks);
	free(r->targets);
	free(r->probes);
	r->events = NULL;
	r->clocks = NULL;
	r->targets = NULL;
	r->probes = NULL;
	r->n_events = r->n_clocks = r->n_targets = r->n_probes = 0;
}
