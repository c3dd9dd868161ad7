// CPU emulation of CUDA (dev/cuda/emu): WMMA (nvcuda::wmma), the subset llmc/attention.h's
// tensor-core kernels use: 16x16x16 fragments, matrix_a/matrix_b of __nv_bfloat16 (row_major or
// col_major), float accumulators; load_matrix_sync, store_matrix_sync, fill_fragment, mma_sync.
//
// Every lane holds the WHOLE 16x16 tile in its fragment: num_elements = 256, x[r * 16 + c] is
// element (r, c) of the tile, loaded whole by each lane. mma_sync computes only the lane's share
// (below), the only elements the lane will store. That is right for
// kernels that only touch fragments through these calls or through the same operation on every
// x[i] (ours); code that relies on which elements a lane holds on a real GPU cannot be checked
// here. No call here is a barrier: as on a GPU, a lane reading what other lanes stored needs a
// __syncwarp (or __syncthreads) in between.
//
// store_matrix_sync writes only the lane's own share of the tile: the elements e = r * 16 + c
// with e % 32 == lane (8 per lane, as a GPU's float accumulator has; the real assignment differs,
// and nothing may depend on it). Writing all 256 from every lane would be wrong, because lanes run
// one after the other between barriers: in a read-modify-write of a tile in memory (load the
// accumulator from O, mma, store to O: attention's forward does this), the second lane would load
// what the first one already stored and add the product twice. With a share per lane, each
// element of O is read and written by one lane only, as on a GPU, and a missing __syncwarp after
// a store still shows (other lanes' shares are not there yet). The price: after such an in-place
// update a lane's fragment is only sure to be right on its own share (it may have loaded other
// shares after their lanes stored them), which matters only to code that reads x[] non-uniformly.
//
// Checked (emu_fail): a warp of fewer than 32 threads; ldm not a multiple of 16 bytes; a pointer
// not 32-byte (256-bit) aligned. Inside dynamic shared memory the alignment is checked relative to
// its start; elsewhere to 16 bytes (the emulation's cudaMalloc and dynamic shared memory are
// 256-byte aligned, as a GPU's).
#ifndef EMU_MMA_H
#define EMU_MMA_H

#include <stdint.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

// which types are emulated: bf16 operands with a layout, float accumulators without one
template <class Use, class T, class Layout> struct emu_fragment_ok { enum { value = 0 }; };
template <> struct emu_fragment_ok<matrix_a, __nv_bfloat16, row_major> { enum { value = 1 }; };
template <> struct emu_fragment_ok<matrix_a, __nv_bfloat16, col_major> { enum { value = 1 }; };
template <> struct emu_fragment_ok<matrix_b, __nv_bfloat16, row_major> { enum { value = 1 }; };
template <> struct emu_fragment_ok<matrix_b, __nv_bfloat16, col_major> { enum { value = 1 }; };
template <> struct emu_fragment_ok<accumulator, float, void> { enum { value = 1 }; };

template <class Layout> struct emu_layout_is_row { enum { value = 0 }; };
template <> struct emu_layout_is_row<row_major> { enum { value = 1 }; };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "emulated WMMA: only 16x16x16 fragments");
    static_assert(emu_fragment_ok<Use, T, Layout>::value,
                  "emulated WMMA: only bf16 matrix_a/matrix_b (row_major or col_major) and float accumulators");
    typedef T element_type;
    typedef T storage_element_type;
    enum { num_elements = 256 };
    T x[256];  // the whole tile, row-major: x[r * 16 + c]
};

// lane within the warp; a WMMA call needs the whole warp (undefined on a GPU otherwise)
static inline int emu_wmma_lane(void) {
    int lin = emu_lane();  // linear thread index in the block
    if ((lin & ~31) + 32 > emu.nthreads) { emu_fail("WMMA in a warp of fewer than 32 threads"); }
    return lin & 31;
}

