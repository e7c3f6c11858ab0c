// Token sampling from logits, deterministic per (seed, row, step).
//
// For each row r of logits [B, V] (computed in float64 from float32 inputs):
//  0. CFG (optional): l = u + cfg_scale·(l_c − u), in float32 exactly as
//     cfg_combine() (VAR's (1+t)·c − t·u is cfg_scale = 1 + t).
//  1. x_i = l_i / max(temperature, 1e-5).
//  2. top-k (0 < top_k < V): keep x_i ≥ the k-th largest x (ties at the
//     threshold are all kept).
//  3. top-p (0 < top_p < 1): order the kept entries by x descending (ties by
//     lower index first), q = softmax over the kept entries; keep rank 0 and
//     every rank whose preceding cumulative q is ≤ top_p (HF/LlamaGen: the
//     first token that crosses top_p is kept). VAR's ascending-cumsum rule
//     drops a token when the mass above it is ≥ top_p: the two differ only
//     when that mass equals top_p exactly.
//  4. p_i = exp(x_i − max) / Σ_kept exp(x_j − max) over the kept entries, 0 for
//     dropped ones. probs (optional output) holds p rounded to float32.
//  5. u = philox_uniform(seed, row_offset + r, step) in [0, 1); the token is the
//     first i (in index order) with Σ_{j ≤ i} e_j > u·Σ e_j, e = the float64
//     exp values of step 4 (the last kept index if rounding leaves none).
// Rows are independent and each is computed serially, so one seed gives the
// same tokens for any thread count. NaN or +Inf logits, or a row with every
// entry −Inf, throw kInvalidArgument.
#pragma once
#include <cstdint>

#include "tessera/tensor.h"

namespace tessera {

// Philox4x32-10 (Salmon et al., SC'11) with key (seed low, seed high) and
// counter (row low, row high, step low, step high).
struct Philox4 {
  uint32_t v[4];
};
inline Philox4 philox4x32_10(uint64_t seed, uint64_t row, uint64_t step) {
  uint32_t c0 = static_cast<uint32_t>(row), c1 = static_cast<uint32_t>(row >> 32);
  uint32_t c2 = static_cast<uint32_t>(step), c3 = static_cast<uint32_t>(step >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}
// A double in [0, 1) from the top 53 bits of words 0 (low) and 1 (high).
inline double philox_uniform(uint64_t seed, uint64_t row, uint64_t step) {
  const Philox4 r = philox4x32_10(seed, row, step);
  const uint64_t bits = (static_cast<uint64_t>(r.v[1]) << 32) | r.v[0];
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

struct SampleArgs {
  TensorView logits;  // [B, V] float32, last dim contiguous, rows may be strided
  TensorView uncond;  // optional [B, V] float32: enables CFG (step 0)
  float cfg_scale = 1.f;
  float temperature = 1.f;
  int32_t top_k = 0;   // ≤ 0 or ≥ V: off
  float top_p = 1.f;   // ≤ 0 or ≥ 1: off
  uint64_t seed = 0;
  uint64_t step = 0;       // e.g. the decoding step or VAR scale index
  int64_t row_offset = 0;  // the RNG row of logits row 0
  TensorView tokens;  // [B] int32, contiguous (output)
  TensorView probs;   // optional [B, V] float32 output (last dim contiguous): the p of step 4
};
void sample(const SampleArgs& args);

// out = uncond + scale·(cond − uncond), float32, [B, V] views (last dim
// contiguous). out may be cond or uncond itself (same view).
struct CfgArgs {
  TensorView cond, uncond, out;
  float scale = 1.f;
};
void cfg_combine(const CfgArgs& args);

}  // namespace tessera
