// Checks the emulation's library stubs (dev/cuda/emu/include: cublasLt.h, mma.h, nccl.h) against
// naive loops on the host:
//   - cublasLtMatmul, called as llmc/matmul.h calls it (the forward with bias, and with GELU_AUX_BIAS;
//     dinp, plain and with DGELU; dweight with beta = 1 into fp32), bf16 and fp32, awkward sizes
//   - the heuristic's refusals (aux leading dimension not a multiple of 8, mismatched layouts,
//     an attribute of the wrong size)
//   - one WMMA product of 16x16 bf16 tiles in a 32-thread block, including a read-modify-write
//     of the accumulator in memory (load, mma, store to the same place)
//   - NCCL with one rank
// Prints PASS:/FAIL: lines; exits non-zero on a failure.
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <vector>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublasLt.h>
#include <mma.h>
#include <nccl.h>

static int failures = 0;
static void report(bool ok, const char* what, double err) {
    printf("%s: %s (max scaled error %.3g)\n", ok ? "PASS" : "FAIL", what, err);
    if (!ok) { failures++; }
}
static void report_status(bool ok, const char* what) {
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    if (!ok) { failures++; }
}

static uint64_t rng_state = 42;
static float rnd(void) {  // uniform in [-1, 1)
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static float to_f(float x) { return x; }
static float to_f(__nv_bfloat16 x) { return (float)x; }
template <class T> static T from_f(float x) { return (T)x; }
template <> __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __nv_bfloat16(x); }
template <class T> static cudaDataType_t type_of(void);
template <> cudaDataType_t type_of<float>(void) { return CUDA_R_32F; }
template <> cudaDataType_t type_of<__nv_bfloat16>(void) { return CUDA_R_16BF; }

// random values, rounded to T (so the reference sees exactly what the stub reads)
template <class T> static std::vector<T> random_vec(size_t n) {
    std::vector<T> v(n);
    for (size_t i = 0; i < n; i++) { v[i] = from_f<T>(rnd()); }
    return v;
}

static double gelu_ref(double x) { return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }
static double dgelu_ref(double x) {
    double s = sqrt(2.0 / M_PI), th = tanh(s * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * s * (1.0 + 3.0 * 0.044715 * x * x);
}

// |got - want| relative to what one rounding to T allows (plus a little for fp32 math)
template <class T> static double scaled_err(float got, double want) {
    double rel = sizeof(T) == 2 ? 1.0 / 128 : 1e-5;  // bf16: one ulp; fp32: a few ulps of sums of ~50 terms
    return fabs((double)got - want) / (rel * fabs(want) + 1e-5);
}

// the same sequence of calls as matmul_cublaslt in llmc/matmul.h; returns the heuristic's status
// (and 'found'), running the matmul only when an algorithm was found
static cublasStatus_t lt_matmul(cublasLtHandle_t h, void* d, cudaDataType_t d_type, const void* a, const void* b,
                                cudaDataType_t ab_type, int m, int n, int k, int transA, int transB, int lda,
                                int ldb, int ldd, float beta, cublasLtEpilogue_t epilogue, const void* bias,
                                void* aux, int ldaux, int* found_out) {
    cublasLtMatmulDesc_t desc;
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA));
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB));
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue));
    if (bias != NULL) {
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias));
        cudaDataType_t bias_type = ab_type;
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type));
    }
    if (aux != NULL) {
        int64_t ld = ldaux;
        int32_t aux_type = ab_type;
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux));
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld));
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &aux_type, sizeof(aux_type));
    }
    cublasLtMatrixLayout_t la, lb, ld_;
    cublasLtMatrixLayoutCreate(&la, ab_type, transA ? k : m, transA ? m : k, lda);
    cublasLtMatrixLayoutCreate(&lb, ab_type, transB ? n : k, transB ? k : n, ldb);
    cublasLtMatrixLayoutCreate(&ld_, d_type, m, n, ldd);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    uint64_t ws = 0;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    uint32_t al = 4;  // std::vector's data is at least this aligned
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof(al));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof(al));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof(al));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof(al));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, ld_, ld_, pref, 1, &heur, &found);
    if (hs == CUBLAS_STATUS_SUCCESS && found > 0) {
        float alpha = 1.0f;
        cublasStatus_t ms = cublasLtMatmul(h, desc, &alpha, a, la, b, lb, &beta, d, ld_, d, ld_, &heur.algo, NULL, 0, 0);
        if (ms != CUBLAS_STATUS_SUCCESS) {
            printf("FAIL: cublasLtMatmul returned %s\n", cublasLtGetStatusName(ms));
            failures++;
        }
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld_);
    cublasLtMatmulDescDestroy(desc);
    *found_out = found;
    return hs;
}

