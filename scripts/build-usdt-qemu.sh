#!/usr/bin/env bash
# Build, once per machine, a QEMU (x86_64-softmmu) with USDT probes: the dtrace trace
# backend (provider "qemu", one probe per trace event) plus the log backend, so
# `-trace 'multifd_*'` still writes QEMU's own view.  Source: Debian's qemu source
# package from bookworm-backports, the same version as the 10.0.2 binary package that
# scripts/setup.sh unpacks, so the wire behaviour is that of Debian's 10.0.2 build.
#
# Usage: scripts/build-usdt-qemu.sh [--path | --check | --rebuild | --help]
#   (none)     build if not cached; quiet when the cached build is valid
#   --path     the same, then print the binary's path on stdout
#   --check    build nothing; exit 0 if the cached build is valid, 1 if not
#   --rebuild  build again even if cached
#
# Result (PREFIX = $MFTRACE_USDT_PREFIX, default /var/cache/mftrace/qemu-usdt):
#   PREFIX/bin/qemu-system-x86_64, PREFIX/share/qemu (keymaps, trace-events-all, no
#   firmware blobs: run it with -L pointing at a data dir that has them, for example
#   /opt/mftrace/qemu-10.0/usr/share/qemu and .../usr/share/seabios, or
#   /usr/share/qemu and /usr/share/seabios), and PREFIX/.mftrace-usdt-stamp
#   (key=value lines: the Debian source version, whether Debian's patches are in, the
#   configure line).
# Environment: MFTRACE_USDT_PREFIX, MFTRACE_USDT_WORKDIR (build tree, default
#   PREFIX.build, removed after a successful build unless MFTRACE_USDT_KEEP_BUILD=1),
#   MFTRACE_USDT_QEMU_VERSION (a Debian source version of qemu; default: the one in
#   bookworm-backports), MFTRACE_USDT_JOBS (default 2).
# Needs root only when it has to build (apt-get, writes under /var/cache).  Takes about
# 10 minutes on 2 cores.  Works without a terminal (CI=true, no stdin).
set -euo pipefail

PREFIX=${MFTRACE_USDT_PREFIX:-/var/cache/mftrace/qemu-usdt}
PREFIX=${PREFIX%/}
WORK=${MFTRACE_USDT_WORKDIR:-$PREFIX.build}
JOBS=${MFTRACE_USDT_JOBS:-2}
WANT_VER=${MFTRACE_USDT_QEMU_VERSION:-}
case "$PREFIX:$WORK" in
    /?*/?*:/?*/?*) ;;
    *) printf 'build-usdt-qemu: error: MFTRACE_USDT_PREFIX and MFTRACE_USDT_WORKDIR must be absolute paths at least two levels deep\n' >&2; exit 1 ;;
esac
STAMP=$PREFIX/.mftrace-usdt-stamp
BIN=$PREFIX/bin/qemu-system-x86_64
# Bump when the build recipe changes in a way that must invalidate cached builds.
RECIPE_REV=1
BPO_LIST=/etc/apt/sources.list.d/mftrace-bookworm-backports.sources      # same file as setup.sh
BPO_SRC_LIST=/etc/apt/sources.list.d/mftrace-bookworm-backports-src.sources
PY=/usr/bin/python3     # Debian's python: its dist-packages hold meson and pycotap

say() { printf 'build-usdt-qemu: %s\n' "$*" >&2; }
die() { printf 'build-usdt-qemu: error: %s\n' "$*" >&2; exit 1; }

mode=build
case "${1:-}" in
    "") ;;
    --path) mode=path ;;
    --check) mode=check ;;
    --rebuild) mode=rebuild ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

stamp_get() { sed -n "s/^$1=//p" "$STAMP" 2>/dev/null | head -n1; }

cached_ok() {
    [ -f "$STAMP" ] && [ -x "$BIN" ] || return 1
    [ "$(stamp_get recipe_rev)" = "$RECIPE_REV" ] || return 1
    [ -z "$WANT_VER" ] || [ "$(stamp_get debian_version)" = "$WANT_VER" ] || return 1
    return 0
}

