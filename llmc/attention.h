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
    // columns [hs, 32 * ceil(hs / 32)) are zeroed: the lanes' register slices read them
    int hsp = (hs + 31) / 32 * 32;
    int n = ATT_TILE * hsp;
    for (int idx = threadIdx.x; idx < n; idx += blockDim.x) {
        int r = idx / hsp;
        int d = idx % hsp;
        int t = r0 + r;
        float v = 0.0f;
        if (t < T && d < hs) { v = fx2f(qkv[((size_t)b * T + t) * 3 * C + which * C + h * hs + d]); }
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

// Dsum[b, h, t] = sum_d dout[b, t, h, d] * out[b, t, h, d], the softmax backward's row term.
// Grid (row groups of T, NH, B): b and h come from the block. (A flat row index cost three 64-bit
// divisions a row, which made this a third of the attention backward's instructions: 191 us at
// d12's B=64 on an H200, against 51 us to read the two tensors.) lanes > 0: lanes = hs / X128
// lanes a row, 16 bytes of each tensor a lane, 32 / lanes rows a warp; 0: a warp a row, element
// by element (any head size or alignment).
__global__ static void attention_backward_dsum_kernel(float* Dsum, const floatX* dout, const floatX* out, int T, int C,
                                                      int NH, int hs, int lanes) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int h = blockIdx.y, b = blockIdx.z;
    int width = lanes > 0 ? lanes : 32;  // lanes sharing a row: a divisor of 32, so a power of 2
    int shift = __ffs(width) - 1;        // log2(width): shifts, not integer divisions
    int t = (blockIdx.x * (blockDim.x / 32) + warp) * (32 >> shift) + (lane >> shift);
    float s = 0.0f;
    if (t < T) {  // no return: every lane takes part in the shuffles below
        size_t base = ((size_t)b * T + t) * C + h * hs;
        if (lanes > 0) {
            int d = (lane & (width - 1)) * X128;
            Packed128<floatX> g = load128(dout + base + d), o = load128(out + base + d);
            for (int k = 0; k < X128; k++) { s += fx2f(g.v[k]) * fx2f(o.v[k]); }
        } else {
            for (int d = lane; d < hs; d += 32) { s += fx2f(dout[base + d]) * fx2f(out[base + d]); }
        }
    }
    s = warp_reduce_sum(s, width);
    if (t < T && (lane & (width - 1)) == 0) { Dsum[((size_t)b * NH + h) * T + t] = s; }
}

