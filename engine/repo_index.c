/*
 * repo_index.c - encode, decode, write and read the index of one backup
 * (repo_index.h; the format is docs/repository.md, "Index file").
 *
 * Every integer is little-endian and read byte by byte, so the code does
 * not depend on the host's byte order or alignment.  The decoder trusts
 * nothing: each field is checked before it sizes anything, and the length
 * of the buffer must be exactly what the header implies.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "digest.h"
#include "fault.h"
#include "log.h"
#include "repo_index.h"
#include "rados.h"

/* the header's fields: offsets in the file */
#define OFF_MAGIC 0
#define OFF_VERSION 8
#define OFF_CHUNK_SIZE 12
#define OFF_VIRTUAL_SIZE 16
#define OFF_COUNT 24

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

bool repo_index_chunk_size_valid(uint32_t chunk_size)
{
	return chunk_size >= REPO_INDEX_CHUNK_MIN &&
	       chunk_size <= REPO_INDEX_CHUNK_MAX &&
	       (chunk_size & (chunk_size - 1)) == 0;
}

/* ceil(@virtual_size / @chunk_size) for a valid chunk size */
static uint64_t chunk_count(uint32_t chunk_size, uint64_t virtual_size)
{
	return virtual_size / chunk_size + (virtual_size % chunk_size != 0);
}

uint64_t repo_index_encoded_size(uint64_t count)
{
	return REPO_INDEX_HEADER_SIZE + count * REPO_INDEX_ENTRY_SIZE +
	       REPO_INDEX_TRAILER_SIZE;
}

int repo_index_init(struct repo_index *idx, uint32_t chunk_size,
		    uint64_t virtual_size)
{
	uint64_t count;

	memset(idx, 0, sizeof(*idx));
	if (!repo_index_chunk_size_valid(chunk_size))
		return -EINVAL;
	if (virtual_size > REPO_INDEX_VIRTUAL_MAX)
		return -EFBIG;
	count = chunk_count(chunk_size, virtual_size);
	if (count > SIZE_MAX / REPO_INDEX_ENTRY_SIZE)
		return -ENOMEM;
	if (count) {
		idx->digests = calloc((size_t)count, REPO_INDEX_ENTRY_SIZE);
		if (!idx->digests)
			return -ENOMEM;
	}
	idx->chunk_size = chunk_size;
	idx->virtual_size = virtual_size;
	idx->count = count;
	return 0;
}

void repo_index_release(struct repo_index *idx)
{
	if (!idx)
		return;
	free(idx->digests);
	memset(idx, 0, sizeof(*idx));
}

uint32_t repo_index_chunk_len(const struct repo_index *idx, uint64_t i)
{
	uint64_t start;

	if (i >= idx->count)
		return 0;
	start = i * idx->chunk_size;
	if (idx->virtual_size - start < idx->chunk_size)
		return (uint32_t)(idx->virtual_size - start);
	return idx->chunk_size;
}

bool repo_index_is_hole(const struct repo_index *idx, uint64_t i)
{
	static const uint8_t zero[REPO_INDEX_ENTRY_SIZE];

	return !memcmp(idx->digests[i], zero, sizeof(zero));
}

int repo_index_encode(const struct repo_index *idx, void **buf_out,
		      size_t *len_out)
{
	uint64_t size;
	uint8_t *buf;
	size_t body;
	int rc;

	*buf_out = NULL;
	*len_out = 0;
	if (!repo_index_chunk_size_valid(idx->chunk_size))
		return -EINVAL;
	if (idx->virtual_size > REPO_INDEX_VIRTUAL_MAX)
		return -EFBIG;
	if (idx->count != chunk_count(idx->chunk_size, idx->virtual_size) ||
	    (idx->count && !idx->digests))
		return -EINVAL;
	size = repo_index_encoded_size(idx->count);
	if (size > SIZE_MAX)
		return -ENOMEM;
	buf = malloc((size_t)size);
	if (!buf)
		return -ENOMEM;

	memcpy(buf + OFF_MAGIC, REPO_INDEX_MAGIC, 8);
	put_le32(buf + OFF_VERSION, REPO_INDEX_VERSION);
	put_le32(buf + OFF_CHUNK_SIZE, idx->chunk_size);
	put_le64(buf + OFF_VIRTUAL_SIZE, idx->virtual_size);
	put_le64(buf + OFF_COUNT, idx->count);
	body = (size_t)size - REPO_INDEX_TRAILER_SIZE;
	if (idx->count)
		memcpy(buf + REPO_INDEX_HEADER_SIZE, idx->digests,
		       body - REPO_INDEX_HEADER_SIZE);
	rc = digest_sha256(buf, body, buf + body);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*buf_out = buf;
	*len_out = (size_t)size;
	return 0;
}

