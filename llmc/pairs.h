// Preference pairs for DPO: the "pair file" that dev/data/dpo_prepare writes and the trainer
// reads (dev/data/DPO.md tells the whole story).
//
// Layout (little-endian, like every file of this project):
//   header: 256 x int32
//     [0] magic 20241203
//     [1] version 1
//     [2] npairs
//     [3] T: a row is T+1 tokens, inputs row[0..T-1], targets row[1..T]
//     [4] has_ref: 1 if the reference log-probs follow the pairs, else 0
//     [5] [6] ref_hash, low and high 32 bits: a uint64 naming the reference model the log-probs
//         came from (set by the trainer that computed them; 0 without them)
//     [7] vocab: every token is < vocab (the tokenizer's vocabulary size, EOT included)
//     [8] eot: the <|endoftext|> id (rows start with it and are padded with it)
//     [9..255] 0
//   then npairs records, each:
//     chosen row    (T+1) x uint32
//     rejected row  (T+1) x uint32
//     chosen mask   T x uint8: mask[t] = 1 means target t (= row[t+1]) is a token of the reply,
//                   and its log-prob counts in log pi(reply | prompt); 0 for the prompt and padding
//     rejected mask T x uint8
//   then, only if has_ref: npairs x 2 float32, the reference model's log-prob sums of the chosen
//     and rejected replies of each pair (sum over the masked targets of log p(target)), so DPO
//     needs no reference forward pass per step. Each must be finite and <= 0 (the reader refuses
//     others: a writer clamps a sum that float rounding pushed a hair above 0).
// The file size is exactly 1024 + npairs * (8(T+1) + 2T) + has_ref * 8 npairs bytes.
//
// dev/data/dpo_prepare writes both rows of a pair with the same prompt tokens. The reader checks
// what the trainer relies on (sizes, header fields, every token < vocab, mask bytes 0/1, at least
// one masked target per row, finite reference log-probs <= 0), so the trainer can trust what it gets:
//   static int  pairs_read(const char* path, PairFile* pf, char* err);  0, or -1 with err
//               (LLMC_ERRLEN bytes) naming the file and what is wrong; pf is then empty
//   static void pairs_write(const char* path, const PairFile* pf);      atomic (temp file,
//               fsync, rename); dies with a message naming the file on any error
//   static void pairs_free(PairFile* pf);
// In memory, pair i's chosen row is tokens + (2i)(T+1), its rejected row tokens + (2i+1)(T+1),
// their masks mask + (2i)T and mask + (2i+1)T, their reference log-probs ref_logp[2i], [2i+1].
#ifndef LLMC_PAIRS_H
#define LLMC_PAIRS_H

#include <math.h>
#include "utils.h"

#define PAIRS_MAGIC 20241203
#define PAIRS_VERSION 1
#define PAIRS_HEADER_INTS 256
#define PAIRS_MAX_T (1 << 20)          // as dev/data/dpo_prepare's --seq-len
#define PAIRS_MAX_VOCAB (1 << 24)      // a bound that catches garbage, far above real vocabularies

typedef struct {
    int npairs, T, has_ref, vocab, eot;
    uint64_t ref_hash;
    uint32_t* tokens;   // npairs*2*(T+1): pair i chosen row at (2i)*(T+1), rejected at (2i+1)*(T+1)
    uint8_t* mask;      // npairs*2*T, same order
    float* ref_logp;    // npairs*2 (chosen, rejected) or NULL
} PairFile;

static void pairs_free(PairFile* pf) {
    free(pf->tokens);
    free(pf->mask);
    free(pf->ref_logp);
    memset(pf, 0, sizeof(*pf));
}

// bytes of one pair record (two rows and two masks)
static long long pairs_record_bytes(long long T) { return 2 * (T + 1) * 4 + 2 * T; }

