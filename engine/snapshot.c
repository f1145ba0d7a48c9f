/*
 * snapshot.c - volume snapshots: take, delete, rename, retry, and reads.
 *
 * Taking a snapshot freezes the volume file as a layer and puts a new,
 * empty overlay in its place, all in constant time:
 *
 *   1. catalog: snapshot and layer rows in state Creating
 *   2. link(PRIMARY/vol.qcow2, PRIMARY/.snapfs/vol/<uuid>.qcow2)
 *   3. qemu-img create an overlay over that layer, as a temporary file
 *   4. rename(temporary, PRIMARY/vol.qcow2)          <- the commit point
 *   5. catalog: BackingUp, layer live, backup job queued, event
 *
 * Every step is atomic; a crash between any two is resolved by recovery
 * (recover.c) by looking at whether step 4 happened.  On an error the
 * steps done are undone in reverse order.
 */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "snapshot.h"
#include "accounts.h"
#include "backup.h"
#include "clock.h"
#include "events.h"
#include "fsutil.h"
#include "gone.h"
#include "layer.h"
#include "paths.h"
#include "rados.h"
#include "repo.h"
#include "testpoint.h"
#include "vmdisk.h"
#include "volume.h"
#include "waiters.h"
#include "wake.h"
#include "json.h"
#include "freeze.h"
#include "take.h"
#include "log.h"

static char *snap_target(const char *vol, const char *snap)
{
	return g_strdup_printf("volumes/%s/snapshots/%s", vol, snap);
}

int snapshot_lookup(struct snap_engine *eng, const char *vol, const char *name,
		    struct catalog_volume *v, struct catalog_snapshot *s)
{
	int rc = volume_resolve(eng, vol, v, NULL);

	if (rc < 0)
		return rc;
	rc = snap_name_valid(name);
	if (rc < 0)
		return -ENOENT;
	rc = catalog_snapshot_get(eng->cat, v->id, name, s);
	if (rc == 0 && s->state == SNAP_STATE_CREATING)
		return -ENOENT;
	return rc;
}

/* A volume snapshot's take (take.h): one disk, two rows. */
struct volume_take {
	struct snap_engine *eng;
	struct catalog_volume v;
	struct catalog_snapshot s;
	struct catalog_layer l;
	struct freeze f;
	struct vm_user user; /* the running VM that writes it, if in_use */
	int in_use;
	bool replaces;
	char quota_why[256];
};

static int volume_rows_insert(struct take *t)
{
	struct volume_take *vt = t->arg;
	int rc;

	rc = vt->replaces ? 0 : account_quota_check(vt->eng, vt->v.uid, vt->quota_why,
						   sizeof(vt->quota_why));
	if (rc == 0)
		rc = catalog_snapshot_insert(vt->eng->cat, &vt->s);
	if (rc == 0)
		rc = catalog_layer_insert(vt->eng->cat, &vt->l);
	return rc;
}

static int volume_rows_delete(struct take *t)
{
	struct volume_take *vt = t->arg;
	int rc = catalog_snapshot_delete(vt->eng->cat, vt->s.id);

	if (rc == 0)
		rc = catalog_layer_delete(vt->eng->cat, vt->l.uuid);
	return rc;
}

static int volume_disk_prepare(struct take *t, unsigned k)
{
	struct volume_take *vt = t->arg;

	(void)k;
	return freeze_prepare(vt->eng, &vt->f, vt->s.volume, vt->l.uuid);
}

static void volume_disk_undo(struct take *t, unsigned k)
{
	struct volume_take *vt = t->arg;

	(void)k;
	freeze_undo(&vt->f);
	freeze_clear(&vt->f);
}

/* a running VM writes the volume: switch it over in QEMU */
static int volume_switch(struct take *t)
{
	struct volume_take *vt = t->arg;
	const char *alias = vt->user.alias;
	int rc;

	if (vt->in_use <= 0)
		return 0;
	rc = freeze_switch_running(vt->eng, vt->eng->vm, vt->user.vm, &vt->f,
				   &alias, 1);
	t->switched = rc == 0;
	return rc;
}

static int volume_disk_swap(struct take *t, unsigned k)
{
	struct volume_take *vt = t->arg;

	(void)k;
	return freeze_swap(vt->eng, &vt->f);
}

