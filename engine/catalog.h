/*
 * catalog.h - the catalog: what snapfs knows, in sqlite (catalog.c).
 *
 * Tables: volumes, layers (the frozen qcow2 files under PRIMARY/.snapfs),
 * snapshots, jobs (the backup queue), events, alerts.  One connection per
 * engine, in WAL mode with synchronous=FULL: a call that returned has
 * reached the disk.
 *
 * THREAD SAFETY: every function takes the catalog's recursive lock, so any
 * thread may call any function.  catalog_tx_begin() keeps the lock until
 * catalog_tx_end(), making a group of calls one transaction; nothing else
 * may be done while a transaction is open (no subprocess, no other lock:
 * the catalog lock is the innermost lock of the engine).  There is only
 * one connection, so sqlite never busy-waits.
 *
 * Rows come back in fixed-size structs, so there is nothing to free.
 *
 * ERRORS: sqlite's codes become -errno in one table (catalog.c's
 * catalog_errno()).  A failure is logged once, in catalog.c, naming the
 * query's purpose; the answers a caller asks for are not logged: -ENOENT
 * no such row, -EEXIST a unique key (a name) is taken.  A write naming a
 * row that does not exist (a foreign key) is -ENOENT too, and logged.
 * Every write passes the failure point "catalog.write" (fault.h), every
 * catalog_tx_begin() "catalog.begin".
 */
#ifndef SNAP_CATALOG_H
#define SNAP_CATALOG_H

#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>
#include <glib.h>

#include "snap.h"
#include "checksum.h"

#define UUID_TEXT_MAX 37
#define CATALOG_ERROR_MAX 512

struct catalog;

struct catalog_volume {
	int64_t id;
	char name[SNAP_NAME_MAX + 1];
	char uuid[UUID_TEXT_MAX];
	uid_t uid;
	gid_t gid;
	char top_layer[UUID_TEXT_MAX]; /* backing layer of the active file, "" */
};

enum layer_state {
	LAYER_STATE_CREATING, /* a take is making it */
	LAYER_STATE_LIVE,
	LAYER_STATE_MERGING,  /* being folded into its only child */
	LAYER_STATE_RETIRED,  /* folded: its name is a second link to the
			       * child's file, kept for openers that read the
			       * old chain, unlinked after a grace (layer.c) */
	LAYER_STATE_LAST
};

struct catalog_layer {
	int64_t id;
	int64_t volume_id;
	char uuid[UUID_TEXT_MAX];
	char parent[UUID_TEXT_MAX]; /* "" for the bottom of the chain */
	enum layer_state state;
};

struct catalog_snapshot {
	int64_t id;
	int64_t volume_id;
	char volume[SNAP_NAME_MAX + 1]; /* filled by reads (join) */
	char name[SNAP_NAME_MAX + 1];
	char uuid[UUID_TEXT_MAX];
	char layer[UUID_TEXT_MAX]; /* "" when no longer on primary */
	enum snap_state state;
	int64_t created_at;
	int64_t backed_up_at; /* 0 when not backed up */
	uint64_t virtual_size;
	uint64_t backup_bytes;
	char checksum[CHECKSUM_TEXT_MAX];
	int err; /* positive errno of the last failure, 0 */
	char error[CATALOG_ERROR_MAX];
	int attempts;
	int64_t policy_id; /* the policy that took it, 0 for a manual one */
	int64_t verified_at; /* last verify that found the backup sound (or
			      * Damaged), 0 never (verify.h); schema 4 */
	char volume_uuid[UUID_TEXT_MAX]; /* filled by reads (join) */
};

enum job_state {
	JOB_STATE_QUEUED,
	JOB_STATE_RUNNING,
	JOB_STATE_WAITING, /* failed, automatic retry at not_before */
	JOB_STATE_LAST
};

enum job_kind {
	JOB_KIND_BACKUP,
	JOB_KIND_MERGE,  /* fold unreferenced layers of a volume */
	JOB_KIND_CLONE,  /* copy a snapshot into a new volume (target) */
	JOB_KIND_REVERT, /* a revert in progress, run by its writer, never claimed */
	JOB_KIND_LAST
};

