/*
 * node_images.c - images/: the raw point-in-time view of each repository
 * backup, images/volumes/<vol>/<snap>.raw, read-only, for single-file
 * restore (`mount -o loop,ro`).  Only with -o repository=on (elsewhere
 * images/ does not exist); a backup kept as a full qcow2 file has no raw
 * view (read its backed-up/ image instead).
 *
 * A view is served from the engine (snap_raw_read(), holes as zeros,
 * SEEK_DATA/SEEK_HOLE from the index: ops.c's lseek); it never changes,
 * so the kernel keeps its cache across opens (keep_cache).
 */
#include <errno.h>

#include "nodes.h"

/*
 * CACHEDIR.TAG (bford.info/cachedir): the first 43 bytes are what tools
 * check.  images/ holds the same bytes as backed-up/, uncompressed, at
 * their virtual size: a whole-mount backup skips it.
 */
static const char images_tag_text[] =
	"Signature: 8a477f597d28d172789f06886806bc55\n"
	"# This file is a cache directory tag created by snapfs.\n"
	"# images/ shows the backups of backed-up/ again, as raw disk images of\n"
	"# their virtual size: back up backed-up/ (tar, restic and borg skip\n"
	"# this one with --exclude-caches).\n"
	"# For information about cache directory tags, see:\n"
	"#\thttps://bford.info/cachedir/\n";

/* images/ and images/volumes/: only on a mount with a repository */
int stat_images_dir(const struct node *n, struct stat *st)
{
	if (!snap_raw_available(node_engine()))
		return -ENOENT;
	fill_dir(st, INO(0, n->kind));
	return 0;
}

/* images/ lists volumes/ (its CACHEDIR.TAG is found by name) */
int list_images(const struct node *n, struct lister *l)
{
	lister_add(l, node_shapes[NODE_IMAGES_VOLUMES].name,
		   INO(0, NODE_IMAGES_VOLUMES), true);
	return 0;
}

int list_images_volumes(const struct node *n, struct lister *l)
{
	g_auto(GStrv) names = NULL;
	int rc = snap_raw_volumes(node_engine(), &names);

	lister_add_names(l, n, names, NODE_IMAGES_VOLUME);
	return rc < 0 ? rc : 0;
}

/* A volume's raw views: there while it has one, even once it is gone. */
int stat_images_volume(const struct node *n, struct stat *st)
{
	g_auto(GStrv) names = NULL;

	return stat_copies_dir(n, st, snap_raw_list(node_engine(), n->vol,
						     &names));
}

int list_images_volume(const struct node *n, struct lister *l)
{
	g_auto(GStrv) names = NULL;
	int rc = snap_raw_list(node_engine(), n->vol, &names);

	if (rc < 0)
		return rc;
	for (char **p = names; p && *p; p++) {
		g_autofree char *name = g_strconcat(*p, ".raw", NULL);
		struct node f;
		struct stat fst;

		node_child(n, NODE_IMAGE_RAW, *p, &f);
		if (node_stat(&f, &fst) == 0)
			lister_add(l, name, fst.st_ino, false);
	}
	return 0;
}

/* <snap>.raw: the virtual size; blocks: the chunks that are not holes;
 * mtime: backed_up_at; inode: the snapshot's.  Stable across remounts. */
int stat_image_raw(const struct node *n, struct stat *st)
{
	struct snap_raw_image img;
	struct snap_volume_stat vs;
	int rc = snap_raw_stat(node_engine(), n->vol, n->snap, &img);

	if (rc < 0)
		return rc;
	fill_file(st, INO(img.id, n->kind), 0444, (off_t)img.size);
	if (snap_volume_stat(node_engine(), n->vol, &vs) == 0)
		own(st, vs.uid, vs.gid);
	st->st_atim = st->st_mtim = st->st_ctim = img.mtime;
	st->st_blocks = (blkcnt_t)img.blocks;
	return 0;
}

int open_image_raw(const struct node *n, struct open_file *of,
		   struct fuse_file_info *fi)
{
	int rc = snap_raw_open(node_engine(), n->vol, n->snap, &of->raw);

	if (rc < 0)
		return rc;
	fi->keep_cache = 1;
	return 0;
}

int stat_images_tag(const struct node *n, struct stat *st)
{
	if (!snap_raw_available(node_engine()))
		return -ENOENT;
	fill_file(st, INO(0, n->kind), 0444, sizeof(images_tag_text) - 1);
	return 0;
}

int read_images_tag(const struct node *n, char **data, size_t *len)
{
	*data = g_strdup(images_tag_text);
	*len = sizeof(images_tag_text) - 1;
	return 0;
}
