#!/usr/bin/env bash
# Benchmark (not a test): N authenticated Veil clients held connected at once
# across the three Mosquitto nodes of the cluster topology (docs/SCALING.md:
# nodes with the plugin, star bridges, HAProxy, veil-keyd through HAProxy),
# N/10 of them publishing sealed envelopes; run for each size given
# (default 1000 then 10000), each on a deployment of its own, and the growth
# from the first size to the last printed at the end.
#
#   VEIL_BUILD_DIR=build/x [VEIL_SCALE_REPEAT=R] bench/cluster_scale.sh [N...]
#
# Per size, in order: the deployment (integration/cluster/cluster.sh) with
# several HAProxy processes on one port (below); a check that every HAProxy
# process sends a client id to the same node; N devices in VEIL_SCALE_WORKERS
# (4) worker processes (bench/bench_cluster_scale.c: provisioning in-process,
# a token login each, a key request to keyd, idle but for MQTT keep-alives,
# publishers in a closed loop); then
#   connect rate   N / (last CONNACK - first CONNECT), over all workers;
#   keys           first CONNECT to every device holding keyd's bundle;
#   held           each node's $SYS/broker/clients/connected minus its own
#                  count before the devices (bridges, keyd, the monitor):
#                  the sum must be N, at the start, every 10 s and at the
#                  end of the VEIL_SCALE_HOLD_S (60) s hold;
#   throughput     PUBACKs per second to the publishers over the hold (the
#                  first 5 s left out);
#   memory         VmRSS of each mosquitto (/proc) before the devices, with
#                  them connected (idle) and after the hold: the growth per
#                  client;
#   rekey          `veil keys rotate` of the scope every device holds to
#                  keyd's acknowledgement from all N (its `ack | record`).
# Any connect that fails, connection lost, device without keys or count
# that is not N fails the run (exit 1): it never holds fewer quietly.
#
# HAProxy: it holds two descriptors per client and a process may open 20,000
# here (hard RLIMIT_NOFILE), so VEIL_SCALE_HAPROXY (3) processes bind the same
# port (HAProxy sets SO_REUSEPORT; the kernel spreads connections over
# them), each with maxconn 6000, and route by a hash of the MQTT client id
# (CL_HAPROXY_ROUTING=hash) instead of a stick table, which each process
# would keep on its own. Loopback only; every process started and stopped by
# PID (integration/lib.sh), every wait bounded.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" != --one ]; then
	# ---- the driver: the sizes interleaved, VEIL_SCALE_REPEAT (1) rounds ----
	sizes=("$@")
	[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000)
	rounds=${VEIL_SCALE_REPEAT:-1}
	res=$(mktemp -d "${TMPDIR:-/tmp}/veil-cluster-scale-res.XXXXXX")
	for r in $(seq 1 "$rounds"); do
		for n in "${sizes[@]}"; do
			echo "==== $n clients, round $r of $rounds ===="
			out=$res/$n.$r.out
			bash "$0" --one "$n" 2>&1 | tee "$out" || true
			grep -q '^FIGURE cluster_scale failed=0$' "$out" ||
				{ echo "cluster_scale: the run of $n clients failed (output: $out)"; exit 1; }
		done
	done
	# fig N K: "median [min - max]" of figure K over the rounds of size N;
	# med N K: the median alone.
	vals() { cat "$res/$1".*.out | awk -v k="$2" '$1 == "FIGURE" { split($3, a, "="); if (a[1] == k) print a[2] }' | sort -g; }
	med() { vals "$1" "$2" | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
	fig() {
		local m lo hi
		m=$(med "$1" "$2") lo=$(vals "$1" "$2" | head -n 1) hi=$(vals "$1" "$2" | tail -n 1)
		if [ "$lo" = "$hi" ]; then echo "$m"; else echo "$m [$lo-$hi]"; fi
	}
	first=${sizes[0]} last=${sizes[${#sizes[@]} - 1]}
	echo "==== growth: $first -> $last clients, $rounds round(s) interleaved, median [min-max]" \
		"($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores) ===="
	printf '%-32s' figure; for n in "${sizes[@]}"; do printf '%24s' "$n"; done; printf '%10s\n' "x growth"
	for k in connect_rate_per_s connect_s keys_all_s keys_all_acked_s throughput_msgs_per_s publishers \
		rss_idle_per_client_kib rss_per_client_kib rss_before_kib rss_after_kib rekey_all_acked_s provision_per_s \
		keyd_stale_refusals_connect bundles_not_opened_connect keyd_stale_refusals_rekey; do
		printf '%-32s' "$k"
		for n in "${sizes[@]}"; do printf '%24s' "$(fig "$n" "$k")"; done
		awk -v a="$(med "$first" "$k")" -v b="$(med "$last" "$k")" \
			'BEGIN { if (a + 0 > 0) printf "%10.2f\n", b / a; else printf "%10s\n", "-" }'
	done
	rm -rf "$res"
	exit 0
fi

# ---- one size ------------------------------------------------------------------
N=$2
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
source "$HERE/../integration/lib.sh"
# shellcheck source=../integration/cluster/cluster.sh
source "$HERE/../integration/cluster/cluster.sh"
WORKER=${VEIL_SCALE_WORKER:-$IT_BUILD/bench/bench_cluster_scale}
it_require_built "$WORKER" "bench_cluster_scale"
it_require_built "$VEIL_KEYD" "veil-keyd"
it_require_sys "$HAPROXY" haproxy
it_require_sys mosquitto_sub mosquitto-clients
WORKERS=${VEIL_SCALE_WORKERS:-4}
HAPROCS=${VEIL_SCALE_HAPROXY:-3}
HOLD=${VEIL_SCALE_HOLD_S:-60}
PUBS=$(( N / 10 ))
CTL=$IT_DIR/ctl OUT=$IT_DIR/out
mkdir -p "$CTL" "$OUT"
echo hold >"$CTL/phase"

# Descriptors: the hard limit for everything started from here (the nodes
# inherit it). Each node holds about N/3 clients, each HAProxy process twice
# its share, each worker N/WORKERS: say which limit does not fit, never cap.
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
CL_HAPROXY_MAXCONN=6000
need_node=$(( N * 13 / 30 + 100 )) need_worker=$(( N / WORKERS + 64 )) need_ha=$(( 2 * CL_HAPROXY_MAXCONN + 200 ))
for x in "node:$need_node" "worker:$need_worker" "haproxy:$need_ha"; do
	[ "${x#*:}" -le "$NOFILE" ] || it_fatal "RLIMIT_NOFILE $NOFILE is below the ${x%%:*}'s ${x#*:} descriptors"
done
[ $(( HAPROCS * CL_HAPROXY_MAXCONN )) -ge $(( N * 13 / 10 + 10 )) ] ||
	it_fatal "$HAPROCS HAProxy processes x maxconn $CL_HAPROXY_MAXCONN cannot carry $N clients with 30% to spare"
it_log "$N clients, $PUBS publishing, $WORKERS workers, $HAPROCS HAProxy processes (maxconn $CL_HAPROXY_MAXCONN each), RLIMIT_NOFILE $NOFILE, $(nproc) cores"

# ---- the deployment ----------------------------------------------------------------
# shellcheck disable=SC2034 # cluster.sh reads these
CL_HAPROXY_ROUTING="hash"
# Requests of thousands of devices queue at keyd for longer than the
# scenario's 5 s window: keyd's default (60 s, the plugin's).
# shellcheck disable=SC2034
CL_KEYD_TOKEN_WINDOW=60
cl_material
# The monitor: a password user that may read $SYS (and nothing else).
MON_PW=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$MON_PW" | it_veil passwd add "$CL_M/passwd" monitor >/dev/null 2>&1
printf 'user monitor\ntopic read %s\n' '$SYS/#' >>"$CL_M/acl"
PROBES=(probe-1 probe-2 probe-3)
for p in "${PROBES[@]}"; do cl_device "$p"; done
cl_nodes_start
for n in a b c; do
	it_log "node $n pid $(it_broker_pid "$n"): $(grep 'Max open files' "/proc/$(it_broker_pid "$n")/limits")"
done

cl_haproxy_conf
HA_PIDS=()
for i in $(seq 1 "$HAPROCS"); do
	"$HAPROXY" -f "$IT_DIR/haproxy.cfg" -db >"$IT_DIR/haproxy-$i.log" 2>&1 &
	HA_PIDS+=($!)
	it_bg "$!"
done
it_wait_port "$CL_HAPROXY_PORT" 10
for p in "${HA_PIDS[@]}"; do
	it_check "HAProxy process $p running ($(grep 'Max open files' "/proc/$p/limits" | awk '{print "nofile", $4}'))" kill -0 "$p"
done
ha_node_of() { cat "$IT_DIR"/haproxy-*.log | awk -v c="client=$1" '$2 == c { sub(/^node=/, "", $3); print $3 }' | sort -u; }
ha_procs_of() { grep -l "connect client=$1 " "$IT_DIR"/haproxy-*.log | wc -l; }

# Every HAProxy process sends a client id to one node: each probe logs in
# ten times (fresh tokens), the kernel spreads the connections over the
# processes.
for p in "${PROBES[@]}"; do
	for i in $(seq 1 10); do
		pw=$(it_veil token --identity "$IT_KEYS/$p.key" --credential "$IT_KEYS/$p.cred" --client-id "$p" \
			--audience "$CL_AUDIENCE" --password)
		timeout "$(it_secs 10)" mosquitto_pub -h 127.0.0.1 -p "$CL_HAPROXY_PORT" -V mqttv311 -i "$p" -u "$p" -P "$pw" \
			-t probe -m x -q 0 >/dev/null 2>&1 || true
	done
	got() { [ "$(grep -h -c "connect client=$1 " "$IT_DIR"/haproxy-*.log | awk '{ s += $1 } END { print s }')" -ge 10 ]; }
	it_wait_until 5 got "$p" || true
	nodes=$(ha_node_of "$p" | tr '\n' ' ')
	it_check "$p: 10 logins through $(ha_procs_of "$p") HAProxy processes all reached one node ($nodes)" \
		[ "$(ha_node_of "$p" | wc -l)" -eq 1 ]
done
it_check "the probes' connections met at least 2 HAProxy processes" \
	[ "$(cat "$IT_DIR"/haproxy-*.log | grep -c 'connect client=probe-')" -ge 30 ] &&
	[ "$(grep -l 'connect client=probe-' "$IT_DIR"/haproxy-*.log | wc -l)" -ge 2 ]

cl_keyd_conf
"$VEIL_KEYD" -c "$IT_DIR/keyd/keyd.conf" 2>>"$(CL_KEYD_LOG)" &
CL_KEYD_PID=$!
it_bg "$CL_KEYD_PID"
it_check "veil-keyd logged in through HAProxy" it_wait_until 15 cl__keyd_subscribed 1
[ "$IT_FAILS" -eq 0 ] || it_fatal "the deployment is not up"

# ---- counts and memory ---------------------------------------------------------------
# One monitor per node, connected all along (so it is counted once, in the
# node's own count before the devices): it writes each new value of
# $SYS/broker/clients/connected (sys_interval 1: published within a second
# of a change) to OUT/sys-NODE; the latest line is the count.
# A monitor's login is a password login: one Argon2id run within the node's
# budget (200 ms a second), which the bridges' logins may just have spent
# ("busy"): it tries again, one second later, five times at most.
mon_start() {
	mosquitto_sub -h 127.0.0.1 -p "$(it_broker_port "$1")" -V mqttv311 -i monitor -u monitor -P "$MON_PW" \
		-t "\$SYS/broker/clients/connected" >"$OUT/sys-$1" 2>"$OUT/sys-$1.err" &
	MON_PID[$1]=$!
}
mon_up() { [ -s "$OUT/sys-$1" ] || it__gone "${MON_PID[$1]}"; }
declare -A MON_PID
for n in a b c; do
	for try in 1 2 3 4 5; do
		mon_start "$n"
		it_wait_until 10 mon_up "$n" || true
		[ -s "$OUT/sys-$n" ] && break
		it_log "monitor of node $n: $(cat "$OUT/sys-$n.err") (try $try)"
		kill "${MON_PID[$n]}" 2>/dev/null || true
		wait "${MON_PID[$n]}" 2>/dev/null || true
		sleep 1   # the node's Argon2id budget is per second
	done
	it_bg "${MON_PID[$n]}"
done
sys_connected() { tail -n 1 "$OUT/sys-$1" 2>/dev/null | grep -E '^[0-9]+$'; }
# The monitors' own connections counted: two updates since they started.
sys_settled() { local n; for n in a b c; do [ "$(wc -l <"$OUT/sys-$n")" -ge 1 ] || return 1; done; }
it_check "the monitors read \$SYS/broker/clients/connected on every node" it_wait_until 10 sys_settled
# The count with the monitor itself: wait until it is past the value
# published before the monitor connected (that value did not count it).
sys_past_first() { local n; for n in a b c; do [ "$(wc -l <"$OUT/sys-$n")" -ge 2 ] || return 1; done; }
it_wait_until 5 sys_past_first || true
declare -A BASE HELD
for n in a b c; do
	BASE[$n]=$(sys_connected "$n") || it_fatal "node $n: no \$SYS/broker/clients/connected for the monitor"
done
it_log "before the devices, \$SYS/broker/clients/connected (bridges, keyd, the monitor itself): a=${BASE[a]} b=${BASE[b]} c=${BASE[c]}"
# held: every node's count now minus its own before: HELD[n], HELD_SUM.
HELD_SUM=0
held() {
	local n c
	HELD_SUM=0
	for n in a b c; do
		c=$(sys_connected "$n") || { HELD_SUM="?"; return 1; }
		HELD[$n]=$(( c - BASE[$n] ))
		HELD_SUM=$(( HELD_SUM + HELD[$n] ))
	done
}
held_all() { held && [ "$HELD_SUM" = "$N" ]; }
# until_ms T: the hold's clock (a measuring window, not an event).
until_ms() { while [ "$(it__now_ms)" -lt "$1" ]; do sleep 0.2; done; }
rss_sum() { local n s=0; for n in a b c; do s=$(( s + $(it_broker_rss "$n") )); done; echo "$s"; }
RSS0=$(rss_sum)
it_log "mosquitto VmRSS before the devices: a=$(it_broker_rss a) b=$(it_broker_rss b) c=$(it_broker_rss c) kB"

# ---- the devices -----------------------------------------------------------------------
sum() { cat "$OUT"/w*.status 2>/dev/null | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { s += $2 } END { printf "%.0f\n", s }'; }
agg() { cat "$OUT"/w*.status 2>/dev/null | tr ' ' '\n' | awk -F= -v k="$1" -v f="$2" '$1 == k && $2 > 0 {
	if (v == "" || (f == "min" && $2 < v) || (f == "max" && $2 > v)) v = $2 + 0 } END { printf "%.3f\n", v }'; }
W_PIDS=()
per=$(( N / WORKERS )) pper=$(( PUBS / WORKERS ))
for k in $(seq 0 $(( WORKERS - 1 ))); do
	cnt=$per pc=$pper
	[ "$k" -lt $(( WORKERS - 1 )) ] || { cnt=$(( N - per * (WORKERS - 1) )); pc=$(( PUBS - pper * (WORKERS - 1) )); }
	"$WORKER" --uri "$(CL_URI)" --authority "$IT_KEYS/fleet.key" --audience "$CL_AUDIENCE" --first $(( k * per )) \
		--count "$cnt" --publishers "$pc" --ctl "$CTL" --out "$OUT/w$k.status" --deadline $(( HOLD + 1200 )) \
		2>>"$OUT/w$k.log" &
	W_PIDS+=($!)
	it_bg "$!"
done
settled() { [ $(( $(sum ok) + $(sum conn_failed) )) -ge "$N" ]; }
all_keyed() { [ "$(sum keyed)" -ge "$N" ] || [ "$(sum conn_failed)" -gt 0 ] || [ "$(sum lost)" -gt 0 ]; }
t_start=$(it__now_ms)
it_check "every connect answered (CONNACK or failure) within 300 s" it_wait_until 300 settled
it_log "connects: $(sum ok) ok, $(sum conn_failed) failed, $(sum lost) lost; provisioning $(agg provision_s max) s per worker"
it_check "all $N devices logged in through HAProxy ($(sum conn_failed) failed)" \
	[ "$(sum ok)" -eq "$N" ] && [ "$(sum conn_failed)" -eq 0 ]
first_ms=$(agg first_connect_ms min) last_ms=$(agg last_connect_ms max)
it_fig connect_s "$(awk -v a="$first_ms" -v b="$last_ms" 'BEGIN { printf "%.2f", (b - a) / 1000 }')"
it_fig connect_rate_per_s "$(awk -v a="$first_ms" -v b="$last_ms" -v n="$(sum ok)" 'BEGIN { printf "%.0f", n * 1000 / (b - a) }')"
it_fig provision_per_s "$(awk -v t="$(agg provision_s max)" -v n="$N" 'BEGIN { printf "%.0f", n / t }')"
it_check "every device holds keyd's bundle (within 600 s)" it_wait_until 600 all_keyed
it_check "$(sum keyed) of $N devices keyed" [ "$(sum keyed)" -eq "$N" ]
it_fig keys_all_s "$(awk -v a="$first_ms" -v b="$(date +%s%3N)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')"
# keyd has answered every acknowledgement the devices sent (one per bundle
# opened): recorded, or refused (stale-token: it waited in keyd's queue for
# longer than token_window; the device then cannot open the next bundle,
# sealed to the receive key that acknowledgement carried, and asks again).
acks() { grep -c 'ack | record' "$(CL_KEYD_LOG)" || true; }
stale() { grep -c 'request | refuse .*reason=stale-token' "$(CL_KEYD_LOG)" || true; }
drained() { [ $(( $(acks) + $(stale) )) -ge "$(sum bundles)" ]; }
it_check "keyd answered every acknowledgement (within 600 s)" it_wait_until 600 drained
it_fig keys_all_acked_s "$(awk -v a="$first_ms" -v b="$(date +%s%3N)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')"
it_fig keyd_stale_refusals_connect "$(stale)"
it_fig bundles_not_opened_connect "$(sum open_errors)"
[ "$IT_FAILS" -eq 0 ] || it_fatal "not all $N devices are connected with keys: $(sum ok) connected, $(sum conn_failed) failed, $(sum lost) lost, $(sum keyed) keyed (worker logs: $OUT)"

# ---- the hold: N held, the publishers publishing -------------------------------------------
it_check "the nodes count all $N devices (\$SYS/broker/clients/connected)" it_wait_until 10 held_all
it_log "held per node: a=${HELD[a]} b=${HELD[b]} c=${HELD[c]}; HAProxy connections per process:$(for f in "$IT_DIR"/haproxy-*.log; do printf ' %s' "$(grep -c 'connect client=s' "$f")"; done)"
for n in a b c; do it_fig "held_node_$n" "${HELD[$n]}"; done
RSS_IDLE=$(rss_sum)
it_log "mosquitto VmRSS with the devices connected, before publishing: a=$(it_broker_rss a) b=$(it_broker_rss b) c=$(it_broker_rss c) kB"
it_fig rss_idle_per_client_kib "$(awk -v a="$RSS0" -v b="$RSS_IDLE" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / n }')"
it_fig publishers "$PUBS"
echo publish >"$CTL/phase.tmp" && mv "$CTL/phase.tmp" "$CTL/phase"
hold_t0=$(it__now_ms)
until_ms $(( hold_t0 + 5000 ))
a0=$(sum acked) t0=$(date +%s%3N)
checks=0 bad=0
while [ $(( $(it__now_ms) - hold_t0 )) -lt $(( HOLD * 1000 )) ]; do
	next=$(( hold_t0 + (checks + 1) * 10000 ))
	[ "$next" -lt $(( hold_t0 + HOLD * 1000 )) ] || next=$(( hold_t0 + HOLD * 1000 ))
	until_ms "$next"
	checks=$(( checks + 1 ))
	held || true
	[ "$HELD_SUM" = "$N" ] && [ "$(sum lost)" -eq 0 ] || bad=$(( bad + 1 ))
	it_log "hold +$(( ($(it__now_ms) - hold_t0) / 1000 )) s: held $HELD_SUM (a=${HELD[a]} b=${HELD[b]} c=${HELD[c]}), lost $(sum lost), acked $(sum acked)"
done
a1=$(sum acked) t1=$(date +%s%3N)
echo hold >"$CTL/phase.tmp" && mv "$CTL/phase.tmp" "$CTL/phase"
it_check "all $N held at each of the $checks counts of the ${HOLD} s hold, none lost" [ "$bad" -eq 0 ]
it_check "no publish refused or failed ($(sum pub_failed) failed, $(sum send_errors) not sent)" \
	[ "$(sum pub_failed)" -eq 0 ] && [ "$(sum send_errors)" -eq 0 ]
it_fig throughput_msgs_per_s "$(awk -v a="$a0" -v b="$a1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 / (e - s) }')"
RSS1=$(rss_sum)
it_log "mosquitto VmRSS after the hold: a=$(it_broker_rss a) b=$(it_broker_rss b) c=$(it_broker_rss c) kB"
it_fig rss_before_kib "$RSS0"
it_fig rss_after_kib "$RSS1"
it_fig rss_per_client_kib "$(awk -v a="$RSS0" -v b="$RSS1" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / n }')"

# ---- rekey of the scope all N hold -------------------------------------------------------------------
acks0=$(acks) bundles0=$(sum bundles) stale0=$(stale) noopen0=$(sum open_errors)
all_acked() { [ "$(acks)" -ge $(( acks0 + N )) ]; }
rk_t0=$(date +%s%3N)
it_check "veil keys rotate queued" cl_keys rotate 'fleet/+/#'
it_check "keyd recorded every device's acknowledgement of the new bundle (within 600 s)" it_wait_until 600 all_acked
rk_t1=$(date +%s%3N)
it_fig rekey_all_acked_s "$(awk -v a="$rk_t0" -v b="$rk_t1" 'BEGIN { printf "%.1f", (b - a) / 1000 }')"
reopened() { [ $(( $(sum bundles) - bundles0 )) -ge "$N" ]; }
it_check "every device opened the new bundle (the workers' counts)" it_wait_until 5 reopened
it_check "still no connection lost ($(sum lost))" [ "$(sum lost)" -eq 0 ]
it_fig keyd_stale_refusals_rekey $(( $(stale) - stale0 ))
it_fig bundles_not_opened_rekey $(( $(sum open_errors) - noopen0 ))

echo stop >"$CTL/phase.tmp" && mv "$CTL/phase.tmp" "$CTL/phase"
for p in "${W_PIDS[@]}"; do it_check "worker $p finished" it_wait_exit "$p" 120; done
it_log "total $(( ($(it__now_ms) - t_start) / 1000 )) s from the first worker's start"
it_finish
