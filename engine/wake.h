/*
 * wake.h - wake the threads that schedule work.
 *
 * The job scheduler (pool.c) and the policy thread (policies.c) sleep on
 * eng->schedule under eng->lock until the next thing they know is due;
 * anything that may make work due sooner (a take, a retry, a job that
 * ended, the test clock moving) calls wake_schedulers().
 */
#ifndef SNAP_WAKE_H
#define SNAP_WAKE_H

#include "context.h"

/** wake_schedulers() - wake them to look again.  Takes eng->lock: not to
 * be called with it held. */
void wake_schedulers(struct snap_engine *eng);

#endif
