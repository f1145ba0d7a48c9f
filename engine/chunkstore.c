/*
 * chunkstore.c - the repository's chunk files: put once, get checked.
 *
 * The file format, the durability rules and what a reader rejects are in
 * chunkstore.h.  Every path below the root is reached from a directory fd
 * with O_NOFOLLOW, one component at a time (.chunks, then <xx>, then the
 * name), so a symbolic link planted anywhere below the root is refused,
 * not followed; a chunk is opened O_NONBLOCK so that a FIFO planted at its
 * name cannot hang a reader.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib.h>

#include "chunkstore.h"
#include "fault.h"
#include "log.h"

struct chunkstore {
	char *root;
	uint32_t chunk_size;
	int chunks_fd; /* ROOT/.chunks */
	int tmp_fd;    /* ROOT/.tmp */
};

/* Log "chunkstore: @what '<root>/.chunks/<xx>/@name': @why" (@why NULL:
 * errno's text). */
static void chunk_log(const struct chunkstore *cs, const char *name,
		      const char *what, const char *why)
{
	int err = errno;

	snap_log(LOG_ERR, "chunkstore: %s '%s/.chunks/%.2s/%s': %s", what,
		 cs->root, name, name, why ? why : g_strerror(err));
	errno = err;
}

/* ---- directories ---- */

/* Make @name in @dir_fd (mode 0700) unless it exists; *@created says
 * whether it was made.  Return: 0; -errno (logged). */
static int make_dir(const struct chunkstore *cs, int dir_fd, const char *name,
		    bool *created)
{
	int rc;

	*created = false;
	if (mkdirat(dir_fd, name, 0700) == 0) {
		*created = true;
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	rc = -errno;
	snap_log(LOG_ERR, "chunkstore: cannot create directory '%s/%s': %m",
		 cs->root, name);
	return rc;
}

/* Open directory @name in @dir_fd, never through a symbolic link.
 * Return: the fd; -ENOENT; -ELOOP/-ENOTDIR not a directory; -errno. */
static int open_dir(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* The fan-out directory of chunk @hex, made first when @create.
 * Return: its fd; -ENOENT (when not @create); -EBADMSG something else
 * holds its name (logged); -errno (logged). */
static int open_fanout(const struct chunkstore *cs, const char *hex,
		       bool create)
{
	char xx[3] = { hex[0], hex[1], '\0' };
	bool created = false;
	int fd, rc;

	if (create) {
		rc = make_dir(cs, cs->chunks_fd, xx, &created);
		if (rc < 0)
			return rc;
	}
	fd = open_dir(cs->chunks_fd, xx);
	if (fd == -ENOENT && !create)
		return fd;
	if (fd == -ELOOP || fd == -ENOTDIR) {
		snap_log(LOG_ERR,
			 "chunkstore: damaged repository '%s/.chunks/%s': not "
			 "a directory",
			 cs->root, xx);
		return -EBADMSG;
	}
	if (fd < 0) {
		errno = -fd;
		snap_log(LOG_ERR, "chunkstore: cannot open '%s/.chunks/%s': %m",
			 cs->root, xx);
		return fd;
	}
	/* a new directory entry is durable only once its parent is synced */
	if (created && fsync(cs->chunks_fd) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot fsync '%s/.chunks': %m",
			 cs->root);
		close(fd);
		return rc;
	}
	return fd;
}

/* What holds @name in @dir_fd.  Return: 1 a regular file; 0 nothing;
 * -EBADMSG something else (logged); -errno (logged). */
static int name_state(const struct chunkstore *cs, int dir_fd, const char *name)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		int rc = -errno;

		if (rc == -ENOENT)
			return 0;
		chunk_log(cs, name, "cannot stat chunk", NULL);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		chunk_log(cs, name, "damaged chunk", "not a regular file");
		return -EBADMSG;
	}
	return 1;
}

/* ---- open, close ---- */

int chunkstore_open(const char *root, uint32_t chunk_size,
		    struct chunkstore **out)
{
	struct chunkstore *cs;
	bool created;
	int root_fd, rc;

