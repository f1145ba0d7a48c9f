/*
 * vmdisk.h - which VM has a volume as a disk.
 *
 * Asks libvirt each time (through vm.h's wrapper): VMs change under snapfs
 * (virsh start, destroy, attach-disk), so nothing here is cached.  Never
 * called with a lock held: each call is a libvirt round trip.
 */
#ifndef SNAP_VMDISK_H
#define SNAP_VMDISK_H

#include "context.h"
#include "vm.h"

/* The running VM that writes a volume. */
struct vm_user {
	char vm[SNAP_NAME_MAX + 1];
	char alias[64];	/* the disk's alias in QEMU, for QMP */
};

/** vmdisk_volume() - the volume @disk is (its file is PRIMARY/<vol>.qcow2),
 * in @vol.  Return: true when it is one. */
bool vmdisk_volume(struct snap_engine *eng, const struct vm_disk *disk,
		   char *vol, size_t size);
/** vmdisk_user_find() - the running VM with PRIMARY/@vol.qcow2 as a disk.
 * Return: 0; -ENOENT none (or no VMs); -EAGAIN libvirt cannot be reached. */
int vmdisk_user_find(struct snap_engine *eng, const char *vol, struct vm_user *out);
/** vmdisk_vm_of() - name of a VM (running or not) with @vol as a disk.
 * Return: 0; -ENOENT none; -EAGAIN libvirt cannot be reached. */
int vmdisk_vm_of(struct snap_engine *eng, const char *vol, char *vm, size_t size);

#endif
