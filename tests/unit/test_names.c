/*
 * test_names.c - object names (snap_name_valid) and the control command
 * parsers of volumes (control_parse) and VMs (vm_control_parse), all in
 * engine/names.c.
 *
 * Names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-'
 * (docs/tree.md).  A control write is one command, words separated by spaces
 * or tabs, at most one trailing newline.
 */
#include <errno.h>
#include <stdlib.h>

#include "unit.h"
#include "snap.h"
#include "control.h"

/* A name of @len copies of @c (g_free). */
static char *name_of(size_t len, char c)
{
	char *s = g_malloc(len + 1);

	memset(s, c, len);
	s[len] = '\0';
	return s;
}

static void test_name_lengths(void **state)
{
	g_autofree char *n128 = name_of(SNAP_NAME_MAX, 'a');
	g_autofree char *n129 = name_of(SNAP_NAME_MAX + 1, 'a');
	g_autofree char *n4096 = name_of(4096, 'b');

	assert_int_equal(SNAP_NAME_MAX, 128);
	assert_errno(snap_name_valid("a"), 0);
	assert_errno(snap_name_valid("Z"), 0);
	assert_errno(snap_name_valid("7"), 0);
	assert_errno(snap_name_valid(n128), 0);
	assert_errno(snap_name_valid(""), -EINVAL);
	assert_errno(snap_name_valid(n129), -EINVAL);
	assert_errno(snap_name_valid(n4096), -EINVAL);
	assert_errno(snap_name_valid(NULL), -EINVAL);
}

static void test_name_first_byte(void **state)
{
	assert_errno(snap_name_valid("."), -EINVAL);
	assert_errno(snap_name_valid(".."), -EINVAL);
	assert_errno(snap_name_valid(".hidden"), -EINVAL);
	assert_errno(snap_name_valid("-rf"), -EINVAL);
	assert_errno(snap_name_valid("-"), -EINVAL);
	/* only the first byte is special */
	assert_errno(snap_name_valid("a."), 0);
	assert_errno(snap_name_valid("a-"), 0);
	assert_errno(snap_name_valid("a..b"), 0);
	assert_errno(snap_name_valid("_a"), 0);
	assert_errno(snap_name_valid("vm-1.disk_0"), 0);
	assert_errno(snap_name_valid("2026-11-22T07.13"), 0);
}

static void test_name_bad_bytes(void **state)
{
	static const char *const bad[] = {
		"a b",	  " a",	     "a ",	"a/b",	  "/",	     "a\nb",
		"a\n",	  "a\tb",    "a\rb",	"caf\xc3\xa9", "\xc3\xa9",
		"a:b",	  "a*",	     "a?",	"a\\b",	  "a'b",     "a\"b",
		"a$b",	  "a;b",     "a|b",	"a@b",	  "a+b",     "a=b",
		"a~",	  "a%b",     "a,b",	"\x7f",	  "a\x01",   "\xff",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		if (snap_name_valid(bad[i]) != -EINVAL) {
			g_autofree char *esc = g_strescape(bad[i], NULL);

			print_error("name \"%s\" accepted\n", esc);
			fail();
		}
	}
}

static void test_name_every_byte(void **state)
{
	/* the accepted alphabet, byte by byte, in second position */
	for (int c = 1; c < 256; c++) {
		char name[3] = { 'x', (char)c, '\0' };
		bool ok = g_ascii_isalnum(c) || c == '.' || c == '_' ||
			  c == '-';

		if ((snap_name_valid(name) == 0) != ok) {
			print_error("byte 0x%02x: %s\n", c,
				    ok ? "rejected" : "accepted");
			fail();
		}
	}
}

/* ---- control_parse ---------------------------------------------------- */

/* Parse the C string @s (without its NUL). */
static int parse(const char *s, struct control_cmd *cmd, const char **why)
{
	return control_parse(s, strlen(s), cmd, why);
}

/* @buf must be rejected with -EINVAL and a non-empty @why. */
static void expect_bad(const char *buf, size_t len)
{
	struct control_cmd cmd;
	const char *why = NULL;
	int rc = control_parse(buf, len, &cmd, &why);

	if (rc != -EINVAL) {
		g_autofree char *head = g_strndup(buf, len > 200 ? 200 : len);
		g_autofree char *esc = g_strescape(head, NULL);

		print_error("control \"%s\" (%zu bytes) = %d, expected "
			    "-EINVAL\n", esc, len, rc);
		fail();
	}
	assert_non_null(why);
	assert_true(strlen(why) > 0);
}

