/*
 * test_repo_lease.c - engine/repo_lease.c: SECONDARY/.leases/<host>.
 * A host's lease round-trips; the lowest start of the other hosts' leases
 * is what GC gets, this host's own skipped; a lease that is not one (junk,
 * a link, a directory, an empty file) makes GC keep everything (0); no
 * .leases at all is no lease; temporary files are not leases.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>

#include "unit.h"
#include "repo_lease.h"

static void put(const char *root, const char *name, const char *text)
{
	g_autofree char *path = g_build_filename(root, LEASE_DIR, name, NULL);

	assert_true(g_file_set_contents(path, text, -1, NULL));
}

static void test_round_trip_and_lowest(void **state)
{
	char *root = unit_tmpdir();
	int64_t oldest;
	unsigned hosts;

	assert_int_equal(lease_others(root, "a", &oldest, &hosts), 0);
	assert_true(oldest == INT64_MAX && hosts == 0); /* no .leases yet */
	assert_int_equal(lease_write(root, "a", 100), 0);
	assert_int_equal(lease_others(root, "a", &oldest, &hosts), 0);
	assert_true(oldest == INT64_MAX && hosts == 0); /* its own: skipped */
	assert_int_equal(lease_others(root, "b", &oldest, &hosts), 0);
	assert_true(oldest == 100 && hosts == 1);
	assert_int_equal(lease_write(root, "c", 50), 0);
	assert_int_equal(lease_write(root, "d", -1), 0); /* idle */
	assert_int_equal(lease_others(root, "b", &oldest, &hosts), 0);
	assert_true(oldest == 50 && hosts == 3);
	assert_int_equal(lease_write(root, "c", -1), 0);
	assert_int_equal(lease_write(root, "a", -1), 0);
	assert_int_equal(lease_others(root, "b", &oldest, &hosts), 0);
	assert_true(oldest == INT64_MAX && hosts == 3);
	put(root, ".e.tmp", "junk"); /* a write in progress: not a lease */
	assert_int_equal(lease_others(root, "b", &oldest, &hosts), 0);
	assert_true(oldest == INT64_MAX && hosts == 3);
	unit_tmpdir_remove(root);
}

static void test_not_a_lease_keeps_everything(void **state)
{
	static const char *const bad[] = {
		"", "oldest\n", "oldest -5\n", "oldest 12", "oldest 12\nidle\n",
		"oldest 12x\n", "idle", "busy\n", "oldest 99999999999999999999999\n",
	};
	char *root = unit_tmpdir();
	g_autofree char *dir = g_build_filename(root, LEASE_DIR, NULL);
	g_autofree char *sub = g_build_filename(dir, "sub", NULL);
	g_autofree char *link = g_build_filename(dir, "link", NULL);
	g_autofree char *x = g_build_filename(dir, "x", NULL);
	int64_t oldest;
	unsigned hosts;

	assert_int_equal(lease_write(root, "a", 100), 0);
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		put(root, "x", bad[i]);
		assert_int_equal(lease_others(root, "a", &oldest, &hosts), 0);
		if (!(oldest == 0 && hosts == 1))
			fail_msg("bad[%zu] gives oldest %lld hosts %u", i, (long long)oldest, hosts);
	}
	unlink(x);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(lease_others(root, "a", &oldest, &hosts), 0);
	assert_true(oldest == 0);
	rmdir(sub);
	assert_int_equal(symlink("/etc/hostname", link), 0);
	assert_int_equal(lease_others(root, "a", &oldest, &hosts), 0);
	assert_true(oldest == 0);
	unit_tmpdir_remove(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_and_lowest),
		cmocka_unit_test(test_not_a_lease_keeps_everything),
	};

	return unit_run("repo_lease", tests, G_N_ELEMENTS(tests));
}
