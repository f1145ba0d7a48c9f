/*
 * fault.c - make the Nth failure point of a run fail (fault injection).
 *
 * With SNAPFS_FAULT_AT=N in the environment, every call of fault() counts
 * one failure point (catalog transactions and writes, subprocess starts
 * and exits, renames, fsyncs, libvirt calls); the Nth one fails with its
 * errno and logs "fault: point N (<name>) fails with <errno>".  A test
 * walks N upward until no point fails (tests/fs/test_faults.py) and checks
 * after each run that the catalog and storage still agree.  Without the
 * variable a failure point costs one comparison.
 */
#include <errno.h>
#include <stdlib.h>
#include <glib.h>

#include "engine.h"
#include "fault.h"
#include "log.h"

bool fault(const char *point, int err)
{
	static gsize once;
	static long fail_at;
	static gint count;
	long n;

	if (g_once_init_enter(&once)) {
		const char *s = getenv("SNAPFS_FAULT_AT");

		fail_at = s ? strtol(s, NULL, 10) : 0;
		g_once_init_leave(&once, 1);
	}
	if (fail_at <= 0)
		return false;
	n = g_atomic_int_add(&count, 1) + 1;
	if (n != fail_at)
		return false;
	snap_log(LOG_WARNING, "fault: point %ld (%s) fails with %s", n, point,
		 errno_name(err));
	errno = err;
	return true;
}
