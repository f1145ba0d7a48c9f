/*
 * recover.c - put the catalog and the storage back in agreement at start.
 *
 * Runs once, before any worker or request, so it needs no locking beyond
 * the catalog's.  Every finding becomes an event ("recovery.*"): nothing
 * is fixed silently, nothing the user made is dropped.  See
 * docs/design.md, "Recovery", for the table of cases.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recover.h"
#include "backup.h"
#include "events.h"
#include "fsutil.h"
#include "layer.h"
#include "paths.h"
#include "rados.h"
#include "repo.h"
#include "revert.h"
#include "snapshot.h"
#include "vms.h"
#include "volume.h"
#include "freeze.h"
#include "import.h"
#include "log.h"

/* Remove every file in @dir (temporaries), or with @host only this host's
 * and untagged ones (tmp_name_mine(): SECONDARY may be shared); return
 * how many. */
static int clear_dir(const char *dir, const char *host)
{
	struct dirent *de;
	int n = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    (host && !tmp_name_mine(de->d_name, host)))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
		else
			snap_log(LOG_ERR, "recover: cannot remove '%s/%s': %m",
				 dir, de->d_name);
	}
	closedir(d);
	fsync_dir(dir);
	return n;
}

/* A take interrupted by a crash: finish it if the overlay swap happened. */
static void recover_take(struct snap_engine *eng, struct catalog_snapshot *s)
{
	g_autofree char *vpath = volume_path(eng, s->volume);
	g_autofree char *lpath = layer_path(eng, s->volume, s->layer);
	g_autofree char *ldir = layer_dir(eng, s->volume);
	g_autofree char *tmp = freeze_tmp_path(eng, s->volume, s->layer);
	struct catalog_volume v;
	struct catalog_layer l;
	struct qcow2_header hdr;
	int rc;

	if (catalog_volume_get_by_id(eng->cat, s->volume_id, &v) < 0 ||
	    catalog_layer_get(eng->cat, s->layer, &l) < 0)
		return;
	if (volume_read_header(vpath, &hdr) == 0 && !strcmp(hdr.backing, lpath)) {
		unlink(tmp);
		rc = catalog_tx_begin(eng->cat);
		if (rc < 0)
			return;
		s->state = SNAP_STATE_BACKING_UP;
		l.state = LAYER_STATE_LIVE;
		g_strlcpy(v.top_layer, s->layer, sizeof(v.top_layer));
		rc = catalog_snapshot_update(eng->cat, s);
		if (rc == 0)
			rc = catalog_layer_update(eng->cat, &l);
		if (rc == 0)
			rc = catalog_volume_update(eng->cat, &v);
		if (rc == 0)
			rc = backup_queue(eng, s);
		if (rc == 0)
			event_record(eng, "recovery.take", s->volume, s->name, 0,
				     "snapshot interrupted by a crash was complete; backup queued");
		catalog_tx_end(eng->cat, rc);
		return;
	}
	/* a running VM was switched to the overlay: only the rename is left */
	if (freeze_recover_switched(eng, s->volume, s->layer) &&
	    rename(tmp, vpath) == 0) {
		fsync_dir(eng->primary);
		recover_take(eng, s);
		return;
	}
	/* the volume file was never replaced: the link is all there is */
	unlink(tmp);
	unlink(lpath);
	fsync_dir(ldir);
	catalog_tx_begin(eng->cat);
	catalog_snapshot_delete(eng->cat, s->id);
	catalog_layer_delete(eng->cat, s->layer);
	event_record(eng, "recovery.take", s->volume, s->name, -EIO,
		     "snapshot interrupted by a crash before it existed; rolled back (the mkdir never succeeded)");
	catalog_tx_end(eng->cat, 0);
}

static bool file_ok(const char *path, uint64_t size)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	       (size == 0 || (uint64_t)st.st_size == size);
}

/*
 * On a RADOS secondary: are backup @s's index and manifest objects there?
 * Return: 1 both; 0 one is missing; -errno the pool cannot tell (logged:
 * the backup is left as it is, never taken for lost).
 */
