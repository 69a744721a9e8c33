#!/usr/bin/env bash
# Runs inside the veil-pkg-build container (integration/packaging/run.sh):
# copies the staged tree (/src, read-only) to a clean directory of the
# unprivileged user builder, runs dpkg-buildpackage -us -uc -b there as
# builder, and copies the .deb, .changes and .buildinfo files to /out.
# DEB_BUILD_OPTIONS comes from the caller.
set -euo pipefail
version=$(dpkg-parsechangelog -l /src/debian/changelog -S Version)
dir=/home/builder/veil-$version
runuser -u builder -- cp -a /src "$dir"
runuser -u builder -- env DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-}" \
	bash -c "cd '$dir' && dpkg-buildpackage -us -uc -b" >/out/build.log 2>&1 \
	|| { tail -60 /out/build.log; exit 1; }
cp /home/builder/*.deb /home/builder/*.changes /home/builder/*.buildinfo /out/
