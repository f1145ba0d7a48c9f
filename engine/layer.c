/*
 * layer.c - the layers under PRIMARY/.snapfs and how they are folded.
 *
 * A volume is a chain: base layer <- layer <- ... <- PRIMARY/vol.qcow2.
 * Each snapshot on primary storage owns one layer (the volume frozen at
 * its mkdir).  When a snapshot leaves primary storage (rmdir, or the
 * keep_primary rule after its backup), its layer L is unreferenced and is
 * folded into its only child X, in a merge job:
 *
 *   mark L Merging; qemu-img commit -d X (X's data into L, X unchanged);
 *   link(L, .L.merge); rename(.L.merge, X)  -- the commit point;
 *   catalog: X's parent = L's parent, L Retired;
 *   after LAYER_RETIRE_GRACE_MS: unlink(L), L's row gone.
 *
 * Readers of X (a backup in flight) stay consistent throughout: X keeps
 * its clusters (-d), and what L gains is shadowed by X.  L is never read
 * on its own (no snapshot refers to it).  Whoever opens the chain reads
 * X's header and then opens L by name: one that read the old X just
 * before the rename still finds L (the same data, now a second name of
 * the new X) during the grace; without it, its open failed with ENOENT
 * (a backup, a clone or a VM start racing the merge).
 *
 * A crash leaves L Merging: recovery redoes the commit (idempotent) or,
 * if the rename happened (L's name gone, or the same file as X's),
 * finishes the catalog; Retired names are unlinked at once at mount.
 * L is folded into the volume file itself only while nothing writes it
 * (fold_into_volume), the same way: its name outlives the fold by the
 * same grace, under the volume's busy flag.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layer.h"
#include "events.h"
#include "fault.h"
#include "fsutil.h"
#include "paths.h"
#include "testpoint.h"
#include "volume.h"
#include "proc.h"
#include "log.h"

/* how long a folded layer's name outlives the fold (see above) */
#define LAYER_RETIRE_GRACE_MS 1000

/* Whether @volume_id has a layer no snapshot refers to (work to fold). */
static bool has_unreferenced_layer(struct snap_engine *eng, int64_t volume_id)
{
	GArray *layers = NULL;
	bool found = false;
	guint i;

	if (catalog_layer_list(eng->cat, volume_id, &layers) < 0)
		return true; /* let the job look */
	for (i = 0; i < layers->len && !found; i++) {
		struct catalog_layer *l = &g_array_index(layers, struct catalog_layer, i);

		found = l->state != LAYER_STATE_CREATING &&
			catalog_layer_referenced(eng->cat, l->uuid) == 0;
	}
	g_array_free(layers, TRUE);
	return found;
}

int layer_queue_merge(struct snap_engine *eng, int64_t volume_id)
{
	struct catalog_job job;

	if (!has_unreferenced_layer(eng, volume_id))
		return 0;

	if (catalog_job_find_merge(eng->cat, volume_id, JOB_STATE_QUEUED,
				   &job) == 0)
		return 0;
	memset(&job, 0, sizeof(job));
	job.kind = JOB_KIND_MERGE;
	job.volume_id = volume_id;
	job.state = JOB_STATE_QUEUED;
	return catalog_job_insert(eng->cat, &job);
}

int layer_prune_primary(struct snap_engine *eng, int64_t volume_id)
{
	GArray *snaps = NULL;
	unsigned kept = 0;
	bool released = false;
	int rc, i;

	rc = catalog_snapshot_list(eng->cat, volume_id, SNAP_STATE_BACKED_UP,
				   &snaps);
	if (rc < 0)
		return rc;
	rc = 0;
	/* newest first: keep the first keep_primary that are on primary */
	for (i = (int)snaps->len - 1; i >= 0 && rc == 0; i--) {
		struct catalog_snapshot *s =
			&g_array_index(snaps, struct catalog_snapshot, i);

		if (!s->layer[0])
			continue;
		/* a clone or revert reads it here: released when they end */
		if (catalog_job_readers(eng->cat, s->id) != 0)
			continue;
		if (kept < eng->cfg.keep_primary) {
			kept++;
			continue;
		}
		s->layer[0] = '\0';
		rc = catalog_snapshot_update(eng->cat, s);
		if (rc == 0)
			event_record(eng, "primary.prune", s->volume, s->name, 0,
				     "removed from primary storage (keep_primary=%u); the backup remains",
				     eng->cfg.keep_primary);
		released = true;
	}
	g_array_free(snaps, TRUE);
	if (rc == 0 && released)
		rc = layer_queue_merge(eng, volume_id);
	return rc;
}

