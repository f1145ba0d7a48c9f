/*
 * chunkbench.c - what a repository chunk costs (issue 13): SHA-256 from
 * OpenSSL against GLib's GChecksum, zstd levels 1 and 3 against storing
 * the chunk raw, for chunks of 1, 4 and 16 MiB.  Run by
 * `bash bench/run.sh --chunks` (docs/benchmarks.md, "Repository chunks
 * (issue 13)"); no target is checked: its numbers decide the chunk size
 * and the compression of engine/chunkstore.c.
 *
 * The data: no qcow2 of a real guest is at hand, so a mix made once per
 * run, in segments of 64 KiB .. 8 MiB (4 KiB multiples, fixed seed) drawn
 * with weights 2:1:1 from
 *   - the regular files under /usr/lib and /usr/share, in a fixed shuffled
 *     order, concatenated (binaries, libraries, text, compressed docs);
 *   - random bytes (like encrypted or already compressed data);
 *   - zero bytes (like a guest's unused blocks).
 * A chunk that is all zero is not stored (and not hashed: chunkstore.c
 * checks for zeros first), so each measure runs on the other chunks.
 *
 * Each measure runs --reps times, the two sides of each comparison
 * alternating which goes first; printed are medians, min..max, and the
 * range of the paired ratios.  The write measure does what
 * chunkstore_put() does per chunk (hash, compress or not, write to a
 * temporary file, fsync, rename) in --dir, which must be on the disk that
 * matters; with --drop it also drops the page cache before each pass.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zstd.h>

#define MIB (1024.0 * 1024.0)
#define HEADER 16 /* the chunk file's magic, flags and raw length */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull); /* splitmix64 */

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "chunkbench: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* The regular files under @dir, recursively, appended to @files. */
static void walk(const char *dir, GPtrArray *files, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d || depth > 12) {
		if (d)
			closedir(d);
		return;
	}
	while ((e = readdir(d))) {
		char *p;
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		p = g_build_filename(dir, e->d_name, NULL);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			walk(p, files, depth + 1);
			g_free(p);
		} else if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) &&
			   st.st_size > 0) {
			g_ptr_array_add(files, p);
		} else {
			g_free(p);
		}
	}
	closedir(d);
}

static int compare_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fill @buf with @len bytes of the files' concatenation, from *@at on. */
static size_t file_bytes(GPtrArray *files, guint *at, unsigned char *buf,
			 size_t len)
{
	size_t done = 0;
	static int fd = -1;

	while (done < len && *at < files->len) {
		ssize_t n;

		if (fd < 0) {
			fd = open(files->pdata[*at], O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				(*at)++;
				continue;
			}
		}
		n = read(fd, buf + done, len - done);
		if (n <= 0) {
			close(fd);
			fd = -1;
			(*at)++;
			continue;
		}
		done += (size_t)n;
	}
	return done;
}

static unsigned char *make_corpus(size_t size, size_t *from_files,
				  size_t *randoms, size_t *zeros)
{
	unsigned char *c = g_malloc(size);
	GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
	guint at = 0;
	size_t off = 0;

	walk("/usr/lib", files, 0);
	walk("/usr/share", files, 0);
	g_ptr_array_sort(files, compare_names);
	for (guint i = files->len; i > 1; i--) { /* Fisher-Yates, fixed seed */
		guint j = (guint)(next_random() % i);
		gpointer t = files->pdata[i - 1];

		files->pdata[i - 1] = files->pdata[j];
		files->pdata[j] = t;
	}
	*from_files = *randoms = *zeros = 0;
	while (off < size) {
		size_t len = ((next_random() % 2048) + 16) * 4096; /* 64K..8M */
		unsigned kind = (unsigned)(next_random() % 4);

		len = MIN(len, size - off);
		if (kind <= 1) {
			size_t got = file_bytes(files, &at, c + off, len);

			memset(c + off + got, 0, len - got);
			*from_files += got;
			*zeros += len - got;
		} else if (kind == 2) {
			for (size_t i = 0; i + 8 <= len; i += 8) {
				uint64_t r = next_random();

				memcpy(c + off + i, &r, 8);
			}
			*randoms += len;
		} else {
			memset(c + off, 0, len);
			*zeros += len;
		}
		off += len;
	}
	g_ptr_array_free(files, TRUE);
	return c;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

struct chunks {
	size_t size;	    /* chunk size */
	size_t n;	    /* non-zero chunks */
	size_t zero;	    /* zero chunks (not stored) */
	unsigned char **at; /* the non-zero chunks in the corpus */
	size_t bytes;	    /* their bytes */
};

/* ---- the measures: each returns seconds for one pass ---- */

static double hash_openssl(struct chunks *ch)
{
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char d[32];
	unsigned int dl;
	double t = now();

	for (size_t i = 0; i < ch->n; i++) {
		EVP_DigestInit_ex(ctx, md, NULL);
		EVP_DigestUpdate(ctx, ch->at[i], ch->size);
		EVP_DigestFinal_ex(ctx, d, &dl);
	}
	t = now() - t;
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(md);
	return t;
}

static double hash_glib(struct chunks *ch)
{
	guint8 d[32];
	gsize dl;
	double t = now();

	for (size_t i = 0; i < ch->n; i++) {
		GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);

		g_checksum_update(c, ch->at[i], ch->size);
		dl = sizeof(d);
		g_checksum_get_digest(c, d, &dl);
		g_checksum_free(c);
	}
	return now() - t;
}

