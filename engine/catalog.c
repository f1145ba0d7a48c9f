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

#define SCHEMA_VERSION 5

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
	"  verified_at INTEGER NOT NULL DEFAULT 0,"
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
	"  target TEXT NOT NULL DEFAULT '',"
	"  source TEXT NOT NULL DEFAULT '');"
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
	"  max_snapshots INTEGER NOT NULL);"
	/* schema 5: who this catalog is (the host name, issue 14) */
	"CREATE TABLE IF NOT EXISTS identity ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL);";

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
	/* verify (verify.c): the Damaged state is a new value of the
	 * integer state column, which needs no change */
	{ 4, "snapshots", "verified_at INTEGER NOT NULL DEFAULT 0" },
	/* restore of another host's backup (issue 14): what it reads */
	{ 5, "jobs", "source TEXT NOT NULL DEFAULT ''" },
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

/* fail() - the errno of sqlite's @rc, logged naming @what, except -EEXIST
 * (a taken unique key, the caller's to report). */
static int fail(struct catalog *cat, int rc, const char *what)
{
	int err = catalog_errno(rc);
	/* the connection's message, unless @rc is not its last error (a
	 * failure point's SQLITE_IOERR: sqlite3 said "not an error") */
	const char *msg = (sqlite3_errcode(cat->db) & 0xff) == (rc & 0xff) ?
			  sqlite3_errmsg(cat->db) : sqlite3_errstr(rc);

	if (err != -EEXIST)
		snap_log(LOG_ERR, "catalog: %s failed: %s", what, msg);
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
 * prepare() hands out the idle statement for its text (or a new one,
 * when it is in use up the stack: a function holding CATALOG_LOCKED() may
 * run another query while one is open), and the query helper's
 * _cleanup_stmt_ resets it and puts it back.  All of this happens under
 * the catalog lock.  A failure is logged naming @what, the query's purpose.
 */
static sqlite3_stmt *prepare(struct catalog *cat, const char *what,
			     const char *sql)
{
	sqlite3_stmt *st = g_hash_table_lookup(cat->idle, sql);
	int rc;

	if (st) {
		g_hash_table_steal(cat->idle, sql);
		return st;
	}
	rc = sqlite3_prepare_v3(cat->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		snap_log(LOG_ERR, "catalog: %s failed: cannot prepare '%.60s': %s",
			 what, sql, sqlite3_errmsg(cat->db));
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

/*
 * ---- queries ----------------------------------------------------------
 *
 * Every catalog function below is its SQL, its bind list and, for a read,
 * its row reader.  The query_*() helpers do the rest: take the catalog
 * lock, prepare (from the cache), bind, step, translate a failure through
 * catalog_errno() and log it once naming @what (the query's purpose, e.g.
 * "volume read"), and put the statement back.  A function that runs
 * several queries holds CATALOG_LOCKED() around them so no other thread
 * comes in between (the lock is recursive).
 *
 *   query_row()     the first row, through a row reader; -ENOENT none
 *   query_rows()    every row, through a row reader, into a GArray
 *   query_names()   the first column of every row, as a string vector
 *   query_each()    every row to a callback (what the two above use)
 *   query_count()   the integer of a one-row SELECT count(*)
 *   query_exec()    a write; how many rows it changed
 *   query_write()   a write; 0
 *   query_write_or_enoent()  a write that must change a row
 *   query_insert()  an INSERT; the new row's id
 *
 * A bind list gives ?1, ?2... in order; BINDS() ends it, NULL binds
 * nothing.  Text is bound SQLITE_STATIC: it is borrowed until the helper
 * returns.  A statement may leave a ?N of the list out of its SQL (one
 * list serving an INSERT and an UPDATE), but not bind past its last ?N.
 *
 *	return query_write(cat, "layer delete",
 *			   "DELETE FROM layers WHERE uuid = ?1",
 *			   BINDS(BIND_TEXT(uuid)));
 */

enum bind_kind {
	BIND_KIND_END,
	BIND_KIND_INT,
	BIND_KIND_TEXT,
	BIND_KIND_LAST
};

struct bind {
	enum bind_kind kind;
	int64_t i;
	const char *s;
};

#define BIND_INT(v) { .kind = BIND_KIND_INT, .i = (int64_t)(v) }
#define BIND_TEXT(v) { .kind = BIND_KIND_TEXT, .s = (v) }
#define BINDS(...) ((const struct bind[]){ __VA_ARGS__, { .kind = BIND_KIND_END } })

/* Fills the struct (or scalar) @row from the current row of @st. */
typedef void (*row_fn)(sqlite3_stmt *st, void *row);

/*
 * statement_open() - the statement of @sql with @binds bound.  Call with
 * the catalog lock held.
 * Return: 0, *@out is the statement, to be freed by stmt_free (declare it
 * _cleanup_stmt_); -EIO it cannot be prepared; -errno a value cannot be
 * bound.  Logged, naming @what.
 */
static int statement_open(struct catalog *cat, const char *what,
			  const char *sql, const struct bind *binds,
			  sqlite3_stmt **out)
{
	sqlite3_stmt *st = prepare(cat, what, sql);
	int i, rc = SQLITE_OK;

	if (!st)
		return -EIO;
	for (i = 0; binds && binds[i].kind != BIND_KIND_END; i++) {
		if (binds[i].kind == BIND_KIND_TEXT)
			rc = sqlite3_bind_text(st, i + 1, binds[i].s, -1,
					       SQLITE_STATIC);
		else
			rc = sqlite3_bind_int64(st, i + 1, binds[i].i);
		if (rc != SQLITE_OK) {
			rc = fail(cat, rc, what);
			stmt_free(&st);
			return rc;
		}
	}
	*out = st;
	return 0;
}

/*
 * query_exec() - run the write @sql with @binds.  A failure point,
 * "catalog.write", before the step.
 * Return: the number of rows it changed; -errno logged naming @what
 * (-EEXIST, a constraint, is left to the caller to report).
 */
static int query_exec(struct catalog *cat, const char *what, const char *sql,
		      const struct bind *binds)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc = statement_open(cat, what, sql, binds, &st);

	if (rc < 0)
		return rc;
	rc = fault("catalog.write", EIO) ? SQLITE_IOERR : sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return fail(cat, rc, what);
	return sqlite3_changes(cat->db);
}

/* query_write() - query_exec(), whatever it changed.  Return: 0, -errno. */
static int query_write(struct catalog *cat, const char *what, const char *sql,
		       const struct bind *binds)
{
	int rc = query_exec(cat, what, sql, binds);

	return rc < 0 ? rc : 0;
}

/* query_write_or_enoent() - query_exec() that must change a row.
 * Return: 0; -ENOENT it changed none (not logged); -errno. */
static int query_write_or_enoent(struct catalog *cat, const char *what,
				 const char *sql, const struct bind *binds)
{
	int rc = query_exec(cat, what, sql, binds);

	if (rc == 0)
		return -ENOENT;
	return rc < 0 ? rc : 0;
}

/* query_insert() - query_exec() of an INSERT.  Return: 0, *@id the new
 * row's id; -errno (-EEXIST a unique key is taken). */
static int query_insert(struct catalog *cat, const char *what, const char *sql,
			const struct bind *binds, int64_t *id)
{
	CATALOG_LOCKED(cat);
	int rc = query_exec(cat, what, sql, binds);

	if (rc < 0)
		return rc;
	*id = sqlite3_last_insert_rowid(cat->db);
	return 0;
}

/*
 * query_row() - run the read @sql with @binds and fill *@out with @row
 * from its first row.
 * Return: 0; -ENOENT there is no row (not logged); -errno logged.
 */
static int query_row(struct catalog *cat, const char *what, const char *sql,
		     const struct bind *binds, row_fn row, void *out)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc = statement_open(cat, what, sql, binds, &st);

	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return fail(cat, rc, what);
	row(st, out);
	return 0;
}

/*
 * query_each() - run the read @sql with @binds, handing every row to
 * @each with @ctx.  @each runs under the catalog lock: it must not block
 * or call out of this file.
 * Return: the number of rows; -errno logged (@each may have seen some).
 */
static int query_each(struct catalog *cat, const char *what, const char *sql,
		      const struct bind *binds, row_fn each, void *ctx)
{
	CATALOG_LOCKED(cat);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int n = 0, rc = statement_open(cat, what, sql, binds, &st);

	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		each(st, ctx);
		n++;
	}
	return rc == SQLITE_DONE ? n : fail(cat, rc, what);
}

