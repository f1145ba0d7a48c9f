/*
 * snap.h - the snapfs engine: the only engine header fs/ and tools/ include.
 *
 * The engine owns the catalog (sqlite), the volumes on primary storage, the
 * backups on secondary storage and the background workers that copy one to
 * the other.  It knows nothing of FUSE: the file system front end in fs/
 * parses a path, calls one snap_* function and turns the result into a stat
 * or an errno.
 *
 * Conventions, for every function below unless its contract says otherwise:
 *
 *  - Return 0 (or a count) on success, -errno on failure.  The errno is the
 *    one a user should see (see docs/errors.md); nothing is flattened to EIO
 *    that has a better meaning.
 *  - A function that rejects a user's operation (mkdir, rmdir, rename, a
 *    control command...) has already written the event that says why; the
 *    caller only passes the errno on.  Lookups (stat, list, read) write no
 *    events.
 *  - Strings and arrays returned through out-parameters are owned by the
 *    caller: free strings with g_free(), string vectors with g_strfreev(),
 *    id arrays with g_free().
 *  - Everything is thread-safe once snap_engine_start() has returned.  No
 *    call holds an engine lock across a subprocess or a blocking wait, but
 *    calls that change storage (take, delete, control commands) may block
 *    for the time of a short subprocess (qemu-img create, tens of ms).
 *    Longer blocking calls say so in their contract: a volume revert from
 *    a backup, VM control commands and VM snapshots (libvirt), and
 *    snap_snapshot_wait().
 *
 * The tree these functions serve, and the errnos users rely on, are in
 * docs/tree.md.
 */
#ifndef SNAP_H
#define SNAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct snap_engine;

/* Limits from the tree contract (docs/tree.md). */
#define SNAP_NAME_MAX 128

/**
 * struct snap_config - how an engine is set up; see snapfs(8) for the options.
 * @source:       state directory (catalog, log); must exist
 * @primary:      primary storage directory, which must exist; NULL means
 *                @source/primary, made when missing
 * @secondary:    secondary storage directory, made when missing; NULL
 *                means @source/secondary; "rados:<pool>[/<namespace>]"
 *                puts the repository in that Ceph RADOS pool (then
 *                @repository must be true; @source/secondary is still
 *                made, for nothing of the repository)
 * @ceph_conf:    with a RADOS secondary, the cluster's ceph.conf; NULL
 *                /etc/ceph/ceph.conf
 * @ceph_id:      with a RADOS secondary, the CephX user without
 *                "client."; NULL "admin"
 * @workers:      background copy workers (1..64)
 * @keep_primary: backed-up snapshots per volume kept on primary storage
 * @retries:      automatic retries of a failed backup
 * @retry_delay:  seconds before the first automatic retry; doubled each time
 * @min_free:     bytes that must stay free on primary for a take to succeed
 * @libvirt:      libvirt URI, which must answer at snap_engine_start();
 *                NULL embeds libvirt's QEMU driver rooted at SOURCE/libvirt
 *                (when that fails to start, the engine runs without VMs);
 *                "none" runs without VMs
 * @vm_snapshots_off: domain types ("kvm:qemu") whose VM snapshots are
 *                switched off; NULL none
 * @stop_timeout: seconds a `stop` waits for the guest to shut down
 * @max_snapshots: snapshots (volume and VM) each account may store; 0 no
 *                limit; root is never limited
 * @repository:   back up into the repository of deduplicated chunks on
 *                secondary storage (docs/repository.md) rather than as a
 *                qcow2 copy per snapshot
 * @verify_interval: days between two verifies of each backup (the oldest
 *                verified first; docs/repository.md); 0 no periodic verify
 * @test_clock:   the engine's clock only moves when snap_clock_set() says so
 * @foreground:   log everything to stderr as well as to
 *                @source/snapfs.log; else only errors go to stderr too
 * @debug:        log at debug level
 */
struct snap_config {
	const char *source;
	const char *primary;
	const char *secondary;
	const char *ceph_conf;
	const char *ceph_id;
	unsigned workers;
	unsigned keep_primary;
	unsigned retries;
	unsigned retry_delay;
	uint64_t min_free;
	const char *libvirt;
	const char *vm_snapshots_off;
	unsigned stop_timeout;
	unsigned max_snapshots; /* per account, 0: no limit */
	bool repository; /* back up into the repository; the mount's default */
	const char *host; /* this host's name in the repository; NULL: the one
			   * the catalog recorded, else gethostname() */
	unsigned verify_interval; /* days, 0: off */
	bool test_clock;
	bool foreground;
	bool debug;
};

