/*
 * policies.c - recurring snapshot policies: the files under policies/ and
 * the thread that runs them.
 *
 * DESIGN: a policy is a catalog row holding its normalized line (policy.c
 * parses and formats it, and does the calendar arithmetic), its owner, and
 * next_run, the next slot on the engine's clock.  The thread snapfs-policy
 * sleeps on eng->schedule until the earliest next_run (or until the test clock
 * moves, or a policy is written), then for each due policy:
 *
 *   slot = the latest slot not after now (runs missed while snapfs was down
 *          are taken once, for the latest of them)
 *   take volumes/<vol>/snapshots/<interval>-<UTC time of slot> (or the VM
 *          snapshot), marked with the policy's id; a name that exists means
 *          the slot was already taken (a crash after the take): done
 *   prune the policy's own snapshots, oldest first, beyond keep (manual
 *          snapshots and other policies' are never touched)
 *   record last_run, the result, next_run; an event; an alert on failure
 *
 * A created file is a draft (in memory, owned by its creator): an empty
 * file, like one a failed `echo ... >` leaves on any file system, until a
 * write stores a policy in it or rm removes it; drafts are not kept across
 * a remount, and at most POLICY_DRAFTS_MAX exist (ENOSPC).  The target must exist and belong to the writer
 * (root may target anything); keep may not exceed max_snapshots; one policy
 * per target and interval.  Deleting a policy keeps its snapshots; they are
 * then pruned by nobody.
 */
#include <errno.h>
#include <string.h>

#include "policies.h"
#include "clock.h"
#include "errname.h"
#include "events.h"
#include "json.h"
#include "policy.h"
#include "snapshot.h"
#include "vms.h"
#include "volume.h"
#include "wake.h"
#include "log.h"

/* The module's state (eng->policies). */
struct policies {
	/* a leaf lock: nothing else is taken while it is held, so it may be
	 * taken under eng->lock or inside a catalog transaction (events name
	 * a draft's owner) */
	GMutex lock;
	GHashTable *drafts;   /* name -> struct draft (lock) */
	GHashTable *zones;    /* tz name -> GTimeZone held (lock) */
	char default_tz[64];  /* policies without tz= (set at init) */
	GThread *thread;
};

struct draft {
	uid_t uid;
	gid_t gid;
};

/* Empty policy files are only memory: bound them. */
#define POLICY_DRAFTS_MAX 1000

static char *policies_target_path(const char *name)
{
	return g_strdup_printf("policies/%s", name);
}

void policies_init(struct snap_engine *eng)
{
	GTimeZone *tz = g_time_zone_new_local();
	const char *id = tz ? g_time_zone_get_identifier(tz) : NULL;
	GTimeZone *check = id ? g_time_zone_new_identifier(id) : NULL;

	struct policies *p = g_new0(struct policies, 1);

	/* the host's zone, if it has an IANA name; else UTC */
	g_strlcpy(p->default_tz, check ? id : "UTC", sizeof(p->default_tz));
	if (check)
		g_time_zone_unref(check);
	if (tz)
		g_time_zone_unref(tz);
	g_mutex_init(&p->lock);
	p->drafts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					  g_free);
	p->zones = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					 (GDestroyNotify)g_time_zone_unref);
	eng->policies = p;
	events_set_path_owner(eng, policies_owner);
}

/*
 * Keep the zone @tz loaded.  GLib shares a loaded zone only while someone
 * holds it, and loading one with DST rules costs about a millisecond:
 * policy.c's arithmetic looks it up on every call.  Zones in use stay
 * held for the engine's life (a handful).
 */
static void zone_hold(struct snap_engine *eng, const char *tz)
{
	GTimeZone *z;

	g_mutex_lock(&eng->policies->lock);
	if (!g_hash_table_contains(eng->policies->zones, tz)) {
		z = g_time_zone_new_identifier(tz);
		if (z)
			g_hash_table_insert(eng->policies->zones, g_strdup(tz), z);
	}
	g_mutex_unlock(&eng->policies->lock);
}

void policies_clear(struct snap_engine *eng)
{
	struct policies *p = eng->policies;

	if (!p)
		return;
	g_hash_table_destroy(p->drafts);
	g_hash_table_destroy(p->zones);
	g_mutex_clear(&p->lock);
	eng->policies = NULL;
	g_free(p);
}

