/*
 * gone.c - tell the front end that a tree path is gone (its kernel cache
 * entry must go).
 */
#include <stdarg.h>

#include "gone.h"

void snap_engine_set_gone(struct snap_engine *eng,
			  void (*fn)(const char *path, void *arg), void *arg)
{
	eng->gone = fn;
	eng->gone_arg = arg;
}

void gone_path(struct snap_engine *eng, const char *fmt, ...)
{
	g_autofree char *path = NULL;
	va_list ap;

	if (!eng->gone)
		return;
	va_start(ap, fmt);
	path = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	eng->gone(path, eng->gone_arg);
}
