/*
 * recover.h - recovery at mount: finish or undo what a crash interrupted.
 *
 * Calling sequence: recover_all() once, after vms_start() and before
 * pool_start() (snap_engine_start()).
 */
#ifndef SNAP_RECOVER_H
#define SNAP_RECOVER_H

#include "context.h"

/** recover_all() - run every module's recovery in order (docs/design.md,
 * "Recovery"). Return: 0; -errno the catalog failed (logged). */
int recover_all(struct snap_engine *eng);

#endif
