/*
 * test_repo_backup.c - engine/repo_backup.c and engine/nbd.c on real qcow2
 * images that qemu-img and qemu-io make in a temporary directory, served
 * by the qemu-nbd that libnbd spawns.
 *
 * Each case checks an index against the image's raw content as `qemu-img
 * convert -O raw` writes it: every entry's chunk holds exactly those bytes,
 * and a hole entry stands for zeros.  Cases: a full backup (holes found by
 * block status are not read, data that is zeros is read and gives a hole,
 * equal chunks are written once); the block status of a layer over its
 * backing file (allocation depth and zeros, extent by extent); the changed
 * extents of a chain of layers; an incremental backup of a child layer
 * that reads only the chunks its writes touch and equals a full backup of
 * the same image; a grown image (new chunks, and a partial last chunk read
 * again); two identical images that write each chunk once; a missing,
 * garbage or backing-less image and a base of another chunk size, each
 * with its errno; a layer on a ramfs, which refuses O_DIRECT, read through
 * the page cache with the same bytes (the ramfs is mounted in a mount
 * namespace of this program's own, made before any thread starts, so it
 * goes when the program ends whatever happens; needs root, as the suite
 * does); cancellation from the progress callback, which leaves
 * whole chunks and no temporary file.  No sleeps; every directory removed.
 *
 * Chunks of 1 MiB over images of 64 MiB keep each case well under a
 * second.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "unit.h"
#include "chunkstore.h"
#include "digest.h"
#include "imagemap.h"
#include "nbd.h"
#include "repo_backup.h"
#include "repo_index.h"

#define MiB (UINT64_C(1) << 20)
#define CS ((uint32_t)MiB) /* the tests' chunk size */

struct fixture {
	char *dir;
	char *repo;
	char *ram;	/* a ramfs mounted there, when a case mounted one */
	struct chunkstore *cs;
};

/* main() made a mount namespace for this program */
static bool own_mounts;

static int setup(void **state)
{
	struct fixture *f = g_new0(struct fixture, 1);

	f->dir = unit_tmpdir();
	f->repo = g_build_filename(f->dir, "repo", NULL);
	if (mkdir(f->repo, 0700) < 0 || chunkstore_open(f->repo, CS, &f->cs) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	chunkstore_close(f->cs);
	g_free(f->repo);
	if (f->ram) {
		umount2(f->ram, MNT_DETACH);
		g_free(f->ram);
	}
	unit_tmpdir_remove(f->dir);
	g_free(f);
	return 0;
}

/* ---- images ---- */

static char *path_of(struct fixture *f, const char *name)
{
	return g_build_filename(f->dir, name, NULL);
}

/* Run the NULL-terminated arguments; the test fails unless it exits 0. */
static void run(const char *first, ...)
{
	GPtrArray *v = g_ptr_array_new();
	g_autofree char *err = NULL;
	const char *s;
	va_list ap;
	int status;

	va_start(ap, first);
	for (s = first; s; s = va_arg(ap, const char *))
		g_ptr_array_add(v, (char *)s);
	va_end(ap);
	g_ptr_array_add(v, NULL);
	status = unit_spawn((char **)v->pdata, NULL, &err);
	if (status != 0)
		print_error("%s: status %d: %s\n", first, status,
			    err ? err : "");
	g_ptr_array_free(v, TRUE);
	assert_int_equal(status, 0);
}

/* A new qcow2 image @name of @size bytes (a decimal string, as qemu-img
 * takes it) over @backing (NULL: none); returns its path. */
static char *image_create(struct fixture *f, const char *name,
			  const char *backing, const char *size)
{
	char *path = path_of(f, name);

	if (backing)
		run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
		    "-b", backing, path, size, NULL);
	else
		run("qemu-img", "create", "-q", "-f", "qcow2", path, size, NULL);
	return path;
}

/* qemu-io commands @cmds (@n of them) on @path, one -c each. */
static void image_io_v(const char *path, const char *const *cmds, size_t n)
{
	GPtrArray *v = g_ptr_array_new();
	g_autofree char *out = NULL, *err = NULL;
	int status;

	g_ptr_array_add(v, "qemu-io");
	g_ptr_array_add(v, "-f");
	g_ptr_array_add(v, "qcow2");
	for (size_t i = 0; i < n; i++) {
		g_ptr_array_add(v, "-c");
		g_ptr_array_add(v, (char *)cmds[i]);
	}
	g_ptr_array_add(v, (char *)path);
	g_ptr_array_add(v, NULL);
	status = unit_spawn((char **)v->pdata, &out, &err);
	g_ptr_array_free(v, TRUE);
	/* qemu-io exits 0 even when a command fails: look at its output */
	if (status != 0 || (out && strstr(out, "failed")) || (err && *err))
		print_error("qemu-io: %s%s\n", out ? out : "", err ? err : "");
	assert_int_equal(status, 0);
	assert_true(!out || !strstr(out, "failed"));
}

