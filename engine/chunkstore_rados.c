/*
 * chunkstore_rados.c - the chunk store's operations on a RADOS pool (see
 * chunkstore_rados.h; the contracts are chunkstore.h's).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <glib.h>

#include "checksum.h"
#include "chunk_format.h"
#include "chunkstore_rados.h"
#include "log.h"

void chunk_object_name(const uint8_t digest[DIGEST_LEN],
		       char name[CHUNK_OBJECT_NAME])
{
	char hex[DIGEST_HEX_LEN + 1];

	digest_to_hex(digest, hex);
	snprintf(name, CHUNK_OBJECT_NAME, CHUNK_OBJECT_PREFIX "%.2s/%s", hex,
		 hex);
}

static int64_t now(void)
{
	return (int64_t)time(NULL);
}

static int damaged(const char *name, const char *why)
{
	snap_log(LOG_ERR, "chunkstore: damaged chunk object '%s': %s", name,
		 why);
	return -EBADMSG;
}

int chunk_rados_put(struct rados_store *rs, const uint8_t digest[DIGEST_LEN],
		    const void *data, size_t len, bool *written)
{
	char name[CHUNK_OBJECT_NAME];
	g_autofree uint8_t *obj = NULL;
	uint32_t flags = 0, raw = GUINT32_TO_LE((uint32_t)len);
	uint64_t want, have;
	int rc;

	*written = false;
	chunk_object_name(digest, name);
	obj = g_try_malloc(CHUNKSTORE_HEADER + len);
	if (!obj)
		return -ENOMEM;
	memcpy(obj, CHUNKSTORE_MAGIC, 8);
	memcpy(obj + 8, &flags, 4);
	memcpy(obj + 12, &raw, 4);
	memcpy(obj + CHUNKSTORE_HEADER, data, len);
	rc = rados_store_put(rs, name, obj, CHUNKSTORE_HEADER + len, true,
			     now());
	if (rc == -EEXIST) {
		/* same name, same content: make it young (a sweep that
		 * removed it in between makes the touch fail: write again) */
		rc = rados_store_touch(rs, name, now());
		if (rc == 0)
			return 0;
		if (rc != -ENOENT)
			return rc;
		rc = rados_store_put(rs, name, obj, CHUNKSTORE_HEADER + len,
				     true, now());
		if (rc == -EEXIST)
			return rados_store_touch(rs, name, now());
	}
	if (rc < 0)
		return rc;
	/* the read-back: the OSD hashes what it stored */
	want = checksum_xxh64(obj, CHUNKSTORE_HEADER + len);
	rc = rados_store_checksum(rs, name, CHUNKSTORE_HEADER + len, &have);
	if (rc == 0 && have != want) {
		snap_log(LOG_ERR, "chunkstore: chunk object '%s' does not read back as written",
			 name);
		rc = -EIO;
	}
	if (rc < 0) {
		/* never leave a chunk whose read-back failed under its name */
		rados_store_remove(rs, name);
		return rc == -ENOENT ? -EIO : rc;
	}
	*written = true;
	return 0;
}

