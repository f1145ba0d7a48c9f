/*
 * vms.c - VMs and VM snapshots.
 *
 * A VM is a libvirt domain (vm.c).  A VM snapshot is, for each of its
 * disks (which must be volumes), a layer frozen at one instant, plus for
 * disk+memory snapshots a libvirt save file of its memory:
 *
 *   disk, VM stopped     freeze each disk (freeze.c), swap
 *   disk, VM running     freeze each disk, switch them all in QEMU with one
 *                        QMP transaction (no guest pause), swap
 *   disk+memory          save (the VM stops), freeze and swap each disk,
 *                        restore from the save file (the VM runs again)
 *
 * Revert puts a new empty overlay over each of the snapshot's layers in
 * place of the volume file (the current state is discarded; later
 * snapshots keep their own layers), then restores the memory for a
 * disk+memory snapshot (ends running) or leaves the VM stopped.
 *
 * DESIGN: operations on one VM run one at a time (eng->vms->busy, under
 * eng->lock, waited for on eng->vms->idle); disks are taken in volume-id order through the
 * volume busy flags, after the VM's, so VM and volume operations never
 * deadlock.  No lock is held across libvirt or qemu-img.
 */
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "vms.h"
#include "accounts.h"
#include "clock.h"
#include "control_results.h"
#include "events.h"
#include "gone.h"
#include "layer.h"
#include "paths.h"
#include "revert.h"
#include "testpoint.h"
#include "vmdisk.h"
#include "volume.h"
#include "wake.h"
#include "freeze.h"
#include "take.h"
#include "json.h"
#include "settings.h"
#include "log.h"

/* The module's state (eng->vms): which VMs an operation runs on. */
struct vms {
	GHashTable *busy; /* VM uuid -> itself (eng->lock) */
	GCond idle;	  /* a VM left busy */
};

#define VM_AGENT_TIMEOUT 5

static const char *const vm_snapshot_state_names[VM_SNAPSHOT_STATE_LAST] = {
	[VM_SNAPSHOT_CREATING] = "Creating",
	[VM_SNAPSHOT_READY] = "Ready",
	[VM_SNAPSHOT_REVERTING] = "Reverting",
	[VM_SNAPSHOT_EXPUNGING] = "Expunging",
	[VM_SNAPSHOT_ERROR] = "Error",
};

static char *vms_target(const char *vm, const char *snap)
{
	return snap ? g_strdup_printf("vms/%s/snapshots/%s", vm, snap) :
		      g_strdup_printf("vms/%s", vm);
}

static char *memory_path(struct snap_engine *eng, const char *uuid)
{
	return g_strdup_printf("%s/.memory/%s.save", eng->layers_dir, uuid);
}

static void vms_forget_undefined(struct snap_engine *eng);

/* ---- start and stop ---------------------------------------------------- */

/* vm.c tells of a libvirtd going away and coming back: one event each. */
static void libvirt_changed(void *data, bool up, const char *reason)
{
	struct snap_engine *eng = data;

	if (up)
		event_record_vm(eng, "libvirt.reconnected", NULL, NULL, 0,
				"libvirt answers again; VM operations work again");
	else
		event_record_vm(eng, "libvirt.lost", NULL, NULL, -EAGAIN,
				"libvirt cannot be reached (%s); VM operations fail with EAGAIN until it answers; the VMs themselves run on",
				reason);
}

/*
 * libvirt refuses to redefine a domain from XML without a <uuid> (it would
 * be a new domain of the same name): give such a file the uuid of the
 * domain already defined under its name, so edits to it apply.  Takes
 * @xml, returns the text to define (g_free).
 */
static char *with_existing_uuid(struct snap_engine *eng, char *xml)
{
	struct vm_info file, now;
	const char *end;
	char *out;

	if (vm_parse_domain_xml(xml, &file) < 0)
		return xml;
	if (file.uuid[0] || vm_get(eng->vm, file.name, &now) < 0) {
		vm_info_clear(&file);
		return xml;
	}
	end = strstr(xml, "</name>");
	out = end ? g_strdup_printf("%.*s</name><uuid>%s</uuid>%s",
				    (int)(end - xml), xml, now.uuid,
				    end + strlen("</name>")) :
		    g_strdup(xml);
	vm_info_clear(&file);
	vm_info_clear(&now);
	g_free(xml);
	return out;
}

/* The documented way to define a VM for the embedded driver: a domain XML
 * file in SOURCE/domains/, defined at every mount. */
static void define_domains(struct snap_engine *eng)
{
	g_autofree char *dir = g_strdup_printf("%s/domains", eng->source);
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		g_autofree char *path = NULL, *xml = NULL;
		char name[SNAP_NAME_MAX + 1];

		if (de->d_name[0] == '.' || !g_str_has_suffix(de->d_name, ".xml"))
			continue;
		path = g_strdup_printf("%s/%s", dir, de->d_name);
		if (!g_file_get_contents(path, &xml, NULL, NULL))
			continue;
		xml = with_existing_uuid(eng, xml);
		if (vm_define_xml(eng->vm, xml, name, sizeof(name)) == 0)
			snap_log(LOG_INFO, "vms: defined '%s' from '%s'", name, path);
		else
			event_record_vm(eng, "vm.define", NULL, NULL, -EINVAL,
				     "cannot define a VM from '%s' (see snapfs.log)",
				     path);
	}
	closedir(d);
}

/*
 * The embedded driver keeps each live domain's status in
 * @root/run/qemu/<name>.xml.  A start cut by a crash before QEMU ran
 * leaves one with pid 0 ("paused, starting up" with a start job): libvirt
 * then shows the VM paused for ever and refuses start and destroy.  No
 * QEMU exists for it, so the status is dropped before libvirt reads it,
 * and the domain comes back shut off.  Only for our own embedded root;
 * nothing else writes there.  Their names are added to @names.
 * Return: how many were dropped.
 */
static int embed_drop_unstarted(const char *root, GPtrArray *names)
{
	g_autofree char *dir = g_strdup_printf("%s/run/qemu", root);
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		g_autofree char *path = NULL;
		g_autofree char *text = NULL;
		char *tag;

		if (de->d_name[0] == '.' || !g_str_has_suffix(de->d_name, ".xml"))
			continue;
		path = g_strdup_printf("%s/%s", dir, de->d_name);
		if (!g_file_get_contents(path, &text, NULL, NULL))
			continue;
		tag = strstr(text, "<domstatus ");
		if (!tag || !strstr(tag, " pid='0'") ||
		    strchr(tag, '>') < strstr(tag, " pid='0'"))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
			snap_log(LOG_ERR, "vms: cannot remove '%s': %m", path);
			continue;
		}
		snap_log(LOG_WARNING, "vms: '%s': a start cut by a crash never ran QEMU; the domain is shut off",
			 path);
		g_ptr_array_add(names, g_strndup(de->d_name, strlen(de->d_name) - 4));
		n++;
	}
	closedir(d);
	return n;
}

int vms_start(struct snap_engine *eng)
{
	g_autofree char *root = NULL;
	g_autoptr(GPtrArray) unstarted = g_ptr_array_new_with_free_func(g_free);
	guint i;
	int rc;

	eng->vms = g_new0(struct vms, 1);
	eng->vms->busy = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					       NULL);
	g_cond_init(&eng->vms->idle);
	if (eng->cfg.libvirt && !strcmp(eng->cfg.libvirt, "none"))
		return 0;
	root = g_strdup_printf("%s/libvirt", eng->source);
	if (!eng->cfg.libvirt)
		embed_drop_unstarted(root, unstarted);
	rc = vm_open(eng->cfg.libvirt, root, libvirt_changed, eng, &eng->vm);
	if (rc < 0 && eng->cfg.libvirt) {
		/* the libvirt the admin named must answer: the mount fails
		 * (vm_open() logged why) */
		eng->vm = NULL;
		return rc;
	}
	if (rc < 0) {
		event_record_vm(eng, "vm.connect", NULL, NULL, rc,
			     "the embedded libvirt cannot start; running without VMs (see snapfs.log)");
		eng->vm = NULL;
		return 0;
	}
	define_domains(eng);
	vms_forget_undefined(eng);
	for (i = 0; i < unstarted->len; i++)
		event_record_vm(eng, "recovery.vm.start", unstarted->pdata[i], NULL, 0,
				"a start cut by a crash never ran QEMU; the VM is stopped");
	return 0;
}

void vms_stop(struct snap_engine *eng)
{
	vm_close(eng->vm);
	eng->vm = NULL;
	if (eng->vms) {
		g_hash_table_destroy(eng->vms->busy);
		g_cond_clear(&eng->vms->idle);
		g_clear_pointer(&eng->vms, g_free);
	}
}

