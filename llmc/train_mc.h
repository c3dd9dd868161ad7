// Multiple-choice tasks in the training run (llmc/train_loop.h includes this after its
// ModelOps): which task files a run evaluates (-h's HellaSwag, --tasks), and the batched
// scoring of their choices through ModelOps, so the CPU and the GPU program score alike.
// The file, the sequences and the metrics are llmc/mc_task.h's.
#ifndef LLMC_TRAIN_MC_H
#define LLMC_TRAIN_MC_H

#include "mc_task.h"

#define MC_MAX_TASKS 32
#define MC_TASK_DIR "dev/data/eval"

// Every task make eval-data prepares: what `--tasks all` means.
static const char* const mc_suite_names[] = {
    "hellaswag", "arc_easy", "arc_challenge", "piqa", "winogrande", "truthfulqa_mc1", "truthfulqa_mc2",
    "jcommonsenseqa", "jtruthfulqa_mc1", "jtruthfulqa_mc2",
};
#define MC_SUITE_SIZE ((int)(sizeof(mc_suite_names) / sizeof(mc_suite_names[0])))

// One choice to score: its example (index in the task) and choice, and its sequence's length.
typedef struct {
    int example, choice, len, first;
} McRequest;

// Buffers for scoring, allocated once: B rows of T positions per forward, and a chunk of at
// most cap choices sorted by length, so the rows of a forward have about the same length.
typedef struct {
    int B, T, cap;
    int* inputs;
    int* targets;
    float* losses;
    int* seq;          // T + 1
    McRequest* req;    // cap
    double* ll;        // cap, by request
    int* ntok;         // cap
    int* chunk;        // cap: the chunk's examples
} McScratch;

static void mc_scratch_init(McScratch* s, int B, int T, int max_choices) {
    s->B = B;
    s->T = T;
    s->cap = 8 * B > max_choices ? 8 * B : max_choices;
    s->inputs = (int*)malloc_check((size_t)B * T * sizeof(int), "task inputs");
    s->targets = (int*)malloc_check((size_t)B * T * sizeof(int), "task targets");
    s->losses = float_alloc_check((size_t)B * T, "task losses");
    s->seq = (int*)malloc_check((size_t)(T + 1) * sizeof(int), "task sequence");
    s->req = (McRequest*)malloc_check((size_t)s->cap * sizeof(McRequest), "task requests");
    s->ll = (double*)malloc_check((size_t)s->cap * sizeof(double), "task scores");
    s->ntok = (int*)malloc_check((size_t)s->cap * sizeof(int), "task scores");
    s->chunk = (int*)malloc_check((size_t)s->cap * sizeof(int), "task chunk");
}

static void mc_scratch_free(McScratch* s) {
    free(s->inputs); free(s->targets); free(s->losses); free(s->seq);
    free(s->req); free(s->ll); free(s->ntok); free(s->chunk);
    memset(s, 0, sizeof(*s));
}

// longest first; equal lengths in request order (qsort is not stable)
static int mc_request_cmp(const void* a, const void* b) {
    const McRequest* x = (const McRequest*)a;
    const McRequest* y = (const McRequest*)b;
    if (x->len != y->len) { return y->len - x->len; }
    if (x->example != y->example) { return x->example - y->example; }
    return x->choice - y->choice;
}

// Sums over the examples scored (all processes).
typedef struct {
    double sum[MC_NUM_METRICS];
    double chance;
    int examples;
} McResult;

