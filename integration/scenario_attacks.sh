#!/usr/bin/env bash
# Scenario 3, attacks through the broker. A dashboard (libveil) stays
# subscribed to fleet/# the whole time; raw mosquitto_pub/sub clients play the
# attackers with real logins. Each attack must be refused (by the plugin at
# the broker, or by libveil at the receiver), counted (audit line in the
# broker log, or the dashboard's refusal counter), and nothing an attacker
# sent may reach the dashboard's application. The broker keeps serving: a
# legitimate message after all attacks still arrives.
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_INTEG" "veil-integ (libveil)"
it_require_sys mosquitto_pub mosquitto-clients
it_require_sys mosquitto_sub mosquitto-clients
it_require_sys python3 python3

it_authority fleet
for d in sensor-1 sensor-2 sensor-3; do it_device fleet "$d" sensor; done
it_device fleet dashboard dashboard
it_device fleet spy spy
KR=$IT_DIR/keyring
it_keyring "$KR" fleet
it_topic_key "$KR" 'fleet/#' 1 send
ACL=$IT_DIR/acl
cat >"$ACL" <<ACL_EOF
pattern readwrite,encrypted fleet/%c/#
role dashboard
topic read fleet/#
role spy
topic read fleet/#
ACL_EOF
REVOKED=$IT_DIR/revoked
: >"$REVOKED"
it_broker_start main "$(it_plugin_conf "$IT_KEYS/fleet.key.pub" "$ACL" "plugin_opt_revocation_file $REVOKED")"
PORT=$(it_broker_port main)
URI=tcp://127.0.0.1:$PORT
LOG=$(it_broker_log main)

# raw MQTT 5 clients with a fresh token as password (username = client id)
rpub() { local id=$1; shift; mosquitto_pub -h 127.0.0.1 -p "$PORT" -V mqttv5 -q 1 -i "$id" -u "$id" -P "$(it_password "$id")" "$@"; }
rsub() { local id=$1; shift; mosquitto_sub -h 127.0.0.1 -p "$PORT" -V mqttv5 -q 1 -i "$id" -u "$id" -P "$(it_password "$id")" "$@"; }
# delta COUNT_BEFORE REGEX: how many more log lines match now
logc() { it_log_count main "$1"; }

LEGIT=10
# The attacker's source of real envelopes: a login whose ACL allows fleet/#.
# envA: sent before the dashboard subscribed (its sequence is new to the
# dashboard, so re-routing or tampering it reaches the AEAD check); envB: one
# the dashboard has opened (replaying it reaches the replay window).
rsub spy -t fleet/sensor-1/pre -C 1 -N -W "$(it_secs 30)" >"$IT_DIR/envA.bin" 2>"$IT_DIR/spy.err" &
SPY=$!; it_bg "$SPY"
it_check "attacker subscribed to fleet/sensor-1/pre" it_wait_subscribed main spy fleet/sensor-1/pre
# shellcheck disable=SC2046
it_check "sensor-1 published one message before the dashboard came" it_integ pub --uri "$URI" \
	$(it_dev_args sensor-1 "$KR") --topic fleet/sensor-1/pre --count 1 --prefix early
wait "$SPY" || true
READY=$IT_DIR/dash.ready
# shellcheck disable=SC2046
it_integ sub --uri "$URI" $(it_dev_args dashboard "$KR") --filter 'fleet/#' --print --ready "$READY" \
	--expect $((LEGIT + 2)) --expect-refused 3 --marker "$IT_MARKER" --timeout "$(it_secs 90)" \
	>"$IT_DIR/dash.out" 2>&1 &
