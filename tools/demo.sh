#!/bin/bash
# demo.sh - install what is missing, build, and mount a demo snapfs with two
# real qcow2 volumes holding data, then print a short tour.
#
# Usage: tools/demo.sh [STATE_DIR]     (default: $SNAPFS_DEMO_DIR or
#                                        /var/tmp/snapfs-demo)
# Running it again unmounts the previous demo and mounts it afresh; the
# volumes and snapshots already in STATE_DIR are kept.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${BUILD_DIR:-build}
export BUILD_DIR=$build
demo=${1:-${SNAPFS_DEMO_DIR:-/var/tmp/snapfs-demo}}
mnt=$demo/mnt

bash tools/install-deps.sh
bash tools/build.sh

bin=$build/fs/snapfs
if [ ! -x "$bin" ]; then
	bin=$(find "$build" -maxdepth 3 -type f -name snapfs -perm -u+x | head -n 1)
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	echo "demo: no snapfs binary under $build" >&2
	exit 1
fi
bin=$(realpath "$bin")

# Is $1 a mount point?  Read mountinfo rather than stat the path: a dead
# FUSE mount answers every stat with "Transport endpoint is not connected".
is_mounted() {
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

mkdir -p "$demo/primary"
demo=$(realpath "$demo")
mnt=$demo/mnt

if is_mounted "$mnt"; then
	echo "demo: unmounting the previous demo at $mnt"
	fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
	for _ in $(seq 50); do
		is_mounted "$mnt" || break
		sleep 0.1
	done
fi
mkdir -p "$mnt"

# Two volumes with real data: qemu-io writes a byte pattern, as a guest would.
make_volume() {	# name virtual-size "pattern offset length"...
	local name=$1 size=$2 img=$demo/primary/$1.qcow2 args=()
	shift 2
	[ -e "$img" ] && return 0
	qemu-img create -q -f qcow2 "$img" "$size"
	for w in "$@"; do
		args+=(-c "write -P $w")
	done
	qemu-io -f qcow2 "${args[@]}" "$img" >/dev/null
	echo "demo: volume $name: $(qemu-img info "$img" | sed -n 's/^virtual size: //p')"
}
make_volume web 1G "0xaa 0 4M" "0xab 256M 2M"
make_volume db 2G "0xdb 0 8M" "0xdc 1G 4M"

# A small VM with both volumes as its disks (no guest OS is needed to
# snapshot it): snapfs defines every SOURCE/domains/*.xml at mount.
vmtype=qemu
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	vmtype=kvm
fi
mkdir -p "$demo/domains"
cat > "$demo/domains/demo.xml" <<XML
<domain type='$vmtype'>
  <name>demo</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$demo/primary/web.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$demo/primary/db.qcow2'/><target dev='vdb' bus='virtio'/></disk>
  </devices>
</domain>
XML

"$bin" -o workers=2 "$demo" "$mnt"
for _ in $(seq 200); do
	is_mounted "$mnt" && break
	sleep 0.1
done
if ! is_mounted "$mnt"; then
	echo "demo: snapfs did not mount; its log:" >&2
	tail -n 30 "$demo/snapfs.log" >&2 2>/dev/null || true
	exit 1
fi

snap=first
n=1
while [ -e "$mnt/volumes/web/snapshots/$snap" ]; do
	n=$((n + 1))
	snap=snap$n
done

cat <<TOUR

snapfs is mounted at $mnt
(state, catalog and snapfs.log in $demo; the volumes are the qcow2 files in
$demo/primary).  Try:

  ls $mnt $mnt/volumes
  cat $mnt/volumes/web/info

  # take a snapshot: mkdir returns at once, the copy runs in the background
  mkdir $mnt/volumes/web/snapshots/$snap
  cat $mnt/volumes/web/snapshots/$snap/state      # BackingUp, then BackedUp
  ls $mnt/jobs                                    # the copy, while it runs
  cat $mnt/wait/web/$snap                         # blocks until the copy ends
  $(cd "$build" && pwd)/snapctl/snapctl -m $mnt status   # or: snapctl wait, events -f, tree

  # the finished backup: a standalone qcow2 and its manifest
  ls -l $mnt/backed-up/volumes/web/
  # it lives as deduplicated chunks in $demo/secondary/.chunks; a raw view
  # to loop-mount for single-file restore; re-check its chunks
  ls -l $mnt/images/volumes/web/
  echo "verify $snap" > $mnt/volumes/web/control; grep verified_at $mnt/volumes/web/snapshots/$snap/info

  # what happened, as JSON Lines
  cat $mnt/events

  # new volumes from a snapshot (full copies, any number at once), revert
  echo "clone $snap web-copy" > $mnt/volumes/web/control; ls $mnt/volumes
  echo "revert $snap" > $mnt/volumes/web/control

  # a snapshot every day at 02:00, the newest 7 kept
  echo "target=volume:db schedule=daily@02:00 keep=7 tz=UTC" > $mnt/policies/db-daily
  cat $mnt/policies/db-daily                       # with its next run

  mv $mnt/volumes/web/snapshots/$snap $mnt/volumes/web/snapshots/renamed
  rmdir $mnt/volumes/web/snapshots/renamed
  # the VM 'demo' has both volumes as disks
  cat $mnt/vms/demo/info
  echo start > $mnt/vms/demo/control; cat $mnt/vms/demo/state
  mkdir $mnt/vms/demo/snapshots/before            # all disks, one instant
  echo memory=yes > $mnt/vms/demo/snapshot-options
  mkdir $mnt/vms/demo/snapshots/with-memory       # disks + RAM
  ls -l $mnt/vms/demo/snapshots/                  # current -> with-memory
  echo "revert before" > $mnt/vms/demo/control    # disk snapshot: ends stopped
  echo "revert with-memory" > $mnt/vms/demo/control  # ends running
  echo force-stop > $mnt/vms/demo/control

$mnt/README describes the whole tree.  When done (VMs keep running
without snapfs, so stop them first):

  echo force-stop > $mnt/vms/demo/control; fusermount3 -u $mnt
TOUR
