// The per-document stages of the corpus pipeline (dev/data/pipeline.c):
//   quality filters (Swallow's length and Japanese-fraction rules, Gopher's heuristics),
//   the normalized hash for exact dedup, MinHash signatures and the LSH index for near-dedup,
//   URL host block/allow lists, and PII masking.
// Functions that look at one document keep no global state (worker threads call them in
// parallel); the dedup indexes are used by the single in-order committer only.
#ifndef PIPELINE_FILTERS_H
#define PIPELINE_FILTERS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include "llmc/utils.h"
#include "dev/data/pipeline_text.h"

// ----------------------------------------------------------------------------
// hashing

static inline uint64_t mix64(uint64_t x) {  // splitmix64's finalizer: a bijection, good avalanche
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint32_t fmix32(uint32_t h) {  // MurmurHash3's finalizer, also a bijection
    h ^= h >> 16; h *= 0x85ebca6bU;
    h ^= h >> 13; h *= 0xc2b2ae35U;
    h ^= h >> 16;
    return h;
}

// hash of a code point sequence; never 0 (0 marks an empty slot in our tables).
// FNV-1a style (one multiply per character) over whole code points, then a full mix so the
// low bits are usable as table indexes.
static uint64_t hash_cps(const int32_t* cps, long n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (long i = 0; i < n; i++) { h = (h ^ (uint32_t)cps[i]) * 0x00000100000001b3ULL; }
    h = mix64(h ^ (uint64_t)n);
    return h ? h : 1;
}

// A set/counter of nonzero 64-bit keys (open addressing, linear probing). Used for the
// per-document line/paragraph/n-gram counts and for the global exact-dedup set.
typedef struct {
    uint64_t* keys;
    uint32_t* counts;
    long* first;     // position of the first occurrence (for n-grams), may be NULL
    size_t cap;      // power of two
    size_t size;
} HashCount;

static void hc_init(HashCount* t, size_t expected, int with_first) {
    size_t cap = 16;
    while (cap < 2 * expected + 2) { cap *= 2; }
    t->keys = calloc_check(cap, sizeof(uint64_t), "hash table keys");
    t->counts = calloc_check(cap, sizeof(uint32_t), "hash table counts");
    t->first = with_first ? calloc_check(cap, sizeof(long), "hash table positions") : NULL;
    t->cap = cap;
    t->size = 0;
}

static void hc_free(HashCount* t) { free(t->keys); free(t->counts); free(t->first); memset(t, 0, sizeof(*t)); }

static size_t hc_slot(const HashCount* t, uint64_t key) {
    size_t i = (size_t)mix64(key) & (t->cap - 1);
    while (t->keys[i] != 0 && t->keys[i] != key) { i = (i + 1) & (t->cap - 1); }
    return i;
}

static void hc_grow(HashCount* t) {
    HashCount n;
    hc_init(&n, t->cap, t->first != NULL);  // doubles the capacity
    for (size_t i = 0; i < t->cap; i++) {
        if (t->keys[i] == 0) { continue; }
        size_t j = hc_slot(&n, t->keys[i]);
        n.keys[j] = t->keys[i];
        n.counts[j] = t->counts[i];
        if (n.first) { n.first[j] = t->first[i]; }
        n.size++;
    }
    hc_free(t);
    *t = n;
}

// adds one occurrence of key (at position pos); returns the count after adding
static uint32_t hc_add(HashCount* t, uint64_t key, long pos) {
    if (key == 0) { key = 1; }
    if (2 * (t->size + 1) > t->cap) { hc_grow(t); }
    size_t i = hc_slot(t, key);
    if (t->keys[i] == 0) {
        t->keys[i] = key;
        t->size++;
        if (t->first) { t->first[i] = pos; }
    }
    return ++t->counts[i];
}

// ----------------------------------------------------------------------------
// quality filters

// why a document was dropped by the quality stage (the first rule it failed)
enum {
    QF_PASS = 0,
    QF_MIN_CHARS,
    QF_JA_FRACTION,
    QF_MEAN_WORD_LEN,
    QF_SYMBOL_HASH,
    QF_SYMBOL_ELLIPSIS,
    QF_ELLIPSIS_LINES,
    QF_DUP_LINES,
    QF_DUP_LINE_CHARS,
    QF_DUP_PARAS,
    QF_DUP_PARA_CHARS,
    QF_TOP_2GRAM,
    QF_TOP_3GRAM,
    QF_TOP_4GRAM,
    QF_WORD_COUNT,
    QF_BULLET_LINES,
    QF_ALPHA_WORDS,
    QF_NREASONS
};

static const char* qf_reason_name[QF_NREASONS] = {
    "pass", "min_chars", "ja_fraction", "mean_word_len", "symbol_hash_ratio", "symbol_ellipsis_ratio",
    "ellipsis_lines", "dup_line_frac", "dup_line_chars", "dup_para_frac", "dup_para_chars",
    "top_2gram", "top_3gram", "top_4gram", "word_count", "bullet_lines", "alpha_words",
};

typedef struct {
    long min_chars;            // Swallow: 400 characters (code points); 0 = off
    double min_ja_frac;        // Swallow: 0.5 for Japanese corpora; < 0 = off
    int gopher;                // 1 = apply the Gopher heuristics below
    double mean_word_min, mean_word_max;   // Gopher: 3..10 (off for Japanese: no spaces)
    double max_symbol_ratio;   // Gopher: 0.1 '#' per word, and 0.1 "..."/"…" per word
    double max_ellipsis_lines; // Gopher: 0.3 of lines end in "..." or "…"
    double max_dup_line_frac;  // Gopher: 0.3 of lines are repeats of an earlier line
    double max_dup_line_chars; // Gopher: 0.2 of characters are in repeated lines
    double max_dup_para_frac;  // Gopher: 0.3
    double max_dup_para_chars; // Gopher: 0.2
    double max_top_ngram[5];   // Gopher: [2] 0.20, [3] 0.18, [4] 0.16 (fraction of word characters)
    long min_words, max_words; // Gopher: 50..100,000 words (0/0 = off; off for Japanese)
    double max_bullet_lines;   // Gopher: 0.9 of lines start with a bullet
    double min_alpha_words;    // Gopher: 0.8 of words hold a letter (kana and CJK count)
} QualityConfig;

static void quality_config_default(QualityConfig* c, int japanese) {
    c->min_chars = 400;
    c->min_ja_frac = japanese ? 0.5 : -1.0;
    c->gopher = 1;
    c->mean_word_min = japanese ? 0 : 3;   // 0/0 = off
    c->mean_word_max = japanese ? 0 : 10;
    c->max_symbol_ratio = 0.1;
    c->max_ellipsis_lines = 0.3;
    c->max_dup_line_frac = 0.3;
    c->max_dup_line_chars = 0.2;
    c->max_dup_para_frac = 0.3;
    c->max_dup_para_chars = 0.2;
    c->max_top_ngram[0] = c->max_top_ngram[1] = 0;
    c->max_top_ngram[2] = 0.20;
    c->max_top_ngram[3] = 0.18;
    c->max_top_ngram[4] = 0.16;
    // every kana/CJK character is a word here, so word counts mean little for Japanese
    c->min_words = japanese ? 0 : 50;
    c->max_words = japanese ? 0 : 100000;
    c->max_bullet_lines = 0.9;
    c->min_alpha_words = 0.8;
}

// the measured values, for reports and tests
typedef struct {
    long chars;
    double ja_frac;
    long words;
    double mean_word_len;
    double hash_ratio, ellipsis_ratio;
    long lines;
    double ellipsis_lines;
    double dup_line_frac, dup_line_chars, dup_para_frac, dup_para_chars;
    double top_ngram[5];
    double bullet_lines;   // fraction of non-blank lines that start with a bullet
    double alpha_words;    // fraction of words holding a letter
} QualityStats;

typedef struct { long start; int len; int punct_only; int has_letter; uint64_t h; } Word;

// a letter for Gopher's alphabetic-word rule: Latin (ASCII and accented), Greek, Cyrillic,
// kana and CJK ideographs
static int cp_is_letter(int32_t c) {
    return cp_is_ascii_alpha(c) || (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) ||
           (c >= 0x370 && c <= 0x52F) || (c >= 0x3041 && c <= 0x30FA) || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xFF66 && c <= 0xFF9D);
}

