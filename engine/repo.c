/*
 * repo.c - the engine's repository: repository.json, the chunk store,
 * the backups running into it, garbage collection, restores (contract in
 * repo.h; the format is docs/repository.md).
 *
 * DESIGN
 *
 *   any thread      repo_backup_begin()/end() register a running backup
 *                   (its start time, a copy of its base index) in
 *                   repo->active; repo_gc_request() sets a flag and
 *                   signals repo->gc_wanted.
 *   GC thread       ("snapfs-gc", from repo_start() to repo_close()) waits
 *                   on repo->gc_wanted; for each request it computes the
 *                   cutoff and copies the base indexes under repo->lock,
 *                   then runs repo_gc_run() without any lock and records
 *                   the result as an event "repository.gc".
 *   backup workers  repo_restore() runs in the thread of a clone or a
 *                   revert (a pool worker or a request thread).
 *
 * LEASES (repo_lease.h): this host's SECONDARY/.leases/<host> says when
 * its oldest running backup began, for the GCs of hosts sharing the
 * SECONDARY; repo_backup_begin() writes it durably before the backup
 * writes a chunk, repo_backup_end() and repo_start() after.  Each GC run
 * takes the other hosts' leases into its cutoff.
 *
 * LOCKS: repo->lock is a leaf: it guards active, gc_requested, stopping
 * and is held for list and flag updates only, never across I/O.
 * repo->lease_lock serializes this host's lease writes (a small file's
 * write, fsync and rename: it is held across that I/O, and only that);
 * it is taken before repo->lock, to read the value to write.
 */
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "repo.h"
#include "clock.h"
#include "events.h"
#include "fault.h"
#include "fsutil.h"
#include "image.h"
#include "json.h"
#include "log.h"
#include "nbd.h"
#include "paths.h"
#include "proc.h"
#include "rados.h"
#include "repo_gc.h"
#include "repo_lease.h"

struct repo_active {
	int64_t started; /* unix seconds, the wall clock (chunk mtimes) */
	struct repo_index base; /* empty when the backup has none */
};

struct repo {
	struct chunkstore *cs; /* read-only after repo_open() (RADOS: after
				* repo_connect()) */
	struct rados_store *rs; /* RADOS: the pool, from repo_connect() */
	char *where;		/* RADOS: "rados:<pool>[/<ns>]" */
	GMutex lock;
	GCond gc_wanted;
	GList *active;	   /* struct repo_active *, under lock */
	bool gc_requested; /* under lock */
	bool stopping;	   /* under lock; also GC's cancel flag */
	GThread *gc_thread;
	GMutex lease_lock; /* this host's lease writes, in order */
	uint64_t moves;	   /* repo_note_move(): atomic, no lock */
};

#define REPO_JSON_MAX 4096

static char *repo_json_text(uint32_t chunk_size)
{
	struct jdoc *d = jdoc_new();

	jdoc_str(d, "format", "snapfs-repository");
	jdoc_int(d, "version", 1);
	jdoc_int(d, "chunk_size", chunk_size);
	jdoc_str(d, "hash", "sha256");
	jdoc_str(d, "compression", "none");
	return jdoc_finish(d, false, true);
}

/* Write a new repository.json durably: temporary, fsync, rename. */
static int repo_json_create(const char *secondary, const char *path)
{
	g_autofree char *text = repo_json_text(REPO_CHUNK_SIZE);
	g_autofree char *tmp = g_strdup_printf("%s/.repository.json.tmp",
					       secondary);
	size_t len = strlen(text), off = 0;
	int fd, rc = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0644);
	if (fd < 0)
		rc = -errno;
	while (rc == 0 && off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		snap_log(LOG_ERR, "repo: cannot create '%s': %s", path,
			 g_strerror(-rc));
		unlink(tmp);
		return rc;
	}
	return fsync_dir(secondary);
}

