/*
 * test_chunkstore.c - engine/chunkstore.c on a temporary root: chunks go
 * in and come back whole; a chunk of zeros is never stored; the same
 * content is written once; every kind of damage or hostile content a
 * reader can meet (truncated, a flipped byte, a wrong magic, unknown or
 * zstd flags, a length out of range, a chunk under another digest's name,
 * a symbolic link, a FIFO or a directory at a chunk's name or a fan-out
 * directory's) gives -EBADMSG, a missing chunk -ENOENT, and never a crash
 * or a hang; a name that is not 64 lowercase hex digits is nobody's.
 *
 * Faults: fault() fires once per process, so the fault cases run this
 * program again as a child (--put-child ROOT) that puts one chunk, with
 * SNAPFS_FAULT_POINT set to each of "chunk.write", "chunk.fsync",
 * "chunk.rename", and with SNAPFS_FAULT_AT walked from 1 upward until no
 * point fires (the faultsim walk of STYLE.md); after each failing run no
 * chunk file exists and .tmp is empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>

#include "unit.h"
#include "chunkstore.h"
#include "digest.h"

#define CS (1u << 20) /* the tests' chunk size */
#define CHILD_LEN 100000

struct root {
	char *dir;
	struct chunkstore *cs;
};

static int setup_root(void **state)
{
	struct root *r = g_new0(struct root, 1);
	g_autoptr(GError) error = NULL;

	r->dir = g_dir_make_tmp("snapfs-unit-XXXXXX", &error);
	if (!r->dir || chunkstore_open(r->dir, CS, &r->cs) < 0) {
		g_free(r->dir);
		g_free(r);
		return -1;
	}
	*state = r;
	return 0;
}

static int teardown_root(void **state)
{
	struct root *r = *state;

	chunkstore_close(r->cs);
	unit_tmpdir_remove(r->dir);
	g_free(r);
	return 0;
}

/* @len bytes of a pattern that depends on @seed (g_free). */
static unsigned char *pattern(size_t len, uint32_t seed)
{
	unsigned char *b = g_malloc(len ? len : 1);
	uint32_t x = seed ? seed : 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13; /* xorshift32 */
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (unsigned char)x;
	}
	return b;
}

/* The number of entries in @dir (0 when it does not exist). */
static int count_entries(const char *dir)
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

/* The number of files in all fan-out directories of ROOT/.chunks. */
static int count_chunks(const char *root)
{
	g_autofree char *chunks = g_build_filename(root, ".chunks", NULL);
	GDir *d = g_dir_open(chunks, 0, NULL);
	const char *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = g_dir_read_name(d))) {
		g_autofree char *sub = g_build_filename(chunks, e, NULL);

		if (g_file_test(sub, G_FILE_TEST_IS_DIR))
			n += count_entries(sub);
		else
			n++; /* not a fan-out directory: counts too */
	}
	g_dir_close(d);
	return n;
}

static int count_tmp(const char *root)
{
	g_autofree char *tmp = g_build_filename(root, ".tmp", NULL);

	return count_entries(tmp);
}

/* Put @len pattern bytes of @seed; the test fails unless it returns 0. */
static void put_pattern(struct root *r, size_t len, uint32_t seed,
			uint8_t d[DIGEST_LEN], bool *written)
{
	g_autofree unsigned char *b = pattern(len, seed);

	assert_errno(chunkstore_put(r->cs, b, len, d, written), 0);
}

/* chunkstore_get() of @d; its return code. */
static int get(struct root *r, const uint8_t d[DIGEST_LEN])
{
	g_autofree unsigned char *buf = g_malloc(CS);
	size_t len = 0;

	return chunkstore_get(r->cs, d, buf, CS, &len);
}

/* Overwrite @len bytes at @off of the file at @path. */
static void patch(const char *path, off_t off, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, len, off), (ssize_t)len);
	close(fd);
}

/* ---- open ---- */

