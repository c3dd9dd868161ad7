// Causal multi-head self-attention on a fused qkv input.
//   inp: (B, T, 3C) holding q, k, v side by side; head h uses channels [h*hs, (h+1)*hs) of each
//   att: (B, NH, T, T) softmax probabilities, saved for the backward pass (row t uses t+1 entries)
//   out: (B, T, C)
// The CPU reference keeps the T x T probabilities: simple and exact. The CUDA twin will use a
// fused online-softmax kernel that never stores them.
#ifndef LLMC_ATTENTION_H
#define LLMC_ATTENTION_H

#include <math.h>
#include <stddef.h>

static void attention_forward(float* out, float* att, const float* inp, int B, int T, int C, int NH) {
    int C3 = 3 * C;
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(3)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
                const float* q = inp + ((size_t)b * T + t) * C3 + h * hs;
                float* att_row = att + (((size_t)b * NH + h) * T + t) * T;
                // scores and their max, for a stable softmax
                float maxval = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* k = inp + ((size_t)b * T + t2) * C3 + C + h * hs;
                    float dot = 0.0f;
                    for (int i = 0; i < hs; i++) { dot += q[i] * k[i]; }
                    dot *= scale;
                    att_row[t2] = dot;
                    if (dot > maxval) { maxval = dot; }
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    float e = expf(att_row[t2] - maxval);
                    att_row[t2] = e;
                    sum += e;
                }
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) { att_row[t2] *= inv; }
                for (int t2 = t + 1; t2 < T; t2++) { att_row[t2] = 0.0f; }
                float* o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) { o[i] = 0.0f; }
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* v = inp + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
                    float a = att_row[t2];
                    for (int i = 0; i < hs; i++) { o[i] += a * v[i]; }
                }
            }
        }
    }
}

// dinp (B, T, 3C) += gradient through attention. Each (b, h) pair owns disjoint slices of
// dinp, so threads split over (b, h) and every sum runs in a fixed order.
static void attention_backward(float* dinp, const float* dout, const float* inp, const float* att,
                               int B, int T, int C, int NH) {
    int C3 = 3 * C;
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float datt[T];  // one row of d(probabilities), at most maxT floats on the stack
            for (int t = 0; t < T; t++) {
                const float* att_row = att + (((size_t)b * NH + h) * T + t) * T;
                const float* q = inp + ((size_t)b * T + t) * C3 + h * hs;
                float* dq = dinp + ((size_t)b * T + t) * C3 + h * hs;
                const float* dout_bth = dout + ((size_t)b * T + t) * C + h * hs;
                // through out = att @ v
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* v = inp + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
                    float* dv = dinp + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
                    float d = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        d += v[i] * dout_bth[i];
                        dv[i] += att_row[t2] * dout_bth[i];
                    }
                    datt[t2] = d;
                }
                // through softmax: dpre = att * (datt - sum(att * datt))
                float dot = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) { dot += att_row[t2] * datt[t2]; }
                // through the scaled scores q . k
                for (int t2 = 0; t2 <= t; t2++) {
                    float dpre = att_row[t2] * (datt[t2] - dot) * scale;
                    const float* k = inp + ((size_t)b * T + t2) * C3 + C + h * hs;
                    float* dk = dinp + ((size_t)b * T + t2) * C3 + C + h * hs;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += dpre * k[i];
                        dk[i] += dpre * q[i];
                    }
                }
            }
        }
    }
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin: FlashAttention-style fused causal attention, forward and backward. The T x T
// matrix never exists in memory: keys and values stream through shared memory in tiles of
// ATT_TILE rows while each query row keeps a running max, a running sum and its output
// accumulator (the online softmax). The forward saves one logsumexp per (b, h, t) row, from
// which the backward recomputes each probability exactly (FlashAttention-2's recipe).
//   qkv:  (B, T, 3C) floatX, q | k | v as in the C version
//   out:  (B, T, C) floatX
//   lse:  (B, NH, T) fp32, log of the softmax denominator of each row (scale included)
//   dqkv: (B, T, 3C) floatX, *written* (not accumulated) by the backward
// Head sizes up to 128 (any hs <= 128; the register arrays are sized in 32-wide slices).
//
// Work layout: a warp owns one row (a query row in the forward and the dq pass, a key row in
// the dk/dv pass); ATT_WARPS rows share each tile in shared memory. Lane j scores key/query j
// of the tile; for the weighted sums the lanes split the head dimension (d = lane + 32*k)
// and the probabilities are broadcast with __shfl_sync. The math is fp32 CUDA-core FMAs:
// simple and exact by construction; a tensor-core (mma) version is the next step for speed.
// The backward runs two kernels instead of atomics, so it is deterministic: one walks the
// query tiles for each key row (dk, dv), the other the key tiles for each query row (dq).
#include "cuda_common.h"

