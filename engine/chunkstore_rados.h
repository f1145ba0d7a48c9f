/*
 * chunkstore_rados.h - the chunk store's operations on a RADOS pool
 * (chunkstore_rados.c), called only by chunkstore.c for a store opened
 * with chunkstore_open_rados().
 *
 * A chunk is the object ".chunks/<xx>/<name>" holding exactly the bytes of
 * the POSIX chunk file (header and content, chunkstore.h).  Every function
 * is the POSIX one's contract (chunkstore.h) with the RADOS operation that
 * gives it (rados.h): a put is one atomic exclusive-create write op, so
 * there are no temporary objects, no fan-out locks and no batches; a touch
 * and the garbage collector's guarded removal are atomic on the OSD.  The
 * time a put or a touch writes is the real clock's, as a POSIX mtime.
 *
 * THREAD SAFETY: as rados.h: every function may run in any number of
 * threads at once.  All of them block on the network.
 */
#ifndef SNAP_CHUNKSTORE_RADOS_H
#define SNAP_CHUNKSTORE_RADOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "rados.h"

/* "<prefix><xx>/<64 hex>" of @digest into @name (CHUNK_OBJECT_NAME bytes) */
#define CHUNK_OBJECT_PREFIX ".chunks/"
#define CHUNK_OBJECT_NAME (sizeof(CHUNK_OBJECT_PREFIX) + 3 + DIGEST_HEX_LEN)
void chunk_object_name(const uint8_t digest[DIGEST_LEN],
		       char name[CHUNK_OBJECT_NAME]);

/*
 * chunk_rados_put() - chunkstore_put() on @rs: @digest is the content's
 * (not a hole), @len 1 .. chunk size.  Writes header and content in one
 * exclusive create; an object of that name already there is touched
 * instead (its content is the same: same name).  The OSD's checksum of
 * what it stored is then compared with the bytes sent (the read-back).
 * Return: 0, *@written true when this call wrote it; -EDQUOT, -ENOSPC,
 * -ETIMEDOUT, -EIO (read back differs)... (logged).
 */
int chunk_rados_put(struct rados_store *rs, const uint8_t digest[DIGEST_LEN],
		    const void *data, size_t len, bool *written);

/*
 * chunk_rados_get() - chunkstore_get() on @rs (@digest not a hole): the
 * object's header, length and content checked against @digest.
 * Return: 0; -ENOENT; -EBADMSG; -ERANGE; -ETIMEDOUT...; -ENOMEM (logged).
 */
int chunk_rados_get(struct rados_store *rs, uint32_t chunk_size,
		    const uint8_t digest[DIGEST_LEN], void *buf, size_t cap,
		    size_t *len);

/* chunkstore_has(): 1, 0 or -errno (logged). */
int chunk_rados_has(struct rados_store *rs, const uint8_t digest[DIGEST_LEN]);

/* chunkstore_touch(): 0; -ENOENT gone (not logged); -errno (logged). */
int chunk_rados_touch(struct rados_store *rs, const uint8_t digest[DIGEST_LEN]);

/* chunkstore_remove(): 0; -ENOENT; -errno (logged). */
int chunk_rados_remove(struct rados_store *rs,
		       const uint8_t digest[DIGEST_LEN]);

/* chunkstore_remove_if_older(): 1 removed (*@bytes its size); 0 young;
 * -ENOENT; -errno (logged). */
int chunk_rados_remove_if_older(struct rados_store *rs,
				const uint8_t digest[DIGEST_LEN],
				int64_t cutoff, uint64_t *bytes);

/*
 * chunk_rados_scan() - @fn(@digest, @arg) for every chunk object; other
 * names under .chunks/ counted in *@foreign and left alone.
 * Return: 0; what @fn returned to stop; -errno (logged).
 */
int chunk_rados_scan(struct rados_store *rs,
		     int (*fn)(const uint8_t digest[DIGEST_LEN], void *arg),
		     void *arg, uint64_t *foreign);

#endif
