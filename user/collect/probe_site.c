// SPDX-License-Identifier: GPL-2.0
/*
 * The tail jump of a thin wrapper, found by following its paths (see probe_site.h).
 * Each instruction offset gets one state, the stack depth below the entry's %rsp and
 * whether %rdi still holds the first argument on every path there; a path that reaches an
 * offset with another depth ends the search with no site.
 */
#include <capstone/capstone.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "collect/probe_site.h"

#define MAX_DEPTH 4096 /* bytes of stack a wrapper may use */

/*
 * capstone is loaded on first use, not linked: its relocated tables cost every process
 * that maps it ~1.4 MiB of private memory, and only --tls-records and doctor need it.
 * The soname is the one of the headers we were built with (instruction ids differ
 * between its major versions). It is our dependency, never a file a target names.
 */
#define CS_STR2(x) #x
#define CS_STR(x) CS_STR2(x)
#define CS_SONAME "libcapstone.so." CS_STR(CS_API_MAJOR)

static struct {
	cs_err (*open)(cs_arch, cs_mode, csh *);
	cs_err (*option)(csh, cs_opt_type, size_t);
	cs_insn *(*malloc)(csh);
	bool (*disasm_iter)(csh, const uint8_t **, size_t *, uint64_t *, cs_insn *);
	bool (*insn_group)(csh, const cs_insn *, unsigned int);
	cs_err (*regs_access)(csh, const cs_insn *, cs_regs, uint8_t *, cs_regs, uint8_t *);
	void (*free)(cs_insn *, size_t);
	cs_err (*close)(csh *);
	char error[80];
} cs;
static pthread_once_t cs_once = PTHREAD_ONCE_INIT;

