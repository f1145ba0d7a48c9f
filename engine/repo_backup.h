/*
 * repo_backup.h - back up one qcow2 image into the repository: its index,
 * with its chunks in the chunk store, reading from primary only what
 * changed since a base backup (see repo_backup.c; the format is
 * docs/repository.md).
 *
 * A base module: no engine state.  The caller (a later step: backup.c)
 * picks the base backup, the layers between it and this snapshot, and
 * publishes the index; this module only computes it.
 *
 * CALLING SEQUENCE of an incremental backup of snapshot N over backup B:
 *
 *	struct repo_changes changed;
 *	struct repo_index idx;
 *	struct repo_backup_stats st;
 *
 *	// N's own layer first, then the others after B
 *	rc = repo_changed_extents(layers_N_down_to_after_B, n_layers, cancel,
 *				  &changed);
 *	rc = repo_backup_image(cs, N_path, &B_index, &changed, cancel, NULL,
 *			       NULL, &idx, &st);
 *	repo_changes_clear(&changed);
 *	... repo_index_write(dirfd, "<uuid>.index", &idx) ...
 *	repo_index_release(&idx);
 *
 * and of a full backup: repo_backup_image(cs, N_path, NULL, NULL, cancel,
 * NULL, NULL, &idx, &st).
 *
 * CHANGED EXTENTS come from block status, not from a dirty bitmap: each
 * frozen layer holds exactly the writes made between its snapshot and the
 * previous one, so what changed between B and N is the union of the
 * extents the layers after B up to N allocate themselves (`qemu-img map`
 * depth 0, or allocation depth 1 over NBD: data, zeroes or discards
 * alike).  Nothing is lost on a
 * crash or a VM restart.
 *
 * THREAD SAFETY: every function may run in any number of threads at once
 * (on distinct outputs); each blocks on primary and secondary storage and
 * runs qemu-img (and, as a fallback, qemu-nbd) children, so call them
 * from long-lived threads (proc.h, nbd.h).  repo_backup_image() reads
 * and puts chunks from GLib's shared thread pool threads (6 at a time);
 * they touch only the layer files, the chunk store and the new index.
 */
#ifndef SNAP_REPO_BACKUP_H
#define SNAP_REPO_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <gio/gio.h>

#include "chunkstore.h"
#include "imagemap.h"
#include "repo_index.h"

/* struct repo_extent - bytes [@offset, @offset + @length) of a volume. */
struct repo_extent {
	uint64_t offset;
	uint64_t length;
};

/*
 * struct repo_changes - what changed since a base backup
 * (repo_changed_extents(); repo_changes_clear())
 * @ext, @n: the bytes written since, as sorted, disjoint extents
 * @top: where the new snapshot's own layer, the image backed up, holds
 *	its own data (imagemap.h), or NULL: a chunk that lies wholly in it
 *	is read from it alone, without mapping the chain under it
 */
struct repo_changes {
	struct repo_extent *ext;
	size_t n;
	struct imagemap_own *top;
};

/*
 * struct repo_backup_stats - what one repo_backup_image() did.
 * @bytes_read: bytes read from the image (primary storage)
 * @chunks_read: chunks read from the image and put in the store
 * @chunks_written: of those, chunks this call wrote (new in the store)
 * @chunks_reused: of those, chunks the store had already (not written)
 * @chunks_zero: chunks found to be zeros, by block status (not read) or
 *	by their content (read): holes, nothing stored
 * @chunks_over_nbd: of @chunks_read, those read over NBD, not from the
 *	layer files (an image `qemu-img map` cannot place: imagemap.h)
 * @chunks_copied: entries copied from the base index without reading
 * @chunks_planned: chunks to read or find zero (every chunk of a full
 *	backup; those not copied of an incremental one)
 * @chunks_done: of those, how many are done (the progress)
 */
struct repo_backup_stats {
	uint64_t chunks_planned;
	uint64_t chunks_done;
	uint64_t bytes_read;
	uint64_t chunks_read;
	uint64_t chunks_written;
	uint64_t chunks_reused;
	uint64_t chunks_zero;
	uint64_t chunks_over_nbd;
	uint64_t chunks_copied;
};