static void require_algo(cublasStatus_t s, int found, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS || found != 1) {
        printf("FAIL: %s: heuristic %s, found %d\n", what, cublasLtGetStatusName(s), found);
        failures++;
    }
}

// out (BT, OC) = inp (BT, C) @ weight (OC, C)^T + bias, as matmul_forward_cuda; with gelu, out =
// gelu(that) and pre_gelu receives that
template <class T> static void check_forward(cublasLtHandle_t h, int BT, int C, int OC, bool gelu, const char* name) {
    std::vector<T> inp = random_vec<T>((size_t)BT * C), w = random_vec<T>((size_t)OC * C), bias = random_vec<T>(OC);
    std::vector<T> out((size_t)BT * OC, from_f<T>(NAN)), pre((size_t)BT * OC, from_f<T>(NAN));
    int found = 0;
    cublasStatus_t s = lt_matmul(h, out.data(), type_of<T>(), w.data(), inp.data(), type_of<T>(), OC, BT, C, 1, 0, C, C,
                                 OC, 0.0f, gelu ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_BIAS, bias.data(),
                                 gelu ? pre.data() : NULL, OC, &found);
    require_algo(s, found, name);
    double worst = 0.0;
    for (int bt = 0; bt < BT; bt++) {
        for (int o = 0; o < OC; o++) {
            double x = to_f(bias[o]);
            for (int c = 0; c < C; c++) { x += (double)to_f(inp[(size_t)bt * C + c]) * to_f(w[(size_t)o * C + c]); }
            size_t i = (size_t)bt * OC + o;
            double e = scaled_err<T>(to_f(out[i]), gelu ? gelu_ref(x) : x);
            if (gelu) { e = fmax(e, scaled_err<T>(to_f(pre[i]), x)); }
            worst = fmax(worst, e == e ? e : INFINITY);
        }
    }
    report(worst <= 1.0, name, worst);
}

// dinp (BT, C) = dout (BT, OC) @ weight (OC, C), as matmul_backward_cuda; with dgelu, times
// gelu'(pre_gelu). dinp starts as NaN: beta = 0 must not read it.
template <class T> static void check_dinp(cublasLtHandle_t h, int BT, int C, int OC, bool dgelu, const char* name) {
    std::vector<T> dout = random_vec<T>((size_t)BT * OC), w = random_vec<T>((size_t)OC * C);
    std::vector<T> pre = random_vec<T>((size_t)BT * C);
    for (size_t i = 0; i < pre.size(); i++) { pre[i] = from_f<T>(3.0f * to_f(pre[i])); }  // GELU's curved part
    std::vector<T> dinp((size_t)BT * C, from_f<T>(NAN));
    int found = 0;
    cublasStatus_t s = lt_matmul(h, dinp.data(), type_of<T>(), w.data(), dout.data(), type_of<T>(), C, BT, OC, 0, 0, C,
                                 OC, C, 0.0f, dgelu ? CUBLASLT_EPILOGUE_DGELU : CUBLASLT_EPILOGUE_DEFAULT, NULL,
                                 dgelu ? pre.data() : NULL, C, &found);
    require_algo(s, found, name);
    double worst = 0.0;
    for (int bt = 0; bt < BT; bt++) {
        for (int c = 0; c < C; c++) {
            double x = 0.0;
            for (int o = 0; o < OC; o++) { x += (double)to_f(dout[(size_t)bt * OC + o]) * to_f(w[(size_t)o * C + c]); }
            size_t i = (size_t)bt * C + c;
            if (dgelu) { x *= dgelu_ref(to_f(pre[i])); }
            double e = scaled_err<T>(to_f(dinp[i]), x);
            worst = fmax(worst, e == e ? e : INFINITY);
        }
    }
    report(worst <= 1.0, name, worst);
}

