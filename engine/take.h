/*
 * take.h - the take sequence: one snapshot of one or more disks, frozen at
 * one instant, shared by volume snapshots (snapshot.c) and VM snapshots
 * (vms.c), in the manner of libvirt's qemuSnapshotDiskContext (prepare,
 * one transaction, cleanup, whoever the caller).
 *
 * take_run() runs the steps below in this order; each caller plugs in what
 * is its own (which rows, how a disk is frozen, a running VM's switch or a
 * memory save, the events' text) as the steps of a struct take_ops:
 *
 *   1. rows_insert      in one catalog transaction: rows in state Creating
 *   2. disk_prepare     for each disk 0..n-1 (link the layer, make the
 *                       overlay); then test point @point_prepared
 *   3. switch_disks     optional: make a running VM write the overlays (or
 *                       save its memory); then test point @point_switched
 *   4. disk_swap        for each disk 0..n-1, each tried even when one
 *                       failed; test point @point_first_swap after disk 0
 *   5. after_swap       optional, always run after 4 (restore a VM from
 *                       its memory)
 *   6. rows_commit      in one catalog transaction: Creating -> live, the
 *                       event of success
 *
 * THE COMMIT POINT: the snapshot exists once a disk is swapped, or once
 * switch_disks said a process writes the overlays (t->switched).  Before
 * it, a failure undoes what was done, in reverse order: switch_undo (when
 * switch_disks succeeded), disk_undo of each prepared disk from the last
 * to the first, then rows_delete in a transaction; the caller's rows and
 * files are then as before take_run().  After it, nothing is undone: the
 * rows stay Creating when a swap failed, and rows_commit is asked again
 * when the catalog refuses (TAKE_TRIES transactions, TAKE_RETRY_MS apart);
 * the next mount's recovery completes a take left Creating (recover.c for
 * a volume, vms_recover() for a VM: a disk swapped, or switched in QEMU,
 * counts as frozen).
 *
 * A failed undo of the rows (the catalog refused rows_delete TAKE_TRIES
 * times) is logged once here and stored in t->undo_rc; the rows stay
 * Creating, with no file of the take left behind, and recovery rolls them
 * back at the next mount.  disk_undo and switch_undo cannot fail: they
 * log what they could not remove themselves.
 *
 * Calling sequence:
 *
 *	struct take t = { .cat = eng->cat, .ops = &my_ops, .arg = ctx,
 *			  .n = ndisks, .point_prepared = "x.take.prepared" };
 *	rc = take_run(&t);
 *	if (rc < 0)
 *		... t.failed says which step failed (t.failed_disk which
 *		    disk), t.exists whether the snapshot exists anyway ...
 *
 * The caller holds the busy flags of the disks' volumes across take_run()
 * and no lock: the steps run subprocesses and libvirt calls.  Not
 * thread-safe on one struct take; distinct takes may run at once.
 */
#ifndef SNAP_TAKE_H
#define SNAP_TAKE_H

#include <stdbool.h>

struct catalog;
struct take;

/* transactions of a commit (or of the undo of the rows) before giving up */
#define TAKE_TRIES 3
#define TAKE_RETRY_MS 100

/* the step of take_run() that failed */
enum take_step {
	TAKE_STEP_NONE,	      /* none: the take succeeded */
	TAKE_STEP_ROWS,	      /* the rows' transaction or rows_insert */
	TAKE_STEP_PREPARE,    /* disk_prepare of disk t->failed_disk */
	TAKE_STEP_SWITCH,     /* switch_disks */
	TAKE_STEP_SWAP,	      /* disk_swap of disk t->failed_disk (the first) */
	TAKE_STEP_AFTER_SWAP, /* after_swap, which put the disks back */
	TAKE_STEP_COMMIT,     /* the commit's transactions, TAKE_TRIES times */
	TAKE_STEP_LAST,
};

/*
 * The caller's steps.  Each gets the struct take (its @arg is the
 * caller's); @k is a disk's index, 0..n-1.  A step returning -errno has
 * undone whatever it did itself (a failed disk_prepare leaves nothing of
 * disk @k); it logs its cause where the cause is known.
 */
struct take_ops {
	/* inside a transaction take_run() opened: the rows, Creating.
	 * Return: 0; -errno (-EEXIST, -EDQUOT...: the caller's to tell) */
	int (*rows_insert)(struct take *t);
	/* inside a transaction: delete what rows_insert inserted */
	int (*rows_delete)(struct take *t);
	/* freeze disk @k up to its swap; disk_undo(@k) undoes a success */
	int (*disk_prepare)(struct take *t, unsigned k);
	void (*disk_undo)(struct take *t, unsigned k);
	/* optional (NULL: none).  Set t->switched when, on success, a process
	 * writes the overlays (past the commit point).  switch_undo (optional)
	 * undoes a success when a later step fails before the commit point */
	int (*switch_disks)(struct take *t);
	void (*switch_undo)(struct take *t);
	/* rename disk @k's overlay in: the commit point of that disk */
	int (*disk_swap)(struct take *t, unsigned k);
	/* optional.  Return: 0; -errno only when it put every swapped disk
	 * back as it was before its swap (then take_run() undoes the rest and
	 * the take fails with that -errno) */
	int (*after_swap)(struct take *t);
	/* inside a transaction: Creating -> live, the event of success.
	 * Asked again, in a new transaction, when the catalog refuses */
	int (*rows_commit)(struct take *t);
};

struct take {
	/* set by the caller before take_run(); borrowed */
	struct catalog *cat;
	const struct take_ops *ops;
	void *arg;			/* the caller's context */
	unsigned n;			/* disks, at least 1 */
	const char *point_prepared;	/* test points (testpoint.h) or NULL */
	const char *point_switched;
	const char *point_first_swap;

	/* set by switch_disks: a process writes the overlays */
	bool switched;

	/* set by take_run() */
	enum take_step failed;	/* TAKE_STEP_NONE on success */
	unsigned failed_disk;	/* with PREPARE, SWAP */
	bool exists;		/* past the commit point, even on failure */
	int undo_rc;		/* 0, or -errno: the rows' undo failed */
};

/**
 * take_run() - run the take sequence of @t (see the top of this file).
 *
 * Blocks (the steps run subprocesses, libvirt calls; a refused commit is
 * retried TAKE_RETRY_MS later).  Holds the catalog's lock only inside its
 * two transactions, across rows_insert/rows_delete/rows_commit.
 * Return: 0, the snapshot is taken and its rows committed; -errno, the
 * first failure, and t->failed says which step: before the commit point
 * everything was undone (t->exists false; t->undo_rc when the rows' undo
 * failed); after it (t->exists) the rows are left Creating for recovery.
 */
int take_run(struct take *t);

#endif