/**
 * repo_backup_image() - the index of the image @image_path, its chunks put
 * in @cs
 * @cs: the chunk store; its chunk size is the index's
 * @image_path: absolute path of the qcow2 image (with its backing chain)
 * @base: NULL: a full backup, every chunk read (but those block status
 *	says read as zeros: holes, not read).  Else the index of an earlier
 *	backup of the same volume (borrowed), of the same chunk size and any
 *	virtual size: its entries are copied but for the chunks that
 *	overlap @changed, that lie beyond its size, or whose length differs
 *	(the last one when the size changed), which are read
 * @changed: what changed since @base (repo_changed_extents() of layers
 *	whose first is @image_path, or extents made by the caller with @top
 *	NULL), borrowed; its extents in any order, may overlap, may reach
 *	past the image's end; NULL: nothing; ignored when @base is NULL
 * @cancel: may be NULL; checked between chunks
 * @progress: may be NULL; called after each chunk done, with the stats so
 *	far and @progress_arg (a job's progress; the tests cancel from it),
 *	from this thread or one of its put threads, one call at a time
 *	under the backup's own lock: it must not block
 * @out: on success owns the index (repo_index_release()); on failure empty
 * @stats: if not NULL, filled in (also on failure: what was done)
 *
 * Each chunk is read (O_DIRECT where the layer's file system allows it,
 * imagemap_read()) and staged in @cs (chunkstore_batch_add(); a chunk of
 * zeros gives the hole entry and stores nothing) by one of 6 put threads
 * while this thread plans the next chunks (7 chunk buffers: 7 MiB at
 * 1 MiB chunks); the staged chunks are committed
 * (chunkstore_batch_commit(): durable under their names) every 256 MiB
 * (at most 64 chunks) by the put thread that fills the batch, and the
 * rest before this returns, so every chunk the index names is durable
 * when this returns 0.  Every put has ended when this returns, also on
 * failure and cancellation (a cancelled backup finishes and commits the
 * chunks already handed out, at most 7).  On
 * failure or cancellation the chunks already put stay in the store, whole
 * and durable, named by nothing yet (a retry finds them; GC collects them
 * otherwise); no temporary file is left.
 * Return: 0; -ECANCELED; -EINVAL @base's chunk size is not @cs's, or
 * @image_path not absolute; -EFBIG the image is beyond
 * REPO_INDEX_VIRTUAL_MAX; -ENOENT/-EIO from nbd_image_open() (a missing or
 * damaged image); -EIO a read failed; the errors of chunkstore_put()
 * (-ENOSPC, -EBADMSG...); -ENOMEM.  Logged where they happen.
 */
int repo_backup_image(struct chunkstore *cs, const char *image_path,
		      const struct repo_index *base,
		      const struct repo_changes *changed, GCancellable *cancel,
		      void (*progress)(const struct repo_backup_stats *st,
				       void *arg),
		      void *progress_arg, struct repo_index *out,
		      struct repo_backup_stats *stats);

/**
 * repo_backup_set_commit_bytes() - how many bytes of new chunks
 * repo_backup_image() stages before it commits them (chunkstore.h,
 * BATCHES); 0: the default, 256 MiB; at most the chunk size: every chunk
 * is committed on its own (two journal commits per chunk, as a plain
 * chunkstore_put()).  For the benchmark's before/after comparison
 * (bench/repobench.c); process-wide, takes effect at the next call.
 */
void repo_backup_set_commit_bytes(uint64_t bytes);

/**
 * repo_backup_set_read_over_nbd() - read every image over NBD, as before
 * the layer files were read directly (imagemap.h), when @on.  For the
 * benchmark's before/after comparison (bench/repobench.c); process-wide,
 * takes effect at the next call.
 */
void repo_backup_set_read_over_nbd(bool on);

/**
 * repo_changed_extents() - what the layers @layer_paths allocate
 * themselves, as one sorted list of disjoint extents, and where the first
 * of them holds its own data
 * @layer_paths: absolute paths of the frozen layers written after the
 *	base backup's snapshot, up to and including the new snapshot's own
 *	layer, which comes first (the others in any order); borrowed
 * @cancel: may be NULL; checked between layers and between requests
 * @out: on success filled in (repo_changes_clear()): @out->ext sorted,
 *	disjoint, not touching (adjacent ones merged), NULL when nothing
 *	changed; @out->top the first layer's places, NULL when its map
 *	could not give them.  On failure empty
 *
 * Each layer is mapped alone (`qemu-img map` depth 0, imagemap.h), or,
 * when that fails, opened over NBD (with its backing chain, which must be
 * there) and its extents at allocation depth 1 are taken: whatever a
 * write, a write of zeroes or a discard made that layer hold.  A layer of
 * another virtual size (a resize) counts up to its own size; the backup
 * reads a grown volume's new tail anyway.  The layers must cover every
 * write between the two snapshots: a layer merged into one outside the
 * list loses its writes (the caller then backs up in full).
 * Return: 0; -ECANCELED; the errors of nbd_image_open() and
 * nbd_image_extents(); -ENOMEM.
 */
int repo_changed_extents(const char *const *layer_paths, size_t n,
			 GCancellable *cancel, struct repo_changes *out);

/** repo_changes_clear() - free what @c holds and empty it. */
void repo_changes_clear(struct repo_changes *c);

#endif