/*
 * Check the header at @p (REPO_INDEX_HEADER_SIZE bytes) and fill @hdr's
 * scalar fields; *@size receives the file size it implies.  Everything a
 * reader sizes a buffer by is checked here first.
 */
static int header_parse(const uint8_t *p, struct repo_index *hdr,
			uint64_t *size)
{
	uint32_t chunk_size;
	uint64_t virtual_size, count;

	if (memcmp(p + OFF_MAGIC, REPO_INDEX_MAGIC, 8) != 0)
		return -EBADMSG;
	if (get_le32(p + OFF_VERSION) != REPO_INDEX_VERSION)
		return -EBADMSG;
	chunk_size = get_le32(p + OFF_CHUNK_SIZE);
	if (!repo_index_chunk_size_valid(chunk_size))
		return -EBADMSG;
	virtual_size = get_le64(p + OFF_VIRTUAL_SIZE);
	if (virtual_size > REPO_INDEX_VIRTUAL_MAX)
		return -EFBIG;
	count = get_le64(p + OFF_COUNT);
	if (count != chunk_count(chunk_size, virtual_size))
		return -EBADMSG;
	hdr->chunk_size = chunk_size;
	hdr->virtual_size = virtual_size;
	hdr->count = count;
	hdr->digests = NULL;
	*size = repo_index_encoded_size(count);
	return 0;
}

int repo_index_decode(const void *buf, size_t len, struct repo_index *out)
{
	const uint8_t *p = buf;
	uint8_t sum[DIGEST_LEN];
	struct repo_index hdr;
	uint64_t size;
	size_t body;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len < REPO_INDEX_HEADER_SIZE)
		return -EBADMSG;
	rc = header_parse(p, &hdr, &size);
	if (rc < 0)
		return rc;
	if ((uint64_t)len != size)
		return -EBADMSG;
	body = len - REPO_INDEX_TRAILER_SIZE;
	rc = digest_sha256(p, body, sum);
	if (rc < 0)
		return rc;
	if (memcmp(sum, p + body, DIGEST_LEN) != 0)
		return -EBADMSG;
	if (hdr.count) {
		hdr.digests = malloc(body - REPO_INDEX_HEADER_SIZE);
		if (!hdr.digests)
			return -ENOMEM;
		memcpy(hdr.digests, p + REPO_INDEX_HEADER_SIZE,
		       body - REPO_INDEX_HEADER_SIZE);
	}
	*out = hdr;
	return 0;
}

/* @name is one path component: not empty, no '/', not "." nor "..". */
static bool name_ok(const char *name)
{
	return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

/* Write all @len bytes of @buf to @fd; -errno on failure. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n;

		if (fault("index.write", EIO))
			return -errno;
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int repo_index_write(int dirfd, const char *name, const struct repo_index *idx)
{
	return repo_index_write_tagged(dirfd, name, NULL, idx);
}

int repo_index_write_tagged(int dirfd, const char *name, const char *tag,
			    const struct repo_index *idx)
{
	g_autofree char *tmp = NULL;
	void *buf = NULL;
	size_t len = 0;
	int fd, rc;

	if (!name_ok(name))
		return -EINVAL;
	rc = repo_index_encode(idx, &buf, &len);
	if (rc < 0)
		return rc;
	/* a leading '.' and a '.tmp' end: no uuid index can have this name */
	tmp = g_strdup_printf(".%s%s%s.%08x%08x.tmp", tag ? tag : "",
			      tag ? "@" : "", name, g_random_int(),
			      g_random_int());
	fd = openat(dirfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "repo_index: cannot create '%s': %s", tmp,
			 g_strerror(-rc));
		free(buf);
		return rc;
	}
	rc = write_all(fd, buf, len);
	free(buf);
	if (rc < 0) {
		snap_log(LOG_ERR, "repo_index: cannot write '%s': %s", tmp,
			 g_strerror(-rc));
		goto undo_tmp;
	}
	if (fault("index.fsync", EIO) || fsync(fd) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "repo_index: cannot fsync '%s': %s", tmp,
			 g_strerror(-rc));
		goto undo_tmp;
	}
	close(fd);
	fd = -1;
	if (fault("index.rename", EIO) || renameat(dirfd, tmp, dirfd, name) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "repo_index: cannot rename '%s' to '%s': %s",
			 tmp, name, g_strerror(-rc));
		goto undo_tmp;
	}
	/* the new name is in place but not durable until its directory is;
	 * the caller does not publish a backup whose index failed here */
	if (fault("index.fsync_dir", EIO) || fsync(dirfd) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "repo_index: cannot fsync the directory of '%s': %s",
			 name, g_strerror(-rc));
		return rc;
	}
	return 0;

