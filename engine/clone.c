/*
 * clone.c - new volumes from a snapshot: `clone <snap> <newvol>` written
 * to volumes/<vol>/control.
 *
 * DESIGN: a clone is a full, standalone copy.  The request only checks
 * and queues a job (kind CLONE, the snapshot it reads, the new name as
 * its target); a pool worker then copies, in the manner of a backup:
 *
 *   qemu-img convert (snapshot's layer chain on primary, else its backup
 *                     on secondary)         -> PRIMARY/.snapfs/.tmp/clone-<job>.qcow2
 *   fsync, qemu-img check + info (standalone, right size), owner and mode
 *                                              of the source volume file
 *   renameat2(RENAME_NOREPLACE) to PRIMARY/<newvol>.qcow2, fsync the dir
 *   catalog: volume row, job gone, event         <- the volume exists
 *
 * So the new volume appears complete or not at all, and shares nothing
 * with its source: the source snapshot and volume can be deleted at once
 * afterwards.  Any number of clones of one snapshot may be queued; they
 * run side by side as workers allow and only read the snapshot.  While a
 * clone job of a snapshot exists, the snapshot stays where it is: rmdir is
 * refused with EBUSY (snapshot.c) and keep_primary does not release its
 * layer (layer.c), so nothing the copy reads is folded away.
 *
 * A crash leaves the job QUEUED again at the next start (recover.c) and
 * the partial copy is removed with PRIMARY/.snapfs/.tmp: the clone runs
 * again from the start.  A failure removes the copy, drops the job and
 * raises an alert (kind "clone"); the request can simply be repeated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clone.h"
#include "clock.h"
#include "errname.h"
#include "events.h"
#include "fault.h"
#include "fsutil.h"
#include "layer.h"
#include "paths.h"
#include "backup.h"
#include "repo.h"
#include "snapshot.h"
#include "testpoint.h"
#include "wake.h"
#include "copy.h"
#include "json.h"
#include "log.h"
#include "manifests.h"

static char *clone_tmp_path(struct snap_engine *eng, int64_t job_id)
{
	return g_strdup_printf("%s/clone-%" G_GINT64_FORMAT ".qcow2",
			       eng->ptmp_dir, job_id);
}

/*
 * Whether @newvol can be made: -EEXIST (with *@why) when a volume of that
 * name is listed (its file exists, or its snapshots do) or a clone or
 * restore to it is queued.  Inside the caller's transaction.
 */
static int newvol_free(struct snap_engine *eng, const char *newvol,
		       const char **why)
{
	struct snap_volume_stat other;
	struct catalog_job job;

	if (snap_volume_stat(eng, newvol, &other) == 0) {
		*why = "a volume of that name exists";
		return -EEXIST;
	}
	if (catalog_job_by_target(eng->cat, newvol, &job) == 0) {
		*why = "a clone or restore to that name is already queued";
		return -EEXIST;
	}
	return 0;
}

/*
 * The end both requests share, inside their transaction: refuse with @err
 * (> 0) and "@verb: @why", or queue @job (kind, target and what it reads
 * set by the caller) with the event @queued ("... queued (job N)"); then
 * end the transaction and wake the scheduler.
 */
static int clone_queue_end(struct snap_engine *eng, const char *target,
			   const char *verb, int err, const char *why,
			   struct catalog_job *job, const char *vol,
			   const char *snap, const char *queued)
{
	int rc;

	if (err) {
		event_reject(eng, "write", target, err, "%s: %s", verb, why);
		catalog_tx_end(eng->cat, 0); /* keeps the event */
		return -err;
	}
	job->kind = JOB_KIND_CLONE;
	job->state = JOB_STATE_QUEUED;
	rc = catalog_job_insert(eng->cat, job);
	if (rc == 0)
		event_record(eng, "clone.queue", vol, snap, 0,
			     "%s queued (job %" G_GINT64_FORMAT ")", queued,
			     job->id);
	rc = catalog_tx_end(eng->cat, rc);
	if (rc == 0)
		wake_schedulers(eng);
	else
		event_reject(eng, "write", target, -rc,
			     "%s: the catalog refused it; nothing queued", verb);
	return rc;
}

