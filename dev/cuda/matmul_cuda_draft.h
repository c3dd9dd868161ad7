// DRAFT of the CUDA twin of llmc/matmul.h (cuBLASLt). It lives here until the CPU matmul
// rewrite lands; then this section moves, unchanged, under #ifdef __CUDACC__ at the end of
// llmc/matmul.h and this file includes that instead. Files that need it include
// "llmc/matmul_cuda.h", a two-line forwarder, so the move touches no caller.
#ifndef LLMC_MATMUL_CUDA_DRAFT_H
#define LLMC_MATMUL_CUDA_DRAFT_H
#ifdef __CUDACC__
// ----------------------------------------------------------------------------
// CUDA twin: cuBLASLt, with the bias and GELU fused into the matmul's epilogue.
// Row-major (ours) vs column-major (cuBLAS): a row-major (R, K) matrix is a column-major
// (K, R) one, so out[BT, OC] = inp[BT, C] @ W[OC, C]^T is, column-major,
// out^T (OC x BT) = W^T-as-stored-transposed @ inp-as-stored; each call below spells it out.
//   matmul_forward_cuda:  out = inp @ W^T + bias          (epilogue BIAS)
//                         or out = gelu(inp @ W^T + bias) with the pre-GELU values saved to
//                         pre_gelu                        (epilogue GELU_AUX_BIAS)
//   matmul_backward_cuda: dinp = dout @ W (written, not accumulated), or with pre_gelu,
//                         dinp = gelu'(pre_gelu) * (dout @ W) (epilogue DGELU);
//                         dweight += dout^T @ inp (fp32, beta = 1: gradient accumulation);
//                         dbias += column sums of dout (own deterministic kernel, fp32)
// Precision: floatX inputs, fp32 accumulation (CUBLAS_COMPUTE_32F: true fp32 in the FP32
// build, no TF32), floatX activations out, fp32 weight gradients out. Deterministic for a given
// GPU and shape (cuBLASLt's split-K schemes reduce in a fixed order).
// cuBLASLt's GELU is GPT-2's tanh approximation (llm.c checks its fused path against the same
// C reference); test_gpt.cu checks the fused path against the plain kernels (LLMC_GELU_FUSION).
#include "../../llmc/cuda_common.h"

#define CUBLASLT_WORKSPACE_BYTES (32u << 20)
static cublasLtHandle_t cublaslt_handle = NULL;
static void* cublaslt_workspace = NULL;

static void matmul_cuda_init(void) {
    if (cublaslt_handle != NULL) { return; }
    cublasCheck(cublasLtCreate(&cublaslt_handle));
    cublaslt_workspace = cuda_malloc_check(CUBLASLT_WORKSPACE_BYTES, "cuBLASLt workspace");
}

static void matmul_cuda_free(void) {
    if (cublaslt_handle == NULL) { return; }
    cublasCheck(cublasLtDestroy(cublaslt_handle));
    cudaCheck(cudaFree(cublaslt_workspace));
    cublaslt_handle = NULL;
    cublaslt_workspace = NULL;
}

// largest power of two dividing the address, capped at 256: what the heuristic may assume
static uint32_t matmul_alignment(const void* p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && (a % al) != 0) { al >>= 1; }
    return al;
}