struct catalog_job {
	int64_t id;
	enum job_kind kind;
	int64_t snapshot_id; /* backup, clone, revert: the snapshot read */
	int64_t volume_id;
	enum job_state state;
	int64_t not_before;
	int attempts;
	char target[SNAP_NAME_MAX + 1]; /* clone: the new volume's name */
	/* a restore of another host's backup (a clone with snapshot_id 0):
	 * "<host>/<vol>/<snapshot uuid>"; "" for every other job; schema 5 */
	char source[2 * SNAP_NAME_MAX + UUID_TEXT_MAX + 4];
};

/**
 * catalog_open() - open or create the catalog at @path (":memory:" for
 * tests).  A failure is logged once, naming @path and why.
 * Return: 0, *@out owns it (catalog_close); -EIO not an sqlite database
 * (or damaged); the system's -errno when the file cannot be opened or
 * created (-EISDIR, -EACCES, -EROFS...); -EINVAL a catalog from a newer
 * snapfs.
 */
int catalog_open(const char *path, struct catalog **out);
void catalog_close(struct catalog *cat);

/* Transactions (see THREAD SAFETY). */
int catalog_tx_begin(struct catalog *cat);
/** catalog_tx_end() - commit when @rc >= 0, else roll back. Return: @rc,
 * or the commit's error. */
int catalog_tx_end(struct catalog *cat, int rc);

/** catalog_sqlite_version() - the linked sqlite's version string. */
const char *catalog_sqlite_version(void);

/** catalog_integrity_check() - 0 when `PRAGMA integrity_check` says ok. */
int catalog_integrity_check(struct catalog *cat);

/* ---- volumes: 0, -ENOENT, -EEXIST, -EIO ---- */
int catalog_volume_get(struct catalog *cat, const char *name,
		       struct catalog_volume *out);
int catalog_volume_get_by_id(struct catalog *cat, int64_t id,
			     struct catalog_volume *out);
/** catalog_volume_insert() - sets @vol->id. */
int catalog_volume_insert(struct catalog *cat, struct catalog_volume *vol);
int catalog_volume_update(struct catalog *cat, const struct catalog_volume *vol);
/** catalog_volume_all() - every volume row; *@out owns a GArray. */
int catalog_volume_all(struct catalog *cat, GArray **out);

/* ---- layers ---- */
int catalog_layer_insert(struct catalog *cat, struct catalog_layer *layer);
int catalog_layer_get(struct catalog *cat, const char *uuid,
		      struct catalog_layer *out);
int catalog_layer_update(struct catalog *cat, const struct catalog_layer *layer);
int catalog_layer_delete(struct catalog *cat, const char *uuid);
/** catalog_layer_list() - layers of @volume_id (all volumes when < 0). */
int catalog_layer_list(struct catalog *cat, int64_t volume_id, GArray **out);
/** catalog_layer_children() - count layers whose parent is @uuid. */
int catalog_layer_children(struct catalog *cat, const char *uuid);

/* ---- snapshots ---- */
int catalog_snapshot_get(struct catalog *cat, int64_t volume_id,
			 const char *name, struct catalog_snapshot *out);
/** catalog_snapshot_get_by_uuid() - the snapshot of @uuid; -ENOENT none. */
int catalog_snapshot_get_by_uuid(struct catalog *cat, const char *uuid,
				 struct catalog_snapshot *out);
int catalog_snapshot_get_by_id(struct catalog *cat, int64_t id,
			       struct catalog_snapshot *out);
/** catalog_snapshot_by_layer() - the snapshot using layer @uuid. */
int catalog_snapshot_by_layer(struct catalog *cat, const char *uuid,
			      struct catalog_snapshot *out);
/** catalog_snapshot_insert() - sets @snap->id. -EEXIST name taken. */
int catalog_snapshot_insert(struct catalog *cat, struct catalog_snapshot *snap);
/** catalog_snapshot_update() - write every mutable field of @snap. */
int catalog_snapshot_update(struct catalog *cat,
			    const struct catalog_snapshot *snap);
