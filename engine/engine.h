/*
 * engine.h - the engine's insides, shared by the engine's own files only.
 *
 * LOCK ORDER (docs/design.md): busy flags first (a VM's, then its volumes'
 * in volume-id order; flags are held across an operation, set and waited
 * for under eng->lock), then eng->lock, then the catalog's lock.  Never the
 * other way, and neither lock is held across a subprocess, a libvirt call,
 * a file copy, an fsync of data or a wait for another thread (waits use
 * eng->cond, which releases eng->lock).
 *
 * eng->lock protects: stopping, running (the table of running jobs),
 * busy_volumes, busy_vms, control_results, vm_control_results,
 * idle_workers.  eng->policy_lock (a leaf) protects the policy drafts
 * and zones.  The waiters' lock (waiters.c) is a leaf too.  test_now is
 * read and written atomically.
 */
#ifndef SNAP_ENGINE_H
#define SNAP_ENGINE_H

#include <gio/gio.h>

#include "snap.h"
#include "catalog.h"
#include "image.h"
#include "fault.h"

struct snap_engine {
	struct snap_config cfg;
	char *source;
	char *primary;	 /* realpath */
	char *secondary; /* realpath */
	char *layers_dir;  /* PRIMARY/.snapfs */
	char *backups_dir; /* SECONDARY/volumes */
	char *tmp_dir;	   /* SECONDARY/.tmp */
	char *ptmp_dir;	   /* PRIMARY/.snapfs/.tmp: clones, restores */
	struct catalog *cat;

	GMutex lock;
	GCond cond; /* anything changed: scheduler, busy volumes, job ends */
	bool stopping;
	bool started;
	int64_t test_now;
	GHashTable *running;	     /* job id (int64 *) -> struct running_job */
	GHashTable *busy_volumes;    /* volume id (int64 *) -> itself */
	GHashTable *control_results; /* volume name -> result text */
	unsigned idle_workers;

	GThread *scheduler;
	GThreadPool *pool;

	void (*gone)(const char *path, void *arg); /* set before start */
	void *gone_arg;
	GThread *policy_thread;
	GThread *watch_thread;
	int watch_fd, watch_stop; /* inotify of PRIMARY, its stop eventfd */
	/* a leaf lock: nothing else is taken while it is held, so it may be
	 * taken under eng->lock or inside a catalog transaction (events name
	 * a draft's owner) */
	GMutex policy_lock;
	GHashTable *policy_drafts; /* name -> struct draft (policy_lock) */
	GHashTable *policy_zones;  /* tz name -> GTimeZone held (policy_lock) */
	char default_tz[64];	   /* policies without tz= */

	struct waiters *waiters; /* readers of wait files (waiters.c) */

	struct vm_conn *vm;	  /* NULL: no VMs (libvirt=none or unreachable) */
	GHashTable *busy_vms;	  /* VM uuid -> itself (eng->lock) */
	GHashTable *vm_control_results; /* VM name -> text (eng->lock) */
};

/* The running VM that writes a volume (vms.c). */
struct vm_user {
	char vm[SNAP_NAME_MAX + 1];
	char alias[64];
};

/* A job being run by a worker; refcounted because readers of jobs/<id> and
 * an rmdir that cancels it may hold it after the worker drops it.  While
 * it is in eng->running the table holds one reference (pool.c). */
struct running_job {
	gint refcount;
	struct catalog_job job;
	GCancellable *cancel;
	uint64_t bytes_done;  /* atomically read and written */
	uint64_t bytes_total; /* atomically read and written */
};

