// Parameter-efficient fine-tuning (PEFT): which tensors train, how they are laid out, how
// they are initialized, saved, loaded on top of a base model and merged into it.
//
// The base model's weights stay frozen: they get no gradient buffers and no AdamW moments.
// What trains is one contiguous vector of "PEFT tensors" (PeftLayout below); the optimizer,
// gradient all-reduce, clipping, ZeRO-1 sharding and the training state all work on that
// vector exactly as they work on the whole model in full fine-tuning.
//
// The four families of the seed's table, all exact (no approximation), applied to GPT-2 as
// llm.c lays it out (a linear layer is y = x W^T + b with W of shape (OC, IC)):
//
//   lora     (reparametrization) on a subset of the four matrices of each layer,
//            qkv (IC=C, OC=3C), attproj (C, C), fc (C, 4C), fcproj (4C, C):
//              y = x W^T + b + s * (x A^T) B^T,   A: (r, IC), B: (OC, r), s = alpha / r
//            Tensors, for each chosen target in that order: <t>_A (L, r, IC), <t>_B (L, OC, r).
//            Init: A ~ U(-1/sqrt(IC), 1/sqrt(IC)), B = 0, so training starts from the base.
//            Merge: W += s * B A. Weight decay on A and B.
//   bitfit   (selective): the biases train, and with --bitfit-ln also the LayerNorm gains.
//            Tensors, in checkpoint order: [ln1w] ln1b qkvb attprojb [ln2w] ln2b fcb fcprojb
//            [lnfw] lnfb, each the base tensor's shape, initialized as a copy of it; the
//            forward pass reads them in place of the base's. Merge: copy back. No decay.
//   adapter  (Houlsby bottleneck, size m) after the attention projection and after the MLP
//            projection of every layer, on the sublayer's output h before the residual add:
//              h' = h + gelu(h Wd^T + bd) Wu^T + bu,  Wd: (m, C), bd: (m), Wu: (C, m), bu: (C)
//            (gelu is the model's tanh GELU). Tensors: attn_down_w (L, m, C), attn_down_b
//            (L, m), attn_up_w (L, C, m), attn_up_b (L, C), then the same four for mlp_.
//            Init: down_w ~ N(0, 0.02^2), up_w = 0, biases 0: the identity at first.
//            Decay on the _w tensors. Not mergeable (it adds layers).
//   prompt   (prompt tuning, k virtual tokens): prompt (k, C). Every sequence of T tokens
//            runs as k + T positions: position i < k holds prompt[i] + wpe[i], position k + t
//            holds wte[x_t] + wpe[k + t] and predicts y_t; the prompt positions predict
//            nothing. Needs k + T <= maxT. Init: prompt[i] = wte[u_i] with u_i drawn
//            uniformly from the vocabulary (Lester et al.'s vocabulary init). No decay.
//            Not mergeable.
//
// Adapter file (".peft"), versioned and checksummed, loadable only on a base of the same shape:
//   int32 header[256]:
//     [0] 20261202 (magic)  [1] 1 (version)  [2] method (1 lora, 2 bitfit, 3 adapter, 4 prompt)
//     [3] L  [4] C  [5] NH  [6] V  [7] Vp  [8] maxT               the base model's shape
//     [9] lora rank r  [10] lora targets (bits: 1 qkv, 2 attproj, 4 fc, 8 fcproj)
//     [11] lora alpha (the float's bits)  [12] bitfit_ln  [13] adapter size m  [14] prompt k
//     [15] [16] payload floats, low and high 32 bits
//     [17] [18] hash64 (llmc/utils.h) of the base model's fp32 parameters, low/high (0: not recorded)
//     [19] [20] hash64 of the payload bytes, low/high
//   float32 payload: the tensors above, in layout order.
#ifndef LLMC_PEFT_H
#define LLMC_PEFT_H

#include <math.h>
#include "utils.h"
#include "rand.h"
#include "checkpoint.h"

#define PEFT_MAGIC 20261202
#define PEFT_VERSION 1
#define PEFT_MAX_TENSORS 16

