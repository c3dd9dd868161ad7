// Training state for exact resume, and the checkpoint directory.
//
// A checkpoint at step S in the output directory is three kinds of files:
//   model_SSSSSSSS.bin           the model (llmc/checkpoint.h), loadable on its own
//   state_SSSSSSSS_RRRRR.bin     per rank: AdamW moments (this rank's share), step, RNG states,
//                                data-loader position and shuffle state, spike-guard window
//   DONE_SSSSSSSS                written last: only a checkpoint with it is complete
// Each file is written to a temporary name, fsynced and renamed (then the directory fsynced),
// so a crash at any moment leaves the previous complete checkpoint intact. Old checkpoints are
// deleted only after the new DONE marker is durable, DONE first so a half-deleted checkpoint
// never looks complete.
//
// State file: the TrainStateHeader struct below (fixed-width fields), then shard_count floats of
// m and shard_count floats of v, the moments of parameters [shard_offset, shard_offset+count).
#ifndef LLMC_TRAIN_STATE_H
#define LLMC_TRAIN_STATE_H

#include <dirent.h>
#include "utils.h"
#include "guard.h"
#include "checkpoint.h"

#define STATE_MAGIC 20241126
#define STATE_VERSION 1

typedef struct {
    int64_t magic;
    int64_t version;
    int64_t step;                 // optimizer steps completed
    int64_t num_parameters;
    int64_t shard_offset;         // the moments in this file: parameters [offset, offset+count)
    int64_t shard_count;
    int64_t process_rank;
    int64_t num_processes;
    int64_t B, T, total_batch_size;
    int64_t loader_epoch;
    int64_t loader_shard_pos;
    int64_t loader_seq_pos;
    uint64_t loader_epoch_rng;
    uint64_t sample_rng;
    int64_t skipped_steps;        // updates skipped by the spike guard so far
    int64_t guard_count, guard_head, guard_bad_in_row, guard_window;
    float guard_losses[GUARD_MAX_WINDOW];
    float guard_norms[GUARD_MAX_WINDOW];
} TrainStateHeader;

static void checkpoint_paths(const char* dir, int step, int rank, char* model, char* state, char* done, size_t n) {
    if (model) { snprintf(model, n, "%s/model_%08d.bin", dir, step); }
    if (state) { snprintf(state, n, "%s/state_%08d_%05d.bin", dir, step, rank); }
    if (done) { snprintf(done, n, "%s/DONE_%08d", dir, step); }
}

static void train_state_write(const char* path, const TrainStateHeader* h, const float* m, const float* v) {
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, h, sizeof(*h), 1);
    atomic_write(&af, m, sizeof(float), h->shard_count);
    atomic_write(&af, v, sizeof(float), h->shard_count);
    atomic_commit(&af);
}

// Reads a state file, checking it against what this run expects (expected->num_parameters,
// process_rank, num_processes, B, T, total_batch_size). m and v must hold
// expected->shard_count floats. 0, or -1 with err naming the file and the mismatch.
static int train_state_read(const char* path, const TrainStateHeader* expected, TrainStateHeader* h,
                            float* m, float* v, char* err) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) { return set_err(err, "%s: cannot open training state: %s", path, strerror(errno)); }
    long fsize = file_size_of(f);
    if (fread_exact(h, sizeof(*h), 1, f, path, err) != 0) { fclose(f); return -1; }
    int rc = 0;
    if (h->magic != STATE_MAGIC) {
        rc = set_err(err, "%s: bad magic %lld in training state header (expected %d)", path, (long long)h->magic, STATE_MAGIC);
    } else if (h->version != STATE_VERSION) {
        rc = set_err(err, "%s: unsupported training state version %lld (supported: %d)", path, (long long)h->version, STATE_VERSION);
    } else if (h->num_parameters != expected->num_parameters) {
        rc = set_err(err, "%s: state is for a model of %lld parameters, this model has %lld", path,
                     (long long)h->num_parameters, (long long)expected->num_parameters);
    } else if (h->process_rank != expected->process_rank || h->num_processes != expected->num_processes) {
        rc = set_err(err, "%s: state is of rank %lld of %lld processes, this is rank %lld of %lld", path,
                     (long long)h->process_rank, (long long)h->num_processes,
                     (long long)expected->process_rank, (long long)expected->num_processes);
    } else if (h->B != expected->B || h->T != expected->T || h->total_batch_size != expected->total_batch_size) {
        rc = set_err(err, "%s: state was written with -b %lld -t %lld -d %lld; resume needs the same batch flags (now -b %lld -t %lld -d %lld)",
                     path, (long long)h->B, (long long)h->T, (long long)h->total_batch_size,
                     (long long)expected->B, (long long)expected->T, (long long)expected->total_batch_size);
    } else if (h->shard_offset != expected->shard_offset || h->shard_count != expected->shard_count) {
        rc = set_err(err, "%s: state holds moments [%lld, +%lld), expected [%lld, +%lld)", path,
                     (long long)h->shard_offset, (long long)h->shard_count,
                     (long long)expected->shard_offset, (long long)expected->shard_count);
    } else if (h->step < 0 || h->skipped_steps < 0 || h->skipped_steps > h->step || h->loader_epoch < 0 ||
               h->loader_shard_pos < 0 || h->loader_seq_pos < 0 || h->guard_window < 2 ||
               h->guard_window > GUARD_MAX_WINDOW || h->guard_count < 0 || h->guard_count > h->guard_window ||
               h->guard_head < 0 || h->guard_head >= h->guard_window || h->guard_bad_in_row < 0) {
        rc = set_err(err, "%s: training state holds out-of-range values (step %lld)", path, (long long)h->step);
    } else if (fsize != (long)(sizeof(*h) + 2 * h->shard_count * sizeof(float))) {
        rc = set_err(err, "%s: file is %s: %ld bytes, expected %ld", path,
                     fsize < (long)(sizeof(*h) + 2 * h->shard_count * sizeof(float)) ? "truncated" : "too long",
                     fsize, (long)(sizeof(*h) + 2 * h->shard_count * sizeof(float)));
    }
    if (rc == 0 && fread_exact(m, sizeof(float), h->shard_count, f, path, err) != 0) { rc = -1; }
    if (rc == 0 && fread_exact(v, sizeof(float), h->shard_count, f, path, err) != 0) { rc = -1; }
    fclose(f);
    return rc;
}

