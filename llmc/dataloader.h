// Data loader over token shards (llmc/shard.h), train or val, given as a glob pattern.
//
// A shard of ntok tokens holds (ntok - 1) / T sequences; sequence i is tokens [i*T, i*T + T],
// whose first T tokens are the inputs and last T the targets. An epoch visits every sequence
// of every shard exactly once: with shuffling on, the shard order and the sequence order
// inside each shard are fresh permutations drawn from the loader's own RNG every epoch.
// Batches run on across shard and epoch boundaries.
//
// With several processes, every batch step takes B * num_processes consecutive sequences of
// that one stream and rank r keeps the r-th group of B, so the ranks see disjoint data and
// together see what one process with a batch of B * num_processes would.
// Memory is constant: one open file and one (T+1)-token buffer; nothing is read ahead.
#ifndef LLMC_DATALOADER_H
#define LLMC_DATALOADER_H

#include <glob.h>
#include "utils.h"
#include "rand.h"
#include "shard.h"

typedef struct {
    int B;
    int T;
    int V;              // every token id must be < V
    int process_rank;
    int num_processes;
    int shuffle;
    // the shards
    int num_shards;
    char** shard_paths;
    ShardInfo* shard_info;
    long* shard_num_seqs;
    long total_seqs;    // sequences in one epoch, all shards
    // position in the stream
    Rng rng;
    uint64_t epoch_rng_state; // the RNG as this epoch began: replaying from it restores the orders
    int epoch;
    int* shard_order;   // this epoch's order of shards
    int shard_pos;      // index into shard_order of the current shard
    int* seq_order;     // this shard's order of sequences
    long seq_pos;       // next index into seq_order
    FILE* file;         // the current shard, open
    int file_shard;     // which shard file is open (-1: none)
    // buffers and outputs
    int* seq_buf;       // T + 1 tokens
    int* inputs;        // (B, T)
    int* targets;       // (B, T)
    // per-target loss weights (B, T) from the shards' loss masks (llmc/shard.h): the weight of
    // target t of a row is the mask byte of that target token. has_mask: some shard has a mask
    // (otherwise the weights are all 1 and callers may pass NULL for them instead).
    int has_mask;
    uint8_t* seq_mask;  // T + 1 mask bytes
    float* weights;     // (B, T)
    int* batch_shard;   // (B) for tests and debugging: where each row of the batch came from
    long* batch_seq;    // (B)
} DataLoader;

static void dataloader_free(DataLoader* dl) {
    if (dl->file != NULL) { fclose(dl->file); }
    if (dl->shard_paths != NULL) {
        for (int i = 0; i < dl->num_shards; i++) { free(dl->shard_paths[i]); }
    }
    free(dl->shard_paths);
    free(dl->shard_info);
    free(dl->shard_num_seqs);
    free(dl->shard_order);
    free(dl->seq_order);
    free(dl->seq_buf);
    free(dl->inputs);
    free(dl->targets);
    free(dl->seq_mask);
    free(dl->weights);
    free(dl->batch_shard);
    free(dl->batch_seq);
    memset(dl, 0, sizeof(*dl));
}

// sets up the sequence order of the shard at shard_order[shard_pos]
static void dataloader_enter_shard(DataLoader* dl) {
    int s = dl->shard_order[dl->shard_pos];
    long n = dl->shard_num_seqs[s];
    for (long i = 0; i < n; i++) { dl->seq_order[i] = (int)i; }
    if (dl->shuffle) { rng_shuffle(&dl->rng, dl->seq_order, (int)n); }
    dl->seq_pos = 0;
}

static void dataloader_start_epoch(DataLoader* dl) {
    dl->epoch_rng_state = dl->rng.state;
    for (int i = 0; i < dl->num_shards; i++) { dl->shard_order[i] = i; }
    if (dl->shuffle) { rng_shuffle(&dl->rng, dl->shard_order, dl->num_shards); }
    dl->shard_pos = 0;
    dataloader_enter_shard(dl);
}