// pairs_read's work on the open file: 0, or -1 with err (C++ builds of this header, nvcc and
// the CUDA emulation, forbid a goto past initializations: hence early returns here)
static int pairs_read_open(FILE* f, const char* path, PairFile* pf, char* err) {
    int32_t h[PAIRS_HEADER_INTS];
    long fsize = file_size_of(f);
    if (fsize < 0) { set_err(err, "%s: cannot determine the file size", path); return -1; }
    if (fsize < (long)sizeof(h)) {
        set_err(err, "%s: file is truncated: %ld bytes, shorter than the %zu-byte pair-file header", path, fsize, sizeof(h));
        return -1;
    }
    if (fread_exact(h, sizeof(int32_t), PAIRS_HEADER_INTS, f, path, err) != 0) { return -1; }
    if (h[0] != PAIRS_MAGIC) {
        set_err(err, "%s: bad magic %d (expected %d): not a preference-pair file (dev/data/dpo_prepare writes them)", path, h[0], PAIRS_MAGIC);
        return -1;
    }
    if (h[1] != PAIRS_VERSION) { set_err(err, "%s: unsupported pair-file version %d (supported: %d)", path, h[1], PAIRS_VERSION); return -1; }
    if (h[2] <= 0) { set_err(err, "%s: bad pair count %d in the header (must be > 0)", path, h[2]); return -1; }
    if (h[3] <= 0 || h[3] > PAIRS_MAX_T) { set_err(err, "%s: bad sequence length T = %d in the header (expected 1..%d)", path, h[3], PAIRS_MAX_T); return -1; }
    if (h[4] != 0 && h[4] != 1) { set_err(err, "%s: bad has_ref flag %d in the header (expected 0 or 1)", path, h[4]); return -1; }
    if (h[7] <= 0 || h[7] > PAIRS_MAX_VOCAB) { set_err(err, "%s: bad vocabulary size %d in the header (expected 1..%d)", path, h[7], PAIRS_MAX_VOCAB); return -1; }
    if (h[8] < 0 || h[8] >= h[7]) { set_err(err, "%s: bad EOT id %d in the header (expected 0..%d, below the vocabulary size)", path, h[8], h[7] - 1); return -1; }
    for (int i = 9; i < PAIRS_HEADER_INTS; i++) {
        if (h[i] != 0) { set_err(err, "%s: header[%d] = %d, expected 0 (reserved in version %d)", path, i, h[i], PAIRS_VERSION); return -1; }
    }
    if (h[4] == 0 && (h[5] != 0 || h[6] != 0)) {
        set_err(err, "%s: the header names a reference model (ref_hash) but has_ref is 0", path);
        return -1;
    }
    long long np = h[2], T = h[3];
    // 64-bit arithmetic: np < 2^31 and a record < 2^24 bytes, so no overflow
    long long expected = (long long)sizeof(h) + np * pairs_record_bytes(T) + (h[4] ? np * 8 : 0);
    if ((long long)fsize < expected) {
        set_err(err, "%s: file is truncated: the header says %lld pairs of T = %lld%s (%lld bytes), the file has %ld bytes",
                path, np, T, h[4] ? " with reference log-probs" : "", expected, fsize);
        return -1;
    }
    if ((long long)fsize > expected) {
        set_err(err, "%s: file has %lld trailing bytes after the %lld pairs of T = %lld%s the header announces",
                path, (long long)fsize - expected, np, T, h[4] ? " and their reference log-probs" : "");
        return -1;
    }
    pf->npairs = (int)np;
    pf->T = (int)T;
    pf->has_ref = h[4];
    pf->ref_hash = (uint64_t)(uint32_t)h[5] | ((uint64_t)(uint32_t)h[6] << 32);
    pf->vocab = h[7];
    pf->eot = h[8];
    size_t row = (size_t)T + 1;
    pf->tokens = (uint32_t*)malloc((size_t)np * 2 * row * sizeof(uint32_t));
    pf->mask = (uint8_t*)malloc((size_t)np * 2 * (size_t)T);
    pf->ref_logp = h[4] ? (float*)malloc((size_t)np * 2 * sizeof(float)) : NULL;
    if (pf->tokens == NULL || pf->mask == NULL || (h[4] && pf->ref_logp == NULL)) {
        set_err(err, "%s: out of memory holding %lld pairs of T = %lld", path, np, T);
        return -1;
    }
    static const char* side[2] = { "chosen", "rejected" };
    for (long long i = 0; i < np; i++) {
        uint32_t* tok = pf->tokens + (size_t)(2 * i) * row;
        uint8_t* m = pf->mask + (size_t)(2 * i) * (size_t)T;
        if (fread_exact(tok, sizeof(uint32_t), 2 * row, f, path, err) != 0) { return -1; }
        if (fread_exact(m, 1, 2 * (size_t)T, f, path, err) != 0) { return -1; }
        for (int s = 0; s < 2; s++) {
            for (size_t t = 0; t < row; t++) {
                uint32_t id = tok[s * row + t];
                if (id >= (uint32_t)pf->vocab) {
                    set_err(err, "%s: pair %lld, %s row: token %u at position %zu is out of range (vocabulary size %d)",
                            path, i, side[s], id, t, pf->vocab);
                    return -1;
                }
            }
            long targets = 0;
            for (long long t = 0; t < T; t++) {
                uint8_t b = m[s * T + t];
                if (b > 1) {
                    set_err(err, "%s: pair %lld, %s mask: byte %u at target %lld (expected 0 or 1)", path, i, side[s], b, t);
                    return -1;
                }
                targets += b;
            }
            if (targets == 0) {
                set_err(err, "%s: pair %lld, %s row has no masked target: its reply would not count", path, i, side[s]);
                return -1;
            }
        }
    }
    if (h[4]) {
        if (fread_exact(pf->ref_logp, sizeof(float), (size_t)np * 2, f, path, err) != 0) { return -1; }
        for (long long k = 0; k < 2 * np; k++) {
            float v = pf->ref_logp[k];
            // a log-prob sum is <= 0; NaN or inf means a broken reference pass
            if (!isfinite(v) || v > 0.0f) {
                set_err(err, "%s: pair %lld: the reference log-prob of the %s reply is %g (expected finite and <= 0)",
                        path, k / 2, side[k % 2], (double)v);
                return -1;
            }
        }
    }
    return 0;
}