int catalog_snapshot_delete(struct catalog *cat, int64_t id);
/**
 * catalog_snapshot_list() - snapshots of @volume_id (all when < 0), oldest
 * first; with @state >= 0 only that state.  *@out owns a GArray of
 * struct catalog_snapshot.
 */
int catalog_snapshot_list(struct catalog *cat, int64_t volume_id, int state,
			  GArray **out);
/** catalog_snapshot_names() - visible names of @volume_id, sorted; with
 * @backed_up only BackedUp ones.  *@out owns a NULL-terminated vector. */
int catalog_snapshot_names(struct catalog *cat, int64_t volume_id,
			   bool backed_up, char ***out);
/** catalog_backup_volume_names() - volumes having a BackedUp snapshot. */
int catalog_backup_volume_names(struct catalog *cat, char ***out);
struct catalog_dirent {
	int64_t id;
	char name[SNAP_NAME_MAX + 1];
	int64_t created_at;
};
/** catalog_snapshot_dirents() - the visible snapshots of a volume, by
 * name, with what a directory listing needs; GArray of catalog_dirent. */
int catalog_snapshot_dirents(struct catalog *cat, int64_t volume_id,
			     GArray **out);

/* ---- jobs ---- */
int catalog_job_insert(struct catalog *cat, struct catalog_job *job);
int catalog_job_get(struct catalog *cat, int64_t id, struct catalog_job *out);
int catalog_job_update(struct catalog *cat, const struct catalog_job *job);
int catalog_job_delete(struct catalog *cat, int64_t id);
/** catalog_job_for_snapshot() - the job of @snapshot_id. -ENOENT none. */
int catalog_job_for_snapshot(struct catalog *cat, int64_t snapshot_id,
			     struct catalog_job *out);
/**
 * catalog_job_claim() - mark the oldest due job RUNNING and return it
 * A job is due when QUEUED or WAITING with not_before <= @now; merge jobs
 * of a volume with a RUNNING merge job are skipped.
 * Return: 0; -ENOENT nothing due.
 */
int catalog_job_claim(struct catalog *cat, int64_t now, struct catalog_job *out);
/** catalog_job_find_merge() - the merge job of @volume_id in @state. */
int catalog_job_find_merge(struct catalog *cat, int64_t volume_id,
			   enum job_state state, struct catalog_job *out);
/** catalog_job_next_due() - earliest not_before of a WAITING job, or -ENOENT. */
int catalog_job_next_due(struct catalog *cat, int64_t *when);
/** catalog_job_requeue_running() - RUNNING jobs back to QUEUED (recovery). */
int catalog_job_requeue_running(struct catalog *cat);
/** catalog_job_ids() - ids of all jobs, ascending. *@out owns a GArray of int64_t. */
int catalog_job_ids(struct catalog *cat, GArray **out);
/** catalog_job_readers() - clone and revert jobs reading @snapshot_id. */
int catalog_job_readers(struct catalog *cat, int64_t snapshot_id);
/** catalog_job_by_target() - the clone job making volume @target. */
int catalog_job_by_target(struct catalog *cat, const char *target,
			  struct catalog_job *out);
/** catalog_job_list() - GArray of struct catalog_job of @kind, by id. */
int catalog_job_list(struct catalog *cat, enum job_kind kind, GArray **out);

/* ---- events: each names the account (uid) of the object it is about ---- */
int catalog_event_add(struct catalog *cat, int64_t time, uid_t uid,
		      const char *json);
/** catalog_events_text() - the events of account @uid (every event when
 * @uid < 0), one JSON line each, oldest first. */
int catalog_events_text(struct catalog *cat, int64_t uid, GString *out);

/* ---- alerts: one unresolved alert per (kind, subject); the subject is a
 * backup's snapshot id, a clone's job id ---- */
/** catalog_alert_raise() - insert or replace; *@id_out its id. */
int catalog_alert_raise(struct catalog *cat, const char *kind,
			int64_t snapshot_id, int64_t time, uid_t uid,
			const char *json, int64_t *id_out);