/* ---- the files ----------------------------------------------------------- */

int snap_policy_list(struct snap_engine *eng, char ***names_out)
{
	GPtrArray *names = g_ptr_array_new();
	GArray *rows = NULL;
	GHashTableIter it;
	gpointer key;
	guint i;
	int rc;

	rc = catalog_policy_list(eng->cat, -1, &rows);
	if (rc < 0) {
		g_ptr_array_free(names, TRUE);
		return rc;
	}
	for (i = 0; i < rows->len; i++)
		g_ptr_array_add(names, g_strdup(g_array_index(rows, struct catalog_policy, i).name));
	g_array_free(rows, TRUE);
	g_mutex_lock(&eng->policies->lock);
	g_hash_table_iter_init(&it, eng->policies->drafts);
	while (g_hash_table_iter_next(&it, &key, NULL))
		g_ptr_array_add(names, g_strdup(key));
	g_mutex_unlock(&eng->policies->lock);
	g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
	g_ptr_array_add(names, NULL);
	rc = (int)names->len - 1;
	*names_out = (char **)g_ptr_array_free(names, FALSE);
	return rc;
}

/* A draft's owner; false when @name is no draft. */
static bool draft_get(struct snap_engine *eng, const char *name, struct draft *out)
{
	struct draft *d;

	g_mutex_lock(&eng->policies->lock);
	d = g_hash_table_lookup(eng->policies->drafts, name);
	if (d && out)
		*out = *d;
	g_mutex_unlock(&eng->policies->lock);
	return d != NULL;
}

int snap_policy_stat(struct snap_engine *eng, const char *name,
		     struct snap_policy_stat *out)
{
	struct catalog_policy p;
	struct draft d;

	memset(out, 0, sizeof(*out));
	if (snap_name_valid(name) < 0)
		return -ENOENT;
	if (catalog_policy_get(eng->cat, name, &p) == 0) {
		out->id = (uint64_t)p.id;
		out->uid = p.uid;
		out->gid = p.gid;
		return 0;
	}
	if (!draft_get(eng, name, &d))
		return -ENOENT;
	out->uid = d.uid;
	out->gid = d.gid;
	out->draft = true;
	return 0;
}

int snap_policy_create(struct snap_engine *eng, const char *name, uid_t uid,
		       gid_t gid)
{
	g_autofree char *target = policies_target_path(name);
	struct catalog_policy p;
	struct draft *d;
	int rc = 0;

	if (snap_name_valid(name) < 0) {
		event_reject(eng, "create", target, EINVAL,
			     "policy names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-'");
		return -EINVAL;
	}
	if (catalog_policy_get(eng->cat, name, &p) == 0)
		return -EEXIST;
	g_mutex_lock(&eng->policies->lock);
	if (g_hash_table_contains(eng->policies->drafts, name)) {
		rc = -EEXIST;
	} else if (g_hash_table_size(eng->policies->drafts) >= POLICY_DRAFTS_MAX) {
		rc = -ENOSPC;
	} else {
		d = g_new0(struct draft, 1);
		d->uid = uid;
		d->gid = gid;
		g_hash_table_insert(eng->policies->drafts, g_strdup(name), d);
	}
	g_mutex_unlock(&eng->policies->lock);
	if (rc == -ENOSPC)
		event_reject(eng, "create", target, ENOSPC,
			     "%d empty policy files exist: write or remove some first",
			     POLICY_DRAFTS_MAX);
	return rc;
}

static void draft_drop(struct snap_engine *eng, const char *name)
{
	g_mutex_lock(&eng->policies->lock);
	g_hash_table_remove(eng->policies->drafts, name);
	g_mutex_unlock(&eng->policies->lock);
}

uid_t policies_owner(struct snap_engine *eng, const char *name)
{
	struct catalog_policy p;
	struct draft d;

	if (catalog_policy_get(eng->cat, name, &p) == 0)
		return p.uid;
	if (draft_get(eng, name, &d))
		return d.uid;
	return 0;
}

