// Command-line flags: a small table-driven parser, and the training programs' flags.
//
// llm.c's short flags keep their meaning (-i -j -e -o -b -t -d -l ...), each with a long alias;
// `-b 4`, `--batch-size 4` and `--batch-size=4` are the same. Every number is checked against
// its range, and a bad value is refused with a message that names the flag.
#ifndef LLMC_ARGS_H
#define LLMC_ARGS_H

#include <math.h>
#include "utils.h"
#include "schedule.h"

typedef enum { ARG_INT, ARG_FLOAT, ARG_STRING, ARG_FLAG, ARG_LONG, ARG_DOUBLE } ArgType;

typedef struct {
    const char* short_name;  // e.g. "-b", or NULL
    const char* long_name;   // e.g. "--batch-size"
    ArgType type;
    void* value;             // int*, float*, const char**, int* (ARG_FLAG: set to 1), long long*, double*
    double min, max;         // inclusive range for the numeric types
    const char* help;
} ArgSpec;

// Strict number parsing, shared by every program and tool (never atoi/atof: they turn "1e6"
// into 1 and "abc" into 0 in silence). Each returns 0, or -1 with err naming `name`.
//
// An integer may be written in scientific notation when its value is a whole number
// ("1e6", "2.5e5"), because that is how people write token counts.
static int parse_integer(const char* name, const char* text, long long min, long long max, long long* out, char* err) {
    char* end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end != text && *end == '\0') {
        if (errno == ERANGE || v < min || v > max) {
            return set_err(err, "%s: %s is out of range [%lld, %lld]", name, text, min, max);
        }
        *out = v;
        return 0;
    }
    // not a plain integer: maybe a whole number in scientific or decimal notation
    errno = 0;
    double d = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(d)) {
        return set_err(err, "%s: expected an integer, got '%s'", name, text);
    }
    if (d != floor(d)) { return set_err(err, "%s: expected an integer, got '%s' (not a whole number)", name, text); }
    if (d < (double)min || d > (double)max) {
        return set_err(err, "%s: %s is out of range [%lld, %lld]", name, text, min, max);
    }
    *out = (long long)d;
    return 0;
}

static int parse_number(const char* name, const char* text, double min, double max, double* out, char* err) {
    char* end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0') { return set_err(err, "%s: expected a number, got '%s'", name, text); }
    if (!isfinite(v)) { return set_err(err, "%s: expected a number, got '%s' (not finite)", name, text); }
    if (errno == ERANGE && v != 0.0 && fabs(v) > 1.0) { return set_err(err, "%s: %s is too large", name, text); }
    if (v < min || v > max) { return set_err(err, "%s: %s is out of range [%g, %g]", name, text, min, max); }
    *out = v;
    return 0;
}

static int arg_matches(const ArgSpec* s, const char* name) {
    return (s->short_name != NULL && strcmp(name, s->short_name) == 0) ||
           (s->long_name != NULL && strcmp(name, s->long_name) == 0);
}

static const char* arg_display_name(const ArgSpec* s) {
    return s->short_name != NULL ? s->short_name : s->long_name;
}

// "-b (--batch-size)" when the short name was used, so every message names the long form too
static void arg_full_name(const ArgSpec* s, const char* used, char* out, size_t n) {
    if (s->short_name != NULL && s->long_name != NULL && strcmp(used, s->short_name) == 0) {
        snprintf(out, n, "%s (%s)", s->short_name, s->long_name);
    } else {
        snprintf(out, n, "%s", used);
    }
}

static int arg_set_value(const ArgSpec* s, const char* name, const char* text, char* err) {
    if (s->type == ARG_INT || s->type == ARG_LONG) {
        long long v = 0;
        if (parse_integer(name, text, (long long)s->min, (long long)s->max, &v, err) != 0) { return -1; }
        if (s->type == ARG_INT) { *(int*)s->value = (int)v; } else { *(long long*)s->value = v; }
    } else if (s->type == ARG_FLOAT || s->type == ARG_DOUBLE) {
        double v = 0.0;
        if (parse_number(name, text, s->min, s->max, &v, err) != 0) { return -1; }
        if (s->type == ARG_FLOAT) {
            if (v != 0.0 && fabs(v) < 1.1754944e-38) {
                return set_err(err, "%s: %s is too small for a 32-bit float (the smallest is about 1.2e-38; use 0 for zero)", name, text);
            }
            *(float*)s->value = (float)v;
        } else {
            *(double*)s->value = v;
        }
    } else if (s->type == ARG_STRING) {
        if (text[0] == '\0') { return set_err(err, "%s: expected a value, got an empty string", name); }
        *(const char**)s->value = text;
    }
    return 0;
}

