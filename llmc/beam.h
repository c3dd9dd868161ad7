// Beam search over any next-token model: the bookkeeping only (the caller runs the model on
// the live beams and moves their KV caches as beam_step says). Hugging Face transformers'
// conventions (4.36 BeamSearchScorer), so that generate() on an exported model finds the same
// sequences:
//   - a beam's score is the sum of its tokens' log-probabilities (log-softmax of the logits,
//     float32), after the repetition penalty when one is set (applied to the log-probabilities,
//     as transformers' processors are);
//   - the first step expands beam 0 only (the others start at -1e9: they hold the same prompt);
//   - each step ranks all nb * V continuations and takes the best 2 nb; walking them in order,
//     an end-of-text among the first nb closes a hypothesis (its tokens without the EOT, its
//     length with it), any other token extends a new beam, until nb beams are found;
//   - a hypothesis scores sum / generated_length^length_penalty; the nb best are kept;
//   - done when nb hypotheses exist and: early_stopping = 1 ("true"): at once; 0 ("false"):
//     when the worst kept one is at least the best running sum / current length^lp; 2
//     ("never"): the same with the longest possible length when length_penalty > 0;
//   - at the end (done, or max_new tokens), unless done, every live beam becomes a hypothesis
//     too, and the best-scoring hypothesis wins.
#ifndef LLMC_BEAM_H
#define LLMC_BEAM_H

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "llmc/utils.h"
#include "llmc/sampler.h"

typedef struct {
    double score;     // sum / length^lp
    int len;          // tokens (without the EOT)
    int eot;          // ended by end-of-text
    int* tokens;      // max_new
} BeamHyp;

typedef struct {
    int nb, V, max_new, eot;
    float length_penalty, repetition_penalty;
    int early_stopping;       // 0 false, 1 true, 2 never
    int step;                 // tokens generated so far by every live beam
    int done;
    float* beam_score;        // (nb) running sums
    int* beam_tokens;         // (nb, max_new)
    int* next_tokens;         // (nb, max_new) scratch for the reorder
    float* next_score;
    const int* prompt;        // for the repetition penalty
    int prompt_len;
    BeamHyp* hyps;            // nb kept hypotheses
    int nhyps;
    double worst;
    // scratch
    float* lp;                // (V)
    unsigned char* seen;      // (V)
    int* history;             // prompt_len + max_new
    float* cand_score;        // (2 nb)
    int* cand_index;          // (2 nb): beam * V + token
} BeamSearch;

static void beam_init(BeamSearch* bs, int nb, int V, int max_new, int eot, float length_penalty, int early_stopping,
                      float repetition_penalty, const int* prompt, int prompt_len) {
    memset(bs, 0, sizeof(*bs));
    bs->nb = nb; bs->V = V; bs->max_new = max_new; bs->eot = eot;
    bs->length_penalty = length_penalty; bs->early_stopping = early_stopping; bs->repetition_penalty = repetition_penalty;
    bs->prompt = prompt; bs->prompt_len = prompt_len;
    bs->beam_score = float_alloc_check((size_t)nb, "beam scores");
    bs->next_score = float_alloc_check((size_t)nb, "beam scores");
    bs->beam_tokens = (int*)malloc_check((size_t)nb * max_new * sizeof(int), "beam tokens");
    bs->next_tokens = (int*)malloc_check((size_t)nb * max_new * sizeof(int), "beam tokens");
    bs->hyps = (BeamHyp*)calloc_check((size_t)nb + 1, sizeof(BeamHyp), "beam hypotheses");
    for (int i = 0; i <= nb; i++) { bs->hyps[i].tokens = (int*)malloc_check((size_t)max_new * sizeof(int) + 1, "hypothesis"); }
    bs->lp = float_alloc_check((size_t)V, "log-probabilities");
    bs->seen = (unsigned char*)malloc_check((size_t)V, "penalty scratch");
    bs->history = (int*)malloc_check((size_t)(prompt_len + max_new) * sizeof(int) + 1, "beam history");
    bs->cand_score = float_alloc_check((size_t)2 * nb, "beam candidates");
    bs->cand_index = (int*)malloc_check((size_t)2 * nb * sizeof(int), "beam candidates");
    for (int b = 0; b < nb; b++) { bs->beam_score[b] = b == 0 ? 0.0f : -1e9f; }
    bs->worst = 1e9;
}