static void expect_bad_str(const char *s)
{
	expect_bad(s, strlen(s));
}

static void test_control_retry(void **state)
{
	struct control_cmd cmd;
	const char *why = "untouched";

	assert_errno(parse("retry snap1", &cmd, &why), 0);
	assert_int_equal(cmd.verb, CONTROL_VERB_RETRY);
	assert_string_equal(cmd.snap, "snap1");
	assert_string_equal(cmd.newvol, "");
	assert_errno(parse("retry snap1\n", &cmd, NULL), 0);
	assert_int_equal(cmd.verb, CONTROL_VERB_RETRY);
	assert_string_equal(cmd.snap, "snap1");
}

static void test_control_revert(void **state)
{
	struct control_cmd cmd;

	assert_errno(parse("revert before-upgrade\n", &cmd, NULL), 0);
	assert_int_equal(cmd.verb, CONTROL_VERB_REVERT);
	assert_string_equal(cmd.snap, "before-upgrade");
	assert_string_equal(cmd.newvol, "");
}

static void test_control_clone(void **state)
{
	struct control_cmd cmd;
	g_autofree char *n128 = name_of(SNAP_NAME_MAX, 'n');
	g_autofree char *v128 = name_of(SNAP_NAME_MAX, 'v');
	g_autofree char *line = g_strdup_printf("clone %s %s\n", n128, v128);

	assert_errno(parse("clone s1 newvol", &cmd, NULL), 0);
	assert_int_equal(cmd.verb, CONTROL_VERB_CLONE);
	assert_string_equal(cmd.snap, "s1");
	assert_string_equal(cmd.newvol, "newvol");

	/* the longest valid command fits */
	assert_errno(parse(line, &cmd, NULL), 0);
	assert_int_equal(cmd.verb, CONTROL_VERB_CLONE);
	assert_string_equal(cmd.snap, n128);
	assert_string_equal(cmd.newvol, v128);
}

static void test_control_tabs(void **state)
{
	struct control_cmd cmd;

	assert_errno(parse("retry\ts2", &cmd, NULL), 0);
	assert_int_equal(cmd.verb, CONTROL_VERB_RETRY);
	assert_string_equal(cmd.snap, "s2");
	assert_errno(parse("clone\ts1\tv2\n", &cmd, NULL), 0);
	assert_int_equal(cmd.verb, CONTROL_VERB_CLONE);
	assert_string_equal(cmd.snap, "s1");
	assert_string_equal(cmd.newvol, "v2");
	assert_errno(parse("clone s1\tv3", &cmd, NULL), 0);
	assert_string_equal(cmd.newvol, "v3");
}

static void test_control_not_nul_terminated(void **state)
{
	/* the bytes of a write(2) are not a C string: parse only @len */
	static const char buf[] = { 'r', 'e', 't', 'r', 'y', ' ', 's', 'x',
				    'y', 'z' };
	struct control_cmd cmd;

	assert_errno(control_parse(buf, 7, &cmd, NULL), 0);
	assert_string_equal(cmd.snap, "s");
	assert_errno(control_parse(buf, sizeof(buf), &cmd, NULL), 0);
	assert_string_equal(cmd.snap, "sxyz");
}

static void test_control_newlines(void **state)
{
	expect_bad_str("retry s1\n\n");
	expect_bad_str("retry s1\nretry s2\n");
	expect_bad_str("retry s1\nretry s2");
	expect_bad_str("retry\ns1");
	expect_bad_str("\nretry s1");
	expect_bad_str("retry s1\r\n");
	expect_bad_str("\n");
	expect_bad_str("");
}

static void test_control_word_count(void **state)
{
	expect_bad_str("retry");
	expect_bad_str("retry\n");
	expect_bad_str("retry ");
	expect_bad_str("retry s1 s2");
	expect_bad_str("revert");
	expect_bad_str("revert s1 s2\n");
	expect_bad_str("clone s1");
	expect_bad_str("clone s1\n");
	expect_bad_str("clone s1 v1 v2");
	expect_bad_str("clone s1 v1 v2 v3 v4 v5");
	expect_bad_str("   ");
	expect_bad_str("\t\n");
}

