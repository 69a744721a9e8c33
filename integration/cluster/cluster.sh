# shellcheck shell=bash
#
# A Veil deployment of three Mosquitto nodes on this machine (docs/SCALING.md):
# sourced by integration/scenario_cluster.sh after integration/lib.sh, whose
# brokers, ports, deadlines and checks it uses.
#
#   devices, keyd, admins --> HAProxy (one address, sticky per client id)
#                               |            |            |
#                             node a  <--  node b       node c
#                             (hub)   <------------------'
#
# Nodes b and c each bridge to the hub a (a star: a tree, so no message
# travels round); c names b as its second address, so that when the hub is
# down c bridges to b and the tree stays whole. Every node has its own copy of
# the same inputs (authority key, rules, revocation list, password file with
# the bridges' logins), its own state dir, the same plugin options and the
# same deployment name. Owns: the material, the node configs, HAProxy and
# veil-keyd (all started and stopped by PID).

CL_AUDIENCE=plant-a
CL_M=$IT_DIR/material          # the masters every node copies
# CL_PROBE_USER (set before cl_material; empty: none): one more declared
# bridge login that no bridge uses, for cl_retained. A bridge logs in only
# as its own name (client id = username, plugin/auth.c), and node-b and
# node-c are connected at the hub as the real bridges: a second login there
# with either name would take over that bridge's session.
CL_PROBE_USER=${CL_PROBE_USER:-}
CL_PROBE_PW=""
declare -A CL_BRIDGE_PW
CL_HAPROXY_PID=""
CL_KEYD_PID=""
VEIL_KEYD=${VEIL_KEYD:-$IT_BUILD/keyd/veil-keyd}
VEIL_CLUSTER_DEV=${VEIL_CLUSTER_DEV:-$IT_BUILD/integration/veil-cluster-dev}
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}

# ---- material -----------------------------------------------------------------
# cl_material: authority "fleet"; keyd (role veil-keyd) and the admin "ops"
# (role veil-admin); the rules, an empty revocation list, a password file with
# the bridges' logins and the legacy user "meter" (password METERpassword1).
cl_material() {
	mkdir -p "$CL_M"
	it_authority fleet
	it_device fleet veil-keyd veil-keyd
	it_device fleet ops veil-admin
	cp "$IT_KEYS/fleet.key.pub" "$CL_M/authority.pub"
	cat >"$CL_M/acl" <<'ACL_EOF'
# Devices publish their own readings and read the fleet's.
pattern write,encrypted fleet/%c/#
role sensor
topic read fleet/#
# Bridges carry the fleet's topics (Veil's own topics need no rule).
user node-b
topic readwrite fleet/#
user node-c
topic readwrite fleet/#
user meter
topic write meters/meter
ACL_EOF
	printf '# runtime revocations arrive through the admin API\n' >"$CL_M/revoked"
	local n pw
	for n in b c; do
		pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
		CL_BRIDGE_PW[$n]=$pw
		printf '%s\n' "$pw" | it_veil passwd add "$CL_M/passwd" "node-$n" >/dev/null 2>&1
	done
	printf '%s\n' METERpassword1 | it_veil passwd add "$CL_M/passwd" meter >/dev/null 2>&1
	if [ -n "$CL_PROBE_USER" ]; then
		CL_PROBE_PW=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
		printf '%s\n' "$CL_PROBE_PW" | it_veil passwd add "$CL_M/passwd" "$CL_PROBE_USER" >/dev/null 2>&1
	fi
}

# cl_device ID: a key service device: credential (role sensor), client config
# (no keyring: its keys come from keyd), state dir.
cl_device() {
	local id=$1
	it_device fleet "$id" sensor
	mkdir -p "$IT_DIR/dev/$id"
	chmod 700 "$IT_DIR/dev/$id"
	{
		echo "identity $IT_KEYS/$id.key"
		echo "credential $IT_KEYS/$id.cred"
		echo "authorities $CL_M/authority.pub"
		echo "client_id $id"
		echo "audience $CL_AUDIENCE"
		echo "state_dir $IT_DIR/dev/$id"
	} >"$IT_DIR/dev/$id.conf"
	chmod 600 "$IT_DIR/dev/$id.conf"
}

