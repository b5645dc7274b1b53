/* See json.h. */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

static void buf_reserve(buf *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1) cap *= 2;
    b->text = realloc(b->text, cap);
    if (!b->text) abort();
    b->cap = cap;
}

void buf_cat_n(buf *b, const char *text, size_t len) {
    buf_reserve(b, len);
    memcpy(b->text + b->len, text, len);
    b->len += len;
    b->text[b->len] = 0;
}

void buf_cat(buf *b, const char *text) { buf_cat_n(b, text, strlen(text)); }

void buf_num(buf *b, size_t n) {
    char digits[24];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    buf_cat_n(b, digits + i, sizeof digits - i);
}

/* The parser's position in the text, and the first error met. */
typedef struct {
    const char *at, *end;
    buf *error;
} reader;

static bool fail(reader *r, const char *what) {
    if (!r->error->len) buf_cat(r->error, what);
    return false;
}

static void skip_space(reader *r) {
    while (r->at < r->end && (*r->at == ' ' || *r->at == '\t' || *r->at == '\n' || *r->at == '\r')) r->at++;
}

static bool literal(reader *r, const char *word) {
    size_t len = strlen(word);
    if ((size_t)(r->end - r->at) < len || memcmp(r->at, word, len) != 0) return fail(r, "invalid JSON value");
    r->at += len;
    return true;
}

static int hex4(reader *r) {
    if (r->end - r->at < 4) return -1;
    int value = 0;
    for (int i = 0; i < 4; i++) {
        char c = *r->at++;
        value <<= 4;
        if (c >= '0' && c <= '9') value |= c - '0';
        else if (c >= 'a' && c <= 'f') value |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') value |= c - 'A' + 10;
        else return -1;
    }
    return value;
}

static void put_utf8(buf *b, uint32_t code) {
    char out[4];
    size_t len;
    if (code < 0x80) { out[0] = (char)code; len = 1; }
    else if (code < 0x800) { out[0] = (char)(0xC0 | code >> 6); out[1] = (char)(0x80 | (code & 0x3F)); len = 2; }
    else if (code < 0x10000) {
        out[0] = (char)(0xE0 | code >> 12); out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F)); len = 3;
    } else {
        out[0] = (char)(0xF0 | code >> 18); out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((code >> 6) & 0x3F)); out[3] = (char)(0x80 | (code & 0x3F)); len = 4;
    }
    buf_cat_n(b, out, len);
}

/* A string, after its opening quote: its decoded text, malloc'd. */
static bool string_body(reader *r, char **out) {
    buf text = {0};
    buf_cat(&text, "");
    while (r->at < r->end && *r->at != '"') {
        unsigned char c = (unsigned char)*r->at++;
        if (c < 0x20) return fail(r, "control character in a JSON string");
        if (c != '\\') { buf_cat_n(&text, (const char *)&c, 1); continue; }
        if (r->at >= r->end) break;
        char escape = *r->at++;
        const char *plain = strchr("\"\\/bfnrt", escape);
        if (plain && escape) {
            buf_cat_n(&text, &"\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"], 1);
            continue;
        }
        if (escape != 'u') return fail(r, "invalid escape in a JSON string");
        int code = hex4(r);
        if (code < 0) return fail(r, "invalid \\u escape in a JSON string");
        if (code >= 0xD800 && code < 0xDC00 && r->end - r->at >= 6 && r->at[0] == '\\' && r->at[1] == 'u') {
            r->at += 2;
            int low = hex4(r);
            if (low < 0xDC00 || low >= 0xE000) return fail(r, "invalid surrogate pair in a JSON string");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        }
        put_utf8(&text, (uint32_t)code);
    }
    if (r->at >= r->end) return fail(r, "unterminated JSON string");
    r->at++;
    *out = text.text;
    return true;
}

static bool value(reader *r, json *out, int depth);

static bool container(reader *r, json *out, int depth, bool object) {
    char close = object ? '}' : ']';
    size_t cap = 0;
    out->kind = object ? JSON_OBJECT : JSON_ARRAY;
    skip_space(r);
    if (r->at < r->end && *r->at == close) { r->at++; return true; }
    for (;;) {
        if (out->count == cap) {
            cap = cap ? cap * 2 : 4;
            out->items = realloc(out->items, cap * sizeof *out->items);
            if (object) out->keys = realloc(out->keys, cap * sizeof *out->keys);
            if (!out->items || (object && !out->keys)) abort();
        }
        skip_space(r);
        if (object) {
            if (r->at >= r->end || *r->at != '"') return fail(r, "expected a string key in a JSON object");
            r->at++;
            if (!string_body(r, &out->keys[out->count])) return false;
            skip_space(r);
            if (r->at >= r->end || *r->at != ':') return fail(r, "expected ':' in a JSON object");
            r->at++;
        }
        if (!value(r, &out->items[out->count], depth + 1)) return false;
        out->count++;
        skip_space(r);
        if (r->at < r->end && *r->at == ',') { r->at++; continue; }
        if (r->at < r->end && *r->at == close) { r->at++; return true; }
        return fail(r, object ? "expected ',' or '}' in a JSON object" : "expected ',' or ']' in a JSON array");
    }
}

