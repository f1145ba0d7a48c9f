/*
 * test_rados.c - engine/rados.c against a real one-host Ceph cluster.
 *
 * Run through tests/unit/with-ceph.sh, which starts the cluster
 * (tools/ceph-cluster.sh) in a temporary directory on a free loopback
 * address, passes it in SNAPFS_CEPH_CONF, SNAPFS_CEPH_DIR and
 * SNAPFS_CEPH_POOL, and always stops it; without those variables the
 * program exits 77 (SKIP), never passes.
 *
 * Each case works in a namespace of its own.  Times are the caller's
 * (@now, @cutoff), so nothing sleeps to age an object.  What is covered:
 * whole-object round trips, the exclusive create, missing objects, a
 * touch that never creates, the garbage collector's compare-and-remove
 * (also racing a touch from another thread, many times over), listing by
 * prefix within a namespace, a pool over its quota (-EDQUOT at once, not
 * a hang; removals and touches still work there), and, last, an OSD that
 * stops (-ETIMEDOUT after the 3 s operation timeout).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "log.h"
#include "chunkstore.h"
#include "chunkstore_rados.h"
#include "rados.h"

#define OP_TIMEOUT 10 /* seconds; the stopped-OSD case uses 3 */

static const char *conf, *dir, *pool;

static double monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct rados_store *open_ns(const char *ns, unsigned timeout)
{
	struct rados_store *rs = NULL;

	assert_errno(rados_store_open(conf, NULL, pool, ns, timeout, &rs), 0);
	assert_non_null(rs);
	return rs;
}

static void assert_object(struct rados_store *rs, const char *name,
			  const void *want, size_t want_len, int64_t touched)
{
	g_autofree char *buf = g_malloc(want_len + 1);
	uint64_t size = 0;
	int64_t t = -1;
	size_t len = 0;

	assert_errno(rados_store_get(rs, name, buf, want_len + 1, &len), 0);
	assert_int_equal(len, want_len);
	assert_memory_equal(buf, want, want_len);
	assert_errno(rados_store_stat(rs, name, &size, &t), 0);
	assert_int_equal(size, want_len);
	assert_int_equal(t, touched);
}

/* `rados put` an object without the snapfs.t xattr (as another tool). */
static void put_foreign(const char *ns, const char *name)
{
	char *argv[] = { "rados", "-c", (char *)conf, "-p", (char *)pool,
			 "-N", (char *)ns, "put", (char *)name, "/dev/null",
			 NULL };

	assert_int_equal(unit_spawn(argv, NULL, NULL), 0);
}

static void ceph_cli(const char *a, const char *b, const char *c,
		     const char *d, const char *e, const char *f)
{
	char *argv[] = { "ceph", "-c", (char *)conf, (char *)a, (char *)b,
			 (char *)c, (char *)d, (char *)e, (char *)f, NULL };
	g_autofree char *err = NULL;

	if (unit_spawn(argv, NULL, &err) != 0) {
		print_error("ceph %s %s %s: %s\n", a, b, c, err ? err : "");
		fail();
	}
}

/* ---- open ---- */

static void test_open_errors(void **state)
{
	struct rados_store *rs = NULL;

	assert_errno(rados_store_open(conf, NULL, "no-such-pool", NULL,
				      OP_TIMEOUT, &rs),
		     -ENOENT);
	assert_null(rs);
	assert_errno(rados_store_open("/nonexistent/ceph.conf", NULL, pool,
				      NULL, OP_TIMEOUT, &rs),
		     -ENOENT);
	assert_null(rs);
	rados_store_close(NULL);
}

/* ---- put, get, stat ---- */

