// Byte-level BPE tokenizer: GPT-2's pre-tokenization + rank-ordered merges, exactly like
// tiktoken's "gpt2" encoding, in plain C.
//
// ---------------------------------------------------------------------------------------
// API (stable; the corpus pipeline codes against it). Header-only: every function is static.
//
//   BPE                              // the vocabulary (struct below); read-only after loading
//   typedef struct BpeWork BpeWork;  // per-thread scratch + piece cache (caller-owned)
//   typedef struct { int* data; size_t len, cap; } BpeIds;   // growable id array
//   typedef struct { unsigned char* data; size_t len, cap; } BpeBytes;  // growable bytes
//
//   int  bpe_load_gpt2(BPE* bpe, const char* encoder_json, const char* vocab_bpe, char* err);
//        GPT-2's encoder.json + vocab.bpe. 0 on success, -1 with err (LLMC_ERRLEN bytes)
//        naming the file and the problem. <|endoftext|> comes from encoder.json (50256).
//   int  bpe_load_tiktoken(BPE* bpe, const char* path, char* err);
//        tiktoken rank file: one "base64(token) rank" per line, rank = token id. The
//        end-of-text token gets the lowest id the file does not use (50256 for r50k_base /
//        GPT-2, n for a contiguous vocabulary of n tokens).
//   void bpe_save_tiktoken(const BPE* bpe, const char* path);     // atomic; dies on I/O error
//   void bpe_write_llmc_tokenizer(const BPE* bpe, const char* path); // llm.c decode-only file
//   void bpe_free(BPE* bpe);
//
//   BpeWork* bpe_work_new(void);  void bpe_work_free(BpeWork* w);
//        One per thread. bpe_encode() only reads the BPE, so any number of threads may
//        encode with the same BPE at once, each with its own BpeWork.
//   void bpe_encode(const BPE* bpe, BpeWork* w, const unsigned char* text, size_t len,
//                   int allow_special, BpeIds* out);
//        APPENDS the ids of text to out. allow_special = 0: like tiktoken's
//        encode_ordinary ("<|endoftext|>" in the text is plain text); 1: the literal
//        "<|endoftext|>" becomes bpe->eot, like tiktoken's encode(allowed_special="all").
//        w may be NULL (slower: no cache). Invalid UTF-8 never fails, bytes are kept: see
//        "Invalid UTF-8" below.
//   int  bpe_decode(const BPE* bpe, const int* ids, size_t n, BpeBytes* out);
//        APPENDS the bytes of ids to out; -1 if an id is out of range (nothing appended).
//   const unsigned char* bpe_token_bytes(const BPE* bpe, int id, int* len);  // NULL if bad id
//   size_t bpe_piece_end(const unsigned char* text, size_t len, size_t start);
//        The pre-tokenizer alone: the end of the regex match that starts at `start`
//        (start < len). Used by BPE training to count pieces the same way.
//   size_t bpe_safe_split(const unsigned char* text, size_t len, size_t from);
//        A cut point at or after `from` that does not change the encoding (to spread one
//        big document over threads).
//   void bpe_ids_push(BpeIds* b, int id); void bpe_ids_free(BpeIds* b);
//   void bpe_bytes_append(BpeBytes* b, const void* p, size_t n); void bpe_bytes_free(BpeBytes* b);
//   int  bpe_build(BPE* bpe, int V, int eot, const unsigned char* const* toks, const int* lens,
//                  const char* what, char* err);  // from the bytes of every id (BPE training)
//
// Fields of BPE a caller may read: vocab_size (ids are 0..vocab_size-1, eot included),
// eot (id of <|endoftext|>).
//
// ---------------------------------------------------------------------------------------
// How encoding works, and why it matches tiktoken
//
// 1. Pre-tokenization: GPT-2's pattern
//      '(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//    is matched by hand (leftmost-first alternation, as in tiktoken's fancy-regex) over
//    code-point classes from llmc/bpe_unicode.h (letters L*, numbers N*, White_Space).
// 2. Each piece: if its bytes are a token, that token (tiktoken does this shortcut too, and
//    it can differ from running the merges). Otherwise tiktoken's merge rule: start from
//    single bytes, repeatedly merge the adjacent pair whose concatenated bytes form the
//    token of lowest rank (leftmost on ties) until no adjacent pair forms a token. We look
//    pairs up by (left id, right id) in a table precomputed from every way of splitting each
//    token into two tokens, which is the same set as "concatenation is a token" (plus a
//    65536-entry table for the first round, where every part is a single byte). Short
//    pieces use a plain array scan, long ones (Japanese sentences are one \p{L}+ piece) a
//    heap, so the cost stays O(n log n). Merged pieces go to a per-thread cache.
// The code-point class table of the BMP is built once per process (pthread_once), so
// encoding from many threads needs no other set-up.
//
// Invalid UTF-8: tiktoken's public encode() takes a Python str, so it never sees invalid
// bytes. We define: every byte that does not start a valid UTF-8 sequence (strict: no
// overlongs, no surrogates, nothing above U+10FFFF; the same bytes Python's decoder rejects)
// is one character of "other" class (not letter, number or space) and keeps its raw byte.
// That is what GPT-2's pattern does to the string Python decodes with
// errors="surrogateescape" (invalid byte b -> U+DC00+b, category Cs, so "other"); the test
// (dev/data/test_tokenizer.py) splits such strings with the `regex` module and merges each
// piece's raw bytes with tiktoken's own BPE (Encoding._encode_single_piece), and compares.
// (tiktoken.encode would replace those characters by U+FFFD; its private _encode_bytes
// merges everything after the first invalid byte as one piece without pre-tokenization.)
// decode(encode(b)) == b for every byte string. On valid UTF-8 all of this is moot: the
// output equals tiktoken.encode_ordinary(text), token for token.
// ---------------------------------------------------------------------------------------
#ifndef LLMC_BPE_H
#define LLMC_BPE_H

#include <stdint.h>
#include <limits.h>
#include <pthread.h>
#include "utils.h"
#include "tokenizer.h"
#include "bpe_unicode.h"

// ----------------------------------------------------------------------------
// growable buffers

typedef struct { int* data; size_t len, cap; } BpeIds;
typedef struct { unsigned char* data; size_t len, cap; } BpeBytes;

static void bpe_ids_reserve(BpeIds* b, size_t extra) {
    if (b->len + extra <= b->cap) { return; }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra) { cap *= 2; }
    int* p = (int*)realloc(b->data, cap * sizeof(int));
    if (p == NULL) { die("out of memory growing a token buffer to %zu ids", cap); }
    b->data = p;
    b->cap = cap;
}
static inline void bpe_ids_push(BpeIds* b, int id) {
    if (b->len == b->cap) { bpe_ids_reserve(b, 1); }
    b->data[b->len++] = id;
}
static void bpe_ids_free(BpeIds* b) { free(b->data); memset(b, 0, sizeof(*b)); }

