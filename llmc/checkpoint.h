// The model's shape and the llm.c model checkpoint file.
//
// File: 256 x int32 header, then every parameter tensor in llm.c's order.
//   header[0] = 20240326 (magic)   header[1] = version: 3 = fp32 params, 5 = bf16 params
//   header[2] = maxT  header[3] = V  header[4] = L  header[5] = NH  header[6] = C  header[7] = Vp
// A GPT-2 checkpoint written by llm.c loads here, and what we write loads in llm.c.
#ifndef LLMC_CHECKPOINT_H
#define LLMC_CHECKPOINT_H

#include <ctype.h>
#include <math.h>
#include "utils.h"
#include "rand.h"

#define CHECKPOINT_MAGIC 20240326
#define NUM_PARAMETER_TENSORS 16

typedef struct {
    int max_seq_len;       // maxT
    int vocab_size;        // V
    int padded_vocab_size; // Vp, V rounded up to a multiple of 128
    int num_layers;        // L
    int num_heads;         // NH
    int channels;          // C
} GPT2Config;

static const char* const PARAMETER_NAMES[NUM_PARAMETER_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"
};

// Weight decay applies to these matrices only, never to biases or LayerNorm parameters.
static const int PARAMETER_DECAYS[NUM_PARAMETER_TENSORS] = {
    1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0
};

static void gpt2_parameter_sizes(size_t sizes[NUM_PARAMETER_TENSORS], const GPT2Config* cfg) {
    size_t Vp = cfg->padded_vocab_size;
    size_t C = cfg->channels;
    size_t maxT = cfg->max_seq_len;
    size_t L = cfg->num_layers;
    sizes[0] = Vp * C;           // wte
    sizes[1] = maxT * C;         // wpe
    sizes[2] = L * C;            // ln1w
    sizes[3] = L * C;            // ln1b
    sizes[4] = L * (3 * C) * C;  // qkvw
    sizes[5] = L * (3 * C);      // qkvb
    sizes[6] = L * C * C;        // attprojw
    sizes[7] = L * C;            // attprojb
    sizes[8] = L * C;            // ln2w
    sizes[9] = L * C;            // ln2b
    sizes[10] = L * (4 * C) * C; // fcw
    sizes[11] = L * (4 * C);     // fcb
    sizes[12] = L * C * (4 * C); // fcprojw
    sizes[13] = L * C;           // fcprojb
    sizes[14] = C;               // lnfw
    sizes[15] = C;               // lnfb
}

static size_t gpt2_num_parameters(const GPT2Config* cfg) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, cfg);
    size_t n = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { n += sizes[i]; }
    return n;
}

static int gpt2_config_validate(const GPT2Config* c, const char* where, char* err) {
    if (c->max_seq_len <= 0 || c->max_seq_len > (1 << 20)) { return set_err(err, "%s: bad maxT %d", where, c->max_seq_len); }
    if (c->vocab_size <= 0 || c->vocab_size > (1 << 24)) { return set_err(err, "%s: bad vocabulary size V=%d", where, c->vocab_size); }
    if (c->padded_vocab_size < c->vocab_size || c->padded_vocab_size > (1 << 24)) {
        return set_err(err, "%s: padded vocabulary Vp=%d is smaller than V=%d or too large", where, c->padded_vocab_size, c->vocab_size);
    }
    if (c->num_layers <= 0 || c->num_layers > 1024) { return set_err(err, "%s: bad number of layers L=%d", where, c->num_layers); }
    if (c->num_heads <= 0 || c->channels <= 0 || c->channels > (1 << 16)) {
        return set_err(err, "%s: bad heads NH=%d or channels C=%d", where, c->num_heads, c->channels);
    }
    if (c->channels % c->num_heads != 0) {
        return set_err(err, "%s: channels C=%d are not divisible by heads NH=%d", where, c->channels, c->num_heads);
    }
    return 0;
}

