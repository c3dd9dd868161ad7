// The training run, shared by train_gpt.c (CPU) and train_gpt.cu (GPU): data, schedule,
// evaluation, sampling, checkpoints and exact resume, the spike guard, signals, logging and
// the terminal line all live here once. A program provides its model through ModelOps, a
// table of the few operations that differ between the CPU and the GPU.
#ifndef LLMC_TRAIN_LOOP_H
#define LLMC_TRAIN_LOOP_H

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "utils.h"
#include "rand.h"
#include "args.h"
#include "checkpoint.h"
#include "dataloader.h"
#include "tokenizer.h"
#include "sampler.h"
#include "schedule.h"
#include "logger.h"
#include "guard.h"
#include "train_state.h"
#include "signals.h"
#include "comm.h"
#include "adamw.h"  // grad_clip_scale
#include "peft.h"
#include "dpo.h"

typedef struct {
    void* self;               // the model
    GPT2Config config;
    size_t num_parameters;    // the model's
    // What the optimizer trains: every parameter (num_trainable = num_parameters, peft NULL),
    // or the PEFT tensors of peft on the frozen base (llmc/peft.h). Everything below that
    // speaks of "the parameters" (moments, shards, updates, checkpoints) means these.
    size_t num_trainable;
    const PeftLayout* peft;
    const float* base_params;  // PEFT: the frozen base's fp32 weights on the host (for --merge-out)
    uint64_t base_hash;        // PEFT: peft_hash_floats of them, recorded in adapter files
    const char* device_name;  // for the start-up lines, e.g. "CPU" or the GPU's name
    // Allocates everything a step at (B, T) needs, with the AdamW moments of the parameters
    // [opt_offset, opt_offset + opt_count) (all, or this process's ZeRO-1 shard).
    void (*allocate)(void* self, int B, int T, size_t opt_offset, size_t opt_count);
    // Forward on host inputs (B, T); B and T may be below the allocated shape; targets may
    // be NULL; weights (B, T) are the per-target loss weights (NULL: all 1). It need not
    // wait for the result (the GPU queues its work).
    void (*forward)(void* self, const int* inputs, const int* targets, const float* weights, int B, int T);
    // Since the last call (which it resets): the weighted sum of the per-position losses of
    // the forwards with targets, and in *weight_sum the sum of their weights.
    double (*take_loss_sum)(void* self, double* weight_sum);
    // The logits (V floats) of batch row 0 at position t of the last forward, on the host.
    const float* (*logits_at)(void* self, int t);
    void (*zero_grad)(void* self);
    // Adds the gradients of dloss * sum over positions of weight * loss, of the last forward:
    // dloss is the weight of one unit-weight position in the step's loss.
    void (*backward)(void* self, float dloss);
    // Sums the gradients over processes (all of them, or with zero1 this process's shard, see
    // comm_shard) and returns the sum of squares of this process's shard of the sums.
    double (*reduce_gradients)(void* self, Comm* comm, int zero1);
    // Optional (several processes): the next backward is the step's last, so the model may start
    // summing each layer's gradients as soon as the backward has finished them; reduce_gradients
    // then waits for those sums instead of starting them.
    void (*reduce_in_backward)(void* self, int zero1);
    // One AdamW step on the parameters this process holds moments for (grad_scale multiplies
    // the gradients; t counts updates from 1), then with zero1 the parameters are gathered.
    void (*update)(void* self, Comm* comm, int zero1, float lr, float beta1, float beta2, float eps,
                   float weight_decay, float grad_scale, int t);
    // Host views for checkpoints: the fp32 trainable parameters (the model, or the PEFT
    // tensors), and the moments this process holds.
    // moments_loaded tells the model the host moments were overwritten (resume).
    const float* (*params_host)(void* self);
    void (*moments_host)(void* self, float** m, float** v);
    void (*moments_loaded)(void* self);
    // The per-position losses of the last forward with targets, (B, T) at the given positions
    // (after a soft prompt's), into out.
    void (*losses_all)(void* self, float* out);
    // Replaces the loss weights (B, T) of the last forward before its backward: DPO's per-token
    // coefficients (llmc/dpo.h), which may be negative.
    void (*set_weights)(void* self, const float* weights);
    // Optional (NULL: no distillation): with 1, the forwards with targets use the teacher's mixed
    // loss (llmc/distill.h) until turned off; the loop turns it on for its training steps only,
    // so evaluations report the plain cross-entropy.
    void (*set_distill)(void* self, int on);
    // Optional: prints device-specific lines (memory in use...) once the model is allocated.
    void (*report)(void* self);
    double peak_tflops;             // the device's peak, for MFU when --peak-tflops is not given (0: unknown)
    size_t opt_offset, opt_count;  // set by train_loop_run
    int T;                          // allocated sequence length, set by train_loop_run
} ModelOps;

#include "train_dpo.h"  // DPO's reference pass and held-out scores, through ModelOps

// --distill (llmc/distill.h), for both programs: the teacher must speak the student's
// vocabulary, and a soft prompt's positions would have no teacher
static void train_distill_check(const GPT2Config* student, const GPT2Config* teacher, int prompt_len, const char* path) {
    if (student->vocab_size != teacher->vocab_size || student->padded_vocab_size != teacher->padded_vocab_size) {
        die("--distill: the teacher %s has a vocabulary of %d (padded %d), the student %d (padded %d): distillation "
            "needs the same tokens", path, teacher->vocab_size, teacher->padded_vocab_size, student->vocab_size,
            student->padded_vocab_size);
    }
    if (prompt_len > 0) { die("--distill with --peft prompt: the soft prompt's positions have no teacher; not supported"); }
}

// the "distill:" start-up line
static void train_distill_describe(const TrainConfig* cfg, const GPT2Config* tc, size_t teacher_parameters) {
    printf("distill: teacher %s (L=%d C=%d, %.2fM parameters), loss (1 - %g) CE + %g x %g^2 x %s KL at temperature %g\n",
           cfg->distill, tc->num_layers, tc->channels, teacher_parameters / 1e6, cfg->distill_alpha, cfg->distill_alpha,
           cfg->distill_tau, cfg->distill_reverse ? "reverse" : "forward", cfg->distill_tau);
}

// Prepares -o and says which step a run starts from: with -y 1, the latest complete checkpoint
// in -o, verified against its integrity record (rank 0 looks, every process gets the same
// answer); model_path then names its model file. 0 otherwise.
// Rank 0 takes the run directory's lock (llmc/run_dir.h) for the rest of the process's life, and
// refuses a fresh run into a directory that holds one unless --overwrite.
static int train_resume_step(const TrainConfig* cfg, Comm* comm, char* model_path, size_t n) {
    if (cfg->resume && cfg->output_dir == NULL) { die("-y: resuming needs the output directory -o"); }
    if (cfg->overwrite && cfg->output_dir == NULL) { die("--overwrite: there is no output directory -o to overwrite"); }
    if (cfg->output_dir != NULL) { run_dir_check_path(cfg->output_dir); }
    int start_step = 0;
    if (cfg->output_dir != NULL && !cfg->eval_only && comm->rank == 0) {
        ensure_dir(cfg->output_dir);
        run_dir_lock(cfg->output_dir);  // held until the process exits
        int existing = run_dir_count_run_files(cfg->output_dir);
        if (!cfg->resume && existing > 0) {
            if (!cfg->overwrite) {
                die("-o %s already holds a run (%d log and checkpoint files): continue it with -y 1, or replace it "
                    "with --overwrite (deletes its logs and checkpoints)", cfg->output_dir, existing);
            }
            run_dir_clear(cfg->output_dir);
            printf("--overwrite: deleted the run in %s\n", cfg->output_dir);
        }
    }
    if (!cfg->resume) { comm_barrier(comm); return 0; }
    if (comm->rank == 0) {
        remove_stale_temp_files(cfg->output_dir);
        start_step = latest_checkpoint(cfg->output_dir);
        if (start_step >= 0) {
            char err[LLMC_ERRLEN];
            int verified = 0;
            double t0 = now_seconds();
            if (checkpoint_verify(cfg->output_dir, start_step, &verified, err) != 0) { die("-y: %s", err); }
            if (verified > 0) {
                printf("resume: step %d verified (%d files, %.1f s)\n", start_step, verified, now_seconds() - t0);
            } else {
                printf("resume: warning: step %d has no integrity record (written by an older version): not verified\n", start_step);
            }
        }
    }
    comm_broadcast_int(comm, &start_step);
    if (start_step < 0) {
        if (comm->rank == 0) { printf("resume: no complete checkpoint in %s, starting from -e %s\n", cfg->output_dir, cfg->init_model); }
        return 0;
    }
    checkpoint_model_path(cfg->output_dir, start_step, model_path, n);
    if (comm->rank == 0) { printf("resume: from step %d (%s)\n", start_step, model_path); }
    return start_step;
}

