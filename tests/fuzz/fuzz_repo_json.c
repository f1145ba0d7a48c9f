/*
 * fuzz_repo_json.c - engine/repo.c: repo_json_parse() of SECONDARY/
 * repository.json, which snapfs does not control (a damaged disk, a
 * foreign or hostile tool writing under SECONDARY).
 *
 * Invariants (engine/repo.h):
 *  - the result is 0 or -EINVAL;
 *  - on -EINVAL, either a reason is given (a static phrase, not empty) or
 *    the version read is not 1 (the one case with no reason);
 *  - on 0, the version is 1 and the chunk size a power of two from 64 KiB
 *    to 64 MiB (repo_index_chunk_size_valid());
 *  - an accepted chunk size, written back in the canonical form snapfs
 *    writes, parses again to the same chunk size.
 */
#include <errno.h>
#include <stdio.h>

#include "fuzz.h"
#include "repo.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size);
	const char *why = (const char *)1;
	uint32_t cs = 0, cs2 = 0;
	int64_t version = -1;
	char canon[256];
	int rc;

	rc = repo_json_parse(text, &cs, &version, &why);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	if (rc < 0) {
		FUZZ_CHECK(why != (const char *)1, "why not set");
		FUZZ_CHECK(why ? why[0] != '\0' : version != 1,
			   "refused with no reason (version %lld)", (long long)version);
	} else {
		FUZZ_CHECK(why == NULL && version == 1, "accepted with a reason or version %lld",
			   (long long)version);
		FUZZ_CHECK(repo_index_chunk_size_valid(cs), "accepted chunk size %u", cs);
		snprintf(canon, sizeof(canon),
			 "{\"format\": \"snapfs-repository\", \"version\": 1, "
			 "\"chunk_size\": %u, \"hash\": \"sha256\", \"compression\": \"none\"}",
			 cs);
		FUZZ_CHECK(repo_json_parse(canon, &cs2, &version, &why) == 0 && cs2 == cs,
			   "canonical form of chunk size %u refused", cs);
	}
	g_free(text);
	return 0;
}
