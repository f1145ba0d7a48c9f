/*
 * manifests.c - the manifests on secondary storage: one walk, and the
 * queries about other hosts' backups built on it (manifests.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manifests.h"
#include "fsutil.h"
#include "rados.h"
#include "repo.h"
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

/* Whether backup @m's data, its index or qcow2 file, is in @dfd as a
 * regular file (not a link). */
static bool data_beside(int dfd, const struct manifest *m)
{
	g_autofree char *data = g_strdup_printf("%s.%s", m->uuid,
						m->indexed ? "index" : "qcow2");
	struct stat st;

	return fstatat(dfd, data, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode);
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
		return fn(vol, "", NULL, false, "not a directory", arg);
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
		rc = fn(vol, de->d_name, rc == 0 ? &m : NULL,
			rc == 0 && data_beside(dirfd(d), &m),
			rc == 0 ? NULL : why ? why : "not a readable manifest",
			arg);
	}
	closedir(d);
	return rc;
}

/* ---- on RADOS ---------------------------------------------------------- */

/* The names under "volumes/" the walk wants: "<vol>/<file>" -> present */
static int collect_one(const char *name, void *arg)
{
	g_hash_table_add(arg, g_strdup(name + strlen("volumes/")));
	return 0;
}

/* Keep the manifest @text of @vol/@file as the local file backed-up/
 * serves, unless it is there (best effort: the object is the truth). */
static void keep_local(struct snap_engine *eng, const char *vol,
		       const char *file, const char *text)
{
	g_autofree char *dir = g_build_filename(eng->backups_dir, vol, NULL);
	g_autofree char *path = g_build_filename(dir, file, NULL);
	g_autofree char *tmp = NULL;

	if (access(path, F_OK) == 0 || safe_mkdir(dir, 0755) < 0)
		return;
	tmp = g_strdup_printf("%s/.%s@%s.%08x.tmp", dir, eng->host, file,
			      g_random_int());
	if (g_file_set_contents(tmp, text, -1, NULL) && rename(tmp, path) == 0)
		return;
	unlink(tmp);
}

static int walk_rados(struct snap_engine *eng, const char *vol,
		      manifests_fn fn, void *arg)
{
	struct rados_store *rs = repo_rados(eng);
	g_autoptr(GHashTable) names = g_hash_table_new_full(g_str_hash,
							    g_str_equal,
							    g_free, NULL);
	g_autofree char *prefix = vol ? g_strdup_printf("volumes/%s/", vol) :
					g_strdup("volumes/");
	g_autoptr(GPtrArray) sorted = NULL;
	GHashTableIter it;
	gpointer key;
	int rc;

	if (vol && snap_name_valid(vol) < 0)
		return -ENOENT;
	rc = rados_store_list(rs, prefix, collect_one, names);
	if (rc < 0)
		return rc;
	if (vol && g_hash_table_size(names) == 0)
		return -ENOENT;
	sorted = g_ptr_array_new();
	g_hash_table_iter_init(&it, names);
	while (g_hash_table_iter_next(&it, &key, NULL))
		if (g_str_has_suffix(key, ".json"))
			g_ptr_array_add(sorted, key);
	for (guint i = 0; rc == 0 && i < sorted->len; i++) {
		const char *rel = sorted->pdata[i];
		const char *slash = strchr(rel, '/');
		g_autofree char *v = NULL, *obj = NULL, *text = NULL;
		g_autofree char *data = NULL;
		const char *why = NULL, *file;
		struct manifest m;
		size_t len = 0;

		if (!slash || strchr(slash + 1, '/'))
			continue; /* not volumes/<vol>/<file> */
		v = g_strndup(rel, (gsize)(slash - rel));
		file = slash + 1;
		if (snap_name_valid(v) < 0) {
			rc = fn(v, "", NULL, false, "not a volume name", arg);
			continue;
		}
		obj = g_strdup_printf("volumes/%s", rel);
		text = g_malloc(MANIFEST_MAX_BYTES + 1);
		rc = rados_store_get(rs, obj, text, MANIFEST_MAX_BYTES, &len);
		if (rc == -ENOENT) {
			rc = 0;
			continue; /* removed since the listing */
		}
		if (rc == -EFBIG) {
			rc = fn(v, file, NULL, false, "not a readable manifest",
				arg);
			continue;
		}
		if (rc < 0)
			break;
		text[len] = '\0';
		rc = strlen(text) == len ? manifest_parse(text, &m, &why) :
					   -EINVAL;
		if (rc == -ENOMEM)
			break;
		if (rc == 0) {
			data = g_strdup_printf("%s/%s.index", v, m.uuid);
			keep_local(eng, v, file, text);
		}
		rc = fn(v, file, rc == 0 ? &m : NULL,
			rc == 0 && m.indexed && g_hash_table_contains(names, data),
			rc == 0 ? NULL : why ? why : "not a readable manifest",
			arg);
	}
	return rc;
}

int manifests_walk(struct snap_engine *eng, const char *vol, manifests_fn fn,
		   void *arg)
{
	int vfd;
	struct dirent *de;
	DIR *vd;
	int rc = 0;

	if (repo_rados(eng))
		return walk_rados(eng, vol, fn, arg);
	vfd = open(eng->backups_dir,
		   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	vd = vfd < 0 ? NULL : fdopendir(vfd);
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
			rc = fn(de->d_name, "", NULL, false, "not a volume name",
				arg);
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

/* Whether the backup of @m is another host's (this host's: the catalog
 * says). */
static bool foreign(struct snap_engine *eng, const struct manifest *m)
{
	return m->host[0] && strcmp(m->host, eng->host) != 0;
}

static int foreign_one(const char *vol, const char *file,
		       const struct manifest *m, bool whole, const char *why,
		       void *arg)
{
	struct foreign_query *q = arg;

	if (!m || !whole || !foreign(q->eng, m) || strcmp(m->volume, vol) != 0 ||
	    (q->host && strcmp(m->host, q->host) != 0) ||
	    (q->snap && strcmp(m->snapshot, q->snap) != 0) ||
	    (q->uuid && strcmp(m->uuid, q->uuid) != 0))
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
