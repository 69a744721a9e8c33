# shellcheck shell=bash
#
# Veil native integration harness: sourced by every integration/scenario_*.sh.
# Owns: locating the built artifacts, temp dirs, free 127.0.0.1 ports, real
# mosquitto brokers (config generated from mosquitto.conf.sample when it
# exists, started and stopped by PID), key/credential/keyring generation with
# the `veil` CLI, loopback captures, deadlines, checks and figures.
#
# Every process a scenario starts is recorded by PID and stopped by the EXIT
# trap: never by name. Exit codes: 0 all checks passed; 1 a check failed, a
# command failed, or a Veil artifact the scenario needs is missing (a renamed
# option or a target that is not built is a failure, never a skip); 77 a
# system dependency is truly absent (a Debian package's program, a kernel
# feature, a resource limit), with the reason printed. With VEIL_CI=1 a skip
# is a failure too.
#
# Every deadline goes through it_secs: a scenario states how long a step
# takes on an ordinary machine, one factor scales it (the rule of
# tests/support/timing.c): VEIL_TEST_TIME_FACTOR from ctest (1, or 4 in the
# sanitizer build), times 10 with VEIL_VALGRIND=1. Nothing waits a fixed time
# for an event: it_wait_until re-checks the event until its deadline.

set -euo pipefail

IT_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IT_NAME=$(basename "$0" .sh)
IT_PIDS=()          # background helpers (captures, subscribers): killed by PID
declare -A IT_BROKER_PID IT_BROKER_PORT IT_BROKER_DIR IT_BROKER_CONF

it_log() { printf '[%s %s] %s\n' "$IT_NAME" "$(date -u +%H:%M:%S)" "$*"; }
# A figure line, grep-able from the ctest log: "FIGURE scenario key=value".
it_fig() { printf 'FIGURE %s %s=%s\n' "$IT_NAME" "$1" "$2"; }

# it_check, it_pass, it_fail and the deadlines (it_secs, it_wait_until, ...).
# shellcheck source=checks.sh
. "$IT_SRC/integration/checks.sh"

