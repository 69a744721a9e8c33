#!/usr/bin/env bash
# An unmodified Paho app (Debian's paho_c_pub) made a Veil device by the preload.
set -euo pipefail
IT_NAME=paho-sensor
# shellcheck source=../../checks.sh
. /checks.sh
export VEIL_CONFIG=/veil/keys/paho-sensor.conf LD_PRELOAD=/opt/veil/lib/libveil_preload.so
for i in $(seq 0 $((VEIL_MESSAGES - 1))); do
	timeout "$(it_secs 20)" paho_c_pub -h 127.0.0.1 -p "${VEIL_PORT}" -i paho-sensor -q 1 -t fleet/paho-sensor/temp -m "COMPOSESECRETpaho-$i"
done
echo "paho-sensor: published ${VEIL_MESSAGES}"
