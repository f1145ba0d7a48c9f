/*
 * fuzz_json.c - engine/json.c: jdoc_parse() of what snapfs reads as JSON
 * (`qemu-img info --output=json`, QMP replies, the catalog's alert
 * bodies), the accessors copy.c and freeze.c use on them, and
 * json_quote(), which puts file names into QMP commands.
 *
 * Invariants (engine/json.h):
 *  - the result is 0, -EINVAL or -ENOMEM; on success the text is one
 *    object: its last non-blank byte is '}';
 *  - the accessors answer without crashing on any shape: a string member
 *    is a string, an integer member an integer, array indices in range;
 *  - serializing a parsed document gives text that parses again and
 *    serializes to the same text (a fixed point: jdoc_parse is strict,
 *    json-c's comments and the like are refused);
 *  - json_quote(input) is one JSON string literal: put in an object it
 *    parses, and reads back as exactly the input's bytes (a name cannot
 *    break out of the QMP command it is put into).
 */
#include <errno.h>

#include "fuzz.h"
#include "json.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

/* What copy_verify() and freeze.c's top_node() read. */
static void read_like_snapfs(struct jdoc *d)
{
	int64_t v = 0;
	int n, rc;

	(void)jdoc_get_str(d, "backing-filename");
	rc = jdoc_get_int(d, "virtual-size", &v);
	FUZZ_CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL, "rc %d", rc);
	n = jdoc_array_len(d, "return");
	FUZZ_CHECK(n >= 0 || n == -ENOENT, "len %d", n);
	for (int i = -1; i <= n; i++) {
		struct jdoc *dev = jdoc_array_obj(d, "return", i);
		struct jdoc *ins;
		const char *s;

		if (i < 0 || i >= n) {
			FUZZ_CHECK(dev == NULL, "index %d of %d", i, n);
			continue;
		}
		if (!dev)
			continue;
		s = jdoc_get_str(dev, "qdev");
		(void)(s && strlen(s));
		s = jdoc_get_str(dev, "device");
		(void)(s && strlen(s));
		ins = jdoc_get_obj(dev, "inserted");
		if (ins) {
			s = jdoc_get_str(ins, "node-name");
			(void)(s && strlen(s));
		}
	}
}

static void check_quote(const char *s)
{
	g_autofree char *q = json_quote(s);
	g_autofree char *obj = NULL;
	struct jdoc *d = NULL;
	const char *back;
	int rc;

	FUZZ_CHECK(q && q[0] == '"' && q[strlen(q) - 1] == '"', "quote '%s'",
		   q ? q : "(null)");
	obj = g_strdup_printf("{\"filename\":%s}", q);
	rc = jdoc_parse(obj, &d);
	FUZZ_CHECK(rc == 0, "'%s' does not parse", obj);
	back = jdoc_get_str(d, "filename");
	FUZZ_CHECK(back && !strcmp(back, s), "'%s' reads back differently", obj);
	jdoc_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *text = fuzz_cstr(data, size);
	g_autofree char *once = NULL, *twice = NULL;
	struct jdoc *d = NULL;
	size_t end;
	int rc;

	check_quote(text);

	rc = jdoc_parse(text, &d);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM, "rc %d", rc);
	if (rc < 0)
		return 0;
	end = strlen(text);
	while (end > 0 && g_ascii_isspace(text[end - 1]))
		end--;
	FUZZ_CHECK(end > 0 && text[end - 1] == '}', "accepted '%s'", text);
	read_like_snapfs(d);

	once = jdoc_finish(d, false, false);
	FUZZ_CHECK(once != NULL, "no text");
	rc = jdoc_parse(once, &d);
	FUZZ_CHECK(rc == 0, "its own text '%s' does not parse", once);
	twice = jdoc_finish(d, false, false);
	FUZZ_CHECK(twice && !strcmp(once, twice), "'%s' then '%s'", once,
		   twice ? twice : "(null)");
	return 0;
}
