// Direct preference optimization (DPO, Rafailov et al. 2023) and its variants, on the host.
//
// A micro-batch of B rows holds B/2 preference pairs: row 2i is pair i's chosen response and
// row 2i+1 its rejected one, both after the pair's prompt; mask (B, T) is 1 on the response
// targets (llmc/pairs.h, written by dev/data/dpo_prepare). From the per-position cross-entropy
// losses of a forward pass (ce = -log p(target)):
//     logp[b] = -sum_t mask[b, t] * ce[b, t]                      log pi of row b's response
//     h_i     = (logp[2i] - ref[2i]) - (logp[2i+1] - ref[2i+1])   ref: the reference model's logp
// and the loss of the step is the mean over its pairs of
//     sigmoid  -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)   eps: label smoothing
//              (eps = 0 is DPO; eps > 0 the "conservative DPO" for noisy labels)
//     ipo      (h - 1 / (2 beta))^2       IPO (Azar et al. 2023), on summed log-probs
//     hinge    max(0, 1 - beta h)         SLiC's hinge (Zhao et al. 2023)
// dev/reference/align_reference.py implements the same in PyTorch.
//
// Why no DPO kernel: the loss only needs the per-position losses the forward pass already
// computes. Its gradient with respect to position t's cross-entropy is a per-row constant,
// dL/dce_t = -dL/dh on a chosen row and +dL/dh on a rejected one (times mask), which is exactly
// a per-token loss weight: the backward pass of weighted cross-entropy (llmc/crossentropy.h, CPU
// and GPU) then gives the DPO gradient. The weights are negative on chosen rows' responses (their
// likelihood goes up) and positive on rejected ones'.
//
// The reference log-probs come from one forward pass over all the pairs before training, with
// the initial model (the policy starts as the reference), stored in the pair file: no second
// model is held in memory.
#ifndef LLMC_DPO_H
#define LLMC_DPO_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "utils.h"
#include "rand.h"
#include "pairs.h"

enum { DPO_SIGMOID = 1, DPO_IPO = 2, DPO_HINGE = 3 };  // also the oracle's loss kinds
static const char* const DPO_LOSS_NAMES[4] = { "none", "sigmoid", "ipo", "hinge" };

typedef struct {
    int loss;               // DPO_SIGMOID, DPO_IPO or DPO_HINGE
    float beta;             // the KL penalty's strength (the reward scale)
    float label_smoothing;  // sigmoid only: the assumed probability that a label is flipped
} DpoConfig;

// "sigmoid" | "ipo" | "hinge" -> the kind, or 0
static int dpo_loss_parse(const char* s) {
    for (int k = 1; k < 4; k++) {
        if (strcmp(s, DPO_LOSS_NAMES[k]) == 0) { return k; }
    }
    return 0;
}

static double dpo_log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static double dpo_sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

// One pair's loss at log-ratio difference h, and its derivative dL/dh.
static double dpo_pair_loss(const DpoConfig* c, double h, double* dl_dh) {
    double b = c->beta;
    if (c->loss == DPO_IPO) {
        double d = h - 1.0 / (2.0 * b);
        *dl_dh = 2.0 * d;
        return d * d;
    }
    if (c->loss == DPO_HINGE) {
        double m = 1.0 - b * h;
        *dl_dh = m > 0 ? -b : 0.0;
        return m > 0 ? m : 0.0;
    }
    double e = c->label_smoothing;
    *dl_dh = -(1.0 - e) * b * dpo_sigmoid(-b * h) + e * b * dpo_sigmoid(b * h);
    return -(1.0 - e) * dpo_log_sigmoid(b * h) - e * dpo_log_sigmoid(-b * h);
}

