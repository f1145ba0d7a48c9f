/*
 * imagemap.c - the data extents of a qcow2 chain and their places in its
 * files, from `qemu-img map` (contract in imagemap.h).
 *
 * Why the human format of `qemu-img map` and not --output=json: the JSON
 * gives each extent's depth in the chain but not its file, which would
 * need a second program (`qemu-img info --backing-chain`) and the
 * assumption that both saw the same chain; the human format names the
 * file on each line, as QEMU resolved it.  QEMU 7.2 prints it as
 *
 *	Offset          Length          Mapped to       File
 *	0               0x80000         0x50000         /primary/.snapfs/v/l1
 *
 * one line per extent that holds data (printf "%#-16x%#-16x%#-16x%s"),
 * nothing for holes and zero clusters (they read as zeros), and fails with
 * "File contains external, encrypted or compressed clusters." when a data
 * extent has no offset.  Anything else on a line makes the load fail with
 * -ENOTSUP, so the caller reads over NBD rather than trusting a guess.  A
 * number of 16 characters or more (at or above 2^52) would run into the
 * next column: such lines are refused the same way.
 *
 * The chain may be renamed under us: a merge (layer.c) folds a layer L
 * into its child X by committing X's data into L and renaming L's inode
 * over X's name, while a backup of a snapshot over X may be running.
 * Reading X's name after that at offsets qemu-img found in the old X
 * would read garbage.  So, like a seqlock: before each map the chain is
 * walked through the qcow2 headers and every file opened (the
 * descriptors are what the pieces read), and after the map every file it
 * named must still be, under that name, the inode opened before; else the
 * map is run again (MAP_TRIES), then left to NBD.  An inode's data at the
 * offsets the map gave does not change while it is mapped: a merge's
 * commit writes into L only clusters its child X shadows.
 *
 * Each file is also opened a second time with O_DIRECT (through
 * /proc/self/fd, the same inode): imagemap_read() reads aligned pieces
 * with it, straight into the caller's buffer, so a backup neither copies
 * a volume out of the page cache nor fills it (the CPU of a full backup
 * fell by a fifth: docs/benchmarks.md, "The first full backup's CPU").
 * A file system that refuses O_DIRECT, and a piece that is not aligned or
 * reads short, go through the page cache.
 *
 * Every file opened stays open until imagemap_close() (a map may replace
 * the chain, pieces of the one before may still be read): pieces carry
 * the descriptor itself, so readers in other threads never look at the
 * table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "imagemap.h"
#include "image.h"
#include "json.h"
#include "log.h"
#include "proc.h"

/* the first bytes of a qcow2 file hold its header and backing name */
#define HEADER_BYTES 65536
/* a chain longer than this is not mapped (read over NBD) */
#define CHAIN_MAX 1024
/* maps run again when the chain changed during one */
#define MAP_TRIES 3

/* One file of the chain, open. */
struct chain_file {
	char *path;	/* as qemu-img names it */
	int fd;
	int direct_fd;	/* the same file with O_DIRECT, or -1 */
	dev_t dev;
	ino_t ino;
};

struct imagemap {
	char *path;
	uint64_t size;
	GPtrArray *files;	/* struct chain_file, every one ever opened */
	GPtrArray *chain;	/* of those, the chain of the last walk */
	GArray *ext;		/* struct imagemap_piece, the loaded window */
	bool bad_line;		/* a line that is not a map line */
	bool changed;		/* a file named is not the one opened */
};

/* The qcow2 header of the file open as @fd, from its first 4 KiB (a
 * backing name beyond them is left empty: not needed here).  Return: 0;
 * -errno of pread(2); -EINVAL not qcow2. */
static int header_of(int fd, struct qcow2_header *h)
{
	g_autofree unsigned char *buf = g_malloc(4096);
	ssize_t n = pread(fd, buf, 4096, 0);
	int rc = n < 0 ? -errno : image_parse_header(buf, (size_t)n, h);

	return rc == -E2BIG ? 0 : rc;
}