# ---- nodes --------------------------------------------------------------------
# cl_bridge NAME ADDRESS...: a leaf's bridge to the hub (further addresses:
# where it bridges while the first is down).
cl_bridge() {
	local n=$1; shift
	cat <<BRIDGE_EOF
connection to-hub
address $*
round_robin false
bridge_protocol_version mqttv311
try_private true
remote_clientid node-$n
remote_username node-$n
remote_password ${CL_BRIDGE_PW[$n]}
cleansession false
notifications false
restart_timeout 1
topic fleet/# both 1
topic \$veil/v1/# both 1
BRIDGE_EOF
}

# cl_node_conf NAME: the node's own copies of the inputs and its config lines.
cl_node_conf() {
	local n=$1 d
	d=$IT_DIR/node-$n
	mkdir -p "$d/etc" "$d/state"
	chmod 700 "$d/state"
	cp "$CL_M/authority.pub" "$CL_M/acl" "$CL_M/revoked" "$CL_M/passwd" "$d/etc/"
	it_plugin_conf "$d/etc/authority.pub" "$d/etc/acl" \
		"plugin_opt_revocation_file $d/etc/revoked" \
		"plugin_opt_password_file $d/etc/passwd" \
		"plugin_opt_bridge_user node-b" \
		"plugin_opt_bridge_user node-c" \
		${CL_PROBE_USER:+"plugin_opt_bridge_user $CL_PROBE_USER"} \
		"plugin_opt_state_dir $d/state" \
		"plugin_opt_proxy_addresses 127.0.0.1" \
		"plugin_opt_audience $CL_AUDIENCE"
	echo "sys_interval 1"
	echo "max_queued_messages 10000"
}

# cl_nodes_start: the hub, then the leaves; waits until both bridges are up.
cl_nodes_start() {
	local pa pb pc
	pa=$(it_free_port); pb=$(it_free_port); pc=$(it_free_port)
	it_broker_start a "$(cl_node_conf a)" "$pa"
	it_broker_start b "$(cl_node_conf b)
$(cl_bridge b "127.0.0.1:$pa")" "$pb"
	# One bridge login at a time: each costs the hub an Argon2id run, and two
	# in one second may meet the plugin's budget ("busy"; the bridge would
	# retry, at its next address).
	it_check "bridge of b logged in to the hub" cl_wait_bridges a b
	cl_wait_budget a "client=node-b"
	it_broker_start c "$(cl_node_conf c)
$(cl_bridge c "127.0.0.1:$pa" "127.0.0.1:$pb")" "$pc"
	it_check "bridge of c logged in to the hub" cl_wait_bridges a c
}
# cl_wait_budget NODE WHAT: until the second after the one in which NODE
# verified WHAT's password has ended. The plugin spends at most 200 ms of
# Argon2id a second (a bridge login is a password login): a second bridge in
# the same second would be refused "busy" and try its next address.
cl__second_over() { [ "$(date +%s)" -ge $(( $1 + 2 )) ]; }
cl_wait_budget() {
	local t
	t=$(grep -E "auth \| accept \| $2 " "$(it_broker_log "$1")" | tail -n 1 | cut -d: -f1)
	[ -n "$t" ] || return 0
	it_wait_until 5 cl__second_over "$t"
}
# cl_retained NODE TOPIC: what NODE's retained store holds on TOPIC, as
# "<retain flag> <payload in hex>", read with the probe login
# (CL_PROBE_USER): a declared bridge may read the key service's topics
# (plugin/veil_topics.c, vp_vtopic__bridge), a device only its own bundle.
# Nothing when no message came within 3 s or the login was refused (a
# password login: "busy" when the node's Argon2id second is spent; the
# caller retries; after one success the plugin's password cache answers).
cl_retained() {
	timeout "$(it_secs 10)" mosquitto_sub -h 127.0.0.1 -p "$(it_broker_port "$1")" -V mqttv311 \
		-i "$CL_PROBE_USER" -u "$CL_PROBE_USER" -P "$CL_PROBE_PW" -t "$2" -C 1 -W "$(it_secs 3)" \
		-F '%r %x' 2>/dev/null || true
}
cl__bridged() { it_log_has "$1" "New bridge connected from .* as node-$2"; }
cl_wait_bridges() { # HUB LEAF...
	local hub=$1 l; shift
	for l in "$@"; do it_wait_until 15 cl__bridged "$hub" "$l" || return 1; done
}

