/*
 * test_policy.c - recurring snapshot policies (engine/policy.c): the
 * parser and its reasons, the normalized form, next-run arithmetic across
 * time zones and DST, slot names.
 *
 * Instants are written as UTC dates (utc()); the expected slots around DST
 * changes are spelled out by hand for Europe/Paris and America/New_York,
 * and checked for more zones against a reference that walks the clock
 * minute by minute through GDateTime (an implementation that shares
 * nothing with policy.c but GLib's zone files).
 */
#include <errno.h>
#include <stdlib.h>

#include "unit.h"
#include "snap.h"
#include "policy.h"

#define KEEP_WHY "keep must be a whole number from 1 to 1000000"
#define MDAY_WHY "monthly days are 1-28: not every month has a 29th-31st"

/* Seconds since the epoch of @y-@mo-@d @h:@mi:00 UTC. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
	g_autoptr(GDateTime) dt = g_date_time_new_utc(y, mo, d, h, mi, 0);

	assert_non_null(dt);
	return g_date_time_to_unix(dt);
}

/* "2026-03-29T01:00Z" for error messages (g_free). */
static char *utc_text(int64_t t)
{
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);

	return dt ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ")
		  : g_strdup_printf("%" G_GINT64_FORMAT, t);
}

/* Parse the C string @s with default zone Etc/UTC; must succeed. */
static struct policy_spec parse_ok(const char *s)
{
	struct policy_spec p;
	const char *why = NULL;
	int rc = policy_parse(s, strlen(s), "Etc/UTC", &p, &why);

	if (rc != 0) {
		g_autofree char *esc = g_strescape(s, NULL);

		print_error("policy \"%s\" = %d (%s)\n", esc, rc,
			    why ? why : "no reason");
		fail();
	}
	return p;
}

static void assert_spec_equal(const struct policy_spec *a,
			      const struct policy_spec *b)
{
	assert_int_equal(a->kind, b->kind);
	assert_string_equal(a->target, b->target);
	assert_int_equal(a->interval, b->interval);
	assert_int_equal(a->minute, b->minute);
	assert_int_equal(a->hour, b->hour);
	assert_int_equal(a->weekday, b->weekday);
	assert_int_equal(a->mday, b->mday);
	assert_int_equal(a->keep, b->keep);
	assert_string_equal(a->tz, b->tz);
}

/* @buf (@len bytes) must be rejected with -EINVAL and reason @want. */
static void expect_bad(const char *buf, size_t len, const char *want)
{
	struct policy_spec p, before;
	const char *why = NULL;
	int rc;

	memset(&before, 0x5a, sizeof(before));
	p = before;
	rc = policy_parse(buf, len, "Etc/UTC", &p, &why);
	if (rc != -EINVAL || !why || strcmp(why, want)) {
		g_autofree char *head = g_strndup(buf, len > 200 ? 200 : len);
		g_autofree char *esc = g_strescape(head, NULL);

		print_error("policy \"%s\" (%zu bytes) = %d, \"%s\"; expected "
			    "-EINVAL, \"%s\"\n",
			    esc, len, rc, why ? why : "(null)", want);
		fail();
	}
	/* a failed parse leaves *out alone */
	assert_memory_equal(&p, &before, sizeof(p));
}

static void expect_bad_str(const char *s, const char *want)
{
	expect_bad(s, strlen(s), want);
}

/* ---- accepted forms --------------------------------------------------- */

static const struct {
	const char *in;
	const char *norm;
} forms[] = {
	{"target=volume:web schedule=daily@02:00 keep=7 tz=Europe/Paris",
	 "target=volume:web schedule=daily@02:00 keep=7 tz=Europe/Paris"},
	{"keep=7 tz=Europe/Paris schedule=DAILY@2:00 target=volume:web",
	 "target=volume:web schedule=daily@02:00 keep=7 tz=Europe/Paris"},
	{"target=vm:db1 schedule=hourly keep=24",
	 "target=vm:db1 schedule=hourly@00 keep=24 tz=Etc/UTC"},
	{"target=vm:db1 schedule=hourly@5 keep=24",
	 "target=vm:db1 schedule=hourly@05 keep=24 tz=Etc/UTC"},
	{"target=vm:db1 schedule=hourly@:5 keep=24",
	 "target=vm:db1 schedule=hourly@05 keep=24 tz=Etc/UTC"},
	{"target=vm:db1 schedule=hourly@:05 keep=24",
	 "target=vm:db1 schedule=hourly@05 keep=24 tz=Etc/UTC"},
	{"target=vm:db1 schedule=HOURLY@59 keep=24",
	 "target=vm:db1 schedule=hourly@59 keep=24 tz=Etc/UTC"},
	{"target=vm:db1 schedule=Hourly@0 keep=1",
	 "target=vm:db1 schedule=hourly@00 keep=1 tz=Etc/UTC"},
	{"target=volume:v schedule=daily keep=1",
	 "target=volume:v schedule=daily@00:00 keep=1 tz=Etc/UTC"},
	{"target=volume:v schedule=daily@23:59 keep=1",
	 "target=volume:v schedule=daily@23:59 keep=1 tz=Etc/UTC"},
	{"target=volume:v schedule=daily@0:00 keep=1",
	 "target=volume:v schedule=daily@00:00 keep=1 tz=Etc/UTC"},
	{"target=volume:v schedule=weekly keep=4",
	 "target=volume:v schedule=weekly@mon-00:00 keep=4 tz=Etc/UTC"},
	{"target=volume:v schedule=weekly@SUN keep=4",
	 "target=volume:v schedule=weekly@sun-00:00 keep=4 tz=Etc/UTC"},
	{"target=volume:v schedule=Weekly@Sun-3:30 keep=4",
	 "target=volume:v schedule=weekly@sun-03:30 keep=4 tz=Etc/UTC"},
	{"target=volume:v schedule=weekly@tue-23:59 keep=4",
	 "target=volume:v schedule=weekly@tue-23:59 keep=4 tz=Etc/UTC"},
	{"target=volume:v schedule=weekly@wEd keep=4",
	 "target=volume:v schedule=weekly@wed-00:00 keep=4 tz=Etc/UTC"},
	{"target=volume:v schedule=weekly@thu-12:00 keep=4",
	 "target=volume:v schedule=weekly@thu-12:00 keep=4 tz=Etc/UTC"},
	{"target=volume:v schedule=weekly@fri keep=4",
	 "target=volume:v schedule=weekly@fri-00:00 keep=4 tz=Etc/UTC"},
	{"target=volume:v schedule=weekly@sat-06:07 keep=4",
	 "target=volume:v schedule=weekly@sat-06:07 keep=4 tz=Etc/UTC"},
	{"target=volume:v schedule=monthly keep=12",
	 "target=volume:v schedule=monthly@1-00:00 keep=12 tz=Etc/UTC"},
	{"target=volume:v schedule=monthly@28 keep=12",
	 "target=volume:v schedule=monthly@28-00:00 keep=12 tz=Etc/UTC"},
	{"target=volume:v schedule=MONTHLY@07-23:05 keep=12",
	 "target=volume:v schedule=monthly@7-23:05 keep=12 tz=Etc/UTC"},
	{"target=volume:v schedule=monthly@15-8:00 keep=12 tz=UTC",
	 "target=volume:v schedule=monthly@15-08:00 keep=12 tz=UTC"},
	{"target=volume:v schedule=daily keep=1000000",
	 "target=volume:v schedule=daily@00:00 keep=1000000 tz=Etc/UTC"},
	{"target=volume:v schedule=daily keep=007",
	 "target=volume:v schedule=daily@00:00 keep=7 tz=Etc/UTC"},
	{"\t target=volume:v\t\tschedule=daily   keep=3 \t\n",
	 "target=volume:v schedule=daily@00:00 keep=3 tz=Etc/UTC"},
	{"target=volume:v schedule=daily keep=3 tz=America/New_York",
	 "target=volume:v schedule=daily@00:00 keep=3 tz=America/New_York"},
	{"target=volume:v schedule=daily keep=3 tz=Etc/GMT+5",
	 "target=volume:v schedule=daily@00:00 keep=3 tz=Etc/GMT+5"},
	{"target=volume:v schedule=daily keep=3 tz=Asia/Kolkata",
	 "target=volume:v schedule=daily@00:00 keep=3 tz=Asia/Kolkata"},
	{"target=volume:v schedule=daily keep=3 tz=posix/Europe/Paris",
	 "target=volume:v schedule=daily@00:00 keep=3 tz=posix/Europe/Paris"},
	{"target=volume:v schedule=daily keep=3 tz=America/Port-au-Prince",
	 "target=volume:v schedule=daily@00:00 keep=3 "
	 "tz=America/Port-au-Prince"},
	{"target=vm:a.b_c-1 schedule=daily keep=3",
	 "target=vm:a.b_c-1 schedule=daily@00:00 keep=3 tz=Etc/UTC"},
};