int snapshot_clone(struct snap_engine *eng, const char *vol, const char *snap,
		   const char *newvol)
{
	g_autofree char *target = g_strdup_printf("volumes/%s/control", vol);
	g_autofree char *queued = g_strdup_printf("clone into volumes/%s", newvol);
	struct catalog_volume v;
	struct catalog_snapshot s;
	struct catalog_job job = { 0 };
	const char *why = NULL;
	int rc, err = 0;

	if (snap_name_valid(newvol) < 0) {
		event_reject(eng, "write", target, EINVAL,
			     "clone: volume names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-'");
		return -EINVAL;
	}
	rc = catalog_tx_begin(eng->cat);
	if (rc < 0) {
		event_reject(eng, "write", target, -rc, "clone: the catalog refused it; nothing queued");
		return rc;
	}
	/* checked and queued in one transaction: a racing rmdir of the
	 * snapshot or a second clone to the same name sees the job */
	rc = snapshot_lookup(eng, vol, snap, &v, &s);
	if (rc < 0 || s.state == SNAP_STATE_DESTROYING) {
		err = ENOENT;
		why = "no such snapshot";
	} else if (!strcmp(newvol, vol)) {
		err = EEXIST;
		why = "a volume cannot be cloned onto itself";
	} else if ((rc = newvol_free(eng, newvol, &why)) < 0) {
		err = -rc;
	} else if (!s.layer[0] && s.state == SNAP_STATE_DAMAGED) {
		err = EIO;
		why = "the snapshot's backup is Damaged (a verify found a bad or missing chunk; see alerts/)";
	} else if (!s.layer[0] && s.state != SNAP_STATE_BACKED_UP) {
		err = EIO;
		why = "the snapshot's data is on neither storage";
	}
	if (!err) {
		job.snapshot_id = s.id;
		job.volume_id = v.id;
		g_strlcpy(job.target, newvol, sizeof(job.target));
	}
	return clone_queue_end(eng, target, "clone", err, why, &job, vol, snap,
			       queued);
}

int backup_restore(struct snap_engine *eng, const char *host, const char *vol,
		   const char *snap, const char *newvol)
{
	static const char target[] = "control";
	g_autofree char *queued = g_strdup_printf(
		"restore of host '%s''s backup into volumes/%s", host, newvol);
	struct catalog_snapshot s;
	struct catalog_job job = { 0 };
	const char *why = NULL;
	int rc, err = 0;

	/* this host's own backup: a clone of its snapshot, as its volume's
	 * control does */
	if (!strcmp(host, eng->host))
		return snapshot_clone(eng, vol, snap, newvol);
	/* read from SECONDARY before the catalog's lock is taken: a
	 * published backup never changes, and the job finds it by uuid */
	rc = foreign_backup(eng, host, vol, snap, &s);
	if (rc < 0) {
		event_reject(eng, "write", target, -rc, rc == -ENOENT ?
			     "restore: no such backup (see backed-up/hosts/)" :
			     "restore: cannot read the backups on secondary storage");
		return rc;
	}
	rc = catalog_tx_begin(eng->cat);
	if (rc < 0) {
		event_reject(eng, "write", target, -rc, "restore: the catalog refused it; nothing queued");
		return rc;
	}
	if ((rc = newvol_free(eng, newvol, &why)) < 0) {
		err = -rc;
	} else if (backup_indexed(&s) && !repo_chunks(eng)) {
		err = EOPNOTSUPP;
		why = "the backup is in the repository, and this mount has repository=off";
	}
	if (!err) {
		g_strlcpy(job.target, newvol, sizeof(job.target));
		g_snprintf(job.source, sizeof(job.source), "%s/%s/%s", host, vol,
			   s.uuid);
	}
	return clone_queue_end(eng, target, "restore", err, why, &job, vol, snap,
			       queued);
}