/* The owner of the policy's target; -ENOENT when it does not exist. */
static int target_owner(struct snap_engine *eng, const struct policy_spec *s,
			uid_t *uid)
{
	struct catalog_volume v;
	struct snap_vm_stat vs;
	bool present;
	int rc;

	if (s->kind == POLICY_TARGET_VOLUME) {
		rc = volume_resolve(eng, s->target, &v, &present);
		if (rc == 0 && !present)
			rc = -ENOENT;
		if (rc == 0)
			*uid = v.uid;
		return rc;
	}
	rc = snap_vm_stat(eng, s->target, &vs);
	if (rc == 0)
		*uid = vs.uid;
	return rc;
}

/* Check a parsed policy against the world; on failure *@why says why. */
static int policies_admit(struct snap_engine *eng, const struct policy_spec *s,
			uid_t caller, char *why, size_t size)
{
	uid_t owner = 0;

	if (eng->cfg.max_snapshots && s->keep > eng->cfg.max_snapshots) {
		g_snprintf(why, size, "keep=%u is more than max_snapshots=%u, the most an account may store",
			   s->keep, eng->cfg.max_snapshots);
		return -EINVAL;
	}
	if (target_owner(eng, s, &owner) < 0) {
		g_snprintf(why, size, "no such %s '%s'",
			   s->kind == POLICY_TARGET_VM ? "VM" : "volume", s->target);
		return -ENOENT;
	}
	if (caller != 0 && owner != caller) {
		g_snprintf(why, size, "%s '%s' belongs to another account",
			   s->kind == POLICY_TARGET_VM ? "VM" : "volume", s->target);
		return -EACCES;
	}
	return 0;
}

static const char *kind_word(int kind)
{
	return kind == POLICY_TARGET_VM ? "vm" : "volume";
}

int snap_policy_write(struct snap_engine *eng, const char *name, uid_t caller,
		      gid_t caller_gid, const char *buf, size_t len)
{
	g_autofree char *target = policies_target_path(name);
	g_autofree char *line = NULL;
	struct catalog_policy p, other;
	struct policy_spec s;
	const char *reason = NULL;
	struct draft d;
	char why[256];
	bool exists;
	int rc;

	rc = policy_parse(buf, len, eng->policies->default_tz, &s, &reason);
	if (rc < 0) {
		event_reject(eng, "write", target, EINVAL, "%s", reason);
		return rc;
	}
	zone_hold(eng, s.tz);
	rc = policies_admit(eng, &s, caller, why, sizeof(why));
	if (rc < 0) {
		event_reject(eng, "write", target, -rc, "%s", why);
		return rc;
	}
	line = policy_format(&s);

	rc = catalog_tx_begin(eng->cat);
	if (rc < 0) {
		event_reject(eng, "write", target, -rc, "the catalog refused the policy; nothing changed");
		return rc;
	}
	exists = catalog_policy_get(eng->cat, name, &p) == 0;
	if (!exists) {
		memset(&p, 0, sizeof(p));
		g_strlcpy(p.name, name, sizeof(p.name));
		p.uid = draft_get(eng, name, &d) ? d.uid : caller;
		p.gid = draft_get(eng, name, &d) ? d.gid : caller_gid;
	}
	if (catalog_policy_find(eng->cat, s.kind, s.target, s.interval, &other) == 0 &&
	    other.id != p.id) {
		g_snprintf(why, sizeof(why), "policy '%s' already takes %s snapshots of %s:%s (one policy per target and interval)",
			   other.name, policy_interval_name(s.interval),
			   kind_word(s.kind), s.target);
		event_reject(eng, "write", target, EEXIST, "%s", why);
		catalog_tx_end(eng->cat, 0);
		return -EEXIST;
	}
	g_strlcpy(p.spec, line, sizeof(p.spec));
	p.kind = s.kind;
	g_strlcpy(p.target, s.target, sizeof(p.target));
	p.interval = s.interval;
	p.next_run = policy_next_run(&s, clock_now(eng));
	rc = catalog_policy_put(eng->cat, &p);
	if (rc == 0)
		event_record(eng, exists ? "policy.change" : "policy.create",
			     s.kind == POLICY_TARGET_VOLUME ? s.target : NULL, NULL, 0,
			     "policy '%s': %s", name, line);
	rc = catalog_tx_end(eng->cat, rc);
	if (rc == 0) {
		draft_drop(eng, name);
		wake_schedulers(eng);
	} else {
		event_reject(eng, "write", target, -rc, "the catalog refused the policy; nothing changed");
	}
	return rc;
}

