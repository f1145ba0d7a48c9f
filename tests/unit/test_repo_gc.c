/*
 * test_repo_gc.c - engine/repo_gc.c (and the sweep's steps in
 * chunkstore.c) on a temporary repository: unnamed old chunks go; chunks
 * an index names (published or not) stay, and so do young ones (a running
 * backup's) and those of an extra root (a running backup's base); an index
 * that cannot be read stops the run before anything is removed; names
 * that are not chunks (junk, symbolic links, FIFOs, a directory that is
 * not a fan-out directory) are neither followed nor removed; a cancelled
 * run leaves whole chunks only; a put racing the sweep of the same chunk
 * never loses a chunk it reported present.
 *
 * File times are set with utimensat(), never waited for.  Crashes: fault()
 * reads its environment once per process, so the fault cases run this
 * program again as a child (--gc-child ROOT) that runs one GC, with
 * SNAPFS_FAULT_POINT set to each GC fault point and SNAPFS_FAULT_AT walked
 * from 1 until none fires; and the kill -9 case hangs the child at the
 * test point "gc.unlink" (SNAPFS_HANG_AT, holding a fan-out lock) and
 * kills it.  After each, every named chunk is in place and whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "unit.h"
#include "chunkstore.h"
#include "digest.h"
#include "repo_gc.h"
#include "repo_index.h"

#define CS (1u << 20) /* the tests' chunk size */
#define OLD ((int64_t)1000000000) /* 2001: long before any cutoff */
#define SMALL 200		  /* bytes of a test chunk */

struct repo {
	char *dir;
	char *volumes;
	struct chunkstore *cs;
};

static char *self_exe;
static GPtrArray *kept; /* strings freed after each case */

/* @s, freed after the case (paths built inside an assertion). */
static char *keep(char *s)
{
	g_ptr_array_add(kept, s);
	return s;
}

/* The number of entries in @dir. */
static int count_files_in(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	int n = 0;

	if (!d)
		return 0;
	while (g_dir_read_name(d))
		n++;
	g_dir_close(d);
	return n;
}

static int64_t cutoff_now(void)
{
	return (int64_t)time(NULL) - REPO_GC_MARGIN;
}

static struct repo *repo_new(void)
{
	struct repo *r = g_new0(struct repo, 1);

	r->dir = unit_tmpdir();
	r->volumes = g_build_filename(r->dir, "volumes", NULL);
	assert_int_equal(mkdir(r->volumes, 0700), 0);
	assert_errno(chunkstore_open(r->dir, CS, &r->cs), 0);
	return r;
}

static void repo_free(struct repo *r)
{
	chunkstore_close(r->cs);
	unit_tmpdir_remove(r->dir);
	g_free(r->volumes);
	g_free(r);
}

static int setup_repo(void **state)
{
	*state = repo_new();
	return 0;
}

static int teardown_repo(void **state)
{
	repo_free(*state);
	g_ptr_array_set_size(kept, 0);
	return 0;
}

/* SMALL bytes that depend on @seed (g_free). */
static unsigned char *pattern(uint32_t seed)
{
	unsigned char *b = g_malloc(SMALL);
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < SMALL; i++) {
		x ^= x << 13; /* xorshift32 */
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (unsigned char)x;
	}
	return b;
}

static void digest_of(uint32_t seed, uint8_t d[DIGEST_LEN])
{
	g_autofree unsigned char *b = pattern(seed);

	assert_errno(digest_sha256(b, SMALL, d), 0);
}

static void set_mtime_path(const char *path, int64_t t)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_sec = (time_t)t } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void set_mtime(struct repo *r, const uint8_t d[DIGEST_LEN], int64_t t)
{
	g_autofree char *path = chunkstore_path(r->cs, d);

	set_mtime_path(path, t);
}

/* Store chunk @seed (chunkstore_put) with mtime @t; its digest in @d. */
static void plant(struct repo *r, uint32_t seed, int64_t t,
		  uint8_t d[DIGEST_LEN])
{
	g_autofree unsigned char *b = pattern(seed);

	assert_errno(chunkstore_put(r->cs, b, SMALL, d, NULL), 0);
	set_mtime(r, d, t);
}

/* Whether chunk @d is there and whole. */
static bool present(struct repo *r, const uint8_t d[DIGEST_LEN])
{
	g_autofree unsigned char *buf = g_malloc(CS);
	size_t len;

	return chunkstore_has(r->cs, d) == 1 &&
	       chunkstore_get(r->cs, d, buf, CS, &len) == 0 && len == SMALL;
}

