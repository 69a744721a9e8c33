#!/usr/bin/env bash
# Runs as root inside a container booted (systemd) from the image where
# integration/packaging/run.sh installed Veil's packages with apt on a fresh
# debian:bookworm-slim; no network but its own loopback. Only what the
# packages installed is used: Debian's mosquitto.service through its stock
# /etc/mosquitto/mosquitto.conf and the packaged conf.d snippet (running as
# user mosquitto), the veil CLI, veil-keyd.service as user veil-keyd.
#   1. fresh install: the broker refuses to start and names the missing file
#      (the authority keys, then the rules)
#   2. configured: a sealed round trip (retained and live) through it
#   3. a revocation: the connected device is kicked and refused from then on
#   4. veil-keyd starts under systemd as its own user with its own state
#   5. the broker's persistence holds no plaintext; purge cleans up and the
#      broker runs again without Veil
# Checks and deadlines: integration/checks.sh (VEIL_TEST_TIME_FACTOR), mounted at
# /pkgtest-lib. Prints PASS/FAIL lines; exit 1 on any failure.
set -uo pipefail
IT_NAME=packaging
# shellcheck source=../checks.sh
. /pkgtest-lib/checks.sh
check() { it_check "$@"; }
fatal() { echo "FAIL packaging: $*"; tail -20 "$LOG" 2>/dev/null; exit 1; }
LOG=/var/log/mosquitto/mosquitto.log
ETC=/etc/mosquitto/veil
SNIPPET=/etc/mosquitto/conf.d/veil.conf
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done' EXIT

log_has() { grep -qF -- "$1" "$LOG" 2>/dev/null; }
main_pid() { systemctl show -p MainPID --value "$1"; }
proc_user() { ps -o user= -p "$1" | tr -d ' '; }
active() { [ "$(systemctl is-active "$1")" = active ]; }
not_active() { ! active "$1"; }

# ---- 1. fresh install ------------------------------------------------------
check "conf.d snippet names the plugin the package installed" \
	test -f "$(awk '$1 == "plugin" { print $2 }' "$SNIPPET")"
check "snippet sets nothing Debian's stock mosquitto.conf sets" \
	bash -c "! grep -qE '^(pid_file|persistence|persistence_location|log_dest|include_dir)[[:space:]]' '$SNIPPET'"
check "optional files are commented out in the snippet" \
	bash -c "grep -q '^#plugin_opt_password_file' '$SNIPPET' && grep -q '^#plugin_opt_revocation_file' '$SNIPPET'"
check "unconfigured: the plugin names the missing authority file, mosquitto refuses to start" \
	it_wait_until 10 log_has "file=authority error=\"$ETC/authorities.pub"
check "... saying the plugin cannot start without it" log_has "the plugin cannot start without a valid authority file"
check "... and mosquitto.service is not active" not_active mosquitto
check "veil-keyd.service not started without /etc/veil/keyd.conf" \
	bash -c '[ "$(systemctl show -p ConditionResult --value veil-keyd)" = no ] && ! systemctl is-active -q veil-keyd'
