/*
 * revert.c - put a volume back to one of its snapshots: `revert <snap>`
 * written to volumes/<vol>/control.
 *
 * DESIGN: synchronous (the write returns when the volume holds the
 * snapshot's data), under the volume's busy flag, so no take, merge
 * rename or VM start runs on the volume meanwhile.  A running VM using
 * the volume, or any other writer (qemu's image lock), refuses it: EBUSY.
 *
 *   snapshot on primary:   qemu-img create an empty overlay over the
 *                          snapshot's layer, rename it onto the volume file
 *                          (instant; the same step a VM revert does)
 *   only on secondary:     qemu-img convert the backup into
 *                          PRIMARY/.snapfs/.tmp/revert-<job>.qcow2, fsync,
 *                          verify, rename it onto the volume file (the
 *                          volume file is then standalone)
 *
 * The rename is the commit point; the catalog's top layer follows it.
 * What the volume file held since its last snapshot is discarded; every
 * snapshot keeps its own layer or backup, so snapshots taken after the
 * one reverted to stay whole (they can be reverted to, cloned, backed up,
 * deleted).  Layers nothing refers to any more are folded or dropped by
 * the usual merge job.
 *
 * While it runs, a job (kind REVERT, RUNNING, never claimed by the
 * scheduler) names the snapshot, so an rmdir of it fails with EBUSY and
 * jobs/ shows the copy's progress.  After a crash, recovery drops that
 * job and makes the catalog's top layer the one the volume file is really
 * backed by: the revert either happened (rename done) or not.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "revert.h"
#include "events.h"
#include "fault.h"
#include "fsutil.h"
#include "layer.h"
#include "paths.h"
#include "backup.h"
#include "repo.h"
#include "snapshot.h"
#include "testpoint.h"
#include "vmdisk.h"
#include "volume.h"
#include "wake.h"
#include "copy.h"
#include "proc.h"
#include "log.h"

/* The new file of a volume gets the old one's owner and mode. */
static void copy_owner(const char *from, const char *to)
{
	struct stat st;

	if (lstat(from, &st) == 0 &&
	    (chown(to, st.st_uid, st.st_gid) < 0 || chmod(to, st.st_mode & 07777) < 0))
		snap_log(LOG_WARNING, "revert: cannot copy the owner of '%s'", from);
}

/* rename @tmp onto the volume file and make @top the catalog's top layer */
static int replace_volume_file(struct snap_engine *eng, int64_t volume_id,
			       const char *vpath, const char *tmp,
			       const char *top)
{
	struct catalog_volume v;
	int rc;

	copy_owner(vpath, tmp);
	rc = fsync_path(tmp);
	if (rc == 0 && (fault("rename.revert", EIO) || rename(tmp, vpath) < 0)) {
		rc = -errno;
		snap_log(LOG_ERR, "revert: cannot rename '%s': %m", tmp);
	}
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	fsync_dir(eng->primary);
	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc; /* recovery sets the top layer from the file */
	rc = catalog_volume_get_by_id(eng->cat, volume_id, &v);
	if (rc == 0) {
		g_strlcpy(v.top_layer, top, sizeof(v.top_layer));
		rc = catalog_volume_update(eng->cat, &v);
	}
	if (rc == 0)
		rc = layer_queue_merge(eng, volume_id);
	return catalog_tx_end(eng->cat, rc);
}

int volume_revert_to_layer(struct snap_engine *eng, int64_t volume_id,
			   const char *vol, const char *layer)
{
	g_autofree char *vpath = volume_path(eng, vol);
	g_autofree char *lpath = layer_path(eng, vol, layer);
	g_autofree char *rnd = g_uuid_string_random();
	g_autofree char *tmp = freeze_tmp_path(eng, vol, rnd);
	g_auto(GStrv) argv = NULL;
	struct qcow2_header hdr;
	int rc;

	rc = volume_read_header(lpath, &hdr);
	if (rc < 0)
		return rc;
	argv = image_argv_overlay(lpath, tmp, hdr.virtual_size);
	rc = proc_run(argv, NULL, NULL, NULL);
	if (rc < 0)
		return rc;
	return replace_volume_file(eng, volume_id, vpath, tmp, layer);
}

/* Copy the backup of @s into primary storage and make it the volume file. */
static int revert_from_backup(struct snap_engine *eng, struct running_job *rj,
			      const struct catalog_snapshot *s, GString *why)
{
	g_autofree char *src = backup_image_path(eng, s);
	g_autofree char *vpath = volume_path(eng, s->volume);
	g_autofree char *tmp = g_strdup_printf("%s/revert-%" G_GINT64_FORMAT ".qcow2",
					       eng->ptmp_dir, rj->job.id);
	int rc;

	if (backup_indexed(s))
		rc = repo_restore(eng, rj, s, tmp, why);
	else
		rc = copy_image(rj, src, tmp, s->virtual_size, "primary", why);
	if (rc == 0)
		rc = copy_verify(tmp, rj->cancel, s->virtual_size, why);
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	testpoint("volume.revert.copied");
	rc = replace_volume_file(eng, s->volume_id, vpath, tmp, "");
	if (rc < 0)
		g_string_printf(why, "cannot replace the volume file: %s",
				g_strerror(-rc));
	return rc;
}

