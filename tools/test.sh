#!/bin/bash
# test.sh - install what is missing, build, run the whole test suite.
#
# Usage: tools/test.sh [meson options...]     (CI passes -Dwerror=true)
#
# Runs every meson test (cmocka unit tests and the pytest mount tests, which
# need root, /dev/fuse and qemu-img, and skip themselves otherwise), then
# the hardening steps of issue 6, each in its own build directory:
#
#   - ASan+UBSan (tools/sanitize.sh --ci, in BUILD-asan): the unit tests and
#     a subset of the mount tests against an instrumented daemon; every
#     sanitizer report is a failed case;
#   - fuzzing (tools/fuzz.sh, in BUILD-fuzz): each libFuzzer target for
#     $SNAPFS_FUZZ_SECONDS (default 5) seconds, one case per target.
#
# SNAPFS_TEST_SANITIZE=0 or SNAPFS_TEST_FUZZ=0 leave a step out (a quick
# local run); CI runs both.  The long modes (docs/reliability.md):
#
#   SNAPFS_TEST_SANITIZE=full    every mount test under ASan+UBSan, not the
#                                CI subset (about 17 min more)
#   SNAPFS_TEST_TSAN=1           also the ThreadSanitizer run (BUILD-tsan)
#   SNAPFS_FUZZ_SECONDS=N        each fuzz target N seconds
#   SNAPFS_SOAK_ITERATIONS=N     the crash loop runs N iterations (meson's
#                                test timeouts are then off)
#   SNAPFS_FAULT_STRIDE=1        the fault walk tries every failure point
#   SNAPFS_STORM_SECONDS=N       the concurrency storm runs N seconds
#   SNAPFS_VM_DRIVER=both        every VM test against both libvirt drivers
#                                (by default: the system libvirtd for all,
#                                the embedded driver for a representative
#                                set; `system` or `embedded` for one only)
#
# tools/count-results.py counts the individual cases of all of them.  The
# last line is always `N passed, N failed, N skipped`; the exit status is
# non-zero when anything failed or when no test passed.
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
multiplier=${MESON_TEST_TIMEOUT_MULTIPLIER:-2}
if [ -n "${SNAPFS_SOAK_ITERATIONS:-}" ]; then
	multiplier=0	# a soak runs as long as it takes
fi
meson test -C "$build" --print-errorlogs --timeout-multiplier "$multiplier"
meson_rc=$?

# The hardening steps: their own builds, never a reason to skip the count.
results=("$build")
step_rc=0
if [ "${SNAPFS_TEST_SANITIZE:-1}" != 0 ]; then
	asan=${build}-asan
	rm -f "$asan/sanitizer-results.tap"
	scope=--ci
	if [ "${SNAPFS_TEST_SANITIZE:-1}" = full ]; then
		scope=		# every unit and mount test
	fi
	SANITIZE_BUILD_DIR=$asan bash tools/sanitize.sh $scope || step_rc=1
	results+=("$asan" "$asan/sanitizer-results.tap")
fi
if [ "${SNAPFS_TEST_TSAN:-0}" != 0 ]; then
	tsan=${build}-tsan
	rm -f "$tsan/sanitizer-results.tap"
	SANITIZE_BUILD_DIR=$tsan bash tools/sanitize.sh --thread || step_rc=1
	results+=("$tsan" "$tsan/sanitizer-results.tap")
fi
if [ "${SNAPFS_TEST_FUZZ:-1}" != 0 ]; then
	fuzz=${build}-fuzz
	rm -f "$fuzz/fuzz-results.tap"
	FUZZ_BUILD_DIR=$fuzz bash tools/fuzz.sh --time "${SNAPFS_FUZZ_SECONDS:-5}" || step_rc=1
	results+=("$fuzz/fuzz-results.tap")
fi

py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" tools/count-results.py "${results[@]}"
count_rc=$?

if [ $meson_rc -ne 0 ] || [ $count_rc -ne 0 ] || [ $step_rc -ne 0 ]; then
	exit 1
fi
exit 0
