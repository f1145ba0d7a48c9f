/*
 * pool.c - the scheduler thread and the pool of copy workers.
 *
 * DESIGN (in the manner of Redis's bio.c):
 *
 *   scheduler thread   waits on eng->cond; when woken (a take, a retry, a
 *                      worker finishing, the test clock moving, a timeout
 *                      at the next automatic retry) it claims due jobs from
 *                      the catalog, one per idle worker, and pushes each
 *                      into the GThreadPool.
 *   worker threads     (cfg.workers of them, exclusive, so they live as long
 *                      as the engine: children die with the thread that
 *                      spawned them) run one job each: backup_run(),
 *                      clone_run() or layer_merge_run().  A running job sits in
 *                      eng->running so jobs/<id> can show its progress and
 *                      rmdir can cancel it.
 *
 * The queue itself is the jobs table, so it survives a crash; a job found
 * RUNNING at start was interrupted and is queued again (recover.c).
 * Locks: eng->lock guards eng->running and idle_workers; it is released
 * before a job runs and never held across catalog transactions that run
 * subprocesses.
 */
#include <errno.h>
#include <string.h>

#include "engine.h"
#include "log.h"

struct running_job *running_job_find(struct snap_engine *eng, int64_t id)
{
	struct running_job *rj;

	g_mutex_lock(&eng->lock);
	rj = g_hash_table_lookup(eng->running, &id);
	if (rj)
		g_atomic_int_inc(&rj->refcount);
	g_mutex_unlock(&eng->lock);
	return rj;
}

void running_job_unref(struct running_job *rj)
{
	if (rj && g_atomic_int_dec_and_test(&rj->refcount)) {
		g_object_unref(rj->cancel);
		g_free(rj);
	}
}

/*
 * A running job for @job, in eng->running (called with eng->lock).  It
 * starts with two references: the table's, dropped by the table's
 * value-destroy function (running_job_unref) when the entry is removed,
 * and the runner's, which the caller drops with running_job_unref().
 */
static struct running_job *running_job_insert(struct snap_engine *eng,
					      const struct catalog_job *job)
{
	struct running_job *rj = g_new0(struct running_job, 1);

	rj->refcount = 2; /* the table's and the runner's */
	rj->job = *job;
	rj->cancel = g_cancellable_new();
	/* replace, not insert: the key lives in the value, so a stale entry
	 * must give up its key along with its reference */
	g_hash_table_replace(eng->running, &rj->job.id, rj);
	return rj;
}

/*
 * Take @rj out of eng->running, dropping the table's reference (called
 * with eng->lock).  Only when the entry is still @rj: the caller's own
 * reference keeps @rj alive either way.
 */
static void running_job_remove(struct snap_engine *eng, struct running_job *rj)
{
	if (g_hash_table_lookup(eng->running, &rj->job.id) == rj)
		g_hash_table_remove(eng->running, &rj->job.id);
}

struct running_job *running_job_track(struct snap_engine *eng,
				      const struct catalog_job *job)
{
	struct running_job *rj;

	g_mutex_lock(&eng->lock);
	rj = running_job_insert(eng, job);
	g_mutex_unlock(&eng->lock);
	return rj;
}

void running_job_untrack(struct snap_engine *eng, struct running_job *rj)
{
	g_mutex_lock(&eng->lock);
	running_job_remove(eng, rj);
	g_cond_broadcast(&eng->cond);
	g_mutex_unlock(&eng->lock);
	running_job_unref(rj); /* the runner's */
}

/*
 * A job still RUNNING in the catalog after its worker returned could not
 * record its end (the catalog refused a write).  Unless snapfs is
 * stopping (then the next start queues it again), it waits and runs again:
 * every job's work can be redone.
 */
static void job_unrecorded(struct snap_engine *eng, struct running_job *rj)
{
	struct catalog_job job;
	bool stopping;

	g_mutex_lock(&eng->lock);
	stopping = eng->stopping;
	g_mutex_unlock(&eng->lock);
	if (stopping || catalog_job_get(eng->cat, rj->job.id, &job) < 0 ||
	    job.state != JOB_STATE_RUNNING)
		return;
	job.state = JOB_STATE_WAITING;
	job.not_before = engine_now(eng) + MAX(eng->cfg.retry_delay, 1);
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

	g_mutex_lock(&eng->lock);
	running_job_remove(eng, rj);
	eng->idle_workers++;
	g_cond_broadcast(&eng->cond);
	g_mutex_unlock(&eng->lock);
	running_job_unref(rj); /* the runner's */
}

