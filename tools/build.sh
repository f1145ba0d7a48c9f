#!/bin/bash
# build.sh - configure (or reconfigure) and compile snapfs into build/.
#
# Usage: tools/build.sh [meson options...]    e.g. tools/build.sh -Dwerror=true
# The build directory is $BUILD_DIR (default: build, in the source tree).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${BUILD_DIR:-build}

if [ -f "$build/meson-private/coredata.dat" ]; then
	meson setup --reconfigure "$build" "$@"
else
	meson setup "$build" "$@"
fi
meson compile -C "$build"
