/*
 * waiters.h - snap_snapshot_wait(): readers of wait/<vol>/<snap> blocked
 * until a snapshot's backup ends, and their wake-ups.
 *
 * Calling sequence: waiters_new() at open; waiters_wake() after any change
 * a waiter may be waiting for; waiters_stop() first at close, then
 * waiters_free().
 */
#ifndef SNAP_WAITERS_H
#define SNAP_WAITERS_H

#include "context.h"

/** waiters_new() - the waiters of a new engine; waiters_free(NULL) is a
 * no-op. */
struct waiters *waiters_new(void);
void waiters_free(struct waiters *w);
/**
 * waiters_wake() - a snapshot's backup ended or failed, or a snapshot was
 * deleted: callers of snap_snapshot_wait() look at the catalog again.
 * Call at or after the change (inside its transaction is fine).  Takes
 * only the waiters' leaf lock: callable under eng->lock or in a
 * transaction; never blocks for long.
 */
void waiters_wake(struct snap_engine *eng);
/**
 * waiters_stop() - every caller of snap_snapshot_wait() returns -ENOTCONN,
 * now and from now on; returns once none is left inside (they hold no
 * lock while they wait, so this cannot deadlock).  For snap_engine_close().
 */
void waiters_stop(struct snap_engine *eng);

#endif