	if (chunk_size < CHUNKSTORE_SIZE_MIN ||
	    chunk_size > CHUNKSTORE_SIZE_MAX ||
	    (chunk_size & (chunk_size - 1))) {
		snap_log(LOG_ERR, "chunkstore: bad chunk size %u for '%s'",
			 chunk_size, root);
		return -EINVAL;
	}
	root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot open '%s': %m", root);
		return rc;
	}
	cs = g_try_new0(struct chunkstore, 1);
	if (!cs) {
		close(root_fd);
		return -ENOMEM;
	}
	cs->root = g_strdup(root);
	cs->chunk_size = chunk_size;
	cs->chunks_fd = cs->tmp_fd = -1;

	rc = make_dir(cs, root_fd, ".chunks", &created);
	if (rc < 0)
		goto fail;
	rc = make_dir(cs, root_fd, ".tmp", &created);
	if (rc < 0)
		goto fail;
	cs->chunks_fd = open_dir(root_fd, ".chunks");
	if (cs->chunks_fd < 0) {
		rc = cs->chunks_fd;
		errno = -rc;
		snap_log(LOG_ERR, "chunkstore: cannot open '%s/.chunks': %m",
			 root);
		goto fail;
	}
	cs->tmp_fd = open_dir(root_fd, ".tmp");
	if (cs->tmp_fd < 0) {
		rc = cs->tmp_fd;
		errno = -rc;
		snap_log(LOG_ERR, "chunkstore: cannot open '%s/.tmp': %m",
			 root);
		goto fail;
	}
	close(root_fd);
	*out = cs;
	return 0;

fail:
	close(root_fd);
	chunkstore_close(cs);
	return rc;
}

void chunkstore_close(struct chunkstore *cs)
{
	if (!cs)
		return;
	if (cs->chunks_fd >= 0)
		close(cs->chunks_fd);
	if (cs->tmp_fd >= 0)
		close(cs->tmp_fd);
	g_free(cs->root);
	g_free(cs);
}

uint32_t chunkstore_chunk_size(const struct chunkstore *cs)
{
	return cs->chunk_size;
}

char *chunkstore_path(const struct chunkstore *cs,
		      const uint8_t digest[DIGEST_LEN])
{
	char hex[DIGEST_HEX_LEN + 1];

	digest_to_hex(digest, hex);
	return g_strdup_printf("%s/.chunks/%.2s/%s", cs->root, hex, hex);
}

/* ---- put ---- */