int snap_policy_read(struct snap_engine *eng, const char *name, char **text_out)
{
	struct catalog_policy p;
	struct policy_spec s;
	GString *t;
	char stamp[32];

	if (catalog_policy_get(eng->cat, name, &p) < 0) {
		if (!draft_get(eng, name, NULL))
			return -ENOENT;
		*text_out = g_strdup("");
		return 0;
	}
	t = g_string_new(p.spec);
	g_string_append_c(t, '\n');
	if (p.last_run) {
		char slot[SNAP_NAME_MAX + 1] = "";

		if (policy_parse(p.spec, strlen(p.spec), "UTC", &s, NULL) == 0)
			policy_slot_name(&s, p.last_slot, slot, sizeof(slot));
		clock_iso(p.last_run, stamp);
		g_string_append_printf(t, "# last run: %s, snapshot %s: %s\n", stamp,
				       slot, p.last_result);
	} else {
		g_string_append(t, "# last run: never\n");
	}
	clock_iso(p.next_run, stamp);
	g_string_append_printf(t, "# next run: %s\n", stamp);
	*text_out = g_string_free(t, FALSE);
	return 0;
}

int snap_policy_delete(struct snap_engine *eng, const char *name)
{
	struct catalog_policy p;
	int rc;

	if (catalog_policy_get(eng->cat, name, &p) < 0) {
		bool was = draft_get(eng, name, NULL);

		draft_drop(eng, name);
		return was ? 0 : -ENOENT;
	}
	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc;
	rc = catalog_policy_delete(eng->cat, p.id);
	if (rc == 0)
		rc = catalog_alert_resolve(eng->cat, "policy", p.id) < 0 ? -EIO : 0;
	if (rc == 0)
		event_record(eng, "policy.delete",
			     p.kind == POLICY_TARGET_VOLUME ? p.target : NULL, NULL, 0,
			     "policy '%s' removed; its snapshots stay (no longer pruned)",
			     name);
	return catalog_tx_end(eng->cat, rc);
}

/* ---- running them -------------------------------------------------------- */

static void alert_raise_policy(struct snap_engine *eng,
			       const struct catalog_policy *p, int err,
			       const char *why)
{
	struct jdoc *d = jdoc_new();
	g_autofree char *text = NULL, *target = policies_target_path(p->name);
	g_autofree char *of = g_strdup_printf("%s:%s", kind_word(p->kind), p->target);
	int64_t now = clock_now(eng), id = 0;
	char stamp[32];

	clock_iso(now, stamp);
	jdoc_str(d, "time", stamp);
	jdoc_str(d, "kind", "policy");
	jdoc_str(d, "target", target);
	jdoc_str(d, "policy", p->name);
	jdoc_str(d, "of", of);
	if (p->kind == POLICY_TARGET_VOLUME)
		jdoc_str(d, "volume", p->target);
	else
		jdoc_str(d, "vm", p->target);
	jdoc_str(d, "errno", errno_name(err));
	jdoc_str(d, "message", why);
	text = jdoc_finish(d, true, true);
	if (text && catalog_alert_raise(eng->cat, "policy", p->id, now,
					owner_of(eng, kind_word(p->kind), p->target),
					text, &id) == 0)
		event_record(eng, "alert.raise",
			     p->kind == POLICY_TARGET_VOLUME ? p->target : NULL, NULL, -err,
			     "alert %" G_GINT64_FORMAT ": policy '%s' failed: %s",
			     id, p->name, why);
}

