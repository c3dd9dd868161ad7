// Tests of llmc/quant.h: weight-only int8 / int4 quantization, the matmul that reads the
// quantized weights, and the quantized checkpoint file. Prints PASS:/FAIL: lines (dev/test/
// testing.h); exits non-zero on failure. Fresh random inputs every run: the seed is printed, and
// `test_quant SEED` (or SEED=... in the environment) repeats a run. A few seconds on 2 cores.
//
//   1. quantization: every element within scale/2 (+ the fp32 rounding of scale * v) of W, the
//      value ranges (int8 [-127, 127], int4 nibbles 1..15, padding 8), the extreme of each
//      row/group at +-qmax, all-zero rows and groups -> scale 0 and exact zeros, tiny and huge
//      rows, dequantize == dequantize_row; cols 31, 33, 72, 200, 1000 with groups 32, 64, 96,
//      128 (partial last groups, and a group wider than the row);
//   2. the matmul, where every intermediate is exact (small integers, power-of-two scales): the
//      fast path, the reference and an exact integer sum agree bitwise, every kind, at awkward
//      C / OC / BT (tails of vectors, of 4-row tiles, of 4-input tiles; BT 67: the GEMM path);
//   3. the matmul on random normal data: fast vs reference, and reference vs llmc/matmul.h's
//      matmul_forward on the dequantized fp32 matrix, both within gamma(C + 10) * (|bias| +
//      sum |x * deq|) (llmc/quant.h derives it; the largest error seen is printed in units of
//      u * that sum); BT 100 takes the dequantize-a-block + GEMM path. In 2 and 3 the outputs
//      are poisoned with NaN first, and the inputs and weights are followed by 32 NaNs, so a
//      kernel reading past the end (a mask one lane too wide) shows;
//   4. determinism: 1, 2 and 3 threads bitwise at BT 1, 7, 100; row b of a BT = 7 batch == the
//      row computed alone;
//   5. the model: quant_model_from_params / write / read / write again, bitwise (matrices,
//      fp32 tensors, the file's bytes), dequantize, an all-fp32 file's payload == a v3
//      checkpoint's, quant_model_load on a plain checkpoint, refusals of from_params;
//   6. the reader refusing corrupt files, each with a message naming the file: bad magic, an
//      llm.c checkpoint, wrong version, truncated, trailing bytes, header shorter than 1024
//      bytes, empty, a directory, a missing file, a non-finite / negative scale, a wrong shape
//      (C), a wrong recorded size, unknown kind, bad group, head kind, reserved word, int4
//      nibble 0, bad padding, int8 -128, NaN in an fp32 tensor; the writer refusing a directory.
#include <float.h>
#include <omp.h>
#include "llmc/utils.h"
#include "llmc/rand.h"
#include "llmc/checkpoint.h"
#include "llmc/matmul.h"
#include "llmc/quant.h"
#include "dev/test/testing.h"

static Rng rng;
static char tmpdir[256];

static float* falloc(size_t n) {  // exact size (no rounding up): AddressSanitizer sees any overrun
    float* p = (float*)malloc(n > 0 ? n * sizeof(float) : 1);
    if (p == NULL) { die("out of memory"); }
    return p;
}

static void fill_nan(float* p, size_t n) { for (size_t i = 0; i < n; i++) { p[i] = NAN; } }

// n floats followed by 32 NaNs: a kernel that reads past the end of its input (a mask one lane
// too wide, say) turns the output into NaN instead of silently multiplying a neighbour by 0
static float* falloc_guarded(size_t n) {
    float* p = falloc(n + 32);
    fill_nan(p + n, 32);
    return p;
}

static int count_nonfinite(const float* p, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) { k += !isfinite(p[i]); }
    return k;
}

static int quant_v(const QuantMatrix* m, int r, int c) {  // the stored integer value of element (r, c)
    if (m->kind == QUANT_INT8) { return ((const int8_t*)m->q)[(size_t)r * m->cols + c]; }
    uint8_t b = m->q[(size_t)r * quant_row_bytes(QUANT_INT4, m->cols) + (c / 32) * 16 + c % 16];
    return ((c % 32 < 16) ? (b & 15) : (b >> 4)) - 8;
}

static float quant_scale(const QuantMatrix* m, int r, int c) {
    return m->scales[(size_t)r * quant_ngroups(m->cols, m->group) + c / m->group];
}

// ---------------------------------------------------------------------------------------------
// 1. quantization

