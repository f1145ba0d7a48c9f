/*
 * engine.c - open, start and close an engine; its configuration and clock.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine.h"
#include "log.h"
#include "proc.h"

void snap_config_init(struct snap_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->workers = 2;
	cfg->keep_primary = 1;
	cfg->retries = 3;
	cfg->retry_delay = 60;
	cfg->min_free = 16u << 20;
	cfg->stop_timeout = 60;
}

int64_t engine_now(struct snap_engine *eng)
{
	/* atomic, not under eng->lock: events inside catalog transactions
	 * read the clock, and the catalog lock is taken after eng->lock */
	if (eng->cfg.test_clock)
		return __atomic_load_n(&eng->test_now, __ATOMIC_ACQUIRE);
	return (int64_t)time(NULL);
}

int64_t snap_clock_now(struct snap_engine *eng)
{
	return engine_now(eng);
}

void snap_engine_set_gone(struct snap_engine *eng,
			  void (*fn)(const char *path, void *arg), void *arg)
{
	eng->gone = fn;
	eng->gone_arg = arg;
}

void engine_gone(struct snap_engine *eng, const char *fmt, ...)
{
	g_autofree char *path = NULL;
	va_list ap;

	if (!eng->gone)
		return;
	va_start(ap, fmt);
	path = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	eng->gone(path, eng->gone_arg);
}

void engine_wake(struct snap_engine *eng)
{
	g_mutex_lock(&eng->lock);
	g_cond_broadcast(&eng->cond);
	g_mutex_unlock(&eng->lock);
}

int snap_clock_set(struct snap_engine *eng, int64_t t)
{
	if (!eng->cfg.test_clock)
		return -EPERM;
	if (t < engine_now(eng))
		return -EINVAL;
	__atomic_store_n(&eng->test_now, t, __ATOMIC_RELEASE);
	engine_wake(eng);
	return 0;
}

/*
 * The canonical path of directory @path (no symlink games later), made
 * first (mkdir -p) when @mode is not 0.  @what names it in the message
 * logged on failure.
 */
static int open_dir(const char *what, const char *path, mode_t mode,
		    char **real_out)
{
	struct stat st;
	char *real;
	int rc;

	if (mode && g_mkdir_with_parents(path, (int)mode) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "engine: cannot create %s '%s': %s", what, path,
			 g_strerror(-rc));
		return rc;
	}
	real = realpath(path, NULL);
	if (!real || stat(real, &st) < 0)
		rc = -errno;
	else if (!S_ISDIR(st.st_mode))
		rc = -ENOTDIR;
	else
		rc = 0;
	if (rc < 0) {
		snap_log(LOG_ERR, "engine: %s '%s': %s", what, path, g_strerror(-rc));
		free(real);
		return rc;
	}
	*real_out = g_strdup(real);
	free(real);
	return 0;
}

