// Processes for data-parallel training: who am I, how many are we, and the collectives the
// CPU trainer needs, over MPI.
//
// Built with -DUSE_MPI (the Makefile does so when it finds mpicc), a program started by
// mpirun or srun joins the MPI job; started plainly, it is one process and never touches MPI.
// Built without MPI, every collective is the identity on one process.
//
// ZeRO-1 splits the N parameters into world contiguous shards (comm_shard): rank r owns the
// AdamW moments of its shard, receives the sum of the gradients of its shard
// (comm_reduce_scatter), updates those parameters, and the full parameters are gathered back
// (comm_allgather). The shard bounds depend only on N and the world size.
//
// The watchdog: a thread that ends the process with a message when the training loop has not
// reported progress (comm_heartbeat) for timeout seconds, so a dead or hung peer, which leaves
// the others blocked inside a collective forever, turns into a clear failure; mpirun then stops
// the remaining ranks.
#ifndef LLMC_COMM_H
#define LLMC_COMM_H

#include <pthread.h>
#include <time.h>
#include "utils.h"
#ifdef USE_MPI
#include <mpi.h>
#endif

// Collectives for processes that share no MPI job (GPU runs with -pm fs|tcp): the GPU program
// provides them over NCCL (llmc/comm_nccl.h). Unused when MPI or a single process serves.
typedef struct {
    void* ctx;
    double (*allreduce_sum_double)(void* ctx, double x);
    int (*allreduce_max_int)(void* ctx, int x);
    void (*broadcast_int)(void* ctx, int* x);
} CommBackend;

typedef struct {
    int rank;
    int world;
    int using_mpi;          // 1 when MPI_Init was called
    int has_backend;        // 1 when backend serves the host-side collectives
    CommBackend backend;
    // watchdog
    pthread_t watchdog;
    int watchdog_running;
    double timeout_seconds;
    pthread_mutex_t lock;
    double last_heartbeat;  // monotonic seconds, under lock
    char activity[128];     // what the loop was doing, for the message
    int stop_watchdog;
} Comm;

static double comm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#ifdef USE_MPI
static void mpi_check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        fprintf(stderr, "error: MPI %s failed: %s\n", what, msg);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}
#endif

// was this process started by an MPI launcher (mpirun, srun with PMI/PMIx)?
static int launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL ||
           getenv("PMIX_RANK") != NULL || getenv("MPI_LOCALNRANKS") != NULL;
}

static void comm_init(Comm* c, int* argc, char*** argv) {
    memset(c, 0, sizeof(*c));
    c->rank = 0;
    c->world = 1;
#ifdef USE_MPI
    if (launched_by_mpi()) {
        mpi_check(MPI_Init(argc, argv), "MPI_Init");
        // errors come back as return codes, checked by mpi_check, instead of aborting silently
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &c->rank), "MPI_Comm_rank");
        mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &c->world), "MPI_Comm_size");
        c->using_mpi = 1;
    }
#else
    (void)argc; (void)argv;
    if (launched_by_mpi()) {
        const char* n = getenv("OMPI_COMM_WORLD_SIZE");
        if (n != NULL && atoi(n) > 1) {
            die("started as one of %s MPI processes, but this binary was built without MPI (install libopenmpi-dev and rebuild)", n);
        }
    }
#endif
    pthread_mutex_init(&c->lock, NULL);
}