static int objects_ok(struct snap_engine *eng, const struct catalog_snapshot *s)
{
	static const char *const exts[] = { "index", "json" };

	for (size_t i = 0; i < G_N_ELEMENTS(exts); i++) {
		g_autofree char *name = backup_object_name(s, exts[i]);
		int rc = rados_store_stat(repo_rados(eng), name, NULL, NULL);

		if (rc == -ENOENT)
			return 0;
		if (rc < 0 && rc != -EBADMSG)
			return rc;
	}
	return 1;
}

static void mark_failed(struct snap_engine *eng, struct catalog_snapshot *s,
			const char *why)
{
	s->state = SNAP_STATE_BACKUP_FAILED;
	s->err = EIO;
	g_strlcpy(s->error, why, sizeof(s->error));
	catalog_snapshot_update(eng->cat, s);
	alert_raise_backup(eng, s);
}

static void recover_snapshot(struct snap_engine *eng, struct catalog_snapshot *s)
{
	struct catalog_job job;
	int rc;

	if (s->state == SNAP_STATE_CREATING) {
		recover_take(eng, s);
		return;
	}
	if (s->state == SNAP_STATE_DESTROYING) {
		rc = snapshot_finish_delete(eng, s, "recovery.delete",
					    "finished a delete interrupted by a crash");
		if (rc < 0)
			event_record(eng, "recovery.delete", s->volume, s->name, rc,
				     "could not finish an interrupted delete");
		return;
	}
	if (s->layer[0]) {
		g_autofree char *lpath = layer_path(eng, s->volume, s->layer);

		if (!file_ok(lpath, 0)) {
			event_record(eng, "recovery.missing", s->volume, s->name,
				     -ENOENT, "its layer '%s' is missing from primary storage",
				     lpath);
			s->layer[0] = '\0';
			catalog_snapshot_update(eng->cat, s);
		}
	}
	if (s->state == SNAP_STATE_BACKED_UP) {
		bool indexed = backup_indexed(s);
		g_autofree char *image = indexed ? backup_index_path(eng, s) :
						   backup_image_path(eng, s);
		g_autofree char *manifest = backup_manifest_path(eng, s);
		int ok;

		if (indexed && repo_rados(eng)) {
			ok = objects_ok(eng, s);
			if (ok < 0)
				return; /* unreachable now: nothing is decided */
			g_free(image);
			image = backup_object_name(s, "index");
		} else {
			ok = file_ok(image, indexed ? 0 : s->backup_bytes) &&
			     file_ok(manifest, 0);
		}
		if (ok) {
			if (backup_check_manifest(eng, s) == 1)
				event_record(eng, "recovery.manifest", s->volume, s->name, 0,
					     "the manifest named the snapshot's old name; rewritten");
			return;
		}
		catalog_tx_begin(eng->cat);
		if (s->layer[0]) {
			s->state = SNAP_STATE_BACKING_UP;
			catalog_snapshot_update(eng->cat, s);
			backup_queue(eng, s);
			event_record(eng, "recovery.missing", s->volume, s->name,
				     -ENOENT, "its backup '%s' is missing or damaged; copying it again from primary storage",
				     image);
		} else {
			mark_failed(eng, s, "its backup is missing or damaged and it is no longer on primary storage");
			event_record(eng, "recovery.missing", s->volume, s->name,
				     -ENOENT, "its backup '%s' is missing or damaged and no copy is left on primary storage",
				     image);
		}
		catalog_tx_end(eng->cat, 0);
		return;
	}
	if (s->state == SNAP_STATE_BACKING_UP &&
	    catalog_job_for_snapshot(eng->cat, s->id, &job) == -ENOENT) {
		catalog_tx_begin(eng->cat);
		if (s->layer[0]) {
			backup_queue(eng, s);
			event_record(eng, "recovery.queue", s->volume, s->name, 0,
				     "backup had no job; queued");
		} else {
			mark_failed(eng, s, "its data is no longer on primary storage");
		}
		catalog_tx_end(eng->cat, 0);
	}
}

