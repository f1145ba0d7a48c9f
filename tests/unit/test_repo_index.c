/*
 * test_repo_index.c - engine/repo_index.c: the index of one backup
 * (docs/repository.md, "Index file").
 *
 * Buffers: encode then decode gives back the same index for 0 chunks, one
 * short chunk, an exact multiple of the chunk size and holes; the bytes
 * are those of the worked example in docs/repository.md; each check of
 * the decoder refuses its own fault, with the checksum resealed so that
 * it is that check and not the checksum that refuses; every truncation
 * and every single-bit flip of a small index is refused.
 *
 * Files: write then read; a symlink, a FIFO, a directory, a file longer
 * or shorter than its header says are refused; the fault points
 * "index.write", "index.fsync", "index.rename" leave no temporary file and
 * an earlier index untouched.  fault() reads its environment once per
 * process, so each fault runs in a child: this program run again with
 * --fault-child (see main()).
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>

#include "unit.h"
#include "digest.h"
#include "log.h"
#include "repo_index.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define CS (64 * KIB) /* the smallest chunk size: small test files */

/* An index of @vsize bytes whose entry i is 32 bytes of (i + 1), or zero
 * for the entries @holes (a bit mask of the first 64) names. */
static void make_index(struct repo_index *idx, uint32_t cs, uint64_t vsize,
		       uint64_t holes)
{
	assert_errno(repo_index_init(idx, cs, vsize), 0);
	for (uint64_t i = 0; i < idx->count; i++)
		if (!(i < 64 && (holes >> i) & 1))
			memset(idx->digests[i], (int)(i + 1), 32);
}

static void assert_same(const struct repo_index *a, const struct repo_index *b)
{
	assert_int_equal(a->chunk_size, b->chunk_size);
	assert_true(a->virtual_size == b->virtual_size);
	assert_true(a->count == b->count);
	if (a->count)
		assert_memory_equal(a->digests, b->digests, a->count * 32);
	else
		assert_null(b->digests);
}

/* Encode @idx, check the header bytes, decode, compare. */
static void round_trip(const struct repo_index *idx)
{
	struct repo_index back;
	uint8_t sum[32];
	void *buf;
	size_t len;
	uint8_t *p;

	assert_errno(repo_index_encode(idx, &buf, &len), 0);
	p = buf;
	assert_true(len == 64 + 32 * idx->count);
	assert_true(len == repo_index_encoded_size(idx->count));
	assert_memory_equal(p, "SNAPIDX1", 8);
	assert_int_equal(p[8], 1);
	assert_int_equal(p[12] | p[13] << 8 | p[14] << 16 | (uint32_t)p[15] << 24,
			 idx->chunk_size);
	assert_int_equal(digest_sha256(p, len - 32, sum), 0);
	assert_memory_equal(sum, p + len - 32, 32);
	assert_errno(repo_index_decode(buf, len, &back), 0);
	assert_same(idx, &back);
	repo_index_release(&back);
	free(buf);
}

static void test_round_trip_empty(void **state)
{
	struct repo_index idx;

	make_index(&idx, 4 * MIB, 0, 0);
	assert_true(idx.count == 0);
	assert_null(idx.digests);
	assert_int_equal(repo_index_chunk_len(&idx, 0), 0);
	round_trip(&idx);
	repo_index_release(&idx);
}

static void test_round_trip_one_short(void **state)
{
	struct repo_index idx;

	make_index(&idx, CS, 1000, 0);
	assert_true(idx.count == 1);
	assert_int_equal(repo_index_chunk_len(&idx, 0), 1000);
	assert_int_equal(repo_index_chunk_len(&idx, 1), 0);
	round_trip(&idx);
	repo_index_release(&idx);
}

static void test_round_trip_exact_multiple(void **state)
{
	struct repo_index idx;

	make_index(&idx, CS, 4 * (uint64_t)CS, 0);
	assert_true(idx.count == 4);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(repo_index_chunk_len(&idx, i), CS);
	round_trip(&idx);
	repo_index_release(&idx);

	/* one byte more: a fifth chunk of one byte */
	make_index(&idx, CS, 4 * (uint64_t)CS + 1, 0);
	assert_true(idx.count == 5);
	assert_int_equal(repo_index_chunk_len(&idx, 4), 1);
	round_trip(&idx);
	repo_index_release(&idx);
}

