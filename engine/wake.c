/*
 * wake.c - wake the threads that schedule work (the job scheduler and the
 * policy thread): something they may act on changed.
 */
#include "wake.h"

void wake_schedulers(struct snap_engine *eng)
{
	g_mutex_lock(&eng->lock);
	g_cond_broadcast(&eng->schedule);
	g_mutex_unlock(&eng->lock);
}
