/*
 * ops.c - the FUSE operations: parse the path, call one snap_* function,
 * answer with a stat, bytes or an errno.
 *
 * DESIGN: libfuse's multi-threaded loop calls these from its worker
 * threads; they hold no lock of their own (the engine is thread-safe).
 * Files whose content changes (state, info, events, jobs, alerts, control)
 * are rendered once at open into a buffer and served with direct_io, so a
 * reader sees one consistent version and is never cut at a stale size.
 * Backed-up images and manifests are passed through from secondary storage
 * with keep_cache (they never change) and spliced when the kernel can.
 *
 * A snapshot's wait file, wait/<vol>/<snap>, is the one read that blocks:
 * the worker thread sleeps in snap_snapshot_wait() until the backup ends
 * (at most half of the loop's threads, and SNAP_WAITERS_MAX, at once; the
 * next reader gets EBUSY; none with -s: main.c), and gives up when its
 * reader is interrupted (EINTR) or the session ends (ENOTCONN), so neither
 * a killed reader nor an unmount waits for a backup.  libfuse read-locks
 * the nodes of a path for as long as an operation on it runs, so the file
 * lives outside the snapshot's directory (an rmdir or mv of the snapshot
 * would wait for the reader); wait/ and wait/<vol>/ list nothing, so
 * programs that walk the tree (find, grep -r, rsync) never open a wait file
 * by accident.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <linux/fs.h>

#include "ops.h"
#include <fuse_lowlevel.h> /* fuse_session_exited() */
#include "path.h"

/* Inode numbers: id * 64 + kind, stable across mounts (catalog ids). */
#define INO(id, kind) ((ino_t)(id) * 64 + (ino_t)(kind))

struct open_file {
	enum node_kind kind;
	int fd;	    /* backed-up files, else -1 */
	char *data; /* rendered content */
	size_t len;
	char vol[SNAP_NAME_MAX + 1];
	char vm[SNAP_NAME_MAX + 1];
	char policy[SNAP_NAME_MAX + 1];
	uint64_t snap_id; /* a wait file's snapshot */
};

static struct snapfs_ctx *ctx(void)
{
	return fuse_get_context()->private_data;
}

static struct snap_engine *engine(void)
{
	return ctx()->eng;
}

static void reject(const char *op, const char *path, int err, const char *why)
{
	snap_event_reject(engine(), op, path[0] == '/' ? path + 1 : path, err,
			  why);
}

static const char readme_text[] =
	"snapfs: the volumes of this host and their snapshots, as files.\n"
	"\n"
	"  volumes/<vol>/info                 JSON facts about the volume\n"
	"  volumes/<vol>/control              write: retry <snap> | revert <snap> |\n"
	"                                     clone <snap> <newvol> (full copy, queued)\n"
	"  volumes/<vol>/snapshots/<snap>/    mkdir takes a snapshot now; rmdir deletes\n"
	"                                     it everywhere; mv renames it\n"
	"      state                          BackingUp | BackedUp | BackupFailed | Destroying\n"
	"      info                           JSON facts about the snapshot\n"
	"  vms/<vm>/info, state                  JSON facts; running | stopped\n"
	"  vms/<vm>/control                   write: start | stop | force-stop | revert <snap>\n"
	"  vms/<vm>/snapshot-options          memory=yes|no quiesce=yes|no, for the next mkdir\n"
	"  vms/<vm>/snapshots/<snap>/         mkdir: all disks at one instant; rmdir deletes\n"
	"  vms/<vm>/snapshots/current         link to the current VM snapshot\n"
	"  wait/<vol>/<snap>                  a read blocks until that snapshot's backup\n"
	"                                     ends, then gives BackedUp | BackupFailed\n"
	"                                     (wait/ lists nothing: name the file)\n"
	"  backed-up/volumes/<vol>/<snap>.qcow2  complete backups (read-only), with\n"
	"  backed-up/volumes/<vol>/<snap>.json   their manifests\n"
	"  policies/<name>                    recurring snapshots: write\n"
	"                                     target=volume:<v>|vm:<vm> schedule=daily@02:00\n"
	"                                     keep=7 [tz=Europe/Paris]; rm removes\n"
	"  limits                             snapshots each account may store (root)\n"
	"  jobs/<id>                          queued and running copies (backup, clone,\n"
	"                                     revert), with progress\n"
	"  alerts/<id>                        failures to look at; rm acknowledges\n"
	"  events                             what happened, JSON Lines, oldest first\n"
	"  {volumes,vms,jobs,alerts,policies}/CACHEDIR.TAG\n"
	"                                     (not listed) these are live views, not\n"
	"                                     backups: backup tools skip them with\n"
	"                                     --exclude-caches; back up backed-up/\n"
	"\n"
	"Example:\n"
	"  mkdir volumes/web/snapshots/before-upgrade\n"
	"  cat volumes/web/snapshots/before-upgrade/state\n"
	"  ls -l backed-up/volumes/web/\n"
	"\n"
	"See snapfs(8) and docs/ in the source for the whole contract.\n";

/*
 * CACHEDIR.TAG (bford.info/cachedir): tools check its first 43 bytes.  It is
 * found by name and never listed, so listings of volumes/ and the others
 * stay lists of volumes, VMs, jobs, alerts and policies.
 */
static const char cachedir_tag_text[] =
	"Signature: 8a477f597d28d172789f06886806bc55\n"
	"# This file is a cache directory tag created by snapfs.\n"
	"# This directory is a live view of the host, not a backup: back up\n"
	"# backed-up/ (tar, restic and borg skip this one with --exclude-caches).\n"
	"# For information about cache directory tags, see:\n"
	"#\thttps://bford.info/cachedir/\n";

/* ---- attributes ------------------------------------------------------- */

static void fill_dir(struct stat *st, ino_t ino)
{
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_ino = ino;
}

static void fill_file(struct stat *st, ino_t ino, mode_t mode, off_t size)
{
	st->st_mode = S_IFREG | mode;
	st->st_nlink = 1;
	st->st_ino = ino;
	st->st_size = size;
}

