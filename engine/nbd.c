/*
 * nbd.c - all of libnbd: a qcow2 image read over NBD from a qemu-nbd that
 * libnbd spawns with systemd socket activation (contract in nbd.h).
 *
 * Why NBD rather than qemu-img map plus reading the file: qcow2 is qemu's
 * format, and qemu-nbd is the reference reader of a whole backing chain;
 * it answers which bytes read as zeros (base:allocation) and which file of
 * the chain holds them (qemu:allocation-depth) on the same connection as
 * the data, with no JSON to parse.  libnbd is the maintained client; it
 * forks and execs the server from an argv (image_argv_nbd_server()), no
 * shell, and hands it the listening socket, so no port and no socket path
 * is ours to choose or clean up.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <glib.h>
#include <libnbd.h>

#include "nbd.h"
#include "image.h"
#include "log.h"

/* What qemu-nbd takes in one request (its NBD_MAX_BUFFER_SIZE) */
#define NBD_REQUEST_MAX (32u << 20)
/* Block status asks for at most this much at a time (the request's
 * length is 32 bits) */
#define NBD_STATUS_MAX (1u << 30)

#define CONTEXT_DEPTH "qemu:allocation-depth"

struct nbd_image {
	struct nbd_handle *h;
	char *path;
	uint64_t size;
	uint32_t request_max;
};

/* The errno of libnbd's last failure in this thread, as the engine's: the
 * server's or the client's errno where it is one we give a meaning to,
 * -EIO otherwise (a protocol error, a dead server). */
static int nbd_errno(void)
{
	int err = nbd_get_errno();

	switch (err) {
	case EINVAL:
	case ENOMEM:
	case ENOENT:
	case ENOSPC:
	case ECANCELED:
		return -err;
	default:
		return -EIO;
	}
}

/* Log libnbd's last failure once, with what we were doing; return its
 * -errno (nbd_errno()). */
static int nbd_fail(const char *path, const char *what)
{
	int rc = nbd_errno();
	const char *msg = nbd_get_error();

	snap_log(LOG_ERR, "nbd: %s '%s': %s", what, path,
		 msg ? msg : g_strerror(-rc));
	return rc;
}

static int image_open(const char *path, bool writable,
		      struct nbd_image **out)
{
	struct nbd_image *img;
	g_auto(GStrv) argv = NULL;
	struct stat st;
	int64_t size, max;
	int rc;

	*out = NULL;
	argv = writable ? image_argv_nbd_writer(path) :
			  image_argv_nbd_server(path);
	if (!argv)
		return -EINVAL;
	/* qemu-nbd's own message goes to our stderr, not to libnbd: say
	 * the obvious cause here, in the log, with its errno */
	if (stat(path, &st) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "nbd: cannot open image '%s': %m", path);
		return rc;
	}
	img = g_new0(struct nbd_image, 1);
	img->path = g_strdup(path);
	img->h = nbd_create();
	if (!img->h) {
		rc = nbd_fail(path, "cannot create a handle for");
		goto free_img;
	}
	/* every byte of a read buffer is the server's; no memset first */
	if (nbd_set_pread_initialize(img->h, false) < 0 ||
	    (!writable &&
	     (nbd_add_meta_context(img->h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
	      nbd_add_meta_context(img->h, CONTEXT_DEPTH) < 0))) {
		rc = nbd_fail(path, "cannot set up a handle for");
		goto close_handle;
	}
	if (nbd_connect_systemd_socket_activation(img->h, argv) < 0) {
		rc = nbd_fail(path, "cannot serve image");
		/* the server died on the image: not a missing program */
		if (rc != -ENOENT && rc != -ENOMEM)
			rc = -EIO;
		goto close_handle;
	}
	if (!writable &&
	    (nbd_can_meta_context(img->h, LIBNBD_CONTEXT_BASE_ALLOCATION) != 1 ||
	     nbd_can_meta_context(img->h, CONTEXT_DEPTH) != 1)) {
		snap_log(LOG_ERR, "nbd: server of '%s' lacks block status "
			 "contexts %s and %s", path,
			 LIBNBD_CONTEXT_BASE_ALLOCATION, CONTEXT_DEPTH);
		rc = -EIO;
		goto close_handle;
	}
	size = nbd_get_size(img->h);
	if (size < 0) {
		rc = nbd_fail(path, "cannot get the size of");
		goto close_handle;
	}
	img->size = (uint64_t)size;
	max = nbd_get_block_size(img->h, LIBNBD_SIZE_MAXIMUM);
	img->request_max = max > 0 && max < NBD_REQUEST_MAX ? (uint32_t)max
							     : NBD_REQUEST_MAX;
	*out = img;
	return 0;

close_handle:
	/* kills and reaps the server if it still runs */
	nbd_close(img->h);
free_img:
	g_free(img->path);
	g_free(img);
	return rc;
}

