/*
 * digest.h - SHA-256 of chunks and indexes (OpenSSL libcrypto).
 *
 * TEMPORARY STAND-IN (branch repo-index only): the minimal one-shot form
 * that repo_index.c needs, written against the signature of the spec
 * (/tmp/repo-spec.md).  The real engine/digest.c + digest.h (one-shot,
 * incremental, hex) come from the chunk-store branch; drop this file and
 * digest.c in favour of those when both branches are merged.
 */
#ifndef SNAP_DIGEST_H
#define SNAP_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN 32

/**
 * digest_sha256() - SHA-256 of @len bytes at @buf into @out
 * Return: 0; -ENOMEM when libcrypto cannot allocate its context; -EIO
 * when libcrypto fails otherwise.  Thread-safe.
 */
int digest_sha256(const void *buf, size_t len, uint8_t out[DIGEST_LEN]);

#endif