// the dsum kernel's launch: 16-byte lanes when the head is a whole number of them, a divisor of
// a warp, and both tensors are aligned
static void attention_backward_dsum(float* Dsum, const floatX* dout, const floatX* out, int B, int T, int C, int NH,
                                    int hs, cudaStream_t stream) {
    int lanes = hs % X128 == 0 && C % X128 == 0 && 32 % (hs / X128) == 0 && aligned16(dout) && aligned16(out) ? hs / X128 : 0;
    int rows_per_block = 8 * (lanes > 0 ? 32 / lanes : 1);  // 8 warps
    dim3 grid(CEIL_DIV(T, rows_per_block), NH, B);
    attention_backward_dsum_kernel<<<grid, 256, 0, stream>>>(Dsum, dout, out, T, C, NH, hs, lanes);
    cudaCheckLaunch();
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
        for (int idx = threadIdx.x; idx < ATT_TILE * HK * 32; idx += blockDim.x) {
            int r = idx / (HK * 32), d = idx % (HK * 32), t = i0 + r;
            dOs[r][d] = (t < T && d < hs) ? fx2f(dout[((size_t)b * T + t) * C + h * hs + d]) : 0.0f;
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

// ----------------------------------------------------------------------------
// Tensor-core path (bf16 builds, head sizes 64 and 128): the same algorithm, FlashAttention-2's,
// with the inner products on tensor cores through mma.sync.m16n8k16 (llmc/tensor_core.h: bf16
// operands, fp32 accumulation). A block of 4 warps takes a 64-row tile; each warp owns 16 of
// its rows, and what those rows accumulate stays in registers: the scores of a 64-row tile of
// the other side are 8 n8 accumulators, on which the softmax (or its gradient) runs in place. A
// lane holds rows g and g + 8 of its warp's 16 (g = lane / 4); the 4 lanes of a quad share a row,
// so a row's max and sum take two shuffles. The accumulators then become the next product's bf16
// A operand directly (C's layout for two n8 tiles is A's for one k16 tile). Shared memory holds
// only the tiles of Q, K, V (and dO) that the block's warps share. Two backward kernels, as the
// scalar path has (dk/dv by key tile, dq by query tile): no atomics. Selected with ATTENTION_TC
// (--attention tc, LLMC_ATTENTION=tc), the default of bf16 builds without cuDNN since an H200
// passed every check of it and ran d12's step 6.6x faster than with the scalar kernels
// (dev/cuda/results/gpu_2026-12-04_h200_run2).
#ifndef ENABLE_FP32
#include "tensor_core.h"
#define ATT_TC_TILE 64
// Shared-memory row pitch, padded by 8 elements: the 8 rows g of a fragment load (lanes t of a
// quad read 4 bytes each along the row) then start 4 banks apart, and a phase touches 32
// distinct banks. Unpadded, rows of 128 or 256 bytes all start in bank 0: 8-way conflicts (the
// emulated profile counts them, dev/cuda/PROFILE.md).
#define ATT_TC_PAD 8
#define ATT_TC_HP(HS) ((HS) + ATT_TC_PAD)  // pitch of a [64][HS] bf16 tile

// Every tensor-core kernel runs ATT_TC_THREADS threads (4 warps of 16 rows of a 64-row tile). The
// tile loads below stride by it as a constant: their loops unroll into straight code (with
// blockDim.x as the stride they stayed loops, about 40 instructions per 16 bytes fetched,
// dev/cuda/sass_loops.py).
#define ATT_TC_THREADS 128

// rows [r0, r0 + 64) of one of q/k/v (which) or of dout (which = -1, row stride C) into s [64][HS]
// (row pitch ATT_TC_HP(HS)), the rows past T zeroed at once, the rows < T by cp.async
// (llmc/tensor_core.h): complete after the thread's next cp_async_wait that covers them and
// visible to the block after the __syncthreads that follows; the caller commits the group. A
// source that is not 16-byte aligned (C not a multiple of 8) is loaded at once, element by
// element, which the same wait and barrier order just as well.
template <int HS>
__device__ static inline void att_tc_load_async(__nv_bfloat16* s, const floatX* src, int which, int b, int h, int r0,
                                                int T, int C) {
    size_t stride = which < 0 ? (size_t)C : (size_t)3 * C;
    const floatX* base = src + ((size_t)b * T + r0) * stride + (which < 0 ? 0 : (size_t)which * C) + h * HS;
    if (C % 8 == 0 && ((uintptr_t)src % 16) == 0) {
        // 16 bytes (8 bf16) a thread: a warp covers 4 rows of 64 or 2 of 128 dims
        const int PER_ROW = HS / 8, ROWS = ATT_TC_THREADS / PER_ROW;
        int r = threadIdx.x / PER_ROW, d = (threadIdx.x % PER_ROW) * 8;
        #pragma unroll
        for (int k = 0; k < ATT_TC_TILE / ROWS; k++, r += ROWS) {
            __nv_bfloat16* dst = s + r * ATT_TC_HP(HS) + d;
            if (r0 + r < T) {
                cp_async<16>(dst, base + (size_t)r * stride + d);
            } else {
                *(uint4*)dst = make_uint4(0u, 0u, 0u, 0u);  // all-zero bits: bf16 zeros
            }
        }
        return;
    }
    for (int idx = threadIdx.x; idx < ATT_TC_TILE * HS; idx += ATT_TC_THREADS) {
        int r = idx / HS, d = idx % HS;
        s[r * ATT_TC_HP(HS) + d] = r0 + r < T ? base[(size_t)r * stride + d] : __float2bfloat16(0.0f);
    }
}

// The key loop of the forward and dQ kernels: K, V tile it + 1 is fetched into the other of
// KVs' two buffers (freed by the barrier that ended the last iteration) while tile it is
// computed on. Returns tile it's K (its V follows, one tile on), landed and visible to the block.
template <int HS>
__device__ static inline const __nv_bfloat16* att_tc_next_kv(__nv_bfloat16* KVs, const floatX* qkv, int it, int ntiles, int b,
                                                             int h, int T, int C) {
    const int TILE = ATT_TC_TILE * ATT_TC_HP(HS);
    if (it + 1 < ntiles) {
        __nv_bfloat16* next = KVs + ((it + 1) % 2) * 2 * TILE;
        att_tc_load_async<HS>(next, qkv, 1, b, h, (it + 1) * ATT_TC_TILE, T, C);
        att_tc_load_async<HS>(next + TILE, qkv, 2, b, h, (it + 1) * ATT_TC_TILE, T, C);
        cp_async_commit();
        cp_async_wait<1>();  // tile it's group has landed; the next one may still be in flight
    } else {
        cp_async_wait<0>();
    }
    __syncthreads();  // every thread's copies of tile it are visible
    return KVs + (it % 2) * 2 * TILE;
}

// s (16 x 64, fp32 accumulators) = A (this warp's 16 rows of a tile, pitch HP) times the transpose
// of the [64][HS] tile Bt: one warp's rows scored against 64 rows of the other side. k runs over
// the head dimension 16 at a time. Fragments by ldmatrix (llmc/tensor_core.h): A's 16x16 piece
// in one call; B[k = dim][n = row of Bt] = Bt[row][dim] is Bt read plain, two n8 tiles a call
// (lane l points at row 8 (l / 16) + l % 8 of the pair, column 8 ((l / 8) % 2) of the k16 step).
template <int HS>
__device__ static inline void att_mma_scores(float s[ATT_TC_TILE / 8][4], const __nv_bfloat16* A, const __nv_bfloat16* Bt) {
    const int HP = ATT_TC_HP(HS);
    int lane = threadIdx.x % 32;
    const __nv_bfloat16* a_at = A + (lane % 8 + 8 * ((lane / 8) % 2)) * HP + 8 * (lane / 16);
    const __nv_bfloat16* b_at = Bt + (lane % 8 + 8 * (lane / 16)) * HP + 8 * ((lane / 8) % 2);
    for (int nt = 0; nt < ATT_TC_TILE / 8; nt++) { s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f; }
    #pragma unroll 1  // one k16 step at a time: unrolled, the backward kernels needed 6-31 more registers
    for (int kt = 0; kt < HS / 16; kt++) {
        uint32_t a[4];
        ldmatrix_x4(a, a_at + kt * 16);
        for (int nt = 0; nt < ATT_TC_TILE / 8; nt += 2) {
            uint32_t bb[4];
            ldmatrix_x4(bb, b_at + (nt * 8) * HP + kt * 16);
            mma_m16n8k16_bf16(s[nt], a, bb);
            mma_m16n8k16_bf16(s[nt + 1], a, bb + 2);
        }
    }
}

// acc (16 x HS) += bf16(p) (16 x 64, the accumulators of att_mma_scores) times the [64][HS] tile
// M. k runs over the tile's 64 rows 16 at a time: rows 16 kk .. + 15 of p are the n8 tiles 2 kk
// and 2 kk + 1, which is A's layout; B[k = row][n = dim] = M[row][dim] is M read with .trans, two
// n8 tiles of dims a call (lane l points at row 16 kk + l % 8 + 8 ((l / 8) % 2), dim 8 (l / 16)
// of the pair).
template <int HS>
__device__ static inline void att_mma_accumulate(float acc[HS / 8][4], const float p[ATT_TC_TILE / 8][4], const __nv_bfloat16* M) {
    const int HP = ATT_TC_HP(HS);
    int lane = threadIdx.x % 32;
    const __nv_bfloat16* m_at = M + (lane % 8 + 8 * ((lane / 8) % 2)) * HP + 8 * (lane / 16);
    #pragma unroll
    for (int kk = 0; kk < ATT_TC_TILE / 16; kk++) {
        uint32_t a[4] = {bf16x2_from_floats(p[2 * kk][0], p[2 * kk][1]), bf16x2_from_floats(p[2 * kk][2], p[2 * kk][3]),
                         bf16x2_from_floats(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                         bf16x2_from_floats(p[2 * kk + 1][2], p[2 * kk + 1][3])};
        for (int dn = 0; dn < HS / 8; dn += 2) {
            uint32_t bb[4];
            ldmatrix_x4_trans(bb, m_at + (kk * 16) * HP + dn * 8);
            mma_m16n8k16_bf16(acc[dn], a, bb);
            mma_m16n8k16_bf16(acc[dn + 1], a, bb + 2);
        }
    }
}

// this warp's 16 rows of acc (16 x HS) times mul into dst: row r of the warp at dst + r * stride,
// for the rows row0 + r < T. Through stage, 16 rows of shared memory (pitch HP) that only this
// warp reads: a lane's accumulators are 4-byte pieces of 8 rows, which stored directly would fill
// half of each 32-byte sector a request touches; staged, the rows go out 16 bytes a lane.
template <int HS>
__device__ static inline void att_mma_store(floatX* dst, size_t stride, int row0, int T, const float acc[HS / 8][4], float mul,
                                            __nv_bfloat16* stage) {
    const int HP = ATT_TC_HP(HS);
    int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    __syncwarp();  // the warp is done reading stage
    for (int r = 0; r < 2; r++) {
        for (int dn = 0; dn < HS / 8; dn++) {
            *(uint32_t*)(stage + (g + 8 * r) * HP + dn * 8 + 2 * t) = bf16x2_from_floats(acc[dn][2 * r] * mul, acc[dn][2 * r + 1] * mul);
        }
    }
    __syncwarp();
    if (stride % 8 == 0 && (uintptr_t)dst % 16 == 0) {
        for (int idx = lane; idx < 16 * HS / 8; idx += 32) {
            int r = idx / (HS / 8), d = (idx % (HS / 8)) * 8;
            if (row0 + r < T) { *(uint4*)(dst + r * stride + d) = *(const uint4*)(stage + r * HP + d); }
        }
    } else {
        for (int idx = lane; idx < 16 * HS; idx += 32) {
            int r = idx / HS, d = idx % HS;
            if (row0 + r < T) { dst[r * stride + d] = stage[r * HP + d]; }
        }
    }
    __syncwarp();  // stage may be written again
}

// Forward. Per key tile: S = Q K^T, the online softmax on the accumulators (element i of s[nt]
// is row g + 8 (i / 2), key 8 nt + 2t + i % 2), O = O * correction + P V.
template <int HS>
__global__ static void __launch_bounds__(ATT_TC_THREADS, HS == 64 ? 4 : 2)  // HS 64: 4 blocks an SM, <= 128 registers
attention_forward_tc_kernel(floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH) {
    extern __shared__ __align__(128) unsigned char att_smem[];
    const int HP = ATT_TC_HP(HS);
    const int TILE = ATT_TC_TILE * HP;
    __nv_bfloat16* Qs = (__nv_bfloat16*)att_smem;  // [64][HP]
    __nv_bfloat16* KVs = Qs + TILE;                 // two buffers of K [64][HP], V [64][HP]
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int g = lane / 4, t = lane % 4;
    int q0 = (gridDim.x - 1 - blockIdx.x) * ATT_TC_TILE;  // longest rows first
    int h = blockIdx.y, b = blockIdx.z;
    // the max is taken on the raw scores (scale2 > 0 keeps the order), m is kept in base-2 units
    // of the scaled scores, and a probability is one FFMA and one MUFU.EX2: exp2(s scale2 - m)
    // (exp(x) = exp2(x log2 e)); lse goes out in natural units
    float scale2 = rsqrtf((float)HS) * LOG2E_F;
    int w0 = 16 * warp;  // this warp's first row in the tile
    att_tc_load_async<HS>(Qs, qkv, 0, b, h, q0, T, C);
    att_tc_load_async<HS>(KVs, qkv, 1, b, h, 0, T, C);
    att_tc_load_async<HS>(KVs + TILE, qkv, 2, b, h, 0, T, C);
    cp_async_commit();
    float o[HS / 8][4];
    for (int dn = 0; dn < HS / 8; dn++) { o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f; }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g, g + 8: running max, sum
    int qi[2] = {q0 + w0 + g, q0 + w0 + g + 8};
    int q_last = min(q0 + ATT_TC_TILE - 1, T - 1);
    int ntiles = q_last / ATT_TC_TILE + 1;
    // j0 <= q0 for every tile (both multiples of 64), so key j0 < T is visible to every row
    // of the tile (rows past T included): each row's max is finite from the first tile on.
    // Key tile it + 1 is fetched (cp.async) while tile it is computed on: two buffers.
    for (int it = 0; it < ntiles; it++) {
        int j0 = it * ATT_TC_TILE;
        const __nv_bfloat16* Ks = att_tc_next_kv<HS>(KVs, qkv, it, ntiles, b, h, T, C);
        const __nv_bfloat16* Vs = Ks + TILE;
        float s[ATT_TC_TILE / 8][4];
        att_mma_scores<HS>(s, Qs + w0 * HP, Ks);
        float mx[2] = {-INFINITY, -INFINITY};
        if (j0 + ATT_TC_TILE > q0) {  // the diagonal tile (also the only one with keys past T): masked
            for (int nt = 0; nt < ATT_TC_TILE / 8; nt++) {
                for (int i = 0; i < 4; i++) {
                    int j = j0 + nt * 8 + 2 * t + (i & 1);
                    float v = (j <= qi[i / 2] && j < T) ? s[nt][i] : -INFINITY;
                    s[nt][i] = v;
                    mx[i / 2] = fmaxf(mx[i / 2], v);
                }
            }
        } else {  // every key of the tile is before every query of this one
            for (int nt = 0; nt < ATT_TC_TILE / 8; nt++) {
                for (int i = 0; i < 4; i++) { mx[i / 2] = fmaxf(mx[i / 2], s[nt][i]); }
            }
        }
        float corr[2], sum[2] = {0.0f, 0.0f};
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));  // the quad shares the row
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            float m_new = fmaxf(m[r], mx[r] * scale2);
            corr[r] = exp2_approx(m[r] - m_new);  // 0 on the first tile (m = -inf)
            m[r] = m_new;
        }
        for (int nt = 0; nt < ATT_TC_TILE / 8; nt++) {
            for (int i = 0; i < 4; i++) {
                float p = exp2_approx(fmaf(s[nt][i], scale2, -m[i / 2]));  // masked: exp2(-inf) = 0
                s[nt][i] = p;
                sum[i / 2] += p;
            }
        }
        for (int r = 0; r < 2; r++) {
            sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
            sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
            l[r] = l[r] * corr[r] + sum[r];
        }
        for (int dn = 0; dn < HS / 8; dn++) {
            o[dn][0] *= corr[0]; o[dn][1] *= corr[0];
            o[dn][2] *= corr[1]; o[dn][3] *= corr[1];
        }
        att_mma_accumulate<HS>(o, s, Vs);
        __syncthreads();  // every warp is done with this buffer: the next iteration refills it
    }
    // rows g and g + 8 get their own 1 / l: scale the accumulators per row, then store them (a
    // reciprocal and multiplies: a division per element was 32 full-precision divides with a
    // slow-path call each)
    float inv_l[2] = {1.0f / l[0], 1.0f / l[1]};
    for (int dn = 0; dn < HS / 8; dn++) {
        o[dn][0] *= inv_l[0]; o[dn][1] *= inv_l[0];
        o[dn][2] *= inv_l[1]; o[dn][3] *= inv_l[1];
    }
    // Q's rows of this warp (read by it alone) stage the output
    att_mma_store<HS>(out + ((size_t)b * T + q0 + w0) * C + h * HS, C, q0 + w0, T, o, 1.0f, Qs + w0 * HP);
    for (int r = 0; r < 2; r++) {
        if (t == 0 && qi[r] < T) { lse[((size_t)b * NH + h) * T + qi[r]] = (m[r] + log2f(l[r])) * LN2_F; }
    }
}

