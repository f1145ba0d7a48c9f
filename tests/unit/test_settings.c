/*
 * test_settings.c - the parsers of vms/<vm>/snapshot-options
 * (snapshot_options_parse) and MOUNT/limits (limits_parse), both in
 * engine/settings.c.
 *
 * snapshot-options is one line of "memory=yes|no quiesce=yes|no", each
 * optional and given at most once.  limits is lines of "<user> <n>" or
 * "<user> default" (and "global <n>", as a read shows it), '#' starting a
 * comment; the user is looked up by the engine, not by the parser.
 */
#include <errno.h>
#include <stdlib.h>

#include "unit.h"
#include "settings.h"

/* ---- snapshot_options_parse ------------------------------------------- */

/* @s must parse; @want is "m?q?" with 'y', 'n' or '-' (not given). */
static void opts_good(const char *s, const char *want)
{
	struct snapshot_options o;
	const char *why = "untouched";
	int rc;

	memset(&o, 0xa5, sizeof(o));
	rc = snapshot_options_parse(s, strlen(s), &o, &why);
	if (rc != 0) {
		g_autofree char *esc = g_strescape(s, NULL);

		print_error("options \"%s\" = %d (%s)\n", esc, rc, why);
		fail();
	}
	assert_string_equal(why, "untouched");
	assert_int_equal(o.has_memory, want[0] != '-');
	assert_int_equal(o.has_quiesce, want[1] != '-');
	if (o.has_memory)
		assert_int_equal(o.memory, want[0] == 'y');
	else
		assert_false(o.memory);
	if (o.has_quiesce)
		assert_int_equal(o.quiesce, want[1] == 'y');
	else
		assert_false(o.quiesce);
}

/* @buf must be refused with -EINVAL and a reason, *out untouched;
 * returns the reason. */
static const char *opts_bad(const char *buf, size_t len)
{
	struct snapshot_options o, before;
	const char *why = NULL;
	int rc;

	memset(&o, 0x5a, sizeof(o));
	before = o;
	rc = snapshot_options_parse(buf, len, &o, &why);
	if (rc != -EINVAL) {
		g_autofree char *head = g_strndup(buf, len > 200 ? 200 : len);
		g_autofree char *esc = g_strescape(head, NULL);

		print_error("options \"%s\" (%zu bytes) = %d, expected "
			    "-EINVAL\n", esc, len, rc);
		fail();
	}
	assert_non_null(why);
	assert_true(strlen(why) > 0);
	assert_memory_equal(&o, &before, sizeof(o));
	return why;
}

static const char *opts_bad_str(const char *s)
{
	return opts_bad(s, strlen(s));
}

static void test_options_valid(void **state)
{
	opts_good("memory=yes quiesce=no\n", "yn");
	opts_good("memory=no quiesce=yes", "ny");
	opts_good("quiesce=yes memory=yes\n", "yy");
	opts_good("memory=yes\n", "y-");
	opts_good("quiesce=no", "-n");
	/* blanks anywhere, a CRLF end: as before the parser was split out */
	opts_good("  memory=no\t\tquiesce=no  \n", "nn");
	opts_good("memory=yes quiesce=yes\r\n", "yy");
	/* nothing given: both keep their values */
	opts_good("", "--");
	opts_good("\n", "--");
	opts_good(" \t \n", "--");
}

