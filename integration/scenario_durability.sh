#!/usr/bin/env bash
# Scenario 5, durability: QoS 1 persistent sessions. The dashboard creates a
# persistent session and goes offline; the sensor publishes; the broker (with
# persistence) is restarted; the sensor's keyring rotates to a new topic key
# in the middle of the stream and it publishes the rest. When the dashboard
# reconnects every message arrives exactly once, opened, in order, and the
# second half under the new key.
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_INTEG" "veil-integ (libveil)"

N=${VEIL_DURABILITY_MESSAGES:-200}
H=$((N / 2))
it_authority fleet
it_device fleet sensor-1 sensor
it_device fleet dashboard dashboard
K1=$(it_veil keygen topic-key --filter 'fleet/#' --id 1)
K3=$(it_veil keygen topic-key --filter 'fleet/#' --id 3)
KR_S=$IT_DIR/sensor.keyring
KR_D=$IT_DIR/dashboard.keyring
it_keyring "$KR_S" fleet; echo "$K1 send" >>"$KR_S"
it_keyring "$KR_D" fleet; printf '%s\n%s\n' "$K1" "$K3" >>"$KR_D"   # receivers learn the new key first
mkdir -m 700 "$IT_DIR/state-sensor" "$IT_DIR/state-dash"
ACL=$IT_DIR/acl
cat >"$ACL" <<ACL_EOF
pattern write,encrypted fleet/%c/#
# A user rule, not a role: the plugin knows roles only of connected clients,
# and queueing for an offline session is checked while it is offline
# (scenario_offline_role.sh covers that case on its own).
user dashboard
topic read fleet/#
ACL_EOF
it_broker_start main "$(it_plugin_conf "$IT_KEYS/fleet.key.pub" "$ACL")
persistence true
autosave_interval 3600
max_queued_messages 100000"
URI=tcp://127.0.0.1:$(it_broker_port main)
DASH_ARGS="$(it_dev_args dashboard "$KR_D") --state-dir $IT_DIR/state-dash --persistent --filter fleet/#"

# shellcheck disable=SC2086
it_check "dashboard persistent session created, then offline" it_integ sub --uri "$URI" $DASH_ARGS --subscribe-only
# shellcheck disable=SC2046
it_check "first half ($H) published with key 1 while the dashboard is offline" it_integ pub --uri "$URI" \
	$(it_dev_args sensor-1 "$KR_S") --state-dir "$IT_DIR/state-sensor" --topic fleet/sensor-1/temp --count "$H" --prefix r
it_broker_stop main
it_check "broker saved its database" test -s "$(it_broker_dir main)/mosquitto.db"
it_check "broker restarted with persistence" it_broker_restart main
# Rotation: the sensor's keyring now seals with key 3; key 1 stays for receiving.
it_keyring "$KR_S.new" fleet; printf '%s\n%s send\n' "$K1" "$K3" >>"$KR_S.new"; mv "$KR_S.new" "$KR_S"
# shellcheck disable=SC2046
it_check "second half ($((N - H))) published with key 3 after the rotation" it_integ pub --uri "$URI" \
	$(it_dev_args sensor-1 "$KR_S") --state-dir "$IT_DIR/state-sensor" --topic fleet/sensor-1/temp \
	--count $((N - H)) --start "$H" --prefix r
# Queued behind everything else in the offline session.
# shellcheck disable=SC2046
it_check "end marker published" it_integ pub --uri "$URI" $(it_dev_args sensor-1 "$KR_S") \
	--state-dir "$IT_DIR/state-sensor" --topic fleet/sensor-1/temp --count 1 --prefix "$IT_MARKER"
# shellcheck disable=SC2086
it_integ sub --uri "$URI" $DASH_ARGS --resume --expect "$N" --marker "$IT_MARKER" --timeout "$(it_secs 60)" --print \
	>"$IT_DIR/dash.out" 2>"$IT_DIR/dash.err" && rc=0 || rc=$?
summary=$(grep '^sub:' "$IT_DIR/dash.out" || true)
echo "  dashboard $summary"
it_check "every message arrived once, opened, in order, none refused (then the end marker)" [ "$rc" -eq 0 ]
k1=$(grep -c '^msg .* key=1 ' "$IT_DIR/dash.out" || true)
k3=$(grep -c '^msg .* key=3 ' "$IT_DIR/dash.out" || true)
it_fig delivered_key1 "$k1"; it_fig delivered_key3 "$k3"
it_check "first half under key 1, second under key 3 (rotation lost nothing)" \
	bash -c "[ '$k1' -eq '$H' ] && [ '$k3' -eq '$((N - H))' ]"
it_check "first message is r-0, last is r-$((N - 1))" bash -c \
	"grep '^msg' '$IT_DIR/dash.out' | head -1 | grep -q 'payload=r-0\$' && grep '^msg' '$IT_DIR/dash.out' | tail -1 | grep -q 'payload=r-$((N - 1))\$'"
it_check "sensor sequence state persisted" test -s "$IT_DIR/state-sensor/seq"
it_fig messages "$N"
it_finish
