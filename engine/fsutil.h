/*
 * fsutil.h - directories that are never links, and durability.
 *
 * Each function logs its own failure (the path and the reason) and
 * returns 0 or -errno; none takes a lock.
 */
#ifndef SNAP_FSUTIL_H
#define SNAP_FSUTIL_H

#include <stdbool.h>
#include <sys/types.h>

/**
 * safe_mkdir() - make directory @path (its parent exists) or accept the
 * one there, which must be a real directory, never a symbolic link.
 * Return: 0; -ELOOP a link or another kind of file (logged); -errno.
 */
int safe_mkdir(const char *path, mode_t mode);
/**
 * chain_mkdir() - safe_mkdir() for a directory that holds files of a disk's
 * backing chain: 0711, and one made 0700 by an older snapfs gets the
 * search bits added, so an unprivileged QEMU (qemu:///system runs it as
 * libvirt-qemu) can open the files it is told about without being able
 * to list the directory (docs/design.md, "Owners and labels").
 * Return: as safe_mkdir(); -errno from chmod (logged).
 */
int chain_mkdir(const char *path);
/** fsync_dir() - make a directory's entries durable. */
int fsync_dir(const char *dir);
/** fsync_path() - fsync a file by name. */
int fsync_path(const char *path);
/**
 * tmp_name_mine() - whether temporary file @name on SECONDARY is this
 * host's to remove at start: tagged "<@host>@..." (after any leading
 * '.'), or untagged (made before temporary files named their host, issue
 * 14).  Another host's ("<other>@...") is not: it may be writing it now.
 */
bool tmp_name_mine(const char *name, const char *host);

#endif
