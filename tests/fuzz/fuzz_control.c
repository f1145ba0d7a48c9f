/*
 * fuzz_control.c - engine/names.c: control_parse(), the bytes of one
 * write(2) to volumes/<vol>/control, and snap_name_valid().
 *
 * Both are checked against a reference written here independently of
 * names.c (a differential test): the same inputs must be accepted, with
 * the same result.  Invariants besides (engine/control.h):
 *  - the result is 0 or -EINVAL, and a refusal always says why (a
 *    non-empty sentence);
 *  - on success the verb is inside the enum, the snapshot name (and for
 *    clone the new volume's name) is a valid name, newvol is empty for the
 *    other verbs, and the canonical text "verb snap [newvol]" parses to
 *    the same command;
 *  - snap_name_valid() of the input agrees with the reference definition.
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

/* The reference: words split on blanks, <verb> <snap> [<newvol>]. */
static int reference(const uint8_t *data, size_t len, struct control_cmd *out)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) parts = NULL;
	const char *w[4];
	int n = 0;

	memset(out, 0, sizeof(*out));
	if (len > 0 && data[len - 1] == '\n')
		len--;
	/* names.c copies at most 3 * (SNAP_NAME_MAX + 8) - 1 bytes */
	if (len == 0 || len >= 3 * (SNAP_NAME_MAX + 8) ||
	    memchr(data, '\0', len) || memchr(data, '\n', len))
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
	if (n == 2 && !strcmp(w[0], "retry"))
		out->verb = CONTROL_VERB_RETRY;
	else if (n == 2 && !strcmp(w[0], "revert"))
		out->verb = CONTROL_VERB_REVERT;
	else if (n == 3 && !strcmp(w[0], "clone"))
		out->verb = CONTROL_VERB_CLONE;
	else if (n == 2 && !strcmp(w[0], "verify"))
		out->verb = CONTROL_VERB_VERIFY;
	else
		return -EINVAL;
	if (!fuzz_name_ok(w[1]) || (n == 3 && !fuzz_name_ok(w[2])))
		return -EINVAL;
	strcpy(out->snap, w[1]);
	if (n == 3)
		strcpy(out->newvol, w[2]);
	return 0;
}

static bool same(const struct control_cmd *a, const struct control_cmd *b)
{
	return a->verb == b->verb && !strcmp(a->snap, b->snap) &&
	       !strcmp(a->newvol, b->newvol);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *name = fuzz_cstr(data, size);
	g_autofree char *text = NULL;
	struct control_cmd cmd, ref, again;
	const char *why = NULL;
	int rc, want;

	rc = snap_name_valid(name);
	FUZZ_CHECK(rc == (fuzz_name_ok(name) ? 0 : -EINVAL),
		   "snap_name_valid('%s') = %d", name, rc);

	memset(&cmd, 0xa5, sizeof(cmd));
	rc = control_parse((const char *)data, size, &cmd, &why);
	want = reference(data, size, &ref);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	FUZZ_CHECK(rc == want, "control_parse %d, reference %d (%s)", rc, want,
		   why ? why : "-");
	if (rc < 0) {
		FUZZ_CHECK(why && *why, "refused without a reason");
		return 0;
	}
	FUZZ_CHECK(fuzz_terminated(cmd.snap, sizeof(cmd.snap)) &&
		   fuzz_terminated(cmd.newvol, sizeof(cmd.newvol)),
		   "names not terminated");
	FUZZ_CHECK((unsigned)cmd.verb < CONTROL_VERB_LAST, "verb %d",
		   (int)cmd.verb);
	FUZZ_CHECK(snap_name_valid(cmd.snap) == 0, "snap '%s'", cmd.snap);
	FUZZ_CHECK(cmd.verb == CONTROL_VERB_CLONE ?
			   snap_name_valid(cmd.newvol) == 0 :
			   cmd.newvol[0] == '\0',
		   "verb %d newvol '%s'", (int)cmd.verb, cmd.newvol);
	FUZZ_CHECK(same(&cmd, &ref), "'%s %s %s' vs reference '%s %s %s'",
		   control_verb_name(cmd.verb), cmd.snap, cmd.newvol,
		   control_verb_name(ref.verb), ref.snap, ref.newvol);

	text = cmd.verb == CONTROL_VERB_CLONE ?
		       g_strdup_printf("%s %s %s\n", control_verb_name(cmd.verb),
				       cmd.snap, cmd.newvol) :
		       g_strdup_printf("%s %s\n", control_verb_name(cmd.verb),
				       cmd.snap);
	rc = control_parse(text, strlen(text), &again, NULL);
	FUZZ_CHECK(rc == 0 && same(&again, &cmd), "'%s' does not parse back",
		   text);
	return 0;
}
