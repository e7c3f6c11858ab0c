// Shared vocabulary of the CPU GEMM family: the packed layouts, the fused
// epilogue and the per-ISA kernel tables the driver chooses from at run time.
//
// Packed layouts (GotoBLAS/BLIS style; every ISA reads the same B layout, so a
// weight packed once serves whatever ISA is active when it is used):
//   B f32   : ceil(N/32) panels; panel j holds K rows of 32 floats,
//             row k = W[32j .. 32j+31][k] (zero-padded past N).
//   B bf16  : ceil(N/32) panels of ceil(K/2) rows of 32 uint32 "pairs";
//             pair (p, c) = bf16(W[32j+c][2p]) | bf16(W[32j+c][2p+1]) << 16,
//             the operand layout of vdpbf16ps (zero-padded past N and K).
//   A f32   : ceil(M/MR) panels of K rows of MR floats (row k = x[MR·i ..][k]).
//   A bf16  : ceil(M/MR) panels of ceil(K/2) rows of MR uint32 pairs.
// MR depends on the ISA (A is packed per call); NR is 32 everywhere.
#pragma once
#include <cstdint>

#include "tessera/gemm.h"
#include "tessera/tensor.h"

namespace tessera::cpu::gemm {

constexpr int kNR = 32;

// What happens to a finished tile before it reaches `out`:
//   y = alpha·gate[m / gate_rows][n]·act(acc + bias[n] + row_bias[m]) + beta·residual[m][n],
// rounded to out_dtype (gate: 1 when null).
// Linear uses alpha = beta = 1; matmul uses its alpha/beta with residual = C;
// the channel-major conv (cpu/nn/conv.cpp) has one bias per row (channel).
struct Epilogue {
  const float* bias = nullptr;      // indexed by column, or null
  const float* row_bias = nullptr;  // indexed by row, or null
  const float* residual = nullptr;  // row m at residual + m·res_ld, or null
  int64_t res_ld = 0;
  const float* gate = nullptr;  // row g at gate + g·gate_ld, g = m / gate_rows; or null
  int64_t gate_ld = 0, gate_rows = 1;
  void* out = nullptr;  // row m at out + m·out_ld elements
  int64_t out_ld = 0;
  DType out_dtype = DType::kF32;
  Activation act = Activation::kNone;
  float alpha = 1.f, beta = 1.f;
};

// The valid part of a register tile: rows [m0, m0+rows), columns [n0, n0+cols).
// pf, pf_lines: optional cache lines (64 B each, from pf on) that the kernel
// asks to have in L2 while it runs (the driver points them at the next B
// panel block, so weights streamed from memory arrive before they are used);
// kernels may ignore them.
struct Tile {
  int64_t m0, n0;
  int rows, cols;
  const char* pf = nullptr;
  int64_t pf_lines = 0;
};

// acc points at an MR×32 f32 buffer used to carry partial sums across K
// blocks: read first when load_acc, written back when epi is null; when epi
// is set the finished tile goes through the epilogue to epi->out instead.
// kc counts K elements; the bf16 kernel reads ceil(kc/2) pair rows.
using GemmF32Fn = void (*)(const Tile& t, int64_t kc, const float* a, const float* b, float* acc,
                           bool load_acc, const Epilogue* epi);
using GemmBf16Fn = void (*)(const Tile& t, int64_t kc, const uint32_t* a, const uint32_t* b, float* acc,
                            bool load_acc, const Epilogue* epi);

// Decode GEMV for M ≤ kGemvMaxM rows read straight from an unpacked weight:
// y[m][n] = Σ_k x[m][k]·W[n][k] for n in [n0, n1), n1 − n0 ≤ kGemvChunk, then
// the epilogue. x is f32 (already converted); W is f32, bf16 or f16.
constexpr int kGemvMaxM = 4;
constexpr int kGemvChunk = 64;
struct GemvArgs {
  int M;
  int64_t K;
  const float* x;
  int64_t x_ld;
  const void* w;
  int64_t w_ld;
  DType w_dtype;
  Epilogue epi;
};
using GemvFn = void (*)(const GemvArgs& g, int64_t n0, int64_t n1);
// Packs f32 A panels [p0, p1) (mr rows each, zero past M) from row-major f32
// x (row stride ld, unit stride along K): the layout pack_a_all writes.
using PackAF32Fn = void (*)(const float* x, int64_t ld, int64_t M, int64_t K, int64_t p0, int64_t p1, float* dst);

// Small-M GEMM over packed B (weight streaming; M ≤ kSmallMaxM):
// y = epilogue(x·Wᵀ) for B panels [j0, j1), x f32 row-major (row m at
// x + m·x_ld, unit stride along K; already rounded to bf16 for bf16 compute).
// Bound by reading B once: every panel is read front to back exactly once,
// bf16 pairs are widened to f32 in registers right before the FMAs, and the
// rows of x (≤ kSmallMaxM × K floats) are broadcast straight from memory, so
// nothing is packed per call.
// Thresholds by B format, from A/B runs against the packed-A driver (BENCHMARKS.md,
// GEMM): bf16 B wins up to 32 rows (0.5–0.7× the time: the driver widens B
// through memory); f32 B is even with the driver up to 14 rows (one register
// group on AVX-512) and 1.04–1.2× slower at 18–32, so it stops at 14 there;
// the AVX2 table streams f32 up to 32 (0.57–0.63× its driver at 18 and 32).
constexpr int kSmallMaxM = 32;
constexpr int kSmallMaxMF32 = 14;
struct SmallMArgs {
  int64_t M, N, K;
  const float* x;
  int64_t x_ld;
  const void* b;   // packed B (gemm_kernels.h layouts)
  DType b_format;  // kF32 or kBF16 (pairs)
  Epilogue epi;
};
using SmallMFn = void (*)(const SmallMArgs& s, int64_t j0, int64_t j1);
// Rounds n floats to bf16 precision (kept as f32): dst[i] = bf16(src[i]).
using RoundBf16Fn = void (*)(const float* src, int64_t n, float* dst);
// Widens rows [k0, k0 + kc) (k0 even) of a bf16 pair panel to kc rows of 32 floats.
using WidenBf16Fn = void (*)(const uint32_t* panel, int64_t k0, int64_t kc, float* dst);

struct IsaKernels {
  int mr;             // rows of the register tile (A panel height)
  GemmF32Fn f32;      // any rows in [1, mr]
  GemmBf16Fn bf16;    // null where the CPU has no bf16 dot product
  GemvFn gemv;
  PackAF32Fn pack_a_f32 = nullptr;  // vectorised A packing, or null (pack_a_all's portable loops)
  SmallMFn small_m = nullptr;       // the small-M streaming GEMM (every table has one)
  RoundBf16Fn round_bf16 = nullptr;  // vectorised, or null (portable loop)
  WidenBf16Fn widen_bf16 = nullptr;  // vectorised, or null (unpack_bf16_panel)
  int small_m_max_f32 = kSmallMaxMF32;  // f32 B takes small_m up to this many rows (≤ kSmallMaxM)
};

const IsaKernels& kernels_scalar();
const IsaKernels& kernels_avx2();
const IsaKernels& kernels_avx512();
const IsaKernels& kernels_avx512bf16();

// Entry points of the AVX-512 file that the AVX512-BF16 table reuses.
void gemm_f32_avx512(const Tile& t, int64_t kc, const float* a, const float* b, float* acc, bool load_acc,
                     const Epilogue* epi);
void gemv_avx512(const GemvArgs& g, int64_t n0, int64_t n1);
void pack_a_f32_avx512(const float* x, int64_t ld, int64_t M, int64_t K, int64_t p0, int64_t p1, float* dst);
void small_m_avx512(const SmallMArgs& s, int64_t j0, int64_t j1);
void round_bf16_avx512(const float* src, int64_t n, float* dst);
void widen_bf16_avx512(const uint32_t* panel, int64_t k0, int64_t kc, float* dst);

}  // namespace tessera::cpu::gemm
