// LayerNorm over the channel dimension, eps = 1e-5 (PyTorch's default).
//   forward:  out = (x - mean) * rstd * weight + bias, saving mean and rstd per row
//   backward: accumulates into dinp, dweight, dbias
#ifndef LLMC_LAYERNORM_H
#define LLMC_LAYERNORM_H

#include <math.h>
#include <stddef.h>

static void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                              const float* weight, const float* bias, int B, int T, int C) {
    const float eps = 1e-5f;
    int BT = B * T;
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        const float* x = inp + (size_t)bt * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) { m += x[i]; }
        m /= C;
        // two passes: the one-pass E[x^2] - m^2 formula loses precision on the residual stream
        float v = 0.0f;
        for (int i = 0; i < C; i++) { float d = x[i] - m; v += d * d; }
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        float* y = out + (size_t)bt * C;
        for (int i = 0; i < C; i++) { y[i] = (s * (x[i] - m)) * weight[i] + bias[i]; }
        mean[bt] = m;
        rstd[bt] = s;
    }
}

static void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const float* mean,
                               const float* rstd, int B, int T, int C) {
    int BT = B * T;
    // input gradient: rows are independent
    #pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        const float* dy = dout + (size_t)bt * C;
        const float* x = inp + (size_t)bt * C;
        float* dx = dinp + (size_t)bt * C;
        float m = mean[bt];
        float s = rstd[bt];
        float dnorm_mean = 0.0f;
        float dnorm_norm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = weight[i] * dy[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = weight[i] * dy[i];
            dx[i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
        }
    }
    // weight and bias gradients reduce over rows: split the channels among threads so each
    // sum runs in row order whatever the thread count. A frozen LayerNorm (PEFT) passes NULL
    // for both and gets none; dweight NULL alone keeps dbias (BitFit without the gains).
    if (dweight == NULL && dbias == NULL) { return; }
    const int chunk = 16;
    int nchunks = (C + chunk - 1) / chunk;
    #pragma omp parallel for
    for (int ch = 0; ch < nchunks; ch++) {
        int c0 = ch * chunk;
        int c1 = c0 + chunk < C ? c0 + chunk : C;
        float dw[16] = {0};
        float db[16] = {0};
        for (int bt = 0; bt < BT; bt++) {
            const float* dy = dout + (size_t)bt * C;
            const float* x = inp + (size_t)bt * C;
            float m = mean[bt];
            float s = rstd[bt];
            for (int i = c0; i < c1; i++) {
                dw[i - c0] += (x[i] - m) * s * dy[i];
                db[i - c0] += dy[i];
            }
        }
        for (int i = c0; i < c1; i++) {
            if (dweight != NULL) { dweight[i] += dw[i - c0]; }
            if (dbias != NULL) { dbias[i] += db[i - c0]; }
        }
    }
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin. Rows are N = B*T positions of C channels; x, out, weight, bias are floatX, the
// statistics mean and rstd are fp32. One warp per row, same two-pass statistics as above.
//   layernorm_forward_cuda:               out = LN(inp)
//   fused_residual_layernorm_forward_cuda: residual = a + b (rounded to floatX), out = LN(residual)
//     (the residual add of one sublayer fused with the LayerNorm of the next)
//   layernorm_backward_cuda: dinp += ..., dweight += ..., dbias += ... (fp32 weight grads),
//     needs layernorm_scratch_floats(N, C) floats of scratch for the deterministic column sums;
//     dweight and/or dbias may be NULL (frozen, as in the C version)
#include "cuda_common.h"

#define LAYERNORM_ROWS_PER_BLOCK 8

// a == residual input; if b != NULL, the row is a + b and is written to residual first.
// vec (the host found C a multiple of X128 and every pointer 16-byte aligned): each lane moves
// X128 elements per access with 128-bit loads and stores; else element by element. The sums
// then run over other per-lane subsets (a fixed order either way).
__global__ static void layernorm_forward_kernel(floatX* residual, floatX* out, float* mean, float* rstd,
                                                const floatX* a, const floatX* b, const floatX* weight,
                                                const floatX* bias, int N, int C, int vec) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * LAYERNORM_ROWS_PER_BLOCK + threadIdx.x / 32;
    if (row >= N) { return; }  // whole warps leave together: no block-level sync below
    const floatX* x = a + (size_t)row * C;
    floatX* o = out + (size_t)row * C;
    int step = vec ? 32 * X128 : 32;    // elements a warp covers per access
    int width = vec ? X128 : 1;         // elements a lane covers per access
    if (b != NULL) {
        const floatX* y = b + (size_t)row * C;
        floatX* r = residual + (size_t)row * C;
        for (int i = lane * width; i < C; i += step) {
            if (vec) {
                Packed128<floatX> xa = load128(x + i), ya = load128(y + i), ra;
                for (int k = 0; k < X128; k++) { ra.v[k] = f2fx(fx2f(xa.v[k]) + fx2f(ya.v[k])); }
                store128(r + i, ra);
            } else {
                r[i] = f2fx(fx2f(x[i]) + fx2f(y[i]));
            }
        }
        x = r;  // statistics of the rounded residual, the value the backward pass will see
        __syncwarp();
    }
    float s = 0.0f;
    for (int i = lane * width; i < C; i += step) {
        if (vec) {
            Packed128<floatX> xa = load128(x + i);
            for (int k = 0; k < X128; k++) { s += fx2f(xa.v[k]); }
        } else {
            s += fx2f(x[i]);
        }
    }
    float m = warp_reduce_sum(s) / C;
    float v = 0.0f;
    for (int i = lane * width; i < C; i += step) {
        if (vec) {
            Packed128<floatX> xa = load128(x + i);
            for (int k = 0; k < X128; k++) { float d = fx2f(xa.v[k]) - m; v += d * d; }
        } else {
            float d = fx2f(x[i]) - m;
            v += d * d;
        }
    }
    v = warp_reduce_sum(v) / C;
    float rs = 1.0f / sqrtf(v + 1e-5f);
    for (int i = lane * width; i < C; i += step) {
        if (vec) {
            Packed128<floatX> xa = load128(x + i), wa = load128(weight + i), ba = load128(bias + i), oa;
            for (int k = 0; k < X128; k++) { oa.v[k] = f2fx((rs * (fx2f(xa.v[k]) - m)) * fx2f(wa.v[k]) + fx2f(ba.v[k])); }
            store128(o + i, oa);
        } else {
            o[i] = f2fx((rs * (fx2f(x[i]) - m)) * fx2f(weight[i]) + fx2f(bias[i]));
        }
    }
    if (lane == 0) {
        if (mean != NULL) { mean[row] = m; }
        if (rstd != NULL) { rstd[row] = rs; }
    }
}

