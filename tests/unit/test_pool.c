/*
 * test_pool.c - engine/pool.c, the job scheduler and its workers, and the
 * running table (running.c) they fill, without a mount and without
 * snap_engine_open() (which links every layer): the test builds the
 * engine context itself, with a catalog in a temporary directory, the
 * test clock and cfg.workers, and queues jobs with catalog_job_insert().
 *
 * The runners of the job kinds are this file's fakes.  backup_run(),
 * clone_run() and layer_merge_run() are defined below, and the program
 * is pool.c's own object with snapcore and snapbase, not snapmech
 * (tests/unit/meson.build): the real runners are not there.  If pool.c
 * called anything else above the core layer, this program would not link.
 *
 * A fake runner records which job ran, which runner it was called as, and
 * how many ran at once; when told to, it holds its job until the test
 * releases it or the job is cancelled (it waits on rj->cancel), and it
 * records its end the way the real runners do, by deleting the job.  A
 * case waits on the fake's condition variable for what the threads did,
 * with a deadline, never through a real interval; only "nothing more
 * happens" is checked with a short grace period (GRACE), which can make
 * a broken pool fail only when it misbehaves that fast (it does: the
 * scheduler acts within microseconds of a wake).
 *
 * What cannot fail by an assertion (pool_stop() or running_cancel_snapshot()
 * never returning) is caught by a watchdog: after WATCHDOG seconds the
 * program prints a TAP "Bail out!" and exits 1.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "unit.h"
#include "backup.h"
#include "catalog.h"
#include "clock.h"
#include "clone.h"
#include "context.h"
#include "layer.h"
#include "pool.h"
#include "running.h"
#include "wake.h"

#define T0 1000000		     /* the test clock at the start of a case */
#define RETRY_DELAY 30		     /* cfg.retry_delay */
#define WAIT_LIMIT (20 * G_TIME_SPAN_SECOND) /* for a thread to act */
#define GRACE (50 * 1000)	     /* us, for a thread not to act */
#define WATCHDOG 90		     /* s, for a case; meson's timeout is 120 */
#define MAX_JOBS 32		     /* job ids of a case: 1.. */

/* ---- the fake runners --------------------------------------------------- */

/* Everything the fake runners record and obey; fake_lock guards all of it,
 * and fake_changed is broadcast whenever any of it changes. */
static GMutex fake_lock;
static GCond fake_changed;
static struct fake {
	/* what the test tells the runners */
	bool hold;	      /* wait for a release or a cancel */
	unsigned releases;    /* held runners that may go on */
	bool keep_cancelled;  /* a cancelled runner returns only once
			       * let_go is set */
	bool let_go;
	bool record_cancelled; /* a cancelled runner records its end */
	int64_t unrecorded;   /* this job's first run leaves it RUNNING */
	bool stop_called;     /* pool_stop() was called */

	/* what the runners did */
	unsigned started;     /* runs started */
	unsigned ended;	      /* runs that returned */
	unsigned held;	      /* runners holding their job now */
	unsigned at_once;     /* runners inside a runner now */
	unsigned most_at_once;
	unsigned cancelled;   /* runs that saw their job cancelled */
	unsigned after_stop;  /* runs started after pool_stop() was called */
	unsigned runs[MAX_JOBS];  /* by job id: runs started */
	unsigned ends[MAX_JOBS];  /* by job id: runs returned */
	int runner[MAX_JOBS];	  /* by job id: the kind it ran as, -1 none */
	int64_t order[MAX_JOBS];  /* job ids in the order their runs started */
	unsigned n_order;
} fake;

static void fake_reset(void)
{
	memset(&fake, 0, sizeof(fake));
	fake.let_go = true;
	for (unsigned i = 0; i < MAX_JOBS; i++)
		fake.runner[i] = -1;
}

static void fake_changed_locked(void)
{
	g_cond_broadcast(&fake_changed);
}

static void fake_set(bool *field, bool value)
{
	g_mutex_lock(&fake_lock);
	*field = value;
	fake_changed_locked();
	g_mutex_unlock(&fake_lock);
}

static void fake_release(unsigned n)
{
	g_mutex_lock(&fake_lock);
	fake.releases += n;
	fake_changed_locked();
	g_mutex_unlock(&fake_lock);
}