int repo_json_parse(const char *text, uint32_t *chunk_size, int64_t *version,
		    const char **why)
{
	struct jdoc *d = NULL;
	int64_t cs = 0;
	const char *comp;

	*version = 0;
	*why = NULL;
	if (jdoc_parse(text, &d) < 0)
		*why = "not a JSON object";
	else if (g_strcmp0(jdoc_get_str(d, "format"), "snapfs-repository"))
		*why = "\"format\" is not \"snapfs-repository\"";
	else if (jdoc_get_int(d, "version", version) < 0)
		*why = "no \"version\"";
	else if (*version != 1) {
		jdoc_free(d);
		return -EINVAL;
	} else if (g_strcmp0(jdoc_get_str(d, "hash"), "sha256"))
		*why = "\"hash\" is not \"sha256\"";
	else if (jdoc_get_int(d, "chunk_size", &cs) < 0 || cs < 0 ||
		 cs > UINT32_MAX || !repo_index_chunk_size_valid((uint32_t)cs))
		*why = "\"chunk_size\" is not a power of two from 65536 to 67108864";
	else {
		comp = jdoc_get_str(d, "compression");
		if (g_strcmp0(comp, "none") && g_strcmp0(comp, "zstd"))
			*why = "\"compression\" is neither \"none\" nor \"zstd\"";
	}
	jdoc_free(d);
	if (*why)
		return -EINVAL;
	*chunk_size = (uint32_t)cs;
	return 0;
}

/* Read and check repository.json; *@chunk_size from it. */
static int repo_json_check(const char *path, uint32_t *chunk_size)
{
	char buf[REPO_JSON_MAX + 1];
	const char *why = NULL;
	struct stat st;
	int64_t version = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		int rc = -errno;

		snap_log(LOG_ERR, "repo: cannot open '%s': %s", path,
			 g_strerror(-rc));
		return rc == -ELOOP ? -EINVAL : rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		why = "not a regular file";
	else if ((n = read(fd, buf, REPO_JSON_MAX + 1)) < 0)
		why = "cannot be read";
	else if (n > REPO_JSON_MAX)
		why = "too large to be a repository.json";
	else
		buf[n] = '\0';
	close(fd);
	if (!why && repo_json_parse(buf, chunk_size, &version, &why) == 0)
		return 0;
	if (why)
		snap_log(LOG_ERR, "repo: '%s': %s: not a snapfs repository, refusing to mount",
			 path, why);
	else
		snap_log(LOG_ERR, "repo: '%s': repository format version %" G_GINT64_FORMAT
			 " is not one this snapfs reads (1): refusing to mount",
			 path, version);
	return -EINVAL;
}

static struct repo *repo_new(void)
{
	struct repo *repo = g_new0(struct repo, 1);

	g_mutex_init(&repo->lock);
	g_mutex_init(&repo->lease_lock);
	g_cond_init(&repo->gc_wanted);
	return repo;
}

int repo_open(struct snap_engine *eng)
{
	g_autofree char *path = NULL;
	struct repo *repo;
	uint32_t chunk_size = REPO_CHUNK_SIZE;
	int rc;

	if (!eng->cfg.repository)
		return 0;
	if (eng->rados_pool) {
		/* connected after the daemon's fork: repo_connect() */
		eng->repo = repo_new();
		eng->repo->where = eng->rados_ns ?
			g_strdup_printf("rados:%s/%s", eng->rados_pool,
					eng->rados_ns) :
			g_strdup_printf("rados:%s", eng->rados_pool);
		return 0;
	}
	path = g_strdup_printf("%s/repository.json", eng->secondary);
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		struct stat st;

		if (lstat(path, &st) == 0) /* a dangling symlink */
			rc = repo_json_check(path, &chunk_size);
		else
			rc = repo_json_create(eng->secondary, path);
	} else {
		rc = repo_json_check(path, &chunk_size);
	}
	if (rc < 0)
		return rc;
	repo = repo_new();
	rc = chunkstore_open(eng->secondary, chunk_size, &repo->cs);
	if (rc == 0) /* hosts sharing SECONDARY tell their temporary chunks apart */
		chunkstore_set_tag(repo->cs, eng->host);
	if (rc < 0) {
		g_mutex_clear(&repo->lock);
		g_mutex_clear(&repo->lease_lock);
		g_cond_clear(&repo->gc_wanted);
		g_free(repo);
		return rc;
	}
	eng->repo = repo;
	return 0;
}

/* The seconds a RADOS operation may take before it fails (rados.h) */
#define REPO_RADOS_TIMEOUT 30