static bool gone(struct repo *r, const uint8_t d[DIGEST_LEN])
{
	return chunkstore_has(r->cs, d) == 0;
}

/* Write volumes/@vol/@name, an index of the @n digests at @d (NULL
 * entries are holes). */
static void write_index(struct repo *r, const char *vol, const char *name,
			const uint8_t *const *d, size_t n)
{
	g_autofree char *dir = g_build_filename(r->volumes, vol, NULL);
	struct repo_index idx;
	int fd;

	g_mkdir_with_parents(dir, 0700);
	assert_errno(repo_index_init(&idx, CS, (uint64_t)n * CS), 0);
	for (size_t i = 0; i < n; i++)
		if (d[i])
			memcpy(idx.digests[i], d[i], DIGEST_LEN);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_errno(repo_index_write(fd, name, &idx), 0);
	close(fd);
	repo_index_release(&idx);
}

static int gc(struct repo *r, const struct repo_index *const *roots,
	      size_t n, struct repo_gc_stats *stats)
{
	return repo_gc_run(r->cs, r->volumes, roots, n, cutoff_now(), NULL,
			   stats);
}

/* ---- mark and sweep ---- */

static void test_mark_and_sweep(void **state)
{
	struct repo *r = *state;
	uint8_t a[DIGEST_LEN], b[DIGEST_LEN], c[DIGEST_LEN], d[DIGEST_LEN],
		f[DIGEST_LEN], g[DIGEST_LEN];
	struct repo_gc_stats st;
	g_autofree char *tmp_index = NULL;

	plant(r, 1, OLD, a); /* named by vol1's published backup */
	plant(r, 2, OLD, b); /* named by it twice, and by vol2's */
	plant(r, 3, OLD, c); /* nobody's, old: garbage */
	plant(r, 4, time(NULL), d); /* nobody's, young: a running backup's */
	plant(r, 6, OLD, f); /* named by an index without a manifest */
	plant(r, 7, OLD, g); /* named only by a temporary index file */
	{
		const uint8_t *v1[] = { a, NULL, b, b };
		const uint8_t *v2[] = { f, b };

		write_index(r, "vol1", "u1.index", v1, G_N_ELEMENTS(v1));
		write_index(r, "vol2", "u2.index", v2, G_N_ELEMENTS(v2));
	}
	unit_write_file(keep(g_build_filename(r->volumes, "vol1", "u1.json", NULL)),
			"{}", 2);
	/* a temporary index (being written, never read): not valid either */
	tmp_index = g_build_filename(r->volumes, "vol1",
				     ".u3.index.0123456789abcdef.tmp", NULL);
	unit_write_file(tmp_index, "partial", 7);
	/* a file beside the volume directories holds no index */
	unit_write_file(keep(g_build_filename(r->volumes, "README", NULL)), "x", 1);

	assert_errno(gc(r, NULL, 0, &st), 0);
	assert_true(present(r, a));
	assert_true(present(r, b));
	assert_true(gone(r, c));
	assert_true(present(r, d));
	assert_true(present(r, f));
	assert_true(gone(r, g));
	assert_int_equal(st.indexes, 2);
	assert_int_equal(st.marked, 3);
	assert_int_equal(st.chunks_seen, 6);
	assert_int_equal(st.removed, 2);
	assert_int_equal(st.bytes_freed, 2 * (CHUNKSTORE_HEADER + SMALL));
	assert_int_equal(st.kept_young, 1);
	assert_int_equal(st.foreign, 0);

	/* the young one ages past the cutoff: it goes next time */
	set_mtime(r, d, OLD);
	assert_errno(gc(r, NULL, 0, &st), 0);
	assert_true(gone(r, d));
	assert_int_equal(st.removed, 1);
	assert_int_equal(st.chunks_seen, 4);

	/* deleting vol1's backup frees a, not b (vol2 names it) */
	assert_int_equal(unlink(keep(g_build_filename(r->volumes, "vol1",
						      "u1.index", NULL))),
			 0);
	assert_errno(gc(r, NULL, 0, &st), 0);
	assert_true(gone(r, a));
	assert_true(present(r, b));
	assert_true(present(r, f));
	assert_int_equal(st.indexes, 1);
}

