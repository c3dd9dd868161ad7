// Several GPUs: the NCCL communicator and its collectives (all-reduce for ZeRO-0, reduce-scatter
// and all-gather for ZeRO-1), set up through the MPI job
// of llmc/comm.h (rank 0 makes the NCCL id, MPI broadcasts it). CUDA builds only.
// The fs and tcp rendezvous of llm.c (-pm fs|tcp, for clusters without MPI) are not
// implemented yet: the host-side collectives of the training loop run over MPI too.
#ifndef LLMC_COMM_NCCL_H
#define LLMC_COMM_NCCL_H

#include <nccl.h>
#include "comm.h"
#include "args.h"
#include "cuda_common.h"

typedef struct {
    int world;          // 1: no communicator, nothing to do
    ncclComm_t comm;
} NcclComm;

static void nccl_check(ncclResult_t rc, const char* what, const char* file, int line) {
    if (rc != ncclSuccess) {
        fprintf(stderr, "error: NCCL %s failed at %s:%d: %s\n", what, file, line, ncclGetErrorString(rc));
        exit(EXIT_FAILURE);
    }
}
#define ncclCheck(call) nccl_check((call), #call, __FILE__, __LINE__)

static void nccl_init(NcclComm* n, Comm* comm, const TrainConfig* cfg) {
    memset(n, 0, sizeof(*n));
    n->world = comm->world;
    if (strcmp(cfg->init_method, "mpi") != 0) {
        die("-pm %s: only the MPI rendezvous is implemented (start the processes with mpirun or srun)", cfg->init_method);
    }
    if (comm->world == 1) { return; }
#ifdef USE_MPI
    ncclUniqueId id;
    if (comm->rank == 0) { ncclCheck(ncclGetUniqueId(&id)); }
    mpi_check(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast of the NCCL id");
    ncclCheck(ncclCommInitRank(&n->comm, comm->world, id, comm->rank));
#else
    die("%d processes, but this binary was built without MPI (rebuild with mpicc available)", comm->world);
#endif
}

// in-place sum over processes, on the stream
static void nccl_allreduce_sum(NcclComm* n, float* x, size_t count, cudaStream_t stream) {
    if (n->world == 1) { return; }
    ncclCheck(ncclAllReduce(x, x, count, ncclFloat, ncclSum, n->comm, stream));
}

// ZeRO-1: shard_out (count floats) = the sum over processes of x[rank*count, +count); x holds
// world*count floats
static void nccl_reduce_scatter_sum(NcclComm* n, const float* x, float* shard_out, size_t count, cudaStream_t stream) {
    if (n->world == 1) {
        cudaCheck(cudaMemcpyAsync(shard_out, x, count * sizeof(float), cudaMemcpyDeviceToDevice, stream));
        return;
    }
    ncclCheck(ncclReduceScatter(x, shard_out, count, ncclFloat, ncclSum, n->comm, stream));
}

// ZeRO-1: every process's count floats (mine at shard, inside x) to all of x (world*count floats)
static void nccl_allgather(NcclComm* n, const float* shard, float* x, size_t count, cudaStream_t stream) {
    if (n->world == 1) { return; }
    ncclCheck(ncclAllGather(shard, x, count, ncclFloat, n->comm, stream));
}

static void nccl_free(NcclComm* n) {
    if (n->world > 1) { ncclCheck(ncclCommDestroy(n->comm)); }
    n->world = 1;
}

#endif // LLMC_COMM_NCCL_H
