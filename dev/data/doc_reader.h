// Document readers shared by the tokenizer tools (tokenize.c, bpe_train.c): plain text
// (one document per file, or split after a separator), JSONL (one object per line, the text
// in a named string field) and JSON (an array of such objects). Each document is handed to a
// callback as bytes. Malformed JSONL lines and records without the field are skipped,
// counted and reported on stderr with their line numbers.
#ifndef DEV_DATA_DOC_READER_H
#define DEV_DATA_DOC_READER_H

#include <ctype.h>
#include "llmc/utils.h"
#include "llmc/bpe.h"

typedef void (*DocFn)(void* ctx, const unsigned char* text, size_t len);

// ----------------------------------------------------------------------------
// JSON: find one string field of an object, skip everything else

static void json_ws(const unsigned char* s, size_t n, size_t* p) {
    while (*p < n && (s[*p] == ' ' || s[*p] == '\t' || s[*p] == '\n' || s[*p] == '\r')) { (*p)++; }
}

// Parses a JSON string at s[*p] == '"'. If out != NULL its decoded UTF-8 is appended (an
// unpaired surrogate escape becomes U+FFFD and counts in *bad). 0 or -1 on a syntax error.
static int json_string(const unsigned char* s, size_t n, size_t* p, BpeBytes* out, long* bad) {
    size_t i = *p + 1;
    while (i < n) {
        size_t run = i;
        while (i < n && s[i] != '"' && s[i] != '\\') { i++; }
        if (out != NULL && i > run) { bpe_bytes_append(out, s + run, i - run); }
        if (i >= n) { return -1; }
        if (s[i] == '"') { *p = i + 1; return 0; }
        if (i + 1 >= n) { return -1; }
        unsigned char e = s[i + 1], c;
        i += 2;
        switch (e) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                uint32_t cp, lo;
                if (i + 4 > n || bpe_hex4(s + i, &cp) != 0) { return -1; }
                i += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u' &&
                    bpe_hex4(s + i + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                    cp = 0xFFFD;
                    if (bad) { (*bad)++; }
                }
                if (out != NULL) {
                    unsigned char u[4];
                    int k = 0;
                    bpe_utf8_put(u, &k, cp);
                    bpe_bytes_append(out, u, (size_t)k);
                }
                continue;
            }
            default: return -1;
        }
        if (out != NULL) { bpe_bytes_append(out, &c, 1); }
    }
    return -1;
}

static int json_skip(const unsigned char* s, size_t n, size_t* p, int depth) {
    json_ws(s, n, p);
    if (*p >= n || depth > 200) { return -1; }
    unsigned char c = s[*p];
    if (c == '"') { return json_string(s, n, p, NULL, NULL); }
    if (c == '{' || c == '[') {
        unsigned char close = c == '{' ? '}' : ']';
        (*p)++;
        json_ws(s, n, p);
        if (*p < n && s[*p] == close) { (*p)++; return 0; }
        for (;;) {
            if (c == '{') {
                json_ws(s, n, p);
                if (*p >= n || s[*p] != '"' || json_string(s, n, p, NULL, NULL) != 0) { return -1; }
                json_ws(s, n, p);
                if (*p >= n || s[*p] != ':') { return -1; }
                (*p)++;
            }
            if (json_skip(s, n, p, depth + 1) != 0) { return -1; }
            json_ws(s, n, p);
            if (*p < n && s[*p] == ',') { (*p)++; continue; }
            if (*p < n && s[*p] == close) { (*p)++; return 0; }
            return -1;
        }
    }
    // number, true, false, null
    size_t start = *p;
    while (*p < n && (isalnum(s[*p]) || s[*p] == '-' || s[*p] == '+' || s[*p] == '.')) { (*p)++; }
    return *p > start ? 0 : -1;
}

// Parses the object at s[*p] and appends the string value of `field` to out.
// Returns 1 if found, 0 if the object has no such string field, -1 on a syntax error.
static int json_object_field(const unsigned char* s, size_t n, size_t* p, const char* field, BpeBytes* out, long* bad) {
    json_ws(s, n, p);
    if (*p >= n || s[*p] != '{') { return -1; }
    (*p)++;
    int found = 0;
    size_t flen = strlen(field);
    json_ws(s, n, p);
    if (*p < n && s[*p] == '}') { (*p)++; return 0; }
    for (;;) {
        json_ws(s, n, p);
        if (*p >= n || s[*p] != '"') { return -1; }
        size_t k0 = *p + 1;
        if (json_string(s, n, p, NULL, NULL) != 0) { return -1; }
        int match = (*p - 1 - k0 == flen) && memcmp(s + k0, field, flen) == 0;
        json_ws(s, n, p);
        if (*p >= n || s[*p] != ':') { return -1; }
        (*p)++;
        json_ws(s, n, p);
        if (match && !found && *p < n && s[*p] == '"') {
            if (json_string(s, n, p, out, bad) != 0) { return -1; }
            found = 1;
        } else if (json_skip(s, n, p, 0) != 0) {
            return -1;
        }
        json_ws(s, n, p);
        if (*p < n && s[*p] == ',') { (*p)++; continue; }
        if (*p < n && s[*p] == '}') { (*p)++; return found; }
        return -1;
    }
}