// The initial fp32 parameters: the resumed checkpoint, -e's checkpoint file, or a fresh GPT-2
// init of -e's preset (the same seed on every process, so all start from the same weights).
static float* train_initial_params(const TrainConfig* cfg, int start_step, const char* model_path, GPT2Config* config) {
    char err[LLMC_ERRLEN];
    float* params = NULL;
    // a PEFT run's checkpoint is its adapter file: the base comes from -e, as when it began
    if (start_step > 0 && peft_file_is_adapter(model_path)) { start_step = 0; }
    // -e names a file when one exists or the name has a '/'; else a preset (dN). Both at once
    // (a file "d12" in the current directory) is ambiguous: refused rather than guessed.
    int is_preset = gpt2_config_from_preset(cfg->init_model, config, err) == 0;
    int is_file = access(cfg->init_model, F_OK) == 0;
    if (is_preset && cfg->vocab_size > 0) {
        // a preset with another tokenizer's vocabulary, stored padded to a multiple of 128 as llm.c does
        config->vocab_size = cfg->vocab_size;
        config->padded_vocab_size = (cfg->vocab_size + 127) / 128 * 128;
    }
    if (cfg->vocab_size > 0 && start_step == 0 && !is_preset) {
        die("--vocab-size sets a dN preset's vocabulary; -e %s is a checkpoint with its own", cfg->init_model);
    }
    if (start_step > 0) {
        if (checkpoint_read(model_path, config, &params, err) != 0) { die("-y: %s", err); }
    } else if (is_file && is_preset) {
        die("-e %s: is both a model preset and a file in the current directory; write ./%s for the file, or move it",
            cfg->init_model, cfg->init_model);
    } else if (is_file || strchr(cfg->init_model, '/') != NULL) {
        if (checkpoint_read(cfg->init_model, config, &params, err) != 0) { die("-e: %s", err); }
    } else if (is_preset) {
        params = float_alloc_check(gpt2_num_parameters(config), "model parameters");
        gpt2_init_random(params, config, (uint64_t)cfg->seed);
    } else if (cfg->init_model[0] == 'd' && isdigit((unsigned char)cfg->init_model[1])) {
        die("-e: %s", err);  // a preset out of range: say the range
    } else {
        die("-e: '%s' is neither an existing checkpoint file nor a model preset like d12 (dN, N = 1..256)", cfg->init_model);
    }
    if (!all_finite(params, gpt2_num_parameters(config))) {
        die("-%s: %s holds non-finite weights (NaN or Inf): refusing to %s from it", start_step > 0 ? "y" : "e",
            start_step > 0 ? model_path : cfg->init_model, start_step > 0 ? "resume" : "start");
    }
    if (cfg->T > config->max_seq_len) { die("-t: sequence length %d exceeds the model's maxT %d", cfg->T, config->max_seq_len); }
    return params;
}

// The PEFT tensors a run trains (llmc/peft.h), or NULL for full fine-tuning (then lay->pc.method
// is PEFT_NONE). In order: the adapter file of the checkpoint being resumed (model_path ends in
// .peft), --peft-init's file, or a fresh init from --seed. The method and its settings come
// from the flags; an adapter file must agree with them (with --peft full and --peft-init, the
// file's own method is taken: evaluating an adapter needs no flags but the file).
// base_params: the frozen base; *base_hash gets its hash (adapter files record it).
static float* train_peft_setup(const TrainConfig* cfg, int start_step, const char* model_path, const GPT2Config* config,
                               const float* base_params, PeftLayout* lay, uint64_t* base_hash) {
    char err[LLMC_ERRLEN];
    PeftConfig pc;
    memset(&pc, 0, sizeof(pc));
    if (peft_parse_method(cfg->peft, &pc.method, err) != 0) { die("%s", err); }
    pc.lora_rank = cfg->lora_rank;
    pc.lora_alpha = cfg->lora_alpha;
    if (lora_parse_targets(cfg->lora_targets, &pc.lora_targets, err) != 0) { die("%s", err); }
    pc.bitfit_ln = cfg->bitfit_ln;
    pc.adapter_size = cfg->adapter_size;
    pc.prompt_len = cfg->prompt_len;
    memset(lay, 0, sizeof(*lay));
    const char* file = NULL;
    if (start_step > 0 && peft_file_is_adapter(model_path)) { file = model_path; }
    else if (start_step == 0 && cfg->peft_init != NULL) { file = cfg->peft_init; }
    if (pc.method == PEFT_NONE && file == NULL) {
        if (cfg->merge_out != NULL) { die("--merge-out: merges a LoRA or BitFit adapter; this run has none (--peft full)"); }
        return NULL;
    }
    *base_hash = peft_hash_floats(base_params, gpt2_num_parameters(config));
    float* peft = NULL;
    if (file != NULL) {
        if (peft_file_read(file, config, *base_hash, lay, &peft, err) != 0) { die("%s%s", file == cfg->peft_init ? "--peft-init: " : "-y: ", err); }
        const PeftConfig* f = &lay->pc;
        if (pc.method != PEFT_NONE) {
            int same = f->method == pc.method;
            if (same && pc.method == PEFT_LORA) { same = f->lora_rank == pc.lora_rank && f->lora_alpha == pc.lora_alpha && f->lora_targets == pc.lora_targets; }
            if (same && pc.method == PEFT_BITFIT) { same = f->bitfit_ln == pc.bitfit_ln; }
            if (same && pc.method == PEFT_ADAPTER) { same = f->adapter_size == pc.adapter_size; }
            if (same && pc.method == PEFT_PROMPT) { same = f->prompt_len == pc.prompt_len; }
            if (!same) {
                die("%s: holds a %s adapter (rank %d, alpha %g, targets %d, bitfit-ln %d, size %d, prompt %d) that differs from "
                    "the flags (--peft %s and its settings): give the flags it was made with, or --peft full to take the file's",
                    file, PEFT_METHOD_NAMES[f->method], f->lora_rank, f->lora_alpha, f->lora_targets, f->bitfit_ln,
                    f->adapter_size, f->prompt_len, cfg->peft);
            }
        }
    } else {
        if (peft_config_check(&pc, config, cfg->T, err) != 0) { die("%s", err); }
        peft_layout(lay, &pc, config);
        peft = float_alloc_check(lay->count, "PEFT tensors");
        peft_init(peft, lay, config, base_params, (uint64_t)cfg->seed);
    }
    if (peft_config_check(&lay->pc, config, cfg->T, err) != 0) { die("%s", err); }
    if (cfg->merge_out != NULL && lay->pc.method != PEFT_LORA && lay->pc.method != PEFT_BITFIT) {
        die("--merge-out: %s adds computation to the model and cannot be merged into a plain checkpoint (LoRA and BitFit can)",
            PEFT_METHOD_NAMES[lay->pc.method]);
    }
    return peft;
}

// --merge-out: base + adapter folded into a plain llm.c checkpoint (LoRA, BitFit).
static void train_merge_out(ModelOps* ops, const char* path) {
    size_t n = ops->num_parameters;
    float* merged = float_alloc_check(n, "merged model");
    memcpy(merged, ops->base_params, n * sizeof(float));
    peft_merge(merged, ops->params_host(ops->self), ops->peft, &ops->config);
    checkpoint_write(path, &ops->config, merged, 3);
    printf("wrote %s: the base with the %s adapter merged in\n", path, PEFT_METHOD_NAMES[ops->peft->pc.method]);
    free(merged);
}

