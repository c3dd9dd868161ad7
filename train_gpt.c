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
    float* grad_shard;        // ZeRO-1: the summed gradients of this process's shard
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
    double loss_sum;          // of mean_loss over forwards, for the training loop (cpu_take_loss_sum)
} GPT2;

static void gpt2_init_common(GPT2* model) {
    gpt2_parameter_sizes(model->param_sizes, &model->config);
    model->num_parameters = gpt2_num_parameters(&model->config);
    model->grads_memory = NULL;
    model->m_memory = NULL;
    model->v_memory = NULL;
    model->grad_shard = NULL;
    model->acts_memory = NULL;
    model->scratch_memory = NULL;
    model->inputs = NULL;
    model->targets = NULL;
    model->B = 0;
    model->T = 0;
    model->has_targets = 0;
    model->mean_loss = -1.0f;
    model->loss_sum = 0.0;
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
    // a shard of the moments means ZeRO-1, whose summed gradients arrive for that shard only
    model->grad_shard = opt_count < model->num_parameters ? float_alloc_check(opt_count, "gradient shard") : NULL;
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
    gpt2_check_tokens(cfg, inputs, targets, B * T);
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
    free(model->grad_shard);
    free(model->v_memory);
    free(model->acts_memory);
    free(model->scratch_memory);
    free(model->inputs);
    free(model->targets);
}

// ----------------------------------------------------------------------------
// The model as the shared training loop sees it (llmc/train_loop.h)

static void cpu_allocate(void* self, int B, int T, size_t opt_offset, size_t opt_count) {
    gpt2_allocate((GPT2*)self, B, T, opt_offset, opt_count);
}

static void cpu_forward(void* self, const int* inputs, const int* targets, int B, int T) {
    GPT2* model = (GPT2*)self;
    gpt2_forward(model, inputs, targets, B, T);
    if (targets != NULL) { model->loss_sum += model->mean_loss; }
}

static double cpu_take_loss_sum(void* self) {
    GPT2* model = (GPT2*)self;
    double s = model->loss_sum;
    model->loss_sum = 0.0;
    return s;
}

static const float* cpu_losses(void* self) { return ((GPT2*)self)->acts.losses; }

static const float* cpu_logits_at(void* self, int t) {
    GPT2* model = (GPT2*)self;
    return model->acts.logits + (size_t)t * model->config.padded_vocab_size;
}

static void cpu_zero_grad(void* self) { gpt2_zero_grad((GPT2*)self); }

static void cpu_backward(void* self, float loss_scale) { gpt2_backward((GPT2*)self, loss_scale); }

// Sums the gradients over processes: all of them (ZeRO-0), or into grad_shard this process's
// shard (ZeRO-1). The norm is summed per shard either way, so both give the same bits.
static double cpu_reduce_gradients(void* self, Comm* comm, int zero1) {
    GPT2* model = (GPT2*)self;
    size_t off, cnt;
    comm_shard(model->num_parameters, comm->world, comm->rank, &off, &cnt);
    if (zero1) {
        comm_reduce_scatter(comm, model->grads_memory, model->grad_shard, model->num_parameters);
        return sum_of_squares(model->grad_shard, cnt);
    }
    comm_allreduce_sum_float(comm, model->grads_memory, model->num_parameters);
    return sum_of_squares(model->grads_memory + off, cnt);
}

static void cpu_update(void* self, Comm* comm, int zero1, float lr, float beta1, float beta2, float eps,
                       float weight_decay, float grad_scale, int t) {
    GPT2* model = (GPT2*)self;
    const float* grads = zero1 ? model->grad_shard : model->grads_memory;
    gpt2_update(model, grads, lr, beta1, beta2, eps, weight_decay, grad_scale, t);
    if (zero1) { comm_allgather(comm, model->params_memory, model->num_parameters); }
}

static const float* cpu_params_host(void* self) { return ((GPT2*)self)->params_memory; }

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
        "data parallel over MPI processes).\n"
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
    if (cfg.gelu_fusion != 0) { die("--gelu-fusion: a GPU option (train_gpt_cu); the CPU trainer has none"); }
    if (cfg.attention[0] != '\0') { die("--attention %s: a GPU option (train_gpt_cu); the CPU trainer has one attention", cfg.attention); }
    char model_path[1100];
    int start_step = train_resume_step(&cfg, &comm, model_path, sizeof(model_path));
    GPT2Config config;
    float* params = train_initial_params(&cfg, start_step, model_path, &config);
    GPT2 model;
    gpt2_build_from_params(&model, &config, params);

    ModelOps ops;
    memset(&ops, 0, sizeof(ops));
    ops.self = &model;
    ops.config = model.config;
    ops.num_parameters = model.num_parameters;
    ops.device_name = "CPU";
    ops.allocate = cpu_allocate;
    ops.forward = cpu_forward;
    ops.take_loss_sum = cpu_take_loss_sum;
    ops.losses = cpu_losses;
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
    comm_finalize(&comm);
    return rc;
}
#endif
