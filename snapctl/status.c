/*
 * status.c - `snapctl status`: the volumes and their snapshots by state,
 * the VMs, the queued and running jobs, the unresolved alerts.
 *
 * Everything is read from the mount's files, one file at a time, so the
 * picture is not one instant: an object that vanishes between the
 * listing and its read (a job that ends, a snapshot deleted) is left out,
 * as is one the account may not read (EACCES).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "snapctl.h"

/* The snapshot states of the tree (docs/tree.md), in the order shown. */
static const char *const states[] = { "BackingUp", "BackedUp", "BackupFailed",
				      "Damaged", "Destroying" };

/* Reads that may fail because the object went or is not ours: skip it. */
static bool skippable(int rc)
{
	return rc == -ENOENT || rc == -EACCES;
}

static void complain(const char *what, int rc)
{
	fprintf(stderr, "snapctl: status: %s: %s\n", what, g_strerror(-rc));
}

/* {"BackingUp": 0, ...} with every state present. */
static struct json_object *state_counts(void)
{
	struct json_object *counts = json_object_new_object();

	for (size_t i = 0; i < G_N_ELEMENTS(states); i++)
		json_object_object_add(counts, states[i], json_object_new_int(0));
	return counts;
}

static void count_state(struct json_object *counts, const char *state)
{
	struct json_object *n;

	if (json_object_object_get_ex(counts, state, &n))
		json_object_set_int(n, json_object_get_int(n) + 1);
	else
		json_object_object_add(counts, state, json_object_new_int(1));
}

/* One volume: {"name", "vm", "snapshots", "states": {...}}; adds its
 * snapshots to @totals (a state_counts()). */
static int volume_status(const struct snapctl *ctl, const char *vol,
			 void *totals, struct json_object **out)
{
	g_autofree char *info_path = g_strdup_printf("volumes/%s/info", vol);
	g_autofree char *snaps_path = g_strdup_printf("volumes/%s/snapshots", vol);
	g_auto(GStrv) snaps = NULL;
	struct json_object *info = NULL, *obj, *counts, *vm;
	int rc, n = 0;

	rc = mount_read_json(ctl, info_path, &info);
	if (rc < 0)
		return rc;
	rc = mount_list(ctl, snaps_path, MOUNT_LIST_DIRS, &snaps);
	if (rc < 0) {
		json_object_put(info);
		return rc;
	}
	counts = state_counts();
	for (char **s = snaps; *s; s++) {
		g_autofree char *state_path =
			g_strdup_printf("volumes/%s/snapshots/%s/state", vol, *s);
		g_autofree char *state = NULL;

		rc = mount_read_word(ctl, state_path, &state);
		if (skippable(rc))
			continue;
		if (rc < 0) {
			json_object_put(counts);
			json_object_put(info);
			return rc;
		}
		count_state(counts, state);
		count_state(totals, state);
		n++;
	}
	obj = json_object_new_object();
	json_object_object_add(obj, "name", json_object_new_string(vol));
	if (json_object_object_get_ex(info, "vm", &vm))
		json_object_object_add(obj, "vm", json_object_get(vm));
	else
		json_object_object_add(obj, "vm", NULL);
	json_object_object_add(obj, "snapshots", json_object_new_int(n));
	json_object_object_add(obj, "states", counts);
	json_object_put(info);
	*out = obj;
	return 0;
}

/* One VM: {"name", "state", "snapshots", "current"}. */
static int vm_status(const struct snapctl *ctl, const char *vm, void *unused,
		     struct json_object **out)
{
	g_autofree char *info_path = g_strdup_printf("vms/%s/info", vm);
	g_autofree char *state_path = g_strdup_printf("vms/%s/state", vm);
	g_autofree char *snaps_path = g_strdup_printf("vms/%s/snapshots", vm);
	g_autofree char *state = NULL;
	g_auto(GStrv) snaps = NULL;
	struct json_object *info = NULL, *obj, *cur;
	int rc, n = 0;

	rc = mount_read_json(ctl, info_path, &info);
	if (rc == 0)
		rc = mount_read_word(ctl, state_path, &state);
	if (rc == 0)
		rc = n = mount_list(ctl, snaps_path, MOUNT_LIST_DIRS, &snaps);
	if (rc < 0) {
		json_object_put(info);
		return rc;
	}
	obj = json_object_new_object();
	json_object_object_add(obj, "name", json_object_new_string(vm));
	json_object_object_add(obj, "state", json_object_new_string(state));
	json_object_object_add(obj, "snapshots", json_object_new_int(n));
	if (json_object_object_get_ex(info, "current_snapshot", &cur))
		json_object_object_add(obj, "current", json_object_get(cur));
	else
		json_object_object_add(obj, "current", NULL);
	json_object_put(info);
	*out = obj;
	return 0;
}