// Back to the start of epoch 0, as right after init (the RNG restarts from the seed).
static void dataloader_reset(DataLoader* dl, uint64_t seed) {
    rng_init(&dl->rng, seed);
    dl->epoch = 0;
    dataloader_start_epoch(dl);
}

static int dataloader_init(DataLoader* dl, const char* pattern, int B, int T, int V,
                           int process_rank, int num_processes, int shuffle, uint64_t seed, char* err) {
    memset(dl, 0, sizeof(*dl));
    dl->B = B;
    dl->T = T;
    dl->V = V;
    dl->process_rank = process_rank;
    dl->num_processes = num_processes;
    dl->shuffle = shuffle;
    dl->file_shard = -1;
    if (B <= 0 || T <= 0 || num_processes <= 0 || process_rank < 0 || process_rank >= num_processes) {
        return set_err(err, "data loader: bad B=%d T=%d rank=%d/%d", B, T, process_rank, num_processes);
    }
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc != 0 || g.gl_pathc == 0) {
        if (rc == 0) { globfree(&g); }
        return set_err(err, "no files match the data pattern '%s'", pattern);
    }
    dl->num_shards = (int)g.gl_pathc;
    dl->shard_paths = (char**)calloc_check(dl->num_shards, sizeof(char*), "shard paths");
    dl->shard_info = (ShardInfo*)calloc_check(dl->num_shards, sizeof(ShardInfo), "shard info");
    dl->shard_num_seqs = (long*)calloc_check(dl->num_shards, sizeof(long), "shard sizes");
    long max_seqs = 0;
    for (int i = 0; i < dl->num_shards; i++) {
        dl->shard_paths[i] = strdup(g.gl_pathv[i]);
        if (dl->shard_paths[i] == NULL) { die("out of memory"); }
    }
    globfree(&g);
    for (int i = 0; i < dl->num_shards; i++) {
        const char* path = dl->shard_paths[i];
        FILE* f = fopen_regular(path, err);
        if (f == NULL) { dataloader_free(dl); return -1; }
        rc = shard_read_header(f, path, &dl->shard_info[i], err);
        if (rc == 0) { rc = shard_validate_tokens(f, path, &dl->shard_info[i], V, err); }
        fclose(f);
        if (rc != 0) { dataloader_free(dl); return -1; }
        long n = (dl->shard_info[i].ntok - 1) / T;
        if (n <= 0) {
            set_err(err, "%s: shard has %ld tokens, too few for one sequence of T=%d (+1)", path, dl->shard_info[i].ntok, T);
            dataloader_free(dl);
            return -1;
        }
        if (n > INT32_MAX) { set_err(err, "%s: too many sequences in one shard", path); dataloader_free(dl); return -1; }
        dl->shard_num_seqs[i] = n;
        dl->total_seqs += n;
        dl->has_mask |= dl->shard_info[i].has_mask;
        if (n > max_seqs) { max_seqs = n; }
    }
    if (dl->total_seqs < (long)B * num_processes) {
        set_err(err, "data '%s' holds %ld sequences of T=%d, fewer than one batch of B=%d x %d processes",
                pattern, dl->total_seqs, T, B, num_processes);
        dataloader_free(dl);
        return -1;
    }
    dl->shard_order = (int*)calloc_check(dl->num_shards, sizeof(int), "shard order");
    dl->seq_order = (int*)calloc_check(max_seqs, sizeof(int), "sequence order");
    dl->seq_buf = (int*)calloc_check(T + 1, sizeof(int), "sequence buffer");
    dl->inputs = (int*)calloc_check((size_t)B * T, sizeof(int), "inputs");
    dl->targets = (int*)calloc_check((size_t)B * T, sizeof(int), "targets");
    dl->seq_mask = (uint8_t*)calloc_check(T + 1, 1, "sequence mask");
    dl->weights = (float*)calloc_check((size_t)B * T, sizeof(float), "loss weights");
    dl->batch_shard = (int*)calloc_check(B, sizeof(int), "batch shards");
    dl->batch_seq = (long*)calloc_check(B, sizeof(long), "batch sequences");
    dataloader_reset(dl, seed);
    return 0;
}

