/*
 * test_json.c - engine/json.c: the builder's exact text, round trips
 * through the parser, NULL strings as null, escaping, and documents the
 * parser must refuse.
 */
#include <errno.h>
#include <stdint.h>

#include "unit.h"
#include "json.h"

static void test_build_plain(void **state)
{
	char *list[] = { "a", "b c", NULL };
	struct jdoc *d = jdoc_new();
	char *text;

	assert_non_null(d);
	jdoc_str(d, "name", "vm1");
	jdoc_int(d, "size", 10737418240);
	jdoc_int(d, "zero", 0);
	jdoc_bool(d, "on", true);
	jdoc_bool(d, "off", false);
	jdoc_strv(d, "list", list);
	jdoc_strv(d, "none", NULL);
	jdoc_str(d, "vm", NULL);
	text = jdoc_finish(d, false, false);
	assert_non_null(text);
	/* keys in the order they were added, one line */
	assert_string_equal(text, "{\"name\":\"vm1\",\"size\":10737418240,"
				  "\"zero\":0,\"on\":true,\"off\":false,"
				  "\"list\":[\"a\",\"b c\"],\"none\":[],"
				  "\"vm\":null}");
	g_free(text);

	d = jdoc_new();
	text = jdoc_finish(d, false, true);
	assert_string_equal(text, "{}\n");
	g_free(text);
}

static void test_build_pretty(void **state)
{
	struct jdoc *d = jdoc_new(), *back = NULL;
	char *text, **lines;
	int64_t v;

	jdoc_str(d, "name", "vm1");
	jdoc_int(d, "n", 7);
	text = jdoc_finish(d, true, true);
	assert_non_null(text);
	assert_true(g_str_has_suffix(text, "}\n"));
	assert_true(g_str_has_prefix(text, "{\n"));
	/* one member per line */
	assert_non_null(strstr(text, "\"name\": \"vm1\",\n"));
	assert_non_null(strstr(text, "\"n\": 7\n"));
	lines = g_strsplit(text, "\n", -1); /* {, 2 members, }, "" */
	assert_int_equal(g_strv_length(lines), 5);
	g_strfreev(lines);
	assert_errno(jdoc_parse(text, &back), 0);
	assert_string_equal(jdoc_get_str(back, "name"), "vm1");
	assert_errno(jdoc_get_int(back, "n", &v), 0);
	assert_int_equal(v, 7);
	jdoc_free(back);
	g_free(text);
}

static void test_round_trip(void **state)
{
	char *list[] = { "x", NULL };
	struct jdoc *d = jdoc_new(), *back = NULL;
	char *text;
	int64_t v = 1;

	jdoc_str(d, "s", "value");
	jdoc_str(d, "empty", "");
	jdoc_str(d, "null", NULL);
	jdoc_int(d, "max", INT64_MAX);
	jdoc_int(d, "min", INT64_MIN);
	jdoc_int(d, "neg", -5);
	jdoc_bool(d, "b", true);
	jdoc_strv(d, "v", list);
	text = jdoc_finish(d, false, true);
	assert_non_null(text);
	assert_errno(jdoc_parse(text, &back), 0);
	g_free(text);

	assert_string_equal(jdoc_get_str(back, "s"), "value");
	assert_string_equal(jdoc_get_str(back, "empty"), "");
	assert_errno(jdoc_get_int(back, "max", &v), 0);
	assert_true(v == INT64_MAX);
	assert_errno(jdoc_get_int(back, "min", &v), 0);
	assert_true(v == INT64_MIN);
	assert_errno(jdoc_get_int(back, "neg", &v), 0);
	assert_int_equal(v, -5);

	/* null is not a string; an absent key is absent */
	assert_null(jdoc_get_str(back, "null"));
	assert_null(jdoc_get_str(back, "absent"));
	v = 99;
	assert_errno(jdoc_get_int(back, "absent", &v), -ENOENT);
	assert_int_equal(v, 99);
	/* wrong types */
	assert_errno(jdoc_get_int(back, "s", &v), -EINVAL);
	assert_errno(jdoc_get_int(back, "b", &v), -EINVAL);
	assert_errno(jdoc_get_int(back, "v", &v), -EINVAL);
	assert_errno(jdoc_get_int(back, "null", &v), -EINVAL);
	assert_int_equal(v, 99);
	assert_null(jdoc_get_str(back, "max"));
	assert_null(jdoc_get_str(back, "v"));
	assert_null(jdoc_get_obj(back, "s"));
	assert_null(jdoc_get_obj(back, "absent"));
	jdoc_free(back);
}

