// The CPU attention problem after validation, flattened to plain data, and
// the entry points of the per-ISA kernel files. Nothing in this header is an
// inline function: it is included by files compiled with different -m flags,
// and an inline function emitted from an AVX-512 file could be picked by the
// linker for the portable path (one-definition rule).
#pragma once
#include <cstdint>

#include "tessera/attention.h"

namespace tessera::cpu::attn {

// Keys per tile: one zmm row of S holds 16, the micro-kernel holds 4 of them.
constexpr int kKeyTile = 64;
// Query rows per micro-block (register blocking of S = Q·Kᵀ and O += P·V).
constexpr int kRows = 6;

// A rank-4 q/k/v operand: element strides of (b, h, l); d has stride 1.
struct Operand {
  const char* data = nullptr;
  DType dtype = DType::kF32;
  int64_t sb = 0, sh = 0, sl = 0;
};

struct Problem {
  int64_t B = 0, Hq = 0, Hkv = 0, group = 1, Lq = 0, Lk = 0, D = 0;
  Operand q, k, v;
  char* out = nullptr;
  DType out_dtype = DType::kF32;
  int64_t ob = 0, oh = 0, ol = 0;
  float* lse = nullptr;  // null when not requested
  int64_t lb = 0, lh = 0, ll = 0;
  // Logits are kept in base-2 units: s₂ = q·k · scale · multiplier[h] · log2(e),
  // so p = 2^(s₂ − m₂) (one exp2 per element) and lse = ln2 · (m₂ + log2 l).
  const float* head_scale = nullptr;  // [Hq]
  bool l2norm = false;
  uint32_t mask = kMaskNone;
  const int32_t* kv_len = nullptr;     // [B], always set (Lk where not given)
  const int32_t* block_end = nullptr;  // [Lk] end of the block holding each position (block-causal)
  const int32_t* qseg = nullptr;       // segment ids, strides (b, l)
  int64_t qseg_b = 0, qseg_l = 0;
  const int32_t* kseg = nullptr;
  int64_t kseg_b = 0, kseg_l = 0;
  const float* add = nullptr;  // additive mask, strides (b, h, i, j); 0 where broadcast
  int64_t add_b = 0, add_h = 0, add_i = 0, add_j = 0;

  // Tiled path schedule: task = (b, h, query chunk); a chunk is q_tile-row tiles.
  int64_t q_tile = 48, chunk_rows = 48, chunks = 1;
  // Row path (few queries, e.g. decode): task = (b, kv head, key split).
  int64_t splits = 1, split_keys = 0;
  float* partial = nullptr;  // [B·Hq·Lq, splits, D + 2] (m₂, l, o[D]) when splits > 1
};

// Exclusive key limits of query rows [i0, i0 + n) of batch row b from the
// kv length and the causal / block-causal structure: key j can be visible to
// row i only if j < lim[i]. Rows with lim = 0 see nothing.
void row_limits(const Problem& p, int64_t b, int64_t i0, int64_t n, int32_t* lim);

// Per-ISA kernels. A task index is in [0, tile_tasks(p)) or [0, row_tasks(p)).
struct KernelSet {
  void (*tile_task)(const Problem&, int64_t task, int tid);
  void (*row_task)(const Problem&, int64_t task, int tid);
};
KernelSet kernels_scalar();
KernelSet kernels_avx2();
KernelSet kernels_avx512();
// Tiled path with bf16 dot products (_mm512_dpbf16_ps); q, k and v must be bf16.
KernelSet kernels_avx512bf16();

}  // namespace tessera::cpu::attn
