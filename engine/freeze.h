/*
 * freeze.h - freeze a volume file into a layer (see freeze.c).
 */
#ifndef SNAP_FREEZE_H
#define SNAP_FREEZE_H

#include <stdbool.h>
#include <stdint.h>

#include "snap.h"

struct snap_engine;
struct vm_conn;

enum freeze_step {
	FREEZE_NONE,
	FREEZE_LINKED,
	FREEZE_OVERLAY,
	FREEZE_SWAPPED,
};

struct freeze {
	char vol[SNAP_NAME_MAX + 1];
	char uuid[37]; /* the new layer */
	uint64_t size;
	char *vpath, *lpath, *ldir, *tmp;
	enum freeze_step step;
};

/** freeze_tmp_path() - where the overlay of layer @uuid waits (g_free). */
char *freeze_tmp_path(struct snap_engine *eng, const char *vol,
		      const char *uuid);

/**
 * freeze_prepare() - link the volume file as layer @uuid and make its
 * overlay.  On success @f owns its paths: freeze_swap() or freeze_undo(),
 * then freeze_clear().  On failure it is undone by itself and @f is
 * cleared (freeze_clear() on it is a no-op).
 * Return: 0; -ENOENT no volume file; -EIO not a qcow2 or qemu-img failed.
 */
int freeze_prepare(struct snap_engine *eng, struct freeze *f, const char *vol,
		   const char *uuid);

/**
 * freeze_switch_running() - make the running VM @vm write to the overlays
 * of @fs (its disks with libvirt aliases @aliases), all at one instant.
 * Nothing changes in the VM on failure.
 */
int freeze_switch_running(struct snap_engine *eng, struct vm_conn *vmc,
			  const char *vm, struct freeze *fs, const char **aliases,
			  int n);

/**
 * freeze_recover_switched() - at recovery, whether a running VM writes the
 * overlay of layer @uuid of @vol: the take was cut between the QMP
 * blockdev-add and the switch, or after it.  Asks the VM's QEMU which node
 * is on top of the disk; an overlay QEMU only added is deleted from QEMU
 * (blockdev-del), which closes it.
 * Return: true when QEMU writes the overlay, or has it open and cannot be
 * asked (then it may write it: the overlay must stay); false when no
 * process has the overlay open for writing any more.
 */
bool freeze_recover_switched(struct snap_engine *eng, const char *vol,
			     const char *uuid);

/** freeze_swap() - rename the overlay onto the volume file (commit point). */
int freeze_swap(struct snap_engine *eng, struct freeze *f);

/**
 * freeze_unswap() - undo freeze_swap() while no process has the overlay
 * open: the layer's link is renamed back over the volume file (the empty
 * overlay goes with it), as before freeze_prepare().  Only for a stopped
 * VM's disk (a memory snapshot whose restore failed).
 * Return: 0 (also when not swapped); -errno, logged, nothing changed.
 */
int freeze_unswap(struct snap_engine *eng, struct freeze *f);

/** freeze_undo() - remove what prepare made; nothing once swapped. */
void freeze_undo(struct freeze *f);

/** freeze_clear() - free the paths and zero @f; idempotent. */
void freeze_clear(struct freeze *f);

#endif
