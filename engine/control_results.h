/*
 * control_results.h - what a control file reads back: its help and the
 * result of the last command written to it.  One mechanism for every
 * control file (volumes/<vol>/control, vms/<vm>/control), keyed by the
 * control file's path in the tree.
 *
 * Calling sequence: control_results_new() at open; a control write ends
 * with control_result_record(); a read calls control_result_text();
 * control_results_free() at close.  The table's lock is a leaf.
 */
#ifndef SNAP_CONTROL_RESULTS_H
#define SNAP_CONTROL_RESULTS_H

#include "context.h"

struct control_results *control_results_new(void);
void control_results_free(struct control_results *r);

/**
 * control_result_record() - remember the last command written to the
 * control file @control: "@shown: ok" when @rc is 0, else
 * "@shown: ENAME: why", @why or, when NULL, strerror(-@rc).
 */
void control_result_record(struct snap_engine *eng, const char *control,
			   const char *shown, int rc, const char *why);
/** control_result_text() - @help followed by "last: <result>" (or
 * "last: none"), a new string. */
char *control_result_text(struct snap_engine *eng, const char *control,
			  const char *help);

#endif
