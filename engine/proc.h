/*
 * proc.h - run a program from an argv vector and wait for it.
 *
 * All of fork/exec lives in proc.c.  Never a shell.  Children die with the
 * thread that started them (PR_SET_PDEATHSIG), so a killed snapfs leaves no
 * qemu-img behind writing into storage; callers therefore run children
 * only from long-lived threads (the exclusive worker pool, FUSE threads).
 */
#ifndef SNAP_PROC_H
#define SNAP_PROC_H

#include <gio/gio.h>

/**
 * proc_run() - run @argv to completion
 * @out: if not NULL, on success owns the child's stdout (g_free)
 * @cancel: may be NULL; cancelling kills the child
 *
 * A non-zero exit is logged once here, with the child's stderr.
 * Return: 0 exit status 0; -ECANCELED; -ENOENT program missing;
 * otherwise image_stderr_errno() of its stderr (-EIO, -ENOSPC, -EBUSY...),
 * and on failure *@err (may be NULL) owns the stderr text.
 */
int proc_run(char *const *argv, GCancellable *cancel, char **out, char **err);

/**
 * proc_run_lines() - run @argv, calling @on_line for each line of its
 * stdout (lines end with \n or \r; stderr is merged in)
 *
 * Return and @err as proc_run(); @err collects the lines @on_line
 * returned non-zero for (text that is not progress).
 */
int proc_run_lines(char *const *argv, GCancellable *cancel,
		   int (*on_line)(const char *line, void *arg), void *arg,
		   char **err);

#endif
