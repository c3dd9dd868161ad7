// Resizes a checkpoint's token embedding to a new vocabulary size, for continued pretraining
// with an extended vocabulary (dev/data/bpe_train --add): rows of the existing ids are kept,
// each new row is the mean of the old real rows (padding excluded), and the padded size Vp is
// rounded up to a multiple of 128. Every other parameter is copied unchanged; the LM head is
// tied to wte, so it grows with it.
//
//   resize_embedding IN.bin OUT.bin --vocab-size 58257
//   resize_embedding IN.bin OUT.bin --tokenizer gpt2_ja_tokenizer.bin   (V from llm.c's file)
//
// Checkpoint: llm.c's model file, 256 x int32 header (magic 20240326, version 3 = fp32 or
// 5 = bf16 params, [2] maxT, [3] V, [4] L, [5] NH, [6] C, [7] Vp), then the parameters with
// wte (Vp x C) first. Written atomically (temp file, fsync, rename).
#include "llmc/utils.h"
#include "llmc/args.h"
#include "llmc/checkpoint.h"
#include "llmc/tokenizer.h"

static const char* usage_text =
"usage: resize_embedding IN.bin OUT.bin --vocab-size V\n"
"       resize_embedding IN.bin OUT.bin --tokenizer NEW.bin --base-tokenizer OLD.bin\n"
"Grows a checkpoint's token embedding to V rows (new rows = mean of the old ones). With\n"
"--tokenizer, V is the new llm.c tokenizer file's size, and NEW.bin must extend OLD.bin (the\n"
"tokenizer the checkpoint was trained with, whose size must equal the checkpoint's V): its\n"
"first V tokens must be OLD.bin's, byte for byte, with the same end-of-text id. A checkpoint\n"
"holds no vocabulary, so this is the check that the new ids mean what the old rows learned.";

// 0 if the llm.c tokenizer `nt` extends `bt` (the same first bt->vocab_size tokens and the
// same end-of-text id); -1 with err otherwise.
static int check_extends(const Tokenizer* nt, const char* npath, const Tokenizer* bt, const char* bpath, char* err) {
    if (nt->vocab_size < bt->vocab_size) {
        return set_err(err, "--tokenizer %s: has %d tokens, fewer than the base tokenizer %s (%d)", npath, nt->vocab_size, bpath, bt->vocab_size);
    }
    for (int i = 0; i < bt->vocab_size; i++) {
        if (nt->token_length[i] != bt->token_length[i] || memcmp(nt->token_table[i], bt->token_table[i], (size_t)bt->token_length[i]) != 0) {
            return set_err(err, "--tokenizer %s: token %d differs from the base tokenizer %s: it does not extend the checkpoint's vocabulary",
                           npath, i, bpath);
        }
    }
    if (nt->eot_token != bt->eot_token) {
        return set_err(err, "--tokenizer %s: end-of-text id %d, but the base tokenizer %s has %d", npath, nt->eot_token, bpath, bt->eot_token);
    }
    return 0;
}

