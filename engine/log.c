/*
 * log.c - the engine's log: a file in the state directory plus stderr.
 *
 * One mutex guards the FILE pointer and the settings; each message is one
 * write so lines from different threads never interleave.
 *
 * Under systemd, stderr is a stream to the journal: systemd says so in
 * $JOURNAL_STREAM ("DEVICE:INODE" of that stream).  There each line starts
 * with its syslog priority as "<N>" (sd-daemon(3)), which journald strips
 * and records, so `journalctl -p err` finds the errors.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/stat.h>

#include "log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;
static int log_max_level = LOG_INFO;
static int log_stderr_level = LOG_DEBUG;
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;
static bool stderr_is_journal;

static const char *const level_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

int snap_log_open(const char *path, int max_level, int stderr_level)
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
	log_stderr_level = stderr_level;
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

/*
 * Only when stderr is the very stream systemd named: a stderr redirected
 * elsewhere (2>file) inherits $JOURNAL_STREAM but is not the journal.
 */
static void detect_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return;
	if (fstat(STDERR_FILENO, &st) < 0)
		return;
	stderr_is_journal = (unsigned long long)st.st_dev == dev &&
			    (unsigned long long)st.st_ino == ino;
}

/* @msg for the journal: every line prefixed with "<@level>" (a message
 * with a newline in it, qemu-img's stderr say, keeps its level). */
static void format_for_journal(char *out, size_t size, int level,
			       const char *msg)
{
	size_t len = (size_t)snprintf(out, size, "<%d>%s: ", level,
				      level_names[level]);

	for (const char *p = msg; *p && len + 8 < size; p++) {
		out[len++] = *p;
		if (*p == '\n' && p[1])
			len += (size_t)snprintf(out + len, size - len, "<%d>", level);
	}
	out[len++] = '\n';
	out[len] = '\0';
}

void snap_vlog(int level, const char *fmt, va_list ap)
{
	char msg[2048], stamp[32], line[2600];
	struct timespec ts;
	struct tm tm;

	if (level < 0 || level > LOG_DEBUG)
		level = LOG_ERR;
	if (level > log_max_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	pthread_once(&journal_once, detect_journal);
	if (stderr_is_journal)
		format_for_journal(line, sizeof(line), level, msg);
	else
		snprintf(line, sizeof(line), "snapfs: %s: %s\n",
			 level_names[level], msg);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	pthread_mutex_lock(&log_lock);
	if (log_file)
		fprintf(log_file, "%s.%03ldZ %s: %s\n", stamp,
			ts.tv_nsec / 1000000, level_names[level], msg);
	if (level <= log_stderr_level || !log_file)
		fputs(line, stderr);
	pthread_mutex_unlock(&log_lock);
}

void snap_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	snap_vlog(level, fmt, ap);
	va_end(ap);
}