static void fill_times(struct stat *st, time_t t)
{
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = t;
}

/*
 * Accounts: the kernel checks permissions (default_permissions) against
 * what we report.  An object's directories are 0770 to its owner and
 * group, its read-only files 0440, its writable files 0660; root is
 * the administrator.
 */
static void own(struct stat *st, uid_t uid, gid_t gid)
{
	st->st_uid = uid;
	st->st_gid = gid;
	if (S_ISDIR(st->st_mode))
		st->st_mode = S_IFDIR | 0770;
	else if (S_ISREG(st->st_mode))
		st->st_mode = S_IFREG | ((st->st_mode & 0222) ? 0660 : 0440);
}

/*
 * Times of a backed-up/ directory (@vol NULL: backed-up/ and its volumes/):
 * those of its directory on secondary storage, which change when a backup
 * appears, is renamed or deleted, and not across remounts.
 */
static void backed_up_dir_times(const char *vol, struct stat *st)
{
	struct timespec t;

	if (snap_backup_dir_mtime(engine(), vol, &t) < 0)
		return;
	st->st_atim = st->st_mtim = st->st_ctim = t;
}

/* stat of a backed-up file: the file's own size and times, our inode. */
static int backed_up_stat(struct node *n, struct stat *st)
{
	g_autofree char *image = NULL, *manifest = NULL;
	uint64_t id;
	struct stat real;
	int rc;

	rc = snap_backup_paths(engine(), n->vol, n->snap, &id, &image, &manifest);
	if (rc < 0)
		return rc;
	if (lstat(n->kind == NODE_BACKED_UP_IMAGE ? image : manifest, &real) < 0)
		return -errno;
	if (!S_ISREG(real.st_mode))
		return -ENOENT;
	fill_file(st, INO(id, n->kind), 0444, real.st_size);
	{
		struct snap_volume_stat vs;

		if (snap_volume_stat(engine(), n->vol, &vs) == 0)
			own(st, vs.uid, vs.gid);
	}
	st->st_atim = real.st_mtim;
	st->st_mtim = real.st_mtim;
	st->st_ctim = real.st_mtim;
	st->st_blocks = real.st_blocks;
	return 0;
}

/* The symlink target of a link node (g_free), or -ENOENT. */
static int link_target(struct node *n, char **out)
{
	struct snap_engine *eng = engine();
	struct snap_vm_snapshot_stat ss;
	g_auto(GStrv) vols = NULL;
	char *cur = NULL;
	int rc;

	switch (n->kind) {
	case NODE_VM_VOLUME_LINK:
		rc = snap_vm_volumes(eng, n->vm, &vols);
		if (rc < 0)
			return rc;
		if (!g_strv_contains((const char *const *)vols, n->vol))
			return -ENOENT;
		*out = g_strdup_printf("../../../volumes/%s", n->vol);
		return 0;
	case NODE_VM_CURRENT:
		rc = snap_vm_current(eng, n->vm, &cur);
		if (rc < 0)
			return rc;
		*out = cur;
		return 0;
	case NODE_VM_SNAPSHOT_PARENT:
		rc = snap_vm_snapshot_stat(eng, n->vm, n->snap, &ss);
		if (rc < 0)
			return rc;
		if (!ss.parent[0])
			return -ENOENT;
		*out = g_strdup_printf("../%s", ss.parent);
		return 0;
	default:
		return -EINVAL;
	}
}

static int vm_node_fill(struct node *n, struct stat *st, struct snap_vm_stat *vsp);

static int vm_node_stat(struct node *n, struct stat *st)
{
	struct snap_vm_stat vs;
	int rc;

	rc = snap_vm_stat(engine(), n->vm, &vs);
	if (rc < 0)
		return rc;
	rc = vm_node_fill(n, st, &vs);
	if (rc == 0 && !S_ISLNK(st->st_mode))
		own(st, vs.uid, vs.gid);
	else if (rc == 0) {
		st->st_uid = vs.uid;
		st->st_gid = vs.gid;
	}
	return rc;
}

static int vm_node_fill(struct node *n, struct stat *st, struct snap_vm_stat *vsp)
{
	struct snap_vm_stat vs = *vsp;
	struct snap_vm_snapshot_stat ss;
	g_autofree char *target = NULL;
	int rc;

	switch (n->kind) {
	case NODE_VM:
	case NODE_VM_VOLUMES:
	case NODE_VM_SNAPSHOTS:
		fill_dir(st, INO(vs.id, n->kind));
		return 0;
	case NODE_VM_INFO:
	case NODE_VM_STATE:
		fill_file(st, INO(vs.id, n->kind), 0444, 0);
		return 0;
	case NODE_VM_CONTROL:
	case NODE_VM_OPTIONS:
		fill_file(st, INO(vs.id, n->kind), 0644, 0);
		return 0;
	case NODE_VM_SNAPSHOT:
	case NODE_VM_SNAPSHOT_INFO:
		rc = snap_vm_snapshot_stat(engine(), n->vm, n->snap, &ss);
		if (rc < 0)
			return rc;
		if (n->kind == NODE_VM_SNAPSHOT)
			fill_dir(st, INO(ss.id, n->kind));
		else
			fill_file(st, INO(ss.id, n->kind), 0444, 0);
		fill_times(st, ss.created_at);
		return 0;
	case NODE_VM_VOLUME_LINK:
	case NODE_VM_CURRENT:
	case NODE_VM_SNAPSHOT_PARENT:
		rc = link_target(n, &target);
		if (rc < 0)
			return rc;
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(target);
		st->st_ino = INO(vs.id, n->kind);
		if (n->kind == NODE_VM_SNAPSHOT_PARENT &&
		    snap_vm_snapshot_stat(engine(), n->vm, n->snap, &ss) == 0)
			st->st_ino = INO(ss.id, n->kind);
		if (n->kind == NODE_VM_VOLUME_LINK) {
			struct snap_volume_stat vol;

			if (snap_volume_stat(engine(), n->vol, &vol) == 0)
				st->st_ino = INO(vol.id, n->kind);
		}
		return 0;
	default:
		return -ENOENT;
	}
}

