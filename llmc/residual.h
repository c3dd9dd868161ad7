// Residual connection: out = a + b; the gradient flows unchanged into both branches.
#ifndef LLMC_RESIDUAL_H
#define LLMC_RESIDUAL_H

#include <stddef.h>

static void residual_forward(float* out, const float* a, const float* b, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) { out[i] = a[i] + b[i]; }
}

static void residual_backward(float* da, float* db, const float* dout, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

#endif // LLMC_RESIDUAL_H