enum { PEFT_NONE = 0, PEFT_LORA = 1, PEFT_BITFIT = 2, PEFT_ADAPTER = 3, PEFT_PROMPT = 4 };
enum { LORA_QKV = 1, LORA_ATTPROJ = 2, LORA_FC = 4, LORA_FCPROJ = 8, LORA_ALL = 15 };

static const char* const PEFT_METHOD_NAMES[5] = { "none", "lora", "bitfit", "adapter", "prompt" };
static const char* const LORA_TARGET_NAMES[4] = { "qkv", "attproj", "fc", "fcproj" };

typedef struct {
    int method;         // PEFT_*
    int lora_rank;      // r
    float lora_alpha;   // s = alpha / r
    int lora_targets;   // LORA_* bits
    int bitfit_ln;      // bitfit: also the LayerNorm gains
    int adapter_size;   // m
    int prompt_len;     // k
} PeftConfig;

typedef struct {
    PeftConfig pc;
    int num_tensors;
    char names[PEFT_MAX_TENSORS][24];
    size_t sizes[PEFT_MAX_TENSORS];
    size_t offsets[PEFT_MAX_TENSORS];
    int decays[PEFT_MAX_TENSORS];
    int base_index[PEFT_MAX_TENSORS];  // bitfit: the base tensor (checkpoint order) it stands for; else -1
    size_t count;                      // floats in all
} PeftLayout;

// In and out sizes of the four LoRA targets (index = bit position).
static void lora_target_shape(int target, int C, int* IC, int* OC) {
    static const int ic[4] = { 1, 1, 1, 4 }, oc[4] = { 3, 1, 4, 1 };
    *IC = ic[target] * C;
    *OC = oc[target] * C;
}

static void peft_layout_add(PeftLayout* lay, const char* name, size_t size, int decay, int base_index) {
    int i = lay->num_tensors++;
    if (i >= PEFT_MAX_TENSORS) { die("peft: too many tensors"); }
    snprintf(lay->names[i], sizeof(lay->names[i]), "%s", name);
    lay->sizes[i] = size;
    lay->offsets[i] = lay->count;
    lay->decays[i] = decay;
    lay->base_index[i] = base_index;
    lay->count += size;
}

static void peft_layout(PeftLayout* lay, const PeftConfig* pc, const GPT2Config* c) {
    memset(lay, 0, sizeof(*lay));
    lay->pc = *pc;
    size_t L = c->num_layers, C = c->channels;
    if (pc->method == PEFT_LORA) {
        size_t r = pc->lora_rank;
        for (int t = 0; t < 4; t++) {
            if (!(pc->lora_targets & (1 << t))) { continue; }
            int IC, OC;
            lora_target_shape(t, (int)C, &IC, &OC);
            char name[24];
            snprintf(name, sizeof(name), "%s_A", LORA_TARGET_NAMES[t]);
            peft_layout_add(lay, name, L * r * IC, 1, -1);
            snprintf(name, sizeof(name), "%s_B", LORA_TARGET_NAMES[t]);
            peft_layout_add(lay, name, L * OC * r, 1, -1);
        }
    } else if (pc->method == PEFT_BITFIT) {
        size_t sizes[NUM_PARAMETER_TENSORS];
        gpt2_parameter_sizes(sizes, c);
        // checkpoint indices: ln1w 2, ln1b 3, qkvb 5, attprojb 7, ln2w 8, ln2b 9, fcb 11, fcprojb 13, lnfw 14, lnfb 15
        static const int biases[7] = { 3, 5, 7, 9, 11, 13, 15 };
        static const int gains[3] = { 2, 8, 14 };
        for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
            int take = 0;
            for (int j = 0; j < 7; j++) { take |= biases[j] == i; }
            for (int j = 0; j < 3; j++) { take |= pc->bitfit_ln && gains[j] == i; }
            if (take) { peft_layout_add(lay, PARAMETER_NAMES[i], sizes[i], 0, i); }
        }
    } else if (pc->method == PEFT_ADAPTER) {
        size_t m = pc->adapter_size;
        const char* where[2] = { "attn", "mlp" };
        for (int w = 0; w < 2; w++) {
            char name[24];
            snprintf(name, sizeof(name), "%s_down_w", where[w]); peft_layout_add(lay, name, L * m * C, 1, -1);
            snprintf(name, sizeof(name), "%s_down_b", where[w]); peft_layout_add(lay, name, L * m, 0, -1);
            snprintf(name, sizeof(name), "%s_up_w", where[w]);   peft_layout_add(lay, name, L * C * m, 1, -1);
            snprintf(name, sizeof(name), "%s_up_b", where[w]);   peft_layout_add(lay, name, L * C, 0, -1);
        }
    } else if (pc->method == PEFT_PROMPT) {
        peft_layout_add(lay, "prompt", (size_t)pc->prompt_len * C, 0, -1);
    }
}

