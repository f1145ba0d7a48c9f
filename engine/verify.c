/*
 * verify.c - verification of backups and the Damaged state (contract in
 * verify.h; docs/repository.md, "Verify and Damaged").
 *
 * DESIGN
 *
 *   any thread      snapshot_verify() (the control verb) checks one
 *                   backup: the reads without any lock, then one catalog
 *                   transaction per backup whose state changes.
 *   verify thread   ("snapfs-verify", when cfg.verify_interval > 0) sleeps
 *                   on eng->schedule like the policy thread, so the test
 *                   clock wakes it; each wake it verifies, one at a time,
 *                   the backups due: the oldest max(verified_at,
 *                   backed_up_at) first, due when that is interval days
 *                   before the engine's clock.
 *
 * A damaged chunk is renamed to SECONDARY/.damaged/<name>.<random>: out of
 * .chunks/, so no reader, no put and no GC sees it again; the chunk is
 * then missing, and the next backup of a volume that had it writes it
 * again (backup.c reads again a base chunk chunkstore_touch() finds
 * gone; a Damaged backup is never a base).
 *
 * LOCKS: verifier->lock is a leaf guarding @failed_until only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "verify.h"
#include "backup.h"
#include "checksum.h"
#include "clock.h"
#include "events.h"
#include "fault.h"
#include "log.h"
#include "paths.h"
#include "chunkstore_rados.h"
#include "rados.h"
#include "repo.h"
#include "snapshot.h"
#include "testpoint.h"

#define DAY (24 * 3600)

struct verifier {
	GThread *thread;
	GCancellable *cancel; /* cancelled at verify_stop() */
	GMutex lock;
	/* snapshot id -> engine time before which the periodic thread does
	 * not try again a backup whose verify stopped on an error */
	GHashTable *failed_until; /* under lock */
};

/* What one check found. */
struct verify_found {
	bool damaged;	      /* this backup is Damaged */
	GHashTable *bad;      /* digest (32 bytes, owned) -> itself: damaged or
			       * missing chunks (repository backups) */
	uint64_t chunks, bytes, moved, missing;
	GString *why;	      /* what is wrong, for the event and the alert */
};

static guint digest_hash(gconstpointer p)
{
	guint h;

	memcpy(&h, p, sizeof(h)); /* a SHA-256: any 4 bytes are uniform */
	return h;
}

static gboolean digest_equal(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, DIGEST_LEN) == 0;
}

/* Open directory @name in @dir_fd, never through a symbolic link.
 * Return: the fd; -ENOENT; -EBADMSG something else holds the name (a
 * planted link); -errno. */
static int open_real_dir(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	return errno == ELOOP || errno == ENOTDIR ? -EBADMSG : -errno;
}

/* quarantine() on a RADOS secondary: the damaged object is copied to
 * ".damaged/<name>.<random>" (when it is no larger than a chunk can be)
 * and removed.  Return: 0; -ENOENT gone already; -errno (logged). */
static int quarantine_object(struct snap_engine *eng,
			     const uint8_t d[DIGEST_LEN])
{
	struct rados_store *rs = repo_rados(eng);
	size_t cap = CHUNKSTORE_HEADER +
		     (size_t)chunkstore_chunk_size(repo_chunks(eng));
	g_autofree uint8_t *buf = g_malloc(cap);
	char name[CHUNK_OBJECT_NAME];
	g_autofree char *dst = NULL;
	size_t len = 0;
	int rc;

	chunk_object_name(d, name);
	dst = g_strdup_printf(".damaged/%s.%08x", strrchr(name, '/') + 1,
			      g_random_int());
	rc = rados_store_get(rs, name, buf, cap, &len);
	if (rc == 0)
		rados_store_put(rs, dst, buf, len, true, (int64_t)time(NULL));
	else if (rc == -ENOENT)
		return rc;
	rc = fault("verify.move", EIO) ? -errno : rados_store_remove(rs, name);
	if (rc == 0)
		snap_log(LOG_WARNING, "verify: damaged chunk object '%s' removed (a copy kept as '%s' when it could be read)",
			 name, dst);
	return rc;
}

/* Move the damaged chunk @d out of .chunks into SECONDARY/.damaged/.
 * Every directory on the way is opened without following a link, so a
 * planted link (a fan-out directory or .damaged/ pointing elsewhere) never
 * moves a file from or to outside SECONDARY.
 * Return: 0 moved; -ENOENT it was gone already; -EBADMSG a directory on
 * the way is not a real directory (logged, nothing moved); -errno. */
