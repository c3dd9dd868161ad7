// Small JSON text helpers shared by the SFT data tools (dev/data/sft_prepare.c,
// dev/eval/sft_eval.c): naming a JSON value's kind in an error, blank lines, and JSON
// output built in a BpeBytes buffer (written atomically by the caller).
#ifndef DEV_DATA_JSON_TEXT_H
#define DEV_DATA_JSON_TEXT_H

#include <stdarg.h>
#include "llmc/utils.h"
#include "llmc/bpe.h"

// what the JSON value starting with c is, for an error message
static const char* json_kind(unsigned char c) {
    switch (c) {
        case '{': return "an object";
        case '[': return "an array";
        case '"': return "a string";
        case 't': case 'f': return "a boolean";
        case 'n': return "null";
        default: return "a number";
    }
}

// 1 if the text is empty or only ASCII white space
static int blank_text(const unsigned char* s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') { return 0; }
    }
    return 1;
}

static void buf_printf(BpeBytes* b, const char* fmt, ...) {
    char small[512];
    va_list args;
    va_start(args, fmt);
    int k = vsnprintf(small, sizeof(small), fmt, args);
    va_end(args);
    if (k < 0) { die("formatting failed"); }
    if ((size_t)k < sizeof(small)) { bpe_bytes_append(b, small, (size_t)k); return; }
    char* big = (char*)malloc_check((size_t)k + 1, "output line");
    va_start(args, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, args);
    va_end(args);
    bpe_bytes_append(b, big, (size_t)k);
    free(big);
}

// s[0..n) as a JSON string. Valid UTF-8 is copied; a byte that does not start a valid
// sequence (a generation may stop inside a character) is written as \ufffd, so the output
// is always valid JSON in UTF-8.
static void buf_json_bytes(BpeBytes* b, const unsigned char* s, size_t n) {
    bpe_bytes_append(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') { buf_printf(b, "\\%c", c); i++; }
        else if (c == '\n') { bpe_bytes_append(b, "\\n", 2); i++; }
        else if (c == '\t') { bpe_bytes_append(b, "\\t", 2); i++; }
        else if (c < 0x20 || c == 0x7f) { buf_printf(b, "\\u%04x", c); i++; }
        else if (c < 0x80) { bpe_bytes_append(b, &c, 1); i++; }
        else {
            int clen;
            bpe_char_class(s + i, n - i, &clen);
            if (clen > 1) { bpe_bytes_append(b, s + i, (size_t)clen); i += (size_t)clen; }
            else { bpe_bytes_append(b, "\\ufffd", 6); i++; }
        }
    }
    bpe_bytes_append(b, "\"", 1);
}

static void buf_json_string(BpeBytes* b, const char* s) { buf_json_bytes(b, (const unsigned char*)s, strlen(s)); }

#endif // DEV_DATA_JSON_TEXT_H