/* A put of a chunk that exists, and chunkstore_touch(), make it young. */
static void test_put_and_touch_refresh(void **state)
{
	struct repo *r = *state;
	g_autofree unsigned char *b = pattern(11);
	uint8_t d[DIGEST_LEN], e[DIGEST_LEN], zero[DIGEST_LEN] = { 0 };
	struct repo_gc_stats st;
	bool written = true;

	plant(r, 11, OLD, d);
	assert_errno(chunkstore_put(r->cs, b, SMALL, d, &written), 0);
	assert_false(written);
	plant(r, 12, OLD, e);
	assert_errno(chunkstore_touch(r->cs, e), 0);
	assert_errno(gc(r, NULL, 0, &st), 0);
	assert_true(present(r, d));
	assert_true(present(r, e));
	assert_int_equal(st.kept_young, 2);

	/* touch of a chunk that is gone: the backup must read it again */
	set_mtime(r, e, OLD);
	assert_errno(gc(r, NULL, 0, &st), 0);
	assert_errno(chunkstore_touch(r->cs, e), -ENOENT);
	digest_of(99, e); /* never stored, no fan-out directory maybe */
	assert_errno(chunkstore_touch(r->cs, e), -ENOENT);
	assert_errno(chunkstore_touch(r->cs, zero), 0); /* a hole */
}

static void test_extra_root(void **state)
{
	struct repo *r = *state;
	uint8_t e[DIGEST_LEN], h[DIGEST_LEN];
	struct repo_index base, empty;
	const struct repo_index *roots[2] = { &empty, &base };
	struct repo_gc_stats st;

	plant(r, 21, OLD, e);
	plant(r, 22, OLD, h);
	assert_errno(repo_index_init(&empty, CS, 0), 0);
	assert_errno(repo_index_init(&base, CS, 3 * (uint64_t)CS), 0);
	memcpy(base.digests[0], e, DIGEST_LEN);
	memcpy(base.digests[2], e, DIGEST_LEN);

	assert_errno(gc(r, roots, 2, &st), 0);
	assert_true(present(r, e));
	assert_true(gone(r, h));
	assert_int_equal(st.marked, 1);
	assert_int_equal(st.indexes, 0);
	/* the root is borrowed: left as it was */
	assert_memory_equal(base.digests[0], e, DIGEST_LEN);
	assert_true(repo_index_is_hole(&base, 1));

	/* the backup ended without publishing: its base protects no more */
	assert_errno(gc(r, NULL, 0, &st), 0);
	assert_true(gone(r, e));
	repo_index_release(&base);
	repo_index_release(&empty);
}

/* ---- what stops a run before anything is removed ---- */

static void test_bad_index_aborts(void **state)
{
	struct repo *r = *state;
	uint8_t a[DIGEST_LEN], c[DIGEST_LEN];
	const uint8_t *v[] = { a };
	g_autofree char *idx = g_build_filename(r->volumes, "vol1", "u1.index",
						NULL);
	g_autofree char *good = g_build_filename(r->dir, "elsewhere.index", NULL);
	g_autofree char *vol2 = g_build_filename(r->volumes, "vol2", NULL);
	g_autofree char *outside = g_build_filename(r->dir, "outside", NULL);
	g_autofree char *content = NULL;
	gsize len;
	struct repo_gc_stats st;

	plant(r, 31, OLD, a);
	plant(r, 32, OLD, c);
	write_index(r, "vol1", "u1.index", v, 1);
	assert_true(g_file_get_contents(idx, &content, &len, NULL));

	/* garbage, truncated, a flipped byte, a symbolic link to a good one,
	 * a directory: all damaged, nothing removed, never "empty" */
	unit_write_file(idx, "not an index", 12);
	assert_errno(gc(r, NULL, 0, &st), -EBADMSG);
	assert_true(present(r, c) && present(r, a));
	assert_int_equal(st.removed, 0);
	unit_write_file(idx, content, len - 1);
	assert_errno(gc(r, NULL, 0, &st), -EBADMSG);
	content[40] ^= 1;
	unit_write_file(idx, content, len);
	assert_errno(gc(r, NULL, 0, &st), -EBADMSG);
	content[40] ^= 1;
	unit_write_file(good, content, len);
	assert_int_equal(unlink(idx), 0);
	assert_int_equal(symlink(good, idx), 0);
	assert_errno(gc(r, NULL, 0, &st), -EBADMSG);
	assert_int_equal(unlink(idx), 0);
	assert_int_equal(mkdir(idx, 0700), 0);
	assert_errno(gc(r, NULL, 0, &st), -EBADMSG);
	assert_int_equal(rmdir(idx), 0);
	assert_true(present(r, c) && present(r, a));

	/* a symbolic link at a volume directory's name: not followed, and
	 * not taken as holding nothing */
	assert_int_equal(mkdir(outside, 0700), 0);
	assert_int_equal(symlink(outside, vol2), 0);
	assert_errno(gc(r, NULL, 0, &st), -EBADMSG);
	assert_true(present(r, c));
	assert_int_equal(unlink(vol2), 0);

	/* no volumes directory: not "no index, so all is garbage" */
	assert_errno(repo_gc_run(r->cs, keep(g_build_filename(r->dir, "none",
							     NULL)),
				 NULL, 0, cutoff_now(), NULL, &st),
		     -ENOENT);
	assert_true(present(r, c) && present(r, a));
	assert_int_equal(st.removed, 0);

	/* cancelled before it starts: nothing removed either */
	{
		volatile bool cancel = true;

		assert_errno(repo_gc_run(r->cs, r->volumes, NULL, 0,
					 cutoff_now(), &cancel, &st),
			     -ECANCELED);
		assert_true(present(r, c) && present(r, a));
	}
	/* repaired: the run goes through */
	unit_write_file(idx, content, len);
	assert_errno(gc(r, NULL, 0, &st), 0);
	assert_true(present(r, a) && gone(r, c));
}

