/*
 * chunkcache.c - the chunks an open view keeps, and its read-ahead
 * (chunkcache.h).
 *
 * The kernel reads a file in requests of at most 1 MiB (max_readahead,
 * fs/ops.c; the kernel's FUSE client caps a request at 256 pages), often
 * several in flight at once from libfuse's worker threads, while a chunk
 * is 64 KiB to 64 MiB (1 MiB in a new repository in a directory, 2 MiB on
 * RADOS, 4 MiB in older ones): each cache keeps the last n_slots chunks
 * it read.  A request whose chunk is being read by another thread waits
 * for that read (@loaded) instead of reading the chunk again; requests
 * for different chunks read them side by side.  A request of the qcow2
 * view, whose data is not chunk-aligned, often spans two chunks.
 *
 * Reading a chunk is a cold pread and a SHA-256 of it (about 3 ms per
 * 4 MiB on one core of the test machine); copying it out to the kernel
 * costs far less.  So a sequential reader gets the
 * next 12 MiB of data chunks read ahead by up to CACHE_LOADERS workers
 * of a shared GThreadPool at once: the hashing of two chunks runs on two
 * cores, and the disk read of one overlaps the hashing of another.  With
 * one chunk ahead (the first version) the daemon sat at 0.6 cores and
 * every FUSE request of a new chunk waited for the one loader
 * (docs/benchmarks.md, "Reading the views (issue 13)").
 *
 * A mechanism over the chunk store and an index: no engine lock, no
 * events (the callers report a failed chunk).
 */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "chunkcache.h"
#include "chunkstore.h"
#include "repo_index.h"

/* A sequential reader gets this many bytes read ahead, counted in whole
 * chunks and at least CACHE_AHEAD_MIN of them: 3 chunks of 4 MiB, 12 of
 * 1 MiB (the chunk size is the repository's, repository.json) */
#define CACHE_AHEAD_BYTES (UINT64_C(12) << 20)
#define CACHE_AHEAD_MIN 3
#define CACHE_AHEAD_MAX 16
/* requests of one sequential run come this far apart (read_ahead()) */
#define CACHE_SLACK_BYTES (UINT64_C(8) << 20)
/* chunks each cache keeps: the ones read ahead, the ones requests of the
 * run may still be copied out of (n_slack) and one spare: 6 of 4 MiB,
 * 21 of 1 MiB */
#define CACHE_SLOTS_MAX (2 * CACHE_AHEAD_MAX + 1)
/* read-ahead workers at once per cache (the machine has 2 cores) */
#define CACHE_LOADERS 2
/* bytes past the ones read ahead that the kernel is asked to start
 * reading into its page cache (chunkstore_prefetch()): the disk needs
 * several reads in flight, the hashing does not need more buffers;
 * counted in chunks as above, at least CACHE_PREFETCH_MIN */
#define CACHE_PREFETCH_BYTES (UINT64_C(32) << 20)
#define CACHE_PREFETCH_MIN 8
#define CACHE_PREFETCH_MAX 64

enum cache_slot_state {
	CACHE_SLOT_EMPTY,
	CACHE_SLOT_LOADING, /* a thread reads it, the lock not held */
	CACHE_SLOT_READY,
	CACHE_SLOT_LAST
};

/* one cached chunk; every field under the cache's @lock */
struct cache_slot {
	enum cache_slot_state state;
	uint64_t entry; /* the index entry it holds (LOADING, READY) */
	uint8_t *buf;	/* chunk_size bytes, allocated at first use */
	unsigned users; /* threads copying out of @buf (READY) or loading */
	uint64_t used;	/* @tick at the last use: the oldest is replaced */
	bool ahead;	/* read ahead and not copied from yet: kept longer */
};

/*
 * struct chunk_cache - @cs and @idx are read-only after new; @lock guards
 * @slots, @tick and @last_entry; @loaded is signalled when a slot leaves
 * LOADING or loses its last user.
 */
struct chunk_cache {
	struct chunkstore *cs;
	const struct repo_index *idx;
	GMutex lock;
	GCond loaded;
	struct cache_slot slots[CACHE_SLOTS_MAX];
	unsigned n_slots;   /* slots in use: n_ahead + n_slack + 1 */
	unsigned n_ahead;   /* data chunks read ahead (CACHE_AHEAD_BYTES) */
	unsigned n_prefetch; /* data chunks prefetched past them */
	unsigned n_slack;   /* entries a request of the run may be off */
	uint64_t tick;
	uint64_t last_entry; /* the furthest entry of the sequential run */
	uint64_t hinted;     /* the furthest entry prefetched in that run */
	GThreadPool *ahead;  /* reads the next chunks of a sequential reader */
};

static void ahead_run(void *data, void *user);