/* A fake counter, read under the lock. */
static unsigned fake_get(const unsigned *field)
{
	unsigned v;

	g_mutex_lock(&fake_lock);
	v = *field;
	g_mutex_unlock(&fake_lock);
	return v;
}

/* Wait until the fake counter *@field is at least @want; false when the
 * threads did not get there within WAIT_LIMIT. */
static bool fake_wait(const unsigned *field, unsigned want)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_LIMIT;
	bool reached;

	g_mutex_lock(&fake_lock);
	while (*field < want)
		if (!g_cond_wait_until(&fake_changed, &fake_lock, deadline))
			break;
	reached = *field >= want;
	g_mutex_unlock(&fake_lock);
	return reached;
}

/* rj->cancel was cancelled (called in the cancelling thread). */
static void fake_on_cancel(GCancellable *cancel, gpointer unused)
{
	g_mutex_lock(&fake_lock);
	fake_changed_locked();
	g_mutex_unlock(&fake_lock);
}

static void fake_run(struct snap_engine *eng, struct running_job *rj,
		     enum job_kind as)
{
	int64_t id = rj->job.id;
	bool cancelled = false, record;
	gulong handler;

	/* progress, for running_job_find() readers */
	__atomic_store_n(&rj->bytes_total, 1000, __ATOMIC_RELEASE);
	__atomic_store_n(&rj->bytes_done, 250, __ATOMIC_RELEASE);
	/* calls fake_on_cancel() at once if already cancelled, so it is
	 * connected without the fake's lock */
	handler = g_cancellable_connect(rj->cancel, G_CALLBACK(fake_on_cancel),
					NULL, NULL);

	g_mutex_lock(&fake_lock);
	if (id > 0 && id < MAX_JOBS) {
		fake.runs[id]++;
		fake.runner[id] = as;
	}
	if (fake.n_order < MAX_JOBS)
		fake.order[fake.n_order++] = id;
	fake.started++;
	if (fake.stop_called)
		fake.after_stop++;
	fake.at_once++;
	fake.most_at_once = MAX(fake.most_at_once, fake.at_once);
	if (fake.hold && !fake.stop_called) {
		fake.held++;
		fake_changed_locked();
		while (!(cancelled = g_cancellable_is_cancelled(rj->cancel)) &&
		       fake.releases == 0)
			g_cond_wait(&fake_changed, &fake_lock);
		if (cancelled) {
			fake.cancelled++;
			fake_changed_locked();
			while (fake.keep_cancelled && !fake.let_go)
				g_cond_wait(&fake_changed, &fake_lock);
		} else {
			fake.releases--;
		}
		fake.held--;
	}
	record = (!cancelled || fake.record_cancelled) &&
		 !(id == fake.unrecorded && fake.runs[id] == 1);
	fake_changed_locked();
	g_mutex_unlock(&fake_lock);

	g_cancellable_disconnect(rj->cancel, handler);
	/* the real runners record a job's end by deleting it */
	if (record)
		catalog_job_delete(eng->cat, id);

	g_mutex_lock(&fake_lock);
	fake.at_once--;
	fake.ended++;
	if (id > 0 && id < MAX_JOBS)
		fake.ends[id]++;
	fake_changed_locked();
	g_mutex_unlock(&fake_lock);
}

/* The runners pool.c calls (backup.h, clone.h, layer.h): link-time
 * substitutes for snapmech's. */
void backup_run(struct snap_engine *eng, struct running_job *rj)
{
	fake_run(eng, rj, JOB_KIND_BACKUP);
}

void clone_run(struct snap_engine *eng, struct running_job *rj)
{
	fake_run(eng, rj, JOB_KIND_CLONE);
}

int layer_merge_run(struct snap_engine *eng, struct running_job *rj)
{
	fake_run(eng, rj, JOB_KIND_MERGE);
	return 0;
}

/* ---- the engine context --------------------------------------------------- */

struct fixture {
	char *dir;
	struct snap_engine eng;
};

