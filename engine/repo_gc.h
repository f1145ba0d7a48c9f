/*
 * repo_gc.h - garbage collection of the repository's chunks (see
 * repo_gc.c; docs/repository.md, "Garbage collection").
 *
 * Mark and sweep, as Proxmox Backup Server does.  Mark: every digest named
 * by an index file under volumes/<vol>/ (published or not) and by the
 * caller's extra roots (the base indexes of running backups, in memory).
 * Sweep: every chunk file that nothing marked and whose mtime is before the
 * cutoff is removed; so are chunk temporary files in ROOT/.tmp older than
 * the cutoff.  A running backup's chunks are young (chunkstore_put() and
 * chunkstore_touch() set the mtime; chunkstore.h, GARBAGE COLLECTION), so
 * the cutoff is what keeps the chunks of a backup that is not published
 * yet.
 *
 * A base module: no engine context; the caller passes the store, the
 * volumes directory, its running backups' base indexes and the cutoff.
 *
 * CALLING SEQUENCE (the engine's GC job)
 *
 *	struct repo_gc_stats stats;
 *	int64_t cutoff = MIN(now, start of the oldest running backup)
 *			 - REPO_GC_MARGIN;
 *	rc = repo_gc_run(cs, backups_dir, bases, n_bases, cutoff,
 *			 &eng_stopping, &stats);
 *
 * The cutoff must be computed before repo_gc_run() is called and from
 * backups registered as running by then; a backup that starts later
 * touches or writes every chunk it names after the cutoff, so needs no
 * root.  REPO_GC_MARGIN covers clock steps and the skew between this host's
 * clock and the file server's (which sets the mtimes).
 *
 * THREAD SAFETY: repo_gc_run() keeps no state between calls; two runs on
 * one store at once are safe (each removes only what both would) but
 * useless.  It runs alongside any number of puts, touches and gets, in
 * this process or another.
 */
#ifndef SNAP_REPO_GC_H
#define SNAP_REPO_GC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkstore.h"
#include "repo_index.h"

/* The default margin subtracted from the cutoff, seconds (docs). */
#define REPO_GC_MARGIN (5 * 60)

/* What one run found and did; each field counts from 0 in each run. */
struct repo_gc_stats {
	uint64_t indexes;     /* index files read (mark) */
	uint64_t marked;      /* distinct chunks they and the extra roots name */
	uint64_t chunks_seen; /* chunk files the sweep found */
	uint64_t removed;     /* chunk files removed */
	uint64_t bytes_freed; /* their bytes, and the temporary files' */
	uint64_t kept_young;  /* unnamed chunks kept: not older than the cutoff */
	uint64_t foreign;     /* names under .chunks that are not chunks (or not
			       * regular files): left alone */
	uint64_t tmp_removed; /* chunk temporary files removed from .tmp */
};

/**
 * repo_gc_run() - remove the chunks that no index names
 * @cs: the store, borrowed
 * @volumes_dir: SECONDARY/volumes, borrowed; it must exist (a missing one
 *	is -ENOENT, never "no index, so every chunk is garbage")
 * @extra_roots, @n_extra: borrowed, read only; the base indexes of the
 *	backups running now (their own chunks are young, the base's are not
 *	until touched); NULL and 0 when none
 * @cutoff: unix seconds; an unnamed chunk is removed only when its mtime
 *	is strictly before it.  The caller's rule: the earlier of now and
 *	the start of the oldest running backup, minus a margin
 *	(REPO_GC_MARGIN) for clock steps
 * @cancel: if not NULL, polled between indexes and between chunks; when
 *	true the run stops with -ECANCELED, the store consistent (each
 *	removal is whole, and only unnamed old chunks were removed)
 * @stats: receives what the run did, also after a failure (then up to it)
 *
 * Reads every "*.index" in every directory under @volumes_dir (names
 * beginning with "." are temporary and skipped); an index that cannot be
 * read stops the run before anything is removed.  Memory: 32 bytes per
 * distinct named chunk (a sorted array; 32 MiB for 2^20 chunks, 4 TiB in
 * 4 MiB chunks) plus the largest index while it is read.  Blocks on the
 * file system for as long as the walk takes; holds a fan-out directory's
 * lock for one chunk's stat and unlink at a time.  Fault points:
 * "gc.index" (reading an index), "gc.scan", "gc.stat", "gc.unlink".
 * Return: 0; -EBADMSG an index is damaged or not a regular file, or a
 * symbolic link stands at a volume directory's name (never followed, and
 * it might lead to indexes: nothing removed); -ENOENT
 * @volumes_dir missing (nothing removed); -ECANCELED; -ENOMEM; -EIO...
 * from storage when a removal fails (the run stops there).  Logged
 * once where it happens.
 */
int repo_gc_run(struct chunkstore *cs, const char *volumes_dir,
		const struct repo_index *const *extra_roots, size_t n_extra,
		int64_t cutoff, volatile bool *cancel,
		struct repo_gc_stats *stats);

/**
 * repo_gc_run_on() - repo_gc_run() where the indexes may be RADOS objects
 * @rs: NULL: the indexes are files under @volumes_dir (repo_gc_run());
 *	else every object "volumes/<vol>/<x>.index" of @rs is read (and
 *	@volumes_dir is not used), @cs being a chunk store on the same pool
 *	(chunkstore_open_rados())
 * Return: as repo_gc_run(); an index object that cannot be read stops the
 * run before anything is removed.
 */
struct rados_store;
int repo_gc_run_on(struct chunkstore *cs, struct rados_store *rs,
		   const char *volumes_dir,
		   const struct repo_index *const *extra_roots, size_t n_extra,
		   int64_t cutoff, volatile bool *cancel,
		   struct repo_gc_stats *stats);

#endif
