/*
 * accounts.c - who owns which volume and VM, and how many snapshots each
 * account may store.
 *
 * DESIGN: an account is a Unix user.  Every volume and VM has an owner
 * (uid, gid) in the catalog: a volume's starts as its file's owner, a VM's
 * as root; root changes it with chown on volumes/<vol> or vms/<vm>.  The
 * snapshots, backups, jobs, alerts and events of an object belong to its
 * owner.  The mount runs with allow_other and default_permissions, so the
 * kernel checks every access against the owner and mode snapfs reports
 * (fs/ops.c): objects are 0770 to their owner and group, their files
 * 0440/0660.  Root is the administrator and is never limited.
 *
 * Limits: -o max_snapshots=N is the global maximum of stored snapshots
 * (volume and VM snapshots, not being deleted) per account, 0 for none;
 * the MOUNT/limits file (parsed by limits_parse(), settings.c) sets lower
 * ones per account.  A take beyond the
 * limit fails with EDQUOT; the check runs inside the catalog transaction
 * that records the new snapshot, so racing takes cannot overshoot.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "accounts.h"
#include "events.h"
#include "gone.h"
#include "paths.h"
#include "volume.h"
#include "settings.h"
#include "log.h"

int64_t account_limit(struct snap_engine *eng, uid_t uid)
{
	int64_t max;

	if (uid == 0)
		return 0;
	if (catalog_limit_get(eng->cat, uid, &max) == 0)
		return max;
	return (int64_t)eng->cfg.max_snapshots;
}

int account_quota_check(struct snap_engine *eng, uid_t uid, char *why,
			size_t size)
{
	int64_t max = account_limit(eng, uid);
	int used;

	if (max <= 0)
		return 0;
	used = catalog_snapshots_owned(eng->cat, uid);
	if (used < 0)
		return used;
	if (used < max)
		return 0;
	g_snprintf(why, size, "account %u stores %d snapshots, its limit is %"
		   G_GINT64_FORMAT " (delete some, or ask for a higher limit)",
		   (unsigned)uid, used, max);
	return -EDQUOT;
}

/* chown(2) semantics: (uid_t)-1 / (gid_t)-1 leave that part as it is. */
static void new_owner(uid_t *uid, gid_t *gid, uid_t to_uid, gid_t to_gid)
{
	if (to_uid != (uid_t)-1)
		*uid = to_uid;
	if (to_gid != (gid_t)-1)
		*gid = to_gid;
}

static void volume_owner_gone(struct snap_engine *eng, const char *vol);

int snap_volume_chown(struct snap_engine *eng, const char *vol, uid_t uid,
		      gid_t gid)
{
	g_autofree char *vpath = volume_path(eng, vol);
	struct catalog_volume v;
	int rc;

	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc;
	rc = volume_resolve(eng, vol, &v, NULL);
	if (rc == 0) {
		new_owner(&v.uid, &v.gid, uid, gid);
		rc = catalog_volume_update(eng->cat, &v);
	}
	/* the file follows, so a new catalog would find the same owner */
	if (rc == 0 && lchown(vpath, v.uid, v.gid) < 0 && errno != ENOENT)
		snap_log(LOG_WARNING, "accounts: cannot chown '%s': %m", vpath);
	if (rc == 0)
		event_record(eng, "volume.chown", vol, NULL, 0,
			     "volume now belongs to uid %u gid %u",
			     (unsigned)v.uid, (unsigned)v.gid);
	rc = catalog_tx_end(eng->cat, rc);
	if (rc == 0)
		volume_owner_gone(eng, vol);
	return rc;
}

/* The kernel caches owners for a second: make it ask again. */
static void volume_owner_gone(struct snap_engine *eng, const char *vol)
{
	g_auto(GStrv) names = NULL;
	struct catalog_volume v;
	guint i;

	gone_path(eng, "volumes/%s/info", vol);
	gone_path(eng, "volumes/%s/control", vol);
	gone_path(eng, "volumes/%s/snapshots", vol);
	gone_path(eng, "backed-up/volumes/%s", vol);
	if (catalog_volume_get(eng->cat, vol, &v) < 0 ||
	    catalog_snapshot_names(eng->cat, v.id, false, &names) < 0)
		return;
	for (i = 0; names[i]; i++) {
		gone_path(eng, "volumes/%s/snapshots/%s", vol, names[i]);
		gone_path(eng, "volumes/%s/snapshots/%s/state", vol, names[i]);
		gone_path(eng, "volumes/%s/snapshots/%s/info", vol, names[i]);
		gone_path(eng, "backed-up/volumes/%s/%s.qcow2", vol, names[i]);
		gone_path(eng, "backed-up/volumes/%s/%s.json", vol, names[i]);
	}
}

