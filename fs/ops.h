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

#endif
