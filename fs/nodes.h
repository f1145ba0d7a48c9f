/*
 * nodes.h - what each node kind does: the handlers of nodes.def's OPS()
 * and the helpers they share.
 *
 * DESIGN: ops.c receives a FUSE request, parses its path and does the
 * part every operation shares (refusing writes where the tree is
 * read-only, recording the rejection); then it calls the handler of the
 * node's kind from node_ops[].  A handler calls one or a few snap_*
 * functions and answers with a stat, bytes or an errno; it runs in one of
 * libfuse's worker threads and holds no lock of its own (the engine is
 * thread-safe).  The handlers live by subtree: node_top.c (the root's
 * files, alerts/, jobs/, policies/, wait/), node_volume.c (volumes/),
 * node_backed_up.c (backed-up/), node_images.c (images/), node_vm.c
 * (vms/).
 */
#ifndef SNAPFS_NODES_H
#define SNAPFS_NODES_H

#include <sys/stat.h>

#include "ops.h"
#include "path.h"

/* Inode numbers: id * 64 + kind, stable across mounts (catalog ids). */
#define INO(id, kind) ((ino_t)(id) * 64 + (ino_t)(kind))

/**
 * struct open_file - an open regular file (fuse_file_info's fh)
 * @node:    what the path named at open
 * @fd:      a backed-up file's descriptor, else -1
 * @view:    a synthesized backed-up image (a repository backup), or NULL
 * @raw:     an images/ raw view, or NULL
 * @data:    the content rendered at open (or a wait file's answer)
 * @len:     its length
 * @snap_id: a wait file's snapshot
 * @waits:   a wait file: the first read waits for its answer
 */
struct open_file {
	struct node node;
	int fd;
	struct snap_backup_view *view;
	struct snap_raw_view *raw;
	char *data;
	size_t len;
	uint64_t snap_id;
	bool waits;
};

/* The entries of one readdir call, passed to the list handlers. */
struct lister {
	void *buf;
	fuse_fill_dir_t filler;
	off_t off;		    /* list_from: the first entry wanted */
	struct fuse_file_info *fi; /* list_from: the open directory */
	ino_t self;		    /* the directory's own inode */
};

/**
 * struct node_ops - the handlers of one node kind (nodes.def's OPS())
 *
 * Each returns 0 (or what its comment says) or -errno and logs nothing
 * itself unless it says so; a NULL handler means ops.c refuses the
 * operation there (EPERM, EACCES, EISDIR... as the operation says).
 * @n is borrowed; @n->kind is the handler's kind.
 *
 * @stat:      fill @st (zeroed, times set to the mount's) for @n; every
 *             kind has one; -ENOENT when the engine knows no such object
 * @list:      a directory's entries after "." and ".."; with lister_add()
 * @list_from: instead of @list: the whole listing from @l->off, with
 *             offsets (".", ".." included), for big directories; opendir
 *             gives it a struct dir_copy in @l->fi->fh
 * @read:      render a file's content at open; on success *@data owns
 *             it (g_free) and *@len is its length
 * @open:      instead of @read: set up @of and @fi by itself
 * @write:     a write of @size bytes at any offset; 0 or -errno (ops.c
 *             answers @size); files with @write are mode 0644
 * @link:      a link's target; on success *@target owns it (g_free)
 * @mkdir:     make @n, which is called @name (the path's last component)
 * @rmdir, @unlink: remove @n
 * @rename:    rename @from to @to (of the same kind), called @name; @path
 *             is @from's, for node_refuse()
 * @create:    create the file @n, called @name, for the caller (fuse
 *             context); ops.c opens it then
 * @chown:     give @n to @uid:@gid (the kernel checked the caller may)
 */
struct node_ops {
	int (*stat)(const struct node *n, struct stat *st);
	int (*list)(const struct node *n, struct lister *l);
	int (*list_from)(const struct node *n, struct lister *l);
	int (*read)(const struct node *n, char **data, size_t *len);
	int (*open)(const struct node *n, struct open_file *of,
		    struct fuse_file_info *fi);
	int (*write)(const struct node *n, const char *buf, size_t size);
	int (*link)(const struct node *n, char **target);
	int (*mkdir)(const struct node *n, const char *name);
	int (*rmdir)(const struct node *n);
	int (*unlink)(const struct node *n);
	int (*rename)(const char *path, const struct node *from,
		      const struct node *to, const char *name);
	int (*create)(const struct node *n, const char *name);
	int (*chown)(const struct node *n, uid_t uid, gid_t gid);
};

/* The handlers of each kind, indexed by kind (nodes.c). */
extern const struct node_ops node_ops[NODE_LAST];

