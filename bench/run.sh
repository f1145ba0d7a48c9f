#!/usr/bin/env bash
# bench/run.sh - run the snapfs benchmarks of issue 2 (see docs/benchmarks.md).
#
#   bash bench/run.sh [--quick] [snapbench.py options...]
#
# Needs root (a FUSE mount, /proc/sys/vm/drop_caches), qemu-img, qemu-io and
# fusermount3.  Uses $SNAPFS_BIN, else build/fs/snapfs (built first if it is
# missing).  Works in a fresh directory under /var/tmp on local disk (or
# $SNAPFS_BENCH_DIR) and always unmounts, stops its daemon and removes that
# directory at the end, also after a failure or Ctrl-C.  Exit status: 0 all
# targets met, 1 a target missed, 2 the run failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

if [ "$(id -u)" -ne 0 ]; then
	echo "bench/run.sh: run as root (FUSE mount, drop_caches)" >&2
	exit 2
fi

bin=${SNAPFS_BIN:-$root/build/fs/snapfs}
if [ ! -x "$bin" ]; then
	echo "bench/run.sh: building snapfs ($bin is missing)"
	(cd "$root" && { [ -f build/build.ninja ] || meson setup build; } &&
		meson compile -C build)
fi

base=${SNAPFS_BENCH_DIR:-/var/tmp}
fstype=$(stat -f -c %T "$base")
case $fstype in
tmpfs | ramfs | overlayfs | fuseblk | fuse | nfs)
	echo "bench/run.sh: $base is $fstype; set SNAPFS_BENCH_DIR to a local disk" >&2
	exit 2
	;;
esac
work=$(mktemp -d "$base/snapfs-bench.XXXXXX")

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	# the Python side unmounts and stops the daemon; this is the backstop
	if grep -qF " $work/mnt " /proc/self/mountinfo; then
		fusermount3 -u "$work/mnt" 2>/dev/null || fusermount3 -uz "$work/mnt" 2>/dev/null || true
	fi
	if [ -f "$work/snapfs.pid" ]; then
		pid=$(cat "$work/snapfs.pid")
		# only our daemon: its command line names our work directory
		if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$work/"; then
			kill "$pid" 2>/dev/null || true
			sleep 1
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	if grep -qF " $work/" /proc/self/mountinfo; then
		echo "bench/run.sh: something is still mounted under $work; left in place" >&2
	else
		rm -rf --one-file-system "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 "$here/snapbench.py" --bin "$bin" --workdir "$work" "$@"
