/*
 * repo_backup.c - one image into the repository: chunk it, put each chunk
 * that is not zeros in the chunk store, list them in an index; read only
 * the chunks that changed since a base backup (contract in repo_backup.h).
 *
 * The image's data is read from its layer files directly (imagemap.h: the
 * places `qemu-img map` gives, read with pread(2) by the put threads, so
 * reads overlap hashing and writing and cost one copy per byte); the
 * chunks it shows no data in are holes, never read.  An image that map
 * cannot place (compressed, encrypted clusters) is read over NBD (nbd.h)
 * instead, as all of it was before: block status says which chunks read
 * as zeros, and the caller's thread reads the others.
 *
 * What changed is what each layer allocates itself, zero clusters and
 * discards included: `qemu-img map --output=json` of the layer, extents
 * at depth 0 that are present (imagemap_own_extents(), streamed a line at
 * a time, so a layer with a million extents is never one document in
 * memory), which is how repo_changed_extents() finds what changed.  Block
 * status at allocation depth 1 over NBD says the same and is the fallback;
 * map won because it is one short-lived child where NBD needs a qemu-nbd
 * and a connection per layer (docs/benchmarks.md: 0.08-0.6 s of an
 * incremental backup that the bare convert of its layer does in 0.2 s).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "repo_backup.h"
#include "digest.h"
#include "imagemap.h"
#include "log.h"
#include "nbd.h"

/* Block status is asked for this many chunks at a time: one request per
 * 256 MiB of 1 MiB chunks, 1 GiB of 4 MiB ones */
#define STATUS_WINDOW_CHUNKS 256
/* `qemu-img map` is run for this many chunks at a time (16 GiB of 1 MiB
 * chunks): one child per window, and the extents held at once bounded
 * (at most one per 64 KiB cluster: 256 Ki pieces of 32 bytes, 8 MiB, at
 * 1 MiB chunks; 1 Mi pieces at 4 MiB) */
#define MAP_WINDOW_CHUNKS 16384
/* repo_changed_extents() asks for this much of a layer at a time, so the
 * extents held at once stay bounded */
#define CHANGED_WINDOW (UINT64_C(64) << 30)

/* Chunks are read (from the layer files) and put by this many threads
 * while the caller's thread plans the next ones: one thread's read, hash,
 * write and fsync then overlap the others' (bench/repobench.c measured
 * one thread doing both, and 2 against 3).  The reads are O_DIRECT
 * (imagemap_read()): no kernel read-ahead, each waits for the disk, so
 * more threads than cores keep it busy (6 against 3: docs/benchmarks.md,
 * "The first full backup's CPU") */
#define PUT_THREADS 6
/* chunk buffers: one being read, one per put thread */
#define PUT_BUFFERS (PUT_THREADS + 1)
/* New chunks are staged (chunkstore_batch_add()) and made durable this
 * many bytes at a time (chunkstore_batch_commit()): two journal commits
 * per batch instead of two per chunk (docs/benchmarks.md) */
#define COMMIT_BYTES (UINT64_C(256) << 20)
/* ... and at most this many chunks: a staged chunk holds its file open
 * until the commit (64 KiB chunks would otherwise keep 4096 fds) */
#define COMMIT_CHUNKS_MAX 64

/* repo_backup_set_commit_bytes(); 0: COMMIT_BYTES */
static uint64_t commit_bytes;

void repo_backup_set_commit_bytes(uint64_t bytes)
{
	__atomic_store_n(&commit_bytes, bytes, __ATOMIC_RELAXED);
}

/* repo_backup_set_read_over_nbd() */
static bool over_nbd_only;

void repo_backup_set_read_over_nbd(bool on)
{
	__atomic_store_n(&over_nbd_only, on, __ATOMIC_RELAXED);
}

/* One backup in progress.
 *
 * DESIGN: the caller's thread asks block status and reads chunks; each
 * chunk read goes, in a buffer of r->free, to a put thread (r->pool),
 * which puts it, sets its entry (each entry is written by one thread
 * only) and gives the buffer back.  r->lock guards the stats, r->error
 * and r->free; r->buffer_free is signalled when a buffer comes back.  No
 * other lock is taken under r->lock but what the progress callback takes.
 */
