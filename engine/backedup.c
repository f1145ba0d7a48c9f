/*
 * backedup.c - the backed-up/ tree: which volumes have backups, their
 * backed-up snapshots, and the files behind each: a qcow2 file on
 * secondary storage, or (a repository backup) a qcow2 view synthesized
 * from its index (qcow2_synth.h), its data read from the chunk store.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backedup.h"
#include "backup.h"
#include "chunkcache.h"
#include "events.h"
#include "log.h"
#include "manifests.h"
#include "paths.h"
#include "qcow2_synth.h"
#include "repo.h"

/* This host's backup (@host NULL) from the catalog, or another host's
 * from its manifest. */
static int backedup_find(struct snap_engine *eng, const char *host,
			 const char *vol, const char *snap,
			 struct catalog_snapshot *s)
{
	if (host)
		return foreign_backup(eng, host, vol, snap, s);
	return backedup_snapshot(eng, vol, snap, s);
}

int snap_backup_hosts(struct snap_engine *eng, char ***names_out)
{
	return foreign_hosts(eng, names_out);
}

int snap_backup_volumes(struct snap_engine *eng, const char *host,
			char ***names_out)
{
	if (host)
		return foreign_volumes(eng, host, names_out);
	return catalog_backup_volume_names(eng->cat, names_out);
}

int snap_backup_list(struct snap_engine *eng, const char *host,
		     const char *vol, char ***names_out)
{
	struct catalog_volume v;
	int rc = snap_name_valid(vol);

	if (rc < 0)
		return -ENOENT;
	if (host)
		return foreign_snapshots(eng, host, vol, names_out);
	rc = catalog_volume_get(eng->cat, vol, &v);
	if (rc < 0)
		return rc;
	return catalog_snapshot_names(eng->cat, v.id, true, names_out);
}

int snap_backup_dir_mtime(struct snap_engine *eng, const char *vol,
			  struct timespec *mtime_out)
{
	g_autofree char *dir = NULL;
	struct stat st;

	if (vol && snap_name_valid(vol) < 0)
		return -ENOENT;
	dir = vol ? g_build_filename(eng->backups_dir, vol, NULL) :
		    g_strdup(eng->backups_dir);
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOENT;
	*mtime_out = st.st_mtim;
	return 0;
}

int snap_backup_paths(struct snap_engine *eng, const char *host,
		      const char *vol, const char *snap, uint64_t *id_out,
		      char **image_out, char **manifest_out)
{
	struct catalog_snapshot s;
	int rc = backedup_find(eng, host, vol, snap, &s);

	if (rc < 0)
		return rc;
	if (id_out)
		*id_out = (uint64_t)s.id;
	if (image_out)
		*image_out = backup_image_path(eng, &s);
	if (manifest_out)
		*manifest_out = backup_manifest_path(eng, &s);
	return 0;
}

/* ---- the image of a backup: a file, or synthesized from an index ------- */

/*
 * struct snap_backup_view - an open synthesized qcow2 view of one
 * repository backup: its index, its layout, and its chunk cache
 * (chunkcache.h: the chunks last read, and the next ones read ahead for a
 * sequential reader; thread-safe).  Read-only after open.
 */
struct snap_backup_view {
	struct snap_engine *eng;
	char *name; /* vol/snap, for messages */
	struct repo_index idx;
	struct qcow2_synth *synth;
	struct chunk_cache *cache;
};

int backedup_snapshot(struct snap_engine *eng, const char *vol,
		      const char *snap, struct catalog_snapshot *s)
{
	struct catalog_volume v;
	int rc;

	if (snap_name_valid(vol) < 0 || snap_name_valid(snap) < 0)
		return -ENOENT;
	rc = catalog_volume_get(eng->cat, vol, &v);
	if (rc == 0)
		rc = catalog_snapshot_get(eng->cat, v.id, snap, s);
	if (rc < 0)
		return rc;
	return s->state == SNAP_STATE_BACKED_UP ||
	       s->state == SNAP_STATE_DAMAGED ? 0 : -ENOENT;
}

/* The index and layout of repository backup @s, into @idx and @synth. */
static int synth_open(struct snap_engine *eng, const struct catalog_snapshot *s,
		      struct repo_index *idx, struct qcow2_synth **synth)
{
	int rc;

	if (!repo_chunks(eng))
		return -ENOENT; /* repository=off: nothing to serve it from */
	rc = repo_index_of(eng, s, idx);
	if (rc < 0)
		return rc == -ENOENT ? rc : -EIO;
	rc = qcow2_synth_new(idx, synth);
	if (rc < 0) {
		repo_index_release(idx);
		return -EIO;
	}
	return 0;
}

