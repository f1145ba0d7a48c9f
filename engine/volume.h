/*
 * volume.h - volumes: the qcow2 files of primary storage, their catalog rows,
 * their headers, who writes them, and the busy flag of each.
 *
 * Calling sequence: a structural operation on a volume (take, delete,
 * revert, merge) runs between volume_busy_begin() and volume_busy_end();
 * inside, volume_resolve() gives its row.  Busy flags are taken before
 * eng->lock, a VM's before its volumes' (docs/design.md, lock order).
 */
#ifndef SNAP_VOLUME_H
#define SNAP_VOLUME_H

#include "context.h"
#include "image.h"

/**
 * volume_resolve() - the catalog row of volume @name, created on first
 * sight of its file.  *@on_primary (may be NULL) says whether the file
 * exists.  Return: 0; -EINVAL bad name; -ENOENT no file and no row.
 */
int volume_resolve(struct snap_engine *eng, const char *name,
		   struct catalog_volume *out, bool *on_primary);
/** volume_read_header() - parse the qcow2 header of the file at @path. */
int volume_read_header(const char *path, struct qcow2_header *out);
/** volume_in_use() - 1 when another process holds @path open for writing
 * (qemu's image locks), 0 when not, -errno. */
int volume_in_use(const char *path);
/** volume_deny_writers() - an fd whose lock (qemu's protocol) makes any
 * qemu that opens @path for writing fail until it is closed.
 * Return: the fd; -EBUSY someone denies it already; -errno. */
int volume_deny_writers(const char *path);
/** volume_busy_begin() - wait until no other structural operation runs on
 * @volume_id and mark it busy; volume_busy_end() undoes. */
void volume_busy_begin(struct snap_engine *eng, int64_t volume_id);
void volume_busy_end(struct snap_engine *eng, int64_t volume_id);

#endif