undo_tmp:
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	return rc;
}

/* Read up to @len bytes at @off into @buf; the count read, or -errno. */
static ssize_t read_full(int fd, uint8_t *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int repo_index_read(int dirfd, const char *name, struct repo_index *out)
{
	uint8_t head[REPO_INDEX_HEADER_SIZE];
	g_autofree uint8_t *buf = NULL;
	struct repo_index hdr;
	struct stat st;
	uint64_t size;
	ssize_t n;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	if (!name_ok(name))
		return -EINVAL;
	fd = openat(dirfd, name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			snap_log(LOG_ERR, "repo_index: cannot open '%s': %s",
				 name, g_strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	rc = -EBADMSG;
	if (!S_ISREG(st.st_mode))
		goto out;
	n = read_full(fd, head, sizeof(head), 0);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	if ((size_t)n < sizeof(head))
		goto out;
	rc = header_parse(head, &hdr, &size);
	if (rc < 0)
		goto out;
	rc = -EBADMSG;
	if ((uint64_t)st.st_size != size)
		goto out;
	/* one byte more than the header implies: the file must end there,
	 * whatever st_size said (it may have grown since) */
	if (size >= SIZE_MAX) {
		rc = -ENOMEM;
		goto out;
	}
	buf = g_try_malloc((size_t)size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	n = read_full(fd, buf, (size_t)size + 1, 0);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	rc = -EBADMSG;
	if ((uint64_t)n != size)
		goto out;
	rc = repo_index_decode(buf, (size_t)size, out);

out:
	close(fd);
	if (rc < 0 && rc != -ENOMEM)
		snap_log(LOG_ERR, "repo_index: cannot read '%s': %s", name,
			 rc == -EBADMSG ? "not a valid index" : g_strerror(-rc));
	return rc;
}

/* ---- on RADOS ---------------------------------------------------------- */

int repo_index_put_object(struct rados_store *rs, const char *name,
			  const struct repo_index *idx, int64_t now)
{
	void *buf = NULL;
	size_t len = 0;
	int rc;

	rc = repo_index_encode(idx, &buf, &len);
	if (rc < 0)
		return rc;
	rc = fault("index.put", EIO) ? -errno :
		rados_store_put(rs, name, buf, len, false, now);
	free(buf);
	return rc;
}

int repo_index_get_object(struct rados_store *rs, const char *name,
			  struct repo_index *out)
{
	g_autofree uint8_t *buf = NULL;
	uint64_t size = 0;
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = rados_store_stat(rs, name, &size, NULL);
	if (rc == -EBADMSG)
		rc = 0; /* the time is not ours to read here */
	if (rc < 0)
		return rc;
	if (size < REPO_INDEX_HEADER_SIZE || size >= SIZE_MAX) {
		snap_log(LOG_ERR, "repo_index: object '%s' is not a valid index",
			 name);
		return -EBADMSG;
	}
	buf = g_try_malloc((size_t)size);
	if (!buf)
		return -ENOMEM;
	rc = rados_store_get(rs, name, buf, (size_t)size, &len);
	if (rc == -EFBIG)
		rc = -EBADMSG; /* it grew since the stat: not one we wrote */
	if (rc < 0)
		return rc;
	rc = repo_index_decode(buf, len, out);
	if (rc < 0 && rc != -ENOMEM)
		snap_log(LOG_ERR, "repo_index: object '%s' is not a valid index",
			 name);
	return rc;
}