// Parses flags: "-b 4", "--batch-size 4" and "--batch-size=4" are the same. A flag given
// twice is refused (two values for one setting is a mistake), unless allow_repeat: then the
// last one wins and a note on stderr names the flag and both values (launch scripts put the
// user's "$@" after their defaults, and the user's value must win). Arguments that
// do not start with '-' are positional: stored in positional (up to max_positional, count in
// *npositional) when the caller takes them, refused otherwise.
// Returns 0, 1 if --help / -help was asked for, or -1 with err set.
static int args_parse_positional(int argc, char** argv, const ArgSpec* specs, int nspecs, const char** positional,
                                 int max_positional, int* npositional, int allow_repeat, char* err) {
    const char* seen[256] = {0};  // the value each flag was given, "" for a switch
    if (nspecs > 256) { return set_err(err, "internal error: too many flags"); }
    if (npositional != NULL) { *npositional = 0; }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-help") == 0) { return 1; }
    }
    for (int i = 1; i < argc; i++) {
        const char* arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0') {
            if (positional == NULL || npositional == NULL) {
                return set_err(err, "unexpected argument '%s' (flags start with -; see --help)", arg);
            }
            if (*npositional >= max_positional) { return set_err(err, "too many arguments: '%s' (see --help)", arg); }
            positional[(*npositional)++] = arg;
            continue;
        }
        // split "--name=value"
        char name[128];
        const char* inline_value = NULL;
        const char* eq = (arg[0] == '-' && arg[1] == '-') ? strchr(arg, '=') : NULL;
        size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        if (name_len >= sizeof(name)) { return set_err(err, "unknown flag '%s' (see --help)", arg); }
        memcpy(name, arg, name_len);
        name[name_len] = '\0';
        if (eq != NULL) { inline_value = eq + 1; }
        int k_found = -1;
        for (int k = 0; k < nspecs; k++) {
            if (arg_matches(&specs[k], name)) { k_found = k; break; }
        }
        if (k_found < 0) { return set_err(err, "unknown flag '%s' (see --help)", name); }
        const ArgSpec* spec = &specs[k_found];
        char full[160];
        arg_full_name(spec, name, full, sizeof(full));
        // -h is llm.c's HellaSwag flag, and people type it for help
        const char* hint = strcmp(name, "-h") == 0 ? "; for help use --help" : "";
        if (spec->type == ARG_FLAG) {
            if (inline_value != NULL) { return set_err(err, "%s takes no value", full); }
            if (seen[k_found] != NULL && !allow_repeat) { return set_err(err, "%s is given twice; give each flag once", full); }
            seen[k_found] = "";
            *(int*)spec->value = 1;
            continue;
        }
        const char* text = inline_value;
        if (text == NULL) {
            if (i + 1 >= argc) { return set_err(err, "%s: missing value (%s)%s", full, spec->help, hint); }
            text = argv[++i];
        }
        if (seen[k_found] != NULL) {
            if (!allow_repeat) {
                return set_err(err, "%s is given twice ('%s' and '%s'); give each flag once", full, seen[k_found], text);
            }
            fprintf(stderr, "note: %s is given twice ('%s', then '%s'): using '%s'\n", full, seen[k_found], text, text);
        }
        seen[k_found] = text;
        if (arg_set_value(spec, full, text, err) != 0) {
            if (hint[0] != '\0') { size_t l = strlen(err); snprintf(err + l, LLMC_ERRLEN - l, "%s", hint); }
            return -1;
        }
    }
    return 0;
}

static int args_parse(int argc, char** argv, const ArgSpec* specs, int nspecs, char* err) {
    return args_parse_positional(argc, argv, specs, nspecs, NULL, 0, NULL, 0, err);
}

static void args_print_help(FILE* out, const char* usage, const ArgSpec* specs, int nspecs) {
    fprintf(out, "%s\n\nFlags:\n", usage);
    for (int k = 0; k < nspecs; k++) {
        const ArgSpec* s = &specs[k];
        char names[96];
        snprintf(names, sizeof(names), "%s%s%s", s->short_name ? s->short_name : "",
                 s->short_name ? ", " : "    ", s->long_name ? s->long_name : "");
        // a default outside the flag's range means "chosen by the program", as its help says
        char deflt[96] = "";
        if (s->type == ARG_INT && *(int*)s->value >= s->min) { snprintf(deflt, sizeof(deflt), " (default %d)", *(int*)s->value); }
        else if (s->type == ARG_FLOAT) { snprintf(deflt, sizeof(deflt), " (default %g)", *(float*)s->value); }
        else if (s->type == ARG_LONG) { snprintf(deflt, sizeof(deflt), " (default %lld)", *(long long*)s->value); }
        else if (s->type == ARG_DOUBLE) { snprintf(deflt, sizeof(deflt), " (default %g)", *(double*)s->value); }
        else if (s->type == ARG_STRING && *(const char**)s->value != NULL) {
            snprintf(deflt, sizeof(deflt), " (default %s)", *(const char**)s->value);
        }
        fprintf(out, "  %-28s %s%s\n", names, s->help, deflt);
    }
    fprintf(out, "  %-28s %s\n", "    --help", "print this help and exit");
}