static void test_round_trip_holes(void **state)
{
	struct repo_index idx;

	make_index(&idx, 4 * MIB, 10 * (uint64_t)MIB * 4 + 12345,
		   (1u << 0) | (1u << 3) | (1u << 10));
	assert_true(idx.count == 11);
	for (uint64_t i = 0; i < idx.count; i++)
		assert_int_equal(repo_index_is_hole(&idx, i),
				 i == 0 || i == 3 || i == 10);
	round_trip(&idx);
	repo_index_release(&idx);

	/* all holes: a volume never written */
	assert_errno(repo_index_init(&idx, 64 * MIB, 1ull << 40), 0);
	assert_true(idx.count == (1ull << 40) / (64 * MIB));
	assert_true(repo_index_is_hole(&idx, idx.count - 1));
	round_trip(&idx);
	repo_index_release(&idx);
}

/*
 * The worked example of docs/repository.md: 200000 bytes in chunks of
 * 64 KiB, so 4 entries (3 full, 1 of 3392 bytes); chunk 1 is a hole.  The
 * digests are made up (a reader cannot tell); the checksum is real.
 */
static const uint8_t example[] = {
	/* magic, version 1, chunk_size 0x10000 */
	0x53, 0x4e, 0x41, 0x50, 0x49, 0x44, 0x58, 0x31,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
	/* virtual_size 200000 = 0x30d40, count 4 */
	0x40, 0x0d, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
#define E(b) b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, \
	     b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b
	E(0x11), E(0x00), E(0x33), E(0x44),
#undef E
#include "golden/repo_index_example.inc"
};

static void test_worked_example(void **state)
{
	struct repo_index idx;
	void *buf;
	size_t len;

	make_index(&idx, CS, 200000, 1u << 1);
	for (uint64_t i = 0; i < idx.count; i++)
		if (!repo_index_is_hole(&idx, i))
			memset(idx.digests[i], (int)(0x11 * (i + 1)), 32);
	assert_int_equal(repo_index_chunk_len(&idx, 3), 200000 - 3 * CS);
	assert_errno(repo_index_encode(&idx, &buf, &len), 0);
	if (getenv("SNAPFS_REGENERATE_GOLDEN")) {
		g_autofree char *path = g_build_filename(
			UNIT_SOURCE_DIR, "golden", "repo_index_example.inc", NULL);
		GString *s = g_string_new("/* the index's checksum: SHA-256 of "
					  "the 160 bytes above (generated) */\n");

		for (size_t i = len - 32; i < len; i++)
			g_string_append_printf(s, "0x%02x,%s",
					       ((uint8_t *)buf)[i],
					       (i + 1) % 8 == 0 ? "\n" : " ");
		unit_write_file(path, s->str, s->len);
		g_string_free(s, TRUE);
	}
	assert_int_equal(len, sizeof(example));
	assert_memory_equal(buf, example, len);
	free(buf);
	repo_index_release(&idx);
}

/* Recompute the trailing checksum of @buf after an edit. */
static void reseal(uint8_t *buf, size_t len)
{
	assert_int_equal(digest_sha256(buf, len - 32, buf + len - 32), 0);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A valid encoded 3-chunk index in a buffer with room for one more entry. */
static uint8_t *valid_bytes(size_t *len)
{
	struct repo_index idx;
	uint8_t *big;
	void *buf;

	make_index(&idx, CS, 2 * (uint64_t)CS + 7, 1u << 1);
	assert_errno(repo_index_encode(&idx, &buf, len), 0);
	repo_index_release(&idx);
	big = g_malloc0(*len + 64);
	memcpy(big, buf, *len);
	free(buf);
	return big;
}

/* decode(@buf, @len) must fail with @want and leave @out empty */
static void refused(const uint8_t *buf, size_t len, int want)
{
	struct repo_index out;

	memset(&out, 0xa5, sizeof(out));
	assert_errno(repo_index_decode(buf, len, &out), want);
	assert_null(out.digests);
	assert_true(out.count == 0);
}

static void test_reject_magic(void **state)
{
	size_t len;
	g_autofree uint8_t *b = valid_bytes(&len);

	b[0] = 's';
	reseal(b, len);
	refused(b, len, -EBADMSG);
	memcpy(b, "SNAPIDX2", 8); /* a later format's magic */
	reseal(b, len);
	refused(b, len, -EBADMSG);
	memcpy(b, "SNAPCHK1", 8); /* a chunk is not an index */
	reseal(b, len);
	refused(b, len, -EBADMSG);
}

static void test_reject_version(void **state)
{
	const uint32_t bad[] = { 0, 2, 0x01000000, UINT32_MAX };
	size_t len;
	g_autofree uint8_t *b = valid_bytes(&len);

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		put32(b + 8, bad[i]);
		reseal(b, len);
		refused(b, len, -EBADMSG);
	}
}