/* The JSON of every jobs/<id> or alerts/<id> (@dir), in id order. */
static int id_files(const struct snapctl *ctl, const char *dir,
		    struct json_object **out)
{
	g_auto(GStrv) ids = NULL;
	struct json_object *arr;
	int rc = mount_list(ctl, dir, MOUNT_LIST_IDS, &ids);

	if (rc < 0)
		return rc;
	arr = json_object_new_array();
	for (char **id = ids; *id; id++) {
		g_autofree char *path = g_strdup_printf("%s/%s", dir, *id);
		struct json_object *obj;

		rc = mount_read_json(ctl, path, &obj);
		/* an empty read: the job ended between open and read */
		if (skippable(rc) || rc == -EBADMSG)
			continue;
		if (rc < 0) {
			json_object_put(arr);
			return rc;
		}
		json_object_array_add(arr, obj);
	}
	*out = arr;
	return 0;
}

/* @fn(name, @arg) of each of @names into a JSON array; skippable ones
 * left out. */
static int each(const struct snapctl *ctl, char **names, const char *what,
		int (*fn)(const struct snapctl *, const char *, void *,
			  struct json_object **),
		void *arg, struct json_object **out)
{
	struct json_object *arr = json_object_new_array();

	for (char **p = names; *p; p++) {
		struct json_object *obj;
		int rc = fn(ctl, *p, arg, &obj);

		if (skippable(rc))
			continue;
		if (rc < 0) {
			g_autofree char *subject = g_strdup_printf("%s %s", what, *p);

			complain(subject, rc);
			json_object_put(arr);
			return rc;
		}
		json_object_array_add(arr, obj);
	}
	*out = arr;
	return 0;
}

/* The whole picture as the JSON document of --json. */
static int gather(const struct snapctl *ctl, struct json_object **out)
{
	g_auto(GStrv) vols = NULL, vms = NULL;
	struct json_object *doc, *arr, *totals;
	int rc;

	doc = json_object_new_object();
	json_object_object_add(doc, "mount", json_object_new_string(ctl->mount));
	totals = state_counts();
	json_object_object_add(doc, "snapshots", totals);

	rc = mount_list(ctl, "volumes", MOUNT_LIST_DIRS, &vols);
	if (rc < 0) {
		complain("volumes/", rc);
		goto undo_doc;
	}
	rc = each(ctl, vols, "volume", volume_status, totals, &arr);
	if (rc < 0)
		goto undo_doc;
	json_object_object_add(doc, "volumes", arr);

	rc = mount_list(ctl, "vms", MOUNT_LIST_DIRS, &vms);
	if (rc < 0) {
		complain("vms/", rc);
		goto undo_doc;
	}
	rc = each(ctl, vms, "VM", vm_status, NULL, &arr);
	if (rc < 0)
		goto undo_doc;
	json_object_object_add(doc, "vms", arr);

	rc = id_files(ctl, "jobs", &arr);
	if (rc < 0) {
		complain("jobs/", rc);
		goto undo_doc;
	}
	json_object_object_add(doc, "jobs", arr);
	rc = id_files(ctl, "alerts", &arr);
	if (rc < 0) {
		complain("alerts/", rc);
		goto undo_doc;
	}
	json_object_object_add(doc, "alerts", arr);
	*out = doc;
	return 0;

undo_doc:
	json_object_put(doc);
	return rc;
}

/* "2 BackedUp, 1 BackingUp" (states with a count only); "" for none. */
static char *states_text(struct json_object *counts)
{
	GString *s = g_string_new(NULL);

	json_object_object_foreach(counts, state, n) {
		if (json_object_get_int(n) == 0)
			continue;
		g_string_append_printf(s, "%s%d %s", s->len ? ", " : "",
				       json_object_get_int(n), state);
	}
	return g_string_free(s, FALSE);
}