// a line that starts with one of these is a bullet-point line
static int cp_is_bullet(int32_t c) {
    return c == 0x2022 || c == 0x2023 || c == 0x2043 || c == 0x25E6 || c == 0x25CF || c == 0x25CB ||
           c == 0x25A0 || c == 0x25A1 || c == 0x25AA || c == 0x25B6 || c == 0x25BA || c == 0x30FB ||
           c == '-' || c == '*';
}

// Words, Gopher-style: runs of non-space characters; a kana or CJK character is a word on its
// own (those scripts have no spaces). Returns the number of words; *out is malloc'ed.
static long split_words(const int32_t* cps, long n, Word** out) {
    long cap = n / 2 + 16;
    Word* w = malloc_check(cap * sizeof(Word), "word list");
    long nw = 0;
    long i = 0;
    while (i < n) {
        if (cp_is_space(cps[i])) { i++; continue; }
        long s = i;
        if (cp_is_cjk_word(cps[i])) {
            i++;
        } else {
            while (i < n && !cp_is_space(cps[i]) && !cp_is_cjk_word(cps[i])) { i++; }
        }
        if (nw == cap) { cap *= 2; w = realloc(w, cap * sizeof(Word)); if (!w) { die("out of memory (words)"); } }
        int punct = 1, letter = 0;
        for (long k = s; k < i; k++) {
            int32_t c = cps[k];
            if (!(c < 0x80 && ispunct((int)c))) { punct = 0; }
            if (cp_is_letter(c)) { letter = 1; }
        }
        w[nw].start = s;
        w[nw].len = (int)(i - s);
        w[nw].punct_only = punct;
        w[nw].has_letter = letter;
        w[nw].h = hash_cps(cps + s, i - s);
        nw++;
    }
    *out = w;
    return nw;
}

// Fraction of characters covered by the most frequent word n-gram (Gopher's "top n-gram"
// rule): count(top) * chars(top) / chars in all words. 0 when no n-gram repeats.
static double top_ngram_fraction(const Word* w, long nw, int n, long word_chars) {
    if (nw < n || word_chars == 0) { return 0.0; }
    HashCount t;
    hc_init(&t, nw, 1);
    uint32_t best = 0;
    long best_pos = 0;
    for (long i = 0; i + n <= nw; i++) {
        uint64_t h = 0x51ed270b27e2b9d1ULL;
        for (int k = 0; k < n; k++) { h = mix64(h ^ w[i + k].h); }
        uint32_t c = hc_add(&t, h, i);
        if (c > best) {
            best = c;
            best_pos = t.first[hc_slot(&t, h ? h : 1)];
        }
    }
    hc_free(&t);
    if (best < 2) { return 0.0; }
    long chars = 0;
    for (int k = 0; k < n; k++) { chars += w[best_pos + k].len; }
    double f = (double)best * chars / word_chars;
    return f > 1.0 ? 1.0 : f;
}

