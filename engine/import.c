/*
 * import.c - the catalog rebuilt from the manifests on secondary storage
 * (import.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import.h"
#include "events.h"
#include "log.h"
#include "manifests.h"

/* What one walk found, for the summary event. */
struct import_counts {
	unsigned imported, volumes, known, foreign, skipped;
};

bool import_pending(struct snap_engine *eng)
{
	g_autofree char *value = NULL;

	return catalog_identity_get(eng->cat, IMPORT_PENDING_KEY, &value) == 0 &&
	       !strcmp(value, "pending");
}

/* Skip one backup, saying why. */
static void skip(struct snap_engine *eng, struct import_counts *c,
		 const char *vol, const char *file, const char *why)
{
	c->skipped++;
	event_record(eng, "recovery.import", vol, NULL, -EINVAL,
		     "backup '%s/%s/%s' not imported: %s; left in place",
		     eng->backups_dir, vol, file, why);
}

/*
 * The catalog's volume @m->volume for an imported backup: the one there
 * (same uuid, or a manifest without one) or a new row.  -EEXIST: a
 * volume of that name with another uuid.
 */
static int import_volume(struct snap_engine *eng, const struct manifest *m,
			 struct catalog_volume *v, bool *made)
{
	int rc = catalog_volume_get(eng->cat, m->volume, v);

	*made = false;
	if (rc == 0)
		return m->volume_uuid[0] && strcmp(v->uuid, m->volume_uuid) ?
			       -EEXIST : 0;
	if (rc != -ENOENT)
		return rc;
	memset(v, 0, sizeof(*v));
	g_strlcpy(v->name, m->volume, sizeof(v->name));
	if (m->volume_uuid[0]) {
		g_strlcpy(v->uuid, m->volume_uuid, sizeof(v->uuid));
	} else {
		g_autofree char *uuid = g_uuid_string_random();

		g_strlcpy(v->uuid, uuid, sizeof(v->uuid));
	}
	rc = catalog_volume_insert(eng->cat, v);
	*made = rc == 0;
	return rc;
}

/* The walk's state: the engine and what it counted. */
struct import_walk {
	struct snap_engine *eng;
	struct import_counts c;
};

/* One manifest @file of volume directory @vol; manifests_fn. */
static int import_one(const char *vol, const char *file,
		      const struct manifest *mp, bool whole, const char *why,
		      void *arg)
{
	struct import_walk *w = arg;
	struct snap_engine *eng = w->eng;
	struct import_counts *c = &w->c;
	struct catalog_snapshot s, old;
	struct catalog_volume v;
	struct manifest m;
	bool made;
	int rc;

	if (!mp) {
		skip(eng, c, vol, file, why);
		return 0;
	}
	m = *mp;
	if (catalog_snapshot_get_by_uuid(eng->cat, m.uuid, &old) == 0) {
		c->known++;
		return 0;
	}
	if (m.host[0] && strcmp(m.host, eng->host) != 0) {
		c->foreign++;
		return 0;
	}
	if (strcmp(m.volume, vol) != 0) {
		skip(eng, c, vol, file, "its manifest names another volume");
		return 0;
	}
	if (!whole) {
		skip(eng, c, vol, file, m.indexed ? "its index is missing" :
						    "its qcow2 file is missing");
		return 0;
	}

	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc;
	rc = import_volume(eng, &m, &v, &made);
	if (rc == 0 && catalog_snapshot_get(eng->cat, v.id, m.snapshot, &old) == 0)
		rc = -EBUSY;
	if (rc == 0) {
		memset(&s, 0, sizeof(s));
		s.volume_id = v.id;
		g_strlcpy(s.name, m.snapshot, sizeof(s.name));
		g_strlcpy(s.uuid, m.uuid, sizeof(s.uuid));
		s.state = SNAP_STATE_BACKED_UP;
		s.created_at = m.created_at;
		s.backed_up_at = m.backed_up_at;
		s.virtual_size = m.virtual_size;
		s.backup_bytes = m.size;
		g_strlcpy(s.checksum, m.checksum, sizeof(s.checksum));
		rc = catalog_snapshot_insert(eng->cat, &s);
		/* the insert writes a new snapshot's fields; the backup's
		 * (times, size, checksum) are an update's */
		if (rc == 0)
			rc = catalog_snapshot_update(eng->cat, &s);
	}
	rc = catalog_tx_end(eng->cat, rc);
	if (rc == -EEXIST) {
		skip(eng, c, vol, file, "a volume of that name with another uuid is in the catalog");
		return 0;
	}
	if (rc == -EBUSY) {
		skip(eng, c, vol, file, "its snapshot name is taken in the catalog");
		return 0;
	}
	if (rc < 0)
		return rc;
	c->imported++;
	c->volumes += made;
	return 0;
}

int import_backups(struct snap_engine *eng)
{
	struct import_walk w = { .eng = eng };
	int rc = manifests_walk(eng, NULL, import_one, &w);

	if (rc < 0) {
		snap_log(LOG_ERR, "import: stopped after %u backup(s): %s; it goes on at the next mount",
			 w.c.imported, g_strerror(-rc));
		return rc;
	}
	rc = catalog_identity_set(eng->cat, IMPORT_PENDING_KEY, "done");
	if (rc < 0)
		return rc;
	if (w.c.imported || w.c.foreign || w.c.skipped)
		event_record(eng, "recovery.import", NULL, NULL, 0,
			     "a new catalog over existing secondary storage: %u backup(s) of host '%s' imported (%u new volume(s)), %u of other hosts left to them, %u skipped",
			     w.c.imported, eng->host, w.c.volumes, w.c.foreign,
			     w.c.skipped);
	return (int)w.c.imported;
}