// the 128-bit path needs whole vectors in every row and 16-byte aligned rows
static int layernorm_vec_ok(int C, const void* p0, const void* p1, const void* p2, const void* p3, const void* p4) {
    return C % X128 == 0 && aligned16(p0) && aligned16(p1) && aligned16(p2) && (p3 == NULL || aligned16(p3)) &&
           (p4 == NULL || aligned16(p4));
}

static void layernorm_forward_cuda(floatX* out, float* mean, float* rstd, const floatX* inp,
                                   const floatX* weight, const floatX* bias, int N, int C, cudaStream_t stream) {
    layernorm_forward_kernel<<<CEIL_DIV(N, LAYERNORM_ROWS_PER_BLOCK), 32 * LAYERNORM_ROWS_PER_BLOCK, 0, stream>>>(
        NULL, out, mean, rstd, inp, NULL, weight, bias, N, C, layernorm_vec_ok(C, out, inp, weight, bias, NULL));
    cudaCheckLaunch();
}

static void fused_residual_layernorm_forward_cuda(floatX* residual, floatX* out, float* mean, float* rstd,
                                                  const floatX* a, const floatX* b, const floatX* weight,
                                                  const floatX* bias, int N, int C, cudaStream_t stream) {
    layernorm_forward_kernel<<<CEIL_DIV(N, LAYERNORM_ROWS_PER_BLOCK), 32 * LAYERNORM_ROWS_PER_BLOCK, 0, stream>>>(
        residual, out, mean, rstd, a, b, weight, bias, N, C, layernorm_vec_ok(C, out, a, weight, bias, b) && aligned16(residual));
    cudaCheckLaunch();
}