/*
 * The swap is done: the snapshot exists.  Its rows must say so before
 * anything else layers on the volume (we hold its busy flag), so a catalog
 * that refuses is asked again (take.h) before giving up (the next mount
 * then completes it: recovery.take).
 */
static int volume_rows_commit(struct take *t)
{
	struct volume_take *vt = t->arg;
	struct snap_engine *eng = vt->eng;
	int rc;

	vt->s.state = SNAP_STATE_BACKING_UP;
	vt->l.state = LAYER_STATE_LIVE;
	g_strlcpy(vt->v.top_layer, vt->l.uuid, sizeof(vt->v.top_layer));
	rc = catalog_snapshot_update(eng->cat, &vt->s);
	if (rc == 0)
		rc = catalog_layer_update(eng->cat, &vt->l);
	if (rc == 0)
		rc = catalog_volume_update(eng->cat, &vt->v);
	if (rc == 0)
		rc = backup_queue(eng, &vt->s);
	if (rc == 0)
		event_record(eng, "snapshot.take", vt->s.volume, vt->s.name, 0,
			     vt->in_use > 0 ? "snapshot taken while VM '%s' runs; backup queued" :
					      "snapshot taken; backup queued%s",
			     vt->in_use > 0 ? vt->user.vm : "");
	return rc;
}

static const struct take_ops volume_take_ops = {
	.rows_insert = volume_rows_insert,
	.rows_delete = volume_rows_delete,
	.disk_prepare = volume_disk_prepare,
	.disk_undo = volume_disk_undo,
	.switch_disks = volume_switch,
	.disk_swap = volume_disk_swap,
	.rows_commit = volume_rows_commit,
};

static int take_busy(struct snap_engine *eng, const char *vol,
		       const char *name, int64_t policy_id, bool replaces)
{
	g_autofree char *target = snap_target(vol, name);
	g_autofree char *vpath = volume_path(eng, vol);
	g_autofree char *uuid = g_uuid_string_random();
	struct volume_take vt = { .eng = eng, .replaces = replaces };
	struct take t = { .cat = eng->cat, .ops = &volume_take_ops, .arg = &vt,
			  .n = 1, .point_prepared = "volume.take.prepared" };
	struct qcow2_header hdr;
	int rc;

	/* re-read: the top layer may have moved while we waited our turn */
	rc = catalog_volume_get(eng->cat, vol, &vt.v);
	if (rc < 0)
		return rc;
	rc = volume_read_header(vpath, &hdr);
	if (rc < 0) {
		event_reject(eng, "mkdir", target, EIO,
			     "volume file is not a readable qcow2 image (%s)",
			     g_strerror(-rc));
		return -EIO;
	}
	vt.in_use = volume_in_use(vpath);
	rc = vt.in_use > 0 ? vmdisk_user_find(eng, vol, &vt.user) : 0;
	if (rc == -EAGAIN) {
		event_reject(eng, "mkdir", target, EAGAIN,
			     "the volume is open for writing and libvirt cannot be reached to find its VM (is libvirtd running?): try again");
		return rc;
	}
	if (rc < 0) {
		event_reject(eng, "mkdir", target, EBUSY,
			     "another process (not a running VM snapfs knows) has the volume open for writing");
		return -EBUSY;
	}

	vt.s.volume_id = vt.v.id;
	g_strlcpy(vt.s.volume, vt.v.name, sizeof(vt.s.volume));
	g_strlcpy(vt.s.name, name, sizeof(vt.s.name));
	g_strlcpy(vt.s.uuid, uuid, sizeof(vt.s.uuid));
	g_strlcpy(vt.s.layer, uuid, sizeof(vt.s.layer));
	vt.s.state = SNAP_STATE_CREATING;
	vt.s.created_at = clock_now(eng);
	vt.s.virtual_size = hdr.virtual_size;
	vt.s.policy_id = policy_id;
	vt.l.volume_id = vt.v.id;
	g_strlcpy(vt.l.uuid, uuid, sizeof(vt.l.uuid));
	g_strlcpy(vt.l.parent, vt.v.top_layer, sizeof(vt.l.parent));
	vt.l.state = LAYER_STATE_CREATING;

	rc = take_run(&t);
	freeze_clear(&vt.f);
	if (rc == 0)
		return 0;
	if (t.failed == TAKE_STEP_ROWS && (rc == -EEXIST || rc == -EDQUOT))
		event_reject(eng, "mkdir", target, -rc, "%s", rc == -EEXIST ?
			     "a snapshot of that name exists" : vt.quota_why);
	else if (t.failed == TAKE_STEP_ROWS)
		event_reject(eng, "mkdir", target, -rc, "the catalog refused the snapshot; nothing changed");
	else if (t.failed == TAKE_STEP_COMMIT)
		event_reject(eng, "mkdir", target, -rc,
			     "the snapshot exists on primary storage but the catalog refused to record it; the next mount completes it");
	else if (t.exists) /* the running VM writes the overlay: no undo */
		event_reject(eng, "mkdir", target, -rc,
			     "the snapshot exists (the VM writes its new overlay) but the overlay could not be renamed over the volume file; the next mount completes it");
	else
		event_reject(eng, "mkdir", target, -rc, "cannot take the snapshot: %s",
			     g_strerror(-rc));
	return rc;
}

