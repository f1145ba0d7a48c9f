/*
 * chunkstore.h - the repository's chunk files (see chunkstore.c).
 *
 * Secondary storage is a repository of content-addressed chunks
 * (docs/repository.md): a backup's data is cut into chunks of chunk_size
 * bytes, and each chunk that is not all zero is stored once, in
 * ROOT/.chunks/<xx>/<name>, where <name> is the SHA-256 of its content in
 * 64 lowercase hex digits (digest.h) and <xx> its first two digits.  A
 * chunk file is a 16-byte header ("SNAPCHK1", u32 flags, u32 raw length,
 * little-endian) and the content.  Flag bit 0 (zstd) is in the format but
 * this version never writes it and reads it as damage: on this machine
 * zstd cost more backup time than the targets allow (docs/benchmarks.md,
 * "Repository chunks (issue 13)").
 *
 * A base module: no engine context; the caller hands it the root.
 *
 * CALLING SEQUENCE
 *
 *	struct chunkstore *cs;
 *	uint8_t digest[DIGEST_LEN];
 *	bool written;
 *
 *	rc = chunkstore_open(secondary, 4 << 20, &cs);
 *	...
 *	rc = chunkstore_put(cs, buf, len, digest, &written);
 *		digest goes into the index (all zero: a hole, nothing stored)
 *	rc = chunkstore_get(cs, digest, buf, cap, &len);
 *		-EBADMSG: the chunk is damaged; -ENOENT: it is missing
 *	...
 *	chunkstore_close(cs);
 *
 * DURABILITY: chunkstore_put() returns 0 only once the chunk is durable
 * under its name (its data and its directory entry fsynced) and was read
 * back equal to what was written (after the fsync, before the rename: a
 * chunk under its name has been read back once; XXH3-128 compared).  A crash in
 * between leaves at most a temporary ROOT/.tmp/<random>.chunk, which
 * nothing names (the caller's recovery may remove *.chunk there).  A
 * chunk is never rewritten: a name that exists already is taken as
 * holding that content (same name, same content), so a damaged chunk is
 * healed by removing it (chunkstore_remove()) and putting it again.
 *
 * HOSTILE CONTENT: nothing is followed through a symbolic link below ROOT
 * (.chunks, .tmp, a fan-out directory, a chunk), no name is made but from
 * a digest, and every damage a reader can see (a short file, a wrong
 * magic, unknown flags, a length out of range, content that does not hash
 * to its name, a chunk that is not a regular file) is -EBADMSG, logged
 * once with the chunk's path; never a crash.
 *
 * GARBAGE COLLECTION (repo_gc.h): a chunk's mtime is when a backup last
 * wrote or named it.  chunkstore_put() of a chunk that exists, and
 * chunkstore_touch(), set it to now; the sweep removes an unnamed chunk
 * only when its mtime is older than a cutoff before every running backup
 * began (chunkstore_remove_if_older()).  A lock per fan-out directory,
 * ROOT/.locks/<xx> (an flock; it works across processes and, on NFS,
 * across hosts), is held shared across a put's exists-and-touch and
 * exclusive across the sweep's stat-and-unlink of one chunk, so a chunk a
 * put reported present is young before any sweep can look at it.
 *
 * THREAD SAFETY: a struct chunkstore is read-only after chunkstore_open(),
 * so every function may run in any number of threads at once (two puts of
 * the same content each write a temporary file; one is kept).  Every
 * function but chunkstore_path() may block on I/O; put, touch and the
 * removals block on a fan-out directory's lock, which is held for a stat,
 * a utimensat, a rename or an unlink only, never across a data write or an
 * fsync.
 */
#ifndef SNAP_CHUNKSTORE_H
#define SNAP_CHUNKSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "snap.h"

#include "chunk_format.h"
/* room for a temporary chunk's name: "<tag>@<16 hex>.chunk" */
#define CHUNKSTORE_TMP_NAME (SNAP_NAME_MAX + 32)

struct chunkstore;

/**
 * chunkstore_open() - the chunk store under @root (secondary storage)
 * @root: an existing directory; copied
 * @chunk_size: the repository's chunk size, a power of two from
 *	CHUNKSTORE_SIZE_MIN to CHUNKSTORE_SIZE_MAX; a chunk holds 1 ..
 *	@chunk_size bytes
 * @out: on success owns the store; close with chunkstore_close()
 *
 * Creates @root/.chunks, @root/.tmp and @root/.locks (mode 0700) when
 * missing.
 * Return: 0; -EINVAL bad @chunk_size; -ENOENT/-ENOTDIR/-EACCES... @root;
 * -ENOTDIR/-ELOOP .chunks, .tmp or .locks is not a directory (a symbolic
 * link there is not followed); -ENOMEM.  All logged.
 */