done_ok() { [ "$mode" = path ] && printf '%s\n' "$BIN"; exit 0; }

if [ "$mode" = check ]; then
    cached_ok && exit 0
    say "no valid cached build in $PREFIX"; exit 1
fi
[ "$mode" = rebuild ] || ! cached_ok || done_ok

[ "$(id -u)" = 0 ] || die "no cached build in $PREFIX and not root (building needs apt-get and write access); run it once as root"

# One build at a time per prefix; a second caller waits, then finds the cache.
mkdir -p "$(dirname "$PREFIX")"
exec 9>"$PREFIX.lock"
if ! flock -n 9; then
    say "another build into $PREFIX is running; waiting for it"
    flock 9
    [ "$mode" = rebuild ] || ! cached_ok || done_ok
fi

export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)

# --- apt sources: bookworm-backports, binaries (meson, pycotap) and sources (qemu) ---
APTLOG=$PREFIX.apt.log
apt_fail() {
    printf 'build-usdt-qemu: error: %s (log: %s)\n' "$1" "$APTLOG" >&2
    tail -n 15 "$APTLOG" | sed 's/^/    /' >&2
    exit 1
}
: >"$APTLOG"
apt_updated=0
apt_update() {
    [ "$apt_updated" = 1 ] && return 0
    say "apt-get update"
    apt-get update -qq >>"$APTLOG" 2>&1 || apt_fail "apt-get update failed"
    apt_updated=1
}
sources_changed=0
if [ ! -f "$BPO_LIST" ] && ! grep -rqs --include='*.list' --include='*.sources' \
        --exclude="$(basename "$BPO_SRC_LIST")" -E '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ ; then
    say "adding bookworm-backports apt source ($BPO_LIST)"
    cat >"$BPO_LIST" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    sources_changed=1
fi
if [ ! -f "$BPO_SRC_LIST" ]; then
    say "adding bookworm-backports deb-src apt source ($BPO_SRC_LIST)"
    cat >"$BPO_SRC_LIST" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    sources_changed=1
fi
if [ "$sources_changed" = 1 ] || [ -z "$(apt-cache madison qemu 2>/dev/null | grep -F 'Sources' || true)" ] \
        || [ -z "$(apt-cache madison meson 2>/dev/null | grep -F bookworm-backports || true)" ]; then
    apt_update
fi

# --- build dependencies (only what is missing) ---------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
DEPS=(gcc make pkg-config dpkg-dev xz-utils python3 python3-venv systemtap-sdt-dev libfdt-dev
      device-tree-compiler ninja-build libglib2.0-dev libpixman-1-dev libgnutls28-dev
      libslirp-dev zlib1g-dev flex bison binutils)
missing=()
for p in "${DEPS[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_update
    say "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$APTLOG" 2>&1 \
        || apt_fail "apt-get install ${missing[*]} failed"
fi
meson_ver=$(dpkg-query -W -f='${Version}' meson 2>/dev/null || true)
if [ -z "$meson_ver" ] || ! dpkg --compare-versions "$meson_ver" ge 1.5 || ! installed python3-pycotap; then
    apt_update
    say "installing meson (>= 1.5) and python3-pycotap from bookworm-backports"
    apt-get install -y -qq --no-install-recommends -t bookworm-backports meson python3-pycotap >>"$APTLOG" 2>&1 \
        || apt_fail "cannot install meson >= 1.5 and python3-pycotap from bookworm-backports"
fi
command -v dtrace >/dev/null || die "dtrace (systemtap-sdt-dev) not found after installing it"
[ -x "$PY" ] || die "$PY not found (package python3)"

