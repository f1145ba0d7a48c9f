/*
 * backedup.c - the backed-up/ tree: which volumes have backups, their
 * backed-up snapshots, and the files behind each.
 */
#include <errno.h>
#include <sys/stat.h>

#include "paths.h"

int snap_backup_volumes(struct snap_engine *eng, char ***names_out)
{
	return catalog_backup_volume_names(eng->cat, names_out);
}

int snap_backup_list(struct snap_engine *eng, const char *vol,
		     char ***names_out)
{
	struct catalog_volume v;
	int rc = snap_name_valid(vol);

	if (rc < 0)
		return -ENOENT;
	rc = catalog_volume_get(eng->cat, vol, &v);
	if (rc < 0)
		return rc;
	return catalog_snapshot_names(eng->cat, v.id, true, names_out);
}

int snap_backup_dir_mtime(struct snap_engine *eng, const char *vol,
			  struct timespec *mtime_out)
{
	g_autofree char *dir = NULL;
	struct stat st;

	if (vol && snap_name_valid(vol) < 0)
		return -ENOENT;
	dir = vol ? g_build_filename(eng->backups_dir, vol, NULL) :
		    g_strdup(eng->backups_dir);
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOENT;
	*mtime_out = st.st_mtim;
	return 0;
}

int snap_backup_paths(struct snap_engine *eng, const char *vol,
		      const char *snap, uint64_t *id_out, char **image_out,
		      char **manifest_out)
{
	struct catalog_volume v;
	struct catalog_snapshot s;
	int rc;

	if (snap_name_valid(vol) < 0 || snap_name_valid(snap) < 0)
		return -ENOENT;
	rc = catalog_volume_get(eng->cat, vol, &v);
	if (rc == 0)
		rc = catalog_snapshot_get(eng->cat, v.id, snap, &s);
	if (rc < 0)
		return rc;
	if (s.state != SNAP_STATE_BACKED_UP)
		return -ENOENT;
	if (id_out)
		*id_out = (uint64_t)s.id;
	if (image_out)
		*image_out = backup_image_path(eng, &s);
	if (manifest_out)
		*manifest_out = backup_manifest_path(eng, &s);
	return 0;
}
