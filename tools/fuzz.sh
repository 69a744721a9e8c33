#!/usr/bin/env bash
# Runs each libFuzzer target (fuzz/fuzz_<name>.c) for a given time, one after
# the other (never in parallel: the fuzzers are CPU bound), and prints the
# figures of each run: executions, coverage (cov = edges, ft = features),
# corpus size, speed. Exits non-zero if any target crashes, leaks, times out
# or runs out of memory; the reproducer is left in <build>/fuzz-artifacts/.
#
#   tools/fuzz.sh [SECONDS] [TARGET...]     default 60 s each, every target
#   tools/fuzz.sh 600                       the documented 10-minute run
#
# Knobs: VEIL_FUZZ_BUILD (build dir, default build/fuzz), VEIL_JOBS (build
# parallelism, default 2). The committed seeds (fuzz/corpus/<t>) are only
# read; inputs the fuzzer finds go to <build>/fuzz-corpus/<t>, which is kept
# between runs so a longer run continues where the last one stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${1:-60}
shift || true
BUILD=${VEIL_FUZZ_BUILD:-$ROOT/build/fuzz}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
JOBS=${VEIL_JOBS:-2}

command -v clang >/dev/null || { echo "fuzz: clang not found (tools/install-deps.sh installs it)" >&2; exit 1; }
mkdir -p "$BUILD"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  CC=clang cmake -S "$ROOT" -B "$BUILD" -DVEIL_BUILD_FUZZ=ON -DVEIL_BUILD_TESTS=OFF \
    -DVEIL_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/veil-configure.log" 2>&1 \
    || { cat "$BUILD/veil-configure.log"; exit 1; }
fi
# Re-run cmake so a parser that landed since the last configure gets its target.
cmake "$BUILD" >/dev/null
cmake --build "$BUILD" --target veil_fuzz -j"$JOBS" >"$BUILD/veil-build.log" 2>&1 \
  || { grep -E 'error:|Error ' "$BUILD/veil-build.log" | head -40; exit 1; }
if grep -E 'warning:' "$BUILD/veil-build.log"; then echo "fuzz: build has warnings"; exit 1; fi

if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(grep -v '^$' "$BUILD/fuzz/targets.txt"); fi

mkdir -p "$BUILD/fuzz-artifacts" "$BUILD/fuzz-logs"
summary="$BUILD/fuzz-summary.txt"
printf '%-10s %8s %12s %8s %8s %8s %8s  %s\n' target seconds executions exec/s cov ft corpus result | tee "$summary"
status=0
for t in "${targets[@]}"; do
  bin="$BUILD/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: no target $t" >&2; status=1; continue; }
  work="$BUILD/fuzz-corpus/$t"
  mkdir -p "$work"
  log="$BUILD/fuzz-logs/$t.log"
  rc=0
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: runaway memory;
  # leaks are reported by LeakSanitizer (-detect_leaks defaults to 1).
  ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$BUILD/fuzz-artifacts/$t-" "$work" "$ROOT/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\).*/\1/p' <<<"$last")
  if [ $rc -eq 0 ]; then result=ok; else result="FAILED (exit $rc, see $log)"; status=1; fi
  printf '%-10s %8s %12s %8s %8s %8s %8s  %s\n' "$t" "$SECS" "${execs:-?}" "${speed:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "$result" | tee -a "$summary"
  if [ $rc -ne 0 ]; then
    grep -E 'ERROR|SUMMARY|Test unit written|^ *#[0-9]+ 0x' "$log" | head -30 >&2 || true
  fi
done
exit $status
