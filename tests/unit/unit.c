/*
 * unit.c - helpers shared by the unit test programs (see unit.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "unit.h"

const char *unit_errno_name(int err)
{
	static const struct {
		int err;
		const char *name;
	} names[] = {
		{ 0, "0" },	      { ENOENT, "ENOENT" },
		{ EINVAL, "EINVAL" }, { EEXIST, "EEXIST" },
		{ EIO, "EIO" },	      { ENOSPC, "ENOSPC" },
		{ EACCES, "EACCES" }, { EBUSY, "EBUSY" },
		{ E2BIG, "E2BIG" },   { ENOMEM, "ENOMEM" },
		{ EDQUOT, "EDQUOT" }, { ECANCELED, "ECANCELED" },
		{ EPERM, "EPERM" },   { ENAMETOOLONG, "ENAMETOOLONG" },
		{ EBADF, "EBADF" },   { EROFS, "EROFS" },
		{ EBADMSG, "EBADMSG" }, { EFBIG, "EFBIG" },
		{ ELOOP, "ELOOP" },   { ETIMEDOUT, "ETIMEDOUT" },
	};
	int e = err < 0 ? -err : err;

	for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
		if (names[i].err == e)
			return names[i].name;
	return err > 0 ? "positive" : "?";
}

char *unit_tmpdir(void)
{
	g_autoptr(GError) error = NULL;
	char *dir = g_dir_make_tmp("snapfs-unit-XXXXXX", &error);

	if (!dir) {
		print_error("cannot make a temporary directory: %s\n",
			    error->message);
		fail();
	}
	return dir;
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	if (remove(path) < 0)
		fprintf(stderr, "unit: cannot remove '%s': %m\n", path);
	return 0;
}

void unit_tmpdir_remove(char *dir)
{
	if (!dir)
		return;
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	g_free(dir);
}

int unit_spawn(char **argv, char **out, char **err)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *out_local = NULL;
	int status;

	/* never the test's own stdout: that is TAP */
	if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
			  out ? out : &out_local, err, &status, &error)) {
		fprintf(stderr, "unit: cannot run '%s': %s\n", argv[0],
			error->message);
		return -1;
	}
	if (!WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

void unit_write_file(const char *path, const void *buf, size_t len)
{
	g_autoptr(GError) error = NULL;

	if (!g_file_set_contents(path, buf, (gssize)len, &error)) {
		print_error("cannot write '%s': %s\n", path, error->message);
		fail();
	}
}

int unit_run(const char *name, const struct CMUnitTest *tests, size_t n)
{
	return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
}
