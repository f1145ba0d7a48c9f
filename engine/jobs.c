/*
 * jobs.c - the jobs/ directory: queued and running jobs, their owners and
 * their progress.
 */
#include <errno.h>
#include <string.h>

#include "clone.h"
#include "clock.h"
#include "json.h"
#include "running.h"

static const char *const job_state_names[JOB_STATE_LAST] = {
	[JOB_STATE_QUEUED] = "queued",
	[JOB_STATE_RUNNING] = "running",
	[JOB_STATE_WAITING] = "waiting",
};

static const char *const job_kind_names[JOB_KIND_LAST] = {
	[JOB_KIND_BACKUP] = "backup",
	[JOB_KIND_MERGE] = "merge",
	[JOB_KIND_CLONE] = "clone",
	[JOB_KIND_REVERT] = "revert",
};

int snap_job_owner(struct snap_engine *eng, uint64_t id, uid_t *uid)
{
	struct catalog_job job;
	struct catalog_volume v;
	int rc = catalog_job_get(eng->cat, (int64_t)id, &job);

	if (rc == 0 && job.source[0]) {
		*uid = 0; /* a restore of another host's backup: root's */
		return 0;
	}
	if (rc == 0)
		rc = catalog_volume_get_by_id(eng->cat, job.volume_id, &v);
	if (rc == 0)
		*uid = v.uid;
	return rc;
}

int snap_job_list(struct snap_engine *eng, uint64_t **ids)
{
	GArray *a;
	int rc = catalog_job_ids(eng->cat, &a);

	return rc < 0 ? rc : catalog_ids_take(a, ids);
}

int snap_job_read(struct snap_engine *eng, uint64_t id, char **json_out)
{
	struct catalog_job job;
	struct catalog_snapshot snap;
	struct catalog_volume vol;
	struct running_job *rj;
	g_autofree char *target = NULL;
	uint64_t done = 0, total = 0;
	struct jdoc *d;
	int rc;

	rc = catalog_job_get(eng->cat, (int64_t)id, &job);
	if (rc < 0)
		return rc;
	if (job.kind != JOB_KIND_MERGE) {
		rc = clone_source(eng, &job, &snap);
		if (rc < 0)
			return rc;
		if (job.source[0]) /* a restore: "<host>/<vol>/<uuid>" */
			target = g_strdup_printf("backed-up/hosts/%.*s/volumes/%s/%s.qcow2",
						 (int)strcspn(job.source, "/"),
						 job.source, snap.volume, snap.name);
		else
			target = g_strdup_printf("volumes/%s/snapshots/%s",
						 snap.volume, snap.name);
		total = snap.virtual_size;
	} else {
		rc = catalog_volume_get_by_id(eng->cat, job.volume_id, &vol);
		if (rc < 0)
			return rc;
		target = g_strdup_printf("volumes/%s", vol.name);
	}
	rj = running_job_find(eng, (int64_t)id);
	if (rj) {
		uint64_t rj_total = __atomic_load_n(&rj->bytes_total,
						    __ATOMIC_RELAXED);

		done = __atomic_load_n(&rj->bytes_done, __ATOMIC_RELAXED);
		if (rj_total)
			total = rj_total;
		running_job_unref(rj);
	}
	d = jdoc_new();
	jdoc_int(d, "id", (int64_t)id);
	jdoc_str(d, "kind", job.kind < JOB_KIND_LAST ? job_kind_names[job.kind] : "unknown");
	jdoc_str(d, "target", target);
	if (job.kind == JOB_KIND_CLONE)
		jdoc_str(d, "new_volume", job.target);
	jdoc_str(d, "state", job.state < JOB_STATE_LAST ?
				     job_state_names[job.state] : "unknown");
	jdoc_int(d, "bytes_done", (int64_t)done);
	jdoc_int(d, "bytes_total", (int64_t)total);
	jdoc_int(d, "attempts", job.attempts);
	if (job.state == JOB_STATE_WAITING) {
		char stamp[32];

		clock_iso(job.not_before, stamp);
		jdoc_str(d, "next_attempt", stamp);
	}
	*json_out = jdoc_finish(d, true, true);
	return *json_out ? 0 : -ENOMEM;
}
