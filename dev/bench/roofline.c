// Roofline report for the CPU training kernels (llmc/*.h): how far each kernel is from the
// machine's ceilings, with the ceilings measured in the same run (method, formulas and how to
// read the result: dev/bench/ROOFLINE.md).
//
//   make dev/bench/roofline && OMP_NUM_THREADS=2 ./dev/bench/roofline [flags]
//   -b B -t T -c C --nh NH -v V -l L --maxT N   the shape (default: GPT-2 124M widths, B=4 T=64)
//   --vp Vp             padded vocabulary (default: V rounded up to a multiple of 128)
//   --reps N            timed repetitions per kernel after one warm-up; the median is reported (9)
//   --csv PATH          also write one CSV row per kernel, per ceiling and for the configuration
//   --cold gen|all|none which kernels have the caches flushed before every repetition (gen:
//                       the generation matrix-vector products, whose weights never stay cached)
//   --stream-mib M      MiB per STREAM array (default: 4 x the last-level cache, at least 256)
//   --flush-mib M       MiB read to flush the caches (default: 2 x the last-level cache)
//   --adamw-n N         parameters AdamW updates (default: the model's count, 124,475,904 at d12)
//   --peak-ms MS        time spent on each FMA-peak measurement, in 5 ms samples (default 200)
//
// Ceilings (all threads, OMP_NUM_THREADS):
//   FMA peak: independent FMA chains at this build's vector width, no memory traffic
//   DRAM bandwidth: STREAM triad a[i] = b[i] + s*c[i], best of 5, counted as 3 x 4 bytes per
//     element (reads of b and c, the write of a; the write-allocate read of a is not counted,
//     as in STREAM: the real DRAM traffic is 4/3 of that)
//   cache bandwidth: the same triad on arrays that fit in half of each thread's L2 (drawn on the
//     chart; the bound in the table uses DRAM bandwidth)
// Each kernel: FLOPs and compulsory bytes from the formulas in ROOFLINE.md (written next to
// each timed call below), median time, GFLOP/s, GB/s, arithmetic intensity AI = FLOPs / bytes,
// bound = min(peak, AI * DRAM bandwidth), the share of the bound achieved, which ceiling binds,
// and calls per training step (or per generated position) with each kernel's share of the sum.
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "llmc/matmul.h"
#include "llmc/attention.h"
#include "llmc/layernorm.h"
#include "llmc/gelu.h"
#include "llmc/crossentropy.h"
#include "llmc/adamw.h"
#include "llmc/encoder.h"
#include "llmc/residual.h"
#include "llmc/utils.h"
#include "llmc/quant.h"
#include "llmc/kv_cache.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}


static int nthreads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// ----------------------------------------------------------------------------
// Buffers: finite uniform random values in [lo, hi), filled in parallel with the same static
// schedule the kernels' loops use (first touch), from a counter-based hash so the values do not
// depend on the thread count.

static uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t g_seed = 1;

static float* rand_buf(size_t n, float lo, float hi) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float* p = aligned_alloc(64, bytes > 0 ? bytes : 64);
    if (p == NULL) { die("out of memory"); }
    uint64_t seed = mix64(g_seed++);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint64_t r = mix64(seed ^ (i * 0xD1B54A32D192ED03ull));
        p[i] = lo + (hi - lo) * (float)((r >> 40) * (1.0 / 16777216.0));
    }
    return p;
}

// Making sure results are used: a strided sample of every output goes into a global sum, and
// a non-finite value there is reported (the inputs are finite, so it would mean a broken run).
static double g_sink = 0.0;
static int g_nonfinite = 0;

static void use_output(const char* name, const float* p, size_t n) {
    size_t step = n > (1u << 20) ? n / (1u << 20) : 1;
    double s = 0.0;
    for (size_t i = 0; i < n; i += step) { s += p[i]; }
    if (!isfinite(s)) {
        fprintf(stderr, "roofline: warning: %s produced a non-finite value\n", name);
        g_nonfinite++;
    }
    g_sink += s;
}

// ----------------------------------------------------------------------------
// The machine: cache sizes from sysfs, CPU time from /proc/stat (how busy the machine was).

static size_t cache_bytes(int want_level, size_t fallback) {
    size_t best = 0;
    for (int idx = 0; idx < 8; idx++) {
        char path[128], buf[64];
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/level", idx);
        FILE* f = fopen(path, "r");
        if (f == NULL) { continue; }
        int level = 0;
        if (fscanf(f, "%d", &level) != 1) { level = 0; }
        fclose(f);
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", idx);
        f = fopen(path, "r");
        if (f == NULL) { continue; }
        if (fgets(buf, sizeof(buf), f) == NULL) { buf[0] = 0; }
        fclose(f);
        char* end;
        double v = strtod(buf, &end);
        if (*end == 'K') { v *= 1024; } else if (*end == 'M') { v *= 1024 * 1024; }
        // want_level 0: the last (highest) level
        if ((want_level == 0 || level == want_level) && (size_t)v > best) { best = (size_t)v; }
    }
    return best > 0 ? best : fallback;
}

typedef struct { unsigned long long busy, total, steal; } CpuStat;

static CpuStat read_cpu_stat(void) {
    CpuStat s = {0, 0, 0};
    FILE* f = fopen("/proc/stat", "r");
    if (f == NULL) { return s; }
    unsigned long long v[8] = {0};
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
               &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++) { s.total += v[i]; }
        s.busy = s.total - v[3] - v[4];  // all but idle and iowait
        s.steal = v[7];
    }
    fclose(f);
    return s;
}

static void read_loadavg(char* buf, size_t n) {
    FILE* f = fopen("/proc/loadavg", "r");
    buf[0] = 0;
    if (f == NULL) { snprintf(buf, n, "unknown"); return; }
    if (fgets(buf, (int)n, f) == NULL) { snprintf(buf, n, "unknown"); }
    fclose(f);
    size_t l = strlen(buf);
    while (l > 0 && isspace((unsigned char)buf[l - 1])) { buf[--l] = 0; }
}