int clone_source(struct snap_engine *eng, const struct catalog_job *job,
		 struct catalog_snapshot *s)
{
	g_auto(GStrv) parts = NULL;

	if (!job->source[0])
		return catalog_snapshot_get_by_id(eng->cat, job->snapshot_id, s);
	parts = g_strsplit(job->source, "/", 3);
	if (g_strv_length(parts) != 3)
		return -ENOENT;
	return foreign_backup_by_uuid(eng, parts[0], parts[1], parts[2], s);
}

static int alert_raise_clone(struct snap_engine *eng, const struct catalog_job *job,
			     const struct catalog_snapshot *s, int err,
			     const char *why)
{
	g_autofree char *target = g_strdup_printf("volumes/%s", job->target);
	g_autofree char *what = g_strdup_printf(
		"clone into volumes/%s failed: %s", job->target, why);
	struct alert a = {
		.kind = "clone", .object_id = job->id, .target = target,
		.volume = s->volume, .snapshot = s->name,
		.new_volume = job->target, .err = err, .message = why,
		.attempts = -1, .what = what,
	};

	return alert_raise(eng, &a);
}

/* Copy the snapshot into tmp; the source is read where it is now. */
static int clone_copy(struct snap_engine *eng, struct running_job *rj,
		      const struct catalog_snapshot *s, const char *tmp,
		      GString *why)
{
	g_autofree char *src = NULL;
	g_autofree char *vpath = volume_path(eng, s->volume);
	struct stat st;
	int rc;

	if (s->layer[0])
		src = layer_path(eng, s->volume, s->layer);
	else if (s->state == SNAP_STATE_BACKED_UP)
		src = backup_image_path(eng, s);
	else {
		g_string_printf(why, "the snapshot's data is on neither storage");
		return -EIO;
	}
	if (!s->layer[0] && backup_indexed(s))
		rc = repo_restore(eng, rj, s, tmp, why);
	else
		rc = copy_image(rj, src, tmp, s->virtual_size, "primary", why);
	if (rc < 0)
		return rc;
	testpoint("clone.converted");
	rc = fsync_path(tmp);
	if (rc < 0) {
		g_string_printf(why, "cannot flush the copy: %s", g_strerror(-rc));
		return rc;
	}
	rc = copy_verify(tmp, rj->cancel, s->virtual_size, why);
	if (rc < 0)
		return rc;
	/* the new volume belongs to whoever owns the source volume (root, for
	 * a restore of another host's backup: no account here owns it) */
	if (!rj->job.source[0] && stat(vpath, &st) == 0 &&
	    (chown(tmp, st.st_uid, st.st_gid) < 0 || chmod(tmp, st.st_mode & 0777) < 0))
		snap_log(LOG_WARNING, "clone: cannot copy the owner of '%s'", vpath);
	return 0;
}

