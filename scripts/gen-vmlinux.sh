#!/usr/bin/env bash
# Regenerate the checked-in vmlinux.h for this machine's architecture from a kernel's BTF.
# The build never runs this: it uses vmlinux/<arch>/vmlinux.h as committed.
# usage: scripts/gen-vmlinux.sh [BTF_FILE]   (default /sys/kernel/btf/vmlinux)
set -euo pipefail
btf=${1:-/sys/kernel/btf/vmlinux}
case "$(uname -m)" in
    x86_64) arch=x86 ;;
    aarch64) arch=arm64 ;;
    *) echo "gen-vmlinux: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
[ -r "$btf" ] || { echo "gen-vmlinux: cannot read BTF at $btf" >&2; exit 1; }
out="$(dirname "$0")/../vmlinux/$arch/vmlinux.h"
mkdir -p "$(dirname "$out")"
bpftool btf dump file "$btf" format c >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -l <"$out") lines, from $btf, kernel $(uname -r))"
