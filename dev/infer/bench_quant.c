// Speed of quant_matmul_forward (llmc/quant.h) at generation's batch sizes, on GPT-2 124M's
// shapes: GB/s of weight bytes read per call (q + scales for int8/int4, the fp32 matrix
// otherwise) divided by the time of the call. At BT = 1 a matmul is a matrix-vector product:
// every weight byte is read once and used for one multiply-add, so it is memory-bound and GB/s
// is the figure of merit.
//   1. "hot": one matrix over and over (it stays in L2/L3 between calls): the kernel's speed;
//      with the reference (quant_matmul_forward_ref) and matmul_forward (fp32, BT = 1) beside it
//   2. "model": every matrix of a GPT-2 124M forward for one token (12 layers x qkv, attproj,
//      fc, fcproj, then the LM head 50304 x 768), all distinct: the weight traffic of one
//      generated token, from wherever the whole set fits (fp32: 498 MB, past most L3s)
// Random weights (the speed does not depend on the values). OMP_NUM_THREADS threads.
//   bench_quant [--quick]     (--quick: shorter timings, for a smoke test)
#include <omp.h>
#include "llmc/utils.h"
#include "llmc/rand.h"
#include "llmc/matmul.h"
#include "llmc/quant.h"

static double min_time = 0.3;  // seconds per measurement (best of the repetitions in it)

static void fill(float* p, size_t n, uint64_t seed) {  // cheap uniform(-0.05, 0.05)
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = ((float)(x >> 40) / 16777216.0f - 0.5f) * 0.1f;
    }
}

static size_t weight_bytes(const QuantMatrix* m) {
    if (m->kind == QUANT_F32) { return (size_t)m->rows * m->cols * sizeof(float); }
    return quant_matrix_q_bytes(m) + quant_matrix_num_scales(m) * sizeof(float);
}

typedef void (*MatmulFn)(float*, const float*, const QuantMatrix*, const float*, int, int, int);

static void fp32_matmul_forward(float* out, const float* inp, const QuantMatrix* w, const float* bias, int BT, int C, int OC) {
    matmul_forward(out, inp, w->f, bias, 1, BT, C, OC);
}

// best seconds per call of fn over the matrices ws[0..nw) in turn
static double time_calls(MatmulFn fn, QuantMatrix* const* ws, int nw, const float* x, float* out, int BT) {
    double best = 1e30, start = now_seconds();
    int reps = 0;
    do {
        double t0 = now_seconds();
        for (int i = 0; i < nw; i++) { fn(out, x, ws[i], NULL, BT, ws[i]->cols, ws[i]->rows); }
        double dt = now_seconds() - t0;
        if (dt < best) { best = dt; }
        reps++;
    } while (now_seconds() - start < min_time || reps < 3);
    return best;
}

