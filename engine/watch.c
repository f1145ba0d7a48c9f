/*
 * watch.c - notice volume files removed from primary storage by hand.
 *
 * DESIGN: a volume is a file PRIMARY/<vol>.qcow2, and an admin removes
 * one with rm or mv behind snapfs's back.  The front end lets the kernel
 * cache names for a second (fs/inval.c); so that volumes/<vol> is gone at
 * once, the thread snapfs-watch reads inotify events of PRIMARY and
 * reports the removed volume's paths through the engine's gone hook.  New
 * files need nothing: the kernel never caches a name that was missing.
 * The thread polls its inotify descriptor and an eventfd that stops it.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>

#include "watch.h"
#include "gone.h"
#include "log.h"

/* The module's state (eng->watch). */
struct watch {
	int fd;	  /* inotify of PRIMARY */
	int stop; /* an eventfd: written to stop the thread */
	GThread *thread;
};

static void volume_gone(struct snap_engine *eng, const char *file)
{
	g_autofree char *vol = NULL;

	if (!g_str_has_suffix(file, ".qcow2"))
		return;
	vol = g_strndup(file, strlen(file) - strlen(".qcow2"));
	if (snap_name_valid(vol) < 0)
		return;
	gone_path(eng, "volumes/%s/info", vol);
	gone_path(eng, "volumes/%s/control", vol);
	gone_path(eng, "volumes/%s/snapshots", vol);
	gone_path(eng, "volumes/%s", vol);
}

static gpointer watch_thread(gpointer data)
{
	struct snap_engine *eng = data;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd fds[2] = {
		{ .fd = eng->watch->fd, .events = POLLIN },
		{ .fd = eng->watch->stop, .events = POLLIN },
	};

	for (;;) {
		ssize_t n;
		char *p;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[1].revents)
			break;
		n = read(eng->watch->fd, buf, sizeof(buf));
		if (n <= 0)
			continue;
		for (p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (ev->len && (ev->mask & (IN_DELETE | IN_MOVED_FROM)))
				volume_gone(eng, ev->name);
			p += sizeof(*ev) + ev->len;
		}
	}
	return NULL;
}

int watch_start(struct snap_engine *eng)
{
	eng->watch = g_new0(struct watch, 1);
	eng->watch->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	eng->watch->stop = eventfd(0, EFD_CLOEXEC);
	if (eng->watch->fd < 0 || eng->watch->stop < 0 ||
	    inotify_add_watch(eng->watch->fd, eng->primary,
			      IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR) < 0) {
		/* not fatal: removed volumes then linger a second in caches */
		snap_log(LOG_WARNING, "watch: cannot watch '%s': %m", eng->primary);
		watch_stop(eng);
		return 0;
	}
	eng->watch->thread = g_thread_try_new("snapfs-watch", watch_thread, eng, NULL);
	if (!eng->watch->thread)
		watch_stop(eng);
	return 0;
}

void watch_stop(struct snap_engine *eng)
{
	uint64_t one = 1;

	if (!eng->watch)
		return;
	if (eng->watch->thread) {
		if (write(eng->watch->stop, &one, sizeof(one)) < 0)
			snap_log(LOG_ERR, "watch: cannot stop the thread: %m");
		g_thread_join(eng->watch->thread);
		eng->watch->thread = NULL;
	}
	if (eng->watch->fd >= 0)
		close(eng->watch->fd);
	if (eng->watch->stop >= 0)
		close(eng->watch->stop);
	g_clear_pointer(&eng->watch, g_free);
}