// ----------------------------------------------------------------------------
// The training programs' configuration, shared by train_gpt.c and train_gpt.cu.

typedef struct {
    const char* train_data;   // -i  glob pattern of train shards
    const char* val_data;     // -j  glob pattern of val shards
    const char* init_model;   // -e  checkpoint file, or a preset dN for a fresh random init
    const char* output_dir;   // -o  log and checkpoints; none if NULL
    const char* tokenizer;    //     llm.c tokenizer file, to decode samples
    int B;                    // -b  micro-batch size, sequences
    int T;                    // -t  sequence length
    int total_batch_size;     // -d  tokens per optimizer step; -1 = B*T (no accumulation)
    float learning_rate;      // -l
    const char* lr_schedule;  // -k  cosine | linear | constant | wsd
    int warmup_steps;         // -u
    float final_lr_frac;      // -q
    float wsd_decay_frac;     //     WSD: fraction of steps spent decaying
    float weight_decay;       // -c
    float grad_clip;          //     max global gradient norm, 0 = off
    float beta1, beta2, eps;  //     AdamW
    int max_steps;            // -x  -1 = one epoch of the train data
    double max_tokens;        //     instead of -x: train on this many tokens (steps rounded to the nearest)
    double max_flops;         //     instead of -x: spend this many training FLOPs (the log's count)
    float warmup_frac;        //     warmup as a fraction of the run's steps (overrides -u when > 0)
    int vocab_size;           //     a preset's vocabulary size V (-1: GPT-2's 50257)
    int dry_run;              //     print the run's plan (sizes, steps, tokens, FLOPs) and exit
    int val_every;            // -v  steps between validation evaluations, 0 = never
    int val_max_steps;        // -m  validation batches per evaluation
    int sample_every;         // -s  steps between samples, 0 = never
    int gen_tokens;           // -g  tokens per sample
    float temperature;        //     sampling temperature, 0 = greedy
    int checkpoint_every;     // -n  steps between checkpoints, 0 = only at the end
    int overfit_batch;        // -a  1 = train on the first batch over and over (debugging)
    int seed;                 //     model init, shuffling and sampling
    int no_shuffle;           //     1 = train data in file order
    int resume;               // -y  1 = resume from the latest checkpoint in -o
    int overwrite;            //     1 = a fresh run may replace the run already in -o
    int accept_changes;       //     1 = -y 1 may continue with other run-defining flags (each is named)
    int keep_last;            // -nk keep the newest this many checkpoints, 0 = keep all
    int keep_every;           // -nm and every checkpoint whose step is a multiple of this
    float guard_loss_z;       // -sl skip the update when the loss is this many std above recent steps, 0 = off
    float guard_norm_z;       // -sg same for the gradient norm
    int guard_window;         //     recent steps the guard's statistics use
    int guard_max_bad;        //     bad steps in a row that stop the run
    int hellaswag_every;      // -h  HellaSwag accuracy every this many steps, 0 = never
    const char* hellaswag;    //     tokenized HellaSwag file
    int hellaswag_examples;   //     examples per evaluation, -1 = all
    const char* tasks;        //     multiple-choice tasks (llmc/train_mc.h): names, files or "all", comma-separated
    int tasks_every;          //     evaluate them every this many steps (0: at the end only)
    int tasks_examples;       //     examples per task per evaluation, -1 = all
    int eval_only;            //     evaluate the model (val loss, HellaSwag) and exit
    float peak_tflops;        //     peak FLOP/s of the hardware for MFU, 0 = unknown
    int zero_stage;           // -z  0: every process holds all AdamW moments; 1: sharded (ZeRO-1)
    float timeout;            //     seconds without progress before a process gives up on its peers
    int num_processes;        // -pn processes in the job (-1: from the launcher)
    int process_rank;         // -pr this process's rank (-1: from the launcher)
    int gpus_per_node;        // -pg (GPU)
    const char* init_method;  // -pm mpi | fs | tcp: how processes find each other
    const char* server_ip;    // -ps tcp rendezvous: rank 0's address
    const char* fs_path;      // -pp fs rendezvous: a directory on a filesystem all nodes share
    int write_bf16;           //     also write each checkpoint's model as a version-5 (bf16) file
    int recompute;            // -r  GPU: recompute GELU and LayerNorm outputs in the backward pass
    int gelu_fusion;          //     GPU: GELU in the matmul's epilogue (-1: on)
    int overlap_reduce;       //     GPU, several: sum each layer's gradients while the backward goes on (-1: on)
    const char* attention;    //     GPU: attention kernel, scalar | tc | cudnn; "" = the build's default
    // fine-tuning (llmc/peft.h): full, or one of the parameter-efficient methods on a frozen base
    const char* peft;         //     full | lora | bitfit | adapter | prompt
    int lora_rank;            //     LoRA rank r
    float lora_alpha;         //     LoRA scale numerator: s = alpha / r
    const char* lora_targets; //     the matrices LoRA adapts: qkv,attproj,fc,fcproj or all
    int bitfit_ln;            //     BitFit: also train the LayerNorm gains
    int adapter_size;         //     adapters: bottleneck size m
    int prompt_len;           //     prompt tuning: k virtual tokens
    const char* peft_init;    //     start from (or evaluate) this adapter file instead of a fresh init
    const char* merge_out;    //     LoRA/BitFit: write the merged plain checkpoint here at the end
    // preference optimization (llmc/dpo.h): train on pair files instead of -i's token shards
    const char* dpo_data;     //     pair file (dev/data/dpo_prepare) to train on with DPO
    const char* dpo_val;      //     held-out pair file: reward accuracy and margins every -v steps
    const char* dpo_loss;     //     sigmoid | ipo | hinge
    float dpo_beta;           //     beta: the strength of the pull towards the reference model
    float dpo_label_smoothing;//     sigmoid: probability that a preference label is flipped
    // knowledge distillation (llmc/distill.h)
    const char* distill;      //     teacher checkpoint (same vocabulary)
    float distill_alpha;      //     weight of the soft (KL) term; 1 - alpha on the hard cross-entropy
    float distill_tau;        //     temperature of both softmaxes in the KL
    int distill_reverse;      //     KL(student || teacher) instead of KL(teacher || student)
} TrainConfig;

