/*
 * fuzz_qemu_img.c - engine/image.c: what snapfs reads from qcow2 files and
 * from qemu-img: image_parse_header() (the first bytes of every volume
 * file found on primary storage, which anyone may drop there),
 * image_parse_progress() (each line `qemu-img convert -p` prints) and
 * image_stderr_errno() (qemu-img's error text).
 *
 * The input is used three ways: as the first bytes of a file, as output
 * split into lines at '\r' and '\n' as copy.c reads it, and as stderr.
 *
 * Invariants (engine/image.h):
 *  - header: the result is 0, -EINVAL or -E2BIG, exactly as an independent
 *    reading of the qcow2 header fields says; the backing name is always
 *    NUL-terminated, and on success is exactly the bytes the header points
 *    at (none of them NUL) and the other fields are the header's;
 *  - progress: 0 only for a line holding "(<number>/100%)", with a finite
 *    percentage in [0, 100]; *percent untouched otherwise;
 *  - stderr: one of the documented errnos, the one the message names.
 */
#include <errno.h>
#include <math.h>

#include "fuzz.h"
#include "image.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void check_header(const uint8_t *data, size_t size)
{
	struct qcow2_header h;
	uint64_t version, boff, bsize, cbits;
	int rc, want;

	memset(&h, 0xa5, sizeof(h));
	rc = image_parse_header(data, size, &h);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG, "rc %d", rc);
	FUZZ_CHECK(fuzz_terminated(h.backing, sizeof(h.backing)),
		   "backing not terminated (rc %d)", rc);

	if (size < 72 || memcmp(data, "QFI\xfb", 4) != 0) {
		FUZZ_CHECK(rc == -EINVAL, "not qcow2, rc %d", rc);
		return;
	}
	version = be(data + 4, 4);
	boff = be(data + 8, 8);
	bsize = be(data + 16, 4);
	cbits = be(data + 20, 4);
	if (version < 2 || version > 3 || cbits < 9 || cbits > 21)
		want = -EINVAL;
	else if (boff == 0)
		want = 0;
	else if (bsize == 0)
		want = -EINVAL;
	else if (bsize > 4095 || boff > size || bsize > size - boff)
		want = -E2BIG;
	else if (memchr(data + boff, '\0', bsize))
		want = -EINVAL;
	else
		want = 0;
	FUZZ_CHECK(rc == want, "rc %d, expected %d", rc, want);
	if (rc < 0)
		return;
	FUZZ_CHECK(h.version == version && h.cluster_bits == cbits &&
		   h.virtual_size == be(data + 24, 8), "fields differ");
	if (boff == 0)
		FUZZ_CHECK(h.backing[0] == '\0', "backing without offset");
	else
		FUZZ_CHECK(strlen(h.backing) == bsize &&
			   !memcmp(h.backing, data + boff, bsize),
			   "backing name differs");
}

static void check_progress(const char *line)
{
	double pct = -7.0;
	int rc = image_parse_progress(line, &pct);

	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	if (rc < 0) {
		FUZZ_CHECK(pct == -7.0, "*percent changed on failure");
		return;
	}
	FUZZ_CHECK(isfinite(pct) && pct >= 0.0 && pct <= 100.0, "%g", pct);
	FUZZ_CHECK(strchr(line, '(') && strstr(line, "/100%)"), "'%s'", line);
}

static void check_stderr(const char *text)
{
	int rc = image_stderr_errno(text), want = -EIO;

	if (strstr(text, "No space left on device"))
		want = -ENOSPC;
	else if (strstr(text, "Disk quota exceeded"))
		want = -EDQUOT;
	else if (strstr(text, "Permission denied"))
		want = -EACCES;
	else if (strstr(text, "Failed to get") && strstr(text, "lock"))
		want = -EBUSY;
	else if (strstr(text, "No such file or directory"))
		want = -ENOENT;
	FUZZ_CHECK(rc == want, "rc %d, expected %d", rc, want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *text = fuzz_cstr(data, size);
	g_auto(GStrv) lines = NULL;

	check_header(data, size);
	lines = g_strsplit_set(text, "\r\n", -1);
	for (char **l = lines; *l; l++)
		check_progress(*l);
	check_stderr(text);
	FUZZ_CHECK(image_stderr_errno(NULL) == -EIO, "NULL text");
	return 0;
}
