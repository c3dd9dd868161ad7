// cuDNN's fused attention (SDPA, FlashAttention-2 inside cuDNN) as the third implementation
// of llmc/attention.h's attention_forward_cuda / attention_backward_cuda. Only in bf16 builds
// with USE_CUDNN=1 (-DENABLE_CUDNN); included by attention.h, never on its own.
//
// Why a header and a separate .cpp: cuDNN's graph API is reached through NVIDIA's header-only
// C++ frontend (fetched by dev/cuda/get_cudnn_frontend.sh into build/cudnn_frontend/include),
// and putting those headers through nvcc's device front end (cicc) costs about 100 s per GPU
// architecture per program. llmc/attention_cudnn.cpp is host code: it is compiled once, by the
// host compiler, into build/attention_cudnn.o, which every USE_CUDNN=1 program links. This
// header is what the CUDA side sees: an opaque handle and six functions.
//
// Layouts are ours, described to cuDNN with strides, so nothing is copied or transposed:
//   q, k, v: (B, NH, T, HS) views into qkv (B, T, 3, NH, HS)
//   out, dout: (B, NH, T, HS) views into (B, T, NH, HS)
//   lse: (B, NH, T) fp32, cuDNN's logsumexp of each row of scaled scores (natural log), kept
//        between the forward and the backward
//   dq, dk, dv: written into dqkv with q, k, v's strides
// The graphs are built once for one (B, T, C, NH), with the workspace; a step allocates
// nothing. The backward asks for cuDNN's deterministic algorithm: the rest of the trainer is
// bitwise reproducible and this keeps it so. Every failure exits with a message.
#ifndef LLMC_ATTENTION_CUDNN_H
#define LLMC_ATTENTION_CUDNN_H

#include <stddef.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>

typedef struct AttentionCudnn AttentionCudnn;

AttentionCudnn* attention_cudnn_create(int B, int T, int C, int NH, cudaStream_t stream);
int attention_cudnn_matches(const AttentionCudnn* a, int B, int T, int C, int NH);
size_t attention_cudnn_workspace_bytes(const AttentionCudnn* a);
void attention_cudnn_forward(AttentionCudnn* a, __nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv,
                             cudaStream_t stream);
void attention_cudnn_backward(AttentionCudnn* a, __nv_bfloat16* dqkv, const __nv_bfloat16* dout,
                              const __nv_bfloat16* qkv, const __nv_bfloat16* out, const float* lse,
                              cudaStream_t stream);
void attention_cudnn_destroy(AttentionCudnn* a);

#endif // LLMC_ATTENTION_CUDNN_H