static void bpe_bytes_append(BpeBytes* b, const void* src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) { cap *= 2; }
        unsigned char* p = (unsigned char*)realloc(b->data, cap);
        if (p == NULL) { die("out of memory growing a byte buffer to %zu bytes", cap); }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
}
static void bpe_bytes_free(BpeBytes* b) { free(b->data); memset(b, 0, sizeof(*b)); }

// ----------------------------------------------------------------------------
// code-point classes and the pre-tokenizer

enum { BPE_OTHER = 0, BPE_LETTER = 1, BPE_NUMBER = 2, BPE_SPACE = 3 };

static int bpe_in_ranges(const uint32_t (*r)[2], int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) >> 1;
        if (cp < r[mid][0]) { hi = mid - 1; }
        else if (cp > r[mid][1]) { lo = mid + 1; }
        else { return 1; }
    }
    return 0;
}

static int bpe_class_slow(uint32_t cp) {
    if (bpe_in_ranges(bpe_letter_ranges, (int)(sizeof(bpe_letter_ranges) / sizeof(bpe_letter_ranges[0])), cp)) { return BPE_LETTER; }
    if (bpe_in_ranges(bpe_number_ranges, (int)(sizeof(bpe_number_ranges) / sizeof(bpe_number_ranges[0])), cp)) { return BPE_NUMBER; }
    if (bpe_in_ranges(bpe_space_ranges, (int)(sizeof(bpe_space_ranges) / sizeof(bpe_space_ranges[0])), cp)) { return BPE_SPACE; }
    return BPE_OTHER;
}

// The Basic Multilingual Plane (all of Japanese, nearly all real text) gets a 64 KiB lookup
// table, filled once; the rare code points above it use the binary search.
static unsigned char bpe_bmp_class[65536];
static pthread_once_t bpe_bmp_once = PTHREAD_ONCE_INIT;
static void bpe_bmp_init(void) {
    for (uint32_t cp = 0; cp < 65536; cp++) { bpe_bmp_class[cp] = (unsigned char)bpe_class_slow(cp); }
}
static inline void bpe_unicode_init(void) { pthread_once(&bpe_bmp_once, bpe_bmp_init); }

// ASCII classes, also used before the BMP table exists
static const unsigned char bpe_ascii_class[128] = {
    0,0,0,0,0,0,0,0,0,3,3,3,3,3,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    3,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 2,2,2,2,2,2,2,2,2,2,0,0,0,0,0,0,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,
};

// Decodes the character at s[0..n) (n >= 1) strictly (the bytes Python's and Rust's UTF-8
// decoders accept) and returns its class; *clen gets its byte length. A byte that does not
// start a valid sequence is one character of class OTHER and length 1: see the top comment.
static inline int bpe_char_class(const unsigned char* s, size_t n, int* clen) {
    unsigned c = s[0];
    if (c < 0x80) { *clen = 1; return bpe_ascii_class[c]; }
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) { goto invalid; }
        cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        *clen = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) { goto invalid; }
        if (c == 0xE0 && s[1] < 0xA0) { goto invalid; }   // overlong
        if (c == 0xED && s[1] > 0x9F) { goto invalid; }   // UTF-16 surrogate
        cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        *clen = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) { goto invalid; }
        if (c == 0xF0 && s[1] < 0x90) { goto invalid; }   // overlong
        if (c == 0xF4 && s[1] > 0x8F) { goto invalid; }   // above U+10FFFF
        cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
        *clen = 4;
        return bpe_class_slow(cp);
    } else {
        goto invalid;
    }
    return bpe_bmp_class[cp];
invalid:
    *clen = 1;
    return BPE_OTHER;
}

// End of the run of characters of class cls that starts at p (p may already be at len).
static inline size_t bpe_run_end(const unsigned char* s, size_t len, size_t p, int cls) {
    while (p < len) {
        unsigned c = s[p];
        if (c < 0x80) {
            if (bpe_ascii_class[c] != cls) { break; }
            p++;
        } else {
            int clen;
            if (bpe_char_class(s + p, len - p, &clen) != cls) { break; }
            p += clen;
        }
    }
    return p;
}

// The pre-tokenizer: end of the match of
//   '(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// that starts at `start` (start < len). The alternatives are tried in order, as in a
// backtracking regex engine; each comment names the one that matches.
static size_t bpe_piece_end_nocheck(const unsigned char* s, size_t len, size_t start) {
    size_t p = start;
    unsigned c = s[p];
    if (c == '\'' && p + 1 < len) {  // '(?:[sdmt]|ll|ve|re)
        unsigned d = s[p + 1];
        if (d == 's' || d == 'd' || d == 'm' || d == 't') { return p + 2; }
        if (p + 2 < len) {
            unsigned e = s[p + 2];
            if ((d == 'l' && e == 'l') || (d == 'v' && e == 'e') || (d == 'r' && e == 'e')) { return p + 3; }
        }
    }
    int clen;
    int cls = bpe_char_class(s + p, len - p, &clen);
    if (c == ' ' && p + 1 < len) {
        // " ?X+": a single ASCII space joins the letter / number / other run behind it
        int clen2;
        int cls2 = bpe_char_class(s + p + 1, len - p - 1, &clen2);
        if (cls2 != BPE_SPACE) { return bpe_run_end(s, len, p + 1 + clen2, cls2); }
    }
    if (cls != BPE_SPACE) { return bpe_run_end(s, len, p + clen, cls); }  // \p{L}+ | \p{N}+ | [^\s\p{L}\p{N}]+
    // \s+(?!\S) | \s+ : take the whole whitespace run, but leave its last character for the
    // next piece when a non-space follows, so " word" keeps its space; a lone whitespace
    // character before a non-space is matched by the final \s+.
    size_t last = p;
    size_t q = p + clen;
    while (q < len) {
        int l2;
        if (bpe_char_class(s + q, len - q, &l2) != BPE_SPACE) { break; }
        last = q;
        q += l2;
    }
    if (q == len || last == p) { return q; }
    return last;
}

static size_t bpe_piece_end(const unsigned char* s, size_t len, size_t start) {
    bpe_unicode_init();
    return bpe_piece_end_nocheck(s, len, start);
}

// ----------------------------------------------------------------------------
// the vocabulary

typedef struct BPE {
    int vocab_size;          // ids 0..vocab_size-1, special tokens included
    int eot;                 // id of <|endoftext|>
    int n_ranked;            // mergeable tokens: all ids but eot
    unsigned char* arena;    // the bytes of every token, back to back
    size_t* tok_off;         // [vocab_size] offset of each token's bytes in arena
    int* tok_len;            // [vocab_size] length of each token
    int byte_token[256];     // id of each single-byte token
    int max_len;             // longest ranked token: longer pieces skip the whole-piece lookup
    // bytes -> id (ranked tokens only), open addressing
    uint32_t vmask;
    int32_t* vslot;          // id, or -1 for an empty slot
    uint32_t* vhash;         // the low 32 bits of each slot's hash, to skip most memcmps
    // (left id, right id) -> id of their concatenation, if that is a ranked token. One 64-bit
    // word per slot, left << 44 | right << 24 | id (ids < 2^20), so a lookup is one load and
    // the GPT-2 table is 2 MiB; UINT64_MAX marks an empty slot.
    uint64_t pmask;
    uint64_t* pairs;
    // every piece starts as single bytes: the 2-byte tokens by their bytes, INT_MAX if none
    int32_t* byte_pair;      // [65536]
} BPE;

