/*
 * test_waiters.c - engine/waiters.c: snap_snapshot_wait() on a context
 * made by the test (a catalog in a temporary directory and the waiters,
 * nothing else: the program links only the base and core layers and
 * waiters.c), with snapshot rows changed by the test the way backup.c and
 * snapshot.c change them.
 *
 * Threads stand in for FUSE readers.  A reader is known to be asleep once
 * its stop callback ran twice (the callback runs before each sleep and
 * again after each 200 ms slice), so no case guesses with a sleep.
 */
#include <errno.h>
#include <stdio.h>

#include "unit.h"
#include "context.h"
#include "catalog.h"
#include "waiters.h"

struct fixture {
	char *dir;
	struct snap_engine *eng;
	int64_t volume_id;
};

/* One reader: its snapshot, what its stop callback says, what it got. */
struct reader {
	struct snap_engine *eng;
	uint64_t id;
	gint asked;	  /* stop callback calls (atomic) */
	gint stop_with;	  /* what the stop callback returns (atomic) */
	int rc;
	enum snap_state state;
	GThread *thread;
};

/* The context waiters.c uses: the catalog, the clock, the waiters. */
static struct snap_engine *context_open(const char *dir)
{
	struct snap_engine *eng = g_new0(struct snap_engine, 1);
	g_autofree char *path = g_build_filename(dir, "catalog.db", NULL);

	eng->cfg.source = (char *)dir;
	g_mutex_init(&eng->lock);
	eng->waiters = waiters_new();
	if (catalog_open(path, &eng->cat) != 0)
		return NULL;
	return eng;
}

/* What snap_engine_close() does first, then the rest of the context. */
static void context_close(struct snap_engine *eng)
{
	if (!eng)
		return;
	waiters_stop(eng);
	catalog_close(eng->cat);
	waiters_free(eng->waiters);
	g_mutex_clear(&eng->lock);
	g_free(eng);
}

static int setup(void **state)
{
	struct fixture *f = g_new0(struct fixture, 1);
	struct catalog_volume v = { 0 };

	f->dir = unit_tmpdir();
	f->eng = context_open(f->dir);
	if (!f->eng)
		return -1;
	g_strlcpy(v.name, "vol", sizeof(v.name));
	g_strlcpy(v.uuid, "3f1e7a52-9c1b-4b5e-8f0a-5d2c6e9b1a47", sizeof(v.uuid));
	if (catalog_volume_insert(f->eng->cat, &v) != 0)
		return -1;
	f->volume_id = v.id;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	context_close(f->eng); /* NULL when a case closed it */
	unit_tmpdir_remove(f->dir);
	g_free(f);
	return 0;
}

static uint64_t add_snapshot(struct fixture *f, const char *name,
			     enum snap_state state)
{
	static unsigned serial;
	struct catalog_snapshot s = { 0 };

	s.volume_id = f->volume_id;
	g_strlcpy(s.name, name, sizeof(s.name));
	g_snprintf(s.uuid, sizeof(s.uuid), "11111111-0000-4000-8000-%012x",
		   ++serial);
	s.state = state;
	assert_errno(catalog_snapshot_insert(f->eng->cat, &s), 0);
	return (uint64_t)s.id;
}

/* What backup.c does when a backup ends: the state, then the wake-up. */
static void set_state(struct fixture *f, uint64_t id, enum snap_state state)
{
	struct catalog_snapshot s;

	assert_errno(catalog_snapshot_get_by_id(f->eng->cat, (int64_t)id, &s), 0);
	s.state = state;
	assert_errno(catalog_snapshot_update(f->eng->cat, &s), 0);
	waiters_wake(f->eng);
}

static int reader_stop(void *arg)
{
	struct reader *r = arg;

	g_atomic_int_inc(&r->asked);
	return g_atomic_int_get(&r->stop_with);
}

static gpointer reader_main(gpointer arg)
{
	struct reader *r = arg;

	r->rc = snap_snapshot_wait(r->eng, r->id, reader_stop, r, &r->state);
	return NULL;
}

static void reader_start(struct reader *r, struct snap_engine *eng, uint64_t id)
{
	memset(r, 0, sizeof(*r));
	r->eng = eng;
	r->id = id;
	r->rc = 1;
	r->thread = g_thread_new("reader", reader_main, r);
}

/* Until @r sleeps: its stop callback ran after a first sleep. */
static void reader_asleep(struct reader *r)
{
	while (g_atomic_int_get(&r->asked) < 2)
		g_usleep(1000);
}

static void reader_join(struct reader *r)
{
	g_thread_join(r->thread);
	r->thread = NULL;
}

static void test_final_state_returns_at_once(void **state)
{
	struct fixture *f = *state;
	uint64_t done = add_snapshot(f, "done", SNAP_STATE_BACKED_UP);
	uint64_t failed = add_snapshot(f, "failed", SNAP_STATE_BACKUP_FAILED);
	enum snap_state got;

	assert_errno(snap_snapshot_wait(f->eng, done, NULL, NULL, &got), 0);
	assert_int_equal(got, SNAP_STATE_BACKED_UP);
	assert_errno(snap_snapshot_wait(f->eng, failed, NULL, NULL, &got), 0);
	assert_int_equal(got, SNAP_STATE_BACKUP_FAILED);
	assert_errno(snap_snapshot_wait(f->eng, 999999, NULL, NULL, &got),
		     -ENOENT);
}

