/*
 * snapshot.h - volume snapshots: take, delete, rename, retry, and their rows.
 *
 * Calling sequence: snapshot_take() and snapshot_finish_delete() take the
 * volume's busy flag themselves; snapshot_lookup() only reads.
 */
#ifndef SNAP_SNAPSHOT_H
#define SNAP_SNAPSHOT_H

#include "context.h"

/**
 * snapshot_take() - snap_snapshot_take() for policy @policy_id (0: by
 * hand); @replaces: the policy deletes one of its own right after, so the
 * account's limit is not checked (its count does not grow).
 */
int snapshot_take(struct snap_engine *eng, const char *vol, const char *name,
		  int64_t policy_id, bool replaces);
/** snapshot_lookup() - resolve @vol and the visible snapshot @name. */
int snapshot_lookup(struct snap_engine *eng, const char *vol, const char *name,
		    struct catalog_volume *v, struct catalog_snapshot *s);
/** snapshot_finish_delete() - remove a Destroying snapshot's backup files,
 * release its layer and drop its row (also used by recovery), recording
 * the event @type/@message in the transaction that drops the row. */
int snapshot_finish_delete(struct snap_engine *eng,
			   struct catalog_snapshot *snap, const char *type,
			   const char *message);
/** snapshot_retry() - queue a failed backup again (control `retry`). */
int snapshot_retry(struct snap_engine *eng, const char *vol, const char *name);

#endif
