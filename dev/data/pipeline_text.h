// Text helpers of the corpus pipeline (dev/data/pipeline.c): UTF-8 decoding and repair,
// character classes, and a small JSON-line parser that pulls the "text", "url" and "id"
// string fields out of one JSONL record.
//
// Everything here works on one document at a time and keeps no global state, so worker
// threads can call it freely. Errors are returned as codes, never by exiting: bad input is
// counted and reported by the caller, it must not stop a run over millions of lines.
#ifndef PIPELINE_TEXT_H
#define PIPELINE_TEXT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "llmc/utils.h"

// ----------------------------------------------------------------------------
// growable byte buffer

typedef struct {
    char* data;
    size_t len;
    size_t cap;
} Buf;

static void buf_reserve(Buf* b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) { return; }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) { cap *= 2; }
    char* p = realloc(b->data, cap);
    if (p == NULL) { die("out of memory growing a text buffer to %zu bytes", cap); }
    b->data = p;
    b->cap = cap;
}

static void buf_put(Buf* b, const char* s, size_t n) {
    buf_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_putc(Buf* b, char c) { buf_put(b, &c, 1); }

static void buf_puts(Buf* b, const char* s) { buf_put(b, s, strlen(s)); }

static void buf_free(Buf* b) { free(b->data); b->data = NULL; b->len = b->cap = 0; }

// appends code point cp as UTF-8
static void buf_put_cp(Buf* b, uint32_t cp) {
    char s[4];
    int n;
    if (cp < 0x80) { s[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { s[0] = (char)(0xC0 | (cp >> 6)); s[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        s[0] = (char)(0xE0 | (cp >> 12)); s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        s[0] = (char)(0xF0 | (cp >> 18)); s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); s[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    buf_put(b, s, n);
}

// ----------------------------------------------------------------------------
// UTF-8

#define REPLACEMENT_CHAR 0xFFFD

// Decodes one code point at s[0..n). Returns its length in bytes (>= 1) and stores the code
// point in *cp; an invalid sequence (bad lead byte, truncated, overlong, surrogate, > U+10FFFF)
// gives length 1 and *cp = -1, so the caller can skip exactly one byte and go on.
static int utf8_decode(const unsigned char* s, size_t n, int32_t* cp) {
    unsigned char c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    int32_t v;
    int32_t min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = -1; return 1; }
    if ((size_t)len > n) { *cp = -1; return 1; }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = -1; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = -1; return 1; }
    *cp = v;
    return len;
}

// Copies s into out, replacing every invalid byte with U+FFFD. Returns how many bytes were
// invalid (0 for valid UTF-8).
static long utf8_repair(const char* s, size_t n, Buf* out) {
    long bad = 0;
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        int len = utf8_decode((const unsigned char*)s + i, n - i, &cp);
        if (cp < 0) { buf_put_cp(out, REPLACEMENT_CHAR); bad++; }
        else { buf_put(out, s + i, len); }
        i += len;
    }
    return bad;
}

// number of code points of valid UTF-8 (counts lead bytes)
static long utf8_count(const char* s, size_t n) {
    long count = 0;
    for (size_t i = 0; i < n; i++) { count += ((unsigned char)s[i] & 0xC0) != 0x80; }
    return count;
}

// Decodes valid UTF-8 (as produced by utf8_repair or the JSON parser) into a code point array.
// Returns the number of code points; *out is malloc'ed by the caller with room for n entries.
static long utf8_to_cps(const char* s, size_t n, int32_t* out) {
    long k = 0;
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        int len = utf8_decode((const unsigned char*)s + i, n - i, &cp);
        out[k++] = cp < 0 ? REPLACEMENT_CHAR : cp;
        i += len;
    }
    return k;
}

// ----------------------------------------------------------------------------
// character classes

// Unicode white space (the common ones: ASCII, NBSP, the U+2000 block, ideographic space)
static int cp_is_space(int32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
           c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// "Japanese character" for the Swallow-style language filter: hiragana, katakana (and its
// extensions and half-width forms), CJK ideographs (BMP, extension A, compatibility), CJK
// symbols and punctuation (、。「」) and full-width forms. This is the definition the
// README of ../shared/data uses for its count (70 livedoor bodies under 50%), so the
// test can check the filter against an independent number.
static int cp_is_japanese(int32_t c) {
    return (c >= 0x3000 && c <= 0x303F) ||   // CJK symbols and punctuation
           (c >= 0x3040 && c <= 0x30FF) ||   // hiragana, katakana
           (c >= 0x31F0 && c <= 0x31FF) ||   // katakana phonetic extensions
           (c >= 0x3400 && c <= 0x4DBF) ||   // CJK extension A
           (c >= 0x4E00 && c <= 0x9FFF) ||   // CJK unified ideographs
           (c >= 0xF900 && c <= 0xFAFF) ||   // CJK compatibility ideographs
           (c >= 0xFF00 && c <= 0xFFEF);     // half-width and full-width forms
}

// a character that forms a "word" on its own: scripts written without spaces (kana, CJK).
// Gopher's word-level heuristics then see Japanese text as a sequence of one-character words,
// which keeps the n-gram repetition rules meaningful for it.
static int cp_is_cjk_word(int32_t c) {
    return (c >= 0x3040 && c <= 0x30FF) || (c >= 0x31F0 && c <= 0x31FF) ||
           (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF66 && c <= 0xFF9F);
}

static int cp_is_ascii_alpha(int32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int cp_is_ascii_digit(int32_t c) { return c >= '0' && c <= '9'; }

// ----------------------------------------------------------------------------
// JSON-line parsing
//
// We only need three string fields of one object per line, so this is a validating parser for
// the full JSON grammar that keeps just the strings it is asked for. It never reads past
// `end`, never recurses deeper than JSON_MAX_DEPTH, and reports what went wrong.

enum {
    JSON_OK = 0,
    JSON_ERR_SYNTAX,     // not valid JSON
    JSON_ERR_NOT_OBJECT, // valid JSON, but the line is not an object
    JSON_ERR_DEPTH,      // nesting deeper than JSON_MAX_DEPTH
};

#define JSON_MAX_DEPTH 64
#define JSON_MAX_DEPTH_STR "64"

typedef struct {
    const char* p;
    const char* end;
    int err;
    const char* err_msg;
    long bad_utf8;       // invalid UTF-8 bytes and lone surrogates replaced by U+FFFD
} JsonParser;

static void json_ws(JsonParser* jp) {
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r')) { jp->p++; }
}

static int json_fail(JsonParser* jp, const char* msg) {
    if (jp->err == JSON_OK) { jp->err = JSON_ERR_SYNTAX; jp->err_msg = msg; }
    return -1;
}

static int json_hex4(JsonParser* jp, uint32_t* v) {
    if (jp->end - jp->p < 4) { return json_fail(jp, "truncated \\u escape"); }
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char c = jp->p[i];
        x <<= 4;
        if (c >= '0' && c <= '9') { x |= (uint32_t)(c - '0'); }
        else if (c >= 'a' && c <= 'f') { x |= (uint32_t)(c - 'a' + 10); }
        else if (c >= 'A' && c <= 'F') { x |= (uint32_t)(c - 'A' + 10); }
        else { return json_fail(jp, "bad hex digit in \\u escape"); }
    }
    jp->p += 4;
    *v = x;
    return 0;
}

// Parses a string at jp->p (which points at the opening quote). If out != NULL the decoded
// string is appended to it (invalid UTF-8 and lone surrogates become U+FFFD and are counted).
static int json_string(JsonParser* jp, Buf* out) {
    jp->p++;  // opening quote
    while (1) {
        if (jp->p >= jp->end) { return json_fail(jp, "unterminated string"); }
        unsigned char c = (unsigned char)*jp->p;
        if (c == '"') { jp->p++; return 0; }
        if (c < 0x20) { return json_fail(jp, "control character inside a string"); }
        if (c == '\\') {
            jp->p++;
            if (jp->p >= jp->end) { return json_fail(jp, "unterminated escape"); }
            char e = *jp->p++;
            uint32_t cp = 0;
            switch (e) {
                case '"': cp = '"'; break;
                case '\\': cp = '\\'; break;
                case '/': cp = '/'; break;
                case 'b': cp = '\b'; break;
                case 'f': cp = '\f'; break;
                case 'n': cp = '\n'; break;
                case 'r': cp = '\r'; break;
                case 't': cp = '\t'; break;
                case 'u': {
                    if (json_hex4(jp, &cp) != 0) { return -1; }
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        // a high surrogate must be followed by \uDC00..\uDFFF; otherwise it is
                        // a lone surrogate, which has no UTF-8 form: replace and count it
                        uint32_t lo;
                        if (jp->end - jp->p >= 6 && jp->p[0] == '\\' && jp->p[1] == 'u') {
                            const char* save = jp->p;
                            jp->p += 2;
                            if (json_hex4(jp, &lo) != 0) { return -1; }
                            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            } else {
                                jp->p = save;  // the next escape is parsed on its own
                                cp = REPLACEMENT_CHAR;
                                jp->bad_utf8++;
                            }
                        } else {
                            cp = REPLACEMENT_CHAR;
                            jp->bad_utf8++;
                        }
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        cp = REPLACEMENT_CHAR;
                        jp->bad_utf8++;
                    }
                    break;
                }
                default: return json_fail(jp, "unknown escape in string");
            }
            if (out) { buf_put_cp(out, cp); }
            continue;
        }
        // raw bytes: copy a run of plain characters at once, validating UTF-8
        if (c < 0x80) {
            const char* s = jp->p;
            while (jp->p < jp->end && (unsigned char)*jp->p >= 0x20 && (unsigned char)*jp->p < 0x80 &&
                   *jp->p != '"' && *jp->p != '\\') { jp->p++; }
            if (out) { buf_put(out, s, jp->p - s); }
        } else {
            int32_t cp;
            int len = utf8_decode((const unsigned char*)jp->p, jp->end - jp->p, &cp);
            if (cp < 0) {
                jp->bad_utf8++;
                if (out) { buf_put_cp(out, REPLACEMENT_CHAR); }
            } else if (out) {
                buf_put(out, jp->p, len);
            }
            jp->p += len;
        }
    }
}

