/*
 * vms.h - VM snapshots: the vms/ tree, take, revert, delete, control.
 *
 * Calling sequence: vms_start() at mount (connects to libvirt), then
 * vms_recover() during recovery; vms_snapshot_take() from the policy thread;
 * vms_stop() at close.
 */
#ifndef SNAP_VMS_H
#define SNAP_VMS_H

#include "context.h"

/** vms_start() - connect to libvirt, define SOURCE/domains/ *.xml.
 * Return: 0 (also when the embedded driver cannot start: no VMs); -errno
 * a libvirt named with -o libvirt=URI does not answer (logged). */
int vms_start(struct snap_engine *eng);
void vms_stop(struct snap_engine *eng);
/** vms_snapshot_take() - snap_vm_snapshot_take() for policy @policy_id
 * (@replaces as for snapshot_take()). */
int vms_snapshot_take(struct snap_engine *eng, const char *vm, const char *name,
		     int64_t policy_id, bool replaces);
/** vms_recover() - resolve VM snapshots left Creating/Reverting/Expunging. */
int vms_recover(struct snap_engine *eng);

#endif
