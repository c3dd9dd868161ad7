/*
GPT-2 training, the CPU reference: fp32, OpenMP, one file.

The model is GPT-2: token + learned position embeddings, L pre-LayerNorm blocks (causal
multi-head self-attention, then a 4x MLP with tanh-GELU), a final LayerNorm and an LM head
tied to the token embedding. The kernels live in llmc/, one operation per header, with the
plain-C version that this file uses first; the CUDA twin sits beside it in the same header.
Everything around the model (flags, data loader, schedule, evaluation, sampling, checkpoints
and exact resume, spike guard, signals, logs, processes) is the shared training loop in
llmc/train_loop.h, which train_gpt.cu runs too: this file is the model and its CPU entry
points (ModelOps), so both programs take the same flags and read and write the same files.

Fine-tuning enters through two things every training feature shares: a per-target loss weight
(0 on masked prompt tokens; the loss is averaged over the weights) and the trainable vector,
which is either every parameter or the PEFT tensors of llmc/peft.h (LoRA, BitFit, adapters, a
soft prompt) on a frozen base that then has no gradient buffers and no AdamW moments.

Given the same seed and thread count, two runs produce bitwise the same losses: every
reduction in the kernels runs in a fixed order, whatever OpenMP's scheduling.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "llmc/utils.h"
#include "llmc/checkpoint.h"
#include "llmc/train_loop.h"
#include "llmc/encoder.h"
#include "llmc/layernorm.h"
#include "llmc/matmul.h"
#include "llmc/attention.h"
#include "llmc/gelu.h"
#include "llmc/residual.h"
#include "llmc/crossentropy.h"
#include "llmc/distill.h"
#include "llmc/adamw.h"
#include "llmc/peft.h"
#include "llmc/lora.h"
#include "llmc/adapter.h"

// ----------------------------------------------------------------------------
// The model

// Pointers into one contiguous allocation, in the checkpoint's order (llmc/checkpoint.h).
typedef struct {
    float* wte;      // (Vp, C)
    float* wpe;      // (maxT, C)
    float* ln1w;     // (L, C)
    float* ln1b;     // (L, C)
    float* qkvw;     // (L, 3C, C)
    float* qkvb;     // (L, 3C)
    float* attprojw; // (L, C, C)
    float* attprojb; // (L, C)
    float* ln2w;     // (L, C)
    float* ln2b;     // (L, C)
    float* fcw;      // (L, 4C, C)
    float* fcb;      // (L, 4C)
    float* fcprojw;  // (L, C, 4C)
    float* fcprojb;  // (L, C)
    float* lnfw;     // (C)
    float* lnfb;     // (C)
} ParameterTensors;

static float** parameter_pointers(ParameterTensors* p, float** ptrs[NUM_PARAMETER_TENSORS]) {
    float** all[NUM_PARAMETER_TENSORS] = {
        &p->wte, &p->wpe, &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->attprojw, &p->attprojb,
        &p->ln2w, &p->ln2b, &p->fcw, &p->fcb, &p->fcprojw, &p->fcprojb, &p->lnfw, &p->lnfb
    };
    memcpy(ptrs, all, sizeof(all));
    return ptrs[0];
}

static void point_parameters(ParameterTensors* p, float* memory, const size_t sizes[NUM_PARAMETER_TENSORS]) {
    float** ptrs[NUM_PARAMETER_TENSORS];
    parameter_pointers(p, ptrs);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        *ptrs[i] = memory;
        memory += sizes[i];
    }
}

// The PEFT tensors of llmc/peft.h, as pointers into the trainable vector (or its gradients);
// NULL where the method has none. LoRA targets are indexed qkv, attproj, fc, fcproj; adapters
// [0] after attention and [1] after the MLP.
typedef struct {
    float* lora_A[4];   // (L, r, IC)
    float* lora_B[4];   // (L, OC, r)
    float* down_w[2];   // (L, m, C)
    float* down_b[2];   // (L, m)
    float* up_w[2];     // (L, C, m)
    float* up_b[2];     // (L, C)
    float* prompt;      // (k, C)
} PeftTensors;

static void point_peft(PeftTensors* t, const PeftLayout* lay, float* memory) {
    memset(t, 0, sizeof(*t));
    char name[32];
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof(name), "%s_A", LORA_TARGET_NAMES[k]);
        t->lora_A[k] = peft_tensor(lay, memory, name);
        snprintf(name, sizeof(name), "%s_B", LORA_TARGET_NAMES[k]);
        t->lora_B[k] = peft_tensor(lay, memory, name);
    }
    const char* where[2] = { "attn", "mlp" };
    for (int w = 0; w < 2; w++) {
        snprintf(name, sizeof(name), "%s_down_w", where[w]); t->down_w[w] = peft_tensor(lay, memory, name);
        snprintf(name, sizeof(name), "%s_down_b", where[w]); t->down_b[w] = peft_tensor(lay, memory, name);
        snprintf(name, sizeof(name), "%s_up_w", where[w]);   t->up_w[w] = peft_tensor(lay, memory, name);
        snprintf(name, sizeof(name), "%s_up_b", where[w]);   t->up_b[w] = peft_tensor(lay, memory, name);
    }
    t->prompt = peft_tensor(lay, memory, "prompt");
}

// Activations kept from the forward pass for the backward pass. Per-layer tensors are
// (L, B, T, ...) with the B and T given to gpt2_allocate (T includes a soft prompt's k
// positions); a smaller B or T (sampling) uses the front of each layer's slice.
typedef struct {
    float* encoded;   // (B, T, C) embeddings, the input of layer 0
    float* ln1;       // (L, B, T, C)
    float* ln1_mean;  // (L, B, T)
    float* ln1_rstd;  // (L, B, T)
    float* qkv;       // (L, B, T, 3C)
    float* atty;      // (L, B, T, C)
    float* att;       // (L, B, NH, T, T)
    float* residual2; // (L, B, T, C)
    float* ln2;       // (L, B, T, C)
    float* ln2_mean;  // (L, B, T)
    float* ln2_rstd;  // (L, B, T)
    float* fch;       // (L, B, T, 4C)
    float* fch_gelu;  // (L, B, T, 4C)
    float* residual3; // (L, B, T, C) the output of each layer
    float* lnf;       // (B, T, C)
    float* lnf_mean;  // (B, T)
    float* lnf_rstd;  // (B, T)
    float* logits;    // (B, T, Vp); the backward pass overwrites them with their gradient
    float* probs;     // (B, T, Vp)
    float* losses;    // (B, T)
    float* proj;      // (B, T, C) scratch: a projection's output before it joins the residual
    // PEFT only (NULL otherwise)
    float* lora_h[4];     // (L, B, T, r) s * inp A^T of each LoRA target
    float* adapter_in[2]; // (L, B, T, C) an adapter's input (the projection's output)
    float* adapter_z[2];  // (L, B, T, m) its bottleneck before the GELU
    float* adapter_g[2];  // (L, B, T, m) and after
} ActivationTensors;

// Gradients of activations: the backward pass walks the layers from the top and only ever
// needs one layer's worth, so these are reused by every layer. dresidual carries the
// gradient of the residual stream down through all of them.
typedef struct {
    float* dresidual; // (B, T, C)
    float* dln;       // (B, T, C) gradient of a LayerNorm's output
    float* datty;     // (B, T, C)
    float* dqkv;      // (B, T, 3C)
    float* dfch;      // (B, T, 4C)
    float* dfch_gelu; // (B, T, 4C)
    // PEFT only
    float* dproj;     // (B, T, C) gradient of a projection's output, below its adapter
    float* lora_dh;   // (B, T, r)
    float* adapter_dg; // (B, T, m)
    float* adapter_dz; // (B, T, m)
} GradientScratch;

typedef struct {
    GPT2Config config;
    size_t param_sizes[NUM_PARAMETER_TENSORS];
    size_t num_parameters;
    float* params_memory;
    ParameterTensors params;  // what the forward pass reads (BitFit points the biases at its own copies)
    // the trainable vector: params_memory itself, or the PEFT tensors on a frozen base
    PeftLayout peft;          // peft.pc.method == PEFT_NONE: every parameter trains
    float* peft_memory;       // the PEFT tensors (peft.count floats); NULL without PEFT
    PeftTensors pp, pg;       // PEFT tensors and their gradients
    float* trainable;
    size_t num_trainable;
    int prompt_len;           // k: soft-prompt positions before every sequence (0: none)
    float* grads_memory;      // num_trainable floats
    ParameterTensors grads;   // views into grads_memory; NULL for frozen tensors
    size_t opt_offset;        // the trainable parameters whose AdamW moments this process holds:
    size_t opt_count;         // all of them, or one shard under ZeRO-1 (llmc/comm.h)
    float* grad_shard;        // ZeRO-1: the summed gradients of this process's shard
    float* m_memory;          // AdamW first moments, opt_count floats
    float* v_memory;          // AdamW second moments
    int B, T;                 // the batch shape the buffers below were allocated for, T with the prompt (0: none yet)
    float* acts_memory;
    ActivationTensors acts;
    float* scratch_memory;
    GradientScratch scratch;
    int* inputs;              // (B, T) copies of the last forward's inputs, targets and weights
    int* targets;             // (at the model's positions: after k prompt positions, if any)
    float* weights;
    int batch_B, batch_T;     // the shape of the last forward, prompt positions included
    int has_targets;
    int has_weights;          // the last forward had loss weights (or a prompt, whose positions weigh 0)
    float mean_loss;          // of the last forward with targets: sum(w * loss) / sum(w)
    double loss_sum;          // sum(w * loss) over forwards, for the training loop (cpu_take_loss_sum)
    double weight_sum;        // sum(w) over the same forwards
    // knowledge distillation (llmc/distill.h): a teacher GPT2 of the same vocabulary runs on the
    // same inputs, and while distill_on the training loss is (1 - alpha) CE + alpha tau^2 KL
    void* teacher;            // GPT2*, or NULL
    int distill_on;           // the next forwards with targets are distilled (the loop turns it off to evaluate)
    int distilled;            // the last forward was (its backward must be too)
    float distill_alpha, distill_tau;
    int distill_reverse;      // KL(student || teacher) instead of KL(teacher || student)
    float* distill_kl;        // (B, T) the last distilled forward's KL per position
} GPT2;

static void gpt2_init_common(GPT2* model) {
    gpt2_parameter_sizes(model->param_sizes, &model->config);
    model->num_parameters = gpt2_num_parameters(&model->config);
    memset(&model->peft, 0, sizeof(model->peft));
    memset(&model->pp, 0, sizeof(model->pp));
    memset(&model->pg, 0, sizeof(model->pg));
    model->peft_memory = NULL;
    model->trainable = model->params_memory;
    model->num_trainable = model->num_parameters;
    model->prompt_len = 0;
    model->grads_memory = NULL;
    model->m_memory = NULL;
    model->v_memory = NULL;
    model->grad_shard = NULL;
    model->acts_memory = NULL;
    model->scratch_memory = NULL;
    model->inputs = NULL;
    model->targets = NULL;
    model->weights = NULL;
    model->B = 0;
    model->T = 0;
    model->has_targets = 0;
    model->has_weights = 0;
    model->mean_loss = -1.0f;
    model->loss_sum = 0.0;
    model->weight_sum = 0.0;
    model->teacher = NULL;
    model->distill_on = 0;
    model->distilled = 0;
    model->distill_kl = NULL;
}

// Takes ownership of params (gpt2_num_parameters(config) floats, 64-byte aligned).
static void gpt2_build_from_params(GPT2* model, const GPT2Config* config, float* params) {
    model->config = *config;
    model->params_memory = params;
    gpt2_init_common(model);
    point_parameters(&model->params, model->params_memory, model->param_sizes);
}

// Loads a checkpoint; dies with the loader's message on a bad file.
static void gpt2_build_from_checkpoint(GPT2* model, const char* path) {
    char err[LLMC_ERRLEN];
    GPT2Config config;
    float* params;
    if (checkpoint_read(path, &config, &params, err) != 0) { die("%s", err); }
    gpt2_build_from_params(model, &config, params);
}

// Freezes the base and trains the PEFT tensors of lay instead (takes ownership of peft,
// lay->count floats). Before gpt2_allocate.
static void gpt2_set_peft(GPT2* model, const PeftLayout* lay, float* peft) {
    if (model->acts_memory != NULL) { die("gpt2_set_peft after gpt2_allocate"); }
    model->peft = *lay;
    model->peft_memory = peft;
    model->trainable = peft;
    model->num_trainable = lay->count;
    model->prompt_len = lay->pc.method == PEFT_PROMPT ? lay->pc.prompt_len : 0;
    point_peft(&model->pp, lay, peft);
    // BitFit: the forward pass reads the trainable copies in place of the base's biases
    float** ptrs[NUM_PARAMETER_TENSORS];
    parameter_pointers(&model->params, ptrs);
    for (int i = 0; i < lay->num_tensors; i++) {
        if (lay->base_index[i] >= 0) { *ptrs[lay->base_index[i]] = peft + lay->offsets[i]; }
    }
}

static int gpt2_is_peft(const GPT2* model) { return model->peft.pc.method != PEFT_NONE; }

// sizes and weight-decay flags of the tensors of the trainable vector, in its order; returns how many
static int gpt2_trainable_tensors(const GPT2* model, size_t* sizes, int* decays) {
    if (!gpt2_is_peft(model)) {
        for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { sizes[i] = model->param_sizes[i]; decays[i] = PARAMETER_DECAYS[i]; }
        return NUM_PARAMETER_TENSORS;
    }
    for (int i = 0; i < model->peft.num_tensors; i++) { sizes[i] = model->peft.sizes[i]; decays[i] = model->peft.decays[i]; }
    return model->peft.num_tensors;
}

// carves 64-byte aligned tensors out of one allocation: sizes[i] floats to *ptrs[i] (0: NULL)
static float* carve_floats(float** ptrs[], const size_t sizes[], int n, const char* what) {
    size_t total = 0;
    for (int i = 0; i < n; i++) { total += (sizes[i] + 15) & ~(size_t)15; }
    float* memory = float_alloc_check(total > 0 ? total : 1, what);
    float* m = memory;
    for (int i = 0; i < n; i++) {
        *ptrs[i] = sizes[i] > 0 ? m : NULL;
        m += (sizes[i] + 15) & ~(size_t)15;
    }
    return memory;
}

// Allocates, once and up front, everything a training step at (B, T) needs (T + k positions
// with a soft prompt), with the AdamW moments of the trainable parameters
// [opt_offset, opt_offset + opt_count).
static void gpt2_allocate(GPT2* model, int B, int T, size_t opt_offset, size_t opt_count) {
    if (model->acts_memory != NULL) { die("gpt2_allocate called twice"); }
    GPT2Config* c = &model->config;
    T += model->prompt_len;
    if (T > c->max_seq_len) {
        die("-t: sequence length %d%s exceeds the model's maxT %d", T, model->prompt_len > 0 ? " (with the soft prompt)" : "",
            c->max_seq_len);
    }
    size_t L = c->num_layers, C = c->channels, NH = c->num_heads, Vp = c->padded_vocab_size;
    size_t BT = (size_t)B * T;
    const PeftConfig* pc = &model->peft.pc;
    size_t r = pc->method == PEFT_LORA ? (size_t)pc->lora_rank : 0;
    size_t am = pc->method == PEFT_ADAPTER ? (size_t)pc->adapter_size : 0;
    size_t lora_n[4];
    for (int k = 0; k < 4; k++) { lora_n[k] = model->pp.lora_A[k] != NULL ? L * BT * r : 0; }
    size_t ain = am > 0 ? L * BT * C : 0;
    size_t sizes[31] = {
        BT * C, L * BT * C, L * BT, L * BT, L * BT * 3 * C, L * BT * C, L * B * NH * T * T,
        L * BT * C, L * BT * C, L * BT, L * BT, L * BT * 4 * C, L * BT * 4 * C, L * BT * C,
        BT * C, BT, BT, BT * Vp, BT * Vp, BT, BT * C,
        lora_n[0], lora_n[1], lora_n[2], lora_n[3],
        ain, ain, L * BT * am, L * BT * am, L * BT * am, L * BT * am
    };
    ActivationTensors* a = &model->acts;
    float** ptrs[31] = {
        &a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->atty, &a->att, &a->residual2,
        &a->ln2, &a->ln2_mean, &a->ln2_rstd, &a->fch, &a->fch_gelu, &a->residual3, &a->lnf, &a->lnf_mean,
        &a->lnf_rstd, &a->logits, &a->probs, &a->losses, &a->proj,
        &a->lora_h[0], &a->lora_h[1], &a->lora_h[2], &a->lora_h[3],
        &a->adapter_in[0], &a->adapter_in[1], &a->adapter_z[0], &a->adapter_z[1], &a->adapter_g[0], &a->adapter_g[1]
    };
    model->acts_memory = carve_floats(ptrs, sizes, 31, "activations");

    GradientScratch* s = &model->scratch;
    size_t ssizes[10] = { BT * C, BT * C, BT * C, BT * 3 * C, BT * 4 * C, BT * 4 * C,
                          am > 0 ? BT * C : 0, BT * r, BT * am, BT * am };
    float** sptrs[10] = { &s->dresidual, &s->dln, &s->datty, &s->dqkv, &s->dfch, &s->dfch_gelu,
                          &s->dproj, &s->lora_dh, &s->adapter_dg, &s->adapter_dz };
    model->scratch_memory = carve_floats(sptrs, ssizes, 10, "gradient scratch");

    // gradients of the trainable vector only: a frozen base has none
    model->grads_memory = float_alloc_check(model->num_trainable, "gradients");
    if (!gpt2_is_peft(model)) {
        point_parameters(&model->grads, model->grads_memory, model->param_sizes);
    } else {
        memset(&model->grads, 0, sizeof(model->grads));
        float** gptrs[NUM_PARAMETER_TENSORS];
        parameter_pointers(&model->grads, gptrs);
        for (int i = 0; i < model->peft.num_tensors; i++) {
            if (model->peft.base_index[i] >= 0) { *gptrs[model->peft.base_index[i]] = model->grads_memory + model->peft.offsets[i]; }
        }
        point_peft(&model->pg, &model->peft, model->grads_memory);
    }
    if (opt_offset + opt_count > model->num_trainable) { die("gpt2_allocate: optimizer range out of bounds"); }
    model->opt_offset = opt_offset;
    model->opt_count = opt_count;
    model->m_memory = float_alloc_check(opt_count, "AdamW m");
    // a shard of the moments means ZeRO-1, whose summed gradients arrive for that shard only
    model->grad_shard = opt_count < model->num_trainable ? float_alloc_check(opt_count, "gradient shard") : NULL;
    model->v_memory = float_alloc_check(opt_count, "AdamW v");
    model->inputs = (int*)calloc_check(BT, sizeof(int), "inputs");
    model->targets = (int*)calloc_check(BT, sizeof(int), "targets");
    model->weights = (float*)calloc_check(BT, sizeof(float), "loss weights");
    model->B = B;
    model->T = T;
    if (model->teacher != NULL) {
        model->distill_kl = float_alloc_check(BT, "distillation KL");
        gpt2_allocate((GPT2*)model->teacher, B, T, 0, 0);  // forward only: no moments
    }
}

// Distils from teacher (built, not allocated: gpt2_allocate allocates it with the student) with
// weight alpha and temperature tau; the student keeps the pointer, the caller owns the teacher.
static void gpt2_set_teacher(GPT2* model, GPT2* teacher, float alpha, float tau, int reverse, const char* teacher_path) {
    train_distill_check(&model->config, &teacher->config, model->prompt_len, teacher_path);
    if (model->acts_memory != NULL) { die("gpt2_set_teacher after gpt2_allocate"); }
    model->teacher = teacher;
    model->distill_alpha = alpha;
    model->distill_tau = tau;
    model->distill_reverse = reverse;
    model->distill_on = 0;  // the training loop turns it on for its steps (ModelOps set_distill)
}

// Forward pass on inputs (B, T); with targets (B, T) it also computes the loss, weighted by
// weights (B, T) if given: sum(w * loss) / sum(w). B and T may be smaller than the allocated
// shape (sampling runs with B = 1). With a soft prompt, the model runs k + T positions.
static void gpt2_forward(GPT2* model, const int* inputs, const int* targets, const float* weights, int B, int T) {
    if (model->acts_memory == NULL) { die("gpt2_forward before gpt2_allocate"); }
    GPT2Config* cfg = &model->config;
    int V = cfg->vocab_size, Vp = cfg->padded_vocab_size, L = cfg->num_layers;
    int NH = cfg->num_heads, C = cfg->channels;
    int k = model->prompt_len;
    if (B > model->B || T + k > model->T) { die("batch %dx%d exceeds the allocated %dx%d", B, T, model->B, model->T - k); }
    gpt2_check_tokens(cfg, inputs, targets, B * T);
    // the model's positions: k prompt positions (token 0 stands in; the prompt replaces its
    // embedding; no target, weight 0), then the T given ones
    int Tx = T + k;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < Tx; t++) {
            size_t at = (size_t)b * Tx + t, src = (size_t)b * T + (t - k);
            model->inputs[at] = t < k ? 0 : inputs[src];
            model->targets[at] = t < k || targets == NULL ? 0 : targets[src];
            model->weights[at] = t < k ? 0.0f : (weights != NULL ? weights[src] : 1.0f);
        }
    }
    model->batch_B = B;
    model->batch_T = Tx;
    model->has_targets = targets != NULL;
    model->has_weights = weights != NULL || k > 0;
    T = Tx;

    ParameterTensors* p = &model->params;
    PeftTensors* pp = &model->pp;
    ActivationTensors* a = &model->acts;
    size_t layer_btc = (size_t)model->B * model->T * C;  // per-layer strides use the allocated shape
    size_t layer_bt = (size_t)model->B * model->T;
    size_t layer_att = (size_t)model->B * NH * model->T * model->T;
    size_t N = (size_t)B * T * C;
    int BT = B * T;
    int r = model->peft.pc.lora_rank, m = model->peft.pc.adapter_size;
    float s = model->peft.pc.method == PEFT_LORA ? model->peft.pc.lora_alpha / r : 0.0f;
    size_t layer_btr = layer_bt * (size_t)r, layer_btm = layer_bt * (size_t)m;

    encoder_forward(a->encoded, model->inputs, p->wte, p->wpe, B, T, C);
    for (int b = 0; b < B && k > 0; b++) {
        for (int i = 0; i < k; i++) {
            float* out = a->encoded + ((size_t)b * T + i) * C;
            for (int c = 0; c < C; c++) { out[c] = pp->prompt[(size_t)i * C + c] + p->wpe[(size_t)i * C + c]; }
        }
    }
    for (int l = 0; l < L; l++) {
        const float* residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * layer_btc;
        float* ln1 = a->ln1 + l * layer_btc;
        float* qkv = a->qkv + l * 3 * layer_btc;
        float* atty = a->atty + l * layer_btc;
        float* att = a->att + l * layer_att;
        float* residual2 = a->residual2 + l * layer_btc;
        float* ln2 = a->ln2 + l * layer_btc;
        float* fch = a->fch + l * 4 * layer_btc;
        float* fch_gelu = a->fch_gelu + l * 4 * layer_btc;
        float* residual3 = a->residual3 + l * layer_btc;

        layernorm_forward(ln1, a->ln1_mean + l * layer_bt, a->ln1_rstd + l * layer_bt, residual,
                          p->ln1w + l * C, p->ln1b + l * C, B, T, C);
        matmul_forward(qkv, ln1, p->qkvw + (size_t)l * 3 * C * C, p->qkvb + l * 3 * C, B, T, C, 3 * C);
        if (pp->lora_A[0]) {
            lora_forward(qkv, a->lora_h[0] + l * layer_btr, ln1, pp->lora_A[0] + (size_t)l * r * C,
                         pp->lora_B[0] + (size_t)l * 3 * C * r, s, BT, C, 3 * C, r);
        }
        attention_forward(atty, att, qkv, B, T, C, NH);
        matmul_forward(a->proj, atty, p->attprojw + (size_t)l * C * C, p->attprojb + l * C, B, T, C, C);
        if (pp->lora_A[1]) {
            lora_forward(a->proj, a->lora_h[1] + l * layer_btr, atty, pp->lora_A[1] + (size_t)l * r * C,
                         pp->lora_B[1] + (size_t)l * C * r, s, BT, C, C, r);
        }
        if (pp->down_w[0]) {
            float* in = a->adapter_in[0] + l * layer_btc;
            memcpy(in, a->proj, N * sizeof(float));
            adapter_forward(a->proj, a->adapter_z[0] + l * layer_btm, a->adapter_g[0] + l * layer_btm, in,
                            pp->down_w[0] + (size_t)l * m * C, pp->down_b[0] + (size_t)l * m,
                            pp->up_w[0] + (size_t)l * C * m, pp->up_b[0] + (size_t)l * C, BT, C, m);
        }
        residual_forward(residual2, residual, a->proj, N);
        layernorm_forward(ln2, a->ln2_mean + l * layer_bt, a->ln2_rstd + l * layer_bt, residual2,
                          p->ln2w + l * C, p->ln2b + l * C, B, T, C);
        matmul_forward(fch, ln2, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, B, T, C, 4 * C);
        if (pp->lora_A[2]) {
            lora_forward(fch, a->lora_h[2] + l * layer_btr, ln2, pp->lora_A[2] + (size_t)l * r * C,
                         pp->lora_B[2] + (size_t)l * 4 * C * r, s, BT, C, 4 * C, r);
        }
        gelu_forward(fch_gelu, fch, 4 * N);
        matmul_forward(a->proj, fch_gelu, p->fcprojw + (size_t)l * 4 * C * C, p->fcprojb + l * C, B, T, 4 * C, C);
        if (pp->lora_A[3]) {
            lora_forward(a->proj, a->lora_h[3] + l * layer_btr, fch_gelu, pp->lora_A[3] + (size_t)l * r * 4 * C,
                         pp->lora_B[3] + (size_t)l * C * r, s, BT, 4 * C, C, r);
        }
        if (pp->down_w[1]) {
            float* in = a->adapter_in[1] + l * layer_btc;
            memcpy(in, a->proj, N * sizeof(float));
            adapter_forward(a->proj, a->adapter_z[1] + l * layer_btm, a->adapter_g[1] + l * layer_btm, in,
                            pp->down_w[1] + (size_t)l * m * C, pp->down_b[1] + (size_t)l * m,
                            pp->up_w[1] + (size_t)l * C * m, pp->up_b[1] + (size_t)l * C, BT, C, m);
        }
        residual_forward(residual3, residual2, a->proj, N);
    }
    const float* top = a->residual3 + (L - 1) * layer_btc;
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, top, p->lnfw, p->lnfb, B, T, C);
    matmul_forward(a->logits, a->lnf, p->wte, NULL, B, T, C, Vp);
    model->distilled = targets != NULL && model->teacher != NULL && model->distill_on;
    if (model->distilled) {
        // the teacher on the same tokens (k = 0: distillation refuses soft prompts), then the
        // mixed loss per position (no probabilities needed: the backward works from the logits)
        GPT2* teacher = (GPT2*)model->teacher;
        gpt2_forward(teacher, inputs, NULL, NULL, B, T);
        distill_forward(a->losses, model->distill_kl, a->logits, teacher->acts.logits, model->targets, model->distill_alpha,
                        model->distill_tau, model->distill_reverse, B * T, V, Vp);
    } else if (targets != NULL) {
        softmax_forward(a->probs, a->logits, B, T, V, Vp);
        crossentropy_forward(a->losses, a->probs, model->targets, B, T, Vp);
    }
    if (targets != NULL) {
        double sum = 0.0, wsum = 0.0;
        if (model->has_weights) {
            for (int i = 0; i < B * T; i++) { sum += (double)model->weights[i] * a->losses[i]; wsum += model->weights[i]; }
        } else {
            for (int i = 0; i < B * T; i++) { sum += a->losses[i]; }
            wsum = (double)B * T;
        }
        model->loss_sum += sum;
        model->weight_sum += wsum;
        model->mean_loss = wsum > 0 ? (float)(sum / wsum) : 0.0f;
    } else {
        model->mean_loss = -1.0f;
    }
}

static void gpt2_zero_grad(GPT2* model) {
    memset(model->grads_memory, 0, model->num_trainable * sizeof(float));
}

// Backward pass of the last forward (which must have had targets). Adds into the gradients of
// the trainable parameters the gradient of dloss * sum over positions of w * loss: dloss is
// the weight of a unit-weight position in the step's loss (1 / (B*T) for the mean over this
// batch, 1 / sum(w) for its weighted mean; the training loop passes 1 / tokens per step).
static void gpt2_backward(GPT2* model, float dloss) {
    if (!model->has_targets) { die("gpt2_backward needs a forward pass with targets"); }
    GPT2Config* cfg = &model->config;
    int B = model->batch_B, T = model->batch_T;
    int V = cfg->vocab_size, Vp = cfg->padded_vocab_size, L = cfg->num_layers;
    int NH = cfg->num_heads, C = cfg->channels;
    int k = model->prompt_len;
    ParameterTensors* p = &model->params;
    ParameterTensors* g = &model->grads;
    PeftTensors* pp = &model->pp;
    PeftTensors* pg = &model->pg;
    ActivationTensors* a = &model->acts;
    GradientScratch* s = &model->scratch;
    size_t layer_btc = (size_t)model->B * model->T * C;
    size_t layer_bt = (size_t)model->B * model->T;
    size_t layer_att = (size_t)model->B * NH * model->T * model->T;
    size_t N = (size_t)B * T * C;
    int BT = B * T;
    int r = model->peft.pc.lora_rank, m = model->peft.pc.adapter_size;
    float ls = model->peft.pc.method == PEFT_LORA ? model->peft.pc.lora_alpha / r : 0.0f;
    size_t layer_btr = layer_bt * (size_t)r, layer_btm = layer_bt * (size_t)m;

    float* dlogits = a->logits;
    if (model->distilled) {
        dlogits = a->probs;  // distill_backward reads the logits: the probabilities' buffer (unused then) takes dlogits
        distill_backward(dlogits, a->logits, ((GPT2*)model->teacher)->acts.logits, model->targets,
                         model->has_weights ? model->weights : NULL, dloss, model->distill_alpha, model->distill_tau,
                         model->distill_reverse, B * T, V, Vp);
    } else {
        crossentropy_softmax_backward(dlogits, a->probs, model->targets, model->has_weights ? model->weights : NULL,
                                      dloss, B, T, V, Vp);
    }
    memset(s->dln, 0, N * sizeof(float));
    matmul_backward(s->dln, g->wte, NULL, dlogits, a->lnf, p->wte, B, T, C, Vp);
    memset(s->dresidual, 0, N * sizeof(float));
    const float* top = a->residual3 + (L - 1) * layer_btc;
    layernorm_backward(s->dresidual, g->lnfw, g->lnfb, s->dln, top, p->lnfw, a->lnf_mean, a->lnf_rstd, B, T, C);

    for (int l = L - 1; l >= 0; l--) {
        const float* residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * layer_btc;
        const float* ln1 = a->ln1 + l * layer_btc;
        const float* qkv = a->qkv + l * 3 * layer_btc;
        const float* atty = a->atty + l * layer_btc;
        const float* att = a->att + l * layer_att;
        const float* residual2 = a->residual2 + l * layer_btc;
        const float* ln2 = a->ln2 + l * layer_btc;
        const float* fch = a->fch + l * 4 * layer_btc;
        const float* fch_gelu = a->fch_gelu + l * 4 * layer_btc;
        // a frozen tensor's gradient pointer is NULL: offset it only when it exists
        #define GRAD_AT(ptr, off) ((ptr) != NULL ? (ptr) + (off) : NULL)

        // MLP: dresidual holds d(residual3), which flows on unchanged as part of d(residual2)
        const float* dmlp_out = s->dresidual;  // the gradient of the MLP projection's output
        if (pp->down_w[1]) {
            memset(s->dproj, 0, N * sizeof(float));
            adapter_backward(s->dproj, pg->down_w[1] + (size_t)l * m * C, pg->down_b[1] + (size_t)l * m,
                             pg->up_w[1] + (size_t)l * C * m, pg->up_b[1] + (size_t)l * C, s->adapter_dg, s->adapter_dz,
                             s->dresidual, a->adapter_in[1] + l * layer_btc, a->adapter_z[1] + l * layer_btm,
                             a->adapter_g[1] + l * layer_btm, pp->down_w[1] + (size_t)l * m * C,
                             pp->up_w[1] + (size_t)l * C * m, BT, C, m);
            dmlp_out = s->dproj;
        }
        memset(s->dfch_gelu, 0, 4 * N * sizeof(float));
        matmul_backward(s->dfch_gelu, GRAD_AT(g->fcprojw, (size_t)l * 4 * C * C), GRAD_AT(g->fcprojb, l * C), dmlp_out,
                        fch_gelu, p->fcprojw + (size_t)l * 4 * C * C, B, T, 4 * C, C);
        if (pp->lora_A[3]) {
            lora_backward(s->dfch_gelu, pg->lora_A[3] + (size_t)l * r * 4 * C, pg->lora_B[3] + (size_t)l * C * r, s->lora_dh,
                          dmlp_out, fch_gelu, a->lora_h[3] + l * layer_btr, pp->lora_A[3] + (size_t)l * r * 4 * C,
                          pp->lora_B[3] + (size_t)l * C * r, ls, BT, 4 * C, C, r);
        }
        memset(s->dfch, 0, 4 * N * sizeof(float));
        gelu_backward(s->dfch, fch, s->dfch_gelu, 4 * N);
        memset(s->dln, 0, N * sizeof(float));
        matmul_backward(s->dln, GRAD_AT(g->fcw, (size_t)l * 4 * C * C), GRAD_AT(g->fcb, l * 4 * C), s->dfch,
                        ln2, p->fcw + (size_t)l * 4 * C * C, B, T, C, 4 * C);
        if (pp->lora_A[2]) {
            lora_backward(s->dln, pg->lora_A[2] + (size_t)l * r * C, pg->lora_B[2] + (size_t)l * 4 * C * r, s->lora_dh,
                          s->dfch, ln2, a->lora_h[2] + l * layer_btr, pp->lora_A[2] + (size_t)l * r * C,
                          pp->lora_B[2] + (size_t)l * 4 * C * r, ls, BT, C, 4 * C, r);
        }
        layernorm_backward(s->dresidual, GRAD_AT(g->ln2w, l * C), GRAD_AT(g->ln2b, l * C), s->dln, residual2,
                           p->ln2w + l * C, a->ln2_mean + l * layer_bt, a->ln2_rstd + l * layer_bt, B, T, C);
        // attention: dresidual now holds d(residual2)
        const float* datt_out = s->dresidual;
        if (pp->down_w[0]) {
            memset(s->dproj, 0, N * sizeof(float));
            adapter_backward(s->dproj, pg->down_w[0] + (size_t)l * m * C, pg->down_b[0] + (size_t)l * m,
                             pg->up_w[0] + (size_t)l * C * m, pg->up_b[0] + (size_t)l * C, s->adapter_dg, s->adapter_dz,
                             s->dresidual, a->adapter_in[0] + l * layer_btc, a->adapter_z[0] + l * layer_btm,
                             a->adapter_g[0] + l * layer_btm, pp->down_w[0] + (size_t)l * m * C,
                             pp->up_w[0] + (size_t)l * C * m, BT, C, m);
            datt_out = s->dproj;
        }
        memset(s->datty, 0, N * sizeof(float));
        matmul_backward(s->datty, GRAD_AT(g->attprojw, (size_t)l * C * C), GRAD_AT(g->attprojb, l * C), datt_out,
                        atty, p->attprojw + (size_t)l * C * C, B, T, C, C);
        if (pp->lora_A[1]) {
            lora_backward(s->datty, pg->lora_A[1] + (size_t)l * r * C, pg->lora_B[1] + (size_t)l * C * r, s->lora_dh,
                          datt_out, atty, a->lora_h[1] + l * layer_btr, pp->lora_A[1] + (size_t)l * r * C,
                          pp->lora_B[1] + (size_t)l * C * r, ls, BT, C, C, r);
        }
        memset(s->dqkv, 0, 3 * N * sizeof(float));
        attention_backward(s->dqkv, s->datty, qkv, att, B, T, C, NH);
        memset(s->dln, 0, N * sizeof(float));
        matmul_backward(s->dln, GRAD_AT(g->qkvw, (size_t)l * 3 * C * C), GRAD_AT(g->qkvb, l * 3 * C), s->dqkv,
                        ln1, p->qkvw + (size_t)l * 3 * C * C, B, T, C, 3 * C);
        if (pp->lora_A[0]) {
            lora_backward(s->dln, pg->lora_A[0] + (size_t)l * r * C, pg->lora_B[0] + (size_t)l * 3 * C * r, s->lora_dh,
                          s->dqkv, ln1, a->lora_h[0] + l * layer_btr, pp->lora_A[0] + (size_t)l * r * C,
                          pp->lora_B[0] + (size_t)l * 3 * C * r, ls, BT, C, 3 * C, r);
        }
        layernorm_backward(s->dresidual, GRAD_AT(g->ln1w, l * C), GRAD_AT(g->ln1b, l * C), s->dln, residual,
                           p->ln1w + l * C, a->ln1_mean + l * layer_bt, a->ln1_rstd + l * layer_bt, B, T, C);
        #undef GRAD_AT
    }
    if (g->wte != NULL) { encoder_backward(g->wte, g->wpe, s->dresidual, model->inputs, B, T, C); }
    if (pg->prompt != NULL) {
        // the soft prompt's gradient: what reached its positions, summed over the batch
        for (int i = 0; i < k; i++) {
            float* dp = pg->prompt + (size_t)i * C;
            for (int b = 0; b < B; b++) {
                const float* d = s->dresidual + ((size_t)b * T + i) * C;
                for (int c = 0; c < C; c++) { dp[c] += d[c]; }
            }
        }
    }
}

// The global L2 norm of all gradients.
static float gpt2_grad_norm(GPT2* model) {
    return (float)sqrt(sum_of_squares(model->grads_memory, model->num_trainable));
}

// One AdamW step over the trainable parameters this process holds moments for ([opt_offset,
// opt_offset + opt_count): all of them, or a ZeRO-1 shard); grads holds their gradients,
// indexed from opt_offset. Weight decay on the weight matrices only. grad_scale multiplies
// the gradients first (clipping). t is the 1-based count of updates, for bias correction.
static void gpt2_update(GPT2* model, const float* grads, float lr, float beta1, float beta2, float eps,
                        float weight_decay, float grad_scale, int t) {
    size_t sizes[PEFT_MAX_TENSORS + NUM_PARAMETER_TENSORS];
    int decays[PEFT_MAX_TENSORS + NUM_PARAMETER_TENSORS];
    int n = gpt2_trainable_tensors(model, sizes, decays);
    size_t lo = model->opt_offset;
    size_t hi = lo + model->opt_count;
    size_t start = 0;
    for (int i = 0; i < n; i++) {
        size_t end = start + sizes[i];
        size_t a = start > lo ? start : lo;  // this tensor's part of the range
        size_t b = end < hi ? end : hi;
        if (a < b) {
            float wd = decays[i] ? weight_decay : 0.0f;
            adamw_update(model->trainable + a, grads + (a - lo), model->m_memory + (a - lo),
                         model->v_memory + (a - lo), b - a, lr, beta1, beta2, eps, wd, grad_scale, t);
        }
        start = end;
    }
}

static void gpt2_free(GPT2* model) {
    free(model->params_memory);
    free(model->peft_memory);
    free(model->grads_memory);
    free(model->m_memory);
    free(model->grad_shard);
    free(model->v_memory);
    free(model->acts_memory);
    free(model->scratch_memory);
    free(model->inputs);
    free(model->targets);
    free(model->weights);
    free(model->distill_kl);
}

// ----------------------------------------------------------------------------
// The model as the shared training loop sees it (llmc/train_loop.h)

static void cpu_allocate(void* self, int B, int T, size_t opt_offset, size_t opt_count) {
    gpt2_allocate((GPT2*)self, B, T, opt_offset, opt_count);
}

static void cpu_forward(void* self, const int* inputs, const int* targets, const float* weights, int B, int T) {
    gpt2_forward((GPT2*)self, inputs, targets, weights, B, T);
}

static void cpu_set_distill(void* self, int on) { ((GPT2*)self)->distill_on = on; }

static double cpu_take_loss_sum(void* self, double* weight_sum) {
    GPT2* model = (GPT2*)self;
    double s = model->loss_sum;
    *weight_sum = model->weight_sum;
    model->loss_sum = 0.0;
    model->weight_sum = 0.0;
    return s;
}

// every row's losses at the given positions (B, T), into out
static void cpu_losses_all(void* self, float* out) {
    GPT2* model = (GPT2*)self;
    int k = model->prompt_len, Tx = model->batch_T, T = Tx - k;
    for (int b = 0; b < model->batch_B; b++) {
        memcpy(out + (size_t)b * T, model->acts.losses + (size_t)b * Tx + k, (size_t)T * sizeof(float));
    }
}

// the loss weights of the last forward's given positions (the prompt's stay 0)
static void cpu_set_weights(void* self, const float* weights) {
    GPT2* model = (GPT2*)self;
    int k = model->prompt_len, Tx = model->batch_T, T = Tx - k;
    for (int b = 0; b < model->batch_B; b++) {
        memcpy(model->weights + (size_t)b * Tx + k, weights + (size_t)b * T, (size_t)T * sizeof(float));
    }
    model->has_weights = 1;
}

static const float* cpu_logits_at(void* self, int t) {
    GPT2* model = (GPT2*)self;
    return model->acts.logits + (size_t)(t + model->prompt_len) * model->config.padded_vocab_size;
}

static void cpu_zero_grad(void* self) { gpt2_zero_grad((GPT2*)self); }

static void cpu_backward(void* self, float dloss) { gpt2_backward((GPT2*)self, dloss); }

// Sums the gradients over processes: all of them (ZeRO-0), or into grad_shard this process's
// shard (ZeRO-1). The norm is summed per shard either way, so both give the same bits.
static double cpu_reduce_gradients(void* self, Comm* comm, int zero1) {
    GPT2* model = (GPT2*)self;
    size_t off, cnt;
    comm_shard(model->num_trainable, comm->world, comm->rank, &off, &cnt);
    if (zero1) {
        comm_reduce_scatter(comm, model->grads_memory, model->grad_shard, model->num_trainable);
        return sum_of_squares(model->grad_shard, cnt);
    }
    comm_allreduce_sum_float(comm, model->grads_memory, model->num_trainable);
    return sum_of_squares(model->grads_memory + off, cnt);
}

static void cpu_update(void* self, Comm* comm, int zero1, float lr, float beta1, float beta2, float eps,
                       float weight_decay, float grad_scale, int t) {
    GPT2* model = (GPT2*)self;
    const float* grads = zero1 ? model->grad_shard : model->grads_memory;
    gpt2_update(model, grads, lr, beta1, beta2, eps, weight_decay, grad_scale, t);
    if (zero1) { comm_allgather(comm, model->trainable, model->num_trainable); }
}

static const float* cpu_params_host(void* self) { return ((GPT2*)self)->trainable; }

static void cpu_moments_host(void* self, float** m, float** v) {
    *m = ((GPT2*)self)->m_memory;
    *v = ((GPT2*)self)->v_memory;
}

static void cpu_moments_loaded(void* self) { (void)self; }  // they are the model's own arrays

#ifndef TESTING
int main(int argc, char** argv) {
    Comm comm;
    comm_init(&comm, &argc, &argv);
    TrainConfig cfg;
    train_config_parse(&cfg, argc, argv,
        "usage: train_gpt [flags]        or: mpirun -np N train_gpt [flags]\n"
        "Trains a GPT-2 on token shards, on the CPU (fp32, OpenMP; threads from OMP_NUM_THREADS;\n"
        "data parallel over MPI processes). Fine-tunes one: fully, or with LoRA, BitFit, adapters or\n"
        "a soft prompt on a frozen base (--peft), on shards with a loss mask (dev/data/sft_prepare).\n"
        "Example: ./train_gpt -e d6 -b 8 -t 256 -x 200 -o log_d6");
    if (strcmp(cfg.init_method, "mpi") != 0) {
        die("-pm %s: the CPU trainer runs its processes over MPI only (fs and tcp rendezvous are for train_gpt.cu)", cfg.init_method);
    }
    if ((cfg.num_processes != -1 && cfg.num_processes != comm.world) || (cfg.process_rank != -1 && cfg.process_rank != comm.rank)) {
        die("-pn %d -pr %d: the launcher started rank %d of %d processes instead", cfg.num_processes,
            cfg.process_rank, comm.rank, comm.world);
    }
    // flags that only the CUDA trainer has: refused rather than ignored
    if (cfg.recompute != 0) { die("-r (--recompute): recomputation is a GPU option (train_gpt_cu); the CPU trainer has none"); }
    if (cfg.gelu_fusion != -1) { die("--gelu-fusion: a GPU option (train_gpt_cu); the CPU trainer has none"); }
    if (cfg.overlap_reduce != -1) { die("--overlap-reduce: a GPU option (train_gpt_cu); the CPU trainer sums the gradients after the backward"); }
    if (cfg.attention[0] != '\0') { die("--attention %s: a GPU option (train_gpt_cu); the CPU trainer has one attention", cfg.attention); }
    char model_path[1100];
    int start_step = train_resume_step(&cfg, &comm, model_path, sizeof(model_path));
    GPT2Config config;
    float* params = train_initial_params(&cfg, start_step, model_path, &config);
    GPT2 model;
    gpt2_build_from_params(&model, &config, params);
    PeftLayout lay;
    uint64_t base_hash = 0;
    float* peft = train_peft_setup(&cfg, start_step, model_path, &config, params, &lay, &base_hash);
    if (peft != NULL) { gpt2_set_peft(&model, &lay, peft); }
    GPT2 teacher;
    if (cfg.distill != NULL) {
        char err[LLMC_ERRLEN];
        GPT2Config tc;
        float* tparams;
        if (checkpoint_read(cfg.distill, &tc, &tparams, err) != 0) { die("--distill: %s", err); }
        gpt2_build_from_params(&teacher, &tc, tparams);
        gpt2_set_teacher(&model, &teacher, cfg.distill_alpha, cfg.distill_tau, cfg.distill_reverse, cfg.distill);
        if (comm.rank == 0) { train_distill_describe(&cfg, &tc, teacher.num_parameters); }
    }

    ModelOps ops;
    memset(&ops, 0, sizeof(ops));
    ops.self = &model;
    ops.config = model.config;
    ops.num_parameters = model.num_parameters;
    ops.num_trainable = model.num_trainable;
    ops.peft = peft != NULL ? &model.peft : NULL;
    ops.base_params = model.params_memory;
    ops.base_hash = base_hash;
    ops.device_name = "CPU";
    ops.allocate = cpu_allocate;
    ops.forward = cpu_forward;
    ops.take_loss_sum = cpu_take_loss_sum;
    ops.losses_all = cpu_losses_all;
    ops.set_distill = cpu_set_distill;
    ops.set_weights = cpu_set_weights;
    ops.logits_at = cpu_logits_at;
    ops.zero_grad = cpu_zero_grad;
    ops.backward = cpu_backward;
    ops.reduce_gradients = cpu_reduce_gradients;
    ops.update = cpu_update;
    ops.params_host = cpu_params_host;
    ops.moments_host = cpu_moments_host;
    ops.moments_loaded = cpu_moments_loaded;
    int rc = train_loop_run(&ops, &cfg, &comm, start_step, start_step > 0 ? model_path : cfg.init_model);
    gpt2_free(&model);
    if (cfg.distill != NULL) { gpt2_free(&teacher); }
    comm_finalize(&comm);
    return rc;
}
#endif
