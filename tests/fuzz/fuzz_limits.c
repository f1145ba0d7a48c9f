/*
 * fuzz_limits.c - engine/settings.c: limits_parse(), the bytes of one
 * write(2) to MOUNT/limits.
 *
 * Invariants (engine/settings.h):
 *  - the result is 0 or -EINVAL; a refusal always says why (a sentence
 *    starting "limits: ") and gives no array;
 *  - on success there are no more entries than lines; each user is a
 *    non-empty word without blanks, newlines, '#' or NUL bytes; "global"
 *    exactly when the entry is global, and then never LIMITS_DEFAULT;
 *    each limit is LIMITS_DEFAULT or 0..INT32_MAX;
 *  - the canonical text (one "<user> <n>|default" line per entry) parses
 *    to the same entries, and so does it with a comment on every line;
 *  - comment and blank lines added at the end change nothing, and a line
 *    of the wrong shape added at the end is refused.
 */
#include <errno.h>
#include <inttypes.h>

#include "fuzz.h"
#include "settings.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

static bool same(GArray *a, GArray *b)
{
	if (a->len != b->len)
		return false;
	for (guint i = 0; i < a->len; i++) {
		struct limits_entry *x =
			&g_array_index(a, struct limits_entry, i);
		struct limits_entry *y =
			&g_array_index(b, struct limits_entry, i);

		if (x->max != y->max || x->global != y->global ||
		    strcmp(x->user, y->user))
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GArray) entries = NULL, again = NULL, more = NULL;
	g_autoptr(GArray) commented = NULL;
	g_autoptr(GString) canon = g_string_new(NULL);
	g_autoptr(GString) canon_c = g_string_new(NULL);
	g_autoptr(GString) text = NULL;
	const char *why = NULL;
	size_t lines = 1;
	int rc;

	entries = (GArray *)&why; /* must become NULL or an array */
	rc = limits_parse((const char *)data, size, &entries, &why);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	if (rc < 0) {
		FUZZ_CHECK(why && g_str_has_prefix(why, "limits: ") &&
				   why[strlen("limits: ")],
			   "refused without a reason");
		FUZZ_CHECK(entries == NULL, "a refusal gave an array");
		return 0;
	}
	FUZZ_CHECK(entries != NULL, "no array");
	FUZZ_CHECK(!memchr(data, '\0', size), "a NUL byte accepted");
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	FUZZ_CHECK(entries->len <= lines, "%u entries from %zu lines",
		   entries->len, lines);

	for (guint i = 0; i < entries->len; i++) {
		struct limits_entry *e =
			&g_array_index(entries, struct limits_entry, i);

		FUZZ_CHECK(e->user && e->user[0], "entry %u: empty user", i);
		FUZZ_CHECK(!strpbrk(e->user, " \t\n#"), "user '%s' has blanks or '#'",
			   e->user);
		FUZZ_CHECK(!g_ascii_isspace(e->user[0]), "user '%s' starts badly",
			   e->user);
		FUZZ_CHECK(e->global == !strcmp(e->user, "global"),
			   "user '%s' global %d", e->user, e->global);
		FUZZ_CHECK(!e->global || e->max != LIMITS_DEFAULT, "global default");
		FUZZ_CHECK(e->max == LIMITS_DEFAULT ||
				   (e->max >= 0 && e->max <= INT32_MAX),
			   "max %" PRId64, e->max);
		if (e->max == LIMITS_DEFAULT)
			g_string_append_printf(canon, "%s default\n", e->user);
		else
			g_string_append_printf(canon, "%s %" PRId64 "\n",
					       e->user, e->max);
	}
	why = NULL;
	rc = limits_parse(canon->str, canon->len, &again, &why);
	FUZZ_CHECK(rc == 0 && same(entries, again),
		   "the canonical text does not parse back: %d (%s)", rc,
		   why ? why : "-");
	/* as a read shows it: a comment on every line */
	for (size_t i = 0; i < canon->len; i++) {
		if (canon->str[i] == '\n')
			g_string_append(canon_c, " # read back");
		g_string_append_c(canon_c, canon->str[i]);
	}
	why = NULL;
	rc = limits_parse(canon_c->str, canon_c->len, &commented, &why);
	FUZZ_CHECK(rc == 0 && same(entries, commented),
		   "the commented canonical text does not parse back: %d (%s)",
		   rc, why ? why : "-");

	/* comments and blank lines at the end change nothing */
	text = g_string_new_len((const char *)data, size);
	g_string_append(text, "\n# fuzz\n \t\n");
	rc = limits_parse(text->str, text->len, &more, NULL);
	FUZZ_CHECK(rc == 0 && same(entries, more),
		   "a comment at the end changed the result: %d", rc);
	/* and a line of the wrong shape is refused wherever it is */
	g_string_append(text, "fuzz 1 2\n");
	g_clear_pointer(&more, g_array_unref);
	why = NULL;
	rc = limits_parse(text->str, text->len, &more, &why);
	FUZZ_CHECK(rc == -EINVAL && why && *why && !more,
		   "a three-word line accepted: %d", rc);
	return 0;
}
