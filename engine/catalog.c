/*
 * catalog.c - all of sqlite3: the catalog's schema, queries and errors.
 *
 * THREAD SAFETY NOTES: one connection, opened SQLITE_OPEN_NOMUTEX and
 * guarded by cat->lock, a GRecMutex so a transaction (which holds it from
 * catalog_tx_begin() to catalog_tx_end()) can call the other functions.
 * The lock is the innermost of the engine: code holding it calls nothing
 * outside this file.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#include "fault.h"
#include "catalog.h"
#include "log.h"

#define SCHEMA_VERSION 3

struct catalog {
	sqlite3 *db;
	GRecMutex lock;
	GHashTable *idle; /* SQL text -> its prepared statement, not in use */
};

/* Which catalog a connection belongs to: a statement's cleanup finds its
 * catalog's cache from the statement alone. */
static GMutex registry_lock;
static GHashTable *registry; /* sqlite3 * -> struct catalog * */

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS volumes ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  uuid TEXT NOT NULL,"
	"  uid INTEGER NOT NULL DEFAULT 0,"
	"  gid INTEGER NOT NULL DEFAULT 0,"
	"  top_layer TEXT NOT NULL DEFAULT '');"
	"CREATE TABLE IF NOT EXISTS layers ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  volume_id INTEGER NOT NULL REFERENCES volumes(id),"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  parent TEXT NOT NULL DEFAULT '',"
	"  state INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS layers_parent ON layers(parent);"
	"CREATE TABLE IF NOT EXISTS snapshots ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  volume_id INTEGER NOT NULL REFERENCES volumes(id),"
	"  name TEXT NOT NULL,"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  layer TEXT NOT NULL DEFAULT '',"
	"  state INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  backed_up_at INTEGER NOT NULL DEFAULT 0,"
	"  virtual_size INTEGER NOT NULL DEFAULT 0,"
	"  backup_bytes INTEGER NOT NULL DEFAULT 0,"
	"  checksum TEXT NOT NULL DEFAULT '',"
	"  err INTEGER NOT NULL DEFAULT 0,"
	"  error TEXT NOT NULL DEFAULT '',"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  policy_id INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE(volume_id, name));"
	"CREATE INDEX IF NOT EXISTS snapshots_layer ON snapshots(layer);"
	"CREATE TABLE IF NOT EXISTS jobs ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind INTEGER NOT NULL,"
	"  snapshot_id INTEGER NOT NULL DEFAULT 0,"
	"  volume_id INTEGER NOT NULL DEFAULT 0,"
	"  state INTEGER NOT NULL,"
	"  not_before INTEGER NOT NULL DEFAULT 0,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  target TEXT NOT NULL DEFAULT '');"
	"CREATE TABLE IF NOT EXISTS events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL,"
	"  json TEXT NOT NULL,"
	"  uid INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS vms ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  name TEXT NOT NULL,"
	"  current INTEGER NOT NULL DEFAULT 0,"
	"  options TEXT NOT NULL DEFAULT '',"
	"  uid INTEGER NOT NULL DEFAULT 0,"
	"  gid INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS vm_snapshots ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  vm_id INTEGER NOT NULL REFERENCES vms(id),"
	"  name TEXT NOT NULL,"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  parent INTEGER NOT NULL DEFAULT 0,"
	"  type INTEGER NOT NULL,"
	"  state INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  memory TEXT NOT NULL DEFAULT '',"
	"  policy_id INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE(vm_id, name));"
	"CREATE TABLE IF NOT EXISTS vm_snapshot_disks ("
	"  vm_snapshot_id INTEGER NOT NULL REFERENCES vm_snapshots(id),"
	"  volume_id INTEGER NOT NULL REFERENCES volumes(id),"
	"  target TEXT NOT NULL,"
	"  layer TEXT NOT NULL,"
	"  PRIMARY KEY (vm_snapshot_id, volume_id));"
	"CREATE INDEX IF NOT EXISTS vm_snapshot_disks_layer ON vm_snapshot_disks(layer);"
	"CREATE TABLE IF NOT EXISTS alerts ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind TEXT NOT NULL,"
	"  snapshot_id INTEGER NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  json TEXT NOT NULL,"
	"  uid INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS policies ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  uid INTEGER NOT NULL,"
	"  gid INTEGER NOT NULL,"
	"  spec TEXT NOT NULL,"
	"  kind INTEGER NOT NULL,"
	"  target TEXT NOT NULL,"
	"  interval INTEGER NOT NULL,"
	"  next_run INTEGER NOT NULL,"
	"  last_run INTEGER NOT NULL DEFAULT 0,"
	"  last_slot INTEGER NOT NULL DEFAULT 0,"
	"  last_result TEXT NOT NULL DEFAULT '',"
	"  UNIQUE(kind, target, interval));"
	/* the policy thread's every wake asks min(next_run) and what is due */
	"CREATE INDEX IF NOT EXISTS policies_next_run ON policies(next_run);"
	"CREATE TABLE IF NOT EXISTS limits ("
	"  uid INTEGER PRIMARY KEY,"
	"  max_snapshots INTEGER NOT NULL);";

/* Columns later schemas added to tables of earlier ones. */
static const struct {
	int since; /* the schema version that added it */
	const char *table, *column;
} upgrades[] = {
	{ 2, "jobs", "target TEXT NOT NULL DEFAULT ''" },
	{ 3, "snapshots", "policy_id INTEGER NOT NULL DEFAULT 0" },
	{ 3, "vm_snapshots", "policy_id INTEGER NOT NULL DEFAULT 0" },
	{ 3, "vms", "uid INTEGER NOT NULL DEFAULT 0" },
	{ 3, "vms", "gid INTEGER NOT NULL DEFAULT 0" },
	{ 3, "events", "uid INTEGER NOT NULL DEFAULT 0" },
	{ 3, "alerts", "uid INTEGER NOT NULL DEFAULT 0" },
};

/* The one table from sqlite result codes to errno. */
static int catalog_errno(int rc)
{
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return -ENOENT; /* the row it refers to does not exist */
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	default:
		return -EIO;
	}
}

static int fail(struct catalog *cat, int rc, const char *what)
{
	int err = catalog_errno(rc);

	if (err != -EEXIST)
		snap_log(LOG_ERR, "catalog: %s failed: %s", what,
			 sqlite3_errmsg(cat->db));
	return err;
}

