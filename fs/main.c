/*
 * main.c - snapfs's command line, mount and session.
 *
 *   snapfs [options] SOURCE MOUNTPOINT
 *
 * mount(8)-compatible (fstab type fuse.snapfs).  The engine is opened
 * and the mount made before daemonizing, the engine's threads started
 * after (a fork loses threads); the command exits only once the daemon
 * has started (daemon.h), so every failure of a mount ends in an exit
 * status and one line on stderr, the one the failing module logged (also
 * in SOURCE/snapfs.log once that is open).
 *
 * Under systemd (systemd/snapfs@.service: -f, Type=notify) the service
 * manager hears READY=1 when the loop answers the kernel's first request,
 * and STOPPING=1 when the loop ends; SIGTERM ends the loop, then the mount
 * is taken down and the engine closed, and snapfs exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "daemon.h"
#include "inval.h"
#include "notify.h"
#include "ops.h"
#include <fuse_lowlevel.h>

struct options {
	char *source;
	char *primary;
	char *secondary;
	unsigned workers;
	unsigned keep_primary;
	unsigned retries;
	unsigned retry_delay;
	unsigned long long min_free;
	char *libvirt;
	char *vm_snapshots_off;
	unsigned stop_timeout;
	unsigned max_snapshots;
	char *repository;
	char *host;
	char *ceph_conf;
	char *ceph_id;
	unsigned verify_interval;
	int test_clock;
	int nonopts;
};

/* The strings fuse_opt_parse() allocated in @o (the fuzz target of the
 * options calls this too). */
static void options_free(struct options *o)
{
	free(o->source);
	free(o->primary);
	free(o->secondary);
	free(o->libvirt);
	free(o->vm_snapshots_off);
	free(o->repository);
	free(o->host);
	free(o->ceph_conf);
	free(o->ceph_id);
}

enum { KEY_IGNORE, KEY_HELP, KEY_VERSION };

/* Request threads of the loop when -o max_threads does not say (libfuse's
 * own default is 10). */
#define LOOP_THREADS 16

#define OPT(t, p) { t, offsetof(struct options, p), 1 }
static const struct fuse_opt option_spec[] = {
	OPT("primary=%s", primary),
	OPT("secondary=%s", secondary),
	OPT("workers=%u", workers),
	OPT("keep_primary=%u", keep_primary),
	OPT("retries=%u", retries),
	OPT("retry_delay=%u", retry_delay),
	OPT("min_free=%llu", min_free),
	OPT("testclock", test_clock),
	OPT("repository=%s", repository),
	OPT("host=%s", host),
	OPT("ceph_conf=%s", ceph_conf),
	OPT("ceph_id=%s", ceph_id),
	OPT("verify_interval=%u", verify_interval),
	OPT("libvirt=%s", libvirt),
	OPT("vm_snapshots_off=%s", vm_snapshots_off),
	OPT("stop_timeout=%u", stop_timeout),
	OPT("max_snapshots=%u", max_snapshots),
	FUSE_OPT_KEY("nofail", KEY_IGNORE),
	FUSE_OPT_KEY("noauto", KEY_IGNORE),
	FUSE_OPT_KEY("auto", KEY_IGNORE),
	FUSE_OPT_KEY("_netdev", KEY_IGNORE),
	FUSE_OPT_KEY("defaults", KEY_IGNORE),
	FUSE_OPT_KEY("user", KEY_IGNORE),
	FUSE_OPT_KEY("nouser", KEY_IGNORE),
	FUSE_OPT_END
};

static int option_proc(void *data, const char *arg, int key,
		       struct fuse_args *out)
{
	struct options *o = data;

	if (key == KEY_IGNORE)
		return 0;
	if (key == FUSE_OPT_KEY_OPT && strncmp(arg, "x-", 2) == 0)
		return 0; /* fstab comments for other tools */
	if (key == FUSE_OPT_KEY_NONOPT && o->nonopts++ == 0) {
		o->source = strdup(arg);
		return 0;
	}
	return 1;
}

