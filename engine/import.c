/*
 * import.c - the catalog rebuilt from the manifests on secondary storage
 * (import.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import.h"
#include "events.h"
#include "log.h"
#include "manifest.h"

/* What one walk found, for the summary event. */
struct import_counts {
	unsigned imported, volumes, known, foreign, skipped;
};

bool import_pending(struct snap_engine *eng)
{
	g_autofree char *value = NULL;

	return catalog_identity_get(eng->cat, IMPORT_PENDING_KEY, &value) == 0 &&
	       !strcmp(value, "pending");
}

/*
 * Read the regular file @name in @dfd (no link followed) of at most
 * MANIFEST_MAX_BYTES into a NUL-terminated *@out.
 */
static int read_small(int dfd, const char *name, char **out)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	g_autofree char *buf = NULL;
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (off_t)MANIFEST_MAX_BYTES) {
		close(fd);
		return -EINVAL;
	}
	buf = g_malloc((size_t)st.st_size + 1);
	n = pread(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	if (n != st.st_size)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	if (strlen(buf) != (size_t)n)
		return -EINVAL; /* a NUL inside */
	*out = g_steal_pointer(&buf);
	return 0;
}

/* Whether @name in @dfd is a regular file (not a link). */
static bool regular_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode);
}

/* Skip one backup, saying why. */
static void skip(struct snap_engine *eng, struct import_counts *c,
		 const char *vol, const char *file, const char *why)
{
	c->skipped++;
	event_record(eng, "recovery.import", vol, NULL, -EINVAL,
		     "backup '%s/%s/%s' not imported: %s; left in place",
		     eng->backups_dir, vol, file, why);
}

/*
 * The catalog's volume @m->volume for an imported backup: the one there
 * (same uuid, or a manifest without one) or a new row.  -EEXIST: a
 * volume of that name with another uuid.
 */
static int import_volume(struct snap_engine *eng, const struct manifest *m,
			 struct catalog_volume *v, bool *made)
{
	int rc = catalog_volume_get(eng->cat, m->volume, v);

	*made = false;
	if (rc == 0)
		return m->volume_uuid[0] && strcmp(v->uuid, m->volume_uuid) ?
			       -EEXIST : 0;
	if (rc != -ENOENT)
		return rc;
	memset(v, 0, sizeof(*v));
	g_strlcpy(v->name, m->volume, sizeof(v->name));
	if (m->volume_uuid[0]) {
		g_strlcpy(v->uuid, m->volume_uuid, sizeof(v->uuid));
	} else {
		g_autofree char *uuid = g_uuid_string_random();

		g_strlcpy(v->uuid, uuid, sizeof(v->uuid));
	}
	rc = catalog_volume_insert(eng->cat, v);
	*made = rc == 0;
	return rc;
}

/* One manifest @file of volume directory @vol (@dfd). */
static int import_one(struct snap_engine *eng, int dfd, const char *vol,
		      const char *file, struct import_counts *c)
{
	g_autofree char *text = NULL, *data = NULL;
	struct catalog_snapshot s, old;
	struct catalog_volume v;
	struct manifest m;
	const char *why = NULL;
	bool made;
	int rc;

	rc = read_small(dfd, file, &text);
	if (rc == 0)
		rc = manifest_parse(text, &m, &why);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		skip(eng, c, vol, file, why ? why : "not a readable manifest");
		return 0;
	}
	if (catalog_snapshot_get_by_uuid(eng->cat, m.uuid, &old) == 0) {
		c->known++;
		return 0;
	}
	if (m.host[0] && strcmp(m.host, eng->host) != 0) {
		c->foreign++;
		return 0;
	}
	if (strcmp(m.volume, vol) != 0) {
		skip(eng, c, vol, file, "its manifest names another volume");
		return 0;
	}
	data = g_strdup_printf("%s.%s", m.uuid, m.indexed ? "index" : "qcow2");
	if (!regular_at(dfd, data)) {
		skip(eng, c, vol, file, m.indexed ? "its index is missing" :
						    "its qcow2 file is missing");
		return 0;
	}

	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc;
	rc = import_volume(eng, &m, &v, &made);
	if (rc == 0 && catalog_snapshot_get(eng->cat, v.id, m.snapshot, &old) == 0)
		rc = -EBUSY;
	if (rc == 0) {
		memset(&s, 0, sizeof(s));
		s.volume_id = v.id;
		g_strlcpy(s.name, m.snapshot, sizeof(s.name));
		g_strlcpy(s.uuid, m.uuid, sizeof(s.uuid));
		s.state = SNAP_STATE_BACKED_UP;
		s.created_at = m.created_at;
		s.backed_up_at = m.backed_up_at;
		s.virtual_size = m.virtual_size;
		s.backup_bytes = m.size;
		g_strlcpy(s.checksum, m.checksum, sizeof(s.checksum));
		rc = catalog_snapshot_insert(eng->cat, &s);
		/* the insert writes a new snapshot's fields; the backup's
		 * (times, size, checksum) are an update's */
		if (rc == 0)
			rc = catalog_snapshot_update(eng->cat, &s);
	}
	rc = catalog_tx_end(eng->cat, rc);
	if (rc == -EEXIST) {
		skip(eng, c, vol, file, "a volume of that name with another uuid is in the catalog");
		return 0;
	}
	if (rc == -EBUSY) {
		skip(eng, c, vol, file, "its snapshot name is taken in the catalog");
		return 0;
	}
	if (rc < 0)
		return rc;
	c->imported++;
	c->volumes += made;
	return 0;
}

/* Every manifest under volume directory @vol of @vfd. */
static int import_volume_dir(struct snap_engine *eng, int vfd, const char *vol,
			     struct import_counts *c)
{
	int dfd = openat(vfd, vol, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	int rc = 0;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		skip(eng, c, vol, "", "not a directory");
		return 0;
	}
	while (rc == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.' || !g_str_has_suffix(de->d_name, ".json"))
			continue;
		rc = import_one(eng, dirfd(d), vol, de->d_name, c);
	}
	closedir(d);
	return rc;
}

int import_backups(struct snap_engine *eng)
{
	int vfd = open(eng->backups_dir,
		       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct import_counts c = { 0 };
	struct dirent *de;
	DIR *vd = vfd < 0 ? NULL : fdopendir(vfd);
	int rc = 0;

	if (!vd) {
		rc = -errno;
		if (vfd >= 0)
			close(vfd);
		snap_log(LOG_ERR, "import: cannot read '%s': %s", eng->backups_dir,
			 g_strerror(-rc));
		return rc;
	}
	while (rc == 0 && (de = readdir(vd))) {
		if (de->d_name[0] == '.')
			continue;
		if (snap_name_valid(de->d_name) < 0) {
			skip(eng, &c, de->d_name, "", "not a volume name");
			continue;
		}
		rc = import_volume_dir(eng, dirfd(vd), de->d_name, &c);
	}
	closedir(vd);
	if (rc < 0) {
		snap_log(LOG_ERR, "import: stopped after %u backup(s): %s; it goes on at the next mount",
			 c.imported, g_strerror(-rc));
		return rc;
	}
	rc = catalog_identity_set(eng->cat, IMPORT_PENDING_KEY, "done");
	if (rc < 0)
		return rc;
	if (c.imported || c.foreign || c.skipped)
		event_record(eng, "recovery.import", NULL, NULL, 0,
			     "a new catalog over existing secondary storage: %u backup(s) of host '%s' imported (%u new volume(s)), %u of other hosts left to them, %u skipped",
			     c.imported, eng->host, c.volumes, c.foreign, c.skipped);
	return (int)c.imported;
}