/* ---- names that are not chunks ---- */

/* Seed of a chunk whose name does not start with @hex's first 2 digits. */
static uint32_t seed_elsewhere(const char *hex)
{
	for (uint32_t s = 1000;; s++) {
		uint8_t d[DIGEST_LEN];
		char h[DIGEST_HEX_LEN + 1];

		digest_of(s, d);
		digest_to_hex(d, h);
		if (memcmp(h, hex, 2))
			return s;
	}
}

static void test_foreign_names(void **state)
{
	struct repo *r = *state;
	uint8_t c[DIGEST_LEN], o[DIGEST_LEN];
	char hex[DIGEST_HEX_LEN + 1], ohex[DIGEST_HEX_LEN + 1];
	g_autofree char *chunks = g_build_filename(r->dir, ".chunks", NULL);
	g_autofree char *outside = g_build_filename(r->dir, "outside", NULL);
	g_autofree char *cpath = NULL, *fan = NULL, *target = NULL,
			*upper = NULL, *tmp = NULL, *p = NULL;
	struct repo_gc_stats st;
	struct stat sb;

	plant(r, 41, OLD, c);
	digest_to_hex(c, hex);
	cpath = chunkstore_path(r->cs, c);
	fan = g_path_get_dirname(cpath);
	digest_of(seed_elsewhere(hex), o);
	digest_to_hex(o, ohex);
	assert_int_equal(mkdir(outside, 0700), 0);
	/* an old chunk file outside the store, the links' target */
	target = g_build_filename(outside, ohex, NULL);
	assert_true(g_file_get_contents(cpath, &p, NULL, NULL));
	unit_write_file(target, p, CHUNKSTORE_HEADER + SMALL);
	g_clear_pointer(&p, g_free);
	set_mtime_path(target, OLD);

#define OLD_FILE(path)                                                   \
	do {                                                             \
		g_autofree char *p_ = (path);                            \
		unit_write_file(p_, "junk", 4);                          \
		set_mtime_path(p_, OLD);                                 \
	} while (0)
	/* under .chunks: a file, a directory that is not a fan-out one
	 * (holding an old chunk-like file), a link at a fan-out name */
	OLD_FILE(g_build_filename(chunks, "junk", NULL));
	p = g_build_filename(chunks, "zz", NULL);
	assert_int_equal(mkdir(p, 0700), 0);
	OLD_FILE(g_build_filename(p, ohex, NULL));
	g_clear_pointer(&p, g_free);
	p = g_build_filename(chunks, (char[]){ ohex[0], ohex[1], 0 }, NULL);
	assert_int_equal(symlink(outside, p), 0);
	g_clear_pointer(&p, g_free);
	/* in a fan-out directory: a temporary name, an uppercase name, a
	 * chunk name of another directory, a link and a FIFO at chunk names */
	OLD_FILE(g_build_filename(fan, "x.tmp", NULL));
	upper = g_ascii_strup(hex, -1);
	upper[0] = hex[0];
	upper[1] = hex[1];
	if (!strcmp(upper, hex))
		upper[63] = 'G';
	OLD_FILE(g_build_filename(fan, upper, NULL));
	OLD_FILE(g_build_filename(fan, ohex, NULL));
	{
		char lname[DIGEST_HEX_LEN + 1], fname[DIGEST_HEX_LEN + 1];

		memcpy(lname, hex, sizeof(lname));
		lname[63] = lname[63] == '0' ? '1' : '0';
		memcpy(fname, hex, sizeof(fname));
		fname[62] = fname[62] == '0' ? '1' : '0';
		p = g_build_filename(fan, lname, NULL);
		assert_int_equal(symlink(target, p), 0);
		set_mtime_path(p, OLD);
		g_clear_pointer(&p, g_free);
		p = g_build_filename(fan, fname, NULL);
		assert_int_equal(mkfifo(p, 0600), 0);
		set_mtime_path(p, OLD);
		g_clear_pointer(&p, g_free);
	}
	/* in .tmp: an old chunk temporary (goes), a young one, another
	 * program's file, a link at a temporary chunk's name */
	tmp = g_build_filename(r->dir, ".tmp", NULL);
	p = g_build_filename(tmp, "0123456789abcdef.chunk", NULL);
	unit_write_file(p, "half a chunk", 12);
	set_mtime_path(p, OLD);
	g_clear_pointer(&p, g_free);
	unit_write_file(keep(g_build_filename(tmp, "fedcba9876543210.chunk",
					      NULL)),
			"being written", 13);
	OLD_FILE(g_build_filename(tmp, "notes.txt", NULL));
	p = g_build_filename(tmp, "1111111111111111.chunk", NULL);
	assert_int_equal(symlink(target, p), 0);
	g_clear_pointer(&p, g_free);
#undef OLD_FILE

	assert_errno(gc(r, NULL, 0, &st), 0);
	assert_true(gone(r, c));
	assert_int_equal(st.removed, 1);
	/* junk, zz, the link at a fan-out name, x.tmp, the uppercase name,
	 * the other directory's name, the link and the FIFO */
	assert_int_equal(st.foreign, 8);
	assert_int_equal(st.chunks_seen, 1);
	assert_int_equal(st.tmp_removed, 1);
	assert_int_equal(st.bytes_freed, CHUNKSTORE_HEADER + SMALL + 12);
	/* nothing else went, nothing was followed */
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_size, CHUNKSTORE_HEADER + SMALL);
	assert_int_equal(count_files_in(fan), 5);
	assert_int_equal(count_files_in(chunks), 4); /* junk zz link, fan */
	assert_int_equal(
		lstat(keep(g_build_filename(chunks, "zz", ohex, NULL)), &sb), 0);
	assert_int_equal(count_files_in(tmp), 3);
	assert_int_equal(lstat(keep(g_build_filename(tmp, "fedcba9876543210"
							  ".chunk",
						     NULL)),
			       &sb),
			 0);
	assert_int_equal(count_files_in(outside), 1);
}

