#!/usr/bin/env bash
# Veil's main job, end to end, on this machine:
#   - installs missing Debian packages, builds Veil;
#   - creates a key authority, a sensor and a dashboard identity with
#     credentials, a topic key, an ACL and a password for an "auditor";
#   - starts Mosquitto with the Veil plugin on a free 127.0.0.1 port;
#   - the sensor publishes encrypted readings; a plain mosquitto_sub (the
#     auditor, allowed by the ACL to read everything) shows what the broker
#     carries, the Veil dashboard shows what it reads;
#   - a forged plaintext publish with the sensor's own valid login is refused;
#   - stops everything it started (by PID) and removes its files.
# Usage: tools/demo.sh [number-of-readings]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-3}

bash tools/install-deps.sh
echo "== building Veil (build/demo)"
cmake -S "$ROOT" -B build/demo -DVEIL_BUILD_TESTS=OFF -DVEIL_BUILD_BENCH=OFF >/dev/null
cmake --build build/demo -j"$(nproc)" >build/demo.log 2>&1 || { tail -30 build/demo.log; exit 1; }
VEIL=$ROOT/build/demo/tools/veil
PLUGIN=$ROOT/build/demo/plugin/mosquitto_veil.so
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

W=$(mktemp -d "${TMPDIR:-/tmp}/veil-demo.XXXXXX")
chmod 700 "$W"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$W"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_for() { # wait_for SECONDS command...
	local t=$(( $1 * 10 )); shift
	while [ $t -gt 0 ]; do "$@" && return 0; sleep 0.1; t=$((t - 1)); done
	return 1
}

echo "== keys: authority, sensor-1, dashboard, topic key (in $W)"
"$VEIL" keygen authority -o "$W/authority.key" >/dev/null
"$VEIL" keygen identity -o "$W/sensor.key" >/dev/null
"$VEIL" keygen identity -o "$W/dashboard.key" >/dev/null
"$VEIL" credential issue --authority "$W/authority.key" --device-pub "$W/sensor.key.pub" \
	--client-id sensor-1 --roles sensor --days 1 -o "$W/sensor.cred" >/dev/null
"$VEIL" credential issue --authority "$W/authority.key" --device-pub "$W/dashboard.key.pub" \
	--client-id dashboard --roles dashboard --days 1 -o "$W/dashboard.cred" >/dev/null
umask 077
{
	echo "authority $(awk '{print $2}' "$W/authority.key.pub")"
	"$VEIL" keygen topic-key --filter 'factory/#' --id 1 --send
} >"$W/keyring"
# The broker's own files live in B: started as root, mosquitto drops to its
# "mosquitto" user, which must be able to read them (and nothing else here).
B=$W/broker
mkdir -p "$B"
cp "$W/authority.key.pub" "$B/"
printf 'auditor-demo-password\n' | "$VEIL" passwd add "$B/passwd" auditor >/dev/null
cat >"$B/acl" <<'EOF'
# the auditor may read everything under factory/: it sees what the broker sees
user auditor
topic read factory/#

# sensors publish only envelopes from their own identity
role sensor
topic write,encrypted factory/#

