/*
 * repo_index.h - the index of one backup in the repository: the ordered
 * list of the SHA-256 digests of a volume's fixed-size chunks
 * (docs/repository.md, "Index file", format version 1).
 *
 * A base module: no engine state, no logging of its own decisions beyond
 * the one line a failed write or read leaves.  Encoding and decoding are
 * pure functions on buffers, so the parser is fuzzed on its own
 * (tests/fuzz/fuzz_repo_index.c); repo_index_write() and repo_index_read()
 * add the file: written once through a temporary name, read without
 * following a symlink and without trusting its size.
 *
 * Calling sequence of a writer:
 *
 *	struct repo_index idx;
 *	rc = repo_index_init(&idx, chunk_size, virtual_size);
 *	for each chunk i: memcpy(idx.digests[i], digest, 32) (or leave the
 *	                  32 zero bytes of a hole);
 *	rc = repo_index_write(dirfd, "<uuid>.index", &idx);
 *	repo_index_release(&idx);
 *
 * and of a reader: repo_index_read(dirfd, name, &idx), use idx,
 * repo_index_release(&idx).
 *
 * Thread-safety: every function is thread-safe on distinct structs; none
 * keeps state between calls.
 */
#ifndef SNAP_REPO_INDEX_H
#define SNAP_REPO_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define REPO_INDEX_MAGIC "SNAPIDX1" /* 8 bytes, no NUL on disk */
#define REPO_INDEX_VERSION 1u
#define REPO_INDEX_HEADER_SIZE 32u
#define REPO_INDEX_ENTRY_SIZE 32u    /* one SHA-256 digest */
#define REPO_INDEX_TRAILER_SIZE 32u  /* SHA-256 of everything before it */
#define REPO_INDEX_CHUNK_MIN (64u << 10) /* 64 KiB */
#define REPO_INDEX_CHUNK_MAX (64u << 20) /* 64 MiB */
#define REPO_INDEX_VIRTUAL_MAX (UINT64_C(1) << 50) /* 1 PiB */

/*
 * struct repo_index - one decoded index.  @count is always
 * ceil(@virtual_size / @chunk_size); @digests[i] is the SHA-256 of the
 * bytes [i * chunk_size, min((i + 1) * chunk_size, virtual_size)) of the
 * volume, or 32 zero bytes when they are all zero (a hole: no chunk is
 * stored).  @digests is owned by the struct (NULL when @count is 0):
 * free it with repo_index_release().
 */
struct repo_index {
	uint32_t chunk_size;
	uint64_t virtual_size;
	uint64_t count;
	uint8_t (*digests)[32];
};

/**
 * repo_index_chunk_size_valid() - whether @chunk_size is a power of two
 * in [REPO_INDEX_CHUNK_MIN, REPO_INDEX_CHUNK_MAX].
 */
bool repo_index_chunk_size_valid(uint32_t chunk_size);

/**
 * repo_index_init() - an index of @virtual_size bytes in chunks of
 * @chunk_size, every entry a hole
 *
 * On success @idx owns a zeroed digest array of ceil(virtual_size /
 * chunk_size) entries; free it with repo_index_release().  On failure @idx
 * is left empty (repo_index_release() on it is a no-op).
 * Return: 0; -EINVAL @chunk_size not valid; -EFBIG @virtual_size beyond
 * REPO_INDEX_VIRTUAL_MAX; -ENOMEM.
 */
int repo_index_init(struct repo_index *idx, uint32_t chunk_size,
		    uint64_t virtual_size);

/** repo_index_release() - free @idx's digests and empty it; NULL is a no-op. */
void repo_index_release(struct repo_index *idx);

/**
 * repo_index_chunk_len() - how many bytes of the volume chunk @i covers:
 * chunk_size, less for the last one, 0 when @i >= count.
 */
uint32_t repo_index_chunk_len(const struct repo_index *idx, uint64_t i);

/** repo_index_is_hole() - whether entry @i (< count) is 32 zero bytes. */
bool repo_index_is_hole(const struct repo_index *idx, uint64_t i);

/**
 * repo_index_encoded_size() - the size of the file of an index of @count
 * entries: 32 + 32 * count + 32.  @count is at most what
 * REPO_INDEX_VIRTUAL_MAX allows at REPO_INDEX_CHUNK_MIN (2^34), so it
 * cannot overflow on 64-bit systems.
 */
uint64_t repo_index_encoded_size(uint64_t count);