static void test_open(void **state)
{
	static const uint32_t bad[] = { 0, 1, 4096, 32u << 10, 3u << 20,
					(64u << 20) + 1, 128u << 20 };
	g_autofree char *dir = unit_tmpdir();
	g_autofree char *chunks = g_build_filename(dir, ".chunks", NULL);
	g_autofree char *tmp = g_build_filename(dir, ".tmp", NULL);
	g_autofree char *missing = g_build_filename(dir, "no", NULL);
	struct chunkstore *cs = NULL;
	struct stat st;

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		assert_errno(chunkstore_open(dir, bad[i], &cs), -EINVAL);
	assert_errno(chunkstore_open(missing, CS, &cs), -ENOENT);

	assert_errno(chunkstore_open(dir, CHUNKSTORE_SIZE_MIN, &cs), 0);
	assert_int_equal(chunkstore_chunk_size(cs), CHUNKSTORE_SIZE_MIN);
	chunkstore_close(cs);
	assert_errno(chunkstore_open(dir, CHUNKSTORE_SIZE_MAX, &cs), 0);
	chunkstore_close(cs);
	chunkstore_close(NULL);
	assert_int_equal(stat(chunks, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(tmp, &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	/* .chunks planted as a symbolic link to somewhere else */
	assert_int_equal(rmdir(chunks), 0);
	assert_int_equal(symlink("/tmp", chunks), 0);
	assert_true(chunkstore_open(dir, CS, &cs) < 0);
	unit_tmpdir_remove(g_steal_pointer(&dir));
}

/* ---- put and get ---- */

static void test_round_trip(void **state)
{
	static const size_t lens[] = { 1, 4095, 12345, CS - 1, CS };
	struct root *r = *state;
	g_autofree unsigned char *buf = g_malloc(CS);

	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
		g_autofree unsigned char *b = pattern(lens[i], 7 + i);
		uint8_t d[DIGEST_LEN], want[DIGEST_LEN];
		g_autofree char *path = NULL;
		unsigned char hdr[CHUNKSTORE_HEADER];
		bool written = false;
		size_t len = 0;
		struct stat st;
		FILE *f;

		assert_errno(chunkstore_put(r->cs, b, lens[i], d, &written), 0);
		assert_true(written);
		assert_errno(digest_sha256(b, lens[i], want), 0);
		assert_memory_equal(d, want, DIGEST_LEN);
		assert_int_equal(chunkstore_has(r->cs, d), 1);

		/* the file: header, then the content as it is */
		path = chunkstore_path(r->cs, d);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, CHUNKSTORE_HEADER + lens[i]);
		assert_int_equal(st.st_mode & 0777, 0600);
		f = fopen(path, "rb");
		assert_non_null(f);
		assert_int_equal(fread(hdr, 1, sizeof(hdr), f), sizeof(hdr));
		fclose(f);
		assert_memory_equal(hdr, "SNAPCHK1\0\0\0\0", 12);
		assert_int_equal(hdr[12] | hdr[13] << 8 | hdr[14] << 16 |
					 (uint32_t)hdr[15] << 24,
				 lens[i]);

		memset(buf, 0xee, CS);
		assert_errno(chunkstore_get(r->cs, d, buf, CS, &len), 0);
		assert_int_equal(len, lens[i]);
		assert_memory_equal(buf, b, lens[i]);
		/* a buffer of exactly the chunk's length is enough */
		assert_errno(chunkstore_get(r->cs, d, buf, lens[i], &len), 0);
	}
	assert_int_equal(count_chunks(r->dir), G_N_ELEMENTS(lens));
	assert_int_equal(count_tmp(r->dir), 0);
}

static void test_put_rejects_length(void **state)
{
	struct root *r = *state;
	g_autofree unsigned char *b = pattern(CS + 1, 3);
	uint8_t d[DIGEST_LEN];
	bool written = true;

	assert_errno(chunkstore_put(r->cs, b, 0, d, &written), -EINVAL);
	assert_false(written);
	assert_errno(chunkstore_put(r->cs, b, CS + 1, d, &written), -EINVAL);
	assert_int_equal(count_chunks(r->dir), 0);
}

static void test_get_buffer_too_small(void **state)
{
	struct root *r = *state;
	uint8_t d[DIGEST_LEN];
	unsigned char small[100];
	size_t len = 0;

	put_pattern(r, 101, 5, d, NULL);
	assert_errno(chunkstore_get(r->cs, d, small, sizeof(small), &len),
		     -ERANGE);
}

static void test_zero_chunk_not_stored(void **state)
{
	struct root *r = *state;
	g_autofree unsigned char *z = g_malloc0(CS);
	uint8_t d[DIGEST_LEN];
	bool written = true;

	memset(d, 0xff, sizeof(d));
	assert_errno(chunkstore_put(r->cs, z, CS, d, &written), 0);
	assert_false(written);
	assert_true(digest_is_zero(d));
	/* a short one too (a volume's last chunk) */
	assert_errno(chunkstore_put(r->cs, z, 1, d, &written), 0);
	assert_true(digest_is_zero(d));
	assert_false(written);
	assert_int_equal(count_chunks(r->dir), 0);
	assert_int_equal(count_tmp(r->dir), 0);

	/* the hole is always "there", but has no content to read */
	assert_int_equal(chunkstore_has(r->cs, d), 1);
	assert_errno(get(r, d), -EINVAL);
	assert_errno(chunkstore_remove(r->cs, d), -EINVAL);

	/* one non-zero byte anywhere, even the last, makes a real chunk */
	z[CS - 1] = 1;
	assert_errno(chunkstore_put(r->cs, z, CS, d, &written), 0);
	assert_true(written);
	assert_false(digest_is_zero(d));
	assert_int_equal(count_chunks(r->dir), 1);
}

static void test_same_content_written_once(void **state)
{
	struct root *r = *state;
	uint8_t d1[DIGEST_LEN], d2[DIGEST_LEN];
	g_autofree char *path = NULL;
	struct stat st1, st2;
	bool written = false;

	put_pattern(r, 5000, 11, d1, &written);
	assert_true(written);
	path = chunkstore_path(r->cs, d1);
	assert_int_equal(stat(path, &st1), 0);
	put_pattern(r, 5000, 11, d2, &written);
	assert_false(written);
	assert_memory_equal(d1, d2, DIGEST_LEN);
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_int_equal(count_chunks(r->dir), 1);
	assert_int_equal(count_tmp(r->dir), 0);
	/* @written may be NULL */
	put_pattern(r, 5000, 11, d2, NULL);
}

/* Many chunks touched at once: each present one young again, the gone
 * ones and only those flagged, holes neither. */
static void test_touch_many(void **state)
{
	struct root *r = *state;
	uint8_t d[5][DIGEST_LEN] = { { 0 } };
	struct timespec old[2] = { { 1000000, 0 }, { 1000000, 0 } };
	bool gone[5] = { true, true, true, true, true };
	struct stat st;

	for (int i = 0; i < 4; i++)
		if (i != 1) /* d[1]: a hole */
			put_pattern(r, 5000 + i, 20 + i, d[i], NULL);
	for (int i = 0; i < 4; i++) {
		g_autofree char *p = i == 1 ? NULL : chunkstore_path(r->cs, d[i]);

		if (p)
			assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
	}
	/* d[3] is gone; d[4] was never stored */
	assert_errno(chunkstore_remove(r->cs, d[3]), 0);
	put_pattern(r, 7000, 99, d[4], NULL);
	assert_errno(chunkstore_remove(r->cs, d[4]), 0);
	assert_errno(chunkstore_touch_many(r->cs, (const uint8_t (*)[DIGEST_LEN])d,
					   5, gone), 0);
	assert_false(gone[0]);
	assert_false(gone[1]);
	assert_false(gone[2]);
	assert_true(gone[3]);
	assert_true(gone[4]);
	for (int i = 0; i < 3; i += 2) {
		g_autofree char *p = chunkstore_path(r->cs, d[i]);

		assert_int_equal(stat(p, &st), 0);
		assert_true(st.st_mtim.tv_sec > 1000000);
	}
	assert_errno(chunkstore_touch_many(r->cs, NULL, 0, gone), 0);
}

struct racer {
	struct chunkstore *cs;
	const unsigned char *data;
	int rc;
	bool written;
};

static gpointer race_put(gpointer arg)
{
	struct racer *x = arg;
	uint8_t d[DIGEST_LEN];

	x->rc = chunkstore_put(x->cs, x->data, CS, d, &x->written);
	return NULL;
}

/* Four threads put the same new content at once: all succeed, one file. */
static void test_concurrent_puts(void **state)
{
	struct root *r = *state;
	g_autofree unsigned char *b = pattern(CS, 99);

	for (int round = 0; round < 4; round++) {
		struct racer x[4];
		GThread *t[4];
		int wrote = 0;

		b[0] = (unsigned char)round; /* new content each round */
		for (int i = 0; i < 4; i++) {
			x[i] = (struct racer){ r->cs, b, -1, false };
			t[i] = g_thread_new("put", race_put, &x[i]);
		}
		for (int i = 0; i < 4; i++) {
			g_thread_join(t[i]);
			assert_errno(x[i].rc, 0);
			wrote += x[i].written;
		}
		assert_int_equal(wrote, 1);
	}
	assert_int_equal(count_chunks(r->dir), 4);
	assert_int_equal(count_tmp(r->dir), 0);
}

/* ---- damage and hostile content ---- */

static void test_missing(void **state)
{
	struct root *r = *state;
	uint8_t d[DIGEST_LEN], other[DIGEST_LEN];
	g_autofree char *path = NULL;

	/* no fan-out directory at all */
	assert_errno(digest_sha256("nothing", 7, d), 0);
	assert_int_equal(chunkstore_has(r->cs, d), 0);
	assert_errno(get(r, d), -ENOENT);
	assert_errno(chunkstore_remove(r->cs, d), -ENOENT);

	/* its fan-out directory exists, the name does not */
	put_pattern(r, 300, 1, other, NULL);
	memcpy(d, other, DIGEST_LEN);
	d[31] ^= 1;
	assert_int_equal(chunkstore_has(r->cs, d), 0);
	assert_errno(get(r, d), -ENOENT);
	assert_errno(chunkstore_remove(r->cs, d), -ENOENT);

	/* removed: gone, and removing again says so */
	assert_errno(chunkstore_remove(r->cs, other), 0);
	assert_int_equal(chunkstore_has(r->cs, other), 0);
	assert_errno(get(r, other), -ENOENT);
	assert_errno(chunkstore_remove(r->cs, other), -ENOENT);
	path = chunkstore_path(r->cs, other);
	assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
}

static void test_truncated(void **state)
{
	struct root *r = *state;
	static const off_t sizes[] = { 0, 10, CHUNKSTORE_HEADER,
				       CHUNKSTORE_HEADER + 1,
				       CHUNKSTORE_HEADER + 4999 };
	uint8_t d[DIGEST_LEN];
	g_autofree char *path = NULL;

	put_pattern(r, 5000, 21, d, NULL);
	path = chunkstore_path(r->cs, d);
	for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
		assert_int_equal(truncate(path, sizes[i]), 0);
		assert_errno(get(r, d), -EBADMSG);
		/* has looks at the name only */
		assert_int_equal(chunkstore_has(r->cs, d), 1);
	}
}

