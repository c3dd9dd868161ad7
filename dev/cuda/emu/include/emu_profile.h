// The emulation's memory profiler (dev/cuda/emu/PROFILE.md): counters per kernel launch like a
// profiler's memory chart, from every global and shared memory access of every emulated thread.
//
// Built only with -DEMU_PROFILE, and the kernels' translation unit compiled with
// -fsanitize=thread but linked WITHOUT the ThreadSanitizer runtime: g++ then calls
// __tsan_readN/__tsan_writeN(address) before every load and store it could not prove local,
// and this file defines those functions. An access counts when a kernel is running and its
// address lies in device memory (a live cudaMalloc) or shared memory (the __shared__ variables,
// which this build places in a section of their own, and the launch's dynamic shared memory);
// stack and host accesses are ignored.
//
// A warp's memory instruction is one request on a GPU. Here the lanes of a warp run one after
// another, so the k-th execution of one access site (the return address of the hook: one
// instruction of the compiled kernel) by each lane of a warp is taken as one request. Exact for
// kernels whose lanes run the same code path; a lane that skips an iteration joins the next
// request of the others, as on a GPU after divergence.
// Per request:
//   global: the distinct 32-byte sectors its lanes touch (sectors per request: 4 is perfect for
//           32 floats, 2 for 32 bf16, 16 for 32 x 16 bytes);
//   shared: wavefronts, from 32 banks of 4 bytes: accesses wider than 4 bytes are served in
//           phases of 32/(bytes/4) lanes (8-byte: half-warps, 16-byte: quarter-warps), and a
//           phase needs as many wavefronts as the most distinct 4-byte words any one bank holds
//           (lanes reading the same word share it: a broadcast). Bank conflicts = wavefronts -
//           phases, as Nsight Compute counts them.
// Ideal sectors: the fewest sectors a request's distinct bytes fit in (sectors / ideal is the
// coalescing waste; a broadcast, every lane at one address, is ideal at 1 sector).
// Per launch also the unique footprint: the distinct sectors read and written (the bytes a
// kernel would move from DRAM with a perfect cache).
// Not seen: arithmetic (FLOPs come from formulas, dev/cuda/PROFILE.md), the WMMA stub's accesses
// (every lane of the stub loads the whole tile; counting is suspended inside it), cuBLASLt (host
// loops here), caches, latency, instruction issue.
#ifndef EMU_PROFILE_H
#define EMU_PROFILE_H

#include <map>
#include <vector>
#include <string>
#include <algorithm>
#include <unordered_set>

#define EMU_NO_TSAN __attribute__((no_sanitize_thread, noinline))

enum { EMU_SPACE_GLOBAL = 0, EMU_SPACE_SHARED = 1 };

struct EmuAccess {
    uintptr_t pc;
    uintptr_t addr;
    unsigned char size;
    unsigned char write;
    unsigned char space;
};

struct EmuCounters {
    // [space][write]: requests, sectors (global) or wavefronts (shared), bytes the lanes asked for
    unsigned long long requests[2][2];
    unsigned long long sectors[2][2];
    unsigned long long bytes[2][2];
    unsigned long long phases[2];          // shared: phases needed at best (no conflicts)
    unsigned long long accesses[2][2];     // lane-level accesses
    unsigned long long unique_sectors[2];  // global: distinct sectors read / written
    unsigned long long ideal_sectors[2];   // global: the fewest sectors each request's distinct bytes fit in
};

struct EmuLaunchRecord {
    std::string name, phase;
    unsigned grid[3], block[3];
    size_t dyn_smem;
    EmuCounters c;
};

struct EmuProfiler {
    int enabled;        // set by emu_profile_enable: launches are recorded
    int active;         // a fiber of a recorded launch is running
    int in_hook;        // the hook's own accesses (it is instrumented code's callee) are ignored
    int suspended;      // inside a stub whose accesses do not model the GPU's (WMMA)
    std::map<uintptr_t, uintptr_t> device_ranges;  // cudaMalloc'ed [start, end)
    uintptr_t last_lo, last_hi;                     // the range of the last hit
    std::vector<EmuAccess> events[EMU_MAX_THREADS];
    EmuCounters cur;
    std::unordered_set<uintptr_t> unique[2];
    std::vector<EmuLaunchRecord> records;
    std::string phase;
};
static EmuProfiler emu_prof;

extern "C" char __start_emu_shared[] __attribute__((weak));
extern "C" char __stop_emu_shared[] __attribute__((weak));

