// DPO in the training run (llmc/train_loop.h includes this after its ModelOps): the reference
// pass before the first step and the held-out scores (the step's gradient is train_loop.h's
// train_accumulate_dpo). The loss and
// the pair loader are llmc/dpo.h's; everything here goes through ModelOps, so the CPU and the
// GPU program run the same DPO.
#ifndef LLMC_TRAIN_DPO_H
#define LLMC_TRAIN_DPO_H

#include "dpo.h"

// The identity of the reference model (the initial policy): the hash of the trainable floats,
// mixed with the frozen base's hash under PEFT. Stored with the reference log-probs, so a pair
// file scored by one model is never used as the reference of another.
static uint64_t dpo_reference_hash(const ModelOps* ops) {
    uint64_t h = peft_hash_floats(ops->params_host(ops->self), ops->num_trainable);
    if (ops->peft != NULL) { h = hash64_mix(h, ops->base_hash); }
    return h;
}

// Forward passes over every pair of pl's file in order (process r takes batches r, r + world,
// ...): logp (2 * npairs: chosen, rejected of each pair) receives each row's response log-prob
// under the current model, summed over the processes.
static void dpo_score_rows(ModelOps* ops, PairLoader* pl, Comm* comm, float* logp) {
    int P = pairloader_pairs(pl), T = pl->T, n = pl->pf.npairs;
    memset(logp, 0, (size_t)2 * n * sizeof(float));
    float* row_losses = float_alloc_check((size_t)pl->B * T, "pair losses");
    double ws;
    for (int start = comm->rank * P; start < n; start += comm->world * P) {
        int count = n - start < P ? n - start : P;
        for (int j = 0; j < count; j++) { pl->pair_index[j] = start + j; }
        pairloader_fill(pl, pl->pair_index, count);
        ops->forward(ops->self, pl->inputs, pl->targets, pl->mask, 2 * count, T);
        ops->losses_all(ops->self, row_losses);
        for (int row = 0; row < 2 * count; row++) {
            logp[(size_t)2 * start + row] = (float)dpo_row_logp(row_losses + (size_t)row * T, pl->mask + (size_t)row * T, T);
        }
        comm_heartbeat(comm, "scoring preference pairs");
    }
    ops->take_loss_sum(ops->self, &ws);  // these forwards are not a training loss
    comm_allreduce_sum_float(comm, logp, (size_t)2 * n);
    free(row_losses);
}

// Before the first step: the reference log-probs of every pair, from the initial model, computed
// once and stored in the pair file itself (rewritten atomically by process 0), unless the file
// already holds those of this very model. A resumed run must find them there.
static void dpo_reference_pass(ModelOps* ops, PairLoader* pl, const char* path, Comm* comm, int start_step) {
    if (start_step > 0) {
        if (!pl->pf.has_ref) {
            die("%s holds no reference log-probs, but the run resumes at step %d: they come from the initial model, "
                "before the first step (start the run again, or restore the pair file it wrote)", path, start_step);
        }
        return;  // the model is no longer the initial one: its hash cannot be checked, the file's record stands
    }
    uint64_t h = dpo_reference_hash(ops);
    if (pl->pf.has_ref && pl->pf.ref_hash == h) {
        if (comm->rank == 0) { printf("dpo: %s: reference log-probs of this model found in the file\n", path); }
        return;
    }
    double t0 = now_seconds();
    int n = pl->pf.npairs;
    float* logp = float_alloc_check((size_t)2 * n, "reference log-probs");
    dpo_score_rows(ops, pl, comm, logp);
    // a log-prob sum is <= 0; float rounding of a near-certain reply's losses may not be
    for (int i = 0; i < 2 * n; i++) { logp[i] = fminf(logp[i], 0.0f); }
    free(pl->pf.ref_logp);
    pl->pf.ref_logp = logp;
    pl->pf.has_ref = 1;
    pl->pf.ref_hash = h;
    if (comm->rank == 0) {
        pairs_write(path, &pl->pf);
        printf("dpo: %s: reference log-probs of %d pairs computed with the initial model in %.1f s, stored in the file\n",
               path, n, now_seconds() - t0);
    }
    comm_barrier(comm);
}

// Held-out pairs: the DPO loss, reward accuracy and margins of the current model.
static void dpo_evaluate(ModelOps* ops, PairLoader* pl, const DpoConfig* c, Comm* comm, DpoStats* st) {
    int n = pl->pf.npairs;
    float* logp = float_alloc_check((size_t)2 * n, "held-out log-probs");
    dpo_score_rows(ops, pl, comm, logp);
    dpo_stats_reset(st);
    for (int i = 0; i < n; i++) {
        dpo_pair(c, logp[2 * i], logp[2 * i + 1], pl->pf.ref_logp[2 * i], pl->pf.ref_logp[2 * i + 1], st);
    }
    free(logp);
}

// the step's DPO statistics as JSON fields (means over its pairs)
static void dpo_log_stats(Logger* lg, int step, const char* prefix, const DpoStats* st) {
    char names[8][64];
    const char* base[8] = { "loss", "rewards_chosen", "rewards_rejected", "reward_accuracy", "reward_margin",
                            "logps_chosen", "logps_rejected", "logp_accuracy" };
    const double* a = &st->loss;
    double values[8];
    const char* keys[8];
    for (int k = 0; k < 8; k++) {
        snprintf(names[k], sizeof(names[k]), "%s%s", prefix, base[k]);
        keys[k] = names[k];
        values[k] = a[k] / st->pairs;
    }
    logger_log_fields(lg, step, keys, values, 8);
}

#endif // LLMC_TRAIN_DPO_H