static inline uint64_t bpe_hash_bytes(const unsigned char* s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) { v |= (uint64_t)s[i] << (8 * i); }
        h = (h ^ v) * 0x94D049BB133111EBull;
    }
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t bpe_hash_pair(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 29);
}

// id of the ranked token with exactly these bytes, or -1
static inline int bpe_lookup(const BPE* bpe, const unsigned char* s, size_t n) {
    uint64_t h = bpe_hash_bytes(s, n);
    uint32_t i = (uint32_t)h & bpe->vmask;
    uint32_t h32 = (uint32_t)(h >> 32);
    for (;;) {
        int id = bpe->vslot[i];
        if (id < 0) { return -1; }
        if (bpe->vhash[i] == h32 && (size_t)bpe->tok_len[id] == n && memcmp(bpe->arena + bpe->tok_off[id], s, n) == 0) {
            return id;
        }
        i = (i + 1) & bpe->vmask;
    }
}

// id (= rank) of the token that left + right concatenate to, or INT_MAX
#define BPE_MAX_VOCAB (1 << 20)

static inline int bpe_pair(const BPE* bpe, int left, int right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 20) | (uint32_t)right;
    uint64_t i = bpe_hash_pair(key) & bpe->pmask;
    for (;;) {
        uint64_t slot = bpe->pairs[i];
        if ((slot >> 24) == key) { return (int)(slot & 0xFFFFFF); }
        if (slot == UINT64_MAX) { return INT_MAX; }
        i = (i + 1) & bpe->pmask;
    }
}

static void bpe_free(BPE* bpe) {
    free(bpe->arena); free(bpe->tok_off); free(bpe->tok_len);
    free(bpe->vslot); free(bpe->vhash); free(bpe->pairs); free(bpe->byte_pair);
    memset(bpe, 0, sizeof(*bpe));
}

static const unsigned char* bpe_token_bytes(const BPE* bpe, int id, int* len) {
    if (id < 0 || id >= bpe->vocab_size) { return NULL; }
    if (len != NULL) { *len = bpe->tok_len[id]; }
    return bpe->arena + bpe->tok_off[id];
}

// Builds a BPE from the bytes of every id. Token id = merge rank, as in tiktoken, so a
// vocabulary whose ids are not in merge order cannot be expressed (tiktoken refuses it too).
// eot is the one special token; its bytes are its text ("<|endoftext|>"). Every single byte
// must be a token. `what` names the source in error messages.
static int bpe_build(BPE* bpe, int V, int eot, const unsigned char* const* toks, const int* lens,
                     const char* what, char* err) {
    memset(bpe, 0, sizeof(*bpe));
    if (V <= 0 || eot < 0 || eot >= V) { return set_err(err, "%s: bad vocabulary size %d or end-of-text id %d", what, V, eot); }
    if (V >= BPE_MAX_VOCAB) { return set_err(err, "%s: %d tokens, more than the %d this tokenizer supports", what, V, BPE_MAX_VOCAB - 1); }
    bpe->vocab_size = V;
    bpe->eot = eot;
    bpe->n_ranked = V - 1;
    size_t total = 0;
    for (int i = 0; i < V; i++) {
        if (lens[i] <= 0) { return set_err(err, "%s: token %d is empty", what, i); }
        total += (size_t)lens[i];
    }
    bpe->arena = (unsigned char*)malloc_check(total, "BPE token bytes");
    bpe->tok_off = (size_t*)malloc_check((size_t)V * sizeof(size_t), "BPE token offsets");
    bpe->tok_len = (int*)malloc_check((size_t)V * sizeof(int), "BPE token lengths");
    size_t off = 0;
    for (int i = 0; i < V; i++) {
        memcpy(bpe->arena + off, toks[i], (size_t)lens[i]);
        bpe->tok_off[i] = off;
        bpe->tok_len[i] = lens[i];
        off += (size_t)lens[i];
    }
    // bytes -> id
    uint32_t vcap = 1;
    while (vcap < 2u * (uint32_t)V) { vcap <<= 1; }
    bpe->vmask = vcap - 1;
    bpe->vslot = (int32_t*)malloc_check(vcap * sizeof(int32_t), "BPE vocab table");
    bpe->vhash = (uint32_t*)malloc_check(vcap * sizeof(uint32_t), "BPE vocab table");
    for (uint32_t i = 0; i < vcap; i++) { bpe->vslot[i] = -1; }
    for (int b = 0; b < 256; b++) { bpe->byte_token[b] = -1; }
    for (int id = 0; id < V; id++) {
        if (id == eot) { continue; }
        const unsigned char* s = bpe->arena + bpe->tok_off[id];
        int n = bpe->tok_len[id];
        int dup = bpe_lookup(bpe, s, (size_t)n);
        if (dup >= 0) {
            bpe_free(bpe);
            return set_err(err, "%s: tokens %d and %d have the same bytes", what, dup, id);
        }
        uint64_t h = bpe_hash_bytes(s, (size_t)n);
        uint32_t i = (uint32_t)h & bpe->vmask;
        while (bpe->vslot[i] >= 0) { i = (i + 1) & bpe->vmask; }
        bpe->vslot[i] = id;
        bpe->vhash[i] = (uint32_t)(h >> 32);
        if (n == 1) { bpe->byte_token[s[0]] = id; }
        if (n > bpe->max_len) { bpe->max_len = n; }
    }
    for (int b = 0; b < 256; b++) {
        if (bpe->byte_token[b] < 0) {
            bpe_free(bpe);
            return set_err(err, "%s: byte 0x%02X has no token (a byte-level BPE needs all 256)", what, b);
        }
    }
    // (left, right) -> concatenation: every split of every token into two tokens. This is
    // exactly the set of pairs tiktoken's "is left+right a token" lookup would find.
    size_t npairs = 0, cap = 1024;
    uint64_t* keys = (uint64_t*)malloc_check(cap * sizeof(uint64_t), "BPE pairs");
    int32_t* vals = (int32_t*)malloc_check(cap * sizeof(int32_t), "BPE pairs");
    for (int id = 0; id < V; id++) {
        if (id == eot) { continue; }
        const unsigned char* s = bpe->arena + bpe->tok_off[id];
        int n = bpe->tok_len[id];
        for (int k = 1; k < n; k++) {
            int l = bpe_lookup(bpe, s, (size_t)k);
            if (l < 0) { continue; }
            int r = bpe_lookup(bpe, s + k, (size_t)(n - k));
            if (r < 0) { continue; }
            if (npairs == cap) {
                cap *= 2;
                keys = (uint64_t*)realloc(keys, cap * sizeof(uint64_t));
                vals = (int32_t*)realloc(vals, cap * sizeof(int32_t));
                if (keys == NULL || vals == NULL) { die("out of memory building the BPE pair table"); }
            }
            keys[npairs] = ((uint64_t)(uint32_t)l << 20) | (uint32_t)r;
            vals[npairs] = id;
            npairs++;
        }
    }
    uint64_t pcap = 1;
    while (pcap < 2 * (uint64_t)npairs + 2) { pcap <<= 1; }
    bpe->pmask = pcap - 1;
    bpe->pairs = (uint64_t*)malloc_check(pcap * sizeof(uint64_t), "BPE pair table");
    for (uint64_t i = 0; i < pcap; i++) { bpe->pairs[i] = UINT64_MAX; }
    for (size_t j = 0; j < npairs; j++) {
        uint64_t i = bpe_hash_pair(keys[j]) & bpe->pmask;
        while (bpe->pairs[i] != UINT64_MAX) { i = (i + 1) & bpe->pmask; }
        bpe->pairs[i] = (keys[j] << 24) | (uint32_t)vals[j];  // a pair is one split of one token: unique
    }
    free(keys);
    free(vals);
    bpe->byte_pair = (int32_t*)malloc_check(65536 * sizeof(int32_t), "BPE byte pairs");
    for (int x = 0; x < 65536; x++) { bpe->byte_pair[x] = bpe_pair(bpe, bpe->byte_token[x >> 8], bpe->byte_token[x & 255]); }
    return 0;
}