// lse and D of the query rows [r0, r0 + 64) into lse_s, D_s [64] by 4-byte cp.async (zeros
// past T); the caller commits the group
__device__ static inline void att_tc_load_rows_async(float* lse_s, float* D_s, const float* lse, const float* Dsum,
                                                     size_t row_base, int r0, int T) {
    int r = threadIdx.x;
    if (r < ATT_TC_TILE) {
        if (r0 + r < T) {
            cp_async<4>(lse_s + r, lse + row_base + r0 + r);
            cp_async<4>(D_s + r, Dsum + row_base + r0 + r);
        } else {
            lse_s[r] = 0.0f;
            D_s[r] = 0.0f;
        }
    }
}

// dk, dv for a tile of 64 keys, over the query tiles at and after it. Transposed products:
// St = K Q^T (keys x queries), so a warp's rows of St, P^T, dP^T, dS^T are its 16 keys, and
// dV += P^T dO, dK += dS^T Q are again a warp's rows times a shared tile.
template <int HS>
__global__ static void __launch_bounds__(ATT_TC_THREADS, HS == 64 ? 3 : 1)  // HS 64: 3 blocks an SM, <= 168 registers
attention_backward_dkdv_tc_kernel(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                  const float* Dsum, int B, int T, int C, int NH) {
    extern __shared__ __align__(128) unsigned char att_smem[];
    const int HP = ATT_TC_HP(HS);
    const int TILE = ATT_TC_TILE * HP;
    __nv_bfloat16* Ks = (__nv_bfloat16*)att_smem;  // [64][HP]
    __nv_bfloat16* Vs = Ks + TILE;                  // [64][HP]
    __nv_bfloat16* QdOs = Vs + TILE;                // two buffers of Q [64][HP], dO [64][HP]
    float* lse_s = (float*)(QdOs + 4 * TILE);       // [2][64]
    float* D_s = lse_s + 2 * ATT_TC_TILE;           // [2][64]
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int g = lane / 4, t = lane % 4;
    int k0 = (gridDim.x - 1 - blockIdx.x) * ATT_TC_TILE;  // the key tile with the most work first
    int h = blockIdx.y, b = blockIdx.z;
    float scale = rsqrtf((float)HS), scale2 = scale * LOG2E_F;  // P^T = exp2(St scale2 - lse log2 e)
    int w0 = 16 * warp;
    int kj[2] = {k0 + w0 + g, k0 + w0 + g + 8};  // this lane's two keys
    size_t row_base = ((size_t)b * NH + h) * T;
    att_tc_load_async<HS>(Ks, qkv, 1, b, h, k0, T, C);
    att_tc_load_async<HS>(Vs, qkv, 2, b, h, k0, T, C);
    att_tc_load_async<HS>(QdOs, qkv, 0, b, h, k0, T, C);
    att_tc_load_async<HS>(QdOs + TILE, dout, -1, b, h, k0, T, C);
    att_tc_load_rows_async(lse_s, D_s, lse, Dsum, row_base, k0, T);
    cp_async_commit();
    float dk[HS / 8][4], dv[HS / 8][4];
    for (int dn = 0; dn < HS / 8; dn++) {
        for (int i = 0; i < 4; i++) { dk[dn][i] = 0.0f; dv[dn][i] = 0.0f; }
    }
    int ntiles = (T - k0 + ATT_TC_TILE - 1) / ATT_TC_TILE;
    // query tile it + 1 (with its lse and D) is fetched while tile it is computed on: two buffers
    for (int it = 0; it < ntiles; it++) {
        int i0 = k0 + it * ATT_TC_TILE, buf = it % 2;
        const __nv_bfloat16* Qs = QdOs + buf * 2 * TILE;
        const __nv_bfloat16* dOs = Qs + TILE;
        const float* lse_t = lse_s + buf * ATT_TC_TILE;
        const float* D_t = D_s + buf * ATT_TC_TILE;
        if (it + 1 < ntiles) {  // the other buffer was freed by the barrier ending the last iteration
            __nv_bfloat16* next = QdOs + (1 - buf) * 2 * TILE;
            att_tc_load_async<HS>(next, qkv, 0, b, h, i0 + ATT_TC_TILE, T, C);
            att_tc_load_async<HS>(next + TILE, dout, -1, b, h, i0 + ATT_TC_TILE, T, C);
            att_tc_load_rows_async(lse_s + (1 - buf) * ATT_TC_TILE, D_s + (1 - buf) * ATT_TC_TILE, lse, Dsum, row_base,
                                   i0 + ATT_TC_TILE, T);
            cp_async_commit();
            cp_async_wait<1>();  // this tile's group has landed; the next one may still be in flight
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();  // every thread's copies of this tile (and its lse, D) are visible
        // P^T = exp(St * scale - lse[query]) where query >= key and query < T; element i of
        // pt[nt] is key kj[i / 2], query column 8 nt + 2t + i % 2
        float pt[ATT_TC_TILE / 8][4], dst[ATT_TC_TILE / 8][4];
        att_mma_scores<HS>(pt, Ks + w0 * HP, Qs);
        // masked: the diagonal tile, or one with queries past T (one path for both: two spilled)
        bool edge = i0 == k0 || i0 + ATT_TC_TILE > T;
        for (int nt = 0; nt < ATT_TC_TILE / 8; nt++) {
            for (int i = 0; i < 4; i++) {
                int c = nt * 8 + 2 * t + (i & 1), q = i0 + c;
                bool keep = !edge || (q >= kj[i / 2] && q < T);
                pt[nt][i] = keep ? exp2_approx(fmaf(pt[nt][i], scale2, -lse_t[c] * LOG2E_F)) : 0.0f;
            }
        }
        // dS^T = P^T (dP^T - D[query]), dP^T = V dO^T
        att_mma_scores<HS>(dst, Vs + w0 * HP, dOs);
        for (int nt = 0; nt < ATT_TC_TILE / 8; nt++) {
            for (int i = 0; i < 4; i++) { dst[nt][i] = pt[nt][i] * (dst[nt][i] - D_t[nt * 8 + 2 * t + (i & 1)]); }
        }
        att_mma_accumulate<HS>(dv, pt, dOs);
        att_mma_accumulate<HS>(dk, dst, Qs);
        __syncthreads();  // every warp is done with this buffer: the next iteration refills it
    }
    floatX* base = dqkv + ((size_t)b * T + k0 + w0) * 3 * C + h * HS;
    // K's rows of this warp (read by it alone) stage the outputs
    att_mma_store<HS>(base + C, (size_t)3 * C, k0 + w0, T, dk, scale, Ks + w0 * HP);
    att_mma_store<HS>(base + 2 * C, (size_t)3 * C, k0 + w0, T, dv, 1.0f, Ks + w0 * HP);
}

// dq for a tile of 64 queries, over the key tiles up to it: dQ += dS K, dS = P (dP - D),
// P = exp(S * scale - lse), S = Q K^T, dP = dO V^T
template <int HS>
__global__ static void __launch_bounds__(ATT_TC_THREADS, HS == 64 ? 4 : 2)  // HS 64: 4 blocks an SM, <= 128 registers
attention_backward_dq_tc_kernel(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                const float* Dsum, int B, int T, int C, int NH) {
    extern __shared__ __align__(128) unsigned char att_smem[];
    const int HP = ATT_TC_HP(HS);
    const int TILE = ATT_TC_TILE * HP;
    __nv_bfloat16* Qs = (__nv_bfloat16*)att_smem;  // [64][HP]
    __nv_bfloat16* dOs = Qs + TILE;                 // [64][HP]
    __nv_bfloat16* KVs = dOs + TILE;                // two buffers of K [64][HP], V [64][HP]
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int g = lane / 4, t = lane % 4;
    int q0 = (gridDim.x - 1 - blockIdx.x) * ATT_TC_TILE;
    int h = blockIdx.y, b = blockIdx.z;
    float scale = rsqrtf((float)HS), scale2 = scale * LOG2E_F;  // P = exp2(S scale2 - lse log2 e)
    int w0 = 16 * warp;
    int qi[2] = {q0 + w0 + g, q0 + w0 + g + 8};  // this lane's two queries
    size_t row_base = ((size_t)b * NH + h) * T;
    att_tc_load_async<HS>(Qs, qkv, 0, b, h, q0, T, C);
    att_tc_load_async<HS>(dOs, dout, -1, b, h, q0, T, C);
    att_tc_load_async<HS>(KVs, qkv, 1, b, h, 0, T, C);
    att_tc_load_async<HS>(KVs + TILE, qkv, 2, b, h, 0, T, C);
    cp_async_commit();
    float lse_r[2], D_r[2];
    for (int r = 0; r < 2; r++) {
        lse_r[r] = qi[r] < T ? lse[row_base + qi[r]] * LOG2E_F : 0.0f;
        D_r[r] = qi[r] < T ? Dsum[row_base + qi[r]] : 0.0f;
    }
    float dq[HS / 8][4];
    for (int dn = 0; dn < HS / 8; dn++) { dq[dn][0] = dq[dn][1] = dq[dn][2] = dq[dn][3] = 0.0f; }
    int q_last = min(q0 + ATT_TC_TILE - 1, T - 1);
    int ntiles = q_last / ATT_TC_TILE + 1;
    // key tile it + 1 is fetched while tile it is computed on: two buffers
    for (int it = 0; it < ntiles; it++) {
        int j0 = it * ATT_TC_TILE;
        const __nv_bfloat16* Ks = att_tc_next_kv<HS>(KVs, qkv, it, ntiles, b, h, T, C);
        const __nv_bfloat16* Vs = Ks + TILE;
        float p[ATT_TC_TILE / 8][4], ds[ATT_TC_TILE / 8][4];
        att_mma_scores<HS>(p, Qs + w0 * HP, Ks);
        if (j0 + ATT_TC_TILE > q0) {  // the diagonal tile (also the only one with rows past T): masked
            for (int nt = 0; nt < ATT_TC_TILE / 8; nt++) {
                for (int i = 0; i < 4; i++) {
                    int j = j0 + nt * 8 + 2 * t + (i & 1);
                    p[nt][i] = (j <= qi[i / 2] && qi[i / 2] < T) ? exp2_approx(fmaf(p[nt][i], scale2, -lse_r[i / 2])) : 0.0f;
                }
            }
        } else {  // every key of the tile is before every query of this one
            for (int nt = 0; nt < ATT_TC_TILE / 8; nt++) {
                for (int i = 0; i < 4; i++) { p[nt][i] = exp2_approx(fmaf(p[nt][i], scale2, -lse_r[i / 2])); }
            }
        }
        att_mma_scores<HS>(ds, dOs + w0 * HP, Vs);
        for (int nt = 0; nt < ATT_TC_TILE / 8; nt++) {
            for (int i = 0; i < 4; i++) { ds[nt][i] = p[nt][i] * (ds[nt][i] - D_r[i / 2]); }
        }
        att_mma_accumulate<HS>(dq, ds, Ks);
        __syncthreads();  // every warp is done with this buffer: the next iteration refills it
    }
    // Q's rows of this warp (read by it alone) stage the output
    att_mma_store<HS>(dqkv + ((size_t)b * T + q0 + w0) * 3 * C + h * HS, (size_t)3 * C, q0 + w0, T, dq, scale, Qs + w0 * HP);
}

// shared memory: the fixed tiles, two buffers of the streamed pair, and dk/dv's lse and D
template <int HS> static size_t att_tc_fwd_smem(void) { return (size_t)5 * ATT_TC_TILE * ATT_TC_HP(HS) * 2; }
template <int HS> static size_t att_tc_dkdv_smem(void) { return (size_t)6 * ATT_TC_TILE * ATT_TC_HP(HS) * 2 + 4 * ATT_TC_TILE * 4; }
template <int HS> static size_t att_tc_dq_smem(void) { return (size_t)6 * ATT_TC_TILE * ATT_TC_HP(HS) * 2; }

// the dynamic shared memory above 48 KiB needs an opt-in per kernel, once
template <int HS> static void att_tc_setup(void) {
    static int done = 0;
    if (done) { return; }
    cudaCheck(cudaFuncSetAttribute(attention_forward_tc_kernel<HS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)att_tc_fwd_smem<HS>()));
    cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_tc_kernel<HS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)att_tc_dkdv_smem<HS>()));
    cudaCheck(cudaFuncSetAttribute(attention_backward_dq_tc_kernel<HS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)att_tc_dq_smem<HS>()));
    done = 1;
}

