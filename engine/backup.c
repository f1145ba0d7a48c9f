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
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "clock.h"
#include "events.h"
#include "fault.h"
#include "fsutil.h"
#include "layer.h"
#include "paths.h"
#include "rados.h"
#include "repo.h"
#include "repo_backup.h"
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

bool backup_indexed(const struct catalog_snapshot *s)
{
	return g_str_has_prefix(s->checksum, "sha256:");
}

static char *manifest_text(struct snap_engine *eng,
			   const struct catalog_snapshot *s)
{
	struct jdoc *d = jdoc_new();
	char stamp[32];

	jdoc_str(d, "volume", s->volume);
	jdoc_str(d, "snapshot", s->name);
	jdoc_str(d, "uuid", s->uuid);
	jdoc_str(d, "host", eng->host);
	jdoc_str(d, "volume_uuid", s->volume_uuid);
	clock_iso(s->created_at, stamp);
	jdoc_str(d, "created_at", stamp);
	clock_iso(s->backed_up_at, stamp);
	jdoc_str(d, "backed_up_at", stamp);
	jdoc_int(d, "virtual_size", (int64_t)s->virtual_size);
	jdoc_int(d, "size", (int64_t)s->backup_bytes);
	if (backup_indexed(s)) {
		g_autofree char *index = g_strdup_printf("%s.index", s->uuid);

		jdoc_str(d, "format", "index");
		jdoc_str(d, "index", index);
		jdoc_str(d, "index_sha256", s->checksum + strlen("sha256:"));
		jdoc_int(d, "chunk_size",
			 repo_chunks(eng) ? chunkstore_chunk_size(repo_chunks(eng)) :
					    REPO_CHUNK_SIZE);
	} else {
		jdoc_str(d, "format", "qcow2");
		jdoc_str(d, "checksum", s->checksum);
	}
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

/* On a RADOS secondary: the manifest object of @s, @text whole (the
 * local file beside it serves backed-up/). */
static int manifest_put_object(struct snap_engine *eng,
			       const struct catalog_snapshot *s,
			       const char *text)
{
	g_autofree char *name = backup_object_name(s, "json");
	int rc;

	rc = fault("manifest.put", EIO) ? -errno :
		rados_store_put(repo_rados(eng), name, text, strlen(text),
				false, (int64_t)time(NULL));
	if (rc < 0)
		snap_log(LOG_ERR, "backup: cannot write manifest object '%s': %s",
			 name, g_strerror(-rc));
	return rc;
}

int backup_write_manifest(struct snap_engine *eng,
			  const struct catalog_snapshot *s)
{
	g_autofree char *text = manifest_text(eng, s);
	g_autofree char *final = backup_manifest_path(eng, s);
	g_autofree char *rnd = g_uuid_string_random();
	g_autofree char *tmp = g_strdup_printf("%s/%s@%s.%s.json", eng->tmp_dir,
					       eng->host, s->uuid, rnd);
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
	rc = fsync_dir(dir);
	if (rc == 0 && repo_rados(eng))
		rc = manifest_put_object(eng, s, text);
	return rc;
}

int backup_check_manifest(struct snap_engine *eng,
			  const struct catalog_snapshot *s)
{
	g_autofree char *want = manifest_text(eng, s);
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
	text = manifest_text(eng, s);
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

/* ---- backups into the repository (repository=on) ---------------------- */

/*
 * The base of an incremental backup of @s: the newest BackedUp backup of
 * its volume taken before it that has an index, when every layer between
 * its snapshot's layer and @s's is still on primary (catalog rows, parent
 * pointers, all live: a layer keep_primary released, or one being merged,
 * leaves no sound base).  On 1, @b, @bidx (repo_index_release()) and
 * @layers (the paths after @b's layer up to @s's) are filled; on 0 the
 * backup reads in full and *@why_full says why.
 */
static int pick_base(struct snap_engine *eng, const struct catalog_snapshot *s,
		     struct catalog_snapshot *b, struct repo_index *bidx,
		     GPtrArray *layers, const char **why_full)
{
	GArray *done = NULL;
	struct catalog_layer l;
	char cur[UUID_TEXT_MAX];
	bool found = false;
	guint i, hops;

	*why_full = "no earlier backup in the repository";
	if (catalog_snapshot_list(eng->cat, s->volume_id, SNAP_STATE_BACKED_UP,
				  &done) < 0)
		return 0;
	for (i = done->len; i-- > 0 && !found;) {
		struct catalog_snapshot *c = &g_array_index(done,
					struct catalog_snapshot, i);

		if (c->id < s->id && backup_indexed(c)) {
			*b = *c;
			found = true;
		} else if (c->id < s->id) {
			/* a tree from before the repository (upgrade) */
			*why_full = "the earlier backups are full qcow2 copies, not in the repository";
		}
	}
	g_array_free(done, TRUE);
	if (!found)
		return 0;
	*why_full = "the base backup's layer is no longer on primary storage";
	if (!b->layer[0] || !s->layer[0])
		return 0;
	g_strlcpy(cur, s->layer, sizeof(cur));
	for (hops = 0; hops < 100000; hops++) {
		if (catalog_layer_get(eng->cat, cur, &l) < 0 ||
		    l.state != LAYER_STATE_LIVE) {
			*why_full = "a layer since the base backup is no longer on primary storage";
			goto no_base;
		}
		g_ptr_array_add(layers, layer_path(eng, s->volume, cur));
		if (!strcmp(l.parent, b->layer))
			break;
		if (!l.parent[0]) {
			*why_full = "the base backup's layer is not below this snapshot's";
			goto no_base;
		}
		g_strlcpy(cur, l.parent, sizeof(cur));
	}
	if (repo_index_of(eng, b, bidx) < 0) {
		*why_full = "the base backup's index cannot be read";
		goto no_base;
	}
	if (bidx->chunk_size != chunkstore_chunk_size(repo_chunks(eng))) {
		repo_index_release(bidx);
		*why_full = "the base backup has another chunk size";
		goto no_base;
	}
	return 1;

no_base:
	g_ptr_array_set_size(layers, 0);
	return 0;
}

struct repo_progress {
	struct running_job *rj;
	uint32_t chunk_size;
};

static void repo_progress_cb(const struct repo_backup_stats *st, void *arg)
{
	struct repo_progress *p = arg;

	__atomic_store_n(&p->rj->bytes_total, st->chunks_planned * p->chunk_size,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&p->rj->bytes_done, st->chunks_done * p->chunk_size,
			 __ATOMIC_RELAXED);
}

static void stats_add(struct repo_backup_stats *to,
		      const struct repo_backup_stats *st)
{
	to->bytes_read += st->bytes_read;
	to->chunks_read += st->chunks_read;
	to->chunks_written += st->chunks_written;
	to->chunks_reused += st->chunks_reused;
	to->chunks_zero += st->chunks_zero;
	to->chunks_over_nbd += st->chunks_over_nbd;
}

/*
 * Touch each chunk @idx took from @base unread (GC spares it until the
 * index is published); the chunks GC or verify removed meanwhile are read
 * again from the image into @idx.  *@touched counts the touches.
 */
static int touch_reused(struct snap_engine *eng, struct running_job *rj,
			const char *src, const struct repo_index *base,
			struct repo_index *idx, struct repo_backup_stats *total,
			uint64_t *touched, GString *why)
{
	struct chunkstore *cs = repo_chunks(eng);
	g_autoptr(GArray) missing = g_array_new(FALSE, FALSE,
						sizeof(struct repo_extent));
	struct repo_backup_stats st = { 0 };
	struct repo_index again;
	struct repo_changes ch = { 0 };
	uint64_t i, k, n = MIN(idx->count, base->count);
	g_autoptr(GArray) at = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	uint8_t (*reused)[DIGEST_LEN];
	bool *gone;
	int rc;

	for (i = 0; i < n; i++)
		if (!repo_index_is_hole(idx, i) &&
		    memcmp(idx->digests[i], base->digests[i], DIGEST_LEN) == 0)
			g_array_append_val(at, i);
	reused = g_malloc((at->len ? at->len : 1) * (size_t)DIGEST_LEN);
	gone = g_new(bool, at->len ? at->len : 1);
	for (k = 0; k < at->len; k++)
		memcpy(reused[k], idx->digests[g_array_index(at, uint64_t, k)],
		       DIGEST_LEN);
	/* each fan-out directory locked once for all its chunks */
	rc = chunkstore_touch_many(cs, (const uint8_t (*)[DIGEST_LEN])reused,
				   at->len, gone);
	for (k = 0; rc == 0 && k < at->len; k++) {
		uint64_t j = g_array_index(at, uint64_t, k);
		struct repo_extent e = {
			.offset = j * idx->chunk_size,
			.length = repo_index_chunk_len(idx, j),
		};

		if (gone[k])
			g_array_append_val(missing, e);
		else
			(*touched)++;
	}
	g_free(reused);
	g_free(gone);
	if (rc < 0) {
		g_string_printf(why, "cannot touch a reused chunk: %s",
				g_strerror(-rc));
		return rc;
	}
	if (missing->len == 0)
		return 0;
	snap_log(LOG_WARNING, "backup: %u chunk(s) of the base backup are gone from the repository; reading them again",
		 missing->len);
	ch.ext = (struct repo_extent *)(void *)missing->data;
	ch.n = missing->len;
	rc = repo_backup_image(cs, src, idx, &ch, rj->cancel, NULL, NULL,
			       &again, &st);
	stats_add(total, &st);
	if (rc < 0) {
		g_string_printf(why, "cannot read again the chunks gone from the repository: %s",
				g_strerror(-rc));
		return rc;
	}
	repo_index_release(idx);
	*idx = again;
	return 0;
}

/* @a and @b are the same index. */
static bool index_equal(const struct repo_index *a, const struct repo_index *b)
{
	return a->chunk_size == b->chunk_size &&
	       a->virtual_size == b->virtual_size && a->count == b->count &&
	       (a->count == 0 ||
		memcmp(a->digests, b->digests, a->count * DIGEST_LEN) == 0);
}

/*
 * Write @idx as backup @s's index and read it back equal: the file @name
 * in @dfd, or on a RADOS secondary its object (@dfd, @name unused).
 * Return: 0 (testpoint "backup.repo.index_written" passed); -errno, *@why
 * saying what failed.
 */
static int index_write_checked(struct snap_engine *eng,
			       const struct catalog_snapshot *s, int dfd,
			       const char *name, const struct repo_index *idx,
			       GString *why)
{
	struct rados_store *rs = repo_rados(eng);
	g_autofree char *obj = rs ? backup_object_name(s, "index") : NULL;
	struct repo_index back;
	int rc;

	rc = rs ? repo_index_put_object(rs, obj, idx, (int64_t)time(NULL)) :
		  repo_index_write_tagged(dfd, name, eng->host, idx);
	if (rc < 0) {
		g_string_printf(why, "cannot write the index: %s", g_strerror(-rc));
		return rc;
	}
	rc = rs ? repo_index_get_object(rs, obj, &back) :
		  repo_index_read(dfd, name, &back);
	if (rc == 0 && !index_equal(idx, &back))
		rc = -EIO;
	repo_index_release(&back);
	if (rc < 0) {
		g_string_printf(why, "the index read back is not what was written: %s",
				g_strerror(-rc));
		return rc;
	}
	testpoint("backup.repo.index_written");
	return 0;
}

/* Fill @s as published with index digest @hex and @bytes of data, now;
 * its manifest's text (NULL: no memory). */
static char *published(struct snap_engine *eng, struct catalog_snapshot *s,
		       const char *hex, uint64_t bytes)
{
	g_snprintf(s->checksum, sizeof(s->checksum), "sha256:%s", hex);
	s->backup_bytes = bytes;
	s->backed_up_at = clock_now(eng);
	return manifest_text(eng, s);
}

/*
 * repo_publish() on a RADOS secondary, from the index's digest @hex on:
 * the index object written whole and read back equal, then the manifest
 * object, and the manifest's local file for backed-up/.  On failure the
 * index object goes again.
 */
static int repo_publish_rados(struct snap_engine *eng,
			      struct catalog_snapshot *s,
			      const struct repo_index *idx, const char *hex,
			      uint64_t bytes, GString *why)
{
	struct rados_store *rs = repo_rados(eng);
	g_autofree char *iname = backup_object_name(s, "index");
	g_autofree char *mname = backup_object_name(s, "json");
	g_autofree char *manifest = backup_manifest_path(eng, s);
	g_autofree char *tmpm = backup_tmp_path(eng, s, "json");
	g_autofree char *text = NULL;
	int rc;

	rc = index_write_checked(eng, s, -1, NULL, idx, why);
	if (rc < 0)
		goto undo_index;
	text = published(eng, s, hex, bytes);
	rc = text ? manifest_put_object(eng, s, text) : -ENOMEM;
	if (rc < 0) {
		g_string_printf(why, "cannot write the manifest: %s",
				g_strerror(-rc));
		goto undo_index;
	}
	rc = write_durable(tmpm, text);
	if (rc == 0 && rename(tmpm, manifest) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmpm);
		g_string_printf(why, "cannot write the manifest's local copy '%s': %s",
				manifest, g_strerror(-rc));
		goto undo_manifest;
	}
	/* a crash test's kill -9: published in the pool, not in the catalog */
	testpoint("backup.repo.manifest_written");
	return 0;

undo_manifest:
	rados_store_remove(rs, mname);
undo_index:
	rados_store_remove(rs, iname);
	s->checksum[0] = '\0';
	return rc;
}

/*
 * Publish @idx as the backup of @s (docs/repository.md, "Writing and
 * publishing", steps 1-3): every chunk present, the index written and
 * read back equal, then the manifest.  Fills s->checksum, backup_bytes,
 * backed_up_at.  On failure nothing is left published.
 */
static int repo_publish(struct snap_engine *eng, struct catalog_snapshot *s,
			const struct repo_index *idx, uint64_t moves_at_start,
			GString *why)
{
	g_autofree char *ipath = backup_index_path(eng, s);
	g_autofree char *manifest = backup_manifest_path(eng, s);
	g_autofree char *tmpm = backup_tmp_path(eng, s, "json");
	g_autofree char *dir = g_path_get_dirname(ipath);
	g_autofree char *name = g_path_get_basename(ipath);
	g_autofree char *text = NULL;
	char hex[DIGEST_HEX_LEN + 1];
	void *buf = NULL;
	size_t len;
	uint64_t i, bytes = 0;
	int dfd, rc;

	/* every chunk the index names is there, proven since this backup
	 * began: its new chunks by the commits before repo_backup_image()
	 * returned (each read back once, chunkstore.h, DURABILITY), a chunk
	 * it found stored by the put that touched it, the chunks taken from
	 * the base by touch_reused(), which read again those gone.  Only when a
	 * verify moved damaged chunks out meanwhile (@moves_at_start) is
	 * each name looked up once more: a stat per entry, which otherwise
	 * proves nothing new (a removal can still come after it; verify
	 * re-hashes them all, docs/repository.md) */
	for (i = 0; i < idx->count; i++) {
		if (repo_index_is_hole(idx, i))
			continue;
		rc = repo_moves(eng) == moves_at_start ? 1 :
			chunkstore_has(repo_chunks(eng), idx->digests[i]);
		if (rc == 0)
			rc = -ENOENT;
		if (rc < 0) {
			g_autofree char *cpath =
				chunkstore_path(repo_chunks(eng), idx->digests[i]);

			g_string_printf(why, "chunk '%s' the index names %s: %s",
					cpath, rc == -ENOENT ? "is not in the repository" :
					"cannot be checked", g_strerror(-rc));
			return rc;
		}
		bytes += repo_index_chunk_len(idx, i);
	}
	rc = repo_index_encode(idx, &buf, &len);
	if (rc < 0) {
		g_string_printf(why, "cannot encode the index: %s", g_strerror(-rc));
		return rc;
	}
	digest_to_hex((const uint8_t *)buf + len - DIGEST_LEN, hex);
	free(buf);
	if (repo_rados(eng))
		return repo_publish_rados(eng, s, idx, hex, bytes, why);

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		g_string_printf(why, "cannot open the backup directory: %s",
				g_strerror(-rc));
		return rc;
	}
	/* a failed directory fsync leaves the index under its name: this
	 * backup's own, never published, so it goes (undo_index) */
	rc = index_write_checked(eng, s, dfd, name, idx, why);
	if (rc < 0)
		goto undo_index;
	text = published(eng, s, hex, bytes);
	rc = text ? write_durable(tmpm, text) : -ENOMEM;
	if (rc < 0) {
		g_string_printf(why, "cannot write the manifest: %s",
				g_strerror(-rc));
		goto undo_index;
	}
	if (fault("rename.manifest", EIO) || rename(tmpm, manifest) < 0) {
		rc = -errno;
		g_string_printf(why, "cannot move the manifest into place: %s",
				g_strerror(-rc));
		unlink(tmpm);
		goto undo_index;
	}
	rc = fsync_dir(dir);
	if (rc < 0) {
		g_string_printf(why, "cannot flush the backup directory: %s",
				g_strerror(-rc));
		unlink(manifest);
		goto undo_index;
	}
	/* a crash test's kill -9: published on disk, not in the catalog */
	testpoint("backup.repo.manifest_written");
	close(dfd);
	return 0;

undo_index:
	unlinkat(dfd, name, 0);
	s->checksum[0] = '\0';
	close(dfd);
	return rc;
}