static void test_parse_forms(void **state)
{
	for (size_t i = 0; i < G_N_ELEMENTS(forms); i++) {
		struct policy_spec p = parse_ok(forms[i].in);
		struct policy_spec again;
		g_autofree char *text = policy_format(&p);

		if (strcmp(text, forms[i].norm)) {
			print_error("\"%s\" formats as \"%s\", expected "
				    "\"%s\"\n",
				    forms[i].in, text, forms[i].norm);
			fail();
		}
		/* parse -> format -> parse gives the same spec */
		again = parse_ok(text);
		assert_spec_equal(&p, &again);
		assert_memory_equal(&p, &again, sizeof(p));
	}
}

static void test_parse_fields(void **state)
{
	struct policy_spec p;

	p = parse_ok("target=volume:web schedule=daily@02:00 keep=7 "
		     "tz=Europe/Paris");
	assert_int_equal(p.kind, POLICY_TARGET_VOLUME);
	assert_string_equal(p.target, "web");
	assert_int_equal(p.interval, POLICY_DAILY);
	assert_int_equal(p.hour, 2);
	assert_int_equal(p.minute, 0);
	assert_int_equal(p.weekday, 0);
	assert_int_equal(p.mday, 0);
	assert_int_equal(p.keep, 7);
	assert_string_equal(p.tz, "Europe/Paris");

	p = parse_ok("target=vm:db schedule=hourly@:17 keep=48");
	assert_int_equal(p.kind, POLICY_TARGET_VM);
	assert_string_equal(p.target, "db");
	assert_int_equal(p.interval, POLICY_HOURLY);
	assert_int_equal(p.hour, 0);
	assert_int_equal(p.minute, 17);
	assert_int_equal(p.weekday, 0);
	assert_int_equal(p.mday, 0);
	assert_int_equal(p.keep, 48);
	assert_string_equal(p.tz, "Etc/UTC");

	p = parse_ok("target=vm:db schedule=weekly@sun-03:30 keep=5");
	assert_int_equal(p.interval, POLICY_WEEKLY);
	assert_int_equal(p.weekday, 7);
	assert_int_equal(p.hour, 3);
	assert_int_equal(p.minute, 30);
	assert_int_equal(p.mday, 0);

	p = parse_ok("target=vm:db schedule=weekly keep=5");
	assert_int_equal(p.weekday, 1);

	p = parse_ok("target=vm:db schedule=monthly@28-23:59 keep=5");
	assert_int_equal(p.interval, POLICY_MONTHLY);
	assert_int_equal(p.mday, 28);
	assert_int_equal(p.hour, 23);
	assert_int_equal(p.minute, 59);
	assert_int_equal(p.weekday, 0);

	p = parse_ok("target=vm:db schedule=monthly keep=5");
	assert_int_equal(p.mday, 1);
	assert_int_equal(p.hour, 0);
	assert_int_equal(p.minute, 0);
}

static void test_parse_longest_target(void **state)
{
	g_autofree char *name = g_strnfill(SNAP_NAME_MAX, 'n');
	g_autofree char *line =
		g_strdup_printf("target=volume:%s schedule=daily keep=1", name);
	struct policy_spec p = parse_ok(line);
	g_autofree char *text = policy_format(&p);

	assert_string_equal(p.target, name);
	assert_non_null(strstr(text, name));
}

static void test_parse_comments(void **state)
{
	static const char *const texts[] = {
		"# a comment\ntarget=volume:web schedule=daily@02:00 keep=7\n",
		"target=volume:web schedule=daily@02:00 keep=7\n"
		"# last run: 2026-11-22T01:00:00Z daily-20261122T0100Z\n"
		"# next run: 2026-11-23T01:00:00Z\n",
		"\n\n  # indented comment\n\t#tabbed\n"
		"target=volume:web schedule=daily@02:00 keep=7\n\n  \n",
		"target=volume:web schedule=daily@02:00 keep=7\n#",
		"#\n#\n#target=vm:other schedule=hourly keep=1\n"
		"target=volume:web schedule=daily@02:00 keep=7",
	};
	struct policy_spec want =
		parse_ok("target=volume:web schedule=daily@02:00 keep=7");

	for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
		struct policy_spec p = parse_ok(texts[i]);

		assert_spec_equal(&p, &want);
	}

	/* the read-back text of a policy file writes back to the same spec */
	{
		g_autofree char *line = policy_format(&want);
		g_autofree char *file = g_strdup_printf(
			"%s\n# last run: 2026-11-22T01:00:00Z\n", line);
		struct policy_spec p = parse_ok(file);

		assert_spec_equal(&p, &want);
	}
}

static void test_parse_not_nul_terminated(void **state)
{
	static const char buf[] = "target=vm:a schedule=daily keep=12345";
	struct policy_spec p;

	/* the bytes of a write(2) are not a C string: parse only @len */
	assert_errno(policy_parse(buf, sizeof(buf) - 1 - 4, "UTC", &p, NULL),
		     0);
	assert_int_equal(p.keep, 1);
	assert_string_equal(p.tz, "UTC");
	assert_errno(policy_parse(buf, sizeof(buf) - 1, "UTC", &p, NULL), 0);
	assert_int_equal(p.keep, 12345);
}

static void test_parse_default_tz(void **state)
{
	static const char line[] = "target=vm:a schedule=daily keep=1";
	struct policy_spec p;
	const char *why = NULL;

	assert_errno(policy_parse(line, strlen(line), "Europe/Paris", &p, NULL),
		     0);
	assert_string_equal(p.tz, "Europe/Paris");
	assert_errno(policy_parse(line, strlen(line), NULL, &p, NULL), 0);
	assert_string_equal(p.tz, "UTC");

	/* an unusable host zone is refused, unless tz= overrides it */
	assert_errno(policy_parse(line, strlen(line), "Mars/Base", &p, &why),
		     -EINVAL);
	assert_string_equal(why, "the host time zone is not a known IANA "
				 "zone name: give tz=");
	assert_errno(
		policy_parse(line, strlen(line), "/etc/localtime", &p, NULL),
		-EINVAL);
	assert_errno(policy_parse(line, strlen(line), "", &p, NULL), -EINVAL);
	{
		static const char with_tz[] =
			"target=vm:a schedule=daily keep=1 tz=Asia/Tokyo";

		assert_errno(policy_parse(with_tz, strlen(with_tz), "Mars/Base",
					  &p, NULL),
			     0);
		assert_string_equal(p.tz, "Asia/Tokyo");
	}
}

/* ---- rejections ------------------------------------------------------- */

