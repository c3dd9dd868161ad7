// Byte-level BPE training: learn a vocabulary from a corpus, or extend an existing one with
// merges learned on a new corpus while keeping every existing token id (vocabulary expansion
// for continued pretraining in another language).
//
//   BpeCounts c; bpe_counts_init(&c);
//   bpe_counts_add(&c, text, len);         // per document: GPT-2 pre-tokenization, count pieces
//   bpe_train(&c, base, vocab_size, max_token_bytes, &out, verbose);
//        base == NULL: from the 256 single bytes (ids 0..255 = byte values), new tokens from
//        256 up, <|endoftext|> last (id vocab_size - 1).
//        base != NULL: start from base's encoding of every piece; new tokens get ids
//        base->vocab_size.. (GPT-2: 50257..), every existing id and <|endoftext|> stay.
//   bpe_counts_free(&c);
//
// Algorithm: the corpus becomes its distinct pieces ("words") with counts, each a sequence
// of token ids. Each step merges the most frequent adjacent pair (counted over words times
// their counts; ties go to the smallest (left id, right id), so the result is deterministic)
// into a new token, in every word that contains it. Pair counts are updated incrementally:
// only the words that contain the merged pair are revisited (each pair keeps the list of
// words it occurs in), and a max-heap with lazy deletion finds the next best pair.
// A pair whose bytes already form a token (possible: "ab"+"c" and "a"+"bc") or would be longer
// than max_token_bytes is never merged, so token bytes stay unique and fit llm.c's file.
//
// The result encodes with the tiktoken rule of llmc/bpe.h (rank = id): all old merges come
// first (lower ids), then the new ones in the order they were learned. decode(encode(x)) == x
// holds for every vocabulary, since every byte is a token.
#ifndef LLMC_BPE_TRAIN_H
#define LLMC_BPE_TRAIN_H

#include <time.h>
#include "bpe.h"

// ----------------------------------------------------------------------------
// piece counts: bytes -> count

typedef struct {
    uint64_t* hash;      // per slot, 0 = empty
    uint32_t* off;       // piece bytes in arena
    uint32_t* len;
    uint64_t* count;
    uint64_t cap, n;     // slots (power of two), used
    BpeBytes arena;
    uint64_t total_bytes, total_pieces;
} BpeCounts;

static void bpe_counts_alloc(BpeCounts* c, uint64_t cap) {
    c->cap = cap;
    c->hash = (uint64_t*)calloc_check(cap, sizeof(uint64_t), "piece counts");
    c->off = (uint32_t*)malloc_check(cap * sizeof(uint32_t), "piece counts");
    c->len = (uint32_t*)malloc_check(cap * sizeof(uint32_t), "piece counts");
    c->count = (uint64_t*)malloc_check(cap * sizeof(uint64_t), "piece counts");
}

static void bpe_counts_init(BpeCounts* c) {
    memset(c, 0, sizeof(*c));
    bpe_counts_alloc(c, 1 << 16);
}

static void bpe_counts_free(BpeCounts* c) {
    free(c->hash); free(c->off); free(c->len); free(c->count);
    bpe_bytes_free(&c->arena);
    memset(c, 0, sizeof(*c));
}

static void bpe_counts_insert(BpeCounts* c, uint64_t h, uint32_t off, uint32_t len, uint64_t count) {
    uint64_t i = h & (c->cap - 1);
    while (c->hash[i] != 0) { i = (i + 1) & (c->cap - 1); }
    c->hash[i] = h; c->off[i] = off; c->len[i] = len; c->count[i] = count;
    c->n++;
}

