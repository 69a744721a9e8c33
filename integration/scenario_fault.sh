#!/usr/bin/env bash
# Faults: the broker (persistence on) is killed with SIGKILL in the middle of
# QoS 1 traffic and restarted on the same port. Every client notices, and
# reconnects by itself with a fresh token; the fixed work (every message
# published) is completed after the restart; every message the broker
# acknowledged reaches the app exactly once (QoS 1 resends of the same
# envelope are refused by the receiver's replay window, never delivered
# twice). Nothing about speed is judged. Shape: VEIL_FAULT_CLIENTS (100),
# VEIL_FAULT_PUBLISHERS (10) pacing at most at VEIL_FAULT_RATE (50/s each),
# VEIL_FAULT_MESSAGES (10,000) in total; the broker is killed once a third of
# them are acknowledged.
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_INTEG" "veil-integ (libveil)"

CLIENTS=${VEIL_FAULT_CLIENTS:-100}
PUBS=${VEIL_FAULT_PUBLISHERS:-10}
RATE=${VEIL_FAULT_RATE:-50}
MESSAGES=${VEIL_FAULT_MESSAGES:-10000}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

it_load_fleet
it_broker_start main "$(it_plugin_conf "$IT_KEYS/load.key.pub" "$ACL")
persistence true
autosave_interval 1
max_queued_messages 1000000"
URI=tcp://127.0.0.1:$(it_broker_port main)
STARTED=$IT_DIR/started
PROGRESS=$IT_DIR/progress
it_integ load --uri "$URI" --authority "$IT_KEYS/load.key" --keyring "$KR" --dir "$IT_DIR/devices" \
	--clients "$CLIENTS" --publishers "$PUBS" --subscribers 2 --rate "$RATE" --messages "$MESSAGES" --fault \
	--started "$STARTED" --progress "$PROGRESS" --mqtt "${VEIL_IT_MQTT:-5}" --step-timeout "$(it_secs 30)" \
	--setup-timeout "$(it_secs 60)" --stall-timeout "$(it_secs 60)" \
	--round-timeout "$(it_secs $((MESSAGES / 100 + 60)))" >"$IT_DIR/load.out" 2>"$IT_DIR/load.err" &
GEN=$!; it_bg "$GEN"
gen_alive() { kill -0 "$GEN" 2>/dev/null; }
started() { [ -e "$STARTED" ] || ! gen_alive; }
it_wait_until 60 started || true
it_check "traffic started" test -e "$STARTED"
# progress KEY: the generator's last progress figure (acked, delivered, up).
progress() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" "$PROGRESS" 2>/dev/null | tail -1; }
third_acked() { [ "$(progress acked)" -ge $((MESSAGES / 3)) ] 2>/dev/null || ! gen_alive; }
all_down() { [ "$(progress up)" = 0 ] || ! gen_alive; }
it_wait_until 120 third_acked || true
it_check "a third of the messages acknowledged before the fault ($(progress acked))" \
	[ "$(progress acked)" -ge $((MESSAGES / 3)) ]
acked_at_kill=$(progress acked)
before=$(it_log_count main 'New client connected')
it_log "SIGKILL broker pid $(it_broker_pid main) under traffic ($acked_at_kill acknowledged)"
it_broker_kill main
it_check "every client noticed the broker was gone" it_wait_until 30 all_down
it_check "broker restarted on the same port" it_broker_restart main
rc=0; wait "$GEN" || rc=$?
cat "$IT_DIR/load.out"; tail -5 "$IT_DIR/load.err" >&2
val() { sed -n "s/.* $1=\([-0-9.]*\).*/\1/p" "$IT_DIR/load.out" | tail -1; }
it_check "every acknowledged message delivered, none twice to the app" [ "$rc" -eq 0 ]
it_check "the traffic made progress to its end (no stall) after the restart" \
	bash -c "[ '$(val progress)' = 1 ] && ! grep -q 'made no progress' '$IT_DIR/load.out'"
it_check "all $MESSAGES messages acknowledged (the work finished after the restart)" [ "$(val acked)" = "$MESSAGES" ]
it_check "nothing lost" [ "$(val lost)" = 0 ]
it_check "nothing duplicated to the app (every publisher's end marker arrived)" \
	bash -c "[ '$(val duplicates)' = 0 ] && [ '$(val markers)' = 1 ]"
it_check "all $CLIENTS clients reconnected by themselves (fresh tokens)" [ "$(val reconnects)" -ge "$CLIENTS" ]
it_check "all clients connected at the end" [ "$(val connected_at_end)" = "$CLIENTS" ]
it_fig reconnect_logins $(( $(it_log_count main 'New client connected') - before ))
it_fig acked_at_kill "$acked_at_kill"
for k in sent acked failed delivered lost duplicates refused reconnects msgs_per_s elapsed_seconds; do
	it_fig "$k" "$(val "$k")"
done
it_finish
