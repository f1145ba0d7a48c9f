/*
 * backup.c - copy a snapshot to secondary storage, verified.
 *
 * DESIGN: runs in a pool worker (pool.c), one job at a time per worker,
 * holding no lock.  The copy is made under SECONDARY/.tmp, so a partial
 * file is never under SECONDARY/volumes:
 *
 *   qemu-img convert (standalone qcow2, no backing file)  -> .tmp/<uuid>.qcow2
 *   fsync  ||  xxh128 checksum  (in parallel: the checksum reads the page
 *                                cache while the disk writes back)
 *   qemu-img check, qemu-img info (no backing file, right virtual size)
 *   manifest -> .tmp/<uuid>.json, fsync
 *   rename both into SECONDARY/volumes/<vol>/, fsync the directory
 *   catalog: BackedUp, job gone, alert resolved, event     <- only now
 *
 * A failure marks the snapshot BackupFailed, raises an alert and leaves
 * the job WAITING for an automatic retry (retry_delay, doubled each time)
 * until @retries are used up.  A cancelled copy (rmdir, unmount) only
 * removes its temporary files: whoever cancelled owns the catalog change.
 */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "clock.h"
#include "events.h"
#include "fault.h"
#include "fsutil.h"
#include "layer.h"
#include "paths.h"
#include "testpoint.h"
#include "waiters.h"
#include "copy.h"
#include "json.h"
#include "log.h"

int backup_queue(struct snap_engine *eng, struct catalog_snapshot *s)
{
	struct catalog_job job = {
		.kind = JOB_KIND_BACKUP,
		.snapshot_id = s->id,
		.volume_id = s->volume_id,
		.state = JOB_STATE_QUEUED,
	};

	return catalog_job_insert(eng->cat, &job);
}

static char *manifest_text(const struct catalog_snapshot *s)
{
	struct jdoc *d = jdoc_new();
	char stamp[32];

	jdoc_str(d, "volume", s->volume);
	jdoc_str(d, "snapshot", s->name);
	jdoc_str(d, "uuid", s->uuid);
	clock_iso(s->created_at, stamp);
	jdoc_str(d, "created_at", stamp);
	clock_iso(s->backed_up_at, stamp);
	jdoc_str(d, "backed_up_at", stamp);
	jdoc_int(d, "virtual_size", (int64_t)s->virtual_size);
	jdoc_int(d, "size", (int64_t)s->backup_bytes);
	jdoc_str(d, "format", "qcow2");
	jdoc_str(d, "checksum", s->checksum);
	return jdoc_finish(d, true, true);
}

/* Write @text to @path durably (the caller renames it into place). */
static int write_durable(const char *path, const char *text)
{
	size_t len = strlen(text), off = 0;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0644);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (rc == 0 && (fault("fsync", EIO) || fsync(fd) < 0))
		rc = -errno;
	close(fd);
	if (rc < 0) {
		snap_log(LOG_ERR, "backup: cannot write '%s': %s", path,
			 g_strerror(-rc));
		unlink(path);
	}
	return rc;
}

int backup_write_manifest(struct snap_engine *eng,
			  const struct catalog_snapshot *s)
{
	g_autofree char *text = manifest_text(s);
	g_autofree char *final = backup_manifest_path(eng, s);
	g_autofree char *rnd = g_uuid_string_random();
	g_autofree char *tmp = g_strdup_printf("%s/%s.%s.json", eng->tmp_dir,
					       s->uuid, rnd);
	g_autofree char *dir = g_path_get_dirname(final);
	int rc;

	if (!text)
		return -ENOMEM;
	rc = write_durable(tmp, text);
	if (rc < 0)
		return rc;
	if (fault("rename.manifest", EIO) || rename(tmp, final) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "backup: cannot rename '%s': %m", tmp);
		unlink(tmp);
		return rc;
	}
	return fsync_dir(dir);
}

int backup_check_manifest(struct snap_engine *eng,
			  const struct catalog_snapshot *s)
{
	g_autofree char *want = manifest_text(s);
	g_autofree char *path = backup_manifest_path(eng, s);
	g_autofree char *have = NULL;
	int rc;

	if (!want)
		return -ENOMEM;
	if (g_file_get_contents(path, &have, NULL, NULL) && !strcmp(have, want))
		return 0;
	rc = backup_write_manifest(eng, s);
	return rc < 0 ? rc : 1;
}

static gpointer fsync_thread(gpointer arg)
{
	int fd = GPOINTER_TO_INT(arg);

	return GINT_TO_POINTER(fault("fsync", EIO) || fsync(fd) < 0 ? -errno : 0);
}