static int exec(struct catalog *cat, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(cat->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		snap_log(LOG_ERR, "catalog: '%.40s' failed: %s", sql,
			 msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return catalog_errno(rc);
	}
	return 0;
}

/*
 * Statements are prepared once and kept: parsing SQL was most of the cost
 * of a lookup (measured: `ls -l` of 10,000 snapshots asks for 10,000).
 * Every function still reads self-contained: prepare() hands out the
 * idle statement for its text (or a new one, when it is in use by a
 * caller up the stack), and the cleanup at the end of the function resets
 * it and puts it back.  All of this happens under the catalog lock.
 */
static sqlite3_stmt *prepare(struct catalog *cat, const char *sql)
{
	sqlite3_stmt *st = g_hash_table_lookup(cat->idle, sql);
	int rc;

	if (st) {
		g_hash_table_steal(cat->idle, sql);
		return st;
	}
	rc = sqlite3_prepare_v3(cat->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		snap_log(LOG_ERR, "catalog: prepare '%.60s' failed: %s", sql,
			 sqlite3_errmsg(cat->db));
		return NULL;
	}
	return st;
}

static void stmt_free(sqlite3_stmt **st)
{
	struct catalog *cat;

	if (!*st)
		return;
	g_mutex_lock(&registry_lock);
	cat = registry ? g_hash_table_lookup(registry, sqlite3_db_handle(*st)) : NULL;
	g_mutex_unlock(&registry_lock);
	sqlite3_reset(*st);
	sqlite3_clear_bindings(*st);
	if (cat && !g_hash_table_contains(cat->idle, sqlite3_sql(*st)))
		g_hash_table_insert(cat->idle, (char *)sqlite3_sql(*st), *st);
	else
		sqlite3_finalize(*st);
	*st = NULL;
}
#define _cleanup_stmt_ __attribute__((cleanup(stmt_free)))

static void lock_release(struct catalog **cat)
{
	if (*cat)
		g_rec_mutex_unlock(&(*cat)->lock);
}
/* Holds the catalog lock until the end of the enclosing block. */
#define CATALOG_LOCKED(cat)                                                   \
	struct catalog *_locked __attribute__((cleanup(lock_release))) = (cat); \
	g_rec_mutex_lock(&_locked->lock)

static void copy_text(char *dst, size_t size, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	g_strlcpy(dst, t ? (const char *)t : "", size);
}
#define COPY_TEXT(dst, st, col) copy_text((dst), sizeof(dst), (st), (col))

/* Run a statement with no result rows. */
static int step_done(struct catalog *cat, sqlite3_stmt *st, const char *what)
{
	int rc = fault("catalog.write", EIO) ? SQLITE_IOERR : sqlite3_step(st);

	if (rc != SQLITE_DONE)
		return fail(cat, rc, what);
	return 0;
}

/* ALTER TABLE @table ADD COLUMN @column, when @table exists (a missing one
 * is made whole by the schema). */
static int add_column(struct catalog *cat, const char *table, const char *column)
{
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1");
	g_autofree char *sql = NULL;
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return fail(cat, rc, "schema upgrade");
	sql = g_strdup_printf("ALTER TABLE %s ADD COLUMN %s", table, column);
	return exec(cat, sql);
}

/*
 * catalog_open() failed before it read the schema version: one message
 * naming the file and why.  When sqlite could not open it, its text
 * ("unable to open database file") names no reason, and its errno is
 * often that of its read-only retry (ENOENT in a read-only directory):
 * the system's answer to the same open says why.
 */
static int open_failed(struct catalog *cat, const char *path, int rc)
{
	int fd;

	if ((rc & 0xff) == SQLITE_CANTOPEN) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = -errno;
			snap_log(LOG_ERR, "catalog: cannot open '%s': %s", path,
				 g_strerror(-rc));
			return rc;
		}
		close(fd);
	}
	snap_log(LOG_ERR, "catalog: cannot open '%s': %s", path,
		 sqlite3_errmsg(cat->db));
	return catalog_errno(rc);
}

int catalog_open(const char *path, struct catalog **out)
{
	struct catalog *cat = g_new0(struct catalog, 1);
	sqlite3_stmt *st = NULL;
	int rc, version = 0;
	guint i;

	g_rec_mutex_init(&cat->lock);
	cat->idle = g_hash_table_new(g_str_hash, g_str_equal);
	/* on failure sqlite still hands back a handle, closed at undo_open */
	rc = sqlite3_open_v2(path, &cat->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc == SQLITE_OK) {
		sqlite3_extended_result_codes(cat->db, 1);
		/* the first statements read the file: a file that is not a
		 * database fails here */
		rc = sqlite3_exec(cat->db, "PRAGMA journal_mode=WAL;"
					   "PRAGMA synchronous=FULL;"
					   "PRAGMA foreign_keys=ON;",
				  NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(cat->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			rc = SQLITE_OK;
		else if (rc == SQLITE_DONE)
			rc = SQLITE_CORRUPT;
	}
	if (rc != SQLITE_OK) {
		rc = open_failed(cat, path, rc);
		goto undo_stmt;
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (version > SCHEMA_VERSION) {
		snap_log(LOG_ERR, "catalog: '%s' has schema %d, newer than %d",
			 path, version, SCHEMA_VERSION);
		rc = -EINVAL;
		goto undo_open;
	}
	rc = exec(cat, "BEGIN IMMEDIATE");
	if (rc < 0)
		goto undo_open;
	/* an old catalog gets the new columns before the new tables and
	 * indexes are made (a fresh one, version 0, has them all) */
	for (i = 0; rc == 0 && version > 0 && i < G_N_ELEMENTS(upgrades); i++)
		if (version < upgrades[i].since)
			rc = add_column(cat, upgrades[i].table, upgrades[i].column);
	if (rc == 0)
		rc = exec(cat, schema);
	if (rc == 0)
		rc = exec(cat, "PRAGMA user_version=" G_STRINGIFY(SCHEMA_VERSION));
	if (rc == 0)
		rc = exec(cat, "COMMIT");
	if (rc < 0) {
		exec(cat, "ROLLBACK");
		goto undo_open;
	}
	g_mutex_lock(&registry_lock);
	if (!registry)
		registry = g_hash_table_new(g_direct_hash, g_direct_equal);
	g_hash_table_insert(registry, cat->db, cat);
	g_mutex_unlock(&registry_lock);
	*out = cat;
	return 0;

undo_stmt:
	if (st)
		sqlite3_finalize(st);
undo_open:
	sqlite3_close(cat->db);
	g_hash_table_destroy(cat->idle);
	g_rec_mutex_clear(&cat->lock);
	g_free(cat);
	return rc;
}

void catalog_close(struct catalog *cat)
{
	GHashTableIter it;
	gpointer st;

	if (!cat)
		return;
	g_mutex_lock(&registry_lock);
	if (registry)
		g_hash_table_remove(registry, cat->db);
	g_mutex_unlock(&registry_lock);
	g_hash_table_iter_init(&it, cat->idle);
	while (g_hash_table_iter_next(&it, NULL, &st))
		sqlite3_finalize(st);
	g_hash_table_destroy(cat->idle);
	sqlite3_close(cat->db);
	g_rec_mutex_clear(&cat->lock);
	g_free(cat);
}

int catalog_tx_begin(struct catalog *cat)
{
	int rc;

	g_rec_mutex_lock(&cat->lock);
	rc = fault("catalog.begin", EIO) ? -EIO : exec(cat, "BEGIN IMMEDIATE");
	if (rc < 0)
		g_rec_mutex_unlock(&cat->lock);
	return rc;
}

int catalog_tx_end(struct catalog *cat, int rc)
{
	if (rc >= 0) {
		int c = exec(cat, "COMMIT");

		if (c < 0) {
			exec(cat, "ROLLBACK");
			rc = c;
		}
	} else {
		exec(cat, "ROLLBACK");
	}
	g_rec_mutex_unlock(&cat->lock);
	return rc;
}

const char *catalog_sqlite_version(void)
{
	return sqlite3_libversion();
}

int catalog_integrity_check(struct catalog *cat)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat, "PRAGMA integrity_check");

	if (!st || sqlite3_step(st) != SQLITE_ROW)
		return -EIO;
	return strcmp((const char *)sqlite3_column_text(st, 0), "ok") ? -EIO : 0;
}

/*
 * Step @st to the end, appending each row as filled by @row (a struct of
 * @size bytes) to a new GArray.  Return: the count, *@out owns the array.
 */
typedef void (*row_fn)(sqlite3_stmt *st, void *row);

static int rows_query(struct catalog *cat, sqlite3_stmt *st, size_t size,
		      row_fn row, const char *what, GArray **out)
{
	g_autofree void *buf = g_malloc0(size);
	GArray *a;
	int rc;

	if (!st)
		return -EIO;
	a = g_array_new(FALSE, TRUE, (guint)size);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row(st, buf);
		g_array_append_vals(a, buf, 1);
	}
	if (rc != SQLITE_DONE) {
		g_array_free(a, TRUE);
		return fail(cat, rc, what);
	}
	*out = a;
	return (int)a->len;
}

