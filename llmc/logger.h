// The training logs, flushed line by line so a crashed run keeps its log:
//   main.log    llm.c's format:  s:STEP trl:LOSS lr:LR norm:NORM  (a training step)
//                                s:STEP tel:LOSS                  (a validation evaluation)
//                                s:STEP eval:ACC                  (HellaSwag accuracy)
//   main.jsonl  one JSON object per event with every metric (see logger_log_step), and a
//               first record {"step":0,"run":{...}} with the model's sizes and FLOPs per token
// STEP counts the updates made before the measurement, as llm.c does: the first optimisation
// step is s:0 trl (its loss is measured on the initial weights, like s:0 tel), and s:N tel and
// s:N trl are measured on the same weights. The last step of an N-step run is s:N-1 trl,
// followed by the final s:N tel.
// On resume at step S (S updates done), what came after is dropped: train lines from S on and
// evaluation lines after S, so the logs read as one clean run.
#ifndef LLMC_LOGGER_H
#define LLMC_LOGGER_H

#include <math.h>
#include "utils.h"

typedef struct {
    FILE* f;      // main.log, NULL when there is no output directory
    FILE* json;   // main.jsonl
    char path[LLMC_PATH_MAX + 16];
    char jpath[LLMC_PATH_MAX + 16];
} Logger;

// A log line that cannot be written (full disk, a log symlinked to /dev/full) stops the run
// with a message: a run whose log is silently lost has not happened, as far as its user knows.
static void logger_check(FILE* f, const char* path) {
    if (fflush(f) != 0 || ferror(f)) { die("writing the log %s failed: %s", path, strerror(errno)); }
}

// Everything known about one optimizer step.
typedef struct {
    int step;               // updates made before this one: the first step is 0 (llm.c's numbering)
    float loss;
    float lr;
    float grad_norm;
    int skipped;            // 1 if the spike guard skipped the update
    long long skipped_total;
    double ms;
    double tokens_per_second;
    double mfu;             // fraction of peak FLOP/s, or NAN when no peak is known
    double tokens;          // cumulative, this step included
    double flops;           // cumulative
} StepMetrics;

// Keeps the lines of path whose step is <= last_step (step parsed with the scanf format fmt,
// e.g. "s:%d" or "{\"step\":%d"), rewriting the file atomically.
// Keeps a line unless it is a train line (train_marker in it) of a step >= last_step, or any
// other line of a step > last_step.
static void truncate_log_after(const char* path, const char* fmt, const char* train_marker, int last_step) {
    FILE* in = fopen(path, "r");
    if (in == NULL) { return; }
    AtomicFile af;
    atomic_open(&af, path);
    char line[4096];
    while (fgets(line, sizeof(line), in) != NULL) {
        int step;
        if (sscanf(line, fmt, &step) == 1) {
            int is_train = strstr(line, train_marker) != NULL;
            if (step > last_step || (is_train && step >= last_step)) { continue; }
        }
        atomic_write(&af, line, 1, strlen(line));
    }
    fclose(in);
    atomic_commit(&af);
}

// resume_step >= 0: append to the existing logs, after dropping what came after that step.
// stem "main" for a training run; "eval" for --eval, which appends to eval.log / eval.jsonl and
// never touches the run's own logs.
static void logger_init(Logger* lg, const char* output_dir, int resume_step, const char* stem) {
    memset(lg, 0, sizeof(*lg));
    if (output_dir == NULL || output_dir[0] == '\0') { return; }
    char* path = lg->path;
    char* jpath = lg->jpath;
    snprintf(path, sizeof(lg->path), "%s/%s.log", output_dir, stem);
    snprintf(jpath, sizeof(lg->jpath), "%s/%s.jsonl", output_dir, stem);
    int append = resume_step >= 0 || strcmp(stem, "main") != 0;
    if (resume_step >= 0) {
        truncate_log_after(path, "s:%d", " trl:", resume_step);
        truncate_log_after(jpath, "{\"step\":%d", "\"loss\":", resume_step);
    }
    char err[LLMC_ERRLEN];
    if (check_output_path(path, err) != 0 || check_output_path(jpath, err) != 0) { die("-o: %s", err); }
    lg->f = fopen_check(path, append ? "a" : "w");
    lg->json = fopen_check(jpath, append ? "a" : "w");
}

