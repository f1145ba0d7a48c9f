/*
 * path.h - what a path under the mount names (pure parser, fuzzed).
 *
 * The tree is docs/tree.md; nodes.def holds it as one row per node kind.
 * path_parse() only looks at the string; whether the volume or snapshot
 * exists is the engine's business.
 */
#ifndef SNAPFS_PATH_H
#define SNAPFS_PATH_H

#include <stdbool.h>
#include <stdint.h>

#include "snap.h"

/* NODE_NONE, then one kind per row of nodes.def, in its order. */
enum node_kind {
	NODE_NONE,
#define NODE(kind, shape, ops) NODE_##kind,
#include "nodes.def"
#undef NODE
	NODE_LAST
};

/**
 * struct node - a parsed path
 * @vol, @snap: names, when the kind has them (a VM's volume link has @vol;
 *              a policy's name is in @snap)
 * @vm:         the VM's name for the vms/ kinds
 * @id:         alert or job id; for NODE_CACHEDIR_TAG the kind of the
 *              directory that holds it
 * @read_only:  the path lies under backed-up/ (writes there are EROFS)
 */
struct node {
	enum node_kind kind;
	char vol[SNAP_NAME_MAX + 1];
	char snap[SNAP_NAME_MAX + 1];
	char vm[SNAP_NAME_MAX + 1];
	char host[SNAP_NAME_MAX + 1]; /* backed-up/hosts/<host>/ */
	uint64_t id;
	bool read_only;
};

/* Which field of struct node a path component of a kind fills. */
enum node_take {
	TAKE_NONE,	  /* a fixed name */
	TAKE_VOL,	  /* a volume's name into @vol */
	TAKE_SNAP,	  /* a snapshot's (or policy's) name into @snap */
	TAKE_VM,	  /* a VM's name into @vm */
	TAKE_ID,	  /* a decimal id (no sign, no leading zero) into @id */
	TAKE_PARENT_KIND, /* fixed name; @id says the directory's kind */
	TAKE_HOST,	  /* another host's name into @host */
	TAKE_LAST
};

/**
 * struct node_shape - where a kind sits in the tree (nodes.def's SHAPE())
 * @parent:     the kind of the directory that holds it (NODE_NONE: root)
 * @in_tagged:  instead of @parent: in every directory marked @tagged
 * @name:       its fixed name, or NULL when the path names it (@take)
 * @take:       the field the path's component fills
 * @suffix:     a named component ends so; the name is what comes before
 * @user_named: users choose these names (mkdir, create, mv): a bad name
 *              as the last component is -EINVAL, not -ENOENT
 * @dir, @link: a directory; a symbolic link (else a regular file)
 * @read_only:  it and everything below it refuse writes (EROFS)
 * @tagged:     holds a CACHEDIR.TAG
 */
struct node_shape {
	enum node_kind parent;
	bool in_tagged;
	const char *name;
	enum node_take take;
	const char *suffix;
	bool user_named;
	bool dir, link;
	bool read_only;
	bool tagged;
};

/* The shape of each kind, indexed by kind (NODE_NONE's is empty). */
extern const struct node_shape node_shapes[NODE_LAST];

/**
 * path_parse() - classify @path ("/", "/volumes/v/snapshots/s"...)
 *
 * Walks node_shapes[] one component at a time: a fixed name first, then a
 * name the path carries.  Names before the last component are always
 * valid names.
 * Return: 0; -ENOENT names no place in the tree; -EINVAL the place
 * exists in the tree's shape but a volume or snapshot name in it is not a
 * valid name (out->kind still says which place, so mkdir can say EINVAL);
 * -ENAMETOOLONG a component longer than the kernel's NAME_MAX.
 */
int path_parse(const char *path, struct node *out);

/**
 * node_child() - @parent's child of @kind called @name, into @out
 *
 * @name goes into the field @kind takes (truncated to fit; the engine's
 * names always fit).  For listings: no check that @kind may sit there.
 */
void node_child(const struct node *parent, enum node_kind kind,
		const char *name, struct node *out);

/** node_is_link() - whether nodes of @kind are symbolic links. */
bool node_is_link(enum node_kind kind);

/** node_is_dir() - whether nodes of @kind are directories. */
bool node_is_dir(enum node_kind kind);

#endif
