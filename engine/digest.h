/*
 * digest.h - SHA-256 of repository chunks and indexes (see digest.c).
 *
 * The repository (docs/repository.md) names each chunk by the SHA-256 of
 * its uncompressed content and checksums each index with it.  SHA-256
 * because a name must be collision-resistant (two different chunks with
 * one name would silently restore the wrong data), and OpenSSL's because
 * it is in Debian everywhere and uses the CPU's SHA extensions: 1.0-1.4
 * GB/s on one core here, 5-8x GLib's GChecksum (0.16-0.28 GB/s), so a
 * chunk's hash costs less than its write (docs/benchmarks.md, "Repository
 * chunks (issue 13)").  digest.c is the only file that sees
 * OpenSSL.
 *
 * A digest is 32 bytes; as text, 64 lowercase hex digits (the chunk's
 * file name).  The all-zero digest is never a real one in practice: the
 * index uses it for a hole (a chunk of zero bytes, never stored).
 *
 * All functions are thread-safe; a struct digest_stream belongs to one
 * thread at a time.
 */
#ifndef SNAP_DIGEST_H
#define SNAP_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN 32
#define DIGEST_HEX_LEN 64 /* without the NUL */

/**
 * digest_sha256() - SHA-256 of @len bytes at @data (@data may be NULL when
 * @len is 0) into @out.
 * Return: 0; -ENOMEM; -EIO when OpenSSL fails (logged).
 */
int digest_sha256(const void *data, size_t len, uint8_t out[DIGEST_LEN]);

/*
 * Incremental SHA-256, for data that comes in pieces:
 *
 *	struct digest_stream *ds;
 *
 *	rc = digest_stream_new(&ds);
 *	if (rc < 0)
 *		return rc;
 *	while (...)
 *		if ((rc = digest_stream_update(ds, buf, n)) < 0)
 *			goto out;
 *	rc = digest_stream_finish(ds, out);
 * out:
 *	digest_stream_free(ds);
 *
 * After digest_stream_finish() the stream can only be freed.
 */
struct digest_stream;

/**
 * digest_stream_new() - start a SHA-256.
 * Return: 0 and *@out (free with digest_stream_free()); -ENOMEM; -EIO.
 */
int digest_stream_new(struct digest_stream **out);

/**
 * digest_stream_update() - add @len bytes at @data (borrowed).
 * Return: 0; -EIO; -EINVAL after digest_stream_finish().
 */
int digest_stream_update(struct digest_stream *ds, const void *data,
			 size_t len);

/**
 * digest_stream_finish() - the digest of all bytes added, into @out.
 * Return: 0; -EIO; -EINVAL when called twice.
 */
int digest_stream_finish(struct digest_stream *ds, uint8_t out[DIGEST_LEN]);

/** digest_stream_free() - free @ds; NULL is a no-op. */
void digest_stream_free(struct digest_stream *ds);

/** digest_to_hex() - @d as 64 lowercase hex digits and a NUL. */
void digest_to_hex(const uint8_t d[DIGEST_LEN], char hex[DIGEST_HEX_LEN + 1]);

/**
 * digest_from_hex() - parse @hex, which must be exactly 64 lowercase hex
 * digits and nothing else (the only spelling of a chunk name: a name with
 * an uppercase digit, 63 or 65 digits, or a suffix is someone else's
 * file).  @out is left alone on failure.
 * Return: 0; -EINVAL (not logged: the caller knows where @hex came from).
 */
int digest_from_hex(const char *hex, uint8_t out[DIGEST_LEN]);

/** digest_is_zero() - @d is the all-zero digest (an index's hole). */
bool digest_is_zero(const uint8_t d[DIGEST_LEN]);

#endif
