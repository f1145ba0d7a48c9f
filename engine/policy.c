/*
 * policy.c - recurring snapshot policies: the parser of one write to
 * policies/<name>, the normalized form, next-run arithmetic across time
 * zones and DST, slot names.  Pure functions, no state, fuzzed by
 * tests/fuzz.  The semantics are in policy.h.
 *
 * Calendar arithmetic is done here on int64 "wall" seconds (a local date
 * and time counted as if it were UTC), with Howard Hinnant's civil-date
 * algorithms; GLib is asked only for the UTC offset in force at an
 * instant.  The UTC offset is piecewise constant, so the instants of a wall
 * time are found by trying the offsets in force around it, never by
 * searching minute by minute.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "policy.h"

#define DAY_SECONDS 86400
#define HOUR_SECONDS 3600
/* No UTC offset is this large (POSIX caps them below 25 hours). */
#define ZONE_REACH (26 * HOUR_SECONDS)
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z */
#define POLICY_TIME_MIN INT64_C(-62135596800)
#define POLICY_TIME_MAX INT64_C(253402300799)

static const char *const interval_names[POLICY_INTERVAL_LAST] = {
	[POLICY_HOURLY] = "hourly",
	[POLICY_DAILY] = "daily",
	[POLICY_WEEKLY] = "weekly",
	[POLICY_MONTHLY] = "monthly",
};

static const char *const day_names[7] = {
	"mon", "tue", "wed", "thu", "fri", "sat", "sun",
};

static const char *const kind_names[] = {
	[POLICY_TARGET_VOLUME] = "volume",
	[POLICY_TARGET_VM] = "vm",
};

const char *policy_interval_name(enum policy_interval i)
{
	return (unsigned)i < POLICY_INTERVAL_LAST ? interval_names[i] : "?";
}

/* ---- calendar --------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	return a - floor_div(a, b) * b;
}

/* Days since 1970-01-01 of @y-@m-@d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* ISO weekday of day @z: 1 = Monday .. 7 = Sunday (day 0 was a Thursday). */
static int weekday_of(int64_t z)
{
	return (int)floor_mod(z + 3, 7) + 1;
}

/* The first day on or after day @z that has a slot of @p (not hourly). */
static int64_t policy_day_on_or_after(const struct policy_spec *p, int64_t z)
{
	int64_t y;
	unsigned m, d;

	switch (p->interval) {
	case POLICY_WEEKLY:
		return z + floor_mod(p->weekday - weekday_of(z), 7);
	case POLICY_MONTHLY:
		civil_from_days(z, &y, &m, &d);
		if (d > (unsigned)p->mday) {
			if (++m > 12) {
				m = 1;
				y++;
			}
		}
		return days_from_civil(y, m, (unsigned)p->mday);
	default:
		return z;
	}
}

/* ---- time zones ------------------------------------------------------- */

/* The UTC offset of @tz at instant @t, in seconds east. */
static int32_t zone_offset(GTimeZone *tz, int64_t t)
{
	return g_time_zone_get_offset(
		tz, g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, t));
}

/*
 * The first instant whose wall clock in @tz reads @wall; when @wall is
 * skipped (a gap), the first instant after the gap.
 *
 * A solution t satisfies t + offset(t) == wall, so offset(t) is one of the
 * offsets in force within ZONE_REACH of @wall: try those at both ends, and
 * any other a failed try meets, and keep the earliest that fits.  GLib's
 * g_date_time_new() would pick the later of two occurrences instead.
 */