static bool all_zero(const unsigned char *p, size_t len)
{
	return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Create a new temporary file in ROOT/.tmp; its name in @tmp.
 * Return: its fd; -errno (logged). */
static int tmp_create(const struct chunkstore *cs, char tmp[64])
{
	int rc;

	for (int tries = 0; tries < 16; tries++) {
		int fd;

		snprintf(tmp, 64, "%08x%08x.chunk", g_random_int(),
			 g_random_int());
		fd = openat(cs->tmp_fd, tmp,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC,
			    0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			break;
	}
	rc = -errno;
	snap_log(LOG_ERR, "chunkstore: cannot create a file in '%s/.tmp': %m",
		 cs->root);
	return rc;
}

/* The header and @len bytes of @data into @fd, synced.
 * Return: 0; -errno (logged). */
static int tmp_fill(const struct chunkstore *cs, int fd, const char *tmp,
		    const void *data, size_t len)
{
	unsigned char hdr[CHUNKSTORE_HEADER];
	uint32_t flags = GUINT32_TO_LE(0), raw = GUINT32_TO_LE((uint32_t)len);
	int rc;

	memcpy(hdr, CHUNKSTORE_MAGIC, 8);
	memcpy(hdr + 8, &flags, 4);
	memcpy(hdr + 12, &raw, 4);
	if (fault("chunk.write", EIO))
		rc = -errno;
	else
		rc = write_all(fd, hdr, sizeof(hdr));
	if (rc == 0)
		rc = write_all(fd, data, len);
	if (rc < 0) {
		errno = -rc;
		snap_log(LOG_ERR, "chunkstore: cannot write '%s/.tmp/%s': %m",
			 cs->root, tmp);
		return rc;
	}
	if (fault("chunk.fsync", EIO) || fsync(fd) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot fsync '%s/.tmp/%s': %m",
			 cs->root, tmp);
		return rc;
	}
	return 0;
}

/* Give temporary file @tmp the name @name in @dir_fd unless the name is
 * taken.  Return: 0; -EEXIST taken (@tmp is still there); -errno. */
static int tmp_publish(const struct chunkstore *cs, const char *tmp, int dir_fd,
		       const char *name)
{
	if (fault("chunk.rename", EIO))
		return -errno;
	if (renameat2(cs->tmp_fd, tmp, dir_fd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* a file system without RENAME_NOREPLACE (NFS): a hard link fails
	 * on a taken name the same way, atomically */
	if (linkat(cs->tmp_fd, tmp, dir_fd, name, 0) < 0)
		return -errno;
	unlinkat(cs->tmp_fd, tmp, 0);
	return 0;
}

int chunkstore_put(struct chunkstore *cs, const void *data, size_t len,
		   uint8_t digest_out[DIGEST_LEN], bool *written)
{
	uint8_t d[DIGEST_LEN];
	char name[DIGEST_HEX_LEN + 1], tmp[64];
	int dir_fd, fd, rc;

	if (written)
		*written = false;
	if (len == 0 || len > cs->chunk_size)
		return -EINVAL;
	if (all_zero(data, len)) {
		memset(digest_out, 0, DIGEST_LEN);
		return 0;
	}
	rc = digest_sha256(data, len, d);
	if (rc < 0)
		return rc;
	digest_to_hex(d, name);

	dir_fd = open_fanout(cs, name, true);
	if (dir_fd < 0)
		return dir_fd;
	/* stored already (same name, same content): write nothing */
	rc = name_state(cs, dir_fd, name);
	if (rc != 0)
		goto close_dir;

	fd = tmp_create(cs, tmp);
	if (fd < 0) {
		rc = fd;
		goto close_dir;
	}
	rc = tmp_fill(cs, fd, tmp, data, len);
	close(fd);
	if (rc < 0)
		goto remove_tmp;
	rc = tmp_publish(cs, tmp, dir_fd, name);
	if (rc == -EEXIST) {
		/* another put of the same content was first */
		unlinkat(cs->tmp_fd, tmp, 0);
		rc = name_state(cs, dir_fd, name);
		goto close_dir;
	}
	if (rc < 0) {
		errno = -rc;
		chunk_log(cs, name, "cannot rename a temporary file to chunk",
			  NULL);
		goto remove_tmp;
	}
	if (fsync(dir_fd) < 0) {
		/* the chunk is whole under its name, only maybe not durable:
		 * it stays (a later put of it finds it and writes nothing) */
		rc = -errno;
		chunk_log(cs, name, "cannot fsync the directory of chunk",
			  NULL);
		goto close_dir;
	}
	if (written)
		*written = true;
	rc = 1;
	goto close_dir;

remove_tmp:
	unlinkat(cs->tmp_fd, tmp, 0);
close_dir:
	close(dir_fd);
	if (rc < 0)
		return rc;
	memcpy(digest_out, d, DIGEST_LEN);
	return 0;
}

/* ---- get, has, remove ---- */

static int damaged(const struct chunkstore *cs, const char *name,
		   const char *why)
{
	chunk_log(cs, name, "damaged chunk", why);
	return -EBADMSG;
}

static int read_at(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG; /* shorter than fstat said */
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Open chunk @name for reading.  Return: its fd; -ENOENT; -EBADMSG;
 * -errno (all logged). */
static int open_chunk(const struct chunkstore *cs, const char *name)
{
	int dir_fd, fd, rc;

	dir_fd = open_fanout(cs, name, false);
	if (dir_fd == -ENOENT) {
		chunk_log(cs, name, "missing chunk", "no such file");
		return dir_fd;
	}
	if (dir_fd < 0)
		return dir_fd;
	fd = openat(dir_fd, name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	rc = fd < 0 ? -errno : fd;
	close(dir_fd);
	if (rc == -ENOENT) {
		chunk_log(cs, name, "missing chunk", "no such file");
	} else if (rc == -ELOOP) {
		rc = damaged(cs, name, "a symbolic link");
	} else if (rc < 0) {
		errno = -rc;
		chunk_log(cs, name, "cannot open chunk", NULL);
	}
	return rc;
}

int chunkstore_get(struct chunkstore *cs, const uint8_t digest[DIGEST_LEN],
		   void *buf, size_t cap, size_t *len)
{
	unsigned char hdr[CHUNKSTORE_HEADER];
	uint8_t d[DIGEST_LEN];
	char name[DIGEST_HEX_LEN + 1];
	uint32_t flags, raw;
	struct stat st;
	int fd, rc;

	if (digest_is_zero(digest))
		return -EINVAL;
	digest_to_hex(digest, name);
	fd = open_chunk(cs, name);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		chunk_log(cs, name, "cannot stat chunk", NULL);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = damaged(cs, name, "not a regular file");
		goto out;
	}
	if (st.st_size <= CHUNKSTORE_HEADER) {
		rc = damaged(cs, name, "truncated");
		goto out;
	}
	rc = read_at(fd, hdr, sizeof(hdr), 0);
	if (rc == -EBADMSG) {
		rc = damaged(cs, name, "truncated");
		goto out;
	}
	if (rc < 0)
		goto read_failed;
	memcpy(&flags, hdr + 8, 4);
	memcpy(&raw, hdr + 12, 4);
	flags = GUINT32_FROM_LE(flags);
	raw = GUINT32_FROM_LE(raw);
	if (memcmp(hdr, CHUNKSTORE_MAGIC, 8) != 0) {
		rc = damaged(cs, name, "bad magic");
		goto out;
	}
	if (flags & CHUNKSTORE_FLAG_ZSTD) {
		/* in the format, but never written by this version */
		rc = damaged(cs, name, "compressed");
		goto out;
	}
	if (flags) {
		rc = damaged(cs, name, "unknown flags");
		goto out;
	}
	if (raw == 0 || raw > cs->chunk_size) {
		rc = damaged(cs, name, "length out of range");
		goto out;
	}
	if ((uint64_t)st.st_size < CHUNKSTORE_HEADER + (uint64_t)raw) {
		rc = damaged(cs, name, "truncated");
		goto out;
	}
	if ((uint64_t)st.st_size > CHUNKSTORE_HEADER + (uint64_t)raw) {
		rc = damaged(cs, name, "longer than its length");
		goto out;
	}
	if (raw > cap) {
		chunk_log(cs, name, "cannot read chunk",
			  "the buffer is too small");
		rc = -ERANGE;
		goto out;
	}
	rc = read_at(fd, buf, raw, CHUNKSTORE_HEADER);
	if (rc == -EBADMSG) {
		rc = damaged(cs, name, "truncated");
		goto out;
	}
	if (rc < 0)
		goto read_failed;
	rc = digest_sha256(buf, raw, d);
	if (rc < 0)
		goto out;
	if (memcmp(d, digest, DIGEST_LEN) != 0) {
		rc = damaged(cs, name, "content does not match its name");
		goto out;
	}
	*len = raw;
	rc = 0;
	goto out;

read_failed:
	errno = -rc;
	chunk_log(cs, name, "cannot read chunk", NULL);
out:
	close(fd);
	return rc;
}

int chunkstore_has(struct chunkstore *cs, const uint8_t digest[DIGEST_LEN])
{
	char name[DIGEST_HEX_LEN + 1];
	int dir_fd, rc;

	if (digest_is_zero(digest))
		return 1;
	digest_to_hex(digest, name);
	dir_fd = open_fanout(cs, name, false);
	if (dir_fd == -ENOENT)
		return 0;
	if (dir_fd < 0)
		return dir_fd;
	rc = name_state(cs, dir_fd, name);
	close(dir_fd);
	return rc;
}

int chunkstore_remove(struct chunkstore *cs,
		      const uint8_t digest[DIGEST_LEN])
{
	char name[DIGEST_HEX_LEN + 1];
	int dir_fd, rc = 0;

	if (digest_is_zero(digest))
		return -EINVAL;
	digest_to_hex(digest, name);
	dir_fd = open_fanout(cs, name, false);
	if (dir_fd < 0)
		return dir_fd;
	/* unlinkat never follows: a planted symbolic link goes, not its
	 * target */
	if (unlinkat(dir_fd, name, 0) < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			chunk_log(cs, name, "cannot remove chunk", NULL);
	}
	close(dir_fd);
	return rc;
}
