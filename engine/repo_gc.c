/*
 * repo_gc.c - mark and sweep of the repository's chunks (repo_gc.h).
 *
 * Mark reads every index and collects the digests it names into one
 * sorted array without duplicates; sweep walks the chunk files
 * (chunkstore_scan()) and hands each one not in the array to
 * chunkstore_remove_if_older(), which decides under the fan-out
 * directory's lock.  Nothing is removed until the whole mark has
 * succeeded: an index that cannot be read might name any chunk.
 *
 * WHY A SORTED ARRAY: 2^20 distinct digests (4 TiB of data in 4 MiB
 * chunks) take 32.0 MiB as a sorted array and 72.0 MiB in a GHashTable
 * keyed by a g_memdup2()'d digest (a 48-byte allocation per key plus the
 * table's slots), measured with mallinfo2() on this project's machine.
 * The array costs more time (0.42 s to sort, 0.62 s for 2^20 lookups by
 * bsearch, against 0.18 s and 0.04 s), which the sweep's 2^20 directory
 * entries and stats dwarf.  Each index is sorted on its own and merged in:
 * the array grows only by the digests it did not hold, in place from its
 * end, so the peak is the array plus the largest index, never the sum of
 * all indexes (backups of one volume share most of their chunks).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib.h>

#include "repo_gc.h"
#include "digest.h"
#include "fault.h"
#include "log.h"
#include "rados.h"

/* The marked set: @len distinct digests, sorted by memcmp, no hole. */
struct marked {
	uint8_t (*d)[DIGEST_LEN];
	size_t len;
};

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

static bool marked_has(const struct marked *m, const uint8_t d[DIGEST_LEN])
{
	return m->len && bsearch(d, m->d, m->len, DIGEST_LEN, digest_cmp);
}

/*
 * Add the @n digests at @v to @m; @v is the caller's scratch (it is
 * sorted and overwritten).  Holes are left out.
 * Return: 0; -ENOMEM (@m unchanged).
 */
static int marked_merge(struct marked *m, uint8_t (*v)[DIGEST_LEN], size_t n)
{
	size_t k = 0, i, j, out;
	void *grown;

	if (n == 0)
		return 0;
	qsort(v, n, DIGEST_LEN, digest_cmp);
	/* keep in v[0..k) the distinct non-hole digests @m lacks; both are
	 * sorted, so one walk of each */
	for (i = 0, j = 0; i < n; i++) {
		if (digest_is_zero(v[i]))
			continue;
		if (k && !memcmp(v[k - 1], v[i], DIGEST_LEN))
			continue;
		while (j < m->len && memcmp(m->d[j], v[i], DIGEST_LEN) < 0)
			j++;
		if (j < m->len && !memcmp(m->d[j], v[i], DIGEST_LEN))
			continue;
		if (k != i)
			memcpy(v[k], v[i], DIGEST_LEN);
		k++;
	}
	if (k == 0)
		return 0;
	grown = g_try_realloc(m->d, (m->len + k) * DIGEST_LEN);
	if (!grown)
		return -ENOMEM;
	m->d = grown;
	/* merge from the ends, into the grown array's tail */
	i = m->len;
	j = k;
	out = m->len + k;
	while (j > 0) {
		if (i > 0 && memcmp(m->d[i - 1], v[j - 1], DIGEST_LEN) > 0)
			memcpy(m->d[--out], m->d[--i], DIGEST_LEN);
		else
			memcpy(m->d[--out], v[--j], DIGEST_LEN);
	}
	m->len += k;
	return 0;
}

/* An atomic load: the caller's flag is set by another thread. */
static bool cancelled(volatile bool *cancel)
{
	return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED);
}

/* ---- mark ---- */

/* Whether @name is a published or unpublished index: "<x>.index", not a
 * temporary (".<x>...") file. */
static bool is_index_name(const char *name)
{
	size_t len = strlen(name);

	return name[0] != '.' && len > 6 && !strcmp(name + len - 6, ".index");
}

/* Mark the digests of @vol_fd/@name, index of volume @vol.
 * Return: 0 (also when it vanished since the listing: a deleted backup
 * names nothing); -EBADMSG; -ENOMEM; -errno (all logged). */
static int mark_index(struct marked *m, const char *volumes_dir,
		      const char *vol, int vol_fd, const char *name,
		      struct repo_gc_stats *stats)
{
	struct repo_index idx;
	int rc;

