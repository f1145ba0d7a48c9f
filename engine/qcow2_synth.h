/*
 * qcow2_synth.h - the synthesized qcow2 view of one backup: a standalone
 * qcow2 version 3 file computed from a repository index, never built.
 *
 * backed-up/volumes/<vol>/<snap>.qcow2 is served from the repository: its
 * metadata (header, refcount table and blocks, L1 and L2 tables) follows
 * from the index alone, by the deterministic layout of docs/repository.md
 * ("The synthesized qcow2 view"), and its data clusters are the non-hole
 * chunks, in index order.  This module answers "what are the bytes
 * [off, off + len) of that file" as a list of pieces: metadata the module
 * fills in, zeros, or a range of one chunk that the caller reads from the
 * chunk store.  So a FUSE read costs a few chunk reads and no file.
 *
 * A base module, pure: no I/O, no logging, no engine state.  Its memory is
 * the header (104 bytes), the refcount table and the L1 table (8 bytes per
 * refcount block and per L1 entry), the L1 index of each L2 table, and one
 * 8-byte count per 512 index entries to find a chunk's data cluster; the
 * L2 tables and refcount blocks are generated on each read, never stored.
 *
 * Calling sequence (a FUSE read of @len bytes at @off into @buf):
 *
 *	struct qcow2_synth *s;
 *	rc = qcow2_synth_new(&idx, &s);          (once per open; idx outlives s)
 *	got = qcow2_synth_read(s, off, len, pieces, 64, &n);
 *	for each pieces[k] (they are contiguous from @off, in order):
 *		dst = buf + (pieces[k].off - off);
 *		if pieces[k].kind == QCOW2_PIECE_CHUNK:
 *			read pieces[k].len bytes of chunk pieces[k].chunk
 *			from byte pieces[k].chunk_off into dst;
 *		else
 *			qcow2_synth_fill(s, &pieces[k], dst);
 *	got < len: end of file, or @max pieces were not enough: read again
 *	           from off + got (got is 0 only at or past the end).
 *	qcow2_synth_free(s);
 *
 * Thread-safety: after qcow2_synth_new() returns, the synth is read-only:
 * qcow2_synth_size(), _read() and _fill() may run concurrently on one
 * synth.  qcow2_synth_free() must be the last call.
 */
#ifndef SNAP_QCOW2_SYNTH_H
#define SNAP_QCOW2_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "repo_index.h"

/* qemu opens no image with larger clusters (docs/interop/qcow2.txt) */
#define QCOW2_SYNTH_CLUSTER_MAX (2u << 20)
#define QCOW2_SYNTH_HEADER_LENGTH 104u

struct qcow2_synth;

/*
 * enum qcow2_piece_kind - where the bytes of one piece come from
 * @QCOW2_PIECE_META:  metadata; qcow2_synth_fill() writes them
 * @QCOW2_PIECE_ZERO:  zeros (the rest of a metadata cluster, or of the
 *                     last data cluster of a short chunk); _fill() too
 * @QCOW2_PIECE_CHUNK: raw content of index entry @chunk (never a hole),
 *                     from byte @chunk_off; the caller reads it
 */
enum qcow2_piece_kind {
	QCOW2_PIECE_META,
	QCOW2_PIECE_ZERO,
	QCOW2_PIECE_CHUNK,
	QCOW2_PIECE_LAST
};

/*
 * struct qcow2_piece - bytes [@off, @off + @len) of the synthesized file
 * @chunk, @chunk_off: for QCOW2_PIECE_CHUNK only (0 otherwise);
 *                     @chunk_off + @len <= the entry's raw length
 */
struct qcow2_piece {
	enum qcow2_piece_kind kind;
	uint64_t off;
	size_t len;
	uint64_t chunk;
	uint32_t chunk_off;
};

/**
 * qcow2_synth_new() - compute the layout of the qcow2 view of @idx
 * @idx: borrowed, and kept: it must stay alive and unchanged until
 *       qcow2_synth_free() (the synth reads its holes on each read)
 * @out: on success owns the synth; free with qcow2_synth_free()
 *
 * Reads every entry of @idx once (to count the data chunks); allocates
 * only the small tables the header comment lists.
 * Return: 0; -EINVAL @idx inconsistent (chunk_size not valid, count not
 * ceil(virtual_size / chunk_size), digests NULL) or virtual_size not a
 * multiple of 512 (qemu would truncate it: no volume has such a size);
 * -EFBIG virtual_size beyond REPO_INDEX_VIRTUAL_MAX; -ENOMEM.
 */
int qcow2_synth_new(const struct repo_index *idx, struct qcow2_synth **out);

/** qcow2_synth_free() - free @s (not its index); NULL is a no-op. */
void qcow2_synth_free(struct qcow2_synth *s);

/**
 * qcow2_synth_size() - bytes of the synthesized file: metadata plus the
 * data clusters of the non-hole chunks (a whole number of clusters), not
 * the virtual size.  The same for the same index, on every run.
 */
uint64_t qcow2_synth_size(const struct qcow2_synth *s);

/** qcow2_synth_cluster_size() - its cluster size (a power of two). */
uint32_t qcow2_synth_cluster_size(const struct qcow2_synth *s);

/**
 * qcow2_synth_read() - describe the bytes [@off, @off + @len) as pieces
 * @pieces, @max: room for @max pieces, written in file order, contiguous
 *                from @off
 * @n: set to the number of pieces written
 *
 * Never blocks, never allocates.  The range is cut at the end of the file
 * and after @max pieces.
 * Return: the number of bytes the pieces cover (the sum of their @len):
 * @len, or less at the end of the file or when @max pieces ran out; 0
 * when @off is at or past the end or @len is 0; -EINVAL @len > 0 and
 * @max == 0.
 */
ssize_t qcow2_synth_read(const struct qcow2_synth *s, uint64_t off, size_t len,
			 struct qcow2_piece *pieces, size_t max, size_t *n);

/**
 * qcow2_synth_fill() - write the bytes of a META or ZERO piece
 * @p: a piece qcow2_synth_read() returned for @s, or any sub-range of one
 *     (same kind, @off and @len inside it)
 * @buf: receives @p->len bytes
 *
 * Return: 0; -EINVAL @p is a CHUNK piece (the caller reads those) or lies
 * outside the file.
 */
int qcow2_synth_fill(const struct qcow2_synth *s, const struct qcow2_piece *p,
		     void *buf);

#endif
