#!/usr/bin/env bash
# bench/run.sh - run the snapfs benchmarks (see docs/benchmarks.md): those of
# issue 2 (snapbench.py: volume snapshots, backups, reads) by default, the VM
# snapshot benchmarks of issue 3 (vmbench.py) with --vm, the clone benchmark
# of issue 4 (clonebench.py: 1 vs 8 concurrent clones vs cp) with --clone,
# those of issue 5 (policybench.py: scheduler cost of 1,000 policies over a
# simulated day, ls -l of 10,000 snapshots) with --policy, all four with
# --all.  --chunks runs bench/chunkbench.c of issue 13 (what a repository
# chunk costs: SHA-256, zstd; no mount, about a minute) and is not part of
# --all.  --views runs viewbench.py of issue 13 (cold reads of the raw and
# qcow2 views vs a direct read; about 5 minutes), not part of --all either.
# --repo runs bench/repobench.c (repo_backup_image() against qemu-img
# convert, no mount; its options) and then repomount.py (issue 13's "Done
# when" targets on a mount with -o repository=on; only --quick of the
# line goes to it); --repo --mount-only runs repomount.py alone with every
# option, --repo --no-mount repobench alone.  Neither is part of --all.
# --rados runs radosbench.py of issue 14 (a full backup to RADOS vs
# qemu-img convert to RBD, an incremental backup's objects written vs
# chunks changed) on a one-host Ceph cluster it starts in its work
# directory (tools/ceph-cluster.sh) and stops at the end; about 3 minutes;
# not part of --all.
#
#   bash bench/run.sh [--quick] [snapbench.py options...]
#   bash bench/run.sh --vm [--quick] [--libvirt=embedded|system|both] [vmbench.py options...]
#   bash bench/run.sh --clone [--quick] [clonebench.py options...]
#   bash bench/run.sh --policy [--quick] [policybench.py options...]
#   bash bench/run.sh --all [--quick]
#   bash bench/run.sh --chunks [--mib=N] [--reps=N] [--drop]
#   bash bench/run.sh --repo [--quick] [--gib=N] [--reps=N] [--chunk-mib=N] [--no-drop]
#   bash bench/run.sh --repo --no-mount [--gib=N] [--reps=N] [--chunk-mib=N] [--no-drop]
#   bash bench/run.sh --repo --mount-only [--quick] [repomount.py options...]
#   bash bench/run.sh --views [--quick] [viewbench.py options...]
#   bash bench/run.sh --rados [--quick] [radosbench.py options...]
#
# --vm runs under libvirt's QEMU driver embedded in snapfs (QEMU as root) by
# default; --libvirt=system under a private system libvirtd started with
# tools/system-libvirtd.sh (QEMU as libvirt-qemu, dynamic ownership,
# virtlogd), --libvirt=both under one, then the other (--libvirt alone
# implies --vm).
#
# Needs root (a FUSE mount, /proc/sys/vm/drop_caches, libvirt's embedded QEMU
# driver), qemu-img, qemu-io and fusermount3, and for --vm
# qemu-system-x86_64 (and libvirtd, virtlogd, virsh with --libvirt=system);
# --rados ceph-mon, ceph-mgr, ceph-osd, ceph, rbd, Debian's python3-rados
# and qemu-img's rbd driver (qemu-block-extra), and 8 GiB free for the OSD;
# --clone needs about 30 GiB free (16 GiB with --quick)
# and clonebench.py refuses to start without it.  Uses $SNAPFS_BIN, else
# build/fs/snapfs (built first if it is missing).  Works in a fresh directory
# under /var/tmp on local disk (or $SNAPFS_BENCH_DIR) and always force-stops
# its VMs, unmounts, stops its daemon (and its system libvirtd) and removes
# that directory at the end, also after a failure or Ctrl-C.  Exit status: 0 all targets met, 1 a target
# missed, 2 a run failed (with --all: the worst of the four).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

# --vm, --clone, --policy or --all, anywhere on the line; the rest goes to the
# Python side
which=io
repo_part=both
args=()
for a in "$@"; do
	case $a in
	--mount-only) repo_part=mount ;;
	--no-mount) repo_part=bench ;;
	--vm) which=vm ;;
	--clone) which=clone ;;
	--policy) which=policy ;;
	--all) which=all ;;
	--chunks) which=chunks ;;
	--repo) which=repo ;;
	--views) which=view ;;
	--rados) which=rados ;;
	--libvirt=*)
		[ "$which" = io ] && which=vm
		args+=("$a")
		;;
	*) args+=("$a") ;;
	esac
done
set -- "${args[@]+"${args[@]}"}"
if [ "$repo_part" != both ] && [ "$which" != repo ]; then
	echo "bench/run.sh: --mount-only and --no-mount go with --repo" >&2
	exit 2
