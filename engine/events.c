/*
 * events.c - the event log, alerts, and their files in the tree.
 *
 * Events are rows in the catalog, written in the same transaction as the
 * change they describe when there is one (the catalog lock is recursive),
 * so the log can never claim something the catalog does not hold.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "clock.h"
#include "errname.h"
#include "json.h"
#include "log.h"

uid_t owner_of(struct snap_engine *eng, const char *key, const char *object)
{
	struct catalog_volume v;
	struct catalog_vm vm;

	if (!object)
		return 0;
	if (!strcmp(key, "volume") && catalog_volume_get(eng->cat, object, &v) == 0)
		return v.uid;
	if (!strcmp(key, "vm") && catalog_vm_get_by_name(eng->cat, object, &vm) == 0)
		return vm.uid;
	return 0;
}

void events_set_path_owner(struct snap_engine *eng,
			   uid_t (*fn)(struct snap_engine *eng, const char *name))
{
	eng->policy_owner = fn;
}

/* The account a tree path ("volumes/<vol>/...", "vms/<vm>/...") is about. */
static uid_t owner_of_path(struct snap_engine *eng, const char *path)
{
	g_auto(GStrv) parts = g_strsplit(path, "/", 3);

	if (!parts[0] || !parts[1])
		return 0;
	if (!strcmp(parts[0], "volumes") || !strcmp(parts[0], "wait"))
		return owner_of(eng, "volume", parts[1]);
	if (!strcmp(parts[0], "vms"))
		return owner_of(eng, "vm", parts[1]);
	/* a refused policy write: its writer reads why */
	if (!strcmp(parts[0], "policies") && eng->policy_owner)
		return eng->policy_owner(eng, parts[1]);
	return 0;
}

static void emit(struct snap_engine *eng, struct jdoc *d, uid_t uid, int err,
		 const char *what)
{
	int64_t now = clock_now(eng);
	g_autofree char *text = NULL;

	text = jdoc_finish(d, false, false);
	if (!text)
		return;
	snap_log(err ? LOG_WARNING : LOG_INFO, "event: %s", text);
	if (catalog_event_add(eng->cat, now, uid, text) < 0)
		snap_log(LOG_ERR, "event: cannot record '%s'", what);
}

static struct jdoc *event_new(struct snap_engine *eng, const char *type)
{
	struct jdoc *d = jdoc_new();
	char stamp[32];

	clock_iso(clock_now(eng), stamp);
	jdoc_str(d, "time", stamp);
	jdoc_str(d, "type", type);
	return d;
}

static void record(struct snap_engine *eng, const char *type,
		   const char *key, const char *object, const char *snapshot,
		   int err, const char *fmt, va_list ap)
	__attribute__((format(printf, 7, 0)));

static void record(struct snap_engine *eng, const char *type,
		   const char *key, const char *object, const char *snapshot,
		   int err, const char *fmt, va_list ap)
{
	struct jdoc *d = event_new(eng, type);
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);

	if (object)
		jdoc_str(d, key, object);
	if (snapshot)
		jdoc_str(d, "snapshot", snapshot);
	jdoc_str(d, "result", err ? "error" : "ok");
	if (err)
		jdoc_str(d, "errno", errno_name(err));
	jdoc_str(d, "message", msg);
	emit(eng, d, owner_of(eng, key, object), err, type);
}

void event_record(struct snap_engine *eng, const char *type, const char *volume,
		  const char *snapshot, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	record(eng, type, "volume", volume, snapshot, err, fmt, ap);
	va_end(ap);
}

void event_record_vm(struct snap_engine *eng, const char *type, const char *vm,
		     const char *snapshot, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	record(eng, type, "vm", vm, snapshot, err, fmt, ap);
	va_end(ap);
}

void event_reject(struct snap_engine *eng, const char *op, const char *path,
		  int err, const char *fmt, ...)
{
	struct jdoc *d = event_new(eng, "rejected");
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	jdoc_str(d, "op", op);
	jdoc_str(d, "path", path);
	jdoc_str(d, "result", "error");
	jdoc_str(d, "errno", errno_name(err));
	jdoc_str(d, "message", msg);
	emit(eng, d, owner_of_path(eng, path), err, "rejected");
}

