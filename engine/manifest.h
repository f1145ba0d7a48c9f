/*
 * manifest.h - reading a backup's manifest, SECONDARY/volumes/<vol>/
 * <uuid>.json (docs/repository.md, "Manifest"; backup.c writes them).
 *
 * snapfs keeps its catalog as the truth about backups and reads a
 * manifest back only to rebuild the catalog from secondary storage
 * (import.c: a new SOURCE over an existing repository, issue 14).  What
 * it reads there was written by any snapfs version, any host, or any tool
 * with access to SECONDARY, so the parser trusts nothing: every field is
 * checked, names are object names (snap_name_valid()), uuids are uuids,
 * times are the "YYYY-MM-DDTHH:MM:SSZ" backup.c writes.  Pure: no I/O, no
 * engine, thread-safe; fuzzed (tests/fuzz/fuzz_manifest.c).
 *
 * CALLING SEQUENCE
 *
 *	struct manifest m;
 *	const char *why;
 *
 *	if (manifest_parse(text, &m, &why) < 0)
 *		... say why, skip the backup ...
 */
#ifndef SNAP_MANIFEST_H
#define SNAP_MANIFEST_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "checksum.h"
#include "snap.h"

/* A manifest's size limit: the ones snapfs writes are under 1 KiB. */
#define MANIFEST_MAX_BYTES (64u << 10)

struct manifest {
	char volume[SNAP_NAME_MAX + 1];
	char snapshot[SNAP_NAME_MAX + 1];
	char uuid[UUID_TEXT_MAX];	 /* the snapshot's */
	char host[SNAP_NAME_MAX + 1];	 /* "" in manifests before issue 14 */
	char volume_uuid[UUID_TEXT_MAX]; /* "" in manifests before issue 14 */
	int64_t created_at;		 /* unix seconds */
	int64_t backed_up_at;
	uint64_t virtual_size;
	uint64_t size;
	bool indexed;			 /* "format": "index" (else "qcow2") */
	uint32_t chunk_size;		 /* indexed only */
	char checksum[CHECKSUM_TEXT_MAX]; /* as the catalog records it:
					   * "sha256:<index sha256>" when
					   * indexed, else "xxh128:<32 hex>" */
};

/**
 * manifest_parse() - check and read the manifest @text (NUL-terminated)
 * @out: filled on success, untouched on failure
 * @why: on -EINVAL, a static phrase saying what is wrong (may be NULL)
 *
 * Required: volume, snapshot (object names), uuid (a uuid), created_at
 * and backed_up_at (UTC, "2026-12-07T03:00:00Z"), virtual_size (> 0),
 * size (>= 0) and format: "index" with index ("<uuid>.index"),
 * index_sha256 (64 lowercase hex) and chunk_size (a valid one,
 * repo_index.h), or "qcow2" with checksum ("xxh128:" and 32 lowercase
 * hex).  Optional: host (an object name) and volume_uuid (a uuid).
 * Unknown fields are ignored (docs/repository.md: readers ignore what
 * they do not know).
 * Return: 0; -EINVAL not a manifest snapfs can use; -ENOMEM.
 */
int manifest_parse(const char *text, struct manifest *out, const char **why);

/**
 * manifest_time_parse() - "YYYY-MM-DDTHH:MM:SSZ" (exactly, a real date)
 * into unix seconds.  Return: 0; -EINVAL.
 */
int manifest_time_parse(const char *text, int64_t *out);

#endif