template <int HS>
static void attention_forward_tc(floatX* out, float* lse, const floatX* qkv, int B, int T, int C, int NH, cudaStream_t stream) {
    att_tc_setup<HS>();
    dim3 grid(CEIL_DIV(T, ATT_TC_TILE), NH, B);
    attention_forward_tc_kernel<HS><<<grid, ATT_TC_THREADS, att_tc_fwd_smem<HS>(), stream>>>(out, lse, qkv, B, T, C, NH);
    cudaCheckLaunch();
}

template <int HS>
static void attention_backward_tc(floatX* dqkv, const float* Dsum, const floatX* dout, const floatX* qkv,
                                  const float* lse, int B, int T, int C, int NH, cudaStream_t stream) {
    att_tc_setup<HS>();
    dim3 grid(CEIL_DIV(T, ATT_TC_TILE), NH, B);
    attention_backward_dkdv_tc_kernel<HS><<<grid, ATT_TC_THREADS, att_tc_dkdv_smem<HS>(), stream>>>(dqkv, dout, qkv, lse, Dsum, B, T, C, NH);
    cudaCheckLaunch();
    attention_backward_dq_tc_kernel<HS><<<grid, ATT_TC_THREADS, att_tc_dq_smem<HS>(), stream>>>(dqkv, dout, qkv, lse, Dsum, B, T, C, NH);
    cudaCheckLaunch();
}
#endif // !ENABLE_FP32