static void test_control_nul_bytes(void **state)
{
	static const char a[] = "retry s1\0";	 /* NUL last */
	static const char b[] = "retry \0s1";	 /* NUL inside */
	static const char c[] = "\0retry s1";	 /* NUL first */
	static const char d[] = "retry s1\0\n";	 /* NUL before the newline */

	expect_bad(a, sizeof(a) - 1);
	expect_bad(b, sizeof(b) - 1);
	expect_bad(c, sizeof(c) - 1);
	expect_bad(d, sizeof(d) - 1);
}

static void test_control_unknown_verbs(void **state)
{
	expect_bad_str("RETRY s1");
	expect_bad_str("Retry s1");
	expect_bad_str("retr s1");
	expect_bad_str("retryy s1");
	expect_bad_str("delete s1");
	expect_bad_str("start");
	expect_bad_str("stop\n");
	expect_bad_str("s1");
	expect_bad_str("clone-s1 v1");
	expect_bad_str("r\xc3\xa9try s1");
}

static void test_control_bad_names(void **state)
{
	g_autofree char *n129 = name_of(SNAP_NAME_MAX + 1, 'n');
	g_autofree char *long_retry = g_strdup_printf("retry %s", n129);
	g_autofree char *long_clone = g_strdup_printf("clone s1 %s", n129);

	expect_bad_str("retry .s1");
	expect_bad_str("retry -s1");
	expect_bad_str("retry s/1");
	expect_bad_str("retry caf\xc3\xa9");
	expect_bad_str("revert ..");
	expect_bad_str("clone s1 .v");
	expect_bad_str("clone -s1 v");
	expect_bad_str("clone s1 v/w");
	expect_bad_str(long_retry);
	expect_bad_str(long_clone);
}

static void test_control_long_input(void **state)
{
	g_autofree char *huge = name_of(1 << 20, 'a');
	g_autofree char *huge_cmd = NULL;
	g_autofree char *spaces = name_of(5000, ' ');
	g_autofree char *spaced = g_strdup_printf("retry%ss1", spaces);

	expect_bad_str(huge);
	memcpy(huge, "retry ", 6);
	expect_bad_str(huge);
	huge_cmd = g_strdup_printf("clone %s %s", huge + 6, huge + 6);
	expect_bad_str(huge_cmd);
	/* long only through separators: refused, not overflowing */
	expect_bad_str(spaced);
}

static void test_control_why(void **state)
{
	struct control_cmd cmd;
	const char *why = NULL, *why2 = NULL;

	assert_errno(parse("frobnicate s1", &cmd, &why), -EINVAL);
	assert_non_null(why);
	assert_true(strlen(why) > 0);
	/* a different error says something different */
	assert_errno(parse("clone s1", &cmd, &why2), -EINVAL);
	assert_non_null(why2);
	assert_string_not_equal(why, why2);
	assert_non_null(strstr(why2, "clone"));
	/* @why may be NULL */
	assert_errno(parse("frobnicate s1", &cmd, NULL), -EINVAL);
}

static void test_control_verb_names(void **state)
{
	struct control_cmd cmd;

	assert_string_equal(control_verb_name(CONTROL_VERB_RETRY), "retry");
	assert_string_equal(control_verb_name(CONTROL_VERB_REVERT), "revert");
	assert_string_equal(control_verb_name(CONTROL_VERB_CLONE), "clone");
	assert_string_equal(control_verb_name(CONTROL_VERB_VERIFY), "verify");
	assert_non_null(control_verb_name(CONTROL_VERB_LAST));
	/* every verb name parses back to its verb */
	for (int v = 0; v < CONTROL_VERB_LAST; v++) {
		g_autofree char *line = g_strdup_printf(
			v == CONTROL_VERB_CLONE ? "%s a b" : "%s a",
			control_verb_name(v));

		assert_errno(parse(line, &cmd, NULL), 0);
		assert_int_equal(cmd.verb, v);
	}
}

static void test_control_verify(void **state)
{
	struct control_cmd cmd;
	const char *why = NULL;

	assert_errno(parse("verify s1\n", &cmd, NULL), 0);
	assert_int_equal(cmd.verb, CONTROL_VERB_VERIFY);
	assert_string_equal(cmd.snap, "s1");
	assert_errno(parse("verify", &cmd, &why), -EINVAL);
	assert_string_equal(why, "usage: verify <snap>");
	assert_errno(parse("verify s1 s2", &cmd, &why), -EINVAL);
	assert_string_equal(why, "usage: verify <snap>");
	assert_errno(parse("verify ../s1", &cmd, &why), -EINVAL);
	assert_errno(parse("verify -s1", &cmd, &why), -EINVAL);
}

