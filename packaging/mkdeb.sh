#!/bin/sh
# make deb: a Debian binary package of mftrace, with dpkg-deb from a staged tree (no
# debhelper: this does by hand the few things it would, and says so below).
#
#  1. build the dynamic binary in BUILD/deb/obj with Debian's hardening flags
#     (dpkg-buildflags, hardening=+all);
#  2. stage what `make install` installs, with PREFIX=/usr and the unit in
#     /lib/systemd/system (where Debian 12's systemd packages put theirs);
#  3. do what dh_strip, dh_compress and dh_installdocs would: strip the binary, gzip -9n
#     the man page, add the copyright file and a changelog;
#  4. DEBIAN/: control with Depends from dpkg-shlibdeps, conffiles (/etc/default/mftrace),
#     md5sums, and the maintainer scripts of packaging/ (systemd reload and stop; the
#     exporter is not enabled on install);
#  5. dpkg-deb --build --root-owner-group -> BUILD/mftrace_VERSION_ARCH.deb
#
# usage: packaging/mkdeb.sh [BUILD]   (from the repository root; make deb runs it)
# DEB_MAINTAINER="Name <mail>" sets the Maintainer field (default: git's user).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
die() { printf 'mkdeb: %s\n' "$*" >&2; exit 1; }
for t in dpkg-deb dpkg-shlibdeps dpkg-buildflags strip; do
	command -v "$t" >/dev/null || die "$t is missing (scripts/setup.sh installs it)"
done

version=$(sed -n 's/^#define MFT_VERSION "\(.*\)"$/\1/p' include/version.h)
[ -n "$version" ] || die "no MFT_VERSION in include/version.h"
arch=$(dpkg --print-architecture)
maint=${DEB_MAINTAINER:-}
if [ -z "$maint" ]; then
	n=$(git config user.name 2>/dev/null || true) m=$(git config user.email 2>/dev/null || true)
	maint="${n:-mftrace maintainers} <${m:-root@localhost.localdomain}>"
fi
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# the last commit's date: the same tree gives the same package (reproducible)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

work=$build/deb
obj=$work/obj
root=$work/root
rm -rf "$root" "$work/src"
mkdir -p "$obj" "$root/DEBIAN" "$work/src/debian"

# 1. the binary, with Debian's flags (the Makefile adds its own after them)
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
export CFLAGS LDFLAGS
# libbpf from its archive: uprobe_multi needs libbpf >= 1.3, which Debian 12 has only in
# bookworm-backports, so the package must not depend on the host's libbpf1
make -s BUILD="$obj" LIBBPF_LIBS="-l:libbpf.a" "$obj/mftrace"

# 2. what make install installs
make -s BUILD="$obj" DESTDIR="$PWD/$root" PREFIX=/usr UNITDIR=/lib/systemd/system install

# 3. strip, compress, document
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/sbin/mftrace"
gzip -9n "$root/usr/share/man/man8/mftrace.8"
doc=$root/usr/share/doc/mftrace
first=$(git log --reverse --format=%ad --date=format:%Y 2>/dev/null | head -1)
last=$(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
mkdir -p "$doc"
years=$last
[ -z "$first" ] || [ "$first" = "$last" ] || years=$first-$last
sed "s|@YEARS@|$years|" packaging/copyright >"$doc/copyright"
chmod 0644 "$doc/copyright"
{
	printf 'mftrace (%s) unstable; urgency=medium\n\n' "$version"
	printf '  * mftrace %s, built from git revision %s.\n\n' "$version" "$rev"
	printf ' -- %s  %s\n' "$maint" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# 4. DEBIAN/
printf 'Source: mftrace\n\nPackage: mftrace\nArchitecture: any\n' >"$work/src/debian/control"
depends=$(cd "$work/src" && dpkg-shlibdeps -O -e"$PWD/../root/usr/sbin/mftrace" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies for usr/sbin/mftrace"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maint|" \
	-e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" packaging/control.in >"$root/DEBIAN/control"
echo /etc/default/mftrace >"$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
	install -m 0755 "packaging/$s" "$root/DEBIAN/$s"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print | sed 's|^\./||' |
	LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
# the build's umask must not leak into the package
find "$root" -type d -exec chmod 0755 {} +

# 5. the package
deb=$build/mftrace_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
printf '%s: Depends: %s\n' "$deb" "$depends"