static void test_quantize_bounds(int kind, int group, int rows, int cols) {
    size_t n = (size_t)rows * cols;
    float* W = falloc(n);
    rng_normal(&rng, W, n, 0.0f, 0.02f);
    // row 1 all zero, row 2 tiny, row 3 huge (when there are rows enough); in int4 the second
    // group of row 0 all zero
    if (rows > 1) { memset(W + cols, 0, cols * sizeof(float)); }
    if (rows > 2) { for (int c = 0; c < cols; c++) { W[2 * cols + c] *= 1e-30f; } }
    if (rows > 3) { for (int c = 0; c < cols; c++) { W[3 * cols + c] *= 1e38f; } }
    if (kind == QUANT_INT4 && cols > group) { for (int c = group; c < cols && c < 2 * group; c++) { W[c] = 0.0f; } }
    QuantMatrix m;
    quant_matrix_quantize(&m, W, rows, cols, kind, group);
    int qmax = kind == QUANT_INT8 ? 127 : 7;
    float* D = falloc(n);
    float* row = falloc(cols);
    fill_nan(D, n);
    quant_matrix_dequantize(&m, D);
    double worst = 0.0;  // max |w - deq| / (scale/2 + 2^-24 |deq|)
    int bad_range = 0, bad_zero = 0, bad_extreme = 0, bad_row = 0, bad_pad = 0;
    for (int r = 0; r < rows; r++) {
        quant_matrix_dequantize_row(&m, r, row);
        if (memcmp(row, D + (size_t)r * cols, cols * sizeof(float)) != 0) { bad_row++; }
        for (int g0 = 0; g0 < cols; g0 += m.group) {
            int g1 = g0 + m.group < cols ? g0 + m.group : cols;
            float s = quant_scale(&m, r, g0);
            int vmax = 0, allzero = 1;
            for (int c = g0; c < g1; c++) {
                int v = quant_v(&m, r, c);
                if (v < -qmax || v > qmax) { bad_range++; }
                if (abs(v) > vmax) { vmax = abs(v); }
                if (W[(size_t)r * cols + c] != 0.0f) { allzero = 0; }
                float w = W[(size_t)r * cols + c], d = D[(size_t)r * cols + c];
                double bound = s / 2.0 + ldexp(fabs(d), -24);
                double e = fabs((double)w - (double)d);
                if (!(e <= bound)) { worst = INFINITY; }
                else if (bound > 0.0 && e / bound > worst) { worst = e / bound; }
            }
            if (allzero) {
                for (int c = g0; c < g1; c++) {
                    uint32_t bits;
                    memcpy(&bits, &D[(size_t)r * cols + c], 4);
                    if (s != 0.0f || quant_v(&m, r, c) != 0 || bits != 0) { bad_zero++; }
                }
            } else if (vmax != qmax) {
                bad_extreme++;
            }
        }
        if (kind == QUANT_INT4) {  // padding nibbles past the row's end are 8 (v = 0)
            size_t rb = quant_row_bytes(QUANT_INT4, cols);
            for (int c = cols; c < (int)rb * 2; c++) { if (quant_v(&m, r, c) != 0) { bad_pad++; } }
        }
    }
    char name[128];
    snprintf(name, sizeof(name), "quantize %s %d x %d", quant_kind_name(kind), rows, cols);
    if (kind == QUANT_INT4) { snprintf(name, sizeof(name), "quantize int4 group %d, %d x %d", group, rows, cols); }
    check(worst <= 1.0 && bad_range == 0 && bad_zero == 0 && bad_extreme == 0 && bad_row == 0 && bad_pad == 0 &&
          count_nonfinite(D, n) == 0, name,
          "|w - deq| <= scale/2 + 2^-24 |deq| everywhere (worst %.3f of it); values in [-%d, %d]; zero rows/groups: "
          "scale 0, +0.0 back; max |v| = %d in every nonzero group; tiny (1e-32) and huge (1e36) rows fine; "
          "bad: range %d zero %d extreme %d row %d padding %d",
          worst, qmax, qmax, qmax, bad_range, bad_zero, bad_extreme, bad_row, bad_pad);
    quant_matrix_free(&m);
    free(W); free(D); free(row);
}

// ---------------------------------------------------------------------------------------------
// 2. the matmul where everything is exact

// W whose quantization is exact: in each row (int8) or group (int4) values k * s with integer
// k in [-qmax, qmax], one of them at +-qmax, s a power of two; fp32: integers times a power of 2
static void exact_weights(float* W, int rows, int cols, int kind, int group) {
    int qmax = kind == QUANT_INT8 ? 127 : 7;
    if (kind == QUANT_F32) { qmax = 127; group = cols; }
    if (kind == QUANT_INT8) { group = cols; }
    for (int r = 0; r < rows; r++) {
        for (int g0 = 0; g0 < cols; g0 += group) {
            int g1 = g0 + group < cols ? g0 + group : cols;
            float s = ldexpf(1.0f, (int)rng_below(&rng, 4) - 2);  // 1/4 .. 2
            int zero = rng_below(&rng, 8) == 0;                    // some groups all zero
            for (int c = g0; c < g1; c++) {
                int k = (int)rng_below(&rng, 2 * qmax + 1) - qmax;
                W[(size_t)r * cols + c] = zero ? 0.0f : s * k;
            }
            if (!zero) { W[(size_t)r * cols + g0 + rng_below(&rng, g1 - g0)] = (rng_below(&rng, 2) ? 1 : -1) * s * qmax; }
        }
    }
}