/*
 * Step @st once and fill *@out with @row.  Return: 0, -ENOENT when there
 * is no row, -EIO (@what logged) when the catalog fails.
 */
static int row_one(struct catalog *cat, sqlite3_stmt *st, row_fn row,
		   const char *what, void *out)
{
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return fail(cat, rc, what);
	row(st, out);
	return 0;
}

/* ---- volumes ---------------------------------------------------------- */

#define VOLUME_COLS "id, name, uuid, uid, gid, top_layer"

static void volume_row(sqlite3_stmt *st, struct catalog_volume *v)
{
	v->id = sqlite3_column_int64(st, 0);
	COPY_TEXT(v->name, st, 1);
	COPY_TEXT(v->uuid, st, 2);
	v->uid = (uid_t)sqlite3_column_int64(st, 3);
	v->gid = (gid_t)sqlite3_column_int64(st, 4);
	COPY_TEXT(v->top_layer, st, 5);
}

int catalog_volume_get(struct catalog *cat, const char *name,
		       struct catalog_volume *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " VOLUME_COLS " FROM volumes WHERE name = ?1");

	if (st)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return row_one(cat, st, (row_fn)volume_row, "volume read", out);
}

int catalog_volume_get_by_id(struct catalog *cat, int64_t id,
			     struct catalog_volume *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " VOLUME_COLS " FROM volumes WHERE id = ?1");

	if (st)
		sqlite3_bind_int64(st, 1, id);
	return row_one(cat, st, (row_fn)volume_row, "volume read", out);
}

int catalog_volume_insert(struct catalog *cat, struct catalog_volume *vol)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"INSERT INTO volumes(name, uuid, uid, gid, top_layer)"
		" VALUES (?1, ?2, ?3, ?4, ?5)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, vol->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, vol->uuid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, vol->uid);
	sqlite3_bind_int64(st, 4, vol->gid);
	sqlite3_bind_text(st, 5, vol->top_layer, -1, SQLITE_STATIC);
	rc = step_done(cat, st, "volume insert");
	if (rc == 0)
		vol->id = sqlite3_last_insert_rowid(cat->db);
	return rc;
}

int catalog_volume_update(struct catalog *cat, const struct catalog_volume *vol)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"UPDATE volumes SET uid = ?2, gid = ?3, top_layer = ?4"
		" WHERE id = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, vol->id);
	sqlite3_bind_int64(st, 2, vol->uid);
	sqlite3_bind_int64(st, 3, vol->gid);
	sqlite3_bind_text(st, 4, vol->top_layer, -1, SQLITE_STATIC);
	return step_done(cat, st, "volume update");
}

int catalog_volume_all(struct catalog *cat, GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " VOLUME_COLS " FROM volumes ORDER BY name");
	return rows_query(cat, st, sizeof(struct catalog_volume), (row_fn)volume_row,
			  "volume list", out);
}

/* ---- layers ----------------------------------------------------------- */

#define LAYER_COLS "id, volume_id, uuid, parent, state"

static void layer_row(sqlite3_stmt *st, struct catalog_layer *l)
{
	l->id = sqlite3_column_int64(st, 0);
	l->volume_id = sqlite3_column_int64(st, 1);
	COPY_TEXT(l->uuid, st, 2);
	COPY_TEXT(l->parent, st, 3);
	l->state = sqlite3_column_int(st, 4);
}

int catalog_layer_insert(struct catalog *cat, struct catalog_layer *layer)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"INSERT INTO layers(volume_id, uuid, parent, state)"
		" VALUES (?1, ?2, ?3, ?4)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, layer->volume_id);
	sqlite3_bind_text(st, 2, layer->uuid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, layer->parent, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, layer->state);
	rc = step_done(cat, st, "layer insert");
	if (rc == 0)
		layer->id = sqlite3_last_insert_rowid(cat->db);
	return rc;
}

int catalog_layer_get(struct catalog *cat, const char *uuid,
		      struct catalog_layer *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " LAYER_COLS " FROM layers WHERE uuid = ?1");

	if (st)
		sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
	return row_one(cat, st, (row_fn)layer_row, "layer read", out);
}

int catalog_layer_update(struct catalog *cat, const struct catalog_layer *layer)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"UPDATE layers SET parent = ?2, state = ?3 WHERE uuid = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, layer->uuid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, layer->parent, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, layer->state);
	return step_done(cat, st, "layer update");
}

int catalog_layer_delete(struct catalog *cat, const char *uuid)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"DELETE FROM layers WHERE uuid = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
	return step_done(cat, st, "layer delete");
}

