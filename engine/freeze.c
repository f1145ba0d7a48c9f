/*
 * freeze.c - freeze a volume file into a layer, in constant time.
 *
 *   prepare:  link(PRIMARY/vol.qcow2, layer); qemu-img create an empty
 *             overlay over the layer as a temporary file (never opening
 *             the chain), same owner, mode and SELinux label as the
 *             volume (what libvirt gave the image QEMU writes), fsync
 *   switch:   only when a running VM has the volume open: QMP blockdev-add
 *             of each overlay and one `transaction` of blockdev-snapshot for
 *             all of a VM's disks at once, so QEMU writes the overlays from
 *             the same instant on (the guest is not paused: the transaction
 *             drains I/O itself)
 *   swap:     rename(overlay, PRIMARY/vol.qcow2), the commit point
 *
 * Undo before the swap removes the overlay and the link.  A crash between
 * the blockdev-add and the transaction leaves QEMU holding the overlay open
 * but writing the old file: recovery asks QEMU which node is on top
 * (freeze_recover_switched()) rather than who has the overlay open.  QEMU
 * keeps its file descriptors across the rename, and libvirt's definition
 * keeps naming PRIMARY/vol.qcow2, which is the overlay from then on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fault.h"
#include "fsutil.h"
#include "paths.h"
#include "testpoint.h"
#include "vmdisk.h"
#include "volume.h"
#include "freeze.h"
#include "json.h"
#include "proc.h"
#include "log.h"

void freeze_clear(struct freeze *f)
{
	g_free(f->vpath);
	g_free(f->lpath);
	g_free(f->ldir);
	g_free(f->tmp);
	memset(f, 0, sizeof(*f));
}

/*
 * Give the overlay @to the MAC label of the volume file @from: the label
 * libvirt's SELinux driver put on the image when it started the VM (an
 * svirt_image_t with the VM's categories), which QEMU is confined to.
 * A file system or host without labels has nothing to copy.
 */
static int copy_label(const char *from, const char *to)
{
	static const char name[] = "security.selinux";
	char label[256];
	ssize_t n = lgetxattr(from, name, label, sizeof(label));

	if (n < 0)
		return errno == ENODATA || errno == ENOTSUP ? 0 : -errno;
	if (lsetxattr(to, name, label, (size_t)n, 0) < 0)
		return -errno;
	return 0;
}

/*
 * Give the overlay @tmp the owner, mode and label the volume file @vpath
 * has now.  At prepare, for a running VM's switch; again at the swap, for
 * a memory snapshot: the save stopped QEMU and libvirt gave the volume
 * file back to its owner meanwhile, and the restore must find the overlay
 * owned as the file it replaces (libvirt remembers that owner, to give it
 * back at the VM's stop).  Logged.
 */
static int take_owner(const char *vpath, const char *tmp)
{
	struct stat st;
	int rc;

	if (lstat(vpath, &st) < 0 || chown(tmp, st.st_uid, st.st_gid) < 0 ||
	    chmod(tmp, st.st_mode & 07777) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "freeze: cannot give '%s' the owner of '%s': %m",
			 tmp, vpath);
		return rc;
	}
	rc = copy_label(vpath, tmp);
	if (rc < 0)
		snap_log(LOG_ERR, "freeze: cannot give '%s' the label of '%s': %s",
			 tmp, vpath, g_strerror(-rc));
	return rc;
}