// The tensor named name, or NULL if the layout has none.
static float* peft_tensor(const PeftLayout* lay, float* base, const char* name) {
    for (int i = 0; i < lay->num_tensors; i++) {
        if (strcmp(lay->names[i], name) == 0) { return base + lay->offsets[i]; }
    }
    return NULL;
}

// Checks a PeftConfig against a model. 0, or -1 with err naming the flag.
static int peft_config_check(const PeftConfig* pc, const GPT2Config* c, int T, char* err) {
    if (pc->method == PEFT_LORA) {
        if (pc->lora_rank < 1) { return set_err(err, "--lora-rank %d: must be at least 1", pc->lora_rank); }
        if (pc->lora_targets <= 0 || pc->lora_targets > LORA_ALL) { return set_err(err, "--lora-targets: choose at least one of qkv,attproj,fc,fcproj"); }
        if (!(pc->lora_alpha > 0.0f) || !isfinite(pc->lora_alpha)) { return set_err(err, "--lora-alpha %g: must be positive", pc->lora_alpha); }
    } else if (pc->method == PEFT_ADAPTER) {
        if (pc->adapter_size < 1) { return set_err(err, "--adapter-size %d: must be at least 1", pc->adapter_size); }
    } else if (pc->method == PEFT_PROMPT) {
        if (pc->prompt_len < 1) { return set_err(err, "--prompt-len %d: must be at least 1", pc->prompt_len); }
        if (T > 0 && pc->prompt_len + T > c->max_seq_len) {
            return set_err(err, "--prompt-len %d with -t %d: the %d positions exceed the model's maxT %d", pc->prompt_len, T,
                           pc->prompt_len + T, c->max_seq_len);
        }
    } else if (pc->method != PEFT_BITFIT && pc->method != PEFT_NONE) {
        return set_err(err, "--peft: unknown method %d", pc->method);
    }
    return 0;
}

// "qkv,attproj,fc,fcproj" (or "all") -> bits. 0, or -1 with err.
static int lora_parse_targets(const char* text, int* bits, char* err) {
    *bits = 0;
    if (strcmp(text, "all") == 0) { *bits = LORA_ALL; return 0; }
    const char* p = text;
    while (*p != '\0') {
        const char* end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        int found = -1;
        for (int t = 0; t < 4; t++) {
            if (strlen(LORA_TARGET_NAMES[t]) == n && strncmp(p, LORA_TARGET_NAMES[t], n) == 0) { found = t; }
        }
        if (found < 0) { return set_err(err, "--lora-targets '%s': unknown target '%.*s' (choose from qkv,attproj,fc,fcproj or all)", text, (int)n, p); }
        *bits |= 1 << found;
        p += n;
        if (*p == ',') { p++; }
    }
    if (*bits == 0) { return set_err(err, "--lora-targets '%s': no target given", text); }
    return 0;
}

static int peft_parse_method(const char* text, int* method, char* err) {
    for (int i = 0; i < 5; i++) {
        if (strcmp(text, PEFT_METHOD_NAMES[i]) == 0) { *method = i; return 0; }
    }
    if (strcmp(text, "full") == 0) { *method = PEFT_NONE; return 0; }
    return set_err(err, "--peft '%s': unknown method (choose full, lora, bitfit, adapter or prompt)", text);
}