/*
 * libfuse's message @line at @level, logged; its list of unknown options
 * in our words, saying where the known ones are listed.
 */
static void log_fuse_line(int level, const char *line)
{
	static const char unknown[] = "fuse: unknown option(s): `";
	size_t len = strlen(line);
	const char *opts;

	if (!g_str_has_prefix(line, unknown) || line[len - 1] != '\'') {
		snap_log(level, "%s", line);
		return;
	}
	/* "-o a,b" as fuse_opt passes it on, or other arguments */
	opts = line + strlen(unknown);
	if (g_str_has_prefix(opts, "-o "))
		opts += 3;
	len = strlen(opts) - 1;
	snap_log(level, "main: unknown option%s '%.*s' (snapfs -h lists the options)",
		 strpbrk(opts, ", ") ? "s" : "", (int)len, opts);
}

/*
 * libfuse's log: it writes some messages in pieces (a list of unknown
 * options takes a call per option), each ending in a newline; the pieces
 * are kept, per thread, until the line is whole.
 */
static void __attribute__((format(printf, 2, 0)))
fuse_log_to_snap(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static __thread char line[1024];
	static __thread size_t len;
	int n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);

	if (n < 0)
		return;
	len = MIN(len + (size_t)n, sizeof(line) - 1);
	if (len < sizeof(line) - 1 && (len == 0 || line[len - 1] != '\n'))
		return;
	while (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	if (len > 0)
		log_fuse_line((int)level, line);
	len = 0;
}

/*
 * Backup tools read backed-up images sequentially; the kernel keeps a FUSE
 * mount's readahead at 128 KiB whatever we ask for in init, so raise it in
 * the mount's backing device info (measured: cold reads 1.07 s -> 0.8 s per
 * GiB).  Best effort: a failure only costs speed.
 */
static void set_readahead(const char *mountpoint)
{
	g_autofree char *path = NULL, *info = NULL, *real = NULL;
	g_auto(GStrv) lines = NULL;
	unsigned major = 0, minor = 0;
	bool found = false;
	FILE *f;

	/*
	 * Never stat() the mount point here: the loop is not serving yet and
	 * the kernel would wait for our own answer.  mountinfo has the
	 * device number; the last matching line is the newest mount.
	 */
	real = realpath(mountpoint, NULL);
	if (!real || !g_file_get_contents("/proc/self/mountinfo", &info, NULL, NULL))
		return;
	lines = g_strsplit(info, "\n", -1);
	for (char **l = lines; *l; l++) {
		char mnt[4096], dev[32];
		unsigned a, b;

		if (sscanf(*l, "%*s %*s %31s %*s %4095s", dev, mnt) == 2 &&
		    !strcmp(mnt, real) && sscanf(dev, "%u:%u", &a, &b) == 2) {
			major = a;
			minor = b;
			found = true;
		}
	}
	if (!found)
		return;
	path = g_strdup_printf("/sys/class/bdi/%u:%u/read_ahead_kb", major, minor);
	f = fopen(path, "we");
	if (!f)
		return;
	fputs("8192\n", f);
	if (fclose(f) != 0)
		snap_log(LOG_DEBUG, "main: cannot raise readahead in '%s'", path);
}

/* Set once before the loop starts; read by the init callback. */
static const char *ready_mountpoint;

/*
 * FUSE_INIT is the first request the loop answers: from here on the mount
 * is live, so the service manager may start what needs it.  (Requests sent
 * in the moment before our INIT reply wait for it in the kernel.)
 */
static void *init_and_notify(struct fuse_conn_info *conn,
			     struct fuse_config *cfg)
{
	void *data = snapfs_ops.init(conn, cfg);

	notify_ready(ready_mountpoint);
	return data;
}

/* The daemon died as it started: its mount would hang every access. */
static void unmount_after_death(void *fuse)
{
	fuse_unmount(fuse);
}

