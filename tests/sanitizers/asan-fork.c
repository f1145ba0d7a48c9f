/*
 * asan-fork.c - keep fork() children of the ASan daemon from hanging
 * (tools/sanitize.sh links this object into every program of its
 * ASan+UBSan build; never part of a normal build).
 *
 * libvirt forks (dmidecode at every mount, each QEMU start) and its child
 * calls opendir(), which mallocs 32 KiB, before it execs.  glibc's own
 * malloc takes its locks across fork(); GCC 12's ASan allocator does not,
 * so when another thread is refilling that size class at the instant of
 * the fork, the child waits for ever on a lock no thread of it holds,
 * keeping the FUSE device open: the mount hangs.  The other thread is
 * snapfs's QEMU reaper (vm.c), which opens /proc/self/task every 20 ms.
 *
 * So here opendir() and closedir() (which may give the block back to the
 * shared allocator) on one side and fork() on the other exclude each
 * other: the first two run under a read lock, and a pthread_atfork()
 * handler takes the write lock for the duration of the fork.  Defined in
 * the executable, these take precedence over libc's for libglib and
 * libvirt too.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>

static pthread_rwlock_t fork_lock = PTHREAD_RWLOCK_INITIALIZER;

DIR *opendir(const char *name)
{
	static DIR *(*real_opendir)(const char *);
	DIR *d;

	if (!real_opendir)
		real_opendir = (DIR * (*)(const char *)) dlsym(RTLD_NEXT, "opendir");
	pthread_rwlock_rdlock(&fork_lock);
	d = real_opendir(name);
	pthread_rwlock_unlock(&fork_lock);
	return d;
}

int closedir(DIR *d)
{
	static int (*real_closedir)(DIR *);
	int rc;

	if (!real_closedir)
		real_closedir = (int (*)(DIR *))dlsym(RTLD_NEXT, "closedir");
	pthread_rwlock_rdlock(&fork_lock);
	rc = real_closedir(d);
	pthread_rwlock_unlock(&fork_lock);
	return rc;
}

static void before_fork(void)
{
	pthread_rwlock_wrlock(&fork_lock);
}

static void after_fork_parent(void)
{
	pthread_rwlock_unlock(&fork_lock);
}

/* The child's one thread has another TID than the writer glibc recorded,
 * so an unlock would be taken for a reader's: start the lock afresh. */
static void after_fork_child(void)
{
	static const pthread_rwlock_t fresh = PTHREAD_RWLOCK_INITIALIZER;

	fork_lock = fresh;
}

__attribute__((constructor)) static void asan_fork_init(void)
{
	pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}
