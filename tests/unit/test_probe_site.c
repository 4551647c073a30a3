/* Where a per-call uprobe costs least (user/collect/probe_site.c): the tail jump of a thin
 * wrapper, found on real GnuTLS code and refused wherever the stack or %rdi could differ. */
#include <stdint.h>
#include <stdlib.h>
#include "unit.h"
#include "collect/probe_site.h"

#define SITE(code, s) mft_tail_jump_site(code, sizeof(code), s)

/* gnutls_record_recv() of Debian's libgnutls 3.7.9 (libgnutls.so.30.34.3, at 0x3fa40,
 * 158 bytes): sub $8,%rsp; checks; the kTLS path calls and returns; the usual path
 * restores %rsp and tail-jumps to the record layer at +0x46; the "during handshake" path
 * returns -408, after a debug-log call that writes %rdi. */
static const uint8_t gnutls_3_7_9[] = {
	0x48, 0x83, 0xec, 0x08, 0x80, 0xbf, 0xb8, 0x06, 0x00, 0x00, 0x00, 0x48, 0x89, 0xd1, 0x74, 0x40, 0xf6, 0x87,
	0x68, 0x11, 0x00, 0x00, 0x01, 0x74, 0x17, 0x48, 0x89, 0xf2, 0xbe, 0x17, 0x00, 0x00, 0x00, 0xe8, 0x5a, 0x73,
	0x05, 0x00, 0x48, 0x98, 0x48, 0x83, 0xc4, 0x08, 0xc3, 0x0f, 0x1f, 0x00, 0x44, 0x8b, 0x8f, 0x70, 0x07, 0x00,
	0x00, 0x48, 0x89, 0xf2, 0x45, 0x31, 0xc0, 0xbe, 0x17, 0x00, 0x00, 0x00, 0x48, 0x83, 0xc4, 0x08, 0xe9, 0x25,
	0xee, 0xff, 0xff, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x8b, 0x87, 0x64, 0x08, 0x00, 0x00, 0x83, 0xf8, 0x03, 0x74,
	0xb5, 0x83, 0xf8, 0x06, 0x74, 0xb0, 0x48, 0x8b, 0x05, 0x89, 0x91, 0x1d, 0x00, 0x83, 0x38, 0x02, 0x7f, 0x09,
	0x48, 0xc7, 0xc0, 0x68, 0xfe, 0xff, 0xff, 0xeb, 0xb3, 0x41, 0xb8, 0x62, 0x09, 0x00, 0x00, 0x48, 0x8d, 0x0d,
	0x5e, 0xcc, 0x12, 0x00, 0x31, 0xc0, 0xbf, 0x03, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x15, 0x94, 0xc6, 0x12, 0x00,
	0x48, 0x8d, 0x35, 0x3b, 0xc5, 0x12, 0x00, 0xe8, 0xc4, 0x86, 0xff, 0xff, 0xeb, 0xce,
};

static void real_gnutls_record_recv(void)
{
	struct mft_probe_site s;

	CHECK_INT(mft_tail_jump_site(gnutls_3_7_9, sizeof(gnutls_3_7_9), &s), 0);
	CHECK_INT(s.off, 0x46);
	CHECK_INT(s.returns, 1); /* the one ret, shared by the kTLS and -408 paths */
}

static void found(void)
{
	/* endbr64; jmp rel32 out of the function */
	static const uint8_t endbr[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0xe9, 0x00, 0x01, 0x00, 0x00 };
	/* push %rbx; pop %rbx; jmp rel8 out */
	static const uint8_t pushpop[] = { 0x53, 0x5b, 0xeb, 0x40 };
	/* test %esi,%esi; je +1 (over a nop); mov %rsi,%rdx (not %rdi); jmp out */
	static const uint8_t branchy[] = {
		0x85, 0xf6, 0x74, 0x01, 0x90, 0x48, 0x89, 0xf2, 0xe9, 0x00, 0x10, 0x00, 0x00
	};
	struct mft_probe_site s;

	CHECK_INT(SITE(endbr, &s), 0);
	CHECK_INT(s.off, 4);
	CHECK_INT(s.returns, 0);
	CHECK_INT(SITE(pushpop, &s), 0);
	CHECK_INT(s.off, 2);
	CHECK_INT(SITE(branchy, &s), 0);
	CHECK_INT(s.off, 8);
}