/* Compress every chunk at @level; *@stored: bytes on disk after the 1/8
 * rule (a chunk kept compressed only when that saves 1/8 of it). */
static double compress_all(struct chunks *ch, int level, size_t *stored,
			   size_t *kept)
{
	size_t cap = ZSTD_compressBound(ch->size);
	unsigned char *out = g_malloc(cap);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	double t;

	*stored = *kept = 0;
	t = now();
	for (size_t i = 0; i < ch->n; i++) {
		size_t n = ZSTD_compressCCtx(cctx, out, cap, ch->at[i],
					     ch->size, level);

		if (ZSTD_isError(n)) {
			fprintf(stderr, "chunkbench: zstd: %s\n",
				ZSTD_getErrorName(n));
			exit(2);
		}
		if (n <= ch->size - ch->size / 8) {
			*stored += n;
			(*kept)++;
		} else {
			*stored += ch->size;
		}
	}
	t = now() - t;
	ZSTD_freeCCtx(cctx);
	g_free(out);
	return t;
}

/* Decompress every chunk kept compressed at @level, copy the others (a
 * read of every chunk); the compression itself is not timed. */
static double decompress_all(struct chunks *ch, int level)
{
	size_t cap = ZSTD_compressBound(ch->size);
	unsigned char **z = g_new0(unsigned char *, ch->n);
	size_t *zlen = g_new0(size_t, ch->n);
	unsigned char *out = g_malloc(ch->size);
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	double t;

	for (size_t i = 0; i < ch->n; i++) {
		z[i] = g_malloc(cap);
		zlen[i] = ZSTD_compress(z[i], cap, ch->at[i], ch->size, level);
		if (zlen[i] > ch->size - ch->size / 8)
			zlen[i] = 0; /* stored raw */
	}
	t = now();
	for (size_t i = 0; i < ch->n; i++) {
		if (zlen[i]) {
			size_t n = ZSTD_decompressDCtx(dctx, out, ch->size,
						       z[i], zlen[i]);

			if (n != ch->size) {
				fprintf(stderr, "chunkbench: bad round trip\n");
				exit(2);
			}
		} else {
			memcpy(out, ch->at[i], ch->size);
		}
	}
	t = now() - t;
	for (size_t i = 0; i < ch->n; i++)
		g_free(z[i]);
	g_free(z);
	g_free(zlen);
	g_free(out);
	ZSTD_freeDCtx(dctx);
	return t;
}

static void write_all_fd(int fd, const void *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		p = (const char *)p + n;
		len -= (size_t)n;
	}
}

static void drop_caches(bool drop)
{
	int fd;

	sync();
	if (!drop)
		return;
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "3\n", 2) < 0)
			perror("chunkbench: drop_caches");
		close(fd);
	}
}

struct put_pass {
	struct chunks *ch;
	const char *dir;
	int level;	/* 0: raw */
	int threads, t; /* this worker takes chunks t, t+threads, ... */
};

/* What chunkstore_put() does for each of its chunks: hash, compress at
 * ->level (0: raw), write header and payload to a temporary file, fsync,
 * rename. */
