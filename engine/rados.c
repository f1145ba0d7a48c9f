/*
 * rados.c - all of librados: whole objects in one pool of a Ceph cluster.
 *
 * The contracts are in rados.h.  Every operation here is one librados
 * read or write operation (rados_read_op_t, rados_write_op_t), which the
 * OSD that holds the object runs as a unit: its steps all happen or none
 * does, and no other operation on that object comes in between.  That is
 * where put's atomic replace, touch's "never creates" and the collector's
 * compare-and-remove come from; nothing here locks.
 *
 * librados's codes are already -errno and are passed on as they are; the
 * ones a caller acts on are the OSD's: -ENOENT (no object), -EEXIST
 * (exclusive create), -ECANCELED (a cmpxattr that does not hold), -EDQUOT
 * (pool quota), -ENOSPC (cluster full), -ETIMEDOUT (rados_osd_op_timeout).
 *
 * cmpxattr: librados's C API always asks for the string mode
 * (CEPH_OSD_CMPXATTR_MODE_STRING), and the OSD evaluates
 * `<value given> <op> <value stored>` (PrimaryLogPG::do_xattr_cmp_str(),
 * Ceph 16), the operands in the opposite order from what the header's
 * omap_cmp text suggests; an xattr that is missing compares as "".  So
 * "stored < cutoff" is LIBRADOS_CMPXATTR_OP_GT with the cutoff, and the
 * fixed-width decimal spelling makes the string order the numeric one.
 * tests/unit/test_rados.c checks both directions against a real OSD.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <glib.h>
#include <rados/librados.h>

#include "fault.h"
#include "log.h"
#include "rados.h"

struct rados_store {
	rados_t cluster;
	rados_ioctx_t io;
	char *where; /* "POOL" or "POOL/NS", for messages */
};

/* Writes never wait for space: a full pool or cluster is an error. */
#define WRITE_FLAGS LIBRADOS_OPERATION_FULL_TRY

/* Log "rados: @what '@name' in pool 'P[/NS]': <strerror of @rc>" at
 * LOG_ERR and return @rc. */
static int store_error(const struct rados_store *rs, const char *what,
		       const char *name, int rc)
{
	snap_log(LOG_ERR, "rados: %s '%s' in pool '%s': %s", what, name,
		 rs->where, g_strerror(-rc));
	return rc;
}

/* @t as RADOS_STORE_TIME_DIGITS digits (the xattr's value). */
static void time_digits(int64_t t, char buf[RADOS_STORE_TIME_DIGITS + 1])
{
	snprintf(buf, RADOS_STORE_TIME_DIGITS + 1, "%0*" PRId64,
		 RADOS_STORE_TIME_DIGITS, t);
}

/* Parse an xattr value of @len bytes at @val into *@t.
 * Return: 0; -EBADMSG not RADOS_STORE_TIME_DIGITS digits. */
static int parse_time_digits(const char *val, size_t len, int64_t *t)
{
	int64_t v = 0;

	if (len != RADOS_STORE_TIME_DIGITS)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		if (val[i] < '0' || val[i] > '9')
			return -EBADMSG;
		if (v > (INT64_MAX - (val[i] - '0')) / 10)
			return -EBADMSG;
		v = v * 10 + (val[i] - '0');
	}
	*t = v;
	return 0;
}

/* ---- open, close ---- */

/* Set librados option @key to @value on @cluster.  Return: 0; -errno
 * (logged). */
static int set_option(rados_t cluster, const char *key, const char *value)
{
	int rc = rados_conf_set(cluster, key, value);

	if (rc < 0)
		snap_log(LOG_ERR, "rados: cannot set option %s=%s: %s", key,
			 value, g_strerror(-rc));
	return rc;
}

int rados_store_open(const char *conf, const char *client_id, const char *pool,
		     const char *ns, unsigned op_timeout_s,
		     struct rados_store **out)
{
	struct rados_store *rs;
	char timeout[16];
	int rc;

