#!/usr/bin/env bash
# Debian's paho_c_sub under the preload: prints plaintext; run.sh reads the file.
export VEIL_CONFIG=/veil/keys/paho-dashboard.conf LD_PRELOAD=/opt/veil/lib/libveil_preload.so
exec paho_c_sub -h 127.0.0.1 -p "${VEIL_PORT}" -i paho-dashboard -q 1 -t 'fleet/#' >/veil/run/paho-dashboard.out