// dweight (OC, C) += dout (BT, OC)^T @ inp (BT, C), fp32, beta = 1, as matmul_backward_cuda
template <class T> static void check_dweight(cublasLtHandle_t h, int BT, int C, int OC, const char* name) {
    std::vector<T> dout = random_vec<T>((size_t)BT * OC), inp = random_vec<T>((size_t)BT * C);
    std::vector<float> dw = random_vec<float>((size_t)OC * C), dw0 = dw;
    int found = 0;
    cublasStatus_t s = lt_matmul(h, dw.data(), CUDA_R_32F, inp.data(), dout.data(), type_of<T>(), C, OC, BT, 0, 1, C, OC,
                                 C, 1.0f, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, &found);
    require_algo(s, found, name);
    double worst = 0.0;
    for (int o = 0; o < OC; o++) {
        for (int c = 0; c < C; c++) {
            double x = dw0[(size_t)o * C + c];
            for (int bt = 0; bt < BT; bt++) { x += (double)to_f(dout[(size_t)bt * OC + o]) * to_f(inp[(size_t)bt * C + c]); }
            double e = scaled_err<float>(dw[(size_t)o * C + c], x);
            worst = fmax(worst, e == e ? e : INFINITY);
        }
    }
    report(worst <= 1.0, name, worst);
}

static void check_refusals(cublasLtHandle_t h) {
    // GELU aux with a leading dimension that is not a multiple of 8 (OC = 19): no algorithm
    std::vector<__nv_bfloat16> a(64 * 64), b(64 * 64), d(64 * 64), bias(64), aux(64 * 64);
    int found = -1;
    cublasStatus_t s = lt_matmul(h, d.data(), CUDA_R_16BF, a.data(), b.data(), CUDA_R_16BF, 19, 5, 7, 1, 0, 7, 7, 19, 0.0f,
                                 CUBLASLT_EPILOGUE_GELU_AUX_BIAS, bias.data(), aux.data(), 19, &found);
    report_status(s == CUBLAS_STATUS_NOT_SUPPORTED && found == 0, "heuristic refuses GELU_AUX_BIAS with aux ld 19");
    s = lt_matmul(h, d.data(), CUDA_R_16BF, a.data(), b.data(), CUDA_R_16BF, 20, 5, 7, 0, 0, 20, 7, 20, 0.0f,
                  CUBLASLT_EPILOGUE_DGELU, NULL, aux.data(), 20, &found);
    report_status(s == CUBLAS_STATUS_NOT_SUPPORTED && found == 0, "heuristic refuses DGELU with aux ld 20");
    // aux ld below D's rows
    s = lt_matmul(h, d.data(), CUDA_R_16BF, a.data(), b.data(), CUDA_R_16BF, 24, 5, 7, 0, 0, 24, 7, 24, 0.0f,
                  CUBLASLT_EPILOGUE_DGELU, NULL, aux.data(), 16, &found);
    report_status(s == CUBLAS_STATUS_NOT_SUPPORTED && found == 0, "heuristic refuses DGELU with aux ld < rows");
    // a leading dimension below the rows
    s = lt_matmul(h, d.data(), CUDA_R_16BF, a.data(), b.data(), CUDA_R_16BF, 24, 5, 7, 0, 0, 20, 7, 24, 0.0f,
                  CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, &found);
    report_status(s == CUBLAS_STATUS_INVALID_VALUE && found == 0, "heuristic refuses lda < rows");
    // fp32 inputs into a bf16 output
    s = lt_matmul(h, d.data(), CUDA_R_16BF, a.data(), b.data(), CUDA_R_32F, 8, 5, 7, 0, 0, 8, 7, 8, 0.0f,
                  CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, &found);
    report_status(s == CUBLAS_STATUS_NOT_SUPPORTED && found == 0, "heuristic refuses fp32 x fp32 -> bf16");
    // an attribute of the wrong size
    cublasLtMatmulDesc_t desc;
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    int32_t ld32 = 8;
    s = cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld32, sizeof(ld32));
    report_status(s == CUBLAS_STATUS_INVALID_VALUE, "EPILOGUE_AUX_LD as int32_t is refused (it is int64_t)");
    cublasLtMatmulDescDestroy(desc);
}

