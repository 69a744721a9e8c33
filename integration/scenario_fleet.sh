#!/usr/bin/env bash
# Scenario 1, fleet: one authority, three sensors, one dashboard, the broker
# with the Veil plugin (credential logins, ACL with encrypted/signed topics).
# Sensors publish readings (encrypted) and alerts (signed); the dashboard,
# holding the keyring, reads every message in plaintext, exactly once, in
# order, with the alert signatures verified.
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_INTEG" "veil-integ (libveil)"

N=${VEIL_FLEET_MESSAGES:-50}
it_authority fleet
for d in sensor-1 sensor-2 sensor-3; do it_device fleet "$d" sensor; done
it_device fleet dashboard dashboard

KR=$IT_DIR/keyring
it_keyring "$KR" fleet
it_topic_key "$KR" 'fleet/+/alert' 2 send
echo 'policy fleet/+/alert signed' >>"$KR"
it_topic_key "$KR" 'fleet/#' 1 send

ACL=$IT_DIR/acl
cat >"$ACL" <<ACL_EOF
# every client writes only its own topics; readings encrypted, alerts signed
pattern write,encrypted fleet/%c/temp
pattern write,signed fleet/%c/alert
role dashboard
topic read fleet/#
ACL_EOF

it_broker_start main "$(it_plugin_conf "$IT_KEYS/fleet.key.pub" "$ACL")"
URI=tcp://127.0.0.1:$(it_broker_port main)

READY=$IT_DIR/dash.ready
# shellcheck disable=SC2046
it_integ sub --uri "$URI" $(it_dev_args dashboard "$KR") --filter 'fleet/#' \
	--expect $((3 * N + 3)) --marker "$IT_MARKER" --timeout "$(it_secs 60)" --print --ready "$READY" \
	>"$IT_DIR/dash.out" 2>"$IT_DIR/dash.err" &
DASH=$!; it_bg "$DASH"
it_check "dashboard subscribed to fleet/#" it_wait_file "$READY" 10

t0=$(date +%s.%N)
pubs=()
for d in sensor-1 sensor-2 sensor-3; do
	# shellcheck disable=SC2046
	( it_integ pub --uri "$URI" $(it_dev_args "$d" "$KR") --topic "fleet/$d/temp" --count "$N" --prefix "$d" \
		&& it_integ pub --uri "$URI" $(it_dev_args "$d" "$KR") --topic "fleet/$d/alert" --count 1 --prefix "$d-alert" ) \
		>"$IT_DIR/$d.out" 2>&1 &
	pubs+=($!)
done
for i in 0 1 2; do
	d=sensor-$((i + 1))
	it_check "$d published $N readings and 1 alert" wait "${pubs[$i]}"
	grep '^pub:' "$IT_DIR/$d.out" | sed "s/^/  $d /"
done
# shellcheck disable=SC2046
it_check "end marker published after every reading and alert" it_integ pub --uri "$URI" \
	$(it_dev_args sensor-1 "$KR") --topic fleet/sensor-1/temp --count 1 --prefix "$IT_MARKER"
dash_rc=0; wait "$DASH" || dash_rc=$?
t1=$(date +%s.%N)
cat "$IT_DIR/dash.err" >&2
summary=$(grep '^sub:' "$IT_DIR/dash.out" || true)
echo "  dashboard $summary"
it_check "dashboard got every message once, in order, nothing refused (and the end marker: nothing late)" \
	[ "$dash_rc" -eq 0 ]
it_check "dashboard read plaintext readings of all sensors" \
	bash -c "for d in sensor-1 sensor-2 sensor-3; do grep -q \"topic=fleet/\$d/temp .*payload=\$d-$((N - 1))\$\" '$IT_DIR/dash.out' || exit 1; done"
it_check "alerts arrived signed (signature verified by the dashboard)" \
	[ "$(grep -c 'topic=fleet/sensor-[123]/alert len=[0-9]* signed=1 ' "$IT_DIR/dash.out")" -eq 3 ]
it_check "readings arrived as encrypted, unsigned envelopes" \
	[ "$(grep -c 'topic=fleet/sensor-[123]/temp len=[0-9]* signed=0 ' "$IT_DIR/dash.out")" -eq $((3 * N)) ]
it_check "plugin refused nothing" [ "$(it_log_count main 'veil: acl \| (deny|refuse)')" -eq 0 ]
it_check "broker still serving" it_broker_alive main

# Issue 7: no secret and no plaintext payload ever reaches a log. Secrets:
# every identity seed and topic key (base64 as stored, and hex), any login
# token (password form); payloads: every reading's text. Logs: the broker's
# log and stdout, the clients' stderr and publisher output.
logs=("$(it_broker_log main)" "$(it_broker_dir main)/stdout.log" "$IT_DIR"/*.err "$IT_DIR"/sensor-*.out)
needles=$IT_DIR/needles
{
	awk '/^veil-identity-v1/ {print $2}' "$IT_KEYS"/*.key
	awk '$1 == "key" {print $4}' "$KR"
	for b in $(awk '/^veil-identity-v1/ {print $2}' "$IT_KEYS"/*.key; awk '$1 == "key" {print $4}' "$KR"); do
		printf '%s' "$b" | base64 -d | od -An -tx1 | tr -d ' \n'; echo
	done
	echo 'veil1:'
	for d in sensor-1 sensor-2 sensor-3; do for i in 0 $((N / 2)) $((N - 1)); do echo "$d-$i"; done; done
} >"$needles"
it_fig log_files_checked "${#logs[@]}"
it_fig secrets_and_payloads_checked "$(wc -l <"$needles")"
it_check "no identity seed, topic key, token or plaintext payload in any log (${#logs[@]} files)" \
	bash -c "! grep -aF -f '$needles' $(printf "'%s' " "${logs[@]}")"

it_fig messages_sent $((3 * N + 3))
it_fig messages_delivered "$(sed -n 's/.*delivered=\([0-9]*\).*/\1/p' <<<"$summary")"
it_fig seconds "$(echo "$t1 - $t0" | bc)"
it_finish
