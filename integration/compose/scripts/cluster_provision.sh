#!/usr/bin/env bash
# One-shot, for docker-compose.cluster.yml: the three-node deployment's
# material and configs, made by the very functions of the in-process
# scenario (integration/lib.sh and integration/cluster/cluster.sh, mounted
# at /src/integration): the authority, keyd's and the devices' credentials
# and client configs (no keyring), the rules, the bridges' logins, each
# node's own copies and mosquitto.conf (node b and c bridged to the hub a),
# HAProxy's config and keyd's config and store. Nothing is started here.
# Ports are chosen free on the host network. Writes /veil/cluster.env for
# run.sh: CL (the deployment's directory), the ports.
set -euo pipefail
export VEIL_CLI=/opt/veil/bin/veil VEIL_KEYD=/opt/veil/sbin/veil-keyd MOSQUITTO=/usr/sbin/mosquitto \
	VEIL_PLUGIN=/opt/veil/lib/mosquitto_veil.so VEIL_CLUSTER_DEV=/opt/veil/bin/veil-cluster-dev \
	TMPDIR=/veil VEIL_KEEP_TMP=1
# shellcheck source=../../lib.sh
source /src/integration/lib.sh
# shellcheck source=../../cluster/cluster.sh
source /src/integration/cluster/cluster.sh
cl_material
for d in $CLUSTER_DEVS; do cl_device "$d"; done
pa=$(it_free_port); pb=$(it_free_port); pc=$(it_free_port)
it_broker_conf a "$pa" "$(cl_node_conf a)"
it_broker_conf b "$pb" "$(cl_node_conf b)
$(cl_bridge b "127.0.0.1:$pa")"
it_broker_conf c "$pc" "$(cl_node_conf c)
$(cl_bridge c "127.0.0.1:$pa" "127.0.0.1:$pb")"
cl_haproxy_conf
cl_keyd_conf
mkdir -p "$IT_DIR/ctl" "$IT_DIR/out"
printf '%s\n' $CLUSTER_DEVS >"$IT_DIR/ctl/expect"
echo hold >"$IT_DIR/ctl/phase"
cat >/veil/cluster.env <<ENV
CL=$IT_DIR
PORT_A=$pa
PORT_B=$pb
PORT_C=$pc
PORT_H=$CL_HAPROXY_PORT
ENV
it_log "provisioned $IT_DIR: nodes a:$pa b:$pb c:$pc, HAProxy :$CL_HAPROXY_PORT, keyd, devices $CLUSTER_DEVS"