// JSON has no NaN: unknown numbers are written as null
static void json_number(FILE* f, const char* key, double x) {
    if (isfinite(x)) { fprintf(f, ",\"%s\":%.9g", key, x); } else { fprintf(f, ",\"%s\":null", key); }
}

// a JSON string: quotes, backslashes and control characters escaped (bytes >= 0x80 pass: UTF-8)
static void json_string(FILE* f, const char* text) {
    fputc('"', f);
    for (const unsigned char* p = (const unsigned char*)text; *p; p++) {
        if (*p == '"' || *p == '\\') { fputc('\\', f); fputc(*p, f); }
        else if (*p < 0x20) { fprintf(f, "\\u%04x", *p); }
        else { fputc(*p, f); }
    }
    fputc('"', f);
}

static void logger_log_step(Logger* lg, const StepMetrics* m) {
    if (lg->f == NULL) { return; }
    fprintf(lg->f, "s:%d trl:%f lr:%f norm:%f\n", m->step, m->loss, m->lr, m->grad_norm);
    logger_check(lg->f, lg->path);
    fprintf(lg->json, "{\"step\":%d", m->step);
    json_number(lg->json, "loss", m->loss);
    json_number(lg->json, "lr", m->lr);
    json_number(lg->json, "grad_norm", m->grad_norm);
    fprintf(lg->json, ",\"skipped\":%d,\"skipped_total\":%lld", m->skipped, m->skipped_total);
    json_number(lg->json, "ms", m->ms);
    json_number(lg->json, "tokens_per_second", m->tokens_per_second);
    json_number(lg->json, "mfu", m->mfu);
    json_number(lg->json, "tokens", m->tokens);
    json_number(lg->json, "flops", m->flops);
    json_number(lg->json, "pf_days", m->flops / (1e15 * 86400.0));
    fprintf(lg->json, "}\n");
    logger_check(lg->json, lg->jpath);
}

// What a run is, once at its start: the model's sizes and FLOP count, for sweeps' manifests.
// Parameter counts: n_params every stored parameter; n_params_nonembed without wte and wpe
// (Kaplan's non-embedding N); n_params_head without wpe only (wte counts once, as the tied
// output head): the N of flops_per_token = 6 N + 6 L C T.
typedef struct {
    int L, C, NH, V, Vp, maxT, B, T, total_batch, max_steps, world;
    double n_params, n_params_nonembed, n_params_head, flops_per_token;
    const char* init_model;
    const char* peft;        // fine-tuning method: full, lora, bitfit, adapter, prompt
    double n_trainable;      // the parameters the optimizer updates
} RunInfo;

static void logger_log_run(Logger* lg, const RunInfo* r) {
    if (lg->json == NULL) { return; }
    fprintf(lg->json, "{\"step\":0,\"run\":{\"init_model\":");
    json_string(lg->json, r->init_model);
    fprintf(lg->json, ",\"L\":%d,\"C\":%d,\"NH\":%d,\"V\":%d,\"Vp\":%d,\"maxT\":%d,\"B\":%d,\"T\":%d,"
            "\"total_batch\":%d,\"max_steps\":%d,\"processes\":%d", r->L, r->C, r->NH, r->V, r->Vp, r->maxT,
            r->B, r->T, r->total_batch, r->max_steps, r->world);
    json_number(lg->json, "n_params", r->n_params);
    json_number(lg->json, "n_params_nonembed", r->n_params_nonembed);
    json_number(lg->json, "n_params_head", r->n_params_head);
    json_number(lg->json, "flops_per_token", r->flops_per_token);
    json_number(lg->json, "tokens", (double)r->max_steps * r->total_batch);
    json_number(lg->json, "flops", (double)r->max_steps * r->total_batch * r->flops_per_token);
    fprintf(lg->json, ",\"peft\":");
    json_string(lg->json, r->peft != NULL ? r->peft : "full");
    json_number(lg->json, "n_trainable", r->n_trainable);
    fprintf(lg->json, "}}\n");
    logger_check(lg->json, lg->jpath);
}