static void test_null_string(void **state)
{
	struct jdoc *d = jdoc_new();
	char *text;

	jdoc_str(d, "vm", NULL);
	jdoc_str(d, "error", NULL);
	text = jdoc_finish(d, false, false);
	assert_string_equal(text, "{\"vm\":null,\"error\":null}");
	g_free(text);
}

static void test_same_key_twice(void **state)
{
	struct jdoc *d = jdoc_new();
	char *text;

	/* the later value wins; the key is not repeated */
	jdoc_str(d, "k", "first");
	jdoc_str(d, "k", "second");
	text = jdoc_finish(d, false, false);
	assert_string_equal(text, "{\"k\":\"second\"}");
	g_free(text);
}

static void test_escaping(void **state)
{
	static const char *const nasty[] = {
		"quote \" here",
		"back\\slash",
		"line\nbreak",
		"tab\there",
		"cr\rlf",
		"bell\x07 and \x01 and \x1f",
		"caf\xc3\xa9 \xe2\x82\xac",
		"/srv/primary/vm1.qcow2",
		"}{\",:[]",
	};
	struct jdoc *d = jdoc_new(), *back = NULL;
	char *text;

	for (size_t i = 0; i < G_N_ELEMENTS(nasty); i++) {
		g_autofree char *key = g_strdup_printf("k%zu", i);

		jdoc_str(d, key, nasty[i]);
	}
	jdoc_str(d, "key \"with\" quotes\n", "v");
	text = jdoc_finish(d, false, true);
	assert_non_null(text);

	/* one line: the only raw newline is the last byte */
	assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
	assert_null(strchr(text, '\r'));
	assert_null(strchr(text, '\t'));
	for (const char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\n') {
			print_error("raw control byte 0x%02x in %s\n", *p,
				    text);
			fail();
		}
	assert_non_null(strstr(text, "\"k0\":\"quote \\\" here\""));
	assert_non_null(strstr(text, "\"k1\":\"back\\\\slash\""));
	assert_non_null(strstr(text, "\"k2\":\"line\\nbreak\""));
	assert_non_null(strstr(text, "\"k3\":\"tab\\there\""));
	assert_non_null(strstr(text, "\\u0001"));
	/* UTF-8 passes through, and paths keep their slashes */
	assert_non_null(strstr(text, "caf\xc3\xa9 \xe2\x82\xac"));
	assert_non_null(strstr(text, "\"k7\":\"/srv/primary/vm1.qcow2\""));
	assert_non_null(strstr(text, "\"key \\\"with\\\" quotes\\n\":\"v\""));

	/* and all of it comes back unchanged */
	assert_errno(jdoc_parse(text, &back), 0);
	for (size_t i = 0; i < G_N_ELEMENTS(nasty); i++) {
		g_autofree char *key = g_strdup_printf("k%zu", i);

		assert_string_equal(jdoc_get_str(back, key), nasty[i]);
	}
	assert_string_equal(jdoc_get_str(back, "key \"with\" quotes\n"), "v");
	jdoc_free(back);
	g_free(text);
}

