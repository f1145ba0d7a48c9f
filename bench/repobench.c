/*
 * repobench.c - a backup into the repository (issue 13) against today's
 * backup, in one run: `bash bench/run.sh --repo` (docs/benchmarks.md,
 * "Backups into the repository (issue 13)").
 *
 * The image: a qcow2 of --gib GiB (2 by default) made once per run from a
 * raw file of segments of 64 KiB .. 8 MiB (4 KiB multiples, fixed seed),
 * drawn 2:1:1 from the regular files of /usr/lib and /usr/share (in a
 * fixed shuffled order, cycled when short), random bytes, and zeros, then
 * `qemu-img convert -O qcow2` (which leaves the zeros unallocated, as a
 * guest's unused blocks are).
 *
 * 1. Full backup: repo_backup_image() of the image into an empty
 *    repository (every chunk read, hashed, written, fsynced, renamed)
 *    against `qemu-img convert -U -O qcow2` of it plus fsync of the copy
 *    (what engine/backup.c does today), and against itself reading the
 *    image over NBD (repo_backup_set_read_over_nbd(true): before the
 *    layer files were read directly, imagemap.h).  The sides alternate which goes
 *    first; each pass starts with the page cache dropped (--no-drop: not).
 * 2. Incremental: a layer over the image (qemu-img create -b) gets 1% of
 *    the image's size in 1 MiB writes at random 1 MiB-aligned offsets;
 *    then repo_changed_extents() of that layer plus repo_backup_image()
 *    over the full backup's index, against a full backup of the same
 *    layer into an empty repository: bytes read from primary, bytes
 *    written, time.  The incremental index must equal the full one.
 *
 * Prints medians of --reps passes (3 by default), min..max, and ratios of
 * medians; no target is checked (issue 13's own targets are for a later
 * step's mount benchmark), the exit status is 0 unless a run fails.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib.h>

#include "chunkstore.h"
#include "digest.h"
#include "log.h"
#include "repo_backup.h"
#include "repo_index.h"

#define MiB (UINT64_C(1) << 20)

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

static void die(const char *what, int rc)
{
	fprintf(stderr, "repobench: %s: %s\n", what, g_strerror(rc < 0 ? -rc : rc));
	exit(2);
}

static void run(char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *err = NULL;
	int status;

	if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH |
			  G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err,
			  &status, &error) ||
	    !g_spawn_check_wait_status(status, NULL)) {
		fprintf(stderr, "repobench: %s failed: %s\n", argv[0],
			error ? error->message : err);
		exit(2);
	}
}

static bool drop = true;

static void drop_caches(void)
{
	int fd;

	sync();
	if (!drop)
		return;
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0 || write(fd, "3\n", 2) != 2)
		die("drop_caches", errno);
	close(fd);
}

/* ---- the data ---- */

static void list_files(const char *dir, GPtrArray *out)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;

	if (!d)
		return;
	while ((name = g_dir_read_name(d))) {
		char *p = g_build_filename(dir, name, NULL);
		struct stat st;

		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			list_files(p, out);
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
			g_ptr_array_add(out, p);
		else
			g_free(p);
	}
	g_dir_close(d);
}

/* Fill @buf (@len bytes) from the /usr files, in order, cycling. */
static void file_bytes(GPtrArray *files, guint *next, int *fd, char *buf,
		       size_t len)
{
	while (len > 0) {
		ssize_t n;

		if (*fd < 0) {
			*fd = open(files->pdata[*next % files->len],
				   O_RDONLY | O_CLOEXEC);
			(*next)++;
			continue;
		}
		n = read(*fd, buf, len);
		if (n <= 0) {
			close(*fd);
			*fd = -1;
			continue;
		}
		buf += n;
		len -= n;
	}
}