static void test_options_bad_words(void **state)
{
	static const char *const bad[] = {
		"memory=maybe", "memory=", "memory", "memory=YES", "Memory=yes",
		"foo=yes", "memory=yes quiesce", "memory=yes quiesce=no extra",
		"memory = yes", "memory=yes;rm", "memory=../../x", "-x",
		"memory=yes,quiesce=no", "\xff", "memory=y\xc3\xa9s",
		"memory=yes\vquiesce=no",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		opts_bad_str(bad[i]);
}

static void test_options_twice(void **state)
{
	const char *why;

	/* the same key twice is refused, same value or not */
	why = opts_bad_str("memory=yes memory=no\n");
	assert_non_null(strstr(why, "memory"));
	assert_non_null(strstr(why, "twice"));
	opts_bad_str("memory=yes memory=yes");
	opts_bad_str("memory=no quiesce=no memory=no");
	why = opts_bad_str("quiesce=yes quiesce=yes\n");
	assert_non_null(strstr(why, "quiesce"));
	opts_bad_str("quiesce=no memory=yes quiesce=yes");
	/* a bad value is reported as such, also for a second key */
	why = opts_bad_str("memory=yes memory=maybe");
	assert_non_null(why);
}

static void test_options_one_line(void **state)
{
	const char *why;

	why = opts_bad_str("memory=yes\nquiesce=yes\n");
	assert_non_null(strstr(why, "one line"));
	opts_bad_str("memory=yes\nquiesce=yes");
	opts_bad_str("memory=yes\n\n");
	opts_bad_str("\nmemory=yes");
	opts_bad_str("\n\n");
	opts_bad_str("memory=yes\r\nquiesce=no\r\n");
}

static void test_options_nul(void **state)
{
	static const char a[] = "memory=yes\0";
	static const char b[] = "memory=yes\0 quiesce=no";
	static const char c[] = "\0";

	opts_bad(a, sizeof(a) - 1);
	opts_bad(b, sizeof(b) - 1);
	opts_bad(c, sizeof(c) - 1);
}

static void test_options_not_nul_terminated(void **state)
{
	static const char buf[] = { 'm', 'e', 'm', 'o', 'r', 'y', '=', 'n',
				    'o', 'p', 'e' };
	struct snapshot_options o;

	assert_errno(snapshot_options_parse(buf, 9, &o, NULL), 0);
	assert_true(o.has_memory && !o.memory);
	assert_errno(snapshot_options_parse(buf, sizeof(buf), &o, NULL),
		     -EINVAL);
	/* @why may be NULL */
	assert_errno(snapshot_options_parse("x", 1, &o, NULL), -EINVAL);
}

static void test_options_long(void **state)
{
	g_autofree char *y = g_strnfill(1 << 16, 'y');
	g_autofree char *spaces = g_strnfill(1 << 16, ' ');
	g_autofree char *long_value = g_strdup_printf("quiesce=%s\n", y);
	g_autofree char *spaced = g_strdup_printf("memory=no%squiesce=yes\n",
						  spaces);

	opts_bad_str(long_value);
	opts_good(spaced, "ny");
}

/* ---- limits_parse ----------------------------------------------------- */

struct limit_want {
	const char *user;
	int64_t max;
	bool global;
};

/* @s must parse to the @n entries of @want, in order. */
static void limits_good(const char *s, const struct limit_want *want, size_t n)
{
	g_autoptr(GArray) entries = NULL;
	const char *why = "untouched";
	int rc = limits_parse(s, strlen(s), &entries, &why);

	if (rc != 0) {
		g_autofree char *esc = g_strescape(s, NULL);

		print_error("limits \"%s\" = %d (%s)\n", esc, rc, why);
		fail();
	}
	assert_non_null(entries);
	assert_string_equal(why, "untouched");
	assert_int_equal(entries->len, n);
	for (size_t i = 0; i < n; i++) {
		struct limits_entry *e = &g_array_index(entries, struct limits_entry, i);

		assert_string_equal(e->user, want[i].user);
		assert_int_equal(e->max, want[i].max);
		assert_int_equal(e->global, want[i].global);
	}
}

static const char *limits_bad(const char *buf, size_t len)
{
	GArray *entries = (GArray *)&entries; /* must become NULL */
	const char *why = NULL;
	int rc = limits_parse(buf, len, &entries, &why);

	if (rc != -EINVAL) {
		g_autofree char *head = g_strndup(buf, len > 200 ? 200 : len);
		g_autofree char *esc = g_strescape(head, NULL);

		print_error("limits \"%s\" (%zu bytes) = %d, expected "
			    "-EINVAL\n", esc, len, rc);
		fail();
	}
	assert_null(entries);
	assert_non_null(why);
	assert_true(strlen(why) > 0);
	assert_true(g_str_has_prefix(why, "limits: "));
	return why;
}

static const char *limits_bad_str(const char *s)
{
	return limits_bad(s, strlen(s));
}

static void test_limits_valid(void **state)
{
	static const struct limit_want bob3[] = { { "bob", 3 } };
	static const struct limit_want two[] = { { "alice", 0 },
						 { "1001", LIMITS_DEFAULT } };
	static const struct limit_want big[] = { { "u", G_MAXINT32 } };
	static const struct limit_want dup[] = { { "bob", 1 }, { "bob", 2 } };
	static const struct limit_want odd[] = { { "a\r", 5 } };

	limits_good("bob 3\n", bob3, 1);
	limits_good("bob 3", bob3, 1);
	limits_good("  bob\t 3 \r\n", bob3, 1);
	limits_good("bob 003\n", bob3, 1);
	limits_good("alice 0\n1001 default\n", two, 2);
	limits_good("# a comment\n\n  # indented comment\nalice 0\n\t\n"
		    "1001\tdefault", two, 2);
	limits_good("u 2147483647\n", big, 1);
	/* the last line for an account wins (the engine sets them in order) */
	limits_good("bob 1\nbob 2\n", dup, 2);
	/* only spaces and tabs separate words; other bytes are the user's */
	limits_good("a\r 5\n", odd, 1);
	/* nothing to set */
	limits_good("", NULL, 0);
	limits_good("\n\n# nothing\n", NULL, 0);
	/* a comment may end any line; '#' is never part of a word */
	limits_good("bob 3 # uid 1001, stores 2\n", bob3, 1);
	limits_good("bob 3#x\n", bob3, 1);
	limits_good("bob 3 # a # b\n# alice 1\n", bob3, 1);
}

/* What a read of MOUNT/limits shows parses back (an editor saving it). */
static void test_limits_read_back(void **state)
{
	static const struct limit_want shown[] = {
		{ "global", 10, true }, { "bob", 3 }, { "alice", 0 },
	};
	static const struct limit_want none[] = { { "global", 0, true } };

	limits_good("# snapshots each account may store (volume and VM snapshots); root is not limited\n"
		    "# write one line per account: \"<user> <n>\" sets a limit no higher than the\n"
		    "# global one, \"<user> default\" drops it\n"
		    "global 10 # the mount option max_snapshots\n"
		    "bob 3 # uid 1001, stores 2\n"
		    "alice 0 # uid 1002, stores 0\n", shown, 3);
	limits_good("global 0 # no limit: -o max_snapshots=N sets one\n", none, 1);
}

static void test_limits_shape(void **state)
{
	static const char *const bad[] = {
		"bob\n", "bob", "bob 3 4\n", "bob # 3\n", "#bob 3\nbob\n",
		"alice 1\nbob\n", "bob 3\nbob 4 5\n", "default\n",
	};
	const char *why;

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		limits_bad_str(bad[i]);
	why = limits_bad_str("bob\n");
	assert_non_null(strstr(why, "<user> <n>"));
}

static void test_limits_numbers(void **state)
{
	static const char *const bad[] = {
		"bob many\n", "bob -1\n", "bob +1\n", "bob 1.5\n", "bob 0x10\n",
		"bob 2147483648\n", "bob 99999999999999999999999\n", "bob 1k\n",
		"bob Default\n", "bob 3\vx\n", "bob \xef\xbc\x93\n",
	};
	const char *why;

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		limits_bad_str(bad[i]);
	why = limits_bad_str("bob many\n");
	assert_non_null(strstr(why, "whole number"));
}

static void test_limits_global(void **state)
{
	static const struct limit_want g10[] = { { "global", 10, true } };
	const char *why = limits_bad_str("global default\n");

	/* the caller compares it with the mount option */
	limits_good("global 10\n", g10, 1);
	assert_non_null(strstr(why, "max_snapshots"));
	limits_bad_str("bob 1\nglobal default\n");
	limits_bad_str("global many\n");
	/* only the whole word */
	{
		static const struct limit_want g[] = { { "globalx", 1 } };

		limits_good("globalx 1\n", g, 1);
	}
}

static void test_limits_nul(void **state)
{
	static const char a[] = "bob 3\0";
	static const char b[] = "bob 3\n\0alice 1\n";
	static const char c[] = "# \0 in a comment\n";

	assert_non_null(strstr(limits_bad(a, sizeof(a) - 1), "NUL"));
	limits_bad(b, sizeof(b) - 1);
	limits_bad(c, sizeof(c) - 1);
}

static void test_limits_why_null(void **state)
{
	GArray *entries = NULL;

	assert_errno(limits_parse("x", 1, &entries, NULL), -EINVAL);
	assert_null(entries);
	assert_errno(limits_parse("x 1", 3, &entries, NULL), 0);
	assert_non_null(entries);
	g_array_unref(entries);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_valid),
		cmocka_unit_test(test_options_bad_words),
		cmocka_unit_test(test_options_twice),
		cmocka_unit_test(test_options_one_line),
		cmocka_unit_test(test_options_nul),
		cmocka_unit_test(test_options_not_nul_terminated),
		cmocka_unit_test(test_options_long),
		cmocka_unit_test(test_limits_valid),
		cmocka_unit_test(test_limits_read_back),
		cmocka_unit_test(test_limits_shape),
		cmocka_unit_test(test_limits_numbers),
		cmocka_unit_test(test_limits_global),
		cmocka_unit_test(test_limits_nul),
		cmocka_unit_test(test_limits_why_null),
	};

	return cmocka_run_group_tests_name("settings", tests, NULL, NULL);
}