	if (fault("gc.index", EIO))
		rc = -errno;
	else
		rc = repo_index_read(vol_fd, name, &idx);
	if (rc == -ENOENT)
		return 0;
	if (rc == -ELOOP || rc == -EFBIG)
		rc = -EBADMSG; /* not an index snapfs wrote */
	if (rc < 0) {
		snap_log(LOG_ERR,
			 "repo_gc: cannot read index '%s/%s/%s': %s; nothing "
			 "removed",
			 volumes_dir, vol, name,
			 rc == -EBADMSG ? "damaged" : g_strerror(-rc));
		return rc;
	}
	stats->indexes++;
	/* idx is ours: its array is the scratch space */
	rc = marked_merge(m, idx.digests, (size_t)idx.count);
	repo_index_release(&idx);
	return rc;
}

/* Mark every index in volume directory @vol.  Return: as mark_index(). */
static int mark_volume(struct marked *m, const char *volumes_dir,
		       int volumes_fd, const char *vol, volatile bool *cancel,
		       struct repo_gc_stats *stats)
{
	struct dirent *e;
	struct stat st;
	DIR *d;
	int fd, rc = 0;

	if (fstatat(volumes_fd, vol, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno; /* a volume deleted */
	if (S_ISLNK(st.st_mode)) {
		snap_log(LOG_ERR,
			 "repo_gc: a symbolic link at '%s/%s', not followed; "
			 "nothing removed",
			 volumes_dir, vol);
		return -EBADMSG;
	}
	if (!S_ISDIR(st.st_mode))
		return 0; /* a file holds no index */
	fd = openat(volumes_fd, vol,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 || !(d = fdopendir(fd))) {
		rc = -errno;
		snap_log(LOG_ERR, "repo_gc: cannot open '%s/%s': %m; nothing "
			 "removed", volumes_dir, vol);
		if (fd >= 0)
			close(fd);
		return rc == -ELOOP || rc == -ENOTDIR ? -EBADMSG : rc;
	}
	for (;;) {
		errno = 0;
		e = readdir(d);
		if (!e) {
			if (errno) {
				rc = -errno;
				snap_log(LOG_ERR,
					 "repo_gc: cannot read '%s/%s': %m; "
					 "nothing removed",
					 volumes_dir, vol);
			}
			break;
		}
		if (!is_index_name(e->d_name))
			continue;
		if (cancelled(cancel)) {
			rc = -ECANCELED;
			break;
		}
		rc = mark_index(m, volumes_dir, vol, dirfd(d), e->d_name,
				stats);
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc;
}

/* Mark every index under @volumes_dir.  Return: as mark_index(). */
static int mark_all(struct marked *m, const char *volumes_dir,
		    volatile bool *cancel, struct repo_gc_stats *stats)
{
	g_autoptr(GPtrArray) vols = g_ptr_array_new_with_free_func(g_free);
	struct dirent *e;
	DIR *d;
	int fd, rc = 0;

	fd = open(volumes_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		rc = -errno;
		snap_log(LOG_ERR, "repo_gc: cannot open '%s': %m; nothing "
			 "removed", volumes_dir);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	for (;;) {
		errno = 0;
		e = readdir(d);
		if (!e)
			break;
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			g_ptr_array_add(vols, g_strdup(e->d_name));
	}
	if (errno) {
		rc = -errno;
		snap_log(LOG_ERR, "repo_gc: cannot read '%s': %m; nothing "
			 "removed", volumes_dir);
	}
	for (guint i = 0; rc == 0 && i < vols->len; i++)
		rc = mark_volume(m, volumes_dir, dirfd(d), vols->pdata[i],
				 cancel, stats);
	closedir(d);
	return rc;
}

/* ---- mark, on RADOS: every object "volumes/<vol>/<x>.index" ---- */

struct mark_objects {
	struct marked *m;
	struct rados_store *rs;
	volatile bool *cancel;
	struct repo_gc_stats *stats;
};

static int mark_object(const char *name, void *arg)
{
	struct mark_objects *mo = arg;
	const char *base = strrchr(name, '/');
	struct repo_index idx;
	int rc;

	if (!base || !is_index_name(base + 1))
		return 0;
	if (cancelled(mo->cancel))
		return -ECANCELED;
	rc = fault("gc.index", EIO) ? -errno :
		repo_index_get_object(mo->rs, name, &idx);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0) {
		snap_log(LOG_ERR,
			 "repo_gc: cannot read index object '%s': %s; nothing "
			 "removed", name,
			 rc == -EBADMSG ? "damaged" : g_strerror(-rc));
		return rc;
	}
	mo->stats->indexes++;
	rc = marked_merge(mo->m, idx.digests, (size_t)idx.count);
	repo_index_release(&idx);
	return rc;
}

static int mark_all_objects(struct marked *m, struct rados_store *rs,
			    volatile bool *cancel, struct repo_gc_stats *stats)
{
	struct mark_objects mo = { m, rs, cancel, stats };

	return rados_store_list(rs, "volumes/", mark_object, &mo);
}

/* Mark the digests of the caller's @roots (borrowed: copied to sort). */
static int mark_roots(struct marked *m, const struct repo_index *const *roots,
		      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		g_autofree uint8_t(*v)[DIGEST_LEN] = NULL;
		size_t count = (size_t)roots[i]->count;
		int rc;

		if (count == 0)
			continue;
		v = g_try_malloc(count * DIGEST_LEN);
		if (!v)
			return -ENOMEM;
		memcpy(v, roots[i]->digests, count * DIGEST_LEN);
		rc = marked_merge(m, v, count);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- sweep ---- */

struct sweep {
	const struct marked *marked;
	int64_t cutoff;
	volatile bool *cancel;
	struct repo_gc_stats *stats;
};

static int sweep_one(struct chunkstore *cs, const uint8_t digest[DIGEST_LEN],
		     void *arg)
{
	struct sweep *sw = arg;
	uint64_t bytes;
	int rc;

	if (cancelled(sw->cancel))
		return -ECANCELED;
	sw->stats->chunks_seen++;
	if (marked_has(sw->marked, digest))
		return 0;
	rc = chunkstore_remove_if_older(cs, digest, sw->cutoff, &bytes);
	switch (rc) {
	case 1:
		sw->stats->removed++;
		sw->stats->bytes_freed += bytes;
		return 0;
	case 0:
		sw->stats->kept_young++;
		return 0;
	case -ENOENT: /* removed since the listing */
		sw->stats->chunks_seen--;
		return 0;
	case -EBADMSG: /* not a regular file: left alone (logged) */
		sw->stats->chunks_seen--;
		sw->stats->foreign++;
		return 0;
	default:
		return rc;
	}
}

int repo_gc_run(struct chunkstore *cs, const char *volumes_dir,
		const struct repo_index *const *extra_roots, size_t n_extra,
		int64_t cutoff, volatile bool *cancel,
		struct repo_gc_stats *stats)
{
	return repo_gc_run_on(cs, NULL, volumes_dir, extra_roots, n_extra,
			      cutoff, cancel, stats);
}

int repo_gc_run_on(struct chunkstore *cs, struct rados_store *rs,
		   const char *volumes_dir,
		   const struct repo_index *const *extra_roots, size_t n_extra,
		   int64_t cutoff, volatile bool *cancel,
		   struct repo_gc_stats *stats)
{
	struct marked m = { NULL, 0 };
	struct sweep sw = { &m, cutoff, cancel, stats };
	uint64_t foreign = 0, tmp_removed = 0, tmp_bytes = 0;
	int rc;

	memset(stats, 0, sizeof(*stats));
	rc = mark_roots(&m, extra_roots, n_extra);
	if (rc == 0)
		rc = rs ? mark_all_objects(&m, rs, cancel, stats) :
			  mark_all(&m, volumes_dir, cancel, stats);
	if (rc == 0 && cancelled(cancel))
		rc = -ECANCELED;
	stats->marked = m.len;
	if (rc < 0)
		goto out;

	rc = chunkstore_scan(cs, sweep_one, &sw, &foreign);
	stats->foreign += foreign;
	if (rc < 0)
		goto out;
	if (cancelled(cancel)) {
		rc = -ECANCELED;
		goto out;
	}
	rc = chunkstore_tmp_sweep(cs, cutoff, &tmp_removed, &tmp_bytes);
	stats->tmp_removed = tmp_removed;
	stats->bytes_freed += tmp_bytes;
	if (rc < 0)
		goto out;
	snap_log(LOG_INFO,
		 "repo_gc: %" G_GUINT64_FORMAT " indexes name %" G_GUINT64_FORMAT
		 " chunks; of %" G_GUINT64_FORMAT " chunk files %" G_GUINT64_FORMAT
		 " removed (%" G_GUINT64_FORMAT " bytes with %" G_GUINT64_FORMAT
		 " temporary files), %" G_GUINT64_FORMAT " young kept, %"
		 G_GUINT64_FORMAT " foreign names left alone",
		 stats->indexes, stats->marked, stats->chunks_seen,
		 stats->removed, stats->bytes_freed, stats->tmp_removed,
		 stats->kept_young, stats->foreign);
out:
	g_free(m.d);
	return rc;
}
