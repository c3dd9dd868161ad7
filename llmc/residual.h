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

__global__ static void residual_forward_kernel(floatX* out, const floatX* a, const floatX* b, size_t N) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) { out[i] = f2fx(fx2f(a[i]) + fx2f(b[i])); }
}

static void residual_forward_cuda(floatX* out, const floatX* a, const floatX* b, size_t N, cudaStream_t stream) {
    residual_forward_kernel<<<(unsigned)CEIL_DIV(N, 256), 256, 0, stream>>>(out, a, b, N);
    cudaCheckLaunch();
}
#endif // __CUDACC__

#endif // LLMC_RESIDUAL_H
