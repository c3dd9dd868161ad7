// GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
#ifndef LLMC_GELU_H
#define LLMC_GELU_H

#include <math.h>
#include <stddef.h>

#define GELU_SCALING_FACTOR 0.7978845608028654f  // sqrt(2/pi)

static void gelu_forward(float* out, const float* inp, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float cube = 0.044715f * x * x * x;
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALING_FACTOR * (x + cube)));
    }
}

// dinp += gelu'(inp) * dout
static void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SCALING_FACTOR * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float sech2 = 1.0f - th * th;
        float du_dx = GELU_SCALING_FACTOR * (1.0f + 3.0f * 0.044715f * x * x);
        float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * du_dx;
        dinp[i] += grad * dout[i];
    }
}

#endif // LLMC_GELU_H