static void test_put_get(void **state)
{
	struct rados_store *rs = open_ns("put-get", OP_TIMEOUT);
	size_t big = 3 << 20, len = 0;
	g_autofree char *data = g_malloc(big), *buf = g_malloc(big);

	for (size_t i = 0; i < big; i++)
		data[i] = (char)g_random_int();
	assert_errno(rados_store_put(rs, "obj", data, big, true, 1000), 0);
	assert_object(rs, "obj", data, big, 1000);

	/* a non-exclusive put replaces it whole: shorter, another time */
	assert_errno(rados_store_put(rs, "obj", "hello", 5, false, 2000), 0);
	assert_object(rs, "obj", "hello", 5, 2000);

	/* an empty object */
	assert_errno(rados_store_put(rs, "empty", NULL, 0, true, 3000), 0);
	assert_object(rs, "empty", "", 0, 3000);
	assert_errno(rados_store_get(rs, "empty", buf, 0, &len), 0);
	assert_int_equal(len, 0);

	/* too large for the buffer: -EFBIG, with the size */
	assert_errno(rados_store_get(rs, "obj", buf, 4, &len), -EFBIG);
	assert_int_equal(len, 5);
	assert_errno(rados_store_get(rs, "obj", buf, 0, &len), -EFBIG);

	assert_errno(rados_store_put(rs, "obj", "x", 1, false, -1), -EINVAL);
	rados_store_close(rs);
}

static void test_exclusive_put_existing(void **state)
{
	struct rados_store *rs = open_ns("exclusive", OP_TIMEOUT);

	assert_errno(rados_store_put(rs, "obj", "first", 5, true, 100), 0);
	assert_errno(rados_store_put(rs, "obj", "second!", 7, true, 200),
		     -EEXIST);
	/* nothing of the refused put: not the data, not the time */
	assert_object(rs, "obj", "first", 5, 100);
	rados_store_close(rs);
}

static void test_missing(void **state)
{
	struct rados_store *rs = open_ns("missing", OP_TIMEOUT);
	char buf[16];
	size_t len;

	assert_errno(rados_store_get(rs, "nothing", buf, sizeof(buf), &len),
		     -ENOENT);
	assert_errno(rados_store_stat(rs, "nothing", NULL, NULL), -ENOENT);
	assert_errno(rados_store_remove(rs, "nothing"), -ENOENT);
	assert_errno(rados_store_remove_if_older(rs, "nothing", 1000), -ENOENT);
	rados_store_close(rs);
}

/* ---- touch ---- */