/* @path: a qcow2 of @size bytes of the 2:1:1 mix. */
static void make_image(const char *dir, const char *path, uint64_t size)
{
	g_autofree char *raw = g_build_filename(dir, "mix.raw", NULL);
	g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
	g_autofree char *buf = g_malloc(8 * MiB);
	uint64_t pos = 0, kind[3] = { 0 };
	guint next = 0;
	int in = -1, out;

	list_files("/usr/lib", files);
	list_files("/usr/share", files);
	if (files->len == 0)
		die("no files under /usr", ENOENT);
	for (guint i = files->len - 1; i > 0; i--) { /* fixed shuffle */
		guint j = next_random() % (i + 1);
		gpointer t = files->pdata[i];

		files->pdata[i] = files->pdata[j];
		files->pdata[j] = t;
	}
	out = open(raw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		die(raw, errno);
	while (pos < size) {
		uint64_t seg = (16 + next_random() % (2048 - 16 + 1)) * 4096;
		unsigned w = next_random() % 4; /* 0, 1: files; 2 random; 3 zero */
		int k = w < 2 ? 0 : (int)w - 1;

		if (seg > size - pos)
			seg = size - pos;
		if (k == 0) {
			file_bytes(files, &next, &in, buf, seg);
		} else if (k == 1) {
			for (uint64_t i = 0; i < seg; i += 8) {
				uint64_t r = next_random();
				memcpy(buf + i, &r, 8);
			}
		}
		if (k == 2) {
			if (ftruncate(out, pos + seg) < 0)
				die("ftruncate", errno);
		} else if (pwrite(out, buf, seg, pos) != (ssize_t)seg) {
			die("write", errno);
		}
		kind[k] += seg;
		pos += seg;
	}
	if (in >= 0)
		close(in);
	close(out);
	char *argv[] = { "qemu-img", "convert", "-f", "raw", "-O", "qcow2",
			 raw, (char *)path, NULL };
	run(argv);
	unlink(raw);
	printf("# image: %.0f MiB: %.0f%% files, %.0f%% random, %.0f%% zero\n",
	       size / (double)MiB, 100.0 * kind[0] / size,
	       100.0 * kind[1] / size, 100.0 * kind[2] / size);
}

/* ---- the two sides ---- */

static void remove_tree(const char *path)
{
	char *argv[] = { "rm", "-rf", "--one-file-system", (char *)path, NULL };

	run(argv);
}

/* A full backup of @image into a new repository @repo; *@st its stats,
 * @idx (if not NULL) its index.  Return: seconds. */
static double repo_full(const char *repo, const char *image, uint32_t chunk,
			struct repo_backup_stats *st, struct repo_index *idx)
{
	struct chunkstore *cs;
	struct repo_index local;
	double t;
	int rc;

	remove_tree(repo);
	if (mkdir(repo, 0700) < 0)
		die(repo, errno);
	rc = chunkstore_open(repo, chunk, &cs);
	if (rc < 0)
		die("chunkstore_open", rc);
	drop_caches();
	t = now();
	rc = repo_backup_image(cs, image, NULL, NULL, NULL, NULL, NULL,
			       idx ? idx : &local, st);
	t = now() - t;
	if (rc < 0)
		die("repo_backup_image", rc);
	if (!idx)
		repo_index_release(&local);
	chunkstore_close(cs);
	return t;
}

/* Today's backup: qemu-img convert, then fsync of the copy. */
static double convert_fsync(const char *dir, const char *image)
{
	g_autofree char *dst = g_build_filename(dir, "copy.qcow2", NULL);
	char *argv[] = { "qemu-img", "convert", "-U", "-f", "qcow2", "-O",
			 "qcow2", (char *)image, dst, NULL };
	double t;
	int fd;

	unlink(dst);
	drop_caches();
	t = now();
	run(argv);
	fd = open(dst, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		die("fsync", errno);
	t = now() - t;
	close(fd);
	unlink(dst);
	return t;
}

/* A bare convert of @layer alone (no backing chain), plus fsync. */
static double convert_layer(const char *dir, const char *layer)
{
	g_autofree char *dst = g_build_filename(dir, "layer.qcow2", NULL);
	/* the layer's own clusters only: its backing file left out */
	g_autofree char *opts = g_strdup_printf(
		"json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\","
		"\"filename\":\"%s\"},\"backing\":null}",
		layer);
	char *argv[] = { "qemu-img", "convert", "-U", opts, "-O", "qcow2",
			 dst, NULL };
	double t;
	int fd;

	unlink(dst);
	drop_caches();
	t = now();
	run(argv);
	fd = open(dst, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		die("fsync", errno);
	t = now() - t;
	close(fd);
	unlink(dst);
	return t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	double s[64];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double vmin(const double *v, int n)
{
	double m = v[0];

	for (int i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static double vmax(const double *v, int n)
{
	double m = v[0];

	for (int i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

static void row(const char *name, double *t, int n, double bytes)
{
	printf("%-44s %7.2f s (%.2f..%.2f)  %6.0f MB/s\n", name, median(t, n),
	       vmin(t, n), vmax(t, n), bytes / median(t, n) / 1e6);
}

int main(int argc, char **argv)
{
	g_autofree char *dir = NULL;
	int gib = 2, reps = 3, chunk_mib = 4;
	gboolean no_drop = FALSE;
	GOptionEntry entries[] = {
		{ "dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
		  "work directory, on the disk that matters", "DIR" },
		{ "gib", 0, 0, G_OPTION_ARG_INT, &gib, "image size (2)", "N" },
		{ "reps", 0, 0, G_OPTION_ARG_INT, &reps, "passes (3)", "N" },
		{ "chunk-mib", 0, 0, G_OPTION_ARG_INT, &chunk_mib,
		  "chunk size (4)", "N" },
		{ "no-drop", 0, 0, G_OPTION_ARG_NONE, &no_drop,
		  "keep the page cache between passes", NULL },
		{ NULL }
	};
	g_autoptr(GOptionContext) oc = g_option_context_new("");
	g_autoptr(GError) error = NULL;
	g_autofree char *image = NULL, *layer = NULL, *repo = NULL;
	uint64_t size, written = 0;
	uint32_t chunk;
	double t_repo[64], t_conv[64], t_inc[64], t_ifull[64], t_layer[64];
	double t_each[64];
	struct repo_backup_stats st_full = { 0 }, st_inc = { 0 }, st_ifull = { 0 };
	struct repo_index base_idx = { 0 }, inc_idx, ifull_idx;
	int rc;

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &error) || !dir ||
	    reps < 1 || reps > 64 || gib < 1) {
		fprintf(stderr, "repobench: %s\n",
			error ? error->message : "--dir DIR, 1 <= reps <= 64");
		return 2;
	}
	drop = !no_drop;
	snap_log_open(NULL, LOG_ERR, LOG_ERR);
	size = (uint64_t)gib << 30;
	chunk = (uint32_t)chunk_mib * MiB;
	image = g_build_filename(dir, "vol.qcow2", NULL);
	layer = g_build_filename(dir, "s2.qcow2", NULL);
	repo = g_build_filename(dir, "repo", NULL);

	make_image(dir, image, size);
	printf("# chunk size %d MiB, %d passes, page cache %s\n", chunk_mib,
	       reps, drop ? "dropped before each pass" : "kept");

	/* 1. full backup against convert + fsync; and against itself with
	 * over NBD (before the layer files were read directly) */
	for (int i = 0; i < reps; i++) {
		if (i % 2 == 0) {
			t_repo[i] = repo_full(repo, image, chunk, &st_full, NULL);
			t_conv[i] = convert_fsync(dir, image);
			repo_backup_set_read_over_nbd(true);
			t_each[i] = repo_full(repo, image, chunk, NULL, NULL);
			repo_backup_set_read_over_nbd(false);
		} else {
			repo_backup_set_read_over_nbd(true);
			t_each[i] = repo_full(repo, image, chunk, NULL, NULL);
			repo_backup_set_read_over_nbd(false);
			t_conv[i] = convert_fsync(dir, image);
			t_repo[i] = repo_full(repo, image, chunk, &st_full, NULL);
		}
	}
	printf("\n## full backup of %.0f MiB\n", size / (double)MiB);
	row("qemu-img convert + fsync (today, baseline)", t_conv, reps, size);
	row("repo_backup_image, empty repository", t_repo, reps, size);
	row("same, read over NBD (before)", t_each, reps, size);
	printf("time ratio repo / convert: %.2fx (read over NBD: %.2fx); "
	       "read %.0f MiB, %" G_GUINT64_FORMAT
	       " chunks written, %" G_GUINT64_FORMAT " reused, %" G_GUINT64_FORMAT
	       " zero\n",
	       median(t_repo, reps) / median(t_conv, reps),
	       median(t_each, reps) / median(t_conv, reps),
	       st_full.bytes_read / (double)MiB, st_full.chunks_written,
	       st_full.chunks_reused, st_full.chunks_zero);
	fflush(stdout);

	/* 2. incremental after 1% written */
	{
		g_autofree char *sz = g_strdup_printf("%" G_GUINT64_FORMAT, size);
		char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2",
				   "-F", "qcow2", "-b", image, layer, sz, NULL };
		GPtrArray *io = g_ptr_array_new_with_free_func(g_free);
		uint64_t n_writes = size / 100 / MiB;

		run(create);
		g_ptr_array_add(io, g_strdup("qemu-io"));
		g_ptr_array_add(io, g_strdup("-f"));
		g_ptr_array_add(io, g_strdup("qcow2"));
		for (uint64_t i = 0; i < n_writes; i++) {
			uint64_t off = next_random() % (size / MiB);

			g_ptr_array_add(io, g_strdup("-c"));
			g_ptr_array_add(io, g_strdup_printf(
				"write -P %u %" G_GUINT64_FORMAT "M 1M",
				(unsigned)(i % 255) + 1, off));
		}
		g_ptr_array_add(io, g_strdup(layer));
		g_ptr_array_add(io, NULL);
		run((char **)io->pdata);
		g_ptr_array_free(io, TRUE);
		written = n_writes * MiB;
	}
	for (int i = 0; i < reps; i++) {
		struct chunkstore *cs;
		struct repo_changes changed;
		const char *layers[] = { layer };

		/* the base: a full backup of the image, not timed */
		repo_index_release(&base_idx);
		repo_full(repo, image, chunk, NULL, &base_idx);
		rc = chunkstore_open(repo, chunk, &cs);
		if (rc < 0)
			die("chunkstore_open", rc);
		drop_caches();
		t_inc[i] = now();
		rc = repo_changed_extents(layers, 1, NULL, &changed);
		if (rc < 0)
			die("repo_changed_extents", rc);
		rc = repo_backup_image(cs, layer, &base_idx, &changed, NULL,
				       NULL, NULL, &inc_idx, &st_inc);
		t_inc[i] = now() - t_inc[i];
		if (rc < 0)
			die("repo_backup_image (incremental)", rc);
		repo_changes_clear(&changed);
		chunkstore_close(cs);
		t_layer[i] = convert_layer(dir, layer);
		t_ifull[i] = repo_full(repo, layer, chunk, &st_ifull, &ifull_idx);
		if (inc_idx.count != ifull_idx.count ||
		    memcmp(inc_idx.digests, ifull_idx.digests,
			   inc_idx.count * DIGEST_LEN) != 0)
			die("incremental index differs from the full one", EIO);
		repo_index_release(&inc_idx);
		repo_index_release(&ifull_idx);
	}
	printf("\n## incremental after %.0f MiB (1%%) written in 1 MiB writes\n",
	       written / (double)MiB);
	row("full backup of the layer, empty repository", t_ifull, reps, size);
	row("incremental (changed extents + backup)", t_inc, reps, size);
	row("bare qemu-img convert of the layer + fsync", t_layer, reps, written);
	printf("time ratio incremental / full: %.3fx; incremental / bare layer "
	       "convert: %.2fx\n",
	       median(t_inc, reps) / median(t_ifull, reps),
	       median(t_inc, reps) / median(t_layer, reps));
	printf("bytes read: incremental %.0f MiB, full %.0f MiB: %.3fx; "
	       "%.2fx the bytes written to the layer\n",
	       st_inc.bytes_read / (double)MiB,
	       st_ifull.bytes_read / (double)MiB,
	       (double)st_inc.bytes_read / st_ifull.bytes_read,
	       (double)st_inc.bytes_read / written);
	printf("chunks: incremental read %" G_GUINT64_FORMAT ", wrote %"
	       G_GUINT64_FORMAT " (%.0f MiB), copied %" G_GUINT64_FORMAT
	       "; incremental index equals the full one\n",
	       st_inc.chunks_read, st_inc.chunks_written,
	       st_inc.chunks_written * (double)chunk / MiB, st_inc.chunks_copied);
	repo_index_release(&base_idx);
	return 0;
}
