# mftrace: see README.md. `make` builds, `make check` runs the whole test suite,
# `make demo` traces a real local TLS multifd migration.
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
CFLAGS += -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuser -I$(BUILD)
LDLIBS += $(shell $(PKG_CONFIG) --libs libbpf 2>/dev/null || echo -lbpf) -lelf -lz -ldl -lm -lmicrohttpd -lpthread
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-Iinclude -Ivmlinux/$(ARCH) $(if $(MULTIARCH),-idirafter /usr/include/$(MULTIARCH))

# Pure C modules (no libbpf): what the unit tests link.
CORE_SRCS := user/correlator.c user/verdict.c user/probe_select.c user/output.c user/multifd_wire.c user/metrics.c user/recfile.c user/timeline.c user/timeline_chrome.c user/timeline_html.c
CORE_OBJS := $(CORE_SRCS:user/%.c=$(BUILD)/%.o)
TOOL_SRCS := $(filter-out $(CORE_SRCS),$(wildcard user/*.c))
TOOL_OBJS := $(TOOL_SRCS:user/%.c=$(BUILD)/%.o)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all check unit demo bench clean install setup
all: $(BUILD)/mftrace $(UNIT_TESTS)

$(BUILD) $(BUILD)/tests:
	@mkdir -p $@

$(BUILD)/mftrace.bpf.o: bpf/mftrace.bpf.c include/mftrace.h $(VMLINUX) | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(BPFTOOL) gen object $@ $@.tmp
	@rm -f $@.tmp

$(BUILD)/mftrace.skel.h: $(BUILD)/mftrace.bpf.o
	$(BPFTOOL) gen skeleton $< name mftrace_bpf > $@

$(BUILD)/%.o: user/%.c $(wildcard user/*.h) include/mftrace.h | $(BUILD)
	$(CC) $(CFLAGS) -c $< -o $@

$(TOOL_OBJS): $(BUILD)/mftrace.skel.h

$(BUILD)/mftrace: $(TOOL_OBJS) $(CORE_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(CORE_OBJS) tests/unit/unit.h | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests/unit $< $(CORE_OBJS) -o $@

unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do $$t || exit 1; done

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

install: $(BUILD)/mftrace
	install -D -m 0755 $(BUILD)/mftrace $(DESTDIR)$(PREFIX)/sbin/mftrace
	install -D -m 0644 doc/mftrace.8 $(DESTDIR)$(PREFIX)/share/man/man8/mftrace.8

clean:
	rm -rf $(BUILD)

# The recording reader under libFuzzer (clang, ASan, UBSan): FUZZ_SECONDS, default 60.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	@fuzz/run $(FUZZ_SECONDS) $(BUILD)
