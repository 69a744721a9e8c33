#!/usr/bin/env bash
# Install the build into a temp prefix, then build and run a consumer with
# find_package(veil) and another with pkg-config: the exported veil:: targets
# and veil.pc must work for downstream projects.
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$here" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cmake" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/cmake/consumer"
PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" cc -o "$tmp/pc" "$here/consumer.c" \
	$(PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" pkg-config --cflags --libs veil)
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/pc"
echo "install consumer: find_package and pkg-config builds run"
