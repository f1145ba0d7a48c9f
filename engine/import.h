/*
 * import.h - rebuild the catalog from secondary storage (issue 14:
 * disaster recovery; docs/repository.md, "A catalog rebuilt from the
 * repository").
 *
 * A host whose SOURCE (catalog) is lost mounts again with a new, empty
 * SOURCE over the same SECONDARY: a new catalog is made with the mark
 * "import pending" (catalog_open()), and recovery calls import_backups()
 * before it checks the snapshots, so every backup this host made comes
 * back under backed-up/volumes/<vol>/ with its snapshot name, its times
 * and its state BackedUp, restorable (clone) from secondary storage.
 *
 * What is imported: every SECONDARY/volumes/<vol>/<uuid>.json that
 * manifest_parse() accepts, whose volume is the directory's name, whose
 * host is this host (or absent: a manifest from before host names), whose
 * data is there (<uuid>.index or <uuid>.qcow2 beside it, a regular file),
 * and whose snapshot the catalog does not hold yet.  A volume row is made
 * with the manifest's volume_uuid, owned by root; a volume of that name
 * with another uuid, or a snapshot name already taken in it, is skipped.
 * Each backup skipped for a reason other than being another host's is a
 * "recovery.import" event with the reason; one event sums up.  Nothing
 * on SECONDARY is changed, moved or removed here.
 *
 * Re-entrant across kill -9: each backup is one catalog transaction, the
 * walk skips what is already imported, and the mark is cleared only after
 * a whole walk, so a cut import goes on at the next mount.
 *
 * CALLING SEQUENCE (recover.c, once, before any worker or request)
 *
 *	if (import_pending(eng))
 *		import_backups(eng);
 */
#ifndef SNAP_IMPORT_H
#define SNAP_IMPORT_H

#include <stdbool.h>

#include "context.h"

/* the catalog's identity key that marks an import as pending (the key
 * catalog_open() writes) */
#define IMPORT_PENDING_KEY "import"

/** import_pending() - whether this catalog still waits for its import. */
bool import_pending(struct snap_engine *eng);

/**
 * import_backups() - import this host's backups found on SECONDARY into
 * the catalog, then clear the mark
 * Return: the number imported (>= 0); -errno when the walk could not
 * finish (the mark stays; logged).
 */
int import_backups(struct snap_engine *eng);

#endif
