#!/bin/bash
# install-deps.sh - install whatever tools/packages.txt lists and is missing.
#
# Debian 12, as root.  Idempotent: when everything is there it only checks
# (dpkg-query, well under a second) and runs no apt-get at all.  Also creates
# the libvirt-qemu system user that libvirt's embedded QEMU driver needs
# (libvirt-daemon-system would create it, but it pulls in services).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list="$here/packages.txt"

packages=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$')

missing=()
for pkg in $packages; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [ "$status" != "install ok installed" ]; then
		missing+=("$pkg")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages: ${missing[*]}" >&2
		echo "install-deps: run as root to install them" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! getent passwd libvirt-qemu >/dev/null; then
	if [ "$(id -u)" -eq 0 ]; then
		useradd -r -M -s /usr/sbin/nologin libvirt-qemu
		echo "install-deps: created system user libvirt-qemu"
	else
		echo "install-deps: user libvirt-qemu missing (run as root to create it)" >&2
	fi
fi