// "d12" etc: d12/d24/d36/d48 are GPT-2 124M/350M/774M/1558M; any other dN is L=N, C=64N,
// NH=N (head size 64), a smooth family for scaling sweeps. GPT-2 vocabulary, maxT 1024.
static int gpt2_config_from_preset(const char* name, GPT2Config* cfg, char* err) {
    if (name[0] != 'd' || name[1] == '\0') { return set_err(err, "unknown model preset '%s' (expected dN, e.g. d12)", name); }
    for (const char* p = name + 1; *p; p++) {
        if (!isdigit((unsigned char)*p)) { return set_err(err, "unknown model preset '%s' (expected dN, e.g. d12)", name); }
    }
    int depth = atoi(name + 1);
    if (depth <= 0 || depth > 256) { return set_err(err, "model preset '%s': depth must be 1..256", name); }
    cfg->max_seq_len = 1024;
    cfg->vocab_size = 50257;
    cfg->padded_vocab_size = 50304;
    cfg->num_layers = depth;
    if (depth == 12) { cfg->channels = 768; cfg->num_heads = 12; }
    else if (depth == 24) { cfg->channels = 1024; cfg->num_heads = 16; }
    else if (depth == 36) { cfg->channels = 1280; cfg->num_heads = 20; }
    else if (depth == 48) { cfg->channels = 1600; cfg->num_heads = 25; }
    else { cfg->channels = 64 * depth; cfg->num_heads = depth; }
    return 0;
}

// Dies unless every input (and target, if given) of a batch of n tokens is a real token id
// (the model's padded rows V..Vp are never an input or a target).
static void gpt2_check_tokens(const GPT2Config* cfg, const int* inputs, const int* targets, int n) {
    int V = cfg->vocab_size;
    for (int i = 0; i < n; i++) {
        if (inputs[i] < 0 || inputs[i] >= V) { die("input token %d at position %d is outside the vocabulary (V=%d)", inputs[i], i, V); }
        if (targets != NULL && (targets[i] < 0 || targets[i] >= V)) { die("target token %d at position %d is outside the vocabulary (V=%d)", targets[i], i, V); }
    }
}

// FLOPs of one training step per token: 6 per parameter that multiplies an activation (all but
// wpe; wte counts once, as the LM head), plus attention's QK^T and att @ V: 2 matmuls of
// 2 * T * C FLOPs per token each, forward and backward (x3), halved by the causal mask.
static double gpt2_flops_per_token(const GPT2Config* cfg, int T) {
    double n = (double)gpt2_num_parameters(cfg) - (double)cfg->max_seq_len * cfg->channels;
    return 6.0 * n + 6.0 * cfg->num_layers * (double)cfg->channels * T;
}

// A fresh GPT-2 init into params (gpt2_num_parameters floats): normal(0, 0.02) weights, with
// the projections that write into the residual stream (attprojw, fcprojw) scaled by
// 1/sqrt(2L); zero biases; LayerNorm weights 1; zero padded rows of wte. Everything is zeroed
// first: a caller's malloc'd memory can hold NaN bit patterns (infer_check's second model
// found one in wte's padded rows on an H200 machine, never in the emulation's ASan heap).
static void gpt2_init_random(float* params, const GPT2Config* cfg, uint64_t seed) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(sizes, cfg);
    memset(params, 0, gpt2_num_parameters(cfg) * sizeof(float));
    float* t[NUM_PARAMETER_TENSORS];
    float* q = params;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { t[i] = q; q += sizes[i]; }
    Rng rng;
    rng_init(&rng, seed);
    float std = 0.02f;
    float proj_std = 0.02f / sqrtf(2.0f * cfg->num_layers);
    rng_normal(&rng, t[0], (size_t)cfg->vocab_size * cfg->channels, 0.0f, std);  // wte
    rng_normal(&rng, t[1], sizes[1], 0.0f, std);                                    // wpe
    rng_normal(&rng, t[4], sizes[4], 0.0f, std);                                    // qkvw
    rng_normal(&rng, t[6], sizes[6], 0.0f, proj_std);                               // attprojw
    rng_normal(&rng, t[10], sizes[10], 0.0f, std);                                  // fcw
    rng_normal(&rng, t[12], sizes[12], 0.0f, proj_std);                             // fcprojw
    for (int i = 2; i <= 14; i += 6) {                                             // ln1w, ln2w, lnfw
        for (size_t k = 0; k < sizes[i]; k++) { t[i][k] = 1.0f; }
    }
}

// round to nearest even, as the GPU's conversion does; NaN stays NaN
static uint16_t float_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) { return (uint16_t)((bits >> 16) | 0x40); }
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