struct chunk_cache *chunk_cache_new(struct chunkstore *cs,
				    const struct repo_index *idx)
{
	struct chunk_cache *c = g_try_new0(struct chunk_cache, 1);

	if (!c)
		return NULL;
	c->cs = cs;
	c->idx = idx;
	g_mutex_init(&c->lock);
	g_cond_init(&c->loaded);
	c->last_entry = UINT64_MAX - 1;
	c->n_ahead = (unsigned)CLAMP(CACHE_AHEAD_BYTES / MAX(idx->chunk_size, 1),
				     CACHE_AHEAD_MIN, CACHE_AHEAD_MAX);
	c->n_slack = (unsigned)CLAMP(CACHE_SLACK_BYTES / MAX(idx->chunk_size, 1),
				     2, CACHE_AHEAD_MAX);
	c->n_slots = c->n_ahead + c->n_slack + 1;
	c->n_prefetch = (unsigned)CLAMP(CACHE_PREFETCH_BYTES /
						MAX(idx->chunk_size, 1),
					CACHE_PREFETCH_MIN, CACHE_PREFETCH_MAX);
	/* shared threads (not exclusive); without them (no thread) reads
	 * work the same, only slower */
	c->ahead = g_thread_pool_new(ahead_run, c, CACHE_LOADERS, false, NULL);
	return c;
}

/*
 * Read entry @i into slot @s, which the caller claimed (LOADING, one
 * user).  Called with @c->lock held; drops it across the read.
 * Return: 0 (READY) or -errno (the slot is EMPTY again, no user).
 */
static int slot_fill(struct chunk_cache *c, struct cache_slot *s, uint64_t i)
{
	size_t got;
	int rc;

	g_mutex_unlock(&c->lock);
	rc = chunkstore_get(c->cs, c->idx->digests[i], s->buf,
			    c->idx->chunk_size, &got);
	if (rc == 0 && got != repo_index_chunk_len(c->idx, i))
		rc = -EBADMSG;
	g_mutex_lock(&c->lock);
	g_cond_broadcast(&c->loaded);
	if (rc < 0) {
		s->state = CACHE_SLOT_EMPTY;
		s->users = 0;
		return rc;
	}
	s->state = CACHE_SLOT_READY;
	return 0;
}

/* Which free slot goes first: an empty one, then one a reader has copied
 * from, then one read ahead and not used yet.  Plain LRU evicted those:
 * the chunk read ahead furthest back carries the oldest tick, while the
 * reader is about to need it (at 1 MiB chunks, 12 read ahead, a qcow2
 * view read most chunks twice: docs/benchmarks.md). */
static unsigned slot_rank(const struct cache_slot *s)
{
	if (s->state == CACHE_SLOT_EMPTY)
		return 0;
	return s->ahead ? 2 : 1;
}

/*
 * Claim a free slot for entry @i (LOADING, one user): the first by
 * slot_rank(), the least recently used among equals.  @ahead: for the
 * read-ahead.  Under @c->lock.  Return: the slot; NULL when every slot
 * is in use (*@rc 0) or no memory (*@rc -ENOMEM).
 */
static struct cache_slot *slot_claim(struct chunk_cache *c, uint64_t i,
				     bool ahead, int *rc)
{
	struct cache_slot *s, *victim = NULL;

	*rc = 0;
	for (s = c->slots; s < c->slots + c->n_slots; s++) {
		if (s->users != 0)
			continue;
		if (!victim || slot_rank(s) < slot_rank(victim) ||
		    (slot_rank(s) == slot_rank(victim) && s->used < victim->used))
			victim = s;
	}
	if (!victim)
		return NULL;
	if (!victim->buf)
		victim->buf = g_try_malloc(c->idx->chunk_size);
	if (!victim->buf) {
		*rc = -ENOMEM;
		return NULL;
	}
	victim->state = CACHE_SLOT_LOADING;
	victim->entry = i;
	victim->users = 1;
	victim->used = ++c->tick;
	victim->ahead = ahead;
	return victim;
}

/* The slot holding entry @i (any state), or NULL; under @c->lock. */
static struct cache_slot *slot_find(struct chunk_cache *c, uint64_t i)
{
	for (struct cache_slot *s = c->slots; s < c->slots + c->n_slots; s++)
		if (s->state != CACHE_SLOT_EMPTY && s->entry == i)
			return s;
	return NULL;
}

/* The first data entry after @i (holes skipped), or idx->count. */
static uint64_t next_data(const struct chunk_cache *c, uint64_t i)
{
	uint64_t n = i + 1;

	while (n < c->idx->count && repo_index_is_hole(c->idx, n))
		n++;
	return n;
}

/* The read-ahead worker: fill the slot it was given (a failure is left
 * for the reader that needs the chunk to report). */
static void ahead_run(void *data, void *user)
{
	struct chunk_cache *c = user;
	struct cache_slot *s = data;
	uint64_t hint[CACHE_PREFETCH_MAX], e;
	unsigned n = 0;

	/* the chunks after this one go to the page cache meanwhile */
	g_mutex_lock(&c->lock);
	e = MAX(c->hinted, s->entry);
	while (n < c->n_prefetch) {
		e = next_data(c, e);
		if (e >= c->idx->count || e > s->entry + 2 * c->n_prefetch)
			break;
		hint[n++] = e;
	}
	if (n)
		c->hinted = hint[n - 1];
	g_mutex_unlock(&c->lock);
	for (unsigned k = 0; k < n; k++)
		chunkstore_prefetch(c->cs, c->idx->digests[hint[k]]);

	g_mutex_lock(&c->lock);
	if (slot_fill(c, s, s->entry) == 0 && --s->users == 0)
		g_cond_broadcast(&c->loaded);
	g_mutex_unlock(&c->lock);
}

