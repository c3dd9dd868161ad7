// CPU emulation of CUDA for testing without a GPU (dev/cuda/emu/README.md).
//
// Our kernels run as ordinary C++ functions, one fiber per CUDA thread, one block at a time:
//   - threadIdx/blockIdx/blockDim/gridDim are globals the scheduler sets before it resumes a fiber
//   - __shared__ variables are function statics (one block runs at a time, so a block's threads
//     share them); dynamic shared memory is a per-launch buffer, poisoned with NaN bytes
//   - __syncthreads waits for every live thread of the block; __syncwarp and the shuffles wait
//     for the 32 lanes of the warp. A warp operation that some lanes of the warp never reach
//     (they returned early, or wait at another barrier) is reported as an error: on a GPU it is
//     undefined behaviour, the classic early-return-before-a-shuffle bug
//   - between two barriers, threads run in a random order (EMU_SEED), so a read of shared
//     memory that another thread writes without a barrier in between tends to see the wrong value
// Device memory is host memory. Work on a stream runs when it is issued (program order), unless
// EMU_LAZY_STREAM=k defers the k-th stream the program creates (below): then only the waits the
// program asks for (events, synchronizations) order it against the other streams.
// What it cannot show: speed, the hardware's memory model, register or shared memory limits.
// Only what llmc/ and dev/cuda/ use is here.
#ifndef EMU_CUDA_RUNTIME_H
#define EMU_CUDA_RUNTIME_H

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <functional>
#include <deque>
#include <memory>

// ----------------------------------------------------------------------------
// language

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#ifdef EMU_PROFILE
// the profiler tells shared from other memory by this section's bounds (emu_profile.h)
#define __shared__ static __attribute__((section("emu_shared")))
#else
#define __shared__ static
#endif
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;
// the 16-byte vector types are 16-byte aligned as in CUDA: g++ then moves one with a single
// 16-byte access, which is what the profiler must see of a 128-bit load or store
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { uint4 v = {x, y, z, w}; return v; }
static inline int4 make_int4(int x, int y, int z, int w) { int4 v = {x, y, z, w}; return v; }
struct alignas(16) float4 { float x, y, z, w; };
static inline float4 make_float4(float x, float y, float z, float w) { float4 v = {x, y, z, w}; return v; }

static dim3 threadIdx, blockIdx, blockDim, gridDim;

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline size_t min(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t max(size_t a, size_t b) { return a > b ? a : b; }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }  // 1 + the lowest set bit's index, 0 for 0
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
template <class T> static inline T __ldg(const T* p) { return *p; }

// ----------------------------------------------------------------------------
// runtime API

typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
    cudaErrorLaunchFailure = 719
} cudaError_t;
typedef cudaError_t cudaError;
typedef enum { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
               cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 } cudaMemcpyKind;
typedef enum { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 } cudaFuncAttribute;
typedef enum { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97, cudaDevAttrMultiProcessorCount = 16 } cudaDeviceAttr;
typedef enum { CUDA_R_16F = 2, CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16BF = 14 } cudaDataType_t;
typedef cudaDataType_t cudaDataType;
// Streams. On a GPU, work on two streams runs in any interleaving the program's events allow.
// Here a stream is eager (its work runs when issued, the default) or lazy: its work queues up
// and runs only when something waits for it (cudaStreamWaitEvent from another stream, an event
// or stream synchronization, a synchronous copy, the legacy stream 0). EMU_LAZY_STREAM=k makes
// the k-th stream created lazy (1 = the first), so a test can run one schedule where that
// stream lags behind and another where the others do: a missing wait between streams then
// gives a wrong answer instead of the right one by luck. Events and waits record positions in
// a stream's queue of operations.
struct EmuStream {
    int lazy;
    std::deque<std::function<void()>> queue;  // issued, not yet run
    unsigned long long issued, done;          // operations issued and run so far
};
struct EmuEvent { EmuStream* stream; unsigned long long at; };  // recorded after the at-th operation
typedef EmuStream* cudaStream_t;
typedef EmuEvent* cudaEvent_t;
#define EMU_MAX_STREAMS 64
struct EmuStreams { EmuStream* live[EMU_MAX_STREAMS]; int created; };
static EmuStreams emu_streams;

