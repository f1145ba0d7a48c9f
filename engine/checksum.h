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
 * checksum_quick_fd() - checksum_quick() of the @len bytes of file @fd at
 * @off, read with pread(2) through @buf (@buf_len bytes, any size, reused
 * piece by piece): a read-back without mapping the file (a munmap in a
 * threaded process flushes the other CPUs' TLBs)
 * Return: 0 and @out; -errno of a failed read; -EIO when the file ends
 * before; -ENOMEM.  Not logged: the caller names the file.
 */
int checksum_quick_fd(int fd, off_t off, uint64_t len, void *buf,
		      size_t buf_len, uint8_t out[CHECKSUM_QUICK_LEN]);

/**
 * checksum_xxh64() - XXH64 with seed 0 of @len bytes at @data, the hash a
 * Ceph OSD computes for a checksum read (rados_store_checksum()).
 */
uint64_t checksum_xxh64(const void *data, size_t len);

#endif