/* The @n-th data entry after @i (holes skipped), or idx->count. */
static uint64_t nth_data(const struct chunk_cache *c, uint64_t i, unsigned n)
{
	while (n-- > 0 && i < c->idx->count)
		i = next_data(c, i);
	return i;
}

/*
 * A reader is in entry @i, whose slot it holds: when it reads on
 * sequentially, start reading the next n_ahead data chunks in the
 * background.  Sequentially means within n_slack data entries of the
 * furthest one of the run, before or after it: the kernel has several
 * requests of up to 1 MiB in flight, which libfuse's workers take in any
 * order, so with 1 MiB chunks the requests of one sequential reader come
 * a few entries apart and out of order (a window of 2 entries, right for
 * 4 MiB chunks, restarted the run on many requests: a raw view of 1 MiB
 * chunks read at 0.56 GB/s with it, 0.77 GB/s with 8 MiB, in two runs of
 * bench/viewbench.py).  Under @c->lock.
 */
static void read_ahead(struct chunk_cache *c, uint64_t i)
{
	uint64_t last = c->last_entry, next;
	struct cache_slot *s;
	int rc;

	if (!c->ahead)
		return;
	if (last == UINT64_MAX - 1 || i + c->n_slack < last ||
	    i > nth_data(c, last, c->n_slack)) {
		/* a new run starts here: what the old one read ahead goes
		 * first, before the chunks this one reads */
		c->last_entry = c->hinted = i;
		for (s = c->slots; s < c->slots + c->n_slots; s++)
			s->ahead = false;
		return;
	}
	if (i <= last)
		return; /* started already (or a request that came late) */
	c->last_entry = i;
	next = i;
	for (unsigned k = 0; k < c->n_ahead; k++) {
		next = next_data(c, next);
		if (next >= c->idx->count)
			return;
		if (slot_find(c, next))
			continue;
		s = slot_claim(c, next, true, &rc);
		if (!s)
			return; /* every slot in use: later */
		g_thread_pool_push(c->ahead, s, NULL);
	}
}

/*
 * The slot holding entry @i, ready, with one more user (the caller's: drop
 * it with slot_put()); reads the chunk when no slot holds it.  Called and
 * returns with @c->lock held.  Return: the slot; NULL and *@rc on failure.
 */
static struct cache_slot *slot_get(struct chunk_cache *c, uint64_t i, int *rc)
{
	struct cache_slot *s;
	bool ahead_done = false;

	for (;;) {
		s = slot_find(c, i);
		if (s && s->state == CACHE_SLOT_READY) {
			s->users++;
			s->used = ++c->tick;
			s->ahead = false;
			if (!ahead_done)
				read_ahead(c, i);
			return s;
		}
		if (!s) {
			s = slot_claim(c, i, false, rc);
			if (s)
				break;
			if (*rc < 0)
				return NULL;
		}
		/* another thread reads it, or every slot is in use: start the
		 * ones after it meanwhile (this slot is not theirs to take) */
		if (s && !ahead_done) {
			s->users++;
			read_ahead(c, i);
			ahead_done = true;
			if (--s->users == 0)
				g_cond_broadcast(&c->loaded);
		}
		g_cond_wait(&c->loaded, &c->lock);
	}
	/* ours to read: start the ones after it first, so they overlap */
	if (!ahead_done)
		read_ahead(c, i);
	*rc = slot_fill(c, s, i);
	return *rc < 0 ? NULL : s;
}

/* Drop the caller's use of @s (under @c->lock). */
static void slot_put(struct chunk_cache *c, struct cache_slot *s)
{
	if (--s->users == 0)
		g_cond_broadcast(&c->loaded);
}

int chunk_cache_copy(struct chunk_cache *c, uint64_t i, uint32_t off,
		     size_t len, void *dst)
{
	struct cache_slot *s;
	int rc = 0;

	g_mutex_lock(&c->lock);
	s = slot_get(c, i, &rc);
	g_mutex_unlock(&c->lock);
	if (!s)
		return rc;
	/* a used slot is neither replaced nor reloaded: copy unlocked */
	memcpy(dst, s->buf + off, len);
	g_mutex_lock(&c->lock);
	slot_put(c, s);
	g_mutex_unlock(&c->lock);
	return 0;
}

void chunk_cache_free(struct chunk_cache *c)
{
	if (!c)
		return;
	if (c->ahead)
		g_thread_pool_free(c->ahead, true, true); /* those in flight */
	for (size_t k = 0; k < CACHE_SLOTS_MAX; k++)
		g_free(c->slots[k].buf);
	g_mutex_clear(&c->lock);
	g_cond_clear(&c->loaded);
	g_free(c);
}
