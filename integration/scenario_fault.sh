#!/usr/bin/env bash
# Faults: the broker (persistence on) is killed with SIGKILL in the middle of
# QoS 1 traffic and restarted on the same port. Every client reconnects by
# itself with a fresh token; every message the broker acknowledged reaches the
# app exactly once (QoS 1 resends of the same envelope are refused by the
# receiver's replay window, never delivered twice). Sizes: VEIL_FAULT_CLIENTS
# (100), VEIL_FAULT_PUBLISHERS (10), VEIL_FAULT_RATE (50/s each), VEIL_FAULT_SECONDS (20).
source "$(dirname "$0")/lib.sh"
it_require_file "$VEIL_INTEG" "veil-integ (libveil)"
it_require_plugin_feature acl_file authority_file

SECS=${VEIL_FAULT_SECONDS:-20}
CLIENTS=${VEIL_FAULT_CLIENTS:-100}
PUBS=${VEIL_FAULT_PUBLISHERS:-10}
RATE=${VEIL_FAULT_RATE:-50}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

it_load_fleet
it_broker_start main "$(it_plugin_conf "$IT_KEYS/load.key.pub" "$ACL")
persistence true
autosave_interval 1
max_queued_messages 1000000"
URI=tcp://127.0.0.1:$(it_broker_port main)
STARTED=$IT_DIR/started
it_integ load --uri "$URI" --authority "$IT_KEYS/load.key" --keyring "$KR" --dir "$IT_DIR/devices" \
	--clients "$CLIENTS" --publishers "$PUBS" --subscribers 2 --rate "$RATE" --seconds "$SECS" --fault \
	--started "$STARTED" --mqtt "${VEIL_IT_MQTT:-5}" >"$IT_DIR/load.out" 2>"$IT_DIR/load.err" &
GEN=$!; it_bg "$GEN"
for i in $(seq 1 600); do [ -e "$STARTED" ] && break; kill -0 "$GEN" 2>/dev/null || break; sleep 0.1; done
it_check "traffic started" test -e "$STARTED"
sleep $((SECS / 3))
before=$(it_log_count main 'New client connected')
it_log "SIGKILL broker pid $(it_broker_pid main) under traffic"
it_broker_kill main
sleep 1
it_check "broker restarted on the same port" it_broker_restart main
rc=0; wait "$GEN" || rc=$?
cat "$IT_DIR/load.out"; tail -5 "$IT_DIR/load.err" >&2
val() { sed -n "s/.* $1=\([-0-9.]*\).*/\1/p" "$IT_DIR/load.out" | tail -1; }
it_check "every acknowledged message delivered, none twice to the app" [ "$rc" -eq 0 ]
it_check "nothing lost" [ "$(val lost)" = 0 ]
it_check "nothing duplicated to the app" [ "$(val duplicates)" = 0 ]
it_check "all $CLIENTS clients reconnected by themselves (fresh tokens)" [ "$(val reconnects)" -ge "$CLIENTS" ]
it_check "all clients connected at the end" [ "$(val connected_at_end)" = "$CLIENTS" ]
it_check "traffic continued after the restart (acked >= 80% of planned)" \
	[ "$(val acked)" -ge $((PUBS * RATE * SECS * 80 / 100)) ]
it_fig reconnect_logins $(( $(it_log_count main 'New client connected') - before ))
for k in sent acked failed delivered lost duplicates refused reconnects; do it_fig "$k" "$(val "$k")"; done
it_finish