static void train_config_defaults(TrainConfig* c) {
    c->train_data = "dev/data/tinyshakespeare/tiny_shakespeare_train.bin";
    c->val_data = "dev/data/tinyshakespeare/tiny_shakespeare_val.bin";
    c->init_model = "d6";
    c->output_dir = NULL;
    c->tokenizer = "dev/data/gpt2_tokenizer.bin";
    c->B = 8;
    c->T = 256;
    c->total_batch_size = -1;
    c->learning_rate = 1e-3f;
    c->lr_schedule = "cosine";
    c->warmup_steps = 0;
    c->final_lr_frac = 0.1f;
    c->wsd_decay_frac = 0.2f;
    c->weight_decay = 0.0f;
    c->grad_clip = 1.0f;
    c->beta1 = 0.9f;
    c->beta2 = 0.95f;
    c->eps = 1e-8f;
    c->max_steps = -1;
    c->max_tokens = -1.0;
    c->max_flops = -1.0;
    c->warmup_frac = 0.0f;
    c->vocab_size = -1;
    c->dry_run = 0;
    c->val_every = 20;
    c->val_max_steps = 20;
    c->sample_every = 20;
    c->gen_tokens = 64;
    c->temperature = 1.0f;
    c->checkpoint_every = 0;
    c->overfit_batch = 0;
    c->seed = 1337;
    c->no_shuffle = 0;
    c->resume = 0;
    c->overwrite = 0;
    c->accept_changes = 0;
    c->keep_last = 0;
    c->keep_every = 0;
    c->guard_loss_z = 0.0f;
    c->guard_norm_z = 0.0f;
    c->guard_window = 100;
    c->guard_max_bad = 10;
    c->hellaswag_every = 0;
    c->hellaswag = "dev/data/eval/hellaswag.bin";
    c->hellaswag_examples = -1;
    c->tasks = NULL;
    c->tasks_every = 0;
    c->tasks_examples = -1;
    c->eval_only = 0;
    c->peak_tflops = 0.0f;
    c->zero_stage = 0;
    c->timeout = 600.0f;
    c->num_processes = -1;
    c->process_rank = -1;
    c->gpus_per_node = 8;
    c->init_method = "mpi";
    c->server_ip = NULL;
    c->fs_path = NULL;
    c->write_bf16 = 0;
    c->recompute = 0;
    c->gelu_fusion = -1;
    c->overlap_reduce = -1;
    c->attention = "";  // cuDNN in a USE_CUDNN=1 build, else our tensor-core kernels (CUDA cores in fp32)
    c->peft = "full";
    c->lora_rank = 8;
    c->lora_alpha = 16.0f;
    c->lora_targets = "all";
    c->bitfit_ln = 0;
    c->adapter_size = 16;
    c->prompt_len = 16;
    c->peft_init = NULL;
    c->merge_out = NULL;
    c->dpo_data = NULL;
    c->dpo_val = NULL;
    c->dpo_loss = "sigmoid";
    c->dpo_beta = 0.1f;
    c->dpo_label_smoothing = 0.0f;
    c->distill = NULL;
    c->distill_alpha = 0.5f;
    c->distill_tau = 2.0f;
    c->distill_reverse = 0;
}

#define TRAIN_NUM_ARGS 81