int freeze_prepare(struct snap_engine *eng, struct freeze *f, const char *vol,
		   const char *uuid)
{
	struct qcow2_header hdr;
	g_auto(GStrv) argv = NULL;
	struct stat st;
	int rc;

	memset(f, 0, sizeof(*f));
	g_strlcpy(f->vol, vol, sizeof(f->vol));
	g_strlcpy(f->uuid, uuid, sizeof(f->uuid));
	f->vpath = volume_path(eng, vol);
	f->lpath = layer_path(eng, vol, uuid);
	f->ldir = layer_dir(eng, vol);
	f->tmp = freeze_tmp_path(eng, vol, uuid);

	rc = volume_read_header(f->vpath, &hdr);
	if (rc < 0) {
		rc = rc == -ENOENT ? rc : -EIO;
		goto free_paths;
	}
	f->size = hdr.virtual_size;
	if (lstat(f->vpath, &st) < 0) {
		rc = -errno;
		goto free_paths;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		snap_log(LOG_ERR, "freeze: '%s' is not a regular file with one link: refused",
			 f->vpath);
		rc = -EIO;
		goto free_paths;
	}
	rc = chain_mkdir(f->ldir);
	if (rc < 0) {
		rc = rc == -ELOOP ? -EIO : rc;
		goto free_paths;
	}
	if (link(f->vpath, f->lpath) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "freeze: cannot link '%s' to '%s': %m",
			 f->vpath, f->lpath);
		goto free_paths;
	}
	f->step = FREEZE_LINKED;
	argv = image_argv_overlay(f->lpath, f->tmp, f->size);
	rc = proc_run(argv, NULL, NULL, NULL);
	if (rc < 0)
		goto undo_files;
	f->step = FREEZE_OVERLAY;
	rc = take_owner(f->vpath, f->tmp);
	if (rc < 0)
		goto undo_files;
	rc = fsync_path(f->tmp);
	if (rc == 0)
		rc = fsync_dir(f->ldir);
	if (rc < 0)
		goto undo_files;
	return 0;

undo_files:
	freeze_undo(f);
free_paths:
	freeze_clear(f);
	return rc;
}

void freeze_undo(struct freeze *f)
{
	if (f->step >= FREEZE_SWAPPED)
		return; /* past the commit point: the layer is real */
	if (f->step >= FREEZE_OVERLAY)
		unlink(f->tmp);
	if (f->step >= FREEZE_LINKED)
		unlink(f->lpath);
	f->step = 0;
}

/*
 * libvirt's security drivers (remember_owner, on by default) keep in
 * trusted.libvirt.security.* xattrs of each image they labelled the owner
 * and label to give back when the VM stops, and find the image again by
 * its path.  After the swap, the volume's path names the overlay and the
 * old inode is a layer QEMU only reads: the remembered values move to the
 * overlay (given back to it at the VM's stop), and the layer gets at once
 * what libvirt would have given back (docs/design.md, "Owners and
 * labels").  Left on the layer, they would count it in use for ever, and
 * a later change of its owner would make libvirt refuse to start the VM.
 * No xattrs (the embedded driver, a VM that was stopped): nothing to do.
 * Past the commit point: a failure is logged, never returned.
 */
static void hand_over_labels(const char *layer, const char *top)
{
	static const char prefix[] = "trusted.libvirt.security.";
	char names[4096], value[512];
	ssize_t n = llistxattr(layer, names, sizeof(names) - 1);
	const char *name;
	unsigned uid, gid;
	ssize_t len;

	if (n <= 0)
		return;
	names[n] = '\0';
	for (name = names; name < names + n; name += strlen(name) + 1) {
		if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
			continue;
		len = lgetxattr(layer, name, value, sizeof(value) - 1);
		if (len < 0 || lsetxattr(top, name, value, (size_t)len, 0) < 0) {
			snap_log(LOG_WARNING, "freeze: cannot move libvirt's '%s' from '%s' to '%s': %m",
				 name, layer, top);
			continue;
		}
		value[len] = '\0';
		if (!strcmp(name + sizeof(prefix) - 1, "dac") &&
		    sscanf(value, "+%u:+%u", &uid, &gid) == 2 &&
		    lchown(layer, uid, gid) < 0)
			snap_log(LOG_WARNING, "freeze: cannot give '%s' back to %u:%u: %m",
				 layer, uid, gid);
		if (!strcmp(name + sizeof(prefix) - 1, "selinux") &&
		    lsetxattr(layer, "security.selinux", value, (size_t)len + 1, 0) < 0)
			snap_log(LOG_WARNING, "freeze: cannot give '%s' back its label: %m",
				 layer);
		lremovexattr(layer, name);
	}
}