static void test_flipped_bytes(void **state)
{
	struct root *r = *state;
	uint8_t d[DIGEST_LEN];
	g_autofree char *path = NULL;
	/* offsets: magic, flags, length, first, middle and last content byte */
	static const off_t at[] = { 0, 7, 8, 12, 15, CHUNKSTORE_HEADER,
				    CHUNKSTORE_HEADER + 2500,
				    CHUNKSTORE_HEADER + 4999 };

	put_pattern(r, 5000, 31, d, NULL);
	path = chunkstore_path(r->cs, d);
	for (size_t i = 0; i < G_N_ELEMENTS(at); i++) {
		g_autofree char *orig = NULL;
		gsize n;
		unsigned char c;

		assert_true(g_file_get_contents(path, &orig, &n, NULL));
		c = (unsigned char)orig[at[i]] ^ 0x40;
		patch(path, at[i], &c, 1);
		assert_errno(get(r, d), -EBADMSG);
		unit_write_file(path, orig, n);
		assert_errno(get(r, d), 0);
	}
}

static void test_bad_header_fields(void **state)
{
	struct root *r = *state;
	uint8_t d[DIGEST_LEN];
	g_autofree char *path = NULL;
	/* zstd (in the format, not written by this version), an unknown bit */
	static const uint32_t flags[] = { CHUNKSTORE_FLAG_ZSTD, 2, 0x80000000u };
	/* 0, one more or less than the content, over the chunk size */
	static const uint32_t lens[] = { 0, 4999, 5001, CS + 1, 0xffffffffu };
	uint32_t le;

	put_pattern(r, 5000, 41, d, NULL);
	path = chunkstore_path(r->cs, d);
	patch(path, 0, "SNAPCHK2", 8);
	assert_errno(get(r, d), -EBADMSG);
	patch(path, 0, "snapchk1", 8);
	assert_errno(get(r, d), -EBADMSG);
	patch(path, 0, "SNAPCHK1", 8);
	assert_errno(get(r, d), 0);

	for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
		le = GUINT32_TO_LE(flags[i]);
		patch(path, 8, &le, 4);
		assert_errno(get(r, d), -EBADMSG);
	}
	le = 0;
	patch(path, 8, &le, 4);
	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
		le = GUINT32_TO_LE(lens[i]);
		patch(path, 12, &le, 4);
		assert_errno(get(r, d), -EBADMSG);
	}
	le = GUINT32_TO_LE(5000);
	patch(path, 12, &le, 4);
	assert_errno(get(r, d), 0);

	/* one byte more than the header says */
	{
		int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, "x", 1), 1);
		close(fd);
	}
	assert_errno(get(r, d), -EBADMSG);
}