static void watchdog(int sig)
{
	static const char msg[] =
		"Bail out! test_pool: a case is stuck (pool_stop() or "
		"running_cancel_snapshot() did not return)\n";

	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

static int setup(void **state)
{
	struct fixture *f = g_new0(struct fixture, 1);
	struct snap_engine *eng = &f->eng;
	g_autofree char *path = NULL;

	fake_reset();
	f->dir = unit_tmpdir();
	path = g_build_filename(f->dir, "catalog.db", NULL);
	if (catalog_open(path, &eng->cat) != 0)
		return -1;
	eng->cfg.workers = 1;
	eng->cfg.test_clock = true;
	eng->cfg.retry_delay = RETRY_DELAY;
	g_mutex_init(&eng->lock);
	g_cond_init(&eng->schedule);
	g_cond_init(&eng->volumes_idle);
	eng->running = running_new();
	if (snap_clock_set(eng, T0) != 0)
		return -1;
	*state = f;
	alarm(WATCHDOG);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct snap_engine *eng = &f->eng;

	/* a case that failed may have left runners holding jobs: pool_stop()
	 * cancels them, and a cancelled runner must not wait for let_go */
	fake_set(&fake.let_go, true);
	if (eng->pool)
		pool_stop(eng);
	alarm(0);
	running_free(eng->running);
	catalog_close(eng->cat);
	g_cond_clear(&eng->volumes_idle);
	g_cond_clear(&eng->schedule);
	g_mutex_clear(&eng->lock);
	unit_tmpdir_remove(f->dir);
	g_free(f);
	return 0;
}

static void start(struct snap_engine *eng, unsigned workers)
{
	eng->cfg.workers = workers;
	assert_errno(pool_start(eng), 0);
	assert_non_null(eng->pool);
}

static int64_t add_job(struct snap_engine *eng, enum job_kind kind,
		       int64_t volume_id, int64_t snapshot_id,
		       enum job_state state, int64_t not_before)
{
	struct catalog_job j = {
		.kind = kind,
		.volume_id = volume_id,
		.snapshot_id = snapshot_id,
		.state = state,
		.not_before = not_before,
	};

	if (kind == JOB_KIND_CLONE)
		g_snprintf(j.target, sizeof(j.target), "clone%" G_GINT64_FORMAT,
			   volume_id);
	assert_errno(catalog_job_insert(eng->cat, &j), 0);
	assert_true(j.id > 0 && j.id < MAX_JOBS);
	return j.id;
}

static int64_t add_queued(struct snap_engine *eng, int64_t volume_id)
{
	return add_job(eng, JOB_KIND_BACKUP, volume_id, 100 + volume_id,
		       JOB_STATE_QUEUED, 0);
}

/* Jobs in the catalog in @state. */
static unsigned jobs_in(struct snap_engine *eng, enum job_state state)
{
	GArray *ids = NULL;
	unsigned n = 0;

	assert_true(catalog_job_ids(eng->cat, &ids) >= 0);
	for (unsigned i = 0; i < ids->len; i++) {
		struct catalog_job j;

		assert_errno(catalog_job_get(eng->cat,
					     g_array_index(ids, int64_t, i), &j),
			     0);
		n += j.state == state;
	}
	g_array_free(ids, TRUE);
	return n;
}

static unsigned jobs_left(struct snap_engine *eng)
{
	GArray *ids = NULL;
	unsigned n;

	assert_true(catalog_job_ids(eng->cat, &ids) >= 0);
	n = ids->len;
	g_array_free(ids, TRUE);
	return n;
}

static bool tracked(struct snap_engine *eng, int64_t id)
{
	struct running_job *rj = running_job_find(eng, id);

	running_job_unref(rj);
	return rj != NULL;
}

/* Wait until job @id left the running table (its worker let go of it
 * after the runner returned); false after WAIT_LIMIT. */
static bool wait_untracked(struct snap_engine *eng, int64_t id)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_LIMIT;

	while (tracked(eng, id)) {
		if (g_get_monotonic_time() > deadline)
			return false;
		g_usleep(1000);
	}
	return true;
}

/*
 * Queue a job that is due now, wake the scheduler and wait until the job
 * ran.  With one worker, and jobs claimed oldest first (catalog.h), every
 * job older than it that was due when it was claimed has run by then.
 * Then give the scheduler's round after the job's end (its worker wakes
 * it) GRACE to end, so that a case moving the clock next sees what the
 * clock's own wake does.
 */