// The fresh PEFT tensors for a base model (see the top of this file), from seed.
static void peft_init(float* peft, const PeftLayout* lay, const GPT2Config* c, const float* base_params, uint64_t seed) {
    Rng rng;
    rng_init(&rng, seed ^ 0x5045465454554e45ull);  // its own stream, not the base init's
    size_t bsizes[NUM_PARAMETER_TENSORS], boff[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(bsizes, c);
    size_t o = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { boff[i] = o; o += bsizes[i]; }
    int C = c->channels;
    for (int i = 0; i < lay->num_tensors; i++) {
        float* t = peft + lay->offsets[i];
        size_t n = lay->sizes[i];
        const char* name = lay->names[i];
        size_t len = strlen(name);
        if (lay->base_index[i] >= 0) {
            memcpy(t, base_params + boff[lay->base_index[i]], n * sizeof(float));
        } else if (len > 2 && strcmp(name + len - 2, "_A") == 0) {
            int target = -1;
            for (int k = 0; k < 4; k++) { if (strncmp(name, LORA_TARGET_NAMES[k], len - 2) == 0 && strlen(LORA_TARGET_NAMES[k]) == len - 2) { target = k; } }
            int IC, OC;
            lora_target_shape(target, C, &IC, &OC);
            float bound = 1.0f / sqrtf((float)IC);
            for (size_t j = 0; j < n; j++) { t[j] = (2.0f * rng_f32(&rng) - 1.0f) * bound; }
        } else if (strstr(name, "_down_w") != NULL) {
            rng_normal(&rng, t, n, 0.0f, 0.02f);
        } else if (strcmp(name, "prompt") == 0) {
            int k = lay->pc.prompt_len;
            for (int r = 0; r < k; r++) {
                int u = (int)rng_below(&rng, (uint32_t)c->vocab_size);
                memcpy(t + (size_t)r * C, base_params + boff[0] + (size_t)u * C, (size_t)C * sizeof(float));
            }
        } else {
            memset(t, 0, n * sizeof(float));  // LoRA B, adapter up_w and biases
        }
    }
}

static uint64_t peft_hash_floats(const float* x, size_t n) {
    Hash64 hs;
    hash64_init(&hs);
    hash64_update(&hs, x, n * sizeof(float));
    return hash64_final(&hs);
}

// Writes the adapter file atomically. base_hash: peft_hash_floats of the base (0: not recorded).
static void peft_file_write(const char* path, const PeftLayout* lay, const GPT2Config* c, uint64_t base_hash, const float* peft) {
    int32_t h[256];
    memset(h, 0, sizeof(h));
    h[0] = PEFT_MAGIC; h[1] = PEFT_VERSION; h[2] = lay->pc.method;
    h[3] = c->num_layers; h[4] = c->channels; h[5] = c->num_heads; h[6] = c->vocab_size; h[7] = c->padded_vocab_size;
    h[8] = c->max_seq_len;
    h[9] = lay->pc.lora_rank; h[10] = lay->pc.lora_targets;
    memcpy(&h[11], &lay->pc.lora_alpha, sizeof(float));
    h[12] = lay->pc.bitfit_ln; h[13] = lay->pc.adapter_size; h[14] = lay->pc.prompt_len;
    uint64_t n = lay->count, ph = peft_hash_floats(peft, lay->count);
    h[15] = (int32_t)(uint32_t)(n & 0xffffffffu); h[16] = (int32_t)(uint32_t)(n >> 32);
    h[17] = (int32_t)(uint32_t)(base_hash & 0xffffffffu); h[18] = (int32_t)(uint32_t)(base_hash >> 32);
    h[19] = (int32_t)(uint32_t)(ph & 0xffffffffu); h[20] = (int32_t)(uint32_t)(ph >> 32);
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, h, sizeof(int32_t), 256);
    atomic_write(&af, peft, sizeof(float), lay->count);
    atomic_commit(&af);
}

static uint64_t peft_u64(const int32_t* h, int i) { return (uint64_t)(uint32_t)h[i] | ((uint64_t)(uint32_t)h[i + 1] << 32); }