// adds count to piece s; returns 1 if the piece is new, 0 if it was there
static int bpe_counts_add_piece(BpeCounts* c, const unsigned char* s, size_t n, uint64_t count) {
    uint64_t h = bpe_hash_bytes(s, n) | 1;
    uint64_t i = h & (c->cap - 1);
    while (c->hash[i] != 0) {
        if (c->hash[i] == h && c->len[i] == n && memcmp(c->arena.data + c->off[i], s, n) == 0) {
            c->count[i] += count;
            return 0;
        }
        i = (i + 1) & (c->cap - 1);
    }
    if (c->arena.len + n > UINT32_MAX) { die("BPE training: more than 4 GiB of distinct pieces"); }
    uint32_t off = (uint32_t)c->arena.len;
    bpe_bytes_append(&c->arena, s, n);
    if (2 * (c->n + 1) > c->cap) {  // grow and rehash
        BpeCounts old = *c;
        bpe_counts_alloc(c, old.cap * 2);
        c->n = 0;
        for (uint64_t k = 0; k < old.cap; k++) {
            if (old.hash[k] != 0) { bpe_counts_insert(c, old.hash[k], old.off[k], old.len[k], old.count[k]); }
        }
        free(old.hash); free(old.off); free(old.len); free(old.count);
    }
    bpe_counts_insert(c, h, off, (uint32_t)n, count);
    return 1;
}

// Pre-tokenizes text exactly as encoding does and counts its pieces.
static void bpe_counts_add(BpeCounts* c, const unsigned char* text, size_t len) {
    size_t p = 0;
    while (p < len) {
        size_t q = bpe_piece_end(text, len, p);
        bpe_counts_add_piece(c, text + p, q - p, 1);
        c->total_pieces++;
        p = q;
    }
    c->total_bytes += len;
}

// ----------------------------------------------------------------------------
// training

typedef struct {
    uint64_t key;        // (left << 32) | right
    int64_t count;       // weighted occurrences
    int* words;          // words it occurs (or occurred) in; may hold stale / repeated entries
    int nwords, capwords;
    int banned;          // never merge (bytes already a token, or too long)
} BpePairStat;

typedef struct {
    uint64_t* keys;      // slot -> key, UINT64_MAX empty
    int* idx;            // slot -> index into stats
    uint64_t mask;
    BpePairStat* stats;
    int n, cap;
} BpePairMap;

static void bpe_pairmap_grow(BpePairMap* m) {
    uint64_t cap = (m->mask + 1) * 2;
    uint64_t* keys = (uint64_t*)malloc_check(cap * sizeof(uint64_t), "pair map");
    int* idx = (int*)malloc_check(cap * sizeof(int), "pair map");
    for (uint64_t i = 0; i < cap; i++) { keys[i] = UINT64_MAX; }
    for (int j = 0; j < m->n; j++) {
        uint64_t i = bpe_hash_pair(m->stats[j].key) & (cap - 1);
        while (keys[i] != UINT64_MAX) { i = (i + 1) & (cap - 1); }
        keys[i] = m->stats[j].key;
        idx[i] = j;
    }
    free(m->keys); free(m->idx);
    m->keys = keys; m->idx = idx; m->mask = cap - 1;
}

// the stats of pair key, created (count 0) if new
static BpePairStat* bpe_pairmap_get(BpePairMap* m, uint64_t key) {
    uint64_t i = bpe_hash_pair(key) & m->mask;
    while (m->keys[i] != UINT64_MAX) {
        if (m->keys[i] == key) { return &m->stats[m->idx[i]]; }
        i = (i + 1) & m->mask;
    }
    if (2 * (uint64_t)(m->n + 1) > m->mask + 1) {
        bpe_pairmap_grow(m);
        return bpe_pairmap_get(m, key);
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1 << 16;
        m->stats = (BpePairStat*)realloc(m->stats, (size_t)m->cap * sizeof(BpePairStat));
        if (m->stats == NULL) { die("out of memory in BPE training (pair statistics)"); }
    }
    m->keys[i] = key;
    m->idx[i] = m->n;
    BpePairStat* s = &m->stats[m->n++];
    memset(s, 0, sizeof(*s));
    s->key = key;
    return s;
}

