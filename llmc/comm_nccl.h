// Several GPUs: the NCCL communicator and its collectives (all-reduce for ZeRO-0, reduces to
// each shard's owner and all-gather for ZeRO-1). CUDA builds only. Rank 0 makes the NCCL id
// and hands it to the others through MPI (-pm mpi: mpirun, srun), a shared directory (-pm fs
// -pp DIR) or a TCP connection (-pm tcp -ps RANK0_IP), llmc/rendezvous.h; without MPI, -pn and
// -pr give each process its place, and the training loop's host-side collectives (loss, norm,
// stop) run over NCCL too (a CommBackend).
#ifndef LLMC_COMM_NCCL_H
#define LLMC_COMM_NCCL_H

#include <nccl.h>
#include "comm.h"
#include "args.h"
#include "cuda_common.h"
#include "rendezvous.h"

typedef struct {
    int world;          // 1: no communicator, nothing to do
    ncclComm_t comm;
    void* d_scratch;    // 8 bytes on the device for the host-side collectives (no MPI)
} NcclComm;

static void nccl_check(ncclResult_t rc, const char* what, const char* file, int line) {
    if (rc != ncclSuccess) {
        fprintf(stderr, "error: NCCL %s failed at %s:%d: %s\n", what, file, line, ncclGetErrorString(rc));
        exit(EXIT_FAILURE);
    }
}
#define ncclCheck(call) nccl_check((call), #call, __FILE__, __LINE__)

// The host-side collectives over NCCL, for processes without MPI (CommBackend)
static double nccl_host_allreduce_sum_double(void* ctx, double x) {
    NcclComm* n = (NcclComm*)ctx;
    cudaCheck(cudaMemcpy(n->d_scratch, &x, sizeof(double), cudaMemcpyHostToDevice));
    ncclCheck(ncclAllReduce(n->d_scratch, n->d_scratch, 1, ncclFloat64, ncclSum, n->comm, 0));
    cudaCheck(cudaMemcpy(&x, n->d_scratch, sizeof(double), cudaMemcpyDeviceToHost));
    return x;
}

static int nccl_host_allreduce_max_int(void* ctx, int x) {
    NcclComm* n = (NcclComm*)ctx;
    cudaCheck(cudaMemcpy(n->d_scratch, &x, sizeof(int), cudaMemcpyHostToDevice));
    ncclCheck(ncclAllReduce(n->d_scratch, n->d_scratch, 1, ncclInt32, ncclMax, n->comm, 0));
    cudaCheck(cudaMemcpy(&x, n->d_scratch, sizeof(int), cudaMemcpyDeviceToHost));
    return x;
}

static void nccl_host_broadcast_int(void* ctx, int* x) {
    NcclComm* n = (NcclComm*)ctx;
    cudaCheck(cudaMemcpy(n->d_scratch, x, sizeof(int), cudaMemcpyHostToDevice));
    ncclCheck(ncclBroadcast(n->d_scratch, n->d_scratch, 1, ncclInt32, 0, n->comm, 0));
    cudaCheck(cudaMemcpy(x, n->d_scratch, sizeof(int), cudaMemcpyDeviceToHost));
}

// -pm fs|tcp: the process's rank and the world size come from -pr/-pn (before the GPU is
// chosen by local rank)
static void nccl_processes_from_flags(Comm* comm, const TrainConfig* cfg) {
    if (strcmp(cfg->init_method, "mpi") == 0) { return; }
    if (cfg->num_processes < 1 || cfg->process_rank < 0) {
        die("-pm %s: give every process -pn (the number of processes) and -pr (its rank)", cfg->init_method);
    }
    comm_set_processes(comm, cfg->process_rank, cfg->num_processes);
}