static void test_exact(int kind, int group, int OC, int C, int BT, int with_bias, int* nfail, int* nrun) {
    float* W = falloc_guarded((size_t)OC * C);
    float* x = falloc_guarded((size_t)BT * C);
    float* bias = falloc(OC);
    float* fast = falloc((size_t)BT * OC);
    float* ref = falloc((size_t)BT * OC);
    exact_weights(W, OC, C, kind, group);
    for (size_t i = 0; i < (size_t)BT * C; i++) { x[i] = (float)((int)rng_below(&rng, 9) - 4); }
    for (int o = 0; o < OC; o++) { bias[o] = (float)((int)rng_below(&rng, 201) - 100); }
    QuantMatrix m;
    quant_matrix_quantize(&m, W, OC, C, kind, group);
    fill_nan(fast, (size_t)BT * OC);
    fill_nan(ref, (size_t)BT * OC);
    const float* b = with_bias ? bias : NULL;
    quant_matmul_forward(fast, x, &m, b, BT, C, OC);
    quant_matmul_forward_ref(ref, x, &m, b, BT, C, OC);
    int bad = 0;
    for (int bt = 0; bt < BT; bt++) {
        for (int o = 0; o < OC; o++) {
            double s = b != NULL ? b[o] : 0.0;
            for (int c = 0; c < C; c++) { s += (double)x[(size_t)bt * C + c] * W[(size_t)o * C + c]; }
            float e = (float)s;  // exact: a multiple of 1/4 far below 2^24
            size_t i = (size_t)bt * OC + o;
            if (memcmp(&fast[i], &e, 4) != 0 || memcmp(&ref[i], &e, 4) != 0) {
                if (bad == 0) {
                    printf("  exact %s group %d OC=%d C=%d BT=%d: out[%d, %d] fast %.9g ref %.9g exact %.9g\n",
                           quant_kind_name(kind), group, OC, C, BT, bt, o, fast[i], ref[i], e);
                }
                bad++;
            }
        }
    }
    *nfail += bad != 0;
    *nrun += 1;
    quant_matrix_free(&m);
    free(W); free(x); free(bias); free(fast); free(ref);
}

// ---------------------------------------------------------------------------------------------
// 3. the matmul on random data, against the bound

static double gamma_n(int n) { double u = ldexp(1.0, -24); return n * u / (1.0 - n * u); }

typedef struct { double worst_fast, worst_mm; int bad_fast, bad_mm, nan; } RandomResult;

static void test_random(int kind, int group, int OC, int C, int BT, int with_bias, RandomResult* res) {
    float* W = falloc_guarded((size_t)OC * C);
    float* x = falloc_guarded((size_t)BT * C);
    float* bias = falloc(OC);
    float* fast = falloc((size_t)BT * OC);
    float* ref = falloc((size_t)BT * OC);
    float* mm = falloc((size_t)BT * OC);
    float* D = falloc((size_t)OC * C);
    rng_normal(&rng, W, (size_t)OC * C, 0.0f, 0.02f);
    rng_normal(&rng, x, (size_t)BT * C, 0.0f, 1.0f);
    rng_normal(&rng, bias, OC, 0.0f, 0.1f);
    if (OC > 2) { memset(W + C, 0, C * sizeof(float)); }  // an all-zero row: out = bias
    QuantMatrix m;
    quant_matrix_quantize(&m, W, OC, C, kind, group);
    quant_matrix_dequantize(&m, D);
    const float* b = with_bias ? bias : NULL;
    fill_nan(fast, (size_t)BT * OC);
    fill_nan(ref, (size_t)BT * OC);
    fill_nan(mm, (size_t)BT * OC);
    quant_matmul_forward(fast, x, &m, b, BT, C, OC);
    quant_matmul_forward_ref(ref, x, &m, b, BT, C, OC);
    matmul_forward(mm, x, D, b, 1, BT, C, OC);
    res->nan += count_nonfinite(fast, (size_t)BT * OC) + count_nonfinite(ref, (size_t)BT * OC);
    double u = ldexp(1.0, -24), g = gamma_n(C + 10);
    for (int bt = 0; bt < BT; bt++) {
        for (int o = 0; o < OC; o++) {
            double S = b != NULL ? fabs(b[o]) : 0.0;
            for (int c = 0; c < C; c++) { S += fabs((double)x[(size_t)bt * C + c] * D[(size_t)o * C + c]); }
            size_t i = (size_t)bt * OC + o;
            double ef = fabs((double)fast[i] - ref[i]), em = fabs((double)mm[i] - ref[i]);
            if (!(ef <= g * S)) { res->bad_fast++; }
            if (!(em <= g * S)) { res->bad_mm++; }
            if (S > 0.0) {
                if (ef / (u * S) > res->worst_fast) { res->worst_fast = ef / (u * S); }
                if (em / (u * S) > res->worst_mm) { res->worst_mm = em / (u * S); }
            }
            if (o == 1 && OC > 2) {  // the zero row: exactly the bias (or +0)
                float want = b != NULL ? b[o] : 0.0f;
                if (fast[i] != want || ref[i] != want) { res->bad_fast++; }
            }
        }
    }
    quant_matrix_free(&m);
    free(W); free(x); free(bias); free(fast); free(ref); free(mm); free(D);
}

// ---------------------------------------------------------------------------------------------
// 4. determinism