static int node_stat(struct node *n, struct stat *st)
{
	struct snapfs_ctx *c = ctx();
	struct snap_volume_stat vs;
	struct snap_snapshot_stat ss;
	g_autofree char *text = NULL;
	int rc;

	memset(st, 0, sizeof(*st));
	fill_times(st, c->mount_time);
	switch (n->kind) {
	case NODE_ROOT:
	case NODE_JOBS:
	case NODE_VOLUMES:
		fill_dir(st, INO(0, n->kind));
		return 0;
	case NODE_BACKED_UP:
	case NODE_BACKED_UP_VOLUMES:
		fill_dir(st, INO(0, n->kind));
		backed_up_dir_times(NULL, st);
		return 0;
	case NODE_ALERTS:
	case NODE_POLICIES:
		/* everyone adds (policies) or removes (alerts) their own */
		fill_dir(st, INO(0, n->kind));
		st->st_mode = S_IFDIR | S_ISVTX | 0777;
		return 0;
	case NODE_LIMITS:
		fill_file(st, INO(0, n->kind), 0644, 0);
		return 0;
	case NODE_POLICY: {
		struct snap_policy_stat ps;

		rc = snap_policy_stat(c->eng, n->snap, &ps);
		if (rc < 0)
			return rc;
		fill_file(st, INO(ps.id, n->kind), 0600, 0);
		st->st_uid = ps.uid;
		st->st_gid = ps.gid;
		return 0;
	}
	case NODE_README:
		fill_file(st, INO(0, n->kind), 0444, sizeof(readme_text) - 1);
		return 0;
	case NODE_CACHEDIR_TAG:
		/* one per directory: n->id is the directory's kind */
		fill_file(st, INO(n->id, n->kind), 0444, sizeof(cachedir_tag_text) - 1);
		return 0;
	case NODE_EVENTS:
		fill_file(st, INO(0, n->kind), 0444, 0);
		return 0;
	case NODE_CLOCK:
		if (!c->test_clock)
			return -ENOENT;
		fill_file(st, INO(0, n->kind), 0644, 0);
		return 0;
	case NODE_ALERT:
	case NODE_JOB:
	{
		uid_t owner = 0;

		rc = n->kind == NODE_ALERT ?
			     snap_alert_owner(c->eng, n->id, &owner) :
			     snap_job_owner(c->eng, n->id, &owner);
		if (rc < 0)
			return rc;
		/* the account's own; rm of an alert acknowledges it */
		fill_file(st, INO(n->id, n->kind), n->kind == NODE_ALERT ? 0600 : 0400, 0);
		st->st_uid = owner;
		return 0;
	}
	case NODE_VOLUME:
	case NODE_VOLUME_INFO:
	case NODE_VOLUME_CONTROL:
	case NODE_SNAPSHOTS:
		rc = snap_volume_stat(c->eng, n->vol, &vs);
		if (rc < 0)
			return rc;
		if (node_is_dir(n->kind))
			fill_dir(st, INO(vs.id, n->kind));
		else
			fill_file(st, INO(vs.id, n->kind),
				  n->kind == NODE_VOLUME_CONTROL ? 0644 : 0444, 0);
		own(st, vs.uid, vs.gid);
		if (vs.mtime)
			fill_times(st, vs.mtime);
		return 0;
	case NODE_SNAPSHOT:
	case NODE_SNAPSHOT_STATE:
	case NODE_SNAPSHOT_INFO:
	case NODE_SNAPSHOT_WAIT:
		rc = snap_snapshot_stat(c->eng, n->vol, n->snap, &ss);
		if (rc < 0)
			return rc;
		if (n->kind == NODE_SNAPSHOT)
			fill_dir(st, INO(ss.id, n->kind));
		else
			fill_file(st, INO(ss.id, n->kind), 0444, 0);
		own(st, ss.uid, ss.gid);
		fill_times(st, ss.created_at);
		return 0;
	case NODE_BACKED_UP_VOLUME: {
		g_auto(GStrv) names = NULL;

		rc = snap_backup_list(c->eng, n->vol, &names);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return -ENOENT;
		rc = snap_volume_stat(c->eng, n->vol, &vs);
		fill_dir(st, INO(rc == 0 ? vs.id : 0, n->kind));
		if (rc == 0) {
			own(st, vs.uid, vs.gid);
			st->st_mode = S_IFDIR | 0750;
		}
		backed_up_dir_times(n->vol, st);
		return 0;
	}
	case NODE_BACKED_UP_IMAGE:
	case NODE_BACKED_UP_MANIFEST:
		return backed_up_stat(n, st);
	case NODE_VMS:
	case NODE_WAIT:
		fill_dir(st, INO(0, n->kind));
		return 0;
	case NODE_WAIT_VOLUME:
		rc = snap_volume_stat(c->eng, n->vol, &vs);
		if (rc < 0)
			return rc;
		fill_dir(st, INO(vs.id, n->kind));
		own(st, vs.uid, vs.gid);
		return 0;
	default:
		return vm_node_stat(n, st);
	}
}

static int op_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	struct node n;
	int rc = path_parse(path, &n);

	if (rc < 0)
		return rc == -ENAMETOOLONG ? rc : -ENOENT;
	return node_stat(&n, st);
}

/* ---- directories ------------------------------------------------------ */

struct lister {
	void *buf;
	fuse_fill_dir_t filler;
};

static void add(struct lister *l, const char *name, ino_t ino, bool dir)
{
	struct stat st = { .st_ino = ino, .st_mode = dir ? S_IFDIR : S_IFREG };

	/* the kernel takes the type from the next lookup; S_IFREG is a hint */

	l->filler(l->buf, name, &st, 0, 0);
}

