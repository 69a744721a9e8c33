#!/bin/bash
# libveil's ABI, checked with abidiff (Debian's abigail-tools) in two steps
# against the library just built:
#
#  1. Against release 1.0.0, the first release of libveil.so.1
#     (client-shim/abi/libveil-1.0.0.abi, written by abidw from the library
#     built at commit 070a1aa): nothing removed and nothing changed. A new
#     function is compatible, and so is a member appended, past the
#     release's size, to a struct the caller allocates with a version or
#     size member libveil honours; tools/abi_release_check.py reads
#     abidiff's report and refuses every other line (a member inserted,
#     retyped, moved or deleted, a change in a nested struct, a changed
#     signature, a removed symbol). Anything that fails here needs a new
#     SONAME (libveil.so.2) and a new release baseline.
#  2. Against the record of the current ABI (client-shim/abi/libveil.so.1.abi):
#     any difference at all fails, so every addition is made on purpose:
#     record it with --update in the commit that makes it, together with
#     its symbols in debian/libveil1.symbols and a minor version.
#
# The handles the headers only declare (struct veil_async; ...) are libveil's
# own (abi/opaque.suppr).
#
#   tools/abi-check.sh BUILD_DIR            check (tools/test-all.sh runs it)
#   tools/abi-check.sh BUILD_DIR --update   write the record of step 2 from BUILD_DIR
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: tools/abi-check.sh BUILD_DIR [--update]}
release=$ROOT/client-shim/abi/libveil-1.0.0.abi
record=$ROOT/client-shim/abi/libveil.so.1.abi
opaque=$ROOT/client-shim/abi/opaque.suppr
lib=$(readlink -f "$build/client-shim/libveil.so.1" 2>/dev/null)
command -v abidiff >/dev/null || { echo "abi-check: abidiff missing (abigail-tools, tools/install-deps.sh)"; exit 1; }
[ -f "$lib" ] || { echo "abi-check: no libveil.so.1 in $build/client-shim"; exit 1; }
if [ "${2:-}" = --update ]; then
  abidw --no-corpus-path --out-file "$record" "$lib" && echo "abi-check: record written from $lib"
  exit
fi

# abidiff's status is a bit field: 1 error, 2 usage, 4 ABI change,
# 8 incompatible change.
status=0
report=$(mktemp)
abidiff --no-added-syms --suppressions "$opaque" "$release" "$lib" >"$report"
rc=$?
cat "$report"
if [ $((rc & 3)) -ne 0 ]; then
  echo "abi-check: abidiff against release 1.0.0 failed (status $rc)"; status=1
elif [ $rc -eq 0 ] || python3 "$ROOT/tools/abi_release_check.py" "$report"; then
  echo "abi-check: $(basename "$lib") is compatible with release 1.0.0 (additions only)"
else
  echo "abi-check: $(basename "$lib") is NOT compatible with release 1.0.0 (abidiff status $rc; see above):"
  echo "  this needs a new SONAME"; status=1
fi
rm -f "$report"

abidiff --suppressions "$opaque" "$record" "$lib"
rc=$?
if [ $rc -eq 0 ]; then
  echo "abi-check: $(basename "$lib") has the recorded ABI"
elif [ $((rc & 3)) -ne 0 ]; then
  echo "abi-check: abidiff against the record failed (status $rc)"; status=1
else
  echo "abi-check: libveil's ABI differs from the record (abidiff status $rc; see above): an addition is"
  echo "  recorded with tools/abi-check.sh $build --update, with its symbols in debian/libveil1.symbols"
  status=1
fi
exit $status
