#!/usr/bin/env bash
# docker-compose suite: the Veil fleet as containers on one machine.
#   broker        Debian's Mosquitto 2.0.11 + the Veil plugin
#   keyd          veil-keyd: every device's topic keys, over MQTT (no keyring
#                 file anywhere; devices hold identity, credential, authority)
#   sensor-1/2    libveil devices (encrypted readings, signed alerts)
#   paho-sensor   Debian's unmodified paho_c_pub under libveil_preload.so
#   dashboard     libveil: every message opened once, in order, none refused
#   paho-dashboard Debian's unmodified paho_c_sub under the preload
#   attacker      valid login that reads every sensor topic, entitled to no
#                 key by keyd, tcpdump: must learn and achieve nothing
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
# The containers scale their own deadlines by the same factor (/checks.sh).
export VEIL_TEST_TIME_FACTOR=$IT_TIME_FACTOR
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
	say "stopping the containers and dockerd"
	if [ -n "${PROJECT:-}" ]; then
		(cd "$HERE" && $COMPOSE -p "$PROJECT" logs --no-color >"$WORK/compose.log" 2>&1
		 $COMPOSE -p "$PROJECT" down --remove-orphans >/dev/null 2>&1)
	fi
	if [ -n "${CPROJECT:-}" ]; then
		(cd "$HERE" && $COMPOSE -f docker-compose.cluster.yml -p "$CPROJECT" logs --no-color >"$WORK/compose-cluster.log" 2>&1
		 $COMPOSE -f docker-compose.cluster.yml -p "$CPROJECT" down --remove-orphans >/dev/null 2>&1)
	fi
	say "containers removed"
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
say "building broker, device, keyd and attacker images"
$COMPOSE -p "$PROJECT" build broker provision >"$WORK/compose-build.log" 2>&1 || { tail -40 "$WORK/compose-build.log"; exit 1; }
$COMPOSE -p "$PROJECT" build keyd attacker >>"$WORK/compose-build.log" 2>&1 || { tail -40 "$WORK/compose-build.log"; exit 1; }
T_BUILD=$(( $(date +%s) - T0 ))

# ---- the suite ----
$COMPOSE -p "$PROJECT" run --rm provision
$COMPOSE -p "$PROJECT" up -d broker 2>/dev/null
check "broker container listening on 127.0.0.1:$VEIL_PORT" until_ok 10 bash -c "(exec 3<>/dev/tcp/127.0.0.1/$VEIL_PORT) 2>/dev/null" \
	|| { tail -20 "$VEIL_WORK/broker/mosquitto.log"; exit 1; }
KLOG=$VEIL_WORK/keyd/keyd.log
$COMPOSE -p "$PROJECT" up -d keyd 2>/dev/null
check "keyd container logged in and subscribed to the requests" until_ok 20 grep -q 'mqtt | subscribed' "$KLOG" \
	|| { tail -20 "$KLOG"; exit 1; }
$COMPOSE -p "$PROJECT" up -d dashboard paho-dashboard attacker 2>/dev/null
R=$VEIL_WORK/run
BLOG=$VEIL_WORK/broker/mosquitto.log
# The broker's "subscribe" log line (log_type all): the subscription is in
# place (the attacker's last filter: all of its filters are).
subscribed() { grep -qE ": $1 [0-2] $2\$" "$BLOG" 2>/dev/null; }
all_subscribed() { [ -e "$R/dashboard.ready" ] && subscribed paho-dashboard 'fleet/#' && subscribed attacker fleet/sensor-2/alert; }
check "dashboard, paho-dashboard and attacker subscribed" until_ok 60 all_subscribed
for s in sensor-1 sensor-2 paho-sensor; do
	check "$s container published" timeout "$(it_secs 120)" $COMPOSE -p "$PROJECT" run --rm "$s"
