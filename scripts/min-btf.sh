#!/bin/sh
# Minimal BTFs for kernels without /sys/kernel/btf/vmlinux (make btf): for each kernel,
# `bpftool gen min_core_btf` keeps only the types that the BPF object's CO-RE relocations
# use, a few KiB instead of megabytes. The output is named after the kernel's release
# (uname -r), which is how mftrace finds a built-in one (user/collect/host.c).
#
# usage: scripts/min-btf.sh BPF_OBJECT OUTDIR [VMLINUX_DIR]
#   without VMLINUX_DIR: the running kernel's /sys/kernel/btf/vmlinux -> OUTDIR/$(uname -r).btf
#   with it: every VMLINUX_DIR/RELEASE.btf (full BTFs of other kernels) -> OUTDIR/RELEASE.btf
set -eu
BPFTOOL=${BPFTOOL:-bpftool}
die() { printf 'min-btf: %s\n' "$*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: $0 BPF_OBJECT OUTDIR [VMLINUX_DIR]"
obj=$1 out=$2 src=${3:-}
[ -r "$obj" ] || die "$obj: no BPF object (run make first)"
mkdir -p "$out"

one() { # full BTF, release
	case $2 in
	*[!A-Za-z0-9._+~-]* | '') die "$1: '$2' is not a kernel release name" ;;
	esac
	"$BPFTOOL" gen min_core_btf "$1" "$out/$2.btf.tmp" "$obj" >/dev/null ||
		die "$1: bpftool gen min_core_btf failed"
	mv "$out/$2.btf.tmp" "$out/$2.btf"
	printf '%s: %s bytes (from %s)\n' "$out/$2.btf" "$(wc -c <"$out/$2.btf")" "$1"
}

if [ -z "$src" ]; then
	[ -r /sys/kernel/btf/vmlinux ] ||
		die "this kernel has no /sys/kernel/btf/vmlinux: give BTF_VMLINUX=DIR with RELEASE.btf files"
	one /sys/kernel/btf/vmlinux "$(uname -r)"
else
	found=0
	for f in "$src"/*.btf; do
		[ -e "$f" ] || continue
		one "$f" "$(basename "$f" .btf)"
		found=1
	done
	[ "$found" = 1 ] || die "$src: no RELEASE.btf files"
fi
