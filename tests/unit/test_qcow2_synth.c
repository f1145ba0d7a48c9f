/*
 * test_qcow2_synth.c - engine/qcow2_synth.c: the synthesized qcow2 view
 * of an index (docs/repository.md, "The synthesized qcow2 view").
 *
 * Pure cases: the worked example of the document, byte for byte and piece
 * by piece; the layout of big indexes (several L2 tables and refcount
 * blocks); the errors; the same index gives the same file.
 *
 * Cases with qemu-img: for each index below, the synthesized file is
 * written into a temporary directory by answering reads with pieces (the
 * data of chunk i is a pattern of i), beside a raw image built from the
 * same patterns; then `qemu-img check` finds no error and no leak and the
 * image end where the file ends, `qemu-img compare` finds the two equal,
 * `qemu-img info` shows the virtual and cluster sizes, and `qemu-img map`
 * shows data exactly where the index has data, at the host offsets where
 * the pieces put each chunk; reads at odd offsets and lengths, with few
 * pieces at a time, give the bytes of the written file.  The biggest
 * indexes are written as metadata only (a sparse file: qemu-img check and
 * map never read data clusters).  Left out, with a TAP comment, when
 * qemu-img is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <json-c/json.h>

#include "unit.h"
#include "image.h"
#include "qcow2_synth.h"

#define KIB UINT64_C(1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define TIB (1024 * GIB)

/* ---- indexes and patterns --------------------------------------------- */

/* Which entries hold data, for an index of @count entries. */
typedef bool (*data_fn)(uint64_t i, uint64_t count);

static bool data_none(uint64_t i, uint64_t count)
{
	return false;
}

static bool data_all(uint64_t i, uint64_t count)
{
	return true;
}

static bool data_even(uint64_t i, uint64_t count)
{
	return i % 2 == 0;
}

/* holes at 1, 2, 5 and every seventh entry: runs of both */
static bool data_mixed(uint64_t i, uint64_t count)
{
	return i != 1 && i != 2 && i != 5 && i % 7 != 3;
}

/* the first two, both sides of the first L2 table's end (512 GiB in 4 MiB
 * chunks), the last */
static bool data_sparse_tib(uint64_t i, uint64_t count)
{
	return i < 2 || i == 131071 || i == 131072 || i == count - 1;
}

static void make_index(struct repo_index *idx, uint32_t chunk, uint64_t vsize,
		       data_fn data)
{
	assert_errno(repo_index_init(idx, chunk, vsize), 0);
	for (uint64_t i = 0; i < idx->count; i++)
		if (data(i, idx->count)) {
			/* any non-zero digest: the synth reads only holes */
			memcpy(idx->digests[i], &i, sizeof(i));
			idx->digests[i][31] = 0xa5;
		}
}

/* Byte @k of the content of chunk @i: differs between chunks and within
 * one, never a whole zero chunk. */
static uint8_t pattern(uint64_t i, uint64_t k)
{
	uint64_t x = (i + 1) * UINT64_C(0x9e3779b97f4a7c15) ^ (k >> 3) * 2654435761u;

	return (uint8_t)((x >> 29) + (k & 7) + 1);
}

static void pattern_fill(uint64_t i, uint64_t k, uint8_t *buf, size_t len)
{
	for (size_t j = 0; j < len; j++)
		buf[j] = pattern(i, k + j);
}

/*
 * read_range() - the bytes [@off, @off + @len) of the synthesized file,
 * as a FUSE read would get them: pieces, @max at a time, chunk data from
 * the pattern.  Checks each piece.  Returns the bytes read (less at EOF).
 */