/* Files on storage the catalog does not know: report them, keep them. */
static void report_orphans(struct snap_engine *eng)
{
	GArray *vols = NULL;
	guint i;

	if (catalog_volume_all(eng->cat, &vols) < 0)
		return;
	for (i = 0; i < vols->len; i++) {
		struct catalog_volume *v = &g_array_index(vols, struct catalog_volume, i);
		g_autofree char *ldir = layer_dir(eng, v->name);
		g_autofree char *bdir = g_strdup_printf("%s/%s", eng->backups_dir,
							v->name);
		struct dirent *de;
		DIR *d;

		/* layers made by a snapfs that kept them 0700: QEMU as an
		 * unprivileged user must reach them to start the VM */
		if (access(ldir, F_OK) == 0)
			chain_mkdir(ldir);
		if ((d = opendir(ldir))) {
			while ((de = readdir(d))) {
				char uuid[UUID_TEXT_MAX];
				struct catalog_layer l;
				size_t len = strlen(de->d_name);

				if (de->d_name[0] == '.' && g_str_has_suffix(de->d_name, ".overlay")) {
					unlinkat(dirfd(d), de->d_name, 0);
					continue;
				}
				if (de->d_name[0] == '.' || len != 36 + 6)
					continue;
				g_strlcpy(uuid, de->d_name, sizeof(uuid));
				if (catalog_layer_get(eng->cat, uuid, &l) == -ENOENT)
					event_record(eng, "recovery.orphan", v->name, NULL,
						     -ENOENT, "layer file '%s/%s' is not in the catalog; left in place",
						     ldir, de->d_name);
			}
			closedir(d);
		}
		if ((d = opendir(bdir))) {
			while ((de = readdir(d))) {
				GArray *snaps = NULL;
				bool known = false;
				guint j;

				if (de->d_name[0] == '.')
					continue;
				if (catalog_snapshot_list(eng->cat, v->id, -1, &snaps) < 0)
					break;
				for (j = 0; j < snaps->len && !known; j++) {
					struct catalog_snapshot *s = &g_array_index(
						snaps, struct catalog_snapshot, j);

					known = g_str_has_prefix(de->d_name, s->uuid);
				}
				g_array_free(snaps, TRUE);
				if (!known)
					event_record(eng, "recovery.orphan", v->name, NULL,
						     -ENOENT, "backup file '%s/%s' belongs to no snapshot in the catalog; left in place",
						     bdir, de->d_name);
			}
			closedir(d);
		}
	}
	g_array_free(vols, TRUE);
}

int recover_all(struct snap_engine *eng)
{
	GArray *snaps = NULL, *vols = NULL;
	guint i;
	int n, rc;

	n = clear_dir(eng->tmp_dir, eng->host);
	if (n > 0)
		event_record(eng, "recovery.tmp", NULL, NULL, 0,
			     "removed %d partial file(s) from secondary storage", n);
	n = clear_dir(eng->ptmp_dir, NULL);
	if (n > 0)
		event_record(eng, "recovery.tmp", NULL, NULL, 0,
			     "removed %d partial clone or revert copies from primary storage", n);
	repo_recover(eng);
	n = catalog_job_requeue_running(eng->cat);
	if (n > 0)
		event_record(eng, "recovery.queue", NULL, NULL, 0,
			     "%d job(s) interrupted by the last stop queued again", n);

	rc = layer_recover(eng);
	if (rc < 0)
		return rc;
	/* a new catalog over an existing SECONDARY: its backups come back
	 * first, then are checked like every other */
	if (import_pending(eng))
		import_backups(eng);
	vms_recover(eng);
	rc = catalog_snapshot_list(eng->cat, -1, -1, &snaps);
	if (rc < 0)
		return rc;
	for (i = 0; i < snaps->len; i++)
		recover_snapshot(eng, &g_array_index(snaps, struct catalog_snapshot, i));
	g_array_free(snaps, TRUE);
	/* after takes: a volume file's backing is now what the catalog says,
	 * unless a revert had replaced it */
	revert_recover(eng);

	report_orphans(eng);

	/* fold whatever an interrupted run left unreferenced */
	if (catalog_volume_all(eng->cat, &vols) >= 0) {
		for (i = 0; i < vols->len; i++)
			layer_queue_merge(eng, g_array_index(vols, struct catalog_volume, i).id);
		g_array_free(vols, TRUE);
	}
	return 0;
}