// Scores the first n examples of task. Process r takes examples r, r + world, ... in chunks;
// the choices of a chunk, longest first, are B to a forward (rows padded to the longest).
// ll_out (optional, task->num_choices) receives each choice's log-likelihood, value_out
// (optional, n x MC_NUM_METRICS) each example's metrics: for the examples this process scored.
// Returns 0, or -1 when a signal interrupted it on any process (res is then incomplete).
static int mc_evaluate(ModelOps* ops, const McTask* task, int n, McScratch* s, Comm* comm, McResult* res,
                       double* ll_out, double* value_out, const char* progress_label) {
    memset(res, 0, sizeof(*res));
    double t0 = now_seconds(), last_print = t0, ws;
    int interrupted = 0, done = 0;
    int i = comm->rank;
    while (i < n && !interrupted) {
        // a chunk: whole examples, at most cap choices
        int nreq = 0, nex = 0;
        while (i < n && nreq + task->examples[i].num_choices <= s->cap) {
            const McExample* ex = &task->examples[i];
            for (int c = 0; c < ex->num_choices; c++) {
                McRequest* q = &s->req[nreq++];
                q->example = i;
                q->choice = c;
                q->len = mc_sequence(task, ex, c, s->seq, s->T + 1, &q->first);
            }
            s->chunk[nex++] = i;
            i += comm->world;
        }
        qsort(s->req, nreq, sizeof(McRequest), mc_request_cmp);
        for (int g = 0; g < nreq; g += s->B) {
            if (stop_signal != 0) { interrupted = 1; break; }  // honour a signal within a long evaluation
            int nb = nreq - g < s->B ? nreq - g : s->B;
            int Tb = s->req[g].len - 1;  // the longest row of the group
            for (int r = 0; r < nb; r++) {
                McRequest* q = &s->req[g + r];
                int first;
                int len = mc_sequence(task, &task->examples[q->example], q->choice, s->seq, s->T + 1, &first);
                int* in = s->inputs + (size_t)r * Tb;
                int* tg = s->targets + (size_t)r * Tb;
                for (int p = 0; p < Tb; p++) {
                    in[p] = p < len - 1 ? s->seq[p] : 0;       // causal attention: the padding after a row's
                    tg[p] = p < len - 1 ? s->seq[p + 1] : 0;   // end changes nothing before it
                }
            }
            ops->forward(ops->self, s->inputs, s->targets, NULL, nb, Tb);
            ops->losses_all(ops->self, s->losses);
            for (int r = 0; r < nb; r++) {
                McRequest* q = &s->req[g + r];
                double sum = 0.0;
                for (int p = q->first; p < q->len - 1; p++) { sum += s->losses[(size_t)r * Tb + p]; }
                s->ll[g + r] = -sum;
                s->ntok[g + r] = q->len - 1 - q->first;
            }
            comm_heartbeat(comm, "evaluating a multiple-choice task");
        }
        if (interrupted) { break; }
        // back in (example, choice) order, then each example's metrics
        double ll[MC_MAX_CHOICES], value[MC_NUM_METRICS];
        int ntok[MC_MAX_CHOICES];
        for (int e = 0; e < nex; e++) {
            const McExample* ex = &task->examples[s->chunk[e]];
            for (int k = 0; k < nreq; k++) {
                if (s->req[k].example == s->chunk[e]) { ll[s->req[k].choice] = s->ll[k]; ntok[s->req[k].choice] = s->ntok[k]; }
            }
            mc_score_example(task, ex, ll, ntok, value);
            for (int m = 0; m < MC_NUM_METRICS; m++) { res->sum[m] += value[m]; }
            res->chance += mc_chance(task, ex);
            res->examples++;
            if (ll_out != NULL) { memcpy(ll_out + ex->first_choice, ll, ex->num_choices * sizeof(double)); }
            if (value_out != NULL) { memcpy(value_out + (size_t)s->chunk[e] * MC_NUM_METRICS, value, sizeof(value)); }
        }
        done += nex;
        // progress from rank 0 every 30 s: a whole task takes minutes on a CPU
        if (comm->rank == 0 && progress_label != NULL && now_seconds() - last_print > 30.0 && i < n) {
            last_print = now_seconds();
            double rate = done / (last_print - t0);
            printf("%s: %d/%d examples, about %.0f s left\n", progress_label, done * comm->world, n,
                   (n / comm->world - done) / rate);
            fflush(stdout);
        }
    }
    ops->take_loss_sum(ops->self, &ws);  // these forwards are not a loss anyone reports
    interrupted = comm_allreduce_max_int(comm, interrupted);
    for (int m = 0; m < MC_NUM_METRICS; m++) { res->sum[m] = comm_allreduce_sum_double(comm, res->sum[m]); }
    res->chance = comm_allreduce_sum_double(comm, res->chance);
    res->examples = (int)comm_allreduce_sum_double(comm, res->examples);
    return interrupted ? -1 : 0;
}

