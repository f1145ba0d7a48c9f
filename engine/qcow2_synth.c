/*
 * qcow2_synth.c - the layout of the synthesized qcow2 view of an index,
 * and the bytes of any range of it (qcow2_synth.h; the layout is
 * docs/repository.md, "The synthesized qcow2 view"; the format QEMU's
 * docs/interop/qcow2.txt).
 *
 * The file is a sequence of regions, each a whole number of clusters:
 *
 *	header | refcount table | refcount blocks | L1 table | L2 tables | data
 *
 * Every used cluster has refcount 1, so a refcount block is a run of
 * 00 01 pairs and every L1 and L2 entry carries the COPIED flag (bit 63).
 * A data chunk of chunk_size bytes is chunk_size / cluster_size
 * contiguous clusters, and the data chunks are in index order, so data
 * chunk number k (counting non-hole entries only) starts at
 * data_off + k * chunk_size: mapping a guest cluster to its host cluster
 * is counting the non-hole entries before its chunk (rank), and mapping a
 * file offset to a chunk is finding the k-th non-hole entry (select).
 * Both use one count per block of RANK_BLOCK entries and read the rest
 * from the borrowed index.
 *
 * All integers written are big-endian, byte by byte: nothing depends on
 * the host's byte order or alignment.
 */
#include <errno.h>
#include <string.h>
#include <glib.h>

#include "qcow2_synth.h"

#define RANK_BLOCK 512u	  /* index entries per stored count */
#define REFCOUNT_ORDER 4u /* 16-bit refcounts */
#define OFLAG_COPIED (UINT64_C(1) << 63)

struct qcow2_synth {
	const struct repo_index *idx; /* borrowed (qcow2_synth_new) */
	uint32_t cluster_size;
	uint32_t cluster_bits;
	uint32_t clusters_per_chunk;
	uint64_t virtual_clusters;
	uint64_t l2_entries; /* per L2 table: cluster_size / 8 */
	uint64_t rb_entries; /* per refcount block: cluster_size / 2 */
	uint64_t l1_size;    /* L1 entries */
	uint64_t rb_count;   /* refcount blocks = refcount table entries */
	uint64_t l2_count;   /* L2 tables */
	uint64_t data_clusters;
	uint64_t clusters; /* all of the file's clusters */

	/* region offsets in the file, in file order; each region ends where
	 * the next begins, the data at size */
	uint64_t rt_off, rb_off, l1_off, l2_off, data_off, size;

	uint8_t header[QCOW2_SYNTH_HEADER_LENGTH];
	uint8_t *rt;	 /* rb_count big-endian entries */
	uint8_t *l1;	 /* l1_size big-endian entries */
	uint64_t *l2_l1; /* L2 table t serves L1 entry l2_l1[t] */
	uint64_t *rank;	 /* rank[b]: non-hole entries before entry
			  * b * RANK_BLOCK; one more than the blocks */
	uint64_t rank_blocks;
};

