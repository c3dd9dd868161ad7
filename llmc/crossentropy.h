// Softmax + cross-entropy over the vocabulary, the classifier at the top of the model.
//   logits: (B, T, Vp); only the first V entries of a row are real tokens, the padding
//           (up to Vp, a multiple of 128 for fast matmuls) never enters the softmax
//   forward:  probs (B, T, Vp) and per-position losses = -log probs[target]
//   backward: dlogits = (probs - onehot(target)) * dloss * w[position], where dloss is the
//             weight of one position in the step's loss (1 / (B*T*grad_accum_steps) for plain
//             training) and w the per-position loss weights (NULL: all 1). Fine-tuning masks
//             prompt tokens with w = 0 (llmc/dataloader.h) and then averages over sum(w).
#ifndef LLMC_CROSSENTROPY_H
#define LLMC_CROSSENTROPY_H

#include <math.h>
#include <stddef.h>

static void softmax_forward(float* probs, const float* logits, int B, int T, int V, int Vp) {
    int BT = B * T;
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        const float* x = logits + (size_t)bt * Vp;
        float* p = probs + (size_t)bt * Vp;
        float maxval = -INFINITY;
        for (int i = 0; i < V; i++) { if (x[i] > maxval) { maxval = x[i]; } }
        float sum = 0.0f;
        for (int i = 0; i < V; i++) { p[i] = expf(x[i] - maxval); sum += p[i]; }
        float inv = 1.0f / sum;
        for (int i = 0; i < V; i++) { p[i] *= inv; }
        for (int i = V; i < Vp; i++) { p[i] = 0.0f; }
    }
}

static void crossentropy_forward(float* losses, const float* probs, const int* targets,
                                 int B, int T, int Vp) {
    int BT = B * T;
    for (int bt = 0; bt < BT; bt++) {
        losses[bt] = -logf(probs[(size_t)bt * Vp + targets[bt]]);
    }
}

// dlogits is overwritten (not accumulated): the logits feed nothing but the loss.
static void crossentropy_softmax_backward(float* dlogits, const float* probs, const int* targets,
                                          const float* weights, float dloss, int B, int T, int V, int Vp) {
    int BT = B * T;
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        float* dl = dlogits + (size_t)bt * Vp;
        const float* p = probs + (size_t)bt * Vp;
        float d = weights != NULL ? dloss * weights[bt] : dloss;
        for (int i = 0; i < V; i++) { dl[i] = p[i] * d; }
        for (int i = V; i < Vp; i++) { dl[i] = 0.0f; }
        dl[targets[bt]] -= d;
    }
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin: the fused classifier. One block per position reads its row of floatX logits,
// computes the loss through the logsumexp (an online max/sum, never a probability tensor),
// and, if dloss != 0, overwrites the same row with dlogits = (softmax - onehot) * dloss
// (padding columns V..Vp get 0), times the row's loss weight weights[row] (NULL: 1).
// No fp32 logits or probabilities are ever stored.
//   logits: (BT, Vp) floatX, in: logits, out: dlogits (when dloss != 0)
//   losses: (BT) fp32, -log softmax[target]
#include "cuda_common.h"
#include "tensor_core.h"  // cp.async

#define CLASSIFIER_THREADS 1024

// vec (Vp a multiple of X128 and logits 16-byte aligned): every row is read and written with
// 128-bit accesses, X128 logits a thread per access; element by element otherwise
__global__ static void __launch_bounds__(CLASSIFIER_THREADS)
fused_classifier_kernel(floatX* logits, float* losses, const int* targets, const float* weights, float dloss, int V, int Vp,
                        int vec) {
    __shared__ float shared[32];
    int row = blockIdx.x;
    floatX* x = logits + (size_t)row * Vp;
    int target = targets[row];
    int width = vec ? X128 : 1;
    int step = blockDim.x * width;
    // read the target's logit before any thread can overwrite the row (after the barriers below)
    float x_target = fx2f(x[target]);
    float m = -FLT_MAX, s = 0.0f;
    for (int i = threadIdx.x * width; i < V; i += step) {
        Packed128<floatX> xa;
        int n = 1;
        if (vec) {
            xa = load128(x + i);
            n = V - i < X128 ? V - i : X128;  // the last vector holds padding columns past V
        } else {
            xa.v[0] = x[i];
        }
        for (int k = 0; k < n; k++) {
            float v = fx2f(xa.v[k]);
            if (v > m) { s = s * expf(m - v) + 1.0f; m = v; }
            else { s += expf(v - m); }
        }
    }
    float M = block_reduce_max(m, shared);
    float S = block_reduce_sum(s * expf(m - M), shared);
    float lse = M + logf(S);
    if (threadIdx.x == 0) { losses[row] = lse - x_target; }
    if (dloss == 0.0f) { return; }
    if (weights != NULL) { dloss *= weights[row]; }
    for (int i = threadIdx.x * width; i < Vp; i += step) {
        Packed128<floatX> xa;
        if (vec) { xa = load128(x + i); } else { xa.v[0] = x[i]; }
        for (int k = 0; k < width; k++) {
            float d = 0.0f;
            if (i + k < V) {
                float p = expf(fx2f(xa.v[k]) - lse);
                d = (p - (i + k == target ? 1.0f : 0.0f)) * dloss;
            }
            xa.v[k] = f2fx(d);
        }
        if (vec) { store128(x + i, xa); } else { x[i] = xa.v[0]; }
    }
}

