// Weight-only quantization of an llm.c checkpoint for inference (llmc/quant.h):
//
//   quantize -i model.bin -o model.q --kind int8|int4 [--group 32] [--head fp32|quant]
//            [--dequantize-out plain.bin]
//
// The four weight matrices of every layer (qkvw, attprojw, fcw, fcprojw) become int8 (one scale
// per output channel) or int4 (one scale per --group inputs of a row); the token embedding,
// which is also the LM head, stays fp32 unless --head quant; LayerNorms, biases and wpe stay
// fp32. -o writes the quantized checkpoint that dev/infer/generate reads (format: llmc/quant.h).
// --dequantize-out writes the quantized weights back as a plain fp32 checkpoint (version 3), so
// the quantized model can be evaluated by the existing programs (train_gpt -e plain.bin --eval).
// It prints the size each kind would take and, per tensor type, the relative Frobenius error
// ||W - deq(W)|| / ||W|| of the chosen kind.
//
// Every input and output check is made before anything is written: a refused run leaves no
// output behind and an existing output untouched. Outputs are written atomically.
#include "llmc/utils.h"
#include "llmc/args.h"
#include "llmc/checkpoint.h"
#include "llmc/quant.h"

static const char* usage_text =
"usage: quantize -i MODEL.bin -o MODEL.q --kind int8|int4 [--group 32] [--head fp32|quant]\n"
"                [--dequantize-out PLAIN.bin]\n"
"Quantizes the weight matrices of an llm.c checkpoint (fp32 or bf16) for inference: int8 with one\n"
"scale per output channel, or int4 (values -7..7) with one scale per --group consecutive inputs\n"
"(a multiple of 32). The embedding / LM head (wte) stays fp32 unless --head quant; LayerNorms,\n"
"biases and wpe stay fp32. -o: the quantized checkpoint (dev/infer/generate -e MODEL.q).\n"
"--dequantize-out: the quantized weights as a plain fp32 checkpoint, for evaluation by\n"
"train_gpt -e PLAIN.bin --eval. Give -o, --dequantize-out or both. --kind fp32 writes an\n"
"unquantized file in the quantized format. Prints the file size of each kind and the relative\n"
"error of each tensor type.\n"
"Exit status: 0 ok; 1 on bad usage or input (nothing is written then).";

