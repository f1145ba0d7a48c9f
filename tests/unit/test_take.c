/*
 * test_take.c - engine/take.c, the take sequence, on an in-memory catalog
 * with fake steps: no file, no VM, no mount.  The program links snaptake
 * and snapbase only (tests/unit/meson.build), so take.c calling anything
 * above the catalog fails to link here.
 *
 * The fake steps write real rows (a snapshot row and one layer row a
 * disk, Creating) and keep each fake disk's state (prepared, swapped);
 * each step appends its name to a trace.  A case makes one step fail and
 * checks the trace (what ran, the undo in reverse order), the rows and the
 * disks left: before the commit point nothing is left, after it the rows
 * stay Creating for recovery.
 */
#include <errno.h>
#include <stdio.h>

#include "unit.h"
#include "catalog.h"
#include "take.h"

#define MAX_DISKS 4

struct fake {
	struct catalog *cat;
	GString *trace;
	unsigned n;
	int64_t volume_id;
	struct catalog_snapshot s;
	char layers[MAX_DISKS][37];

	/* what fails: the step's rc, at which disk, how many times */
	int insert_rc;		/* rows_insert, after writing its rows */
	int prepare_fails_at;	/* disk index, -1 none */
	int switch_rc;
	bool switch_switches;	/* switch_disks sets t->switched */
	unsigned swap_fails;	/* bit k: disk k's swap fails */
	int after_rc;		/* after_swap puts the disks back and fails */
	int commit_failures;	/* rows_commit fails this many times */
	int delete_failures;	/* rows_delete fails this many times */

	/* the fake world */
	bool prepared[MAX_DISKS];
	bool swapped[MAX_DISKS];
	bool switch_done;
};

