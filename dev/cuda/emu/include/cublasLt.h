// CPU emulation of CUDA (dev/cuda/emu): cuBLASLt, only the subset llmc/matmul.h and
// llmc/cuda_common.h use, as plain loops on the host (device memory is host memory here).
//
// What it computes (cublasLtMatmul), column-major as in cuBLAS:
//   op(A) is m x k, op(B) is k x n, C and D are m x n (m, n, k come from the layouts and TRANSA/B)
//   t = alpha * op(A) op(B) + beta * C          (C is not read when beta == 0, as in cuBLAS)
//   BIAS*:  t += bias[row]                       (bias: m elements, BIAS_DATA_TYPE, default D's type)
//   GELU*:  aux = t (the GELU input, *_AUX only), t = gelu(t)   (tanh approximation)
//   DGELU:  t = t * gelu'(aux)                   (aux: the forward's GELU input, read)
//   D = t, rounded once to D's type (bf16: round to nearest even)
// Precision: each dot product is accumulated in double and rounded to float once; alpha, beta,
// the bias and the GELU math are then fp32, as in a GPU epilogue. So results do not depend on k's
// summation order (a GPU's fp32 sums do, in the last bits).
// Types: A and B both CUDA_R_16BF or both CUDA_R_32F; C and D the same type, CUDA_R_16BF (bf16
// inputs only) or CUDA_R_32F; compute CUBLAS_COMPUTE_32F with scale type CUDA_R_32F.
//
// Refusals (documented cuBLASLt rules, checked by cublasLtMatmulAlgoGetHeuristic and again by
// cublasLtMatmul):
//   - CUBLAS_STATUS_INVALID_VALUE: an attribute value of the wrong size; layouts that do not fit
//     together (op(A) m x k, op(B) k x n, C and D m x n); a leading dimension below the rows
//   - CUBLAS_STATUS_NOT_SUPPORTED (found = 0): a type combination outside the list above; an
//     epilogue other than DEFAULT, BIAS, GELU, GELU_BIAS, GELU_AUX, GELU_AUX_BIAS, DGELU; for the
//     GELU aux epilogues an EPILOGUE_AUX_LD that is not a multiple of 8 or is below D's rows
//     ("must be divisible by 8 and be no less than the number of rows in the output matrix"),
//     or an EPILOGUE_AUX_DATA_TYPE other than D's type (cuBLASLt only documents other aux types
//     for FP8 outputs: a conservative choice)
//   - cublasLtMatmul: CUBLAS_STATUS_INVALID_VALUE for a NULL alpha/beta/A/B/D, a NULL C with
//     beta != 0, a NULL bias or aux pointer its epilogue needs, C == D with different layouts
// And one check that is a crash on a GPU rather than a status: an algorithm from the heuristic
// assumes the A/B/C/D pointers are aligned as the preference said (MIN_ALIGNMENT_*_BYTES,
// default 256); a less aligned pointer at cublasLtMatmul is a misaligned-address fault on a GPU,
// so it stops the emulation (emu_fail).
// Not emulated: bias/aux pointer alignment rules (undocumented), workspace use (the algorithm
// needs none), batches, every other attribute.
#ifndef EMU_CUBLASLT_H
#define EMU_CUBLASLT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16
} cublasStatus_t;

typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;

// the values are cuBLASLt's (they are flags: GELU_AUX = GELU | 128, ...)
typedef enum {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_GELU = 32,
    CUBLASLT_EPILOGUE_GELU_AUX = 32 | 128,
    CUBLASLT_EPILOGUE_GELU_BIAS = 32 | 4,
    CUBLASLT_EPILOGUE_GELU_AUX_BIAS = 32 | 128 | 4,
    CUBLASLT_EPILOGUE_DGELU = 64 | 128
} cublasLtEpilogue_t;