struct rows_ctx {
	GArray *rows;
	row_fn row;
};

static void rows_append(sqlite3_stmt *st, void *ctx)
{
	struct rows_ctx *c = ctx;

	g_array_set_size(c->rows, c->rows->len + 1);
	c->row(st, c->rows->data +
			   (gsize)(c->rows->len - 1) *
				   g_array_get_element_size(c->rows));
}

/*
 * query_rows() - every row of @sql, each filled by @row into a zeroed
 * element of @size bytes.
 * Return: the count, *@out owns the GArray (g_array_unref); -errno logged.
 */
static int query_rows(struct catalog *cat, const char *what, const char *sql,
		      const struct bind *binds, size_t size, row_fn row,
		      GArray **out)
{
	struct rows_ctx c = {
		.rows = g_array_new(FALSE, TRUE, (guint)size),
		.row = row,
	};
	int rc = query_each(cat, what, sql, binds, rows_append, &c);

	if (rc < 0) {
		g_array_free(c.rows, TRUE);
		return rc;
	}
	*out = c.rows;
	return rc;
}

static void name_append(sqlite3_stmt *st, void *names)
{
	g_ptr_array_add(names, g_strdup((const char *)sqlite3_column_text(st, 0)));
}

/* query_names() - the first column of every row of @sql.  Return: the
 * count, *@out owns a NULL-terminated vector (g_strfreev); -errno logged. */
static int query_names(struct catalog *cat, const char *what, const char *sql,
		       const struct bind *binds, char ***out)
{
	GPtrArray *a = g_ptr_array_new();
	int rc = query_each(cat, what, sql, binds, name_append, a);

	g_ptr_array_add(a, NULL);
	if (rc < 0) {
		g_strfreev((char **)g_ptr_array_free(a, FALSE));
		return rc;
	}
	*out = (char **)g_ptr_array_free(a, FALSE);
	return rc;
}

/* Row readers of one column. */
static void int_row(sqlite3_stmt *st, int *out)
{
	*out = sqlite3_column_int(st, 0);
}

static void int64_row(sqlite3_stmt *st, int64_t *out)
{
	*out = sqlite3_column_int64(st, 0);
}

static void text_dup_row(sqlite3_stmt *st, char **out)
{
	*out = g_strdup((const char *)sqlite3_column_text(st, 0));
}

/* query_count() - the integer in the one row of @sql (a count(*)).
 * Return: it (>= 0); -errno logged. */
static int query_count(struct catalog *cat, const char *what, const char *sql,
		       const struct bind *binds)
{
	int n = 0, rc = query_row(cat, what, sql, binds, (row_fn)int_row, &n);

	return rc < 0 ? rc : n;
}