/* ---- helpers (nodes.c) ------------------------------------------------ */

/** node_ctx() - the mount's context; only inside a FUSE request. */
struct snapfs_ctx *node_ctx(void);

/** node_engine() - the mount's engine; only inside a FUSE request. */
struct snap_engine *node_engine(void);

/**
 * node_refuse() - record that @op on @path was refused with @err (an
 * event, see snap_event_reject()), because @why.  Return: -@err.
 */
int node_refuse(const char *op, const char *path, int err, const char *why);

/** node_stat() - the stat of @n: its kind's @stat on a zeroed @st. */
int node_stat(const struct node *n, struct stat *st);

/**
 * node_text_len() - end a @read handler that asked the engine for text:
 * @rc is the engine's return; on success *@len becomes *@data's length.
 * Return: 0 or @rc.
 */
int node_text_len(int rc, char **data, size_t *len);

/** node_writable() - whether files of @kind take writes. */
bool node_writable(enum node_kind kind);

/*
 * Fill @st as a directory (0755), a regular file (0644 when writable,
 * else 0444, size 0) or a link of @n's kind, with the inode of @id.
 */
void fill_node(struct stat *st, const struct node *n, uint64_t id);
void fill_dir(struct stat *st, ino_t ino);
void fill_file(struct stat *st, ino_t ino, mode_t mode, off_t size);
void fill_times(struct stat *st, time_t t);

/*
 * Accounts: the kernel checks permissions (default_permissions) against
 * what we report.  An object's directories are 0770 to its owner and
 * group, its read-only files 0440, its writable files 0660; root is the
 * administrator.  own() gives @st to @uid:@gid so.
 */
void own(struct stat *st, uid_t uid, gid_t gid);

/**
 * stat_copies_dir() - a volume's directory of backup copies
 * (backed-up/volumes/<vol>, images/volumes/<vol>), from @listed, what
 * listing them returned: there while it holds one, even once the volume
 * is gone (then root's, inode 0); the volume's owner's, 0750, while it
 * exists.  Return: 0; -ENOENT @listed is 0; @listed when negative.
 */
int stat_copies_dir(const struct node *n, struct stat *st, int listed);

/** lister_add() - add entry @name with inode @ino (a directory or not). */
void lister_add(struct lister *l, const char *name, ino_t ino, bool dir);

/** lister_add_names() - add each of @names, children of @parent of @kind,
 * that stats (with its inode). */
void lister_add_names(struct lister *l, const struct node *parent,
		      char **names, enum node_kind kind);

/* ---- handlers, by file ---------------------------------------------- */

/* nodes.c: shared by several kinds */
int stat_plain(const struct node *n, struct stat *st);
int list_fixed(const struct node *n, struct lister *l);

/* node_top.c: the root and its files, alerts/, jobs/, policies/, wait/ */
int list_root(const struct node *n, struct lister *l);
int stat_readme(const struct node *n, struct stat *st);
int read_readme(const struct node *n, char **data, size_t *len);
int stat_cachedir_tag(const struct node *n, struct stat *st);
int read_cachedir_tag(const struct node *n, char **data, size_t *len);
int read_events(const struct node *n, char **data, size_t *len);
int stat_clock(const struct node *n, struct stat *st);
int read_clock(const struct node *n, char **data, size_t *len);
int write_clock(const struct node *n, const char *buf, size_t size);
int read_control(const struct node *n, char **data, size_t *len);
int write_control(const struct node *n, const char *buf, size_t size);
int read_limits(const struct node *n, char **data, size_t *len);
int write_limits(const struct node *n, const char *buf, size_t size);
int stat_sticky_dir(const struct node *n, struct stat *st);
int list_alerts(const struct node *n, struct lister *l);
int stat_alert(const struct node *n, struct stat *st);
int read_alert(const struct node *n, char **data, size_t *len);
int unlink_alert(const struct node *n);
int list_jobs(const struct node *n, struct lister *l);
int stat_job(const struct node *n, struct stat *st);
int read_job(const struct node *n, char **data, size_t *len);
int list_policies(const struct node *n, struct lister *l);
int stat_policy(const struct node *n, struct stat *st);
int read_policy(const struct node *n, char **data, size_t *len);
int write_policy(const struct node *n, const char *buf, size_t size);
int unlink_policy(const struct node *n);
int create_policy(const struct node *n, const char *name);
int stat_wait_volume(const struct node *n, struct stat *st);
int open_wait(const struct node *n, struct open_file *of,
	      struct fuse_file_info *fi);