static void cpu_model(char* buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE* f = fopen("/proc/cpuinfo", "r");
    if (f == NULL) { return; }
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "model name", 10) == 0) {
            char* c = strchr(line, ':');
            if (c != NULL) {
                c++;
                while (*c == ' ') { c++; }
                snprintf(buf, n, "%s", c);
                size_t l = strlen(buf);
                while (l > 0 && isspace((unsigned char)buf[l - 1])) { buf[--l] = 0; }
            }
            break;
        }
    }
    fclose(f);
}

// ----------------------------------------------------------------------------
// Ceiling 1: the FMA peak. Every thread runs PEAK_ACC independent FMA chains on registers, no
// memory traffic. Recent x86 cores retire 2 FMAs per cycle with a latency of 4 cycles, so 8
// chains in flight saturate them; 16 (AVX-512, 32 registers) and 12 (AVX2, 16 registers) leave
// room. The plain-C build uses GCC vector types as wide as SSE (a multiply and an add).

#if defined(MATMUL_AVX512)
#define PEAK_ACC 16
#define PEAK_WIDTH 16
#define PEAK_ISA "AVX-512 FMA"
#elif defined(MATMUL_AVX2)
#define PEAK_ACC 12
#define PEAK_WIDTH 8
#define PEAK_ISA "AVX2 FMA"
#else
#define PEAK_ACC 8
#define PEAK_WIDTH 4
#define PEAK_ISA "SSE-width multiply+add"
typedef float peak_vec __attribute__((vector_size(16)));
#endif

// seconds for iters rounds on every thread; *team = the threads that ran
static double peak_run(long iters, int* team) {
    double t0 = now_s();
    float sink = 0.0f;
    int nt = 1;
    #pragma omp parallel reduction(+ : sink)
    {
#ifdef _OPENMP
        #pragma omp single
        nt = omp_get_num_threads();
#endif
        // acc <- acc * x + y converges to 1: no overflow, no denormals
#if defined(MATMUL_AVX512)
        __m512 acc[PEAK_ACC], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-6f);
        for (int i = 0; i < PEAK_ACC; i++) { acc[i] = _mm512_set1_ps(1.0f + i); }
        for (long it = 0; it < iters; it++) {
            #pragma GCC unroll 16
            for (int i = 0; i < PEAK_ACC; i++) { acc[i] = _mm512_fmadd_ps(acc[i], x, y); }
        }
        for (int i = 0; i < PEAK_ACC; i++) { sink += _mm512_reduce_add_ps(acc[i]); }
#elif defined(MATMUL_AVX2)
        __m256 acc[PEAK_ACC], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-6f);
        for (int i = 0; i < PEAK_ACC; i++) { acc[i] = _mm256_set1_ps(1.0f + i); }
        for (long it = 0; it < iters; it++) {
            #pragma GCC unroll 12
            for (int i = 0; i < PEAK_ACC; i++) { acc[i] = _mm256_fmadd_ps(acc[i], x, y); }
        }
        float tmp[8];
        for (int i = 0; i < PEAK_ACC; i++) {
            _mm256_storeu_ps(tmp, acc[i]);
            for (int j = 0; j < 8; j++) { sink += tmp[j]; }
        }
#else
        peak_vec acc[PEAK_ACC], x, y;
        for (int j = 0; j < PEAK_WIDTH; j++) { x[j] = 0.999999f; y[j] = 1e-6f; }
        for (int i = 0; i < PEAK_ACC; i++) {
            for (int j = 0; j < PEAK_WIDTH; j++) { acc[i][j] = 1.0f + i; }
        }
        for (long it = 0; it < iters; it++) {
            #pragma GCC unroll 8
            for (int i = 0; i < PEAK_ACC; i++) { acc[i] = acc[i] * x + y; }
        }
        for (int i = 0; i < PEAK_ACC; i++) {
            for (int j = 0; j < PEAK_WIDTH; j++) { sink += acc[i][j]; }
        }
#endif
    }
    double t = now_s() - t0;
    g_sink += sink;
    *team = nt;
    return t;
}

// GFLOP/s, the best of many short samples (about 5 ms each, budget_s in all): on a shared
// machine a short sample has a fair chance to run undisturbed, a long one has none. One sample
// is sized on the fastest of 3 tries, so a preempted try does not stop the sizing early.
static double fma_peak_gflops(double budget_s) {
    const double sample_s = 5e-3;
    int team = 1;
    long iters = 1 << 10;
    for (;;) {
        double t = 1e30;
        for (int k = 0; k < 3; k++) { double tk = peak_run(iters, &team); if (tk < t) { t = tk; } }
        if (t >= sample_s || iters >= (1L << 40)) { break; }
        iters *= 2;
    }
    int samples = (int)(budget_s / sample_s);
    if (samples < 5) { samples = 5; }
    double best = 0.0;
    for (int k = 0; k < samples; k++) {
        double t = peak_run(iters, &team);
        double gf = (double)team * iters * PEAK_ACC * PEAK_WIDTH * 2.0 / t * 1e-9;
        if (gf > best) { best = gf; }
    }
    return best;
}

// ----------------------------------------------------------------------------
// Ceiling 2: STREAM triad, a[i] = b[i] + s * c[i], on all threads with a static schedule (the
// arrays were first touched with the same schedule). GB/s counts 12 bytes per element.

static volatile float g_triad_scalar = 3.0f;

