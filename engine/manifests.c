/*
 * manifests.c - the manifests on secondary storage: one walk, and the
 * queries about other hosts' backups built on it (manifests.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manifests.h"
#include "log.h"

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

/* Every <uuid>.json of volume directory @vol in @vfd. */
static int walk_volume(int vfd, const char *vol, manifests_fn fn, void *arg)
{
	int dfd = openat(vfd, vol, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	int rc = 0;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return fn(-1, vol, "", NULL, "not a directory", arg);
	}
	while (rc == 0 && (de = readdir(d))) {
		g_autofree char *text = NULL;
		const char *why = NULL;
		struct manifest m;

		if (de->d_name[0] == '.' || !g_str_has_suffix(de->d_name, ".json"))
			continue;
		rc = read_small(dirfd(d), de->d_name, &text);
		if (rc == 0)
			rc = manifest_parse(text, &m, &why);
		if (rc == -ENOMEM)
			break;
		rc = fn(dirfd(d), vol, de->d_name, rc == 0 ? &m : NULL,
			rc == 0 ? NULL : why ? why : "not a readable manifest",
			arg);
	}
	closedir(d);
	return rc;
}

int manifests_walk(struct snap_engine *eng, const char *vol, manifests_fn fn,
		   void *arg)
{
	int vfd = open(eng->backups_dir,
		       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *vd = vfd < 0 ? NULL : fdopendir(vfd);
	int rc = 0;

	if (!vd) {
		rc = -errno;
		if (vfd >= 0)
			close(vfd);
		snap_log(LOG_ERR, "manifests: cannot read '%s': %s",
			 eng->backups_dir, g_strerror(-rc));
		return rc;
	}
	if (vol) {
		struct stat st;

		if (snap_name_valid(vol) < 0 ||
		    fstatat(dirfd(vd), vol, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			rc = -ENOENT;
		else
			rc = walk_volume(dirfd(vd), vol, fn, arg);
		closedir(vd);
		return rc;
	}
	while (rc == 0 && (de = readdir(vd))) {
		if (de->d_name[0] == '.')
			continue;
		if (snap_name_valid(de->d_name) < 0)
			rc = fn(-1, de->d_name, "", NULL, "not a volume name", arg);
		else
			rc = walk_volume(dirfd(vd), de->d_name, fn, arg);
	}
	closedir(vd);
	return rc;
}

/* ---- other hosts' backups ---------------------------------------------- */

/* What a foreign query looks for, and what it found. */
struct foreign_query {
	struct snap_engine *eng;
	const char *host, *snap, *uuid; /* NULL: any */
	enum { WANT_HOSTS, WANT_VOLUMES, WANT_SNAPSHOTS, WANT_ONE } want;
	GHashTable *names;	 /* WANT_HOSTS .. WANT_SNAPSHOTS */
	struct manifest best;	 /* WANT_ONE */
	bool found;
};

/* Whether the backup of @m (in @dfd) is another host's and has its data. */
static bool foreign_and_whole(struct snap_engine *eng, int dfd,
			      const struct manifest *m)
{
	g_autofree char *data = NULL;
	struct stat st;

	if (!m->host[0] || !strcmp(m->host, eng->host))
		return false; /* this host's: the catalog says */
	data = g_strdup_printf("%s.%s", m->uuid, m->indexed ? "index" : "qcow2");
	return fstatat(dfd, data, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode);
}

static int foreign_one(int dfd, const char *vol, const char *file,
		       const struct manifest *m, const char *why, void *arg)
{
	struct foreign_query *q = arg;

	if (!m || strcmp(m->volume, vol) != 0 ||
	    (q->host && strcmp(m->host, q->host) != 0) ||
	    (q->snap && strcmp(m->snapshot, q->snap) != 0) ||
	    (q->uuid && strcmp(m->uuid, q->uuid) != 0) ||
	    !foreign_and_whole(q->eng, dfd, m))
		return 0;
	switch (q->want) {
	case WANT_HOSTS:
		g_hash_table_add(q->names, g_strdup(m->host));
		break;
	case WANT_VOLUMES:
		g_hash_table_add(q->names, g_strdup(m->volume));
		break;
	case WANT_SNAPSHOTS:
		g_hash_table_add(q->names, g_strdup(m->snapshot));
		break;
	case WANT_ONE:
		if (!q->found || m->backed_up_at > q->best.backed_up_at)
			q->best = *m;
		q->found = true;
		break;
	}
	return 0;
}

/* Sort names (a g_qsort_with_data() comparison of char * elements). */
static gint names_cmp(gconstpointer a, gconstpointer b, gpointer unused)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int foreign_names(struct snap_engine *eng, struct foreign_query *q,
			 const char *vol, char ***out)
{
	GHashTableIter it;
	gpointer key;
	guint n = 0;
	int rc;

	q->eng = eng;
	q->names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	rc = manifests_walk(eng, vol, foreign_one, q);
	if (rc == -ENOENT && vol)
		rc = 0; /* no such volume directory: no backups */
	if (rc < 0) {
		g_hash_table_destroy(q->names);
		return rc;
	}
	*out = g_new0(char *, g_hash_table_size(q->names) + 1);
	g_hash_table_iter_init(&it, q->names);
	while (g_hash_table_iter_next(&it, &key, NULL))
		(*out)[n++] = g_strdup(key);
	g_hash_table_destroy(q->names);
	g_qsort_with_data(*out, (gint)n, sizeof(char *), names_cmp, NULL);
	return (int)n;
}

int foreign_hosts(struct snap_engine *eng, char ***out)
{
	struct foreign_query q = { .want = WANT_HOSTS };

	return foreign_names(eng, &q, NULL, out);
}

int foreign_volumes(struct snap_engine *eng, const char *host, char ***out)
{
	struct foreign_query q = { .want = WANT_VOLUMES, .host = host };

	if (snap_name_valid(host) < 0 || !strcmp(host, eng->host)) {
		*out = g_new0(char *, 1);
		return 0;
	}
	return foreign_names(eng, &q, NULL, out);
}

int foreign_snapshots(struct snap_engine *eng, const char *host,
		      const char *vol, char ***out)
{
	struct foreign_query q = { .want = WANT_SNAPSHOTS, .host = host };

	if (snap_name_valid(host) < 0 || !strcmp(host, eng->host) ||
	    snap_name_valid(vol) < 0) {
		*out = g_new0(char *, 1);
		return 0;
	}
	return foreign_names(eng, &q, vol, out);
}

/* A stable id from @uuid: its first 14 hex digits (56 bits; inode numbers
 * are id * 64 + kind). */
static int64_t id_of_uuid(const char *uuid)
{
	int64_t id = 0;
	int digits = 0;

	for (const char *p = uuid; *p && digits < 14; p++) {
		if (*p == '-')
			continue;
		id = id * 16 + g_ascii_xdigit_value(*p);
		digits++;
	}
	return id;
}

/* Run @q (WANT_ONE) over @vol; fill @s from the newest match. */
static int foreign_find(struct snap_engine *eng, struct foreign_query *q,
			const char *vol, struct catalog_snapshot *s)
{
	int rc;

	if (snap_name_valid(q->host) < 0 || !strcmp(q->host, eng->host) ||
	    snap_name_valid(vol) < 0)
		return -ENOENT;
	q->eng = eng;
	q->want = WANT_ONE;
	rc = manifests_walk(eng, vol, foreign_one, q);
	if (rc < 0)
		return rc;
	if (!q->found)
		return -ENOENT;
	memset(s, 0, sizeof(*s));
	s->id = id_of_uuid(q->best.uuid);
	g_strlcpy(s->volume, q->best.volume, sizeof(s->volume));
	g_strlcpy(s->name, q->best.snapshot, sizeof(s->name));
	g_strlcpy(s->uuid, q->best.uuid, sizeof(s->uuid));
	g_strlcpy(s->volume_uuid, q->best.volume_uuid, sizeof(s->volume_uuid));
	s->state = SNAP_STATE_BACKED_UP;
	s->created_at = q->best.created_at;
	s->backed_up_at = q->best.backed_up_at;
	s->virtual_size = q->best.virtual_size;
	s->backup_bytes = q->best.size;
	g_strlcpy(s->checksum, q->best.checksum, sizeof(s->checksum));
	return 0;
}

int foreign_backup(struct snap_engine *eng, const char *host, const char *vol,
		   const char *snap, struct catalog_snapshot *s)
{
	struct foreign_query q = { .host = host, .snap = snap };

	if (snap_name_valid(snap) < 0)
		return -ENOENT;
	return foreign_find(eng, &q, vol, s);
}

int foreign_backup_by_uuid(struct snap_engine *eng, const char *host,
			   const char *vol, const char *uuid,
			   struct catalog_snapshot *s)
{
	struct foreign_query q = { .host = host, .uuid = uuid };

	return foreign_find(eng, &q, vol, s);
}
