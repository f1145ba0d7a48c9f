/*
 * gone.h - tell the front end that a tree path is gone.
 *
 * The front end registers its hook with snap_engine_set_gone() before the
 * engine starts; the engine calls gone_path() after a change that removes
 * what a path named (the kernel may cache its entry).  The hook must not
 * call back into the engine.
 */
#ifndef SNAP_GONE_H
#define SNAP_GONE_H

#include "context.h"

/** gone_path() - the tree path (printf @fmt) is gone; no-op without a
 * hook. */
void gone_path(struct snap_engine *eng, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
