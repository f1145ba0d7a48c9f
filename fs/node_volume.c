/*
 * node_volume.c - volumes/: a volume's directory, info and control, its
 * snapshots/ and each snapshot's directory, state and info.
 *
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
#include <errno.h>
#include <string.h>

#include "nodes.h"

int list_volumes(const struct node *n, struct lister *l)
{
	g_auto(GStrv) names = NULL;
	int rc = snap_volume_list(node_engine(), &names);

	lister_add_names(l, n, names, NODE_VOLUME);
	return rc < 0 ? rc : 0;
}

/* The volume's directory and what it holds: the volume's owner and id. */
int stat_of_volume(const struct node *n, struct stat *st)
{
	struct snap_volume_stat vs;
	int rc = snap_volume_stat(node_engine(), n->vol, &vs);

	if (rc < 0)
		return rc;
	fill_node(st, n, vs.id);
	own(st, vs.uid, vs.gid);
	if (vs.mtime)
		fill_times(st, vs.mtime);
	return 0;
}

/* chown of a volume gives it (and all it has) to an account */
int chown_volume(const struct node *n, uid_t uid, gid_t gid)
{
	return snap_volume_chown(node_engine(), n->vol, uid, gid);
}

int read_volume_info(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_volume_info(node_engine(), n->vol, data), data, len);
}

int read_volume_control(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_volume_control_text(node_engine(), n->vol, data),
			data, len);
}

int write_volume_control(const struct node *n, const char *buf, size_t size)
{
	return snap_volume_control(node_engine(), n->vol, buf, size);
}

/* ---- snapshots/ ------------------------------------------------------- */

void dir_copy_free(struct dir_copy *dc)
{
	if (!dc)
		return;
	g_free(dc->ents);
	g_free(dc);
}

/* Entries of snapshots/ from offset l->off on: ".", "..", then by name. */
int list_snapshots(const struct node *n, struct lister *l)
{
	struct dir_copy *dc = (struct dir_copy *)(uintptr_t)l->fi->fh;
	g_autofree struct dir_copy *local = NULL;
	int rc, i;

	if (!dc)
		dc = local = g_new0(struct dir_copy, 1);
	if (l->off == 0 || !dc->ents) {
		g_clear_pointer(&dc->ents, g_free);
		dc->n = 0;
		rc = snap_volume_stat(node_engine(), n->vol, &dc->vs);
		if (rc == 0)
			rc = snap_snapshot_dirents(node_engine(), n->vol, &dc->ents);
		if (rc < 0)
			return rc;
		dc->n = rc;
		dc->self = l->self;
	}
	for (i = (int)l->off; i < dc->n + 2; i++) {
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
		if (l->filler(l->buf, name, &est, i + 1, FUSE_FILL_DIR_PLUS))
			break;
	}
	if (local)
		g_free(local->ents);
	return 0;
}

/* A snapshot's directory and files (and its wait file): its owner, id
 * and creation time. */
int stat_of_snapshot(const struct node *n, struct stat *st)
{
	struct snap_snapshot_stat ss;
	int rc = snap_snapshot_stat(node_engine(), n->vol, n->snap, &ss);

	if (rc < 0)
		return rc;
	fill_node(st, n, ss.id);
	own(st, ss.uid, ss.gid);
	fill_times(st, ss.created_at);
	return 0;
}

/* @name: what the path says when the name is not valid (EINVAL then) */
int mkdir_snapshot(const struct node *n, const char *name)
{
	return snap_snapshot_take(node_engine(), n->vol,
				  n->snap[0] ? n->snap : name);
}

int rmdir_snapshot(const struct node *n)
{
	return snap_snapshot_delete(node_engine(), n->vol, n->snap);
}

int rename_snapshot(const char *path, const struct node *from,
		    const struct node *to, const char *name)
{
	if (strcmp(from->vol, to->vol) != 0)
		return node_refuse("rename", path, EXDEV,
				   "a snapshot stays with its volume");
	return snap_snapshot_rename(node_engine(), from->vol, from->snap, name);
}

int read_snapshot_state(const struct node *n, char **data, size_t *len)
{
	struct snap_snapshot_stat ss;
	int rc = snap_snapshot_stat(node_engine(), n->vol, n->snap, &ss);

	*data = NULL;
	if (rc < 0)
		return rc;
	*data = g_strdup_printf("%s\n", snap_state_name(ss.state));
	*len = strlen(*data);
	return 0;
}

int read_snapshot_info(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_snapshot_info(node_engine(), n->vol, n->snap, data),
			data, len);
}
