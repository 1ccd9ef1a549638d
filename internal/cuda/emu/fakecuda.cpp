// A stand-in for libcuda.so.1 that runs package cuda's kernels on the host (package emulator builds it):
// device memory is host memory; a launch runs the blocks of its grid on a few host threads, each
// block's CUDA threads as fibers (ucontext) that switch at barriers (__syncthreads, and the two
// barriers of a warp shuffle), in an order that changes from one barrier to the next so that a
// missing barrier shows; streams are synchronous, graphs replay recorded operations. It checks what
// the driver would refuse (block sizes, shared memory above 48 KB without the attribute) and what a
// GPU would not show at once: writes past the end of an allocation or of the dynamic shared memory
// (guard bytes), reads of memory nobody wrote (fresh memory and shared memory are filled with NaN
// bytes), and barriers that the threads of a block or warp do not all reach (a deadlock on a GPU).
#include <setjmp.h>
#include <ucontext.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "../kernels/mamba.cu"

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

const unsigned char kGuard = 0xA5;
const size_t kGuardBytes = 256;

// Fiber is one CUDA thread of the block being run.
struct Fiber {
  ucontext_t ctx;  // the fresh context a fiber starts from (setcontext); later switches use jb
  jmp_buf jb;
  bool started;
  dim3 idx;
  int warp;
  int state;  // runnable, at the block barrier, at its warp barrier, or done
};
enum { kRunnable, kAtBlock, kAtWarp, kDone };

const size_t kStackBytes = 256 << 10;

// Block is the state of the block a host thread runs: its fibers, the scheduler's context, shared
// memory and the lanes of warp shuffles.
struct Block {
  std::vector<Fiber> fibers;
  std::vector<std::unique_ptr<char[]>> stacks;  // kStackBytes each, reused by later launches
  jmp_buf sched;
  int running = -1;
  double lanes[32][32];
  std::vector<unsigned char> dyn;
  size_t dynBytes = 0;
  std::map<int, std::vector<unsigned char>> stat;
};

thread_local Block* cur = nullptr;
thread_local void (*curRun)(const void*) = nullptr;
thread_local const void* curParams = nullptr;

struct Kernel {
  std::string name;
  void (*run)(const void* params);
  size_t paramBytes;
  int maxShared = 48 << 10;
};