// One pass: the row is copied into shared memory once (cp.async, so every 16-byte piece a
// thread fetches is in flight at once), and the max, the sum and dlogits read it from there:
// the logits are read from device memory once and dlogits written once, where the kernel above
// reads them twice and takes an exp and a branch per logit in its online max/sum. Measured on
// an H200 at d12's B=64, that kernel took 3.6 ms for the losses and 6.8 ms with dlogits
// (dev/cuda/results/gpu_2026-12-04_h200_run2). A row must fit in a block's shared memory
// (GPT-2's 50304 bf16 logits are 98 KiB); longer rows, and rows that are not 16-byte vectors,
// take the kernel above. (Holding the row in registers instead, 56 logits a thread, spilled.)
// element k of a 128-bit vector of floatX (k a constant once the caller's loop is unrolled)
__device__ static inline float x128_get(int4 v, int k) {
    int w = k * (int)sizeof(floatX) / 4;  // its 32-bit word
    unsigned bits = (unsigned)(w == 0 ? v.x : w == 1 ? v.y : w == 2 ? v.z : v.w);
#ifdef ENABLE_FP32
    return __uint_as_float(bits);
#else
    return __uint_as_float(k % 2 ? bits & 0xffff0000u : bits << 16);  // bf16 is fp32's top half
#endif
}
// the bits of f rounded to floatX, placed where element k sits in its 32-bit word
__device__ static inline unsigned x128_bits(float f, int k) {
#ifdef ENABLE_FP32
    (void)k;
    return __float_as_uint(f);
#else
    return (unsigned)__bfloat16_as_ushort(f2fx(f)) << (16 * (k % 2));
#endif
}

// The one-pass kernel's work on one vector of X128 logits starting at column i0. FULL: the whole
// vector lies before V (and, for the gradient, the target is not in it), which is every vector
// but the last one or two of a row: no test per element, so the loop is the arithmetic alone (the
// tests and their branches were more than half of each logit's instructions, dev/cuda/sass_loops.py).
// Otherwise, elements at or past V are left out (their gradient is 0).
template <bool FULL>
__device__ static inline float x128_max(int4 raw, int i0, int V, float m) {
    #pragma unroll
    for (int k = 0; k < X128; k++) {
        if (FULL || i0 + k < V) { m = fmaxf(m, x128_get(raw, k)); }
    }
    return m;
}
// the sum of exp(logit - M), with M2 = M log2 e: exp(x - M) = exp2(x log2 e - M2), one FFMA and one MUFU
template <bool FULL>
__device__ static inline float x128_sum_exp(int4 raw, int i0, int V, float M2) {
    float s = 0.0f;
    #pragma unroll
    for (int k = 0; k < X128; k++) {
        if (FULL || i0 + k < V) { s += exp2_approx(fmaf(x128_get(raw, k), LOG2E_F, -M2)); }
    }
    return s;
}
// dlogits = (softmax - onehot(target)) * dloss, softmax = exp2(x log2 e - lse2), packed as floatX
template <bool FULL>
__device__ static inline int4 x128_dlogits(int4 raw, int i0, int V, int target, float lse2, float dloss) {
    unsigned wd[4] = {0u, 0u, 0u, 0u};
    #pragma unroll
    for (int k = 0; k < X128; k++) {
        float g = exp2_approx(fmaf(x128_get(raw, k), LOG2E_F, -lse2));
        if (!FULL) { g = i0 + k >= V ? 0.0f : g - (i0 + k == target ? 1.0f : 0.0f); }
        wd[k * (int)sizeof(floatX) / 4] |= x128_bits(g * dloss, k);
    }
    return make_int4((int)wd[0], (int)wd[1], (int)wd[2], (int)wd[3]);
}

