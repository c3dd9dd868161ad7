// Attention over a KV cache: the inference-time form of llmc/attention.h (forward only).
// Generation runs the prompt once, then one position per token; each layer keeps the keys and
// values of every position already seen, so a new position costs one row of attention instead
// of the whole T x T square again.
//
//   qkv:    (n, 3C)  the n new positions (absolute positions pos .. pos+n-1) of one sequence,
//                    q, k, v side by side as in attention.h
//   kcache: (cap, C) this layer's keys of that sequence: [0, pos) already there; the call
//   vcache: (cap, C) stores the new ones at [pos, pos+n) first, then attends
//   att:    scratch, NH * n * (pos+n) floats
//   out:    (n, C)
// New position i (absolute p = pos + i) sees positions 0..p: causal, as in training.
//
// The arithmetic per (position, head) is attention_forward's (max-subtracted expf, one
// division, the weighted sum of values in position order) except the q.k dot products, which
// are vectorized (omp simd: partial sums in lanes, then added): generation spends its time
// here once the weights are small, and a serial chain of 64 dependent adds per key was a
// third of a decode step. The output differs from the full forward's row by float rounding.
#ifndef LLMC_KV_CACHE_H
#define LLMC_KV_CACHE_H

#include <math.h>
#include <stddef.h>
#include <string.h>

static void attention_forward_cached(float* out, float* att, const float* qkv, float* kcache, float* vcache,
                                     int pos, int n, int C, int NH) {
    int C3 = 3 * C;
    int hs = C / NH;
    int len = pos + n;
    float scale = 1.0f / sqrtf((float)hs);
    for (int i = 0; i < n; i++) {
        memcpy(kcache + (size_t)(pos + i) * C, qkv + (size_t)i * C3 + C, (size_t)C * sizeof(float));
        memcpy(vcache + (size_t)(pos + i) * C, qkv + (size_t)i * C3 + 2 * C, (size_t)C * sizeof(float));
    }
    #pragma omp parallel for collapse(2)
    for (int i = 0; i < n; i++) {
        for (int h = 0; h < NH; h++) {
            int p = pos + i;
            const float* q = qkv + (size_t)i * C3 + h * hs;
            float* att_row = att + ((size_t)h * n + i) * len;
            float maxval = -INFINITY;
            for (int t2 = 0; t2 <= p; t2++) {
                const float* k = kcache + (size_t)t2 * C + h * hs;
                float dot = 0.0f;
                #pragma omp simd reduction(+:dot)
                for (int j = 0; j < hs; j++) { dot += q[j] * k[j]; }
                dot *= scale;
                att_row[t2] = dot;
                if (dot > maxval) { maxval = dot; }
            }
            float sum = 0.0f;
            for (int t2 = 0; t2 <= p; t2++) {
                float e = expf(att_row[t2] - maxval);
                att_row[t2] = e;
                sum += e;
            }
            float inv = 1.0f / sum;
            for (int t2 = 0; t2 <= p; t2++) { att_row[t2] *= inv; }
            float* o = out + (size_t)i * C + h * hs;
            for (int j = 0; j < hs; j++) { o[j] = 0.0f; }
            for (int t2 = 0; t2 <= p; t2++) {
                const float* v = vcache + (size_t)t2 * C + h * hs;
                float a = att_row[t2];
                for (int j = 0; j < hs; j++) { o[j] += a * v[j]; }
            }
        }
    }
}


#ifdef __CUDACC__
#include "cuda_common.h"

// ----------------------------------------------------------------------------
// CUDA twin. The cache is floatX (bf16 in the bf16 build), (cap, C) per sequence as above.
// Two kernels: the new keys and values into the cache, then one block per (new position,
// head): the block's threads take the cached positions in turn for the scores (kept in
// shared memory: len floats), reduce max and sum over the block, and then each thread owns
// output channels of the head and sums over the positions in order. A decode step (n = 1)
// is NH blocks reading the whole cache once: bandwidth bound, as it should be.

__global__ static void kv_cache_store_kernel(floatX* kcache, floatX* vcache, const floatX* qkv, int pos, int n, int C) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)n * C) { return; }
    int i = (int)(idx / C), c = (int)(idx % C);
    kcache[(size_t)(pos + i) * C + c] = qkv[(size_t)i * 3 * C + C + c];
    vcache[(size_t)(pos + i) * C + c] = qkv[(size_t)i * 3 * C + 2 * C + c];
}

__global__ static void attention_cached_kernel(floatX* out, const floatX* qkv, const floatX* kcache, const floatX* vcache,
                                               int pos, int n, int C, int NH) {
    extern __shared__ float scores[];  // len floats, then 32 for the reductions
    int hs = C / NH;
    int i = blockIdx.x / NH, h = blockIdx.x % NH;
    int p = pos + i;  // attends to 0..p
    float* red = scores + (pos + n);
    float scale = 1.0f / sqrtf((float)hs);
    const floatX* q = qkv + (size_t)i * 3 * C + h * hs;
    float maxval = -FLT_MAX;
    for (int t2 = threadIdx.x; t2 <= p; t2 += blockDim.x) {
        const floatX* k = kcache + (size_t)t2 * C + h * hs;
        float dot = 0.0f;
        for (int j = 0; j < hs; j++) { dot += fx2f(q[j]) * fx2f(k[j]); }
        dot *= scale;
        scores[t2] = dot;
        maxval = fmaxf(maxval, dot);
    }
    maxval = block_reduce_max(maxval, red);
    float sum = 0.0f;
    for (int t2 = threadIdx.x; t2 <= p; t2 += blockDim.x) {
        float e = expf(scores[t2] - maxval);
        scores[t2] = e;
        sum += e;
    }
    sum = block_reduce_sum(sum, red);  // its barriers also publish every thread's scores
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < hs; j += blockDim.x) {
        float acc = 0.0f;
        for (int t2 = 0; t2 <= p; t2++) { acc += scores[t2] * fx2f(vcache[(size_t)t2 * C + h * hs + j]); }
        out[(size_t)i * C + h * hs + j] = f2fx(acc * inv);
    }
}

// out (n, C), qkv (n, 3C) of the new positions; kcache/vcache (cap, C) device buffers.
static void attention_forward_cached_cuda(floatX* out, const floatX* qkv, floatX* kcache, floatX* vcache,
                                          int pos, int n, int C, int NH, cudaStream_t stream) {
    int threads = 256;
    kv_cache_store_kernel<<<CEIL_DIV((size_t)n * C, threads), threads, 0, stream>>>(kcache, vcache, qkv, pos, n, C);
    cudaCheckLaunch();
    size_t smem = (size_t)(pos + n + 32) * sizeof(float);
    if (smem > 48 * 1024) {
        cudaCheck(cudaFuncSetAttribute(attention_cached_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    }
    attention_cached_kernel<<<n * NH, 128, smem, stream>>>(out, qkv, kcache, vcache, pos, n, C, NH);
    cudaCheckLaunch();
}
#endif // __CUDACC__

#endif // LLMC_KV_CACHE_H