/* ---- lookups ---------------------------------------------------------- */

/* libvirt's outage overrides the reason of a refusal: the call failed
 * because libvirtd is away (restarting), not because of what was asked. */
#define LIBVIRT_AWAY "libvirt cannot be reached (is libvirtd running?): nothing was changed, try again"

static const char *reason(int rc, const char *why)
{
	return rc == -EAGAIN ? LIBVIRT_AWAY : why;
}

static int vms_load(struct snap_engine *eng, const char *name,
		   struct vm_info *info, struct catalog_vm *cvm)
{
	int rc;

	if (!eng->vm || snap_name_valid(name) < 0)
		return -ENOENT;
	rc = vm_get(eng->vm, name, info);
	if (rc < 0)
		return rc;
	rc = catalog_vm_ensure(eng->cat, info->uuid, info->name, cvm);
	if (rc < 0)
		vm_info_clear(info);
	return rc;
}

static bool vms_snapshots_enabled(struct snap_engine *eng, const char *type)
{
	g_auto(GStrv) off = NULL;

	if (!eng->cfg.vm_snapshots_off)
		return true;
	off = g_strsplit(eng->cfg.vm_snapshots_off, ":", -1);
	return !g_strv_contains((const char *const *)off, type);
}

static void vms_busy_begin(struct snap_engine *eng, const char *uuid)
{
	g_mutex_lock(&eng->lock);
	while (g_hash_table_contains(eng->vms->busy, uuid))
		g_cond_wait(&eng->vms->idle, &eng->lock);
	g_hash_table_add(eng->vms->busy, g_strdup(uuid));
	g_mutex_unlock(&eng->lock);
}

static void vms_busy_end(struct snap_engine *eng, const char *uuid)
{
	g_mutex_lock(&eng->lock);
	g_hash_table_remove(eng->vms->busy, uuid);
	g_cond_broadcast(&eng->vms->idle);
	g_mutex_unlock(&eng->lock);
}

/* ---- the VM's own files ------------------------------------------------ */

static int vms_delete_finish(struct snap_engine *eng, struct catalog_vm *cvm,
			    struct catalog_vm_snapshot *s, const char *type,
			    const char *message);

/*
 * A VM undefined in libvirt takes its snapshots with it: their memory
 * files go, their layers are released (and folded), the VM's row goes.
 * Run at mount and whenever vms/ is listed.
 */
static void vms_forget_undefined(struct snap_engine *eng)
{
	GArray *rows = NULL;
	guint i, j;

	if (!eng->vm || catalog_vm_all(eng->cat, &rows) < 0)
		return;
	for (i = 0; i < rows->len; i++) {
		struct catalog_vm *cvm = &g_array_index(rows, struct catalog_vm, i);
		GArray *snaps = NULL;
		int n = 0;

		if (vm_exists(eng->vm, cvm->uuid) != 0)
			continue; /* defined, or libvirt could not say: keep */
		vms_busy_begin(eng, cvm->uuid);
		if (catalog_vm_snapshot_list(eng->cat, cvm->id, &snaps) >= 0) {
			/* newest first, so no child is re-parented needlessly */
			for (j = snaps->len; j-- > 0;) {
				struct catalog_vm_snapshot *s =
					&g_array_index(snaps, struct catalog_vm_snapshot, j);

				if (vms_delete_finish(eng, cvm, s, NULL, NULL) == 0)
					n++;
			}
			g_array_free(snaps, TRUE);
		}
		catalog_vm_delete(eng->cat, cvm->id);
		vms_busy_end(eng, cvm->uuid);
		event_record_vm(eng, "vm.undefined", cvm->name, NULL, 0,
				"the VM is no longer defined in libvirt; its %d snapshot(s) were deleted",
				n);
	}
	g_array_free(rows, TRUE);
}

int snap_vm_list(struct snap_engine *eng, char ***names_out)
{
	if (!eng->vm) {
		*names_out = g_new0(char *, 1);
		return 0;
	}
	vms_forget_undefined(eng);
	return vm_list(eng->vm, names_out);
}

/*
 * The catalog row of VM @name, as libvirt has it; while libvirt cannot be
 * reached, as snapfs last knew it, so that names under vms/ still resolve
 * and an operation on them reaches snapfs, to be refused with EAGAIN and
 * an event of its own (a failed lookup would leave no event).
 * *@running: the VM runs (false when libvirt cannot say).
 */
static int vms_row(struct snap_engine *eng, const char *name,
		  struct catalog_vm *cvm, bool *running)
{
	struct vm_info info;
	int rc = vms_load(eng, name, &info, cvm);

	if (rc == -EAGAIN)
		return catalog_vm_get_by_name(eng->cat, name, cvm) == 0 ? 0 : rc;
	if (rc < 0)
		return rc;
	if (running)
		*running = info.state == VM_STATE_RUNNING;
	vm_info_clear(&info);
	return 0;
}

int snap_vm_stat(struct snap_engine *eng, const char *vm,
		 struct snap_vm_stat *out)
{
	struct catalog_vm cvm;
	bool running = false;
	int rc = vms_row(eng, vm, &cvm, &running);

	if (rc < 0)
		return rc;
	out->id = (uint64_t)cvm.id;
	out->running = running;
	out->uid = cvm.uid;
	out->gid = cvm.gid;
	return 0;
}

int snap_vm_chown(struct snap_engine *eng, const char *vm, uid_t uid, gid_t gid)
{
	struct vm_info info;
	struct catalog_vm cvm;
	int rc = vms_load(eng, vm, &info, &cvm);

	if (rc < 0)
		return rc;
	vm_info_clear(&info);
	if (uid != (uid_t)-1)
		cvm.uid = uid;
	if (gid != (gid_t)-1)
		cvm.gid = gid;
	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		return rc;
	rc = catalog_vm_update(eng->cat, &cvm);
	if (rc == 0)
		event_record_vm(eng, "vm.chown", vm, NULL, 0,
				"VM now belongs to uid %u gid %u",
				(unsigned)cvm.uid, (unsigned)cvm.gid);
	rc = catalog_tx_end(eng->cat, rc);
	if (rc == 0) {
		/* the kernel caches owners for a second: make it ask again */
		static const char *const files[] = { "info", "state", "control",
			"snapshot-options", "volumes", "snapshots" };
		GArray *snaps = NULL;
		guint i;

		for (i = 0; i < G_N_ELEMENTS(files); i++)
			gone_path(eng, "vms/%s/%s", vm, files[i]);
		if (catalog_vm_snapshot_list(eng->cat, cvm.id, &snaps) >= 0) {
			for (i = 0; i < snaps->len; i++) {
				const char *n = g_array_index(snaps, struct catalog_vm_snapshot, i).name;

				gone_path(eng, "vms/%s/snapshots/%s", vm, n);
				gone_path(eng, "vms/%s/snapshots/%s/info", vm, n);
			}
			g_array_free(snaps, TRUE);
		}
	}
	return rc;
}

int snap_vm_state(struct snap_engine *eng, const char *vm, char **word_out)
{
	struct vm_info info;
	struct catalog_vm cvm;
	int rc = vms_load(eng, vm, &info, &cvm);

	if (rc < 0)
		return rc;
	*word_out = g_strdup(info.state_word);
	vm_info_clear(&info);
	return 0;
}

static char **volumes_of(struct snap_engine *eng, struct vm_info *info)
{
	GPtrArray *a = g_ptr_array_new();
	guint i;

	for (i = 0; i < info->disks->len; i++) {
		char vol[SNAP_NAME_MAX + 1];

		if (vmdisk_volume(eng, &g_array_index(info->disks, struct vm_disk, i),
				vol, sizeof(vol)))
			g_ptr_array_add(a, g_strdup(vol));
	}
	g_ptr_array_add(a, NULL);
	return (char **)g_ptr_array_free(a, FALSE);
}

int snap_vm_volumes(struct snap_engine *eng, const char *vm, char ***names_out)
{
	struct vm_info info;
	struct catalog_vm cvm;
	int rc = vms_load(eng, vm, &info, &cvm);

	if (rc < 0)
		return rc;
	*names_out = volumes_of(eng, &info);
	vm_info_clear(&info);
	return (int)g_strv_length(*names_out);
}

static int current_name(struct snap_engine *eng, struct catalog_vm *cvm,
			char *name, size_t size)
{
	struct catalog_vm_snapshot s;

	if (!cvm->current ||
	    catalog_vm_snapshot_get_by_id(eng->cat, cvm->current, &s) < 0)
		return -ENOENT;
	g_strlcpy(name, s.name, size);
	return 0;
}

