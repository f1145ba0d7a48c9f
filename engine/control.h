/*
 * control.h - the command language of volumes/<vol>/control (pure parser).
 */
#ifndef SNAP_CONTROL_H
#define SNAP_CONTROL_H

#include <stddef.h>
#include "snap.h"

enum control_verb {
	CONTROL_VERB_RETRY,
	CONTROL_VERB_REVERT,
	CONTROL_VERB_CLONE,
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

/** control_verb_name() - "retry", "revert", "clone". */
const char *control_verb_name(enum control_verb verb);

#endif