static gpointer put_worker(gpointer arg)
{
	struct put_pass *p = arg;
	struct chunks *ch = p->ch;
	size_t cap = ZSTD_compressBound(ch->size);
	unsigned char *out = g_malloc(cap);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char tmp[4096], name[4096];

	for (size_t i = (size_t)p->t; i < ch->n; i += (size_t)p->threads) {
		unsigned char d[32], hdr[HEADER] = "SNAPCHK1";
		const unsigned char *payload = ch->at[i];
		size_t plen = ch->size;
		unsigned int dl;
		uint32_t v;
		int fd;

		EVP_DigestInit_ex(ctx, md, NULL);
		EVP_DigestUpdate(ctx, ch->at[i], ch->size);
		EVP_DigestFinal_ex(ctx, d, &dl);
		v = 0;
		if (p->level > 0) {
			size_t n = ZSTD_compressCCtx(cctx, out, cap, ch->at[i],
						     ch->size, p->level);

			if (!ZSTD_isError(n) && n <= ch->size - ch->size / 8) {
				payload = out;
				plen = n;
				v = 1;
			}
		}
		memcpy(hdr + 8, &v, 4);
		v = (uint32_t)ch->size;
		memcpy(hdr + 12, &v, 4);
		snprintf(tmp, sizeof(tmp), "%s/%zu.chunk", p->dir, i);
		snprintf(name, sizeof(name), "%s/%02x%02x%02x%02x%zu", p->dir,
			 d[0], d[1], d[2], d[3], i);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			die(tmp);
		write_all_fd(fd, hdr, HEADER);
		write_all_fd(fd, payload, plen);
		if (fsync(fd) < 0)
			die("fsync");
		close(fd);
		if (rename(tmp, name) < 0)
			die("rename");
	}
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(md);
	ZSTD_freeCCtx(cctx);
	g_free(out);
	return NULL;
}

/* Put every chunk with @threads workers; then remove the files again
 * (untimed). */
