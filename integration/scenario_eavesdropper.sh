#!/usr/bin/env bash
# Scenario 2, eavesdropper: a client with a valid login whose ACL allows `#`
# sees only envelopes; a capture of the loopback traffic to the broker port
# and the broker's persistence file contain no plaintext byte sequence of any
# message. (The legitimate dashboard, offline while the broker persisted the
# messages, still opens all of them afterwards: the bytes were there, sealed.)
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_INTEG" "veil-integ (libveil)"
it_require_sys tcpdump tcpdump
it_require_sys mosquitto_sub mosquitto-clients

N=${VEIL_EAVES_MESSAGES:-40}
SECRET=TOPSECRETreading   # every plaintext starts with this, so its absence covers all
it_authority fleet
it_device fleet sensor-1 sensor
it_device fleet dashboard dashboard
it_device fleet spy spy
KR=$IT_DIR/keyring
it_keyring "$KR" fleet
it_topic_key "$KR" 'fleet/#' 1 send
ACL=$IT_DIR/acl
cat >"$ACL" <<ACL_EOF
pattern write,encrypted fleet/%c/#
# A user rule, not a role: the plugin knows roles only of connected clients,
# and queueing for an offline session is checked while it is offline
# (scenario_offline_role.sh covers that case on its own).
user dashboard
topic read fleet/#
role spy
topic read #
ACL_EOF
it_broker_start main "$(it_plugin_conf "$IT_KEYS/fleet.key.pub" "$ACL")
persistence true
autosave_interval 3600
max_queued_messages 100000"
PORT=$(it_broker_port main)
URI=tcp://127.0.0.1:$PORT

it_capture_start "$IT_DIR/lo.pcap" "$PORT"
# The dashboard creates a persistent session, then goes offline: the broker
# must queue (and persist) every message for it.
# shellcheck disable=SC2046
it_check "dashboard session created" it_integ sub --uri "$URI" $(it_dev_args dashboard "$KR") --persistent \
	--filter 'fleet/#' --subscribe-only
# The eavesdropper: a raw MQTT client with a valid login and '#'.
mosquitto_sub -h 127.0.0.1 -p "$PORT" -V mqttv311 -i spy -u spy -P "$(it_password spy)" -q 1 -t '#' \
	-F '%t %l %x' -C $((N + 1)) -W "$(it_secs 60)" >"$IT_DIR/spy.out" 2>"$IT_DIR/spy.err" &
SPY=$!; it_bg "$SPY"
it_check "eavesdropper subscribed to #" it_wait_subscribed main spy '#'
# shellcheck disable=SC2046
it_check "sensor published $N readings" it_integ pub --uri "$URI" $(it_dev_args sensor-1 "$KR") \
	--topic fleet/sensor-1/temp --count "$N" --prefix "$SECRET"
# shellcheck disable=SC2046
it_check "sensor published a retained status" it_integ pub --uri "$URI" $(it_dev_args sensor-1 "$KR") \
	--topic fleet/sensor-1/status --count 1 --prefix "${SECRET}status" --retain
wait "$SPY" || true
# After the eavesdropper's count: queued for the offline dashboard behind everything.
# shellcheck disable=SC2046
it_check "end marker published" it_integ pub --uri "$URI" $(it_dev_args sensor-1 "$KR") \
	--topic fleet/sensor-1/temp --count 1 --prefix "$IT_MARKER"
it_capture_stop "$IT_DIR/lo.pcap"
it_broker_stop main      # SIGTERM: mosquitto writes mosquitto.db
DB=$(it_broker_dir main)/mosquitto.db

spied=$(wc -l <"$IT_DIR/spy.out")
it_fig spy_messages "$spied"
it_check "eavesdropper received every message ($((N + 1)))" [ "$spied" -eq $((N + 1)) ]
# Every payload is an envelope: version 0x01, 64 bytes more than the plaintext.
bad=$(awk -v s="$SECRET" '{ want = ($1 ~ /status$/) ? length(s "status-0") : -1
	if (substr($3, 1, 2) != "01") print "not-envelope: " $0
	else if ($2 < 64 + length(s) + 2) print "too-short: " $0 }' "$IT_DIR/spy.out")
it_check "eavesdropper saw only envelopes (version byte 0x01, >= 64 bytes overhead)" [ -z "$bad" ]
secret_hex=$(printf '%s' "$SECRET" | od -An -tx1 | tr -d ' \n')
it_check "eavesdropper output has no plaintext" it_file_lacks "$IT_DIR/spy.out" "$secret_hex"
it_fig capture_packets "$(sed -n 's/^\([0-9]*\) packets captured/\1/p' "$IT_DIR/lo.pcap.log")"
it_check "capture complete: no packet dropped by the kernel" grep -q '^0 packets dropped by kernel' "$IT_DIR/lo.pcap.log"
pcap_bytes=$(stat -c %s "$IT_DIR/lo.pcap")
it_fig capture_bytes "$pcap_bytes"
it_check "capture is non-trivial (> 10 kB)" [ "$pcap_bytes" -gt 10000 ]
it_check "capture contains the topic names (it did see the traffic)" grep -aq 'fleet/sensor-1/temp' "$IT_DIR/lo.pcap"
it_check "capture contains no plaintext" it_file_lacks "$IT_DIR/lo.pcap" "$SECRET"
for i in 0 $((N / 2)) $((N - 1)); do
	it_check "capture lacks message $i" it_file_lacks "$IT_DIR/lo.pcap" "$SECRET-$i"
done
it_check "persistence file written" test -s "$DB"
it_fig persistence_bytes "$(stat -c %s "$DB" 2>/dev/null || echo 0)"
it_check "persistence file holds the queued envelopes (topic present)" grep -aq 'fleet/sensor-1/temp' "$DB"
it_check "persistence file contains no plaintext" it_file_lacks "$DB" "$SECRET"

# The sealed bytes in the database are the real messages: restart and let
# the dashboard open them.
it_broker_restart main
# shellcheck disable=SC2046
it_integ sub --uri "$URI" $(it_dev_args dashboard "$KR") --persistent --resume --filter 'fleet/#' \
	--expect $((N + 1)) --marker "$IT_MARKER" --timeout "$(it_secs 30)" >"$IT_DIR/dash.out" 2>&1 && dash=0 || dash=$?
grep '^sub:' "$IT_DIR/dash.out" | sed 's/^/  dashboard /'
it_check "dashboard opened all $N queued messages and the retained one after the restart" [ "$dash" -eq 0 ]
it_finish
