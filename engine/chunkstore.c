/*
 * chunkstore.c - the repository's chunk files: put once, get checked.
 *
 * The file format, the durability rules and what a reader rejects are in
 * chunkstore.h.  Every path below the root is reached from a directory fd
 * with O_NOFOLLOW, one component at a time (.chunks, then <xx>, then the
 * name), so a symbolic link planted anywhere below the root is refused,
 * not followed; a chunk is opened O_NONBLOCK so that a FIFO planted at its
 * name cannot hang a reader.
 *
 * LOCKING: ROOT/.locks/<xx> is the lock of fan-out directory <xx>, an
 * flock() on a file of its own, opened afresh for each use (flock belongs
 * to the open file description, so two threads of one process exclude each
 * other as two processes do; closing the fd unlocks, and so does a
 * process's death, so kill -9 never leaves a lock behind).  Shared: a put's
 * exists-and-touch, and its rename; exclusive: the sweep's stat-and-unlink
 * of one chunk (chunkstore_remove_if_older(), chunkstore_remove()).  A
 * regular file rather than the directory itself because NFS locks regular
 * files only (flock on a directory there is local to one client), and the
 * file is opened O_RDWR because NFS emulates an exclusive flock with a
 * write lock.  Not inside .chunks, so that .chunks holds chunks only.
 * Nothing else is taken under it; reads (get, has) take none.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <glib.h>

#include "chunkstore.h"
#include "chunkstore_rados.h"
#include "checksum.h"
#include "fault.h"
#include "log.h"
#include "testpoint.h"

struct chunkstore {
	char *root;
	uint32_t chunk_size;
	int chunks_fd; /* ROOT/.chunks */
	int tmp_fd;    /* ROOT/.tmp */
	int locks_fd;  /* ROOT/.locks */
	char *tag;     /* this host's, in its temporary names; NULL: none */
	struct rados_store *rs; /* borrowed; set: the chunks are RADOS
				 * objects (chunkstore_rados.c), the fds -1 */
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

/* The fan-out directory of chunk @hex, made first when @create; a new one
 * is made durable (.chunks fsynced) here when @sync_parent, else by the
 * caller (a batch's commit fsyncs .chunks once).
 * Return: its fd; -ENOENT (when not @create); -EBADMSG something else
 * holds its name (logged); -errno (logged). */
static int open_fanout_sync(const struct chunkstore *cs, const char *hex,
			    bool create, bool sync_parent)
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
	if (created && sync_parent && fsync(cs->chunks_fd) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot fsync '%s/.chunks': %m",
			 cs->root);
		close(fd);
		return rc;
	}
	return fd;
}

static int open_fanout(const struct chunkstore *cs, const char *hex,
		       bool create)
{
	return open_fanout_sync(cs, hex, create, true);
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

/* Lock the fan-out directory of chunk @name (LOCKING above), blocking
 * until it is granted.  Return: the lock's fd, whose close() unlocks;
 * -EBADMSG something other than a regular file holds the lock's name;
 * -errno (all logged). */
static int fanout_lock(const struct chunkstore *cs, const char *name,
		       bool exclusive)
{
	char xx[3] = { name[0], name[1], '\0' };
	struct stat st;
	int fd, rc;

	fd = openat(cs->locks_fd, xx,
		    O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		rc = errno == ELOOP ? -EBADMSG : -errno;
		snap_log(LOG_ERR, "chunkstore: cannot open lock '%s/.locks/%s': %s",
			 cs->root, xx,
			 rc == -EBADMSG ? "a symbolic link" : g_strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot stat lock '%s/.locks/%s': %m",
			 cs->root, xx);
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		snap_log(LOG_ERR,
			 "chunkstore: bad lock '%s/.locks/%s': not a regular file",
			 cs->root, xx);
		close(fd);
		return -EBADMSG;
	}
	while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
		if (errno == EINTR)
			continue;
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot lock '%s/.locks/%s': %m",
			 cs->root, xx);
		close(fd);
		return rc;
	}
	return fd;
}

static void fanout_unlock(int lock_fd)
{
	close(lock_fd); /* the only fd of this open file description */
}

/* Make chunk @name in @dir_fd young: its mtime becomes now, so that the
 * sweep's cutoff spares it.  Called under the fan-out lock, after
 * name_state() said a regular file holds the name.
 * Return: 0; -ENOENT gone; -errno (logged). */