static unsigned char* read_all(const char* path, size_t* n) {
    char err[LLMC_ERRLEN];
    unsigned char* b = bpe_read_file(path, n, err);
    if (b == NULL) { die("%s", err); }
    return b;
}

static void read_text_file(DocFn fn, void* ctx, const char* path, const char* sep) {
    size_t n;
    unsigned char* s = read_all(path, &n);
    size_t sl = sep ? strlen(sep) : 0;
    size_t p = 0;
    while (p < n) {
        size_t q = n;
        if (sl > 0) {
            for (size_t i = p; i + sl <= n; i++) {
                if (s[i] == (unsigned char)sep[0] && memcmp(s + i, sep, sl) == 0) { q = i + sl; break; }
            }
        }
        fn(ctx, s + p, q - p);
        p = q;
    }
    free(s);
}

static void read_jsonl_file(DocFn fn, void* ctx, const char* path, const char* field) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) { die("%s: cannot open: %s", path, strerror(errno)); }
    char* line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, bad = 0, missing = 0, badsur = 0;
    BpeBytes doc = {0};
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t p = 0;
        json_ws((unsigned char*)line, (size_t)len, &p);
        if (p == (size_t)len) { continue; }  // blank line
        doc.len = 0;
        int r = json_object_field((unsigned char*)line, (size_t)len, &p, field, &doc, &badsur);
        if (r < 0) { if (bad++ < 10) { fprintf(stderr, "%s:%ld: malformed JSON line, skipped\n", path, lineno); } continue; }
        if (r == 0) { if (missing++ < 10) { fprintf(stderr, "%s:%ld: no string field \"%s\", skipped\n", path, lineno, field); } continue; }
        fn(ctx, doc.data ? doc.data : (const unsigned char*)"", doc.len);
    }
    if (ferror(f)) { die("%s: read error", path); }
    fclose(f);
    free(line);
    bpe_bytes_free(&doc);
    if (bad || missing || badsur) {
        fprintf(stderr, "%s: %ld malformed lines, %ld without \"%s\", %ld unpaired surrogate escapes (-> U+FFFD)\n",
                path, bad, missing, field, badsur);
    }
}

static void read_json_array_file(DocFn fn, void* ctx, const char* path, const char* field) {
    size_t n;
    unsigned char* s = read_all(path, &n);
    size_t p = 0;
    long badsur = 0, idx = 0;
    BpeBytes doc = {0};
    json_ws(s, n, &p);
    if (p >= n || s[p] != '[') { die("%s: expected a JSON array of objects", path); }
    p++;
    json_ws(s, n, &p);
    if (p < n && s[p] == ']') { p++; }
    else {
        for (;;) {
            doc.len = 0;
            int r = json_object_field(s, n, &p, field, &doc, &badsur);
            if (r < 0) { die("%s: malformed JSON in element %ld near byte %zu", path, idx, p); }
            if (r == 0) { fprintf(stderr, "%s: element %ld has no string field \"%s\", skipped\n", path, idx, field); }
            else { fn(ctx, doc.data ? doc.data : (const unsigned char*)"", doc.len); }
            idx++;
            json_ws(s, n, &p);
            if (p < n && s[p] == ',') { p++; continue; }
            if (p < n && s[p] == ']') { p++; break; }
            die("%s: expected ',' or ']' near byte %zu", path, p);
        }
    }
    free(s);
    bpe_bytes_free(&doc);
}


// Reads every document of path; format is auto (by extension: .jsonl, .json, else text),
// text, jsonl or json. sep (text only, may be NULL) splits a text file after each occurrence.
static void read_documents(const char* path, const char* format, const char* field, const char* sep, DocFn fn, void* ctx) {
    const char* fmt = format;
    if (strcmp(fmt, "auto") == 0) {
        size_t l = strlen(path);
        fmt = (l > 6 && strcmp(path + l - 6, ".jsonl") == 0) ? "jsonl" : (l > 5 && strcmp(path + l - 5, ".json") == 0) ? "json" : "text";
    }
    if (strcmp(fmt, "text") == 0) { read_text_file(fn, ctx, path, sep); }
    else if (strcmp(fmt, "jsonl") == 0) { read_jsonl_file(fn, ctx, path, field); }
    else if (strcmp(fmt, "json") == 0) { read_json_array_file(fn, ctx, path, field); }
    else { die("unknown --format %s (auto, text, jsonl, json)", fmt); }
}

#endif // DEV_DATA_DOC_READER_H