// ----------------------------------------------------------------------------
// WMMA: D = A B + C for 16x16 bf16 tiles, in a 32-thread block; A row-major with ld 24, B either
// layout with ld 40, C and D float row-major with ld 20.
//   in_place: D is C (load the accumulator, mma, store it back: attention's forward does this).
//             Between two barriers the lanes run one after another, so a lane that loads after
//             another stored sees that lane's share already updated: only the memory is checked
//             (each lane stores its own share, computed from the old values of that share).
//   otherwise: every lane's fragment must also hold the whole product
static void check_wmma(bool b_col_major, bool in_place) {
    using namespace nvcuda;
    const int lda = 24, ldb = 40, ldc = 20;
    alignas(32) static __nv_bfloat16 A[16 * lda], B[16 * ldb];
    alignas(32) static float Cm[16 * ldc], Dm[16 * ldc];
    std::vector<double> want(256);
    for (int i = 0; i < 16 * lda; i++) { A[i] = __nv_bfloat16(rnd()); }
    for (int i = 0; i < 16 * ldb; i++) { B[i] = __nv_bfloat16(rnd()); }
    for (int i = 0; i < 16 * ldc; i++) { Cm[i] = rnd(); Dm[i] = NAN; }
    for (int r = 0; r < 16; r++) {
        for (int c = 0; c < 16; c++) {
            double s = Cm[r * ldc + c];
            for (int k = 0; k < 16; k++) {
                float b = b_col_major ? (float)B[k + c * ldb] : (float)B[k * ldb + c];
                s += (double)(float)A[r * lda + k] * b;
            }
            want[r * 16 + c] = s;
        }
    }
    float* out = in_place ? Cm : Dm;
    bool shares = true;  // every lane's fragment holds its share of the product (what it stores)
    emu_launch(dim3(1), dim3(32), 0, [&] {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::load_matrix_sync(acc, Cm, ldc, wmma::mem_row_major);
        wmma::load_matrix_sync(a, A, lda);
        if (b_col_major) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
            wmma::load_matrix_sync(b, B, ldb);
            wmma::mma_sync(acc, a, b, acc);
        } else {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
            wmma::load_matrix_sync(b, B, ldb);
            wmma::mma_sync(acc, a, b, acc);
        }
        for (int i = (int)threadIdx.x % 32; i < acc.num_elements; i += 32) {
            if (!(fabs(acc.x[i] - want[i]) <= 1e-4)) { shares = false; }
        }
        wmma::store_matrix_sync(out, acc, ldc, wmma::mem_row_major);
    });
    double worst = 0.0;
    for (int r = 0; r < 16; r++) {
        for (int c = 0; c < 16; c++) {
            double e = fabs(out[r * ldc + c] - want[r * 16 + c]) / 1e-4;
            worst = fmax(worst, e == e ? e : INFINITY);
        }
    }
    char name[160];
    snprintf(name, sizeof(name), "WMMA %s = A B + C (A row-major, B %s-major), 32 lanes%s", in_place ? "C" : "D",
             b_col_major ? "col" : "row", in_place ? ", in place" : ", each lane's share");
    report(worst <= 1.0 && (in_place || shares), name, worst);
}