int snap_engine_open(const struct snap_config *cfg, struct snap_engine **out)
{
	struct snap_engine *eng;
	g_autofree char *logpath = NULL, *catpath = NULL;
	g_autofree char *prim = NULL, *sec = NULL;
	struct stat st;
	int rc;

	if (!cfg->source || stat(cfg->source, &st) < 0) {
		rc = cfg->source ? -errno : -EINVAL;
		snap_log(LOG_ERR, "engine: state directory '%s': %s",
			 cfg->source ? cfg->source : "(none)", g_strerror(-rc));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		snap_log(LOG_ERR, "engine: '%s' is not a directory", cfg->source);
		return -ENOTDIR;
	}
	if (cfg->workers < 1 || cfg->workers > 64) {
		snap_log(LOG_ERR, "engine: workers must be 1..64");
		return -EINVAL;
	}

	eng = g_new0(struct snap_engine, 1);
	eng->cfg = *cfg;
	g_mutex_init(&eng->lock);
	g_cond_init(&eng->cond);
	eng->waiters = waiters_new();
	/* the table holds a reference to each running job (pool.c) */
	eng->running = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
					     (GDestroyNotify)running_job_unref);
	eng->busy_volumes = g_hash_table_new_full(g_int64_hash, g_int64_equal,
						  g_free, NULL);
	eng->control_results = g_hash_table_new_full(g_str_hash, g_str_equal,
						     g_free, g_free);
	eng->test_now = (int64_t)time(NULL);
	eng->watch_fd = eng->watch_stop = -1;
	policies_init(eng);

	rc = open_dir("state directory", cfg->source, 0, &eng->source);
	if (rc < 0)
		goto undo_alloc;
	logpath = g_strdup_printf("%s/snapfs.log", eng->source);
	/* in the background, errors still reach the terminal while snapfs
	 * starts (the front end detaches from it only once started) */
	if (snap_log_open(logpath, cfg->debug ? LOG_DEBUG : LOG_INFO,
			  cfg->foreground ? LOG_DEBUG : LOG_ERR) < 0)
		snap_log(LOG_WARNING, "engine: cannot open log '%s': %m", logpath);

	/* a primary= the admin named holds the volumes: missing, it is a typo
	 * or storage not mounted yet, never an empty directory to make */
	prim = cfg->primary ? g_strdup(cfg->primary) :
			      g_strdup_printf("%s/primary", eng->source);
	sec = cfg->secondary ? g_strdup(cfg->secondary) :
			       g_strdup_printf("%s/secondary", eng->source);
	rc = open_dir("primary storage", prim, cfg->primary ? 0 : 0755,
		      &eng->primary);
	if (rc == 0)
		rc = open_dir("secondary storage", sec, 0755, &eng->secondary);
	if (rc < 0)
		goto undo_alloc;
	if (!strcmp(eng->primary, eng->secondary)) {
		snap_log(LOG_ERR, "engine: primary and secondary storage are the same directory");
		rc = -EINVAL;
		goto undo_alloc;
	}
	eng->layers_dir = g_strdup_printf("%s/.snapfs", eng->primary);
	eng->backups_dir = g_strdup_printf("%s/volumes", eng->secondary);
	eng->tmp_dir = g_strdup_printf("%s/.tmp", eng->secondary);
	eng->ptmp_dir = g_strdup_printf("%s/.tmp", eng->layers_dir);
	/* snapfs's own directories in storage: real ones, never links out
	 * of it (recovery empties the .tmp ones); each checked before
	 * anything is made inside it */
	rc = chain_mkdir(eng->layers_dir);
	if (rc == 0)
		rc = safe_mkdir(eng->ptmp_dir, 0700);
	if (rc == 0)
		rc = safe_mkdir(eng->backups_dir, 0755);
	if (rc == 0)
		rc = safe_mkdir(eng->tmp_dir, 0700);
	if (rc < 0)
		goto undo_alloc;

	catpath = g_strdup_printf("%s/catalog.db", eng->source);
	rc = catalog_open(catpath, &eng->cat);
	if (rc < 0)
		goto undo_alloc;
	*out = eng;
	return 0;

undo_alloc:
	snap_engine_close(eng);
	return rc;
}

int snap_engine_start(struct snap_engine *eng)
{
	int rc;

	snap_log(LOG_INFO, "engine: starting: primary '%s', secondary '%s', %u worker(s), keep_primary=%u",
		 eng->primary, eng->secondary, eng->cfg.workers,
		 eng->cfg.keep_primary);
	testpoint("engine.start");
	/* a libvirt the admin named must answer; only the embedded driver
	 * may fail into a mount without VMs */
	rc = vms_start(eng);
	if (rc < 0)
		return rc;
	rc = recover_all(eng);
	if (rc < 0) {
		snap_log(LOG_ERR, "engine: recovery failed: %s", g_strerror(-rc));
		return rc;
	}
	rc = pool_start(eng);
	if (rc == 0)
		eng->started = true;
	if (rc == 0)
		rc = policies_start(eng);
	if (rc == 0 && eng->gone)
		rc = watch_start(eng);
	return rc;
}

