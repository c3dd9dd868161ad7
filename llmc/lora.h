// LoRA, the low-rank update of a linear layer (llmc/peft.h has the method and its layout):
//   out (BT, OC) += s * (inp A^T) B^T,   inp (BT, IC), A (r, IC), B (OC, r)
// forward:  h = s * inp A^T (BT, r), kept for the backward pass; out += h B^T
// backward: dB += dout^T h;  dh = s * (dout B);  dA += dh^T inp;  dinp += dh A
// (dh: BT*r floats of scratch). The frozen weight W of the layer is not touched here: the
// layer's own matmul_forward/matmul_backward run beside these, the latter with dweight NULL.
#ifndef LLMC_LORA_H
#define LLMC_LORA_H

#include <string.h>
#include "matmul.h"
#include "residual.h"

static void lora_forward(float* out, float* h, const float* inp, const float* A, const float* Bm, float s,
                         int BT, int IC, int OC, int r) {
    matmul_forward(h, inp, A, NULL, 1, BT, IC, r);
    for (size_t i = 0; i < (size_t)BT * r; i++) { h[i] *= s; }
    // out[BT, OC] += h[BT, r] @ B^T: the B operand of gemm at [k, j] is Bm[j*r + k]
    gemm(BT, OC, r, h, r, 1, Bm, 1, r, out, OC, 1, NULL);
}

static void lora_backward(float* dinp, float* dA, float* dB, float* dh, const float* dout, const float* inp,
                          const float* h, const float* A, const float* Bm, float s, int BT, int IC, int OC, int r) {
    memset(dh, 0, (size_t)BT * r * sizeof(float));
    matmul_backward(dh, dB, NULL, dout, h, Bm, 1, BT, r, OC);  // dh = dout B, dB += dout^T h
    for (size_t i = 0; i < (size_t)BT * r; i++) { dh[i] *= s; }
    matmul_backward(dinp, dA, NULL, dh, inp, A, 1, BT, IC, r);  // dinp += dh A, dA += dh^T inp
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin: the same two products on cuBLASLt (llmc/matmul.h), h kept in floatX, the scale
// applied by a small elementwise kernel. Weight gradients accumulate in fp32 like the model's.
#include "cuda_common.h"

__global__ static void lora_scale_kernel(floatX* x, float s, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { x[i] = f2fx(s * fx2f(x[i])); }
}

// out += h B^T with h = s * inp A^T; tmp: BT*OC floatX scratch (the low-rank product before the add)
static void lora_forward_cuda(floatX* out, floatX* h, floatX* tmp, const floatX* inp, const floatX* A, const floatX* Bm,
                              float s, int BT, int IC, int OC, int r, cudaStream_t stream) {
    matmul_forward_cuda(h, inp, A, NULL, BT, IC, r, NULL, stream);
    size_t n = (size_t)BT * r;
    lora_scale_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(h, s, n);
    cudaCheckLaunch();
    matmul_forward_cuda(tmp, h, Bm, NULL, BT, r, OC, NULL, stream);
    residual_forward_cuda(out, out, tmp, (size_t)BT * OC, stream);
}

// dinp += s (dout B) A, dA += s (dout B)^T inp, dB += dout^T h; dh: BT*r floatX scratch,
// dinp_tmp: BT*IC floatX scratch for the input gradient before it joins dinp; reduce: as matmul_backward_cuda
static void lora_backward_cuda(floatX* dinp, float* dA, float* dB, floatX* dh, floatX* dinp_tmp, const floatX* dout,
                               const floatX* inp, const floatX* h, const floatX* A, const floatX* Bm, float s,
                               int BT, int IC, int OC, int r, float* reduce, cudaStream_t stream) {
    cudaCheck(cudaMemsetAsync(dh, 0, (size_t)BT * r * sizeof(floatX), stream));
    matmul_backward_cuda(dh, dB, NULL, dout, h, Bm, BT, r, OC, NULL, reduce, stream);
    size_t n = (size_t)BT * r;
    lora_scale_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(dh, s, n);
    cudaCheckLaunch();
    matmul_backward_cuda(dinp_tmp, dA, NULL, dh, inp, A, BT, IC, r, NULL, reduce, stream);
    residual_forward_cuda(dinp, dinp, dinp_tmp, (size_t)BT * IC, stream);
}
#endif // __CUDACC__

#endif // LLMC_LORA_H
