/*
 * test_image.c - engine/image.c: qemu-img argv builders against golden
 * files (libvirt's xml2argv idea), qcow2 header parsing on headers written
 * by the real qemu-img and on hand-made corrupt ones, `convert -p`
 * progress lines, and the stderr-to-errno table.
 *
 * Golden files are tests/unit/golden/NAME.args, one argument per line.
 * After a deliberate change of a command line, rewrite them with
 * SNAPFS_REGENERATE_GOLDEN=1 and review the diff.
 *
 * Cases that run qemu-img (or qemu-io) are left out, with a TAP comment,
 * when the program is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

#include "unit.h"
#include "image.h"

#define GOLDEN_DIR UNIT_SOURCE_DIR "/golden"
#define HEADER_READ (64 * 1024)

#define SRC "/srv/snap store/primary/.snapfs/vm1/" \
	    "6f1c2a9e-1b7d-4d2e-9a41-0c3f5e7b8d10.qcow2"
#define VOL "/srv/snap store/primary/vm1.qcow2"

/* ---- golden argv ------------------------------------------------------ */

/* Compare @argv (consumed) with golden/@name.args. */
static void check_golden(const char *name, char **argv)
{
	g_autofree char *path = g_strdup_printf("%s/%s.args", GOLDEN_DIR, name);
	g_autofree char *want = NULL;
	g_autoptr(GError) error = NULL;
	GString *got = g_string_new(NULL);

	assert_non_null(argv);
	for (char **a = argv; *a; a++) {
		/* one argument per line: an argument may not hold one */
		assert_null(strchr(*a, '\n'));
		g_string_append_printf(got, "%s\n", *a);
	}
	g_strfreev(argv);

	if (g_strcmp0(g_getenv("SNAPFS_REGENERATE_GOLDEN"), "1") == 0)
		unit_write_file(path, got->str, got->len);
	if (!g_file_get_contents(path, &want, NULL, &error)) {
		print_error("golden file: %s\n", error->message);
		g_string_free(got, TRUE);
		fail();
	}
	if (strcmp(want, got->str) != 0) {
		print_error("argv differs from %s\n--- expected\n%s--- got\n%s",
			    path, want, got->str);
		g_string_free(got, TRUE);
		fail();
	}
	g_string_free(got, TRUE);
}

static int setup_default_program(void **state)
{
	unsetenv("SNAPFS_QEMU_IMG");
	unsetenv("SNAPFS_QEMU_NBD");
	return 0;
}

static void test_golden_overlay(void **state)
{
	check_golden("overlay", image_argv_overlay(SRC, VOL, 10737418240u));
	check_golden("overlay-zero",
		     image_argv_overlay("/p/base.qcow2", "/p/top.qcow2", 0));
	check_golden("overlay-max", image_argv_overlay("/p/base.qcow2",
						       "/p/top.qcow2",
						       UINT64_MAX));
}

static void test_golden_convert(void **state)
{
	check_golden("convert",
		     image_argv_convert(SRC, "/srv/secondary/.tmp/vm1/"
					     "s1.qcow2.part"));
}

static void test_golden_check(void **state)
{
	check_golden("check",
		     image_argv_check("/srv/secondary/volumes/vm1/s1.qcow2"));
}

static void test_golden_info(void **state)
{
	check_golden("info", image_argv_info(VOL));
}

static void test_golden_commit(void **state)
{
	check_golden("commit", image_argv_commit("/srv/snap store/primary/"
						 ".snapfs/vm1/0b9d.qcow2"));
	/* a comma in a path is doubled inside qemu's key=value options */
	check_golden("commit-comma",
		     image_argv_commit("/srv/a,b/.snapfs/vm1/c,,d.qcow2"));
}

static void test_golden_rebase(void **state)
{
	check_golden("rebase", image_argv_rebase(VOL, "/srv/primary/.snapfs/vm1/p.qcow2"));
	/* onto nothing: the volume becomes standalone */
	check_golden("rebase-none", image_argv_rebase(VOL, NULL));
	assert_null(image_argv_rebase("rel.qcow2", NULL));
	assert_null(image_argv_rebase(VOL, "rel.qcow2"));
}

