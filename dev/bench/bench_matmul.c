// Benchmark: our matmul_forward / matmul_backward (llmc/matmul.h) against OpenBLAS
// cblas_sgemm on the GPT-2 layer shapes, in the same run, same thread count.
//
//   make dev/bench/bench_matmul && OMP_NUM_THREADS=2 ./dev/bench/bench_matmul [reps]
//   env: BENCH_ONLY=<substring of shape name>, BENCH_BT=256|2048, BENCH_STAT=min
//   (OpenBLAS gets as many threads as OpenMP; results: dev/bench/results/matmul_cpu_*.md)
//
// For each shape (BT rows, C in, OC out) it times three products:
//   fwd:  out = inp @ W^T + bias        (M=BT, N=OC, K=C)
//   dinp: dinp += dout @ W              (M=BT, N=C,  K=OC)
//   dW:   dW += dout^T @ inp            (M=OC, N=C,  K=BT)
// ours through the public functions (fwd: matmul_forward; bwd: matmul_backward, timed
// as a whole and compared with the two OpenBLAS sgemm + an sgemv for dbias), and reports
// GFLOP/s = 2*M*N*K / median time (BENCH_STAT=min: best time). Ours and OpenBLAS take
// turns in blocks (see TIME_PAIR), so both see the same background load. The last lines
// are the raw ceilings: both sgemms on a 2048^3 square product, and the FMA peak.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#include "llmc/matmul.h"

void openblas_set_num_threads(int);
char* openblas_get_corename(void);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void pause_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static float* rand_buf(size_t n, unsigned* seed) {
    float* p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (p == NULL) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = ((*seed >> 8) / 16777216.0f - 0.5f) * 0.1f;
    }
    return p;
}

static int g_reps = 5;  // per round; ROUNDS rounds
static int g_use_min = 0;  // BENCH_STAT=min: best instead of median (for tuning on a busy machine)

#define MAXREPS 64
// Times two statements (ours, OpenBLAS): ROUNDS rounds of [a warm-up and g_reps timed
// runs of ours, then the same for OpenBLAS], and keeps the median (or best) of each over
// all rounds. Taking turns in blocks means both see the same background load on a shared
// machine. The untimed pause before each block lets the other library's idle threads stop
// spinning first: libgomp spins for a few ms after a parallel region, OpenBLAS's workers
// for ~0.1 s, and a spinning thread steals a core from whoever runs next.
#define ROUNDS 2
#define PAUSE_MS 150
#define TIME_PAIR(res_a, stmt_a, res_b, stmt_b) do {                    \
        double _ta[ROUNDS * MAXREPS], _tb[ROUNDS * MAXREPS];            \
        int _n = 0;                                                     \
        for (int _round = 0; _round < ROUNDS; _round++) {               \
            pause_ms(PAUSE_MS);                                         \
            stmt_a;                                                     \
            for (int _r = 0; _r < g_reps; _r++) {                       \
                double _t0 = now_s();                                   \
                stmt_a;                                                 \
                _ta[_n + _r] = now_s() - _t0;                           \
            }                                                           \
            pause_ms(PAUSE_MS);                                         \
            stmt_b;                                                     \
            for (int _r = 0; _r < g_reps; _r++) {                       \
                double _t0 = now_s();                                   \
                stmt_b;                                                 \
                _tb[_n + _r] = now_s() - _t0;                           \
            }                                                           \
            _n += g_reps;                                               \
        }                                                               \
        qsort(_ta, _n, sizeof(double), cmp_double);                     \
        qsort(_tb, _n, sizeof(double), cmp_double);                     \
        (res_a) = _ta[g_use_min ? 0 : _n / 2];                          \
        (res_b) = _tb[g_use_min ? 0 : _n / 2];                          \
    } while (0)