/* qemu-io commands on @path, NULL-terminated. */
static void image_io(const char *path, ...)
{
	const char *cmds[16];
	size_t n = 0;
	const char *s;
	va_list ap;

	va_start(ap, path);
	for (s = va_arg(ap, const char *); s && n < G_N_ELEMENTS(cmds);
	     s = va_arg(ap, const char *))
		cmds[n++] = s;
	va_end(ap);
	image_io_v(path, cmds, n);
}

/* The raw content of @path (g_free), *@len its size. */
static char *image_raw(struct fixture *f, const char *path, size_t *len)
{
	g_autofree char *raw = path_of(f, "raw.img");
	g_autoptr(GError) error = NULL;
	char *data = NULL;

	run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", path, raw, NULL);
	assert_true(g_file_get_contents(raw, &data, len, &error));
	unlink(raw);
	return data;
}

/* The base image of most cases: 64 MiB; 4 equal chunks of 0xab (0-3);
 * chunk 10 whole and half of 11 in 0xcd; zero clusters at 20-21; data
 * that is zeros at chunk 30; half of the last chunk (63) in 0x11. */
static char *base_image(struct fixture *f, const char *name)
{
	char *path = image_create(f, name, NULL, "64M");

	image_io(path, "write -P 0xab 0 4M", "write -P 0xcd 10M 1536k",
		 "write -z 20M 2M", "write -P 0 30M 1M",
		 "write -P 0x11 63M 512k", NULL);
	return path;
}

/* ---- checks ---- */

/* Every entry of @idx against the raw content of @path. */
static void check_index(struct fixture *f, const struct repo_index *idx,
			const char *path)
{
	size_t len;
	g_autofree char *raw = image_raw(f, path, &len);
	g_autofree char *buf = g_malloc(CS);
	static const char zeros[1 << 20];

	assert_int_equal(idx->chunk_size, CS);
	assert_int_equal(idx->virtual_size, len);
	for (uint64_t i = 0; i < idx->count; i++) {
		uint32_t n = repo_index_chunk_len(idx, i);
		size_t got = 0;

		if (repo_index_is_hole(idx, i)) {
			if (memcmp(raw + i * CS, zeros, n) != 0)
				print_error("chunk %" PRIu64 " is a hole\n", i);
			assert_memory_equal(raw + i * CS, zeros, n);
			continue;
		}
		assert_errno(chunkstore_get(f->cs, idx->digests[i], buf, CS,
					    &got),
			     0);
		assert_int_equal(got, n);
		assert_memory_equal(buf, raw + i * CS, n);
	}
}

static void assert_index_equal(const struct repo_index *a,
			       const struct repo_index *b)
{
	assert_int_equal(a->chunk_size, b->chunk_size);
	assert_int_equal(a->virtual_size, b->virtual_size);
	assert_int_equal(a->count, b->count);
	for (uint64_t i = 0; i < a->count; i++) {
		if (memcmp(a->digests[i], b->digests[i], DIGEST_LEN) != 0)
			print_error("entry %" PRIu64 " differs\n", i);
		assert_memory_equal(a->digests[i], b->digests[i], DIGEST_LEN);
	}
}

/* No file left in @repo/.tmp (a chunk being written). */
static void assert_no_tmp(struct fixture *f)
{
	g_autofree char *tmp = g_build_filename(f->repo, ".tmp", NULL);
	DIR *d = opendir(tmp);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			fail_msg("left in .tmp: %s", e->d_name);
	closedir(d);
}

static int full(struct fixture *f, const char *path, struct repo_index *idx,
		struct repo_backup_stats *st)
{
	return repo_backup_image(f->cs, path, NULL, NULL, NULL, NULL, NULL,
				 idx, st);
}

/* ---- nbd.c ---- */

static void test_nbd_extents(void **state)
{
	struct fixture *f = *state;
	g_autofree char *base = image_create(f, "b.qcow2", NULL, "8M");
	g_autofree char *top = NULL;
	g_autofree struct nbd_extent *ext = NULL;
	g_autofree char *buf = g_malloc(MiB);
	struct nbd_image *img;
	size_t n;

	image_io(base, "write -P 0xab 0 1M", "write -z 2M 1M", NULL);
	top = image_create(f, "t.qcow2", base, "8M");
	image_io(top, "write -P 0xcd 512k 1M", "write -z 4M 64k", NULL);

	assert_errno(nbd_image_open(top, &img), 0);
	assert_int_equal(nbd_image_size(img), 8 * MiB);
	assert_errno(nbd_image_extents(img, 0, 8 * MiB, &ext, &n), 0);
	/* depth: 2 the backing file, 1 the image, 0 nowhere; zero: reads
	 * as zeros (an unallocated or zero cluster) */
	struct nbd_extent want[] = {
		{ 0, 512 << 10, 2, false },
		{ 512 << 10, MiB, 1, false },
		{ 1536 << 10, 512 << 10, 0, true },
		{ 2 * MiB, MiB, 2, true },
		{ 3 * MiB, MiB, 0, true },
		{ 4 * MiB, 64 << 10, 1, true },
		{ 4 * MiB + (64 << 10), 4 * MiB - (64 << 10), 0, true },
	};
	assert_int_equal(n, G_N_ELEMENTS(want));
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(ext[i].offset, want[i].offset);
		assert_int_equal(ext[i].length, want[i].length);
		assert_int_equal(ext[i].depth, want[i].depth);
		assert_int_equal(ext[i].zero, want[i].zero);
	}
	g_clear_pointer(&ext, g_free);
	/* a range inside: cut at both ends */
	assert_errno(nbd_image_extents(img, 256 << 10, 512 << 10, &ext, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ext[0].offset, 256 << 10);
	assert_int_equal(ext[0].length, 256 << 10);
	assert_int_equal(ext[1].length, 256 << 10);
	assert_int_equal(ext[1].depth, 1);
	g_clear_pointer(&ext, g_free);

	assert_errno(nbd_image_pread(img, buf, MiB, 0), 0);
	assert_int_equal((unsigned char)buf[0], 0xab);
	assert_int_equal((unsigned char)buf[MiB - 1], 0xcd);
	assert_errno(nbd_image_pread(img, buf, MiB, 8 * MiB - 4096), -EINVAL);
	assert_errno(nbd_image_extents(img, 8 * MiB, 1, &ext, &n), -EINVAL);
	nbd_image_close(img);
	nbd_image_close(NULL);
}