static int json_value(JsonParser* jp, int depth);

static int json_literal(JsonParser* jp, const char* word) {
    size_t n = strlen(word);
    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0) { return json_fail(jp, "unexpected token"); }
    jp->p += n;
    return 0;
}

static int json_number(JsonParser* jp) {
    const char* s = jp->p;
    if (jp->p < jp->end && *jp->p == '-') { jp->p++; }
    if (jp->p >= jp->end || !(*jp->p >= '0' && *jp->p <= '9')) { return json_fail(jp, "bad number"); }
    if (*jp->p == '0') { jp->p++; }
    else { while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') { jp->p++; } }
    if (jp->p < jp->end && *jp->p == '.') {
        jp->p++;
        if (jp->p >= jp->end || !(*jp->p >= '0' && *jp->p <= '9')) { return json_fail(jp, "bad number"); }
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') { jp->p++; }
    }
    if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
        jp->p++;
        if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-')) { jp->p++; }
        if (jp->p >= jp->end || !(*jp->p >= '0' && *jp->p <= '9')) { return json_fail(jp, "bad number"); }
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') { jp->p++; }
    }
    return jp->p > s ? 0 : json_fail(jp, "bad number");
}

static int json_array(JsonParser* jp, int depth) {
    jp->p++;
    json_ws(jp);
    if (jp->p < jp->end && *jp->p == ']') { jp->p++; return 0; }
    while (1) {
        if (json_value(jp, depth + 1) != 0) { return -1; }
        json_ws(jp);
        if (jp->p >= jp->end) { return json_fail(jp, "unterminated array"); }
        if (*jp->p == ',') { jp->p++; continue; }
        if (*jp->p == ']') { jp->p++; return 0; }
        return json_fail(jp, "expected ',' or ']' in array");
    }
}