static void bench_shape(const char* name, int BT, int C, int OC) {
    unsigned seed = 1234u + BT + C + OC;
    float* inp = rand_buf((size_t)BT * C, &seed);
    float* w = rand_buf((size_t)OC * C, &seed);
    float* bias = rand_buf(OC, &seed);
    float* out = rand_buf((size_t)BT * OC, &seed);
    float* dout = rand_buf((size_t)BT * OC, &seed);
    float* dinp = rand_buf((size_t)BT * C, &seed);
    float* dw = rand_buf((size_t)OC * C, &seed);
    float* db = rand_buf(OC, &seed);
    float* ones = rand_buf(BT, &seed);
    for (int i = 0; i < BT; i++) { ones[i] = 1.0f; }
    double flops = 2.0 * BT * C * OC;  // one product

    double t_ours_f, t_blas_f, t_ours_b, t_blas_b;
    TIME_PAIR(t_ours_f, matmul_forward(out, inp, w, bias, 1, BT, C, OC),
              t_blas_f, {
        // the bias as llm.c-style "copy, then beta = 1" (what a BLAS user would write)
        for (int i = 0; i < BT; i++) { memcpy(out + (size_t)i * OC, bias, OC * sizeof(float)); }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BT, OC, C,
                    1.0f, inp, C, w, C, 1.0f, out, OC);
    });
    TIME_PAIR(t_ours_b, matmul_backward(dinp, dw, db, dout, inp, w, 1, BT, C, OC),
              t_blas_b, {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BT, C, OC,
                    1.0f, dout, OC, w, C, 1.0f, dinp, C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, BT,
                    1.0f, dout, OC, inp, C, 1.0f, dw, C);
        // dbias += dout^T @ ones (kept inside OpenBLAS: mixing in an OpenMP loop here
        // would make its threads and ours fight over the two cores)
        cblas_sgemv(CblasRowMajor, CblasTrans, BT, OC, 1.0f, dout, OC, ones, 1, 1.0f, db, 1);
    });
    // the two backward products separately, through the core
    double t_ours_di, t_blas_di, t_ours_dw, t_blas_dw;
    TIME_PAIR(t_ours_di, gemm(BT, C, OC, dout, OC, 1, w, C, 1, dinp, C, 1, NULL),
              t_blas_di, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BT, C, OC,
                                     1.0f, dout, OC, w, C, 1.0f, dinp, C));
    TIME_PAIR(t_ours_dw, gemm(OC, C, BT, dout, 1, OC, inp, C, 1, dw, C, 1, NULL),
              t_blas_dw, cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, BT,
                                     1.0f, dout, OC, inp, C, 1.0f, dw, C));

    const char* what[5] = {"fwd", "bwd(all)", "  dinp", "  dW", NULL};
    double to[4] = {t_ours_f, t_ours_b, t_ours_di, t_ours_dw};
    double tb[4] = {t_blas_f, t_blas_b, t_blas_di, t_blas_dw};
    double fl[4] = {flops, 2 * flops, flops, flops};
    for (int i = 0; i < 4; i++) {
        double go = fl[i] / to[i] * 1e-9, gb = fl[i] / tb[i] * 1e-9;
        printf("| %-10s | %5d | %4d | %5d | %-8s | %8.1f | %8.1f | %5.2f |\n",
               name, BT, C, OC, what[i], go, gb, go / gb);
    }
    fflush(stdout);
    free(inp); free(w); free(bias); free(out); free(dout); free(dinp); free(dw); free(db); free(ones);
}

// Peak FMA throughput of this build's vector width on all threads: independent FMA chains,
// no memory traffic. The upper bound any sgemm here can reach.
static double fma_peak_gflops(void) {
    const long iters = 20000000;
    double best = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_s();
        int nt = 1;
        float sink = 0.0f;
        #pragma omp parallel reduction(+ : sink)
        {
#ifdef _OPENMP
            #pragma omp single
            nt = omp_get_num_threads();
#endif
#if defined(MATMUL_AVX512)
            __m512 acc[16], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
            for (int i = 0; i < 16; i++) { acc[i] = _mm512_set1_ps((float)i); }
            for (long it = 0; it < iters; it++) {
                #pragma GCC unroll 16
                for (int i = 0; i < 16; i++) { acc[i] = _mm512_fmadd_ps(acc[i], x, y); }
            }
            for (int i = 0; i < 16; i++) { sink += _mm512_reduce_add_ps(acc[i]); }
            const double per_iter = 16 * 16 * 2;
#elif defined(MATMUL_AVX2)
            __m256 acc[12], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(0.001f);
            for (int i = 0; i < 12; i++) { acc[i] = _mm256_set1_ps((float)i); }
            for (long it = 0; it < iters; it++) {
                #pragma GCC unroll 12
                for (int i = 0; i < 12; i++) { acc[i] = _mm256_fmadd_ps(acc[i], x, y); }
            }
            float tmp[8];
            for (int i = 0; i < 12; i++) {
                _mm256_storeu_ps(tmp, acc[i]);
                for (int j = 0; j < 8; j++) { sink += tmp[j]; }
            }
            const double per_iter = 12 * 8 * 2;
#else
            const double per_iter = 0;
#endif
            (void)per_iter;
        }
        double t = now_s() - t0;
#if defined(MATMUL_AVX512)
        double gf = nt * (double)iters * 16 * 16 * 2 / t * 1e-9;
#elif defined(MATMUL_AVX2)
        double gf = nt * (double)iters * 12 * 8 * 2 / t * 1e-9;
#else
        double gf = 0.0;
#endif
        if (sink == 12345.678f) { printf(" "); }  // keep the loop alive
        if (gf > best) { best = gf; }
    }
    return best;
}

