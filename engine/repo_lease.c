/*
 * repo_lease.c - SECONDARY/.leases/<host> (repo_lease.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>

#include "repo_lease.h"
#include "rados.h"
#include "fault.h"
#include "log.h"
#include "snap.h"

/* Open SECONDARY/.leases as a directory (made when @create), no link
 * followed. */
static int lease_dir_open(const char *secondary, bool create)
{
	g_autofree char *dir = g_build_filename(secondary, LEASE_DIR, NULL);
	int fd;

	if (create && mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* The text of a lease saying @oldest (-1: idle) into @text; its length. */
static ssize_t lease_text(int64_t oldest, char text[64])
{
	if (oldest < 0)
		return g_snprintf(text, 64, "idle\n");
	return g_snprintf(text, 64, "oldest %" G_GINT64_FORMAT "\n", oldest);
}

int lease_write(const char *secondary, const char *host, int64_t oldest)
{
	g_autofree char *tmp = g_strdup_printf(".%s.tmp", host);
	char text[64];
	int dfd, fd, rc = 0;
	ssize_t len = lease_text(oldest, text);

	dfd = lease_dir_open(secondary, true);
	if (dfd < 0) {
		snap_log(LOG_ERR, "lease: cannot open '%s/%s': %s", secondary,
			 LEASE_DIR, g_strerror(-dfd));
		return dfd;
	}
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0644);
	if (fd < 0) {
		rc = -errno;
	} else {
		errno = EIO; /* a short write sets none */
		if (fault("lease.write", EIO) || write(fd, text, len) != len ||
		    fsync(fd) < 0)
			rc = -errno;
		close(fd);
	}
	if (rc == 0 && renameat(dfd, tmp, dfd, host) < 0)
		rc = -errno;
	if (rc == 0 && fsync(dfd) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(dfd, tmp, 0);
		snap_log(LOG_ERR, "lease: cannot write '%s/%s/%s': %s", secondary,
			 LEASE_DIR, host, g_strerror(-rc));
	}
	close(dfd);
	return rc;
}

/* Parse one lease file @name in @dfd: its oldest, INT64_MAX idle; -1 bad. */
/* A lease's text (NUL-terminated): its "oldest", INT64_MAX for idle, -1
 * when it is not a lease. */
static int64_t lease_parse(const char *text)
{
	char *end;
	long long v;

	if (!strcmp(text, "idle\n"))
		return INT64_MAX;
	if (strncmp(text, "oldest ", 7) != 0 || !g_ascii_isdigit(text[7]))
		return -1;
	errno = 0;
	v = strtoll(text + 7, &end, 10);
	if (errno || strcmp(end, "\n") != 0 || v >= INT64_MAX)
		return -1; /* out of range, or anything after the number */
	return (int64_t)v;
}

static int64_t lease_read(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	char text[64];
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	return lease_parse(text);
}

int lease_others(const char *secondary, const char *host, int64_t *oldest,
		 unsigned *hosts)
{
	int dfd = lease_dir_open(secondary, false);
	struct dirent *de;
	DIR *d;

	*oldest = INT64_MAX;
	*hosts = 0;
	if (dfd == -ENOENT)
		return 0;
	d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		int rc = dfd < 0 ? dfd : -errno;

		if (dfd >= 0)
			close(dfd);
		*oldest = 0;
		snap_log(LOG_ERR, "lease: cannot read '%s/%s': %s", secondary,
			 LEASE_DIR, g_strerror(-rc));
		return rc;
	}
	while ((de = readdir(d))) {
		int64_t v;

		if (de->d_name[0] == '.' || !strcmp(de->d_name, host))
			continue;
		(*hosts)++;
		v = lease_read(dirfd(d), de->d_name);
		if (v < 0) {
			snap_log(LOG_WARNING, "lease: '%s/%s/%s' is not a lease: this garbage collection keeps every unnamed chunk",
				 secondary, LEASE_DIR, de->d_name);
			v = 0;
		}
		*oldest = MIN(*oldest, v);
	}
	closedir(d);
	return 0;
}

/* ---- on RADOS: objects ".leases/<host>" -------------------------------- */

int lease_write_rados(struct rados_store *rs, const char *host,
		      int64_t oldest)
{
	g_autofree char *name = g_strdup_printf(LEASE_DIR "/%s", host);
	char text[64];
	ssize_t len = lease_text(oldest, text);
	int rc;

	rc = fault("lease.write", EIO) ? -errno :
		rados_store_put(rs, name, text, (size_t)len, false,
				(int64_t)time(NULL));
	if (rc < 0)
		snap_log(LOG_ERR, "lease: cannot write object '%s': %s", name,
			 g_strerror(-rc));
	return rc;
}

struct others {
	struct rados_store *rs;
	const char *own;
	int64_t oldest;
	unsigned hosts;
};

static int other_one(const char *name, void *arg)
{
	struct others *o = arg;
	char text[64];
	size_t len = 0;
	int64_t v = -1;

	if (!strcmp(name, o->own))
		return 0;
	o->hosts++;
	if (rados_store_get(o->rs, name, text, sizeof(text) - 1, &len) == 0) {
		text[len] = '\0';
		v = lease_parse(text);
	}
	if (v < 0) {
		snap_log(LOG_WARNING, "lease: object '%s' is not a lease: this garbage collection keeps every unnamed chunk",
			 name);
		v = 0;
	}
	o->oldest = MIN(o->oldest, v);
	return 0;
}

int lease_others_rados(struct rados_store *rs, const char *host,
		       int64_t *oldest, unsigned *hosts)
{
	g_autofree char *own = g_strdup_printf(LEASE_DIR "/%s", host);
	struct others o = { rs, own, INT64_MAX, 0 };
	int rc;

	rc = rados_store_list(rs, LEASE_DIR "/", other_one, &o);
	*oldest = rc < 0 ? 0 : o.oldest;
	*hosts = o.hosts;
	return rc;
}
