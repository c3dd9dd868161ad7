// Sampling a next token from logits: temperature, then multinomial with a caller's coin,
// so the sampler itself holds no random state.
#ifndef LLMC_SAMPLER_H
#define LLMC_SAMPLER_H

#include <math.h>

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

#endif // LLMC_SAMPLER_H
