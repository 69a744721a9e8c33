#!/usr/bin/env bash
# The documentation names what the code knows: mosquitto.conf.sample and
# mosquitto_veil(5) every plugin option, veil-keyd.conf(5) every key of
# keyd's config, veil-client.conf(5) every key of the client config (the
# names come from the code's option tables). Run by tools/test-all.sh right
# after the build and by integration/packaging/run.sh; exits 1 naming what
# is missing where.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IT_NAME=docs
# shellcheck source=../integration/checks.sh
. "$ROOT/integration/checks.sh"
check() { it_check "$@"; }
# covered WHAT DOC FORMAT NAME...: every NAME appears in DOC as FORMAT says.
covered() {
	local what=$1 doc=$2 fmt=$3 n missing=(); shift 3
	for n in "$@"; do
		# shellcheck disable=SC2059 # the format is the point
		grep -qF -- "$(printf "$fmt" "$n")" "$doc" || missing+=("$n")
	done
	[ ${#missing[@]} -eq 0 ] || echo "  $what missing from ${doc#"$ROOT"/}: ${missing[*]}"
	[ ${#missing[@]} -eq 0 ]
}
# names KIND FILE...: the names of the option tables' entries ({ "name", KIND...).
names() { grep -hoE "\{ \"[a-z0-9_]+\", $1" "${@:2}" | awk -F'"' '{ print $2 }' | sort -u; }
mapfile -t plugin_opts < <(names VP_OPT_ "$ROOT"/plugin/*.c)
mapfile -t keyd_keys < <(names K_ "$ROOT/keyd/config.c")
mapfile -t client_keys < <(names K_ "$ROOT/client-shim/config.c")
check "mosquitto.conf.sample names all ${#plugin_opts[@]} plugin options" \
	covered "plugin options" "$ROOT/mosquitto.conf.sample" 'plugin_opt_%s ' "${plugin_opts[@]}"
check "mosquitto_veil(5) describes every plugin option" \
	covered "plugin options" "$ROOT/docs/man/mosquitto_veil.5.scd" '*plugin_opt_%s*' "${plugin_opts[@]}"
check "veil-keyd.conf(5) describes all ${#keyd_keys[@]} keys of keyd's config" \
	covered "keyd config keys" "$ROOT/docs/man/veil-keyd.conf.5.scd" '*%s*' "${keyd_keys[@]}"
check "veil-client.conf(5) describes all ${#client_keys[@]} keys of the client config" \
	covered "client config keys" "$ROOT/docs/man/veil-client.conf.5.scd" '*%s*' "${client_keys[@]}"

[ "$IT_FAILS" -eq 0 ]