static int quarantine(struct snap_engine *eng, const uint8_t d[DIGEST_LEN])
{
	struct chunkstore *cs = repo_chunks(eng);
	g_autofree char *src = chunkstore_path(cs, d);
	g_autofree char *base = g_path_get_basename(src);
	g_autofree char *dst = g_strdup_printf("%s.%08x", base, g_random_int());
	char xx[3] = { base[0], base[1], '\0' };
	int sec_fd, chunks_fd = -1, fan_fd = -1, dmg_fd = -1, rc;
	const char *bad = NULL;

	sec_fd = open(eng->secondary, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sec_fd < 0)
		return -errno;
	if (mkdirat(sec_fd, ".damaged", 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		snap_log(LOG_ERR, "verify: cannot make '%s/.damaged': %s",
			 eng->secondary, g_strerror(-rc));
		goto out;
	}
	rc = chunks_fd = open_real_dir(sec_fd, ".chunks");
	if (rc == -EBADMSG)
		bad = ".chunks";
	if (rc >= 0) {
		rc = fan_fd = open_real_dir(chunks_fd, xx);
		if (rc == -EBADMSG)
			bad = "a fan-out directory of .chunks";
	}
	if (rc >= 0) {
		rc = dmg_fd = open_real_dir(sec_fd, ".damaged");
		if (rc == -EBADMSG)
			bad = ".damaged";
	}
	if (bad) {
		snap_log(LOG_ERR, "verify: cannot move damaged chunk '%s': %s is not "
			 "a directory of the repository (a planted link?)", src, bad);
		goto out;
	}
	if (rc < 0)
		goto out;
	if (fault("verify.move", EIO) || renameat(fan_fd, base, dmg_fd, dst) < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			snap_log(LOG_ERR, "verify: cannot move damaged chunk '%s' to '%s/.damaged/%s': %s",
				 src, eng->secondary, dst, g_strerror(-rc));
		goto out;
	}
	rc = 0;
	snap_log(LOG_WARNING, "verify: damaged chunk '%s' moved to '%s/.damaged/%s'",
		 src, eng->secondary, dst);
out:
	if (dmg_fd >= 0)
		close(dmg_fd);
	if (fan_fd >= 0)
		close(fan_fd);
	if (chunks_fd >= 0)
		close(chunks_fd);
	close(sec_fd);
	return rc;
}

static void found_bad(struct verify_found *f, struct snap_engine *eng,
		      const uint8_t d[DIGEST_LEN], const char *what)
{
	if (f->why->len == 0) {
		g_autofree char *path = chunkstore_path(repo_chunks(eng), d);

		g_string_printf(f->why, "chunk '%s' is %s", path, what);
	}
	g_hash_table_add(f->bad, g_memdup2(d, DIGEST_LEN));
	f->damaged = true;
}

/* Check every chunk of repository backup @s.  Return: 0 (f->damaged says
 * the verdict); -ECANCELED; -errno that stopped the check. */
static int check_repo(struct snap_engine *eng, const struct catalog_snapshot *s,
		      GCancellable *cancel, struct verify_found *f)
{
	struct chunkstore *cs = repo_chunks(eng);
	g_autoptr(GHashTable) seen = g_hash_table_new(digest_hash, digest_equal);
	g_autofree uint8_t *buf = NULL;
	struct repo_index idx;
	uint64_t i;
	size_t len;
	int rc;

	rc = repo_index_of(eng, s, &idx);
	if (rc == -ENOENT || rc == -EBADMSG) {
		g_string_printf(f->why, "its index is %s",
				rc == -ENOENT ? "missing" : "damaged");
		f->damaged = true;
		return 0;
	}
	if (rc < 0)
		return rc;
	buf = g_try_malloc(idx.chunk_size);
	if (!buf) {
		repo_index_release(&idx);
		return -ENOMEM;
	}
	for (i = 0; i < idx.count; i++) {
		const uint8_t *d = idx.digests[i];

		if (g_cancellable_is_cancelled(cancel)) {
			rc = -ECANCELED;
			break;
		}
		if (repo_index_is_hole(&idx, i) || g_hash_table_contains(seen, d))
			continue;
		g_hash_table_add(seen, (gpointer)d);
		rc = chunkstore_get(cs, d, buf, idx.chunk_size, &len);
		if (rc == 0 && len != repo_index_chunk_len(&idx, i))
			rc = -EBADMSG;
		if (rc == 0) {
			f->chunks++;
			f->bytes += len;
			continue;
		}
		if (rc == -ENOENT) {
			f->missing++;
			found_bad(f, eng, d, "missing");
			rc = 0;
			continue;
		}
		if (rc == -EBADMSG || rc == -EIO) {
			/* unreadable or wrong: never read again */
			int mrc = repo_rados(eng) ? quarantine_object(eng, d) :
						    quarantine(eng, d);

			if (mrc == 0) {
				f->moved++;
				repo_note_move(eng);
				testpoint("verify.chunk_moved");
			}
			else if (mrc != -ENOENT && mrc != -EBADMSG) {
				rc = mrc;
				break;
			}
			found_bad(f, eng, d, "damaged");
			rc = 0;
			continue;
		}
		break; /* -ENOMEM, -ERANGE...: no verdict */
	}
	repo_index_release(&idx);
	return rc;
}

/* Check the whole-file checksum of full-copy backup @s. */
static int check_copy(struct snap_engine *eng, const struct catalog_snapshot *s,
		      GCancellable *cancel, struct verify_found *f)
{
	g_autofree char *path = backup_image_path(eng, s);
	char sum[CHECKSUM_TEXT_MAX];
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc != -ENOENT && rc != -ELOOP)
			return rc;
		g_string_printf(f->why, "its image '%s' is missing", path);
		f->damaged = true;
		return 0;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		g_string_printf(f->why, "its image '%s' is not a regular file", path);
		f->damaged = true;
		return 0;
	}
	rc = checksum_file(fd, cancel, sum);
	close(fd);
	if (rc == -EIO) {
		g_string_printf(f->why, "its image '%s' cannot be read", path);
		f->damaged = true;
		return 0;
	}
	if (rc < 0)
		return rc;
	f->chunks = 1;
	f->bytes = (uint64_t)st.st_size;
	if (strcmp(sum, s->checksum) != 0) {
		g_string_printf(f->why, "its image '%s' has checksum %s, not %s",
				path, sum, s->checksum);
		f->damaged = true;
	}
	return 0;
}