int nbd_image_open(const char *path, struct nbd_image **out)
{
	return image_open(path, false, out);
}

int nbd_image_open_writable(const char *path, struct nbd_image **out)
{
	return image_open(path, true, out);
}

void nbd_image_close(struct nbd_image *img)
{
	if (!img)
		return;
	/* tell the server we are done (it then exits); nbd_close() reaps it,
	 * killing it first should it still run */
	if (nbd_shutdown(img->h, 0) < 0)
		snap_log(LOG_DEBUG, "nbd: shutdown of '%s': %s", img->path,
			 nbd_get_error());
	nbd_close(img->h);
	g_free(img->path);
	g_free(img);
}

uint64_t nbd_image_size(const struct nbd_image *img)
{
	return img->size;
}

/* [@offset, @offset + @len) within the image? */
static bool in_image(const struct nbd_image *img, uint64_t offset,
		     uint64_t len)
{
	return offset <= img->size && len <= img->size - offset;
}

int nbd_image_pread(struct nbd_image *img, void *buf, size_t len,
		    uint64_t offset)
{
	char *p = buf;

	if (!in_image(img, offset, len))
		return -EINVAL;
	while (len > 0) {
		size_t n = len < img->request_max ? len : img->request_max;

		if (nbd_pread(img->h, p, n, offset, 0) < 0)
			return nbd_fail(img->path, "cannot read");
		p += n;
		offset += n;
		len -= n;
	}
	return 0;
}

int nbd_image_pwrite(struct nbd_image *img, const void *buf, size_t len,
		     uint64_t offset)
{
	const char *p = buf;

	if (!in_image(img, offset, len))
		return -EINVAL;
	while (len > 0) {
		size_t n = len < img->request_max ? len : img->request_max;

		if (nbd_pwrite(img->h, p, n, offset, 0) < 0)
			return nbd_fail(img->path, "cannot write");
		p += n;
		offset += n;
		len -= n;
	}
	return 0;
}

int nbd_image_flush(struct nbd_image *img)
{
	if (nbd_flush(img->h, 0) < 0)
		return nbd_fail(img->path, "cannot flush");
	return 0;
}

/* One context's answer to one block status request: (length, flags)
 * pairs from @start, as the server sent them. */
struct status_answer {
	uint64_t start;
	GArray *pairs; /* uint32_t length, flags, ... */
	bool seen;
};

struct status_request {
	struct status_answer alloc; /* base:allocation */
	struct status_answer depth; /* qemu:allocation-depth */
};

static int status_cb(void *arg, const char *context, uint64_t offset,
		     uint32_t *entries, size_t n, int *error)
{
	struct status_request *req = arg;
	struct status_answer *a;

	if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0)
		a = &req->alloc;
	else if (strcmp(context, CONTEXT_DEPTH) == 0)
		a = &req->depth;
	else
		return 0;
	/* one answer per context per request; a second one is ignored */
	if (a->seen)
		return 0;
	a->seen = true;
	a->start = offset;
	/* an entry of length 0 says nothing: dropped, so that each entry
	 * kept moves the merge forward */
	for (size_t i = 0; i + 1 < n; i += 2)
		if (entries[i] > 0)
			g_array_append_vals(a->pairs, entries + i, 2);
	return 0;
}