// Sums over pairs, for the step's log line (divide by pairs); summed over processes as doubles.
#define DPO_NSTATS 9
typedef struct {
    double loss;             // sum of pair losses
    double reward_chosen;    // beta (logp - ref) of the chosen rows
    double reward_rejected;
    double correct;          // pairs whose chosen reward beats the rejected one
    double margin;           // reward_chosen - reward_rejected
    double logp_chosen;      // the policy's log-probs of the responses
    double logp_rejected;
    double logp_correct;     // pairs whose chosen reply is likelier than the rejected one under the policy
                             // (the preference a model holds before DPO, when every reward is 0)
    double pairs;
} DpoStats;

static void dpo_stats_reset(DpoStats* s) { memset(s, 0, sizeof(*s)); }
static double* dpo_stats_array(DpoStats* s) { return &s->loss; }  // DPO_NSTATS doubles, for all-reduces

// logp[b] = -sum_t mask * losses over row b's targets
static double dpo_row_logp(const float* losses, const float* mask, int T) {
    double s = 0.0;
    for (int t = 0; t < T; t++) {
        if (mask[t] != 0.0f) { s -= (double)mask[t] * losses[t]; }
    }
    return s;
}

// One pair with response log-probs lc (chosen) and lr (rejected) under the policy, refc and refr
// under the reference: adds its loss and statistics to st, returns dL/dh.
static double dpo_pair(const DpoConfig* c, double lc, double lr, double refc, double refr, DpoStats* st) {
    double h = (lc - refc) - (lr - refr);
    double dl_dh;
    double loss = dpo_pair_loss(c, h, &dl_dh);
    double rc = c->beta * (lc - refc), rr = c->beta * (lr - refr);
    st->loss += loss;
    st->reward_chosen += rc;
    st->reward_rejected += rr;
    st->correct += rc > rr ? 1.0 : 0.0;
    st->margin += rc - rr;
    st->logp_chosen += lc;
    st->logp_rejected += lr;
    st->logp_correct += lc > lr ? 1.0 : 0.0;
    st->pairs += 1.0;
    return dl_dh;
}

// The micro-batch's pairs: adds their losses and statistics to st, and writes the loss weights
// (B, T) whose weighted cross-entropy has the gradient of the sum of their DPO losses (the
// caller scales the backward pass by 1 / pairs in the step).
static void dpo_weights(const DpoConfig* c, const float* losses, const float* mask, const float* ref, int B, int T,
                        float* weights, DpoStats* st) {
    for (int i = 0; i < B / 2; i++) {
        int bc = 2 * i, br = 2 * i + 1;
        double lc = dpo_row_logp(losses + (size_t)bc * T, mask + (size_t)bc * T, T);
        double lr = dpo_row_logp(losses + (size_t)br * T, mask + (size_t)br * T, T);
        double dl_dh = dpo_pair(c, lc, lr, ref[bc], ref[br], st);
        for (int t = 0; t < T; t++) {
            weights[(size_t)bc * T + t] = (float)(-dl_dh * mask[(size_t)bc * T + t]);
            weights[(size_t)br * T + t] = (float)(dl_dh * mask[(size_t)br * T + t]);
        }
    }
}

// ----------------------------------------------------------------------------
// The pair loader: B/2 pairs per micro-batch from a pair file, shuffled per epoch.
// Where a micro-batch's pairs come from is a function of its number alone (pair positions
// (index * world + rank) * B/2 + j of an endless sequence of epochs, each a permutation drawn
// from the seed and the epoch), so a resumed run needs no saved loader state, and any number of
// processes reads disjoint pairs.
typedef struct {
    PairFile pf;
    int B, T, rank, world, shuffle;
    uint64_t seed;
    int* order;         // this epoch's permutation of the pairs
    long order_epoch;   // which epoch order holds (-1: none yet)
    int* inputs;        // (B, T)
    int* targets;       // (B, T)
    float* mask;        // (B, T) the response mask: 1 on a response target
    float* ref;         // (B) the reference log-probs of the rows (when the file has them)
    int* pair_index;    // (B/2) which pairs the batch holds
} PairLoader;

