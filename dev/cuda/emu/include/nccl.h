// CPU emulation of CUDA (dev/cuda/emu): NCCL, what llmc/comm_nccl.h calls, for one process only.
// With one rank every collective is a copy of the send buffer to the receive buffer (nothing
// when they are the same buffer); a communicator of several ranks stops the emulation (emu_fail):
// there are no other processes to talk to. Calls are synchronous; streams are ignored.
#ifndef EMU_NCCL_H
#define EMU_NCCL_H

#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>

#define NCCL_UNIQUE_ID_BYTES 128

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7
} ncclResult_t;

typedef enum {
    ncclInt8 = 0, ncclChar = 0,
    ncclUint8 = 1,
    ncclInt32 = 2, ncclInt = 2,
    ncclUint32 = 3,
    ncclInt64 = 4,
    ncclUint64 = 5,
    ncclFloat16 = 6, ncclHalf = 6,
    ncclFloat32 = 7, ncclFloat = 7,
    ncclFloat64 = 8, ncclDouble = 8,
    ncclBfloat16 = 9
} ncclDataType_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;

struct EmuNcclComm { int nranks, rank; };
typedef EmuNcclComm* ncclComm_t;

static inline const char* ncclGetErrorString(ncclResult_t r) {
    switch (r) {
        case ncclSuccess: return "no error (emulated NCCL)";
        case ncclUnhandledCudaError: return "unhandled cuda error (emulated NCCL)";
        case ncclSystemError: return "unhandled system error (emulated NCCL)";
        case ncclInternalError: return "internal error (emulated NCCL)";
        case ncclInvalidArgument: return "invalid argument (emulated NCCL)";
        case ncclInvalidUsage: return "invalid usage (emulated NCCL)";
        case ncclRemoteError: return "remote process exited or there was a network error (emulated NCCL)";
        case ncclInProgress: return "NCCL operation in progress (emulated NCCL)";
    }
    return "unknown result code (emulated NCCL)";
}

static inline size_t emu_nccl_type_bytes(ncclDataType_t t) {
    switch (t) {
        case ncclInt8: case ncclUint8: return 1;
        case ncclFloat16: case ncclBfloat16: return 2;
        case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
        case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    }
    return 0;
}

static inline ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    if (id == NULL) { return ncclInvalidArgument; }
    memset(id->internal, 0, sizeof(id->internal));
    memcpy(id->internal, "emulated NCCL id", 16);
    return ncclSuccess;
}

static inline ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    (void)id;
    if (comm == NULL || nranks < 1 || rank < 0 || rank >= nranks) { return ncclInvalidArgument; }
    if (nranks > 1) { emu_fail("NCCL with several ranks is not emulated"); }
    *comm = (ncclComm_t)calloc(1, sizeof(EmuNcclComm));
    if (*comm == NULL) { return ncclSystemError; }
    (*comm)->nranks = nranks;
    (*comm)->rank = rank;
    return ncclSuccess;
}

static inline ncclResult_t ncclCommDestroy(ncclComm_t comm) { free(comm); return ncclSuccess; }
static inline ncclResult_t ncclCommCount(ncclComm_t comm, int* n) { if (comm == NULL || n == NULL) { return ncclInvalidArgument; } *n = comm->nranks; return ncclSuccess; }
static inline ncclResult_t ncclCommUserRank(ncclComm_t comm, int* r) { if (comm == NULL || r == NULL) { return ncclInvalidArgument; } *r = comm->rank; return ncclSuccess; }
static inline ncclResult_t ncclGroupStart(void) { return ncclSuccess; }
static inline ncclResult_t ncclGroupEnd(void) { return ncclSuccess; }

// one rank: the result of any collective is its own input
static inline ncclResult_t emu_nccl_copy(const void* send, void* recv, size_t count, ncclDataType_t type, ncclComm_t comm) {
    if (comm == NULL) { return ncclInvalidArgument; }
    if (comm->nranks != 1) { emu_fail("NCCL with several ranks is not emulated"); }
    size_t bytes = emu_nccl_type_bytes(type);
    if (bytes == 0) { return ncclInvalidArgument; }
    if (count > 0 && (send == NULL || recv == NULL)) { return ncclInvalidArgument; }
    if (count > 0 && send != recv) { memmove(recv, send, count * bytes); }
    return ncclSuccess;
}

static inline ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                                         ncclComm_t comm, cudaStream_t stream) {
    (void)op; (void)stream;  // sum, prod, max, min or avg of one value: the value
    return emu_nccl_copy(send, recv, count, type, comm);
}
static inline ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recvcount, ncclDataType_t type,
                                             ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    (void)op; (void)stream;  // rank 0's share is the first recvcount elements (all of them)
    return emu_nccl_copy(send, recv, recvcount, type, comm);
}
static inline ncclResult_t ncclAllGather(const void* send, void* recv, size_t sendcount, ncclDataType_t type,
                                         ncclComm_t comm, cudaStream_t stream) {
    (void)stream;
    return emu_nccl_copy(send, recv, sendcount, type, comm);
}
static inline ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root,
                                         ncclComm_t comm, cudaStream_t stream) {
    (void)stream;
    if (root != 0) { return ncclInvalidArgument; }
    return emu_nccl_copy(send, recv, count, type, comm);
}

#endif // EMU_NCCL_H
