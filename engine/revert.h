/*
 * revert.h - revert: a volume back to one of its snapshots, synchronously.
 *
 * Calling sequence: the caller of volume_revert_to_layer() holds the
 * volume's busy flag; snapshot_revert() takes it itself; revert_recover()
 * runs once at mount, before the pool starts.
 */
#ifndef SNAP_REVERT_H
#define SNAP_REVERT_H

#include "context.h"

/**
 * volume_revert_to_layer() - make an empty overlay over @layer the file
 * of volume @vol (@volume_id): the volume then reads as that layer.  The
 * caller holds the volume's busy flag and knows nothing writes the file.
 */
int volume_revert_to_layer(struct snap_engine *eng, int64_t volume_id,
			   const char *vol, const char *layer);
/**
 * snapshot_revert() - put @vol back to its snapshot @snap (control
 * `revert`), from primary storage if the snapshot is there, else from its
 * backup; synchronous.  Return: 0; -ENOENT no such snapshot; -EBUSY a VM
 * or another process writes the volume; -EIO, -ENOSPC the copy failed.
 */
int snapshot_revert(struct snap_engine *eng, const char *vol, const char *snap);
/** revert_recover() - resolve reverts a crash interrupted, and make each
 * volume's top layer in the catalog the one its file is backed by. */
void revert_recover(struct snap_engine *eng);

#endif
