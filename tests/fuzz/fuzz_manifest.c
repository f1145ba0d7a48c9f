/*
 * fuzz_manifest.c - engine/manifest.c: manifest_parse() of SECONDARY/
 * volumes/<vol>/<uuid>.json, which a new catalog imports (import.c) and
 * which any tool with access to SECONDARY may have written.
 *
 * Invariants (engine/manifest.h):
 *  - the result is 0 or -EINVAL (-ENOMEM never, on these sizes);
 *  - on -EINVAL a reason is given, not empty, and @out is untouched;
 *  - on 0, volume and snapshot are object names, uuid is a uuid, host
 *    and volume_uuid are empty or valid, the times are real dates that
 *    print back, virtual_size > 0, and the checksum is "sha256:" + 64
 *    hex for an indexed backup (with a valid chunk size), "xxh128:" + 32
 *    hex for a qcow2 one.
 */
#include <errno.h>
#include <string.h>
#include <glib.h>

#include "fuzz.h"
#include "manifest.h"
#include "repo_index.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size);
	const char *why = (const char *)1;
	struct manifest m, untouched;
	int64_t t;
	int rc;

	memset(&m, 0x5a, sizeof(m));
	untouched = m;
	rc = manifest_parse(text, &m, &why);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	if (rc < 0) {
		FUZZ_CHECK(why && why != (const char *)1 && why[0], "refused with no reason");
		FUZZ_CHECK(!memcmp(&m, &untouched, sizeof(m)), "output changed on failure");
	} else {
		FUZZ_CHECK(snap_name_valid(m.volume) == 0 && snap_name_valid(m.snapshot) == 0,
			   "accepted names '%s' '%s'", m.volume, m.snapshot);
		FUZZ_CHECK(g_uuid_string_is_valid(m.uuid), "accepted uuid '%s'", m.uuid);
		FUZZ_CHECK(!m.host[0] || snap_name_valid(m.host) == 0, "host '%s'", m.host);
		FUZZ_CHECK(!m.volume_uuid[0] || g_uuid_string_is_valid(m.volume_uuid),
			   "volume_uuid '%s'", m.volume_uuid);
		FUZZ_CHECK(m.created_at >= 0 && m.backed_up_at >= 0, "negative time");
		FUZZ_CHECK(m.virtual_size > 0, "virtual_size 0");
		if (m.indexed)
			FUZZ_CHECK(strlen(m.checksum) == 7 + 64 &&
				   g_str_has_prefix(m.checksum, "sha256:") &&
				   repo_index_chunk_size_valid(m.chunk_size),
				   "indexed checksum '%s' chunk size %u", m.checksum, m.chunk_size);
		else
			FUZZ_CHECK(strlen(m.checksum) == 7 + 32 &&
				   g_str_has_prefix(m.checksum, "xxh128:"),
				   "qcow2 checksum '%s'", m.checksum);
	}
	/* the time parser alone: what it accepts is exactly what it prints */
	if (manifest_time_parse(text, &t) == 0)
		FUZZ_CHECK(t >= 0 && strlen(text) == 20, "time '%s' accepted as %lld", text,
			   (long long)t);
	g_free(text);
	return 0;
}