# ---- failing, skipping ------------------------------------------------------
# it_fatal WHY: the scenario cannot go on; a failure (exit 1).
it_fatal() { printf 'FAIL %s: %s\n' "$IT_NAME" "$*"; exit 1; }
# it_skip WHY: only for a system dependency that is truly absent (exit 77,
# ctest shows "Skipped": not done, not passed). VEIL_CI=1: a failure.
it_skip() {
	if [ "${VEIL_CI:-0}" = 1 ]; then
		printf 'FAIL %s: SKIP not allowed in CI: %s\n' "$IT_NAME" "$*"
		exit 1
	fi
	printf 'SKIP %s: %s\n' "$IT_NAME" "$*"
	exit 77
}
# it_require_built FILE WHAT: a Veil artifact the scenario needs.
it_require_built() { [ -e "$1" ] || it_fatal "$2 is not built ($1): build the tree before the scenarios"; }
# it_require_sys PROGRAM PACKAGE: a program from a Debian package.
it_require_sys() {
	command -v "$1" >/dev/null 2>&1 || it_skip "$1 not found: the Debian package $2 is not installed"
}
# Any command that fails outside a check ends the scenario (set -e): say
# which (errtrace: also inside functions; not from subshells or background
# helpers, whose failures their callers judge).
it__on_err() {
	[ "$BASH_SUBSHELL" -eq 0 ] || return 0
	local n=${#FUNCNAME[@]} where="line $2"
	[ "$n" -le 2 ] || where="line ${BASH_LINENO[n - 2]} (in ${FUNCNAME[1]})"
	printf 'FAIL %s: command failed (exit %s) at %s: %s\n' "$IT_NAME" "$1" "$where" "$3"
}
set -o errtrace
trap 'it__on_err $? $LINENO "$BASH_COMMAND"' ERR

# ---- artifacts --------------------------------------------------------------
# ctest passes the paths (integration/CMakeLists.txt); by hand, VEIL_BUILD_DIR
# (default build) is searched.
IT_BUILD=${VEIL_BUILD_DIR:-$IT_SRC/build}
VEIL_CLI=${VEIL_CLI:-$IT_BUILD/tools/veil}
VEIL_PLUGIN=${VEIL_PLUGIN:-$IT_BUILD/plugin/mosquitto_veil.so}
VEIL_PRELOAD=${VEIL_PRELOAD:-$IT_BUILD/client-shim/libveil_preload.so}
VEIL_INTEG=${VEIL_INTEG:-$IT_BUILD/integration/veil-integ}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
VEIL_ASAN_RUNTIME=${VEIL_ASAN_RUNTIME:-}
# Every scenario needs the broker, the plugin and the CLI. A scenario names
# what else it needs (veil-integ, the preload) with it_require_built; whether
# the plugin knows an option is learnt by using it (the broker refuses to
# start on an option it does not know), never by searching the binary.
[ -x "$MOSQUITTO" ] || it_skip "mosquitto not found ($MOSQUITTO): the Debian package mosquitto is not installed"
it_require_built "$VEIL_PLUGIN" "the plugin (mosquitto_veil.so)"
it_require_built "$VEIL_CLI" "the veil CLI"

it_finish() {
	[ "${VEIL_VALGRIND:-0}" = 1 ] && it__valgrind_verdict
	it_fig checks "$IT_CHECKS"
	it_fig failed "$IT_FAILS"
	if [ "$IT_FAILS" -ne 0 ]; then
		it_log "FAILED ($IT_FAILS of $IT_CHECKS checks); work dir kept: $IT_DIR"
		IT_KEEP=1
		exit 1
	fi
	[ "$IT_CHECKS" -gt 0 ] || { it_log "no checks ran"; exit 1; }
	it_log "all $IT_CHECKS checks passed"
	exit 0
}

# ---- temp dir and cleanup ---------------------------------------------------
IT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/veil-$IT_NAME.XXXXXX")
chmod 700 "$IT_DIR"
IT_KEEP=${VEIL_KEEP_TMP:-0}

it_cleanup() {
	local rc=$? p n
	set +e
	trap - ERR
	for p in "${IT_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	for n in "${!IT_BROKER_PID[@]}"; do
		it_broker_stop "$n" >/dev/null 2>&1
	done
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		for n in "${!IT_BROKER_DIR[@]}"; do
			echo "---- broker $n log (tail) ----"
			tail -n 40 "${IT_BROKER_DIR[$n]}/mosquitto.log" 2>/dev/null
		done
		IT_KEEP=1
	fi
	if [ "$IT_KEEP" = 1 ]; then echo "work dir kept: $IT_DIR"; else rm -rf "$IT_DIR"; fi
	exit "$rc"
}
trap it_cleanup EXIT
trap 'exit 130' INT TERM

# Remember a background PID for cleanup.
it_bg() { IT_PIDS+=("$1"); }
# Stop one background helper now (by PID) and wait for it.
it_stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# ---- ports ------------------------------------------------------------------
it_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A TCP port nothing uses, chosen at random so parallel tests differ, below
# the kernel's ephemeral range (an outgoing connection's local port would make
# the broker's bind fail with "Address already in use").
it_free_port() {
	local p i lo
	lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$lo" -gt 11000 ] || lo=32768
	for i in $(seq 1 200); do
		p=$((10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000)))
		if ! it_port_open "$p" && ! ss -Htan "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"; return 0
		fi
	done
	return 1
}
it_wait_port() { it_wait_until "${2:-10}" it_port_open "$1"; }   # PORT BASE_S

# ---- keys, credentials, keyrings (through the real CLI) ---------------------
IT_KEYS=$IT_DIR/keys
mkdir -p "$IT_KEYS"

it_veil() { "$VEIL_CLI" "$@"; }
# it_authority NAME -> $IT_KEYS/NAME.key, NAME.key.pub
it_authority() { it_veil keygen authority -o "$IT_KEYS/$1.key" >/dev/null; }
# it_device AUTH CLIENT_ID [ROLES] [DAYS] -> $IT_KEYS/ID.key, ID.key.pub, ID.cred
it_device() {
	local auth=$1 id=$2 roles=${3:-} days=${4:-30}
	it_veil keygen identity -o "$IT_KEYS/$id.key" >/dev/null
	local args=(credential issue --authority "$IT_KEYS/$auth.key" --device-pub "$IT_KEYS/$id.key.pub"
		--client-id "$id" --days "$days" -o "$IT_KEYS/$id.cred")
	[ -n "$roles" ] && args+=(--roles "$roles")
	it_veil "${args[@]}" >/dev/null
}
it_cred_id() { it_veil credential show "$IT_KEYS/$1.cred" | awk '/^credential id:/ {print $3}'; }
# A fresh MQTT 3.1.1 password (username = client id) for raw clients.
it_password() { it_veil token --identity "$IT_KEYS/$1.key" --credential "$IT_KEYS/$1.cred" --client-id "$1" --password; }
# it_keyring FILE AUTH: starts a keyring trusting AUTH (mode 0600).
it_keyring() {
	local f=$1 auth=$2 pk
	pk=$(awk '/^veil-public-key-v1/ {print $2; exit}' "$IT_KEYS/$auth.key.pub")
	( umask 077; printf 'authority %s\n' "$pk" >"$f" )
}
# it_topic_key FILE FILTER ID [send]: appends a fresh key line.
it_topic_key() {
	local f=$1 filter=$2 id=$3 send=${4:-}
	if [ "$send" = send ]; then it_veil keygen topic-key --filter "$filter" --id "$id" --send >>"$f"
	else it_veil keygen topic-key --filter "$filter" --id "$id" >>"$f"; fi
}

