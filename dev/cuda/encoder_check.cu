// encoder_forward_cuda / encoder_backward_cuda (llmc/encoder.h) against the C reference.
#include "../../llmc/encoder.h"
#include "harness.h"

typedef struct {
    floatX* out; const int* inp; const floatX* wte; const floatX* wpe; float* dwte; float* dwpe;
    const floatX* dout; const int* order; const int* start; const int* token; int nb, B, T, C;
} EncCtx;

static void run_fwd(void* p) { EncCtx* c = (EncCtx*)p; encoder_forward_cuda(c->out, c->inp, c->wte, c->wpe, c->B, c->T, c->C, 0); }
static void run_bwd(void* p) {
    EncCtx* c = (EncCtx*)p;
    encoder_backward_cuda(c->dwte, c->dwpe, c->dout, c->order, c->start, c->token, c->nb, c->B, c->T, c->C, 0);
}

// sets up one shape; checks it if check, times it if time_it
static void run_case(int B, int T, int C, int V, int check, int time_it, const Ceilings* ceil) {
    if (!check && !harness_timing()) { return; }
    int BT = B * T;
    int* inp = (int*)malloc(sizeof(int) * BT);
    for (int i = 0; i < BT; i++) { inp[i] = (int)((harness_uniform() * 0.5f + 0.5f) * (V / 8)); }  // repeats on purpose
    float* wte = harness_random((size_t)V * C, 1.0f);
    float* wpe = harness_random((size_t)T * C, 1.0f);
    float* dout = harness_random((size_t)BT * C, 1.0f);
    harness_round_fx(wte, (size_t)V * C);
    harness_round_fx(wpe, (size_t)T * C);
    harness_round_fx(dout, (size_t)BT * C);
    float* dwte = harness_random((size_t)V * C, 1.0f);  // gradients accumulate: start non-zero
    float* dwpe = harness_random((size_t)T * C, 1.0f);
    EncCtx c;
    c.B = B; c.T = T; c.C = C;
    int* d_inp = (int*)cuda_malloc_check(sizeof(int) * BT, "inp");
    cudaCheck(cudaMemcpy(d_inp, inp, sizeof(int) * BT, cudaMemcpyHostToDevice));
    c.inp = d_inp;
    c.wte = harness_upload_fx(wte, (size_t)V * C);
    c.wpe = harness_upload_fx(wpe, (size_t)T * C);
    c.dout = harness_upload_fx(dout, (size_t)BT * C);
    c.out = (floatX*)cuda_malloc_check(sizeof(floatX) * BT * C, "out");
    c.dwte = harness_upload_f32(dwte, (size_t)V * C);
    c.dwpe = harness_upload_f32(dwpe, (size_t)T * C);
    int* count = (int*)malloc(sizeof(int) * (V + 1));
    int* order = (int*)malloc(sizeof(int) * BT);
    int* start = (int*)malloc(sizeof(int) * (BT + 1));
    int* token = (int*)malloc(sizeof(int) * BT);
    c.nb = encoder_backward_buckets(inp, BT, V, count, order, start, token);
    int* d_order = (int*)cuda_malloc_check(sizeof(int) * BT, "order");
    int* d_start = (int*)cuda_malloc_check(sizeof(int) * (BT + 1), "start");
    int* d_token = (int*)cuda_malloc_check(sizeof(int) * BT, "token");
    cudaCheck(cudaMemcpy(d_order, order, sizeof(int) * BT, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(d_start, start, sizeof(int) * (c.nb + 1), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(d_token, token, sizeof(int) * c.nb, cudaMemcpyHostToDevice));
    c.order = d_order; c.start = d_start; c.token = d_token;
    if (check) {
        char name[128];
        float* ref = (float*)malloc(sizeof(float) * BT * C);
        float* got = (float*)malloc(sizeof(float) * ((size_t)V * C > (size_t)BT * C ? (size_t)V * C : (size_t)BT * C));
        encoder_forward(ref, inp, wte, wpe, B, T, C);
        harness_poison(c.out, sizeof(floatX) * BT * C);
        run_fwd(&c);
        cudaCheck(cudaGetLastError());
        harness_download_fx(got, c.out, (size_t)BT * C);
        snprintf(name, sizeof(name), "encoder_forward B=%d T=%d C=%d", B, T, C);
        harness_compare(name, got, ref, (size_t)BT * C, HARNESS_FP32 ? 1e-6 : 8e-3);
        encoder_backward(dwte, dwpe, dout, inp, B, T, C);
        run_bwd(&c);
        harness_download_f32(got, c.dwte, (size_t)V * C);
        snprintf(name, sizeof(name), "encoder_backward dwte B=%d T=%d C=%d V=%d", B, T, C, V);
        harness_compare(name, got, dwte, (size_t)V * C, 1e-5);
        harness_download_f32(got, c.dwpe, (size_t)T * C);
        snprintf(name, sizeof(name), "encoder_backward dwpe B=%d T=%d C=%d", B, T, C);
        harness_compare(name, got, dwpe, (size_t)T * C, 1e-5);
        free(ref); free(got);
    }
    if (time_it) {
        char what[128];
        float ms = harness_time_ms(run_fwd, &c, 50);
        snprintf(what, sizeof(what), "encoder_forward B=%d T=%d C=%d", B, T, C);
        harness_report_bandwidth(what, ms, (double)BT * C * 3 * sizeof(floatX), ceil);
        ms = harness_time_ms(run_bwd, &c, 50);
        snprintf(what, sizeof(what), "encoder_backward B=%d T=%d C=%d", B, T, C);
        // reads dout twice (wte and wpe passes), read+write fp32 dwte rows (distinct tokens) and dwpe
        harness_report_bandwidth(what, ms, (double)BT * C * 2 * sizeof(floatX) + (double)c.nb * C * 8 + (double)T * C * 8, ceil);
    }
    cudaCheck(cudaFree(d_inp)); cudaCheck(cudaFree((void*)c.wte)); cudaCheck(cudaFree((void*)c.wpe));
    cudaCheck(cudaFree((void*)c.dout)); cudaCheck(cudaFree(c.out)); cudaCheck(cudaFree(c.dwte)); cudaCheck(cudaFree(c.dwpe));
    cudaCheck(cudaFree(d_order)); cudaCheck(cudaFree(d_start)); cudaCheck(cudaFree(d_token));
    free(inp); free(wte); free(wpe); free(dout); free(dwte); free(dwpe); free(count); free(order); free(start); free(token);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("encoder_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    run_case(3, 37, 77, 997, 1, 0, &ceil);
    run_case(2, 13, 200, 61, 1, 0, &ceil);
    run_case(4, 300, 96, 40, 1, 0, &ceil);  // 1200 tokens of 5 values: buckets of hundreds of rows
    run_case(8, 1024, 768, 50257, 0, 1, &ceil);
    return harness_finish("encoder_check");
}