static void test_threads_and_batch(int kind, int group, int OC, int C) {
    const int BT = 100;  // allocated; the calls use 100 (the GEMM path), 1 and 7
    float* W = falloc((size_t)OC * C);
    float* x = falloc((size_t)BT * C);
    float* bias = falloc(OC);
    float* o1 = falloc((size_t)BT * OC);
    float* o2 = falloc((size_t)BT * OC);
    float* o3 = falloc((size_t)BT * OC);
    float* one = falloc(OC);
    rng_normal(&rng, W, (size_t)OC * C, 0.0f, 0.02f);
    rng_normal(&rng, x, (size_t)BT * C, 0.0f, 1.0f);
    rng_normal(&rng, bias, OC, 0.0f, 0.1f);
    QuantMatrix m;
    quant_matrix_quantize(&m, W, OC, C, kind, group);
    int saved = omp_get_max_threads();
    int same_threads = 1, same_batch = 1;
    const int counts[3] = {100, 1, 7};
    for (int ci = 0; ci < 3; ci++) {
        int bt_count = counts[ci];
        omp_set_num_threads(1);
        quant_matmul_forward(o1, x, &m, bias, bt_count, C, OC);
        omp_set_num_threads(2);
        quant_matmul_forward(o2, x, &m, bias, bt_count, C, OC);
        omp_set_num_threads(3);
        quant_matmul_forward(o3, x, &m, bias, bt_count, C, OC);
        size_t bytes = (size_t)bt_count * OC * sizeof(float);
        if (memcmp(o1, o2, bytes) != 0 || memcmp(o1, o3, bytes) != 0) { same_threads = 0; }
    }
    omp_set_num_threads(saved);
    // o1 holds BT = 7 (1 thread); each row alone must give the same bits
    for (int b = 0; b < 7; b++) {
        quant_matmul_forward(one, x + (size_t)b * C, &m, bias, 1, C, OC);
        if (memcmp(one, o1 + (size_t)b * OC, OC * sizeof(float)) != 0) { same_batch = 0; }
    }
    char name[128];
    snprintf(name, sizeof(name), "determinism %s%s, OC=%d C=%d", quant_kind_name(kind), kind == QUANT_INT4 ? " g32" : "", OC, C);
    check(same_threads && same_batch, name, "1, 2 and 3 threads bitwise equal at BT 1, 7 and 100: %s; each row of a BT=7 batch "
          "bitwise equal to the row alone: %s", same_threads ? "yes" : "NO", same_batch ? "yes" : "NO");
    quant_matrix_free(&m);
    free(W); free(x); free(bias); free(o1); free(o2); free(o3); free(one);
}

// ---------------------------------------------------------------------------------------------
// 5. the model and its file

static unsigned char* read_all(const char* path, size_t* n) {
    FILE* f = fopen_check(path, "rb");
    long sz = file_size_of(f);
    unsigned char* buf = (unsigned char*)malloc_check(sz > 0 ? (size_t)sz : 1, "file");
    if (sz > 0 && fread(buf, 1, (size_t)sz, f) != (size_t)sz) { die("short read of %s", path); }
    fclose(f);
    *n = (size_t)sz;
    return buf;
}

static void write_all(const char* path, const void* buf, size_t n) {
    FILE* f = fopen_check(path, "wb");
    fwrite_check(buf, 1, n, f, path);
    fclose(f);
}

static int matrices_equal(const QuantMatrix* a, const QuantMatrix* b) {
    if (a->kind != b->kind || a->rows != b->rows || a->cols != b->cols || a->group != b->group) { return 0; }
    if (a->kind == QUANT_F32) { return memcmp(a->f, b->f, (size_t)a->rows * a->cols * sizeof(float)) == 0; }
    return memcmp(a->scales, b->scales, quant_matrix_num_scales(a) * sizeof(float)) == 0 &&
           memcmp(a->q, b->q, quant_matrix_q_bytes(a)) == 0;
}

static int models_equal(const QuantModel* a, const QuantModel* b) {
    if (memcmp(&a->config, &b->config, sizeof(GPT2Config)) != 0 || a->kind != b->kind || a->group != b->group ||
        a->head_kind != b->head_kind) { return 0; }
    if (!matrices_equal(&a->wte, &b->wte)) { return 0; }
    for (int l = 0; l < a->config.num_layers; l++) {
        if (!matrices_equal(&a->qkvw[l], &b->qkvw[l]) || !matrices_equal(&a->attprojw[l], &b->attprojw[l]) ||
            !matrices_equal(&a->fcw[l], &b->fcw[l]) || !matrices_equal(&a->fcprojw[l], &b->fcprojw[l])) { return 0; }
    }
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, &a->config);
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        if (quant_tensor_is_matrix(t)) { continue; }
        if (memcmp(*quant_model_slot((QuantModel*)a, t), *quant_model_slot((QuantModel*)b, t), sizes[t] * sizeof(float)) != 0) { return 0; }
    }
    return 1;
}