	rs = g_try_new0(struct rados_store, 1);
	if (!rs)
		return -ENOMEM;
	if (ns && !*ns)
		ns = NULL; /* "" is the default namespace too */
	rs->where = ns ? g_strconcat(pool, "/", ns, NULL) : g_strdup(pool);

	rc = rados_create(&rs->cluster, client_id);
	if (rc < 0) {
		snap_log(LOG_ERR, "rados: cannot create a client '%s': %s",
			 client_id ? client_id : "admin", g_strerror(-rc));
		goto free_rs;
	}
	rc = rados_conf_read_file(rs->cluster, conf);
	if (rc < 0) {
		snap_log(LOG_ERR, "rados: cannot read configuration '%s': %s",
			 conf, g_strerror(-rc));
		goto shutdown;
	}
	/* errors go through snap_log, once; librados's own log only where
	 * the configuration puts a log file */
	rc = set_option(rs->cluster, "log_to_stderr", "false");
	if (rc == 0)
		rc = set_option(rs->cluster, "err_to_stderr", "false");
	if (rc == 0 && op_timeout_s > 0) {
		g_snprintf(timeout, sizeof(timeout), "%u", op_timeout_s);
		rc = set_option(rs->cluster, "client_mount_timeout", timeout);
		if (rc == 0)
			rc = set_option(rs->cluster, "rados_mon_op_timeout",
					timeout);
		if (rc == 0)
			rc = set_option(rs->cluster, "rados_osd_op_timeout",
					timeout);
	}
	if (rc < 0)
		goto shutdown;
	rc = rados_connect(rs->cluster);
	if (rc < 0) {
		snap_log(LOG_ERR,
			 "rados: cannot connect to the cluster of '%s' as client.%s: %s",
			 conf, client_id ? client_id : "admin",
			 g_strerror(-rc));
		goto shutdown;
	}
	rc = rados_ioctx_create(rs->cluster, pool, &rs->io);
	if (rc < 0) {
		if (rc == -ENOENT)
			snap_log(LOG_ERR,
				 "rados: no pool '%s' in the cluster of '%s'",
				 pool, conf);
		else
			snap_log(LOG_ERR, "rados: cannot open pool '%s': %s",
				 pool, g_strerror(-rc));
		goto shutdown;
	}
	rados_ioctx_set_namespace(rs->io, ns);
	*out = rs;
	return 0;

shutdown:
	rados_shutdown(rs->cluster);
free_rs:
	g_free(rs->where);
	g_free(rs);
	return rc;
}

void rados_store_close(struct rados_store *rs)
{
	if (!rs)
		return;
	rados_ioctx_destroy(rs->io);
	rados_shutdown(rs->cluster);
	g_free(rs->where);
	g_free(rs);
}

/* ---- writes ---- */

/* Run write op @op on @name (FULL_TRY), then release it.  Return: 0 or
 * the -errno of librados (the OSD's, or -ETIMEDOUT). */
static int write_op_run(struct rados_store *rs, rados_write_op_t op,
			const char *name)
{
	int rc;

	rc = rados_write_op_operate(op, rs->io, name, NULL, WRITE_FLAGS);
	rados_release_write_op(op);
	return rc;
}

int rados_store_put(struct rados_store *rs, const char *name, const void *data,
		    size_t len, bool exclusive, int64_t now)
{
	char t[RADOS_STORE_TIME_DIGITS + 1];
	rados_write_op_t op;
	int rc;

	if (now < 0)
		return -EINVAL;
	if (fault("rados.put", EIO))
		return store_error(rs, "cannot put", name, -EIO);
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	time_digits(now, t);
	if (exclusive)
		rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	rados_write_op_write_full(op, data, len);
	rados_write_op_setxattr(op, RADOS_STORE_TIME_XATTR, t,
				RADOS_STORE_TIME_DIGITS);
	rc = write_op_run(rs, op, name);
	if (rc < 0 && !(rc == -EEXIST && exclusive))
		return store_error(rs, "cannot put", name, rc);
	return rc;
}

