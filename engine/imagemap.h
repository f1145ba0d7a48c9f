/*
 * imagemap.h - where the data of a qcow2 image and its backing chain lies
 * in their files, from `qemu-img map` (see imagemap.c), so that a backup
 * reads it with pread(2) from the layer files themselves instead of
 * through qemu-nbd: one copy per byte instead of three (qemu-nbd's read,
 * its send into the socket, our receive) and no server process in the way
 * (docs/benchmarks.md, "Backups into the repository").
 *
 * A base module: no engine state; it runs qemu-img (proc.h) and reads
 * files.  Only images whose every data cluster has a plain offset in a
 * file are mapped: compressed, encrypted or external-data clusters make
 * imagemap_load() fail with -ENOTSUP, and the caller then reads over NBD
 * (nbd.h), which serves every image QEMU can open.
 *
 * The files must not change while mapped: snapfs maps only frozen layers
 * (a snapshot's layer and its backing chain), which nothing writes while a
 * backup holds the snapshot.
 *
 * CALLING SEQUENCE:
 *
 *	struct imagemap *m;
 *	struct imagemap_piece *p;
 *	size_t n;
 *
 *	rc = imagemap_open(path, &m);            // reads the qcow2 header
 *	size = imagemap_size(m);
 *	for each window [a, a + len) of the image, in any order:
 *		rc = imagemap_load(m, a, len, cancel);   // runs qemu-img map
 *		for each range [x, y) inside the window:
 *			if (imagemap_is_zero(m, x, y)) ... no read needed
 *			rc = imagemap_pieces(m, x, y, &p, &n);  // g_free(p)
 *			rc = imagemap_read(p, n, buf, x, y - x); // any thread
 *	imagemap_close(m);
 *
 * and for one layer alone, what it allocates and where (its data read
 * without the chain's map when a range lies wholly in it):
 *
 *	struct imagemap_own *o;
 *
 *	rc = imagemap_own_extents(path, cancel, cb, arg, &o);  // o may be NULL
 *	if (o && imagemap_own_placed(o, x, y))
 *		rc = imagemap_own_pieces(o, x, y, &p, &n);     // g_free(p)
 *		rc = imagemap_read(p, n, buf, x, y - x);       // any thread
 *	imagemap_own_free(o);
 *
 * THREAD SAFETY: imagemap_open/load/is_zero/pieces/close belong to one
 * thread.  imagemap_read() touches only the pieces it is given and the
 * file descriptors they name, which stay open until imagemap_close() (or
 * imagemap_own_free()), so any number of threads may call it at once,
 * also during a load.  A struct imagemap_own is read-only once made.
 */
#ifndef SNAP_IMAGEMAP_H
#define SNAP_IMAGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <gio/gio.h>

/*
 * struct imagemap_piece - bytes [@offset, @offset + @length) of the image
 * are the bytes at @file_offset of the file open as @fd, and as
 * @direct_fd with O_DIRECT (-1 where the file system refuses it).  Bytes
 * of a range that no piece covers read as zeros.
 */
struct imagemap_piece {
	uint64_t offset;
	uint64_t length;
	uint64_t file_offset;
	int fd;
	int direct_fd;
};

struct imagemap;
struct imagemap_own;

/* what imagemap_read() reads with O_DIRECT is aligned to this */
#define IMAGEMAP_DIRECT_ALIGN 4096

/**
 * imagemap_open() - start mapping the qcow2 image at @path (absolute)
 * Return: 0 and *@out (imagemap_close()); -errno when @path cannot be
 * read; -EINVAL when it is not qcow2.  Not logged: the caller reads over
 * NBD then, which says what is wrong.
 */
int imagemap_open(const char *path, struct imagemap **out);

/** imagemap_size() - the image's virtual size in bytes. */
uint64_t imagemap_size(const struct imagemap *m);

