// Unit tests of the corpus pipeline's stages on real text (dev/data/pipeline_*.h).
//   ./build/test_pipeline [DATA_DIR]      (default ../shared/data)
// Prints "PASS: name" or "FAIL: name: detail" per check; exits 1 if any check failed.
// The end-to-end runs of the pipeline binary are in dev/data/test_pipeline.sh.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "llmc/utils.h"
#include "dev/data/pipeline_text.h"
#include "dev/data/pipeline_filters.h"

static int failures = 0;

static void check(int ok, const char* name, const char* fmt, ...) {
    if (ok) { printf("PASS: %s\n", name); return; }
    failures++;
    printf("FAIL: %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

// ----------------------------------------------------------------------------
// loading real documents

typedef struct { char** text; long n; } Texts;

static Texts load_jsonl(const char* path, long max) {
    Texts t = {0};
    FILE* f = fopen_check(path, "rb");
    char* line = NULL;
    size_t cap = 0;
    ssize_t len;
    JsonFields jf = {0};
    t.text = malloc_check(sizeof(char*) * (max > 0 ? max : 1), "texts");
    while (t.n < max && (len = getline(&line, &cap, f)) >= 0) {
        const char* msg;
        long bad;
        if (json_parse_record(line, len, &jf, &msg, &bad) != JSON_OK || !jf.has_text) { continue; }
        t.text[t.n++] = strndup(jf.text.data ? jf.text.data : "", jf.text.len);
    }
    free(line);
    json_fields_free(&jf);
    fclose(f);
    return t;
}

static long to_cps(const char* s, int32_t** out) {
    size_t n = strlen(s);
    *out = malloc_check((n + 1) * sizeof(int32_t), "cps");
    return utf8_to_cps(s, n, *out);
}

static int quality_of(const QualityConfig* c, const char* s, QualityStats* st) {
    int32_t* cps;
    long n = to_cps(s, &cps);
    int r = quality_check(c, cps, n, st);
    free(cps);
    return r;
}

// a config with every rule off; tests switch on the one rule they check
static QualityConfig config_all_off(void) {
    QualityConfig c;
    quality_config_default(&c, 0);
    c.min_chars = 0;
    c.min_ja_frac = -1;
    c.gopher = 1;
    c.mean_word_min = c.mean_word_max = 0;
    c.max_symbol_ratio = c.max_ellipsis_lines = 1e9;
    c.max_dup_line_frac = c.max_dup_line_chars = c.max_dup_para_frac = c.max_dup_para_chars = 1e9;
    for (int g = 0; g < 5; g++) { c.max_top_ngram[g] = 0; }
    c.min_words = c.max_words = 0;
    c.max_bullet_lines = 1e9;
    c.min_alpha_words = 0;
    return c;
}

// ----------------------------------------------------------------------------
// JSON and UTF-8

static void test_json(void) {
    JsonFields f = {0};
    const char* msg;
    long bad;
    const char* s1 = "{\"id\": \"a1\", \"text\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\n\\t\", \"url\": \"http://x.jp/\", \"n\": [1, 2.5e3, true, null, {\"text\": \"inner\"}]}";
    int rc = json_parse_record(s1, strlen(s1), &f, &msg, &bad);
    check(rc == JSON_OK && f.has_text && strcmp(f.text.data, "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ / \n\t") == 0 &&
          strcmp(f.id.data, "a1") == 0 && strcmp(f.url.data, "http://x.jp/") == 0 && bad == 0,
          "json escapes, \\u and surrogate pairs; nested \"text\" ignored", "rc=%d text=[%s]", rc, f.text.data);
    const char* s2 = "{\"text\": \"a\\ud800b\\udc00c\"}";
    rc = json_parse_record(s2, strlen(s2), &f, &msg, &bad);
    check(rc == JSON_OK && bad == 2 && strcmp(f.text.data, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c") == 0,
          "json lone surrogates become U+FFFD and are counted", "rc=%d bad=%ld", rc, bad);
    const char s3[] = "{\"text\": \"ok \xff\xfe bad \xc0\xaf overlong \xed\xa0\x80 surrogate\"}";
    rc = json_parse_record(s3, strlen(s3), &f, &msg, &bad);
    check(rc == JSON_OK && bad == 7, "json invalid UTF-8 inside strings is replaced and counted", "rc=%d bad=%ld", rc, bad);
    struct { const char* line; int rc; } cases[] = {
        { "{\"text\": \"unterminated", JSON_ERR_SYNTAX },
        { "{\"text\": \"a\" \"id\": 1}", JSON_ERR_SYNTAX },
        { "{\"text\": \"a\",}", JSON_ERR_SYNTAX },
        { "{\"text\": \"bad escape \\x\"}", JSON_ERR_SYNTAX },
        { "{\"text\": \"\\u12\"}", JSON_ERR_SYNTAX },
        { "{\"text\": \"a\"} trailing", JSON_ERR_SYNTAX },
        { "{\"text\": 01}", JSON_ERR_SYNTAX },
        { "{\"text\": \"tab\tinside\"}", JSON_ERR_SYNTAX },
        { "[1, 2]", JSON_ERR_NOT_OBJECT },
        { "\"just a string\"", JSON_ERR_NOT_OBJECT },
        { "{", JSON_ERR_SYNTAX },
        { "", JSON_ERR_SYNTAX },
    };
    int ok = 1;
    char detail[256] = "";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rc = json_parse_record(cases[i].line, strlen(cases[i].line), &f, &msg, &bad);
        if (rc != cases[i].rc) { ok = 0; snprintf(detail, sizeof(detail), "case %zu [%s]: rc %d, want %d", i, cases[i].line, rc, cases[i].rc); }
    }
    check(ok, "json malformed records are rejected with the right code", "%s", detail);
    // deep nesting must not recurse without bound
    Buf deep = {0};
    buf_put(&deep, "{\"a\": ", 6);
    for (int i = 0; i < 100000; i++) { buf_putc(&deep, '['); }
    rc = json_parse_record(deep.data, deep.len, &f, &msg, &bad);
    check(rc == JSON_ERR_DEPTH, "json nesting depth is bounded", "rc=%d", rc);
    buf_free(&deep);
    rc = json_parse_record("{\"id\": \"x\"}", 11, &f, &msg, &bad);
    check(rc == JSON_OK && !f.has_text && !f.text_not_string, "json missing text field is reported", "rc=%d", rc);
    rc = json_parse_record("{\"text\": 5}", 11, &f, &msg, &bad);
    check(rc == JSON_OK && !f.has_text && f.text_not_string, "json non-string text field is reported", "rc=%d", rc);
    json_fields_free(&f);

    // UTF-8 repair
    Buf out = {0};
    const char s4[] = "a\xc3\xa9\xe3\x81\x82\xf0\x9f\x98\x80" "b\x80" "c\xe3\x81" "d\xf4\x90\x80\x80" "e";
    long nbad = utf8_repair(s4, sizeof(s4) - 1, &out);
    check(nbad == 7 && utf8_count(out.data, out.len) == 8 + 7, "utf8 repair replaces exactly the invalid bytes", "bad=%ld chars=%ld", nbad, utf8_count(out.data, out.len));
    buf_free(&out);
}

// fuzz the parser with real lines, truncated and with flipped bytes: it must never crash
static void test_json_fuzz(const char* path) {
    FILE* f = fopen_check(path, "rb");
    char* line = NULL;
    size_t cap = 0;
    ssize_t len;
    JsonFields jf = {0};
    uint64_t rng = 12345;
    long n = 0, ok = 0;
    while (n < 300 && (len = getline(&line, &cap, f)) >= 0) {
        for (int t = 0; t < 20; t++) {
            char* m = malloc_check(len + 1, "fuzz");
            memcpy(m, line, len);
            rng = mix64(rng + 1);
            size_t L = (size_t)(rng % (len + 1));
            for (int k = 0; k < 4; k++) { rng = mix64(rng + 7); m[rng % (L ? L : 1)] ^= (char)(rng >> 40); }
            const char* msg;
            long bad;
            int rc = json_parse_record(m, L, &jf, &msg, &bad);
            ok += rc == JSON_OK;
            free(m);
        }
        n++;
    }
    free(line);
    json_fields_free(&jf);
    fclose(f);
    check(n == 300, "json fuzz on 6000 damaged real livedoor lines does not crash", "read %ld lines (%ld still parsed)", n, ok);
}

// ----------------------------------------------------------------------------
// quality filters: each rule on real text edited to either side of its threshold

typedef void (*EditFn)(const char* base, int k, Buf* out);

// finds the smallest k in 1..kmax at which edit(base, k) trips the rule; checks that
// edit(base, k-1) passes, so the two documents sit on either side of the threshold
static void threshold_case(const char* name, const QualityConfig* c, int rule, const char* base, EditFn edit, int kmax) {
    QualityStats st;
    Buf doc = {0};
    int r0 = quality_of(c, base, &st);
    if (r0 != QF_PASS) { check(0, name, "the unedited real document already fails (%s)", qf_reason_name[r0]); return; }
    int k;
    int r = QF_PASS;
    for (k = 1; k <= kmax; k++) {
        doc.len = 0;
        edit(base, k, &doc);
        r = quality_of(c, doc.data, &st);
        if (r != QF_PASS) { break; }
    }
    if (k > kmax) { check(0, name, "rule never tripped up to k=%d", kmax); buf_free(&doc); return; }
    doc.len = 0;
    edit(base, k - 1, &doc);
    QualityStats below;
    int rb = quality_of(c, doc.data, &below);
    check(r == rule && rb == QF_PASS, name, "at k=%d got %s (want %s), at k-1 got %s", k, qf_reason_name[r], qf_reason_name[rule], qf_reason_name[rb]);
    printf("      %s: passes at edit %d, fails at edit %d\n", name, k - 1, k);
    buf_free(&doc);
}

static const char* g_filler;  // real English text used by some edits

static void edit_trim(const char* base, int k, Buf* out) {   // first 450-k characters
    long want = 450 - k, n = 0;
    const char* p = base;
    while (*p && n < want) { int32_t cp; p += utf8_decode((const unsigned char*)p, strlen(p), &cp); n++; }
    buf_put(out, base, p - base);
}
static void edit_append_english(const char* base, int k, Buf* out) {  // + 20k characters of English
    buf_put(out, base, strlen(base));
    buf_putc(out, '\n');
    buf_put(out, g_filler, 20 * (size_t)k);
}
static void edit_join_words(const char* base, int k, Buf* out) {  // delete the first k spaces
    int done = 0;
    for (const char* p = base; *p; p++) {
        if (*p == ' ' && done < k) { done++; continue; }
        buf_putc(out, *p);
    }
}
static void edit_split_words(const char* base, int k, Buf* out) {  // "word" -> "w o r d" for k words
    int words = 0, in_word = 0;
    for (const char* p = base; *p; p++) {
        int sp = *p == ' ' || *p == '\n';
        if (!sp && !in_word) { words++; }
        in_word = !sp;
        buf_putc(out, *p);
        if (!sp && words <= k && p[1] != ' ' && p[1] != '\n' && p[1] != '\0' && !((unsigned char)*p & 0x80)) { buf_putc(out, ' '); }
    }
}
static void edit_prefix_words(const char* base, int k, const char* mark, int after, Buf* out) {
    int words = 0, in_word = 0;
    for (const char* p = base; *p; p++) {
        int sp = *p == ' ' || *p == '\n';
        if (!sp && !in_word) { words++; if (!after && words <= k) { buf_put(out, mark, strlen(mark)); } }
        if (sp && in_word && after && words <= k) { buf_put(out, mark, strlen(mark)); }
        in_word = !sp;
        buf_putc(out, *p);
    }
}
static void edit_hash(const char* base, int k, Buf* out) { edit_prefix_words(base, k, "#", 0, out); }
static void edit_dots(const char* base, int k, Buf* out) { edit_prefix_words(base, k, "...", 1, out); }
static void edit_ellipsis_lines(const char* base, int k, Buf* out) {  // "…" at the end of k lines
    int lines = 0;
    for (const char* p = base; *p; p++) {
        if (*p == '\n' && p > base && p[-1] != '\n' && lines < k) { buf_put(out, "\xe2\x80\xa6", 3); lines++; }
        buf_putc(out, *p);
    }
}
static void edit_repeat_line(const char* base, int k, Buf* out) {  // + k copies of the first line
    buf_put(out, base, strlen(base));
    const char* e = strchr(base, '\n');
    size_t n = e ? (size_t)(e - base) : strlen(base);
    for (int i = 0; i < k; i++) { buf_putc(out, '\n'); buf_put(out, base, n); }
}
static void edit_repeat_para(const char* base, int k, Buf* out) {  // + k copies of the first paragraph
    buf_put(out, base, strlen(base));
    const char* e = strstr(base, "\n\n");
    size_t n = e ? (size_t)(e - base) : strlen(base);
    for (int i = 0; i < k; i++) { buf_put(out, "\n\n", 2); buf_put(out, base, n); }
}
static void edit_repeat_phrase(const char* base, int k, const char* phrase, Buf* out) {
    buf_put(out, base, strlen(base));
    for (int i = 0; i < k; i++) { buf_putc(out, ' '); buf_put(out, phrase, strlen(phrase)); }
}
static void edit_keep_words(const char* base, int k, Buf* out) {  // the first 60-k words only
    int words = 0, in_word = 0;
    for (const char* p = base; *p; p++) {
        int sp = *p == ' ' || *p == '\n';
        if (!sp && !in_word && ++words > 60 - k) { break; }
        in_word = !sp;
        buf_putc(out, *p);
    }
}
static void edit_bullets(const char* base, int k, Buf* out) {  // "\u2022 " before the first k lines
    int lines = 0, at_start = 1;
    for (const char* p = base; *p; p++) {
        if (at_start && *p != '\n' && lines < k) { buf_put(out, "\xe2\x80\xa2 ", 4); lines++; }
        at_start = *p == '\n';
        buf_putc(out, *p);
    }
}
static void edit_numbers(const char* base, int k, Buf* out) {  // + k words without a letter
    buf_put(out, base, strlen(base));
    for (int i = 0; i < k; i++) { char num[16]; snprintf(num, sizeof(num), " %d", 1000 + i); buf_put(out, num, strlen(num)); }
}
static void edit_2gram(const char* base, int k, Buf* out) { edit_repeat_phrase(base, k, "little pig,", out); }
static void edit_3gram(const char* base, int k, Buf* out) { edit_repeat_phrase(base, k, "said the rabbit.", out); }
static void edit_4gram(const char* base, int k, Buf* out) { edit_repeat_phrase(base, k, "once upon a time;", out); }

// a chunk of real text: from the first "\n\n" after offset `at` of s, about `want` bytes,
// ending at a paragraph boundary
static char* chunk_of(const char* s, size_t at, size_t want) {
    size_t n = strlen(s);
    if (at >= n) { at = 0; }
    const char* p = strstr(s + at, "\n\n");
    p = p ? p + 2 : s;
    const char* e = p + want < s + n ? strstr(p + want, "\n\n") : NULL;
    if (e == NULL) { e = s + n; }
    return strndup(p, e - p);
}

static void test_quality(const Texts* ld, const Texts* gb) {
    QualityConfig def_ja, def_en;
    quality_config_default(&def_ja, 1);
    quality_config_default(&def_en, 0);
    QualityStats st;

    // real bases: an English chunk (Gutenberg book 10, from the middle) and a livedoor article
    const char* book = gb->text[10];
    char* en = chunk_of(book, strlen(book) / 2, 3000);
    g_filler = gb->text[11];
    const char* ja = NULL;
    for (long i = 0; i < ld->n; i++) {
        if (utf8_count(ld->text[i], strlen(ld->text[i])) >= 800 && quality_of(&def_ja, ld->text[i], &st) == QF_PASS &&
            strstr(ld->text[i], "\n\n") != NULL) { ja = ld->text[i]; break; }
    }
    check(ja != NULL && quality_of(&def_en, en, &st) == QF_PASS, "quality: real English and Japanese bases pass the defaults", "");
    printf("      English base: %ld chars, %ld words, mean word length %.2f, top 2/3/4-gram %.3f %.3f %.3f\n",
           st.chars, st.words, st.mean_word_len, st.top_ngram[2], st.top_ngram[3], st.top_ngram[4]);
    if (ja == NULL) { return; }

    QualityConfig c = config_all_off();
    c.min_chars = 400;
    threshold_case("quality min_chars 400 (livedoor article trimmed to 400 / 399 chars)", &c, QF_MIN_CHARS, ja, edit_trim, 100);
    c = config_all_off();
    c.min_ja_frac = 0.5;
    threshold_case("quality ja_fraction 0.5 (livedoor article + English text)", &c, QF_JA_FRACTION, ja, edit_append_english, 2000);
    c = config_all_off();
    c.mean_word_min = 3; c.mean_word_max = 10;
    threshold_case("quality mean word length > 10 (Gutenberg, words joined)", &c, QF_MEAN_WORD_LEN, en, edit_join_words, 5000);
    threshold_case("quality mean word length < 3 (Gutenberg, words spelled out)", &c, QF_MEAN_WORD_LEN, en, edit_split_words, 5000);
    c = config_all_off();
    c.max_symbol_ratio = 0.1;
    threshold_case("quality '#' per word 0.1 (Gutenberg, #hashtags)", &c, QF_SYMBOL_HASH, en, edit_hash, 5000);
    threshold_case("quality ellipsis per word 0.1 (Gutenberg, words...)", &c, QF_SYMBOL_ELLIPSIS, en, edit_dots, 5000);
    c = config_all_off();
    c.max_ellipsis_lines = 0.3;
    threshold_case("quality lines ending in ellipsis 0.3 (Gutenberg)", &c, QF_ELLIPSIS_LINES, en, edit_ellipsis_lines, 5000);
    c = config_all_off();
    c.max_dup_line_frac = 0.3;
    threshold_case("quality duplicate line fraction 0.3 (Gutenberg)", &c, QF_DUP_LINES, en, edit_repeat_line, 5000);
    threshold_case("quality duplicate line fraction 0.3 (livedoor)", &c, QF_DUP_LINES, ja, edit_repeat_line, 5000);
    c = config_all_off();
    c.max_dup_line_chars = 0.2;
    threshold_case("quality duplicate line characters 0.2 (Gutenberg)", &c, QF_DUP_LINE_CHARS, en, edit_repeat_line, 5000);
    c = config_all_off();
    c.max_dup_para_frac = 0.3;
    threshold_case("quality duplicate paragraph fraction 0.3 (Gutenberg)", &c, QF_DUP_PARAS, en, edit_repeat_para, 5000);
    c = config_all_off();
    c.max_dup_para_chars = 0.2;
    threshold_case("quality duplicate paragraph characters 0.2 (livedoor)", &c, QF_DUP_PARA_CHARS, ja, edit_repeat_para, 5000);
    c = config_all_off();
    c.max_top_ngram[2] = 0.20;
    threshold_case("quality top 2-gram 0.20 (Gutenberg)", &c, QF_TOP_2GRAM, en, edit_2gram, 5000);
    c = config_all_off();
    c.max_top_ngram[3] = 0.18;
    threshold_case("quality top 3-gram 0.18 (Gutenberg)", &c, QF_TOP_3GRAM, en, edit_3gram, 5000);
    c = config_all_off();
    c.max_top_ngram[4] = 0.16;
    threshold_case("quality top 4-gram 0.16 (Gutenberg)", &c, QF_TOP_4GRAM, en, edit_4gram, 5000);
    c = config_all_off();
    c.min_words = 50; c.max_words = 100000;
    threshold_case("quality at least 50 words (Gutenberg cut to 60-k words)", &c, QF_WORD_COUNT, en, edit_keep_words, 59);
    c = config_all_off();
    c.max_bullet_lines = 0.9;
    threshold_case("quality bullet lines 0.9 (Gutenberg, bullets added)", &c, QF_BULLET_LINES, en, edit_bullets, 5000);
    c = config_all_off();
    c.min_alpha_words = 0.8;
    threshold_case("quality words with a letter 0.8 (Gutenberg + numbers)", &c, QF_ALPHA_WORDS, en, edit_numbers, 5000);
    threshold_case("quality words with a letter 0.8 (livedoor + numbers)", &c, QF_ALPHA_WORDS, ja, edit_numbers, 50000);
    free(en);
}

// ----------------------------------------------------------------------------
// near dedup: precision and recall on real documents edited synthetically

static uint64_t rng_state = 42;
static uint64_t rnd(void) { rng_state = mix64(rng_state + 0x9e3779b97f4a7c15ULL); return rng_state; }

static int cmp_u64(const void* a, const void* b) {
    uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
    return x < y ? -1 : x > y;
}

// sorted unique shingle hashes of a text (same normalization and shingles as the pipeline)
static long shingle_set(const MinHashConfig* m, const char* s, uint64_t** out) {
    int32_t* cps;
    long n = to_cps(s, &cps);
    long k = normalize_cps(cps, n, cps);
    long cnt = k >= m->shingle ? k - m->shingle + 1 : (k > 0);
    uint64_t* h = malloc_check((cnt + 1) * sizeof(uint64_t), "shingles");
    for (long i = 0; i < cnt; i++) { h[i] = hash_cps(cps + i, k >= m->shingle ? m->shingle : k); }
    qsort(h, cnt, sizeof(uint64_t), cmp_u64);
    long u = 0;
    for (long i = 0; i < cnt; i++) { if (u == 0 || h[u - 1] != h[i]) { h[u++] = h[i]; } }
    free(cps);
    *out = h;
    return u;
}

static double exact_jaccard(const uint64_t* a, long na, const uint64_t* b, long nb) {
    long i = 0, j = 0, inter = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j]) { inter++; i++; j++; }
        else if (a[i] < b[j]) { i++; }
        else { j++; }
    }
    long uni = na + nb - inter;
    return uni ? (double)inter / uni : 1.0;
}

