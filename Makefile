# mftrace: see README.md. `make` builds, `make test` runs the fast tests (no root),
# `make check` runs the whole test suite, `make demo` traces a real local TLS multifd
# migration. docs/architecture.md explains the folders.
PREFIX ?= /usr/local
DESTDIR ?=
BUILD := build
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
VMLINUX := vmlinux/$(ARCH)/vmlinux.h

CLANG ?= clang
BPFTOOL ?= bpftool
CC ?= cc
PKG_CONFIG ?= pkg-config

CFLAGS ?= -O2 -g
override CFLAGS += -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuser -I$(BUILD) -MMD -MP $(NOWARN)
LDLIBS += $(shell $(PKG_CONFIG) --libs libbpf 2>/dev/null || echo -lbpf) -lelf -lz -lm -lmicrohttpd -lpthread -lyaml -lcrypt -lgnutls
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-Iinclude -Ivmlinux/$(ARCH) $(if $(MULTIARCH),-idirafter /usr/include/$(MULTIARCH))

# user/ by stage, in the order data flows (docs/architecture.md):
#   collect -> correlate -> store / present -> commands, with base/ under all of them.
STAGES := base collect correlate store present commands
# Pure C modules (no libbpf, no kernel): what the unit tests and fuzzers link.
CORE_SRCS := $(wildcard user/base/*.c user/correlate/*.c user/store/*.c user/present/*.c) \
	user/collect/probe_select.c user/collect/qemu_args.c
CORE_OBJS := $(CORE_SRCS:user/%.c=$(BUILD)/%.o)
TOOL_SRCS := $(filter-out $(CORE_SRCS),$(foreach s,$(STAGES),$(wildcard user/$(s)/*.c)))
TOOL_OBJS := $(TOOL_SRCS:user/%.c=$(BUILD)/%.o)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all test check unit demo bench clean install setup layers format format-check fuzz asan FORCE
all: $(BUILD)/mftrace $(UNIT_TESTS) layers

$(BUILD)/mftrace.bpf.o: bpf/mftrace.bpf.c include/mftrace.h $(VMLINUX)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(BPFTOOL) gen object $@ $@.tmp
	@rm -f $@.tmp

$(BUILD)/mftrace.skel.h: $(BUILD)/mftrace.bpf.o
	$(BPFTOOL) gen skeleton $< name mftrace_bpf > $@

$(BUILD)/%.o: user/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(TOOL_OBJS): $(BUILD)/mftrace.skel.h $(BUILD)/revision.h

# The git revision at build time (mftrace_build_info{revision}): `git describe`, "unknown"
# outside git; REVISION=... overrides it. Rewritten only when it changes, so that an
# unchanged tree rebuilds nothing.
REVISION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/revision.h: FORCE
	@mkdir -p $(@D)
	@printf '#define MFT_REVISION "%s"\n' '$(subst ',,$(subst ",,$(REVISION)))' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@
FORCE:

$(BUILD)/mftrace: $(TOOL_OBJS) $(CORE_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests/unit $< $(CORE_OBJS) -o $@ -lm

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Includes only run down the stages: scripts/check-layers fails on one that runs back up.
layers:
	@scripts/check-layers

unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do $$t || exit 1; done

# The fast loop: unit tests and a few seconds of every fuzzer; no root, no kernel.
test: $(UNIT_TESTS)
	@tests/run fast

setup:
	@scripts/setup.sh

# Both delegate to scripts/ so that the last line printed is the test summary.
check:
	@scripts/check

demo:
	@scripts/demo

# What tracing costs a migration: ratios measured side by side (not part of check).
bench: all
	@python3 scripts/bench.py

FORMAT_SRCS = $(shell git ls-files 'user/*.[ch]' 'bpf/*.c' 'include/*.h' 'tests/unit/*.[ch]' 'fuzz/*.c' 2>/dev/null)
format:
	@clang-format -i $(FORMAT_SRCS)
format-check:
	@scripts/format-check $(FORMAT_SRCS)

install: $(BUILD)/mftrace
	install -D -m 0755 $(BUILD)/mftrace $(DESTDIR)$(PREFIX)/sbin/mftrace
	install -D -m 0644 docs/mftrace.8 $(DESTDIR)$(PREFIX)/share/man/man8/mftrace.8

clean:
	rm -rf $(BUILD) build-asan

# The same build with AddressSanitizer and UndefinedBehaviorSanitizer, into build-asan/
# (the unit tests and build-asan/mftrace). tests/run asan runs them, and a real-migration
# test with MFTRACE=build-asan/mftrace; scripts/check does both.
# (clang: its runtime writes UBSan's reports to log_path, gcc's does not)
ASAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CC=$(CLANG) CFLAGS="$(ASAN_CFLAGS)" \
		NOWARN=-Wno-missing-field-initializers all

# Every libFuzzer target (clang, ASan, UBSan), FUZZ_SECONDS each, default 60.
FUZZ_SECONDS ?= 60
fuzz:
	@fuzz/run $(FUZZ_SECONDS) $(BUILD)