int catalog_layer_list(struct catalog *cat, int64_t volume_id, GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " LAYER_COLS " FROM layers"
		" WHERE ?1 < 0 OR volume_id = ?1 ORDER BY id");
	if (st) {
		sqlite3_bind_int64(st, 1, volume_id);
	}
	return rows_query(cat, st, sizeof(struct catalog_layer), (row_fn)layer_row,
			  "layer list", out);
}

int catalog_layer_children(struct catalog *cat, const char *uuid)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT count(*) FROM layers WHERE parent = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		return fail(cat, SQLITE_ERROR, "layer children");
	return sqlite3_column_int(st, 0);
}

/* ---- snapshots -------------------------------------------------------- */

#define SNAPSHOT_COLS                                                       \
	"s.id, s.volume_id, v.name, s.name, s.uuid, s.layer, s.state,"     \
	" s.created_at, s.backed_up_at, s.virtual_size, s.backup_bytes,"   \
	" s.checksum, s.err, s.error, s.attempts, s.policy_id"
#define SNAPSHOT_FROM " FROM snapshots s JOIN volumes v ON v.id = s.volume_id"

static void snapshot_row(sqlite3_stmt *st, struct catalog_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->id = sqlite3_column_int64(st, 0);
	s->volume_id = sqlite3_column_int64(st, 1);
	COPY_TEXT(s->volume, st, 2);
	COPY_TEXT(s->name, st, 3);
	COPY_TEXT(s->uuid, st, 4);
	COPY_TEXT(s->layer, st, 5);
	s->state = sqlite3_column_int(st, 6);
	s->created_at = sqlite3_column_int64(st, 7);
	s->backed_up_at = sqlite3_column_int64(st, 8);
	s->virtual_size = (uint64_t)sqlite3_column_int64(st, 9);
	s->backup_bytes = (uint64_t)sqlite3_column_int64(st, 10);
	COPY_TEXT(s->checksum, st, 11);
	s->err = sqlite3_column_int(st, 12);
	COPY_TEXT(s->error, st, 13);
	s->attempts = sqlite3_column_int(st, 14);
	s->policy_id = sqlite3_column_int64(st, 15);
}

int catalog_snapshot_get(struct catalog *cat, int64_t volume_id,
			 const char *name, struct catalog_snapshot *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " SNAPSHOT_COLS SNAPSHOT_FROM
		" WHERE s.volume_id = ?1 AND s.name = ?2");

	if (st) {
		sqlite3_bind_int64(st, 1, volume_id);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	}
	return row_one(cat, st, (row_fn)snapshot_row, "snapshot read", out);
}

int catalog_snapshot_get_by_id(struct catalog *cat, int64_t id,
			       struct catalog_snapshot *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " SNAPSHOT_COLS SNAPSHOT_FROM " WHERE s.id = ?1");

	if (st)
		sqlite3_bind_int64(st, 1, id);
	return row_one(cat, st, (row_fn)snapshot_row, "snapshot read", out);
}

int catalog_snapshot_by_layer(struct catalog *cat, const char *uuid,
			      struct catalog_snapshot *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " SNAPSHOT_COLS SNAPSHOT_FROM " WHERE s.layer = ?1");

	if (st)
		sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
	return row_one(cat, st, (row_fn)snapshot_row, "snapshot read", out);
}

int catalog_snapshot_insert(struct catalog *cat, struct catalog_snapshot *snap)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"INSERT INTO snapshots(volume_id, name, uuid, layer, state,"
		" created_at, virtual_size, policy_id)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, snap->volume_id);
	sqlite3_bind_text(st, 2, snap->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, snap->uuid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, snap->layer, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, snap->state);
	sqlite3_bind_int64(st, 6, snap->created_at);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)snap->virtual_size);
	sqlite3_bind_int64(st, 8, snap->policy_id);
	rc = step_done(cat, st, "snapshot insert");
	if (rc == 0)
		snap->id = sqlite3_last_insert_rowid(cat->db);
	return rc;
}

int catalog_snapshot_update(struct catalog *cat,
			    const struct catalog_snapshot *snap)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"UPDATE snapshots SET name = ?2, layer = ?3, state = ?4,"
		" backed_up_at = ?5, virtual_size = ?6, backup_bytes = ?7,"
		" checksum = ?8, err = ?9, error = ?10, attempts = ?11"
		" WHERE id = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, snap->id);
	sqlite3_bind_text(st, 2, snap->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, snap->layer, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, snap->state);
	sqlite3_bind_int64(st, 5, snap->backed_up_at);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)snap->virtual_size);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)snap->backup_bytes);
	sqlite3_bind_text(st, 8, snap->checksum, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, snap->err);
	sqlite3_bind_text(st, 10, snap->error, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 11, snap->attempts);
	return step_done(cat, st, "snapshot update");
}

int catalog_snapshot_delete(struct catalog *cat, int64_t id)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"DELETE FROM snapshots WHERE id = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	return step_done(cat, st, "snapshot delete");
}

int catalog_snapshot_list(struct catalog *cat, int64_t volume_id, int state,
			  GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " SNAPSHOT_COLS SNAPSHOT_FROM
		" WHERE (?1 < 0 OR s.volume_id = ?1) AND (?2 < 0 OR s.state = ?2)"
		" ORDER BY s.created_at, s.id");
	if (st) {
		sqlite3_bind_int64(st, 1, volume_id);
		sqlite3_bind_int(st, 2, state);
	}
	return rows_query(cat, st, sizeof(struct catalog_snapshot), (row_fn)snapshot_row,
			  "snapshot list", out);
}

static int names_query(struct catalog *cat, sqlite3_stmt *st, char ***out)
{
	GPtrArray *a;
	int rc;

	if (!st)
		return -EIO;
	a = g_ptr_array_new();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		g_ptr_array_add(a, g_strdup((const char *)
						    sqlite3_column_text(st, 0)));
	if (rc != SQLITE_DONE) {
		g_ptr_array_add(a, NULL);
		g_strfreev((char **)g_ptr_array_free(a, FALSE));
		return fail(cat, rc, "name list");
	}
	rc = (int)a->len;
	g_ptr_array_add(a, NULL);
	*out = (char **)g_ptr_array_free(a, FALSE);
	return rc;
}

int catalog_snapshot_names(struct catalog *cat, int64_t volume_id,
			   bool backed_up, char ***out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT name FROM snapshots WHERE volume_id = ?1"
		" AND state != ?2 AND (?3 = 0 OR state = ?4) ORDER BY name");

	if (st) {
		sqlite3_bind_int64(st, 1, volume_id);
		sqlite3_bind_int(st, 2, SNAP_STATE_CREATING);
		sqlite3_bind_int(st, 3, backed_up);
		sqlite3_bind_int(st, 4, SNAP_STATE_BACKED_UP);
	}
	return names_query(cat, st, out);
}