typedef enum {
    CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0,        // int32_t
    CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,          // int32_t
    CUBLASLT_MATMUL_DESC_TRANSA = 3,              // int32_t
    CUBLASLT_MATMUL_DESC_TRANSB = 4,              // int32_t
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,            // uint32_t
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,        // const void*
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11,  // void*
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12,    // int64_t
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE = 22,  // int32_t
    CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26      // int32_t
} cublasLtMatmulDescAttributes_t;

typedef enum {
    CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0,         // uint32_t
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,  // uint64_t
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,  // uint32_t
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8
} cublasLtMatmulPreferenceAttributes_t;

struct EmuLtContext { int unused; };
struct EmuLtMatmulDesc {
    int32_t transa, transb;
    uint32_t epilogue;
    const void* bias;
    int32_t bias_type;   // -1: D's type (cuBLASLt's default)
    void* aux;
    int64_t aux_ld;
    int32_t aux_type;    // -1: D's type
};
struct EmuLtLayout { cudaDataType_t type; uint64_t rows, cols; int64_t ld; };
struct EmuLtPreference { uint32_t align[4]; };  // MIN_ALIGNMENT_{A,B,C,D}_BYTES

typedef EmuLtContext* cublasLtHandle_t;
typedef EmuLtMatmulDesc* cublasLtMatmulDesc_t;
typedef EmuLtLayout* cublasLtMatrixLayout_t;
typedef EmuLtPreference* cublasLtMatmulPreference_t;

typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

// what our one algorithm keeps in cublasLtMatmulAlgo_t::data: a tag, then the alignments of
// A, B, C, D (bytes) that the heuristic was allowed to assume
#define EMU_LT_ALGO_TAG 0x656d754c74416c67ull

static inline const char* cublasLtGetStatusName(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

// ----------------------------------------------------------------------------
// handles and descriptors

static inline cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
    if (h == NULL) { return CUBLAS_STATUS_INVALID_VALUE; }
    *h = (cublasLtHandle_t)calloc(1, sizeof(EmuLtContext));
    return *h != NULL ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
static inline cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    if (h == NULL) { return CUBLAS_STATUS_NOT_INITIALIZED; }
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}

static inline cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute,
                                                      cudaDataType_t scale) {
    if (d == NULL) { return CUBLAS_STATUS_INVALID_VALUE; }
    if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) { return CUBLAS_STATUS_NOT_SUPPORTED; }
    *d = (cublasLtMatmulDesc_t)calloc(1, sizeof(EmuLtMatmulDesc));
    if (*d == NULL) { return CUBLAS_STATUS_ALLOC_FAILED; }
    (*d)->transa = CUBLAS_OP_N;
    (*d)->transb = CUBLAS_OP_N;
    (*d)->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    (*d)->bias_type = -1;
    (*d)->aux_type = -1;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { free(d); return CUBLAS_STATUS_SUCCESS; }