void snap_engine_close(struct snap_engine *eng)
{
	if (!eng)
		return;
	/* first: readers of `wait` files leave before anything closes */
	waiters_stop(eng);
	watch_stop(eng);
	policies_stop(eng);
	if (eng->started)
		pool_stop(eng);
	if (eng->busy_vms)
		vms_stop(eng);
	catalog_close(eng->cat);
	g_hash_table_destroy(eng->running);
	g_hash_table_destroy(eng->busy_volumes);
	g_hash_table_destroy(eng->control_results);
	policies_clear(eng);
	waiters_free(eng->waiters);
	g_mutex_clear(&eng->lock);
	g_cond_clear(&eng->cond);
	g_free(eng->source);
	g_free(eng->primary);
	g_free(eng->secondary);
	g_free(eng->layers_dir);
	g_free(eng->backups_dir);
	g_free(eng->tmp_dir);
	g_free(eng->ptmp_dir);
	g_free(eng);
	snap_log_close();
}

int snap_versions(char **out)
{
	g_auto(GStrv) argv = image_argv_version();
	g_autofree char *text = NULL;
	const char *qemu = "unknown";
	char *nl;
	int rc;

	rc = proc_run(argv, NULL, &text, NULL);
	if (rc == 0 && text) {
		nl = strchr(text, '\n');
		if (nl)
			*nl = '\0';
		qemu = text;
		if (g_str_has_prefix(qemu, "qemu-img version "))
			qemu += strlen("qemu-img version ");
	}
	*out = g_strdup_printf("snapfs %s (sqlite %s, qemu-img %s)",
			       SNAPFS_VERSION, catalog_sqlite_version(), qemu);
	return 0;
}

/* ---- backed-up/ --------------------------------------------------------- */

int snap_backup_volumes(struct snap_engine *eng, char ***names_out)
{
	return catalog_backup_volume_names(eng->cat, names_out);
}

int snap_backup_list(struct snap_engine *eng, const char *vol,
		     char ***names_out)
{
	struct catalog_volume v;
	int rc = snap_name_valid(vol);

	if (rc < 0)
		return -ENOENT;
	rc = catalog_volume_get(eng->cat, vol, &v);
	if (rc < 0)
		return rc;
	return catalog_snapshot_names(eng->cat, v.id, true, names_out);
}

int snap_backup_dir_mtime(struct snap_engine *eng, const char *vol,
			  struct timespec *mtime_out)
{
	g_autofree char *dir = NULL;
	struct stat st;

	if (vol && snap_name_valid(vol) < 0)
		return -ENOENT;
	dir = vol ? g_build_filename(eng->backups_dir, vol, NULL) :
		    g_strdup(eng->backups_dir);
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOENT;
	*mtime_out = st.st_mtim;
	return 0;
}

int snap_backup_paths(struct snap_engine *eng, const char *vol,
		      const char *snap, uint64_t *id_out, char **image_out,
		      char **manifest_out)
{
	struct catalog_volume v;
	struct catalog_snapshot s;
	int rc;

	if (snap_name_valid(vol) < 0 || snap_name_valid(snap) < 0)
		return -ENOENT;
	rc = catalog_volume_get(eng->cat, vol, &v);
	if (rc == 0)
		rc = catalog_snapshot_get(eng->cat, v.id, snap, &s);
	if (rc < 0)
		return rc;
	if (s.state != SNAP_STATE_BACKED_UP)
		return -ENOENT;
	if (id_out)
		*id_out = (uint64_t)s.id;
	if (image_out)
		*image_out = backup_image_path(eng, &s);
	if (manifest_out)
		*manifest_out = backup_manifest_path(eng, &s);
	return 0;
}