int chunkstore_open(const char *root, uint32_t chunk_size,
		    struct chunkstore **out);

/**
 * chunkstore_open_rados() - the chunk store as objects of a RADOS pool
 * @rs: the pool (borrowed: close it after chunkstore_close())
 * @where: "rados:<pool>[/<ns>]", for messages and chunkstore_path()
 * @chunk_size: as chunkstore_open()
 *
 * Every function below then works on objects ".chunks/<xx>/<name>"
 * (chunkstore_rados.h): same contracts, with RADOS's atomic operations in
 * place of temporary files, fsyncs and fan-out locks; a batch puts each
 * chunk at its add (durable then) and its commit only counts them; the
 * temporary sweeps and prefetch do nothing.  Errors from the cluster:
 * -ETIMEDOUT (no answer within the store's operation timeout), -EDQUOT
 * (pool quota), -ENOSPC (cluster full).
 * Return: 0; -EINVAL bad @chunk_size (logged); -ENOMEM.
 */
struct rados_store;
int chunkstore_open_rados(struct rados_store *rs, const char *where,
			  uint32_t chunk_size, struct chunkstore **out);
/** chunkstore_close() - close @cs; NULL is a no-op. */
void chunkstore_close(struct chunkstore *cs);

/** chunkstore_chunk_size() - the chunk size @cs was opened with. */
uint32_t chunkstore_chunk_size(const struct chunkstore *cs);

/**
 * chunkstore_put() - store @len bytes at @data (borrowed) as one chunk
 * @digest_out: receives the chunk's name as a digest: its SHA-256, or all
 *	zero when @data is all zero bytes (a hole: nothing is stored)
 * @written: if not NULL, true when this call wrote the chunk file; false
 *	for a hole and for a chunk that was already there (nothing written)
 *
 * When the chunk exists already, sets its mtime to now (under the fan-out
 * directory's lock: see GARBAGE COLLECTION) and writes nothing.  Else
 * writes the chunk to ROOT/.tmp/<random>.chunk, fsyncs it, renames it to
 * its name unless that name exists already (then the new file is
 * removed and the existing chunk touched), and fsyncs the fan-out
 * directory.  Either way, on success the chunk is there and young.
 * Fault points (fault.h): "chunk.write", "chunk.fsync", "chunk.rename" on
 * the path of a new chunk, "chunk.touch" on that of an existing one;
 * whatever fails, the temporary file is removed and no chunk file is left
 * half-written.
 * Return: 0; -EINVAL @len is 0 or over the chunk size (not logged: the
 * caller's bug); -EBADMSG something other than a regular file holds the
 * chunk's name, or other than a directory its fan-out directory's (left
 * as it is); -ENOSPC, -EDQUOT, -EIO... from the file system; -ENOMEM.
 * All but -EINVAL logged.
 */
int chunkstore_put(struct chunkstore *cs, const void *data, size_t len,
		   uint8_t digest_out[DIGEST_LEN], bool *written);

/*
 * BATCHES: chunkstore_put() pays two journal commits per new chunk (the
 * fsync of its file, the fsync of its fan-out directory).  A backup that
 * writes many chunks stages them instead and commits them together:
 *
 *	struct chunkstore_batch *b;
 *
 *	rc = chunkstore_batch_new(cs, &b);
 *	rc = chunkstore_batch_add(b, buf, len, digest, &staged, &pending);
 *		... any number, from any threads; commit when pending is
 *		large enough (the backup: about 256 MiB) ...
 *	rc = chunkstore_batch_commit(b, &written, &reused);
 *		the digests of every add that returned before the commit
 *		began now name durable chunks
 *	chunkstore_batch_free(b);	removes what was staged, not committed
 *
 * A staged chunk is written to ROOT/.tmp/<random>.chunk (its writeback
 * started, not waited for) and is named by nothing: its digest must not
 * go into a published index before a commit that covers it returned 0.
 * The commit fsyncs every staged file, renames each to its name (under
 * the fan-out lock, shared, exactly as a put), then fsyncs .chunks and
 * each fan-out directory it renamed into once: so a chunk still gets its
 * name only once its data is durable, and the commit returns only once
 * every name is.  Same fault points as a put ("chunk.write" in the add,
 * "chunk.fsync" and "chunk.rename" in the commit, "chunk.touch" on a
 * chunk present).  GC: a staged chunk is young (its file is written after
 * the backup began), and a chunk found present is touched by the add, as
 * by a put.
 *
 * THREAD SAFETY: add and commit may run in any threads at once on one
 * batch (a commit takes what is staged when it starts; a concurrent add
 * goes to the next commit); free only once no call is running.
 */
struct chunkstore_batch;

/** chunkstore_batch_new() - an empty batch over @cs (borrowed: close @cs
 * after chunkstore_batch_free()).  Return: 0; -ENOMEM. */