/*
 * Inside a transaction: the layers among @n at @layers whose parent is @l
 * hang from @l's parent instead, and @l is Retired.  Return: 0; -errno
 * from the catalog (the caller's transaction is rolled back).
 */
static int retire(struct snap_engine *eng, struct catalog_layer *l,
		  struct catalog_layer *layers, guint n)
{
	guint j;
	int rc = 0;

	for (j = 0; j < n && rc == 0; j++) {
		if (!strcmp(layers[j].parent, l->uuid)) {
			g_strlcpy(layers[j].parent, l->parent, sizeof(layers[j].parent));
			rc = catalog_layer_update(eng->cat, &layers[j]);
		}
	}
	if (rc == 0) {
		l->state = LAYER_STATE_RETIRED;
		l->parent[0] = '\0';
		rc = catalog_layer_update(eng->cat, l);
	}
	return rc;
}

/*
 * A merge of @l whose rename happened (L's name is gone, or is a second
 * name of its child's file): its children hang from L's parent, and L is
 * Retired (its name, if left, is unlinked later).  Used when the catalog
 * refused this right after the rename, and by recovery.
 */
static int merge_complete(struct snap_engine *eng, const struct catalog_volume *v,
			  struct catalog_layer *l, GArray *layers,
			  const char *type)
{
	int rc = catalog_tx_begin(eng->cat);

	if (rc < 0)
		return rc;
	rc = retire(eng, l, &g_array_index(layers, struct catalog_layer, 0),
		    layers->len);
	if (rc == 0)
		event_record(eng, type, v->name, NULL, 0,
			     "finished an interrupted merge of layer %s", l->uuid);
	return catalog_tx_end(eng->cat, rc);
}

/* The temporary second name of Merging @uuid, renamed over its child. */
static char *merge_tmp_path(struct snap_engine *eng, const char *vol,
			    const char *uuid)
{
	g_autofree char *dir = layer_dir(eng, vol);

	return g_strdup_printf("%s/.%s.merge", dir, uuid);
}

/*
 * Whether the rename of Merging @l over its child happened: L's name is
 * gone (a merge before retired names existed), or names the same file as
 * its child's.
 */
static bool merge_renamed(struct snap_engine *eng, const struct catalog_volume *v,
			  const struct catalog_layer *l, GArray *layers)
{
	g_autofree char *lpath = layer_path(eng, v->name, l->uuid);
	struct stat ls, cs;
	guint j;

	if (lstat(lpath, &ls) < 0)
		return errno == ENOENT;
	for (j = 0; j < layers->len; j++) {
		const struct catalog_layer *c =
			&g_array_index(layers, struct catalog_layer, j);
		g_autofree char *cpath = NULL;

		if (strcmp(c->parent, l->uuid) != 0)
			continue;
		cpath = layer_path(eng, v->name, c->uuid);
		if (lstat(cpath, &cs) == 0 && cs.st_dev == ls.st_dev &&
		    cs.st_ino == ls.st_ino)
			return true;
	}
	return false;
}