// This process's index among the processes of its node (picks its GPU): from the launcher's
// environment when it says, else rank modulo the GPUs per node.
static int comm_local_rank(const Comm* c, int per_node) {
    const char* names[] = { "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "LOCAL_RANK" };
    for (int i = 0; i < 4; i++) {
        const char* v = getenv(names[i]);
        if (v != NULL) { return atoi(v); }
    }
    return per_node > 0 ? c->rank % per_node : 0;
}

// [offset, offset+count) of the parameters owned by rank under ZeRO-1. Shards are multiples of
// 64 floats (cache lines) except the last.
static void comm_shard(size_t n, int world, int rank, size_t* offset, size_t* count) {
    size_t per = (n + world - 1) / world;
    per = (per + 63) / 64 * 64;
    size_t lo = per * rank;
    size_t hi = lo + per;
    if (lo > n) { lo = n; }
    if (hi > n) { hi = n; }
    *offset = lo;
    *count = hi - lo;
}

// in-place sum over ranks
static void comm_allreduce_sum_float(Comm* c, float* x, size_t n) {
    if (c->world == 1) { return; }
#ifdef USE_MPI
    for (size_t done = 0; done < n; done += (size_t)1 << 30) {  // MPI counts are int
        size_t k = n - done < ((size_t)1 << 30) ? n - done : ((size_t)1 << 30);
        mpi_check(MPI_Allreduce(MPI_IN_PLACE, x + done, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    }
#endif
}

// rank and world from -pr / -pn, for processes started without an MPI launcher
static void comm_set_processes(Comm* c, int rank, int world) {
    if (c->using_mpi) {
        if (world != c->world || rank != c->rank) {
            die("-pn %d -pr %d: the MPI launcher started rank %d of %d processes instead", world, rank, c->rank, c->world);
        }
        return;
    }
    if (world < 1 || rank < 0 || rank >= world) { die("-pn %d -pr %d: rank %d of %d processes is not valid", world, rank, rank, world); }
    c->rank = rank;
    c->world = world;
}

static double comm_allreduce_sum_double(Comm* c, double x) {
    if (c->world > 1 && c->has_backend) { return c->backend.allreduce_sum_double(c->backend.ctx, x); }
#ifdef USE_MPI
    if (c->world > 1) { mpi_check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce"); }
#endif
    return x;
}

static int comm_allreduce_max_int(Comm* c, int x) {
    if (c->world > 1 && c->has_backend) { return c->backend.allreduce_max_int(c->backend.ctx, x); }
#ifdef USE_MPI
    if (c->world > 1) { mpi_check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce"); }
#endif
    return x;
}

// ZeRO-1: shard_out (this rank's comm_shard count floats) = sum over ranks of x[shard]
static void comm_reduce_scatter(Comm* c, const float* x, float* shard_out, size_t n) {
    size_t off, cnt;
    comm_shard(n, c->world, c->rank, &off, &cnt);
    if (c->world == 1) { memcpy(shard_out, x + off, cnt * sizeof(float)); return; }
#ifdef USE_MPI
    if (n > (size_t)INT32_MAX) { die("ZeRO-1 over MPI supports up to 2^31 parameters"); }
    int counts[c->world];
    for (int r = 0; r < c->world; r++) {
        size_t o, k;
        comm_shard(n, c->world, r, &o, &k);
        counts[r] = (int)k;
    }
    mpi_check(MPI_Reduce_scatter(x, shard_out, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Reduce_scatter");
#endif
}

// ZeRO-1: every rank's shard of x (in place, at its offset) to every rank
static void comm_allgather(Comm* c, float* x, size_t n) {
    if (c->world == 1) { return; }
#ifdef USE_MPI
    if (n > (size_t)INT32_MAX) { die("ZeRO-1 over MPI supports up to 2^31 parameters"); }
    int counts[c->world], displs[c->world];
    for (int r = 0; r < c->world; r++) {
        size_t o, k;
        comm_shard(n, c->world, r, &o, &k);
        counts[r] = (int)k;
        displs[r] = (int)o;
    }
    mpi_check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts, displs, MPI_FLOAT, MPI_COMM_WORLD),
              "MPI_Allgatherv");
#endif
}

static void comm_broadcast_int(Comm* c, int* x) {
    if (c->world > 1 && c->has_backend) { c->backend.broadcast_int(c->backend.ctx, x); return; }
#ifdef USE_MPI
    if (c->world > 1) { mpi_check(MPI_Bcast(x, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast"); }
#else
    (void)c; (void)x;
#endif
}

static void comm_barrier(Comm* c) {
    if (c->world > 1 && c->has_backend) { c->backend.allreduce_max_int(c->backend.ctx, 0); return; }
#ifdef USE_MPI
    if (c->world > 1) { mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
#else
    (void)c;
#endif
}

// ----------------------------------------------------------------------------
// watchdog

static void comm_heartbeat(Comm* c, const char* activity) {
    pthread_mutex_lock(&c->lock);
    c->last_heartbeat = comm_now();
    snprintf(c->activity, sizeof(c->activity), "%s", activity);
    pthread_mutex_unlock(&c->lock);
}

static void* comm_watchdog_main(void* arg) {
    Comm* c = (Comm*)arg;
    for (;;) {
        usleep(200 * 1000);
        pthread_mutex_lock(&c->lock);
        int stop = c->stop_watchdog;
        double idle = comm_now() - c->last_heartbeat;
        char activity[128];
        memcpy(activity, c->activity, sizeof(activity));
        pthread_mutex_unlock(&c->lock);
        if (stop) { return NULL; }
        if (idle > c->timeout_seconds) {
            fprintf(stderr, "error: rank %d of %d: no progress for %.0f s while %s; a peer process has "
                    "probably died or hung. Stopping (--timeout %.0f).\n",
                    c->rank, c->world, idle, activity, c->timeout_seconds);
            fflush(stderr);
            _exit(3);  // the launcher sees the exit and stops the other ranks
        }
    }
}

// timeout_seconds <= 0 leaves the watchdog off; it is only started with several processes
static void comm_start_watchdog(Comm* c, double timeout_seconds) {
    if (c->world == 1 || timeout_seconds <= 0) { return; }
    c->timeout_seconds = timeout_seconds;
    comm_heartbeat(c, "starting");
    if (pthread_create(&c->watchdog, NULL, comm_watchdog_main, c) != 0) { die("cannot start the watchdog thread"); }
    c->watchdog_running = 1;
}

static void comm_finalize(Comm* c) {
    if (c->watchdog_running) {
        pthread_mutex_lock(&c->lock);
        c->stop_watchdog = 1;
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->watchdog, NULL);
        c->watchdog_running = 0;
    }
#ifdef USE_MPI
    if (c->using_mpi) { MPI_Finalize(); }
#endif
    pthread_mutex_destroy(&c->lock);
}

#endif // LLMC_COMM_H
