#!/bin/bash
# sanitize.sh - build snapfs with sanitizers and run the suite against it.
#
# Usage: tools/sanitize.sh [--thread] [--unit] [--fs NAME,NAME...] [--ci]
#
#   (default)  AddressSanitizer + UndefinedBehaviorSanitizer: every unit
#              test and every mount test, the daemon itself instrumented
#   --thread   ThreadSanitizer instead: the unit tests and the mount tests
#              that exercise the threads (workers, the scheduler, libvirt's
#              event loop, many clients): $TSAN_FS_TESTS
#   --unit     unit tests only
#   --fs LIST  mount tests: these (fs-<name> meson tests, comma separated)
#   --ci       what tools/test.sh runs in CI: the unit tests and the mount
#              tests named in $CI_FS_TESTS below
#
# The build directory is $SANITIZE_BUILD_DIR (default build-asan, or
# build-tsan with --thread), configured with -Db_sanitize=...; the normal
# build/ is never touched.  The compiler is $CC (default: meson's choice,
# gcc on Debian).
#
# Every sanitizer report goes to BUILD/sanitizer-logs/<kind>.<pid> (the
# daemon's, the unit tests'; qemu-img's never: it is not instrumented),
# and the first memory error or undefined behaviour stops the process that
# made it (halt_on_error, abort_on_error), so the test that drove it fails
# too; TSan reports every race and goes on (see TSAN_OPTIONS below).
# After the run tests/sanitizers/reports.py makes each distinct finding one
# failed case of BUILD/sanitizer-results.tap ("ok" when there is none),
# which tools/count-results.py counts with BUILD's own meson results:
#
#   python3 tools/count-results.py build-asan build-asan/sanitizer-results.tap
#
# Leaks: LeakSanitizer checks every instrumented process at exit, without
# changing its exit status; a leak counts when snapfs's code made the
# allocation (reports.py), not libfuse's per-session state still held when
# a session ends.  Known findings not fixed yet are listed, with their
# stacks, in tests/sanitizers/lsan.supp; TSan's suppressions (races inside
# libraries) in tests/sanitizers/tsan.supp.
#
# Two link-time helpers exist for sanitizer builds only:
# tests/sanitizers/asan-fork.c (fork() children of libvirt would otherwise
# hang on the ASan allocator's locks) and tests/sanitizers/glib-tsan.c
# (tells TSan about GLib's mutexes, conds, queues and thread pools).
#
# Exit status: 0 when every test passed and there was no finding.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD

# mount tests run under ASan in CI (tools/test.sh), chosen for what they
# reach per second: mount (options, daemonizing, every exit path), take and
# backup (requests, the job pool, copies), errors (every errno path),
# faults (every failure point: the error paths where leaks hide).  The VM
# tests take 2-4 times as long under ASan (vm_snapshots: 27 s -> 110 s) and
# one of its reverts once failed with EIO there, timing: they run with
# `tools/sanitize.sh` alone, which runs every mount test.
CI_FS_TESTS=${CI_FS_TESTS:-mount,take,backup,errors,faults}
# mount tests that exercise threads, for --thread
TSAN_FS_TESTS=${TSAN_FS_TESTS:-take,backup,delete,clone,vm_interleaved,storm}

mode=address
unit_only=0
fs_list=
while [ $# -gt 0 ]; do
	case $1 in
	--thread) mode=thread; shift ;;
	--unit) unit_only=1; shift ;;
	--fs) fs_list=$2; shift 2 ;;
	--fs=*) fs_list=${1#--fs=}; shift ;;
	--ci)
		fs_list=$CI_FS_TESTS
		# the fault walk under ASan: every 16th point from the 3rd, not
		# the plain run's (every 8th from the 1st); the repository's
		# named points as in the plain run, without its walk (about a
		# minute under ASan; the full run, without --ci, keeps it)
		export SNAPFS_FAULT_STRIDE=${SNAPFS_FAULT_STRIDE:-16}
		export SNAPFS_FAULT_START=${SNAPFS_FAULT_START:-3}
		export SNAPFS_FAULT_REPO_WALK=${SNAPFS_FAULT_REPO_WALK:-0}
		shift ;;
	-h|--help) sed -n '2,/^set /p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "sanitize: unknown argument $1" >&2; exit 2 ;;
	esac
done
if [ "$mode" = thread ]; then
	build=${SANITIZE_BUILD_DIR:-build-tsan}
	sanitize=thread
	[ -n "$fs_list" ] || fs_list=$TSAN_FS_TESTS
else
	build=${SANITIZE_BUILD_DIR:-build-asan}
	sanitize=address,undefined