static int count_one(const char *name, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static void test_touch(void **state)
{
	struct rados_store *rs = open_ns("touch", OP_TIMEOUT);
	int n = 0;

	/* a touch never creates */
	assert_errno(rados_store_touch(rs, "gone", 500), -ENOENT);
	assert_errno(rados_store_stat(rs, "gone", NULL, NULL), -ENOENT);
	assert_errno(rados_store_list(rs, NULL, count_one, &n), 0);
	assert_int_equal(n, 0);

	/* it changes the time only */
	assert_errno(rados_store_put(rs, "obj", "data", 4, true, 100), 0);
	assert_errno(rados_store_touch(rs, "obj", 700), 0);
	assert_object(rs, "obj", "data", 4, 700);
	assert_errno(rados_store_touch(rs, "obj", -5), -EINVAL);
	rados_store_close(rs);
}

/* ---- the collector's compare-and-remove ---- */

static void test_remove_if_older(void **state)
{
	struct rados_store *rs = open_ns("gc", OP_TIMEOUT);
	int64_t t = -1;

	assert_errno(rados_store_put(rs, "obj", "data", 4, true, 1000), 0);
	/* not older than the cutoff: kept, whole */
	assert_errno(rados_store_remove_if_older(rs, "obj", 999), -ECANCELED);
	assert_errno(rados_store_remove_if_older(rs, "obj", 1000), -ECANCELED);
	assert_object(rs, "obj", "data", 4, 1000);

	/* old for a later cutoff, but a touch (another host's backup naming
	 * it) comes first: kept */
	assert_errno(rados_store_touch(rs, "obj", 2000), 0);
	assert_errno(rados_store_remove_if_older(rs, "obj", 1500), -ECANCELED);
	assert_object(rs, "obj", "data", 4, 2000);

	/* older than the cutoff: removed */
	assert_errno(rados_store_remove_if_older(rs, "obj", 2001), 0);
	assert_errno(rados_store_stat(rs, "obj", NULL, NULL), -ENOENT);
	assert_errno(rados_store_remove_if_older(rs, "obj", 2001), -ENOENT);

	/* the fixed width orders times of different digit counts: "999" >
	 * "1000" as strings, 999 < 1000 as times */
	assert_errno(rados_store_put(rs, "short", "x", 1, true, 999), 0);
	assert_errno(rados_store_remove_if_older(rs, "short", 1000), 0);
	assert_errno(rados_store_put(rs, "long", "x", 1, true, 10000), 0);
	assert_errno(rados_store_remove_if_older(rs, "long", 9999), -ECANCELED);
	assert_errno(rados_store_remove_if_older(rs, "long", 1700000000), 0);

	/* an object without the xattr (not put here) is older than any
	 * cutoff, and stats as touched at 0 */
	put_foreign("gc", "foreign");
	assert_errno(rados_store_stat(rs, "foreign", NULL, &t), 0);
	assert_int_equal(t, 0);
	assert_errno(rados_store_remove_if_older(rs, "foreign", 0), 0);

	assert_errno(rados_store_remove_if_older(rs, "x", -1), -EINVAL);
	rados_store_close(rs);
}

/*
 * A backup touches an object (at 200) while a collector with cutoff 150
 * removes it if older, from two threads at once, many times: each time
 * exactly one of them wins, and a touch that succeeded always leaves the
 * object there, touched.  Never both, never neither.
 */
struct race {
	struct rados_store *rs;
	pthread_barrier_t go;
	int touch_rc, remove_rc;
};

static void *race_touch(void *arg)
{
	struct race *r = arg;

	pthread_barrier_wait(&r->go);
	r->touch_rc = rados_store_touch(r->rs, "obj", 200);
	return NULL;
}

static void *race_remove(void *arg)
{
	struct race *r = arg;

	pthread_barrier_wait(&r->go);
	r->remove_rc = rados_store_remove_if_older(r->rs, "obj", 150);
	return NULL;
}

static void test_touch_gc_race(void **state)
{
	struct race r = { .rs = open_ns("race", OP_TIMEOUT) };
	int touched_first = 0, removed_first = 0;

	for (int i = 0; i < 200; i++) {
		pthread_t a, b;
		int64_t t = -1;
		int rc;

		assert_errno(rados_store_put(r.rs, "obj", "d", 1, true, 100),
			     0);
		pthread_barrier_init(&r.go, NULL, 2);
		pthread_create(&a, NULL, race_touch, &r);
		pthread_create(&b, NULL, race_remove, &r);
		pthread_join(a, NULL);
		pthread_join(b, NULL);
		pthread_barrier_destroy(&r.go);
		rc = rados_store_stat(r.rs, "obj", NULL, &t);
		if (r.touch_rc == 0) {
			assert_errno(r.remove_rc, -ECANCELED);
			assert_errno(rc, 0);
			assert_int_equal(t, 200);
			touched_first++;
			assert_errno(rados_store_remove(r.rs, "obj"), 0);
		} else {
			assert_errno(r.touch_rc, -ENOENT);
			assert_errno(r.remove_rc, 0);
			assert_errno(rc, -ENOENT);
			removed_first++;
		}
	}
	printf("# race: touch first %d times, remove first %d times\n",
	       touched_first, removed_first);
	rados_store_close(r.rs);
}

/* ---- list ---- */

struct names {
	GPtrArray *names;
	int stop_after; /* 0: never */
};

static int collect(const char *name, void *arg)
{
	struct names *n = arg;

	g_ptr_array_add(n->names, g_strdup(name));
	if (n->stop_after && (int)n->names->len == n->stop_after)
		return -ECANCELED;
	return 0;
}

static gint cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_list(void **state)
{
	struct rados_store *rs = open_ns("list", OP_TIMEOUT);
	struct rados_store *other = open_ns("list-other", OP_TIMEOUT);
	struct names n = { g_ptr_array_new_with_free_func(g_free), 0 };

	assert_errno(rados_store_put(rs, "chunks/aa", "1", 1, true, 1), 0);
	assert_errno(rados_store_put(rs, "chunks/ab", "2", 1, true, 1), 0);
	assert_errno(rados_store_put(rs, "indexes/x", "3", 1, true, 1), 0);
	assert_errno(rados_store_put(rs, "chunk", "4", 1, true, 1), 0);
	/* another namespace of the same pool is not listed */
	assert_errno(rados_store_put(other, "chunks/zz", "5", 1, true, 1), 0);

	assert_errno(rados_store_list(rs, "chunks/", collect, &n), 0);
	g_ptr_array_sort(n.names, cmp_str);
	assert_int_equal(n.names->len, 2);
	assert_string_equal(n.names->pdata[0], "chunks/aa");
	assert_string_equal(n.names->pdata[1], "chunks/ab");

	g_ptr_array_set_size(n.names, 0);
	assert_errno(rados_store_list(rs, "", collect, &n), 0);
	assert_int_equal(n.names->len, 4);

	/* the callback stops the listing with its code */
	g_ptr_array_set_size(n.names, 0);
	n.stop_after = 2;
	assert_errno(rados_store_list(rs, NULL, collect, &n), -ECANCELED);
	assert_int_equal(n.names->len, 2);

	g_ptr_array_free(n.names, true);
	rados_store_close(other);
	rados_store_close(rs);
}

/* ---- a full pool ---- */

static void test_full_pool(void **state)
{
	const char *full = "unit-full";
	struct rados_store *rs;
	size_t big = 2 << 20;
	g_autofree char *data = g_malloc0(big);
	double t0, flagged;
	int rc = 0, i;

	ceph_cli("osd", "pool", "create", full, "8", "8");
	ceph_cli("osd", "pool", "application", "enable", full, "rados");
	ceph_cli("osd", "pool", "set-quota", full, "max_bytes", "1048576");
	assert_errno(rados_store_open(conf, NULL, full, NULL, OP_TIMEOUT, &rs),
		     0);
	/* over the quota at once; the monitor flags the pool a few seconds
	 * later (it sees usage through the manager's statistics) */
	assert_errno(rados_store_put(rs, "big", data, big, true, 100), 0);
	t0 = monotonic();
	for (i = 0; monotonic() - t0 < 60; i++) {
		char name[32];

		g_snprintf(name, sizeof(name), "tick.%d", i);
		rc = rados_store_put(rs, name, "x", 1, true, 100);
		if (rc != 0)
			break;
		g_usleep(100000);
	}
	flagged = monotonic() - t0;
	printf("# pool over its quota flagged full after %.1f s\n", flagged);
	assert_errno(rc, -EDQUOT);

	/* a write fails at once (FULL_TRY), it does not wait for space */
	t0 = monotonic();
	assert_errno(rados_store_put(rs, "more", "x", 1, true, 100), -EDQUOT);
	assert_true(monotonic() - t0 < 2);
	assert_errno(rados_store_stat(rs, "more", NULL, NULL), -ENOENT);

	/* what takes no space still works: reads, a touch, both removals */
	assert_errno(rados_store_touch(rs, "tick.0", 300), 0);
	assert_errno(rados_store_stat(rs, "tick.0", NULL, NULL), 0);
	assert_errno(rados_store_remove_if_older(rs, "tick.0", 200),
		     -ECANCELED);
	assert_errno(rados_store_remove_if_older(rs, "big", 200), 0);
	assert_errno(rados_store_remove(rs, "tick.0"), 0);
	rados_store_close(rs);
}

/* ---- the chunk store on RADOS (chunkstore_rados.c) ---- */

struct seen {
	GHashTable *names;
};

static int seen_one(struct chunkstore *cs, const uint8_t d[DIGEST_LEN],
		    void *arg)
{
	char hex[DIGEST_HEX_LEN + 1];

	digest_to_hex(d, hex);
	g_hash_table_add(((struct seen *)arg)->names, g_strdup(hex));
	return 0;
}

static void test_chunks(void **state)
{
	struct rados_store *rs = open_ns("chunks", OP_TIMEOUT);
	const uint32_t csize = 64 << 10;
	g_autofree uint8_t *a = g_malloc(csize), *buf = g_malloc(csize);
	g_autofree uint8_t *zero = g_malloc0(csize);
	uint8_t da[DIGEST_LEN], dz[DIGEST_LEN], d2[DIGEST_LEN];
	char name[CHUNK_OBJECT_NAME], hex[DIGEST_HEX_LEN + 1];
	struct seen seen = { g_hash_table_new_full(g_str_hash, g_str_equal,
						   g_free, NULL) };
	struct chunkstore_batch *b = NULL;
	struct chunkstore *cs = NULL;
	uint64_t written = 0, reused = 0, foreign = 0, bytes = 0;
	bool w = true, staged = true;
	int64_t t0 = -1, t1 = -1;
	size_t len = 0;

	assert_errno(chunkstore_open_rados(rs, "rados:test", 1000, &cs),
		     -EINVAL);
	assert_errno(chunkstore_open_rados(rs, "rados:test", csize, &cs), 0);
	for (uint32_t i = 0; i < csize; i++)
		a[i] = (uint8_t)g_random_int();

	/* a hole is stored as nothing */
	assert_errno(chunkstore_put(cs, zero, csize, dz, &w), 0);
	assert_true(digest_is_zero(dz));
	assert_false(w);

	/* a new chunk: written whole, under its name, marked young */
	assert_errno(chunkstore_put(cs, a, 1000, da, &w), 0);
	assert_true(w);
	chunk_object_name(da, name);
	digest_to_hex(da, hex);
	assert_true(g_str_has_prefix(name, ".chunks/"));
	assert_int_equal(strncmp(name + 8, hex, 2), 0);
	assert_errno(rados_store_stat(rs, name, NULL, &t0), 0);
	assert_true(t0 > 0);
	assert_int_equal(chunkstore_has(cs, da), 1);
	assert_errno(chunkstore_get(cs, da, buf, csize, &len), 0);
	assert_int_equal(len, 1000);
	assert_memory_equal(buf, a, 1000);
	assert_errno(chunkstore_get(cs, da, buf, 10, &len), -ERANGE);

	/* the same content again: nothing written, the chunk touched */
	assert_errno(rados_store_touch(rs, name, 1000), 0);
	assert_errno(chunkstore_put(cs, a, 1000, d2, &w), 0);
	assert_false(w);
	assert_memory_equal(d2, da, DIGEST_LEN);
	assert_errno(rados_store_stat(rs, name, NULL, &t1), 0);
	assert_true(t1 >= t0);

	/* GC: young kept, old removed; a touch of a gone chunk fails */
	assert_int_equal(chunkstore_remove_if_older(cs, da, 1000, &bytes), 0);
	assert_errno(chunkstore_touch(cs, da), 0);
	assert_int_equal(chunkstore_remove_if_older(cs, da, t1 + 3600, &bytes),
			 1);
	assert_int_equal(bytes, CHUNKSTORE_HEADER + 1000);
	assert_int_equal(chunkstore_has(cs, da), 0);
	assert_errno(chunkstore_touch(cs, da), -ENOENT);
	assert_errno(chunkstore_get(cs, da, buf, csize, &len), -ENOENT);

	/* a batch puts at each add; a new chunk is "staged" (the commit
	 * counts it as written), one present is not (its caller counts it
	 * as reused) */
	assert_errno(chunkstore_batch_new(cs, &b), 0);
	assert_errno(chunkstore_batch_add(b, a, csize, d2, &staged, NULL), 0);
	assert_true(staged);
	assert_errno(chunkstore_batch_add(b, a, 1000, da, &staged, NULL), 0);
	assert_true(staged);
	assert_errno(chunkstore_batch_add(b, a, csize, d2, &staged, NULL), 0);
	assert_false(staged);
	assert_errno(chunkstore_batch_commit(b, &written, &reused), 0);
	assert_int_equal(written, 2);
	chunkstore_batch_free(b);
	assert_int_equal(chunkstore_has(cs, d2), 1);

	/* the scan names both, and leaves other names alone */
	assert_errno(rados_store_put(rs, ".chunks/zz/not-a-chunk", "x", 1,
				     false, 1), 0);
	assert_errno(chunkstore_scan(cs, seen_one, &seen, &foreign), 0);
	assert_int_equal(g_hash_table_size(seen.names), 2);
	assert_true(g_hash_table_contains(seen.names, hex));
	assert_int_equal(foreign, 1);

	/* damage: each is -EBADMSG, never a crash */
	{
		uint8_t obj[CHUNKSTORE_HEADER + 1000];
		uint32_t raw = GUINT32_TO_LE(1000);

		memcpy(obj, CHUNKSTORE_MAGIC, 8);
		memset(obj + 8, 0, 4);
		memcpy(obj + 12, &raw, 4);
		memcpy(obj + CHUNKSTORE_HEADER, a, 1000);
		obj[CHUNKSTORE_HEADER] ^= 1; /* content not its name's */
		assert_errno(rados_store_put(rs, name, obj, sizeof(obj), false,
					     1), 0);
		assert_errno(chunkstore_get(cs, da, buf, csize, &len), -EBADMSG);
		assert_errno(rados_store_put(rs, name, obj, 100, false, 1), 0);
		assert_errno(chunkstore_get(cs, da, buf, csize, &len), -EBADMSG);
		obj[0] = 'X'; /* bad magic */
		assert_errno(rados_store_put(rs, name, obj, sizeof(obj), false,
					     1), 0);
		assert_errno(chunkstore_get(cs, da, buf, csize, &len), -EBADMSG);
		assert_errno(rados_store_put(rs, name, obj, 4, false, 1), 0);
		assert_errno(chunkstore_get(cs, da, buf, csize, &len), -EBADMSG);
	}
	/* a removed damaged chunk is healed by the next put */
	assert_errno(chunkstore_remove(cs, da), 0);
	assert_errno(chunkstore_remove(cs, da), -ENOENT);
	assert_errno(chunkstore_put(cs, a, 1000, da, &w), 0);
	assert_true(w);
	assert_errno(chunkstore_get(cs, da, buf, csize, &len), 0);

	g_hash_table_destroy(seen.names);
	chunkstore_close(cs);
	rados_store_close(rs);
}

/* ---- an OSD that stops (last: the cluster is left without it) ---- */

static void test_osd_stopped(void **state)
{
	struct rados_store *rs = open_ns("stopped", 3);
	g_autofree char *pidfile = g_build_filename(dir, "run", "osd.0.pid",
						    NULL);
	g_autofree char *text = NULL;
	char buf[16];
	size_t len;
	double t0, took;
	pid_t pid;

	assert_errno(rados_store_put(rs, "obj", "data", 4, true, 100), 0);
	assert_true(g_file_get_contents(pidfile, &text, NULL, NULL));
	pid = (pid_t)atoi(text);
	assert_true(pid > 1);
	assert_int_equal(kill(pid, SIGTERM), 0);
	t0 = monotonic();
	while (kill(pid, 0) == 0 && monotonic() - t0 < 30)
		g_usleep(50000);
	assert_int_not_equal(kill(pid, 0), 0);

	t0 = monotonic();
	assert_errno(rados_store_put(rs, "obj2", "data", 4, true, 100),
		     -ETIMEDOUT);
	took = monotonic() - t0;
	printf("# put with the OSD stopped: -ETIMEDOUT after %.1f s\n", took);
	assert_true(took >= 2.5 && took < 10);
	assert_errno(rados_store_get(rs, "obj", buf, sizeof(buf), &len),
		     -ETIMEDOUT);
	assert_errno(rados_store_touch(rs, "obj", 200), -ETIMEDOUT);
	rados_store_close(rs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_put_get),
		cmocka_unit_test(test_exclusive_put_existing),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_touch),
		cmocka_unit_test(test_remove_if_older),
		cmocka_unit_test(test_touch_gc_race),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_full_pool),
		cmocka_unit_test(test_chunks),
		cmocka_unit_test(test_osd_stopped),
	};

	conf = getenv("SNAPFS_CEPH_CONF");
	dir = getenv("SNAPFS_CEPH_DIR");
	pool = getenv("SNAPFS_CEPH_POOL");
	if (!conf || !dir || !pool) {
		printf("# no Ceph cluster: run through tests/unit/with-ceph.sh\n");
		return UNIT_SKIP;
	}
	/* the module's errors on stderr (the expected ones too: each is
	 * logged once); librados itself logs nothing there */
	snap_log_open(NULL, LOG_ERR, LOG_ERR);
	return unit_run("rados", tests, G_N_ELEMENTS(tests));
}
