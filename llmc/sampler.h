// Sampling a next token from logits: temperature, then multinomial with a caller's coin,
// so the sampler itself holds no random state.
#ifndef LLMC_SAMPLER_H
#define LLMC_SAMPLER_H

#include <math.h>
#include <string.h>

// logits: n values (the real vocabulary, no padding). temperature <= 0 means greedy.
// coin: uniform in [0, 1).
static int sample_from_logits(const float* logits, int n, float temperature, float coin) {
    int argmax = 0;
    for (int i = 1; i < n; i++) { if (logits[i] > logits[argmax]) { argmax = i; } }
    if (temperature <= 0.0f) { return argmax; }
    float maxval = logits[argmax];
    double sum = 0.0;
    for (int i = 0; i < n; i++) { sum += exp((logits[i] - maxval) / temperature); }
    double target = coin * sum;
    double cdf = 0.0;
    for (int i = 0; i < n; i++) {
        cdf += exp((logits[i] - maxval) / temperature);
        if (target < cdf) { return i; }
    }
    return argmax;  // rounding at the very top of the cdf
}


// ----------------------------------------------------------------------------
// The decoding rules of the generator (dev/infer/generate.c), with Hugging Face transformers'
// conventions (4.36), so that a model exported there decodes the same way:
//   1. repetition penalty over every token of the history (prompt included), each token once:
//      a logit x becomes x / penalty if x > 0, else x * penalty   (penalty 1: off)
//   2. temperature: x / temperature                             (greedy when temperature <= 0)
//   3. top-k: keep the logits >= the k-th largest (ties at the k-th all kept)    (0: off)
//   4. top-p: in decreasing order of probability, keep a token while the probability of the
//      tokens before it is < top_p (so the most likely token always stays)        (1: off)
//   5. softmax over what is kept, then the first token whose cumulative probability exceeds
//      a uniform coin (inverse CDF, in index order).
// Greedy is the first maximum of the penalized logits. Logits are the real vocabulary only.
#include <stdlib.h>

typedef struct {
    float temperature;        // <= 0: greedy
    int top_k;                // 0: off
    float top_p;              // 1: off
    float repetition_penalty; // 1: off
} SamplerConfig;

static int sampler_argmax(const float* x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) { if (x[i] > x[best]) { best = i; } }
    return best;
}

// In place. seen: n bytes of scratch (a token counts once however often it occurs).
static void sampler_penalize(float* logits, int n, float penalty, const int* history, int nhist, unsigned char* seen) {
    if (penalty == 1.0f) { return; }
    memset(seen, 0, (size_t)n);
    for (int i = 0; i < nhist; i++) {
        int t = history[i];
        if (t < 0 || t >= n || seen[t]) { continue; }
        seen[t] = 1;
        logits[t] = logits[t] > 0.0f ? logits[t] / penalty : logits[t] * penalty;
    }
}

typedef struct { float value; int index; } SamplerItem;

// decreasing value, then increasing index: a total order, so ties resolve the same everywhere
static int sampler_item_cmp(const void* a, const void* b) {
    const SamplerItem* x = (const SamplerItem*)a;
    const SamplerItem* y = (const SamplerItem*)b;
    if (x->value != y->value) { return x->value > y->value ? -1 : 1; }
    return x->index - y->index;
}

// Steps 2-5 on penalized logits: probs (n) receives the distribution sampled from (zeros for
// what top-k / top-p removed); returns how many tokens it keeps. items: n scratch.
static int sampler_distribution(float* probs, const float* logits, int n, const SamplerConfig* sc, SamplerItem* items) {
    float inv_t = 1.0f / sc->temperature;
    int m = 0;
    for (int i = 0; i < n; i++) { items[m].value = logits[i] * inv_t; items[m].index = i; m++; }
    // sorting costs n log n per token; only top-k or top-p need the order
    int need_order = (sc->top_k > 0 && sc->top_k < n) || sc->top_p < 1.0f;
    if (need_order) { qsort(items, (size_t)m, sizeof(SamplerItem), sampler_item_cmp); }
    if (sc->top_k > 0 && sc->top_k < m) {
        float kth = items[sc->top_k - 1].value;
        int keep = sc->top_k;
        while (keep < m && items[keep].value >= kth) { keep++; }
        m = keep;
    }
    float maxv = -INFINITY;
    for (int i = 0; i < m; i++) { if (items[i].value > maxv) { maxv = items[i].value; } }
    double sum = 0.0;
    for (int i = 0; i < m; i++) { sum += exp((double)items[i].value - maxv); }
    if (sc->top_p < 1.0f) {
        double before = 0.0;
        int keep = 0;
        while (keep < m && before < sc->top_p) { before += exp((double)items[keep].value - maxv) / sum; keep++; }
        if (keep < 1) { keep = 1; }
        m = keep;
        sum = 0.0;
        for (int i = 0; i < m; i++) { sum += exp((double)items[i].value - maxv); }
    }
    for (int i = 0; i < n; i++) { probs[i] = 0.0f; }
    for (int i = 0; i < m; i++) { probs[items[i].index] = (float)(exp((double)items[i].value - maxv) / sum); }
    return m;
}

// Inverse CDF in index order; the last token with probability > 0 when rounding leaves the
// coin above the total.
static int sampler_pick(const float* probs, int n, float coin) {
    double cdf = 0.0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        if (probs[i] <= 0.0f) { continue; }
        cdf += probs[i];
        last = i;
        if (coin < cdf) { return i; }
    }
    return last;
}

// One next token under the rules; logits is modified (penalized). seen: n bytes, items: n.
static int sampler_next(float* logits, int n, const SamplerConfig* sc, const int* history, int nhist, float coin,
                        float* probs, unsigned char* seen, SamplerItem* items) {
    sampler_penalize(logits, n, sc->repetition_penalty, history, nhist, seen);
    if (sc->temperature <= 0.0f) { return sampler_argmax(logits, n); }
    sampler_distribution(probs, logits, n, sc, items);
    return sampler_pick(probs, n, coin);
}

#endif // LLMC_SAMPLER_H
