#!/usr/bin/env bash
# docker-compose suite: the Veil fleet as containers on one machine.
#   broker        Debian's Mosquitto 2.0.11 + the Veil plugin
#   sensor-1/2    libveil devices (encrypted readings, signed alerts)
#   paho-sensor   Debian's unmodified paho_c_pub under libveil_preload.so
#   dashboard     libveil: every message opened once, in order, none refused
#   paho-dashboard Debian's unmodified paho_c_sub under the preload
#   attacker      valid login, no key, tcpdump: must learn and achieve nothing
# One command, exits non-zero on any failed check. Needs root and Debian 12;
# installs docker.io, docker-compose and debootstrap if missing, runs its own
# dockerd (own socket and data root, stopped by PID at the end) and builds a
# local debian:bookworm-slim from debootstrap (cached in $VEIL_COMPOSE_CACHE).
# Knobs: VEIL_MESSAGES (20 per sensor), VEIL_COMPOSE_CACHE
# (/var/cache/veil-compose), VEIL_KEEP=1 keeps the work dir.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
IT_NAME=compose
# shellcheck source=../docker.sh
. "$ROOT/integration/docker.sh"
export VEIL_MESSAGES=${VEIL_MESSAGES:-20}
T0=$(date +%s)
say() { dk_say "$@"; }
check() { it_check "$@"; }
until_ok() { it_wait_until "$@"; }

[ "$(id -u)" -eq 0 ] || { echo "run.sh needs root (dockerd, debootstrap)" >&2; exit 2; }

dk_need_packages docker.io docker-compose debootstrap
COMPOSE=/usr/bin/docker-compose