static size_t read_range(const struct repo_index *idx,
			 const struct qcow2_synth *s, uint64_t off, size_t len,
			 uint8_t *buf, size_t max)
{
	struct qcow2_piece pieces[16];
	size_t done = 0;

	assert_true(max <= G_N_ELEMENTS(pieces));
	while (done < len) {
		size_t n = 0;
		uint64_t at = off + done;
		ssize_t got = qcow2_synth_read(s, at, len - done, pieces, max,
					       &n);

		assert_true(got >= 0);
		if (got == 0) {
			assert_true(at >= qcow2_synth_size(s));
			assert_int_equal(n, 0);
			break;
		}
		assert_true(n >= 1 && n <= max);
		for (size_t k = 0; k < n; k++) {
			const struct qcow2_piece *p = &pieces[k];
			uint8_t *dst = buf + (p->off - off);

			assert_true(p->off == at);
			assert_true(p->len > 0);
			if (p->kind == QCOW2_PIECE_CHUNK) {
				assert_true(p->chunk < idx->count);
				assert_false(repo_index_is_hole(idx, p->chunk));
				assert_true(p->chunk_off + p->len <=
					    repo_index_chunk_len(idx, p->chunk));
				assert_errno(qcow2_synth_fill(s, p, dst),
					     -EINVAL);
				pattern_fill(p->chunk, p->chunk_off, dst,
					     p->len);
			} else {
				assert_errno(qcow2_synth_fill(s, p, dst), 0);
			}
			at += p->len;
		}
		assert_true(at == off + done + (uint64_t)got);
		done += (size_t)got;
	}
	return done;
}

/* ---- files ------------------------------------------------------------ */

static void pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	ssize_t w = pwrite(fd, buf, len, (off_t)off);

	assert_true(w == (ssize_t)len);
}

/* Write the synthesized file of @s at @path: whole, or only its metadata
 * (META pieces) in a sparse file of its size. */
static void materialize(const struct repo_index *idx,
			const struct qcow2_synth *s, const char *path,
			bool with_data)
{
	const size_t step = 3 * MIB + 4093; /* odd: reads cross pieces */
	g_autofree uint8_t *buf = g_malloc(step);
	uint64_t size = qcow2_synth_size(s), off = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (with_data) {
		while (off < size) {
			size_t got = read_range(idx, s, off, step, buf, 16);

			assert_true(got == MIN((uint64_t)step, size - off));
			pwrite_all(fd, buf, got, off);
			off += got;
		}
	} else {
		struct qcow2_piece p[16];

		while (off < size) {
			size_t n;
			ssize_t got = qcow2_synth_read(s, off, size - off, p,
						       G_N_ELEMENTS(p), &n);

			assert_true(got > 0);
			for (size_t k = 0; k < n; k++) {
				if (p[k].kind != QCOW2_PIECE_META)
					continue;
				uint8_t *m = g_malloc(p[k].len);

				assert_errno(qcow2_synth_fill(s, &p[k], m), 0);
				pwrite_all(fd, m, p[k].len, p[k].off);
				g_free(m);
			}
			off += (uint64_t)got;
		}
	}
	assert_int_equal(close(fd), 0);
}

/* The raw image the index stands for, sparse where it has holes. */
static void write_raw(const struct repo_index *idx, const char *path)
{
	g_autofree uint8_t *buf = g_malloc(idx->chunk_size);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)idx->virtual_size), 0);
	for (uint64_t i = 0; i < idx->count; i++) {
		uint32_t len = repo_index_chunk_len(idx, i);

		if (repo_index_is_hole(idx, i))
			continue;
		pattern_fill(i, 0, buf, len);
		pwrite_all(fd, buf, len, i * idx->chunk_size);
	}
	assert_int_equal(close(fd), 0);
}

/* Run qemu-img with @args; returns its stdout (g_free), fails unless it
 * exits 0. */
static char *qemu_img(const char *const *args)
{
	GPtrArray *argv = g_ptr_array_new();
	char *out = NULL, *err = NULL;
	int status;

	g_ptr_array_add(argv, (char *)"qemu-img");
	for (size_t i = 0; args[i]; i++)
		g_ptr_array_add(argv, (char *)args[i]);
	g_ptr_array_add(argv, NULL);
	status = unit_spawn((char **)argv->pdata, &out, &err);
	if (status != 0) {
		print_error("qemu-img %s: exit %d\n%s%s", args[0], status,
			    out ? out : "", err ? err : "");
		fail();
	}
	g_ptr_array_free(argv, TRUE);
	g_free(err);
	return out;
}