/**
 * snap_engine_set_gone() - @fn(@path, @arg) is called for each path of
 * the tree (relative, no leading '/') the engine removes by itself (a
 * snapshot deleted, its backup files), so a front end caching the tree
 * can forget it.  Called from engine threads, with no engine lock held;
 * @fn must not block.  Set before snap_engine_start().
 */
void snap_engine_set_gone(struct snap_engine *eng,
			  void (*fn)(const char *path, void *arg), void *arg);

/** snap_config_init() - fill @cfg with the documented defaults. */
void snap_config_init(struct snap_config *cfg);

/**
 * snap_engine_open() - check the directories and open the catalog
 *
 * Starts no thread and no subprocess, so it may run before the process
 * daemonizes.  Creates the default primary and any secondary directory
 * when missing.  Every failure is logged once, naming the directory or
 * file and why (on stderr too: see @foreground).
 * Return: 0 and *@out owns the engine (free with snap_engine_close());
 * -ENOENT source or a named primary missing; -ENOTDIR; -EACCES; -EINVAL
 * bad @workers, primary and secondary the same, a catalog of a newer
 * snapfs; -EIO catalog unreadable; the system's -errno when the catalog
 * file cannot be opened (-EISDIR, -EROFS...).
 */
int snap_engine_open(const struct snap_config *cfg, struct snap_engine **out);

/**
 * snap_engine_start() - recover from the last run and start the workers
 *
 * Resolves everything the last run left unfinished (see docs/design.md,
 * "Recovery"), reporting each finding as an event, then starts the
 * scheduler and the copy workers.  Call after daemonizing.  Blocks for
 * the recovery (qemu-img calls, one per unfinished item).  A failure is
 * logged where it happens.
 * Return: 0; the libvirt URI of the configuration does not answer: -EAGAIN
 * nothing listens at its socket, else libvirt's error as an errno (-EIO,
 * -EACCES...: vm.c's table); the -errno of a recovery that failed;
 * -ENOMEM no thread.
 */
int snap_engine_start(struct snap_engine *eng);

/**
 * snap_engine_close() - stop the workers and close the catalog
 *
 * Callers blocked in snap_snapshot_wait() return -ENOTCONN first (close
 * waits until they have left).  Running copies are interrupted and stay
 * queued in the catalog; the next start resumes them.  NULL is a no-op.
 */
void snap_engine_close(struct snap_engine *eng);

/**
 * snap_versions() - one line naming snapfs, sqlite and qemu-img versions
 *
 * Runs `qemu-img --version`.  On success *@out owns the line (g_free).
 */
int snap_versions(char **out);

/**
 * snap_log() - log a line (syslog @level) to SOURCE/snapfs.log, and to
 * stderr in the foreground (errors in the background too).  Messages
 * read `module: what failed 'subject': reason`.  Thread-safe.
 */