/* Each refusal, and its reason. */
static void refused(void)
{
	static const struct {
		const char *name;
		uint8_t code[16];
		size_t len;
		const char *why;
	} cases[] = {
		{ "rdi written",
		  { 0x48, 0x89, 0xf7, 0xe9, 0, 1, 0, 0 },
		  8,
		  "a tail jump after %rdi was written at +0x3" },
		{ "rdi clobbered by a call",
		  { 0xe8, 0, 0, 0, 0, 0xe9, 0, 1, 0, 0 },
		  10,
		  "a tail jump after %rdi was written at +0x5" },
		{ "stack not at entry depth",
		  { 0x48, 0x83, 0xec, 0x08, 0xe9, 0, 1, 0, 0 },
		  9,
		  "a tail jump with the stack not at its entry depth at +0x4" },
		{ "indirect jump", { 0xff, 0xe0 }, 2, "an indirect jump at +0x0" },
		{ "two tail jumps",
		  { 0x74, 0x05, 0xe9, 0, 1, 0, 0, 0xe9, 0, 2, 0, 0 },
		  12,
		  "more than one tail jump, another at +0x7" },
		{ "no tail jump", { 0xc3 }, 1, "no tail jump" },
		{ "lea to rsp", { 0x48, 0x8d, 0x64, 0x24, 0x08, 0xe9, 0, 1, 0, 0 }, 10, "%rsp written at +0x0" },
		{ "paths meet with different stacks",
		  { 0x74, 0x01, 0x50, 0x58, 0xe9, 0, 1, 0, 0 },
		  9,
		  "paths meet with different stacks at +0x3" },
		{ "truncated", { 0x48, 0x83 }, 2, "cannot decode the instruction at +0x0" },
		{ "falls off the end", { 0x90, 0x90 }, 2, "a path runs past the function's end at +0x2" },
		{ "prefixed jump", { 0x66, 0xe9, 0, 1 }, 4, "a tail jump that is not a plain relative jump at +0x0" },
		/* found by fuzz_probe_site: capstone does not list this rep as a prefix */
		{ "rep-prefixed jump",
		  { 0xf3, 0xe9, 0, 1, 0, 0 },
		  6,
		  "a tail jump that is not a plain relative jump at +0x0" },
		{ "conditional tail call", { 0x74, 0x40, 0xc3 }, 3, "a conditional jump out of the function at +0x0" },
		{ "syscall", { 0x0f, 0x05, 0xe9, 0, 1, 0, 0 }, 7, "a system call or interrupt at +0x0" },
	};
	struct mft_probe_site s;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unit_current = cases[i].name;
		CHECK_INT(mft_tail_jump_site(cases[i].code, cases[i].len, &s), -1);
		CHECK_STR(s.why, cases[i].why);
	}
	unit_current = "refused";
}

static void bounds(void)
{
	uint8_t *big = calloc(MFT_PROBE_SITE_MAX_CODE + 1, 1);
	struct mft_probe_site s;

	CHECK(big);
	CHECK_INT(mft_tail_jump_site(big, MFT_PROBE_SITE_MAX_CODE + 1, &s), -1);
	CHECK_STR(s.why, "the function is too long to search");
	CHECK_INT(mft_tail_jump_site(big, 0, &s), -1);
	CHECK_STR(s.why, "no code");
	/* a long run of paths that meet (every byte a jcc to the next but one) ends */
	for (size_t i = 0; i + 1 < MFT_PROBE_SITE_MAX_CODE; i += 2) {
		big[i] = 0x74;
		big[i + 1] = 0x00;
	}
	CHECK_INT(mft_tail_jump_site(big, MFT_PROBE_SITE_MAX_CODE, &s), -1);
	free(big);
}

int main(void)
{
	RUN(real_gnutls_record_recv);
	RUN(found);
	RUN(refused);
	RUN(bounds);
	UNIT_EXIT();
}