/** catalog_alert_owner() - the account an alert is about. */
int catalog_alert_owner(struct catalog *cat, int64_t id, uid_t *uid);
/** catalog_alert_resolve() - drop the alerts of (kind, snapshot); count. */
int catalog_alert_resolve(struct catalog *cat, const char *kind,
			  int64_t snapshot_id);
int catalog_alert_get(struct catalog *cat, int64_t id, char **json_out);
int catalog_alert_delete(struct catalog *cat, int64_t id);
int catalog_alert_ids(struct catalog *cat, GArray **out);
/**
 * catalog_ids_take() - the ids of @a (from catalog_job_ids() or
 * catalog_alert_ids()) as an array of uint64_t in *@out (g_free() it);
 * @a is consumed.  Return: their count.
 */
static inline int catalog_ids_take(GArray *a, uint64_t **out)
{
	int n = (int)a->len;

	*out = (uint64_t *)(void *)g_array_free(a, FALSE);
	return n;
}

/* ---- layer references: snapshots and VM snapshot disks ---- */
/** catalog_layer_referenced() - how many snapshots use layer @uuid. */
int catalog_layer_referenced(struct catalog *cat, const char *uuid);

/* ---- VMs: rows keyed by the domain's uuid ---- */
struct catalog_vm {
	int64_t id;
	char uuid[UUID_TEXT_MAX];
	char name[SNAP_NAME_MAX + 1];
	int64_t current; /* id of the current VM snapshot, 0 */
	char options[64];
	uid_t uid; /* the account that owns the VM (chown vms/<vm>) */
	gid_t gid;
};

enum vm_snapshot_type {
	VM_SNAPSHOT_DISK,
	VM_SNAPSHOT_DISK_MEMORY,
	VM_SNAPSHOT_TYPE_LAST
};

enum vm_snapshot_state {
	VM_SNAPSHOT_CREATING,
	VM_SNAPSHOT_READY,
	VM_SNAPSHOT_REVERTING,
	VM_SNAPSHOT_EXPUNGING,
	VM_SNAPSHOT_ERROR,
	VM_SNAPSHOT_STATE_LAST
};

struct catalog_vm_snapshot {
	int64_t id;
	int64_t vm_id;
	char name[SNAP_NAME_MAX + 1];
	char uuid[UUID_TEXT_MAX];
	int64_t parent; /* 0 for a root */
	enum vm_snapshot_type type;
	enum vm_snapshot_state state;
	int64_t created_at;
	char memory[4096]; /* save file path, "" for disk-only */
	int64_t policy_id; /* the policy that took it, 0 for a manual one */
};

struct catalog_vm_disk {
	int64_t volume_id;
	char volume[SNAP_NAME_MAX + 1];
	char target[32];
	char layer[UUID_TEXT_MAX];
};

int catalog_vm_get(struct catalog *cat, const char *uuid, struct catalog_vm *out);
int catalog_vm_get_by_id(struct catalog *cat, int64_t id, struct catalog_vm *out);
/** catalog_vm_get_by_name() - the newest row named @name. */
int catalog_vm_get_by_name(struct catalog *cat, const char *name,
			   struct catalog_vm *out);
/** catalog_vm_ensure() - the row of domain @uuid, made or renamed to @name. */
int catalog_vm_ensure(struct catalog *cat, const char *uuid, const char *name,
		      struct catalog_vm *out);
int catalog_vm_update(struct catalog *cat, const struct catalog_vm *vm);
/** catalog_vm_all() - every VM row; *@out owns a GArray. */
int catalog_vm_all(struct catalog *cat, GArray **out);
/** catalog_vm_delete() - drop a VM row (its snapshots first). */
int catalog_vm_delete(struct catalog *cat, int64_t id);
int catalog_vm_snapshot_get(struct catalog *cat, int64_t vm_id,
			    const char *name, struct catalog_vm_snapshot *out);
int catalog_vm_snapshot_get_by_id(struct catalog *cat, int64_t id,
				  struct catalog_vm_snapshot *out);
