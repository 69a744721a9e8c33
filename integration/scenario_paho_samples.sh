#!/usr/bin/env bash
# Issue 3 acceptance, the rest of Debian's samples: the unmodified
# /usr/bin/MQTTClient_publish (sync API) and /usr/bin/MQTTAsync_subscribe
# (async API) exchange "Hello World!" end to end under LD_PRELOAD while a
# plain subscriber with a valid login sees only an envelope.
# Both programs hard-code tcp://mqtt.eclipseprojects.io:1883, so the scenario
# runs in a network and mount namespace it creates itself: its own loopback,
# the broker on 127.0.0.1:1883 there, and an /etc/hosts bind-mounted in that
# namespace only that names the host 127.0.0.1. No packet leaves it.
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_PRELOAD" "libveil_preload.so"
it_require_sys MQTTClient_publish paho.mqtt.c-examples
it_require_sys MQTTAsync_subscribe paho.mqtt.c-examples
it_require_sys mosquitto_sub mosquitto-clients
if [ -z "${VEIL_IN_NETNS:-}" ]; then
	# Outside: the namespace needs root and the kernel's network and mount
	# namespaces (a system dependency: a skip when absent, said why); then the
	# scenario runs again inside it.
	it_require_sys unshare util-linux
	it_require_sys ip iproute2
	[ "$(id -u)" -eq 0 ] || it_skip "needs root to create a network and mount namespace (uid $(id -u))"
	err=$(unshare --net --mount --propagation private true 2>&1) ||
		it_skip "cannot create a network and mount namespace: $err"
	# Nothing started out here yet: the namespaced run replaces this one.
	rm -rf "$IT_DIR"
	exec unshare --net --mount --propagation private env VEIL_IN_NETNS=1 bash "$0" "$@"
fi
ip link set lo up
printf '127.0.0.1 localhost\n127.0.0.1 mqtt.eclipseprojects.io\n' >"$IT_DIR/hosts"
chmod 644 "$IT_DIR/hosts"
mount --bind "$IT_DIR/hosts" /etc/hosts
it_check "mqtt.eclipseprojects.io resolves to this namespace's loopback" \
	bash -c "getent hosts mqtt.eclipseprojects.io | grep -q '^127.0.0.1'"

it_authority fleet
it_device fleet sensor-1 sensor
it_device fleet dashboard dashboard
it_device fleet spy dashboard
KR=$IT_DIR/keyring
it_keyring "$KR" fleet
it_topic_key "$KR" '#' 1 send      # the samples' topic "MQTT Examples" has a space
ACL=$IT_DIR/acl
cat >"$ACL" <<ACL_EOF
role sensor
topic write,encrypted MQTT Examples
role dashboard
topic read MQTT Examples
ACL_EOF
# log_type debug: the broker logs the PUBACK the subscriber app sends once its
# message callback has returned (the event the scenario waits for below).
it_broker_start main "$(it_plugin_conf "$IT_KEYS/fleet.key.pub" "$ACL")
log_type debug" 1883
for d in sensor-1 dashboard; do
	mkdir -m 700 "$IT_DIR/state-$d"
	it_client_conf "$IT_DIR/$d.conf" "$d" "$KR" "$IT_DIR/state-$d"
done

mosquitto_sub -h 127.0.0.1 -p 1883 -i spy -u spy -P "$(it_password spy)" -q 1 -t 'MQTT Examples' -F '%t|%x' \
	>"$IT_DIR/spy.out" 2>&1 &
it_bg $!
it_check "plain subscriber subscribed" it_wait_subscribed main spy 'MQTT Examples'
# MQTTAsync_subscribe runs until it reads Q on stdin; its stdout (a file) is
# flushed when it exits, so the check reads it after the Q.
mkfifo "$IT_DIR/sub.in"
it_preload "$IT_DIR/dashboard.conf" MQTTAsync_subscribe <"$IT_DIR/sub.in" >"$IT_DIR/sub.out" 2>"$IT_DIR/sub.err" &
SUB=$!; it_bg "$SUB"
exec 3>"$IT_DIR/sub.in"
it_check "unmodified MQTTAsync_subscribe logged in as dashboard and subscribed" \
	it_wait_subscribed main dashboard 'MQTT Examples' 15
prc=0
it_preload "$IT_DIR/sensor-1.conf" MQTTClient_publish >"$IT_DIR/pub.out" 2>"$IT_DIR/pub.err" || prc=$?
it_check "unmodified MQTTClient_publish delivered its message (exit 0)" \
	bash -c "[ $prc -eq 0 ] && grep -q 'delivered' '$IT_DIR/pub.out'"
it_check "the plain subscriber received the message" it_wait_until 10 grep -q '^MQTT Examples|' "$IT_DIR/spy.out"
# MQTTAsync_subscribe acknowledges (PUBACK) once its callback has printed.
it_check "MQTTAsync_subscribe acknowledged the message (PUBACK in the broker log)" \
	it_log_wait main 'Received PUBACK from dashboard' 10
echo Q >&3
exec 3>&-
it_check "MQTTAsync_subscribe exited after Q" it_wait_exit "$SUB" 10
it_stop_pid "$SUB"
it_check "MQTTAsync_subscribe printed the plaintext 'Hello World!'" grep -q 'Hello World!' "$IT_DIR/sub.out"
it_check "the plain subscriber saw only an envelope (version byte 01)" \
	bash -c "! grep '^MQTT Examples|' '$IT_DIR/spy.out' | cut -d'|' -f2 | grep -v '^01'"
secret_hex=$(printf 'Hello World!' | od -An -tx1 | tr -d ' \n')
it_check "no plaintext in what the broker delivered" it_file_lacks "$IT_DIR/spy.out" "$secret_hex"
it_check "plugin refused nothing" [ "$(it_log_count main 'veil: acl \| refuse')" -eq 0 ]
it_fig spy_messages "$(grep -c '^MQTT Examples|' "$IT_DIR/spy.out" || true)"
it_finish
