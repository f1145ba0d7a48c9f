/*
 * json.c - all of json-c.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <glib.h>
#include <json-c/json.h>

#include "json.h"

#define OBJ(d) ((json_object *)(d))

struct jdoc *jdoc_new(void)
{
	return (struct jdoc *)json_object_new_object();
}

void jdoc_free(struct jdoc *d)
{
	if (d)
		json_object_put(OBJ(d));
}

static void put(struct jdoc *d, const char *key, json_object *v)
{
	json_object_object_add(OBJ(d), key, v);
}

/* A JSON string of @val; invalid UTF-8 (a hostile name echoed in an
 * event) becomes U+FFFD, so every line stays valid JSON. */
static json_object *utf8_string(const char *val)
{
	g_autofree char *valid = NULL;

	if (g_utf8_validate(val, -1, NULL))
		return json_object_new_string(val);
	valid = g_utf8_make_valid(val, -1);
	return json_object_new_string(valid);
}

void jdoc_str(struct jdoc *d, const char *key, const char *val)
{
	put(d, key, val ? utf8_string(val) : NULL);
}

void jdoc_int(struct jdoc *d, const char *key, int64_t val)
{
	put(d, key, json_object_new_int64(val));
}

void jdoc_bool(struct jdoc *d, const char *key, bool val)
{
	put(d, key, json_object_new_boolean(val));
}

void jdoc_strv(struct jdoc *d, const char *key, char **val)
{
	json_object *a = json_object_new_array();

	for (; val && *val; val++)
		json_object_array_add(a, utf8_string(*val));
	put(d, key, a);
}

char *jdoc_finish(struct jdoc *d, bool pretty, bool newline)
{
	const char *s;
	char *out;

	s = json_object_to_json_string_ext(OBJ(d),
		(pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED :
			  JSON_C_TO_STRING_PLAIN) | JSON_C_TO_STRING_NOSLASHESCAPE);
	out = s ? g_strconcat(s, newline ? "\n" : "", NULL) : NULL;
	json_object_put(OBJ(d));
	return out;
}

/* JSON's own whitespace (RFC 8259), not C's ("\v", "\f") */
static bool json_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int jdoc_parse(const char *text, struct jdoc **out)
{
	json_tokener *tok = json_tokener_new();
	size_t len = strlen(text), end;
	json_object *o;

	if (!tok)
		return -ENOMEM;
	/*
	 * Strict: no comments, no trailing commas, no bare words; what JSON
	 * json-c still takes in strict mode (leading zeros "00", "1.", NaN,
	 * single quotes) it reads as a value that formats back to itself.
	 */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	if (len > INT_MAX) {
		json_tokener_free(tok);
		return -EINVAL;
	}
	o = json_tokener_parse_ex(tok, text, (int)len);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	/* one object, then nothing but blanks */
	while (o && end < len && json_blank(text[end]))
		end++;
	if (!o || !json_object_is_type(o, json_type_object) || end != len) {
		json_object_put(o);
		return -EINVAL;
	}
	*out = (struct jdoc *)o;
	return 0;
}

const char *jdoc_get_str(struct jdoc *d, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(OBJ(d), key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int jdoc_get_int(struct jdoc *d, const char *key, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(OBJ(d), key, &v))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	*out = json_object_get_int64(v);
	return 0;
}

int jdoc_get_bool(struct jdoc *d, const char *key, bool *out)
{
	json_object *v;

	if (!json_object_object_get_ex(OBJ(d), key, &v))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_boolean))
		return -EINVAL;
	*out = json_object_get_boolean(v);
	return 0;
}

struct jdoc *jdoc_get_obj(struct jdoc *d, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(OBJ(d), key, &v) ||
	    !json_object_is_type(v, json_type_object))
		return NULL;
	return (struct jdoc *)v;
}

int jdoc_array_len(struct jdoc *d, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(OBJ(d), key, &v) ||
	    !json_object_is_type(v, json_type_array))
		return -ENOENT;
	return (int)json_object_array_length(v);
}

struct jdoc *jdoc_array_obj(struct jdoc *d, const char *key, int i)
{
	json_object *v, *e;

	if (!json_object_object_get_ex(OBJ(d), key, &v) ||
	    !json_object_is_type(v, json_type_array) || i < 0 ||
	    (size_t)i >= json_object_array_length(v))
		return NULL;
	e = json_object_array_get_idx(v, (size_t)i);
	return json_object_is_type(e, json_type_object) ? (struct jdoc *)e : NULL;
}

char *json_quote(const char *s)
{
	json_object *o = json_object_new_string(s);
	char *out = g_strdup(json_object_to_json_string_ext(o,
				JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));

	json_object_put(o);
	return out;
}