// Computes every statistic (the tests print them) and returns the first failed rule.
static int quality_check(const QualityConfig* c, const int32_t* cps, long n, QualityStats* st) {
    memset(st, 0, sizeof(*st));
    st->chars = n;
    long ja = 0;
    for (long i = 0; i < n; i++) { ja += cp_is_japanese(cps[i]); }
    st->ja_frac = n > 0 ? (double)ja / n : 0.0;
    if (c->min_chars > 0 && n < c->min_chars) { return QF_MIN_CHARS; }
    if (c->min_ja_frac >= 0 && st->ja_frac < c->min_ja_frac) { return QF_JA_FRACTION; }
    if (!c->gopher) { return QF_PASS; }

    // words: mean length and symbol ratios
    Word* w;
    long nw = split_words(cps, n, &w);
    st->words = nw;
    long word_chars = 0, content_words = 0, content_chars = 0, letter_words = 0;
    for (long i = 0; i < nw; i++) {
        word_chars += w[i].len;
        if (!w[i].punct_only) { content_words++; content_chars += w[i].len; }
        letter_words += w[i].has_letter;
    }
    st->alpha_words = nw ? (double)letter_words / nw : 0.0;
    st->mean_word_len = content_words ? (double)content_chars / content_words : 0.0;
    long hashes = 0, ellipses = 0;
    for (long i = 0; i < n; i++) {
        if (cps[i] == '#') { hashes++; }
        if (cps[i] == 0x2026) { ellipses++; }
        if (cps[i] == '.' && i + 2 < n && cps[i + 1] == '.' && cps[i + 2] == '.') { ellipses++; i += 2; }
    }
    st->hash_ratio = nw ? (double)hashes / nw : 0.0;
    st->ellipsis_ratio = nw ? (double)ellipses / nw : 0.0;

    // lines and paragraphs (paragraphs are separated by blank lines); both trimmed
    HashCount lines, paras;
    hc_init(&lines, 64, 0);
    hc_init(&paras, 16, 0);
    long nlines = 0, ell_lines = 0, dup_lines = 0, dup_line_chars = 0, bullet_lines = 0;
    long nparas = 0, dup_paras = 0, dup_para_chars = 0;
    long para_start = -1, para_end = -1;  // first/last non-blank char of the current paragraph
    long i = 0;
    while (i <= n) {
        long s = i;
        while (i < n && cps[i] != '\n') { i++; }
        long e = i;  // line is [s, e)
        while (s < e && cp_is_space(cps[s])) { s++; }
        while (e > s && cp_is_space(cps[e - 1])) { e--; }
        int blank = e == s;
        if (!blank) {
            nlines++;
            bullet_lines += cp_is_bullet(cps[s]);
            if (cps[e - 1] == 0x2026 || (e - s >= 3 && cps[e - 1] == '.' && cps[e - 2] == '.' && cps[e - 3] == '.')) { ell_lines++; }
            if (hc_add(&lines, hash_cps(cps + s, e - s), 0) > 1) { dup_lines++; dup_line_chars += e - s; }
            if (para_start < 0) { para_start = s; }
            para_end = e;
        }
        if ((blank || i >= n) && para_start >= 0) {
            nparas++;
            if (hc_add(&paras, hash_cps(cps + para_start, para_end - para_start), 0) > 1) {
                dup_paras++;
                dup_para_chars += para_end - para_start;
            }
            para_start = -1;
        }
        i++;  // past the '\n' (or past the end)
    }
    hc_free(&lines);
    hc_free(&paras);
    st->lines = nlines;
    st->ellipsis_lines = nlines ? (double)ell_lines / nlines : 0.0;
    st->bullet_lines = nlines ? (double)bullet_lines / nlines : 0.0;
    st->dup_line_frac = nlines ? (double)dup_lines / nlines : 0.0;
    st->dup_line_chars = n ? (double)dup_line_chars / n : 0.0;
    st->dup_para_frac = nparas ? (double)dup_paras / nparas : 0.0;
    st->dup_para_chars = n ? (double)dup_para_chars / n : 0.0;
    for (int g = 2; g <= 4; g++) { st->top_ngram[g] = top_ngram_fraction(w, nw, g, word_chars); }
    free(w);

    if (c->max_words > 0 && (nw < c->min_words || nw > c->max_words)) { return QF_WORD_COUNT; }
    if (c->mean_word_max > 0 && (st->mean_word_len < c->mean_word_min || st->mean_word_len > c->mean_word_max)) { return QF_MEAN_WORD_LEN; }
    if (st->hash_ratio > c->max_symbol_ratio) { return QF_SYMBOL_HASH; }
    if (st->ellipsis_ratio > c->max_symbol_ratio) { return QF_SYMBOL_ELLIPSIS; }
    if (st->ellipsis_lines > c->max_ellipsis_lines) { return QF_ELLIPSIS_LINES; }
    if (st->dup_line_frac > c->max_dup_line_frac) { return QF_DUP_LINES; }
    if (st->dup_line_chars > c->max_dup_line_chars) { return QF_DUP_LINE_CHARS; }
    if (st->dup_para_frac > c->max_dup_para_frac) { return QF_DUP_PARAS; }
    if (st->dup_para_chars > c->max_dup_para_chars) { return QF_DUP_PARA_CHARS; }
    for (int g = 2; g <= 4; g++) {
        if (c->max_top_ngram[g] > 0 && st->top_ngram[g] > c->max_top_ngram[g]) { return QF_TOP_2GRAM + g - 2; }
    }
    if (st->bullet_lines > c->max_bullet_lines) { return QF_BULLET_LINES; }
    if (st->alpha_words < c->min_alpha_words) { return QF_ALPHA_WORDS; }
    return QF_PASS;
}

