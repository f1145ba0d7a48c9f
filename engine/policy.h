/*
 * policy.h - recurring snapshot policies (policies/<name>): the parser of
 * one write, the normalized form, next-run arithmetic in a time zone and
 * the names of the snapshots they take.  Pure functions, no state; the
 * only outside call is GLib's time zone database.  Fuzzed by tests/fuzz.
 *
 * A policy is one line of key=value words in any order, e.g.
 *
 *	target=volume:web schedule=daily@02:00 keep=7 tz=Europe/Paris
 *
 *	target=vm:<name> | target=volume:<name>		required
 *	schedule=hourly[@MM | @:MM]			required
 *	        |daily[@HH:MM]
 *	        |weekly[@DAY[-HH:MM]]	DAY: mon tue wed thu fri sat sun
 *	        |monthly[@D[-HH:MM]]	D: 1-28
 *	keep=<1..1000000>				required
 *	tz=<IANA zone, e.g. Europe/Paris>		optional
 *
 * Omitted parts of a schedule default to minute 00, 00:00, Monday and the
 * 1st.  Schedule keywords and day names are case-insensitive; the
 * normalized form (policy_format()) is lower case and always spells out
 * the whole time: hourly@05, daily@02:00, weekly@sun-03:30,
 * monthly@1-00:00.
 *
 * TIME SEMANTICS
 *
 * Slots are wall-clock times in the policy's zone; instants are seconds
 * since the epoch (UTC) and snapshot names are in UTC.
 *
 *  - daily, weekly, monthly: the slot of a local date is the first instant
 *    whose wall clock reads HH:MM on that date.  When HH:MM does not exist
 *    that day (spring forward), the slot is the first instant after the
 *    gap: Europe/Paris 2026-03-29 02:30 -> 01:00Z (03:00 CEST).  When
 *    HH:MM happens twice (fall back), only its first occurrence is a slot,
 *    the earlier (daylight) one: Europe/Paris 2026-10-25 02:30 -> 00:30Z,
 *    and 01:30Z is not a slot.  So no date has two slots, and a date has
 *    none only when it shares its gap with the next one (Pacific/Apia
 *    skipped 2011-12-30: the 12-30 and 12-31 00:00 slots are one instant).
 *    Put differently, the slot of a date is the first instant at which
 *    the wall clock reads HH:MM on that date or later.
 *  - hourly@MM: every instant whose wall-clock minute is MM and second 0.
 *    In whole-hour zones that is once per real hour, so a fall-back day
 *    has 25 slots and a spring-forward day 23; in zones with a 30 or 45
 *    minute offset (or a 30 minute DST shift) the local minute still
 *    decides, so a skipped :MM is skipped and a repeated one repeats.
 */
#ifndef SNAP_POLICY_H
#define SNAP_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include "snap.h"

#define POLICY_TZ_MAX 64 /* including the NUL */
#define POLICY_KEEP_MAX 1000000
#define POLICY_TEXT_MAX 4096 /* bytes of one write */

enum policy_target_kind {
	POLICY_TARGET_VOLUME,
	POLICY_TARGET_VM,
};

enum policy_interval {
	POLICY_HOURLY,
	POLICY_DAILY,
	POLICY_WEEKLY,
	POLICY_MONTHLY,
	POLICY_INTERVAL_LAST
};

struct policy_spec {
	enum policy_target_kind kind;
	/* a volume or VM name (snap_name_valid) */
	char target[SNAP_NAME_MAX + 1];
	enum policy_interval interval;
	int minute;    /* 0-59 */
	int hour;      /* 0-23; 0 for hourly */
	int weekday;   /* 1 = Monday .. 7 = Sunday; weekly only, else 0 */
	int mday;      /* 1-28; monthly only, else 0 */
	unsigned keep; /* 1 .. POLICY_KEEP_MAX */
	char tz[POLICY_TZ_MAX]; /* IANA identifier, never empty after parse */
};

/**
 * policy_parse() - parse the bytes of one write(2) to a policy file
 *
 * @buf, @len: the bytes, not NUL-terminated; at most POLICY_TEXT_MAX.
 * @default_tz: the zone when no tz= is given (the engine passes the
 *	host's identifier, e.g. "Etc/UTC"); NULL means "UTC".
 *
 * Exactly one policy line; blank lines and lines whose first non-blank
 * byte is '#' are ignored, so the read-back text of a policy file (the
 * policy line followed by "# last run: ..." comments) can be written back.
 * Words are separated by runs of spaces or tabs.  A tz (given or default)
 * must be 1-63 bytes of [A-Za-z0-9/_+-], each '/'-separated part starting
 * with a letter, not under right/ (leap-second clocks), and name a
 * compiled zone file (TZif) that GLib loads; "UTC" is always known.
 * Loading a zone reads $TZDIR or /usr/share/zoneinfo, so the call may
 * block on that file system.
 *
 * On success *@out holds the spec (unused fields 0); on failure *@out is
 * left untouched and *@why (may be NULL) points to a static sentence
 * saying exactly what is wrong.  Thread-safe.
 * Return: 0; -EINVAL.
 */
int policy_parse(const char *buf, size_t len, const char *default_tz,
		 struct policy_spec *out, const char **why);

/**
 * policy_format() - the normalized one-line form of @p, without newline
 *
 * "target=volume:web schedule=daily@02:00 keep=7 tz=Europe/Paris";
 * policy_parse() of it gives @p again.  The caller owns the string
 * (g_free).  Thread-safe.
 */
char *policy_format(const struct policy_spec *p);

/**
 * policy_next_run() - the first slot of @p strictly after @after
 *
 * @after: seconds since the epoch, from 0001-01-01T00:00:00Z to
 *	9999-12-31T23:59:59Z.
 *
 * A few offset look-ups per call, no search minute by minute.  The zone is
 * loaded on every call; GLib shares a loaded zone with everyone who holds
 * a reference to it, and a zone with DST rules costs it about a millisecond
 * to load (it expands the rules up to year 9999), so a caller that
 * computes many runs holds one reference per zone in use,
 * g_time_zone_new_identifier(p->tz), for as long as it keeps the policy;
 * then a call costs a few microseconds.  Thread-safe.
 * Return: the slot (seconds since the epoch); -1 when the zone cannot be
 * loaded, @after is out of range or @p is not a parsed spec.
 */
int64_t policy_next_run(const struct policy_spec *p, int64_t after);

/**
 * policy_slot_name() - the snapshot name of the run of @p at @slot
 *
 * "<interval>-YYYYMMDDTHHMMZ" in UTC, e.g. "daily-20261122T0100Z",
 * "hourly-20261025T0000Z": a valid snapshot name that sorts by time (for
 * years 0001-9999).  Written to @buf with its NUL.  Thread-safe.
 * Return: 0; -ENAMETOOLONG @size is too small (@buf then holds "" when
 * @size > 0); -EINVAL @p has no valid interval or @slot is before year 1.
 */
int policy_slot_name(const struct policy_spec *p, int64_t slot, char *buf,
		     size_t size);

/** policy_interval_name() - "hourly", "daily", "weekly", "monthly"; "?". */
const char *policy_interval_name(enum policy_interval i);

#endif