// ----------------------------------------------------------------------------
// Which implementation runs. The caller owns the choice (train_gpt_cu's --attention, the
// harnesses' and test_gpt_cu's LLMC_ATTENTION): there is no global switch.
//   ATTENTION_SCALAR  the CUDA-core kernels above: any head size <= 128, bf16 or fp32
//   ATTENTION_TC      the tensor-core (mma.sync) kernels: bf16, head sizes 64 and 128 (others: scalar)
//   ATTENTION_CUDNN   cuDNN's fused SDPA (llmc/attention_cudnn.h/.cpp; USE_CUDNN=1 bf16 builds):
//                     graphs are built once for the training shape (B, T); a forward of any
//                     other shape (evaluation of shorter sequences, sampling) runs the scalar kernels
typedef enum { ATTENTION_SCALAR = 1, ATTENTION_TC = 2, ATTENTION_CUDNN = 3 } AttentionKind;

#if defined(ENABLE_CUDNN) && !defined(ENABLE_FP32)
#include "attention_cudnn.h"
#define ATTENTION_HAS_CUDNN 1
#else
#define ATTENTION_HAS_CUDNN 0
typedef struct AttentionCudnn AttentionCudnn;  // never defined: no cuDNN in this build
#endif

typedef struct {
    AttentionKind kind;
    AttentionCudnn* cudnn;  // ATTENTION_CUDNN: the graphs of one (B, T) shape (attention_setup)
} Attention;


