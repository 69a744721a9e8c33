#!/usr/bin/env bash
# A libveil sensor: VEIL_MESSAGES encrypted readings and one signed alert.
set -euo pipefail
id=$1; K=/veil/keys
args=(--uri "tcp://127.0.0.1:${VEIL_PORT}" --id "$id" --identity "$K/$id.key" --credential "$K/$id.cred"
	--keyring "$K/keyring" --state-dir "/veil/state/$id")
veil-integ pub "${args[@]}" --topic "fleet/$id/temp" --count "${VEIL_MESSAGES}" --prefix "COMPOSESECRET$id"
veil-integ pub "${args[@]}" --topic "fleet/$id/alert" --count 1 --prefix "COMPOSESECRET$id-alert"