// Is this file an adapter file (by its magic)? 1, 0, or 0 when it cannot be read.
static int peft_file_is_adapter(const char* path) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) { return 0; }
    int32_t magic = 0;
    int ok = fread(&magic, sizeof(magic), 1, f) == 1;
    fclose(f);
    return ok && magic == PEFT_MAGIC;
}

// Reads an adapter file for the base model c (with base_hash = peft_hash_floats of its
// weights, or 0 to skip that check). Fills lay and *peft (malloc'd). 0, or -1 with err.
static int peft_file_read(const char* path, const GPT2Config* c, uint64_t base_hash, PeftLayout* lay, float** peft, char* err) {
    FILE* f = fopen_regular(path, err);
    if (f == NULL) { return -1; }
    int32_t h[256];
    long fsize = file_size_of(f);
    if (fsize < (long)sizeof(h)) { fclose(f); return set_err(err, "%s: file is truncated: %ld bytes, shorter than the 1024-byte adapter header", path, fsize); }
    if (fread_exact(h, sizeof(int32_t), 256, f, path, err) != 0) { fclose(f); return -1; }
    if (h[0] != PEFT_MAGIC) {
        fclose(f);
        if (h[0] == CHECKPOINT_MAGIC) { return set_err(err, "%s: is a model checkpoint, not a PEFT adapter file", path); }
        return set_err(err, "%s: bad magic %d (expected %d): not a PEFT adapter file", path, h[0], PEFT_MAGIC);
    }
    if (h[1] != PEFT_VERSION) { fclose(f); return set_err(err, "%s: unsupported adapter file version %d (supported: %d)", path, h[1], PEFT_VERSION); }
    if (h[2] < PEFT_LORA || h[2] > PEFT_PROMPT) { fclose(f); return set_err(err, "%s: unknown PEFT method %d in the header", path, h[2]); }
    if (h[3] != c->num_layers || h[4] != c->channels || h[5] != c->num_heads || h[6] != c->vocab_size ||
        h[7] != c->padded_vocab_size || h[8] != c->max_seq_len) {
        fclose(f);
        return set_err(err, "%s: was made for a base model with L=%d C=%d NH=%d V=%d Vp=%d maxT=%d, but this base has "
                       "L=%d C=%d NH=%d V=%d Vp=%d maxT=%d", path, h[3], h[4], h[5], h[6], h[7], h[8], c->num_layers,
                       c->channels, c->num_heads, c->vocab_size, c->padded_vocab_size, c->max_seq_len);
    }
    PeftConfig pc;
    memset(&pc, 0, sizeof(pc));
    pc.method = h[2]; pc.lora_rank = h[9]; pc.lora_targets = h[10];
    memcpy(&pc.lora_alpha, &h[11], sizeof(float));
    pc.bitfit_ln = h[12]; pc.adapter_size = h[13]; pc.prompt_len = h[14];
    if (pc.bitfit_ln != 0 && pc.bitfit_ln != 1) { fclose(f); return set_err(err, "%s: bad bitfit_ln %d in the header", path, pc.bitfit_ln); }
    if (pc.method == PEFT_LORA && pc.lora_rank > 1 << 16) { fclose(f); return set_err(err, "%s: LoRA rank %d is implausible", path, pc.lora_rank); }
    if (pc.method == PEFT_ADAPTER && pc.adapter_size > 1 << 20) { fclose(f); return set_err(err, "%s: adapter size %d is implausible", path, pc.adapter_size); }
    if (peft_config_check(&pc, c, 0, err) != 0) {
        char inner[LLMC_ERRLEN];
        snprintf(inner, sizeof(inner), "%s", err);
        fclose(f);
        return set_err(err, "%s: bad PEFT settings in the header: %s", path, inner);
    }
    if (pc.method == PEFT_PROMPT && pc.prompt_len >= c->max_seq_len) {
        fclose(f);
        return set_err(err, "%s: prompt length %d leaves no room in maxT %d", path, pc.prompt_len, c->max_seq_len);
    }
    peft_layout(lay, &pc, c);
    uint64_t n = peft_u64(h, 15);
    if (n != lay->count) {
        fclose(f);
        return set_err(err, "%s: header announces %llu floats, but its settings need %zu", path, (unsigned long long)n, lay->count);
    }
    long expected = (long)sizeof(h) + (long)(n * sizeof(float));
    if (fsize != expected) {
        fclose(f);
        return set_err(err, "%s: file has %ld bytes, expected %ld (%s)", path, fsize, expected, fsize < expected ? "truncated" : "trailing bytes");
    }
    uint64_t want_base = peft_u64(h, 17);
    if (want_base != 0 && base_hash != 0 && want_base != base_hash) {
        fclose(f);
        return set_err(err, "%s: was trained on another base model (weights hash %016llx; this base's is %016llx): "
                       "load it on the checkpoint it was trained from", path, (unsigned long long)want_base,
                       (unsigned long long)base_hash);
    }
    float* p = float_alloc_check(lay->count > 0 ? lay->count : 1, "PEFT tensors");
    if (fread_exact(p, sizeof(float), lay->count, f, path, err) != 0) { free(p); fclose(f); return -1; }
    fclose(f);
    if (peft_hash_floats(p, lay->count) != peft_u64(h, 19)) {
        free(p);
        return set_err(err, "%s: checksum mismatch: the adapter weights are corrupt", path);
    }
    for (size_t i = 0; i < lay->count; i++) {
        if (!isfinite(p[i])) { free(p); return set_err(err, "%s: holds non-finite values (NaN or Inf)", path); }
    }
    *peft = p;
    return 0;
}

