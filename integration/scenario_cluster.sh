#!/usr/bin/env bash
# Scenario: a Veil deployment of three Mosquitto nodes (docs/SCALING.md).
# Each node runs the plugin with its own copy of the same authority key,
# rules, revocation list and password file, and the same deployment name;
# nodes b and c bridge to the hub a (try_private, a star); HAProxy is the one
# address of devices, keyd and admins, sticky per client id; veil-keyd logs
# in through HAProxy. Six key-service devices (integration/cluster/
# cluster_dev.c) publish to each other all along at QoS 1; the phases:
#   hold     devices log in and subscribe, nobody publishes yet
#   base     devices on every node exchange sealed messages across bridges
#   rotate   a rotation while one device is offline: every device applies its
#            bundle; with keyd stopped, every node's retained store is read
#            (a declared bridge login, cl_retained) and holds the offline
#            one's new bundle, retained; back on its node, it applies it
#   revoke   `veil ctl revokeCredential` through HAProxy reaches one node; the
#            relay ($veil/v1/revoked/...) takes it to every node: the device
#            is kicked on its node within about a second, refused by every
#            node, and keyd's rekey and signed statement reach every device;
#            a device's forged relay record is refused and revokes nobody
#   (token)  a fresh device's token replayed through HAProxy is refused
#            replayed-token; straight at another node it is accepted, the
#            residual of docs/SECURITY.md 5.8
#   kill     the node keyd is connected to (checked to serve devices) is
#            SIGKILLed: its devices and keyd log in again through HAProxy
#            elsewhere with fresh tokens; what was lost with the node is
#            counted (a figure, not a check)
#   after    traffic on the remaining nodes, nothing lost
# then 100 bad password logins through HAProxy, and a device's and a
# password user's valid logins right after them. Loss is counted per phase from what each publisher's broker
# acknowledged and what each receiver opened; markers settle each phase.
source "$(dirname "$0")/lib.sh"
# shellcheck source=cluster/cluster.sh
source "$(dirname "$0")/cluster/cluster.sh"
it_require_built "$VEIL_CLUSTER_DEV" "veil-cluster-dev"
it_require_built "$VEIL_KEYD" "veil-keyd"
it_require_sys "$HAPROXY" haproxy
it_require_sys mosquitto_pub mosquitto-clients

DEVS=(dev-1 dev-2 dev-3 dev-4 dev-5 dev-6)
RATE=${VEIL_CLUSTER_RATE:-5}
CTL=$IT_DIR/ctl
OUT=$IT_DIR/out
mkdir -p "$CTL" "$OUT"
declare -A DEV_PID