static void test_model_roundtrip(const GPT2Config* cfg, float* params, int kind, int group, int head_kind) {
    char err[LLMC_ERRLEN];
    char p1[512], p2[512];
    snprintf(p1, sizeof(p1), "%s/m_%d_%d_%d.q", tmpdir, kind, group, head_kind);
    snprintf(p2, sizeof(p2), "%s/m_%d_%d_%d_again.q", tmpdir, kind, group, head_kind);
    QuantModel a, b;
    char name[128];
    snprintf(name, sizeof(name), "model round trip %s%s, head %s", quant_kind_name(kind), kind == QUANT_INT4 ? (group == 32 ? " g32" : " g64") : "",
             quant_kind_name(head_kind));
    if (quant_model_from_params(&a, cfg, params, kind, group, head_kind, err) != 0) { check(0, name, "from_params: %s", err); return; }
    if (quant_model_write(p1, &a, err) != 0) { check(0, name, "write: %s", err); quant_model_free(&a); return; }
    if (quant_model_read(p1, &b, err) != 0) { check(0, name, "read: %s", err); quant_model_free(&a); return; }
    int eq = models_equal(&a, &b);
    if (quant_model_write(p2, &b, err) != 0) { check(0, name, "write again: %s", err); }
    size_t n1, n2;
    unsigned char* f1 = read_all(p1, &n1);
    unsigned char* f2 = read_all(p2, &n2);
    int same_file = n1 == n2 && memcmp(f1, f2, n1) == 0;
    uint64_t want = quant_model_file_bytes(cfg, kind, group, head_kind);
    size_t np = gpt2_num_parameters(cfg);
    float* da = float_alloc_check(np, "dequantized");
    float* db = float_alloc_check(np, "dequantized");
    fill_nan(da, np);
    quant_model_dequantize(&a, da);
    quant_model_dequantize(&b, db);
    int deq_same = memcmp(da, db, np * sizeof(float)) == 0 && count_nonfinite(da, np) == 0;
    // fp32 tensors come back bitwise; the padded rows of wte (zeros) stay exact zeros
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, cfg);
    int fp32_same = 1;
    size_t off = 0;
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        int k = t == 0 ? head_kind : kind;
        if (!quant_tensor_is_matrix(t) || k == QUANT_F32) {
            if (memcmp(da + off, params + off, sizes[t] * sizeof(float)) != 0) { fp32_same = 0; }
        }
        off += sizes[t];
    }
    for (size_t i = (size_t)cfg->vocab_size * cfg->channels; i < sizes[0]; i++) { if (da[i] != 0.0f) { fp32_same = 0; } }
    check(eq && same_file && n1 == want && deq_same && fp32_same, name,
          "write, read: every matrix, scale and fp32 tensor bitwise equal: %s; written again: the same %zu bytes: %s "
          "(= quant_model_file_bytes: %s); dequantized equal: %s; fp32 tensors and wte's padded rows exact: %s",
          eq ? "yes" : "NO", n1, same_file ? "yes" : "NO", n1 == want ? "yes" : "NO", deq_same ? "yes" : "NO", fp32_same ? "yes" : "NO");
    if (kind == QUANT_F32 && head_kind == QUANT_F32) {
        // an all-fp32 model: dequantize gives the parameters back; the payload is a v3 checkpoint's
        char pc[512];
        snprintf(pc, sizeof(pc), "%s/plain.bin", tmpdir);
        checkpoint_write(pc, cfg, params, 3);
        size_t nc;
        unsigned char* fc = read_all(pc, &nc);
        int payload = nc == n1 && memcmp(fc + 1024, f1 + 1024, nc - 1024) == 0;
        QuantModel c;
        int loaded = quant_model_load(pc, &c, err) == 0;
        int load_ok = loaded && c.params != NULL && c.kind == QUANT_F32 && c.head_kind == QUANT_F32 &&
                      memcmp(c.params, params, np * sizeof(float)) == 0 && models_equal(&a, &c);
        if (loaded) { quant_model_free(&c); }
        QuantModel d;
        int loaded_q = quant_model_load(p1, &d, err) == 0 && models_equal(&a, &d);
        if (loaded_q) { quant_model_free(&d); }
        check(memcmp(da, params, np * sizeof(float)) == 0 && payload && load_ok && loaded_q, "model all fp32",
              "dequantize gives the parameters back bitwise; the file's payload is byte for byte a v3 checkpoint's: %s; "
              "quant_model_load takes the plain checkpoint (an fp32 model owning its parameters): %s, and the quantized file: %s",
              payload ? "yes" : "NO", load_ok ? "yes" : "NO", loaded_q ? "yes" : "NO");
        free(fc);
    }
    free(f1); free(f2); free(da); free(db);
    quant_model_free(&a);
    quant_model_free(&b);
}

// ---------------------------------------------------------------------------------------------
// 6. the reader's refusals

// byte offset in the file of the first matrix of tensor t (its scales for int8/int4)
static size_t offset_of(const GPT2Config* cfg, int kind, int group, int head_kind, int tensor) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, cfg);
    size_t off = 1024;
    for (int t = 0; t < tensor; t++) {
        if (!quant_tensor_is_matrix(t)) { off += 4 * sizes[t]; continue; }
        int rows, cols, count;
        quant_tensor_shape(cfg, t, &rows, &cols, &count);
        off += count * quant_matrix_file_bytes(t == 0 ? head_kind : kind, rows, cols, group);
    }
    return off;
}

static void expect_refusal(const char* what, const char* path, const char* pattern) {
    char err[LLMC_ERRLEN];
    err[0] = '\0';
    QuantModel m;
    int rc = quant_model_read(path, &m, err);
    QuantModel zero;
    memset(&zero, 0, sizeof(zero));
    int clean = memcmp(&m, &zero, sizeof(m)) == 0;
    int named = strstr(err, path) != NULL;
    int matched = strstr(err, pattern) != NULL;
    if (rc == 0) { quant_model_free(&m); }
    char name[160];
    snprintf(name, sizeof(name), "reader refuses %s", what);
    check(rc == -1 && named && matched && clean, name, "%s", rc == 0 ? "accepted!" : err);
}

