// Tests for llmc/matmul.h: the gemm core and matmul_forward / matmul_backward against a
// naive double-precision reference, on fresh random inputs every run.
//
//   make dev/test/test_matmul && ./dev/test/test_matmul [--quick] [seed]
//
// Prints "PASS: name" or "FAIL: name: detail" per check, exits non-zero if any failed.
// The seed comes from the clock unless given, and is printed so a failure can be replayed.
//
// Tolerance: |ours - ref| <= TOL * mag, where mag is the sum of the magnitudes of every term
// that went into the element (|init| + |bias| + sum_k |a_ik * b_kj|). Float summation of n
// terms errs by at most ~n * 6e-8 of mag and in practice by ~sqrt(n) * 6e-8; our sums run
// in KC = 256 blocks, and the worst element seen over many seeds is ~4e-7 of mag. 1e-5 is
// far above that and below what real bugs do: a missing or doubled term costs ~1/K of mag
// (> 1e-5 for every K here but the lm head's 50304, where it is ~2e-5), a skipped tile
// leaves the NaN poison, a wrong tile is off by O(1).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdint.h>
#include <time.h>
#include "llmc/matmul.h"

#define TOL 1e-5

static int g_failed = 0;
static int g_checks = 0;

static void report(int ok, const char* name, const char* detail) {
    g_checks++;
    if (ok) {
        printf("PASS: %s\n", name);
    } else {
        printf("FAIL: %s: %s\n", name, detail);
        g_failed++;
    }
    fflush(stdout);
}

