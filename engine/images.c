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
 * The kernel reads a file in requests of at most 1 MiB (max_readahead,
 * fs/ops.c), often several in flight at once from libfuse's worker
 * threads, while a chunk is 4 MiB: each open view keeps the last
 * RAW_SLOTS chunks it read.  A request whose chunk is being read by
 * another thread waits for that read (@loaded) instead of reading the
 * chunk again; requests for different chunks read them side by side.  A
 * sequential reader also gets the next data chunk read ahead by a worker
 * of a shared GThreadPool (one at a time per view), so reading and
 * checking a chunk overlaps the copies out of the one before: cold `dd
 * bs=1M` of a 2 GiB view went from 0.23-0.28 GB/s to 0.37-0.52 GB/s on
 * the 2-core test machine (busy with other work: noisy).
 *
 * A mechanism: it takes the engine's catalog, the repository's chunk
 * store and index reader (repo.h) and records events (events.h); it holds
 * no engine lock.
 */
#include <errno.h>
#include <string.h>

#include "backup.h"
#include "chunkstore.h"
#include "context.h"
#include "events.h"
#include "log.h"
#include "repo.h"

/* chunks each open view keeps; 4 x 4 MiB: readahead spans at most two */
#define RAW_SLOTS 4

enum raw_slot_state {
	RAW_SLOT_EMPTY,
	RAW_SLOT_LOADING, /* a thread reads it, the lock not held */
	RAW_SLOT_READY,
	RAW_SLOT_LAST
};

/* one cached chunk of a view; every field under the view's @lock */
struct raw_slot {
	enum raw_slot_state state;
	uint64_t entry; /* the index entry it holds (LOADING, READY) */
	uint8_t *buf;	/* chunk_size bytes, allocated at first use */
	unsigned users; /* threads copying out of @buf (READY) or loading */
	uint64_t used;	/* @tick at the last use: the oldest is replaced */
};

/*
 * struct snap_raw_view - an open raw view.  @idx, @eng, @vol, @snap are
 * read-only after open; @lock guards @slots, @tick and @damage_told;
 * @loaded is signalled when a slot leaves LOADING or loses its last user.
 */
struct snap_raw_view {
	struct snap_engine *eng;
	char vol[SNAP_NAME_MAX + 1];
	char snap[SNAP_NAME_MAX + 1];
	struct repo_index idx;
	GMutex lock;
	GCond loaded;
	struct raw_slot slots[RAW_SLOTS];
	uint64_t tick;
	uint64_t last_entry; /* the entry the last read began in */
	bool damage_told; /* a repository.damaged event was recorded */
	GThreadPool *ahead; /* reads the next chunk of a sequential reader */
};

bool snap_raw_available(struct snap_engine *eng)
{
	return repo_chunks(eng) != NULL;
}

/* The BackedUp repository backup @vol/@snap into @s. */
static int raw_snapshot(struct snap_engine *eng, const char *vol,
			const char *snap, struct catalog_snapshot *s)
{
	struct catalog_volume v;
	int rc;

	if (!snap_raw_available(eng))
		return -ENOENT;
	if (snap_name_valid(vol) < 0 || snap_name_valid(snap) < 0)
		return -ENOENT;
	rc = catalog_volume_get(eng->cat, vol, &v);
	if (rc == 0)
		rc = catalog_snapshot_get(eng->cat, v.id, snap, s);
	if (rc < 0)
		return rc;
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

static void ahead_run(void *data, void *user);

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
	g_mutex_init(&v->lock);
	g_cond_init(&v->loaded);
	v->last_entry = UINT64_MAX - 1;
	/* shared threads (not exclusive): one chunk ahead at a time; without
	 * it (no thread) reads work the same, only slower */
	v->ahead = g_thread_pool_new(ahead_run, v, 1, false, NULL);
	*view_out = v;
	return 0;
}

uint64_t snap_raw_size(const struct snap_raw_view *v)
{
	return v->idx.virtual_size;
}

/*
 * Read entry @i into slot @s, which the caller claimed (LOADING, one
 * user).  Called with @v->lock held; drops it across the read.
 * Return: 0 (READY) or -errno (the slot is EMPTY again, no user).
 */
static int slot_fill(struct snap_raw_view *v, struct raw_slot *s, uint64_t i)
{
	size_t got;
	int rc;

	g_mutex_unlock(&v->lock);
	rc = chunkstore_get(repo_chunks(v->eng), v->idx.digests[i], s->buf,
			    v->idx.chunk_size, &got);
	if (rc == 0 && got != repo_index_chunk_len(&v->idx, i))
		rc = -EBADMSG;
	g_mutex_lock(&v->lock);
	g_cond_broadcast(&v->loaded);
	if (rc < 0) {
		s->state = RAW_SLOT_EMPTY;
		s->users = 0;
		return rc;
	}
	s->state = RAW_SLOT_READY;
	return 0;
}

