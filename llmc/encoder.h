// Token + position embedding.
//   forward:  out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]
//   backward: dwte[inp[b,t],:] += dout[b,t,:];  dwpe[t,:] += dout[b,t,:]
//   at given positions (generation with a KV cache, forward only):
//             out[i,:] = wte[inp[i],:] + wpe[pos[i],:]
#ifndef LLMC_ENCODER_H
#define LLMC_ENCODER_H

#include <stddef.h>
#include <string.h>

static void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe,
                            int B, int T, int C) {
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float* out_bt = out + ((size_t)b * T + t) * C;
            const float* wte_ix = wte + (size_t)inp[b * T + t] * C;
            const float* wpe_t = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++) { out_bt[i] = wte_ix[i] + wpe_t[i]; }
        }
    }
}

static void encoder_forward_at(float* out, const int* inp, const int* pos, const float* wte, const float* wpe, int N, int C) {
    for (int i = 0; i < N; i++) {
        float* o = out + (size_t)i * C;
        const float* te = wte + (size_t)inp[i] * C;
        const float* pe = wpe + (size_t)pos[i] * C;
        for (int c = 0; c < C; c++) { o[c] = te[c] + pe[c]; }
    }
}

// Several positions can hold the same token, so rows of dwte receive several updates.
// Threads split the channels instead of the positions: each (row, channel) is then summed by
// one thread, in position order, and the result does not depend on the thread count.
static void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp,
                             int B, int T, int C) {
    const int chunk = 64;
    int nchunks = (C + chunk - 1) / chunk;
    #pragma omp parallel for
    for (int ch = 0; ch < nchunks; ch++) {
        int c0 = ch * chunk;
        int c1 = c0 + chunk < C ? c0 + chunk : C;
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const float* dout_bt = dout + ((size_t)b * T + t) * C;
                float* dwte_ix = dwte + (size_t)inp[b * T + t] * C;
                float* dwpe_t = dwpe + (size_t)t * C;
                for (int i = c0; i < c1; i++) {
                    dwte_ix[i] += dout_bt[i];
                    dwpe_t[i] += dout_bt[i];
                }
            }
        }
    }
}

// The backward pass needs, for every distinct token of the batch, the positions holding it.
// Many positions can hold one token, and summing them with atomics would make dwte depend on
// thread timing; instead the host (which has the batch anyway) groups the positions by token
// with a counting sort, and one thread per (token, channel) sums its positions in order.
//   count: V + 1 ints of host scratch
//   order: B*T positions sorted by token, in position order within a token
//   bucket_start: (num_buckets + 1) offsets into order; bucket_token: the token of each bucket
// Returns num_buckets. Upload order, bucket_start and bucket_token for encoder_backward_cuda.
// Plain host C (it sits before the CUDA section so that the CPU tests can check it).
static int encoder_backward_buckets(const int* inp, int BT, int V, int* count, int* order,
                                    int* bucket_start, int* bucket_token) {
    memset(count, 0, (size_t)(V + 1) * sizeof(int));
    for (int i = 0; i < BT; i++) { count[inp[i] + 1]++; }
    int nb = 0;
    for (int v = 0; v < V; v++) {
        if (count[v + 1] > 0) { bucket_token[nb] = v; bucket_start[nb] = count[v]; nb++; }
        count[v + 1] += count[v];  // count[v] is now where token v's positions start
    }
    bucket_start[nb] = BT;
    for (int i = 0; i < BT; i++) { order[count[inp[i]]++] = i; }
    return nb;
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin. out, wte, wpe are floatX; the gradients dwte, dwpe are fp32 and accumulated (+=)
// like the C version. inp is a device array for the forward.
#include "cuda_common.h"

// each thread X128 channels of one position; 128-bit accesses when vec (C a multiple of X128,
// every pointer 16-byte aligned), element by element otherwise
__global__ static void encoder_forward_kernel(floatX* out, const int* inp, const floatX* wte,
                                              const floatX* wpe, int BT, int T, int C, int vec) {
    size_t idx = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * X128;
    if (idx >= (size_t)BT * C) { return; }
    if (vec) {
        int bt = (int)(idx / C);
        int c = (int)(idx % C);
        int t = bt % T;
        Packed128<floatX> e = load128(wte + (size_t)inp[bt] * C + c), p = load128(wpe + (size_t)t * C + c), o;
        for (int k = 0; k < X128; k++) { o.v[k] = f2fx(fx2f(e.v[k]) + fx2f(p.v[k])); }
        store128(out + idx, o);
        return;
    }
    for (size_t j = idx; j < idx + X128 && j < (size_t)BT * C; j++) {
        int bt = (int)(j / C);
        int c = (int)(j % C);
        int t = bt % T;
        out[j] = f2fx(fx2f(wte[(size_t)inp[bt] * C + c]) + fx2f(wpe[(size_t)t * C + c]));
    }
}

static void encoder_forward_cuda(floatX* out, const int* inp, const floatX* wte, const floatX* wpe,
                                 int B, int T, int C, cudaStream_t stream) {
    size_t n = (size_t)B * T * C;
    int vec = C % X128 == 0 && aligned16(out) && aligned16(wte) && aligned16(wpe);
    encoder_forward_kernel<<<(unsigned)CEIL_DIV(n, (size_t)256 * X128), 256, 0, stream>>>(out, inp, wte, wpe, B * T, T, C, vec);
    cudaCheckLaunch();
}

__global__ static void encoder_forward_at_kernel(floatX* out, const int* inp, const int* pos, const floatX* wte,
                                                 const floatX* wpe, int N, int C) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)N * C) { return; }
    int i = (int)(idx / C), c = (int)(idx % C);
    out[idx] = f2fx(fx2f(wte[(size_t)inp[i] * C + c]) + fx2f(wpe[(size_t)pos[i] * C + c]));
}