// Reads a checkpoint into a newly allocated fp32 array (*params, gpt2_num_parameters(cfg)
// floats; bf16 files are widened). Returns 0, or -1 with err naming the file and the problem.
static int checkpoint_read(const char* path, GPT2Config* cfg, float** params, char* err) {
    *params = NULL;
    if (check_regular_file(path, err) != 0) { return -1; }
    FILE* f = fopen(path, "rb");
    if (f == NULL) { return set_err(err, "%s: cannot open model checkpoint: %s", path, strerror(errno)); }
    int32_t header[256];
    long fsize = file_size_of(f);
    if (fread_exact(header, sizeof(int32_t), 256, f, path, err) != 0) { fclose(f); return -1; }
    if (header[0] != CHECKPOINT_MAGIC) {
        fclose(f);
        return set_err(err, "%s: bad magic %d in model checkpoint header (expected %d): not a model checkpoint", path, header[0], CHECKPOINT_MAGIC);
    }
    int version = header[1];
    if (version != 3 && version != 5) {
        fclose(f);
        return set_err(err, "%s: unsupported model checkpoint version %d (supported: 3 = fp32, 5 = bf16)", path, version);
    }
    cfg->max_seq_len = header[2];
    cfg->vocab_size = header[3];
    cfg->num_layers = header[4];
    cfg->num_heads = header[5];
    cfg->channels = header[6];
    cfg->padded_vocab_size = header[7];
    if (gpt2_config_validate(cfg, path, err) != 0) { fclose(f); return -1; }
    size_t n = gpt2_num_parameters(cfg);
    size_t elem = (version == 3) ? 4 : 2;
    long expected = 256 * 4 + (long)(n * elem);
    if (fsize != expected) {
        fclose(f);
        return set_err(err, "%s: file is %s: %ld bytes, but the header's shape (L=%d C=%d NH=%d Vp=%d maxT=%d) needs %ld",
                       path, fsize < expected ? "truncated" : "too long", fsize, cfg->num_layers, cfg->channels,
                       cfg->num_heads, cfg->padded_vocab_size, cfg->max_seq_len, expected);
    }
    float* p = float_alloc_check(n, "model parameters");
    if (version == 3) {
        if (fread_exact(p, 4, n, f, path, err) != 0) { free(p); fclose(f); return -1; }
    } else {
        // widen in chunks through the tail of the same buffer: no second full-size allocation
        const size_t chunk = 1 << 20;
        for (size_t done = 0; done < n; done += chunk) {
            size_t k = n - done < chunk ? n - done : chunk;
            uint16_t* tmp = (uint16_t*)(p + done) + k;  // second half of this chunk's floats
            if (fread_exact(tmp, 2, k, f, path, err) != 0) { free(p); fclose(f); return -1; }
            for (size_t i = 0; i < k; i++) { p[done + i] = bf16_to_float(tmp[i]); }
        }
    }
    fclose(f);
    *params = p;
    return 0;
}

// The shape at words 2..7 of a 256-int32 header, as llm.c's checkpoints (and our quantized
// ones, llmc/quant.h) store it: maxT, V, L, NH, C, Vp.
static void checkpoint_header_shape(int32_t* header, const GPT2Config* cfg) {
    header[2] = cfg->max_seq_len;
    header[3] = cfg->vocab_size;
    header[4] = cfg->num_layers;
    header[5] = cfg->num_heads;
    header[6] = cfg->channels;
    header[7] = cfg->padded_vocab_size;
}

// The version word of a file (0 when it cannot be read): tools that say whether an input was
// fp32 (3) or bf16 (5) after checkpoint_read has checked it.
static int checkpoint_file_version(const char* path) {
    FILE* f = fopen(path, "rb");
    int32_t h[2] = {0, 0};
    if (f != NULL) { if (fread(h, sizeof(int32_t), 2, f) != 2) { h[1] = 0; } fclose(f); }
    return h[1];
}

// Writes a checkpoint atomically: version 3 (fp32 parameters) or 5 (rounded to bf16).
static void checkpoint_write(const char* path, const GPT2Config* cfg, const float* params, int version) {
    if (version != 3 && version != 5) { die("checkpoint_write %s: version %d (3 or 5 only)", path, version); }
    int32_t header[256];
    memset(header, 0, sizeof(header));
    header[0] = CHECKPOINT_MAGIC;
    header[1] = version;
    checkpoint_header_shape(header, cfg);
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, header, sizeof(int32_t), 256);
    size_t n = gpt2_num_parameters(cfg);
    if (version == 3) {
        atomic_write(&af, params, sizeof(float), n);
    } else {
        uint16_t buf[4096];
        for (size_t done = 0; done < n; done += 4096) {
            size_t k = n - done < 4096 ? n - done : 4096;
            for (size_t i = 0; i < k; i++) { buf[i] = float_to_bf16(params[done + i]); }
            atomic_write(&af, buf, sizeof(uint16_t), k);
        }
    }
    atomic_commit(&af);
}

#endif // LLMC_CHECKPOINT_H
