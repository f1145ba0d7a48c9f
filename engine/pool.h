/*
 * pool.h - the job scheduler and its workers.
 *
 * Calling sequence: pool_start() once recovery is done; wake_schedulers()
 * when a job may be due; pool_stop() at close cancels running jobs and
 * joins the threads.
 */
#ifndef SNAP_POOL_H
#define SNAP_POOL_H

#include "context.h"

int pool_start(struct snap_engine *eng);
void pool_stop(struct snap_engine *eng);

#endif