// whether p lies in the launch's dynamic shared memory
static inline bool emu_in_dyn_smem(const void* p) {
    const unsigned char* c = (const unsigned char*)p;
    return emu.dyn_smem != NULL && c >= emu.dyn_smem && c < emu.dyn_smem + emu.dyn_smem_bytes;
}

static inline void emu_wmma_check(const void* p, unsigned ldm, size_t elem_bytes, const char* what) {
    char msg[200];
    if ((ldm * elem_bytes) % 16 != 0) {
        snprintf(msg, sizeof(msg), "%s: ldm = %u is not a multiple of 16 bytes", what, ldm);
        emu_fail(msg);
    }
    bool in_smem = emu_in_dyn_smem(p);
    uintptr_t off = in_smem ? (uintptr_t)((const unsigned char*)p - emu.dyn_smem) : (uintptr_t)p;
    if (off % (in_smem ? 32 : 16) != 0) {
        snprintf(msg, sizeof(msg), "%s: pointer %p is not 256-bit aligned%s", what, p,
                 in_smem ? " (offset in dynamic shared memory)" : "");
        emu_fail(msg);
    }
}

// The profiler (emu_profile.h) must not count the loops above, where every lane reads the whole
// tile: they run with counting suspended, and each lane reports instead the accesses of its own
// share as the tensor-core instructions make them. A 16x16 bf16 tile (ldmatrix .x4, .trans for the
// other layout): lane l gives the address of one 16-byte piece, line l % 16 of the tile in
// memory, elements (l / 16) * 8 .. + 7 along it. The fp32
// accumulator (the m16n8k16 C/D fragment, two n8 halves): lane l holds rows l / 4 and l / 4 + 8,
// columns 2 (l % 4) and + 1 of each half: four 8-byte accesses. One request per piece: pc + j.
#ifdef EMU_PROFILE
#define EMU_WMMA_FN __attribute__((noinline))
EMU_NO_TSAN static void emu_wmma_profile_tile(const void* p, unsigned ldm, int col_major, int write, void* pc) {
    // in memory terms for either layout: 16 lines of ldm elements, 8 contiguous elements a piece
    (void)col_major;
    int lane = emu_lane() & 31;
    size_t off = (size_t)(lane % 16) * ldm + (size_t)(lane / 16) * 8;
    emu_prof.suspended--;
    emu_prof_access((char*)p + off * 2, 16, write, pc);
    emu_prof.suspended++;
}
EMU_NO_TSAN static void emu_wmma_profile_acc(const void* p, unsigned ldm, int col_major, int write, void* pc) {
    int lane = emu_lane() & 31;
    emu_prof.suspended--;
    for (int j = 0; j < 4; j++) {
        int r = lane / 4 + (j & 1) * 8, c = (lane % 4) * 2 + (j >> 1) * 8;
        size_t off = col_major ? (size_t)r + (size_t)c * ldm : (size_t)r * ldm + c;
        // a column-major accumulator's two values are not adjacent: two 4-byte accesses
        if (col_major) {
            emu_prof_access((char*)p + off * 4, 4, write, (char*)pc + 2 * j);
            emu_prof_access((char*)p + (off + ldm) * 4, 4, write, (char*)pc + 2 * j + 1);
        } else {
            emu_prof_access((char*)p + off * 4, 8, write, (char*)pc + j);
        }
    }
    emu_prof.suspended++;
}
#define EMU_WMMA_SUSPEND() (emu_prof.suspended++)
#define EMU_WMMA_RESUME() (emu_prof.suspended--)
#else
#define EMU_WMMA_FN
#define EMU_WMMA_SUSPEND() ((void)0)
#define EMU_WMMA_RESUME() ((void)0)
#endif

// identity: keeps fill_fragment's value out of template argument deduction (0 for a float fragment)
template <class T> struct emu_wmma_same { typedef T type; };

template <class Use, int M, int N, int K, class T, class Layout>
static inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const typename emu_wmma_same<T>::type& v) {
    for (int i = 0; i < 256; i++) { f.x[i] = v; }
}

