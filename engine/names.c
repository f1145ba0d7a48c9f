/*
 * names.c - object names and the control command parsers (volumes and
 * VMs): pure functions, no state, fuzzed by tests/fuzz.
 */
#include <errno.h>
#include <string.h>

#include "control.h"

int snap_name_valid(const char *name)
{
	size_t i, len;

	if (!name)
		return -EINVAL;
	len = strnlen(name, SNAP_NAME_MAX + 1);
	if (len == 0 || len > SNAP_NAME_MAX)
		return -EINVAL;
	if (name[0] == '.' || name[0] == '-')
		return -EINVAL;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return -EINVAL;
	}
	return 0;
}

static const char *const verb_names[CONTROL_VERB_LAST] = {
	[CONTROL_VERB_RETRY] = "retry",
	[CONTROL_VERB_REVERT] = "revert",
	[CONTROL_VERB_CLONE] = "clone",
	[CONTROL_VERB_VERIFY] = "verify",
};

const char *control_verb_name(enum control_verb verb)
{
	return verb < CONTROL_VERB_LAST ? verb_names[verb] : "?";
}

/* Split @line into at most @max words; returns the count or -1 on excess. */
static int split_words(char *line, char **words, int max)
{
	int n = 0;
	char *p = line;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return n;
		if (n == max)
			return -1;
		words[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
	}
}

int control_parse(const char *buf, size_t len, struct control_cmd *out,
		  const char **why)
{
	char line[3 * (SNAP_NAME_MAX + 8)];
	char *words[4];
	int n, want;
	enum control_verb verb;
	const char *dummy;

	if (!why)
		why = &dummy;
	memset(out, 0, sizeof(*out));
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len == 0) {
		*why = "empty command";
		return -EINVAL;
	}
	if (len >= sizeof(line)) {
		*why = "command too long";
		return -EINVAL;
	}
	if (memchr(buf, '\0', len) || memchr(buf, '\n', len)) {
		*why = "one command per write, without NUL bytes";
		return -EINVAL;
	}
	memcpy(line, buf, len);
	line[len] = '\0';

	n = split_words(line, words, 4);
	if (n <= 0) {
		*why = n < 0 ? "too many words" : "empty command";
		return -EINVAL;
	}
	for (verb = 0; verb < CONTROL_VERB_LAST; verb++)
		if (!strcmp(words[0], verb_names[verb]))
			break;
	if (verb == CONTROL_VERB_LAST) {
		*why = "unknown command (retry <snap>, revert <snap>, clone <snap> <newvol>, verify <snap>)";
		return -EINVAL;
	}
	want = verb == CONTROL_VERB_CLONE ? 3 : 2;
	if (n != want) {
		*why = verb == CONTROL_VERB_CLONE ?
			"usage: clone <snap> <newvol>" :
			verb == CONTROL_VERB_RETRY ? "usage: retry <snap>" :
			verb == CONTROL_VERB_VERIFY ? "usage: verify <snap>" :
						     "usage: revert <snap>";
		return -EINVAL;
	}
	if (snap_name_valid(words[1]) < 0 ||
	    (want == 3 && snap_name_valid(words[2]) < 0)) {
		*why = "names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-'";
		return -EINVAL;
	}
	out->verb = verb;
	strcpy(out->snap, words[1]);
	if (want == 3)
		strcpy(out->newvol, words[2]);
	return 0;
}

/* ---- vms/<vm>/control -------------------------------------------------- */

static const char *const vm_verb_names[VM_CONTROL_VERB_LAST] = {
	[VM_CONTROL_VERB_START] = "start",
	[VM_CONTROL_VERB_STOP] = "stop",
	[VM_CONTROL_VERB_FORCE_STOP] = "force-stop",
	[VM_CONTROL_VERB_REVERT] = "revert",
};

static const char *const vm_verb_usage[VM_CONTROL_VERB_LAST] = {
	[VM_CONTROL_VERB_START] = "usage: start (no arguments)",
	[VM_CONTROL_VERB_STOP] = "usage: stop (no arguments)",
	[VM_CONTROL_VERB_FORCE_STOP] = "usage: force-stop (no arguments)",
	[VM_CONTROL_VERB_REVERT] = "usage: revert <snap>",
};

const char *vm_control_verb_name(enum vm_control_verb verb)
{
	return verb < VM_CONTROL_VERB_LAST ? vm_verb_names[verb] : "?";
}