static bool has_backup(enum snap_state st)
{
	return st == SNAP_STATE_BACKED_UP || st == SNAP_STATE_DAMAGED;
}

/*
 * Backup @id is Damaged: state, verified_at (when @self: the verify that
 * found it), the alert and the event, in one transaction.
 */
static void set_damaged(struct snap_engine *eng, int64_t id, bool self,
			const char *why, int64_t now)
{
	struct catalog_snapshot c;
	g_autofree char *target = NULL;
	g_autofree char *what = NULL;
	bool was_damaged = false;
	int rc;

	if (catalog_tx_begin(eng->cat) < 0)
		return;
	rc = catalog_snapshot_get_by_id(eng->cat, id, &c);
	if (rc == 0 && !has_backup(c.state))
		rc = -ENOENT; /* deleted (Destroying) meanwhile */
	if (rc == 0) {
		was_damaged = c.state == SNAP_STATE_DAMAGED;
		c.state = SNAP_STATE_DAMAGED;
		if (self)
			c.verified_at = now;
		rc = catalog_snapshot_update(eng->cat, &c);
	}
	if (rc == 0 && !was_damaged) {
		struct alert a = { 0 };

		target = g_strdup_printf("volumes/%s/snapshots/%s", c.volume,
					 c.name);
		what = g_strdup_printf("backup damaged: %s", why);
		a.kind = "verify";
		a.object_id = c.id;
		a.target = target;
		a.volume = c.volume;
		a.snapshot = c.name;
		a.err = EIO;
		a.message = why;
		a.attempts = -1;
		a.what = what;
		event_record(eng, "verify.damaged", c.volume, c.name, -EIO,
			     "backup is Damaged: %s", why);
		rc = alert_raise(eng, &a);
	}
	catalog_tx_end(eng->cat, rc);
}

/* Backup @id was found sound: verified_at, BackedUp, alert resolved. */
static void set_sound(struct snap_engine *eng, int64_t id, int64_t now)
{
	struct catalog_snapshot c;
	bool healed = false;
	int rc;

	if (catalog_tx_begin(eng->cat) < 0)
		return;
	rc = catalog_snapshot_get_by_id(eng->cat, id, &c);
	if (rc == 0 && !has_backup(c.state))
		rc = -ENOENT;
	if (rc == 0) {
		healed = c.state == SNAP_STATE_DAMAGED;
		c.state = SNAP_STATE_BACKED_UP;
		c.verified_at = now;
		rc = catalog_snapshot_update(eng->cat, &c);
	}
	if (rc == 0 && healed) {
		rc = catalog_alert_resolve(eng->cat, "verify", c.id);
		if (rc >= 0) {
			event_record(eng, "alert.resolve", c.volume, c.name, 0,
				     "verify alert resolved: every chunk of the backup is present and sound");
			rc = 0;
		}
	}
	catalog_tx_end(eng->cat, rc);
}