static void bpe_pair_add_word(BpePairStat* s, int w) {
    if (s->nwords > 0 && s->words[s->nwords - 1] == w) { return; }
    if (s->nwords == s->capwords) {
        s->capwords = s->capwords ? 2 * s->capwords : 4;
        s->words = (int*)realloc(s->words, (size_t)s->capwords * sizeof(int));
        if (s->words == NULL) { die("out of memory in BPE training (pair occurrences)"); }
    }
    s->words[s->nwords++] = w;
}

// max-heap of (count, key): the larger count first, then the smaller key
typedef struct { int64_t count; uint64_t key; } BpeHeapItem;

static inline int bpe_heap_before(BpeHeapItem a, BpeHeapItem b) {
    return a.count > b.count || (a.count == b.count && a.key < b.key);
}

static void bpe_maxheap_push(BpeHeapItem** h, int* n, int* cap, BpeHeapItem v) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 1 << 16;
        *h = (BpeHeapItem*)realloc(*h, (size_t)*cap * sizeof(BpeHeapItem));
        if (*h == NULL) { die("out of memory in BPE training (heap)"); }
    }
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!bpe_heap_before(v, (*h)[p])) { break; }
        (*h)[i] = (*h)[p];
        i = p;
    }
    (*h)[i] = v;
}

static BpeHeapItem bpe_maxheap_pop(BpeHeapItem* h, int* n) {
    BpeHeapItem top = h[0], v = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) { break; }
        if (c + 1 < *n && bpe_heap_before(h[c + 1], h[c])) { c++; }
        if (!bpe_heap_before(h[c], v)) { break; }
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) { h[i] = v; }
    return top;
}