static void cs_load(void)
{
	void *h = dlopen(CS_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *e;

	if (!h) {
		e = dlerror();
		snprintf(cs.error, sizeof(cs.error), "no disassembler: %s", e ? e : CS_SONAME " not loadable");
		return;
	}
	*(void **)&cs.open = dlsym(h, "cs_open");
	*(void **)&cs.option = dlsym(h, "cs_option");
	*(void **)&cs.malloc = dlsym(h, "cs_malloc");
	*(void **)&cs.disasm_iter = dlsym(h, "cs_disasm_iter");
	*(void **)&cs.insn_group = dlsym(h, "cs_insn_group");
	*(void **)&cs.regs_access = dlsym(h, "cs_regs_access");
	*(void **)&cs.free = dlsym(h, "cs_free");
	*(void **)&cs.close = dlsym(h, "cs_close");
	if (!cs.open || !cs.option || !cs.malloc || !cs.disasm_iter || !cs.insn_group || !cs.regs_access || !cs.free ||
	    !cs.close) {
		snprintf(cs.error, sizeof(cs.error), "no disassembler: %s lacks a function", CS_SONAME);
		cs.open = NULL;
	}
}

struct walk {
	csh cs;
	cs_insn *insn;
	const uint8_t *code;
	size_t len;
	int32_t *state;  /* per offset: -1 not reached, else depth * 2 + (rdi intact) */
	uint32_t *stack; /* offsets to visit (each at most twice) */
	size_t top;
	int sites;
	uint64_t site;
	unsigned returns;
	char *why;
};

/* Say why there is no site: what, and where (off < 0: nowhere in particular). */
static int fail(struct walk *w, const char *what, long long off)
{
	size_t n = sizeof(((struct mft_probe_site *)0)->why);

	if (off < 0)
		snprintf(w->why, n, "%s", what);
	else
		snprintf(w->why, n, "%s at +0x%llx", what, off);
	return -1;
}

/*
 * Reach offset off in state st: queue it the first time. Paths that meet must agree on
 * the stack; %rdi is intact there only if it is on both (the offset is queued again when
 * that changes, at most once, so the walk ends).
 */
static int reach(struct walk *w, uint64_t off, int32_t st)
{
	int32_t old;

	if (off >= w->len)
		return fail(w, "a path runs past the function's end", (long long)off);
	old = w->state[off];
	if (old != -1 && old >> 1 != st >> 1)
		return fail(w, "paths meet with different stacks", (long long)off);
	if (old != -1)
		st &= old;
	if (old == st)
		return 0;
	if (w->top == w->len * 2)
		return fail(w, "too many paths", (long long)off);
	w->state[off] = st;
	w->stack[w->top++] = (uint32_t)off;
	return 0;
}

static bool writes(csh h, const cs_insn *in, x86_reg r64, x86_reg r32, x86_reg r16, x86_reg r8)
{
	cs_regs rd, wr;
	uint8_t nrd, nwr;

	if (cs.regs_access(h, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return true; /* unknown: assume the worst */
	for (uint8_t i = 0; i < nwr; i++)
		if (wr[i] == r64 || wr[i] == r32 || wr[i] == r16 || wr[i] == r8)
			return true;
	return false;
}

/* One instruction at off in state st: queue its successors. */
static int step(struct walk *w, uint64_t off, int32_t st)
{
	const uint8_t *p = w->code + off;
	size_t left = w->len - off;
	uint64_t addr = off;
	int depth = st >> 1;
	bool rdi = st & 1;

	if (!cs.disasm_iter(w->cs, &p, &left, &addr, w->insn))
		return fail(w, "cannot decode the instruction", (long long)off);
	const cs_insn *in = w->insn;
	const cs_x86 *x = &in->detail->x86;
	uint64_t next = off + in->size;
	uint8_t p0 = w->code[off];
	bool imm = x->op_count == 1 && x->operands[0].type == X86_OP_IMM;
	bool rsp_imm = x->op_count == 2 && x->operands[0].type == X86_OP_REG && x->operands[0].reg == X86_REG_RSP &&
		       x->operands[1].type == X86_OP_IMM;

	switch (in->id) {
	case X86_INS_RET: w->returns++; return 0;
	case X86_INS_INT3:
	case X86_INS_UD2:
	case X86_INS_HLT: return 0;
	case X86_INS_JMP:
		if (!imm)
			return fail(w, "an indirect jump", (long long)off);
		if ((uint64_t)x->operands[0].imm < w->len)
			return reach(w, (uint64_t)x->operands[0].imm, st);
		/* it leaves the function: a tail call */
		if (depth != 0 || !rdi)
			return fail(w,
				    depth ? "a tail jump with the stack not at its entry depth"
					  : "a tail jump after %rdi was written",
				    (long long)off);
		/* the kernel emulates jmp rel8/rel32 (no single step); with a prefix it may not,
		 * so the bytes themselves must be the bare opcode and its displacement */
		if (!((p0 == 0xe9 && in->size == 5) || (p0 == 0xeb && in->size == 2)))
			return fail(w, "a tail jump that is not a plain relative jump", (long long)off);
		if (w->sites++ && w->site != off)
			return fail(w, "more than one tail jump, another", (long long)off);
		w->site = off;
		return 0;
	case X86_INS_CALL:
		/* returns to next with the same stack; %rdi is the callee's to clobber */
		return reach(w, next, depth << 1);
	case X86_INS_PUSH:
	case X86_INS_POP:
		if (x->prefix[2] == 0x66)
			return fail(w, "a 16-bit push or pop", (long long)off);
		depth += in->id == X86_INS_PUSH ? 8 : -8;
		break;
	case X86_INS_SUB:
	case X86_INS_ADD:
		if (rsp_imm) {
			int64_t v = x->operands[1].imm;

			if (v < -MAX_DEPTH || v > MAX_DEPTH)
				return fail(w, "a large stack adjustment", (long long)off);
			depth += (int)(in->id == X86_INS_SUB ? v : -v);
			break;
		}
		/* fall through */
	default:
		if (cs.insn_group(w->cs, in, X86_GRP_JUMP)) { /* conditional */
			if (!imm || (uint64_t)x->operands[0].imm >= w->len)
				return fail(w, "a conditional jump out of the function", (long long)off);
			if (reach(w, (uint64_t)x->operands[0].imm, st))
				return -1;
			return reach(w, next, st);
		}
		if (cs.insn_group(w->cs, in, X86_GRP_INT) || cs.insn_group(w->cs, in, X86_GRP_IRET) ||
		    in->id == X86_INS_SYSCALL || in->id == X86_INS_SYSENTER)
			return fail(w, "a system call or interrupt", (long long)off);
		if (writes(w->cs, in, X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL))
			return fail(w, "%rsp written", (long long)off);
		if (writes(w->cs, in, X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL))
			rdi = false;
		break;
	}
	if (depth < 0 || depth > MAX_DEPTH)
		return fail(w, "the stack goes out of bounds", (long long)off);
	return reach(w, next, (depth << 1) | rdi);
}

int mft_tail_jump_site(const uint8_t *code, size_t len, struct mft_probe_site *out)
{
	struct walk w = { .code = code, .len = len, .why = out->why };
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!len || len > MFT_PROBE_SITE_MAX_CODE)
		return fail(&w, len ? "the function is too long to search" : "no code", -1);
	pthread_once(&cs_once, cs_load);
	if (!cs.open)
		return fail(&w, cs.error, -1);
	if (cs.open(CS_ARCH_X86, CS_MODE_64, &w.cs) != CS_ERR_OK)
		return fail(&w, "the disassembler cannot start", -1);
	cs.option(w.cs, CS_OPT_DETAIL, CS_OPT_ON);
	w.insn = cs.malloc(w.cs);
	w.state = malloc(len * sizeof(*w.state));
	w.stack = malloc(2 * len * sizeof(*w.stack));
	if (!w.insn || !w.state || !w.stack) {
		fail(&w, "out of memory", -1);
		goto out;
	}
	memset(w.state, 0xff, len * sizeof(*w.state));
	if (reach(&w, 0, 1))
		goto out;
	while (w.top) {
		uint32_t off = w.stack[--w.top];

		if (step(&w, off, w.state[off]))
			goto out;
	}
	if (!w.sites) {
		fail(&w, "no tail jump", -1);
		goto out;
	}
	out->off = w.site;
	out->returns = w.returns;
	rc = 0;
out:
	if (w.insn)
		cs.free(w.insn, 1);
	free(w.state);
	free(w.stack);
	cs.close(&w.cs);
	return rc;
}