static void run_marker(struct snap_engine *eng, int64_t volume_id)
{
	int64_t id = add_queued(eng, volume_id);

	wake_schedulers(eng);
	assert_true(fake_wait(&fake.ends[id], 1));
	assert_true(wait_untracked(eng, id));
	g_usleep(GRACE);
}

/* ---- cases ---------------------------------------------------------------- */

/*
 * Ten jobs of the three kinds, three workers: each job runs once, through
 * the runner of its kind; the scheduler claims a job only for an idle
 * worker, so at most three run (and are RUNNING in the catalog) at once,
 * and a worker that finishes gets the next job.
 */
static void test_each_job_once_within_workers(void **state)
{
	struct fixture *f = *state;
	struct snap_engine *eng = &f->eng;
	static const enum job_kind kinds[] = { JOB_KIND_BACKUP, JOB_KIND_CLONE,
					       JOB_KIND_MERGE };
	enum { N = 10, WORKERS = 3 };
	int64_t ids[N];

	for (unsigned i = 0; i < N; i++)
		ids[i] = add_job(eng, kinds[i % 3], 1 + i, 100 + i,
				 JOB_STATE_QUEUED, 0);
	fake.hold = true;
	start(eng, WORKERS);

	assert_true(fake_wait(&fake.held, WORKERS));
	g_usleep(GRACE);
	assert_int_equal(fake_get(&fake.held), WORKERS);
	assert_int_equal(fake_get(&fake.started), WORKERS);
	/* claimed for the idle workers only, not queued behind them */
	assert_int_equal(jobs_in(eng, JOB_STATE_RUNNING), WORKERS);
	assert_int_equal(jobs_in(eng, JOB_STATE_QUEUED), N - WORKERS);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(tracked(eng, ids[i]), i < WORKERS);

	/* one at a time: each end lets exactly one more job in */
	for (unsigned done = 1; done <= N; done++) {
		fake_release(1);
		assert_true(fake_wait(&fake.ended, done));
		assert_true(fake_wait(&fake.held, MIN(WORKERS, N - done)));
		assert_true(fake_get(&fake.started) <= done + WORKERS);
	}
	g_usleep(GRACE);
	assert_int_equal(fake_get(&fake.started), N);
	assert_int_equal(fake_get(&fake.most_at_once), WORKERS);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(fake.runs[ids[i]], 1);
		assert_int_equal(fake.runner[ids[i]], kinds[i % 3]);
		assert_true(wait_untracked(eng, ids[i]));
	}
	assert_int_equal(jobs_left(eng), 0);
}

/*
 * A WAITING job whose not_before is ahead of the test clock is not
 * claimed, even when the scheduler is woken for other jobs, until the
 * clock reaches it; snap_clock_set() wakes the scheduler.
 */
static void test_not_before_waits_for_clock(void **state)
{
	struct fixture *f = *state;
	struct snap_engine *eng = &f->eng;
	int64_t later, now_job;

	later = add_job(eng, JOB_KIND_BACKUP, 1, 101, JOB_STATE_WAITING,
			T0 + 100);
	now_job = add_queued(eng, 2);
	start(eng, 1);

	assert_true(fake_wait(&fake.ends[now_job], 1));
	assert_int_equal(fake_get(&fake.runs[later]), 0);

	/* a second short of it: a younger due job runs, it does not */
	assert_errno(snap_clock_set(eng, T0 + 99), 0);
	run_marker(eng, 3);
	assert_int_equal(fake_get(&fake.runs[later]), 0);
	assert_int_equal(jobs_in(eng, JOB_STATE_WAITING), 1);

	/* due: the clock's move wakes the scheduler, nothing else does */
	assert_errno(snap_clock_set(eng, T0 + 100), 0);
	assert_true(fake_wait(&fake.ends[later], 1));
	assert_int_equal(fake.n_order, 3);
	assert_int_equal(fake.order[0], now_job);
	assert_int_equal(fake.order[2], later);
	assert_int_equal(fake.runs[later], 1);
	assert_true(wait_untracked(eng, later));
	assert_int_equal(jobs_left(eng), 0);
}