/* ---- vm_control_parse ------------------------------------------------- */

static int vm_parse(const char *s, struct vm_control_cmd *cmd)
{
	return vm_control_parse(s, strlen(s), cmd, NULL);
}

/* @buf must be refused with -EINVAL, a zeroed command and a reason;
 * returns the reason. */
static const char *vm_expect_bad(const char *buf, size_t len)
{
	struct vm_control_cmd cmd;
	const char *why = NULL;
	int rc;

	memset(&cmd, 0xa5, sizeof(cmd));
	rc = vm_control_parse(buf, len, &cmd, &why);
	if (rc != -EINVAL) {
		g_autofree char *head = g_strndup(buf, len > 200 ? 200 : len);
		g_autofree char *esc = g_strescape(head, NULL);

		print_error("vm control \"%s\" (%zu bytes) = %d, expected "
			    "-EINVAL\n", esc, len, rc);
		fail();
	}
	assert_non_null(why);
	assert_true(strlen(why) > 0);
	assert_int_equal(cmd.verb, 0);
	assert_string_equal(cmd.snap, "");
	return why;
}

static const char *vm_expect_bad_str(const char *s)
{
	return vm_expect_bad(s, strlen(s));
}

static void test_vm_control_verbs(void **state)
{
	static const struct {
		const char *text;
		enum vm_control_verb verb;
		const char *snap;
	} good[] = {
		{ "start", VM_CONTROL_VERB_START, "" },
		{ "start\n", VM_CONTROL_VERB_START, "" },
		{ "stop\n", VM_CONTROL_VERB_STOP, "" },
		{ "force-stop\n", VM_CONTROL_VERB_FORCE_STOP, "" },
		{ "revert s1\n", VM_CONTROL_VERB_REVERT, "s1" },
		{ "revert before-upgrade.2", VM_CONTROL_VERB_REVERT,
		  "before-upgrade.2" },
		/* white space around and between the words */
		{ "  start \t\n", VM_CONTROL_VERB_START, "" },
		{ "\tstop", VM_CONTROL_VERB_STOP, "" },
		{ "revert\ts1", VM_CONTROL_VERB_REVERT, "s1" },
		{ "revert  \t s1 ", VM_CONTROL_VERB_REVERT, "s1" },
		/* a CRLF line end, as before the parser was split out */
		{ "start\r\n", VM_CONTROL_VERB_START, "" },
		{ "revert s1\r\n", VM_CONTROL_VERB_REVERT, "s1" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
		struct vm_control_cmd cmd;
		const char *why = "untouched";
		int rc;

		memset(&cmd, 0xa5, sizeof(cmd));
		rc = vm_control_parse(good[i].text, strlen(good[i].text), &cmd,
				      &why);
		if (rc != 0) {
			g_autofree char *esc = g_strescape(good[i].text, NULL);

			print_error("vm control \"%s\" = %d (%s)\n", esc, rc,
				    why);
			fail();
		}
		assert_int_equal(cmd.verb, good[i].verb);
		assert_string_equal(cmd.snap, good[i].snap);
		assert_string_equal(why, "untouched");
	}
}

static void test_vm_control_longest(void **state)
{
	g_autofree char *n128 = name_of(SNAP_NAME_MAX, 's');
	g_autofree char *n129 = name_of(SNAP_NAME_MAX + 1, 's');
	g_autofree char *line = g_strdup_printf("revert %s\n", n128);
	g_autofree char *too_long = g_strdup_printf("revert %s\n", n129);
	g_autofree char *padded = NULL;
	g_autofree char *blanks = name_of(VM_CONTROL_MAX, ' ');
	struct vm_control_cmd cmd;

	assert_errno(vm_parse(line, &cmd), 0);
	assert_int_equal(cmd.verb, VM_CONTROL_VERB_REVERT);
	assert_string_equal(cmd.snap, n128);
	vm_expect_bad_str(too_long);

	/* VM_CONTROL_MAX bytes, blanks included, and not one more */
	memcpy(blanks, "start", 5);
	assert_errno(vm_control_parse(blanks, VM_CONTROL_MAX, &cmd, NULL), 0);
	assert_int_equal(cmd.verb, VM_CONTROL_VERB_START);
	padded = g_strdup_printf("%s ", blanks);
	vm_expect_bad(padded, VM_CONTROL_MAX + 1);
	/* the newline counts too */
	padded[VM_CONTROL_MAX] = '\n';
	vm_expect_bad(padded, VM_CONTROL_MAX + 1);
}

static void test_vm_control_refusals(void **state)
{
	static const char nul_last[] = "start\0";
	static const char nul_inside[] = "revert \0s1";
	static const char *const bad[] = {
		"", "\n", "  \t\n", "reboot", "Start", "START\n", "start now",
		"force-stop x", "stop -f", "revert", "revert\n", "revert s1 s2",
		"revert -x", "revert .hidden", "revert a:b", "revert a/b",
		"revert caf\xc3\xa9", "start\nforce-stop", "start\n\n",
		"\nstart", "start\vx", "force_stop", "forcestop", "force stop",
		"retry s1", "clone s1 v1", "start\x01", "\xff",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		vm_expect_bad_str(bad[i]);
	vm_expect_bad(nul_last, sizeof(nul_last) - 1);
	vm_expect_bad(nul_inside, sizeof(nul_inside) - 1);
}

static void test_vm_control_why(void **state)
{
	const char *unknown = vm_expect_bad_str("reboot");
	const char *usage = vm_expect_bad_str("revert");
	const char *name = vm_expect_bad_str("revert .x");
	const char *lines = vm_expect_bad_str("start\nstop");

	/* each kind of mistake says something of its own */
	assert_non_null(strstr(unknown, "start | stop | force-stop | revert"));
	assert_non_null(strstr(usage, "revert <snap>"));
	assert_non_null(strstr(vm_expect_bad_str("start now"), "start"));
	assert_non_null(strstr(name, "names"));
	assert_string_not_equal(unknown, usage);
	assert_string_not_equal(usage, name);
	assert_string_not_equal(lines, unknown);
}

static void test_vm_control_verb_names(void **state)
{
	struct vm_control_cmd cmd;

	assert_string_equal(vm_control_verb_name(VM_CONTROL_VERB_START), "start");
	assert_string_equal(vm_control_verb_name(VM_CONTROL_VERB_STOP), "stop");
	assert_string_equal(vm_control_verb_name(VM_CONTROL_VERB_FORCE_STOP),
			    "force-stop");
	assert_string_equal(vm_control_verb_name(VM_CONTROL_VERB_REVERT), "revert");
	assert_string_equal(vm_control_verb_name(VM_CONTROL_VERB_LAST), "?");
	/* every verb name parses back to its verb */
	for (int v = 0; v < VM_CONTROL_VERB_LAST; v++) {
		g_autofree char *line = g_strdup_printf(
			v == VM_CONTROL_VERB_REVERT ? "%s a\n" : "%s\n",
			vm_control_verb_name(v));

		assert_errno(vm_parse(line, &cmd), 0);
		assert_int_equal(cmd.verb, v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_lengths),
		cmocka_unit_test(test_name_first_byte),
		cmocka_unit_test(test_name_bad_bytes),
		cmocka_unit_test(test_name_every_byte),
		cmocka_unit_test(test_control_retry),
		cmocka_unit_test(test_control_revert),
		cmocka_unit_test(test_control_clone),
		cmocka_unit_test(test_control_tabs),
		cmocka_unit_test(test_control_not_nul_terminated),
		cmocka_unit_test(test_control_newlines),
		cmocka_unit_test(test_control_word_count),
		cmocka_unit_test(test_control_nul_bytes),
		cmocka_unit_test(test_control_unknown_verbs),
		cmocka_unit_test(test_control_bad_names),
		cmocka_unit_test(test_control_long_input),
		cmocka_unit_test(test_control_why),
		cmocka_unit_test(test_control_verb_names),
		cmocka_unit_test(test_control_verify),
		cmocka_unit_test(test_vm_control_verbs),
		cmocka_unit_test(test_vm_control_longest),
		cmocka_unit_test(test_vm_control_refusals),
		cmocka_unit_test(test_vm_control_why),
		cmocka_unit_test(test_vm_control_verb_names),
	};

	return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
