/*
 * fuzz_vm_control.c - engine/names.c: vm_control_parse(), the bytes of
 * one write(2) to vms/<vm>/control.
 *
 * Checked against a reference written here independently of names.c (a
 * differential test): the same inputs must be accepted, with the same
 * result.  Invariants besides (engine/control.h):
 *  - the result is 0 or -EINVAL; a refusal always says why (a non-empty
 *    sentence) and leaves the command zeroed;
 *  - on success the input was at most VM_CONTROL_MAX bytes, the verb is
 *    inside the enum, revert's snapshot name is a valid name and the
 *    other verbs have none;
 *  - the canonical text "verb [snap]\n" parses to the same command, and
 *    so does it padded with blanks and ended with "\r\n".
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

/* The reference: strip one newline, then white space, split on blanks. */
static int reference(const uint8_t *data, size_t len,
		     struct vm_control_cmd *out)
{
	static const char *const verbs[VM_CONTROL_VERB_LAST] = {
		"start", "stop", "force-stop", "revert"};
	g_autofree char *text = NULL;
	g_auto(GStrv) parts = NULL;
	const char *w[3];
	int n = 0, v;

	memset(out, 0, sizeof(*out));
	if (len > 300 || memchr(data, '\0', len))
		return -EINVAL;
	if (len > 0 && data[len - 1] == '\n')
		len--;
	if (memchr(data, '\n', len))
		return -EINVAL;
	text = g_strndup((const char *)data, len);
	parts = g_strsplit_set(g_strstrip(text), " \t", -1);
	for (char **p = parts; *p; p++) {
		if (!**p)
			continue;
		if (n == 3)
			return -EINVAL;
		w[n++] = *p;
	}
	if (n == 0)
		return -EINVAL;
	for (v = 0; v < VM_CONTROL_VERB_LAST; v++)
		if (!strcmp(w[0], verbs[v]))
			break;
	if (v == VM_CONTROL_VERB_LAST)
		return -EINVAL;
	if (v == VM_CONTROL_VERB_REVERT ? n != 2 || !fuzz_name_ok(w[1])
					: n != 1)
		return -EINVAL;
	out->verb = v;
	if (n == 2)
		strcpy(out->snap, w[1]);
	return 0;
}

static bool same(const struct vm_control_cmd *a, const struct vm_control_cmd *b)
{
	return a->verb == b->verb && !strcmp(a->snap, b->snap);
}

static void parses_back(const char *text, const struct vm_control_cmd *cmd)
{
	struct vm_control_cmd again;
	const char *why = NULL;
	int rc = vm_control_parse(text, strlen(text), &again, &why);

	FUZZ_CHECK(rc == 0 && same(&again, cmd),
		   "'%s' does not parse back: %d (%s)", text, rc,
		   why ? why : "-");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct vm_control_cmd zero;
	g_autofree char *text = NULL, *padded = NULL;
	struct vm_control_cmd cmd, ref;
	const char *why = NULL, *verb;
	int rc, want;

	memset(&cmd, 0xa5, sizeof(cmd));
	rc = vm_control_parse((const char *)data, size, &cmd, &why);
	want = reference(data, size, &ref);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	FUZZ_CHECK(rc == want, "vm_control_parse %d, reference %d (%s)", rc,
		   want, why ? why : "-");
	if (rc < 0) {
		FUZZ_CHECK(why && *why, "refused without a reason");
		FUZZ_CHECK(!memcmp(&cmd, &zero, sizeof(cmd)),
			   "a refused command is not zeroed");
		return 0;
	}
	FUZZ_CHECK(size <= VM_CONTROL_MAX, "%zu bytes accepted", size);
	FUZZ_CHECK((unsigned)cmd.verb < VM_CONTROL_VERB_LAST, "verb %d",
		   (int)cmd.verb);
	FUZZ_CHECK(fuzz_terminated(cmd.snap, sizeof(cmd.snap)),
		   "snap not terminated");
	FUZZ_CHECK(cmd.verb == VM_CONTROL_VERB_REVERT ? fuzz_name_ok(cmd.snap)
						      : cmd.snap[0] == '\0',
		   "verb %d snap '%s'", (int)cmd.verb, cmd.snap);
	FUZZ_CHECK(same(&cmd, &ref), "'%s %s' vs reference '%s %s'",
		   vm_control_verb_name(cmd.verb), cmd.snap,
		   vm_control_verb_name(ref.verb), ref.snap);

	verb = vm_control_verb_name(cmd.verb);
	text = cmd.snap[0] ? g_strdup_printf("%s %s\n", verb, cmd.snap)
			   : g_strdup_printf("%s\n", verb);
	parses_back(text, &cmd);
	padded = cmd.snap[0]
			 ? g_strdup_printf(" \t%s \t %s \r\n", verb, cmd.snap)
			 : g_strdup_printf("\t %s\r\n", verb);
	parses_back(padded, &cmd);
	return 0;
}
