/*
GPT-2 training on one NVIDIA GPU: the CUDA twin of train_gpt.c.

Same model, flags (llmc/args.h), data loader, checkpoints, training state, logs and LR schedule
as the CPU reference; the kernels are the CUDA twins in the same llmc/ headers.

Precision (make PRECISION=BF16, the default, or FP32):
  - fp32 master weights, fp32 AdamW moments, fp32 parameter gradients (accumulated across
    micro-batches in fp32 by the matmuls' beta = 1);
  - floatX (bf16, or fp32 in the FP32 build) copies of the weights that the matmuls read,
    floatX activations and activation gradients;
  - fp32 LayerNorm statistics, attention logsumexp, losses.
Memory is allocated once, in gpt2cu_allocate; a step allocates nothing on the device.

Fine-tuning as in train_gpt.c: per-target loss weights, and --peft lora|bitfit|adapter|prompt
(llmc/peft.h) on a frozen base, which is then on the device as its floatX copy only: the fp32
master, gradients and AdamW moments exist for the PEFT tensors alone (kernels: llmc/lora.h,
llmc/adapter.h). ZeRO-1 (-z 1) is refused with --peft; plain data parallel works.

Kernels: cuBLASLt matmuls with the bias (and optionally GELU) in the epilogue, our own
FlashAttention-style attention (no T x T matrix), residual add fused with the next LayerNorm,
a fused classifier that turns the bf16 logits into the loss and dlogits in place.

GPU options among the shared flags (llmc/args.h): -r 1 recomputes GELU and LayerNorm outputs
in the backward pass (saves ln1, ln2 and fch_gelu per layer, about 6C of the 16C floatX values
per token and layer, for a GELU and two LayerNorms per layer); --gelu-fusion 1 runs GELU
forward and backward inside the cuBLASLt epilogues; --attention picks the attention: scalar
(our CUDA-core kernels, the default until a GPU has checked the others), tc (our tensor-core
WMMA kernels, head sizes 64 and 128, bf16) or cudnn (cuDNN's fused SDPA, the default of a
make ... USE_CUDNN=1 build, bf16); --write-bf16 also writes version-5 model files;
--peak-tflops (or LLMC_PEAK_TFLOPS, else a datasheet table) sets the peak for MFU.
Several GPUs: mpirun -np N, one process per GPU, gradients summed with NCCL (llmc/comm_nccl.h).
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>

#include "llmc/utils.h"
#include "llmc/checkpoint.h"
#include "llmc/train_loop.h"
#include "llmc/comm_nccl.h"
#include "llmc/cuda_common.h"
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
// The model on the device

// floatX copies of the weights, pointers into one allocation in checkpoint order
typedef struct {
    floatX *wte, *wpe, *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
    floatX *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb, *lnfw, *lnfb;
} ParamsX;

// fp32 tensors of the same shapes (gradients)
typedef struct {
    float *wte, *wpe, *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
    float *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb, *lnfw, *lnfb;
} ParamsF;

static void point_params_x(ParamsX* p, floatX* m, const size_t sizes[NUM_PARAMETER_TENSORS]) {
    floatX** ptrs[NUM_PARAMETER_TENSORS] = {
        &p->wte, &p->wpe, &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->attprojw, &p->attprojb,
        &p->ln2w, &p->ln2b, &p->fcw, &p->fcb, &p->fcprojw, &p->fcprojb, &p->lnfw, &p->lnfb
    };
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { *ptrs[i] = m; m += sizes[i]; }
}

static void point_params_f(ParamsF* p, float* m, const size_t sizes[NUM_PARAMETER_TENSORS]) {
    float** ptrs[NUM_PARAMETER_TENSORS] = {
        &p->wte, &p->wpe, &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->attprojw, &p->attprojb,
        &p->ln2w, &p->ln2b, &p->fcw, &p->fcb, &p->fcprojw, &p->fcprojb, &p->lnfw, &p->lnfb
    };
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { *ptrs[i] = m; m += sizes[i]; }
}

// The PEFT tensors of llmc/peft.h on the device, as train_gpt.c's PeftTensors: floatX views the
// kernels read (PeftX) and fp32 gradients (PeftF); NULL where the method has none. LoRA targets
// are indexed qkv, attproj, fc, fcproj; adapters [0] after attention and [1] after the MLP.
typedef struct {
    floatX *lora_A[4], *lora_B[4], *down_w[2], *down_b[2], *up_w[2], *up_b[2], *prompt;
} PeftX;

typedef struct {
    float *lora_A[4], *lora_B[4], *down_w[2], *down_b[2], *up_w[2], *up_b[2], *prompt;
} PeftF;

// Activations kept for the backward pass. Per-layer tensors are (L, B, T, ...) at the
// allocated B, T; with recompute on, ln1, ln2 and fch_gelu hold one layer and are rebuilt.
typedef struct {
    floatX* encoded;    // (B, T, C)
    floatX* ln1;        // (L or 1, B, T, C)
    float* ln1_mean;    // (L, B, T)
    float* ln1_rstd;    // (L, B, T)
    floatX* qkv;        // (L, B, T, 3C)
    floatX* atty;       // (L, B, T, C)
    float* att_lse;     // (L, B, NH, T)
    floatX* residual2;  // (L, B, T, C)
    floatX* ln2;        // (L or 1, B, T, C)
    float* ln2_mean;    // (L, B, T)
    float* ln2_rstd;    // (L, B, T)
    floatX* fch;        // (L, B, T, 4C) before the GELU
    floatX* fch_gelu;   // (L or 1, B, T, 4C)
    floatX* residual3;  // (L, B, T, C)
    floatX* lnf;        // (B, T, C)
    float* lnf_mean;    // (B, T)
    float* lnf_rstd;    // (B, T)
    floatX* logits;     // (B, T, Vp); the backward overwrites them with dlogits
    float* losses;      // (B, T)
    floatX* proj;       // (B, T, C) a projection's output before the residual add
    // PEFT only (empty otherwise)
    floatX* lora_h[4];     // (L, B, T, r) s * inp A^T of each LoRA target
    floatX* adapter_in[2]; // (L, B, T, C) an adapter's input (the projection's output)
    floatX* adapter_z[2];  // (L, B, T, m) its bottleneck before the GELU
    floatX* adapter_g[2];  // (L, B, T, m) and after
} ActsCU;

// Gradients of activations, one layer's worth, reused by every layer
typedef struct {
    floatX* dresidual;  // (B, T, C)
    floatX* dln;        // (B, T, C)
    floatX* datty;      // (B, T, C)
    floatX* dqkv;       // (B, T, 3C)
    floatX* dfch;       // (B, T, 4C)
    floatX* dfch_gelu;  // (B, T, 4C)
    float* att_dsum;    // (B, NH, T)
    float* reduce;      // column-sum partials (bias and LayerNorm weight gradients)
    // PEFT only
    floatX* dproj;      // (B, T, C) gradient of a projection's output, below its adapter
    floatX* lora_dh;    // (B, T, r)
    floatX* adapter_dg; // (B, T, m)
    floatX* adapter_dz; // (B, T, m)
} GradScratchCU;

#define CU_MAX_TENSORS (PEFT_MAX_TENSORS + NUM_PARAMETER_TENSORS)
#define PEFT_DEV_ALIGN 128  // floats: a PEFT tensor starts 256-byte aligned in floatX and fp32 on the device

typedef struct {
    GPT2Config config;
    size_t param_sizes[NUM_PARAMETER_TENSORS];
    size_t num_parameters;
    int recompute;
    int gelu_fusion;
    Attention attention;  // which attention runs (--attention), and cuDNN's graphs if it is cuDNN
    cudaStream_t stream;
    // What trains: every parameter (peft.pc.method == PEFT_NONE), or the PEFT tensors of
    // llmc/peft.h on a frozen base (gpt2cu_build with a layout). The trainable vector is
    // num_trainable floats in host order (the checkpoint's, or the PEFT layout's); on the device
    // master, grads_memory, m_memory and v_memory hold its tensor i at t_dev[i] (dev_count floats
    // in all: a PEFT tensor is padded to PEFT_DEV_ALIGN, for cuBLASLt's alignment), and train_x
    // is its floatX copy the kernels read. In full training train_x is params_memory and the
    // offsets are the checkpoint's; with PEFT the base is on the device as its floatX copy only
    // (no fp32 master, no gradients, no moments).
    PeftLayout peft;
    int prompt_len;       // k: soft-prompt positions before every sequence (0: none)
    size_t num_trainable;
    size_t dev_count;
    int num_tensors;
    size_t t_size[CU_MAX_TENSORS], t_dev[CU_MAX_TENSORS], t_host[CU_MAX_TENSORS];
    int t_decay[CU_MAX_TENSORS];
    // device
    float* master;        // fp32 trainable weights (dev_count floats)
    floatX* params_memory;  // floatX base weights (num_parameters)
    floatX* train_x;      // floatX copy of the trainable vector (== params_memory in full training)
    ParamsX params;       // what the forward reads (BitFit points the biases at train_x)
    float* grads_memory;  // dev_count floats
    ParamsF grads;        // views into grads_memory; NULL for frozen tensors
    PeftX px;             // PEFT tensors in train_x, and their gradients
    PeftF pg;
    float* m_memory;
    float* v_memory;
    void* acts_memory;
    ActsCU acts;
    void* scratch_memory;
    GradScratchCU scratch;
    int* d_inputs;        // (B, T)
    int* d_targets;       // (B, T)
    int* d_enc_order;     // encoder backward buckets (llmc/encoder.h)
    int* d_enc_start;
    int* d_enc_token;
    double* d_norm;       // 1 + SUMSQ_BLOCKS doubles
    double* d_loss_sum;   // [0] sum of weight x loss, [1] sum of weights, of the forwards since gpt2cu_loss_reset
    float* d_weights;     // (B, T) loss weights of the last forward (has_weights)
    int has_weights;
    // The last forward (with targets, not distilled) left its losses to whoever needs them
    // first: the backward's classifier, which computes them anyway along with dlogits, or
    // gpt2cu_losses_ready before they are read or the logits replaced. A training step so
    // reads each row of logits once, not twice.
    int losses_pending;
    // host
    float* h_params;      // fp32 base weights: checkpoints (full training), the initial upload
    float* h_trainable;   // PEFT: the fp32 PEFT tensors in layout order (params_host); else NULL
    int* h_pinputs;       // soft prompt: the batch with k positions before each row (B, T + k)
    int* h_ptargets;
    float* h_pweights;
    float* h_m;           // AdamW moments, for the training state
    float* h_v;
    int* h_inputs;
    int* h_enc_count;
    int* h_enc_order;
    int* h_enc_start;
    int* h_enc_token;
    int enc_buckets;
    int B, T;
    int batch_B, batch_T;
    int has_targets;
    size_t device_bytes;  // what gpt2cu_allocate took
    float* h_losses;      // host copies for the training loop (gpu_losses_all, gpu_logits_at)
    float* h_logits;
    floatX* h_logits_x;
    NcclComm nccl;        // several GPUs: the gradient all-reduce
    // Several GPUs, full training: the gradients are summed in buckets, one a layer (its twelve
    // tensors' slices) and a last one (wte, wpe, lnfw, lnfb), in the order the backward finishes
    // them. With overlap_reduce, the step's last backward records bucket_ready[l] on the stream
    // when layer l is done and comm_stream sums that bucket while the backward goes on;
    // reduce_gradients waits for reduced. Without it, the same collectives run on the stream
    // after the backward: the same sums, bitwise, only later.
    int overlap_reduce;
    int reducing;         // armed: the next backward queues its buckets on comm_stream (zero1: reduce_zero1)
    int in_flight;        // the last backward queued them; reduce_gradients waits for reduced
    int reduce_zero1;
    cudaStream_t comm_stream;
    cudaEvent_t* bucket_ready;  // L + 1, or NULL (one process, or PEFT)
    cudaEvent_t reduced;
    // tests only (LLMC_TEST_DROP_WAIT=bucket|reduced): leave out one of the two waits, so the
    // emulation's test can show that its deferred streams turn the missing wait into wrong sums
    int drop_bucket_wait, drop_reduced_wait;
    // ZeRO-1 (-z 1, several GPUs): this process updates parameters [opt_offset, +opt_count);
    // gradients and master weights are padded to world shards of shard_size floats, as NCCL's
    // reduce-scatter and all-gather want equal shards
    size_t opt_offset, opt_count, shard_size;
    float* grad_shard;    // (shard_size) the summed gradients of this process's shard
    // knowledge distillation (llmc/distill.h), as train_gpt.c's GPT2: a teacher GPT2CU of the
    // same vocabulary on the same inputs; its logits feed our classifier while distill_on
    void* teacher;        // GPT2CU*, or NULL
    int distill_on, distilled;
    float distill_alpha, distill_tau;
    int distill_reverse;
    float* d_kl;          // (B, T) KL per position of the last distilled forward
} GPT2CU;

static void gpt2cu_init_common(GPT2CU* model) {
    gpt2_parameter_sizes(model->param_sizes, &model->config);
    model->num_parameters = gpt2_num_parameters(&model->config);
    model->recompute = 0;    // the flags -r and --gelu-fusion set these before gpt2cu_allocate
    model->gelu_fusion = 0;
    // main sets it from --attention before gpt2cu_allocate; test_gpt_cu reads LLMC_ATTENTION
    attention_init(&model->attention, attention_kind_from_env());
    model->h_losses = NULL;
    model->h_logits = NULL;
    model->h_logits_x = NULL;
    model->teacher = NULL;
    model->distill_on = model->distilled = 0;
    model->d_kl = NULL;
    model->acts_memory = NULL;
    model->B = model->T = 0;
    model->has_targets = 0;
    memset(&model->peft, 0, sizeof(model->peft));
    memset(&model->px, 0, sizeof(model->px));
    memset(&model->pg, 0, sizeof(model->pg));
    model->prompt_len = 0;
    model->h_trainable = NULL;
    model->h_pinputs = NULL;
    model->h_ptargets = NULL;
    model->h_pweights = NULL;
    model->losses_pending = 0;
    model->overlap_reduce = 1;
    model->reducing = model->in_flight = 0;
    model->bucket_ready = NULL;
    cudaCheck(cudaStreamCreate(&model->stream));
    matmul_cuda_init();
}

static int gpt2cu_is_peft(const GPT2CU* model) { return model->peft.pc.method != PEFT_NONE; }

// n host fp32 values into a floatX device array, converted on the host in chunks through a
// small staging buffer (no big second copy)
static void upload_floatx(floatX* dst, const float* src, size_t n) {
    const size_t chunk = 1 << 20;
    floatX* stage = (floatX*)malloc_check(chunk * sizeof(floatX), "upload staging");
    for (size_t done = 0; done < n; done += chunk) {
        size_t k = n - done < chunk ? n - done : chunk;
        for (size_t i = 0; i < k; i++) { stage[i] = host_f2fx(src[done + i]); }
        cudaCheck(cudaMemcpy(dst + done, stage, k * sizeof(floatX), cudaMemcpyHostToDevice));
    }
    free(stage);
}

// Weights from host fp32 into the master copy and the floatX copies
static void gpt2cu_upload_params(GPT2CU* model) {
    size_t n = model->num_parameters;
    upload_floatx(model->params_memory, model->h_params, n);
    if (!gpt2cu_is_peft(model)) {
        cudaCheck(cudaMemcpy(model->master, model->h_params, n * sizeof(float), cudaMemcpyHostToDevice));
        return;
    }
    for (int i = 0; i < model->num_tensors; i++) {
        const float* src = model->h_trainable + model->t_host[i];
        cudaCheck(cudaMemcpy(model->master + model->t_dev[i], src, model->t_size[i] * sizeof(float), cudaMemcpyHostToDevice));
        upload_floatx(model->train_x + model->t_dev[i], src, model->t_size[i]);
    }
}

// trainable vector: device (tensors at t_dev) <-> host (contiguous, host order)
static void gpt2cu_trainable_to_host(const GPT2CU* model, float* dst, const float* src) {
    for (int i = 0; i < model->num_tensors; i++) {
        cudaCheck(cudaMemcpy(dst + model->t_host[i], src + model->t_dev[i], model->t_size[i] * sizeof(float), cudaMemcpyDeviceToHost));
    }
}

static void gpt2cu_trainable_to_device(const GPT2CU* model, float* dst, const float* src) {
    for (int i = 0; i < model->num_tensors; i++) {
        cudaCheck(cudaMemcpy(dst + model->t_dev[i], src + model->t_host[i], model->t_size[i] * sizeof(float), cudaMemcpyHostToDevice));
    }
}

// the PEFT tensor named name in a device copy of the trainable vector (elements of `bytes`), or NULL
static void* peft_dev_tensor(const GPT2CU* model, void* base, size_t bytes, const char* name) {
    for (int i = 0; i < model->peft.num_tensors; i++) {
        if (strcmp(model->peft.names[i], name) == 0) { return (char*)base + model->t_dev[i] * bytes; }
    }
    return NULL;
}

// px and pg from train_x and grads_memory, by name as train_gpt.c's point_peft
static void gpt2cu_point_peft(GPT2CU* model) {
    PeftX* x = &model->px;
    PeftF* g = &model->pg;
    char name[32];
    #define POINT_PEFT(field) \
        x->field = (floatX*)peft_dev_tensor(model, model->train_x, sizeof(floatX), name); \
        g->field = (float*)peft_dev_tensor(model, model->grads_memory, sizeof(float), name)
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof(name), "%s_A", LORA_TARGET_NAMES[k]); POINT_PEFT(lora_A[k]);
        snprintf(name, sizeof(name), "%s_B", LORA_TARGET_NAMES[k]); POINT_PEFT(lora_B[k]);
    }
    const char* where[2] = { "attn", "mlp" };
    for (int w = 0; w < 2; w++) {
        snprintf(name, sizeof(name), "%s_down_w", where[w]); POINT_PEFT(down_w[w]);
        snprintf(name, sizeof(name), "%s_down_b", where[w]); POINT_PEFT(down_b[w]);
        snprintf(name, sizeof(name), "%s_up_w", where[w]);   POINT_PEFT(up_w[w]);
        snprintf(name, sizeof(name), "%s_up_b", where[w]);   POINT_PEFT(up_b[w]);
    }
    snprintf(name, sizeof(name), "prompt"); POINT_PEFT(prompt);
    #undef POINT_PEFT
}

// Allocates the parameters, gradients and moments; h_params (and h_trainable with PEFT) must
// hold the weights.
static void gpt2cu_allocate_params(GPT2CU* model) {
    size_t n = model->num_parameters;
    int peft = gpt2cu_is_peft(model);
    // the trainable tensors, and where each sits on the device
    if (!peft) {
        model->num_tensors = NUM_PARAMETER_TENSORS;
        size_t off = 0;
        for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
            model->t_size[i] = model->param_sizes[i];
            model->t_dev[i] = model->t_host[i] = off;
            model->t_decay[i] = PARAMETER_DECAYS[i];
            off += model->param_sizes[i];
        }
        model->num_trainable = model->dev_count = n;
    } else {
        const PeftLayout* lay = &model->peft;
        model->num_tensors = lay->num_tensors;
        size_t off = 0;
        for (int i = 0; i < lay->num_tensors; i++) {
            model->t_size[i] = lay->sizes[i];
            model->t_host[i] = lay->offsets[i];
            model->t_dev[i] = off;
            model->t_decay[i] = lay->decays[i];
            off += (lay->sizes[i] + PEFT_DEV_ALIGN - 1) / PEFT_DEV_ALIGN * PEFT_DEV_ALIGN;
        }
        model->num_trainable = lay->count;
        model->dev_count = off;
    }
    size_t nd = model->dev_count;
    model->params_memory = (floatX*)cuda_malloc_check(n * sizeof(floatX), "weights (floatX)");
    model->master = (float*)cuda_malloc_check(nd * sizeof(float), peft ? "PEFT tensors (fp32)" : "master weights");
    if (peft) {
        model->train_x = (floatX*)cuda_malloc_check(nd * sizeof(floatX), "PEFT tensors (floatX)");
        // the padding between tensors stays zero: the norm and the AdamW steps never see it
        cudaCheck(cudaMemset(model->master, 0, nd * sizeof(float)));
        cudaCheck(cudaMemset(model->train_x, 0, nd * sizeof(floatX)));
    } else {
        model->train_x = model->params_memory;
    }
    model->grads_memory = (float*)cuda_malloc_check(nd * sizeof(float), "gradients");
    model->m_memory = (float*)cuda_malloc_check(nd * sizeof(float), "AdamW m");
    model->v_memory = (float*)cuda_malloc_check(nd * sizeof(float), "AdamW v");
    cudaCheck(cudaMemset(model->grads_memory, 0, nd * sizeof(float)));
    cudaCheck(cudaMemset(model->m_memory, 0, nd * sizeof(float)));
    cudaCheck(cudaMemset(model->v_memory, 0, nd * sizeof(float)));
    point_params_x(&model->params, model->params_memory, model->param_sizes);
    if (!peft) {
        point_params_f(&model->grads, model->grads_memory, model->param_sizes);
    } else {
        // frozen tensors have no gradients; BitFit's tensors stand in for the base's
        memset(&model->grads, 0, sizeof(model->grads));
        floatX** xptrs[NUM_PARAMETER_TENSORS] = {
            &model->params.wte, &model->params.wpe, &model->params.ln1w, &model->params.ln1b, &model->params.qkvw,
            &model->params.qkvb, &model->params.attprojw, &model->params.attprojb, &model->params.ln2w,
            &model->params.ln2b, &model->params.fcw, &model->params.fcb, &model->params.fcprojw,
            &model->params.fcprojb, &model->params.lnfw, &model->params.lnfb
        };
        float** gptrs[NUM_PARAMETER_TENSORS] = {
            &model->grads.wte, &model->grads.wpe, &model->grads.ln1w, &model->grads.ln1b, &model->grads.qkvw,
            &model->grads.qkvb, &model->grads.attprojw, &model->grads.attprojb, &model->grads.ln2w,
            &model->grads.ln2b, &model->grads.fcw, &model->grads.fcb, &model->grads.fcprojw,
            &model->grads.fcprojb, &model->grads.lnfw, &model->grads.lnfb
        };
        for (int i = 0; i < model->peft.num_tensors; i++) {
            int b = model->peft.base_index[i];
            if (b >= 0) {
                *xptrs[b] = model->train_x + model->t_dev[i];
                *gptrs[b] = model->grads_memory + model->t_dev[i];
            }
        }
        gpt2cu_point_peft(model);
    }
    model->opt_offset = 0;
    model->opt_count = model->num_trainable;
    model->shard_size = model->num_trainable;
    model->grad_shard = NULL;
    model->h_m = float_alloc_check(model->num_trainable, "AdamW m (host copy)");
    model->h_v = float_alloc_check(model->num_trainable, "AdamW v (host copy)");
    model->device_bytes = peft ? n * sizeof(floatX) + nd * (4 * sizeof(float) + sizeof(floatX))
                               : n * (4 * sizeof(float) + sizeof(floatX));
    gpt2cu_upload_params(model);
}

// Takes ownership of params (host fp32, gpt2_num_parameters(config) floats) and, with a PEFT
// layout lay, of peft (lay->count floats: the PEFT tensors that train on the frozen base;
// NULL for full training), and uploads them.
static void gpt2cu_build(GPT2CU* model, const GPT2Config* config, float* params, const PeftLayout* lay, float* peft) {
    model->config = *config;
    model->h_params = params;
    gpt2cu_init_common(model);
    if (peft != NULL) {
        model->peft = *lay;
        model->h_trainable = peft;
        model->prompt_len = lay->pc.method == PEFT_PROMPT ? lay->pc.prompt_len : 0;
    }
    gpt2cu_allocate_params(model);
}

// Distils from teacher (built, not allocated: gpt2cu_allocate allocates it with the student), as
// train_gpt.c's gpt2_set_teacher; the caller owns the teacher.
static void gpt2cu_set_teacher(GPT2CU* model, GPT2CU* teacher, float alpha, float tau, int reverse, const char* teacher_path) {
    train_distill_check(&model->config, &teacher->config, model->prompt_len, teacher_path);
    if (model->acts_memory != NULL) { die("gpt2cu_set_teacher after gpt2cu_allocate"); }
    model->teacher = teacher;
    model->distill_alpha = alpha;
    model->distill_tau = tau;
    model->distill_reverse = reverse;
    model->distill_on = 0;  // the training loop turns it on for its steps (ModelOps set_distill)
}

static void gpt2cu_build_from_params(GPT2CU* model, const GPT2Config* config, float* params) {
    gpt2cu_build(model, config, params, NULL, NULL);
}

static void gpt2cu_build_from_checkpoint(GPT2CU* model, const char* path) {
    char err[LLMC_ERRLEN];
    GPT2Config config;
    float* params;
    if (checkpoint_read(path, &config, &params, err) != 0) { die("%s", err); }
    gpt2cu_build_from_params(model, &config, params);
}

// carves n elements of `bytes` each out of *cursor, 256-byte aligned (cuBLASLt likes it)
static void* carve(char** cursor, size_t n, size_t bytes) {
    void* p = *cursor;
    *cursor += (n * bytes + 255) & ~(size_t)255;
    return p;
}

// Everything a step at (B, T) needs, once. Two passes over the same layout: the first
// measures (base NULL), the second assigns.
static size_t gpt2cu_layout(GPT2CU* model, int B, int T, char* base_acts, char* base_scratch, size_t* scratch_bytes) {
    GPT2Config* c = &model->config;
    size_t L = c->num_layers, C = c->channels, NH = c->num_heads, Vp = c->padded_vocab_size;
    size_t BT = (size_t)B * T;
    size_t Lr = model->recompute ? 1 : L;
    ActsCU* a = &model->acts;
    char* cur = base_acts;
    a->encoded = (floatX*)carve(&cur, BT * C, sizeof(floatX));
    a->ln1 = (floatX*)carve(&cur, Lr * BT * C, sizeof(floatX));
    a->ln1_mean = (float*)carve(&cur, L * BT, sizeof(float));
    a->ln1_rstd = (float*)carve(&cur, L * BT, sizeof(float));
    a->qkv = (floatX*)carve(&cur, L * BT * 3 * C, sizeof(floatX));
    a->atty = (floatX*)carve(&cur, L * BT * C, sizeof(floatX));
    a->att_lse = (float*)carve(&cur, L * B * NH * T, sizeof(float));
    a->residual2 = (floatX*)carve(&cur, L * BT * C, sizeof(floatX));
    a->ln2 = (floatX*)carve(&cur, Lr * BT * C, sizeof(floatX));
    a->ln2_mean = (float*)carve(&cur, L * BT, sizeof(float));
    a->ln2_rstd = (float*)carve(&cur, L * BT, sizeof(float));
    a->fch = (floatX*)carve(&cur, L * BT * 4 * C, sizeof(floatX));
    a->fch_gelu = (floatX*)carve(&cur, Lr * BT * 4 * C, sizeof(floatX));
    a->residual3 = (floatX*)carve(&cur, L * BT * C, sizeof(floatX));
    a->lnf = (floatX*)carve(&cur, BT * C, sizeof(floatX));
    a->lnf_mean = (float*)carve(&cur, BT, sizeof(float));
    a->lnf_rstd = (float*)carve(&cur, BT, sizeof(float));
    a->logits = (floatX*)carve(&cur, BT * Vp, sizeof(floatX));
    a->losses = (float*)carve(&cur, BT, sizeof(float));
    a->proj = (floatX*)carve(&cur, BT * C, sizeof(floatX));
    const PeftConfig* pc = &model->peft.pc;
    size_t r = pc->method == PEFT_LORA ? (size_t)pc->lora_rank : 0;
    size_t am = pc->method == PEFT_ADAPTER ? (size_t)pc->adapter_size : 0;
    for (int k = 0; k < 4; k++) {
        a->lora_h[k] = model->px.lora_A[k] != NULL ? (floatX*)carve(&cur, L * BT * r, sizeof(floatX)) : NULL;
    }
    for (int w = 0; w < 2; w++) {
        a->adapter_in[w] = am > 0 ? (floatX*)carve(&cur, L * BT * C, sizeof(floatX)) : NULL;
        a->adapter_z[w] = am > 0 ? (floatX*)carve(&cur, L * BT * am, sizeof(floatX)) : NULL;
        a->adapter_g[w] = am > 0 ? (floatX*)carve(&cur, L * BT * am, sizeof(floatX)) : NULL;
    }
    size_t acts_bytes = (size_t)(cur - base_acts);

    GradScratchCU* s = &model->scratch;
    cur = base_scratch;
    s->dresidual = (floatX*)carve(&cur, BT * C, sizeof(floatX));
    s->dln = (floatX*)carve(&cur, BT * C, sizeof(floatX));
    s->datty = (floatX*)carve(&cur, BT * C, sizeof(floatX));
    s->dqkv = (floatX*)carve(&cur, BT * 3 * C, sizeof(floatX));
    s->dfch = (floatX*)carve(&cur, BT * 4 * C, sizeof(floatX));
    s->dfch_gelu = (floatX*)carve(&cur, BT * 4 * C, sizeof(floatX));
    s->att_dsum = (float*)carve(&cur, (size_t)B * NH * T, sizeof(float));
    s->dproj = am > 0 ? (floatX*)carve(&cur, BT * C, sizeof(floatX)) : NULL;
    s->lora_dh = r > 0 ? (floatX*)carve(&cur, BT * r, sizeof(floatX)) : NULL;
    s->adapter_dg = am > 0 ? (floatX*)carve(&cur, BT * am, sizeof(floatX)) : NULL;
    s->adapter_dz = am > 0 ? (floatX*)carve(&cur, BT * am, sizeof(floatX)) : NULL;
    size_t red = colsum_scratch_floats((int)BT, (int)(4 * C > am ? 4 * C : am));  // adapters: bd's column sums
    size_t red_ln = layernorm_scratch_floats((int)BT, (int)C);
    s->reduce = (float*)carve(&cur, red > red_ln ? red : red_ln, sizeof(float));
    *scratch_bytes = (size_t)(cur - base_scratch);
    return acts_bytes;
}

// Everything a step at (B, T) needs: T + k positions with a soft prompt of k.
static void gpt2cu_allocate(GPT2CU* model, int B, int T) {
    if (model->acts_memory != NULL) { die("gpt2cu_allocate called twice"); }
    GPT2Config* c = &model->config;
    int k = model->prompt_len;
    if (k > 0) {
        size_t n = (size_t)B * (T + k);
        model->h_pinputs = (int*)calloc_check(n, sizeof(int), "inputs with the prompt");
        model->h_ptargets = (int*)calloc_check(n, sizeof(int), "targets with the prompt");
    }
    // the loss weights as the device gets them: with the prompt's positions, and DPO's (gpu_set_weights)
    model->h_pweights = float_alloc_check((size_t)B * (T + k), "loss weights (host staging)");
    T += k;
    if (T > c->max_seq_len) {
        die("-t: sequence length %d%s exceeds the model's maxT %d", T, k > 0 ? " (with the soft prompt)" : "", c->max_seq_len);
    }
    if (c->channels / c->num_heads > 128) { die("head size %d: the CUDA attention supports head sizes up to 128", c->channels / c->num_heads); }
    size_t scratch_bytes = 0;
    size_t acts_bytes = gpt2cu_layout(model, B, T, (char*)NULL, (char*)NULL, &scratch_bytes);
    model->acts_memory = cuda_malloc_check(acts_bytes, "activations");
    model->scratch_memory = cuda_malloc_check(scratch_bytes, "gradient scratch");
    gpt2cu_layout(model, B, T, (char*)model->acts_memory, (char*)model->scratch_memory, &scratch_bytes);
    size_t BT = (size_t)B * T;
    model->d_inputs = (int*)cuda_malloc_check(BT * sizeof(int), "inputs");
    model->d_targets = (int*)cuda_malloc_check(BT * sizeof(int), "targets");
    model->d_enc_order = (int*)cuda_malloc_check(BT * sizeof(int), "encoder order");
    model->d_enc_start = (int*)cuda_malloc_check((BT + 1) * sizeof(int), "encoder buckets");
    model->d_enc_token = (int*)cuda_malloc_check(BT * sizeof(int), "encoder tokens");
    model->d_norm = (double*)cuda_malloc_check((1 + SUMSQ_BLOCKS) * sizeof(double), "norm scratch");
    model->d_loss_sum = (double*)cuda_malloc_check(2 * sizeof(double), "loss sums");
    model->d_weights = (float*)cuda_malloc_check(BT * sizeof(float), "loss weights");
    if (model->teacher != NULL) {
        model->d_kl = (float*)cuda_malloc_check(BT * sizeof(float), "distillation KL");
        gpt2cu_allocate((GPT2CU*)model->teacher, B, T - k);
    }
    model->h_inputs = (int*)calloc_check(BT, sizeof(int), "inputs");
    model->h_enc_count = (int*)calloc_check((size_t)c->vocab_size + 1, sizeof(int), "encoder counts");
    model->h_enc_order = (int*)calloc_check(BT, sizeof(int), "encoder order");
    model->h_enc_start = (int*)calloc_check(BT + 1, sizeof(int), "encoder buckets");
    model->h_enc_token = (int*)calloc_check(BT, sizeof(int), "encoder tokens");
    model->device_bytes += acts_bytes + scratch_bytes + BT * 4 * sizeof(int) + CUBLASLT_WORKSPACE_BYTES;
    attention_setup(&model->attention, B, T, c->channels, c->num_heads, model->stream);
    model->device_bytes += attention_device_bytes(&model->attention);
    model->h_losses = float_alloc_check((size_t)B * T, "losses (host)");  // T with the prompt
    model->B = B;
    model->T = T;
}

static void gpt2cu_losses_ready(GPT2CU* model);

static void gpt2cu_loss_reset(GPT2CU* model) {
    gpt2cu_losses_ready(model);  // a pending forward's losses belong to the sums being dropped
    cudaCheck(cudaMemsetAsync(model->d_loss_sum, 0, 2 * sizeof(double), model->stream));
}

// the sum of the mean losses of the forwards with targets since the last reset (synchronizes)
static double gpt2cu_loss_read(GPT2CU* model, double* weight_sum) {
    gpt2cu_losses_ready(model);
    double s[2];
    cudaCheck(cudaMemcpyAsync(s, model->d_loss_sum, 2 * sizeof(double), cudaMemcpyDeviceToHost, model->stream));
    cudaCheck(cudaStreamSynchronize(model->stream));
    if (weight_sum != NULL) { *weight_sum = s[1]; }
    return s[0];
}

// sum[0] += sum of w * losses[0..n), sum[1] += sum of w (w = 1 without weights): one block,
// fixed order (deterministic)
__global__ static void loss_weighted_accumulate_kernel(double* sum, const float* losses, const float* weights, int n) {
    __shared__ float shared[32];
    float s = 0.0f, w = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float wi = weights != NULL ? weights[i] : 1.0f;
        s += wi * losses[i];
        w += wi;
    }
    s = block_reduce_sum(s, shared);
    w = block_reduce_sum(w, shared);
    if (threadIdx.x == 0) { sum[0] += (double)s; sum[1] += (double)w; }
}

// the last forward's weighted losses into the loss sums
static void gpt2cu_loss_accumulate(GPT2CU* model) {
    loss_weighted_accumulate_kernel<<<1, 1024, 0, model->stream>>>(model->d_loss_sum, model->acts.losses,
                                                                   model->has_weights ? model->d_weights : NULL,
                                                                   model->batch_B * model->batch_T);
    cudaCheckLaunch();
}

// the losses the last forward left pending (losses only: the logits stay)
static void gpt2cu_losses_ready(GPT2CU* model) {
    if (!model->losses_pending) { return; }
    model->losses_pending = 0;
    const GPT2Config* cfg = &model->config;
    fused_classifier_cuda(model->acts.logits, model->acts.losses, model->d_targets, NULL, 0.0f,
                          model->batch_B * model->batch_T, cfg->vocab_size, cfg->padded_vocab_size, model->stream);
    gpt2cu_loss_accumulate(model);
}

// soft prompt: position i < k of every row holds prompt[i] + wpe[i] in place of a token's embedding
__global__ static void prompt_forward_kernel(floatX* encoded, const floatX* prompt, const floatX* wpe, int B, int T,
                                             int k, int C) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= B * k * C) { return; }
    int c = idx % C, i = (idx / C) % k, b = idx / (C * k);
    encoded[((size_t)b * T + i) * C + c] = f2fx(fx2f(prompt[(size_t)i * C + c]) + fx2f(wpe[(size_t)i * C + c]));
}

// dprompt (k, C) += what reached the prompt positions, summed over the rows in order (deterministic)
__global__ static void prompt_backward_kernel(float* dprompt, const floatX* dresidual, int B, int T, int k, int C) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= k * C) { return; }
    int c = idx % C, i = idx / C;
    float sum = 0.0f;
    for (int b = 0; b < B; b++) { sum += fx2f(dresidual[((size_t)b * T + i) * C + c]); }
    dprompt[idx] += sum;
}

// Forward pass on host inputs (B, T), with targets also the losses (added to the loss sums,
// weighted by weights (B, T) if given). B and T may be smaller than the allocated shape.
// With a soft prompt the model runs k + T positions per row, as train_gpt.c's gpt2_forward.
static void gpt2cu_forward(GPT2CU* model, const int* inputs, const int* targets, const float* weights, int B, int T) {
    if (model->acts_memory == NULL) { die("gpt2cu_forward before gpt2cu_allocate"); }
    gpt2cu_losses_ready(model);  // the previous forward's, before its targets and logits are replaced
    int k = model->prompt_len;
    if (B > model->B || T + k > model->T) { die("batch %dx%d exceeds the allocated %dx%d", B, T, model->B, model->T - k); }
    GPT2Config* cfg = &model->config;
    int V = cfg->vocab_size, Vp = cfg->padded_vocab_size, L = cfg->num_layers;
    int NH = cfg->num_heads, C = cfg->channels;
    gpt2_check_tokens(cfg, inputs, targets, B * T);
    if (k > 0) {
        // the model's positions: k prompt positions (token 0 stands in; the prompt replaces its
        // embedding; no target, weight 0), then the T given ones
        int Tx = T + k;
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < Tx; t++) {
                size_t at = (size_t)b * Tx + t, src = (size_t)b * T + (t - k);
                model->h_pinputs[at] = t < k ? 0 : inputs[src];
                model->h_ptargets[at] = t < k || targets == NULL ? 0 : targets[src];
                model->h_pweights[at] = t < k ? 0.0f : (weights != NULL ? weights[src] : 1.0f);
            }
        }
        inputs = model->h_pinputs;
        targets = targets != NULL ? model->h_ptargets : NULL;
        weights = model->h_pweights;
        T = Tx;
    }
    int BT = B * T;
    cudaStream_t st = model->stream;
    memcpy(model->h_inputs, inputs, (size_t)BT * sizeof(int));
    cudaCheck(cudaMemcpyAsync(model->d_inputs, model->h_inputs, (size_t)BT * sizeof(int), cudaMemcpyHostToDevice, st));
    model->has_weights = targets != NULL && weights != NULL;
    if (model->has_weights) {
        cudaCheck(cudaMemcpyAsync(model->d_weights, weights, (size_t)BT * sizeof(float), cudaMemcpyHostToDevice, st));
    }
    if (targets != NULL) {
        cudaCheck(cudaMemcpyAsync(model->d_targets, targets, (size_t)BT * sizeof(int), cudaMemcpyHostToDevice, st));
    }
    if (targets != NULL && model->grads.wte != NULL) {
        // the encoder backward's token buckets (host work, overlapping whatever the GPU still has queued)
        model->enc_buckets = encoder_backward_buckets(inputs, BT, V, model->h_enc_count, model->h_enc_order,
                                                      model->h_enc_start, model->h_enc_token);
        cudaCheck(cudaMemcpyAsync(model->d_enc_order, model->h_enc_order, (size_t)BT * sizeof(int), cudaMemcpyHostToDevice, st));
        cudaCheck(cudaMemcpyAsync(model->d_enc_start, model->h_enc_start, (size_t)(model->enc_buckets + 1) * sizeof(int), cudaMemcpyHostToDevice, st));
        cudaCheck(cudaMemcpyAsync(model->d_enc_token, model->h_enc_token, (size_t)model->enc_buckets * sizeof(int), cudaMemcpyHostToDevice, st));
    }
    // the copies above read pageable host memory: they complete before returning, so the
    // host buffers may change once this function returns
    model->batch_B = B;
    model->batch_T = T;
    model->has_targets = targets != NULL;

    ParamsX* p = &model->params;
    ActsCU* a = &model->acts;
    size_t lbtc = (size_t)model->B * model->T * C;  // per-layer strides use the allocated shape
    size_t lbt = (size_t)model->B * model->T;
    size_t llse = (size_t)model->B * NH * model->T;
    size_t lr = model->recompute ? 0 : 1;           // layer stride multiplier of ln1, ln2, fch_gelu

    const PeftX* q = &model->px;
    int r = model->peft.pc.lora_rank, m = model->peft.pc.adapter_size;
    float ls = model->peft.pc.method == PEFT_LORA ? model->peft.pc.lora_alpha / r : 0.0f;
    size_t lbtr = lbt * (size_t)r, lbtm = lbt * (size_t)m;
    // LoRA on fc adds to the values before the GELU: cuBLASLt's GELU epilogue cannot apply
    int fuse_fc = model->gelu_fusion && q->lora_A[2] == NULL;

    encoder_forward_cuda(a->encoded, model->d_inputs, p->wte, p->wpe, B, T, C, st);
    if (k > 0) {
        int n = B * k * C;
        prompt_forward_kernel<<<CEIL_DIV(n, 256), 256, 0, st>>>(a->encoded, q->prompt, p->wpe, B, T, k, C);
        cudaCheckLaunch();
    }
    layernorm_forward_cuda(a->ln1, a->ln1_mean, a->ln1_rstd, a->encoded, p->ln1w, p->ln1b, BT, C, st);
    for (int l = 0; l < L; l++) {
        const floatX* residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * lbtc;
        floatX* ln1 = a->ln1 + lr * l * lbtc;
        floatX* qkv = a->qkv + l * 3 * lbtc;
        floatX* atty = a->atty + l * lbtc;
        float* lse = a->att_lse + l * llse;
        floatX* residual2 = a->residual2 + l * lbtc;
        floatX* ln2 = a->ln2 + lr * l * lbtc;
        floatX* fch = a->fch + l * 4 * lbtc;
        floatX* fch_gelu = a->fch_gelu + lr * l * 4 * lbtc;
        floatX* residual3 = a->residual3 + l * lbtc;
        // with adapters a projection writes the adapter's input, which the adapter turns into proj
        floatX* attn_out = q->down_w[0] != NULL ? a->adapter_in[0] + l * lbtc : a->proj;
        floatX* mlp_out = q->down_w[1] != NULL ? a->adapter_in[1] + l * lbtc : a->proj;

        matmul_forward_cuda(qkv, ln1, p->qkvw + (size_t)l * 3 * C * C, p->qkvb + l * 3 * C, BT, C, 3 * C, NULL, st);
        if (q->lora_A[0] != NULL) {
            lora_forward_cuda(qkv, a->lora_h[0] + l * lbtr, ln1, q->lora_A[0] + (size_t)l * r * C,
                              q->lora_B[0] + (size_t)l * 3 * C * r, ls, BT, C, 3 * C, r, st);
        }
        attention_forward_cuda(&model->attention, atty, lse, qkv, B, T, C, NH, st);
        matmul_forward_cuda(attn_out, atty, p->attprojw + (size_t)l * C * C, p->attprojb + l * C, BT, C, C, NULL, st);
        if (q->lora_A[1] != NULL) {
            lora_forward_cuda(attn_out, a->lora_h[1] + l * lbtr, atty, q->lora_A[1] + (size_t)l * r * C,
                              q->lora_B[1] + (size_t)l * C * r, ls, BT, C, C, r, st);
        }
        if (q->down_w[0] != NULL) {
            adapter_forward_cuda(a->proj, a->adapter_z[0] + l * lbtm, a->adapter_g[0] + l * lbtm, attn_out,
                                 q->down_w[0] + (size_t)l * m * C, q->down_b[0] + (size_t)l * m,
                                 q->up_w[0] + (size_t)l * C * m, q->up_b[0] + (size_t)l * C, BT, C, m, st);
        }
        fused_residual_layernorm_forward_cuda(residual2, ln2, a->ln2_mean + l * lbt, a->ln2_rstd + l * lbt,
                                              residual, a->proj, p->ln2w + l * C, p->ln2b + l * C, BT, C, st);
        if (fuse_fc) {
            matmul_forward_cuda(fch_gelu, ln2, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, BT, C, 4 * C, fch, st);
        } else {
            matmul_forward_cuda(fch, ln2, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, BT, C, 4 * C, NULL, st);
            if (q->lora_A[2] != NULL) {
                lora_forward_cuda(fch, a->lora_h[2] + l * lbtr, ln2, q->lora_A[2] + (size_t)l * r * C,
                                  q->lora_B[2] + (size_t)l * 4 * C * r, ls, BT, C, 4 * C, r, st);
            }
            gelu_forward_cuda(fch_gelu, fch, (size_t)BT * 4 * C, st);
        }
        matmul_forward_cuda(mlp_out, fch_gelu, p->fcprojw + (size_t)l * 4 * C * C, p->fcprojb + l * C, BT, 4 * C, C, NULL, st);
        if (q->lora_A[3] != NULL) {
            lora_forward_cuda(mlp_out, a->lora_h[3] + l * lbtr, fch_gelu, q->lora_A[3] + (size_t)l * r * 4 * C,
                              q->lora_B[3] + (size_t)l * C * r, ls, BT, 4 * C, C, r, st);
        }
        if (q->down_w[1] != NULL) {
            adapter_forward_cuda(a->proj, a->adapter_z[1] + l * lbtm, a->adapter_g[1] + l * lbtm, mlp_out,
                                 q->down_w[1] + (size_t)l * m * C, q->down_b[1] + (size_t)l * m,
                                 q->up_w[1] + (size_t)l * C * m, q->up_b[1] + (size_t)l * C, BT, C, m, st);
        }
        // the residual add, fused with the next LayerNorm (layer l+1's ln1, or the final one)
        if (l + 1 < L) {
            fused_residual_layernorm_forward_cuda(residual3, a->ln1 + lr * (l + 1) * lbtc, a->ln1_mean + (l + 1) * lbt,
                                                  a->ln1_rstd + (l + 1) * lbt, residual2, a->proj,
                                                  p->ln1w + (l + 1) * C, p->ln1b + (l + 1) * C, BT, C, st);
        } else {
            fused_residual_layernorm_forward_cuda(residual3, a->lnf, a->lnf_mean, a->lnf_rstd, residual2, a->proj,
                                                  p->lnfw, p->lnfb, BT, C, st);
        }
    }
    matmul_forward_cuda(a->logits, a->lnf, p->wte, NULL, BT, C, Vp, NULL, st);
    model->distilled = targets != NULL && model->teacher != NULL && model->distill_on;
    if (model->distilled) {
        // the teacher on the same tokens (no soft prompt: refused with distillation), then the
        // mixed loss per position; its stream finishes before our classifier reads its logits
        GPT2CU* teacher = (GPT2CU*)model->teacher;
        gpt2cu_forward(teacher, inputs, NULL, NULL, B, T);
        cudaCheck(cudaStreamSynchronize(teacher->stream));
        fused_distill_classifier_cuda(a->logits, a->losses, model->d_kl, teacher->acts.logits, model->d_targets, NULL, 0.0f,
                                      model->distill_alpha, model->distill_tau, model->distill_reverse, BT, V, Vp, st);
        gpt2cu_loss_accumulate(model);
    } else if (targets != NULL) {
        model->losses_pending = 1;  // the backward's classifier, or gpt2cu_losses_ready
    }
}

static void gpt2cu_zero_grad(GPT2CU* model) {
    cudaCheck(cudaMemsetAsync(model->grads_memory, 0, model->dev_count * sizeof(float), model->stream));
}

// ----------------------------------------------------------------------------
// The gradient sums over GPUs, by bucket

// The part of parameter tensor i in bucket b, as [*start, +*count) of the gradient vector:
// layer b's slice of a per-layer tensor (b < L), or all of wte, wpe, lnfw, lnfb (b == L).
static int gpt2cu_bucket_part(const GPT2CU* model, int b, int i, size_t* start, size_t* count) {
    int L = model->config.num_layers;
    int per_layer = i >= 2 && i < NUM_PARAMETER_TENSORS - 2;
    if (per_layer == (b == L)) { return 0; }
    size_t off = 0;
    for (int k = 0; k < i; k++) { off += model->param_sizes[k]; }
    size_t n = model->param_sizes[i];
    *start = per_layer ? off + (size_t)b * (n / L) : off;
    *count = per_layer ? n / L : n;
    return 1;
}

// Queues the sums of bucket b's gradients on stream s: in place (ZeRO-0), or each process's
// shard's pieces into its grad_shard (ZeRO-1: a reduce to the piece's owner, which is what the
// whole-vector reduce-scatter does, piece by piece).
static void gpt2cu_reduce_bucket(GPT2CU* model, int b, int zero1, cudaStream_t s) {
    NcclComm* n = &model->nccl;
    nccl_group_start(n);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        size_t lo, count;
        if (!gpt2cu_bucket_part(model, b, i, &lo, &count)) { continue; }
        if (!zero1) {
            nccl_allreduce_sum(n, model->grads_memory + lo, count, s);
            continue;
        }
        size_t per = model->shard_size, hi = lo + count;
        for (int r = 0; r < n->world; r++) {
            size_t a = lo > (size_t)r * per ? lo : (size_t)r * per;
            size_t e = hi < (size_t)(r + 1) * per ? hi : (size_t)(r + 1) * per;
            if (a < e) { nccl_reduce_sum(n, model->grads_memory + a, model->grad_shard + (a - (size_t)r * per), e - a, r, s); }
        }
    }
    nccl_group_end(n);
}

// The backward has finished bucket b's gradients (its layer, or b == L: the encoder's): with
// the overlap armed, comm_stream sums them once the stream gets there. NCCL's kernels on
// comm_stream and the stream never run at once: the stream's next collective (ZeRO-1's
// all-gather) comes after it has waited for reduced.
static void gpt2cu_bucket_done(GPT2CU* model, int b) {
    if (!model->reducing) { return; }
    cudaCheck(cudaEventRecord(model->bucket_ready[b], model->stream));
    if (!model->drop_bucket_wait) { cudaCheck(cudaStreamWaitEvent(model->comm_stream, model->bucket_ready[b], 0)); }
    gpt2cu_reduce_bucket(model, b, model->reduce_zero1, model->comm_stream);
    if (b == model->config.num_layers) {
        cudaCheck(cudaEventRecord(model->reduced, model->comm_stream));
    }
}

// Several GPUs, full training: the stream and events of the overlapped sums (once, at allocate)
static void gpt2cu_setup_buckets(GPT2CU* model) {
    int L = model->config.num_layers;
    model->bucket_ready = (cudaEvent_t*)calloc_check((size_t)L + 1, sizeof(cudaEvent_t), "bucket events");
    for (int b = 0; b <= L; b++) { cudaCheck(cudaEventCreateWithFlags(&model->bucket_ready[b], cudaEventDisableTiming)); }
    cudaCheck(cudaEventCreateWithFlags(&model->reduced, cudaEventDisableTiming));
    cudaCheck(cudaStreamCreate(&model->comm_stream));
    const char* drop = getenv("LLMC_TEST_DROP_WAIT");
    model->drop_bucket_wait = drop != NULL && strcmp(drop, "bucket") == 0;
    model->drop_reduced_wait = drop != NULL && strcmp(drop, "reduced") == 0;
}

// Backward pass of the last forward (with targets); adds into the gradients the gradient of
// dloss * sum over positions of w * loss (dloss: the weight of a unit-weight position in the
// step's loss, as in train_gpt.c's gpt2_backward).
static void gpt2cu_backward(GPT2CU* model, float dloss) {
    if (!model->has_targets) { die("gpt2cu_backward needs a forward pass with targets"); }
    GPT2Config* cfg = &model->config;
    int B = model->batch_B, T = model->batch_T;
    int V = cfg->vocab_size, Vp = cfg->padded_vocab_size, L = cfg->num_layers;
    int NH = cfg->num_heads, C = cfg->channels;
    int BT = B * T;
    cudaStream_t st = model->stream;
    ParamsX* p = &model->params;
    ParamsF* g = &model->grads;
    ActsCU* a = &model->acts;
    GradScratchCU* s = &model->scratch;
    size_t lbtc = (size_t)model->B * model->T * C;
    size_t lbt = (size_t)model->B * model->T;
    size_t llse = (size_t)model->B * NH * model->T;
    size_t lr = model->recompute ? 0 : 1;
    const PeftX* q = &model->px;
    const PeftF* pg = &model->pg;
    int r = model->peft.pc.lora_rank, m = model->peft.pc.adapter_size;
    float ls = model->peft.pc.method == PEFT_LORA ? model->peft.pc.lora_alpha / r : 0.0f;
    size_t lbtr = lbt * (size_t)r, lbtm = lbt * (size_t)m;
    // LoRA on fcproj adds to d(fch_gelu) before the GELU's backward: no DGELU epilogue then
    int fuse_fcproj = model->gelu_fusion && q->lora_A[3] == NULL;
    // a frozen tensor's gradient pointer is NULL: offset it only when it exists
    #define GRAD_AT(ptr, off) ((ptr) != NULL ? (ptr) + (off) : NULL)

    // classifier: logits -> dlogits in place (the losses are recomputed, identically)
    if (model->distilled) {
        fused_distill_classifier_cuda(a->logits, a->losses, model->d_kl, ((GPT2CU*)model->teacher)->acts.logits,
                                      model->d_targets, model->has_weights ? model->d_weights : NULL, dloss,
                                      model->distill_alpha, model->distill_tau, model->distill_reverse, BT, V, Vp, st);
    } else {
        fused_classifier_cuda(a->logits, a->losses, model->d_targets, model->has_weights ? model->d_weights : NULL, dloss,
                              BT, V, Vp, st);
        if (model->losses_pending) {  // the forward left its losses to this pass: the same values
            model->losses_pending = 0;
            gpt2cu_loss_accumulate(model);
        }
    }
    matmul_backward_cuda(s->dln, g->wte, NULL, a->logits, a->lnf, p->wte, BT, C, Vp, NULL, s->reduce, st);
    cudaCheck(cudaMemsetAsync(s->dresidual, 0, (size_t)BT * C * sizeof(floatX), st));
    const floatX* top = a->residual3 + (L - 1) * lbtc;
    layernorm_backward_cuda(s->dresidual, g->lnfw, g->lnfb, s->dln, top, p->lnfw, a->lnf_mean, a->lnf_rstd,
                            BT, C, s->reduce, st);

    for (int l = L - 1; l >= 0; l--) {
        const floatX* residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * lbtc;
        floatX* ln1 = a->ln1 + lr * l * lbtc;
        const floatX* qkv = a->qkv + l * 3 * lbtc;
        const floatX* atty = a->atty + l * lbtc;
        const float* lse = a->att_lse + l * llse;
        const floatX* residual2 = a->residual2 + l * lbtc;
        floatX* ln2 = a->ln2 + lr * l * lbtc;
        const floatX* fch = a->fch + l * 4 * lbtc;
        floatX* fch_gelu = a->fch_gelu + lr * l * 4 * lbtc;
        const float* ln1_mean = a->ln1_mean + l * lbt;
        const float* ln1_rstd = a->ln1_rstd + l * lbt;
        const float* ln2_mean = a->ln2_mean + l * lbt;
        const float* ln2_rstd = a->ln2_rstd + l * lbt;
        if (model->recompute) {
            // rebuild what the forward did not keep: the same math, though not always the same
            // kernel (the forward's LayerNorms are fused with the residual add, and with
            // --gelu-fusion its GELU ran in the matmul epilogue), so a bf16 value can differ in
            // its last bit from the one the forward used
            layernorm_forward_cuda(ln1, NULL, NULL, residual, p->ln1w + l * C, p->ln1b + l * C, BT, C, st);
            layernorm_forward_cuda(ln2, NULL, NULL, residual2, p->ln2w + l * C, p->ln2b + l * C, BT, C, st);
            gelu_forward_cuda(fch_gelu, fch, (size_t)BT * 4 * C, st);
        }
        // MLP; dresidual holds d(residual3), which flows on unchanged as part of d(residual2)
        const floatX* dmlp_out = s->dresidual;  // the gradient of the MLP projection's output
        if (q->down_w[1] != NULL) {
            adapter_backward_cuda(s->dproj, pg->down_w[1] + (size_t)l * m * C, pg->down_b[1] + (size_t)l * m,
                                  pg->up_w[1] + (size_t)l * C * m, pg->up_b[1] + (size_t)l * C, s->adapter_dg,
                                  s->adapter_dz, s->dresidual, a->adapter_in[1] + l * lbtc, a->adapter_z[1] + l * lbtm,
                                  a->adapter_g[1] + l * lbtm, q->down_w[1] + (size_t)l * m * C,
                                  q->up_w[1] + (size_t)l * C * m, BT, C, m, s->reduce, st);
            dmlp_out = s->dproj;
        }
        if (fuse_fcproj) {
            matmul_backward_cuda(s->dfch, GRAD_AT(g->fcprojw, (size_t)l * 4 * C * C), GRAD_AT(g->fcprojb, l * C), dmlp_out,
                                 fch_gelu, p->fcprojw + (size_t)l * 4 * C * C, BT, 4 * C, C, fch, s->reduce, st);
        } else {
            matmul_backward_cuda(s->dfch_gelu, GRAD_AT(g->fcprojw, (size_t)l * 4 * C * C), GRAD_AT(g->fcprojb, l * C),
                                 dmlp_out, fch_gelu, p->fcprojw + (size_t)l * 4 * C * C, BT, 4 * C, C, NULL, s->reduce, st);
            if (q->lora_A[3] != NULL) {
                lora_backward_cuda(s->dfch_gelu, pg->lora_A[3] + (size_t)l * r * 4 * C, pg->lora_B[3] + (size_t)l * C * r,
                                   s->lora_dh, dmlp_out, fch_gelu, a->lora_h[3] + l * lbtr,
                                   q->lora_A[3] + (size_t)l * r * 4 * C, q->lora_B[3] + (size_t)l * C * r, ls,
                                   BT, 4 * C, C, r, st);
            }
            gelu_backward_cuda(s->dfch, fch, s->dfch_gelu, (size_t)BT * 4 * C, st);
        }
        matmul_backward_cuda(s->dln, GRAD_AT(g->fcw, (size_t)l * 4 * C * C), GRAD_AT(g->fcb, l * 4 * C), s->dfch, ln2,
                             p->fcw + (size_t)l * 4 * C * C, BT, C, 4 * C, NULL, s->reduce, st);
        if (q->lora_A[2] != NULL) {
            lora_backward_cuda(s->dln, pg->lora_A[2] + (size_t)l * r * C, pg->lora_B[2] + (size_t)l * 4 * C * r, s->lora_dh,
                               s->dfch, ln2, a->lora_h[2] + l * lbtr, q->lora_A[2] + (size_t)l * r * C,
                               q->lora_B[2] + (size_t)l * 4 * C * r, ls, BT, C, 4 * C, r, st);
        }
        layernorm_backward_cuda(s->dresidual, GRAD_AT(g->ln2w, l * C), GRAD_AT(g->ln2b, l * C), s->dln, residual2,
                                p->ln2w + l * C, ln2_mean, ln2_rstd, BT, C, s->reduce, st);
        // attention; dresidual holds d(residual2)
        const floatX* datt_out = s->dresidual;
        if (q->down_w[0] != NULL) {
            adapter_backward_cuda(s->dproj, pg->down_w[0] + (size_t)l * m * C, pg->down_b[0] + (size_t)l * m,
                                  pg->up_w[0] + (size_t)l * C * m, pg->up_b[0] + (size_t)l * C, s->adapter_dg,
                                  s->adapter_dz, s->dresidual, a->adapter_in[0] + l * lbtc, a->adapter_z[0] + l * lbtm,
                                  a->adapter_g[0] + l * lbtm, q->down_w[0] + (size_t)l * m * C,
                                  q->up_w[0] + (size_t)l * C * m, BT, C, m, s->reduce, st);
            datt_out = s->dproj;
        }
        matmul_backward_cuda(s->datty, GRAD_AT(g->attprojw, (size_t)l * C * C), GRAD_AT(g->attprojb, l * C), datt_out,
                             atty, p->attprojw + (size_t)l * C * C, BT, C, C, NULL, s->reduce, st);
        if (q->lora_A[1] != NULL) {
            lora_backward_cuda(s->datty, pg->lora_A[1] + (size_t)l * r * C, pg->lora_B[1] + (size_t)l * C * r, s->lora_dh,
                               datt_out, atty, a->lora_h[1] + l * lbtr, q->lora_A[1] + (size_t)l * r * C,
                               q->lora_B[1] + (size_t)l * C * r, ls, BT, C, C, r, st);
        }
        attention_backward_cuda(&model->attention, s->dqkv, s->att_dsum, s->datty, qkv, atty, lse, B, T, C, NH, st);
        matmul_backward_cuda(s->dln, GRAD_AT(g->qkvw, (size_t)l * 3 * C * C), GRAD_AT(g->qkvb, l * 3 * C), s->dqkv, ln1,
                             p->qkvw + (size_t)l * 3 * C * C, BT, C, 3 * C, NULL, s->reduce, st);
        if (q->lora_A[0] != NULL) {
            lora_backward_cuda(s->dln, pg->lora_A[0] + (size_t)l * r * C, pg->lora_B[0] + (size_t)l * 3 * C * r, s->lora_dh,
                               s->dqkv, ln1, a->lora_h[0] + l * lbtr, q->lora_A[0] + (size_t)l * r * C,
                               q->lora_B[0] + (size_t)l * 3 * C * r, ls, BT, C, 3 * C, r, st);
        }
        layernorm_backward_cuda(s->dresidual, GRAD_AT(g->ln1w, l * C), GRAD_AT(g->ln1b, l * C), s->dln, residual,
                                p->ln1w + l * C, ln1_mean, ln1_rstd, BT, C, s->reduce, st);
        gpt2cu_bucket_done(model, l);  // layer l's gradients are final
    }
    #undef GRAD_AT
    if (g->wte != NULL) {
        encoder_backward_cuda(g->wte, g->wpe, s->dresidual, model->d_enc_order, model->d_enc_start, model->d_enc_token,
                              model->enc_buckets, B, T, C, st);
    }
    gpt2cu_bucket_done(model, L);  // wte (classifier and encoder), wpe, lnfw, lnfb
    if (model->reducing) {
        model->reducing = 0;
        model->in_flight = 1;
    }
    if (pg->prompt != NULL) {
        int k = model->prompt_len;
        prompt_backward_kernel<<<CEIL_DIV(k * C, 256), 256, 0, st>>>(pg->prompt, s->dresidual, B, T, k, C);
        cudaCheckLaunch();
    }
}

// sum of squares of the gradients of the trainable vector (synchronizes; the zero padding
// between PEFT tensors adds nothing)
static double gpt2cu_grad_sumsq(GPT2CU* model) {
    sum_of_squares_cuda(model->d_norm, model->grads_memory, model->dev_count, model->d_norm + 1, model->stream);
    double s;
    cudaCheck(cudaMemcpyAsync(&s, model->d_norm, sizeof(double), cudaMemcpyDeviceToHost, model->stream));
    cudaCheck(cudaStreamSynchronize(model->stream));
    return s;
}

// global L2 norm of the gradients (synchronizes)
static float gpt2cu_grad_norm(GPT2CU* model) { return (float)sqrt(gpt2cu_grad_sumsq(model)); }

static void gpt2cu_update(GPT2CU* model, float lr, float beta1, float beta2, float eps, float weight_decay,
                          float grad_scale, int step) {
    for (int i = 0; i < model->num_tensors; i++) {
        size_t off = model->t_dev[i];
        float wd = model->t_decay[i] ? weight_decay : 0.0f;
        adamw_update_cuda(model->master + off, model->train_x + off, model->grads_memory + off,
                          model->m_memory + off, model->v_memory + off, model->t_size[i], lr, beta1, beta2, eps, wd,
                          grad_scale, step, model->stream);
    }
}

// device -> host copies of the master weights (and moments) for checkpoints: h_params, or with
// PEFT h_trainable (the frozen base on the host never changes)
static void gpt2cu_download(GPT2CU* model, int with_moments) {
    if (gpt2cu_is_peft(model)) {
        cudaCheck(cudaStreamSynchronize(model->stream));
        gpt2cu_trainable_to_host(model, model->h_trainable, model->master);
        if (with_moments) {
            gpt2cu_trainable_to_host(model, model->h_m, model->m_memory);
            gpt2cu_trainable_to_host(model, model->h_v, model->v_memory);
        }
        return;
    }
    size_t bytes = model->num_parameters * sizeof(float);
    size_t mbytes = model->opt_count * sizeof(float);
    cudaCheck(cudaStreamSynchronize(model->stream));
    cudaCheck(cudaMemcpy(model->h_params, model->master, bytes, cudaMemcpyDeviceToHost));
    if (with_moments) {
        cudaCheck(cudaMemcpy(model->h_m, model->m_memory, mbytes, cudaMemcpyDeviceToHost));
        cudaCheck(cudaMemcpy(model->h_v, model->v_memory, mbytes, cudaMemcpyDeviceToHost));
    }
}

static void gpt2cu_upload_moments(GPT2CU* model) {
    if (gpt2cu_is_peft(model)) {
        gpt2cu_trainable_to_device(model, model->m_memory, model->h_m);
        gpt2cu_trainable_to_device(model, model->v_memory, model->h_v);
        return;
    }
    size_t bytes = model->opt_count * sizeof(float);
    cudaCheck(cudaMemcpy(model->m_memory, model->h_m, bytes, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(model->v_memory, model->h_v, bytes, cudaMemcpyHostToDevice));
}

// ZeRO-1 over world GPUs: keep the AdamW moments of [opt_offset, +opt_count) only, and pad the
// gradients and master weights to world * shard_size floats (llmc/comm.h's comm_shard).
// Called once, before the first step.
static void gpt2cu_enable_zero1(GPT2CU* model, int world, size_t opt_offset, size_t opt_count) {
    size_t n = model->num_parameters;
    size_t per = ((n + world - 1) / world + 63) / 64 * 64;  // comm_shard's shard size
    size_t padded = per * world;
    float* grads = (float*)cuda_malloc_check(padded * sizeof(float), "gradients (padded)");
    cudaCheck(cudaMemset(grads, 0, padded * sizeof(float)));
    cudaCheck(cudaFree(model->grads_memory));
    model->grads_memory = grads;
    point_params_f(&model->grads, model->grads_memory, model->param_sizes);
    float* master = (float*)cuda_malloc_check(padded * sizeof(float), "master weights (padded)");
    cudaCheck(cudaMemset(master, 0, padded * sizeof(float)));
    cudaCheck(cudaMemcpy(master, model->master, n * sizeof(float), cudaMemcpyDeviceToDevice));
    cudaCheck(cudaFree(model->master));
    model->master = master;
    cudaCheck(cudaFree(model->m_memory));
    cudaCheck(cudaFree(model->v_memory));
    model->m_memory = (float*)cuda_malloc_check(opt_count * sizeof(float) + 4, "AdamW m (shard)");
    model->v_memory = (float*)cuda_malloc_check(opt_count * sizeof(float) + 4, "AdamW v (shard)");
    cudaCheck(cudaMemset(model->m_memory, 0, opt_count * sizeof(float)));
    cudaCheck(cudaMemset(model->v_memory, 0, opt_count * sizeof(float)));
    model->grad_shard = (float*)cuda_malloc_check(per * sizeof(float), "gradient shard");
    model->opt_offset = opt_offset;
    model->opt_count = opt_count;
    model->shard_size = per;
    model->device_bytes += (padded - n) * 2 * sizeof(float) + per * sizeof(float);
    model->device_bytes -= (n - opt_count) * 2 * sizeof(float);
}

__global__ static void float_to_floatx_kernel(floatX* out, const float* in, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { out[i] = f2fx(in[i]); }
}

// ZeRO-1 step: AdamW on this process's shard (grads in grad_shard), then every process's
// updated master shard to all, and the floatX weights from the gathered master.
static void gpt2cu_update_zero1(GPT2CU* model, int rank, float lr, float beta1, float beta2, float eps,
                                float weight_decay, float grad_scale, int step) {
    size_t lo = model->opt_offset, hi = lo + model->opt_count;
    size_t start = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        size_t end = start + model->param_sizes[i];
        size_t a = start > lo ? start : lo;
        size_t b = end < hi ? end : hi;
        if (a < b) {
            float wd = PARAMETER_DECAYS[i] ? weight_decay : 0.0f;
            adamw_update_cuda(model->master + a, model->params_memory + a, model->grad_shard + (a - lo),
                              model->m_memory + (a - lo), model->v_memory + (a - lo), b - a, lr, beta1, beta2, eps,
                              wd, grad_scale, step, model->stream);
        }
        start = end;
    }
    nccl_allgather(&model->nccl, model->master + (size_t)rank * model->shard_size, model->master, model->shard_size,
                   model->stream);
    size_t n = model->num_parameters;
    float_to_floatx_kernel<<<(unsigned)CEIL_DIV(n, 256), 256, 0, model->stream>>>(model->params_memory, model->master, n);
    cudaCheckLaunch();
}

static void gpt2cu_free(GPT2CU* model) {
    cudaCheck(cudaFree(model->master));
    if (model->train_x != model->params_memory) { cudaCheck(cudaFree(model->train_x)); }
    cudaCheck(cudaFree(model->params_memory));
    cudaCheck(cudaFree(model->grads_memory));
    cudaCheck(cudaFree(model->m_memory));
    cudaCheck(cudaFree(model->v_memory));
    if (model->acts_memory != NULL) {
        cudaCheck(cudaFree(model->acts_memory));
        cudaCheck(cudaFree(model->scratch_memory));
        cudaCheck(cudaFree(model->d_inputs));
        cudaCheck(cudaFree(model->d_targets));
        cudaCheck(cudaFree(model->d_enc_order));
        cudaCheck(cudaFree(model->d_enc_start));
        cudaCheck(cudaFree(model->d_enc_token));
        cudaCheck(cudaFree(model->d_norm));
        cudaCheck(cudaFree(model->d_loss_sum));
        cudaCheck(cudaFree(model->d_weights));
        if (model->d_kl != NULL) { cudaCheck(cudaFree(model->d_kl)); }
        free(model->h_inputs);
        free(model->h_enc_count);
        free(model->h_enc_order);
        free(model->h_enc_start);
        free(model->h_enc_token);
    }
    attention_free(&model->attention);
    free(model->h_params);
    free(model->h_trainable);
    free(model->h_pinputs);
    free(model->h_ptargets);
    free(model->h_pweights);
    free(model->h_m);
    free(model->h_v);
    free(model->h_losses);
    free(model->h_logits);
    free(model->h_logits_x);
    if (model->grad_shard != NULL) { cudaCheck(cudaFree(model->grad_shard)); }
    if (model->bucket_ready != NULL) {
        for (int b = 0; b <= model->config.num_layers; b++) { cudaCheck(cudaEventDestroy(model->bucket_ready[b])); }
        free(model->bucket_ready);
        cudaCheck(cudaEventDestroy(model->reduced));
        cudaCheck(cudaStreamDestroy(model->comm_stream));
    }
    cudaCheck(cudaStreamDestroy(model->stream));
}

// ----------------------------------------------------------------------------
// The model as the shared training loop sees it (llmc/train_loop.h)

static void gpu_allocate(void* self, int B, int T, size_t opt_offset, size_t opt_count) {
    GPT2CU* model = (GPT2CU*)self;
    if (opt_offset != 0 || opt_count != model->num_trainable) {
        if (gpt2cu_is_peft(model)) {
            die("-z 1 with --peft %s: ZeRO-1 sharding of the PEFT tensors is not in train_gpt_cu (they are small: "
                "use -z 0, which keeps their moments whole on every GPU)", PEFT_METHOD_NAMES[model->peft.pc.method]);
        }
        gpt2cu_enable_zero1(model, model->nccl.world, opt_offset, opt_count);
    }
    gpt2cu_allocate(model, B, T);
    if (model->nccl.world > 1 && !gpt2cu_is_peft(model)) { gpt2cu_setup_buckets(model); }
    model->h_logits = float_alloc_check(model->config.padded_vocab_size, "logits row (host)");
    model->h_logits_x = (floatX*)malloc_check((size_t)model->config.padded_vocab_size * sizeof(floatX), "logits row staging");
    gpt2cu_loss_reset(model);
}

static void gpu_forward(void* self, const int* inputs, const int* targets, const float* weights, int B, int T) {
    gpt2cu_forward((GPT2CU*)self, inputs, targets, weights, B, T);
}

static double gpu_take_loss_sum(void* self, double* weight_sum) {
    GPT2CU* model = (GPT2CU*)self;
    double s = gpt2cu_loss_read(model, weight_sum);  // synchronizes
    gpt2cu_loss_reset(model);
    return s;
}

static void gpu_set_distill(void* self, int on) { ((GPT2CU*)self)->distill_on = on; }

// every row's losses at the given positions (B, T), into out
static void gpu_losses_all(void* self, float* out) {
    GPT2CU* model = (GPT2CU*)self;
    gpt2cu_losses_ready(model);
    int k = model->prompt_len, Tx = model->batch_T, T = Tx - k;
    size_t n = (size_t)model->batch_B * Tx;
    cudaCheck(cudaMemcpyAsync(model->h_losses, model->acts.losses, n * sizeof(float), cudaMemcpyDeviceToHost, model->stream));
    cudaCheck(cudaStreamSynchronize(model->stream));
    for (int b = 0; b < model->batch_B; b++) {
        memcpy(out + (size_t)b * T, model->h_losses + (size_t)b * Tx + k, (size_t)T * sizeof(float));
    }
}

// the loss weights of the last forward's given positions (the prompt's stay 0), to the device
static void gpu_set_weights(void* self, const float* weights) {
    GPT2CU* model = (GPT2CU*)self;
    gpt2cu_losses_ready(model);  // with the weights of its forward
    int k = model->prompt_len, Tx = model->batch_T, T = Tx - k;
    for (int b = 0; b < model->batch_B; b++) {
        for (int t = 0; t < Tx; t++) {
            model->h_pweights[(size_t)b * Tx + t] = t < k ? 0.0f : weights[(size_t)b * T + t - k];
        }
    }
    cudaCheck(cudaMemcpyAsync(model->d_weights, model->h_pweights, (size_t)model->batch_B * Tx * sizeof(float),
                              cudaMemcpyHostToDevice, model->stream));
    // the copy reads h_pweights when the stream gets to it: wait, so the next forward may refill it
    cudaCheck(cudaStreamSynchronize(model->stream));
    model->has_weights = 1;
}

static const float* gpu_logits_at(void* self, int t) {
    GPT2CU* model = (GPT2CU*)self;
    int V = model->config.vocab_size, Vp = model->config.padded_vocab_size;
    cudaCheck(cudaMemcpyAsync(model->h_logits_x, model->acts.logits + (size_t)(t + model->prompt_len) * Vp, (size_t)V * sizeof(floatX),
                              cudaMemcpyDeviceToHost, model->stream));
    cudaCheck(cudaStreamSynchronize(model->stream));
    for (int k = 0; k < V; k++) { model->h_logits[k] = host_fx2f(model->h_logits_x[k]); }
    return model->h_logits;
}

static void gpu_zero_grad(void* self) { gpt2cu_zero_grad((GPT2CU*)self); }

static void gpu_backward(void* self, float dloss) { gpt2cu_backward((GPT2CU*)self, dloss); }

// the step's last backward sums each bucket as it finishes it (--overlap-reduce 1, full training)
static void gpu_reduce_in_backward(void* self, int zero1) {
    GPT2CU* model = (GPT2CU*)self;
    if (!model->overlap_reduce || model->bucket_ready == NULL) { return; }
    model->reducing = 1;
    model->reduce_zero1 = zero1;
}

// Several GPUs: the gradients are summed with NCCL (llmc/comm_nccl.h): all of them, or this
// process's shard (ZeRO-1); the shard of the sums gives this process's part of the norm, as
// on the CPU, so both stages give the same bits.
static double gpu_reduce_gradients(void* self, Comm* comm, int zero1) {
    GPT2CU* model = (GPT2CU*)self;
    if (gpt2cu_is_peft(model)) {
        // the PEFT tensors sit padded on the device (no shards of the host order to match):
        // sum all of them, and rank 0 alone counts the norm, which the loop sums over ranks
        if (zero1) { die("ZeRO-1 with PEFT: not in train_gpt_cu"); }
        if (comm->world > 1) { nccl_allreduce_sum(&model->nccl, model->grads_memory, model->dev_count, model->stream); }
        return comm->rank == 0 ? gpt2cu_grad_sumsq(model) : 0.0;
    }
    size_t off, cnt;
    comm_shard(model->num_parameters, comm->world, comm->rank, &off, &cnt);
    const float* shard = zero1 ? model->grad_shard : model->grads_memory + off;
    if (model->in_flight) {
        // the backward queued the sums on comm_stream: the norm and the update come after them
        if (model->reduce_zero1 != zero1) { die("gpu_reduce_gradients: the backward summed for ZeRO-%d, the step is ZeRO-%d", model->reduce_zero1, zero1); }
        if (!model->drop_reduced_wait) { cudaCheck(cudaStreamWaitEvent(model->stream, model->reduced, 0)); }
        model->in_flight = 0;
    } else if (comm->world > 1) {
        // the same buckets in the same order on this stream: the overlapped sums' bits
        int L = model->config.num_layers;
        for (int l = L - 1; l >= 0; l--) { gpt2cu_reduce_bucket(model, l, zero1, model->stream); }
        gpt2cu_reduce_bucket(model, L, zero1, model->stream);
    }
    sum_of_squares_cuda(model->d_norm, shard, cnt, model->d_norm + 1, model->stream);
    double s;
    cudaCheck(cudaMemcpyAsync(&s, model->d_norm, sizeof(double), cudaMemcpyDeviceToHost, model->stream));
    cudaCheck(cudaStreamSynchronize(model->stream));
    return s;
}

static void gpu_update(void* self, Comm* comm, int zero1, float lr, float beta1, float beta2, float eps,
                       float weight_decay, float grad_scale, int t) {
    if (zero1) {
        gpt2cu_update_zero1((GPT2CU*)self, comm->rank, lr, beta1, beta2, eps, weight_decay, grad_scale, t);
    } else {
        gpt2cu_update((GPT2CU*)self, lr, beta1, beta2, eps, weight_decay, grad_scale, t);
    }
}

static const float* gpu_params_host(void* self) {
    GPT2CU* model = (GPT2CU*)self;
    gpt2cu_download(model, 0);
    return gpt2cu_is_peft(model) ? model->h_trainable : model->h_params;
}

static void gpu_moments_host(void* self, float** m, float** v) {
    GPT2CU* model = (GPT2CU*)self;
    gpt2cu_download(model, 1);
    *m = model->h_m;
    *v = model->h_v;
}

static void gpu_moments_loaded(void* self) { gpt2cu_upload_moments((GPT2CU*)self); }

static void gpu_report(void* self) {
    GPT2CU* model = (GPT2CU*)self;
    const GPT2Config* mc = &model->config;
    printf("precision: %s activations, fp32 master weights; recompute %s, GELU fusion %s, attention %s; %.2f GiB allocated\n",
           PRECISION_NAME, model->recompute ? "on" : "off", model->gelu_fusion ? "on" : "off",
           attention_name(&model->attention, mc->channels / mc->num_heads),
           model->device_bytes / 1073741824.0);
    if (model->nccl.world > 1) {
        if (model->bucket_ready != NULL) {
            printf("gradients: summed over %d GPUs in %d buckets (a layer each, then the embeddings), %s\n", model->nccl.world,
                   mc->num_layers + 1, model->overlap_reduce ? "overlapped with the backward (--overlap-reduce 1)"
                                                             : "after the backward (--overlap-reduce 0)");
        } else {
            printf("gradients: the PEFT tensors summed over %d GPUs in one all-reduce after the backward\n", model->nccl.world);
        }
    }
}

#ifndef TESTING
int main(int argc, char** argv) {
    Comm comm;
    comm_init(&comm, &argc, &argv);
    TrainConfig cfg;
    train_config_parse(&cfg, argc, argv,
        "usage: train_gpt_cu [flags]     or: mpirun -np N train_gpt_cu [flags] (one process per GPU)\n"
        "Trains a GPT-2 on token shards on NVIDIA GPUs (" PRECISION_NAME " activations, fp32 master weights).\n"
        "Example: ./train_gpt_cu -e d12 -b 32 -t 1024 -x 100 -o log_d12");
    nccl_processes_from_flags(&comm, &cfg);
    // one GPU per process: the local rank picks it
    int device_count = cuda_device_count_or_die();
    int device = comm_local_rank(&comm, cfg.gpus_per_node) % device_count;
    cudaCheck(cudaSetDevice(device));
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, device));
    NcclComm nccl;
    nccl_init(&nccl, &comm, &cfg);  // before anything that talks to the other processes

    char model_path[1100];
    int start_step = train_resume_step(&cfg, &comm, model_path, sizeof(model_path));
    GPT2Config config;
    float* params = train_initial_params(&cfg, start_step, model_path, &config);
    PeftLayout lay;
    uint64_t base_hash = 0;
    float* peft = train_peft_setup(&cfg, start_step, model_path, &config, params, &lay, &base_hash);
    GPT2CU model;
    gpt2cu_build(&model, &config, params, peft != NULL ? &lay : NULL, peft);
    model.recompute = cfg.recompute;
    model.gelu_fusion = cfg.gelu_fusion != 0;  // on unless --gelu-fusion 0 (measured 2-3% faster, dev/cuda/results/gpu_2026-12-04_h200_run2)
    model.overlap_reduce = cfg.overlap_reduce != 0;
    model.attention.kind = attention_kind_parse(cfg.attention, "--attention");
    model.nccl = nccl;
    GPT2CU teacher;
    if (cfg.distill != NULL) {
        char err[LLMC_ERRLEN];
        GPT2Config tc;
        float* tparams;
        if (checkpoint_read(cfg.distill, &tc, &tparams, err) != 0) { die("--distill: %s", err); }
        gpt2cu_build(&teacher, &tc, tparams, NULL, NULL);
        teacher.attention.kind = model.attention.kind;
        gpt2cu_set_teacher(&model, &teacher, cfg.distill_alpha, cfg.distill_tau, cfg.distill_reverse, cfg.distill);
        if (comm.rank == 0) { train_distill_describe(&cfg, &tc, teacher.num_parameters); }
    }

    char device_name[300];
    snprintf(device_name, sizeof(device_name), "%s (sm_%d%d, %d SMs, %.1f GiB)", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0);
    ModelOps ops;
    memset(&ops, 0, sizeof(ops));
    ops.self = &model;
    ops.config = model.config;
    ops.num_parameters = model.num_parameters;
    ops.num_trainable = model.num_trainable;
    ops.peft = peft != NULL ? &model.peft : NULL;
    ops.base_params = model.h_params;
    ops.base_hash = base_hash;
    ops.device_name = device_name;
    ops.allocate = gpu_allocate;
    ops.forward = gpu_forward;
    ops.take_loss_sum = gpu_take_loss_sum;
    ops.losses_all = gpu_losses_all;
    ops.set_distill = gpu_set_distill;
    ops.set_weights = gpu_set_weights;
    ops.logits_at = gpu_logits_at;
    ops.zero_grad = gpu_zero_grad;
    ops.backward = gpu_backward;
    ops.reduce_gradients = gpu_reduce_gradients;
    ops.reduce_in_backward = gpu_reduce_in_backward;
    ops.update = gpu_update;
    ops.params_host = gpu_params_host;
    ops.moments_host = gpu_moments_host;
    ops.moments_loaded = gpu_moments_loaded;
    ops.report = gpu_report;
    ops.peak_tflops = gpu_peak_bf16_tflops();
    int rc = train_loop_run(&ops, &cfg, &comm, start_step, start_step > 0 ? model_path : cfg.init_model);
    size_t free_b = 0, total_b = 0;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    if (comm.rank == 0) { printf("device memory in use at the end: %.2f GiB of %.1f GiB\n", (total_b - free_b) / 1073741824.0, total_b / 1073741824.0); }
    gpt2cu_free(&model);
    if (cfg.distill != NULL) { gpt2cu_free(&teacher); }
    matmul_cuda_free();
    nccl_free(&nccl);
    comm_finalize(&comm);
    return rc;
}
#endif