static void beam_free(BeamSearch* bs) {
    for (int i = 0; i <= bs->nb; i++) { free(bs->hyps[i].tokens); }
    free(bs->hyps); free(bs->beam_score); free(bs->next_score); free(bs->beam_tokens); free(bs->next_tokens);
    free(bs->lp); free(bs->seen); free(bs->history); free(bs->cand_score); free(bs->cand_index);
    memset(bs, 0, sizeof(*bs));
}

// transformers' BeamHypotheses.add: keep the nb best; `worst` is the lowest kept score
static void beam_add_hyp(BeamSearch* bs, const int* tokens, int len, int eot, float sum_logprobs, int generated_len) {
    double score = (double)sum_logprobs / pow((double)generated_len, (double)bs->length_penalty);
    if (bs->nhyps < bs->nb || score > bs->worst) {
        BeamHyp* h = &bs->hyps[bs->nhyps++];
        h->score = score; h->len = len; h->eot = eot;
        if (len > 0) { memcpy(h->tokens, tokens, (size_t)len * sizeof(int)); }
        if (bs->nhyps > bs->nb) {
            // drop the lowest (the first of equals, as Python's sorted() then del of index 0)
            int lo = 0, second = -1;
            for (int i = 1; i < bs->nhyps; i++) { if (bs->hyps[i].score < bs->hyps[lo].score) { lo = i; } }
            BeamHyp dropped = bs->hyps[lo];
            for (int i = lo; i + 1 < bs->nhyps; i++) { bs->hyps[i] = bs->hyps[i + 1]; }
            bs->hyps[bs->nhyps - 1] = dropped;  // keep its buffer for reuse
            bs->nhyps--;
            for (int i = 0; i < bs->nhyps; i++) { if (second < 0 || bs->hyps[i].score < bs->hyps[second].score) { second = i; } }
            bs->worst = bs->hyps[second].score;
        } else if (score < bs->worst) {
            bs->worst = score;
        }
    }
}

static int beam_is_done(const BeamSearch* bs, float best_sum, int generated_len) {
    if (bs->nhyps < bs->nb) { return 0; }
    if (bs->early_stopping == 1) { return 1; }
    int len = generated_len;
    if (bs->early_stopping == 2 && bs->length_penalty > 0.0f) { len = bs->max_new; }
    double best = (double)best_sum / pow((double)len, (double)bs->length_penalty);
    return bs->worst >= best;
}

// Insert (score, index) into the descending top list of size k (ties: the earlier index first).
static void beam_topk_insert(float* sc, int* ix, int* count, int k, float score, int index) {
    if (*count == k && !(score > sc[k - 1])) { return; }
    int i = *count < k ? (*count)++ : k - 1;
    while (i > 0 && score > sc[i - 1]) { sc[i] = sc[i - 1]; ix[i] = ix[i - 1]; i--; }
    sc[i] = score; ix[i] = index;
}