static int touch_locked(const struct chunkstore *cs, int dir_fd,
			const char *name)
{
	const struct timespec times[2] = { { .tv_nsec = UTIME_OMIT },
					   { .tv_nsec = UTIME_NOW } };
	int rc;

	if (fault("chunk.touch", EIO) ||
	    utimensat(dir_fd, name, times, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			chunk_log(cs, name, "cannot touch chunk", NULL);
		return rc;
	}
	return 0;
}

/* Under the shared lock: if chunk @name is there, touch it.
 * Return: 1 there and touched; 0 not there; -errno (logged). */
static int touch_if_present_locked(const struct chunkstore *cs, int dir_fd,
				   const char *name)
{
	int rc = name_state(cs, dir_fd, name);

	if (rc != 1)
		return rc;
	rc = touch_locked(cs, dir_fd, name);
	return rc == -ENOENT ? 0 : rc < 0 ? rc : 1;
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
	cs->chunks_fd = cs->tmp_fd = cs->locks_fd = -1;

	rc = make_dir(cs, root_fd, ".chunks", &created);
	if (rc < 0)
		goto fail;
	rc = make_dir(cs, root_fd, ".tmp", &created);
	if (rc < 0)
		goto fail;
	rc = make_dir(cs, root_fd, ".locks", &created);
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
	cs->locks_fd = open_dir(root_fd, ".locks");
	if (cs->locks_fd < 0) {
		rc = cs->locks_fd;
		errno = -rc;
		snap_log(LOG_ERR, "chunkstore: cannot open '%s/.locks': %m",
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

int chunkstore_open_rados(struct rados_store *rs, const char *where,
			  uint32_t chunk_size, struct chunkstore **out)
{
	struct chunkstore *cs;

	if (chunk_size < CHUNKSTORE_SIZE_MIN ||
	    chunk_size > CHUNKSTORE_SIZE_MAX ||
	    (chunk_size & (chunk_size - 1))) {
		snap_log(LOG_ERR, "chunkstore: bad chunk size %u for '%s'",
			 chunk_size, where);
		return -EINVAL;
	}
	cs = g_try_new0(struct chunkstore, 1);
	if (!cs)
		return -ENOMEM;
	cs->root = g_strdup(where);
	cs->chunk_size = chunk_size;
	cs->chunks_fd = cs->tmp_fd = cs->locks_fd = -1;
	cs->rs = rs;
	*out = cs;
	return 0;
}

void chunkstore_close(struct chunkstore *cs)
{
	if (!cs)
		return;
	if (cs->chunks_fd >= 0)
		close(cs->chunks_fd);
	if (cs->tmp_fd >= 0)
		close(cs->tmp_fd);
	if (cs->locks_fd >= 0)
		close(cs->locks_fd);
	g_free(cs->root);
	g_free(cs->tag);
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
	if (cs->rs)
		return g_strdup_printf("%s:.chunks/%.2s/%s", cs->root, hex, hex);
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

/* Create a new temporary file in ROOT/.tmp; its name in @tmp
 * ("[<tag>@]<16 hex>.chunk").  Return: its fd; -errno (logged). */
static int tmp_create(const struct chunkstore *cs, char tmp[CHUNKSTORE_TMP_NAME])
{
	int rc;

	for (int tries = 0; tries < 16; tries++) {
		int fd;

		if (cs->tag)
			snprintf(tmp, CHUNKSTORE_TMP_NAME, "%s@%08x%08x.chunk",
				 cs->tag, g_random_int(), g_random_int());
		else
			snprintf(tmp, CHUNKSTORE_TMP_NAME, "%08x%08x.chunk", g_random_int(),
				 g_random_int());
		fd = openat(cs->tmp_fd, tmp,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
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

/* The header and @len bytes of @data into @fd, not yet synced; the
 * kernel is asked to start writing them back now, so that the fsync of a
 * batch's commit finds them (mostly) on the device already.
 * Return: 0; -errno (logged). */
static int tmp_write(const struct chunkstore *cs, int fd, const char *tmp,
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
	/* a hint only: the commit's fsync is what makes the data durable */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
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

/* Rename @tmp to chunk @name under the shared lock; when another put was
 * first, touch its chunk instead (and should a sweep have removed that one
 * just before the lock, rename after all).  The new file is young: its
 * mtime is when this put wrote it.
 * Return: 0 renamed; 1 the name was taken, its chunk touched (@tmp is
 * still there); -errno (logged). */
static int publish_or_touch(const struct chunkstore *cs, const char *tmp,
			    int dir_fd, const char *name)
{
	int lock_fd, rc;

	lock_fd = fanout_lock(cs, name, false);
	if (lock_fd < 0)
		return lock_fd;
	/* a name can vanish between a failed rename and the touch only
	 * through an unlocked removal (another tool): try a few times */
	for (int tries = 0; tries < 3; tries++) {
		rc = tmp_publish(cs, tmp, dir_fd, name);
		if (rc != -EEXIST) {
			if (rc < 0) {
				errno = -rc;
				chunk_log(cs, name, "cannot rename a temporary "
					  "file to chunk", NULL);
			}
			break;
		}
		rc = touch_if_present_locked(cs, dir_fd, name);
		if (rc != 0)
			break;
		rc = -EEXIST;
	}
	fanout_unlock(lock_fd);
	if (rc == -EEXIST) {
		chunk_log(cs, name, "cannot rename a temporary file to chunk",
			  "the name keeps vanishing");
		rc = -EIO;
	}
	return rc;
}

/* One chunk written to a temporary file, not yet durable nor named. */
struct staged_chunk {
	int fd;		/* the temporary file, open for its fsync */
	char tmp[CHUNKSTORE_TMP_NAME]; /* its name in ROOT/.tmp */
	char name[DIGEST_HEX_LEN + 1];
	uint32_t len;	/* payload bytes */
	uint8_t quick[CHECKSUM_QUICK_LEN]; /* of the payload, to read back */
};

/* Drop @st: its temporary file goes. */
static void staged_discard(const struct chunkstore *cs, struct staged_chunk *st)
{
	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
	unlinkat(cs->tmp_fd, st->tmp, 0);
}

/*
 * The first half of a put: hash @data; a hole or a chunk present (touched
 * under the shared lock) is done; else the content goes to a new
 * temporary file, described in *@st.
 * Return: 0 done, *@digest set (a hole: all zero; present: *@present);
 * 1 staged: *@st must be committed (stage_commit()) or discarded;
 * -errno (logged; -EINVAL not).
 */
/* The name of @len bytes at @data into @digest.  Return: 1 named by its
 * SHA-256; 0 all zero, a hole (the all-zero digest); -EINVAL @len out of
 * range; -EIO, -ENOMEM. */
static int chunk_name(const struct chunkstore *cs, const void *data,
		      size_t len, uint8_t digest[DIGEST_LEN])
{
	int rc;

	if (len == 0 || len > cs->chunk_size)
		return -EINVAL;
	if (all_zero(data, len)) {
		memset(digest, 0, DIGEST_LEN);
		return 0;
	}
	rc = digest_sha256(data, len, digest);
	return rc < 0 ? rc : 1;
}

static int stage_chunk(struct chunkstore *cs, const void *data, size_t len,
		       uint8_t digest[DIGEST_LEN], bool *present,
		       struct staged_chunk *st)
{
	int dir_fd, lock_fd, fd, rc;

	*present = false;
	rc = chunk_name(cs, data, len, digest);
	if (rc <= 0)
		return rc;
	digest_to_hex(digest, st->name);

	/* a new fan-out directory is made durable by the commit */
	dir_fd = open_fanout_sync(cs, st->name, true, false);
	if (dir_fd < 0)
		return dir_fd;
	/* stored already (same name, same content): write nothing, but make
	 * it young, under the lock, so that no sweep removes it in between */
	lock_fd = fanout_lock(cs, st->name, false);
	if (lock_fd < 0) {
		close(dir_fd);
		return lock_fd;
	}
	rc = touch_if_present_locked(cs, dir_fd, st->name);
	fanout_unlock(lock_fd);
	close(dir_fd);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		*present = true;
		return 0;
	}

	fd = tmp_create(cs, st->tmp);
	if (fd < 0)
		return fd;
	st->fd = fd;
	rc = tmp_write(cs, fd, st->tmp, data, len);
	if (rc < 0) {
		staged_discard(cs, st);
		return rc;
	}
	st->len = (uint32_t)len;
	checksum_quick(data, len, st->quick);
	return 1;
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

/* read_back() reads through a buffer of this many bytes per thread,
 * whatever the chunk size */
#define READ_BACK_BYTES (1u << 20)

/*
 * Read back staged chunk @st, once its fsync returned: the file must hold
 * the header and the payload that were written (XXH3-128 of the payload
 * against the one of the bytes handed in: memory speed, where re-hashing
 * with SHA-256 would cost as much CPU as the put itself).  It reads the
 * page cache, not necessarily the disk (docs/repository.md), with pread
 * into @buf (READ_BACK_BYTES): a mapping cost 17% more of a full backup's
 * CPU (each munmap flushed the other CPUs' TLBs: docs/benchmarks.md).
 * Return: 0; -EIO (logged).
 */
static int read_back(const struct chunkstore *cs, const struct staged_chunk *st,
		     void *buf)
{
	size_t size = CHUNKSTORE_HEADER + (size_t)st->len;
	uint8_t quick[CHECKSUM_QUICK_LEN];
	unsigned char hdr[CHUNKSTORE_HEADER];
	struct stat sb;
	bool same;
	int rc;

	if (fault("chunk.read_back", EIO) || fstat(st->fd, &sb) < 0) {
		snap_log(LOG_ERR, "chunkstore: cannot read back '%s/.tmp/%s': %m",
			 cs->root, st->tmp);
		return -EIO;
	}
	if ((uint64_t)sb.st_size != size) {
		snap_log(LOG_ERR, "chunkstore: '%s/.tmp/%s' reads back %lld bytes, "
			 "not the %zu written", cs->root, st->tmp,
			 (long long)sb.st_size, size);
		return -EIO;
	}
	rc = read_at(st->fd, hdr, sizeof(hdr), 0);
	if (rc == 0)
		rc = checksum_quick_fd(st->fd, CHUNKSTORE_HEADER, st->len, buf,
				       READ_BACK_BYTES, quick);
	if (rc < 0) {
		snap_log(LOG_ERR, "chunkstore: cannot read back '%s/.tmp/%s': %s",
			 cs->root, st->tmp, g_strerror(-rc));
		return -EIO;
	}
	same = memcmp(hdr, CHUNKSTORE_MAGIC, 8) == 0 &&
	       memcmp(quick, st->quick, sizeof(quick)) == 0;
	if (!same) {
		snap_log(LOG_ERR, "chunkstore: '%s/.tmp/%s' does not read back "
			 "as written", cs->root, st->tmp);
		return -EIO;
	}
	return 0;
}

/*
 * The second half, for @n staged chunks at once: fsync every temporary
 * file and read it back (read_back()), then rename each to its name (or touch the chunk another put
 * named first), then fsync .chunks and each fan-out directory renamed
 * into, once each.  Every staged file is consumed, whatever happens: a
 * failure removes the temporary files not yet renamed (a chunk renamed
 * before it stays: whole, its data durable).
 * Return: 0, *@written and *@reused counted; -errno (logged).
 */
/* fsyncs of a commit run in this many threads at once: the file system
 * joins concurrent fsyncs into one journal commit (ext4's jbd2, XFS's
 * log), where one after another each waits for its own; without a
 * journal each still waits for its own cache flush, but side by side.
 * The fan-out directories of a commit and chunkstore_touch_many()'s are
 * shared out among as many (run_shares()) */
#define FLUSH_THREADS 8

struct flush_share {
	const struct chunkstore *cs;
	struct staged_chunk *st;
	size_t n, first, step;
	int rc;
};

/* Run @fn on each of the @n (<= FLUSH_THREADS) shares at @shares, @size
 * bytes apart: share 0 in the caller's thread, the others in threads of
 * their own (named @name), or in the caller's when a thread cannot
 * start.  Returns once every share is done. */
static void run_shares(const char *name, GThreadFunc fn, void *shares,
		       size_t size, unsigned n)
{
	GThread *t[FLUSH_THREADS] = { NULL };
	unsigned k;

	for (k = 1; k < n; k++)
		t[k] = g_thread_try_new(name, fn, (char *)shares + k * size,
					NULL);
	if (n)
		fn(shares);
	for (k = 1; k < n; k++) {
		if (t[k])
			g_thread_join(t[k]);
		else
			fn((char *)shares + k * size);
	}
}

/* fsync and read back st[first], st[first + step], ...; closes each. */
static gpointer flush_some(gpointer data)
{
	struct flush_share *f = data;
	g_autofree void *buf = g_try_malloc(READ_BACK_BYTES);
	size_t i;

	if (!buf) {
		f->rc = -ENOMEM;
		return NULL;
	}
	for (i = f->first; i < f->n && f->rc == 0; i += f->step) {
		struct staged_chunk *x = &f->st[i];

		if (fault("chunk.fsync", EIO) || fsync(x->fd) < 0) {
			f->rc = -errno;
			snap_log(LOG_ERR, "chunkstore: cannot fsync '%s/.tmp/%s': %m",
				 f->cs->root, x->tmp);
			break;
		}
		f->rc = read_back(f->cs, x, buf);
		if (f->rc < 0)
			break;
		close(x->fd);
		x->fd = -1;
	}
	return NULL;
}

/* fsync and read back every staged file, FLUSH_THREADS at a time.
 * Return: 0; the first failure (logged). */
static int flush_all(const struct chunkstore *cs, struct staged_chunk *st,
		     size_t n)
{
	struct flush_share share[FLUSH_THREADS];
	size_t k, threads = MIN(n, FLUSH_THREADS);
	int rc = 0;

	if (n == 0)
		return 0;
	for (k = 0; k < threads; k++)
		share[k] = (struct flush_share){ cs, st, n, k, threads, 0 };
	run_shares("snapfs-fsync", flush_some, share, sizeof(share[0]),
		   threads);
	for (k = 0; k < threads && rc == 0; k++)
		rc = share[k].rc;
	return rc;
}

/* fsync_fanouts(): the fan-out directories of one commit, shared out */
struct fanout_share {
	const struct chunkstore *cs;
	const uint8_t *dirty;
	unsigned first, step;
	int rc;
};

static gpointer fsync_fanout_some(gpointer data)
{
	struct fanout_share *f = data;

	for (unsigned x = f->first; x < 256 && f->rc == 0; x += f->step) {
		char xx[3];
		int dir_fd;

		if (!f->dirty[x])
			continue;
		g_snprintf(xx, sizeof(xx), "%02x", x);
		dir_fd = open_fanout_sync(f->cs, xx, false, false);
		if (dir_fd < 0) {
			f->rc = dir_fd;
			break;
		}
		if (fsync(dir_fd) < 0) {
			f->rc = -errno;
			snap_log(LOG_ERR, "chunkstore: cannot fsync the "
				 "directory '%s/.chunks/%s': %m", f->cs->root, xx);
		}
		close(dir_fd);
	}
	return NULL;
}

/* fsync each fan-out directory @dirty marks (a commit renamed into it),
 * FLUSH_THREADS at a time: a directory's fsync waits for the device's
 * cache flush, and without a journal (ext4 -O ^has_journal) nothing joins
 * them: on the test machine 256 of them took 91-238 ms one after another,
 * 36 ms in 8 threads (docs/benchmarks.md).  Return: 0; the first failure
 * (logged). */
static int fsync_fanouts(const struct chunkstore *cs, const uint8_t dirty[256])
{
	struct fanout_share share[FLUSH_THREADS];
	unsigned k, n = 0, threads;
	int rc = 0;

	for (k = 0; k < 256; k++)
		n += dirty[k];
	threads = MIN(n, FLUSH_THREADS);
	for (k = 0; k < threads; k++)
		share[k] = (struct fanout_share){ cs, dirty, k, threads, 0 };
	run_shares("snapfs-fsync", fsync_fanout_some, share, sizeof(share[0]),
		   threads);
	for (k = 0; k < threads && rc == 0; k++)
		rc = share[k].rc;
	return rc;
}

static int stage_commit(struct chunkstore *cs, struct staged_chunk *st,
			size_t n, uint64_t *written, uint64_t *reused)
{
	uint8_t dirty[256] = { 0 }; /* fan-out directories renamed into */
	size_t i;
	int rc = 0;

	rc = flush_all(cs, st, n);
	if (rc < 0) {
		i = 0; /* nothing renamed yet: every file goes */
		goto discard;
	}
	for (i = 0; i < n; i++) {
		int dir_fd = open_fanout_sync(cs, st[i].name, true, false);

		if (dir_fd < 0) {
			rc = dir_fd;
			goto discard;
		}
		rc = publish_or_touch(cs, st[i].tmp, dir_fd, st[i].name);
		close(dir_fd);
		if (rc < 0)
			goto discard;
		if (rc == 1) {
			/* another put of the same content was first */
			unlinkat(cs->tmp_fd, st[i].tmp, 0);
			(*reused)++;
		} else {
			dirty[g_ascii_xdigit_value(st[i].name[0]) * 16 +
			      g_ascii_xdigit_value(st[i].name[1])] = 1;
			(*written)++;
			/* a crash test's kill -9 in the middle of a commit:
			 * one chunk named, its directory not yet fsynced */
			if (*written == 1)
				testpoint("chunk.batch_renamed");
		}
	}
	rc = 0;
	/* the chunks are whole under their names; from here on a failure
	 * leaves them (a later put finds them and writes nothing) */
	if (n && fsync(cs->chunks_fd) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot fsync '%s/.chunks': %m",
			 cs->root);
		return rc;
	}
	return fsync_fanouts(cs, dirty);

discard:
	/* the files from @i on are not renamed */
	for (; i < n; i++)
		staged_discard(cs, &st[i]);
	return rc;
}

/* A put on RADOS: hash, then one atomic write (chunkstore_rados.c). */
static int rados_put(struct chunkstore *cs, const void *data, size_t len,
		     uint8_t digest_out[DIGEST_LEN], bool *written)
{
	bool w = false;
	int rc;

	rc = chunk_name(cs, data, len, digest_out);
	if (rc == 1)
		rc = chunk_rados_put(cs->rs, digest_out, data, len, &w);
	if (written)
		*written = w;
	return rc;
}

int chunkstore_put(struct chunkstore *cs, const void *data, size_t len,
		   uint8_t digest_out[DIGEST_LEN], bool *written)
{
	struct staged_chunk st = { .fd = -1 };
	uint8_t d[DIGEST_LEN];
	uint64_t w = 0, reused = 0;
	bool present;
	int rc;

	if (written)
		*written = false;
	if (cs->rs)
		return rados_put(cs, data, len, digest_out, written);
	rc = stage_chunk(cs, data, len, d, &present, &st);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		rc = stage_commit(cs, &st, 1, &w, &reused);
		if (rc < 0)
			return rc;
	}
	if (written)
		*written = w == 1;
	memcpy(digest_out, d, DIGEST_LEN);
	return 0;
}

/* ---- batches ---- */

struct chunkstore_batch {
	struct chunkstore *cs;
	uint64_t rados_written; /* RADOS: puts done since the last commit */
	GMutex lock;	/* guards staged */
	GArray *staged; /* struct staged_chunk, not yet committed */
};

int chunkstore_batch_new(struct chunkstore *cs, struct chunkstore_batch **out)
{
	struct chunkstore_batch *b = g_try_new0(struct chunkstore_batch, 1);

	if (!b)
		return -ENOMEM;
	b->cs = cs;
	g_mutex_init(&b->lock);
	b->staged = g_array_new(FALSE, FALSE, sizeof(struct staged_chunk));
	*out = b;
	return 0;
}

void chunkstore_batch_free(struct chunkstore_batch *b)
{
	if (!b)
		return;
	for (guint i = 0; i < b->staged->len; i++)
		staged_discard(b->cs, &g_array_index(b->staged,
						     struct staged_chunk, i));
	g_array_free(b->staged, TRUE);
	g_mutex_clear(&b->lock);
	g_free(b);
}

int chunkstore_batch_add(struct chunkstore_batch *b, const void *data,
			 size_t len, uint8_t digest_out[DIGEST_LEN],
			 bool *staged, size_t *pending)
{
	struct staged_chunk st = { .fd = -1 };
	bool present;
	int rc;

	*staged = false;
	if (b->cs->rs) {
		/* each put is durable when it returns: nothing to stage */
		bool w = false;

		rc = rados_put(b->cs, data, len, digest_out, &w);
		if (rc < 0)
			return rc;
		g_mutex_lock(&b->lock);
		b->rados_written += w;
		if (pending)
			*pending = 0;
		g_mutex_unlock(&b->lock);
		*staged = w; /* counted as written by the next commit */
		return 0;
	}
	rc = stage_chunk(b->cs, data, len, digest_out, &present, &st);
	if (rc < 0)
		return rc;
	g_mutex_lock(&b->lock);
	if (rc == 1)
		g_array_append_val(b->staged, st);
	if (pending)
		*pending = b->staged->len;
	g_mutex_unlock(&b->lock);
	*staged = rc == 1;
	return 0;
}

int chunkstore_batch_commit(struct chunkstore_batch *b, uint64_t *written,
			    uint64_t *reused)
{
	GArray *mine;
	int rc;

	*written = *reused = 0;
	g_mutex_lock(&b->lock);
	*written = b->rados_written;
	b->rados_written = 0;
	mine = b->staged;
	b->staged = g_array_new(FALSE, FALSE, sizeof(struct staged_chunk));
	g_mutex_unlock(&b->lock);
	rc = stage_commit(b->cs, (struct staged_chunk *)(void *)mine->data,
			  mine->len, written, reused);
	g_array_free(mine, TRUE);
	return rc;
}

/* ---- get, has, remove ---- */

static int damaged(const struct chunkstore *cs, const char *name,
		   const char *why)
{
	chunk_log(cs, name, "damaged chunk", why);
	return -EBADMSG;
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

void chunkstore_prefetch(struct chunkstore *cs,
			 const uint8_t digest[DIGEST_LEN])
{
	char name[DIGEST_HEX_LEN + 1];
	struct stat st;
	int dir_fd, fd;

	if (digest_is_zero(digest) || cs->rs)
		return;
	digest_to_hex(digest, name);
	dir_fd = open_dir(cs->chunks_fd, (char[3]){ name[0], name[1], '\0' });
	if (dir_fd < 0)
		return;
	fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(dir_fd);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	close(fd);
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
	if (cs->rs)
		return chunk_rados_get(cs->rs, cs->chunk_size, digest, buf, cap,
				       len);
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
	if (cs->rs)
		return chunk_rados_has(cs->rs, digest);
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
	int dir_fd, lock_fd, rc = 0;

	if (digest_is_zero(digest))
		return -EINVAL;
	if (cs->rs)
		return chunk_rados_remove(cs->rs, digest);
	digest_to_hex(digest, name);
	dir_fd = open_fanout(cs, name, false);
	if (dir_fd < 0)
		return dir_fd;
	lock_fd = fanout_lock(cs, name, true);
	if (lock_fd < 0) {
		close(dir_fd);
		return lock_fd;
	}
	/* unlinkat never follows: a planted symbolic link goes, not its
	 * target */
	if (unlinkat(dir_fd, name, 0) < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			chunk_log(cs, name, "cannot remove chunk", NULL);
	}
	fanout_unlock(lock_fd);
	close(dir_fd);
	return rc;
}

int chunkstore_touch(struct chunkstore *cs, const uint8_t digest[DIGEST_LEN])
{
	char name[DIGEST_HEX_LEN + 1];
	int dir_fd, lock_fd, rc;

	if (digest_is_zero(digest))
		return 0;
	if (cs->rs)
		return chunk_rados_touch(cs->rs, digest);
	digest_to_hex(digest, name);
	dir_fd = open_fanout(cs, name, false);
	if (dir_fd < 0)
		return dir_fd;
	lock_fd = fanout_lock(cs, name, false);
	if (lock_fd < 0) {
		close(dir_fd);
		return lock_fd;
	}
	rc = touch_if_present_locked(cs, dir_fd, name);
	fanout_unlock(lock_fd);
	close(dir_fd);
	return rc == 0 ? -ENOENT : rc < 0 ? rc : 0;
}

/* chunkstore_touch_many() sorts by name, so that the chunks of one
 * fan-out directory come together */
struct touch_item {
	char name[DIGEST_HEX_LEN + 1];
	size_t i;
};

static int touch_item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct touch_item *)a)->name,
		      ((const struct touch_item *)b)->name);
}

/* chunkstore_touch_many(): the fan-out directories (runs of @v sharing
 * their first two digits), shared out among threads by index */
struct touch_share {
	struct chunkstore *cs;
	const struct touch_item *v;
	const size_t *dir_start; /* run d is v[dir_start[d] .. dir_start[d+1]) */
	size_t dirs;
	bool *gone;
	unsigned first, step;
	int rc;
};

static gpointer touch_some(gpointer data)
{
	struct touch_share *f = data;

	for (size_t d = f->first; d < f->dirs && f->rc == 0; d += f->step) {
		size_t k = f->dir_start[d], end = f->dir_start[d + 1];
		int dir_fd, lock_fd;

		dir_fd = open_fanout(f->cs, f->v[k].name, false);
		if (dir_fd == -ENOENT) {
			for (; k < end; k++)
				f->gone[f->v[k].i] = true;
			continue;
		}
		if (dir_fd < 0) {
			f->rc = dir_fd;
			break;
		}
		lock_fd = fanout_lock(f->cs, f->v[k].name, false);
		if (lock_fd < 0) {
			close(dir_fd);
			f->rc = lock_fd;
			break;
		}
		for (; k < end && f->rc == 0; k++) {
			int r = touch_if_present_locked(f->cs, dir_fd, f->v[k].name);

			if (r == 0)
				f->gone[f->v[k].i] = true;
			else if (r < 0)
				f->rc = r;
		}
		fanout_unlock(lock_fd);
		close(dir_fd);
	}
	return NULL;
}

int chunkstore_touch_many(struct chunkstore *cs,
			  const uint8_t (*digests)[DIGEST_LEN], size_t n,
			  bool *gone)
{
	struct touch_share share[FLUSH_THREADS];
	struct touch_item *v = g_new(struct touch_item, n ? n : 1);
	size_t dir_start[257];
	size_t m = 0, dirs = 0, i;
	unsigned k, threads;
	int rc = 0;

	if (cs->rs) {
		for (i = 0; i < n && rc == 0; i++) {
			int r = chunkstore_touch(cs, digests[i]);

			gone[i] = r == -ENOENT;
			if (r < 0 && r != -ENOENT)
				rc = r;
		}
		g_free(v);
		return rc;
	}
	for (i = 0; i < n; i++) {
		gone[i] = false;
		if (digest_is_zero(digests[i]))
			continue;
		digest_to_hex(digests[i], v[m].name);
		v[m++].i = i;
	}
	qsort(v, m, sizeof(*v), touch_item_cmp);
	for (i = 0; i < m; i++)
		if (i == 0 || v[i].name[0] != v[i - 1].name[0] ||
		    v[i].name[1] != v[i - 1].name[1])
			dir_start[dirs++] = i;
	dir_start[dirs] = m;
	/* cold, each directory is a few random reads (its block, its
	 * chunks' inodes): in threads they overlap, one after another each
	 * waits (3276 chunks took 0.041-0.044 s in one thread, 0.023-0.029 s
	 * in 8) */
	threads = (unsigned)MIN(dirs, FLUSH_THREADS);
	for (k = 0; k < threads; k++)
		share[k] = (struct touch_share){ cs, v, dir_start, dirs, gone,
						 k, threads, 0 };
	run_shares("snapfs-touch", touch_some, share, sizeof(share[0]),
		   threads);
	for (k = 0; k < threads && rc == 0; k++)
		rc = share[k].rc;
	g_free(v);
	return rc;
}

/* ---- the sweep (garbage collection) ---- */

int chunkstore_remove_if_older(struct chunkstore *cs,
			       const uint8_t digest[DIGEST_LEN], int64_t cutoff,
			       uint64_t *bytes)
{
	char name[DIGEST_HEX_LEN + 1];
	struct stat st;
	int dir_fd, lock_fd, rc;

	*bytes = 0;
	if (digest_is_zero(digest))
		return -EINVAL;
	if (cs->rs) {
		testpoint("gc.unlink");
		rc = chunk_rados_remove_if_older(cs->rs, digest, cutoff, bytes);
		if (rc == 1)
			testpoint("gc.unlinked");
		return rc;
	}
	digest_to_hex(digest, name);
	dir_fd = open_fanout(cs, name, false);
	if (dir_fd < 0)
		return dir_fd;
	/* exclusive: no put may find the chunk present (and so not write it)
	 * between this stat and this unlink */
	lock_fd = fanout_lock(cs, name, true);
	if (lock_fd < 0) {
		close(dir_fd);
		return lock_fd;
	}
	if (fault("gc.stat", EIO) ||
	    fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			chunk_log(cs, name, "cannot stat chunk", NULL);
		goto unlock;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = damaged(cs, name, "not a regular file");
		goto unlock;
	}
	if ((int64_t)st.st_mtim.tv_sec >= cutoff) {
		rc = 0;
		goto unlock;
	}
	testpoint("gc.unlink"); /* a crash test's kill -9, lock held */
	if (fault("gc.unlink", EIO) || unlinkat(dir_fd, name, 0) < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			chunk_log(cs, name, "cannot remove chunk", NULL);
		goto unlock;
	}
	*bytes = (uint64_t)st.st_size;
	rc = 1;
	testpoint("gc.unlinked"); /* a crash test's kill -9 in a sweep */
unlock:
	fanout_unlock(lock_fd);
	close(dir_fd);
	return rc;
}

/* A fresh directory stream of @dir_fd/@name (its own offset), never
 * through a symbolic link.  Return: the stream, or NULL and errno. */
static DIR *open_stream(int dir_fd, const char *name)
{
	int fd = open_dir(dir_fd, name);
	DIR *d;

	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	d = fdopendir(fd);
	if (!d)
		close(fd);
	return d;
}

static bool is_fanout_name(const char *s)
{
	return g_ascii_isxdigit(s[0]) && !g_ascii_isupper(s[0]) &&
	       g_ascii_isxdigit(s[1]) && !g_ascii_isupper(s[1]) && !s[2];
}

/* Scan fan-out directory @xx; see chunkstore_scan(). */
static int scan_fanout(struct chunkstore *cs, const char *xx,
		       chunkstore_scan_fn fn, void *arg, uint64_t *foreign)
{
	struct dirent *e;
	DIR *d;
	int rc = 0;

	d = fault("gc.scan", EIO) ? NULL : open_stream(cs->chunks_fd, xx);
	if (!d) {
		if (errno == ELOOP || errno == ENOTDIR) {
			(*foreign)++; /* not followed, left alone */
			return 0;
		}
		if (errno == ENOENT)
			return 0; /* removed since the listing */
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot open '%s/.chunks/%s': %m",
			 cs->root, xx);
		return rc;
	}
	for (;;) {
		uint8_t digest[DIGEST_LEN];

		errno = 0;
		e = readdir(d);
		if (!e)
			break;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (digest_from_hex(e->d_name, digest) < 0 ||
		    memcmp(e->d_name, xx, 2) != 0) {
			(*foreign)++;
			continue;
		}
		rc = fn(cs, digest, arg);
		if (rc < 0)
			break;
	}
	if (!e && errno) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot read '%s/.chunks/%s': %m",
			 cs->root, xx);
	}
	closedir(d);
	return rc;
}

struct rados_scan {
	struct chunkstore *cs;
	chunkstore_scan_fn fn;
	void *arg;
};

static int rados_scan_one(const uint8_t digest[DIGEST_LEN], void *arg)
{
	struct rados_scan *rsc = arg;

	return rsc->fn(rsc->cs, digest, rsc->arg);
}

int chunkstore_scan(struct chunkstore *cs, chunkstore_scan_fn fn, void *arg,
		    uint64_t *foreign)
{
	g_autoptr(GPtrArray) dirs = g_ptr_array_new_with_free_func(g_free);
	struct dirent *e;
	DIR *d;
	int rc = 0;

	*foreign = 0;
	if (cs->rs) {
		struct rados_scan rsc = { cs, fn, arg };

		return chunk_rados_scan(cs->rs, rados_scan_one, &rsc, foreign);
	}
	/* list first, then scan: the top stream stays short-lived */
	d = open_stream(cs->chunks_fd, ".");
	if (!d) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot open '%s/.chunks': %m",
			 cs->root);
		return rc;
	}
	for (;;) {
		errno = 0;
		e = readdir(d);
		if (!e)
			break;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (is_fanout_name(e->d_name))
			g_ptr_array_add(dirs, g_strdup(e->d_name));
		else
			(*foreign)++;
	}
	if (errno) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot read '%s/.chunks': %m",
			 cs->root);
	}
	closedir(d);
	for (guint i = 0; rc == 0 && i < dirs->len; i++)
		rc = scan_fanout(cs, dirs->pdata[i], fn, arg, foreign);
	return rc;
}

