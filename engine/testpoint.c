/*
 * testpoint.c - places where a crash test can stop the engine for good.
 *
 * With SNAPFS_HANG_AT=<name> in the environment, the thread reaching the
 * test point <name> logs "testpoint: hanging at <name>" and blocks for ever,
 * so a test can kill -9 snapfs at exactly that moment and check what the
 * next mount makes of it.  Without the variable a test point costs one
 * comparison.
 *
 * With SNAPFS_HANG_FIFO=<path of a FIFO> as well, the thread logs
 * "testpoint: waiting at <name>" instead, opens the FIFO for reading
 * (which blocks until the test opens it for writing), reads it to its
 * end (the test closes it), logs "testpoint: released at <name>" and goes
 * on: a test does something while the daemon is at that point, with no
 * sleep on either side.  Every arrival waits for its own release.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "testpoint.h"
#include "log.h"

/* Block until a writer opened @fifo and closed it. */
static void wait_release(const char *name, const char *fifo)
{
	char buf[64];
	ssize_t n;
	int fd;

	snap_log(LOG_WARNING, "testpoint: waiting at %s", name);
	do
		fd = open(fifo, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		snap_log(LOG_ERR, "testpoint: cannot open '%s': %m", fifo);
		return;
	}
	do
		n = read(fd, buf, sizeof(buf));
	while (n > 0 || (n < 0 && errno == EINTR));
	close(fd);
	snap_log(LOG_WARNING, "testpoint: released at %s", name);
}

void testpoint(const char *name)
{
	static const char *hang_at, *fifo;
	static gsize once;

	if (g_once_init_enter(&once)) {
		hang_at = getenv("SNAPFS_HANG_AT");
		fifo = getenv("SNAPFS_HANG_FIFO");
		g_once_init_leave(&once, 1);
	}
	if (!hang_at || strcmp(hang_at, name) != 0)
		return;
	if (fifo) {
		wait_release(name, fifo);
		return;
	}
	snap_log(LOG_WARNING, "testpoint: hanging at %s", name);
	for (;;)
		pause();
}