static void test_reject_chunk_size(void **state)
{
	const uint32_t bad[] = { 0, 1, 3 * CS, CS + 1, 32 * KIB, 128 * MIB,
				 1u << 31, UINT32_MAX };
	size_t len;
	g_autofree uint8_t *b = valid_bytes(&len);

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		assert_false(repo_index_chunk_size_valid(bad[i]));
		put32(b + 12, bad[i]);
		reseal(b, len);
		refused(b, len, -EBADMSG);
	}
	for (uint32_t cs = CS; cs <= 64 * MIB; cs <<= 1)
		assert_true(repo_index_chunk_size_valid(cs));
}

static void test_reject_virtual_size(void **state)
{
	size_t len;
	g_autofree uint8_t *b = valid_bytes(&len);

	/* beyond 1 PiB: -EFBIG, whatever the count says */
	put64(b + 16, REPO_INDEX_VIRTUAL_MAX + 1);
	put64(b + 24, (REPO_INDEX_VIRTUAL_MAX >> 16) + 1);
	reseal(b, len);
	refused(b, len, -EFBIG);
	put64(b + 16, UINT64_MAX);
	reseal(b, len);
	refused(b, len, -EFBIG);
	/* 1 PiB itself is allowed: refused only for its length */
	put64(b + 16, REPO_INDEX_VIRTUAL_MAX);
	put64(b + 24, REPO_INDEX_VIRTUAL_MAX >> 16);
	reseal(b, len);
	refused(b, len, -EBADMSG);
}

static void test_reject_count(void **state)
{
	size_t len;
	g_autofree uint8_t *b = valid_bytes(&len);

	/* 3 entries: count 2 or 4 with the same length, or a count that
	 * would overflow 32 * count */
	const uint64_t bad[] = { 0, 2, 4, UINT64_MAX, UINT64_MAX / 32 + 1 };

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		put64(b + 24, bad[i]);
		reseal(b, len);
		refused(b, len, -EBADMSG);
	}
	/* count 4 with 4 entries, but virtual_size needs 3 */
	put64(b + 24, 4);
	reseal(b, len + 32);
	refused(b, len + 32, -EBADMSG);
	/* virtual_size 0 needs count 0 */
	put64(b + 16, 0);
	put64(b + 24, 3);
	reseal(b, len);
	refused(b, len, -EBADMSG);
}

static void test_reject_truncated_and_trailing(void **state)
{
	size_t len;
	g_autofree uint8_t *b = valid_bytes(&len);

	for (size_t n = 0; n < len; n++)
		refused(b, n, -EBADMSG);
	/* a byte more, or a whole entry more, even resealed */
	refused(b, len + 1, -EBADMSG);
	reseal(b, len + 32);
	refused(b, len + 32, -EBADMSG);
}

static void test_reject_checksum(void **state)
{
	size_t len;
	g_autofree uint8_t *b = valid_bytes(&len);

	/* every single-bit flip anywhere, header and trailer included */
	for (size_t i = 0; i < len; i++)
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			refused(b, len, (i == 22 && bit >= 2) || i == 23
						? -EFBIG : -EBADMSG);
			b[i] ^= (uint8_t)(1u << bit);
		}
	{
		struct repo_index ok;

		assert_errno(repo_index_decode(b, len, &ok), 0);
		repo_index_release(&ok);
	}
}

