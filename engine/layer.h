/*
 * layer.h - layers: pruning primary storage after backups, and merges.
 *
 * Calling sequence: layer_queue_merge() whenever a layer stops being
 * referenced; a pool worker runs layer_merge_run(); layer_recover() runs
 * once at mount.
 */
#ifndef SNAP_LAYER_H
#define SNAP_LAYER_H

#include "context.h"
#include "running.h"

/** layer_prune_primary() - apply keep_primary to @volume_id (after a
 * backup completes): release layers of the oldest backed-up snapshots. */
int layer_prune_primary(struct snap_engine *eng, int64_t volume_id);
/** layer_queue_merge() - queue a merge job for @volume_id unless one is
 * queued (inside or outside a tx). */
int layer_queue_merge(struct snap_engine *eng, int64_t volume_id);
/** layer_merge_run() - fold the unreferenced layers of a volume (worker). */
int layer_merge_run(struct snap_engine *eng, struct running_job *rj);
/** layer_recover() - at mount: complete or redo each merge a crash
 * interrupted, and unlink the names of retired layers. */
int layer_recover(struct snap_engine *eng);

#endif