static void dirent_row(sqlite3_stmt *st, struct catalog_dirent *d)
{
	d->id = sqlite3_column_int64(st, 0);
	COPY_TEXT(d->name, st, 1);
	d->created_at = sqlite3_column_int64(st, 2);
}

int catalog_snapshot_dirents(struct catalog *cat, int64_t volume_id,
			     GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT id, name, created_at FROM snapshots WHERE volume_id = ?1"
		" AND state != ?2 ORDER BY name");

	if (st) {
		sqlite3_bind_int64(st, 1, volume_id);
		sqlite3_bind_int(st, 2, SNAP_STATE_CREATING);
	}
	return rows_query(cat, st, sizeof(struct catalog_dirent),
			  (row_fn)dirent_row, "snapshot dirents", out);
}

int catalog_backup_volume_names(struct catalog *cat, char ***out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT DISTINCT v.name FROM volumes v JOIN snapshots s"
		" ON s.volume_id = v.id WHERE s.state = ?1 ORDER BY v.name");

	if (st)
		sqlite3_bind_int(st, 1, SNAP_STATE_BACKED_UP);
	return names_query(cat, st, out);
}

/* ---- jobs ------------------------------------------------------------- */

#define JOB_COLS "id, kind, snapshot_id, volume_id, state, not_before, attempts, target"

static void job_row(sqlite3_stmt *st, struct catalog_job *j)
{
	j->id = sqlite3_column_int64(st, 0);
	j->kind = sqlite3_column_int(st, 1);
	j->snapshot_id = sqlite3_column_int64(st, 2);
	j->volume_id = sqlite3_column_int64(st, 3);
	j->state = sqlite3_column_int(st, 4);
	j->not_before = sqlite3_column_int64(st, 5);
	j->attempts = sqlite3_column_int(st, 6);
	COPY_TEXT(j->target, st, 7);
}

int catalog_job_insert(struct catalog *cat, struct catalog_job *job)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"INSERT INTO jobs(kind, snapshot_id, volume_id, state,"
		" not_before, attempts, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int(st, 1, job->kind);
	sqlite3_bind_int64(st, 2, job->snapshot_id);
	sqlite3_bind_int64(st, 3, job->volume_id);
	sqlite3_bind_int(st, 4, job->state);
	sqlite3_bind_int64(st, 5, job->not_before);
	sqlite3_bind_int(st, 6, job->attempts);
	sqlite3_bind_text(st, 7, job->target, -1, SQLITE_STATIC);
	rc = step_done(cat, st, "job insert");
	if (rc == 0)
		job->id = sqlite3_last_insert_rowid(cat->db);
	return rc;
}

int catalog_job_get(struct catalog *cat, int64_t id, struct catalog_job *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " JOB_COLS " FROM jobs WHERE id = ?1");

	if (st)
		sqlite3_bind_int64(st, 1, id);
	return row_one(cat, st, (row_fn)job_row, "job read", out);
}

int catalog_job_for_snapshot(struct catalog *cat, int64_t snapshot_id,
			     struct catalog_job *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " JOB_COLS " FROM jobs WHERE kind = ?1"
		" AND snapshot_id = ?2");

	if (st) {
		sqlite3_bind_int(st, 1, JOB_KIND_BACKUP);
		sqlite3_bind_int64(st, 2, snapshot_id);
	}
	return row_one(cat, st, (row_fn)job_row, "job read", out);
}

int catalog_job_find_merge(struct catalog *cat, int64_t volume_id,
			   enum job_state state, struct catalog_job *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " JOB_COLS " FROM jobs WHERE kind = ?1"
		" AND volume_id = ?2 AND state = ?3");

	if (st) {
		sqlite3_bind_int(st, 1, JOB_KIND_MERGE);
		sqlite3_bind_int64(st, 2, volume_id);
		sqlite3_bind_int(st, 3, state);
	}
	return row_one(cat, st, (row_fn)job_row, "job read", out);
}

int catalog_job_update(struct catalog *cat, const struct catalog_job *job)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"UPDATE jobs SET state = ?2, not_before = ?3, attempts = ?4"
		" WHERE id = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, job->id);
	sqlite3_bind_int(st, 2, job->state);
	sqlite3_bind_int64(st, 3, job->not_before);
	sqlite3_bind_int(st, 4, job->attempts);
	return step_done(cat, st, "job update");
}

int catalog_job_delete(struct catalog *cat, int64_t id)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"DELETE FROM jobs WHERE id = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	return step_done(cat, st, "job delete");
}

int catalog_job_claim(struct catalog *cat, int64_t now, struct catalog_job *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " JOB_COLS " FROM jobs j WHERE"
		" (state = ?1 OR (state = ?2 AND not_before <= ?3))"
		" AND NOT (kind = ?4 AND EXISTS (SELECT 1 FROM jobs r WHERE"
		"   r.kind = ?4 AND r.volume_id = j.volume_id AND r.state = ?5))"
		" AND kind != ?6"
		" ORDER BY id LIMIT 1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int(st, 1, JOB_STATE_QUEUED);
	sqlite3_bind_int(st, 2, JOB_STATE_WAITING);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int(st, 4, JOB_KIND_MERGE);
	sqlite3_bind_int(st, 5, JOB_STATE_RUNNING);
	sqlite3_bind_int(st, 6, JOB_KIND_REVERT); /* run by the writer itself */
	rc = row_one(cat, st, (row_fn)job_row, "job read", out);
	if (rc < 0)
		return rc;
	out->state = JOB_STATE_RUNNING;
	return catalog_job_update(cat, out);
}

int catalog_job_next_due(struct catalog *cat, int64_t *when)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT min(not_before) FROM jobs WHERE state = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_int(st, 1, JOB_STATE_WAITING);
	if (sqlite3_step(st) != SQLITE_ROW)
		return fail(cat, SQLITE_ERROR, "job next due");
	if (sqlite3_column_type(st, 0) == SQLITE_NULL)
		return -ENOENT;
	*when = sqlite3_column_int64(st, 0);
	return 0;
}

int catalog_job_requeue_running(struct catalog *cat)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"UPDATE jobs SET state = ?1 WHERE state = ?2");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int(st, 1, JOB_STATE_QUEUED);
	sqlite3_bind_int(st, 2, JOB_STATE_RUNNING);
	rc = step_done(cat, st, "job requeue");
	return rc < 0 ? rc : sqlite3_changes(cat->db);
}