struct backup_run {
	struct chunkstore *cs;
	struct chunkstore_batch *batch; /* new chunks not yet durable */
	size_t commit_every;		/* chunks per commit */
	const struct imagemap_own *top; /* the image's own data (borrowed) */
	struct imagemap *map;	/* reading from the layer files, or */
	struct nbd_image *img;	/* ... over NBD (opened when map cannot) */
	const char *path;
	struct repo_index *idx;
	uint8_t *need;	/* need[i]: chunk i is to be read (or found zero) */
	GCancellable *cancel;
	void (*progress)(const struct repo_backup_stats *st, void *arg);
	void *progress_arg;
	struct repo_backup_stats *st;

	GThreadPool *pool;
	GMutex lock;
	GCond buffer_free;
	GQueue free;	/* buffers of one chunk, not in use */
	int error;	/* the first put's failure */
};

/* Chunk @i: in @buf already (NBD), or to be read from @pieces first. */
struct put_task {
	uint64_t i;
	uint32_t len;
	void *buf;
	struct imagemap_piece *pieces;
	size_t n_pieces;
};

/* Under r->lock. */
static void chunk_done_locked(struct backup_run *r)
{
	r->st->chunks_done++;
	if (r->progress)
		r->progress(r->st, r->progress_arg);
}

/* Commit r->batch; count what it wrote.  Any thread. */
static int commit_batch(struct backup_run *r)
{
	uint64_t written = 0, reused = 0;
	int rc = chunkstore_batch_commit(r->batch, &written, &reused);

	g_mutex_lock(&r->lock);
	r->st->chunks_written += written;
	r->st->chunks_reused += reused;
	if (rc < 0 && !r->error)
		r->error = rc;
	g_mutex_unlock(&r->lock);
	return rc;
}

static void put_thread(gpointer data, gpointer arg)
{
	struct put_task *t = data;
	struct backup_run *r = arg;
	bool staged = false;
	size_t pending = 0;
	int rc = 0;

	if (t->pieces) {
		rc = imagemap_read(t->pieces, t->n_pieces, t->buf,
				   t->i * r->idx->chunk_size, t->len);
		g_mutex_lock(&r->lock);
		if (rc == 0) {
			r->st->bytes_read += t->len;
			r->st->chunks_read++;
		}
		g_mutex_unlock(&r->lock);
	}
	if (rc == 0)
		rc = chunkstore_batch_add(r->batch, t->buf, t->len,
					  r->idx->digests[t->i], &staged,
					  &pending);
	g_mutex_lock(&r->lock);
	if (rc < 0) {
		if (!r->error)
			r->error = rc;
	} else {
		if (staged)
			; /* counted as written or reused by its commit */
		else if (digest_is_zero(r->idx->digests[t->i]))
			r->st->chunks_zero++;
		else
			r->st->chunks_reused++;
		chunk_done_locked(r);
	}
	g_queue_push_tail(&r->free, t->buf);
	g_cond_signal(&r->buffer_free);
	g_mutex_unlock(&r->lock);
	g_free(t->pieces);
	g_free(t);
	/* the buffer is back: the reader goes on while this thread waits
	 * for the batch to be durable */
	if (rc == 0 && pending >= r->commit_every)
		commit_batch(r);
}

/* A free buffer, once there is one; NULL when a put failed (*@rc). */
static void *take_buffer(struct backup_run *r, int *rc)
{
	void *buf = NULL;

	g_mutex_lock(&r->lock);
	while (!r->error && g_queue_is_empty(&r->free))
		g_cond_wait(&r->buffer_free, &r->lock);
	if (r->error)
		*rc = r->error;
	else
		buf = g_queue_pop_head(&r->free);
	g_mutex_unlock(&r->lock);
	return buf;
}

/* Wait until every put is done.  Return: the first put's failure, or 0. */
static int wait_puts(struct backup_run *r)
{
	int rc;

	g_mutex_lock(&r->lock);
	while (g_queue_get_length(&r->free) < PUT_BUFFERS)
		g_cond_wait(&r->buffer_free, &r->lock);
	rc = r->error;
	g_mutex_unlock(&r->lock);
	return rc;
}