int snap_snapshot_take(struct snap_engine *eng, const char *vol,
		       const char *name)
{
	return snapshot_take(eng, vol, name, 0, false);
}

int snapshot_take(struct snap_engine *eng, const char *vol, const char *name,
		  int64_t policy_id, bool replaces)
{
	g_autofree char *target = snap_target(vol, name);
	struct catalog_volume v;
	struct catalog_snapshot s;
	struct statvfs sv;
	bool present;
	int rc;

	rc = volume_resolve(eng, vol, &v, &present);
	if (rc == 0 && !present)
		rc = -ENOENT;
	if (rc < 0) {
		event_reject(eng, "mkdir", target, -rc, "no such volume");
		return rc;
	}
	if (snap_name_valid(name) < 0) {
		event_reject(eng, "mkdir", target, EINVAL,
			     "snapshot names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-'");
		return -EINVAL;
	}
	if (catalog_snapshot_get(eng->cat, v.id, name, &s) == 0) {
		event_reject(eng, "mkdir", target, EEXIST,
			     "a snapshot of that name exists");
		return -EEXIST;
	}
	if (statvfs(eng->primary, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < eng->cfg.min_free) {
		event_reject(eng, "mkdir", target, ENOSPC,
			     "primary storage has %" G_GUINT64_FORMAT
			     " bytes free, less than min_free=%" G_GUINT64_FORMAT,
			     (uint64_t)sv.f_bavail * sv.f_frsize,
			     eng->cfg.min_free);
		return -ENOSPC;
	}

	volume_busy_begin(eng, v.id);
	rc = take_busy(eng, vol, name, policy_id, replaces);
	volume_busy_end(eng, v.id);
	if (rc == 0)
		wake_schedulers(eng);
	return rc;
}

static void unlink_quiet(const char *path)
{
	if (unlink(path) < 0 && errno != ENOENT)
		snap_log(LOG_ERR, "snapshot: cannot remove '%s': %m", path);
}

/* The paths of a snapshot that no longer exist under its old name. */
static void snapshot_gone(struct snap_engine *eng, const char *vol,
			  const char *name)
{
	gone_path(eng, "volumes/%s/snapshots/%s/state", vol, name);
	gone_path(eng, "volumes/%s/snapshots/%s/info", vol, name);
	gone_path(eng, "volumes/%s/snapshots/%s", vol, name);
	gone_path(eng, "backed-up/volumes/%s/%s.qcow2", vol, name);
	gone_path(eng, "backed-up/volumes/%s/%s.json", vol, name);
}

/* On a RADOS secondary: remove backup @snap's manifest, then its index.
 * Return: 0 (also when they were not there); -errno (logged). */
static int remove_objects(struct snap_engine *eng,
			  const struct catalog_snapshot *snap)
{
	static const char *const exts[] = { "json", "index" };

	for (size_t i = 0; i < G_N_ELEMENTS(exts); i++) {
		g_autofree char *name = backup_object_name(snap, exts[i]);
		int rc = rados_store_remove(repo_rados(eng), name);

		if (rc < 0 && rc != -ENOENT)
			return rc;
	}
	return 0;
}

int snapshot_finish_delete(struct snap_engine *eng,
			   struct catalog_snapshot *snap, const char *type,
			   const char *message)
{
	g_autofree char *image = backup_image_path(eng, snap);
	g_autofree char *manifest = backup_manifest_path(eng, snap);
	g_autofree char *index = backup_index_path(eng, snap);
	g_autofree char *tmp = backup_tmp_path(eng, snap, "qcow2");
	g_autofree char *tmpm = backup_tmp_path(eng, snap, "json");
	g_autofree char *dir = g_path_get_dirname(image);
	struct catalog_job job;
	bool had_layer = snap->layer[0] != '\0';
	int rc;

	/* secondary first: a crash here leaves a Destroying row to finish */
	unlink_quiet(tmp);
	unlink_quiet(tmpm);
	unlink_quiet(manifest);
	unlink_quiet(index);
	unlink_quiet(image);
	fsync_dir(dir);
	if (repo_rados(eng)) {
		int r = remove_objects(eng, snap);

		if (r < 0)
			return r; /* still Destroying: done again later */
	}

	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc;
	if (catalog_job_for_snapshot(eng->cat, snap->id, &job) == 0)
		rc = catalog_job_delete(eng->cat, job.id);
	if (rc == 0)
		rc = catalog_alert_resolve(eng->cat, "backup", snap->id);
	if (rc >= 0)
		rc = catalog_alert_resolve(eng->cat, "verify", snap->id);
	if (rc >= 0)
		rc = catalog_snapshot_delete(eng->cat, snap->id);
	/* its layer, now unreferenced, is folded into its child later */
	if (rc == 0 && had_layer)
		rc = layer_queue_merge(eng, snap->volume_id);
	/* in the same transaction: a deleted snapshot always has its event */
	if (rc == 0)
		event_record(eng, type, snap->volume, snap->name, 0, "%s", message);
	rc = catalog_tx_end(eng->cat, rc);
	if (rc == 0) {
		wake_schedulers(eng);
		waiters_wake(eng);
		snapshot_gone(eng, snap->volume, snap->name);
		/* its chunks may be named by nothing now (repository=on) */
		repo_gc_request(eng);
	}
	return rc;
}

int snap_snapshot_delete(struct snap_engine *eng, const char *vol,
			 const char *name)
{
	g_autofree char *target = snap_target(vol, name);
	struct catalog_volume v;
	struct catalog_snapshot s;
	enum snap_state was;
	int rc;

	rc = snapshot_lookup(eng, vol, name, &v, &s);
	if (rc < 0) {
		event_reject(eng, "rmdir", target, -rc, "no such snapshot");
		return rc;
	}
	rc = catalog_tx_begin(eng->cat);
	if (rc < 0) {
		event_reject(eng, "rmdir", target, -rc, "the catalog refused the delete; nothing changed");
		return rc;
	}
	rc = catalog_snapshot_get_by_id(eng->cat, s.id, &s);
	was = s.state;
	if (rc == 0 && was == SNAP_STATE_DESTROYING)
		rc = -ENOENT; /* another rmdir is at it */
	if (rc == 0 && catalog_job_readers(eng->cat, s.id) != 0)
		rc = -EBUSY;  /* a clone or revert reads it (or an error: keep it) */
	if (rc == 0) {
		s.state = SNAP_STATE_DESTROYING;
		rc = catalog_snapshot_update(eng->cat, &s);
	}
	rc = catalog_tx_end(eng->cat, rc);
	if (rc < 0) {
		if (rc == -ENOENT)
			event_reject(eng, "rmdir", target, ENOENT,
				     "the snapshot is already being deleted");
		else if (rc == -EBUSY)
			event_reject(eng, "rmdir", target, EBUSY,
				     "a clone or revert is reading the snapshot; delete it when they end (see jobs/)");
		else
			event_reject(eng, "rmdir", target, -rc,
				     "the catalog refused the delete; nothing changed");
		return rc;
	}
	/* a worker that claimed its job is in the running table: stop it */
	running_cancel_snapshot(eng, s.id);
	if (was == SNAP_STATE_BACKING_UP)
		event_record(eng, "backup.cancel", vol, name, 0,
			     "backup cancelled: snapshot deleted");
	rc = snapshot_finish_delete(eng, &s, "snapshot.delete", "snapshot deleted");
	if (rc < 0) {
		event_record(eng, "snapshot.delete", vol, name, rc,
			     "delete failed; it completes at the next mount");
		return rc;
	}
	return 0;
}

int snap_snapshot_rename(struct snap_engine *eng, const char *vol,
			 const char *from, const char *to)
{
	g_autofree char *target = snap_target(vol, from);
	struct catalog_volume v;
	struct catalog_snapshot s, other;
	int rc;

	rc = snapshot_lookup(eng, vol, from, &v, &s);
	if (rc < 0) {
		event_reject(eng, "rename", target, -rc, "no such snapshot");
		return rc;
	}
	if (snap_name_valid(to) < 0) {
		event_reject(eng, "rename", target, EINVAL,
			     "snapshot names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-'");
		return -EINVAL;
	}
	if (!strcmp(from, to))
		return 0;
	if (s.state == SNAP_STATE_DESTROYING) {
		event_reject(eng, "rename", target, ENOENT,
			     "the snapshot is being deleted");
		return -ENOENT;
	}
	if (catalog_snapshot_get(eng->cat, v.id, to, &other) == 0) {
		event_reject(eng, "rename", target, EEXIST,
			     "a snapshot named '%s' exists", to);
		return -EEXIST;
	}
	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc;
	rc = catalog_snapshot_get_by_id(eng->cat, s.id, &s);
	if (rc == 0 && s.state == SNAP_STATE_DESTROYING)
		rc = -ENOENT;
	if (rc == 0) {
		g_strlcpy(s.name, to, sizeof(s.name));
		rc = catalog_snapshot_update(eng->cat, &s);
	}
	if (rc == 0)
		event_record(eng, "snapshot.rename", vol, to, 0,
			     "renamed from '%s'", from);
	rc = catalog_tx_end(eng->cat, rc);
	if (rc == -EEXIST) {
		event_reject(eng, "rename", target, EEXIST,
			     "a snapshot named '%s' exists", to);
		return rc;
	}
	if (rc < 0)
		return rc;
	if ((s.state == SNAP_STATE_BACKED_UP || s.state == SNAP_STATE_DAMAGED) &&
	    backup_write_manifest(eng, &s) < 0)
		event_record(eng, "snapshot.rename", vol, to, -EIO,
			     "the backup's manifest still names '%s'; it is rewritten at the next mount",
			     from);
	snapshot_gone(eng, vol, from);
	return 0;
}

int snapshot_retry(struct snap_engine *eng, const char *vol, const char *name)
{
	g_autofree char *target = snap_target(vol, name);
	struct catalog_volume v;
	struct catalog_snapshot s;
	struct catalog_job job;
	int rc;

	rc = snapshot_lookup(eng, vol, name, &v, &s);
	if (rc < 0) {
		event_reject(eng, "retry", target, -rc, "no such snapshot");
		return rc;
	}
	if (s.state == SNAP_STATE_BACKING_UP) {
		event_reject(eng, "retry", target, EBUSY,
			     "its backup is already queued or running");
		return -EBUSY;
	}
	if (s.state != SNAP_STATE_BACKUP_FAILED) {
		event_reject(eng, "retry", target, EINVAL,
			     "only a snapshot in state BackupFailed can be retried (it is %s)",
			     snap_state_name(s.state));
		return -EINVAL;
	}
	if (!s.layer[0]) {
		event_reject(eng, "retry", target, EIO,
			     "its data is no longer on primary storage");
		return -EIO;
	}
	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc;
	rc = catalog_snapshot_get_by_id(eng->cat, s.id, &s);
	if (rc == 0 && s.state != SNAP_STATE_BACKUP_FAILED)
		rc = -EBUSY; /* changed since we looked: a retry started */
	if (rc == 0) {
		s.state = SNAP_STATE_BACKING_UP;
		rc = catalog_snapshot_update(eng->cat, &s);
	}
	if (rc == 0 && catalog_job_for_snapshot(eng->cat, s.id, &job) == 0) {
		job.state = JOB_STATE_QUEUED;
		job.not_before = 0;
		job.attempts = 0;
		rc = catalog_job_update(eng->cat, &job);
	} else if (rc == 0) {
		rc = backup_queue(eng, &s);
	}
	if (rc == 0)
		event_record(eng, "backup.retry", vol, name, 0,
			     "backup queued again by hand");
	rc = catalog_tx_end(eng->cat, rc);
	if (rc == -EBUSY)
		event_reject(eng, "retry", target, EBUSY,
			     "its backup is already queued or running");
	if (rc == 0)
		wake_schedulers(eng);
	return rc;
}

/* ---- reads ------------------------------------------------------------ */

static const char *const state_names[SNAP_STATE_LAST] = {
	[SNAP_STATE_CREATING] = "Creating",
	[SNAP_STATE_BACKING_UP] = "BackingUp",
	[SNAP_STATE_BACKED_UP] = "BackedUp",
	[SNAP_STATE_BACKUP_FAILED] = "BackupFailed",
	[SNAP_STATE_DAMAGED] = "Damaged",
	[SNAP_STATE_DESTROYING] = "Destroying",
};

const char *snap_state_name(enum snap_state state)
{
	return state < SNAP_STATE_LAST ? state_names[state] : "Unknown";
}

int snap_snapshot_list(struct snap_engine *eng, const char *vol,
		       char ***names_out)
{
	struct catalog_volume v;
	int rc = volume_resolve(eng, vol, &v, NULL);

	if (rc < 0)
		return rc;
	return catalog_snapshot_names(eng->cat, v.id, false, names_out);
}

int snap_snapshot_dirents(struct snap_engine *eng, const char *vol,
			  struct snap_dirent **out)
{
	struct catalog_volume v;
	GArray *rows = NULL;
	guint i;
	int rc = volume_resolve(eng, vol, &v, NULL);

	if (rc < 0)
		return rc;
	rc = catalog_snapshot_dirents(eng->cat, v.id, &rows);
	if (rc < 0)
		return rc;
	*out = g_new0(struct snap_dirent, rows->len + 1);
	for (i = 0; i < rows->len; i++) {
		struct catalog_dirent *d = &g_array_index(rows, struct catalog_dirent, i);

		g_strlcpy((*out)[i].name, d->name, sizeof((*out)[i].name));
		(*out)[i].id = (uint64_t)d->id;
		(*out)[i].created_at = (time_t)d->created_at;
	}
	rc = (int)rows->len;
	g_array_free(rows, TRUE);
	return rc;
}

int snap_snapshot_stat(struct snap_engine *eng, const char *vol,
		       const char *snap, struct snap_snapshot_stat *out)
{
	struct catalog_volume v;
	struct catalog_snapshot s;
	int rc = snapshot_lookup(eng, vol, snap, &v, &s);

	if (rc < 0)
		return rc;
	out->id = (uint64_t)s.id;
	out->state = s.state;
	out->created_at = (time_t)s.created_at;
	out->on_primary = s.layer[0] != '\0';
	out->on_secondary = s.state == SNAP_STATE_BACKED_UP;
	out->uid = v.uid;
	out->gid = v.gid;
	return 0;
}

int snap_snapshot_info(struct snap_engine *eng, const char *vol,
		       const char *snap, char **json_out)
{
	struct catalog_volume v;
	struct catalog_snapshot s;
	char stamp[32];
	struct jdoc *d;
	int rc = snapshot_lookup(eng, vol, snap, &v, &s);

	if (rc < 0)
		return rc;
	d = jdoc_new();
	jdoc_int(d, "id", s.id);
	jdoc_str(d, "name", s.name);
	jdoc_str(d, "volume", s.volume);
	jdoc_str(d, "uuid", s.uuid);
	clock_iso(s.created_at, stamp);
	jdoc_str(d, "created_at", stamp);
	jdoc_str(d, "state", snap_state_name(s.state));
	jdoc_int(d, "virtual_size", (int64_t)s.virtual_size);
	jdoc_bool(d, "on_primary", s.layer[0] != '\0');
	jdoc_bool(d, "on_secondary", s.state == SNAP_STATE_BACKED_UP);
	jdoc_int(d, "backup_bytes", (int64_t)s.backup_bytes);
	if (s.backed_up_at) {
		clock_iso(s.backed_up_at, stamp);
		jdoc_str(d, "backed_up_at", stamp);
	} else {
		jdoc_str(d, "backed_up_at", NULL);
	}
	jdoc_str(d, "checksum", s.checksum[0] ? s.checksum : NULL);
	if (s.verified_at) {
		clock_iso(s.verified_at, stamp);
		jdoc_str(d, "verified_at", stamp);
	} else {
		jdoc_str(d, "verified_at", NULL);
	}
	jdoc_int(d, "attempts", s.attempts);
	jdoc_str(d, "error", s.state == SNAP_STATE_BACKUP_FAILED && s.error[0] ?
				     s.error : NULL);
	*json_out = jdoc_finish(d, true, true);
	return *json_out ? 0 : -ENOMEM;
}

/* ---- the control file ------------------------------------------------- */
