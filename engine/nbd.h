/*
 * nbd.h - read a qcow2 image, and what its layers allocate, over NBD (see
 * nbd.c, the only file that sees libnbd).
 *
 * An image is served by a qemu-nbd that libnbd spawns for it with systemd
 * socket activation (image_argv_nbd_server(): an argv, never a shell),
 * read-only, its backing chain included.  Besides the guest-visible bytes
 * it answers block status in two meta contexts, merged here into one list
 * of extents:
 *   - "base:allocation": whether a range reads as zeros (a hole, or
 *     clusters qemu knows to be zero), so zeros need not be read;
 *   - "qemu:allocation-depth": which file of the chain holds a range:
 *     0 none (it reads as zeros), 1 the image itself (@path), 2 its
 *     backing file, 3 that one's backing file, and so on.  A frozen
 *     layer's own writes are its extents at depth 1.
 *
 * A base module: no engine state; the caller hands it a path.
 *
 * CALLING SEQUENCE
 *
 *	struct nbd_image *img;
 *
 *	rc = nbd_image_open("/abs/layer.qcow2", &img);
 *	size = nbd_image_size(img);
 *	rc = nbd_image_extents(img, offset, length, &ext, &n);
 *	rc = nbd_image_pread(img, buf, len, offset);
 *	nbd_image_close(img);
 *
 * LIFETIME OF THE SERVER: qemu-nbd runs from nbd_image_open() to
 * nbd_image_close(), which waits for it to exit.  It exits by itself when
 * its connection closes (also when snapfs is killed: the kernel closes
 * the socket), and PR_SET_PDEATHSIG (setpriv) kills it when the thread
 * that opened the image dies, so open images only from long-lived threads
 * (as proc.h asks of children).  libnbd 1.14 binds its listening socket in
 * a private directory /tmp/libnbdXXXXXX that nbd_image_close() removes; a
 * kill -9 leaves that empty directory and its socket file behind.
 *
 * ERRORS: every function returns 0 or -errno; a libnbd failure is logged
 * once here with nbd_get_error() and the image's path.
 *
 * THREAD SAFETY: a struct nbd_image belongs to one thread at a time; any
 * number of images may be open at once.  Every function but
 * nbd_image_size() blocks on the server.
 */
#ifndef SNAP_NBD_H
#define SNAP_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nbd_image;

/*
 * struct nbd_extent - a range of the image with one answer in both meta
 * contexts.  @zero: it reads as zeros (base:allocation NBD_STATE_ZERO);
 * @depth: the file of the chain that holds it (0: none; 1: the image
 * itself; n: its (n-1)th backing file).
 */
struct nbd_extent {
	uint64_t offset;
	uint64_t length;
	uint32_t depth;
	bool zero;
};

/**
 * nbd_image_open() - serve the qcow2 chain ending in @path and connect
 * @path: absolute; borrowed
 * @out: on success owns the image; close with nbd_image_close()
 *
 * Return: 0; -EINVAL @path not absolute; -ENOENT @path or a backing file
 * missing, qemu-nbd not installed; -EIO the server failed to open the
 * image (not qcow2, damaged; its stderr is in the log) or lacks a meta
 * context; -ENOMEM.  Logged.
 */
int nbd_image_open(const char *path, struct nbd_image **out);

/**
 * nbd_image_open_writable() - serve the one qcow2 file @path (no backing
 * chain: a restore's new image made by `qemu-img create`) writable, and
 * connect; only nbd_image_pwrite(), nbd_image_flush(), nbd_image_size()
 * and nbd_image_close() apply (no block status contexts are asked for).
 * Return: as nbd_image_open().
 */
int nbd_image_open_writable(const char *path, struct nbd_image **out);

/**
 * nbd_image_pwrite() - write @len bytes of @buf at @offset (an image from
 * nbd_image_open_writable()).  Requests larger than the server takes are
 * split.
 * Return: 0; -EINVAL beyond the end of the image; -ENOSPC; -EIO; logged.
 */
int nbd_image_pwrite(struct nbd_image *img, const void *buf, size_t len,
		     uint64_t offset);

/**
 * nbd_image_flush() - make every write so far durable in the image file
 * (the server flushes qemu's cache and fsyncs).
 * Return: 0; -EIO...; logged.
 */
int nbd_image_flush(struct nbd_image *img);

/** nbd_image_close() - disconnect, wait for the server; NULL is a no-op. */
void nbd_image_close(struct nbd_image *img);

/** nbd_image_size() - the image's virtual size in bytes. */
uint64_t nbd_image_size(const struct nbd_image *img);

/**
 * nbd_image_pread() - read @len bytes at @offset into @buf
 *
 * Requests larger than the server takes are split.
 * Return: 0; -EINVAL beyond the end of the image; -EIO (and the server's
 * errno where it sends one); logged.
 */
int nbd_image_pread(struct nbd_image *img, void *buf, size_t len,
		    uint64_t offset);

/**
 * nbd_image_extents() - block status of [@offset, @offset + @length)
 * @out: on success owns *@n extents (g_free), in order, contiguous,
 *	covering exactly the range (the last one cut at its end); NULL
 *	when @length is 0
 *
 * Asks the server as many times as it takes (it may answer for less than
 * was asked).
 * Return: 0; -EINVAL beyond the end of the image; -EIO the server failed
 * or answered out of protocol; -ENOMEM; logged.
 */
int nbd_image_extents(struct nbd_image *img, uint64_t offset, uint64_t length,
		      struct nbd_extent **out, size_t *n);

#endif