int chunkstore_batch_new(struct chunkstore *cs, struct chunkstore_batch **out);

/**
 * chunkstore_batch_add() - stage @len bytes at @data as one chunk
 * @digest_out: its name (all zero: a hole, nothing stored), as
 *	chunkstore_put()
 * @staged: true when a temporary file was written (the chunk is new: it
 *	is named by the next commit; on RADOS: the object was created, and
 *	the next commit counts it as written); false for a hole or a chunk
 *	present (touched: done)
 * @pending: if not NULL, receives how many chunks the batch now holds
 * Return: 0; the errors of chunkstore_put() (nothing left behind).
 */
int chunkstore_batch_add(struct chunkstore_batch *b, const void *data,
			 size_t len, uint8_t digest_out[DIGEST_LEN],
			 bool *staged, size_t *pending);

/**
 * chunkstore_batch_commit() - make every chunk staged in @b durable under
 * its name (see BATCHES); @b is empty afterwards, whatever the result
 * @written: receives how many chunks were renamed to their names
 * @reused: receives how many another put had named first (touched)
 * Return: 0; -EIO, -ENOSPC... (logged): some staged chunks may be in
 * the store, whole, others not; their temporary files are gone.  Blocks.
 */
int chunkstore_batch_commit(struct chunkstore_batch *b, uint64_t *written,
			    uint64_t *reused);

/** chunkstore_batch_free() - free @b, removing the temporary files of
 * chunks staged but not committed; NULL is a no-op. */
void chunkstore_batch_free(struct chunkstore_batch *b);

/**
 * chunkstore_get() - read the chunk @digest into @buf, checked
 * @cap: bytes at @buf; the chunk size always suffices
 * @len: receives the chunk's length (1 .. chunk size)
 *
 * Checks the header, the length, and that the content hashes to @digest;
 * @buf holds garbage after a failure.
 * Return: 0; -ENOENT no such chunk; -EBADMSG the chunk is damaged (see
 * HOSTILE CONTENT); -ERANGE @cap is too small for it; -EIO... from the
 * file system; -ENOMEM: all logged.  -EINVAL (not logged) @digest is the
 * all-zero digest: a hole, whose zeros the caller fills.
 */
int chunkstore_get(struct chunkstore *cs, const uint8_t digest[DIGEST_LEN],
		   void *buf, size_t cap, size_t *len);

/**
 * chunkstore_prefetch() - ask the kernel to start reading chunk @digest
 * into the page cache (POSIX_FADV_WILLNEED) and return without waiting,
 * so that a later chunkstore_get() of it finds it there.  A hint: reads
 * nothing, checks nothing, logs nothing; a hole, a missing chunk or
 * anything but a regular file is left alone.  Readers of many chunks in
 * a row (the views: chunkcache.c) keep the disk busy with it: one cold
 * 4 MiB pread at a time reached about half of what the disk gives.
 */
void chunkstore_prefetch(struct chunkstore *cs,
			 const uint8_t digest[DIGEST_LEN]);

/**
 * chunkstore_has() - is there a chunk file named @digest?  Looks at the
 * name only, never at the content (chunkstore_get() checks that).  The
 * all-zero digest, a hole, is always there.
 * Return: 1 yes; 0 no; -EBADMSG something other than a regular file holds
 * the name (logged); -EIO... from the file system.
 */
int chunkstore_has(struct chunkstore *cs, const uint8_t digest[DIGEST_LEN]);

/**
 * chunkstore_touch() - a backup names chunk @digest without putting it
 * (it reuses an entry of its base index): make the chunk young, so that
 * no sweep removes it before the backup's index is published
 *
 * Call it for each reused chunk before publishing (docs/repository.md,
 * "Writing and publishing", step 1: it also proves the chunk exists).
 * Looks at the name only, like chunkstore_has().  Takes the fan-out
 * directory's lock shared; blocks on the file system.  Fault point
 * "chunk.touch".
 * Return: 0 the chunk is there and young (the all-zero digest, a hole:
 * always 0); -ENOENT it is gone (not logged): read that chunk from the
 * volume again and put it; -EBADMSG something other than a regular file
 * holds its name (logged); -EIO... (logged).
 */
int chunkstore_touch(struct chunkstore *cs, const uint8_t digest[DIGEST_LEN]);

/**
 * chunkstore_touch_many() - chunkstore_touch() of the @n chunks @digests,
 * taking each fan-out directory's lock once for all of its chunks (a
 * backup over a base touches every chunk it reuses: thousands), the
 * directories shared out among up to 8 threads.
 * @gone: receives, per digest, true when it is gone (chunkstore_touch()'s
 *	-ENOENT: read it from the volume again); false for holes
 * Return: 0; a failure of chunkstore_touch() other than -ENOENT (logged),
 * some digests then not looked at (@gone false).
 */