// a column-major store, and fill_fragment
static void check_wmma_store_col(void) {
    using namespace nvcuda;
    alignas(32) static float out[16 * 16];
    for (int i = 0; i < 256; i++) { out[i] = NAN; }
    emu_launch(dim3(1), dim3(64), 0, [&] {
        if (threadIdx.x >= 32) { return; }  // the second warp sits out; the first is whole
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int i = 0; i < acc.num_elements; i++) { acc.x[i] = (float)i; }  // uniform per element: fine
        wmma::store_matrix_sync(out, acc, 16, wmma::mem_col_major);
    });
    bool ok = true;
    for (int r = 0; r < 16; r++) {
        for (int c = 0; c < 16; c++) { ok = ok && out[r + c * 16] == (float)(r * 16 + c); }
    }
    report_status(ok, "WMMA column-major store of the whole tile by 32 lanes");
}

static void check_nccl(void) {
    ncclUniqueId id;
    ncclComm_t comm;
    bool ok = ncclGetUniqueId(&id) == ncclSuccess && ncclCommInitRank(&comm, 1, id, 0) == ncclSuccess;
    float x[5] = {1, 2, 3, 4, 5}, y[5] = {0, 0, 0, 0, 0};
    ok = ok && ncclAllReduce(x, x, 5, ncclFloat, ncclSum, comm, 0) == ncclSuccess && x[2] == 3.0f;
    ok = ok && ncclReduceScatter(x, y, 5, ncclFloat, ncclSum, comm, 0) == ncclSuccess && y[4] == 5.0f;
    double v = 7.0;
    ok = ok && ncclAllReduce(&v, &v, 1, ncclFloat64, ncclSum, comm, 0) == ncclSuccess && v == 7.0;
    ok = ok && ncclAllGather(x, y, 5, ncclFloat, comm, 0) == ncclSuccess && ncclBroadcast(x, y, 5, ncclFloat, 0, comm, 0) == ncclSuccess;
    ok = ok && ncclCommDestroy(comm) == ncclSuccess;
    report_status(ok, "NCCL with one rank: collectives copy");
}

int main(void) {
    cublasLtHandle_t h;
    cublasLtCreate(&h);
    // awkward sizes (BT = 37, C = 53, OC = 19) for the products without an aux matrix; the GELU
    // epilogues need the aux leading dimension (OC in the forward, C in dinp) a multiple of 8
    check_forward<__nv_bfloat16>(h, 37, 53, 19, false, "forward + BIAS, bf16 (BT 37, C 53, OC 19)");
    check_forward<float>(h, 37, 53, 19, false, "forward + BIAS, fp32 (BT 37, C 53, OC 19)");
    check_forward<__nv_bfloat16>(h, 37, 53, 24, true, "forward + GELU_AUX_BIAS, bf16 (BT 37, C 53, OC 24)");
    check_forward<float>(h, 37, 53, 24, true, "forward + GELU_AUX_BIAS, fp32 (BT 37, C 53, OC 24)");
    check_dinp<__nv_bfloat16>(h, 37, 53, 19, false, "dinp, bf16, beta 0 over NaN (BT 37, C 53, OC 19)");
    check_dinp<float>(h, 37, 53, 19, false, "dinp, fp32, beta 0 over NaN (BT 37, C 53, OC 19)");
    check_dinp<__nv_bfloat16>(h, 37, 40, 19, true, "dinp + DGELU, bf16 (BT 37, C 40, OC 19)");
    check_dinp<float>(h, 37, 40, 19, true, "dinp + DGELU, fp32 (BT 37, C 40, OC 19)");
    check_dweight<__nv_bfloat16>(h, 37, 53, 19, "dweight += (fp32, beta 1), bf16 inputs (BT 37, C 53, OC 19)");
    check_dweight<float>(h, 37, 53, 19, "dweight += (fp32, beta 1), fp32 inputs (BT 37, C 53, OC 19)");
    check_refusals(h);
    cublasLtDestroy(h);
    check_wmma(true, false);
    check_wmma(false, false);
    check_wmma(true, true);
    check_wmma(false, true);
    check_wmma_store_col();
    check_nccl();
    if (failures > 0) { printf("%d stub check(s) failed\n", failures); return 1; }
    printf("all stub checks passed\n");
    return 0;
}
