#!/bin/bash
# test.sh - install what is missing, build, run the whole test suite.
#
# Usage: tools/test.sh [meson options...]     (CI passes -Dwerror=true)
#
# Runs every meson test (cmocka unit tests and the pytest mount tests, which
# need root, /dev/fuse and qemu-img, and skip themselves otherwise), then
# counts individual test cases with tools/count-results.py.  The last line is
# always `N passed, N failed, N skipped`; the exit status is non-zero when
# anything failed or when no test passed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${BUILD_DIR:-build}
export BUILD_DIR=$build

if ! bash tools/install-deps.sh; then
	echo "test: installing the dependencies failed"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

if ! bash tools/build.sh "$@"; then
	echo "test: the build failed (counted as one failure)"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

# Results of an earlier run must not be counted again.
rm -f "$build"/junit-*.xml "$build"/meson-logs/testlog.json

# Mount tests bound each case themselves (a watchdog per test); the
# multiplier only gives slow machines and sanitizer builds room.
meson test -C "$build" --print-errorlogs \
	--timeout-multiplier "${MESON_TEST_TIMEOUT_MULTIPLIER:-2}"
meson_rc=$?

py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" tools/count-results.py "$build"
count_rc=$?

if [ $meson_rc -ne 0 ] || [ $count_rc -ne 0 ]; then
	exit 1
fi
exit 0