static const struct {
	const char *in;
	const char *why;
} bad[] = {
	/* the text */
	{"", "empty policy: give target=, schedule= and keep="},
	{" \t\n\n", "empty policy: give target=, schedule= and keep="},
	{"# only a comment\n",
	 "empty policy: give target=, schedule= and keep="},
	{"target=vm:a schedule=daily keep=1\ntarget=vm:b schedule=daily keep=1",
	 "one policy per write: a second policy line"},
	{"target=vm:a schedule=daily keep=1\n# c\nkeep=1",
	 "one policy per write: a second policy line"},
	{"target=vm:a schedule=daily\nkeep=1",
	 "one policy per write: a second policy line"},
	/* fields */
	{"schedule=daily keep=7", "missing target="},
	{"target=volume:web keep=7", "missing schedule="},
	{"target=volume:web schedule=daily", "missing keep="},
	{"tz=UTC", "missing target="},
	{"target=volume:a target=volume:b schedule=daily keep=1",
	 "target= given twice"},
	{"target=volume:a schedule=daily schedule=daily keep=1",
	 "schedule= given twice"},
	{"target=volume:a schedule=daily keep=1 keep=1", "keep= given twice"},
	{"target=volume:a schedule=daily keep=1 tz=UTC tz=UTC",
	 "tz= given twice"},
	{"target=volume:a schedule=daily keep=1 foo=bar",
	 "unknown field: the fields are target=, schedule=, keep= and tz="},
	{"Target=volume:a schedule=daily keep=1",
	 "unknown field: the fields are target=, schedule=, keep= and tz="},
	{"=x target=volume:a schedule=daily keep=1",
	 "unknown field: the fields are target=, schedule=, keep= and tz="},
	{"target=volume:a schedule=daily keep=1 now",
	 "words are key=value: target=, schedule=, keep= and tz="},
	{"target volume:a schedule=daily keep=1",
	 "words are key=value: target=, schedule=, keep= and tz="},
	/* target */
	{"target=web schedule=daily keep=1",
	 "target must be volume:<name> or vm:<name>"},
	{"target= schedule=daily keep=1",
	 "target must be volume:<name> or vm:<name>"},
	{"target=disk:web schedule=daily keep=1",
	 "target must be volume:<name> or vm:<name>"},
	{"target=VM:web schedule=daily keep=1",
	 "target must be volume:<name> or vm:<name>"},
	{"target=volume:.x schedule=daily keep=1",
	 "target names are 1-128 bytes of [A-Za-z0-9._-], not starting with "
	 "'.' or '-'"},
	{"target=volume: schedule=daily keep=1",
	 "target names are 1-128 bytes of [A-Za-z0-9._-], not starting with "
	 "'.' or '-'"},
	{"target=vm:-rf schedule=daily keep=1",
	 "target names are 1-128 bytes of [A-Za-z0-9._-], not starting with "
	 "'.' or '-'"},
	{"target=vm:a/b schedule=daily keep=1",
	 "target names are 1-128 bytes of [A-Za-z0-9._-], not starting with "
	 "'.' or '-'"},
	{"target=vm:.. schedule=daily keep=1",
	 "target names are 1-128 bytes of [A-Za-z0-9._-], not starting with "
	 "'.' or '-'"},
	{"target=vm:a:b schedule=daily keep=1",
	 "target names are 1-128 bytes of [A-Za-z0-9._-], not starting with "
	 "'.' or '-'"},
	{"target=vm:caf\xc3\xa9 schedule=daily keep=1",
	 "target names are 1-128 bytes of [A-Za-z0-9._-], not starting with "
	 "'.' or '-'"},
	/* keep */
	{"target=vm:a schedule=daily keep=0", KEEP_WHY},
	{"target=vm:a schedule=daily keep=-1", KEEP_WHY},
	{"target=vm:a schedule=daily keep=+7", KEEP_WHY},
	{"target=vm:a schedule=daily keep=1000001", KEEP_WHY},
	{"target=vm:a schedule=daily keep=99999999999999999999999", KEEP_WHY},
	{"target=vm:a schedule=daily keep=7x", KEEP_WHY},
	{"target=vm:a schedule=daily keep=", KEEP_WHY},
	{"target=vm:a schedule=daily keep=0x10", KEEP_WHY},
	{"target=vm:a schedule=daily keep=1e3", KEEP_WHY},
	{"target=vm:a schedule=daily keep=7.0", KEEP_WHY},
	{"target=vm:a schedule=daily keep=7\r", KEEP_WHY},
	{"target=vm:a schedule=daily keep= 7", KEEP_WHY},
	{"target=vm:a schedule=daily keep=000", KEEP_WHY},
	/* schedule */
	{"target=vm:a schedule=daly keep=1",
	 "schedule must be hourly, daily, weekly or monthly, optionally with "
	 "@time (daily@02:00)"},
	{"target=vm:a schedule= keep=1",
	 "schedule must be hourly, daily, weekly or monthly, optionally with "
	 "@time (daily@02:00)"},
	{"target=vm:a schedule=@02:00 keep=1",
	 "schedule must be hourly, daily, weekly or monthly, optionally with "
	 "@time (daily@02:00)"},
	{"target=vm:a schedule=dailyy keep=1",
	 "schedule must be hourly, daily, weekly or monthly, optionally with "
	 "@time (daily@02:00)"},
	{"target=vm:a schedule=daily02:00 keep=1",
	 "schedule must be hourly, daily, weekly or monthly, optionally with "
	 "@time (daily@02:00)"},
	{"target=vm:a schedule=yearly keep=1",
	 "schedule must be hourly, daily, weekly or monthly, optionally with "
	 "@time (daily@02:00)"},
	{"target=vm:a schedule=hourly@60 keep=1",
	 "hourly@MM takes a minute from 00 to 59 (hourly@05, hourly@:05)"},
	{"target=vm:a schedule=hourly@ keep=1",
	 "hourly@MM takes a minute from 00 to 59 (hourly@05, hourly@:05)"},
	{"target=vm:a schedule=hourly@: keep=1",
	 "hourly@MM takes a minute from 00 to 59 (hourly@05, hourly@:05)"},
	{"target=vm:a schedule=hourly@123 keep=1",
	 "hourly@MM takes a minute from 00 to 59 (hourly@05, hourly@:05)"},
	{"target=vm:a schedule=hourly@5m keep=1",
	 "hourly@MM takes a minute from 00 to 59 (hourly@05, hourly@:05)"},
	{"target=vm:a schedule=hourly@-1 keep=1",
	 "hourly@MM takes a minute from 00 to 59 (hourly@05, hourly@:05)"},
	{"target=vm:a schedule=hourly@02:00 keep=1",
	 "hourly@MM takes a minute from 00 to 59 (hourly@05, hourly@:05)"},
	{"target=vm:a schedule=daily@24:00 keep=1",
	 "daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)"},
	{"target=vm:a schedule=daily@2 keep=1",
	 "daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)"},
	{"target=vm:a schedule=daily@02:60 keep=1",
	 "daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)"},
	{"target=vm:a schedule=daily@02:0 keep=1",
	 "daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)"},
	{"target=vm:a schedule=daily@2:00:00 keep=1",
	 "daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)"},
	{"target=vm:a schedule=daily@-1:00 keep=1",
	 "daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)"},
	{"target=vm:a schedule=daily@02h00 keep=1",
	 "daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)"},
	{"target=vm:a schedule=daily@ keep=1",
	 "daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)"},
	{"target=vm:a schedule=daily@ 02:00 keep=1",
	 "daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)"},
	{"target=vm:a schedule=daily@002:00 keep=1",
	 "daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)"},
	{"target=vm:a schedule=weekly@xyz keep=1",
	 "weekly@DAY-HH:MM takes a day mon, tue, wed, thu, fri, sat or sun "
	 "and a time from 00:00 to 23:59 (weekly@sun-03:30)"},
	{"target=vm:a schedule=weekly@monday keep=1",
	 "weekly@DAY-HH:MM takes a day mon, tue, wed, thu, fri, sat or sun "
	 "and a time from 00:00 to 23:59 (weekly@sun-03:30)"},
	{"target=vm:a schedule=weekly@mo keep=1",
	 "weekly@DAY-HH:MM takes a day mon, tue, wed, thu, fri, sat or sun "
	 "and a time from 00:00 to 23:59 (weekly@sun-03:30)"},
	{"target=vm:a schedule=weekly@mon- keep=1",
	 "weekly@DAY-HH:MM takes a day mon, tue, wed, thu, fri, sat or sun "
	 "and a time from 00:00 to 23:59 (weekly@sun-03:30)"},
	{"target=vm:a schedule=weekly@mon-25:00 keep=1",
	 "weekly@DAY-HH:MM takes a day mon, tue, wed, thu, fri, sat or sun "
	 "and a time from 00:00 to 23:59 (weekly@sun-03:30)"},
	{"target=vm:a schedule=weekly@mon02:00 keep=1",
	 "weekly@DAY-HH:MM takes a day mon, tue, wed, thu, fri, sat or sun "
	 "and a time from 00:00 to 23:59 (weekly@sun-03:30)"},
	{"target=vm:a schedule=weekly@ keep=1",
	 "weekly@DAY-HH:MM takes a day mon, tue, wed, thu, fri, sat or sun "
	 "and a time from 00:00 to 23:59 (weekly@sun-03:30)"},
	{"target=vm:a schedule=weekly@7 keep=1",
	 "weekly@DAY-HH:MM takes a day mon, tue, wed, thu, fri, sat or sun "
	 "and a time from 00:00 to 23:59 (weekly@sun-03:30)"},
	{"target=vm:a schedule=monthly@29 keep=1", MDAY_WHY},
	{"target=vm:a schedule=monthly@30 keep=1", MDAY_WHY},
	{"target=vm:a schedule=monthly@31 keep=1", MDAY_WHY},
	{"target=vm:a schedule=monthly@31-02:00 keep=1", MDAY_WHY},
	{"target=vm:a schedule=monthly@0 keep=1",
	 "monthly@D-HH:MM takes a day from 1 to 28 and a time from 00:00 to "
	 "23:59 (monthly@1-00:00)"},
	{"target=vm:a schedule=monthly@32 keep=1",
	 "monthly@D-HH:MM takes a day from 1 to 28 and a time from 00:00 to "
	 "23:59 (monthly@1-00:00)"},
	{"target=vm:a schedule=monthly@100 keep=1",
	 "monthly@D-HH:MM takes a day from 1 to 28 and a time from 00:00 to "
	 "23:59 (monthly@1-00:00)"},
	{"target=vm:a schedule=monthly@ keep=1",
	 "monthly@D-HH:MM takes a day from 1 to 28 and a time from 00:00 to "
	 "23:59 (monthly@1-00:00)"},
	{"target=vm:a schedule=monthly@1- keep=1",
	 "monthly@D-HH:MM takes a day from 1 to 28 and a time from 00:00 to "
	 "23:59 (monthly@1-00:00)"},
	{"target=vm:a schedule=monthly@1-24:00 keep=1",
	 "monthly@D-HH:MM takes a day from 1 to 28 and a time from 00:00 to "
	 "23:59 (monthly@1-00:00)"},
	{"target=vm:a schedule=monthly@-1 keep=1",
	 "monthly@D-HH:MM takes a day from 1 to 28 and a time from 00:00 to "
	 "23:59 (monthly@1-00:00)"},
	{"target=vm:a schedule=monthly@first keep=1",
	 "monthly@D-HH:MM takes a day from 1 to 28 and a time from 00:00 to "
	 "23:59 (monthly@1-00:00)"},
	/* tz */
	{"target=vm:a schedule=daily keep=1 tz=Mars/Base", "unknown time zone"},
	{"target=vm:a schedule=daily keep=1 tz=europe/paris",
	 "unknown time zone"},
	{"target=vm:a schedule=daily keep=1 tz=Europe", "unknown time zone"},
	{"target=vm:a schedule=daily keep=1 tz=leapseconds",
	 "unknown time zone"},
	{"target=vm:a schedule=daily keep=1 tz=../../etc/passwd",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=Europe/../../../etc/passwd",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=/etc/localtime",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=/usr/share/zoneinfo/UTC",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=right/Europe/Paris",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=zone.tab",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=CET-1CEST,M3.5.0,M10.5.0/3",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=+05:30",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=:Europe/Paris",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=Europe//Paris",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=Europe/Paris/",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 tz=Europe/Par\xc3\xads",
	 "tz must be an IANA zone name such as Europe/Paris or Etc/UTC"},
	{"target=vm:a schedule=daily keep=1 "
	 "tz=Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	 "tz is longer than 63 bytes"},
};

static void test_parse_rejections(void **state)
{
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		expect_bad_str(bad[i].in, bad[i].why);
}

static void test_parse_nul_bytes(void **state)
{
	static const char a[] = "target=vm:a schedule=daily keep=1\0";
	static const char b[] = "target=vm:a\0 schedule=daily keep=1";
	static const char c[] = "\0target=vm:a schedule=daily keep=1";
	static const char d[] = "target=vm:a schedule=daily keep=1\n#\0";

	expect_bad(a, sizeof(a) - 1, "NUL byte in a policy");
	expect_bad(b, sizeof(b) - 1, "NUL byte in a policy");
	expect_bad(c, sizeof(c) - 1, "NUL byte in a policy");
	expect_bad(d, sizeof(d) - 1, "NUL byte in a policy");
}

static void test_parse_length(void **state)
{
	static const char line[] = "target=vm:a schedule=daily keep=1";
	char buf[5000];
	struct policy_spec p;

	/* a valid policy padded with blanks: 4096 bytes pass, 4097 do not */
	memset(buf, ' ', sizeof(buf));
	memcpy(buf, line, strlen(line));
	assert_errno(policy_parse(buf, POLICY_TEXT_MAX, "UTC", &p, NULL), 0);
	expect_bad(buf, POLICY_TEXT_MAX + 1,
		   "a policy write is at most 4096 bytes");
	expect_bad(buf, sizeof(buf), "a policy write is at most 4096 bytes");

	/* the same with a comment making up the length */
	memset(buf, '#', sizeof(buf));
	memcpy(buf, line, strlen(line));
	buf[strlen(line)] = '\n';
	assert_errno(policy_parse(buf, POLICY_TEXT_MAX, "UTC", &p, NULL), 0);
	expect_bad(buf, sizeof(buf), "a policy write is at most 4096 bytes");
}

static void test_parse_why_optional(void **state)
{
	static const char line[] = "target=vm:a schedule=daily keep=0";
	struct policy_spec p;

	assert_errno(policy_parse(line, strlen(line), "UTC", &p, NULL),
		     -EINVAL);
}

/*
 * Random bytes, and random mutations of a valid policy: never a crash,
 * only 0 or -EINVAL with a reason, and whatever parses round-trips.
 */
static void test_parse_random(void **state)
{
	static const char seed[] =
		"target=volume:web schedule=weekly@sun-03:30 "
		"keep=7 tz=Europe/Paris\n# last run\n";
	static const char alphabet[] = "=:@-#\n\t 0123456789aAmMsSzZ/._+,";
	g_autoptr(GRand) rand = g_rand_new_with_seed(20261122);
	/* hold the zone: each successful parse would load it again */
	g_autoptr(GTimeZone) paris = g_time_zone_new_identifier("Europe/Paris");
	char buf[256];

	assert_non_null(paris);
	for (int i = 0; i < 20000; i++) {
		struct policy_spec p;
		const char *why = NULL;
		size_t len;
		int rc;

		if (i % 2) {
			len = (size_t)g_rand_int_range(rand, 0, sizeof(buf));
			for (size_t j = 0; j < len; j++)
				buf[j] = (char)g_rand_int_range(rand, 0, 256);
		} else {
			int edits = g_rand_int_range(rand, 1, 4);

			len = sizeof(seed) - 1;
			memcpy(buf, seed, len);
			while (edits--) {
				size_t at = (size_t)g_rand_int_range(
					rand, 0, (gint32)len);
				char c = alphabet[g_rand_int_range(
					rand, 0, sizeof(alphabet) - 1)];

				switch (g_rand_int_range(rand, 0, 3)) {
				case 0:
					buf[at] = c;
					break;
				case 1:
					memmove(buf + at, buf + at + 1,
						len - at - 1);
					len--;
					break;
				default:
					if (len + 1 < sizeof(buf)) {
						memmove(buf + at + 1, buf + at,
							len - at);
						buf[at] = c;
						len++;
					}
					break;
				}
			}
		}
		rc = policy_parse(buf, len, "Etc/UTC", &p, &why);
		if (rc == 0) {
			g_autofree char *text = policy_format(&p);
			struct policy_spec again = parse_ok(text);

			assert_spec_equal(&p, &again);
			assert_true(policy_next_run(
					    &p, utc(2026, 11, 22, 0, 0)) > 0);
		} else {
			assert_errno(rc, -EINVAL);
			assert_non_null(why);
			assert_true(strlen(why) > 0);
		}
	}
}

/* ---- next runs in UTC -------------------------------------------------- */

/* @p's first slot after @after must be @want. */
static void expect_next(const struct policy_spec *p, int64_t after,
			int64_t want)
{
	int64_t got = policy_next_run(p, after);

	if (got != want) {
		g_autofree char *a = utc_text(after);
		g_autofree char *g = utc_text(got);
		g_autofree char *w = utc_text(want);
		g_autofree char *text = policy_format(p);

		print_error("%s: next run after %s is %s, expected %s\n", text,
			    a, g, w);
		fail();
	}
}

static void test_next_utc(void **state)
{
	struct policy_spec p;

	p = parse_ok("target=vm:a schedule=hourly@05 keep=1 tz=UTC");
	expect_next(&p, utc(2026, 11, 22, 10, 0), utc(2026, 11, 22, 10, 5));
	expect_next(&p, utc(2026, 11, 22, 10, 5) - 1, utc(2026, 11, 22, 10, 5));
	expect_next(&p, utc(2026, 11, 22, 10, 5), utc(2026, 11, 22, 11, 5));
	expect_next(&p, utc(2026, 12, 31, 23, 30), utc(2027, 1, 1, 0, 5));

	p = parse_ok("target=vm:a schedule=hourly keep=1 tz=Etc/UTC");
	expect_next(&p, utc(2026, 11, 22, 10, 0), utc(2026, 11, 22, 11, 0));
	expect_next(&p, utc(2026, 11, 22, 10, 0) - 1, utc(2026, 11, 22, 10, 0));

	p = parse_ok("target=vm:a schedule=daily@02:00 keep=1 tz=UTC");
	expect_next(&p, utc(2026, 11, 22, 1, 59), utc(2026, 11, 22, 2, 0));
	expect_next(&p, utc(2026, 11, 22, 2, 0) - 1, utc(2026, 11, 22, 2, 0));
	expect_next(&p, utc(2026, 11, 22, 2, 0), utc(2026, 11, 23, 2, 0));
	expect_next(&p, utc(2026, 12, 31, 23, 0), utc(2027, 1, 1, 2, 0));
	expect_next(&p, utc(2028, 2, 28, 3, 0), utc(2028, 2, 29, 2, 0));

	/* 2026-11-22 is a Sunday */
	p = parse_ok("target=vm:a schedule=weekly@sun-03:30 keep=1 tz=UTC");
	expect_next(&p, utc(2026, 11, 20, 0, 0), utc(2026, 11, 22, 3, 30));
	expect_next(&p, utc(2026, 11, 22, 3, 29), utc(2026, 11, 22, 3, 30));
	expect_next(&p, utc(2026, 11, 22, 3, 30), utc(2026, 11, 29, 3, 30));
	expect_next(&p, utc(2026, 11, 23, 0, 0), utc(2026, 11, 29, 3, 30));
	p = parse_ok("target=vm:a schedule=weekly keep=1 tz=UTC");
	expect_next(&p, utc(2026, 11, 22, 3, 0), utc(2026, 11, 23, 0, 0));
	expect_next(&p, utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0));
	expect_next(&p, utc(2026, 12, 30, 0, 0), utc(2027, 1, 4, 0, 0));

	p = parse_ok("target=vm:a schedule=monthly@28-23:59 keep=1 tz=UTC");
	expect_next(&p, utc(2026, 2, 28, 23, 59), utc(2026, 3, 28, 23, 59));
	expect_next(&p, utc(2026, 2, 28, 23, 58), utc(2026, 2, 28, 23, 59));
	expect_next(&p, utc(2026, 12, 29, 0, 0), utc(2027, 1, 28, 23, 59));
	expect_next(&p, utc(2028, 2, 1, 0, 0), utc(2028, 2, 28, 23, 59));
	p = parse_ok("target=vm:a schedule=monthly keep=1 tz=UTC");
	expect_next(&p, utc(2026, 12, 15, 0, 0), utc(2027, 1, 1, 0, 0));
	expect_next(&p, utc(2027, 1, 1, 0, 0), utc(2027, 2, 1, 0, 0));
	expect_next(&p, utc(2027, 1, 1, 0, 0) - 1, utc(2027, 1, 1, 0, 0));

	/* a fixed offset: Asia/Kolkata is 05:30 east */
	p = parse_ok("target=vm:a schedule=daily@02:00 keep=1 "
		     "tz=Asia/Kolkata");
	expect_next(&p, utc(2026, 11, 22, 0, 0), utc(2026, 11, 22, 20, 30));
	p = parse_ok("target=vm:a schedule=hourly@00 keep=1 tz=Asia/Kolkata");
	expect_next(&p, utc(2026, 11, 22, 0, 0), utc(2026, 11, 22, 0, 30));
	p = parse_ok("target=vm:a schedule=hourly@00 keep=1 "
		     "tz=Asia/Kathmandu");
	expect_next(&p, utc(2026, 11, 22, 0, 0), utc(2026, 11, 22, 0, 15));
}

