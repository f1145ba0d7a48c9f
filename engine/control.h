/*
 * control.h - the command languages of volumes/<vol>/control and
 * vms/<vm>/control (pure parsers in names.c: no engine, no catalog).
 */
#ifndef SNAP_CONTROL_H
#define SNAP_CONTROL_H

#include <stddef.h>
#include "snap.h"

enum control_verb {
	CONTROL_VERB_RETRY,
	CONTROL_VERB_REVERT,
	CONTROL_VERB_CLONE,
	CONTROL_VERB_VERIFY, /* verify.h */
	CONTROL_VERB_LAST
};

struct control_cmd {
	enum control_verb verb;
	char snap[SNAP_NAME_MAX + 1];
	char newvol[SNAP_NAME_MAX + 1];
};

/**
 * control_parse() - parse the bytes of one write(2) to a control file
 *
 * One command, words separated by runs of spaces or tabs (leading and
 * trailing blanks ignored), at most one trailing newline.  On failure *@why (may be NULL) points to a static
 * sentence saying what is wrong.
 * Return: 0; -EINVAL unknown verb, wrong word count, bad name, NUL bytes.
 */
int control_parse(const char *buf, size_t len, struct control_cmd *out,
		  const char **why);

/** control_verb_name() - "retry", "revert", "clone", "verify". */
const char *control_verb_name(enum control_verb verb);

enum vm_control_verb {
	VM_CONTROL_VERB_START,
	VM_CONTROL_VERB_STOP,
	VM_CONTROL_VERB_FORCE_STOP,
	VM_CONTROL_VERB_REVERT,
	VM_CONTROL_VERB_LAST
};

struct vm_control_cmd {
	enum vm_control_verb verb;
	char snap[SNAP_NAME_MAX + 1]; /* revert's snapshot; "" for the others */
};

/* The longest write(2) vms/<vm>/control takes, in bytes. */
#define VM_CONTROL_MAX 300

/**
 * vm_control_parse() - parse the bytes of one write(2) to vms/<vm>/control
 *
 * One command: start | stop | force-stop | revert <snap>.  At most one
 * trailing newline; leading and trailing ASCII white space (a "\r"
 * included) is ignored, words are separated by runs of spaces or tabs.
 * At most VM_CONTROL_MAX bytes.  <snap> must be a valid name (it is not
 * looked up).  On failure *@out is zeroed and *@why (may be NULL) points
 * to a static sentence saying what is wrong.  Pure, thread-safe.
 * Return: 0; -EINVAL too long, NUL bytes, several lines, unknown verb,
 * wrong word count, bad snapshot name.
 */
int vm_control_parse(const char *buf, size_t len, struct vm_control_cmd *out,
		     const char **why);

/** vm_control_verb_name() - "start", "stop", "force-stop", "revert"; "?". */
const char *vm_control_verb_name(enum vm_control_verb verb);

/**
 * one_line() - check that @buf (*@len bytes, as written) is one line: no
 * NUL byte, no newline but a last one, which is dropped from *@len.
 * Return: 0; -EINVAL with *@why = @nul_why or @lines_why.
 */
int one_line(const char *buf, size_t *len, const char **why,
	     const char *nul_why, const char *lines_why);

/* ---- MOUNT/control (issue 14) ---------------------------------------- */

/* `restore <host>/<vol>/<snap> <newvol>`: a new local volume from any
 * backup, this host's or another's on the same SECONDARY. */
struct restore_cmd {
	char host[SNAP_NAME_MAX + 1];
	char vol[SNAP_NAME_MAX + 1];
	char snap[SNAP_NAME_MAX + 1];
	char newvol[SNAP_NAME_MAX + 1];
};

/**
 * restore_parse() - parse the bytes of one write(2) to MOUNT/control
 *
 * One command, `restore <host>/<vol>/<snap> <newvol>`, words separated by
 * runs of spaces or tabs (leading and trailing ones ignored), at most one
 * trailing newline; every name a valid object name (not looked up).  On
 * failure *@out is zeroed and *@why (may be NULL) points to a static
 * sentence saying what is wrong.  Pure, thread-safe; fuzzed
 * (tests/fuzz/fuzz_control.c).
 * Return: 0; -EINVAL anything else.
 */
int restore_parse(const char *buf, size_t len, struct restore_cmd *out,
		  const char **why);

#endif
