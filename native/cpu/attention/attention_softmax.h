// Masking and the online-softmax step for one query row over one key tile.
// Per-ISA like attention_vec.h (same namespace rules).
#pragma once
#include "cpu/attention/attention_vec.h"

namespace tessera::cpu::attn::TESSERA_ATTN_NS {

// What hides keys of one tile from one query row, relative to the tile start.
struct RowMask {
  int32_t lim = kKeyTile;         // keys jj >= lim are hidden (kv length, causal, block-causal, tile end)
  const int32_t* kseg = nullptr;  // [kKeyTile] segment ids of the tile's keys, or null
  int32_t qseg = 0;               // this row's segment id
  const float* add = nullptr;     // additive mask of this row at the tile's first key, or null
  int64_t add_j = 1;
};

// Online softmax in base 2 (FlashAttention-2 recurrence): with the tile's
// scaled logits s_j = c·(q·k_j) (+ log2(e)·additive), m' = max(m, max_j s_j),
// p_j = 2^(s_j − m'), l' = 2^(m − m')·l + Σ_j p_j. Overwrites s with p and
// returns 2^(m − m'), the factor that rescales the row's output accumulator.
// `partial` says some key of the tile may be hidden; otherwise no mask is
// evaluated. kRoundP rounds p to bf16 first (for bf16 P·V) and sums the
// rounded values, so the normaliser l matches the weights actually applied.
template <bool kRoundP>
inline float softmax_step(float* s, float c, bool partial, const RowMask& rm, float* m, float* l) {
  constexpr int NV = kKeyTile / W;
  if (partial && !rm.kseg && !rm.add) {  // only a key limit: one compare per vector
    const vi lim = vi{} + rm.lim;
    vi j = iota();
    for (int v = 0; v < NV; ++v, j += W) {
      const vf x = load(s + v * W) * c;
      store(s + v * W, j < lim ? x : splat(kNegInf));
    }
  } else if (partial) {
    constexpr float kLog2e = 1.4426950408889634f;
    for (int j = 0; j < kKeyTile; ++j) {
      bool vis = j < rm.lim && (!rm.kseg || rm.kseg[j] == rm.qseg);
      float x = s[j] * c;
      if (vis && rm.add) x += kLog2e * rm.add[j * rm.add_j];
      s[j] = vis ? x : kNegInf;
    }
  } else {
    for (int v = 0; v < NV; ++v) store(s + v * W, load(s + v * W) * c);
  }
  vf mx = load(s);
  for (int v = 1; v < NV; ++v) {
    const vf x = load(s + v * W);
    mx = x > mx ? x : mx;
  }
  const float tile_max = hmax(mx);
  const float m_new = tile_max > *m ? tile_max : *m;
  if (m_new == kNegInf) {  // nothing visible yet: p = 0, accumulator stays 0
    for (int v = 0; v < NV; ++v) store(s + v * W, vf{});
    return 1.f;
  }
  const float alpha = exp2_neg(splat(*m - m_new))[0];
  const vf mv = splat(m_new);
  vf sum = vf{};
  for (int v = 0; v < NV; ++v) {
    vf e = exp2_neg(load(s + v * W) - mv);
    if constexpr (kRoundP) {
      // Round to nearest even bf16 (values are finite and >= 0 here).
      const vi u = (vi)e;
      e = (vf)((u + 0x7fff + ((u >> 16) & 1)) & static_cast<int32_t>(0xffff0000u));
    }
    store(s + v * W, e);
    sum += e;
  }
  *l = *l * alpha + hsum(sum);
  *m = m_new;
  return alpha;
}

}  // namespace tessera::cpu::attn::TESSERA_ATTN_NS