// Mean loss over num_batches batch steps of the val loader, from its start. With several
// processes each evaluates its own part of every batch step (the loader splits them) and the
// means are averaged. NAN when a signal interrupted it (the run then checkpoints and stops).
// With loss masks (fine-tuning data) it is the mean over the unmasked targets of all of them.
// The val loss, and with a tokenizer its bits per byte: the loss summed over the predicted
// tokens, in bits, divided by the UTF-8 bytes those tokens stand for (each weighted like its
// loss). Loss per token depends on the vocabulary; bits per byte does not, so models with
// different tokenizers compare on the same text. The end-of-text token counts no bytes (its
// loss does count): every vocabulary predicts the same document boundaries. Out: *bpb (-1
// without a tokenizer) and *bytes_per_token.
static float train_evaluate(ModelOps* ops, DataLoader* val, int num_batches, Comm* comm, const Tokenizer* tok,
                            double* bpb, double* bytes_per_token) {
    char err[LLMC_ERRLEN];
    double weight_sum, bytes = 0.0;
    *bpb = -1.0;
    *bytes_per_token = -1.0;
    dataloader_reset(val, 0);
    ops->take_loss_sum(ops->self, &weight_sum);  // drop what earlier forwards left
    int done = 0;
    for (int i = 0; i < num_batches && stop_signal == 0; i++) {
        if (dataloader_next(val, err) != 0) { die("%s", err); }
        ops->forward(ops->self, val->inputs, val->targets, val->has_mask ? val->weights : NULL, val->B, val->T);
        if (tok != NULL) {
            for (int k = 0; k < val->B * val->T; k++) {
                int t = val->targets[k];
                double w = val->has_mask ? val->weights[k] : 1.0;
                if (t != tok->eot_token && t >= 0 && t < tok->vocab_size) { bytes += w * tok->token_length[t]; }
            }
        }
        comm_heartbeat(comm, "evaluating the val loss");
        done++;
    }
    double loss_sum = ops->take_loss_sum(ops->self, &weight_sum);
    int interrupted = comm_allreduce_max_int(comm, done < num_batches);
    loss_sum = comm_allreduce_sum_double(comm, loss_sum);
    weight_sum = comm_allreduce_sum_double(comm, weight_sum);
    bytes = comm_allreduce_sum_double(comm, bytes);
    if (interrupted) { return NAN; }
    if (tok != NULL && bytes > 0) {
        *bpb = loss_sum / (bytes * log(2.0));
        *bytes_per_token = bytes / weight_sum;
    }
    return weight_sum > 0 ? (float)(loss_sum / weight_sum) : NAN;
}

// Generates gen_tokens tokens after an end-of-text token and prints them. Runs the model at
// B = 1 over the growing context (the last T tokens once it is longer than T).
static void train_sample(ModelOps* ops, const Tokenizer* tok, int have_tokenizer, int gen_tokens,
                         float temperature, Rng* rng, int* buf) {
    int T = ops->T;
    int V = ops->config.vocab_size;
    buf[0] = have_tokenizer ? tok->eot_token : V - 1;
    int len = 1;
    Utf8Printer up;
    utf8_printer_init(&up);
    printf("---\n");
    for (int i = 0; i < gen_tokens; i++) {
        int start = len > T ? len - T : 0;
        int t = len - start;
        ops->forward(ops->self, buf + start, NULL, NULL, 1, t);
        int next = sample_from_logits(ops->logits_at(ops->self, t - 1), V, temperature, rng_f32(rng));
        buf[len++] = next;
        if (have_tokenizer) { utf8_printer_token(&up, tok, next, stdout); } else { printf("%d ", next); }
        fflush(stdout);
    }
    utf8_printer_finish(&up, stdout);
    printf("\n---\n");
}

// how many of the steps (step, max_steps] are multiples of every, or the last one
static long evals_due_after(int step, int max_steps, int every) {
    if (every <= 0 || step >= max_steps) { return 0; }
    long n = max_steps / every - step / every;
    return n + (max_steps % every != 0);
}

#include "train_mc.h"  // multiple-choice tasks through ModelOps (uses evals_due_after)

// What a run evaluates between steps (val loss, multiple-choice tasks, samples), and the time each took
// last, for the ETA.
typedef struct {
    DataLoader* val;          // NULL: no val loss
    int val_batches;          // batch steps per evaluation, per process
    McSuite* tasks;           // the multiple-choice tasks (-h's HellaSwag, --tasks)
    const Tokenizer* tokenizer;
    int have_tokenizer;
    Rng* sample_rng;
    int* gen_buf;             // gen_tokens + 1 tokens
    PairLoader* dpo_val;      // NULL: no held-out preference pairs
    const DpoConfig* dpo_cfg;
    double val_seconds, sample_seconds;  // the last of each, for the ETA
} Evaluators;

// The evaluations due at step (label: how the lines name it, "step N" or the --eval model).
static void train_evaluations_at(ModelOps* ops, const TrainConfig* cfg, Comm* comm, Logger* logger, Evaluators* ev,
                                 int step, int last, const char* label, double tokens, double flops) {
    int master = comm->rank == 0;
    if (ev->val != NULL && (cfg->eval_only || step % cfg->val_every == 0 || last)) {
        double t0 = now_seconds();
        double bpb, bytes_per_token;
        float val_loss = train_evaluate(ops, ev->val, ev->val_batches, comm, ev->have_tokenizer ? ev->tokenizer : NULL,
                                        &bpb, &bytes_per_token);
        ev->val_seconds = now_seconds() - t0;
        if (isnan(val_loss)) {
            if (master) { printf("%s: val loss evaluation interrupted by a signal\n", label); }
        } else {
            if (master && bpb >= 0) {
                printf("%s: val loss %.6f (perplexity %.2f) | %.6f bits per byte, %.4f bytes per token\n", label, val_loss,
                       expf(val_loss), bpb, bytes_per_token);
            } else if (master) {
                printf("%s: val loss %.6f (perplexity %.2f)\n", label, val_loss, expf(val_loss));
            }
            logger_log_val(logger, step, val_loss, bpb, bytes_per_token, tokens, flops);
        }
    }
    if (ev->dpo_val != NULL && (cfg->eval_only || step % cfg->val_every == 0 || last) && stop_signal == 0) {
        double t0 = now_seconds();
        DpoStats st;
        dpo_evaluate(ops, ev->dpo_val, ev->dpo_cfg, comm, &st);
        ev->val_seconds += now_seconds() - t0;
        if (master) {
            printf("%s: dpo held-out (%.0f pairs): loss %.4f | reward accuracy %.4f | margin %.4f | rewards chosen %.4f "
                   "rejected %.4f | logps chosen %.2f rejected %.2f | logp accuracy %.4f\n", label, st.pairs, st.loss / st.pairs,
                   st.correct / st.pairs, st.margin / st.pairs, st.reward_chosen / st.pairs, st.reward_rejected / st.pairs,
                   st.logp_chosen / st.pairs, st.logp_rejected / st.pairs, st.logp_correct / st.pairs);
        }
        dpo_log_stats(logger, step, "dpo_val_", &st);
    }
    mc_suite_evaluate(ev->tasks, ops, comm, logger, step, last, cfg->eval_only, label, tokens, flops);
    if (cfg->sample_every > 0 && !cfg->eval_only && step > 0 && (step % cfg->sample_every == 0 || last) && stop_signal == 0) {
        double t0 = now_seconds();
        train_sample(ops, ev->tokenizer, ev->have_tokenizer, cfg->gen_tokens, cfg->temperature, ev->sample_rng, ev->gen_buf);
        ev->sample_seconds = now_seconds() - t0;
    }
    flush_stdout_check();
}

// Seconds the evaluations after step will take, from the last time each took.
static double evals_eta_seconds(const Evaluators* ev, const TrainConfig* cfg, int step, int max_steps) {
    double t = 0.0;
    if (ev->val != NULL) { t += ev->val_seconds * evals_due_after(step, max_steps, cfg->val_every); }
    t += mc_suite_eta_seconds(ev->tasks, step, max_steps);
    if (cfg->sample_every > 0) { t += ev->sample_seconds * evals_due_after(step, max_steps, cfg->sample_every); }
    return t;
}