// D (m x n, column-major, ldd) = op(A) @ op(B) (+ beta * D), with an epilogue.
// A is m x k after op, B is k x n after op; a, b are floatX; d is floatX or fp32 (d_type).
static void matmul_cublaslt(void* d, cudaDataType_t d_type, const floatX* a, const floatX* b,
                            int m, int n, int k, int transA, int transB, int lda, int ldb, int ldd,
                            float beta, cublasLtEpilogue_t epilogue, const floatX* bias,
                            void* aux, int ldaux, cudaStream_t stream) {
    if (cublaslt_handle == NULL) { fprintf(stderr, "error: matmul_cuda_init() was not called\n"); exit(EXIT_FAILURE); }
    cublasLtMatmulDesc_t desc;
    cublasCheck(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    if (bias != NULL) {
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
        cudaDataType_t bias_type = CUBLAS_FLOATX;
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
    }
    if (aux != NULL) {
        int64_t ld = ldaux;
        int32_t aux_type = CUBLAS_FLOATX;
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &aux_type, sizeof(aux_type)));
    }
    // layouts describe the matrices as stored (before op)
    cublasLtMatrixLayout_t la, lb, ld_;
    cublasCheck(cublasLtMatrixLayoutCreate(&la, CUBLAS_FLOATX, transA ? k : m, transA ? m : k, lda));
    cublasCheck(cublasLtMatrixLayoutCreate(&lb, CUBLAS_FLOATX, transB ? n : k, transB ? k : n, ldb));
    cublasCheck(cublasLtMatrixLayoutCreate(&ld_, d_type, m, n, ldd));

    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = CUBLASLT_WORKSPACE_BYTES;
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    // the default assumes 256-byte aligned pointers; ours point inside big buffers
    uint32_t al_a = matmul_alignment(a), al_b = matmul_alignment(b), al_d = matmul_alignment(d);
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof(al_d)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof(al_d)));

    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasCheck(cublasLtMatmulAlgoGetHeuristic(cublaslt_handle, desc, la, lb, ld_, ld_, pref, 1, &heur, &found));
    if (found == 0) {
        fprintf(stderr, "error: cuBLASLt has no algorithm for m=%d n=%d k=%d transA=%d transB=%d epilogue=%d (%s)\n",
                m, n, k, transA, transB, (int)epilogue, PRECISION_NAME);
        exit(EXIT_FAILURE);
    }
    float alpha = 1.0f;
    cublasCheck(cublasLtMatmul(cublaslt_handle, desc, &alpha, a, la, b, lb, &beta, d, ld_, d, ld_,
                               &heur.algo, cublaslt_workspace, CUBLASLT_WORKSPACE_BYTES, stream));
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    cublasCheck(cublasLtMatrixLayoutDestroy(la));
    cublasCheck(cublasLtMatrixLayoutDestroy(lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(ld_));
    cublasCheck(cublasLtMatmulDescDestroy(desc));
}

// out (BT, OC) = inp (BT, C) @ weight (OC, C)^T + bias; bias may be NULL.
// pre_gelu != NULL: out = gelu(...) and pre_gelu (BT, OC) receives the values before the GELU.
static void matmul_forward_cuda(floatX* out, const floatX* inp, const floatX* weight, const floatX* bias,
                                int BT, int C, int OC, floatX* pre_gelu, cudaStream_t stream) {
    cublasLtEpilogue_t ep;
    if (pre_gelu != NULL) { ep = bias != NULL ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX; }
    else { ep = bias != NULL ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT; }
    // column-major: out^T (OC x BT) = [W as stored: C x OC]^T @ [inp as stored: C x BT]
    matmul_cublaslt(out, CUBLAS_FLOATX, weight, inp, OC, BT, C, 1, 0, C, C, OC, 0.0f, ep, bias,
                    pre_gelu, OC, stream);
}

// scratch: colsum_scratch_floats(BT, OC) floats (for dbias); dbias may be NULL.
// pre_gelu != NULL: the matmul's input went through GELU (inp = gelu(pre_gelu)) and dinp
// receives the gradient with respect to pre_gelu instead (DGELU epilogue).
static void matmul_backward_cuda(floatX* dinp, float* dweight, float* dbias, const floatX* dout,
                                 const floatX* inp, const floatX* weight, int BT, int C, int OC,
                                 const floatX* pre_gelu, float* scratch, cudaStream_t stream) {
    // dinp^T (C x BT) = [W as stored: C x OC] @ [dout as stored: OC x BT]
    matmul_cublaslt(dinp, CUBLAS_FLOATX, weight, dout, C, BT, OC, 0, 0, C, OC, C, 0.0f,
                    pre_gelu != NULL ? CUBLASLT_EPILOGUE_DGELU : CUBLASLT_EPILOGUE_DEFAULT, NULL,
                    (void*)pre_gelu, C, stream);
    // dweight^T (C x OC) += [inp as stored: C x BT] @ [dout as stored: OC x BT]^T
    matmul_cublaslt(dweight, CUDA_R_32F, inp, dout, C, OC, BT, 0, 1, C, OC, C, 1.0f,
                    CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, stream);
    if (dbias != NULL) { colsum_accumulate_cuda(dbias, dout, BT, OC, scratch, stream); }
}

#endif // __CUDACC__
#endif // LLMC_MATMUL_CUDA_DRAFT_H
