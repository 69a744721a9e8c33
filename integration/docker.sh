# shellcheck shell=bash
#
# Docker on Veil's build machines, shared by the suites that run containers
# (integration/compose/run.sh, integration/packaging/run.sh). Sourced, never
# run. No image registry is reachable here, so:
#   - dk_start runs our own dockerd (--iptables=false --bridge=none, its own
#     socket under /run/veil-compose and data root under $DK_CACHE/docker)
#     unless one already answers there, and dk_stop stops it by PID;
#   - dk_base_image builds debian:bookworm-slim with debootstrap from the
#     Debian mirror the host's apt uses (the rootfs cached in $DK_CACHE);
#   - images build with `--network host`; services use the host network or
#     none (their own loopback).
# The caller sets IT_NAME (the label of its lines) and an EXIT trap that
# ends with dk_finish. Needs root and Debian 12.

DK_CACHE=${VEIL_COMPOSE_CACHE:-/var/cache/veil-compose}
DK_RUN=/run/veil-compose
DOCKER=/usr/bin/docker
DK_DOCKERD_PID=""

# it_check and the deadlines (it_wait_until, scaled by VEIL_TEST_TIME_FACTOR).
# shellcheck source=checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

dk_say() { printf '[%s %s] %s\n' "${IT_NAME:-docker}" "$(date -u +%H:%M:%S)" "$*"; }

# dk_need_packages PKG...: installs the Debian packages that are missing.
dk_need_packages() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	dk_say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# dk_mirror: the Debian archive the host's apt uses for bookworm (deb822
# sources first, then one-line sources), else deb.debian.org.
dk_mirror() {
	local m=""
	if [ -r /etc/apt/sources.list.d/debian.sources ]; then
		m=$(awk 'BEGIN { RS = ""; FS = "\n" }
			/(^|\n)Suites:[^\n]*[[:space:]]bookworm([[:space:]]|\n|$)/ && !/debian-security/ {
				for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, u, /[[:space:]]+/); print u[2]; exit } }' \
			/etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
		m=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

# dk_start LOGDIR: a dockerd that answers on our socket (ours or one already
# running there); exports DOCKER_HOST.
dk_start() {
	local logdir=$1
	mkdir -p "$DK_RUN" "$DK_CACHE/docker"
	export DOCKER_HOST=unix://$DK_RUN/docker.sock
	$DOCKER info >/dev/null 2>&1 && return 0
	dk_say "starting dockerd (socket $DK_RUN/docker.sock, data $DK_CACHE/docker)"
	dockerd --iptables=false --bridge=none -H "$DOCKER_HOST" --data-root "$DK_CACHE/docker" \
		--exec-root "$DK_RUN/exec" --pidfile "$DK_RUN/docker.pid" >"$logdir/dockerd.log" 2>&1 &
	DK_DOCKERD_PID=$!
	it_wait_until 20 $DOCKER info >/dev/null 2>&1 || { tail -20 "$logdir/dockerd.log"; return 1; }
}

# dk_stop: stops the dockerd dk_start started (none if it found one running).
dk_stop() {
	[ -n "$DK_DOCKERD_PID" ] || return 0
	kill -TERM "$DK_DOCKERD_PID" 2>/dev/null
	it_wait_exit "$DK_DOCKERD_PID" 10
	kill -KILL "$DK_DOCKERD_PID" 2>/dev/null
	DK_DOCKERD_PID=""
	return 0
}

# dk_finish RC WORK: the end of a suite's EXIT trap: stops our dockerd,
# keeps WORK when RC is not 0 or VEIL_KEEP=1 (and says where), else removes
# it; exits RC.
dk_finish() {
	dk_stop
	if [ "$1" -ne 0 ] || [ "${VEIL_KEEP:-0}" = 1 ]; then echo "work dir kept: $2"; else rm -rf "$2"; fi
	exit "$1"
}

# dk_base_image LOGDIR: debian:bookworm-slim, from debootstrap (no registry).
dk_base_image() {
	local logdir=$1 mirror
	$DOCKER image inspect debian:bookworm-slim >/dev/null 2>&1 && return 0
	if [ ! -d "$DK_CACHE/rootfs" ]; then
		mirror=$(dk_mirror)
		dk_say "debootstrap bookworm from $mirror (cached in $DK_CACHE/rootfs)"
		rm -rf "$DK_CACHE/rootfs.tmp"
		debootstrap --variant=minbase bookworm "$DK_CACHE/rootfs.tmp" "$mirror" >"$logdir/debootstrap.log" 2>&1 \
			|| { tail -20 "$logdir/debootstrap.log"; return 1; }
		mv "$DK_CACHE/rootfs.tmp" "$DK_CACHE/rootfs"
	fi
	dk_say "importing debian:bookworm-slim"
	tar -C "$DK_CACHE/rootfs" -c . | $DOCKER import - debian:bookworm-slim >/dev/null
}

# dk_stage_tree SRC DEST: a clean copy of the working tree: what git tracks
# or would track (.gitignore keeps build output out), as it is on disk now.
dk_stage_tree() {
	local src=$1 dest=$2
	mkdir -p "$dest"
	if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(cd "$src" && git ls-files -z --cached --others --exclude-standard \
			| while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
			| tar --null -T - -c) | tar -x -C "$dest"
	else
		tar -C "$src" --exclude='./build*' --exclude='./.git' -c . | tar -x -C "$dest"
	fi
}
