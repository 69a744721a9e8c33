#!/usr/bin/env bash
# One device of the deployment: veil-cluster-dev (integration/cluster/
# cluster_dev.c) with its client config (identity, credential, authority,
# audience; no keyring), through HAProxy; steered by $VEIL_CL/ctl (phase,
# expect), reporting to $VEIL_CL/out. Exit 0 once it holds the end markers.
set -euo pipefail
. /veil/cluster.env
IT_NAME=$VEIL_DEV
# shellcheck source=../../checks.sh
. /checks.sh
exec veil-cluster-dev --config "$CL/dev/$VEIL_DEV.conf" --uri "tcp://127.0.0.1:$PORT_H" --ctl "$CL/ctl" \
	--out "$CL/out" --rate 5 --connect-timeout "$(it_secs 30)" --end-timeout "$(it_secs 60)" 2>>"$CL/out/$VEIL_DEV.log"