// best seconds per pass over n elements, of `samples` samples of `passes` passes each
static double triad_best(size_t n, int samples, int passes) {
    float* a = rand_buf(n, -1.0f, 1.0f);
    float* b = rand_buf(n, -1.0f, 1.0f);
    float* c = rand_buf(n, -1.0f, 1.0f);
    double best = 1e30;
    for (int smp = -1; smp < samples; smp++) {  // sample -1: warm-up
        double t0 = now_s();
        #pragma omp parallel
        {
            for (int p = 0; p < passes; p++) {
                float s = g_triad_scalar;
                // same static partition every pass, so no barrier is needed between passes
                #pragma omp for schedule(static) nowait
                for (size_t i = 0; i < n; i++) { a[i] = b[i] + s * c[i]; }
            }
        }
        double t = (now_s() - t0) / passes;
        if (smp >= 0 && t < best) { best = t; }
    }
    use_output("triad", a, n);
    free(a); free(b); free(c);
    return best;
}

// ----------------------------------------------------------------------------
// Cache flush for the "cold" kernels: read a buffer twice the last-level cache, one load per
// 64-byte line (loads leave the lines clean, so evicting them later costs no write-back).

static float* g_flush = NULL;
static size_t g_flush_n = 0;

static void flush_caches(void) {
    double s = 0.0;
    #pragma omp parallel for schedule(static) reduction(+ : s)
    for (size_t i = 0; i < g_flush_n; i += 16) { s += g_flush[i]; }
    g_sink += s;
}

// ----------------------------------------------------------------------------
// Kernel timing and the report rows.

#define MAXREPS 101
#define MAXROWS 48
#define MIN_SAMPLE_S 2e-3   // warm kernels faster than this are repeated inside one sample
#define MAX_INNER 100000

typedef struct {
    char name[40];
    char shape[64];
    int cold;          // caches flushed before each repetition
    double flops, bytes;
    double seconds;    // median per call
    double best;       // fastest sample, per call
    int inner;         // calls per timed sample
    double calls;      // calls per training step (per generated token for the gen rows)
    int gen;           // a generation row
} Row;

static Row g_rows[MAXROWS];
static int g_nrows = 0;
static int g_reps = 9;
static int g_cold_mode = 1;  // 0 none, 1 gen, 2 all

// One warm-up call (also sizing `inner` for fast warm kernels), then g_reps samples; the median
// per-call time goes into a new row. stmt is the kernel call, as in the trainer.
#define TIME_KERNEL(NAME, SHAPE, FLOPS, BYTES, CALLS, GEN, stmt) do {           \
        Row* _row = &g_rows[g_nrows++];                                         \
        snprintf(_row->name, sizeof(_row->name), "%s", NAME);                   \
        snprintf(_row->shape, sizeof(_row->shape), "%s", SHAPE);                \
        _row->cold = g_cold_mode == 2 || (g_cold_mode == 1 && (GEN));           \
        _row->flops = (FLOPS); _row->bytes = (BYTES);                           \
        _row->calls = (CALLS); _row->gen = (GEN);                               \
        fprintf(stderr, "roofline: %s\n", NAME);                                \
        if (_row->cold) { flush_caches(); }                                     \
        double _t0 = now_s();                                                   \
        stmt;                                                                   \
        double _tw = now_s() - _t0;                                             \
        int _inner = 1;                                                         \
        if (!_row->cold && _tw < MIN_SAMPLE_S) {                                \
            double _k = MIN_SAMPLE_S / (_tw > 1e-8 ? _tw : 1e-8);               \
            _inner = _k > MAX_INNER ? MAX_INNER : (int)ceil(_k);                \
        }                                                                       \
        double _ts[MAXREPS];                                                    \
        for (int _r = 0; _r < g_reps; _r++) {                                   \
            if (_row->cold) { flush_caches(); }                                 \
            double _a = now_s();                                                \
            for (int _i = 0; _i < _inner; _i++) { stmt; }                       \
            _ts[_r] = (now_s() - _a) / _inner;                                  \
        }                                                                       \
        qsort(_ts, g_reps, sizeof(double), cmp_double);                         \
        _row->seconds = g_reps % 2 ? _ts[g_reps / 2]                            \
                                   : 0.5 * (_ts[g_reps / 2 - 1] + _ts[g_reps / 2]); \
        _row->best = _ts[0];                                                    \
        _row->inner = _inner;                                                   \
    } while (0)

// ----------------------------------------------------------------------------

static void usage(void) {
    fprintf(stderr,
            "usage: roofline [-b B] [-t T] [-c C] [--nh NH] [-v V] [--vp Vp] [-l L] [--maxT N]\n"
            "                [--reps N] [--csv PATH] [--cold gen|all|none] [--stream-mib M]\n"
            "                [--flush-mib M] [--adamw-n N] [--peak-ms MS]\n"
            "defaults: GPT-2 124M widths (C=768 NH=12 V=50257 Vp=50304 L=12 maxT=1024), B=4 T=64\n");
    exit(1);
}

static long parse_long(const char* flag, const char* s, long lo, long hi) {
    char* end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi) {
        fprintf(stderr, "roofline: %s wants an integer in [%ld, %ld], not '%s'\n", flag, lo, hi, s);
        exit(1);
    }
    return v;
}

// table numbers: about 4 significant digits, no exponent
static const char* fmt(char* buf, double x) {
    double a = fabs(x);
    if (a >= 1000) { sprintf(buf, "%.0f", x); }
    else if (a >= 100) { sprintf(buf, "%.1f", x); }
    else if (a >= 10) { sprintf(buf, "%.2f", x); }
    else if (a >= 0.01 || a == 0) { sprintf(buf, "%.3f", x); }
    else { sprintf(buf, "%.2g", x); }
    return buf;
}

