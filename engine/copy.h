/*
 * copy.h - standalone qcow2 copies of a snapshot's data (see copy.c).
 */
#ifndef SNAP_COPY_H
#define SNAP_COPY_H

#include <stdint.h>
#include <gio/gio.h>

struct running_job;

/**
 * copy_image() - `qemu-img convert` @src (with its backing chain) into the
 * standalone qcow2 @dst, progress in @rj->bytes_done out of @vsize bytes,
 * cancelled by @rj->cancel.  @dst is removed on failure, and *@why says
 * what failed (@where names the storage @dst is on, for "... is full").
 * Return: 0; -ECANCELED; -ENOSPC; -EIO...
 */
int copy_image(struct running_job *rj, const char *src, const char *dst,
	       uint64_t vsize, const char *where, GString *why);

/**
 * copy_verify() - @path is a qcow2 that `qemu-img check` finds clean, with
 * no backing file and @vsize bytes of virtual size.
 * Return: 0; -ECANCELED; -EIO (and *@why).
 */
int copy_verify(const char *path, GCancellable *cancel, uint64_t vsize,
		GString *why);

#endif