int snap_vm_info(struct snap_engine *eng, const char *vm, char **json_out)
{
	struct vm_info info;
	struct catalog_vm cvm;
	char cur[SNAP_NAME_MAX + 1];
	g_auto(GStrv) vols = NULL;
	struct jdoc *d;
	int rc = vms_load(eng, vm, &info, &cvm);

	if (rc < 0)
		return rc;
	vols = volumes_of(eng, &info);
	d = jdoc_new();
	jdoc_str(d, "name", info.name);
	jdoc_str(d, "uuid", info.uuid);
	jdoc_str(d, "type", info.type);
	jdoc_str(d, "state", info.state_word);
	jdoc_strv(d, "volumes", vols);
	jdoc_str(d, "current_snapshot",
		 current_name(eng, &cvm, cur, sizeof(cur)) == 0 ? cur : NULL);
	jdoc_bool(d, "snapshots_enabled", vms_snapshots_enabled(eng, info.type));
	jdoc_int(d, "memory_kib", (int64_t)info.memory_kib);
	jdoc_int(d, "vcpus", info.vcpus);
	vm_info_clear(&info);
	*json_out = jdoc_finish(d, true, true);
	return *json_out ? 0 : -ENOMEM;
}

/* The options stored for @cvm (canonical text, written below). */
static void options_of(struct catalog_vm *cvm, bool *memory, bool *quiesce)
{
	struct snapshot_options opts;

	*memory = *quiesce = false;
	if (snapshot_options_parse(cvm->options, strlen(cvm->options), &opts,
				   NULL) < 0)
		return;
	*memory = opts.memory;
	*quiesce = opts.quiesce;
}

int snap_vm_options_read(struct snap_engine *eng, const char *vm,
			 char **text_out)
{
	struct vm_info info;
	struct catalog_vm cvm;
	bool memory, quiesce;
	int rc = vms_load(eng, vm, &info, &cvm);

	if (rc < 0)
		return rc;
	vm_info_clear(&info);
	options_of(&cvm, &memory, &quiesce);
	*text_out = g_strdup_printf("memory=%s quiesce=%s\n", memory ? "yes" : "no",
				    quiesce ? "yes" : "no");
	return 0;
}

int snap_vm_options_write(struct snap_engine *eng, const char *vm,
			  const char *buf, size_t len)
{
	g_autofree char *target = g_strdup_printf("vms/%s/snapshot-options", vm);
	struct vm_info info;
	struct catalog_vm cvm;
	struct snapshot_options opts;
	bool memory, quiesce;
	const char *why = NULL;
	int rc = vms_load(eng, vm, &info, &cvm);

	if (rc < 0)
		return rc;
	vm_info_clear(&info);
	options_of(&cvm, &memory, &quiesce);
	rc = snapshot_options_parse(buf, len, &opts, &why);
	if (rc < 0) {
		event_reject(eng, "write", target, EINVAL, "%s", why);
		return rc;
	}
	/* an option not written keeps its value */
	if (opts.has_memory)
		memory = opts.memory;
	if (opts.has_quiesce)
		quiesce = opts.quiesce;
	g_snprintf(cvm.options, sizeof(cvm.options), "memory=%s quiesce=%s",
		   memory ? "yes" : "no", quiesce ? "yes" : "no");
	return catalog_vm_update(eng->cat, &cvm);
}

/* ---- snapshots: reads --------------------------------------------------- */

static int vmsnap_lookup(struct snap_engine *eng, const char *vm,
			 const char *name, struct catalog_vm *cvm,
			 struct catalog_vm_snapshot *s)
{
	int rc = vms_row(eng, vm, cvm, NULL);

	if (rc < 0)
		return rc;
	if (snap_name_valid(name) < 0)
		return -ENOENT;
	rc = catalog_vm_snapshot_get(eng->cat, cvm->id, name, s);
	if (rc == 0 && s->state == VM_SNAPSHOT_CREATING)
		return -ENOENT;
	return rc;
}

int snap_vm_snapshot_list(struct snap_engine *eng, const char *vm,
			  char ***names_out)
{
	struct vm_info info;
	struct catalog_vm cvm;
	GArray *a = NULL;
	GPtrArray *names;
	guint i;
	int rc = vms_load(eng, vm, &info, &cvm);

	if (rc < 0)
		return rc;
	vm_info_clear(&info);
	rc = catalog_vm_snapshot_list(eng->cat, cvm.id, &a);
	if (rc < 0)
		return rc;
	names = g_ptr_array_new();
	for (i = 0; i < a->len; i++) {
		struct catalog_vm_snapshot *s = &g_array_index(a, struct catalog_vm_snapshot, i);

		if (s->state != VM_SNAPSHOT_CREATING)
			g_ptr_array_add(names, g_strdup(s->name));
	}
	g_array_free(a, TRUE);
	rc = (int)names->len;
	g_ptr_array_add(names, NULL);
	*names_out = (char **)g_ptr_array_free(names, FALSE);
	return rc;
}