// "scalar", "tc", "cudnn", or "" for this build's default (cuDNN when built in, else tc in bf16,
// scalar in fp32 builds);
// what names the choice (a flag or a variable) goes into the error
static AttentionKind attention_kind_parse(const char* name, const char* what) {
    if (name == NULL || name[0] == '\0') {
#ifdef ENABLE_FP32
        return ATTENTION_SCALAR;
#else
        return ATTENTION_HAS_CUDNN ? ATTENTION_CUDNN : ATTENTION_TC;
#endif
    }
    if (strcmp(name, "scalar") == 0) { return ATTENTION_SCALAR; }
    if (strcmp(name, "tc") == 0) {
#ifdef ENABLE_FP32
        fprintf(stderr, "error: %s tc: the tensor-core attention is bf16 only; this is a PRECISION=FP32 build\n", what);
        exit(EXIT_FAILURE);
#endif
        return ATTENTION_TC;
    }
    if (strcmp(name, "cudnn") == 0) {
        if (!ATTENTION_HAS_CUDNN) {
            fprintf(stderr, "error: %s cudnn: this build has no cuDNN attention (build with make ... USE_CUDNN=1, bf16)\n", what);
            exit(EXIT_FAILURE);
        }
        return ATTENTION_CUDNN;
    }
    fprintf(stderr, "error: %s: unknown attention '%s' (scalar, tc, cudnn)\n", what, name);
    exit(EXIT_FAILURE);
}