// English: replace pct% of the words by words taken from elsewhere in the pool
static void edit_words(const char* s, int permille, const Texts* pool, Buf* out) {
    int in_word = 0;
    const char* p = s;
    while (*p) {
        int sp = *p == ' ' || *p == '\n';
        if (!sp && !in_word && (int)(rnd() % 1000) < permille) {
            // skip this word, write a random word from a random pool text instead
            while (*p && *p != ' ' && *p != '\n') { p++; }
            const char* t = pool->text[rnd() % pool->n];
            size_t tn = strlen(t);
            const char* q = t + rnd() % (tn ? tn : 1);
            while (*q && *q != ' ') { q++; }
            while (*q == ' ') { q++; }
            const char* qe = q;
            while (*qe && *qe != ' ' && *qe != '\n' && qe - q < 15) { qe++; }
            if (qe == q) { buf_put(out, "word", 4); } else { buf_put(out, q, qe - q); }
            in_word = 1;
            continue;
        }
        in_word = !sp;
        buf_putc(out, *p++);
    }
}

// Japanese (no spaces): replace pct% of the characters by characters from elsewhere in the text
static void edit_chars(const char* s, int permille, Buf* out) {
    int32_t* cps;
    long n = to_cps(s, &cps);
    for (long i = 0; i < n; i++) {
        int32_t c = cps[i];
        if (c != '\n' && (int)(rnd() % 1000) < permille) { c = cps[rnd() % n]; if (c == '\n') { c = 0x3042; } }
        buf_put_cp(out, (uint32_t)c);
    }
    free(cps);
}