done
cid() { $COMPOSE -p "$PROJECT" ps -q "$1"; }
rc_att=$(timeout "$(it_secs 240)" $DOCKER wait "$(cid attacker)" || echo 124)
# After the attacker: the end marker. Whatever the attacker got through would
# reach the dashboards before it.
check "end marker published" timeout "$(it_secs 120)" $COMPOSE -p "$PROJECT" run --rm sensor-1 bash /scripts/sensor.sh sensor-1 marker
rc_dash=$(timeout "$(it_secs 240)" $DOCKER wait "$(cid dashboard)" || echo 124)
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
# keyd's keys, and only keyd's: no keyring in any image a device runs from
# nor in the shared /veil (no file holding a topic key line, whatever its
# name; the search is first shown to find the line `veil keygen topic-key`
# writes), no keyring line in a device config, every envelope the spy
# received under a key id of keyd's range (>= 0x80000000), each device's own
# bundle from keyd (its audit line), none for the spy.
no_keyring='
	re="^key [^ ]+ [0-9]+ [A-Za-z0-9+/]{43}="
	veil keygen topic-key --filter probe/# --id 1 | grep -qE "$re" || { echo "probe line not matched"; exit 1; }
	! grep -rlIE --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev "$re" / 2>/dev/null \
	&& ! grep -lE "^[[:space:]]*keyring" /veil/keys/*.conf'
for img in veil-device veil-attacker; do
	check "no keyring in the $img container (image and /veil)" \
		$DOCKER run --rm --network none -v "$VEIL_WORK:/veil:ro" "$img:latest" bash -c "$no_keyring"
done
kids=$(grep -E '^fleet/' "$R/attacker-spy.out" | awk '{ print substr($2, 5, 8) }' | sort -u | tr '\n' ' ')
say "key ids in the spy's envelopes: $kids"
check "every envelope sealed under a keyd key id (>= 0x80000000): $kids" \
	bash -c "[ -n '$kids' ] && ! grep -E '^fleet/' '$R/attacker-spy.out' | awk '{ print substr(\$2, 5, 1) }' | grep -qv '[89a-f]'"
grants() { sed -n "s/.*bundle | issue | client=$1 .* grants=\([0-9]*\).*/\1/p" "$KLOG" | sort -n | tail -1; }
for d in sensor-1 sensor-2 paho-sensor; do
	check "$d got both scopes' keys from keyd, by its write rights ($(grants "$d") grants)" [ "$(grants "$d")" -eq 2 ]
done
for d in dashboard paho-dashboard; do
	check "$d got both scopes' keys from keyd ($(grants "$d") grants)" [ "$(grants "$d")" -eq 2 ]
done
check "keyd's bundle to the attacker granted nothing (grants=$(grants attacker))" [ "$(grants attacker)" = 0 ]
$DOCKER run --rm --network none -v "$VEIL_WORK:/veil" veil-keyd:latest veil keys --db /veil/keyd/keyd.db status 2>&1 | sed 's/^/  keys status: /' || true
check "broker persistence holds no plaintext" bash -c "$COMPOSE -p $PROJECT stop broker >/dev/null 2>&1; [ -s '$VEIL_WORK/broker/mosquitto.db' ] && ! grep -aq COMPOSESECRET '$VEIL_WORK/broker/mosquitto.db'"
T_SINGLE=$(( $(date +%s) - T0 ))
$COMPOSE -p "$PROJECT" logs --no-color >"$WORK/compose.log" 2>&1 || true
$COMPOSE -p "$PROJECT" down --remove-orphans >/dev/null 2>&1 || true
CPROJECT=${PROJECT}cl PROJECT=""   # done with: the EXIT trap leaves it alone

