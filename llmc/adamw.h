// AdamW (decoupled weight decay, Loshchilov & Hutter) and global-norm gradient clipping.
// Same arithmetic as torch.optim.AdamW: bias-corrected moments, decay applied to the
// parameter before the Adam step.
#ifndef LLMC_ADAMW_H
#define LLMC_ADAMW_H

#include <math.h>
#include <stddef.h>

// t is the 1-based step count used for bias correction. grad_scale multiplies every
// gradient first (gradient clipping), so the clipped gradient is never materialized.
static void adamw_update(float* params, const float* grads, float* m, float* v, size_t n,
                         float lr, float beta1, float beta2, float eps, float weight_decay,
                         float grad_scale, int t) {
    float bc1 = 1.0f - powf(beta1, (float)t);
    float bc2 = 1.0f - powf(beta2, (float)t);
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1;
        float vhat = vi / bc2;
        params[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * params[i]);
    }
}

// Sum of squares of n values, in double and in fixed-size blocks so the result does not
// depend on the number of threads.
static double sum_of_squares(const float* x, size_t n) {
    const size_t block = 1 << 16;
    size_t nblocks = (n + block - 1) / block;
    double partial[nblocks > 0 ? nblocks : 1];  // 8 bytes per 64K values: small even at 1.5B params
    #pragma omp parallel for
    for (size_t bi = 0; bi < nblocks; bi++) {
        size_t lo = bi * block;
        size_t hi = lo + block < n ? lo + block : n;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) { s += (double)x[i] * x[i]; }
        partial[bi] = s;
    }
    double total = 0.0;
    for (size_t bi = 0; bi < nblocks; bi++) { total += partial[bi]; }
    return total;
}

// The factor torch.nn.utils.clip_grad_norm_ applies: min(1, max_norm / (norm + 1e-6)).
// max_norm <= 0 turns clipping off.
static float grad_clip_scale(float norm, float max_norm) {
    if (max_norm <= 0.0f) { return 1.0f; }
    float c = max_norm / (norm + 1e-6f);
    return c < 1.0f ? c : 1.0f;
}

#endif // LLMC_ADAMW_H
