/*
 * settings.c - parsers of the small settings files a user writes:
 * vms/<vm>/snapshot-options and MOUNT/limits.  Pure functions, no state,
 * fuzzed by tests/fuzz; the engine (vms.c, accounts.c) applies what they
 * return.
 */
#include <errno.h>
#include <string.h>

#include "settings.h"
#include "control.h"

/* ---- vms/<vm>/snapshot-options ------------------------------------------ */

int snapshot_options_parse(const char *buf, size_t len,
			   struct snapshot_options *out, const char **why)
{
	struct snapshot_options opts = {0};
	g_autofree char *line = NULL;
	g_auto(GStrv) words = NULL;
	const char *dummy;
	char **w;

	if (!why)
		why = &dummy;
	if (one_line(buf, &len, why, "NUL bytes",
		     "one line: memory=yes|no quiesce=yes|no") < 0)
		return -EINVAL;
	line = g_strndup(buf, len);
	g_strdelimit(line, "\t", ' ');
	words = g_strsplit(g_strstrip(line), " ", -1);
	for (w = words; *w; w++) {
		bool *value, *given;
		const char *val;

		if (!**w)
			continue;
		if (g_str_has_prefix(*w, "memory=")) {
			value = &opts.memory;
			given = &opts.has_memory;
			val = *w + 7;
		} else if (g_str_has_prefix(*w, "quiesce=")) {
			value = &opts.quiesce;
			given = &opts.has_quiesce;
			val = *w + 8;
		} else {
			*why = "options are memory=yes|no and quiesce=yes|no";
			return -EINVAL;
		}
		if (*given) {
			*why = value == &opts.memory ? "memory= given twice"
						     : "quiesce= given twice";
			return -EINVAL;
		}
		if (!strcmp(val, "yes"))
			*value = true;
		else if (!strcmp(val, "no"))
			*value = false;
		else {
			*why = "option values are yes or no";
			return -EINVAL;
		}
		*given = true;
	}
	*out = opts;
	return 0;
}

/* ---- MOUNT/limits ----------------------------------------------------- */

static void limits_entry_clear(void *p)
{
	struct limits_entry *e = p;

	g_free(e->user);
}

/* Parse one stripped line without its comment: "<user> <n>|default". */
static int limits_line(char *line, struct limits_entry *e, const char **why)
{
	g_auto(GStrv) w = g_strsplit_set(line, " \t", -1);
	char *words[2];
	guint64 n;
	int k = 0, i;

	for (i = 0; w[i]; i++) {
		if (!w[i][0])
			continue;
		if (k == 2) {
			*why = "limits: one line is \"<user> <n>\" or \"<user> "
			       "default\"";
			return -EINVAL;
		}
		words[k++] = w[i];
	}
	if (k != 2) {
		*why = "limits: one line is \"<user> <n>\" or \"<user> "
		       "default\"";
		return -EINVAL;
	}
	e->global = !strcmp(words[0], "global");
	if (e->global && !strcmp(words[1], "default")) {
		*why = "limits: the global limit is the mount option "
		       "max_snapshots; it has no default to go back to";
		return -EINVAL;
	}
	if (!strcmp(words[1], "default")) {
		e->max = LIMITS_DEFAULT;
	} else if (g_ascii_string_to_unsigned(words[1], 10, 0, G_MAXINT32, &n,
					      NULL)) {
		e->max = (int64_t)n;
	} else {
		*why = "limits: the limit is a whole number or \"default\"";
		return -EINVAL;
	}
	e->user = g_strdup(words[0]);
	return 0;
}

int limits_parse(const char *buf, size_t len, GArray **entries_out,
		 const char **why)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(GArray) entries = NULL;
	const char *dummy;
	int rc, i;

	if (!why)
		why = &dummy;
	*entries_out = NULL;
	if (memchr(buf, '\0', len)) {
		*why = "limits: NUL byte";
		return -EINVAL;
	}
	entries = g_array_new(FALSE, TRUE, sizeof(struct limits_entry));
	g_array_set_clear_func(entries, limits_entry_clear);
	text = g_strndup(buf, len);
	lines = g_strsplit(text, "\n", -1);
	for (i = 0; lines[i]; i++) {
		char *line = lines[i];
		char *hash = strchr(line, '#');
		struct limits_entry e = {0};

		if (hash)
			*hash = '\0'; /* a comment, to the end of the line */
		line = g_strstrip(line);
		if (!line[0])
			continue;
		rc = limits_line(line, &e, why);
		if (rc < 0)
			return rc;
		g_array_append_val(entries, e);
	}
	*entries_out = g_steal_pointer(&entries);
	return 0;
}