/* ALTER TABLE @table ADD COLUMN @column, when @table exists (a missing one
 * is made whole by the schema). */
static int add_column(struct catalog *cat, const char *table, const char *column)
{
	g_autofree char *sql = NULL;
	int64_t found;
	int rc = query_row(cat, "schema upgrade",
			   "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
			   BINDS(BIND_TEXT(table)), (row_fn)int64_row, &found);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
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
	/* a new catalog may sit over an existing repository: it waits for
	 * the import of its backups (import.h), in the same transaction as
	 * its schema, so a crash cannot lose the mark */
	if (rc == 0 && version == 0)
		rc = exec(cat, "INSERT INTO identity(key, value) VALUES ('import', 'pending')");
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
	g_autofree char *result = NULL;

	if (query_row(cat, "integrity check", "PRAGMA integrity_check", NULL,
		      (row_fn)text_dup_row, &result) < 0)
		return -EIO;
	return result && strcmp(result, "ok") == 0 ? 0 : -EIO;
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
	return query_row(cat, "volume read",
			 "SELECT " VOLUME_COLS " FROM volumes WHERE name = ?1",
			 BINDS(BIND_TEXT(name)), (row_fn)volume_row, out);
}

int catalog_volume_get_by_id(struct catalog *cat, int64_t id,
			     struct catalog_volume *out)
{
	return query_row(cat, "volume read",
			 "SELECT " VOLUME_COLS " FROM volumes WHERE id = ?1",
			 BINDS(BIND_INT(id)), (row_fn)volume_row, out);
}

int catalog_volume_insert(struct catalog *cat, struct catalog_volume *vol)
{
	return query_insert(cat, "volume insert",
			    "INSERT INTO volumes(name, uuid, uid, gid, top_layer)"
			    " VALUES (?1, ?2, ?3, ?4, ?5)",
			    BINDS(BIND_TEXT(vol->name), BIND_TEXT(vol->uuid),
				  BIND_INT(vol->uid), BIND_INT(vol->gid),
				  BIND_TEXT(vol->top_layer)),
			    &vol->id);
}

int catalog_volume_update(struct catalog *cat, const struct catalog_volume *vol)
{
	return query_write(cat, "volume update",
			   "UPDATE volumes SET uid = ?2, gid = ?3, top_layer = ?4"
			   " WHERE id = ?1",
			   BINDS(BIND_INT(vol->id), BIND_INT(vol->uid),
				 BIND_INT(vol->gid), BIND_TEXT(vol->top_layer)));
}

int catalog_volume_all(struct catalog *cat, GArray **out)
{
	return query_rows(cat, "volume list",
			  "SELECT " VOLUME_COLS " FROM volumes ORDER BY name",
			  NULL, sizeof(struct catalog_volume),
			  (row_fn)volume_row, out);
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
	return query_insert(cat, "layer insert",
			    "INSERT INTO layers(volume_id, uuid, parent, state)"
			    " VALUES (?1, ?2, ?3, ?4)",
			    BINDS(BIND_INT(layer->volume_id),
				  BIND_TEXT(layer->uuid),
				  BIND_TEXT(layer->parent),
				  BIND_INT(layer->state)),
			    &layer->id);
}

int catalog_layer_get(struct catalog *cat, const char *uuid,
		      struct catalog_layer *out)
{
	return query_row(cat, "layer read",
			 "SELECT " LAYER_COLS " FROM layers WHERE uuid = ?1",
			 BINDS(BIND_TEXT(uuid)), (row_fn)layer_row, out);
}

int catalog_layer_update(struct catalog *cat, const struct catalog_layer *layer)
{
	return query_write(cat, "layer update",
			   "UPDATE layers SET parent = ?2, state = ?3 WHERE uuid = ?1",
			   BINDS(BIND_TEXT(layer->uuid), BIND_TEXT(layer->parent),
				 BIND_INT(layer->state)));
}

int catalog_layer_delete(struct catalog *cat, const char *uuid)
{
	return query_write(cat, "layer delete",
			   "DELETE FROM layers WHERE uuid = ?1",
			   BINDS(BIND_TEXT(uuid)));
}

int catalog_layer_list(struct catalog *cat, int64_t volume_id, GArray **out)
{
	return query_rows(cat, "layer list",
			  "SELECT " LAYER_COLS " FROM layers"
			  " WHERE ?1 < 0 OR volume_id = ?1 ORDER BY id",
			  BINDS(BIND_INT(volume_id)),
			  sizeof(struct catalog_layer), (row_fn)layer_row, out);
}

int catalog_layer_children(struct catalog *cat, const char *uuid)
{
	return query_count(cat, "layer children",
			   "SELECT count(*) FROM layers WHERE parent = ?1",
			   BINDS(BIND_TEXT(uuid)));
}

/* ---- snapshots -------------------------------------------------------- */

#define SNAPSHOT_COLS                                                       \
	"s.id, s.volume_id, v.name, s.name, s.uuid, s.layer, s.state,"     \
	" s.created_at, s.backed_up_at, s.virtual_size, s.backup_bytes,"   \
	" s.checksum, s.err, s.error, s.attempts, s.policy_id, s.verified_at,"\
	" v.uuid"
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
	s->verified_at = sqlite3_column_int64(st, 16);
	COPY_TEXT(s->volume_uuid, st, 17);
}

