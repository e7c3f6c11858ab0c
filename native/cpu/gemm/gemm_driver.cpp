// The CPU GEMM driver (GotoBLAS/BLIS loop nest over packed panels):
//   whole A and B packed once per call (B may come pre-packed),
//   units of work = (MC rows) × (NC columns) blocks, claimed by pool threads;
//   inside a unit: K in KC blocks, then 32-column B panels (L1-resident for
//   the inner loop), then MR-row A panels (L2-resident), each a register tile.
// Partial sums across KC blocks live in a per-thread tile buffer so that the
// output is written exactly once, by the fused epilogue.
#include "cpu/gemm/gemm_driver.h"

#include <algorithm>

#include "cpu/gemm/gemm_pack.h"
#include "tessera/cpu.h"
#include "tessera/pool.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::gemm {
namespace {

constexpr int64_t kKC = 256;      // 256 k × 32 columns × 4 B = 32 KiB B panel: fits L1 (48 KiB)
constexpr int kMCRows = 112;      // rows per unit: the A block (≤ 112 × 256 × 4 B) stays in L2
constexpr int kNCPanels = 8;      // 32-column panels per unit (256 columns)

struct Unit {
  int64_t i0, i1;  // A panels (of mr rows)
  int64_t j0, j1;  // B panels (of 32 columns)
};

void run_unit(const GemmJob& job, const Unit& u, int tid) {
  const IsaKernels& ker = *job.ker;
  const int mr = ker.mr;
  const bool pairs_a = job.a_format == DType::kBF16;
  const bool pairs_b = job.b_format == DType::kBF16;
  const bool widen_b = pairs_b && !pairs_a;  // bf16 weights on a CPU without a bf16 dot product
  const int64_t krows = (job.K + 1) / 2;     // pair rows of the bf16 layouts
  const int64_t a_panel = (pairs_a ? krows : job.K) * mr;   // 4-byte words per A panel
  const int64_t b_panel = (pairs_b ? krows : job.K) * kNR;  // 4-byte words per B panel
  const int64_t ni = u.i1 - u.i0;
  float* tiles = nullptr;
  if (job.K > kKC)
    tiles = static_cast<float*>(thread_scratch(tid, 0, sizeof(float) * (u.j1 - u.j0) * ni * mr * kNR));
  float* wide = widen_b || job.b_fill ? static_cast<float*>(thread_scratch(tid, 1, sizeof(float) * kKC * kNR)) : nullptr;

  for (int64_t pc = 0; pc < job.K; pc += kKC) {
    const int64_t kc = std::min(kKC, job.K - pc);
    const bool last = pc + kc >= job.K;
    for (int64_t j = u.j0; j < u.j1; ++j) {
      const auto* bw = job.b ? static_cast<const uint32_t*>(job.b) + j * b_panel : nullptr;
      const float* bf = nullptr;
      if (job.b_fill) {
        job.b_fill(job.b_ctx, j, pc, kc, wide);
        bf = wide;
      } else if (widen_b) {
        if (ker.widen_bf16) ker.widen_bf16(bw, pc, kc, wide);
        else unpack_bf16_panel(bw, pc, kc, wide);
        bf = wide;
      } else if (!pairs_b) {
        bf = reinterpret_cast<const float*>(bw) + pc * kNR;
      }
      const int cols = static_cast<int>(std::min<int64_t>(kNR, job.N - j * kNR));
      // The f32 B block used next (panel j + 1 at this K block, else the
      // unit's first panel at the next K block), prefetched to L2 in slices
      // by this panel's tiles: weights come from memory once per call.
      const float* next = nullptr;
      int64_t next_lines = 0;
      if (bf && !job.b_fill && !widen_b) {
        const float* b0 = static_cast<const float*>(job.b);
        if (j + 1 < u.j1) next = b0 + (j + 1) * b_panel + pc * kNR, next_lines = kc * kNR / 16;
        else if (!last) next = b0 + u.j0 * b_panel + (pc + kc) * kNR, next_lines = std::min(kKC, job.K - pc - kc) * kNR / 16;
      }
      const int64_t slice = (next_lines + ni - 1) / ni;
      for (int64_t i = u.i0; i < u.i1; ++i) {
        Tile t{i * mr, j * kNR, static_cast<int>(std::min<int64_t>(mr, job.M - i * mr)), cols};
        if (next) {
          const int64_t l0 = std::min(next_lines, (i - u.i0) * slice);
          t.pf = reinterpret_cast<const char*>(next) + l0 * 64;
          t.pf_lines = std::min(next_lines, l0 + slice) - l0;
        }
        float* acc = tiles ? tiles + ((j - u.j0) * ni + (i - u.i0)) * mr * kNR : nullptr;
        const Epilogue* epi = last ? &job.epi : nullptr;
        const auto* aw = static_cast<const uint32_t*>(job.a) + i * a_panel;
        if (pairs_a)
          ker.bf16(t, kc, aw + (pc / 2) * mr, bw + (pc / 2) * kNR, acc, pc > 0, epi);
        else
          ker.f32(t, kc, reinterpret_cast<const float*>(aw) + pc * mr, bf, acc, pc > 0, epi);
      }
    }
  }
}

}  // namespace

const IsaKernels& kernels_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512Bf16: return kernels_avx512bf16();
    case Isa::kAvx512: return kernels_avx512();
    case Isa::kAvx2: return kernels_avx2();
    case Isa::kScalar: break;
  }
  return kernels_scalar();
}

void run_gemm(const GemmJob& job) {
  const int mr = job.ker->mr;
  const int64_t a_panels = (job.M + mr - 1) / mr, b_panels = (job.N + kNR - 1) / kNR;
  const int64_t mc = job.mc_rows > 0 ? (job.mc_rows + mr - 1) / mr : std::max<int64_t>(1, kMCRows / mr);
  int64_t nc = kNCPanels;
  const int64_t n_m = (a_panels + mc - 1) / mc;
  const int64_t want = 4 * ThreadPool::global().num_threads();  // enough units to balance
  while (nc > 1 && n_m * ((b_panels + nc - 1) / nc) < want) nc /= 2;
  const int64_t n_n = (b_panels + nc - 1) / nc;
  // Consecutive units share a B block (i varies fastest), so it stays warm in L2.
  ThreadPool::global().parallel_for(n_m * n_n, 1, [&](int64_t b, int64_t e, int tid) {
    for (int64_t u = b; u < e; ++u) {
      const int64_t im = u % n_m, jn = u / n_m;
      const Unit unit{im * mc, std::min(a_panels, (im + 1) * mc), jn * nc, std::min(b_panels, (jn + 1) * nc)};
      run_unit(job, unit, tid);
    }
  });
}

PooledBuffer::PooledBuffer(size_t bytes) : p(host_acquire(bytes)) {}
PooledBuffer::~PooledBuffer() { host_release(p); }

}  // namespace tessera::cpu::gemm
