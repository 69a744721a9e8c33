#!/usr/bin/env bash
# Test discipline, checked on every run (tools/test-all.sh):
# - every Check test case gets its time limit from tests/support/timing.h
#   (veil_tcase): no tcase_create / tcase_set_timeout elsewhere;
# - no fixed sleep stands in for an event in C tests and scenarios: sleeping
#   calls live only in the support libraries' deadline-bounded poll helpers;
# - CMake lists every source explicitly: no globs, no EXISTS guards, no weak
#   symbols standing in for CLI commands.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
fail() { echo "test-lint: $*"; status=1; }

hits=$(grep -rnE '\btcase_(create|set_timeout)\b' tests --include='*.c' --include='*.h' | grep -vE '^tests/support/timing\.[ch]:')
[ -z "$hits" ] || fail "TCase made without veil_tcase (tests/support/timing.h):
$hits"

hits=$(grep -rnE '\b(sleep|usleep|nanosleep)\s*\(' tests integration bench --include='*.c' --include='*.h' \
  | grep -vE '^(tests/support/timing\.[ch]|integration/integ_client\.c|integration/integ_load\.c|integration/cluster/cluster_dev\.c|bench/)')
[ -z "$hits" ] || fail "fixed sleep in a test (wait on the event with a deadline instead):
$hits"

hits=$(grep -rnE 'file\(GLOB|if\(EXISTS|if\(TARGET' --include=CMakeLists.txt --include='*.cmake' \
  core plugin client-shim tools tests integration bench fuzz examples keyd CMakeLists.txt 2>/dev/null)
[ -z "$hits" ] || fail "implicit source lists in CMake:
$hits"
hits=$(grep -rnE '#pragma weak|__attribute__\(\(weak' --include='*.c' --include='*.h' core plugin client-shim tools keyd 2>/dev/null)
[ -z "$hits" ] || fail "weak symbols:
$hits"

[ $status -eq 0 ] && echo "test-lint: clean"
exit $status