/* ---- next runs across DST, spelled out --------------------------------- */

struct slot {
	int y, mo, d, h, mi; /* UTC */
};

/* Every slot of @p from @from (inclusive) must be @want, in order. */
static void expect_slots(const struct policy_spec *p, int64_t from,
			 const struct slot *want, size_t n)
{
	int64_t t = from - 1;

	for (size_t i = 0; i < n; i++) {
		int64_t w = utc(want[i].y, want[i].mo, want[i].d, want[i].h,
				want[i].mi);

		expect_next(p, t, w);
		t = w;
	}
}

static void test_next_paris_spring(void **state)
{
	static const struct slot want[] = {
		{2026, 3, 25, 1, 30},
		{2026, 3, 26, 1, 30},
		{2026, 3, 27, 1, 30},
		{2026, 3, 28, 1, 30},
		/* 02:30 does not exist: 03:00 CEST, the end of the gap */
		{2026, 3, 29, 1, 0},
		{2026, 3, 30, 0, 30},
		{2026, 3, 31, 0, 30},
		{2026, 4, 1, 0, 30},
		{2026, 4, 2, 0, 30},
		{2026, 4, 3, 0, 30},
		{2026, 4, 4, 0, 30},
		{2026, 4, 5, 0, 30},
	};
	struct policy_spec p =
		parse_ok("target=volume:web schedule=daily@02:30 keep=7 "
			 "tz=Europe/Paris");

	expect_slots(&p, utc(2026, 3, 24, 23, 0), want, G_N_ELEMENTS(want));
	/* and nothing else until April 6th */
	expect_next(&p, utc(2026, 4, 5, 0, 30), utc(2026, 4, 6, 0, 30));
	/* from inside the gap day, before and after the slot */
	expect_next(&p, utc(2026, 3, 29, 0, 59), utc(2026, 3, 29, 1, 0));
	expect_next(&p, utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30));
}