# ---- helpers --------------------------------------------------------------------
now_ms() { it__now_ms; }
phase() { printf '%s\n' "$1" >"$CTL/phase.tmp"; mv "$CTL/phase.tmp" "$CTL/phase"; it_log "phase $1"; }
expect_set() { printf '%s\n' "$@" >"$CTL/expect"; }
expected() { cat "$CTL/expect"; }
status() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" "$OUT/$1.status" 2>/dev/null; }
dev_start() {
	"$VEIL_CLUSTER_DEV" --config "$IT_DIR/dev/$1.conf" --uri "$(CL_URI)" --ctl "$CTL" --out "$OUT" --rate "$RATE" \
		--connect-timeout "$(it_secs 15)" --end-timeout "$(it_secs 60)" 2>>"$OUT/$1.log" &
	DEV_PID[$1]=$!
	it_bg "${DEV_PID[$1]}"
}
# keys_guard: a device that cannot get a key for its topic fails the
# scenario at once, saying why, instead of each wait on traffic running out
# (with a scope keyd refused, every wait did, about 900 s in all): keyd
# refused a scope, issued a device of expect a bundle without grants, or a
# device's publishes have been refused no-policy / no-key for 5 s.
keys_guard() {
	local d line ms
	line=$(grep -m 1 'scope | refuse' "$(CL_KEYD_LOG)" 2>/dev/null || true)
	[ -z "$line" ] || it_fatal "veil-keyd refused a scope, no device gets its key: $line"
	for d in $(expected); do
		line=$(grep -m 1 -E "bundle \| issue \| client=$d .*grants=0 " "$(CL_KEYD_LOG)" 2>/dev/null || true)
		[ -z "$line" ] || it_fatal "$d: veil-keyd issued it no key (no grant covers fleet/$d/t): $line"
		ms=$(status "$d" nokey_ms)
		[ "${ms:-0}" -lt 5000 ] ||
			it_fatal "$d: its publishes on fleet/$d/t refused $(status "$d" nokey) for ${ms} ms: it holds no key for its topic (its log: $(tail -n 2 "$OUT/$d.log" | tr '\n' ' '))"
	done
}
ready() { keys_guard; [ "$(status "$1" connected)" = 1 ] && [ "$(status "$1" subscribed)" = 1 ]; }
all_ready() { local d; for d in "$@"; do ready "$d" || return 1; done; }
acked_in() { grep -c " $2 " "$OUT/$1.acked" 2>/dev/null || true; }
# Every id of expect has the marker of PHASE from every other: the phase is settled.
settled() {
	local r s
	keys_guard
	for r in $(expected); do
		for s in $(expected); do
			[ "$r" = "$s" ] && continue
			grep -qx "$s $1" "$OUT/$r.markers" 2>/dev/null || return 1
		done
	done
}
acked_now() { status "$1" acked; }
# each device has acked N more messages than at the mark
advanced() {
	local n=$1 d; shift
	keys_guard
	for d in "$@"; do [ "$(acked_now "$d")" -ge "$(( ${MARK[$d]:-0} + n ))" ] || return 1; done
}
declare -A MARK
mark_acked() { local d; for d in "$@"; do MARK[$d]=$(acked_now "$d"); done; }
# keyd_field ID WORD: the number after WORD in keyd's line for ID (veil keys devices).
keyd_field() { cl_keys devices | awk -v c="$1" -v w="$2" '$1 == c { for (i = 2; i < NF; i++) if ($i == w) print $(i + 1) }'; }
keyd_version() { keyd_field "$1" issued; }
keyd_acked() { keyd_field "$1" acked; }
issued_after() { [ "$(keyd_version "$1")" -gt "$2" ] 2>/dev/null; }
offline() { [ "$(status "$1" connected)" = 0 ]; }
serves() { local n=$1 d; for d in "${DEVS[@]}"; do [ "${ON[$d]}" = "$n" ] && return 0; done; return 1; }
at_version() { [ "$(state_version "$1")" = "$2" ]; }
count_grows() { [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -gt "$3" ]; }
state_version() { od -A n -t u8 --endian=big -j 8 -N 8 "$IT_DIR/dev/$1/keys" 2>/dev/null | tr -d ' '; }
# versions_now ID...: remember each device's issued bundle version (V[ID]);
# all_acked_past ID...: keyd has each one's acknowledgement of a newer one.
declare -A V
versions_now() { local d; for d in "$@"; do V[$d]=$(keyd_version "$d"); done; }
all_acked_past() { local d; for d in "$@"; do [ "$(keyd_acked "$d")" -gt "${V[$d]}" ] 2>/dev/null || return 1; done; }
node_of() { cl_node_of "$1"; }
# retained_bundle NODE ID VERSION: NODE's retained store holds a bundle for
# ID (PROTOCOL.md section 12: 01 03, the version at bytes 2..9, big endian;
# the client id's length at byte 82, the id after it) of VERSION, with the
# retain flag set. SEEN[NODE] says what the last look found.
declare -A SEEN
retained_bundle() {
	local out flag hex v l want
	out=$(cl_retained "$1" "\$veil/v1/bundle/$2")
	flag=${out%% *} hex=${out#* }
	want=$(printf '%s' "$2" | xxd -p | tr -d '\n')
	if [ -z "$out" ]; then
		SEEN[$1]="nothing (no retained message, or the probe login was refused)"
		return 1
	fi
	[[ $hex =~ ^0103[0-9a-f]{162} ]] || { SEEN[$1]="retain=$flag, not a bundle (${hex:0:8}...)"; return 1; }
	v=$((16#${hex:4:16})) l=$((16#${hex:164:2}))
	SEEN[$1]="retain=$flag version=$v client=$(printf '%s' "${hex:166:$((2 * l))}" | xxd -r -p)"
	[ "$flag" = 1 ] && [ "$v" = "$3" ] && [ "${hex:166:$((2 * l))}" = "$want" ]
}
others() { local x=$1 d; shift; for d in "$@"; do [ "$d" = "$x" ] || echo "$d"; done; }

# ---- the deployment ---------------------------------------------------------------
CL_PROBE_USER=node-probe   # reads the nodes' retained stores (cl_retained)
cl_material
for d in "${DEVS[@]}"; do cl_device "$d"; done
cl_nodes_start
cl_haproxy_start
cl_keyd_conf
it_check "veil-keyd logged in through HAProxy" cl_keyd_start
KEYD_NODE=$(node_of veil-keyd)
it_log "keyd is on node $KEYD_NODE"

expect_set "${DEVS[@]}"
# Nobody publishes until every device has its subscription: a message sent
# before a receiver's first SUBACK is not that receiver's to lose.
phase hold
for d in "${DEVS[@]}"; do dev_start "$d"; done
it_check "all ${#DEVS[@]} devices logged in through HAProxy, keys applied, subscribed" \
	it_wait_until 30 all_ready "${DEVS[@]}"
phase base
declare -A ON
for d in "${DEVS[@]}"; do ON[$d]=$(node_of "$d"); done
it_log "placement: $(for d in "${DEVS[@]}"; do printf '%s=%s ' "$d" "${ON[$d]}"; done)"
for n in a b c; do
	it_check "node $n serves at least one device" serves "$n"
done
mark_acked "${DEVS[@]}"
it_check "every device published 10 messages in phase base" it_wait_until 30 advanced 10 "${DEVS[@]}"

# ---- rotation with one device offline -----------------------------------------------
OFF=""
for d in "${DEVS[@]}"; do [ "${ON[$d]}" != "$KEYD_NODE" ] && { OFF=$d; break; }; done
phase rotate
it_check "phase base settled (every device has every marker)" it_wait_until 30 settled base
echo offline >"$CTL/$OFF.cmd"
it_check "$OFF offline (on node ${ON[$OFF]})" it_wait_until 10 offline "$OFF"
mapfile -t ONLINE < <(others "$OFF" "${DEVS[@]}")
expect_set "${ONLINE[@]}"
versions_now "${DEVS[@]}"
before=${V[$OFF]}
rot_t0=$(now_ms)
it_check "veil keys rotate queued" cl_keys rotate 'fleet/+/#'
it_check "keyd issued $OFF a new bundle" it_wait_until 15 issued_after "$OFF" "$before"
ROT_V=$(keyd_version "$OFF")
it_check "node $KEYD_NODE acknowledged $OFF's bundle to keyd" \
	it_wait_until 15 grep -q "puback | topic=\$veil/v1/bundle/$OFF version=$ROT_V" "$(CL_KEYD_LOG)"
it_check "devices on every node applied the rotation (keyd's acknowledgements)" \
	it_wait_until 20 all_acked_past "${ONLINE[@]}"
it_fig rotation_acked_ms $(( $(now_ms) - rot_t0 ))
cl_keyd_stop
it_log "keyd stopped: $OFF's bundle can only come from node ${ON[$OFF]}"
# The device's persistent session on its node queued the bundle too: its
# applying it below does not show the retained copy. Read each node's store
# directly: keyd published to node $KEYD_NODE, the bridges carried the copy
# to the others, retained.
for n in "${ON[$OFF]}" $(others "${ON[$OFF]}" a b c); do
	how="came over the bridges"
	[ "$n" = "$KEYD_NODE" ] && how="keyd's node"
	[ "$n" = "${ON[$OFF]}" ] && how="$OFF's node; $how"
	it_check "node $n's retained store holds $OFF's bundle version $ROT_V, retain flag set, keyd down ($how)" \
		it_wait_until 15 retained_bundle "$n" "$OFF" "$ROT_V"
	it_log "node $n: $OFF's retained bundle: ${SEEN[$n]:-}"
done
rm -f "$CTL/$OFF.cmd"
it_check "$OFF back online, through HAProxy to its node ${ON[$OFF]} (sticky client id)" \
	it_wait_until 20 ready "$OFF"
it_check "$OFF reached node ${ON[$OFF]} again" [ "$(node_of "$OFF")" = "${ON[$OFF]}" ]
it_check "$OFF applied bundle version $ROT_V from its node (keyd down)" \
	it_wait_until 15 at_version "$OFF" "$ROT_V"
it_check "keyd restarted" cl_keyd_start
expect_set "${DEVS[@]}"
mark_acked "${DEVS[@]}"
it_check "every device published 5 more messages in phase rotate" it_wait_until 30 advanced 5 "${DEVS[@]}"

# ---- revocation through the admin API, via HAProxy -----------------------------------------
ctl() { it_veil ctl -h 127.0.0.1 -p "$CL_HAPROXY_PORT" --identity "$IT_KEYS/ops.key" --credential "$IT_KEYS/ops.cred" \
	--audience "$CL_AUDIENCE" --timeout "$(it_secs 10)" "$@"; }
it_check "admin API reachable through HAProxy (listRevocations)" ctl listRevocations
OPS_NODE=$(node_of ops)
REV=""
for d in "${DEVS[@]}"; do [ "$d" != "$OFF" ] && [ "${ON[$d]}" != "$OPS_NODE" ] && [ "${ON[$d]}" != "$KEYD_NODE" ] && { REV=$d; break; }; done
[ -n "$REV" ] || for d in "${DEVS[@]}"; do [ "$d" != "$OFF" ] && [ "${ON[$d]}" != "$OPS_NODE" ] && { REV=$d; break; }; done
it_log "admin ops is on node $OPS_NODE; revoking $REV on node ${ON[$REV]}"
phase revoke
it_check "phase rotate settled" it_wait_until 30 settled rotate
REV_CRED=$(it_cred_id "$REV")
versions_now "${DEVS[@]}"
keyd_rekeys=$(grep -c 'revocation | rekey' "$(CL_KEYD_LOG)" || true)
rev_t0=$(now_ms)
it_check "veil ctl revokeCredential $REV through HAProxy" ctl revokeCredential "$IT_KEYS/$REV.cred"
it_check "$REV disconnected on node ${ON[$REV]}" it_wait_until 5 offline "$REV"
kick_ms=$(( $(now_ms) - rev_t0 ))
it_fig revoke_to_kick_ms "$kick_ms"
it_check "kicked within about a second ($kick_ms ms; bound 2 s scaled)" [ "$kick_ms" -le $(( $(it_secs 2) * 1000 )) ]
it_check "node ${ON[$REV]} kicked it (revoked-credential)" \
	it_log_wait "${ON[$REV]}" "auth \\| kick \\| client=$REV reason=revoked-credential" 5
for n in a b c; do
	it_check "node $n holds the revocation in its own runtime file" \
		it_wait_until 5 grep -qx "credential $REV_CRED" "$IT_DIR/node-$n/state/revocations"
done
for n in a b c; do
	[ "$n" = "$OPS_NODE" ] && continue
	it_check "node $n applied the relayed record" it_log_wait "$n" "relay \\| apply \\| entry=credential:$REV_CRED" 5
done
mapfile -t REST < <(others "$REV" "${DEVS[@]}")
expect_set "${REST[@]}"
it_check "keyd rekeyed the scopes $REV held" it_wait_until 10 count_grows "$(CL_KEYD_LOG)" 'revocation | rekey' "$keyd_rekeys"
it_check "the rekey reached devices on every node (keyd's acknowledgements)" \
	it_wait_until 20 all_acked_past "${REST[@]}"
it_fig revoke_to_rekey_acked_ms $(( $(now_ms) - rev_t0 ))
has_revoked() { xxd -p "$IT_DIR/dev/$1/revoked" 2>/dev/null | tr -d '\n' | grep -q "$REV_CRED"; }
for d in "${REST[@]}"; do
	it_check "$d (node ${ON[$d]}) holds keyd's revocation statement naming $REV" it_wait_until 10 has_revoked "$d"
done
for n in a b c; do
	pw=$(it_veil token --identity "$IT_KEYS/$REV.key" --credential "$IT_KEYS/$REV.cred" --client-id "$REV" \
		--audience "$CL_AUDIENCE" --password)
	mosquitto_pub -h 127.0.0.1 -p "$(it_broker_port "$n")" -V mqttv311 -i "$REV" -u "$REV" -P "$pw" \
		-t "fleet/$REV/t" -m x -q 1 >/dev/null 2>&1 || true
	it_check "node $n refuses $REV's fresh token (revoked-credential)" \
		it_log_wait "$n" "auth \\| refuse \\| client=$REV .*reason=revoked-credential" 5
done
it_stop_pid "${DEV_PID[$REV]}"
# A device cannot forge a relay record: only nodes write $veil/v1/revoked/...
VICTIM=${REST[0]}
cl_device dev-8
pw=$(it_veil token --identity "$IT_KEYS/dev-8.key" --credential "$IT_KEYS/dev-8.cred" --client-id dev-8 \
	--audience "$CL_AUDIENCE" --password)
vhex=$(printf '%s' "$VICTIM" | xxd -p | tr -d '\n')
mosquitto_pub -h 127.0.0.1 -p "$CL_HAPROXY_PORT" -V mqttv311 -i dev-8 -u dev-8 -P "$pw" -r -q 1 \
	-t "\$veil/v1/revoked/client/$vhex" -m "client $VICTIM" >/dev/null 2>&1 || true
it_check "a device's forged relay record naming $VICTIM is refused (node $(node_of dev-8))" \
	it_log_wait "$(node_of dev-8)" "acl \\| deny \\| client=dev-8 access=write topic=\\\$veil/v1/revoked/client/$vhex reason=veil-topic" 5
for n in a b c; do
	it_check "node $n did not revoke $VICTIM" bash -c "! grep -qx 'client $VICTIM' '$IT_DIR/node-$n/state/revocations'"
done
mark_acked "${REST[@]}"
it_check "remaining devices published 5 more messages after the revocation" it_wait_until 30 advanced 5 "${REST[@]}"

# ---- a token replayed ------------------------------------------------------------------
# docs/SECURITY.md 5.8: each node has its own nonce cache. Through HAProxy a
# replay carries the same client id, so it reaches the node that saw the
# token; straight to another node's port it is the documented residual. A
# fresh device (no running device's id): it logs in, subscribes, leaves.
cl_device dev-9
TOK_PW=$(it_veil token --identity "$IT_KEYS/dev-9.key" --credential "$IT_KEYS/dev-9.cred" --client-id dev-9 \
	--audience "$CL_AUDIENCE" --password)
token_login() { # PORT
	timeout "$(it_secs 10)" mosquitto_sub -h 127.0.0.1 -p "$1" -V mqttv311 -i dev-9 -u dev-9 -P "$TOK_PW" \
		-t fleet/dev-9/t -E >/dev/null 2>&1
}
token_refused() { ! token_login "$@"; }
it_check "dev-9's token logs in through HAProxy" token_login "$CL_HAPROXY_PORT"
TOK_NODE=$(node_of dev-9)
it_check "node $TOK_NODE accepted it" it_log_wait "$TOK_NODE" "auth \\| accept \\| client=dev-9 .*token=v2" 5
it_check "the same token again through HAProxy: refused" token_refused "$CL_HAPROXY_PORT"
it_check "HAProxy sent the replay to node $TOK_NODE again (same client id)" [ "$(node_of dev-9)" = "$TOK_NODE" ]
it_check "node $TOK_NODE refused the replay (replayed-token)" \
	it_log_wait "$TOK_NODE" "auth \\| refuse \\| client=dev-9 .*reason=replayed-token" 5
TOK_OTHER=$(others "$TOK_NODE" a b c | head -n 1)
it_check "documented residual (SECURITY.md 5.8): the same token straight at node $TOK_OTHER's port is accepted" \
	token_login "$(it_broker_port "$TOK_OTHER")"
it_check "node $TOK_OTHER accepted it (its own nonce cache never saw it)" \
	it_log_wait "$TOK_OTHER" "auth \\| accept \\| client=dev-9 .*token=v2" 5

# ---- the node keyd is connected to dies ---------------------------------------------------
DEAD=$(node_of veil-keyd)
MOVED=() SURV=()
for d in "${REST[@]}"; do if [ "${ON[$d]}" = "$DEAD" ]; then MOVED+=("$d"); else SURV+=("$d"); fi; done
it_log "SIGKILL node $DEAD (keyd's; devices there: ${MOVED[*]:-none})"
# Otherwise every check on the moved devices below passes over an empty list.
it_check "node $DEAD served at least one remaining device (${#MOVED[@]}: ${MOVED[*]:-none})" [ "${#MOVED[@]}" -gt 0 ]
phase kill
it_check "phase revoke settled" it_wait_until 30 settled revoke
declare -A CONNECTS
for d in "${MOVED[@]}"; do CONNECTS[$d]=$(status "$d" connects); done
keyd_conn=$(grep -c 'mqtt | connected' "$(CL_KEYD_LOG)" || true)
kill_t0=$(now_ms)
it_broker_kill "$DEAD"
reconnected() {
	local d
	for d in "${MOVED[@]}"; do
		[ "$(status "$d" connects)" -gt "${CONNECTS[$d]}" ] && ready "$d" || return 1
	done
}
it_check "devices of node $DEAD logged in again through HAProxy (${MOVED[*]:-none})" it_wait_until 30 reconnected
it_fig kill_to_devices_back_ms $(( $(now_ms) - kill_t0 ))
for d in "${MOVED[@]}"; do
	n=$(node_of "$d")
	it_check "$d now on node $n, not $DEAD" [ -n "$n" ] && [ "$n" != "$DEAD" ]
	it_check "$d logged in at node $n with a fresh token (audience bound)" \
		it_log_wait "$n" "auth \\| accept \\| client=$d .*token=v2" 5
done
it_check "keyd reconnected through HAProxy" it_wait_until 30 count_grows "$(CL_KEYD_LOG)" 'mqtt | connected' "$keyd_conn"
it_fig kill_to_keyd_back_ms $(( $(now_ms) - kill_t0 ))
it_check "keyd is on a living node ($(node_of veil-keyd))" [ "$(node_of veil-keyd)" != "$DEAD" ]
phase after
it_check "phase kill settled" it_wait_until 30 settled kill
mark_acked "${REST[@]}"
it_check "traffic resumed: every device published 10 messages after the kill" it_wait_until 30 advanced 10 "${REST[@]}"

# ---- 100 bad password logins through HAProxy ------------------------------------------
spray_t0=$(now_ms)
# Ten at a time; each batch waited for by PID (a bare wait would wait for the
# brokers too). mosquitto_pub gives up after its own connect timeout.
SPRAY=()
for i in $(seq 1 100); do
	timeout "$(it_secs 20)" mosquitto_pub -h 127.0.0.1 -p "$CL_HAPROXY_PORT" -V mqttv311 -i "guess-$i" \
		-u "guess-$i" -P "wrong-$i" -t x -m x >/dev/null 2>&1 &
	SPRAY+=($!)
	if [ $((i % 10)) -eq 0 ]; then
		for p in "${SPRAY[@]}"; do wait "$p" || true; done
		SPRAY=()
	fi
done
it_fig spray_seconds $(( ($(now_ms) - spray_t0) / 1000 ))
refusals=0
for n in a b c; do [ "$n" = "$DEAD" ] || refusals=$(( refusals + $(it_log_count "$n" 'auth \| refuse \| client=guess-') )); done
it_check "the 100 bad logins were refused by the nodes (${refusals} refusals)" [ "$refusals" -eq 100 ]
limited=0
for n in a b c; do [ "$n" = "$DEAD" ] || limited=$(( limited + $(it_log_count "$n" 'client=guess-.*reason=(rate-limited|busy)') )); done
it_fig spray_refused_rate_limited_or_busy "$limited"
cl_device dev-7
login_t0=$(now_ms)
it_check "a device's valid login through HAProxy right after the spray (dev-7: publishes once)" \
	timeout "$(it_secs 30)" "$VEIL_CLI" pub --config "$IT_DIR/dev/dev-7.conf" -h 127.0.0.1 -p "$CL_HAPROXY_PORT" \
	-t fleet/dev-7/t -m "dev-7|1|spray|0" -q 1
it_fig device_login_after_spray_ms $(( $(now_ms) - login_t0 ))
# A password user behind the same address: every client has HAProxy's, so the
# nodes name it in plugin_opt_proxy_addresses and key the back-off on the
# username alone (docs/SCALING.md). "busy" (the Argon2id budget of a second)
# is the one refusal a client retries.
meter_login() {
	mosquitto_pub -h 127.0.0.1 -p "$CL_HAPROXY_PORT" -V mqttv311 -i meter -u meter -P METERpassword1 \
		-t meters/meter -m 1 >/dev/null 2>&1
}
login_t0=$(now_ms)
it_check "a password user's valid login through HAProxy right after the spray (meter)" it_wait_until 10 meter_login
it_fig password_login_after_spray_ms $(( $(now_ms) - login_t0 ))
meter_limited() { ! it_log_has "$1" 'client=meter .*reason=rate-limited'; }
for n in a b c; do
	[ "$n" = "$DEAD" ] && continue
	it_check "node $n never refused meter rate-limited" meter_limited "$n"
done

# ---- end: every phase's loss ----------------------------------------------------------------
phase end
for d in "${REST[@]}"; do it_check "$d finished (markers of every device)" it_wait_exit "${DEV_PID[$d]}" 90; done
# lost PHASE "RECEIVERS" "PUBLISHERS": messages a publisher's broker
# acknowledged in PHASE that a receiver (not itself) never opened.
lost() {
	local ph=$1 r p total=0
	for r in $2; do
		for p in $3; do
			[ "$r" = "$p" ] && continue
			total=$(( total + $(awk -v ph="$ph" -v p="$p" '
				FILENAME == ARGV[1] { if ($2 == ph) want[$1 " " $3] = 1; next }
				$1 == p && $3 == ph { delete want[$2 " " $4] }
				END { print length(want) }' "$OUT/$p.acked" "$OUT/$r.recv") ))
		done
	done
	echo "$total"
}
msgs() { local ph=$1 t=0 d; shift; for d in "$@"; do t=$(( t + $(acked_in "$d" "$ph") )); done; echo "$t"; }
for ph in base rotate; do
	it_fig "messages_$ph" "$(msgs "$ph" "${DEVS[@]}")"
	it_check "phase $ph: 0 lost among ${#DEVS[@]} devices on 3 nodes ($OFF offline for part of rotate)" \
		[ "$(lost "$ph" "${DEVS[*]}" "${DEVS[*]}")" -eq 0 ]
done
for ph in revoke after; do
	it_fig "messages_$ph" "$(msgs "$ph" "${REST[@]}")"
	it_check "phase $ph: 0 lost among the ${#REST[@]} remaining devices" [ "$(lost "$ph" "${REST[*]}" "${REST[*]}")" -eq 0 ]
done
it_fig messages_kill "$(msgs kill "${REST[@]}")"
it_fig lost_kill_total "$(lost kill "${REST[*]}" "${REST[*]}")"
it_fig lost_kill_to_devices_of_dead_node "$(lost kill "${MOVED[*]}" "${REST[*]}")"
it_fig lost_kill_from_devices_of_dead_node "$(lost kill "${SURV[*]}" "${MOVED[*]}")"
it_fig lost_kill_among_survivors "$(lost kill "${SURV[*]}" "${SURV[*]}")"
bad=$(cat "$OUT"/*.refused 2>/dev/null | awk '$1 != "revoked" { n += $2 } END { print n + 0 }')
it_check "receivers refused nothing but the revoked sender's messages ($bad other refusals)" [ "$bad" -eq 0 ]
cat "$OUT"/*.refused 2>/dev/null | awk '{ n[$1] += $2 } END { for (k in n) print "  refused", k, n[k] }'
cl_keyd_stop
it_finish