static int id_query(struct catalog *cat, sqlite3_stmt *st, GArray **out)
{
	GArray *a;
	int rc;

	if (!st)
		return -EIO;
	a = g_array_new(FALSE, TRUE, sizeof(int64_t));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);

		g_array_append_val(a, id);
	}
	if (rc != SQLITE_DONE) {
		g_array_free(a, TRUE);
		return fail(cat, rc, "id list");
	}
	*out = a;
	return (int)a->len;
}

int catalog_job_readers(struct catalog *cat, int64_t snapshot_id)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT count(*) FROM jobs WHERE snapshot_id = ?1"
		" AND kind IN (?2, ?3)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, snapshot_id);
	sqlite3_bind_int(st, 2, JOB_KIND_CLONE);
	sqlite3_bind_int(st, 3, JOB_KIND_REVERT);
	if (sqlite3_step(st) != SQLITE_ROW)
		return fail(cat, SQLITE_ERROR, "job readers");
	return sqlite3_column_int(st, 0);
}

int catalog_job_by_target(struct catalog *cat, const char *target,
			  struct catalog_job *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " JOB_COLS " FROM jobs WHERE kind = ?1 AND target = ?2");

	if (st) {
		sqlite3_bind_int(st, 1, JOB_KIND_CLONE);
		sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
	}
	return row_one(cat, st, (row_fn)job_row, "job read", out);
}

int catalog_job_list(struct catalog *cat, enum job_kind kind, GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " JOB_COLS " FROM jobs WHERE kind = ?1 ORDER BY id");

	if (st)
		sqlite3_bind_int(st, 1, kind);
	return rows_query(cat, st, sizeof(struct catalog_job), (row_fn)job_row,
			  "job list", out);
}

int catalog_job_ids(struct catalog *cat, GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT id FROM jobs ORDER BY id");

	return id_query(cat, st, out);
}

/* ---- events ----------------------------------------------------------- */

int catalog_event_add(struct catalog *cat, int64_t time, uid_t uid,
		      const char *json)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"INSERT INTO events(time, json, uid) VALUES (?1, ?2, ?3)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, time);
	sqlite3_bind_text(st, 2, json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, uid);
	return step_done(cat, st, "event insert");
}

int catalog_events_text(struct catalog *cat, int64_t uid, GString *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT json FROM events WHERE ?1 < 0 OR uid = ?1 ORDER BY id");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, uid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		g_string_append(out, (const char *)sqlite3_column_text(st, 0));
		g_string_append_c(out, '\n');
	}
	return rc == SQLITE_DONE ? 0 : fail(cat, rc, "event list");
}

/* ---- alerts ----------------------------------------------------------- */

int catalog_alert_raise(struct catalog *cat, const char *kind,
			int64_t snapshot_id, int64_t time, uid_t uid,
			const char *json, int64_t *id_out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *find = prepare(cat,
		"SELECT id FROM alerts WHERE kind = ?1 AND snapshot_id = ?2");
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int64_t id = 0;
	int rc;

	if (!find)
		return -EIO;
	sqlite3_bind_text(find, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(find, 2, snapshot_id);
	rc = sqlite3_step(find);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(find, 0);
	else if (rc != SQLITE_DONE)
		return fail(cat, rc, "alert find");

	if (id)
		st = prepare(cat, "UPDATE alerts SET time = ?3, json = ?4,"
				  " uid = ?6 WHERE id = ?5");
	else
		st = prepare(cat, "INSERT INTO alerts(kind, snapshot_id, time,"
				  " json, uid) VALUES (?1, ?2, ?3, ?4, ?6)");
	if (!st)
		return -EIO;
	if (!id) {
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, snapshot_id);
	}
	sqlite3_bind_int64(st, 3, time);
	sqlite3_bind_text(st, 4, json, -1, SQLITE_STATIC);
	if (id)
		sqlite3_bind_int64(st, 5, id);
	sqlite3_bind_int64(st, 6, uid);
	rc = step_done(cat, st, "alert raise");
	if (rc == 0 && id_out)
		*id_out = id ? id : sqlite3_last_insert_rowid(cat->db);
	return rc;
}

int catalog_alert_resolve(struct catalog *cat, const char *kind,
			  int64_t snapshot_id)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"DELETE FROM alerts WHERE kind = ?1 AND snapshot_id = ?2");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, snapshot_id);
	rc = step_done(cat, st, "alert resolve");
	return rc < 0 ? rc : sqlite3_changes(cat->db);
}

int catalog_alert_owner(struct catalog *cat, int64_t id, uid_t *uid)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT uid FROM alerts WHERE id = ?1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return fail(cat, rc, "alert owner");
	*uid = (uid_t)sqlite3_column_int64(st, 0);
	return 0;
}

int catalog_alert_get(struct catalog *cat, int64_t id, char **json_out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT json FROM alerts WHERE id = ?1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return fail(cat, rc, "alert read");
	*json_out = g_strdup((const char *)sqlite3_column_text(st, 0));
	return 0;
}

int catalog_alert_delete(struct catalog *cat, int64_t id)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"DELETE FROM alerts WHERE id = ?1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = step_done(cat, st, "alert delete");
	if (rc == 0 && sqlite3_changes(cat->db) == 0)
		return -ENOENT;
	return rc;
}

int catalog_alert_ids(struct catalog *cat, GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT id FROM alerts ORDER BY id");

	return id_query(cat, st, out);
}

/* ---- layer references ------------------------------------------------- */

int catalog_layer_referenced(struct catalog *cat, const char *uuid)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT (SELECT count(*) FROM snapshots WHERE layer = ?1) +"
		" (SELECT count(*) FROM vm_snapshot_disks WHERE layer = ?1)");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		return fail(cat, SQLITE_ERROR, "layer references");
	return sqlite3_column_int(st, 0);
}

/* ---- VMs -------------------------------------------------------------- */

#define VM_COLS "id, uuid, name, current, options, uid, gid"

static void vm_row(sqlite3_stmt *st, struct catalog_vm *v)
{
	memset(v, 0, sizeof(*v));
	v->id = sqlite3_column_int64(st, 0);
	COPY_TEXT(v->uuid, st, 1);
	COPY_TEXT(v->name, st, 2);
	v->current = sqlite3_column_int64(st, 3);
	COPY_TEXT(v->options, st, 4);
	v->uid = (uid_t)sqlite3_column_int64(st, 5);
	v->gid = (gid_t)sqlite3_column_int64(st, 6);
}

int catalog_vm_get(struct catalog *cat, const char *uuid, struct catalog_vm *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " VM_COLS " FROM vms WHERE uuid = ?1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return fail(cat, rc, "vm read");
	vm_row(st, out);
	return 0;
}

int catalog_vm_get_by_id(struct catalog *cat, int64_t id, struct catalog_vm *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " VM_COLS " FROM vms WHERE id = ?1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return fail(cat, rc, "vm read");
	vm_row(st, out);
	return 0;
}

