#!/usr/bin/env bash
# Veil's Debian packages, end to end (issue 16). One command, exits non-zero
# on any failed check; a stage of tools/test-all.sh.
#   0. the sample and the man pages name every option the code knows
#      (plugin options, keyd's and the client's config keys);
#   1. build: dpkg-buildpackage -us -uc -b in a clean copy of the tree, inside
#      a fresh debian:bookworm-slim holding only the Build-Depends (so a
#      missing Build-Depends fails here), as an unprivileged user, with no
#      network; debian/changelog must carry the project's version;
#   2. lintian: no error, no warning (debian/README.source lists what is
#      left at info level); no RPATH in any packaged binary;
#   3. install: apt installs the packages (their Depends from the Debian
#      mirror the host uses) into a fresh Debian 12 machine image (systemd,
#      sudo, a user), committed as the image the next two steps boot;
#   4. broker_test.sh: as root on that machine (own loopback, no network),
#      Mosquitto through its own conf.d as user mosquitto, a sealed round trip
#      and a revocation with the installed tools only, veil-keyd under
#      systemd, purge;
#   5. docs run: the sh blocks of README.md "Using Veil" and docs/PRELOAD.md
#      "Quick start" (docs_extract.sh), run literally as the user alice on a
#      second such machine: no step the docs do not show but installing the
#      packages. Every `# prints:` claim must show in the output.
# Needs root and Debian 12; runs its own dockerd (integration/docker.sh).
# Knobs: VEIL_PKG_BUILD_OPTIONS (added to DEB_BUILD_OPTIONS, e.g. nocheck),
# VEIL_KEEP=1 keeps the work dir (and the images), VEIL_TEST_TIME_FACTOR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
IT_NAME=packaging
# shellcheck source=../docker.sh
. "$ROOT/integration/docker.sh"
T0=$(date +%s)
check() { it_check "$@"; }
fatal() { echo "FAIL packaging: $*"; exit 1; }
elapsed() { echo $(( $(date +%s) - $1 )); }

[ "$(id -u)" -eq 0 ] || { echo "run.sh needs root (dockerd, debootstrap)" >&2; exit 2; }
dk_need_packages docker.io debootstrap lintian dpkg-dev binutils

