/*
 * notify.c - sd_notify(3) for the systemd unit (systemd/snapfs@.service).
 *
 * The one file that uses libsystemd.  Errors are logged at debug level and
 * otherwise ignored: a service manager that cannot hear us times the unit
 * out by itself, and the mount works either way.
 */
#include <string.h>
#include <glib.h>

#include "notify.h"
#include "snap.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

static void notify(const char *what, const char *state)
{
	/* 0: keep $NOTIFY_SOCKET; STOPPING=1 comes later from the same process */
	int rc = sd_notify(0, state);

	if (rc < 0)
		snap_log(LOG_DEBUG, "notify: cannot send %s to the service manager: %s",
			 what, strerror(-rc));
}
#else
static void notify(const char *what, const char *state)
{
}
#endif

void notify_ready(const char *mountpoint)
{
	g_autofree char *state =
		g_strdup_printf("READY=1\nSTATUS=serving %s", mountpoint);

	notify("READY=1", state);
}

void notify_stopping(void)
{
	notify("STOPPING=1", "STOPPING=1\nSTATUS=unmounting");
}
