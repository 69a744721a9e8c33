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
CACHE=${VEIL_COMPOSE_CACHE:-/var/cache/veil-compose}
export VEIL_MESSAGES=${VEIL_MESSAGES:-20}
T0=$(date +%s)
FAILS=0; CHECKS=0
say() { printf '[compose %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
check() { local what=$1; shift; CHECKS=$((CHECKS + 1))
	if "$@"; then echo "PASS compose: $what"; else echo "FAIL compose: $what"; FAILS=$((FAILS + 1)); fi; }
# until_ok SECONDS CMD...: re-checks CMD every 0.1 s until it succeeds or the
# deadline; nothing here waits a fixed time for an event.
until_ok() { local end=$((SECONDS + $1)); shift; until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }

[ "$(id -u)" -eq 0 ] || { echo "run.sh needs root (dockerd, debootstrap)" >&2; exit 2; }

# ---- packages ----
missing=()
for p in docker.io docker-compose debootstrap; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
DOCKER=/usr/bin/docker
COMPOSE=/usr/bin/docker-compose

# ---- our own dockerd ----
RUN=/run/veil-compose
mkdir -p "$RUN" "$CACHE/docker"
export DOCKER_HOST=unix://$RUN/docker.sock
WORK=$(mktemp -d /tmp/veil-compose.XXXXXX)
DOCKERD_PID=""
cleanup() {
	local rc=$?
	set +e
	if [ -n "${PROJECT:-}" ]; then
		(cd "$HERE" && $COMPOSE -p "$PROJECT" logs --no-color >"$WORK/compose.log" 2>&1
		 $COMPOSE -p "$PROJECT" down --remove-orphans >/dev/null 2>&1)
	fi
	if [ -n "$DOCKERD_PID" ]; then
		kill -TERM "$DOCKERD_PID" 2>/dev/null
		until_ok 10 bash -c "! kill -0 $DOCKERD_PID 2>/dev/null"
		kill -KILL "$DOCKERD_PID" 2>/dev/null
	fi
	if [ "$rc" -ne 0 ] || [ "${VEIL_KEEP:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! $DOCKER info >/dev/null 2>&1; then
	say "starting dockerd (socket $RUN/docker.sock, data $CACHE/docker)"
	dockerd --iptables=false --bridge=none -H "$DOCKER_HOST" --data-root "$CACHE/docker" \
		--exec-root "$RUN/exec" --pidfile "$RUN/docker.pid" >"$WORK/dockerd.log" 2>&1 &
	DOCKERD_PID=$!
	until_ok 20 $DOCKER info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log"; exit 1; }
fi

# ---- base image (no registry needed) ----
if ! $DOCKER image inspect debian:bookworm-slim >/dev/null 2>&1; then
	if [ ! -d "$CACHE/rootfs" ]; then
		say "debootstrap bookworm (cached in $CACHE/rootfs)"
		rm -rf "$CACHE/rootfs.tmp"
		debootstrap --variant=minbase bookworm "$CACHE/rootfs.tmp" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
			|| { tail -20 "$WORK/debootstrap.log"; exit 1; }
		mv "$CACHE/rootfs.tmp" "$CACHE/rootfs"
	fi
	say "importing debian:bookworm-slim"
	tar -C "$CACHE/rootfs" -c . | $DOCKER import - debian:bookworm-slim >/dev/null
fi

# ---- images ----
say "staging the source tree"
mkdir -p "$WORK/ctx/src"
cp "$HERE/Dockerfile.build" "$WORK/ctx/"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$ROOT" && git ls-files -z | tar --null -T - -c) | tar -x -C "$WORK/ctx/src"
else
	tar -C "$ROOT" --exclude='./build*' --exclude='./.git' -c . | tar -x -C "$WORK/ctx/src"
fi
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
echo "FIGURE compose checks=$CHECKS failed=$FAILS"
[ "$FAILS" -eq 0 ] || { say "FAILED ($FAILS of $CHECKS)"; exit 1; }
say "all $CHECKS checks passed in ${WALL}s"