/* ---- cancellation ---- */

#define MANY 1500

struct gc_thread {
	struct repo *r;
	volatile bool cancel;
	struct repo_gc_stats st;
	int rc;
	gint done;
};

static gpointer gc_thread_main(gpointer arg)
{
	struct gc_thread *t = arg;

	t->rc = repo_gc_run(t->r->cs, t->r->volumes, NULL, 0, cutoff_now(),
			    &t->cancel, &t->st);
	g_atomic_int_set(&t->done, 1);
	return NULL;
}

static void test_cancel_midway(void **state)
{
	struct repo *r = *state;
	g_autofree uint8_t(*named)[DIGEST_LEN] = g_malloc(20 * DIGEST_LEN);
	g_autofree uint8_t(*junk)[DIGEST_LEN] = g_malloc(MANY * DIGEST_LEN);
	g_autofree char **paths = g_new0(char *, MANY);
	const uint8_t *v[20];
	struct gc_thread t = { .r = r };
	struct repo_gc_stats st;
	GThread *th;
	uint64_t left = 0;
	bool seen_gone = false;

	for (int i = 0; i < 20; i++) {
		plant(r, 5000 + i, OLD, named[i]);
		v[i] = named[i];
	}
	write_index(r, "vol", "u.index", v, 20);
	for (int i = 0; i < MANY; i++) {
		plant(r, 6000 + i, OLD, junk[i]);
		paths[i] = chunkstore_path(r->cs, junk[i]);
	}
	th = g_thread_new("gc", gc_thread_main, &t);
	/* cancel as soon as the sweep has removed something */
	while (!seen_gone && !g_atomic_int_get(&t.done)) {
		for (int i = 0; i < MANY && !seen_gone; i++)
			seen_gone = access(paths[i], F_OK) < 0;
		g_thread_yield();
	}
	__atomic_store_n(&t.cancel, true, __ATOMIC_RELAXED);
	g_thread_join(th);
	if (t.rc == 0)
		print_message("# the run ended before it was cancelled\n");
	else
		assert_errno(t.rc, -ECANCELED);

	/* consistent: every named chunk whole, every junk chunk either
	 * whole or gone, and the count of the gone ones is the stats' */
	for (int i = 0; i < 20; i++)
		assert_true(present(r, named[i]));
	for (int i = 0; i < MANY; i++) {
		if (gone(r, junk[i]))
			continue;
		assert_true(present(r, junk[i]));
		left++;
	}
	assert_int_equal(t.st.removed, MANY - left);
	/* the next run finishes the work */
	assert_errno(gc(r, NULL, 0, &st), 0);
	assert_int_equal(st.removed, left);
	for (int i = 0; i < MANY; i++)
		g_free(paths[i]);
}