__global__ static void __launch_bounds__(CLASSIFIER_THREADS)
fused_classifier_row_kernel(floatX* logits, float* losses, const int* targets, const float* weights, float dloss, int V,
                            int Vp) {
    // the row (Vp / X128 vectors), then the reductions' 32 floats: no static shared memory,
    // so the dynamic opt-in can be the device's whole limit (static + dynamic must fit in it:
    // with a static scratch array, asking for the limit was refused on an H200)
    extern __shared__ __align__(16) unsigned char classifier_smem[];
    const int4* xs = (const int4*)classifier_smem;
    int row = blockIdx.x;
    floatX* x = logits + (size_t)row * Vp;
    int nvec = Vp / X128, nfull = V / X128;  // vectors [0, nfull) lie wholly before V
    float* shared = (float*)(classifier_smem + (size_t)nvec * 16);
    for (int v = threadIdx.x; v < nvec; v += blockDim.x) { cp_async<16>(classifier_smem + (size_t)v * 16, x + (size_t)v * X128); }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    float m = -FLT_MAX;
    for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
        m = v < nfull ? x128_max<true>(xs[v], v * X128, V, m) : x128_max<false>(xs[v], v * X128, V, m);
    }
    float M = block_reduce_max(m, shared);
    float s = 0.0f, M2 = M * LOG2E_F;
    for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
        s += v < nfull ? x128_sum_exp<true>(xs[v], v * X128, V, M2) : x128_sum_exp<false>(xs[v], v * X128, V, M2);
    }
    float S = block_reduce_sum(s, shared);
    float lse = M + logf(S);
    int target = targets[row];
    if (threadIdx.x == 0) { losses[row] = lse - fx2f(((const floatX*)classifier_smem)[target]); }
    if (dloss == 0.0f) { return; }
    if (weights != NULL) { dloss *= weights[row]; }
    float lse2 = lse * LOG2E_F;
    int target_vec = target / X128;
    for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
        int4 d = v < nfull && v != target_vec ? x128_dlogits<true>(xs[v], v * X128, V, target, lse2, dloss)
                                              : x128_dlogits<false>(xs[v], v * X128, V, target, lse2, dloss);
        *reinterpret_cast<int4*>(x + (size_t)v * X128) = d;
    }
}

// the one-pass kernel's dynamic shared memory: the row and 32 floats
static size_t fused_classifier_smem(int Vp) { return (size_t)Vp * sizeof(floatX) + 32 * sizeof(float); }

// whether a row of Vp logits at this address takes the one-pass kernel (and its shared memory
// opt-in, asked for once: the device's limit per block, 227 KiB on an H100)
static int fused_classifier_one_pass(int Vp, const floatX* logits) {
    static int smem_limit = -1;
    if (smem_limit < 0) {
        int dev;
        cudaCheck(cudaGetDevice(&dev));
        cudaCheck(cudaDeviceGetAttribute(&smem_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        cudaFuncAttributes fa;
        cudaCheck(cudaFuncGetAttributes(&fa, fused_classifier_row_kernel));
        smem_limit -= (int)fa.sharedSizeBytes;  // static and dynamic together must fit in the limit
        cudaCheck(cudaFuncSetAttribute(fused_classifier_row_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_limit));
    }
    return Vp % X128 == 0 && aligned16(logits) && fused_classifier_smem(Vp) <= (size_t)smem_limit;
}

static void fused_classifier_cuda(floatX* logits, float* losses, const int* targets, const float* weights, float dloss,
                                  int BT, int V, int Vp, cudaStream_t stream) {
    if (fused_classifier_one_pass(Vp, logits)) {
        fused_classifier_row_kernel<<<BT, CLASSIFIER_THREADS, fused_classifier_smem(Vp), stream>>>(logits, losses, targets,
                                                                                                  weights, dloss, V, Vp);
    } else {
        int vec = Vp % X128 == 0 && aligned16(logits);
        fused_classifier_kernel<<<BT, CLASSIFIER_THREADS, 0, stream>>>(logits, losses, targets, weights, dloss, V, Vp, vec);
    }
    cudaCheckLaunch();
}
#endif // __CUDACC__

#endif // LLMC_CROSSENTROPY_H