/* Names of the policy's own snapshots, oldest first (g_strfreev). */
static char **policies_snapshots(struct snap_engine *eng,
			       const struct catalog_policy *p)
{
	GPtrArray *names = g_ptr_array_new();
	GArray *rows = NULL;
	guint i;

	if (p->kind == POLICY_TARGET_VOLUME) {
		struct catalog_volume v;

		if (catalog_volume_get(eng->cat, p->target, &v) == 0 &&
		    catalog_snapshot_list(eng->cat, v.id, -1, &rows) >= 0) {
			for (i = 0; i < rows->len; i++) {
				struct catalog_snapshot *s =
					&g_array_index(rows, struct catalog_snapshot, i);

				if (s->policy_id == p->id &&
				    s->state != SNAP_STATE_DESTROYING &&
				    s->state != SNAP_STATE_CREATING)
					g_ptr_array_add(names, g_strdup(s->name));
			}
			g_array_free(rows, TRUE);
		}
	} else {
		struct catalog_vm vm;

		if (catalog_vm_get_by_name(eng->cat, p->target, &vm) == 0 &&
		    catalog_vm_snapshot_list(eng->cat, vm.id, &rows) >= 0) {
			for (i = 0; i < rows->len; i++) {
				struct catalog_vm_snapshot *s =
					&g_array_index(rows, struct catalog_vm_snapshot, i);

				if (s->policy_id == p->id && s->state == VM_SNAPSHOT_READY)
					g_ptr_array_add(names, g_strdup(s->name));
			}
			g_array_free(rows, TRUE);
		}
	}
	g_ptr_array_add(names, NULL);
	return (char **)g_ptr_array_free(names, FALSE);
}

/* Delete the oldest of the policy's snapshots beyond @keep. */
static void policies_prune(struct snap_engine *eng, const struct catalog_policy *p,
			 unsigned keep)
{
	g_auto(GStrv) names = policies_snapshots(eng, p);
	guint n = g_strv_length(names), i;

	for (i = 0; n > keep && i < n - keep; i++) {
		int rc = p->kind == POLICY_TARGET_VOLUME ?
				 snap_snapshot_delete(eng, p->target, names[i]) :
				 snap_vm_snapshot_delete(eng, p->target, names[i]);

		if (p->kind == POLICY_TARGET_VOLUME)
			event_record(eng, "policy.prune", p->target, names[i], rc,
				     rc == 0 ? "policy '%s' (keep=%u) deleted its oldest snapshot" :
					       "policy '%s' (keep=%u) could not delete its oldest snapshot; tried again at its next run",
				     p->name, keep);
		else
			event_record_vm(eng, "policy.prune", p->target, names[i], rc,
					rc == 0 ? "policy '%s' (keep=%u) deleted its oldest snapshot" :
						  "policy '%s' (keep=%u) could not delete its oldest snapshot; tried again at its next run",
					p->name, keep);
	}
}