/**
 * repo_index_encode() - the bytes of the index file of @idx
 * @idx: borrowed; its fields must be consistent (count = ceil(virtual_size
 *       / chunk_size), digests not NULL when count > 0)
 * @buf_out: on success, owns a buffer of *@len_out bytes; free with free()
 * Return: 0; -EINVAL chunk_size not valid, count inconsistent or digests
 * NULL; -EFBIG virtual_size beyond REPO_INDEX_VIRTUAL_MAX; -ENOMEM; the
 * error of digest_sha256().
 */
int repo_index_encode(const struct repo_index *idx, void **buf_out,
		      size_t *len_out);

/**
 * repo_index_decode() - parse the bytes of an index file
 * @buf, @len: borrowed; untrusted (hostile content is expected)
 * @out: on success owns a copy of the digests (repo_index_release());
 *       on failure left empty
 *
 * Checks, in this order: the length is at least a header, the magic, the
 * version, chunk_size a power of two in range, virtual_size at most
 * 1 PiB, count = ceil(virtual_size / chunk_size), @len exactly 32 + 32 *
 * count + 32 (neither truncated nor with trailing bytes), and the
 * trailing checksum.
 * Return: 0; -EBADMSG any check but the next fails; -EFBIG virtual_size
 * beyond REPO_INDEX_VIRTUAL_MAX; -ENOMEM; the error of digest_sha256().
 */
int repo_index_decode(const void *buf, size_t len, struct repo_index *out);

/**
 * repo_index_write() - write @idx durably as @dirfd/@name
 * @dirfd: the directory the index goes in (volumes/<vol>/), borrowed;
 *         opened O_RDONLY | O_DIRECTORY (not O_PATH: it is fsynced)
 * @name: one path component ("<uuid>.index"), no '/'
 *
 * Writes ".<name>.<random>.tmp" in the same directory, fsyncs it, renames
 * it over @name and fsyncs @dirfd: a reader sees the old file, no file, or
 * the whole new one, never a part.  On failure the temporary file is
 * removed (a crash may leave one; docs/repository.md says who removes
 * it).  Fault points: "index.write", "index.fsync", "index.rename".
 * Blocks on the disk; logs the failure once.
 * Return: 0; -EINVAL @name not one component, or @idx as for
 * repo_index_encode(); -EFBIG; -ENOMEM; -errno of the write, fsync or
 * rename (-ENOSPC, -EIO...).
 */
int repo_index_write(int dirfd, const char *name, const struct repo_index *idx);
/** repo_index_write_tagged() - the same, its temporary file named
 * ".<@tag>@<@name>.<random>.tmp" (@tag: the host's, issue 14; NULL: none). */
int repo_index_write_tagged(int dirfd, const char *name, const char *tag,
			    const struct repo_index *idx);

/**
 * repo_index_read() - read and decode @dirfd/@name
 * @out: as for repo_index_decode()
 *
 * Opens with O_NOFOLLOW and O_NONBLOCK (a planted FIFO cannot hang the
 * reader), refuses anything but a regular file, and reads no more than
 * the size its header implies (one extra byte, to see the file end there).
 * Blocks on the disk.
 * Return: 0; -ENOENT no such file; -ELOOP @name is a symlink; -EBADMSG not
 * a regular file, or as for repo_index_decode(); -EFBIG; -EINVAL @name not
 * one component; -ENOMEM; -errno of the open or the read.
 */
int repo_index_read(int dirfd, const char *name, struct repo_index *out);

/*
 * On a RADOS secondary an index is the object named as its file would be
 * ("volumes/<vol>/<uuid>.index"), the same bytes.
 *
 * repo_index_put_object() - write @idx whole as object @name (replacing
 * one of that name) in one atomic write op, marked put at @now.  Fault
 * point "index.put".
 * Return: 0; -ENOMEM; -EDQUOT, -ENOSPC, -ETIMEDOUT... (logged by rados.c).
 *
 * repo_index_get_object() - read and decode object @name into @out
 * (release with repo_index_release()).
 * Return: 0; -ENOENT (not logged); -EBADMSG not a valid index; -ENOMEM;
 * -ETIMEDOUT... (logged).
 */
struct rados_store;
int repo_index_put_object(struct rados_store *rs, const char *name,
			  const struct repo_index *idx, int64_t now);
int repo_index_get_object(struct rados_store *rs, const char *name,
			  struct repo_index *out);

#endif
