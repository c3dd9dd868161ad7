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
// CUDA twin on cuBLASLt with the biases in the epilogue; activations floatX, weight gradients fp32.
#include "cuda_common.h"

// tmp: BT*C floatX scratch (the bottleneck's output before the skip add)
static void adapter_forward_cuda(floatX* out, floatX* z, floatX* g, floatX* tmp, const floatX* inp, const floatX* Wd,
                                 const floatX* bd, const floatX* Wu, const floatX* bu, int BT, int C, int m,
                                 cudaStream_t stream) {
    matmul_forward_cuda(z, inp, Wd, bd, BT, C, m, NULL, stream);
    gelu_forward_cuda(g, z, (size_t)BT * m, stream);
    matmul_forward_cuda(tmp, g, Wu, bu, BT, m, C, NULL, stream);
    residual_forward_cuda(out, inp, tmp, (size_t)BT * C, stream);
}

// dinp = dout + dz Wd (overwritten, not accumulated); dg, dz: BT*m floatX scratch
static void adapter_backward_cuda(floatX* dinp, float* dWd, float* dbd, float* dWu, float* dbu, floatX* dg, floatX* dz,
                                  const floatX* dout, const floatX* inp, const floatX* z, const floatX* g,
                                  const floatX* Wd, const floatX* Wu, int BT, int C, int m, float* reduce,
                                  cudaStream_t stream) {
    cudaCheck(cudaMemsetAsync(dg, 0, (size_t)BT * m * sizeof(floatX), stream));
    matmul_backward_cuda(dg, dWu, dbu, dout, g, Wu, BT, m, C, NULL, reduce, stream);
    cudaCheck(cudaMemsetAsync(dz, 0, (size_t)BT * m * sizeof(floatX), stream));
    gelu_backward_cuda(dz, z, dg, (size_t)BT * m, stream);
    matmul_backward_cuda(dinp, dWd, dbd, dz, inp, Wd, BT, C, m, NULL, reduce, stream);  // dinp = dz Wd
    residual_forward_cuda(dinp, dinp, dout, (size_t)BT * C, stream);                    // + the skip path
}
#endif // __CUDACC__

#endif // LLMC_ADAPTER_H