int freeze_swap(struct snap_engine *eng, struct freeze *f)
{
	take_owner(f->vpath, f->tmp); /* a failure leaves the prepare's owner */
	if (fault("rename.swap", EIO) || rename(f->tmp, f->vpath) < 0) {
		int rc = -errno;

		snap_log(LOG_ERR, "freeze: cannot rename '%s': %m", f->tmp);
		return rc;
	}
	f->step = FREEZE_SWAPPED;
	fsync_dir(eng->primary);
	hand_over_labels(f->lpath, f->vpath);
	return 0;
}

int freeze_unswap(struct snap_engine *eng, struct freeze *f)
{
	int rc;

	if (f->step != FREEZE_SWAPPED)
		return 0;
	if (rename(f->lpath, f->vpath) < 0) {
		rc = -errno;
		snap_log(LOG_ERR, "freeze: cannot put '%s' back over '%s': %m",
			 f->lpath, f->vpath);
		return rc;
	}
	f->step = FREEZE_NONE;
	fsync_dir(eng->primary);
	fsync_dir(f->ldir);
	return 0;
}

/* The QEMU node name of the overlay of layer @uuid: at most 31 bytes,
 * "snapfs-" and 20 hex digits of the uuid. */
static void overlay_node(const char *uuid, char node[32])
{
	g_snprintf(node, 32, "snapfs-%.8s%.4s%.4s%.4s", uuid, uuid + 9,
		   uuid + 14, uuid + 19);
}

/* The node QEMU attaches to the disk with libvirt alias @alias. */
static int top_node(struct jdoc *reply, const char *alias, char *node,
		    size_t size)
{
	g_autofree char *part = g_strdup_printf("/%s/", alias);
	g_autofree char *tail = g_strdup_printf("/%s", alias);
	int i, n = jdoc_array_len(reply, "return");

	for (i = 0; i < n; i++) {
		struct jdoc *dev = jdoc_array_obj(reply, "return", i);
		const char *qdev = dev ? jdoc_get_str(dev, "qdev") : NULL;
		const char *devname = dev ? jdoc_get_str(dev, "device") : NULL;
		struct jdoc *ins = dev ? jdoc_get_obj(dev, "inserted") : NULL;
		const char *nn = ins ? jdoc_get_str(ins, "node-name") : NULL;

		if (!nn)
			continue;
		if ((qdev && (strstr(qdev, part) || g_str_has_suffix(qdev, tail))) ||
		    (devname && !strcmp(devname, alias))) {
			g_strlcpy(node, nn, size);
			return 0;
		}
	}
	return -ENOENT;
}