// the next sequence of the stream: which shard and which sequence in it
static void dataloader_advance(DataLoader* dl, int* shard, long* seq) {
    int s = dl->shard_order[dl->shard_pos];
    if (dl->seq_pos >= dl->shard_num_seqs[s]) {
        dl->shard_pos++;
        if (dl->shard_pos >= dl->num_shards) {
            dl->epoch++;
            dataloader_start_epoch(dl);
        } else {
            dataloader_enter_shard(dl);
        }
        s = dl->shard_order[dl->shard_pos];
    }
    *shard = s;
    *seq = dl->seq_order[dl->seq_pos];
    dl->seq_pos++;
}

// Puts the loader where a saved one stood (epoch, epoch_rng_state, shard_pos, seq_pos): the
// shuffles of this epoch are drawn again from the saved RNG state, so the orders come back
// exactly. 0, or -1 if the position does not fit these shards (other data than before).
static int dataloader_restore(DataLoader* dl, int epoch, uint64_t epoch_rng_state, int shard_pos,
                              long seq_pos, char* err) {
    if (epoch < 0 || shard_pos < 0 || shard_pos >= dl->num_shards || seq_pos < 0) {
        return set_err(err, "data loader position (epoch %d, shard %d, sequence %ld) is invalid for %d shards",
                       epoch, shard_pos, seq_pos, dl->num_shards);
    }
    dl->rng.state = epoch_rng_state;
    dl->epoch = epoch;
    dataloader_start_epoch(dl);
    for (int i = 1; i <= shard_pos; i++) {
        dl->shard_pos = i;
        dataloader_enter_shard(dl);
    }
    if (seq_pos > dl->shard_num_seqs[dl->shard_order[shard_pos]]) {
        return set_err(err, "data loader position: sequence %ld is past the end of shard %d (%ld sequences)",
                       seq_pos, shard_pos, dl->shard_num_seqs[dl->shard_order[shard_pos]]);
    }
    dl->seq_pos = seq_pos;
    return 0;
}

// Fills inputs and targets with the next batch. 0, or -1 with err (bad token id, I/O error).
static int dataloader_next(DataLoader* dl, char* err) {
    int B = dl->B;
    int T = dl->T;
    for (int r = 0; r < dl->num_processes; r++) {
        for (int b = 0; b < B; b++) {
            int shard;
            long seq;
            dataloader_advance(dl, &shard, &seq);
            if (r != dl->process_rank) { continue; }
            if (dl->file_shard != shard) {
                if (dl->file != NULL) { fclose(dl->file); }
                dl->file = fopen(dl->shard_paths[shard], "rb");
                if (dl->file == NULL) {
                    dl->file_shard = -1;
                    return set_err(err, "%s: cannot open token shard: %s", dl->shard_paths[shard], strerror(errno));
                }
                dl->file_shard = shard;
            }
            if (shard_read_tokens(dl->file, dl->shard_paths[shard], &dl->shard_info[shard], seq * T, T + 1,
                                  dl->seq_buf, dl->seq_mask, dl->V, err) != 0) {
                return -1;
            }
            memcpy(dl->inputs + (size_t)b * T, dl->seq_buf, T * sizeof(int));
            memcpy(dl->targets + (size_t)b * T, dl->seq_buf + 1, T * sizeof(int));
            for (int t = 0; t < T; t++) { dl->weights[(size_t)b * T + t] = dl->seq_mask[t + 1] ? 1.0f : 0.0f; }
            dl->batch_shard[b] = shard;
            dl->batch_seq[b] = seq;
        }
    }
    return 0;
}

#endif // LLMC_DATALOADER_H
