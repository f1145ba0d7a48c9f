/*
 * volume.c - volumes: the qcow2 files of primary storage.
 *
 * A volume is the regular file PRIMARY/<name>.qcow2 (never a symlink).
 * Its snapshots freeze the file's content as layers under
 * PRIMARY/.snapfs/<name>/<uuid>.qcow2, and the file itself becomes a thin
 * overlay over the newest layer (snapshot.c).  The file's name, owner and
 * mode never change, so a VM definition pointing at it stays valid.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "volume.h"
#include "events.h"
#include "paths.h"
#include "vmdisk.h"
#include "json.h"
#include "log.h"

int volume_read_header(const char *path, struct qcow2_header *out)
{
	g_autofree char *buf = g_malloc(65536);
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = pread(fd, buf, 65536, 0);
	rc = n < 0 ? -errno : 0;
	close(fd);
	if (rc < 0)
		return rc;
	return image_parse_header(buf, (size_t)n, out);
}

/*
 * qemu locks bytes of an image it has open, with open file description
 * locks: 100 + a permission bit for "I use it", 200 + a bit for "I share
 * it with nobody"; WRITE is bit 1.  Open @path with @oflags and apply
 * @cmd (F_OFD_GETLK or F_OFD_SETLK) to @fl.  Return: the open fd; -errno.
 */
static int qemu_lock(const char *path, int oflags, int cmd, struct flock *fl)
{
	int fd = open(path, oflags | O_CLOEXEC | O_NOFOLLOW);
	int rc;

	if (fd < 0)
		return -errno;
	if (fcntl(fd, cmd, fl) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int volume_in_use(const char *path)
{
	/* a shared lock on 100 + WRITE: a writer (a VM, qemu-io, qemu-nbd) */
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = 101, .l_len = 1 };
	int fd = qemu_lock(path, O_RDWR, F_OFD_GETLK, &fl);

	if (fd < 0)
		return fd;
	close(fd);
	return fl.l_type != F_UNLCK;
}

int volume_deny_writers(const char *path)
{
	/* qemu's protocol: a holder of byte 200 + WRITE shares no writes */
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET,
			    .l_start = 201, .l_len = 1 };
	int fd = qemu_lock(path, O_RDONLY, F_OFD_SETLK, &fl);

	return fd == -EAGAIN || fd == -EACCES ? -EBUSY : fd;
}

/* A regular file (not a link), from lstat. */
static int volume_file_stat(struct snap_engine *eng, const char *name,
			    struct stat *st)
{
	g_autofree char *path = volume_path(eng, name);

	if (lstat(path, st) < 0)
		return -errno;
	return S_ISREG(st->st_mode) ? 0 : -ENOENT;
}

int volume_resolve(struct snap_engine *eng, const char *name,
		   struct catalog_volume *out, bool *on_primary)
{
	struct stat st;
	bool present;
	int rc;

	rc = snap_name_valid(name);
	if (rc < 0)
		return rc;
	present = volume_file_stat(eng, name, &st) == 0;
	if (on_primary)
		*on_primary = present;
	rc = catalog_volume_get(eng->cat, name, out);
	if (rc != -ENOENT)
		return rc;
	if (!present)
		return -ENOENT;
	/* a file with other hard links is someone else's too: never adopted
	 * (our own links appear only while a known volume is taken) */
	if (st.st_nlink > 1)
		return -ENOENT;

	memset(out, 0, sizeof(*out));
	g_strlcpy(out->name, name, sizeof(out->name));
	{
		g_autofree char *uuid = g_uuid_string_random();

		g_strlcpy(out->uuid, uuid, sizeof(out->uuid));
	}
	out->uid = st.st_uid;
	out->gid = st.st_gid;
	rc = catalog_volume_insert(eng->cat, out);
	if (rc == -EEXIST) /* another thread saw it first */
		return catalog_volume_get(eng->cat, name, out);
	if (rc == 0)
		event_record(eng, "volume.found", name, NULL, 0,
			     "new volume '%s' found on primary storage", name);
	return rc;
}

void volume_busy_begin(struct snap_engine *eng, int64_t volume_id)
{
	g_mutex_lock(&eng->lock);
	while (g_hash_table_contains(eng->busy_volumes, &volume_id))
		g_cond_wait(&eng->volumes_idle, &eng->lock);
	g_hash_table_add(eng->busy_volumes, g_memdup2(&volume_id,
						      sizeof(volume_id)));
	g_mutex_unlock(&eng->lock);
}

void volume_busy_end(struct snap_engine *eng, int64_t volume_id)
{
	g_mutex_lock(&eng->lock);
	g_hash_table_remove(eng->busy_volumes, &volume_id);
	g_cond_broadcast(&eng->volumes_idle);
	g_mutex_unlock(&eng->lock);
}

static bool qcow2_name(const char *file, char *name, size_t size)
{
	size_t len = strlen(file);

	if (len <= 6 || strcmp(file + len - 6, ".qcow2") != 0)
		return false;
	if (len - 6 >= size)
		return false;
	memcpy(name, file, len - 6);
	name[len - 6] = '\0';
	return snap_name_valid(name) == 0;
}