# ---- HAProxy ------------------------------------------------------------------
# cl_haproxy_start: one frontend on a free port; a CONNECT is read whole
# before a node is chosen (mqtt_is_valid), and its client identifier is the
# stickiness key, so a client id always reaches the node that holds its
# session while that node is up. Logs one line per connection as soon as it
# is established (client id -> node), to $IT_DIR/haproxy.log. cl_haproxy_conf
# only writes and checks $IT_DIR/haproxy.cfg (the compose suite runs it in
# a container of its own).
cl_haproxy_start() {
	cl_haproxy_conf || return 1
	"$HAPROXY" -f "$IT_DIR/haproxy.cfg" -db >"$IT_DIR/haproxy.log" 2>&1 &
	CL_HAPROXY_PID=$!
	it_bg "$CL_HAPROXY_PID"
	it_wait_port "$CL_HAPROXY_PORT" 10
}
cl_haproxy_conf() {
	CL_HAPROXY_PORT=$(it_free_port)
	local cfg=$IT_DIR/haproxy.cfg
	cat >"$cfg" <<HAPROXY_EOF
global
    maxconn $CL_HAPROXY_MAXCONN
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    timeout connect 2s
    # Longer than 1.5 x the longest MQTT keep-alive the clients use.
    timeout client 5m
    timeout server 5m
    retries 2
    option redispatch
frontend mqtt
    bind 127.0.0.1:$CL_HAPROXY_PORT
    maxconn $CL_HAPROXY_MAXCONN
    tcp-request inspect-delay 5s
    tcp-request content reject unless { req.payload(0,0),mqtt_is_valid }
    tcp-request content capture req.payload(0,0),mqtt_field_value(connect,client_identifier) len 128
    tcp-request content set-var(txn.client_id) req.payload(0,0),mqtt_field_value(connect,client_identifier)
    option logasap
    log-format "connect client=%[capture.req.hdr(0)] node=%s"
    default_backend nodes
backend nodes
$(cl_haproxy_routing)
    server b 127.0.0.1:$(it_broker_port b) check inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions$(cl_haproxy_server_opts)
    server c 127.0.0.1:$(it_broker_port c) check inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions$(cl_haproxy_server_opts)
    server a 127.0.0.1:$(it_broker_port a) check inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions$(cl_haproxy_server_opts)
HAPROXY_EOF
	"$HAPROXY" -c -f "$cfg" >"$IT_DIR/haproxy.check" 2>&1 || { cat "$IT_DIR/haproxy.check"; return 1; }
}
# How a client id chooses its node: a stick table (one HAProxy process
# remembers where each id went), or CL_HAPROXY_ROUTING=hash: a hash of the
# id over the servers (consistent hashing), the same in every process, so
# several HAProxy processes on one port (SO_REUSEPORT) agree without sharing
# a table (bench/cluster_scale.sh, docs/SCALING.md "Scale").
CL_HAPROXY_ROUTING=${CL_HAPROXY_ROUTING:-stick}
CL_HAPROXY_MAXCONN=${CL_HAPROXY_MAXCONN:-4096}
# The hash reads the id from a variable set while the CONNECT is inspected:
# `balance hash req.payload(...)` itself found no payload when the server
# was chosen and fell back to spreading (one id reached all three nodes).
# Weight 100 gives each node more points on the ring: a more even spread.
cl_haproxy_routing() {
	if [ "$CL_HAPROXY_ROUTING" = hash ]; then
		echo "    balance hash var(txn.client_id)"
		echo "    hash-type consistent"
	else
		echo "    balance roundrobin"
		echo "    stick-table type string len 128 size 100k expire 24h"
		echo "    stick on req.payload(0,0),mqtt_field_value(connect,client_identifier)"
	fi
}
cl_haproxy_server_opts() { [ "$CL_HAPROXY_ROUTING" != hash ] || printf ' weight 100'; }
CL_URI() { echo "tcp://127.0.0.1:$CL_HAPROXY_PORT"; }
# cl_node_of ID: the node HAProxy sent the client id's latest connection to.
cl_node_of() { awk -v c="client=$1" '$2 == c { n = $3 } END { sub(/^node=/, "", n); print n }' "$IT_DIR/haproxy.log"; }

