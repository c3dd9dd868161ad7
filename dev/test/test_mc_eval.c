/*
Multiple-choice scoring (llmc/train_mc.h, through the CPU model's ModelOps as train_gpt runs
it) against dev/eval/mc_reference.py's float64 PyTorch scores on the same checkpoint:
  - every choice's log-likelihood: relative error 1e-5 (fp32 forward against float64;
    summed over the continuation's tokens, each loss is within a few 1e-7 relative);
  - every example's metrics (acc, acc_norm, acc_bytes, acc_token; MC2): equal, except where
    the reference marks a near tie (fp32 may pick either); MC2 within 1e-5 absolute;
  - batched (B rows per forward, rows of different lengths padded) against one choice per
    forward: the same log-likelihoods (relative 1e-6; padding after a row changes nothing
    before it);
  - the choices of every example permuted (a fresh seed each run): every example's metrics
    the same (the true answer listed first, as TruthfulQA does, must not matter).
usage: test_mc_eval MODEL TASK N T B REFERENCE_OUT
*/
#define TESTING
#include "train_gpt.c"
#include "dev/test/testing.h"

static ModelOps cpu_ops(GPT2* model) {
    ModelOps ops;
    memset(&ops, 0, sizeof(ops));
    ops.self = model;
    ops.config = model->config;
    ops.forward = cpu_forward;
    ops.take_loss_sum = cpu_take_loss_sum;
    ops.losses_all = cpu_losses_all;
    return ops;
}

// permutes the choices of every example (contexts stay; each choice keeps its context index)
static void permute_choices(McTask* t, Rng* rng) {
    for (int i = 0; i < t->num_examples; i++) {
        McChoice* c = &t->choices[t->examples[i].first_choice];
        for (int j = t->examples[i].num_choices - 1; j > 0; j--) {
            int k = (int)(rng_u32(rng) % (uint32_t)(j + 1));
            McChoice tmp = c[j]; c[j] = c[k]; c[k] = tmp;
        }
    }
}

int main(int argc, char** argv) {
    if (argc != 7) { die("usage: test_mc_eval MODEL TASK N T B REFERENCE_OUT"); }
    int n = atoi(argv[3]), T = atoi(argv[4]), B = atoi(argv[5]);
    GPT2 model;
    gpt2_build_from_checkpoint(&model, argv[1]);
    char err[LLMC_ERRLEN];
    McTask task;
    if (mc_task_load(&task, argv[2], model.config.vocab_size, err) != 0) { die("%s", err); }
    if (n < 1 || n > task.num_examples) { die("N=%d outside 1..%d", n, task.num_examples); }
    int nch = task.examples[n - 1].first_choice + task.examples[n - 1].num_choices;
    size_t nref = (size_t)n * MC_NUM_METRICS * 2 + nch;
    double* ref = (double*)malloc_check(nref * sizeof(double), "reference");
    FILE* f = fopen_check(argv[6], "rb");
    if (fread_exact(ref, sizeof(double), nref, f, argv[6], err) != 0) { die("%s", err); }
    fclose(f);
    const double* ref_value = ref;
    const double* ref_tie = ref + (size_t)n * MC_NUM_METRICS;
    const double* ref_ll = ref + (size_t)n * MC_NUM_METRICS * 2;

    gpt2_allocate(&model, B, T, 0, model.num_parameters);
    ModelOps ops = cpu_ops(&model);
    Comm comm;
    memset(&comm, 0, sizeof(comm));
    comm.world = 1;
    pthread_mutex_init(&comm.lock, NULL);
    McScratch batched, single;
    mc_scratch_init(&batched, B, T, task.max_choices);
    mc_scratch_init(&single, 1, T, task.max_choices);
    double* ll = (double*)calloc_check(task.num_choices, sizeof(double), "ll");
    double* ll1 = (double*)calloc_check(task.num_choices, sizeof(double), "ll");
    double* value = (double*)calloc_check((size_t)n * MC_NUM_METRICS, sizeof(double), "values");
    double* value_p = (double*)calloc_check((size_t)n * MC_NUM_METRICS, sizeof(double), "values");
    McResult res;
    if (mc_evaluate(&ops, &task, n, &batched, &comm, &res, ll, value, NULL) != 0) { die("interrupted"); }
    if (mc_evaluate(&ops, &task, n, &single, &comm, &res, ll1, NULL, NULL) != 0) { die("interrupted"); }

    double worst = 0.0, worst_b = 0.0, worst_mc2 = 0.0;
    for (int c = 0; c < nch; c++) {
        double e = fabs(ll[c] - ref_ll[c]) / fabs(ref_ll[c]);
        if (!(e <= worst)) { worst = e; }
        e = fabs(ll[c] - ll1[c]) / fabs(ll1[c]);
        if (!(e <= worst_b)) { worst_b = e; }
    }
    int differ = 0, ties = 0;
    for (int i = 0; i < n; i++) {
        for (int m = 0; m < MC_NUM_METRICS; m++) {
            if (!mc_task_has_metric(&task, m)) { continue; }
            size_t k = (size_t)i * MC_NUM_METRICS + m;
            if (m == MC_MC2) {
                double e = fabs(value[k] - ref_value[k]);
                if (!(e <= worst_mc2)) { worst_mc2 = e; }
            } else if (value[k] != ref_value[k]) {
                if (ref_tie[k] != 0) { ties++; } else { differ++; }
            }
        }
    }
    check(worst <= 1e-5, "choice log-likelihoods vs PyTorch", "%s: %d examples, %d choices (T=%d), worst relative error %.2e, "
          "tolerance 1e-5", task.name, n, nch, T, worst);
    check(differ == 0 && worst_mc2 <= 1e-5, "per-example metrics vs PyTorch", "%s: %d metric values differ outside near ties "
          "(%d inside), MC2 worst absolute error %.2e", task.name, differ, ties, worst_mc2);
    check(worst_b <= 1e-6, "batched scoring", "%s: B=%d rows per forward vs 1: worst relative error %.2e", task.name, B, worst_b);

    // the choices permuted: each example's metrics unchanged
    Rng rng;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    rng_init(&rng, seed);
    permute_choices(&task, &rng);
    if (mc_evaluate(&ops, &task, n, &batched, &comm, &res, NULL, value_p, NULL) != 0) { die("interrupted"); }
    int changed = 0;
    double worst_p = 0.0;
    for (size_t k = 0; k < (size_t)n * MC_NUM_METRICS; k++) {
        if (k % MC_NUM_METRICS == MC_MC2) {
            double e = fabs(value_p[k] - value[k]);
            if (!(e <= worst_p)) { worst_p = e; }
        } else if (value_p[k] != value[k] && ref_tie[k] == 0) {
            changed++;
        }
    }
    check(changed == 0 && worst_p <= 1e-9, "permuted choices", "%s: seed %llu: %d metric values changed, MC2 by at most %.2e",
          task.name, (unsigned long long)seed, changed, worst_p);

    mc_scratch_free(&batched);
    mc_scratch_free(&single);
    free(ll); free(ll1); free(value); free(value_p); free(ref);
    mc_task_free(&task);
    gpt2_free(&model);
    return test_failures == 0 ? 0 : 1;
}