// A task the run evaluates, how much of it and how often.
typedef struct {
    McTask task;
    char path[512];
    int n;               // examples per evaluation
    int every;           // steps between evaluations (0: only the last step, and --eval)
    int llmc_hellaswag;  // -h: also llm.c's "HellaSwag accuracy" (acc_token) line and main.log's eval line
    double seconds;      // the last evaluation took, for the ETA
} McTaskRun;

typedef struct {
    McTaskRun runs[MC_MAX_TASKS];
    int count;
    McScratch scratch;
} McSuite;

// NAME -> dev/data/eval/NAME.bin; a path (with a '/' or ending in .bin) stays as it is
static void mc_task_path(const char* name, char* path, size_t size) {
    size_t l = strlen(name);
    if (strchr(name, '/') != NULL || (l > 4 && strcmp(name + l - 4, ".bin") == 0)) {
        snprintf(path, size, "%s", name);
    } else {
        snprintf(path, size, "%s/%s.bin", MC_TASK_DIR, name);
    }
}

static void mc_suite_add(McSuite* su, const char* path, int examples, int every, int llmc_hellaswag, int V, const char* flag) {
    char err[LLMC_ERRLEN];
    for (int k = 0; k < su->count; k++) {
        if (strcmp(su->runs[k].path, path) == 0) {  // -h's file listed in --tasks too: evaluated once
            su->runs[k].llmc_hellaswag |= llmc_hellaswag;
            if (llmc_hellaswag) { su->runs[k].every = every; }
            return;
        }
    }
    if (su->count == MC_MAX_TASKS) { die("%s: more than %d tasks", flag, MC_MAX_TASKS); }
    if (examples == 0) { die("%s-examples 0: no example to score (-1: all)", flag); }
    McTaskRun* tr = &su->runs[su->count];
    memset(tr, 0, sizeof(*tr));
    if (strlen(path) >= sizeof(tr->path)) { die("%s: path too long: %s", flag, path); }
    snprintf(tr->path, sizeof(tr->path), "%s", path);
    if (mc_task_load(&tr->task, path, V, err) != 0) { die("%s: %s", flag, err); }
    tr->n = examples < 0 || examples > tr->task.num_examples ? tr->task.num_examples : examples;
    tr->every = every;
    tr->llmc_hellaswag = llmc_hellaswag;
    su->count++;
}

// The tasks of a run: -h's HellaSwag file (hellaswag_every > 0) and the comma-separated
// --tasks list (names, paths, or "all"). Dies naming the flag on a bad list or file.
static void mc_suite_open(McSuite* su, int hellaswag_every, const char* hellaswag, int hellaswag_examples,
                          const char* tasks, int tasks_every, int tasks_examples, int V, int B, int T) {
    memset(su, 0, sizeof(*su));
    char path[512];
    if (hellaswag_every > 0) { mc_suite_add(su, hellaswag, hellaswag_examples, hellaswag_every, 1, V, "--hellaswag"); }
    if (tasks != NULL && tasks[0] != '\0') {
        char list[2048];
        if (strlen(tasks) >= sizeof(list)) { die("--tasks: list too long"); }
        snprintf(list, sizeof(list), "%s", tasks);
        int named = 0;
        for (char* save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            named++;
            if (strcmp(tok, "all") == 0) {
                for (int k = 0; k < MC_SUITE_SIZE; k++) {
                    mc_task_path(mc_suite_names[k], path, sizeof(path));
                    mc_suite_add(su, path, tasks_examples, tasks_every, 0, V, "--tasks");
                }
            } else {
                mc_task_path(tok, path, sizeof(path));
                mc_suite_add(su, path, tasks_examples, tasks_every, 0, V, "--tasks");
            }
        }
        if (named == 0) { die("--tasks: no task in '%s' (names as in dev/data/eval/NAME.bin, paths, or all)", tasks); }
    }
    int max_choices = 2;
    for (int k = 0; k < su->count; k++) {
        if (su->runs[k].task.max_choices > max_choices) { max_choices = su->runs[k].task.max_choices; }
    }
    if (su->count > 0) { mc_scratch_init(&su->scratch, B, T, max_choices); }
}