/* ---- a put racing the sweep of the same chunk ---- */

#define RACE_ROUNDS 2000

struct race {
	struct repo *r;
	pthread_barrier_t start, end;
	uint8_t d[DIGEST_LEN];
	int round;
	int put_rc, sweep_rc;
	bool stop;
};

static gpointer race_put(gpointer arg)
{
	struct race *x = arg;
	g_autofree unsigned char *b = pattern(77);
	uint8_t d[DIGEST_LEN];

	for (;;) {
		pthread_barrier_wait(&x->start);
		if (x->stop)
			return NULL;
		x->put_rc = chunkstore_put(x->r->cs, b, SMALL, d, NULL);
		pthread_barrier_wait(&x->end);
	}
}

static gpointer race_sweep(gpointer arg)
{
	struct race *x = arg;
	struct repo_gc_stats st;
	uint64_t bytes;

	for (;;) {
		pthread_barrier_wait(&x->start);
		if (x->stop)
			return NULL;
		/* the sweep's step itself most rounds (it meets the put at the
		 * lock more often), a whole run in every fourth */
		if (x->round % 4)
			x->sweep_rc = chunkstore_remove_if_older(
				x->r->cs, x->d, cutoff_now(), &bytes);
		else
			x->sweep_rc = repo_gc_run(x->r->cs, x->r->volumes, NULL,
						  0, cutoff_now(), NULL, &st) ?:
					      (int)st.removed;
		pthread_barrier_wait(&x->end);
	}
}

static void test_put_races_sweep(void **state)
{
	struct repo *r = *state;
	struct race x = { .r = r };
	int removed_first = 0;
	GThread *p, *s;

	digest_of(77, x.d);
	pthread_barrier_init(&x.start, NULL, 3);
	pthread_barrier_init(&x.end, NULL, 3);
	p = g_thread_new("put", race_put, &x);
	s = g_thread_new("sweep", race_sweep, &x);
	for (x.round = 0; x.round < RACE_ROUNDS; x.round++) {
		uint8_t d[DIGEST_LEN];

		/* the chunk is there and old: garbage unless the put wins */
		if (gone(r, x.d))
			plant(r, 77, OLD, d);
		else
			set_mtime(r, x.d, OLD);
		pthread_barrier_wait(&x.start);
		pthread_barrier_wait(&x.end);
		assert_errno(x.put_rc, 0);
		assert_true(x.sweep_rc == 0 || x.sweep_rc == 1);
		removed_first += x.sweep_rc == 1;
		/* the put said present: it must be, whatever the order */
		if (!present(r, x.d)) {
			print_error("round %d: the chunk put reported present "
				    "is gone\n",
				    x.round);
			fail();
		}
	}
	x.stop = true;
	pthread_barrier_wait(&x.start);
	g_thread_join(p);
	g_thread_join(s);
	pthread_barrier_destroy(&x.start);
	pthread_barrier_destroy(&x.end);
	print_message("# %d of %d rounds the sweep removed the chunk first\n",
		      removed_first, RACE_ROUNDS);
}

/* ---- crashes: faults and kill -9, in a child process ---- */

#define CRASH_NAMED 6
#define CRASH_JUNK 6

/* A repository for the crash cases: CRASH_NAMED old chunks named by two
 * indexes, CRASH_JUNK old unnamed ones, an old temporary chunk. */