// Learns merges until the vocabulary has vocab_size ids (end-of-text included). Returns 0, or
// -1 with err set when vocab_size is too small. Stops early (with a message) if no pair is
// left to merge.
static int bpe_train(const BpeCounts* c, const BPE* base, int vocab_size, int max_token_bytes, BPE* out, int verbose, char* err) {
    int V0 = base ? base->vocab_size : 257;   // scratch: 256 bytes + end-of-text
    if (vocab_size < V0) { return set_err(err, "vocabulary size %d is below the starting vocabulary's %d", vocab_size, V0); }
    if (max_token_bytes < 2 || max_token_bytes > 255) { return set_err(err, "max token bytes %d outside 2..255", max_token_bytes); }
    int nmerges = vocab_size - V0;
    int first_new = base ? base->vocab_size : 256;

    // token bytes of the growing vocabulary, by id (the scratch eot is placed at the end)
    int cap_ids = first_new + nmerges;
    unsigned char** tb = (unsigned char**)calloc_check((size_t)cap_ids + 1, sizeof(unsigned char*), "token bytes");
    int* tl = (int*)calloc_check((size_t)cap_ids + 1, sizeof(int), "token lengths");
    // a set of the bytes of every token, to refuse merges that would duplicate one
    BpeCounts known;
    bpe_counts_init(&known);
    unsigned char bytes256[256];
    for (int i = 0; i < 256; i++) { bytes256[i] = (unsigned char)i; }
    for (int id = 0; id < first_new; id++) {
        const unsigned char* s = bytes256 + id;
        int n = 1;
        if (base) { s = bpe_token_bytes(base, id, &n); }
        tb[id] = (unsigned char*)malloc_check((size_t)n, "token");
        memcpy(tb[id], s, (size_t)n);
        tl[id] = n;
        if (!base || id != base->eot) { bpe_counts_add_piece(&known, s, (size_t)n, 1); }
    }

    // words: every distinct piece as token ids (scratch: its bytes; extension: base's encoding)
    int nw = 0;
    for (uint64_t i = 0; i < c->cap; i++) { if (c->hash[i] != 0) { nw++; } }
    int64_t* wcount = (int64_t*)malloc_check((size_t)nw * sizeof(int64_t), "words");
    size_t* woff = (size_t*)malloc_check((size_t)nw * sizeof(size_t), "words");
    int* wlen = (int*)malloc_check((size_t)nw * sizeof(int), "words");
    int* wstamp = (int*)calloc_check((size_t)nw, sizeof(int), "words");
    BpeIds ids = {0};
    BpeWork* work = base ? bpe_work_new() : NULL;
    int w = 0;
    for (uint64_t i = 0; i < c->cap; i++) {
        if (c->hash[i] == 0) { continue; }
        const unsigned char* s = c->arena.data + c->off[i];
        size_t n = c->len[i];
        woff[w] = ids.len;
        if (base) { bpe_encode_piece(base, work, s, n, &ids); }
        else { for (size_t k = 0; k < n; k++) { bpe_ids_push(&ids, s[k]); } }
        wlen[w] = (int)(ids.len - woff[w]);
        wcount[w] = (int64_t)c->count[i];
        w++;
    }
    bpe_work_free(work);

    // initial pair counts and occurrence lists
    BpePairMap pm;
    memset(&pm, 0, sizeof(pm));
    pm.mask = (1 << 16) - 1;
    pm.keys = (uint64_t*)malloc_check((pm.mask + 1) * sizeof(uint64_t), "pair map");
    pm.idx = (int*)malloc_check((pm.mask + 1) * sizeof(int), "pair map");
    for (uint64_t i = 0; i <= pm.mask; i++) { pm.keys[i] = UINT64_MAX; }
    for (w = 0; w < nw; w++) {
        int* t = ids.data + woff[w];
        for (int k = 0; k + 1 < wlen[w]; k++) {
            BpePairStat* s = bpe_pairmap_get(&pm, ((uint64_t)(uint32_t)t[k] << 32) | (uint32_t)t[k + 1]);
            s->count += wcount[w];
            bpe_pair_add_word(s, w);
        }
    }
    BpeHeapItem* heap = NULL;
    int hn = 0, hcap = 0;
    for (int j = 0; j < pm.n; j++) {
        BpeHeapItem it = { pm.stats[j].count, pm.stats[j].key };
        bpe_maxheap_push(&heap, &hn, &hcap, it);
    }
    if (verbose) {
        printf("BPE training: %d distinct pieces, %d token ids in them, %d pairs; learning %d merges\n", nw, (int)ids.len, pm.n, nmerges);
    }

    // merge loop
    time_t t0 = time(NULL);
    int next_id = first_new, done = 0, skipped = 0;
    uint64_t* newpairs = NULL;
    int nnew = 0, capnew = 0;
    while (done < nmerges && hn > 0) {
        BpeHeapItem top = bpe_maxheap_pop(heap, &hn);
        BpePairStat* st = bpe_pairmap_get(&pm, top.key);
        if (st->banned || st->count <= 0) { continue; }
        if (st->count != top.count) {  // stale: counts only go down, re-queue with the current one
            BpeHeapItem it = { st->count, st->key };
            bpe_maxheap_push(&heap, &hn, &hcap, it);
            continue;
        }
        int a = (int)(top.key >> 32), b = (int)(uint32_t)top.key;
        int len = tl[a] + tl[b];
        unsigned char buf[512];
        if (len <= max_token_bytes) {
            memcpy(buf, tb[a], (size_t)tl[a]);
            memcpy(buf + tl[a], tb[b], (size_t)tl[b]);
        }
        if (len > max_token_bytes || bpe_counts_add_piece(&known, buf, (size_t)len, 1) == 0) {
            st->banned = 1;
            skipped++;
            continue;
        }
        int id = next_id++;
        tb[id] = (unsigned char*)malloc_check((size_t)len, "token");
        memcpy(tb[id], buf, (size_t)len);
        tl[id] = len;
        done++;
        // rewrite every word containing (a, b); the occurrence list is taken over first,
        // since adding pairs below may move the stats array
        int* occ = st->words;
        int nocc = st->nwords;
        st->words = NULL; st->nwords = st->capwords = 0;
        nnew = 0;
        for (int k = 0; k < nocc; k++) {
            int wi = occ[k];
            if (wstamp[wi] == done) { continue; }  // listed twice
            wstamp[wi] = done;
            int* t = ids.data + woff[wi];
            int n = wlen[wi];
            int has = 0;
            for (int q = 0; q + 1 < n; q++) { if (t[q] == a && t[q + 1] == b) { has = 1; break; } }
            if (!has) { continue; }  // a stale entry
            int64_t cw = wcount[wi];
            for (int q = 0; q + 1 < n; q++) {
                bpe_pairmap_get(&pm, ((uint64_t)(uint32_t)t[q] << 32) | (uint32_t)t[q + 1])->count -= cw;
            }
            int m = 0;
            for (int q = 0; q < n; q++) {
                if (q + 1 < n && t[q] == a && t[q + 1] == b) { t[m++] = id; q++; }
                else { t[m++] = t[q]; }
            }
            wlen[wi] = m;
            for (int q = 0; q + 1 < m; q++) {
                uint64_t key = ((uint64_t)(uint32_t)t[q] << 32) | (uint32_t)t[q + 1];
                BpePairStat* s = bpe_pairmap_get(&pm, key);
                s->count += cw;
                if (t[q] == id || t[q + 1] == id) {
                    bpe_pair_add_word(s, wi);
                    if (nnew == capnew) {
                        capnew = capnew ? 2 * capnew : 1024;
                        newpairs = (uint64_t*)realloc(newpairs, (size_t)capnew * sizeof(uint64_t));
                        if (newpairs == NULL) { die("out of memory in BPE training"); }
                    }
                    newpairs[nnew++] = key;
                }
            }
        }
        free(occ);
        // pairs with the new token are the only ones whose counts went up: queue them
        for (int k = 0; k < nnew; k++) {
            BpePairStat* s = bpe_pairmap_get(&pm, newpairs[k]);
            if (s->count > 0 && !s->banned) {
                BpeHeapItem it = { s->count, s->key };
                bpe_maxheap_push(&heap, &hn, &hcap, it);
            }
        }
        if (verbose && (done % 1000 == 0 || done == nmerges)) {
            printf("merge %d/%d: id %d = %d + %d (%d bytes), count %lld, %ld s\n", done, nmerges, id, a, b, len,
                   (long long)top.count, (long)(time(NULL) - t0));
            fflush(stdout);
        }
    }
    if (done < nmerges) {
        printf("BPE training: only %d merges possible (no pairs left); vocabulary has %d ids\n", done, next_id + (base ? 0 : 1));
    }
    if (verbose && skipped) { printf("BPE training: %d pairs skipped (bytes already a token, or longer than %d bytes)\n", skipped, max_token_bytes); }

    // the vocabulary: base ids, new ids, and for a scratch vocabulary the end-of-text last
    int V = next_id, eot;
    if (base) { eot = base->eot; }
    else {
        eot = V++;
        tb[eot] = (unsigned char*)malloc_check(sizeof(bpe_eot_text), "token");
        memcpy(tb[eot], bpe_eot_text, sizeof(bpe_eot_text) - 1);
        tl[eot] = (int)sizeof(bpe_eot_text) - 1;
    }
    int rc = bpe_build(out, V, eot, (const unsigned char* const*)tb, tl, "trained vocabulary", err);

    for (int i = 0; i < cap_ids + 1; i++) { free(tb[i]); }
    free(tb); free(tl);
    for (int j = 0; j < pm.n; j++) { free(pm.stats[j].words); }
    free(pm.stats); free(pm.keys); free(pm.idx);
    free(heap); free(newpairs);
    free(wcount); free(woff); free(wlen); free(wstamp);
    bpe_ids_free(&ids);
    bpe_counts_free(&known);
    return rc;
}

#endif // LLMC_BPE_TRAIN_H