/*
 * A name tmp_create() makes: 16 lowercase hex digits and ".chunk", after
 * "<tag>@" when the store has a tag.  *@own: untagged (made before tags:
 * every host's own to clear) or tagged @tag.
 */
static bool is_tmp_chunk_name(const char *s, const char *tag, bool *own)
{
	const char *at = strchr(s, '@');
	const char *hex = at ? at + 1 : s;

	for (int i = 0; i < 16; i++)
		if (!g_ascii_isxdigit(hex[i]) || g_ascii_isupper(hex[i]))
			return false;
	if (strcmp(hex + 16, ".chunk") != 0)
		return false;
	*own = !at || (tag && (size_t)(at - s) == strlen(tag) &&
		       !strncmp(s, tag, strlen(tag)));
	return true;
}

void chunkstore_set_tag(struct chunkstore *cs, const char *tag)
{
	g_free(cs->tag);
	cs->tag = tag ? g_strdup(tag) : NULL;
}

/* The sweep of ROOT/.tmp: every temporary chunk older than @cutoff, or
 * (@own_only) this store's own and untagged ones, whatever their age. */
static int tmp_sweep(struct chunkstore *cs, int64_t cutoff, bool own_only,
		     uint64_t *removed, uint64_t *bytes)
{
	struct dirent *e;
	struct stat st;
	DIR *d;
	int rc = 0;

	*removed = *bytes = 0;
	d = open_stream(cs->tmp_fd, ".");
	if (!d) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot open '%s/.tmp': %m",
			 cs->root);
		return rc;
	}
	for (;;) {
		errno = 0;
		e = readdir(d);
		if (!e)
			break;
		bool own;

		if (!is_tmp_chunk_name(e->d_name, cs->tag, &own) ||
		    (own_only && !own))
			continue; /* not a chunk's, or another host's */
		if (fstatat(cs->tmp_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) <
			    0 ||
		    !S_ISREG(st.st_mode) ||
		    (!own_only && (int64_t)st.st_mtim.tv_sec >= cutoff))
			continue; /* gone, not a file, or a put's in progress */
		if (fault("gc.unlink", EIO) ||
		    unlinkat(cs->tmp_fd, e->d_name, 0) < 0) {
			if (errno == ENOENT)
				continue;
			rc = -errno;
			snap_log(LOG_ERR,
				 "chunkstore: cannot remove '%s/.tmp/%s': %m",
				 cs->root, e->d_name);
			break;
		}
		(*removed)++;
		*bytes += (uint64_t)st.st_size;
	}
	if (!e && errno) {
		rc = -errno;
		snap_log(LOG_ERR, "chunkstore: cannot read '%s/.tmp': %m",
			 cs->root);
	}
	closedir(d);
	return rc;
}

int chunkstore_tmp_sweep(struct chunkstore *cs, int64_t cutoff,
			 uint64_t *removed, uint64_t *bytes)
{
	*removed = *bytes = 0;
	if (cs->rs)
		return 0; /* a RADOS put leaves no temporary object */
	return tmp_sweep(cs, cutoff, false, removed, bytes);
}

int chunkstore_tmp_sweep_own(struct chunkstore *cs, uint64_t *removed,
			     uint64_t *bytes)
{
	*removed = *bytes = 0;
	if (cs->rs)
		return 0;
	return tmp_sweep(cs, 0, true, removed, bytes);
}
