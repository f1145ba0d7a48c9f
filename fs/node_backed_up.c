/*
 * node_backed_up.c - backed-up/: the complete backups on secondary
 * storage, read-only.
 *
 * Backed-up images and manifests are passed through from secondary
 * storage with keep_cache (images never change) and spliced when the
 * kernel can (ops.c's read_buf).
 *
 * backed-up/hosts/<host>/volumes/ is the same tree for another host's
 * backups on the same SECONDARY (issue 14): the same handlers, with the
 * node's @host passed to the engine; its files are owned by root (this
 * host's accounts do not own another host's volumes).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "nodes.h"

/*
 * Times of a backed-up/ directory (@vol NULL: backed-up/ and its volumes/):
 * those of its directory on secondary storage, which change when a backup
 * appears, is renamed or deleted, and not across remounts.
 */
static void backed_up_dir_times(const char *vol, struct stat *st)
{
	struct timespec t;

	if (snap_backup_dir_mtime(node_engine(), vol, &t) < 0)
		return;
	st->st_atim = st->st_mtim = st->st_ctim = t;
}

/* The host a node of backed-up/ is about: NULL for this host's. */
static const char *host_of(const struct node *n)
{
	return n->host[0] ? n->host : NULL;
}

/* A stable inode number for a directory named by @a and @b (another
 * host's, which has no catalog id). */
static ino_t named_ino(const struct node *n, const char *a, const char *b)
{
	g_autofree char *key = g_strconcat(a, "/", b, NULL);

	return INO((uint64_t)g_str_hash(key) + 1, n->kind);
}

/* backed-up/, backed-up/volumes/ and backed-up/hosts/ */
int stat_backed_up_dir(const struct node *n, struct stat *st)
{
	fill_dir(st, INO(0, n->kind));
	backed_up_dir_times(NULL, st);
	return 0;
}

int list_backed_up_volumes(const struct node *n, struct lister *l)
{
	g_auto(GStrv) names = NULL;
	int rc = snap_backup_volumes(node_engine(), host_of(n), &names);

	lister_add_names(l, n, names, host_of(n) ? NODE_BACKED_UP_HOST_VOLUME :
						   NODE_BACKED_UP_VOLUME);
	return rc < 0 ? rc : 0;
}

int list_backed_up_hosts(const struct node *n, struct lister *l)
{
	g_auto(GStrv) names = NULL;
	int rc = snap_backup_hosts(node_engine(), &names);

	lister_add_names(l, n, names, NODE_BACKED_UP_HOST);
	return rc < 0 ? rc : 0;
}

/* backed-up/hosts/<host>/ and its volumes/: there while the host has a
 * backup on SECONDARY. */
int stat_backed_up_host(const struct node *n, struct stat *st)
{
	g_auto(GStrv) names = NULL;
	int rc = snap_backup_volumes(node_engine(), n->host, &names);

	if (rc < 0)
		return rc;
	if (!names || !names[0])
		return -ENOENT;
	fill_dir(st, named_ino(n, n->host, ""));
	backed_up_dir_times(NULL, st);
	return 0;
}

/* A volume's backups: there while it has one, even once the volume is gone. */
int stat_backed_up_volume(const struct node *n, struct stat *st)
{
	g_auto(GStrv) names = NULL;
	int rc;

	if (host_of(n)) {
		rc = snap_backup_list(node_engine(), n->host, n->vol, &names);
		if (rc < 0)
			return rc;
		if (!names || !names[0])
			return -ENOENT;
		fill_dir(st, named_ino(n, n->host, n->vol));
		backed_up_dir_times(n->vol, st);
		return 0;
	}
	rc = stat_copies_dir(n, st, snap_backup_list(node_engine(), NULL,
						     n->vol, &names));
	if (rc == 0)
		backed_up_dir_times(n->vol, st);
	return rc;
}

