/*
 * copy.c - standalone qcow2 copies of a snapshot's data.
 *
 * Backups (to secondary storage), clones (to a new volume) and reverts
 * from a backup (back to primary storage) all copy an image the same way:
 * `qemu-img convert -p -U -O qcow2` reads the source with its backing
 * chain and writes a qcow2 without one; its progress lines become the
 * running job's bytes_done; `qemu-img check` and `info` verify the result.
 * The caller flushes and renames the copy into place.
 */
#include <errno.h>
#include <unistd.h>

#include "image.h"
#include "running.h"
#include "copy.h"
#include "json.h"
#include "proc.h"

static int on_progress(const char *line, void *arg)
{
	struct running_job *rj = arg;
	double pct;

	if (image_parse_progress(line, &pct) < 0)
		return 1; /* not progress: keep it as error text */
	__atomic_store_n(&rj->bytes_done,
			 (uint64_t)(pct / 100.0 *
				    (double)__atomic_load_n(&rj->bytes_total,
							    __ATOMIC_RELAXED)),
			 __ATOMIC_RELAXED);
	return 0;
}

int copy_image(struct running_job *rj, const char *src, const char *dst,
	       uint64_t vsize, const char *where, GString *why)
{
	g_auto(GStrv) argv = image_argv_convert(src, dst);
	g_autofree char *err = NULL;
	int rc;

	unlink(dst);
	/* jobs/<id> readers (snap_job_read) read it from other threads */
	__atomic_store_n(&rj->bytes_total, vsize, __ATOMIC_RELAXED);
	rc = proc_run_lines(argv, rj->cancel, on_progress, rj, &err);
	if (rc < 0) {
		if (rc == -ENOSPC)
			g_string_printf(why, "%s storage is full: %s", where,
					err ? g_strstrip(err) : "");
		else
			g_string_printf(why, "qemu-img convert failed: %s",
					err && *err ? g_strstrip(err) :
						      g_strerror(-rc));
		unlink(dst);
		return rc;
	}
	__atomic_store_n(&rj->bytes_done, vsize, __ATOMIC_RELAXED);
	return 0;
}

int copy_verify(const char *path, GCancellable *cancel, uint64_t vsize,
		GString *why)
{
	g_auto(GStrv) check = image_argv_check(path);
	g_auto(GStrv) info = image_argv_info(path);
	g_autofree char *out = NULL, *err = NULL;
	struct jdoc *d = NULL;
	int64_t got = -1;
	int rc;

	rc = proc_run(check, cancel, NULL, &err);
	if (rc < 0) {
		g_string_printf(why, "qemu-img check failed: %s",
				err ? g_strstrip(err) : g_strerror(-rc));
		return rc == -ECANCELED ? rc : -EIO;
	}
	rc = proc_run(info, cancel, &out, NULL);
	if (rc < 0) {
		g_string_printf(why, "qemu-img info failed");
		return rc == -ECANCELED ? rc : -EIO;
	}
	if (jdoc_parse(out, &d) < 0) {
		g_string_printf(why, "qemu-img info printed no JSON object");
		return -EIO;
	}
	rc = 0;
	if (jdoc_get_str(d, "backing-filename")) {
		g_string_printf(why, "the copy has a backing file");
		rc = -EIO;
	} else if (jdoc_get_int(d, "virtual-size", &got) < 0 ||
		   (uint64_t)got != vsize) {
		g_string_printf(why, "the copy's virtual size %" G_GINT64_FORMAT
				" is not the snapshot's %" G_GUINT64_FORMAT,
				got, vsize);
		rc = -EIO;
	}
	jdoc_free(d);
	return rc;
}
