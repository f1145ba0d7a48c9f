/*
 * images.c - images/: the raw point-in-time view of each repository
 * backup, images/volumes/<vol>/<snap>.raw (docs/tree.md, "images/").
 *
 * A view is the volume's virtual size of raw bytes: byte @off lies in
 * index entry off / chunk_size; a hole entry reads as zeros and costs no
 * I/O, any other entry is read whole from the chunk store (and checked
 * against its digest there).  SEEK_DATA and SEEK_HOLE are answered from
 * the index alone, so `cp --sparse`, `qemu-img convert` and the like skip
 * the holes without reading them.
 *
 * Chunks are read through a chunk cache (chunkcache.h: a few chunks per
 * open view, and the next ones read ahead for a sequential reader).
 *
 * A mechanism: it takes the engine's catalog, the repository's chunk
 * store and index reader (repo.h) and records events (events.h); it holds
 * no engine lock.
 */
#include <errno.h>
#include <string.h>

#include "backedup.h"
#include "backup.h"
#include "chunkcache.h"
#include "chunkstore.h"
#include "context.h"
#include "events.h"
#include "log.h"
#include "repo.h"

/*
 * struct snap_raw_view - an open raw view.  @idx, @eng, @vol, @snap,
 * @cache are read-only after open; @lock guards @damage_told.
 */
struct snap_raw_view {
	struct snap_engine *eng;
	char vol[SNAP_NAME_MAX + 1];
	char snap[SNAP_NAME_MAX + 1];
	struct repo_index idx;
	struct chunk_cache *cache;
	GMutex lock;
	bool damage_told; /* a repository.damaged event was recorded */
};

bool snap_raw_available(struct snap_engine *eng)
{
	return repo_chunks(eng) != NULL;
}

/* The BackedUp repository backup @vol/@snap into @s. */
static int raw_snapshot(struct snap_engine *eng, const char *vol,
			const char *snap, struct catalog_snapshot *s)
{
	int rc;

	if (!snap_raw_available(eng))
		return -ENOENT;
	rc = backedup_snapshot(eng, vol, snap, s);
	if (rc < 0)
		return rc;
	/* a Damaged backup is listed in backed-up/, but has no raw view */
	if (s->state != SNAP_STATE_BACKED_UP || !backup_indexed(s))
		return -ENOENT;
	return 0;
}

int snap_raw_list(struct snap_engine *eng, const char *vol, char ***names_out)
{
	g_auto(GStrv) all = NULL;
	struct catalog_volume v;
	GPtrArray *out;
	int rc;

	*names_out = NULL;
	if (!snap_raw_available(eng) || snap_name_valid(vol) < 0)
		return -ENOENT;
	rc = catalog_volume_get(eng->cat, vol, &v);
	if (rc == 0)
		rc = catalog_snapshot_names(eng->cat, v.id, true, &all);
	if (rc < 0)
		return rc;
	out = g_ptr_array_new();
	for (char **p = all; p && *p; p++) {
		struct catalog_snapshot s;

		if (catalog_snapshot_get(eng->cat, v.id, *p, &s) == 0 &&
		    s.state == SNAP_STATE_BACKED_UP && backup_indexed(&s))
			g_ptr_array_add(out, g_strdup(*p));
	}
	rc = (int)out->len;
	g_ptr_array_add(out, NULL);
	*names_out = (char **)g_ptr_array_free(out, false);
	return rc;
}

int snap_raw_volumes(struct snap_engine *eng, char ***names_out)
{
	g_auto(GStrv) all = NULL;
	GPtrArray *out;
	int rc;

	*names_out = NULL;
	if (!snap_raw_available(eng)) {
		*names_out = g_new0(char *, 1);
		return 0;
	}
	rc = catalog_backup_volume_names(eng->cat, &all);
	if (rc < 0)
		return rc;
	out = g_ptr_array_new();
	for (char **p = all; p && *p; p++) {
		g_auto(GStrv) snaps = NULL;

		if (snap_raw_list(eng, *p, &snaps) > 0)
			g_ptr_array_add(out, g_strdup(*p));
	}
	g_ptr_array_add(out, NULL);
	*names_out = (char **)g_ptr_array_free(out, false);
	return 0;
}

/* The index of @s into @idx; an index that cannot be read is an event. */
static int raw_index(struct snap_engine *eng, const struct catalog_snapshot *s,
		     struct repo_index *idx)
{
	int rc = repo_index_of(eng, s, idx);

	if (rc < 0) {
		event_record(eng, "repository.damaged", s->volume, s->name, EIO,
			     "the index of backup '%s' cannot be read for its raw view: %s",
			     s->name, g_strerror(-rc));
		return -EIO;
	}
	return 0;
}