static void test_encode_refuses(void **state)
{
	struct repo_index idx;
	void *buf = (void *)1;
	size_t len = 1;

	assert_errno(repo_index_init(&idx, 0, 1), -EINVAL);
	assert_null(idx.digests);
	assert_errno(repo_index_init(&idx, 3 * CS, 1), -EINVAL);
	assert_errno(repo_index_init(&idx, CS, REPO_INDEX_VIRTUAL_MAX + 1),
		     -EFBIG);

	make_index(&idx, CS, 3 * (uint64_t)CS, 0);
	idx.count = 2;
	assert_errno(repo_index_encode(&idx, &buf, &len), -EINVAL);
	assert_null(buf);
	assert_true(len == 0);
	idx.count = 3;
	idx.chunk_size = 1000;
	assert_errno(repo_index_encode(&idx, &buf, &len), -EINVAL);
	idx.chunk_size = CS;
	idx.virtual_size = REPO_INDEX_VIRTUAL_MAX + 1;
	assert_errno(repo_index_encode(&idx, &buf, &len), -EFBIG);
	idx.virtual_size = 3 * (uint64_t)CS;
	{
		uint8_t (*d)[32] = idx.digests;

		idx.digests = NULL;
		assert_errno(repo_index_encode(&idx, &buf, &len), -EINVAL);
		idx.digests = d;
	}
	repo_index_release(&idx);
	repo_index_release(&idx); /* empty: a no-op */
	repo_index_release(NULL);
}

/* --- files --- */

struct files {
	char *dir;
	int dirfd;
};

static int setup_dir(void **state)
{
	struct files *f = g_new0(struct files, 1);

	f->dir = g_dir_make_tmp("snapfs-unit-XXXXXX", NULL);
	if (!f->dir) {
		g_free(f);
		return -1;
	}
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = f;
	return f->dirfd < 0 ? -1 : 0;
}

static int teardown_dir(void **state)
{
	struct files *f = *state;

	close(f->dirfd);
	unit_tmpdir_remove(f->dir);
	g_free(f);
	return 0;
}

/* The names in @dir, sorted and joined by ' ' (g_free). */
static char *listing(const char *dir)
{
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			g_ptr_array_add(names, g_strdup(e->d_name));
	closedir(d);
	g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
	g_ptr_array_add(names, NULL);
	return g_strjoinv(" ", (char **)names->pdata);
}

static void test_file_round_trip(void **state)
{
	struct files *f = *state;
	g_autofree char *path = g_build_filename(f->dir, "u1.index", NULL);
	g_autofree char *names = NULL;
	struct repo_index idx, back;
	struct stat st;

	make_index(&idx, CS, 5 * (uint64_t)CS - 1, 1u << 2);
	assert_errno(repo_index_write(f->dirfd, "u1.index", &idx), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true((uint64_t)st.st_size == repo_index_encoded_size(5));
	names = listing(f->dir);
	assert_string_equal(names, "u1.index"); /* no temporary file left */
	assert_errno(repo_index_read(f->dirfd, "u1.index", &back), 0);
	assert_same(&idx, &back);
	repo_index_release(&back);

	/* written again over itself: replaced whole */
	memset(idx.digests[0], 0x77, 32);
	assert_errno(repo_index_write(f->dirfd, "u1.index", &idx), 0);
	assert_errno(repo_index_read(f->dirfd, "u1.index", &back), 0);
	assert_same(&idx, &back);
	repo_index_release(&back);
	repo_index_release(&idx);

	assert_errno(repo_index_read(f->dirfd, "none.index", &back), -ENOENT);
}

static void test_file_names(void **state)
{
	struct files *f = *state;
	const char *bad[] = { "", ".", "..", "a/b", "../u.index", "/etc/passwd" };
	struct repo_index idx, back;

	make_index(&idx, CS, 1, 0);
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		assert_errno(repo_index_write(f->dirfd, bad[i], &idx), -EINVAL);
		assert_errno(repo_index_read(f->dirfd, bad[i], &back), -EINVAL);
	}
	repo_index_release(&idx);
}

