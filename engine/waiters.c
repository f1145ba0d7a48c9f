/*
 * waiters.c - readers blocked until a snapshot's backup ends (a
 * snapshot's wait file, MOUNT/wait/<vol>/<snap>: snap_snapshot_wait()).
 *
 * DESIGN (in the manner of Redis's bio.c):
 *
 *   a reader          (a FUSE worker thread reading wait/<vol>/<snap>)
 *                     looks the snapshot up in the catalog; while it is
 *                     neither BackedUp nor BackupFailed it sleeps on
 *                     w->cond, at most WAIT_SLICE_US at a time so that its
 *                     front end can end the wait (an interrupted reader, a
 *                     session that ends), then looks again.
 *   engine threads    that change a snapshot's state for good (a backup
 *                     ends or fails, a snapshot is deleted) call
 *                     waiters_wake(), which bumps w->generation and
 *                     broadcasts w->cond.
 *   snap_engine_close() calls waiters_stop() first: every reader returns
 *                     -ENOTCONN and close waits until none is left inside,
 *                     so the catalog is never closed under a reader.
 *
 * A reader blocks a FUSE worker thread for as long as it waits (libfuse's
 * high-level API answers a read synchronously), so at most w->slots
 * readers sleep at once (SNAP_WAITERS_MAX, or fewer when the front end
 * has few threads: snap_engine_set_wait_slots()); the next one gets
 * -EBUSY (not EAGAIN: on a blocking file, readers such as Python's io
 * take EAGAIN for "no data yet" and return nothing instead of an error).
 *
 * LOCKS: w->lock is a leaf.  Nothing else is taken while it is held, so
 * waiters_wake() may be called anywhere: under eng->lock or inside a
 * catalog transaction.  A reader reads the catalog without w->lock and
 * holds nothing at all while it sleeps except w->lock inside
 * g_cond_wait_until().  The generation read before each look at the
 * catalog makes a wake-up between that look and the sleep impossible to
 * miss.
 */
#include <errno.h>

#include "waiters.h"
#include "events.h"

/* How long a reader sleeps before asking its front end whether to stop. */
#define WAIT_SLICE_US (200 * G_TIME_SPAN_MILLISECOND)

struct waiters {
	GMutex lock;
	GCond cond;
	guint64 generation; /* bumped by every waiters_wake() */
	unsigned inside;    /* callers inside snap_snapshot_wait() */
	unsigned sleeping;  /* of those, the ones holding a sleeping slot */
	unsigned slots;	    /* how many sleeping slots there are */
	bool stopping;	    /* waiters_stop() was called */
};

struct waiters *waiters_new(void)
{
	struct waiters *w = g_new0(struct waiters, 1);

	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	w->slots = SNAP_WAITERS_MAX;
	return w;
}

void snap_engine_set_wait_slots(struct snap_engine *eng, unsigned slots)
{
	struct waiters *w = eng->waiters;

	g_mutex_lock(&w->lock);
	w->slots = MIN(slots, SNAP_WAITERS_MAX);
	g_mutex_unlock(&w->lock);
}

void waiters_free(struct waiters *w)
{
	if (!w)
		return;
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
	g_free(w);
}

void waiters_wake(struct snap_engine *eng)
{
	struct waiters *w = eng->waiters;

	g_mutex_lock(&w->lock);
	w->generation++;
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
}

void waiters_stop(struct snap_engine *eng)
{
	struct waiters *w = eng->waiters;

	if (!w)
		return;
	g_mutex_lock(&w->lock);
	w->stopping = true;
	g_cond_broadcast(&w->cond);
	/* readers see stopping within one catalog read and leave */
	while (w->inside > 0)
		g_cond_wait(&w->cond, &w->lock);
	g_mutex_unlock(&w->lock);
}

/* A state no backup job will leave by itself: the waiter's answer.
 * Damaged (verify found a chunk of the backup bad) is one: it stays
 * until a verify after the next backup heals it, if ever. */
static bool state_is_final(enum snap_state state)
{
	return state == SNAP_STATE_BACKED_UP ||
	       state == SNAP_STATE_BACKUP_FAILED ||
	       state == SNAP_STATE_DAMAGED;
}

/*
 * One look at the catalog.  Return: 1 final (*@state_out set); 0 not yet;
 * -ENOENT gone or never visible; -errno of the catalog.
 */
static int look(struct snap_engine *eng, uint64_t id, enum snap_state *state_out,
		struct catalog_snapshot *s)
{
	int rc = catalog_snapshot_get_by_id(eng->cat, (int64_t)id, s);

	if (rc < 0)
		return rc;
	if (s->state == SNAP_STATE_CREATING)
		return -ENOENT;
	if (!state_is_final(s->state))
		return 0;
	*state_out = s->state;
	return 1;
}

/* Take a sleeping slot (w->lock held).  Return: 0; -EBUSY all taken. */
static int slot_take(struct waiters *w, bool *have_slot)
{
	if (*have_slot)
		return 0;
	if (w->sleeping >= w->slots)
		return -EBUSY;
	w->sleeping++;
	*have_slot = true;
	return 0;
}

static void reject_busy(struct snap_engine *eng, const struct catalog_snapshot *s,
			unsigned slots)
{
	g_autofree char *target = g_strdup_printf("wait/%s/%s",
						  s->volume, s->name);

	if (slots == 0)
		event_reject(eng, "read", target, EBUSY,
			     "the mount runs one request thread (-s): a read that waits would stop it; read the state file instead");
	else
		event_reject(eng, "read", target, EBUSY,
			     "%u readers wait for backups already (one per two request threads, at most %d); read the state file instead, or retry later",
			     slots, SNAP_WAITERS_MAX);
}

int snap_snapshot_wait(struct snap_engine *eng, uint64_t id,
		       int (*stop)(void *arg), void *arg,
		       enum snap_state *state_out)
{
	struct waiters *w = eng->waiters;
	struct catalog_snapshot s;
	bool have_slot = false;
	unsigned slots;
	guint64 seen;
	gint64 until;
	int rc;

	g_mutex_lock(&w->lock);
	if (w->stopping) {
		g_mutex_unlock(&w->lock);
		return -ENOTCONN;
	}
	w->inside++;
	for (;;) {
		seen = w->generation;
		g_mutex_unlock(&w->lock);

		rc = look(eng, id, state_out, &s);
		if (rc == 0 && stop)
			rc = stop(arg);
		g_mutex_lock(&w->lock);
		if (rc != 0)
			break;
		if (w->stopping) {
			rc = -ENOTCONN;
			break;
		}
		rc = slot_take(w, &have_slot);
		if (rc < 0)
			break;
		until = g_get_monotonic_time() + WAIT_SLICE_US;
		while (w->generation == seen && !w->stopping &&
		       g_cond_wait_until(&w->cond, &w->lock, until))
			;
	}
	if (have_slot)
		w->sleeping--;
	slots = w->slots;
	g_mutex_unlock(&w->lock);

	/* still counted inside: close waits for this event too */
	if (rc == -EBUSY)
		reject_busy(eng, &s, slots);

	g_mutex_lock(&w->lock);
	w->inside--;
	if (w->stopping)
		g_cond_broadcast(&w->cond); /* waiters_stop() counts us out */
	g_mutex_unlock(&w->lock);
	return rc > 0 ? 0 : rc;
}
