/*
 * nodes.c - the table of node kinds (nodes.def's OPS() rows) and the
 * helpers its handlers share: stat filling, listings, rejections.
 */
#include <string.h>

#include "nodes.h"

const struct node_ops node_ops[NODE_LAST] = {
#define OPS(...) { __VA_ARGS__ }
#define NODE(kind, shape, ops) [NODE_##kind] = ops,
#include "nodes.def"
#undef NODE
#undef OPS
};

struct snapfs_ctx *node_ctx(void)
{
	return fuse_get_context()->private_data;
}

struct snap_engine *node_engine(void)
{
	return node_ctx()->eng;
}

int node_refuse(const char *op, const char *path, int err, const char *why)
{
	snap_event_reject(node_engine(), op, path[0] == '/' ? path + 1 : path,
			  err, why);
	return -err;
}

int node_stat(const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	fill_times(st, node_ctx()->mount_time);
	if (n->kind <= NODE_NONE || n->kind >= NODE_LAST)
		return -ENOENT;
	return node_ops[n->kind].stat(n, st);
}

int node_text_len(int rc, char **data, size_t *len)
{
	if (rc < 0)
		return rc;
	*len = strlen(*data);
	return 0;
}

bool node_writable(enum node_kind kind)
{
	return kind > NODE_NONE && kind < NODE_LAST && node_ops[kind].write;
}

/* ---- attributes ------------------------------------------------------- */

void fill_dir(struct stat *st, ino_t ino)
{
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_ino = ino;
}

void fill_file(struct stat *st, ino_t ino, mode_t mode, off_t size)
{
	st->st_mode = S_IFREG | mode;
	st->st_nlink = 1;
	st->st_ino = ino;
	st->st_size = size;
}

void fill_times(struct stat *st, time_t t)
{
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = t;
}

void fill_node(struct stat *st, const struct node *n, uint64_t id)
{
	if (node_is_dir(n->kind))
		fill_dir(st, INO(id, n->kind));
	else
		fill_file(st, INO(id, n->kind),
			  node_writable(n->kind) ? 0644 : 0444, 0);
}

void own(struct stat *st, uid_t uid, gid_t gid)
{
	st->st_uid = uid;
	st->st_gid = gid;
	if (S_ISDIR(st->st_mode))
		st->st_mode = S_IFDIR | 0770;
	else if (S_ISREG(st->st_mode))
		st->st_mode = S_IFREG | ((st->st_mode & 0222) ? 0660 : 0440);
}

int stat_copies_dir(const struct node *n, struct stat *st, int listed)
{
	struct snap_volume_stat vs;
	int rc;

	if (listed < 0)
		return listed;
	if (listed == 0)
		return -ENOENT;
	rc = snap_volume_stat(node_engine(), n->vol, &vs);
	fill_dir(st, INO(rc == 0 ? vs.id : 0, n->kind));
	if (rc == 0) {
		own(st, vs.uid, vs.gid);
		st->st_mode = S_IFDIR | 0750;
	}
	return 0;
}

/* The fixed places of the tree (root's directories, README, events...). */
int stat_plain(const struct node *n, struct stat *st)
{
	fill_node(st, n, 0);
	return 0;
}

/* ---- listings --------------------------------------------------------- */

void lister_add(struct lister *l, const char *name, ino_t ino, bool dir)
{
	/* the kernel takes the type from the next lookup; S_IFREG is a hint */
	struct stat st = { .st_ino = ino, .st_mode = dir ? S_IFDIR : S_IFREG };

	l->filler(l->buf, name, &st, 0, 0);
}

void lister_add_names(struct lister *l, const struct node *parent,
		      char **names, enum node_kind kind)
{
	for (; names && *names; names++) {
		struct node child;
		struct stat st;

		node_child(parent, kind, *names, &child);
		if (node_stat(&child, &st) == 0)
			lister_add(l, *names, st.st_ino, node_is_dir(kind));
	}
}

/* The children with fixed names, in the table's order, that stat. */
int list_fixed(const struct node *n, struct lister *l)
{
	for (enum node_kind k = NODE_ROOT; k < NODE_LAST; k++) {
		const struct node_shape *s = &node_shapes[k];
		struct node child;
		struct stat st;

		if (!s->name || s->in_tagged || s->parent != n->kind)
			continue;
		node_child(n, k, s->name, &child);
		if (node_stat(&child, &st) == 0)
			lister_add(l, s->name, st.st_ino, s->dir);
	}
	return 0;
}