EMU_NO_TSAN static void emu_prof_register(void* p, size_t bytes) {
    if (p == NULL) { return; }
    emu_prof.in_hook++;
    emu_prof.device_ranges[(uintptr_t)p] = (uintptr_t)p + (bytes > 0 ? bytes : 1);
    emu_prof.in_hook--;
}
EMU_NO_TSAN static void emu_prof_unregister(void* p) {
    emu_prof.in_hook++;
    emu_prof.device_ranges.erase((uintptr_t)p);
    emu_prof.last_lo = emu_prof.last_hi = 0;
    emu_prof.in_hook--;
}

EMU_NO_TSAN static int emu_prof_space(uintptr_t a) {
    if (__start_emu_shared != NULL && a >= (uintptr_t)__start_emu_shared && a < (uintptr_t)__stop_emu_shared) {
        return EMU_SPACE_SHARED;
    }
    if (emu.dyn_smem_bytes > 0 && a >= (uintptr_t)emu.dyn_smem && a < (uintptr_t)emu.dyn_smem + emu.dyn_smem_bytes) {
        return EMU_SPACE_SHARED;
    }
    if (a >= emu_prof.last_lo && a < emu_prof.last_hi) { return EMU_SPACE_GLOBAL; }
    std::map<uintptr_t, uintptr_t>::iterator it = emu_prof.device_ranges.upper_bound(a);
    if (it == emu_prof.device_ranges.begin()) { return -1; }
    --it;
    if (a >= it->second) { return -1; }
    emu_prof.last_lo = it->first;
    emu_prof.last_hi = it->second;
    return EMU_SPACE_GLOBAL;
}

EMU_NO_TSAN static void emu_prof_access(void* p, int size, int write, void* pc) {
    if (!emu_prof.active || emu_prof.in_hook || emu_prof.suspended) { return; }
    emu_prof.in_hook++;
    int space = emu_prof_space((uintptr_t)p);
    if (space >= 0) {
        EmuAccess e = {(uintptr_t)pc, (uintptr_t)p, (unsigned char)size, (unsigned char)write, (unsigned char)space};
        emu_prof.events[emu.current].push_back(e);
    }
    emu_prof.in_hook--;
}

// ThreadSanitizer's instrumentation entry points (GCC), answered by the profiler
#define EMU_TSAN_HOOK(N)                                                                                        \
    extern "C" EMU_NO_TSAN void __tsan_read##N(void* p) { emu_prof_access(p, N, 0, __builtin_return_address(0)); } \
    extern "C" EMU_NO_TSAN void __tsan_write##N(void* p) { emu_prof_access(p, N, 1, __builtin_return_address(0)); } \
    extern "C" EMU_NO_TSAN void __tsan_unaligned_read##N(void* p) { emu_prof_access(p, N, 0, __builtin_return_address(0)); } \
    extern "C" EMU_NO_TSAN void __tsan_unaligned_write##N(void* p) { emu_prof_access(p, N, 1, __builtin_return_address(0)); } \
    extern "C" EMU_NO_TSAN void __tsan_volatile_read##N(void* p) { emu_prof_access(p, N, 0, __builtin_return_address(0)); } \
    extern "C" EMU_NO_TSAN void __tsan_volatile_write##N(void* p) { emu_prof_access(p, N, 1, __builtin_return_address(0)); }
EMU_TSAN_HOOK(1)
EMU_TSAN_HOOK(2)
EMU_TSAN_HOOK(4)
EMU_TSAN_HOOK(8)
EMU_TSAN_HOOK(16)
#undef EMU_TSAN_HOOK
// a range (a block copy): counted as one access per 4 bytes, which is how a kernel's loop would read it
extern "C" EMU_NO_TSAN void __tsan_read_range(void* p, unsigned long n) {
    for (unsigned long i = 0; i < n; i += 4) { emu_prof_access((char*)p + i, n - i < 4 ? (int)(n - i) : 4, 0, __builtin_return_address(0)); }
}
extern "C" EMU_NO_TSAN void __tsan_write_range(void* p, unsigned long n) {
    for (unsigned long i = 0; i < n; i += 4) { emu_prof_access((char*)p + i, n - i < 4 ? (int)(n - i) : 4, 1, __builtin_return_address(0)); }
}
extern "C" EMU_NO_TSAN void __tsan_func_entry(void*) {}
extern "C" EMU_NO_TSAN void __tsan_func_exit(void) {}
extern "C" EMU_NO_TSAN void __tsan_init(void) {}
extern "C" EMU_NO_TSAN void __tsan_vptr_update(void*, void*) {}
extern "C" EMU_NO_TSAN void __tsan_vptr_read(void*) {}