int main(int argc, char** argv) {
    const char *tokfile = NULL, *basefile = NULL;
    long long newV = -1;
    ArgSpec specs[3] = {
        {NULL, "--vocab-size", ARG_LONG, &newV, 1, 1 << 24, "the new vocabulary size V"},
        {NULL, "--tokenizer", ARG_STRING, &tokfile, 0, 0, "the new llm.c tokenizer file (V from it)"},
        {NULL, "--base-tokenizer", ARG_STRING, &basefile, 0, 0, "the llm.c tokenizer file the checkpoint was trained with"},
    };
    const char* pos[2];
    int npos = 0;
    char err[LLMC_ERRLEN];
    int rc = args_parse_positional(argc, argv, specs, 3, pos, 2, &npos, 0, err);
    if (rc == 1) { args_print_help(stdout, usage_text, specs, 3); return 0; }
    if (rc != 0) { die("%s", err); }
    if (npos != 2) { die("expected IN.bin OUT.bin, got %d file argument%s (see --help)", npos, npos == 1 ? "" : "s"); }
    const char* in = pos[0];
    const char* out = pos[1];
    if ((newV >= 0) == (tokfile != NULL)) { die("give --vocab-size V or --tokenizer NEW.bin, exactly one of them"); }
    if (tokfile != NULL && basefile == NULL) {
        die("--tokenizer %s: needs --base-tokenizer OLD.bin (the tokenizer the checkpoint was trained with) to check that it extends it", tokfile);
    }
    if (basefile != NULL && tokfile == NULL) { die("--base-tokenizer: only used with --tokenizer"); }
    {
        if (check_regular_file(in, err) != 0) { die("%s", err); }
        if (tokfile && check_regular_file(tokfile, err) != 0) { die("--tokenizer: %s", err); }
        if (basefile && check_regular_file(basefile, err) != 0) { die("--base-tokenizer: %s", err); }
        if (check_output_path(out, err) != 0) { die("%s", err); }
        const char* ins[3] = { in, tokfile, basefile };
        const char* what[3] = { "input checkpoint", "--tokenizer", "--base-tokenizer" };
        for (int i = 0; i < 3; i++) {
            if (ins[i] != NULL && same_file(out, ins[i])) {
                die("%s: is the same file as the %s %s; refusing to overwrite an input", out, what[i], ins[i]);
            }
        }
    }
    // the header is validated (shape limits, file size) before any size arithmetic
    GPT2Config cfg;
    float* params = NULL;
    if (checkpoint_read(in, &cfg, &params, err) != 0) { die("%s", err); }
    int32_t h[256];
    {
        FILE* f = fopen_regular(in, err);
        if (f == NULL || fread_exact(h, sizeof(int32_t), 256, f, in, err) != 0) { die("%s", err); }
        fclose(f);
    }
    int version = h[1];
    long V = cfg.vocab_size, Vp = cfg.padded_vocab_size, C = cfg.channels;
    if (tokfile) {
        Tokenizer nt, bt;
        if (tokenizer_init(&nt, tokfile, err) != 0) { die("--tokenizer: %s", err); }
        if (tokenizer_init(&bt, basefile, err) != 0) { die("--base-tokenizer: %s", err); }
        if (bt.vocab_size != V) {
            die("--base-tokenizer %s: has %d tokens, but the checkpoint %s has V = %ld: not the tokenizer it was trained with", basefile, bt.vocab_size, in, V);
        }
        if (check_extends(&nt, tokfile, &bt, basefile, err) != 0) { die("%s", err); }
        newV = nt.vocab_size;
        tokenizer_free(&nt);
        tokenizer_free(&bt);
    }
    if (newV < V) { die("--vocab-size: new vocabulary size %lld is below the checkpoint's %ld: only growing is supported", newV, V); }
    GPT2Config ncfg = cfg;
    ncfg.vocab_size = (int)newV;
    ncfg.padded_vocab_size = (int)((newV + 127) / 128 * 128);
    if (gpt2_config_validate(&ncfg, out, err) != 0) { die("%s", err); }
    size_t n_old = gpt2_num_parameters(&cfg), n_new = gpt2_num_parameters(&ncfg);
    size_t wte_old = (size_t)Vp * (size_t)C, wte_new = (size_t)ncfg.padded_vocab_size * (size_t)C;
    if (n_old < wte_old || n_new < wte_new || n_new - wte_new != n_old - wte_old) { die("internal error: parameter sizes"); }
    float* np = (float*)calloc_check(n_new, sizeof(float), "resized parameters");  // padding rows zero
    memcpy(np, params, (size_t)V * (size_t)C * sizeof(float));
    // mean of the real rows, in double so the order of 50k additions does not matter
    double* mean = (double*)calloc_check((size_t)C, sizeof(double), "mean");
    for (size_t v = 0; v < (size_t)V; v++) {
        for (size_t c = 0; c < (size_t)C; c++) { mean[c] += (double)params[v * (size_t)C + c]; }
    }
    for (size_t v = (size_t)V; v < (size_t)newV; v++) {
        for (size_t c = 0; c < (size_t)C; c++) { np[v * (size_t)C + c] = (float)(mean[c] / (double)V); }
    }
    // every other parameter, unchanged
    memcpy(np + wte_new, params + wte_old, (n_old - wte_old) * sizeof(float));
    checkpoint_write(out, &ncfg, np, version);
    printf("wrote %s: V %ld -> %lld, Vp %ld -> %d, %lld new rows = mean of the %ld old rows (%s)\n",
           out, V, newV, Vp, ncfg.padded_vocab_size, newV - V, V, version == 3 ? "fp32" : "bf16");
    free(params); free(np); free(mean);
    return 0;
}