/* Unlink the name of Retired @l and drop its row.  0 or -errno. */
static int retire_finish(struct snap_engine *eng, const struct catalog_volume *v,
			 const struct catalog_layer *l)
{
	g_autofree char *lpath = layer_path(eng, v->name, l->uuid);
	g_autofree char *dir = layer_dir(eng, v->name);
	int rc;

	if (unlink(lpath) < 0 && errno != ENOENT) {
		rc = -errno;
		snap_log(LOG_ERR, "layer: cannot unlink the folded layer '%s': %m", lpath);
		return rc;
	}
	fsync_dir(dir);
	return catalog_layer_delete(eng->cat, l->uuid);
}

/* Sleep out the grace of a retired name.  0, or -ECANCELED. */
static int retire_grace(GCancellable *cancel)
{
	gint64 end = g_get_monotonic_time() +
		     LAYER_RETIRE_GRACE_MS * G_TIME_SPAN_MILLISECOND;

	while (g_get_monotonic_time() < end) {
		if (cancel && g_cancellable_is_cancelled(cancel))
			return -ECANCELED;
		g_usleep(20 * G_TIME_SPAN_MILLISECOND);
	}
	return 0;
}

/*
 * Unlink the names of @v's Retired layers, after the grace unless
 * @waited (the caller slept it out since the last one retired).
 * Return: 0, -ECANCELED (they stay, for recovery), or -errno.
 */
static int retire_sweep(struct snap_engine *eng, const struct catalog_volume *v,
			GCancellable *cancel, bool waited)
{
	GArray *layers = NULL;
	guint i;
	int rc;

	rc = catalog_layer_list(eng->cat, v->id, &layers);
	if (rc < 0)
		return rc;
	rc = 0;
	for (i = 0; i < layers->len && rc == 0; i++) {
		const struct catalog_layer *l =
			&g_array_index(layers, struct catalog_layer, i);

		if (l->state != LAYER_STATE_RETIRED)
			continue;
		testpoint("layer.merge.retired");
		if (!waited) {
			rc = retire_grace(cancel);
			waited = true;
		}
		if (rc == 0)
			rc = retire_finish(eng, v, l);
	}
	g_array_free(layers, TRUE);
	return rc;
}

/*
 * Give @target the file of @lpath while @lpath keeps its name: link it to
 * @tmp (a leftover of an earlier try goes first), then rename @tmp over
 * @target, the commit point (fault point @point).  On failure nothing
 * visible changed and @tmp is gone.  0 or -errno.
 */
static int link_over(const char *lpath, const char *tmp, const char *target,
		     const char *point)
{
	int rc;

	unlink(tmp);
	if (link(lpath, tmp) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "layer: cannot link '%s' to '%s': %m", lpath, tmp);
		return rc;
	}
	if (fault(point, EIO) || rename(tmp, target) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "layer: cannot rename '%s': %m", tmp);
		unlink(tmp);
		return rc;
	}
	return 0;
}

static bool layer_referenced(struct snap_engine *eng, const char *uuid)
{
	/* an error counts as referenced: never fold what may be in use */
	return catalog_layer_referenced(eng->cat, uuid) != 0;
}

/* Fold @l into its only child @x (both of volume @v); @l ends Retired. */
static int merge_one(struct snap_engine *eng, const struct catalog_volume *v,
		     struct catalog_layer *l, struct catalog_layer *x,
		     GCancellable *cancel)
{
	g_autofree char *lpath = layer_path(eng, v->name, l->uuid);
	g_autofree char *xpath = layer_path(eng, v->name, x->uuid);
	g_autofree char *tmp = merge_tmp_path(eng, v->name, l->uuid);
	g_autofree char *dir = layer_dir(eng, v->name);
	g_auto(GStrv) argv = image_argv_commit(xpath);
	int rc;

	l->state = LAYER_STATE_MERGING;
	rc = catalog_layer_update(eng->cat, l);
	if (rc < 0)
		return rc;
	rc = proc_run(argv, cancel, NULL, NULL);
	if (rc == 0)
		rc = fsync_path(lpath);
	/*
	 * X's name changes file here.  Whoever opens the chain through snapfs
	 * (a VM start, a take) holds the volume's busy flag while it does; any
	 * other opener that read the old X finds L's name until the sweep.
	 */
	if (rc == 0) {
		volume_busy_begin(eng, v->id);
		rc = link_over(lpath, tmp, xpath, "rename.merge");
		volume_busy_end(eng, v->id);
	}
	if (rc < 0) {
		/* nothing visible changed; L stays, live, for a later try */
		l->state = LAYER_STATE_LIVE;
		catalog_layer_update(eng->cat, l);
		return rc;
	}
	fsync_dir(dir);
	testpoint("layer.merge.renamed");

	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc;
	rc = retire(eng, l, x, 1); /* @x, the only child, hangs from L's parent */
	if (rc == 0)
		event_record(eng, "layer.merge", v->name, NULL, 0,
			     "layer %s folded into %s", l->uuid, x->uuid);
	return catalog_tx_end(eng->cat, rc);
}