int rados_store_touch(struct rados_store *rs, const char *name, int64_t now)
{
	char t[RADOS_STORE_TIME_DIGITS + 1];
	rados_write_op_t op;
	int rc;

	if (now < 0)
		return -EINVAL;
	if (fault("rados.touch", EIO))
		return store_error(rs, "cannot touch", name, -EIO);
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	time_digits(now, t);
	rados_write_op_assert_exists(op);
	rados_write_op_setxattr(op, RADOS_STORE_TIME_XATTR, t,
				RADOS_STORE_TIME_DIGITS);
	rc = write_op_run(rs, op, name);
	if (rc < 0 && rc != -ENOENT)
		return store_error(rs, "cannot touch", name, rc);
	return rc;
}

int rados_store_remove(struct rados_store *rs, const char *name)
{
	rados_write_op_t op;
	int rc;

	if (fault("rados.remove", EIO))
		return store_error(rs, "cannot remove", name, -EIO);
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_remove(op);
	rc = write_op_run(rs, op, name);
	if (rc < 0 && rc != -ENOENT)
		return store_error(rs, "cannot remove", name, rc);
	return rc;
}

int rados_store_remove_if_older(struct rados_store *rs, const char *name,
				int64_t cutoff)
{
	char t[RADOS_STORE_TIME_DIGITS + 1];
	rados_write_op_t op;
	int rc;

	if (cutoff < 0)
		return -EINVAL;
	if (fault("rados.remove", EIO))
		return store_error(rs, "cannot remove", name, -EIO);
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	time_digits(cutoff, t);
	/* the OSD tests `cutoff > stored` (see the top of this file) */
	rados_write_op_cmpxattr(op, RADOS_STORE_TIME_XATTR,
				LIBRADOS_CMPXATTR_OP_GT, t,
				RADOS_STORE_TIME_DIGITS);
	rados_write_op_remove(op);
	rc = write_op_run(rs, op, name);
	if (rc < 0 && rc != -ENOENT && rc != -ECANCELED)
		return store_error(rs, "cannot remove", name, rc);
	return rc;
}

/* ---- reads ---- */

int rados_store_get(struct rados_store *rs, const char *name, void *buf,
		    size_t cap, size_t *len)
{
	int stat_rc = 0, read_rc = 0, rc;
	size_t got = 0;
	uint64_t size = 0;
	rados_read_op_t op;

	op = rados_create_read_op();
	if (!op)
		return -ENOMEM;
	rados_read_op_stat(op, &size, NULL, &stat_rc);
	/* a read of length 0 would mean "the whole object" */
	if (cap > 0)
		rados_read_op_read(op, 0, cap, buf, &got, &read_rc);
	rc = rados_read_op_operate(op, rs->io, name, 0);
	rados_release_read_op(op);
	if (rc == 0)
		rc = stat_rc < 0 ? stat_rc : read_rc;
	if (rc == -ENOENT)
		return rc;
	if (rc < 0)
		return store_error(rs, "cannot read", name, rc);
	*len = size;
	if (size > cap) {
		snap_log(LOG_ERR,
			 "rados: object '%s' in pool '%s' holds %" PRIu64
			 " bytes, more than the %zu expected",
			 name, rs->where, size, cap);
		return -EFBIG;
	}
	if (got != size)
		/* stat and read in one op see one version: never */
		return store_error(rs, "short read of", name, -EIO);
	return 0;
}