static void test_parse_nested(void **state)
{
	struct jdoc *d = NULL, *inner, *deeper;
	int64_t v;

	/* what `qemu-img info --output=json` prints, in part */
	assert_errno(jdoc_parse("{\n    \"virtual-size\": 4194304,\n"
				"    \"filename\": \"/p/top.qcow2\",\n"
				"    \"format-specific\": {\n"
				"        \"type\": \"qcow2\",\n"
				"        \"data\": {\"compat\": \"1.1\"}\n"
				"    },\n    \"dirty-flag\": false\n}\n",
				&d),
		     0);
	assert_errno(jdoc_get_int(d, "virtual-size", &v), 0);
	assert_int_equal(v, 4194304);
	assert_string_equal(jdoc_get_str(d, "filename"), "/p/top.qcow2");
	assert_null(jdoc_get_str(d, "backing-filename"));
	inner = jdoc_get_obj(d, "format-specific");
	assert_non_null(inner);
	assert_string_equal(jdoc_get_str(inner, "type"), "qcow2");
	deeper = jdoc_get_obj(inner, "data");
	assert_non_null(deeper);
	assert_string_equal(jdoc_get_str(deeper, "compat"), "1.1");
	assert_null(jdoc_get_obj(d, "dirty-flag"));
	assert_null(jdoc_get_obj(d, "virtual-size"));
	jdoc_free(d);
	jdoc_free(NULL);
}

static void test_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"",	  " ",	     "[]",	 "[{}]",     "1",
		"-1",	  "1.5",     "\"s\"",	 "null",     "true",
		"false",  "{",	     "}",	 "{\"a\":}", "{\"a\" 1}",
		"{\"a\":1", "not json", "{\"a\":tru}", "\xef\xbb\xbf",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		struct jdoc *d = (struct jdoc *)0x1;

		if (jdoc_parse(bad[i], &d) != -EINVAL) {
			print_error("jdoc_parse(\"%s\") accepted\n", bad[i]);
			fail();
		}
		/* *out is only written on success */
		assert_ptr_equal(d, (struct jdoc *)0x1);
	}
}

/*
 * ENGINE BUG (engine/json.c): jdoc_parse() says @text "must hold one
 * object", but json_tokener_parse() stops after the first complete value
 * and ignores whatever follows, so two objects, or an object followed by
 * garbage, are accepted as the first object alone.
 */
static void test_bug_parse_trailing(void **state)
{
	static const char *const bad[] = {
		"{}{}",
		"{\"a\":1}{\"a\":2}",
		"{\"a\":1} garbage",
		"{\"a\":1}]",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		struct jdoc *d = NULL;

		if (jdoc_parse(bad[i], &d) != -EINVAL) {
			jdoc_free(d);
			print_error("jdoc_parse(\"%s\") accepted\n", bad[i]);
			fail();
		}
	}
}

/* Not JSON, once taken by json-c's lenient mode (fuzz finding
 * tests/fuzz/corpus/json/trailing-comment.json): comments, trailing
 * commas, blanks JSON does not know. */
static void test_parse_strict(void **state)
{
	static const char *const bad[] = {
		"{\"virtual-size\": 1}  // not JSON, yet accepted\n",
		"{\"a\":1} /* c */",
		"/* c */ {\"a\":1}",
		"{\"a\": /* c */ 1}",
		"{\"a\":1,}",
		"{\"a\":[1,]}",
		"{\"a\":1}\v",
		"{\"a\":1}\f",
		"{\"a\":01}",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		struct jdoc *d = NULL;

		if (jdoc_parse(bad[i], &d) != -EINVAL) {
			jdoc_free(d);
			print_error("jdoc_parse(\"%s\") accepted\n", bad[i]);
			fail();
		}
	}
}

static void test_parse_accepts_whitespace(void **state)
{
	struct jdoc *d = NULL;

	/* a trailing newline (JSON Lines, a file) is no second value */
	assert_errno(jdoc_parse("{\"a\":\"b\"}\n", &d), 0);
	assert_string_equal(jdoc_get_str(d, "a"), "b");
	jdoc_free(d);
	assert_errno(jdoc_parse("  {}  \n", &d), 0);
	jdoc_free(d);
	assert_errno(jdoc_parse("\r\n\t{}\r\n", &d), 0);
	jdoc_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_plain),
		cmocka_unit_test(test_build_pretty),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_null_string),
		cmocka_unit_test(test_same_key_twice),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_parse_nested),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_bug_parse_trailing),
		cmocka_unit_test(test_parse_strict),
		cmocka_unit_test(test_parse_accepts_whitespace),
	};

	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
