/*
 * fuzz_policy.c - engine/policy.c: policy_parse() of one write to
 * policies/<name>, then policy_format(), policy_next_run() and
 * policy_slot_name() on every spec it accepts.
 *
 * The input is the text written (it may hold the "# ..." comment lines a
 * policy file carries).  A comment line "#at <seconds>" adds an instant at
 * which next-run arithmetic is checked, besides a few fixed ones (around
 * the 2026 DST changes) and one derived from the input's bytes.
 *
 * Invariants (engine/policy.h):
 *  - the result is 0 or -EINVAL; a refusal says why and leaves *out as it
 *    was;
 *  - an accepted spec is in range (a valid target name, minute, hour,
 *    weekday only for weekly, mday 1-28 only for monthly, keep, a zone
 *    name of the allowed shape), and without tz= the zone is the default;
 *  - policy_format() of it is one line that parses to the same spec, also
 *    followed by "# last run" comments (the read-back text of the file);
 *  - policy_next_run(@after) is a slot strictly after @after and within
 *    one period (plus a DST day) of it: hourly slots read minute MM and
 *    second 0 on the local clock; a dated slot is the first instant at
 *    which the local clock reaches HH:MM of a day the schedule names, and
 *    no earlier instant read that time (the first of two fall-back
 *    occurrences); there is no slot between @after and it (the next run
 *    after any instant in between is the same), and it is the next run
 *    after itself minus one second; instants outside years 1-9999 give -1;
 *  - policy_slot_name() is a valid snapshot name "<interval>-YYYYMMDDTHHMMZ"
 *    that reads back as the slot's UTC minute, and a short buffer gives
 *    -ENAMETOOLONG and "".
 *
 * Zones: policy_next_run() loads its zone on every call, which GLib makes
 * cheap only while someone holds a reference (policy.h), so this target
 * keeps one for every zone it has seen, as the engine does.
 */
#include <errno.h>
#include <inttypes.h>

#include "fuzz.h"
#include "snap.h"
#include "policy.h"

#define TIME_MIN INT64_C(-62135596800) /* 0001-01-01T00:00:00Z */
#define TIME_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define DAY 86400
#define DEFAULT_TZ "Europe/Paris"

static GHashTable *zones; /* tz identifier -> GTimeZone, held for ever */

static GTimeZone *zone(const char *tz)
{
	GTimeZone *z = g_hash_table_lookup(zones, tz);

	if (!z) {
		z = g_time_zone_new_identifier(tz);
		FUZZ_CHECK(z != NULL, "zone '%s' accepted but GLib cannot load it",
			   tz);
		g_hash_table_insert(zones, g_strdup(tz), z);
	}
	return z;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	zones = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
				      (GDestroyNotify)g_time_zone_unref);
	zone(DEFAULT_TZ);
	zone("UTC");
	return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	return a - floor_div(a, b) * b;
}

/* The local wall clock of instant @t, as seconds counted as if UTC. */
static int64_t wall_of(GTimeZone *tz, int64_t t)
{
	return t + g_time_zone_get_offset(
			   tz, g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, t));
}

static int32_t offset_of(GTimeZone *tz, int64_t t)
{
	return (int32_t)(wall_of(tz, t) - t);
}

/* Whether local day @day (days since 1970-01-01) has a slot of @p. */
static bool day_has_slot(const struct policy_spec *p, int64_t day)
{
	g_autoptr(GDateTime) dt = NULL;

	switch (p->interval) {
	case POLICY_WEEKLY:
		/* 1970-01-01 was a Thursday (ISO 4) */
		return floor_mod(day + 3, 7) + 1 == p->weekday;
	case POLICY_MONTHLY:
		dt = g_date_time_new_from_unix_utc(day * DAY);
		return dt && g_date_time_get_day_of_month(dt) == p->mday;
	default:
		return true;
	}
}