int catalog_snapshot_get(struct catalog *cat, int64_t volume_id,
			 const char *name, struct catalog_snapshot *out)
{
	return query_row(cat, "snapshot read",
			 "SELECT " SNAPSHOT_COLS SNAPSHOT_FROM
			 " WHERE s.volume_id = ?1 AND s.name = ?2",
			 BINDS(BIND_INT(volume_id), BIND_TEXT(name)),
			 (row_fn)snapshot_row, out);
}

int catalog_snapshot_get_by_uuid(struct catalog *cat, const char *uuid,
				 struct catalog_snapshot *out)
{
	return query_row(cat, "snapshot read",
			 "SELECT " SNAPSHOT_COLS SNAPSHOT_FROM " WHERE s.uuid = ?1",
			 BINDS(BIND_TEXT(uuid)), (row_fn)snapshot_row, out);
}

int catalog_snapshot_get_by_id(struct catalog *cat, int64_t id,
			       struct catalog_snapshot *out)
{
	return query_row(cat, "snapshot read",
			 "SELECT " SNAPSHOT_COLS SNAPSHOT_FROM " WHERE s.id = ?1",
			 BINDS(BIND_INT(id)), (row_fn)snapshot_row, out);
}

int catalog_snapshot_by_layer(struct catalog *cat, const char *uuid,
			      struct catalog_snapshot *out)
{
	return query_row(cat, "snapshot read",
			 "SELECT " SNAPSHOT_COLS SNAPSHOT_FROM " WHERE s.layer = ?1",
			 BINDS(BIND_TEXT(uuid)), (row_fn)snapshot_row, out);
}

int catalog_snapshot_insert(struct catalog *cat, struct catalog_snapshot *snap)
{
	return query_insert(cat, "snapshot insert",
			    "INSERT INTO snapshots(volume_id, name, uuid, layer, state,"
			    " created_at, virtual_size, policy_id)"
			    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
			    BINDS(BIND_INT(snap->volume_id), BIND_TEXT(snap->name),
				  BIND_TEXT(snap->uuid), BIND_TEXT(snap->layer),
				  BIND_INT(snap->state), BIND_INT(snap->created_at),
				  BIND_INT(snap->virtual_size),
				  BIND_INT(snap->policy_id)),
			    &snap->id);
}

int catalog_snapshot_update(struct catalog *cat,
			    const struct catalog_snapshot *snap)
{
	return query_write(cat, "snapshot update",
			   "UPDATE snapshots SET name = ?2, layer = ?3, state = ?4,"
			   " backed_up_at = ?5, virtual_size = ?6, backup_bytes = ?7,"
			   " checksum = ?8, err = ?9, error = ?10, attempts = ?11,"
			   " verified_at = ?12"
			   " WHERE id = ?1",
			   BINDS(BIND_INT(snap->id), BIND_TEXT(snap->name),
				 BIND_TEXT(snap->layer), BIND_INT(snap->state),
				 BIND_INT(snap->backed_up_at),
				 BIND_INT(snap->virtual_size),
				 BIND_INT(snap->backup_bytes),
				 BIND_TEXT(snap->checksum), BIND_INT(snap->err),
				 BIND_TEXT(snap->error), BIND_INT(snap->attempts),
				 BIND_INT(snap->verified_at)));
}

int catalog_snapshot_delete(struct catalog *cat, int64_t id)
{
	return query_write(cat, "snapshot delete",
			   "DELETE FROM snapshots WHERE id = ?1",
			   BINDS(BIND_INT(id)));
}

int catalog_snapshot_list(struct catalog *cat, int64_t volume_id, int state,
			  GArray **out)
{
	return query_rows(cat, "snapshot list",
			  "SELECT " SNAPSHOT_COLS SNAPSHOT_FROM
			  " WHERE (?1 < 0 OR s.volume_id = ?1) AND (?2 < 0 OR s.state = ?2)"
			  " ORDER BY s.created_at, s.id",
			  BINDS(BIND_INT(volume_id), BIND_INT(state)),
			  sizeof(struct catalog_snapshot), (row_fn)snapshot_row,
			  out);
}

int catalog_snapshot_names(struct catalog *cat, int64_t volume_id,
			   bool backed_up, char ***out)
{
	return query_names(cat, "snapshot names",
			   "SELECT name FROM snapshots WHERE volume_id = ?1"
			   " AND state != ?2 AND (?3 = 0 OR state IN (?4, ?5)) ORDER BY name",
			   BINDS(BIND_INT(volume_id), BIND_INT(SNAP_STATE_CREATING),
				 BIND_INT(backed_up), BIND_INT(SNAP_STATE_BACKED_UP),
				 BIND_INT(SNAP_STATE_DAMAGED)),
			   out);
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
	return query_rows(cat, "snapshot dirents",
			  "SELECT id, name, created_at FROM snapshots WHERE volume_id = ?1"
			  " AND state != ?2 ORDER BY name",
			  BINDS(BIND_INT(volume_id), BIND_INT(SNAP_STATE_CREATING)),
			  sizeof(struct catalog_dirent), (row_fn)dirent_row, out);
}

int catalog_backup_volume_names(struct catalog *cat, char ***out)
{
	return query_names(cat, "backup volume names",
			   "SELECT DISTINCT v.name FROM volumes v JOIN snapshots s"
			   " ON s.volume_id = v.id WHERE s.state IN (?1, ?2) ORDER BY v.name",
			   BINDS(BIND_INT(SNAP_STATE_BACKED_UP),
				 BIND_INT(SNAP_STATE_DAMAGED)), out);
}

/* ---- jobs ------------------------------------------------------------- */

#define JOB_COLS "id, kind, snapshot_id, volume_id, state, not_before, attempts, target, source"

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
	COPY_TEXT(j->source, st, 8);
}