# ---- the deployment: docker-compose.cluster.yml ----
# Three nodes (b and c bridged to the hub a), HAProxy sticky per client id,
# keyd through HAProxy, six key-service devices exchanging sealed QoS 1
# messages across the bridges: 0 lost. The material and configs are the
# in-process scenario's (integration/cluster/cluster.sh), made in a container.
T1=$(date +%s)
CF=(-f docker-compose.cluster.yml -p "$CPROJECT")
DEVS=(dev-1 dev-2 dev-3 dev-4 dev-5 dev-6)
export CLUSTER_DEVS="${DEVS[*]}" VEIL_CL=/veil/unset
say "building the cluster image (mosquitto, haproxy, keyd, devices)"
$COMPOSE "${CF[@]}" build provision >>"$WORK/compose-build.log" 2>&1 || { tail -40 "$WORK/compose-build.log"; exit 1; }
T_CBUILD=$(( $(date +%s) - T1 ))
$COMPOSE "${CF[@]}" run --rm provision
# shellcheck disable=SC1091
. "$VEIL_WORK/cluster.env"
export VEIL_CL=$CL
H=$VEIL_WORK/${CL#/veil/}   # the same directory, seen from the host
nlog() { echo "$H/broker-$1/mosquitto.log"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
bridged() { grep -Eq "New bridge connected from .* as node-$2" "$(nlog "$1")" 2>/dev/null; }
# The hub verifies one bridge login (Argon2id) at a time within its budget
# (cluster.sh, cl_wait_budget): c starts once the second after b's login is over.
second_over() { [ "$(date +%s)" -ge $(( $1 + 2 )) ]; }
$COMPOSE "${CF[@]}" up -d node-a 2>/dev/null
check "cluster node a (hub) listening on :$PORT_A" until_ok 10 port_open "$PORT_A" || { tail -20 "$(nlog a)"; exit 1; }
$COMPOSE "${CF[@]}" up -d node-b 2>/dev/null
check "node b's bridge logged in to the hub" until_ok 15 bridged a b
t=$(grep -E 'auth \| accept \| client=node-b ' "$(nlog a)" | tail -n 1 | cut -d: -f1)
[ -z "$t" ] || until_ok 5 second_over "$t"
$COMPOSE "${CF[@]}" up -d node-c 2>/dev/null
check "node c's bridge logged in to the hub" until_ok 15 bridged a c
$COMPOSE "${CF[@]}" up -d haproxy 2>/dev/null
check "HAProxy listening on :$PORT_H" until_ok 10 port_open "$PORT_H" || { tail -20 "$H/haproxy.log"; exit 1; }
$COMPOSE "${CF[@]}" up -d keyd 2>/dev/null
check "keyd logged in through HAProxy" until_ok 20 grep -q 'mqtt | subscribed' "$H/keyd/keyd.log"
C=$H/ctl O=$H/out
phase() { printf '%s\n' "$1" >"$C/phase.tmp"; mv "$C/phase.tmp" "$C/phase"; }
status() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" "$O/$1.status" 2>/dev/null; }
ready() { [ "$(status "$1" connected)" = 1 ] && [ "$(status "$1" subscribed)" = 1 ]; }
all_ready() { local d; for d in "${DEVS[@]}"; do ready "$d" || return 1; done; }
acked_10() { local d; for d in "${DEVS[@]}"; do [ "$(status "$d" acked)" -ge 10 ] 2>/dev/null || return 1; done; }
node_of() { awk -v c="client=$1" '$2 == c { n = $3 } END { sub(/^node=/, "", n); print n }' "$H/haproxy.log"; }
$COMPOSE "${CF[@]}" up -d "${DEVS[@]}" 2>/dev/null
check "${#DEVS[@]} device containers logged in through HAProxy, keyd's keys applied, subscribed" until_ok 60 all_ready
declare -A ON
for d in "${DEVS[@]}"; do ON[$d]=$(node_of "$d"); done
say "placement: $(for d in "${DEVS[@]}"; do printf '%s=%s ' "$d" "${ON[$d]}"; done)keyd=$(node_of veil-keyd)"
check "keyd's connection went through HAProxy (to node $(node_of veil-keyd))" [ -n "$(node_of veil-keyd)" ]
for n in a b c; do
	check "node $n serves at least one device" bash -c "printf '%s\n' ${ON[*]} | grep -qx $n"
done
phase base
check "every device had 10 sealed QoS 1 messages acknowledged" until_ok 60 acked_10
phase end
for d in "${DEVS[@]}"; do
	rc=$(timeout "$(it_secs 90)" $DOCKER wait "$($COMPOSE "${CF[@]}" ps -q "$d")" || echo 124)
	check "$d finished: it holds every other device's end marker" [ "$rc" -eq 0 ]
done
# Lost: a message a publisher's node acknowledged (its .acked) that another
# device never opened (its .recv), over every (receiver, publisher) pair.
lost=0 total=0
for p in "${DEVS[@]}"; do
	total=$(( total + $(grep -c ' base ' "$O/$p.acked" || true) ))
	for r in "${DEVS[@]}"; do
		[ "$r" = "$p" ] && continue
		lost=$(( lost + $(awk -v p="$p" 'FILENAME == ARGV[1] { if ($2 == "base") want[$1 " " $3] = 1; next }
			$1 == p && $3 == "base" { delete want[$2 " " $4] } END { print length(want) }' "$O/$p.acked" "$O/$r.recv") ))
	done
done
echo "FIGURE compose cluster_messages=$total"
check "devices on 3 nodes: $total sealed QoS 1 messages, each opened by the 5 others across the bridges, $lost lost" \
	[ "$total" -ge $(( 10 * ${#DEVS[@]} )) ] && [ "$lost" -eq 0 ]
bad=$(cat "$O"/*.refused 2>/dev/null | awk '{ n += $2 } END { print n + 0 }')
check "receivers refused nothing ($bad)" [ "$bad" -eq 0 ]
keyd_key() { local k; k=$(status "$1" rx_key); [ $(( k )) -ge $(( 0x80000000 )) ]; }
for d in "${DEVS[@]}"; do
	check "$d opened under keyd's key $(status "$d" rx_key)" keyd_key "$d"
done
check "no keyring file in the deployment (configs name none)" bash -c "! grep -l '^[[:space:]]*keyring' '$H'/dev/*.conf && ! find '$H' -iname '*keyring*' | grep ."
T_CLUSTER=$(( $(date +%s) - T1 ))
# keyd first, while its node still answers (its MQTT DISCONNECT), then the rest.
$COMPOSE "${CF[@]}" stop keyd >/dev/null 2>&1
$COMPOSE "${CF[@]}" stop haproxy node-c node-b node-a >/dev/null 2>&1

WALL=$(( $(date +%s) - T0 ))
echo "FIGURE compose single_seconds=$T_SINGLE"
echo "FIGURE compose cluster_build_seconds=$T_CBUILD"
echo "FIGURE compose cluster_seconds=$T_CLUSTER"
echo "FIGURE compose build_seconds=$T_BUILD"
echo "FIGURE compose wall_seconds=$WALL"
echo "FIGURE compose checks=$IT_CHECKS failed=$IT_FAILS"
[ "$IT_FAILS" -eq 0 ] || { say "FAILED ($IT_FAILS of $IT_CHECKS)"; exit 1; }
say "all $IT_CHECKS checks passed in ${WALL}s"