static void test_next_paris_fall(void **state)
{
	static const struct slot want[] = {
		{2026, 10, 20, 0, 30},
		{2026, 10, 21, 0, 30},
		{2026, 10, 22, 0, 30},
		{2026, 10, 23, 0, 30},
		{2026, 10, 24, 0, 30},
		/* 02:30 happens twice: only the first, CEST, counts */
		{2026, 10, 25, 0, 30},
		{2026, 10, 26, 1, 30},
		{2026, 10, 27, 1, 30},
		{2026, 10, 28, 1, 30},
		{2026, 10, 29, 1, 30},
		{2026, 10, 30, 1, 30},
		{2026, 10, 31, 1, 30},
		{2026, 11, 1, 1, 30},
		{2026, 11, 2, 1, 30},
		{2026, 11, 3, 1, 30},
		{2026, 11, 4, 1, 30},
		{2026, 11, 5, 1, 30},
	};
	struct policy_spec p =
		parse_ok("target=volume:web schedule=daily@02:30 keep=7 "
			 "tz=Europe/Paris");

	expect_slots(&p, utc(2026, 10, 19, 23, 0), want, G_N_ELEMENTS(want));
	/* from between the two 02:30s, and from the second one */
	expect_next(&p, utc(2026, 10, 25, 0, 45), utc(2026, 10, 26, 1, 30));
	expect_next(&p, utc(2026, 10, 25, 1, 30), utc(2026, 10, 26, 1, 30));
	expect_next(&p, utc(2026, 10, 25, 1, 29), utc(2026, 10, 26, 1, 30));
}