// matrix_a (16 x k) and matrix_b (k x 16): the layout is the fragment's
template <class Use, class Layout>
EMU_WMMA_FN static inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout>& f, const __nv_bfloat16* p,
                                    unsigned ldm) {
    emu_wmma_lane();
    emu_wmma_check(p, ldm, sizeof(__nv_bfloat16), "wmma::load_matrix_sync");
    bool row = emu_layout_is_row<Layout>::value;
    EMU_WMMA_SUSPEND();
    for (int r = 0; r < 16; r++) {
        for (int c = 0; c < 16; c++) { f.x[r * 16 + c] = row ? p[(size_t)r * ldm + c] : p[r + (size_t)c * ldm]; }
    }
#ifdef EMU_PROFILE
    emu_wmma_profile_tile(p, ldm, !row, 0, __builtin_return_address(0));
#endif
    EMU_WMMA_RESUME();
}

// the accumulator: the memory layout is an argument
EMU_WMMA_FN static inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm,
                                    layout_t layout) {
    emu_wmma_lane();
    emu_wmma_check(p, ldm, sizeof(float), "wmma::load_matrix_sync");
    EMU_WMMA_SUSPEND();
    for (int r = 0; r < 16; r++) {
        for (int c = 0; c < 16; c++) {
            f.x[r * 16 + c] = layout == mem_row_major ? p[(size_t)r * ldm + c] : p[r + (size_t)c * ldm];
        }
    }
#ifdef EMU_PROFILE
    emu_wmma_profile_acc(p, ldm, layout != mem_row_major, 0, __builtin_return_address(0));
#endif
    EMU_WMMA_RESUME();
}

// this lane's share only (see the top comment)
EMU_WMMA_FN static inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm,
                                     layout_t layout) {
    int lane = emu_wmma_lane();
    emu_wmma_check(p, ldm, sizeof(float), "wmma::store_matrix_sync");
    EMU_WMMA_SUSPEND();
    for (int e = lane; e < 256; e += 32) {
        int r = e / 16, c = e % 16;
        if (layout == mem_row_major) { p[(size_t)r * ldm + c] = f.x[e]; } else { p[r + (size_t)c * ldm] = f.x[e]; }
    }
#ifdef EMU_PROFILE
    emu_wmma_profile_acc(p, ldm, layout != mem_row_major, 1, __builtin_return_address(0));
#endif
    EMU_WMMA_RESUME();
}

// d = a b + c, fp32 (the bf16 products are exact in fp32); d may be c
template <class LayoutA, class LayoutB>
static inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d,
                            const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA>& a,
                            const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB>& b,
                            const fragment<accumulator, 16, 16, 16, float>& c) {
    // only this lane's share: the only elements it will ever store (store_matrix_sync), and an
    // accumulator's share depends only on the same share of c; the other elements keep c's
    // values, which nothing reads (a 32x cheaper emulation of the tensor-core kernels)
    int lane = emu_wmma_lane();
    if (&d != &c) { d = c; }
    for (int e = lane; e < 256; e += 32) {
        int r = e / 16, col = e % 16;
        float s = 0.0f;
        for (int k = 0; k < 16; k++) { s += (float)a.x[r * 16 + k] * (float)b.x[k * 16 + col]; }
        d.x[e] = s + c.x[e];
    }
}

}  // namespace wmma
}  // namespace nvcuda


// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (llmc/tensor_core.h): d = a b + d. Unlike
// the WMMA fragments above, each lane holds only its share, in the PTX ISA's layout, so the warp
// meets (as a real mma.sync does) and every lane reads all 32 lanes' registers: A (16 x 16) and B
// (16 x 8) are assembled by the ISA's table, element i of a lane's operand being half i % 2 of
// register i / 2 (the low half first):
//   A: row g for i in {0, 1, 4, 5}, g + 8 for the others; column 2t + i % 2, + 8 for i >= 4
//   B: row 2t + i % 2, + 8 for i >= 2; column g
//   C, D: row g for i < 2, g + 8 for the others; column 2t + i % 2
// with g = lane / 4, t = lane % 4. Products of bf16 are exact in fp32; the sum is in k order
// (a GPU's order and rounding inside the instruction may differ in the last bits).
static inline void emu_warp_allgather64(uint64_t mine, uint64_t all[32]) {
    int lin = emu_lane();
    int w0 = lin & ~31;
    emu.slots[lin] = mine;
    emu_yield(EMU_AT_WARP_BARRIER);
    for (int l = 0; l < 32; l++) { all[l] = emu.slots[w0 + l]; }
    emu_yield(EMU_AT_WARP_BARRIER);
}

static inline void emu_mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    int lane = nvcuda::wmma::emu_wmma_lane();  // the whole warp, or emu_fail
    uint64_t a01[32], a23[32], b01[32];
    emu_warp_allgather64((uint64_t)a[0] | ((uint64_t)a[1] << 32), a01);
    emu_warp_allgather64((uint64_t)a[2] | ((uint64_t)a[3] << 32), a23);
    emu_warp_allgather64((uint64_t)b[0] | ((uint64_t)b[1] << 32), b01);
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        int g = l / 4, t = l % 4;
        uint32_t ar[4] = {(uint32_t)a01[l], (uint32_t)(a01[l] >> 32), (uint32_t)a23[l], (uint32_t)(a23[l] >> 32)};
        uint32_t br[2] = {(uint32_t)b01[l], (uint32_t)(b01[l] >> 32)};
        for (int i = 0; i < 8; i++) {
            uint32_t bits = (ar[i / 2] >> (16 * (i % 2))) & 0xffffu;
            int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
            int col = 2 * t + i % 2 + (i >= 4 ? 8 : 0);
            A[row][col] = (float)__ushort_as_bfloat16((unsigned short)bits);
        }
        for (int i = 0; i < 4; i++) {
            uint32_t bits = (br[i / 2] >> (16 * (i % 2))) & 0xffffu;
            B[2 * t + i % 2 + (i >= 2 ? 8 : 0)][g] = (float)__ushort_as_bfloat16((unsigned short)bits);
        }
    }
    int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; i++) {
        int row = i < 2 ? g : g + 8, col = 2 * t + i % 2;
        float s = 0.0f;
        for (int k = 0; k < 16; k++) { s += A[row][k] * B[k][col]; }
        d[i] += s;
    }
}


// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16 (llmc/tensor_core.h): the warp meets and
// shares its 32 row addresses (lane l: row l % 8 of matrix l / 8); lane l's register i gets
// matrix i's elements (row g, columns 2t, 2t + 1), or with .trans (rows 2t, 2t + 1, column g),
// low half first. The profiler counts what the instruction reads: each lane's 16-byte row, one
// request for the call site (the element reads here are not counted).
#ifdef EMU_PROFILE
EMU_NO_TSAN static void emu_ldmatrix_profile(const void* p, void* pc) {
    emu_prof.suspended--;
    emu_prof_access((void*)p, 16, 0, pc);
    emu_prof.suspended++;
}
#endif
EMU_WMMA_FN static void emu_ldmatrix_x4(uint32_t r[4], const __nv_bfloat16* p, int trans) {
    int lane = nvcuda::wmma::emu_wmma_lane();
    if (!nvcuda::wmma::emu_in_dyn_smem(p)) { emu_fail("ldmatrix: the row address is not in dynamic shared memory"); }
    if ((uintptr_t)((const unsigned char*)p - emu.dyn_smem) % 16 != 0) {
        emu_fail("ldmatrix: the row address is not 16-byte aligned");
    }
    uint64_t all[32];
    emu_warp_allgather64((uint64_t)(uintptr_t)p, all);
    EMU_WMMA_SUSPEND();
    int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; i++) {
        const __nv_bfloat16* lo;
        const __nv_bfloat16* hi;
        if (!trans) {
            const __nv_bfloat16* row = (const __nv_bfloat16*)(uintptr_t)all[i * 8 + g];
            lo = row + 2 * t;
            hi = row + 2 * t + 1;
        } else {
            lo = (const __nv_bfloat16*)(uintptr_t)all[i * 8 + 2 * t] + g;
            hi = (const __nv_bfloat16*)(uintptr_t)all[i * 8 + 2 * t + 1] + g;
        }
        r[i] = (uint32_t)lo->x | ((uint32_t)hi->x << 16);
    }
