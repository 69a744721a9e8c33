#!/usr/bin/env bash
# Installs the Debian 12 packages Veil builds, tests and runs with.
# Idempotent: does nothing when everything is present. Needs root for apt-get.
set -euo pipefail

PKGS=(build-essential cmake pkg-config
      mosquitto mosquitto-dev libmosquitto-dev mosquitto-clients
      libpaho-mqtt-dev paho.mqtt.c-examples libsodium-dev check
      openssl libssl-dev procps)
# Test and hardening tools (sanitizer runtime, fuzzing, capture, memcheck, lint).
PKGS+=(clang libclang-rt-14-dev valgrind tcpdump cppcheck clang-tidy python3 python3-cryptography)
# Round 2: keyd's store, admin JSON and hash tables (as Mosquitto), tests under
# load, the multi-broker front, the metrics path, packages, man pages, ABI check.
PKGS+=(libsqlite3-dev sqlite3 libcjson-dev uthash-dev stress-ng haproxy
      prometheus prometheus-mqtt-exporter debhelper lintian scdoc abigail-tools)
# The packaging stage (integration/packaging/run.sh): dpkg-parsechangelog,
# dpkg-deb; the package build itself runs in a container with the
# Build-Depends of debian/control.
PKGS+=(dpkg-dev)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "veil: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "veil: need root (or sudo) to apt-get install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The broker package starts a system mosquitto on :1883; Veil's tests and demo
# never use it (they start their own on free ports), so leave it alone.