// ---------------------------------------------------------------------------- random
static uint64_t g_rng;
static uint32_t rng_u32(void) {  // xorshift64*
    g_rng ^= g_rng >> 12; g_rng ^= g_rng << 25; g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545F4914F6CDD1DULL) >> 32);
}
static float rng_uniform(void) { return (rng_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }  // [-1,1)
static void fill_random(float* p, size_t n) { for (size_t i = 0; i < n; i++) { p[i] = rng_uniform(); } }
static void fill_nan(float* p, size_t n) { for (size_t i = 0; i < n; i++) { p[i] = NAN; } }

static float* alloc_floats(size_t n) {
    float* p = malloc((n > 0 ? n : 1) * sizeof(float));
    if (p == NULL) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

static void set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}
static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// ---------------------------------------------------------------------------- error tracking
typedef struct {
    double worst;      // largest |err| / mag seen
    int bad;           // number of elements over tolerance (or NaN)
    char first[256];   // where the first bad one was
} ErrStat;

static void err_init(ErrStat* e) { e->worst = 0.0; e->bad = 0; e->first[0] = '\0'; }

static void err_add(ErrStat* e, double got, double ref, double mag, const char* ctx, int i, int j) {
    double err = fabs(got - ref);
    double rel = mag > 0 ? err / mag : (err > 0 ? INFINITY : 0.0);
    if (!(err <= TOL * mag)) {  // NaN fails here too
        if (e->bad == 0) {
            snprintf(e->first, sizeof(e->first), "%s [%d,%d]: got %.9g, want %.9g (mag %.3g)",
                     ctx, i, j, got, ref, mag);
        }
        e->bad++;
        rel = isnan(rel) ? INFINITY : rel;
    }
    if (rel > e->worst) { e->worst = rel; }
}

// ---------------------------------------------------------------------------- gemm core
// C = (accumulate ? C0 : 0) + bias + A @ B in double; mag = the matching sum of magnitudes
static void ref_elem(int K, const float* A, ptrdiff_t rsA, ptrdiff_t csA,
                     const float* B, ptrdiff_t rsB, ptrdiff_t csB,
                     int i, int j, double init, double* val, double* mag) {
    double s = init, m = fabs(init);
    for (int k = 0; k < K; k++) {
        double t = (double)A[i * rsA + k * csA] * (double)B[k * rsB + j * csB];
        s += t;
        m += fabs(t);
    }
    *val = s;
    *mag = m;
}

// storage layouts: A is [M,K] row-major (lda = K+pad) or stored transposed ([K,M]);
// the same for B. Leading dimensions are padded so no stride is the "tight" one.
typedef struct { int a_trans, b_trans; } Layout;

// runs one gemm case, folds its errors into e. Returns 0 if the canaries around C survived.
static int gemm_case(int M, int N, int K, Layout L, int accumulate, int use_bias,
                     ErrStat* e, const char* ctx) {
    int pad = 3;
    ptrdiff_t rsA, csA, rsB, csB;
    if (!L.a_trans) { rsA = K + pad; csA = 1; } else { rsA = 1; csA = M + pad; }
    if (!L.b_trans) { rsB = N + pad; csB = 1; } else { rsB = 1; csB = K + pad; }
    size_t na = (size_t)((M - 1) * rsA + (K - 1) * csA + 1);
    size_t nb = (size_t)((K - 1) * rsB + (N - 1) * csB + 1);
    if (K == 0) { na = nb = 1; }
    ptrdiff_t ldc = N + 5;
    size_t nc = (size_t)M * ldc;
    float* A = alloc_floats(na);
    float* B = alloc_floats(nb);
    float* C = alloc_floats(nc + 16);
    float* C0 = alloc_floats(nc);
    float* bias = use_bias ? alloc_floats(N) : NULL;
    fill_random(A, na);
    fill_random(B, nb);
    if (bias) { fill_random(bias, N); }
    if (accumulate) { fill_random(C, nc); } else { fill_nan(C, nc); }  // poison what is overwritten
    // canaries: the ldc padding of each row and 16 floats past the end must not change
    for (int i = 0; i < M; i++) { for (ptrdiff_t j = N; j < ldc; j++) { C[i * ldc + j] = 12345.0f; } }
    for (int t = 0; t < 16; t++) { C[nc + t] = 12345.0f; }
    memcpy(C0, C, nc * sizeof(float));

    gemm(M, N, K, A, rsA, csA, B, rsB, csB, C, ldc, accumulate, bias);

    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double init = (accumulate ? C0[i * ldc + j] : 0.0) + (bias ? bias[j] : 0.0);
            double ref, mag;
            ref_elem(K, A, rsA, csA, B, rsB, csB, i, j, init, &ref, &mag);
            // the init terms count towards mag separately, as they were added separately
            if (accumulate && bias) { mag += fabs(bias[j]); }
            err_add(e, C[i * ldc + j], ref, mag, ctx, i, j);
        }
    }
    int canaries_ok = 1;
    for (int i = 0; i < M; i++) {
        for (ptrdiff_t j = N; j < ldc; j++) { if (C[i * ldc + j] != 12345.0f) { canaries_ok = 0; } }
    }
    for (int t = 0; t < 16; t++) { if (C[nc + t] != 12345.0f) { canaries_ok = 0; } }
    free(A); free(B); free(C); free(C0); free(bias);
    return canaries_ok;
}

static void test_gemm_core(void) {
    const int Ms[] = {1, 7, 13, 97, 385};
    const int Ns[] = {1, 5, 17, 67, 771};
    const int Ks[] = {1, 3, 19, 72, 259};
    const int nM = 5, nN = 5, nK = 5;
    for (int lay = 0; lay < 4; lay++) {
        Layout L = {lay & 1, (lay >> 1) & 1};
        for (int acc = 0; acc <= 1; acc++) {
            ErrStat e;
            err_init(&e);
            int canaries_ok = 1, ncases = 0;
            char ctx[128];
            for (int a = 0; a < nM; a++) {
                for (int b = 0; b < nN; b++) {
                    for (int c = 0; c < nK; c++) {
                        int use_bias = (a + b + c) % 2;  // half the cases with a bias
                        snprintf(ctx, sizeof(ctx), "M=%d N=%d K=%d bias=%d", Ms[a], Ns[b], Ks[c], use_bias);
                        canaries_ok &= gemm_case(Ms[a], Ns[b], Ks[c], L, acc, use_bias, &e, ctx);
                        ncases++;
                    }
                }
            }
            char name[128], detail[512];
            snprintf(name, sizeof(name), "gemm A%s B%s %s (%d sizes)", L.a_trans ? "^T" : "",
                     L.b_trans ? "^T" : "", acc ? "accumulate" : "overwrite", ncases);
            if (e.bad) {
                snprintf(detail, sizeof(detail), "%d elements off, worst rel %.2e, first %s",
                         e.bad, e.worst, e.first);
            } else if (!canaries_ok) {
                snprintf(detail, sizeof(detail), "wrote outside C (ldc padding or past the end)");
            } else {
                snprintf(detail, sizeof(detail), "ok");
            }
            if (!e.bad && canaries_ok) { snprintf(name + strlen(name), 64, ", worst rel %.1e", e.worst); }
            report(!e.bad && canaries_ok, name, detail);
        }
    }
}

