/*
 * fuzz_options.c - the command line and mount options of fs/main.c: its
 * fuse_opt table (option_spec) and option_proc(), then libfuse's
 * fuse_parse_cmdline(), as main() runs them; an fstab line's options
 * arrive here through mount.fuse3.
 *
 * The table and its callback are static in fs/main.c, so this file
 * includes main.c (its main() renamed) rather than changing it; the rest of
 * the daemon is linked but never called.
 *
 * The input is the argument vector, one argument per line (argv[0] is
 * "snapfs").  Invariants:
 *  - both parsers answer 0 or -1, and everything they allocate is freed
 *    by what main() frees (LeakSanitizer checks at exit of each run);
 *  - SOURCE is the first argument that is not an option, and a command
 *    line with a mount point always has a SOURCE;
 *  - a numeric option that appears once, alone in its -o, as a plain
 *    decimal that fits, is the value main() passes to the engine.
 */
#include <errno.h>

#define main snapfs_main
int snapfs_main(int argc, char *argv[]);
#include "main.c"
#undef main

#include "fuzz.h"

#define MAX_ARGS 64

static void quiet_fuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	fuse_set_log_func(quiet_fuse);
	return 0;
}

/*
 * How fuse_opt_parse() reads @argv: the first non-option (SOURCE), and
 * the value of a numeric option @key when "-o @key=N" is the only mention
 * of @key (-1 otherwise).  After "--" everything is a non-option; "-o X"
 * and "-oX" carry options.
 */
static const char *walk(char **argv, int argc, const char *key, long long *val)
{
	const char *source = NULL;
	size_t kl = strlen(key);
	bool rest = false;
	int seen = 0;

	*val = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *opt = NULL;

		for (const char *h = strstr(a, key); h; h = strstr(h + 1, key))
			seen++;
		if (rest || a[0] != '-') {
			if (!source)
				source = a;
		} else if (!strcmp(a, "--")) {
			rest = true;
		} else if (!strcmp(a, "-o")) {
			opt = i + 1 < argc ? argv[++i] : NULL;
			for (const char *h = opt ? strstr(opt, key) : NULL; h;
			     h = strstr(h + 1, key))
				seen++;
		}
		if (opt && !strncmp(opt, key, kl) && opt[kl] == '=' &&
		    opt[kl + 1] && strlen(opt + kl + 1) <= 9 &&
		    strspn(opt + kl + 1, "0123456789") == strlen(opt + kl + 1))
			*val = strtoll(opt + kl + 1, NULL, 10);
	}
	if (seen != 1)
		*val = -1;
	return source;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *text = fuzz_cstr(data, size);
	g_auto(GStrv) lines = g_strsplit(text, "\n", MAX_ARGS);
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	struct fuse_args args;
	struct fuse_cmdline_opts cl = { 0 };
	struct options o = { 0 };
	const char *want_source;
	long long workers, keep;
	int rc1, rc2 = -1;

	argv[argc++] = (char *)"snapfs";
	for (char **l = lines; *l && argc < MAX_ARGS + 1; l++)
		argv[argc++] = *l;
	argv[argc] = NULL;
	want_source = walk(argv, argc, "workers", &workers);
	walk(argv, argc, "keep_primary", &keep);

	o.workers = 2;
	o.keep_primary = 1;
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	rc1 = fuse_opt_parse(&args, &o, option_spec, option_proc);
	FUZZ_CHECK(rc1 == 0 || rc1 == -1, "fuse_opt_parse %d", rc1);
	if (rc1 == 0) {
		FUZZ_CHECK((o.source != NULL) == (o.nonopts >= 1),
			   "source %s with %d non-options",
			   o.source ? o.source : "(none)", o.nonopts);
		if (o.source)
			FUZZ_CHECK(want_source && !strcmp(o.source, want_source),
				   "source '%s', expected '%s'", o.source,
				   want_source);
		if (workers >= 0 && workers <= UINT32_MAX)
			FUZZ_CHECK(o.workers == (unsigned)workers,
				   "workers %u, expected %lld", o.workers, workers);
		if (keep >= 0 && keep <= UINT32_MAX)
			FUZZ_CHECK(o.keep_primary == (unsigned)keep,
				   "keep_primary %u, expected %lld",
				   o.keep_primary, keep);
		rc2 = fuse_parse_cmdline(&args, &cl);
		FUZZ_CHECK(rc2 == 0 || rc2 == -1, "fuse_parse_cmdline %d", rc2);
		if (rc2 == 0 && cl.mountpoint)
			FUZZ_CHECK(o.source != NULL, "a mount point without SOURCE");
	}
	free(cl.mountpoint);
	fuse_opt_free_args(&args);
	options_free(&o);
	return 0;
}
