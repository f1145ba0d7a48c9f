/*
 * clock.h - the engine's clock.
 *
 * Every time the engine records or compares (snapshot times, job retry
 * times, policy runs) comes from clock_now(), never from time(): with
 * -o testclock, tests move it by hand (snap_clock_set()) instead of
 * sleeping through real intervals.  Lock-free: callable anywhere.
 */
#ifndef SNAP_CLOCK_H
#define SNAP_CLOCK_H

#include "context.h"

/** clock_now() - seconds since the epoch, real or the test clock's. */
int64_t clock_now(struct snap_engine *eng);
/** clock_iso() - @t (seconds since the epoch) as "2026-11-22T07:00:00Z". */
void clock_iso(int64_t t, char buf[32]);

#endif
