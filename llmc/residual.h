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

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin. train_gpt.cu fuses the residual add into the following LayerNorm
// (fused_residual_layernorm_forward_cuda in llmc/layernorm.h); this one is the plain version.
#include "cuda_common.h"

// X128 elements a thread, 128-bit accesses when vec (as gelu_forward_kernel)
__global__ static void residual_forward_kernel(floatX* out, const floatX* a, const floatX* b, size_t N, int vec) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * X128;
    if (i >= N) { return; }
    if (vec && i + X128 <= N) {
        Packed128<floatX> x = load128(a + i), y = load128(b + i), o;
        for (int k = 0; k < X128; k++) { o.v[k] = f2fx(fx2f(x.v[k]) + fx2f(y.v[k])); }
        store128(out + i, o);
    } else {
        for (size_t j = i; j < N && j < i + X128; j++) { out[j] = f2fx(fx2f(a[j]) + fx2f(b[j])); }
    }
}

static void residual_forward_cuda(floatX* out, const floatX* a, const floatX* b, size_t N, cudaStream_t stream) {
    int vec = aligned16(out) && aligned16(a) && aligned16(b);
    residual_forward_kernel<<<(unsigned)CEIL_DIV(N, (size_t)256 * X128), 256, 0, stream>>>(out, a, b, N, vec);
    cudaCheckLaunch();
}
#endif // __CUDACC__

#endif // LLMC_RESIDUAL_H