/* A whole, valid chunk file under another digest's name. */
static void test_renamed_chunk(void **state)
{
	struct root *r = *state;
	uint8_t a[DIGEST_LEN], b[DIGEST_LEN];
	g_autofree char *pa = NULL, *pb = NULL;

	put_pattern(r, 7000, 51, a, NULL);
	put_pattern(r, 7000, 52, b, NULL);
	pa = chunkstore_path(r->cs, a);
	pb = chunkstore_path(r->cs, b);
	assert_int_equal(unlink(pb), 0);
	/* pb may be in another fan-out directory: copy, not rename */
	{
		g_autofree char *content = NULL;
		gsize n;

		assert_true(g_file_get_contents(pa, &content, &n, NULL));
		unit_write_file(pb, content, n);
	}
	assert_int_equal(chunkstore_has(r->cs, b), 1);
	assert_errno(get(r, b), -EBADMSG);
	assert_errno(get(r, a), 0);

	/* healing: remove the damaged one, put the content again */
	assert_errno(chunkstore_remove(r->cs, b), 0);
	{
		bool written = false;
		uint8_t again[DIGEST_LEN];

		put_pattern(r, 7000, 52, again, &written);
		assert_true(written);
		assert_memory_equal(again, b, DIGEST_LEN);
	}
	assert_errno(get(r, b), 0);
}