int freeze_switch_running(struct snap_engine *eng, struct vm_conn *vmc,
			  const char *vm, struct freeze *fs, const char **aliases,
			  int n)
{
	g_autofree char *reply = NULL;
	g_autoptr(GString) actions = g_string_new(NULL);
	struct jdoc *d = NULL;
	char (*nodes)[32] = g_malloc0_n((gsize)n, 32);
	int i, added = 0, rc;

	rc = vm_qmp(vmc, vm, "{\"execute\":\"query-block\"}", &reply);
	if (rc < 0)
		goto out;
	rc = jdoc_parse(reply, &d);
	if (rc < 0)
		goto out;
	for (i = 0; i < n && rc == 0; i++) {
		char old[64];
		g_autofree char *file = json_quote(fs[i].tmp);
		g_autofree char *cmd = NULL;

		rc = top_node(d, aliases[i], old, sizeof(old));
		if (rc < 0) {
			snap_log(LOG_ERR, "freeze: no block node for disk '%s' of '%s'",
				 aliases[i], vm);
			break;
		}
		overlay_node(fs[i].uuid, nodes[i]);
		cmd = g_strdup_printf(
			"{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"qcow2\","
			"\"node-name\":\"%s\",\"file\":{\"driver\":\"file\",\"filename\":%s},"
			"\"backing\":null}}", nodes[i], file);
		rc = vm_qmp(vmc, vm, cmd, NULL);
		if (rc < 0)
			break;
		added++;
		g_string_append_printf(actions,
			"%s{\"type\":\"blockdev-snapshot\",\"data\":{\"node\":\"%s\","
			"\"overlay\":\"%s\"}}", i ? "," : "", old, nodes[i]);
	}
	if (rc == 0)
		testpoint("freeze.added");
	if (rc == 0) {
		g_autofree char *cmd = g_strdup_printf(
			"{\"execute\":\"transaction\",\"arguments\":{\"actions\":[%s]}}",
			actions->str);

		gint64 t0 = g_get_monotonic_time();

		rc = vm_qmp(vmc, vm, cmd, NULL);
		/* the transaction drains the disks' I/O: the guest's only pause */
		snap_log(LOG_INFO, "freeze: switched %d disk(s) of '%s' in %.1f ms",
			 n, vm, (double)(g_get_monotonic_time() - t0) / 1000.0);
	}
	if (rc < 0) {
		for (i = 0; i < added; i++) {
			g_autofree char *cmd = g_strdup_printf(
				"{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"%s\"}}",
				nodes[i]);

			vm_qmp(vmc, vm, cmd, NULL);
		}
	}
out:
	jdoc_free(d);
	g_free(nodes);
	return rc;
}

/* Whether @vm's QEMU has node @node on top of the disk with alias @alias. */
static int node_on_top(struct vm_conn *vmc, const char *vm, const char *alias,
		       const char *node)
{
	g_autofree char *reply = NULL;
	struct jdoc *d = NULL;
	char top[64];
	int rc;

	rc = vm_qmp(vmc, vm, "{\"execute\":\"query-block\"}", &reply);
	if (rc == 0)
		rc = jdoc_parse(reply, &d);
	if (rc == 0)
		rc = top_node(d, alias, top, sizeof(top));
	jdoc_free(d);
	return rc < 0 ? rc : !strcmp(top, node);
}

bool freeze_recover_switched(struct snap_engine *eng, const char *vol,
			     const char *uuid)
{
	g_autofree char *tmp = freeze_tmp_path(eng, vol, uuid);
	g_autofree char *cmd = NULL;
	struct vm_user user;
	char node[32];
	int rc;

	if (volume_in_use(tmp) <= 0)
		return false;
	overlay_node(uuid, node);
	if (vmdisk_user_find(eng, vol, &user) < 0) {
		snap_log(LOG_ERR, "freeze: '%s' is open for writing, but by no VM snapfs knows: taken as switched",
			 tmp);
		return true;
	}
	rc = node_on_top(eng->vm, user.vm, user.alias, node);
	if (rc != 0) {
		if (rc < 0)
			snap_log(LOG_ERR, "freeze: cannot ask VM '%s' which node it writes; '%s' taken as switched",
				 user.vm, tmp);
		return true;
	}
	/* added, never switched to: QEMU still writes the volume file */
	cmd = g_strdup_printf("{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"%s\"}}",
			      node);
	rc = vm_qmp(eng->vm, user.vm, cmd, NULL);
	if (rc < 0 || volume_in_use(tmp) > 0) {
		snap_log(LOG_ERR, "freeze: VM '%s' keeps '%s' open though it writes the volume file; taken as switched",
			 user.vm, tmp);
		return true;
	}
	snap_log(LOG_INFO, "freeze: VM '%s' had added '%s' but not switched to it: closed",
		 user.vm, tmp);
	return false;
}