# --- which source -----------------------------------------------------------------------
ver=$WANT_VER
if [ -z "$ver" ]; then
    ver=$(apt-cache madison qemu | awk -F'|' '/bookworm-backports/ && /Sources/ {gsub(/ /,"",$2); print $2; exit}')
    [ -n "$ver" ] || die "no qemu source package in bookworm-backports (deb-src line in $BPO_SRC_LIST; apt-get update failed?)"
fi
upstream=${ver#*:}; upstream=${upstream%%+*}; upstream=${upstream%%-*}

rm -rf "$WORK"
mkdir -p "$WORK/dl"
chmod 755 "$WORK" "$WORK/dl"
LOG=$WORK/build.log
: >"$LOG"

fail_log() {    # one clear line, then the end of the log for CI
    printf 'build-usdt-qemu: error: %s (log: %s)\n' "$1" "$LOG" >&2
    tail -n 25 "$LOG" | sed 's/^/    /' >&2
    exit 1
}

source_kind=
why=
srcdir=
say "fetching Debian source qemu=$ver"
if (cd "$WORK/dl" && apt-get source -q "qemu=$ver") >>"$LOG" 2>&1; then
    srcdir=$(find "$WORK/dl" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -n1)
    [ -n "$srcdir" ] && [ -d "$srcdir/debian/patches" ] && source_kind=debian
fi
if [ -z "$source_kind" ]; then
    # The mirror may have dropped a superseded backport's .dsc/.debian.tar.xz while
    # still serving the upstream tarball: build that same upstream release without
    # Debian's patches (none of them touches migration in 10.0.2+ds-2+deb13u1).
    why=$(sed -nE 's#^E: Failed to fetch .*/([^/ ]+) +([0-9]{3}) .*#\1: \2#p' "$LOG" \
          | sed 's/%2[bB]/+/g; s/%7[eE]/~/g; s/%3[aA]/:/g' | head -n3 | tr '\n' ',' | sed 's/,$//; s/,/, /g')
    why=${why:+the mirror answered $why}
    [ -n "$why" ] || why="apt-get source qemu=$ver failed"
    rm -rf "$WORK/dl"/qemu-*/
    mkdir -p "$WORK/uris"      # --print-uris omits files already present in the cwd
    uris=$(cd "$WORK/uris" && apt-get source --print-uris -qq "qemu=$ver" 2>>"$LOG" | grep -E "^'" || true)
    orig_line=$(printf '%s\n' "$uris" | grep -E "\.orig\.tar\.(xz|gz|bz2)' " | head -n1 || true)
    orig_line=${orig_line:-$(printf '%s\n' "$uris" | grep -E "\.orig\.tar\.(xz|gz|bz2) " | head -n1 || true)}
    [ -n "$orig_line" ] || fail_log "no Debian source for qemu=$ver: $why"
    orig_uri=$(printf '%s' "$orig_line" | cut -d"'" -f2)
    orig_file=$(printf '%s' "$orig_line" | awk '{print $2}')
    orig_hash=$(printf '%s' "$orig_line" | awk '{print $4}')
    if [ ! -s "$WORK/dl/$orig_file" ]; then
        /usr/lib/apt/apt-helper download-file "$orig_uri" "$WORK/dl/$orig_file" "$orig_hash" >>"$LOG" 2>&1 \
            || fail_log "cannot download $orig_file either ($why)"
    fi
    [ "SHA256:$(sha256sum "$WORK/dl/$orig_file" | cut -d' ' -f1)" = "$orig_hash" ] \
        || fail_log "$orig_file does not match the SHA256 in Debian's Sources index"
    mkdir -p "$WORK/dl/orig"
    tar -xf "$WORK/dl/$orig_file" -C "$WORK/dl/orig" >>"$LOG" 2>&1 || fail_log "cannot unpack $orig_file"
    srcdir=$(find "$WORK/dl/orig" -mindepth 1 -maxdepth 1 -type d | head -n1)
    source_kind=orig-only
    say "Debian's packaging for qemu=$ver is not available ($why);"
    say "building the same upstream release from Debian's $orig_file without Debian's patches"
fi
[ -n "$srcdir" ] && [ -f "$srcdir/configure" ] || fail_log "no QEMU source tree after unpacking"
src_upstream=$(cat "$srcdir/VERSION" 2>/dev/null || echo "$upstream")

# Debian's tarball has no edk2 blobs: do what Debian's skip-unpack-edk2-blobs patch does
# (a no-op when dpkg-source already applied it).
if grep -q 'unpack_edk2_blobs = bzip2.found()' "$srcdir/meson.build" \
        && [ ! -e "$srcdir/pc-bios/edk2-x86_64-code.fd.bz2" ]; then
    sed -i 's/unpack_edk2_blobs = bzip2.found()/unpack_edk2_blobs = false/' "$srcdir/meson.build"
fi

# --- configure, build, install ------------------------------------------------------
CONF=(--prefix="$PREFIX" --python="$PY" --target-list=x86_64-softmmu
      --enable-trace-backends=dtrace,log
      --disable-download --disable-install-blobs --disable-docs
      --without-default-features --enable-tcg --enable-kvm --enable-gnutls
      --enable-slirp --enable-fdt=system --disable-debug-info
      --extra-ldflags=-Wl,--export-dynamic)
grep -q "option('rust'" "$srcdir/meson_options.txt" 2>/dev/null && CONF+=(--disable-rust)
mkdir -p "$WORK/build"
say "configuring QEMU $src_upstream (log: $LOG)"
(cd "$WORK/build" && "$srcdir/configure" "${CONF[@]}") >>"$LOG" 2>&1 || fail_log "configure failed"
say "building with $JOBS jobs (about 10 minutes on 2 cores)"
t_build=$(date +%s)
# Only what `meson install` installs (the emulator and trace-events-all): `make` would
# also build ~170 unit-test programs that nobody runs here.
ninja -C "$WORK/build" -j"$JOBS" qemu-system-x86_64 trace/trace-events-all >>"$LOG" 2>&1 \
    || fail_log "build failed"
t_built=$(date +%s)
STAGE=$WORK/stage
"$WORK/build/pyvenv/bin/meson" install -C "$WORK/build" --no-rebuild --destdir "$STAGE" >>"$LOG" 2>&1 \
    || fail_log "meson install failed"
sbin=$STAGE$PREFIX/bin/qemu-system-x86_64
[ -x "$sbin" ] || fail_log "make install produced no $sbin"
nprobes=$(readelf -n "$sbin" | grep -c NT_STAPSDT || true)
[ "${nprobes:-0}" -gt 100 ] || fail_log "the built binary has no USDT probes (${nprobes:-0} stapsdt notes)"
"$sbin" --version >>"$LOG" 2>&1 || fail_log "the built binary does not run"

note=${why:-"Debian source package, Debian patches applied"}
{
    printf 'recipe_rev=%s\n' "$RECIPE_REV"
    printf 'debian_source=qemu\n'
    printf 'debian_version=%s\n' "$ver"
    printf 'upstream_version=%s\n' "$src_upstream"
    printf 'source_kind=%s\n' "$source_kind"
    printf 'source_note=%s\n' "$note"
    printf 'stapsdt_notes=%s\n' "$nprobes"
    printf 'configure=%s\n' "${CONF[*]}"
    printf 'built_at=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'build_seconds=%s\n' "$((t_built - t_build))"
    printf 'total_seconds=%s\n' "$(( $(date +%s) - t0 ))"
} >"$STAGE$PREFIX/.mftrace-usdt-stamp"
rm -rf "$PREFIX"
mkdir -p "$(dirname "$PREFIX")"
mv "$STAGE$PREFIX" "$PREFIX"
[ "${MFTRACE_USDT_KEEP_BUILD:-0}" = 1 ] || rm -rf "$WORK"
say "QEMU $src_upstream ($source_kind, Debian $ver) with $nprobes USDT probes in $PREFIX ($(( $(date +%s) - t0 )) s)"
done_ok