WORK=$(mktemp -d /tmp/veil-compose.XXXXXX)
cleanup() {
	local rc=$?
	set +e
	if [ -n "${PROJECT:-}" ]; then
		(cd "$HERE" && $COMPOSE -p "$PROJECT" logs --no-color >"$WORK/compose.log" 2>&1
		 $COMPOSE -p "$PROJECT" down --remove-orphans >/dev/null 2>&1)
	fi
	dk_finish "$rc" "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
dk_start "$WORK"
dk_base_image "$WORK"

# ---- images ----
say "staging the source tree"
mkdir -p "$WORK/ctx"
cp "$HERE/Dockerfile.build" "$WORK/ctx/"
dk_stage_tree "$ROOT" "$WORK/ctx/src"
say "building veil-build (compiles Veil inside debian:bookworm-slim)"
$DOCKER build -q --network host -t veil-build:latest -f "$WORK/ctx/Dockerfile.build" "$WORK/ctx" >"$WORK/build.log" 2>&1 \
	|| { tail -40 "$WORK/build.log"; exit 1; }
cd "$HERE"
PROJECT=veil$$
export VEIL_WORK=$WORK/veil
mkdir -p "$VEIL_WORK"
# A free port on the host (all services share the host network), below the
# ephemeral range so no outgoing connection can hold it.
while :; do
	VEIL_PORT=$((10000 + RANDOM % 20000))
	(exec 3<>"/dev/tcp/127.0.0.1/$VEIL_PORT") 2>/dev/null && continue
	ss -Htan "sport = :$VEIL_PORT" 2>/dev/null | grep -q . || break
done
export VEIL_PORT
say "building broker, device and attacker images"
$COMPOSE -p "$PROJECT" build broker provision >"$WORK/compose-build.log" 2>&1 || { tail -40 "$WORK/compose-build.log"; exit 1; }
$COMPOSE -p "$PROJECT" build attacker >>"$WORK/compose-build.log" 2>&1 || { tail -40 "$WORK/compose-build.log"; exit 1; }
T_BUILD=$(( $(date +%s) - T0 ))

# ---- the suite ----
$COMPOSE -p "$PROJECT" run --rm provision
$COMPOSE -p "$PROJECT" up -d broker 2>/dev/null
check "broker container listening on 127.0.0.1:$VEIL_PORT" until_ok 10 bash -c "(exec 3<>/dev/tcp/127.0.0.1/$VEIL_PORT) 2>/dev/null" \
	|| { tail -20 "$VEIL_WORK/broker/mosquitto.log"; exit 1; }
$COMPOSE -p "$PROJECT" up -d dashboard paho-dashboard attacker 2>/dev/null
R=$VEIL_WORK/run
BLOG=$VEIL_WORK/broker/mosquitto.log
# The broker's "subscribe" log line (log_type all): the subscription is in place.
subscribed() { grep -qE ": $1 [0-2] fleet/#\$" "$BLOG" 2>/dev/null; }
all_subscribed() { [ -e "$R/dashboard.ready" ] && subscribed paho-dashboard && subscribed attacker; }
check "dashboard, paho-dashboard and attacker subscribed" until_ok 60 all_subscribed
for s in sensor-1 sensor-2 paho-sensor; do
	check "$s container published" timeout 120 $COMPOSE -p "$PROJECT" run --rm "$s"
done
cid() { $COMPOSE -p "$PROJECT" ps -q "$1"; }
rc_att=$(timeout 240 $DOCKER wait "$(cid attacker)" || echo 124)
# After the attacker: the end marker. Whatever the attacker got through would
# reach the dashboards before it.
check "end marker published" timeout 120 $COMPOSE -p "$PROJECT" run --rm sensor-1 bash /scripts/sensor.sh sensor-1 marker
rc_dash=$(timeout 240 $DOCKER wait "$(cid dashboard)" || echo 124)
$DOCKER logs "$(cid dashboard)" >"$WORK/dashboard.log" 2>&1
$DOCKER logs "$(cid attacker)" >"$WORK/attacker.log" 2>&1
N=$VEIL_MESSAGES
check "unmodified paho_c_sub (preload) printed the end marker" \
	until_ok 60 grep -q 'COMPOSEMARKER-0' "$R/paho-dashboard.out"
$COMPOSE -p "$PROJECT" stop paho-dashboard >/dev/null 2>&1

grep '^sub:' "$WORK/dashboard.log" | sed 's/^/  dashboard /'
grep -E '^(PASS|FAIL)' "$WORK/attacker.log" | sed 's/^/  /'
check "libveil dashboard: all $((3 * N + 2)) messages opened once, in order, none refused" [ "$rc_dash" -eq 0 ]
check "dashboard saw signed alerts" bash -c "[ \$(grep -c 'alert len=[0-9]* signed=1' '$WORK/dashboard.log') -eq 2 ]"
check "dashboard read the preloaded paho_c_pub's messages" bash -c "[ \$(grep -c 'payload=COMPOSESECRETpaho-' '$WORK/dashboard.log') -eq $N ]"
got=$(grep -c COMPOSESECRET "$R/paho-dashboard.out" 2>/dev/null || echo 0)
check "unmodified paho_c_sub (preload) printed all $((3 * N + 2)) plaintexts ($got)" [ "$got" -eq $((3 * N + 2)) ]
check "paho_c_sub printed no attacker payload" bash -c "! grep -q COMPOSEATTACK '$R/paho-dashboard.out'"
check "attacker container: every attack failed" [ "$rc_att" -eq 0 ]
check "broker refused the attacker's publishes (audit lines)" bash -c "[ \$(grep -c 'veil: acl | \(refuse\|deny\) | client=attacker' '$BLOG') -ge 3 ]"
check "broker persistence holds no plaintext" bash -c "$COMPOSE -p $PROJECT stop broker >/dev/null 2>&1; [ -s '$VEIL_WORK/broker/mosquitto.db' ] && ! grep -aq COMPOSESECRET '$VEIL_WORK/broker/mosquitto.db'"
WALL=$(( $(date +%s) - T0 ))
echo "FIGURE compose build_seconds=$T_BUILD"
echo "FIGURE compose wall_seconds=$WALL"
echo "FIGURE compose checks=$IT_CHECKS failed=$IT_FAILS"
[ "$IT_FAILS" -eq 0 ] || { say "FAILED ($IT_FAILS of $IT_CHECKS)"; exit 1; }
say "all $IT_CHECKS checks passed in ${WALL}s"