static int pairloader_init(PairLoader* pl, const char* path, int B, int T, int V, int rank, int world, int shuffle,
                           uint64_t seed, char* err) {
    memset(pl, 0, sizeof(*pl));
    if (B < 2 || B % 2 != 0) { return set_err(err, "%s: DPO needs an even batch size B (pairs of rows), got %d", path, B); }
    if (pairs_read(path, &pl->pf, err) != 0) { return -1; }
    if (pl->pf.T != T) {
        pairs_free(&pl->pf);
        return set_err(err, "%s holds rows of T=%d tokens, but the run's -t is %d (prepare the pairs with --seq-len %d, or "
                       "train with -t %d)", path, pl->pf.T, T, T, pl->pf.T);
    }
    if (pl->pf.vocab > V) {
        pairs_free(&pl->pf);
        return set_err(err, "%s was tokenized for a vocabulary of %d tokens, the model has %d", path, pl->pf.vocab, V);
    }
    pl->B = B;
    pl->T = T;
    pl->rank = rank;
    pl->world = world;
    pl->shuffle = shuffle;
    pl->seed = seed;
    pl->order = (int*)malloc_check((size_t)pl->pf.npairs * sizeof(int), "pair order");
    pl->order_epoch = -1;
    pl->inputs = (int*)malloc_check((size_t)B * T * sizeof(int), "pair inputs");
    pl->targets = (int*)malloc_check((size_t)B * T * sizeof(int), "pair targets");
    pl->mask = float_alloc_check((size_t)B * T, "pair mask");
    pl->ref = float_alloc_check((size_t)B, "pair reference log-probs");
    pl->pair_index = (int*)malloc_check((size_t)(B / 2) * sizeof(int), "pair indices");
    return 0;
}

// pairs per process per micro-batch
static int pairloader_pairs(const PairLoader* pl) { return pl->B / 2; }

// Fills rows 0 .. 2*count-1 of the batch with the given pairs (chosen, rejected, ...).
static void pairloader_fill(PairLoader* pl, const int* pairs, int count) {
    int T = pl->T;
    for (int j = 0; j < count; j++) {
        int p = pairs[j];
        for (int side = 0; side < 2; side++) {
            int row = 2 * j + side;
            const uint32_t* tok = pl->pf.tokens + (size_t)(2 * p + side) * (T + 1);
            const uint8_t* m = pl->pf.mask + (size_t)(2 * p + side) * T;
            for (int t = 0; t < T; t++) {
                pl->inputs[(size_t)row * T + t] = (int)tok[t];
                pl->targets[(size_t)row * T + t] = (int)tok[t + 1];
                pl->mask[(size_t)row * T + t] = (float)m[t];
            }
            pl->ref[row] = pl->pf.ref_logp != NULL ? pl->pf.ref_logp[2 * p + side] : NAN;
        }
    }
}

// Fills the batch with the pairs of micro-batch number index (this process's share).
static void pairloader_load(PairLoader* pl, long index) {
    int P = pl->B / 2, n = pl->pf.npairs;
    for (int j = 0; j < P; j++) {
        long pos = (index * pl->world + pl->rank) * (long)P + j;
        long epoch = pos / n;
        if (epoch != pl->order_epoch) {
            for (int i = 0; i < n; i++) { pl->order[i] = i; }
            if (pl->shuffle) {
                Rng rng;
                rng_init(&rng, pl->seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch + 1);
                rng_shuffle(&rng, pl->order, n);
            }
            pl->order_epoch = epoch;
        }
        pl->pair_index[j] = pl->order[pos % n];
    }
    pairloader_fill(pl, pl->pair_index, P);
}

static void pairloader_free(PairLoader* pl) {
    pairs_free(&pl->pf);
    free(pl->order);
    free(pl->inputs);
    free(pl->targets);
    free(pl->mask);
    free(pl->ref);
    free(pl->pair_index);
    memset(pl, 0, sizeof(*pl));
}

#endif // LLMC_DPO_H