// fully general strides (neither stride is 1) and the empty sum K = 0
static void test_gemm_odd_strides(void) {
    ErrStat e;
    err_init(&e);
    int M = 29, N = 45, K = 300;
    ptrdiff_t rsA = 2, csA = 2 * M + 1, rsB = 3 * N + 2, csB = 3;
    size_t na = (size_t)((M - 1) * rsA + (K - 1) * csA + 1);
    size_t nb = (size_t)((K - 1) * rsB + (N - 1) * csB + 1);
    float* A = alloc_floats(na);
    float* B = alloc_floats(nb);
    float* C = alloc_floats((size_t)M * N);
    fill_random(A, na);
    fill_random(B, nb);
    fill_nan(C, (size_t)M * N);
    gemm(M, N, K, A, rsA, csA, B, rsB, csB, C, N, 0, NULL);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double ref, mag;
            ref_elem(K, A, rsA, csA, B, rsB, csB, i, j, 0.0, &ref, &mag);
            err_add(&e, C[i * N + j], ref, mag, "strided", i, j);
        }
    }
    char detail[512];
    snprintf(detail, sizeof(detail), "%d elements off, first %s", e.bad, e.first);
    report(e.bad == 0, "gemm with non-unit strides on both sides of A and B", detail);
    free(A); free(B); free(C);

    // K = 0: C = init (+ bias), nothing read from A or B
    ErrStat e0;
    err_init(&e0);
    int ok = 1;
    for (int acc = 0; acc <= 1; acc++) {
        ok &= gemm_case(5, 40, 0, (Layout){0, 0}, acc, 1, &e0, "K=0");
    }
    snprintf(detail, sizeof(detail), "%d elements off, first %s", e0.bad, e0.first);
    report(ok && e0.bad == 0, "gemm with K = 0 (empty sum: C = init + bias)", detail);
}

// ---------------------------------------------------------------------------- the layer
// Checks forward and backward for one shape. Products whose reference would cost too much
// in double are checked on a random sample of elements plus the last row and column.
typedef struct { float *inp, *weight, *bias, *out, *dout, *dinp, *dweight, *dbias; } Layer;

static void layer_alloc(Layer* l, int BT, int C, int OC) {
    l->inp = alloc_floats((size_t)BT * C);
    l->weight = alloc_floats((size_t)OC * C);
    l->bias = alloc_floats(OC);
    l->out = alloc_floats((size_t)BT * OC);
    l->dout = alloc_floats((size_t)BT * OC);
    l->dinp = alloc_floats((size_t)BT * C);
    l->dweight = alloc_floats((size_t)OC * C);
    l->dbias = alloc_floats(OC);
    fill_random(l->inp, (size_t)BT * C);
    fill_random(l->weight, (size_t)OC * C);
    fill_random(l->bias, OC);
    fill_random(l->dout, (size_t)BT * OC);
    fill_random(l->dinp, (size_t)BT * C);       // backward accumulates: start from nonzero
    fill_random(l->dweight, (size_t)OC * C);
    fill_random(l->dbias, OC);
}
static void layer_free(Layer* l) {
    free(l->inp); free(l->weight); free(l->bias); free(l->out);
    free(l->dout); free(l->dinp); free(l->dweight); free(l->dbias);
}