/* ---- engine.c ---- */
int64_t engine_now(struct snap_engine *eng);
/** engine_gone() - tell the front end the tree path (printf @fmt) is gone. */
void engine_gone(struct snap_engine *eng, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/** engine_wake() - tell the scheduler something changed. Takes eng->lock. */
void engine_wake(struct snap_engine *eng);

/* ---- events.c: record what happened; may run inside a transaction ---- */
/**
 * event_record() - append an event and log it
 * @err: 0 for success, else -errno (the event carries its name)
 */
void event_record(struct snap_engine *eng, const char *type, const char *volume,
		  const char *snapshot, int err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/** event_record_vm() - the same for a VM (its name under "vm"). */
void event_record_vm(struct snap_engine *eng, const char *type, const char *vm,
		     const char *snapshot, int err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/** event_reject() - a rejected operation: type "rejected" with op and path. */
void event_reject(struct snap_engine *eng, const char *op, const char *path,
		  int err, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/** owner_of() - the account owning volume (@key "volume") or VM ("vm")
 * @object; 0 (root) when unknown. */
uid_t owner_of(struct snap_engine *eng, const char *key, const char *object);
/** alert_raise_backup() - raise or refresh the backup alert of @snap. */
int alert_raise_backup(struct snap_engine *eng,
		       const struct catalog_snapshot *snap);
const char *errno_name(int err);
/** iso_time() - @t (seconds since the epoch) as "2026-11-22T07:00:00Z". */
void iso_time(int64_t t, char buf[32]);

/* ---- volume.c ---- */
char *volume_path(struct snap_engine *eng, const char *vol);
char *layer_path(struct snap_engine *eng, const char *vol, const char *uuid);
char *layer_dir(struct snap_engine *eng, const char *vol);
/**
 * volume_resolve() - the catalog row of volume @name, created on first
 * sight of its file.  *@on_primary (may be NULL) says whether the file
 * exists.  Return: 0; -EINVAL bad name; -ENOENT no file and no row.
 */
int volume_resolve(struct snap_engine *eng, const char *name,
		   struct catalog_volume *out, bool *on_primary);
/** volume_read_header() - parse the qcow2 header of the file at @path. */
int volume_read_header(const char *path, struct qcow2_header *out);
/** volume_in_use() - 1 when another process holds @path open for writing
 * (qemu's image locks), 0 when not, -errno. */
int volume_in_use(const char *path);
/** volume_deny_writers() - an fd whose lock (qemu's protocol) makes any
 * qemu that opens @path for writing fail until it is closed.
 * Return: the fd; -EBUSY someone denies it already; -errno. */
int volume_deny_writers(const char *path);
/** volume_busy_begin() - wait until no other structural operation runs on
 * @volume_id and mark it busy; volume_busy_end() undoes. */
void volume_busy_begin(struct snap_engine *eng, int64_t volume_id);
void volume_busy_end(struct snap_engine *eng, int64_t volume_id);
/**
 * safe_mkdir() - make directory @path (its parent exists) or accept the
 * one there, which must be a real directory, never a symbolic link.
 * Return: 0; -ELOOP a link or another kind of file (logged); -errno.
 */
int safe_mkdir(const char *path, mode_t mode);
/**
 * chain_mkdir() - safe_mkdir() for a directory that holds files of a disk's
 * backing chain: 0711, and one made 0700 by an older snapfs gets the
 * search bits added, so an unprivileged QEMU (qemu:///system runs it as
 * libvirt-qemu) can open the files it is told about without being able
 * to list the directory (docs/design.md, "Owners and labels").
 * Return: as safe_mkdir(); -errno from chmod (logged).
 */
int chain_mkdir(const char *path);
/** fsync_dir() - make a directory's entries durable. */
int fsync_dir(const char *dir);
/** fsync_path() - fsync a file by name. */
int fsync_path(const char *path);

/* ---- snapshot.c ---- */
/**
 * snapshot_take() - snap_snapshot_take() for policy @policy_id (0: by
 * hand); @replaces: the policy deletes one of its own right after, so the
 * account's limit is not checked (its count does not grow).
 */
int snapshot_take(struct snap_engine *eng, const char *vol, const char *name,
		  int64_t policy_id, bool replaces);
/** snapshot_lookup() - resolve @vol and the visible snapshot @name. */
int snapshot_lookup(struct snap_engine *eng, const char *vol, const char *name,
		    struct catalog_volume *v, struct catalog_snapshot *s);
/** snapshot_finish_delete() - remove a Destroying snapshot's backup files,
 * release its layer and drop its row (also used by recovery), recording
 * the event @type/@message in the transaction that drops the row. */
int snapshot_finish_delete(struct snap_engine *eng,
			   struct catalog_snapshot *snap, const char *type,
			   const char *message);
/** snapshot_retry() - queue a failed backup again (control `retry`). */
int snapshot_retry(struct snap_engine *eng, const char *vol, const char *name);

/* ---- backup.c ---- */
char *backup_image_path(struct snap_engine *eng, const struct catalog_snapshot *s);
char *backup_manifest_path(struct snap_engine *eng,
			   const struct catalog_snapshot *s);
char *backup_tmp_path(struct snap_engine *eng, const struct catalog_snapshot *s,
		      const char *suffix);
/** backup_run() - run one backup job to its end (worker thread). */
void backup_run(struct snap_engine *eng, struct running_job *rj);
/** backup_write_manifest() - (re)write the manifest of a backed-up @s. */
int backup_write_manifest(struct snap_engine *eng,
			  const struct catalog_snapshot *s);
/** backup_check_manifest() - rewrite the manifest of backed-up @s unless
 * it says what the catalog says (a rename whose rewrite failed or was
 * cut).  Return: 0 it was right, 1 rewritten, -errno. */
int backup_check_manifest(struct snap_engine *eng,
			  const struct catalog_snapshot *s);
/** backup_queue() - insert a fresh backup job for @s (inside a tx). */
int backup_queue(struct snap_engine *eng, struct catalog_snapshot *s);

/* ---- accounts.c ---- */
/** account_limit() - snapshots @uid may store; 0 for no limit (root). */
int64_t account_limit(struct snap_engine *eng, uid_t uid);
/**
 * account_quota_check() - may @uid store one more snapshot?  Call inside
 * the transaction that inserts it (it is rolled back on -EDQUOT: the
 * caller records the rejection, with @why, after it).
 * Return: 0; -EDQUOT and @why says so; -EIO.
 */
int account_quota_check(struct snap_engine *eng, uid_t uid, char *why,
			size_t size);

/* ---- clone.c ---- */
/**
 * snapshot_clone() - queue a copy of @vol's snapshot @snap as the new
 * volume @newvol (control `clone`).  Return: 0 queued; -ENOENT no such
 * snapshot; -EINVAL bad name; -EEXIST @newvol exists, is being made, or
 * is @vol; -EIO the snapshot's data is on neither storage.
 */
int snapshot_clone(struct snap_engine *eng, const char *vol, const char *snap,
		   const char *newvol);
/** clone_run() - run one clone job to its end (worker thread). */
void clone_run(struct snap_engine *eng, struct running_job *rj);

/* ---- revert.c ---- */
/**
 * volume_revert_to_layer() - make an empty overlay over @layer the file
 * of volume @vol (@volume_id): the volume then reads as that layer.  The
 * caller holds the volume's busy flag and knows nothing writes the file.
 */
int volume_revert_to_layer(struct snap_engine *eng, int64_t volume_id,
			   const char *vol, const char *layer);
/**
 * snapshot_revert() - put @vol back to its snapshot @snap (control
 * `revert`), from primary storage if the snapshot is there, else from its
 * backup; synchronous.  Return: 0; -ENOENT no such snapshot; -EBUSY a VM
 * or another process writes the volume; -EIO, -ENOSPC the copy failed.
 */
int snapshot_revert(struct snap_engine *eng, const char *vol, const char *snap);
/** revert_recover() - resolve reverts a crash interrupted, and make each
 * volume's top layer in the catalog the one its file is backed by. */
void revert_recover(struct snap_engine *eng);

/* ---- watch.c ---- */
/** watch_start() - report volume files removed from PRIMARY by hand
 * through the gone hook (best effort: 0 even when inotify fails). */
int watch_start(struct snap_engine *eng);
void watch_stop(struct snap_engine *eng);

/* ---- policies.c ---- */
/** policy_owner() - who wrote (or created) policies/@name; 0 none. */
uid_t policy_owner(struct snap_engine *eng, const char *name);
/** policies_init() - the default time zone and the drafts table. */
void policies_init(struct snap_engine *eng);
void policies_clear(struct snap_engine *eng);
/** policies_start() - the thread that runs due policies; _stop joins it. */
int policies_start(struct snap_engine *eng);
void policies_stop(struct snap_engine *eng);

/* ---- layer.c ---- */
/** layer_prune_primary() - apply keep_primary to @volume_id (after a
 * backup completes): release layers of the oldest backed-up snapshots. */
int layer_prune_primary(struct snap_engine *eng, int64_t volume_id);
/** layer_queue_merge() - queue a merge job for @volume_id unless one is
 * queued (inside or outside a tx). */
int layer_queue_merge(struct snap_engine *eng, int64_t volume_id);
/** layer_merge_run() - fold the unreferenced layers of a volume (worker). */
int layer_merge_run(struct snap_engine *eng, struct running_job *rj);
/** layer_recover() - at mount: complete or redo each merge a crash
 * interrupted, and unlink the names of retired layers. */
int layer_recover(struct snap_engine *eng);

/* ---- pool.c ---- */
int pool_start(struct snap_engine *eng);
void pool_stop(struct snap_engine *eng);
/** pool_cancel_snapshot() - cancel the running job of @snapshot_id and
 * wait until its worker let go of it.  Takes eng->lock. */
void pool_cancel_snapshot(struct snap_engine *eng, int64_t snapshot_id);
/** running_job_track() - show @job, run by the calling thread itself (a
 * revert), in jobs/ with progress; running_job_untrack() ends that. */
struct running_job *running_job_track(struct snap_engine *eng,
				      const struct catalog_job *job);
void running_job_untrack(struct snap_engine *eng, struct running_job *rj);
/** running_job_find() - a new reference to the running job @id, or NULL. */
struct running_job *running_job_find(struct snap_engine *eng, int64_t id);
void running_job_unref(struct running_job *rj);

/* ---- vms.c ---- */
/** vm_user_find() - the running VM with PRIMARY/@vol.qcow2 as a disk.
 * Return: 0; -ENOENT none (or no VMs); -EAGAIN libvirt cannot be reached. */
int vm_user_find(struct snap_engine *eng, const char *vol, struct vm_user *out);
/** vm_of_volume() - name of a VM (running or not) with @vol as a disk. */
int vm_of_volume(struct snap_engine *eng, const char *vol, char *vm, size_t size);
/** vms_start() - connect to libvirt, define SOURCE/domains/ *.xml.
 * Return: 0 (also when the embedded driver cannot start: no VMs); -errno
 * a libvirt named with -o libvirt=URI does not answer (logged). */
int vms_start(struct snap_engine *eng);
void vms_stop(struct snap_engine *eng);
/** vm_snapshot_take() - snap_vm_snapshot_take() for policy @policy_id
 * (@replaces as for snapshot_take()). */
int vm_snapshot_take(struct snap_engine *eng, const char *vm, const char *name,
		     int64_t policy_id, bool replaces);
/** vm_recover() - resolve VM snapshots left Creating/Reverting/Expunging. */
int vm_recover(struct snap_engine *eng);

/* ---- waiters.c: snap_snapshot_wait() and its wake-ups ---- */
/** waiters_new() - the waiters of a new engine; waiters_free(NULL) is a
 * no-op. */
struct waiters *waiters_new(void);
void waiters_free(struct waiters *w);
/**
 * waiters_wake() - a snapshot's backup ended or failed, or a snapshot was
 * deleted: callers of snap_snapshot_wait() look at the catalog again.
 * Call at or after the change (inside its transaction is fine).  Takes
 * only the waiters' leaf lock: callable under eng->lock or in a
 * transaction; never blocks for long.
 */
void waiters_wake(struct snap_engine *eng);
/**
 * waiters_stop() - every caller of snap_snapshot_wait() returns -ENOTCONN,
 * now and from now on; returns once none is left inside (they hold no
 * lock while they wait, so this cannot deadlock).  For snap_engine_close().
 */
void waiters_stop(struct snap_engine *eng);

/* ---- testpoint.c ---- */
/** testpoint() - block for ever here when SNAPFS_HANG_AT names @name. */
void testpoint(const char *name);

/* ---- recover.c ---- */
int recover_all(struct snap_engine *eng);

#endif
