/*
 * running.c - the table of running jobs (see running.h).
 */
#include "running.h"

struct running {
	GMutex lock;	   /* a leaf: guards jobs */
	GCond released;	   /* a job left the table */
	GHashTable *jobs;  /* job id (int64 *, inside the value) -> job */
};

struct running *running_new(void)
{
	struct running *r = g_new0(struct running, 1);

	g_mutex_init(&r->lock);
	g_cond_init(&r->released);
	/* the table holds a reference to each job */
	r->jobs = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
					(GDestroyNotify)running_job_unref);
	return r;
}

void running_free(struct running *r)
{
	if (!r)
		return;
	g_hash_table_destroy(r->jobs);
	g_cond_clear(&r->released);
	g_mutex_clear(&r->lock);
	g_free(r);
}

void running_job_unref(struct running_job *rj)
{
	if (rj && g_atomic_int_dec_and_test(&rj->refcount)) {
		g_object_unref(rj->cancel);
		g_free(rj);
	}
}

struct running_job *running_job_track(struct snap_engine *eng,
				      const struct catalog_job *job)
{
	struct running *r = eng->running;
	struct running_job *rj = g_new0(struct running_job, 1);

	rj->refcount = 2; /* the table's and the runner's */
	rj->job = *job;
	rj->cancel = g_cancellable_new();
	g_mutex_lock(&r->lock);
	/* replace, not insert: the key lives in the value, so a stale entry
	 * must give up its key along with its reference */
	g_hash_table_replace(r->jobs, &rj->job.id, rj);
	g_mutex_unlock(&r->lock);
	return rj;
}

void running_job_untrack(struct snap_engine *eng, struct running_job *rj)
{
	struct running *r = eng->running;

	g_mutex_lock(&r->lock);
	if (g_hash_table_lookup(r->jobs, &rj->job.id) == rj)
		g_hash_table_remove(r->jobs, &rj->job.id);
	g_cond_broadcast(&r->released);
	g_mutex_unlock(&r->lock);
	running_job_unref(rj); /* the runner's */
}

struct running_job *running_job_find(struct snap_engine *eng, int64_t id)
{
	struct running *r = eng->running;
	struct running_job *rj;

	g_mutex_lock(&r->lock);
	rj = g_hash_table_lookup(r->jobs, &id);
	if (rj)
		g_atomic_int_inc(&rj->refcount);
	g_mutex_unlock(&r->lock);
	return rj;
}

/* Cancel the jobs @match accepts; true when one was found.  With r->lock. */
static bool cancel_matching(struct running *r,
			    bool (*match)(const struct running_job *, int64_t),
			    int64_t arg)
{
	GHashTableIter it;
	gpointer value;
	bool found = false;

	g_hash_table_iter_init(&it, r->jobs);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct running_job *rj = value;

		if (match(rj, arg)) {
			g_cancellable_cancel(rj->cancel);
			found = true;
		}
	}
	return found;
}

static bool backup_of(const struct running_job *rj, int64_t snapshot_id)
{
	return rj->job.kind == JOB_KIND_BACKUP &&
	       rj->job.snapshot_id == snapshot_id;
}

static bool any(const struct running_job *rj, int64_t unused)
{
	return true;
}

void running_cancel_snapshot(struct snap_engine *eng, int64_t snapshot_id)
{
	struct running *r = eng->running;

	g_mutex_lock(&r->lock);
	/* the runner removes it from the table when it lets go */
	while (cancel_matching(r, backup_of, snapshot_id))
		g_cond_wait(&r->released, &r->lock);
	g_mutex_unlock(&r->lock);
}

void running_cancel_all(struct snap_engine *eng)
{
	struct running *r = eng->running;

	g_mutex_lock(&r->lock);
	cancel_matching(r, any, 0);
	g_mutex_unlock(&r->lock);
}