int catalog_job_insert(struct catalog *cat, struct catalog_job *job)
{
	return query_insert(cat, "job insert",
			    "INSERT INTO jobs(kind, snapshot_id, volume_id, state,"
			    " not_before, attempts, target, source)"
			    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
			    BINDS(BIND_INT(job->kind), BIND_INT(job->snapshot_id),
				  BIND_INT(job->volume_id), BIND_INT(job->state),
				  BIND_INT(job->not_before), BIND_INT(job->attempts),
				  BIND_TEXT(job->target), BIND_TEXT(job->source)),
			    &job->id);
}

int catalog_job_get(struct catalog *cat, int64_t id, struct catalog_job *out)
{
	return query_row(cat, "job read",
			 "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
			 BINDS(BIND_INT(id)), (row_fn)job_row, out);
}

int catalog_job_for_snapshot(struct catalog *cat, int64_t snapshot_id,
			     struct catalog_job *out)
{
	return query_row(cat, "job read",
			 "SELECT " JOB_COLS " FROM jobs WHERE kind = ?1"
			 " AND snapshot_id = ?2",
			 BINDS(BIND_INT(JOB_KIND_BACKUP), BIND_INT(snapshot_id)),
			 (row_fn)job_row, out);
}

int catalog_job_find_merge(struct catalog *cat, int64_t volume_id,
			   enum job_state state, struct catalog_job *out)
{
	return query_row(cat, "job read",
			 "SELECT " JOB_COLS " FROM jobs WHERE kind = ?1"
			 " AND volume_id = ?2 AND state = ?3",
			 BINDS(BIND_INT(JOB_KIND_MERGE), BIND_INT(volume_id),
			       BIND_INT(state)),
			 (row_fn)job_row, out);
}

int catalog_job_update(struct catalog *cat, const struct catalog_job *job)
{
	return query_write(cat, "job update",
			   "UPDATE jobs SET state = ?2, not_before = ?3, attempts = ?4"
			   " WHERE id = ?1",
			   BINDS(BIND_INT(job->id), BIND_INT(job->state),
				 BIND_INT(job->not_before), BIND_INT(job->attempts)));
}

int catalog_job_delete(struct catalog *cat, int64_t id)
{
	return query_write(cat, "job delete", "DELETE FROM jobs WHERE id = ?1",
			   BINDS(BIND_INT(id)));
}

int catalog_job_claim(struct catalog *cat, int64_t now, struct catalog_job *out)
{
	CATALOG_LOCKED(cat);
	int rc = query_row(cat, "job read",
		"SELECT " JOB_COLS " FROM jobs j WHERE"
		" (state = ?1 OR (state = ?2 AND not_before <= ?3))"
		" AND NOT (kind = ?4 AND EXISTS (SELECT 1 FROM jobs r WHERE"
		"   r.kind = ?4 AND r.volume_id = j.volume_id AND r.state = ?5))"
		" AND kind != ?6" /* a revert is run by the writer itself */
		" ORDER BY id LIMIT 1",
		BINDS(BIND_INT(JOB_STATE_QUEUED), BIND_INT(JOB_STATE_WAITING),
		      BIND_INT(now), BIND_INT(JOB_KIND_MERGE),
		      BIND_INT(JOB_STATE_RUNNING), BIND_INT(JOB_KIND_REVERT)),
		(row_fn)job_row, out);

	if (rc < 0)
		return rc;
	out->state = JOB_STATE_RUNNING;
	return catalog_job_update(cat, out);
}

int catalog_job_next_due(struct catalog *cat, int64_t *when)
{
	return query_row(cat, "job next due",
			 "SELECT not_before FROM jobs WHERE state = ?1"
			 " ORDER BY not_before LIMIT 1",
			 BINDS(BIND_INT(JOB_STATE_WAITING)), (row_fn)int64_row,
			 when);
}

int catalog_job_requeue_running(struct catalog *cat)
{
	return query_exec(cat, "job requeue",
			  "UPDATE jobs SET state = ?1 WHERE state = ?2",
			  BINDS(BIND_INT(JOB_STATE_QUEUED),
				BIND_INT(JOB_STATE_RUNNING)));
}

int catalog_job_readers(struct catalog *cat, int64_t snapshot_id)
{
	return query_count(cat, "job readers",
			   "SELECT count(*) FROM jobs WHERE snapshot_id = ?1"
			   " AND kind IN (?2, ?3)",
			   BINDS(BIND_INT(snapshot_id), BIND_INT(JOB_KIND_CLONE),
				 BIND_INT(JOB_KIND_REVERT)));
}

int catalog_job_by_target(struct catalog *cat, const char *target,
			  struct catalog_job *out)
{
	return query_row(cat, "job read",
			 "SELECT " JOB_COLS " FROM jobs WHERE kind = ?1 AND target = ?2",
			 BINDS(BIND_INT(JOB_KIND_CLONE), BIND_TEXT(target)),
			 (row_fn)job_row, out);
}

int catalog_job_list(struct catalog *cat, enum job_kind kind, GArray **out)
{
	return query_rows(cat, "job list",
			  "SELECT " JOB_COLS " FROM jobs WHERE kind = ?1 ORDER BY id",
			  BINDS(BIND_INT(kind)), sizeof(struct catalog_job),
			  (row_fn)job_row, out);
}

int catalog_job_ids(struct catalog *cat, GArray **out)
{
	return query_rows(cat, "job ids", "SELECT id FROM jobs ORDER BY id",
			  NULL, sizeof(int64_t), (row_fn)int64_row, out);
}