// kind: "val_loss" (also written to main.log as tel) or "hellaswag" (as eval)
// An evaluation other than the val loss (logger_log_val), e.g. HellaSwag accuracy: main.log's "eval" line
static void logger_log_eval(Logger* lg, int step, const char* kind, float value, double tokens, double flops) {
    if (lg->f == NULL) { return; }
    fprintf(lg->f, "s:%d eval:%f\n", step, value);
    logger_check(lg->f, lg->path);
    fprintf(lg->json, "{\"step\":%d", step);
    json_number(lg->json, kind, value);
    json_number(lg->json, "tokens", tokens);
    json_number(lg->json, "flops", flops);
    fprintf(lg->json, "}\n");
    logger_check(lg->json, lg->jpath);
}

// A multiple-choice task's scores (llmc/train_mc.h), main.jsonl only: {"step", "task", "examples",
// "shots", its metrics (mc2, or acc, acc_norm, acc_bytes, acc_token), "headline" (the metric
// lm-evaluation-harness reports first for it), "chance", "tokens", "flops"}
// (names[m], value[m]) for the metrics with has[m], m < count.
static void logger_log_task(Logger* lg, int step, const char* task, int examples, int shots, const char* const* names,
                            const double* value, const int* has, int count, const char* headline, double chance,
                            double tokens, double flops) {
    if (lg->f == NULL) { return; }
    fprintf(lg->json, "{\"step\":%d,\"task\":", step);
    json_string(lg->json, task);
    fprintf(lg->json, ",\"examples\":%d,\"shots\":%d", examples, shots);
    for (int m = 0; m < count; m++) {
        if (has[m]) { json_number(lg->json, names[m], value[m]); }
    }
    fprintf(lg->json, ",\"headline\":");
    json_string(lg->json, headline);
    json_number(lg->json, "chance", chance);
    json_number(lg->json, "tokens", tokens);
    json_number(lg->json, "flops", flops);
    fprintf(lg->json, "}\n");
    logger_check(lg->json, lg->jpath);
}

// The val loss with its bits per byte (main.log keeps llm.c's "tel" line; bpb < 0: unknown,
// i.e. no tokenizer to count the bytes with, and left out)
static void logger_log_val(Logger* lg, int step, float loss, double bpb, double bytes_per_token, double tokens,
                           double flops) {
    if (lg->f == NULL) { return; }
    fprintf(lg->f, "s:%d tel:%f\n", step, loss);
    logger_check(lg->f, lg->path);
    fprintf(lg->json, "{\"step\":%d", step);
    json_number(lg->json, "val_loss", loss);
    json_number(lg->json, "val_perplexity", exp(loss));
    if (bpb >= 0) {
        json_number(lg->json, "val_bpb", bpb);
        json_number(lg->json, "val_bytes_per_token", bytes_per_token);
    }
    json_number(lg->json, "tokens", tokens);
    json_number(lg->json, "flops", flops);
    fprintf(lg->json, "}\n");
    logger_check(lg->json, lg->jpath);
}

// A line of named numbers for main.jsonl only (main.log keeps llm.c's format), e.g. DPO's rewards.
static void logger_log_fields(Logger* lg, int step, const char* const* names, const double* values, int n) {
    if (lg->f == NULL) { return; }
    fprintf(lg->json, "{\"step\":%d", step);
    for (int k = 0; k < n; k++) { json_number(lg->json, names[k], values[k]); }
    fprintf(lg->json, "}\n");
    logger_check(lg->json, lg->jpath);
}

static void logger_free(Logger* lg) {
    if (lg->f != NULL && fclose(lg->f) != 0) { die("writing the log %s failed: %s", lg->path, strerror(errno)); }
    if (lg->json != NULL && fclose(lg->json) != 0) { die("writing the log %s failed: %s", lg->jpath, strerror(errno)); }
    lg->f = NULL;
    lg->json = NULL;
}

#endif // LLMC_LOGGER_H