static void test_next_new_york(void **state)
{
	/* EDT from 2026-03-08 07:00Z to 2026-11-01 06:00Z */
	static const struct slot spring[] = {
		{2026, 3, 6, 7, 30}, {2026, 3, 7, 7, 30},  {2026, 3, 8, 7, 0},
		{2026, 3, 9, 6, 30}, {2026, 3, 10, 6, 30},
	};
	static const struct slot fall[] = {
		{2026, 10, 30, 6, 30},
		{2026, 10, 31, 6, 30},
		/* 02:30 happens once on the fall-back day: 01:00-02:00 repeats
		 */
		{2026, 11, 1, 7, 30},
		{2026, 11, 2, 7, 30},
	};
	static const struct slot fall_0130[] = {
		{2026, 10, 31, 5, 30},
		{2026, 11, 1, 5, 30}, /* the first 01:30, EDT */
		{2026, 11, 2, 6, 30},
		{2026, 11, 3, 6, 30},
	};
	struct policy_spec p = parse_ok("target=vm:db schedule=daily@02:30 "
					"keep=3 tz=America/New_York");
	struct policy_spec q = parse_ok("target=vm:db schedule=daily@01:30 "
					"keep=3 tz=America/New_York");

	expect_slots(&p, utc(2026, 3, 6, 0, 0), spring, G_N_ELEMENTS(spring));
	expect_slots(&p, utc(2026, 10, 30, 0, 0), fall, G_N_ELEMENTS(fall));
	expect_slots(&q, utc(2026, 10, 31, 0, 0), fall_0130,
		     G_N_ELEMENTS(fall_0130));
	expect_next(&q, utc(2026, 11, 1, 6, 30), utc(2026, 11, 2, 6, 30));
}

/* The number of slots of @p in [@from, @to). */
static int count_slots(const struct policy_spec *p, int64_t from, int64_t to)
{
	int64_t t = from - 1;
	int n = 0;

	for (;;) {
		int64_t next = policy_next_run(p, t);

		assert_true(next > t);
		if (next >= to)
			return n;
		n++;
		t = next;
	}
}

static void test_next_hourly_dst(void **state)
{
	struct policy_spec p = parse_ok("target=vm:a schedule=hourly keep=1 "
					"tz=Europe/Paris");
	struct policy_spec q = parse_ok("target=vm:a schedule=hourly@15 "
					"keep=1 tz=Europe/Paris");
	struct policy_spec ny = parse_ok("target=vm:a schedule=hourly@59 "
					 "keep=1 tz=America/New_York");
	/* the local days of 2026-10-25 and 2026-03-29 in Paris */
	int64_t fall0 = utc(2026, 10, 24, 22, 0),
		fall1 = utc(2026, 10, 25, 23, 0);
	int64_t spr0 = utc(2026, 3, 28, 23, 0), spr1 = utc(2026, 3, 29, 22, 0);

	assert_int_equal(count_slots(&p, fall0, fall1), 25);
	assert_int_equal(count_slots(&q, fall0, fall1), 25);
	assert_int_equal(count_slots(&p, spr0, spr1), 23);
	assert_int_equal(count_slots(&q, spr0, spr1), 23);
	assert_int_equal(count_slots(&p, utc(2026, 11, 2, 23, 0),
				     utc(2026, 11, 3, 23, 0)),
			 24);
	/* both 02:00s of the fall-back day, one hour apart */
	expect_next(&p, utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 1, 0));
	expect_next(&p, utc(2026, 10, 24, 23, 59), utc(2026, 10, 25, 0, 0));
	/* 01:00 CET is followed by 03:00 CEST */
	expect_next(&p, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0));
	expect_next(&q, utc(2026, 3, 29, 0, 15), utc(2026, 3, 29, 1, 15));

	/* New York's local days of 2026-11-01 and 2026-03-08 */
	assert_int_equal(count_slots(&ny, utc(2026, 11, 1, 4, 0),
				     utc(2026, 11, 2, 5, 0)),
			 25);
	assert_int_equal(
		count_slots(&ny, utc(2026, 3, 8, 5, 0), utc(2026, 3, 9, 4, 0)),
		23);
}

static void test_next_year(void **state)
{
	/* 2026 begins on a Thursday and has 53 of them */
	struct policy_spec thu = parse_ok("target=vm:a schedule=weekly@thu "
					  "keep=1 tz=Europe/Paris");
	struct policy_spec fri =
		parse_ok("target=vm:a schedule=weekly@fri-02:30 "
			 "keep=1 tz=Europe/Paris");
	struct policy_spec sun =
		parse_ok("target=vm:a schedule=weekly@sun-02:30 "
			 "keep=1 tz=America/New_York");
	struct policy_spec mon1 = parse_ok("target=vm:a schedule=monthly "
					   "keep=1 tz=Europe/Paris");
	struct policy_spec mon28 = parse_ok("target=vm:a "
					    "schedule=monthly@28-02:30 keep=1 "
					    "tz=America/New_York");
	/* local 2026-01-01 00:00 to 2027-01-01 00:00 */
	int64_t p0 = utc(2025, 12, 31, 23, 0), p1 = utc(2026, 12, 31, 23, 0);
	int64_t n0 = utc(2026, 1, 1, 5, 0), n1 = utc(2027, 1, 1, 5, 0);
	int64_t t;

	assert_int_equal(count_slots(&thu, p0, p1), 53);
	assert_int_equal(count_slots(&fri, p0, p1), 52);
	assert_int_equal(count_slots(&sun, n0, n1), 52);
	assert_int_equal(count_slots(&mon1, p0, p1), 12);
	assert_int_equal(count_slots(&mon28, n0, n1), 12);

	/* every Sunday slot in New York is at 02:30 local but the gap one */
	t = n0;
	for (int i = 0; i < 52; i++) {
		g_autoptr(GTimeZone) tz =
			g_time_zone_new_identifier("America/New_York");
		g_autoptr(GDateTime) u = NULL;
		g_autoptr(GDateTime) l = NULL;

		t = policy_next_run(&sun, t);
		u = g_date_time_new_from_unix_utc(t);
		l = g_date_time_to_timezone(u, tz);
		assert_int_equal(g_date_time_get_day_of_week(l), 7);
		if (t == utc(2026, 3, 8, 7, 0)) {
			assert_int_equal(g_date_time_get_hour(l), 3);
			assert_int_equal(g_date_time_get_minute(l), 0);
		} else {
			assert_int_equal(g_date_time_get_hour(l), 2);
			assert_int_equal(g_date_time_get_minute(l), 30);
		}
	}
}

/* ---- next runs against a minute-by-minute reference -------------------- */

/* A local wall-clock minute as GDateTime sees it. */
struct wall {
	int64_t key; /* julian day * 1440 + minute of the day */
	int minute;
};

static void wall_of(GTimeZone *tz, int64_t t, struct wall *w)
{
	g_autoptr(GDateTime) u = g_date_time_new_from_unix_utc(t);
	g_autoptr(GDateTime) l = g_date_time_to_timezone(u, tz);
	int y, m, d;
	GDate date;

	g_date_time_get_ymd(l, &y, &m, &d);
	g_date_clear(&date, 1);
	g_date_set_dmy(&date, d, m, y);
	w->key = (int64_t)g_date_get_julian(&date) * 1440 +
		 g_date_time_get_hour(l) * 60 + g_date_time_get_minute(l);
	w->minute = g_date_time_get_minute(l);
}

/* The wall key of the first slot of @p (not hourly) later than @key. */
static int64_t ref_pending(const struct policy_spec *p, int64_t key)
{
	int64_t day = key / 1440;

	for (;; day++) {
		GDate date;
		int64_t k = day * 1440 + p->hour * 60 + p->minute;

		g_date_clear(&date, 1);
		g_date_set_julian(&date, (guint32)day);
		if (p->interval == POLICY_WEEKLY &&
		    (int)g_date_get_weekday(&date) != p->weekday)
			continue;
		if (p->interval == POLICY_MONTHLY &&
		    g_date_get_day(&date) != p->mday)
			continue;
		if (k > key)
			return k;
	}
}

/*
 * The slots of @p in [@from, @from + 60 * @n) by walking the wall clock a
 * minute at a time (@walls[i] is the wall clock at @from + 60 * i, @before
 * the one a minute before @from): hourly, each minute that reads :MM;
 * dated, the first minute whose wall clock has reached the next slot's
 * wall time.
 */
static GArray *ref_slots(const struct policy_spec *p, int64_t from,
			 const struct wall *before, const struct wall *walls,
			 size_t n)
{
	GArray *slots = g_array_new(FALSE, FALSE, sizeof(int64_t));
	int64_t pending = ref_pending(p, before->key);

	for (size_t i = 0; i < n; i++) {
		int64_t t = from + 60 * (int64_t)i;

		if (p->interval == POLICY_HOURLY) {
			if (walls[i].minute == p->minute)
				g_array_append_val(slots, t);
		} else if (walls[i].key >= pending) {
			g_array_append_val(slots, t);
			pending = ref_pending(p, walls[i].key);
		}
	}
	return slots;
}