// ----------------------------------------------------------------------------
// normalization shared by exact and near dedup: ASCII lower case, every run of white space
// (Unicode spaces included) becomes one ' ', leading/trailing space dropped. Writes into
// out (room for n) and returns the new length.
static long normalize_cps(const int32_t* cps, long n, int32_t* out) {
    long k = 0;
    int pending_space = 0;
    for (long i = 0; i < n; i++) {
        int32_t c = cps[i];
        if (cp_is_space(c)) { pending_space = k > 0; continue; }
        if (pending_space) { out[k++] = ' '; pending_space = 0; }
        out[k++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
    }
    return k;
}

// ----------------------------------------------------------------------------
// MinHash + LSH
//
// Shingles are `shingle` consecutive characters of the normalized text. Each shingle is
// hashed once to a well-mixed 32-bit key x, and permutation j maps it to a_j * x + b_j
// (mod 2^32, a_j odd: a bijection); the signature keeps the minimum per permutation. This
// multiply-add family is 1.6x faster than re-mixing x per permutation (fmix32(x ^ seed_j)) and
// gave the same precision/recall in test_pipeline.c. Two documents agree on signature entry j
// with probability equal to the Jaccard similarity of their shingle sets. LSH cuts the
// signature into `bands` bands of `rows` entries; documents sharing any band are
// candidates, and a candidate is a duplicate when the fraction of equal signature entries
// (the estimated Jaccard) reaches the threshold.

#define MINHASH_MAX_PERM 1024

typedef struct {
    int shingle;        // characters per shingle
    int bands, rows;    // K = bands * rows permutations
    double threshold;   // estimated Jaccard at or above which a document is a near duplicate
    uint32_t seeds[MINHASH_MAX_PERM];  // b_j
    uint32_t mults[MINHASH_MAX_PERM];  // a_j, odd
} MinHashConfig;

static void minhash_config_init(MinHashConfig* m, int shingle, int bands, int rows, double threshold) {
    m->shingle = shingle;
    m->bands = bands;
    m->rows = rows;
    m->threshold = threshold;
    uint64_t s = 0x2545F4914F6CDD1DULL;  // fixed: signatures must not change between runs
    for (int j = 0; j < MINHASH_MAX_PERM; j++) {
        s = mix64(s + 0x9e3779b97f4a7c15ULL);
        m->seeds[j] = (uint32_t)s;
        m->mults[j] = (uint32_t)(s >> 32) | 1u;
    }
}

// signature of normalized code points norm[0..n); sig has bands*rows entries
static void minhash_signature(const MinHashConfig* m, const int32_t* norm, long n, uint32_t* sig) {
    int K = m->bands * m->rows;
    for (int j = 0; j < K; j++) { sig[j] = 0xFFFFFFFFU; }
    long k = m->shingle;
    long count = n >= k ? n - k + 1 : (n > 0 ? 1 : 0);
    long len = n >= k ? k : n;
    for (long i = 0; i < count; i++) {
        uint64_t h = hash_cps(norm + i, len);
        uint32_t x = (uint32_t)h ^ (uint32_t)(h >> 32);
        // this loop vectorizes: K independent 32-bit lanes
        for (int j = 0; j < K; j++) {
            uint32_t v = m->mults[j] * x + m->seeds[j];
            sig[j] = v < sig[j] ? v : sig[j];
        }
    }
}

static double minhash_similarity(const uint32_t* a, const uint32_t* b, int K) {
    int eq = 0;
    for (int j = 0; j < K; j++) { eq += a[j] == b[j]; }
    return (double)eq / K;
}

// The near-dedup index: signatures of kept documents plus one multimap per band from the
// band's hash to document numbers. Memory per indexed document: 4*K bytes of signature plus
// about 2 * bands * 16 bytes of table (load factor <= 1/2), about 3 KB for the default 64 bands x 4 rows.
// Only the in-order committer touches it, so it needs no lock.
typedef struct {
    uint64_t key;   // 0 = empty
    uint32_t doc;
} LshEntry;

typedef struct {
    const MinHashConfig* cfg;
    int K;
    uint32_t* sigs;     // ndocs * K
    long ndocs, cap_docs;
    long max_docs;      // bound on indexed documents (0 = unbounded); later ones are only queried
    LshEntry** tables;  // one per band
    size_t tcap, tsize; // same capacity for every band (each gets one entry per document)
} LshIndex;

static void lsh_init(LshIndex* x, const MinHashConfig* cfg, long max_docs) {
    memset(x, 0, sizeof(*x));
    x->cfg = cfg;
    x->K = cfg->bands * cfg->rows;
    x->max_docs = max_docs;
    x->cap_docs = 1024;
    x->sigs = malloc_check((size_t)x->cap_docs * x->K * sizeof(uint32_t), "minhash signatures");
    x->tcap = 2048;
    x->tables = malloc_check(cfg->bands * sizeof(LshEntry*), "lsh tables");
    for (int b = 0; b < cfg->bands; b++) { x->tables[b] = calloc_check(x->tcap, sizeof(LshEntry), "lsh table"); }
}

static void lsh_free(LshIndex* x) {
    for (int b = 0; b < x->cfg->bands; b++) { free(x->tables[b]); }
    free(x->tables);
    free(x->sigs);
}

static uint64_t lsh_band_key(const LshIndex* x, const uint32_t* sig, int b) {
    const uint32_t* p = sig + (size_t)b * x->cfg->rows;
    uint64_t h = 0x8f1bbcdcca62c1d6ULL + (uint64_t)b;
    for (int r = 0; r < x->cfg->rows; r++) { h = mix64(h ^ p[r]); }
    return h ? h : 1;
}

static void lsh_table_put(LshEntry* t, size_t cap, uint64_t key, uint32_t doc) {
    size_t i = (size_t)key & (cap - 1);
    while (t[i].key != 0) { i = (i + 1) & (cap - 1); }
    t[i].key = key;
    t[i].doc = doc;
}

// Returns the index number of an indexed document whose estimated Jaccard with sig is
// >= threshold (the earliest such candidate found), or -1. *sim gets its similarity.
static long lsh_query(const LshIndex* x, const uint32_t* sig, double* sim) {
    for (int b = 0; b < x->cfg->bands; b++) {
        uint64_t key = lsh_band_key(x, sig, b);
        const LshEntry* t = x->tables[b];
        size_t i = (size_t)key & (x->tcap - 1);
        while (t[i].key != 0) {
            if (t[i].key == key) {
                double s = minhash_similarity(sig, x->sigs + (size_t)t[i].doc * x->K, x->K);
                if (s >= x->cfg->threshold) { *sim = s; return t[i].doc; }
            }
            i = (i + 1) & (x->tcap - 1);
        }
    }
    return -1;
}

// adds a kept document; returns 0, or -1 when the index is full (the document is then
// only kept, not indexed, and the caller counts it)
static int lsh_insert(LshIndex* x, const uint32_t* sig) {
    if (x->max_docs > 0 && x->ndocs >= x->max_docs) { return -1; }
    if (x->ndocs == x->cap_docs) {
        x->cap_docs *= 2;
        x->sigs = realloc(x->sigs, (size_t)x->cap_docs * x->K * sizeof(uint32_t));
        if (!x->sigs) { die("out of memory growing the near-dedup index to %ld documents", x->cap_docs); }
    }
    if (2 * (x->tsize + 1) > x->tcap) {
        size_t ncap = x->tcap * 2;
        for (int b = 0; b < x->cfg->bands; b++) {
            LshEntry* nt = calloc_check(ncap, sizeof(LshEntry), "lsh table");
            for (size_t i = 0; i < x->tcap; i++) {
                if (x->tables[b][i].key) { lsh_table_put(nt, ncap, x->tables[b][i].key, x->tables[b][i].doc); }
            }
            free(x->tables[b]);
            x->tables[b] = nt;
        }
        x->tcap = ncap;
    }
    memcpy(x->sigs + (size_t)x->ndocs * x->K, sig, x->K * sizeof(uint32_t));
    for (int b = 0; b < x->cfg->bands; b++) {
        lsh_table_put(x->tables[b], x->tcap, lsh_band_key(x, sig, b), (uint32_t)x->ndocs);
    }
    x->tsize++;
    x->ndocs++;
    return 0;
}

// ----------------------------------------------------------------------------
// URL host filter. A list file holds one host suffix per line ('#' comments, blank lines
// ignored); "example.com" matches example.com and any subdomain (a.example.com), not
// badexample.com. A document is dropped when its host matches the block list and not the
// allow list; with allow_only, also when it does not match the allow list.

typedef struct {
    char** hosts;  // sorted, lower case
    long n;
} HostList;

static int cmp_str(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

// what: the flag that named the file, for messages. A file that is not a regular file, or
// that names no host, is refused (an empty block list would silently block nothing).
static void hostlist_load(HostList* hl, const char* path, const char* what) {
    char err[LLMC_ERRLEN];
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { die("%s: %s", what, err); }
    hl->hosts = NULL;
    hl->n = 0;
    long cap = 0;
    char* line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        char* s = line;
        while (*s && isspace((unsigned char)*s)) { s++; }
        char* e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1])) { e--; }
        *e = '\0';
        if (*s == '\0' || *s == '#') { continue; }
        if (*s == '.') { s++; }  // ".example.com" means the same as "example.com"
        for (char* p = s; *p; p++) { *p = (char)tolower((unsigned char)*p); }
        if (hl->n == cap) { cap = cap ? 2 * cap : 64; hl->hosts = realloc(hl->hosts, cap * sizeof(char*)); if (!hl->hosts) { die("out of memory (host list)"); } }
        hl->hosts[hl->n++] = strdup(s);
    }
    free(line);
    int bad = ferror(f);
    fclose(f);
    if (bad) { die("%s %s: read error", what, path); }
    if (hl->n == 0) { die("%s %s: has no hosts (one host per line; blank lines and # comments are skipped)", what, path); }
    qsort(hl->hosts, hl->n, sizeof(char*), cmp_str);
}