static int64_t zone_first_instant(GTimeZone *tz, int64_t wall)
{
	int32_t offs[4], o, lo_off, hi_off;
	int n = 0, i, j;
	int64_t t, best = INT64_MAX, lo, hi, mid;

	offs[n++] = zone_offset(tz, wall - ZONE_REACH);
	o = zone_offset(tz, wall + ZONE_REACH);
	if (o != offs[0])
		offs[n++] = o;
	for (i = 0; i < n; i++) {
		t = wall - offs[i];
		o = zone_offset(tz, t);
		if (o == offs[i]) {
			if (t < best)
				best = t;
			continue;
		}
		for (j = 0; j < n && offs[j] != o; j++)
			;
		if (j == n && n < (int)G_N_ELEMENTS(offs))
			offs[n++] = o;
	}
	if (best != INT64_MAX)
		return best;

	/*
	 * A gap: the clock jumps from below @wall to above it at some instant
	 * between wall - (largest offset) and wall - (smallest offset).
	 */
	lo_off = hi_off = offs[0];
	for (i = 1; i < n; i++) {
		lo_off = MIN(lo_off, offs[i]);
		hi_off = MAX(hi_off, offs[i]);
	}
	lo = wall - hi_off;
	hi = wall - lo_off;
	if (lo >= hi) {
		lo = wall - ZONE_REACH;
		hi = wall + ZONE_REACH;
	}
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (mid + zone_offset(tz, mid) >= wall)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

/* hourly@MM: the first instant after @after whose local minute is MM. */
static int64_t next_hourly(const struct policy_spec *p, GTimeZone *tz,
			   int64_t after)
{
	int64_t s = after + 1, t, lo, hi, mid;
	int32_t o;
	int i;

	for (i = 0; i < 8; i++) {
		o = zone_offset(tz, s);
		t = s +
		    floor_mod((int64_t)p->minute * 60 - (s + o), HOUR_SECONDS);
		if (zone_offset(tz, t) == o)
			return t;
		/* the offset changes in (s, t]: start again where it does */
		lo = s;
		hi = t;
		while (hi - lo > 1) {
			mid = lo + (hi - lo) / 2;
			if (zone_offset(tz, mid) == o)
				lo = mid;
			else
				hi = mid;
		}
		s = hi;
	}
	return -1;
}

/* daily, weekly, monthly: the first dated slot after @after. */
static int64_t next_dated(const struct policy_spec *p, GTimeZone *tz,
			  int64_t after)
{
	int64_t wall_after = after + zone_offset(tz, after);
	int64_t day, wall, t;
	int i;

	/*
	 * A slot whose wall time is not after the wall clock at @after came
	 * first at or before @after (the clock reached or jumped past it on
	 * the way), so start from the first date whose slot is later on the
	 * wall; a fall-back overlap may still put that slot before @after.
	 */
	day = policy_day_on_or_after(p, floor_div(wall_after, DAY_SECONDS));
	for (i = 0; i < 16; i++) {
		wall = day * DAY_SECONDS + (int64_t)p->hour * HOUR_SECONDS +
		       (int64_t)p->minute * 60;
		if (wall > wall_after) {
			t = zone_first_instant(tz, wall);
			if (t > after)
				return t;
		}
		day = policy_day_on_or_after(p, day + 1);
	}
	return -1;
}

/* ---- spec checks -------------------------------------------------------- */

/*
 * The shape of an IANA zone name: 1-63 bytes of [A-Za-z0-9/_+-], each
 * '/'-separated part starting with a letter.  This rules out "..", absolute
 * paths, POSIX TZ strings ("CET-1CEST,M3.5.0") and offsets ("+05:30"),
 * and the non-zone files next to the zones (zone.tab, tzdata.zi).  The
 * right/ zones count leap seconds, which Unix time does not (and GLib
 * takes a tenth of a second to load one).
 */
static bool tz_name_ok(const char *tz)
{
	size_t i, len = strnlen(tz, POLICY_TZ_MAX);
	bool part_start = true;

	if (len == 0 || len >= POLICY_TZ_MAX || !strncmp(tz, "right/", 6))
		return false;
	for (i = 0; i < len; i++) {
		char c = tz[i];

		if (part_start && !g_ascii_isalpha(c))
			return false;
		part_start = c == '/';
		if (!(g_ascii_isalnum(c) || c == '/' || c == '_' || c == '-' ||
		      c == '+'))
			return false;
	}
	return !part_start;
}

/*
 * Whether @tz names a compiled zone file, where GLib looks for it: GLib
 * warns (g_critical) when a file it loads is not TZif, e.g. "leapseconds".
 */
static bool tz_file_ok(const char *tz)
{
	const char *dir = g_getenv("TZDIR");
	g_autofree char *path = NULL;
	char magic[4];
	ssize_t n;
	int fd;

	if (!strcmp(tz, "UTC"))
		return true; /* GLib knows it without a file */
	if (!dir)
		dir = "/usr/share/zoneinfo";
	path = g_build_filename(dir, tz, NULL);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return false;
	do
		n = pread(fd, magic, sizeof(magic), 0);
	while (n < 0 && errno == EINTR);
	close(fd);
	return n == (ssize_t)sizeof(magic) && !memcmp(magic, "TZif", 4);
}

static bool tz_known(const char *tz)
{
	GTimeZone *zone;

	if (!tz_name_ok(tz) || !tz_file_ok(tz))
		return false;
	zone = g_time_zone_new_identifier(tz);
	if (!zone)
		return false;
	g_time_zone_unref(zone);
	return true;
}

/* Whether @p could have come from policy_parse() (the zone aside). */
static bool spec_ok(const struct policy_spec *p)
{
	if ((unsigned)p->interval >= POLICY_INTERVAL_LAST)
		return false;
	if (p->minute < 0 || p->minute > 59 || p->hour < 0 || p->hour > 23)
		return false;
	if (p->interval == POLICY_WEEKLY && (p->weekday < 1 || p->weekday > 7))
		return false;
	if (p->interval == POLICY_MONTHLY && (p->mday < 1 || p->mday > 28))
		return false;
	return tz_name_ok(p->tz);
}

int64_t policy_next_run(const struct policy_spec *p, int64_t after)
{
	GTimeZone *tz;
	int64_t t;

	if (!p || !spec_ok(p) || after < POLICY_TIME_MIN ||
	    after > POLICY_TIME_MAX)
		return -1;
	tz = g_time_zone_new_identifier(p->tz);
	if (!tz)
		return -1;
	if (p->interval == POLICY_HOURLY)
		t = next_hourly(p, tz, after);
	else
		t = next_dated(p, tz, after);
	g_time_zone_unref(tz);
	return t;
}

int policy_slot_name(const struct policy_spec *p, int64_t slot, char *buf,
		     size_t size)
{
	int64_t day, secs, y;
	unsigned m, d;
	int n;

	if (!p || (unsigned)p->interval >= POLICY_INTERVAL_LAST ||
	    slot < POLICY_TIME_MIN)
		return -EINVAL;
	day = floor_div(slot, DAY_SECONDS);
	secs = slot - day * DAY_SECONDS;
	civil_from_days(day, &y, &m, &d);
	n = snprintf(buf, size, "%s-%04" PRId64 "%02u%02uT%02d%02dZ",
		     interval_names[p->interval], y, m, d,
		     (int)(secs / HOUR_SECONDS),
		     (int)(secs % HOUR_SECONDS / 60));
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= size) {
		if (size > 0)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

char *policy_format(const struct policy_spec *p)
{
	char sched[64];
	const char *kind = (unsigned)p->kind < G_N_ELEMENTS(kind_names)
				   ? kind_names[p->kind]
				   : "?";

	switch (p->interval) {
	case POLICY_HOURLY:
		snprintf(sched, sizeof(sched), "hourly@%02d", p->minute);
		break;
	case POLICY_DAILY:
		snprintf(sched, sizeof(sched), "daily@%02d:%02d", p->hour,
			 p->minute);
		break;
	case POLICY_WEEKLY:
		snprintf(sched, sizeof(sched), "weekly@%s-%02d:%02d",
			 p->weekday >= 1 && p->weekday <= 7
				 ? day_names[p->weekday - 1]
				 : "?",
			 p->hour, p->minute);
		break;
	case POLICY_MONTHLY:
		snprintf(sched, sizeof(sched), "monthly@%d-%02d:%02d", p->mday,
			 p->hour, p->minute);
		break;
	default:
		snprintf(sched, sizeof(sched), "?");
		break;
	}
	return g_strdup_printf("target=%s:%.*s schedule=%s keep=%u tz=%.*s",
			       kind, (int)strnlen(p->target, sizeof(p->target)),
			       p->target, sched, p->keep,
			       (int)strnlen(p->tz, sizeof(p->tz)), p->tz);
}

/* ---- the parser ------------------------------------------------------- */

static const char why_keep[] = "keep must be a whole number from 1 to 1000000";
static const char why_hourly[] =
	"hourly@MM takes a minute from 00 to 59 (hourly@05, hourly@:05)";
static const char why_daily[] =
	"daily@HH:MM takes a time from 00:00 to 23:59 (daily@02:00)";
static const char why_weekly[] =
	"weekly@DAY-HH:MM takes a day mon, tue, wed, thu, fri, sat or sun "
	"and a time from 00:00 to 23:59 (weekly@sun-03:30)";
static const char why_monthly[] =
	"monthly@D-HH:MM takes a day from 1 to 28 and a time from 00:00 to "
	"23:59 (monthly@1-00:00)";
static const char why_mday_late[] =
	"monthly days are 1-28: not every month has a 29th-31st";
static const char why_tz_name[] =
	"tz must be an IANA zone name such as Europe/Paris or Etc/UTC";

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Read 1 to @max decimal digits at *@s into *@val and move *@s past them.
 * Return: the number of digits read, 0 when there is none.
 */
static int read_digits(const char **s, int max, int *val)
{
	int n = 0;

	*val = 0;
	while (n < max && g_ascii_isdigit((*s)[n])) {
		*val = *val * 10 + ((*s)[n] - '0');
		n++;
	}
	*s += n;
	return n;
}

/* "H:MM" or "HH:MM" ending @s, into @out; -EINVAL otherwise. */
static int parse_clock(const char *s, struct policy_spec *out)
{
	int h, m;

	if (!read_digits(&s, 2, &h) || *s++ != ':')
		return -EINVAL;
	if (read_digits(&s, 2, &m) != 2 || *s)
		return -EINVAL;
	if (h > 23 || m > 59)
		return -EINVAL;
	out->hour = h;
	out->minute = m;
	return 0;
}

static int parse_hourly(const char *arg, struct policy_spec *out,
			const char **why)
{
	int m;

	if (*arg == ':')
		arg++;
	if (!read_digits(&arg, 2, &m) || *arg || m > 59) {
		*why = why_hourly;
		return -EINVAL;
	}
	out->minute = m;
	return 0;
}

static int parse_weekly(const char *arg, struct policy_spec *out,
			const char **why)
{
	int d;

	*why = why_weekly;
	for (d = 0; d < 7; d++)
		if (!g_ascii_strncasecmp(arg, day_names[d], 3))
			break;
	if (d == 7)
		return -EINVAL;
	out->weekday = d + 1;
	arg += 3;
	if (!*arg)
		return 0;
	if (*arg != '-')
		return -EINVAL;
	return parse_clock(arg + 1, out);
}

static int parse_monthly(const char *arg, struct policy_spec *out,
			 const char **why)
{
	int d;

	*why = why_monthly;
	if (!read_digits(&arg, 2, &d) || (*arg && *arg != '-'))
		return -EINVAL;
	if (d >= 29 && d <= 31) {
		*why = why_mday_late;
		return -EINVAL;
	}
	if (d < 1 || d > 28)
		return -EINVAL;
	out->mday = d;
	if (!*arg)
		return 0;
	return parse_clock(arg + 1, out);
}

/* schedule=<kind>[@<arg>]; keywords and day names in any case. */
static int parse_schedule(const char *v, struct policy_spec *out,
			  const char **why)
{
	const char *at = strchr(v, '@');
	size_t kw_len = at ? (size_t)(at - v) : strlen(v);
	const char *arg = at ? at + 1 : NULL;
	int i;

	for (i = 0; i < POLICY_INTERVAL_LAST; i++)
		if (kw_len == strlen(interval_names[i]) &&
		    !g_ascii_strncasecmp(v, interval_names[i], kw_len))
			break;
	if (i == POLICY_INTERVAL_LAST) {
		*why = "schedule must be hourly, daily, weekly or monthly, "
		       "optionally with @time (daily@02:00)";
		return -EINVAL;
	}
	out->interval = i;
	out->minute = out->hour = out->weekday = out->mday = 0;
	if (i == POLICY_WEEKLY)
		out->weekday = 1;
	if (i == POLICY_MONTHLY)
		out->mday = 1;
	if (!arg)
		return 0;

	switch (i) {
	case POLICY_HOURLY:
		return parse_hourly(arg, out, why);
	case POLICY_DAILY:
		if (parse_clock(arg, out) < 0) {
			*why = why_daily;
			return -EINVAL;
		}
		return 0;
	case POLICY_WEEKLY:
		return parse_weekly(arg, out, why);
	default:
		return parse_monthly(arg, out, why);
	}
}

static int parse_target(const char *v, struct policy_spec *out,
			const char **why)
{
	const char *name;

	if (!strncmp(v, "volume:", 7)) {
		out->kind = POLICY_TARGET_VOLUME;
		name = v + 7;
	} else if (!strncmp(v, "vm:", 3)) {
		out->kind = POLICY_TARGET_VM;
		name = v + 3;
	} else {
		*why = "target must be volume:<name> or vm:<name>";
		return -EINVAL;
	}
	if (snap_name_valid(name) < 0) {
		*why = "target names are 1-128 bytes of [A-Za-z0-9._-], not "
		       "starting with '.' or '-'";
		return -EINVAL;
	}
	strcpy(out->target, name);
	return 0;
}

static int parse_keep(const char *v, struct policy_spec *out, const char **why)
{
	unsigned long n = 0;

	*why = why_keep;
	if (!*v)
		return -EINVAL;
	for (; *v; v++) {
		if (!g_ascii_isdigit(*v))
			return -EINVAL;
		n = n * 10 + (unsigned long)(*v - '0');
		if (n > POLICY_KEEP_MAX)
			return -EINVAL;
	}
	if (n == 0)
		return -EINVAL;
	out->keep = (unsigned)n;
	return 0;
}

static int parse_tz(const char *v, struct policy_spec *out, const char **why)
{
	if (strlen(v) >= POLICY_TZ_MAX) {
		*why = "tz is longer than 63 bytes";
		return -EINVAL;
	}
	if (!tz_name_ok(v)) {
		*why = why_tz_name;
		return -EINVAL;
	}
	if (!tz_known(v)) {
		*why = "unknown time zone";
		return -EINVAL;
	}
	strcpy(out->tz, v);
	return 0;
}

enum policy_field {
	POLICY_FIELD_TARGET,
	POLICY_FIELD_SCHEDULE,
	POLICY_FIELD_KEEP,
	POLICY_FIELD_TZ,
	POLICY_FIELD_LAST
};

static const struct {
	const char *key;
	int (*parse)(const char *v, struct policy_spec *out, const char **why);
	const char *twice;
	const char *missing;
} fields[POLICY_FIELD_LAST] = {
	[POLICY_FIELD_TARGET] = {"target", parse_target, "target= given twice",
				 "missing target="},
	[POLICY_FIELD_SCHEDULE] = {"schedule", parse_schedule,
				   "schedule= given twice",
				   "missing schedule="},
	[POLICY_FIELD_KEEP] = {"keep", parse_keep, "keep= given twice",
			       "missing keep="},
	[POLICY_FIELD_TZ] = {"tz", parse_tz, "tz= given twice", NULL},
};

/* Parse the words of the NUL-terminated policy @line into @out. */
static int parse_line(char *line, const char *default_tz,
		      struct policy_spec *out, const char **why)
{
	bool seen[POLICY_FIELD_LAST] = {false};
	char *p = line, *word, *eq;
	int f, rc;

	for (;;) {
		while (is_blank(*p))
			p++;
		if (!*p)
			break;
		word = p;
		while (*p && !is_blank(*p))
			p++;
		if (*p)
			*p++ = '\0';

		eq = strchr(word, '=');
		if (!eq) {
			*why = "words are key=value: target=, schedule=, "
			       "keep= and tz=";
			return -EINVAL;
		}
		*eq = '\0';
		for (f = 0; f < POLICY_FIELD_LAST; f++)
			if (!strcmp(word, fields[f].key))
				break;
		if (f == POLICY_FIELD_LAST) {
			*why = "unknown field: the fields are target=, "
			       "schedule=, keep= and tz=";
			return -EINVAL;
		}
		if (seen[f]) {
			*why = fields[f].twice;
			return -EINVAL;
		}
		seen[f] = true;
		rc = fields[f].parse(eq + 1, out, why);
		if (rc < 0)
			return rc;
	}

	for (f = 0; f < POLICY_FIELD_LAST; f++) {
		if (!seen[f] && fields[f].missing) {
			*why = fields[f].missing;
			return -EINVAL;
		}
	}
	if (!seen[POLICY_FIELD_TZ]) {
		if (!default_tz)
			default_tz = "UTC";
		if (strnlen(default_tz, POLICY_TZ_MAX) >= POLICY_TZ_MAX ||
		    !tz_known(default_tz)) {
			*why = "the host time zone is not a known IANA zone "
			       "name: give tz=";
			return -EINVAL;
		}
		strcpy(out->tz, default_tz);
	}
	return 0;
}

int policy_parse(const char *buf, size_t len, const char *default_tz,
		 struct policy_spec *out, const char **why)
{
	char text[POLICY_TEXT_MAX + 1];
	struct policy_spec spec;
	char *p, *eol, *line = NULL;
	const char *dummy;
	int rc;

	if (!why)
		why = &dummy;
	if (len > POLICY_TEXT_MAX) {
		*why = "a policy write is at most 4096 bytes";
		return -EINVAL;
	}
	if (len > 0 && memchr(buf, '\0', len)) {
		*why = "NUL byte in a policy";
		return -EINVAL;
	}
	if (len > 0)
		memcpy(text, buf, len);
	text[len] = '\0';

	/* one policy line; blank lines and # comments around it */
	for (p = text; p; p = eol) {
		eol = strchr(p, '\n');
		if (eol)
			*eol++ = '\0';
		while (is_blank(*p))
			p++;
		if (!*p || *p == '#')
			continue;
		if (line) {
			*why = "one policy per write: a second policy line";
			return -EINVAL;
		}
		line = p;
	}
	if (!line) {
		*why = "empty policy: give target=, schedule= and keep=";
		return -EINVAL;
	}

	memset(&spec, 0, sizeof(spec));
	rc = parse_line(line, default_tz, &spec, why);
	if (rc < 0)
		return rc;
	*out = spec;
	return 0;
}
