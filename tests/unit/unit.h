/*
 * unit.h - what the cmocka unit tests share: errno assertions that print
 * decimal codes and their names, temporary directories that are always
 * removed, running a program from an argv (never a shell).
 *
 * cmocka 1.1.5 prints a skipped case as `not ok ... # SKIP`, which meson
 * counts as a failure; so no case calls skip().  A program that cannot run
 * at all returns UNIT_SKIP (77) from main().
 */
#ifndef SNAP_UNIT_H
#define SNAP_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>
#include <glib.h>

#define UNIT_SKIP 77

/* assert_errno() - @expr (an int) must equal @want (0 or -errno). */
#define assert_errno(expr, want)                                           \
	do {                                                               \
		int unit_got_ = (expr), unit_want_ = (want);               \
		if (unit_got_ != unit_want_) {                             \
			print_error("%s = %d (%s), expected %d (%s)\n",    \
				    #expr, unit_got_,                      \
				    unit_errno_name(unit_got_), unit_want_, \
				    unit_errno_name(unit_want_));          \
			fail();                                            \
		}                                                          \
	} while (0)

/** unit_errno_name() - "ENOENT" for -ENOENT (or ENOENT), "0", "?". */
const char *unit_errno_name(int err);

/**
 * unit_tmpdir() - a new empty directory under $TMPDIR; fails the test when
 * it cannot be made.  Free with unit_tmpdir_remove().
 */
char *unit_tmpdir(void);

/** unit_tmpdir_remove() - remove @dir and everything in it, free @dir. */
void unit_tmpdir_remove(char *dir);

/**
 * unit_spawn() - run @argv (argv[0] looked up in PATH) and wait
 * @out, @err: if not NULL, receive stdout/stderr (g_free); stdout is
 *             never the test's own (TAP) stdout
 * Return: the exit status, or -1 when the program could not be run.
 */
int unit_spawn(char **argv, char **out, char **err);

/** unit_write_file() - write @len bytes to @path; fails the test on error. */
void unit_write_file(const char *path, const void *buf, size_t len);

/**
 * unit_run() - run @n cases as one group (one TAP plan), like
 * cmocka_run_group_tests() but with a count, so that a program may leave
 * out cases it cannot run (it says so in a TAP comment).
 */
int unit_run(const char *name, const struct CMUnitTest *tests, size_t n);

#endif
