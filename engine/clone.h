/*
 * clone.h - clone: a new volume from a snapshot, as a queued job.
 *
 * Calling sequence: snapshot_clone() queues; a pool worker runs clone_run().
 */
#ifndef SNAP_CLONE_H
#define SNAP_CLONE_H

#include "context.h"
#include "running.h"

/**
 * snapshot_clone() - queue a copy of @vol's snapshot @snap as the new
 * volume @newvol (control `clone`).  Return: 0 queued; -ENOENT no such
 * snapshot; -EINVAL bad name; -EEXIST @newvol exists, is being made, or
 * is @vol; -EIO the snapshot's data is on neither storage.
 */
int snapshot_clone(struct snap_engine *eng, const char *vol, const char *snap,
		   const char *newvol);
/** clone_run() - run one clone job to its end (worker thread). */
void clone_run(struct snap_engine *eng, struct running_job *rj);

#endif