static void test_golden_version(void **state)
{
	check_golden("version", image_argv_version());
}

static void test_golden_nbd_server(void **state)
{
	/* a path with a comma and a space is one argument, as it is */
	check_golden("nbd-server", image_argv_nbd_server(
		"/srv/snap store/primary/.snapfs/vm1/a,b.qcow2"));
	assert_null(image_argv_nbd_server("rel.qcow2"));
	assert_null(image_argv_nbd_server(NULL));
}

static void test_program_override(void **state)
{
	char **argv;

	setenv("SNAPFS_QEMU_IMG", "/opt/qemu/bin/qemu-img", 1);
	assert_string_equal(image_qemu_img(), "/opt/qemu/bin/qemu-img");
	argv = image_argv_check("/a.qcow2");
	assert_non_null(argv);
	assert_string_equal(argv[0], "/opt/qemu/bin/qemu-img");
	assert_string_equal(argv[1], "check");
	g_strfreev(argv);
	/* empty means unset */
	setenv("SNAPFS_QEMU_IMG", "", 1);
	assert_string_equal(image_qemu_img(), "qemu-img");
	unsetenv("SNAPFS_QEMU_IMG");
	assert_string_equal(image_qemu_img(), "qemu-img");
}

static void test_relative_paths(void **state)
{
	static const char *const bad[] = { "a.qcow2", "./a.qcow2", "../a",
					   "", "-o", "~/a.qcow2", NULL };

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		const char *p = bad[i];

		assert_null(image_argv_overlay(p, "/ok.qcow2", 1));
		assert_null(image_argv_overlay("/ok.qcow2", p, 1));
		assert_null(image_argv_overlay(p, p, 1));
		assert_null(image_argv_convert(p, "/ok.qcow2"));
		assert_null(image_argv_convert("/ok.qcow2", p));
		assert_null(image_argv_check(p));
		assert_null(image_argv_info(p));
		assert_null(image_argv_commit(p));
	}
}

/* ---- qcow2 headers written by qemu-img -------------------------------- */

struct image_dir {
	char *dir;
};

