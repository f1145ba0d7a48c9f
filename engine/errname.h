/*
 * errname.h - errno values by name, for events and logs.
 */
#ifndef SNAP_ERRNAME_H
#define SNAP_ERRNAME_H

/** errno_name() - "ENOSPC" for ENOSPC or -ENOSPC; "EIO" for a value
 * without a name here.  Thread-safe; the string is static. */
const char *errno_name(int err);

#endif