#define ATT_TILE 32
#define ATT_WARPS 8

// rows [r0, r0 + ATT_TILE) of one of q/k/v (which = 0/1/2) of head h into s (row stride ld)
__device__ static inline void att_load_tile(float* s, int ld, const floatX* qkv, int which, int b, int h,
                                            int r0, int T, int C, int hs) {
    int n = ATT_TILE * hs;
    for (int idx = threadIdx.x; idx < n; idx += blockDim.x) {
        int r = idx / hs;
        int d = idx % hs;
        int t = r0 + r;
        float v = 0.0f;
        if (t < T) { v = fx2f(qkv[((size_t)b * T + t) * 3 * C + which * C + h * hs + d]); }
        s[r * ld + d] = v;
    }
}

template <int HK>  // HK = ceil(hs / 32) slices of the head dimension per lane
__global__ static void __launch_bounds__(32 * ATT_WARPS)
attention_forward_kernel(floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH, int hs) {
    const int HSP = HK * 32;           // padded head size
    __shared__ float Ks[ATT_TILE][HK * 32 + 1];  // +1: lane j reads row j, conflict-free
    __shared__ float Vs[ATT_TILE][HK * 32];
    __shared__ float Qs[ATT_WARPS][HK * 32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int qblock = gridDim.x - 1 - blockIdx.x;  // the longest (causal) rows start first
    int h = blockIdx.y, b = blockIdx.z;
    int i = qblock * ATT_WARPS + warp;        // this warp's query row
    int i_last = min(qblock * ATT_WARPS + ATT_WARPS, T) - 1;
    float scale = rsqrtf((float)hs);
    const size_t C3 = 3 * (size_t)C;
    for (int d = lane; d < HSP; d += 32) {
        Qs[warp][d] = (i < T && d < hs) ? fx2f(qkv[((size_t)b * T + i) * C3 + h * hs + d]) : 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    float acc[HK];
    for (int k = 0; k < HK; k++) { acc[k] = 0.0f; }
    for (int j0 = 0; j0 <= i_last; j0 += ATT_TILE) {
        __syncthreads();  // the previous tile is no longer read
        att_load_tile(&Ks[0][0], HSP + 1, qkv, 1, b, h, j0, T, C, hs);
        att_load_tile(&Vs[0][0], HSP, qkv, 2, b, h, j0, T, C, hs);
        __syncthreads();  // (Qs too, on the first tile)
        if (i >= T || j0 > i) { continue; }  // warp-uniform
        int j = j0 + lane;
        float sc = 0.0f;
        for (int d = 0; d < hs; d++) { sc += Qs[warp][d] * Ks[lane][d]; }
        sc = j <= i ? sc * scale : -INFINITY;
        float m_new = fmaxf(m, warp_reduce_max(sc));  // finite: key j0 <= i is in the tile
        float corr = expf(m - m_new);                 // 0 on the first tile (m = -inf)
        float p = expf(sc - m_new);                   // 0 for masked keys
        l = l * corr + warp_reduce_sum(p);
        for (int k = 0; k < HK; k++) { acc[k] *= corr; }
        int jn = min(ATT_TILE, i - j0 + 1);           // keys of this tile row i can see
        for (int jj = 0; jj < jn; jj++) {
            float pj = __shfl_sync(0xffffffffu, p, jj);
            for (int k = 0; k < HK; k++) { acc[k] += pj * Vs[jj][lane + 32 * k]; }
        }
        m = m_new;
    }
    if (i < T) {
        floatX* o = out + ((size_t)b * T + i) * C + h * hs;
        float inv = 1.0f / l;
        for (int k = 0; k < HK; k++) {
            int d = lane + 32 * k;
            if (d < hs) { o[d] = f2fx(acc[k] * inv); }
        }
        if (lane == 0) { lse[((size_t)b * NH + h) * T + i] = m + logf(l); }
    }
}

// Dsum[b, h, t] = sum_d dout[b, t, h, d] * out[b, t, h, d], the softmax backward's row term
__global__ static void attention_backward_dsum_kernel(float* Dsum, const floatX* dout, const floatX* out,
                                                      int B, int T, int C, int NH, int hs) {
    int lane = threadIdx.x % 32;
    size_t row = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;  // (b, h, t)
    if (row >= (size_t)B * NH * T) { return; }
    int t = (int)(row % T);
    int h = (int)((row / T) % NH);
    int b = (int)(row / ((size_t)T * NH));
    size_t base = ((size_t)b * T + t) * C + h * hs;
    float s = 0.0f;
    for (int d = lane; d < hs; d += 32) { s += fx2f(dout[base + d]) * fx2f(out[base + d]); }
    s = warp_reduce_sum(s);
    if (lane == 0) { Dsum[row] = s; }
}

// dk, dv: one warp per key row j, over the query tiles i >= j
template <int HK>
__global__ static void __launch_bounds__(32 * ATT_WARPS)
attention_backward_dkdv_kernel(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                               const float* Dsum, int B, int T, int C, int NH, int hs) {
    const int HSP = HK * 32;
    __shared__ float Qs[ATT_TILE][HK * 32 + 1];
    __shared__ float dOs[ATT_TILE][HK * 32 + 1];
    __shared__ float lse_s[ATT_TILE];
    __shared__ float D_s[ATT_TILE];
    __shared__ float Kw[ATT_WARPS][HK * 32];
    __shared__ float Vw[ATT_WARPS][HK * 32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int kblock = gridDim.x - 1 - blockIdx.x;
    int h = blockIdx.y, b = blockIdx.z;
    int j = kblock * ATT_WARPS + warp;  // this warp's key row
    float scale = rsqrtf((float)hs);
    const size_t C3 = 3 * (size_t)C;
    for (int d = lane; d < HSP; d += 32) {
        bool ok = j < T && d < hs;
        Kw[warp][d] = ok ? fx2f(qkv[((size_t)b * T + j) * C3 + C + h * hs + d]) : 0.0f;
        Vw[warp][d] = ok ? fx2f(qkv[((size_t)b * T + j) * C3 + 2 * C + h * hs + d]) : 0.0f;
    }
    float dk[HK], dv[HK];
    for (int k = 0; k < HK; k++) { dk[k] = 0.0f; dv[k] = 0.0f; }
    size_t row_base = ((size_t)b * NH + h) * T;
    int i_first = (kblock * ATT_WARPS) / ATT_TILE * ATT_TILE;
    for (int i0 = i_first; i0 < T; i0 += ATT_TILE) {
        __syncthreads();
        att_load_tile(&Qs[0][0], HSP + 1, qkv, 0, b, h, i0, T, C, hs);
        // dout has row stride C, not 3C: load it here
        for (int idx = threadIdx.x; idx < ATT_TILE * hs; idx += blockDim.x) {
            int r = idx / hs, d = idx % hs, t = i0 + r;
            dOs[r][d] = t < T ? fx2f(dout[((size_t)b * T + t) * C + h * hs + d]) : 0.0f;
        }
        if (threadIdx.x < ATT_TILE) {
            int t = i0 + threadIdx.x;
            lse_s[threadIdx.x] = t < T ? lse[row_base + t] : 0.0f;
            D_s[threadIdx.x] = t < T ? Dsum[row_base + t] : 0.0f;
        }
        __syncthreads();
        if (j >= T || i0 + ATT_TILE - 1 < j) { continue; }  // warp-uniform
        int i = i0 + lane;
        float sc = 0.0f, dp = 0.0f;
        for (int d = 0; d < hs; d++) {
            sc += Qs[lane][d] * Kw[warp][d];
            dp += dOs[lane][d] * Vw[warp][d];
        }
        float p = (i >= j && i < T) ? expf(sc * scale - lse_s[lane]) : 0.0f;
        float ds = p * (dp - D_s[lane]);
        int ii0 = max(j - i0, 0);  // queries before j see nothing of key j
        for (int ii = ii0; ii < ATT_TILE; ii++) {
            float pi = __shfl_sync(0xffffffffu, p, ii);
            float dsi = __shfl_sync(0xffffffffu, ds, ii);
            for (int k = 0; k < HK; k++) {
                dv[k] += pi * dOs[ii][lane + 32 * k];
                dk[k] += dsi * Qs[ii][lane + 32 * k];
            }
        }
    }
    if (j < T) {
        floatX* g = dqkv + ((size_t)b * T + j) * C3 + h * hs;
        for (int k = 0; k < HK; k++) {
            int d = lane + 32 * k;
            if (d < hs) {
                g[C + d] = f2fx(dk[k] * scale);
                g[2 * C + d] = f2fx(dv[k]);
            }
        }
    }
}

// dq: one warp per query row i, over the key tiles j <= i
template <int HK>
__global__ static void __launch_bounds__(32 * ATT_WARPS)
attention_backward_dq_kernel(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                             const float* Dsum, int B, int T, int C, int NH, int hs) {
    const int HSP = HK * 32;
    __shared__ float Ks[ATT_TILE][HK * 32 + 1];
    __shared__ float Vs[ATT_TILE][HK * 32 + 1];
    __shared__ float Qw[ATT_WARPS][HK * 32];
    __shared__ float dOw[ATT_WARPS][HK * 32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int qblock = gridDim.x - 1 - blockIdx.x;
    int h = blockIdx.y, b = blockIdx.z;
    int i = qblock * ATT_WARPS + warp;
    int i_last = min(qblock * ATT_WARPS + ATT_WARPS, T) - 1;
    float scale = rsqrtf((float)hs);
    const size_t C3 = 3 * (size_t)C;
    for (int d = lane; d < HSP; d += 32) {
        bool ok = i < T && d < hs;
        Qw[warp][d] = ok ? fx2f(qkv[((size_t)b * T + i) * C3 + h * hs + d]) : 0.0f;
        dOw[warp][d] = ok ? fx2f(dout[((size_t)b * T + i) * C + h * hs + d]) : 0.0f;
    }
    size_t row = ((size_t)b * NH + h) * T + i;
    float lse_i = i < T ? lse[row] : 0.0f;
    float D_i = i < T ? Dsum[row] : 0.0f;
    float dq[HK];
    for (int k = 0; k < HK; k++) { dq[k] = 0.0f; }
    for (int j0 = 0; j0 <= i_last; j0 += ATT_TILE) {
        __syncthreads();
        att_load_tile(&Ks[0][0], HSP + 1, qkv, 1, b, h, j0, T, C, hs);
        att_load_tile(&Vs[0][0], HSP + 1, qkv, 2, b, h, j0, T, C, hs);
        __syncthreads();
        if (i >= T || j0 > i) { continue; }
        int j = j0 + lane;
        float sc = 0.0f, dp = 0.0f;
        for (int d = 0; d < hs; d++) {
            sc += Qw[warp][d] * Ks[lane][d];
            dp += dOw[warp][d] * Vs[lane][d];
        }
        float p = j <= i ? expf(sc * scale - lse_i) : 0.0f;
        float ds = p * (dp - D_i);
        int jn = min(ATT_TILE, i - j0 + 1);
        for (int jj = 0; jj < jn; jj++) {
            float dsj = __shfl_sync(0xffffffffu, ds, jj);
            for (int k = 0; k < HK; k++) { dq[k] += dsj * Ks[jj][lane + 32 * k]; }
        }
    }
    if (i < T) {
        floatX* g = dqkv + ((size_t)b * T + i) * C3 + h * hs;
        for (int k = 0; k < HK; k++) {
            int d = lane + 32 * k;
            if (d < hs) { g[d] = f2fx(dq[k] * scale); }
        }
    }
}

static void attention_check_shape(int C, int NH) {
    if (C % NH != 0 || C / NH > 128) {
        fprintf(stderr, "error: attention_*_cuda: head size C/NH = %d/%d must be an integer <= 128\n", C, NH);
        exit(EXIT_FAILURE);
    }
}

static void attention_forward_cuda(floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH,
                                   cudaStream_t stream) {
    attention_check_shape(C, NH);
    int hs = C / NH;
    dim3 grid(CEIL_DIV(T, ATT_WARPS), NH, B);
    int threads = 32 * ATT_WARPS;
    switch (CEIL_DIV(hs, 32)) {
        case 1: attention_forward_kernel<1><<<grid, threads, 0, stream>>>(out, lse, qkv, B, T, C, NH, hs); break;
        case 2: attention_forward_kernel<2><<<grid, threads, 0, stream>>>(out, lse, qkv, B, T, C, NH, hs); break;
        case 3: attention_forward_kernel<3><<<grid, threads, 0, stream>>>(out, lse, qkv, B, T, C, NH, hs); break;
        default: attention_forward_kernel<4><<<grid, threads, 0, stream>>>(out, lse, qkv, B, T, C, NH, hs); break;
    }
    cudaCheckLaunch();
}

// Dsum: B*NH*T floats of scratch
static void attention_backward_cuda(floatX* dqkv, float* Dsum, const floatX* dout, const floatX* qkv,
                                    const floatX* out, const float* lse, int B, int T, int C, int NH,
                                    cudaStream_t stream) {
    attention_check_shape(C, NH);
    int hs = C / NH;
    size_t rows = (size_t)B * NH * T;
    attention_backward_dsum_kernel<<<(unsigned)CEIL_DIV(rows, 8), 256, 0, stream>>>(Dsum, dout, out, B, T, C, NH, hs);
    cudaCheckLaunch();
    dim3 grid(CEIL_DIV(T, ATT_WARPS), NH, B);
    int threads = 32 * ATT_WARPS;
    switch (CEIL_DIV(hs, 32)) {
        case 1:
            attention_backward_dkdv_kernel<1><<<grid, threads, 0, stream>>>(dqkv, dout, qkv, lse, Dsum, B, T, C, NH, hs);
            cudaCheckLaunch();
            attention_backward_dq_kernel<1><<<grid, threads, 0, stream>>>(dqkv, dout, qkv, lse, Dsum, B, T, C, NH, hs);
            break;
        case 2:
            attention_backward_dkdv_kernel<2><<<grid, threads, 0, stream>>>(dqkv, dout, qkv, lse, Dsum, B, T, C, NH, hs);
            cudaCheckLaunch();
            attention_backward_dq_kernel<2><<<grid, threads, 0, stream>>>(dqkv, dout, qkv, lse, Dsum, B, T, C, NH, hs);
            break;
        case 3:
            attention_backward_dkdv_kernel<3><<<grid, threads, 0, stream>>>(dqkv, dout, qkv, lse, Dsum, B, T, C, NH, hs);
            cudaCheckLaunch();
            attention_backward_dq_kernel<3><<<grid, threads, 0, stream>>>(dqkv, dout, qkv, lse, Dsum, B, T, C, NH, hs);
            break;
        default:
            attention_backward_dkdv_kernel<4><<<grid, threads, 0, stream>>>(dqkv, dout, qkv, lse, Dsum, B, T, C, NH, hs);
            cudaCheckLaunch();
            attention_backward_dq_kernel<4><<<grid, threads, 0, stream>>>(dqkv, dout, qkv, lse, Dsum, B, T, C, NH, hs);
            break;
    }
    cudaCheckLaunch();
}
#endif // __CUDACC__

#endif // LLMC_ATTENTION_H
