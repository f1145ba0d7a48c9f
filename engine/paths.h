/*
 * paths.h - where each file of a volume lives (docs/design.md, "Storage").
 *
 * Each function returns a new string (g_free() it); none touches the file
 * system, so any may be called under any lock.
 */
#ifndef SNAP_PATHS_H
#define SNAP_PATHS_H

#include "context.h"

/** volume_path() - PRIMARY/<vol>.qcow2, the file a VM opens. */
char *volume_path(struct snap_engine *eng, const char *vol);
/** layer_dir() - PRIMARY/.snapfs/<vol>, the frozen layers of @vol. */
char *layer_dir(struct snap_engine *eng, const char *vol);
/** layer_path() - PRIMARY/.snapfs/<vol>/<uuid>.qcow2, one frozen layer. */
char *layer_path(struct snap_engine *eng, const char *vol, const char *uuid);
/** freeze_tmp_path() - the overlay a take prepares before its swap. */
char *freeze_tmp_path(struct snap_engine *eng, const char *vol,
		      const char *uuid);
/** backup_image_path() - SECONDARY/volumes/<vol>/<uuid>.qcow2. */
char *backup_image_path(struct snap_engine *eng,
			const struct catalog_snapshot *s);
/** backup_manifest_path() - SECONDARY/volumes/<vol>/<uuid>.json. */
char *backup_manifest_path(struct snap_engine *eng,
			   const struct catalog_snapshot *s);
/** backup_index_path() - SECONDARY/volumes/<vol>/<uuid>.index (repository). */
char *backup_index_path(struct snap_engine *eng,
			const struct catalog_snapshot *s);
/** backup_tmp_path() - SECONDARY/.tmp/<host>@<uuid>.<suffix>, a copy in flight. */
char *backup_tmp_path(struct snap_engine *eng, const struct catalog_snapshot *s,
		      const char *suffix);

/* On a RADOS secondary: the object of backup @s's "index" or "json"
 * (manifest), "volumes/<vol>/<uuid>.<ext>"; the caller frees it. */
char *backup_object_name(const struct catalog_snapshot *s, const char *ext);

#endif