static void train_config_specs(TrainConfig* c, ArgSpec specs[TRAIN_NUM_ARGS]) {
    const double big = 2147483647.0;
    ArgSpec s[TRAIN_NUM_ARGS] = {
        {"-i", "--train-data", ARG_STRING, &c->train_data, 0, 0, "train token shards, a glob pattern"},
        {"-j", "--val-data", ARG_STRING, &c->val_data, 0, 0, "val token shards, a glob pattern"},
        {"-e", "--init-model", ARG_STRING, &c->init_model, 0, 0, "model checkpoint file, or dN (d12 = GPT-2 124M) for a random init"},
        {NULL, "--vocab-size", ARG_INT, &c->vocab_size, -1, 1 << 24, "a dN preset's vocabulary size V, e.g. of a tokenizer trained with dev/data/bpe_train (-1: GPT-2's 50257)"},
        {"-o", "--output-dir", ARG_STRING, &c->output_dir, 0, 0, "directory for main.log and checkpoints (none: no log, no checkpoints)"},
        {NULL, "--tokenizer", ARG_STRING, &c->tokenizer, 0, 0, "llm.c tokenizer file, to decode samples"},
        {"-b", "--batch-size", ARG_INT, &c->B, 1, 65536, "micro-batch size B, sequences"},
        {"-t", "--seq-len", ARG_INT, &c->T, 1, 1 << 20, "sequence length T, at most the model's maxT"},
        {"-d", "--total-batch-size", ARG_INT, &c->total_batch_size, -1, big, "tokens per step, a multiple of B*T (-1: B*T)"},
        {"-l", "--learning-rate", ARG_FLOAT, &c->learning_rate, 0, 10, "peak learning rate"},
        {"-k", "--lr-schedule", ARG_STRING, &c->lr_schedule, 0, 0, "cosine | linear | constant | wsd"},
        {"-u", "--warmup-steps", ARG_INT, &c->warmup_steps, 0, big, "linear warmup steps"},
        {NULL, "--warmup-frac", ARG_FLOAT, &c->warmup_frac, 0, 1, "warmup as a fraction of the run's steps, rounded (0: use -u)"},
        {"-q", "--final-lr-frac", ARG_FLOAT, &c->final_lr_frac, 0, 1, "final learning rate as a fraction of the peak"},
        {NULL, "--wsd-decay-frac", ARG_FLOAT, &c->wsd_decay_frac, 0, 1, "wsd: fraction of the steps spent decaying"},
        {"-c", "--weight-decay", ARG_FLOAT, &c->weight_decay, 0, 10, "AdamW weight decay (weight matrices only)"},
        {NULL, "--grad-clip", ARG_FLOAT, &c->grad_clip, 0, 1e9, "clip the global gradient norm to this (0: off)"},
        {NULL, "--beta1", ARG_FLOAT, &c->beta1, 0, 0.999999, "AdamW beta1"},
        {NULL, "--beta2", ARG_FLOAT, &c->beta2, 0, 0.999999, "AdamW beta2"},
        {NULL, "--eps", ARG_FLOAT, &c->eps, 1e-30, 1, "AdamW epsilon"},
        {"-x", "--max-steps", ARG_INT, &c->max_steps, -1, big, "optimizer steps (-1: one epoch of the train data)"},
        {NULL, "--max-tokens", ARG_DOUBLE, &c->max_tokens, -1, 1e18, "instead of -x: train on this many tokens (steps = tokens / -d, rounded; -1: off)"},
        {NULL, "--max-flops", ARG_DOUBLE, &c->max_flops, -1, 1e30, "instead of -x: a training-FLOP budget, counted as the log counts (steps = FLOPs / (FLOPs per token x -d), rounded; -1: off)"},
        {NULL, "--dry-run", ARG_FLAG, &c->dry_run, 0, 0, "print the run's plan (parameters, FLOPs per token, steps, tokens, FLOPs) and exit"},
        {"-v", "--val-every", ARG_INT, &c->val_every, 0, big, "evaluate val loss every this many steps (0: never)"},
        {"-m", "--val-max-steps", ARG_INT, &c->val_max_steps, 1, big, "val batches per evaluation"},
        {"-s", "--sample-every", ARG_INT, &c->sample_every, 0, big, "print a sample every this many steps (0: never)"},
        {"-g", "--gen-tokens", ARG_INT, &c->gen_tokens, 1, 1 << 20, "tokens per sample"},
        {NULL, "--temperature", ARG_FLOAT, &c->temperature, 0, 100, "sampling temperature (0: greedy)"},
        {"-n", "--checkpoint-every", ARG_INT, &c->checkpoint_every, 0, big, "write a checkpoint every this many steps (0: only at the end)"},
        {"-a", "--overfit-batch", ARG_INT, &c->overfit_batch, 0, 1, "1: train on the first batch only (debugging)"},
        {NULL, "--seed", ARG_INT, &c->seed, 0, big, "seed for init, shuffling and sampling"},
        {NULL, "--no-shuffle", ARG_FLAG, &c->no_shuffle, 0, 0, "read the train data in order"},
        {"-y", "--resume", ARG_INT, &c->resume, 0, 1, "1: resume from the latest checkpoint in -o, exactly"},
        {NULL, "--overwrite", ARG_FLAG, &c->overwrite, 0, 0, "start afresh in an -o that holds a run: deletes its logs and checkpoints first"},
        {NULL, "--accept-changes", ARG_FLAG, &c->accept_changes, 0, 0, "with -y 1: continue although run-defining flags changed (e.g. a larger -x to extend a run)"},
        {"-nk", "--keep-last", ARG_INT, &c->keep_last, 0, big, "keep only the newest this many checkpoints (0: all)"},
        {"-nm", "--keep-every", ARG_INT, &c->keep_every, 0, big, "also keep checkpoints at multiples of this step (0: none)"},
        {"-sl", "--skip-loss-z", ARG_FLOAT, &c->guard_loss_z, 0, 1e6, "skip updates whose loss is this many std above recent steps (0: off)"},
        {"-sg", "--skip-norm-z", ARG_FLOAT, &c->guard_norm_z, 0, 1e6, "skip updates whose gradient norm is this many std above recent steps (0: off)"},
        {NULL, "--guard-window", ARG_INT, &c->guard_window, 2, 1024, "recent steps the spike guard compares against"},
        {NULL, "--guard-max-bad", ARG_INT, &c->guard_max_bad, 1, big, "stop after this many skipped steps in a row"},
        {"-h", "--hellaswag-every", ARG_INT, &c->hellaswag_every, 0, big, "HellaSwag accuracy every this many steps (0: never)"},
        {NULL, "--hellaswag", ARG_STRING, &c->hellaswag, 0, 0, "tokenized HellaSwag file (make eval-data); -h reports llm.c's accuracy (lowest mean loss per token)"},
        {NULL, "--hellaswag-examples", ARG_INT, &c->hellaswag_examples, -1, big, "HellaSwag examples per evaluation (-1: all)"},
        {NULL, "--tasks", ARG_STRING, &c->tasks, 0, 0, "multiple-choice tasks, comma-separated: names (dev/data/eval/NAME.bin, make eval-data), files, or all"},
        {NULL, "--tasks-every", ARG_INT, &c->tasks_every, 0, big, "evaluate --tasks every this many steps (0: after the last step only)"},
        {NULL, "--tasks-examples", ARG_INT, &c->tasks_examples, -1, big, "examples per task per evaluation (-1: all)"},
        {NULL, "--eval", ARG_FLAG, &c->eval_only, 0, 0, "evaluate -e (val loss over -m batches, HellaSwag if -h > 0, --tasks) and exit"},
        {NULL, "--peak-tflops", ARG_FLOAT, &c->peak_tflops, 0, 1e6, "the hardware's peak TFLOP/s, for MFU (0: unknown)"},
        {"-z", "--zero-stage", ARG_INT, &c->zero_stage, 0, 1, "0: replicated optimizer state; 1: sharded across processes (ZeRO-1)"},
        {NULL, "--timeout", ARG_FLOAT, &c->timeout, 0, 1e7, "seconds without progress before giving up on dead or hung peers (0: never)"},
        {"-pn", "--num-processes", ARG_INT, &c->num_processes, -1, 1 << 20, "processes in the job (-1: from mpirun/srun)"},
        {"-pr", "--process-rank", ARG_INT, &c->process_rank, -1, 1 << 20, "this process's rank (-1: from mpirun/srun)"},
        {"-pg", "--gpus-per-node", ARG_INT, &c->gpus_per_node, 1, 1024, "GPUs per node"},
        {"-pm", "--init-method", ARG_STRING, &c->init_method, 0, 0, "mpi | fs | tcp: how the processes find each other"},
        {"-ps", "--server-ip", ARG_STRING, &c->server_ip, 0, 0, "tcp: rank 0's address"},
        {"-pp", "--fs-path", ARG_STRING, &c->fs_path, 0, 0, "fs: a directory shared by all nodes"},
        {NULL, "--write-bf16", ARG_FLAG, &c->write_bf16, 0, 0, "also write each checkpoint's model in bf16 (version 5)"},
        {"-r", "--recompute", ARG_INT, &c->recompute, 0, 1, "GPU: 1 recomputes GELU and LayerNorm outputs in backward (less memory)"},
        {NULL, "--gelu-fusion", ARG_INT, &c->gelu_fusion, 0, 1, "GPU: 1 (the default) runs GELU and its backward in the matmul epilogues (2-3% faster a d12 step on an H200), 0 as kernels of their own"},
        {NULL, "--overlap-reduce", ARG_INT, &c->overlap_reduce, 0, 1, "GPU, several: 1 (the default) sums each layer's gradients over the GPUs while the backward goes on, 0 after it (the same sums)"},
        {NULL, "--attention", ARG_STRING, &c->attention, 0, 0, "GPU: attention: scalar (CUDA cores), tc (tensor cores, the default) or cudnn (the default of USE_CUDNN=1 builds)"},
        {NULL, "--peft", ARG_STRING, &c->peft, 0, 0, "fine-tuning: full (every weight), or on a frozen base: lora | bitfit | adapter | prompt"},
        {NULL, "--lora-rank", ARG_INT, &c->lora_rank, 1, 65536, "LoRA rank r"},
        {NULL, "--lora-alpha", ARG_FLOAT, &c->lora_alpha, 1e-6, 1e6, "LoRA alpha: the update is scaled by alpha / r"},
        {NULL, "--lora-targets", ARG_STRING, &c->lora_targets, 0, 0, "matrices LoRA adapts: comma list of qkv,attproj,fc,fcproj, or all"},
        {NULL, "--bitfit-ln", ARG_FLAG, &c->bitfit_ln, 0, 0, "BitFit: also train the LayerNorm gains"},
        {NULL, "--adapter-size", ARG_INT, &c->adapter_size, 1, 1 << 20, "adapters: bottleneck size m (after attention and after the MLP)"},
        {NULL, "--prompt-len", ARG_INT, &c->prompt_len, 1, 1 << 20, "prompt tuning: k trainable virtual tokens before every sequence"},
        {NULL, "--peft-init", ARG_STRING, &c->peft_init, 0, 0, "adapter file (.peft) to start from, or with --eval to evaluate on top of -e"},
        {NULL, "--merge-out", ARG_STRING, &c->merge_out, 0, 0, "LoRA/BitFit: at the end, write base + adapter merged as a plain checkpoint here"},
        {NULL, "--dpo", ARG_STRING, &c->dpo_data, 0, 0, "DPO: train on this pair file (dev/data/dpo_prepare) instead of -i; -e is the reference model"},
        {NULL, "--dpo-val", ARG_STRING, &c->dpo_val, 0, 0, "DPO: held-out pair file, scored (reward accuracy, margins) every -v steps"},
        {NULL, "--dpo-loss", ARG_STRING, &c->dpo_loss, 0, 0, "DPO loss: sigmoid (DPO; with --dpo-label-smoothing: conservative DPO) | ipo | hinge"},
        {NULL, "--dpo-beta", ARG_FLOAT, &c->dpo_beta, 1e-6, 1e6, "DPO beta: reward scale, the strength of the pull towards the reference"},
        {NULL, "--dpo-label-smoothing", ARG_FLOAT, &c->dpo_label_smoothing, 0, 0.5, "DPO sigmoid loss: assumed probability that a preference is flipped"},
        {NULL, "--distill", ARG_STRING, &c->distill, 0, 0, "knowledge distillation from this teacher checkpoint (same vocabulary)"},
        {NULL, "--distill-alpha", ARG_FLOAT, &c->distill_alpha, 0, 1, "distillation: loss = (1 - alpha) CE + alpha tau^2 KL"},
        {NULL, "--distill-tau", ARG_FLOAT, &c->distill_tau, 1e-3, 1e3, "distillation: temperature of the KL's softmaxes"},
        {NULL, "--distill-reverse", ARG_FLAG, &c->distill_reverse, 0, 0, "distillation: KL(student || teacher) (mode-seeking) instead of KL(teacher || student)"},
    };
    memcpy(specs, s, sizeof(s));
}