// like cuBLASLt: the size must be exactly the attribute's (else CUBLAS_STATUS_INVALID_VALUE)
static inline cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                                            const void* buf, size_t size) {
    if (d == NULL || buf == NULL) { return CUBLAS_STATUS_INVALID_VALUE; }
    int32_t i32 = 0;
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
        case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
            if (size != sizeof(int32_t)) { return CUBLAS_STATUS_INVALID_VALUE; }
            memcpy(&i32, buf, 4);
            if (i32 != (attr == CUBLASLT_MATMUL_DESC_COMPUTE_TYPE ? (int32_t)CUBLAS_COMPUTE_32F : (int32_t)CUDA_R_32F)) {
                return CUBLAS_STATUS_NOT_SUPPORTED;
            }
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_TRANSA:
        case CUBLASLT_MATMUL_DESC_TRANSB:
            if (size != sizeof(int32_t)) { return CUBLAS_STATUS_INVALID_VALUE; }
            memcpy(&i32, buf, 4);
            if (i32 != CUBLAS_OP_N && i32 != CUBLAS_OP_T) { return CUBLAS_STATUS_INVALID_VALUE; }
            if (attr == CUBLASLT_MATMUL_DESC_TRANSA) { d->transa = i32; } else { d->transb = i32; }
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_EPILOGUE:
            if (size != sizeof(uint32_t)) { return CUBLAS_STATUS_INVALID_VALUE; }
            memcpy(&d->epilogue, buf, 4);  // an unknown value is refused by the heuristic
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
            if (size != sizeof(void*)) { return CUBLAS_STATUS_INVALID_VALUE; }
            memcpy(&d->bias, buf, sizeof(void*));
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER:
            if (size != sizeof(void*)) { return CUBLAS_STATUS_INVALID_VALUE; }
            memcpy(&d->aux, buf, sizeof(void*));
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD:
            if (size != sizeof(int64_t)) { return CUBLAS_STATUS_INVALID_VALUE; }
            memcpy(&d->aux_ld, buf, 8);
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE:
            if (size != sizeof(int32_t)) { return CUBLAS_STATUS_INVALID_VALUE; }
            memcpy(&d->aux_type, buf, 4);
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
            if (size != sizeof(int32_t)) { return CUBLAS_STATUS_INVALID_VALUE; }
            memcpy(&d->bias_type, buf, 4);
            return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

// column-major rows x cols with leading dimension ld (checked when the layout is used)
static inline cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType_t type, uint64_t rows,
                                                        uint64_t cols, int64_t ld) {
    if (l == NULL) { return CUBLAS_STATUS_INVALID_VALUE; }
    *l = (cublasLtMatrixLayout_t)calloc(1, sizeof(EmuLtLayout));
    if (*l == NULL) { return CUBLAS_STATUS_ALLOC_FAILED; }
    (*l)->type = type;
    (*l)->rows = rows;
    (*l)->cols = cols;
    (*l)->ld = ld;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { free(l); return CUBLAS_STATUS_SUCCESS; }

static inline cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
    if (p == NULL) { return CUBLAS_STATUS_INVALID_VALUE; }
    *p = (cublasLtMatmulPreference_t)calloc(1, sizeof(EmuLtPreference));
    if (*p == NULL) { return CUBLAS_STATUS_ALLOC_FAILED; }
    for (int i = 0; i < 4; i++) { (*p)->align[i] = 256; }  // cuBLASLt's default assumption
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { free(p); return CUBLAS_STATUS_SUCCESS; }

// accepted and ignored, but for the alignments (see the top comment)
static inline cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                                  cublasLtMatmulPreferenceAttributes_t attr,
                                                                  const void* buf, size_t size) {
    if (p == NULL || buf == NULL) { return CUBLAS_STATUS_INVALID_VALUE; }
    switch (attr) {
        case CUBLASLT_MATMUL_PREF_SEARCH_MODE:
            return size == sizeof(uint32_t) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
        case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
            return size == sizeof(uint64_t) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
            if (size != sizeof(uint32_t)) { return CUBLAS_STATUS_INVALID_VALUE; }
            memcpy(&p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, 4);
            return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

// ----------------------------------------------------------------------------
// the problem's checks, shared by the heuristic and the matmul

static inline bool emu_lt_has_bias(uint32_t ep) {
    return ep == CUBLASLT_EPILOGUE_BIAS || ep == CUBLASLT_EPILOGUE_GELU_BIAS || ep == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}
static inline bool emu_lt_has_gelu(uint32_t ep) {
    return ep == CUBLASLT_EPILOGUE_GELU || ep == CUBLASLT_EPILOGUE_GELU_BIAS || ep == CUBLASLT_EPILOGUE_GELU_AUX ||
           ep == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}
static inline bool emu_lt_has_aux(uint32_t ep) {
    return ep == CUBLASLT_EPILOGUE_GELU_AUX || ep == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || ep == CUBLASLT_EPILOGUE_DGELU;
}

struct EmuLtProblem { uint64_t m, n, k; cudaDataType_t bias_type, aux_type; };

static inline cublasStatus_t emu_lt_check(const EmuLtMatmulDesc* d, const EmuLtLayout* a, const EmuLtLayout* b,
                                          const EmuLtLayout* c, const EmuLtLayout* dd, EmuLtProblem* p) {
    if (d == NULL || a == NULL || b == NULL || c == NULL || dd == NULL) { return CUBLAS_STATUS_INVALID_VALUE; }
    // shapes: op(A) m x k, op(B) k x n, C and D m x n; every ld at least its rows (column-major)
    uint64_t m = d->transa == CUBLAS_OP_T ? a->cols : a->rows;
    uint64_t ka = d->transa == CUBLAS_OP_T ? a->rows : a->cols;
    uint64_t kb = d->transb == CUBLAS_OP_T ? b->cols : b->rows;
    uint64_t n = d->transb == CUBLAS_OP_T ? b->rows : b->cols;
    if (ka != kb || c->rows != m || c->cols != n || dd->rows != m || dd->cols != n) { return CUBLAS_STATUS_INVALID_VALUE; }
    const EmuLtLayout* all[4] = {a, b, c, dd};
    for (int i = 0; i < 4; i++) {
        if (all[i]->ld < 1 || (uint64_t)all[i]->ld < all[i]->rows) { return CUBLAS_STATUS_INVALID_VALUE; }
    }
    // types
    bool in_bf16 = a->type == CUDA_R_16BF && b->type == CUDA_R_16BF;
    bool in_f32 = a->type == CUDA_R_32F && b->type == CUDA_R_32F;
    if (c->type != dd->type) { return CUBLAS_STATUS_NOT_SUPPORTED; }
    if (!(in_f32 && dd->type == CUDA_R_32F) && !(in_bf16 && (dd->type == CUDA_R_16BF || dd->type == CUDA_R_32F))) {
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    // epilogue
    uint32_t ep = d->epilogue;
    if (ep != CUBLASLT_EPILOGUE_DEFAULT && !emu_lt_has_bias(ep) && !emu_lt_has_gelu(ep) && ep != CUBLASLT_EPILOGUE_DGELU) {
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    p->bias_type = d->bias_type == -1 ? dd->type : (cudaDataType_t)d->bias_type;
    p->aux_type = d->aux_type == -1 ? dd->type : (cudaDataType_t)d->aux_type;
    if (emu_lt_has_bias(ep) && p->bias_type != CUDA_R_16BF && p->bias_type != CUDA_R_32F) { return CUBLAS_STATUS_NOT_SUPPORTED; }
    if (emu_lt_has_aux(ep)) {
        if (d->aux_ld % 8 != 0 || d->aux_ld < (int64_t)m) { return CUBLAS_STATUS_NOT_SUPPORTED; }
        if (p->aux_type != dd->type) { return CUBLAS_STATUS_NOT_SUPPORTED; }
    }
    p->m = m;
    p->n = n;
    p->k = ka;
    return CUBLAS_STATUS_SUCCESS;
}

// one algorithm, or none (found = 0, CUBLAS_STATUS_NOT_SUPPORTED) where cuBLASLt would refuse
static inline cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t desc,
                                                            cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                            cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                                            cublasLtMatmulPreference_t pref, int requested,
                                                            cublasLtMatmulHeuristicResult_t results[], int* found) {
    if (found != NULL) { *found = 0; }
    if (h == NULL) { return CUBLAS_STATUS_NOT_INITIALIZED; }
    if (pref == NULL || requested < 1 || results == NULL || found == NULL) { return CUBLAS_STATUS_INVALID_VALUE; }
    EmuLtProblem p;
    cublasStatus_t s = emu_lt_check(desc, a, b, c, d, &p);
    if (s != CUBLAS_STATUS_SUCCESS) { return s; }
    memset(&results[0], 0, sizeof(results[0]));
    results[0].algo.data[0] = EMU_LT_ALGO_TAG;
    for (int i = 0; i < 4; i++) { results[0].algo.data[1 + i] = pref->align[i]; }
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

// ----------------------------------------------------------------------------
// the product

static inline float emu_lt_load(const void* p, cudaDataType_t type, size_t i) {
    return type == CUDA_R_16BF ? (float)((const __nv_bfloat16*)p)[i] : ((const float*)p)[i];
}
static inline void emu_lt_store(void* p, cudaDataType_t type, size_t i, float v) {
    if (type == CUDA_R_16BF) { ((__nv_bfloat16*)p)[i] = __nv_bfloat16(v); } else { ((float*)p)[i] = v; }
}

// GPT-2's tanh approximation and its derivative, as llmc/gelu.h writes them
static inline float emu_lt_gelu(float x) {
    const float s = 0.7978845608028654f;  // sqrt(2/pi)
    return 0.5f * x * (1.0f + tanhf(s * (x + 0.044715f * x * x * x)));
}
static inline float emu_lt_dgelu(float x) {
    const float s = 0.7978845608028654f;
    float th = tanhf(s * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * s * (1.0f + 3.0f * 0.044715f * x * x);
}

static inline void emu_lt_check_alignment(const void* ptr, uint64_t assumed, const char* which) {
    if (assumed > 1 && ((uintptr_t)ptr % assumed) != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "cublasLtMatmul: %s = %p is not aligned to the %llu bytes its algorithm assumes "
                 "(MIN_ALIGNMENT_%s_BYTES, default 256): a misaligned-address fault on a GPU", which, ptr,
                 (unsigned long long)assumed, which);
        emu_fail(msg);
    }
}

static inline void emu_lt_product(const EmuLtMatmulDesc* desc, const EmuLtLayout* adesc, const EmuLtLayout* bdesc,
                                  const EmuLtLayout* cdesc, const EmuLtLayout* ddesc, EmuLtProblem p, float al, float be,
                                  const void* A, const void* B, const void* C, void* D);

static inline cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, const void* alpha,
                                            const void* A, cublasLtMatrixLayout_t adesc, const void* B,
                                            cublasLtMatrixLayout_t bdesc, const void* beta, const void* C,
                                            cublasLtMatrixLayout_t cdesc, void* D, cublasLtMatrixLayout_t ddesc,
                                            const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                                            cudaStream_t stream) {
    (void)workspace; (void)workspace_bytes;
    if (h == NULL) { return CUBLAS_STATUS_NOT_INITIALIZED; }
    EmuLtProblem p;
    cublasStatus_t s = emu_lt_check(desc, adesc, bdesc, cdesc, ddesc, &p);
    if (s != CUBLAS_STATUS_SUCCESS) { return s; }
    if (alpha == NULL || beta == NULL) { return CUBLAS_STATUS_INVALID_VALUE; }
    float al = *(const float*)alpha, be = *(const float*)beta;
    uint32_t ep = desc->epilogue;
    if (A == NULL || B == NULL || D == NULL || (be != 0.0f && C == NULL)) { return CUBLAS_STATUS_INVALID_VALUE; }
    if ((emu_lt_has_bias(ep) && desc->bias == NULL) || (emu_lt_has_aux(ep) && desc->aux == NULL)) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    // in place (C == D) needs C's layout to be D's
    if (C == D && (cdesc->ld != ddesc->ld || cdesc->type != ddesc->type)) { return CUBLAS_STATUS_INVALID_VALUE; }
    if (algo != NULL) {  // NULL: cuBLASLt runs its own heuristic, which sees the actual pointers
        if (algo->data[0] != EMU_LT_ALGO_TAG) { return CUBLAS_STATUS_INVALID_VALUE; }
        emu_lt_check_alignment(A, algo->data[1], "A");
        emu_lt_check_alignment(B, algo->data[2], "B");
        if (be != 0.0f) { emu_lt_check_alignment(C, algo->data[3], "C"); }
        emu_lt_check_alignment(D, algo->data[4], "D");
    }
    if (p.m == 0 || p.n == 0) { return CUBLAS_STATUS_SUCCESS; }
    // the product runs in the stream's order, from copies of the descriptors as they are now
    EmuLtMatmulDesc dc = *desc;
    EmuLtLayout ac = *adesc, bc = *bdesc, cc = *cdesc, dlc = *ddesc;
    emu_stream_run(stream, [=]() { emu_lt_product(&dc, &ac, &bc, &cc, &dlc, p, al, be, A, B, C, D); });
    return CUBLAS_STATUS_SUCCESS;
}

// D = al op(A) op(B) + be C, then the epilogue (checked by cublasLtMatmul)
static inline void emu_lt_product(const EmuLtMatmulDesc* desc, const EmuLtLayout* adesc, const EmuLtLayout* bdesc,
                                  const EmuLtLayout* cdesc, const EmuLtLayout* ddesc, EmuLtProblem p, float al, float be,
                                  const void* A, const void* B, const void* C, void* D) {
    size_t m = p.m, n = p.n, k = p.k;
    uint32_t ep = desc->epilogue;

    // op(A) as m rows of k floats and op(B) as n columns of k floats, so each element of D is
    // a dot product of two contiguous vectors whatever the transposes
    float* ar = (float*)malloc((m * k > 0 ? m * k : 1) * sizeof(float));
    float* bc = (float*)malloc((n * k > 0 ? n * k : 1) * sizeof(float));
    if (ar == NULL || bc == NULL) { emu_fail("cublasLtMatmul: out of host memory for the emulated product"); }
    size_t lda = (size_t)adesc->ld, ldb = (size_t)bdesc->ld;
    for (size_t i = 0; i < m; i++) {
        for (size_t q = 0; q < k; q++) {
            size_t at = desc->transa == CUBLAS_OP_T ? q + i * lda : i + q * lda;
            ar[i * k + q] = emu_lt_load(A, adesc->type, at);
        }
    }
    for (size_t j = 0; j < n; j++) {
        for (size_t q = 0; q < k; q++) {
            size_t at = desc->transb == CUBLAS_OP_T ? j + q * ldb : q + j * ldb;
            bc[j * k + q] = emu_lt_load(B, bdesc->type, at);
        }
    }
    size_t ldc = (size_t)cdesc->ld, ldd = (size_t)ddesc->ld, ldaux = (size_t)desc->aux_ld;
    // columns are independent; each element's arithmetic is the same whatever the thread count
#ifdef _OPENMP
    #pragma omp parallel for schedule(static)
#endif
    for (long jj = 0; jj < (long)n; jj++) {
        size_t j = (size_t)jj;
        for (size_t i = 0; i < m; i++) {
            const float* x = ar + i * k;
            const float* y = bc + j * k;
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;  // four chains: the sum is exact enough either way
            size_t q = 0;
            for (; q + 4 <= k; q += 4) {
                s0 += (double)x[q] * y[q];
                s1 += (double)x[q + 1] * y[q + 1];
                s2 += (double)x[q + 2] * y[q + 2];
                s3 += (double)x[q + 3] * y[q + 3];
            }
            for (; q < k; q++) { s0 += (double)x[q] * y[q]; }
            float t = al * (float)((s0 + s1) + (s2 + s3));
            if (be != 0.0f) { t += be * emu_lt_load(C, cdesc->type, i + j * ldc); }  // C unread when beta == 0
            if (emu_lt_has_bias(ep)) { t += emu_lt_load(desc->bias, p.bias_type, i); }
            if (emu_lt_has_gelu(ep)) {
                if (emu_lt_has_aux(ep)) { emu_lt_store(desc->aux, p.aux_type, i + j * ldaux, t); }
                t = emu_lt_gelu(t);
            }
            if (ep == CUBLASLT_EPILOGUE_DGELU) { t *= emu_lt_dgelu(emu_lt_load(desc->aux, p.aux_type, i + j * ldaux)); }
            emu_lt_store(D, ddesc->type, i + j * ldd, t);
        }
    }
    free(ar);
    free(bc);
}

#endif // EMU_CUBLASLT_H
