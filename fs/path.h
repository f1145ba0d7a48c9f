/*
 * path.h - what a path under the mount names (pure parser, fuzzed).
 *
 * The tree is ../shared/TREE.md.  path_parse() only looks at the string;
 * whether the volume or snapshot exists is the engine's business.
 */
#ifndef SNAPFS_PATH_H
#define SNAPFS_PATH_H

#include <stdbool.h>
#include <stdint.h>

#include "snap.h"

enum node_kind {
	NODE_NONE,
	NODE_ROOT,
	NODE_README,
	NODE_EVENTS,
	NODE_CLOCK, /* .clock, only with -o testclock */
	NODE_ALERTS,
	NODE_ALERT,
	NODE_JOBS,
	NODE_JOB,
	NODE_VOLUMES,
	NODE_VOLUME,
	NODE_VOLUME_INFO,
	NODE_VOLUME_CONTROL,
	NODE_SNAPSHOTS,
	NODE_SNAPSHOT,
	NODE_SNAPSHOT_STATE,
	NODE_SNAPSHOT_INFO,
	NODE_BACKED_UP,
	NODE_BACKED_UP_VOLUMES,
	NODE_BACKED_UP_VOLUME,
	NODE_BACKED_UP_IMAGE,
	NODE_BACKED_UP_MANIFEST,
	NODE_VMS,
	NODE_VM,
	NODE_VM_INFO,
	NODE_VM_STATE,
	NODE_VM_CONTROL,
	NODE_VM_OPTIONS,
	NODE_VM_VOLUMES,
	NODE_VM_VOLUME_LINK,
	NODE_VM_SNAPSHOTS,
	NODE_VM_CURRENT,
	NODE_VM_SNAPSHOT,
	NODE_VM_SNAPSHOT_INFO,
	NODE_VM_SNAPSHOT_PARENT,
	NODE_LIMITS,   /* limits: snapshots each account may store */
	NODE_POLICIES, /* policies/ */
	NODE_POLICY,   /* policies/<name> */
	/* new kinds go last: a kind's number is part of inode numbers */
	/*
	 * wait/<vol>/<snap>: a read blocks until the backup ends.  Not under
	 * the snapshot's directory: libfuse's high-level API read-locks every
	 * node of a path while an operation on it runs, so a reader blocked
	 * there would hold rmdir and mv of the snapshot, and then every
	 * lookup in it, until the backup ended.
	 */
	NODE_SNAPSHOT_WAIT,
	NODE_CACHEDIR_TAG, /* CACHEDIR.TAG in volumes/ vms/ jobs/ alerts/ policies/ */
	NODE_WAIT,	  /* wait/ (lists nothing) */
	NODE_WAIT_VOLUME, /* wait/<vol> (lists nothing) */
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
	uint64_t id;
	bool read_only;
};

/**
 * path_parse() - classify @path ("/", "/volumes/v/snapshots/s"...)
 *
 * Return: 0; -ENOENT names no place in the tree; -EINVAL the place
 * exists in the tree's shape but a volume or snapshot name in it is not a
 * valid name (out->kind still says which place, so mkdir can say EINVAL);
 * -ENAMETOOLONG a component longer than the kernel's NAME_MAX.
 */
int path_parse(const char *path, struct node *out);

/** node_is_link() - whether nodes of @kind are symbolic links. */
bool node_is_link(enum node_kind kind);

/** node_is_dir() - whether nodes of @kind are directories. */
bool node_is_dir(enum node_kind kind);

#endif