static void corrupt_and_expect(const unsigned char* good, size_t n, size_t at, const void* bytes, size_t len,
                               const char* what, const char* pattern) {
    char path[512];
    snprintf(path, sizeof(path), "%s/corrupt.q", tmpdir);
    unsigned char* buf = (unsigned char*)malloc_check(n, "copy");
    memcpy(buf, good, n);
    memcpy(buf + at, bytes, len);
    write_all(path, buf, n);
    free(buf);
    expect_refusal(what, path, pattern);
}

static void set_header_and_expect(const unsigned char* good, size_t n, int word, int32_t value, const char* what, const char* pattern) {
    corrupt_and_expect(good, n, 4 * (size_t)word, &value, 4, what, pattern);
}

static void test_reader_refusals(const GPT2Config* cfg, float* params) {
    char err[LLMC_ERRLEN];
    char good_path[512], path[512];
    // an int4 model with an int4 head at C = 72: partial blocks (padding nibbles) in every row
    snprintf(good_path, sizeof(good_path), "%s/good4.q", tmpdir);
    QuantModel m;
    if (quant_model_from_params(&m, cfg, params, QUANT_INT4, 64, QUANT_INT4, err) != 0) { check(0, "reader setup", "%s", err); return; }
    if (quant_model_write(good_path, &m, err) != 0) { check(0, "reader setup", "%s", err); return; }
    quant_model_free(&m);
    size_t n;
    unsigned char* good = read_all(good_path, &n);
    QuantModel ok;
    int rc = quant_model_read(good_path, &ok, err);
    check(rc == 0, "reader takes the good int4 file", "%s", rc == 0 ? "read" : err);
    if (rc == 0) { quant_model_free(&ok); }

    set_header_and_expect(good, n, 0, 12345, "a bad magic", "bad magic 12345");
    set_header_and_expect(good, n, 0, CHECKPOINT_MAGIC, "an llm.c checkpoint's magic", "use it as a plain checkpoint");
    set_header_and_expect(good, n, 1, 2, "version 2", "unsupported quantized model version 2");
    set_header_and_expect(good, n, 6, 96, "a wrong shape (C 72 -> 96)", "need");
    set_header_and_expect(good, n, 6, 0, "C = 0", "bad heads NH=3 or channels C=0");
    set_header_and_expect(good, n, 4, 3, "a wrong shape (L 2 -> 3)", "records");
    set_header_and_expect(good, n, 11, 1234, "a wrong recorded size", "the header records 1234 bytes");
    set_header_and_expect(good, n, 8, 7, "an unknown kind", "unknown quantization kind 7");
    set_header_and_expect(good, n, 9, 48, "an int4 group of 48", "int4 group 48");
    set_header_and_expect(good, n, 9, 0, "an int4 group of 0", "int4 group 0");
    set_header_and_expect(good, n, 10, QUANT_INT8, "an int8 head on int4 weights", "head (wte) kind int8");
    set_header_and_expect(good, n, 200, 1, "a reserved header word", "reserved header word 200");

    // the real refusals of a real file (a v3 checkpoint): not silently misread
    snprintf(path, sizeof(path), "%s/plain_ck.bin", tmpdir);
    checkpoint_write(path, cfg, params, 3);
    expect_refusal("an llm.c v3 checkpoint", path, "is an llm.c model checkpoint (magic 20240326, version 3)");

    snprintf(path, sizeof(path), "%s/corrupt.q", tmpdir);
    write_all(path, good, n - 10);
    expect_refusal("a truncated file", path, "truncated");
    unsigned char* longer = (unsigned char*)malloc_check(n + 3, "copy");
    memcpy(longer, good, n);
    memset(longer + n, 0, 3);
    write_all(path, longer, n + 3);
    free(longer);
    expect_refusal("trailing bytes", path, "too long (trailing bytes)");
    write_all(path, good, 100);
    expect_refusal("a file shorter than the header", path, "shorter than the 1024-byte header");
    write_all(path, good, 0);
    expect_refusal("an empty file", path, "0 bytes, shorter than");
    expect_refusal("a directory", tmpdir, "is a directory");
    snprintf(path, sizeof(path), "%s/missing.q", tmpdir);
    expect_refusal("a missing file", path, "cannot open");

    // scales and values: wte is the first tensor (scales at 1024); qkvw[layer 0]'s scales after wpe..ln1b
    float bad = NAN;
    corrupt_and_expect(good, n, 1024 + 4 * 5, &bad, 4, "a NaN scale (wte)", "wte: the scale of row 2, group 1 is nan");
    bad = INFINITY;
    size_t qkv = offset_of(cfg, QUANT_INT4, 64, QUANT_INT4, 4);
    corrupt_and_expect(good, n, qkv, &bad, 4, "an infinite scale (qkvw)", "qkvw[layer 0]: the scale of row 0, group 0 is inf");
    bad = -0.5f;
    corrupt_and_expect(good, n, qkv + 8, &bad, 4, "a negative scale", "the scale of row 1, group 0 is -0.5");
    // qkvw[0] values start after its 3C * 2 scales; byte 0 = columns 0 and 16 of row 0
    size_t qkv_q = qkv + 4 * (size_t)3 * cfg->channels * 2;
    unsigned char b0 = (unsigned char)(good[qkv_q] & 0xF0);  // low nibble 0
    corrupt_and_expect(good, n, qkv_q, &b0, 1, "an int4 nibble 0 (-8)", "nibble 0 at row 0, column 0");
    // C = 72: row 0's last block holds columns 64..71 and padding 72..95; byte 40 = columns 72 / 88
    size_t rb = quant_row_bytes(QUANT_INT4, cfg->channels);
    unsigned char pb = (unsigned char)((good[qkv_q + rb - 16 + 8] & 0xF0) | 9);
    corrupt_and_expect(good, n, qkv_q + rb - 16 + 8, &pb, 1, "a padding nibble other than 8", "nibble 9 at row 0, column 72");
    // a NaN in an fp32 tensor: lnfw's first value
    size_t lnfw = offset_of(cfg, QUANT_INT4, 64, QUANT_INT4, 14);
    bad = NAN;
    corrupt_and_expect(good, n, lnfw, &bad, 4, "a NaN in an fp32 tensor (lnfw)", "parameter lnfw[0] is nan");
    free(good);

    // int8: a value of -128
    char p8[512];
    snprintf(p8, sizeof(p8), "%s/good8.q", tmpdir);
    if (quant_model_from_params(&m, cfg, params, QUANT_INT8, 0, QUANT_F32, err) != 0) { check(0, "reader setup int8", "%s", err); return; }
    if (quant_model_write(p8, &m, err) != 0) { check(0, "reader setup int8", "%s", err); return; }
    quant_model_free(&m);
    unsigned char* good8 = read_all(p8, &n);
    size_t fcw = offset_of(cfg, QUANT_INT8, 0, QUANT_F32, 10);
    unsigned char v128 = 0x80;
    corrupt_and_expect(good8, n, fcw + 4 * (size_t)4 * cfg->channels + 5, &v128, 1, "an int8 value of -128",
                       "fcw[layer 0]: value -128 at row 0, column 5");
    set_header_and_expect(good8, n, 9, 32, "a group in an int8 file", "group 32 in the header of an int8 model");
    free(good8);

    // the writer: an output path that is a directory is refused before anything is written
    if (quant_model_from_params(&m, cfg, params, QUANT_INT8, 0, QUANT_F32, err) == 0) {
        err[0] = '\0';
        int wrc = quant_model_write(tmpdir, &m, err);
        check(wrc == -1 && strstr(err, "is a directory") != NULL, "writer refuses a directory as its output", "%s", err);
        quant_model_free(&m);
    }
}

