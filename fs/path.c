/*
 * path.c - the path parser: split, match the tree's shape, check names.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"

#define MAX_DEPTH 6

bool node_is_dir(enum node_kind kind)
{
	switch (kind) {
	case NODE_ROOT:
	case NODE_ALERTS:
	case NODE_JOBS:
	case NODE_VOLUMES:
	case NODE_VOLUME:
	case NODE_SNAPSHOTS:
	case NODE_SNAPSHOT:
	case NODE_BACKED_UP:
	case NODE_BACKED_UP_VOLUMES:
	case NODE_BACKED_UP_VOLUME:
	case NODE_VMS:
	case NODE_VM:
	case NODE_VM_VOLUMES:
	case NODE_VM_SNAPSHOTS:
	case NODE_VM_SNAPSHOT:
	case NODE_POLICIES:
	case NODE_WAIT:
	case NODE_WAIT_VOLUME:
		return true;
	default:
		return false;
	}
}

bool node_is_link(enum node_kind kind)
{
	return kind == NODE_VM_VOLUME_LINK || kind == NODE_VM_CURRENT ||
	       kind == NODE_VM_SNAPSHOT_PARENT;
}

/*
 * The top directories that are live views rather than backups each hold a
 * CACHEDIR.TAG (bford.info/cachedir): tar, restic and borg pointed at the
 * whole mount skip them with --exclude-caches, and read backed-up/.  The
 * kind of the directory @name, or NODE_NONE when it holds no tag.
 */
static enum node_kind tagged_dir(const char *name)
{
	static const struct {
		const char *name;
		enum node_kind kind;
	} dirs[] = {
		{ "volumes", NODE_VOLUMES }, { "vms", NODE_VMS },
		{ "jobs", NODE_JOBS },	     { "alerts", NODE_ALERTS },
		{ "policies", NODE_POLICIES },
	};

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (!strcmp(name, dirs[i].name))
			return dirs[i].kind;
	return NODE_NONE;
}

/* A decimal id without sign, leading zero or overflow. */
static int parse_id(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '0' || strlen(s) > 19)
		return -ENOENT;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return -ENOENT;
	v = strtoull(s, &end, 10);
	if (*end)
		return -ENOENT;
	*out = v;
	return 0;
}

/* Copy a volume or snapshot name; -EINVAL when it is not a valid name. */
static int take_name(char *dst, const char *src)
{
	if (snap_name_valid(src) < 0)
		return -EINVAL;
	strcpy(dst, src);
	return 0;
}

/* Strip @suffix from @name into @dst; -ENOENT when it does not end so. */
static int take_suffixed(char *dst, const char *name, const char *suffix)
{
	size_t len = strlen(name), sl = strlen(suffix);
	char buf[SNAP_NAME_MAX + 16];

	if (len <= sl || strcmp(name + len - sl, suffix) != 0)
		return -ENOENT;
	if (len - sl > SNAP_NAME_MAX)
		return -ENOENT;
	memcpy(buf, name, len - sl);
	buf[len - sl] = '\0';
	return take_name(dst, buf) < 0 ? -ENOENT : 0;
}