/* Refuse when something writes the volume. 0, or -EBUSY with an event. */
static int revert_check_idle(struct snap_engine *eng, const char *vol,
			     const char *target)
{
	g_autofree char *vpath = volume_path(eng, vol);
	struct vm_user user;

	if (volume_in_use(vpath) == 0)
		return 0;
	if (vmdisk_user_find(eng, vol, &user) == 0)
		event_reject(eng, "write", target, EBUSY,
			     "revert: the VM '%s' using the volume is running; stop it first",
			     user.vm);
	else
		event_reject(eng, "write", target, EBUSY,
			     "revert: another process has the volume open for writing");
	return -EBUSY;
}

/* Register the revert as a job reading @s (rmdir sees it). */
static int revert_job_begin(struct snap_engine *eng,
			    struct catalog_snapshot *s, struct catalog_job *job)
{
	int rc = catalog_tx_begin(eng->cat);

	if (rc < 0)
		return rc;
	rc = catalog_snapshot_get_by_id(eng->cat, s->id, s);
	if (rc == 0 && s->state == SNAP_STATE_DESTROYING)
		rc = -ENOENT;
	if (rc == 0) {
		memset(job, 0, sizeof(*job));
		job->kind = JOB_KIND_REVERT;
		job->snapshot_id = s->id;
		job->volume_id = s->volume_id;
		job->state = JOB_STATE_RUNNING;
		rc = catalog_job_insert(eng->cat, job);
	}
	return catalog_tx_end(eng->cat, rc);
}

/*
 * Drop the revert's job row: while it is there the snapshot counts as read
 * (rmdir EBUSY).  A catalog that refuses is asked again; if it still
 * refuses, the next start drops the row (revert_recover()).
 */
static void revert_job_end(struct snap_engine *eng, int64_t id)
{
	int i;

	for (i = 0; i < 3; i++) {
		if (catalog_job_delete(eng->cat, id) == 0)
			return;
		g_usleep(100 * 1000);
	}
}

static int revert_busy(struct snap_engine *eng, const char *vol,
			 struct catalog_snapshot *s, const char *target)
{
	g_autoptr(GString) why = g_string_new(NULL);
	g_autofree char *lpath = NULL;
	struct running_job *rj;
	struct catalog_job job;
	const char *from;
	struct stat st;
	int rc;

	rc = revert_check_idle(eng, vol, target);
	if (rc < 0)
		return rc;
	rc = revert_job_begin(eng, s, &job);
	if (rc < 0) {
		if (rc == -ENOENT)
			event_reject(eng, "write", target, ENOENT,
				     "revert: the snapshot is being deleted");
		else
			event_reject(eng, "write", target, -rc,
				     "revert: the catalog refused it; the volume is unchanged");
		return rc;
	}
	rj = running_job_track(eng, &job);
	if (s->layer[0])
		lpath = layer_path(eng, vol, s->layer);
	if (lpath && lstat(lpath, &st) == 0) {
		from = "primary";
		rc = volume_revert_to_layer(eng, s->volume_id, vol, s->layer);
		if (rc < 0)
			g_string_printf(why, "cannot put an overlay over the snapshot's layer: %s",
					g_strerror(-rc));
	} else if (s->state == SNAP_STATE_BACKED_UP) {
		from = "secondary";
		rc = revert_from_backup(eng, rj, s, why);
	} else if (s->state == SNAP_STATE_DAMAGED) {
		from = "secondary";
		rc = -EIO;
		g_string_printf(why, "the snapshot's backup is Damaged (a verify found a bad or missing chunk; see alerts/)");
		event_record(eng, "repository.damaged", s->volume, s->name, -EIO,
			     "revert refused: %s", why->str);
	} else {
		from = "no";
		rc = -EIO;
		g_string_printf(why, "the snapshot's data is on neither storage");
	}
	running_job_untrack(eng, rj);

	catalog_tx_begin(eng->cat);
	revert_job_end(eng, job.id);
	if (rc == 0)
		event_record(eng, "volume.revert", vol, s->name, 0,
			     "volume reverted to snapshot '%s' from %s storage",
			     s->name, from);
	else
		event_record(eng, "volume.revert", vol, s->name, rc,
			     "revert failed, the volume is unchanged: %s", why->str);
	catalog_tx_end(eng->cat, 0);
	return rc;
}

