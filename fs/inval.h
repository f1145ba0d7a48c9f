/*
 * inval.h - make the kernel forget paths the engine removed (see inval.c).
 */
#ifndef SNAPFS_INVAL_H
#define SNAPFS_INVAL_H

#include "ops.h"

/** inval_start() - start the thread that tells the kernel; 0 or -errno. */
int inval_start(struct fuse *fuse);
/** inval_push() - queue @path (relative to the mount, no leading '/');
 * the engine's gone hook (snap_engine_set_gone), never blocks. */
void inval_push(const char *path, void *arg);
/** inval_stop() - drain the queue and join the thread. */
void inval_stop(void);

#endif