static int setup_tmpdir(void **state)
{
	struct image_dir *d = g_new0(struct image_dir, 1);
	g_autoptr(GError) error = NULL;

	unsetenv("SNAPFS_QEMU_IMG");
	d->dir = g_dir_make_tmp("snapfs-unit-XXXXXX", &error);
	if (!d->dir) {
		g_free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int teardown_tmpdir(void **state)
{
	struct image_dir *d = *state;

	unit_tmpdir_remove(d->dir);
	g_free(d);
	return 0;
}

/* Run @argv, which must exit 0. */
static void run_ok(char **argv)
{
	g_autofree char *err = NULL;
	int status = unit_spawn(argv, NULL, &err);

	if (status != 0) {
		g_autofree char *cmd = g_strjoinv(" ", argv);

		print_error("'%s' exited %d: %s\n", cmd, status,
			    err ? err : "");
		fail();
	}
}

/* The first 64 KiB of @path (g_free), its length in *@len. */
static char *read_head(const char *path, size_t *len)
{
	g_autoptr(GError) error = NULL;
	char *buf = NULL;
	gsize n = 0;

	if (!g_file_get_contents(path, &buf, &n, &error)) {
		print_error("read '%s': %s\n", path, error->message);
		fail();
	}
	*len = n < HEADER_READ ? n : HEADER_READ;
	return buf;
}

static void qemu_img_create(const char *path, const char *backing,
			    const char *opts, const char *size)
{
	const char *argv[16];
	int n = 0;

	argv[n++] = "qemu-img";
	argv[n++] = "create";
	argv[n++] = "-q";
	argv[n++] = "-f";
	argv[n++] = "qcow2";
	if (backing) {
		argv[n++] = "-b";
		argv[n++] = backing;
		argv[n++] = "-F";
		argv[n++] = "qcow2";
	}
	if (opts) {
		argv[n++] = "-o";
		argv[n++] = opts;
	}
	argv[n++] = path;
	if (size)
		argv[n++] = size;
	argv[n] = NULL;
	run_ok((char **)argv);
}

static void test_header_real_base(void **state)
{
	struct image_dir *d = *state;
	g_autofree char *base = g_build_filename(d->dir, "base.qcow2", NULL);
	g_autofree char *buf = NULL;
	struct qcow2_header h;
	size_t len;

	qemu_img_create(base, NULL, NULL, "1G");
	buf = read_head(base, &len);
	assert_errno(image_parse_header(buf, len, &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.virtual_size, UINT64_C(1) << 30);
	assert_int_equal(h.cluster_bits, 16);
	assert_string_equal(h.backing, "");
}

static void test_header_real_overlay(void **state)
{
	struct image_dir *d = *state;
	g_autofree char *base = g_build_filename(d->dir, "base.qcow2", NULL);
	g_autofree char *mid = g_build_filename(d->dir, "mid.qcow2", NULL);
	g_autofree char *top = g_build_filename(d->dir, "top.qcow2", NULL);
	g_autofree char *buf = NULL;
	struct qcow2_header h;
	size_t len;

	qemu_img_create(base, NULL, NULL, "3M");
	qemu_img_create(mid, base, NULL, NULL);
	qemu_img_create(top, mid, NULL, NULL);
	buf = read_head(top, &len);
	assert_errno(image_parse_header(buf, len, &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.virtual_size, 3 << 20);
	assert_string_equal(h.backing, mid);
	g_free(g_steal_pointer(&buf));

	buf = read_head(mid, &len);
	assert_errno(image_parse_header(buf, len, &h), 0);
	assert_string_equal(h.backing, base);
}

static void test_header_real_options(void **state)
{
	struct image_dir *d = *state;
	g_autofree char *v2 = g_build_filename(d->dir, "v2.qcow2", NULL);
	g_autofree char *small = g_build_filename(d->dir, "small.qcow2", NULL);
	g_autofree char *buf = NULL;
	struct qcow2_header h;
	size_t len;

	qemu_img_create(v2, NULL, "compat=0.10", "7340544"); /* 7 MiB - 512 */
	buf = read_head(v2, &len);
	assert_errno(image_parse_header(buf, len, &h), 0);
	assert_int_equal(h.version, 2);
	assert_int_equal(h.virtual_size, 7340544);
	assert_string_equal(h.backing, "");
	g_free(g_steal_pointer(&buf));

	qemu_img_create(small, v2, "cluster_size=4096", NULL);
	buf = read_head(small, &len);
	assert_errno(image_parse_header(buf, len, &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.cluster_bits, 12);
	assert_int_equal(h.virtual_size, 7340544);
	assert_string_equal(h.backing, v2);
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void test_header_real_cut(void **state)
{
	struct image_dir *d = *state;
	g_autofree char *base = g_build_filename(d->dir, "base.qcow2", NULL);
	g_autofree char *top = g_build_filename(d->dir, "top.qcow2", NULL);
	g_autofree char *buf = NULL;
	struct qcow2_header h;
	size_t len;
	uint64_t boff;
	uint32_t bsize;

	qemu_img_create(base, NULL, NULL, "1M");
	qemu_img_create(top, base, NULL, NULL);
	buf = read_head(top, &len);
	boff = get_be64((unsigned char *)buf + 8);
	bsize = get_be32((unsigned char *)buf + 16);
	assert_int_equal(bsize, strlen(base));
	assert_true(boff >= 72 && boff + bsize <= len);

	/* the name ends exactly at the end of the buffer: enough */
	assert_errno(image_parse_header(buf, boff + bsize, &h), 0);
	assert_string_equal(h.backing, base);
	/* one byte short, or nothing of it: the buffer is too small */
	assert_errno(image_parse_header(buf, boff + bsize - 1, &h), -E2BIG);
	assert_errno(image_parse_header(buf, boff, &h), -E2BIG);
	assert_errno(image_parse_header(buf, 104, &h), -E2BIG);
	/* shorter than the fixed header: not qcow2 at all */
	assert_errno(image_parse_header(buf, 48, &h), -EINVAL);
	assert_errno(image_parse_header(buf, 0, &h), -EINVAL);
}

/* ---- hand-made headers ------------------------------------------------ */

#define HAND_LEN 4096

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, v >> 32);
	put_be32(p + 4, (uint32_t)v);
}

/* A consistent version 3 header of 5 GiB, 64 KiB clusters, no backing. */
static void hand_header(unsigned char *b)
{
	memset(b, 0, HAND_LEN);
	memcpy(b, "QFI\xfb", 4);
	put_be32(b + 4, 3);
	put_be32(b + 20, 16);
	put_be64(b + 24, UINT64_C(5) << 30);
	put_be32(b + 100, 104); /* header_length */
}

static void set_backing(unsigned char *b, uint64_t off, uint32_t size)
{
	put_be64(b + 8, off);
	put_be32(b + 16, size);
}

static void test_header_hand_ok(void **state)
{
	unsigned char b[HAND_LEN];
	struct qcow2_header h;

	hand_header(b);
	assert_errno(image_parse_header(b, sizeof(b), &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.virtual_size, UINT64_C(5) << 30);
	assert_int_equal(h.cluster_bits, 16);
	assert_string_equal(h.backing, "");

	memcpy(b + 1000, "/base.qcow2", 11);
	set_backing(b, 1000, 11);
	assert_errno(image_parse_header(b, sizeof(b), &h), 0);
	assert_string_equal(h.backing, "/base.qcow2");

	put_be32(b + 4, 2);
	put_be32(b + 20, 9);
	assert_errno(image_parse_header(b, sizeof(b), &h), 0);
	assert_int_equal(h.version, 2);
	assert_int_equal(h.cluster_bits, 9);
	put_be32(b + 20, 21);
	assert_errno(image_parse_header(b, sizeof(b), &h), 0);
	assert_int_equal(h.cluster_bits, 21);
}

static void test_header_bad_magic(void **state)
{
	unsigned char b[HAND_LEN];
	struct qcow2_header h;

	hand_header(b);
	b[3] = 0xfa;
	assert_errno(image_parse_header(b, sizeof(b), &h), -EINVAL);
	hand_header(b);
	memcpy(b, "QFI\xfc", 4);
	assert_errno(image_parse_header(b, sizeof(b), &h), -EINVAL);
	memset(b, 0, sizeof(b));
	assert_errno(image_parse_header(b, sizeof(b), &h), -EINVAL);
	/* a raw image that starts with text */
	memcpy(b, "QEMU VM\0", 8);
	assert_errno(image_parse_header(b, sizeof(b), &h), -EINVAL);
}

static void test_header_bad_version(void **state)
{
	static const uint32_t bad[] = { 0, 1, 4, 5, 0x100, 0x03000000,
					UINT32_MAX };
	unsigned char b[HAND_LEN];
	struct qcow2_header h;

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		hand_header(b);
		put_be32(b + 4, bad[i]);
		assert_errno(image_parse_header(b, sizeof(b), &h), -EINVAL);
	}
}

static void test_header_bad_cluster_bits(void **state)
{
	static const uint32_t bad[] = { 0, 1, 8, 22, 31, 32, 64, UINT32_MAX };
	unsigned char b[HAND_LEN];
	struct qcow2_header h;

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		hand_header(b);
		put_be32(b + 20, bad[i]);
		assert_errno(image_parse_header(b, sizeof(b), &h), -EINVAL);
	}
}

static void test_header_truncated(void **state)
{
	unsigned char b[HAND_LEN];
	struct qcow2_header h;

	hand_header(b);
	for (size_t len = 0; len < 48; len++)
		assert_errno(image_parse_header(b, len, &h), -EINVAL);
}

static void test_header_backing_outside(void **state)
{
	unsigned char b[HAND_LEN];
	struct qcow2_header h;

	hand_header(b);
	memcpy(b + HAND_LEN - 8, "/b.qcow2", 8);
	set_backing(b, HAND_LEN - 8, 8);
	assert_errno(image_parse_header(b, HAND_LEN, &h), 0);
	assert_string_equal(h.backing, "/b.qcow2");

	/* the name begins beyond the buffer */
	set_backing(b, HAND_LEN, 8);
	assert_errno(image_parse_header(b, HAND_LEN, &h), -E2BIG);
	set_backing(b, 1u << 20, 8);
	assert_errno(image_parse_header(b, HAND_LEN, &h), -E2BIG);
	/* it begins inside and ends outside */
	set_backing(b, HAND_LEN - 4, 8);
	assert_errno(image_parse_header(b, HAND_LEN, &h), -E2BIG);
	set_backing(b, 200, HAND_LEN);
	assert_errno(image_parse_header(b, HAND_LEN, &h), -E2BIG);
	/* offsets and sizes that would overflow a naive off + size */
	set_backing(b, UINT64_MAX, 8);
	assert_errno(image_parse_header(b, HAND_LEN, &h), -E2BIG);
	set_backing(b, UINT64_MAX - 3, 8);
	assert_errno(image_parse_header(b, HAND_LEN, &h), -E2BIG);
	set_backing(b, 200, UINT32_MAX);
	assert_errno(image_parse_header(b, HAND_LEN, &h), -E2BIG);
}

static void test_header_backing_length(void **state)
{
	g_autofree unsigned char *b = g_malloc0(HEADER_READ);
	struct qcow2_header h;

	hand_header(b);
	/* 4095 bytes is the longest name the struct holds */
	memset(b + 1024, 'n', 4096);
	b[1024] = '/';
	set_backing(b, 1024, 4095);
	assert_errno(image_parse_header(b, HEADER_READ, &h), 0);
	assert_int_equal(strlen(h.backing), 4095);
	assert_int_equal(h.backing[4094], 'n');
	set_backing(b, 1024, 4096);
	assert_errno(image_parse_header(b, HEADER_READ, &h), -E2BIG);
	set_backing(b, 1024, 60000);
	assert_errno(image_parse_header(b, HEADER_READ, &h), -E2BIG);
}

static void test_header_backing_nul(void **state)
{
	unsigned char b[HAND_LEN];
	struct qcow2_header h;

	hand_header(b);
	memcpy(b + 1000, "/a\0b.qcow2", 10);
	set_backing(b, 1000, 10);
	assert_errno(image_parse_header(b, sizeof(b), &h), -EINVAL);
}

/* ---- convert -p progress ---------------------------------------------- */

static void expect_progress(const char *line, double want)
{
	double got = -1;

	if (image_parse_progress(line, &got) != 0) {
		g_autofree char *esc = g_strescape(line, NULL);

		print_error("progress \"%s\" rejected\n", esc);
		fail();
	}
	if (got < want - 1e-9 || got > want + 1e-9) {
		print_error("progress \"%s\" = %f, expected %f\n", line, got,
			    want);
		fail();
	}
}

static void test_progress_lines(void **state)
{
	expect_progress("    (0.00/100%)", 0.0);
	expect_progress("    (100.00/100%)", 100.0);
	expect_progress("    (42.17/100%)", 42.17);
	expect_progress("    (1.01/100%)", 1.01);
	expect_progress("(99.99/100%)", 99.99);
}

static void test_progress_garbage(void **state)
{
	static const char *const bad[] = {
		"",
		"    ",
		"hello",
		"(",
		"()",
		"(/100%)",
		"    (abc/100%)",
		"    (42.17/100)",
		"    (42.17/99%)",
		"    (42.17%)",
		"    (42.17 /100%)",
		"    (101.00/100%)",
		"    (-1.00/100%)",
		"    (nan/100%)",
		"    (inf/100%)",
		"qemu-img: Could not open '/x': No such file or directory",
		"    42.17/100%",
	};
	double p = 12.5;

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		if (image_parse_progress(bad[i], &p) != -EINVAL) {
			print_error("progress \"%s\" accepted as %f\n",
				    bad[i], p);
			fail();
		}
	}
	/* a rejected line leaves the percent alone */
	assert_true(p == 12.5);
}

static void test_progress_real(void **state)
{
	struct image_dir *d = *state;
	g_autofree char *src = g_build_filename(d->dir, "src.qcow2", NULL);
	g_autofree char *dst = g_build_filename(d->dir, "dst.qcow2", NULL);
	g_autofree char *out = NULL;
	g_auto(GStrv) lines = NULL;
	char **argv;
	double pct, last = -1;
	int n = 0, status;

	qemu_img_create(src, NULL, NULL, "8M");
	argv = image_argv_convert(src, dst);
	assert_non_null(argv);
	status = unit_spawn(argv, &out, NULL);
	g_strfreev(argv);
	assert_int_equal(status, 0);
	assert_non_null(out);

	/* proc_run_lines() splits at \r and \n: do the same */
	lines = g_strsplit_set(out, "\r\n", -1);
	for (char **l = lines; *l; l++) {
		if (!**l)
			continue;
		if (image_parse_progress(*l, &pct) != 0) {
			g_autofree char *esc = g_strescape(*l, NULL);

			print_error("real progress line \"%s\" rejected\n",
				    esc);
			fail();
		}
		assert_true(pct >= last);
		last = pct;
		n++;
	}
	assert_true(n >= 2);
	assert_true(last == 100.0);
}

/* ---- stderr to errno -------------------------------------------------- */

static void test_stderr_table(void **state)
{
	static const struct {
		const char *text;
		int err;
	} table[] = {
		{ "qemu-img: error while writing at byte 0: No space left on "
		  "device\n", -ENOSPC },
		{ "qemu-img: /s/x.qcow2: error while converting qcow2: Disk "
		  "quota exceeded\n", -EDQUOT },
		{ "qemu-img: Could not open '/x.qcow2': Could not open "
		  "'/x.qcow2': Permission denied\n", -EACCES },
		{ "qemu-img: Could not open 'b.qcow2': Failed to get shared "
		  "\"write\" lock\nIs another process using the image "
		  "[b.qcow2]?\n", -EBUSY },
		{ "qemu-img: Could not open 'b.qcow2': Failed to get \"write\" "
		  "lock\nIs another process using the image [b.qcow2]?\n",
		  -EBUSY },
		{ "qemu-img: Could not open '/nonexist.qcow2': Could not open "
		  "'/nonexist.qcow2': No such file or directory\n", -ENOENT },
		{ "qemu-img: Could not open '/x': Image is not in qcow2 format\n",
		  -EIO },
		{ "qemu-img: Failed to get the size\n", -EIO },
		{ "qemu-img: lock\n", -EIO },
		{ "", -EIO },
		{ NULL, -EIO },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
		int got = image_stderr_errno(table[i].text);

		if (got != table[i].err) {
			print_error("\"%s\" = %s, expected %s\n",
				    table[i].text ? table[i].text : "(null)",
				    unit_errno_name(got),
				    unit_errno_name(table[i].err));
			fail();
		}
	}
}

static void test_stderr_real_enoent(void **state)
{
	struct image_dir *d = *state;
	g_autofree char *missing = g_build_filename(d->dir, "missing.qcow2",
						    NULL);
	g_autofree char *err = NULL;
	char **argv = image_argv_info(missing);
	int status;

	status = unit_spawn(argv, NULL, &err);
	g_strfreev(argv);
	assert_int_not_equal(status, 0);
	assert_non_null(err);
	assert_errno(image_stderr_errno(err), -ENOENT);
}

/* A qemu-io process holding an image open, as a running VM would. */
struct holder {
	GPid pid;
	int in_fd;
	int out_fd;
};

static void hold_image(struct holder *h, const char *path)
{
	const char *argv[] = { "qemu-io", "-f", "qcow2", path, NULL };
	g_autoptr(GError) error = NULL;
	GString *seen = g_string_new(NULL);
	char buf[256];
	ssize_t n;

	if (!g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
				      G_SPAWN_SEARCH_PATH |
					      G_SPAWN_DO_NOT_REAP_CHILD,
				      NULL, NULL, &h->pid, &h->in_fd,
				      &h->out_fd, NULL, &error)) {
		print_error("qemu-io: %s\n", error->message);
		g_string_free(seen, TRUE);
		fail();
	}
	/* the prompt comes once the image is open (and locked) */
	while (!strstr(seen->str, "qemu-io>") &&
	       (n = read(h->out_fd, buf, sizeof(buf))) > 0)
		g_string_append_len(seen, buf, n);
	if (!strstr(seen->str, "qemu-io>")) {
		print_error("qemu-io did not open '%s': %s\n", path,
			    seen->str);
		g_string_free(seen, TRUE);
		fail();
	}
	g_string_free(seen, TRUE);
}

static void release_image(struct holder *h)
{
	int wstatus;

	close(h->in_fd); /* EOF: qemu-io quits */
	close(h->out_fd);
	waitpid(h->pid, &wstatus, 0);
	g_spawn_close_pid(h->pid);
}

/* Run qemu-io command @cmd on @path; its exit status. */
static int qemu_io(const char *path, const char *cmd)
{
	const char *argv[] = { "qemu-io", "-f", "qcow2", "-c", cmd, path,
			       NULL };

	return unit_spawn((char **)argv, NULL, NULL);
}

/* While a VM writes @img, qemu-img check (which locks) fails with EBUSY. */
static void test_stderr_real_lock(void **state)
{
	struct image_dir *d = *state;
	g_autofree char *img = g_build_filename(d->dir, "locked.qcow2", NULL);
	g_autofree char *err = NULL;
	struct holder h;
	char **argv;
	int status;

	qemu_img_create(img, NULL, NULL, "1M");
	hold_image(&h, img);
	argv = image_argv_check(img);
	status = unit_spawn(argv, NULL, &err);
	g_strfreev(argv);
	release_image(&h);

	assert_int_not_equal(status, 0);
	assert_non_null(err);
	assert_errno(image_stderr_errno(err), -EBUSY);
}

/*
 * commit takes no image locks: a middle layer of a chain a VM runs on is
 * folded into its backing file, and the data is there afterwards.
 */
static void test_commit_in_use(void **state)
{
	struct image_dir *d = *state;
	g_autofree char *base = g_build_filename(d->dir, "base.qcow2", NULL);
	g_autofree char *mid = g_build_filename(d->dir, "mid,1.qcow2", NULL);
	g_autofree char *top = g_build_filename(d->dir, "top.qcow2", NULL);
	g_autofree char *err = NULL;
	struct holder h;
	char **argv;
	int status;

	qemu_img_create(base, NULL, NULL, "1M");
	qemu_img_create(mid, base, NULL, NULL);
	assert_int_equal(qemu_io(mid, "write -P 0xab 65536 65536"), 0);
	qemu_img_create(top, mid, NULL, NULL);

	hold_image(&h, top);
	argv = image_argv_commit(mid);
	status = unit_spawn(argv, NULL, &err);
	g_strfreev(argv);
	release_image(&h);
	if (status != 0) {
		print_error("commit of a layer in use: %s\n", err ? err : "");
		fail();
	}
	/* the data is in base now, and mid kept it (-d); qemu-io exits 1
	 * when a pattern does not match */
	assert_int_equal(qemu_io(base, "read -P 0xab 65536 65536"), 0);
	assert_int_equal(qemu_io(mid, "read -P 0xab 65536 65536"), 0);
	assert_int_not_equal(qemu_io(base, "read -P 0xcd 65536 65536"), 0);
	assert_int_equal(qemu_io(base, "read -P 0 0 65536"), 0);
}

/* The argv vectors run: what they make is what the contracts say. */
static void test_argv_run(void **state)
{
	struct image_dir *d = *state;
	g_autofree char *base = g_build_filename(d->dir, "base.qcow2", NULL);
	g_autofree char *top = g_build_filename(d->dir, "top.qcow2", NULL);
	g_autofree char *copy = g_build_filename(d->dir, "copy.qcow2", NULL);
	g_autofree char *buf = NULL;
	g_autofree char *json = NULL;
	struct qcow2_header h;
	char **argv;
	size_t len;

	qemu_img_create(base, NULL, NULL, "2M");

	/* overlay: the size given, over the backing given, chain not read */
	argv = image_argv_overlay(base, top, 4 << 20);
	run_ok(argv);
	g_strfreev(argv);
	buf = read_head(top, &len);
	assert_errno(image_parse_header(buf, len, &h), 0);
	assert_int_equal(h.virtual_size, 4 << 20);
	assert_string_equal(h.backing, base);
	g_free(g_steal_pointer(&buf));

	/* convert: a standalone copy */
	argv = image_argv_convert(top, copy);
	run_ok(argv);
	g_strfreev(argv);
	buf = read_head(copy, &len);
	assert_errno(image_parse_header(buf, len, &h), 0);
	assert_int_equal(h.virtual_size, 4 << 20);
	assert_string_equal(h.backing, "");

	argv = image_argv_check(copy);
	run_ok(argv);
	g_strfreev(argv);

	argv = image_argv_info(top);
	assert_int_equal(unit_spawn(argv, &json, NULL), 0);
	g_strfreev(argv);
	assert_non_null(strstr(json, "\"backing-filename\""));
	assert_non_null(strstr(json, "\"virtual-size\": 4194304"));

	argv = image_argv_commit(top);
	run_ok(argv);
	g_strfreev(argv);

	argv = image_argv_version();
	run_ok(argv);
	g_strfreev(argv);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test_setup(test_golden_overlay,
				       setup_default_program),
		cmocka_unit_test_setup(test_golden_convert,
				       setup_default_program),
		cmocka_unit_test_setup(test_golden_check,
				       setup_default_program),
		cmocka_unit_test_setup(test_golden_info, setup_default_program),
		cmocka_unit_test_setup(test_golden_commit,
				       setup_default_program),
		cmocka_unit_test_setup(test_golden_rebase,
				       setup_default_program),
		cmocka_unit_test_setup(test_golden_version,
				       setup_default_program),
		cmocka_unit_test_setup(test_golden_nbd_server,
				       setup_default_program),
		cmocka_unit_test(test_program_override),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_header_hand_ok),
		cmocka_unit_test(test_header_bad_magic),
		cmocka_unit_test(test_header_bad_version),
		cmocka_unit_test(test_header_bad_cluster_bits),
		cmocka_unit_test(test_header_truncated),
		cmocka_unit_test(test_header_backing_outside),
		cmocka_unit_test(test_header_backing_length),
		cmocka_unit_test(test_header_backing_nul),
		cmocka_unit_test(test_progress_lines),
		cmocka_unit_test(test_progress_garbage),
		cmocka_unit_test(test_stderr_table),
	};
	const struct CMUnitTest with_qemu_img[] = {
#define REAL(f) cmocka_unit_test_setup_teardown(f, setup_tmpdir, teardown_tmpdir)
		REAL(test_header_real_base),
		REAL(test_header_real_overlay),
		REAL(test_header_real_options),
		REAL(test_header_real_cut),
		REAL(test_progress_real),
		REAL(test_stderr_real_enoent),
		REAL(test_argv_run),
	};
	const struct CMUnitTest with_qemu_io[] = {
		REAL(test_stderr_real_lock),
		REAL(test_commit_in_use),
#undef REAL
	};
	GArray *tests = g_array_new(FALSE, FALSE, sizeof(struct CMUnitTest));
	g_autofree char *qemu_img = NULL, *qemu_io = NULL;
	int rc;

	unsetenv("SNAPFS_QEMU_IMG");
	qemu_img = g_find_program_in_path("qemu-img");
	qemu_io = g_find_program_in_path("qemu-io");
	g_array_append_vals(tests, pure, G_N_ELEMENTS(pure));
	if (qemu_img)
		g_array_append_vals(tests, with_qemu_img,
				    G_N_ELEMENTS(with_qemu_img));
	else
		printf("# qemu-img not found: %zu cases with real images left "
		       "out\n", G_N_ELEMENTS(with_qemu_img));
	if (qemu_img && qemu_io)
		g_array_append_vals(tests, with_qemu_io,
				    G_N_ELEMENTS(with_qemu_io));
	else
		printf("# qemu-io not found: %zu cases left out\n",
		       G_N_ELEMENTS(with_qemu_io));
	fflush(stdout);
	rc = unit_run("image", (struct CMUnitTest *)tests->data, tests->len);
	g_array_free(tests, TRUE);
	return rc;
}