int imagemap_open(const char *path, struct imagemap **out)
{
	struct qcow2_header *h = g_new0(struct qcow2_header, 1);
	struct imagemap *m;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		g_free(h);
		return rc;
	}
	rc = header_of(fd, h);
	close(fd);
	if (rc < 0) {
		g_free(h);
		return rc;
	}
	m = g_new0(struct imagemap, 1);
	m->path = g_strdup(path);
	m->size = h->virtual_size;
	m->files = g_ptr_array_new();
	m->chain = g_ptr_array_new();
	m->ext = g_array_new(FALSE, FALSE, sizeof(struct imagemap_piece));
	g_free(h);
	*out = m;
	return 0;
}

uint64_t imagemap_size(const struct imagemap *m)
{
	return m->size;
}

/* The file open as @fd opened again with O_DIRECT (through /proc, so the
 * same inode whatever its name holds now), or -1 when the file system
 * refuses it (tmpfs before Linux 6.6) or /proc is not there: then it is
 * read through the page cache only. */
static int open_direct(int fd)
{
	char proc[40];
	struct stat a, b;
	int dfd;

	g_snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	dfd = open(proc, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	if (fstat(fd, &a) < 0 || fstat(dfd, &b) < 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		close(dfd);
		return -1;
	}
	return dfd;
}

/* @path, open as @fd, as a chain file: the one already open when it is
 * the same inode under the same name, else a new entry.  Takes @fd. */
static struct chain_file *chain_add(struct imagemap *m, const char *path,
				    int fd, const struct stat *st)
{
	struct chain_file *f;
	guint i;

	for (i = 0; i < m->files->len; i++) {
		f = g_ptr_array_index(m->files, i);
		if (f->dev == st->st_dev && f->ino == st->st_ino &&
		    strcmp(f->path, path) == 0) {
			close(fd);
			return f;
		}
	}
	f = g_new(struct chain_file, 1);
	f->path = g_strdup(path);
	f->fd = fd;
	f->direct_fd = open_direct(fd);
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	g_ptr_array_add(m->files, f);
	return f;
}

/* The name qemu gives the backing file @backing of @path: itself when
 * absolute, else beside @path (QEMU's path_combine()). */
static char *backing_path(const char *path, const char *backing)
{
	const char *slash = strrchr(path, '/');

	if (backing[0] == '/' || !slash)
		return g_strdup(backing);
	return g_strdup_printf("%.*s%s", (int)(slash - path + 1), path, backing);
}

/* Walk the chain from m->path through the qcow2 headers, opening every
 * file, into m->chain.  A file that is not qcow2 ends the chain (a raw
 * base).  Return: 0; -ENOTSUP (a file cannot be opened or read: NBD
 * will say why). */
static int chain_walk(struct imagemap *m)
{
	g_autofree unsigned char *buf = g_malloc(HEADER_BYTES);
	g_autofree struct qcow2_header *h = g_new0(struct qcow2_header, 1);
	char *path = g_strdup(m->path);
	int rc = 0;

	g_ptr_array_set_size(m->chain, 0);
	while (path && rc == 0) {
		struct chain_file *f;
		struct stat st;
		ssize_t n;
		int fd;

		if (m->chain->len >= CHAIN_MAX) {
			rc = -ENOTSUP;
			break;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 ||
		    !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
			if (fd >= 0)
				close(fd);
			rc = -ENOTSUP;
			break;
		}
		f = chain_add(m, path, fd, &st);
		g_ptr_array_add(m->chain, f);
		n = pread(f->fd, buf, HEADER_BYTES, 0);
		g_clear_pointer(&path, g_free);
		if (n < 0)
			rc = -ENOTSUP;
		else if (image_parse_header(buf, (size_t)n, h) == 0 &&
			 h->backing[0])
			path = backing_path(f->path, h->backing);
	}
	g_free(path);
	return rc;
}

/* Chain file @name, if it is still, under that name, the inode the walk
 * opened; NULL when not in the chain, and sets m->changed when it is but
 * its name now holds another inode. */
static struct chain_file *chain_file_of(struct imagemap *m, const char *name)
{
	struct stat st;
	guint i;

	for (i = 0; i < m->chain->len; i++) {
		struct chain_file *f = g_ptr_array_index(m->chain, i);

		if (strcmp(f->path, name) != 0)
			continue;
		if (stat(name, &st) < 0 || st.st_dev != f->dev ||
		    st.st_ino != f->ino) {
			m->changed = true;
			return NULL;
		}
		return f;
	}
	return NULL;
}

/* After a map: are the files of the walk still the ones under their
 * names?  (Those the map named are checked as read; this catches the
 * others, e.g. a backing file renamed while qemu-img opened the chain.) */
static bool chain_unchanged(struct imagemap *m)
{
	struct stat st;
	guint i;

	for (i = 0; i < m->chain->len; i++) {
		struct chain_file *f = g_ptr_array_index(m->chain, i);

		if (stat(f->path, &st) < 0 || st.st_dev != f->dev ||
		    st.st_ino != f->ino)
			return false;
	}
	return true;
}

/* One hex number of qemu-img's "%#-16" column at *@p ("0" or "0x..."),
 * followed by at least one space; moves *@p past the spaces. */
static bool column(const char **p, uint64_t *out)
{
	const char *s = *p;
	char *end;

	if (!g_ascii_isdigit(*s))
		return false;
	errno = 0;
	*out = g_ascii_strtoull(s, &end, 16);
	if (errno || end == s || end - s >= 16 || *end != ' ')
		return false;
	while (*end == ' ')
		end++;
	*p = end;
	return true;
}

struct load_ctx {
	struct imagemap *m;
	int rc;
};

static int on_line(const char *line, void *arg)
{
	struct load_ctx *c = arg;
	struct imagemap_piece x;
	uint64_t off, len, at;
	const char *p = line;
	struct chain_file *f;

	if (g_str_has_prefix(line, "Offset ") && strstr(line, "Mapped to"))
		return 0; /* the heading */
	if (c->rc < 0)
		return 1;
	if (strlen(line) >= 4095 || !column(&p, &off) || !column(&p, &len) ||
	    !column(&p, &at) || !*p || len == 0 || off + len < off ||
	    at + len < at) {
		c->m->bad_line = true;
		return 1; /* kept as the child's "other" text */
	}
	f = chain_file_of(c->m, p);
	if (!f) {
		c->rc = -ENOTSUP;
		return 1;
	}
	x = (struct imagemap_piece){ off, len, at, f->fd, f->direct_fd };
	g_array_append_val(c->m->ext, x);
	return 0;
}

/* One walk and one map of [@offset, @offset + @length).  Return: 0;
 * -EAGAIN the chain changed meanwhile; -ECANCELED; -ENOTSUP. */
static int map_once(struct imagemap *m, uint64_t offset, uint64_t length,
		    GCancellable *cancel)
{
	struct load_ctx c = { .m = m };
	g_autofree char *err = NULL;
	uint64_t prev_end = offset;
	char **argv;
	guint i;
	int rc;

	g_array_set_size(m->ext, 0);
	m->bad_line = m->changed = false;
	rc = chain_walk(m);
	if (rc < 0)
		return rc;
	argv = image_argv_map(m->path, offset, length);
	if (!argv)
		return -EINVAL;
	rc = proc_run_lines(argv, cancel, on_line, &c, &err);
	g_strfreev(argv);
	if (rc == 0 && (m->changed || !chain_unchanged(m)))
		return -EAGAIN;
	if (rc == 0 && c.rc < 0)
		rc = c.rc;
	if (rc == 0 && m->bad_line)
		rc = -ENOTSUP;
	/* whatever else qemu-img failed on (a missing backing file, a
	 * damaged image), reading over NBD meets it again and says it in
	 * the terms of every other read */
	if (rc < 0 && rc != -ECANCELED)
		rc = -ENOTSUP;
	/* the extents come in order, inside the window, and do not overlap */
	for (i = 0; rc == 0 && i < m->ext->len; i++) {
		struct imagemap_piece *x =
			&g_array_index(m->ext, struct imagemap_piece, i);

		if (x->offset < prev_end || x->offset + x->length > offset + length)
			rc = -ENOTSUP;
		prev_end = x->offset + x->length;
	}
	return rc;
}

int imagemap_load(struct imagemap *m, uint64_t offset, uint64_t length,
		  GCancellable *cancel)
{
	int rc = -EAGAIN, tries;

	g_array_set_size(m->ext, 0);
	if (length == 0 || offset >= m->size)
		return 0;
	length = MIN(length, m->size - offset);
	for (tries = 0; rc == -EAGAIN && tries < MAP_TRIES; tries++)
		rc = map_once(m, offset, length, cancel);
	if (rc == -EAGAIN)
		rc = -ENOTSUP;
	if (rc < 0) {
		if (rc == -ENOTSUP)
			snap_log(LOG_INFO, "imagemap: the data of '%s' cannot be "
				 "placed in its files (compressed, encrypted or external "
				 "clusters, an unknown map, a chain that kept changing, or "
				 "qemu-img failed): read over NBD", m->path);
		g_array_set_size(m->ext, 0);
		return rc;
	}
	return 0;
}

/* Index of the first piece of @ext (in order, not overlapping) that ends
 * after @a (binary search). */
static guint first_after(const GArray *ext, uint64_t a)
{
	guint lo = 0, hi = ext->len;

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		const struct imagemap_piece *x =
			&g_array_index(ext, struct imagemap_piece, mid);

		if (x->offset + x->length <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool imagemap_is_zero(struct imagemap *m, uint64_t a, uint64_t b)
{
	guint i = first_after(m->ext, a);

	return i >= m->ext->len ||
	       g_array_index(m->ext, struct imagemap_piece, i).offset >= b;
}

/* The pieces of @ext that hold data in [@a, @b), clipped to it (pieces
 * of zeros, fd -1, left out: imagemap_read() fills the gaps). */
static int pieces_in(const GArray *ext, uint64_t a, uint64_t b,
		     struct imagemap_piece **out, size_t *n)
{
	GArray *v = g_array_new(FALSE, FALSE, sizeof(struct imagemap_piece));
	guint i;

	for (i = first_after(ext, a); i < ext->len; i++) {
		struct imagemap_piece x =
			g_array_index(ext, struct imagemap_piece, i);
		uint64_t s = MAX(x.offset, a), e = MIN(x.offset + x.length, b);

		if (x.offset >= b)
			break;
		if (x.fd < 0)
			continue;
		x.file_offset += s - x.offset;
		x.offset = s;
		x.length = e - s;
		g_array_append_val(v, x);
	}
	*n = v->len;
	*out = v->len ? (struct imagemap_piece *)(void *)g_array_free(v, FALSE)
		       : (g_array_free(v, TRUE), NULL);
	return 0;
}

int imagemap_pieces(struct imagemap *m, uint64_t a, uint64_t b,
		    struct imagemap_piece **out, size_t *n)
{
	return pieces_in(m->ext, a, b, out, n);
}

int imagemap_read(const struct imagemap_piece *pieces, size_t n, void *buf,
		  uint64_t offset, size_t len)
{
	unsigned char *b = buf;
	uint64_t at = offset; /* bytes before this are filled */
	size_t i;

	for (i = 0; i < n; i++) {
		const struct imagemap_piece *x = &pieces[i];
		unsigned char *dst = b + (x->offset - offset);
		bool direct = x->direct_fd >= 0 &&
			      (uintptr_t)dst % IMAGEMAP_DIRECT_ALIGN == 0 &&
			      x->length % IMAGEMAP_DIRECT_ALIGN == 0 &&
			      x->file_offset % IMAGEMAP_DIRECT_ALIGN == 0;
		uint64_t done = 0;

		if (x->offset < at || x->offset + x->length > offset + len)
			return -EINVAL;
		memset(b + (at - offset), 0, x->offset - at);
		while (done < x->length) {
			ssize_t r = pread(direct ? x->direct_fd : x->fd, dst + done,
					  x->length - done,
					  (off_t)(x->file_offset + done));

			if (r < 0 && errno == EINTR)
				continue;
			if (direct && (r < 0 ? errno == EINVAL
					     : (size_t)r < x->length - done)) {
				/* refused, or short (the rest is then not
				 * aligned): the rest through the page cache */
				direct = false;
				if (r <= 0)
					continue;
			}
			if (r < 0) {
				int rc = -errno;

				snap_log(LOG_ERR, "imagemap: cannot read %" G_GUINT64_FORMAT
					 " bytes at %" G_GUINT64_FORMAT ": %s",
					 x->length - done, x->file_offset + done,
					 g_strerror(-rc));
				return rc;
			}
			if (r == 0) {
				snap_log(LOG_ERR, "imagemap: a layer file ends at %" G_GUINT64_FORMAT
					 ", before the data its map places there",
					 x->file_offset + done);
				return -EIO;
			}
			done += (uint64_t)r;
		}
		at = x->offset + x->length;
	}
	memset(b + (at - offset), 0, offset + len - at);
	return 0;
}

/* ---- what one layer allocates itself ---- */

/* What one layer allocates, with places: @placed holds the extents whose
 * bytes are known (struct imagemap_piece: data at a file offset of @fd,
 * or zero clusters with fd -1), in order, not overlapping. */
struct imagemap_own {
	int fd;
	int direct_fd;	/* the same file with O_DIRECT, or -1 */
	GArray *placed;
};

struct own_ctx {
	void (*cb)(uint64_t offset, uint64_t length, void *arg);
	void *arg;
	struct imagemap_own *o; /* NULL: no places wanted */
	uint64_t next;	/* the extents cover the image in order */
	bool bad;
};

/* Record where the own extent [@start, @start + @length) is, when the map
 * says: zeros, or data at "offset".  Data with no offset (compressed,
 * encrypted) is not placed; a chunk over it is read through the chain. */
static void own_place(struct own_ctx *c, struct jdoc *d, uint64_t start,
		      uint64_t length)
{
	struct imagemap_piece x = { start, length, 0, -1, -1 };
	int64_t at;
	bool zero, data;

	if (jdoc_get_bool(d, "zero", &zero) < 0 ||
	    jdoc_get_bool(d, "data", &data) < 0)
		return;
	if (!zero) {
		if (!data || jdoc_get_int(d, "offset", &at) < 0 || at < 0 ||
		    (uint64_t)at + length < (uint64_t)at)
			return;
		x.file_offset = (uint64_t)at;
		x.fd = c->o->fd;
		x.direct_fd = c->o->direct_fd;
	}
	g_array_append_val(c->o->placed, x);
}

/* One line of `qemu-img map --output=json` as QEMU 7.2 prints it: "[{...},"
 * first, "{...}," then, "{...}]" last, one extent per object. */
static int on_json_line(const char *line, void *arg)
{
	struct own_ctx *c = arg;
	g_autofree char *obj = g_strdup(line);
	struct jdoc *d = NULL;
	int64_t start, length, depth;
	bool present;
	char *p = obj;
	size_t n;

	if (c->bad)
		return 1;
	if (*p == '[')
		p++;
	n = strlen(p);
	if (n && (p[n - 1] == ',' || p[n - 1] == ']'))
		p[--n] = '\0';
	if (!*p)
		return 0; /* "[]": an empty image */
	if (jdoc_parse(p, &d) < 0 || jdoc_get_int(d, "start", &start) < 0 ||
	    jdoc_get_int(d, "length", &length) < 0 ||
	    jdoc_get_int(d, "depth", &depth) < 0 ||
	    jdoc_get_bool(d, "present", &present) < 0 || start < 0 || length <= 0 ||
	    depth < 0 || (uint64_t)start != c->next) {
		jdoc_free(d);
		c->bad = true;
		return 1;
	}
	c->next = (uint64_t)start + (uint64_t)length;
	/* depth 0 and present: this file allocates it (an extent no file
	 * of the chain allocates has the last file's depth, not present) */
	if (depth == 0 && present) {
		c->cb((uint64_t)start, (uint64_t)length, c->arg);
		if (c->o)
			own_place(c, d, (uint64_t)start, (uint64_t)length);
	}
	jdoc_free(d);
	return 0;
}

/* Can the data offsets a map of the qcow2 file open as @fd gives be read
 * from @fd itself?  Not when its data lies in an external file or is
 * encrypted (the map gives no offset then, but a header says it first). */
static bool own_placeable(int fd)
{
	g_autofree struct qcow2_header *h = g_new0(struct qcow2_header, 1);

	return header_of(fd, h) == 0 && h->crypt_method == 0 &&
	       !(h->incompatible & QCOW2_INCOMPAT_DATA_FILE);
}

/* Is @fd still the file under @path? */
static bool same_file(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int imagemap_own_extents(const char *path, GCancellable *cancel,
			 void (*cb)(uint64_t offset, uint64_t length, void *arg),
			 void *arg, struct imagemap_own **placed)
{
	struct own_ctx c = { .cb = cb, .arg = arg };
	char **argv = image_argv_map_json(path);
	int rc;

	if (placed)
		*placed = NULL;
	if (!argv)
		return -EINVAL;
	if (placed) {
		/* opened before the map, so the places are this inode's */
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		/* (a file that cannot be opened fails the map too, below) */
		if (fd >= 0 && own_placeable(fd)) {
			c.o = g_new0(struct imagemap_own, 1);
			c.o->fd = fd;
			c.o->direct_fd = open_direct(fd);
			c.o->placed = g_array_new(FALSE, FALSE,
						  sizeof(struct imagemap_piece));
		} else if (fd >= 0) {
			close(fd);
		}
	}
	rc = proc_run_lines(argv, cancel, on_json_line, &c, NULL);
	g_strfreev(argv);
	if (rc == 0 && c.bad)
		rc = -ENOTSUP;
	if (rc < 0 && rc != -ECANCELED) {
		snap_log(LOG_INFO, "imagemap: what '%s' allocates cannot be read from "
			 "qemu-img map: asking block status over NBD", path);
		rc = -ENOTSUP;
	}
	if (rc == 0 && c.o && same_file(c.o->fd, path)) {
		*placed = c.o;
		c.o = NULL;
	}
	imagemap_own_free(c.o);
	return rc;
}

bool imagemap_own_placed(const struct imagemap_own *o, uint64_t a, uint64_t b)
{
	guint i;

	for (i = first_after(o->placed, a); a < b && i < o->placed->len; i++) {
		const struct imagemap_piece *x =
			&g_array_index(o->placed, struct imagemap_piece, i);

		if (x->offset > a)
			return false; /* a gap: the chain's, or unplaced */
		a = x->offset + x->length;
	}
	return a >= b;
}

int imagemap_own_pieces(const struct imagemap_own *o, uint64_t a, uint64_t b,
			struct imagemap_piece **out, size_t *n)
{
	return pieces_in(o->placed, a, b, out, n);
}

void imagemap_own_free(struct imagemap_own *o)
{
	if (!o)
		return;
	close(o->fd);
	if (o->direct_fd >= 0)
		close(o->direct_fd);
	g_array_free(o->placed, TRUE);
	g_free(o);
}

void imagemap_close(struct imagemap *m)
{
	guint i;

	if (!m)
		return;
	for (i = 0; i < m->files->len; i++) {
		struct chain_file *f = g_ptr_array_index(m->files, i);

		close(f->fd);
		if (f->direct_fd >= 0)
			close(f->direct_fd);
		g_free(f->path);
		g_free(f);
	}
	g_ptr_array_free(m->files, TRUE);
	g_ptr_array_free(m->chain, TRUE);
	g_array_free(m->ext, TRUE);
	g_free(m->path);
	g_free(m);
}
