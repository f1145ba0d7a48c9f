/*
 * vmdisk.c - which VM has a volume as a disk: the running VM that writes a
 * volume (its disk alias, for QMP), or any VM defined with it.  A disk is
 * a volume when its file is PRIMARY/<vol>.qcow2.
 */
#include <string.h>

#include "vmdisk.h"

/* The volume a disk is: its file must be PRIMARY/<vol>.qcow2. */
bool vmdisk_volume(struct snap_engine *eng, const struct vm_disk *disk,
			char *vol, size_t size)
{
	g_autofree char *dir = g_path_get_dirname(disk->path);
	g_autofree char *base = g_path_get_basename(disk->path);
	size_t len = strlen(base);

	if (strcmp(dir, eng->primary) != 0 || len <= 6 ||
	    strcmp(base + len - 6, ".qcow2") != 0 || len - 6 >= size)
		return false;
	memcpy(vol, base, len - 6);
	vol[len - 6] = '\0';
	return snap_name_valid(vol) == 0;
}

/*
 * Find a VM with @vol as a disk (only a running or paused one when
 * @running): its name in @user->vm and that disk's alias in @user->alias
 * (empty when QEMU gave none).  Return: 0; -ENOENT; -EAGAIN.
 */
static int find(struct snap_engine *eng, const char *vol, bool running,
		struct vm_user *user)
{
	g_auto(GStrv) names = NULL;
	char **n;
	int rc;

	if (!eng->vm)
		return -ENOENT;
	rc = vm_list(eng->vm, &names);
	if (rc < 0)
		return rc == -EAGAIN ? rc : -ENOENT;
	for (n = names; *n; n++) {
		struct vm_info info;
		guint i;
		bool found = false;

		if (vm_get(eng->vm, *n, &info) < 0)
			continue;
		if (!running || info.state == VM_STATE_RUNNING ||
		    info.state == VM_STATE_PAUSED) {
			for (i = 0; i < info.disks->len && !found; i++) {
				struct vm_disk *d = &g_array_index(info.disks, struct vm_disk, i);
				char dv[SNAP_NAME_MAX + 1];

				found = vmdisk_volume(eng, d, dv, sizeof(dv)) &&
					!strcmp(dv, vol) && (!running || d->alias[0]);
				if (found) {
					g_strlcpy(user->vm, info.name, sizeof(user->vm));
					g_strlcpy(user->alias, d->alias, sizeof(user->alias));
				}
			}
		}
		vm_info_clear(&info);
		if (found)
			return 0;
	}
	return -ENOENT;
}

int vmdisk_user_find(struct snap_engine *eng, const char *vol, struct vm_user *out)
{
	return find(eng, vol, true, out);
}

int vmdisk_vm_of(struct snap_engine *eng, const char *vol, char *vm, size_t size)
{
	struct vm_user user;
	int rc = find(eng, vol, false, &user);

	if (rc == 0)
		g_strlcpy(vm, user.vm, size);
	return rc;
}
