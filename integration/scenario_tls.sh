#!/usr/bin/env bash
# Scenario 7, TLS: the fleet over a TLS listener (a CA and a server
# certificate for 127.0.0.1 made here with openssl). Veil's envelopes ride
# inside TLS: the loopback capture shows neither plaintext nor topic names,
# a client without TLS is not served, and the dashboard opens everything.
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_INTEG" "veil-integ (libveil)"
it_require_sys openssl openssl
it_require_sys tcpdump tcpdump
it_require_sys mosquitto_pub mosquitto-clients

N=${VEIL_TLS_MESSAGES:-30}
PKI=$IT_DIR/pki; mkdir -p "$PKI"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=veil-test-ca" \
	-keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
	-keyout "$PKI/server.key" -out "$PKI/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$PKI/ext"
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
	-extfile "$PKI/ext" -out "$PKI/server.crt" 2>/dev/null
it_check "test PKI generated" openssl verify -CAfile "$PKI/ca.crt" "$PKI/server.crt"

it_authority fleet
for d in sensor-1 sensor-2 sensor-3; do it_device fleet "$d" sensor; done
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
# certfile/keyfile follow the generated listener line, so they configure it.
it_broker_start main "certfile $PKI/server.crt
keyfile $PKI/server.key
tls_version tlsv1.2
$(it_plugin_conf "$IT_KEYS/fleet.key.pub" "$ACL")"
PORT=$(it_broker_port main)
URI=ssl://127.0.0.1:$PORT
SECRET=TLSSECRETreading

it_capture_start "$IT_DIR/lo.pcap" "$PORT"
READY=$IT_DIR/dash.ready
# shellcheck disable=SC2046
it_integ sub --uri "$URI" --cafile "$PKI/ca.crt" $(it_dev_args dashboard "$KR") --filter 'fleet/#' \
	--expect $((3 * N)) --marker "$IT_MARKER" --timeout "$(it_secs 60)" --ready "$READY" >"$IT_DIR/dash.out" 2>&1 &
DASH=$!; it_bg "$DASH"
it_check "dashboard subscribed over TLS" it_wait_file "$READY" 10
for d in sensor-1 sensor-2 sensor-3; do
	# shellcheck disable=SC2046
	it_check "$d published $N readings over TLS" it_integ pub --uri "$URI" --cafile "$PKI/ca.crt" \
		$(it_dev_args "$d" "$KR") --topic "fleet/$d/temp" --count "$N" --prefix "$SECRET$d"
done
# shellcheck disable=SC2046
it_check "end marker published over TLS" it_integ pub --uri "$URI" --cafile "$PKI/ca.crt" \
	$(it_dev_args sensor-1 "$KR") --topic fleet/sensor-1/temp --count 1 --prefix "$IT_MARKER"
rc=0; wait "$DASH" || rc=$?
grep '^sub:' "$IT_DIR/dash.out" | sed 's/^/  dashboard /'
it_check "dashboard opened all $((3 * N)) messages once, in order (then the end marker)" [ "$rc" -eq 0 ]
# A client that does not speak TLS gets nothing from this port.
plain_rc=0
timeout "$(it_secs 10)" mosquitto_pub -h 127.0.0.1 -p "$PORT" -i sensor-1 -u sensor-1 -P "$(it_password sensor-1)" \
	-t fleet/sensor-1/temp -m x >/dev/null 2>&1 || plain_rc=$?
it_check "plain TCP client refused by the TLS listener" [ "$plain_rc" -ne 0 ]
# A client that does not trust the CA refuses the server.
# shellcheck disable=SC2046
it_check "client without the CA refuses the server certificate" bash -c "! $VEIL_INTEG pub --uri $URI \
	--cafile /etc/ssl/certs/ca-certificates.crt $(it_dev_args sensor-1 "$KR") --topic fleet/sensor-1/temp --count 1 >/dev/null 2>&1"
it_capture_stop "$IT_DIR/lo.pcap"
it_fig capture_bytes "$(stat -c %s "$IT_DIR/lo.pcap")"
it_check "capture is non-trivial" [ "$(stat -c %s "$IT_DIR/lo.pcap")" -gt 10000 ]
it_check "capture contains no plaintext" it_file_lacks "$IT_DIR/lo.pcap" "$SECRET"
it_check "capture contains no topic names (TLS)" it_file_lacks "$IT_DIR/lo.pcap" "fleet/sensor"
it_finish
