// quant_matmul_forward_cuda (llmc/quant.h: int8 per row, int4 in groups) against the C
// reference quant_matmul_forward_ref, on the same quantized bytes and scales, at awkward sizes
// (columns not a multiple of the group, partial last blocks, BT not a multiple of 4); then
// timed at GPT-2 124M's decode shapes (BT = 1) against the bytes the weights take.
#include "../../llmc/quant.h"
#include "harness.h"

typedef struct { floatX* out; const floatX *inp, *bias; QuantMatrixCU w; int BT, C, OC; } QCtx;
static void run_fwd(void* p) {
    QCtx* c = (QCtx*)p;
    quant_matmul_forward_cuda(c->out, c->inp, &c->w, c->bias, c->BT, c->C, c->OC, 0);
}

static void run_case(int kind, int group, int BT, int C, int OC, int check, int time_it, const Ceilings* ceil) {
    if (!check && !harness_timing()) { return; }
    float* w = harness_random((size_t)OC * C, 0.1f);
    float* x = harness_random((size_t)BT * C, 1.0f);
    float* bias = harness_random(OC, 0.5f);
    harness_round_fx(x, (size_t)BT * C);
    harness_round_fx(bias, OC);
    QuantMatrix qm;
    quant_matrix_quantize(&qm, w, OC, C, kind, group);
    QCtx c;
    c.BT = BT; c.C = C; c.OC = OC;
    quant_matrix_upload(&c.w, &qm);
    c.inp = harness_upload_fx(x, (size_t)BT * C);
    c.bias = harness_upload_fx(bias, OC);
    c.out = (floatX*)cuda_malloc_check((size_t)BT * OC * sizeof(floatX), "out");
    const char* kname = kind == QUANT_INT8 ? "int8" : "int4";
    if (check) {
        char name[160];
        float* ref = (float*)malloc((size_t)BT * OC * sizeof(float));
        float* got = (float*)malloc((size_t)BT * OC * sizeof(float));
        quant_matmul_forward_ref(ref, x, &qm, bias, BT, C, OC);
        harness_poison(c.out, (size_t)BT * OC * sizeof(floatX));
        run_fwd(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.out, (size_t)BT * OC);
        if (kind == QUANT_INT4) { snprintf(name, sizeof(name), "quant_matmul_forward_cuda int4 g%d BT=%d C=%d OC=%d", group, BT, C, OC); }
        else { snprintf(name, sizeof(name), "quant_matmul_forward_cuda int8 BT=%d C=%d OC=%d", BT, C, OC); }
        // fp32: sums in another order than the double reference; bf16: the output's rounding
        harness_compare(name, got, ref, (size_t)BT * OC, HARNESS_FP32 ? 1e-5 : 8e-3);
        free(ref); free(got);
    }
    if (time_it) {
        char what[160];
        snprintf(what, sizeof(what), "quant_matmul %s BT=%d C=%d OC=%d", kname, BT, C, OC);
        double bytes = (double)quant_matrix_file_bytes(kind, OC, C, group) + (double)(BT * C + BT * OC + OC) * sizeof(floatX);
        harness_report_bandwidth(what, harness_time_ms(run_fwd, &c, 100), bytes, ceil);
    }
    quant_matrix_cu_free(&c.w);
    quant_matrix_free(&qm);
    cudaCheck(cudaFree((void*)c.inp)); cudaCheck(cudaFree((void*)c.bias)); cudaCheck(cudaFree(c.out));
    free(w); free(x); free(bias);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("quant_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    run_case(QUANT_INT8, 0, 1, 72, 13, 1, 0, &ceil);
    run_case(QUANT_INT8, 0, 7, 1000, 37, 1, 0, &ceil);
    run_case(QUANT_INT4, 32, 1, 72, 13, 1, 0, &ceil);    // a partial last block (72 = 2 x 32 + 8)
    run_case(QUANT_INT4, 64, 5, 200, 29, 1, 0, &ceil);   // groups of 64 over 200: the last one 8 wide
    run_case(QUANT_INT4, 128, 3, 1000, 17, 1, 0, &ceil);
    run_case(QUANT_INT4, 32, 4, 768, 50, 1, 0, &ceil);
    // GPT-2 124M's decode step: the fc matrix and the LM head at BT = 1
    run_case(QUANT_INT8, 0, 1, 768, 3072, 0, 1, &ceil);
    run_case(QUANT_INT4, 32, 1, 768, 3072, 0, 1, &ceil);
    run_case(QUANT_INT8, 0, 1, 768, 50304, 0, 1, &ceil);
    run_case(QUANT_INT4, 32, 1, 768, 50304, 0, 1, &ceil);
    return harness_finish("quant_check");
}