DASH=$!; it_bg "$DASH"
it_check "dashboard subscribed to fleet/#" it_wait_file "$READY" 10
# Before sensor-1's stream moves the dashboard's window past envA's sequence
# (each publisher run starts its sequence at the clock in microseconds):
# 3. envelope moved to another topic (re-routed by whoever holds sensor-1's login: the broker's position)
rpub sensor-1 -t fleet/sensor-1/humidity -f "$IT_DIR/envA.bin" >/dev/null 2>&1 || true
# 5. one flipped ciphertext byte
python3 - "$IT_DIR/envA.bin" "$IT_DIR/tampered.bin" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b[50] ^= 0x01; open(sys.argv[2], 'wb').write(b)
PY
rpub sensor-1 -t fleet/sensor-1/temp -f "$IT_DIR/tampered.bin" >/dev/null 2>&1 || true
rsub spy -t fleet/sensor-1/temp -C 1 -N -W "$(it_secs 30)" >"$IT_DIR/env.bin" 2>>"$IT_DIR/spy.err" &
SPY=$!; it_bg "$SPY"
it_check "attacker subscribed to fleet/sensor-1/temp" it_wait_subscribed main spy fleet/sensor-1/temp
# shellcheck disable=SC2046
it_check "sensor-1 published $LEGIT legitimate readings" it_integ pub --uri "$URI" $(it_dev_args sensor-1 "$KR") \
	--topic fleet/sensor-1/temp --count "$LEGIT" --prefix legit
wait "$SPY" || true
for e in envA env; do
	it_check "attacker captured a real envelope $e ($(stat -c %s "$IT_DIR/$e.bin") bytes)" \
		bash -c "[ \"\$(head -c1 '$IT_DIR/$e.bin' | od -An -tx1 | tr -d ' ')\" = 01 ]"
done

# 1. plaintext on a protected topic (valid login, own topic)
b=$(logc 'reason=not-envelope')
rpub sensor-2 -t fleet/sensor-2/temp -m 'plaintext-attack-1' >/dev/null 2>&1 || true
it_check "plaintext publish refused by the plugin (not-envelope)" it_log_wait main "reason=not-envelope" 5
it_fig refused_plaintext $(( $(logc 'reason=not-envelope') - b ))
# 2. forged sender: sensor-2 publishes sensor-1's envelope on its own topic
b=$(logc 'reason=wrong-sender')
rpub sensor-2 -t fleet/sensor-2/temp -f "$IT_DIR/env.bin" >/dev/null 2>&1 || true
it_check "forged sender id refused by the plugin (wrong-sender)" it_log_wait main "reason=wrong-sender" 5
it_fig refused_forged_sender $(( $(logc 'reason=wrong-sender') - b ))
# 4. replay of the captured envelope on its own topic
rpub sensor-1 -t fleet/sensor-1/temp -f "$IT_DIR/env.bin" >/dev/null 2>&1 || true
# 6. subscribe beyond the ACL
b=$(logc 'acl \| deny \| client=sensor-2 access=subscribe')
# (-W only bounds the client: it exits when the broker denies its only subscription)
rsub sensor-2 -t 'fleet/sensor-1/#' -C 1 -W "$(it_secs 5)" >"$IT_DIR/a6.out" 2>&1 || true
it_check "unauthorized subscribe refused (audit deny line)" it_log_wait main 'acl \| deny \| client=sensor-2 access=subscribe topic=fleet/sensor-1/#' 5
it_check "unauthorized subscriber received nothing" bash -c "! grep -q legit '$IT_DIR/a6.out'"
# 7. $SYS
rsub spy -t '$SYS/#' -C 1 -W "$(it_secs 5)" >"$IT_DIR/a7.out" 2>&1 || true
it_check "\$SYS subscription refused (audit deny line)" it_log_wait main 'acl \| deny \| client=spy access=subscribe topic=\$SYS' 5
it_check "\$SYS subscriber received nothing" bash -c "! grep -q 'mosquitto\|version\|[0-9]' <(grep -v -i 'denied\|error\|refused' '$IT_DIR/a7.out')"
# 8. wildcard client ids, each with a genuine token of sensor-2
wild_ok=0
for wid in '#' '+' 'fleet/+' 'sensor-#'; do
	if mosquitto_sub -h 127.0.0.1 -p "$PORT" -V mqttv5 -i "$wid" -u "$wid" -P "$(it_password sensor-2)" \
		-t "fleet/$wid/temp" -C 1 -W "$(it_secs 5)" >/dev/null 2>&1; then wild_ok=$((wild_ok + 1)); fi