/*
 * Claim the least recently used free slot for entry @i (LOADING, one
 * user), under @v->lock.  Return: the slot; NULL when every slot is in
 * use (*@rc 0) or no memory (*@rc -ENOMEM).
 */
static struct raw_slot *slot_claim(struct snap_raw_view *v, uint64_t i, int *rc)
{
	struct raw_slot *s, *victim = NULL;

	*rc = 0;
	for (s = v->slots; s < v->slots + RAW_SLOTS; s++)
		if (s->users == 0 &&
		    (!victim || s->state == RAW_SLOT_EMPTY ||
		     (victim->state != RAW_SLOT_EMPTY && s->used < victim->used)))
			victim = s;
	if (!victim)
		return NULL;
	if (!victim->buf)
		victim->buf = g_try_malloc(v->idx.chunk_size);
	if (!victim->buf) {
		*rc = -ENOMEM;
		return NULL;
	}
	victim->state = RAW_SLOT_LOADING;
	victim->entry = i;
	victim->users = 1;
	victim->used = ++v->tick;
	return victim;
}

/* The slot holding entry @i (any state), or NULL; under @v->lock. */
static struct raw_slot *slot_find(struct snap_raw_view *v, uint64_t i)
{
	for (struct raw_slot *s = v->slots; s < v->slots + RAW_SLOTS; s++)
		if (s->state != RAW_SLOT_EMPTY && s->entry == i)
			return s;
	return NULL;
}

/* The read-ahead worker: fill the slot it was given (a failure is left
 * for the reader that needs the chunk to report). */
static void ahead_run(void *data, void *user)
{
	struct snap_raw_view *v = user;
	struct raw_slot *s = data;

	g_mutex_lock(&v->lock);
	if (slot_fill(v, s, s->entry) == 0 && --s->users == 0)
		g_cond_broadcast(&v->loaded);
	g_mutex_unlock(&v->lock);
}

/*
 * A reader is in entry @i after entry @v->last_entry: when it reads on
 * sequentially, start reading the next data chunk in the background, so
 * that reading and checking it overlaps the copies out of this one.
 * Under @v->lock.
 */
static void read_ahead(struct snap_raw_view *v, uint64_t i)
{
	struct raw_slot *s;
	uint64_t next = i + 1;
	int rc;

	if (!v->ahead || (i != v->last_entry && i != v->last_entry + 1)) {
		v->last_entry = i;
		return;
	}
	v->last_entry = i;
	while (next < v->idx.count && repo_index_is_hole(&v->idx, next))
		next++;
	if (next >= v->idx.count || next > i + 4 || slot_find(v, next))
		return;
	s = slot_claim(v, next, &rc);
	if (s)
		g_thread_pool_push(v->ahead, s, NULL);
}

/*
 * The slot holding entry @i, ready, with one more user (the caller's: drop
 * it with slot_put()); reads the chunk when no slot holds it.  Called and
 * returns with @v->lock held.  Return: the slot; NULL and *@rc on failure.
 */
static struct raw_slot *slot_get(struct snap_raw_view *v, uint64_t i, int *rc)
{
	struct raw_slot *s;

	read_ahead(v, i);
	for (;;) {
		s = slot_find(v, i);
		if (s && s->state == RAW_SLOT_READY) {
			s->users++;
			s->used = ++v->tick;
			return s;
		}
		if (!s) {
			s = slot_claim(v, i, rc);
			if (s)
				break;
			if (*rc < 0)
				return NULL;
		}
		/* another thread reads it, or every slot is in use */
		g_cond_wait(&v->loaded, &v->lock);
	}
	*rc = slot_fill(v, s, i);
	return *rc < 0 ? NULL : s;
}

/* Drop the caller's use of @s (under @v->lock). */
static void slot_put(struct snap_raw_view *v, struct raw_slot *s)
{
	if (--s->users == 0)
		g_cond_broadcast(&v->loaded);
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
		struct raw_slot *s;
		int rc = 0;

		if (repo_index_is_hole(&v->idx, i)) {
			memset(dst + done, 0, n);
			done += n;
			continue;
		}
		g_mutex_lock(&v->lock);
		s = slot_get(v, i, &rc);
		g_mutex_unlock(&v->lock);
		if (!s)
			return rc == -ENOMEM ? rc : raw_damaged(v, i, rc);
		/* a used slot is neither replaced nor reloaded: copy unlocked */
		memcpy(dst + done, s->buf + in, n);
		g_mutex_lock(&v->lock);
		slot_put(v, s);
		g_mutex_unlock(&v->lock);
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
	if (v->ahead)
		g_thread_pool_free(v->ahead, true, true); /* the one in flight */
	for (size_t k = 0; k < RAW_SLOTS; k++)
		g_free(v->slots[k].buf);
	repo_index_release(&v->idx);
	g_mutex_clear(&v->lock);
	g_cond_clear(&v->loaded);
	g_free(v);
}