/**
 * imagemap_load() - map [@offset, @offset + @length) of the image, which
 * replaces the window mapped before (pieces already taken stay valid).
 * Return: 0; -ECANCELED; -ENOTSUP when the data cannot be placed: a
 * data cluster with no plain file offset, output this parser does not
 * know, a file of the chain that cannot be opened, or qemu-img failing
 * (proc.h logs that): read over NBD instead, which fails in its own
 * terms if the chain is broken.
 */
int imagemap_load(struct imagemap *m, uint64_t offset, uint64_t length,
		  GCancellable *cancel);

/**
 * imagemap_is_zero() - do the bytes [@a, @b), inside the loaded window,
 * read as zeros without any read (holes, zero clusters)?
 */
bool imagemap_is_zero(struct imagemap *m, uint64_t a, uint64_t b);

/**
 * imagemap_pieces() - the pieces of [@a, @b), inside the loaded window,
 * clipped to it; *@out is NULL when there are none (all zeros).
 * Return: 0 and *@out (g_free) and *@n.
 */
int imagemap_pieces(struct imagemap *m, uint64_t a, uint64_t b,
		    struct imagemap_piece **out, size_t *n);

/**
 * imagemap_read() - fill @buf with bytes [@offset, @offset + @len) of the
 * image from @pieces (from imagemap_pieces() of that range); what no
 * piece covers is zeroed.  A piece whose place in @buf, length and file
 * offset are multiples of IMAGEMAP_DIRECT_ALIGN is read with O_DIRECT
 * (no copy through the page cache, which a backup would also fill with a
 * whole volume it reads once), the others through the page cache: give
 * a @buf aligned to IMAGEMAP_DIRECT_ALIGN for the first.
 * Return: 0; -errno of pread(2); -EIO when a file ends before a piece
 * (logged).
 */
int imagemap_read(const struct imagemap_piece *pieces, size_t n, void *buf,
		  uint64_t offset, size_t len);

/**
 * imagemap_own_extents() - call @cb for each extent the qcow2 file @path
 * allocates itself (data, zero clusters, discards: what its writes
 * touched, not what its backing chain holds), in order, from `qemu-img map
 * --output=json` (depth 0, present).  A standalone function: no struct
 * imagemap.
 * @placed: NULL, or where to put what the same map says of the places of
 *	those extents (imagemap_own_free()): the file is opened before the
 *	map and kept open.  *@placed is NULL on failure, when the file's
 *	data is encrypted or in an external data file, and when its name
 *	held another inode after the map (a merge renamed a layer over it:
 *	the extents are still what it allocated, their places may not be)
 * Return: 0; -ECANCELED; -ENOTSUP when qemu-img fails or its output is not
 * what this parser knows (ask block status over NBD instead, nbd.h).
 */
int imagemap_own_extents(const char *path, GCancellable *cancel,
			 void (*cb)(uint64_t offset, uint64_t length, void *arg),
			 void *arg, struct imagemap_own **placed);

/**
 * imagemap_own_placed() - is every byte of [@a, @b) allocated by the file
 * of @o itself, at a place its map gave (data at a file offset, or a
 * zero cluster)?  Then imagemap_own_pieces() gives them, and nothing
 * under the file (its backing chain) is needed to read them.
 */
bool imagemap_own_placed(const struct imagemap_own *o, uint64_t a, uint64_t b);

/**
 * imagemap_own_pieces() - the data pieces of [@a, @b), which
 * imagemap_own_placed() said @o places, for imagemap_read(); *@out is NULL
 * when they are all zero clusters.  The pieces read @o's descriptor: keep
 * @o until the reads are done.
 * Return: 0 and *@out (g_free) and *@n.
 */
int imagemap_own_pieces(const struct imagemap_own *o, uint64_t a, uint64_t b,
			struct imagemap_piece **out, size_t *n);

/** imagemap_own_free() - close the file and free @o; NULL is a no-op. */
void imagemap_own_free(struct imagemap_own *o);

/** imagemap_close() - close the files and free @m; NULL is a no-op. */
void imagemap_close(struct imagemap *m);

#endif
