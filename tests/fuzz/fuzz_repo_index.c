/*
 * fuzz_repo_index.c - engine/repo_index.c: repo_index_decode() of bytes
 * read from the repository, which snapfs does not control (a damaged disk,
 * a hostile or foreign tool writing under SECONDARY).
 *
 * Each input is decoded twice: as it is, and "sealed" (its last 32 bytes
 * replaced by the SHA-256 of the rest), so that the fuzzer reaches the
 * checks behind the checksum instead of stopping at it.
 *
 * Invariants (engine/repo_index.h):
 *  - the result is 0, -EBADMSG, -EFBIG or -ENOMEM, and on failure the
 *    output struct is empty;
 *  - an accepted index is consistent: chunk_size a power of two in range,
 *    virtual_size at most 1 PiB, count = ceil(virtual_size / chunk_size),
 *    the input exactly 32 + 32 * count + 32 bytes long;
 *  - -EFBIG only for a virtual_size beyond 1 PiB;
 *  - encoding an accepted index gives back exactly the input's bytes
 *    (one encoding per index: nothing a reader ignores).
 */
#include <errno.h>

#include "fuzz.h"
#include "digest.h"
#include "repo_index.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void check(const uint8_t *data, size_t size)
{
	struct repo_index idx;
	void *again = NULL;
	size_t len = 0;
	int rc;

	rc = repo_index_decode(data, size, &idx);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EFBIG || rc == -ENOMEM,
		   "rc %d", rc);
	if (rc < 0) {
		FUZZ_CHECK(idx.digests == NULL && idx.count == 0 &&
				   idx.chunk_size == 0 && idx.virtual_size == 0,
			   "rc %d left a non-empty index", rc);
		FUZZ_CHECK(rc != -EFBIG ||
				   (size >= 24 && le64(data + 16) > REPO_INDEX_VIRTUAL_MAX),
			   "EFBIG for a virtual size within 1 PiB");
		return;
	}
	FUZZ_CHECK(repo_index_chunk_size_valid(idx.chunk_size), "chunk_size %u",
		   idx.chunk_size);
	FUZZ_CHECK(idx.virtual_size <= REPO_INDEX_VIRTUAL_MAX, "virtual_size %llu",
		   (unsigned long long)idx.virtual_size);
	FUZZ_CHECK(idx.count == (idx.virtual_size + idx.chunk_size - 1) / idx.chunk_size,
		   "count %llu", (unsigned long long)idx.count);
	FUZZ_CHECK(size == 64 + 32 * idx.count, "size %zu for count %llu", size,
		   (unsigned long long)idx.count);
	FUZZ_CHECK((idx.count == 0) == (idx.digests == NULL), "digests");
	for (uint64_t i = 0; i < idx.count; i++) {
		uint32_t n = repo_index_chunk_len(&idx, i);

		FUZZ_CHECK(n > 0 && n <= idx.chunk_size, "chunk %llu of %u bytes",
			   (unsigned long long)i, n);
		(void)repo_index_is_hole(&idx, i);
	}
	FUZZ_CHECK(repo_index_chunk_len(&idx, idx.count) == 0, "past the end");

	rc = repo_index_encode(&idx, &again, &len);
	FUZZ_CHECK(rc == 0, "re-encoding failed: %d", rc);
	FUZZ_CHECK(len == size && memcmp(again, data, size) == 0,
		   "re-encoded differently (%zu bytes, input %zu)", len, size);
	free(again);
	repo_index_release(&idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *sealed;

	check(data, size);
	if (size < 32)
		return 0;
	sealed = g_memdup2(data, size);
	FUZZ_CHECK(digest_sha256(sealed, size - 32, sealed + size - 32) == 0,
		   "sha256");
	check(sealed, size);
	g_free(sealed);
	return 0;
}