/* Put the copy in place as volume @newvol and record it. */
static int clone_publish(struct snap_engine *eng, const struct catalog_job *job,
			 const struct catalog_snapshot *s, const char *tmp,
			 GString *why)
{
	g_autofree char *final = volume_path(eng, job->target);
	g_autofree char *uuid = g_uuid_string_random();
	struct catalog_volume nv;
	struct stat st;
	int rc;

	if (fault("rename.clone", EIO) ||
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) < 0) {
		rc = -errno;
		g_string_printf(why, rc == -EEXIST ?
				"a volume file of that name appeared meanwhile; nothing replaced" :
				"cannot move the copy into place: %s", g_strerror(-rc));
		return rc;
	}
	fsync_dir(eng->primary);

	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return 0; /* the volume exists; its row is made on first sight */
	memset(&nv, 0, sizeof(nv));
	g_strlcpy(nv.name, job->target, sizeof(nv.name));
	g_strlcpy(nv.uuid, uuid, sizeof(nv.uuid));
	if (stat(final, &st) == 0) {
		nv.uid = st.st_uid;
		nv.gid = st.st_gid;
	}
	rc = catalog_volume_insert(eng->cat, &nv);
	if (rc == -EEXIST) {
		/* the row of a removed volume without snapshots: a new start */
		struct catalog_volume old;

		rc = catalog_volume_get(eng->cat, job->target, &old);
		if (rc == 0) {
			old.uid = nv.uid;
			old.gid = nv.gid;
			old.top_layer[0] = '\0';
			rc = catalog_volume_update(eng->cat, &old);
		}
	}
	if (rc == 0)
		rc = catalog_job_delete(eng->cat, job->id);
	if (rc == 0)
		event_record(eng, "clone.end", s->volume, s->name, 0,
			     "cloned into volumes/%s (%" G_GUINT64_FORMAT " bytes virtual, from %s storage)",
			     job->target, s->virtual_size,
			     s->layer[0] ? "primary" : "secondary");
	/* keep_primary may have waited for this clone to let go */
	if (rc == 0 && s->volume_id > 0) /* 0: another host's backup */
		rc = layer_prune_primary(eng, s->volume_id);
	catalog_tx_end(eng->cat, rc);
	return 0;
}

static void clone_failed(struct snap_engine *eng, const struct catalog_job *job,
			 const struct catalog_snapshot *s, int err, const char *why)
{
	int rc = catalog_tx_begin(eng->cat);

	if (rc < 0)
		return; /* the job stays RUNNING: queued again at the next start */
	rc = catalog_job_delete(eng->cat, job->id);
	if (rc == 0)
		event_record(eng, "clone.fail", s->volume, s->name, err,
			     "clone into volumes/%s failed: %s", job->target, why);
	if (rc == 0)
		rc = alert_raise_clone(eng, job, s, -err, why);
	if (rc == 0 && s->volume_id > 0) /* 0: another host's backup */
		rc = layer_prune_primary(eng, s->volume_id);
	catalog_tx_end(eng->cat, rc);
}

void clone_run(struct snap_engine *eng, struct running_job *rj)
{
	g_autoptr(GString) why = g_string_new(NULL);
	g_autofree char *tmp = clone_tmp_path(eng, rj->job.id);
	struct catalog_snapshot s;
	int rc;

	rc = clone_source(eng, &rj->job, &s);
	if (rc < 0) {
		/* cannot happen while rmdir refuses, or (a restore) unless
		 * another host deleted its backup meanwhile; never leave a
		 * stuck job */
		snap_log(LOG_ERR, "clone: job %" G_GINT64_FORMAT " reads a missing snapshot%s%s",
			 rj->job.id, rj->job.source[0] ? ": " : "", rj->job.source);
		catalog_tx_begin(eng->cat);
		catalog_job_delete(eng->cat, rj->job.id);
		if (rj->job.source[0])
			event_record(eng, "clone.fail", NULL, NULL, -ENOENT,
				     "restore into volumes/%s failed: the backup %s is gone",
				     rj->job.target, rj->job.source);
		catalog_tx_end(eng->cat, 0);
		return;
	}
	event_record(eng, "clone.start", s.volume, s.name, 0,
		     "copying into volumes/%s from %s storage", rj->job.target,
		     s.layer[0] ? "primary" : "secondary");
	rc = clone_copy(eng, rj, &s, tmp, why);
	if (rc == 0)
		rc = clone_publish(eng, &rj->job, &s, tmp, why);
	if (rc < 0)
		unlink(tmp);
	if (rc < 0 && (rc == -ECANCELED || g_cancellable_is_cancelled(rj->cancel)))
		return; /* unmount: the job stays RUNNING, queued again at start */
	if (rc < 0)
		clone_failed(eng, &rj->job, &s, rc, why->str);
}