static void near_dedup_eval(const char* label, char** orig, long n, const Texts* pool, int japanese, double min_p, double min_r) {
    MinHashConfig m;
    minhash_config_init(&m, 5, 64, 4, 0.7);  // the pipeline's defaults
    LshIndex idx;
    lsh_init(&idx, &m, 0);
    int K = m.bands * m.rows;
    uint32_t* sig = malloc_check(K * sizeof(uint32_t), "sig");
    uint64_t** sets = malloc_check(n * sizeof(uint64_t*), "sets");
    long* nsets = malloc_check(n * sizeof(long), "nsets");
    long* idx_to_orig = malloc_check(n * sizeof(long), "map");
    long tp = 0, fp = 0, fn = 0, tn = 0;
    // edit rates in permille: words for English, characters for Japanese (one changed
    // character breaks 5 shingles, so Japanese crosses 0.7 at a few percent)
    int en_rates[] = { 0, 10, 20, 30, 50, 70, 80, 90, 100, 110, 120, 150, 200, 500 };
    int ja_rates[] = { 0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 80, 200 };
    int* pcts = japanese ? ja_rates : en_rates;
    int npct = 14;
    long by_pct_n[16] = {0}, by_pct_found[16] = {0}, by_pct_truth[16] = {0};
    // index the originals in order; flagged originals count too (real near-duplicates)
    for (long i = 0; i < n; i++) {
        nsets[i] = shingle_set(&m, orig[i], &sets[i]);
        int32_t* cps;
        long len = to_cps(orig[i], &cps);
        long k = normalize_cps(cps, len, cps);
        minhash_signature(&m, cps, k, sig);
        free(cps);
        double sim;
        long hit = lsh_query(&idx, sig, &sim);
        double best = 0;
        for (long j = 0; j < i; j++) { double jj = exact_jaccard(sets[i], nsets[i], sets[j], nsets[j]); if (jj > best) { best = jj; } }
        if (hit >= 0) {
            if (exact_jaccard(sets[i], nsets[i], sets[idx_to_orig[hit]], nsets[idx_to_orig[hit]]) >= m.threshold) { tp++; } else { fp++; }
        } else {
            if (best >= m.threshold) { fn++; } else { tn++; }
            idx_to_orig[idx.ndocs] = i;
            lsh_insert(&idx, sig);
        }
    }
    // then an edited copy of each original
    Buf b = {0};
    for (long i = 0; i < n; i++) {
        int pi = (int)(i % npct);
        b.len = 0;
        if (japanese) { edit_chars(orig[i], pcts[pi], &b); } else { edit_words(orig[i], pcts[pi], pool, &b); }
        uint64_t* cs;
        long ncs = shingle_set(&m, b.data, &cs);
        int32_t* cps;
        long len = to_cps(b.data, &cps);
        long k = normalize_cps(cps, len, cps);
        minhash_signature(&m, cps, k, sig);
        free(cps);
        double best = 0;
        for (long j = 0; j < n; j++) { double jj = exact_jaccard(cs, ncs, sets[j], nsets[j]); if (jj > best) { best = jj; } }
        int truth = best >= m.threshold;
        double sim;
        long hit = lsh_query(&idx, sig, &sim);
        by_pct_n[pi]++;
        by_pct_truth[pi] += truth;
        if (hit >= 0) {
            by_pct_found[pi]++;
            long o = idx_to_orig[hit];
            if (exact_jaccard(cs, ncs, sets[o], nsets[o]) >= m.threshold) { tp++; } else { fp++; }
        } else {
            if (truth) { fn++; } else { tn++; }
        }
        free(cs);
    }
    double P = tp + fp ? (double)tp / (tp + fp) : 1.0;
    double R = tp + fn ? (double)tp / (tp + fn) : 1.0;
    printf("      %s: %ld originals + %ld edited copies; shingle 5, 64 bands x 4 rows, threshold 0.7 (exact Jaccard as truth)\n", label, n, n);
    printf("      %s: TP %ld FP %ld FN %ld TN %ld -> precision %.3f recall %.3f\n", label, tp, fp, fn, tn, P, R);
    printf("      %s: %s edited (%%) -> flagged / truly >= 0.7 / copies:", label, japanese ? "characters" : "words");
    for (int pi = 0; pi < npct; pi++) { printf(" %.1f:%ld/%ld/%ld", pcts[pi] / 10.0, by_pct_found[pi], by_pct_truth[pi], by_pct_n[pi]); }
    printf("\n");
    char name[200];
    snprintf(name, sizeof(name), "near-dedup %s precision >= %.2f and recall >= %.2f at Jaccard 0.7", label, min_p, min_r);
    check(P >= min_p && R >= min_r, name, "precision %.3f recall %.3f", P, R);
    for (long i = 0; i < n; i++) { free(sets[i]); }
    free(sets); free(nsets); free(idx_to_orig); free(sig);
    buf_free(&b);
    lsh_free(&idx);
}