int path_parse(const char *path, struct node *out)
{
	char buf[4096];
	char *c[MAX_DEPTH + 1];
	int n = 0, rc;
	char *p, *save = NULL;

	memset(out, 0, sizeof(*out));
	if (!path || path[0] != '/')
		return -ENOENT;
	if (strlen(path) >= sizeof(buf)) {
		/* too long to copy: still say which limit it broke */
		for (const char *q = path; *q;) {
			size_t len = strcspn(q, "/");

			if (len > 255)
				return -ENAMETOOLONG;
			q += len + (q[len] == '/');
		}
		return -ENOENT;
	}
	strcpy(buf, path);
	for (p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (strlen(p) > 255)
			return -ENAMETOOLONG;
		if (n == MAX_DEPTH)
			return -ENOENT;
		c[n++] = p;
	}

	if (n == 0) {
		out->kind = NODE_ROOT;
		return 0;
	}
	if (n == 1) {
		if (!strcmp(c[0], "README"))
			out->kind = NODE_README;
		else if (!strcmp(c[0], "events"))
			out->kind = NODE_EVENTS;
		else if (!strcmp(c[0], ".clock"))
			out->kind = NODE_CLOCK;
		else if (!strcmp(c[0], "alerts"))
			out->kind = NODE_ALERTS;
		else if (!strcmp(c[0], "jobs"))
			out->kind = NODE_JOBS;
		else if (!strcmp(c[0], "volumes"))
			out->kind = NODE_VOLUMES;
		else if (!strcmp(c[0], "vms"))
			out->kind = NODE_VMS;
		else if (!strcmp(c[0], "limits"))
			out->kind = NODE_LIMITS;
		else if (!strcmp(c[0], "policies"))
			out->kind = NODE_POLICIES;
		else if (!strcmp(c[0], "wait"))
			out->kind = NODE_WAIT;
		else if (!strcmp(c[0], "backed-up")) {
			out->kind = NODE_BACKED_UP;
			out->read_only = true;
		} else
			return -ENOENT;
		return 0;
	}

	/* before the names: the tag takes its name in those directories */
	if (!strcmp(c[1], "CACHEDIR.TAG") && tagged_dir(c[0]) != NODE_NONE) {
		if (n != 2)
			return -ENOENT;
		out->kind = NODE_CACHEDIR_TAG;
		out->id = tagged_dir(c[0]);
		return 0;
	}

	if (!strcmp(c[0], "policies")) {
		if (n != 2)
			return -ENOENT;
		out->kind = NODE_POLICY;
		return take_name(out->snap, c[1]);
	}

	if (!strcmp(c[0], "alerts") || !strcmp(c[0], "jobs")) {
		if (n != 2)
			return -ENOENT;
		out->kind = c[0][0] == 'a' ? NODE_ALERT : NODE_JOB;
		return parse_id(c[1], &out->id);
	}

	if (!strcmp(c[0], "volumes")) {
		rc = take_name(out->vol, c[1]);
		out->kind = NODE_VOLUME;
		if (n == 2)
			return rc;
		if (rc < 0)
			return -ENOENT;
		if (n == 3) {
			if (!strcmp(c[2], "info"))
				out->kind = NODE_VOLUME_INFO;
			else if (!strcmp(c[2], "control"))
				out->kind = NODE_VOLUME_CONTROL;
			else if (!strcmp(c[2], "snapshots"))
				out->kind = NODE_SNAPSHOTS;
			else
				return -ENOENT;
			return 0;
		}
		if (strcmp(c[2], "snapshots") != 0)
			return -ENOENT;
		rc = take_name(out->snap, c[3]);
		out->kind = NODE_SNAPSHOT;
		if (n == 4)
			return rc;
		if (rc < 0 || n != 5)
			return -ENOENT;
		if (!strcmp(c[4], "state"))
			out->kind = NODE_SNAPSHOT_STATE;
		else if (!strcmp(c[4], "info"))
			out->kind = NODE_SNAPSHOT_INFO;
		else
			return -ENOENT;
		return 0;
	}

	if (!strcmp(c[0], "vms")) {
		rc = take_name(out->vm, c[1]);
		out->kind = NODE_VM;
		if (n == 2)
			return rc;
		if (rc < 0)
			return -ENOENT;
		if (n == 3) {
			if (!strcmp(c[2], "info"))
				out->kind = NODE_VM_INFO;
			else if (!strcmp(c[2], "state"))
				out->kind = NODE_VM_STATE;
			else if (!strcmp(c[2], "control"))
				out->kind = NODE_VM_CONTROL;
			else if (!strcmp(c[2], "snapshot-options"))
				out->kind = NODE_VM_OPTIONS;
			else if (!strcmp(c[2], "volumes"))
				out->kind = NODE_VM_VOLUMES;
			else if (!strcmp(c[2], "snapshots"))
				out->kind = NODE_VM_SNAPSHOTS;
			else
				return -ENOENT;
			return 0;
		}
		if (!strcmp(c[2], "volumes")) {
			if (n != 4 || take_name(out->vol, c[3]) < 0)
				return -ENOENT;
			out->kind = NODE_VM_VOLUME_LINK;
			return 0;
		}
		if (strcmp(c[2], "snapshots") != 0)
			return -ENOENT;
		if (!strcmp(c[3], "current")) {
			/* a symlink, never a snapshot's directory */
			out->kind = NODE_VM_CURRENT;
			return n == 4 ? 0 : -ENOENT;
		}
		rc = take_name(out->snap, c[3]);
		out->kind = NODE_VM_SNAPSHOT;
		if (n == 4)
			return rc;
		if (rc < 0 || n != 5)
			return -ENOENT;
		if (!strcmp(c[4], "info"))
			out->kind = NODE_VM_SNAPSHOT_INFO;
		else if (!strcmp(c[4], "parent"))
			out->kind = NODE_VM_SNAPSHOT_PARENT;
		else
			return -ENOENT;
		return 0;
	}

	/* wait/<vol>/<snap>: outside volumes/, see NODE_SNAPSHOT_WAIT */
	if (!strcmp(c[0], "wait")) {
		if (n > 3 || take_name(out->vol, c[1]) < 0)
			return -ENOENT;
		out->kind = NODE_WAIT_VOLUME;
		if (n == 2)
			return 0;
		if (take_name(out->snap, c[2]) < 0)
			return -ENOENT;
		out->kind = NODE_SNAPSHOT_WAIT;
		return 0;
	}

	if (!strcmp(c[0], "backed-up")) {
		out->read_only = true;
		if (strcmp(c[1], "volumes") != 0)
			return -ENOENT;
		out->kind = NODE_BACKED_UP_VOLUMES;
		if (n == 2)
			return 0;
		if (take_name(out->vol, c[2]) < 0)
			return -ENOENT;
		out->kind = NODE_BACKED_UP_VOLUME;
		if (n == 3)
			return 0;
		if (n != 4)
			return -ENOENT;
		if (take_suffixed(out->snap, c[3], ".qcow2") == 0)
			out->kind = NODE_BACKED_UP_IMAGE;
		else if (take_suffixed(out->snap, c[3], ".json") == 0)
			out->kind = NODE_BACKED_UP_MANIFEST;
		else
			return -ENOENT;
		return 0;
	}
	return -ENOENT;
}