static void test_from_params_refusals(const GPT2Config* cfg, float* params) {
    char err[LLMC_ERRLEN];
    QuantModel m;
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, cfg);
    size_t fcb = 0;
    for (int t = 0; t < 11; t++) { fcb += sizes[t]; }
    float saved = params[fcb + 3];
    params[fcb + 3] = NAN;
    int rc1 = quant_model_from_params(&m, cfg, params, QUANT_INT8, 0, QUANT_F32, err);
    char e1[LLMC_ERRLEN];
    snprintf(e1, sizeof(e1), "%s", err);
    params[fcb + 3] = saved;
    int rc2 = quant_model_from_params(&m, cfg, params, QUANT_INT4, 48, QUANT_F32, err);
    char e2[LLMC_ERRLEN];
    snprintf(e2, sizeof(e2), "%s", err);
    int rc3 = quant_model_from_params(&m, cfg, params, QUANT_INT4, 32, QUANT_INT8, err);
    check(rc1 == -1 && strstr(e1, "parameter fcb[3] is nan") != NULL && rc2 == -1 && strstr(e2, "int4 group 48") != NULL &&
          rc3 == -1 && strstr(err, "head (wte) kind int8") != NULL, "from_params refuses a NaN, a group of 48, an int8 head on int4",
          "%s | %s | %s", e1, e2, err);
}