#define KERNEL(name)                                                                                   \
  [] {                                                                                                 \
    using P = std::remove_cv_t<std::remove_reference_t<decltype(*first_arg(name))>>;                  \
    auto* k = new Kernel{#name, [](const void* p) { name(*static_cast<const P*>(p)); }, sizeof(P)}; \
    return k;                                                                                          \
  }()

template <class P>
P* first_arg(void (*)(P)) {
  return nullptr;
}

std::map<std::string, Kernel*>& registry() {
  static std::map<std::string, Kernel*> r = [] {
    std::map<std::string, Kernel*> m;
    for (Kernel* k : {KERNEL(scan_fwd_g1), KERNEL(scan_fwd_g2), KERNEL(scan_fwd_g4), KERNEL(scan_fwd_g8), KERNEL(scan_fwd_g16),
                      KERNEL(scan_bwd_g1), KERNEL(scan_bwd_g2), KERNEL(scan_bwd_g4), KERNEL(scan_bwd_g8), KERNEL(scan_bwd_g16),
                      KERNEL(scan_reduce_bc), KERNEL(scan_reduce_params),
                      KERNEL(rmsnorm_fwd), KERNEL(rmsnorm_bwd_dx), KERNEL(colsum_partial), KERNEL(sum_parts),
                      KERNEL(conv_fwd), KERNEL(conv_bwd_dc), KERNEL(conv_bwd_dx), KERNEL(conv_bwd_dw_part),
                      KERNEL(add_fwd), KERNEL(gate_fwd), KERNEL(gate_bwd), KERNEL(columns_fwd), KERNEL(columns_bwd),
                      KERNEL(bias_add), KERNEL(scale_f32), KERNEL(f32_to_bf16), KERNEL(bf16_to_f32), KERNEL(embed_fwd),
                      KERNEL(embed_bwd), KERNEL(ce_fwd), KERNEL(ce_sum), KERNEL(ce_bwd), KERNEL(gradnorm_part),
                      KERNEL(gradnorm_finish), KERNEL(adamw_step), KERNEL(conv_step), KERNEL(ssm_step)})
      m[k->name] = k;
    return m;
  }();
  return r;
}

// Allocations, with guard bytes after each.
std::mutex allocMu;
std::map<uintptr_t, size_t> allocs;

void checkGuards(const char* when) {
  std::lock_guard<std::mutex> l(allocMu);
  for (auto& [p, n] : allocs) {
    const unsigned char* g = reinterpret_cast<const unsigned char*>(p) + n;
    for (size_t i = 0; i < kGuardBytes; i++)
      if (g[i] != kGuard) {
        std::fprintf(stderr, "fakecuda: %s: write past the end of an allocation of %zu bytes at %#lx (+%zu)\n", when, n,
                     (unsigned long)p, i);
        std::abort();
      }
  }
}

// With MAMBA_EMU_PROFILE set, the time spent in each kernel is printed when a context is released.
struct Profile {
  std::mutex mu;
  std::map<std::string, std::pair<double, long>> t;
  void print() {
    if (!std::getenv("MAMBA_EMU_PROFILE")) return;
    std::lock_guard<std::mutex> l(mu);
    for (auto& [name, v] : t) std::fprintf(stderr, "fakecuda: %-20s %8.3f s %6ld launches\n", name.c_str(), v.first, v.second);
  }
} profile;

void runBlocks(Kernel* k, dim3 grid, dim3 block, size_t smem, const std::vector<unsigned char>& params);

void runLaunch(Kernel* k, dim3 grid, dim3 block, size_t smem, const std::vector<unsigned char>& params) {
  const auto t0 = std::chrono::steady_clock::now();
  runBlocks(k, grid, block, smem, params);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::lock_guard<std::mutex> l(profile.mu);
  auto& e = profile.t[k->name];
  e.first += dt;
  e.second++;
}

// fiberMain runs the kernel as the fiber cur->running, then goes back to the scheduler for good.
// Switches between fibers and the scheduler are _setjmp/_longjmp (no system call); only a fiber's
// start goes through setcontext.
void fiberMain() {
  curRun(curParams);
  cur->fibers[cur->running].state = kDone;
  _longjmp(cur->sched, 1);
}

// wait parks the running fiber at a barrier until the scheduler releases it.
void wait(int at) {
  Block* b = cur;
  Fiber& f = b->fibers[b->running];
  f.state = at;
  if (!_setjmp(f.jb)) _longjmp(b->sched, 1);
  threadIdx = f.idx;
}

// runBlock runs one block to its end: every runnable fiber in turn (forward or backward order,
// alternating), then the release of a barrier that every fiber still running has reached.
void runBlock(Kernel* k, Block& b, int n) {
  for (int t = 0; t < n; t++) {
    Fiber& f = b.fibers[t];
    f.state = kRunnable;
    f.started = false;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = b.stacks[t].get();
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiberMain, 0);
  }
  for (int round = 0;; round++) {
    bool ran = false;
    for (int i = 0; i < n; i++) {
      const int t = round % 2 ? n - 1 - i : i;
      if (b.fibers[t].state != kRunnable) continue;
      Fiber& f = b.fibers[t];
      b.running = t;
      threadIdx = f.idx;
      if (!_setjmp(b.sched)) {
        if (!f.started) {
          f.started = true;
          setcontext(&f.ctx);
        }
        _longjmp(f.jb, 1);
      }
      ran = true;
    }
    if (ran) continue;
    int live = 0, atBlock = 0;
    int warpLive[32] = {}, warpAt[32] = {};
    for (const Fiber& f : b.fibers) {
      if (f.state == kDone) continue;
      live++;
      warpLive[f.warp]++;
      if (f.state == kAtBlock) atBlock++;
      if (f.state == kAtWarp) warpAt[f.warp]++;
    }
    if (live == 0) return;
    bool released = false;
    if (atBlock == live) {
      for (Fiber& f : b.fibers)
        if (f.state == kAtBlock) f.state = kRunnable;
      released = true;
    } else {
      for (Fiber& f : b.fibers)
        if (f.state == kAtWarp && warpAt[f.warp] == warpLive[f.warp]) f.state = kRunnable, released = true;
    }
    if (!released) {
      std::fprintf(stderr, "fakecuda: %s: block (%u,%u,%u) deadlocks: %d threads running, %d at __syncthreads, the rest at warp barriers\n",
                   k->name.c_str(), blockIdx.x, blockIdx.y, blockIdx.z, live, atBlock);
      std::abort();
    }
  }
}