// One step. logits: (nb, Vp) of the live beams (only the first V of a row are real). Writes,
// for each new beam j, the old beam it continues (src[j]) and its new token (tokens[j]); the
// caller reorders its caches by src and feeds tokens. Returns 1 when the search is over (done,
// or max_new reached): then beam_best gives the result, and src/tokens need not be run.
static int beam_step(BeamSearch* bs, const float* logits, int Vp, int* src, int* tokens) {
    int nb = bs->nb, V = bs->V, k = 2 * nb;
    int count = 0;
    for (int b = 0; b < nb; b++) {
        const float* x = logits + (size_t)b * Vp;
        // log-softmax in float32 (max-shifted, the sum in double)
        float maxv = x[0];
        for (int v = 1; v < V; v++) { if (x[v] > maxv) { maxv = x[v]; } }
        double sum = 0.0;
        for (int v = 0; v < V; v++) { sum += exp((double)x[v] - maxv); }
        float lse = (float)log(sum);
        for (int v = 0; v < V; v++) { bs->lp[v] = (x[v] - maxv) - lse; }
        if (bs->repetition_penalty != 1.0f) {
            memcpy(bs->history, bs->prompt, (size_t)bs->prompt_len * sizeof(int));
            memcpy(bs->history + bs->prompt_len, bs->beam_tokens + (size_t)b * bs->max_new, (size_t)bs->step * sizeof(int));
            sampler_penalize(bs->lp, V, bs->repetition_penalty, bs->history, bs->prompt_len + bs->step, bs->seen);
        }
        float base = bs->beam_score[b];
        for (int v = 0; v < V; v++) {
            beam_topk_insert(bs->cand_score, bs->cand_index, &count, k, bs->lp[v] + base, b * V + v);
        }
    }
    int generated = bs->step + 1;  // transformers' cur_len - prompt length
    int found = 0;
    for (int r = 0; r < count && found < nb; r++) {
        int b = bs->cand_index[r] / V, v = bs->cand_index[r] % V;
        float score = bs->cand_score[r];
        if (v == bs->eot) {
            if (r >= nb) { continue; }
            beam_add_hyp(bs, bs->beam_tokens + (size_t)b * bs->max_new, bs->step, 1, score, generated);
        } else {
            src[found] = b;
            tokens[found] = v;
            bs->next_score[found] = score;
            found++;
        }
    }
    if (found < nb) { die("beam search: fewer than %d continuations besides end-of-text (vocabulary %d)", nb, V); }
    bs->done = bs->done || beam_is_done(bs, bs->cand_score[0], generated);
    // the new beams: their tokens so far, then this step's
    for (int j = 0; j < nb; j++) {
        memcpy(bs->next_tokens + (size_t)j * bs->max_new, bs->beam_tokens + (size_t)src[j] * bs->max_new, (size_t)bs->step * sizeof(int));
        bs->next_tokens[(size_t)j * bs->max_new + bs->step] = tokens[j];
        bs->beam_score[j] = bs->next_score[j];
    }
    int* t = bs->beam_tokens; bs->beam_tokens = bs->next_tokens; bs->next_tokens = t;
    bs->step++;
    if (bs->done || bs->step >= bs->max_new) {
        if (!bs->done) {
            for (int j = 0; j < nb; j++) {
                beam_add_hyp(bs, bs->beam_tokens + (size_t)j * bs->max_new, bs->step, 0, bs->beam_score[j], bs->step);
            }
        }
        return 1;
    }
    return 0;
}

// The best hypothesis (the last added of equal scores, as transformers' sorted() + pop()).
static const BeamHyp* beam_best(const BeamSearch* bs) {
    int best = -1;
    for (int i = 0; i < bs->nhyps; i++) { if (best < 0 || bs->hyps[i].score >= bs->hyps[best].score) { best = i; } }
    return best < 0 ? NULL : &bs->hyps[best];
}

// The kept hypotheses best first (transformers' order for num_return_sequences: sorted by
// score, then popped from the end, so of equal scores the later added comes first).
static int beam_ranked(const BeamSearch* bs, int* order) {
    for (int i = 0; i < bs->nhyps; i++) { order[i] = i; }
    for (int i = 1; i < bs->nhyps; i++) {  // insertion sort, descending; equal: later index first
        int x = order[i], j = i;
        while (j > 0 && (bs->hyps[order[j - 1]].score < bs->hyps[x].score ||
                         (bs->hyps[order[j - 1]].score == bs->hyps[x].score && order[j - 1] < x))) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = x;
    }
    return bs->nhyps;
}

#endif // LLMC_BEAM_H
