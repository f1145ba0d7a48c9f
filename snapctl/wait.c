/*
 * wait.c - `snapctl wait SNAPSHOT`: block until the snapshot's backup ends.
 *
 * DESIGN: a reader thread reads the snapshot's wait file,
 * MOUNT/wait/<vol>/<snap>, whose read blocks in snapfs until the snapshot
 * is BackedUp or BackupFailed (see docs/snapctl.md).  The main thread waits for that thread's answer and,
 * meanwhile, once a tick, shows progress from the backup's jobs/<id> (a
 * bar on a terminal, a line per step otherwise; nothing with -q or
 * --json) and checks the --timeout.  The two share only struct reader,
 * under its lock.
 *
 * When snapfs has no sleeping slot left (the read fails with EBUSY, at
 * most 8 readers wait at once), or the mount has no wait file (an older
 * snapfs), the main thread reads the `state` file once a tick instead.
 * On a timeout snapctl exits with the reader still in read(2): exiting
 * interrupts it, and snapfs answers an interrupted read at once (EINTR).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapctl.h"

#define TICK_TTY_US (250 * G_TIME_SPAN_MILLISECOND)
#define TICK_US G_TIME_SPAN_SECOND
#define BAR_WIDTH 30

/* The reader thread and what it got. */
struct reader {
	GMutex lock;
	GCond cond;
	int fd;	     /* the wait file, read by the thread */
	bool done;   /* under lock: rc and answer are final */
	int rc;	     /* 0 or -errno of read(2) */
	char answer[64];
};

/* How progress is shown. */
enum display {
	DISPLAY_NONE,  /* -q or --json */
	DISPLAY_LINES, /* not a terminal: a line when something changes */
	DISPLAY_BAR,   /* a terminal: one line redrawn */
	DISPLAY_LAST
};

struct progress {
	enum display display;
	const char *target;	/* volumes/<vol>/snapshots/<snap> */
	char *job_id;		/* of the backup, once found (g_free) */
	char last[128];		/* DISPLAY_LINES: the last line's step */
	bool drawn;		/* DISPLAY_BAR: a bar is on the screen */
};