/* Add each of @names (children of @parent, of @kind) with its inode. */
static void add_names(struct lister *l, const struct node *parent, char **names,
		      enum node_kind kind)
{
	for (; names && *names; names++) {
		struct node child = *parent;
		struct stat st;

		child.kind = kind;
		if (kind == NODE_SNAPSHOT || kind == NODE_VM_SNAPSHOT)
			g_strlcpy(child.snap, *names, sizeof(child.snap));
		else if (kind == NODE_VM)
			g_strlcpy(child.vm, *names, sizeof(child.vm));
		else
			g_strlcpy(child.vol, *names, sizeof(child.vol));
		if (node_stat(&child, &st) == 0)
			add(l, *names, st.st_ino, node_is_dir(kind));
	}
}

/* Add the fixed children of @parent by name and kind. */
static void add_fixed(struct lister *l, const struct node *parent,
		      const char *name, enum node_kind kind)
{
	struct node child = *parent;
	struct stat st;

	child.kind = kind;
	if (node_stat(&child, &st) == 0)
		add(l, name, st.st_ino, node_is_dir(kind));
}

static void add_ids(struct lister *l, uint64_t *ids, int n, enum node_kind kind)
{
	char name[32];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%llu", (unsigned long long)ids[i]);
		add(l, name, INO(ids[i], kind), false);
	}
}

/*
 * snapshots/ is listed with offsets, from a copy of its entries taken when
 * a listing starts (offset 0) and kept in the open directory: with
 * offsets, libfuse's high-level API gives each entry a node ID, so the
 * attributes in the listing become the kernel's dentries and `ls -l` of
 * 10,000 snapshots sends no LOOKUP per name.  (Filled all at once at
 * offset 0, libfuse 3.14 sends READDIRPLUS entries without node IDs, and
 * every name is looked up again once its second in the cache is over.)
 * One catalog query per listing; libfuse serializes the calls of one
 * open directory.
 */
struct dir_copy {
	struct snap_dirent *ents;
	int n;
	struct snap_volume_stat vs;
	ino_t self;
};

static void dir_copy_free(struct dir_copy *dc)
{
	if (!dc)
		return;
	g_free(dc->ents);
	g_free(dc);
}

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
	struct node n;

	fi->fh = 0;
	if (path_parse(path, &n) == 0 && n.kind == NODE_SNAPSHOTS)
		fi->fh = (uint64_t)(uintptr_t)g_new0(struct dir_copy, 1);
	return 0;
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
	dir_copy_free((struct dir_copy *)(uintptr_t)fi->fh);
	fi->fh = 0;
	return 0;
}

/* Entries of snapshots/ from offset @off on: ".", "..", then by name. */
static int list_snapshots(const struct node *n, ino_t self, void *buf,
			  fuse_fill_dir_t filler, off_t off,
			  struct fuse_file_info *fi)
{
	struct dir_copy *dc = (struct dir_copy *)(uintptr_t)fi->fh;
	g_autofree struct dir_copy *local = NULL;
	int rc, i;

	if (!dc)
		dc = local = g_new0(struct dir_copy, 1);
	if (off == 0 || !dc->ents) {
		g_clear_pointer(&dc->ents, g_free);
		dc->n = 0;
		rc = snap_volume_stat(engine(), n->vol, &dc->vs);
		if (rc == 0)
			rc = snap_snapshot_dirents(engine(), n->vol, &dc->ents);
		if (rc < 0)
			return rc;
		dc->n = rc;
		dc->self = self;
	}
	for (i = (int)off; i < dc->n + 2; i++) {
		struct stat est = { 0 };
		const char *name;

		if (i < 2) {
			fill_dir(&est, i == 0 ? dc->self : INO(dc->vs.id, NODE_VOLUME));
			name = i == 0 ? "." : "..";
		} else {
			const struct snap_dirent *e = &dc->ents[i - 2];

			fill_dir(&est, INO(e->id, NODE_SNAPSHOT));
			own(&est, dc->vs.uid, dc->vs.gid);
			fill_times(&est, e->created_at);
			name = e->name;
		}
		if (filler(buf, name, &est, i + 1, FUSE_FILL_DIR_PLUS))
			break;
	}
	if (local)
		g_free(local->ents);
	return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct snap_engine *eng = engine();
	struct lister l = { buf, filler };
	g_auto(GStrv) names = NULL;
	g_autofree uint64_t *ids = NULL;
	struct stat st;
	struct node n;
	int rc;