# ---- veil-keyd ----------------------------------------------------------------
# cl_keyd_conf: keyd logs in through HAProxy like any client. It runs on node
# a's machine and reads that node's runtime revocation file, which the relay
# keeps complete (every revocation made through any node's admin API). One
# key for the fleet: the scope is fleet/+/#, exactly the topics the rule
# "pattern write,encrypted fleet/%c/#" protects (fleet/# would also cover
# the bare topic fleet, unprotected: keyd refuses a scope that straddles).
# CL_KEYD_TOKEN_WINDOW: freshness of device messages at keyd (the scenario's
# 5 s; a fleet of thousands whose requests queue for longer needs more).
CL_KEYD_TOKEN_WINDOW=${CL_KEYD_TOKEN_WINDOW:-5}
cl_keyd_conf() {
	local k=$IT_DIR/keyd
	mkdir -p "$k"
	cat >"$k/keyd.conf" <<KEYD_EOF
broker $(CL_URI)
client_id veil-keyd
identity $IT_KEYS/veil-keyd.key
credential $IT_KEYS/veil-keyd.cred
authorities $CL_M/authority.pub
acl_file $IT_DIR/node-a/etc/acl
revocation_file $IT_DIR/node-a/etc/revoked
runtime_revocation_file $IT_DIR/node-a/state/revocations
database $k/keyd.db
storage_key $k/storage.key
token_window $CL_KEYD_TOKEN_WINDOW
reissue_interval 1
rekey_grace 5
scope fleet/+/# period 3600 lead 300 grace 300 depth 2
KEYD_EOF
	"$VEIL_KEYD" -c "$k/keyd.conf" --init >"$k/init.log" 2>&1 || { cat "$k/init.log"; return 1; }
}
CL_KEYD_LOG() { echo "$IT_DIR/keyd/keyd.log"; }
cl_keyd_start() {
	local before
	before=$(grep -c 'mqtt | subscribed' "$(CL_KEYD_LOG)" 2>/dev/null || true)
	if [ -n "$VEIL_ASAN_RUNTIME" ]; then
		LD_PRELOAD=$VEIL_ASAN_RUNTIME ASAN_OPTIONS=detect_leaks=0 \
			"$VEIL_KEYD" -c "$IT_DIR/keyd/keyd.conf" -d 2>>"$(CL_KEYD_LOG)" &
	else
		"$VEIL_KEYD" -c "$IT_DIR/keyd/keyd.conf" -d 2>>"$(CL_KEYD_LOG)" &
	fi
	CL_KEYD_PID=$!
	it_bg "$CL_KEYD_PID"
	it_wait_until 15 cl__keyd_subscribed "$((before + 1))"
}
cl__keyd_subscribed() { [ "$(grep -c 'mqtt | subscribed' "$(CL_KEYD_LOG)" 2>/dev/null || true)" -ge "$1" ]; }
cl_keyd_stop() { it_stop_pid "$CL_KEYD_PID"; CL_KEYD_PID=""; }
cl_keys() { it_veil keys --db "$IT_DIR/keyd/keyd.db" "$@"; }