static int64_t json_int(struct json_object *o, const char *key, int64_t dflt)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return dflt;
	return json_object_get_int64(v);
}

static void check_qemu_check(const struct qcow2_synth *s, const char *q)
{
	const char *args[] = { "check", "-f", "qcow2", "--output=json", q,
			       NULL };
	g_autofree char *out = qemu_img(args);
	struct json_object *o = json_tokener_parse(out);

	assert_non_null(o);
	assert_int_equal(json_int(o, "check-errors", -1), 0);
	assert_int_equal(json_int(o, "corruptions", 0), 0);
	assert_int_equal(json_int(o, "leaks", 0), 0);
	assert_int_equal(json_int(o, "corruptions-fixed", 0), 0);
	/* qemu's idea of the last used byte is the file's end */
	assert_true(json_int(o, "image-end-offset", -1) ==
		    (int64_t)qcow2_synth_size(s));
	json_object_put(o);
}

static void check_qemu_info(const struct repo_index *idx,
			    const struct qcow2_synth *s, const char *q)
{
	const char *args[] = { "info", "-f", "qcow2", "--output=json", q,
			       NULL };
	g_autofree char *out = qemu_img(args);
	struct json_object *o = json_tokener_parse(out), *fmt;

	assert_non_null(o);
	assert_true(json_int(o, "virtual-size", -1) ==
		    (int64_t)idx->virtual_size);
	assert_true(json_int(o, "cluster-size", -1) ==
		    (int64_t)qcow2_synth_cluster_size(s));
	assert_true(json_int(o, "actual-size", -1) >= 0);
	assert_true(json_object_object_get_ex(o, "format", &fmt));
	assert_string_equal(json_object_get_string(fmt), "qcow2");
	assert_false(json_object_object_get_ex(o, "backing-filename", &fmt));
	json_object_put(o);
}

/*
 * `qemu-img map`: every byte of the virtual disk is listed once, in
 * order; a range is data exactly where the index has data, and its host
 * offset is where the pieces put that chunk's bytes.
 */
static void check_qemu_map(const struct repo_index *idx,
			   const struct qcow2_synth *s, const char *q)
{
	const char *args[] = { "map", "-f", "qcow2", "--output=json", q,
			       NULL };
	g_autofree char *out = qemu_img(args);
	struct json_object *list = json_tokener_parse(out);
	uint64_t pos = 0;

	assert_non_null(list);
	assert_true(json_object_is_type(list, json_type_array));
	for (size_t k = 0; k < json_object_array_length(list); k++) {
		struct json_object *e = json_object_array_get_idx(list, k), *d;
		uint64_t start = (uint64_t)json_int(e, "start", -1);
		uint64_t len = (uint64_t)json_int(e, "length", -1);
		bool data;

		/* qemu-img lists a 0-byte disk as one empty range */
		assert_true(start == pos);
		assert_true(len > 0 || idx->virtual_size == 0);
		assert_true(json_object_object_get_ex(e, "data", &d));
		data = json_object_get_boolean(d);
		assert_int_equal(json_int(e, "depth", -1), 0);
		/* each chunk the range touches, at its first touched byte */
		for (uint64_t v = start; v < start + len;
		     v = (v / idx->chunk_size + 1) * idx->chunk_size) {
			uint64_t i = v / idx->chunk_size;

			assert_int_equal(data, !repo_index_is_hole(idx, i));
			if (data) {
				struct qcow2_piece p;
				size_t n;
				uint64_t host = (uint64_t)json_int(e, "offset",
								   -1);

				host += v - start;
				assert_true(qcow2_synth_read(s, host, 1, &p, 1,
							     &n) == 1);
				assert_int_equal(p.kind, QCOW2_PIECE_CHUNK);
				assert_true(p.chunk == i);
				assert_true(p.chunk_off == v % idx->chunk_size);
			}
		}
		pos = start + len;
	}
	assert_true(pos == idx->virtual_size);
	json_object_put(list);
}

/* Reads of odd offsets and lengths, a few pieces at a time, give the
 * bytes of the file @q (which read_range() wrote). */