// runs s's queued operations up to the at-th (all of them: at = issued)
static inline void emu_stream_drain_to(EmuStream* s, unsigned long long at) {
    while (s != NULL && s->done < at && !s->queue.empty()) {
        std::function<void()> op = std::move(s->queue.front());
        s->queue.pop_front();
        s->done++;
        op();  // may drain other streams (a queued wait)
    }
}
static inline void emu_stream_drain(EmuStream* s) { if (s != NULL) { emu_stream_drain_to(s, s->issued); } }
static inline void emu_streams_drain_all(void) {
    for (int i = 0; i < EMU_MAX_STREAMS; i++) { emu_stream_drain(emu_streams.live[i]); }
}
// Issues op on stream s: stream 0 (the legacy default stream) first waits for every other
// stream, as it does on a GPU; an eager stream runs op now, a lazy one queues it.
static inline void emu_stream_run(cudaStream_t s, std::function<void()> op) {
    if (s == NULL) { emu_streams_drain_all(); op(); return; }
    s->issued++;
    if (s->lazy) { s->queue.push_back(std::move(op)); return; }
    s->done++;
    op();
}

typedef struct {
    char name[256];
    int major, minor;
    int multiProcessorCount;
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    int maxThreadsPerBlock;
    int clockRate;
    int memoryClockRate;
    int memoryBusWidth;
    int l2CacheSize;
} cudaDeviceProp;

static cudaError_t emu_pending_error = cudaSuccess;

#ifdef EMU_PROFILE
static void emu_prof_register(void* p, size_t bytes);
static void emu_prof_unregister(void* p);
#endif