int catalog_vm_get_by_name(struct catalog *cat, const char *name,
			   struct catalog_vm *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " VM_COLS " FROM vms WHERE name = ?1 ORDER BY id DESC LIMIT 1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return fail(cat, rc, "vm read");
	vm_row(st, out);
	return 0;
}

int catalog_vm_ensure(struct catalog *cat, const char *uuid, const char *name,
		      struct catalog_vm *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc = catalog_vm_get(cat, uuid, out);

	if (rc == 0 && strcmp(out->name, name) == 0)
		return 0;
	if (rc == 0)
		st = prepare(cat, "UPDATE vms SET name = ?2 WHERE uuid = ?1");
	else if (rc == -ENOENT)
		st = prepare(cat, "INSERT INTO vms(uuid, name) VALUES (?1, ?2)");
	else
		return rc;
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = step_done(cat, st, "vm write");
	if (rc < 0)
		return rc;
	return catalog_vm_get(cat, uuid, out);
}

int catalog_vm_all(struct catalog *cat, GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " VM_COLS " FROM vms ORDER BY id");
	return rows_query(cat, st, sizeof(struct catalog_vm), (row_fn)vm_row,
			  "vm list", out);
}

int catalog_vm_delete(struct catalog *cat, int64_t id)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"DELETE FROM vms WHERE id = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	return step_done(cat, st, "vm delete");
}

int catalog_vm_update(struct catalog *cat, const struct catalog_vm *vm)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"UPDATE vms SET current = ?2, options = ?3, uid = ?4, gid = ?5"
		" WHERE id = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, vm->id);
	sqlite3_bind_int64(st, 2, vm->current);
	sqlite3_bind_text(st, 3, vm->options, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, vm->uid);
	sqlite3_bind_int64(st, 5, vm->gid);
	return step_done(cat, st, "vm update");
}

#define VMSNAP_COLS "id, vm_id, name, uuid, parent, type, state, created_at, memory, policy_id"

static void vmsnap_row(sqlite3_stmt *st, struct catalog_vm_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->id = sqlite3_column_int64(st, 0);
	s->vm_id = sqlite3_column_int64(st, 1);
	COPY_TEXT(s->name, st, 2);
	COPY_TEXT(s->uuid, st, 3);
	s->parent = sqlite3_column_int64(st, 4);
	s->type = sqlite3_column_int(st, 5);
	s->state = sqlite3_column_int(st, 6);
	s->created_at = sqlite3_column_int64(st, 7);
	COPY_TEXT(s->memory, st, 8);
	s->policy_id = sqlite3_column_int64(st, 9);
}

int catalog_vm_snapshot_get(struct catalog *cat, int64_t vm_id,
			    const char *name, struct catalog_vm_snapshot *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " VMSNAP_COLS " FROM vm_snapshots WHERE vm_id = ?1 AND name = ?2");

	if (st) {
		sqlite3_bind_int64(st, 1, vm_id);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	}
	return row_one(cat, st, (row_fn)vmsnap_row, "vm snapshot read", out);
}

int catalog_vm_snapshot_get_by_id(struct catalog *cat, int64_t id,
				  struct catalog_vm_snapshot *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " VMSNAP_COLS " FROM vm_snapshots WHERE id = ?1");

	if (st)
		sqlite3_bind_int64(st, 1, id);
	return row_one(cat, st, (row_fn)vmsnap_row, "vm snapshot read", out);
}

int catalog_vm_snapshot_insert(struct catalog *cat,
			       struct catalog_vm_snapshot *s)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"INSERT INTO vm_snapshots(vm_id, name, uuid, parent, type, state,"
		" created_at, memory, policy_id)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, s->vm_id);
	sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, s->uuid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, s->parent);
	sqlite3_bind_int(st, 5, s->type);
	sqlite3_bind_int(st, 6, s->state);
	sqlite3_bind_int64(st, 7, s->created_at);
	sqlite3_bind_text(st, 8, s->memory, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, s->policy_id);
	rc = step_done(cat, st, "vm snapshot insert");
	if (rc == 0)
		s->id = sqlite3_last_insert_rowid(cat->db);
	return rc;
}

int catalog_vm_snapshot_update(struct catalog *cat,
			       const struct catalog_vm_snapshot *s)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"UPDATE vm_snapshots SET name = ?2, parent = ?3, state = ?4,"
		" memory = ?5 WHERE id = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, s->id);
	sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, s->parent);
	sqlite3_bind_int(st, 4, s->state);
	sqlite3_bind_text(st, 5, s->memory, -1, SQLITE_STATIC);
	return step_done(cat, st, "vm snapshot update");
}

int catalog_vm_snapshot_delete(struct catalog *cat, int64_t id)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *d = prepare(cat,
		"DELETE FROM vm_snapshot_disks WHERE vm_snapshot_id = ?1");
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"DELETE FROM vm_snapshots WHERE id = ?1");
	int rc;

	if (!d || !st)
		return -EIO;
	sqlite3_bind_int64(d, 1, id);
	sqlite3_bind_int64(st, 1, id);
	rc = step_done(cat, d, "vm snapshot disks delete");
	return rc < 0 ? rc : step_done(cat, st, "vm snapshot delete");
}

int catalog_vm_snapshot_list(struct catalog *cat, int64_t vm_id, GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " VMSNAP_COLS " FROM vm_snapshots"
		" WHERE ?1 < 0 OR vm_id = ?1 ORDER BY created_at, id");
	if (st) {
		sqlite3_bind_int64(st, 1, vm_id);
	}
	return rows_query(cat, st, sizeof(struct catalog_vm_snapshot), (row_fn)vmsnap_row,
			  "vm snapshot list", out);
}

int catalog_vm_snapshot_disk_add(struct catalog *cat, int64_t vm_snapshot_id,
				 int64_t volume_id, const char *target,
				 const char *layer)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"INSERT INTO vm_snapshot_disks(vm_snapshot_id, volume_id, target,"
		" layer) VALUES (?1, ?2, ?3, ?4)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, vm_snapshot_id);
	sqlite3_bind_int64(st, 2, volume_id);
	sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, layer, -1, SQLITE_STATIC);
	return step_done(cat, st, "vm snapshot disk insert");
}

