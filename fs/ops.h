/*
 * ops.h - the FUSE operations table and the state it needs.
 */
#ifndef SNAPFS_OPS_H
#define SNAPFS_OPS_H

#define FUSE_USE_VERSION 314
#include <fuse.h>
#include <time.h>
#include <glib.h>

#include "snap.h"

/* Set up by main.c before the loop; read-only afterwards. */
struct snapfs_ctx {
	struct snap_engine *eng;
	bool test_clock;
	time_t mount_time;
};

extern const struct fuse_operations snapfs_ops;

/**
 * ops_release_all() - free every file and directory handle the kernel has
 * not released (a close that raced the unmount).  Call once, after the
 * FUSE loop has returned and before the engine is closed: a handle may
 * hold an engine view.  Not thread-safe against running operations.
 */
void ops_release_all(void);

#endif
