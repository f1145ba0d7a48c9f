/*
 * path.c - the path parser: split, walk the tree's shape (nodes.def),
 * check names.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"

#define MAX_DEPTH 6

const struct node_shape node_shapes[NODE_LAST] = {
#define SHAPE(...) { __VA_ARGS__ }
#define NODE(kind, shape, ops) [NODE_##kind] = shape,
#include "nodes.def"
#undef NODE
#undef SHAPE
};

bool node_is_dir(enum node_kind kind)
{
	return kind > NODE_NONE && kind < NODE_LAST && node_shapes[kind].dir;
}

bool node_is_link(enum node_kind kind)
{
	return kind > NODE_NONE && kind < NODE_LAST && node_shapes[kind].link;
}

/* The name field of @n that @take fills, or NULL. */
static char *name_field(struct node *n, enum node_take take)
{
	static const size_t offsets[TAKE_LAST] = {
		[TAKE_VOL] = offsetof(struct node, vol),
		[TAKE_SNAP] = offsetof(struct node, snap),
		[TAKE_VM] = offsetof(struct node, vm),
		[TAKE_HOST] = offsetof(struct node, host),
	};

	return offsets[take] ? (char *)n + offsets[take] : NULL;
}

void node_child(const struct node *parent, enum node_kind kind,
		const char *name, struct node *out)
{
	char *field;

	*out = *parent;
	out->kind = kind;
	field = name_field(out, node_shapes[kind].take);
	if (field) {
		strncpy(field, name, SNAP_NAME_MAX);
		field[SNAP_NAME_MAX] = '\0';
	}
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

/*
 * Take component @c as the name or id a node of @shape carries, into @out.
 * Return: 0; -ENOENT not of that shape (suffix, id); -EINVAL not a valid
 * volume or snapshot name.
 */
static int take_component(const struct node_shape *shape, const char *c,
			  struct node *out)
{
	char buf[SNAP_NAME_MAX + 1];
	size_t len = strlen(c);

	if (shape->take == TAKE_ID)
		return parse_id(c, &out->id);
	if (shape->suffix) {
		size_t sl = strlen(shape->suffix);

		if (len <= sl || strcmp(c + len - sl, shape->suffix) != 0)
			return -ENOENT;
		if (len - sl > SNAP_NAME_MAX)
			return -ENOENT;
		memcpy(buf, c, len - sl);
		buf[len - sl] = '\0';
		c = buf;
	}
	if (snap_name_valid(c) < 0)
		return -EINVAL;
	strcpy(name_field(out, shape->take), c);
	return 0;
}

/* Whether nodes of @kind sit in directories of kind @dir. */
static bool is_child(enum node_kind kind, enum node_kind dir)
{
	const struct node_shape *s = &node_shapes[kind];

	return s->in_tagged ? node_shapes[dir].tagged : s->parent == dir;
}

/*
 * The child of a @dir node that component @c names, @last of the path,
 * into *@kind (and its name or id into @out).  A fixed name wins over a
 * name the path carries ("current" is no VM snapshot; CACHEDIR.TAG no
 * volume).  Return: 0; -ENOENT; -EINVAL a bad name where users choose
 * the names (*@kind says which place).
 */
static int walk_into(enum node_kind dir, const char *c, bool last,
		     struct node *out, enum node_kind *kind)
{
	enum node_kind k;

	for (k = NODE_ROOT; k < NODE_LAST; k++) {
		const struct node_shape *s = &node_shapes[k];

		if (s->name && is_child(k, dir) && !strcmp(c, s->name)) {
			if (s->take == TAKE_PARENT_KIND)
				out->id = dir;
			*kind = k;
			return 0;
		}
	}
	for (k = NODE_ROOT; k < NODE_LAST; k++) {
		const struct node_shape *s = &node_shapes[k];
		int rc;

		if (s->name || s->take == TAKE_NONE || !is_child(k, dir))
			continue;
		rc = take_component(s, c, out);
		if (rc == 0 || (rc == -EINVAL && last && s->user_named)) {
			*kind = k;
			return rc;
		}
	}
	return -ENOENT;
}

int path_parse(const char *path, struct node *out)
{
	char buf[4096];
	char *c[MAX_DEPTH + 1];
	int n = 0, i, rc;
	char *p, *save = NULL;
	enum node_kind kind = NODE_ROOT, next;

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

	for (i = 0; i < n; i++) {
		rc = walk_into(kind, c[i], i == n - 1, out, &next);
		if (rc == -EINVAL)
			out->kind = next;
		if (rc < 0)
			return rc;
		kind = next;
		/* read_only holds even when a later component fails (rename) */
		out->read_only |= node_shapes[kind].read_only;
	}
	out->kind = kind;
	return 0;
}
