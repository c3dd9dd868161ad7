/*
GPT-2 training, the CPU reference: fp32, OpenMP, one file.

The model is GPT-2: token + learned position embeddings, L pre-LayerNorm blocks (causal
multi-head self-attention, then a 4x MLP with tanh-GELU), a final LayerNorm and an LM head
tied to the token embedding. The kernels live in llmc/, one operation per header, with the
plain-C version that this file uses first; the CUDA twin sits beside it in the same header.
The host code (checkpoints, data loader, tokenizer, schedule, logger, flags) is shared with
train_gpt.cu, so both programs take the same flags and read and write the same files.

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
#include "llmc/rand.h"
#include "llmc/args.h"
#include "llmc/checkpoint.h"
#include "llmc/dataloader.h"
#include "llmc/tokenizer.h"
#include "llmc/sampler.h"
#include "llmc/schedule.h"
#include "llmc/logger.h"
#include "llmc/guard.h"
#include "llmc/train_state.h"
#include "llmc/hellaswag.h"
#include "llmc/signals.h"
#include "llmc/comm.h"
#include "llmc/encoder.h"
#include "llmc/layernorm.h"
#include "llmc/matmul.h"
#include "llmc/attention.h"
#include "llmc/gelu.h"
#include "llmc/residual.h"
#include "llmc/crossentropy.h"
#include "llmc/adamw.h"

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

static void point_parameters(ParameterTensors* p, float* memory, const size_t sizes[NUM_PARAMETER_TENSORS]) {
    float** ptrs[NUM_PARAMETER_TENSORS] = {
        &p->wte, &p->wpe, &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->attprojw, &p->attprojb,
        &p->ln2w, &p->ln2b, &p->fcw, &p->fcb, &p->fcprojw, &p->fcprojb, &p->lnfw, &p->lnfb
    };
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        *ptrs[i] = memory;
        memory += sizes[i];
    }
}

// Activations kept from the forward pass for the backward pass. Per-layer tensors are
// (L, B, T, ...) with the B and T given to gpt2_allocate; a smaller B or T (sampling) uses
// the front of each layer's slice.
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
} GradientScratch;

typedef struct {
    GPT2Config config;
    size_t param_sizes[NUM_PARAMETER_TENSORS];
    size_t num_parameters;
    float* params_memory;
    ParameterTensors params;
    float* grads_memory;
    ParameterTensors grads;
    size_t opt_offset;        // the parameters whose AdamW moments this process holds: all of
    size_t opt_count;         // them, or one shard under ZeRO-1 (llmc/comm.h)
    float* m_memory;          // AdamW first moments, opt_count floats
    float* v_memory;          // AdamW second moments
    int B, T;                 // the batch shape the buffers below were allocated for (0: none yet)
    float* acts_memory;
    ActivationTensors acts;
    float* scratch_memory;
    GradientScratch scratch;
    int* inputs;              // (B, T) copies of the last forward's inputs and targets
    int* targets;
    int batch_B, batch_T;     // the shape of the last forward
    int has_targets;
    float mean_loss;          // of the last forward with targets
} GPT2;

static void gpt2_init_common(GPT2* model) {
    gpt2_parameter_sizes(model->param_sizes, &model->config);
    model->num_parameters = gpt2_num_parameters(&model->config);
    model->grads_memory = NULL;
    model->m_memory = NULL;
    model->v_memory = NULL;
    model->acts_memory = NULL;
    model->scratch_memory = NULL;
    model->inputs = NULL;
    model->targets = NULL;
    model->B = 0;
    model->T = 0;
    model->has_targets = 0;
    model->mean_loss = -1.0f;
}

// Loads a checkpoint; dies with the loader's message on a bad file.
static void gpt2_build_from_checkpoint(GPT2* model, const char* path) {
    char err[LLMC_ERRLEN];
    if (checkpoint_read(path, &model->config, &model->params_memory, err) != 0) { die("%s", err); }
    gpt2_init_common(model);
    point_parameters(&model->params, model->params_memory, model->param_sizes);
}

// A fresh GPT-2 init: normal(0, 0.02) weights, with the projections that write into the
// residual stream (attprojw, fcprojw) scaled by 1/sqrt(2L); zero biases; LayerNorm weights 1.
// The padded rows of wte (V..Vp) stay zero.
static void gpt2_build_random(GPT2* model, const GPT2Config* config, uint64_t seed) {
    model->config = *config;
    gpt2_init_common(model);
    model->params_memory = float_alloc_check(model->num_parameters, "model parameters");
    point_parameters(&model->params, model->params_memory, model->param_sizes);
    Rng rng;
    rng_init(&rng, seed);
    int C = config->channels;
    int L = config->num_layers;
    float std = 0.02f;
    float proj_std = 0.02f / sqrtf(2.0f * L);
    ParameterTensors* p = &model->params;
    rng_normal(&rng, p->wte, (size_t)config->vocab_size * C, 0.0f, std);
    rng_normal(&rng, p->wpe, model->param_sizes[1], 0.0f, std);
    rng_normal(&rng, p->qkvw, model->param_sizes[4], 0.0f, std);
    rng_normal(&rng, p->attprojw, model->param_sizes[6], 0.0f, proj_std);
    rng_normal(&rng, p->fcw, model->param_sizes[10], 0.0f, std);
    rng_normal(&rng, p->fcprojw, model->param_sizes[12], 0.0f, proj_std);
    for (size_t i = 0; i < model->param_sizes[2]; i++) { p->ln1w[i] = 1.0f; }
    for (size_t i = 0; i < model->param_sizes[8]; i++) { p->ln2w[i] = 1.0f; }
    for (size_t i = 0; i < model->param_sizes[14]; i++) { p->lnfw[i] = 1.0f; }
}

// Allocates, once and up front, everything a training step at (B, T) needs, with the AdamW
// moments of the parameters [opt_offset, opt_offset + opt_count).
static void gpt2_allocate(GPT2* model, int B, int T, size_t opt_offset, size_t opt_count) {
    if (model->acts_memory != NULL) { die("gpt2_allocate called twice"); }
    GPT2Config* c = &model->config;
    if (T > c->max_seq_len) { die("-t: sequence length %d exceeds the model's maxT %d", T, c->max_seq_len); }
    size_t L = c->num_layers, C = c->channels, NH = c->num_heads, Vp = c->padded_vocab_size;
    size_t BT = (size_t)B * T;
    size_t sizes[21] = {
        BT * C, L * BT * C, L * BT, L * BT, L * BT * 3 * C, L * BT * C, L * B * NH * T * T,
        L * BT * C, L * BT * C, L * BT, L * BT, L * BT * 4 * C, L * BT * 4 * C, L * BT * C,
        BT * C, BT, BT, BT * Vp, BT * Vp, BT, BT * C
    };
    float** ptrs[21] = {
        &model->acts.encoded, &model->acts.ln1, &model->acts.ln1_mean, &model->acts.ln1_rstd,
        &model->acts.qkv, &model->acts.atty, &model->acts.att, &model->acts.residual2,
        &model->acts.ln2, &model->acts.ln2_mean, &model->acts.ln2_rstd, &model->acts.fch,
        &model->acts.fch_gelu, &model->acts.residual3, &model->acts.lnf, &model->acts.lnf_mean,
        &model->acts.lnf_rstd, &model->acts.logits, &model->acts.probs, &model->acts.losses,
        &model->acts.proj
    };
    size_t total = 0;
    for (int i = 0; i < 21; i++) { total += (sizes[i] + 15) & ~(size_t)15; }  // 64-byte aligned starts
    model->acts_memory = float_alloc_check(total, "activations");
    float* m = model->acts_memory;
    for (int i = 0; i < 21; i++) { *ptrs[i] = m; m += (sizes[i] + 15) & ~(size_t)15; }

    size_t ssizes[6] = { BT * C, BT * C, BT * C, BT * 3 * C, BT * 4 * C, BT * 4 * C };
    float** sptrs[6] = {
        &model->scratch.dresidual, &model->scratch.dln, &model->scratch.datty,
        &model->scratch.dqkv, &model->scratch.dfch, &model->scratch.dfch_gelu
    };
    total = 0;
    for (int i = 0; i < 6; i++) { total += (ssizes[i] + 15) & ~(size_t)15; }
    model->scratch_memory = float_alloc_check(total, "gradient scratch");
    m = model->scratch_memory;
    for (int i = 0; i < 6; i++) { *sptrs[i] = m; m += (ssizes[i] + 15) & ~(size_t)15; }

    model->grads_memory = float_alloc_check(model->num_parameters, "gradients");
    point_parameters(&model->grads, model->grads_memory, model->param_sizes);
    if (opt_offset + opt_count > model->num_parameters) { die("gpt2_allocate: optimizer range out of bounds"); }
    model->opt_offset = opt_offset;
    model->opt_count = opt_count;
    model->m_memory = float_alloc_check(opt_count, "AdamW m");
    model->v_memory = float_alloc_check(opt_count, "AdamW v");
    model->inputs = (int*)calloc_check(BT, sizeof(int), "inputs");
    model->targets = (int*)calloc_check(BT, sizeof(int), "targets");
    model->B = B;
    model->T = T;
}

// Forward pass on inputs (B, T); with targets (B, T) it also computes the mean loss.
// B and T may be smaller than the allocated shape (sampling runs with B = 1).
static void gpt2_forward(GPT2* model, const int* inputs, const int* targets, int B, int T) {
    if (model->acts_memory == NULL) { die("gpt2_forward before gpt2_allocate"); }
    if (B > model->B || T > model->T) { die("batch %dx%d exceeds the allocated %dx%d", B, T, model->B, model->T); }
    GPT2Config* cfg = &model->config;
    int V = cfg->vocab_size, Vp = cfg->padded_vocab_size, L = cfg->num_layers;
    int NH = cfg->num_heads, C = cfg->channels;
    for (int i = 0; i < B * T; i++) {
        if (inputs[i] < 0 || inputs[i] >= V) { die("input token %d at position %d is outside the vocabulary (V=%d)", inputs[i], i, V); }
        if (targets != NULL && (targets[i] < 0 || targets[i] >= V)) { die("target token %d at position %d is outside the vocabulary (V=%d)", targets[i], i, V); }
    }
    memcpy(model->inputs, inputs, (size_t)B * T * sizeof(int));
    if (targets != NULL) { memcpy(model->targets, targets, (size_t)B * T * sizeof(int)); }
    model->batch_B = B;
    model->batch_T = T;
    model->has_targets = targets != NULL;

    ParameterTensors* p = &model->params;
    ActivationTensors* a = &model->acts;
    size_t layer_btc = (size_t)model->B * model->T * C;  // per-layer strides use the allocated shape
    size_t layer_bt = (size_t)model->B * model->T;
    size_t layer_att = (size_t)model->B * NH * model->T * model->T;
    size_t N = (size_t)B * T * C;

    encoder_forward(a->encoded, inputs, p->wte, p->wpe, B, T, C);
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
        attention_forward(atty, att, qkv, B, T, C, NH);
        matmul_forward(a->proj, atty, p->attprojw + (size_t)l * C * C, p->attprojb + l * C, B, T, C, C);
        residual_forward(residual2, residual, a->proj, N);
        layernorm_forward(ln2, a->ln2_mean + l * layer_bt, a->ln2_rstd + l * layer_bt, residual2,
                          p->ln2w + l * C, p->ln2b + l * C, B, T, C);
        matmul_forward(fch, ln2, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, B, T, C, 4 * C);
        gelu_forward(fch_gelu, fch, 4 * N);
        matmul_forward(a->proj, fch_gelu, p->fcprojw + (size_t)l * 4 * C * C, p->fcprojb + l * C, B, T, 4 * C, C);
        residual_forward(residual3, residual2, a->proj, N);
    }
    const float* top = a->residual3 + (L - 1) * layer_btc;
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, top, p->lnfw, p->lnfb, B, T, C);
    matmul_forward(a->logits, a->lnf, p->wte, NULL, B, T, C, Vp);
    if (targets != NULL) {
        softmax_forward(a->probs, a->logits, B, T, V, Vp);
        crossentropy_forward(a->losses, a->probs, targets, B, T, Vp);
        double sum = 0.0;
        for (int i = 0; i < B * T; i++) { sum += a->losses[i]; }
        model->mean_loss = (float)(sum / (B * T));
    } else {
        model->mean_loss = -1.0f;
    }
}

static void gpt2_zero_grad(GPT2* model) {
    memset(model->grads_memory, 0, model->num_parameters * sizeof(float));
}

// Backward pass of the last forward (which must have had targets). Adds into the parameter
// gradients; loss_scale is the weight of this micro-batch in the step's loss (1 / accumulation
// steps), so accumulated gradients are those of the mean loss over the whole step.
static void gpt2_backward(GPT2* model, float loss_scale) {
    if (!model->has_targets) { die("gpt2_backward needs a forward pass with targets"); }
    GPT2Config* cfg = &model->config;
    int B = model->batch_B, T = model->batch_T;
    int V = cfg->vocab_size, Vp = cfg->padded_vocab_size, L = cfg->num_layers;
    int NH = cfg->num_heads, C = cfg->channels;
    ParameterTensors* p = &model->params;
    ParameterTensors* g = &model->grads;
    ActivationTensors* a = &model->acts;
    GradientScratch* s = &model->scratch;
    size_t layer_btc = (size_t)model->B * model->T * C;
    size_t layer_bt = (size_t)model->B * model->T;
    size_t layer_att = (size_t)model->B * NH * model->T * model->T;
    size_t N = (size_t)B * T * C;

    float dloss = loss_scale / (B * T);  // d(mean loss) / d(loss at one position)
    float* dlogits = a->logits;
    crossentropy_softmax_backward(dlogits, a->probs, model->targets, dloss, B, T, V, Vp);
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

        // MLP: dresidual holds d(residual3), which flows on unchanged as part of d(residual2)
        memset(s->dfch_gelu, 0, 4 * N * sizeof(float));
        matmul_backward(s->dfch_gelu, g->fcprojw + (size_t)l * 4 * C * C, g->fcprojb + l * C, s->dresidual,
                        fch_gelu, p->fcprojw + (size_t)l * 4 * C * C, B, T, 4 * C, C);
        memset(s->dfch, 0, 4 * N * sizeof(float));
        gelu_backward(s->dfch, fch, s->dfch_gelu, 4 * N);
        memset(s->dln, 0, N * sizeof(float));
        matmul_backward(s->dln, g->fcw + (size_t)l * 4 * C * C, g->fcb + l * 4 * C, s->dfch,
                        ln2, p->fcw + (size_t)l * 4 * C * C, B, T, C, 4 * C);
        layernorm_backward(s->dresidual, g->ln2w + l * C, g->ln2b + l * C, s->dln, residual2,
                           p->ln2w + l * C, a->ln2_mean + l * layer_bt, a->ln2_rstd + l * layer_bt, B, T, C);
        // attention: dresidual now holds d(residual2)
        memset(s->datty, 0, N * sizeof(float));
        matmul_backward(s->datty, g->attprojw + (size_t)l * C * C, g->attprojb + l * C, s->dresidual,
                        atty, p->attprojw + (size_t)l * C * C, B, T, C, C);
        memset(s->dqkv, 0, 3 * N * sizeof(float));
        attention_backward(s->dqkv, s->datty, qkv, att, B, T, C, NH);
        memset(s->dln, 0, N * sizeof(float));
        matmul_backward(s->dln, g->qkvw + (size_t)l * 3 * C * C, g->qkvb + l * 3 * C, s->dqkv,
                        ln1, p->qkvw + (size_t)l * 3 * C * C, B, T, C, 3 * C);
        layernorm_backward(s->dresidual, g->ln1w + l * C, g->ln1b + l * C, s->dln, residual,
                           p->ln1w + l * C, a->ln1_mean + l * layer_bt, a->ln1_rstd + l * layer_bt, B, T, C);
    }
    encoder_backward(g->wte, g->wpe, s->dresidual, model->inputs, B, T, C);
}

// The global L2 norm of all gradients.
static float gpt2_grad_norm(GPT2* model) {
    return (float)sqrt(sum_of_squares(model->grads_memory, model->num_parameters));
}

// One AdamW step over the parameters this process holds moments for ([opt_offset,
// opt_offset + opt_count): all of them, or a ZeRO-1 shard); grads holds their gradients,
// indexed from opt_offset. Weight decay on the weight matrices only. grad_scale multiplies
// the gradients first (clipping). t is the 1-based count of updates, for bias correction.
static void gpt2_update(GPT2* model, const float* grads, float lr, float beta1, float beta2, float eps,
                        float weight_decay, float grad_scale, int t) {
    size_t lo = model->opt_offset;
    size_t hi = lo + model->opt_count;
    size_t start = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        size_t end = start + model->param_sizes[i];
        size_t a = start > lo ? start : lo;  // this tensor's part of the range
        size_t b = end < hi ? end : hi;
        if (a < b) {
            float wd = PARAMETER_DECAYS[i] ? weight_decay : 0.0f;
            adamw_update(model->params_memory + a, grads + (a - lo), model->m_memory + (a - lo),
                         model->v_memory + (a - lo), b - a, lr, beta1, beta2, eps, wd, grad_scale, t);
        }
        start = end;
    }
}

static void gpt2_free(GPT2* model) {
    free(model->params_memory);
    free(model->grads_memory);
    free(model->m_memory);
    free(model->v_memory);
    free(model->acts_memory);
    free(model->scratch_memory);
    free(model->inputs);
    free(model->targets);
}

// FLOPs of one training step per token: 6 per parameter that multiplies an activation (all but
// wpe; wte counts once, as the LM head), plus attention's QK^T and att @ V: 2 matmuls of
// 2 * T * C FLOPs per token each, forward and backward (x3), halved by the causal mask.
static double gpt2_flops_per_token(const GPT2Config* cfg, int T) {
    double n = (double)gpt2_num_parameters(cfg) - (double)cfg->max_seq_len * cfg->channels;
    return 6.0 * n + 6.0 * cfg->num_layers * (double)cfg->channels * T;
}

// ----------------------------------------------------------------------------
// Training program

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void format_duration(char* buf, size_t n, double seconds) {
    long s = (long)(seconds + 0.5);
    if (s >= 3600) { snprintf(buf, n, "%ldh%02ldm", s / 3600, (s % 3600) / 60); }
    else if (s >= 60) { snprintf(buf, n, "%ldm%02lds", s / 60, s % 60); }
    else { snprintf(buf, n, "%lds", s); }
}

// Mean loss over num_batches batches of the val loader, from its start. With several
// processes each evaluates its own batches (the loader splits them) and the means are averaged.
static float evaluate(GPT2* model, DataLoader* val, int num_batches, Comm* comm) {
    char err[LLMC_ERRLEN];
    dataloader_reset(val, 0);
    double sum = 0.0;
    for (int i = 0; i < num_batches; i++) {
        if (dataloader_next(val, err) != 0) { die("%s", err); }
        gpt2_forward(model, val->inputs, val->targets, val->B, val->T);
        sum += model->mean_loss;
        comm_heartbeat(comm, "evaluating the val loss");
    }
    return (float)(comm_allreduce_sum_double(comm, sum / num_batches) / comm->world);
}

// HellaSwag accuracy over the first n examples (llmc/hellaswag.h): each ending is scored by
// its mean loss given the context, at B = 1 over that sequence's own length. Process r takes
// examples r, r + world, ...
static float evaluate_hellaswag(GPT2* model, const HellaSwag* hs, int n, int* seq, Comm* comm) {
    int correct = 0;
    for (int i = comm->rank; i < n; i += comm->world) {
        const HellaSwagExample* ex = &hs->examples[i];
        int best = 0;
        double best_loss = INFINITY;
        for (int j = 0; j < 4; j++) {
            int first;
            int len = hellaswag_sequence(ex, j, seq, model->T + 1, &first);
            gpt2_forward(model, seq, seq + 1, 1, len - 1);
            double sum = 0.0;
            for (int p = first; p < len - 1; p++) { sum += model->acts.losses[p]; }
            double mean = sum / (len - 1 - first);
            if (mean < best_loss) { best_loss = mean; best = j; }
        }
        correct += best == ex->label;
        comm_heartbeat(comm, "evaluating HellaSwag");
    }
    return (float)(comm_allreduce_sum_double(comm, correct) / n);
}

// Generates gen_tokens tokens after an end-of-text token and prints them. Runs the model at
// B = 1 over the growing context (the last T tokens once it is longer than T).
static void sample_and_print(GPT2* model, const Tokenizer* tok, int have_tokenizer, int gen_tokens,
                             float temperature, Rng* rng, int* buf) {
    int T = model->T;
    int V = model->config.vocab_size;
    int Vp = model->config.padded_vocab_size;
    int eot = have_tokenizer ? tok->eot_token : V - 1;
    buf[0] = eot;
    int len = 1;
    printf("---\n");
    for (int i = 0; i < gen_tokens; i++) {
        int start = len > T ? len - T : 0;
        int t = len - start;
        gpt2_forward(model, buf + start, NULL, 1, t);
        const float* logits = model->acts.logits + (size_t)(t - 1) * Vp;
        int next = sample_from_logits(logits, V, temperature, rng_f32(rng));
        buf[len++] = next;
        if (have_tokenizer) { tokenizer_print(tok, next, stdout); } else { printf("%d ", next); }
        fflush(stdout);
    }
    printf("\n---\n");
}

// Everything a training-state file holds, gathered from the running program. This process
// writes the moments of its shard of the parameters (comm_shard), whatever the ZeRO stage, so
// checkpoints look the same under ZeRO-0 and ZeRO-1 and can be resumed on another world size.
static TrainStateHeader make_state_header(const GPT2* model, const TrainConfig* cfg, const Comm* comm,
                                          int total_batch, int step, const DataLoader* loader,
                                          const Rng* sample_rng, const SpikeGuard* guard, long long skipped) {
    TrainStateHeader h;
    memset(&h, 0, sizeof(h));
    h.magic = STATE_MAGIC;
    h.version = STATE_VERSION;
    h.step = step;
    h.num_parameters = (int64_t)model->num_parameters;
    size_t off, cnt;
    comm_shard(model->num_parameters, comm->world, comm->rank, &off, &cnt);
    h.shard_offset = (int64_t)off;
    h.shard_count = (int64_t)cnt;
    h.process_rank = comm->rank;
    h.num_processes = comm->world;
    h.B = cfg->B;
    h.T = cfg->T;
    h.total_batch_size = total_batch;
    if (loader != NULL) {
        h.loader_epoch = loader->epoch;
        h.loader_shard_pos = loader->shard_pos;
        h.loader_seq_pos = loader->seq_pos;
        h.loader_epoch_rng = loader->epoch_rng_state;
    }
    if (sample_rng != NULL) { h.sample_rng = sample_rng->state; }
    h.skipped_steps = skipped;
    if (guard != NULL) {
        h.guard_count = guard->count;
        h.guard_head = guard->head;
        h.guard_bad_in_row = guard->bad_in_row;
        h.guard_window = guard->window;
        memcpy(h.guard_losses, guard->losses, sizeof(h.guard_losses));
        memcpy(h.guard_norms, guard->norms, sizeof(h.guard_norms));
    }
    return h;
}

// A checkpoint at step, by all processes together (see llmc/train_state.h).
static void save_checkpoint(GPT2* model, const TrainConfig* cfg, Comm* comm, int total_batch, int step,
                            const DataLoader* loader, const Rng* sample_rng, const SpikeGuard* guard, long long skipped) {
    TrainStateHeader h = make_state_header(model, cfg, comm, total_batch, step, loader, sample_rng, guard, skipped);
    // this process's shard of the moments, inside what it holds (all of them, or that shard)
    size_t at = (size_t)h.shard_offset - model->opt_offset;
    checkpoint_save_rank(cfg->output_dir, step, &model->config, model->params_memory, &h,
                         model->m_memory + at, model->v_memory + at);
    comm_barrier(comm);
    if (comm->rank == 0) {
        checkpoint_commit(cfg->output_dir, step, cfg->keep_last, cfg->keep_every);
        printf("wrote checkpoint %s/model_%08d.bin\n", cfg->output_dir, step);
    }
}

#ifndef TESTING
int main(int argc, char** argv) {
    Comm comm;
    comm_init(&comm, &argc, &argv);
    TrainConfig cfg;
    train_config_parse(&cfg, argc, argv,
        "usage: train_gpt [flags]        or: mpirun -np N train_gpt [flags]\n"
        "Trains a GPT-2 on token shards, on the CPU (fp32, OpenMP; threads from OMP_NUM_THREADS;\n"
        "data parallel over MPI processes).\n"
        "Example: ./train_gpt -e d6 -b 8 -t 256 -x 200 -o log_d6");
    char err[LLMC_ERRLEN];
    int master = comm.rank == 0;  // prints, logs and writes the model
    if (strcmp(cfg.init_method, "mpi") != 0) {
        die("-pm %s: the CPU trainer runs its processes over MPI only (fs and tcp rendezvous are for train_gpt.cu)", cfg.init_method);
    }
    if ((cfg.num_processes != -1 && cfg.num_processes != comm.world) || (cfg.process_rank != -1 && cfg.process_rank != comm.rank)) {
        die("-pn/-pr: given as %d/%d but the launcher started rank %d of %d processes", cfg.process_rank,
            cfg.num_processes, comm.rank, comm.world);
    }
    if (cfg.resume && cfg.output_dir == NULL) { die("-y: resuming needs the output directory -o"); }
    if (!master) { cfg.sample_every = 0; }

    // resume: the latest complete checkpoint in the output directory, if there is one; rank
    // 0 decides, so every process resumes from the same step
    int start_step = 0;
    char model_path[1100];
    if (cfg.resume) {
        if (master) {
            ensure_dir(cfg.output_dir);
            remove_stale_temp_files(cfg.output_dir);
            start_step = latest_checkpoint(cfg.output_dir);
        }
        comm_broadcast_int(&comm, &start_step);
        if (start_step < 0) {
            if (master) { printf("resume: no complete checkpoint in %s, starting from -e %s\n", cfg.output_dir, cfg.init_model); }
            start_step = 0;
        } else {
            checkpoint_paths(cfg.output_dir, start_step, 0, model_path, NULL, NULL, sizeof(model_path));
            if (master) { printf("resume: from step %d (%s)\n", start_step, model_path); }
        }
    }

    // the model: a checkpoint file, or a preset for a fresh random init (the same seed on
    // every process, so all start from the same weights)
    GPT2 model;
    GPT2Config preset;
    if (start_step > 0) {
        gpt2_build_from_checkpoint(&model, model_path);
    } else if (access(cfg.init_model, F_OK) == 0) {
        gpt2_build_from_checkpoint(&model, cfg.init_model);
    } else if (gpt2_config_from_preset(cfg.init_model, &preset, err) == 0) {
        gpt2_build_random(&model, &preset, (uint64_t)cfg.seed);
    } else {
        die("-e: '%s' is neither an existing checkpoint file nor a model preset like d12", cfg.init_model);
    }
    GPT2Config* mc = &model.config;
    if (cfg.T > mc->max_seq_len) { die("-t: sequence length %d exceeds the model's maxT %d", cfg.T, mc->max_seq_len); }

    // data: every step takes total_batch tokens, B*T per process per micro-step
    int B = cfg.B, T = cfg.T;
    int tokens_per_micro = B * T * comm.world;
    int total_batch = cfg.total_batch_size == -1 ? tokens_per_micro : cfg.total_batch_size;
    if (total_batch % tokens_per_micro != 0) {
        die("-d: total batch size %d is not a multiple of B*T*processes = %d*%d*%d = %d", total_batch, B, T,
            comm.world, tokens_per_micro);
    }
    int grad_accum_steps = total_batch / tokens_per_micro;
    DataLoader train_loader, val_loader;
    int have_train = !cfg.eval_only;
    if (have_train && dataloader_init(&train_loader, cfg.train_data, B, T, mc->vocab_size, comm.rank, comm.world,
                                      !cfg.no_shuffle, (uint64_t)cfg.seed, err) != 0) {
        die("-i: %s", err);
    }
    int have_val = 0;
    int val_batches = 0;
    if (cfg.val_every > 0 || cfg.eval_only) {
        if (dataloader_init(&val_loader, cfg.val_data, B, T, mc->vocab_size, comm.rank, comm.world, 0, 0, err) != 0) {
            die("-j: %s", err);
        }
        have_val = 1;
        long available = val_loader.total_seqs / ((long)B * comm.world);
        val_batches = cfg.val_max_steps < available ? cfg.val_max_steps : (int)available;
    }
    HellaSwag hellaswag;
    int hellaswag_n = 0;
    if (cfg.hellaswag_every > 0) {
        if (hellaswag_load(&hellaswag, cfg.hellaswag, mc->vocab_size, err) != 0) { die("--hellaswag: %s", err); }
        hellaswag_n = cfg.hellaswag_examples < 0 || cfg.hellaswag_examples > hellaswag.num_examples
                      ? hellaswag.num_examples : cfg.hellaswag_examples;
    }
    long steps_per_epoch = 1;
    if (have_train) {
        steps_per_epoch = train_loader.total_seqs / ((long)B * comm.world * grad_accum_steps);
        if (steps_per_epoch <= 0) {
            die("-d: one step needs %d sequences, the train data has %ld", B * comm.world * grad_accum_steps, train_loader.total_seqs);
        }
    }
    int max_steps = cfg.eval_only ? 0 : (cfg.max_steps >= 0 ? cfg.max_steps : (int)steps_per_epoch);
    if (start_step > max_steps) { die("-x: the run is already at step %d, past -x %d", start_step, max_steps); }

    Tokenizer tokenizer;
    int have_tokenizer = 0;
    if (cfg.sample_every > 0 && !cfg.eval_only) {
        if (tokenizer_init(&tokenizer, cfg.tokenizer, err) == 0) {
            have_tokenizer = 1;
            if (tokenizer.vocab_size != mc->vocab_size) {
                die("--tokenizer: %s has %d tokens but the model's vocabulary has %d", cfg.tokenizer, tokenizer.vocab_size, mc->vocab_size);
            }
        } else {
            printf("warning: %s\nwarning: samples will be printed as token ids\n", err);
        }
    }

    LRSchedule schedule;
    lr_schedule_parse(cfg.lr_schedule, &schedule.type);
    schedule.max_lr = cfg.learning_rate;
    schedule.warmup_steps = cfg.warmup_steps;
    schedule.total_steps = max_steps;
    schedule.final_frac = cfg.final_lr_frac;
    schedule.decay_frac = cfg.wsd_decay_frac;

    // everything is allocated here, before the first step. Under ZeRO-1 this process holds
    // the AdamW moments of its shard only, and receives the summed gradients of that shard.
    size_t shard_offset, shard_count;
    comm_shard(model.num_parameters, comm.world, comm.rank, &shard_offset, &shard_count);
    int zero1 = cfg.zero_stage == 1 && comm.world > 1;
    if (zero1) {
        gpt2_allocate(&model, B, T, shard_offset, shard_count);
    } else {
        gpt2_allocate(&model, B, T, 0, model.num_parameters);
    }
    float* grad_shard = zero1 ? float_alloc_check(shard_count, "gradient shard") : NULL;
    int* gen_buf = (int*)calloc_check(cfg.gen_tokens + 1, sizeof(int), "sample buffer");
    int* eval_buf = (int*)calloc_check(T + 1, sizeof(int), "eval buffer");
    Rng sample_rng;
    rng_init(&sample_rng, (uint64_t)cfg.seed + 1);
    SpikeGuard guard;
    guard_init(&guard, cfg.guard_window, cfg.guard_loss_z, cfg.guard_norm_z, cfg.guard_max_bad);
    long long skipped_total = 0;

    if (start_step > 0) {
        TrainStateHeader expected = make_state_header(&model, &cfg, &comm, total_batch, start_step, NULL, NULL, NULL, 0);
        TrainStateHeader h;
        if (train_state_load(cfg.output_dir, start_step, model.opt_offset, model.opt_count, &expected, &h,
                             model.m_memory, model.v_memory, err) != 0) {
            die("-y: %s", err);
        }
        if (h.num_processes != comm.world && master) {
            printf("resume: the checkpoint was written by %lld processes, continuing with %d\n", (long long)h.num_processes, comm.world);
        }
        if (dataloader_restore(&train_loader, (int)h.loader_epoch, h.loader_epoch_rng, (int)h.loader_shard_pos,
                               (long)h.loader_seq_pos, err) != 0) {
            die("-y: step %d: %s (is -i the same data?)", start_step, err);
        }
        sample_rng.state = h.sample_rng;
        skipped_total = h.skipped_steps;
        guard.window = (int)h.guard_window;
        guard.count = (int)h.guard_count;
        guard.head = (int)h.guard_head;
        guard.bad_in_row = (int)h.guard_bad_in_row;
        memcpy(guard.losses, h.guard_losses, sizeof(guard.losses));
        memcpy(guard.norms, h.guard_norms, sizeof(guard.norms));
    }

    Logger logger;
    if (cfg.output_dir != NULL && master) { ensure_dir(cfg.output_dir); }
    comm_barrier(&comm);  // the directory exists before any process writes into it
    logger_init(&logger, master ? cfg.output_dir : NULL, cfg.resume ? start_step : -1);
    install_stop_handlers();
    comm_start_watchdog(&comm, cfg.timeout);

    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    double flops_per_token = gpt2_flops_per_token(mc, T);
    double flops_per_step = flops_per_token * total_batch;
    if (master) {
        printf("model: L=%d C=%d NH=%d V=%d Vp=%d maxT=%d, %.2fM parameters (%s)\n", mc->num_layers, mc->channels,
               mc->num_heads, mc->vocab_size, mc->padded_vocab_size, mc->max_seq_len, model.num_parameters / 1e6,
               start_step > 0 ? model_path : cfg.init_model);
        if (have_train) {
            printf("train: %s, %ld sequences of T=%d, %s\n", cfg.train_data, train_loader.total_seqs, T,
                   cfg.no_shuffle ? "in order" : "shuffled");
        }
        if (have_val) { printf("val: %s, %d batches per evaluation\n", cfg.val_data, val_batches); }
        if (hellaswag_n > 0) { printf("hellaswag: %s, %d examples every %d steps\n", cfg.hellaswag, hellaswag_n, cfg.hellaswag_every); }
        printf("batch: B=%d T=%d x %d processes, %d tokens per step (%d accumulation steps), %d steps (%.2f epochs)\n",
               B, T, comm.world, total_batch, grad_accum_steps, max_steps, (double)max_steps / steps_per_epoch);
        printf("optimizer: AdamW lr=%g (%s, warmup %d, final x%g) betas=(%g, %g) eps=%g wd=%g clip=%g%s\n",
               cfg.learning_rate, cfg.lr_schedule, cfg.warmup_steps, cfg.final_lr_frac, cfg.beta1, cfg.beta2,
               cfg.eps, cfg.weight_decay, cfg.grad_clip, zero1 ? ", ZeRO-1" : "");
        printf("processes: %d x %d threads, seed: %d, output: %s\n", comm.world, threads, cfg.seed,
               cfg.output_dir ? cfg.output_dir : "(none)");
    }

    double train_seconds = 0.0;
    int timed_steps = 0;
    int exit_code = 0;
    for (int step = start_step; step <= max_steps; step++) {
        int last = step == max_steps;
        double tokens_so_far = (double)step * total_batch;
        comm_heartbeat(&comm, "between steps");
        // a resumed run has already done the evaluations and checkpoint of its first step
        int resumed_here = step == start_step && start_step > 0;
        if (!resumed_here) {
            if (have_val && (cfg.eval_only || step % cfg.val_every == 0 || last)) {
                float val_loss = evaluate(&model, &val_loader, val_batches, &comm);
                if (master) { printf("step %d: val loss %.6f (perplexity %.2f)\n", step, val_loss, expf(val_loss)); }
                logger_log_eval(&logger, step, "val_loss", val_loss, tokens_so_far, tokens_so_far * flops_per_token);
            }
            if (hellaswag_n > 0 && (cfg.eval_only || step % cfg.hellaswag_every == 0 || last)) {
                float acc = evaluate_hellaswag(&model, &hellaswag, hellaswag_n, eval_buf, &comm);
                if (master) { printf("step %d: HellaSwag accuracy %.4f (%d examples)\n", step, acc, hellaswag_n); }
                logger_log_eval(&logger, step, "hellaswag", acc, tokens_so_far, tokens_so_far * flops_per_token);
            }
            if (cfg.sample_every > 0 && step > 0 && (step % cfg.sample_every == 0 || last)) {
                sample_and_print(&model, &tokenizer, have_tokenizer, cfg.gen_tokens, cfg.temperature, &sample_rng, gen_buf);
            }
        }
        // a signal reaches the processes at different moments: they agree on stopping here
        int stop = comm_allreduce_max_int(&comm, stop_signal != 0 ? (int)stop_signal : 0);
        int checkpoint_due = cfg.output_dir != NULL && step > 0 && !resumed_here && !cfg.eval_only &&
                             (last || stop || (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0));
        if (checkpoint_due) {
            comm_heartbeat(&comm, "writing a checkpoint");
            save_checkpoint(&model, &cfg, &comm, total_batch, step, &train_loader, &sample_rng, &guard, skipped_total);
        }
        if (last) { break; }
        if (stop) {
            if (master) {
                printf("stopped by signal %d at step %d%s\n", stop, step,
                       cfg.output_dir ? "; resume with -y 1" : " (no -o: nothing saved)");
            }
            break;
        }
        // crash tests only: kill -9 (or hang) this process at a step, on one rank or all
        const char* test_rank = getenv("LLMC_TEST_RANK");
        if (test_rank == NULL || atoi(test_rank) == comm.rank) {
            const char* crash_at = getenv("LLMC_TEST_KILL_AT_STEP");
            if (crash_at != NULL && atoi(crash_at) == step) { kill(getpid(), SIGKILL); }
            const char* hang_at = getenv("LLMC_TEST_HANG_AT_STEP");
            if (hang_at != NULL && atoi(hang_at) == step) { for (;;) { pause(); } }
        }

        double t0 = now_seconds();
        gpt2_zero_grad(&model);
        double loss_sum = 0.0;
        for (int micro = 0; micro < grad_accum_steps; micro++) {
            if (!(cfg.overfit_batch && step > 0)) {
                if (dataloader_next(&train_loader, err) != 0) { die("%s", err); }
            }
            gpt2_forward(&model, train_loader.inputs, train_loader.targets, B, T);
            // each process's share of the step's mean loss: summed over processes below
            gpt2_backward(&model, 1.0f / (grad_accum_steps * comm.world));
            loss_sum += model.mean_loss;
            comm_heartbeat(&comm, "in a training step");
        }
        float loss = (float)(comm_allreduce_sum_double(&comm, loss_sum / grad_accum_steps) / comm.world);
        // sum the gradients over processes: all of them (ZeRO-0), or this process's shard (ZeRO-1).
        // The norm is summed per shard in both cases, so both give the same bits.
        const float* grads = model.grads_memory;
        if (zero1) {
            comm_reduce_scatter(&comm, model.grads_memory, grad_shard, model.num_parameters);
            grads = grad_shard;
        } else {
            comm_allreduce_sum_float(&comm, model.grads_memory, model.num_parameters);
        }
        const float* my_shard = zero1 ? grad_shard : model.grads_memory + shard_offset;
        float norm = (float)sqrt(comm_allreduce_sum_double(&comm, sum_of_squares(my_shard, shard_count)));
        float lr = lr_at(&schedule, step);
        char why[256];
        int skip = guard_check(&guard, loss, norm, why, sizeof(why));  // the same decision on every process
        if (skip) {
            skipped_total++;
            if (master) { printf("step %d: update skipped: %s (%d in a row)\n", step + 1, why, guard.bad_in_row); }
        } else {
            gpt2_update(&model, grads, lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay,
                        grad_clip_scale(norm, cfg.grad_clip), step + 1 - (int)skipped_total);
            if (zero1) { comm_allgather(&comm, model.params_memory, model.num_parameters); }
        }
        double dt = now_seconds() - t0;
        if (step > start_step) { train_seconds += dt; timed_steps++; }  // the first step warms caches
        double avg = timed_steps > 0 ? train_seconds / timed_steps : dt;
        char eta[32];
        format_duration(eta, sizeof(eta), avg * (max_steps - step - 1));
        if (master) {
            printf("step %4d/%d | loss %.6f | lr %.2e | norm %.4f | %.1f ms | %.0f tok/s | %.1f GFLOP/s | ETA %s%s\n",
                   step + 1, max_steps, loss, lr, norm, dt * 1e3, total_batch / dt, flops_per_step / dt / 1e9, eta,
                   skip ? " | SKIPPED" : "");
            fflush(stdout);
        }
        StepMetrics sm = {
            .step = step + 1, .loss = loss, .lr = lr, .grad_norm = norm, .skipped = skip,
            .skipped_total = skipped_total, .ms = dt * 1e3, .tokens_per_second = total_batch / dt,
            .mfu = cfg.peak_tflops > 0 ? flops_per_step / dt / (cfg.peak_tflops * 1e12) : NAN,
            .tokens = (double)(step + 1) * total_batch, .flops = (double)(step + 1) * flops_per_step,
        };
        logger_log_step(&logger, &sm);
        if (guard.bad_in_row >= guard.max_bad) {
            // the parameters and moments hold no update from a bad step
            if (cfg.output_dir != NULL) {
                save_checkpoint(&model, &cfg, &comm, total_batch, step + 1, &train_loader, &sample_rng, &guard, skipped_total);
            }
            if (master) {
                fprintf(stderr, "error: %d bad steps in a row (last: %s); stopping at step %d%s\n", guard.bad_in_row, why,
                        step + 1, cfg.output_dir ? ", checkpoint written" : "");
            }
            exit_code = 2;
            break;
        }
    }
    if (timed_steps > 0 && master) {
        double avg = train_seconds / timed_steps;
        printf("average step: %.1f ms, %.0f tok/s, %.1f GFLOP/s (%d steps after the first)\n", avg * 1e3, total_batch / avg,
               flops_per_step / avg / 1e9, timed_steps);
    }

    logger_free(&logger);
    free(grad_shard);
    free(gen_buf);
    free(eval_buf);
    if (hellaswag_n > 0) { hellaswag_free(&hellaswag); }
    if (have_tokenizer) { tokenizer_free(&tokenizer); }
    if (have_val) { dataloader_free(&val_loader); }
    if (have_train) { dataloader_free(&train_loader); }
    gpt2_free(&model);
    comm_finalize(&comm);
    return exit_code;
}
#endif
