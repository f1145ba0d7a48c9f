#!/bin/bash
# system-libvirtd.sh - a private system libvirtd (and virtlogd) for tests,
# benchmarks and trying snapfs's qemu:///system mode, without touching the
# host's libvirt.
#
#   tools/system-libvirtd.sh start DIR   prints the URI to use (one line)
#   tools/system-libvirtd.sh stop DIR    stops both daemons, waits for them
#
# The daemons are the Debian ones (libvirt-daemon, libvirt-daemon-driver-qemu
# in tools/packages.txt), run as root exactly as the system service runs
# them: QEMU as the unprivileged `libvirt-qemu` user with dynamic ownership
# (DAC relabelling and remember_owner on, Debian's defaults).  A privileged
# libvirtd has its paths compiled in (/etc/libvirt, /run/libvirt,
# /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt), so both daemons
# run in a mount namespace of their own where DIR's subdirectories are
# bind-mounted over those paths; the client socket is DIR/sock/libvirt-sock,
# named in the URI.  What differs from a stock host, and why:
#
#   - qemu.conf `namespaces = [ ]`: libvirt would give each QEMU a private
#     copy of the mount table.  On this machine (and in CI) every mount is
#     private, so such a copy would hold any FUSE mount of the moment and
#     its daemon could never unmount.  On a host with shared mounts (systemd)
#     the copy is a slave and unmounts propagate: the default is fine there.
#   - the namespace unmounts (lazily) the FUSE mounts it inherits, for the
#     same reason.
#
#   - /dev/kvm: Debian's udev rule makes it 0660 root:kvm and
#     libvirt-daemon-system puts libvirt-qemu in the kvm group.  Machines
#     without udev (containers, CI) have it 0600 root, so QEMU as
#     libvirt-qemu could not use KVM, and libvirt would probe QEMU's
#     capabilities anew at every VM start (about 4 s: "KVM was enabled when
#     probing, but it is not available now").  The script does what the
#     packages do: the libvirt-qemu user and the kvm group, the user in the
#     group, and inside the namespace only a 0660 root:kvm node of the same
#     device over /dev/kvm (the host's /dev/kvm is not changed).
set -euo pipefail

usage() {
	echo "usage: $0 start|stop DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$(realpath -m "$2")

stop() {
	local name pid
	for name in libvirtd virtlogd; do
		[ -f "$dir/$name.pid" ] || continue
		pid=$(cat "$dir/$name.pid" 2>/dev/null || true)
		[ -n "$pid" ] || continue
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		rm -f "$dir/$name.pid"
	done
}

start() {
	mkdir -p "$dir"/{etc,run,lib,log,cache,sock}
	mkdir -p "$dir"/lib/qemu "$dir"/log/qemu "$dir"/cache/qemu
	cat > "$dir/etc/libvirtd.conf" <<-EOF
	# written by tools/system-libvirtd.sh
	unix_sock_dir = "$dir/sock"
	unix_sock_rw_perms = "0770"
	auth_unix_rw = "none"
	auth_unix_ro = "none"
	log_outputs = "3:file:$dir/libvirtd.log"
	EOF
	cat > "$dir/etc/virtlogd.conf" <<-EOF
	log_outputs = "3:file:$dir/virtlogd.log"
	EOF
	cat > "$dir/etc/qemu.conf" <<-EOF
	# written by tools/system-libvirtd.sh: Debian's defaults (QEMU as
	# libvirt-qemu, dynamic_ownership = 1, remember_owner = 1), except:
	namespaces = [ ]
	EOF
	rm -f "$dir/libvirtd.pid" "$dir/virtlogd.pid"
	getent passwd libvirt-qemu >/dev/null ||
		useradd -r -M -s /usr/sbin/nologin libvirt-qemu
	getent group kvm >/dev/null || groupadd -r kvm
	id -nG libvirt-qemu | grep -qw kvm || usermod -a -G kvm libvirt-qemu
	rm -f "$dir/kvm"
	if [ -c /dev/kvm ]; then
		mknod "$dir/kvm" c $((16#$(stat -c %t /dev/kvm))) \
			$((16#$(stat -c %T /dev/kvm)))
		chown root:kvm "$dir/kvm"
		chmod 0660 "$dir/kvm"
	fi
	# both daemons in one mount namespace; the shell that builds it exits
	unshare --mount --propagation private /bin/bash -euc '
		d=$1
		findmnt -rn -t fuse,fuse.snapfs -o TARGET | sort -r |
			while read -r m; do umount -l "$m" || true; done
		mount --bind "$d/etc" /etc/libvirt 2>/dev/null ||
			{ mkdir -p /etc/libvirt; mount --bind "$d/etc" /etc/libvirt; }
		for p in run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt \
			 cache:/var/cache/libvirt; do
			mkdir -p "${p#*:}"
			mount --bind "$d/${p%%:*}" "${p#*:}"
		done
		if [ -c "$d/kvm" ]; then mount --bind "$d/kvm" /dev/kvm; fi
		virtlogd -d -p "$d/virtlogd.pid" -f /etc/libvirt/virtlogd.conf
		libvirtd -d -p "$d/libvirtd.pid" -f /etc/libvirt/libvirtd.conf
	' bash "$dir"
	local uri="qemu:///system?socket=$dir/sock/libvirt-sock"
	for _ in $(seq 300); do
		if virsh -q -c "$uri" list --all >/dev/null 2>&1; then
			echo "$uri"
			return 0
		fi
		sleep 0.1
	done
	echo "system-libvirtd: libvirtd did not answer on $uri (see $dir/libvirtd.log)" >&2
	stop
	return 1
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
