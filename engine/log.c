/*
 * log.c - the engine's log: a file in the state directory plus stderr.
 *
 * One mutex guards the FILE pointer and the settings; each message is one
 * write so lines from different threads never interleave.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#include "log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;
static int log_max_level = LOG_INFO;
static int log_to_stderr = 1;

static const char *const level_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

int snap_log_open(const char *path, int max_level, int to_stderr)
{
	FILE *f = NULL;

	if (path) {
		f = fopen(path, "ae");
		if (!f)
			return -1;
		setvbuf(f, NULL, _IOLBF, 0);
	}
	pthread_mutex_lock(&log_lock);
	if (log_file)
		fclose(log_file);
	log_file = f;
	log_max_level = max_level;
	log_to_stderr = to_stderr;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void snap_log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_file)
		fclose(log_file);
	log_file = NULL;
	pthread_mutex_unlock(&log_lock);
}

void snap_vlog(int level, const char *fmt, va_list ap)
{
	char msg[2048], stamp[32];
	struct timespec ts;
	struct tm tm;

	if (level < 0 || level > LOG_DEBUG)
		level = LOG_ERR;
	if (level > log_max_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	pthread_mutex_lock(&log_lock);
	if (log_file)
		fprintf(log_file, "%s.%03ldZ %s: %s\n", stamp,
			ts.tv_nsec / 1000000, level_names[level], msg);
	if (log_to_stderr || !log_file)
		fprintf(stderr, "snapfs: %s: %s\n", level_names[level], msg);
	pthread_mutex_unlock(&log_lock);
}

void snap_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	snap_vlog(level, fmt, ap);
	va_end(ap);
}