static double put_all(struct chunks *ch, const char *dir, int level,
		      int threads, bool drop)
{
	struct put_pass p[8];
	GThread *th[8];
	double t;

	drop_caches(drop);
	t = now();
	for (int i = 0; i < threads; i++) {
		p[i] = (struct put_pass){ ch, dir, level, threads, i };
		th[i] = g_thread_new("put", put_worker, &p[i]);
	}
	for (int i = 0; i < threads; i++)
		g_thread_join(th[i]);
	/* one fsync of the directory, as a fan-out directory gets per chunk:
	 * cheap next to the data's */
	{
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd < 0 || fsync(dfd) < 0)
			die("fsync dir");
		close(dfd);
	}
	t = now() - t;
	{
		GDir *gd = g_dir_open(dir, 0, NULL);
		const char *e;

		while (gd && (e = g_dir_read_name(gd))) {
			char *path = g_build_filename(dir, e, NULL);

			unlink(path);
			g_free(path);
		}
		if (gd)
			g_dir_close(gd);
	}
	return t;
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[64];

	memcpy(s, v, sizeof(double) * n);
	qsort(s, n, sizeof(double), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void min_max(const double *v, int n, double *lo, double *hi)
{
	*lo = *hi = v[0];
	for (int i = 1; i < n; i++) {
		*lo = MIN(*lo, v[i]);
		*hi = MAX(*hi, v[i]);
	}
}

/* Print side @b against baseline @a (seconds per pass, @reps pairs) as
 * throughput in MB/s of @bytes and the ratio of the medians. */
static void report(const char *what, const char *base_name, const double *a,
		   const char *name, const double *b, int reps, size_t bytes)
{
	double ra[64] = { 0 }, lo, hi, alo, ahi, blo, bhi;
	double ma = median(a, reps), mb = median(b, reps);

	for (int i = 0; i < reps; i++)
		ra[i] = b[i] / a[i];
	min_max(ra, reps, &lo, &hi);
	min_max(a, reps, &alo, &ahi);
	min_max(b, reps, &blo, &bhi);
	printf("  %-22s %-10s %7.0f MB/s (%.0f..%.0f)  %-10s %7.0f MB/s "
	       "(%.0f..%.0f)  time %.2fx (paired %.2f..%.2f)\n",
	       what, base_name, bytes / ma / 1e6, bytes / ahi / 1e6,
	       bytes / alo / 1e6, name, bytes / mb / 1e6, bytes / bhi / 1e6,
	       bytes / blo / 1e6, mb / ma, lo, hi);
}

int main(int argc, char **argv)
{
	static const size_t sizes_mib[] = { 1, 4, 16 };
	int corpus_mib = 128, reps = 3;
	gboolean drop = FALSE;
	g_autofree char *dir = NULL;
	GOptionEntry entries[] = {
		{ "mib", 0, 0, G_OPTION_ARG_INT, &corpus_mib,
		  "size of the data mix (MiB, default 128)", "N" },
		{ "reps", 0, 0, G_OPTION_ARG_INT, &reps,
		  "passes per measure (default 3)", "N" },
		{ "dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
		  "directory for the write measure (on the disk that matters)",
		  "DIR" },
		{ "drop", 0, 0, G_OPTION_ARG_NONE, &drop,
		  "drop the page cache before each write pass (root)", NULL },
		{ NULL }
	};
	g_autoptr(GOptionContext) oc = g_option_context_new("");
	g_autoptr(GError) error = NULL;
	size_t size, from_files, randoms, zeros;
	unsigned char *corpus;
	double t0 = now();

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &error)) {
		fprintf(stderr, "chunkbench: %s\n", error->message);
		return 2;
	}
	if (reps < 1 || reps > 64 || corpus_mib < 16) {
		fprintf(stderr, "chunkbench: --reps 1..64, --mib >= 16\n");
		return 2;
	}
	size = (size_t)corpus_mib << 20;
	corpus = make_corpus(size, &from_files, &randoms, &zeros);
	printf("data: %d MiB: %.0f%% from /usr/lib and /usr/share files, "
	       "%.0f%% random, %.0f%% zero; %ld online CPUs; zstd %s, %s\n",
	       corpus_mib, 100.0 * from_files / size, 100.0 * randoms / size,
	       100.0 * zeros / size, sysconf(_SC_NPROCESSORS_ONLN),
	       ZSTD_versionString(), OpenSSL_version(OPENSSL_VERSION));
	fflush(stdout);

	for (size_t s = 0; s < G_N_ELEMENTS(sizes_mib); s++) {
		struct chunks ch = { .size = sizes_mib[s] << 20 };
		double a[64], b[64], c[64];
		size_t st1 = 0, st3 = 0, k1 = 0, k3 = 0;

		ch.at = g_new0(unsigned char *, size / ch.size);
		for (size_t off = 0; off + ch.size <= size; off += ch.size) {
			if (all_zero(corpus + off, ch.size))
				ch.zero++;
			else
				ch.at[ch.n++] = corpus + off;
		}
		ch.bytes = ch.n * ch.size;
		printf("\nchunk size %zu MiB: %zu chunks, %zu all zero (not "
		       "stored), %zu MiB measured\n",
		       sizes_mib[s], ch.n + ch.zero, ch.zero, ch.bytes >> 20);

		/* SHA-256: GChecksum is the baseline; one pass of each
		 * untimed first */
		hash_glib(&ch);
		hash_openssl(&ch);
		for (int r = 0; r < reps; r++) {
			if (r % 2) {
				b[r] = hash_openssl(&ch);
				a[r] = hash_glib(&ch);
			} else {
				a[r] = hash_glib(&ch);
				b[r] = hash_openssl(&ch);
			}
		}
		report("sha256", "GChecksum", a, "OpenSSL", b, reps, ch.bytes);

		/* compression: level 1 against level 3 (CPU only) */
		for (int r = 0; r < reps; r++) {
			if (r % 2) {
				b[r] = compress_all(&ch, 3, &st3, &k3);
				a[r] = compress_all(&ch, 1, &st1, &k1);
			} else {
				a[r] = compress_all(&ch, 1, &st1, &k1);
				b[r] = compress_all(&ch, 3, &st3, &k3);
			}
		}
		report("zstd compress", "level 1", a, "level 3", b, reps,
		       ch.bytes);
		printf("  %-22s level 1: %.3f (%zu of %zu chunks compressed), "
		       "level 3: %.3f (%zu); stored/raw, 1/8 rule\n",
		       "zstd size", (double)st1 / ch.bytes, k1, ch.n,
		       (double)st3 / ch.bytes, k3);
		for (int r = 0; r < reps; r++) {
			a[r] = decompress_all(&ch, 1);
			b[r] = decompress_all(&ch, 3);
		}
		report("read (decompress)", "level 1", a, "level 3", b, reps,
		       ch.bytes);

		/* the whole put, raw against level 1 and level 3, by one
		 * and by two threads */
		for (int threads = 1; dir && threads <= 2; threads++) {
			for (int r = 0; r < reps; r++) {
				for (int k = 0; k < 3; k++) {
					int which = (k + r) % 3;
					int level = which == 0 ? 0 : which == 1 ? 1 : 3;
					double t = put_all(&ch, dir, level,
							   threads, drop);

					(which == 0 ? a : which == 1 ? b : c)[r] = t;
				}
			}
			printf("  put, %d thread%s (hash + zstd + write + fsync + "
			       "rename):\n", threads, threads > 1 ? "s" : "");
			report("", "raw", a, "level 1", b, reps, ch.bytes);
			report("", "raw", a, "level 3", c, reps, ch.bytes);
		}
		if (dir)
			printf("  %-22s raw %.0f MiB, level 1 %.0f MiB, level 3 "
			       "%.0f MiB\n",
			       "written", ch.bytes / MIB,
			       ch.bytes * ((double)st1 / ch.bytes) / MIB,
			       ch.bytes * ((double)st3 / ch.bytes) / MIB);
		fflush(stdout);
		g_free(ch.at);
	}
	printf("\n%.0f s\n", now() - t0);
	g_free(corpus);
	return 0;
}