static void test_near_dedup(const Texts* ld, const Texts* gb) {
    // 400 real Gutenberg paragraphs (>= 400 chars), a few from each book
    char* en[400];
    long nen = 0;
    for (long b = 0; b < gb->n && nen < 400; b++) {
        const char* s = gb->text[b];
        size_t len = strlen(s);
        for (int t = 1; t <= 3 && nen < 400; t++) {
            char* c = chunk_of(s, len * t / 4, 600);
            if (utf8_count(c, strlen(c)) >= 400 && strlen(c) < 6000) { en[nen++] = c; } else { free(c); }
        }
    }
    near_dedup_eval("Gutenberg", en, nen, gb, 0, 0.92, 0.92);
    for (long i = 0; i < nen; i++) { free(en[i]); }
    // 400 real livedoor articles (>= 400 chars), spread over the categories
    char* ja[400];
    long nja = 0;
    for (long i = 0; i < ld->n && nja < 400; i += 7) {
        if (utf8_count(ld->text[i], strlen(ld->text[i])) >= 400) { ja[nja++] = ld->text[i]; }
    }
    near_dedup_eval("livedoor", ja, nja, ld, 1, 0.92, 0.92);
}

// ----------------------------------------------------------------------------
// PII

static char* mask_str(const char* s, long counts[PII_NKINDS]) {
    int32_t* cps;
    long n = to_cps(s, &cps);
    Buf out = {0};
    pii_mask(cps, n, &out, counts);
    free(cps);
    if (out.data == NULL) { return strdup(""); }
    return out.data;
}