// the tests and harnesses: LLMC_ATTENTION=scalar|tc|cudnn, unset for the build's default
static AttentionKind attention_kind_from_env(void) {
    return attention_kind_parse(getenv("LLMC_ATTENTION"), "LLMC_ATTENTION");
}

static void attention_init(Attention* att, AttentionKind kind) {
    att->kind = kind;
    att->cudnn = NULL;
}

// the shapes cuDNN's SDPA graphs take: head sizes that are multiples of 8 (up to 128), and
// T > 1 (its backward graph rejects s_q = s_kv = 1, seen on an H200 with cuDNN 9)
#if ATTENTION_HAS_CUDNN
static int attention_cudnn_takes(int T, int C, int NH) {
    int hs = C / NH;
    return hs % 8 == 0 && hs <= 128 && T > 1;
}
#endif

// Before the first step, with the shape the training runs at: cuDNN builds its graphs and
// allocates its workspace here (a step allocates nothing). Nothing to do for our kernels. A
// shape cuDNN does not take (a distillation teacher of head size 12, T = 1) runs our kernels:
// attention_name says so in the run's header.
static void attention_setup(Attention* att, int B, int T, int C, int NH, cudaStream_t stream) {
#if ATTENTION_HAS_CUDNN
    if (att->kind == ATTENTION_CUDNN && att->cudnn == NULL && attention_cudnn_takes(T, C, NH)) {
        att->cudnn = attention_cudnn_create(B, T, C, NH, stream);
    }
#else
    (void)att; (void)B; (void)T; (void)C; (void)NH; (void)stream;
#endif
}

