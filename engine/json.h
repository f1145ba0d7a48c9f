/*
 * json.h - build and read small JSON documents (all of json-c is in json.c).
 *
 * A struct jdoc is one JSON object.  Builders never fail visibly: out of
 * memory leaves a key out, and jdoc_finish() then returns NULL.
 */
#ifndef SNAP_JSON_H
#define SNAP_JSON_H

#include <stdbool.h>
#include <stdint.h>

struct jdoc;

struct jdoc *jdoc_new(void);
void jdoc_free(struct jdoc *d);
/** jdoc_str() - @val NULL writes null. */
void jdoc_str(struct jdoc *d, const char *key, const char *val);
void jdoc_int(struct jdoc *d, const char *key, int64_t val);
void jdoc_bool(struct jdoc *d, const char *key, bool val);
/** jdoc_strv() - an array of strings from a NULL-terminated vector. */
void jdoc_strv(struct jdoc *d, const char *key, char **val);
/**
 * jdoc_finish() - the text of @d (one line, or indented when @pretty),
 * ending with a newline when @newline; frees @d.  Return: g_free()able
 * text, NULL on out of memory.
 */
char *jdoc_finish(struct jdoc *d, bool pretty, bool newline);

/**
 * jdoc_parse() - parse @text, which must hold one JSON object and nothing
 * after it but JSON blanks (space, tab, CR, LF)
 *
 * Strict (json-c's JSON_TOKENER_STRICT): comments, trailing commas and
 * bare words are refused.  What json-c still accepts beyond JSON (leading
 * zeros, "1.", NaN, single-quoted strings) parses to a document whose
 * text parses back to the same text.
 * Return: 0, *@out owns the document (jdoc_free); -EINVAL not one
 * object; -ENOMEM.
 */
int jdoc_parse(const char *text, struct jdoc **out);
/** jdoc_get_str() - borrowed string member, NULL when absent or not one. */
const char *jdoc_get_str(struct jdoc *d, const char *key);
/** jdoc_get_int() - 0; -ENOENT absent; -EINVAL not an integer. */
int jdoc_get_int(struct jdoc *d, const char *key, int64_t *out);
/** jdoc_get_bool() - 0; -ENOENT absent; -EINVAL not true or false. */
int jdoc_get_bool(struct jdoc *d, const char *key, bool *out);
/** jdoc_get_obj() - borrowed member object, NULL when absent. */
struct jdoc *jdoc_get_obj(struct jdoc *d, const char *key);

/** jdoc_array_len() - length of array member @key, -ENOENT not an array. */
int jdoc_array_len(struct jdoc *d, const char *key);
/** jdoc_array_obj() - borrowed object @i of array member @key, or NULL. */
struct jdoc *jdoc_array_obj(struct jdoc *d, const char *key, int i);
/** json_quote() - @s as a JSON string literal (g_free). */
char *json_quote(const char *s);

#endif