fi
logs="$src/$build/sanitizer-logs"
case $build in /*) logs="$build/sanitizer-logs" ;; esac
tap="$build/sanitizer-results.tap"

fail_all() {
	echo "sanitize: $1"
	mkdir -p "$build"
	{ echo "1..1"; echo "not ok 1 - sanitizer ($mode): $1"; } >"$tap"
	exit 1
}

# -Db_lundef=false: the sanitizer runtimes define symbols the shared
# objects of a link would otherwise have to.
opts=(-Db_sanitize="$sanitize" -Db_lundef=false -Dbuildtype=debugoptimized)
mkdir -p "$build"
if [ "$mode" = thread ]; then
	# GLib's locks, made visible to TSan (tests/sanitizers/glib-tsan.c)
	shim="$(cd "$build" && pwd)/glib-tsan.o"
	# not instrumented itself: its calls to __tsan_* are the point
	${CC:-cc} -fPIC -O1 -g $(pkg-config --cflags glib-2.0) \
		-c tests/sanitizers/glib-tsan.c -o "$shim" ||
		fail_all "cannot compile tests/sanitizers/glib-tsan.c"
	# (meson's compiler check links with these too, without b_sanitize)
	opts+=(-Dc_link_args="-fsanitize=thread $shim")
else
	# fork() children that would hang on ASan's allocator locks
	# (tests/sanitizers/asan-fork.c)
	shim="$(cd "$build" && pwd)/asan-fork.o"
	${CC:-cc} -fPIC -O1 -g -c tests/sanitizers/asan-fork.c -o "$shim" ||
		fail_all "cannot compile tests/sanitizers/asan-fork.c"
	opts+=(-Dc_link_args="$shim")
fi
if [ -f "$build/meson-private/coredata.dat" ]; then
	meson setup --reconfigure "$build" "${opts[@]}" >"$build/sanitize-setup.log" 2>&1 ||
		fail_all "meson setup failed: $build/sanitize-setup.log"
else
	meson setup "$build" "${opts[@]}" >"$build.setup.log" 2>&1 ||
		fail_all "meson setup failed: $build.setup.log"
	mv "$build.setup.log" "$build/sanitize-setup.log"
fi
meson compile -C "$build" >"$build/sanitize-compile.log" 2>&1 ||
	fail_all "the build failed: $build/sanitize-compile.log"

rm -rf "$logs"
mkdir -p "$logs"
rm -f "$build"/junit-*.xml "$build"/meson-logs/testlog.json "$tap"

supp="$src/tests/sanitizers"
# GLib's slice allocator hands memory from thread to thread in magazines
# the sanitizers cannot see (TSan calls that a race, LSan a leak): plain
# malloc instead
export G_SLICE=always-malloc
common="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$logs/$mode"
if [ "$mode" = thread ]; then
	# Races are counted by reports.py, not by the tests: TSan reports
	# every race and goes on (a race inside GLib's own hand-offs must not
	# stop the daemon), and leaves the exit status alone.
	export TSAN_OPTIONS="$common:halt_on_error=0:abort_on_error=0:exitcode=0:second_deadlock_stack=1:suppressions=$supp/tsan.supp"
else
	# exitcode=0: a leak found at exit does not change the exit status
	# (reports.py decides which leaks are snapfs's); memory errors still
	# abort (abort_on_error).  Full unwinding on malloc: GLib and libc have
	# no frame pointers, and with the fast unwinder a leak's stack ends in
	# g_strdup_printf or vasprintf, without the snapfs function that called
	# it (malloc-heavy code runs ~5x slower; the mount tests ~1.3x).
	export ASAN_OPTIONS="$common:detect_leaks=1:exitcode=0:fast_unwind_on_malloc=0"
	export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
	export UBSAN_OPTIONS="$common:log_path=$logs/ubsan"
fi
# the mount tests' watchdogs and mount timeouts: an instrumented daemon is
# slower (ASan about 2x, TSan 5-15x)
export SNAPFS_TEST_WATCHDOG=$([ "$mode" = thread ] && echo 600 || echo 300)

# meson test takes test names (a --suite next to names would filter them)
mapfile -t tests < <(meson test -C "$build" --list 2>/dev/null |
	sed 's/.* \/ //' | grep -E '^(unit|fs)-')
args=()
for t in "${tests[@]}"; do
	case $t in
	unit-*) args+=("$t") ;;
	fs-*)
		[ "$unit_only" -eq 0 ] || continue
		if [ -z "$fs_list" ] || [[ ",$fs_list," == *",${t#fs-},"* ]]; then
			args+=("$t")
		fi ;;
	esac
done
[ ${#args[@]} -gt 0 ] || fail_all "no tests found in $build"
start=$(date +%s)
meson test -C "$build" --print-errorlogs --timeout-multiplier 2 "${args[@]}"
meson_rc=$?
echo "sanitize: meson test took $(( $(date +%s) - start )) s"

# one case per distinct finding (tests/sanitizers/reports.py says which
# reports count)
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" tests/sanitizers/reports.py "$logs" "$mode" >"$tap" ||
	{ echo "1..1"; echo "not ok 1 - sanitizer ($mode): reports.py failed"; } >"$tap"
if grep -q '^not ok' "$tap"; then
	echo "sanitize: sanitizer reports in $logs:"
	grep '^not ok' "$tap" | sed 's/^/  /'
fi
[ $meson_rc -eq 0 ] && ! grep -q '^not ok' "$tap"