// ----------------------------------------------------------------------------
// loading: GPT-2's encoder.json + vocab.bpe

// GPT-2 stores token bytes as printable unicode: bytes that are printable latin-1 stand for
// themselves, the other 68 bytes get code points 256.. in byte order (bytes_to_unicode() in
// openai/gpt-2's encoder.py). The inverse: code point -> byte, or -1.
static void bpe_gpt2_unicode_to_byte(int* map /* [324] */) {
    for (int i = 0; i < 324; i++) { map[i] = -1; }
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (printable) { map[b] = b; } else { map[256 + n] = b; n++; }
    }
}

// Reads a whole file; NULL with err set on failure.
static unsigned char* bpe_read_file(const char* path, size_t* size, char* err) {
    FILE* f = fopen_regular(path, err);  // a directory or a FIFO is refused, never read as 2^63 bytes
    if (f == NULL) { return NULL; }
    long n = file_size_of(f);
    if (n < 0) { fclose(f); set_err(err, "%s: cannot determine file size", path); return NULL; }
    unsigned char* buf = (unsigned char*)malloc_check((size_t)n + 1, path);
    if (fread_exact(buf, 1, (size_t)n, f, path, err) != 0) { fclose(f); free(buf); return NULL; }
    fclose(f);
    buf[n] = 0;
    *size = (size_t)n;
    return buf;
}

static void bpe_utf8_put(unsigned char* out, int* n, uint32_t cp) {
    if (cp < 0x80) { out[(*n)++] = (unsigned char)cp; }
    else if (cp < 0x800) { out[(*n)++] = (unsigned char)(0xC0 | (cp >> 6)); out[(*n)++] = (unsigned char)(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
        out[(*n)++] = (unsigned char)(0xE0 | (cp >> 12)); out[(*n)++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (unsigned char)(0xF0 | (cp >> 18)); out[(*n)++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*n)++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); out[(*n)++] = (unsigned char)(0x80 | (cp & 0x3F));
    }
}

static int bpe_hex4(const unsigned char* s, uint32_t* v) {
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i];
        x <<= 4;
        if (c >= '0' && c <= '9') { x |= c - '0'; }
        else if (c >= 'a' && c <= 'f') { x |= c - 'a' + 10; }
        else if (c >= 'A' && c <= 'F') { x |= c - 'A' + 10; }
        else { return -1; }
    }
    *v = x;
    return 0;
}

// Parses the JSON string starting at s[*pos] == '"' into UTF-8 (out, at most cap bytes),
// handling every escape including \uXXXX surrogate pairs. 0 or -1 with err set.
static int bpe_json_string(const unsigned char* s, size_t n, size_t* pos, unsigned char* out, int cap, int* outlen,
                           const char* path, char* err) {
    size_t p = *pos;
    if (p >= n || s[p] != '"') { return set_err(err, "%s: byte %zu: expected a JSON string", path, p); }
    p++;
    int o = 0;
    for (;;) {
        if (p >= n) { return set_err(err, "%s: unterminated JSON string at end of file", path); }
        if (o > cap - 4) { return set_err(err, "%s: byte %zu: JSON string longer than %d bytes", path, p, cap - 4); }
        unsigned c = s[p];
        if (c == '"') { p++; break; }
        if (c < 0x20) { return set_err(err, "%s: byte %zu: control character 0x%02X inside a JSON string", path, p, c); }
        if (c != '\\') { out[o++] = (unsigned char)c; p++; continue; }
        if (p + 1 >= n) { return set_err(err, "%s: byte %zu: unterminated escape", path, p); }
        unsigned e = s[p + 1];
        p += 2;
        switch (e) {
            case '"': out[o++] = '"'; break;
            case '\\': out[o++] = '\\'; break;
            case '/': out[o++] = '/'; break;
            case 'b': out[o++] = '\b'; break;
            case 'f': out[o++] = '\f'; break;
            case 'n': out[o++] = '\n'; break;
            case 'r': out[o++] = '\r'; break;
            case 't': out[o++] = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (p + 4 > n || bpe_hex4(s + p, &cp) != 0) { return set_err(err, "%s: byte %zu: bad \\u escape", path, p - 2); }
                p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {  // high surrogate: a low one must follow
                    uint32_t lo;
                    if (p + 6 > n || s[p] != '\\' || s[p + 1] != 'u' || bpe_hex4(s + p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                        return set_err(err, "%s: byte %zu: unpaired UTF-16 surrogate \\u%04X", path, p - 6, cp);
                    }
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return set_err(err, "%s: byte %zu: unpaired UTF-16 surrogate \\u%04X", path, p - 6, cp);
                }
                bpe_utf8_put(out, &o, cp);
                break;
            }
            default: return set_err(err, "%s: byte %zu: bad escape \\%c", path, p - 2, e);
        }
    }
    *pos = p;
    *outlen = o;
    return 0;
}

// GPT-2 unicode string (UTF-8) -> raw bytes, in place. -1 if a character is not in the
// byte alphabet.
static int bpe_gpt2_string_to_bytes(unsigned char* s, int n, const int* u2b) {
    int o = 0;
    for (int i = 0; i < n;) {
        int clen;
        uint32_t cp;
        unsigned c = s[i];
        if (c < 0x80) { cp = c; clen = 1; }
        else if ((c & 0xE0) == 0xC0 && i + 1 < n) { cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu); clen = 2; }
        else { return -1; }  // the alphabet ends at U+0143: never 3 bytes
        if (cp >= 324 || u2b[cp] < 0) { return -1; }
        s[o++] = (unsigned char)u2b[cp];
        i += clen;
    }
    return o;
}

#define BPE_MAX_TOKEN_BYTES 1024
static const char bpe_eot_text[] = "<|endoftext|>";