done
it_check "wildcard client ids refused at CONNECT (4 of 4)" [ "$wild_ok" -eq 0 ]
# 9. stolen token replayed
TOK=$(it_password sensor-2)
first=0; second=0
mosquitto_pub -h 127.0.0.1 -p "$PORT" -V mqttv5 -i sensor-2 -u sensor-2 -P "$TOK" -t fleet/sensor-2/x -n -q 0 >/dev/null 2>&1 || first=$?
mosquitto_pub -h 127.0.0.1 -p "$PORT" -V mqttv5 -i sensor-2 -u sensor-2 -P "$TOK" -t fleet/sensor-2/x -n -q 0 >/dev/null 2>&1 || second=$?
it_check "a token logs in once" [ "$first" -eq 0 ]
it_check "the same token replayed is refused" [ "$second" -ne 0 ]
# 10. revoked device: connected first, then revoked, kicked and refused
# shellcheck disable=SC2046
it_check "sensor-3 publishes before revocation" it_integ pub --uri "$URI" $(it_dev_args sensor-3 "$KR") \
	--topic fleet/sensor-3/temp --count 1 --prefix before-revocation
rsub sensor-3 -t fleet/sensor-3/cmd -W "$(it_secs 60)" >/dev/null 2>&1 &
S3=$!; it_bg "$S3"
it_check "sensor-3 connected and subscribed before revocation" it_wait_subscribed main sensor-3 fleet/sensor-3/cmd
echo "credential $(it_cred_id sensor-3)" >>"$REVOKED"
it_broker_reload main
it_check "revoked device's open connection was closed" it_wait_exit "$S3" 10
# shellcheck disable=SC2046
it_check "revoked device cannot log in again" bash -c "! $VEIL_INTEG pub --uri $URI $(it_dev_args sensor-3 "$KR") \
	--topic fleet/sensor-3/temp --count 1 --prefix after-revocation >'$IT_DIR/a10.out' 2>&1"
# The broker still serves: a legitimate message after everything.
# shellcheck disable=SC2046
it_check "broker still serving: legitimate publish after the attacks" it_integ pub --uri "$URI" \
	$(it_dev_args sensor-1 "$KR") --topic fleet/sensor-1/temp --count 1 --start "$LEGIT" --prefix legit
# shellcheck disable=SC2046
it_check "end marker published after everything" it_integ pub --uri "$URI" \
	$(it_dev_args sensor-1 "$KR") --topic fleet/sensor-1/temp --count 1 --prefix "$IT_MARKER"
dash_rc=0; wait "$DASH" || dash_rc=$?
summary=$(grep '^sub:' "$IT_DIR/dash.out" || true)
echo "  dashboard $summary"
grep '^refused' "$IT_DIR/dash.out" | sed 's/^/  dashboard /' || true
it_check "dashboard app got exactly the $((LEGIT + 2)) legitimate messages and 3 refusals before the end marker" \
	[ "$dash_rc" -eq 0 ]
it_check "moved envelope refused by the receiver (decrypt-failed)" grep -q 'refused topic=fleet/sensor-1/humidity err=' "$IT_DIR/dash.out"
it_check "replay refused by the receiver" grep -q 'refused_replay=1' <<<"$summary"
it_check "tampered byte refused by the receiver (moved + tampered = 2 AEAD failures)" grep -Eq 'refused_[a-z-]*decrypt[a-z-]*=2' <<<"$summary"
it_check "no attacker payload reached the app" bash -c "! grep -E 'payload=(plaintext-attack|after-revocation)' '$IT_DIR/dash.out'"
it_check "broker process alive" it_broker_alive main
it_fig plugin_refusals "$(logc 'veil: acl \| refuse')"
it_fig plugin_denies "$(logc 'veil: acl \| deny')"
it_fig auth_refusals "$(logc 'veil: auth \| (refuse|deny|fail)')"
it_fig receiver_refusals "$(sed -n 's/.* refused=\([0-9]*\).*/\1/p' <<<"$summary")"
it_finish