// The fields we want from the top-level object. A field given twice keeps its last value,
// like Python's json module.
typedef struct {
    Buf text, url, id;
    int has_text, has_url, has_id;
    int text_not_string;  // "text" is present but is not a string
} JsonFields;

static int json_object(JsonParser* jp, int depth, JsonFields* want) {
    jp->p++;
    json_ws(jp);
    if (jp->p < jp->end && *jp->p == '}') { jp->p++; return 0; }
    Buf key = {0};
    while (1) {
        json_ws(jp);
        if (jp->p >= jp->end || *jp->p != '"') { buf_free(&key); return json_fail(jp, "expected a string key in object"); }
        key.len = 0;
        if (json_string(jp, &key) != 0) { buf_free(&key); return -1; }
        json_ws(jp);
        if (jp->p >= jp->end || *jp->p != ':') { buf_free(&key); return json_fail(jp, "expected ':' after object key"); }
        jp->p++;
        json_ws(jp);
        Buf* target = NULL;
        int* flag = NULL;
        if (want != NULL && key.data != NULL) {
            if (strcmp(key.data, "text") == 0) { target = &want->text; flag = &want->has_text; }
            else if (strcmp(key.data, "url") == 0) { target = &want->url; flag = &want->has_url; }
            else if (strcmp(key.data, "id") == 0) { target = &want->id; flag = &want->has_id; }
        }
        if (target != NULL && jp->p < jp->end && *jp->p == '"') {
            target->len = 0;
            buf_reserve(target, 0);
            target->data[0] = '\0';
            if (json_string(jp, target) != 0) { buf_free(&key); return -1; }
            *flag = 1;
            if (target == &want->text) { want->text_not_string = 0; }  // target != NULL implies want != NULL
        } else {
            if (want != NULL && target == &want->text) { want->text_not_string = 1; want->has_text = 0; }
            if (json_value(jp, depth + 1) != 0) { buf_free(&key); return -1; }
        }
        json_ws(jp);
        if (jp->p >= jp->end) { buf_free(&key); return json_fail(jp, "unterminated object"); }
        if (*jp->p == ',') { jp->p++; continue; }
        if (*jp->p == '}') { jp->p++; buf_free(&key); return 0; }
        buf_free(&key);
        return json_fail(jp, "expected ',' or '}' in object");
    }
}

