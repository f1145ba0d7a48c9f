/*
 * settings.h - the small settings files a user writes:
 * vms/<vm>/snapshot-options and MOUNT/limits (pure parsers in settings.c:
 * no engine, no catalog, no user database).
 */
#ifndef SNAP_SETTINGS_H
#define SNAP_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

/* What one write to snapshot-options says; an option not given keeps its
 * value (the caller's). */
struct snapshot_options {
	bool memory, quiesce;	      /* the values given */
	bool has_memory, has_quiesce; /* whether each was given */
};

/**
 * snapshot_options_parse() - parse one write(2) to vms/<vm>/snapshot-options
 *
 * One line, at most one trailing newline: words "memory=yes|no" and
 * "quiesce=yes|no", each optional and at most once, in any order,
 * separated by spaces or tabs (leading and trailing ASCII white space
 * ignored).  An empty line gives nothing.  On success *@out says what was
 * given; on failure *@out is untouched and *@why (may be NULL) points to a
 * static sentence saying what is wrong.  Pure, thread-safe.
 * Return: 0; -EINVAL NUL bytes, a second line, an unknown word or value,
 * an option given twice.
 */
int snapshot_options_parse(const char *buf, size_t len,
			   struct snapshot_options *out, const char **why);

/* limits_entry.max for "<user> default": the account's limit is dropped. */
#define LIMITS_DEFAULT (-1)

/* One "<user> <n>|default" or "global <n>" line of MOUNT/limits. */
struct limits_entry {
	char *user;  /* as written: a user name or a decimal uid; "global" */
	int64_t max; /* 0..INT32_MAX, or LIMITS_DEFAULT (never for global) */
	bool global; /* the "global <n>" line: the mount option, restated */
};

/**
 * limits_parse() - parse one write(2) to MOUNT/limits
 *
 * Lines "<user> <n>" or "<user> default", words separated by spaces or
 * tabs; '#' starts a comment that runs to the end of its line, and blank
 * lines are skipped, so what a read of the file shows can be written back
 * (an editor saving the file).  <n> is decimal, 0 to INT32_MAX.  "global
 * <n>" (the mount option max_snapshots, as a read shows it) is an entry
 * with @global set: the caller refuses it unless <n> is the option's value.
 * <user> is not looked up, not checked against max_snapshots and may come
 * twice (the caller does all three).  On success *@entries_out owns a
 * GArray of struct limits_entry in line order (possibly empty; free with
 * g_array_unref(), which frees the users); on failure it is NULL and
 * *@why (may be NULL) points to a static sentence.  Pure, thread-safe.
 * Return: 0; -EINVAL NUL bytes, a line of the wrong shape, "global
 * default", a limit that is not a whole number in range.
 */
int limits_parse(const char *buf, size_t len, GArray **entries_out,
		 const char **why);

#endif
