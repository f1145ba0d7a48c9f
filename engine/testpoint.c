/*
 * testpoint.c - places where a crash test can stop the engine for good.
 *
 * With SNAPFS_HANG_AT=<name> in the environment, the thread reaching the
 * test point <name> logs "testpoint: hanging at <name>" and blocks for ever,
 * so a test can kill -9 snapfs at exactly that moment and check what the
 * next mount makes of it.  Without the variable a test point costs one
 * comparison.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "testpoint.h"
#include "log.h"

void testpoint(const char *name)
{
	static const char *hang_at;
	static gsize once;

	if (g_once_init_enter(&once)) {
		hang_at = getenv("SNAPFS_HANG_AT");
		g_once_init_leave(&once, 1);
	}
	if (!hang_at || strcmp(hang_at, name) != 0)
		return;
	snap_log(LOG_WARNING, "testpoint: hanging at %s", name);
	for (;;)
		pause();
}