	rc = path_parse(path, &n);
	if (rc < 0)
		return -ENOENT;
	rc = node_stat(&n, &st);
	if (rc < 0)
		return rc;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (n.kind == NODE_SNAPSHOTS)
		return list_snapshots(&n, st.st_ino, buf, filler, off, fi);
	add(&l, ".", st.st_ino, true);
	add(&l, "..", INO(0, NODE_ROOT), true);
	switch (n.kind) {
	case NODE_ROOT:
		add(&l, "README", INO(0, NODE_README), false);
		add(&l, "events", INO(0, NODE_EVENTS), false);
		add(&l, "alerts", INO(0, NODE_ALERTS), true);
		add(&l, "jobs", INO(0, NODE_JOBS), true);
		add(&l, "volumes", INO(0, NODE_VOLUMES), true);
		add(&l, "vms", INO(0, NODE_VMS), true);
		add(&l, "backed-up", INO(0, NODE_BACKED_UP), true);
		add(&l, "policies", INO(0, NODE_POLICIES), true);
		add(&l, "limits", INO(0, NODE_LIMITS), false);
		add(&l, "wait", INO(0, NODE_WAIT), true);
		return 0;
	case NODE_WAIT:
	case NODE_WAIT_VOLUME:
		return 0; /* wait files are opened by name, never found by a walk */
	case NODE_POLICIES:
		rc = snap_policy_list(eng, &names);
		for (char **p = names; rc >= 0 && p && *p; p++) {
			struct snap_policy_stat ps;

			if (snap_policy_stat(eng, *p, &ps) == 0)
				add(&l, *p, INO(ps.id, NODE_POLICY), false);
		}
		return rc < 0 ? rc : 0;
	case NODE_VMS:
		rc = snap_vm_list(eng, &names);
		add_names(&l, &n, names, NODE_VM);
		return rc < 0 ? rc : 0;
	case NODE_VM:
		add_fixed(&l, &n, "info", NODE_VM_INFO);
		add_fixed(&l, &n, "state", NODE_VM_STATE);
		add_fixed(&l, &n, "control", NODE_VM_CONTROL);
		add_fixed(&l, &n, "snapshot-options", NODE_VM_OPTIONS);
		add_fixed(&l, &n, "volumes", NODE_VM_VOLUMES);
		add_fixed(&l, &n, "snapshots", NODE_VM_SNAPSHOTS);
		return 0;
	case NODE_VM_VOLUMES:
		rc = snap_vm_volumes(eng, n.vm, &names);
		add_names(&l, &n, names, NODE_VM_VOLUME_LINK);
		return rc < 0 ? rc : 0;
	case NODE_VM_SNAPSHOTS:
		add_fixed(&l, &n, "current", NODE_VM_CURRENT);
		rc = snap_vm_snapshot_list(eng, n.vm, &names);
		add_names(&l, &n, names, NODE_VM_SNAPSHOT);
		return rc < 0 ? rc : 0;
	case NODE_VM_SNAPSHOT:
		add_fixed(&l, &n, "info", NODE_VM_SNAPSHOT_INFO);
		add_fixed(&l, &n, "parent", NODE_VM_SNAPSHOT_PARENT);
		return 0;
	case NODE_ALERTS:
		rc = snap_alert_list(eng, &ids);
		if (rc >= 0)
			add_ids(&l, ids, rc, NODE_ALERT);
		return rc < 0 ? rc : 0;
	case NODE_JOBS:
		rc = snap_job_list(eng, &ids);
		if (rc >= 0)
			add_ids(&l, ids, rc, NODE_JOB);
		return rc < 0 ? rc : 0;
	case NODE_VOLUMES:
		rc = snap_volume_list(eng, &names);
		add_names(&l, &n, names, NODE_VOLUME);
		return rc < 0 ? rc : 0;
	case NODE_VOLUME:
		add_fixed(&l, &n, "info", NODE_VOLUME_INFO);
		add_fixed(&l, &n, "control", NODE_VOLUME_CONTROL);
		add_fixed(&l, &n, "snapshots", NODE_SNAPSHOTS);
		return 0;
	case NODE_SNAPSHOT:
		add_fixed(&l, &n, "state", NODE_SNAPSHOT_STATE);
		add_fixed(&l, &n, "info", NODE_SNAPSHOT_INFO);
		return 0;
	case NODE_BACKED_UP:
		add(&l, "volumes", INO(0, NODE_BACKED_UP_VOLUMES), true);
		return 0;
	case NODE_BACKED_UP_VOLUMES:
		rc = snap_backup_volumes(eng, &names);
		add_names(&l, &n, names, NODE_BACKED_UP_VOLUME);
		return rc < 0 ? rc : 0;
	case NODE_BACKED_UP_VOLUME:
		rc = snap_backup_list(eng, n.vol, &names);
		if (rc < 0)
			return rc;
		for (char **p = names; p && *p; p++) {
			struct node f = n;
			struct stat fst;

			g_strlcpy(f.snap, *p, sizeof(f.snap));
			f.kind = NODE_BACKED_UP_IMAGE;
			if (backed_up_stat(&f, &fst) == 0) {
				g_autofree char *img = g_strconcat(*p, ".qcow2", NULL);

				add(&l, img, fst.st_ino, false);
			}
			f.kind = NODE_BACKED_UP_MANIFEST;
			if (backed_up_stat(&f, &fst) == 0) {
				g_autofree char *man = g_strconcat(*p, ".json", NULL);

				add(&l, man, fst.st_ino, false);
			}
		}
		return 0;
	default:
		return -ENOTDIR;
	}
}

/* ---- files ------------------------------------------------------------ */

/* Render the content of a dynamic file. */
static int render(struct node *n, char **data, size_t *len)
{
	struct snap_engine *eng = engine();
	struct snap_snapshot_stat ss;
	int rc;

	*data = NULL;
	switch (n->kind) {
	case NODE_README:
		*data = g_strdup(readme_text);
		break;
	case NODE_CACHEDIR_TAG:
		*data = g_strdup(cachedir_tag_text);
		break;
	case NODE_EVENTS:
		/* each account reads the events of its own volumes and VMs */
		return snap_events_read(eng, fuse_get_context()->uid, data, len);
	case NODE_LIMITS:
		rc = snap_limits_read(eng, data);
		if (rc < 0)
			return rc;
		break;
	case NODE_POLICY:
		rc = snap_policy_read(eng, n->snap, data);
		if (rc < 0)
			return rc;
		break;
	case NODE_CLOCK:
		*data = g_strdup_printf("%lld\n", (long long)snap_clock_now(eng));
		break;
	case NODE_ALERT:
		rc = snap_alert_read(eng, n->id, data);
		if (rc < 0)
			return rc;
		break;
	case NODE_JOB:
		rc = snap_job_read(eng, n->id, data);
		if (rc < 0)
			return rc;
		break;
	case NODE_VOLUME_INFO:
		rc = snap_volume_info(eng, n->vol, data);
		if (rc < 0)
			return rc;
		break;
	case NODE_VOLUME_CONTROL:
		rc = snap_volume_control_text(eng, n->vol, data);
		if (rc < 0)
			return rc;
		break;
	case NODE_SNAPSHOT_STATE:
		rc = snap_snapshot_stat(eng, n->vol, n->snap, &ss);
		if (rc < 0)
			return rc;
		*data = g_strdup_printf("%s\n", snap_state_name(ss.state));
		break;
	case NODE_SNAPSHOT_INFO:
		rc = snap_snapshot_info(eng, n->vol, n->snap, data);
		if (rc < 0)
			return rc;
		break;
	case NODE_VM_INFO:
		rc = snap_vm_info(eng, n->vm, data);
		if (rc < 0)
			return rc;
		break;
	case NODE_VM_STATE: {
		g_autofree char *word = NULL;

		rc = snap_vm_state(eng, n->vm, &word);
		if (rc < 0)
			return rc;
		*data = g_strdup_printf("%s\n", word);
		break;
	}
	case NODE_VM_CONTROL:
		rc = snap_vm_control_text(eng, n->vm, data);
		if (rc < 0)
			return rc;
		break;
	case NODE_VM_OPTIONS:
		rc = snap_vm_options_read(eng, n->vm, data);
		if (rc < 0)
			return rc;
		break;
	case NODE_VM_SNAPSHOT_INFO:
		rc = snap_vm_snapshot_info(eng, n->vm, n->snap, data);
		if (rc < 0)
			return rc;
		break;
	default:
		return -EISDIR;
	}
	*len = strlen(*data);
	return 0;
}

