/*
 * fuzz_snapshot_options.c - engine/settings.c: snapshot_options_parse(),
 * the bytes of one write(2) to vms/<vm>/snapshot-options.
 *
 * Checked against a reference written here independently of settings.c
 * (a differential test).  Invariants besides (engine/settings.h):
 *  - the result is 0 or -EINVAL; a refusal always says why and leaves
 *    *out untouched;
 *  - on success an option not given reads false, and the input held no
 *    newline but a last one;
 *  - the canonical text of what was given ("memory=.. quiesce=..", in
 *    either order, which a byte of the input picks) parses to the same
 *    result, and so does the text the engine stores ("memory=%s
 *    quiesce=%s", both given);
 *  - giving an accepted option once more, or adding a second line, is
 *    refused.
 */
#include <errno.h>

#include "fuzz.h"
#include "settings.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

static const char *yes_no(bool b)
{
	return b ? "yes" : "no";
}

/* The reference: one line of blank-separated key=value words. */
static int reference(const uint8_t *data, size_t len,
		     struct snapshot_options *out)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) words = NULL;

	memset(out, 0, sizeof(*out));
	if (memchr(data, '\0', len))
		return -EINVAL;
	if (len > 0 && data[len - 1] == '\n')
		len--;
	if (memchr(data, '\n', len))
		return -EINVAL;
	text = g_strndup((const char *)data, len);
	words = g_strsplit_set(g_strstrip(text), " \t", -1);
	for (char **w = words; *w; w++) {
		char *eq = strchr(*w, '=');
		bool *value, *given;

		if (!**w)
			continue;
		if (!eq)
			return -EINVAL;
		*eq = '\0';
		if (!strcmp(*w, "memory")) {
			value = &out->memory;
			given = &out->has_memory;
		} else if (!strcmp(*w, "quiesce")) {
			value = &out->quiesce;
			given = &out->has_quiesce;
		} else {
			return -EINVAL;
		}
		if (*given || (strcmp(eq + 1, "yes") && strcmp(eq + 1, "no")))
			return -EINVAL;
		*given = true;
		*value = !strcmp(eq + 1, "yes");
	}
	return 0;
}

static bool same(const struct snapshot_options *a,
		 const struct snapshot_options *b)
{
	return a->memory == b->memory && a->quiesce == b->quiesce &&
	       a->has_memory == b->has_memory &&
	       a->has_quiesce == b->has_quiesce;
}

static int parse_str(const char *text, struct snapshot_options *out,
		     const char **why)
{
	return snapshot_options_parse(text, strlen(text), out, why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *canon = NULL, *stored = NULL, *twice = NULL;
	g_autofree char *line = NULL, *two_lines = NULL;
	struct snapshot_options o, before, ref, again;
	const char *why = NULL, *why2 = NULL;
	size_t n;
	int rc, want;

	memset(&o, 0xa5, sizeof(o));
	before = o;
	rc = snapshot_options_parse((const char *)data, size, &o, &why);
	want = reference(data, size, &ref);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	FUZZ_CHECK(rc == want, "snapshot_options_parse %d, reference %d (%s)",
		   rc, want, why ? why : "-");
	if (rc < 0) {
		FUZZ_CHECK(why && *why, "refused without a reason");
		FUZZ_CHECK(!memcmp(&o, &before, sizeof(o)),
			   "a refusal changed *out");
		return 0;
	}
	FUZZ_CHECK(same(&o, &ref), "memory %d/%d quiesce %d/%d vs reference",
		   o.has_memory, o.memory, o.has_quiesce, o.quiesce);
	FUZZ_CHECK((o.has_memory || !o.memory) && (o.has_quiesce || !o.quiesce),
		   "a value for an option not given");
	n = size > 0 && data[size - 1] == '\n' ? size - 1 : size;
	FUZZ_CHECK(!memchr(data, '\n', n), "several lines accepted");

	/* what was given, in the order a byte of the input picks */
	{
		g_autofree char *m =
			o.has_memory
				? g_strdup_printf("memory=%s", yes_no(o.memory))
				: g_strdup("");
		g_autofree char *q =
			o.has_quiesce ? g_strdup_printf("quiesce=%s",
							yes_no(o.quiesce))
				      : g_strdup("");
		bool swap = size > 0 && (data[0] & 1);

		canon = g_strdup_printf("%s %s\n", swap ? q : m, swap ? m : q);
	}
	rc = parse_str(canon, &again, &why2);
	FUZZ_CHECK(rc == 0 && same(&again, &o),
		   "'%s' does not parse back: %d (%s)", canon, rc,
		   why2 ? why2 : "-");

	stored = g_strdup_printf("memory=%s quiesce=%s", yes_no(o.memory),
				 yes_no(o.quiesce));
	rc = parse_str(stored, &again, NULL);
	FUZZ_CHECK(rc == 0 && again.has_memory && again.has_quiesce &&
			   again.memory == o.memory &&
			   again.quiesce == o.quiesce,
		   "stored '%s' does not parse back", stored);

	/* the refusals: a key given twice, a second line */
	line = g_strndup((const char *)data, n);
	if (o.has_memory || o.has_quiesce) {
		twice = g_strdup_printf("%s %s=no\n", line,
					o.has_memory ? "memory" : "quiesce");
		rc = parse_str(twice, &again, &why2);
		FUZZ_CHECK(rc == -EINVAL && why2 && *why2,
			   "an option given twice accepted: %d", rc);
	}
	two_lines = g_strdup_printf("%s\nmemory=no\n", line);
	why2 = NULL;
	rc = parse_str(two_lines, &again, &why2);
	FUZZ_CHECK(rc == -EINVAL && why2 && *why2, "a second line accepted: %d",
		   rc);
	return 0;
}
