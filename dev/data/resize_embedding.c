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
#include "llmc/tokenizer.h"

#define MODEL_MAGIC 20240326

static float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// round to nearest even, as PyTorch does (inputs here are finite means of finite values)
static uint16_t float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

int main(int argc, char** argv) {
    const char *in = NULL, *out = NULL, *tokfile = NULL;
    long newV = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--vocab-size") == 0 && i + 1 < argc) { newV = atol(argv[++i]); }
        else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) { tokfile = argv[++i]; }
        else if (argv[i][0] == '-') { in = NULL; break; }
        else if (in == NULL) { in = argv[i]; }
        else if (out == NULL) { out = argv[i]; }
        else { in = NULL; break; }
    }
    if (in == NULL || out == NULL || (newV < 0) == (tokfile == NULL)) {
        fprintf(stderr, "usage: resize_embedding IN.bin OUT.bin (--vocab-size V | --tokenizer TOKENIZER.bin)\n");
        return EXIT_FAILURE;
    }
    char err[LLMC_ERRLEN];
    if (tokfile) {
        Tokenizer tok;
        if (tokenizer_init(&tok, tokfile, err) != 0) { die("%s", err); }
        newV = tok.vocab_size;
        tokenizer_free(&tok);
    }
    FILE* f = fopen(in, "rb");
    if (f == NULL) { die("%s: cannot open: %s", in, strerror(errno)); }
    int32_t h[256];
    if (fread_exact(h, sizeof(int32_t), 256, f, in, err) != 0) { die("%s", err); }
    if (h[0] != MODEL_MAGIC) { die("%s: bad magic %d (expected %d): not a model checkpoint", in, h[0], MODEL_MAGIC); }
    if (h[1] != 3 && h[1] != 5) { die("%s: unsupported checkpoint version %d (3 = fp32, 5 = bf16)", in, h[1]); }
    long maxT = h[2], V = h[3], L = h[4], NH = h[5], C = h[6], Vp = h[7];
    if (maxT <= 0 || V <= 0 || L <= 0 || NH <= 0 || C <= 0 || Vp < V || C % NH != 0) {
        die("%s: bad header: maxT %ld V %ld L %ld NH %ld C %ld Vp %ld", in, maxT, V, L, NH, C, Vp);
    }
    if (newV < V) { die("new vocabulary size %ld is below the checkpoint's %ld: only growing is supported", newV, V); }
    if (newV > (1L << 24)) { die("new vocabulary size %ld is too large", newV); }
    long newVp = (newV + 127) / 128 * 128;
    size_t esz = h[1] == 3 ? 4 : 2;
    // parameter count after wte, in llm.c's order: wpe, ln1w, ln1b, qkvw, qkvb, attprojw,
    // attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb
    long rest = maxT * C + L * (C + C + 3 * C * C + 3 * C + C * C + C + C + C + 4 * C * C + 4 * C + 4 * C * C + C) + C + C;
    long fsize = file_size_of(f);
    long want = 1024 + (long)esz * (Vp * C + rest);
    if (fsize != want) {
        die("%s: file has %ld bytes, but its header (V %ld, Vp %ld, C %ld, L %ld, maxT %ld) means %ld", in, fsize, V, Vp, C, L, maxT, want);
    }
    unsigned char* wte = (unsigned char*)malloc_check((size_t)Vp * C * esz, "wte");
    if (fread_exact(wte, esz, (size_t)(Vp * C), f, in, err) != 0) { die("%s", err); }
    // mean of the real rows, in double so the order of 50k additions does not matter
    double* mean = (double*)calloc_check((size_t)C, sizeof(double), "mean");
    for (long v = 0; v < V; v++) {
        for (long c = 0; c < C; c++) {
            size_t k = (size_t)(v * C + c);
            mean[c] += esz == 4 ? (double)((float*)wte)[k] : (double)bf16_to_float(((uint16_t*)wte)[k]);
        }
    }
    unsigned char* neww = (unsigned char*)calloc_check((size_t)newVp * C, esz, "new wte");  // padding rows zero
    memcpy(neww, wte, (size_t)(V * C) * esz);
    for (long v = V; v < newV; v++) {
        for (long c = 0; c < C; c++) {
            float m = (float)(mean[c] / (double)V);
            size_t k = (size_t)(v * C + c);
            if (esz == 4) { ((float*)neww)[k] = m; } else { ((uint16_t*)neww)[k] = float_to_bf16(m); }
        }
    }
    h[3] = (int32_t)newV;
    h[7] = (int32_t)newVp;
    AtomicFile af;
    atomic_open(&af, out);
    atomic_write(&af, h, sizeof(int32_t), 256);
    atomic_write(&af, neww, esz, (size_t)(newVp * C));
    // the rest of the parameters, unchanged
    unsigned char* buf = (unsigned char*)malloc_check(1 << 20, "copy buffer");
    long left = rest * (long)esz;
    while (left > 0) {
        size_t n = left > (1 << 20) ? (1 << 20) : (size_t)left;
        if (fread_exact(buf, 1, n, f, in, err) != 0) { die("%s", err); }
        atomic_write(&af, buf, 1, n);
        left -= (long)n;
    }
    atomic_commit(&af);
    fclose(f);
    printf("wrote %s: V %ld -> %ld, Vp %ld -> %ld, %ld new rows = mean of the %ld old rows (%s)\n",
           out, V, newV, Vp, newVp, newV - V, V, esz == 4 ? "fp32" : "bf16");
    free(buf); free(wte); free(neww); free(mean);
    return 0;
}