// Parses argv into c (defaults first). Returns 0, or exits: 0 after --help, 1 on a bad flag.
static void train_config_parse(TrainConfig* c, int argc, char** argv, const char* usage) {
    train_config_defaults(c);
    ArgSpec specs[TRAIN_NUM_ARGS];
    train_config_specs(c, specs);
    char err[LLMC_ERRLEN];
    int rc = args_parse_positional(argc, argv, specs, TRAIN_NUM_ARGS, NULL, 0, NULL, 1, err);
    if (rc == 1) {
        // print the defaults, not values half-parsed from argv
        TrainConfig d;
        train_config_defaults(&d);
        ArgSpec dspecs[TRAIN_NUM_ARGS];
        train_config_specs(&d, dspecs);
        args_print_help(stdout, usage, dspecs, TRAIN_NUM_ARGS);
        exit(EXIT_SUCCESS);
    }
    if (rc != 0) { die("%s", err); }
    LRScheduleType type;
    if (lr_schedule_parse(c->lr_schedule, &type) != 0) {
        die("-k: unknown learning-rate schedule '%s' (cosine, linear, constant, wsd)", c->lr_schedule);
    }
    if (strcmp(c->init_method, "mpi") != 0 && strcmp(c->init_method, "fs") != 0 && strcmp(c->init_method, "tcp") != 0) {
        die("-pm: unknown init method '%s' (mpi, fs, tcp)", c->init_method);
    }
    if (c->attention[0] != '\0' && strcmp(c->attention, "tc") != 0 && strcmp(c->attention, "scalar") != 0 &&
        strcmp(c->attention, "cudnn") != 0) {
        die("--attention: unknown kernel '%s' (scalar, tc, cudnn)", c->attention);
    }
    if (strcmp(c->dpo_loss, "sigmoid") != 0 && strcmp(c->dpo_loss, "ipo") != 0 && strcmp(c->dpo_loss, "hinge") != 0) {
        die("--dpo-loss: unknown loss '%s' (sigmoid, ipo, hinge)", c->dpo_loss);
    }
    if (c->dpo_label_smoothing != 0.0f && strcmp(c->dpo_loss, "sigmoid") != 0) {
        die("--dpo-label-smoothing applies to --dpo-loss sigmoid only (got %s)", c->dpo_loss);
    }
    if (c->dpo_val != NULL && c->dpo_data == NULL && !c->eval_only) { die("--dpo-val needs --dpo (or --eval)"); }
    if (c->distill != NULL && c->dpo_data != NULL) { die("--distill and --dpo: one loss at a time"); }
    if (c->resume && c->overwrite) { die("-y 1 and --overwrite contradict each other: resume the run in -o, or replace it"); }
    if (c->eval_only && c->resume) { die("--eval evaluates the model given by -e; -y 1 does not apply (give -e the checkpoint file)"); }
    if (c->dry_run) {  // a plan touches nothing: no output directory, no lock, no logs
        c->output_dir = NULL;
        c->resume = 0;
        c->overwrite = 0;
    }
    if ((c->max_steps != -1) + (c->max_tokens >= 0) + (c->max_flops >= 0) > 1) {
        die("-x, --max-tokens and --max-flops each set the run's length: give one");
    }
    if ((c->max_tokens >= 0 && c->max_tokens < 1) || (c->max_flops >= 0 && c->max_flops < 1)) {
        die("--max-tokens/--max-flops: a budget must be at least 1 (or -1: off)");
    }
    if (c->total_batch_size != -1 && c->total_batch_size <= 0) {
        die("-d: total batch size must be positive or -1, got %d", c->total_batch_size);
    }
}