int snap_vm_snapshot_stat(struct snap_engine *eng, const char *vm,
			  const char *snap, struct snap_vm_snapshot_stat *out)
{
	struct catalog_vm cvm;
	struct catalog_vm_snapshot s, p;
	int rc = vmsnap_lookup(eng, vm, snap, &cvm, &s);

	if (rc < 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->id = (uint64_t)s.id;
	out->created_at = (time_t)s.created_at;
	out->current = cvm.current == s.id;
	if (s.parent && catalog_vm_snapshot_get_by_id(eng->cat, s.parent, &p) == 0)
		g_strlcpy(out->parent, p.name, sizeof(out->parent));
	return 0;
}

int snap_vm_current(struct snap_engine *eng, const char *vm, char **name_out)
{
	struct vm_info info;
	struct catalog_vm cvm;
	char cur[SNAP_NAME_MAX + 1];
	int rc = vms_load(eng, vm, &info, &cvm);

	if (rc < 0)
		return rc;
	vm_info_clear(&info);
	rc = current_name(eng, &cvm, cur, sizeof(cur));
	if (rc == 0)
		*name_out = g_strdup(cur);
	return rc;
}

int snap_vm_snapshot_info(struct snap_engine *eng, const char *vm,
			  const char *snap, char **json_out)
{
	struct catalog_vm cvm;
	struct catalog_vm_snapshot s, p;
	GArray *all = NULL, *disks = NULL;
	GPtrArray *children, *vols;
	char stamp[32];
	struct jdoc *d;
	guint i;
	int rc = vmsnap_lookup(eng, vm, snap, &cvm, &s);

	if (rc < 0)
		return rc;
	rc = catalog_vm_snapshot_list(eng->cat, cvm.id, &all);
	if (rc < 0)
		return rc;
	children = g_ptr_array_new_with_free_func(g_free);
	for (i = 0; i < all->len; i++) {
		struct catalog_vm_snapshot *c = &g_array_index(all, struct catalog_vm_snapshot, i);

		if (c->parent == s.id && c->state != VM_SNAPSHOT_CREATING)
			g_ptr_array_add(children, g_strdup(c->name));
	}
	g_ptr_array_add(children, NULL);
	g_array_free(all, TRUE);
	vols = g_ptr_array_new_with_free_func(g_free);
	if (catalog_vm_snapshot_disks(eng->cat, s.id, &disks) >= 0) {
		for (i = 0; i < disks->len; i++)
			g_ptr_array_add(vols, g_strdup(g_array_index(disks, struct catalog_vm_disk, i).volume));
		g_array_free(disks, TRUE);
	}
	g_ptr_array_add(vols, NULL);

	d = jdoc_new();
	jdoc_str(d, "name", s.name);
	jdoc_str(d, "type", s.type == VM_SNAPSHOT_DISK_MEMORY ? "disk+memory" : "disk");
	jdoc_str(d, "parent", s.parent && catalog_vm_snapshot_get_by_id(eng->cat, s.parent, &p) == 0 ?
				      p.name : NULL);
	jdoc_strv(d, "children", (char **)children->pdata);
	jdoc_bool(d, "current", cvm.current == s.id);
	jdoc_str(d, "state", s.state < VM_SNAPSHOT_STATE_LAST ?
				     vm_snapshot_state_names[s.state] : "Error");
	clock_iso(s.created_at, stamp);
	jdoc_str(d, "created_at", stamp);
	jdoc_strv(d, "volumes", (char **)vols->pdata);
	g_ptr_array_free(children, TRUE);
	g_ptr_array_free(vols, TRUE);
	*json_out = jdoc_finish(d, true, true);
	return *json_out ? 0 : -ENOMEM;
}

/* ---- snapshots: take ----------------------------------------------------- */

struct vm_disk_plan {
	struct catalog_volume vol;
	char target[32];
	char alias[64];
	char layer[37];
	struct freeze f;
};

static gint plan_cmp(gconstpointer a, gconstpointer b)
{
	const struct vm_disk_plan *x = a, *y = b;

	return x->vol.id < y->vol.id ? -1 : x->vol.id > y->vol.id;
}

/* The VM's disks as volumes, sorted by volume id (the busy-flag order). */
static int plan_disks(struct snap_engine *eng, struct vm_info *info,
		      GArray **out, const char **why)
{
	GArray *plan = g_array_new(FALSE, TRUE, sizeof(struct vm_disk_plan));
	guint i;
	int rc = 0;

	for (i = 0; i < info->disks->len && rc == 0; i++) {
		struct vm_disk *d = &g_array_index(info->disks, struct vm_disk, i);
		struct vm_disk_plan p;
		char vol[SNAP_NAME_MAX + 1];

		memset(&p, 0, sizeof(p));
		if (!vmdisk_volume(eng, d, vol, sizeof(vol)) ||
		    (d->format[0] && strcmp(d->format, "qcow2") != 0)) {
			*why = "every disk of the VM must be a qcow2 volume of primary storage";
			rc = -EOPNOTSUPP;
			break;
		}
		rc = volume_resolve(eng, vol, &p.vol, NULL);
		g_strlcpy(p.target, d->target, sizeof(p.target));
		g_strlcpy(p.alias, d->alias, sizeof(p.alias));
		if (rc == 0)
			g_array_append_val(plan, p);
		else
			*why = "a disk's volume file is missing";
	}
	if (rc == 0 && plan->len == 0) {
		*why = "the VM has no volumes";
		rc = -EOPNOTSUPP;
	}
	if (rc < 0) {
		g_array_free(plan, TRUE);
		return rc;
	}
	g_array_sort(plan, plan_cmp);
	*out = plan;
	return 0;
}

#define PLAN(a, i) (&g_array_index((a), struct vm_disk_plan, (i)))

static void plan_busy(struct snap_engine *eng, GArray *plan, bool begin)
{
	guint i;

	for (i = 0; i < plan->len; i++) {
		guint k = begin ? i : plan->len - 1 - i;

		if (begin)
			volume_busy_begin(eng, PLAN(plan, k)->vol.id);
		else
			volume_busy_end(eng, PLAN(plan, k)->vol.id);
	}
}

/*
 * The restore after a memory save failed: the VM is stopped, which a
 * snapshot must never leave it.  Put each disk back as it was (the
 * overlays are empty: nothing ran on them) and restore the VM from its
 * memory again; should libvirt refuse that too, boot it.  Whatever
 * happens, an event says it.
 * Return: 0 the disks are back (the snapshot is to be rolled back);
 * -errno a disk could not be put back (the snapshot stays taken).
 */
static int resume_after_save(struct snap_engine *eng, const char *vm,
			     GArray *plan, const char *memfile)
{
	struct vm_info info;
	guint i;
	int rc = 0, r;

	if (vm_get(eng->vm, vm, &info) == 0) {
		enum vm_state state = info.state;

		vm_info_clear(&info);
		if (state == VM_STATE_RUNNING) { /* libvirt said no, yet it runs */
			event_record_vm(eng, "vm.start", vm, NULL, 0,
					"libvirt reported the restore from memory as failed, but the VM runs");
			return -EALREADY;
		}
		if (state != VM_STATE_STOPPED) /* half restored: start over */
			vm_destroy(eng->vm, vm);
	}
	for (i = plan->len; i-- > 0 && rc == 0;)
		rc = freeze_unswap(eng, &PLAN(plan, i)->f);
	r = vm_restore(eng->vm, memfile);
	if (r == 0) {
		event_record_vm(eng, "vm.start", vm, NULL, 0,
				"the restore after the memory save failed once; the VM was restored from its memory on its %s disks",
				rc == 0 ? "unchanged" : "snapshotted");
		return rc;
	}
	r = vm_start(eng->vm, vm);
	event_record_vm(eng, "vm.start", vm, NULL, r,
			r == 0 ? "the VM could not be restored from its memory: it was booted instead (its memory state is lost)" :
				 "the VM could not be restored from its memory nor booted: it is stopped");
	return rc;
}

/* A VM snapshot's take (take.h): the plan's disks, the VM's rows. */
struct vms_take {
	struct snap_engine *eng;
	const char *vm;
	struct catalog_vm cvm;
	struct catalog_vm_snapshot s;
	GArray *plan;	     /* struct vm_disk_plan, in volume-id order */
	bool memory, quiesce, running, replaces;
	const char *memfile; /* memory only */
	const char *why;     /* the reason of a refusal, for its event */
	bool rows_tried;     /* rows_insert ran (its transaction began) */
	char quota_why[256];
};

static int vms_rows_insert(struct take *t)
{
	struct vms_take *vt = t->arg;
	struct snap_engine *eng = vt->eng;
	guint i;
	int rc;

	vt->rows_tried = true;
	rc = vt->replaces ? 0 : account_quota_check(eng, vt->cvm.uid, vt->quota_why,
						   sizeof(vt->quota_why));
	if (rc == 0)
		rc = catalog_vm_snapshot_insert(eng->cat, &vt->s);
	for (i = 0; i < vt->plan->len && rc == 0; i++) {
		struct vm_disk_plan *p = PLAN(vt->plan, i);
		struct catalog_layer l = { .volume_id = p->vol.id,
					   .state = LAYER_STATE_CREATING };
		g_autofree char *lu = g_uuid_string_random();

		/* the top layer may have moved while we waited for the flag */
		rc = catalog_volume_get_by_id(eng->cat, p->vol.id, &p->vol);
		g_strlcpy(p->layer, lu, sizeof(p->layer));
		g_strlcpy(l.uuid, lu, sizeof(l.uuid));
		g_strlcpy(l.parent, p->vol.top_layer, sizeof(l.parent));
		if (rc == 0)
			rc = catalog_layer_insert(eng->cat, &l);
		if (rc == 0)
			rc = catalog_vm_snapshot_disk_add(eng->cat, vt->s.id, p->vol.id,
							  p->target, lu);
	}
	return rc;
}

static int vms_rows_delete(struct take *t)
{
	struct vms_take *vt = t->arg;
	guint i;
	int rc = 0;

	for (i = 0; i < vt->plan->len && rc == 0; i++)
		rc = catalog_layer_delete(vt->eng->cat, PLAN(vt->plan, i)->layer);
	if (rc == 0)
		rc = catalog_vm_snapshot_delete(vt->eng->cat, vt->s.id);
	return rc;
}

static int vms_disk_prepare(struct take *t, unsigned k)
{
	struct vms_take *vt = t->arg;
	struct vm_disk_plan *p = PLAN(vt->plan, k);
	int rc = freeze_prepare(vt->eng, &p->f, p->vol.name, p->layer);

	if (rc < 0)
		vt->why = "cannot freeze a disk (see snapfs.log)";
	return rc;
}

static void vms_disk_undo(struct take *t, unsigned k)
{
	struct vms_take *vt = t->arg;

	freeze_undo(&PLAN(vt->plan, k)->f);
	freeze_clear(&PLAN(vt->plan, k)->f);
}

/*
 * The instant of the snapshot: quiesce the guest if asked, then save the
 * memory (the VM stops) or switch a running VM's disks in QEMU; nothing
 * for a stopped VM.  A failure leaves the VM as it was.
 */
static int vms_switch(struct take *t)
{
	struct vms_take *vt = t->arg;
	struct snap_engine *eng = vt->eng;
	GArray *plan = vt->plan;
	bool frozen = false;
	guint i;
	int rc = 0;

	if (vt->quiesce && vt->running) {
		rc = vm_fs_freeze(eng->vm, vt->vm, VM_AGENT_TIMEOUT);
		if (rc < 0)
			vt->why = rc == -ETIMEDOUT ? "the guest agent did not answer" :
						     "quiesce needs a guest agent, and the VM has none";
		frozen = rc == 0;
	}
	if (rc == 0 && vt->memory) {
		rc = vm_save(eng->vm, vt->vm, vt->memfile);
		if (rc < 0) {
			vt->why = "libvirt could not save the VM's memory";
			unlink(vt->memfile);
		}
	} else if (rc == 0 && vt->running) {
		g_autofree const char **aliases = g_new0(const char *, plan->len);
		g_autofree struct freeze *fs = g_new0(struct freeze, plan->len);

		for (i = 0; i < plan->len; i++) {
			aliases[i] = PLAN(plan, i)->alias;
			fs[i] = PLAN(plan, i)->f;
		}
		rc = freeze_switch_running(eng, eng->vm, vt->vm, fs, aliases,
					   (int)plan->len);
		if (rc < 0)
			vt->why = "QEMU refused to switch the disks to their new layers";
		t->switched = rc == 0; /* QEMU writes the overlays */
	}
	if (frozen)
		vm_fs_thaw(eng->vm, vt->vm);
	return rc;
}

/* a later step failed: the saved memory goes (the VM was restored) */
static void vms_switch_undo(struct take *t)
{
	struct vms_take *vt = t->arg;

	if (vt->memfile)
		unlink(vt->memfile);
}

static int vms_disk_swap(struct take *t, unsigned k)
{
	struct vms_take *vt = t->arg;

	return freeze_swap(vt->eng, &PLAN(vt->plan, k)->f);
}

/* A memory snapshot: the VM runs again, restored from its memory. */
static int vms_restore(struct take *t)
{
	struct vms_take *vt = t->arg;
	int rc;

	if (!vt->memory)
		return 0;
	testpoint("vm.take.saved");
	rc = vm_restore(vt->eng->vm, vt->memfile);
	if (rc < 0 && resume_after_save(vt->eng, vt->vm, vt->plan, vt->memfile) == 0) {
		/* rolled back: the take undoes the rest */
		vt->why = "libvirt could not restore the VM from its memory after saving it: the snapshot was rolled back and the VM brought back (see events)";
		return rc;
	}
	return 0;
}

/* the disks are frozen: the snapshot exists */
static int vms_rows_commit(struct take *t)
{
	struct vms_take *vt = t->arg;
	struct snap_engine *eng = vt->eng;
	guint i;
	int rc;

	vt->s.state = VM_SNAPSHOT_READY;
	rc = catalog_vm_snapshot_update(eng->cat, &vt->s);
	for (i = 0; i < vt->plan->len && rc == 0; i++) {
		struct vm_disk_plan *p = PLAN(vt->plan, i);
		struct catalog_layer l;

		rc = catalog_layer_get(eng->cat, p->layer, &l);
		if (rc == 0) {
			l.state = LAYER_STATE_LIVE;
			rc = catalog_layer_update(eng->cat, &l);
		}
		g_strlcpy(p->vol.top_layer, p->layer, sizeof(p->vol.top_layer));
		if (rc == 0)
			rc = catalog_volume_update(eng->cat, &p->vol);
	}
	vt->cvm.current = vt->s.id;
	if (rc == 0)
		rc = catalog_vm_update(eng->cat, &vt->cvm);
	if (rc == 0)
		event_record_vm(eng, "vm.snapshot", vt->vm, vt->s.name, 0,
				"VM snapshot taken (%s, VM %s, %u disk(s))",
				vt->memory ? "disk+memory" : "disk",
				vt->running ? "running" : "stopped", vt->plan->len);
	return rc;
}

static const struct take_ops vms_take_ops = {
	.rows_insert = vms_rows_insert,
	.rows_delete = vms_rows_delete,
	.disk_prepare = vms_disk_prepare,
	.disk_undo = vms_disk_undo,
	.switch_disks = vms_switch,
	.switch_undo = vms_switch_undo,
	.disk_swap = vms_disk_swap,
	.after_swap = vms_restore,
	.rows_commit = vms_rows_commit,
};

/* The reason of a take that failed in step @t->failed with @rc. */
static const char *vms_take_why(struct vms_take *vt, struct take *t, int rc)
{
	switch (t->failed) {
	case TAKE_STEP_ROWS:
		if (!vt->rows_tried)
			return vt->why;
		return rc == -EEXIST ? "a VM snapshot of that name exists" :
		       rc == -EDQUOT ? vt->quota_why :
				       "the catalog refused the snapshot";
	case TAKE_STEP_SWAP:
		if (t->exists)
			return "a disk's new overlay could not be renamed over its volume file: the snapshot exists and the next mount completes it";
		return vt->why;
	case TAKE_STEP_COMMIT:
		return "the VM snapshot exists on primary storage but the catalog refused to record it; the next mount completes it";
	default:
		return vt->why;
	}
}

static int vms_take_busy(struct snap_engine *eng, const char *vm,
			  const char *name, const char *target,
			  int64_t policy_id, bool replaces)
{
	g_autofree char *uuid = g_uuid_string_random();
	g_autofree char *memfile = NULL;
	struct vm_info info;
	struct catalog_vm_snapshot other;
	struct vms_take vt = { .eng = eng, .vm = vm, .replaces = replaces,
			       .why = "" };
	struct take t = { .cat = eng->cat, .ops = &vms_take_ops, .arg = &vt,
			  .point_prepared = "vm.take.prepared",
			  .point_switched = "vm.take.switched",
			  .point_first_swap = "vm.take.first_swap" };
	guint i;
	int rc;

	rc = vms_load(eng, vm, &info, &vt.cvm);
	if (rc < 0) {
		event_reject(eng, "mkdir", target, -rc, "%s", reason(rc, "no such VM"));
		return rc;
	}
	options_of(&vt.cvm, &vt.memory, &vt.quiesce);
	vt.running = info.state == VM_STATE_RUNNING || info.state == VM_STATE_PAUSED;
	if (vt.memory && !vt.running) {
		rc = -EOPNOTSUPP;
		vt.why = "a memory snapshot needs a running VM (snapshot-options has memory=yes)";
		goto reject;
	}
	if (catalog_vm_snapshot_get(eng->cat, vt.cvm.id, name, &other) == 0) {
		rc = -EEXIST;
		vt.why = "a VM snapshot of that name exists";
		goto reject;
	}
	rc = plan_disks(eng, &info, &vt.plan, &vt.why);
	if (rc < 0)
		goto reject;

	vt.s.vm_id = vt.cvm.id;
	g_strlcpy(vt.s.name, name, sizeof(vt.s.name));
	g_strlcpy(vt.s.uuid, uuid, sizeof(vt.s.uuid));
	vt.s.parent = vt.cvm.current;
	vt.s.type = vt.memory ? VM_SNAPSHOT_DISK_MEMORY : VM_SNAPSHOT_DISK;
	vt.s.state = VM_SNAPSHOT_CREATING;
	vt.s.created_at = clock_now(eng);
	vt.s.policy_id = policy_id;
	if (vt.memory) {
		memfile = memory_path(eng, uuid);
		vt.memfile = memfile;
		g_strlcpy(vt.s.memory, memfile, sizeof(vt.s.memory));
		g_autofree char *mdir = g_path_get_dirname(memfile);
		g_mkdir_with_parents(mdir, 0700);
	}
	t.n = vt.plan->len;

	plan_busy(eng, vt.plan, true);
	rc = take_run(&t);
	for (i = 0; i < vt.plan->len; i++)
		freeze_clear(&PLAN(vt.plan, i)->f);
	plan_busy(eng, vt.plan, false);
	if (rc < 0)
		vt.why = vms_take_why(&vt, &t, rc);
	g_array_free(vt.plan, TRUE);
	vm_info_clear(&info);
	if (rc < 0)
		event_reject(eng, "mkdir", target, -rc, "%s", reason(rc, vt.why));
	return rc;

reject:
	if (vt.plan)
		g_array_free(vt.plan, TRUE);
	vm_info_clear(&info);
	event_reject(eng, "mkdir", target, -rc, "%s", reason(rc, vt.why));
	return rc;
}

int snap_vm_snapshot_take(struct snap_engine *eng, const char *vm,
			  const char *name)
{
	return vms_snapshot_take(eng, vm, name, 0, false);
}

int vms_snapshot_take(struct snap_engine *eng, const char *vm, const char *name,
		     int64_t policy_id, bool replaces)
{
	g_autofree char *target = vms_target(vm, name);
	struct vm_info info;
	struct catalog_vm cvm;
	int rc;

	if (snap_name_valid(name) < 0 || !strcmp(name, "current")) {
		event_reject(eng, "mkdir", target, EINVAL,
			     "VM snapshot names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-', and not 'current'");
		return -EINVAL;
	}
	rc = vms_load(eng, vm, &info, &cvm);
	if (rc < 0) {
		event_reject(eng, "mkdir", target, -rc, "%s", reason(rc, "no such VM"));
		return rc;
	}
	if (!vms_snapshots_enabled(eng, info.type)) {
		event_reject(eng, "mkdir", target, EOPNOTSUPP,
			     "VM snapshots are switched off for '%s' domains", info.type);
		vm_info_clear(&info);
		return -EOPNOTSUPP;
	}
	vm_info_clear(&info);
	vms_busy_begin(eng, cvm.uuid);
	rc = vms_take_busy(eng, vm, name, target, policy_id, replaces);
	vms_busy_end(eng, cvm.uuid);
	if (rc == 0)
		wake_schedulers(eng);
	return rc;
}

/* ---- snapshots: revert and delete ---------------------------------------- */

/* Everything a revert needs, checked before anything is touched. */
static int revert_check(struct snap_engine *eng, struct vm_info *info,
			struct catalog_vm_snapshot *s, GArray *disks,
			const char **why)
{
	g_auto(GStrv) now = volumes_of(eng, info);
	guint i;

	if (g_strv_length(now) != disks->len) {
		*why = "the VM's disks changed since the snapshot (attach/detach): revert refused";
		return -EINVAL;
	}
	for (i = 0; i < disks->len; i++) {
		struct catalog_vm_disk *d = &g_array_index(disks, struct catalog_vm_disk, i);
		g_autofree char *lpath = layer_path(eng, d->volume, d->layer);
		struct stat st;

		if (!g_strv_contains((const char *const *)now, d->volume)) {
			*why = "the VM's disks changed since the snapshot (attach/detach): revert refused";
			return -EINVAL;
		}
		if (lstat(lpath, &st) < 0) {
			*why = "a layer of the snapshot is missing from primary storage";
			return -EIO;
		}
	}
	if (s->type == VM_SNAPSHOT_DISK_MEMORY) {
		struct vm_info saved;
		int rc = access(s->memory, R_OK) == 0 ?
				 vm_save_info(eng->vm, s->memory, &saved) : -ENOENT;

		if (rc < 0) {
			*why = "the snapshot's memory file is missing or unreadable";
			return -EIO;
		}
		rc = saved.memory_kib != info->memory_kib || saved.vcpus != info->vcpus;
		vm_info_clear(&saved);
		if (rc) {
			*why = "the VM's memory size or CPU count changed since the memory snapshot: revert refused";
			return -EINVAL;
		}
	}
	return 0;
}

static int vms_revert_busy(struct snap_engine *eng, const char *vm,
			    const char *name)
{
	g_autofree char *target = vms_target(vm, name);
	struct vm_info info;
	struct catalog_vm cvm;
	struct catalog_vm_snapshot s;
	GArray *disks = NULL;
	const char *why = "";
	guint i;
	int rc, disks_rc;

	if (snap_name_valid(name) < 0) {
		event_reject(eng, "revert", target, EINVAL,
			     "VM snapshot names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-'");
		return -EINVAL;
	}
	rc = vmsnap_lookup(eng, vm, name, &cvm, &s);
	if (rc < 0) {
		event_reject(eng, "revert", target, ENOENT, "no such VM snapshot");
		return -ENOENT;
	}
	if (s.state != VM_SNAPSHOT_READY) {
		event_reject(eng, "revert", target, EBUSY, "the snapshot is %s",
			     vm_snapshot_state_names[s.state]);
		return -EBUSY;
	}
	rc = vm_get(eng->vm, vm, &info);
	if (rc < 0)
		return rc;
	rc = catalog_vm_snapshot_disks(eng->cat, s.id, &disks);
	if (rc >= 0)
		rc = revert_check(eng, &info, &s, disks, &why);
	if (rc < 0) {
		event_reject(eng, "revert", target, -rc, "%s", reason(rc, why));
		goto out;
	}

	s.state = VM_SNAPSHOT_REVERTING;
	catalog_vm_snapshot_update(eng->cat, &s);
	if (info.state != VM_STATE_STOPPED) {
		rc = vm_destroy(eng->vm, vm);
		if (rc < 0) {
			why = "the VM could not be stopped";
			goto undo_state;
		}
	}
	/* the disks' flags (volume-id order) stay held through the restore:
	 * a merge must not rename a layer of the chains QEMU is opening */
	for (i = 0; i < disks->len; i++)
		volume_busy_begin(eng, g_array_index(disks, struct catalog_vm_disk, i).volume_id);
	for (i = 0; i < disks->len; i++) {
		struct catalog_vm_disk *d = &g_array_index(disks, struct catalog_vm_disk, i);
		int r;

		r = volume_revert_to_layer(eng, d->volume_id, d->volume, d->layer);
		testpoint("vm.revert.disk");
		if (r < 0 && rc == 0)
			rc = r;
	}
	disks_rc = rc;
	if (disks_rc < 0) {
		/* some disks may be reverted: recovery at the next mount, or a
		 * new revert, finishes; the snapshot stays Reverting */
		event_record_vm(eng, "vm.revert", vm, name, rc,
			     "revert failed half way (see snapfs.log); revert again");
	} else if (s.type == VM_SNAPSHOT_DISK_MEMORY) {
		rc = vm_restore(eng->vm, s.memory);
		if (rc < 0)
			event_record_vm(eng, "vm.revert", vm, name, rc,
				     "disks reverted but the memory could not be restored; the VM is stopped");
	}
	for (i = disks->len; i-- > 0;)
		volume_busy_end(eng, g_array_index(disks, struct catalog_vm_disk, i).volume_id);
	if (disks_rc < 0)
		goto out;
	catalog_tx_begin(eng->cat);
	s.state = VM_SNAPSHOT_READY;
	catalog_vm_snapshot_update(eng->cat, &s);
	cvm.current = s.id;
	catalog_vm_update(eng->cat, &cvm);
	if (rc == 0)
		event_record_vm(eng, "vm.revert", vm, name, 0, "reverted to %s (VM %s)",
			     s.type == VM_SNAPSHOT_DISK_MEMORY ? "disk+memory" : "disk",
			     s.type == VM_SNAPSHOT_DISK_MEMORY ? "running" : "stopped");
	catalog_tx_end(eng->cat, 0);
	wake_schedulers(eng);
	goto out;

undo_state:
	s.state = VM_SNAPSHOT_READY;
	catalog_vm_snapshot_update(eng->cat, &s);
	event_reject(eng, "revert", target, -rc, "%s", reason(rc, why));
out:
	if (disks)
		g_array_free(disks, TRUE);
	vm_info_clear(&info);
	return rc;
}

/*
 * Drop Expunging @s of @cvm: its memory file, its row (its children hang
 * from its parent), its layers released; with @type, the event
 * @type/@message is recorded in the transaction that drops the row.
 */
static int vms_delete_finish(struct snap_engine *eng, struct catalog_vm *cvm,
			    struct catalog_vm_snapshot *s, const char *type,
			    const char *message)
{
	GArray *all = NULL, *disks = NULL;
	guint i;
	int rc;

	if (s->memory[0] && unlink(s->memory) < 0 && errno != ENOENT)
		snap_log(LOG_ERR, "vms: cannot remove '%s': %m", s->memory);
	rc = catalog_vm_snapshot_list(eng->cat, s->vm_id, &all);
	if (rc >= 0)
		rc = catalog_vm_snapshot_disks(eng->cat, s->id, &disks);
	if (rc < 0)
		goto out;
	rc = catalog_tx_begin(eng->cat);
	if (rc < 0)
		goto out;
	/* its children hang from its parent from now on */
	for (i = 0; i < all->len && rc >= 0; i++) {
		struct catalog_vm_snapshot *c = &g_array_index(all, struct catalog_vm_snapshot, i);

		if (c->parent == s->id) {
			c->parent = s->parent;
			rc = catalog_vm_snapshot_update(eng->cat, c);
		}
	}
	if (rc >= 0 && cvm->current == s->id) {
		cvm->current = s->parent;
		rc = catalog_vm_update(eng->cat, cvm);
	}
	if (rc >= 0)
		rc = catalog_vm_snapshot_delete(eng->cat, s->id);
	for (i = 0; i < disks->len && rc >= 0; i++)
		rc = layer_queue_merge(eng, g_array_index(disks, struct catalog_vm_disk, i).volume_id);
	if (rc >= 0 && type)
		event_record_vm(eng, type, cvm->name, s->name, 0, "%s", message);
	rc = catalog_tx_end(eng->cat, rc);
out:
	if (all)
		g_array_free(all, TRUE);
	if (disks)
		g_array_free(disks, TRUE);
	if (rc == 0) {
		wake_schedulers(eng);
		gone_path(eng, "vms/%s/snapshots/%s/info", cvm->name, s->name);
		gone_path(eng, "vms/%s/snapshots/%s/parent", cvm->name, s->name);
		gone_path(eng, "vms/%s/snapshots/%s", cvm->name, s->name);
		gone_path(eng, "vms/%s/snapshots/current", cvm->name);
	}
	return rc;
}

int snap_vm_snapshot_delete(struct snap_engine *eng, const char *vm,
			    const char *name)
{
	g_autofree char *target = vms_target(vm, name);
	struct catalog_vm cvm;
	struct catalog_vm_snapshot s;
	int rc;

	rc = vmsnap_lookup(eng, vm, name, &cvm, &s);
	if (rc < 0) {
		event_reject(eng, "rmdir", target, -rc, "%s", reason(rc, "no such VM snapshot"));
		return rc;
	}
	vms_busy_begin(eng, cvm.uuid);
	rc = vmsnap_lookup(eng, vm, name, &cvm, &s);
	if (rc == 0) {
		s.state = VM_SNAPSHOT_EXPUNGING;
		rc = catalog_vm_snapshot_update(eng->cat, &s);
	}
	if (rc == 0)
		rc = vms_delete_finish(eng, &cvm, &s, "vm.snapshot.delete",
				      "VM snapshot deleted; its children stay");
	vms_busy_end(eng, cvm.uuid);
	if (rc < 0)
		event_reject(eng, "rmdir", target, -rc, "%s", reason(rc, "cannot delete the VM snapshot"));
	return rc;
}

/* ---- the control file -------------------------------------------------- */

/* Start @vm holding its volumes' flags: QEMU opens their chains meanwhile. */
static int vms_start_guarded(struct snap_engine *eng, const char *vm)
{
	struct vm_info info;
	GArray *plan = NULL;
	const char *why;
	int rc;

	if (vm_get(eng->vm, vm, &info) == 0) {
		if (plan_disks(eng, &info, &plan, &why) < 0)
			plan = NULL; /* not all volumes: nothing of ours to guard */
		vm_info_clear(&info);
	}
	if (plan)
		plan_busy(eng, plan, true);
	rc = vm_start(eng->vm, vm);
	if (plan) {
		plan_busy(eng, plan, false);
		g_array_free(plan, TRUE);
	}
	return rc;
}

/* A stopped VM lets go of its volumes: fold what waited for that. */
static void queue_volume_merges(struct snap_engine *eng, const char *vm)
{
	g_auto(GStrv) vols = NULL;
	char **v;

	if (snap_vm_volumes(eng, vm, &vols) < 0)
		return;
	for (v = vols; *v; v++) {
		struct catalog_volume cv;

		if (volume_resolve(eng, *v, &cv, NULL) == 0)
			layer_queue_merge(eng, cv.id);
	}
	wake_schedulers(eng);
}

/* The command as the control file shows it back: printable, one line. */
static char *control_echo(const char *cmd, size_t len)
{
	char *line = g_strndup(cmd, MIN(len, VM_CONTROL_MAX));
	size_t n = strlen(line);

	if (n && line[n - 1] == '\n')
		line[n - 1] = '\0';
	g_strdelimit(line, "\t", ' ');
	g_strstrip(line);
	g_strcanon(line, G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS "._- ", '?');
	return line;
}

/* Run a parsed start, stop or force-stop; records its event. */
static int vms_power(struct snap_engine *eng, const char *vm,
		    const char *target, enum vm_control_verb verb)
{
	const char *name = vm_control_verb_name(verb);
	int rc;

	if (verb == VM_CONTROL_VERB_START)
		rc = vms_start_guarded(eng, vm);
	else if (verb == VM_CONTROL_VERB_STOP)
		rc = vm_shutdown(eng->vm, vm, (int)eng->cfg.stop_timeout);
	else
		rc = vm_destroy(eng->vm, vm);
	if (rc < 0)
		event_reject(eng, name, target, -rc,
			     rc == -ETIMEDOUT ? "the guest did not shut down in time; it still runs (force-stop stops it at once)" :
			     rc == -EBUSY ? "not possible in the VM's current state" :
			     rc == -EAGAIN ? LIBVIRT_AWAY :
					    "libvirt refused (see snapfs.log)");
	else
		event_record_vm(eng, "vm.control", vm, NULL, 0, "%s done", name);
	return rc;
}

int snap_vm_control(struct snap_engine *eng, const char *vm, const char *cmd,
		    size_t len)
{
	g_autofree char *target = g_strdup_printf("vms/%s/control", vm);
	g_autofree char *line = control_echo(cmd, len);
	struct vm_control_cmd c;
	struct catalog_vm cvm;
	const char *why = NULL;
	int rc;

	/* while libvirt is away, the command itself is refused (EAGAIN, its
	 * own event): start, stop and revert all need libvirt */
	rc = vms_row(eng, vm, &cvm, NULL);
	if (rc < 0) {
		event_reject(eng, "write", target, -rc, "%s", reason(rc, "no such VM"));
		return rc;
	}
	rc = vm_control_parse(cmd, len, &c, &why);
	if (rc < 0) {
		event_reject(eng, "write", target, EINVAL, "%s", why);
	} else if (c.verb == VM_CONTROL_VERB_REVERT) {
		vms_busy_begin(eng, cvm.uuid);
		rc = vms_revert_busy(eng, vm, c.snap);
		vms_busy_end(eng, cvm.uuid);
	} else {
		vms_busy_begin(eng, cvm.uuid);
		rc = vms_power(eng, vm, target, c.verb);
		vms_busy_end(eng, cvm.uuid);
		if (rc == 0 && c.verb != VM_CONTROL_VERB_START)
			queue_volume_merges(eng, vm);
	}
	control_result_record(eng, target, line, rc, NULL);
	return rc;
}

int snap_vm_control_text(struct snap_engine *eng, const char *vm,
			 char **text_out)
{
	g_autofree char *target = g_strdup_printf("vms/%s/control", vm);
	struct snap_vm_stat st;
	int rc = snap_vm_stat(eng, vm, &st);

	if (rc < 0)
		return rc;
	*text_out = control_result_text(eng, target,
		"# write one command per write(2), e.g. echo start > control\n"
		"#   start | stop | force-stop | revert <snap>\n");
	return 0;
}

/* ---- recovery ------------------------------------------------------------ */

/* Is the volume file already the overlay of @layer? */
static bool disk_swapped(struct snap_engine *eng, const char *vol,
			 const char *layer)
{
	g_autofree char *vpath = volume_path(eng, vol);
	g_autofree char *lpath = layer_path(eng, vol, layer);
	struct qcow2_header hdr;

	return volume_read_header(vpath, &hdr) == 0 && !strcmp(hdr.backing, lpath);
}

/* Finish freezing one disk of an interrupted VM snapshot, if possible. */
static int finish_disk(struct snap_engine *eng, struct catalog_vm_disk *d)
{
	g_autofree char *tmp = freeze_tmp_path(eng, d->volume, d->layer);
	g_autofree char *vpath = volume_path(eng, d->volume);
	g_autofree char *lpath = layer_path(eng, d->volume, d->layer);
	struct freeze f;
	struct stat a, b;

	if (disk_swapped(eng, d->volume, d->layer))
		return 0;
	if (access(tmp, F_OK) == 0) {
		if (rename(tmp, vpath) < 0)
			return -errno;
		return 0;
	}
	/* the overlay was never made: the link alone (if any) is undone */
	if (lstat(lpath, &a) == 0 && lstat(vpath, &b) == 0 && a.st_ino == b.st_ino)
		unlink(lpath);
	if (freeze_prepare(eng, &f, d->volume, d->layer) < 0)
		return -EIO;
	freeze_swap(eng, &f);
	freeze_clear(&f);
	return 0;
}

/*
 * Did this disk pass the snapshot's instant?  Swapped, or its overlay is
 * what QEMU writes (the QMP switch happened).  An overlay QEMU does not
 * write was only prepared (or only added: then QEMU is made to close it),
 * and a running VM still wrote the old file after it.
 */
static bool disk_frozen(struct snap_engine *eng, struct catalog_vm_disk *d)
{
	return disk_swapped(eng, d->volume, d->layer) ||
	       freeze_recover_switched(eng, d->volume, d->layer);
}

/* The snapshot a finished take or revert leaves current. */
/* The name of the VM a snapshot row belongs to (for events). */
static const char *vms_name_of(struct snap_engine *eng,
			      struct catalog_vm_snapshot *s, char *buf, size_t size)
{
	struct catalog_vm cvm;

	if (catalog_vm_get_by_id(eng->cat, s->vm_id, &cvm) < 0)
		return NULL;
	g_strlcpy(buf, cvm.name, size);
	return buf;
}

static void make_current(struct snap_engine *eng, struct catalog_vm_snapshot *s)
{
	struct catalog_vm cvm;

	if (catalog_vm_get_by_id(eng->cat, s->vm_id, &cvm) == 0) {
		cvm.current = s->id;
		catalog_vm_update(eng->cat, &cvm);
	}
}

static void rollback_take(struct snap_engine *eng, struct catalog_vm_snapshot *s,
			  GArray *disks)
{
	char name[SNAP_NAME_MAX + 1];
	guint j;

	catalog_tx_begin(eng->cat);
	for (j = 0; j < disks->len; j++) {
		struct catalog_vm_disk *d = &g_array_index(disks, struct catalog_vm_disk, j);
		g_autofree char *lpath = layer_path(eng, d->volume, d->layer);
		g_autofree char *vpath = volume_path(eng, d->volume);
		struct stat a, b;

		/* only a bare link was made: it is the volume file itself */
		if (lstat(lpath, &a) == 0 && lstat(vpath, &b) == 0 &&
		    a.st_ino == b.st_ino)
			unlink(lpath);
		{
			g_autofree char *tmp = freeze_tmp_path(eng, d->volume, d->layer);

			unlink(tmp);
		}
		catalog_layer_delete(eng->cat, d->layer);
	}
	catalog_vm_snapshot_delete(eng->cat, s->id);
	if (s->memory[0])
		unlink(s->memory);
	event_record_vm(eng, "recovery.vm.snapshot", vms_name_of(eng, s, name, sizeof(name)),
			s->name, -EIO,
			"VM snapshot interrupted before any disk was frozen; rolled back (its mkdir never succeeded)");
	catalog_tx_end(eng->cat, 0);
}

static void complete_take(struct snap_engine *eng, struct catalog_vm_snapshot *s,
			  GArray *disks)
{
	char name[SNAP_NAME_MAX + 1];
	guint j;
	int rc = 0;

	for (j = 0; j < disks->len && rc == 0; j++)
		rc = finish_disk(eng, &g_array_index(disks, struct catalog_vm_disk, j));
	catalog_tx_begin(eng->cat);
	for (j = 0; j < disks->len && rc == 0; j++) {
		struct catalog_vm_disk *d = &g_array_index(disks, struct catalog_vm_disk, j);
		struct catalog_layer l;
		struct catalog_volume v;

		if (catalog_layer_get(eng->cat, d->layer, &l) == 0) {
			l.state = LAYER_STATE_LIVE;
			catalog_layer_update(eng->cat, &l);
		}
		if (catalog_volume_get_by_id(eng->cat, d->volume_id, &v) == 0) {
			g_strlcpy(v.top_layer, d->layer, sizeof(v.top_layer));
			catalog_volume_update(eng->cat, &v);
		}
	}
	s->state = rc == 0 ? VM_SNAPSHOT_READY : VM_SNAPSHOT_ERROR;
	catalog_vm_snapshot_update(eng->cat, s);
	make_current(eng, s);
	event_record_vm(eng, "recovery.vm.snapshot", vms_name_of(eng, s, name, sizeof(name)),
			s->name, rc,
		     rc == 0 ? "VM snapshot interrupted by a crash completed" :
			       "VM snapshot interrupted by a crash could not be completed; state Error");
	catalog_tx_end(eng->cat, 0);
}

/*
 * A disk+memory take cut after the save (kill -9) left its VM shut off by
 * the save ("saved": nobody started it since).  Restore it from the
 * snapshot's memory on the disks as recovery leaves them (the overlays of
 * a completed take are empty, a rolled back take's disks are untouched:
 * either way what the memory was saved with); boot it if libvirt refuses.
 * Before rollback_take(), which removes the memory file.
 */
static void resume_saved_vm(struct snap_engine *eng, struct catalog_vm_snapshot *s)
{
	char name[SNAP_NAME_MAX + 1];
	struct vm_info info;
	bool saved;
	int rc;

	if (!s->memory[0] || !eng->vm || !vms_name_of(eng, s, name, sizeof(name)))
		return;
	if (vm_get(eng->vm, name, &info) < 0)
		return;
	saved = info.state == VM_STATE_STOPPED && info.saved;
	vm_info_clear(&info);
	if (!saved || access(s->memory, R_OK) < 0)
		return;
	rc = vm_restore(eng->vm, s->memory);
	if (rc == 0) {
		event_record_vm(eng, "recovery.vm.start", name, s->name, 0,
				"the VM, stopped by a memory snapshot cut by a crash, was restored from its memory");
		return;
	}
	rc = vm_start(eng->vm, name);
	event_record_vm(eng, "recovery.vm.start", name, s->name, rc,
			rc == 0 ? "the VM, stopped by a memory snapshot cut by a crash, could not be restored from its memory: it was booted instead" :
				  "the VM, stopped by a memory snapshot cut by a crash, could not be restored nor booted: it is stopped");
}

/*
 * Whether the QEMU of @s's VM may have its disk files open: the domain is
 * anything but shut off (running, paused, starting).  Unknown counts as
 * open: the disks are then never replaced under it.
 */
static bool revert_vm_alive(struct snap_engine *eng, struct catalog_vm_snapshot *s)
{
	char name[SNAP_NAME_MAX + 1];
	struct vm_info info;
	bool alive;
	int rc;

	if (!eng->vm || !vms_name_of(eng, s, name, sizeof(name)))
		return false;
	rc = vm_get(eng->vm, name, &info);
	if (rc == -ENOENT)
		return false;
	alive = rc < 0 || info.state != VM_STATE_STOPPED;
	if (rc == 0)
		vm_info_clear(&info);
	return alive;
}

/*
 * A revert cut by a crash.  A revert stops the VM before it touches a
 * disk, so a VM still alive means the disks were not replaced (or, for a
 * disk+memory revert, replaced and the VM already restored on them):
 * either way QEMU runs on the files in place, and they stay as they are.
 * A stopped VM gets the revert finished on its disks (idempotent: a fresh
 * overlay over the same layer).
 */
static void complete_revert(struct snap_engine *eng,
			    struct catalog_vm_snapshot *s, GArray *disks)
{
	char name[SNAP_NAME_MAX + 1];
	guint j;
	int rc = 0;

	if (revert_vm_alive(eng, s)) {
		s->state = VM_SNAPSHOT_READY;
		catalog_vm_snapshot_update(eng->cat, s);
		event_record_vm(eng, "recovery.vm.revert", vms_name_of(eng, s, name, sizeof(name)),
				s->name, -EINTR,
				"revert interrupted by a crash while the VM still ran: its disks were left as the VM uses them; revert again if needed");
		return;
	}
	for (j = 0; j < disks->len && rc == 0; j++) {
		struct catalog_vm_disk *d = &g_array_index(disks, struct catalog_vm_disk, j);

		rc = volume_revert_to_layer(eng, d->volume_id, d->volume, d->layer);
	}
	s->state = rc == 0 ? VM_SNAPSHOT_READY : VM_SNAPSHOT_ERROR;
	catalog_vm_snapshot_update(eng->cat, s);
	if (rc == 0)
		make_current(eng, s);
	event_record_vm(eng, "recovery.vm.revert", vms_name_of(eng, s, name, sizeof(name)),
			s->name, rc,
		     rc == 0 ? "revert interrupted by a crash finished on the disks; the VM is left stopped" :
			       "revert interrupted by a crash could not be finished; state Error");
}

int vms_recover(struct snap_engine *eng)
{
	GArray *all = NULL;
	guint i, j;

	if (catalog_vm_snapshot_list(eng->cat, -1, &all) < 0)
		return -EIO;
	for (i = 0; i < all->len; i++) {
		struct catalog_vm_snapshot *s = &g_array_index(all, struct catalog_vm_snapshot, i);
		GArray *disks = NULL;
		bool any = false;

		if (s->state == VM_SNAPSHOT_READY || s->state == VM_SNAPSHOT_ERROR)
			continue;
		if (catalog_vm_snapshot_disks(eng->cat, s->id, &disks) < 0)
			continue;
		switch (s->state) {
		case VM_SNAPSHOT_CREATING:
			for (j = 0; j < disks->len; j++)
				any |= disk_frozen(eng, &g_array_index(disks, struct catalog_vm_disk, j));
			if (any) {
				complete_take(eng, s, disks);
				resume_saved_vm(eng, s);
			} else {
				resume_saved_vm(eng, s);
				rollback_take(eng, s, disks);
			}
			break;
		case VM_SNAPSHOT_REVERTING:
			complete_revert(eng, s, disks);
			break;
		case VM_SNAPSHOT_EXPUNGING: {
			struct catalog_vm cvm;

			if (catalog_vm_get_by_id(eng->cat, s->vm_id, &cvm) == 0)
				vms_delete_finish(eng, &cvm, s, "recovery.vm.delete",
						 "finished a VM snapshot delete interrupted by a crash");
			break;
		}
		default:
			break;
		}
		g_array_free(disks, TRUE);
	}
	g_array_free(all, TRUE);
	return 0;
}