static struct repo *crash_repo(uint8_t named[][DIGEST_LEN],
			       uint8_t junk[][DIGEST_LEN])
{
	struct repo *r = repo_new();
	const uint8_t *v[CRASH_NAMED];
	g_autofree char *tmp = NULL;

	for (int i = 0; i < CRASH_NAMED; i++) {
		plant(r, 100 + i, OLD, named[i]);
		v[i] = named[i];
	}
	write_index(r, "vol1", "a.index", v, CRASH_NAMED / 2);
	write_index(r, "vol2", "b.index", v + CRASH_NAMED / 2,
		    CRASH_NAMED - CRASH_NAMED / 2);
	for (int i = 0; i < CRASH_JUNK; i++)
		plant(r, 200 + i, OLD, junk[i]);
	tmp = g_build_filename(r->dir, ".tmp", "00000000deadbeef.chunk", NULL);
	unit_write_file(tmp, "half", 4);
	set_mtime_path(tmp, OLD);
	return r;
}

/* After a crash: every named chunk whole; return how many junk remain. */
static int check_after_crash(struct repo *r, uint8_t named[][DIGEST_LEN],
			     uint8_t junk[][DIGEST_LEN])
{
	int left = 0;

	for (int i = 0; i < CRASH_NAMED; i++)
		assert_true(present(r, named[i]));
	for (int i = 0; i < CRASH_JUNK; i++) {
		if (gone(r, junk[i]))
			continue;
		assert_true(present(r, junk[i]));
		left++;
	}
	return left;
}

/* The child: one GC of the repository at @root; prints "rc removed". */
static int gc_child(const char *root)
{
	g_autofree char *volumes = g_build_filename(root, "volumes", NULL);
	struct repo_gc_stats st = { 0 };
	struct chunkstore *cs;
	int rc;

	rc = chunkstore_open(root, CS, &cs);
	if (rc == 0) {
		rc = repo_gc_run(cs, volumes, NULL, 0, cutoff_now(), NULL, &st);
		chunkstore_close(cs);
	}
	printf("%d %" G_GUINT64_FORMAT "\n", rc, st.removed);
	return 0;
}

static void run_gc_child(const char *root, const char *var,
			 const char *value, int *rc, int *removed)
{
	char *argv[] = { self_exe, (char *)"--gc-child", (char *)root, NULL };
	g_auto(GStrv) env = g_get_environ();
	g_autofree char *out = NULL;
	g_autoptr(GError) error = NULL;
	int status;

	env = g_environ_unsetenv(env, "SNAPFS_FAULT_AT");
	env = g_environ_unsetenv(env, "SNAPFS_FAULT_POINT");
	env = g_environ_unsetenv(env, "SNAPFS_HANG_AT");
	env = g_environ_setenv(env, var, value, TRUE);
	assert_true(g_spawn_sync(NULL, argv, env, G_SPAWN_STDERR_TO_DEV_NULL,
				 NULL, NULL, &out, NULL, &status, &error));
	assert_true(g_spawn_check_wait_status(status, NULL));
	assert_int_equal(sscanf(out, "%d %d", rc, removed), 2);
}

static void test_fault_points(void **state)
{
	static const char *points[] = { "gc.index", "gc.scan", "gc.stat",
					"gc.unlink" };

	for (size_t i = 0; i < G_N_ELEMENTS(points); i++) {
		uint8_t named[CRASH_NAMED][DIGEST_LEN], junk[CRASH_JUNK][DIGEST_LEN];
		struct repo *r = crash_repo(named, junk);
		int rc, removed;

		run_gc_child(r->dir, "SNAPFS_FAULT_POINT", points[i], &rc,
			     &removed);
		assert_errno(rc, -EIO);
		assert_int_equal(check_after_crash(r, named, junk),
				 CRASH_JUNK - removed);
		if (!strcmp(points[i], "gc.index"))
			assert_int_equal(removed, 0); /* mark comes first */
		/* the next run, without the fault, finishes */
		run_gc_child(r->dir, "SNAPFS_FAULT_POINT", "none", &rc,
			     &removed);
		assert_errno(rc, 0);
		assert_int_equal(check_after_crash(r, named, junk), 0);
		repo_free(r);
	}
}

/* SNAPFS_FAULT_AT=1, 2, ... on a fresh repository each time, until no
 * point fires: whichever step fails, the named chunks are all there. */