static bool number(reader *r, json *out) {
    const char *start = r->at;
    if (r->at < r->end && *r->at == '-') r->at++;
    size_t digits = 0;
    while (r->at < r->end && strchr("0123456789.eE+-", *r->at) && *r->at) { r->at++; digits++; }
    if (!digits) return fail(r, "invalid JSON value");
    out->kind = JSON_NUMBER;
    buf text = {0};
    buf_cat_n(&text, start, (size_t)(r->at - start));
    out->text = text.text;
    return true;
}

static bool value(reader *r, json *out, int depth) {
    memset(out, 0, sizeof *out);
    if (depth > MAX_DEPTH) return fail(r, "JSON nested too deeply");
    skip_space(r);
    if (r->at >= r->end) return fail(r, "unexpected end of JSON text");
    switch (*r->at) {
    case '{': r->at++; return container(r, out, depth, true);
    case '[': r->at++; return container(r, out, depth, false);
    case '"': r->at++; out->kind = JSON_STRING; return string_body(r, &out->text);
    case 't': out->kind = JSON_BOOL; out->boolean = true; return literal(r, "true");
    case 'f': out->kind = JSON_BOOL; return literal(r, "false");
    case 'n': out->kind = JSON_NULL; return literal(r, "null");
    default: return number(r, out);
    }
}

bool json_parse(const char *text, size_t len, json *out, buf *error) {
    reader r = {text, text + len, error};
    if (!value(&r, out, 0)) return false;
    skip_space(&r);
    return r.at == r.end || fail(&r, "extra text after the JSON value");
}

const json *json_get(const json *object, const char *key) {
    for (size_t i = 0; i < object->count; i++) {
        if (strcmp(object->keys[i], key) == 0) return &object->items[i];
    }
    return NULL;
}

static void dump_string(const char *text, buf *out) {
    static const char hex[] = "0123456789abcdef";
    buf_cat(out, "\"");
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        uint32_t code = *s++;
        /* Decode one UTF-8 sequence (the text came from valid JSON, so it is well formed). */
        int more = code >= 0xF0 ? 3 : code >= 0xE0 ? 2 : code >= 0xC0 ? 1 : 0;
        if (more) code &= 0x3F >> more;
        while (more-- && *s) code = code << 6 | (*s++ & 0x3F);
        const char *plain = NULL;
        switch (code) {
        case '"': plain = "\\\""; break;
        case '\\': plain = "\\\\"; break;
        case '\n': plain = "\\n"; break;
        case '\r': plain = "\\r"; break;
        case '\t': plain = "\\t"; break;
        case '\b': plain = "\\b"; break;
        case '\f': plain = "\\f"; break;
        }
        if (plain) { buf_cat(out, plain); continue; }
        if (code >= 0x20 && code < 0x7F) { char c = (char)code; buf_cat_n(out, &c, 1); continue; }
        uint32_t units[2] = {code, 0};
        int count = 1;
        if (code >= 0x10000) {
            units[0] = 0xD800 + ((code - 0x10000) >> 10);
            units[1] = 0xDC00 + ((code - 0x10000) & 0x3FF);
            count = 2;
        }
        for (int i = 0; i < count; i++) {
            char escape[6] = {'\\', 'u', hex[units[i] >> 12 & 0xF], hex[units[i] >> 8 & 0xF],
                              hex[units[i] >> 4 & 0xF], hex[units[i] & 0xF]};
            buf_cat_n(out, escape, 6);
        }
    }
    buf_cat(out, "\"");
}

void json_dumps(const json *value, buf *out) {
    switch (value->kind) {
    case JSON_NULL: buf_cat(out, "null"); return;
    case JSON_BOOL: buf_cat(out, value->boolean ? "true" : "false"); return;
    case JSON_NUMBER: buf_cat(out, value->text); return;
    case JSON_STRING: dump_string(value->text, out); return;
    case JSON_ARRAY:
    case JSON_OBJECT:
        buf_cat(out, value->kind == JSON_OBJECT ? "{" : "[");
        for (size_t i = 0; i < value->count; i++) {
            if (i) buf_cat(out, ", ");
            if (value->kind == JSON_OBJECT) {
                dump_string(value->keys[i], out);
                buf_cat(out, ": ");
            }
            json_dumps(&value->items[i], out);
        }
        buf_cat(out, value->kind == JSON_OBJECT ? "}" : "]");
        return;
    }
}