/*
 * Flush and checksum the copy at once; fill the size.  The checksum
 * streams from the page cache while fsync waits for the disk.
 */
static int flush_and_checksum(const char *path, GCancellable *cancel,
			      struct catalog_snapshot *s, GString *why)
{
	struct stat st;
	GThread *t;
	int fd, rc, frc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = -errno;
		g_string_printf(why, "cannot open the copy: %s", g_strerror(-rc));
		return rc;
	}
	t = g_thread_try_new("snapfs-fsync", fsync_thread, GINT_TO_POINTER(fd),
			     NULL);
	rc = checksum_file(fd, cancel, s->checksum);
	frc = t ? GPOINTER_TO_INT(g_thread_join(t)) :
		  (fsync(fd) < 0 ? -errno : 0);
	if (rc == 0 && frc < 0) {
		rc = frc;
		g_string_printf(why, "cannot flush the copy: %s",
				g_strerror(-rc));
	} else if (rc < 0) {
		g_string_printf(why, "cannot checksum the copy: %s",
				g_strerror(-rc));
	}
	if (rc == 0 && fstat(fd, &st) == 0)
		s->backup_bytes = (uint64_t)st.st_size;
	close(fd);
	return rc;
}

/* Make the copy and put it in place; on failure *why says what failed. */
static int backup_copy(struct snap_engine *eng, struct running_job *rj,
		       struct catalog_snapshot *s, GString *why)
{
	g_autofree char *src = layer_path(eng, s->volume, s->layer);
	g_autofree char *tmp = backup_tmp_path(eng, s, "qcow2");
	g_autofree char *tmpm = backup_tmp_path(eng, s, "json");
	g_autofree char *image = backup_image_path(eng, s);
	g_autofree char *manifest = backup_manifest_path(eng, s);
	g_autofree char *dir = g_path_get_dirname(image);
	g_autofree char *text = NULL;
	int rc;

	rc = safe_mkdir(dir, 0755);
	if (rc == 0)
		rc = safe_mkdir(eng->tmp_dir, 0700);
	if (rc < 0) {
		g_string_printf(why, "cannot create directories on secondary storage: %s",
				g_strerror(-rc));
		return rc;
	}
	rc = copy_image(rj, src, tmp, s->virtual_size, "secondary", why);
	if (rc < 0)
		goto undo_tmp;
	testpoint("backup.converted");
	rc = flush_and_checksum(tmp, rj->cancel, s, why);
	if (rc < 0)
		goto undo_tmp;
	rc = copy_verify(tmp, rj->cancel, s->virtual_size, why);
	if (rc < 0)
		goto undo_tmp;

	s->backed_up_at = clock_now(eng);
	text = manifest_text(s);
	rc = text ? write_durable(tmpm, text) : -ENOMEM;
	if (rc < 0) {
		g_string_printf(why, "cannot write the manifest: %s",
				g_strerror(-rc));
		goto undo_tmp;
	}
	if (fault("rename.backup", EIO) || rename(tmp, image) < 0 ||
	    rename(tmpm, manifest) < 0) {
		rc = -errno;
		g_string_printf(why, "cannot move the copy into place: %s",
				g_strerror(-rc));
		goto undo_final;
	}
	rc = fsync_dir(dir);
	if (rc < 0) {
		g_string_printf(why, "cannot flush the backup directory: %s",
				g_strerror(-rc));
		goto undo_final;
	}
	return 0;

undo_final:
	unlink(manifest);
	unlink(image);
undo_tmp:
	unlink(tmpm);
	unlink(tmp);
	return rc;
}

static void backup_succeeded(struct snap_engine *eng, struct running_job *rj,
			     struct catalog_snapshot *done)
{
	struct catalog_snapshot s;
	int rc, resolved;

	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return; /* the job stays RUNNING; recovery redoes it */
	rc = catalog_snapshot_get_by_id(eng->cat, done->id, &s);
	if (rc == 0 && s.state != SNAP_STATE_BACKING_UP)
		rc = -ECANCELED; /* deleted meanwhile: its rmdir cleans up */
	if (rc == 0) {
		s.state = SNAP_STATE_BACKED_UP;
		s.backed_up_at = done->backed_up_at;
		s.backup_bytes = done->backup_bytes;
		g_strlcpy(s.checksum, done->checksum, sizeof(s.checksum));
		s.err = 0;
		s.error[0] = '\0';
		s.attempts = done->attempts + 1;
		rc = catalog_snapshot_update(eng->cat, &s);
	}
	if (rc == 0)
		rc = catalog_job_delete(eng->cat, rj->job.id);
	if (rc == 0) {
		resolved = catalog_alert_resolve(eng->cat, "backup", s.id);
		rc = resolved < 0 ? resolved : 0;
		if (resolved > 0)
			event_record(eng, "alert.resolve", s.volume, s.name, 0,
				     "backup alert resolved: the backup succeeded");
	}
	if (rc == 0)
		event_record(eng, "backup.end", s.volume, s.name, 0,
			     "backed up: %" G_GUINT64_FORMAT " bytes, %s",
			     s.backup_bytes, s.checksum);
	if (rc == 0)
		rc = layer_prune_primary(eng, s.volume_id);
	rc = catalog_tx_end(eng->cat, rc);
	waiters_wake(eng);
	/* a rename that raced with the copy: the manifest must say the name */
	if (rc == 0 && strcmp(s.name, done->name) != 0)
		backup_write_manifest(eng, &s);
}