/* ---- reading from the layer files ---- */

/* The 8 MiB image @top as `qemu-img convert -O raw` reads it (g_free). */
static char *raw_of(struct fixture *f, const char *top)
{
	g_autofree char *plain = path_of(f, "plain.raw");
	char *want = NULL;
	gsize len;

	run("qemu-img", "convert", "-O", "raw", top, plain, NULL);
	assert_true(g_file_get_contents(plain, &want, &len, NULL));
	assert_int_equal(len, 8 * MiB);
	return want;
}

static void test_imagemap(void **state)
{
	struct fixture *f = *state;
	g_autofree char *base = image_create(f, "b.qcow2", NULL, "8M");
	g_autofree char *top = NULL;
	g_autofree char *buf = g_malloc(8 * MiB), *want = NULL;
	g_autofree struct imagemap_piece *p = NULL;
	struct imagemap *m;
	size_t n;

	image_io(base, "write -P 0xab 0 1M", "write -z 2M 1M",
		 "write -P 0x77 5M 64k", NULL);
	top = image_create(f, "t.qcow2", base, "8M");
	image_io(top, "write -P 0xcd 512k 1M", "write -z 4M 64k",
		 "write -P 0 6M 64k", NULL);
	assert_errno(imagemap_open(top, &m), 0);
	assert_int_equal(imagemap_size(m), 8 * MiB);
	assert_errno(imagemap_load(m, 0, 8 * MiB, NULL), 0);
	/* pieces from both files; holes and zero clusters none */
	assert_true(imagemap_is_zero(m, 2 * MiB, 5 * MiB));
	assert_false(imagemap_is_zero(m, 2 * MiB, 5 * MiB + 1));
	assert_false(imagemap_is_zero(m, 6 * MiB, 7 * MiB)); /* data of zeros */
	assert_errno(imagemap_pieces(m, 0, 8 * MiB, &p, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(p[0].offset, 0);
	assert_int_equal(p[0].length, 512 << 10);
	assert_int_equal(p[1].offset, 512 << 10);
	assert_int_equal(p[1].length, MiB);
	assert_true(p[0].fd != p[1].fd);
	/* the bytes equal what qemu-img convert gives */
	assert_errno(imagemap_read(p, n, buf, 0, 8 * MiB), 0);
	want = raw_of(f, top);
	assert_memory_equal(buf, want, 8 * MiB);
	g_clear_pointer(&p, g_free);
	/* a range cut inside pieces, read at its own offset */
	assert_errno(imagemap_pieces(m, 256 << 10, 5 * MiB + 4096, &p, &n), 0);
	assert_int_equal(p[0].offset, 256 << 10);
	assert_int_equal(p[n - 1].offset + p[n - 1].length, 5 * MiB + 4096);
	assert_errno(imagemap_read(p, n, buf, 256 << 10,
				   5 * MiB + 4096 - (256 << 10)), 0);
	assert_memory_equal(buf, want + (256 << 10), 5 * MiB + 4096 - (256 << 10));
	g_clear_pointer(&p, g_free);
	/* a window replaces the one before */
	assert_errno(imagemap_load(m, 4 * MiB, 4 * MiB, NULL), 0);
	assert_errno(imagemap_pieces(m, 4 * MiB, 8 * MiB, &p, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(p[0].offset, 5 * MiB);
	imagemap_close(m);
	imagemap_close(NULL);
}

/* qemu-img map, through a script that renames a file over the backing
 * file's name after the map, as a merge does (layer.c): once when @once,
 * else at every run. */
static void map_renaming(struct fixture *f, const char *target,
			 const char *src, bool once)
{
	g_autofree char *script = path_of(f, "qemu-img-renaming");
	g_autofree char *mark = path_of(f, "renamed-once");
	g_autofree char *text = g_strdup_printf(
		"#!/bin/sh\n"
		"out=$(qemu-img \"$@\"); rc=$?\n"
		"if [ %s ! -e '%s' ]; then\n"
		"  touch '%s'; cp '%s' '%s.new' && mv -f '%s.new' '%s'\n"
		"fi\n"
		"printf '%%s\\n' \"$out\"; exit $rc\n",
		once ? "" : "-n x -o", mark, mark, src, target, target, target);

	assert_true(g_file_set_contents(script, text, -1, NULL));
	assert_int_equal(chmod(script, 0755), 0);
	g_setenv("SNAPFS_QEMU_IMG", script, TRUE);
}

/* The chain changes under a map (a merge renames another inode over a
 * backing file's name): the map is run again on the new chain and reads
 * its data; a chain that keeps changing is left to NBD (-ENOTSUP). */
static void test_imagemap_chain_renamed(void **state)
{
	struct fixture *f = *state;
	g_autofree char *base = image_create(f, "b.qcow2", NULL, "8M");
	g_autofree char *other = image_create(f, "b2.qcow2", NULL, "8M");
	g_autofree char *top = NULL;
	g_autofree char *buf = g_malloc(8 * MiB), *want = NULL;
	g_autofree struct imagemap_piece *p = NULL;
	struct imagemap *m;
	size_t n;

	image_io(base, "write -P 0xab 0 2M", NULL);
	/* the same data at other file offsets, and more of it */
	image_io(other, "write -P 0x01 6M 1M", "write -P 0xab 0 2M", NULL);
	top = image_create(f, "t.qcow2", base, "8M");
	image_io(top, "write -P 0xcd 1M 64k", NULL);

	map_renaming(f, base, other, true);
	assert_errno(imagemap_open(top, &m), 0);
	assert_errno(imagemap_load(m, 0, 8 * MiB, NULL), 0);
	g_unsetenv("SNAPFS_QEMU_IMG");
	assert_errno(imagemap_pieces(m, 0, 8 * MiB, &p, &n), 0);
	assert_errno(imagemap_read(p, n, buf, 0, 8 * MiB), 0);
	want = raw_of(f, top);
	assert_memory_equal(buf, want, 8 * MiB);
	assert_int_equal((unsigned char)buf[6 * MiB], 0x01); /* the new file's */
	imagemap_close(m);

	map_renaming(f, base, other, false);
	assert_errno(imagemap_open(top, &m), 0);
	assert_errno(imagemap_load(m, 0, 8 * MiB, NULL), -ENOTSUP);
	g_unsetenv("SNAPFS_QEMU_IMG");
	imagemap_close(m);
}

/* An image with compressed clusters has no file offsets to read at: the
 * map refuses it, and the backup reads it over NBD, with the same index. */
static void test_compressed_read_over_nbd(void **state)
{
	struct fixture *f = *state;
	g_autofree char *path = base_image(f, "a.qcow2");
	g_autofree char *comp = path_of(f, "c.qcow2");
	struct repo_index idx, cidx;
	struct repo_backup_stats st;
	struct imagemap *m;

	run("qemu-img", "convert", "-c", "-O", "qcow2", path, comp, NULL);
	assert_errno(imagemap_open(comp, &m), 0);
	assert_errno(imagemap_load(m, 0, 64 * MiB, NULL), -ENOTSUP);
	imagemap_close(m);
	assert_errno(full(f, path, &idx, &st), 0);
	assert_int_equal(st.chunks_over_nbd, 0);
	assert_errno(full(f, comp, &cidx, &st), 0);
	assert_true(st.chunks_read > 0);
	assert_int_equal(st.chunks_over_nbd, st.chunks_read);
	assert_int_equal(cidx.count, idx.count);
	assert_memory_equal(cidx.digests, idx.digests, idx.count * DIGEST_LEN);
	repo_index_release(&idx);
	repo_index_release(&cidx);
}

/* ---- full backups ---- */

static void test_full(void **state)
{
	struct fixture *f = *state;
	g_autofree char *path = base_image(f, "a.qcow2");
	struct repo_index idx;
	struct repo_backup_stats st;

	assert_errno(full(f, path, &idx, &st), 0);
	check_index(f, &idx, path);
	assert_int_equal(idx.count, 64);
	/* read: 0-3, 10, 11, 30 (zeros, but data), 63; never the holes */
	assert_int_equal(st.chunks_read, 8);
	assert_int_equal(st.bytes_read, 8 * MiB);
	/* 0-3 are one chunk; 10, 11, 63 are three more */
	assert_int_equal(st.chunks_written, 4);
	assert_int_equal(st.chunks_reused, 3);
	assert_int_equal(st.chunks_zero, 64 - 7);
	assert_int_equal(st.chunks_copied, 0);
	assert_int_equal(st.chunks_planned, 64);
	assert_int_equal(st.chunks_done, 64);
	/* read from the layer file, not through qemu-nbd */
	assert_int_equal(st.chunks_over_nbd, 0);
	assert_true(repo_index_is_hole(&idx, 20));
	assert_true(repo_index_is_hole(&idx, 30));
	assert_true(repo_index_is_hole(&idx, 40));
	assert_memory_equal(idx.digests[0], idx.digests[3], DIGEST_LEN);
	assert_no_tmp(f);
	repo_index_release(&idx);
}

static void test_full_empty_and_odd_size(void **state)
{
	struct fixture *f = *state;
	g_autofree char *empty = image_create(f, "e.qcow2", NULL, "0");
	/* 3 MiB + 3 KiB: a last chunk of 3 KiB */
	g_autofree char *odd = image_create(f, "o.qcow2", NULL, "3148800");
	struct repo_index idx;
	struct repo_backup_stats st;

	assert_errno(full(f, empty, &idx, &st), 0);
	assert_int_equal(idx.count, 0);
	assert_int_equal(st.bytes_read, 0);
	repo_index_release(&idx);

	image_io(odd, "write -P 0x5a 3M 3k", NULL);
	assert_errno(full(f, odd, &idx, &st), 0);
	assert_int_equal(idx.count, 4);
	assert_int_equal(st.bytes_read, 3072);
	check_index(f, &idx, odd);
	repo_index_release(&idx);
}

/* ---- changed extents, incremental ---- */

static void collect_extent(uint64_t offset, uint64_t length, void *arg)
{
	g_array_append_val((GArray *)arg, offset);
	g_array_append_val((GArray *)arg, length);
}

static void test_changed_extents(void **state)
{
	struct fixture *f = *state;
	g_autofree char *base = base_image(f, "a.qcow2");
	g_autofree char *l1 = image_create(f, "l1.qcow2", base, "64M");
	g_autofree char *l2 = NULL;
	struct repo_changes ch;
	struct imagemap_own *o;
	struct imagemap_piece *p;
	size_t n;

	image_io(l1, "write -P 1 5M 64k", "write -z 40M 128k", NULL);
	l2 = image_create(f, "l2.qcow2", l1, "64M");
	/* touches l1's first extent, overlaps nothing else */
	image_io(l2, "write -P 2 5184k 64k", "discard 50M 1M", NULL);

	/* what l2 allocates itself, from qemu-img map (not over NBD) */
	GArray *own = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	assert_errno(imagemap_own_extents(l2, NULL, collect_extent, own, &o), 0);
	assert_int_equal(own->len, 4);
	assert_int_equal(g_array_index(own, uint64_t, 0), 5184 << 10);
	assert_int_equal(g_array_index(own, uint64_t, 1), 64 << 10);
	assert_int_equal(g_array_index(own, uint64_t, 2), 50 * MiB);
	assert_int_equal(g_array_index(own, uint64_t, 3), MiB);
	g_array_free(own, TRUE);

	/* and where: the write's data in l2's file, the discard as zeros;
	 * what lies partly under it (l1's, or nothing's) is not placed */
	assert_non_null(o);
	assert_true(imagemap_own_placed(o, 5184 << 10, 5248 << 10));
	assert_false(imagemap_own_placed(o, 5 * MiB, 5248 << 10));
	assert_false(imagemap_own_placed(o, 5184 << 10, 5312 << 10));
	assert_false(imagemap_own_placed(o, 40 * MiB, 41 * MiB));
	assert_errno(imagemap_own_pieces(o, 5184 << 10, 5248 << 10, &p, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(p[0].offset, 5184 << 10);
	assert_int_equal(p[0].length, 64 << 10);
	unsigned char buf[64 << 10], want[64 << 10];
	memset(want, 2, sizeof(want));
	assert_errno(imagemap_read(p, n, buf, 5184 << 10, sizeof(buf)), 0);
	assert_memory_equal(buf, want, sizeof(buf));
	/* the same into an aligned buffer: read with O_DIRECT where /tmp's
	 * file system allows it (p[0].direct_fd >= 0), the same bytes */
	void *al = NULL;
	assert_int_equal(posix_memalign(&al, IMAGEMAP_DIRECT_ALIGN, sizeof(buf)), 0);
	memset(al, 0xee, sizeof(buf));
	assert_errno(imagemap_read(p, n, al, 5184 << 10, sizeof(buf)), 0);
	assert_memory_equal(al, want, sizeof(buf));
	free(al);
	g_free(p);
	assert_true(imagemap_own_placed(o, 50 * MiB, 51 * MiB));
	assert_errno(imagemap_own_pieces(o, 50 * MiB, 51 * MiB, &p, &n), 0);
	assert_null(p);
	assert_int_equal(n, 0);
	imagemap_own_free(o);

	/* the layers, newest first or not: the same union */
	const char *layers[] = { l2, l1 };
	assert_errno(repo_changed_extents(layers, 2, NULL, &ch), 0);
	assert_int_equal(ch.n, 3);
	assert_int_equal(ch.ext[0].offset, 5 * MiB);
	assert_int_equal(ch.ext[0].length, 128 << 10);
	assert_int_equal(ch.ext[1].offset, 40 * MiB);
	assert_int_equal(ch.ext[1].length, 128 << 10);
	assert_int_equal(ch.ext[2].offset, 50 * MiB);
	assert_int_equal(ch.ext[2].length, MiB);
	/* the places are the first layer's */
	assert_non_null(ch.top);
	assert_true(imagemap_own_placed(ch.top, 50 * MiB, 51 * MiB));
	assert_false(imagemap_own_placed(ch.top, 40 * MiB, 40 * MiB + 1));
	repo_changes_clear(&ch);
	assert_null(ch.ext);
	assert_null(ch.top);
	const char *reversed[] = { l1, l2 };
	assert_errno(repo_changed_extents(reversed, 2, NULL, &ch), 0);
	assert_int_equal(ch.n, 3);
	assert_true(imagemap_own_placed(ch.top, 40 * MiB, 40 * MiB + 1));
	repo_changes_clear(&ch);

	/* the base alone has no layer after it: nothing changed in l1
	 * relative to itself is an empty list */
	const char *none[] = { base };
	assert_errno(repo_changed_extents(none, 0, NULL, &ch), 0);
	assert_null(ch.ext);
	assert_null(ch.top);
	assert_int_equal(ch.n, 0);
	/* the base's own allocation (it has no backing file) */
	assert_errno(repo_changed_extents(none, 1, NULL, &ch), 0);
	assert_true(ch.n >= 1);
	assert_int_equal(ch.ext[0].offset, 0);
	assert_int_equal(ch.ext[0].length, 4 * MiB);
	repo_changes_clear(&ch);
}

/* A layer on a file system that refuses O_DIRECT (ramfs): no second
 * descriptor, every piece read through the page cache, the same bytes,
 * for the own layer's pieces and for a full backup over the chain map */
static void test_direct_refused(void **state)
{
	struct fixture *f = *state;
	struct imagemap_own *o;
	struct imagemap_piece *p;
	struct repo_index idx;
	struct repo_backup_stats st;
	size_t n;

	if (!own_mounts)
		print_error("no mount namespace of this program's own (not "
			    "root?): cannot mount the ramfs this case needs\n");
	assert_true(own_mounts);
	f->ram = path_of(f, "ram");
	assert_int_equal(mkdir(f->ram, 0700), 0);
	assert_int_equal(mount("snapfs-unit", f->ram, "ramfs", 0, "mode=0700"), 0);
	g_autofree char *path = g_build_filename(f->ram, "l.qcow2", NULL);
	run("qemu-img", "create", "-q", "-f", "qcow2", path, "16M", NULL);
	image_io(path, "write -P 0x3c 1M 2M", "write -P 0x3d 9M 4k", NULL);
	/* the file system does refuse it */
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EINVAL);

	GArray *own = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	assert_errno(imagemap_own_extents(path, NULL, collect_extent, own, &o), 0);
	g_array_free(own, TRUE);
	assert_non_null(o);
	assert_errno(imagemap_own_pieces(o, MiB, 3 * MiB, &p, &n), 0);
	assert_true(n >= 1);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(p[i].direct_fd, -1);
	/* aligned buffer, aligned pieces: what would go O_DIRECT */
	g_autofree unsigned char *want = g_malloc(2 * MiB);
	void *al = NULL;
	memset(want, 0x3c, 2 * MiB);
	assert_int_equal(posix_memalign(&al, IMAGEMAP_DIRECT_ALIGN, 2 * MiB), 0);
	memset(al, 0xee, 2 * MiB);
	assert_errno(imagemap_read(p, n, al, MiB, 2 * MiB), 0);
	assert_memory_equal(al, want, 2 * MiB);
	free(al);
	g_free(p);
	imagemap_own_free(o);

	/* a full backup: read from the layer file, not over NBD */
	assert_errno(full(f, path, &idx, &st), 0);
	assert_int_equal(st.chunks_over_nbd, 0);
	/* chunks 1 and 2 are equal: written once */
	assert_int_equal(st.chunks_written, 2);
	assert_int_equal(st.chunks_reused, 1);
	check_index(f, &idx, path);
	repo_index_release(&idx);
}

static void test_incremental(void **state)
{
	struct fixture *f = *state;
	g_autofree char *base = base_image(f, "a.qcow2");
	g_autofree char *child = NULL, *whole = NULL, *moved = NULL;
	struct repo_changes changed;
	struct repo_index bidx, idx, fidx;
	struct repo_backup_stats st;

	assert_errno(full(f, base, &bidx, NULL), 0);
	child = image_create(f, "c.qcow2", base, "64M");
	/* chunks 0 (zeroes over 0xab), 5, 40 and 41 (one write across the
	 * boundary), 10 (zeroes over all of it: found zero, not read) */
	image_io(child, "write -z 0 64k", "write -P 0x77 5M 64k",
		 "write -P 0x78 40M 1088k", "write -z 10M 1M", NULL);
	const char *layers[] = { child };
	assert_errno(repo_changed_extents(layers, 1, NULL, &changed), 0);

	assert_errno(repo_backup_image(f->cs, child, &bidx, &changed, NULL,
				       NULL, NULL, &idx, &st),
		     0);
	repo_changes_clear(&changed);
	assert_int_equal(st.chunks_planned, 5);
	assert_int_equal(st.chunks_copied, 59);
	assert_int_equal(st.chunks_read, 4);
	assert_int_equal(st.bytes_read, 4 * MiB);
	assert_int_equal(st.chunks_written, 4);
	assert_true(repo_index_is_hole(&idx, 10));
	check_index(f, &idx, child);

	/* the same index as a full backup of the child, which writes
	 * nothing new */
	assert_errno(full(f, child, &fidx, &st), 0);
	assert_int_equal(st.chunks_written, 0);
	assert_index_equal(&idx, &fidx);

	/* nothing changed: nothing read, the base's entries */
	repo_index_release(&idx);
	assert_errno(repo_backup_image(f->cs, base, &bidx, NULL, NULL, NULL,
				       NULL, &idx, &st),
		     0);
	assert_int_equal(st.bytes_read, 0);
	assert_int_equal(st.chunks_copied, 64);
	assert_index_equal(&idx, &bidx);
	repo_index_release(&fidx);
	repo_index_release(&idx);

	/* every changed chunk wholly in the child's own layer: read from it
	 * alone, the chain under it never opened (moved away here, which
	 * fails any read through the chain) */
	whole = image_create(f, "w.qcow2", base, "64M");
	image_io(whole, "write -P 0x79 7M 1M", "write -z 12M 1M", NULL);
	const char *wl[] = { whole };
	assert_errno(repo_changed_extents(wl, 1, NULL, &changed), 0);
	assert_non_null(changed.top);
	moved = path_of(f, "a.qcow2.moved");
	assert_int_equal(rename(base, moved), 0);
	assert_errno(repo_backup_image(f->cs, whole, &bidx, &changed, NULL,
				       NULL, NULL, &idx, &st),
		     0);
	assert_int_equal(rename(moved, base), 0);
	repo_changes_clear(&changed);
	assert_int_equal(st.chunks_planned, 2);
	assert_int_equal(st.chunks_read, 1);
	assert_int_equal(st.bytes_read, MiB);
	assert_true(repo_index_is_hole(&idx, 12));
	check_index(f, &idx, whole);
	assert_errno(full(f, whole, &fidx, NULL), 0);
	assert_index_equal(&idx, &fidx);

	repo_index_release(&fidx);
	repo_index_release(&idx);
	repo_index_release(&bidx);
}

static void test_incremental_resize(void **state)
{
	struct fixture *f = *state;
	/* 10.5 MiB: a last chunk of 512 KiB, all 0x42 */
	g_autofree char *base = image_create(f, "s.qcow2", NULL, "11010048");
	g_autofree char *grown = NULL, *shrunk = NULL;
	struct repo_changes changed;
	struct repo_index bidx, idx, fidx;
	struct repo_backup_stats st;

	image_io(base, "write -P 0x42 0 11010048", NULL);
	assert_errno(full(f, base, &bidx, NULL), 0);
	assert_int_equal(bidx.count, 11);

	/* grown to 20 MiB + 4 KiB, a write at 15 MiB: chunk 10 is whole now
	 * (its first half the base's 0x42, read again), 11-20 new */
	grown = image_create(f, "g.qcow2", base, "20975616");
	image_io(grown, "write -P 0x43 15M 4k", NULL);
	const char *layers[] = { grown };
	assert_errno(repo_changed_extents(layers, 1, NULL, &changed), 0);
	assert_errno(repo_backup_image(f->cs, grown, &bidx, &changed, NULL,
				       NULL, NULL, &idx, &st),
		     0);
	repo_changes_clear(&changed);
	assert_int_equal(idx.count, 21);
	assert_int_equal(st.chunks_copied, 10);
	/* read: chunk 10 (its length changed) and 15; the rest are zeros */
	assert_int_equal(st.chunks_read, 2);
	assert_int_equal(st.bytes_read, 2 * MiB);
	check_index(f, &idx, grown);
	assert_errno(full(f, grown, &fidx, NULL), 0);
	assert_index_equal(&idx, &fidx);
	repo_index_release(&idx);
	repo_index_release(&fidx);

	/* shrunk to 6 MiB (qemu-img resize of a copy): a boundary, nothing
	 * read */
	shrunk = path_of(f, "k.qcow2");
	run("cp", base, shrunk, NULL);
	run("qemu-img", "resize", "-q", "--shrink", "-f", "qcow2", shrunk,
	    "6M", NULL);
	assert_errno(repo_backup_image(f->cs, shrunk, &bidx, NULL, NULL,
				       NULL, NULL, &idx, &st),
		     0);
	assert_int_equal(idx.count, 6);
	assert_int_equal(st.bytes_read, 0);
	check_index(f, &idx, shrunk);
	repo_index_release(&idx);
	repo_index_release(&bidx);
}

/* ---- dedup ---- */

static void test_dedup(void **state)
{
	struct fixture *f = *state;
	g_autofree char *a = base_image(f, "a.qcow2");
	g_autofree char *b = base_image(f, "b.qcow2");
	struct repo_index ia, ib;
	struct repo_backup_stats sa, sb;

	assert_errno(full(f, a, &ia, &sa), 0);
	assert_errno(full(f, b, &ib, &sb), 0);
	assert_int_equal(sa.chunks_written, 4);
	assert_int_equal(sb.chunks_written, 0);
	assert_int_equal(sb.chunks_reused, 7);
	assert_index_equal(&ia, &ib);
	repo_index_release(&ia);
	repo_index_release(&ib);
}

/* ---- errors ---- */

static void test_damaged(void **state)
{
	struct fixture *f = *state;
	g_autofree char *missing = path_of(f, "missing.qcow2");
	g_autofree char *garbage = path_of(f, "garbage.qcow2");
	g_autofree char *base = image_create(f, "b.qcow2", NULL, "4M");
	g_autofree char *orphan = image_create(f, "o.qcow2", base, "4M");
	struct repo_index idx, other;
	struct repo_backup_stats st;
	char junk[4096];

	memset(junk, 'x', sizeof(junk));
	unit_write_file(garbage, junk, sizeof(junk));
	assert_errno(full(f, missing, &idx, &st), -ENOENT);
	assert_null(idx.digests);
	assert_errno(full(f, garbage, &idx, &st), -EIO);
	assert_errno(full(f, "relative.qcow2", &idx, &st), -EINVAL);
	unlink(base);
	assert_errno(full(f, orphan, &idx, &st), -EIO);
	const char *layers[] = { missing };
	struct repo_changes ch;
	assert_errno(repo_changed_extents(layers, 1, NULL, &ch), -ENOENT);
	assert_null(ch.top);

	/* a base index of another chunk size */
	g_autofree char *ok = image_create(f, "k.qcow2", NULL, "4M");
	assert_errno(repo_index_init(&other, 2 * CS, 4 * MiB), 0);
	assert_errno(repo_backup_image(f->cs, ok, &other, NULL, NULL, NULL,
				       NULL, &idx, &st),
		     -EINVAL);
	repo_index_release(&other);
	assert_no_tmp(f);
}

/* ---- cancellation ---- */

struct cancel_at {
	GCancellable *cancel;
	uint64_t at;
};

static void cancel_progress(const struct repo_backup_stats *st, void *arg)
{
	struct cancel_at *c = arg;

	if (st->chunks_done == c->at)
		g_cancellable_cancel(c->cancel);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	g_autofree char *path = image_create(f, "r.qcow2", NULL, "16M");
	struct cancel_at c = { g_cancellable_new(), 3 };
	struct repo_index idx, again;
	struct repo_backup_stats st;

	char *cmds[16];

	/* 16 different chunks */
	for (int i = 0; i < 16; i++)
		cmds[i] = g_strdup_printf("write -P %d %dM 1M", i + 1, i);
	image_io_v(path, (const char *const *)cmds, 16);
	for (int i = 0; i < 16; i++)
		g_free(cmds[i]);
	assert_errno(repo_backup_image(f->cs, path, NULL, NULL, c.cancel,
				       cancel_progress, &c, &idx, &st),
		     -ECANCELED);
	assert_null(idx.digests);
	/* the chunks already handed out when the cancel came are put: at
	 * most one per buffer (7: one per put thread and one more) */
	assert_true(st.chunks_done >= 3 && st.chunks_done <= 10);
	assert_int_equal(st.chunks_written, st.chunks_done);
	uint64_t put = st.chunks_written;
	assert_no_tmp(f);

	/* cancelled before the start: nothing read */
	assert_errno(repo_backup_image(f->cs, path, NULL, NULL, c.cancel,
				       NULL, NULL, &idx, &st),
		     -ECANCELED);
	assert_int_equal(st.bytes_read, 0);

	/* the chunks put are whole: a retry reuses them */
	assert_errno(full(f, path, &again, &st), 0);
	assert_int_equal(st.chunks_reused, put);
	assert_int_equal(st.chunks_written, 16 - put);
	check_index(f, &again, path);
	repo_index_release(&again);
	g_object_unref(c.cancel);
}

int main(void)
{
	g_autofree char *qemu_nbd = g_find_program_in_path("qemu-nbd");
	g_autofree char *qemu_io = g_find_program_in_path("qemu-io");
	g_autofree char *setpriv = g_find_program_in_path("setpriv");
#define CASE(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		CASE(test_nbd_extents),
		CASE(test_imagemap),
		CASE(test_imagemap_chain_renamed),
		CASE(test_compressed_read_over_nbd),
		CASE(test_full),
		CASE(test_full_empty_and_odd_size),
		CASE(test_changed_extents),
		CASE(test_direct_refused),
		CASE(test_incremental),
		CASE(test_incremental_resize),
		CASE(test_dedup),
		CASE(test_damaged),
		CASE(test_cancel),
	};

	/* before any thread starts (unshare() refuses a threaded process):
	 * test_direct_refused's ramfs lives and dies with this program */
	own_mounts = unshare(CLONE_NEWNS) == 0 &&
		     mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	if (!qemu_nbd || !qemu_io || !setpriv) {
		printf("# qemu-nbd, qemu-io or setpriv missing\n");
		return UNIT_SKIP;
	}
	return unit_run("repo_backup", tests, G_N_ELEMENTS(tests));
}
