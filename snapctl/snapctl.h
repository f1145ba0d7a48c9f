/*
 * snapctl.h - what the files of snapctl share.
 *
 * snapctl works on a running snapfs mount through the mount's own files
 * (docs/tree.md): it has no private channel to the daemon, so it can
 * do nothing a shell could not, and sees exactly what the account running
 * it may see.  Each command lives in a file of its own:
 *
 *   main.c     the command line, the mount, exit statuses
 *   mount.c    finding the mount; reading, listing and parsing its files
 *   output.c   printing JSON documents and sizes
 *   status.c   `status`: volumes, VMs, snapshots by state, jobs, alerts
 *   wait.c     `wait`: block on a snapshot's `wait` file, with progress
 *   events.c   `events [-f]`: print (and follow) MOUNT/events
 *   tree.c     `tree <vm>`: a VM's snapshot tree
 *
 * Conventions: functions return 0 (or a count) or -errno, results come
 * back through out-parameters the caller owns (g_free, g_strfreev,
 * json_object_put).  json-c objects are snapctl's data model: the files of
 * the mount are JSON and --json prints JSON, so they pass between files
 * as they are.  Single-threaded except wait.c, which says what its thread
 * does.
 */
#ifndef SNAPCTL_H
#define SNAPCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <json.h>

/*
 * Exit statuses (documented in snapctl(1) and docs/snapctl.md).  Only
 * `wait` has outcomes other than success: a failed backup and a timeout.
 */
enum snapctl_exit {
	SNAPCTL_EXIT_OK = 0,		/* done; wait: BackedUp */
	SNAPCTL_EXIT_BACKUP_FAILED = 1, /* wait: BackupFailed */
	SNAPCTL_EXIT_USAGE = 2,		/* bad command line, or no single mount */
	SNAPCTL_EXIT_TIMEOUT = 3,	/* wait: --timeout passed first */
	SNAPCTL_EXIT_NOT_FOUND = 4,	/* no such mount, snapshot or VM (or
					 * the snapshot was deleted while waited for) */
	SNAPCTL_EXIT_ERROR = 5,		/* anything else: the message says what */
	SNAPCTL_EXIT_LAST
};

/**
 * struct snapctl - one run of snapctl
 * @mount:   the mount point (absolute; no trailing '/'), or NULL until
 *           mount_find() or a command set it
 * @json:    --json: print one JSON document (events: JSON Lines)
 * @outcome: the exit status a command chose for a result that is not an
 *           error (wait: SNAPCTL_EXIT_BACKUP_FAILED); 0 otherwise
 */
struct snapctl {
	char *mount;
	bool json;
	int outcome;
};

/* ---- mount.c ---------------------------------------------------------- */

/**
 * mount_find() - set @ctl->mount from @given (-m), else $SNAPFS_MOUNT, else
 * the one snapfs mount of /proc/self/mountinfo.
 * Return: 0; -ENOENT no snapfs mount (or @given is not a directory);
 * -EINVAL several mounts and none named (a message says so).
 */
int mount_find(struct snapctl *ctl, const char *given);

/** mount_is_snapfs() - whether @path (canonical) is a snapfs mount point. */
bool mount_is_snapfs(const char *path);

/** mount_path() - @ctl->mount joined with @rel (g_free). */
char *mount_path(const struct snapctl *ctl, const char *rel);

/**
 * mount_read() - the whole content of @path (absolute, or relative to
 * the mount), read until EOF: the mount's files report size 0.
 * Return: 0 and *@text_out owns the NUL-terminated text (g_free);
 * -errno of open or read (ENOENT: gone, EACCES: another account's).
 */
int mount_read(const struct snapctl *ctl, const char *path, char **text_out);

/**
 * mount_read_json() - mount_read() parsed as one JSON object.
 * Return: 0 and *@out owns it (json_object_put); -EBADMSG not a JSON
 * object; mount_read()'s errors.
 */
int mount_read_json(const struct snapctl *ctl, const char *path,
		    struct json_object **out);

/** mount_read_word() - the first line of a one-word file (g_free). */
int mount_read_word(const struct snapctl *ctl, const char *path, char **out);

enum mount_list_kind {
	MOUNT_LIST_DIRS,    /* subdirectories (volumes, VMs, snapshots) */
	MOUNT_LIST_IDS,	    /* decimal names (jobs/, alerts/), in numeric order */
	MOUNT_LIST_LAST
};

/**
 * mount_list() - the entries of directory @path (relative to the mount)
 * that are of @kind, sorted; other entries (CACHEDIR.TAG, `current`) are
 * left out.  Return: the count and *@names_out owns a NULL-terminated
 * vector (g_strfreev); -errno of opendir.
 */
int mount_list(const struct snapctl *ctl, const char *path,
	       enum mount_list_kind kind, char ***names_out);

/* ---- output.c --------------------------------------------------------- */

/** print_json() - @doc on stdout, indented, one document, then a newline. */
void print_json(struct json_object *doc);

/** print_json_line() - @doc on stdout on one line (JSON Lines). */
void print_json_line(struct json_object *doc);

/** format_size() - "64.0 MiB" (g_free). */
char *format_size(uint64_t bytes);

/** json_get_str() - string member @key of @obj, or NULL (borrowed). */
const char *json_get_str(struct json_object *obj, const char *key);

/** json_get_int() - integer member @key of @obj, or @dflt. */
int64_t json_get_int(struct json_object *obj, const char *key, int64_t dflt);

/* ---- the commands: each parses its own arguments (argv[0] is its name)
 * and returns 0 or -errno; -EINVAL is a usage error (exit status 2). ---- */

/** cmd_status() - `status`; needs @ctl->mount. */
int cmd_status(struct snapctl *ctl, int argc, char **argv);

/**
 * cmd_wait() - `wait [-t SECS] [-q] SNAPSHOT`: block until the snapshot
 * is BackedUp (0) or BackupFailed (0, @ctl->outcome set); -ETIMEDOUT;
 * -ENOENT no such snapshot or deleted meanwhile; -ENOTCONN the mount went
 * away.  Sets @ctl->mount from SNAPSHOT when it is a path in a mount.
 */
int cmd_wait(struct snapctl *ctl, int argc, char **argv);

/** cmd_events() - `events [-f]`; with -f it returns only on an error. */
int cmd_events(struct snapctl *ctl, int argc, char **argv);

/** cmd_tree() - `tree VM`; -ENOENT no such VM. */
int cmd_tree(struct snapctl *ctl, int argc, char **argv);

#endif /* SNAPCTL_H */
