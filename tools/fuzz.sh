#!/bin/bash
# fuzz.sh - build the libFuzzer targets of tests/fuzz with clang and run
# each for a while on its seed corpus.
#
# Usage: tools/fuzz.sh [--time SECONDS] [--jobs N] [--merge] [TARGET...]
#
#   --time S   seconds per target (default 20, what tools/test.sh and CI
#              run; e.g. --time 600 for a longer run on demand)
#   --jobs N   targets run at once (default: the number of CPUs)
#   --merge    afterwards, add the inputs that found new coverage to
#              tests/fuzz/corpus/<target>/ (libFuzzer -merge=1), to commit
#   TARGET     path control vm_control snapshot_options limits policy
#              qemu_img json domain_xml options repo_index repo_json
#              (default: all)
#
# The build directory is $FUZZ_BUILD_DIR (default: build-fuzz), configured
# with CC=clang -Dfuzz=true; the seed corpus is never written to except by
# --merge: new inputs go to BUILD/fuzz-work/<target>/, crashes to
# BUILD/fuzz-artifacts/<target>-crash-*, logs to BUILD/fuzz-logs/.
#
# Prints one line per target, `ok <target> <execs> execs` or
# `FAIL <target> <reason> <artifact>`, and writes BUILD/fuzz-results.tap,
# which tools/count-results.py counts (one case per target).  Exit status:
# 0 when every target ran clean, 1 otherwise.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD
build=${FUZZ_BUILD_DIR:-build-fuzz}
all_targets=(path control vm_control snapshot_options limits policy qemu_img json
	domain_xml options repo_index repo_json manifest restore)
seconds=20
jobs=$(nproc 2>/dev/null || echo 2)
merge=0
targets=()

while [ $# -gt 0 ]; do
	case $1 in
	--time) seconds=$2; shift 2 ;;
	--time=*) seconds=${1#--time=}; shift ;;
	--jobs) jobs=$2; shift 2 ;;
	--jobs=*) jobs=${1#--jobs=}; shift ;;
	--merge) merge=1; shift ;;
	-h|--help) sed -n '2,/^set /p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
	*) targets+=("$1"); shift ;;
	esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
	[ -d "tests/fuzz/corpus/$t" ] || { echo "fuzz: no target '$t'" >&2; exit 2; }
done

tap="$build/fuzz-results.tap"
fail_all() {
	echo "FAIL fuzz $1"
	mkdir -p "$build"
	{ echo "1..1"; echo "not ok 1 - fuzz: $1"; } > "$tap"
	exit 1
}

command -v clang >/dev/null || fail_all "clang is not installed (tools/packages.txt lists it)"
if [ -f "$build/meson-private/coredata.dat" ]; then
	meson setup --reconfigure "$build" -Dfuzz=true -Dfs_tests=false \
		>"$build/fuzz-setup.log" 2>&1 || fail_all "meson setup failed: $build/fuzz-setup.log"
else
	mkdir -p "$build"
	CC=clang meson setup "$build" -Dfuzz=true -Dfs_tests=false \
		>"$build.setup.log" 2>&1 || fail_all "meson setup failed: $build.setup.log"
	mv "$build.setup.log" "$build/fuzz-setup.log"
fi
exes=()
for t in "${targets[@]}"; do exes+=("fuzz_$t"); done
meson compile -C "$build" "${exes[@]}" >"$build/fuzz-compile.log" 2>&1 ||
	fail_all "the build failed: $build/fuzz-compile.log"

rm -f "$tap"
mkdir -p "$build/fuzz-logs" "$build/fuzz-artifacts"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# run_target T: fuzz T for $seconds; its verdict line goes to fuzz-logs/T.result
run_target() {
	local t=$1 exe="$build/tests/fuzz/fuzz_$1" log="$build/fuzz-logs/$1.log"
	local work="$build/fuzz-work/$1" art="$build/fuzz-artifacts/$1-"
	local rc execs found

	mkdir -p "$work"
	rm -f "$build/fuzz-logs/$t.result" "$art"crash-* "$art"leak-* "$art"timeout-* "$art"oom-*
	timeout $((seconds + 120)) "$exe" -max_total_time="$seconds" \
		-timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
		-artifact_prefix="$art" "$work" "$src/tests/fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	found=$(ls "$art"* 2>/dev/null | head -1)
	if [ $rc -eq 0 ] && [ -z "$found" ]; then
		echo "ok $t ${execs:-0} execs" >"$build/fuzz-logs/$t.result"
	else
		local why
		why=$(grep -a -m1 -E 'fuzz: invariant|ERROR: [A-Za-z]+Sanitizer|runtime error|ERROR: libFuzzer' "$log" |
		      sed 's/^==[0-9]*==//' | cut -c1-200)
		[ -n "$why" ] || why="exit status $rc"
		echo "FAIL $t ${why} ${found:-(no artifact)} (log $log)" >"$build/fuzz-logs/$t.result"
	fi
}

running=0
for t in "${targets[@]}"; do
	run_target "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

n=0
failed=0
echo "1..${#targets[@]}" >"$tap"
for t in "${targets[@]}"; do
	n=$((n + 1))
	line=$(cat "$build/fuzz-logs/$t.result" 2>/dev/null || echo "FAIL $t no result")
	echo "$line"
	case $line in
	ok\ *) echo "ok $n - fuzz-$t: ${line#ok $t }" >>"$tap" ;;
	*) # a '#' would start a TAP directive
	   why=${line#FAIL $t }
	   echo "not ok $n - fuzz-$t: ${why//#/?}" >>"$tap"
	   failed=$((failed + 1)) ;;
	esac
done

if [ $merge -eq 1 ]; then
	for t in "${targets[@]}"; do
		"$build/tests/fuzz/fuzz_$t" -merge=1 "tests/fuzz/corpus/$t" \
			"$build/fuzz-work/$t" >>"$build/fuzz-logs/$t.merge.log" 2>&1 &&
			echo "fuzz: merged new inputs into tests/fuzz/corpus/$t" ||
			echo "fuzz: merging $t failed (see $build/fuzz-logs/$t.merge.log)"
	done
fi
[ $failed -eq 0 ]
