/*
 * clock.c - the engine's clock: real time, or the test clock a test moves
 * by hand (-o testclock); times as ISO 8601 text.
 */
#include <errno.h>
#include <time.h>

#include "clock.h"
#include "wake.h"

int64_t clock_now(struct snap_engine *eng)
{
	/* atomic, not under eng->lock: events inside catalog transactions
	 * read the clock, and the catalog lock is taken after eng->lock */
	if (eng->cfg.test_clock)
		return __atomic_load_n(&eng->test_now, __ATOMIC_ACQUIRE);
	return (int64_t)time(NULL);
}

int64_t snap_clock_now(struct snap_engine *eng)
{
	return clock_now(eng);
}

int snap_clock_set(struct snap_engine *eng, int64_t t)
{
	if (!eng->cfg.test_clock)
		return -EPERM;
	if (t < clock_now(eng))
		return -EINVAL;
	__atomic_store_n(&eng->test_now, t, __ATOMIC_RELEASE);
	wake_schedulers(eng);
	return 0;
}

void clock_iso(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
