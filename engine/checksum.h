/*
 * checksum.h - content checksums of backup images.
 *
 * XXH3-128 (libxxhash): it runs at memory speed, so checksumming a backup
 * hides behind its fsync; GLib's SHA-256 ran at ~180 MB/s here, slower than
 * the disk (docs/design.md, "Checksums").  Written as "xxh128:<32 hex>",
 * the format `xxh128sum` prints.
 */
#ifndef SNAP_CHECKSUM_H
#define SNAP_CHECKSUM_H

#include <stdint.h>
#include <gio/gio.h>

#define CHECKSUM_TEXT_MAX 80 /* "xxh128:<32 hex>", or "sha256:<64 hex>": a repository index (backup.c) */

/**
 * checksum_file() - checksum the whole file @fd from offset 0
 * @text: receives "xxh128:<hex>"
 * @cancel: may be NULL
 * Return: 0; -errno of a failed read; -ECANCELED.
 */
int checksum_file(int fd, GCancellable *cancel, char text[CHECKSUM_TEXT_MAX]);

#define CHECKSUM_QUICK_LEN 16

/**
 * checksum_quick() - XXH3-128 of @len bytes at @data into @out, for
 * comparing bytes read back with the bytes written (chunkstore.c), at
 * memory speed; never a name (it is not collision-resistant: digest.h).
 */
void checksum_quick(const void *data, size_t len,
		    uint8_t out[CHECKSUM_QUICK_LEN]);

/**
 * checksum_xxh64() - XXH64 with seed 0 of @len bytes at @data, the hash a
 * Ceph OSD computes for a checksum read (rados_store_checksum()).
 */
uint64_t checksum_xxh64(const void *data, size_t len);

#endif
