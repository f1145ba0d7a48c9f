/*
 * chunk_format.h - a chunk's bytes, the same in a file (chunkstore.c) and
 * in a RADOS object (chunkstore_rados.c): a 16-byte header, "SNAPCHK1",
 * u32 flags and u32 raw length (little-endian), then the content
 * (docs/repository.md, "Chunks").
 */
#ifndef SNAP_CHUNK_FORMAT_H
#define SNAP_CHUNK_FORMAT_H

#define CHUNKSTORE_MAGIC "SNAPCHK1"
#define CHUNKSTORE_HEADER 16	/* magic, flags, raw length */
#define CHUNKSTORE_FLAG_ZSTD 1u /* in the format; never written here */
#define CHUNKSTORE_SIZE_MIN (64u << 10)
#define CHUNKSTORE_SIZE_MAX (64u << 20)

#endif