static void hostlist_free(HostList* hl) {
    for (long i = 0; i < hl->n; i++) { free(hl->hosts[i]); }
    free(hl->hosts);
}

static int hostlist_match(const HostList* hl, const char* host) {
    if (hl == NULL || hl->n == 0 || host[0] == '\0') { return 0; }
    const char* s = host;
    while (1) {  // host itself, then every suffix that starts after a '.'
        if (bsearch(&s, hl->hosts, hl->n, sizeof(char*), cmp_str) != NULL) { return 1; }
        const char* dot = strchr(s, '.');
        if (dot == NULL) { return 0; }
        s = dot + 1;
    }
}

// Extracts the lower-case host of url into host (size cap). Empty string if there is none.
static void url_host(const char* url, char* host, size_t cap) {
    host[0] = '\0';
    const char* p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char* end = p;
    while (*end && *end != '/' && *end != '?' && *end != '#') { end++; }
    const char* at = NULL;  // user:password@host
    for (const char* q = p; q < end; q++) { if (*q == '@') { at = q; } }
    if (at) { p = at + 1; }
    const char* colon = end;
    if (*p == '[') {  // [IPv6]:port
        const char* rb = memchr(p, ']', end - p);
        if (rb) { p++; colon = rb; }
    } else {
        for (const char* q = p; q < end; q++) { if (*q == ':') { colon = q; break; } }
    }
    size_t n = colon - p;
    while (n > 0 && p[n - 1] == '.') { n--; }  // "example.com." is example.com
    if (n >= cap) { n = cap - 1; }
    for (size_t i = 0; i < n; i++) { host[i] = (char)tolower((unsigned char)p[i]); }
    host[n] = '\0';
}