// inp, pos: device arrays of N
static void encoder_forward_at_cuda(floatX* out, const int* inp, const int* pos, const floatX* wte, const floatX* wpe,
                                    int N, int C, cudaStream_t stream) {
    size_t n = (size_t)N * C;
    encoder_forward_at_kernel<<<(unsigned)CEIL_DIV(n, 256), 256, 0, stream>>>(out, inp, pos, wte, wpe, N, C);
    cudaCheckLaunch();
}

__global__ static void encoder_backward_wte_kernel(float* dwte, const floatX* dout, const int* order,
                                                   const int* bucket_start, const int* bucket_token, int C) {
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) { return; }
    int b = blockIdx.x;
    float s = 0.0f;
    for (int i = bucket_start[b]; i < bucket_start[b + 1]; i++) { s += fx2f(dout[(size_t)order[i] * C + c]); }
    dwte[(size_t)bucket_token[b] * C + c] += s;
}

// The same sums with 8 row lanes and 16-byte loads (C % X128 == 0, dout 16-byte aligned): a
// thread adds X128 columns of every 8th row of its bucket. Above, one thread walked a whole
// bucket alone, one dependent load after another: a frequent token's bucket (a newline, a
// comma: thousands of rows in a d12 batch) set the kernel's time, 0.71 ms of the H200's step
// where reading dout once takes 26 us. The lanes are added in a fixed order
// (vec_row_lanes_total, cuda_common.h). Block (32, VEC_ROW_LANES), grid (num_buckets, column
// groups of 32 X128).
__global__ static void encoder_backward_wte_vec_kernel(float* dwte, const floatX* dout, const int* order,
                                                       const int* bucket_start, const int* bucket_token, int C) {
    __shared__ float tile[VEC_ROW_LANES][32 * (X128 + 1)];
    int b = blockIdx.x;
    int c0 = (blockIdx.y * 32 + threadIdx.x) * X128;
    float s[X128];
    for (int k = 0; k < X128; k++) { s[k] = 0.0f; }
    if (c0 < C) {
        for (int i = bucket_start[b] + threadIdx.y; i < bucket_start[b + 1]; i += VEC_ROW_LANES) {
            Packed128<floatX> v = load128(dout + (size_t)order[i] * C + c0);
            for (int k = 0; k < X128; k++) { s[k] += fx2f(v.v[k]); }
        }
    }
    float t = vec_row_lanes_total(tile, s);
    int i = threadIdx.y * 32 + threadIdx.x, c = blockIdx.y * 32 * X128 + i;
    if (i < 32 * X128 && c < C) { dwte[(size_t)bucket_token[b] * C + c] += t; }
}

__global__ static void encoder_backward_wpe_kernel(float* dwpe, const floatX* dout, int B, int T, int C) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)T * C) { return; }
    float s = 0.0f;
    for (int b = 0; b < B; b++) { s += fx2f(dout[(size_t)b * T * C + idx]); }
    dwpe[idx] += s;
}

static void encoder_backward_cuda(float* dwte, float* dwpe, const floatX* dout, const int* order,
                                  const int* bucket_start, const int* bucket_token, int num_buckets,
                                  int B, int T, int C, cudaStream_t stream) {
    if (num_buckets > 0 && C % X128 == 0 && aligned16(dout)) {
        dim3 grid(num_buckets, CEIL_DIV(C, 32 * X128));
        encoder_backward_wte_vec_kernel<<<grid, dim3(32, VEC_ROW_LANES), 0, stream>>>(dwte, dout, order, bucket_start,
                                                                                           bucket_token, C);
        cudaCheckLaunch();
    } else if (num_buckets > 0) {
        dim3 grid(num_buckets, CEIL_DIV(C, 128));
        encoder_backward_wte_kernel<<<grid, 128, 0, stream>>>(dwte, dout, order, bucket_start, bucket_token, C);
        cudaCheckLaunch();
    }
    encoder_backward_wpe_kernel<<<(unsigned)CEIL_DIV((size_t)T * C, 256), 256, 0, stream>>>(dwpe, dout, B, T, C);
    cudaCheckLaunch();
}
#endif // __CUDACC__

#endif // LLMC_ENCODER_H