/*
 * Fold unreferenced @l, the backing of the volume file V, into V, the way
 * a merge does it: `qemu-img commit -d` of V into L (V unchanged, L gains
 * what V holds), link(L, .L.merge), rename(.L.merge, V), the commit
 * point, then the catalog (L Retired), and after the grace unlink(L).
 * Never in place: an in-place `qemu-img rebase` cut by kill -9 lost the
 * layer's data (qemu-img's L2 updates lived in its memory while the
 * header already named no backing file).  A crash before the rename
 * leaves V as it was; after it, V is whole, recovery sets the top layer
 * from V's backing name and unlinks L's name.  Runs only while nothing
 * has V open for writing, holding the volume's busy flag and a lock that
 * makes any qemu opening V for writing fail meanwhile (its writes would
 * go to the replaced file).  The busy flag is held through the grace, so
 * no take links V while L's name is a second link to it.  It runs again
 * when a VM stops or at mount.  Return: 1 folded, 0 skipped, -errno.
 */
static int fold_into_volume(struct snap_engine *eng,
			    const struct catalog_volume *v,
			    struct catalog_layer *l, GCancellable *cancel)
{
	g_autofree char *vpath = volume_path(eng, v->name);
	g_autofree char *lpath = layer_path(eng, v->name, l->uuid);
	g_autofree char *tmp = merge_tmp_path(eng, v->name, l->uuid);
	g_autofree char *dir = layer_dir(eng, v->name);
	g_auto(GStrv) argv = image_argv_commit(vpath);
	struct catalog_volume now;
	struct stat st;
	int rc, deny = -1;

	volume_busy_begin(eng, v->id);
	rc = catalog_volume_get_by_id(eng->cat, v->id, &now);
	if (rc < 0 || strcmp(now.top_layer, l->uuid) != 0 ||
	    volume_in_use(vpath) != 0 || (deny = volume_deny_writers(vpath)) < 0) {
		volume_busy_end(eng, v->id);
		return rc < 0 ? rc : 0;
	}
	/* Merging: a commit cut by a crash is known at the next mount */
	l->state = LAYER_STATE_MERGING;
	rc = catalog_layer_update(eng->cat, l);
	if (rc == 0)
		rc = proc_run(argv, NULL, NULL, NULL);
	if (rc == 0)
		rc = fsync_path(lpath);
	if (rc == 0 && lstat(vpath, &st) == 0 &&
	    (chown(lpath, st.st_uid, st.st_gid) < 0 || chmod(lpath, st.st_mode & 07777) < 0))
		snap_log(LOG_WARNING, "layer: cannot copy the owner of '%s'", vpath);
	if (rc == 0)
		rc = link_over(lpath, tmp, vpath, "rename.fold");
	close(deny);
	if (rc < 0 && l->state == LAYER_STATE_MERGING) {
		/* nothing visible changed; L stays, live, for a later try */
		l->state = LAYER_STATE_LIVE;
		catalog_layer_update(eng->cat, l);
	}
	if (rc == 0) {
		fsync_dir(eng->primary);
		fsync_dir(dir);
		rc = catalog_tx_begin(eng->cat);
		if (rc == 0) {
			g_strlcpy(now.top_layer, l->parent, sizeof(now.top_layer));
			rc = catalog_volume_update(eng->cat, &now);
			if (rc == 0) {
				l->state = LAYER_STATE_RETIRED;
				l->parent[0] = '\0';
				rc = catalog_layer_update(eng->cat, l);
			}
			if (rc == 0)
				event_record(eng, "layer.merge", v->name, NULL, 0,
					     "layer %s folded into the volume file", l->uuid);
			rc = catalog_tx_end(eng->cat, rc);
		}
		/*
		 * (A refused catalog: recovery reads the top layer from the
		 * file and drops L's name.)  After the grace every retired
		 * name of the volume goes, L's and those of merges just
		 * before, which may be links to the file that is now the
		 * volume file: no take may meet it with two links.
		 */
		if (rc == 0) {
			testpoint("layer.fold.retired");
			rc = retire_grace(cancel);
			if (rc == 0)
				rc = retire_sweep(eng, v, cancel, true);
		}
	}
	volume_busy_end(eng, v->id);
	if (rc < 0)
		return rc == -EBUSY ? 0 : rc;
	return 1;
}

