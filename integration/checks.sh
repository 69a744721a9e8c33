# shellcheck shell=bash
#
# Checks and deadlines for Veil's shell tests, one rule for all of them:
# sourced by integration/lib.sh (every scenario), integration/docker.sh (the
# container suites) and the packaging tests that run inside containers
# without the rest of lib.sh. IT_NAME (set by the caller) labels the lines.
#
# it_check counts and prints "PASS|FAIL <IT_NAME>: <what>" and never exits;
# IT_CHECKS and IT_FAILS hold the counts.
#
# Deadlines: a test states how long a step takes on an ordinary machine; one
# factor scales it (the rule of tests/support/timing.c): VEIL_TEST_TIME_FACTOR
# (1, or 4 in the sanitizer build), times 10 with VEIL_VALGRIND=1. Nothing
# waits a fixed time for an event: it_wait_until re-checks the event until
# its deadline.

IT_FAILS=${IT_FAILS:-0}
IT_CHECKS=${IT_CHECKS:-0}

# it_check "what" command...: runs the command, counts pass/fail, never exits.
it_check() {
	local what=$1; shift
	IT_CHECKS=$((IT_CHECKS + 1))
	if "$@"; then
		printf 'PASS %s: %s\n' "$IT_NAME" "$what"
	else
		printf 'FAIL %s: %s\n' "$IT_NAME" "$what"
		IT_FAILS=$((IT_FAILS + 1))
	fi
}
it_fail() { IT_CHECKS=$((IT_CHECKS + 1)); IT_FAILS=$((IT_FAILS + 1)); printf 'FAIL %s: %s\n' "$IT_NAME" "$*"; }
it_pass() { IT_CHECKS=$((IT_CHECKS + 1)); printf 'PASS %s: %s\n' "$IT_NAME" "$*"; }

# ---- deadlines ----
IT_TIME_FACTOR=$(awk -v f="${VEIL_TEST_TIME_FACTOR:-}" -v vg="${VEIL_VALGRIND:-}" 'BEGIN {
	x = 1
	if (f ~ /^[+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$/ && f + 0 >= 1 && f + 0 <= 1000) x = f + 0
	if (vg != "" && substr(vg, 1, 1) != "0") x *= 10
	printf "%g", x }')
# it_secs BASE: BASE seconds (what the step takes on an ordinary machine)
# scaled by the factor, rounded up to whole seconds.
it_secs() { awk -v b="$1" -v f="$IT_TIME_FACTOR" 'BEGIN { v = b * f; i = int(v); if (i < v) i++; print i }'; }
# Monotonic milliseconds (CLOCK_BOOTTIME through /proc/uptime).
it__now_ms() { local u; read -r u _ </proc/uptime; echo $(( ${u%.*} * 1000 + 10#${u#*.} * 10 )); }
# it_wait_until BASE_S COMMAND...: re-runs COMMAND until it succeeds or the
# deadline (BASE_S, scaled) passes; returns its last status.
it_wait_until() {
	local end
	end=$(( $(it__now_ms) + $(it_secs "$1") * 1000 )); shift
	while :; do
		"$@" && return 0
		[ "$(it__now_ms)" -lt "$end" ] || return 1
		sleep 0.05   # poll interval, the event is re-checked
	done
}
# it_wait_exit PID BASE_S: until the process has exited (it may be ours or not).
it__gone() { ! kill -0 "$1" 2>/dev/null; }
it_wait_exit() { it_wait_until "$2" it__gone "$1"; }
it_wait_file() { it_wait_until "$2" test -e "$1"; }   # FILE BASE_S
