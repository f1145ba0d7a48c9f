#!/bin/bash
# ceph-cluster.sh - a one-host Ceph cluster (one ceph-mon, one ceph-mgr, one
# ceph-osd) for the tests, the benchmarks and a user trying snapfs's RADOS
# repository (issue 14), without touching the host's /etc/ceph or
# /var/lib/ceph.
#
#   tools/ceph-cluster.sh start DIR [--addr IP] [--pool NAME]
#	creates DIR if needed, starts the three daemons, creates the pool
#	(pg_num 8, application rados) and prints DIR/ceph.conf on its last
#	line: a client runs `rados -c DIR/ceph.conf -p NAME ...`
#   tools/ceph-cluster.sh stop DIR [--remove]
#	stops the daemons by the pids in their pid files (TERM, then KILL
#	after 10 s) and waits for them to be gone; --remove deletes DIR
#   tools/ceph-cluster.sh status DIR
#	says which daemons run; exits 0 when all three do and the monitor
#	answers, 1 otherwise
#
# Everything lives under DIR: ceph.conf, the monitor's, manager's and OSD's
# data (mon/, mgr/, osd/; the OSD's BlueStore is one sparse 8 GiB file,
# osd/block), their admin sockets and pid files (run/), their logs (log/).
# No keys: `auth cluster/service/client required = none`.  Pools have one
# replica (`osd pool default size = 1`, `mon allow pool size one`), and
# CRUSH places it on an OSD, not a host (`osd crush chooseleaf type = 0`).
#
# The monitor listens on IP:3300 (msgr2 only; --addr, default 127.0.0.1);
# the OSD and the manager bind to IP as well, on ports the kernel picks,
# so a client in another network namespace that reaches IP (a veth pair)
# reaches the whole cluster.  Two clusters on one host need two addresses
# (any 127.x.y.z works on lo).
#
# A start on a DIR whose cluster was stopped starts the same cluster again,
# on the address it was made with (--addr is ignored then), data kept.  A start that fails midway stops what it started and prints
# the tail of the failing daemon's log.  The packages are in
# tools/packages.txt (ceph-mon, ceph-mgr, ceph-osd, ceph-common).
set -euo pipefail

MON_PORT=3300
BLOCK_SIZE=$((8 << 30))
WAIT=60			# seconds for each daemon to come up

usage() {
	cat >&2 <<-EOF
	usage: $0 start DIR [--addr IP] [--pool NAME]
	       $0 stop DIR [--remove]
	       $0 status DIR
	EOF
	exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$(realpath -m "$2")
shift 2
addr=127.0.0.1
pool=snapfs
remove=false
while [ $# -gt 0 ]; do
	case $1 in
	--addr) [ $# -ge 2 ] || usage; addr=$2; shift 2 ;;
	--pool) [ $# -ge 2 ] || usage; pool=$2; shift 2 ;;
	--remove) remove=true; shift ;;
	*) usage ;;
	esac
done

conf=$dir/ceph.conf
daemons=(mon.a mgr.x osd.0)	# start order

log() { echo "ceph-cluster: $*" >&2; }

# The pid of daemon $1 (mon.a, ...) when it runs, else nothing.  The pid
# file alone is not trusted: the process must be that daemon, for this DIR.
daemon_pid() {
	local pidfile=$dir/run/$1.pid pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile" 2>/dev/null || true)
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	[ -r "/proc/$pid/cmdline" ] || return 0
	tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$conf" ||
		return 0
	echo "$pid"
}