/* One step: fold or drop one unreferenced layer. 1 done, 0 none, -errno. */
static int merge_step(struct snap_engine *eng, const struct catalog_volume *v,
		      GCancellable *cancel)
{
	GArray *layers = NULL;
	guint i, j;
	int rc = 0;

	rc = catalog_layer_list(eng->cat, v->id, &layers);
	if (rc < 0)
		return rc;
	rc = 0;
	for (i = 0; i < layers->len && rc == 0; i++) {
		struct catalog_layer *l =
			&g_array_index(layers, struct catalog_layer, i);
		struct catalog_layer *child = NULL;
		int children = 0;

		if (l->state == LAYER_STATE_CREATING ||
		    l->state == LAYER_STATE_RETIRED ||
		    layer_referenced(eng, l->uuid))
			continue;
		if (l->state == LAYER_STATE_MERGING &&
		    merge_renamed(eng, v, l, layers)) {
			/* a merge whose catalog change failed after its rename */
			rc = merge_complete(eng, v, l, layers, "layer.merge");
			rc = rc < 0 ? rc : 1;
			break;
		}
		for (j = 0; j < layers->len; j++) {
			struct catalog_layer *c =
				&g_array_index(layers, struct catalog_layer, j);

			if (!strcmp(c->parent, l->uuid)) {
				children++;
				child = c;
			}
		}
		if (!strcmp(v->top_layer, l->uuid)) {
			/* the volume file's own backing */
			if (children == 0)
				rc = fold_into_volume(eng, v, l, cancel);
			continue;
		}
		if (children == 0) {
			g_autofree char *lpath = layer_path(eng, v->name, l->uuid);

			if (unlink(lpath) < 0 && errno != ENOENT) {
				rc = -errno;
				break;
			}
			rc = catalog_layer_delete(eng->cat, l->uuid);
			rc = rc < 0 ? rc : 1;
		} else if (children == 1 && child->state == LAYER_STATE_LIVE) {
			rc = merge_one(eng, v, l, child, cancel);
			rc = rc < 0 ? rc : 1;
		}
	}
	g_array_free(layers, TRUE);
	return rc;
}