// the requests of one block: group each warp's accesses by (site, k-th execution by its lane)
struct EmuLaneAccess {
    uintptr_t pc;
    unsigned occ;
    unsigned lane;
    uintptr_t addr;
    unsigned char size, write, space;
};
EMU_NO_TSAN static bool emu_lane_access_less(const EmuLaneAccess& a, const EmuLaneAccess& b) {
    if (a.pc != b.pc) { return a.pc < b.pc; }
    return a.occ < b.occ;
}

// wavefronts of one shared-memory request of `size`-byte accesses (lane i at addrs[i])
EMU_NO_TSAN static void emu_shared_wavefronts(const std::vector<EmuLaneAccess>& g, size_t i0, size_t i1,
                                              unsigned long long* wavefronts, unsigned long long* phases) {
    int size = g[i0].size;
    int words = size > 4 ? size / 4 : 1;
    int lanes_per_phase = 32 / words;
    for (int p0 = 0; p0 < 32; p0 += lanes_per_phase) {
        std::vector<uintptr_t> per_bank[32];
        int any = 0;
        for (size_t i = i0; i < i1; i++) {
            if ((int)g[i].lane < p0 || (int)g[i].lane >= p0 + lanes_per_phase) { continue; }
            any = 1;
            for (int w = 0; w < words; w++) {
                uintptr_t word = (g[i].addr >> 2) + (uintptr_t)w;
                per_bank[word & 31].push_back(word);
            }
        }
        if (!any) { continue; }
        unsigned long long worst = 0;
        for (int b = 0; b < 32; b++) {
            std::vector<uintptr_t>& v = per_bank[b];
            std::sort(v.begin(), v.end());
            unsigned long long distinct = (unsigned long long)(std::unique(v.begin(), v.end()) - v.begin());
            if (distinct > worst) { worst = distinct; }
        }
        *wavefronts += worst;
        *phases += 1;
    }
}

EMU_NO_TSAN static void emu_prof_block_end(void) {
    emu_prof.in_hook++;
    EmuCounters* c = &emu_prof.cur;
    std::vector<EmuLaneAccess> g;
    std::map<uintptr_t, unsigned> occ;
    std::vector<uintptr_t> sectors;
    std::vector<std::pair<uintptr_t, uintptr_t> > spans;
    for (int w0 = 0; w0 < emu.nthreads; w0 += 32) {
        int w1 = w0 + 32 < emu.nthreads ? w0 + 32 : emu.nthreads;
        g.clear();
        for (int t = w0; t < w1; t++) {
            occ.clear();
            for (const EmuAccess& e : emu_prof.events[t]) {
                EmuLaneAccess a = {e.pc, occ[e.pc]++, (unsigned)(t - w0), e.addr, e.size, e.write, e.space};
                g.push_back(a);
            }
            emu_prof.events[t].clear();
        }
        std::stable_sort(g.begin(), g.end(), emu_lane_access_less);
        for (size_t i0 = 0; i0 < g.size();) {
            size_t i1 = i0 + 1;
            while (i1 < g.size() && g[i1].pc == g[i0].pc && g[i1].occ == g[i0].occ) { i1++; }
            int sp = g[i0].space, wr = g[i0].write;
            c->requests[sp][wr]++;
            for (size_t i = i0; i < i1; i++) {
                c->bytes[sp][wr] += g[i].size;
                c->accesses[sp][wr]++;
            }
            if (sp == EMU_SPACE_GLOBAL) {
                sectors.clear();
                for (size_t i = i0; i < i1; i++) {
                    for (uintptr_t s = g[i].addr >> 5; s <= (g[i].addr + g[i].size - 1) >> 5; s++) {
                        sectors.push_back(s);
                        emu_prof.unique[wr].insert(s);
                    }
                }
                std::sort(sectors.begin(), sectors.end());
                c->sectors[sp][wr] += (unsigned long long)(std::unique(sectors.begin(), sectors.end()) - sectors.begin());
                // the distinct bytes asked for (lanes reading one address count it once), packed
                spans.clear();
                for (size_t i = i0; i < i1; i++) { spans.push_back(std::make_pair(g[i].addr, g[i].addr + g[i].size)); }
                std::sort(spans.begin(), spans.end());
                unsigned long long distinct = 0;
                uintptr_t covered = 0;
                for (const std::pair<uintptr_t, uintptr_t>& sp2 : spans) {
                    uintptr_t lo = sp2.first > covered ? sp2.first : covered;
                    if (sp2.second > lo) { distinct += sp2.second - lo; }
                    if (sp2.second > covered) { covered = sp2.second; }
                }
                c->ideal_sectors[wr] += (distinct + 31) / 32;
            } else {
                emu_shared_wavefronts(g, i0, i1, &c->sectors[sp][wr], &c->phases[wr]);
            }
            i0 = i1;
        }
    }
    emu_prof.in_hook--;
}