int main(int argc, char** argv) {
    int B = 4, T = 64, C = 768, NH = 12, V = 50257, Vp = 0, L = 12, maxT = 1024;
    long stream_mib = 0, flush_mib = -1, peak_ms = 200;
    long long adamw_n = 0;
    const char* csv_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (strcmp(a, "--help") == 0) { usage(); }
        if (i + 1 >= argc) { fprintf(stderr, "roofline: %s needs a value\n", a); usage(); }
        const char* v = argv[++i];
        if (strcmp(a, "-b") == 0) { B = (int)parse_long(a, v, 1, 1 << 16); }
        else if (strcmp(a, "-t") == 0) { T = (int)parse_long(a, v, 1, 1 << 16); }
        else if (strcmp(a, "-c") == 0) { C = (int)parse_long(a, v, 1, 1 << 16); }
        else if (strcmp(a, "--nh") == 0) { NH = (int)parse_long(a, v, 1, 1 << 16); }
        else if (strcmp(a, "-v") == 0) { V = (int)parse_long(a, v, 1, 1 << 24); }
        else if (strcmp(a, "--vp") == 0) { Vp = (int)parse_long(a, v, 1, 1 << 24); }
        else if (strcmp(a, "-l") == 0) { L = (int)parse_long(a, v, 1, 1024); }
        else if (strcmp(a, "--maxT") == 0) { maxT = (int)parse_long(a, v, 1, 1 << 20); }
        else if (strcmp(a, "--reps") == 0) { g_reps = (int)parse_long(a, v, 1, MAXREPS); }
        else if (strcmp(a, "--csv") == 0) { csv_path = v; }
        else if (strcmp(a, "--stream-mib") == 0) { stream_mib = parse_long(a, v, 1, 1 << 20); }
        else if (strcmp(a, "--flush-mib") == 0) { flush_mib = parse_long(a, v, 0, 1 << 20); }
        else if (strcmp(a, "--adamw-n") == 0) { adamw_n = parse_long(a, v, 1, 1L << 40); }
        else if (strcmp(a, "--peak-ms") == 0) { peak_ms = parse_long(a, v, 1, 100000); }
        else if (strcmp(a, "--cold") == 0) {
            if (strcmp(v, "none") == 0) { g_cold_mode = 0; }
            else if (strcmp(v, "gen") == 0) { g_cold_mode = 1; }
            else if (strcmp(v, "all") == 0) { g_cold_mode = 2; }
            else { fprintf(stderr, "roofline: --cold wants gen, all or none, not '%s'\n", v); exit(1); }
        }
        else { fprintf(stderr, "roofline: unknown flag %s\n", a); usage(); }
    }
    if (Vp == 0) { Vp = (V + 127) / 128 * 128; }
    if (Vp < V) { die("--vp is smaller than -v"); }
    if (C % NH != 0) {
        fprintf(stderr, "roofline: channels C=%d are not divisible by heads NH=%d\n", C, NH);
        exit(1);
    }
    if (T > maxT) { fprintf(stderr, "roofline: T=%d exceeds maxT=%d\n", T, maxT); exit(1); }
    // the model's parameter count (llmc/checkpoint.h's gpt2_parameter_sizes)
    long long n_params = (long long)Vp * C + (long long)maxT * C
                       + (long long)L * (12LL * C * C + 13LL * C) + 2LL * C;
    if (adamw_n == 0) { adamw_n = n_params; }

    char load0[128], load1[128], cpu[256];
    read_loadavg(load0, sizeof(load0));
    cpu_model(cpu, sizeof(cpu));
    CpuStat st0 = read_cpu_stat();
    double wall0 = now_s();
    int nt = nthreads();
    size_t llc = cache_bytes(0, 32u << 20);
    size_t l2 = cache_bytes(2, 1u << 20);

    // --- ceilings
    fprintf(stderr, "roofline: FMA peak\n");
    double peak0 = fma_peak_gflops(peak_ms * 1e-3);
    fprintf(stderr, "roofline: STREAM triad\n");
    // STREAM's rule: each array at least 4x the last-level cache
    size_t stream_bytes = stream_mib > 0 ? (size_t)stream_mib << 20 : 4 * llc;
    if (stream_mib == 0 && stream_bytes < (256u << 20)) { stream_bytes = 256u << 20; }
    size_t stream_n = stream_bytes / sizeof(float);
    double t_triad = triad_best(stream_n, 5, 1);
    double bw = 12.0 * stream_n / t_triad * 1e-9;
    // cache-resident triad: the three arrays fill half of each thread's L2
    size_t cache_n = (size_t)nt * (l2 / 2) / 12;
    cache_n = cache_n / 16 * 16;
    int cache_passes = (int)(0.01 / (12.0 * cache_n / 100e9)) + 1;  // ~10 ms a sample at 100 GB/s
    double t_ctriad = triad_best(cache_n, 5, cache_passes);
    double bw_cache = 12.0 * cache_n / t_ctriad * 1e-9;

    size_t flush_bytes = flush_mib >= 0 ? (size_t)flush_mib << 20 : 2 * llc;
    g_flush_n = flush_bytes / sizeof(float);
    g_flush = g_flush_n > 0 ? rand_buf(g_flush_n, 0.0f, 1.0f) : NULL;

    // --- the kernels, in the order a training step runs them. Formulas: ROOFLINE.md.
    // FLOPs count every floating-point operation in the source once (add, multiply, compare,
    // divide, sqrt, exp, tanh, log: 1 each; a fused multiply-add 2); bytes are the compulsory
    // traffic: every input read once, every output written once, accumulated (+=) outputs
    // read and written; 4 bytes per float or int.
    const double f4 = 4.0;
    long long BT = (long long)B * T, N = BT * C;
    int hs = C / NH;
    double S = (double)T * (T + 1) / 2;  // causal (query, key) pairs per (b, h)
    char shape[64];

    // encoder
    {
        float* wte = rand_buf((size_t)Vp * C, -0.1f, 0.1f);
        float* wpe = rand_buf((size_t)maxT * C, -0.1f, 0.1f);
        float* out = rand_buf(N, -1.0f, 1.0f);
        float* dwte = rand_buf((size_t)Vp * C, -0.1f, 0.1f);
        float* dwpe = rand_buf((size_t)maxT * C, -0.1f, 0.1f);
        float* dout = rand_buf(N, -1.0f, 1.0f);
        int* tok = malloc(BT * sizeof(int));
        if (tok == NULL) { die("out of memory"); }
        // distinct tokens (while BT <= V): stride 7919 (prime) does not divide V unless V is a
        // multiple of it; then plain 1
        int stride = V % 7919 == 0 ? 1 : 7919;
        for (long long i = 0; i < BT; i++) { tok[i] = (int)((i * stride + 11) % V); }
        snprintf(shape, sizeof(shape), "B=%d T=%d C=%d", B, T, C);
        TIME_KERNEL("encoder_fwd", shape, (double)N, f4 * (2.0 * N + (double)T * C + BT), 1, 0,
                    encoder_forward(out, tok, wte, wpe, B, T, C));
        use_output("encoder_fwd", out, N);
        // (the backward runs last in a step; it is timed here with its buffers)
        TIME_KERNEL("encoder_bwd", shape, 2.0 * N, f4 * (3.0 * N + 2.0 * T * C + BT), 1, 0,
                    encoder_backward(dwte, dwpe, dout, tok, B, T, C));
        use_output("encoder_bwd", dwpe, (size_t)T * C);
        free(wte); free(wpe); free(out); free(dwte); free(dwpe); free(dout); free(tok);
    }
    // layernorm
    {
        float* inp = rand_buf(N, -1.0f, 1.0f);
        float* w = rand_buf(C, 0.5f, 1.5f);
        float* b = rand_buf(C, -0.1f, 0.1f);
        float* out = rand_buf(N, -1.0f, 1.0f);
        float* mean = rand_buf(BT, 0.0f, 1.0f);
        float* rstd = rand_buf(BT, 0.0f, 1.0f);
        float* dout = rand_buf(N, -1.0f, 1.0f);
        float* dinp = rand_buf(N, -1.0f, 1.0f);
        float* dw = rand_buf(C, -1.0f, 1.0f);
        float* db = rand_buf(C, -1.0f, 1.0f);
        snprintf(shape, sizeof(shape), "BT=%lld C=%d", BT, C);
        TIME_KERNEL("layernorm_fwd", shape, 8.0 * N + 5.0 * BT, f4 * (2.0 * N + 2.0 * C + 2.0 * BT),
                    2 * L + 1, 0, layernorm_forward(out, mean, rstd, inp, w, b, B, T, C));
        use_output("layernorm_fwd", out, N);
        TIME_KERNEL("layernorm_bwd", shape, 19.0 * N + 2.0 * BT + 2.0 * C,
                    f4 * (4.0 * N + 5.0 * C + 2.0 * BT), 2 * L + 1, 0,
                    layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, B, T, C));
        use_output("layernorm_bwd", dinp, N);
        use_output("layernorm_bwd", dw, C);
        free(inp); free(w); free(b); free(out); free(mean); free(rstd);
        free(dout); free(dinp); free(dw); free(db);
    }
    // matmuls: the four per-layer weights and the LM head (tied to wte, no bias)
    struct { const char* name; int cin, oc, bias, calls; } mm[5] = {
        {"qkv", C, 3 * C, 1, L}, {"attproj", C, C, 1, L}, {"fc", C, 4 * C, 1, L},
        {"fcproj", 4 * C, C, 1, L}, {"lmhead", C, Vp, 0, 1},
    };
    for (int s = 0; s < 5; s++) {
        int cin = mm[s].cin, oc = mm[s].oc, hb = mm[s].bias;
        float* inp = rand_buf(BT * cin, -1.0f, 1.0f);
        float* w = rand_buf((size_t)oc * cin, -0.05f, 0.05f);
        float* bias = hb ? rand_buf(oc, -0.1f, 0.1f) : NULL;
        float* out = rand_buf(BT * oc, -1.0f, 1.0f);
        float* dout = rand_buf(BT * oc, -0.01f, 0.01f);
        float* dinp = rand_buf(BT * cin, -1.0f, 1.0f);
        float* dw = rand_buf((size_t)oc * cin, -0.01f, 0.01f);
        float* db = hb ? rand_buf(oc, -0.01f, 0.01f) : NULL;
        char name[40];
        double mac = (double)BT * cin * oc;
        snprintf(shape, sizeof(shape), "BT=%lld C=%d OC=%d", BT, cin, oc);
        snprintf(name, sizeof(name), "matmul_fwd_%s", mm[s].name);
        TIME_KERNEL(name, shape, 2.0 * mac,
                    f4 * ((double)BT * cin + (double)oc * cin + (double)BT * oc + hb * (double)oc),
                    mm[s].calls, 0, matmul_forward(out, inp, w, bias, B, T, cin, oc));
        use_output(name, out, BT * oc);
        snprintf(name, sizeof(name), "matmul_bwd_%s", mm[s].name);
        TIME_KERNEL(name, shape, 4.0 * mac,
                    f4 * ((double)BT * oc + 3.0 * BT * cin + 3.0 * oc * cin + 2.0 * hb * oc),
                    mm[s].calls, 0, matmul_backward(dinp, dw, db, dout, inp, w, B, T, cin, oc));
        use_output(name, dinp, BT * cin);
        use_output(name, dw, (size_t)oc * cin);
        free(inp); free(w); free(bias); free(out); free(dout); free(dinp); free(dw); free(db);
    }
    // attention
    {
        size_t natt = (size_t)B * NH * T * T;
        float* inp = rand_buf(BT * 3 * C, -1.0f, 1.0f);
        float* att = rand_buf(natt, 0.0f, 1.0f);
        float* out = rand_buf(N, -1.0f, 1.0f);
        float* dout = rand_buf(N, -0.01f, 0.01f);
        float* dinp = rand_buf(BT * 3 * C, -1.0f, 1.0f);
        double pairs = (double)B * NH * S;
        snprintf(shape, sizeof(shape), "B=%d T=%d NH=%d hs=%d", B, T, NH, hs);
        TIME_KERNEL("attention_fwd", shape, pairs * (4.0 * hs + 6.0) + (double)B * NH * T,
                    f4 * (4.0 * N + (double)natt), L, 0,
                    attention_forward(out, att, inp, B, T, C, NH));
        use_output("attention_fwd", out, N);
        TIME_KERNEL("attention_bwd", shape, pairs * (8.0 * hs + 5.0), f4 * (10.0 * N + pairs), L, 0,
                    attention_backward(dinp, dout, inp, att, B, T, C, NH));
        use_output("attention_bwd", dinp, BT * 3 * C);
        free(inp); free(att); free(out); free(dout); free(dinp);
    }
    // GELU on the fc output (B, T, 4C), and the residual add
    {
        size_t M = 4 * N;
        float* inp = rand_buf(M, -3.0f, 3.0f);
        float* out = rand_buf(M, -1.0f, 1.0f);
        float* dout = rand_buf(M, -0.01f, 0.01f);
        float* dinp = rand_buf(M, -1.0f, 1.0f);
        snprintf(shape, sizeof(shape), "n=%zu", M);
        TIME_KERNEL("gelu_fwd", shape, 9.0 * M, f4 * 2.0 * M, L, 0, gelu_forward(out, inp, M));
        use_output("gelu_fwd", out, M);
        TIME_KERNEL("gelu_bwd", shape, 20.0 * M, f4 * 4.0 * M, L, 0, gelu_backward(dinp, inp, dout, M));
        use_output("gelu_bwd", dinp, M);
        free(inp); free(out); free(dout); free(dinp);
        float* a = rand_buf(N, -1.0f, 1.0f);
        float* b = rand_buf(N, -1.0f, 1.0f);
        float* o = rand_buf(N, -1.0f, 1.0f);
        snprintf(shape, sizeof(shape), "n=%lld", N);
        TIME_KERNEL("residual_fwd", shape, (double)N, f4 * 3.0 * N, 2 * L, 0, residual_forward(o, a, b, N));
        use_output("residual_fwd", o, N);
        free(a); free(b); free(o);
    }
    // softmax + cross-entropy (the CPU trainer's three calls; no fused classifier on the CPU)
    {
        size_t nl = (size_t)BT * Vp;
        float* logits = rand_buf(nl, -2.0f, 2.0f);
        float* probs = rand_buf(nl, 0.0f, 1.0f);
        float* dlogits = rand_buf(nl, -1.0f, 1.0f);
        float* losses = rand_buf(BT, 0.0f, 1.0f);
        int* targets = malloc(BT * sizeof(int));
        if (targets == NULL) { die("out of memory"); }
        for (long long i = 0; i < BT; i++) { targets[i] = (int)(mix64(i) % (uint64_t)V); }
        snprintf(shape, sizeof(shape), "BT=%lld V=%d Vp=%d", BT, V, Vp);
        TIME_KERNEL("softmax_xent_fwd", shape, (double)BT * (5.0 * V + 3.0),
                    f4 * ((double)BT * (V + Vp) + 2.0 * BT), 1, 0,
                    { softmax_forward(probs, logits, B, T, V, Vp);
                      crossentropy_forward(losses, probs, targets, B, T, Vp); });
        use_output("softmax_xent_fwd", losses, BT);
        TIME_KERNEL("softmax_xent_bwd", shape, (double)BT * (V + 1.0),
                    f4 * ((double)BT * (V + Vp) + (double)BT), 1, 0,
                    crossentropy_softmax_backward(dlogits, probs, targets, NULL, 1.0f / BT, B, T, V, Vp));
        use_output("softmax_xent_bwd", dlogits, nl);
        free(logits); free(probs); free(dlogits); free(losses); free(targets);
    }
    // AdamW over the parameters (the trainer calls it per tensor; one call over all here)
    {
        size_t n = (size_t)adamw_n;
        float* params = rand_buf(n, -0.05f, 0.05f);
        float* grads = rand_buf(n, -0.01f, 0.01f);
        float* m = rand_buf(n, -0.001f, 0.001f);
        float* v = rand_buf(n, 0.0f, 1e-5f);
        snprintf(shape, sizeof(shape), "n=%zu", n);
        TIME_KERNEL("adamw", shape, 17.0 * n, f4 * 7.0 * n, (double)n_params / n, 0,
                    adamw_update(params, grads, m, v, n, 6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1));
        use_output("adamw", params, n);
        free(params); free(grads); free(m); free(v);
    }
    // generation: one position's matrix-vector products as dev/infer/generate runs them
    // (llmc/quant.h's quant_matmul_forward at B*T = 1) for fp32, int8 and int4 (group 32)
    // weights, and the attention of that position over a KV cache of maxT/2 positions
    // (llmc/kv_cache.h). Each precision is a table of its own (GEN = 1, 2, 3).
    for (int kind = QUANT_F32; kind <= QUANT_INT4; kind++) {
        static const char* const kname[3] = { "f32", "int8", "int4" };
        for (int s = 0; s < 5; s++) {
            int cin = mm[s].cin, oc = mm[s].oc, hb = mm[s].bias;
            float* inp = rand_buf(cin, -1.0f, 1.0f);
            float* w = rand_buf((size_t)oc * cin, -0.05f, 0.05f);
            float* bias = hb ? rand_buf(oc, -0.1f, 0.1f) : NULL;
            float* out = rand_buf(oc, -1.0f, 1.0f);
            QuantMatrix qm;
            quant_matrix_quantize(&qm, w, oc, cin, kind, 32);
            // compulsory bytes: the weights as stored (values and scales), the input, the output, the bias
            double wbytes = (double)quant_matrix_file_bytes(kind, oc, cin, 32);
            char name[40];
            snprintf(shape, sizeof(shape), "BT=1 C=%d OC=%d", cin, oc);
            snprintf(name, sizeof(name), "gen_%s_%s", kname[kind], mm[s].name);
            TIME_KERNEL(name, shape, 2.0 * cin * oc, wbytes + f4 * ((double)cin + (double)oc + hb * (double)oc),
                        mm[s].calls, kind + 1, quant_matmul_forward(out, inp, &qm, bias, 1, cin, oc));
            use_output(name, out, oc);
            quant_matrix_free(&qm);
            free(inp); free(w); free(bias); free(out);
        }
        {
            int P = maxT / 2 > 1 ? maxT / 2 : 1;  // positions already cached
            int hs = C / NH;
            float* qkv = rand_buf((size_t)3 * C, -1.0f, 1.0f);
            float* kc = rand_buf((size_t)(P + 1) * C, -1.0f, 1.0f);
            float* vc = rand_buf((size_t)(P + 1) * C, -1.0f, 1.0f);
            float* att = rand_buf((size_t)NH * (P + 1), 0.0f, 1.0f);
            float* out = rand_buf(C, -1.0f, 1.0f);
            char name[40];
            snprintf(shape, sizeof(shape), "pos=%d NH=%d hs=%d", P, NH, hs);
            snprintf(name, sizeof(name), "gen_%s_attention", kname[kind]);
            // per head and key: q.k (2 hs) and the weighted value (2 hs), 3 for max/exp/normalize;
            // bytes: the cache read once, q, k and v of the new position, the output
            TIME_KERNEL(name, shape, (double)NH * (P + 1) * (4.0 * hs + 3.0), f4 * (2.0 * (P + 1) * C + 4.0 * C),
                        L, kind + 1, attention_forward_cached(out, att, qkv, kc, vc, P, 1, C, NH));
            use_output(name, out, C);
            free(qkv); free(kc); free(vc); free(att); free(out);
        }
    }

    fprintf(stderr, "roofline: FMA peak again\n");
    double peak1 = fma_peak_gflops(peak_ms * 1e-3);
    double peak = peak0 > peak1 ? peak0 : peak1;
    free(g_flush);
    double wall = now_s() - wall0;
    CpuStat st1 = read_cpu_stat();
    read_loadavg(load1, sizeof(load1));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double own_s = ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + ru.ru_stime.tv_sec + 1e-6 * ru.ru_stime.tv_usec;
    long hz = sysconf(_SC_CLK_TCK);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double tot = (double)(st1.total - st0.total);
    double machine_busy = tot > 0 ? 100.0 * (st1.busy - st0.busy) / tot : 0;
    double own = tot > 0 ? 100.0 * own_s * hz / tot : 0;
    double others = machine_busy - own > 0 ? machine_busy - own : 0;
    double steal = tot > 0 ? 100.0 * (st1.steal - st0.steal) / tot : 0;

    // --- report
    double ridge = peak / bw;
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32], b7[32], b8[32];
    printf("# Roofline of the CPU training kernels\n\n");
    printf("- machine: %s, %ld CPUs online, OMP threads: %d; L2 %zu KiB per core, last-level cache %zu MiB\n",
           cpu, ncpu, nt, l2 >> 10, llc >> 20);
    printf("- shape: B=%d T=%d C=%d NH=%d (hs=%d) V=%d Vp=%d L=%d maxT=%d; model parameters %lld, "
           "AdamW over %lld\n", B, T, C, NH, hs, V, Vp, L, maxT, n_params, adamw_n);
    printf("- FMA peak: %.1f GFLOP/s (%s, %d floats per vector, %d independent chains per thread, "
           "%d threads; best 5 ms sample of %ld ms at the start %.1f, at the end %.1f)\n",
           peak, PEAK_ISA, PEAK_WIDTH, PEAK_ACC, nt, peak_ms, peak0, peak1);
    printf("- DRAM bandwidth: %.2f GB/s, STREAM triad a = b + s*c on 3 arrays of %zu MiB (%.2gx the "
           "last-level cache each%s), best of 5, 12 bytes per element (write-allocate not counted; "
           "with it the traffic is 4/3 of that: %.2f GB/s)\n",
           bw, stream_bytes >> 20, (double)stream_bytes / llc,
           stream_bytes < 4 * llc ? "; under STREAM's 4x rule, so partly a cache figure" : "",
           bw * 4.0 / 3.0);
    printf("- cache bandwidth: %.2f GB/s, the same triad on 3 arrays of %zu KiB (half of each thread's L2 "
           "in all), best of 5 (drawn on the chart, not used for the bound)\n",
           bw_cache, cache_n * 4 >> 10);
    printf("- ridge point: peak / DRAM bandwidth = %.1f FLOP/byte\n", ridge);
    printf("- timing: median (and best) of %d repetitions after a warm-up call; warm = not flushed (kernels under "
           "%.0f ms are repeated inside a sample: \"inner\" in the CSV); cold = %zu MiB read "
           "before every repetition to evict the caches\n",
           g_reps, MIN_SAMPLE_S * 1e3, flush_bytes >> 20);
    printf("- load: loadavg %s at the start, %s at the end; during the %.0f s run the machine's CPUs "
           "were %.0f%% busy: this program %.0f%%, others %.0f%%, steal %.1f%% (of all %ld CPUs' time)\n",
           load0, load1, wall, machine_busy, own, others, steal, ncpu);
    printf("- outputs: %s (checksum %.6g)\n",
           g_nonfinite ? "NON-FINITE VALUES (see the warnings)" : "all finite", g_sink);
    printf("- formulas for FLOPs and bytes: dev/bench/ROOFLINE.md; bound = min(peak, AI x DRAM "
           "bandwidth); \"in\" = where the compulsory bytes fit (L2 of all threads, last-level "
           "cache, or DRAM)\n\n");
    double step_s = 0, token_s[4] = { 0, 0, 0, 0 };
    for (int i = 0; i < g_nrows; i++) {
        Row* r = &g_rows[i];
        if (r->gen) { token_s[r->gen] += r->calls * r->seconds; } else { step_s += r->calls * r->seconds; }
    }
    FILE* csv = NULL;
    if (csv_path != NULL) {
        csv = fopen(csv_path, "w");
        if (csv == NULL) { fprintf(stderr, "roofline: cannot write %s\n", csv_path); exit(1); }
        fprintf(csv, "kind,name,shape,cache,resides,flops,bytes,seconds,gflops,gbs,ai,bound_gflops,"
                     "pct_of_bound,bound_cache_gflops,binds,calls,pct_of_total,reps,inner,best_seconds\n");
        fprintf(csv, "config,shape,\"B=%d T=%d C=%d NH=%d V=%d Vp=%d L=%d maxT=%d params=%lld adamw_n=%lld "
                     "threads=%d\",,,,,,,,,,,,,,,%d,,\n",
                B, T, C, NH, V, Vp, L, maxT, n_params, adamw_n, nt, g_reps);
        fprintf(csv, "ceiling,fma_peak,\"%s x%d, %d threads\",,,,,,%.6g,,,,,,compute,,,,,\n",
                PEAK_ISA, PEAK_WIDTH, nt, peak);
        fprintf(csv, "ceiling,dram_triad,\"3 x %zu MiB\",,,,,,,%.6g,,,,,memory,,,,,\n",
                stream_bytes >> 20, bw);
        fprintf(csv, "ceiling,cache_triad,\"3 x %zu KiB\",,,,,,,%.6g,,,,,memory,,,,,\n",
                cache_n * 4 >> 10, bw_cache);
    }
    for (int i = 0; i < g_nrows; i++) {
        Row* r = &g_rows[i];
        double gf = r->flops / r->seconds * 1e-9;
        double gbs = r->bytes / r->seconds * 1e-9;
        double ai = r->flops / r->bytes;
        double bound = ai * bw < peak ? ai * bw : peak;
        double bound_cache = ai * bw_cache < peak ? ai * bw_cache : peak;
        const char* binds = ai * bw < peak ? "memory" : "compute";
        const char* resides = r->cold ? "DRAM" : r->bytes <= (double)nt * l2 ? "L2"
                            : r->bytes <= (double)llc ? "LLC" : "DRAM";
        double pct = 100.0 * gf / bound;
        double share = 100.0 * r->calls * r->seconds / (r->gen ? token_s[r->gen] : step_s);
        char binds_s[64];
        // above the roof: from the caches, or (a DRAM-sized kernel) a stream pattern that pulls more
        // than the triad does (no write-allocate, more streams in flight); ROOFLINE.md
        snprintf(binds_s, sizeof(binds_s), "%s%s", binds,
                 pct <= 100.0 ? "" : strcmp(resides, "DRAM") == 0 ? " (above the triad)" : " (above: cache)");
        if (i == 0 || r->gen != g_rows[i - 1].gen) {
            static const char* const gen_title[4] = { "", "fp32", "int8 (per output channel)", "int4 (groups of 32)" };
            if (r->gen) {
                printf("\n## Generation, %s weights: one position (B*T = 1), calls per generated token\n\n", gen_title[r->gen]);
            } else {
                printf("## Training step: calls per step\n\n");
            }
            printf("| kernel | shape | cache | in | MFLOP | MB | ms | best ms | GFLOP/s | GB/s | FLOP/B "
                   "| bound GFLOP/s | %% of bound | binds | calls | %% of %s |\n", r->gen ? "token" : "step");
            printf("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
        }
        char calls_s[32];
        if (fabs(r->calls - round(r->calls)) < 1e-9) { snprintf(calls_s, sizeof(calls_s), "%.0f", r->calls); }
        else { snprintf(calls_s, sizeof(calls_s), "%.3g", r->calls); }
        printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% | %s | %s | %.1f%% |\n",
               r->name, r->shape, r->cold ? "cold" : "warm", resides, fmt(b1, r->flops * 1e-6),
               fmt(b2, r->bytes * 1e-6), fmt(b3, r->seconds * 1e3), fmt(b8, r->best * 1e3), fmt(b4, gf),
               fmt(b5, gbs), fmt(b6, ai), fmt(b7, bound), pct, binds_s, calls_s, share);
        if (csv != NULL) {
            fprintf(csv, "kernel,%s,\"%s\",%s,%s,%.0f,%.0f,%.6e,%.6g,%.6g,%.6g,%.6g,%.4g,%.6g,%s,%.6g,%.4g,%d,%d,%.6e\n",
                    r->name, r->shape, r->cold ? "cold" : "warm", resides, r->flops, r->bytes, r->seconds,
                    gf, gbs, ai, bound, pct, bound_cache, binds, r->calls, share, g_reps, r->inner, r->best);
        }
    }
    printf("\nSum of calls x median time: %.1f ms per training step (the kernels above, without the "
           "gradient norm, the memsets and the data loader); per generated position at B*T = 1 "
           "(the matrix-vector products and the cached attention): %.1f ms with fp32 weights, %.1f ms "
           "int8, %.1f ms int4%s.\n",
           step_s * 1e3, token_s[1] * 1e3, token_s[2] * 1e3, token_s[3] * 1e3,
           adamw_n != n_params ? "; AdamW's calls scale its time to the model's parameter count" : "");
    if (csv != NULL) { fclose(csv); }
    return g_nonfinite ? 2 : 0;
}