static int bpe_load_gpt2(BPE* bpe, const char* encoder_json, const char* vocab_bpe, char* err) {
    memset(bpe, 0, sizeof(*bpe));
    int u2b[324];
    bpe_gpt2_unicode_to_byte(u2b);
    size_t n;
    unsigned char* js = bpe_read_file(encoder_json, &n, err);
    if (js == NULL) { return -1; }
    // pass 1: parse "token": id pairs into a list
    size_t cap = 65536, count = 0;
    unsigned char** toks = (unsigned char**)malloc_check(cap * sizeof(unsigned char*), "encoder.json");
    int* lens = (int*)malloc_check(cap * sizeof(int), "encoder.json");
    int* ids = (int*)malloc_check(cap * sizeof(int), "encoder.json");
    unsigned char buf[BPE_MAX_TOKEN_BYTES + 8];
    int rc = -1;
    int V = 0, eot = -1;
    unsigned char** byid = NULL;
    int* lenbyid = NULL;
    size_t p = 0;
#define SKIPWS() while (p < n && (js[p] == ' ' || js[p] == '\n' || js[p] == '\r' || js[p] == '\t')) { p++; }
    SKIPWS();
    if (p >= n || js[p] != '{') { set_err(err, "%s: not a JSON object (expected '{' at byte %zu)", encoder_json, p); goto done; }
    p++;
    SKIPWS();
    if (p < n && js[p] == '}') { set_err(err, "%s: empty JSON object, no tokens", encoder_json); goto done; }
    for (;;) {
        SKIPWS();
        int blen = 0;
        if (bpe_json_string(js, n, &p, buf, BPE_MAX_TOKEN_BYTES + 4, &blen, encoder_json, err) != 0) { goto done; }
        SKIPWS();
        if (p >= n || js[p] != ':') { set_err(err, "%s: byte %zu: expected ':' after a key", encoder_json, p); goto done; }
        p++;
        SKIPWS();
        long v = 0;
        size_t d0 = p;
        while (p < n && js[p] >= '0' && js[p] <= '9' && p - d0 < 9) { v = v * 10 + (js[p] - '0'); p++; }
        if (p == d0 || (p < n && js[p] >= '0' && js[p] <= '9')) {
            set_err(err, "%s: byte %zu: expected a token id (a non-negative integer below 10^9)", encoder_json, d0);
            goto done;
        }
        int is_eot = blen == (int)strlen(bpe_eot_text) && memcmp(buf, bpe_eot_text, (size_t)blen) == 0;
        if (!is_eot) {
            blen = bpe_gpt2_string_to_bytes(buf, blen, u2b);
            if (blen <= 0) { set_err(err, "%s: token with id %ld is not in GPT-2's byte alphabet", encoder_json, v); goto done; }
        } else {
            eot = (int)v;
        }
        if (count == cap) {
            cap *= 2;
            toks = (unsigned char**)realloc(toks, cap * sizeof(unsigned char*));
            lens = (int*)realloc(lens, cap * sizeof(int));
            ids = (int*)realloc(ids, cap * sizeof(int));
            if (!toks || !lens || !ids) { die("out of memory reading %s", encoder_json); }
        }
        toks[count] = (unsigned char*)malloc_check((size_t)blen, "token");
        memcpy(toks[count], buf, (size_t)blen);
        lens[count] = blen;
        ids[count] = (int)v;
        count++;
        if (v + 1 > V) { V = (int)v + 1; }
        SKIPWS();
        if (p < n && js[p] == ',') { p++; continue; }
        if (p < n && js[p] == '}') { p++; break; }
        set_err(err, "%s: byte %zu: expected ',' or '}'", encoder_json, p);
        goto done;
    }
    SKIPWS();
    if (p != n) { set_err(err, "%s: trailing data at byte %zu after the JSON object", encoder_json, p); goto done; }
    if (eot < 0) { set_err(err, "%s: no \"<|endoftext|>\" token", encoder_json); goto done; }
    if ((size_t)V != count) {
        set_err(err, "%s: %zu tokens but the largest id is %d: ids must be 0..%zu without gaps or repeats", encoder_json, count, V - 1, count - 1);
        goto done;
    }
    byid = (unsigned char**)calloc_check((size_t)V, sizeof(unsigned char*), "encoder.json");
    lenbyid = (int*)calloc_check((size_t)V, sizeof(int), "encoder.json");
    for (size_t i = 0; i < count; i++) {
        if (byid[ids[i]] != NULL) { set_err(err, "%s: id %d is used twice", encoder_json, ids[i]); goto done; }
        byid[ids[i]] = toks[i];
        lenbyid[ids[i]] = lens[i];
    }
    if (bpe_build(bpe, V, eot, (const unsigned char* const*)byid, lenbyid, encoder_json, err) != 0) { goto done; }
    rc = 0;
done:
#undef SKIPWS
    for (size_t i = 0; i < count; i++) { free(toks[i]); }
    free(toks); free(lens); free(ids); free(byid); free(lenbyid); free(js);
    if (rc != 0) { return -1; }

    // vocab.bpe: encoding ranks merges by the merged token's id (as tiktoken does), so check
    // that the merges in vocab.bpe are in id order, use and make tokens of encoder.json, and
    // account for every multi-byte token. Line 1 ("#version: 0.2") is skipped, as tiktoken's
    // data_gym loader does.
    unsigned char* mb = bpe_read_file(vocab_bpe, &n, err);
    if (mb == NULL) { bpe_free(bpe); return -1; }
    p = 0;
    int line = 1;
    while (p < n && mb[p] != '\n') { p++; }  // the header line, skipped like tiktoken does
    if (p < n) { p++; }
    int prev_id = -1, nmerges = 0;
    while (p < n) {
        line++;
        size_t e = p;
        while (e < n && mb[e] != '\n') { e++; }
        size_t sp = p;
        while (sp < e && mb[sp] != ' ') { sp++; }
        if (e == p) { p = e + 1; continue; }  // blank (the final newline)
        if (sp == e || sp == p || sp + 1 == e || e - p > BPE_MAX_TOKEN_BYTES) {
            set_err(err, "%s: line %d: expected \"left right\"", vocab_bpe, line);
            free(mb); bpe_free(bpe); return -1;
        }
        unsigned char a[BPE_MAX_TOKEN_BYTES + 8], b[BPE_MAX_TOKEN_BYTES + 8];
        int la = (int)(sp - p), lb = (int)(e - sp - 1);
        memcpy(a, mb + p, (size_t)la);
        memcpy(b, mb + sp + 1, (size_t)lb);
        la = bpe_gpt2_string_to_bytes(a, la, u2b);
        lb = bpe_gpt2_string_to_bytes(b, lb, u2b);
        if (la <= 0 || lb <= 0) {
            set_err(err, "%s: line %d: merge is not in GPT-2's byte alphabet", vocab_bpe, line);
            free(mb); bpe_free(bpe); return -1;
        }
        int ia = bpe_lookup(bpe, a, (size_t)la), ib = bpe_lookup(bpe, b, (size_t)lb);
        memcpy(a + la, b, (size_t)lb);
        int ic = bpe_lookup(bpe, a, (size_t)(la + lb));
        if (ia < 0 || ib < 0 || ic < 0) {
            set_err(err, "%s: line %d: merge uses or makes a token that %s does not have", vocab_bpe, line, encoder_json);
            free(mb); bpe_free(bpe); return -1;
        }
        if (ic <= prev_id) {
            set_err(err, "%s: line %d: merged token id %d is not above the previous merge's %d (ids must follow merge order)",
                    vocab_bpe, line, ic, prev_id);
            free(mb); bpe_free(bpe); return -1;
        }
        prev_id = ic;
        nmerges++;
        p = e + 1;
    }
    free(mb);
    if (nmerges + 256 != bpe->n_ranked) {
        set_err(err, "%s: %d merges, but %s has %d tokens besides <|endoftext|> (expected 256 + merges)",
                vocab_bpe, nmerges, encoder_json, bpe->n_ranked);
        bpe_free(bpe);
        return -1;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// loading and saving: tiktoken's rank format, "base64(token bytes) rank" per line

static int bpe_b64_value(unsigned c) {
    if (c >= 'A' && c <= 'Z') { return (int)(c - 'A'); }
    if (c >= 'a' && c <= 'z') { return (int)(c - 'a' + 26); }
    if (c >= '0' && c <= '9') { return (int)(c - '0' + 52); }
    if (c == '+') { return 62; }
    if (c == '/') { return 63; }
    return -1;
}

// standard base64 with padding; -1 on a malformed string
static int bpe_b64_decode(const unsigned char* s, size_t n, unsigned char* out, int cap) {
    if (n == 0 || n % 4 != 0) { return -1; }
    int o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) { v[k] = 0; pad++; }
            else if (pad > 0) { return -1; }
            else if ((v[k] = bpe_b64_value(s[i + k])) < 0) { return -1; }
        }
        uint32_t x = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) | (uint32_t)v[3];
        if (o + 3 > cap) { return -1; }
        out[o++] = (unsigned char)(x >> 16);
        if (pad < 2) { out[o++] = (unsigned char)(x >> 8); }
        if (pad < 1) { out[o++] = (unsigned char)x; }
    }
    return o;
}