int repo_connect(struct snap_engine *eng)
{
	struct repo *repo = eng->repo;
	const char *conf = eng->cfg.ceph_conf ? eng->cfg.ceph_conf :
						"/etc/ceph/ceph.conf";
	char text[REPO_JSON_MAX + 1];
	uint32_t chunk_size = REPO_CHUNK_SIZE;
	int64_t version = 0;
	const char *why = NULL;
	size_t len = 0;
	int rc;

	if (!repo || !eng->rados_pool)
		return 0;
	rc = rados_store_open(conf, eng->cfg.ceph_id, eng->rados_pool,
			      eng->rados_ns, REPO_RADOS_TIMEOUT, &repo->rs);
	if (rc < 0)
		return rc; /* rados.c said why */
	rc = rados_store_get(repo->rs, "repository.json", text, REPO_JSON_MAX,
			     &len);
	if (rc == -ENOENT) {
		g_autofree char *json = repo_json_text(REPO_RADOS_CHUNK_SIZE);

		/* exclusive: two hosts creating it at once agree on one */
		rc = rados_store_put(repo->rs, "repository.json", json,
				     strlen(json), true, (int64_t)time(NULL));
		if (rc == -EEXIST)
			rc = rados_store_get(repo->rs, "repository.json", text,
					     REPO_JSON_MAX, &len);
		else if (rc == 0)
			len = (size_t)g_strlcpy(text, json, sizeof(text));
	}
	if (rc == -EFBIG)
		why = "too large to be a repository.json";
	else if (rc < 0)
		return rc;
	if (!why) {
		text[len] = '\0';
		if (memchr(text, '\0', len))
			why = "not a JSON object";
	}
	if (!why && repo_json_parse(text, &chunk_size, &version, &why) == 0)
		return chunkstore_open_rados(repo->rs, repo->where, chunk_size,
					     &repo->cs);
	if (why)
		snap_log(LOG_ERR, "repo: '%s:repository.json': %s: not a snapfs repository, refusing to mount",
			 repo->where, why);
	else
		snap_log(LOG_ERR, "repo: '%s:repository.json': repository format version %" G_GINT64_FORMAT
			 " is not one this snapfs reads (1): refusing to mount",
			 repo->where, version);
	return -EINVAL;
}

struct rados_store *repo_rados(struct snap_engine *eng)
{
	return eng->repo ? eng->repo->rs : NULL;
}

struct chunkstore *repo_chunks(struct snap_engine *eng)
{
	return eng->repo ? eng->repo->cs : NULL;
}