static inline const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error (emulated)";
        case cudaErrorInvalidValue: return "invalid argument (emulated)";
        case cudaErrorMemoryAllocation: return "out of memory (emulated)";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument (emulated)";
        default: return "error (emulated)";
    }
}
static inline cudaError_t cudaGetLastError(void) { cudaError_t e = emu_pending_error; emu_pending_error = cudaSuccess; return e; }
static inline cudaError_t cudaPeekAtLastError(void) { return emu_pending_error; }
// 256-byte aligned, as cudaMalloc's memory is (vector loads and WMMA rely on it)
static inline void* emu_aligned_alloc(size_t bytes) {
    size_t rounded = (bytes + 255) / 256 * 256;
    return aligned_alloc(256, rounded > 0 ? rounded : 256);
}
static inline cudaError_t cudaMalloc(void** p, size_t bytes) {
    // fresh device memory holds garbage on a GPU: NaN bytes here
    *p = emu_aligned_alloc(bytes);
    if (*p == NULL) { return cudaErrorMemoryAllocation; }
    memset(*p, 0xff, bytes);
#ifdef EMU_PROFILE
    emu_prof_register(*p, bytes);
#endif
    return cudaSuccess;
}
template <class T> static inline cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc((void**)p, bytes); }
static inline cudaError_t cudaFree(void* p) {
    emu_streams_drain_all();  // cudaFree waits for the device, so queued work may still use p
#ifdef EMU_PROFILE
    emu_prof_unregister(p);
#endif
    free(p);
    return cudaSuccess;
}
static inline cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaMalloc(p, bytes); }
static inline cudaError_t cudaFreeHost(void* p) { return cudaFree(p); }
// the synchronous calls wait for every stream, as they do on a GPU
static inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
    emu_streams_drain_all();
    memmove(d, s, n);
    return cudaSuccess;
}
// A copy from the host reads its source when issued, as a copy from pageable host memory does
// on a GPU (the caller may reuse the buffer at once); other copies read it when they run.
static inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind kind, cudaStream_t st = 0) {
    if (kind == cudaMemcpyHostToDevice && st != NULL && st->lazy) {
        std::shared_ptr<unsigned char> copy((unsigned char*)malloc(n > 0 ? n : 1), free);
        if (!copy) { return cudaErrorMemoryAllocation; }
        memcpy(copy.get(), s, n);
        emu_stream_run(st, [=]() { memcpy(d, copy.get(), n); });
        return cudaSuccess;
    }
    emu_stream_run(st, [=]() { memmove(d, s, n); });
    return cudaSuccess;
}
static inline cudaError_t cudaMemset(void* d, int v, size_t n) { emu_streams_drain_all(); memset(d, v, n); return cudaSuccess; }
static inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t st = 0) {
    emu_stream_run(st, [=]() { memset(d, v, n); });
    return cudaSuccess;
}
static inline cudaError_t cudaStreamCreate(cudaStream_t* s) {
    int k = emu_streams.created + 1;  // 1-based, as EMU_LAZY_STREAM counts
    int slot = -1;
    for (int i = 0; i < EMU_MAX_STREAMS && slot < 0; i++) { if (emu_streams.live[i] == NULL) { slot = i; } }
    if (slot < 0) { return cudaErrorMemoryAllocation; }
    EmuStream* st = new EmuStream();
    const char* lazy = getenv("EMU_LAZY_STREAM");
    st->lazy = lazy != NULL && atoi(lazy) == k;
    st->issued = st->done = 0;
    emu_streams.live[slot] = st;
    emu_streams.created = k;
    *s = st;
    return cudaSuccess;
}
static inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (s == NULL) { return cudaErrorInvalidValue; }
    emu_stream_drain(s);  // a GPU finishes the stream's work first
    for (int i = 0; i < EMU_MAX_STREAMS; i++) { if (emu_streams.live[i] == s) { emu_streams.live[i] = NULL; } }
    delete s;
    return cudaSuccess;
}
static inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (s == NULL) { emu_streams_drain_all(); } else { emu_stream_drain(s); }
    return cudaSuccess;
}
static inline cudaError_t cudaDeviceSynchronize(void) { emu_streams_drain_all(); return cudaSuccess; }
static inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
static inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
static inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
static inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "CPU emulation (dev/cuda/emu)");
    p->major = 9; p->minor = 0;
    p->multiProcessorCount = 4;
    p->totalGlobalMem = (size_t)8 << 30;
    p->sharedMemPerBlock = 48 << 10;
    p->sharedMemPerBlockOptin = 227 << 10;
    p->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}
static inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
    *v = a == cudaDevAttrMaxSharedMemoryPerBlockOptin ? (227 << 10) : 4;
    return cudaSuccess;
}
static inline cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b) { *free_b = (size_t)4 << 30; *total_b = (size_t)8 << 30; return cudaSuccess; }
template <class F> static inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) { return cudaSuccess; }
// the emulation does not know a kernel's static shared memory: it says 0 (a GPU says what
// ptxas reported), so a check that static + dynamic fit in the opt-in limit is only real there
struct cudaFuncAttributes { size_t sharedSizeBytes; };
template <class F> static inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, F) {
    a->sharedSizeBytes = 0;
    return cudaSuccess;
}
enum { cudaEventDefault = 0, cudaEventDisableTiming = 2 };
static inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
    *e = new EmuEvent();
    (*e)->stream = NULL;
    (*e)->at = 0;
    return cudaSuccess;
}
static inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
static inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
// the event marks the stream's work issued so far (stream 0: everything, which has run)
static inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0) {
    if (e == NULL) { return cudaErrorInvalidValue; }
    if (s == NULL) { emu_streams_drain_all(); }
    e->stream = s;
    e->at = s != NULL ? s->issued : 0;
    return cudaSuccess;
}
static inline cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (e == NULL) { return cudaErrorInvalidValue; }
    emu_stream_drain_to(e->stream, e->at);
    return cudaSuccess;
}
// s's later work waits for the event's position as it is now (a later record does not move it)
static inline cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0) {
    (void)flags;
    if (e == NULL) { return cudaErrorInvalidValue; }
    EmuStream* from = e->stream;
    unsigned long long at = e->at;
    if (from == s) { return cudaSuccess; }  // a stream is in order with itself
    emu_stream_run(s, [=]() { emu_stream_drain_to(from, at); });
    return cudaSuccess;
}
static inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) { *ms = 0.0f; return cudaSuccess; }