// Blocks are kept for later launches, with their fibers' stacks.
std::mutex poolMu;
std::vector<Block*> pool;

Block* takeBlock() {
  std::lock_guard<std::mutex> l(poolMu);
  if (pool.empty()) return new Block;
  Block* b = pool.back();
  pool.pop_back();
  return b;
}

void giveBlock(Block* b) {
  std::lock_guard<std::mutex> l(poolMu);
  pool.push_back(b);
}

void runBlocks(Kernel* k, dim3 grid, dim3 block, size_t smem, const std::vector<unsigned char>& params) {
  const int n = int(block.x * block.y * block.z);
  const long blocks = long(grid.x) * grid.y * grid.z;
  const int workers = int(std::min<long>(blocks, std::max(1u, std::thread::hardware_concurrency())));
  std::atomic<long> next{0};
  std::atomic<bool> overrun{false};
  auto work = [&] {
    Block& b = *takeBlock();
    b.fibers.resize(n);
    while (int(b.stacks.size()) < n) b.stacks.emplace_back(new char[kStackBytes]);
    for (int t = 0; t < n; t++) {
      b.fibers[t].idx = dim3{unsigned(t % block.x), unsigned(t / block.x % block.y), unsigned(t / (block.x * block.y))};
      b.fibers[t].warp = t / 32;
    }
    cur = &b;
    curRun = k->run;
    curParams = params.data();
    blockDim = block;
    gridDim = grid;
    for (long i; (i = next++) < blocks;) {
      blockIdx = dim3{unsigned(i % grid.x), unsigned(i / grid.x % grid.y), unsigned(i / (long(grid.x) * grid.y))};
      b.dyn.assign(smem + kGuardBytes, 0xff);
      std::fill(b.dyn.begin() + smem, b.dyn.end(), kGuard);
      b.dynBytes = smem;
      b.stat.clear();
      runBlock(k, b, n);
      for (size_t j = smem; j < smem + kGuardBytes; j++)
        if (b.dyn[j] != kGuard) overrun = true;
    }
    cur = nullptr;
    giveBlock(&b);
  };
  std::vector<std::thread> ts;
  for (int w = 1; w < workers; w++) ts.emplace_back(work);
  work();
  for (auto& th : ts) th.join();
  if (overrun) {
    std::fprintf(stderr, "fakecuda: %s wrote past its %zu bytes of dynamic shared memory\n", k->name.c_str(), smem);
    std::abort();
  }
  checkGuards(k->name.c_str());
}

struct Op {
  Kernel* k = nullptr;  // a launch; else a host call (fn), a copy (src) or a memset
  dim3 grid, block;
  size_t smem = 0;
  std::vector<unsigned char> params;
  unsigned char* dst = nullptr;
  const unsigned char* src = nullptr;
  unsigned value = 0;
  size_t count = 0, width = 0;
  void (*fn)(void*) = nullptr;
  void* arg = nullptr;
};

typedef int CUresult;
bool capturing = false;
std::vector<Op> captured;

// runOp runs a recorded operation that is not a launch.
void runOp(const Op& o) {
  if (o.fn) {
    o.fn(o.arg);
  } else if (o.src) {
    std::memmove(o.dst, o.src, o.count);
  } else {
    for (size_t i = 0; i < o.count; i++) std::memcpy(o.dst + i * o.width, &o.value, o.width);
  }
}

CUresult submit(const Op& o) {
  if (capturing) captured.push_back(o);
  else runOp(o);
  return 0;
}

const std::map<int, std::pair<const char*, const char*>> errorNames = {
    {0, {"CUDA_SUCCESS", "no error"}},
    {1, {"CUDA_ERROR_INVALID_VALUE", "invalid argument"}},
    {2, {"CUDA_ERROR_OUT_OF_MEMORY", "out of memory"}},
    {100, {"CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"}},
    {500, {"CUDA_ERROR_NOT_FOUND", "named symbol not found"}},
    {901, {"CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"}},
};

}  // namespace

void __syncthreads() { wait(kAtBlock); }

