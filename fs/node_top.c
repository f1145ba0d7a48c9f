/*
 * node_top.c - the root and its files (README, events, .clock, limits, control,
 * CACHEDIR.TAG), alerts/, jobs/, policies/ and wait/.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes.h"
#include <fuse_lowlevel.h> /* fuse_session_exited() */

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
	"  backed-up/hosts/<host>/volumes/...    other hosts' backups on the same\n"
	"                                     secondary storage (read-only)\n"
	"  control                            root writes: restore <host>/<vol>/<snap>\n"
	"                                     <newvol> (a full copy of any backup, queued)\n"
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

/* ---- the root and its files ------------------------------------------- */

/* The root's entries, in the order listings have always had. */
static const enum node_kind root_entries[] = {
	NODE_README,   NODE_EVENTS,    NODE_ALERTS,   NODE_JOBS,
	NODE_VOLUMES,  NODE_VMS,       NODE_BACKED_UP, NODE_POLICIES,
	NODE_LIMITS,   NODE_WAIT,      NODE_CONTROL,
};

/* .clock and the tags are found by name, never listed */
int list_root(const struct node *n, struct lister *l)
{
	for (size_t i = 0; i < sizeof(root_entries) / sizeof(root_entries[0]); i++) {
		enum node_kind k = root_entries[i];

		lister_add(l, node_shapes[k].name, INO(0, k), node_is_dir(k));
	}
	/* images/, last: only on a mount with a repository (node_images.c) */
	if (snap_raw_available(node_engine()))
		lister_add(l, node_shapes[NODE_IMAGES].name, INO(0, NODE_IMAGES),
			   true);
	return 0;
}

/* A file whose content is the constant @text. */
static int read_text(const char *text, char **data, size_t *len)
{
	*data = g_strdup(text);
	*len = strlen(*data);
	return 0;
}

int stat_readme(const struct node *n, struct stat *st)
{
	fill_file(st, INO(0, n->kind), 0444, sizeof(readme_text) - 1);
	return 0;
}

int read_readme(const struct node *n, char **data, size_t *len)
{
	return read_text(readme_text, data, len);
}

/* one per directory: n->id is the directory's kind */
int stat_cachedir_tag(const struct node *n, struct stat *st)
{
	fill_file(st, INO(n->id, n->kind), 0444, sizeof(cachedir_tag_text) - 1);
	return 0;
}

int read_cachedir_tag(const struct node *n, char **data, size_t *len)
{
	return read_text(cachedir_tag_text, data, len);
}

/* each account reads the events of its own volumes and VMs */
int read_events(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return snap_events_read(node_engine(), fuse_get_context()->uid, data,
				len);
}

int stat_clock(const struct node *n, struct stat *st)
{
	if (!node_ctx()->test_clock)
		return -ENOENT;
	return stat_plain(n, st);
}

int read_clock(const struct node *n, char **data, size_t *len)
{
	*data = g_strdup_printf("%lld\n", (long long)snap_clock_now(node_engine()));
	*len = strlen(*data);
	return 0;
}

/* The test clock takes seconds since the epoch, one optional newline. */
int write_clock(const struct node *n, const char *buf, size_t size)
{
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
	return snap_clock_set(node_engine(), t);
}

int read_limits(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_limits_read(node_engine(), data), data, len);
}

int write_limits(const struct node *n, const char *buf, size_t size)
{
	return snap_limits_write(node_engine(), buf, size);
}

/* MOUNT/control: root's (its mode), like limits */
int read_control(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_control_text(node_engine(), data), data, len);
}

int write_control(const struct node *n, const char *buf, size_t size)
{
	return snap_control(node_engine(), buf, size);
}

/* everyone adds (policies) or removes (alerts) their own */
int stat_sticky_dir(const struct node *n, struct stat *st)
{
	fill_dir(st, INO(0, n->kind));
	st->st_mode = S_IFDIR | S_ISVTX | 0777;
	return 0;
}

/* ---- alerts/ and jobs/ ------------------------------------------------ */

/* Add entries for @ids (of kind @kind); @rc is the listing's count. */
static int list_ids(struct lister *l, int rc, uint64_t *ids, enum node_kind kind)
{
	char name[32];

	for (int i = 0; i < rc; i++) {
		snprintf(name, sizeof(name), "%llu", (unsigned long long)ids[i]);
		lister_add(l, name, INO(ids[i], kind), false);
	}
	return rc < 0 ? rc : 0;
}

