// Houlsby adapter, a bottleneck MLP with a skip connection (llmc/peft.h has the method):
//   out = inp + gelu(inp Wd^T + bd) Wu^T + bu,   inp (BT, C), Wd (m, C), bd (m), Wu (C, m), bu (C)
// forward keeps z = inp Wd^T + bd and g = gelu(z) (BT, m each) for the backward pass; out
// may not alias inp (the backward needs inp).
// backward: dWu += dout^T g; dbu += sum dout; dg = dout Wu; dz = gelu'(z) dg;
//           dWd += dz^T inp; dbd += sum dz; dinp += dout + dz Wd     (dg, dz: BT*m scratch)
#ifndef LLMC_ADAPTER_H
#define LLMC_ADAPTER_H

#include <string.h>
#include "matmul.h"
#include "gelu.h"
#include "residual.h"

static void adapter_forward(float* out, float* z, float* g, const float* inp, const float* Wd, const float* bd,
                            const float* Wu, const float* bu, int BT, int C, int m) {
    matmul_forward(z, inp, Wd, bd, 1, BT, C, m);
    gelu_forward(g, z, (size_t)BT * m);
    memcpy(out, inp, (size_t)BT * C * sizeof(float));
    // out[BT, C] += bu + g[BT, m] @ Wu^T: the B operand of gemm at [k, j] is Wu[j*m + k]
    gemm(BT, C, m, g, m, 1, Wu, 1, m, out, C, 1, bu);
}

static void adapter_backward(float* dinp, float* dWd, float* dbd, float* dWu, float* dbu, float* dg, float* dz,
                             const float* dout, const float* inp, const float* z, const float* g,
                             const float* Wd, const float* Wu, int BT, int C, int m) {
    size_t n = (size_t)BT * C;
    for (size_t i = 0; i < n; i++) { dinp[i] += dout[i]; }  // the skip connection
    memset(dg, 0, (size_t)BT * m * sizeof(float));
    matmul_backward(dg, dWu, dbu, dout, g, Wu, 1, BT, m, C);
    memset(dz, 0, (size_t)BT * m * sizeof(float));
    gelu_backward(dz, z, dg, (size_t)BT * m);
    matmul_backward(dinp, dWd, dbd, dz, inp, Wd, 1, BT, C, m);
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin on cuBLASLt (llmc/matmul.h): activations floatX, weight gradients fp32 and
// accumulated. The skip connection is summed in the matmul (beta = 1 onto a copy of the
// input), as the C version sums onto its copy, so out and dinp round once.
#include "cuda_common.h"

// out = inp + gelu(inp Wd^T + bd) Wu^T + bu; z, g: (BT, m) kept for the backward; out may not alias inp
static void adapter_forward_cuda(floatX* out, floatX* z, floatX* g, const floatX* inp, const floatX* Wd,
                                 const floatX* bd, const floatX* Wu, const floatX* bu, int BT, int C, int m,
                                 cudaStream_t stream) {
    matmul_forward_cuda(z, inp, Wd, bd, BT, C, m, NULL, stream);
    gelu_forward_cuda(g, z, (size_t)BT * m, stream);
    cudaCheck(cudaMemcpyAsync(out, inp, (size_t)BT * C * sizeof(floatX), cudaMemcpyDeviceToDevice, stream));
    // out^T (C x BT) += [Wu as stored: m x C]^T @ [g as stored: m x BT] + bu
    matmul_cublaslt(out, CUBLAS_FLOATX, Wu, g, C, BT, m, 1, 0, m, m, C, 1.0f, CUBLASLT_EPILOGUE_BIAS, bu,
                    NULL, 0, stream);
}

// dinp = dout + dz Wd (written, not accumulated); dWu += dout^T g; dbu += sum dout;
// dz = gelu'(z) (dout Wu); dWd += dz^T inp; dbd += sum dz. dg, dz: BT*m floatX scratch;
// reduce: colsum_scratch_floats(BT, max(C, m)) floats
static void adapter_backward_cuda(floatX* dinp, float* dWd, float* dbd, float* dWu, float* dbu, floatX* dg, floatX* dz,
                                  const floatX* dout, const floatX* inp, const floatX* z, const floatX* g,
                                  const floatX* Wd, const floatX* Wu, int BT, int C, int m, float* reduce,
                                  cudaStream_t stream) {
    matmul_backward_cuda(dg, dWu, dbu, dout, g, Wu, BT, m, C, NULL, reduce, stream);  // dg = dout Wu
    gelu_backward_cuda(dz, z, dg, (size_t)BT * m, stream);
    // dinp^T (C x BT) = [dout as stored] + [Wd as stored: C x m] @ [dz as stored: m x BT]
    cudaCheck(cudaMemcpyAsync(dinp, dout, (size_t)BT * C * sizeof(floatX), cudaMemcpyDeviceToDevice, stream));
    matmul_cublaslt(dinp, CUBLAS_FLOATX, Wd, dz, C, BT, m, 0, 0, C, m, C, 1.0f, CUBLASLT_EPILOGUE_DEFAULT, NULL,
                    NULL, 0, stream);
    // dWd^T (C x m) += [inp as stored: C x BT] @ [dz as stored: m x BT]^T
    matmul_cublaslt(dWd, CUDA_R_32F, inp, dz, C, m, BT, 0, 1, C, m, C, 1.0f, CUBLASLT_EPILOGUE_DEFAULT, NULL,
                    NULL, 0, stream);
    colsum_accumulate_cuda(dbd, dz, BT, m, reduce, stream);
}
#endif // __CUDACC__

#endif // LLMC_ADAPTER_H