static int bpe_load_tiktoken(BPE* bpe, const char* path, char* err) {
    memset(bpe, 0, sizeof(*bpe));
    size_t n;
    unsigned char* buf = bpe_read_file(path, &n, err);
    if (buf == NULL) { return -1; }
    size_t cap = 65536, count = 0;
    unsigned char** toks = (unsigned char**)malloc_check(cap * sizeof(unsigned char*), path);
    int* lens = (int*)malloc_check(cap * sizeof(int), path);
    int* ids = (int*)malloc_check(cap * sizeof(int), path);
    unsigned char** byid = NULL;
    int* lenbyid = NULL;
    int rc = -1, maxid = -1, line = 0, V = 0, eot = -1;  // declared before the first goto (C++ builds)
    size_t p = 0;
    while (p < n) {
        line++;
        size_t e = p;
        while (e < n && buf[e] != '\n') { e++; }
        size_t le = e;
        if (le > p && buf[le - 1] == '\r') { le--; }
        if (le == p) { p = e + 1; continue; }
        size_t sp = p;
        while (sp < le && buf[sp] != ' ') { sp++; }
        unsigned char tok[BPE_MAX_TOKEN_BYTES + 8];
        int tl = (sp < le) ? bpe_b64_decode(buf + p, sp - p, tok, BPE_MAX_TOKEN_BYTES) : -1;
        if (tl <= 0) { set_err(err, "%s: line %d: expected \"<base64 token> <rank>\"", path, line); goto done; }
        long v = 0;
        size_t d = sp + 1;
        if (d >= le) { set_err(err, "%s: line %d: missing rank", path, line); goto done; }
        for (; d < le; d++) {
            if (buf[d] < '0' || buf[d] > '9' || v > 100000000) { set_err(err, "%s: line %d: bad rank", path, line); goto done; }
            v = v * 10 + (buf[d] - '0');
        }
        if (count == cap) {
            cap *= 2;
            toks = (unsigned char**)realloc(toks, cap * sizeof(unsigned char*));
            lens = (int*)realloc(lens, cap * sizeof(int));
            ids = (int*)realloc(ids, cap * sizeof(int));
            if (!toks || !lens || !ids) { die("out of memory reading %s", path); }
        }
        toks[count] = (unsigned char*)malloc_check((size_t)tl, "token");
        memcpy(toks[count], tok, (size_t)tl);
        lens[count] = tl;
        ids[count] = (int)v;
        count++;
        if (v > maxid) { maxid = (int)v; }
        p = e + 1;
    }
    if (count == 0) { set_err(err, "%s: no tokens", path); goto done; }
    // ids must be 0..V-1 with at most one hole, which becomes <|endoftext|>; without a hole,
    // <|endoftext|> is appended
    V = maxid + 1;
    if ((size_t)V == count) { V++; }
    if ((size_t)V != count + 1) {
        set_err(err, "%s: %zu tokens with ids up to %d: ids must be 0..n-1 with at most one gap (for <|endoftext|>)", path, count, maxid);
        goto done;
    }
    byid = (unsigned char**)calloc_check((size_t)V, sizeof(unsigned char*), path);
    lenbyid = (int*)calloc_check((size_t)V, sizeof(int), path);
    for (size_t i = 0; i < count; i++) {
        if (byid[ids[i]] != NULL) { set_err(err, "%s: rank %d appears twice", path, ids[i]); goto done; }
        byid[ids[i]] = toks[i];
        lenbyid[ids[i]] = lens[i];
    }
    for (int i = 0; i < V; i++) { if (byid[i] == NULL) { eot = i; break; } }
    byid[eot] = (unsigned char*)bpe_eot_text;
    lenbyid[eot] = (int)strlen(bpe_eot_text);
    rc = bpe_build(bpe, V, eot, (const unsigned char* const*)byid, lenbyid, path, err);
done:
    for (size_t i = 0; i < count; i++) { free(toks[i]); }
    free(toks); free(lens); free(ids); free(byid); free(lenbyid); free(buf);
    return rc;
}

static void bpe_save_tiktoken(const BPE* bpe, const char* path) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    AtomicFile af;
    atomic_open(&af, path);
    char* line = (char*)malloc_check(4 * BPE_MAX_TOKEN_BYTES + 64, "tiktoken line");
    for (int id = 0; id < bpe->vocab_size; id++) {
        if (id == bpe->eot) { continue; }
        const unsigned char* s = bpe->arena + bpe->tok_off[id];
        int n = bpe->tok_len[id];
        int o = 0;
        for (int i = 0; i < n; i += 3) {
            uint32_t x = (uint32_t)s[i] << 16;
            if (i + 1 < n) { x |= (uint32_t)s[i + 1] << 8; }
            if (i + 2 < n) { x |= s[i + 2]; }
            line[o++] = b64[(x >> 18) & 63];
            line[o++] = b64[(x >> 12) & 63];
            line[o++] = (i + 1 < n) ? b64[(x >> 6) & 63] : '=';
            line[o++] = (i + 2 < n) ? b64[x & 63] : '=';
        }
        o += sprintf(line + o, " %d\n", id);
        atomic_write(&af, line, 1, (size_t)o);
    }
    free(line);
    atomic_commit(&af);
}

