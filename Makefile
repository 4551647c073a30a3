# mftrace: see README.md. `make` builds, `make test` runs the fast tests (no root),
# `make check` runs the whole test suite, `make demo` traces a real local TLS multifd
# migration. docs/architecture.md explains the folders. `make install`, `make static`,
# `make btf` and `make deb`: packaging/README.md.
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
# LIBBPF_LIBS: how libbpf is linked; packaging/mkdeb.sh links its archive (-l:libbpf.a)
LIBBPF_LIBS ?= $(shell $(PKG_CONFIG) --libs libbpf 2>/dev/null || echo -lbpf)
LDLIBS += $(LIBBPF_LIBS) -lelf -lz -lm -lmicrohttpd -lpthread -lyaml -lcrypt -lgnutls
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-Iinclude -Ivmlinux/$(ARCH) $(if $(MULTIARCH),-idirafter /usr/include/$(MULTIARCH))

# user/ by stage, in the order data flows (docs/architecture.md):
#   collect -> correlate -> store / present -> commands, with base/ under all of them.
STAGES := base collect correlate store present commands
# Pure C modules (no libbpf, no kernel): what the unit tests and fuzzers link.
CORE_SRCS := $(wildcard user/base/*.c user/correlate/*.c user/store/*.c user/present/*.c) \
	user/collect/probe_select.c user/collect/qemu_args.c user/collect/probe_site.c
CORE_OBJS := $(CORE_SRCS:user/%.c=$(BUILD)/%.o)
TOOL_SRCS := $(filter-out $(CORE_SRCS),$(foreach s,$(STAGES),$(wildcard user/$(s)/*.c)))
TOOL_OBJS := $(TOOL_SRCS:user/%.c=$(BUILD)/%.o)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
# Helpers of the tests and benchmarks (tests/tools/): an unrelated workload, generators.
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(filter-out %.bpf.c,$(wildcard tests/tools/*.c)))

.PHONY: all test check unit demo bench clean install setup layers format format-check fuzz asan FORCE
.PHONY: static btf deb
all: $(BUILD)/mftrace $(UNIT_TESTS) $(TOOLS) layers

# a BPF object: compiled, then linked by bpftool (which also checks it)
define bpf_object
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(BPFTOOL) gen object $@ $@.tmp
	@rm -f $@.tmp
endef

$(BUILD)/mftrace.bpf.o: bpf/mftrace.bpf.c include/mftrace.h $(VMLINUX)
	$(bpf_object)

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
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests/unit $< $(CORE_OBJS) -o $@ -lz -lm

$(BUILD)/tools/%: tests/tools/%.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< $(CORE_OBJS) -o $@ -lz -lm -lpthread

# make bench's reference programs (an empty one, a clock read, a hash lookup) and their loader
$(BUILD)/tools/bpffloor.bpf.o: tests/tools/bpffloor.bpf.c $(VMLINUX)
	$(bpf_object)
$(BUILD)/tools/bpffloor.skel.h: $(BUILD)/tools/bpffloor.bpf.o
	$(BPFTOOL) gen skeleton $< name bpffloor_bpf > $@
$(BUILD)/tools/bpffloor: tests/tools/bpffloor.c $(BUILD)/tools/bpffloor.skel.h
	$(CC) $(CFLAGS) -I$(BUILD)/tools $< -o $@ $(LIBBPF_LIBS) -lelf -lz

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

# What tracing costs: migration ratios, ping-pong, BPF ns per program, exit time, side by side
# (not part of check). BENCH_ARGS passes flags: make bench BENCH_ARGS="--mftrace OLD/build/mftrace"
bench: all
	@python3 scripts/bench.py $(BENCH_ARGS)

FORMAT_SRCS = $(shell git ls-files 'user/*.[ch]' 'bpf/*.c' 'include/*.h' 'tests/unit/*.[ch]' 'tests/tools/*.c' 'fuzz/*.c' 2>/dev/null)
format:
	@clang-format -i $(FORMAT_SRCS)
format-check:
	@scripts/format-check $(FORMAT_SRCS)

# The binary, the man page and deploy/: the systemd unit (its ExecStart and
# EnvironmentFile pointed at where they are installed), /etc/default/mftrace (kept if it
# exists: it is the administrator's), the alert rules, their tests and the dashboard,
# and the bash completion. packaging/README.md lists where each goes.
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/mftrace
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
DOCDIR ?= $(PREFIX)/share/doc/mftrace
install: $(BUILD)/mftrace
	install -D -m 0755 $(BUILD)/mftrace $(DESTDIR)$(SBINDIR)/mftrace
	install -D -m 0644 docs/mftrace.8 $(DESTDIR)$(MANDIR)/man8/mftrace.8
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/default $(DESTDIR)$(DATADIR)
	sed -e 's|/usr/local/sbin/mftrace|$(SBINDIR)/mftrace|g' \
	    -e 's|/etc/default/mftrace|$(SYSCONFDIR)/default/mftrace|g' \
	    deploy/mftrace-exporter.service > $(DESTDIR)$(UNITDIR)/mftrace-exporter.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/mftrace-exporter.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/default/mftrace ] || \
	    install -m 0644 deploy/mftrace.default $(DESTDIR)$(SYSCONFDIR)/default/mftrace
	install -m 0644 deploy/mftrace.rules.yml deploy/mftrace.rules.test.yml \
	    deploy/grafana-dashboard.json $(DESTDIR)$(DATADIR)/
	install -D -m 0644 deploy/mftrace.bash-completion $(DESTDIR)$(COMPLETIONDIR)/mftrace
	install -d $(DESTDIR)$(DOCDIR)/runbooks
	install -m 0644 docs/runbooks/*.md $(DESTDIR)$(DOCDIR)/runbooks/

# Minimal BTFs for kernels without /sys/kernel/btf/vmlinux: only the kernel types that
# bpf/mftrace.bpf.c uses (bpftool gen min_core_btf), a few KiB each, built into
# $(STATIC_BIN) and found there by the running kernel's release (or given with --btf).
# `make btf` makes one from this kernel's BTF; BTF_VMLINUX=DIR one per DIR/RELEASE.btf
# (the full BTFs of other kernels).
BTF_DIR ?= $(BUILD)/btf
BTF_VMLINUX ?=
btf: $(BUILD)/mftrace.bpf.o
	@scripts/min-btf.sh $(BUILD)/mftrace.bpf.o $(BTF_DIR) $(BTF_VMLINUX)
$(BTF_DIR)/embedded.c: $(BUILD)/mftrace.bpf.o FORCE
	@scripts/embed-btf.sh $(BTF_DIR) $(BUILD)/mftrace.bpf.o
$(BTF_DIR)/embedded.o: $(BTF_DIR)/embedded.c
	$(CC) $(CFLAGS) -c $< -o $@
FORCE:

# A portable binary: the same objects, with libbpf, libelf, zlib and libmicrohttpd linked
# from their static archives (each one Debian does not ship an archive for is linked
# dynamically, with a warning), and every minimal BTF of $(BTF_DIR) built in. glibc and
# GnuTLS (which libmicrohttpd needs) stay dynamic: packaging/README.md says why.
STATIC_BIN ?= $(BUILD)/mftrace-static
STATIC_LIBS := bpf elf z microhttpd yaml crypt
static_lib = $(if $(filter /%,$(shell $(CC) -print-file-name=lib$(1).a)),-l:lib$(1).a,$(warning \
	lib$(1).a not found: linking $(1) dynamically)-l$(1))
STATIC_LDLIBS = $(foreach l,$(LDLIBS),$(if $(filter $(STATIC_LIBS:%=-l%),$(l)),$(call static_lib,$(l:-l%=%)),$(l))) \
	$(shell $(PKG_CONFIG) --libs gnutls 2>/dev/null || echo -lgnutls)
static: $(STATIC_BIN)
	@printf '%s: needs %s(glibc >= %s)\n' $< "$$(readelf -d $< | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')" \
	    "$$(objdump -T $< | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 | cut -d_ -f2)"
$(STATIC_BIN): $(TOOL_OBJS) $(CORE_OBJS) $(BTF_DIR)/embedded.o
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(STATIC_LDLIBS)

# A Debian package of the dynamic binary (built with dpkg-buildflags, Depends from
# dpkg-shlibdeps), from what `make install` installs: packaging/mkdeb.sh.
deb:
	@packaging/mkdeb.sh $(BUILD)

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