static void test_planted_symlink(void **state)
{
	struct root *r = *state;
	uint8_t a[DIGEST_LEN], b[DIGEST_LEN];
	g_autofree char *pa = NULL, *pb = NULL;
	g_autofree char *outside = g_build_filename(r->dir, "outside", NULL);
	g_autofree unsigned char *content = pattern(6000, 62);
	bool written = true;

	/* a link at b's name to a file outside the repository that holds a
	 * valid copy of chunk b: still refused */
	put_pattern(r, 6000, 61, a, NULL);
	put_pattern(r, 6000, 62, b, NULL);
	pa = chunkstore_path(r->cs, a);
	pb = chunkstore_path(r->cs, b);
	{
		g_autofree char *copy = NULL;
		gsize n;

		assert_true(g_file_get_contents(pb, &copy, &n, NULL));
		unit_write_file(outside, copy, n);
	}
	assert_int_equal(unlink(pb), 0);
	assert_int_equal(symlink(outside, pb), 0);
	assert_errno(get(r, b), -EBADMSG);
	assert_errno(chunkstore_has(r->cs, b), -EBADMSG);
	/* put neither writes through it nor replaces it */
	assert_errno(chunkstore_put(r->cs, content, 6000, b, &written),
		     -EBADMSG);
	assert_false(written);
	assert_true(g_file_test(pb, G_FILE_TEST_IS_SYMLINK));
	/* remove takes the link away, not its target */
	assert_errno(chunkstore_remove(r->cs, b), 0);
	assert_true(g_file_test(outside, G_FILE_TEST_IS_REGULAR));
	assert_int_equal(chunkstore_has(r->cs, b), 0);

	/* a dangling link */
	assert_int_equal(symlink("/nonexistent", pb), 0);
	assert_errno(get(r, b), -EBADMSG);
	assert_int_equal(unlink(pb), 0);

	/* a fan-out directory replaced by a link to a copy of itself */
	{
		g_autofree char *fan = g_path_get_dirname(pa);
		g_autofree char *moved = g_build_filename(r->dir, "fan", NULL);

		assert_int_equal(rename(fan, moved), 0);
		assert_int_equal(symlink(moved, fan), 0);
		assert_errno(get(r, a), -EBADMSG);
		assert_errno(chunkstore_has(r->cs, a), -EBADMSG);
		/* a put into it refuses too, and writes nothing there */
		g_autofree unsigned char *ca = pattern(6000, 61);
		int before = count_entries(moved);

		assert_errno(chunkstore_put(r->cs, ca, 6000, a, &written),
			     -EBADMSG);
		assert_false(written);
		assert_int_equal(count_entries(moved), before);
		assert_int_equal(count_tmp(r->dir), 0);
	}
}

