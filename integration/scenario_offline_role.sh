#!/usr/bin/env bash
# Offline persistent session granted by a role: the dashboard's read right
# comes from `role dashboard` (its credential's roles). Mosquitto checks READ
# when a message is queued for a session whose client is offline; the message
# must still be queued and delivered at reconnect, as it is for user rules.
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_INTEG" "veil-integ (libveil)"

N=10
it_authority fleet
it_device fleet sensor-1 sensor
it_device fleet dashboard dashboard
KR=$IT_DIR/keyring
it_keyring "$KR" fleet
it_topic_key "$KR" 'fleet/#' 1 send
ACL=$IT_DIR/acl
cat >"$ACL" <<ACL_EOF
pattern write,encrypted fleet/%c/#
role dashboard
topic read fleet/#
ACL_EOF
it_broker_start main "$(it_plugin_conf "$IT_KEYS/fleet.key.pub" "$ACL")"
URI=tcp://127.0.0.1:$(it_broker_port main)
DASH="$(it_dev_args dashboard "$KR") --persistent --filter fleet/#"
# shellcheck disable=SC2086
it_check "online: role-based subscription granted" it_integ sub --uri "$URI" $DASH --subscribe-only
# shellcheck disable=SC2046
it_check "sensor published $N while the dashboard is offline" it_integ pub --uri "$URI" \
	$(it_dev_args sensor-1 "$KR") --topic fleet/sensor-1/temp --count "$N" --prefix q
# shellcheck disable=SC2046
it_check "end marker published" it_integ pub --uri "$URI" \
	$(it_dev_args sensor-1 "$KR") --topic fleet/sensor-1/temp --count 1 --prefix "$IT_MARKER"
# shellcheck disable=SC2086
it_integ sub --uri "$URI" $DASH --resume --expect "$N" --marker "$IT_MARKER" --timeout "$(it_secs 10)" \
	>"$IT_DIR/dash.out" 2>&1 && rc=0 || rc=$?
grep '^sub:' "$IT_DIR/dash.out" | sed 's/^/  dashboard /'
it_check "messages queued for the offline role-based session arrive at reconnect ($N, once, then the end marker)" \
	[ "$rc" -eq 0 ]
it_finish