/* Remove volumes/<vol>/.*.tmp (index files being written); count them. */
static int sweep_index_tmp(struct snap_engine *eng)
{
	int n = 0, vfd, dfd;
	DIR *vd, *d;
	struct dirent *ve, *de;

	vfd = open(eng->backups_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				     O_CLOEXEC);
	vd = vfd < 0 ? NULL : fdopendir(vfd);
	if (!vd) {
		if (vfd >= 0)
			close(vfd);
		return 0;
	}
	while ((ve = readdir(vd))) {
		if (ve->d_name[0] == '.')
			continue;
		dfd = openat(dirfd(vd), ve->d_name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		d = dfd < 0 ? NULL : fdopendir(dfd);
		if (!d) {
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		while ((de = readdir(d))) {
			struct stat st;

			if (de->d_name[0] != '.' ||
			    !g_str_has_suffix(de->d_name, ".tmp") ||
			    !tmp_name_mine(de->d_name, eng->host) ||
			    fstatat(dirfd(d), de->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				n++;
			else
				snap_log(LOG_ERR, "repo: cannot remove '%s/%s/%s': %m",
					 eng->backups_dir, ve->d_name,
					 de->d_name);
		}
		closedir(d);
	}
	closedir(vd);
	return n;
}

int repo_recover(struct snap_engine *eng)
{
	uint64_t removed = 0, bytes = 0;
	int n;

	if (!eng->repo)
		return 0;
	/* nothing of this host runs yet: each of its temporary chunks is a
	 * dead put's (other hosts' are GC's, once old) */
	chunkstore_tmp_sweep_own(eng->repo->cs, &removed, &bytes);
	n = eng->repo->rs ? 0 : sweep_index_tmp(eng);
	if (removed + (uint64_t)n > 0)
		event_record(eng, "recovery.tmp", NULL, NULL, 0,
			     "removed %" G_GUINT64_FORMAT
			     " temporary chunk file(s) and %d temporary index file(s) a crash left in the repository",
			     removed, n);
	return (int)removed + n;
}

/*
 * Write this host's lease from the backups running now (repo_lease.h):
 * the value is read under repo->lock inside lease_lock, so the last write
 * always says the latest state.
 */
static int lease_update(struct snap_engine *eng)
{
	struct repo *repo = eng->repo;
	int64_t oldest = -1;
	int rc;

	g_mutex_lock(&repo->lease_lock);
	g_mutex_lock(&repo->lock);
	for (GList *l = repo->active; l; l = l->next) {
		struct repo_active *act = l->data;

		if (oldest < 0 || act->started < oldest)
			oldest = act->started;
	}
	g_mutex_unlock(&repo->lock);
	rc = repo->rs ? lease_write_rados(repo->rs, eng->host, oldest) :
			lease_write(eng->secondary, eng->host, oldest);
	g_mutex_unlock(&repo->lease_lock);
	return rc;
}

int repo_backup_begin(struct snap_engine *eng, const struct repo_index *base,
		      struct repo_active **out)
{
	struct repo_active *act = g_new0(struct repo_active, 1);
	int rc;

	*out = NULL;
	if (!eng->repo) {
		g_free(act);
		return -ENOTSUP;
	}
	act->started = (int64_t)time(NULL);
	if (base && base->count > 0) {
		rc = repo_index_init(&act->base, base->chunk_size,
				     base->virtual_size);
		if (rc < 0) {
			g_free(act);
			return rc;
		}
		memcpy(act->base.digests, base->digests,
		       base->count * REPO_INDEX_ENTRY_SIZE);
	}
	g_mutex_lock(&eng->repo->lock);
	eng->repo->active = g_list_prepend(eng->repo->active, act);
	g_mutex_unlock(&eng->repo->lock);
	/* other hosts' GCs must know before the first chunk is written */
	rc = lease_update(eng);
	if (rc < 0) {
		g_mutex_lock(&eng->repo->lock);
		eng->repo->active = g_list_remove(eng->repo->active, act);
		g_mutex_unlock(&eng->repo->lock);
		repo_index_release(&act->base);
		g_free(act);
		return rc;
	}
	*out = act;
	return 0;
}

void repo_backup_end(struct snap_engine *eng, struct repo_active *act)
{
	if (!act)
		return;
	g_mutex_lock(&eng->repo->lock);
	eng->repo->active = g_list_remove(eng->repo->active, act);
	g_mutex_unlock(&eng->repo->lock);
	repo_index_release(&act->base);
	g_free(act);
	lease_update(eng); /* a failure (logged) leaves an older start: safe */
}

void repo_note_move(struct snap_engine *eng)
{
	if (eng->repo)
		__atomic_add_fetch(&eng->repo->moves, 1, __ATOMIC_SEQ_CST);
}

uint64_t repo_moves(struct snap_engine *eng)
{
	return eng->repo ? __atomic_load_n(&eng->repo->moves, __ATOMIC_SEQ_CST)
			 : 0;
}

void repo_gc_request(struct snap_engine *eng)
{
	if (!eng->repo)
		return;
	g_mutex_lock(&eng->repo->lock);
	eng->repo->gc_requested = true;
	g_cond_signal(&eng->repo->gc_wanted);
	g_mutex_unlock(&eng->repo->lock);
}

/* One GC run: the cutoff and the roots taken under the lock, the run
 * without it. */
static void gc_once(struct snap_engine *eng)
{
	struct repo *repo = eng->repo;
	struct repo_gc_stats st = { 0 };
	GPtrArray *roots = g_ptr_array_new();
	int64_t cutoff = (int64_t)time(NULL), others;
	unsigned hosts;
	guint i;
	int rc;

	g_mutex_lock(&repo->lock);
	for (GList *l = repo->active; l; l = l->next) {
		struct repo_active *act = l->data;
		struct repo_index *copy;

		cutoff = MIN(cutoff, act->started);
		if (act->base.count == 0)
			continue;
		copy = g_new0(struct repo_index, 1);
		if (repo_index_init(copy, act->base.chunk_size,
				    act->base.virtual_size) == 0)
			memcpy(copy->digests, act->base.digests,
			       act->base.count * REPO_INDEX_ENTRY_SIZE);
		g_ptr_array_add(roots, copy);
	}
	g_mutex_unlock(&repo->lock);
	/* and the running backups of the hosts sharing this SECONDARY (0: a
	 * lease that cannot be read, so every unnamed chunk is kept) */
	if (repo->rs)
		lease_others_rados(repo->rs, eng->host, &others, &hosts);
	else
		lease_others(eng->secondary, eng->host, &others, &hosts);
	cutoff = MIN(cutoff, others);
	cutoff -= REPO_GC_MARGIN;

	rc = repo_gc_run_on(repo->cs, repo->rs, eng->backups_dir,
			 (const struct repo_index *const *)roots->pdata,
			 roots->len, cutoff, (volatile bool *)&repo->stopping,
			 &st);
	if (rc == 0)
		event_record(eng, "repository.gc", NULL, NULL, 0,
			     "garbage collection: %" G_GUINT64_FORMAT
			     " index(es), %" G_GUINT64_FORMAT " chunk(s) named, %"
			     G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
			     " chunk file(s) removed (%" G_GUINT64_FORMAT
			     " bytes freed), %" G_GUINT64_FORMAT
			     " unnamed kept as young, %" G_GUINT64_FORMAT
			     " foreign; %u other host lease(s)",
			     st.indexes, st.marked, st.removed, st.chunks_seen,
			     st.bytes_freed, st.kept_young, st.foreign, hosts);
	else if (rc != -ECANCELED)
		event_record(eng, "repository.gc", NULL, NULL, -rc,
			     "garbage collection stopped, nothing more removed: %s (%"
			     G_GUINT64_FORMAT " chunk file(s) removed before)",
			     g_strerror(-rc), st.removed);
	for (i = 0; i < roots->len; i++) {
		repo_index_release(roots->pdata[i]);
		g_free(roots->pdata[i]);
	}
	g_ptr_array_free(roots, TRUE);
}

static gpointer gc_thread(gpointer arg)
{
	struct snap_engine *eng = arg;
	struct repo *repo = eng->repo;

	g_mutex_lock(&repo->lock);
	for (;;) {
		while (!repo->gc_requested && !repo->stopping)
			g_cond_wait(&repo->gc_wanted, &repo->lock);
		if (repo->stopping)
			break;
		repo->gc_requested = false;
		g_mutex_unlock(&repo->lock);
		gc_once(eng);
		g_mutex_lock(&repo->lock);
	}
	g_mutex_unlock(&repo->lock);
	return NULL;
}

int repo_start(struct snap_engine *eng)
{
	GError *err = NULL;

	if (!eng->repo)
		return 0;
	/* nothing of this host runs yet: a lease a crash left says idle now */
	lease_update(eng);
	eng->repo->gc_thread = g_thread_try_new("snapfs-gc", gc_thread, eng,
						&err);
	if (!eng->repo->gc_thread) {
		snap_log(LOG_ERR, "repo: cannot start the GC thread: %s",
			 err->message);
		g_error_free(err);
		return -ENOMEM;
	}
	repo_gc_request(eng);
	return 0;
}

void repo_close(struct snap_engine *eng)
{
	struct repo *repo = eng->repo;

	if (!repo)
		return;
	g_mutex_lock(&repo->lock);
	repo->stopping = true;
	g_cond_broadcast(&repo->gc_wanted);
	g_mutex_unlock(&repo->lock);
	if (repo->gc_thread)
		g_thread_join(repo->gc_thread);
	chunkstore_close(repo->cs);
	rados_store_close(repo->rs);
	g_free(repo->where);
	g_list_free_full(repo->active, g_free);
	g_mutex_clear(&repo->lock);
	g_mutex_clear(&repo->lease_lock);
	g_cond_clear(&repo->gc_wanted);
	g_free(repo);
	eng->repo = NULL;
}

int repo_index_of(struct snap_engine *eng, const struct catalog_snapshot *s,
		  struct repo_index *out)
{
	g_autofree char *path = backup_index_path(eng, s);
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *name = g_path_get_basename(path);
	g_autofree void *buf = NULL;
	char hex[DIGEST_HEX_LEN + 1];
	size_t len;
	int dfd, rc;

	memset(out, 0, sizeof(*out));
	if (eng->repo && eng->repo->rs) {
		g_autofree char *obj = backup_object_name(s, "index");

		rc = repo_index_get_object(eng->repo->rs, obj, out);
		g_free(path);
		path = g_strdup_printf("%s:%s", eng->repo->where, obj);
	} else {
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return -errno;
		rc = repo_index_read(dfd, name, out);
		close(dfd);
	}
	if (rc < 0)
		return rc;
	/* the catalog's "sha256:<hex>" binds the backup to this index */
	rc = repo_index_encode(out, &buf, &len);
	if (rc == 0) {
		digest_to_hex((const uint8_t *)buf + len - DIGEST_LEN, hex);
		if (!g_str_has_prefix(s->checksum, "sha256:") ||
		    strcmp(s->checksum + 7, hex) != 0) {
			snap_log(LOG_ERR, "repo: index '%s' is not the one backup '%s' published",
				 path, s->name);
			rc = -EBADMSG;
		}
	}
	free(g_steal_pointer(&buf));
	if (rc < 0)
		repo_index_release(out);
	return rc;
}

int repo_restore(struct snap_engine *eng, struct running_job *rj,
		 const struct catalog_snapshot *s, const char *dst,
		 GString *why)
{
	g_auto(GStrv) argv = image_argv_create(dst, s->virtual_size);
	g_autofree char *err = NULL;
	g_autofree uint8_t *buf = NULL;
	struct repo_index idx;
	struct nbd_image *img = NULL;
	uint64_t i, off;
	size_t len;
	int rc;

	if (!eng->repo) {
		g_string_printf(why, "the backup is in the repository, and this mount has repository=off");
		return -ENOTSUP;
	}
	rc = repo_index_of(eng, s, &idx);
	if (rc < 0) {
		g_string_printf(why, "cannot read the backup's index: %s",
				g_strerror(-rc));
		event_record(eng, "repository.damaged", s->volume, s->name, -rc,
			     "the index of backup '%s' cannot be read: %s",
			     s->name, g_strerror(-rc));
		return rc == -ENOENT || rc == -EBADMSG ? -EIO : rc;
	}
	__atomic_store_n(&rj->bytes_total, s->virtual_size, __ATOMIC_RELAXED);
	unlink(dst);
	rc = argv ? proc_run(argv, rj->cancel, NULL, &err) : -EINVAL;
	if (rc < 0) {
		g_string_printf(why, "qemu-img create failed: %s",
				err && *err ? g_strstrip(err) : g_strerror(-rc));
		goto out;
	}
	rc = nbd_image_open_writable(dst, &img);
	if (rc < 0) {
		g_string_printf(why, "cannot open the new image over NBD: %s",
				g_strerror(-rc));
		goto undo_dst;
	}
	buf = g_try_malloc(idx.chunk_size);
	if (!buf) {
		rc = -ENOMEM;
		g_string_printf(why, "out of memory");
		goto undo_dst;
	}
	for (i = 0, off = 0; i < idx.count; i++, off += idx.chunk_size) {
		if (g_cancellable_is_cancelled(rj->cancel)) {
			rc = -ECANCELED;
			goto undo_dst;
		}
		__atomic_store_n(&rj->bytes_done, off, __ATOMIC_RELAXED);
		if (repo_index_is_hole(&idx, i))
			continue;
		rc = chunkstore_get(eng->repo->cs, idx.digests[i], buf,
				    idx.chunk_size, &len);
		if (rc == 0 && len != repo_index_chunk_len(&idx, i))
			rc = -EBADMSG;
		if (rc < 0) {
			g_autofree char *cpath = chunkstore_path(eng->repo->cs,
								 idx.digests[i]);
			g_string_printf(why, "chunk %" G_GUINT64_FORMAT " of the backup, '%s', is %s",
					i, cpath,
					rc == -ENOENT ? "missing" :
					rc == -EBADMSG ? "damaged" : g_strerror(-rc));
			event_record(eng, "repository.damaged", s->volume,
				     s->name, rc == -ENOENT || rc == -EBADMSG ?
					     EIO : -rc,
				     "restore of backup '%s' failed: %s",
				     s->name, why->str);
			if (rc == -ENOENT || rc == -EBADMSG)
				rc = -EIO;
			goto undo_dst;
		}
		rc = nbd_image_pwrite(img, buf, len, off);
		if (rc < 0) {
			g_string_printf(why, "cannot write the new image: %s",
					g_strerror(-rc));
			goto undo_dst;
		}
	}
	rc = nbd_image_flush(img);
	if (rc < 0) {
		g_string_printf(why, "cannot flush the new image: %s",
				g_strerror(-rc));
		goto undo_dst;
	}
	nbd_image_close(img);
	img = NULL;
	rc = fsync_path(dst);
	if (rc < 0) {
		g_string_printf(why, "cannot flush the new image: %s",
				g_strerror(-rc));
		goto undo_dst;
	}
	__atomic_store_n(&rj->bytes_done, s->virtual_size, __ATOMIC_RELAXED);
	goto out;

undo_dst:
	nbd_image_close(img);
	unlink(dst);
out:
	repo_index_release(&idx);
	return rc;
}
