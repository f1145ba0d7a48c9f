/*
 * running.h - the table of running jobs: what jobs/<id> shows progress of
 * and what an rmdir cancels.
 *
 * Calling sequence: the runner (a pool worker, or a thread running a job
 * itself, like a revert) calls running_job_track(), updates bytes_done and
 * bytes_total atomically while it works, checks rj->cancel, and calls
 * running_job_untrack() when it lets go.  Readers take a reference with
 * running_job_find() and drop it with running_job_unref().
 *
 * Locks: the table's own mutex is a leaf (nothing is taken under it), so
 * every function here may be called under eng->lock or inside a catalog
 * transaction, except running_cancel_snapshot(), which waits.
 */
#ifndef SNAP_RUNNING_H
#define SNAP_RUNNING_H

#include <gio/gio.h>

#include "context.h"

/* A job being run; refcounted because readers of jobs/<id> and an rmdir
 * that cancels it may hold it after the runner drops it.  While it is in
 * the table, the table holds one reference. */
struct running_job {
	gint refcount;
	struct catalog_job job;
	GCancellable *cancel;
	uint64_t bytes_done;  /* atomically read and written */
	uint64_t bytes_total; /* atomically read and written */
};

/** running_new() - an empty table; running_free(NULL) is a no-op. */
struct running *running_new(void);
void running_free(struct running *r);

/**
 * running_job_track() - show @job, run by the calling thread, in the table.
 * Return: the runner's reference (the table holds another).
 */
struct running_job *running_job_track(struct snap_engine *eng,
				      const struct catalog_job *job);
/** running_job_untrack() - the runner lets go: @rj leaves the table (if it
 * is still the entry of its id) and the runner's reference is dropped. */
void running_job_untrack(struct snap_engine *eng, struct running_job *rj);
/** running_job_find() - a new reference to the running job @id, or NULL. */
struct running_job *running_job_find(struct snap_engine *eng, int64_t id);
/** running_job_unref() - drop a reference; NULL is a no-op. */
void running_job_unref(struct running_job *rj);
/** running_cancel_snapshot() - cancel the running backup of @snapshot_id
 * and wait until its runner let go of it.  Must not be called with
 * eng->lock held. */
void running_cancel_snapshot(struct snap_engine *eng, int64_t snapshot_id);
/** running_cancel_all() - cancel every running job (engine stop). */
void running_cancel_all(struct snap_engine *eng);

#endif