// ----------------------------------------------------------------------------
// fibers: one per CUDA thread of the running block, switched by a few lines of x86-64 assembly
// (swapcontext would make a system call per switch)

extern "C" void emu_switch(void** save_sp, void* load_sp);
__asm__(
    ".text\n"
    ".globl emu_switch\n"
    ".type emu_switch,@function\n"
    "emu_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size emu_switch, .-emu_switch\n");

enum { EMU_READY, EMU_AT_BLOCK_BARRIER, EMU_AT_WARP_BARRIER, EMU_DONE };
#define EMU_MAX_THREADS 1024
#define EMU_STACK_BYTES (128 << 10)

struct EmuFiber {
    void* sp;
    int state;
    dim3 tid;
    int cp_pending;  // cp.async copies issued and not yet completed by a wait (mma.h)
    int cp_group;    // the open (uncommitted) cp.async group's number
};

struct EmuEngine {
    EmuFiber fibers[EMU_MAX_THREADS];
    char* stacks;
    void* scheduler_sp;
    int current;
    int nthreads;
    const std::function<void()>* body;
    uint64_t slots[EMU_MAX_THREADS];  // shuffle exchange, one per thread
    unsigned char* dyn_smem;
    size_t dyn_smem_cap;
    size_t dyn_smem_bytes;
    uint64_t rng;
    unsigned long long launches;
    int in_kernel;  // a launch is running (emu_fail names the block and thread only then)
};
static EmuEngine emu;

#ifdef EMU_PROFILE
#include "emu_profile.h"
#endif