int chunk_rados_get(struct rados_store *rs, uint32_t chunk_size,
		    const uint8_t digest[DIGEST_LEN], void *buf, size_t cap,
		    size_t *len)
{
	char name[CHUNK_OBJECT_NAME];
	g_autofree uint8_t *obj = NULL;
	uint8_t d[DIGEST_LEN];
	uint32_t flags, raw;
	size_t size = 0;
	int rc;

	chunk_object_name(digest, name);
	obj = g_try_malloc(CHUNKSTORE_HEADER + (size_t)chunk_size);
	if (!obj)
		return -ENOMEM;
	rc = rados_store_get(rs, name, obj, CHUNKSTORE_HEADER + chunk_size,
			     &size);
	if (rc == -ENOENT) {
		snap_log(LOG_ERR, "chunkstore: missing chunk object '%s'",
			 name);
		return rc;
	}
	if (rc == -EFBIG)
		return damaged(name, "longer than any chunk");
	if (rc < 0)
		return rc;
	if (size <= CHUNKSTORE_HEADER)
		return damaged(name, "truncated");
	memcpy(&flags, obj + 8, 4);
	memcpy(&raw, obj + 12, 4);
	flags = GUINT32_FROM_LE(flags);
	raw = GUINT32_FROM_LE(raw);
	if (memcmp(obj, CHUNKSTORE_MAGIC, 8) != 0)
		return damaged(name, "bad magic");
	if (flags & CHUNKSTORE_FLAG_ZSTD)
		return damaged(name, "compressed");
	if (flags)
		return damaged(name, "unknown flags");
	if (raw == 0 || raw > chunk_size)
		return damaged(name, "length out of range");
	if (size < CHUNKSTORE_HEADER + (size_t)raw)
		return damaged(name, "truncated");
	if (size > CHUNKSTORE_HEADER + (size_t)raw)
		return damaged(name, "longer than its length");
	if (raw > cap) {
		snap_log(LOG_ERR, "chunkstore: cannot read chunk object '%s': the buffer is too small",
			 name);
		return -ERANGE;
	}
	rc = digest_sha256(obj + CHUNKSTORE_HEADER, raw, d);
	if (rc < 0)
		return rc;
	if (memcmp(d, digest, DIGEST_LEN) != 0)
		return damaged(name, "content does not match its name");
	memcpy(buf, obj + CHUNKSTORE_HEADER, raw);
	*len = raw;
	return 0;
}

int chunk_rados_has(struct rados_store *rs, const uint8_t digest[DIGEST_LEN])
{
	char name[CHUNK_OBJECT_NAME];
	int rc;

	chunk_object_name(digest, name);
	rc = rados_store_stat(rs, name, NULL, NULL);
	if (rc == -ENOENT)
		return 0;
	return rc < 0 ? rc : 1;
}

int chunk_rados_touch(struct rados_store *rs, const uint8_t digest[DIGEST_LEN])
{
	char name[CHUNK_OBJECT_NAME];

	chunk_object_name(digest, name);
	return rados_store_touch(rs, name, now());
}

int chunk_rados_remove(struct rados_store *rs,
		       const uint8_t digest[DIGEST_LEN])
{
	char name[CHUNK_OBJECT_NAME];

	chunk_object_name(digest, name);
	return rados_store_remove(rs, name);
}

int chunk_rados_remove_if_older(struct rados_store *rs,
				const uint8_t digest[DIGEST_LEN],
				int64_t cutoff, uint64_t *bytes)
{
	char name[CHUNK_OBJECT_NAME];
	uint64_t size = 0;
	int rc;

	*bytes = 0;
	chunk_object_name(digest, name);
	/* the size for the statistics; the removal itself is guarded */
	rc = rados_store_stat(rs, name, &size, NULL);
	if (rc == -EBADMSG)
		size = 0;
	else if (rc < 0)
		return rc;
	rc = rados_store_remove_if_older(rs, name, cutoff < 0 ? 0 : cutoff);
	if (rc == -ECANCELED)
		return 0;
	if (rc < 0)
		return rc;
	*bytes = size;
	return 1;
}

struct scan {
	int (*fn)(const uint8_t digest[DIGEST_LEN], void *arg);
	void *arg;
	uint64_t foreign;
};

static int scan_one(const char *name, void *arg)
{
	struct scan *sc = arg;
	const char *rest = name + strlen(CHUNK_OBJECT_PREFIX);
	uint8_t d[DIGEST_LEN];

	/* "<xx>/<64 hex beginning with xx>", nothing else */
	if (strlen(rest) != 3 + DIGEST_HEX_LEN || rest[2] != '/' ||
	    strncmp(rest, rest + 3, 2) != 0 ||
	    digest_from_hex(rest + 3, d) < 0 || digest_is_zero(d)) {
		sc->foreign++;
		return 0;
	}
	return sc->fn(d, sc->arg);
}

int chunk_rados_scan(struct rados_store *rs,
		     int (*fn)(const uint8_t digest[DIGEST_LEN], void *arg),
		     void *arg, uint64_t *foreign)
{
	struct scan sc = { fn, arg, 0 };
	int rc;

	rc = rados_store_list(rs, CHUNK_OBJECT_PREFIX, scan_one, &sc);
	*foreign = sc.foreign;
	return rc;
}