man_for_every_command() {
	local c n=0
	[ -f /usr/share/man/man1/veil.1.gz ] || return 1
	for c in $(veil --help | awk '/^commands:/ { f = 1; next } f && /^  [a-z]/ { print $1 }'); do
		[ -f "/usr/share/man/man1/veil-$c.1.gz" ] || { echo "no man page veil-$c(1)"; return 1; }
		n=$((n + 1))
	done
	[ "$n" -ge 8 ]
}
check "a man page for veil(1) and every command veil --help lists" man_for_every_command
# Every long option a command's --help lists is in its man page (scdoc
# writes '-' as '\-').
man_has_options() {
	local c o page missing=""
	for c in $(veil --help | awk '/^commands:/ { f = 1; next } f && /^  [a-z]/ { print $1 }'); do
		page=$(zcat "/usr/share/man/man1/veil-$c.1.gz" | tr -d '\\')
		for o in $(veil "$c" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
			grep -qF -- "$o" <<<"$page" || missing="$missing veil-$c:$o"
		done
	done
	[ -z "$missing" ] || echo "  not in the man pages:$missing"
	[ -z "$missing" ]
}
check "every long option of every command is in its man page" man_has_options
check "man pages of the plugin, the key service and its config, the preload" \
	bash -c 'for m in man5/mosquitto_veil.5 man8/veil-keyd.8 man5/veil-keyd.conf.5 man7/veil-preload.7 \
		man5/veil-client.conf.5 man5/veil-keyring.5; do [ -f /usr/share/man/$m.gz ] || exit 1; done'
check "system user veil-keyd, home /var/lib/veil-keyd (0700, its own)" \
	bash -c '[ "$(getent passwd veil-keyd | cut -d: -f6)" = /var/lib/veil-keyd ] &&
		[ "$(stat -c %U:%a /var/lib/veil-keyd)" = veil-keyd:700 ]'

# ---- 2. configure, start, round trip ----------------------------------------
W=/root/pkgtest
mkdir -p "$W" && cd "$W" || fatal "no work dir"
umask 077
veil keygen authority -o authority.key >/dev/null || fatal "keygen authority"
dev() { # id roles
	veil keygen identity -o "$1.key" >/dev/null &&
	veil credential issue --authority authority.key --device-pub "$1.key.pub" --client-id "$1" \
		--roles "$2" --days 1 -o "$1.cred" >/dev/null &&
	printf 'identity %s.key\ncredential %s.cred\nkeyring keyring\nstate_dir state-%s\n' "$1" "$1" "$1" >"$1.conf"
}
dev sensor-1 sensor && dev dash dashboard && dev veil-keyd veil-keyd || fatal "device keys"
{ echo "authority $(cut -d' ' -f2 authority.key.pub)"
  veil keygen topic-key --filter 'factory/#' --id 1 --send; } >keyring || fatal "keyring"
install -m 0644 authority.key.pub "$ETC/authorities.pub"
systemctl reset-failed mosquitto
systemctl restart mosquitto 2>/dev/null
check "authority keys but no rules: the plugin names the rules file, mosquitto refuses to start" \
	it_wait_until 10 log_has "veil: acl | init-failed | file=rules error=\"$ETC/acl: No such file or directory\" action=refuse-start (the plugin cannot start without a valid rules file)"
printf '%s\n' 'role sensor' 'pattern write,encrypted factory/%c/#' 'role dashboard' 'topic read factory/#' \
	| install -m 0644 /dev/stdin "$ETC/acl"
install -m 0644 /dev/null "$ETC/revoked"
sed -i 's|^#plugin_opt_revocation_file|plugin_opt_revocation_file|' "$SNIPPET"
systemctl reset-failed mosquitto
check "configured: systemctl restart mosquitto succeeds (Type=notify: it is ready)" systemctl restart mosquitto
check "mosquitto.service active" active mosquitto
MPID=$(main_pid mosquitto)
check "the broker runs as user mosquitto" [ "$(proc_user "$MPID")" = mosquitto ]
check "... from the stock /etc/mosquitto/mosquitto.conf" \
	bash -c "tr '\\0' ' ' </proc/$MPID/cmdline | grep -q -- '-c /etc/mosquitto/mosquitto.conf'"
check "plugin loaded (audit line)" log_has "veil: plugin | init | version="
check "state dir created by the plugin as mosquitto" \
	it_wait_until 5 bash -c '[ "$(stat -c %U:%a /var/lib/mosquitto/veil 2>/dev/null)" = mosquitto:700 ]'

check "sealed retained publish (QoS 1) accepted" \
	veil pub -t factory/sensor-1/temp -q 1 -r -m PKGSECRET-retained --config sensor-1.conf
out=$(timeout "$(it_secs 10)" veil sub -t 'factory/#' -v -C 1 --config dash.conf 2>&1)
check "dashboard opened it: '$out'" [ "$out" = "factory/sensor-1/temp PKGSECRET-retained" ]
# A long-lived subscriber: the retained message it prints first says it is
# subscribed; then a live message must reach it.
veil sub -t 'factory/#' -v --config dash.conf >"$W/live.out" 2>&1 &
SUB=$!
PIDS+=("$SUB")
veil pub -t factory/sensor-1/temp -q 1 -r -m PKGSECRET-2 --config sensor-1.conf >/dev/null 2>&1
check "live subscriber subscribed (got the retained message)" \
	it_wait_until 10 grep -qF 'factory/sensor-1/temp PKGSECRET-2' "$W/live.out"
check "live message published" veil pub -t factory/sensor-1/log -q 1 -m PKGSECRET-live --config sensor-1.conf
check "... and opened by the live subscriber" it_wait_until 10 grep -qF 'factory/sensor-1/log PKGSECRET-live' "$W/live.out"
check "an anonymous client is refused (no local-only back door)" \
	bash -c '! veil sub -t "factory/#" -C 1 -W 5 --auth none --keyring keyring >/dev/null 2>&1'

# ---- 3. revocation -----------------------------------------------------------
echo "client dash" >>"$ETC/revoked"
check "revoked dashboard kicked within the poll interval (audit line)" \
	it_wait_until 10 log_has "veil: auth | kick | client=dash reason=revoked-client"
check "... the broker disconnected it" it_wait_until 5 log_has "Client dash been disconnected by administrative action"
# (Its state dir stays locked by the kicked subscriber, which does not
# notice an MQTT 5 DISCONNECT from the broker: the new login uses none.)
check "... and it cannot log in again" bash -c \
	"out=\$(veil sub -t 'factory/#' -C 1 -W 5 --identity dash.key --credential dash.cred --keyring keyring 2>&1);
	 rc=\$?; echo \"\$out\"; [ \$rc -eq 1 ] && grep -q \"refused the connection as 'dash'\" <<<\"\$out\""
kill "$SUB" 2>/dev/null
check "... while the sensor still publishes" \
	veil pub -t factory/sensor-1/temp -q 1 -m PKGSECRET-after --config sensor-1.conf

# ---- 4. veil-keyd under systemd -------------------------------------------------
install -d -o veil-keyd -g veil-keyd -m 0700 /etc/veil/keyd
install -o veil-keyd -g veil-keyd -m 0600 veil-keyd.key /etc/veil/keyd/keyd.key
install -o veil-keyd -g veil-keyd -m 0644 veil-keyd.cred /etc/veil/keyd/keyd.cred
sed -e 's|^#revocation_file|revocation_file|' /usr/share/doc/veil-keyd/examples/keyd.conf \
	| install -m 0644 /dev/stdin /etc/veil/keyd.conf
check "veil-keyd --init as veil-keyd creates its store" \
	runuser -u veil-keyd -- veil-keyd -c /etc/veil/keyd.conf --init
check "... owned by veil-keyd, storage key 0600" \
	bash -c '[ "$(stat -c %U:%a /var/lib/veil-keyd/storage.key)" = veil-keyd:600 ] &&
		[ "$(stat -c %U /var/lib/veil-keyd/keyd.db)" = veil-keyd ]'
check "systemctl start veil-keyd" systemctl start veil-keyd
keyd_connected() { journalctl -u veil-keyd --no-pager -o cat | grep -q 'veil-keyd: mqtt | connected'; }
check "veil-keyd logged in to the broker (journal)" it_wait_until 15 keyd_connected
check "veil-keyd runs as user veil-keyd" [ "$(proc_user "$(main_pid veil-keyd)")" = veil-keyd ]
check "veil keys reads its store" runuser -u veil-keyd -- veil keys --db /var/lib/veil-keyd/keyd.db status
check "systemctl stop veil-keyd" systemctl stop veil-keyd

# ---- 5. persistence, purge ------------------------------------------------------
check "systemctl stop mosquitto" systemctl stop mosquitto
check "the broker's persistence holds the retained envelope, no plaintext" bash -c \
	"grep -aq 'factory/sensor-1/temp' /var/lib/mosquitto/mosquitto.db && ! grep -aq PKGSECRET /var/lib/mosquitto/mosquitto.db"
check "apt-get purge mosquitto-plugin-veil veil-keyd" \
	env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq mosquitto-plugin-veil veil-keyd
check "purge removed the snippet, the plugin's and keyd's state" \
	bash -c '[ ! -e /etc/mosquitto/conf.d/veil.conf ] && [ ! -e /var/lib/mosquitto/veil ] && [ ! -e /var/lib/veil-keyd ]'
check "mosquitto starts again without Veil" systemctl restart mosquitto

echo "FIGURE packaging checks=$IT_CHECKS failed=$IT_FAILS"
[ "$IT_FAILS" -eq 0 ]
