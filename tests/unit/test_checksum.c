/*
 * test_checksum.c - engine/checksum.c: checksum_file() prints what the
 * `xxh128sum` command prints for the same file ("xxh128:<hex>" against
 * "<hex>  name"), for an empty file, a small one, and files around and
 * beyond the 4 MiB read chunk; it reads from offset 0 whatever the file
 * position; cancellation and read errors come back as -errno.
 *
 * Cases that run xxh128sum are left out, with a TAP comment, when it is
 * missing; the comparison with libxxhash's one-shot hash always runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <xxhash.h>

#include "unit.h"
#include "checksum.h"

#define CHUNK (4u << 20) /* checksum.c's read size */

struct files {
	char *dir;
};

static int setup_dir(void **state)
{
	struct files *f = g_new0(struct files, 1);
	g_autoptr(GError) error = NULL;

	f->dir = g_dir_make_tmp("snapfs-unit-XXXXXX", &error);
	if (!f->dir) {
		g_free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown_dir(void **state)
{
	struct files *f = *state;

	unit_tmpdir_remove(f->dir);
	g_free(f);
	return 0;
}

/* @len bytes that differ from chunk to chunk (g_free). */
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

/* Write @len pattern bytes to @name in the test dir; the path (g_free). */
static char *make_file(struct files *f, const char *name, size_t len,
		       uint32_t seed)
{
	char *path = g_build_filename(f->dir, name, NULL);
	g_autofree unsigned char *b = pattern(len, seed);

	unit_write_file(path, b, len);
	return path;
}

/* checksum_file() of @path; fails the test unless it returns 0. */
static void checksum_path(const char *path, char text[CHECKSUM_TEXT_MAX])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	assert_true(fd >= 0);
	memset(text, 0, CHECKSUM_TEXT_MAX);
	rc = checksum_file(fd, NULL, text);
	close(fd);
	assert_errno(rc, 0);
}

/* What `xxh128sum @path` prints, as "xxh128:<hex>" (g_free). */
static char *xxh128sum(const char *path)
{
	const char *argv[] = { "xxh128sum", path, NULL };
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	char *sp;
	int status = unit_spawn((char **)argv, &out, &err);

	if (status != 0 || !out) {
		print_error("xxh128sum exited %d: %s\n", status,
			    err ? err : "");
		fail();
	}
	/* "<32 hex>  <name>\n" */
	sp = strchr(out, ' ');
	assert_non_null(sp);
	assert_int_equal(sp - out, 32);
	assert_true(g_str_has_prefix(sp, "  "));
	*sp = '\0';
	return g_strconcat("xxh128:", out, NULL);
}

static void expect_format(const char *text)
{
	assert_true(g_str_has_prefix(text, "xxh128:"));
	assert_int_equal(strlen(text), 7 + 32);
	for (const char *p = text + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
			print_error("not lower-case hex: %s\n", text);
			fail();
		}
}

static void compare_with_tool(struct files *f, const char *name, size_t len,
			      uint32_t seed)
{
	g_autofree char *path = make_file(f, name, len, seed);
	g_autofree char *want = xxh128sum(path);
	char text[CHECKSUM_TEXT_MAX];

	checksum_path(path, text);
	expect_format(text);
	assert_string_equal(text, want);
}

static void test_tool_small(void **state)
{
	compare_with_tool(*state, "small", 6, 1);
	compare_with_tool(*state, "one", 1, 2);
	compare_with_tool(*state, "odd", 4097, 3);
}

static void test_tool_empty(void **state)
{
	compare_with_tool(*state, "empty", 0, 1);
}

static void test_tool_chunk_edges(void **state)
{
	compare_with_tool(*state, "chunk-1", CHUNK - 1, 4);
	compare_with_tool(*state, "chunk", CHUNK, 5);
	compare_with_tool(*state, "chunk+1", CHUNK + 1, 6);
}

static void test_tool_big(void **state)
{
	compare_with_tool(*state, "big", 2 * CHUNK + 12345, 7);
}

/* The same hash as libxxhash's one-shot XXH3-128, big-endian hex. */
static void test_library_one_shot(void **state)
{
	static const size_t lens[] = { 0, 1, 240, CHUNK, 3 * CHUNK + 17 };
	struct files *f = *state;

	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
		g_autofree char *name = g_strdup_printf("lib%zu", i);
		g_autofree char *path = make_file(f, name, lens[i], 9 + i);
		g_autofree unsigned char *b = pattern(lens[i], 9 + i);
		XXH128_hash_t h = XXH3_128bits(b, lens[i]);
		char want[CHECKSUM_TEXT_MAX], text[CHECKSUM_TEXT_MAX];

		g_snprintf(want, sizeof(want), "xxh128:%016llx%016llx",
			   (unsigned long long)h.high64,
			   (unsigned long long)h.low64);
		checksum_path(path, text);
		assert_string_equal(text, want);
	}
}

static void test_empty_known_value(void **state)
{
	g_autofree char *path = make_file(*state, "empty", 0, 1);
	char text[CHECKSUM_TEXT_MAX];

	/* XXH3-128 of no bytes, as xxhsum 0.8 prints it */
	checksum_path(path, text);
	assert_string_equal(text, "xxh128:99aa06d3014798d86001c324468d497f");
}