static bool writable_kind(enum node_kind kind)
{
	return kind == NODE_VOLUME_CONTROL || kind == NODE_CLOCK ||
	       kind == NODE_VM_CONTROL || kind == NODE_VM_OPTIONS ||
	       kind == NODE_LIMITS || kind == NODE_POLICY;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	bool writing = (fi->flags & O_ACCMODE) != O_RDONLY ||
		       (fi->flags & O_TRUNC);
	g_autofree char *image = NULL, *manifest = NULL;
	struct open_file *of;
	struct stat st;
	struct node n;
	int rc;

	rc = path_parse(path, &n);
	if (rc < 0)
		return -ENOENT;
	rc = node_stat(&n, &st);
	if (rc < 0)
		return rc;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (writing && n.read_only) {
		reject("open", path, EROFS, "backed-up/ is read-only");
		return -EROFS;
	}
	if (writing && !writable_kind(n.kind)) {
		reject("open", path, EACCES, "this file is read-only");
		return -EACCES;
	}

	of = g_new0(struct open_file, 1);
	of->kind = n.kind;
	of->fd = -1;
	g_strlcpy(of->vol, n.vol, sizeof(of->vol));
	g_strlcpy(of->vm, n.vm, sizeof(of->vm));
	if (n.kind == NODE_POLICY)
		g_strlcpy(of->policy, n.snap, sizeof(of->policy));
	if (n.kind == NODE_BACKED_UP_IMAGE || n.kind == NODE_BACKED_UP_MANIFEST) {
		rc = snap_backup_paths(engine(), n.vol, n.snap, NULL, &image,
				       &manifest);
		if (rc == 0) {
			of->fd = open(n.kind == NODE_BACKED_UP_IMAGE ? image : manifest,
				      O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (of->fd < 0)
				rc = -errno;
		}
		if (rc < 0) {
			g_free(of);
			return rc;
		}
		/* images are immutable: the kernel keeps its cache across
		 * opens; a manifest is rewritten by mv, so it is re-read */
		fi->keep_cache = n.kind == NODE_BACKED_UP_IMAGE;
	} else if (n.kind == NODE_SNAPSHOT_WAIT) {
		struct snap_snapshot_stat ss;

		/* by id: a rename while a reader waits changes nothing */
		rc = snap_snapshot_stat(engine(), n.vol, n.snap, &ss);
		if (rc < 0) {
			g_free(of);
			return rc;
		}
		of->snap_id = ss.id;
		fi->direct_io = 1;
	} else {
		if (!(writing && (fi->flags & O_ACCMODE) == O_WRONLY)) {
			rc = render(&n, &of->data, &of->len);
			if (rc < 0) {
				g_free(of);
				return rc;
			}
		}
		fi->direct_io = 1;
	}
	fi->fh = (uint64_t)(uintptr_t)of;
	return 0;
}

static struct open_file *file_of(struct fuse_file_info *fi)
{
	return (struct open_file *)(uintptr_t)fi->fh;
}

/* A wait file's reader was interrupted, or the session ends: stop waiting. */
static int wait_should_stop(void *arg)
{
	struct fuse *f = arg;

	if (fuse_interrupted())
		return -EINTR;
	if (fuse_session_exited(fuse_get_session(f)))
		return -ENOTCONN;
	return 0;
}

/*
 * The answer of a wait file: "BackedUp\n" or "BackupFailed\n", waited for
 * by the first read (later reads, `cat`'s read at EOF, get it at once).
 * Two reads of one open file may wait side by side; the first answer
 * stays.  Return: the answer (owned by @of); NULL and *@rc = -errno.
 */
static const char *wait_answer(struct open_file *of, int *rc)
{
	enum snap_state state;
	char *text = g_atomic_pointer_get(&of->data);

	if (text)
		return text;
	*rc = snap_snapshot_wait(engine(), of->snap_id, wait_should_stop,
				 fuse_get_context()->fuse, &state);
	if (*rc < 0)
		return NULL;
	text = g_strdup_printf("%s\n", snap_state_name(state));
	if (!g_atomic_pointer_compare_and_exchange(&of->data, NULL, text)) {
		g_free(text);
		text = g_atomic_pointer_get(&of->data);
	}
	return text;
}

static int op_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct open_file *of = file_of(fi);
	const char *data = of->data;
	size_t len = of->len;
	ssize_t n;
	int rc = 0;

	if (of->fd >= 0) {
		n = pread(of->fd, buf, size, off);
		return n < 0 ? -errno : (int)n;
	}
	if (of->kind == NODE_SNAPSHOT_WAIT) {
		data = wait_answer(of, &rc);
		if (!data)
			return rc;
		len = strlen(data);
	}
	if (!data || off < 0 || (size_t)off >= len)
		return 0;
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	memcpy(buf, data + off, size);
	return (int)size;
}