static void test_pii_cases(void) {
    struct { const char* in; const char* want; } cases[] = {
        // positives
        { "mail john.doe+x@example.co.jp.", "mail <EMAIL>." },
        { "<jm@netnoteinc.com>", "<<EMAIL>>" },
        { "<Pine.LNX.4.33.0208240101180.25180-100000@watcher.mithral.c om>", "<<EMAIL>.c om>" },
        { "http://202.101.163.34:81/sites/", "http://<IP>:81/sites/" },
        { "tel 03-1234-5678 fax", "tel <PHONE> fax" },
        { "携帯090-1234-5678まで", "携帯<PHONE>まで" },
        { "TEL.03-6418-4821", "TEL.<PHONE>" },
        { "TEL03-5524-6430", "TEL<PHONE>" },
        { "０３－１２３４－５６７８", "<PHONE>" },
        { "0120-123-456", "<PHONE>" },
        { "03(1234)5678", "<PHONE>" },
        { "call +81 3 1234 5678 now", "call <PHONE> now" },
        { "call +81-90-1234-5678", "call <PHONE>" },
        { "US +1 (555) 123-4567.", "US <PHONE>." },
        { "(555) 123-4567", "<PHONE>" },
        { "555-123-4567", "<PHONE>" },
        { "1-800-555-1234", "<PHONE>" },
        { "8967 0263-31-2301", "8967 <PHONE>" },
        { "from [192.168.0.1] by", "from [<IP>] by" },
        { "ip 2001:db8::1 here", "ip <IP> here" },
        { "fe80::1ff:fe23:4567:890a", "<IP>" },
        { "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "<IP>" },
        { "card 4111 1111 1111 1111 ok", "card <CARD> ok" },
        { "card 4111-1111-1111-1111", "card <CARD>" },
        { "amex 378282246310005", "amex <CARD>" },
        { "amex 3782 822463 10005", "amex <CARD>" },
        { "5555555555554444", "<CARD>" },
        // negatives
        { "card 4111 1111 1111 1112 (Luhn fails)", "card 4111 1111 1111 1112 (Luhn fails)" },
        { "1234567890123", "1234567890123" },
        { "date 2002-08-22 and 12:30:45", "date 2002-08-22 and 12:30:45" },
        { "std::vector and a::b", "std::vector and a::b" },
        { "version 1.2.3.4.5", "version 1.2.3.4.5" },
        { "999.1.1.1", "999.1.1.1" },
        { "user@localhost and @home", "user@localhost and @home" },
        { "ISBN 0-7232-6227-6", "ISBN 0-7232-6227-6" },
        { "1 3 5 7 9 10 8 6 4 2", "1 3 5 7 9 10 8 6 4 2" },
        { "pi is 3.14159, 10:30 am", "pi is 3.14159, 10:30 am" },
        { "status/137840232123456789", "status/137840232123456789" },
        { "¥1,234,567,890", "¥1,234,567,890" },
        { "1234-5678-9012", "1234-5678-9012" },
        { "東京都渋谷区広尾5-25-12", "東京都渋谷区広尾5-25-12" },
        { "555 123 4567", "555 123 4567" },
        { "Modeline \"800x600\" 36 800 824 896 1024 600 601 603 625", "Modeline \"800x600\" 36 800 824 896 1024 600 601 603 625" },
        { "Message-Id: <20020822151301.694632EE5A@smtp.easydns.com>", "Message-Id: <<EMAIL>>" },  // no <CARD> inside
        { "4111 1111 1111 1111 and 6011 0009 9013 9424", "<CARD> and <CARD>" },
        { "1111 1111 1111 1117", "1111 1111 1111 1117" },
    };
    int ncases = sizeof(cases) / sizeof(cases[0]);
    int bad = 0;
    for (int i = 0; i < ncases; i++) {
        long counts[PII_NKINDS] = {0};
        char* got = mask_str(cases[i].in, counts);
        if (strcmp(got, cases[i].want) != 0) {
            bad++;
            printf("      pii case %d: [%s] -> [%s], want [%s]\n", i, cases[i].in, got, cases[i].want);
        }
        free(got);
    }
    check(bad == 0, "pii hand-checked positives and negatives (incl. Luhn-valid and -invalid numbers)", "%d of %d cases wrong", bad, ncases);
    long counts[PII_NKINDS] = {0};
    char* got = mask_str("a@b.com 03-1234-5678 10.0.0.1 4111111111111111 x@y.org", counts);
    check(counts[PII_EMAIL] == 2 && counts[PII_PHONE] == 1 && counts[PII_IP] == 1 && counts[PII_CARD] == 1,
          "pii counts per kind", "%s %ld %s %ld %s %ld %s %ld", pii_kind_name[0], counts[0], pii_kind_name[1], counts[1],
          pii_kind_name[2], counts[2], pii_kind_name[3], counts[3]);
    free(got);
}

// any e-mail address left after masking?
static long residual_emails(const char* s) {
    int32_t* cps;
    long n = to_cps(s, &cps);
    long found = 0;
    for (long i = 0; i < n; i++) {
        long a, e;
        if (cps[i] == '@' && pii_match_email(cps, n, i, 0, &a, &e)) { found++; }
    }
    free(cps);
    return found;
}

static void test_pii_spamassassin(const char* path) {
    Texts sa = load_jsonl(path, 100000);
    long total[PII_NKINDS] = {0};
    long docs_with[PII_NKINDS] = {0};
    long residual = 0;
    for (long i = 0; i < sa.n; i++) {
        long counts[PII_NKINDS] = {0};
        char* m = mask_str(sa.text[i], counts);
        for (int k = 0; k < PII_NKINDS; k++) { total[k] += counts[k]; docs_with[k] += counts[k] > 0; }
        residual += residual_emails(m);
        free(m);
        free(sa.text[i]);
    }
    free(sa.text);
    printf("      spamassassin: %ld emails; masked email %ld (in %ld docs), phone %ld (%ld docs), ip %ld (%ld docs), card %ld (%ld docs)\n",
           sa.n, total[PII_EMAIL], docs_with[PII_EMAIL], total[PII_PHONE], docs_with[PII_PHONE], total[PII_IP], docs_with[PII_IP],
           total[PII_CARD], docs_with[PII_CARD]);
    check(sa.n == 1000 && docs_with[PII_EMAIL] == 1000, "pii spamassassin: an e-mail address masked in every one of the 1000 messages",
          "%ld messages, %ld with an e-mail masked", sa.n, docs_with[PII_EMAIL]);
    check(residual == 0, "pii spamassassin: no e-mail address left after masking", "%ld left", residual);
    check(docs_with[PII_IP] > 100, "pii spamassassin: IP addresses of Received: headers masked", "%ld docs", docs_with[PII_IP]);
}

// ----------------------------------------------------------------------------
// hosts

static void test_hosts(void) {
    char h[256];
    url_host("http://news.livedoor.com/article/detail/4778030/", h, sizeof(h));
    int ok = strcmp(h, "news.livedoor.com") == 0;
    url_host("https://User:pw@WWW.Example.COM:8080/x?y#z", h, sizeof(h));
    ok = ok && strcmp(h, "www.example.com") == 0;
    url_host("http://[2001:db8::1]:80/", h, sizeof(h));
    ok = ok && strcmp(h, "2001:db8::1") == 0;
    check(ok, "host extraction from URLs", "last host [%s]", h);
    char path[] = "/tmp/test_pipeline_hosts_XXXXXX";
    int fd = mkstemp(path);
    FILE* f = fdopen(fd, "w");
    fprintf(f, "# comment\nlivedoor.com\n\n .Spam.example \n");
    fclose(f);
    HostList hl;
    hostlist_load(&hl, path, "--block-hosts");
    unlink(path);
    ok = hl.n == 2 && hostlist_match(&hl, "news.livedoor.com") && hostlist_match(&hl, "livedoor.com") &&
         !hostlist_match(&hl, "badlivedoor.com") && hostlist_match(&hl, "a.b.spam.example") && !hostlist_match(&hl, "example") &&
         !hostlist_match(&hl, "");
    check(ok, "host suffix matching (subdomains yes, look-alike names no)", "n=%ld", hl.n);
    hostlist_free(&hl);
}

int main(int argc, char** argv) {
    const char* data = argc > 1 ? argv[1] : "../shared/data";
    char p1[1024], p2[1024], p3[1024];
    snprintf(p1, sizeof(p1), "%s/livedoor/livedoor_news.jsonl", data);
    snprintf(p2, sizeof(p2), "%s/gutenberg_children/gutenberg_children.jsonl", data);
    snprintf(p3, sizeof(p3), "%s/spamassassin_subset/spamassassin_subset.jsonl", data);
    test_json();
    test_json_fuzz(p1);
    Texts ld = load_jsonl(p1, 100000);
    Texts gb = load_jsonl(p2, 100000);
    check(ld.n == 7367 && gb.n == 192, "real corpora load (7367 livedoor, 192 Gutenberg)", "%ld, %ld", ld.n, gb.n);
    test_quality(&ld, &gb);
    test_near_dedup(&ld, &gb);
    test_pii_cases();
    test_pii_spamassassin(p3);
    test_hosts();
    for (long i = 0; i < ld.n; i++) { free(ld.text[i]); }
    for (long i = 0; i < gb.n; i++) { free(gb.text[i]); }
    free(ld.text);
    free(gb.text);
    printf("test_pipeline: %s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
