#!/usr/bin/env bash
# Load, as fixed work: VEIL_LOAD_CLIENTS (1000) authenticated clients, of
# which VEIL_LOAD_PUBLISHERS (100) publish VEIL_LOAD_MESSAGES (600,000) QoS 1
# messages in total through the plugin (encrypted topics, envelope and sender
# checks on every message) to VEIL_LOAD_SUBSCRIBERS (4) dashboards, in two
# rounds, each drained. Each publisher paces itself at most at
# VEIL_LOAD_RATE (100) msg/s, as a device would, and all pause while 4,000
# messages are in transit (the broker's queue stays bounded); a slower
# machine simply takes longer: the achieved rate and the time are reported
# (FIGURE), never judged. Judged: nothing acknowledged lost, nothing
# duplicated to the app, every message acknowledged, every client connected
# from start to end, no connect or publish failure, the idle-client workers
# exited cleanly, the plugin refused nothing, and the broker's RSS is
# stable: RSS after the second drained round may exceed the first by at most
# 10% + 2 MiB (a leak grows with every round, a bounded queue does not).
# Each round is bounded by its work at a floor rate far below any machine's
# (VEIL_LOAD_FLOOR_RATE, 500 msg/s) and by 60 s without any message
# acknowledged or delivered, both scaled by the time factor: past either the
# run "made no progress" and fails.
# The idle clients live in worker processes of their own (veil-integ load
# --idle-per-process), as devices do: one Paho process serving 1,000
# connections cannot keep 10,000 msg/s on 2 cores (docs/INTEGRATION.md).
# Under ASan (VEIL_ASAN_RUNTIME) the work is 30,000 messages (the
# instrumented build is several times slower) and RSS is reported, not
# judged (ASan's quarantine keeps freed memory resident).
source "$(dirname "$0")/lib.sh"
it_require_built "$VEIL_INTEG" "veil-integ (libveil)"

CLIENTS=${VEIL_LOAD_CLIENTS:-1000}
PUBS=${VEIL_LOAD_PUBLISHERS:-100}
SUBS=${VEIL_LOAD_SUBSCRIBERS:-4}
RATE=${VEIL_LOAD_RATE:-100}
FLOOR=${VEIL_LOAD_FLOOR_RATE:-500}
ROUNDS=2
# At most this many messages published but not yet delivered: each costs the
# broker ~430 bytes while queued, and its heap keeps the high-water mark, so
# a bounded queue (~1.7 MB) keeps the RSS of the two drained rounds
# comparable however far the dashboards fall behind on a busy machine.
BACKLOG=4000
if [ -z "$VEIL_ASAN_RUNTIME" ]; then
	MESSAGES=${VEIL_LOAD_MESSAGES:-600000}
else
	MESSAGES=${VEIL_LOAD_MESSAGES:-30000}
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -gt $((CLIENTS + 100)) ] ||
	it_skip "open file limit $(ulimit -n) (hard limit $(ulimit -Hn)) cannot be raised above $((CLIENTS + 100)) for $CLIENTS clients"

it_load_fleet
# Queues are large enough that the broker never drops a QoS 1 message for a
# slow subscriber.
it_broker_start main "$(it_plugin_conf "$IT_KEYS/load.key.pub" "$ACL")
max_queued_messages 1000000
max_inflight_messages 100"
URI=tcp://127.0.0.1:$(it_broker_port main)
ROUND_BOUND=$(it_secs $((MESSAGES / ROUNDS / FLOOR + 1)))
it_log "load: $CLIENTS clients, $PUBS publishers, $MESSAGES QoS 1 messages in $ROUNDS rounds (at most $RATE msg/s" \
	"each), $SUBS subscribers; a round is bounded at ${ROUND_BOUND} s"
it_integ load --uri "$URI" --authority "$IT_KEYS/load.key" --keyring "$KR" --dir "$IT_DIR/devices" \
	--clients "$CLIENTS" --publishers "$PUBS" --subscribers "$SUBS" --rate "$RATE" --messages "$MESSAGES" \
	--rounds "$ROUNDS" --broker-pid "$(it_broker_pid main)" --mqtt "${VEIL_IT_MQTT:-5}" \
	--step-timeout "$(it_secs 30)" --setup-timeout "$(it_secs 120)" --stall-timeout "$(it_secs 60)" \
	--round-timeout "$ROUND_BOUND" --max-backlog "$BACKLOG" >"$IT_DIR/load.out" 2>"$IT_DIR/load.err" && rc=0 || rc=$?
cat "$IT_DIR/load.out"; tail -5 "$IT_DIR/load.err" >&2
val() { sed -n "s/.* $1=\([-0-9.]*\).*/\1/p" "$IT_DIR/load.out" | tail -1; }
it_check "load generator: every acknowledged message delivered once, none refused" [ "$rc" -eq 0 ]
it_check "every round made progress to its end (no stall, within its bound)" \
	bash -c "[ '$(val progress)' = 1 ] && ! grep -q 'made no progress' '$IT_DIR/load.out'"
it_check "all $CLIENTS clients authenticated and connected" [ "$(val connected)" = "$CLIENTS" ]
it_check "all $MESSAGES messages acknowledged" [ "$(val acked)" = "$MESSAGES" ]
it_check "all $CLIENTS clients still connected at the end" [ "$(val connected_at_end)" = "$CLIENTS" ]
it_check "nothing lost" [ "$(val lost)" = 0 ]
it_check "nothing duplicated to the app (every publisher's end marker arrived)" \
	bash -c "[ '$(val duplicates)' = 0 ] && [ '$(val markers)' = 1 ]"
it_check "no publish failed" [ "$(val failed)" = 0 ]
it_check "no connect failed" [ "$(val connect_failures)" = 0 ]
it_check "every idle-client worker process exited cleanly" [ "$(val workers_ok)" = 1 ]
r1=$(val broker_rss_kb_round1_drained); r2=$(val broker_rss_kb_after_drain)
if [ -z "$VEIL_ASAN_RUNTIME" ]; then
	it_check "broker RSS stable: round 1 drained ${r1} KiB, round 2 drained ${r2} KiB" \
		bash -c "[ '${r2:-0}' -gt 0 ] && [ '${r2:-0}' -le $((${r1:-0} + ${r1:-0} / 10 + 2048)) ]"
else
	it_log "ASan build: broker RSS ${r1} -> ${r2} KiB not judged (quarantine)"
fi
it_check "plugin refused nothing" [ "$(it_log_count main 'veil: acl \| (refuse|deny)')" -eq 0 ]
it_check "broker alive" it_broker_alive main
for k in processes messages sent acked lost duplicates delivered msgs_per_s elapsed_seconds backlog_max backlog_at_end \
	drain_seconds broker_rss_kb_before broker_rss_kb_mid broker_rss_kb_end_traffic broker_rss_kb_round1_drained \
	broker_rss_kb_after_drain; do
	it_fig "$k" "$(val "$k")"
done
it_fig offered_msgs_per_s "$((PUBS * RATE))"
it_finish