static int pairs_read(const char* path, PairFile* pf, char* err) {
    memset(pf, 0, sizeof(*pf));
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { return -1; }
    int rc = pairs_read_open(f, path, pf, err);
    fclose(f);
    if (rc != 0) { pairs_free(pf); }
    return rc;
}

static void pairs_write(const char* path, const PairFile* pf) {
    // what the reader would refuse is a bug of the caller: say so before writing anything
    if (pf->npairs <= 0 || pf->T <= 0 || pf->T > PAIRS_MAX_T || pf->vocab <= 0 || pf->vocab > PAIRS_MAX_VOCAB ||
        pf->eot < 0 || pf->eot >= pf->vocab || (pf->has_ref != 0 && pf->has_ref != 1) || (pf->has_ref && pf->ref_logp == NULL) ||
        pf->tokens == NULL || pf->mask == NULL) {
        die("%s: refusing to write an inconsistent pair file (npairs %d, T %d, vocab %d, eot %d, has_ref %d)",
            path, pf->npairs, pf->T, pf->vocab, pf->eot, pf->has_ref);
    }
    int32_t h[PAIRS_HEADER_INTS];
    memset(h, 0, sizeof(h));
    h[0] = PAIRS_MAGIC;
    h[1] = PAIRS_VERSION;
    h[2] = pf->npairs;
    h[3] = pf->T;
    h[4] = pf->has_ref;
    if (pf->has_ref) {
        h[5] = (int32_t)(uint32_t)(pf->ref_hash & 0xffffffffu);
        h[6] = (int32_t)(uint32_t)(pf->ref_hash >> 32);
    }
    h[7] = pf->vocab;
    h[8] = pf->eot;
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, h, sizeof(int32_t), PAIRS_HEADER_INTS);
    size_t row = (size_t)pf->T + 1;
    for (size_t i = 0; i < (size_t)pf->npairs; i++) {
        atomic_write(&af, pf->tokens + 2 * i * row, sizeof(uint32_t), 2 * row);
        atomic_write(&af, pf->mask + 2 * i * (size_t)pf->T, 1, 2 * (size_t)pf->T);
    }
    if (pf->has_ref) { atomic_write(&af, pf->ref_logp, sizeof(float), 2 * (size_t)pf->npairs); }
    atomic_commit(&af);
}

#endif // LLMC_PAIRS_H
