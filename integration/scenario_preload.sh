#!/usr/bin/env bash
# Scenario 4, unmodified apps: Debian's paho_c_pub and paho_c_sub (Paho's
# own sample programs, not rebuilt) run under LD_PRELOAD=libveil_preload.so
# with a VEIL_CONFIG file. They talk end to end in plaintext while a raw
# eavesdropper with a valid login sees only envelopes, and they interoperate
# with libveil programs in both directions.
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_INTEG" "veil-integ (libveil)"
it_require_built "$VEIL_PRELOAD" "libveil_preload.so"
it_require_sys paho_c_pub paho.mqtt.c-examples
it_require_sys paho_c_sub paho.mqtt.c-examples
it_require_sys mosquitto_sub mosquitto-clients

N=${VEIL_PRELOAD_MESSAGES:-5}
SECRET=PRELOADSECRET
it_authority fleet
for d in sensor-1 sensor-2; do it_device fleet "$d" sensor; done
for d in dashboard dash-lib spy; do it_device fleet "$d" dashboard; done
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
PORT=$(it_broker_port main)
for d in sensor-1 dashboard; do
	mkdir -m 700 "$IT_DIR/state-$d"
	it_client_conf "$IT_DIR/$d.conf" "$d" "$KR" "$IT_DIR/state-$d"
done

# The unmodified subscriber (dashboard) and a raw eavesdropper.
it_preload "$IT_DIR/dashboard.conf" paho_c_sub -t 'fleet/#' -q 1 -i dashboard -h 127.0.0.1 -p "$PORT" \
	>"$IT_DIR/paho_sub.out" 2>"$IT_DIR/paho_sub.err" &
PSUB=$!; it_bg "$PSUB"
mosquitto_sub -h 127.0.0.1 -p "$PORT" -i spy -u spy -P "$(it_password spy)" -q 1 -t 'fleet/#' -F '%t %x' \
	>"$IT_DIR/spy.out" 2>&1 &
SPY=$!; it_bg "$SPY"
# A libveil dashboard, to show the preload's envelopes are standard ones.
# shellcheck disable=SC2046
it_integ sub --uri "tcp://127.0.0.1:$PORT" $(it_dev_args dash-lib "$KR") --filter 'fleet/sensor-1/#' \
	--expect "$N" --marker "$IT_MARKER" --timeout "$(it_secs 40)" --print >"$IT_DIR/lib_sub.out" 2>&1 &
LSUB=$!; it_bg "$LSUB"
it_check "preloaded paho_c_sub connected and subscribed" it_wait_subscribed main dashboard 'fleet/#'
it_check "eavesdropper subscribed" it_wait_subscribed main spy 'fleet/#'
it_check "libveil dashboard subscribed" it_wait_subscribed main dash-lib 'fleet/sensor-1/#'
ok=0
for i in $(seq 0 $((N - 1))); do
	it_preload "$IT_DIR/sensor-1.conf" paho_c_pub -t fleet/sensor-1/temp -q 1 -i sensor-1 -h 127.0.0.1 -p "$PORT" \
		-m "$SECRET-$i" >>"$IT_DIR/paho_pub.out" 2>&1 && ok=$((ok + 1))
done
it_check "preloaded paho_c_pub published $N messages (exit 0)" [ "$ok" -eq "$N" ]
# shellcheck disable=SC2046
it_check "libveil sensor-2 published $N messages" it_integ pub --uri "tcp://127.0.0.1:$PORT" \
	$(it_dev_args sensor-2 "$KR") --topic fleet/sensor-2/temp --count "$N" --prefix "${SECRET}lib"
# The end marker, on a topic of its own that all three subscribers hold:
# whatever was going to reach them arrives before it.
MARK_TOPIC=fleet/sensor-1/marker
# shellcheck disable=SC2046
it_check "end marker published" it_integ pub --uri "tcp://127.0.0.1:$PORT" $(it_dev_args sensor-1 "$KR") \
	--topic "$MARK_TOPIC" --count 1 --prefix "$IT_MARKER"
lrc=0; wait "$LSUB" || lrc=$?
it_check "unmodified paho_c_sub printed the end marker" \
	it_wait_until 10 grep -qF "$MARK_TOPIC	$IT_MARKER-0" "$IT_DIR/paho_sub.out"
it_check "eavesdropper received the end marker" it_wait_until 10 grep -q "^$MARK_TOPIC " "$IT_DIR/spy.out"
it_stop_pid "$PSUB"; it_stop_pid "$SPY"
# paho_c_sub prints "<payload length> <topic>\t<payload>"
got=$(grep -cP "^\d+ fleet/sensor-1/temp\t$SECRET-\d+\$" "$IT_DIR/paho_sub.out" || true)
gotlib=$(grep -cP "^\d+ fleet/sensor-2/temp\t${SECRET}lib-\d+\$" "$IT_DIR/paho_sub.out" || true)
it_fig paho_sub_from_paho "$got"; it_fig paho_sub_from_libveil "$gotlib"
it_check "unmodified paho_c_sub printed the $N plaintexts from paho_c_pub" [ "$got" -eq "$N" ]
it_check "unmodified paho_c_sub printed the $N plaintexts from libveil" [ "$gotlib" -eq "$N" ]
it_check "libveil dashboard opened the preload's $N envelopes (then the end marker)" [ "$lrc" -eq 0 ]
spied=$(grep -c '^fleet/sensor-[12]/temp ' "$IT_DIR/spy.out" || true)
it_fig spy_messages "$spied"
it_check "eavesdropper saw all $((2 * N)) messages" [ "$spied" -eq $((2 * N)) ]
it_check "eavesdropper saw only envelopes" bash -c "! grep '^fleet/' '$IT_DIR/spy.out' | awk '{print \$2}' | grep -v '^01'"
secret_hex=$(printf '%s' "$SECRET" | od -An -tx1 | tr -d ' \n')
it_check "eavesdropper saw no plaintext" it_file_lacks "$IT_DIR/spy.out" "$secret_hex"
it_check "plugin refused nothing" [ "$(it_log_count main 'veil: acl \| refuse')" -eq 0 ]
it_finish