/* The first hours of @year at which @tz has changed its offset. */
static GArray *transitions(GTimeZone *tz, int year)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(int64_t));
	int64_t t0 = utc(year, 1, 1, 0, 0), t1 = utc(year + 1, 1, 1, 0, 0);
	int64_t t;
	int32_t prev = 0;

	for (t = t0; t < t1; t += 3600) {
		g_autoptr(GDateTime) u = g_date_time_new_from_unix_utc(t);
		g_autoptr(GDateTime) l = g_date_time_to_timezone(u, tz);
		int32_t off = (int32_t)(g_date_time_get_utc_offset(l) /
					G_TIME_SPAN_SECOND);

		if (t > t0 && off != prev)
			g_array_append_val(out, t);
		prev = off;
	}
	return out;
}

#define REF_MINUTES (7 * 1440)

static void compare_with_reference(const char *zone, int year,
				   const char *const *schedules, size_t n)
{
	g_autoptr(GTimeZone) tz = g_time_zone_new_identifier(zone);
	g_autoptr(GArray) changes = NULL;
	g_autofree struct wall *walls = g_new(struct wall, REF_MINUTES);

	assert_non_null(tz);
	changes = transitions(tz, year);
	assert_true(changes->len > 0);
	for (guint c = 0; c < changes->len; c++) {
		/* three and a half days either side, on whole hours */
		int64_t from = g_array_index(changes, int64_t, c) -
			       REF_MINUTES / 2 * 60;
		int64_t to = from + REF_MINUTES * 60;
		struct wall before;

		wall_of(tz, from - 60, &before);
		for (size_t i = 0; i < REF_MINUTES; i++)
			wall_of(tz, from + 60 * (int64_t)i, &walls[i]);

		for (size_t s = 0; s < n; s++) {
			g_autofree char *line = g_strdup_printf(
				"target=vm:a schedule=%s keep=1 tz=%s",
				schedules[s], zone);
			struct policy_spec p = parse_ok(line);
			g_autoptr(GArray) want = ref_slots(&p, from, &before,
							   walls, REF_MINUTES);
			int64_t t = from - 1;

			assert_true(want->len > 0 ||
				    p.interval == POLICY_MONTHLY);
			for (guint i = 0; i < want->len; i++) {
				int64_t w = g_array_index(want, int64_t, i);

				expect_next(&p, t, w);
				t = w;
			}
			assert_true(policy_next_run(&p, t) >= to);
		}
	}
}

static void test_next_reference(void **state)
{
	static const char *const common[] = {
		"hourly@00",	    "hourly@15",	"hourly@30",
		"hourly@45",	    "daily@00:00",	"daily@00:30",
		"daily@01:00",	    "daily@01:30",	"daily@02:00",
		"daily@02:30",	    "daily@03:00",	"daily@12:00",
		"daily@23:30",	    "weekly@sun-02:30", "weekly@sat-23:59",
		"weekly@mon-00:00", "monthly@1-00:00",	"monthly@28-02:30",
	};
	static const struct {
		const char *zone;
		int year;
	} zones[] = {
		{"Europe/Paris", 2026},
		{"America/New_York", 2026},
		/* a 30 minute DST shift */
		{"Australia/Lord_Howe", 2026},
		{"Australia/Sydney", 2026},
		/* -03:30 with DST */
		{"America/St_Johns", 2026},
		/* +12:45 with DST */
		{"Pacific/Chatham", 2026},
		/* changes at midnight */
		{"America/Santiago", 2026},
		{"America/Havana", 2026},
		/* a negative DST and suspensions */
		{"Africa/Casablanca", 2026},
		/* skipped 2011-12-30 entirely */
		{"Pacific/Apia", 2011},
		/* far in the future, from the zone's rules */
		{"Europe/Paris", 2300},
	};

	for (size_t z = 0; z < G_N_ELEMENTS(zones); z++)
		compare_with_reference(zones[z].zone, zones[z].year, common,
				       G_N_ELEMENTS(common));
}

/* ---- edges ------------------------------------------------------------- */

static void test_next_extremes(void **state)
{
	static const char *const schedules[] = {
		"hourly@30",
		"daily@23:59",
		"weekly@sun-23:59",
		"monthly@28-23:59",
	};
	static const char *const zones[] = {
		"UTC",
		"Europe/Paris",
		"America/New_York",
		"Pacific/Kiritimati",
		"Etc/GMT+12",
	};
	int64_t max = utc(9999, 12, 31, 23, 59) + 59;

	for (size_t s = 0; s < G_N_ELEMENTS(schedules); s++) {
		for (size_t z = 0; z < G_N_ELEMENTS(zones); z++) {
			g_autofree char *line = g_strdup_printf(
				"target=vm:a schedule=%s keep=1 tz=%s",
				schedules[s], zones[z]);
			struct policy_spec p = parse_ok(line);
			int64_t t;

			t = policy_next_run(&p, 0);
			assert_true(t > 0 && t <= 32 * 86400);
			t = policy_next_run(&p, -1);
			assert_true(t > -1 && t <= 32 * 86400);
			t = policy_next_run(&p, max);
			assert_true(t > max && t <= max + 32 * 86400);
			t = policy_next_run(&p, max - 40 * 86400);
			assert_true(t > max - 40 * 86400 && t <= max);
			t = policy_next_run(&p, utc(1, 1, 1, 0, 0));
			assert_true(t > utc(1, 1, 1, 0, 0));
			assert_true(policy_next_run(&p, max + 1) == -1);
			assert_true(policy_next_run(&p, INT64_MAX) == -1);
			assert_true(policy_next_run(&p, INT64_MIN) == -1);
			assert_true(policy_next_run(&p, utc(1, 1, 1, 0, 0) -
								1) == -1);
		}
	}
}

static void test_next_bad_spec(void **state)
{
	struct policy_spec p = parse_ok("target=vm:a schedule=daily keep=1 "
					"tz=Europe/Paris");
	struct policy_spec q;
	int64_t now = utc(2026, 11, 22, 0, 0);

	assert_true(policy_next_run(&p, now) > now);
	assert_true(policy_next_run(NULL, now) == -1);

	q = p;
	strcpy(q.tz, "Mars/Base");
	assert_true(policy_next_run(&q, now) == -1);
	q = p;
	strcpy(q.tz, "../../etc/passwd");
	assert_true(policy_next_run(&q, now) == -1);
	q = p;
	memset(q.tz, 'A', sizeof(q.tz)); /* no NUL */
	assert_true(policy_next_run(&q, now) == -1);
	q = p;
	q.interval = POLICY_INTERVAL_LAST;
	assert_true(policy_next_run(&q, now) == -1);
	q = p;
	q.interval = (enum policy_interval) - 1;
	assert_true(policy_next_run(&q, now) == -1);
	q = p;
	q.minute = 60;
	assert_true(policy_next_run(&q, now) == -1);
	q = p;
	q.hour = -1;
	assert_true(policy_next_run(&q, now) == -1);
	q = p;
	q.interval = POLICY_WEEKLY;
	q.weekday = 0;
	assert_true(policy_next_run(&q, now) == -1);
	q = p;
	q.interval = POLICY_MONTHLY;
	q.mday = 29;
	assert_true(policy_next_run(&q, now) == -1);
}

/* ---- names ------------------------------------------------------------- */