static void usage(const char *prog)
{
	printf("usage: %s [options] SOURCE MOUNTPOINT\n"
	       "\n"
	       "SOURCE is the state directory (catalog, log).\n"
	       "\n"
	       "snapfs options:\n"
	       "    -o primary=DIR         primary storage, an existing directory\n"
	       "                           (default SOURCE/primary, created if missing)\n"
	       "    -o secondary=DIR       secondary storage, created if missing\n"
	       "                           (default SOURCE/secondary)\n"
	       "    -o secondary=rados:POOL[/NS]  the repository in a Ceph RADOS pool\n"
	       "                           (in namespace NS of it)\n"
	       "    -o ceph_conf=FILE      with rados: the cluster's configuration\n"
	       "                           (default /etc/ceph/ceph.conf)\n"
	       "    -o ceph_id=NAME        with rados: the CephX user, without\n"
	       "                           \"client.\" (default admin)\n"
	       "    -o workers=N           background copy workers (default 2)\n"
	       "    -o keep_primary=N      backed-up snapshots per volume kept on\n"
	       "                           primary storage (default 1)\n"
	       "    -o retries=N           automatic retries of a failed backup (default 3)\n"
	       "    -o retry_delay=SECS    first retry delay, doubled each time (default 60)\n"
	       "    -o min_free=BYTES      free bytes primary must keep to take a\n"
	       "                           snapshot (default 16777216)\n"
	       "    -o libvirt=URI         use an existing libvirtd, which must answer\n"
	       "                           (e.g. qemu:///system);\n"
	       "                           default: libvirt's QEMU driver embedded,\n"
	       "                           rooted at SOURCE/libvirt; none: no VMs\n"
	       "    -o vm_snapshots_off=T  domain types without VM snapshots, e.g. qemu:kvm\n"
	       "    -o stop_timeout=SECS   how long `stop` waits for the guest (default 60)\n"
	       "    -o max_snapshots=N     snapshots each account may store (volume and VM;\n"
	       "                           root is not limited); MOUNT/limits sets lower\n"
	       "                           ones per account (default 0: no limit)\n"
	       "    -o repository=on|off   on: back up into a repository of deduplicated\n"
	       "                           chunks; off: a full qcow2 copy per backup\n"
	       "                           (default on)\n"
	       "    -o host=NAME           this host's name in the repository, recorded\n"
	       "                           at the first mount (default: the machine's\n"
	       "                           short host name)\n"
	       "    -o verify_interval=DAYS  verify each backup every DAYS days, the\n"
	       "                           least recently verified first (default 0: never)\n"
	       "    -o testclock           the clock only moves when MOUNT/.clock is written\n"
	       "    -f                     stay in the foreground\n"
	       "    -d                     debug output (implies -f)\n"
	       "    -h, --help             this help\n"
	       "    -V, --version          versions of snapfs and what it uses\n"
	       "\n", prog);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cl = { 0 };
	struct options o = { 0 };
	struct snap_config cfg;
	struct snapfs_ctx ctx = { 0 };
	struct fuse_loop_config *loop = NULL;
	struct fuse_operations ops = snapfs_ops;
	struct fuse *fuse;
	g_autofree char *fsname = NULL;
	unsigned threads;
	int rc, ret = 1;

	/* from the first message on: its option parser logs too */
	fuse_set_log_func(fuse_log_to_snap);
	snap_config_init(&cfg);
	o.workers = cfg.workers;
	o.keep_primary = cfg.keep_primary;
	o.retries = cfg.retries;
	o.retry_delay = cfg.retry_delay;
	o.min_free = cfg.min_free;
	o.stop_timeout = cfg.stop_timeout;
	/* every exit from here on goes through out: (the parsed args) */
	if (fuse_opt_parse(&args, &o, option_spec, option_proc) < 0)
		goto out;
	/* our default first: a -o max_threads given later overrides it */
	if (fuse_opt_insert_arg(&args, 1, "-omax_threads=" G_STRINGIFY(LOOP_THREADS)) < 0 ||
	    fuse_parse_cmdline(&args, &cl) < 0)
		goto out;
	if (cl.show_help) {
		usage(argv[0]);
		fuse_lib_help(&args);
		ret = 0;
		goto out;
	}
	if (cl.show_version) {
		g_autofree char *v = NULL;

		snap_versions(&v);
		printf("%s, libfuse %s\n", v, fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (!o.source || !cl.mountpoint) {
		fprintf(stderr, "snapfs: usage: snapfs [options] SOURCE MOUNTPOINT (see -h)\n");
		goto out;
	}

	cfg.source = o.source;
	cfg.primary = o.primary;
	cfg.secondary = o.secondary;
	cfg.workers = o.workers;
	cfg.keep_primary = o.keep_primary;
	cfg.retries = o.retries;
	cfg.retry_delay = o.retry_delay;
	cfg.min_free = o.min_free;
	cfg.test_clock = o.test_clock;
	if (o.repository && strcmp(o.repository, "on") != 0 &&
	    strcmp(o.repository, "off") != 0) {
		fprintf(stderr, "snapfs: -o repository takes on or off, not '%s'\n",
			o.repository);
		goto out;
	}
	cfg.repository = !o.repository || !strcmp(o.repository, "on");
	cfg.verify_interval = o.verify_interval;
	cfg.host = o.host;
	cfg.ceph_conf = o.ceph_conf;
	cfg.ceph_id = o.ceph_id;
	cfg.libvirt = o.libvirt;
	cfg.vm_snapshots_off = o.vm_snapshots_off;
	cfg.stop_timeout = o.stop_timeout;
	cfg.max_snapshots = o.max_snapshots;
	cfg.foreground = cl.foreground;
	cfg.debug = cl.debug;
	/* the engine logs why it failed, on stderr too (snap_log()) */
	rc = snap_engine_open(&cfg, &ctx.eng);
	if (rc < 0)
		goto out;
	ctx.test_clock = o.test_clock;
	ctx.mount_time = time(NULL);

	/* every account uses the one mount; the kernel checks each access
	 * against the owners and modes snapfs reports (accounts.c) */
	fsname = g_strdup_printf("-ofsname=%s,subtype=snapfs,default_permissions,allow_other",
				 o.source);
	fuse_opt_add_arg(&args, fsname);
	ops.init = init_and_notify;
	ready_mountpoint = cl.mountpoint;
	fuse = fuse_new(&args, &ops, sizeof(ops), &ctx);
	if (!fuse)
		goto out_engine;
	if (fuse_mount(fuse, cl.mountpoint) != 0)
		goto out_fuse;
	set_readahead(cl.mountpoint);
	if (daemon_start(cl.foreground, unmount_after_death, fuse) < 0)
		goto out_unmount;
	/* threads only now, after the fork */
	if (inval_start(fuse) == 0)
		snap_engine_set_gone(ctx.eng, inval_push, NULL);
	/* a read of wait/ holds a request thread while it sleeps: half of
	 * them at most, none when there is only one */
	threads = cl.singlethread ? 1 : cl.max_threads;
	snap_engine_set_wait_slots(ctx.eng, threads / 2);
	if (snap_engine_start(ctx.eng) < 0)
		goto out_unmount;
	if (fuse_set_signal_handlers(fuse_get_session(fuse)) != 0)
		goto out_unmount;
	daemon_ready();

	loop = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(loop, cl.clone_fd);
	fuse_loop_cfg_set_max_threads(loop, threads);
	ret = cl.singlethread ? fuse_loop(fuse) : fuse_loop_mt(fuse, loop);
	notify_stopping();
	/* the loop returns the signal that ended it: asked to stop, not failed */
	if (ret == SIGTERM || ret == SIGINT || ret == SIGHUP)
		ret = 0;
	fuse_loop_cfg_destroy(loop);
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
	fuse_unmount(fuse);
	ops_release_all();
out_fuse:
	snap_engine_close(ctx.eng);
	ctx.eng = NULL;
	inval_stop();
	fuse_destroy(fuse);
	goto out;
out_engine:
	snap_engine_close(ctx.eng);
out:
	free(cl.mountpoint);
	fuse_opt_free_args(&args);
	options_free(&o);
	return ret ? 1 : 0;
}
