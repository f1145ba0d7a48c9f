/*
 * watch.h - the inotify watch of PRIMARY: volume files removed by hand.
 *
 * Calling sequence: watch_start() once the engine runs (a front end set
 * its gone hook); watch_stop() at close joins the thread.
 */
#ifndef SNAP_WATCH_H
#define SNAP_WATCH_H

#include "context.h"

/** watch_start() - report volume files removed from PRIMARY by hand
 * through the gone hook (best effort: 0 even when inotify fails). */
int watch_start(struct snap_engine *eng);
void watch_stop(struct snap_engine *eng);

#endif
