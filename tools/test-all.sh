#!/usr/bin/env bash
# Runs every Veil test: installs dependencies, builds, runs the unit and
# integration suites (real Mosquitto brokers on free 127.0.0.1 ports), then
# the same under ASan+UBSan, then the hardening checks. Exits non-zero on any
# failure, then the docker-compose suite (its own dockerd, stopped by PID).
# Knobs: VEIL_SKIP_SANITIZE=1, VEIL_SKIP_HARDENING=1, VEIL_COMPOSE=0 (skip
# the docker-compose suite), VEIL_JOBS (default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${VEIL_JOBS:-$(nproc)}
mkdir -p build
export CTEST_OUTPUT_ON_FAILURE=1

bash tools/install-deps.sh

status=0
section() { printf '\n==== %s ====\n' "$*"; }


# build DIR [cmake args...]: configure and build; a warning counts as a failure
# (the tree must stay -Wall -Wextra -Wshadow -Wconversion clean).
build() {
  local dir=$1; shift
  rm -rf "$dir"; mkdir -p "$dir"
  cmake -S "$ROOT" -B "$dir" -DVEIL_BUILD_TESTS=ON "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; return 1; }
  if ! cmake --build "$dir" -j"$JOBS" >"$dir.build.log" 2>&1; then
    grep -E 'error|Error' "$dir.build.log" | head -50; return 1
  fi
  if grep -E 'warning:' "$dir.build.log"; then echo "build has warnings"; return 1; fi
}

section "build (RelWithDebInfo, warnings are errors)"
build build/ci -DVEIL_BUILD_BENCH=ON || status=1

section "unit and integration tests"
(cd build/ci && ctest -j"$JOBS" --timeout 900 -L 'unit|integration') || status=1

if [ "${VEIL_SKIP_SANITIZE:-0}" != 1 ]; then
  section "ASan + UBSan: unit and integration tests"
  build build/asan -DVEIL_SANITIZE=ON -DVEIL_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug || status=1
  # Processes the tests start that load instrumented code (mosquitto with the
  # plugin, Paho apps with the preload) get the ASan runtime preloaded by the
  # harness (VEIL_ASAN_RUNTIME, set by CMake).
  (cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest -j"$JOBS" --timeout 900 -L 'unit|integration') || status=1
fi

if [ "${VEIL_SKIP_HARDENING:-0}" != 1 ] && [ -x tools/hardening.sh ]; then
  section "hardening: static analysis and fuzzing"
  bash tools/hardening.sh || status=1
fi

if [ "${VEIL_COMPOSE:-1}" = 1 ]; then
  section "docker-compose suite"
  bash integration/compose/run.sh || status=1
fi

section "result"
if [ $status -eq 0 ]; then echo "ALL VEIL TESTS PASSED"; else echo "SOME VEIL TESTS FAILED"; fi
exit $status
