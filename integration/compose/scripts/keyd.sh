#!/usr/bin/env bash
# The key service: its store made on first start, then the daemon (-d: its
# debug lines too), its audit lines in /veil/keyd/keyd.log for run.sh.
set -euo pipefail
C=/veil/keyd/keyd.conf
[ -e /veil/keyd/keyd.db ] || veil-keyd -c "$C" --init >>/veil/keyd/keyd.log 2>&1
exec veil-keyd -c "$C" -d 2>>/veil/keyd/keyd.log