role dashboard
topic read factory/#
EOF
PORT=$(free_port)
cat >"$B/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous false
persistence false
log_dest file $B/broker.log
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
listener $PORT 127.0.0.1
plugin $PLUGIN
plugin_opt_authority_file $B/authority.key.pub
plugin_opt_password_file $B/passwd
plugin_opt_acl_file $B/acl
EOF
if [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1; then
	chown -R mosquitto: "$B"
	chmod 711 "$W"   # traverse only: the keys in $W stay unreadable to the broker
fi

echo "== starting mosquitto with the Veil plugin on 127.0.0.1:$PORT"
"$MOSQUITTO" -c "$B/mosquitto.conf" >"$W/mosquitto.out" 2>&1 &
BROKER=$!
PIDS+=("$BROKER")
if ! wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then
	echo "broker did not start:"; cat "$W/mosquitto.out" "$B/broker.log" 2>/dev/null; exit 1
fi

CLIENT=(-h 127.0.0.1 -p "$PORT" --keyring "$W/keyring")
# What the broker carries: a plain client, hex of every payload.
mosquitto_sub -h 127.0.0.1 -p "$PORT" -i auditor -u auditor -P auditor-demo-password \
	-t 'factory/#' -F '%t %x' >"$W/broker_view.txt" 2>"$W/auditor.err" &
PIDS+=($!)
# What the dashboard reads: libveil opens and verifies every envelope.
"$VEIL" sub "${CLIENT[@]}" --identity "$W/dashboard.key" --credential "$W/dashboard.cred" \
	--state-dir "$W/dashboard.state" -t 'factory/#' -v -q 1 >"$W/dashboard_view.txt" 2>"$W/dashboard.err" &
DASH=$!
PIDS+=("$DASH")
# Both subscriptions are in place once the broker has logged them.
wait_for 10 bash -c "[ \$(grep -c ' factory/#' '$B/broker.log') -ge 2 ]" ||
	{ echo "subscribers did not come up:"; cat "$W/auditor.err" "$W/dashboard.err"; exit 1; }

echo "== sensor-1 publishes $N readings (sealed by libveil)"
for i in $(seq 1 "$N"); do
	temp="2$i.$((i * 3 % 10))C"
	"$VEIL" pub "${CLIENT[@]}" --identity "$W/sensor.key" --credential "$W/sensor.cred" \
		--state-dir "$W/sensor.state" -q 1 -t "factory/line1/temp" -m "temperature $temp"
	PLAIN[$i]="temperature $temp"
done

echo "== attack: sensor-1's own valid login publishes PLAINTEXT on the protected topic"
FORGED="temperature 99.9C (forged)"
PW=$("$VEIL" token --identity "$W/sensor.key" --credential "$W/sensor.cred" --client-id sensor-1 --password)
ATTACK_OUT=$(mosquitto_pub -h 127.0.0.1 -p "$PORT" -V mqttv5 -q 1 -i sensor-1 -u sensor-1 -P "$PW" \
	-t factory/line1/temp -m "$FORGED" 2>&1 || true)

wait_for 15 bash -c "[ \$(wc -l <'$W/dashboard_view.txt') -ge $N ]" || true
wait_for 5 bash -c "[ \$(wc -l <'$W/broker_view.txt') -ge $N ]" || true
sleep 0.5

echo
printf '%-20s | %-52s | %s\n' "topic" "what the BROKER sees (hex payload)" "what the DASHBOARD reads"
printf '%s\n' "---------------------+------------------------------------------------------+---------------------------"
i=0
paste -d '\t' <(cut -d' ' -f2- "$W/broker_view.txt") <(cut -d' ' -f2- "$W/dashboard_view.txt") |
while IFS=$'\t' read -r hex plain; do
	i=$((i + 1))
	len=$(( ${#hex} / 2 ))
	printf '%-20s | %-52s | %s\n' "factory/line1/temp" "${hex:0:16}...${hex: -24} (${len} B)" "${plain:-<nothing>}"
done
echo
FIRST=$(head -1 "$W/broker_view.txt" | cut -d' ' -f2)
echo "== one envelope, decoded without any key (veil inspect):"
"$VEIL" inspect --hex "$FIRST" | sed 's/^/   /'
echo
echo "== the forged plaintext publish:"
echo "   mosquitto_pub said:  ${ATTACK_OUT:-<nothing>}"
echo "   broker audit log:    $(grep -m1 'veil: acl | refuse' "$B/broker.log" | sed 's/^[0-9]*: //')"
if grep -q "99.9C" "$W/dashboard_view.txt" "$W/broker_view.txt"; then
	echo "   RESULT: the forged message was DELIVERED (this is a bug)"; exit 1
fi
echo "   delivered to anyone: no"

# Verdict from what really happened, not from what we expected.
ok=1
for i in $(seq 1 "$N"); do
	grep -qF "${PLAIN[$i]}" "$W/dashboard_view.txt" || { echo "dashboard did not read: ${PLAIN[$i]}"; ok=0; }
	hexplain=$(printf '%s' "${PLAIN[$i]}" | od -An -tx1 | tr -d ' \n')
	grep -qi "$hexplain" "$W/broker_view.txt" && { echo "broker saw plaintext of: ${PLAIN[$i]}"; ok=0; }
done
[ "$(wc -l <"$W/broker_view.txt")" -ge "$N" ] || { echo "the auditor saw fewer than $N messages"; ok=0; }
echo
if [ $ok = 1 ]; then
	echo "Veil demo: the broker carried only envelopes; the dashboard read all $N readings; forgery refused."
else
	echo "Veil demo FAILED (see above). Broker log:"; tail -20 "$B/broker.log"; exit 1
fi
