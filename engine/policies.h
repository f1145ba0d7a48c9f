/*
 * policies.h - recurring snapshot policies: the thread that takes and prunes.
 *
 * Calling sequence: policies_init() at open, policies_start() once the pool
 * runs, policies_stop() then policies_clear() at close.
 */
#ifndef SNAP_POLICIES_H
#define SNAP_POLICIES_H

#include "context.h"

/** policies_owner() - who wrote (or created) policies/@name; 0 none. */
uid_t policies_owner(struct snap_engine *eng, const char *name);
/** policies_init() - the default time zone and the drafts table. */
void policies_init(struct snap_engine *eng);
void policies_clear(struct snap_engine *eng);
/** policies_start() - the thread that runs due policies; _stop joins it. */
int policies_start(struct snap_engine *eng);
void policies_stop(struct snap_engine *eng);

#endif
