/*
 * events.h - the event log and alerts: what happened, as rows in the catalog.
 *
 * Calling sequence: record an event in the transaction of the change it
 * describes when there is one (catalog_tx_begin() ... event_record() ...
 * catalog_tx_end()), so the log never claims what the catalog does not
 * hold.  Every rejected operation calls event_reject() once, where it is
 * refused.  Takes only the catalog's lock (recursive).
 */
#ifndef SNAP_EVENTS_H
#define SNAP_EVENTS_H

#include "context.h"

/**
 * event_record() - append an event and log it
 * @err: 0 for success, else -errno (the event carries its name)
 */
void event_record(struct snap_engine *eng, const char *type, const char *volume,
		  const char *snapshot, int err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/** event_record_vm() - the same for a VM (its name under "vm"). */
void event_record_vm(struct snap_engine *eng, const char *type, const char *vm,
		     const char *snapshot, int err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/** event_reject() - a rejected operation: type "rejected" with op and path. */
void event_reject(struct snap_engine *eng, const char *op, const char *path,
		  int err, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/** owner_of() - the account owning volume (@key "volume") or VM ("vm")
 * @object; 0 (root) when unknown. */
uid_t owner_of(struct snap_engine *eng, const char *key, const char *object);
/* An alert's fields (alerts/<id>), in the order its JSON shows them. */
struct alert {
	const char *kind;	/* "backup", "clone" */
	int64_t object_id;	/* the snapshot's (backup) or job's (clone) id */
	const char *target;	/* the tree path it is about */
	const char *volume;
	const char *snapshot;
	const char *new_volume; /* NULL: no such field */
	int err;		/* a positive errno */
	const char *message;
	int64_t attempts;	/* < 0: no such field */
	const char *what;	/* the event's text after "alert <id>: " */
};

/**
 * alert_raise() - raise or refresh the alert of @a->kind for
 * @a->object_id (owned by the volume's owner), and record the event
 * "alert.raise".  Return: 0; -ENOMEM; -errno from the catalog.
 */
int alert_raise(struct snap_engine *eng, const struct alert *a);
/** alert_raise_backup() - raise or refresh the backup alert of @snap. */
int alert_raise_backup(struct snap_engine *eng,
		       const struct catalog_snapshot *snap);

/**
 * events_set_path_owner() - who reads a rejection on a path under
 * policies/: the policies module registers this at init, so events.c,
 * below it, never calls up.  @fn returns the owning account or 0.
 */
void events_set_path_owner(struct snap_engine *eng,
			   uid_t (*fn)(struct snap_engine *eng, const char *name));

#endif