int list_alerts(const struct node *n, struct lister *l)
{
	g_autofree uint64_t *ids = NULL;
	int rc = snap_alert_list(node_engine(), &ids);

	return list_ids(l, rc, ids, NODE_ALERT);
}

int list_jobs(const struct node *n, struct lister *l)
{
	g_autofree uint64_t *ids = NULL;
	int rc = snap_job_list(node_engine(), &ids);

	return list_ids(l, rc, ids, NODE_JOB);
}

/* The account's own: @mode is 0600 where rm means something, else 0400. */
static int stat_owned(const struct node *n, struct stat *st, int rc,
		      uid_t owner, mode_t mode)
{
	if (rc < 0)
		return rc;
	fill_file(st, INO(n->id, n->kind), mode, 0);
	st->st_uid = owner;
	return 0;
}

/* rm of an alert acknowledges it */
int stat_alert(const struct node *n, struct stat *st)
{
	uid_t owner = 0;
	int rc = snap_alert_owner(node_engine(), n->id, &owner);

	return stat_owned(n, st, rc, owner, 0600);
}

int stat_job(const struct node *n, struct stat *st)
{
	uid_t owner = 0;
	int rc = snap_job_owner(node_engine(), n->id, &owner);

	return stat_owned(n, st, rc, owner, 0400);
}

int read_alert(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_alert_read(node_engine(), n->id, data), data, len);
}

int read_job(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_job_read(node_engine(), n->id, data), data, len);
}

int unlink_alert(const struct node *n)
{
	return snap_alert_ack(node_engine(), n->id);
}

/* ---- policies/ -------------------------------------------------------- */

int list_policies(const struct node *n, struct lister *l)
{
	g_auto(GStrv) names = NULL;
	int rc = snap_policy_list(node_engine(), &names);

	if (rc >= 0)
		lister_add_names(l, n, names, NODE_POLICY);
	return rc < 0 ? rc : 0;
}

int stat_policy(const struct node *n, struct stat *st)
{
	struct snap_policy_stat ps;
	int rc = snap_policy_stat(node_engine(), n->snap, &ps);

	if (rc < 0)
		return rc;
	fill_file(st, INO(ps.id, n->kind), 0600, 0);
	st->st_uid = ps.uid;
	st->st_gid = ps.gid;
	return 0;
}

int read_policy(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_policy_read(node_engine(), n->snap, data), data, len);
}

int write_policy(const struct node *n, const char *buf, size_t size)
{
	struct fuse_context *fc = fuse_get_context();

	return snap_policy_write(node_engine(), n->snap, fc->uid, fc->gid, buf,
				 size);
}

int unlink_policy(const struct node *n)
{
	return snap_policy_delete(node_engine(), n->snap);
}

/* An empty draft until a write stores a policy in it (kept in memory,
 * like an empty file). */
int create_policy(const struct node *n, const char *name)
{
	struct fuse_context *fc = fuse_get_context();

	return snap_policy_create(node_engine(), name, fc->uid, fc->gid);
}

/* ---- wait/ ------------------------------------------------------------ */

int stat_wait_volume(const struct node *n, struct stat *st)
{
	struct snap_volume_stat vs;
	int rc = snap_volume_stat(node_engine(), n->vol, &vs);

	if (rc < 0)
		return rc;
	fill_dir(st, INO(vs.id, n->kind));
	own(st, vs.uid, vs.gid);
	return 0;
}

int open_wait(const struct node *n, struct open_file *of,
	      struct fuse_file_info *fi)
{
	struct snap_snapshot_stat ss;
	/* by id: a rename while a reader waits changes nothing */
	int rc = snap_snapshot_stat(node_engine(), n->vol, n->snap, &ss);

	if (rc < 0)
		return rc;
	of->snap_id = ss.id;
	of->waits = true;
	fi->direct_io = 1;
	return 0;
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

const char *wait_answer(struct open_file *of, int *rc)
{
	enum snap_state state;
	char *text = g_atomic_pointer_get(&of->data);

	if (text)
		return text;
	*rc = snap_snapshot_wait(node_engine(), of->snap_id, wait_should_stop,
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
