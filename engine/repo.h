/*
 * repo.h - the engine's repository (see repo.c; the format is
 * docs/repository.md): repository.json, the chunk store, the backups
 * running into it (what garbage collection must spare), the GC thread,
 * and restores from an index into a new qcow2.
 *
 * A mechanism: it takes the engine context; the base modules under it
 * (chunkstore, repo_index, repo_gc, nbd) know none.  Everything here is
 * a no-op or -ENOTSUP when the engine runs with repository=off
 * (eng->repo NULL).
 *
 * CALLING SEQUENCE
 *
 *	snap_engine_open():  repo_open(eng)        repository.json, chunk store
 *	snap_engine_start(): repo_connect(eng)     RADOS: the same, after the fork
 *	recover_all():       repo_recover(eng)     temporary chunks and indexes
 *	snap_engine_start(): repo_start(eng)       the GC thread, one GC run
 *	a backup:            repo_backup_begin(eng, base, &act) ...
 *	                     repo_backup_end(eng, act)
 *	a backup deleted:    repo_gc_request(eng)
 *	snap_engine_close(): repo_close(eng)
 *
 * THREAD SAFETY: every function may be called from any thread once
 * repo_open() returned; repo.c's own mutex is a leaf (nothing is taken
 * under it).
 */
#ifndef SNAP_REPO_H
#define SNAP_REPO_H

#include "context.h"
#include "chunkstore.h"
#include "repo_index.h"
#include "running.h"

/* of a new repository in a directory: an incremental backup reads and
 * writes whole chunks, so small random writes cost a quarter of what they
 * cost at 4 MiB, and the views read as fast (docs/repository.md, "Why
 * fixed-size chunks") */
#define REPO_CHUNK_SIZE (1u << 20)
/* of a new repository on RADOS: a write message of 4 MiB or more costs a
 * Ceph 16 OSD about 2.5 times the CPU per byte of a smaller one
 * (docs/benchmarks.md, "The repository on Ceph") */
#define REPO_RADOS_CHUNK_SIZE (2u << 20)

/**
 * repo_json_parse() - check the text of a repository.json (pure: no I/O,
 * no engine state; fuzzed by tests/fuzz/fuzz_repo_json.c).
 * @text:	NUL-terminated, as read from SECONDARY (untrusted)
 * @chunk_size:	out: the repository's chunk size, set only on success
 * @version:	out: the "version" read, 0 when there is none
 * @why:	out: on -EINVAL, a static phrase saying what is wrong, or NULL
 *		when only the version is one this snapfs does not read
 *
 * Return: 0 (a version 1 repository, sha256, a valid chunk size, known
 * compression); -EINVAL.
 */
int repo_json_parse(const char *text, uint32_t *chunk_size, int64_t *version,
		    const char **why);

struct repo_active;

/**
 * repo_open() - when cfg.repository: create SECONDARY/repository.json, or
 * check the one there (docs/repository.md), and open the chunk store into
 * eng->repo.  Logs one line saying what is wrong (stderr too, as every
 * engine open failure).
 * Return: 0 (also with repository=off: nothing done); -EINVAL not a
 * repository snapfs can read (unknown version, bad file); -errno.
 */
int repo_open(struct snap_engine *eng);

/**
 * repo_connect() - with a RADOS secondary (secondary=rados:...): connect
 * to the cluster (cfg.ceph_conf, cfg.ceph_id), read or create the
 * repository.json object (created exclusively: hosts starting at once
 * agree on one), and open the chunk store on the pool.  Called once the
 * daemon has forked (librados starts threads), before recovery.  Nothing
 * with a POSIX secondary or repository=off.
 * Return: 0; -ENOENT no such pool; -ETIMEDOUT no monitor answered;
 * -EACCES, -EPERM the CephX user may not; -EINVAL not a repository snapfs
 * reads; -errno.  All logged.
 */
int repo_connect(struct snap_engine *eng);

/** repo_rados() - the RADOS pool of a RADOS secondary; NULL with a POSIX
 * one or repository=off.  Valid once repo_connect() returned 0. */
struct rados_store;
struct rados_store *repo_rados(struct snap_engine *eng);

/** repo_start() - start the GC thread and request one run. */
int repo_start(struct snap_engine *eng);

/** repo_close() - stop and join the GC thread, close the store. */
void repo_close(struct snap_engine *eng);

/** repo_chunks() - the chunk store; NULL with repository=off. */
struct chunkstore *repo_chunks(struct snap_engine *eng);

/**
 * repo_recover() - at start, before any backup runs: remove the chunk
 * temporary files (SECONDARY/.tmp/ *.chunk) and the index temporary files
 * (volumes/<vol>/.*.tmp) a crash left.  Return: how many were removed.
 */
int repo_recover(struct snap_engine *eng);

/**
 * repo_backup_begin() - a backup into the repository starts: from now
 * on GC spares what it may name (its start bounds GC's cutoff; @base, if
 * not NULL, is copied and marked as a root).
 * Return: 0 and *@out (end it with repo_backup_end()); -ENOMEM.
 */
int repo_backup_begin(struct snap_engine *eng, const struct repo_index *base,
		      struct repo_active **out);
/** repo_backup_end() - the backup published or gave up; NULL no-op. */
void repo_backup_end(struct snap_engine *eng, struct repo_active *act);

/**
 * repo_note_move() - a verify of this host moved a damaged chunk out of
 * the store (any thread).  repo_moves() - how many it moved since the
 * mount: a backup that read it when it began and sees it changed at
 * publish checks every chunk its index names once more (backup.c).
 */
void repo_note_move(struct snap_engine *eng);
uint64_t repo_moves(struct snap_engine *eng);

/** repo_gc_request() - run GC soon in the GC thread (a backup was
 * deleted); returns at once. */
void repo_gc_request(struct snap_engine *eng);

/**
 * repo_index_of() - read the index of the repository backup @s
 * (volumes/<vol>/<uuid>.index), checked against the catalog's checksum.
 * Return: 0 and @out owns it (repo_index_release()); -ENOENT; -EBADMSG
 * damaged, or not the index the backup published; -errno.
 */
int repo_index_of(struct snap_engine *eng, const struct catalog_snapshot *s,
		  struct repo_index *out);

/**
 * repo_restore() - write the repository backup @s into @dst, a new
 * standalone qcow2 on primary storage (made here; removed on failure)
 *
 * Each non-hole chunk is read and checked (chunkstore_get()) and written
 * over NBD; holes are skipped.  Progress in @rj->bytes_done, cancelled by
 * @rj->cancel.  A damaged or missing chunk records an event
 * "repository.damaged" naming it.
 * Return: 0; -EIO a chunk is damaged or missing (*@why says which);
 * -ECANCELED; -ENOSPC; -errno.
 */
int repo_restore(struct snap_engine *eng, struct running_job *rj,
		 const struct catalog_snapshot *s, const char *dst,
		 GString *why);

#endif