// llm.c's decode-only tokenizer file (version 2, with the end-of-text id)
static void bpe_write_llmc_tokenizer(const BPE* bpe, const char* path) {
    const unsigned char** toks = (const unsigned char**)malloc_check((size_t)bpe->vocab_size * sizeof(unsigned char*), "tokens");
    for (int i = 0; i < bpe->vocab_size; i++) { toks[i] = bpe->arena + bpe->tok_off[i]; }
    tokenizer_write(path, bpe->vocab_size, bpe->eot, toks, bpe->tok_len);
    free(toks);
}

// ----------------------------------------------------------------------------
// encoding

// Per-thread scratch: merge arrays and a cache of recently merged pieces.
#define BPE_CACHE_SLOTS (1 << 16)    // power of two
#ifndef BPE_CACHE_MAX_PIECE
#define BPE_CACHE_MAX_PIECE 64       // longer pieces are rarely repeated (and are mostly Japanese)
#endif
#ifndef BPE_HEAP_MIN
#define BPE_HEAP_MIN 48              // pieces of at least this many bytes merge with a heap
#endif

typedef struct {
    uint64_t hash;      // 0 = empty
    uint32_t key_off;   // piece bytes in key_arena
    uint32_t ids_off;   // ids in id_arena
    uint16_t key_len;
    uint16_t n_ids;
} BpeCacheSlot;

typedef struct BpeWork {
    int* ids; int* ranks; int* prev; int* next; uint64_t* heap;
    size_t cap;
    BpeCacheSlot* slots;
    unsigned char* key_arena; size_t key_len;
    int* id_arena; size_t id_len;
    size_t used;
} BpeWork;

#define BPE_CACHE_KEY_BYTES (BPE_CACHE_SLOTS * 16)
#define BPE_CACHE_IDS (BPE_CACHE_SLOTS * 8)

static BpeWork* bpe_work_new(void) {
    BpeWork* w = (BpeWork*)calloc_check(1, sizeof(BpeWork), "BPE work");
    w->slots = (BpeCacheSlot*)calloc_check(BPE_CACHE_SLOTS, sizeof(BpeCacheSlot), "BPE cache");
    w->key_arena = (unsigned char*)malloc_check(BPE_CACHE_KEY_BYTES, "BPE cache");
    w->id_arena = (int*)malloc_check(BPE_CACHE_IDS * sizeof(int), "BPE cache");
    return w;
}

static void bpe_work_free(BpeWork* w) {
    if (w == NULL) { return; }
    free(w->ids); free(w->ranks); free(w->prev); free(w->next); free(w->heap);
    free(w->slots); free(w->key_arena); free(w->id_arena);
    free(w);
}

static void bpe_work_reserve(BpeWork* w, size_t n) {
    if (n <= w->cap) { return; }
    size_t cap = w->cap ? w->cap : 256;
    while (cap < n) { cap *= 2; }
    free(w->ids); free(w->ranks); free(w->prev); free(w->next); free(w->heap);
    w->ids = (int*)malloc_check(cap * sizeof(int), "BPE scratch");
    w->ranks = (int*)malloc_check(cap * sizeof(int), "BPE scratch");
    w->prev = (int*)malloc_check(cap * sizeof(int), "BPE scratch");
    w->next = (int*)malloc_check(cap * sizeof(int), "BPE scratch");
    w->heap = (uint64_t*)malloc_check(2 * cap * sizeof(uint64_t), "BPE scratch");
    w->cap = cap;
}

// tiktoken's merge loop on an array: merge the leftmost lowest-rank pair until none is left.
// O(n^2) but with tiny constants; for short pieces. Returns the number of ids left in ids.
static int bpe_merge_small(const BPE* bpe, const unsigned char* s, int* ids, int* ranks, int n) {
    for (int i = 0; i + 1 < n; i++) { ranks[i] = bpe->byte_pair[(s[i] << 8) | s[i + 1]]; }
    while (n > 1) {
        int best = INT_MAX, at = -1;
        for (int i = 0; i + 1 < n; i++) {
            if (ranks[i] < best) { best = ranks[i]; at = i; }
        }
        if (at < 0) { break; }
        ids[at] = best;  // rank == id of the merged token
        for (int i = at + 1; i + 1 < n; i++) { ids[i] = ids[i + 1]; ranks[i] = ranks[i + 1]; }
        n--;
        if (at > 0) { ranks[at - 1] = bpe_pair(bpe, ids[at - 1], ids[at]); }
        if (at + 1 < n) { ranks[at] = bpe_pair(bpe, ids[at], ids[at + 1]); }
    }
    return n;
}

// min-heap of (rank << 32 | position): ties on rank go to the leftmost position, as in tiktoken
static inline void bpe_heap_push(uint64_t* h, int* n, uint64_t v) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) >> 1;
        if (h[p] <= v) { break; }
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}
static inline uint64_t bpe_heap_pop(uint64_t* h, int* n) {
    uint64_t top = h[0];
    uint64_t v = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) { break; }
        if (c + 1 < *n && h[c + 1] < h[c]) { c++; }
        if (v <= h[c]) { break; }
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) { h[i] = v; }
    return top;
}

// The same merges for long pieces with a linked list and a heap with lazy deletion: an entry
// is stale when its left part was merged away or its pair rank changed since.
static int bpe_merge_heap(const BPE* bpe, const unsigned char* s, BpeWork* w, int n) {
    int* ids = w->ids; int* ranks = w->ranks; int* prev = w->prev; int* next = w->next;
    uint64_t* heap = w->heap;
    int hn = 0;
    for (int i = 0; i < n; i++) {
        prev[i] = i - 1;
        next[i] = (i + 1 < n) ? i + 1 : -1;
        ranks[i] = (i + 1 < n) ? bpe->byte_pair[(s[i] << 8) | s[i + 1]] : INT_MAX;
        if (ranks[i] != INT_MAX) { bpe_heap_push(heap, &hn, ((uint64_t)ranks[i] << 32) | (uint32_t)i); }
    }
    while (hn > 0) {
        uint64_t top = bpe_heap_pop(heap, &hn);
        int i = (int)(uint32_t)top;
        int r = (int)(top >> 32);
        if (ids[i] < 0 || ranks[i] != r) { continue; }  // stale
        int j = next[i];
        ids[i] = r;
        ids[j] = -1;                    // j is gone
        next[i] = next[j];
        if (next[j] >= 0) { prev[next[j]] = i; }
        ranks[i] = (next[i] >= 0) ? bpe_pair(bpe, ids[i], ids[next[i]]) : INT_MAX;
        if (ranks[i] != INT_MAX) { bpe_heap_push(heap, &hn, ((uint64_t)ranks[i] << 32) | (uint32_t)i); }
        int p = prev[i];
        if (p >= 0) {
            ranks[p] = bpe_pair(bpe, ids[p], ids[i]);
            if (ranks[p] != INT_MAX) { bpe_heap_push(heap, &hn, ((uint64_t)ranks[p] << 32) | (uint32_t)p); }
        }
    }
    int m = 0;
    for (int i = 0; i >= 0; i = next[i]) { ids[m++] = ids[i]; }
    return m;
}

