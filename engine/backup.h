/*
 * backup.h - the backup of a snapshot to secondary storage, and its manifest.
 *
 * Calling sequence: backup_queue() inside the transaction that makes the
 * snapshot; a pool worker later calls backup_run() with the claimed job.
 */
#ifndef SNAP_BACKUP_H
#define SNAP_BACKUP_H

#include "context.h"
#include "running.h"

/** backup_run() - run one backup job to its end (worker thread). */
void backup_run(struct snap_engine *eng, struct running_job *rj);
/** backup_write_manifest() - (re)write the manifest of a backed-up @s. */
int backup_write_manifest(struct snap_engine *eng,
			  const struct catalog_snapshot *s);
/** backup_check_manifest() - rewrite the manifest of backed-up @s unless
 * it says what the catalog says (a rename whose rewrite failed or was
 * cut).  Return: 0 it was right, 1 rewritten, -errno. */
int backup_check_manifest(struct snap_engine *eng,
			  const struct catalog_snapshot *s);
/** backup_indexed() - the backup of @s is a repository index (its
 * catalog checksum is "sha256:<the index's checksum>"), not a qcow2. */
bool backup_indexed(const struct catalog_snapshot *s);
/** backup_queue() - insert a fresh backup job for @s (inside a tx). */
int backup_queue(struct snap_engine *eng, struct catalog_snapshot *s);

#endif
