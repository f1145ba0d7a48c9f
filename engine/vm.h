/*
 * vm.h - VMs through libvirt (all of libvirt is in vm.c).
 *
 * By default libvirt's QEMU driver runs inside snapfs
 * (qemu:///embed?root=SOURCE/libvirt), with an event loop thread of its
 * own; any other URI uses an existing libvirtd.  Every call may block on
 * libvirt and QEMU: callers hold no lock across them.  Thread-safe.
 */
#ifndef SNAP_VM_H
#define SNAP_VM_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "snap.h"

struct vm_conn;

enum vm_state {
	VM_STATE_STOPPED,
	VM_STATE_RUNNING,
	VM_STATE_PAUSED,
	VM_STATE_OTHER, /* starting, stopping, crashed...: see state_word */
	VM_STATE_LAST
};

struct vm_disk {
	char target[32];  /* vda */
	char path[4096];  /* source file */
	char format[16];  /* qcow2 */
	char alias[64];	  /* libvirt's device alias (running domains) */
};

/**
 * struct vm_info - what snapfs needs of a domain
 * @type:       the domain type ("kvm", "qemu")
 * @state_word: the one word for vms/<vm>/state
 * @saved:      shut off by vm_save() (libvirt's reason "saved", or
 *              "unknown": the embedded driver forgets reasons when reopened)
 * @memory_kib, @vcpus: for the checks before a memory revert
 * @disks:      GArray of struct vm_disk (file disks only)
 */
struct vm_info {
	char name[SNAP_NAME_MAX + 1];
	char uuid[37];
	char type[16];
	enum vm_state state;
	bool saved; /* stopped by a save of its memory (or libvirt cannot
		       say why it stopped), not started since */
	char state_word[16];
	uint64_t memory_kib;
	unsigned vcpus;
	GArray *disks;
};

void vm_info_clear(struct vm_info *info);

/**
 * vm_notify_fn - told when libvirt becomes unreachable (@up false, with
 * libvirt's @reason) and when it answers again (@up true), once each way;
 * called from the thread whose call noticed, with no lock held.
 */
typedef void (*vm_notify_fn)(void *data, bool up, const char *reason);

/**
 * vm_open() - connect to libvirt
 * @uri: NULL for the embedded driver rooted at @embed_root (created, with
 *       a qemu.conf suited to running without a daemon)
 * Starts libvirt's event loop thread and, with the embedded driver, makes
 * the process a child subreaper with a thread that reaps QEMU orphans.
 * Call after daemonizing.  On failure nothing is left running.  A lost
 * connection (libvirtd restarting) is opened again by the next call that
 * needs it; @notify (may be NULL) hears of the outage and of its end.
 * Return: 0, *@out owns the connection (vm_close); -errno with the reason
 * logged: -EAGAIN libvirt does not answer (no daemon behind the socket),
 * -EIO another failure (libvirt's error mapped as for every call here);
 * -ENOMEM no thread.
 */
int vm_open(const char *uri, const char *embed_root, vm_notify_fn notify,
	    void *notify_data, struct vm_conn **out);
void vm_close(struct vm_conn *conn);

/** vm_uri() - the URI in use (borrowed). */
const char *vm_uri(struct vm_conn *conn);

/** vm_list() - names of all domains, sorted.  Return: count. */
int vm_list(struct vm_conn *conn, char ***names_out);

/** vm_get() - facts of domain @name.  -ENOENT no such domain. */
int vm_get(struct vm_conn *conn, const char *name, struct vm_info *out);

/** vm_exists() - 1 when a domain with @uuid is defined, 0 when not. */
int vm_exists(struct vm_conn *conn, const char *uuid);

/** vm_define_xml() - define (or redefine) a domain from XML text. */
int vm_define_xml(struct vm_conn *conn, const char *xml, char *name_out,
		  size_t name_size);

/** vm_start() - start a stopped domain. -EBUSY when it runs. */
int vm_start(struct vm_conn *conn, const char *name);

/**
 * vm_shutdown() - ask the guest to shut down and wait up to @timeout_s
 * Return: 0 stopped; -ETIMEDOUT the guest did not stop (it still runs).
 */
int vm_shutdown(struct vm_conn *conn, const char *name, int timeout_s);

/** vm_destroy() - stop at once (power off).  0 also when already stopped. */
int vm_destroy(struct vm_conn *conn, const char *name);

int vm_suspend(struct vm_conn *conn, const char *name);
int vm_resume(struct vm_conn *conn, const char *name);

/**
 * vm_qmp() - run one QMP command in the domain's QEMU
 * On success *@reply_out (may be NULL) owns the JSON reply.
 */
int vm_qmp(struct vm_conn *conn, const char *name, const char *cmd,
	   char **reply_out);

/** vm_save() - save memory to @path; the domain is stopped afterwards. */
int vm_save(struct vm_conn *conn, const char *name, const char *path);

/** vm_restore() - start a domain from a save file, running. */
int vm_restore(struct vm_conn *conn, const char *path);

/** vm_save_info() - facts of the domain inside a save file (no disks). */
int vm_save_info(struct vm_conn *conn, const char *path, struct vm_info *out);

/**
 * vm_fs_freeze() / vm_fs_thaw() - quiesce the guest's file systems via
 * the guest agent, answering within @timeout_s.
 * Return: 0; -EOPNOTSUPP no agent configured; -ETIMEDOUT agent silent.
 */
int vm_fs_freeze(struct vm_conn *conn, const char *name, int timeout_s);
int vm_fs_thaw(struct vm_conn *conn, const char *name);

/**
 * vm_xml_strip() - @xml without its @name elements, each cut from its
 * start tag to its end tag (nested ones with it); an element name ends
 * where XML says (`<nameX` is another element).  Pure; g_free the result.
 */
char *vm_xml_strip(const char *xml, const char *name);

/** vm_parse_domain_xml() - the pure part of vm_get(), for tests. */
int vm_parse_domain_xml(const char *xml, struct vm_info *out);

#endif