/* Where @a's answer ends (its coverage from its start). */
static uint64_t answer_end(const struct status_answer *a)
{
	uint64_t end = a->start;
	const uint32_t *e = (const uint32_t *)(void *)a->pairs->data;

	for (guint i = 0; i + 1 < a->pairs->len; i += 2)
		end += e[i];
	return end;
}

/* Merge the two answers of @req over [@from, @to) into @ext. */
static void merge_answers(const struct status_request *req, uint64_t from,
			  uint64_t to, GArray *ext)
{
	const uint32_t *pa = (const uint32_t *)(void *)req->alloc.pairs->data;
	const uint32_t *pd = (const uint32_t *)(void *)req->depth.pairs->data;
	guint ia = 0, id = 0;
	uint64_t ea = req->alloc.start + pa[0];
	uint64_t ed = req->depth.start + pd[0];
	uint64_t pos = from;

	while (pos < to) {
		struct nbd_extent x = { 0 };
		uint64_t end = ea < ed ? ea : ed;

		if (end > to)
			end = to;
		x.offset = pos;
		x.length = end - pos;
		x.zero = (pa[ia + 1] & LIBNBD_STATE_ZERO) != 0;
		x.depth = pd[id + 1];
		g_array_append_val(ext, x);
		pos = end;
		if (pos >= to)
			break;
		if (pos == ea) {
			ia += 2;
			ea += pa[ia];
		}
		if (pos == ed) {
			id += 2;
			ed += pd[id];
		}
	}
}

int nbd_image_extents(struct nbd_image *img, uint64_t offset, uint64_t length,
		      struct nbd_extent **out, size_t *n)
{
	GArray *ext;
	struct status_request req;
	uint64_t end = offset + length;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!in_image(img, offset, length))
		return -EINVAL;
	if (length == 0)
		return 0;
	ext = g_array_new(FALSE, FALSE, sizeof(struct nbd_extent));
	req.alloc.pairs = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	req.depth.pairs = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	while (offset < end) {
		uint64_t ask = end - offset, got;
		nbd_extent_callback cb = { .callback = status_cb,
					   .user_data = &req };

		if (ask > NBD_STATUS_MAX)
			ask = NBD_STATUS_MAX;
		req.alloc.seen = req.depth.seen = false;
		g_array_set_size(req.alloc.pairs, 0);
		g_array_set_size(req.depth.pairs, 0);
		if (nbd_block_status(img->h, ask, offset, cb, 0) < 0) {
			rc = nbd_fail(img->path, "cannot get block status of");
			goto out;
		}
		/* both contexts answered, from where we asked, with
		 * progress: else the server is out of protocol */
		if (!req.alloc.seen || !req.depth.seen ||
		    req.alloc.start != offset || req.depth.start != offset ||
		    req.alloc.pairs->len == 0 || req.depth.pairs->len == 0) {
			snap_log(LOG_ERR, "nbd: bad block status of '%s' at "
				 "%" G_GUINT64_FORMAT, img->path, offset);
			rc = -EIO;
			goto out;
		}
		got = MIN(answer_end(&req.alloc), answer_end(&req.depth));
		if (got > end)
			got = end;
		if (got <= offset) {
			snap_log(LOG_ERR, "nbd: empty block status of '%s' at "
				 "%" G_GUINT64_FORMAT, img->path, offset);
			rc = -EIO;
			goto out;
		}
		merge_answers(&req, offset, got, ext);
		offset = got;
	}
out:
	g_array_free(req.alloc.pairs, TRUE);
	g_array_free(req.depth.pairs, TRUE);
	if (rc < 0) {
		g_array_free(ext, TRUE);
		return rc;
	}
	*n = ext->len;
	*out = (struct nbd_extent *)(void *)g_array_free(ext, FALSE);
	return 0;
}