int main(int argc, char** argv) {
    if (argc > 1) { g_reps = atoi(argv[1]); }
    if (g_reps < 1) { g_reps = 1; }
    if (g_reps > MAXREPS) { g_reps = MAXREPS; }
    const char* stat = getenv("BENCH_STAT");
    g_use_min = stat != NULL && strcmp(stat, "min") == 0;
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif
    openblas_set_num_threads(nthreads);
    const char* isa =
#if defined(MATMUL_AVX512)
        "AVX-512 12x32";
#elif defined(MATMUL_AVX2)
        "AVX2+FMA 6x16";
#else
        "plain C";
#endif
    printf("threads: %d (ours OpenMP, OpenBLAS %s core), our kernel: %s, MR x NR = %d x %d, "
           "KC %d, MC %d, NC %d, %s of %d x %d reps\n",
           nthreads, openblas_get_corename(), isa, MATMUL_MR, MATMUL_NR,
           MATMUL_KC, MATMUL_MC, MATMUL_NC, g_use_min ? "best" : "median", ROUNDS, g_reps);
    printf("| shape      |    BT |    C |    OC | op       | ours GF/s | OpenBLAS GF/s | ratio |\n");
    printf("|------------|-------|------|-------|----------|----------|----------|-------|\n");

    const char* only = getenv("BENCH_ONLY");  // substring filter on the shape name
    const char* only_bt = getenv("BENCH_BT");  // only this B*T (256 or 2048)
    struct { const char* name; int C, OC; } shapes[] = {
        {"d12 qkv", 768, 2304}, {"d12 attprj", 768, 768}, {"d12 fc", 768, 3072},
        {"d12 fcproj", 3072, 768}, {"d12 lmhead", 768, 50304},
        {"d6 qkv", 384, 1152}, {"d6 attprj", 384, 384}, {"d6 fc", 384, 1536},
        {"d6 fcproj", 1536, 384}, {"d6 lmhead", 384, 50304},
    };
    int bts[2] = {4 * 64, 8 * 256};
    for (int b = 0; b < 2; b++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            if (only != NULL && strstr(shapes[s].name, only) == NULL) { continue; }
            if (only_bt != NULL && atoi(only_bt) != bts[b]) { continue; }
            bench_shape(shapes[s].name, bts[b], shapes[s].C, shapes[s].OC);
        }
    }

    // raw ceiling: C = A @ B, square, row-major, no transposes
    int n = 2048;
    unsigned seed = 99;
    float* a = rand_buf((size_t)n * n, &seed);
    float* bm = rand_buf((size_t)n * n, &seed);
    float* c = rand_buf((size_t)n * n, &seed);
    double t_o, t_b;
    TIME_PAIR(t_o, gemm(n, n, n, a, n, 1, bm, n, 1, c, n, 0, NULL),
              t_b, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
                               1.0f, a, n, bm, n, 0.0f, c, n));
    double fl = 2.0 * n * n * n;
    printf("| square     | %5d | %4d | %5d | sgemm    | %8.1f | %8.1f | %5.2f |\n",
           n, n, n, fl / t_o * 1e-9, fl / t_b * 1e-9, t_b / t_o);
    free(a); free(bm); free(c);
    double peak = fma_peak_gflops();
    if (peak > 0) {
        printf("FMA peak of this build's vector width, %d threads: %.1f GFLOP/s "
               "(square sgemm: ours %.0f%%, OpenBLAS %.0f%% of it)\n",
               nthreads, peak, 100 * fl / t_o * 1e-9 / peak, 100 * fl / t_b * 1e-9 / peak);
    }
    return 0;
}