double emu_shfl(double v, int src) {
  const int lane = int(threadIdx.x & 31), w = int(threadIdx.x >> 5);
  cur->lanes[w][lane] = v;
  wait(kAtWarp);
  double r = cur->lanes[w][src];
  wait(kAtWarp);
  return r;
}

unsigned dyn_smem_bytes() { return unsigned(cur->dynBytes); }
char* emu_dyn_smem() { return reinterpret_cast<char*>(cur->dyn.data()); }

char* emu_static_smem(size_t bytes, int id) {
  auto& v = cur->stat[id];
  if (v.empty()) v.assign(bytes, 0xff);
  return reinterpret_cast<char*>(v.data());
}

void __trap() {
  std::fprintf(stderr, "fakecuda: __trap in a kernel\n");
  std::abort();
}

extern "C" {

CUresult cuInit(unsigned) { return 0; }
CUresult cuDriverGetVersion(int* v) { *v = 13000; return 0; }
CUresult cuDeviceGetCount(int* n) { *n = 1; return 0; }
CUresult cuDeviceGet(int* d, int ord) { *d = ord; return ord == 0 ? 0 : 1; }
CUresult cuDeviceGetName(char* s, int len, int) { std::snprintf(s, len, "host emulator"); return 0; }
CUresult cuDeviceGetAttribute(int* v, int attr, int) {
  switch (attr) {
    case 16: *v = 1; break;            // multiprocessors
    case 75: *v = 9; break;            // compute capability
    case 76: *v = 0; break;
    case 97: *v = 227 << 10; break;    // shared memory per block, opt-in
    case 38: *v = 50 << 20; break;     // L2
    case 36: *v = 2619000; break;      // memory clock, kHz
    case 37: *v = 6144; break;         // bus width
    default: *v = 0;
  }
  return 0;
}
CUresult cuDeviceTotalMem_v2(size_t* n, int) { *n = size_t(8) << 30; return 0; }
CUresult cuDevicePrimaryCtxRetain(void** c, int) { *c = reinterpret_cast<void*>(0x1); return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int) {
  profile.print();
  return 0;
}
CUresult cuCtxSetCurrent(void*) { return 0; }
CUresult cuCtxSynchronize() { return 0; }
CUresult cuMemAlloc_v2(uintptr_t* p, size_t n) {
  if (n == 0) return 1;
  void* m = std::aligned_alloc(256, (n + kGuardBytes + 255) / 256 * 256);
  if (!m) return 2;
  std::memset(m, 0xff, n);
  std::memset(static_cast<char*>(m) + n, kGuard, kGuardBytes);
  std::lock_guard<std::mutex> l(allocMu);
  *p = reinterpret_cast<uintptr_t>(m);
  allocs[*p] = n;
  return 0;
}
CUresult cuMemFree_v2(uintptr_t p) {
  checkGuards("cuMemFree");
  std::lock_guard<std::mutex> l(allocMu);
  if (!allocs.erase(p)) return 1;
  std::free(reinterpret_cast<void*>(p));
  return 0;
}
CUresult cuMemGetInfo_v2(size_t* f, size_t* t) { *f = *t = size_t(8) << 30; return 0; }
static CUresult memsetN(uintptr_t p, unsigned v, size_t n, size_t w) {
  Op o;
  o.dst = reinterpret_cast<unsigned char*>(p);
  o.value = v;
  o.count = n;
  o.width = w;
  return submit(o);
}
CUresult cuMemsetD32Async(uintptr_t p, unsigned v, size_t n, void*) { return memsetN(p, v, n, 4); }
CUresult cuMemsetD8Async(uintptr_t p, unsigned char v, size_t n, void*) { return memsetN(p, v, n, 1); }
CUresult cuMemcpyHtoDAsync_v2(uintptr_t d, const void* s, size_t n, void*) {
  if (capturing) return 901;
  std::memcpy(reinterpret_cast<void*>(d), s, n);
  return 0;
}
CUresult cuMemcpyDtoHAsync_v2(void* d, uintptr_t s, size_t n, void*) {
  if (capturing) return 901;
  std::memcpy(d, reinterpret_cast<void*>(s), n);
  return 0;
}
CUresult cuMemcpyDtoDAsync_v2(uintptr_t d, uintptr_t s, size_t n, void*) {
  Op o;
  o.dst = reinterpret_cast<unsigned char*>(d);
  o.src = reinterpret_cast<const unsigned char*>(s);
  o.count = n;
  return submit(o);
}
// emu_submit runs fn(arg) in stream order: at once (returning 0), or at each replay of the graph
// being captured (returning 1: arg must then outlive the graph). The stand-in cuBLAS submits its
// products through it.
int emu_submit(void (*fn)(void*), void* arg) {
  Op o;
  o.fn = fn;
  o.arg = arg;
  const bool recorded = capturing;
  submit(o);
  return recorded ? 1 : 0;
}
CUresult cuStreamCreate(void** s, unsigned) { *s = reinterpret_cast<void*>(0x2); return 0; }
CUresult cuStreamDestroy_v2(void*) { return 0; }
CUresult cuStreamSynchronize(void*) { return capturing ? 901 : 0; }
CUresult cuModuleLoadData(void** m, const void*) { *m = reinterpret_cast<void*>(0x3); return 0; }
CUresult cuModuleUnload(void*) { return 0; }
CUresult cuModuleGetFunction(void** f, void*, const char* name) {
  auto it = registry().find(name);
  if (it == registry().end()) return 500;
  *f = it->second;
  return 0;
}
CUresult cuFuncSetAttribute(void* f, int attr, int v) {
  if (attr != 8 || v > (227 << 10)) return 1;
  static_cast<Kernel*>(f)->maxShared = v;
  return 0;
}
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem,
                        void*, void** params, void** extra) {
  Kernel* k = static_cast<Kernel*>(f);
  if (extra || !params || bx * by * bz == 0 || bx * by * bz > 1024 || gx == 0 || gy == 0 || gz == 0 || gy > 65535 ||
      gz > 65535 || int(smem) > k->maxShared) {
    std::fprintf(stderr, "fakecuda: %s: launch refused: grid %u,%u,%u block %u,%u,%u smem %u (allowed %d)\n", k->name.c_str(),
                 gx, gy, gz, bx, by, bz, smem, k->maxShared);
    return 1;
  }
  Op o;
  o.k = k;
  o.grid = dim3{gx, gy, gz};
  o.block = dim3{bx, by, bz};
  o.smem = smem;
  const unsigned char* p = static_cast<const unsigned char*>(params[0]);
  o.params.assign(p, p + k->paramBytes);
  if (capturing) captured.push_back(o);
  else runLaunch(k, o.grid, o.block, o.smem, o.params);
  return 0;
}
CUresult cuEventCreate(void** e, unsigned) { *e = new double(0); return 0; }
CUresult cuEventRecord(void* e, void*) {
  *static_cast<double*>(e) = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  return 0;
}
CUresult cuEventSynchronize(void*) { return 0; }
CUresult cuEventElapsedTime(float* ms, void* a, void* b) {
  *ms = float(*static_cast<double*>(b) - *static_cast<double*>(a));
  return 0;
}
CUresult cuEventDestroy_v2(void* e) { delete static_cast<double*>(e); return 0; }
CUresult cuGetErrorName(CUresult r, const char** s) {
  auto it = errorNames.find(r);
  if (it == errorNames.end()) return 1;
  *s = it->second.first;
  return 0;
}
CUresult cuGetErrorString(CUresult r, const char** s) {
  auto it = errorNames.find(r);
  if (it == errorNames.end()) return 1;
  *s = it->second.second;
  return 0;
}
CUresult cuStreamBeginCapture_v2(void*, int) {
  if (capturing) return 1;
  capturing = true;
  captured.clear();
  return 0;
}
CUresult cuStreamEndCapture(void*, void** g) {
  if (!capturing) return 1;
  capturing = false;
  *g = new std::vector<Op>(captured);
  return 0;
}
CUresult cuGraphInstantiateWithFlags(void** e, void* g, unsigned long long) { *e = g; return 0; }
CUresult cuGraphLaunch(void* e, void*) {
  for (const Op& o : *static_cast<std::vector<Op>*>(e)) {
    if (o.k) runLaunch(o.k, o.grid, o.block, o.smem, o.params);
    else runOp(o);
  }
  return 0;
}
CUresult cuGraphExecDestroy(void*) { return 0; }
CUresult cuGraphDestroy(void* g) { delete static_cast<std::vector<Op>*>(g); return 0; }
}
