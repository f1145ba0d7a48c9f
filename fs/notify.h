/*
 * notify.h - tell a service manager how the mount is doing.
 *
 * systemd's readiness protocol (sd_notify(3)): a Type=notify service
 * reports READY=1 once it serves and STOPPING=1 when it begins to stop.
 * Without $NOTIFY_SOCKET (not started by systemd as Type=notify, or
 * built without libsystemd) every call does nothing.  Thread-safe; never
 * blocks for long (one datagram on a local socket).
 */
#ifndef SNAPFS_NOTIFY_H
#define SNAPFS_NOTIFY_H

/**
 * notify_ready() - the mount at @mountpoint answers requests from now on
 *
 * Call it from the session's own loop (the FUSE init callback), never
 * after a stat() of the mount point from inside the daemon: before the
 * loop serves, that stat would wait for ourselves.  @mountpoint is
 * borrowed, for the status line of `systemctl status`.
 */
void notify_ready(const char *mountpoint);

/** notify_stopping() - the loop has ended: unmounting and closing now. */
void notify_stopping(void);

#endif