/* Every other backup (BackedUp or Damaged) whose index names a chunk of
 * @bad becomes Damaged. */
static void mark_others(struct snap_engine *eng, int64_t self_id,
			GHashTable *bad, const char *vol, const char *snap,
			int64_t now)
{
	GArray *all = NULL;
	guint i;

	if (g_hash_table_size(bad) == 0 ||
	    catalog_snapshot_list(eng->cat, -1, -1, &all) < 0)
		return;
	for (i = 0; i < all->len; i++) {
		struct catalog_snapshot *c = &g_array_index(all,
					struct catalog_snapshot, i);
		g_autofree char *why = NULL;
		struct repo_index idx;
		uint64_t j, n = 0;

		if (c->id == self_id || c->state != SNAP_STATE_BACKED_UP ||
		    !backup_indexed(c) || repo_index_of(eng, c, &idx) < 0)
			continue; /* an unreadable index: its own verify says */
		for (j = 0; j < idx.count; j++)
			if (!repo_index_is_hole(&idx, j) &&
			    g_hash_table_contains(bad, idx.digests[j]))
				n++;
		repo_index_release(&idx);
		if (n == 0)
			continue;
		why = g_strdup_printf("it names %" G_GUINT64_FORMAT
				      " chunk(s) the verify of '%s/%s' found damaged or missing",
				      n, vol, snap);
		set_damaged(eng, c->id, false, why, now);
	}
	g_array_free(all, TRUE);
}

/* Verify backup @s (BackedUp or Damaged).  Return as snapshot_verify(). */
static int verify_one(struct snap_engine *eng, const struct catalog_snapshot *s)
{
	GCancellable *cancel = eng->verifier ? eng->verifier->cancel : NULL;
	struct verify_found f = { 0 };
	bool indexed = backup_indexed(s);
	int64_t now;
	int rc;

	f.bad = g_hash_table_new_full(digest_hash, digest_equal, g_free, NULL);
	f.why = g_string_new(NULL);
	rc = indexed ? check_repo(eng, s, cancel, &f) :
		       check_copy(eng, s, cancel, &f);
	now = clock_now(eng);
	if (rc < 0) {
		if (rc != -ECANCELED)
			event_record(eng, "verify.end", s->volume, s->name, rc,
				     "verify stopped before a verdict: %s",
				     g_strerror(-rc));
		goto out;
	}
	if (f.damaged) {
		set_damaged(eng, s->id, true, f.why->str, now);
		mark_others(eng, s->id, f.bad, s->volume, s->name, now);
		event_record(eng, "verify.end", s->volume, s->name, -EIO,
			     "backup is Damaged: %s (%" G_GUINT64_FORMAT
			     " chunk(s) sound, %u bad or missing, %"
			     G_GUINT64_FORMAT " moved to .damaged)",
			     f.why->str, f.chunks, g_hash_table_size(f.bad),
			     f.moved);
		rc = -EIO;
	} else {
		set_sound(eng, s->id, now);
		event_record(eng, "verify.end", s->volume, s->name, 0,
			     "backup is sound: %" G_GUINT64_FORMAT " %s, %"
			     G_GUINT64_FORMAT " bytes checked",
			     f.chunks, indexed ? "chunk(s)" : "file", f.bytes);
	}
out:
	g_hash_table_destroy(f.bad);
	g_string_free(f.why, TRUE);
	return rc;
}

int snapshot_verify(struct snap_engine *eng, const char *vol, const char *snap)
{
	g_autofree char *target = g_strdup_printf("volumes/%s/control", vol);
	struct catalog_volume v;
	struct catalog_snapshot s;
	int rc = snapshot_lookup(eng, vol, snap, &v, &s);

	if (rc < 0) {
		event_reject(eng, "verify", target, -rc, "no such snapshot '%s'",
			     snap);
		return rc;
	}
	if (s.state == SNAP_STATE_BACKING_UP) {
		event_reject(eng, "verify", target, EBUSY,
			     "the backup of '%s' is queued or running", snap);
		return -EBUSY;
	}
	if (!has_backup(s.state)) {
		event_reject(eng, "verify", target, EINVAL,
			     "'%s' has no backup to verify (it is %s)", snap,
			     snap_state_name(s.state));
		return -EINVAL;
	}
	if (backup_indexed(&s) && !repo_chunks(eng)) {
		event_reject(eng, "verify", target, ENOTSUP,
			     "the backup of '%s' is in the repository, and this mount has repository=off",
			     snap);
		return -ENOTSUP;
	}
	return verify_one(eng, &s);
}

/* ---- the periodic verify ----------------------------------------------- */