void snap_event_reject(struct snap_engine *eng, const char *op,
		       const char *path, int err, const char *reason)
{
	event_reject(eng, op, path, err, "%s", reason);
}

int alert_raise(struct snap_engine *eng, const struct alert *a)
{
	struct jdoc *d = jdoc_new();
	int64_t now = clock_now(eng), id = 0;
	g_autofree char *text = NULL;
	char stamp[32];
	int rc;

	clock_iso(now, stamp);
	jdoc_str(d, "time", stamp);
	jdoc_str(d, "kind", a->kind);
	jdoc_str(d, "target", a->target);
	jdoc_str(d, "volume", a->volume);
	jdoc_str(d, "snapshot", a->snapshot);
	if (a->new_volume)
		jdoc_str(d, "new_volume", a->new_volume);
	jdoc_str(d, "errno", errno_name(a->err));
	jdoc_str(d, "message", a->message);
	if (a->attempts >= 0)
		jdoc_int(d, "attempts", a->attempts);
	text = jdoc_finish(d, true, true);
	if (!text)
		return -ENOMEM;
	rc = catalog_alert_raise(eng->cat, a->kind, a->object_id, now,
				 owner_of(eng, "volume", a->volume), text, &id);
	if (rc == 0)
		event_record(eng, "alert.raise", a->volume, a->snapshot, -a->err,
			     "alert %" G_GINT64_FORMAT ": %s", id, a->what);
	return rc;
}

int alert_raise_backup(struct snap_engine *eng,
		       const struct catalog_snapshot *snap)
{
	g_autofree char *target = g_strdup_printf("volumes/%s/snapshots/%s",
						  snap->volume, snap->name);
	g_autofree char *what = g_strdup_printf("backup failed: %s", snap->error);
	struct alert a = {
		.kind = "backup", .object_id = snap->id, .target = target,
		.volume = snap->volume, .snapshot = snap->name,
		.err = snap->err ? snap->err : EIO, .message = snap->error,
		.attempts = snap->attempts, .what = what,
	};

	return alert_raise(eng, &a);
}

int snap_events_read(struct snap_engine *eng, uid_t caller, char **text_out,
		     size_t *len)
{
	GString *s = g_string_new(NULL);
	int rc = catalog_events_text(eng->cat, caller == 0 ? -1 : (int64_t)caller, s);

	if (rc < 0) {
		g_string_free(s, TRUE);
		return rc;
	}
	*len = s->len;
	*text_out = g_string_free(s, FALSE);
	return 0;
}

int snap_alert_list(struct snap_engine *eng, uint64_t **ids)
{
	GArray *a;
	int rc = catalog_alert_ids(eng->cat, &a);

	return rc < 0 ? rc : catalog_ids_take(a, ids);
}

int snap_alert_read(struct snap_engine *eng, uint64_t id, char **json_out)
{
	g_autofree char *body = NULL;
	int rc = catalog_alert_get(eng->cat, (int64_t)id, &body);
	struct jdoc *d;

	if (rc < 0)
		return rc;
	/* the id is the file's name; add it so a copied file says it too */
	if (jdoc_parse(body, &d) < 0) {
		*json_out = g_steal_pointer(&body);
		return 0;
	}
	jdoc_int(d, "id", (int64_t)id);
	*json_out = jdoc_finish(d, true, true);
	return *json_out ? 0 : -ENOMEM;
}

int snap_alert_owner(struct snap_engine *eng, uint64_t id, uid_t *uid)
{
	return catalog_alert_owner(eng->cat, (int64_t)id, uid);
}

int snap_alert_ack(struct snap_engine *eng, uint64_t id)
{
	int rc = catalog_alert_delete(eng->cat, (int64_t)id);

	if (rc == 0)
		event_record(eng, "alert.ack", NULL, NULL, 0,
			     "alert %" G_GUINT64_FORMAT " acknowledged", id);
	return rc;
}