// Everything a training-state file holds. This process writes the moments of its shard of the
// parameters (comm_shard), whatever the ZeRO stage, so checkpoints look the same under ZeRO-0
// and ZeRO-1 and can be resumed on another number of processes.
static TrainStateHeader train_state_header(size_t num_parameters, const TrainConfig* cfg, const Comm* comm,
                                           int total_batch, int step, const DataLoader* loader,
                                           const Rng* sample_rng, const SpikeGuard* guard, long long skipped) {
    TrainStateHeader h;
    memset(&h, 0, sizeof(h));
    h.magic = STATE_MAGIC;
    h.version = STATE_VERSION;
    h.step = step;
    h.num_parameters = (int64_t)num_parameters;
    size_t off, cnt;
    comm_shard(num_parameters, comm->world, comm->rank, &off, &cnt);
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
static void train_save_checkpoint(ModelOps* ops, const TrainConfig* cfg, Comm* comm, int total_batch, int step,
                                  const DataLoader* loader, const Rng* sample_rng, const SpikeGuard* guard,
                                  long long skipped) {
    TrainStateHeader h = train_state_header(ops->num_trainable, cfg, comm, total_batch, step, loader, sample_rng,
                                            guard, skipped);
    float *m, *v;
    ops->moments_host(ops->self, &m, &v);
    size_t at = (size_t)h.shard_offset - ops->opt_offset;  // this process's shard, inside what it holds
    // a model or moments holding NaN/Inf is never written as a checkpoint: resuming from it
    // could only fail again, and retention could delete the good ones for it
    int finite = all_finite(m + at, (size_t)h.shard_count) && all_finite(v + at, (size_t)h.shard_count);
    if (comm->rank == 0) { finite = finite && all_finite(ops->params_host(ops->self), ops->num_trainable); }
    if (comm_allreduce_max_int(comm, !finite)) {
        int latest = comm->rank == 0 ? latest_checkpoint(cfg->output_dir) : -1;
        if (comm->rank == 0) {
            fprintf(stderr, "error: step %d: the model or its AdamW moments hold NaN/Inf values; no checkpoint written "
                    "(the latest complete one is step %d in %s)\n", step, latest, cfg->output_dir);
        }
        exit(EXIT_FAILURE);
    }
    if (ops->peft != NULL) {
        // the checkpoint's model is the adapter file, a few MB at most: the base stays where -e is
        char model[1100], state[1100];
        checkpoint_paths(cfg->output_dir, step, comm->rank, NULL, state, NULL, sizeof(state));
        snprintf(model, sizeof(model), "%s/model_%08d.peft", cfg->output_dir, step);
        if (comm->rank == 0) { peft_file_write(model, ops->peft, &ops->config, ops->base_hash, ops->params_host(ops->self)); }
        train_state_write(state, &h, m + at, v + at);
    } else {
        checkpoint_save_rank(cfg->output_dir, step, &ops->config, ops->params_host(ops->self), &h, m + at, v + at);
    }
    comm_barrier(comm);
    if (comm->rank == 0) {
        char record[4096];
        train_config_record(cfg, record, sizeof(record));
        checkpoint_commit(cfg->output_dir, step, cfg->keep_last, cfg->keep_every, guard == NULL || guard->bad_in_row == 0, record);
        printf("wrote checkpoint %s/model_%08d.%s\n", cfg->output_dir, step, ops->peft != NULL ? "peft" : "bin");
        if (cfg->write_bf16 && ops->peft == NULL) {
            char path[1100];
            snprintf(path, sizeof(path), "%s/model_%08d_bf16.bin", cfg->output_dir, step);
            checkpoint_write(path, &ops->config, ops->params_host(ops->self), 5);
            printf("wrote %s\n", path);
        }
    }
}

// What a run holds between its phases (train_loop_run): the data, its sizes and the run's
// length, the schedule, the buffers, the spike guard and the log. Set up once, before the first
// step; nothing is allocated after.
typedef struct {
    int B, T, total_batch, grad_accum_steps, max_steps, zero1;
    long steps_per_epoch;
    double flops_per_token, flops_per_step, peak_tflops;
    DataLoader train_loader, val_loader;
    int have_train, have_val, val_batches;
    McSuite tasks;
    Tokenizer tokenizer;
    int have_tokenizer;
    LRSchedule schedule;
    int* gen_buf;
    Rng sample_rng;
    SpikeGuard guard;
    long long skipped_total;
    Logger logger;
    RunInfo info;
    // DPO (--dpo): pairs instead of token shards
    int dpo, have_dpo_val;
    DpoConfig dpo_cfg;
    PairLoader dpo_train, dpo_val;
    float* dpo_losses;        // (B, T) the last forward's per-position losses
    float* dpo_w;             // (B, T) the loss weights of DPO's gradient
    DpoStats dpo_stats;       // the last step's sums over its pairs
} TrainRun;

// Phase 1: the data, the batch arithmetic, the run's length, the tokenizer (samples, bits per byte).
static void train_run_open_data(TrainRun* r, const ModelOps* ops, const TrainConfig* cfg, const Comm* comm, int start_step) {
    char err[LLMC_ERRLEN];
    int master = comm->rank == 0;
    const GPT2Config* mc = &ops->config;
    // data: every step takes total_batch tokens, B*T per process per micro-step
    int B = cfg->B, T = cfg->T;
    r->B = B;
    r->T = T;
    // sizes in 64 bits first: B*T*processes overflows an int long before memory runs out
    long long tokens_per_micro_ll = (long long)B * T * comm->world;
    if (tokens_per_micro_ll > INT32_MAX) {
        die("-b/-t: B*T*processes = %d*%d*%d = %lld tokens per micro-step; at most %d fit", B, T, comm->world,
            tokens_per_micro_ll, INT32_MAX);
    }
    int tokens_per_micro = (int)tokens_per_micro_ll;
    r->total_batch = cfg->total_batch_size == -1 ? tokens_per_micro : cfg->total_batch_size;
    if (r->total_batch % tokens_per_micro != 0) {
        die("-d: total batch size %d is not a multiple of B*T*processes = %d*%d*%d = %d", r->total_batch, B, T,
            comm->world, tokens_per_micro);
    }
    r->grad_accum_steps = r->total_batch / tokens_per_micro;
    r->dpo = cfg->dpo_data != NULL && !cfg->eval_only;
    r->have_train = !cfg->eval_only && !r->dpo;
    r->dpo_cfg.loss = dpo_loss_parse(cfg->dpo_loss);
    r->dpo_cfg.beta = cfg->dpo_beta;
    r->dpo_cfg.label_smoothing = cfg->dpo_label_smoothing;
    if (r->dpo && pairloader_init(&r->dpo_train, cfg->dpo_data, B, T, mc->vocab_size, comm->rank, comm->world,
                                  !cfg->no_shuffle, (uint64_t)cfg->seed, err) != 0) {
        die("--dpo: %s", err);
    }
    r->have_dpo_val = cfg->dpo_val != NULL;
    if (r->have_dpo_val && pairloader_init(&r->dpo_val, cfg->dpo_val, B, T, mc->vocab_size, comm->rank, comm->world, 0, 0,
                                           err) != 0) {
        die("--dpo-val: %s", err);
    }
    if (r->have_train && dataloader_init(&r->train_loader, cfg->train_data, B, T, mc->vocab_size, comm->rank, comm->world,
                                         !cfg->no_shuffle, (uint64_t)cfg->seed, err) != 0) {
        die("-i: %s", err);
    }
    r->have_val = 0;
    r->val_batches = 0;
    if (cfg->val_every > 0 || cfg->eval_only) {
        if (dataloader_init(&r->val_loader, cfg->val_data, B, T, mc->vocab_size, comm->rank, comm->world, 0, 0, err) != 0) {
            die("-j: %s", err);
        }
        r->have_val = 1;
        // -m counts batches of B sequences over all processes together, so 1 and N processes
        // evaluate the same sequences and report the same val loss: each process takes its
        // share of m / N batch steps of B*N sequences (m rounded down to a multiple of N)
        long available = r->val_loader.total_seqs / ((long)B * comm->world);
        long want = cfg->val_max_steps / comm->world > 0 ? cfg->val_max_steps / comm->world : 1;
        r->val_batches = want < available ? (int)want : (int)available;
        if (master && (long)r->val_batches * comm->world != cfg->val_max_steps) {
            printf("val: -m %d batches of B=%d -> %ld over %d processes (%s)\n", cfg->val_max_steps, B,
                   (long)r->val_batches * comm->world, comm->world,
                   want > available ? "all the val data holds" : "a multiple of the process count");
        }
    }
    mc_suite_open(&r->tasks, cfg->hellaswag_every, cfg->hellaswag, cfg->hellaswag_examples, cfg->tasks, cfg->tasks_every,
                  cfg->tasks_examples, mc->vocab_size, B, T);
    r->steps_per_epoch = 1;
    if (r->dpo) {
        long long pairs_per_step = (long long)pairloader_pairs(&r->dpo_train) * comm->world * r->grad_accum_steps;
        r->steps_per_epoch = r->dpo_train.pf.npairs / pairs_per_step;
        if (r->steps_per_epoch <= 0) {
            die("--dpo: one step needs %lld pairs, %s has %d", pairs_per_step, cfg->dpo_data, r->dpo_train.pf.npairs);
        }
    }
    if (r->have_train) {
        long long seqs_per_step = (long long)B * comm->world * r->grad_accum_steps;
        r->steps_per_epoch = r->train_loader.total_seqs / seqs_per_step;
        if (r->steps_per_epoch <= 0 && !cfg->dry_run) {
            die("-d: one step needs %lld sequences, the train data has %ld", seqs_per_step, r->train_loader.total_seqs);
        }
        if (r->steps_per_epoch <= 0) {  // a plan may be made on a stand-in for the real data
            printf("warning: one step needs %lld sequences, the train data has %ld\n", seqs_per_step, r->train_loader.total_seqs);
            r->steps_per_epoch = 1;
        }
    }
    // the run's length: -x steps, a token or FLOP budget (rounded to whole steps), or one epoch
    r->flops_per_token = gpt2_flops_per_token(mc, T);
    r->flops_per_step = r->flops_per_token * r->total_batch;
    double budget_steps = -1.0;
    if (cfg->max_tokens >= 0) { budget_steps = cfg->max_tokens / r->total_batch; }
    if (cfg->max_flops >= 0) { budget_steps = cfg->max_flops / r->flops_per_step; }
    if (budget_steps >= 0 && llround(budget_steps) < 1) {
        die("--max-%s: %g is less than one step of %d tokens (%.4g FLOPs)", cfg->max_flops >= 0 ? "flops" : "tokens",
            cfg->max_flops >= 0 ? cfg->max_flops : cfg->max_tokens, r->total_batch, r->flops_per_step);
    }
    if (budget_steps > INT32_MAX) { die("--max-tokens/--max-flops: %.4g steps of %d tokens is too many", budget_steps, r->total_batch); }
    r->max_steps = cfg->eval_only ? 0
                   : cfg->max_steps >= 0 ? cfg->max_steps
                   : budget_steps >= 0 ? (int)llround(budget_steps)
                   : (int)r->steps_per_epoch;
    if (master && (r->have_train || r->dpo) && r->max_steps > r->steps_per_epoch) {
        printf("warning: %d steps are %.2f epochs of the train data: sequences will repeat\n", r->max_steps,
               (double)r->max_steps / r->steps_per_epoch);
    }
    if (start_step > r->max_steps) { die("-x: the run is already at step %d, past -x %d", start_step, r->max_steps); }
    if (start_step > 0 && start_step == r->max_steps && master) {
        printf("resume: the run is already complete (step %d of -x %d): nothing to do. Extend it with a larger -x and "
               "--accept-changes, or train again with --overwrite\n", start_step, r->max_steps);
    }

    // the tokenizer decodes samples and counts the val loss's bytes (bits per byte); a missing
    // or mismatched default one only costs those, one named by --tokenizer must be right
    r->have_tokenizer = 0;
    int sampling = cfg->sample_every > 0 && !cfg->eval_only;
    if (sampling || r->have_val) {
        TrainConfig defaults;
        train_config_defaults(&defaults);
        int named = strcmp(cfg->tokenizer, defaults.tokenizer) != 0;
        if (tokenizer_init(&r->tokenizer, cfg->tokenizer, err) == 0) {
            r->have_tokenizer = 1;
            if (r->tokenizer.vocab_size != mc->vocab_size) {
                if (named || sampling) {
                    die("--tokenizer: %s has %d tokens but the model's vocabulary has %d", cfg->tokenizer, r->tokenizer.vocab_size,
                        mc->vocab_size);
                }
                if (master) {
                    printf("note: %s has %d tokens, the model %d: no bits per byte (give the model's --tokenizer)\n",
                           cfg->tokenizer, r->tokenizer.vocab_size, mc->vocab_size);
                }
                tokenizer_free(&r->tokenizer);
                r->have_tokenizer = 0;
            }
        } else {
            if (named) { die("--tokenizer: %s", err); }
            if (master) {
                printf("warning: %s\nwarning: %s\n", err, sampling ? "samples will be printed as token ids" : "no bits per byte");
            }
        }
    }

    lr_schedule_parse(cfg->lr_schedule, &r->schedule.type);
    r->schedule.max_lr = cfg->learning_rate;
    r->schedule.warmup_steps = cfg->warmup_frac > 0 ? (int)lround(cfg->warmup_frac * r->max_steps) : cfg->warmup_steps;
    r->schedule.total_steps = r->max_steps;
    r->schedule.final_frac = cfg->final_lr_frac;
    r->schedule.decay_frac = cfg->wsd_decay_frac;
}

// Phase 2: every allocation of the run, before the first step. Under ZeRO-1 this process holds
// the AdamW moments of its shard only. A plan (--dry-run) allocates no model memory: it may be
// made for a model this machine cannot train.
static void train_run_allocate(TrainRun* r, ModelOps* ops, const TrainConfig* cfg, const Comm* comm) {
    r->zero1 = cfg->zero_stage == 1 && comm->world > 1;
    if (r->zero1) {
        comm_shard(ops->num_trainable, comm->world, comm->rank, &ops->opt_offset, &ops->opt_count);
    } else {
        ops->opt_offset = 0;
        ops->opt_count = ops->num_trainable;
    }
    if (!cfg->dry_run) { ops->allocate(ops->self, r->B, r->T, ops->opt_offset, ops->opt_count); }
    ops->T = r->T;
    if (comm->rank == 0 && ops->report != NULL && !cfg->dry_run) { ops->report(ops->self); }
    r->gen_buf = (int*)calloc_check(cfg->gen_tokens + 1, sizeof(int), "sample buffer");
    if (r->dpo) {
        r->dpo_losses = float_alloc_check((size_t)r->B * r->T, "DPO losses");
        r->dpo_w = float_alloc_check((size_t)r->B * r->T, "DPO loss weights");
    }
    rng_init(&r->sample_rng, (uint64_t)cfg->seed + 1);
    guard_init(&r->guard, cfg->guard_window, cfg->guard_loss_z, cfg->guard_norm_z, cfg->guard_max_bad);
    r->skipped_total = 0;
}

// Phase 3 (-y): the AdamW moments, the data position, the sample RNG and the spike guard of the
// checkpoint at start_step. The model's weights were loaded before (train_initial_params).
static void train_run_resume(TrainRun* r, ModelOps* ops, const TrainConfig* cfg, const Comm* comm, int start_step) {
    char err[LLMC_ERRLEN];
    TrainStateHeader expected = train_state_header(ops->num_trainable, cfg, comm, r->total_batch, start_step, NULL, NULL, NULL, 0);
    TrainStateHeader h;
    float *m, *v;
    ops->moments_host(ops->self, &m, &v);
    if (train_state_load(cfg->output_dir, start_step, ops->opt_offset, ops->opt_count, &expected, &h, m, v, err) != 0) {
        die("-y: %s", err);
    }
    if (!all_finite(m, ops->opt_count) || !all_finite(v, ops->opt_count)) {
        die("-y: the training state of step %d in %s holds non-finite AdamW moments (NaN or Inf): refusing to resume",
            start_step, cfg->output_dir);
    }
    ops->moments_loaded(ops->self);
    if (comm->rank == 0) {
        // bitwise resume needs the same run-defining flags: a change is refused, or named
        char record[4096], diffs[4096];
        train_config_record(cfg, record, sizeof(record));
        int changes = checkpoint_config_changes(cfg->output_dir, start_step, record, diffs, sizeof(diffs));
        if (changes > 0 && !cfg->accept_changes) {
            die("-y: %d flag%s differ%s from the run being resumed (%s); resume with the run's flags, or add "
                "--accept-changes to continue with the new ones (e.g. a larger -x to extend a finished run)",
                changes, changes == 1 ? "" : "s", changes == 1 ? "s" : "", diffs);
        }
        if (changes > 0) { printf("resume: continuing with changed flags (--accept-changes): %s\n", diffs); }
        if (h.num_processes != comm->world) {
            printf("resume: the checkpoint was written by %lld processes, continuing with %d\n", (long long)h.num_processes, comm->world);
        }
    }
    // DPO's pairs of a step follow from the step number alone (llmc/dpo.h): nothing to restore
    if (!r->dpo && dataloader_restore(&r->train_loader, (int)h.loader_epoch, h.loader_epoch_rng, (int)h.loader_shard_pos,
                           (long)h.loader_seq_pos, err) != 0) {
        die("-y: step %d: %s (is -i the same data?)", start_step, err);
    }
    r->sample_rng.state = h.sample_rng;
    r->skipped_total = h.skipped_steps;
    r->guard.window = (int)h.guard_window;
    r->guard.count = (int)h.guard_count;
    r->guard.head = (int)h.guard_head;
    r->guard.bad_in_row = (int)h.guard_bad_in_row;
    memcpy(r->guard.losses, h.guard_losses, sizeof(r->guard.losses));
    memcpy(r->guard.norms, h.guard_norms, sizeof(r->guard.norms));
}

// "peft: ..." start-up line: what trains, and the memory it saves
static void train_print_peft(const ModelOps* ops) {
    const PeftConfig* pc = &ops->peft->pc;
    char what[160] = "";
    if (pc->method == PEFT_LORA) {
        char targets[64] = "";
        for (int t = 0; t < 4; t++) {
            if (pc->lora_targets & (1 << t)) {
                snprintf(targets + strlen(targets), sizeof(targets) - strlen(targets), "%s%s", targets[0] ? "," : "", LORA_TARGET_NAMES[t]);
            }
        }
        snprintf(what, sizeof(what), "rank %d, alpha %g, on %s", pc->lora_rank, pc->lora_alpha, targets);
    } else if (pc->method == PEFT_BITFIT) {
        snprintf(what, sizeof(what), "biases%s", pc->bitfit_ln ? " and LayerNorm gains" : "");
    } else if (pc->method == PEFT_ADAPTER) {
        snprintf(what, sizeof(what), "bottleneck %d after attention and MLP", pc->adapter_size);
    } else {
        snprintf(what, sizeof(what), "%d virtual tokens", pc->prompt_len);
    }
    printf("peft: %s (%s), %zu trainable parameters = %.3f%% of the model; base frozen (no gradients or AdamW "
           "moments for it): gradients + moments %.2f MB instead of %.2f MB\n", PEFT_METHOD_NAMES[pc->method],
           what, ops->num_trainable, 100.0 * ops->num_trainable / ops->num_parameters,
           3.0 * ops->num_trainable * 4 / 1e6, 3.0 * ops->num_parameters * 4 / 1e6);
}

// Phase 4: the run record and the start-up lines (process 0)
static void train_run_describe(TrainRun* r, const ModelOps* ops, const TrainConfig* cfg, const Comm* comm, const char* model_desc) {
    const GPT2Config* mc = &ops->config;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    r->peak_tflops = cfg->peak_tflops > 0 ? cfg->peak_tflops : ops->peak_tflops;
    RunInfo info = {
        .L = mc->num_layers, .C = mc->channels, .NH = mc->num_heads, .V = mc->vocab_size, .Vp = mc->padded_vocab_size,
        .maxT = mc->max_seq_len, .B = r->B, .T = r->T, .total_batch = r->total_batch, .max_steps = r->max_steps,
        .world = comm->world, .n_params = (double)ops->num_parameters,
        .n_params_nonembed = (double)ops->num_parameters - (double)mc->padded_vocab_size * mc->channels -
                             (double)mc->max_seq_len * mc->channels,
        .n_params_head = (double)ops->num_parameters - (double)mc->max_seq_len * mc->channels,
        .flops_per_token = r->flops_per_token, .init_model = model_desc,
        .peft = ops->peft != NULL ? PEFT_METHOD_NAMES[ops->peft->pc.method] : "full", .n_trainable = (double)ops->num_trainable,
    };
    r->info = info;
    if (comm->rank != 0) { return; }
    printf("model: L=%d C=%d NH=%d V=%d Vp=%d maxT=%d, %.2fM parameters (%s)\n", mc->num_layers, mc->channels,
           mc->num_heads, mc->vocab_size, mc->padded_vocab_size, mc->max_seq_len, ops->num_parameters / 1e6, model_desc);
    printf("parameters: %.0f in all, %.0f without the embeddings (wte, wpe), %.0f without wpe (the N of "
           "%.4g FLOPs per token = 6N + 6LCT)\n", info.n_params, info.n_params_nonembed, info.n_params_head, r->flops_per_token);
    if (ops->peft != NULL) { train_print_peft(ops); }
    if (r->have_train) {
        printf("train: %s, %ld sequences of T=%d, %s\n", cfg->train_data, r->train_loader.total_seqs, r->T,
               cfg->no_shuffle ? "in order" : "shuffled");
    }
    if (r->dpo) {
        printf("dpo: %s, %d pairs of T=%d (B=%d: %d pairs per micro-batch), %s; loss %s, beta %g%s\n", cfg->dpo_data,
               r->dpo_train.pf.npairs, r->T, r->B, pairloader_pairs(&r->dpo_train), cfg->no_shuffle ? "in order" : "shuffled",
               cfg->dpo_loss, cfg->dpo_beta, r->dpo_cfg.label_smoothing > 0 ? ", label smoothing" : "");
    }
    if (r->have_dpo_val) { printf("dpo held-out: %s, %d pairs, every -v %d steps\n", cfg->dpo_val, r->dpo_val.pf.npairs, cfg->val_every); }
    if (r->have_val) { printf("val: %s, %d batches per evaluation\n", cfg->val_data, r->val_batches); }
    for (int k = 0; k < r->tasks.count; k++) {
        const McTaskRun* tr = &r->tasks.runs[k];
        printf("task: %s (%s), %d of %d examples, %d-shot, ", tr->task.name, tr->path, tr->n, tr->task.num_examples, tr->task.shots);
        if (tr->every > 0) { printf("every %d steps\n", tr->every); } else { printf("at the end\n"); }
    }
    if (r->have_train || r->dpo) {
        printf("batch: B=%d T=%d x %d processes, %d tokens per step (%d accumulation step%s), %d steps (%.2f epochs)\n",
               r->B, r->T, comm->world, r->total_batch, r->grad_accum_steps, r->grad_accum_steps == 1 ? "" : "s",
               r->max_steps, (double)r->max_steps / r->steps_per_epoch);
        printf("optimizer: AdamW lr=%g (%s, warmup %d, final x%g) betas=(%g, %g) eps=%g wd=%g clip=%g%s\n",
               cfg->learning_rate, cfg->lr_schedule, r->schedule.warmup_steps, cfg->final_lr_frac, cfg->beta1, cfg->beta2,
               cfg->eps, cfg->weight_decay, cfg->grad_clip, r->zero1 ? ", ZeRO-1" : "");
    } else {
        printf("eval: B=%d T=%d x %d processes\n", r->B, r->T, comm->world);
    }
    printf("processes: %d x %s (%d threads), seed: %d, output: %s\n", comm->world, ops->device_name, threads,
           cfg->seed, cfg->output_dir ? cfg->output_dir : "(none)");
    if (cfg->dry_run) {
        printf("plan: steps %d tokens %.0f flops %.6g flops_per_token %.6g n_params %.0f n_params_nonembed %.0f "
               "n_params_head %.0f total_batch %d\n", r->max_steps, (double)r->max_steps * r->total_batch,
               (double)r->max_steps * r->flops_per_step, r->flops_per_token, info.n_params, info.n_params_nonembed,
               info.n_params_head, r->total_batch);
    }
}

// One micro-batch's backward; the step's last may sum gradients over processes as it goes
static void train_backward(TrainRun* r, ModelOps* ops, Comm* comm, int micro, float dloss) {
    if (micro == r->grad_accum_steps - 1 && comm->world > 1 && ops->reduce_in_backward != NULL) {
        ops->reduce_in_backward(ops->self, r->zero1);
    }
    ops->backward(ops->self, dloss);
}

// The gradient of one language-modelling step over grad_accum_steps micro-batches. Returns the
// step's loss; *grad_scale rescales the gradients (below); *learn is 0 when no target of the
// step has a nonzero weight.
static float train_accumulate_lm(TrainRun* r, ModelOps* ops, const TrainConfig* cfg, Comm* comm, int step,
                                 float* grad_scale, int* learn) {
    char err[LLMC_ERRLEN];
    int B = r->B, T = r->T;
    double weight_sum;
    ops->zero_grad(ops->self);
    ops->take_loss_sum(ops->self, &weight_sum);
    // The step's loss is the mean over its targets of weight x loss, divided by the sum of
    // the weights (all 1 in pre-training; 0 on masked prompt tokens in fine-tuning). The
    // backward passes scale each position as if every weight were 1 (1 / tokens in the
    // step); the true normalizer, known once every micro-batch is in, rescales the
    // gradients in the update (grad_scale) and the norm. With all weights 1 it is exactly 1.
    float dloss = (float)(1.0 / ((double)B * T * r->grad_accum_steps * comm->world));
    if (ops->set_distill != NULL) { ops->set_distill(ops->self, 1); }
    for (int micro = 0; micro < r->grad_accum_steps; micro++) {
        if (!(cfg->overfit_batch && step > 0)) {
            if (dataloader_next(&r->train_loader, err) != 0) { die("%s", err); }
        }
        ops->forward(ops->self, r->train_loader.inputs, r->train_loader.targets,
                     r->train_loader.has_mask ? r->train_loader.weights : NULL, B, T);
        train_backward(r, ops, comm, micro, dloss);
        comm_heartbeat(comm, "in a training step");
    }
    if (ops->set_distill != NULL) { ops->set_distill(ops->self, 0); }
    double loss_sum = ops->take_loss_sum(ops->self, &weight_sum);
    loss_sum = comm_allreduce_sum_double(comm, loss_sum);
    weight_sum = comm_allreduce_sum_double(comm, weight_sum);
    double tokens_in_step = (double)B * T * r->grad_accum_steps * comm->world;
    *grad_scale = weight_sum > 0 ? (float)(tokens_in_step / weight_sum) : 0.0f;
    *learn = weight_sum > 0;
    return weight_sum > 0 ? (float)(loss_sum / weight_sum) : 0.0f;
}

// The gradient of one DPO step: grad_accum_steps micro-batches of B/2 pairs per process, the
// loss the mean over the step's pairs. Returns the loss; r->dpo_stats holds the step's sums.
static float train_accumulate_dpo(TrainRun* r, ModelOps* ops, Comm* comm, int step, float* grad_scale) {
    int B = r->B, T = r->T;
    double ws;
    DpoStats* st = &r->dpo_stats;
    dpo_stats_reset(st);
    ops->zero_grad(ops->self);
    ops->take_loss_sum(ops->self, &ws);
    double pairs_in_step = (double)pairloader_pairs(&r->dpo_train) * r->grad_accum_steps * comm->world;
    float dloss = (float)(1.0 / pairs_in_step);
    for (int micro = 0; micro < r->grad_accum_steps; micro++) {
        pairloader_load(&r->dpo_train, (long)step * r->grad_accum_steps + micro);
        ops->forward(ops->self, r->dpo_train.inputs, r->dpo_train.targets, r->dpo_train.mask, B, T);
        ops->losses_all(ops->self, r->dpo_losses);
        dpo_weights(&r->dpo_cfg, r->dpo_losses, r->dpo_train.mask, r->dpo_train.ref, B, T, r->dpo_w, st);
        ops->set_weights(ops->self, r->dpo_w);
        train_backward(r, ops, comm, micro, dloss);
        comm_heartbeat(comm, "in a training step");
    }
    ops->take_loss_sum(ops->self, &ws);
    double* a = dpo_stats_array(st);
    for (int k = 0; k < DPO_NSTATS; k++) { a[k] = comm_allreduce_sum_double(comm, a[k]); }
    *grad_scale = 1.0f;
    return (float)(st->loss / st->pairs);
}

// Phase 5, once per step: one optimizer step over grad_accum_steps micro-batches. Returns the
// step's metrics; *why says why an update was skipped.
static StepMetrics train_one_step(TrainRun* r, ModelOps* ops, const TrainConfig* cfg, Comm* comm, int step,
                                  char* why, size_t why_len) {
    double t0 = now_seconds();
    float grad_scale = 1.0f;
    int learn = 1;
    float loss = r->dpo ? train_accumulate_dpo(r, ops, comm, step, &grad_scale)
                        : train_accumulate_lm(r, ops, cfg, comm, step, &grad_scale, &learn);
    float norm = (float)sqrt(comm_allreduce_sum_double(comm, ops->reduce_gradients(ops->self, comm, r->zero1))) * grad_scale;
    float lr = lr_at(&r->schedule, step);
    int skip;
    if (learn) {
        skip = guard_check(&r->guard, loss, norm, why, why_len);  // the same decision on every process
    } else {
        skip = 1;  // nothing to learn from: no update (AdamW's moments and weight decay stand still too)
        snprintf(why, why_len, "no target in the step has a nonzero loss weight (all masked)");
    }
    if (skip) {
        r->skipped_total++;
        if (comm->rank == 0) { printf("step %d: update skipped: %s (%d in a row)\n", step + 1, why, r->guard.bad_in_row); }
    } else {
        ops->update(ops->self, comm, r->zero1, lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay,
                    grad_clip_scale(norm, cfg->grad_clip) * grad_scale, step + 1 - (int)r->skipped_total);
    }
    double dt = now_seconds() - t0;
    double mfu = r->peak_tflops > 0 ? r->flops_per_step / dt / (r->peak_tflops * 1e12 * comm->world) : NAN;
    StepMetrics sm = {
        .step = step, .loss = loss, .lr = lr, .grad_norm = norm, .skipped = skip,
        .skipped_total = r->skipped_total, .ms = dt * 1e3, .tokens_per_second = r->total_batch / dt,
        .mfu = mfu, .tokens = (double)(step + 1) * r->total_batch, .flops = (double)(step + 1) * r->flops_per_step,
    };
    return sm;
}

// the step's line on stdout (process 0)
static void train_print_step(const TrainRun* r, const StepMetrics* sm, const char* eta) {
    double dt = sm->ms / 1e3;
    char mfu_text[32] = "";
    if (isfinite(sm->mfu)) { snprintf(mfu_text, sizeof(mfu_text), " | MFU %.1f%%", 100.0 * sm->mfu); }
    char dpo_text[96] = "";
    if (r->dpo) {
        const DpoStats* st = &r->dpo_stats;
        snprintf(dpo_text, sizeof(dpo_text), " | acc %.3f margin %.4f", st->correct / st->pairs, st->margin / st->pairs);
    }
    printf("step %4d/%d | loss %.6f%s | lr %.2e | norm %.4f | %.1f ms | %.0f tok/s | %.1f GFLOP/s%s | ETA %s%s\n",
           sm->step + 1, r->max_steps, sm->loss, dpo_text, sm->lr, sm->grad_norm, sm->ms, r->total_batch / dt,
           r->flops_per_step / dt / 1e9, mfu_text, eta, sm->skipped ? " | SKIPPED" : "");
    flush_stdout_check();
}

static void train_run_close(TrainRun* r) {
    logger_free(&r->logger);
    free(r->gen_buf);
    mc_suite_free(&r->tasks);
    if (r->have_tokenizer) { tokenizer_free(&r->tokenizer); }
    if (r->have_val) { dataloader_free(&r->val_loader); }
    if (r->have_train) { dataloader_free(&r->train_loader); }
    if (r->dpo) { pairloader_free(&r->dpo_train); }
    if (r->have_dpo_val) { pairloader_free(&r->dpo_val); }
    free(r->dpo_losses);
    free(r->dpo_w);
}

// The whole run: returns the exit code (0, or 2 when the spike guard stopped it).
// model_desc names where the weights came from, for the start-up lines.
static int train_loop_run(ModelOps* ops, TrainConfig* cfg, Comm* comm, int start_step, const char* model_desc) {
    int master = comm->rank == 0;  // prints, logs and writes the model
    if (!master) { cfg->sample_every = 0; }
    TrainRun run;
    memset(&run, 0, sizeof(run));
    TrainRun* r = &run;
    train_run_open_data(r, ops, cfg, comm, start_step);
    train_run_allocate(r, ops, cfg, comm);
    if (start_step > 0) { train_run_resume(r, ops, cfg, comm, start_step); }

    if (cfg->output_dir != NULL && master) { ensure_dir(cfg->output_dir); }
    comm_barrier(comm);  // the directory exists before any process writes into it
    // a -y 1 that found no checkpoint starts afresh: its logs too (no duplicated step-0 lines)
    logger_init(&r->logger, master ? cfg->output_dir : NULL, start_step > 0 ? start_step : -1, cfg->eval_only ? "eval" : "main");
    install_stop_handlers();
    comm_start_watchdog(comm, cfg->timeout);
    train_run_describe(r, ops, cfg, comm, model_desc);
    if (cfg->dry_run) {
        flush_stdout_check();
        train_run_close(r);
        return 0;
    }
    if (start_step == 0 && !cfg->eval_only) { logger_log_run(&r->logger, &r->info); }
    flush_stdout_check();  // a log file (nohup, Slurm) shows the start-up lines at once
    // DPO: the reference log-probs, once, before the first step (after the start-up lines: it takes a while)
    if (r->dpo && !cfg->dry_run) { dpo_reference_pass(ops, &r->dpo_train, cfg->dpo_data, comm, start_step); }
    // --eval scores a later model against the reference of the training run: the file must hold it
    if (r->have_dpo_val && !cfg->dry_run) {
        dpo_reference_pass(ops, &r->dpo_val, cfg->dpo_val, comm, cfg->eval_only ? 1 : start_step);
    }
    Evaluators ev = {
        .val = r->have_val ? &r->val_loader : NULL, .val_batches = r->val_batches, .tasks = &r->tasks,
        .tokenizer = &r->tokenizer,
        .have_tokenizer = r->have_tokenizer, .sample_rng = &r->sample_rng, .gen_buf = r->gen_buf,
        .dpo_val = r->have_dpo_val ? &r->dpo_val : NULL, .dpo_cfg = &r->dpo_cfg,
    };
    // --eval of a checkpoint file model_SSSSSSSS.bin logs at that step, not at 0
    int eval_model_step = 0;
    if (cfg->eval_only) {
        const char* base = strrchr(cfg->init_model, '/');
        base = base != NULL ? base + 1 : cfg->init_model;
        if (sscanf(base, "model_%8d", &eval_model_step) != 1) { eval_model_step = 0; }
    }

    double train_seconds = 0.0;
    int timed_steps = 0;
    int exit_code = 0;
    int max_steps = r->max_steps;
    for (int step = start_step; step <= max_steps; step++) {
        int last = step == max_steps;
        double tokens_so_far = (double)step * r->total_batch;
        comm_heartbeat(comm, "between steps");
        // a resumed run has already done the evaluations and checkpoint of its first step
        int resumed_here = step == start_step && start_step > 0;
        if (!resumed_here) {
            int label_step = cfg->eval_only ? eval_model_step : step;
            char label[LLMC_PATH_MAX + 64];
            if (cfg->eval_only) { snprintf(label, sizeof(label), "eval %s", model_desc); }
            else { snprintf(label, sizeof(label), "step %d", step); }
            train_evaluations_at(ops, cfg, comm, &r->logger, &ev, label_step, last, label, tokens_so_far,
                                 tokens_so_far * r->flops_per_token);
        }
        // a signal reaches the processes at different moments: they agree on stopping here
        int stop = comm_allreduce_max_int(comm, stop_signal != 0 ? (int)stop_signal : 0);
        int checkpoint_due = cfg->output_dir != NULL && step > 0 && !resumed_here && !cfg->eval_only &&
                             (last || stop || (cfg->checkpoint_every > 0 && step % cfg->checkpoint_every == 0));
        if (checkpoint_due) {
            comm_heartbeat(comm, "writing a checkpoint");
            train_save_checkpoint(ops, cfg, comm, r->total_batch, step, &r->train_loader, &r->sample_rng, &r->guard, r->skipped_total);
        }
        if (last) { break; }
        if (stop) {
            if (master) {
                printf("stopped by signal %d at step %d%s\n", stop, step,
                       cfg->output_dir ? "; resume with -y 1" : " (no -o: nothing saved)");
            }
            break;
        }
        // crash tests only: kill -9 (or hang) this process at a step, on one rank or all
        const char* test_rank = getenv("LLMC_TEST_RANK");
        if (test_rank == NULL || atoi(test_rank) == comm->rank) {
            const char* crash_at = getenv("LLMC_TEST_KILL_AT_STEP");
            if (crash_at != NULL && atoi(crash_at) == step) { kill(getpid(), SIGKILL); }
            const char* hang_at = getenv("LLMC_TEST_HANG_AT_STEP");
            if (hang_at != NULL && atoi(hang_at) == step) { for (;;) { pause(); } }
        }

        char why[256];
        StepMetrics sm = train_one_step(r, ops, cfg, comm, step, why, sizeof(why));
        double dt = sm.ms / 1e3;
        if (step > start_step) { train_seconds += dt; timed_steps++; }  // the first step warms caches
        double avg = timed_steps > 0 ? train_seconds / timed_steps : dt;
        char eta[32];
        format_duration(eta, sizeof(eta), avg * (max_steps - step - 1) + evals_eta_seconds(&ev, cfg, step + 1, max_steps));
        if (master) { train_print_step(r, &sm, eta); }
        logger_log_step(&r->logger, &sm);
        if (r->dpo) { dpo_log_stats(&r->logger, step, "dpo_", &r->dpo_stats); }
        if (r->guard.bad_in_row >= r->guard.max_bad) {
            // the parameters and moments hold no update from a bad step
            if (cfg->output_dir != NULL) {
                train_save_checkpoint(ops, cfg, comm, r->total_batch, step + 1, &r->train_loader, &r->sample_rng, &r->guard,
                                      r->skipped_total);
            }
            if (master) {
                fprintf(stderr, "error: %d bad steps in a row (last: %s); stopping at step %d%s\n", r->guard.bad_in_row, why,
                        step + 1, cfg->output_dir ? ", checkpoint written" : "");
            }
            exit_code = 2;
            break;
        }
    }
    if (timed_steps > 0 && master) {
        double avg = train_seconds / timed_steps;
        char mfu_text[48] = "";
        if (r->peak_tflops > 0) {
            snprintf(mfu_text, sizeof(mfu_text), ", MFU %.1f%% of %.0f TFLOP/s", 100.0 * r->flops_per_step / avg /
                     (r->peak_tflops * 1e12 * comm->world), r->peak_tflops);
        }
        printf("average step: %.1f ms, %.0f tok/s, %.1f GFLOP/s%s (%d steps after the first)\n", avg * 1e3,
               r->total_batch / avg, r->flops_per_step / avg / 1e9, mfu_text, timed_steps);
    }

    if (cfg->merge_out != NULL && master && exit_code == 0 && stop_signal == 0) {
        train_merge_out(ops, cfg->merge_out);
    }
    train_run_close(r);
    return exit_code;
}

#endif // LLMC_TRAIN_LOOP_H