/* ASCII white space as GLib's g_strstrip() sees it (no '\v'). */
int one_line(const char *buf, size_t *len, const char **why,
	     const char *nul_why, const char *lines_why)
{
	if (memchr(buf, '\0', *len)) {
		*why = nul_why;
		return -EINVAL;
	}
	if (*len > 0 && buf[*len - 1] == '\n')
		(*len)--;
	if (memchr(buf, '\n', *len)) {
		*why = lines_why;
		return -EINVAL;
	}
	return 0;
}

static bool is_ascii_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

int vm_control_parse(const char *buf, size_t len, struct vm_control_cmd *out,
		     const char **why)
{
	char line[VM_CONTROL_MAX + 1];
	char *start, *end, *words[3];
	enum vm_control_verb verb;
	const char *dummy;
	int n;

	if (!why)
		why = &dummy;
	memset(out, 0, sizeof(*out));
	if (len > VM_CONTROL_MAX) {
		*why = "command too long";
		return -EINVAL;
	}
	if (one_line(buf, &len, why, "NUL bytes in the command",
		     "one command per write") < 0)
		return -EINVAL;
	memcpy(line, buf, len);
	line[len] = '\0';
	for (start = line; is_ascii_space(*start); start++)
		;
	for (end = line + len; end > start && is_ascii_space(end[-1]); end--)
		;
	*end = '\0';

	/* more than 2 words is too many for every verb: count it as 3 */
	n = split_words(start, words, 3);
	if (n < 0)
		n = 3;
	if (n == 0) {
		*why = "empty command (start | stop | force-stop | revert <snap>)";
		return -EINVAL;
	}
	for (verb = 0; verb < VM_CONTROL_VERB_LAST; verb++)
		if (!strcmp(words[0], vm_verb_names[verb]))
			break;
	if (verb == VM_CONTROL_VERB_LAST) {
		*why = "commands: start | stop | force-stop | revert <snap>";
		return -EINVAL;
	}
	if (n != (verb == VM_CONTROL_VERB_REVERT ? 2 : 1)) {
		*why = vm_verb_usage[verb];
		return -EINVAL;
	}
	if (verb == VM_CONTROL_VERB_REVERT && snap_name_valid(words[1]) < 0) {
		*why = "VM snapshot names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-'";
		return -EINVAL;
	}
	out->verb = verb;
	if (verb == VM_CONTROL_VERB_REVERT)
		strcpy(out->snap, words[1]);
	return 0;
}

/* ---- MOUNT/control ------------------------------------------------------ */

int restore_parse(const char *buf, size_t len, struct restore_cmd *out,
		  const char **why)
{
	char line[4 * (SNAP_NAME_MAX + 2) + 16];
	char *words[4], *slash1, *slash2;
	const char *dummy;
	int n;

	if (!why)
		why = &dummy;
	memset(out, 0, sizeof(*out));
	if (one_line(buf, &len, why, "one command per write, without NUL bytes",
		     "one command per write, without NUL bytes") < 0)
		return -EINVAL;
	if (len >= sizeof(line)) {
		*why = "command too long";
		return -EINVAL;
	}
	memcpy(line, buf, len);
	line[len] = '\0';
	n = split_words(line, words, 3);
	if (n == 0) {
		*why = "empty command";
		return -EINVAL;
	}
	if (n < 0 || strcmp(words[0], "restore") != 0 || n != 3) {
		*why = "usage: restore <host>/<vol>/<snap> <newvol>";
		return -EINVAL;
	}
	slash1 = strchr(words[1], '/');
	slash2 = slash1 ? strchr(slash1 + 1, '/') : NULL;
	if (!slash2 || strchr(slash2 + 1, '/')) {
		*why = "usage: restore <host>/<vol>/<snap> <newvol>";
		return -EINVAL;
	}
	*slash1 = *slash2 = '\0';
	if (snap_name_valid(words[1]) < 0 || snap_name_valid(slash1 + 1) < 0 ||
	    snap_name_valid(slash2 + 1) < 0 || snap_name_valid(words[2]) < 0) {
		*why = "names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-'";
		return -EINVAL;
	}
	strcpy(out->host, words[1]);
	strcpy(out->vol, slash1 + 1);
	strcpy(out->snap, slash2 + 1);
	strcpy(out->newvol, words[2]);
	return 0;
}
