/*
 * rados.h - objects in a Ceph RADOS pool (see rados.c, all of librados).
 *
 * The repository on Ceph (issue 14, docs/repository.md, "Ceph RADOS
 * (issue 14): the object operations") keeps one object per chunk, index
 * or manifest in one pool, optionally in one namespace of it.  This module
 * gives the few whole-object operations the repository needs, each one
 * RADOS operation and so atomic on the OSD:
 *
 *	put		create (exclusive or not) + write_full + setxattr
 *	get, stat	one read op
 *	touch		assert_exists + setxattr
 *	remove_if_older	cmpxattr + remove
 *	remove, list
 *
 * An object's xattr "snapfs.t" is the time a put or a touch last named it:
 * unix seconds as RADOS_STORE_TIME_DIGITS decimal digits, zero-padded, so
 * that the OSD's string comparison orders times.  The caller gives the
 * time (@now, the engine's clock): the engine's test clock then drives the
 * garbage collector's cutoffs, and a test never sleeps.  Hosts that share
 * a pool compare times written by each other's clocks: they must agree to
 * well within the collector's margin.
 *
 * A base module: no engine context; the caller hands it the cluster's
 * configuration file and the pool.
 *
 * CALLING SEQUENCE
 *
 *	struct rados_store *rs;
 *
 *	rc = rados_store_open("/etc/ceph/ceph.conf", NULL, "snapfs", NULL,
 *			      30, &rs);
 *		-ENOENT: no such pool; -ETIMEDOUT: no monitor answered
 *	rc = rados_store_put(rs, name, buf, len, true, now);
 *		-EEXIST: the object exists (exclusive); -EDQUOT, -ENOSPC: full
 *	rc = rados_store_get(rs, name, buf, cap, &len);
 *	rc = rados_store_touch(rs, name, now);	  -ENOENT: it is gone
 *	rc = rados_store_remove_if_older(rs, name, cutoff);
 *		0: removed; -ECANCELED: touched at or after @cutoff, kept
 *	rc = rados_store_list(rs, "prefix/", fn, arg);
 *	rados_store_close(rs);
 *
 * FAILURES: every call returns 0 or -errno and never blocks longer than
 * about the @op_timeout_s given to rados_store_open() per RADOS operation
 * (a list makes one per placement group and per 1024 names, each bounded):
 * an OSD that stopped, or a network partition, gives -ETIMEDOUT then;
 * librados resends the operation until that time is up, so an outage
 * shorter than it is invisible, and once the cluster answers again the
 * same store works (nothing to reopen).  Writes (put, touch and both removals)
 * are sent with LIBRADOS_OPERATION_FULL_TRY: on a pool over its quota they
 * fail with -EDQUOT, on a full cluster with -ENOSPC, instead of waiting
 * for space; operations that free space or take none (the removals, a
 * touch) still succeed there, so the garbage collector can run on a full
 * pool.  A librados code is passed on as it is (it is already -errno).
 *
 * THREAD SAFETY: a struct rados_store is read-only after rados_store_open()
 * (librados's cluster handle and I/O context are thread-safe for these
 * operations, and nothing here changes the context after the open), so
 * every function may run in any number of threads at once; no lock is
 * taken here.  Every function but rados_store_close() blocks on the
 * network.
 */
#ifndef SNAP_RADOS_H
#define SNAP_RADOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the xattr holding the time an object was last put or touched */
#define RADOS_STORE_TIME_XATTR "snapfs.t"
/* its width: unix seconds, zero-padded ("00000000001765000000") */
#define RADOS_STORE_TIME_DIGITS 20

struct rados_store;

/**
 * rados_store_open() - connect to the cluster of @conf and open @pool
 * @conf: a ceph.conf (monitor addresses, auth); copied
 * @client_id: the CephX user without "client." ("snapfs"), or NULL for
 *	"admin"; its key comes from the keyring @conf names
 * @pool: an existing pool; copied
 * @ns: a namespace within @pool, or NULL for the default one; copied
 * @op_timeout_s: seconds a connection, a monitor command or an OSD
 *	operation may take before it fails with -ETIMEDOUT (librados's
 *	client_mount_timeout, rados_mon_op_timeout, rados_osd_op_timeout);
 *	0 leaves librados's defaults: connect 300 s, operations never time
 *	out, which a FUSE daemon must not use
 * @out: on success owns the store; close with rados_store_close()
 *
 * librados logs nothing to stderr (log_to_stderr and err_to_stderr are
 * turned off; a [client] `log file` in @conf still works).  Blocks while
 * connecting: at most about @op_timeout_s.
 * Return: 0; -ENOENT no pool @pool (logged: "rados: no pool ..."); -ENOENT,
 * -EINVAL... @conf unreadable or bad; -ETIMEDOUT no monitor answered;
 * -EACCES, -EPERM @client_id not allowed; -ENOMEM.  All logged.
 */
int rados_store_open(const char *conf, const char *client_id, const char *pool,
		     const char *ns, unsigned op_timeout_s,
		     struct rados_store **out);

/** rados_store_close() - disconnect and free @rs; NULL is a no-op.  No
 * call may run on @rs.  Blocks until librados has shut down (no
 * operation is pending then: every call here waits for its own). */
void rados_store_close(struct rados_store *rs);