void snap_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void snap_vlog(int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/** snap_name_valid() - 0 when @name is a valid object name, else -EINVAL. */
int snap_name_valid(const char *name);

/* ---- clock ------------------------------------------------------------ */

/** snap_clock_now() - the engine's current time, seconds since the epoch. */
int64_t snap_clock_now(struct snap_engine *eng);

/**
 * snap_clock_set() - move a test clock to @t and run what became due
 *
 * Return: 0; -EPERM when the engine was not opened with @test_clock;
 * -EINVAL when @t is before the current time.
 */
int snap_clock_set(struct snap_engine *eng, int64_t t);

/* ---- volumes ---------------------------------------------------------- */

/**
 * struct snap_volume_stat - what the tree needs to stat a volume
 * @id:         catalog id, stable for the life of the volume (inode numbers)
 * @uid, @gid:  owning account
 * @mtime:      last change of the volume file (0 when gone from primary)
 * @on_primary: the volume's file exists on primary storage
 */
struct snap_volume_stat {
	uint64_t id;
	uid_t uid;
	gid_t gid;
	time_t mtime;
	bool on_primary;
};

/**
 * snap_volume_list() - names of all volumes, sorted
 *
 * A volume is a regular file NAME.qcow2 in primary storage with a valid
 * NAME (new files are picked up here, without a remount), or a volume whose
 * file is gone but whose snapshots remain.
 * Return: the count; *@names_out owns a NULL-terminated vector.
 */
int snap_volume_list(struct snap_engine *eng, char ***names_out);

/** snap_volume_stat() - Return: 0; -ENOENT no such volume; -EINVAL bad name. */
int snap_volume_stat(struct snap_engine *eng, const char *vol,
		     struct snap_volume_stat *out);

/**
 * snap_volume_chown() - give volume @vol (its file, snapshots, backups,
 * jobs, events) to @uid and @gid; (uid_t)-1 / (gid_t)-1 keep that part.
 * The kernel has checked the caller may.  Return: 0; -ENOENT.
 */
int snap_volume_chown(struct snap_engine *eng, const char *vol, uid_t uid,
		      gid_t gid);

/** snap_limits_read() - the text of MOUNT/limits (g_free). */
int snap_limits_read(struct snap_engine *eng, char **text_out);

/**
 * snap_limits_write() - lines "<user> <n>" or "<user> default", all or
 * none; "#" starts a comment, and a "global <n>" line is accepted when <n>
 * is max_snapshots (so the text read can be written back).
 * Return: 0; -EINVAL (no such user, a limit over max_snapshots, a global
 * line that would change it, one account on two lines, a malformed line;
 * with an event).
 */
int snap_limits_write(struct snap_engine *eng, const char *buf, size_t len);

/**
 * snap_volume_info() - the JSON of volumes/<vol>/info
 *
 * Fields: name, uuid, virtual_size, allocated, format, vm, owner,
 * on_primary.
 * Return: 0, *@json_out owns the text (ends with a newline); -ENOENT.
 */
int snap_volume_info(struct snap_engine *eng, const char *vol,
		     char **json_out);

/**
 * snap_volume_control() - run one command written to volumes/<vol>/control
 *
 * @cmd is the bytes of one write(2), @len long, not NUL-terminated; one
 * trailing newline is allowed.  Commands:
 *
 *   retry <snap>           queue the backup of a BackupFailed snapshot now
 *   clone <snap> <newvol>  queue a full copy as the new volume <newvol>;
 *                          returns once queued (jobs/), not copied
 *   revert <snap>          put the volume back to the snapshot; returns
 *                          when done: at once from primary storage, after
 *                          a full copy (qemu-img convert) from a backup
 *
 * Every refusal leaves an event; the result is kept for
 * snap_volume_control_text().
 * Return: 0; -ENOENT no such volume, or no such snapshot (or it is being
 * deleted), or (revert) the volume file is gone from primary; -EINVAL
 * unknown or malformed command, a bad <newvol>, or (retry) the snapshot
 * is not BackupFailed; -EBUSY (retry) its backup is queued or running,
 * (revert) a VM or another process writes the volume; -EEXIST (clone)
 * <newvol> exists, is being made, or is @vol; -EIO the snapshot's data is
 * not where the command needs it (on neither storage; for retry, gone
 * from primary), or (revert) the copy from the backup failed; -ENOSPC
 * (revert) no room on primary for that copy.  The volume is unchanged
 * when a revert fails.
 */
int snap_volume_control(struct snap_engine *eng, const char *vol,
			const char *cmd, size_t len);

/**
 * snap_volume_control_text() - what reading volumes/<vol>/control shows:
 * the commands it takes and the result of the last one.
 */
int snap_volume_control_text(struct snap_engine *eng, const char *vol,
			     char **text_out);

/**
 * snap_control() - run one command written to MOUNT/control (issue 14)
 *
 *   restore <host>/<vol>/<snap> <newvol>   queue a full copy of that
 *       backup (another host's on the same SECONDARY, or this host's) as
 *       the new local volume <newvol>; returns once queued (jobs/)
 *
 * As snap_volume_control(): one write(2), every refusal an event, the
 * result kept for snap_control_text().
 * Return: 0; -EINVAL malformed; -ENOENT no such backup; -EEXIST <newvol>
 * exists or is being made; -EOPNOTSUPP a repository backup with
 * repository=off; -errno.
 */
int snap_control(struct snap_engine *eng, const char *cmd, size_t len);

/** snap_control_text() - what reading MOUNT/control shows. */
int snap_control_text(struct snap_engine *eng, char **text_out);

/* ---- snapshots -------------------------------------------------------- */

enum snap_state {
	SNAP_STATE_CREATING,	 /* internal: not yet visible */
	SNAP_STATE_BACKING_UP,
	SNAP_STATE_BACKED_UP,
	SNAP_STATE_BACKUP_FAILED,
	SNAP_STATE_DESTROYING,
	SNAP_STATE_DAMAGED, /* a repository backup naming a bad or missing
			     * chunk (verify; docs/repository.md) */
	SNAP_STATE_LAST
};

/** snap_state_name() - the one word of a snapshot's `state` file. */
const char *snap_state_name(enum snap_state state);

/**
 * struct snap_snapshot_stat - what the tree needs to stat a snapshot
 * @id:           catalog id, never reused (inode numbers of backed-up files)
 * @state:        never SNAP_STATE_CREATING (those are not visible)
 * @created_at:   seconds since the epoch
 * @on_primary:   its data is still on primary storage
 * @on_secondary: its backup is complete on secondary storage
 */
struct snap_snapshot_stat {
	uint64_t id;
	enum snap_state state;
	time_t created_at;
	bool on_primary;
	bool on_secondary;
	uid_t uid; /* the volume's owner */
	gid_t gid;
};

/** snap_snapshot_list() - visible snapshots of @vol by name. Return: count. */
int snap_snapshot_list(struct snap_engine *eng, const char *vol,
		       char ***names_out);

struct snap_dirent {
	char name[SNAP_NAME_MAX + 1];
	uint64_t id;
	time_t created_at;
};

/** snap_snapshot_dirents() - the visible snapshots of @vol by name, with
 * ids and times, in one catalog query (for big listings).  Return: the
 * count, *@out owns the array (g_free). */
int snap_snapshot_dirents(struct snap_engine *eng, const char *vol,
			  struct snap_dirent **out);

/** snap_snapshot_stat() - Return: 0; -ENOENT no such volume or snapshot. */
int snap_snapshot_stat(struct snap_engine *eng, const char *vol,
		       const char *snap, struct snap_snapshot_stat *out);

/**
 * snap_snapshot_take() - take a snapshot of @vol on primary storage
 *
 * Returns once the snapshot exists on primary storage; its backup to
 * secondary storage is queued, never waited for.  Its cost does not depend
 * on the size of the volume.
 * Return: 0; -EEXIST name taken; -EINVAL bad name; -ENOENT no volume;
 * -ENOSPC primary storage too full; -EDQUOT the owner's snapshot limit;
 * -EBUSY a process that is not a running VM writes the volume; -EAGAIN
 * something writes it and libvirt, which would say whether it is a VM,
 * cannot be reached; -EIO qemu-img failed (logged).
 */
int snap_snapshot_take(struct snap_engine *eng, const char *vol,
		       const char *name);

/**
 * snap_snapshot_delete() - delete a snapshot everywhere
 *
 * A running copy of it is cancelled and cleaned up first.  Blocks until
 * the snapshot is gone from the catalog and secondary storage; its layer on
 * primary storage is merged in the background.
 * Return: 0; -ENOENT; -EBUSY a clone or revert reads it.
 */
int snap_snapshot_delete(struct snap_engine *eng, const char *vol,
			 const char *name);

/**
 * snap_snapshot_rename() - rename a snapshot within its volume
 *
 * Return: 0; -ENOENT; -EEXIST @to is taken; -EINVAL bad name.
 */
int snap_snapshot_rename(struct snap_engine *eng, const char *vol,
			 const char *from, const char *to);

/** snap_snapshot_info() - the JSON of snapshots/<snap>/info. */
int snap_snapshot_info(struct snap_engine *eng, const char *vol,
		       const char *snap, char **json_out);

/* At most this many callers sleep in snap_snapshot_wait() at once. */
#define SNAP_WAITERS_MAX 8

/**
 * snap_engine_set_wait_slots() - how many callers may sleep in
 * snap_snapshot_wait() at once: SNAP_WAITERS_MAX by default and at most,
 * fewer for a front end with few request threads (each sleeper holds
 * one), 0 for one that has a single thread (every wait that would sleep
 * gets -EBUSY).  Set before snap_engine_start().
 */
void snap_engine_set_wait_slots(struct snap_engine *eng, unsigned slots);

/**
 * snap_snapshot_wait() - block until snapshot @id is BackedUp or BackupFailed
 * @id:        the snapshot's id (snap_snapshot_stat()); a rename while
 *             waiting changes nothing
 * @stop:      may be NULL; else asked before each sleep and at least every
 *             200 ms while asleep: 0 keeps waiting, a -errno ends the wait
 *             with it (the front end's reader was interrupted, its session
 *             ends)
 * @state_out: on success, SNAP_STATE_BACKED_UP or SNAP_STATE_BACKUP_FAILED
 *
 * Returns at once when the snapshot is already in one of those states.
 * Woken when a backup ends or fails and when a snapshot is deleted; holds
 * no engine lock while it sleeps.  A BackupFailed snapshot may be backed
 * up again later (automatic retries, `retry`): this reports the state it
 * saw.  Thread-safe.
 * Return: 0; -ENOENT no such snapshot, or deleted while waited for;
 * -EBUSY every wait slot is taken (snap_engine_set_wait_slots(); with
 * an event);
 * -ENOTCONN the engine is closing (snap_engine_close() wakes every
 * waiter this way and waits until they have left); @stop's -errno.
 */
int snap_snapshot_wait(struct snap_engine *eng, uint64_t id,
		       int (*stop)(void *arg), void *arg,
		       enum snap_state *state_out);

/* ---- backed-up/ ------------------------------------------------------- */
/*
 * The functions of backed-up/ take a @host: NULL for this host's backups
 * (the catalog's: backed-up/volumes/), or the name of another host whose
 * backups are on the same SECONDARY (backed-up/hosts/<host>/volumes/: read
 * from their manifests, manifests.h; issue 14).  Another host's backups
 * are served read-only, as this host's are; their files are owned by root.
 */

/** snap_backup_hosts() - the other hosts with a backup on SECONDARY. */
int snap_backup_hosts(struct snap_engine *eng, char ***names_out);

/** snap_backup_volumes() - volumes with at least one complete backup. */
int snap_backup_volumes(struct snap_engine *eng, const char *host,
			char ***names_out);

/** snap_backup_list() - snapshots of @vol whose backup is complete. */
int snap_backup_list(struct snap_engine *eng, const char *host,
		     const char *vol, char ***names_out);

/**
 * snap_backup_paths() - where the backup of @vol/@snap lives
 *
 * On success *@image_out and *@manifest_out (either may be NULL) own the
 * absolute paths of the image and its manifest on secondary storage (a
 * repository backup has no image file: its image is served by
 * snap_backup_open(); use that for images), and
 * *@id_out (may be NULL) is the snapshot's id.  The files never change
 * once the snapshot is BackedUp, except that a rename rewrites the manifest.
 * Return: 0; -ENOENT not backed up (yet).
 */
int snap_backup_paths(struct snap_engine *eng, const char *host,
		      const char *vol, const char *snap, uint64_t *id_out,
		      char **image_out, char **manifest_out);

/*
 * struct snap_backup_image - what backed-up/volumes/<vol>/<snap>.qcow2
 * looks like: @id the snapshot's (the inode), @size and @blocks (512-byte
 * units) of the file, @mtime; @synthesized: a repository backup, whose
 * qcow2 is computed from its index (size = allocated data plus metadata,
 * mtime = when it was backed up), else a file on secondary storage.
 * Stable across remounts either way.
 */
struct snap_backup_image {
	uint64_t id;
	uint64_t size;
	uint64_t blocks;
	struct timespec mtime;
	bool synthesized;
};

/**
 * snap_backup_image_stat() - stat of the qcow2 image of backup @vol/@snap.
 * Reads the index of a repository backup (blocks on secondary storage).
 * Return: 0; -ENOENT not backed up, or a repository backup on a mount
 * with repository=off; -EIO its index is damaged (logged).
 */
int snap_backup_image_stat(struct snap_engine *eng, const char *host,
			   const char *vol, const char *snap,
			   struct snap_backup_image *out);

struct snap_backup_view;

/**
 * snap_backup_open() - open the qcow2 image of backup @vol/@snap
 *
 * A file on secondary storage: *@fd_out owns a read-only descriptor of it
 * (close(2)), *@view_out is NULL.  A repository backup: *@view_out owns a
 * view (read it with snap_backup_read(), free it with
 * snap_backup_release()), *@fd_out is -1.  The bytes never change.
 * Return: 0; -ENOENT as for snap_backup_image_stat(); -EIO; -ENOMEM.
 */
int snap_backup_open(struct snap_engine *eng, const char *host,
		     const char *vol, const char *snap, int *fd_out,
		     struct snap_backup_view **view_out);

/**
 * snap_backup_read() - read @len bytes at @off of the view into @buf
 *
 * Thread-safe on one view.  Blocks on secondary storage (whole chunks are
 * read and checked; the last one is cached in the view).
 * Return: the bytes read (less than @len only at the end of the file);
 * -EIO a chunk is damaged or missing (logged with its path).
 */
ssize_t snap_backup_read(struct snap_backup_view *v, void *buf, size_t len,
			 uint64_t off);

/** snap_backup_release() - free @v; NULL is a no-op. */
void snap_backup_release(struct snap_backup_view *v);

/**
 * snap_backup_dir_mtime() - when the backups of @vol last changed
 *
 * @vol NULL: of any volume.  The modification time of their directory on
 * secondary storage: it moves when a backup appears there, is renamed or
 * deleted, and not across remounts, so that backed-up/ directories look
 * unchanged to backup tools (restic stores directory times).  Fills
 * *@mtime_out.  Return: 0; -ENOENT no such directory (no backup yet).
 */
int snap_backup_dir_mtime(struct snap_engine *eng, const char *vol,
			  struct timespec *mtime_out);

/* ---- images/: raw point-in-time views (engine/images.c) ---------------- */

/*
 * images/volumes/<vol>/<snap>.raw: the volume as it was at snapshot time,
 * as a raw disk image of its virtual size, read from a repository backup
 * (its index, then its chunks).  Only repository backups are served
 * (-o repository=on); a backup kept as a full qcow2 file is not: read
 * backed-up/volumes/<vol>/<snap>.qcow2 for that one.
 */

/** snap_raw_available() - whether this mount serves images/ (a
 * repository: -o repository=on). */
bool snap_raw_available(struct snap_engine *eng);

/** snap_raw_volumes() - volumes with at least one raw view
 * (snap_raw_list() not empty).  *@names_out owns a NULL-terminated vector
 * (g_strfreev).  Return: 0; -errno of the catalog. */
int snap_raw_volumes(struct snap_engine *eng, char ***names_out);

/** snap_raw_list() - the snapshots of @vol with a raw view: BackedUp, and
 * backed up into the repository.  Return: the count (*@names_out owns
 * them); -ENOENT no such volume, or no repository on this mount. */
int snap_raw_list(struct snap_engine *eng, const char *vol, char ***names_out);

/*
 * struct snap_raw_image - what images/volumes/<vol>/<snap>.raw looks like:
 * @id the snapshot's (the inode), @size its virtual size, @blocks the
 * 512-byte units of its data (the chunks that are not holes), @mtime when
 * it was backed up.  Stable across remounts.
 */
struct snap_raw_image {
	uint64_t id;
	uint64_t size;
	uint64_t blocks;
	struct timespec mtime;
};

/**
 * snap_raw_stat() - stat of the raw view of @vol/@snap; reads its index
 * (blocks on secondary storage).
 * Return: 0; -ENOENT not a BackedUp repository backup (or no repository
 * on this mount); -EIO its index is damaged or missing (logged, and a
 * "repository.damaged" event).
 */
int snap_raw_stat(struct snap_engine *eng, const char *vol, const char *snap,
		  struct snap_raw_image *out);

struct snap_raw_view;

/**
 * snap_raw_open() - open the raw view of @vol/@snap: its index is read
 * once; *@view_out owns the view (snap_raw_release()).  The bytes never
 * change.  Return: 0; the errors of snap_raw_stat(); -ENOMEM.
 */
int snap_raw_open(struct snap_engine *eng, const char *vol, const char *snap,
		  struct snap_raw_view **view_out);

/**
 * snap_raw_read() - read @len bytes at @off of the view into @buf
 *
 * Holes read as zeros without touching secondary storage; a data chunk is
 * read whole and checked, and kept in a small cache of the view (a few
 * chunks) so that the kernel's sequential requests read it once.
 * Thread-safe on one view.  Blocks on secondary storage.
 * Return: the bytes read (less than @len only at the end); -EIO a chunk
 * is damaged or missing (logged with its path; the first time for a view,
 * a "repository.damaged" event too).
 */
ssize_t snap_raw_read(struct snap_raw_view *v, void *buf, size_t len,
		      uint64_t off);

/**
 * snap_raw_seek() - lseek(2)'s SEEK_DATA (@data true) or SEEK_HOLE from
 * @off, answered from the index: a chunk that is a hole is a hole, any
 * other chunk is data (the end of the view is a hole).  Never blocks.
 * Return: the offset; -ENXIO @off at or past the end (SEEK_DATA: no data
 * after @off); -EINVAL @off < 0.
 */
int64_t snap_raw_seek(struct snap_raw_view *v, int64_t off, bool data);

/** snap_raw_size() - the view's size (the virtual size). */
uint64_t snap_raw_size(const struct snap_raw_view *v);

/** snap_raw_release() - free @v; NULL is a no-op. */
void snap_raw_release(struct snap_raw_view *v);

/* ---- events, alerts, jobs ---------------------------------------------- */

/** snap_events_read() - events as JSON Lines, oldest first: all of them
 * for root (@caller 0), else those about @caller's volumes and VMs. */
int snap_events_read(struct snap_engine *eng, uid_t caller, char **text_out,
		     size_t *len);

/**
 * snap_event_reject() - record an operation the front end refused itself
 *
 * @op names the operation ("mkdir", "write"...), @path the object it was
 * aimed at, @err the positive errno returned, @reason the why.
 */
void snap_event_reject(struct snap_engine *eng, const char *op,
		       const char *path, int err, const char *reason);

/** snap_alert_list() - ids of unresolved alerts. Return: count. */
int snap_alert_list(struct snap_engine *eng, uint64_t **ids_out);

/** snap_alert_read() - the JSON of alerts/<id>. Return: 0; -ENOENT. */
int snap_alert_read(struct snap_engine *eng, uint64_t id, char **json_out);

/** snap_alert_owner() - the account an alert is about (its file's owner). */
int snap_alert_owner(struct snap_engine *eng, uint64_t id, uid_t *uid);

/** snap_alert_ack() - acknowledge (remove) an alert. Return: 0; -ENOENT. */
int snap_alert_ack(struct snap_engine *eng, uint64_t id);

/** snap_job_list() - ids of queued and running jobs. Return: count. */
int snap_job_list(struct snap_engine *eng, uint64_t **ids_out);

/**
 * snap_job_read() - the JSON of jobs/<id>: id, kind (backup, merge, clone,
 * revert), target, new_volume (clone), state (queued, running, waiting),
 * bytes_done, bytes_total, attempts, next_attempt (waiting).
 * Return: 0; -ENOENT job ended.
 */
int snap_job_read(struct snap_engine *eng, uint64_t id, char **json_out);

/** snap_job_owner() - the account a job works for (its file's owner). */
int snap_job_owner(struct snap_engine *eng, uint64_t id, uid_t *uid);

/* ---- policies/<name> ------------------------------------------------- */

struct snap_policy_stat {
	uint64_t id; /* 0 for a draft */
	uid_t uid;   /* who wrote (or created) it */
	gid_t gid;
	bool draft;  /* created, not written yet */
};

/** snap_policy_list() - names of the policies and drafts. Return: count. */
int snap_policy_list(struct snap_engine *eng, char ***names_out);
/** snap_policy_stat() - Return: 0; -ENOENT. */
int snap_policy_stat(struct snap_engine *eng, const char *name,
		     struct snap_policy_stat *out);
/**
 * snap_policy_create() - an empty policies/<name> (a draft) owned by
 * @uid/@gid, until a write stores a policy in it or it is removed; drafts
 * live in memory only.  Return: 0; -EINVAL bad name (with an event);
 * -EEXIST; -ENOSPC too many drafts (with an event).
 */
int snap_policy_create(struct snap_engine *eng, const char *name, uid_t uid,
		       gid_t gid);
/**
 * snap_policy_write() - store (or replace) the policy @name from one
 * write(2) by @caller.  Return: 0; -EINVAL malformed, or keep above
 * max_snapshots; -ENOENT no such target; -EACCES the target belongs to
 * another account; -EEXIST another policy has that target and interval.
 * Each refusal leaves an event saying why; nothing changes.
 */
int snap_policy_write(struct snap_engine *eng, const char *name, uid_t caller,
		      gid_t caller_gid, const char *buf, size_t len);
/** snap_policy_read() - normalized policy, last run and next run. */
int snap_policy_read(struct snap_engine *eng, const char *name, char **text_out);
/** snap_policy_delete() - remove it; its snapshots stay. */
int snap_policy_delete(struct snap_engine *eng, const char *name);

/* ---- VMs ------------------------------------------------------------- */

/** snap_vm_list() - names of the VMs (libvirt domains with valid names). */
int snap_vm_list(struct snap_engine *eng, char ***names_out);

/**
 * struct snap_vm_stat - what the tree needs to stat a VM
 * @id: catalog id of the VM, stable (inode numbers)
 */
struct snap_vm_stat {
	uint64_t id;
	bool running;
	uid_t uid; /* the owning account */
	gid_t gid;
};

/** snap_vm_stat() - Return: 0; -ENOENT no such VM. */
int snap_vm_stat(struct snap_engine *eng, const char *vm,
		 struct snap_vm_stat *out);

/**
 * snap_vm_chown() - give VM @vm (its snapshots, jobs, events) to @uid and
 * @gid; (uid_t)-1 / (gid_t)-1 keep that part.  The kernel has checked the
 * caller may (root, or the owner changing the group to one of its own).
 */
int snap_vm_chown(struct snap_engine *eng, const char *vm, uid_t uid, gid_t gid);

/** snap_vm_info() - JSON of vms/<vm>/info: name, uuid, type, state,
 * volumes, current_snapshot, snapshots_enabled, memory_kib, vcpus. */
int snap_vm_info(struct snap_engine *eng, const char *vm, char **json_out);

/** snap_vm_state() - the one word of vms/<vm>/state (g_free). */
int snap_vm_state(struct snap_engine *eng, const char *vm, char **word_out);

/**
 * snap_vm_control() - one command written to vms/<vm>/control: start,
 * stop, force-stop, revert <snap>.  Commands on one VM run one at a time;
 * each blocks for its libvirt calls (a stop up to the configuration's
 * stop_timeout seconds).
 * Return: 0; -EINVAL malformed command (engine/control.h
 * vm_control_parse(); the event says why), or (revert) the VM's disks,
 * memory size or vCPUs changed since the snapshot; -ENOENT no such VM or
 * VM snapshot; -EBUSY start of a running VM, revert to a snapshot that is
 * not Ready; -ETIMEDOUT stop not obeyed by the guest; -EAGAIN libvirt
 * cannot be reached (nothing was done); -EIO libvirt refused (logged).
 */
int snap_vm_control(struct snap_engine *eng, const char *vm, const char *cmd,
		    size_t len);
int snap_vm_control_text(struct snap_engine *eng, const char *vm,
			 char **text_out);

/** snap_vm_options_read() - "memory=no quiesce=no\n" and the like. */
int snap_vm_options_read(struct snap_engine *eng, const char *vm,
			 char **text_out);
/** snap_vm_options_write() - set them; an option not written keeps its
 * value.  Return: 0; -EINVAL malformed; -ENOENT no such VM. */
int snap_vm_options_write(struct snap_engine *eng, const char *vm,
			  const char *buf, size_t len);

/** snap_vm_volumes() - names of the VM's disks that are volumes. */
int snap_vm_volumes(struct snap_engine *eng, const char *vm, char ***names_out);

/** snap_vm_snapshot_list() - names of the VM's snapshots. */
int snap_vm_snapshot_list(struct snap_engine *eng, const char *vm,
			  char ***names_out);

struct snap_vm_snapshot_stat {
	uint64_t id;
	time_t created_at;
	char parent[SNAP_NAME_MAX + 1]; /* "" for a root */
	bool current;
};

int snap_vm_snapshot_stat(struct snap_engine *eng, const char *vm,
			  const char *snap, struct snap_vm_snapshot_stat *out);

/** snap_vm_current() - name of the current snapshot; -ENOENT none. */
int snap_vm_current(struct snap_engine *eng, const char *vm, char **name_out);

/**
 * snap_vm_snapshot_take() - all of the VM's disks at one instant, plus its
 * memory when snapshot-options say memory=yes (the VM must run).
 * Blocks for its libvirt calls (with memory: the save and the restore).
 * Return: 0; -EEXIST; -EINVAL bad name; -ENOENT no VM; -EOPNOTSUPP VM
 * snapshots off for its type, memory of a stopped VM, a disk that is not a
 * volume, or quiesce without a guest agent; -ETIMEDOUT agent silent;
 * -EDQUOT the owner's snapshot limit; -EAGAIN libvirt cannot be reached;
 * -EIO libvirt could not restore the VM after saving its memory (the
 * snapshot is rolled back and the VM brought back).
 */
int snap_vm_snapshot_take(struct snap_engine *eng, const char *vm,
			  const char *name);

/** snap_vm_snapshot_delete() - its children stay valid. */
int snap_vm_snapshot_delete(struct snap_engine *eng, const char *vm,
			    const char *name);

/** snap_vm_snapshot_info() - JSON: name, type, parent, children, current,
 * state, created_at, volumes. */
int snap_vm_snapshot_info(struct snap_engine *eng, const char *vm,
			  const char *snap, char **json_out);

/** snap_statfs_primary() - total and free bytes of primary storage. */
int snap_statfs_primary(struct snap_engine *eng, uint64_t *total,
			uint64_t *avail);

#endif /* SNAP_H */