int main(int argc, char** argv) {
    double t0 = now_seconds();
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    const char* env = getenv("SEED");
    if (argc > 1) { seed = strtoull(argv[1], NULL, 10); }
    else if (env != NULL && env[0] != '\0') { seed = strtoull(env, NULL, 10); }
    seed %= 1000000007ull;
    printf("test_quant: seed %llu (rerun with: dev/infer/test_quant %llu); %s path\n", (unsigned long long)seed,
           (unsigned long long)seed,
#ifdef QUANT_AVX512
           "AVX-512"
#else
           "portable"
#endif
    );
    rng_init(&rng, seed);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_quant.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) { die("mkdtemp failed"); }

    // 1. quantization
    const int shapes[][2] = {{5, 72}, {7, 200}, {4, 1000}, {4, 31}, {6, 33}};
    for (int s = 0; s < 5; s++) {
        test_quantize_bounds(QUANT_INT8, 0, shapes[s][0], shapes[s][1]);
        int groups[] = {32, 64, 96, 128};
        for (int g = 0; g < 4; g++) { test_quantize_bounds(QUANT_INT4, groups[g], shapes[s][0], shapes[s][1]); }
    }

    // 2. exact arithmetic: fast == reference == exact, bitwise
    {
        const int Cs[] = {1, 15, 16, 17, 31, 32, 33, 72, 200, 1000};
        const int OCs[] = {1, 3, 4, 5, 13};
        const int BTs[] = {1, 2, 3, 4, 5, 7, 8, 9, 17, 64, 67};
        const int kinds[][2] = {{QUANT_F32, 0}, {QUANT_INT8, 0}, {QUANT_INT4, 32}, {QUANT_INT4, 64}, {QUANT_INT4, 96}, {QUANT_INT4, 128}};
        for (int k = 0; k < 6; k++) {
            int nfail = 0, nrun = 0;
            for (int ci = 0; ci < 10; ci++) {
                for (int oi = 0; oi < 5; oi++) {
                    for (int bi = 0; bi < 11; bi++) {
                        // every C and OC at a few batch sizes, every batch size at a few shapes
                        if (!(bi < 3 || (ci % 3 == 0 && oi % 2 == 0) || (ci == 7 && oi == 4))) { continue; }
                        test_exact(kinds[k][0], kinds[k][1], OCs[oi], Cs[ci], BTs[bi], (ci + oi + bi) % 2, &nfail, &nrun);
                    }
                }
            }
            char name[96];
            snprintf(name, sizeof(name), "exact matmul %s%s", quant_kind_name(kinds[k][0]), kinds[k][0] == QUANT_INT4 ? " group " : "");
            if (kinds[k][0] == QUANT_INT4) { snprintf(name, sizeof(name), "exact matmul int4 group %d", kinds[k][1]); }
            check(nfail == 0, name, "fast path == reference == exact sum, bitwise, in %d of %d shapes (C 1..1000, OC 1..13, "
                  "BT 1..67, with and without bias; integer inputs, power-of-two scales: every intermediate exact)",
                  nrun - nfail, nrun);
        }
    }

    // 3. random data against the bound
    {
        const int kinds[][2] = {{QUANT_F32, 0}, {QUANT_INT8, 0}, {QUANT_INT4, 32}, {QUANT_INT4, 64}, {QUANT_INT4, 128}};
        const int sizes[][3] = {{72, 200, 1}, {200, 72, 3}, {13, 1000, 7}, {96, 768, 64}, {1001, 64, 1}, {50, 3072, 17}, {400, 72, 100}};
        for (int k = 0; k < 5; k++) {
            RandomResult r;
            memset(&r, 0, sizeof(r));
            for (int s = 0; s < 7; s++) { test_random(kinds[k][0], kinds[k][1], sizes[s][0], sizes[s][1], sizes[s][2], s % 2 == 0, &r); }
            char name[96];
            if (kinds[k][0] == QUANT_INT4) { snprintf(name, sizeof(name), "random matmul int4 group %d", kinds[k][1]); }
            else { snprintf(name, sizeof(name), "random matmul %s", quant_kind_name(kinds[k][0])); }
            check(r.bad_fast == 0 && r.bad_mm == 0 && r.nan == 0, name,
                  "OC x C x BT = 72x200x1, 200x72x3, 13x1000x7, 96x768x64, 1001x64x1, 50x3072x17, 400x72x100 (the GEMM path), "
                  "outputs NaN-poisoned first: "
                  "fast vs reference within gamma(C+10)*S: largest %.2f u*S (bound %d..%d u*S); reference vs matmul_forward on the "
                  "dequantized matrix: largest %.2f u*S; %d outside, %d non-finite; the zero row gives the bias exactly",
                  r.worst_fast, 72 + 10, 3072 + 10, r.worst_mm, r.bad_fast + r.bad_mm, r.nan);
        }
    }

    // 4. determinism
    test_threads_and_batch(QUANT_F32, 0, 1001, 768);
    test_threads_and_batch(QUANT_INT8, 0, 1001, 768);
    test_threads_and_batch(QUANT_INT4, 32, 1001, 768);
    test_threads_and_batch(QUANT_INT4, 32, 2304, 200);

    // 5. the model: the awkward shape of the PyTorch reference tests (C = 72: partial int4 blocks)
    GPT2Config cfg = { .max_seq_len = 16, .vocab_size = 997, .padded_vocab_size = 1024, .num_layers = 2, .num_heads = 3, .channels = 72 };
    size_t np = gpt2_num_parameters(&cfg);
    float* params = float_alloc_check(np, "parameters");
    gpt2_init_random(params, &cfg, seed);
    {  // LayerNorms and biases away from their init, so that the fp32 tensors are not trivial
        size_t sizes[NUM_PARAMETER_TENSORS];
        gpt2_parameter_sizes(sizes, &cfg);
        size_t off = 0;
        for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
            if (!quant_tensor_is_matrix(t)) { for (size_t i = 0; i < sizes[t]; i++) { params[off + i] += 0.01f * (rng_f32(&rng) - 0.5f); } }
            off += sizes[t];
        }
    }
    test_model_roundtrip(&cfg, params, QUANT_F32, 0, QUANT_F32);
    test_model_roundtrip(&cfg, params, QUANT_INT8, 0, QUANT_F32);
    test_model_roundtrip(&cfg, params, QUANT_INT8, 0, QUANT_INT8);
    test_model_roundtrip(&cfg, params, QUANT_INT4, 32, QUANT_F32);
    test_model_roundtrip(&cfg, params, QUANT_INT4, 64, QUANT_INT4);
    test_from_params_refusals(&cfg, params);

    // 6. the reader's refusals
    test_reader_refusals(&cfg, params);
    free(params);

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) { fprintf(stderr, "warning: could not remove %s\n", tmpdir); }
    printf("test_quant: %d failure%s, %.1f s\n", test_failures, test_failures == 1 ? "" : "s", now_seconds() - t0);
    return test_failures == 0 ? 0 : 1;
}