static void write_done_marker(const char* path) {
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, "done\n", 1, 5);
    atomic_commit(&af);
}

// Steps of the complete checkpoints (those with a DONE marker) in dir, ascending, into steps
// (capacity max). Returns how many (possibly more than max: only max are stored).
static int list_checkpoints(const char* dir, int* steps, int max) {
    DIR* d = opendir(dir);
    if (d == NULL) { return 0; }
    int n = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        int step;
        char tail;
        if (sscanf(e->d_name, "DONE_%8d%c", &step, &tail) == 1 && strlen(e->d_name) == 13) {
            if (n < max) { steps[n] = step; }
            n++;
        }
    }
    closedir(d);
    int stored = n < max ? n : max;
    for (int i = 1; i < stored; i++) {  // insertion sort: a handful of entries
        int s = steps[i], j = i - 1;
        while (j >= 0 && steps[j] > s) { steps[j + 1] = steps[j]; j--; }
        steps[j + 1] = s;
    }
    return n;
}

// the latest complete checkpoint's step, or -1
static int latest_checkpoint(const char* dir) {
    int steps[4096];
    int n = list_checkpoints(dir, steps, 4096);
    if (n > 4096) { die("%s holds over 4096 checkpoints; clean it up or use -nk", dir); }
    return n > 0 ? steps[n - 1] : -1;
}

// Deletes complete checkpoints other than the newest keep_last ones and those whose step is a
// multiple of keep_every (0: none kept that way). keep_last <= 0 keeps everything.
static void prune_checkpoints(const char* dir, int keep_last, int keep_every, int num_processes) {
    if (keep_last <= 0) { return; }
    int steps[4096];
    int n = list_checkpoints(dir, steps, 4096);
    if (n > 4096) { n = 4096; }
    char model[1100], state[1100], done[1100];
    int deleted = 0;
    for (int i = 0; i < n - keep_last; i++) {
        int s = steps[i];
        if (keep_every > 0 && s % keep_every == 0) { continue; }
        checkpoint_paths(dir, s, 0, model, NULL, done, sizeof(done));
        if (unlink(done) != 0) { die("cannot delete %s: %s", done, strerror(errno)); }
        fsync_dir_of(done);
        unlink(model);
        for (int r = 0; r < num_processes; r++) {
            checkpoint_paths(dir, s, r, NULL, state, NULL, sizeof(state));
            unlink(state);
        }
        deleted++;
    }
    if (deleted > 0) { fsync_dir_of(model); }
}

// Removes "*.tmp.*" files a killed writer left behind in dir (see AtomicFile).
static void remove_stale_temp_files(const char* dir) {
    DIR* d = opendir(dir);
    if (d == NULL) { return; }
    struct dirent* e;
    char path[1100];
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".tmp.") != NULL) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (unlink(path) == 0) { printf("removed %s, left by an interrupted write\n", path); }
        }
    }
    closedir(d);
}

// Writes a complete checkpoint at step: the model (rank 0), this rank's state, and (rank 0,
// last) the DONE marker; then prunes old checkpoints. params is the fp32 model; m and v hold
// this rank's share of the moments as described by h.
static void checkpoint_save(const char* dir, int step, const GPT2Config* cfg, const float* params,
                            const TrainStateHeader* h, const float* m, const float* v,
                            int keep_last, int keep_every) {
    char model[1100], state[1100], done[1100];
    checkpoint_paths(dir, step, (int)h->process_rank, model, state, done, sizeof(model));
    if (h->process_rank == 0) { checkpoint_write(model, cfg, params); }
    train_state_write(state, h, m, v);
    if (h->process_rank == 0) {
        write_done_marker(done);
        prune_checkpoints(dir, keep_last, keep_every, (int)h->num_processes);
    }
}

#endif // LLMC_TRAIN_STATE_H