# The fleet of the load and fault scenarios: authority "load", one topic key
# for load/#, an ACL in which each client writes only load/<group>/<its
# client id> (encrypted) and reads load/#. Sets KR and ACL.
it_load_fleet() {
	it_authority load
	KR=$IT_DIR/keyring
	it_keyring "$KR" load
	it_topic_key "$KR" 'load/#' 1 send
	ACL=$IT_DIR/acl
	printf '%s\n' 'pattern write,encrypted load/+/%c' 'pattern read load/#' >"$ACL"
}

# ---- brokers ----------------------------------------------------------------
# it_broker_conf NAME PORT EXTRA: writes DIR/mosquitto.conf. The general
# settings come from the project's mosquitto.conf.sample when it exists (its
# listeners, plugin paths and persistence location are replaced by ours);
# EXTRA (a string, may be empty; %DIR% and %PORT% substituted) follows.
it_broker_conf() {
	local name=$1 port=$2 extra=${3:-} dir
	dir=$IT_DIR/broker-$name
	mkdir -p "$dir"
	local conf=$dir/mosquitto.conf
	{
		echo "# generated by integration/lib.sh for $IT_NAME"
		if [ -f "$IT_SRC/mosquitto.conf.sample" ]; then
			echo "# general settings from mosquitto.conf.sample"
			grep -Ev '^[[:space:]]*(#|$|listener|port|bind_address|socket_domain|plugin|auth_plugin|persistence|persistence_location|persistence_file|autosave|log_dest|log_type|pid_file|user|certfile|keyfile|cafile|require_certificate|password_file|acl_file|allow_anonymous|include_dir|connection |address|topic |remote_|cleansession|bridge_|try_private|notifications|start_type|restart_timeout)' \
				"$IT_SRC/mosquitto.conf.sample" || true
		fi
		echo "per_listener_settings false"
		# Run as whoever runs the test (as root, mosquitto would switch to
		# the "mosquitto" user and could not write the private temp dir).
		echo "user $(id -un)"
		echo "listener $port 127.0.0.1"
		echo "allow_anonymous false"
		echo "log_dest file $dir/mosquitto.log"
		echo "log_type error"
		echo "log_type warning"
		echo "log_type notice"
		echo "log_type information"
		echo "log_type subscribe"   # it_wait_subscribed waits on these lines
		echo "connection_messages true"
		echo "log_timestamp true"
		echo "persistence_location $dir/"
		printf '%s\n' "$extra" | sed -e "s|%DIR%|$dir|g" -e "s|%PORT%|$port|g"
	} >"$conf"
	IT_BROKER_DIR[$name]=$dir
	IT_BROKER_PORT[$name]=$port
	IT_BROKER_CONF[$name]=$conf
}

# it_plugin_conf AUTHORITY_PUB ACL_FILE [more plugin_opt lines...]: the plugin
# block most scenarios use.
it_plugin_conf() {
	local auth=$1 acl=$2; shift 2
	echo "plugin $VEIL_PLUGIN"
	echo "plugin_opt_authority_file $auth"
	[ -n "$acl" ] && echo "plugin_opt_acl_file $acl"
	local l
	for l in "$@"; do echo "$l"; done
}