/**
 * wait_answer() - the answer of wait file @of: "BackedUp\n" or
 * "BackupFailed\n", waited for by the first read (later reads, `cat`'s
 * read at EOF, get it at once).  Two reads of one open file may wait side
 * by side; the first answer stays.  Blocks until the backup ends, the
 * reader is interrupted or the session ends.
 * Return: the answer (owned by @of); NULL and *@rc = -errno (-EINTR,
 * -ENOTCONN, the engine's).
 */
const char *wait_answer(struct open_file *of, int *rc);

/* node_volume.c: volumes/ */
int list_volumes(const struct node *n, struct lister *l);
int stat_of_volume(const struct node *n, struct stat *st);
int chown_volume(const struct node *n, uid_t uid, gid_t gid);
int read_volume_info(const struct node *n, char **data, size_t *len);
int read_volume_control(const struct node *n, char **data, size_t *len);
int write_volume_control(const struct node *n, const char *buf, size_t size);
int list_snapshots(const struct node *n, struct lister *l);
int stat_of_snapshot(const struct node *n, struct stat *st);
int mkdir_snapshot(const struct node *n, const char *name);
int rmdir_snapshot(const struct node *n);
int rename_snapshot(const char *path, const struct node *from,
		    const struct node *to, const char *name);
int read_snapshot_state(const struct node *n, char **data, size_t *len);
int read_snapshot_info(const struct node *n, char **data, size_t *len);

/**
 * struct dir_copy - an open snapshots/ directory (fuse_file_info's fh):
 * its entries copied at offset 0, served with offsets (list_snapshots).
 */
struct dir_copy {
	struct snap_dirent *ents;
	int n;
	struct snap_volume_stat vs;
	ino_t self;
};

/** dir_copy_free() - free @dc; NULL is a no-op. */
void dir_copy_free(struct dir_copy *dc);

/* node_backed_up.c: backed-up/ */
int stat_backed_up_dir(const struct node *n, struct stat *st);
int list_backed_up_volumes(const struct node *n, struct lister *l);
int list_backed_up_hosts(const struct node *n, struct lister *l);
int stat_backed_up_host(const struct node *n, struct stat *st);
int stat_backed_up_volume(const struct node *n, struct stat *st);
int list_backed_up_volume(const struct node *n, struct lister *l);
int stat_backed_up_image(const struct node *n, struct stat *st);
int open_backed_up_image(const struct node *n, struct open_file *of,
			 struct fuse_file_info *fi);
int stat_backed_up_manifest(const struct node *n, struct stat *st);
int open_backed_up_manifest(const struct node *n, struct open_file *of,
			    struct fuse_file_info *fi);

/* node_images.c: images/ */
int stat_images_dir(const struct node *n, struct stat *st);
int list_images(const struct node *n, struct lister *l);
int list_images_volumes(const struct node *n, struct lister *l);
int stat_images_volume(const struct node *n, struct stat *st);
int list_images_volume(const struct node *n, struct lister *l);
int stat_image_raw(const struct node *n, struct stat *st);
int open_image_raw(const struct node *n, struct open_file *of,
		   struct fuse_file_info *fi);
int stat_images_tag(const struct node *n, struct stat *st);
int read_images_tag(const struct node *n, char **data, size_t *len);

/* node_vm.c: vms/ */
int list_vms(const struct node *n, struct lister *l);
int stat_of_vm(const struct node *n, struct stat *st);
int chown_vm(const struct node *n, uid_t uid, gid_t gid);
int read_vm_info(const struct node *n, char **data, size_t *len);
int read_vm_state(const struct node *n, char **data, size_t *len);
int read_vm_control(const struct node *n, char **data, size_t *len);
int write_vm_control(const struct node *n, const char *buf, size_t size);
int read_vm_options(const struct node *n, char **data, size_t *len);
int write_vm_options(const struct node *n, const char *buf, size_t size);
int list_vm_volumes(const struct node *n, struct lister *l);
int stat_vm_volume_link(const struct node *n, struct stat *st);
int link_vm_volume(const struct node *n, char **target);
int list_vm_snapshots(const struct node *n, struct lister *l);
int stat_vm_current(const struct node *n, struct stat *st);
int link_vm_current(const struct node *n, char **target);
int stat_of_vm_snapshot(const struct node *n, struct stat *st);
int mkdir_vm_snapshot(const struct node *n, const char *name);
int rmdir_vm_snapshot(const struct node *n);
int read_vm_snapshot_info(const struct node *n, char **data, size_t *len);
int stat_vm_snapshot_parent(const struct node *n, struct stat *st);
int link_vm_snapshot_parent(const struct node *n, char **target);

#endif
