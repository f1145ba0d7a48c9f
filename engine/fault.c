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
 *
 * With SNAPFS_FAULT_POINT=<name>, the first call of the failure point of
 * that name fails instead (and only it): a test makes one named step fail,
 * e.g. "libvirt.restore" for the restore after a memory save.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "errname.h"
#include "fault.h"
#include "log.h"

bool fault(const char *point, int err)
{
	static gsize once;
	static long fail_at;
	static const char *fail_point;
	static gint count, point_fired;
	long n;

	if (g_once_init_enter(&once)) {
		const char *s = getenv("SNAPFS_FAULT_AT");

		fail_at = s ? strtol(s, NULL, 10) : 0;
		fail_point = getenv("SNAPFS_FAULT_POINT");
		g_once_init_leave(&once, 1);
	}
	if (fail_point && !strcmp(fail_point, point) &&
	    g_atomic_int_compare_and_exchange(&point_fired, 0, 1)) {
		snap_log(LOG_WARNING, "fault: point %s fails with %s", point,
			 errno_name(err));
		errno = err;
		return true;
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
