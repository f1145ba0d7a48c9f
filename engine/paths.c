/*
 * paths.c - where each file of a volume lives: the volume file in PRIMARY,
 * its layers under PRIMARY/.snapfs/<vol>/, its backups under
 * SECONDARY/volumes/<vol>/, and the temporary names on both.
 */
#include "paths.h"

char *volume_path(struct snap_engine *eng, const char *vol)
{
	return g_strdup_printf("%s/%s.qcow2", eng->primary, vol);
}

char *layer_dir(struct snap_engine *eng, const char *vol)
{
	return g_strdup_printf("%s/%s", eng->layers_dir, vol);
}

char *layer_path(struct snap_engine *eng, const char *vol, const char *uuid)
{
	return g_strdup_printf("%s/%s/%s.qcow2", eng->layers_dir, vol, uuid);
}

char *backup_image_path(struct snap_engine *eng, const struct catalog_snapshot *s)
{
	return g_strdup_printf("%s/%s/%s.qcow2", eng->backups_dir, s->volume,
			       s->uuid);
}

char *backup_manifest_path(struct snap_engine *eng,
			   const struct catalog_snapshot *s)
{
	return g_strdup_printf("%s/%s/%s.json", eng->backups_dir, s->volume,
			       s->uuid);
}

char *backup_index_path(struct snap_engine *eng,
			const struct catalog_snapshot *s)
{
	return g_strdup_printf("%s/%s/%s.index", eng->backups_dir, s->volume,
			       s->uuid);
}

char *backup_tmp_path(struct snap_engine *eng, const struct catalog_snapshot *s,
		      const char *suffix)
{
	/* named by host: hosts sharing SECONDARY clear only their own at
	 * start (tmp_name_mine()) */
	return g_strdup_printf("%s/%s@%s.%s", eng->tmp_dir, eng->host, s->uuid,
			       suffix);
}

char *freeze_tmp_path(struct snap_engine *eng, const char *vol,
		      const char *uuid)
{
	return g_strdup_printf("%s/%s/.%s.overlay", eng->layers_dir, vol, uuid);
}

char *backup_object_name(const struct catalog_snapshot *s, const char *ext)
{
	/* the file's path relative to SECONDARY (backup_index_path()...) */
	return g_strdup_printf("volumes/%s/%s.%s", s->volume, s->uuid, ext);
}