static inline void emu_fail(const char* what) {
    if (!emu.in_kernel) {
        fprintf(stderr, "error: CUDA emulation: %s\n", what);
        exit(EXIT_FAILURE);
    }
    fprintf(stderr, "error: CUDA emulation: %s (kernel launch %llu, block (%u,%u,%u), thread (%u,%u,%u))\n", what,
            emu.launches, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
    exit(EXIT_FAILURE);
}

static inline void emu_yield(int state) {
    EmuFiber* f = &emu.fibers[emu.current];
    f->state = state;
    emu_switch(&f->sp, emu.scheduler_sp);
}

extern "C" void emu_fiber_main(void) {
    (*emu.body)();
    if (emu.fibers[emu.current].cp_pending != 0) {
        emu_fail("the thread returned with cp.async copies it never waited for (cp.async.wait_group)");
    }
    emu_yield(EMU_DONE);
    abort();  // a finished fiber is never resumed
}

// entered through emu_switch's ret: the stack is laid out as if emu_fiber_main had been called
extern "C" void emu_fiber_start(void);
__asm__(
    ".text\n"
    ".globl emu_fiber_start\n"
    ".type emu_fiber_start,@function\n"
    "emu_fiber_start:\n"
    "    call emu_fiber_main\n"
    "    ud2\n"
    ".size emu_fiber_start, .-emu_fiber_start\n");

static inline void emu_fiber_init(int i) {
    // 16-byte aligned top; emu_switch pops six registers and returns into emu_fiber_start with
    // rsp = top (16-aligned), so its call enters emu_fiber_main with the alignment the ABI wants
    uintptr_t top = (uintptr_t)(emu.stacks + (size_t)(i + 1) * EMU_STACK_BYTES) & ~(uintptr_t)15;
    void** sp = (void**)top;
    *--sp = (void*)emu_fiber_start;     // emu_switch's ret goes here
    for (int k = 0; k < 6; k++) { *--sp = NULL; }  // rbp rbx r12 r13 r14 r15
    emu.fibers[i].sp = (void*)sp;
    emu.fibers[i].state = EMU_READY;
    emu.fibers[i].cp_pending = 0;
    emu.fibers[i].cp_group = 0;
}

static inline uint32_t emu_rand(void) {
    emu.rng = emu.rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(emu.rng >> 33);
}

static inline void emu_describe_states(char* buf, size_t n) {
    int counts[4] = {0, 0, 0, 0};
    for (int i = 0; i < emu.nthreads; i++) { counts[emu.fibers[i].state]++; }
    snprintf(buf, n, "threads: %d at __syncthreads, %d at a warp operation, %d returned", counts[EMU_AT_BLOCK_BARRIER],
             counts[EMU_AT_WARP_BARRIER], counts[EMU_DONE]);
}

static inline void emu_run_block(void) {
    int n = emu.nthreads;
    for (int i = 0; i < n; i++) { emu_fiber_init(i); }
    int order[EMU_MAX_THREADS];
    for (;;) {
        // run every ready fiber until it blocks or returns, in a random order
        int nready = 0;
        for (int i = 0; i < n; i++) { if (emu.fibers[i].state == EMU_READY) { order[nready++] = i; } }
        for (int i = nready - 1; i > 0; i--) { int j = (int)(emu_rand() % (uint32_t)(i + 1)); int t = order[i]; order[i] = order[j]; order[j] = t; }
        for (int k = 0; k < nready; k++) {
            int i = order[k];
            emu.current = i;
            threadIdx = emu.fibers[i].tid;
#ifdef EMU_PROFILE
            emu_prof.active = emu_prof.enabled;
            emu_switch(&emu.scheduler_sp, emu.fibers[i].sp);
            emu_prof.active = 0;
#else
            emu_switch(&emu.scheduler_sp, emu.fibers[i].sp);
#endif
        }
        // release whole warps waiting at a warp operation
        int released = 0, live = 0, at_block = 0;
        for (int w0 = 0; w0 < n; w0 += 32) {
            int w1 = w0 + 32 < n ? w0 + 32 : n;
            int waiting = 0, done = 0, other = 0;
            for (int i = w0; i < w1; i++) {
                int s = emu.fibers[i].state;
                if (s == EMU_AT_WARP_BARRIER) { waiting++; } else if (s == EMU_DONE) { done++; } else { other++; }
            }
            if (waiting > 0 && other == 0) {
                if (done > 0) {
                    threadIdx = emu.fibers[w0].tid;
                    emu_fail("a full-warp operation (__shfl_*_sync, __syncwarp) while some lanes of the warp have returned");
                }
                for (int i = w0; i < w1; i++) { emu.fibers[i].state = EMU_READY; }
                released = 1;
            }
        }
        if (released) { continue; }
        for (int i = 0; i < n; i++) {
            if (emu.fibers[i].state != EMU_DONE) { live++; }
            if (emu.fibers[i].state == EMU_AT_BLOCK_BARRIER) { at_block++; }
        }
        if (live == 0) {
#ifdef EMU_PROFILE
            if (emu_prof.enabled) { emu_prof_block_end(); }
#endif
            return;
        }
        if (at_block == live) {
            for (int i = 0; i < n; i++) { if (emu.fibers[i].state == EMU_AT_BLOCK_BARRIER) { emu.fibers[i].state = EMU_READY; } }
            continue;
        }
        char msg[300], states[160];
        emu_describe_states(states, sizeof(states));
        snprintf(msg, sizeof(msg), "deadlock: threads of one block wait at different barriers (%s)", states);
        emu_fail(msg);
    }
}

static inline void emu_launch_now(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body, const char* name);

// name: the kernel as the launch spells it (emu_transform.py passes it), for the profiler.
// The launch's configuration is checked when it is issued (cudaGetLastError reports it then);
// the kernel runs in its stream's order (emu_stream_run), so body holds copies of its
// arguments (emu_transform.py writes [=]).
static inline void emu_launch(dim3 grid, dim3 block, size_t smem, std::function<void()> body,
                              const char* name = "kernel", cudaStream_t stream = 0) {
    unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    if (nt == 0 || nt > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
        block.z > 64) {
        emu_pending_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (smem > (227u << 10)) { emu_pending_error = cudaErrorInvalidValue; return; }
    if (stream == NULL || !stream->lazy) { emu_stream_run(stream, [&]() { emu_launch_now(grid, block, smem, body, name); }); return; }
    emu_stream_run(stream, [=]() { emu_launch_now(grid, block, smem, body, name); });
}

static inline void emu_launch_now(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body, const char* name) {
    emu.launches++;
    unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    if (emu.stacks == NULL) {
        emu.stacks = (char*)malloc((size_t)EMU_MAX_THREADS * EMU_STACK_BYTES);
        if (emu.stacks == NULL) { emu_fail("cannot allocate fiber stacks"); }
        const char* seed = getenv("EMU_SEED");
        emu.rng = seed != NULL ? strtoull(seed, NULL, 10) : 0x853c49e6748fea9bull;
    }
    if (smem > emu.dyn_smem_cap) {
        free(emu.dyn_smem);
        emu.dyn_smem = (unsigned char*)emu_aligned_alloc(smem);
        emu.dyn_smem_cap = smem;
    }
    emu.dyn_smem_bytes = smem;
    emu.body = &body;
    emu.nthreads = (int)nt;
    gridDim = grid;
    blockDim = block;
    int i = 0;
    for (unsigned z = 0; z < block.z; z++)
        for (unsigned y = 0; y < block.y; y++)
            for (unsigned x = 0; x < block.x; x++) { emu.fibers[i++].tid = dim3(x, y, z); }
#ifdef EMU_PROFILE
    if (emu_prof.enabled) { emu_prof_launch_begin(); }
#endif
    emu.in_kernel = 1;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                blockIdx = dim3(bx, by, bz);
                if (smem > 0) { memset(emu.dyn_smem, 0xff, smem); }  // uninitialized shared memory: NaN
                emu_run_block();
            }
    emu.in_kernel = 0;
#ifdef EMU_PROFILE
    if (emu_prof.enabled) { emu_prof_launch_end(name, grid, block, smem); }
#else
    (void)name;
#endif
}

static inline void* emu_dynamic_smem(void) { return emu.dyn_smem; }

// ----------------------------------------------------------------------------
// barriers and warp operations

static inline void __syncthreads(void) { emu_yield(EMU_AT_BLOCK_BARRIER); }

static inline int emu_lane(void) {
    int lin = (int)(threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y);
    return lin;
}

static inline void emu_check_full_mask(unsigned mask) {
    if (mask != 0xffffffffu) { emu_fail("a warp operation with a partial mask (not emulated)"); }
}

static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    emu_check_full_mask(mask);
    emu_yield(EMU_AT_WARP_BARRIER);
}

