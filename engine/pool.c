/*
 * pool.c - the scheduler thread and the pool of copy workers.
 *
 * DESIGN (in the manner of Redis's bio.c):
 *
 *   scheduler thread   waits on eng->schedule; when woken (a take, a retry, a
 *                      worker finishing, the test clock moving, a timeout
 *                      at the next automatic retry) it claims due jobs from
 *                      the catalog, one per idle worker, and pushes each
 *                      into the GThreadPool.
 *   worker threads     (cfg.workers of them, exclusive, so they live as long
 *                      as the engine: children die with the thread that
 *                      spawned them) run one job each: backup_run(),
 *                      clone_run() or layer_merge_run().  A running job sits in
 *                      the running table (running.h) so jobs/<id> can show
 *                      its progress and rmdir can cancel it.
 *
 * The queue itself is the jobs table, so it survives a crash; a job found
 * RUNNING at start was interrupted and is queued again (recover.c).
 * Locks: eng->lock guards eng->stopping and pool->idle; it is released
 * before a job runs and never held across catalog transactions that run
 * subprocesses.
 */
#include <errno.h>
#include <string.h>

#include "pool.h"
#include "backup.h"
#include "clock.h"
#include "clone.h"
#include "events.h"
#include "layer.h"
#include "log.h"

/* The module's state (eng->pool). */
struct pool {
	GThread *scheduler;
	GThreadPool *workers;
	unsigned idle; /* workers without a job (eng->lock) */
};

/*
 * A job still RUNNING in the catalog after its worker returned could not
 * record its end (the catalog refused a write), unless it was cancelled:
 * then whoever cancelled it owns the catalog change (an rmdir deletes the
 * job, a stop leaves it for the next start to queue again).  Otherwise it
 * waits and runs again: every job's work can be redone.
 */
static void job_unrecorded(struct snap_engine *eng, struct running_job *rj)
{
	struct catalog_job job;
	bool stopping;

	g_mutex_lock(&eng->lock);
	stopping = eng->stopping;
	g_mutex_unlock(&eng->lock);
	if (stopping || g_cancellable_is_cancelled(rj->cancel) ||
	    catalog_job_get(eng->cat, rj->job.id, &job) < 0 ||
	    job.state != JOB_STATE_RUNNING)
		return;
	job.state = JOB_STATE_WAITING;
	job.not_before = clock_now(eng) + MAX(eng->cfg.retry_delay, 1);
	if (catalog_job_update(eng->cat, &job) == 0)
		event_record(eng, "job.retry", NULL, NULL, -EIO,
			     "job %" G_GINT64_FORMAT " could not record its end in the catalog; it runs again later",
			     job.id);
}

static void worker(gpointer data, gpointer user)
{
	struct running_job *rj = data;
	struct snap_engine *eng = user;

	switch (rj->job.kind) {
	case JOB_KIND_BACKUP:
		backup_run(eng, rj);
		break;
	case JOB_KIND_CLONE:
		clone_run(eng, rj);
		break;
	default:
		layer_merge_run(eng, rj);
		break;
	}
	job_unrecorded(eng, rj);

	running_job_untrack(eng, rj);
	g_mutex_lock(&eng->lock);
	eng->pool->idle++;
	g_cond_broadcast(&eng->schedule);
	g_mutex_unlock(&eng->lock);
}

/*
 * Claim due jobs while workers are idle.  Called with eng->lock held.
 * Return: false when the catalog failed (try again soon), else true.
 */
static bool dispatch(struct snap_engine *eng)
{
	while (eng->pool->idle > 0 && !eng->stopping) {
		struct catalog_job job;
		struct running_job *rj;
		int rc = catalog_job_claim(eng->cat, clock_now(eng), &job);

		if (rc < 0)
			return rc == -ENOENT;
		rj = running_job_track(eng, &job);
		eng->pool->idle--;
		snap_log(LOG_DEBUG, "pool: job %" G_GINT64_FORMAT " dispatched",
			 job.id);
		if (!g_thread_pool_push(eng->pool->workers, rj, NULL)) {
			snap_log(LOG_ERR, "pool: cannot queue job %" G_GINT64_FORMAT,
				 job.id);
			/* undo: no worker will drop the two references, and
			 * the claim made the job RUNNING: due again later */
			eng->pool->idle++;
			running_job_untrack(eng, rj);
			job.state = JOB_STATE_WAITING;
			job.not_before = clock_now(eng) +
					 MAX(eng->cfg.retry_delay, 1);
			catalog_job_update(eng->cat, &job);
			return false;
		}
	}
	return true;
}

static gpointer scheduler(gpointer data)
{
	struct snap_engine *eng = data;

	g_mutex_lock(&eng->lock);
	while (!eng->stopping) {
		int64_t due, now;
		gint64 until;

		/* sleep until woken, or until the next automatic retry; a
		 * catalog that failed is asked again in a second */
		until = g_get_monotonic_time() + (dispatch(eng) ? 3600 : 1) * G_TIME_SPAN_SECOND;
		if (catalog_job_next_due(eng->cat, &due) == 0) {
			now = clock_now(eng);
			if (!eng->cfg.test_clock)
				until = MIN(until, g_get_monotonic_time() +
					(MAX(due - now, 0) + 1) * G_TIME_SPAN_SECOND);
		}
		g_cond_wait_until(&eng->schedule, &eng->lock, until);
	}
	g_mutex_unlock(&eng->lock);
	return NULL;
}

int pool_start(struct snap_engine *eng)
{
	g_autoptr(GError) err = NULL;
	struct pool *p = g_new0(struct pool, 1);

	p->idle = eng->cfg.workers;
	p->workers = g_thread_pool_new(worker, eng, (gint)eng->cfg.workers,
				       TRUE, &err);
	if (!p->workers) {
		snap_log(LOG_ERR, "pool: cannot start workers: %s", err->message);
		g_free(p);
		return -ENOMEM;
	}
	/* published before the scheduler runs: it and the workers use it */
	eng->pool = p;
	p->scheduler = g_thread_try_new("snapfs-sched", scheduler, eng, &err);
	if (!p->scheduler) {
		snap_log(LOG_ERR, "pool: cannot start scheduler: %s",
			 err->message);
		g_thread_pool_free(p->workers, TRUE, TRUE);
		eng->pool = NULL;
		g_free(p);
		return -ENOMEM;
	}
	return 0;
}

void pool_stop(struct snap_engine *eng)
{
	struct pool *p = eng->pool;

	g_mutex_lock(&eng->lock);
	eng->stopping = true;
	running_cancel_all(eng);
	g_cond_broadcast(&eng->schedule);
	g_mutex_unlock(&eng->lock);
	if (!p)
		return;
	g_thread_join(p->scheduler);
	g_thread_pool_free(p->workers, FALSE, TRUE);
	eng->pool = NULL;
	g_free(p);
}