static void check_spec(const struct policy_spec *p)
{
	FUZZ_CHECK(p->kind == POLICY_TARGET_VOLUME || p->kind == POLICY_TARGET_VM,
		   "kind %d", (int)p->kind);
	FUZZ_CHECK(fuzz_terminated(p->target, sizeof(p->target)) &&
		   fuzz_name_ok(p->target), "target '%.*s'",
		   (int)sizeof(p->target), p->target);
	FUZZ_CHECK((unsigned)p->interval < POLICY_INTERVAL_LAST, "interval %d",
		   (int)p->interval);
	FUZZ_CHECK(p->minute >= 0 && p->minute <= 59, "minute %d", p->minute);
	FUZZ_CHECK(p->interval == POLICY_HOURLY ? p->hour == 0 :
		   p->hour >= 0 && p->hour <= 23, "hour %d", p->hour);
	FUZZ_CHECK(p->interval == POLICY_WEEKLY ?
		   p->weekday >= 1 && p->weekday <= 7 : p->weekday == 0,
		   "weekday %d", p->weekday);
	FUZZ_CHECK(p->interval == POLICY_MONTHLY ?
		   p->mday >= 1 && p->mday <= 28 : p->mday == 0,
		   "mday %d", p->mday);
	FUZZ_CHECK(p->keep >= 1 && p->keep <= POLICY_KEEP_MAX, "keep %u", p->keep);
	FUZZ_CHECK(fuzz_terminated(p->tz, sizeof(p->tz)) && p->tz[0] &&
		   strspn(p->tz, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789/_+-") == strlen(p->tz) &&
		   g_ascii_isalpha(p->tz[0]) && !strstr(p->tz, "//") &&
		   !g_str_has_suffix(p->tz, "/") &&
		   !g_str_has_prefix(p->tz, "right/"),
		   "tz '%.*s'", (int)sizeof(p->tz), p->tz);
}

static void check_slot_name(const struct policy_spec *p, int64_t slot)
{
	char buf[64], small[64];
	int y, mo, d, h, mi, n = 0;
	size_t len, cut;
	const char *iv = policy_interval_name(p->interval);
	g_autoptr(GDateTime) dt = NULL;

	FUZZ_CHECK(policy_slot_name(p, slot, buf, sizeof(buf)) == 0,
		   "slot %" PRId64, slot);
	FUZZ_CHECK(fuzz_name_ok(buf), "name '%s'", buf);
	len = strlen(buf);
	FUZZ_CHECK(g_str_has_prefix(buf, iv) && buf[strlen(iv)] == '-',
		   "name '%s'", buf);
	if (slot <= TIME_MAX) {
		FUZZ_CHECK(sscanf(buf + strlen(iv) + 1, "%4d%2d%2dT%2d%2dZ%n", &y,
				  &mo, &d, &h, &mi, &n) == 5 &&
			   (size_t)n == len - strlen(iv) - 1,
			   "name '%s'", buf);
		dt = g_date_time_new_utc(y, mo, d, h, mi, 0);
		FUZZ_CHECK(dt && g_date_time_to_unix(dt) ==
				       floor_div(slot, 60) * 60,
			   "name '%s' for slot %" PRId64, buf, slot);
	}
	cut = (size_t)(slot & 0xf) % (len + 1); /* 0 .. len: too small */
	memset(small, 'x', sizeof(small));
	FUZZ_CHECK(policy_slot_name(p, slot, small, cut) == -ENAMETOOLONG,
		   "size %zu", cut);
	FUZZ_CHECK(cut == 0 ? small[0] == 'x' : small[0] == '\0',
		   "size %zu leaves '%c'", cut, small[0]);
}

/* Whether @t is a slot of dated policy @p (the first instant at which the
 * wall clock reaches HH:MM of a day that has a slot). */
static void check_dated_slot(const struct policy_spec *p, GTimeZone *tz,
			     int64_t t)
{
	int64_t w = wall_of(tz, t), wprev = wall_of(tz, t - 1);
	int64_t hm = (int64_t)p->hour * 3600 + (int64_t)p->minute * 60;
	int64_t day, s = 0;
	int32_t offs[3];
	bool found = false;

	for (day = floor_div(w, DAY); day >= floor_div(w, DAY) - 2 && !found;
	     day--) {
		s = day * DAY + hm;
		found = day_has_slot(p, day) && wprev < s && s <= w;
	}
	FUZZ_CHECK(found, "%" PRId64 " (wall %" PRId64 ") is no slot", t, w);
	/* nothing earlier read that wall time already (fall back) */
	offs[0] = offset_of(tz, t - 26 * 3600);
	offs[1] = offset_of(tz, t + 26 * 3600);
	offs[2] = offset_of(tz, t);
	for (int i = 0; i < 3; i++) {
		int64_t e = s - offs[i];

		FUZZ_CHECK(!(e < t && offset_of(tz, e) == offs[i]),
			   "%" PRId64 " read the wall time of slot %" PRId64
			   " already", e, t);
	}
}

static void check_next_run(const struct policy_spec *p, int64_t after)
{
	GTimeZone *tz = zone(p->tz);
	int64_t t = policy_next_run(p, after), mid, period;

	if (after < TIME_MIN || after > TIME_MAX) {
		FUZZ_CHECK(t == -1, "after %" PRId64 " gave %" PRId64, after, t);
		return;
	}
	FUZZ_CHECK(t > after, "after %" PRId64 " gave %" PRId64, after, t);
	switch (p->interval) {
	case POLICY_HOURLY:
		period = 2 * DAY; /* an hour, or a day in which :MM is skipped */
		break;
	case POLICY_DAILY:
		period = 3 * DAY;
		break;
	case POLICY_WEEKLY:
		period = 9 * DAY;
		break;
	default:
		period = 33 * DAY;
		break;
	}
	FUZZ_CHECK(t - after <= period, "after %" PRId64 " gave %" PRId64,
		   after, t);
	if (p->interval == POLICY_HOURLY)
		FUZZ_CHECK(floor_mod(wall_of(tz, t), 3600) == p->minute * 60,
			   "%" PRId64 " reads not :%02d:00", t, p->minute);
	else if (t <= TIME_MAX - 2 * DAY && t >= TIME_MIN + 2 * DAY)
		check_dated_slot(p, tz, t); /* GDateTime: years 1-9999 */
	if (t - 1 <= TIME_MAX)
		FUZZ_CHECK(policy_next_run(p, t - 1) == t,
			   "not a fixed point: %" PRId64, t);
	mid = after + (t - after) / 2;
	if (mid > after && mid < t && mid <= TIME_MAX)
		FUZZ_CHECK(policy_next_run(p, mid) == t,
			   "after %" PRId64 ": %" PRId64 ", after %" PRId64
			   ": %" PRId64, after, t, mid, policy_next_run(p, mid));
	check_slot_name(p, t);
}

/* "#at <seconds>" lines of @text. */
static void instants_of(const char *text, GArray *out)
{
	for (const char *l = text; l; l = strchr(l, '\n')) {
		char *end;
		gint64 v;

		if (*l == '\n')
			l++;
		if (strncmp(l, "#at ", 4) != 0)
			continue;
		v = g_ascii_strtoll(l + 4, &end, 10);
		if (end != l + 4)
			g_array_append_val(out, v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int64_t fixed[] = {
		0,
		INT64_C(1774745400), /* 2026-03-29T00:50:00Z, Paris springs forward */
		INT64_C(1792889400), /* 2026-10-25T00:50:00Z, Paris falls back */
		TIME_MIN, TIME_MAX - 40 * DAY, TIME_MAX, TIME_MAX + 1,
	};
	const char *text = (const char *)data;
	g_autofree char *cstr = fuzz_cstr(data, size);
	g_autofree char *line = NULL, *file = NULL;
	g_autoptr(GArray) at = g_array_new(FALSE, FALSE, sizeof(gint64));
	struct policy_spec spec, untouched, again, utc;
	const char *why = NULL;
	uint64_t h = 1469598103934665603ULL;
	int rc;

	memset(&spec, 0x5a, sizeof(spec));
	untouched = spec;
	rc = policy_parse(text, size, DEFAULT_TZ, &spec, &why);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	if (rc < 0) {
		FUZZ_CHECK(why && *why, "refused without a reason");
		FUZZ_CHECK(!memcmp(&spec, &untouched, sizeof(spec)),
			   "a refusal changed *out");
		return 0;
	}
	check_spec(&spec);
	zone(spec.tz);

	/* without tz=, the default zone; NULL means UTC */
	rc = policy_parse(text, size, NULL, &utc, NULL);
	FUZZ_CHECK(rc == 0, "accepted with a default zone, not with UTC");
	FUZZ_CHECK(!strcmp(spec.tz, utc.tz) ||
		   (!strcmp(spec.tz, DEFAULT_TZ) && !strcmp(utc.tz, "UTC")),
		   "tz '%s' vs '%s'", spec.tz, utc.tz);

	line = policy_format(&spec);
	FUZZ_CHECK(line && !strchr(line, '\n') && g_str_has_prefix(line, "target="),
		   "format '%s'", line ? line : "(null)");
	memset(&again, 0, sizeof(again));
	rc = policy_parse(line, strlen(line), NULL, &again, &why);
	FUZZ_CHECK(rc == 0 && !memcmp(&again, &spec, sizeof(spec)),
		   "'%s' does not parse back (%s)", line, rc ? why : "differs");
	file = g_strdup_printf("%s\n# last run: 2026-11-22T02:00:00Z ok\n\n", line);
	rc = policy_parse(file, strlen(file), "UTC", &again, &why);
	FUZZ_CHECK(rc == 0 && !memcmp(&again, &spec, sizeof(spec)),
		   "the read-back text of '%s' does not parse back", line);

	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ULL;
	g_array_append_vals(at, fixed, G_N_ELEMENTS(fixed));
	instants_of(cstr, at);
	for (guint i = 0; i < at->len; i++)
		check_next_run(&spec, g_array_index(at, gint64, i));
	check_next_run(&spec, TIME_MIN + (int64_t)(h % (uint64_t)(TIME_MAX - TIME_MIN)));
	check_next_run(&spec, TIME_MIN - 1);
	return 0;
}