// visits all (i, j) of an M x N product, or a sample when M*N*K is large
#define SAMPLE_LIMIT 30000000.0
typedef void (*ElemCheck)(void* ctx, int i, int j);
static void for_elements(int M, int N, int K, ElemCheck f, void* ctx) {
    if ((double)M * N * K <= SAMPLE_LIMIT) {
        for (int i = 0; i < M; i++) { for (int j = 0; j < N; j++) { f(ctx, i, j); } }
        return;
    }
    int nsample = (int)(SAMPLE_LIMIT / K);
    for (int s = 0; s < nsample; s++) { f(ctx, (int)(rng_u32() % M), (int)(rng_u32() % N)); }
    for (int i = 0; i < M; i++) { f(ctx, i, N - 1); }  // edge tiles
    for (int j = 0; j < N; j++) { f(ctx, M - 1, j); }
}

typedef struct {
    const Layer* l; const float* got; const float* init; int BT, C, OC, use_bias; ErrStat* e;
} CheckCtx;

static void check_fwd(void* p, int i, int j) {  // out[i, j], i in BT, j in OC
    CheckCtx* c = p;
    double init = c->use_bias ? c->l->bias[j] : 0.0, ref, mag;
    ref_elem(c->C, c->l->inp, c->C, 1, c->l->weight, 1, c->C, i, j, init, &ref, &mag);
    err_add(c->e, c->got[(size_t)i * c->OC + j], ref, mag, "out", i, j);
}
static void check_dinp(void* p, int i, int j) {  // dinp[i, j], i in BT, j in C
    CheckCtx* c = p;
    double ref, mag;
    ref_elem(c->OC, c->l->dout, c->OC, 1, c->l->weight, c->C, 1, i, j,
             c->init[(size_t)i * c->C + j], &ref, &mag);
    err_add(c->e, c->got[(size_t)i * c->C + j], ref, mag, "dinp", i, j);
}
static void check_dweight(void* p, int i, int j) {  // dweight[i, j], i in OC, j in C
    CheckCtx* c = p;
    double ref, mag;
    ref_elem(c->BT, c->l->dout, 1, c->OC, c->l->inp, c->C, 1, i, j,
             c->init[(size_t)i * c->C + j], &ref, &mag);
    err_add(c->e, c->got[(size_t)i * c->C + j], ref, mag, "dweight", i, j);
}

static void report_err(const char* name, const ErrStat* e) {
    char detail[512], full[256];
    snprintf(detail, sizeof(detail), "%d elements off, worst rel %.2e, first %s", e->bad, e->worst, e->first);
    if (e->bad == 0) {
        snprintf(full, sizeof(full), "%s, worst rel %.1e", name, e->worst);
    } else {
        snprintf(full, sizeof(full), "%s", name);
    }
    report(e->bad == 0, full, detail);
}

