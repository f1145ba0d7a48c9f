/*
 * chunkcache.h - the chunks an open view of a repository backup keeps in
 * memory, and the ones it reads ahead for a sequential reader.  Shared by
 * the raw view (images.c) and the synthesized qcow2 view (backedup.c).
 *
 * A chunk is read whole from the chunk store, which checks it against its
 * digest (chunkstore_get()) once per fill: every byte served comes from a
 * buffer that was verified.  Thread-safe: FUSE worker threads call
 * chunk_cache_copy() side by side.
 */
#ifndef SNAPFS_CHUNKCACHE_H
#define SNAPFS_CHUNKCACHE_H

#include <stddef.h>
#include <stdint.h>

struct chunkstore;
struct repo_index;
struct chunk_cache;

/*
 * chunk_cache_new() - a cache over @idx (borrowed: it must outlive the
 * cache) reading from @cs.  Return: the cache, or NULL (no memory).
 */
struct chunk_cache *chunk_cache_new(struct chunkstore *cs,
				    const struct repo_index *idx);

/*
 * chunk_cache_copy() - copy @len bytes of data entry @i (not a hole) from
 * @off into @dst; reads the chunk when no slot holds it, and starts
 * reading the next ones when the reader goes on sequentially.
 * Return: 0, or -errno of the chunk read (-ENOENT missing, -EBADMSG
 * damaged or of the wrong length, -ENOMEM); the caller reports it.
 */
int chunk_cache_copy(struct chunk_cache *c, uint64_t i, uint32_t off,
		     size_t len, void *dst);

/* chunk_cache_free() - wait for the reads ahead in flight, free; NULL ok. */
void chunk_cache_free(struct chunk_cache *c);

#endif
