#!/bin/bash
# with-ceph.sh PROGRAM [ARG...] - run a unit test program against a fresh
# one-host Ceph cluster (tools/ceph-cluster.sh), always stopped afterwards.
#
# The cluster lives in a new /var/tmp/snapfs-ceph-unit.* directory (its
# owner file names this shell, so that tests/fs/ceph_harness.py reaps it
# should this shell be killed outright), on a random 127.x.y.z address (two
# runs at once do not collide), with the pool snapfs-unit.  PROGRAM gets
# SNAPFS_CEPH_CONF (DIR/ceph.conf), SNAPFS_CEPH_DIR and SNAPFS_CEPH_POOL.
#
# stdout is PROGRAM's TAP: the script's own messages go to stderr.  Exit
# status: PROGRAM's; 1 with a TAP "Bail out!" when the cluster does not
# start.  When the Ceph programs are missing it prints the TAP plan
# "1..0 # SKIP ..." and exits 0, which meson reports as SKIP, never as a
# pass: meson 1.0's TAP protocol reports an exit status of 77 as ERROR.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cluster_sh=$here/../../tools/ceph-cluster.sh
pool=snapfs-unit

[ $# -ge 1 ] || { echo "usage: $0 PROGRAM [ARG...]" >&2; exit 2; }
for prog in ceph-mon ceph-mgr ceph-osd ceph rados monmaptool; do
	if ! command -v "$prog" >/dev/null; then
		echo "1..0 # SKIP $prog missing (tools/install-deps.sh)"
		exit 0
	fi
done

base=/var/tmp
[ -d "$base" ] || base=${TMPDIR:-/tmp}
dir=$(mktemp -d "$base/snapfs-ceph-unit.XXXXXX") || exit 1
echo $$ > "$dir/owner"
stop_cluster() {
	bash "$cluster_sh" stop "$dir" --remove >&2 || true
	# a start that failed before writing ceph.conf leaves the owner only
	rm -f "$dir/owner"
	rmdir "$dir" 2>/dev/null || true
}
trap stop_cluster EXIT
trap 'exit 1' INT TERM HUP

addr=127.$((RANDOM % 254 + 1)).$((RANDOM % 256)).$((RANDOM % 254 + 1))
start=$SECONDS
if ! conf=$(bash "$cluster_sh" start "$dir" --addr "$addr" --pool "$pool" |
	    tail -n 1) || [ ! -f "$conf" ]; then
	echo "Bail out! the Ceph cluster did not start (see stderr)"
	exit 1
fi
echo "with-ceph: cluster up on $addr in $((SECONDS - start)) s: $conf" >&2

SNAPFS_CEPH_CONF=$conf SNAPFS_CEPH_DIR=$dir SNAPFS_CEPH_POOL=$pool "$@"