# Stop daemons "$@" at once: TERM, wait up to 10 s for all, KILL what
# is left.
stop_daemons() {
	local name pid pids=() left
	for name in "$@"; do
		pid=$(daemon_pid "$name")
		if [ -n "$pid" ]; then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done
	for _ in $(seq 100); do
		left=()
		for pid in "${pids[@]}"; do
			! kill -0 "$pid" 2>/dev/null || left+=("$pid")
		done
		[ ${#left[@]} -gt 0 ] || break
		sleep 0.1
	done
	for pid in "${left[@]}"; do
		log "pid $pid still runs 10 s after TERM: KILL"
		kill -KILL "$pid" 2>/dev/null || true
	done
	for pid in "${left[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	done
	for name in "$@"; do
		rm -f "$dir/run/$name.pid" "$dir/run/$name.asok"
	done
}

# The OSD and the manager first (each tells the monitor it goes), then
# the monitor.
stop_all() {
	stop_daemons osd.0 mgr.x
	stop_daemons mon.a
}

# ceph CLI against this cluster, bounded: a monitor that is not there
# yet makes the CLI wait (--connect-timeout), never hang.
ceph_cli() {
	timeout 30 ceph -c "$conf" --connect-timeout 5 "$@"
}

rados_cli() {
	timeout 30 rados -c "$conf" -p "$pool" --rados-mon-op-timeout 10 \
		--rados-osd-op-timeout 10 "$@"
}

log_tail() {
	local f
	for f in "$dir/log/$1.stderr" "$dir/log/$1.log"; do
		[ -s "$f" ] || continue
		echo "---- $f (last 30 lines) ----" >&2
		tail -n 30 "$f" >&2
	done
}

failing=""
fail() {
	log "$*"
	[ -z "$failing" ] || log_tail "$failing"
	exit 1
}

write_conf() {
	local fsid=$1
	cat > "$conf.tmp" <<-EOF
	# written by tools/ceph-cluster.sh: a one-host test cluster
	[global]
	fsid = $fsid
	mon host = [v2:$addr:$MON_PORT]
	mon initial members = a
	public addr = $addr
	cluster addr = $addr
	ms bind msgr1 = false
	auth cluster required = none
	auth service required = none
	auth client required = none
	osd pool default size = 1
	osd pool default min size = 1
	osd pool default pg autoscale mode = off
	mon allow pool size one = true
	mon allow pool delete = true
	mon warn on pool no redundancy = false
	mon warn on insecure global id reclaim allowed = false
	mon data avail warn = 2
	osd crush chooseleaf type = 0
	run dir = $dir/run
	# pool quotas and full flags are seen within about 2 s, not 15
	mgr stats period = 1
	mon mgr digest period = 1
	osd mon report interval = 1

	[mon]
	mon data = $dir/mon/\$name
	admin socket = $dir/run/\$name.asok
	pid file = $dir/run/\$name.pid
	log file = $dir/log/\$name.log
	mon cluster log file = $dir/log/cluster.log

	[mgr]
	mgr data = $dir/mgr/\$name
	admin socket = $dir/run/\$name.asok
	pid file = $dir/run/\$name.pid
	log file = $dir/log/\$name.log

	[osd]
	osd data = $dir/osd/\$name
	osd objectstore = bluestore
	bluestore block create = true
	bluestore block size = $BLOCK_SIZE
	bluestore fsck on mkfs = false
	osd memory target = 1073741824
	admin socket = $dir/run/\$name.asok
	pid file = $dir/run/\$name.pid
	log file = $dir/log/\$name.log
	EOF
	mv "$conf.tmp" "$conf"
}

# Wait up to WAIT seconds for "$@" to succeed; daemon $failing must stay up.
wait_for() {
	local what=$1
	shift
	local deadline=$((SECONDS + WAIT))
	while [ $SECONDS -lt $deadline ]; do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		[ -z "$failing" ] || [ -n "$(daemon_pid "$failing")" ] ||
			fail "$failing exited while waiting for $what"
		sleep 0.2
	done
	fail "timed out after ${WAIT} s waiting for $what"
}

osd_up_in() {
	local stat
	stat=$(ceph_cli osd stat -f json) || return 1
	python3 -c 'import json,sys
s = json.loads(sys.argv[1])
sys.exit(0 if s["num_up_osds"] >= 1 and s["num_in_osds"] >= 1 else 1)' "$stat"
}

# All the pool's placement groups active: a write then does not wait.
pool_active() {
	rados_cli put .ceph-cluster-probe /dev/null &&
	rados_cli rm .ceph-cluster-probe
}

# A start that fails stops whatever it started.
on_start_exit() {
	local rc=$?
	trap - EXIT
	[ "$rc" -eq 0 ] || stop_all
	exit "$rc"
}

start() {
	local d
	for d in "${daemons[@]}"; do
		[ -z "$(daemon_pid "$d")" ] ||
			{ log "$d runs already in $dir (stop it first)"; exit 1; }
	done
	for prog in ceph-mon ceph-mgr ceph-osd ceph rados monmaptool; do
		command -v "$prog" >/dev/null ||
			{ log "$prog missing: run tools/install-deps.sh"; exit 1; }
	done
	if [ -f "$conf" ] && [ -f "$dir/mon/mon.a/kv_backend" ]; then
		addr=$(sed -n 's/^public addr = //p' "$conf")
	fi
	# another monitor there: the bind would fail after 10 s of retries
	if timeout 2 bash -c "exec 3<>/dev/tcp/$addr/$MON_PORT" 2>/dev/null; then
		log "$addr:$MON_PORT is in use (another cluster?): try --addr 127.0.0.N"
		exit 1
	fi
	mkdir -p "$dir"/{run,log,mon/mon.a,mgr/mgr.x,osd/osd.0}
	trap on_start_exit EXIT
	trap 'exit 1' INT TERM HUP

	local fresh=false
	if [ ! -f "$dir/mon/mon.a/kv_backend" ]; then
		fresh=true
		write_conf "$(cat /proc/sys/kernel/random/uuid)"
		monmaptool --create --clobber --fsid "$(sed -n 's/^fsid = //p' "$conf")" \
			--addv a "[v2:$addr:$MON_PORT]" "$dir/monmap" >/dev/null
		failing=mon.a
		ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" \
			2>>"$dir/log/mon.a.stderr" ||
			fail "ceph-mon --mkfs failed"
	fi

	failing=mon.a
	ceph-mon -c "$conf" -i a 2>>"$dir/log/mon.a.stderr" || fail "ceph-mon did not start"
	wait_for "the monitor on $addr:$MON_PORT" ceph_cli mon stat

	failing=mgr.x
	ceph-mgr -c "$conf" -i x 2>>"$dir/log/mgr.x.stderr" || fail "ceph-mgr did not start"

	failing=osd.0
	if $fresh; then
		local uuid
		uuid=$(cat /proc/sys/kernel/random/uuid)
		[ "$(ceph_cli osd create "$uuid")" = 0 ] ||
			fail "ceph osd create did not give osd.0"
		ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" \
			>>"$dir/log/osd.0.stderr" 2>&1 ||
			fail "ceph-osd --mkfs failed"
	fi
	ceph-osd -c "$conf" -i 0 2>>"$dir/log/osd.0.stderr" || fail "ceph-osd did not start"
	wait_for "osd.0 up and in" osd_up_in

	failing=""
	wait_for "ceph health" ceph_cli health
	ceph_cli osd pool create "$pool" 8 8 >/dev/null 2>&1 ||
		fail "ceph osd pool create $pool failed"
	ceph_cli osd pool application enable "$pool" rados >/dev/null 2>&1 ||
		fail "ceph osd pool application enable $pool rados failed"
	failing=osd.0
	wait_for "the placement groups of pool $pool" pool_active
	echo "$conf"
}

stop() {
	stop_all
	$remove || return 0
	[ -e "$dir" ] || return 0
	# only a directory this script made: never a typo's whole tree
	if ! grep -qs '^# written by tools/ceph-cluster.sh' "$conf"; then
		log "$dir holds no cluster of this script: not removed"
		exit 1
	fi
	rm -rf "$dir"
}

status() {
	local d pid up=true
	for d in "${daemons[@]}"; do
		pid=$(daemon_pid "$d")
		if [ -n "$pid" ]; then
			echo "$d: running, pid $pid"
		else
			echo "$d: stopped"
			up=false
		fi
	done
	if $up && ceph_cli health >/dev/null 2>&1; then
		echo "up: $conf"
		return 0
	fi
	echo "down"
	return 1
}

case $cmd in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