# VEIL_VALGRIND=1: brokers run under valgrind memcheck; it_finish stops them
# and adds one check per broker: zero errors, nothing definitely lost.
it__valgrind_verdict() {
	local n logs bad leaks
	for n in "${!IT_BROKER_PID[@]}"; do it_broker_stop "$n"; done
	for n in "${!IT_BROKER_DIR[@]}"; do
		logs=$(cat "${IT_BROKER_DIR[$n]}"/valgrind.*.log 2>/dev/null | grep -c 'ERROR SUMMARY' || true)
		bad=$(cat "${IT_BROKER_DIR[$n]}"/valgrind.*.log 2>/dev/null | grep 'ERROR SUMMARY' | grep -vc ': 0 errors' || true)
		leaks=$(cat "${IT_BROKER_DIR[$n]}"/valgrind.*.log 2>/dev/null | grep 'definitely lost:' |
			grep -vc 'definitely lost: 0 bytes' || true)
		it_fig "memcheck_${n}" "logs=$logs,with_errors=$bad,with_definite_leaks=$leaks"
		it_check "broker $n under memcheck: 0 errors, no definite leaks ($logs run(s))" \
			[ "$logs" -gt 0 ] && [ "$bad" -eq 0 ] && [ "$leaks" -eq 0 ]
		[ "$bad" -eq 0 ] && [ "$leaks" -eq 0 ] ||
			grep -h -A12 -E 'Invalid|uninitialised|definitely lost in' "${IT_BROKER_DIR[$n]}"/valgrind.*.log | head -60
	done
}

it__listening_or_gone() { it_port_open "${IT_BROKER_PORT[$1]}" || it__gone "${IT_BROKER_PID[$1]}"; }
it__spawn_broker() {
	local name=$1 dir=${IT_BROKER_DIR[$1]}
	if [ "${VEIL_VALGRIND:-0}" = 1 ]; then
		valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
			--log-file="$dir/valgrind.%p.log" "$MOSQUITTO" -c "${IT_BROKER_CONF[$name]}" >>"$dir/stdout.log" 2>&1 &
	elif [ -n "$VEIL_ASAN_RUNTIME" ]; then
		LD_PRELOAD=$VEIL_ASAN_RUNTIME ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
			"$MOSQUITTO" -c "${IT_BROKER_CONF[$name]}" >>"$dir/stdout.log" 2>&1 &
	else
		"$MOSQUITTO" -c "${IT_BROKER_CONF[$name]}" >>"$dir/stdout.log" 2>&1 &
	fi
	IT_BROKER_PID[$name]=$!
	# Listening, or dead (a config or plugin option it refuses).
	it_wait_until 10 it__listening_or_gone "$name" || true
	it_port_open "${IT_BROKER_PORT[$name]}" && kill -0 "${IT_BROKER_PID[$name]}" 2>/dev/null && return 0
	echo "broker $name did not start; log:" >&2
	tail -n 30 "$dir/mosquitto.log" "$dir/stdout.log" >&2 2>/dev/null || true
	unset "IT_BROKER_PID[$name]"
	return 1
}