static void test_file_symlink_refused(void **state)
{
	struct files *f = *state;
	g_autofree char *link = g_build_filename(f->dir, "l.index", NULL);
	struct repo_index idx, back;

	make_index(&idx, CS, 1, 0);
	assert_errno(repo_index_write(f->dirfd, "real.index", &idx), 0);
	assert_int_equal(symlink("real.index", link), 0);
	memset(&back, 0xa5, sizeof(back));
	assert_errno(repo_index_read(f->dirfd, "l.index", &back), -ELOOP);
	assert_null(back.digests);
	/* a dangling one too: never followed */
	unlink(link);
	assert_int_equal(symlink("/nonexistent/x.index", link), 0);
	assert_errno(repo_index_read(f->dirfd, "l.index", &back), -ELOOP);
	repo_index_release(&idx);
}

static void test_file_non_regular_refused(void **state)
{
	struct files *f = *state;
	g_autofree char *fifo = g_build_filename(f->dir, "f.index", NULL);
	g_autofree char *dir = g_build_filename(f->dir, "d.index", NULL);
	struct repo_index back;

	/* a FIFO with no writer: opened without blocking, then refused */
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_errno(repo_index_read(f->dirfd, "f.index", &back), -EBADMSG);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_errno(repo_index_read(f->dirfd, "d.index", &back), -EBADMSG);
	assert_errno(repo_index_read(f->dirfd, "/dev/null", &back), -EINVAL);
}

static void test_file_bad_content(void **state)
{
	struct files *f = *state;
	g_autofree char *path = g_build_filename(f->dir, "x.index", NULL);
	struct repo_index back;
	size_t len;
	g_autofree uint8_t *b = valid_bytes(&len);

	unit_write_file(path, b, len + 1); /* a trailing byte */
	assert_errno(repo_index_read(f->dirfd, "x.index", &back), -EBADMSG);
	unit_write_file(path, b, len - 1); /* truncated */
	assert_errno(repo_index_read(f->dirfd, "x.index", &back), -EBADMSG);
	unit_write_file(path, b, 10); /* shorter than a header */
	assert_errno(repo_index_read(f->dirfd, "x.index", &back), -EBADMSG);
	unit_write_file(path, "", 0);
	assert_errno(repo_index_read(f->dirfd, "x.index", &back), -EBADMSG);
	/* a header that claims 2^34 entries on a small file: refused by its
	 * size before anything is allocated */
	put64(b + 16, REPO_INDEX_VIRTUAL_MAX);
	put64(b + 24, REPO_INDEX_VIRTUAL_MAX / CS);
	unit_write_file(path, b, len);
	assert_errno(repo_index_read(f->dirfd, "x.index", &back), -EBADMSG);
	put64(b + 16, UINT64_MAX);
	unit_write_file(path, b, len);
	assert_errno(repo_index_read(f->dirfd, "x.index", &back), -EFBIG);
	/* the valid bytes read back */
	g_free(b);
	b = valid_bytes(&len);
	unit_write_file(path, b, len);
	assert_errno(repo_index_read(f->dirfd, "x.index", &back), 0);
	repo_index_release(&back);
}

/* --- fault points, each in a child (fault() reads its environment once) --- */

static char *self_exe;

/*
 * Run this program as `--fault-child DIR VERSION` with @var=@value: it
 * writes DIR/u.index (VERSION picks its content) and exits with -rc.
 */