int snapshot_revert(struct snap_engine *eng, const char *vol, const char *snap)
{
	g_autofree char *target = g_strdup_printf("volumes/%s/control", vol);
	struct catalog_volume v;
	struct catalog_snapshot s;
	bool present;
	int rc;

	rc = snapshot_lookup(eng, vol, snap, &v, &s);
	if (rc < 0 || s.state == SNAP_STATE_DESTROYING) {
		event_reject(eng, "write", target, ENOENT, "revert: no such snapshot");
		return -ENOENT;
	}
	if (volume_resolve(eng, vol, &v, &present) < 0 || !present) {
		event_reject(eng, "write", target, ENOENT,
			     "revert: the volume file is missing from primary storage");
		return -ENOENT;
	}
	volume_busy_begin(eng, v.id);
	rc = revert_busy(eng, vol, &s, target);
	volume_busy_end(eng, v.id);
	wake_schedulers(eng);
	return rc;
}

/* ---- recovery ------------------------------------------------------------ */

/* The layer uuid a volume file's backing name points at; "" none, NULL foreign. */
static char *backing_layer(struct snap_engine *eng, const char *vol,
			   const char *backing)
{
	g_autofree char *dir = layer_dir(eng, vol);
	size_t n = strlen(dir);

	if (!backing[0])
		return g_strdup("");
	if (strncmp(backing, dir, n) != 0 || backing[n] != '/' ||
	    !g_str_has_suffix(backing, ".qcow2") || strchr(backing + n + 1, '/'))
		return NULL;
	return g_strndup(backing + n + 1, strlen(backing + n + 1) - strlen(".qcow2"));
}

/* Whether volume @v's file is backed by something else than its top layer
 * in the catalog; *@top_out (g_free) is the layer it is backed by. */
static bool file_moved(struct snap_engine *eng, const struct catalog_volume *v,
		       char **top_out)
{
	g_autofree char *vpath = volume_path(eng, v->name);
	struct qcow2_header hdr;
	struct catalog_layer l;
	char *top;

	*top_out = NULL;
	if (volume_read_header(vpath, &hdr) < 0)
		return false;
	top = backing_layer(eng, v->name, hdr.backing);
	if (!top || !strcmp(top, v->top_layer)) {
		g_free(top);
		return false;
	}
	if (top[0] && catalog_layer_get(eng->cat, top, &l) < 0) {
		snap_log(LOG_WARNING, "revert: volume '%s' is backed by '%s', a layer the catalog does not know",
			 v->name, hdr.backing);
		g_free(top);
		return false;
	}
	*top_out = top;
	return true;
}

static void recover_top_layer(struct snap_engine *eng, struct catalog_volume *v)
{
	g_autofree char *top = NULL;

	if (!file_moved(eng, v, &top))
		return;
	catalog_tx_begin(eng->cat);
	g_strlcpy(v->top_layer, top, sizeof(v->top_layer));
	catalog_volume_update(eng->cat, v);
	layer_queue_merge(eng, v->id);
	event_record(eng, "recovery.revert", v->name, NULL, 0,
		     "the volume file is backed by %s%s: catalog updated to match it",
		     top[0] ? "layer " : "no layer", top);
	catalog_tx_end(eng->cat, 0);
}

void revert_recover(struct snap_engine *eng)
{
	GArray *jobs = NULL, *vols = NULL;
	guint i;

	if (catalog_job_list(eng->cat, JOB_KIND_REVERT, &jobs) >= 0) {
		for (i = 0; i < jobs->len; i++) {
			struct catalog_job *j = &g_array_index(jobs, struct catalog_job, i);
			g_autofree char *top = NULL;
			struct catalog_snapshot s;
			struct catalog_volume v;
			bool done;

			if (catalog_snapshot_get_by_id(eng->cat, j->snapshot_id, &s) < 0 ||
			    catalog_volume_get_by_id(eng->cat, j->volume_id, &v) < 0) {
				catalog_job_delete(eng->cat, j->id);
				continue;
			}
			done = file_moved(eng, &v, &top);
			catalog_tx_begin(eng->cat);
			catalog_job_delete(eng->cat, j->id);
			if (done)
				event_record(eng, "recovery.revert", s.volume, s.name, 0,
					     "a revert to this snapshot interrupted by a crash had replaced the volume file: it is complete");
			else
				event_record(eng, "recovery.revert", s.volume, s.name, -EINTR,
					     "a revert to this snapshot was interrupted by a crash before it replaced the volume file: the volume is unchanged; revert again");
			catalog_tx_end(eng->cat, 0);
		}
		g_array_free(jobs, TRUE);
	}
	if (catalog_volume_all(eng->cat, &vols) >= 0) {
		for (i = 0; i < vols->len; i++)
			recover_top_layer(eng, &g_array_index(vols, struct catalog_volume, i));
		g_array_free(vols, TRUE);
	}
}
