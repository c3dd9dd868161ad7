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
// CUDA twin: the same products on cuBLASLt (llmc/matmul.h), in the row-major/column-major
// spelling of matmul_forward_cuda and matmul_backward_cuda. The scale s rides in the matmul's
// alpha, and the two sums into the frozen layer's tensors (out += ..., dinp += ...) in its
// beta = 1, so each floatX value is rounded once, from the fp32 accumulator. h and dh are
// floatX, the weight gradients fp32 and accumulated (beta = 1) like the model's.
#include "cuda_common.h"

// h = s * inp A^T (BT, r), kept for the backward pass; out += h B^T
static void lora_forward_cuda(floatX* out, floatX* h, const floatX* inp, const floatX* A, const floatX* Bm, float s,
                              int BT, int IC, int OC, int r, cudaStream_t stream) {
    // h^T (r x BT) = s [A as stored: IC x r]^T @ [inp as stored: IC x BT]
    matmul_cublaslt_scaled(h, CUBLAS_FLOATX, A, inp, r, BT, IC, 1, 0, IC, IC, r, s, 0.0f,
                           CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, stream);
    // out^T (OC x BT) += [B as stored: r x OC]^T @ [h as stored: r x BT]
    matmul_cublaslt_scaled(out, CUBLAS_FLOATX, Bm, h, OC, BT, r, 1, 0, r, r, OC, 1.0f, 1.0f,
                           CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, stream);
}

// dB += dout^T h;  dh = s (dout B);  dA += dh^T inp;  dinp += dh A (accumulated: the frozen
// layer's matmul_backward_cuda wrote dinp first). dh: BT*r floatX scratch.
static void lora_backward_cuda(floatX* dinp, float* dA, float* dB, floatX* dh, const floatX* dout, const floatX* inp,
                               const floatX* h, const floatX* A, const floatX* Bm, float s, int BT, int IC, int OC, int r,
                               cudaStream_t stream) {
    // dB^T (r x OC) += [h as stored: r x BT] @ [dout as stored: OC x BT]^T
    matmul_cublaslt_scaled(dB, CUDA_R_32F, h, dout, r, OC, BT, 0, 1, r, OC, r, 1.0f, 1.0f,
                           CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, stream);
    // dh^T (r x BT) = s [B as stored: r x OC] @ [dout as stored: OC x BT]
    matmul_cublaslt_scaled(dh, CUBLAS_FLOATX, Bm, dout, r, BT, OC, 0, 0, r, OC, r, s, 0.0f,
                           CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, stream);
    // dA^T (IC x r) += [inp as stored: IC x BT] @ [dh as stored: r x BT]^T
    matmul_cublaslt_scaled(dA, CUDA_R_32F, inp, dh, IC, r, BT, 0, 1, IC, r, IC, 1.0f, 1.0f,
                           CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, stream);
    // dinp^T (IC x BT) += [A as stored: IC x r] @ [dh as stored: r x BT]
    matmul_cublaslt_scaled(dinp, CUBLAS_FLOATX, A, dh, IC, BT, r, 0, 0, IC, r, IC, 1.0f, 1.0f,
                           CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, stream);
}
#endif // __CUDACC__

#endif // LLMC_LORA_H