int chunkstore_touch_many(struct chunkstore *cs,
			  const uint8_t (*digests)[DIGEST_LEN], size_t n,
			  bool *gone);

/**
 * chunkstore_remove() - remove the chunk file named @digest (a damaged
 * chunk before it is put again), whatever its age; under the fan-out
 * directory's lock, exclusive.  The removal is not fsynced: a chunk that
 * comes back after a crash is only collected again.
 * Return: 0; -ENOENT no such chunk; -EINVAL the all-zero digest; -EIO...
 */
int chunkstore_remove(struct chunkstore *cs, const uint8_t digest[DIGEST_LEN]);

/**
 * chunkstore_remove_if_older() - the sweep's step for one unnamed chunk:
 * remove chunk @digest if its mtime is before @cutoff (unix seconds)
 * @bytes: receives the removed file's size (0 when nothing was removed)
 *
 * Holds the fan-out directory's lock exclusive across the stat and the
 * unlink, so no put can find the chunk present (and write nothing) in
 * between.  Never follows or removes anything but a regular file.  The
 * removal is not fsynced (a chunk that comes back after a crash is only
 * collected again).  Fault points "gc.stat", "gc.unlink".  Blocks.
 * Return: 1 removed; 0 young, kept; -ENOENT no such chunk (not logged);
 * -EBADMSG not a regular file, left alone (logged); -EINVAL the all-zero
 * digest; -EIO... (logged).
 */
int chunkstore_remove_if_older(struct chunkstore *cs,
			       const uint8_t digest[DIGEST_LEN], int64_t cutoff,
			       uint64_t *bytes);

/*
 * chunkstore_scan_fn - called by chunkstore_scan() for each validly named
 * chunk file: @digest is the name, borrowed for the call; whether the
 * name holds a regular file is not checked.  Return 0 to go on, -errno to
 * stop the scan with that code.
 */
typedef int (*chunkstore_scan_fn)(struct chunkstore *cs,
				  const uint8_t digest[DIGEST_LEN], void *arg);

/**
 * chunkstore_scan() - call @fn for every chunk name under ROOT/.chunks
 * @foreign: receives how many names are not chunks: under .chunks, any
 *	name but a directory of 2 lowercase hex digits; in one, any name but
 *	64 lowercase hex digits beginning with the directory's.  Those are
 *	never followed (a symbolic link at a fan-out directory's name is not
 *	entered), never passed to @fn, never removed.
 *
 * Names are read as the directories are walked: @fn may remove the chunk
 * it is given (readdir then neither skips nor repeats another name); a
 * chunk written during the scan may or may not be seen.  Fault point
 * "gc.scan" (opening a fan-out directory).  Blocks.
 * Return: 0; what @fn returned to stop; -errno reading a directory
 * (logged).
 */
int chunkstore_scan(struct chunkstore *cs, chunkstore_scan_fn fn, void *arg,
		    uint64_t *foreign);

/**
 * chunkstore_tmp_sweep() - remove ROOT/.tmp/<16 hex>.chunk files (chunks
 * that a put was writing when its process died) whose mtime is before
 * @cutoff; anything else in .tmp is left alone.  A put in progress is
 * younger than any cutoff its backup allows, so it keeps its file.
 * @removed, @bytes: receive the count and total size of what went.
 * Fault point "gc.unlink".  Blocks.
 * Return: 0; -errno (logged).
 */
int chunkstore_tmp_sweep(struct chunkstore *cs, int64_t cutoff,
			 uint64_t *removed, uint64_t *bytes);

/**
 * chunkstore_set_tag() - name this store's temporary chunks
 * "<@tag>@<16 hex>.chunk" (@tag: the host's name, issue 14), so that a
 * host's recovery removes its own and leaves those of hosts sharing ROOT.
 * Call right after chunkstore_open(), before any other call; NULL: none.
 */
void chunkstore_set_tag(struct chunkstore *cs, const char *tag);

/**
 * chunkstore_tmp_sweep_own() - at start, nothing of this store running:
 * remove every temporary chunk of its tag, and every untagged one (made
 * before tags), whatever its age; another tag's are left (another host's
 * puts in progress: GC's chunkstore_tmp_sweep() takes them once old).
 * Return: 0; -errno (logged).
 */
int chunkstore_tmp_sweep_own(struct chunkstore *cs, uint64_t *removed,
			     uint64_t *bytes);

/**
 * chunkstore_path() - ROOT/.chunks/<xx>/<name> of @digest, for messages
 * and tests; whether it exists is not checked.  Never blocks.
 * Return: the path; the caller owns it (g_free).
 */
char *chunkstore_path(const struct chunkstore *cs,
		      const uint8_t digest[DIGEST_LEN]);

#endif
