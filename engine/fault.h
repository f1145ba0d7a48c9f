/*
 * fault.h - failure points for fault injection (see fault.c).
 */
#ifndef SNAP_FAULT_H
#define SNAP_FAULT_H

#include <stdbool.h>

/**
 * fault() - a failure point: true (and errno = @err) when it is the Nth
 * of SNAPFS_FAULT_AT=N; use as `if (fault("x", EIO) || call() < 0)`.
 */
bool fault(const char *point, int err);

#endif