/* ---- events ----------------------------------------------------------- */

int catalog_event_add(struct catalog *cat, int64_t time, uid_t uid,
		      const char *json)
{
	return query_write(cat, "event insert",
			   "INSERT INTO events(time, json, uid) VALUES (?1, ?2, ?3)",
			   BINDS(BIND_INT(time), BIND_TEXT(json), BIND_INT(uid)));
}

static void line_append(sqlite3_stmt *st, void *text)
{
	g_string_append(text, (const char *)sqlite3_column_text(st, 0));
	g_string_append_c((GString *)text, '\n');
}

int catalog_events_text(struct catalog *cat, int64_t uid, GString *out)
{
	int rc = query_each(cat, "event list",
			    "SELECT json FROM events WHERE ?1 < 0 OR uid = ?1 ORDER BY id",
			    BINDS(BIND_INT(uid)), line_append, out);

	return rc < 0 ? rc : 0;
}

/* ---- alerts ----------------------------------------------------------- */

int catalog_alert_raise(struct catalog *cat, const char *kind,
			int64_t snapshot_id, int64_t time, uid_t uid,
			const char *json, int64_t *id_out)
{
	CATALOG_LOCKED(cat);
	int64_t id = 0;
	int rc = query_row(cat, "alert find",
			   "SELECT id FROM alerts WHERE kind = ?1 AND snapshot_id = ?2",
			   BINDS(BIND_TEXT(kind), BIND_INT(snapshot_id)),
			   (row_fn)int64_row, &id);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	/* one bind list for both: the UPDATE leaves out ?1 and ?2, the
	 * INSERT ?5 (the id) */
	const struct bind *binds = BINDS(
		BIND_TEXT(kind), BIND_INT(snapshot_id), BIND_INT(time),
		BIND_TEXT(json), BIND_INT(id), BIND_INT(uid));

	if (id)
		rc = query_write(cat, "alert raise",
				 "UPDATE alerts SET time = ?3, json = ?4, uid = ?6"
				 " WHERE id = ?5", binds);
	else
		rc = query_insert(cat, "alert raise",
				  "INSERT INTO alerts(kind, snapshot_id, time, json, uid)"
				  " VALUES (?1, ?2, ?3, ?4, ?6)", binds, &id);
	if (rc == 0 && id_out)
		*id_out = id;
	return rc;
}

int catalog_alert_resolve(struct catalog *cat, const char *kind,
			  int64_t snapshot_id)
{
	return query_exec(cat, "alert resolve",
			  "DELETE FROM alerts WHERE kind = ?1 AND snapshot_id = ?2",
			  BINDS(BIND_TEXT(kind), BIND_INT(snapshot_id)));
}

int catalog_alert_owner(struct catalog *cat, int64_t id, uid_t *uid)
{
	int64_t owner;
	int rc = query_row(cat, "alert owner",
			   "SELECT uid FROM alerts WHERE id = ?1",
			   BINDS(BIND_INT(id)), (row_fn)int64_row, &owner);

	if (rc == 0)
		*uid = (uid_t)owner;
	return rc;
}

int catalog_alert_get(struct catalog *cat, int64_t id, char **json_out)
{
	return query_row(cat, "alert read", "SELECT json FROM alerts WHERE id = ?1",
			 BINDS(BIND_INT(id)), (row_fn)text_dup_row, json_out);
}

int catalog_alert_delete(struct catalog *cat, int64_t id)
{
	return query_write_or_enoent(cat, "alert delete",
				     "DELETE FROM alerts WHERE id = ?1",
				     BINDS(BIND_INT(id)));
}

int catalog_alert_ids(struct catalog *cat, GArray **out)
{
	return query_rows(cat, "alert ids", "SELECT id FROM alerts ORDER BY id",
			  NULL, sizeof(int64_t), (row_fn)int64_row, out);
}

/* ---- layer references ------------------------------------------------- */

int catalog_layer_referenced(struct catalog *cat, const char *uuid)
{
	return query_count(cat, "layer references",
			   "SELECT (SELECT count(*) FROM snapshots WHERE layer = ?1) +"
			   " (SELECT count(*) FROM vm_snapshot_disks WHERE layer = ?1)",
			   BINDS(BIND_TEXT(uuid)));
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
	return query_row(cat, "vm read", "SELECT " VM_COLS " FROM vms WHERE uuid = ?1",
			 BINDS(BIND_TEXT(uuid)), (row_fn)vm_row, out);
}

int catalog_vm_get_by_id(struct catalog *cat, int64_t id, struct catalog_vm *out)
{
	return query_row(cat, "vm read", "SELECT " VM_COLS " FROM vms WHERE id = ?1",
			 BINDS(BIND_INT(id)), (row_fn)vm_row, out);
}

int catalog_vm_get_by_name(struct catalog *cat, const char *name,
			   struct catalog_vm *out)
{
	return query_row(cat, "vm read",
			 "SELECT " VM_COLS " FROM vms WHERE name = ?1"
			 " ORDER BY id DESC LIMIT 1",
			 BINDS(BIND_TEXT(name)), (row_fn)vm_row, out);
}

int catalog_vm_ensure(struct catalog *cat, const char *uuid, const char *name,
		      struct catalog_vm *out)
{
	CATALOG_LOCKED(cat);
	int rc = catalog_vm_get(cat, uuid, out);