int layer_merge_run(struct snap_engine *eng, struct running_job *rj)
{
	struct catalog_volume v;
	bool have_v = false;
	int rc;

	rc = catalog_volume_get_by_id(eng->cat, rj->job.volume_id, &v);
	while (rc == 0 || rc == 1) {
		if (g_cancellable_is_cancelled(rj->cancel))
			return -ECANCELED; /* stays RUNNING; requeued at start */
		rc = catalog_volume_get_by_id(eng->cat, rj->job.volume_id, &v);
		if (rc < 0)
			break;
		have_v = true;
		rc = merge_step(eng, &v, rj->cancel);
		if (rc == 0)
			break;
	}
	/* what the steps before a failed one retired goes too */
	if (have_v && rc != -ECANCELED) {
		int sweep = retire_sweep(eng, &v, rj->cancel, false);

		if (rc == 0 || sweep == -ECANCELED)
			rc = sweep;
	}
	if (rc == -ECANCELED)
		return rc;
	if (rc < 0)
		event_record(eng, "layer.merge", v.name, NULL, rc,
			     "folding unreferenced layers failed; retried at the next snapshot or mount");
	catalog_job_delete(eng->cat, rj->job.id);
	return rc;
}

int layer_recover(struct snap_engine *eng)
{
	GArray *layers = NULL;
	guint i;
	int rc;

	rc = catalog_layer_list(eng->cat, -1, &layers);
	if (rc < 0)
		return rc;
	for (i = 0; i < layers->len; i++) {
		struct catalog_layer *l =
			&g_array_index(layers, struct catalog_layer, i);
		g_autofree char *tmp = NULL;
		struct catalog_volume v;

		if (l->state != LAYER_STATE_MERGING)
			continue;
		if (catalog_volume_get_by_id(eng->cat, l->volume_id, &v) < 0)
			continue;
		tmp = merge_tmp_path(eng, v.name, l->uuid);
		unlink(tmp);
		if (!merge_renamed(eng, &v, l, layers)) {
			/*
			 * The rename did not happen: the merge (or fold) runs
			 * again.  Its cut commit may have left clusters in L
			 * that no table points to; the next commit would carry
			 * them into the file it renames, so they go now.
			 */
			g_autofree char *lpath = layer_path(eng, v.name, l->uuid);
			g_auto(GStrv) repair = image_argv_repair_leaks(lpath);

			if (proc_run(repair, NULL, NULL, NULL) < 0)
				snap_log(LOG_WARNING, "layer: could not repair leaked clusters of '%s'",
					 lpath);
			l->state = LAYER_STATE_LIVE;
			catalog_layer_update(eng->cat, l);
			event_record(eng, "recovery.merge", v.name, NULL, 0,
				     "interrupted merge of layer %s will run again",
				     l->uuid);
			continue;
		}
		merge_complete(eng, &v, l, layers, "recovery.merge");
	}
	g_array_free(layers, TRUE);

	/*
	 * No one reads an old chain across a restart: retired names go now,
	 * and so does the name of a layer folded into its volume file whose
	 * catalog change a crash cut (unreferenced, and the same file as the
	 * volume's; the top layer is then read from the file, revert.c).
	 * Temporary names of cut merges and folds go too.
	 */
	rc = catalog_layer_list(eng->cat, -1, &layers);
	if (rc < 0)
		return rc;
	for (i = 0; i < layers->len; i++) {
		const struct catalog_layer *l =
			&g_array_index(layers, struct catalog_layer, i);
		g_autofree char *tmp = NULL;
		struct catalog_volume v;

		if (catalog_volume_get_by_id(eng->cat, l->volume_id, &v) < 0)
			continue;
		tmp = merge_tmp_path(eng, v.name, l->uuid);
		unlink(tmp);
		if (l->state == LAYER_STATE_RETIRED) {
			retire_finish(eng, &v, l);
		} else if (l->state == LAYER_STATE_LIVE && !layer_referenced(eng, l->uuid)) {
			g_autofree char *lpath = layer_path(eng, v.name, l->uuid);
			g_autofree char *vpath = volume_path(eng, v.name);
			struct stat a, b;

			if (lstat(lpath, &a) == 0 && lstat(vpath, &b) == 0 &&
			    a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
			    retire_finish(eng, &v, l) == 0)
				event_record(eng, "recovery.merge", v.name, NULL, 0,
					     "finished an interrupted fold of layer %s into the volume file",
					     l->uuid);
		}
	}
	g_array_free(layers, TRUE);
	return 0;
}