static void test_not_a_regular_file(void **state)
{
	struct root *r = *state;
	uint8_t d[DIGEST_LEN];
	g_autofree char *path = NULL;

	put_pattern(r, 3000, 71, d, NULL);
	path = chunkstore_path(r->cs, d);

	/* a FIFO: the reader must not hang on it */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_errno(get(r, d), -EBADMSG);
	assert_errno(chunkstore_has(r->cs, d), -EBADMSG);
	assert_int_equal(unlink(path), 0);

	/* a directory */
	assert_int_equal(mkdir(path, 0700), 0);
	assert_errno(get(r, d), -EBADMSG);
	assert_errno(chunkstore_has(r->cs, d), -EBADMSG);
	assert_int_equal(rmdir(path), 0);

	/* a file where a fan-out directory should be */
	{
		g_autofree char *fan = g_path_get_dirname(path);
		g_autofree char *moved = g_build_filename(r->dir, "fan", NULL);

		assert_int_equal(rename(fan, moved), 0);
		unit_write_file(fan, "x", 1);
		assert_errno(get(r, d), -EBADMSG);
		assert_errno(chunkstore_has(r->cs, d), -EBADMSG);
	}
}

/* A file whose name is not the canonical spelling is nobody's chunk. */
static void test_non_canonical_names(void **state)
{
	struct root *r = *state;
	uint8_t d[DIGEST_LEN], parsed[DIGEST_LEN];
	char hex[DIGEST_HEX_LEN + 1];
	g_autofree char *path = NULL, *fan = NULL, *upper_hex = NULL,
			*upper = NULL, *short_name = NULL;

	put_pattern(r, 2000, 81, d, NULL);
	path = chunkstore_path(r->cs, d);
	fan = g_path_get_dirname(path);
	digest_to_hex(d, hex);

	/* the same chunk under an uppercase and a 63-digit name only */
	upper_hex = g_ascii_strup(hex, -1);
	upper = g_build_filename(fan, upper_hex, NULL);
	hex[63] = '\0';
	short_name = g_build_filename(fan, hex, NULL);
	assert_int_equal(link(path, upper), 0);
	assert_int_equal(rename(path, short_name), 0);
	assert_int_equal(chunkstore_has(r->cs, d), 0);
	assert_errno(get(r, d), -ENOENT);

	/* and such names do not parse as digests (a directory walk's check) */
	assert_errno(digest_from_hex(upper_hex, parsed), -EINVAL);
	assert_errno(digest_from_hex(hex, parsed), -EINVAL);
}

static void test_path(void **state)
{
	struct root *r = *state;
	uint8_t d[DIGEST_LEN];
	char hex[DIGEST_HEX_LEN + 1];
	g_autofree char *path = NULL, *want = NULL;

	assert_errno(digest_sha256("abc", 3, d), 0);
	digest_to_hex(d, hex);
	path = chunkstore_path(r->cs, d);
	want = g_strdup_printf("%s/.chunks/ba/%s", r->dir, hex);
	assert_string_equal(path, want);
}

/* ---- batches ---- */

/* Staged chunks are nobody's until the commit; a commit names them all,
 * the same content staged twice is written once; a hole or a present
 * chunk is done at the add; free removes what no commit covered. */
