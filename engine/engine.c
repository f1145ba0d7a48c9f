/*
 * engine.c - open, start and close an engine: the lifecycle layer, the
 * only file that knows every module (context.h lists the layers).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "control_results.h"
#include "fsutil.h"
#include "image.h"
#include "log.h"
#include "policies.h"
#include "pool.h"
#include "proc.h"
#include "recover.h"
#include "repo.h"
#include "verify.h"
#include "running.h"
#include "testpoint.h"
#include "vms.h"
#include "waiters.h"
#include "watch.h"

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

/*
 * The host name this catalog goes by (issue 14: every manifest names it,
 * and hosts sharing a repository tell their backups apart by it).  The
 * first mount records it: -o host, else the machine's host name.  Later
 * mounts keep it; a -o host that names another refuses the mount, since
 * this host's backups would then read as another host's.
 */
static int host_identity(struct snap_engine *eng)
{
	g_autofree char *recorded = NULL;
	char name[256];
	const char *want = eng->cfg.host;
	int rc = catalog_identity_get(eng->cat, "host", &recorded);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (want && snap_name_valid(want) < 0) {
		snap_log(LOG_ERR, "engine: -o host='%s': a host name is 1 to %d letters, digits, '.', '_' or '-', not starting with '.' or '-'",
			 want, SNAP_NAME_MAX);
		return -EINVAL;
	}
	if (recorded) {
		if (want && strcmp(want, recorded) != 0) {
			snap_log(LOG_ERR, "engine: this catalog is host '%s': -o host=%s would make its backups another host's; refusing to mount (leave host= out, or use host=%s)",
				 recorded, want, recorded);
			return -EINVAL;
		}
		eng->host = g_steal_pointer(&recorded);
		return 0;
	}
	if (!want) {
		if (gethostname(name, sizeof(name)) < 0 || !name[0]) {
			snap_log(LOG_ERR, "engine: cannot read this machine's host name (%m): give one with -o host=NAME");
			return -EINVAL;
		}
		name[sizeof(name) - 1] = '\0';
		*strchrnul(name, '.') = '\0'; /* the short name */
		if (snap_name_valid(name) < 0) {
			snap_log(LOG_ERR, "engine: this machine's host name '%s' cannot name it in the repository: give one with -o host=NAME",
				 name);
			return -EINVAL;
		}
		want = name;
	}
	rc = catalog_identity_set(eng->cat, "host", want);
	if (rc < 0)
		return rc;
	eng->host = g_strdup(want);
	return 0;
}

/*
 * "rados:<pool>[/<namespace>]" of -o secondary= into eng->rados_pool and
 * eng->rados_ns.  Return: 0; -EINVAL (logged).
 */
static int rados_secondary(struct snap_engine *eng, const char *spec)
{
	const char *p = spec + strlen("rados:");
	const char *slash = strchr(p, '/');
	g_autofree char *pool = slash ? g_strndup(p, (gsize)(slash - p)) :
					g_strdup(p);
	const char *ns = slash ? slash + 1 : NULL;

	if (!*pool || (ns && (!*ns || strchr(ns, '/')))) {
		snap_log(LOG_ERR, "engine: secondary '%s': expected rados:<pool> or rados:<pool>/<namespace>",
			 spec);
		return -EINVAL;
	}
	if (!eng->cfg.repository) {
		snap_log(LOG_ERR, "engine: secondary '%s' holds a repository: repository=off (full copies) needs a directory",
			 spec);
		return -EINVAL;
	}
	eng->rados_pool = g_steal_pointer(&pool);
	eng->rados_ns = g_strdup(ns);
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
	g_cond_init(&eng->schedule);
	g_cond_init(&eng->volumes_idle);
	eng->waiters = waiters_new();
	eng->running = running_new();
	eng->busy_volumes = g_hash_table_new_full(g_int64_hash, g_int64_equal,
						  g_free, NULL);
	eng->control_results = control_results_new();
	eng->test_now = (int64_t)time(NULL);
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
	if (cfg->secondary && g_str_has_prefix(cfg->secondary, "rados:")) {
		rc = rados_secondary(eng, cfg->secondary);
		if (rc < 0)
			goto undo_alloc;
	}
	sec = cfg->secondary && !eng->rados_pool ?
		      g_strdup(cfg->secondary) :
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
	if (rc == 0)
		rc = host_identity(eng);
	if (rc == 0)
		rc = repo_open(eng);
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

	snap_log(LOG_INFO, "engine: starting: host '%s', primary '%s', secondary '%s', %u worker(s), keep_primary=%u, repository=%s",
		 eng->host, eng->primary,
		 eng->rados_pool ? eng->cfg.secondary : eng->secondary,
		 eng->cfg.workers,
		 eng->cfg.keep_primary, eng->repo ? "on" : "off");
	testpoint("engine.start");
	/* a libvirt the admin named must answer; only the embedded driver
	 * may fail into a mount without VMs */
	rc = vms_start(eng);
	if (rc < 0)
		return rc;
	/* librados starts threads: after the fork, before recovery reads
	 * the repository */
	rc = repo_connect(eng);
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
		rc = repo_start(eng);
	if (rc == 0)
		rc = verify_start(eng);
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
	verify_stop(eng);
	repo_close(eng);
	if (eng->vms)
		vms_stop(eng);
	catalog_close(eng->cat);
	running_free(eng->running);
	g_hash_table_destroy(eng->busy_volumes);
	control_results_free(eng->control_results);
	policies_clear(eng);
	waiters_free(eng->waiters);
	g_mutex_clear(&eng->lock);
	g_cond_clear(&eng->schedule);
	g_cond_clear(&eng->volumes_idle);
	g_free(eng->source);
	g_free(eng->primary);
	g_free(eng->secondary);
	g_free(eng->layers_dir);
	g_free(eng->backups_dir);
	g_free(eng->tmp_dir);
	g_free(eng->ptmp_dir);
	g_free(eng->host);
	g_free(eng->rados_pool);
	g_free(eng->rados_ns);
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
