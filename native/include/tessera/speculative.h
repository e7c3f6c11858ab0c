// Speculative decoding: draft verification and LANTERN's codebook neighbour
// table (spec llamagen-and-decoding.md sections 2, 3 and 8).
//
// verify_draft(), per batch row b, drafts j = 0..L−1 in order (token x = drafts[b, j],
// target p = p[b, j], proposal q = q[b, j], or one-hot at x when q is absent):
//  1. LANTERN relaxation (only when lantern_k > 0 and lantern_delta > 0): walk
//     x's neighbours y_1..y_k (neighbours[x], closest first, −1 ends the row)
//     while the running mass c + p(y_m) stays ≤ the bound: lantern_delta (δ),
//     or (δ − 1)·p(x) when δ > 1 (LANTERN++'s multiplicative form, δ acting
//     as λ, as the official code reads it). The walked prefix A has m codes
//     and mass c; p̃(x) = p(x) + c. With the relaxation off, m = c = 0.
//  2. Accept x when u < min(1, p̃(x)/q(x)), u = philox_uniform(seed + b,
//     rng_row, step + j). (q(x) = 0 accepts iff p̃(x) > 0.)
//  3. At the first rejection, draw the replacement from norm(max(0, p − q')):
//     q' = q, except that when m ≥ 1 it is 0 on x's first min(k + 1, K)
//     neighbours (LANTERN's rule, official ea_model_llamagen.py
//     evaluate_posterior_v1: q[nearest[x, :k+1]] = 0; the residual is taken
//     from the unrelaxed p). The first index v with Σ_{i≤v} w_i > r·Σ w,
//     r = philox_uniform(seed + b, rng_row + 1, step + j), float64 sums in
//     index order. With one-hot q that is p without x. If Σ w = 0 (p = q' up
//     to rounding), the draw is from p. Then stop: later drafts of the row
//     are not examined.
// Outputs: accepted[b] = drafts accepted before the first rejection (L when
// none was rejected); next[b] = the replacement token, or −1 when all L were
// accepted (the caller takes its bonus token from the target's next row).
// Steps 2–3 are Leviathan et al.'s speculative sampling, so with the
// relaxation off the emitted tokens follow p exactly (lossless). (The
// official LANTERN code also relaxes at δ = 0 when x's nearest neighbour has
// p = 0; here δ = 0 is always the exact rule.)
// Each row runs start to finish on one thread: results depend only on the
// inputs and the key (seed, rng_row, step), never on the thread count.
#pragma once
#include <cstdint>
#include <limits>

#include "tessera/tensor.h"

namespace tessera {

struct VerifyDraftArgs {
  TensorView p;       // [B, L, V] float32, last dim contiguous (rows may be strided): processed target rows
  TensorView q;       // optional [B, L, V] float32 like p: the distributions the drafts were drawn from
  TensorView drafts;  // [B, L] int32, contiguous
  TensorView neighbours;      // optional [V, K] int32, contiguous: codebook_neighbours() output
  int32_t lantern_k = 0;      // neighbours walked (≤ K); 0 = standard acceptance
  float lantern_delta = 0.f;  // total-variation budget δ ≥ 0 (> 1: LANTERN++ λ); 0 = standard acceptance
  uint64_t seed = 0;          // row b draws from key seed + b
  uint64_t rng_row = 0;       // uniforms on Philox row rng_row, residual draws on rng_row + 1
  uint64_t step = 0;          // draft j uses counter step + j
  TensorView accepted;  // [B] int32 output
  TensorView next;      // [B] int32 output
  // Optional [B, L, 2] float32 output, per draft: (min(1, p̃(x)/q(x)), c);
  // (−1, −1) for drafts after the first rejection (not examined).
  TensorView stats;
};
void verify_draft(const VerifyDraftArgs& args);

// For every code v of codebook [V, D]: the K other codes nearest to it by
// L2 distance (the raw codebook, as LANTERN's offline table), closest first,
// ties by lower index. Squared distances come from one GEMM per block of rows
// (‖a‖² + ‖b‖² − 2a·b), the K + 16 best candidates are re-ranked in float64
// from the codes themselves. Codes farther than max_distance (L2, not
// squared) are left out and the row is padded with −1.
struct CodebookNeighboursArgs {
  TensorView codebook;  // [V, D] float32, contiguous
  TensorView out;       // [V, K] int32, contiguous, 1 ≤ K < V
  TensorView distances;  // optional [V, K] float32 output: the L2 distances (+inf for −1 entries)
  float max_distance = std::numeric_limits<float>::infinity();
};
void codebook_neighbours(const CodebookNeighboursArgs& args);

}  // namespace tessera
