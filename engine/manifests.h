/*
 * manifests.h - the manifests on secondary storage, walked and read
 * (see manifests.c): what a new catalog imports (import.c) and what
 * backed-up/hosts/ shows of other hosts' backups (issue 14).
 *
 * SECONDARY/volumes/<vol>/<uuid>.json of every backup, this host's and,
 * when hosts share SECONDARY, others' (a manifest names its host).  The
 * catalog stays the truth about this host's backups; another host's are
 * known here only by their manifests, read each time they are asked for
 * (a walk reads every manifest of the volume directories it visits:
 * cheap at hundreds of backups, one open and parse each).
 *
 * A mechanism module.  CALLING SEQUENCE: any function from any thread; it
 * reads SECONDARY only (no link followed: a planted link is skipped) and
 * never writes there.
 *
 *	manifests_walk(eng, NULL, fn, arg);	every manifest, parsed
 *	foreign_hosts(eng, &hosts);		other hosts with backups here
 *	foreign_backup(eng, host, vol, snap, &s);
 *		s as the catalog would hold it: backup_index_path(eng, &s)
 *		and the other paths.h helpers work on it
 */
#ifndef SNAP_MANIFESTS_H
#define SNAP_MANIFESTS_H

#include "context.h"
#include "manifest.h"

/*
 * manifests_fn - called by manifests_walk() for each <uuid>.json: @m the
 * parsed manifest, or NULL when it could not be read or parsed, with @why
 * saying why (static).  @file is its name in volume directory @vol (both
 * borrowed for the call); @whole says whether the backup's data (its
 * index, or its qcow2 file) is beside it, as a regular file or an object.
 * Return 0 to go on, -errno to stop.
 */
typedef int (*manifests_fn)(const char *vol, const char *file,
			    const struct manifest *m, bool whole,
			    const char *why, void *arg);

/**
 * manifests_walk() - call @fn for each manifest under SECONDARY/volumes/
 * @vol: one volume directory, or NULL for every one (a directory entry
 *	that is not an object name, or not a real directory, is passed to
 *	@fn with @file "" and @m NULL)
 * On a RADOS secondary the walk lists the pool's objects "volumes/..."
 * and reads each "<uuid>.json" (only indexed backups count as whole
 * there); each manifest read is also kept as the local file
 * SECONDARY/volumes/<vol>/<uuid>.json when that is missing, for
 * backed-up/ to serve.
 * Return: 0; what @fn returned to stop; -ENOENT @vol has no directory
 * (no object); -errno SECONDARY/volumes, or the pool, cannot be read
 * (logged).
 */
int manifests_walk(struct snap_engine *eng, const char *vol, manifests_fn fn,
		   void *arg);

/**
 * foreign_hosts() - the hosts other than this one with a backup on
 * SECONDARY; *@out owns a sorted, NULL-terminated vector (g_strfreev).
 * Return: how many (>= 0); -errno from manifests_walk().
 */
int foreign_hosts(struct snap_engine *eng, char ***out);

/** foreign_volumes() - the volumes of @host's backups, the same way. */
int foreign_volumes(struct snap_engine *eng, const char *host, char ***out);

/** foreign_snapshots() - the snapshots of @host's backups of @vol. */
int foreign_snapshots(struct snap_engine *eng, const char *host,
		      const char *vol, char ***out);

/**
 * foreign_backup() - @host's backup of @vol/@snap as a catalog row would
 * hold it: name, uuid, volume, times, sizes, checksum, state BackedUp,
 * and an id derived from its uuid (stable, for inode numbers)
 * Return: 0; -ENOENT @host is this host, or no such backup (several:
 * the newest backed_up_at).
 */
int foreign_backup(struct snap_engine *eng, const char *host, const char *vol,
		   const char *snap, struct catalog_snapshot *s);

/** foreign_backup_by_uuid() - the same, found by the snapshot's @uuid
 * (stable across the other host's renames). */
int foreign_backup_by_uuid(struct snap_engine *eng, const char *host,
			   const char *vol, const char *uuid,
			   struct catalog_snapshot *s);

#endif
