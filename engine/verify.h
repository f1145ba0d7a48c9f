/*
 * verify.h - verification of backups (verify.c; docs/repository.md,
 * "Verify and Damaged"): re-read and re-check every chunk a repository
 * backup's index names, or the whole-file checksum of a full-copy backup;
 * the Damaged state; the periodic verify (-o verify_interval=<days>).
 *
 * A mechanism: it takes the engine context and calls the repository
 * (repo.h), the catalog and the event log.
 *
 * CALLING SEQUENCE
 *
 *	snap_engine_start(): verify_start(eng)    the periodic thread (when
 *	                                          cfg.verify_interval > 0)
 *	volumes/<vol>/control "verify <snap>": snapshot_verify(eng, vol, snap)
 *	snap_engine_close(): verify_stop(eng)     cancels a verify running,
 *	                                          joins the thread
 *
 * THREAD SAFETY: snapshot_verify() may run in any thread, several at
 * once (two verifies of one backup agree; a bad chunk is moved aside
 * once, the other finds it missing).  No lock is held across the reads:
 * the catalog is updated in one transaction per backup after them.
 */
#ifndef SNAP_VERIFY_H
#define SNAP_VERIFY_H

#include "context.h"

/**
 * snapshot_verify() - the verb "verify <snap>" of volumes/<vol>/control:
 * check the backup of @vol/@snap now, in the caller's thread
 *
 * A repository backup: its index is read and checked against the
 * catalog's checksum, then every chunk it names is read and checked
 * (chunkstore_get(): header, length, SHA-256).  A damaged chunk file is
 * moved to SECONDARY/.damaged/ (never read again: the chunk is missing
 * from then on).  Every BackedUp backup whose index names a damaged or
 * missing chunk becomes Damaged, with an alert (kind "verify") and an
 * event "verify.damaged".  This backup found sound: verified_at = now, a
 * Damaged one returns to BackedUp and its alert resolves.
 *
 * A full-copy backup (qcow2 file): its whole-file checksum is computed
 * again and compared with the catalog's; a mismatch or a missing file
 * makes this backup Damaged (nothing is moved; nothing else names it).
 *
 * Records an event "verify.end" either way; a refusal, event_reject().
 * Test point "verify.chunk_moved" (a damaged chunk moved, no state
 * written yet: a crash there leaves the chunk missing, which the next
 * verify finds).
 * Return: 0 sound; -EIO the backup is Damaged (now or still); -ENOENT no
 * such volume or snapshot; -EINVAL it has no backup (not BackedUp or
 * Damaged); -EBUSY its backup is running; -ENOTSUP a repository backup on
 * a mount with repository=off; -ECANCELED snapfs is stopping; -errno
 * (-ENOMEM, an I/O error that stopped the check before it could tell).
 */
int snapshot_verify(struct snap_engine *eng, const char *vol, const char *snap);

/** verify_start() - make eng->verifier; start the periodic thread when
 * cfg.verify_interval > 0.  Return: 0; -ENOMEM. */
int verify_start(struct snap_engine *eng);

/** verify_stop() - cancel what runs, join the thread, free; idempotent. */
void verify_stop(struct snap_engine *eng);

#endif