/* Backed-up files go from the secondary file to the kernel by splice. */
static int op_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	struct open_file *of = file_of(fi);
	struct fuse_bufvec *bv;

	if (of->fd < 0) {
		bv = malloc(sizeof(*bv));
		if (!bv)
			return -ENOMEM;
		*bv = FUSE_BUFVEC_INIT(size);
		bv->buf[0].mem = malloc(size ? size : 1);
		if (!bv->buf[0].mem) {
			free(bv);
			return -ENOMEM;
		}
		int n = op_read(path, bv->buf[0].mem, size, off, fi);

		bv->buf[0].size = n < 0 ? 0 : (size_t)n;
		*bufp = bv;
		return n < 0 ? n : 0;
	}
	bv = malloc(sizeof(*bv));
	if (!bv)
		return -ENOMEM;
	*bv = FUSE_BUFVEC_INIT(size);
	bv->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv->buf[0].fd = of->fd;
	bv->buf[0].pos = off;
	*bufp = bv;
	return 0;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct open_file *of = file_of(fi);
	struct node n;
	int rc;

	if (path_parse(path, &n) < 0)
		return -ENOENT;
	switch (of->kind) {
	case NODE_VOLUME_CONTROL:
		rc = snap_volume_control(engine(), of->vol, buf, size);
		return rc < 0 ? rc : (int)size;
	case NODE_VM_CONTROL:
		rc = snap_vm_control(engine(), of->vm, buf, size);
		return rc < 0 ? rc : (int)size;
	case NODE_VM_OPTIONS:
		rc = snap_vm_options_write(engine(), of->vm, buf, size);
		return rc < 0 ? rc : (int)size;
	case NODE_LIMITS:
		rc = snap_limits_write(engine(), buf, size);
		return rc < 0 ? rc : (int)size;
	case NODE_POLICY:
		rc = snap_policy_write(engine(), of->policy, fuse_get_context()->uid,
				       fuse_get_context()->gid, buf, size);
		return rc < 0 ? rc : (int)size;
	case NODE_CLOCK: {
		char text[32];
		char *end;
		long long t;

		if (size == 0 || size >= sizeof(text))
			return -EINVAL;
		memcpy(text, buf, size);
		text[size] = '\0';
		t = strtoll(text, &end, 10);
		if (end == text || (*end && *end != '\n'))
			return -EINVAL;
		rc = snap_clock_set(engine(), t);
		return rc < 0 ? rc : (int)size;
	}
	default:
		return -EBADF;
	}
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	struct open_file *of = file_of(fi);

	if (of->fd >= 0)
		close(of->fd);
	g_free(of->data);
	g_free(of);
	return 0;
}

static int op_readlink(const char *path, char *buf, size_t size)
{
	g_autofree char *target = NULL;
	struct node n;
	int rc;

	if (path_parse(path, &n) < 0 || !node_is_link(n.kind))
		return -EINVAL;
	rc = link_target(&n, &target);
	if (rc < 0)
		return rc;
	g_strlcpy(buf, target, size);
	return 0;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct node n;

	if (path_parse(path, &n) < 0)
		return -ENOENT;
	if (n.read_only) {
		reject("truncate", path, EROFS, "backed-up/ is read-only");
		return -EROFS;
	}
	/* `echo cmd > control` truncates first: nothing to do */
	if (writable_kind(n.kind) && size == 0)
		return 0;
	reject("truncate", path, EACCES, "this file cannot be truncated");
	return -EACCES;
}

/* ---- changes to the tree --------------------------------------------- */

/* Refuse creating an entry at @path: EROFS in backed-up/, else EPERM. */
static int refuse_create(const char *op, const char *path)
{
	g_autofree char *parent = g_path_get_dirname(path);
	struct node n, p;
	struct stat st;
	int rc = path_parse(path, &n);

	if (path_parse(parent, &p) < 0 || node_stat(&p, &st) < 0) {
		reject(op, path, ENOENT, "no such directory");
		return -ENOENT;
	}
	if (p.read_only || (rc == 0 && n.read_only)) {
		reject(op, path, EROFS, "backed-up/ is read-only");
		return -EROFS;
	}
	if (rc == 0 && node_stat(&n, &st) == 0) {
		reject(op, path, EEXIST, "it exists");
		return -EEXIST;
	}
	reject(op, path, EPERM, "the tree has no such entry to create here");
	return -EPERM;
}

static int op_mkdir(const char *path, mode_t mode)
{
	struct node n;
	struct stat st;
	int rc = path_parse(path, &n);

	if (n.kind == NODE_SNAPSHOT && (rc == 0 || rc == -EINVAL)) {
		if (rc == -EINVAL && snap_name_valid(n.vol) < 0)
			return refuse_create("mkdir", path);
		return snap_snapshot_take(engine(), n.vol, n.snap[0] ? n.snap :
					  strrchr(path, '/') + 1);
	}
	if ((n.kind == NODE_VM_SNAPSHOT && (rc == 0 || rc == -EINVAL)) ||
	    (n.kind == NODE_VM_CURRENT && rc == 0))
		return snap_vm_snapshot_take(engine(), n.vm, strrchr(path, '/') + 1);
	if (rc == -ENAMETOOLONG) {
		reject("mkdir", path, ENAMETOOLONG, "name too long");
		return rc;
	}
	if (rc == 0 && node_stat(&n, &st) == 0 && !n.read_only) {
		reject("mkdir", path, EEXIST, "it exists");
		return -EEXIST;
	}
	return refuse_create("mkdir", path);
}

static int op_rmdir(const char *path)
{
	struct node n;
	int rc = path_parse(path, &n);

	if (rc < 0) {
		reject("rmdir", path, ENOENT, "no such directory");
		return -ENOENT;
	}
	if (n.read_only) {
		reject("rmdir", path, EROFS, "backed-up/ is read-only");
		return -EROFS;
	}
	if (n.kind == NODE_SNAPSHOT)
		return snap_snapshot_delete(engine(), n.vol, n.snap);
	if (n.kind == NODE_VM_SNAPSHOT)
		return snap_vm_snapshot_delete(engine(), n.vm, n.snap);
	reject("rmdir", path, EPERM, "only snapshot directories can be removed");
	return -EPERM;
}

