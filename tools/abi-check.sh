#!/bin/bash
# libveil's ABI against the release it must stay compatible with: abidiff
# (Debian's abigail-tools) between client-shim/abi/libveil.so.1.abi, written
# by abidw from the libveil.so.1 of release 1.0.0, and the library just
# built. Any change fails: a struct a public header defines, a signature, a
# symbol removed or added. An addition is compatible: record it with
# --update in the commit that makes it. Anything else needs a new SONAME
# (libveil.so.2) and a new baseline. The handles the headers only declare
# (struct veil_async; ...) are libveil's own (abi/opaque.suppr).
#
#   tools/abi-check.sh BUILD_DIR            check (tools/test-all.sh runs it)
#   tools/abi-check.sh BUILD_DIR --update   write the baseline from BUILD_DIR
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: tools/abi-check.sh BUILD_DIR [--update]}
base=$ROOT/client-shim/abi/libveil.so.1.abi
suppr=$ROOT/client-shim/abi/opaque.suppr
lib=$(find "$build/client-shim" -maxdepth 1 -name 'libveil.so.1.*' -type f | head -1)
command -v abidiff >/dev/null || { echo "abi-check: abidiff missing (abigail-tools, tools/install-deps.sh)"; exit 1; }
[ -n "$lib" ] || { echo "abi-check: no libveil.so.1.* in $build/client-shim"; exit 1; }
if [ "${2:-}" = --update ]; then
  abidw --no-corpus-path --out-file "$base" "$lib" && echo "abi-check: baseline written from $lib"
  exit
fi
abidiff --suppressions "$suppr" "$base" "$lib"
rc=$?
# abidiff's status is a bit field: 1 error, 2 usage, 4 ABI change,
# 8 incompatible change.
if [ $rc -eq 0 ]; then
  echo "abi-check: $(basename "$lib") has the ABI of the baseline"
elif [ $((rc & 3)) -ne 0 ]; then
  echo "abi-check: abidiff failed (status $rc)"
else
  echo "abi-check: libveil's ABI changed (abidiff status $rc; see above): an addition is recorded with"
  echo "  tools/abi-check.sh $build --update; anything else needs a new SONAME"
fi
exit $((rc != 0))