static void test_woken_by_backup_end(void **state)
{
	struct fixture *f = *state;
	uint64_t id = add_snapshot(f, "s1", SNAP_STATE_BACKING_UP);
	struct reader r;

	reader_start(&r, f->eng, id);
	reader_asleep(&r);
	assert_int_equal(r.rc, 1); /* still waiting */
	set_state(f, id, SNAP_STATE_BACKED_UP);
	reader_join(&r);
	assert_errno(r.rc, 0);
	assert_int_equal(r.state, SNAP_STATE_BACKED_UP);
}

static void test_woken_by_backup_failure(void **state)
{
	struct fixture *f = *state;
	uint64_t id = add_snapshot(f, "s1", SNAP_STATE_BACKING_UP);
	struct reader r;

	reader_start(&r, f->eng, id);
	reader_asleep(&r);
	set_state(f, id, SNAP_STATE_BACKUP_FAILED);
	reader_join(&r);
	assert_errno(r.rc, 0);
	assert_int_equal(r.state, SNAP_STATE_BACKUP_FAILED);
}

/* Destroying is not an end: the reader waits on until the row is gone. */
static void test_deleted_gives_enoent(void **state)
{
	struct fixture *f = *state;
	uint64_t id = add_snapshot(f, "s1", SNAP_STATE_BACKING_UP);
	struct reader r;

	reader_start(&r, f->eng, id);
	reader_asleep(&r);
	set_state(f, id, SNAP_STATE_DESTROYING);
	g_atomic_int_set(&r.asked, 0);
	reader_asleep(&r);
	assert_int_equal(r.rc, 1);
	assert_errno(catalog_snapshot_delete(f->eng->cat, (int64_t)id), 0);
	waiters_wake(f->eng);
	reader_join(&r);
	assert_errno(r.rc, -ENOENT);
}

static void test_stop_callback_ends_the_wait(void **state)
{
	struct fixture *f = *state;
	uint64_t id = add_snapshot(f, "s1", SNAP_STATE_BACKING_UP);
	struct reader r;

	reader_start(&r, f->eng, id);
	reader_asleep(&r);
	g_atomic_int_set(&r.stop_with, -EINTR); /* the reader got a signal */
	reader_join(&r);
	assert_errno(r.rc, -EINTR);
}

static void test_bounded_sleepers(void **state)
{
	struct fixture *f = *state;
	uint64_t id = add_snapshot(f, "s1", SNAP_STATE_BACKING_UP);
	uint64_t done = add_snapshot(f, "done", SNAP_STATE_BACKED_UP);
	struct reader r[SNAP_WAITERS_MAX];
	g_autoptr(GString) events = g_string_new(NULL);
	enum snap_state got;

	for (int i = 0; i < SNAP_WAITERS_MAX; i++)
		reader_start(&r[i], f->eng, id);
	for (int i = 0; i < SNAP_WAITERS_MAX; i++)
		reader_asleep(&r[i]);
	/* one more would sleep: refused, with an event */
	assert_errno(snap_snapshot_wait(f->eng, id, NULL, NULL, &got), -EBUSY);
	assert_errno(catalog_events_text(f->eng->cat, -1, events), 0);
	assert_non_null(strstr(events->str, "\"errno\":\"EBUSY\""));
	assert_non_null(strstr(events->str, "wait/vol/s1"));
	/* one that needs no sleep is answered */
	assert_errno(snap_snapshot_wait(f->eng, done, NULL, NULL, &got), 0);

	set_state(f, id, SNAP_STATE_BACKED_UP);
	for (int i = 0; i < SNAP_WAITERS_MAX; i++) {
		reader_join(&r[i]);
		assert_errno(r[i].rc, 0);
		assert_int_equal(r[i].state, SNAP_STATE_BACKED_UP);
	}
	/* the slots are free again */
	reader_start(&r[0], f->eng, add_snapshot(f, "s2", SNAP_STATE_BACKING_UP));
	reader_asleep(&r[0]);
	g_atomic_int_set(&r[0].stop_with, -EINTR);
	reader_join(&r[0]);
	assert_errno(r[0].rc, -EINTR);
}

/* Closing (waiters_stop(), the first thing snap_engine_close() does)
 * wakes every sleeper with -ENOTCONN, and returns. */
static void test_close_wakes_sleepers(void **state)
{
	struct fixture *f = *state;
	uint64_t id = add_snapshot(f, "s1", SNAP_STATE_BACKING_UP);
	struct reader r[3];

	for (int i = 0; i < 3; i++)
		reader_start(&r[i], f->eng, id);
	for (int i = 0; i < 3; i++)
		reader_asleep(&r[i]);
	context_close(f->eng);
	f->eng = NULL;
	for (int i = 0; i < 3; i++) {
		reader_join(&r[i]);
		assert_errno(r[i].rc, -ENOTCONN);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_final_state_returns_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_woken_by_backup_end, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_woken_by_backup_failure,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_gives_enoent, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_callback_ends_the_wait,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_sleepers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_close_wakes_sleepers, setup,
						teardown),
	};

	return unit_run("waiters", tests, G_N_ELEMENTS(tests));
}