static void print_job(struct json_object *job)
{
	int64_t done = json_get_int(job, "bytes_done", 0);
	int64_t total = json_get_int(job, "bytes_total", 0);
	const char *state = json_get_str(job, "state");
	g_autofree char *size = format_size((uint64_t)MAX(total, 0));

	printf("  %-6" G_GINT64_FORMAT " %-7s %-40s %s", json_get_int(job, "id", 0),
	       json_get_str(job, "kind") ?: "?", json_get_str(job, "target") ?: "?",
	       state ?: "?");
	if (state && !strcmp(state, "running") && total > 0)
		printf(" %d%% of %s", (int)(done * 100 / total), size);
	if (json_get_str(job, "next_attempt"))
		printf(" (next attempt %s)", json_get_str(job, "next_attempt"));
	printf("\n");
}

static void print_alert(struct json_object *a)
{
	const char *vol = json_get_str(a, "volume");
	const char *snap = json_get_str(a, "snapshot");
	g_autofree char *subject = vol && snap ?
		g_strdup_printf("%s/%s", vol, snap) :
		g_strdup(json_get_str(a, "target") ?: "?");

	printf("  %-6" G_GINT64_FORMAT " %-7s %-24s %-8s %s\n",
	       json_get_int(a, "id", 0), json_get_str(a, "kind") ?: "?", subject,
	       json_get_str(a, "errno") ?: "", json_get_str(a, "message") ?: "");
}

static void print_human(struct json_object *doc)
{
	struct json_object *vols, *vms, *jobs, *alerts, *totals;
	int running = 0, queued = 0, other = 0;
	g_autofree char *total_text = NULL;
	size_t i;

	json_object_object_get_ex(doc, "volumes", &vols);
	json_object_object_get_ex(doc, "vms", &vms);
	json_object_object_get_ex(doc, "jobs", &jobs);
	json_object_object_get_ex(doc, "alerts", &alerts);
	json_object_object_get_ex(doc, "snapshots", &totals);

	printf("snapfs at %s\n", json_get_str(doc, "mount"));
	total_text = states_text(totals);
	printf("volumes: %zu, snapshots: %s\n", json_object_array_length(vols),
	       *total_text ? total_text : "none");
	for (i = 0; i < json_object_array_length(vols); i++) {
		struct json_object *v = json_object_array_get_idx(vols, i), *c;
		g_autofree char *text = NULL;
		const char *vm = json_get_str(v, "vm");

		json_object_object_get_ex(v, "states", &c);
		text = states_text(c);
		printf("  %-20s %3" G_GINT64_FORMAT " snapshot%s  %s%s%s\n",
		       json_get_str(v, "name"), json_get_int(v, "snapshots", 0),
		       json_get_int(v, "snapshots", 0) == 1 ? " " : "s", text,
		       vm ? (*text ? "  vm " : "vm ") : "", vm ? vm : "");
	}
	printf("vms: %zu\n", json_object_array_length(vms));
	for (i = 0; i < json_object_array_length(vms); i++) {
		struct json_object *v = json_object_array_get_idx(vms, i);
		const char *cur = json_get_str(v, "current");

		printf("  %-20s %-8s %3" G_GINT64_FORMAT " snapshot%s%s%s\n",
		       json_get_str(v, "name"), json_get_str(v, "state") ?: "?",
		       json_get_int(v, "snapshots", 0),
		       json_get_int(v, "snapshots", 0) == 1 ? "" : "s",
		       cur ? "  current " : "", cur ? cur : "");
	}
	for (i = 0; i < json_object_array_length(jobs); i++) {
		const char *st = json_get_str(json_object_array_get_idx(jobs, i), "state");

		if (st && !strcmp(st, "running"))
			running++;
		else if (st && !strcmp(st, "queued"))
			queued++;
		else
			other++;
	}
	printf("jobs: %d running, %d queued", running, queued);
	if (other)
		printf(", %d waiting to retry", other);
	printf("\n");
	for (i = 0; i < json_object_array_length(jobs); i++)
		print_job(json_object_array_get_idx(jobs, i));
	printf("alerts: %zu\n", json_object_array_length(alerts));
	for (i = 0; i < json_object_array_length(alerts); i++)
		print_alert(json_object_array_get_idx(alerts, i));
}

int cmd_status(struct snapctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct json_object *doc;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "j", options, NULL)) != -1) {
		if (opt != 'j') {
			fprintf(stderr, "usage: snapctl status [--json]\n");
			return -EINVAL;
		}
		ctl->json = true;
	}
	if (optind != argc) {
		fprintf(stderr, "usage: snapctl status [--json]\n");
		return -EINVAL;
	}
	rc = gather(ctl, &doc);
	if (rc < 0)
		return rc;
	if (ctl->json)
		print_json(doc);
	else
		print_human(doc);
	json_object_put(doc);
	return 0;
}