static void backup_failed(struct snap_engine *eng, struct running_job *rj,
			  int err, const char *why)
{
	struct catalog_snapshot s;
	struct catalog_job job = rj->job;
	char stamp[32];
	int rc;

	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return;
	rc = catalog_snapshot_get_by_id(eng->cat, job.snapshot_id, &s);
	if (rc == 0 && s.state != SNAP_STATE_BACKING_UP)
		rc = -ECANCELED;
	if (rc == 0) {
		s.state = SNAP_STATE_BACKUP_FAILED;
		s.err = -err;
		g_strlcpy(s.error, why, sizeof(s.error));
		s.attempts++;
		rc = catalog_snapshot_update(eng->cat, &s);
	}
	if (rc == 0) {
		job.attempts++;
		if ((unsigned)job.attempts <= eng->cfg.retries) {
			job.state = JOB_STATE_WAITING;
			job.not_before = clock_now(eng) +
				(int64_t)eng->cfg.retry_delay *
					(1LL << MIN(job.attempts - 1, 20));
			rc = catalog_job_update(eng->cat, &job);
			clock_iso(job.not_before, stamp);
			event_record(eng, "backup.fail", s.volume, s.name, err,
				     "%s; automatic retry %d of %u at %s", why,
				     job.attempts, eng->cfg.retries, stamp);
		} else {
			rc = catalog_job_delete(eng->cat, job.id);
			event_record(eng, "backup.fail", s.volume, s.name, err,
				     "%s; no automatic retries left: write 'retry %s' to the volume's control file",
				     why, s.name);
		}
	}
	if (rc == 0)
		rc = alert_raise_backup(eng, &s);
	catalog_tx_end(eng->cat, rc);
	waiters_wake(eng);
}

void backup_run(struct snap_engine *eng, struct running_job *rj)
{
	g_autoptr(GString) why = g_string_new(NULL);
	struct catalog_snapshot s;
	int rc;

	rc = catalog_snapshot_get_by_id(eng->cat, rj->job.snapshot_id, &s);
	if (rc == -ENOENT) {
		catalog_job_delete(eng->cat, rj->job.id);
		return;
	}
	if (rc < 0 || s.state == SNAP_STATE_DESTROYING)
		return; /* being deleted: the rmdir owns it */
	if (s.state == SNAP_STATE_BACKUP_FAILED) {
		/*
		 * An automatic retry: the snapshot is being backed up again.
		 * Checked and changed in one transaction, so a concurrent
		 * rmdir's Destroying is never overwritten.
		 */
		rc = catalog_tx_begin(eng->cat);
		if (rc < 0)
			return;
		rc = catalog_snapshot_get_by_id(eng->cat, s.id, &s);
		if (rc == 0 && s.state != SNAP_STATE_BACKUP_FAILED)
			rc = -ECANCELED;
		if (rc == 0) {
			s.state = SNAP_STATE_BACKING_UP;
			rc = catalog_snapshot_update(eng->cat, &s);
		}
		if (catalog_tx_end(eng->cat, rc) < 0)
			return;
	} else if (s.state != SNAP_STATE_BACKING_UP) {
		catalog_job_delete(eng->cat, rj->job.id); /* nothing to do */
		return;
	}
	if (!s.layer[0]) {
		backup_failed(eng, rj, -EIO,
			      "the snapshot's data is no longer on primary storage");
		return;
	}
	event_record(eng, "backup.start", s.volume, s.name, 0,
		     "copying to secondary storage (attempt %d)", s.attempts + 1);
	rc = backup_copy(eng, rj, &s, why);
	if (rc < 0 && (rc == -ECANCELED || g_cancellable_is_cancelled(rj->cancel)))
		return;
	if (rc < 0) {
		backup_failed(eng, rj, rc, why->str);
		return;
	}
	backup_succeeded(eng, rj, &s);
}
