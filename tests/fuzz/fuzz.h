/*
 * fuzz.h - what the libFuzzer targets share.
 *
 * Each fuzz_<target>.c defines LLVMFuzzerTestOneInput() and checks the
 * parser's contract (fs/path.h, engine/control.h, engine/policy.h...), not
 * only that it does not crash: a broken invariant calls FUZZ_CHECK(), which
 * prints what was expected and aborts, so libFuzzer saves the input as a
 * crash-* file.  AddressSanitizer and UndefinedBehaviorSanitizer (built in
 * with -fsanitize=fuzzer,address,undefined) catch the rest.
 *
 * fuzz_setup(), called from LLVMFuzzerInitialize(), silences the engine's
 * log (a parser logs its refusals) and makes GLib warnings and criticals
 * fatal: a g_return_if_fail() reached from a parser is a bug too.
 */
#ifndef SNAP_FUZZ_H
#define SNAP_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FUZZ_CHECK() - abort with a message when @cond does not hold. */
#define FUZZ_CHECK(cond, ...)                                                \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "fuzz: invariant broken at %s:%d: %s: ", \
				__FILE__, __LINE__, #cond);                  \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			abort();                                             \
		}                                                            \
	} while (0)

static inline void fuzz_setup(void)
{
	/* below LOG_EMERG: nothing is formatted nor written */
	snap_log_open(NULL, -1, 0);
	g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
}

/* fuzz_cstr() - the input as a NUL-terminated string (g_free); it may hold
 * NUL bytes of its own, so C callers see its first line of bytes only. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = g_malloc(size + 1);

	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* fuzz_terminated() - whether @buf of @size bytes holds a NUL. */
static inline bool fuzz_terminated(const char *buf, size_t size)
{
	return memchr(buf, '\0', size) != NULL;
}

/*
 * fuzz_name_ok() - the reference definition of a valid object name
 * (snap.h, docs/tree.md), written independently of snap_name_valid():
 * 1-128 bytes of [A-Za-z0-9._-], not starting with '.' or '-'.
 */
static inline bool fuzz_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 128 || s[0] == '.' || s[0] == '-')
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789._-") == n;
}

#endif
