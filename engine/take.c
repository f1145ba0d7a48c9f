/*
 * take.c - the take sequence (take.h): rows as Creating, freeze each disk,
 * commit, or undo in reverse order.  It knows no file, no VM and no row of
 * its own: the caller's steps do (struct take_ops), so that this file
 * links with the catalog alone and its undo paths are unit-tested
 * (tests/unit/test_take.c).
 */
#include <errno.h>
#include <glib.h>

#include "take.h"
#include "catalog.h"
#include "errname.h"
#include "testpoint.h"
#include "log.h"

static void point(const char *name)
{
	if (name)
		testpoint(name);
}

/* @rows in a transaction, asked up to TAKE_TRIES times while refused. */
static int rows_tx(struct take *t, int (*rows)(struct take *t))
{
	int attempt, rc = 0;

	for (attempt = 0; attempt < TAKE_TRIES; attempt++) {
		if (attempt)
			g_usleep(TAKE_RETRY_MS * 1000);
		rc = catalog_tx_begin(t->cat);
		if (rc < 0)
			continue;
		rc = catalog_tx_end(t->cat, rows(t));
		if (rc == 0)
			return 0;
	}
	return rc;
}

/* Before the commit point: undo the switch (@switch_done), disks
 * [0, @prepared) from the last, then the rows. */
static void undo(struct take *t, unsigned prepared, bool switch_done)
{
	int rc;

	if (switch_done && t->ops->switch_undo)
		t->ops->switch_undo(t);
	while (prepared-- > 0)
		t->ops->disk_undo(t, prepared);
	rc = rows_tx(t, t->ops->rows_delete);
	if (rc < 0) {
		snap_log(LOG_ERR, "take: cannot remove the rows of an undone take: %s; they stay Creating and the next mount rolls them back",
			 errno_name(rc));
		t->undo_rc = rc;
	}
}

static int fail(struct take *t, enum take_step step, unsigned k, int rc)
{
	t->failed = step;
	t->failed_disk = k;
	return rc;
}

int take_run(struct take *t)
{
	const struct take_ops *ops = t->ops;
	unsigned k, prepared, swapped = 0;
	int rc, r;

	t->switched = false;
	t->failed = TAKE_STEP_NONE;
	t->failed_disk = 0;
	t->exists = false;
	t->undo_rc = 0;

	rc = catalog_tx_begin(t->cat);
	if (rc == 0)
		rc = catalog_tx_end(t->cat, ops->rows_insert(t));
	if (rc < 0)
		return fail(t, TAKE_STEP_ROWS, 0, rc);

	for (prepared = 0; prepared < t->n; prepared++) {
		rc = ops->disk_prepare(t, prepared);
		if (rc < 0) {
			fail(t, TAKE_STEP_PREPARE, prepared, rc);
			goto undo;
		}
	}
	point(t->point_prepared);
	if (ops->switch_disks) {
		rc = ops->switch_disks(t);
		if (rc < 0) {
			t->switched = false; /* a failed switch undid itself */
			fail(t, TAKE_STEP_SWITCH, 0, rc);
			goto undo;
		}
	}
	point(t->point_switched);

	for (k = 0; k < t->n; k++) {
		r = ops->disk_swap(t, k);
		if (k == 0)
			point(t->point_first_swap);
		if (r == 0)
			swapped++;
		else if (rc == 0)
			fail(t, TAKE_STEP_SWAP, k, rc = r);
	}
	if (ops->after_swap) {
		r = ops->after_swap(t);
		if (r < 0 && !t->switched) { /* it put every disk back */
			swapped = 0;
			fail(t, TAKE_STEP_AFTER_SWAP, 0, rc = r);
		}
	}
	if (swapped == 0 && !t->switched)
		goto undo; /* rc < 0: no disk could be swapped */

	t->exists = true;
	if (rc < 0) {
		snap_log(LOG_ERR, "take: disk %u of %u could not be swapped: %s; the snapshot exists, its rows stay Creating and the next mount completes it",
			 t->failed_disk + 1, t->n, errno_name(rc));
		return rc;
	}
	rc = rows_tx(t, ops->rows_commit);
	if (rc < 0) {
		snap_log(LOG_ERR, "take: the catalog refused to commit a taken snapshot %d times: %s; its rows stay Creating and the next mount completes it",
			 TAKE_TRIES, errno_name(rc));
		return fail(t, TAKE_STEP_COMMIT, 0, rc);
	}
	return 0;

undo:
	undo(t, prepared, t->failed > TAKE_STEP_SWITCH);
	return rc;
}
