/*
 * tree.c - `snapctl tree VM`: the VM's snapshot tree, drawn from each
 * vms/<vm>/snapshots/<snap>/info (its parent and children), the current
 * snapshot marked.
 *
 *   web
 *   ├── s1  disk  Ready  2026-11-22T07:00:00Z
 *   │   ├── s2  disk+memory  Ready  2026-11-22T08:00:00Z  <- current
 *   │   └── s3  disk  Ready  2026-11-22T09:00:00Z
 *   └── s4  disk  Ready  2026-11-22T10:00:00Z
 *
 * Children are ordered by creation time, then name.  A snapshot whose
 * parent is not readable (deleted meanwhile) is drawn as a root.  Line
 * drawing is UTF-8 when the locale's is, ASCII otherwise.  --json gives
 * {"vm", "current", "snapshots": [roots, each with nested "children"]}.
 */
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <stdio.h>
#include <string.h>

#include "snapctl.h"

struct glyphs {
	const char *branch, *last, *pipe, *space, *current;
};

static const struct glyphs utf8_glyphs = { "├── ", "└── ", "│   ", "    ",
					   "  ← current" };
static const struct glyphs ascii_glyphs = { "|-- ", "`-- ", "|   ", "    ",
					    "  <- current" };

static void info_free(gpointer info)
{
	json_object_put(info);
}

/* name -> info object (owned by the table) */
static int read_infos(const struct snapctl *ctl, const char *vm,
		      GHashTable *infos)
{
	g_autofree char *dir = g_strdup_printf("vms/%s/snapshots", vm);
	g_auto(GStrv) names = NULL;
	int rc = mount_list(ctl, dir, MOUNT_LIST_DIRS, &names);

	if (rc < 0)
		return rc;
	for (char **n = names; *n; n++) {
		g_autofree char *path = g_strdup_printf("%s/%s/info", dir, *n);
		struct json_object *info;

		rc = mount_read_json(ctl, path, &info);
		if (rc == -ENOENT)
			continue; /* deleted meanwhile */
		if (rc < 0)
			return rc;
		g_hash_table_insert(infos, g_strdup(*n), info);
	}
	return 0;
}

static gint by_creation(gconstpointer a, gconstpointer b, gpointer data)
{
	GHashTable *infos = data;
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	const char *tx = json_get_str(g_hash_table_lookup(infos, x), "created_at");
	const char *ty = json_get_str(g_hash_table_lookup(infos, y), "created_at");
	int c = g_strcmp0(tx, ty); /* ISO times compare as text */

	return c ? c : strcmp(x, y);
}

/* The names of @parent's children (NULL: the roots) that are in @infos,
 * in creation order (g_ptr_array_unref; borrowed names). */
static GPtrArray *children_of(GHashTable *infos, const char *parent)
{
	GPtrArray *kids = g_ptr_array_new();
	GHashTableIter it;
	gpointer key, value;

	g_hash_table_iter_init(&it, infos);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		const char *p = json_get_str(value, "parent");

		if (parent ? g_strcmp0(p, parent) == 0 :
			     !p || !g_hash_table_contains(infos, p))
			g_ptr_array_add(kids, key);
	}
	g_ptr_array_sort_with_data(kids, by_creation, infos);
	return kids;
}

static bool is_current(struct json_object *info)
{
	struct json_object *v;

	return json_object_object_get_ex(info, "current", &v) &&
	       json_object_get_boolean(v);
}

/* Nested {"name", "type", "state", "created_at", "current", "children"}.
 * @depth bounds a parent loop that a broken catalog could show. */
static struct json_object *subtree_json(GHashTable *infos, const char *name,
					int depth)
{
	struct json_object *info = g_hash_table_lookup(infos, name);
	struct json_object *node = json_object_new_object(), *kids;
	g_autoptr(GPtrArray) names = children_of(infos, name);

	json_object_object_add(node, "name", json_object_new_string(name));
	json_object_object_add(node, "type",
			       json_object_new_string(json_get_str(info, "type") ?: ""));
	json_object_object_add(node, "state",
			       json_object_new_string(json_get_str(info, "state") ?: ""));
	json_object_object_add(node, "created_at",
			       json_object_new_string(json_get_str(info, "created_at") ?: ""));
	json_object_object_add(node, "current",
			       json_object_new_boolean(is_current(info)));
	kids = json_object_new_array();
	for (guint i = 0; depth < 4096 && i < names->len; i++)
		json_object_array_add(kids, subtree_json(infos, names->pdata[i],
							 depth + 1));
	json_object_object_add(node, "children", kids);
	return node;
}

static void draw(GHashTable *infos, const char *name, GString *prefix,
		 bool last, const struct glyphs *g, int depth)
{
	struct json_object *info = g_hash_table_lookup(infos, name);
	g_autoptr(GPtrArray) names = children_of(infos, name);
	gsize len = prefix->len;

	printf("%s%s%s  %s  %s  %s%s\n", prefix->str, last ? g->last : g->branch,
	       name, json_get_str(info, "type") ?: "?",
	       json_get_str(info, "state") ?: "?",
	       json_get_str(info, "created_at") ?: "?",
	       is_current(info) ? g->current : "");
	g_string_append(prefix, last ? g->space : g->pipe);
	for (guint i = 0; depth < 4096 && i < names->len; i++)
		draw(infos, names->pdata[i], prefix, i + 1 == names->len, g,
		     depth + 1);
	g_string_truncate(prefix, len);
}

int cmd_tree(struct snapctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	g_autoptr(GHashTable) infos = g_hash_table_new_full(
		g_str_hash, g_str_equal, g_free, info_free);
	g_autoptr(GPtrArray) roots = NULL;
	g_autofree char *vm_info = NULL;
	struct json_object *info = NULL;
	const char *vm, *current;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "j", options, NULL)) != -1) {
		if (opt != 'j') {
			fprintf(stderr, "usage: snapctl tree [--json] VM\n");
			return -EINVAL;
		}
		ctl->json = true;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: snapctl tree [--json] VM\n");
		return -EINVAL;
	}
	vm = argv[optind];
	vm_info = g_strdup_printf("vms/%s/info", vm);
	rc = strchr(vm, '/') ? -ENOENT : mount_read_json(ctl, vm_info, &info);
	if (rc == 0)
		rc = read_infos(ctl, vm, infos);
	if (rc < 0) {
		fprintf(stderr, "snapctl: tree: VM '%s': %s\n", vm, g_strerror(-rc));
		json_object_put(info);
		return rc;
	}
	current = json_get_str(info, "current_snapshot");
	roots = children_of(infos, NULL);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object(), *arr;

		json_object_object_add(doc, "vm", json_object_new_string(vm));
		json_object_object_add(doc, "current",
				       current ? json_object_new_string(current) : NULL);
		arr = json_object_new_array();
		for (guint i = 0; i < roots->len; i++)
			json_object_array_add(arr, subtree_json(infos, roots->pdata[i], 0));
		json_object_object_add(doc, "snapshots", arr);
		print_json(doc);
		json_object_put(doc);
	} else {
		const struct glyphs *g = !strcmp(nl_langinfo(CODESET), "UTF-8") ?
						 &utf8_glyphs : &ascii_glyphs;
		g_autoptr(GString) prefix = g_string_new(NULL);

		printf("%s%s\n", vm, roots->len ? "" : "  (no snapshots)");
		for (guint i = 0; i < roots->len; i++)
			draw(infos, roots->pdata[i], prefix, i + 1 == roots->len, g, 0);
	}
	json_object_put(info);
	return 0;
}