/*
 * Claim due jobs while workers are idle.  Called with eng->lock held.
 * Return: false when the catalog failed (try again soon), else true.
 */
static bool dispatch(struct snap_engine *eng)
{
	while (eng->idle_workers > 0 && !eng->stopping) {
		struct catalog_job job;
		struct running_job *rj;
		int rc = catalog_job_claim(eng->cat, engine_now(eng), &job);

		if (rc < 0)
			return rc == -ENOENT;
		rj = running_job_insert(eng, &job);
		eng->idle_workers--;
		snap_log(LOG_DEBUG, "pool: job %" G_GINT64_FORMAT " dispatched",
			 job.id);
		if (!g_thread_pool_push(eng->pool, rj, NULL)) {
			snap_log(LOG_ERR, "pool: cannot queue job %" G_GINT64_FORMAT,
				 job.id);
			/* undo: no worker will drop the two references, and
			 * the claim made the job RUNNING: due again later */
			eng->idle_workers++;
			running_job_remove(eng, rj);
			running_job_unref(rj);
			job.state = JOB_STATE_WAITING;
			job.not_before = engine_now(eng) +
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
			now = engine_now(eng);
			if (!eng->cfg.test_clock)
				until = MIN(until, g_get_monotonic_time() +
					(MAX(due - now, 0) + 1) * G_TIME_SPAN_SECOND);
		}
		g_cond_wait_until(&eng->cond, &eng->lock, until);
	}
	g_mutex_unlock(&eng->lock);
	return NULL;
}

int pool_start(struct snap_engine *eng)
{
	g_autoptr(GError) err = NULL;

	eng->idle_workers = eng->cfg.workers;
	eng->pool = g_thread_pool_new(worker, eng, (gint)eng->cfg.workers, TRUE,
				      &err);
	if (!eng->pool) {
		snap_log(LOG_ERR, "pool: cannot start workers: %s", err->message);
		return -ENOMEM;
	}
	eng->scheduler = g_thread_try_new("snapfs-sched", scheduler, eng, &err);
	if (!eng->scheduler) {
		snap_log(LOG_ERR, "pool: cannot start scheduler: %s",
			 err->message);
		g_thread_pool_free(eng->pool, TRUE, TRUE);
		eng->pool = NULL;
		return -ENOMEM;
	}
	return 0;
}

void pool_stop(struct snap_engine *eng)
{
	GHashTableIter it;
	gpointer value;

	g_mutex_lock(&eng->lock);
	eng->stopping = true;
	g_hash_table_iter_init(&it, eng->running);
	while (g_hash_table_iter_next(&it, NULL, &value))
		g_cancellable_cancel(((struct running_job *)value)->cancel);
	g_cond_broadcast(&eng->cond);
	g_mutex_unlock(&eng->lock);

	if (eng->scheduler)
		g_thread_join(eng->scheduler);
	eng->scheduler = NULL;
	if (eng->pool)
		g_thread_pool_free(eng->pool, FALSE, TRUE);
	eng->pool = NULL;
}

void pool_cancel_snapshot(struct snap_engine *eng, int64_t snapshot_id)
{
	for (;;) {
		GHashTableIter it;
		gpointer value;
		bool found = false;

		g_mutex_lock(&eng->lock);
		g_hash_table_iter_init(&it, eng->running);
		while (g_hash_table_iter_next(&it, NULL, &value)) {
			struct running_job *rj = value;

			if (rj->job.kind == JOB_KIND_BACKUP &&
			    rj->job.snapshot_id == snapshot_id) {
				g_cancellable_cancel(rj->cancel);
				found = true;
			}
		}
		if (!found) {
			g_mutex_unlock(&eng->lock);
			return;
		}
		/* the worker removes it from the table when it lets go */
		g_cond_wait(&eng->cond, &eng->lock);
		g_mutex_unlock(&eng->lock);
	}
}