static void step(struct fake *f, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void step(struct fake *f, const char *fmt, ...)
{
	va_list ap;

	if (f->trace->len)
		g_string_append_c(f->trace, ' ');
	va_start(ap, fmt);
	g_string_append_vprintf(f->trace, fmt, ap);
	va_end(ap);
}

static int fake_rows_insert(struct take *t)
{
	struct fake *f = t->arg;
	unsigned k;
	int rc;

	step(f, "insert");
	rc = catalog_snapshot_insert(f->cat, &f->s);
	for (k = 0; k < f->n && rc == 0; k++) {
		struct catalog_layer l = { .volume_id = f->volume_id,
					   .state = LAYER_STATE_CREATING };

		g_strlcpy(l.uuid, f->layers[k], sizeof(l.uuid));
		rc = catalog_layer_insert(f->cat, &l);
	}
	return rc < 0 ? rc : f->insert_rc; /* fails with its rows written */
}

static int fake_rows_delete(struct take *t)
{
	struct fake *f = t->arg;
	unsigned k;
	int rc;

	step(f, "delete");
	rc = catalog_snapshot_delete(f->cat, f->s.id);
	for (k = 0; k < f->n && rc == 0; k++)
		rc = catalog_layer_delete(f->cat, f->layers[k]);
	if (rc == 0 && f->delete_failures > 0) {
		f->delete_failures--;
		return -EIO; /* after deleting: the rollback must keep them */
	}
	return rc;
}

static int fake_disk_prepare(struct take *t, unsigned k)
{
	struct fake *f = t->arg;

	step(f, "prepare%u", k);
	assert_false(f->prepared[k]);
	if ((int)k == f->prepare_fails_at)
		return -ENOSPC;
	f->prepared[k] = true;
	return 0;
}

static void fake_disk_undo(struct take *t, unsigned k)
{
	struct fake *f = t->arg;

	step(f, "undo%u", k);
	assert_true(f->prepared[k]); /* only what was done is undone */
	assert_false(f->swapped[k]);
	f->prepared[k] = false;
}

static int fake_switch(struct take *t)
{
	struct fake *f = t->arg;
	unsigned k;

	step(f, "switch");
	for (k = 0; k < f->n; k++)
		assert_true(f->prepared[k]);
	if (f->switch_rc)
		return f->switch_rc;
	f->switch_done = true;
	t->switched = f->switch_switches;
	return 0;
}

static void fake_switch_undo(struct take *t)
{
	struct fake *f = t->arg;

	step(f, "unswitch");
	assert_true(f->switch_done);
	f->switch_done = false;
}

static int fake_disk_swap(struct take *t, unsigned k)
{
	struct fake *f = t->arg;

	step(f, "swap%u", k);
	assert_true(f->prepared[k]);
	if (f->swap_fails & (1u << k))
		return -EIO;
	f->swapped[k] = true;
	return 0;
}

static int fake_after_swap(struct take *t)
{
	struct fake *f = t->arg;
	unsigned k;

	step(f, "after");
	if (!f->after_rc)
		return 0;
	for (k = 0; k < f->n; k++)
		f->swapped[k] = false; /* put back, as resume_after_save() */
	return f->after_rc;
}

static int fake_rows_commit(struct take *t)
{
	struct fake *f = t->arg;
	unsigned k;
	int rc;

	step(f, "commit");
	f->s.state = SNAP_STATE_BACKING_UP;
	rc = catalog_snapshot_update(f->cat, &f->s);
	for (k = 0; k < f->n && rc == 0; k++) {
		struct catalog_layer l;

		rc = catalog_layer_get(f->cat, f->layers[k], &l);
		l.state = LAYER_STATE_LIVE;
		if (rc == 0)
			rc = catalog_layer_update(f->cat, &l);
	}
	if (rc == 0 && f->commit_failures > 0) {
		f->commit_failures--;
		return -EIO; /* after writing: the rollback must undo them */
	}
	return rc;
}

static const struct take_ops fake_ops = {
	.rows_insert = fake_rows_insert,
	.rows_delete = fake_rows_delete,
	.disk_prepare = fake_disk_prepare,
	.disk_undo = fake_disk_undo,
	.switch_disks = fake_switch,
	.switch_undo = fake_switch_undo,
	.disk_swap = fake_disk_swap,
	.after_swap = fake_after_swap,
	.rows_commit = fake_rows_commit,
};

/* ---- fixtures and checks ------------------------------------------------- */

static int setup(void **state)
{
	struct fake *f = g_new0(struct fake, 1);
	struct catalog_volume v = { 0 };
	unsigned k;

	if (catalog_open(":memory:", &f->cat) != 0)
		return -1;
	g_strlcpy(v.name, "vol", sizeof(v.name));
	g_strlcpy(v.uuid, "3f1e7a52-9c1b-4b5e-8f0a-5d2c6e9b1a47", sizeof(v.uuid));
	if (catalog_volume_insert(f->cat, &v) != 0)
		return -1;
	f->volume_id = v.id;
	f->s.volume_id = v.id;
	g_strlcpy(f->s.volume, "vol", sizeof(f->s.volume));
	g_strlcpy(f->s.name, "s1", sizeof(f->s.name));
	g_strlcpy(f->s.uuid, "7d0c2b9e-1f3a-4c5d-9e8f-0a1b2c3d4e5f", sizeof(f->s.uuid));
	g_strlcpy(f->s.layer, "7d0c2b9e-1f3a-4c5d-9e8f-0a1b2c3d4e50", sizeof(f->s.layer));
	f->s.state = SNAP_STATE_CREATING;
	for (k = 0; k < MAX_DISKS; k++)
		g_snprintf(f->layers[k], sizeof(f->layers[k]),
			   "7d0c2b9e-1f3a-4c5d-9e8f-0a1b2c3d4e5%u", k);
	f->n = 3;
	f->prepare_fails_at = -1;
	f->trace = g_string_new(NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	catalog_close(f->cat);
	g_string_free(f->trace, TRUE);
	g_free(f);
	return 0;
}

static int run(struct fake *f, struct take *t)
{
	*t = (struct take){ .cat = f->cat, .ops = &fake_ops, .arg = f,
			    .n = f->n };
	return take_run(t);
}

static void assert_trace(struct fake *f, const char *want)
{
	if (strcmp(f->trace->str, want) != 0) {
		print_error("steps:    %s\nexpected: %s\n", f->trace->str, want);
		fail();
	}
}

/* No row of the take and no fake disk touched: as before take_run(). */
static void assert_nothing_left(struct fake *f)
{
	struct catalog_snapshot s;
	struct catalog_layer l;
	unsigned k;

	assert_errno(catalog_snapshot_get_by_id(f->cat, f->s.id, &s), -ENOENT);
	for (k = 0; k < f->n; k++) {
		assert_errno(catalog_layer_get(f->cat, f->layers[k], &l), -ENOENT);
		assert_false(f->prepared[k]);
		assert_false(f->swapped[k]);
	}
	assert_false(f->switch_done);
}

/* The rows as rows_insert wrote them: Creating, for recovery. */
static void assert_rows_creating(struct fake *f)
{
	struct catalog_snapshot s;
	struct catalog_layer l;
	unsigned k;

	assert_errno(catalog_snapshot_get_by_id(f->cat, f->s.id, &s), 0);
	assert_int_equal(s.state, SNAP_STATE_CREATING);
	for (k = 0; k < f->n; k++) {
		assert_errno(catalog_layer_get(f->cat, f->layers[k], &l), 0);
		assert_int_equal(l.state, LAYER_STATE_CREATING);
	}
}

static void assert_rows_live(struct fake *f)
{
	struct catalog_snapshot s;
	struct catalog_layer l;
	unsigned k;

	assert_errno(catalog_snapshot_get_by_id(f->cat, f->s.id, &s), 0);
	assert_int_equal(s.state, SNAP_STATE_BACKING_UP);
	for (k = 0; k < f->n; k++) {
		assert_errno(catalog_layer_get(f->cat, f->layers[k], &l), 0);
		assert_int_equal(l.state, LAYER_STATE_LIVE);
	}
}

/* ---- cases --------------------------------------------------------------- */

static void test_every_step_in_order(void **state)
{
	struct fake *f = *state;
	struct take t;

	assert_errno(run(f, &t), 0);
	assert_trace(f, "insert prepare0 prepare1 prepare2 switch swap0 swap1 swap2 after commit");
	assert_int_equal(t.failed, TAKE_STEP_NONE);
	assert_true(t.exists);
	assert_errno(t.undo_rc, 0);
	assert_rows_live(f);
}

static void test_rows_refused_nothing_done(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->insert_rc = -EEXIST;
	assert_errno(run(f, &t), -EEXIST);
	assert_trace(f, "insert");
	assert_int_equal(t.failed, TAKE_STEP_ROWS);
	assert_false(t.exists);
	assert_nothing_left(f); /* the transaction rolled the rows back */
}

static void test_prepare_of_each_disk_fails(void **state)
{
	static const char *const want[] = {
		"insert prepare0 delete",
		"insert prepare0 prepare1 undo0 delete",
		"insert prepare0 prepare1 prepare2 undo1 undo0 delete",
	};
	struct fake *f = *state;
	struct take t;
	unsigned k;

	for (k = 0; k < f->n; k++) {
		g_string_truncate(f->trace, 0);
		f->prepare_fails_at = (int)k;
		assert_errno(run(f, &t), -ENOSPC);
		assert_trace(f, want[k]);
		assert_int_equal(t.failed, TAKE_STEP_PREPARE);
		assert_int_equal(t.failed_disk, k);
		assert_false(t.exists);
		assert_errno(t.undo_rc, 0);
		assert_nothing_left(f);
	}
}

static void test_switch_fails(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->switch_rc = -EAGAIN;
	assert_errno(run(f, &t), -EAGAIN);
	/* a failed switch undid itself: no unswitch */
	assert_trace(f, "insert prepare0 prepare1 prepare2 switch undo2 undo1 undo0 delete");
	assert_int_equal(t.failed, TAKE_STEP_SWITCH);
	assert_false(t.exists);
	assert_nothing_left(f);
}

static void test_every_swap_fails(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->swap_fails = 0x7;
	assert_errno(run(f, &t), -EIO);
	assert_trace(f, "insert prepare0 prepare1 prepare2 switch swap0 swap1 swap2 after "
			"unswitch undo2 undo1 undo0 delete");
	assert_int_equal(t.failed, TAKE_STEP_SWAP);
	assert_int_equal(t.failed_disk, 0);
	assert_false(t.exists);
	assert_nothing_left(f);
}

static void test_one_disk_swap_fails(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->n = 1; /* a volume snapshot */
	f->swap_fails = 0x1;
	assert_errno(run(f, &t), -EIO);
	assert_trace(f, "insert prepare0 switch swap0 after unswitch undo0 delete");
	assert_false(t.exists);
	assert_nothing_left(f);
}

static void test_swap_fails_after_another(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->swap_fails = 0x2; /* disk 0 swapped: the snapshot exists */
	assert_errno(run(f, &t), -EIO);
	assert_trace(f, "insert prepare0 prepare1 prepare2 switch swap0 swap1 swap2 after");
	assert_int_equal(t.failed, TAKE_STEP_SWAP);
	assert_int_equal(t.failed_disk, 1);
	assert_true(t.exists);
	assert_rows_creating(f);
	assert_true(f->swapped[0] && f->prepared[1] && f->swapped[2]);
}

static void test_swap_fails_after_the_switch(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->switch_switches = true; /* QEMU writes the overlays */
	f->swap_fails = 0x7;
	assert_errno(run(f, &t), -EIO);
	/* nothing undone: the overlays QEMU writes stay, for recovery */
	assert_trace(f, "insert prepare0 prepare1 prepare2 switch swap0 swap1 swap2 after");
	assert_true(t.exists);
	assert_rows_creating(f);
	assert_true(f->prepared[0] && f->prepared[1] && f->prepared[2] && f->switch_done);
}

static void test_after_swap_puts_the_disks_back(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->after_rc = -EIO; /* a memory restore that failed, rolled back */
	assert_errno(run(f, &t), -EIO);
	assert_trace(f, "insert prepare0 prepare1 prepare2 switch swap0 swap1 swap2 after "
			"unswitch undo2 undo1 undo0 delete");
	assert_int_equal(t.failed, TAKE_STEP_AFTER_SWAP);
	assert_false(t.exists);
	assert_nothing_left(f);
}

static void test_commit_retried(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->commit_failures = TAKE_TRIES - 1;
	assert_errno(run(f, &t), 0);
	assert_trace(f, "insert prepare0 prepare1 prepare2 switch swap0 swap1 swap2 after "
			"commit commit commit");
	assert_int_equal(t.failed, TAKE_STEP_NONE);
	assert_rows_live(f);
}

static void test_commit_refused(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->commit_failures = TAKE_TRIES;
	assert_errno(run(f, &t), -EIO);
	/* after the swap nothing is undone: recovery completes the take */
	assert_trace(f, "insert prepare0 prepare1 prepare2 switch swap0 swap1 swap2 after "
			"commit commit commit");
	assert_int_equal(t.failed, TAKE_STEP_COMMIT);
	assert_true(t.exists);
	assert_errno(t.undo_rc, 0);
	assert_rows_creating(f); /* each refused commit rolled back */
	assert_true(f->swapped[0] && f->swapped[1] && f->swapped[2]);
}

static void test_undo_of_the_rows_retried(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->prepare_fails_at = 1;
	f->delete_failures = TAKE_TRIES - 1;
	assert_errno(run(f, &t), -ENOSPC);
	assert_trace(f, "insert prepare0 prepare1 undo0 delete delete delete");
	assert_errno(t.undo_rc, 0);
	assert_nothing_left(f);
}

static void test_undo_of_the_rows_fails(void **state)
{
	struct fake *f = *state;
	struct take t;

	f->prepare_fails_at = 2;
	f->delete_failures = TAKE_TRIES;
	/* the take's own failure is what the caller gets; the undo's is
	 * reported beside it */
	assert_errno(run(f, &t), -ENOSPC);
	assert_trace(f, "insert prepare0 prepare1 prepare2 undo1 undo0 delete delete delete");
	assert_int_equal(t.failed, TAKE_STEP_PREPARE);
	assert_errno(t.undo_rc, -EIO);
	assert_false(t.exists);
	assert_rows_creating(f); /* for recovery to roll back */
	assert_false(f->prepared[0] || f->prepared[1] || f->prepared[2]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_step_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows_refused_nothing_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_of_each_disk_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_swap_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_disk_swap_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap_fails_after_another, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap_fails_after_the_switch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_after_swap_puts_the_disks_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_of_the_rows_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_of_the_rows_fails, setup, teardown),
	};

	return cmocka_run_group_tests_name("take", tests, NULL, NULL);
}