/* <snap>.qcow2 and <snap>.json of each backup that stats */
int list_backed_up_volume(const struct node *n, struct lister *l)
{
	static const enum node_kind own[] = { NODE_BACKED_UP_IMAGE,
					      NODE_BACKED_UP_MANIFEST };
	static const enum node_kind other[] = { NODE_BACKED_UP_HOST_IMAGE,
						NODE_BACKED_UP_HOST_MANIFEST };
	const enum node_kind *kinds = host_of(n) ? other : own;
	g_auto(GStrv) names = NULL;
	int rc = snap_backup_list(node_engine(), host_of(n), n->vol, &names);

	if (rc < 0)
		return rc;
	for (char **p = names; p && *p; p++) {
		for (size_t i = 0; i < G_N_ELEMENTS(own); i++) {
			struct node f;
			struct stat fst;

			node_child(n, kinds[i], *p, &f);
			if (node_stat(&f, &fst) == 0) {
				g_autofree char *name = g_strconcat(
					*p, node_shapes[kinds[i]].suffix, NULL);

				lister_add(l, name, fst.st_ino, false);
			}
		}
	}
	return 0;
}

/* The image (@image) or manifest of backup @n on secondary storage, and
 * the backup's id (@id may be NULL). */
static int backed_up_path(const struct node *n, bool image, uint64_t *id,
			  char **path)
{
	g_autofree char *image_path = NULL, *manifest_path = NULL;
	int rc;

	rc = snap_backup_paths(node_engine(), host_of(n), n->vol, n->snap, id,
			       &image_path, &manifest_path);
	if (rc < 0)
		return rc;
	*path = image ? g_steal_pointer(&image_path) :
			g_steal_pointer(&manifest_path);
	return 0;
}

/* stat of a backed-up file: the file's own size and times, our inode. */
static int stat_backed_up_file(const struct node *n, bool image,
			       struct stat *st)
{
	g_autofree char *path = NULL;
	struct snap_volume_stat vs;
	struct stat real;
	uint64_t id;
	int rc;

	rc = backed_up_path(n, image, &id, &path);
	if (rc < 0)
		return rc;
	if (lstat(path, &real) < 0)
		return -errno;
	if (!S_ISREG(real.st_mode))
		return -ENOENT;
	fill_file(st, INO(id, n->kind), 0444, real.st_size);
	if (!host_of(n) && snap_volume_stat(node_engine(), n->vol, &vs) == 0)
		own(st, vs.uid, vs.gid);
	st->st_atim = real.st_mtim;
	st->st_mtim = real.st_mtim;
	st->st_ctim = real.st_mtim;
	st->st_blocks = real.st_blocks;
	return 0;
}

/*
 * Open a backed-up file.  Images are immutable: with @keep_cache the
 * kernel keeps its cache across opens; a manifest is rewritten by mv, so
 * it is re-read.
 */
static int open_backed_up_file(const struct node *n, bool image,
			       struct open_file *of, struct fuse_file_info *fi)
{
	g_autofree char *path = NULL;
	int rc = backed_up_path(n, image, NULL, &path);

	if (rc < 0)
		return rc;
	of->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (of->fd < 0)
		return -errno;
	fi->keep_cache = image;
	return 0;
}

/*
 * The image: a file on secondary storage, or a qcow2 synthesized from a
 * repository backup's index; either way the engine says its size and
 * mtime (the synthesized one's: backed_up_at), and our inode.
 */
int stat_backed_up_image(const struct node *n, struct stat *st)
{
	struct snap_backup_image img;
	struct snap_volume_stat vs;
	int rc;

	rc = snap_backup_image_stat(node_engine(), host_of(n), n->vol, n->snap,
				    &img);
	if (rc < 0)
		return rc;
	fill_file(st, INO(img.id, n->kind), 0444, (off_t)img.size);
	if (!host_of(n) && snap_volume_stat(node_engine(), n->vol, &vs) == 0)
		own(st, vs.uid, vs.gid);
	st->st_atim = img.mtime;
	st->st_mtim = img.mtime;
	st->st_ctim = img.mtime;
	st->st_blocks = (blkcnt_t)img.blocks;
	return 0;
}

/* Images never change: the kernel keeps its cache across opens. */
int open_backed_up_image(const struct node *n, struct open_file *of,
			 struct fuse_file_info *fi)
{
	int rc = snap_backup_open(node_engine(), host_of(n), n->vol, n->snap,
				  &of->fd,
				  &of->view);

	if (rc < 0)
		return rc;
	fi->keep_cache = 1;
	return 0;
}

int stat_backed_up_manifest(const struct node *n, struct stat *st)
{
	return stat_backed_up_file(n, false, st);
}

int open_backed_up_manifest(const struct node *n, struct open_file *of,
			    struct fuse_file_info *fi)
{
	return open_backed_up_file(n, false, of, fi);
}