int catalog_vm_snapshot_disks(struct catalog *cat, int64_t vm_snapshot_id,
			      GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT d.volume_id, v.name, d.target, d.layer FROM vm_snapshot_disks d"
		" JOIN volumes v ON v.id = d.volume_id WHERE d.vm_snapshot_id = ?1"
		" ORDER BY d.volume_id");
	GArray *a;
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, vm_snapshot_id);
	a = g_array_new(FALSE, TRUE, sizeof(struct catalog_vm_disk));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct catalog_vm_disk d;

		memset(&d, 0, sizeof(d));
		d.volume_id = sqlite3_column_int64(st, 0);
		COPY_TEXT(d.volume, st, 1);
		COPY_TEXT(d.target, st, 2);
		COPY_TEXT(d.layer, st, 3);
		g_array_append_val(a, d);
	}
	if (rc != SQLITE_DONE) {
		g_array_free(a, TRUE);
		return fail(cat, rc, "vm snapshot disk list");
	}
	*out = a;
	return (int)a->len;
}

/* ---- policies ---------------------------------------------------------- */

#define POLICY_COLS "id, name, uid, gid, spec, kind, target, interval," \
	" next_run, last_run, last_slot, last_result"

static void policy_row(sqlite3_stmt *st, struct catalog_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->id = sqlite3_column_int64(st, 0);
	COPY_TEXT(p->name, st, 1);
	p->uid = (uid_t)sqlite3_column_int64(st, 2);
	p->gid = (gid_t)sqlite3_column_int64(st, 3);
	COPY_TEXT(p->spec, st, 4);
	p->kind = sqlite3_column_int(st, 5);
	COPY_TEXT(p->target, st, 6);
	p->interval = sqlite3_column_int(st, 7);
	p->next_run = sqlite3_column_int64(st, 8);
	p->last_run = sqlite3_column_int64(st, 9);
	p->last_slot = sqlite3_column_int64(st, 10);
	COPY_TEXT(p->last_result, st, 11);
}

int catalog_policy_get(struct catalog *cat, const char *name,
		       struct catalog_policy *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " POLICY_COLS " FROM policies WHERE name = ?1");

	if (st)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return row_one(cat, st, (row_fn)policy_row, "policy read", out);
}

int catalog_policy_find(struct catalog *cat, int kind, const char *target,
			int interval, struct catalog_policy *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " POLICY_COLS " FROM policies"
		" WHERE kind = ?1 AND target = ?2 AND interval = ?3");

	if (st) {
		sqlite3_bind_int(st, 1, kind);
		sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, interval);
	}
	return row_one(cat, st, (row_fn)policy_row, "policy read", out);
}

int catalog_policy_put(struct catalog *cat, struct catalog_policy *p)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat, p->id ?
		"UPDATE policies SET name = ?2, uid = ?3, gid = ?4, spec = ?5,"
		" kind = ?6, target = ?7, interval = ?8, next_run = ?9,"
		" last_run = ?10, last_slot = ?11, last_result = ?12 WHERE id = ?1" :
		"INSERT INTO policies(name, uid, gid, spec, kind, target, interval,"
		" next_run, last_run, last_slot, last_result)"
		" VALUES (?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
	int rc;

	if (!st)
		return -EIO;
	if (p->id)
		sqlite3_bind_int64(st, 1, p->id);
	sqlite3_bind_text(st, 2, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, p->uid);
	sqlite3_bind_int64(st, 4, p->gid);
	sqlite3_bind_text(st, 5, p->spec, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, p->kind);
	sqlite3_bind_text(st, 7, p->target, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 8, p->interval);
	sqlite3_bind_int64(st, 9, p->next_run);
	sqlite3_bind_int64(st, 10, p->last_run);
	sqlite3_bind_int64(st, 11, p->last_slot);
	sqlite3_bind_text(st, 12, p->last_result, -1, SQLITE_STATIC);
	rc = step_done(cat, st, "policy write");
	if (rc == 0 && !p->id)
		p->id = sqlite3_last_insert_rowid(cat->db);
	return rc;
}

int catalog_policy_delete(struct catalog *cat, int64_t id)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"DELETE FROM policies WHERE id = ?1");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	return step_done(cat, st, "policy delete");
}

int catalog_policy_list(struct catalog *cat, int64_t due_by, GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT " POLICY_COLS " FROM policies"
		" WHERE ?1 < 0 OR next_run <= ?1 ORDER BY next_run, id");

	if (st)
		sqlite3_bind_int64(st, 1, due_by);
	return rows_query(cat, st, sizeof(struct catalog_policy),
			  (row_fn)policy_row, "policy list", out);
}

int catalog_policy_next_due(struct catalog *cat, int64_t *when)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT min(next_run) FROM policies");

	if (!st)
		return -EIO;
	if (sqlite3_step(st) != SQLITE_ROW)
		return fail(cat, SQLITE_ERROR, "policy next due");
	if (sqlite3_column_type(st, 0) == SQLITE_NULL)
		return -ENOENT;
	*when = sqlite3_column_int64(st, 0);
	return 0;
}

/* ---- accounts: snapshots stored and their limits --------------------- */

int catalog_snapshots_owned(struct catalog *cat, uid_t uid)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT (SELECT count(*) FROM snapshots s JOIN volumes v"
		"         ON v.id = s.volume_id WHERE v.uid = ?1 AND s.state != ?2)"
		" + (SELECT count(*) FROM vm_snapshots x JOIN vms m"
		"         ON m.id = x.vm_id WHERE m.uid = ?1 AND x.state != ?3)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, uid);
	sqlite3_bind_int(st, 2, SNAP_STATE_DESTROYING);
	sqlite3_bind_int(st, 3, VM_SNAPSHOT_EXPUNGING);
	if (sqlite3_step(st) != SQLITE_ROW)
		return fail(cat, SQLITE_ERROR, "snapshots owned");
	return sqlite3_column_int(st, 0);
}

int catalog_limit_get(struct catalog *cat, uid_t uid, int64_t *max)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT max_snapshots FROM limits WHERE uid = ?1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, uid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return fail(cat, rc, "limit read");
	*max = sqlite3_column_int64(st, 0);
	return 0;
}

int catalog_limit_set(struct catalog *cat, uid_t uid, int64_t max)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat, max < 0 ?
		"DELETE FROM limits WHERE uid = ?1" :
		"INSERT OR REPLACE INTO limits(uid, max_snapshots) VALUES (?1, ?2)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, uid);
	if (max >= 0)
		sqlite3_bind_int64(st, 2, max);
	return step_done(cat, st, "limit write");
}

static void limit_row(sqlite3_stmt *st, struct catalog_limit *l)
{
	l->uid = (uid_t)sqlite3_column_int64(st, 0);
	l->max_snapshots = sqlite3_column_int64(st, 1);
}

int catalog_limit_list(struct catalog *cat, GArray **out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = prepare(cat,
		"SELECT uid, max_snapshots FROM limits ORDER BY uid");

	return rows_query(cat, st, sizeof(struct catalog_limit),
			  (row_fn)limit_row, "limit list", out);
}