int main(int argc, char** argv) {
    if (argc > 1 && strcmp(argv[1], "--quick") == 0) { min_time = 0.05; }
    else if (argc > 1) { die("usage: bench_quant [--quick]"); }
    const int C = 768, L = 12, V = 50304;
    const int shapes[5][2] = {{3 * C, C}, {C, C}, {4 * C, C}, {C, 4 * C}, {V, C}};  // OC x C
    const char* names[5] = {"qkv 2304x768", "attproj 768x768", "fc 3072x768", "fcproj 768x3072", "lm head 50304x768"};
    const int kinds[3][2] = {{QUANT_F32, 0}, {QUANT_INT8, 0}, {QUANT_INT4, 32}};
    const char* kind_names[3] = {"fp32", "int8", "int4 g32"};
    float* x = float_alloc_check((size_t)8 * 4 * C, "inputs");
    float* out = float_alloc_check((size_t)8 * V, "outputs");
    fill(x, (size_t)8 * 4 * C, 7);
    char cpu[256] = "unknown";
    FILE* f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "model name", 10) == 0) { char* p = strchr(line, ':'); if (p) { snprintf(cpu, sizeof(cpu), "%s", p + 2); cpu[strcspn(cpu, "\n")] = 0; } break; }
        }
        fclose(f);
    }
    printf("quant_matmul_forward, BT = 1: GB/s = weight bytes (q + scales) per call / time; %s, %d threads, %s path\n", cpu,
           omp_get_max_threads(),
#ifdef QUANT_AVX512
           "AVX-512"
#else
           "portable"
#endif
    );

    // 1. hot: one matrix again and again
    printf("\n1. one matrix, called repeatedly (from cache)\n");
    printf("| shape (OC x C) | fp32 GEMV | fp32 matmul_forward | int8 | int4 g32 | int8 reference |\n|---|---|---|---|---|---|\n");
    for (int s = 0; s < 5; s++) {
        int OC = shapes[s][0], K = shapes[s][1];
        float* W = float_alloc_check((size_t)OC * K, "weights");
        fill(W, (size_t)OC * K, 100 + s);
        double gbs[5];
        QuantMatrix ms[3];
        for (int k = 0; k < 3; k++) { quant_matrix_quantize(&ms[k], W, OC, K, kinds[k][0], kinds[k][1]); }
        for (int k = 0; k < 3; k++) {
            QuantMatrix* one = &ms[k];
            gbs[k == 0 ? 0 : k + 1] = weight_bytes(one) / time_calls(quant_matmul_forward, &one, 1, x, out, 1) / 1e9;
        }
        QuantMatrix* f32 = &ms[0];
        gbs[1] = weight_bytes(f32) / time_calls(fp32_matmul_forward, &f32, 1, x, out, 1) / 1e9;
        QuantMatrix* i8 = &ms[1];
        double save = min_time;
        min_time = 0.02;  // the reference is slow
        gbs[4] = s == 4 ? 0.0 : weight_bytes(i8) / time_calls(quant_matmul_forward_ref, &i8, 1, x, out, 1) / 1e9;
        min_time = save;
        printf("| %s | %.1f GB/s | %.1f GB/s | %.1f GB/s | %.1f GB/s | ", names[s], gbs[0], gbs[1], gbs[2], gbs[3]);
        if (s == 4) { printf("- |\n"); } else { printf("%.2f GB/s |\n", gbs[4]); }
        fflush(stdout);
        for (int k = 0; k < 3; k++) { quant_matrix_free(&ms[k]); }
        free(W);
    }

    // 2. a whole token's weights, all distinct (one set per kind, built and freed in turn)
    printf("\n2. one GPT-2 124M token: 48 layer matrices + the LM head, all distinct\n");
    printf("| weights | bytes read | BT=1 ms | BT=1 GB/s | BT=4 ms | BT=8 ms |\n|---|---|---|---|---|---|\n");
    int nw = 4 * L + 1;
    QuantMatrix* mats = (QuantMatrix*)calloc_check((size_t)nw, sizeof(QuantMatrix), "matrices");
    QuantMatrix** ptrs = (QuantMatrix**)calloc_check((size_t)nw, sizeof(QuantMatrix*), "matrices");
    float** src = (float**)calloc_check((size_t)nw, sizeof(float*), "weights");
    for (int i = 0; i < nw; i++) {
        int s = i == nw - 1 ? 4 : i % 4;
        src[i] = float_alloc_check((size_t)shapes[s][0] * shapes[s][1], "weights");
        fill(src[i], (size_t)shapes[s][0] * shapes[s][1], 1000 + i);
    }
    for (int k = 0; k < 3; k++) {
        size_t bytes = 0;
        for (int i = 0; i < nw; i++) {
            int s = i == nw - 1 ? 4 : i % 4;
            quant_matrix_quantize(&mats[i], src[i], shapes[s][0], shapes[s][1], kinds[k][0], kinds[k][1]);
            ptrs[i] = &mats[i];
            bytes += weight_bytes(&mats[i]);
        }
        double t1 = time_calls(quant_matmul_forward, ptrs, nw, x, out, 1);
        double t4 = time_calls(quant_matmul_forward, ptrs, nw, x, out, 4);
        double t8 = time_calls(quant_matmul_forward, ptrs, nw, x, out, 8);
        printf("| %s | %.1f MB | %.2f | %.1f | %.2f | %.2f |\n", kind_names[k], bytes / 1e6, t1 * 1e3, bytes / t1 / 1e9, t4 * 1e3, t8 * 1e3);
        fflush(stdout);
        for (int i = 0; i < nw; i++) { quant_matrix_free(&mats[i]); }
    }
    for (int i = 0; i < nw; i++) { free(src[i]); }
    free(src); free(mats); free(ptrs); free(x); free(out);
    return 0;
}