int main(int argc, char** argv) {
    const char* in_path = NULL;
    const char* out_path = NULL;
    const char* deq_path = NULL;
    const char* kind_arg = NULL;
    const char* head_arg = "fp32";
    int group = -1;
    ArgSpec specs[6] = {
        {"-i", "--input", ARG_STRING, &in_path, 0, 0, "llm.c checkpoint to quantize (fp32 or bf16)"},
        {"-o", "--output", ARG_STRING, &out_path, 0, 0, "the quantized checkpoint to write"},
        {NULL, "--kind", ARG_STRING, &kind_arg, 0, 0, "int8 | int4 (| fp32: no quantization, the quantized file format)"},
        {NULL, "--group", ARG_INT, &group, 1, QUANT_GROUP_MAX, "int4: inputs per scale, a multiple of 32 (default 32)"},
        {NULL, "--head", ARG_STRING, &head_arg, 0, 0, "the embedding / LM head (wte): fp32 | quant (like the weights)"},
        {NULL, "--dequantize-out", ARG_STRING, &deq_path, 0, 0, "also write the dequantized weights as a plain fp32 checkpoint"},
    };
    const int nspecs = 6;
    char err[LLMC_ERRLEN];
    int rc = args_parse(argc, argv, specs, nspecs, err);
    if (rc == 1) { args_print_help(stdout, usage_text, specs, nspecs); return 0; }
    if (rc != 0) { die("%s", err); }
    if (in_path == NULL) { die("-i MODEL.bin is required (see --help)"); }
    if (out_path == NULL && deq_path == NULL) { die("give -o MODEL.q, --dequantize-out PLAIN.bin or both (see --help)"); }
    if (kind_arg == NULL) { die("--kind is required: int8 or int4 (see --help)"); }
    int kind = quant_kind_from_name(kind_arg);
    if (kind < 0) { die("--kind %s: expected int8, int4 or fp32", kind_arg); }
    if (group != -1 && kind != QUANT_INT4) { die("--group %d: only int4 has groups (int8 has one scale per output channel)", group); }
    if (kind == QUANT_INT4 && group == -1) { group = 32; }
    if (kind == QUANT_INT4 && !quant_group_valid(group)) {
        die("--group %d: must be a multiple of %d (32, 64, 128, ...), at most %d", group, QUANT_BLOCK, QUANT_GROUP_MAX);
    }
    if (kind != QUANT_INT4) { group = 0; }
    int head_kind;
    if (strcmp(head_arg, "fp32") == 0) { head_kind = QUANT_F32; }
    else if (strcmp(head_arg, "quant") == 0) { head_kind = kind; }
    else { die("--head %s: expected fp32 or quant", head_arg); }

    // the outputs, checked before any work: writable kind, distinct, not the input
    const char* outs[2] = { out_path, deq_path };
    const char* out_flags[2] = { "-o", "--dequantize-out" };
    for (int i = 0; i < 2; i++) {
        if (outs[i] == NULL) { continue; }
        if (check_output_path(outs[i], err) != 0) { die("%s: %s", out_flags[i], err); }
        if (same_file(outs[i], in_path) || strcmp(outs[i], in_path) == 0) {
            die("%s %s: is the input checkpoint; refusing to overwrite the input", out_flags[i], outs[i]);
        }
    }
    if (out_path != NULL && deq_path != NULL && (strcmp(out_path, deq_path) == 0 || same_file(out_path, deq_path))) {
        die("-o and --dequantize-out name the same file %s: give two files", out_path);
    }
    if (quant_file_is_quantized(in_path)) {
        die("-i %s: is already a quantized checkpoint; quantize takes an llm.c checkpoint (fp32 or bf16)", in_path);
    }

    double t0 = now_seconds();
    GPT2Config cfg;
    float* params = NULL;
    if (checkpoint_read(in_path, &cfg, &params, err) != 0) { die("-i: %s", err); }
    size_t n = gpt2_num_parameters(&cfg);
    printf("quantize: %s: L=%d C=%d NH=%d V=%d Vp=%d maxT=%d, %zu parameters (%s checkpoint)\n", in_path, cfg.num_layers,
           cfg.channels, cfg.num_heads, cfg.vocab_size, cfg.padded_vocab_size, cfg.max_seq_len, n,
           checkpoint_file_version(in_path) == 5 ? "bf16" : "fp32");
    QuantModel model;
    if (quant_model_from_params(&model, &cfg, params, kind, group, head_kind, err) != 0) { die("-i %s: %s", in_path, err); }

    // the file size of each kind (the chosen one marked)
    printf("file sizes:\n");
    const int ks[5][3] = {  // kind, group, head
        {QUANT_F32, 0, QUANT_F32}, {QUANT_INT8, 0, QUANT_F32}, {QUANT_INT8, 0, QUANT_INT8},
        {QUANT_INT4, kind == QUANT_INT4 ? group : 32, QUANT_F32}, {QUANT_INT4, kind == QUANT_INT4 ? group : 32, QUANT_INT4},
    };
    double fp32_bytes = (double)quant_model_file_bytes(&cfg, QUANT_F32, 0, QUANT_F32);
    for (int i = 0; i < 5; i++) {
        char label[64];
        if (ks[i][0] == QUANT_INT4) { snprintf(label, sizeof(label), "int4 group %d, head %s", ks[i][1], ks[i][2] == QUANT_F32 ? "fp32" : "int4"); }
        else { snprintf(label, sizeof(label), "%s, head %s", quant_kind_name(ks[i][0]), quant_kind_name(ks[i][2])); }
        double b = (double)quant_model_file_bytes(&cfg, ks[i][0], ks[i][1], ks[i][2]);
        int chosen = ks[i][0] == kind && ks[i][2] == head_kind;
        printf("  %-26s %10.2f MB  %5.2fx smaller than fp32%s\n", label, b / 1e6, fp32_bytes / b, chosen ? "  <- this run" : "");
    }

    // per tensor type: relative Frobenius error ||W - deq|| / ||W|| over all its matrices
    printf("quantization error (%s%s, head %s):\n", quant_kind_name(kind), kind == QUANT_INT4 ? " per group" : kind == QUANT_INT8 ? " per row" : "",
           quant_kind_name(head_kind));
    printf("  %-9s %-5s %14s %14s %12s\n", "tensor", "kind", "rel. error", "max |W-deq|", "max |W|");
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, &cfg);
    size_t off = 0;
    double all_d2 = 0.0, all_n2 = 0.0;
    size_t scratch_n = (size_t)cfg.padded_vocab_size * cfg.channels;
    if ((size_t)4 * cfg.channels * cfg.channels > scratch_n) { scratch_n = (size_t)4 * cfg.channels * cfg.channels; }
    float* scratch = float_alloc_check(scratch_n, "a dequantized matrix");
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        if (!quant_tensor_is_matrix(t)) { off += sizes[t]; continue; }
        int rows, cols, count;
        quant_tensor_shape(&cfg, t, &rows, &cols, &count);
        const QuantMatrix* mats = quant_model_matrices(&model, t);
        double d2 = 0.0, n2 = 0.0, dmax = 0.0, wmax = 0.0;
        for (int l = 0; l < count; l++) {
            const float* w = params + off + (size_t)l * rows * cols;
            quant_matrix_dequantize(&mats[l], scratch);
            size_t m = (size_t)rows * cols;
            #pragma omp parallel for reduction(+:d2, n2) reduction(max:dmax, wmax)
            for (long i = 0; i < (long)m; i++) {
                double d = (double)w[i] - (double)scratch[i];
                d2 += d * d;
                n2 += (double)w[i] * w[i];
                if (fabs(d) > dmax) { dmax = fabs(d); }
                if (fabs((double)w[i]) > wmax) { wmax = fabs((double)w[i]); }
            }
        }
        all_d2 += d2;
        all_n2 += n2;
        printf("  %-9s %-5s %14.3e %14.3e %12.4g\n", PARAMETER_NAMES[t], quant_kind_name(mats[0].kind),
               n2 > 0.0 ? sqrt(d2 / n2) : sqrt(d2), dmax, wmax);
        off += sizes[t];
    }
    printf("  %-9s %-5s %14.3e\n", "all", "", all_n2 > 0.0 ? sqrt(all_d2 / all_n2) : sqrt(all_d2));
    free(scratch);
    flush_stdout_check();

    if (out_path != NULL) {
        if (quant_model_write(out_path, &model, err) != 0) { die("-o: %s", err); }
        char what[64];
        if (kind == QUANT_INT4) { snprintf(what, sizeof(what), "int4 group %d", group); }
        else { snprintf(what, sizeof(what), "%s", quant_kind_name(kind)); }
        printf("wrote %s: %.2f MB (%s, head %s)\n", out_path, (double)quant_model_file_bytes(&cfg, kind, group, head_kind) / 1e6,
               what, quant_kind_name(head_kind));
    }
    if (deq_path != NULL) {
        float* plain = float_alloc_check(n, "dequantized parameters");
        quant_model_dequantize(&model, plain);
        checkpoint_write(deq_path, &cfg, plain, 3);
        printf("wrote %s: the dequantized weights as a plain fp32 checkpoint (version 3), for train_gpt -e %s --eval\n", deq_path, deq_path);
        free(plain);
    }
    printf("done in %.1f s\n", now_seconds() - t0);
    flush_stdout_check();
    quant_model_free(&model);
    free(params);
    return 0;
}