int snap_backup_image_stat(struct snap_engine *eng, const char *host,
			   const char *vol, const char *snap,
			   struct snap_backup_image *out)
{
	struct catalog_snapshot s;
	struct qcow2_synth *synth;
	struct repo_index idx;
	struct stat st;
	int rc;

	rc = backedup_find(eng, host, vol, snap, &s);
	if (rc < 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->id = (uint64_t)s.id;
	if (!backup_indexed(&s)) {
		g_autofree char *path = backup_image_path(eng, &s);

		if (lstat(path, &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode))
			return -ENOENT;
		out->size = (uint64_t)st.st_size;
		out->blocks = (uint64_t)st.st_blocks;
		out->mtime = st.st_mtim;
		return 0;
	}
	rc = synth_open(eng, &s, &idx, &synth);
	if (rc < 0)
		return rc;
	out->size = qcow2_synth_size(synth);
	out->blocks = (out->size + 511) / 512;
	out->mtime.tv_sec = s.backed_up_at;
	out->synthesized = true;
	qcow2_synth_free(synth);
	repo_index_release(&idx);
	return 0;
}

int snap_backup_open(struct snap_engine *eng, const char *host,
		     const char *vol, const char *snap, int *fd_out,
		     struct snap_backup_view **view_out)
{
	struct catalog_snapshot s;
	struct snap_backup_view *v;
	int rc, fd;

	*fd_out = -1;
	*view_out = NULL;
	rc = backedup_find(eng, host, vol, snap, &s);
	if (rc < 0)
		return rc;
	if (s.state == SNAP_STATE_DAMAGED) { /* verify.h: listed, not served */
		event_record(eng, "repository.damaged", s.volume, s.name, -EIO,
			     "backup '%s' is Damaged (see alerts/): its view is not served",
			     s.name);
		return -EIO;
	}
	if (!backup_indexed(&s)) {
		g_autofree char *path = backup_image_path(eng, &s);

		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -errno;
		*fd_out = fd;
		return 0;
	}
	v = g_new0(struct snap_backup_view, 1);
	rc = synth_open(eng, &s, &v->idx, &v->synth);
	if (rc < 0) {
		g_free(v);
		return rc;
	}
	v->cache = chunk_cache_new(repo_chunks(eng), &v->idx);
	if (!v->cache) {
		qcow2_synth_free(v->synth);
		repo_index_release(&v->idx);
		g_free(v);
		return -ENOMEM;
	}
	v->eng = eng;
	v->name = g_strdup_printf("%s/%s", vol, snap);
	*view_out = v;
	return 0;
}

/* Copy @len bytes of entry @i from @off into @dst, through the cache. */
static int view_chunk(struct snap_backup_view *v, uint64_t i, uint32_t off,
		      size_t len, void *dst)
{
	int rc = chunk_cache_copy(v->cache, i, off, len, dst);

	if (rc < 0) {
		g_autofree char *path = chunkstore_path(repo_chunks(v->eng),
							v->idx.digests[i]);

		snap_log(LOG_ERR, "backedup: cannot read chunk '%s' of backup '%s': %s",
			 path, v->name, g_strerror(-rc));
		return -EIO;
	}
	return 0;
}

ssize_t snap_backup_read(struct snap_backup_view *v, void *buf, size_t len,
			 uint64_t off)
{
	struct qcow2_piece pieces[64];
	size_t done = 0, n, k;
	ssize_t got;
	int rc;

	while (done < len) {
		got = qcow2_synth_read(v->synth, off + done, len - done, pieces,
				       G_N_ELEMENTS(pieces), &n);
		if (got < 0)
			return -EIO;
		if (got == 0)
			break;
		for (k = 0; k < n; k++) {
			uint8_t *dst = (uint8_t *)buf + (pieces[k].off - off);

			if (pieces[k].kind == QCOW2_PIECE_CHUNK)
				rc = view_chunk(v, pieces[k].chunk,
						pieces[k].chunk_off, pieces[k].len,
						dst);
			else
				rc = qcow2_synth_fill(v->synth, &pieces[k], dst);
			if (rc < 0)
				return rc == -EINVAL ? -EIO : rc;
		}
		done += (size_t)got;
	}
	return (ssize_t)done;
}

void snap_backup_release(struct snap_backup_view *v)
{
	if (!v)
		return;
	chunk_cache_free(v->cache); /* before the index it reads */
	qcow2_synth_free(v->synth);
	repo_index_release(&v->idx);
	g_free(v->name);
	g_free(v);
}