int snap_raw_stat(struct snap_engine *eng, const char *vol, const char *snap,
		  struct snap_raw_image *out)
{
	struct catalog_snapshot s;
	struct repo_index idx;
	uint64_t bytes = 0;
	int rc;

	rc = raw_snapshot(eng, vol, snap, &s);
	if (rc < 0)
		return rc;
	rc = raw_index(eng, &s, &idx);
	if (rc < 0)
		return rc;
	for (uint64_t i = 0; i < idx.count; i++)
		if (!repo_index_is_hole(&idx, i))
			bytes += repo_index_chunk_len(&idx, i);
	memset(out, 0, sizeof(*out));
	out->id = (uint64_t)s.id;
	out->size = idx.virtual_size;
	out->blocks = (bytes + 511) / 512;
	out->mtime.tv_sec = s.backed_up_at;
	repo_index_release(&idx);
	return 0;
}

int snap_raw_open(struct snap_engine *eng, const char *vol, const char *snap,
		  struct snap_raw_view **view_out)
{
	struct catalog_snapshot s;
	struct snap_raw_view *v;
	int rc;

	*view_out = NULL;
	rc = raw_snapshot(eng, vol, snap, &s);
	if (rc < 0)
		return rc;
	v = g_new0(struct snap_raw_view, 1);
	rc = raw_index(eng, &s, &v->idx);
	if (rc < 0) {
		g_free(v);
		return rc;
	}
	v->eng = eng;
	g_strlcpy(v->vol, s.volume, sizeof(v->vol));
	g_strlcpy(v->snap, s.name, sizeof(v->snap));
	v->cache = chunk_cache_new(repo_chunks(eng), &v->idx);
	if (!v->cache) {
		repo_index_release(&v->idx);
		g_free(v);
		return -ENOMEM;
	}
	g_mutex_init(&v->lock);
	*view_out = v;
	return 0;
}

uint64_t snap_raw_size(const struct snap_raw_view *v)
{
	return v->idx.virtual_size;
}

/* A chunk of the view cannot be read: log, tell once, and say -EIO. */
static int raw_damaged(struct snap_raw_view *v, uint64_t i, int rc)
{
	g_autofree char *path = chunkstore_path(repo_chunks(v->eng),
						v->idx.digests[i]);
	bool tell;

	snap_log(LOG_ERR, "images: cannot read chunk '%s' of backup '%s/%s': %s",
		 path, v->vol, v->snap, g_strerror(-rc));
	g_mutex_lock(&v->lock);
	tell = !v->damage_told;
	v->damage_told = true;
	g_mutex_unlock(&v->lock);
	if (tell)
		event_record(v->eng, "repository.damaged", v->vol, v->snap, EIO,
			     "read of the raw view of backup '%s' failed: chunk %" G_GUINT64_FORMAT " ('%s') is %s",
			     v->snap, i, path,
			     rc == -ENOENT ? "missing" :
			     rc == -EBADMSG ? "damaged" : g_strerror(-rc));
	return -EIO;
}

ssize_t snap_raw_read(struct snap_raw_view *v, void *buf, size_t len,
		      uint64_t off)
{
	uint64_t size = v->idx.virtual_size, cs = v->idx.chunk_size;
	uint8_t *dst = buf;
	size_t done = 0;

	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	while (done < len) {
		uint64_t at = off + done, i = at / cs;
		uint32_t in = (uint32_t)(at % cs);
		size_t n = MIN((uint64_t)(len - done), cs - in);
		int rc;

		if (repo_index_is_hole(&v->idx, i)) {
			memset(dst + done, 0, n);
			done += n;
			continue;
		}
		rc = chunk_cache_copy(v->cache, i, in, n, dst + done);
		if (rc < 0)
			return rc == -ENOMEM ? rc : raw_damaged(v, i, rc);
		done += n;
	}
	return (ssize_t)done;
}

int64_t snap_raw_seek(struct snap_raw_view *v, int64_t off, bool data)
{
	uint64_t size = v->idx.virtual_size, cs = v->idx.chunk_size, i;

	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= size)
		return -ENXIO;
	for (i = (uint64_t)off / cs; i < v->idx.count; i++) {
		if (repo_index_is_hole(&v->idx, i) != data) {
			uint64_t at = i * cs;

			return (int64_t)MAX(at, (uint64_t)off);
		}
	}
	return data ? -ENXIO : (int64_t)size;
}

void snap_raw_release(struct snap_raw_view *v)
{
	if (!v)
		return;
	chunk_cache_free(v->cache); /* before the index it reads */
	repo_index_release(&v->idx);
	g_mutex_clear(&v->lock);
	g_free(v);
}