/* Do the extents @ext[*@k..@n) (sorted, contiguous) say that [@a, @b)
 * reads as zeros?  Moves *@k to the first extent that ends after @a. */
static bool range_is_zero(const struct nbd_extent *ext, size_t n, size_t *k,
			  uint64_t a, uint64_t b)
{
	size_t j;

	while (*k < n && ext[*k].offset + ext[*k].length <= a)
		(*k)++;
	for (j = *k; j < n && ext[j].offset < b; j++)
		if (!ext[j].zero)
			return false;
	/* covered to @b? (the extents cover the window; defensive) */
	return j > *k && ext[j - 1].offset + ext[j - 1].length >= b;
}

/* Hand chunk @i to a put thread, which reads it from @pieces (g_free,
 * taken), or read it here over NBD when @pieces is NULL. */
static int backup_chunk(struct backup_run *r, uint64_t i,
			struct imagemap_piece *pieces, size_t n_pieces)
{
	struct put_task *t;
	uint32_t len = repo_index_chunk_len(r->idx, i);
	void *buf;
	int rc = 0;

	buf = take_buffer(r, &rc);
	if (!buf) {
		g_free(pieces);
		return rc;
	}
	if (pieces) {
		t = g_new(struct put_task, 1);
		*t = (struct put_task){ i, len, buf, pieces, n_pieces };
		g_thread_pool_push(r->pool, t, NULL);
		return 0;
	}
	rc = nbd_image_pread(r->img, buf, len, i * r->idx->chunk_size);
	g_mutex_lock(&r->lock);
	if (rc < 0) {
		g_queue_push_tail(&r->free, buf);
		g_mutex_unlock(&r->lock);
		return rc;
	}
	r->st->bytes_read += len;
	r->st->chunks_read++;
	r->st->chunks_over_nbd++;
	g_mutex_unlock(&r->lock);
	t = g_new0(struct put_task, 1);
	t->i = i;
	t->len = len;
	t->buf = buf;
	/* cannot fail: the pool is not exclusive */
	g_thread_pool_push(r->pool, t, NULL);
	return 0;
}

/* The first and last chunk of [@w0, @w1) that r->need marks; false when
 * none is. */
static bool needed_span(struct backup_run *r, uint64_t w0, uint64_t w1,
			uint64_t *first, uint64_t *last)
{
	uint64_t i;

	*first = w1;
	for (i = w0; i < w1; i++) {
		if (!r->need[i])
			continue;
		if (*first == w1)
			*first = i;
		*last = i;
	}
	return *first != w1;
}

/* Chunk @i is a hole: no data, nothing stored. */
static void chunk_zero(struct backup_run *r, uint64_t i)
{
	memset(r->idx->digests[i], 0, DIGEST_LEN);
	g_mutex_lock(&r->lock);
	r->st->chunks_zero++;
	chunk_done_locked(r);
	g_mutex_unlock(&r->lock);
}

/* Back up the chunks of [@w0, @w1) that r->need marks and that the image's
 * own file holds whole (r->top), reading them from that file alone: no map
 * of the chain is needed for them.  Unmarks each one handed out. */
