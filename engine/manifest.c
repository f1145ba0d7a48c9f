/*
 * manifest.c - manifest_parse(): a backup's manifest, read back and
 * checked field by field (manifest.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <glib.h>

#include "manifest.h"
#include "json.h"
#include "repo_index.h"

int manifest_time_parse(const char *text, int64_t *out)
{
	int y, mo, d, h, mi, s, n = 0;
	struct tm tm = { 0 };
	char again[32];
	time_t t;

	if (!text || strlen(text) != 20 ||
	    sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &s,
		   &n) != 6 || n != 20 || y < 1970)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	/* a real date, in the one form backup.c writes: it prints back the
	 * same (no 31 April, no 24:00, no signs or blanks sscanf let by) */
	if (!gmtime_r(&t, &tm) ||
	    strftime(again, sizeof(again), "%Y-%m-%dT%H:%M:%SZ", &tm) != 20 ||
	    strcmp(again, text) != 0)
		return -EINVAL;
	*out = (int64_t)t;
	return 0;
}

/* Say @what is wrong; the result is the parser's. */
static int refuse(const char **why, const char *what)
{
	*why = what;
	return -EINVAL;
}

static bool lower_hex(const char *s, size_t len)
{
	size_t i;

	if (!s || strlen(s) != len)
		return false;
	for (i = 0; i < len; i++)
		if (!g_ascii_isdigit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	return true;
}

/* Copy string member @key into @dst (@cap bytes) if it passes @valid. */
static int get_text(struct jdoc *d, const char *key, char *dst, size_t cap,
		    bool required, bool (*valid)(const char *))
{
	const char *v = jdoc_get_str(d, key);

	if (!v)
		return required ? -EINVAL : 0;
	if (strlen(v) >= cap || !valid(v))
		return -EINVAL;
	g_strlcpy(dst, v, cap);
	return 0;
}

static bool name_ok(const char *v)
{
	return snap_name_valid(v) == 0;
}

static bool uuid_ok(const char *v)
{
	return g_uuid_string_is_valid(v);
}

static int parse_fields(struct jdoc *d, struct manifest *m, const char **why)
{
	const char *format, *v;
	int64_t n;

	if (get_text(d, "volume", m->volume, sizeof(m->volume), true, name_ok) < 0)
		return refuse(why, "no valid \"volume\"");
	if (get_text(d, "snapshot", m->snapshot, sizeof(m->snapshot), true,
		     name_ok) < 0)
		return refuse(why, "no valid \"snapshot\"");
	if (get_text(d, "uuid", m->uuid, sizeof(m->uuid), true, uuid_ok) < 0)
		return refuse(why, "no valid \"uuid\"");
	if (get_text(d, "host", m->host, sizeof(m->host), false, name_ok) < 0)
		return refuse(why, "\"host\" is not a host name");
	if (get_text(d, "volume_uuid", m->volume_uuid, sizeof(m->volume_uuid),
		     false, uuid_ok) < 0)
		return refuse(why, "\"volume_uuid\" is not a uuid");
	if (manifest_time_parse(jdoc_get_str(d, "created_at"), &m->created_at) < 0)
		return refuse(why, "no valid \"created_at\"");
	if (manifest_time_parse(jdoc_get_str(d, "backed_up_at"),
				&m->backed_up_at) < 0)
		return refuse(why, "no valid \"backed_up_at\"");
	if (jdoc_get_int(d, "virtual_size", &n) < 0 || n <= 0)
		return refuse(why, "no valid \"virtual_size\"");
	m->virtual_size = (uint64_t)n;
	if (jdoc_get_int(d, "size", &n) < 0 || n < 0)
		return refuse(why, "no valid \"size\"");
	m->size = (uint64_t)n;

	format = jdoc_get_str(d, "format");
	if (format && !strcmp(format, "index")) {
		g_autofree char *index = g_strdup_printf("%s.index", m->uuid);

		m->indexed = true;
		v = jdoc_get_str(d, "index");
		if (!v || strcmp(v, index) != 0)
			return refuse(why, "\"index\" is not \"<uuid>.index\"");
		v = jdoc_get_str(d, "index_sha256");
		if (!lower_hex(v, 64))
			return refuse(why, "no valid \"index_sha256\"");
		g_snprintf(m->checksum, sizeof(m->checksum), "sha256:%s", v);
		if (jdoc_get_int(d, "chunk_size", &n) < 0 || n <= 0 ||
		    n > UINT32_MAX || !repo_index_chunk_size_valid((uint32_t)n))
			return refuse(why, "no valid \"chunk_size\"");
		m->chunk_size = (uint32_t)n;
	} else if (format && !strcmp(format, "qcow2")) {
		m->indexed = false;
		v = jdoc_get_str(d, "checksum");
		if (!v || !g_str_has_prefix(v, "xxh128:") ||
		    !lower_hex(v + strlen("xxh128:"), 32))
			return refuse(why, "no valid \"checksum\"");
		g_strlcpy(m->checksum, v, sizeof(m->checksum));
	} else {
		return refuse(why, "\"format\" is neither \"index\" nor \"qcow2\"");
	}
	return 0;
}

int manifest_parse(const char *text, struct manifest *out, const char **why)
{
	const char *dummy;
	struct jdoc *d = NULL;
	struct manifest m;
	int rc;

	if (!why)
		why = &dummy;
	*why = NULL;
	if (!text || strlen(text) > MANIFEST_MAX_BYTES)
		return refuse(why, "larger than a manifest");
	rc = jdoc_parse(text, &d);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return refuse(why, "not a JSON object");
	memset(&m, 0, sizeof(m));
	rc = parse_fields(d, &m, why);
	jdoc_free(d);
	if (rc < 0)
		return rc;
	*out = m;
	return 0;
}