	if (rc == 0 && strcmp(out->name, name) == 0)
		return 0;
	if (rc == 0)
		rc = query_write(cat, "vm write",
				 "UPDATE vms SET name = ?2 WHERE uuid = ?1",
				 BINDS(BIND_TEXT(uuid), BIND_TEXT(name)));
	else if (rc == -ENOENT)
		rc = query_write(cat, "vm write",
				 "INSERT INTO vms(uuid, name) VALUES (?1, ?2)",
				 BINDS(BIND_TEXT(uuid), BIND_TEXT(name)));
	if (rc < 0)
		return rc;
	return catalog_vm_get(cat, uuid, out);
}

int catalog_vm_all(struct catalog *cat, GArray **out)
{
	return query_rows(cat, "vm list", "SELECT " VM_COLS " FROM vms ORDER BY id",
			  NULL, sizeof(struct catalog_vm), (row_fn)vm_row, out);
}

int catalog_vm_delete(struct catalog *cat, int64_t id)
{
	return query_write(cat, "vm delete", "DELETE FROM vms WHERE id = ?1",
			   BINDS(BIND_INT(id)));
}

int catalog_vm_update(struct catalog *cat, const struct catalog_vm *vm)
{
	return query_write(cat, "vm update",
			   "UPDATE vms SET current = ?2, options = ?3, uid = ?4, gid = ?5"
			   " WHERE id = ?1",
			   BINDS(BIND_INT(vm->id), BIND_INT(vm->current),
				 BIND_TEXT(vm->options), BIND_INT(vm->uid),
				 BIND_INT(vm->gid)));
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
	return query_row(cat, "vm snapshot read",
			 "SELECT " VMSNAP_COLS " FROM vm_snapshots"
			 " WHERE vm_id = ?1 AND name = ?2",
			 BINDS(BIND_INT(vm_id), BIND_TEXT(name)),
			 (row_fn)vmsnap_row, out);
}

int catalog_vm_snapshot_get_by_id(struct catalog *cat, int64_t id,
				  struct catalog_vm_snapshot *out)
{
	return query_row(cat, "vm snapshot read",
			 "SELECT " VMSNAP_COLS " FROM vm_snapshots WHERE id = ?1",
			 BINDS(BIND_INT(id)), (row_fn)vmsnap_row, out);
}

int catalog_vm_snapshot_insert(struct catalog *cat,
			       struct catalog_vm_snapshot *s)
{
	return query_insert(cat, "vm snapshot insert",
			    "INSERT INTO vm_snapshots(vm_id, name, uuid, parent, type,"
			    " state, created_at, memory, policy_id)"
			    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			    BINDS(BIND_INT(s->vm_id), BIND_TEXT(s->name),
				  BIND_TEXT(s->uuid), BIND_INT(s->parent),
				  BIND_INT(s->type), BIND_INT(s->state),
				  BIND_INT(s->created_at), BIND_TEXT(s->memory),
				  BIND_INT(s->policy_id)),
			    &s->id);
}

int catalog_vm_snapshot_update(struct catalog *cat,
			       const struct catalog_vm_snapshot *s)
{
	return query_write(cat, "vm snapshot update",
			   "UPDATE vm_snapshots SET name = ?2, parent = ?3, state = ?4,"
			   " memory = ?5 WHERE id = ?1",
			   BINDS(BIND_INT(s->id), BIND_TEXT(s->name),
				 BIND_INT(s->parent), BIND_INT(s->state),
				 BIND_TEXT(s->memory)));
}

int catalog_vm_snapshot_delete(struct catalog *cat, int64_t id)
{
	CATALOG_LOCKED(cat);
	int rc = query_write(cat, "vm snapshot disks delete",
			     "DELETE FROM vm_snapshot_disks WHERE vm_snapshot_id = ?1",
			     BINDS(BIND_INT(id)));

	if (rc < 0)
		return rc;
	return query_write(cat, "vm snapshot delete",
			   "DELETE FROM vm_snapshots WHERE id = ?1",
			   BINDS(BIND_INT(id)));
}

int catalog_vm_snapshot_list(struct catalog *cat, int64_t vm_id, GArray **out)
{
	return query_rows(cat, "vm snapshot list",
			  "SELECT " VMSNAP_COLS " FROM vm_snapshots"
			  " WHERE ?1 < 0 OR vm_id = ?1 ORDER BY created_at, id",
			  BINDS(BIND_INT(vm_id)), sizeof(struct catalog_vm_snapshot),
			  (row_fn)vmsnap_row, out);
}

int catalog_vm_snapshot_disk_add(struct catalog *cat, int64_t vm_snapshot_id,
				 int64_t volume_id, const char *target,
				 const char *layer)
{
	return query_write(cat, "vm snapshot disk insert",
			   "INSERT INTO vm_snapshot_disks(vm_snapshot_id, volume_id,"
			   " target, layer) VALUES (?1, ?2, ?3, ?4)",
			   BINDS(BIND_INT(vm_snapshot_id), BIND_INT(volume_id),
				 BIND_TEXT(target), BIND_TEXT(layer)));
}

static void vm_disk_row(sqlite3_stmt *st, struct catalog_vm_disk *d)
{
	d->volume_id = sqlite3_column_int64(st, 0);
	COPY_TEXT(d->volume, st, 1);
	COPY_TEXT(d->target, st, 2);
	COPY_TEXT(d->layer, st, 3);
}