#ifdef EMU_PROFILE
    emu_ldmatrix_profile(p, __builtin_return_address(0));
#endif
    EMU_WMMA_RESUME();
}

// cp.async.cg.shared.global, 16 bytes, and cp.async.ca, 4 bytes (llmc/tensor_core.h): an asynchronous copy from global to
// shared memory that is only sure to be there after a cp.async.wait_group covering its group.
// The emulation completes each copy at the LATEST moment the ISA allows: the source is read
// when the copy is issued (the thread's 16-byte load, counted by the profiler), and shared
// memory is written only by the wait that covers the copy's group. So code that reads a tile
// before waiting for it, or waits for the wrong group, reads stale shared memory and fails its
// check; a barrier does not complete copies (as on a GPU); a thread that returns with copies
// it never waited for is an error.
#define EMU_CP_ASYNC_MAX 64  // copies in flight per thread
struct EmuCpAsync {
    unsigned char* dst;
    int group;
    int bytes;
    unsigned char data[16];
};
static EmuCpAsync emu_cp_async_queue[EMU_MAX_THREADS][EMU_CP_ASYNC_MAX];

// n = 16 (cp.async.cg) or 4 (cp.async.ca) bytes, both addresses n-byte aligned
static inline void emu_cp_async(void* dst, const void* src, int n) {
    EmuFiber* f = &emu.fibers[emu.current];
    if (!nvcuda::wmma::emu_in_dyn_smem(dst) || (uintptr_t)((unsigned char*)dst - emu.dyn_smem) % n != 0) {
        emu_fail("cp.async: the destination is not an aligned address in dynamic shared memory");
    }
    if ((uintptr_t)src % n != 0 || nvcuda::wmma::emu_in_dyn_smem(src)) {
        emu_fail("cp.async: the source is not an aligned address in global memory");
    }
    if (f->cp_pending == EMU_CP_ASYNC_MAX) { emu_fail("cp.async: more than EMU_CP_ASYNC_MAX copies in flight"); }
    EmuCpAsync* c = &emu_cp_async_queue[emu.current][f->cp_pending++];
    c->dst = (unsigned char*)dst;
    c->group = f->cp_group;
    c->bytes = n;
    if (n == 16) {  // the thread's read of the source
        uint4 v = *(const uint4*)src;
        memcpy(c->data, &v, 16);
    } else {
        uint32_t v = *(const uint32_t*)src;
        memcpy(c->data, &v, 4);
    }
}

static inline void emu_cp_async_commit(void) { emu.fibers[emu.current].cp_group++; }

// complete every copy of the committed groups but the newest n
static inline void emu_cp_async_wait(int n) {
    EmuFiber* f = &emu.fibers[emu.current];
    EmuCpAsync* q = emu_cp_async_queue[emu.current];
    int keep = 0;
    EMU_WMMA_SUSPEND();  // the async proxy's writes are not the thread's stores
    for (int i = 0; i < f->cp_pending; i++) {
        if (q[i].group < f->cp_group - n) { memcpy(q[i].dst, q[i].data, q[i].bytes); }
        else { q[keep++] = q[i]; }
    }
    EMU_WMMA_RESUME();
    f->cp_pending = keep;
}

#endif // EMU_MMA_H