static gpointer reader_main(gpointer data)
{
	struct reader *r = data;
	char buf[sizeof(r->answer)];
	size_t len = 0;
	ssize_t n;
	int rc = 0;

	while (len < sizeof(buf) - 1) {
		n = read(r->fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	g_mutex_lock(&r->lock);
	r->rc = rc;
	g_strlcpy(r->answer, buf, sizeof(r->answer));
	r->done = true;
	g_cond_signal(&r->cond);
	g_mutex_unlock(&r->lock);
	return NULL;
}

static bool is_final(const char *state)
{
	return !strcmp(state, "BackedUp") || !strcmp(state, "BackupFailed") ||
	       !strcmp(state, "Damaged");
}

/* "volumes/V/snapshots/S" when @comps (from @i on) is exactly that. */
static char *snapshot_rel(char **comps, int i, int n)
{
	if (n - i != 4 || strcmp(comps[i], "volumes") != 0 ||
	    strcmp(comps[i + 2], "snapshots") != 0 || !*comps[i + 1] ||
	    !*comps[i + 3])
		return NULL;
	return g_strdup_printf("volumes/%s/snapshots/%s", comps[i + 1],
			       comps[i + 3]);
}

/*
 * The snapshot @arg names: a snapshot's directory (the mount is taken
 * from it), else volumes/V/snapshots/S or V/S in @ctl's mount.
 * Return: 0, *@rel_out owns volumes/V/snapshots/S; -EINVAL not a
 * snapshot's name; -ENOENT no such snapshot; mount_find()'s errors.
 */
static int resolve(struct snapctl *ctl, const char *arg, char **rel_out)
{
	g_autofree char *name = g_strdup(arg);
	g_auto(GStrv) comps = NULL;
	g_autofree char *full = NULL;
	char *real = realpath(arg, NULL);
	struct stat st;
	int n, rc;

	if (real) {
		/* "/MOUNT/volumes/V/snapshots/S": the mount is what precedes */
		comps = g_strsplit(real, "/", -1);
		free(real);
		n = (int)g_strv_length(comps);
		*rel_out = n >= 5 ? snapshot_rel(comps, n - 4, n) : NULL;
		if (*rel_out) {
			GString *mount = g_string_new(NULL);

			for (int i = 1; i < n - 4; i++)
				g_string_append_printf(mount, "/%s", comps[i]);
			if (mount->len == 0)
				g_string_append_c(mount, '/');
			g_free(ctl->mount);
			ctl->mount = g_string_free(mount, FALSE);
			if (mount_is_snapfs(ctl->mount))
				return 0;
			fprintf(stderr, "snapctl: wait: '%s' is not in a snapfs mount\n",
				arg);
			g_clear_pointer(rel_out, g_free);
			return -ENOENT;
		}
		g_clear_pointer(&comps, g_strfreev);
	}
	if (!ctl->mount) {
		rc = mount_find(ctl, NULL);
		if (rc < 0)
			return rc;
	}
	while (g_str_has_suffix(name, "/"))
		name[strlen(name) - 1] = '\0';
	comps = g_strsplit(name[0] == '/' ? name + 1 : name, "/", -1);
	n = (int)g_strv_length(comps);
	*rel_out = snapshot_rel(comps, 0, n);
	if (!*rel_out && n == 2 && *comps[0] && *comps[1])
		*rel_out = g_strdup_printf("volumes/%s/snapshots/%s", comps[0],
					   comps[1]);
	if (!*rel_out) {
		fprintf(stderr, "snapctl: wait: '%s' names no snapshot (a snapshot's directory, volumes/VOL/snapshots/NAME or VOL/NAME)\n",
			arg);
		return -EINVAL;
	}
	full = mount_path(ctl, *rel_out);
	if (stat(full, &st) < 0) {
		rc = -errno;
		fprintf(stderr, "snapctl: wait: %s: %s\n", full, g_strerror(-rc));
		g_clear_pointer(rel_out, g_free);
		return rc;
	}
	return 0;
}

/* MOUNT/wait/<vol>/<snap> for @rel, volumes/<vol>/snapshots/<snap>. */
static char *wait_file_path(const struct snapctl *ctl, const char *rel)
{
	g_auto(GStrv) parts = g_strsplit(rel, "/", -1);

	return g_strdup_printf("%s/wait/%s/%s", ctl->mount, parts[1], parts[3]);
}

/* The backup job of @p->target, or NULL (json_object_put). */
static struct json_object *find_job(const struct snapctl *ctl,
				    struct progress *p)
{
	g_auto(GStrv) ids = NULL;
	struct json_object *job = NULL;
	g_autofree char *path = NULL;

	if (p->job_id) {
		path = g_strdup_printf("jobs/%s", p->job_id);
		if (mount_read_json(ctl, path, &job) == 0)
			return job;
		g_clear_pointer(&p->job_id, g_free); /* ended */
		return NULL;
	}
	if (mount_list(ctl, "jobs", MOUNT_LIST_IDS, &ids) < 0)
		return NULL;
	for (char **id = ids; *id; id++) {
		const char *target, *kind;

		g_free(path);
		path = g_strdup_printf("jobs/%s", *id);
		if (mount_read_json(ctl, path, &job) < 0)
			continue;
		target = json_get_str(job, "target");
		kind = json_get_str(job, "kind");
		if (target && kind && !strcmp(target, p->target) &&
		    !strcmp(kind, "backup")) {
			p->job_id = g_strdup(*id);
			return job;
		}
		json_object_put(job);
	}
	return NULL;
}

static void show_progress(const struct snapctl *ctl, struct progress *p)
{
	struct json_object *job;
	const char *state = "waiting for its job";
	int64_t done = 0, total = 0;
	int pct = -1;
	g_autofree char *line = NULL;

	if (p->display == DISPLAY_NONE)
		return;
	job = find_job(ctl, p);
	if (job) {
		state = json_get_str(job, "state") ?: "?";
		done = json_get_int(job, "bytes_done", 0);
		total = json_get_int(job, "bytes_total", 0);
		if (!strcmp(state, "running") && total > 0)
			pct = (int)(MIN(done, total) * 100 / total);
	}
	if (p->display == DISPLAY_BAR) {
		int fill = pct < 0 ? 0 : pct * BAR_WIDTH / 100;
		g_autofree char *d = format_size((uint64_t)MAX(done, 0));
		g_autofree char *t = format_size((uint64_t)MAX(total, 0));

		printf("\r%s [%.*s%*s] ", p->target, fill,
		       "##############################", BAR_WIDTH - fill, "");
		if (pct >= 0)
			printf("%3d%% %s of %s\033[K", pct, d, t);
		else
			printf("%s\033[K", state);
		fflush(stdout);
		p->drawn = true;
		json_object_put(job);
		return;
	}
	/* lines: one per job state, and per quarter of the copy */
	if (pct >= 0) {
		g_autofree char *t = format_size((uint64_t)total);

		line = g_strdup_printf("copying, %d%% of %s", pct / 25 * 25, t);
	} else {
		line = g_strdup(state);
	}
	if (strcmp(line, p->last) != 0) {
		printf("%s: %s\n", p->target, line);
		fflush(stdout);
		g_strlcpy(p->last, line, sizeof(p->last));
	}
	json_object_put(job);
}

static void progress_clear(struct progress *p)
{
	if (p->display == DISPLAY_BAR && p->drawn)
		printf("\r\033[K");
	fflush(stdout);
}

/*
 * Wait for @r's answer, or (@r NULL) poll the state file, until the
 * snapshot's state is final or @deadline (monotonic, 0: none) passes.
 * Return: 0 and @state (size @size) holds the final state; -ETIMEDOUT;
 * -ENOENT deleted; -EBUSY the reader found no slot (poll instead);
 * -errno of a read.
 */
static int wait_loop(const struct snapctl *ctl, struct reader *r,
		     struct progress *p, gint64 deadline, char *state,
		     size_t size)
{
	gint64 tick = p->display == DISPLAY_BAR ? TICK_TTY_US : TICK_US;
	g_autofree char *state_path = g_strdup_printf("%s/state", p->target);
	gint64 until;
	bool done;
	int rc;

	for (;;) {
		if (!r) {
			g_autofree char *word = NULL;

			rc = mount_read_word(ctl, state_path, &word);
			if (rc < 0)
				return rc;
			if (is_final(word)) {
				g_strlcpy(state, word, size);
				return 0;
			}
		}
		show_progress(ctl, p);
		until = g_get_monotonic_time() + tick;
		if (deadline && until > deadline)
			until = deadline;
		if (r) {
			g_mutex_lock(&r->lock);
			while (!r->done && g_cond_wait_until(&r->cond, &r->lock, until))
				;
			done = r->done;
			g_mutex_unlock(&r->lock);
			if (done) {
				/* r->done is final: no lock needed any more */
				if (r->rc < 0)
					return r->rc;
				if (!is_final(r->answer))
					return -EPROTO;
				g_strlcpy(state, r->answer, size);
				return 0;
			}
		} else {
			g_usleep((gulong)MAX(until - g_get_monotonic_time(), 0));
		}
		if (deadline && g_get_monotonic_time() >= deadline)
			return -ETIMEDOUT;
	}
}

/* The result document of --json. */
static void print_result(const struct snapctl *ctl, const char *target,
			 const char *state, bool timed_out)
{
	g_autofree char *info_path = g_strdup_printf("%s/info", target);
	struct json_object *doc = json_object_new_object(), *info = NULL;

	json_object_object_add(doc, "snapshot", json_object_new_string(target));
	json_object_object_add(doc, "state",
			       state ? json_object_new_string(state) : NULL);
	json_object_object_add(doc, "timed_out", json_object_new_boolean(timed_out));
	if (state && mount_read_json(ctl, info_path, &info) == 0)
		json_object_object_add(doc, "info", info);
	else
		json_object_object_add(doc, "info", NULL);
	print_json(doc);
	json_object_put(doc);
}

/* The last line without --json: the state, and why a backup failed. */
static void print_final(const struct snapctl *ctl, const char *target,
			const char *state)
{
	g_autofree char *info_path = g_strdup_printf("%s/info", target);
	struct json_object *info = NULL;
	const char *error = NULL;

	if ((!strcmp(state, "BackupFailed") || !strcmp(state, "Damaged")) &&
	    mount_read_json(ctl, info_path, &info) == 0)
		error = json_get_str(info, "error");
	printf("%s: %s%s%s\n", target, state, error ? ": " : "", error ?: "");
	json_object_put(info);
}

static int usage_error(void)
{
	fprintf(stderr, "usage: snapctl wait [-t SECS] [-q] [--json] SNAPSHOT\n");
	return -EINVAL;
}

/*
 * A reader still in read(2) when cmd_wait() returns (a timeout, an error)
 * keeps its struct until snapctl exits; kept here, it is not a leak.
 */
static struct reader *orphan;

int cmd_wait(struct snapctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct reader *r = NULL;
	struct progress p = { 0 };
	g_autofree char *rel = NULL, *wait_path = NULL;
	char state[64] = "";
	GThread *thread = NULL;
	gint64 deadline = 0;
	double timeout = 0;
	bool quiet = false;
	char *end;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "t:qj", options, NULL)) != -1) {
		switch (opt) {
		case 't':
			timeout = g_ascii_strtod(optarg, &end);
			if (end == optarg || *end || timeout <= 0)
				return usage_error();
			break;
		case 'q':
			quiet = true;
			break;
		case 'j':
			ctl->json = true;
			break;
		default:
			return usage_error();
		}
	}
	if (optind != argc - 1)
		return usage_error();
	rc = resolve(ctl, argv[optind], &rel);
	if (rc < 0)
		return rc;
	p.target = rel;
	p.display = quiet || ctl->json ? DISPLAY_NONE :
		    isatty(STDOUT_FILENO) ? DISPLAY_BAR : DISPLAY_LINES;
	if (timeout > 0)
		deadline = g_get_monotonic_time() +
			   (gint64)(timeout * G_TIME_SPAN_SECOND);

	wait_path = wait_file_path(ctl, rel);
	r = g_new0(struct reader, 1);
	g_mutex_init(&r->lock);
	g_cond_init(&r->cond);
	r->fd = open(wait_path, O_RDONLY | O_CLOEXEC);
	if (r->fd >= 0) {
		thread = g_thread_new("snapctl-wait", reader_main, r);
		rc = wait_loop(ctl, r, &p, deadline, state, sizeof(state));
	} else {
		rc = -errno; /* ENOENT: an older snapfs, or the snapshot went */
	}
	if (rc == -EBUSY || (r->fd < 0 && rc == -ENOENT))
		rc = wait_loop(ctl, NULL, &p, deadline, state, sizeof(state));
	progress_clear(&p);

	if (rc == 0 || rc == -ETIMEDOUT) {
		g_autofree char *now = NULL;
		g_autofree char *state_path = g_strdup_printf("%s/state", rel);

		if (rc == -ETIMEDOUT && mount_read_word(ctl, state_path, &now) == 0)
			g_strlcpy(state, now, sizeof(state));
		if (ctl->json)
			print_result(ctl, rel, state[0] ? state : NULL,
				     rc == -ETIMEDOUT);
		else if (rc == 0)
			print_final(ctl, rel, state);
		else
			fprintf(stderr, "snapctl: wait: %s: still %s after %g s\n",
				rel, state[0] ? state : "not backed up", timeout);
	} else if (rc == -ENOENT) {
		if (ctl->json)
			print_result(ctl, rel, NULL, false);
		fprintf(stderr, "snapctl: wait: %s: the snapshot is gone (deleted)\n",
			rel);
	} else {
		fprintf(stderr, "snapctl: wait: %s: %s\n", rel, g_strerror(-rc));
	}
	if (rc == 0 && (!strcmp(state, "BackupFailed") || !strcmp(state, "Damaged")))
		ctl->outcome = SNAPCTL_EXIT_BACKUP_FAILED;

	g_free(p.job_id);
	if (thread) {
		bool done;

		g_mutex_lock(&r->lock);
		done = r->done;
		g_mutex_unlock(&r->lock);
		/* still in read(2) after a timeout or an error: snapctl's exit
		 * interrupts it; until then the thread owns @r */
		if (!done) {
			g_thread_unref(thread);
			orphan = r;
			return rc;
		}
		g_thread_join(thread);
	}
	if (r->fd >= 0)
		close(r->fd);
	g_mutex_clear(&r->lock);
	g_cond_clear(&r->cond);
	g_free(r);
	return rc;
}
