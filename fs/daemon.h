/*
 * daemon.h - go to the background, and exit with the daemon's verdict.
 *
 * libfuse's fuse_daemonize() lets the command exit 0 as soon as it has
 * forked: whatever failed after that (libvirt not answering, recovery)
 * reached neither the terminal nor the exit status, so mount(8) and an
 * fstab mount at boot reported success.  Here the parent stays until the
 * daemon has started and exits with its verdict:
 *
 *   0     the daemon called daemon_ready();
 *   N     the daemon exited with status N (1 if 0) before it was ready,
 *         having logged why on the stderr both still share;
 *   1     the daemon died of a signal before it was ready: the parent says
 *         so on stderr and takes down what the daemon left (the mount).
 *
 * libfuse 3.17+ does the same with fuse_daemonize_early_*(); Debian 12 has
 * 3.14.
 */
#ifndef SNAPFS_DAEMON_H
#define SNAPFS_DAEMON_H

#include <stdbool.h>

/**
 * daemon_start() - fork; the parent waits for the verdict and exits with it
 * @foreground: do not fork (-f): only change directory to "/"
 * @died:       called in the parent with @arg when the daemon died of a
 *              signal before it was ready (it could not clean up): take
 *              down what it set up before the fork (the mount)
 *
 * Returns in the daemon, with "/" as its directory, a session of its own
 * and stdin on /dev/null; stdout and stderr stay the caller's until
 * daemon_ready(), so what it logs while it starts reaches the terminal.
 * Call before any thread starts: a fork keeps only the calling thread.
 * Return: 0; -errno (logged) when the fork failed: nothing was forked.
 */
int daemon_start(bool foreground, void (*died)(void *arg), void *arg);

/**
 * daemon_ready() - the daemon serves: stdout and stderr go to /dev/null,
 * then the parent exits 0.  Does nothing in the foreground or a second
 * time.
 */
void daemon_ready(void);

#endif
