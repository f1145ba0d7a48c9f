/*
 * fuzz_restore.c - engine/names.c: restore_parse(), the bytes of one
 * write(2) to MOUNT/control (issue 14).
 *
 * Checked against a reference written here independently of names.c (a
 * differential test): the same inputs must be accepted, with the same
 * result.  Invariants besides (engine/control.h):
 *  - the result is 0 or -EINVAL, and a refusal always says why (a
 *    non-empty sentence) and leaves the command zeroed;
 *  - on success host, volume, snapshot and new volume are valid names,
 *    and the canonical text "restore h/v/s n" parses to the same command.
 */
#include <errno.h>

#include "fuzz.h"
#include "snap.h"
#include "control.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

/* names.c's line buffer: longer commands are refused */
#define LINE_MAX_BYTES (4 * (SNAP_NAME_MAX + 2) + 16)

/* The reference: words split on blanks, restore <h>/<v>/<s> <newvol>. */
static int reference(const uint8_t *data, size_t len, struct restore_cmd *out)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) parts = NULL, path = NULL;
	const char *w[4];
	int n = 0;

	memset(out, 0, sizeof(*out));
	if (memchr(data, '\0', len))
		return -EINVAL;
	if (len > 0 && data[len - 1] == '\n')
		len--;
	if (memchr(data, '\n', len) || len >= LINE_MAX_BYTES)
		return -EINVAL;
	text = g_strndup((const char *)data, len);
	parts = g_strsplit_set(text, " \t", -1);
	for (char **p = parts; *p; p++) {
		if (!**p)
			continue;
		if (n == 4)
			return -EINVAL;
		w[n++] = *p;
	}
	if (n != 3 || strcmp(w[0], "restore") != 0)
		return -EINVAL;
	path = g_strsplit(w[1], "/", -1);
	if (g_strv_length(path) != 3 || !fuzz_name_ok(path[0]) ||
	    !fuzz_name_ok(path[1]) || !fuzz_name_ok(path[2]) || !fuzz_name_ok(w[2]))
		return -EINVAL;
	strcpy(out->host, path[0]);
	strcpy(out->vol, path[1]);
	strcpy(out->snap, path[2]);
	strcpy(out->newvol, w[2]);
	return 0;
}

static bool same(const struct restore_cmd *a, const struct restore_cmd *b)
{
	return !strcmp(a->host, b->host) && !strcmp(a->vol, b->vol) &&
	       !strcmp(a->snap, b->snap) && !strcmp(a->newvol, b->newvol);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct restore_cmd zero;
	g_autofree char *canon = NULL;
	struct restore_cmd cmd, ref, again;
	const char *why = NULL;
	int rc, rrc;

	rc = restore_parse((const char *)data, size, &cmd, &why);
	rrc = reference(data, size, &ref);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	FUZZ_CHECK(rc == rrc, "restore_parse %d, reference %d", rc, rrc);
	if (rc < 0) {
		FUZZ_CHECK(why && why[0], "refused without a reason");
		FUZZ_CHECK(!memcmp(&cmd, &zero, sizeof(cmd)), "not zeroed on failure");
		return 0;
	}
	FUZZ_CHECK(same(&cmd, &ref), "differs from the reference");
	canon = g_strdup_printf("restore %s/%s/%s %s", cmd.host, cmd.vol, cmd.snap,
				cmd.newvol);
	FUZZ_CHECK(restore_parse(canon, strlen(canon), &again, NULL) == 0 &&
		   same(&again, &cmd), "canonical '%s' parses differently", canon);
	return 0;
}
