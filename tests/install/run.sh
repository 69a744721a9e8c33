#!/usr/bin/env bash
# Install the build into a temp directory (DESTDIR, so that absolute
# directories such as the Debian build's /etc land there too), then build
# and run a consumer with find_package(veil) and another with pkg-config:
# the exported veil:: targets and veil.pc must work for downstream projects,
# moved away from where they were configured to be.
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
DESTDIR="$tmp/dest" cmake --install "$build" >/dev/null
root=$tmp/dest$prefix
# The library directory as the build configured it (lib, or the Debian
# build's lib/<multiarch>).
lib=$(dirname "$(find "$root" -name veil.pc -path '*/pkgconfig/*')")
lib=${lib%/pkgconfig}
cmake -S "$here" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$root" >/dev/null
cmake --build "$tmp/cmake" >/dev/null
LD_LIBRARY_PATH="$lib" "$tmp/cmake/consumer"
PKG_CONFIG_PATH="$lib/pkgconfig" cc -o "$tmp/pc" "$here/consumer.c" \
	$(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --cflags --libs veil)
LD_LIBRARY_PATH="$lib" "$tmp/pc"
# Installed programs find libveil: configured for a prefix outside the
# system library path, through RUNPATH $ORIGIN/../lib, with no
# LD_LIBRARY_PATH; configured for /usr (the Debian build), with no RUNPATH.
if [ "$prefix" = /usr ] || [ "$prefix" = / ]; then
	if readelf -d "$root/bin/veil" | grep -E 'RPATH|RUNPATH'; then
		echo "install consumer: bin/veil of a /usr build carries a RUNPATH"; exit 1
	fi
else
	env -u LD_LIBRARY_PATH "$root/bin/veil" --version
fi
echo "install consumer: find_package and pkg-config builds run, the installed veil finds libveil"