static void attention_free(Attention* att) {
#if ATTENTION_HAS_CUDNN
    if (att->cudnn != NULL) { attention_cudnn_destroy(att->cudnn); }
#endif
    att->cudnn = NULL;
}

// whether this call goes to the tensor-core kernels
static int attention_use_tc(const Attention* att, int hs) {
#ifdef ENABLE_FP32
    (void)att; (void)hs;
    return 0;
#else
    return att->kind == ATTENTION_TC && (hs == 64 || hs == 128);
#endif
}

// whether this call goes to cuDNN: its graphs exist for exactly one shape
static int attention_use_cudnn(const Attention* att, int B, int T, int C, int NH) {
#if ATTENTION_HAS_CUDNN
    return att->kind == ATTENTION_CUDNN && att->cudnn != NULL && attention_cudnn_matches(att->cudnn, B, T, C, NH);
#else
    (void)att; (void)B; (void)T; (void)C; (void)NH;
    return 0;
#endif
}

// what runs at the training shape, for the run's header line
static const char* attention_name(const Attention* att, int hs) {
    if (att->kind == ATTENTION_CUDNN) {
        return att->cudnn != NULL ? "cuDNN SDPA" : "CUDA cores (a shape cuDNN's SDPA does not take: head size not a multiple of 8, or T = 1)";
    }
    return attention_use_tc(att, hs) ? "tensor cores" : "CUDA cores";
}

// device memory attention_setup took
static size_t attention_device_bytes(const Attention* att) {
#if ATTENTION_HAS_CUDNN
    if (att->cudnn != NULL) { return attention_cudnn_workspace_bytes(att->cudnn); }
#endif
    (void)att;
    return 0;
}

static void attention_check_shape(int C, int NH) {
    if (C % NH != 0 || C / NH > 128) {
        fprintf(stderr, "error: attention_*_cuda: head size C/NH = %d/%d must be an integer <= 128\n", C, NH);
        exit(EXIT_FAILURE);
    }
}

static void attention_forward_cuda(const Attention* att, floatX* out, float* lse, const floatX* qkv, int B, int T,
                                   int C, int NH, cudaStream_t stream) {
    attention_check_shape(C, NH);
    int hs = C / NH;
#if ATTENTION_HAS_CUDNN
    if (attention_use_cudnn(att, B, T, C, NH)) {
        attention_cudnn_forward(att->cudnn, out, lse, qkv, stream);
        return;
    }
#endif
#ifndef ENABLE_FP32
    if (attention_use_tc(att, hs)) {
        if (hs == 64) { attention_forward_tc<64>(out, lse, qkv, B, T, C, NH, stream); }
        else { attention_forward_tc<128>(out, lse, qkv, B, T, C, NH, stream); }
        return;
    }
#endif
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

// Dsum: B*NH*T floats of scratch (unused by cuDNN). The backward must follow a forward of the
// same implementation: lse is each implementation's own (cuDNN's stats or our logsumexp).
static void attention_backward_cuda(const Attention* att, floatX* dqkv, float* Dsum, const floatX* dout,
                                    const floatX* qkv, const floatX* out, const float* lse, int B, int T, int C,
                                    int NH, cudaStream_t stream) {
    attention_check_shape(C, NH);
    int hs = C / NH;
#if ATTENTION_HAS_CUDNN
    if (attention_use_cudnn(att, B, T, C, NH)) {
        attention_cudnn_backward(att->cudnn, dqkv, dout, qkv, out, lse, stream);
        return;
    }
#endif
    attention_backward_dsum(Dsum, dout, out, B, T, C, NH, hs, stream);
#ifndef ENABLE_FP32
    if (attention_use_tc(att, hs)) {
        if (hs == 64) { attention_backward_tc<64>(dqkv, Dsum, dout, qkv, lse, B, T, C, NH, stream); }
        else { attention_backward_tc<128>(dqkv, Dsum, dout, qkv, lse, B, T, C, NH, stream); }
        return;
    }
#endif
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