int rados_store_checksum(struct rados_store *rs, const char *name,
			 uint64_t len, uint64_t *xxh64)
{
	/* the result: a little-endian count of checksums, then each one */
	uint8_t out[4 + 8];
	uint8_t seed[8] = { 0 };
	uint64_t size = 0, v;
	int stat_rc = 0, sum_rc = 0, rc;
	rados_read_op_t op;

	op = rados_create_read_op();
	if (!op)
		return -ENOMEM;
	rados_read_op_stat(op, &size, NULL, &stat_rc);
	rados_read_op_checksum(op, LIBRADOS_CHECKSUM_TYPE_XXHASH64,
			       (const char *)seed, sizeof(seed), 0, len, 0,
			       (char *)out, sizeof(out), &sum_rc);
	rc = fault("rados.checksum", EIO) ? -errno :
					    rados_read_op_operate(op, rs->io,
								  name, 0);
	rados_release_read_op(op);
	if (rc == 0)
		rc = stat_rc < 0 ? stat_rc : sum_rc;
	if (rc == -ENOENT)
		return rc;
	if (rc < 0)
		return store_error(rs, "cannot checksum", name, rc);
	if (size != len || out[0] != 1 || out[1] || out[2] || out[3])
		return store_error(rs, "unexpected size or checksum count of",
				   name, -EIO);
	memcpy(&v, out + 4, 8);
	*xxh64 = GUINT64_FROM_LE(v);
	return 0;
}

int rados_store_stat(struct rados_store *rs, const char *name, uint64_t *size,
		     int64_t *touched)
{
	int stat_rc = 0, xattrs_rc = 0, rc;
	rados_xattrs_iter_t it = NULL;
	int64_t t = 0;
	uint64_t sz = 0;
	rados_read_op_t op;

	op = rados_create_read_op();
	if (!op)
		return -ENOMEM;
	rados_read_op_stat(op, &sz, NULL, &stat_rc);
	rados_read_op_getxattrs(op, &it, &xattrs_rc);
	rc = rados_read_op_operate(op, rs->io, name, 0);
	rados_release_read_op(op);
	if (rc == 0)
		rc = stat_rc < 0 ? stat_rc : xattrs_rc;
	while (rc == 0) {
		const char *key, *val;
		size_t vlen;

		rc = rados_getxattrs_next(it, &key, &val, &vlen);
		if (rc < 0 || !key)
			break; /* no RADOS_STORE_TIME_XATTR: t stays 0 */
		if (strcmp(key, RADOS_STORE_TIME_XATTR) != 0)
			continue;
		if (parse_time_digits(val, vlen, &t) < 0) {
			snap_log(LOG_ERR,
				 "rados: object '%s' in pool '%s': xattr %s is not %d digits",
				 name, rs->where, RADOS_STORE_TIME_XATTR,
				 RADOS_STORE_TIME_DIGITS);
			rc = -EBADMSG;
		}
		break;
	}
	/* the iterator exists once the op was built, whatever happened */
	if (it)
		rados_getxattrs_end(it);
	if (rc == -ENOENT || rc == -EBADMSG)
		return rc;
	if (rc < 0)
		return store_error(rs, "cannot stat", name, rc);
	if (size)
		*size = sz;
	if (touched)
		*touched = t;
	return 0;
}

int rados_store_list(struct rados_store *rs, const char *prefix,
		     rados_store_list_fn fn, void *arg)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	rados_list_ctx_t ctx;
	int rc;

	rc = rados_nobjects_list_open(rs->io, &ctx);
	if (rc < 0)
		return store_error(rs, "cannot list", prefix ? prefix : "", rc);
	for (;;) {
		const char *entry;
		size_t entry_len;

		rc = rados_nobjects_list_next2(ctx, &entry, NULL, NULL,
					       &entry_len, NULL, NULL);
		if (rc == -ENOENT) {
			rc = 0; /* the end */
			break;
		}
		if (rc < 0) {
			store_error(rs, "cannot list", prefix ? prefix : "",
				    rc);
			break;
		}
		if (strlen(entry) != entry_len)
			continue; /* a NUL inside: not a name of ours */
		if (plen && strncmp(entry, prefix, plen) != 0)
			continue;
		rc = fn(entry, arg);
		if (rc != 0)
			break;
	}
	rados_nobjects_list_close(ctx);
	return rc;
}