static void put_be(uint8_t *p, uint64_t v, unsigned int bytes)
{
	for (unsigned int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

static bool is_hole(const struct qcow2_synth *s, uint64_t i)
{
	return repo_index_is_hole(s->idx, i);
}

/* non-hole entries before entry @i (@i <= count) */
static uint64_t rank_of(const struct qcow2_synth *s, uint64_t i)
{
	uint64_t b = i / RANK_BLOCK;
	uint64_t r = s->rank[b];

	for (uint64_t j = b * RANK_BLOCK; j < i; j++)
		r += !is_hole(s, j);
	return r;
}

/* the index entry of data chunk number @k (@k < the number of them) */
static uint64_t select_data(const struct qcow2_synth *s, uint64_t k)
{
	uint64_t lo = 0, hi = s->rank_blocks - 1, r, i;

	/* the last block b with rank[b] <= k holds it */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;

		if (s->rank[mid] <= k)
			lo = mid;
		else
			hi = mid - 1;
	}
	r = s->rank[lo];
	for (i = lo * RANK_BLOCK; i < s->idx->count; i++) {
		if (is_hole(s, i))
			continue;
		if (r == k)
			break;
		r++;
	}
	return i;
}

static int check_index(const struct repo_index *idx)
{
	if (!idx || !repo_index_chunk_size_valid(idx->chunk_size))
		return -EINVAL;
	if (idx->virtual_size > REPO_INDEX_VIRTUAL_MAX)
		return -EFBIG;
	if (idx->count != div_up(idx->virtual_size, idx->chunk_size))
		return -EINVAL;
	if (idx->count > 0 && !idx->digests)
		return -EINVAL;
	if (idx->virtual_size % 512 != 0)
		return -EINVAL;
	return 0;
}

/*
 * The refcount blocks cover every cluster of the file, themselves and the
 * refcount table included: grow both from one cluster until they cover
 * what they add (the smallest fixed point; a block covers at least 32768
 * clusters, so this takes two or three rounds).
 */
static void layout_refcounts(struct qcow2_synth *s, uint64_t l1_clusters)
{
	uint64_t rt_clusters = 1, rb = 1;

	for (;;) {
		uint64_t total = 1 + rt_clusters + rb + l1_clusters +
				 s->l2_count + s->data_clusters;
		uint64_t nrb = div_up(total, s->rb_entries);
		uint64_t nrt = div_up(nrb * 8, s->cluster_size);

		if (nrb == rb && nrt == rt_clusters) {
			s->clusters = total;
			break;
		}
		rb = nrb;
		rt_clusters = nrt;
	}
	s->rb_count = rb;
	s->rt_off = s->cluster_size;
	s->rb_off = s->rt_off + rt_clusters * s->cluster_size;
	s->l1_off = s->rb_off + rb * s->cluster_size;
	s->l2_off = s->l1_off + l1_clusters * s->cluster_size;
	s->data_off = s->l2_off + s->l2_count * s->cluster_size;
	s->size = s->data_off + s->data_clusters * s->cluster_size;
}

static void fill_header(struct qcow2_synth *s)
{
	uint8_t *h = s->header;

	memset(h, 0, sizeof(s->header));
	memcpy(h, "QFI\xfb", 4);
	put_be(h + 4, 3, 4); /* version */
	/* 8: backing_file_offset, 16: backing_file_size: none */
	put_be(h + 20, s->cluster_bits, 4);
	put_be(h + 24, s->idx->virtual_size, 8);
	/* 32: crypt_method none */
	put_be(h + 36, s->l1_size, 4);
	put_be(h + 40, s->l1_off, 8);
	put_be(h + 48, s->rt_off, 8);
	put_be(h + 56, (s->rb_off - s->rt_off) / s->cluster_size, 4);
	/* 60: nb_snapshots, 64: snapshots_offset: none; 72, 80, 88: the
	 * incompatible, compatible and autoclear features: none */
	put_be(h + 96, REFCOUNT_ORDER, 4);
	put_be(h + 100, QCOW2_SYNTH_HEADER_LENGTH, 4);
	/* the end-of-extensions marker (8 zero bytes) follows at 104, in
	 * the zeros of the rest of the cluster */
}

int qcow2_synth_new(const struct repo_index *idx, struct qcow2_synth **out)
{
	struct qcow2_synth *s;
	uint64_t l1_clusters, data_chunks = 0, last_l1 = UINT64_MAX;
	int rc;

	*out = NULL;
	rc = check_index(idx);
	if (rc < 0)
		return rc;
	s = g_try_new0(struct qcow2_synth, 1);
	if (!s)
		return -ENOMEM;
	s->idx = idx;
	/* A chunk is then whole clusters (both are powers of two) and one L2
	 * entry maps up to 2 MiB: 8 bytes of L2 per 2 MiB of data. */
	s->cluster_size = MIN(idx->chunk_size, QCOW2_SYNTH_CLUSTER_MAX);
	s->cluster_bits = (uint32_t)g_bit_nth_lsf(s->cluster_size, -1);
	s->clusters_per_chunk = idx->chunk_size / s->cluster_size;
	s->virtual_clusters = div_up(idx->virtual_size, s->cluster_size);
	s->l2_entries = s->cluster_size / 8;
	s->rb_entries = (uint64_t)s->cluster_size * 8 / (1u << REFCOUNT_ORDER);
	s->l1_size = div_up(s->virtual_clusters, s->l2_entries);
	l1_clusters = div_up(s->l1_size * 8, s->cluster_size);

	s->rank_blocks = div_up(idx->count, RANK_BLOCK);
	s->rank = g_try_new0(uint64_t, s->rank_blocks + 1);
	s->l1 = g_try_malloc0(s->l1_size * 8 + 1);
	if (!s->rank || !s->l1)
		goto fail_nomem;

	/* one pass over the index: data clusters, counts per block, and
	 * which L1 entries get an L2 table (marked, numbered below) */
	for (uint64_t i = 0; i < idx->count; i++) {
		uint64_t j;

		if (i % RANK_BLOCK == 0)
			s->rank[i / RANK_BLOCK] = data_chunks;
		if (is_hole(s, i))
			continue;
		data_chunks++;
		s->data_clusters +=
			div_up(repo_index_chunk_len(idx, i), s->cluster_size);
		/* an L2 table covers a whole number of chunks */
		j = i * s->clusters_per_chunk / s->l2_entries;
		if (j != last_l1) {
			s->l1[j * 8] = 1;
			s->l2_count++;
			last_l1 = j;
		}
	}
	s->rank[s->rank_blocks] = data_chunks;

	s->l2_l1 = g_try_new0(uint64_t, s->l2_count + 1);
	if (!s->l2_l1)
		goto fail_nomem;
	layout_refcounts(s, l1_clusters);
	s->rt = g_try_malloc0(s->rb_count * 8);
	if (!s->rt)
		goto fail_nomem;
	for (uint64_t b = 0; b < s->rb_count; b++)
		put_be(s->rt + 8 * b, s->rb_off + b * s->cluster_size, 8);
	for (uint64_t j = 0, t = 0; j < s->l1_size; j++) {
		if (!s->l1[j * 8])
			continue;
		s->l2_l1[t] = j;
		put_be(s->l1 + 8 * j,
		       (s->l2_off + t * s->cluster_size) | OFLAG_COPIED, 8);
		t++;
	}
	fill_header(s);
	*out = s;
	return 0;

fail_nomem:
	qcow2_synth_free(s);
	return -ENOMEM;
}

void qcow2_synth_free(struct qcow2_synth *s)
{
	if (!s)
		return;
	g_free(s->rt);
	g_free(s->l1);
	g_free(s->l2_l1);
	g_free(s->rank);
	g_free(s);
}

uint64_t qcow2_synth_size(const struct qcow2_synth *s)
{
	return s->size;
}

uint32_t qcow2_synth_cluster_size(const struct qcow2_synth *s)
{
	return s->cluster_size;
}

/*
 * piece_at() - the longest piece that starts at @off (< size) and stays
 * in one region and of one kind.
 */
static void piece_at(const struct qcow2_synth *s, uint64_t off,
		     struct qcow2_piece *p)
{
	uint64_t end, cs = s->cluster_size;

	memset(p, 0, sizeof(*p));
	p->off = off;
	p->kind = QCOW2_PIECE_META;
	if (off < s->rt_off) {
		if (off < QCOW2_SYNTH_HEADER_LENGTH) {
			end = QCOW2_SYNTH_HEADER_LENGTH;
		} else {
			p->kind = QCOW2_PIECE_ZERO;
			end = s->rt_off;
		}
	} else if (off < s->rb_off) {
		end = s->rt_off + s->rb_count * 8;
		if (off >= end) {
			p->kind = QCOW2_PIECE_ZERO;
			end = s->rb_off;
		}
	} else if (off < s->l1_off) {
		uint64_t b = (off - s->rb_off) / cs;
		uint64_t start = s->rb_off + b * cs;
		uint64_t used =
			MIN(s->rb_entries, s->clusters - b * s->rb_entries);

		end = start + used * 2;
		if (off >= end) {
			p->kind = QCOW2_PIECE_ZERO;
			end = start + cs;
		}
	} else if (off < s->l2_off) {
		end = s->l1_off + s->l1_size * 8;
		if (off >= end) {
			p->kind = QCOW2_PIECE_ZERO;
			end = s->l2_off;
		}
	} else if (off < s->data_off) {
		end = s->data_off;
	} else {
		uint64_t rel = off - s->data_off;
		uint64_t i = select_data(s, rel / s->idx->chunk_size);
		uint32_t within = (uint32_t)(rel % s->idx->chunk_size);
		uint32_t clen = repo_index_chunk_len(s->idx, i);

		if (within < clen) {
			p->kind = QCOW2_PIECE_CHUNK;
			p->chunk = i;
			p->chunk_off = within;
			end = off + (clen - within);
		} else {
			p->kind = QCOW2_PIECE_ZERO;
			end = off + (div_up(clen, cs) * cs - within);
		}
	}
	p->len = (size_t)MIN(end - off, (uint64_t)SIZE_MAX);
}

ssize_t qcow2_synth_read(const struct qcow2_synth *s, uint64_t off, size_t len,
			 struct qcow2_piece *pieces, size_t max, size_t *n)
{
	uint64_t pos = off, end;

	*n = 0;
	if (len == 0 || off >= s->size)
		return 0;
	if (max == 0)
		return -EINVAL;
	len = MIN(len, (size_t)SSIZE_MAX);
	end = off + MIN((uint64_t)len, s->size - off);
	while (pos < end && *n < max) {
		struct qcow2_piece *p = &pieces[(*n)++];

		piece_at(s, pos, p);
		p->len = (size_t)MIN((uint64_t)p->len, end - pos);
		pos += p->len;
	}
	return (ssize_t)(pos - off);
}

/* The bytes [@off, @off + @len) of the L2 region into @buf. */
static void fill_l2(const struct qcow2_synth *s, uint64_t off, size_t len,
		    uint8_t *buf)
{
	uint64_t rel = off - s->l2_off, end = rel + len;
	uint64_t cs = s->cluster_size, cpc = s->clusters_per_chunk;
	uint64_t chunk = UINT64_MAX, r = 0; /* chunk of the last entry, rank */

	for (uint64_t e = rel / 8; e * 8 < end; e++) {
		uint64_t t = e / s->l2_entries;
		uint64_t v = s->l2_l1[t] * s->l2_entries + e % s->l2_entries;
		uint64_t val = 0, from, to;
		uint8_t bytes[8];

		if (v < s->virtual_clusters) {
			uint64_t c = v / cpc;

			/* consecutive entries mostly stay in one chunk or
			 * move to the next: count, don't search */
			if (c == chunk + 1 && chunk != UINT64_MAX)
				r += !is_hole(s, chunk);
			else if (c != chunk)
				r = rank_of(s, c);
			chunk = c;
			if (!is_hole(s, c))
				val = (s->data_off + r * s->idx->chunk_size +
				       (v % cpc) * cs) |
				      OFLAG_COPIED;
		}
		put_be(bytes, val, 8);
		from = MAX(e * 8, rel);
		to = MIN(e * 8 + 8, end);
		memcpy(buf + (from - rel), bytes + (from - e * 8), to - from);
	}
}

/* The bytes of a META piece @p (one region) into @buf. */
static void fill_meta(const struct qcow2_synth *s, uint64_t off, size_t len,
		      uint8_t *buf)
{
	if (off < s->rt_off) {
		memcpy(buf, s->header + off, len);
	} else if (off < s->rb_off) {
		memcpy(buf, s->rt + (off - s->rt_off), len);
	} else if (off < s->l1_off) {
		/* every entry is the 16-bit big-endian 1: 00 01 00 01 ... */
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)((off + k - s->rb_off) & 1);
	} else if (off < s->l2_off) {
		memcpy(buf, s->l1 + (off - s->l1_off), len);
	} else {
		fill_l2(s, off, len, buf);
	}
}

int qcow2_synth_fill(const struct qcow2_synth *s, const struct qcow2_piece *p,
		     void *buf)
{
	uint64_t pos = p->off, end;
	uint8_t *dst = buf;

	if (p->kind != QCOW2_PIECE_META && p->kind != QCOW2_PIECE_ZERO)
		return -EINVAL;
	if (p->off > s->size || p->len > s->size - p->off)
		return -EINVAL;
	end = p->off + p->len;
	/* by the region's pieces, so that any sub-range of a piece works */
	while (pos < end) {
		struct qcow2_piece q;
		size_t n;

		piece_at(s, pos, &q);
		n = (size_t)MIN((uint64_t)q.len, end - pos);
		if (q.kind == QCOW2_PIECE_CHUNK)
			return -EINVAL;
		if (q.kind == QCOW2_PIECE_ZERO)
			memset(dst, 0, n);
		else
			fill_meta(s, pos, n, dst);
		dst += n;
		pos += n;
	}
	return 0;
}