static gint name_cmp(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int snap_volume_list(struct snap_engine *eng, char ***names_out)
{
	g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash,
							    g_str_equal,
							    g_free, NULL);
	GArray *rows = NULL;
	GPtrArray *names;
	struct dirent *de;
	DIR *dir;
	guint i;
	int rc;

	dir = opendir(eng->primary);
	if (!dir) {
		rc = -errno;
		snap_log(LOG_ERR, "volume: cannot list '%s': %m", eng->primary);
		return rc;
	}
	while ((de = readdir(dir))) {
		char name[SNAP_NAME_MAX + 8];
		struct catalog_volume v;

		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		if (!qcow2_name(de->d_name, name, sizeof(name)))
			continue;
		if (volume_resolve(eng, name, &v, NULL) == 0)
			g_hash_table_add(seen, g_strdup(name));
	}
	closedir(dir);

	/* volumes whose file is gone but whose snapshots remain */
	rc = catalog_volume_all(eng->cat, &rows);
	if (rc < 0)
		return rc;
	for (i = 0; i < rows->len; i++) {
		struct catalog_volume *v = &g_array_index(rows, struct catalog_volume, i);
		g_auto(GStrv) snaps = NULL;

		if (g_hash_table_contains(seen, v->name))
			continue;
		if (catalog_snapshot_names(eng->cat, v->id, false, &snaps) > 0)
			g_hash_table_add(seen, g_strdup(v->name));
	}
	g_array_free(rows, TRUE);

	names = g_ptr_array_new();
	{
		GHashTableIter it;
		gpointer key;

		g_hash_table_iter_init(&it, seen);
		while (g_hash_table_iter_next(&it, &key, NULL))
			g_ptr_array_add(names, g_strdup(key));
	}
	g_ptr_array_sort(names, name_cmp);
	rc = (int)names->len;
	g_ptr_array_add(names, NULL);
	*names_out = (char **)g_ptr_array_free(names, FALSE);
	return rc;
}

int snap_volume_stat(struct snap_engine *eng, const char *vol,
		     struct snap_volume_stat *out)
{
	struct catalog_volume v;
	struct stat st;
	bool present;
	int rc;

	rc = volume_resolve(eng, vol, &v, &present);
	if (rc < 0)
		return rc;
	if (!present) {
		g_auto(GStrv) snaps = NULL;

		if (catalog_snapshot_names(eng->cat, v.id, false, &snaps) <= 0)
			return -ENOENT;
	}
	memset(out, 0, sizeof(*out));
	out->id = (uint64_t)v.id;
	out->uid = v.uid;
	out->gid = v.gid;
	out->on_primary = present;
	if (present && volume_file_stat(eng, vol, &st) == 0)
		out->mtime = st.st_mtime;
	return 0;
}

/* Bytes allocated on primary for the volume: its file and its layers. */
static uint64_t volume_allocated(struct snap_engine *eng, const char *vol)
{
	g_autofree char *dirpath = layer_dir(eng, vol);
	g_autofree char *path = volume_path(eng, vol);
	uint64_t total = 0;
	struct dirent *de;
	struct stat st;
	DIR *dir;

	if (lstat(path, &st) == 0)
		total += (uint64_t)st.st_blocks * 512;
	dir = opendir(dirpath);
	if (!dir)
		return total;
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.' &&
		    fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			total += (uint64_t)st.st_blocks * 512;
	closedir(dir);
	return total;
}

int snap_volume_info(struct snap_engine *eng, const char *vol, char **json_out)
{
	struct catalog_volume v;
	struct qcow2_header hdr;
	struct passwd pw, *pwp = NULL;
	char pwbuf[1024];
	g_autofree char *path = NULL, *uid = NULL;
	struct jdoc *d;
	bool present;
	int rc;

	rc = volume_resolve(eng, vol, &v, &present);
	if (rc < 0)
		return rc;
	path = volume_path(eng, vol);
	d = jdoc_new();
	jdoc_str(d, "name", v.name);
	jdoc_str(d, "uuid", v.uuid);
	if (present && volume_read_header(path, &hdr) == 0) {
		jdoc_int(d, "virtual_size", (int64_t)hdr.virtual_size);
		jdoc_int(d, "allocated", (int64_t)volume_allocated(eng, vol));
		jdoc_str(d, "format", "qcow2");
	} else {
		jdoc_str(d, "virtual_size", NULL);
		jdoc_int(d, "allocated", (int64_t)volume_allocated(eng, vol));
		jdoc_str(d, "format", present ? "unknown" : NULL);
	}
	{
		char vm[SNAP_NAME_MAX + 1];

		jdoc_str(d, "vm", vmdisk_vm_of(eng, vol, vm, sizeof(vm)) == 0 ? vm : NULL);
	}
	getpwuid_r(v.uid, &pw, pwbuf, sizeof(pwbuf), &pwp);
	uid = g_strdup_printf("%u", (unsigned)v.uid);
	jdoc_str(d, "owner", pwp ? pwp->pw_name : uid);
	jdoc_bool(d, "on_primary", present);
	*json_out = jdoc_finish(d, true, true);
	return *json_out ? 0 : -ENOMEM;
}

int snap_statfs_primary(struct snap_engine *eng, uint64_t *total,
			uint64_t *avail)
{
	struct statvfs sv;

	if (statvfs(eng->primary, &sv) < 0)
		return -errno;
	*total = (uint64_t)sv.f_blocks * sv.f_frsize;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}
