/*
 * glib-tsan.c - tell ThreadSanitizer about GLib's synchronization
 * (tools/sanitize.sh --thread links this object into every program).
 *
 * GLib is not instrumented, and on Linux its GMutex, GRecMutex and GCond
 * are futexes and atomics inside libglib, so TSan sees none of the
 * happens-before edges they make and reports every access guarded by
 * them as a race.  This file defines the GLib entry points snapfs calls;
 * being in the executable, they take precedence over libglib's for
 * snapfs's own calls.  Each calls the real function (dlsym RTLD_NEXT) and
 * adds the edge with __tsan_acquire()/__tsan_release() on the lock's (or
 * the handed-over item's) address:
 *
 *   mutex lock / unlock, cond wait (unlock before, lock after);
 *   g_async_queue_push -> g_async_queue_pop of the same item;
 *   g_thread_pool_push -> the pool's function running that item;
 *   the end of each task -> g_thread_pool_free(pool, ..., wait = TRUE);
 *   g_once_init_leave -> g_once_init_enter / g_atomic_pointer_get.
 *
 * Nothing here changes what the program does; it is never part of a
 * normal build.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <glib.h>
#include <sanitizer/tsan_interface.h>

#define REAL(ret, name, ...)                                              \
	static ret (*real_fn)(__VA_ARGS__);                               \
	if (!real_fn)                                                     \
		real_fn = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

/* the definitions below have GLib's prototypes */

void g_mutex_lock(GMutex *m)
{
	REAL(void, g_mutex_lock, GMutex *);
	real_fn(m);
	__tsan_acquire(m);
}

gboolean g_mutex_trylock(GMutex *m)
{
	REAL(gboolean, g_mutex_trylock, GMutex *);
	gboolean ok = real_fn(m);

	if (ok)
		__tsan_acquire(m);
	return ok;
}

void g_mutex_unlock(GMutex *m)
{
	REAL(void, g_mutex_unlock, GMutex *);
	__tsan_release(m);
	real_fn(m);
}

void g_rec_mutex_lock(GRecMutex *m)
{
	REAL(void, g_rec_mutex_lock, GRecMutex *);
	real_fn(m);
	__tsan_acquire(m);
}

gboolean g_rec_mutex_trylock(GRecMutex *m)
{
	REAL(gboolean, g_rec_mutex_trylock, GRecMutex *);
	gboolean ok = real_fn(m);

	if (ok)
		__tsan_acquire(m);
	return ok;
}

void g_rec_mutex_unlock(GRecMutex *m)
{
	REAL(void, g_rec_mutex_unlock, GRecMutex *);
	__tsan_release(m);
	real_fn(m);
}

void g_cond_wait(GCond *c, GMutex *m)
{
	REAL(void, g_cond_wait, GCond *, GMutex *);
	__tsan_release(m);
	real_fn(c, m);
	__tsan_acquire(m);
}

gboolean g_cond_wait_until(GCond *c, GMutex *m, gint64 end_time)
{
	REAL(gboolean, g_cond_wait_until, GCond *, GMutex *, gint64);
	gboolean ok;

	__tsan_release(m);
	ok = real_fn(c, m, end_time);
	__tsan_acquire(m);
	return ok;
}

void g_async_queue_push(GAsyncQueue *q, gpointer data)
{
	REAL(void, g_async_queue_push, GAsyncQueue *, gpointer);
	if (data)
		__tsan_release(data);
	real_fn(q, data);
}

gpointer g_async_queue_pop(GAsyncQueue *q)
{
	REAL(gpointer, g_async_queue_pop, GAsyncQueue *);
	gpointer data = real_fn(q);

	if (data)
		__tsan_acquire(data);
	return data;
}

struct pool_fn {
	GFunc func;
	gpointer user_data;
};

static void pool_trampoline(gpointer data, gpointer user)
{
	struct pool_fn *p = user;

	if (data)
		__tsan_acquire(data);
	p->func(data, p->user_data);
	__tsan_release(p); /* g_thread_pool_free(wait) returns after this */
}

/* the pools made, for g_thread_pool_free() to find their pool_fn */
#define MAX_POOLS 64
static struct {
	GThreadPool *pool;
	struct pool_fn *fn;
} pools[MAX_POOLS];
static GMutex pools_lock;

GThreadPool *g_thread_pool_new(GFunc func, gpointer user_data,
			       gint max_threads, gboolean exclusive,
			       GError **error)
{
	REAL(GThreadPool *, g_thread_pool_new, GFunc, gpointer, gint, gboolean,
	     GError **);
	/* lives as long as the program: a pool's function never changes */
	struct pool_fn *p = malloc(sizeof(*p));

	if (!p)
		return NULL;
	GThreadPool *pool;

	p->func = func;
	p->user_data = user_data;
	pool = real_fn(pool_trampoline, p, max_threads, exclusive, error);
	g_mutex_lock(&pools_lock);
	for (int i = 0; pool && i < MAX_POOLS; i++) {
		if (!pools[i].pool) {
			pools[i].pool = pool;
			pools[i].fn = p;
			break;
		}
	}
	g_mutex_unlock(&pools_lock);
	return pool;
}

void g_thread_pool_free(GThreadPool *pool, gboolean immediate, gboolean wait_)
{
	REAL(void, g_thread_pool_free, GThreadPool *, gboolean, gboolean);
	struct pool_fn *p = NULL;

	g_mutex_lock(&pools_lock);
	for (int i = 0; i < MAX_POOLS; i++) {
		if (pools[i].pool == pool) {
			p = pools[i].fn;
			pools[i].pool = NULL;
			break;
		}
	}
	g_mutex_unlock(&pools_lock);
	real_fn(pool, immediate, wait_);
	if (p && wait_)
		__tsan_acquire(p); /* every task that ran has ended */
}

gboolean g_thread_pool_push(GThreadPool *pool, gpointer data, GError **error)
{
	REAL(gboolean, g_thread_pool_push, GThreadPool *, gpointer, GError **);
	if (data)
		__tsan_release(data);
	return real_fn(pool, data, error);
}

gboolean (g_once_init_enter)(volatile void *location)
{
	REAL(gboolean, g_once_init_enter, volatile void *);
	gboolean first = real_fn(location);

	__tsan_acquire((void *)location);
	return first;
}

void (g_once_init_leave)(volatile void *location, gsize result)
{
	REAL(void, g_once_init_leave, volatile void *, gsize);
	__tsan_release((void *)location);
	real_fn(location, result);
}