WORK=$(mktemp -d /tmp/veil-packaging.XXXXXX)
CONTAINERS=()
IMAGE=veil-pkg-installed:$$
cleanup() {
	local rc=$? c
	set +e
	for c in "${CONTAINERS[@]}"; do $DOCKER rm -f "$c" >/dev/null 2>&1; done
	[ "${VEIL_KEEP:-0}" = 1 ] || $DOCKER image rm "$IMAGE" >/dev/null 2>&1
	dk_finish "$rc" "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 0. the documentation names what the code knows -----------------------------
# (tools/docs-check.sh, also run by tools/test-all.sh right after the build)
check "the sample and the man pages name every option and config key (tools/docs-check.sh)" \
	bash "$ROOT/tools/docs-check.sh"

dk_start "$WORK"
dk_base_image "$WORK"

# ---- 1. build -------------------------------------------------------------------
T=$(date +%s)
dk_stage_tree "$ROOT" "$WORK/src"
project=$(sed -n 's/^project(veil VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
debver=$(dpkg-parsechangelog -l "$ROOT/debian/changelog" -S Version)
check "debian/changelog version $debver is the project's ($project)" [ "$debver" = "$project" ]
mkdir -p "$WORK/ctx" "$WORK/out"
cp "$HERE/Dockerfile.build" "$ROOT/debian/control" "$WORK/ctx/"
dk_say "building veil-pkg-build (debian:bookworm-slim + Build-Depends)"
$DOCKER build -q --network host -t veil-pkg-build:latest -f "$WORK/ctx/Dockerfile.build" "$WORK/ctx" \
	>"$WORK/image-build.log" 2>&1 || { tail -30 "$WORK/image-build.log"; fatal "build image"; }
dk_say "dpkg-buildpackage -us -uc -b (no network, user builder)"
CONTAINERS+=("veil-pkg-build-$$")
check "dpkg-buildpackage -us -uc -b in a clean copy" \
	$DOCKER run --name "veil-pkg-build-$$" --network none \
		-e DEB_BUILD_OPTIONS="parallel=$(nproc) ${VEIL_PKG_BUILD_OPTIONS:-}" \
		-v "$WORK/src:/src:ro" -v "$WORK/out:/out" -v "$HERE/build.sh:/build.sh:ro" \
		veil-pkg-build:latest bash /build.sh
PKGS=(libveil1 libveil-dev veil-tools veil-preload mosquitto-plugin-veil veil-keyd)
debs=()
for p in "${PKGS[@]}"; do
	f=$(ls "$WORK/out/${p}_${debver}_"*.deb 2>/dev/null | head -1 || true)
	[ -n "$f" ] && debs+=("$f")
done
check "all ${#PKGS[@]} binary packages built (${#debs[@]})" [ ${#debs[@]} -eq ${#PKGS[@]} ]
[ ${#debs[@]} -eq ${#PKGS[@]} ] || fatal "no packages to test"
grep -E 'tests passed|tests failed' "$WORK/out/build.log" | sed 's/^/  build-time unit tests: /' || true
T_BUILD=$(elapsed "$T")

# ---- 2. lintian ---------------------------------------------------------------------
T=$(date +%s)
lrc=0
lintian --fail-on error,warning --display-info --show-overrides "$WORK/out/"*.changes >"$WORK/lintian.log" 2>&1 || lrc=$?
printf '  lintian tags:'
for lvl in E W I N O; do printf ' %s=%s' "$lvl" "$(grep -c "^$lvl: " "$WORK/lintian.log" || true)"; done; echo
grep -E '^[EWI]: ' "$WORK/lintian.log" | sed 's/^/  /' || true
check "lintian: no error, no warning" [ "$lrc" -eq 0 ]
rpath() { local d; d=$(mktemp -d "$WORK/x.XXXX"); dpkg-deb -x "$1" "$d"
	find "$d" -type f \( -perm -u+x -o -name '*.so*' \) -exec readelf -d {} + 2>/dev/null | grep -E 'RPATH|RUNPATH'; }
norpath() { local f; for f in "${debs[@]}"; do ! rpath "$f" || return 1; done; }
check "no RPATH/RUNPATH in the packaged binaries" norpath
# The preload reaches Paho only through dlsym: a direct reference is
# resolved at load time under Debian's bindnow hardening and breaks every
# app that lacks that Paho library (MQTTAsync apps have no libpaho-mqtt3c).
x=$(mktemp -d "$WORK/x.XXXX")
dpkg-deb -x "$WORK/out/veil-preload_${debver}_"*.deb "$x"
refs=$(nm -D --undefined-only "$x"/usr/lib/*/veil/libveil_preload.so | awk '$1 == "U" && $2 ~ /^(MQTT|Paho)/ { print $2 }')
[ -z "$refs" ] || echo "$refs" | sed 's/^/  /'
check "the packaged preload references no Paho symbol directly" [ -z "$refs" ]
T_LINT=$(elapsed "$T")

# ---- 3. install on a fresh machine ---------------------------------------------------
T=$(date +%s)
mkdir -p "$WORK/mctx" "$DK_CACHE/apt-archives/partial"
cp "$HERE/Dockerfile.machine" "$WORK/mctx/"
$DOCKER build -q --network host -t veil-pkg-machine:latest -f "$WORK/mctx/Dockerfile.machine" "$WORK/mctx" \
	>"$WORK/machine-build.log" 2>&1 || { tail -30 "$WORK/machine-build.log"; fatal "machine image"; }
runtime=()
for f in "${debs[@]}"; do case $(basename "$f") in libveil-dev_*) ;; *) runtime+=("/debs/$(basename "$f")") ;; esac; done
# paho.mqtt.c-examples stands for "your existing Paho application" of
# docs/PRELOAD.md: the user has it before Veil; it is no Veil dependency.
dk_say "apt-get install ${runtime[*]} paho.mqtt.c-examples"
CONTAINERS+=("veil-pkg-install-$$")
check "apt installs the packages on a fresh Debian 12" \
	$DOCKER run --name "veil-pkg-install-$$" --network host -v "$WORK/out:/debs:ro" \
		-v "$DK_CACHE/apt-archives:/var/cache/apt/archives" veil-pkg-machine:latest \
		bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			${runtime[*]} paho.mqtt.c-examples" >"$WORK/install.log" 2>&1 \
	|| { tail -30 "$WORK/install.log"; fatal "install"; }
$DOCKER commit -c 'CMD ["/lib/systemd/systemd"]' "veil-pkg-install-$$" "$IMAGE" >/dev/null
T_INSTALL=$(elapsed "$T")

# ---- 3b. libveil-dev: a program built against the installed package --------------------
# The examples, compiled the way docs/SHIM.md says (pkg-config veil), and
# linked to the packaged libveil.so.1, nothing from the tree.
T=$(date +%s)
CONTAINERS+=("veil-pkg-dev-$$")
dk_say "apt-get install libveil-dev gcc pkg-config; cc examples/*.c \$(pkg-config --cflags --libs veil)"
devrc=0
$DOCKER run --rm --name "veil-pkg-dev-$$" --network host -v "$WORK/out:/debs:ro" \
	-v "$ROOT/examples:/examples:ro" -v "$DK_CACHE/apt-archives:/var/cache/apt/archives" "$IMAGE" \
	bash -c "set -e; apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends /debs/$(basename "$(ls "$WORK/out/libveil-dev_${debver}_"*.deb)") \
		gcc libc6-dev pkg-config >/dev/null
		for p in sensor dashboard; do
			cc -Wall -Wextra -Werror -o /tmp/\$p /examples/\$p.c \$(pkg-config --cflags --libs veil)
			readelf -d /tmp/\$p | grep 'NEEDED.*libveil'
			ldd /tmp/\$p | grep -E 'libveil.so.1 => /(usr/)?lib/'
		done" >"$WORK/dev.log" 2>&1 || devrc=$?
[ "$devrc" -eq 0 ] || tail -30 "$WORK/dev.log" | sed 's/^/  /'
check "libveil-dev: examples/sensor.c and dashboard.c build with pkg-config and link the packaged libveil.so.1" \
	[ "$devrc" -eq 0 ]
T_DEV=$(elapsed "$T")

# boot NAME: a machine from the installed image, systemd as PID 1, its own
# loopback and nothing else; waits until boot is over (mosquitto.service
# failing there is expected before Veil is configured: "degraded").
boot() {
	CONTAINERS+=("$1")
	$DOCKER run -d --name "$1" --network none --tmpfs /run --tmpfs /run/lock \
		-v /sys/fs/cgroup:/sys/fs/cgroup:ro -v "$HERE:/pkgtest:ro" \
		-v "$ROOT/integration/checks.sh:/pkgtest-lib/checks.sh:ro" -v "$WORK/docs:/docs:ro" \
		"$IMAGE" >/dev/null
	booted() { local s; s=$($DOCKER exec "$1" systemctl is-system-running 2>/dev/null); [ "$s" = running ] || [ "$s" = degraded ]; }
	it_wait_until 60 booted "$1" || { $DOCKER logs "$1" 2>&1 | tail -20; return 1; }
	# The host name resolves, as Debian's installer arranges (127.0.1.1);
	# docker's /etc/hosts has no line for it without a network.
	$DOCKER exec "$1" sh -c 'echo "127.0.1.1 $(hostname)" >>/etc/hosts'
}

# ---- 4. the installed packages at work -----------------------------------------------
T=$(date +%s)
mkdir -p "$WORK/docs"
check "machine boots (systemd)" boot "veil-pkg-broker-$$"
brc=0
$DOCKER exec -e VEIL_TEST_TIME_FACTOR="${VEIL_TEST_TIME_FACTOR:-1}" "veil-pkg-broker-$$" \
	timeout "$(it_secs 300)" bash /pkgtest/broker_test.sh >"$WORK/broker_test.log" 2>&1 || brc=$?
sed 's/^/  /' "$WORK/broker_test.log"
check "broker_test.sh: sealed round trip, revocation, keyd, purge" [ "$brc" -eq 0 ]
T_BROKER=$(elapsed "$T")

# ---- 5. the documentation, run as a new user ---------------------------------------------
T=$(date +%s)
{
	echo '# generated by integration/packaging/run.sh from the docs (docs_extract.sh)'
	echo 'set -euo pipefail'
	echo 'exec 9>>/tmp/docs-run.trace'
	echo 'BASH_XTRACEFD=9'
	echo "trap 'echo \"DOCS-RUN FAILED (exit \$?): \$BASH_COMMAND\" >&9' ERR"
	echo 'set -x'
	bash "$HERE/docs_extract.sh" "$ROOT/README.md" "## Using Veil" "$ROOT/docs/PRELOAD.md" "## Quick start" \
		2>"$WORK/docs/expect.txt"
} >"$WORK/docs/docs-run.sh" || { cat "$WORK/docs/expect.txt"; fatal "extracting the docs"; }
check "machine boots (systemd)" boot "veil-pkg-docs-$$"
dk_say "running $(grep -c '^echo "###' "$WORK/docs/docs-run.sh") doc blocks as alice"
drc=0
$DOCKER exec "veil-pkg-docs-$$" timeout "$(it_secs 180)" runuser -l alice -c 'bash /docs/docs-run.sh' \
	>"$WORK/docs/transcript.txt" 2>&1 || drc=$?
$DOCKER exec "veil-pkg-docs-$$" cat /tmp/docs-run.trace >"$WORK/docs/trace.txt" 2>/dev/null || true
check "every sh block of README.md 'Using Veil' and docs/PRELOAD.md 'Quick start' runs" [ "$drc" -eq 0 ]
if [ "$drc" -ne 0 ]; then
	echo "  the last doc commands (trace):"; tail -25 "$WORK/docs/trace.txt" | sed 's/^/    /'
	echo "  their output:"; tail -15 "$WORK/docs/transcript.txt" | sed 's/^/    /'
fi
while read -r _ where text; do
	check "$where prints '$text'" grep -qF -- "$text" "$WORK/docs/transcript.txt"
done <"$WORK/docs/expect.txt"
T_DOCS=$(elapsed "$T")

WALL=$(elapsed "$T0")
echo "FIGURE packaging build_seconds=$T_BUILD lintian_seconds=$T_LINT install_seconds=$T_INSTALL dev_seconds=$T_DEV"
echo "FIGURE packaging broker_test_seconds=$T_BROKER docs_run_seconds=$T_DOCS wall_seconds=$WALL"
echo "FIGURE packaging checks=$IT_CHECKS failed=$IT_FAILS"
[ "$IT_FAILS" -eq 0 ] || { dk_say "FAILED ($IT_FAILS of $IT_CHECKS)"; exit 1; }
dk_say "all $IT_CHECKS checks passed in ${WALL}s"