/*
 * A runner that returns without recording its job's end (the catalog
 * refused the write) leaves the job RUNNING: the worker makes it WAITING
 * for retry_delay seconds of the engine's clock, records a job.retry
 * event, and the job runs again once due.
 */
static void test_unrecorded_end_runs_again(void **state)
{
	struct fixture *f = *state;
	struct snap_engine *eng = &f->eng;
	g_autoptr(GString) events = g_string_new(NULL);
	struct catalog_job j;
	int64_t id;

	id = add_queued(eng, 1);
	fake.unrecorded = id;
	start(eng, 1);

	assert_true(fake_wait(&fake.ends[id], 1));
	/* the worker requeues it before it lets go of it */
	assert_true(wait_untracked(eng, id));
	assert_errno(catalog_job_get(eng->cat, id, &j), 0);
	assert_int_equal(j.state, JOB_STATE_WAITING);
	assert_int_equal(j.not_before, T0 + RETRY_DELAY);
	assert_errno(catalog_events_text(eng->cat, -1, events), 0);
	assert_non_null(strstr(events->str, "\"job.retry\""));
	assert_null(strstr(strstr(events->str, "\"job.retry\"") + 1,
			   "\"job.retry\""));

	/* not before its time */
	assert_errno(snap_clock_set(eng, T0 + RETRY_DELAY - 1), 0);
	run_marker(eng, 2);
	assert_int_equal(fake_get(&fake.runs[id]), 1);

	/* then again, and this time its end is recorded */
	assert_errno(snap_clock_set(eng, T0 + RETRY_DELAY), 0);
	assert_true(fake_wait(&fake.ends[id], 2));
	assert_true(wait_untracked(eng, id));
	assert_errno(catalog_job_get(eng->cat, id, &j), -ENOENT);
	assert_int_equal(jobs_left(eng), 0);
}

/*
 * pool_stop() cancels the running jobs and returns; it starts no other
 * job (the queued ones stay QUEUED for the next start), and a job
 * cancelled by the stop stays RUNNING, for the next start's recovery to
 * queue again, instead of waiting for a retry.
 */