// Sets up the communicator (after nccl_processes_from_flags and cudaSetDevice); with -pm
// fs|tcp it also installs the host-side collectives on comm.
static void nccl_init(NcclComm* n, Comm* comm, const TrainConfig* cfg) {
    memset(n, 0, sizeof(*n));
    int mpi = strcmp(cfg->init_method, "mpi") == 0;
    n->world = comm->world;
    if (comm->world == 1) { return; }
    ncclUniqueId id;
    if (comm->rank == 0) { ncclCheck(ncclGetUniqueId(&id)); }
    char err[LLMC_ERRLEN];
    if (mpi) {
#ifdef USE_MPI
        mpi_check(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast of the NCCL id");
#else
        die("%d processes, but this binary was built without MPI (rebuild with mpicc available, or use -pm fs|tcp)", comm->world);
#endif
    } else if (strcmp(cfg->init_method, "fs") == 0) {
        if (cfg->fs_path == NULL) { die("-pm fs needs -pp, a directory every process can read"); }
        if (rendezvous_fs(cfg->fs_path, comm->rank, &id, sizeof(id), cfg->timeout, err) != 0) { die("%s", err); }
    } else {
        if (cfg->server_ip == NULL) { die("-pm tcp needs -ps, the IPv4 address of rank 0's node"); }
        if (rendezvous_tcp(cfg->server_ip, RENDEZVOUS_PORT, comm->rank, comm->world, &id, sizeof(id), cfg->timeout, err) != 0) {
            die("%s", err);
        }
    }
    ncclCheck(ncclCommInitRank(&n->comm, comm->world, id, comm->rank));
    n->d_scratch = cuda_malloc_check(sizeof(double), "host collectives scratch");
    if (!mpi) {
        comm->backend.ctx = n;
        comm->backend.allreduce_sum_double = nccl_host_allreduce_sum_double;
        comm->backend.allreduce_max_int = nccl_host_allreduce_max_int;
        comm->backend.broadcast_int = nccl_host_broadcast_int;
        comm->has_backend = 1;
        if (strcmp(cfg->init_method, "fs") == 0) {
            nccl_host_allreduce_max_int(n, 0);  // every rank has read the file: rank 0 removes it
            char path[1024];
            rendezvous_path(path, sizeof(path), cfg->fs_path);
            if (comm->rank == 0) { unlink(path); }
        }
    }
}

// in-place sum over processes, on the stream
static void nccl_allreduce_sum(NcclComm* n, float* x, size_t count, cudaStream_t stream) {
    if (n->world == 1) { return; }
    ncclCheck(ncclAllReduce(x, x, count, ncclFloat, ncclSum, n->comm, stream));
}

// ZeRO-1 by pieces: the sum over processes of x's count floats, into out on process root only
// (the overlapped reduction's part of a reduce-scatter: a piece of one process's shard)
static void nccl_reduce_sum(NcclComm* n, const float* x, float* out, size_t count, int root, cudaStream_t stream) {
    if (n->world == 1) {
        cudaCheck(cudaMemcpyAsync(out, x, count * sizeof(float), cudaMemcpyDeviceToDevice, stream));
        return;
    }
    ncclCheck(ncclReduce(x, out, count, ncclFloat, ncclSum, root, n->comm, stream));
}

// the collectives between these two calls are launched as one (NCCL's group)
static void nccl_group_start(NcclComm* n) { if (n->world > 1) { ncclCheck(ncclGroupStart()); } }
static void nccl_group_end(NcclComm* n) { if (n->world > 1) { ncclCheck(ncclGroupEnd()); } }

// ZeRO-1: every process's count floats (mine at shard, inside x) to all of x (world*count floats)
static void nccl_allgather(NcclComm* n, const float* shard, float* x, size_t count, cudaStream_t stream) {
    if (n->world == 1) { return; }
    ncclCheck(ncclAllGather(shard, x, count, ncclFloat, n->comm, stream));
}

static void nccl_free(NcclComm* n) {
    if (n->world > 1) {
        ncclCheck(ncclCommDestroy(n->comm));
        cudaCheck(cudaFree(n->d_scratch));
    }
    n->world = 1;
}

#endif // LLMC_COMM_NCCL_H