# it_broker_start NAME EXTRA [PORT]: config + start; waits for the port.
it_broker_start() {
	local port=${3:-}
	[ -n "$port" ] || port=$(it_free_port)
	it_broker_conf "$1" "$port" "${2:-}"
	it__spawn_broker "$1"
}
it_broker_restart() { it__spawn_broker "$1"; }
it_broker_port() { echo "${IT_BROKER_PORT[$1]}"; }
it_broker_dir() { echo "${IT_BROKER_DIR[$1]}"; }
it_broker_log() { echo "${IT_BROKER_DIR[$1]}/mosquitto.log"; }
it_broker_pid() { echo "${IT_BROKER_PID[$1]:-}"; }
it_broker_alive() { local p=${IT_BROKER_PID[$1]:-}; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
# SIGTERM by PID, wait until it exits (6 s, scaled: under memcheck it writes
# its leak report first), then SIGKILL. Mosquitto saves persistence on SIGTERM.
it_broker_stop() {
	local name=$1 pid=${IT_BROKER_PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	it_wait_exit "$pid" 6 || echo "broker $name (pid $pid) ignored SIGTERM; SIGKILL" >&2
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "IT_BROKER_PID[$name]"
}
# SIGKILL by PID: no clean shutdown, no final persistence save.
it_broker_kill() {
	local name=$1 pid=${IT_BROKER_PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "IT_BROKER_PID[$name]"
}
it_broker_reload() { kill -HUP "${IT_BROKER_PID[$1]}"; }
# Resident set size of the broker in KiB.
it_broker_rss() { awk '/^VmRSS:/ {print $2}' "/proc/${IT_BROKER_PID[$1]}/status"; }
# it_log_count NAME REGEX: lines of the broker log matching REGEX.
it_log_count() { grep -Ec -- "$2" "$(it_broker_log "$1")" || true; }
# it_log_has NAME REGEX, it_log_wait NAME REGEX BASE_S: a broker log line.
it_log_has() { grep -Eq -- "$2" "$(it_broker_log "$1")"; }
it_log_wait() { it_wait_until "${3:-5}" it_log_has "$1" "$2"; }
# it_wait_subscribed NAME CLIENT_ID FILTER [BASE_S]: the broker granted the
# subscription (its "subscribe" log line, written once the subscription is in
# place): from then on every message published on FILTER reaches CLIENT_ID.
it_wait_subscribed() { it_log_wait "$1" ": $(it__re_escape "$2") [0-2] $(it__re_escape "$3")\$" "${4:-10}"; }
it__re_escape() { printf '%s' "$1" | sed 's/[][\\.*^$+?(){}|]/\\&/g'; }

# ---- clients ----------------------------------------------------------------
# it_preload CONFIG CMD...: run an unmodified Paho app under libveil_preload.so
# (with the ASan runtime first in an ASan build). Started with `&`, it execs
# the app in the background subshell, so $! is the app's own PID and
# it_stop_pid stops the app, not just a wrapper shell.
it_preload() {
	local conf=$1; shift
	if [ "$BASHPID" != "$$" ]; then
		VEIL_CONFIG=$conf LD_PRELOAD="${VEIL_ASAN_RUNTIME:+$VEIL_ASAN_RUNTIME }$VEIL_PRELOAD" \
			ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} exec "$@"
	fi
	VEIL_CONFIG=$conf LD_PRELOAD="${VEIL_ASAN_RUNTIME:+$VEIL_ASAN_RUNTIME }$VEIL_PRELOAD" \
		ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} "$@"
}
# it_client_conf FILE CLIENT_ID KEYRING [STATE_DIR]: a libveil/preload client config.
it_client_conf() {
	local f=$1 id=$2 kr=$3 st=${4:-}
	{
		echo "identity $IT_KEYS/$id.key"
		echo "credential $IT_KEYS/$id.cred"
		echo "keyring $kr"
		echo "client_id $id"
		[ -n "$st" ] && echo "state_dir $st"
		echo "log stderr"
	} >"$f"
	chmod 600 "$f"
}
# it_integ ARGS...: the C test client (integration/integ_client.c) for device ID
# with its key files; ARGS are passed through.
it_integ() {
	"$VEIL_INTEG" "$@"
}
# Arguments naming a device's files for veil-integ, and the deadline of each
# single broker reply it waits for (CONNACK, SUBACK, a PUBACK).
it_dev_args() { # ID KEYRING
	echo "--id $1 --identity $IT_KEYS/$1.key --credential $IT_KEYS/$1.cred --keyring $2 --mqtt ${VEIL_IT_MQTT:-5}" \
		"--step-timeout $(it_secs 15)"
}
# The end-of-stream marker: a scenario publishes one message with this prefix
# after everything else; `veil-integ sub --marker` ends only once it has
# arrived, so whatever was going to arrive before it (a late duplicate, an
# attacker's payload) has arrived too, and its absence means something.
# shellcheck disable=SC2034  # used by the scenarios
IT_MARKER='end-marker'

# ---- captures ---------------------------------------------------------------
# it_capture_start FILE PORT...: tcpdump on lo, only the given ports; returns
# once tcpdump is listening.
it_capture_start() {
	local f=$1; shift
	local filter="" p
	for p in "$@"; do filter="${filter:+$filter or }port $p"; done
	IT_CAPTURE_PORT=$1
	tcpdump -i lo -U -s 0 -B 8192 -w "$f" "$filter" >"$f.log" 2>&1 &
	IT_CAPTURE_PID=$!
	it_bg "$IT_CAPTURE_PID"
	it_wait_until 5 grep -q 'listening on' "$f.log"
}
# tcpdump may still be reading queued packets: send one UDP datagram with a
# unique marker to the captured port (nothing listens on UDP there) and stop
# tcpdump (SIGINT, it flushes) once the marker is in the file: every packet
# before it has been written by then.
it_capture_stop() {
	local f=$1 marker
	marker="veil-capture-end-$$-$RANDOM$RANDOM"
	printf '%s' "$marker" >"/dev/udp/127.0.0.1/$IT_CAPTURE_PORT" || true
	local complete=0
	it_wait_until 15 grep -aqF -- "$marker" "$f" || complete=$?
	kill -INT "$IT_CAPTURE_PID" 2>/dev/null || true
	wait "$IT_CAPTURE_PID" 2>/dev/null || true
	it_log "capture: $(grep -h 'captured\|dropped' "$f.log" | tr '\n' ' ')"
	[ "$complete" -eq 0 ] || it_fail "capture incomplete: its end marker was not written within the deadline"
}

# it_file_lacks FILE STRING: true if STRING (bytes) does not occur in FILE.
it_file_lacks() { ! grep -aFq -- "$2" "$1"; }