// every lane posts its value, the warp meets, each reads its source lane, the warp meets again
// (so no lane overwrites its slot before all have read)
template <class T> static inline T emu_shfl(T v, int src_lane) {
    int lin = emu_lane();
    int w0 = lin & ~31;
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof(T));
    emu.slots[lin] = bits;
    emu_yield(EMU_AT_WARP_BARRIER);
    int src = w0 + src_lane;
    if (src >= emu.nthreads) { src = lin; }  // a lane past the end of a partial warp: own value
    uint64_t got = emu.slots[src];
    emu_yield(EMU_AT_WARP_BARRIER);
    T out;
    memcpy(&out, &got, sizeof(T));
    return out;
}

template <class T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    emu_check_full_mask(mask);
    int lane = emu_lane() & 31;
    return emu_shfl(v, (lane / width) * width + (src % width));
}
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    emu_check_full_mask(mask);
    int lane = emu_lane() & 31;
    int src = lane ^ lane_mask;
    if (src / width != lane / width) { src = lane; }
    return emu_shfl(v, src);
}
template <class T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    emu_check_full_mask(mask);
    int lane = emu_lane() & 31;
    int src = lane + (int)delta;
    if (src / width != lane / width) { src = lane; }
    return emu_shfl(v, src);
}
template <class T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    emu_check_full_mask(mask);
    int lane = emu_lane() & 31;
    int src = lane - (int)delta;
    if (src < 0 || src / width != lane / width) { src = lane; }
    return emu_shfl(v, src);
}

#endif // EMU_CUDA_RUNTIME_H
