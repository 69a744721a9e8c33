#!/bin/bash
# tools/abi_release_check.py against abidiff reports of libveil built from
# release 1.0.0's tree with one change each (made by hand, 2026-12-01):
# pass-* must pass (the real 1.1.0, a member appended to each versioned
# struct), fail-* must fail (a member retyped, a member inserted in the
# middle, one inserted in the nested struct veil_tls_options, a function
# removed, a stats counter narrowed).
cd "$(dirname "$0")" || exit 1
status=0
for f in pass-*.txt fail-*.txt; do
  python3 ../../tools/abi_release_check.py "$f" >/dev/null
  rc=$?
  case $f in pass-*) want=0 ;; *) want=1 ;; esac
  if [ "$rc" -eq "$want" ]; then echo "PASS abi_release_check: $f"; else echo "FAIL abi_release_check: $f (exit $rc)"; status=1; fi
done
exit $status