static int own_window(struct backup_run *r, uint64_t w0, uint64_t w1)
{
	uint32_t cs = r->idx->chunk_size;
	uint64_t i;
	int rc;

	for (i = w0; i < w1; i++) {
		uint64_t a = i * cs, b = a + repo_index_chunk_len(r->idx, i);
		struct imagemap_piece *p;
		size_t n;

		if (!r->need[i] || !imagemap_own_placed(r->top, a, b))
			continue;
		if (g_cancellable_is_cancelled(r->cancel))
			return -ECANCELED;
		r->need[i] = 0;
		rc = imagemap_own_pieces(r->top, a, b, &p, &n);
		if (rc == 0 && !p)
			chunk_zero(r, i); /* zero clusters */
		else if (rc == 0)
			rc = backup_chunk(r, i, p, n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Back up the chunks [@w0, @w1) that r->need marks, reading them from the
 * layer files.  Return: -ENOTSUP, before any chunk, when the map cannot
 * place the window's data (read it over NBD). */
static int map_window(struct backup_run *r, uint64_t w0, uint64_t w1)
{
	uint32_t cs = r->idx->chunk_size;
	uint64_t first, last = 0, i;
	int rc;

	if (!needed_span(r, w0, w1, &first, &last))
		return 0;
	rc = imagemap_load(r->map, first * cs,
			   last * cs + repo_index_chunk_len(r->idx, last) -
				   first * cs,
			   r->cancel);
	if (rc < 0)
		return rc;
	for (i = first; i <= last; i++) {
		uint64_t a = i * cs, b = a + repo_index_chunk_len(r->idx, i);
		struct imagemap_piece *p;
		size_t n;

		if (!r->need[i])
			continue;
		if (g_cancellable_is_cancelled(r->cancel))
			return -ECANCELED;
		if (imagemap_is_zero(r->map, a, b)) {
			chunk_zero(r, i);
			continue;
		}
		rc = imagemap_pieces(r->map, a, b, &p, &n);
		if (rc == 0)
			rc = backup_chunk(r, i, p, n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Back up the chunks [@w0, @w1) that r->need marks, over NBD. */
static int nbd_window(struct backup_run *r, uint64_t w0, uint64_t w1)
{
	uint32_t cs = r->idx->chunk_size;
	uint64_t first, last = 0, i;
	g_autofree struct nbd_extent *ext = NULL;
	size_t n = 0, k = 0;
	int rc;

	if (!needed_span(r, w0, w1, &first, &last))
		return 0;
	rc = nbd_image_extents(r->img, first * cs,
			       last * cs + repo_index_chunk_len(r->idx, last) -
				       first * cs,
			       &ext, &n);
	if (rc < 0)
		return rc;
	for (i = first; i <= last; i++) {
		uint64_t a = i * cs;

		if (!r->need[i])
			continue;
		if (g_cancellable_is_cancelled(r->cancel))
			return -ECANCELED;
		if (range_is_zero(ext, n, &k, a,
				  a + repo_index_chunk_len(r->idx, i))) {
			chunk_zero(r, i);
			continue;
		}
		rc = backup_chunk(r, i, NULL, 0);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* From now on read over NBD: the map could not place some data. */
static int read_over_nbd(struct backup_run *r)
{
	/* the put threads may still read with the map's files */
	int rc = wait_puts(r);

	if (rc < 0)
		return rc;
	imagemap_close(r->map);
	r->map = NULL;
	rc = nbd_image_open(r->path, &r->img);
	if (rc == 0 && nbd_image_size(r->img) != r->idx->virtual_size) {
		snap_log(LOG_ERR, "repo_backup: '%s' is %" G_GUINT64_FORMAT
			 " bytes over NBD, %" G_GUINT64_FORMAT " in its header",
			 r->path, nbd_image_size(r->img), r->idx->virtual_size);
		rc = -EIO;
	}
	return rc;
}

/* Mark in r->need what @base cannot give, copy the rest from it. */
static int plan_incremental(struct backup_run *r, const struct repo_index *base,
			    const struct repo_changes *changed)
{
	const struct repo_extent *ext = changed ? changed->ext : NULL;
	size_t n_changed = changed ? changed->n : 0;
	struct repo_index *idx = r->idx;
	uint32_t cs = idx->chunk_size;
	uint64_t i;
	size_t e;

	if (base->chunk_size != cs) {
		snap_log(LOG_ERR, "repo_backup: base index of chunk size %u "
			 "for a store of %u '%s'", base->chunk_size, cs, r->path);
		return -EINVAL;
	}
	for (i = 0; i < idx->count; i++) {
		if (i < base->count && repo_index_chunk_len(base, i) ==
					       repo_index_chunk_len(idx, i))
			memcpy(idx->digests[i], base->digests[i], DIGEST_LEN);
		else
			r->need[i] = 1;
	}
	for (e = 0; e < n_changed; e++) {
		uint64_t a = ext[e].offset, b;

		if (ext[e].length == 0 || a >= idx->virtual_size)
			continue;
		b = idx->virtual_size - a < ext[e].length ? idx->virtual_size
							  : a + ext[e].length;
		for (i = a / cs; i <= (b - 1) / cs; i++)
			r->need[i] = 1;
	}
	return 0;
}

int repo_backup_image(struct chunkstore *cs, const char *image_path,
		      const struct repo_index *base,
		      const struct repo_changes *changed, GCancellable *cancel,
		      void (*progress)(const struct repo_backup_stats *st,
				       void *arg),
		      void *progress_arg, struct repo_index *out,
		      struct repo_backup_stats *stats)
{
	struct repo_backup_stats scratch;
	struct backup_run r = {
		.cs = cs, .path = image_path, .idx = out, .cancel = cancel,
		.progress = progress, .progress_arg = progress_arg,
		.st = stats ? stats : &scratch,
	};
	uint32_t chunk = chunkstore_chunk_size(cs);
	uint64_t i, w, w1;
	int rc, rc2;

	memset(out, 0, sizeof(*out));
	memset(r.st, 0, sizeof(*r.st));
	g_mutex_init(&r.lock);
	g_cond_init(&r.buffer_free);
	g_queue_init(&r.free);
	if (__atomic_load_n(&over_nbd_only, __ATOMIC_RELAXED) ||
	    imagemap_open(image_path, &r.map) < 0) {
		rc = nbd_image_open(image_path, &r.img);
		if (rc < 0)
			goto close_image;
	}
	rc = repo_index_init(out, chunk, r.map ? imagemap_size(r.map)
					       : nbd_image_size(r.img));
	if (rc < 0) {
		snap_log(LOG_ERR, "repo_backup: cannot make an index of '%s': "
			 "%s", image_path, g_strerror(-rc));
		goto close_image;
	}
	r.need = g_try_malloc0(out->count ? out->count : 1);
	if (!r.need) {
		rc = -ENOMEM;
		goto release_index;
	}
	for (i = 0; i < PUT_BUFFERS; i++) {
		void *buf = NULL;

		/* aligned for O_DIRECT reads (imagemap_read()) */
		if (posix_memalign(&buf, IMAGEMAP_DIRECT_ALIGN, chunk) != 0) {
			rc = -ENOMEM;
			goto release_index;
		}
		g_queue_push_tail(&r.free, buf);
	}
	rc = chunkstore_batch_new(cs, &r.batch);
	if (rc < 0)
		goto release_index;
	r.commit_every = __atomic_load_n(&commit_bytes, __ATOMIC_RELAXED);
	r.commit_every = MAX(1, (r.commit_every ? r.commit_every : COMMIT_BYTES) /
					chunk);
	r.commit_every = MIN(r.commit_every, COMMIT_CHUNKS_MAX);
	r.pool = g_thread_pool_new(put_thread, &r, PUT_THREADS, FALSE, NULL);
	if (base) {
		rc = plan_incremental(&r, base, changed);
		if (rc < 0)
			goto release_index;
		r.top = changed ? changed->top : NULL;
	} else {
		memset(r.need, 1, out->count);
	}
	for (i = 0; i < out->count; i++)
		if (r.need[i])
			r.st->chunks_planned++;
	for (w = 0; w < out->count; w = w1) {
		w1 = MIN(w + (r.map ? MAP_WINDOW_CHUNKS : STATUS_WINDOW_CHUNKS),
			 out->count);
		rc = r.top ? own_window(&r, w, w1) : 0;
		if (rc == 0)
			rc = r.map ? map_window(&r, w, w1) : nbd_window(&r, w, w1);
		if (rc == -ENOTSUP && r.map) {
			rc = read_over_nbd(&r);
			w1 = w; /* this window again, over NBD */
		}
		if (rc < 0)
			break;
	}
	/* every chunk handed out is put (or failed) before we return */
	rc2 = wait_puts(&r);
	if (rc == 0)
		rc = rc2;
	/* the put threads are idle: nothing commits but this; chunks staged
	 * before a cancel or a read failure are committed too, so that a
	 * retry finds them (unless a put or a commit failed) */
	g_thread_pool_free(r.pool, FALSE, TRUE);
	r.pool = NULL;
	if (!r.error) {
		rc2 = commit_batch(&r);
		if (rc == 0)
			rc = rc2;
	}
	if (rc == 0)
		rc = r.error; /* a put thread's commit that failed */
	if (rc < 0)
		goto release_index;
	r.st->chunks_copied = out->count - r.st->chunks_planned;
	goto close_image;

release_index:
	repo_index_release(out);
close_image:
	if (r.pool)
		g_thread_pool_free(r.pool, FALSE, TRUE);
	chunkstore_batch_free(r.batch); /* what no commit covered goes */
	g_queue_clear_full(&r.free, free);
	g_cond_clear(&r.buffer_free);
	g_mutex_clear(&r.lock);
	g_free(r.need);
	nbd_image_close(r.img);
	imagemap_close(r.map);
	return rc;
}

/* ---- what the layers changed ---- */

static int extent_cmp(const void *pa, const void *pb)
{
	const struct repo_extent *a = pa, *b = pb;

	return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* Append [@offset, @offset + @length) to @acc (an array of struct
 * repo_extent), merged with the last one when they touch. */
static void extent_append(uint64_t offset, uint64_t length, void *arg)
{
	GArray *acc = arg;
	struct repo_extent x = { offset, length };
	struct repo_extent *prev =
		acc->len ? &g_array_index(acc, struct repo_extent, acc->len - 1)
			 : NULL;

	if (prev && prev->offset + prev->length == x.offset)
		prev->length += x.length;
	else
		g_array_append_val(acc, x);
}

/* Append to @acc the extents @path allocates itself: from `qemu-img map`
 * (imagemap.h: one child, no server), else from block status at
 * allocation depth 1 over NBD.  @placed: NULL, or where the map's places
 * of them go (NULL when over NBD). */
static int layer_extents(const char *path, GCancellable *cancel, GArray *acc,
			 struct imagemap_own **placed)
{
	struct nbd_image *img;
	uint64_t size, off;
	guint len0 = acc->len;
	int rc;

	rc = imagemap_own_extents(path, cancel, extent_append, acc, placed);
	if (rc != -ENOTSUP)
		return rc;
	g_array_set_size(acc, len0); /* what a failed parse added */
	rc = nbd_image_open(path, &img);
	if (rc < 0)
		return rc;
	size = nbd_image_size(img);
	for (off = 0; off < size; off += CHANGED_WINDOW) {
		g_autofree struct nbd_extent *ext = NULL;
		size_t n, j;

		if (g_cancellable_is_cancelled(cancel)) {
			rc = -ECANCELED;
			break;
		}
		rc = nbd_image_extents(img, off, MIN(CHANGED_WINDOW, size - off),
				       &ext, &n);
		if (rc < 0)
			break;
		for (j = 0; j < n; j++)
			if (ext[j].depth == 1)
				extent_append(ext[j].offset, ext[j].length, acc);
	}
	nbd_image_close(img);
	return rc;
}

void repo_changes_clear(struct repo_changes *c)
{
	g_clear_pointer(&c->ext, g_free);
	c->n = 0;
	g_clear_pointer(&c->top, imagemap_own_free);
}

int repo_changed_extents(const char *const *layer_paths, size_t n,
			 GCancellable *cancel, struct repo_changes *out)
{
	GArray *acc = g_array_new(FALSE, FALSE, sizeof(struct repo_extent));
	struct repo_extent *v;
	size_t i, m = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++) {
		if (g_cancellable_is_cancelled(cancel)) {
			rc = -ECANCELED;
			goto fail;
		}
		rc = layer_extents(layer_paths[i], cancel, acc,
				   i == 0 ? &out->top : NULL);
		if (rc < 0)
			goto fail;
	}
	if (acc->len == 0) {
		g_array_free(acc, TRUE);
		return 0;
	}
	/* the union: sort, then merge what overlaps or touches */
	v = (struct repo_extent *)(void *)acc->data;
	qsort(v, acc->len, sizeof(*v), extent_cmp);
	for (i = 1; i < acc->len; i++) {
		uint64_t end = v[m].offset + v[m].length;

		if (v[i].offset <= end) {
			uint64_t e2 = v[i].offset + v[i].length;

			if (e2 > end)
				v[m].length = e2 - v[m].offset;
		} else {
			v[++m] = v[i];
		}
	}
	out->n = m + 1;
	out->ext = (struct repo_extent *)(void *)g_array_free(acc, FALSE);
	return 0;

fail:
	g_array_free(acc, TRUE);
	repo_changes_clear(out);
	return rc;
}