static int json_value(JsonParser* jp, int depth) {
    if (depth > JSON_MAX_DEPTH) { jp->err = JSON_ERR_DEPTH; jp->err_msg = "JSON nesting deeper than " JSON_MAX_DEPTH_STR; return -1; }
    json_ws(jp);
    if (jp->p >= jp->end) { return json_fail(jp, "unexpected end of line"); }
    switch (*jp->p) {
        case '{': return json_object(jp, depth, NULL);
        case '[': return json_array(jp, depth);
        case '"': return json_string(jp, NULL);
        case 't': return json_literal(jp, "true");
        case 'f': return json_literal(jp, "false");
        case 'n': return json_literal(jp, "null");
        default: return json_number(jp);
    }
}

// Parses one JSONL record s[0..n) and fills f (whose buffers the caller owns and reuses).
// Returns JSON_OK or an error code, with a message in *msg.
static int json_parse_record(const char* s, size_t n, JsonFields* f, const char** msg, long* bad_utf8) {
    f->has_text = f->has_url = f->has_id = f->text_not_string = 0;
    f->text.len = f->url.len = f->id.len = 0;
    JsonParser jp = { s, s + n, JSON_OK, NULL, 0 };
    json_ws(&jp);
    if (jp.p >= jp.end || *jp.p != '{') {
        // valid JSON that is not an object (e.g. a bare string) is still not a record
        JsonParser probe = jp;
        int ok = json_value(&probe, 0) == 0;
        json_ws(&probe);
        if (ok && probe.p == probe.end) { *msg = "record is not a JSON object"; return JSON_ERR_NOT_OBJECT; }
        *msg = probe.err_msg ? probe.err_msg : "trailing characters after the JSON value";
        return JSON_ERR_SYNTAX;
    }
    if (json_object(&jp, 0, f) != 0) { *msg = jp.err_msg; return jp.err; }
    json_ws(&jp);
    if (jp.p != jp.end) { *msg = "trailing characters after the JSON object"; return JSON_ERR_SYNTAX; }
    *bad_utf8 = jp.bad_utf8;
    *msg = NULL;
    return JSON_OK;
}

static void json_fields_free(JsonFields* f) { buf_free(&f->text); buf_free(&f->url); buf_free(&f->id); }

// appends s as a JSON string literal (with quotes); s is valid UTF-8
static void json_put_string(Buf* out, const char* s, size_t n) {
    buf_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
            case '"': buf_put(out, "\\\"", 2); break;
            case '\\': buf_put(out, "\\\\", 2); break;
            case '\n': buf_put(out, "\\n", 2); break;
            case '\r': buf_put(out, "\\r", 2); break;
            case '\t': buf_put(out, "\\t", 2); break;
            default:
                if (c < 0x20) {
                    char e[8];
                    snprintf(e, sizeof(e), "\\u%04x", c);
                    buf_put(out, e, 6);
                } else {
                    buf_putc(out, (char)c);
                }
        }
    }
    buf_putc(out, '"');
}

#endif // PIPELINE_TEXT_H
