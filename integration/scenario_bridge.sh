#!/usr/bin/env bash
# Scenario 6, bridge: two brokers, each with the Veil plugin, joined by a
# Mosquitto bridge (broker B subscribes to fleet/# on broker A, logging in to
# A's plugin with an Argon2id password-file account). Sensors publish on A,
# the dashboard reads on B: the envelopes cross the bridge unchanged and open
# at the far side. Neither broker can read them: both persistence files and
# the capture of both ports hold no plaintext.
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_INTEG" "veil-integ (libveil)"
it_require_sys tcpdump tcpdump

N=${VEIL_BRIDGE_MESSAGES:-50}
SECRET=BRIDGESECRETreading
it_authority fleet
for d in sensor-1 sensor-2; do it_device fleet "$d" sensor; done
it_device fleet dashboard dashboard
KR=$IT_DIR/keyring
it_keyring "$KR" fleet
it_topic_key "$KR" 'fleet/#' 1 send
BRIDGE_PW=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$BRIDGE_PW" | it_veil passwd add "$IT_DIR/passwd-a" bridge-b >/dev/null
cat >"$IT_DIR/acl-a" <<ACL_EOF
pattern write,encrypted fleet/%c/#
user bridge-b
topic read fleet/#
ACL_EOF
cat >"$IT_DIR/acl-b" <<ACL_EOF
pattern write,encrypted fleet/%c/#
role dashboard
topic read fleet/#
ACL_EOF
it_broker_start a "$(it_plugin_conf "$IT_KEYS/fleet.key.pub" "$IT_DIR/acl-a" "plugin_opt_password_file $IT_DIR/passwd-a")
persistence true
autosave_interval 3600"
PORT_A=$(it_broker_port a)
it_broker_start b "$(it_plugin_conf "$IT_KEYS/fleet.key.pub" "$IT_DIR/acl-b")
persistence true
autosave_interval 3600
connection to-a
address 127.0.0.1:$PORT_A
bridge_protocol_version mqttv311
remote_clientid bridge-b
remote_username bridge-b
remote_password $BRIDGE_PW
try_private false
cleansession false
topic fleet/# in 1"
PORT_B=$(it_broker_port b)
it_capture_start "$IT_DIR/lo.pcap" "$PORT_A" "$PORT_B"
it_check "bridge logged in to broker A" it_log_wait a 'New client connected .* as bridge-b' 10
it_check "bridge subscribed to fleet/# on broker A" it_wait_subscribed a bridge-b 'fleet/#'

READY=$IT_DIR/dash.ready
# shellcheck disable=SC2046
it_integ sub --uri "tcp://127.0.0.1:$PORT_B" $(it_dev_args dashboard "$KR") --filter 'fleet/#' \
	--expect $((2 * N)) --marker "$IT_MARKER" --timeout "$(it_secs 60)" --ready "$READY" --print \
	>"$IT_DIR/dash.out" 2>&1 &
DASH=$!; it_bg "$DASH"
it_check "dashboard subscribed on broker B" it_wait_file "$READY" 10
for d in sensor-1 sensor-2; do
	# shellcheck disable=SC2046
	it_check "$d published $N readings on broker A" it_integ pub --uri "tcp://127.0.0.1:$PORT_A" \
		$(it_dev_args "$d" "$KR") --topic "fleet/$d/temp" --count "$N" --prefix "$SECRET"
done
# shellcheck disable=SC2046
it_check "end marker published on broker A" it_integ pub --uri "tcp://127.0.0.1:$PORT_A" \
	$(it_dev_args sensor-1 "$KR") --topic fleet/sensor-1/temp --count 1 --prefix "$IT_MARKER"
rc=0; wait "$DASH" || rc=$?
summary=$(grep '^sub:' "$IT_DIR/dash.out" || true)
echo "  dashboard on B $summary"
it_check "dashboard on broker B opened all $((2 * N)) envelopes once, in order (then the end marker)" [ "$rc" -eq 0 ]
it_check "payloads are the sensors' plaintext" grep -q "payload=$SECRET-$((N - 1))\$" "$IT_DIR/dash.out"
it_capture_stop "$IT_DIR/lo.pcap"
it_broker_stop a; it_broker_stop b
it_check "capture of both brokers' ports contains the topics" grep -aq 'fleet/sensor-1/temp' "$IT_DIR/lo.pcap"
it_check "capture of both brokers' ports contains no plaintext" it_file_lacks "$IT_DIR/lo.pcap" "$SECRET"
for n in a b; do
	db=$(it_broker_dir "$n")/mosquitto.db
	it_check "broker $n persistence file has no plaintext" bash -c "[ -s '$db' ] && ! grep -aq '$SECRET' '$db'"
done
it_check "plugins refused nothing" [ "$(( $(it_log_count a 'veil: acl \| refuse') + $(it_log_count b 'veil: acl \| refuse') ))" -eq 0 ]
it_fig messages "$((2 * N))"
it_fig capture_bytes "$(stat -c %s "$IT_DIR/lo.pcap")"
it_finish