static void mc_suite_free(McSuite* su) {
    for (int k = 0; k < su->count; k++) { mc_task_free(&su->runs[k].task); }
    if (su->count > 0) { mc_scratch_free(&su->scratch); }
    memset(su, 0, sizeof(*su));
}

static int mc_task_due(const McTaskRun* tr, int step, int last, int eval_only) {
    return eval_only || last || (tr->every > 0 && step % tr->every == 0);
}

// Evaluates every task due at step, prints a line each and logs it (label: "step N" or the
// --eval model).
static void mc_suite_evaluate(McSuite* su, ModelOps* ops, Comm* comm, Logger* logger, int step, int last, int eval_only,
                              const char* label, double tokens, double flops) {
    int master = comm->rank == 0;
    for (int k = 0; k < su->count && stop_signal == 0; k++) {
        McTaskRun* tr = &su->runs[k];
        if (!mc_task_due(tr, step, last, eval_only)) { continue; }
        double t0 = now_seconds();
        McResult res;
        int rc = mc_evaluate(ops, &tr->task, tr->n, &su->scratch, comm, &res, NULL, NULL, tr->task.name);
        tr->seconds = now_seconds() - t0;
        if (rc != 0) {
            if (master) { printf("%s: %s evaluation interrupted by a signal\n", label, tr->task.name); }
            continue;
        }
        double value[MC_NUM_METRICS];
        for (int m = 0; m < MC_NUM_METRICS; m++) { value[m] = res.sum[m] / res.examples; }
        if (master) {
            printf("%s: %s (%d examples, %d-shot):", label, tr->task.name, res.examples, tr->task.shots);
            const char* sep = " ";
            for (int m = 0; m < MC_NUM_METRICS; m++) {
                if (!mc_task_has_metric(&tr->task, m)) { continue; }
                printf("%s%s %.4f", sep, mc_metric_names[m], value[m]);
                sep = " | ";
            }
            printf(" | chance %.4f (%.0f s)\n", res.chance / res.examples, tr->seconds);
            if (tr->llmc_hellaswag) { printf("%s: HellaSwag accuracy %.4f (%d examples)\n", label, value[MC_ACC_TOKEN], res.examples); }
        }
        int has[MC_NUM_METRICS];
        for (int m = 0; m < MC_NUM_METRICS; m++) { has[m] = mc_task_has_metric(&tr->task, m); }
        logger_log_task(logger, step, tr->task.name, res.examples, tr->task.shots, mc_metric_names, value, has,
                        MC_NUM_METRICS, mc_metric_names[tr->task.headline], res.chance / res.examples, tokens, flops);
        if (tr->llmc_hellaswag) { logger_log_eval(logger, step, "hellaswag", (float)value[MC_ACC_TOKEN], tokens, flops); }
    }
}

// Seconds the task evaluations after step will take, from the last time each took.
static double mc_suite_eta_seconds(const McSuite* su, int step, int max_steps) {
    double t = 0.0;
    for (int k = 0; k < su->count; k++) {
        const McTaskRun* tr = &su->runs[k];
        // every > 0: evals_due_after counts the last step too; every 0: the last step only
        long due = tr->every > 0 ? evals_due_after(step, max_steps, tr->every) : step < max_steps;
        t += tr->seconds * due;
    }
    return t;
}

#endif // LLMC_TRAIN_MC_H