static int run_child(const char *dir, const char *version, const char *var,
		     const char *value)
{
	char *argv[] = { self_exe, (char *)"--fault-child", (char *)dir,
			 (char *)version, NULL };
	g_auto(GStrv) env = g_environ_setenv(g_get_environ(), var, value, TRUE);
	g_autoptr(GError) error = NULL;
	g_autofree char *out = NULL, *err = NULL;
	int status;

	env = g_environ_unsetenv(env, strcmp(var, "SNAPFS_FAULT_AT")
					      ? "SNAPFS_FAULT_AT"
					      : "SNAPFS_FAULT_POINT");
	if (!g_spawn_sync(NULL, argv, env, 0, NULL, NULL, &out, &err, &status,
			  &error)) {
		print_error("cannot run '%s': %s\n", self_exe, error->message);
		fail();
	}
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void child_index(struct repo_index *idx, int version)
{
	make_index(idx, CS, 3 * (uint64_t)CS, 0);
	memset(idx->digests[1], 0x40 + version, 32);
}

static int fault_child(const char *dir, const char *version)
{
	struct repo_index idx;
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (dirfd < 0)
		return 100;
	child_index(&idx, atoi(version));
	rc = repo_index_write(dirfd, "u.index", &idx);
	repo_index_release(&idx);
	close(dirfd);
	return -rc;
}

/* u.index in @f holds version @version */
static void assert_version(struct files *f, int version)
{
	struct repo_index want, back;

	child_index(&want, version);
	assert_errno(repo_index_read(f->dirfd, "u.index", &back), 0);
	assert_same(&want, &back);
	repo_index_release(&back);
	repo_index_release(&want);
}

static void test_fault_points(void **state)
{
	struct files *f = *state;
	const char *points[] = { "index.write", "index.fsync", "index.rename" };

	for (size_t i = 0; i < G_N_ELEMENTS(points); i++) {
		g_autofree char *names = NULL;

		/* no earlier index: nothing at all is left */
		assert_int_equal(run_child(f->dir, "1", "SNAPFS_FAULT_POINT",
					   points[i]), EIO);
		names = listing(f->dir);
		assert_string_equal(names, "");

		/* an earlier index: left as it was */
		assert_int_equal(run_child(f->dir, "1", "SNAPFS_FAULT_POINT",
					   "none"), 0);
		assert_int_equal(run_child(f->dir, "2", "SNAPFS_FAULT_POINT",
					   points[i]), EIO);
		g_free(names);
		names = listing(f->dir);
		assert_string_equal(names, "u.index");
		assert_version(f, 1);
		unlinkat(f->dirfd, "u.index", 0);
	}
}

/* The fault walk (SQLite's faultsim): fail the Nth point for N = 1, 2...
 * until none fires; after each run the directory holds the old index or
 * the new one, whole, and no temporary file. */
static void test_fault_walk(void **state)
{
	struct files *f = *state;
	int n, rc = -1;

	assert_int_equal(run_child(f->dir, "1", "SNAPFS_FAULT_POINT", "none"), 0);
	for (n = 1; n < 100; n++) {
		g_autofree char *at = g_strdup_printf("%d", n);
		g_autofree char *names = NULL;

		rc = run_child(f->dir, "2", "SNAPFS_FAULT_AT", at);
		names = listing(f->dir);
		assert_string_equal(names, "u.index");
		if (rc == 0)
			break;
		assert_int_equal(rc, EIO);
		/* past the rename only the directory's fsync failed: the new
		 * index is in place, just not known to be durable */
		if (n < 4)
			assert_version(f, 1);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, 5); /* write, fsync, rename, fsync_dir, then none */
	assert_version(f, 2);
}

int main(int argc, char **argv)
{
#define DIR(t) cmocka_unit_test_setup_teardown(t, setup_dir, teardown_dir)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_empty),
		cmocka_unit_test(test_round_trip_one_short),
		cmocka_unit_test(test_round_trip_exact_multiple),
		cmocka_unit_test(test_round_trip_holes),
		cmocka_unit_test(test_worked_example),
		cmocka_unit_test(test_reject_magic),
		cmocka_unit_test(test_reject_version),
		cmocka_unit_test(test_reject_chunk_size),
		cmocka_unit_test(test_reject_virtual_size),
		cmocka_unit_test(test_reject_count),
		cmocka_unit_test(test_reject_truncated_and_trailing),
		cmocka_unit_test(test_reject_checksum),
		cmocka_unit_test(test_encode_refuses),
		DIR(test_file_round_trip),
		DIR(test_file_names),
		DIR(test_file_symlink_refused),
		DIR(test_file_non_regular_refused),
		DIR(test_file_bad_content),
		DIR(test_fault_points),
		DIR(test_fault_walk),
	};
#undef DIR
	int rc;

	if (argc == 4 && !strcmp(argv[1], "--fault-child"))
		return fault_child(argv[2], argv[3]);
	/* the refusals log; keep TAP's stdout clean and stderr quiet */
	snap_log_open(NULL, -1, 0);
	self_exe = g_file_read_link("/proc/self/exe", NULL);
	if (!self_exe) {
		printf("# cannot find this program's path\n");
		return UNIT_SKIP;
	}
	rc = unit_run("repo_index", tests, G_N_ELEMENTS(tests));
	g_free(self_exe);
	return rc;
}