/*
 * Back up @s into the repository: incremental over the newest sound base,
 * else in full; *@detail says what was read and written (the event).
 */
static int backup_repo(struct snap_engine *eng, struct running_job *rj,
		       struct catalog_snapshot *s, GString *why, GString *detail)
{
	struct chunkstore *cs = repo_chunks(eng);
	g_autofree char *src = layer_path(eng, s->volume, s->layer);
	g_autofree char *ipath = backup_index_path(eng, s);
	g_autofree char *dir = g_path_get_dirname(ipath);
	g_autoptr(GPtrArray) layers = g_ptr_array_new_with_free_func(g_free);
	struct repo_progress prog = { .rj = rj,
				      .chunk_size = chunkstore_chunk_size(cs) };
	struct repo_backup_stats st = { 0 }, total = { 0 };
	struct repo_changes changed = { 0 };
	struct repo_active *act = NULL;
	struct catalog_snapshot b = { 0 };
	struct repo_index bidx = { 0 }, idx = { 0 };
	const char *why_full = NULL;
	uint64_t moves_at_start;
	uint64_t touched = 0;
	bool incremental;
	int rc;

	rc = safe_mkdir(dir, 0755);
	if (rc == 0)
		rc = safe_mkdir(eng->tmp_dir, 0700);
	if (rc < 0) {
		g_string_printf(why, "cannot create directories on secondary storage: %s",
				g_strerror(-rc));
		return rc;
	}
	/* before anything is found present (repo_publish()) */
	moves_at_start = repo_moves(eng);
	incremental = pick_base(eng, s, &b, &bidx, layers, &why_full) == 1;
	rc = repo_backup_begin(eng, incremental ? &bidx : NULL, &act);
	if (rc < 0) {
		g_string_printf(why, "cannot register the backup: %s",
				g_strerror(-rc));
		goto out;
	}
	if (incremental) {
		rc = repo_changed_extents((const char *const *)layers->pdata,
					  layers->len, rj->cancel, &changed);
		if (rc < 0) {
			g_string_printf(why, "cannot read what changed since backup '%s': %s",
					b.name, g_strerror(-rc));
			goto out;
		}
	}
	__atomic_store_n(&rj->bytes_total, s->virtual_size, __ATOMIC_RELAXED);
	rc = repo_backup_image(cs, src, incremental ? &bidx : NULL, &changed,
			       rj->cancel, repo_progress_cb, &prog,
			       &idx, &st);
	stats_add(&total, &st);
	if (rc < 0) {
		g_string_printf(why, "cannot back up into the repository: %s",
				g_strerror(-rc));
		goto out;
	}
	if (incremental) {
		rc = touch_reused(eng, rj, src, &bidx, &idx, &total, &touched, why);
		if (rc < 0)
			goto out;
	}
	testpoint("backup.repo.chunks_written");
	rc = repo_publish(eng, s, &idx, moves_at_start, why);
	if (rc < 0)
		goto out;
	if (incremental)
		g_string_printf(detail, "incremental over backup '%s'", b.name);
	else
		g_string_printf(detail, "full (%s)", why_full);
	g_string_append_printf(detail,
			       ": read %" G_GUINT64_FORMAT " bytes, %" G_GUINT64_FORMAT
			       " chunks; %" G_GUINT64_FORMAT " chunks written, %"
			       G_GUINT64_FORMAT " reused, %" G_GUINT64_FORMAT
			       " copied from the base, %" G_GUINT64_FORMAT " holes",
			       total.bytes_read, total.chunks_read,
			       total.chunks_written, total.chunks_reused,
			       st.chunks_copied, total.chunks_zero);
	if (total.chunks_over_nbd)
		g_string_append_printf(detail, " (%" G_GUINT64_FORMAT
				       " chunks read over NBD)",
				       total.chunks_over_nbd);
out:
	repo_backup_end(eng, act);
	repo_index_release(&idx);
	repo_index_release(&bidx);
	repo_changes_clear(&changed);
	return rc;
}

static void backup_succeeded(struct snap_engine *eng, struct running_job *rj,
			     struct catalog_snapshot *done, const char *detail)
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
	if (rc == 0 && detail)
		event_record(eng, "backup.end", s.volume, s.name, 0,
			     "backed up into the repository: %" G_GUINT64_FORMAT
			     " bytes of data, %s",
			     s.backup_bytes, detail);
	else if (rc == 0)
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
	g_autoptr(GString) detail = g_string_new(NULL);
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
		     "%s (attempt %d)", repo_chunks(eng) ?
		     "backing up into the repository" :
		     "copying to secondary storage", s.attempts + 1);
	if (repo_chunks(eng))
		rc = backup_repo(eng, rj, &s, why, detail);
	else
		rc = backup_copy(eng, rj, &s, why);
	if (rc < 0 && (rc == -ECANCELED || g_cancellable_is_cancelled(rj->cancel)))
		return;
	if (rc < 0) {
		backup_failed(eng, rj, rc, why->str);
		return;
	}
	backup_succeeded(eng, rj, &s, repo_chunks(eng) ? detail->str : NULL);
}