static void test_batch(void **state)
{
	struct root *r = *state;
	g_autofree unsigned char *a = pattern(CS, 11), *b = pattern(5000, 12);
	g_autofree unsigned char *z = g_malloc0(CS), *got = g_malloc(CS);
	struct chunkstore_batch *batch;
	uint8_t da[DIGEST_LEN], da2[DIGEST_LEN], db[DIGEST_LEN],
		dz[DIGEST_LEN];
	uint64_t written, reused;
	size_t pending, len;
	bool staged;

	assert_errno(chunkstore_batch_new(r->cs, &batch), 0);
	assert_errno(chunkstore_batch_add(batch, a, CS, da, &staged, &pending),
		     0);
	assert_true(staged);
	assert_int_equal(pending, 1);
	assert_errno(chunkstore_batch_add(batch, b, 5000, db, &staged,
					  &pending),
		     0);
	assert_errno(chunkstore_batch_add(batch, a, CS, da2, &staged,
					  &pending),
		     0);
	assert_true(staged); /* not named yet: staged again */
	assert_int_equal(pending, 3);
	assert_memory_equal(da, da2, DIGEST_LEN);
	assert_errno(chunkstore_batch_add(batch, z, CS, dz, &staged, NULL), 0);
	assert_false(staged);
	assert_true(digest_is_zero(dz));
	/* nothing is named before the commit */
	assert_int_equal(count_chunks(r->dir), 0);
	assert_int_equal(chunkstore_has(r->cs, da), 0);
	assert_int_equal(count_tmp(r->dir), 3);

	assert_errno(chunkstore_batch_commit(batch, &written, &reused), 0);
	assert_int_equal(written, 2);
	assert_int_equal(reused, 1);
	assert_int_equal(count_chunks(r->dir), 2);
	assert_int_equal(count_tmp(r->dir), 0);
	assert_errno(chunkstore_get(r->cs, db, got, CS, &len), 0);
	assert_int_equal(len, 5000);
	assert_memory_equal(got, b, 5000);
	/* an empty commit */
	assert_errno(chunkstore_batch_commit(batch, &written, &reused), 0);
	assert_int_equal(written + reused, 0);

	/* present now: done at the add, nothing staged */
	assert_errno(chunkstore_batch_add(batch, a, CS, da2, &staged, &pending),
		     0);
	assert_false(staged);
	assert_int_equal(pending, 0);

	/* staged, never committed: free removes the file */
	g_free(b);
	b = pattern(7000, 13);
	assert_errno(chunkstore_batch_add(batch, b, 7000, db, &staged, NULL),
		     0);
	assert_true(staged);
	assert_int_equal(count_tmp(r->dir), 1);
	chunkstore_batch_free(batch);
	assert_int_equal(count_tmp(r->dir), 0);
	assert_int_equal(chunkstore_has(r->cs, db), 0);
	assert_int_equal(count_chunks(r->dir), 2);
	chunkstore_batch_free(NULL);
}

/* ---- faults, in a child process ---- */

static char *self_exe;

/* The child: put CHILD_LEN pattern bytes into the store at @root and
 * print "rc written". */
static int put_child(const char *root)
{
	struct chunkstore *cs;
	g_autofree unsigned char *b = pattern(CHILD_LEN, 1234);
	uint8_t d[DIGEST_LEN];
	bool written = false;
	int rc;

	rc = chunkstore_open(root, CS, &cs);
	if (rc == 0) {
		rc = chunkstore_put(cs, b, CHILD_LEN, d, &written);
		chunkstore_close(cs);
	}
	printf("%d %d\n", rc, written);
	return 0;
}

/* The batch child: stage 3 chunks of pattern bytes, commit them, print
 * "rc written". */
static int batch_child(const char *root)
{
	struct chunkstore *cs;
	struct chunkstore_batch *b = NULL;
	uint64_t written = 0, reused = 0;
	int rc;

	rc = chunkstore_open(root, CS, &cs);
	if (rc == 0)
		rc = chunkstore_batch_new(cs, &b);
	for (uint32_t i = 0; rc == 0 && i < 3; i++) {
		g_autofree unsigned char *d = pattern(CHILD_LEN, 500 + i);
		uint8_t dg[DIGEST_LEN];
		bool staged;

		rc = chunkstore_batch_add(b, d, CHILD_LEN, dg, &staged, NULL);
	}
	if (rc == 0)
		rc = chunkstore_batch_commit(b, &written, &reused);
	chunkstore_batch_free(b);
	if (cs)
		chunkstore_close(cs);
	printf("%d %d\n", rc, (int)written);
	return 0;
}

static const char *child_mode = "--put-child";

/* Run the child on @root with @var=@value; its rc and written. */
static void run_child(const char *root, const char *var, const char *value,
		      int *rc, int *written)
{
	char *argv[] = { self_exe, (char *)child_mode, (char *)root, NULL };
	g_auto(GStrv) env = g_environ_setenv(g_get_environ(), var, value, TRUE);
	g_autofree char *out = NULL;
	g_autoptr(GError) error = NULL;
	int status;

	env = g_environ_unsetenv(env, "SNAPFS_FAULT_AT");
	env = g_environ_unsetenv(env, "SNAPFS_FAULT_POINT");
	env = g_environ_setenv(env, var, value, TRUE);
	assert_true(g_spawn_sync(NULL, argv, env, G_SPAWN_STDERR_TO_DEV_NULL,
				 NULL, NULL, &out, NULL, &status, &error));
	assert_true(g_spawn_check_wait_status(status, NULL));
	assert_int_equal(sscanf(out, "%d %d", rc, written), 2);
}

