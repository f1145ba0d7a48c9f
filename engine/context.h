/*
 * context.h - the engine's shared context: what every module above the
 * base layer may read (configuration, storage paths, the catalog, the
 * clock) and the few things they share under eng->lock.  Each module's
 * own state is behind an opaque pointer that only that module's file
 * dereferences.
 *
 * LAYERS (docs/design.md, "Pieces"): a file includes and calls only its
 * own layer's files or lower ones; tools/check-layers.py enforces it.
 *   base           log, fault, errname, json, image, proc, checksum, names,
 *                  settings, policy (parsing), catalog, testpoint,
 *                  digest, chunkstore, repo_index, repo_gc, nbd,
 *                  repo_backup, qcow2_synth (the repository),
 *                  vm (the libvirt wrapper, in a library of its own)
 *   core           clock, wake, gone, paths, fsutil, running, copy, events,
 *                  control_results (this header is core's)
 *   mechanisms     vmdisk, volume, freeze, layer, accounts, waiters, backup,
 *                  backedup, images, snapshot, clone, revert, repo, verify,
 *                  take (the take sequence, in a library of its own)
 *   orchestration  pool, jobs, vms, policies, volume_control, watch, recover
 *   lifecycle      engine.c: open, start, close
 *
 * LOCK ORDER: busy flags first (a VM's, then its volumes' in volume-id
 * order; a flag is held across an operation, set and waited for under
 * eng->lock), then eng->lock, then the catalog's lock.  Leaf locks, under
 * which nothing else is taken: the running table's (running.c), the
 * control results' (control_results.c), the policies' (policies.c), the
 * waiters' (waiters.c), the chunk store's fan-out directory locks (flock
 * on SECONDARY/.locks/<xx>, chunkstore.c; held for one stat, utimensat,
 * rename or unlink).  No lock is held across a subprocess, a libvirt
 * call, a file copy, an fsync of data or a wait for another thread (waits
 * use a condition variable that releases the lock).
 */
#ifndef SNAP_CONTEXT_H
#define SNAP_CONTEXT_H

#include <glib.h>

#include "snap.h"
#include "catalog.h"

struct running;
struct pool;
struct policies;
struct watch;
struct waiters;
struct control_results;
struct vm_conn;
struct vms;
struct repo;
struct verifier;

struct snap_engine {
	/* set at open, read-only afterwards */
	struct snap_config cfg;
	char *source;
	char *primary;	   /* realpath */
	char *secondary;   /* realpath */
	char *layers_dir;  /* PRIMARY/.snapfs */
	char *backups_dir; /* SECONDARY/volumes */
	char *tmp_dir;	   /* SECONDARY/.tmp */
	char *ptmp_dir;	   /* PRIMARY/.snapfs/.tmp: clones, restores */
	char *host;	   /* this host's name, recorded in the catalog */
	char *rados_pool;  /* secondary=rados:<pool>[/<ns>]; NULL: POSIX */
	char *rados_ns;	   /* its namespace; NULL: the pool's default */
	struct catalog *cat; /* its own lock (catalog.h) */
	int64_t test_now;    /* atomic (clock.c) */

	/* eng->lock guards: stopping, started, busy_volumes, and the fields
	 * the pool and vms modules say it guards */
	GMutex lock;
	GCond schedule;	    /* work may be due: the job scheduler and the
			     * policy thread wait on it (wake.h) */
	GCond volumes_idle; /* a volume's busy flag was cleared (volume.c) */
	bool stopping;
	bool started;
	GHashTable *busy_volumes; /* volume id (int64 *) -> itself */

	/* hooks registered before start */
	void (*gone)(const char *path, void *arg); /* the front end (gone.h) */
	void *gone_arg;
	/* who owns a policy, for a rejection under policies/ (events.h) */
	uid_t (*policy_owner)(struct snap_engine *eng, const char *name);

	/* module state, each opaque outside its own file */
	struct running *running;	   /* running.c */
	struct pool *pool;		   /* pool.c */
	struct policies *policies;	   /* policies.c */
	struct watch *watch;		   /* watch.c */
	struct waiters *waiters;	   /* waiters.c */
	struct control_results *control_results; /* control_results.c */
	struct vm_conn *vm; /* vm.c; NULL: no VMs (libvirt=none, unreachable) */
	struct vms *vms;		   /* vms.c */
	struct repo *repo; /* repo.c; NULL: repository=off */
	struct verifier *verifier; /* verify.c; NULL before start */
};

#endif
