/*
 * checksum.c - all of libxxhash.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "checksum.h"
#include "log.h"

#define CHUNK (4u << 20)

int checksum_file(int fd, GCancellable *cancel, char text[CHECKSUM_TEXT_MAX])
{
	g_autofree unsigned char *buf = g_try_malloc(CHUNK);
	XXH3_state_t *st;
	XXH128_hash_t h;
	off_t off = 0;
	ssize_t n;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_128bits_reset(st);
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		if (cancel && g_cancellable_is_cancelled(cancel)) {
			rc = -ECANCELED;
			break;
		}
		n = pread(fd, buf, CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snap_log(LOG_ERR, "checksum: read failed: %m");
			break;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(st, buf, (size_t)n);
		off += n;
	}
	if (rc == 0) {
		h = XXH3_128bits_digest(st);
		snprintf(text, CHECKSUM_TEXT_MAX, "xxh128:%016llx%016llx",
			 (unsigned long long)h.high64,
			 (unsigned long long)h.low64);
	}
	XXH3_freeState(st);
	return rc;
}

void checksum_quick(const void *data, size_t len,
		    uint8_t out[CHECKSUM_QUICK_LEN])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(data, len));
	memcpy(out, c.digest, CHECKSUM_QUICK_LEN);
}

int checksum_quick_fd(int fd, off_t off, uint64_t len, void *buf,
		      size_t buf_len, uint8_t out[CHECKSUM_QUICK_LEN])
{
	XXH3_state_t *st = XXH3_createState();
	XXH128_canonical_t c;
	int rc = 0;

	if (!st)
		return -ENOMEM;
	XXH3_128bits_reset(st);
	while (len > 0) {
		ssize_t n = pread(fd, buf, (size_t)MIN((uint64_t)buf_len, len), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		XXH3_128bits_update(st, buf, (size_t)n);
		off += n;
		len -= (uint64_t)n;
	}
	if (rc == 0) {
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
		memcpy(out, c.digest, CHECKSUM_QUICK_LEN);
	}
	XXH3_freeState(st);
	return rc;
}

uint64_t checksum_xxh64(const void *data, size_t len)
{
	return XXH64(data, len, 0);
}