// vec: 128-bit accesses as in layernorm_forward_kernel
__global__ static void layernorm_backward_dinp_kernel(floatX* dinp, const floatX* dout, const floatX* inp,
                                                      const floatX* weight, const float* mean,
                                                      const float* rstd, int N, int C, int vec) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * LAYERNORM_ROWS_PER_BLOCK + threadIdx.x / 32;
    if (row >= N) { return; }
    const floatX* dy = dout + (size_t)row * C;
    const floatX* x = inp + (size_t)row * C;
    floatX* dx = dinp + (size_t)row * C;
    float m = mean[row];
    float s = rstd[row];
    int step = vec ? 32 * X128 : 32;
    int width = vec ? X128 : 1;
    float dnorm_mean = 0.0f;
    float dnorm_norm_mean = 0.0f;
    for (int i = lane * width; i < C; i += step) {
        if (vec) {
            Packed128<floatX> xa = load128(x + i), wa = load128(weight + i), da = load128(dy + i);
            for (int k = 0; k < X128; k++) {
                float norm = (fx2f(xa.v[k]) - m) * s;
                float dnorm = fx2f(wa.v[k]) * fx2f(da.v[k]);
                dnorm_mean += dnorm;
                dnorm_norm_mean += dnorm * norm;
            }
        } else {
            float norm = (fx2f(x[i]) - m) * s;
            float dnorm = fx2f(weight[i]) * fx2f(dy[i]);
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
    }
    dnorm_mean = warp_reduce_sum(dnorm_mean) / C;
    dnorm_norm_mean = warp_reduce_sum(dnorm_norm_mean) / C;
    for (int i = lane * width; i < C; i += step) {
        if (vec) {
            Packed128<floatX> xa = load128(x + i), wa = load128(weight + i), da = load128(dy + i), ga = load128(dx + i);
            for (int k = 0; k < X128; k++) {
                float norm = (fx2f(xa.v[k]) - m) * s;
                float dnorm = fx2f(wa.v[k]) * fx2f(da.v[k]);
                ga.v[k] = f2fx(fx2f(ga.v[k]) + (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s);
            }
            store128(dx + i, ga);
        } else {
            float norm = (fx2f(x[i]) - m) * s;
            float dnorm = fx2f(weight[i]) * fx2f(dy[i]);
            dx[i] = f2fx(fx2f(dx[i]) + (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s);
        }
    }
}

// partial sums over fixed chunks of LAYERNORM_BWD_CHUNK rows; block (32 columns, 32 row lanes)
#define LAYERNORM_BWD_CHUNK 512
static size_t layernorm_scratch_floats(int N, int C) {
    return 2 * (size_t)CEIL_DIV(N, LAYERNORM_BWD_CHUNK) * C;
}

__global__ static void layernorm_backward_partial_kernel(float* partial, const floatX* dout, const floatX* inp,
                                                         const float* mean, const float* rstd, int N, int C) {
    __shared__ float sdw[32][33];
    __shared__ float sdb[32][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * LAYERNORM_BWD_CHUNK;
    int r1 = min(r0 + LAYERNORM_BWD_CHUNK, N);
    float dw = 0.0f, db = 0.0f;
    if (c < C) {
        for (int r = r0 + threadIdx.y; r < r1; r += 32) {
            float dy = fx2f(dout[(size_t)r * C + c]);
            dw += (fx2f(inp[(size_t)r * C + c]) - mean[r]) * rstd[r] * dy;
            db += dy;
        }
    }
    sdw[threadIdx.y][threadIdx.x] = dw;
    sdb[threadIdx.y][threadIdx.x] = db;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float tw = 0.0f, tb = 0.0f;
        for (int i = 0; i < 32; i++) { tw += sdw[i][threadIdx.x]; tb += sdb[i][threadIdx.x]; }
        size_t nchunks = gridDim.y;
        partial[(size_t)blockIdx.y * C + c] = tw;
        partial[nchunks * C + (size_t)blockIdx.y * C + c] = tb;
    }
}

// The same partial sums, 16 bytes a load (layernorm_vec_ok): a thread takes X128 adjacent
// columns of every 8th row of the chunk, so a warp's request covers 512 bytes of dout and of inp
// where the kernel above moves 64 (bf16) and each thread keeps X128 times the bytes in flight
// (the same change as colsum_partial_vec_kernel in cuda_common.h; the kernel above took 2.14 ms
// of the H200's d12 step against 1.28 ms to read the two tensors). Block (32, VEC_ROW_LANES).
__global__ static void layernorm_backward_partial_vec_kernel(float* partial, const floatX* dout, const floatX* inp,
                                                             const float* mean, const float* rstd, int N, int C) {
    __shared__ float sdw[VEC_ROW_LANES][32 * (X128 + 1)];
    __shared__ float sdb[VEC_ROW_LANES][32 * (X128 + 1)];
    int c0 = (blockIdx.x * 32 + threadIdx.x) * X128;
    int r0 = blockIdx.y * LAYERNORM_BWD_CHUNK;
    int r1 = min(r0 + LAYERNORM_BWD_CHUNK, N);
    float dw[X128], db[X128];
    for (int k = 0; k < X128; k++) { dw[k] = 0.0f; db[k] = 0.0f; }
    if (c0 < C) {
        #pragma unroll 2
        for (int r = r0 + threadIdx.y; r < r1; r += VEC_ROW_LANES) {
            Packed128<floatX> dy = load128(dout + (size_t)r * C + c0), x = load128(inp + (size_t)r * C + c0);
            float m = mean[r], s = rstd[r];
            for (int k = 0; k < X128; k++) {
                float g = fx2f(dy.v[k]);
                dw[k] += (fx2f(x.v[k]) - m) * s * g;
                db[k] += g;
            }
        }
    }
    float tw = vec_row_lanes_total(sdw, dw), tb = vec_row_lanes_total(sdb, db);
    int i = threadIdx.y * 32 + threadIdx.x, c = blockIdx.x * 32 * X128 + i;
    if (i < 32 * X128 && c < C) {
        size_t nchunks = gridDim.y;
        partial[(size_t)blockIdx.y * C + c] = tw;
        partial[nchunks * C + (size_t)blockIdx.y * C + c] = tb;
    }
}

__global__ static void layernorm_backward_finish_kernel(float* dweight, float* dbias, const float* partial,
                                                        int nchunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) { return; }
    float tw = 0.0f, tb = 0.0f;
    for (int i = 0; i < nchunks; i++) {
        tw += partial[(size_t)i * C + c];
        tb += partial[(size_t)nchunks * C + (size_t)i * C + c];
    }
    if (dweight != NULL) { dweight[c] += tw; }
    if (dbias != NULL) { dbias[c] += tb; }
}

static void layernorm_backward_cuda(floatX* dinp, float* dweight, float* dbias, const floatX* dout,
                                    const floatX* inp, const floatX* weight, const float* mean,
                                    const float* rstd, int N, int C, float* scratch, cudaStream_t stream) {
    layernorm_backward_dinp_kernel<<<CEIL_DIV(N, LAYERNORM_ROWS_PER_BLOCK), 32 * LAYERNORM_ROWS_PER_BLOCK, 0, stream>>>(
        dinp, dout, inp, weight, mean, rstd, N, C, layernorm_vec_ok(C, dinp, dout, inp, weight, NULL));
    cudaCheckLaunch();
    // a frozen LayerNorm (parameter-efficient fine-tuning) has no weight gradients: dinp only
    if (dweight == NULL && dbias == NULL) { return; }
    int nchunks = CEIL_DIV(N, LAYERNORM_BWD_CHUNK);
    if (layernorm_vec_ok(C, dout, inp, NULL, NULL, NULL)) {
        layernorm_backward_partial_vec_kernel<<<dim3(CEIL_DIV(C, 32 * X128), nchunks), dim3(32, VEC_ROW_LANES), 0,
                                                stream>>>(scratch, dout, inp, mean, rstd, N, C);
    } else {
        layernorm_backward_partial_kernel<<<dim3(CEIL_DIV(C, 32), nchunks), dim3(32, 32), 0, stream>>>(
            scratch, dout, inp, mean, rstd, N, C);
    }
    cudaCheckLaunch();
    layernorm_backward_finish_kernel<<<CEIL_DIV(C, 256), 256, 0, stream>>>(dweight, dbias, scratch, nchunks, C);
    cudaCheckLaunch();
}
#endif // __CUDACC__

#endif // LLMC_LAYERNORM_H