static void test_from_offset_zero(void **state)
{
	g_autofree char *path = make_file(*state, "f", CHUNK + 100, 11);
	char whole[CHECKSUM_TEXT_MAX], text[CHECKSUM_TEXT_MAX];
	int fd;

	checksum_path(path, whole);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 1000, SEEK_SET), 1000);
	assert_errno(checksum_file(fd, NULL, text), 0);
	assert_string_equal(text, whole);
	/* and again on the same fd: nothing was consumed */
	assert_errno(checksum_file(fd, NULL, text), 0);
	assert_string_equal(text, whole);
	close(fd);
}

static void test_content_matters(void **state)
{
	struct files *f = *state;
	g_autofree char *path = g_build_filename(f->dir, "flip", NULL);
	g_autofree unsigned char *b = pattern(CHUNK + 10, 12);
	char before[CHECKSUM_TEXT_MAX], after[CHECKSUM_TEXT_MAX];

	unit_write_file(path, b, CHUNK + 10);
	checksum_path(path, before);
	/* one bit of the last byte, past the first chunk */
	b[CHUNK + 9] ^= 1;
	unit_write_file(path, b, CHUNK + 10);
	checksum_path(path, after);
	assert_string_not_equal(before, after);
	/* one more byte is another file too */
	unit_write_file(path, b, CHUNK + 9);
	checksum_path(path, before);
	assert_string_not_equal(before, after);
}

static void test_cancelled(void **state)
{
	g_autofree char *path = make_file(*state, "c", 1000, 13);
	g_autoptr(GCancellable) cancel = g_cancellable_new();
	char text[CHECKSUM_TEXT_MAX];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	g_cancellable_cancel(cancel);
	assert_errno(checksum_file(fd, cancel, text), -ECANCELED);
	/* a cancellable that was not cancelled changes nothing */
	g_object_unref(cancel);
	cancel = g_cancellable_new();
	assert_errno(checksum_file(fd, cancel, text), 0);
	expect_format(text);
	close(fd);
}

/* checksum_quick_fd(): the one-shot checksum_quick() of the same bytes,
 * whatever the buffer size and offset; a file that ends before fails. */
static void test_quick_fd(void **state)
{
	static const size_t bufs[] = { 1, 4096, 65536, 3 * 65536 + 5 };
	const size_t len = 3 * 65536 + 123, off = 16;
	struct files *f = *state;
	g_autofree char *path = make_file(f, "quick", off + len, 21);
	g_autofree unsigned char *b = pattern(off + len, 21);
	uint8_t want[CHECKSUM_QUICK_LEN], got[CHECKSUM_QUICK_LEN];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	checksum_quick(b + off, len, want);
	for (size_t i = 0; i < G_N_ELEMENTS(bufs); i++) {
		g_autofree void *buf = g_malloc(bufs[i]);

		memset(got, 0, sizeof(got));
		assert_errno(checksum_quick_fd(fd, (off_t)off, len, buf, bufs[i],
					       got),
			     0);
		assert_memory_equal(got, want, sizeof(want));
	}
	/* a different offset, a different checksum */
	g_autofree void *buf = g_malloc(4096);
	assert_errno(checksum_quick_fd(fd, (off_t)off + 1, len - 1, buf, 4096,
				       got),
		     0);
	assert_memory_not_equal(got, want, sizeof(want));
	/* past the end */
	assert_errno(checksum_quick_fd(fd, (off_t)off, len + 1, buf, 4096, got),
		     -EIO);
	assert_errno(checksum_quick_fd(-1, 0, 1, buf, 4096, got), -EBADF);
	close(fd);
}

static void test_read_errors(void **state)
{
	struct files *f = *state;
	char text[CHECKSUM_TEXT_MAX];
	int fd;

	assert_errno(checksum_file(-1, NULL, text), -EBADF);
	fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_errno(checksum_file(fd, NULL, text), -EISDIR);
	close(fd);
}

int main(void)
{
#define DIR(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
	const struct CMUnitTest always[] = {
		DIR(test_library_one_shot),
		DIR(test_empty_known_value),
		DIR(test_from_offset_zero),
		DIR(test_content_matters),
		DIR(test_cancelled),
		DIR(test_read_errors),
		DIR(test_quick_fd),
	};
	const struct CMUnitTest with_tool[] = {
		DIR(test_tool_small),
		DIR(test_tool_empty),
		DIR(test_tool_chunk_edges),
		DIR(test_tool_big),
	};
#undef DIR
	GArray *tests = g_array_new(FALSE, FALSE, sizeof(struct CMUnitTest));
	g_autofree char *tool = g_find_program_in_path("xxh128sum");
	int rc;

	if (tool)
		g_array_append_vals(tests, with_tool, G_N_ELEMENTS(with_tool));
	else
		printf("# xxh128sum not found: %zu cases left out\n",
		       G_N_ELEMENTS(with_tool));
	g_array_append_vals(tests, always, G_N_ELEMENTS(always));
	fflush(stdout);
	rc = unit_run("checksum", (struct CMUnitTest *)tests->data,
		      tests->len);
	g_array_free(tests, TRUE);
	return rc;
}