static void test_slot_names(void **state)
{
	struct policy_spec daily = parse_ok("target=volume:web "
					    "schedule=daily@02:00 keep=7 "
					    "tz=Europe/Paris");
	struct policy_spec hourly = parse_ok("target=vm:a schedule=hourly "
					     "keep=1 tz=Europe/Paris");
	struct policy_spec weekly = parse_ok("target=vm:a schedule=weekly "
					     "keep=1");
	struct policy_spec monthly = parse_ok("target=vm:a schedule=monthly "
					      "keep=1");
	char buf[SNAP_NAME_MAX + 1];
	int64_t slot;

	slot = policy_next_run(&daily, utc(2026, 11, 21, 12, 0));
	assert_true(slot == utc(2026, 11, 22, 1, 0));
	assert_errno(policy_slot_name(&daily, slot, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "daily-20261122T0100Z");
	assert_errno(snap_name_valid(buf), 0);

	slot = policy_next_run(&hourly, utc(2026, 10, 24, 23, 59));
	assert_errno(policy_slot_name(&hourly, slot, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "hourly-20261025T0000Z");
	/* the two 02:00s of the fall-back day have different names */
	slot = policy_next_run(&hourly, slot);
	assert_errno(policy_slot_name(&hourly, slot, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "hourly-20261025T0100Z");

	assert_errno(policy_slot_name(&weekly, utc(2026, 11, 23, 0, 0), buf,
				      sizeof(buf)),
		     0);
	assert_string_equal(buf, "weekly-20261123T0000Z");
	assert_errno(policy_slot_name(&monthly, utc(2027, 1, 1, 0, 0), buf,
				      sizeof(buf)),
		     0);
	assert_string_equal(buf, "monthly-20270101T0000Z");

	assert_errno(policy_slot_name(&daily, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "daily-19700101T0000Z");
	assert_errno(policy_slot_name(&daily, utc(9999, 12, 31, 23, 59), buf,
				      sizeof(buf)),
		     0);
	assert_string_equal(buf, "daily-99991231T2359Z");
	assert_errno(
		policy_slot_name(&daily, utc(1, 1, 1, 0, 0), buf, sizeof(buf)),
		0);
	assert_string_equal(buf, "daily-00010101T0000Z");
	/* seconds do not show */
	assert_errno(policy_slot_name(&daily, utc(2026, 3, 29, 1, 0) + 59, buf,
				      sizeof(buf)),
		     0);
	assert_string_equal(buf, "daily-20260329T0100Z");
}

static void test_slot_name_sizes(void **state)
{
	struct policy_spec daily = parse_ok("target=vm:a schedule=daily "
					    "keep=1");
	int64_t slot = utc(2026, 11, 22, 1, 0);
	char buf[64];

	/* "daily-20261122T0100Z" is 20 bytes, 21 with its NUL */
	assert_errno(policy_slot_name(&daily, slot, buf, 21), 0);
	assert_string_equal(buf, "daily-20261122T0100Z");
	memset(buf, 'x', sizeof(buf));
	assert_errno(policy_slot_name(&daily, slot, buf, 20), -ENAMETOOLONG);
	assert_string_equal(buf, "");
	assert_errno(policy_slot_name(&daily, slot, buf, 1), -ENAMETOOLONG);
	assert_string_equal(buf, "");
	assert_errno(policy_slot_name(&daily, slot, NULL, 0), -ENAMETOOLONG);

	assert_errno(policy_slot_name(&daily, utc(1, 1, 1, 0, 0) - 1, buf,
				      sizeof(buf)),
		     -EINVAL);
	assert_errno(policy_slot_name(&daily, INT64_MIN, buf, sizeof(buf)),
		     -EINVAL);
	assert_errno(policy_slot_name(NULL, slot, buf, sizeof(buf)), -EINVAL);
	daily.interval = POLICY_INTERVAL_LAST;
	assert_errno(policy_slot_name(&daily, slot, buf, sizeof(buf)), -EINVAL);
	/* far-future slots still fit a snapshot name */
	daily.interval = POLICY_MONTHLY;
	assert_errno(policy_slot_name(&daily, INT64_MAX, buf, sizeof(buf)), 0);
	assert_errno(snap_name_valid(buf), 0);
}

static void test_slot_names_sort(void **state)
{
	struct policy_spec p = parse_ok("target=vm:a schedule=hourly@07 keep=1 "
					"tz=Australia/Lord_Howe");
	/*
	 * Never read: GLib keeps a zone parsed only while a reference to it
	 * lives, and the loop below opens this one at every step (about 2 s
	 * more without this reference).
	 */
	g_autoptr(GTimeZone) held G_GNUC_UNUSED =
		g_time_zone_new_identifier("Australia/Lord_Howe");
	char prev[SNAP_NAME_MAX + 1] = "", cur[SNAP_NAME_MAX + 1];
	int64_t t = utc(2026, 1, 1, 0, 0);

	/* a year of hourly names, strictly increasing as strings */
	for (int i = 0; i < 24 * 366; i++) {
		t = policy_next_run(&p, t);
		assert_errno(policy_slot_name(&p, t, cur, sizeof(cur)), 0);
		assert_true(strcmp(prev, cur) < 0);
		strcpy(prev, cur);
	}
}

static void test_interval_names(void **state)
{
	assert_string_equal(policy_interval_name(POLICY_HOURLY), "hourly");
	assert_string_equal(policy_interval_name(POLICY_DAILY), "daily");
	assert_string_equal(policy_interval_name(POLICY_WEEKLY), "weekly");
	assert_string_equal(policy_interval_name(POLICY_MONTHLY), "monthly");
	assert_string_equal(policy_interval_name(POLICY_INTERVAL_LAST), "?");
	assert_string_equal(policy_interval_name((enum policy_interval) - 1),
			    "?");
	/* every interval name is a schedule keyword */
	for (int i = 0; i < POLICY_INTERVAL_LAST; i++) {
		g_autofree char *line =
			g_strdup_printf("target=vm:a schedule=%s keep=1",
					policy_interval_name(i));
		struct policy_spec p = parse_ok(line);

		assert_int_equal(p.interval, i);
	}
}

/* ---- cost -------------------------------------------------------------- */

/*
 * 10,000 chained hourly runs, and 1000 policies over a month of daily
 * runs, with the engine's habit of holding a reference to each zone in
 * use (policy.h).  No timing assertion; the times go to a TAP comment.
 */
static void test_next_cost(void **state)
{
	static const char *const zones[] = {
		"Europe/Paris",
		"America/New_York",
		"Etc/UTC",
		"Asia/Kolkata",
	};
	GTimeZone *held[G_N_ELEMENTS(zones)];
	struct policy_spec p = parse_ok("target=vm:a schedule=hourly@30 "
					"keep=1 tz=Europe/Paris");
	int64_t t = utc(2026, 1, 1, 0, 0), start;
	gint64 t0, t1, t2;
	int runs = 0;

	for (size_t z = 0; z < G_N_ELEMENTS(zones); z++)
		held[z] = g_time_zone_new_identifier(zones[z]);

	t0 = g_get_monotonic_time();
	for (int i = 0; i < 10000; i++) {
		int64_t next = policy_next_run(&p, t);

		assert_true(next > t && next <= t + 3600);
		t = next;
	}
	t1 = g_get_monotonic_time();

	start = utc(2026, 3, 15, 0, 0);
	for (int i = 0; i < 1000; i++) {
		g_autofree char *line = g_strdup_printf(
			"target=vm:v%d schedule=%s%02d:%02d keep=3 tz=%s", i,
			i % 3 ? "daily@" : "weekly@sun-", i % 24, i % 60,
			zones[i % G_N_ELEMENTS(zones)]);
		struct policy_spec q = parse_ok(line);

		for (t = start; t < start + 31 * 86400; runs++)
			t = policy_next_run(&q, t);
	}
	t2 = g_get_monotonic_time();
	print_message("# 10000 hourly runs: %" G_GINT64_FORMAT " us; 1000 "
		      "policies, a month (%d runs): %" G_GINT64_FORMAT " us\n",
		      t1 - t0, runs, t2 - t1);

	for (size_t z = 0; z < G_N_ELEMENTS(zones); z++)
		g_time_zone_unref(held[z]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_forms),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_parse_longest_target),
		cmocka_unit_test(test_parse_comments),
		cmocka_unit_test(test_parse_not_nul_terminated),
		cmocka_unit_test(test_parse_default_tz),
		cmocka_unit_test(test_parse_rejections),
		cmocka_unit_test(test_parse_nul_bytes),
		cmocka_unit_test(test_parse_length),
		cmocka_unit_test(test_parse_why_optional),
		cmocka_unit_test(test_parse_random),
		cmocka_unit_test(test_next_utc),
		cmocka_unit_test(test_next_paris_spring),
		cmocka_unit_test(test_next_paris_fall),
		cmocka_unit_test(test_next_new_york),
		cmocka_unit_test(test_next_hourly_dst),
		cmocka_unit_test(test_next_year),
		cmocka_unit_test(test_next_reference),
		cmocka_unit_test(test_next_extremes),
		cmocka_unit_test(test_next_bad_spec),
		cmocka_unit_test(test_slot_names),
		cmocka_unit_test(test_slot_name_sizes),
		cmocka_unit_test(test_slot_names_sort),
		cmocka_unit_test(test_interval_names),
		cmocka_unit_test(test_next_cost),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
