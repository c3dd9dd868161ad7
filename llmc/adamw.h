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

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin. params are the fp32 master weights; params_x (may be NULL) receives the updated
// weights rounded to floatX, the copy the forward and backward passes read. Same arithmetic
// as adamw_update; the bias corrections are computed on the host exactly as there.
// sum_of_squares_cuda: deterministic two-stage reduction, the result left in device memory
// (one double) so the caller decides when to synchronize.
#include "cuda_common.h"

__device__ static inline float adamw_one(float* params, float* m, float* v, float g, float lr, float beta1, float beta2,
                                         float bc1, float bc2, float eps, float weight_decay) {
    float mi = beta1 * *m + (1.0f - beta1) * g;
    float vi = beta2 * *v + (1.0f - beta2) * g * g;
    *m = mi;
    *v = vi;
    float mhat = mi / bc1;
    float vhat = vi / bc2;
    float p = *params;
    p -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
    *params = p;
    return p;
}

// 4 parameters a thread: the four fp32 arrays through 128-bit accesses when vec (every pointer
// 16-byte aligned) and the 4 are in range, and their floatX copy in one 8-byte (bf16) or
// 16-byte (fp32) store; one by one otherwise
__global__ static void adamw_kernel(float* params, floatX* params_x, const float* grads, float* m, float* v,
                                    size_t n, float lr, float beta1, float beta2, float bc1, float bc2,
                                    float eps, float weight_decay, float grad_scale, int vec) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i >= n) { return; }
    if (vec && i + 4 <= n) {
        Packed128<float> p = load128(params + i), g = load128(grads + i), mm = load128(m + i), vv = load128(v + i);
        floatX px[4];
        for (int k = 0; k < 4; k++) {
            px[k] = f2fx(adamw_one(&p.v[k], &mm.v[k], &vv.v[k], g.v[k] * grad_scale, lr, beta1, beta2, bc1, bc2, eps,
                                   weight_decay));
        }
        store128(params + i, p);
        store128(m + i, mm);
        store128(v + i, vv);
        if (params_x != NULL) {
#ifdef ENABLE_FP32
            int4 bits;
#else
            uint2 bits;
#endif
            memcpy(&bits, px, sizeof(bits));
            *reinterpret_cast<decltype(bits)*>(params_x + i) = bits;
        }
    } else {
        for (size_t j = i; j < n && j < i + 4; j++) {
            float p = adamw_one(&params[j], &m[j], &v[j], grads[j] * grad_scale, lr, beta1, beta2, bc1, bc2, eps, weight_decay);
            if (params_x != NULL) { params_x[j] = f2fx(p); }
        }
    }
}

static void adamw_update_cuda(float* params, floatX* params_x, const float* grads, float* m, float* v, size_t n,
                              float lr, float beta1, float beta2, float eps, float weight_decay,
                              float grad_scale, int t, cudaStream_t stream) {
    float bc1 = 1.0f - powf(beta1, (float)t);
    float bc2 = 1.0f - powf(beta2, (float)t);
    int vec = aligned16(params) && aligned16(grads) && aligned16(m) && aligned16(v) &&
              (params_x == NULL || aligned16(params_x));
    adamw_kernel<<<(unsigned)CEIL_DIV(n, (size_t)256 * 4), 256, 0, stream>>>(params, params_x, grads, m, v, n, lr, beta1,
                                                                             beta2, bc1, bc2, eps, weight_decay,
                                                                             grad_scale, vec);
    cudaCheckLaunch();
}

#define SUMSQ_BLOCKS 1024
#define SUMSQ_THREADS 512

// vec (x 16-byte aligned): the grid strides over vectors of 4 floats read with 128-bit loads,
// then the last n % 4 elements one by one
__global__ static void sum_of_squares_partial_kernel(double* partial, const float* x, size_t n, int vec) {
    __shared__ float shared[32];
    float s = 0.0f;
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    size_t done = 0;
    if (vec) {
        for (size_t i = tid; i < n / 4; i += stride) {
            Packed128<float> a = load128(x + 4 * i);
            for (int k = 0; k < 4; k++) { s += a.v[k] * a.v[k]; }
        }
        done = n / 4 * 4;
    }
    for (size_t i = done + tid; i < n; i += stride) { s += x[i] * x[i]; }
    s = block_reduce_sum(s, shared);
    if (threadIdx.x == 0) { partial[blockIdx.x] = (double)s; }
}

__global__ static void sum_of_squares_finish_kernel(double* out, const double* partial, int nparts) {
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < nparts; i++) { t += partial[i]; }
        *out = t;
    }
}

// out: one double; scratch: SUMSQ_BLOCKS doubles
static void sum_of_squares_cuda(double* out, const float* x, size_t n, double* scratch, cudaStream_t stream) {
    sum_of_squares_partial_kernel<<<SUMSQ_BLOCKS, SUMSQ_THREADS, 0, stream>>>(scratch, x, n, aligned16(x));
    cudaCheckLaunch();
    sum_of_squares_finish_kernel<<<1, 32, 0, stream>>>(out, scratch, SUMSQ_BLOCKS);
    cudaCheckLaunch();
}
#endif // __CUDACC__

#endif // LLMC_ADAMW_H