static void test_fault_walk(void **state)
{
	int n;

	for (n = 1; n < 200; n++) {
		uint8_t named[CRASH_NAMED][DIGEST_LEN], junk[CRASH_JUNK][DIGEST_LEN];
		struct repo *r = crash_repo(named, junk);
		char at[16];
		int rc, removed, left;

		g_snprintf(at, sizeof(at), "%d", n);
		run_gc_child(r->dir, "SNAPFS_FAULT_AT", at, &rc, &removed);
		left = check_after_crash(r, named, junk);
		assert_int_equal(left, CRASH_JUNK - removed);
		repo_free(r);
		if (rc == 0) {
			assert_int_equal(left, 0);
			break;
		}
		assert_errno(rc, -EIO);
	}
	/* 2 indexes, at most 12 fan-out directories, a stat and an unlink
	 * per junk chunk, an unlink for the temporary chunk */
	assert_true(n > 2 + 1 + 2 * CRASH_JUNK + 1);
	assert_true(n < 200);
	print_message("# %d fault points on a run\n", n - 1);
}

/* kill -9 of a run hanging at "gc.unlink", the fan-out lock held
 * exclusive: the lock dies with it, nothing named is lost, and puts of
 * every chunk (the one it held too) go through. */
static void test_kill_holding_lock(void **state)
{
	uint8_t named[CRASH_NAMED][DIGEST_LEN], junk[CRASH_JUNK][DIGEST_LEN];
	struct repo *r = crash_repo(named, junk);
	char *argv[] = { self_exe, (char *)"--gc-child", r->dir, NULL };
	g_auto(GStrv) env = g_get_environ();
	g_autoptr(GError) error = NULL;
	struct repo_gc_stats st;
	bool hanging = false;
	char *line = NULL;
	size_t cap = 0;
	GPid pid;
	int err_fd, status;
	FILE *err;

	env = g_environ_unsetenv(env, "SNAPFS_FAULT_AT");
	env = g_environ_unsetenv(env, "SNAPFS_FAULT_POINT");
	env = g_environ_setenv(env, "SNAPFS_HANG_AT", "gc.unlink", TRUE);
	/* no GSubprocess: its worker thread is noise under TSan */
	assert_true(g_spawn_async_with_pipes(
		NULL, argv, env,
		G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
		NULL, &pid, NULL, NULL, &err_fd, &error));
	err = fdopen(err_fd, "r");
	assert_non_null(err);
	while (!hanging && getline(&line, &cap, err) > 0)
		hanging = strstr(line, "testpoint: hanging at gc.unlink");
	free(line);
	assert_true(hanging);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	fclose(err);
	g_spawn_close_pid(pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	assert_int_equal(check_after_crash(r, named, junk), CRASH_JUNK);
	for (int i = 0; i < CRASH_JUNK; i++) {
		g_autofree unsigned char *b = pattern(200 + i);
		uint8_t d[DIGEST_LEN];

		assert_errno(chunkstore_put(r->cs, b, SMALL, d, NULL), 0);
	}
	/* they are young now: a run keeps them, removes the temporary */
	assert_errno(gc(r, NULL, 0, &st), 0);
	assert_int_equal(check_after_crash(r, named, junk), CRASH_JUNK);
	assert_int_equal(st.kept_young, CRASH_JUNK);
	assert_int_equal(st.tmp_removed, 1);
	repo_free(r);
}

int main(int argc, char **argv)
{
#define REPO(f) cmocka_unit_test_setup_teardown(f, setup_repo, teardown_repo)
	const struct CMUnitTest tests[] = {
		REPO(test_mark_and_sweep),
		REPO(test_put_and_touch_refresh),
		REPO(test_extra_root),
		REPO(test_bad_index_aborts),
		REPO(test_foreign_names),
		REPO(test_cancel_midway),
		REPO(test_put_races_sweep),
		cmocka_unit_test(test_fault_points),
		cmocka_unit_test(test_fault_walk),
		cmocka_unit_test(test_kill_holding_lock),
	};
#undef REPO
	int rc;

	if (argc == 3 && !strcmp(argv[1], "--gc-child"))
		return gc_child(argv[2]);
	self_exe = g_file_read_link("/proc/self/exe", NULL);
	if (!self_exe) {
		printf("# cannot read /proc/self/exe\n");
		return UNIT_SKIP;
	}
	kept = g_ptr_array_new_with_free_func(g_free);
	rc = unit_run("repo_gc", tests, G_N_ELEMENTS(tests));
	g_ptr_array_unref(kept);
	g_free(self_exe);
	return rc;
}
