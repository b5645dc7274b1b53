/* A small JSON reader and writer for the C example: enough to read an initialiser's params and
 * to write config values as Python's json.dumps writes them (", " and ": " separators,
 * non-ASCII escaped as \uXXXX), as TrustGraph stores them. Mappings keep their order; numbers
 * are kept as the text they were written in. No stdio: the component needs no WASI at all. */
#ifndef WORKSPACE_SETUP_JSON_H
#define WORKSPACE_SETUP_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_kind;

typedef struct json {
    json_kind kind;
    bool boolean;        /* JSON_BOOL */
    char *text;          /* JSON_STRING: the decoded UTF-8 text; JSON_NUMBER: as written */
    size_t count;        /* JSON_ARRAY, JSON_OBJECT: how many items */
    struct json *items;  /* JSON_ARRAY, JSON_OBJECT: the values */
    char **keys;         /* JSON_OBJECT: the keys, in order */
} json;

/* A growable string; `text` is always NUL-terminated. */
typedef struct {
    char *text;
    size_t len, cap;
} buf;

void buf_cat(buf *b, const char *text);
void buf_cat_n(buf *b, const char *text, size_t len);
void buf_num(buf *b, size_t n);

/* Parses `len` bytes of JSON text into `out`; on failure returns false with the reason in
 * `error`. Nesting deeper than 64 levels is refused. */
bool json_parse(const char *text, size_t len, json *out, buf *error);

/* The value under `key` in `object` (which must be a JSON_OBJECT), or NULL. */
const json *json_get(const json *object, const char *key);

/* Appends `value` as Python's json.dumps writes it. */
void json_dumps(const json *value, buf *out);

#endif