// Folds LoRA or BitFit tensors into the base weights (in place): the result is a plain model
// that gives the same outputs. Dies for adapters and soft prompts, which add computation.
static void peft_merge(float* base_params, const float* peft, const PeftLayout* lay, const GPT2Config* c) {
    size_t bsizes[NUM_PARAMETER_TENSORS], boff[NUM_PARAMETER_TENSORS];
    gpt2_parameter_sizes(bsizes, c);
    size_t o = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { boff[i] = o; o += bsizes[i]; }
    if (lay->pc.method == PEFT_BITFIT) {
        for (int i = 0; i < lay->num_tensors; i++) {
            memcpy(base_params + boff[lay->base_index[i]], peft + lay->offsets[i], lay->sizes[i] * sizeof(float));
        }
        return;
    }
    if (lay->pc.method != PEFT_LORA) { die("merge: only LoRA and BitFit can be merged into a plain checkpoint (%s adds layers)", PEFT_METHOD_NAMES[lay->pc.method]); }
    static const int weight_index[4] = { 4, 6, 10, 12 };  // qkvw, attprojw, fcw, fcprojw
    int L = c->num_layers, C = c->channels, r = lay->pc.lora_rank;
    float s = lay->pc.lora_alpha / (float)r;
    for (int t = 0; t < 4; t++) {
        if (!(lay->pc.lora_targets & (1 << t))) { continue; }
        int IC, OC;
        lora_target_shape(t, C, &IC, &OC);
        char name[24];
        snprintf(name, sizeof(name), "%s_A", LORA_TARGET_NAMES[t]);
        const float* A = peft_tensor(lay, (float*)peft, name);
        snprintf(name, sizeof(name), "%s_B", LORA_TARGET_NAMES[t]);
        const float* Bm = peft_tensor(lay, (float*)peft, name);
        for (int l = 0; l < L; l++) {
            float* W = base_params + boff[weight_index[t]] + (size_t)l * OC * IC;
            const float* Al = A + (size_t)l * r * IC;
            const float* Bl = Bm + (size_t)l * OC * r;
            #pragma omp parallel for
            for (int oc = 0; oc < OC; oc++) {
                for (int ic = 0; ic < IC; ic++) {
                    double acc = 0.0;
                    for (int k = 0; k < r; k++) { acc += (double)Bl[(size_t)oc * r + k] * Al[(size_t)k * IC + ic]; }
                    W[(size_t)oc * IC + ic] += s * (float)acc;
                }
            }
        }
    }
}

#endif // LLMC_PEFT_H
