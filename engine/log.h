/*
 * log.h - one logging call for the whole engine and front end.
 *
 * Messages read `module: what failed 'subject': reason`, lower case, no
 * full stop.  They go to SOURCE/snapfs.log and, up to a level, to stderr
 * (see snap_log_open()); when stderr is systemd's journal
 * ($JOURNAL_STREAM), each line there carries its "<N>" priority.  Levels
 * are syslog's.  Thread-safe.
 */
#ifndef SNAP_LOG_H
#define SNAP_LOG_H

#include <syslog.h>
#include <stdarg.h>

/**
 * snap_log_open() - log up to @max_level to @path (may be NULL: stderr
 * only); messages up to @stderr_level go to stderr as well (-1: none).
 */
int snap_log_open(const char *path, int max_level, int stderr_level);

/** snap_log_close() - stop logging to the file; stderr still works. */
void snap_log_close(void);

void snap_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void snap_vlog(int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#endif
