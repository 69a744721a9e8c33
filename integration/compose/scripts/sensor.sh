#!/usr/bin/env bash
# A libveil sensor: VEIL_MESSAGES encrypted readings and one signed alert;
# with "marker" as second argument, only the end marker (COMPOSEMARKER-0)
# that run.sh publishes after everything else.
set -euo pipefail
id=$1; K=/veil/keys
args=(--uri "tcp://127.0.0.1:${VEIL_PORT}" --id "$id" --identity "$K/$id.key" --credential "$K/$id.cred"
	--authorities "$K/authority.key.pub" --state-dir "/veil/state/$id")
if [ "${2:-}" = marker ]; then
	exec veil-integ pub "${args[@]}" --topic "fleet/$id/temp" --count 1 --prefix COMPOSEMARKER
fi
veil-integ pub "${args[@]}" --topic "fleet/$id/temp" --count "${VEIL_MESSAGES}" --prefix "COMPOSESECRET$id"
veil-integ pub "${args[@]}" --topic "fleet/$id/alert" --count 1 --prefix "COMPOSESECRET$id-alert"
