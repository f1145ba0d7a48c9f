/*
 * proc.c - subprocesses through GLib's GSubprocess.
 *
 * DESIGN: called from worker and FUSE threads; each call owns its child
 * from spawn to reap.  Cancellation comes from another thread through a
 * GCancellable and is turned into SIGKILL here; the child is always waited
 * for before returning, so no zombie and no half-written file outlives the
 * call that started it.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "fault.h"
#include "proc.h"
#include "image.h"
#include "log.h"

static void child_setup(gpointer data)
{
	/* die with the spawning thread (and so with snapfs on kill -9) */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(127);
}

static GSubprocess *spawn(char *const *argv, GSubprocessFlags flags, int *rc)
{
	g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new(flags);
	g_autoptr(GError) gerr = NULL;
	GSubprocess *p;

	g_subprocess_launcher_set_child_setup(l, child_setup, NULL, NULL);
	if (fault("proc.spawn", EAGAIN)) {
		snap_log(LOG_ERR, "proc: cannot start '%s': (fault injected)", argv[0]);
		*rc = -EIO;
		return NULL;
	}
	p = g_subprocess_launcher_spawnv(l, (const char *const *)argv, &gerr);
	if (!p) {
		*rc = g_error_matches(gerr, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT) ?
			      -ENOENT : -EIO;
		snap_log(LOG_ERR, "proc: cannot start '%s': %s", argv[0],
			 gerr->message);
	}
	return p;
}

static int finish(GSubprocess *p, char *const *argv, GCancellable *cancel,
		  const char *errtext)
{
	int status;

	if (cancel && g_cancellable_is_cancelled(cancel)) {
		g_subprocess_force_exit(p);
		g_subprocess_wait(p, NULL, NULL);
		return -ECANCELED;
	}
	g_subprocess_wait(p, NULL, NULL);
	if (g_subprocess_get_if_exited(p)) {
		status = g_subprocess_get_exit_status(p);
		if (status == 0 && fault("proc.exit", EIO))
			status = 1; /* as if it had failed after its work */
		if (status == 0)
			return 0;
		snap_log(LOG_ERR, "proc: '%s %s' exited with %d: %s", argv[0],
			 argv[1] ? argv[1] : "", status,
			 errtext && *errtext ? errtext : "(no message)");
		return image_stderr_errno(errtext);
	}
	snap_log(LOG_ERR, "proc: '%s %s' killed by signal %d", argv[0],
		 argv[1] ? argv[1] : "", g_subprocess_get_term_sig(p));
	return -EIO;
}

static void on_cancel(GCancellable *cancel, gpointer p)
{
	(void)cancel;
	g_subprocess_force_exit(G_SUBPROCESS(p));
}

int proc_run(char *const *argv, GCancellable *cancel, char **out, char **err)
{
	g_autoptr(GSubprocess) p = NULL;
	g_autoptr(GError) gerr = NULL;
	g_autofree char *o = NULL, *e = NULL;
	gulong id = 0;
	gboolean ok;
	int rc = 0;

	p = spawn(argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE |
				G_SUBPROCESS_FLAGS_STDERR_PIPE |
				G_SUBPROCESS_FLAGS_STDIN_INHERIT, &rc);
	if (!p)
		return rc;
	/*
	 * GLib 2.74's communicate with a GCancellable corrupts the heap or
	 * hangs now and then (about one run in 1,000 under the policy
	 * benchmark; reproduced outside snapfs with /bin/true): it never gets
	 * one.  Cancelling kills the child, which ends the communication.
	 */
	if (cancel)
		id = g_cancellable_connect(cancel, G_CALLBACK(on_cancel), p, NULL);
	ok = g_subprocess_communicate_utf8(p, NULL, NULL, &o, &e, &gerr);
	if (id)
		g_cancellable_disconnect(cancel, id);
	if (!ok) {
		if (!g_error_matches(gerr, G_IO_ERROR, G_IO_ERROR_CANCELLED))
			snap_log(LOG_ERR, "proc: reading '%s': %s", argv[0],
				 gerr->message);
		g_subprocess_force_exit(p);
		g_subprocess_wait(p, NULL, NULL);
		return g_cancellable_is_cancelled(cancel) ? -ECANCELED : -EIO;
	}
	rc = finish(p, argv, cancel, e);
	if (rc == 0 && out)
		*out = g_steal_pointer(&o);
	if (rc < 0 && err)
		*err = g_steal_pointer(&e);
	return rc;
}

int proc_run_lines(char *const *argv, GCancellable *cancel,
		   int (*on_line)(const char *line, void *arg), void *arg,
		   char **err)
{
	g_autoptr(GSubprocess) p = NULL;
	g_autoptr(GString) line = g_string_new(NULL);
	g_autoptr(GString) other = g_string_new(NULL);
	GInputStream *in;
	char buf[4096];
	gssize n, i;
	int rc = 0;

	p = spawn(argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE |
				G_SUBPROCESS_FLAGS_STDERR_MERGE |
				G_SUBPROCESS_FLAGS_STDIN_INHERIT, &rc);
	if (!p)
		return rc;
	in = g_subprocess_get_stdout_pipe(p);
	for (;;) {
		n = g_input_stream_read(in, buf, sizeof(buf), cancel, NULL);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			if (buf[i] != '\n' && buf[i] != '\r') {
				if (line->len < 4096)
					g_string_append_c(line, buf[i]);
				continue;
			}
			if (line->len && on_line(line->str, arg) != 0 &&
			    other->len < 8192)
				g_string_append_printf(other, "%s\n", line->str);
			g_string_truncate(line, 0);
		}
	}
	if (line->len && on_line(line->str, arg) != 0)
		g_string_append(other, line->str);
	rc = finish(p, argv, cancel, other->str);
	if (rc < 0 && err)
		*err = g_strdup(other->str);
	return rc;
}