/* ---- MOUNT/limits ------------------------------------------------------ */

static void account_name(uid_t uid, char *buf, size_t size)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		g_strlcpy(buf, res->pw_name, size);
	else
		g_snprintf(buf, size, "%u", (unsigned)uid);
}

/* A user name or a decimal uid. */
static int account_uid(const char *word, uid_t *out)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	guint64 n;

	if (g_ascii_string_to_unsigned(word, 10, 0, G_MAXUINT32 - 1, &n, NULL)) {
		*out = (uid_t)n;
		return 0;
	}
	if (getpwnam_r(word, &pw, tmp, sizeof(tmp), &res) == 0 && res) {
		*out = res->pw_uid;
		return 0;
	}
	return -EINVAL;
}

int snap_limits_read(struct snap_engine *eng, char **text_out)
{
	GString *s = g_string_new(NULL);
	GArray *limits = NULL;
	guint i;

	g_string_append_printf(s,
		"# snapshots each account may store (volume and VM snapshots); root is not limited\n"
		"# write one line per account: \"<user> <n>\" sets a limit no higher than the\n"
		"# global one, \"<user> default\" drops it\n"
		"global %u%s\n", eng->cfg.max_snapshots,
		eng->cfg.max_snapshots ? " # the mount option max_snapshots" :
					 " # no limit: -o max_snapshots=N sets one");
	if (catalog_limit_list(eng->cat, &limits) >= 0) {
		for (i = 0; i < limits->len; i++) {
			struct catalog_limit *l = &g_array_index(limits, struct catalog_limit, i);
			char name[256];

			account_name(l->uid, name, sizeof(name));
			g_string_append_printf(s, "%s %" G_GINT64_FORMAT " # uid %u, stores %d\n",
					       name, l->max_snapshots, (unsigned)l->uid,
					       catalog_snapshots_owned(eng->cat, l->uid));
		}
		g_array_free(limits, TRUE);
	}
	*text_out = g_string_free(s, FALSE);
	return 0;
}

/* Check one parsed line against the user database and max_snapshots. */
static int limit_resolve(struct snap_engine *eng, const struct limits_entry *e,
			 uid_t *uid, const char **why)
{
	if (e->global) {
		if (e->max != (int64_t)eng->cfg.max_snapshots) {
			*why = "limits: the global limit is the mount option max_snapshots; "
			       "a write cannot change it";
			return -EINVAL;
		}
		return 0;
	}
	if (account_uid(e->user, uid) < 0) {
		*why = "limits: no such user";
		return -EINVAL;
	}
	if (e->max != LIMITS_DEFAULT && eng->cfg.max_snapshots &&
	    e->max > (int64_t)eng->cfg.max_snapshots) {
		*why = "limits: an account's limit may not exceed the global max_snapshots";
		return -EINVAL;
	}
	return 0;
}

int snap_limits_write(struct snap_engine *eng, const char *buf, size_t len)
{
	g_autoptr(GArray) entries = NULL;
	g_autoptr(GHashTable) seen = NULL;
	const char *why = NULL;
	guint i;
	int rc;

	rc = limits_parse(buf, len, &entries, &why);
	if (rc < 0) {
		event_reject(eng, "write", "limits", -rc, "%s", why);
		return rc;
	}
	seen = g_hash_table_new(NULL, NULL);
	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc;
	/* all lines or none */
	for (i = 0; i < entries->len && rc == 0; i++) {
		const struct limits_entry *e =
			&g_array_index(entries, struct limits_entry, i);
		uid_t uid;

		rc = limit_resolve(eng, e, &uid, &why);
		if (rc < 0 || e->global)
			continue;
		if (!g_hash_table_add(seen, GUINT_TO_POINTER(uid))) {
			why = "limits: an account is named on two lines (by name or uid); "
			      "which limit was meant is unclear";
			rc = -EINVAL;
			break;
		}
		rc = catalog_limit_set(eng->cat, uid, e->max);
		if (rc == 0 && e->max == LIMITS_DEFAULT)
			event_record(eng, "limit.set", NULL, NULL, 0,
				     "uid %u may store the global number of snapshots",
				     (unsigned)uid);
		else if (rc == 0)
			event_record(eng, "limit.set", NULL, NULL, 0,
				     "uid %u may store %" G_GINT64_FORMAT " snapshots",
				     (unsigned)uid, e->max);
	}
	rc = catalog_tx_end(eng->cat, rc);
	if (rc < 0 && why)
		event_reject(eng, "write", "limits", -rc, "%s", why);
	return rc;
}