/**
 * rados_store_put() - write object @name as @len bytes at @data (borrowed),
 * whole, and mark it put at @now
 * @exclusive: fail with -EEXIST when @name exists (nothing written);
 *	else replace any object of that name
 * @now: unix seconds, >= 0: the object's RADOS_STORE_TIME_XATTR
 *
 * One write operation (create, write_full, setxattr): a reader sees the
 * old object or the new one whole, never a mix, and a failure leaves
 * nothing of the new one.  @len may be 0 (an empty object).  Fault point
 * "rados.put".
 * Return: 0 (the OSD has it durably); -EEXIST @exclusive and @name exists
 * (not logged); -EDQUOT pool quota reached; -ENOSPC cluster full;
 * -ETIMEDOUT; -EINVAL @now < 0 (not logged); -E2BIG, -ENAMETOOLONG... as
 * the OSD says.  All but -EEXIST and -EINVAL logged.
 */
int rados_store_put(struct rados_store *rs, const char *name, const void *data,
		    size_t len, bool exclusive, int64_t now);

/**
 * rados_store_get() - read object @name, whole, into @buf
 * @cap: bytes at @buf
 * @len: receives the object's size
 *
 * One read operation (stat and read together: the size and the bytes are
 * of the same version of the object).
 * Return: 0; -ENOENT no such object (not logged); -EFBIG it is larger than
 * @cap (*@len still receives its size; logged); -ETIMEDOUT... (logged).
 */
int rados_store_get(struct rados_store *rs, const char *name, void *buf,
		    size_t cap, size_t *len);

/**
 * rados_store_checksum() - the XXH64 (seed 0) of the first @len bytes of
 * object @name, computed by the OSD from what it stored (nothing is sent
 * back but the 8 bytes): a writer's read-back without the transfer
 * @xxh64: receives it
 *
 * Fault point "rados.checksum".
 * Return: 0; -ENOENT no such object (not logged); -EIO the object is not
 * @len bytes long (logged); -ETIMEDOUT... (logged).
 */
int rados_store_checksum(struct rados_store *rs, const char *name,
			 uint64_t len, uint64_t *xxh64);
/**
 * rados_store_stat() - the size of object @name and when it was last put
 * or touched
 * @size, @touched: receive them; either may be NULL.  *@touched is 0 when
 *	the object has no RADOS_STORE_TIME_XATTR (not written here)
 *
 * Return: 0; -ENOENT no such object (not logged); -EBADMSG the xattr is
 * not RADOS_STORE_TIME_DIGITS digits (logged); -ETIMEDOUT... (logged).
 */
int rados_store_stat(struct rados_store *rs, const char *name, uint64_t *size,
		     int64_t *touched);

/**
 * rados_store_touch() - mark existing object @name as named at @now
 *
 * One write operation, assert_exists + setxattr: it fails, changing
 * nothing, when @name does not exist, so a touch never creates an object;
 * and a rados_store_remove_if_older() with a cutoff at or before @now,
 * running anywhere, either removed the object before the touch (the touch
 * fails with -ENOENT) or keeps it.  Fault point "rados.touch".
 * Return: 0; -ENOENT no such object (not logged); -EINVAL @now < 0 (not
 * logged); -ETIMEDOUT... (logged).
 */
int rados_store_touch(struct rados_store *rs, const char *name, int64_t now);

/**
 * rados_store_remove() - remove object @name, whatever its age
 * Fault point "rados.remove".
 * Return: 0; -ENOENT no such object (not logged); -ETIMEDOUT... (logged).
 */
int rados_store_remove(struct rados_store *rs, const char *name);

/**
 * rados_store_remove_if_older() - the garbage collector's step for one
 * unnamed object: remove @name if it was last put or touched before
 * @cutoff (unix seconds)
 *
 * One write operation: cmpxattr (the OSD compares RADOS_STORE_TIME_XATTR
 * with @cutoff, as strings) + remove.  The OSD runs the two atomically on
 * the object, so a touch from another host at or after @cutoff either
 * comes first (the object is kept) or finds it gone (-ENOENT: its backup
 * puts the chunk again); a just-touched object is never removed.  An
 * object without the xattr counts as older than any cutoff.  Fault point
 * "rados.remove".
 * Return: 0 removed; -ECANCELED it is not older than @cutoff, kept (the
 * OSD's code for a failed comparison; not logged); -ENOENT no such object
 * (not logged); -EINVAL @cutoff < 0 (not logged); -ETIMEDOUT... (logged).
 */
int rados_store_remove_if_older(struct rados_store *rs, const char *name,
				int64_t cutoff);

/*
 * rados_store_list_fn - called by rados_store_list() for each object name
 * (borrowed for the call).  Return 0 to go on, -errno to stop the listing
 * with that code.
 */
typedef int (*rados_store_list_fn)(const char *name, void *arg);

/**
 * rados_store_list() - call @fn for every object of the store's pool and
 * namespace whose name begins with @prefix ("" or NULL: every object)
 *
 * RADOS has no listing by prefix: every object of the namespace is listed,
 * placement group by placement group, in hash order (no name order), and
 * @prefix is only a filter here, so a listing costs a round trip per
 * placement group and per 1024 objects of the whole namespace, whatever
 * @prefix matches (a pool of a million chunks: about a thousand round
 * trips).  An object put or removed during the listing may or may not be
 * seen; @fn may call the other functions on @rs (remove the object it was
 * given, for one).  Names holding a NUL byte are skipped.
 * Return: 0; what @fn returned to stop; -ETIMEDOUT... (logged).
 */
int rados_store_list(struct rados_store *rs, const char *prefix,
		     rados_store_list_fn fn, void *arg);

#endif