static void bpe_encode_piece(const BPE* bpe, BpeWork* w, const unsigned char* s, size_t n, BpeIds* out) {
    if (n == 1) { bpe_ids_push(out, bpe->byte_token[s[0]]); return; }
    int id = (n <= (size_t)bpe->max_len) ? bpe_lookup(bpe, s, n) : -1;
    if (id >= 0) { bpe_ids_push(out, id); return; }
    uint64_t h = 0;
    if (w != NULL && n <= BPE_CACHE_MAX_PIECE) {
        h = bpe_hash_bytes(s, n) | 1;
        uint32_t i = (uint32_t)h & (BPE_CACHE_SLOTS - 1);
        for (;;) {
            BpeCacheSlot* sl = &w->slots[i];
            if (sl->hash == 0) { break; }
            if (sl->hash == h && sl->key_len == n && memcmp(w->key_arena + sl->key_off, s, n) == 0) {
                bpe_ids_reserve(out, sl->n_ids);
                memcpy(out->data + out->len, w->id_arena + sl->ids_off, sl->n_ids * sizeof(int));
                out->len += sl->n_ids;
                return;
            }
            i = (i + 1) & (BPE_CACHE_SLOTS - 1);
        }
    }
    BpeWork local;
    BpeWork* x = w;
    if (x == NULL) { memset(&local, 0, sizeof(local)); x = &local; }
    bpe_work_reserve(x, n);
    for (size_t i = 0; i < n; i++) { x->ids[i] = bpe->byte_token[s[i]]; }
    int m = (n < BPE_HEAP_MIN) ? bpe_merge_small(bpe, s, x->ids, x->ranks, (int)n) : bpe_merge_heap(bpe, s, x, (int)n);
    bpe_ids_reserve(out, (size_t)m);
    memcpy(out->data + out->len, x->ids, (size_t)m * sizeof(int));
    out->len += (size_t)m;
    if (x == &local) {
        free(local.ids); free(local.ranks); free(local.prev); free(local.next); free(local.heap);
        return;
    }
    if (h != 0) {
        // insert; when the cache is half full or an arena is, start over (simple and bounded)
        if (w->used >= BPE_CACHE_SLOTS / 2 || w->key_len + n > BPE_CACHE_KEY_BYTES || w->id_len + (size_t)m > BPE_CACHE_IDS) {
            memset(w->slots, 0, BPE_CACHE_SLOTS * sizeof(BpeCacheSlot));
            w->used = w->key_len = w->id_len = 0;
        }
        uint32_t i = (uint32_t)h & (BPE_CACHE_SLOTS - 1);
        while (w->slots[i].hash != 0) { i = (i + 1) & (BPE_CACHE_SLOTS - 1); }
        BpeCacheSlot* sl = &w->slots[i];
        sl->hash = h;
        sl->key_off = (uint32_t)w->key_len;
        sl->key_len = (uint16_t)n;
        sl->ids_off = (uint32_t)w->id_len;
        sl->n_ids = (uint16_t)m;
        memcpy(w->key_arena + w->key_len, s, n);
        w->key_len += n;
        memcpy(w->id_arena + w->id_len, x->ids, (size_t)m * sizeof(int));
        w->id_len += (size_t)m;
        w->used++;
    }
}

static void bpe_encode_ordinary(const BPE* bpe, BpeWork* w, const unsigned char* text, size_t len, BpeIds* out) {
    bpe_unicode_init();
    size_t p = 0;
    while (p < len) {
        size_t q = bpe_piece_end_nocheck(text, len, p);
        bpe_encode_piece(bpe, w, text + p, q - p, out);
        p = q;
    }
}

static void bpe_encode_special(const BPE* bpe, BpeWork* w, const unsigned char* text, size_t len, BpeIds* out) {
    // split at each literal "<|endoftext|>", which becomes the eot id
    const size_t el = sizeof(bpe_eot_text) - 1;
    size_t p = 0, q = 0;
    while (q + el <= len) {
        const unsigned char* lt = (const unsigned char*)memchr(text + q, '<', len - el + 1 - q);
        if (lt == NULL) { break; }
        q = (size_t)(lt - text);
        if (memcmp(text + q, bpe_eot_text, el) == 0) {
            bpe_encode_ordinary(bpe, w, text + p, q - p, out);
            bpe_ids_push(out, bpe->eot);
            q += el;
            p = q;
        } else {
            q++;
        }
    }
    bpe_encode_ordinary(bpe, w, text + p, len - p, out);
}

static void bpe_encode(const BPE* bpe, BpeWork* w, const unsigned char* text, size_t len, int allow_special, BpeIds* out) {
    // work on a copy of the buffer header: callers often keep one BpeIds per document in an
    // array, and threads updating neighbouring headers on every token would share cache lines
    BpeIds local = *out;
    if (allow_special) { bpe_encode_special(bpe, w, text, len, &local); }
    else { bpe_encode_ordinary(bpe, w, text, len, &local); }
    *out = local;
}

// A place to cut text so that encoding the parts one after the other gives exactly the
// tokens of the whole (for encoding one big document on several threads): the first p >= from
// where text[p-2], text[p-1], text[p] are an ASCII non-space, '\n', an ASCII non-space; len if
// there is none. Why it is safe: the pattern has no look-behind, so the match at p does not
// depend on what precedes p. The '\n' is a whitespace run of one character followed by a
// non-space, so in the whole text it is a piece of its own ("\s+(?!\S)" fails, the final
// "\s+" takes it); at the end of the first part it is a piece of its own as well. A longer
// run would not be safe: "\n\n" before a letter is two pieces, but at the end of a text one.
// The piece before it ends at p-1 either way, and "<|endoftext|>" holds no '\n'.
static size_t bpe_safe_split(const unsigned char* text, size_t len, size_t from) {
    size_t p = from > 2 ? from : 2;
    while (p < len) {
        const unsigned char* nl = (const unsigned char*)memchr(text + p - 1, '\n', len - (p - 1));
        if (nl == NULL) { return len; }
        p = (size_t)(nl - text) + 1;
        if (p >= 2 && p < len && text[p] < 0x80 && bpe_ascii_class[text[p]] != BPE_SPACE &&
            text[p - 2] < 0x80 && bpe_ascii_class[text[p - 2]] != BPE_SPACE) {
            return p;
        }
        p++;
    }
    return len;
}

// ----------------------------------------------------------------------------
// decoding

static int bpe_decode(const BPE* bpe, const int* ids, size_t n, BpeBytes* out) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= bpe->vocab_size) { return -1; }
    }
    for (size_t i = 0; i < n; i++) {
        bpe_bytes_append(out, bpe->arena + bpe->tok_off[ids[i]], (size_t)bpe->tok_len[ids[i]]);
    }
    return 0;
}

#endif // LLMC_BPE_H