// ----------------------------------------------------------------------------
// PII masking on code points. Each match is replaced by a token; the scanner then continues
// after the match. Order at each position: e-mail, IP address, card number, phone number.

enum { PII_EMAIL = 0, PII_PHONE, PII_IP, PII_CARD, PII_NKINDS };
static const char* pii_kind_name[PII_NKINDS] = { "email", "phone", "ip", "card" };
static const char* pii_token[PII_NKINDS] = { "<EMAIL>", "<PHONE>", "<IP>", "<CARD>" };

// ASCII and full-width digits (Japanese text often writes ０３－１２３４－５６７８)
static int pii_digit(int32_t c) { return (c >= '0' && c <= '9') || (c >= 0xFF10 && c <= 0xFF19); }
static int pii_digit_value(int32_t c) { return c <= '9' ? c - '0' : c - 0xFF10; }
static int pii_hex(int32_t c) { return pii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int pii_alnum(int32_t c) { return cp_is_ascii_alpha(c) || pii_digit(c) || (c >= 0xFF21 && c <= 0xFF3A) || (c >= 0xFF41 && c <= 0xFF5A); }
static int pii_dash(int32_t c) { return c == '-' || c == 0xFF0D || (c >= 0x2010 && c <= 0x2015) || c == 0x2212 || c == 0x30FC; }
static int pii_email_local(int32_t c) { return cp_is_ascii_alpha(c) || cp_is_ascii_digit(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }
static int pii_email_domain(int32_t c) { return cp_is_ascii_alpha(c) || cp_is_ascii_digit(c) || c == '.' || c == '-'; }

// e-mail whose '@' is at position at: returns [*s, *e) or 0
static int pii_match_email(const int32_t* c, long n, long at, long lo, long* s, long* e) {
    long a = at;
    while (a > lo && pii_email_local(c[a - 1])) { a--; }
    while (a < at && c[a] == '.') { a++; }  // a local part does not start with '.'
    if (a == at) { return 0; }
    long b = at + 1;
    while (b < n && pii_email_domain(c[b])) { b++; }
    while (b > at + 1 && (c[b - 1] == '.' || c[b - 1] == '-')) { b--; }  // sentence-final '.'
    // The domain needs a dot and a top-level label of >= 2 letters. When the last label does
    // not qualify ("host.example.c om", a header folded mid-word), drop it and try again, so
    // "user@host.example" is still masked.
    while (1) {
        long lastdot = -1;
        for (long k = at + 1; k < b; k++) { if (c[k] == '.') { lastdot = k; } }
        if (lastdot < 0 || lastdot == at + 1) { return 0; }
        int ok = b - lastdot - 1 >= 2;
        for (long k = lastdot + 1; k < b && ok; k++) { ok = cp_is_ascii_alpha(c[k]); }
        if (ok) { break; }
        b = lastdot;
    }
    *s = a;
    *e = b;
    return 1;
}

// IPv4 at i: four dot-separated numbers 0..255, not part of a longer dotted number
static int pii_match_ipv4(const int32_t* c, long n, long i, long* e) {
    if (i > 0 && (cp_is_ascii_digit(c[i - 1]) || c[i - 1] == '.' || cp_is_ascii_alpha(c[i - 1]))) { return 0; }
    long p = i;
    for (int part = 0; part < 4; part++) {
        if (part > 0) { if (p >= n || c[p] != '.') { return 0; } p++; }
        long s = p;
        int v = 0;
        while (p < n && cp_is_ascii_digit(c[p]) && p - s < 4) { v = v * 10 + (c[p] - '0'); p++; }
        if (p == s || p - s > 3 || v > 255) { return 0; }
    }
    if (p < n && (cp_is_ascii_digit(c[p]) || cp_is_ascii_alpha(c[p]))) { return 0; }
    if (p + 1 < n && c[p] == '.' && cp_is_ascii_digit(c[p + 1])) { return 0; }  // 1.2.3.4.5
    *e = p;
    return 1;
}

// IPv6 at i: hex groups of 1-4 digits separated by ':'; either 8 groups, or fewer with one
// "::". At least one decimal digit and at least two groups, so "std::vector" and times like
// 12:30:45 are not addresses.
static int pii_match_ipv6(const int32_t* c, long n, long i, long* e) {
    if (i > 0 && (pii_hex(c[i - 1]) || c[i - 1] == ':' || cp_is_ascii_alpha(c[i - 1]))) { return 0; }
    long p = i;
    int groups = 0, dbl = 0, digits = 0;
    long last_good = -1;
    int good_groups = 0;
    if (p + 1 < n && c[p] == ':' && c[p + 1] == ':') { dbl = 1; p += 2; last_good = p; }
    while (p < n) {
        long s = p;
        while (p < n && p - s < 5 && c[p] < 0x80 && pii_hex(c[p])) { digits += cp_is_ascii_digit(c[p]); p++; }
        if (p == s) { break; }
        if (p - s > 4) { return 0; }
        groups++;
        last_good = p;
        good_groups = groups;
        if (p < n && c[p] == ':') {
            if (p + 1 < n && c[p + 1] == ':') {
                if (dbl) { break; }
                dbl = 1;
                p += 2;
                last_good = p;
                continue;
            }
            p++;
            continue;
        }
        break;
    }
    if (last_good < 0) { return 0; }
    groups = good_groups;
    if (digits == 0 || groups > 8) { return 0; }
    if (!dbl && groups != 8) { return 0; }
    if (dbl && groups < 2) { return 0; }
    if (last_good < n && (cp_is_ascii_alpha(c[last_good]) || cp_is_ascii_digit(c[last_good]))) { return 0; }
    *e = last_good;
    return 1;
}

static int luhn_ok(const int* d, int n) {
    int sum = 0;
    for (int k = 0; k < n; k++) {
        int v = d[n - 1 - k];
        if (k % 2 == 1) { v *= 2; if (v > 9) { v -= 9; } }
        sum += v;
    }
    return sum % 10 == 0;
}

// A run of digit groups starting at i: digits, separated by one separator (' ', '-', '.',
// full-width dash) or by a parenthesis pair "(03)" / "(555) ". Collects the groups so the
// card and phone rules can test prefixes of the run (a phone number followed by a year
// must still match).
#define PII_MAX_GROUPS 12
typedef struct {
    int ngroups;
    long gstart[PII_MAX_GROUPS], gend[PII_MAX_GROUPS];
    int paren[PII_MAX_GROUPS];     // group was written in parentheses
    int sep_kind[PII_MAX_GROUPS];  // separator before group g: 0 none, ' ', '-', '.', '('
    int plus;                      // the run starts with '+'
} DigitRun;

static void pii_digit_run(const int32_t* c, long n, long i, DigitRun* r) {
    memset(r, 0, sizeof(*r));
    long p = i;
    if (c[p] == '+') { r->plus = 1; p++; }
    int sep = 0;
    while (r->ngroups < PII_MAX_GROUPS) {
        int paren = 0;
        long q = p;
        if (q < n && (c[q] == '(' || c[q] == 0xFF08)) { paren = 1; q++; }
        long s = q;
        while (q < n && pii_digit(c[q])) { q++; }
        if (q == s) { break; }
        if (paren) {
            if (q < n && (c[q] == ')' || c[q] == 0xFF09)) { q++; } else { break; }
        }
        int g = r->ngroups++;
        r->gstart[g] = s;
        r->gend[g] = paren ? q - 1 : q;
        r->paren[g] = paren;
        r->sep_kind[g] = sep;
        p = q;
        // separator to the next group: one of ' ' '-' '.', or none after a ')' / before a '('
        sep = 0;
        if (p < n && (c[p] == ' ' || c[p] == '.' || pii_dash(c[p]))) {
            sep = c[p] == ' ' ? ' ' : (c[p] == '.' ? '.' : '-');
            if (p + 1 < n && (pii_digit(c[p + 1]) || c[p + 1] == '(' || c[p + 1] == 0xFF08)) { p++; continue; }
            break;
        }
        if (p < n && (c[p] == '(' || c[p] == 0xFF08)) { sep = '('; continue; }
        if (paren && p < n && pii_digit(c[p])) { sep = '('; continue; }
        break;
    }
}

static long pii_group_digits(const DigitRun* r, int g) { return r->gend[g] - r->gstart[g]; }

// end position of group g (after a closing parenthesis)
static long pii_group_end(const int32_t* c, long n, const DigitRun* r, int g) {
    long e = r->gend[g];
    if (r->paren[g] && e < n) { e++; }
    return e;
}

// May a number (phone, card, IP) start at position i? Not inside a longer number or a dotted
// version ("1.03-..."), and not after URL/ID punctuation ("status/1234...", "id=1234..."),
// where long digit strings are identifiers. Letters may precede it: "TEL03-1234-5678".
static int pii_number_start(const int32_t* c, long i) {
    if (i == 0) { return 1; }
    int32_t p = c[i - 1];
    if (pii_digit(p) || p == '+' || p == '/' || p == '=' || p == '&' || p == '?' || p == '#' || p == '_' || p == '%') { return 0; }
    if ((p == '.' || p == '-' || p == ',') && i >= 2 && pii_digit(c[i - 2])) { return 0; }
    if (p == '-' && i >= 2 && cp_is_ascii_alpha(c[i - 2])) { return 0; }  // "ID-12345..." codes
    return 1;
}

// Card: 13..19 digits, groups separated only by a single ' ' or '-' (or none), Luhn valid.
static int pii_try_card(const int32_t* c, long n, const DigitRun* r, int g, long* e) {
    if (r->plus) { return 0; }
    int d[32];
    int nd = 0;
    for (int k = 0; k < g; k++) {
        if (r->paren[k]) { return 0; }
        if (k > 0 && r->sep_kind[k] != ' ' && r->sep_kind[k] != '-') { return 0; }
        for (long q = r->gstart[k]; q < r->gend[k]; q++) {
            if (nd >= 19) { return 0; }
            d[nd++] = pii_digit_value(c[q]);
        }
    }
    if (nd < 13 || nd > 19 || !luhn_ok(d, nd)) { return 0; }
    // issuer prefixes: 2 and 5 Mastercard, 3 Amex/Diners/JCB, 4 Visa, 6 Discover/UnionPay
    if (d[0] < 2 || d[0] > 6) { return 0; }
    // printed card numbers are one block, or a first group of 4 then groups of 4-6 and a last
    // group of 3-6 (4-4-4-4, Amex 4-6-5, 4-4-4-4-3); this rejects printer's keys
    // "1 3 5 7 9 10 8 6 4 2" and X11 modelines "800 824 896 1024" that happen to pass Luhn
    for (int k = 0; g > 1 && k < g; k++) {
        long len = pii_group_digits(r, k);
        if ((k == 0 && len != 4) || (k > 0 && k < g - 1 && (len < 4 || len > 6)) || (k == g - 1 && (len < 3 || len > 6))) { return 0; }
    }
    *e = pii_group_end(c, n, r, g - 1);
    return 1;
}

// Phone numbers:
//  - international: '+', country code, then groups; 8..15 digits in all, >= 3 groups
//    (+81 3 1234 5678, +1 (555) 123-4567, +44 20 7946 0958)
//  - Japanese domestic: 3 groups, first digit 0, 10 or 11 digits, group lengths 2-5/1-4/3-4
//    (03-1234-5678, 090-1234-5678, 0120-123-456, 03(1234)5678)
//  - North American: 3-3-4 digits, optionally with a leading 1 group ((555) 123-4567,
//    555-123-4567, 1-800-555-1234); separators must not be '.' mixed with others.
static int pii_try_phone(const int32_t* c, long n, const DigitRun* r, int g, long* e) {
    long len[PII_MAX_GROUPS];
    long total = 0;
    for (int k = 0; k < g; k++) { len[k] = pii_group_digits(r, k); total += len[k]; }
    int ok = 0;
    if (r->plus) {
        ok = g >= 3 && total >= 8 && total <= 15 && len[0] <= 3;
    } else if (g == 3 && pii_digit_value(c[r->gstart[0]]) == 0) {
        ok = (total == 10 || total == 11) && len[0] >= 2 && len[0] <= 5 && len[1] >= 1 && len[1] <= 4 &&
             len[2] >= 3 && len[2] <= 4;
    } else if (g == 3) {
        ok = len[0] == 3 && len[1] == 3 && len[2] == 4 && pii_digit_value(c[r->gstart[0]]) >= 2;
        // "(555) 123-4567" / "555-123-4567" / "555.123.4567"; reject bare "555 123 4567" (too
        // many false positives on tables of numbers)
        ok = ok && !(r->sep_kind[1] == ' ' && r->sep_kind[2] == ' ');
    } else if (g == 4) {
        ok = len[0] == 1 && pii_digit_value(c[r->gstart[0]]) == 1 && len[1] == 3 && len[2] == 3 && len[3] == 4;
    }
    if (!ok) { return 0; }
    *e = pii_group_end(c, n, r, g - 1);
    return 1;
}

// Masks PII in cps[0..n) and appends the result as UTF-8 to out; counts[kind] += matches.
static void pii_mask(const int32_t* c, long n, Buf* out, long counts[PII_NKINDS]) {
    long i = 0;
    long copied = 0;  // cps [copied, i) are pending output
    // email: we find '@' and expand left; remember where the previous match ended so the
    // left expansion does not reach into text already replaced
    long last_end = 0;
    while (i < n) {
        int32_t ch = c[i];
        long s = i, e = 0;
        int kind = -1;
        if (ch == '@') {
            if (pii_match_email(c, n, i, last_end, &s, &e)) { kind = PII_EMAIL; }
        } else if (pii_digit(ch) || ch == '+' || ch == '(' || ch == 0xFF08) {
            // IP addresses first: they may follow '/' ("http://10.0.0.1/"), numbers may not
            if (cp_is_ascii_digit(ch) && pii_match_ipv4(c, n, i, &e)) { kind = PII_IP; }
            else if (pii_hex(ch) && pii_match_ipv6(c, n, i, &e)) { kind = PII_IP; }
            else if (pii_number_start(c, i)) {
                DigitRun r;
                pii_digit_run(c, n, i, &r);
                // longest prefix of groups that is a card, else a phone number
                // Card numbers stand on their own: not glued to a letter ("=3D1234...",
                // quoted-printable HTML ids), not an identifier in <...> or before ".x"/"@"
                // (Message-Id: <20020822151301.694632EE5A@host>).
                int card_ctx = !(i > 0 && (cp_is_ascii_alpha(c[i - 1]) || c[i - 1] == '<'));
                for (int g = r.ngroups; g >= 1 && kind < 0 && card_ctx; g--) {
                    if (pii_try_card(c, n, &r, g, &e)) {
                        int after_bad = e < n && (c[e] == '@' || c[e] == '>' || c[e] == '_' ||
                                                  ((c[e] == '.' || c[e] == '-') && e + 1 < n && pii_alnum(c[e + 1])));
                        if (!after_bad) { kind = PII_CARD; }
                    }
                }
                for (int g = r.ngroups; g >= 2 && kind < 0; g--) {
                    if (pii_try_phone(c, n, &r, g, &e)) { kind = PII_PHONE; }
                }
                // a match must not run into a letter or digit (e.g. 090-1234-5678x9)
                if (kind >= 0 && e < n && (pii_alnum(c[e]) || c[e] == '@')) { kind = -1; }
                if (kind < 0 && r.ngroups > 0) {
                    // Skip the run up to its first space, so the tail of a longer number
                    // ("1234-5678-9012") is not matched on its own, but a number after a
                    // space ("8967 0263-31-2301") still is.
                    long skip = pii_group_end(c, n, &r, r.ngroups - 1);
                    for (int g = 1; g < r.ngroups; g++) {
                        if (r.sep_kind[g] == ' ') { skip = r.gstart[g]; break; }
                    }
                    i = skip > i ? skip : i + 1;
                    continue;
                }
            }
        } else if (cp_is_ascii_alpha(ch) && pii_hex(ch) && !(i > 0 && (pii_alnum(c[i - 1]) || c[i - 1] == ':'))) {
            if (pii_match_ipv6(c, n, i, &e)) { kind = PII_IP; }
        } else if (ch == ':' && i + 1 < n && c[i + 1] == ':' && !(i > 0 && (pii_alnum(c[i - 1]) || c[i - 1] == ':'))) {
            if (pii_match_ipv6(c, n, i, &e)) { kind = PII_IP; }
        }
        if (kind >= 0) {
            for (long k = copied; k < s; k++) { buf_put_cp(out, (uint32_t)c[k]); }
            buf_put(out, pii_token[kind], strlen(pii_token[kind]));
            counts[kind]++;
            i = e;
            copied = e;
            last_end = e;
            continue;
        }
        i++;
    }
    for (long k = copied; k < n; k++) { buf_put_cp(out, (uint32_t)c[k]); }
}

#endif // PIPELINE_FILTERS_H
