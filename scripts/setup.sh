#!/usr/bin/env bash
# Install everything mftrace needs on a fresh Debian 12 machine, idempotently.
#  - Debian packages: build (clang, libbpf >= 1.3 from bookworm-backports, bpftool,
#    libelf, zlib; clang-format for make format-check), test (qemu 7.2, bpftrace as the independent observer, python3,
#    tmux), packaging (dpkg-dev, lintian, mmdebstrap for a clean root to install the
#    package into, bash-completion).
#  - libvirt for the operator-path tests (tests/integration/test_libvirt.py): Debian's
#    libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients (session daemons run by
#    the test, no systemd needed); nftables for the faults on the wire and passwd for the
#    local users the tests make (tests/integration/test_twohost.py, tests/lib/netns.py).
#  - QEMU 10.0.2 from bookworm-backports, unpacked into a private prefix so that
#    Debian's 7.2 stays the system QEMU.
#  - tracefs mounted at /sys/kernel/tracing if absent.
# Quiet when everything is already in place. Prints what it does otherwise.
set -euo pipefail

QEMU10_PREFIX=${MFTRACE_QEMU10_PREFIX:-/opt/mftrace/qemu-10.0}
BACKPORTS_LIST=/etc/apt/sources.list.d/mftrace-bookworm-backports.sources

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, mounts tracefs)"
export DEBIAN_FRONTEND=noninteractive

PKGS=(make clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config
      libgnutls28-dev gnutls-bin qemu-system-x86 qemu-utils bpftrace python3 binutils
      iproute2 ca-certificates libmicrohttpd-dev prometheus chromium tmux clang-format
      dpkg-dev lintian mmdebstrap bash-completion libyaml-dev libcrypt-dev libcapstone-dev curl
      libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients nftables passwd)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

apt_updated=0
apt_update() {
    [ "$apt_updated" = 1 ] && return 0
    say "apt-get update"
    apt-get update -qq >/dev/null
    apt_updated=1
}

if [ "${#missing[@]}" -gt 0 ]; then
    apt_update
    say "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

add_backports() {
    if [ ! -f "$BACKPORTS_LIST" ]; then
        say "adding bookworm-backports apt source"
        cat >"$BACKPORTS_LIST" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        apt_updated=0
    fi
    apt_update
}

# --- libbpf >= 1.3 (bpf_program__attach_uprobe_multi) from bookworm-backports --
# bookworm has 1.1; with 1.3+ a target's uprobes become a few uprobe_multi links, which
# detach in a fraction of the time (user/collect/collector.c).
libbpf_ver=$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null || echo 0)
if dpkg --compare-versions "$libbpf_ver" lt 1:1.3; then
    add_backports
    say "installing libbpf-dev and libbpf1 from bookworm-backports (have $libbpf_ver)"
    apt-get install -y -qq --no-install-recommends -t bookworm-backports libbpf-dev libbpf1 >/dev/null
fi

# --- QEMU 10.0.2 from bookworm-backports, into a private prefix ---------------
if [ ! -x "$QEMU10_PREFIX/usr/bin/qemu-system-x86_64" ]; then
    add_backports
    ver=$(apt-cache madison qemu-system-x86 | awk -F'|' '/bookworm-backports/ {gsub(/ /,"",$2); print $2; exit}')
    [ -n "$ver" ] || die "no qemu-system-x86 in bookworm-backports"
    case "$ver" in *10.0*) ;; *) say "note: backports offers qemu $ver (expected 10.0.x)";; esac
    sb=$(apt-cache madison seabios | awk -F'|' '/bookworm-backports/ {gsub(/ /,"",$2); print $2; exit}')
    tmp=$(mktemp -d); chmod 755 "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    say "downloading qemu $ver from bookworm-backports"
    ( cd "$tmp" && apt-get download -qq "qemu-system-x86=$ver" "qemu-system-common=$ver" \
        "qemu-system-data=$ver" ${sb:+"seabios=$sb"} >/dev/null )
    mkdir -p "$QEMU10_PREFIX"
    for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$QEMU10_PREFIX"; done
    "$QEMU10_PREFIX/usr/bin/qemu-system-x86_64" -L "$QEMU10_PREFIX/usr/share/qemu" --version >/dev/null \
        || die "QEMU 10 in $QEMU10_PREFIX does not run (missing libraries?)"
    say "QEMU $ver unpacked into $QEMU10_PREFIX"
fi

# --- QEMU 10.0.2's loadable modules, all of them, in the private prefix ----------
# QEMU looks for a module in QEMU_MODULE_DIR and then in Debian 7.2's module directory;
# one that only 7.2 has there (ui-opengl, qxl, spice: Debian 10.0 ships them in separate
# packages) is from another build, and QEMU 10 aborts loading it. libvirt's capability
# probe (qom-list-types) loads every module, so tests/lib/libvirt.py needs the complete set.
QEMU10_MODDIR="$QEMU10_PREFIX/usr/lib/x86_64-linux-gnu/qemu"
if [ -x "$QEMU10_PREFIX/usr/bin/qemu-system-x86_64" ] && [ ! -e "$QEMU10_MODDIR/ui-opengl.so" ]; then
    [ -f "$BACKPORTS_LIST" ] && apt_update
    ver=$(apt-cache madison qemu-system-modules-opengl | awk -F'|' '/bookworm-backports/ {gsub(/ /,"",$2); print $2; exit}')
    if [ -n "$ver" ]; then
        tmpm=$(mktemp -d); chmod 755 "$tmpm"
        say "downloading QEMU $ver's module packages from bookworm-backports"
        if ( cd "$tmpm" && apt-get download -qq "qemu-system-modules-opengl=$ver" \
                "qemu-system-modules-spice=$ver" "qemu-system-gui=$ver" >/dev/null 2>&1 ); then
            for deb in "$tmpm"/*.deb; do dpkg -x "$deb" "$QEMU10_PREFIX"; done
        else
            say "warning: QEMU $ver's module packages could not be downloaded (libvirt cannot probe 10.0.2)"
        fi
        rm -rf "$tmpm"
    fi
fi

# --- tracefs ------------------------------------------------------------------
if [ ! -e /sys/kernel/tracing/events ]; then
    say "mounting tracefs at /sys/kernel/tracing"
    mount -t tracefs nodev /sys/kernel/tracing || die "cannot mount tracefs"
fi
exit 0
