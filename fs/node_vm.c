/*
 * node_vm.c - vms/: a VM's directory, info, state, control and
 * snapshot-options, links to its volumes, its snapshots and the links
 * current and parent.
 *
 * Everything under vms/<vm>/ belongs to the VM's account: each stat
 * starts from snap_vm_stat(), so a VM unknown to the engine is ENOENT
 * everywhere below it.
 */
#include <errno.h>
#include <string.h>

#include "nodes.h"

int list_vms(const struct node *n, struct lister *l)
{
	g_auto(GStrv) names = NULL;
	int rc = snap_vm_list(node_engine(), &names);

	lister_add_names(l, n, names, NODE_VM);
	return rc < 0 ? rc : 0;
}

/* The VM's directory and files: the VM's owner and id. */
int stat_of_vm(const struct node *n, struct stat *st)
{
	struct snap_vm_stat vs;
	int rc = snap_vm_stat(node_engine(), n->vm, &vs);

	if (rc < 0)
		return rc;
	fill_node(st, n, vs.id);
	own(st, vs.uid, vs.gid);
	return 0;
}

/* chown of a VM gives it (and all it has) to an account */
int chown_vm(const struct node *n, uid_t uid, gid_t gid)
{
	return snap_vm_chown(node_engine(), n->vm, uid, gid);
}

int read_vm_info(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_vm_info(node_engine(), n->vm, data), data, len);
}

int read_vm_state(const struct node *n, char **data, size_t *len)
{
	g_autofree char *word = NULL;
	int rc = snap_vm_state(node_engine(), n->vm, &word);

	*data = NULL;
	if (rc < 0)
		return rc;
	*data = g_strdup_printf("%s\n", word);
	*len = strlen(*data);
	return 0;
}

int read_vm_control(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_vm_control_text(node_engine(), n->vm, data),
			     data, len);
}

int write_vm_control(const struct node *n, const char *buf, size_t size)
{
	return snap_vm_control(node_engine(), n->vm, buf, size);
}

int read_vm_options(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_vm_options_read(node_engine(), n->vm, data),
			     data, len);
}

int write_vm_options(const struct node *n, const char *buf, size_t size)
{
	return snap_vm_options_write(node_engine(), n->vm, buf, size);
}

/* ---- links ------------------------------------------------------------ */

/*
 * The stat of link @n, owned by the VM: its target's length, the VM's
 * inode (the caller may give it the inode of what the link stands for).
 */
static int stat_link(const struct node *n, struct stat *st)
{
	struct snap_vm_stat vs;
	g_autofree char *target = NULL;
	int rc;

	rc = snap_vm_stat(node_engine(), n->vm, &vs);
	if (rc < 0)
		return rc;
	rc = node_ops[n->kind].link(n, &target);
	if (rc < 0)
		return rc;
	st->st_mode = S_IFLNK | 0777;
	st->st_nlink = 1;
	st->st_size = (off_t)strlen(target);
	st->st_ino = INO(vs.id, n->kind);
	st->st_uid = vs.uid;
	st->st_gid = vs.gid;
	return 0;
}

int list_vm_volumes(const struct node *n, struct lister *l)
{
	g_auto(GStrv) names = NULL;
	int rc = snap_vm_volumes(node_engine(), n->vm, &names);

	lister_add_names(l, n, names, NODE_VM_VOLUME_LINK);
	return rc < 0 ? rc : 0;
}

/* the link's inode is its volume's, while the volume is known */
int stat_vm_volume_link(const struct node *n, struct stat *st)
{
	struct snap_volume_stat vol;
	int rc = stat_link(n, st);

	if (rc == 0 && snap_volume_stat(node_engine(), n->vol, &vol) == 0)
		st->st_ino = INO(vol.id, n->kind);
	return rc;
}

int link_vm_volume(const struct node *n, char **target)
{
	g_auto(GStrv) vols = NULL;
	int rc = snap_vm_volumes(node_engine(), n->vm, &vols);

	if (rc < 0)
		return rc;
	if (!g_strv_contains((const char *const *)vols, n->vol))
		return -ENOENT;
	*target = g_strdup_printf("../../../volumes/%s", n->vol);
	return 0;
}

/* ---- snapshots/ ------------------------------------------------------- */

int list_vm_snapshots(const struct node *n, struct lister *l)
{
	g_auto(GStrv) names = NULL;
	int rc;

	list_fixed(n, l); /* current */
	rc = snap_vm_snapshot_list(node_engine(), n->vm, &names);
	lister_add_names(l, n, names, NODE_VM_SNAPSHOT);
	return rc < 0 ? rc : 0;
}

int stat_vm_current(const struct node *n, struct stat *st)
{
	return stat_link(n, st);
}

int link_vm_current(const struct node *n, char **target)
{
	return snap_vm_current(node_engine(), n->vm, target);
}

/* A VM snapshot's directory and info: the VM's owner, the snapshot's id
 * and creation time. */
int stat_of_vm_snapshot(const struct node *n, struct stat *st)
{
	struct snap_vm_snapshot_stat ss;
	struct snap_vm_stat vs;
	int rc;

	rc = snap_vm_stat(node_engine(), n->vm, &vs);
	if (rc < 0)
		return rc;
	rc = snap_vm_snapshot_stat(node_engine(), n->vm, n->snap, &ss);
	if (rc < 0)
		return rc;
	fill_node(st, n, ss.id);
	fill_times(st, ss.created_at);
	own(st, vs.uid, vs.gid);
	return 0;
}

/* all the VM's disks at one instant (mkdir of "current" tries, too) */
int mkdir_vm_snapshot(const struct node *n, const char *name)
{
	return snap_vm_snapshot_take(node_engine(), n->vm, name);
}

int rmdir_vm_snapshot(const struct node *n)
{
	return snap_vm_snapshot_delete(node_engine(), n->vm, n->snap);
}

int read_vm_snapshot_info(const struct node *n, char **data, size_t *len)
{
	*data = NULL;
	return node_text_len(snap_vm_snapshot_info(node_engine(), n->vm, n->snap,
						   data),
			     data, len);
}

/* the link's inode is its snapshot's */
int stat_vm_snapshot_parent(const struct node *n, struct stat *st)
{
	struct snap_vm_snapshot_stat ss;
	int rc = stat_link(n, st);

	if (rc == 0 && snap_vm_snapshot_stat(node_engine(), n->vm, n->snap, &ss) == 0)
		st->st_ino = INO(ss.id, n->kind);
	return rc;
}

int link_vm_snapshot_parent(const struct node *n, char **target)
{
	struct snap_vm_snapshot_stat ss;
	int rc = snap_vm_snapshot_stat(node_engine(), n->vm, n->snap, &ss);

	if (rc < 0)
		return rc;
	if (!ss.parent[0])
		return -ENOENT;
	*target = g_strdup_printf("../%s", ss.parent);
	return 0;
}
