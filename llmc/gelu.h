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

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin, in floatX, math in fp32. The backward *writes* dinp (dinp may alias dout): the
// GELU input feeds nothing else, so there is nothing to accumulate on the GPU.
// (train_gpt.cu can instead fuse both into the cuBLASLt matmuls, see llmc/matmul.h.)
#include "cuda_common.h"

__device__ static inline float gelu_forward_one(float x) {
    float cube = 0.044715f * x * x * x;
    return 0.5f * x * (1.0f + tanhf(GELU_SCALING_FACTOR * (x + cube)));
}

__device__ static inline float gelu_backward_one(float x, float dout) {
    float u = GELU_SCALING_FACTOR * (x + 0.044715f * x * x * x);
    float th = tanhf(u);
    float sech2 = 1.0f - th * th;
    float du_dx = GELU_SCALING_FACTOR * (1.0f + 3.0f * 0.044715f * x * x);
    float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * du_dx;
    return grad * dout;
}

// each thread X128 elements: one 128-bit load and store when vec (every pointer 16-byte
// aligned) and the vector is whole, else one by one (the tail, or unaligned views)
__global__ static void gelu_forward_kernel(floatX* out, const floatX* inp, size_t N, int vec) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * X128;
    if (i >= N) { return; }
    if (vec && i + X128 <= N) {
        Packed128<floatX> x = load128(inp + i), y;
        for (int k = 0; k < X128; k++) { y.v[k] = f2fx(gelu_forward_one(fx2f(x.v[k]))); }
        store128(out + i, y);
    } else {
        for (size_t j = i; j < N && j < i + X128; j++) { out[j] = f2fx(gelu_forward_one(fx2f(inp[j]))); }
    }
}

__global__ static void gelu_backward_kernel(floatX* dinp, const floatX* inp, const floatX* dout, size_t N, int vec) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * X128;
    if (i >= N) { return; }
    if (vec && i + X128 <= N) {
        Packed128<floatX> x = load128(inp + i), d = load128(dout + i), y;
        for (int k = 0; k < X128; k++) { y.v[k] = f2fx(gelu_backward_one(fx2f(x.v[k]), fx2f(d.v[k]))); }
        store128(dinp + i, y);
    } else {
        for (size_t j = i; j < N && j < i + X128; j++) { dinp[j] = f2fx(gelu_backward_one(fx2f(inp[j]), fx2f(dout[j]))); }
    }
}

static void gelu_forward_cuda(floatX* out, const floatX* inp, size_t N, cudaStream_t stream) {
    int vec = aligned16(out) && aligned16(inp);
    gelu_forward_kernel<<<(unsigned)CEIL_DIV(N, (size_t)256 * X128), 256, 0, stream>>>(out, inp, N, vec);
    cudaCheckLaunch();
}

static void gelu_backward_cuda(floatX* dinp, const floatX* inp, const floatX* dout, size_t N, cudaStream_t stream) {
    int vec = aligned16(dinp) && aligned16(inp) && aligned16(dout);
    gelu_backward_kernel<<<(unsigned)CEIL_DIV(N, (size_t)256 * X128), 256, 0, stream>>>(dinp, inp, dout, N, vec);
    cudaCheckLaunch();
}
#endif // __CUDACC__

#endif // LLMC_GELU_H