static int op_unlink(const char *path)
{
	struct node n;
	int rc = path_parse(path, &n);

	if (rc < 0) {
		reject("unlink", path, ENOENT, "no such file");
		return -ENOENT;
	}
	if (n.read_only) {
		reject("unlink", path, EROFS, "backed-up/ is read-only");
		return -EROFS;
	}
	if (n.kind == NODE_ALERT)
		return snap_alert_ack(engine(), n.id);
	if (n.kind == NODE_POLICY)
		return snap_policy_delete(engine(), n.snap);
	reject("unlink", path, EPERM, "only alerts and policies can be removed");
	return -EPERM;
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
	struct node a, b;
	int ra = path_parse(from, &a), rb = path_parse(to, &b);

	if (a.read_only || b.read_only) {
		reject("rename", from, EROFS, "backed-up/ is read-only");
		return -EROFS;
	}
	if (flags & RENAME_EXCHANGE) {
		reject("rename", from, EINVAL, "snapshots cannot be exchanged");
		return -EINVAL;
	}
	if (ra == 0 && a.kind == NODE_SNAPSHOT && b.kind == NODE_SNAPSHOT &&
	    (rb == 0 || rb == -EINVAL)) {
		if (strcmp(a.vol, b.vol) != 0) {
			reject("rename", from, EXDEV,
			       "a snapshot stays with its volume");
			return -EXDEV;
		}
		return snap_snapshot_rename(engine(), a.vol, a.snap,
					    strrchr(to, '/') + 1);
	}
	if (ra < 0) {
		reject("rename", from, ENOENT, "no such entry");
		return -ENOENT;
	}
	reject("rename", from, EPERM, "only snapshots can be renamed");
	return -EPERM;
}

/* Only policies/<name> can be created: an empty draft until a write
 * stores a policy in it (kept in memory, like an empty file). */
static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_context *fc = fuse_get_context();
	struct open_file *of;
	struct node n;
	int rc = path_parse(path, &n);

	if (n.kind != NODE_POLICY || (rc < 0 && rc != -EINVAL))
		return refuse_create("create", path);
	rc = snap_policy_create(engine(), strrchr(path, '/') + 1, fc->uid, fc->gid);
	if (rc < 0)
		return rc;
	of = g_new0(struct open_file, 1);
	of->kind = NODE_POLICY;
	of->fd = -1;
	g_strlcpy(of->policy, n.snap, sizeof(of->policy));
	fi->direct_io = 1;
	fi->fh = (uint64_t)(uintptr_t)of;
	return 0;
}

static int op_mknod(const char *path, mode_t mode, dev_t dev)
{
	return refuse_create("mknod", path);
}

static int op_symlink(const char *target, const char *path)
{
	return refuse_create("symlink", path);
}

static int op_link(const char *from, const char *to)
{
	return refuse_create("link", to);
}

static int refuse_change(const char *op, const char *path)
{
	struct node n;

	if (path_parse(path, &n) < 0)
		return -ENOENT;
	if (n.read_only) {
		reject(op, path, EROFS, "backed-up/ is read-only");
		return -EROFS;
	}
	reject(op, path, EPERM, "attributes of this entry cannot be changed");
	return -EPERM;
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return refuse_change("chmod", path);
}

/* chown of a volume or VM gives it (and all it has) to an account; the
 * kernel has checked the caller may (default_permissions). */
static int op_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	struct node n;

	if (path_parse(path, &n) == 0 && n.kind == NODE_VOLUME)
		return snap_volume_chown(engine(), n.vol, uid, gid);
	if (path_parse(path, &n) == 0 && n.kind == NODE_VM)
		return snap_vm_chown(engine(), n.vm, uid, gid);
	return refuse_change("chown", path);
}

static int op_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	struct node n;

	if (path_parse(path, &n) < 0)
		return -ENOENT;
	/* `touch control` is harmless; times here are not the user's */
	if (writable_kind(n.kind))
		return 0;
	return refuse_change("utimens", path);
}

static int op_statfs(const char *path, struct statvfs *sv)
{
	uint64_t total, avail;
	int rc = snap_statfs_primary(engine(), &total, &avail);

	if (rc < 0)
		return rc;
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = sv->f_frsize = 4096;
	sv->f_blocks = total / 4096;
	sv->f_bfree = sv->f_bavail = avail / 4096;
	sv->f_namemax = SNAP_NAME_MAX;
	return 0;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct snapfs_ctx *c = fuse_get_context()->private_data;

	cfg->use_ino = 1;
	/*
	 * rm of a file still open (its RELEASE not yet here: the kernel sends
	 * it after close(2) returns) reaches unlink, not libfuse's "hide" as a
	 * rename to .fuse_hidden*, which snapfs refuses (EPERM): a policy file
	 * removed right after its write failed that way under ASan.  Our files
	 * are views; nothing reads an unlinked one.
	 */
	cfg->hard_remove = 1;
	cfg->readdir_ino = 1;
	/*
	 * The kernel may keep names and attributes for a second: path walks
	 * and `ls -l` of 10,000 snapshots would otherwise cost two requests
	 * per path component (a permission check and a lookup).  Nothing
	 * new waits (no negative caching); what the engine removes or
	 * re-owns by itself is invalidated at once (inval.c); dynamic files
	 * are direct_io, so their content is never cached.
	 */
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	/* big requests for image reads */
	conn->max_readahead = 1u << 20;
	conn->max_write = 1u << 20;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	/*
	 * With attr_timeout 0 and automatic invalidation, every read(2) of a
	 * cached backed-up image would first ask us for its attributes
	 * (measured: 0.34x of a direct read, warm).  Backed-up images never
	 * change and their inode numbers are never reused; the files that do
	 * change are served with direct_io, and manifests are opened without
	 * keep_cache, so nothing relies on the automatic invalidation.
	 */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/*
	 * READDIRPLUS for every chunk of a listing, not only the first: the
	 * kernel's "auto" mode sends plain READDIR for later chunks unless a
	 * stat of a child advised otherwise, and plain entries make no
	 * dentries (list_snapshots).
	 */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	return c;
}

const struct fuse_operations snapfs_ops = {
	.init = op_init,
	.getattr = op_getattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.read_buf = op_read_buf,
	.write = op_write,
	.release = op_release,
	.truncate = op_truncate,
	.readlink = op_readlink,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.rename = op_rename,
	.create = op_create,
	.mknod = op_mknod,
	.symlink = op_symlink,
	.link = op_link,
	.chmod = op_chmod,
	.chown = op_chown,
	.utimens = op_utimens,
	.statfs = op_statfs,
};
