/*
 * errname.c - errno values as their symbolic names ("ENOSPC"), for events
 * and logs.
 */
#include <errno.h>

#include <glib.h>

#include "errname.h"

static const struct {
	int err;
	const char *name;
} errno_names[] = {
	{ EPERM, "EPERM" },	{ ENOENT, "ENOENT" },	{ EIO, "EIO" },
	{ ENOMEM, "ENOMEM" },	{ EACCES, "EACCES" },	{ EBUSY, "EBUSY" },
	{ EEXIST, "EEXIST" },	{ EXDEV, "EXDEV" },	{ ENOTDIR, "ENOTDIR" },
	{ EISDIR, "EISDIR" },	{ EINVAL, "EINVAL" },	{ ENOSPC, "ENOSPC" },
	{ EROFS, "EROFS" },	{ ENAMETOOLONG, "ENAMETOOLONG" },
	{ ENOTEMPTY, "ENOTEMPTY" }, { EDQUOT, "EDQUOT" },
	{ EOPNOTSUPP, "EOPNOTSUPP" }, { ECANCELED, "ECANCELED" },
	{ ETIMEDOUT, "ETIMEDOUT" }, { EAGAIN, "EAGAIN" }, { EFBIG, "EFBIG" },
	{ ENOTSUP, "ENOTSUP" }, { ESTALE, "ESTALE" },
};

const char *errno_name(int err)
{
	size_t i;

	if (err < 0)
		err = -err;
	for (i = 0; i < G_N_ELEMENTS(errno_names); i++)
		if (errno_names[i].err == err)
			return errno_names[i].name;
	return "EIO";
}
