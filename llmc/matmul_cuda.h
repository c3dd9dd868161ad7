// The CUDA matmul (cuBLASLt) for CUDA files. Its code is moving into llmc/matmul.h's
// #ifdef __CUDACC__ section; until then it is in dev/cuda/matmul_cuda_draft.h.
#ifndef LLMC_MATMUL_CUDA_H
#define LLMC_MATMUL_CUDA_H
#include "matmul.h"
#include "../dev/cuda/matmul_cuda_draft.h"
#endif // LLMC_MATMUL_CUDA_H
