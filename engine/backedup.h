/*
 * backedup.h - what the backed-up/ tree shows (see backedup.c; its front
 * end calls are the snap_backup_* functions of snap.h).
 *
 * A mechanism module.  CALLING SEQUENCE: backedup_snapshot() from any
 * thread, as the snap_* calls do; it reads the catalog only.
 */
#ifndef SNAP_BACKEDUP_H
#define SNAP_BACKEDUP_H

#include "context.h"

/**
 * backedup_snapshot() - the snapshot @snap of volume @vol, if it has a
 * backup to show: BackedUp, or Damaged (listed, its data not served).
 * Return: 0 and *@s; -ENOENT an invalid name, no such volume or
 * snapshot, or one in any other state; -errno of the catalog.
 */
int backedup_snapshot(struct snap_engine *eng, const char *vol,
		      const char *snap, struct catalog_snapshot *s);

#endif
