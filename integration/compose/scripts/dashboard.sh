#!/usr/bin/env bash
# The libveil dashboard: every reading and alert of the three sensors, opened,
# once, in order, none refused, and nothing else (an attacker's payload)
# before the end marker run.sh publishes after the attacker is done. Exit
# status is the verdict.
set -euo pipefail
K=/veil/keys; N=${VEIL_MESSAGES}
IT_NAME=dashboard
# shellcheck source=../../checks.sh
. /checks.sh
exec veil-integ sub --uri "tcp://127.0.0.1:${VEIL_PORT}" --id dashboard --identity $K/dashboard.key \
	--credential $K/dashboard.cred --authorities $K/authority.key.pub --state-dir /veil/state/dashboard \
	--filter 'fleet/#' --expect $((3 * N + 2)) --expect-refused 0 --marker COMPOSEMARKER --timeout "$(it_secs 240)" \
	--print --ready /veil/run/dashboard.ready
