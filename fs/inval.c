/*
 * inval.c - make the kernel forget paths the engine removed by itself.
 *
 * DESIGN: the mount lets the kernel cache names and attributes for one
 * second (ops.c: entry_timeout, attr_timeout), which is what makes `ls -l`
 * of a big snapshots directory and path walks cheap.  What users remove
 * through the mount the kernel forgets by itself; what the engine removes
 * (a policy pruning a snapshot, a chown changing owners, a rename leaving
 * old backed-up names) it reports through its gone hook.  The hook only
 * queues the path: fuse_invalidate_path() writes to /dev/fuse and must not
 * run inside a request that holds the inode locks it may need, so a
 * thread of its own does it.  A forgotten path's next stat asks snapfs
 * again; names not yet forgotten live at most one second.
 */
#include <errno.h>
#include <string.h>
#include <syslog.h>

#include "inval.h"

static GAsyncQueue *queue;
static GThread *thread;
static const char stop_mark[] = "";

static gpointer inval_thread(gpointer data)
{
	struct fuse *fuse = data;
	char *path;

	while ((path = g_async_queue_pop(queue)) != stop_mark) {
		int rc = fuse_invalidate_path(fuse, path);

		/* -ENOENT: the kernel never saw it, nothing to forget */
		if (rc < 0 && rc != -ENOENT)
			snap_log(LOG_DEBUG, "inval: '%s': %s", path, strerror(-rc));
		g_free(path);
	}
	return NULL;
}

int inval_start(struct fuse *fuse)
{
	queue = g_async_queue_new_full(g_free);
	thread = g_thread_try_new("snapfs-inval", inval_thread, fuse, NULL);
	if (!thread) {
		g_async_queue_unref(queue);
		queue = NULL;
		return -ENOMEM;
	}
	return 0;
}

void inval_push(const char *path, void *arg)
{
	(void)arg;
	if (queue)
		g_async_queue_push(queue, g_strconcat("/", path, NULL));
}

void inval_stop(void)
{
	if (!thread)
		return;
	g_async_queue_push(queue, (gpointer)stop_mark);
	g_thread_join(thread);
	thread = NULL;
	/* anything pushed after the mark is dropped with the queue */
	g_async_queue_unref(queue);
	queue = NULL;
}
