#!/usr/bin/env bash
# The attacker container: a valid login (role spy: may read each topic the
# sensors use, one by one, never a whole key scope), tcpdump on the shared
# loopback. It asks veil-keyd for keys like any device; its rights entitle
# it to none (run.sh checks keyd's bundle to it: grants=0), yet the broker
# delivers it every envelope. Each attack must fail; any
# success is printed as FAIL and makes the exit status non-zero. Whatever it
# manages to publish would reach the dashboards, whose exact counts and zero
# refusals (checked by run.sh) would then fail too.
set -uo pipefail
K=/veil/keys; P=${VEIL_PORT}; R=/veil/run; fails=0
ok() { echo "PASS attacker: $*"; }
bad() { echo "FAIL attacker: $*"; fails=$((fails + 1)); }
pw() { veil token --identity "$K/attacker.key" --credential "$K/attacker.cred" --client-id attacker --password; }
msub() { mosquitto_sub -h 127.0.0.1 -p "$P" -V mqttv5 -i attacker -u attacker -P "$(pw)" "$@"; }
mpub() { mosquitto_pub -h 127.0.0.1 -p "$P" -V mqttv5 -i attacker -u attacker -P "$(pw)" -q 1 "$@"; }

# Deadlines scaled by VEIL_TEST_TIME_FACTOR (it_secs, it_wait_until).
IT_NAME=attacker   # for checks.sh
# shellcheck source=../../checks.sh
. /checks.sh

# The topics the spy may read: every sensor's readings and alerts.
SPY_TOPICS=(-t fleet/sensor-1/temp -t fleet/sensor-2/temp -t fleet/paho-sensor/temp -t fleet/sensor-1/alert -t fleet/sensor-2/alert)

# 0. ask veil-keyd for keys, as a device does at connect (libveil, no keyring)
veil-integ sub --uri "tcp://127.0.0.1:$P" --id attacker --identity "$K/attacker.key" --credential "$K/attacker.cred" \
	--authorities "$K/authority.key.pub" --state-dir /veil/state/attacker --step-timeout "$(it_secs 10)" \
	--filter fleet/sensor-1/temp --subscribe-only >$R/attacker-keyd.out 2>&1 \
	&& ok "asked keyd for keys (libveil login, subscribed)" || bad "libveil login for keyd's bundle failed: $(tail -2 $R/attacker-keyd.out)"

# 1. sniff the wire and subscribe with the valid login: envelopes only
tcpdump -i lo -U -s 0 -w $R/attacker.pcap "port $P" >/dev/null 2>$R/attacker-tcpdump.log &
TD=$!
it_wait_until 10 grep -q 'listening on' $R/attacker-tcpdump.log || bad "tcpdump did not start"
# run.sh waits for the broker's log line of this subscription's last filter
# (fleet/sensor-2/alert) before the sensors start.
msub "${SPY_TOPICS[@]}" -q 1 -F '%t %x' -C $((3 * VEIL_MESSAGES + 2)) -W "$(it_secs 150)" >$R/attacker-spy.out 2>/dev/null &
SPY=$!
wait $SPY
# Every packet is in the capture once a datagram sent after them is.
end_mark="veil-capture-end-$$-$RANDOM"
printf '%s' "$end_mark" >/dev/udp/127.0.0.1/$P || true
it_wait_until 15 grep -aqF "$end_mark" $R/attacker.pcap || bad "capture end marker not written"
kill -INT $TD; wait $TD 2>/dev/null
n=$(grep -c '^fleet/' $R/attacker-spy.out || true)
[ "$n" -gt 0 ] && ok "spy subscription received $n messages" || bad "spy received nothing (no traffic?)"
grep '^fleet/' $R/attacker-spy.out | awk '{print $2}' | grep -qv '^01' && bad "non-envelope payload seen" || ok "every payload is an envelope"
hex=$(printf COMPOSESECRET | od -An -tx1 | tr -d ' \n')
grep -q "$hex" $R/attacker-spy.out && bad "plaintext in subscribed payloads" || ok "no plaintext in subscribed payloads"
[ "$(stat -c %s $R/attacker.pcap)" -gt 5000 ] && ok "captured $(stat -c %s $R/attacker.pcap) bytes" || bad "capture empty"
grep -aq COMPOSESECRET $R/attacker.pcap && bad "plaintext on the wire" || ok "no plaintext on the wire"
# 2. open what it captured: it has no topic key
grep '^fleet/sensor-1/temp' $R/attacker-spy.out | head -1 | awk '{print $2}' | sed 's/../\\x&/g' | xargs -0 printf '%b' >$R/env.bin
[ "$(head -c1 $R/env.bin | od -An -tx1 | tr -d ' ')" = 01 ] && ok "kept a real envelope ($(stat -c %s $R/env.bin) bytes)" || bad "no envelope kept"
veil inspect --help >/dev/null 2>&1 && veil inspect $R/env.bin 2>&1 | head -5 | sed 's/^/  inspect: /'
# 3. plaintext publish on its own protected-by-pattern topic
mpub -t fleet/attacker/temp -m 'COMPOSEATTACK plaintext' >/dev/null 2>&1
# 4. forged sender: a sensor's envelope under its own login
mpub -t fleet/attacker/temp -f $R/env.bin >/dev/null 2>&1
# 5. writing another device's topic
mpub -t fleet/sensor-1/temp -f $R/env.bin >/dev/null 2>&1
# 6. $SYS and beyond its ACL
out=$(msub -t '$SYS/#' -C 1 -W 3 2>&1); [ -z "$(grep -v -i 'denied\|timed out' <<<"$out")" ] && ok "\$SYS/# gave nothing" || bad "\$SYS readable: $out"
out=$(msub -t '#' -C 1 -W 3 2>&1); grep -qi 'denied' <<<"$out" && ok "'#' subscription denied" || bad "'#' not denied: $out"
# 7. stolen token replay and wildcard client ids
tok=$(pw)
mosquitto_pub -h 127.0.0.1 -p "$P" -i attacker -u attacker -P "$tok" -t x -n >/dev/null 2>&1 \
	&& ok "fresh token accepted once" || bad "fresh token refused"
mosquitto_pub -h 127.0.0.1 -p "$P" -i attacker -u attacker -P "$tok" -t x -n >/dev/null 2>&1 \
	&& bad "replayed token accepted" || ok "replayed token refused"
for w in '#' '+' 'fleet/+'; do
	mosquitto_pub -h 127.0.0.1 -p "$P" -i "$w" -u "$w" -P "$(pw)" -t x -n >/dev/null 2>&1 \
		&& bad "wildcard client id '$w' accepted" || ok "wildcard client id '$w' refused"
done
echo "attacker: $fails failed checks"
exit $((fails > 0))