static void test_layer(const char* label, int B, int T, int C, int OC) {
    int BT = B * T;
    Layer l;
    layer_alloc(&l, BT, C, OC);
    char name[200];

    // forward, with and without bias, output poisoned
    for (int use_bias = 1; use_bias >= 0; use_bias--) {
        ErrStat e;
        err_init(&e);
        fill_nan(l.out, (size_t)BT * OC);
        matmul_forward(l.out, l.inp, l.weight, use_bias ? l.bias : NULL, B, T, C, OC);
        CheckCtx ctx = {&l, l.out, NULL, BT, C, OC, use_bias, &e};
        for_elements(BT, OC, C, check_fwd, &ctx);
        snprintf(name, sizeof(name), "%s forward B=%d T=%d C=%d OC=%d%s", label, B, T, C, OC,
                 use_bias ? "" : " bias=NULL");
        report_err(name, &e);
    }

    // backward: all three accumulate onto random initial values
    float* dinp0 = alloc_floats((size_t)BT * C);
    float* dw0 = alloc_floats((size_t)OC * C);
    float* db0 = alloc_floats(OC);
    memcpy(dinp0, l.dinp, (size_t)BT * C * sizeof(float));
    memcpy(dw0, l.dweight, (size_t)OC * C * sizeof(float));
    memcpy(db0, l.dbias, OC * sizeof(float));
    matmul_backward(l.dinp, l.dweight, l.dbias, l.dout, l.inp, l.weight, B, T, C, OC);
    ErrStat e;
    err_init(&e);
    CheckCtx ctx = {&l, l.dinp, dinp0, BT, C, OC, 0, &e};
    for_elements(BT, C, OC, check_dinp, &ctx);
    snprintf(name, sizeof(name), "%s backward dinp B=%d T=%d C=%d OC=%d", label, B, T, C, OC);
    report_err(name, &e);
    err_init(&e);
    ctx.got = l.dweight; ctx.init = dw0;
    for_elements(OC, C, BT, check_dweight, &ctx);
    snprintf(name, sizeof(name), "%s backward dweight B=%d T=%d C=%d OC=%d", label, B, T, C, OC);
    report_err(name, &e);
    err_init(&e);
    for (int o = 0; o < OC; o++) {
        double s = db0[o], m = fabs(db0[o]);
        for (int bt = 0; bt < BT; bt++) { s += l.dout[(size_t)bt * OC + o]; m += fabs(l.dout[(size_t)bt * OC + o]); }
        err_add(&e, l.dbias[o], s, m, "dbias", 0, o);
    }
    snprintf(name, sizeof(name), "%s backward dbias B=%d T=%d C=%d OC=%d", label, B, T, C, OC);
    report_err(name, &e);

    // dbias = NULL must leave everything else the same and not crash
    memcpy(l.dinp, dinp0, (size_t)BT * C * sizeof(float));
    memcpy(l.dweight, dw0, (size_t)OC * C * sizeof(float));
    float* dinp1 = alloc_floats((size_t)BT * C);
    float* dw1 = alloc_floats((size_t)OC * C);
    memcpy(dinp1, dinp0, (size_t)BT * C * sizeof(float));
    memcpy(dw1, dw0, (size_t)OC * C * sizeof(float));
    matmul_backward(dinp1, dw1, NULL, l.dout, l.inp, l.weight, B, T, C, OC);
    matmul_backward(l.dinp, l.dweight, l.dbias, l.dout, l.inp, l.weight, B, T, C, OC);
    int same = memcmp(dinp1, l.dinp, (size_t)BT * C * sizeof(float)) == 0 &&
               memcmp(dw1, l.dweight, (size_t)OC * C * sizeof(float)) == 0;
    snprintf(name, sizeof(name), "%s backward dbias=NULL gives the same dinp, dweight", label);
    report(same, name, "dinp or dweight differ from the run with dbias");

    free(dinp0); free(dw0); free(db0); free(dinp1); free(dw1);
    layer_free(&l);
}

