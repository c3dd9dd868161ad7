// The GPU forward of generation (llmc/infer.h's InferCU: KV cache, cuBLASLt matmuls, the
// cached attention of llmc/kv_cache.h) against the CPU one (InferState), on a random model of
// awkward sizes: a prompt in chunks, decode steps of rows of different lengths as one batch,
// and rows moved by the beam-search reorder. The logits of every step are compared (the
// weights are rounded to floatX first, so both run the same model), with fp32 weights and with
// int8 and int4 ones (the GPU's quantized kernel against the CPU's, on the same bytes). Then timed: a GPT-2 124M
// decode step at batch 1 against the bandwidth needed to read every weight once.
#include "../../llmc/infer.h"
#include "harness.h"

static const double TOL = HARNESS_FP32 ? 1e-5 : 3e-2;  // bf16: the activations are rounded at every layer

static void compare_rows(const char* what, const InferCU* g, const InferState* c, const int* rows, int nrows) {
    int V = g->config.vocab_size, Vp = g->config.padded_vocab_size;
    double worst = 0.0;
    for (int i = 0; i < nrows; i++) {
        double e = harness_scaled_error(g->logits + (size_t)rows[i] * Vp, c->logits + (size_t)rows[i] * Vp, (size_t)V);
        if (isnan(e) || e > worst) { worst = isnan(e) ? INFINITY : e; }
    }
    harness_check(worst <= TOL, what, "%d row(s), worst scaled error %.2e, tolerance %.0e", nrows, worst, TOL);
}

// kind: QUANT_F32, or int8 / int4 (group 32) matrices and LM head: the GPU's quantized kernel
// against the CPU's on the same bytes
static void check_model(int kind) {
    GPT2Config c = { .max_seq_len = 40, .vocab_size = 997, .padded_vocab_size = 1024, .num_layers = 3, .num_heads = 3, .channels = 72 };
    size_t P = gpt2_num_parameters(&c);
    float* params = (float*)malloc(P * sizeof(float));
    gpt2_init_random(params, &c, 4242);
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, &c);
    size_t qkv_at = sizes[0] + sizes[1] + sizes[2] + sizes[3];
    for (size_t i = 0; i < sizes[4]; i++) { params[qkv_at + i] *= 8.0f; }  // attention far from uniform
    harness_round_fx(params, P);
    char err[LLMC_ERRLEN];
    QuantModel qm;
    if (quant_model_from_params(&qm, &c, params, kind, 32, kind, err) != 0) { fprintf(stderr, "%s\n", err); exit(1); }
    const char* kname = kind == QUANT_F32 ? "fp32 weights" : kind == QUANT_INT8 ? "int8 weights" : "int4 weights";
    char what[160];
    InferState cpu;
    InferCU gpu;
    infer_init(&cpu, &qm, 3, c.max_seq_len, 4);
    infer_cu_init(&gpu, &qm, 3, c.max_seq_len, 4);
    int tokens[40];
    for (int i = 0; i < 40; i++) { tokens[i] = (i * 131 + 7) % 997; }
    // a prompt of 9 in chunks of 4 on each of three rows (of 9, 5 and 2 tokens)
    int lens[3] = { 9, 5, 2 };
    for (int r = 0; r < 3; r++) {
        harness_poison(gpu.logits_dev, (size_t)3 * 1024 * sizeof(floatX));
        infer_prefill(&cpu, r, tokens + r, lens[r]);
        infer_cu_prefill(&gpu, r, tokens + r, lens[r]);
    }
    int rows[3] = { 0, 1, 2 };
    snprintf(what, sizeof(what), "infer_cu_prefill (%s): prompts of 9, 5, 2 tokens in chunks of 4", kname);
    compare_rows(what, &gpu, &cpu, rows, 3);
    // decode steps, all rows as one batch
    for (int step = 0; step < 4; step++) {
        int next[3] = { tokens[10 + step], tokens[20 + step], tokens[30 + step] };
        infer_forward(&cpu, rows, 3, next, 1, NULL);
        infer_cu_forward(&gpu, rows, 3, next, 1);
    }
    snprintf(what, sizeof(what), "infer_cu_forward (%s): 4 decode steps of 3 rows as one batch", kname);
    compare_rows(what, &gpu, &cpu, rows, 3);
    // a beam step's reorder: row 0 dropped, row 1 continued twice, row 2 once
    int src[3] = { 1, 2, 1 };
    infer_reorder(&cpu, src, 3);
    infer_cu_reorder(&gpu, src, 3);
    int next[3] = { 5, 6, 7 };
    infer_forward(&cpu, rows, 3, next, 1, NULL);
    infer_cu_forward(&gpu, rows, 3, next, 1);
    int same_len = 1;
    for (int r = 0; r < 3; r++) { same_len = same_len && gpu.book.len[r] == infer_len(&cpu, r) && gpu.book.len[r] == lens[src[r]] + 5; }
    snprintf(what, sizeof(what), "infer_cu_reorder then a step (%s; one row copied, one dropped)", kname);
    compare_rows(what, &gpu, &cpu, rows, 3);
    if (kind == QUANT_F32) {
        harness_check(same_len, "infer_cu_reorder: cached lengths", "rows hold %d, %d, %d positions", gpu.book.len[0], gpu.book.len[1], gpu.book.len[2]);
    }
    infer_free(&cpu);
    infer_cu_free(&gpu);
    quant_model_free(&qm);
    free(params);
}

typedef struct { InferCU* s; int token; } StepCtx;
static void run_step(void* p) {
    StepCtx* c = (StepCtx*)p;
    int row = 0;
    if (c->s->book.len[0] >= c->s->cap) { infer_cu_reset(c->s, 0); }
    infer_cu_forward(c->s, &row, 1, &c->token, 1);
}

static void time_d12(const Ceilings* ceil) {
    if (!harness_timing()) { return; }
    GPT2Config c;
    char err[LLMC_ERRLEN];
    if (gpt2_config_from_preset("d12", &c, err) != 0) { fprintf(stderr, "%s\n", err); exit(1); }
    size_t P = gpt2_num_parameters(&c);
    float* params = (float*)malloc(P * sizeof(float));
    gpt2_init_random(params, &c, 1);
    QuantModel qm;
    if (quant_model_from_params(&qm, &c, params, QUANT_F32, 0, QUANT_F32, err) != 0) { fprintf(stderr, "%s\n", err); exit(1); }
    InferCU s;
    infer_cu_init(&s, &qm, 1, c.max_seq_len, 512);
    int prompt[512];
    for (int i = 0; i < 512; i++) { prompt[i] = i * 7 % c.vocab_size; }
    infer_cu_prefill(&s, 0, prompt, 512);
    StepCtx ctx = { &s, 42 };
    // what a step must read: every weight but wpe once, and the cache so far (about 512 positions)
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, &c);
    double bytes = (double)(P - sizes[1]) * sizeof(floatX) + 2.0 * c.num_layers * 600 * c.channels * sizeof(floatX);
    harness_report_bandwidth("decode step d12 batch 1 (weights + KV cache)", harness_time_ms(run_step, &ctx, 50), bytes, ceil);
    infer_cu_free(&s);
    quant_model_free(&qm);
    free(params);
}

int main(void) {
    Ceilings ceil = harness_ceilings();
    printf("infer_check (%s) on %s\n", PRECISION_NAME, ceil.name);
    check_model(QUANT_F32);
    check_model(QUANT_INT8);
    check_model(QUANT_INT4);
    time_d12(&ceil);
    return harness_finish("infer_check");
}