/* Run one due policy @p at @now. */
static void policies_run(struct snap_engine *eng, struct catalog_policy *p,
		       int64_t now)
{
	struct catalog_policy cur;
	struct policy_spec s;
	char name[SNAP_NAME_MAX + 1], stamp[32];
	g_auto(GStrv) own = NULL;
	int64_t slot, next;
	unsigned missed = 0;
	bool replaces;
	int rc;

	if (policy_parse(p->spec, strlen(p->spec), "UTC", &s, NULL) < 0) {
		snap_log(LOG_ERR, "policies: stored policy '%s' does not parse: %s",
			 p->name, p->spec);
		return;
	}
	zone_hold(eng, s.tz);
	/* the latest slot not after now; the earlier ones were missed */
	slot = p->next_run;
	while ((next = policy_next_run(&s, slot)) > 0 && next <= now) {
		slot = next;
		missed++;
	}
	policy_slot_name(&s, slot, name, sizeof(name));
	/* at keep already, the run replaces its oldest: the count stays */
	own = policies_snapshots(eng, p);
	replaces = g_strv_length(own) >= s.keep;
	rc = s.kind == POLICY_TARGET_VOLUME ?
		     snapshot_take(eng, s.target, name, p->id, replaces) :
		     vms_snapshot_take(eng, s.target, name, p->id, replaces);
	if (rc == -EEXIST)
		rc = 0; /* taken before a crash kept us from recording it */
	if (rc == 0)
		policies_prune(eng, p, s.keep);

	if (catalog_tx_begin(eng->cat) < 0)
		return;
	/* re-read: the file may have been rewritten or removed meanwhile */
	if (catalog_policy_get(eng->cat, p->name, &cur) < 0 || cur.id != p->id) {
		catalog_tx_end(eng->cat, 0);
		return;
	}
	cur.last_run = now;
	cur.last_slot = slot;
	if (rc == 0)
		g_strlcpy(cur.last_result, "ok", sizeof(cur.last_result));
	else
		g_snprintf(cur.last_result, sizeof(cur.last_result), "failed: %s (%s)",
			   g_strerror(-rc), errno_name(rc));
	if (!strcmp(cur.spec, p->spec))
		cur.next_run = policy_next_run(&s, now);
	catalog_policy_put(eng->cat, &cur);
	clock_iso(slot, stamp);
	if (rc == 0) {
		if (catalog_alert_resolve(eng->cat, "policy", p->id) > 0)
			event_record(eng, "alert.resolve",
				     s.kind == POLICY_TARGET_VOLUME ? s.target : NULL, NULL, 0,
				     "policy '%s' alert resolved: it ran", p->name);
		if (s.kind == POLICY_TARGET_VOLUME)
			event_record(eng, "policy.run", s.target, name, 0,
				     "policy '%s' took its %s snapshot for %s%s", p->name,
				     policy_interval_name(s.interval), stamp,
				     missed ? " (runs missed while snapfs was down: taken once)" : "");
		else
			event_record_vm(eng, "policy.run", s.target, name, 0,
					"policy '%s' took its %s snapshot for %s%s", p->name,
					policy_interval_name(s.interval), stamp,
					missed ? " (runs missed while snapfs was down: taken once)" : "");
	} else {
		g_autofree char *why = g_strdup_printf("cannot take %s: %s", name,
						       g_strerror(-rc));

		if (s.kind == POLICY_TARGET_VOLUME)
			event_record(eng, "policy.fail", s.target, name, rc,
				     "policy '%s': %s", p->name, why);
		else
			event_record_vm(eng, "policy.fail", s.target, name, rc,
					"policy '%s': %s", p->name, why);
		alert_raise_policy(eng, &cur, -rc, why);
	}
	catalog_tx_end(eng->cat, 0);
}

/* Run every policy due at the engine's time.  Return: how many ran. */
static int policies_run_due(struct snap_engine *eng)
{
	int64_t now = clock_now(eng);
	GArray *due = NULL;
	guint i;
	int n;

	if (catalog_policy_list(eng->cat, now, &due) < 0)
		return 0;
	n = (int)due->len;
	for (i = 0; i < due->len && !eng->stopping; i++)
		policies_run(eng, &g_array_index(due, struct catalog_policy, i), now);
	g_array_free(due, TRUE);
	return n;
}

static gpointer policies_thread(gpointer data)
{
	struct snap_engine *eng = data;

	g_mutex_lock(&eng->lock);
	while (!eng->stopping) {
		int64_t due, now = clock_now(eng);
		gint64 until = g_get_monotonic_time() + 3600 * G_TIME_SPAN_SECOND;

		if (catalog_policy_next_due(eng->cat, &due) == 0 && due <= now) {
			g_mutex_unlock(&eng->lock);
			policies_run_due(eng);
			g_mutex_lock(&eng->lock);
			continue;
		}
		if (catalog_policy_next_due(eng->cat, &due) == 0 && !eng->cfg.test_clock)
			until = MIN(until, g_get_monotonic_time() +
				    (due - now) * G_TIME_SPAN_SECOND);
		/* woken by the test clock, a policy write, or stopping */
		g_cond_wait_until(&eng->schedule, &eng->lock, until);
	}
	g_mutex_unlock(&eng->lock);
	return NULL;
}

int policies_start(struct snap_engine *eng)
{
	g_autoptr(GError) err = NULL;

	eng->policies->thread = g_thread_try_new("snapfs-policy", policies_thread,
						 eng, &err);
	if (!eng->policies->thread) {
		snap_log(LOG_ERR, "policies: cannot start the thread: %s", err->message);
		return -ENOMEM;
	}
	return 0;
}

void policies_stop(struct snap_engine *eng)
{
	if (!eng->policies || !eng->policies->thread)
		return;
	g_mutex_lock(&eng->lock);
	eng->stopping = true;
	g_cond_broadcast(&eng->schedule);
	g_mutex_unlock(&eng->lock);
	g_thread_join(eng->policies->thread);
	eng->policies->thread = NULL;
}