// ---------------------------------------------------------------------------- determinism
// Same inputs -> bitwise same outputs: twice with the same thread count, and with three
// other thread counts from {1, 2, 3, 5} (the split never cuts K, so this must hold too).
static void test_determinism(int B, int T, int C, int OC) {
    int BT = B * T;
    Layer l;
    layer_alloc(&l, BT, C, OC);
    size_t nout = (size_t)BT * OC, ninp = (size_t)BT * C, nw = (size_t)OC * C;
    float* dinp0 = alloc_floats(ninp);
    float* dw0 = alloc_floats(nw);
    float* db0 = alloc_floats(OC);
    memcpy(dinp0, l.dinp, ninp * sizeof(float));
    memcpy(dw0, l.dweight, nw * sizeof(float));
    memcpy(db0, l.dbias, OC * sizeof(float));
    // results of run r: forward out, and backward dinp, dweight, dbias from the same start
    float* res[5][4];
    int default_threads = max_threads();
    int threads[5] = {default_threads, default_threads, 0, 0, 0};
    int candidates[4] = {1, 2, 3, 5}, nt = 2;
    for (int c = 0; c < 4 && nt < 5; c++) {
        if (candidates[c] != default_threads) { threads[nt++] = candidates[c]; }
    }
    for (int r = 0; r < 5; r++) {
        set_threads(threads[r]);
        res[r][0] = alloc_floats(nout);
        res[r][1] = alloc_floats(ninp);
        res[r][2] = alloc_floats(nw);
        res[r][3] = alloc_floats(OC);
        fill_nan(res[r][0], nout);
        memcpy(res[r][1], dinp0, ninp * sizeof(float));
        memcpy(res[r][2], dw0, nw * sizeof(float));
        memcpy(res[r][3], db0, OC * sizeof(float));
        matmul_forward(res[r][0], l.inp, l.weight, l.bias, B, T, C, OC);
        matmul_backward(res[r][1], res[r][2], res[r][3], l.dout, l.inp, l.weight, B, T, C, OC);
    }
    set_threads(default_threads);
    size_t sizes[4] = {nout, ninp, nw, (size_t)OC};
    const char* what[4] = {"out", "dinp", "dweight", "dbias"};
    char name[200], detail[200];
    for (int r = 1; r < 5; r++) {
        int ok = 1;
        detail[0] = '\0';
        for (int t = 0; t < 4; t++) {
            if (memcmp(res[0][t], res[r][t], sizes[t] * sizeof(float)) != 0) {
                ok = 0;
                snprintf(detail, sizeof(detail), "%s differs", what[t]);
                break;
            }
        }
        if (r == 1) {
            snprintf(name, sizeof(name), "bitwise determinism, two calls, %d threads, B=%d T=%d C=%d OC=%d",
                     default_threads, B, T, C, OC);
        } else {
            snprintf(name, sizeof(name), "bitwise same result with %d vs %d threads, B=%d T=%d C=%d OC=%d",
                     threads[r], default_threads, B, T, C, OC);
        }
        report(ok, name, detail);
    }
    for (int r = 0; r < 5; r++) { for (int t = 0; t < 4; t++) { free(res[r][t]); } }
    free(dinp0); free(dw0); free(db0);
    layer_free(&l);
}

int main(int argc, char** argv) {
    // --quick: skip the GPT-2 shapes (used for the extra builds that test the fallbacks)
    int quick = 0;
    uint64_t seed = (uint64_t)time(NULL);
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--quick") == 0) { quick = 1; }
        else { seed = strtoull(argv[a], NULL, 10); }
    }
    g_rng = seed * 2654435761ULL + 88172645463325252ULL;
    if (g_rng == 0) { g_rng = 1; }
    const char* isa =
#if defined(MATMUL_AVX512)
        "AVX-512";
#elif defined(MATMUL_AVX2)
        "AVX2+FMA";
#else
        "plain C";
#endif
    printf("%s: seed %llu (rerun with %s%s %llu), kernel %s %dx%d, %d threads, "
           "tolerance %.0e of sum |terms|\n", argv[0], (unsigned long long)seed, argv[0],
           quick ? " --quick" : "", (unsigned long long)seed, isa, MATMUL_MR, MATMUL_NR,
           max_threads(), TOL);

    test_gemm_core();
    test_gemm_odd_strides();

    // awkward layer shapes
    test_layer("awkward", 1, 1, 1, 1);
    test_layer("awkward", 1, 7, 3, 5);
    test_layer("awkward", 3, 13, 19, 17);
    test_layer("awkward", 5, 77, 259, 67);
    test_layer("awkward", 1, 385, 72, 771);
    // GPT-2 shapes (d12 at B*T = 4*64, and the d6 width), sampled where large
    if (!quick) {
        test_layer("d12 qkv", 4, 64, 768, 2304);
        test_layer("d12 attproj", 4, 64, 768, 768);
        test_layer("d12 fc", 4, 64, 768, 3072);
        test_layer("d12 fcproj", 4, 64, 3072, 768);
        test_layer("d12 lmhead", 4, 64, 768, 50304);
        test_layer("d6 qkv", 8, 32, 384, 1152);
    }

    test_determinism(4, 64, 768, 2304);
    test_determinism(3, 37, 259, 771);

    printf("%d checks, %d failed\n", g_checks, g_failed);
    return g_failed ? 1 : 0;
}