int catalog_vm_snapshot_disks(struct catalog *cat, int64_t vm_snapshot_id,
			      GArray **out)
{
	return query_rows(cat, "vm snapshot disk list",
			  "SELECT d.volume_id, v.name, d.target, d.layer"
			  " FROM vm_snapshot_disks d JOIN volumes v ON v.id = d.volume_id"
			  " WHERE d.vm_snapshot_id = ?1 ORDER BY d.volume_id",
			  BINDS(BIND_INT(vm_snapshot_id)),
			  sizeof(struct catalog_vm_disk), (row_fn)vm_disk_row, out);
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
	return query_row(cat, "policy read",
			 "SELECT " POLICY_COLS " FROM policies WHERE name = ?1",
			 BINDS(BIND_TEXT(name)), (row_fn)policy_row, out);
}

int catalog_policy_find(struct catalog *cat, int kind, const char *target,
			int interval, struct catalog_policy *out)
{
	return query_row(cat, "policy read",
			 "SELECT " POLICY_COLS " FROM policies"
			 " WHERE kind = ?1 AND target = ?2 AND interval = ?3",
			 BINDS(BIND_INT(kind), BIND_TEXT(target), BIND_INT(interval)),
			 (row_fn)policy_row, out);
}

int catalog_policy_put(struct catalog *cat, struct catalog_policy *p)
{
	/* one bind list for both: the INSERT leaves ?1 (the id) out */
	const struct bind *binds = BINDS(
		BIND_INT(p->id), BIND_TEXT(p->name), BIND_INT(p->uid),
		BIND_INT(p->gid), BIND_TEXT(p->spec), BIND_INT(p->kind),
		BIND_TEXT(p->target), BIND_INT(p->interval),
		BIND_INT(p->next_run), BIND_INT(p->last_run),
		BIND_INT(p->last_slot), BIND_TEXT(p->last_result));

	if (p->id)
		return query_write(cat, "policy write",
			"UPDATE policies SET name = ?2, uid = ?3, gid = ?4, spec = ?5,"
			" kind = ?6, target = ?7, interval = ?8, next_run = ?9,"
			" last_run = ?10, last_slot = ?11, last_result = ?12"
			" WHERE id = ?1", binds);
	return query_insert(cat, "policy write",
		"INSERT INTO policies(name, uid, gid, spec, kind, target, interval,"
		" next_run, last_run, last_slot, last_result)"
		" VALUES (?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
		binds, &p->id);
}

int catalog_policy_delete(struct catalog *cat, int64_t id)
{
	return query_write(cat, "policy delete", "DELETE FROM policies WHERE id = ?1",
			   BINDS(BIND_INT(id)));
}

int catalog_policy_list(struct catalog *cat, int64_t due_by, GArray **out)
{
	return query_rows(cat, "policy list",
			  "SELECT " POLICY_COLS " FROM policies"
			  " WHERE ?1 < 0 OR next_run <= ?1 ORDER BY next_run, id",
			  BINDS(BIND_INT(due_by)), sizeof(struct catalog_policy),
			  (row_fn)policy_row, out);
}

int catalog_policy_next_due(struct catalog *cat, int64_t *when)
{
	return query_row(cat, "policy next due",
			 "SELECT next_run FROM policies ORDER BY next_run LIMIT 1",
			 NULL, (row_fn)int64_row, when);
}

/* ---- accounts: snapshots stored and their limits --------------------- */

int catalog_snapshots_owned(struct catalog *cat, uid_t uid)
{
	return query_count(cat, "snapshots owned",
		"SELECT (SELECT count(*) FROM snapshots s JOIN volumes v"
		"         ON v.id = s.volume_id WHERE v.uid = ?1 AND s.state != ?2)"
		" + (SELECT count(*) FROM vm_snapshots x JOIN vms m"
		"         ON m.id = x.vm_id WHERE m.uid = ?1 AND x.state != ?3)",
		BINDS(BIND_INT(uid), BIND_INT(SNAP_STATE_DESTROYING),
		      BIND_INT(VM_SNAPSHOT_EXPUNGING)));
}

int catalog_limit_get(struct catalog *cat, uid_t uid, int64_t *max)
{
	return query_row(cat, "limit read",
			 "SELECT max_snapshots FROM limits WHERE uid = ?1",
			 BINDS(BIND_INT(uid)), (row_fn)int64_row, max);
}

int catalog_limit_set(struct catalog *cat, uid_t uid, int64_t max)
{
	if (max < 0)
		return query_write(cat, "limit write",
				   "DELETE FROM limits WHERE uid = ?1",
				   BINDS(BIND_INT(uid)));
	return query_write(cat, "limit write",
			   "INSERT OR REPLACE INTO limits(uid, max_snapshots)"
			   " VALUES (?1, ?2)",
			   BINDS(BIND_INT(uid), BIND_INT(max)));
}

static void limit_row(sqlite3_stmt *st, struct catalog_limit *l)
{
	l->uid = (uid_t)sqlite3_column_int64(st, 0);
	l->max_snapshots = sqlite3_column_int64(st, 1);
}

int catalog_limit_list(struct catalog *cat, GArray **out)
{
	return query_rows(cat, "limit list",
			  "SELECT uid, max_snapshots FROM limits ORDER BY uid",
			  NULL, sizeof(struct catalog_limit), (row_fn)limit_row,
			  out);
}

int catalog_identity_get(struct catalog *cat, const char *key, char **value)
{
	return query_row(cat, "identity read",
			 "SELECT value FROM identity WHERE key = ?1",
			 BINDS(BIND_TEXT(key)), (row_fn)text_dup_row, value);
}

int catalog_identity_set(struct catalog *cat, const char *key,
			 const char *value)
{
	return query_write(cat, "identity write",
			   "INSERT OR REPLACE INTO identity(key, value)"
			   " VALUES (?1, ?2)",
			   BINDS(BIND_TEXT(key), BIND_TEXT(value)));
}