// The flags that define a run's trajectory: a resumed run is bitwise the run it continues only
// if these are unchanged (T and -d are checked by the training state itself).
static const char* const TRAIN_RUN_DEFINING_FLAGS[] = {
    "-i", "-x", "--max-tokens", "--max-flops", "-l", "-k", "-u", "--warmup-frac", "-q", "--wsd-decay-frac", "-c", "--grad-clip", "--beta1", "--beta2", "--eps",
    "--seed", "--no-shuffle", "-a", "-sl", "-sg", "--guard-window", "--guard-max-bad",
    "--peft", "--lora-rank", "--lora-alpha", "--lora-targets", "--bitfit-ln", "--adapter-size", "--prompt-len",
    "--dpo", "--dpo-loss", "--dpo-beta", "--dpo-label-smoothing",
    "--distill", "--distill-alpha", "--distill-tau", "--distill-reverse",
};

// "config NAME VALUE" lines of the run-defining flags, for the checkpoint's DONE marker.
static void train_config_record(const TrainConfig* cfg, char* buf, size_t n) {
    ArgSpec specs[TRAIN_NUM_ARGS];
    train_config_specs((TrainConfig*)cfg, specs);
    size_t used = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < sizeof(TRAIN_RUN_DEFINING_FLAGS) / sizeof(TRAIN_RUN_DEFINING_FLAGS[0]); k++) {
        for (int j = 0; j < TRAIN_NUM_ARGS; j++) {
            const ArgSpec* sp = &specs[j];
            if (!arg_matches(sp, TRAIN_RUN_DEFINING_FLAGS[k])) { continue; }
            char value[600];
            if (sp->type == ARG_INT || sp->type == ARG_FLAG) { snprintf(value, sizeof(value), "%d", *(int*)sp->value); }
            else if (sp->type == ARG_FLOAT) {  // the shortest text that reads back as the same float
                float x = *(float*)sp->value;
                snprintf(value, sizeof(value), "%g", x);
                if (strtof(value, NULL) != x) { snprintf(value, sizeof(value), "%.9g", x); }
            }
            else if (sp->type == ARG_DOUBLE) {
                double x = *(double*)sp->value;
                snprintf(value, sizeof(value), "%.17g", x);
            }
            else if (sp->type == ARG_STRING) { snprintf(value, sizeof(value), "%s", *(const char**)sp->value); }
            else { continue; }
            int w = snprintf(buf + used, n - used, "config %s %s\n", TRAIN_RUN_DEFINING_FLAGS[k], value);
            if (w < 0 || (size_t)w >= n - used) { buf[used] = '\0'; return; }  // full: the rest is not recorded
            used += (size_t)w;
        }
    }
}

#endif // LLMC_ARGS_H
