/*
 * clone.h - clone: a new volume from a snapshot, as a queued job.
 *
 * Calling sequence: snapshot_clone() or backup_restore() queues; a pool
 * worker runs clone_run().
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
/**
 * backup_restore() - queue a copy of @host's backup of @vol/@snap as the
 * new volume @newvol (MOUNT/control `restore`; issue 14): another host's
 * backup on the same SECONDARY (manifests.h), or this host's (then the
 * same as snapshot_clone()).  A clone job with snapshot_id 0 whose source
 * names the backup by uuid; it runs, shows in jobs/ and fails as a clone.
 * Every refusal is an event.  Return: 0 queued; -ENOENT no such backup;
 * -EEXIST @newvol exists or is being made; -EOPNOTSUPP a repository backup
 * on a mount with repository=off; -errno.
 */
int backup_restore(struct snap_engine *eng, const char *host, const char *vol,
		   const char *snap, const char *newvol);
/**
 * clone_source() - the snapshot job @job reads: this host's by its
 * snapshot_id (every job but a restore), or (a restore) another host's
 * backup by the job's source, "<host>/<vol>/<uuid>" (manifests.h).
 * Return: 0 and *@s; -ENOENT gone; -errno reading SECONDARY.
 */
int clone_source(struct snap_engine *eng, const struct catalog_job *job,
		 struct catalog_snapshot *s);
/** clone_run() - run one clone job to its end (worker thread). */
void clone_run(struct snap_engine *eng, struct running_job *rj);

#endif