static void test_stop_cancels_running_jobs(void **state)
{
	struct fixture *f = *state;
	struct snap_engine *eng = &f->eng;
	int64_t ids[4];

	for (unsigned i = 0; i < 4; i++)
		ids[i] = add_queued(eng, 1 + i);
	fake.hold = true;
	start(eng, 2);
	assert_true(fake_wait(&fake.held, 2));

	fake_set(&fake.stop_called, true);
	pool_stop(eng);
	assert_null(eng->pool);
	assert_int_equal(fake_get(&fake.cancelled), 2);
	assert_int_equal(fake_get(&fake.ended), 2);

	/* nothing runs after it, even when woken */
	assert_errno(snap_clock_set(eng, T0 + 3600), 0);
	wake_schedulers(eng);
	g_usleep(GRACE);
	assert_int_equal(fake_get(&fake.started), 2);
	assert_int_equal(fake_get(&fake.after_stop), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_false(tracked(eng, ids[i]));
	assert_int_equal(fake.runs[ids[0]] + fake.runs[ids[1]], 2);
	assert_int_equal(jobs_in(eng, JOB_STATE_RUNNING), 2);
	assert_int_equal(jobs_in(eng, JOB_STATE_QUEUED), 2);
	assert_int_equal(jobs_in(eng, JOB_STATE_WAITING), 0);
}

/* Set let_go GRACE after @n runners saw their cancel. */
static gpointer let_go_later(gpointer n)
{
	if (fake_wait(&fake.cancelled, GPOINTER_TO_UINT(n)))
		g_usleep(GRACE);
	fake_set(&fake.let_go, true);
	return NULL;
}

/*
 * pool_stop() returns only once the runners of the jobs it cancelled
 * returned, however long they take to let go: they use the engine, which
 * its caller frees next.
 */
static void test_stop_waits_for_runners(void **state)
{
	struct fixture *f = *state;
	struct snap_engine *eng = &f->eng;
	GThread *t;

	for (unsigned i = 0; i < 3; i++)
		add_queued(eng, 1 + i);
	fake.hold = true;
	fake.keep_cancelled = true;
	fake.let_go = false;
	start(eng, 2);
	assert_true(fake_wait(&fake.held, 2));

	t = g_thread_new("let-go", let_go_later, GUINT_TO_POINTER(2));
	fake_set(&fake.stop_called, true);
	pool_stop(eng);
	assert_int_equal(fake_get(&fake.ended), 2);
	g_thread_join(t);
	assert_int_equal(fake_get(&fake.cancelled), 2);
	assert_int_equal(fake_get(&fake.started), 2);
	assert_int_equal(jobs_in(eng, JOB_STATE_QUEUED), 1);
}

/*
 * While a job runs, running_job_find() returns it, with the runner's
 * progress; once the worker let go of it, it is gone from the table, and
 * a reference taken before stays valid until dropped.
 */
static void test_running_job_visible(void **state)
{
	struct fixture *f = *state;
	struct snap_engine *eng = &f->eng;
	struct running_job *rj;
	int64_t id;

	id = add_job(eng, JOB_KIND_BACKUP, 3, 7, JOB_STATE_QUEUED, 0);
	assert_false(tracked(eng, id));
	fake.hold = true;
	start(eng, 1);
	assert_true(fake_wait(&fake.held, 1));

	rj = running_job_find(eng, id);
	assert_non_null(rj);
	assert_int_equal(rj->job.id, id);
	assert_int_equal(rj->job.kind, JOB_KIND_BACKUP);
	assert_int_equal(rj->job.volume_id, 3);
	assert_int_equal(rj->job.snapshot_id, 7);
	assert_int_equal(rj->job.state, JOB_STATE_RUNNING);
	assert_int_equal(__atomic_load_n(&rj->bytes_done, __ATOMIC_ACQUIRE),
			 250);
	assert_int_equal(__atomic_load_n(&rj->bytes_total, __ATOMIC_ACQUIRE),
			 1000);
	assert_false(g_cancellable_is_cancelled(rj->cancel));
	assert_false(tracked(eng, id + 1));

	fake_release(1);
	assert_true(fake_wait(&fake.ends[id], 1));
	assert_true(wait_untracked(eng, id));
	/* the reader's reference outlives the table's and the runner's */
	assert_int_equal(rj->job.id, id);
	assert_int_equal(__atomic_load_n(&rj->bytes_done, __ATOMIC_ACQUIRE),
			 250);
	running_job_unref(rj);
	assert_int_equal(jobs_left(eng), 0);
}

/* running_cancel_snapshot() in a thread of its own, as an rmdir would. */
struct canceller {
	struct snap_engine *eng;
	int64_t snapshot_id, job_id;
	bool returned;
	unsigned ends_at_return; /* runs of job_id that had returned */
	bool tracked_at_return;
};

static gpointer canceller_main(gpointer arg)
{
	struct canceller *c = arg;
	bool still = false;

	running_cancel_snapshot(c->eng, c->snapshot_id);
	still = tracked(c->eng, c->job_id);
	g_mutex_lock(&fake_lock);
	c->returned = true;
	c->ends_at_return = fake.ends[c->job_id];
	c->tracked_at_return = still;
	fake_changed_locked();
	g_mutex_unlock(&fake_lock);
	return NULL;
}

/*
 * running_cancel_snapshot() cancels the running backup of that snapshot
 * (not a clone reading it, not another snapshot's) and returns only once
 * the runner let go of it: its runner returned and it left the table.
 */
static void test_cancel_snapshot_waits(void **state)
{
	struct fixture *f = *state;
	struct snap_engine *eng = &f->eng;
	/* not on this stack: the thread outlives a failed assertion */
	struct canceller *c = g_new0(struct canceller, 1);
	struct running_job *clone;
	struct catalog_job j;
	bool returned;
	GThread *t;
	int64_t backup, clone_id;

	backup = add_job(eng, JOB_KIND_BACKUP, 1, 7, JOB_STATE_QUEUED, 0);
	clone_id = add_job(eng, JOB_KIND_CLONE, 2, 7, JOB_STATE_QUEUED, 0);
	c->eng = eng;
	c->snapshot_id = 7;
	c->job_id = backup;
	fake.hold = true;
	fake.record_cancelled = true;
	start(eng, 2);
	assert_true(fake_wait(&fake.held, 2));

	/* no running backup of snapshot 8: returns at once, cancels nothing */
	running_cancel_snapshot(eng, 8);
	g_usleep(GRACE);
	assert_int_equal(fake_get(&fake.cancelled), 0);

	/* from now on a cancelled runner holds on until let_go */
	g_mutex_lock(&fake_lock);
	fake.keep_cancelled = true;
	fake.let_go = false;
	g_mutex_unlock(&fake_lock);
	t = g_thread_new("canceller", canceller_main, c);
	assert_true(fake_wait(&fake.cancelled, 1));
	/* the backup's runner saw the cancel but holds on: no return yet */
	g_usleep(GRACE);
	g_mutex_lock(&fake_lock);
	returned = c->returned;
	g_mutex_unlock(&fake_lock);
	assert_false(returned);
	assert_true(tracked(eng, backup));

	fake_set(&fake.let_go, true);
	g_thread_join(t);
	assert_true(c->returned);
	assert_int_equal(c->ends_at_return, 1);
	assert_false(c->tracked_at_return);
	g_free(c);
	assert_errno(catalog_job_get(eng->cat, backup, &j), -ENOENT);

	/* the clone reading the same snapshot runs on, not cancelled */
	assert_int_equal(fake_get(&fake.cancelled), 1);
	assert_int_equal(fake_get(&fake.held), 1);
	clone = running_job_find(eng, clone_id);
	assert_non_null(clone);
	assert_false(g_cancellable_is_cancelled(clone->cancel));
	running_job_unref(clone);
	fake_release(1);
	assert_true(fake_wait(&fake.ends[clone_id], 1));
	assert_true(wait_untracked(eng, clone_id));
	assert_int_equal(jobs_left(eng), 0);
}

/*
 * A backup cancelled by an rmdir returns with its job still RUNNING, as
 * backup_run() does ("whoever cancelled owns the catalog change": the
 * rmdir deletes the job once running_cancel_snapshot() returned).  The
 * worker took that for an end the catalog refused to record: it made the
 * job WAITING for a retry and logged a job.retry event with EIO, "could
 * not record its end in the catalog", for every rmdir of a snapshot being
 * backed up; and had the rmdir's delete failed, the job would have been
 * retried, found its snapshot Destroying, and been retried again, one
 * event each retry_delay.
 */
static void test_bug_cancelled_job_retried(void **state)
{
	struct fixture *f = *state;
	struct snap_engine *eng = &f->eng;
	g_autoptr(GString) events = g_string_new(NULL);
	struct catalog_job j;
	int64_t id;

	id = add_job(eng, JOB_KIND_BACKUP, 1, 7, JOB_STATE_QUEUED, 0);
	fake.hold = true;
	start(eng, 1);
	assert_true(fake_wait(&fake.held, 1));

	running_cancel_snapshot(eng, 7);
	assert_int_equal(fake_get(&fake.cancelled), 1);
	assert_false(tracked(eng, id));
	/* left as the runner left it, for the canceller */
	assert_errno(catalog_job_get(eng->cat, id, &j), 0);
	assert_int_equal(j.state, JOB_STATE_RUNNING);
	assert_errno(catalog_events_text(eng->cat, -1, events), 0);
	assert_null(strstr(events->str, "\"job.retry\""));

	/* the rmdir deletes it; nothing runs again */
	assert_errno(catalog_job_delete(eng->cat, id), 0);
	assert_errno(snap_clock_set(eng, T0 + 10 * RETRY_DELAY), 0);
	fake_set(&fake.hold, false);
	run_marker(eng, 2);
	assert_int_equal(fake_get(&fake.runs[id]), 1);
}

int main(void)
{
#define CASE(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		CASE(test_each_job_once_within_workers),
		CASE(test_not_before_waits_for_clock),
		CASE(test_unrecorded_end_runs_again),
		CASE(test_stop_cancels_running_jobs),
		CASE(test_stop_waits_for_runners),
		CASE(test_running_job_visible),
		CASE(test_cancel_snapshot_waits),
		CASE(test_bug_cancelled_job_retried),
	};
#undef CASE

	signal(SIGALRM, watchdog);
	return unit_run("pool", tests, G_N_ELEMENTS(tests));
}
