// Document readers shared by the data tools (tokenize.c, bpe_train.c, pipeline.c): plain text
// (one document per file, or split after a separator), JSONL (one object per line, the text
// in a named string field) and JSON (an array of such objects). Each document is handed to a
// callback as bytes. Malformed JSONL lines and records without the field are skipped,
// counted and reported on stderr with their line numbers. A UTF-8 byte order mark at the
// start of a file is skipped. Inputs must be regular files (a FIFO or a directory is refused).
//
// Also the command-line helpers the data tools share: where the default GPT-2 vocabulary
// lives, the check that no output names an input or another output, and mkdir -p.
#ifndef DEV_DATA_DOC_READER_H
#define DEV_DATA_DOC_READER_H

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include "llmc/utils.h"
#include "llmc/args.h"
#include "llmc/bpe.h"

typedef void (*DocFn)(void* ctx, const unsigned char* text, size_t len);

// ----------------------------------------------------------------------------
// JSON: find one string field of an object, skip everything else

static void doc_json_ws(const unsigned char* s, size_t n, size_t* p) {
    while (*p < n && (s[*p] == ' ' || s[*p] == '\t' || s[*p] == '\n' || s[*p] == '\r')) { (*p)++; }
}

// Parses a JSON string at s[*p] == '"'. If out != NULL its decoded UTF-8 is appended (an
// unpaired surrogate escape becomes U+FFFD and counts in *bad). 0 or -1 on a syntax error.
static int doc_json_string(const unsigned char* s, size_t n, size_t* p, BpeBytes* out, long* bad) {
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

// JSON nesting deeper than this is refused (-2 from the parsers below, "nesting deeper than N")
#define DOC_JSON_MAX_DEPTH 200

static int doc_json_skip(const unsigned char* s, size_t n, size_t* p, int depth) {
    doc_json_ws(s, n, p);
    if (depth > DOC_JSON_MAX_DEPTH) { return -2; }
    if (*p >= n) { return -1; }
    unsigned char c = s[*p];
    if (c == '"') { return doc_json_string(s, n, p, NULL, NULL); }
    if (c == '{' || c == '[') {
        unsigned char close = c == '{' ? '}' : ']';
        (*p)++;
        doc_json_ws(s, n, p);
        if (*p < n && s[*p] == close) { (*p)++; return 0; }
        for (;;) {
            if (c == '{') {
                doc_json_ws(s, n, p);
                if (*p >= n || s[*p] != '"' || doc_json_string(s, n, p, NULL, NULL) != 0) { return -1; }
                doc_json_ws(s, n, p);
                if (*p >= n || s[*p] != ':') { return -1; }
                (*p)++;
            }
            int r = doc_json_skip(s, n, p, depth + 1);
            if (r != 0) { return r; }
            doc_json_ws(s, n, p);
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
// Returns 1 if found, 0 if the object has no such string field, -1 on a syntax error, -2 if
// the nesting is deeper than DOC_JSON_MAX_DEPTH.
static int doc_json_object_field(const unsigned char* s, size_t n, size_t* p, const char* field, BpeBytes* out, long* bad) {
    doc_json_ws(s, n, p);
    if (*p >= n || s[*p] != '{') { return -1; }
    (*p)++;
    int found = 0;
    size_t flen = strlen(field);
    doc_json_ws(s, n, p);
    if (*p < n && s[*p] == '}') { (*p)++; return 0; }
    for (;;) {
        doc_json_ws(s, n, p);
        if (*p >= n || s[*p] != '"') { return -1; }
        size_t k0 = *p + 1;
        if (doc_json_string(s, n, p, NULL, NULL) != 0) { return -1; }
        int match = (*p - 1 - k0 == flen) && memcmp(s + k0, field, flen) == 0;
        doc_json_ws(s, n, p);
        if (*p >= n || s[*p] != ':') { return -1; }
        (*p)++;
        doc_json_ws(s, n, p);
        int r;
        if (match && !found && *p < n && s[*p] == '"') {
            if (doc_json_string(s, n, p, out, bad) != 0) { return -1; }
            found = 1;
        } else if ((r = doc_json_skip(s, n, p, 1)) != 0) {
            return r;
        }
        doc_json_ws(s, n, p);
        if (*p < n && s[*p] == ',') { (*p)++; continue; }
        if (*p < n && s[*p] == '}') { (*p)++; return found; }
        return -1;
    }
}

// a UTF-8 byte order mark (EF BB BF) at the start of a file
static size_t doc_bom_len(const unsigned char* s, size_t n) {
    return (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF) ? 3 : 0;
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
    size_t p = doc_bom_len(s, n);
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
    char err[LLMC_ERRLEN];
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { die("%s", err); }
    char* line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, bad = 0, deep = 0, missing = 0, badsur = 0;
    BpeBytes doc = {0};
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t p = lineno == 1 ? doc_bom_len((unsigned char*)line, (size_t)len) : 0;
        doc_json_ws((unsigned char*)line, (size_t)len, &p);
        if (p == (size_t)len) { continue; }  // blank line
        doc.len = 0;
        int r = doc_json_object_field((unsigned char*)line, (size_t)len, &p, field, &doc, &badsur);
        if (r == -2) {
            if (deep++ < 10) { fprintf(stderr, "%s:%ld: JSON nesting deeper than %d, line skipped\n", path, lineno, DOC_JSON_MAX_DEPTH); }
            continue;
        }
        if (r < 0) { if (bad++ < 10) { fprintf(stderr, "%s:%ld: malformed JSON line, skipped\n", path, lineno); } continue; }
        if (r == 0) { if (missing++ < 10) { fprintf(stderr, "%s:%ld: no string field \"%s\", skipped\n", path, lineno, field); } continue; }
        fn(ctx, doc.data ? doc.data : (const unsigned char*)"", doc.len);
    }
    if (ferror(f)) { die("%s: read error", path); }
    fclose(f);
    free(line);
    bpe_bytes_free(&doc);
    if (bad || deep || missing || badsur) {
        fprintf(stderr, "%s: %ld malformed lines, %ld with nesting deeper than %d, %ld without \"%s\", %ld unpaired surrogate escapes (-> U+FFFD)\n",
                path, bad, deep, DOC_JSON_MAX_DEPTH, missing, field, badsur);
    }
}

static int doc_json_array_elements(const char* path, const unsigned char* s, size_t n, size_t** starts, size_t** ends,
                                   long** lines, size_t* count, char* err);

// a JSON array of objects: split by doc_json_array_elements (as dev/data/pipeline reads it),
// then the field of each element
static void read_json_array_file(DocFn fn, void* ctx, const char* path, const char* field) {
    char err[LLMC_ERRLEN];
    size_t n, *starts, *ends, m;
    long* lines;
    unsigned char* s = read_all(path, &n);
    if (doc_json_array_elements(path, s, n, &starts, &ends, &lines, &m, err) != 0) { die("%s", err); }
    long badsur = 0, missing = 0, bad = 0;
    BpeBytes doc = {0};
    for (size_t i = 0; i < m; i++) {
        doc.len = 0;
        size_t p = 0;
        int r = doc_json_object_field(s + starts[i], ends[i] - starts[i], &p, field, &doc, &badsur);
        if (r < 0) {  // valid JSON (checked by the splitter), but not an object
            if (bad++ < 10) { fprintf(stderr, "%s:%ld: element %zu is not a JSON object, skipped\n", path, lines[i], i); }
        } else if (r == 0) {
            if (missing++ < 10) { fprintf(stderr, "%s:%ld: element %zu has no string field \"%s\", skipped\n", path, lines[i], i, field); }
        } else {
            fn(ctx, doc.data ? doc.data : (const unsigned char*)"", doc.len);
        }
    }
    if (bad || missing || badsur) {
        fprintf(stderr, "%s: %ld elements not objects, %ld without \"%s\", %ld unpaired surrogate escapes (-> U+FFFD)\n",
                path, bad, missing, field, badsur);
    }
    free(starts); free(ends); free(lines); free(s);
    bpe_bytes_free(&doc);
}

// Splits a JSON array (s[0..n), after any BOM) into its elements: element i is
// s[starts[i] .. ends[i]), starting on line lines[i] (1-based). The arrays are malloc'ed.
// 0, or -1 with err naming path, the element and the problem (malformed, nesting too deep).
static int doc_json_array_elements(const char* path, const unsigned char* s, size_t n, size_t** starts, size_t** ends,
                                   long** lines, size_t* count, char* err) {
    size_t p = doc_bom_len(s, n), cap = 0, m = 0, nl_pos = 0;
    long line = 1;
    *starts = NULL; *ends = NULL; *lines = NULL; *count = 0;
    doc_json_ws(s, n, &p);
    if (p >= n || s[p] != '[') { return set_err(err, "%s: expected a JSON array of objects", path); }
    p++;
    doc_json_ws(s, n, &p);
    if (p < n && s[p] == ']') { p++; }
    else {
        for (;;) {
            doc_json_ws(s, n, &p);
            if (m == cap) {
                cap = cap ? 2 * cap : 256;
                *starts = (size_t*)realloc(*starts, cap * sizeof(size_t));
                *ends = (size_t*)realloc(*ends, cap * sizeof(size_t));
                *lines = (long*)realloc(*lines, cap * sizeof(long));
                if (!*starts || !*ends || !*lines) { die("out of memory splitting %s", path); }
            }
            for (; nl_pos < p; nl_pos++) { line += s[nl_pos] == '\n'; }
            (*starts)[m] = p;
            (*lines)[m] = line;
            int r = doc_json_skip(s, n, &p, 1);
            if (r == -2) { return set_err(err, "%s: element %zu (line %ld): JSON nesting deeper than %d", path, m, line, DOC_JSON_MAX_DEPTH); }
            if (r != 0) { return set_err(err, "%s: element %zu (line %ld): malformed JSON near byte %zu", path, m, line, p); }
            (*ends)[m] = p;
            m++;
            doc_json_ws(s, n, &p);
            if (p < n && s[p] == ',') { p++; continue; }
            if (p < n && s[p] == ']') { p++; break; }
            return set_err(err, "%s: expected ',' or ']' after element %zu near byte %zu", path, m - 1, p);
        }
    }
    doc_json_ws(s, n, &p);
    if (p != n) { return set_err(err, "%s: trailing characters after the JSON array at byte %zu", path, p); }
    *count = m;
    return 0;
}

// The format of an input by its name: "jsonl" for *.jsonl, "json" for *.json, else "text".
static const char* doc_format_of(const char* path) {
    size_t l = strlen(path);
    if (l > 6 && strcmp(path + l - 6, ".jsonl") == 0) { return "jsonl"; }
    if (l > 5 && strcmp(path + l - 5, ".json") == 0) { return "json"; }
    return "text";
}

// Reads every document of path; format is auto (by extension: .jsonl, .json, else text),
// text, jsonl or json. sep (text only, may be NULL) splits a text file after each occurrence.
static void read_documents(const char* path, const char* format, const char* field, const char* sep, DocFn fn, void* ctx) {
    const char* fmt = format;
    if (strcmp(fmt, "auto") == 0) { fmt = doc_format_of(path); }
    if (strcmp(fmt, "text") == 0) { read_text_file(fn, ctx, path, sep); }
    else if (strcmp(fmt, "jsonl") == 0) { read_jsonl_file(fn, ctx, path, field); }
    else if (strcmp(fmt, "json") == 0) { read_json_array_file(fn, ctx, path, field); }
    else { die("unknown --format %s (auto, text, jsonl, json)", fmt); }
}

// ----------------------------------------------------------------------------
// command-line helpers shared by the data tools

static int doc_is_regular(const char* path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// The directory holding the running program (from /proc/self/exe), or "" if unknown.
static void doc_exe_dir(char* out, size_t n) {
    char buf[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    out[0] = '\0';
    if (len <= 0) { return; }
    buf[len] = '\0';
    char* slash = strrchr(buf, '/');
    if (slash == NULL) { return; }
    *slash = '\0';
    snprintf(out, n, "%s", buf);
}

// The default GPT-2 vocabulary directory (encoder.json + vocab.bpe): ../shared/data/gpt2 from
// the current directory, else found from the program's own location (dev/data/tool in the
// repository ROOT: ROOT/../shared/data/gpt2, then ROOT/shared/data/gpt2), so the tools work
// from any directory. Falls back to the cwd-relative path (whose error then names it).
static void doc_default_vocab_dir(char* out, size_t n) {
    static const char* rel = "../shared/data/gpt2";
    snprintf(out, n, "%s", rel);
    if (doc_is_regular("../shared/data/gpt2/encoder.json")) { return; }
    char exe[PATH_MAX];
    doc_exe_dir(exe, sizeof(exe));
    if (exe[0] == '\0') { return; }
    static const char* tails[] = { "/../../../shared/data/gpt2", "/../../shared/data/gpt2", "/../shared/data/gpt2" };
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        char dir[PATH_MAX + 64], enc[PATH_MAX + 96];
        snprintf(dir, sizeof(dir), "%s%s", exe, tails[i]);
        snprintf(enc, sizeof(enc), "%s/encoder.json", dir);
        if (doc_is_regular(enc)) {
            char real[PATH_MAX];
            if (realpath(dir, real) != NULL) { snprintf(out, n, "%s", real); }
            else { snprintf(out, n, "%.*s", (int)(n > 0 ? n - 1 : 0), dir); }
            return;
        }
    }
}

// A path in one canonical spelling, for comparing outputs that may not exist yet: the
// symlinks of its last component followed (as atomic_open does) and its directory resolved.
static void doc_canon_path(const char* path, char* out, size_t n) {
    char res[LLMC_PATH_MAX], err[LLMC_ERRLEN];
    if (resolve_output_path(path, res, sizeof(res), err) != 0) { snprintf(res, sizeof(res), "%s", path); }
    char d[LLMC_PATH_MAX], b[LLMC_PATH_MAX], real[PATH_MAX];
    snprintf(d, sizeof(d), "%s", res);
    snprintf(b, sizeof(b), "%s", res);
    const char* dir = dirname(d);
    const char* base = basename(b);
    if (realpath(dir, real) != NULL) { snprintf(out, n, "%s/%s", real, base); return; }
    char cwd[PATH_MAX];
    if (res[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL) { snprintf(out, n, "%s/%s", cwd, res); }
    else { snprintf(out, n, "%s", res); }
}

typedef struct {
    const char* what;   // how the user named it: a flag ("--out-jsonl") or "input"
    const char* path;
} DocPath;

// 1 if name (a file name, no directory) is one of the shard names of the prefix base:
// base_train.bin, base_val.bin, base_train_NNNNNN.bin, base_val_NNNNNN.bin
static int doc_is_shard_name(const char* name, const char* base) {
    size_t bl = strlen(base), nl = strlen(name);
    if (nl < bl + 5 || strncmp(name, base, bl) != 0 || strcmp(name + nl - 4, ".bin") != 0) { return 0; }
    const char* r = name + bl;
    const char* split = strncmp(r, "_train", 6) == 0 ? "_train" : strncmp(r, "_val", 4) == 0 ? "_val" : NULL;
    if (split == NULL) { return 0; }
    r += strlen(split);
    if (strcmp(r, ".bin") == 0) { return 1; }
    if (*r++ != '_') { return 0; }
    const char* e = name + nl - 4;
    if (r == e) { return 0; }
    for (; r < e; r++) { if (!isdigit((unsigned char)*r)) { return 0; } }
    return 1;
}

// Checks, before any work, that every output can be written (check_output_path: not a
// directory, FIFO or device) and is neither an input nor another output: existing files are
// compared by device and inode (same_file), outputs that do not exist yet by their canonical
// path. shard_prefix (may be NULL) stands for the shard files PREFIX_{train,val}[_N].bin:
// existing ones must not be inputs, and no other output may be named like one.
// Returns 0, or -1 with err: "<flag> <path>: ...".
static int doc_check_paths(const DocPath* in, int nin, const DocPath* out, int nout, const char* shard_prefix, char* err) {
    char e2[LLMC_ERRLEN], ca[LLMC_PATH_MAX + PATH_MAX], cb[LLMC_PATH_MAX + PATH_MAX];
    for (int i = 0; i < nout; i++) {
        if (check_output_path(out[i].path, e2) != 0) { return set_err(err, "%s: %s", out[i].what, e2); }
        for (int j = 0; j < nin; j++) {
            if (same_file(out[i].path, in[j].path)) {
                return set_err(err, "%s %s: is the same file as the %s %s; refusing to overwrite an input",
                               out[i].what, out[i].path, in[j].what, in[j].path);
            }
        }
        doc_canon_path(out[i].path, ca, sizeof(ca));
        for (int k = 0; k < i; k++) {
            doc_canon_path(out[k].path, cb, sizeof(cb));
            if (same_file(out[i].path, out[k].path) || strcmp(ca, cb) == 0) {
                return set_err(err, "%s %s: is the same file as %s %s; give each output its own file",
                               out[i].what, out[i].path, out[k].what, out[k].path);
            }
        }
    }
    if (shard_prefix == NULL) { return 0; }
    if (strlen(shard_prefix) + strlen("_train_000000.bin") >= LLMC_PATH_MAX) {
        return set_err(err, "output prefix %.60s...: too long (%zu characters; with a shard name at most %d)", shard_prefix,
                       strlen(shard_prefix), LLMC_PATH_MAX - 1);
    }
    char pc[LLMC_PATH_MAX + PATH_MAX];
    doc_canon_path(shard_prefix, pc, sizeof(pc));
    char d[LLMC_PATH_MAX + PATH_MAX], b[LLMC_PATH_MAX + PATH_MAX];
    snprintf(d, sizeof(d), "%s", pc);
    snprintf(b, sizeof(b), "%s", pc);
    const char* dir = dirname(d);
    const char* base = basename(b);
    for (int i = 0; i < nout; i++) {  // another output named like a shard
        doc_canon_path(out[i].path, ca, sizeof(ca));
        const char* slash = strrchr(ca, '/');
        size_t dl = strlen(dir);
        if (slash != NULL && (size_t)(slash - ca) == dl && strncmp(ca, dir, dl) == 0 && doc_is_shard_name(slash + 1, base)) {
            return set_err(err, "%s %s: is named like a shard of the output prefix %s; give it another name", out[i].what, out[i].path, shard_prefix);
        }
    }
    DIR* dh = opendir(dir);
    if (dh == NULL) { return 0; }  // the folder does not exist yet: no shard can be an input
    struct dirent* ent;
    int rc = 0;
    while (rc == 0 && (ent = readdir(dh)) != NULL) {
        if (!doc_is_shard_name(ent->d_name, base)) { continue; }
        char full[2 * LLMC_PATH_MAX + 2 * PATH_MAX];
        snprintf(full, sizeof(full), "%s/%s", dir, ent->d_name);
        if (check_output_path(full, e2) != 0) { rc = set_err(err, "output shard %s", e2); break; }
        for (int j = 0; j < nin; j++) {
            if (same_file(full, in[j].path)) {
                rc = set_err(err, "%s %s: the output shard %s would overwrite the %s %s", "output prefix", shard_prefix, full, in[j].what, in[j].path);
                break;
            }
        }
    }
    closedir(dh);
    return rc;
}

// Creates the folders of an output prefix or path ("out/run/p" -> out/ and out/run/), like
// mkdir -p. 0, or -1 with err.
static int doc_make_parent_dirs(const char* path, char* err) {
    char buf[LLMC_PATH_MAX];
    if (strlen(path) >= sizeof(buf)) { return set_err(err, "%s: path too long", path); }
    snprintf(buf, sizeof(buf), "%s", path);
    char* last = strrchr(buf, '/');
    if (last == NULL || last == buf) { return 0; }
    *last = '\0';
    for (char* p = buf + 1; ; p++) {
        char c = *p;
        if (c == '/' || c == '\0') {
            *p = '\0';
            struct stat st;
            if (stat(buf, &st) == 0) {
                if (!S_ISDIR(st.st_mode)) { return set_err(err, "%s: exists and is not a directory", buf); }
            } else if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return set_err(err, "%s: cannot create directory: %s", buf, strerror(errno));
            }
            *p = c;
            if (c == '\0') { break; }
        }
    }
    return 0;
}

// Parses "A,B" (or "A,B,C": n values) with parse_number; each in [min, max]. 0, or -1 with err.
static int doc_parse_list(const char* flag, const char* text, int n, double min, double max, double* out, char* err) {
    char buf[256];
    if (strlen(text) >= sizeof(buf)) { return set_err(err, "%s: value too long", flag); }
    snprintf(buf, sizeof(buf), "%s", text);
    char* p = buf;
    for (int i = 0; i < n; i++) {
        char* comma = strchr(p, ',');
        if ((comma == NULL) != (i == n - 1)) {
            return set_err(err, "%s: expected %d comma-separated numbers, got '%s'", flag, n, text);
        }
        if (comma != NULL) { *comma = '\0'; }
        if (parse_number(flag, p, min, max, &out[i], err) != 0) { return -1; }
        p = comma != NULL ? comma + 1 : p;
    }
    return 0;
}

#endif // DEV_DATA_DOC_READER_H