static void test_fault_points(void **state)
{
	static const char *points[] = { "chunk.write", "chunk.fsync",
					"chunk.read_back", "chunk.rename" };

	for (size_t i = 0; i < G_N_ELEMENTS(points); i++) {
		g_autofree char *dir = unit_tmpdir();
		int rc, written;

		run_child(dir, "SNAPFS_FAULT_POINT", points[i], &rc, &written);
		assert_errno(rc, -EIO);
		assert_int_equal(written, 0);
		assert_int_equal(count_chunks(dir), 0);
		assert_int_equal(count_tmp(dir), 0);
		/* the next put, without the fault, stores it */
		run_child(dir, "SNAPFS_FAULT_POINT", "none", &rc, &written);
		assert_errno(rc, 0);
		assert_int_equal(written, 1);
		assert_int_equal(count_chunks(dir), 1);
		assert_int_equal(count_tmp(dir), 0);
		unit_tmpdir_remove(g_steal_pointer(&dir));
	}
}

/* SNAPFS_FAULT_AT=1, 2, ... until no point fires: each failure leaves
 * nothing behind; there are exactly four points on a put's path. */
static void test_fault_walk(void **state)
{
	g_autofree char *dir = unit_tmpdir();
	int n;

	for (n = 1; n < 20; n++) {
		char at[16];
		int rc, written;

		g_snprintf(at, sizeof(at), "%d", n);
		run_child(dir, "SNAPFS_FAULT_AT", at, &rc, &written);
		if (rc == 0) {
			assert_int_equal(written, 1);
			assert_int_equal(count_chunks(dir), 1);
			break;
		}
		assert_errno(rc, -EIO);
		assert_int_equal(count_chunks(dir), 0);
		assert_int_equal(count_tmp(dir), 0);
	}
	assert_int_equal(n, 5);
	assert_int_equal(count_tmp(dir), 0);
	unit_tmpdir_remove(g_steal_pointer(&dir));
}

/* The same walk over a batch of 3 new chunks: 3 writes, 3 fsyncs, 3
 * reads back, 3 renames; whatever fails, no temporary file is left, and a rerun stores
 * all three. */
static void test_batch_fault_walk(void **state)
{
	g_autofree char *dir = unit_tmpdir();
	int n;

	child_mode = "--batch-child";
	for (n = 1; n < 30; n++) {
		char at[16];
		int rc, written;

		g_snprintf(at, sizeof(at), "%d", n);
		run_child(dir, "SNAPFS_FAULT_AT", at, &rc, &written);
		assert_int_equal(count_tmp(dir), 0);
		if (rc == 0) {
			assert_int_equal(count_chunks(dir), 3);
			break;
		}
		assert_errno(rc, -EIO);
		/* a failed commit names no chunk but those renamed before */
		assert_true(count_chunks(dir) <= 3);
	}
	child_mode = "--put-child";
	/* the first run that passes no longer writes all three: the renames
	 * that came before a failed one stayed */
	assert_true(n >= 4 && n <= 13);
	unit_tmpdir_remove(g_steal_pointer(&dir));
}

int main(int argc, char **argv)
{
#define ROOT(f) cmocka_unit_test_setup_teardown(f, setup_root, teardown_root)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open),
		ROOT(test_round_trip),
		ROOT(test_put_rejects_length),
		ROOT(test_get_buffer_too_small),
		ROOT(test_zero_chunk_not_stored),
		ROOT(test_same_content_written_once),
		ROOT(test_touch_many),
		ROOT(test_concurrent_puts),
		ROOT(test_batch),
		cmocka_unit_test(test_batch_fault_walk),
		ROOT(test_missing),
		ROOT(test_truncated),
		ROOT(test_flipped_bytes),
		ROOT(test_bad_header_fields),
		ROOT(test_renamed_chunk),
		ROOT(test_planted_symlink),
		ROOT(test_not_a_regular_file),
		ROOT(test_non_canonical_names),
		ROOT(test_path),
		cmocka_unit_test(test_fault_points),
		cmocka_unit_test(test_fault_walk),
	};
#undef ROOT
	int rc;

	if (argc == 3 && !strcmp(argv[1], "--put-child"))
		return put_child(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "--batch-child"))
		return batch_child(argv[2]);
	self_exe = g_file_read_link("/proc/self/exe", NULL);
	if (!self_exe) {
		printf("# cannot read /proc/self/exe\n");
		return UNIT_SKIP;
	}
	rc = unit_run("chunkstore", tests, G_N_ELEMENTS(tests));
	g_free(self_exe);
	return rc;
}