int catalog_vm_snapshot_insert(struct catalog *cat,
			       struct catalog_vm_snapshot *s);
int catalog_vm_snapshot_update(struct catalog *cat,
			       const struct catalog_vm_snapshot *s);
/** catalog_vm_snapshot_delete() - the snapshot and its disk rows. */
int catalog_vm_snapshot_delete(struct catalog *cat, int64_t id);
/** catalog_vm_snapshot_list() - of @vm_id (all when < 0), oldest first. */
int catalog_vm_snapshot_list(struct catalog *cat, int64_t vm_id, GArray **out);
int catalog_vm_snapshot_disk_add(struct catalog *cat, int64_t vm_snapshot_id,
				 int64_t volume_id, const char *target,
				 const char *layer);
/** catalog_vm_snapshot_disks() - GArray of struct catalog_vm_disk. */
int catalog_vm_snapshot_disks(struct catalog *cat, int64_t vm_snapshot_id,
			      GArray **out);

/* ---- policies: one row per policies/<name> file ---- */
struct catalog_policy {
	int64_t id;
	char name[SNAP_NAME_MAX + 1];
	uid_t uid; /* who wrote it */
	gid_t gid;
	char spec[512]; /* the normalized policy line (policy_format) */
	int kind;	/* enum policy_target_kind */
	char target[SNAP_NAME_MAX + 1];
	int interval;	   /* enum policy_interval */
	int64_t next_run;  /* the next slot, seconds since the epoch */
	int64_t last_run;  /* when it last ran, 0 never */
	int64_t last_slot; /* the slot it last ran for */
	char last_result[256]; /* "ok", or what failed */
};

int catalog_policy_get(struct catalog *cat, const char *name,
		       struct catalog_policy *out);
/** catalog_policy_find() - the policy of (@kind, @target, @interval). */
int catalog_policy_find(struct catalog *cat, int kind, const char *target,
			int interval, struct catalog_policy *out);
/** catalog_policy_put() - insert (@p->id 0: sets it) or update.  -EEXIST
 * the name, or the (kind, target, interval), is taken. */
int catalog_policy_put(struct catalog *cat, struct catalog_policy *p);
int catalog_policy_delete(struct catalog *cat, int64_t id);
/** catalog_policy_list() - policies due by @due_by (all when < 0), the
 * earliest first; *@out owns a GArray of struct catalog_policy. */
int catalog_policy_list(struct catalog *cat, int64_t due_by, GArray **out);
/** catalog_policy_next_due() - the earliest next_run; -ENOENT none. */
int catalog_policy_next_due(struct catalog *cat, int64_t *when);

/* ---- accounts ---- */
/** catalog_snapshots_owned() - volume and VM snapshots stored for @uid
 * (of the volumes and VMs it owns, not being deleted). */
int catalog_snapshots_owned(struct catalog *cat, uid_t uid);
struct catalog_limit {
	uid_t uid;
	int64_t max_snapshots;
};
/** catalog_limit_get() - the account's own limit; -ENOENT none set. */
int catalog_limit_get(struct catalog *cat, uid_t uid, int64_t *max);
/** catalog_limit_set() - set it; @max < 0 drops it. */
int catalog_limit_set(struct catalog *cat, uid_t uid, int64_t max);
/** catalog_limit_list() - GArray of struct catalog_limit, by uid. */
int catalog_limit_list(struct catalog *cat, GArray **out);

/* ---- identity (schema 5) ---- */
/* A catalog catalog_open() creates starts with ("import", "pending"):
 * import.h. */
/**
 * catalog_identity_get() - the value recorded under @key ("host": the
 * mount's host name, engine.c)
 * @value: on success a copy; g_free() it
 * Return: 0; -ENOENT nothing recorded; -EIO... (logged).
 */
int catalog_identity_get(struct catalog *cat, const char *key, char **value);
/** catalog_identity_set() - record @value under @key (replacing). */
int catalog_identity_set(struct catalog *cat, const char *key,
			 const char *value);

#endif