EMU_NO_TSAN static void emu_prof_launch_begin(void) {
    emu_prof.in_hook++;
    memset(&emu_prof.cur, 0, sizeof(emu_prof.cur));
    emu_prof.unique[0].clear();
    emu_prof.unique[1].clear();
    emu_prof.in_hook--;
}

EMU_NO_TSAN static void emu_prof_launch_end(const char* name, dim3 grid, dim3 block, size_t smem) {
    emu_prof.in_hook++;
    EmuLaunchRecord r;
    r.name = name;
    r.phase = emu_prof.phase;
    r.grid[0] = grid.x; r.grid[1] = grid.y; r.grid[2] = grid.z;
    r.block[0] = block.x; r.block[1] = block.y; r.block[2] = block.z;
    r.dyn_smem = smem;
    r.c = emu_prof.cur;
    r.c.unique_sectors[0] = emu_prof.unique[0].size();
    r.c.unique_sectors[1] = emu_prof.unique[1].size();
    emu_prof.records.push_back(r);
    emu_prof.in_hook--;
}

// ---- the API a profiling driver uses

EMU_NO_TSAN static void emu_profile_enable(int on) { emu_prof.enabled = on; }
EMU_NO_TSAN static void emu_profile_phase(const char* phase) {
    emu_prof.in_hook++;
    emu_prof.phase = phase;
    emu_prof.in_hook--;
}
EMU_NO_TSAN static const std::vector<EmuLaunchRecord>& emu_profile_records(void) { return emu_prof.records; }
EMU_NO_TSAN static void emu_profile_clear(void) {
    emu_prof.in_hook++;
    emu_prof.records.clear();
    emu_prof.in_hook--;
}

// one CSV row per recorded launch; returns 0, or -1 if the file cannot be written
EMU_NO_TSAN static int emu_profile_write_csv(const char* path) {
    emu_prof.in_hook++;
    FILE* f = fopen(path, "w");
    if (f == NULL) { emu_prof.in_hook--; return -1; }
    fprintf(f, "phase,kernel,grid_x,grid_y,grid_z,block_x,block_y,block_z,dyn_smem,"
               "gld_requests,gld_sectors,gld_bytes,gst_requests,gst_sectors,gst_bytes,"
               "gld_unique_sectors,gst_unique_sectors,gld_ideal_sectors,gst_ideal_sectors,"
               "shld_requests,shld_wavefronts,shld_phases,shld_bytes,shst_requests,shst_wavefronts,shst_phases,shst_bytes\n");
    for (const EmuLaunchRecord& r : emu_prof.records) {
        const EmuCounters& c = r.c;
        std::string name = r.name;
        std::replace(name.begin(), name.end(), ',', ';');
        fprintf(f, "%s,%s,%u,%u,%u,%u,%u,%u,%zu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n",
                r.phase.c_str(), name.c_str(), r.grid[0], r.grid[1], r.grid[2], r.block[0], r.block[1], r.block[2], r.dyn_smem,
                c.requests[0][0], c.sectors[0][0], c.bytes[0][0], c.requests[0][1], c.sectors[0][1], c.bytes[0][1],
                c.unique_sectors[0], c.unique_sectors[1], c.ideal_sectors[0], c.ideal_sectors[1],
                c.requests[1][0], c.sectors[1][0], c.phases[0], c.bytes[1][0], c.requests[1][1], c.sectors[1][1], c.phases[1],
                c.bytes[1][1]);
    }
    int bad = ferror(f);
    if (fclose(f) != 0) { bad = 1; }
    emu_prof.in_hook--;
    return bad ? -1 : 0;
}

#endif // EMU_PROFILE_H