/*
 * The backup due first: the oldest max(verified_at, backed_up_at) among
 * the backups this mount can verify that are not resting after an error.
 * Return: 1 and *@out when one is due at @now; 0 none, *@next the engine
 * time the next one is (INT64_MAX none).
 */
static int next_due(struct snap_engine *eng, int64_t now,
		    struct catalog_snapshot *out, int64_t *next)
{
	struct verifier *vf = eng->verifier;
	int64_t interval = (int64_t)eng->cfg.verify_interval * DAY, best = INT64_MAX;
	GArray *all = NULL;
	guint i;

	*next = INT64_MAX;
	if (catalog_snapshot_list(eng->cat, -1, -1, &all) < 0)
		return 0;
	g_mutex_lock(&vf->lock);
	for (i = 0; i < all->len; i++) {
		struct catalog_snapshot *c = &g_array_index(all,
					struct catalog_snapshot, i);
		int64_t last = MAX(c->verified_at, c->backed_up_at), due;
		gpointer until;

		if (!has_backup(c->state) ||
		    (backup_indexed(c) && !repo_chunks(eng)))
			continue;
		due = last + interval;
		until = g_hash_table_lookup(vf->failed_until, &c->id);
		if (until)
			due = MAX(due, *(int64_t *)until);
		if (due < best) {
			best = due;
			*out = *c;
		}
	}
	g_mutex_unlock(&vf->lock);
	g_array_free(all, TRUE);
	*next = best;
	return best <= now;
}

static gpointer verify_thread(gpointer arg)
{
	struct snap_engine *eng = arg;
	struct verifier *vf = eng->verifier;

	g_mutex_lock(&eng->lock);
	while (!eng->stopping) {
		struct catalog_snapshot s;
		int64_t next, now = clock_now(eng);
		gint64 until = g_get_monotonic_time() + 3600 * G_TIME_SPAN_SECOND;
		int rc;

		g_mutex_unlock(&eng->lock);
		if (next_due(eng, now, &s, &next)) {
			rc = verify_one(eng, &s);
			if (rc < 0 && rc != -EIO && rc != -ECANCELED) {
				int64_t *key = g_memdup2(&s.id, sizeof(s.id));
				int64_t *t = g_new(int64_t, 1);

				/* no verdict: try again in one interval */
				*t = clock_now(eng) +
				     (int64_t)eng->cfg.verify_interval * DAY;
				g_mutex_lock(&vf->lock);
				g_hash_table_replace(vf->failed_until, key, t);
				g_mutex_unlock(&vf->lock);
			}
			g_mutex_lock(&eng->lock);
			continue;
		}
		g_mutex_lock(&eng->lock);
		if (eng->stopping)
			break;
		if (next != INT64_MAX && !eng->cfg.test_clock)
			until = MIN(until, g_get_monotonic_time() +
					   (next - now) * G_TIME_SPAN_SECOND);
		/* woken by the test clock, a take, a job that ended, stopping;
		 * a new backup is due an interval later: the hourly look finds it */
		g_cond_wait_until(&eng->schedule, &eng->lock, until);
	}
	g_mutex_unlock(&eng->lock);
	return NULL;
}

int verify_start(struct snap_engine *eng)
{
	struct verifier *vf = g_new0(struct verifier, 1);
	g_autoptr(GError) err = NULL;

	vf->cancel = g_cancellable_new();
	g_mutex_init(&vf->lock);
	vf->failed_until = g_hash_table_new_full(g_int64_hash, g_int64_equal,
						 g_free, g_free);
	eng->verifier = vf;
	if (eng->cfg.verify_interval == 0)
		return 0;
	vf->thread = g_thread_try_new("snapfs-verify", verify_thread, eng, &err);
	if (!vf->thread) {
		snap_log(LOG_ERR, "verify: cannot start the thread: %s",
			 err->message);
		return -ENOMEM;
	}
	snap_log(LOG_INFO, "verify: every backup is verified every %u day(s)",
		 eng->cfg.verify_interval);
	return 0;
}

void verify_stop(struct snap_engine *eng)
{
	struct verifier *vf = eng->verifier;

	if (!vf)
		return;
	g_cancellable_cancel(vf->cancel);
	if (vf->thread) {
		g_mutex_lock(&eng->lock);
		eng->stopping = true;
		g_cond_broadcast(&eng->schedule);
		g_mutex_unlock(&eng->lock);
		g_thread_join(vf->thread);
	}
	g_object_unref(vf->cancel);
	g_hash_table_destroy(vf->failed_until);
	g_mutex_clear(&vf->lock);
	g_free(vf);
	eng->verifier = NULL;
}