static void check_odd_reads(const struct repo_index *idx,
			    const struct qcow2_synth *s, const char *q)
{
	uint64_t size = qcow2_synth_size(s);
	uint32_t cs = qcow2_synth_cluster_size(s);
	size_t cap = 2 * (size_t)cs + 8191;
	g_autofree uint8_t *got = g_malloc(cap), *want = g_malloc(cap);
	GRand *rnd = g_rand_new_with_seed(13);
	int fd = open(q, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	for (int round = 0; round < 200; round++) {
		uint64_t off;
		size_t len = (size_t)g_rand_int_range(rnd, 0, (gint32)cap);
		size_t max = (size_t)g_rand_int_range(rnd, 1, 6), n;
		ssize_t r;

		/* near a cluster boundary half the time, anywhere else */
		off = (uint64_t)(g_rand_double(rnd) * (double)(size + 4096));
		if (round % 2)
			off = off / cs * cs + (uint64_t)g_rand_int_range(
					rnd, -300, 300);
		if (off > size + 4096)
			off = size;
		r = pread(fd, want, len, (off_t)off);
		assert_true(r >= 0);
		assert_true((size_t)r == (off >= size ? 0 :
					  MIN((uint64_t)len, size - off)));
		memset(got, 0xee, cap);
		assert_true(read_range(idx, s, off, len, got, max) ==
			    (size_t)r);
		assert_memory_equal(got, want, (size_t)r);
		/* one call never covers more than asked */
		{
			struct qcow2_piece p[16];

			r = qcow2_synth_read(s, off, len, p, max, &n);
			assert_true(r >= 0 && (size_t)r <= len);
		}
	}
	close(fd);
	g_rand_free(rnd);
}

/* ---- the qemu-img cases ----------------------------------------------- */

struct synth_case {
	const char *name;
	uint32_t chunk;
	uint64_t vsize;
	data_fn data;
	bool with_data; /* false: metadata only (too big to write whole) */
};

static void run_case(const struct synth_case *c)
{
	struct repo_index idx;
	struct qcow2_synth *s = NULL, *again = NULL;
	char *dir = unit_tmpdir();
	g_autofree char *q = g_build_filename(dir, "synth.qcow2", NULL);
	g_autofree char *raw = g_build_filename(dir, "image.raw", NULL);

	print_message("# %s: chunk %u, virtual %" PRIu64 "\n", c->name,
		      c->chunk, c->vsize);
	make_index(&idx, c->chunk, c->vsize, c->data);
	assert_errno(qcow2_synth_new(&idx, &s), 0);
	assert_errno(qcow2_synth_new(&idx, &again), 0);
	assert_true(qcow2_synth_size(s) == qcow2_synth_size(again));
	assert_true(qcow2_synth_size(s) % qcow2_synth_cluster_size(s) == 0);
	materialize(&idx, s, q, c->with_data);
	check_qemu_check(s, q);
	check_qemu_info(&idx, s, q);
	check_qemu_map(&idx, s, q);
	if (c->with_data) {
		const char *args[] = { "compare", "-q", "-f", "qcow2", "-F",
				       "raw", q, raw, NULL };

		write_raw(&idx, raw);
		g_free(qemu_img(args));
		check_odd_reads(&idx, s, q);
	}
	qcow2_synth_free(again);
	qcow2_synth_free(s);
	repo_index_release(&idx);
	unit_tmpdir_remove(dir);
}

static const struct synth_case cases[] = {
	{ "empty", 64 * KIB, 0, data_none, true },
	{ "all holes", 64 * KIB, 10 * 64 * KIB, data_none, true },
	{ "one chunk", 64 * KIB, 64 * KIB, data_all, true },
	/* 2 MiB clusters, two per chunk; the last chunk 1 MiB + 512 bytes,
	 * less than one cluster */
	{ "short last chunk", 4 * MIB, 3 * 4 * MIB + MIB + 512, data_all,
	  true },
	/* the last chunk 3 MiB: a whole cluster and half of one */
	{ "short last chunk, two clusters", 4 * MIB, 4 * MIB + 3 * MIB,
	  data_even, true },
	{ "alternating", 64 * KIB, 40 * 64 * KIB, data_even, true },
	{ "alternating, 128 KiB chunks", 128 * KIB, 33 * 128 * KIB,
	  data_even, true },
	/* 1000 sectors: 7 chunks and 53248 bytes */
	{ "virtual size not a cluster multiple", 64 * KIB, 1000 * 512,
	  data_mixed, true },
	/* data in both L2 tables and the last chunk */
	{ "1 TiB mostly holes", 4 * MIB, TIB, data_sparse_tib, true },
	/* 65536 data clusters: three refcount blocks, eight L2 tables */
	{ "4 GiB full, 64 KiB chunks", 64 * KIB, 4 * GIB, data_all, false },
	{ "4 GiB mixed, 64 KiB chunks, odd end", 64 * KIB,
	  4 * GIB - 7 * 512, data_mixed, false },
	/* 524288 data clusters of 2 MiB, L2 tables at 512 GiB each */
	{ "1 TiB full, 4 MiB chunks", 4 * MIB, TIB, data_all, false },
};

#define CASE_FN(n)                                 \
	static void test_case_##n(void **state)    \
	{                                          \
		run_case(&cases[n]);               \
	}
CASE_FN(0)
CASE_FN(1)
CASE_FN(2)
CASE_FN(3)
CASE_FN(4)
CASE_FN(5)
CASE_FN(6)
CASE_FN(7)
CASE_FN(8)
CASE_FN(9)
CASE_FN(10)
CASE_FN(11)
#undef CASE_FN

/* ---- pure cases ------------------------------------------------------- */

/* The worked example of docs/repository.md: a 10 MiB volume in 4 MiB
 * chunks, entry 1 a hole, entry 2 short (2 MiB). */
static void test_worked_example(void **state)
{
	static const uint8_t header[QCOW2_SYNTH_HEADER_LENGTH] = {
		0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3,	      /* magic, v3 */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	      /* no backing */
		0, 0, 0, 21,				      /* 2 MiB */
		0, 0, 0, 0, 0, 0xa0, 0, 0,		      /* 10 MiB */
		0, 0, 0, 0, 0, 0, 0, 1,			      /* crypt, l1_size */
		0, 0, 0, 0, 0, 0x60, 0, 0,		      /* L1 at 6 MiB */
		0, 0, 0, 0, 0, 0x20, 0, 0,		      /* RT at 2 MiB */
		0, 0, 0, 1, 0, 0, 0, 0,			      /* 1 cluster, no snapshots */
		0, 0, 0, 0, 0, 0, 0, 0,			      /* snapshots_offset */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0,			      /* features */
		0, 0, 0, 4, 0, 0, 0, 104,		      /* refcount_order, length */
	};
	static const struct {
		enum qcow2_piece_kind kind;
		uint64_t off, len, chunk;
	} want[] = {
		{ QCOW2_PIECE_META, 0, 104, 0 },	/* header */
		{ QCOW2_PIECE_ZERO, 104, 2 * MIB - 104, 0 },
		{ QCOW2_PIECE_META, 2 * MIB, 8, 0 },	/* refcount table */
		{ QCOW2_PIECE_ZERO, 2 * MIB + 8, 2 * MIB - 8, 0 },
		{ QCOW2_PIECE_META, 4 * MIB, 16, 0 },	/* refcount block */
		{ QCOW2_PIECE_ZERO, 4 * MIB + 16, 2 * MIB - 16, 0 },
		{ QCOW2_PIECE_META, 6 * MIB, 8, 0 },	/* L1 */
		{ QCOW2_PIECE_ZERO, 6 * MIB + 8, 2 * MIB - 8, 0 },
		{ QCOW2_PIECE_META, 8 * MIB, 2 * MIB, 0 }, /* L2 */
		{ QCOW2_PIECE_CHUNK, 10 * MIB, 4 * MIB, 0 },
		{ QCOW2_PIECE_CHUNK, 14 * MIB, 2 * MIB, 2 },
	};
	static const uint8_t rt[8] = { 0, 0, 0, 0, 0, 0x40, 0, 0 };
	static const uint8_t l1[8] = { 0x80, 0, 0, 0, 0, 0x80, 0, 0 };
	static const uint64_t l2[6] = {
		UINT64_C(0x8000000000a00000), UINT64_C(0x8000000000c00000),
		0, 0, UINT64_C(0x8000000000e00000), 0,
	};
	struct repo_index idx;
	struct qcow2_synth *s;
	struct qcow2_piece p[16];
	struct qcow2_header h;
	uint8_t buf[104], rb[18];
	size_t n;

	assert_errno(repo_index_init(&idx, 4 * MIB, 10 * MIB), 0);
	memset(idx.digests[0], 0x11, 32);
	memset(idx.digests[2], 0x33, 32);
	assert_errno(qcow2_synth_new(&idx, &s), 0);
	assert_int_equal(qcow2_synth_cluster_size(s), 2 * MIB);
	assert_true(qcow2_synth_size(s) == 16 * MIB);

	assert_true(qcow2_synth_read(s, 0, 16 * MIB, p, 16, &n) ==
		    (ssize_t)(16 * MIB));
	assert_int_equal(n, G_N_ELEMENTS(want));
	for (size_t k = 0; k < n; k++) {
		assert_int_equal(p[k].kind, want[k].kind);
		assert_true(p[k].off == want[k].off);
		assert_true(p[k].len == want[k].len);
		assert_true(p[k].chunk == want[k].chunk);
		assert_int_equal(p[k].chunk_off, 0);
	}

	assert_errno(qcow2_synth_fill(s, &p[0], buf), 0);
	assert_memory_equal(buf, header, sizeof(header));
	assert_errno(image_parse_header(buf, sizeof(buf), &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.cluster_bits, 21);
	assert_true(h.virtual_size == 10 * MIB);
	assert_string_equal(h.backing, "");

	assert_errno(qcow2_synth_fill(s, &p[2], buf), 0);
	assert_memory_equal(buf, rt, 8);
	/* eight clusters, each refcount 1, then zeros */
	{
		struct qcow2_piece q = { QCOW2_PIECE_META, 4 * MIB, 18, 0, 0 };
		static const uint8_t want_rb[18] = { 0, 1, 0, 1, 0, 1, 0, 1,
						     0, 1, 0, 1, 0, 1, 0, 1,
						     0, 0 };

		assert_errno(qcow2_synth_fill(s, &q, rb), 0);
		assert_memory_equal(rb, want_rb, 18);
	}
	assert_errno(qcow2_synth_fill(s, &p[6], buf), 0);
	assert_memory_equal(buf, l1, 8);
	for (size_t e = 0; e < G_N_ELEMENTS(l2); e++) {
		struct qcow2_piece q = { QCOW2_PIECE_META, 8 * MIB + 8 * e, 8,
					 0, 0 };
		uint8_t be[8];

		for (int b = 0; b < 8; b++)
			be[b] = (uint8_t)(l2[e] >> (56 - 8 * b));
		assert_errno(qcow2_synth_fill(s, &q, buf), 0);
		assert_memory_equal(buf, be, 8);
	}
	/* an odd sub-range of an L2 entry, and one across two entries */
	{
		struct qcow2_piece q = { QCOW2_PIECE_META, 8 * MIB + 5, 6, 0,
					 0 };
		static const uint8_t w[6] = { 0xa0, 0, 0, 0x80, 0, 0 };

		assert_errno(qcow2_synth_fill(s, &q, buf), 0);
		assert_memory_equal(buf, w, 6);
	}
	/* a read into the middle of chunk 0, and past the end */
	assert_true(qcow2_synth_read(s, 11 * MIB + 3, 100, p, 1, &n) == 100);
	assert_int_equal(p[0].kind, QCOW2_PIECE_CHUNK);
	assert_true(p[0].chunk == 0 && p[0].chunk_off == MIB + 3);
	assert_true(qcow2_synth_read(s, 16 * MIB - 1, 100, p, 4, &n) == 1);
	assert_true(p[0].chunk == 2 && p[0].chunk_off == 2 * MIB - 1);
	assert_true(qcow2_synth_read(s, 16 * MIB, 100, p, 4, &n) == 0);
	assert_int_equal(n, 0);
	qcow2_synth_free(s);
	repo_index_release(&idx);
}

/* A short last chunk's last cluster is padded with a ZERO piece. */
static void test_short_chunk_padding(void **state)
{
	struct repo_index idx;
	struct qcow2_synth *s;
	struct qcow2_piece p[4];
	size_t n;
	uint64_t end;

	/* 4 MiB chunks, the last 1 MiB + 512 bytes */
	make_index(&idx, 4 * MIB, 4 * MIB + MIB + 512, data_all);
	assert_errno(qcow2_synth_new(&idx, &s), 0);
	end = qcow2_synth_size(s);
	assert_true(qcow2_synth_read(s, end - 2 * MIB - 4 * MIB, 8 * MIB, p, 4,
				     &n) == (ssize_t)(6 * MIB));
	assert_int_equal(n, 3);
	assert_int_equal(p[0].kind, QCOW2_PIECE_CHUNK);
	assert_true(p[0].chunk == 0 && p[0].len == 4 * MIB);
	assert_int_equal(p[1].kind, QCOW2_PIECE_CHUNK);
	assert_true(p[1].chunk == 1 && p[1].len == MIB + 512);
	assert_int_equal(p[2].kind, QCOW2_PIECE_ZERO);
	assert_true(p[2].len == MIB - 512 && p[2].off + p[2].len == end);
	qcow2_synth_free(s);
	repo_index_release(&idx);
}

/* The layout of big indexes, without writing them. */
static void test_big_layouts(void **state)
{
	struct repo_index idx;
	struct qcow2_synth *s;
	struct qcow2_piece p[16];
	size_t n;

	/* 1 TiB, fully allocated, 4 MiB chunks: header, 1 refcount table
	 * cluster, 1 refcount block (2^20 entries), 1 L1 cluster (2
	 * entries), 2 L2 tables, 524288 data clusters of 2 MiB */
	make_index(&idx, 4 * MIB, TIB, data_all);
	assert_errno(qcow2_synth_new(&idx, &s), 0);
	assert_true(qcow2_synth_size(s) == TIB + 6 * 2 * MIB);
	assert_true(qcow2_synth_read(s, 0, 13 * MIB, p, 16, &n) ==
		    (ssize_t)(13 * MIB));
	assert_int_equal(n, 10);
	assert_true(p[4].off == 4 * MIB && p[4].len == 2 * (524288 + 6));
	assert_true(p[6].off == 6 * MIB && p[6].len == 16); /* L1 */
	assert_true(p[8].off == 8 * MIB && p[8].len == 4 * MIB); /* L2 */
	assert_int_equal(p[9].kind, QCOW2_PIECE_CHUNK);
	assert_true(p[9].off == 12 * MIB && p[9].chunk == 0);
	/* the last chunk sits at the end */
	assert_true(qcow2_synth_read(s, qcow2_synth_size(s) - 1, 1, p, 1,
				     &n) == 1);
	assert_true(p[0].chunk == idx.count - 1 &&
		    p[0].chunk_off == 4 * MIB - 1);
	qcow2_synth_free(s);
	repo_index_release(&idx);

	/* 4 GiB in 64 KiB chunks: 65536 data clusters need 3 refcount
	 * blocks of 32768 entries (65536 + 1 + 1 + 3 + 1 + 8 clusters) */
	make_index(&idx, 64 * KIB, 4 * GIB, data_all);
	assert_errno(qcow2_synth_new(&idx, &s), 0);
	assert_true(qcow2_synth_size(s) == (65536 + 14) * 64 * KIB);
	qcow2_synth_free(s);
	repo_index_release(&idx);
}

static void test_errors(void **state)
{
	struct repo_index idx;
	struct qcow2_synth *s = (struct qcow2_synth *)&idx;
	struct qcow2_piece p[2], chunk;
	uint8_t buf[8];
	size_t n = 7;

	assert_errno(qcow2_synth_new(NULL, &s), -EINVAL);
	assert_null(s);
	make_index(&idx, 64 * KIB, 3 * 64 * KIB, data_all);
	idx.chunk_size = 3000;
	assert_errno(qcow2_synth_new(&idx, &s), -EINVAL);
	idx.chunk_size = 64 * KIB;
	idx.count = 2;
	assert_errno(qcow2_synth_new(&idx, &s), -EINVAL);
	idx.count = 3;
	idx.virtual_size = 3 * 64 * KIB - 100; /* not whole sectors */
	assert_errno(qcow2_synth_new(&idx, &s), -EINVAL);
	idx.virtual_size = REPO_INDEX_VIRTUAL_MAX + 512;
	assert_errno(qcow2_synth_new(&idx, &s), -EFBIG);
	idx.virtual_size = 3 * 64 * KIB;

	assert_errno(qcow2_synth_new(&idx, &s), 0);
	assert_errno(qcow2_synth_read(s, 0, 10, p, 0, &n), -EINVAL);
	assert_int_equal(n, 0);
	n = 7;
	assert_errno(qcow2_synth_read(s, 0, 0, p, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_errno(qcow2_synth_read(s, UINT64_MAX, 10, p, 2, &n), 0);
	/* a CHUNK piece is the caller's; a range outside the file or over
	 * chunk data is refused */
	assert_true(qcow2_synth_read(s, qcow2_synth_size(s) - 8, 8, &chunk, 1,
				     &n) == 8);
	assert_int_equal(chunk.kind, QCOW2_PIECE_CHUNK);
	assert_errno(qcow2_synth_fill(s, &chunk, buf), -EINVAL);
	chunk.kind = QCOW2_PIECE_ZERO;
	assert_errno(qcow2_synth_fill(s, &chunk, buf), -EINVAL);
	chunk.off = qcow2_synth_size(s) - 4;
	assert_errno(qcow2_synth_fill(s, &chunk, buf), -EINVAL);
	chunk.off = UINT64_MAX - 2;
	assert_errno(qcow2_synth_fill(s, &chunk, buf), -EINVAL);
	chunk.kind = QCOW2_PIECE_LAST;
	chunk.off = 0;
	assert_errno(qcow2_synth_fill(s, &chunk, buf), -EINVAL);
	qcow2_synth_free(s);
	qcow2_synth_free(NULL);
	repo_index_release(&idx);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_worked_example),
		cmocka_unit_test(test_short_chunk_padding),
		cmocka_unit_test(test_big_layouts),
		cmocka_unit_test(test_errors),
	};
	const struct CMUnitTest with_qemu_img[] = {
		cmocka_unit_test(test_case_0),	cmocka_unit_test(test_case_1),
		cmocka_unit_test(test_case_2),	cmocka_unit_test(test_case_3),
		cmocka_unit_test(test_case_4),	cmocka_unit_test(test_case_5),
		cmocka_unit_test(test_case_6),	cmocka_unit_test(test_case_7),
		cmocka_unit_test(test_case_8),	cmocka_unit_test(test_case_9),
		cmocka_unit_test(test_case_10), cmocka_unit_test(test_case_11),
	};
	GArray *tests = g_array_new(FALSE, FALSE, sizeof(struct CMUnitTest));
	g_autofree char *qemu = g_find_program_in_path("qemu-img");
	int rc;

	G_STATIC_ASSERT(G_N_ELEMENTS(with_qemu_img) == G_N_ELEMENTS(cases));
	g_array_append_vals(tests, pure, G_N_ELEMENTS(pure));
	if (qemu)
		g_array_append_vals(tests, with_qemu_img,
				    G_N_ELEMENTS(with_qemu_img));
	else
		printf("# qemu-img not found: %zu cases with real images left "
		       "out\n", G_N_ELEMENTS(with_qemu_img));
	fflush(stdout);
	rc = unit_run("qcow2_synth", (struct CMUnitTest *)tests->data,
		      tests->len);
	g_array_free(tests, TRUE);
	return rc;
}
