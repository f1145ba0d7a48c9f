/*
 * fsutil.c - directories that are never links, and durability (fsync of a
 * file or of a directory's entries).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "fsutil.h"
#include "fault.h"
#include "log.h"

int safe_mkdir(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) < 0 && errno != EEXIST) {
		int rc = -errno;

		snap_log(LOG_ERR, "volume: cannot make directory '%s': %m", path);
		return rc;
	}
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		snap_log(LOG_ERR, "volume: '%s' is not a directory (%s): snapfs does not follow links out of its storage",
			 path, S_ISLNK(st.st_mode) ? "a symbolic link" : "another kind of file");
		return -ELOOP;
	}
	return 0;
}

int chain_mkdir(const char *path)
{
	struct stat st;
	int rc = safe_mkdir(path, 0711);

	if (rc < 0)
		return rc;
	if (lstat(path, &st) < 0)
		return -errno;
	if ((st.st_mode & 0011) == 0011)
		return 0;
	if (chmod(path, (st.st_mode & 07777) | 0011) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "volume: cannot make '%s' searchable: %m", path);
		return rc;
	}
	return 0;
}

/* fsync the file @path opened with @flags (a directory: its entries). */
static int fsync_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fault("fsync", EIO) || fsync(fd) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "volume: fsync of '%s' failed: %m", path);
	}
	close(fd);
	return rc;
}

int fsync_dir(const char *dir)
{
	return fsync_open(dir, O_RDONLY | O_DIRECTORY);
}

int fsync_path(const char *path)
{
	return fsync_open(path, O_RDONLY | O_NOFOLLOW);
}

bool tmp_name_mine(const char *name, const char *host)
{
	const char *at = strchr(name, '@');
	size_t len;

	if (!at)
		return true;
	if (name[0] == '.')
		name++;
	len = strlen(host);
	return (size_t)(at - name) == len && !strncmp(name, host, len);
}