fi
if [ "$which" = all ] && [ $# -gt 0 ] && [ "$*" != --quick ]; then
	echo "bench/run.sh: --all takes only --quick; run --vm, --clone, --policy or the default alone for other options" >&2
	exit 2
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "bench/run.sh: run as root (FUSE mount, drop_caches)" >&2
	exit 2
fi

bin=${SNAPFS_BIN:-$root/build/fs/snapfs}
if [ "$which" = chunks ]; then
	# a C program, built here (not by default); needs only a setup build/
	bin=$root/build/bench/chunkbench
	(cd "$root" && { [ -f build/build.ninja ] || meson setup build; } &&
		ninja -C build bench/chunkbench) >/dev/null
elif [ "$which" = repo ]; then
	bin=$root/build/bench/repobench
	(cd "$root" && { [ -f build/build.ninja ] || meson setup build; } &&
		ninja -C build bench/repobench) >/dev/null
	if [ "$repo_part" != bench ]; then
		snapfs_bin=${SNAPFS_BIN:-$root/build/fs/snapfs}
		[ -x "$snapfs_bin" ] || (cd "$root" && meson compile -C build)
	fi
elif [ ! -x "$bin" ]; then
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

# Is process $1 ours: does its command line name our work directory?
ours() {
	{ tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | grep -qF "$work/"
}

cleanup() {
	local rc=$? pid mnt f
	trap - EXIT INT TERM
	# the Python side force-stops the VMs, unmounts and stops the daemon;
	# this is the backstop
	# policybench.py mounts in subdirectories of its own (sched/, ls/)
	for mnt in "$work/mnt" "$work"/*/mnt "$work"/*/*/mnt; do
		if grep -qF " $mnt " /proc/self/mountinfo; then
			fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
		fi
	done
	for f in "$work/snapfs.pid" "$work"/*/snapfs.pid "$work"/*/*/snapfs.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		if ours "$pid"; then
			kill "$pid" 2>/dev/null || true
			sleep 1
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	# a system libvirtd of vmbench.py --libvirt=system|both (WORK/libvirtd
	# or WORK/*/libvirtd, WORK/vm/*/libvirtd with --all): its pid files
	# are gone once vmbench.py has stopped it
	for d in "$work/libvirtd" "$work"/*/libvirtd "$work"/*/*/libvirtd; do
		[ -f "$d/libvirtd.pid" ] || [ -f "$d/virtlogd.pid" ] || continue
		echo "bench/run.sh: stopping the system libvirtd left in $d" >&2
		bash "$root/tools/system-libvirtd.sh" stop "$d" || true
	done
	# radosbench.py's Ceph cluster (WORK/ceph): its daemons by their pid
	# files, those naming WORK/ceph/ceph.conf only
	if [ -f "$work/ceph/ceph.conf" ]; then
		bash "$root/tools/ceph-cluster.sh" stop "$work/ceph" || true
	fi
	# VMs outlive snapfs: kill every QEMU whose command line names $work
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -q '^[^ ]*qemu-system' && ours "$pid"; then
			echo "bench/run.sh: killing QEMU $pid left running" >&2
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	if grep -qF " $work/" /proc/self/mountinfo; then
		echo "bench/run.sh: something is still mounted under $work; left in place" >&2
	else
		rm -rf --one-file-system "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run the benchmarks $1 (io, vm, clone or policy) in directory $2.
bench() {
	local script=$here/${1}bench.py
	local py=python3
	[ "$1" = io ] && script=$here/snapbench.py
	# Debian's python3-rados (pulled in by ceph-common) is the system
	# Python's, not a virtualenv's or pyenv's
	[ "$1" = rados ] && py=/usr/bin/python3
	"$py" "$script" --bin "$bin" --workdir "$2" "${@:3}"
}

case $which in
chunks) "$bin" --dir "$work" "$@" ;;
repo)
	# repobench.c (--no-mount: alone), then repomount.py (--mount-only:
	# alone, with every option; else only --quick); the exit status is
	# the worse one
	st=0
	mount_args=()
	bench_args=()
	for a in "$@"; do
		case $a in
		--quick) mount_args+=("$a") ;;
		*) bench_args+=("$a") ;;
		esac
	done
	[ "$repo_part" = mount ] && mount_args=("$@")
	if [ "$repo_part" != mount ]; then
		mkdir "$work/chunks"
		"$bin" --dir "$work/chunks" "${bench_args[@]+"${bench_args[@]}"}" || st=$?
	fi
	if [ "$repo_part" != bench ]; then
		[ "$repo_part" = both ] && echo
		mkdir "$work/mount"
		python3 "$here/repomount.py" --bin "$snapfs_bin" --workdir "$work/mount" \
			"${mount_args[@]+"${mount_args[@]}"}" || {
			r=$?
			[ "$r" -gt "$st" ] && st=$r
		}
	fi
	exit "$st"
	;;
all)
	# all four, each in its own directory; the exit status is the worst one
	st=0
	for b in io vm clone policy; do
		[ "$b" = io ] || echo
		mkdir "$work/$b"
		bench "$b" "$work/$b" "$@" || {
			r=$?
			[ "$r" -gt "$st" ] && st=$r
		}
	done
	exit "$st"
	;;
*) bench "$which" "$work" "$@" ;;
esac
