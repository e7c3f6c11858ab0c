// fp32 attention step fused for AVX-512: for 6 query rows × 64 keys, S = Q·Kᵀ
// lives in 24 zmm accumulators, the online softmax runs on those registers
// (no S round trip through memory), P goes to a 1.5 KiB L1 buffer and
// O = α·O + P·V follows at once. Only the AVX-512 file includes this (it
// uses intrinsics, so the per-ISA namespace is fixed).
#pragma once
#include <immintrin.h>

#include "cpu/attention/attention_vec.h"

namespace tessera::cpu::attn::avx512 {

constexpr int kKv = kKeyTile / 16;  // key vectors per S row (4)

// 2^x in the lanes of `keep` (finite there, at most kSlack above 0), 0
// elsewhere, so lanes holding -inf or NaN (masked keys) cost no branch.
// x = n + f with n = round(x) (vreduceps gives f = x − n exactly); 2^f on
// |f| <= 1/2 by a degree-6 near-minimax polynomial (relative error 1.6e-8
// with these fp32 coefficients, below the ~1e-7 of evaluating it in fp32);
// vscalefps applies 2^n, going gradually to 0 below 2^-126 instead of
// wrapping the exponent.
inline __m512 exp2_keep(__m512 x, __mmask16 keep) {
  const __m512 f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 n = _mm512_sub_ps(x, f);
  __m512 p = _mm512_set1_ps(1.5345810970757157e-04f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3399930903688073e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6184890717267990e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5503286421298981e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022646248340607e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718246459961e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  return _mm512_maskz_scalef_ps(keep, p, n);
}

// Maximum of the NV vectors of an S row, in every lane.
template <int NV>
inline __m512 row_max(const __m512* s) {
  __m512 t = s[0];
  for (int c = 1; c < NV; ++c) t = _mm512_max_ps(t, s[c]);
  t = _mm512_max_ps(t, _mm512_shuffle_f32x4(t, t, 0x4E));  // swap 256-bit halves
  t = _mm512_max_ps(t, _mm512_shuffle_f32x4(t, t, 0xB1));  // swap 128-bit lanes
  t = _mm512_max_ps(t, _mm512_permute_ps(t, 0x4E));
  return _mm512_max_ps(t, _mm512_permute_ps(t, 0xB1));
}

// O[r][0, NVD·16) = α_r·O[r][..] + Σ_{j<nk} P[r][j]·V[j][..] (O row stride os).
// The sum starts from zero and α·O is added last, so the key loop need not
// wait for α (the end of the softmax's longest dependency chain).
template <int NVD>
inline void pv_fused(const float* pb, const float* alpha, const float* v, int64_t vs, int nk, float* o, int64_t os) {
  __m512 acc[kRows][NVD];
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < NVD; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int j = 0; j < nk; ++j) {
    __m512 vv[NVD];
    for (int c = 0; c < NVD; ++c) vv[c] = _mm512_loadu_ps(v + j * vs + c * 16);
    for (int r = 0; r < kRows; ++r) {
      const __m512 pj = _mm512_set1_ps(pb[r * kKeyTile + j]);
      for (int c = 0; c < NVD; ++c) acc[r][c] = _mm512_fmadd_ps(pj, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
    for (int c = 0; c < NVD; ++c)
      _mm512_storeu_ps(o + r * os + c * 16, _mm512_fmadd_ps(_mm512_loadu_ps(o + r * os + c * 16), a, acc[r][c]));
  }
}

// Row state of a 6-row block: m[6] reference maxima (base 2, within kSlack
// below the running max; −FLT_MAX before the first key, so no −inf − −inf
// appears), lv[6][16] per-lane partial sums of p (reduced once at the end).
struct BlockState {
  float* m;
  float* lv;
};

// What hides keys of the tile from the block's rows (kMasked only): keep[r][c]
// lane masks (limits and segments), addb[r][64] log2(e)·additive or null.
struct BlockMask {
  const __mmask16* keep = nullptr;
  const float* addb = nullptr;
};

// Softmax half of one online-softmax step of a 6-row block over one key tile:
// P [6][64] to pb and the rescale factors to alpha[16] (both 64-byte aligned);
// m and lv are updated. q: 6 rows × Dp, pre-multiplied by the logit scale
// (base 2); kt: Kᵀ tile [Dp][64]. Only the first NV·16 keys of the tile are
// computed (the caller knows the rest are hidden; their P is never read).
template <bool kMasked, int NV>
inline void s_softmax_block(const float* q, int64_t Dp, const float* kt, const BlockMask& bm, const BlockState& st,
                            float* pb, float* alpha) {
  __m512 s[kRows][NV];
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < NV; ++c) s[r][c] = _mm512_setzero_ps();
  for (int64_t d = 0; d < Dp; ++d) {
    __m512 kv[NV];
    for (int c = 0; c < NV; ++c) kv[c] = _mm512_load_ps(kt + d * kKeyTile + c * 16);
    for (int r = 0; r < kRows; ++r) {
      const __m512 qb = _mm512_set1_ps(q[r * Dp + d]);
      for (int c = 0; c < NV; ++c) s[r][c] = _mm512_fmadd_ps(qb, kv[c], s[r][c]);
    }
  }
  const __m512 neg_inf = _mm512_set1_ps(kNegInf);
  __mmask16 keep[kRows][NV];
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < NV; ++c) {
      keep[r][c] = 0xFFFF;
      if constexpr (kMasked) {
        keep[r][c] = bm.keep[r * kKv + c];
        if (bm.addb) {
          s[r][c] = _mm512_mask_add_ps(s[r][c], keep[r][c], s[r][c], _mm512_load_ps(bm.addb + r * kKeyTile + c * 16));
          // An additive −inf hides the key like a mask (its exp would be NaN here).
          keep[r][c] &= _mm512_cmp_ps_mask(s[r][c], neg_inf, _CMP_NEQ_UQ);
        }
        s[r][c] = _mm512_mask_mov_ps(neg_inf, keep[r][c], s[r][c]);
      }
    }
  // Lazy rescaling: a row's reference max m moves only when some logit
  // exceeds it by more than kSlack (then to the exact running max), so
  // p = 2^(s − m) <= 2^kSlack stays far from overflow, and most tiles need
  // neither the horizontal max nor α (= 1) nor a rescaled O.
  constexpr float kSlack = 8.f;
  __mmask16 grow = 0;
  for (int r = 0; r < kRows; ++r) {
    const __m512 thr = _mm512_set1_ps(st.m[r] + kSlack);
    for (int c = 0; c < NV; ++c) grow |= _mm512_cmp_ps_mask(s[r][c], thr, _CMP_GT_OQ);
  }
  alignas(64) float mrow[16];
  if (grow) {
    // New maxima, gathered into lanes 0..5, and the rescale factors α = 2^(m − m').
    __m512 m6 = _mm512_setzero_ps();
    for (int r = 0; r < kRows; ++r)
      m6 = _mm512_mask_mov_ps(m6, static_cast<__mmask16>(1u << r),
                              _mm512_max_ps(row_max<NV>(s[r]), _mm512_set1_ps(st.m[r])));
    constexpr __mmask16 k6 = (1u << kRows) - 1;
    const __m512 old6 = _mm512_maskz_loadu_ps(k6, st.m);
    // Clamped at −125 so that α stays a normal number (no denormal assists);
    // α = 2^-125 against a zero accumulator or a far smaller max is still exact enough.
    const __m512 d6 = _mm512_max_ps(_mm512_sub_ps(old6, m6), _mm512_set1_ps(-125.f));
    _mm512_store_ps(alpha, exp2_keep(d6, 0xFFFF));
    _mm512_store_ps(mrow, m6);
    _mm512_mask_storeu_ps(st.m, k6, m6);
  } else {
    _mm512_store_ps(alpha, _mm512_set1_ps(1.f));
    _mm512_store_ps(mrow, _mm512_maskz_loadu_ps((1u << kRows) - 1, st.m));
  }
  for (int r = 0; r < kRows; ++r) {
    const __m512 mr = _mm512_set1_ps(mrow[r]);
    __m512 sum = _mm512_setzero_ps();
    for (int c = 0; c < NV; ++c) {
      const __m512 e = exp2_keep(_mm512_sub_ps(s[r][c], mr), keep[r][c]);
      _mm512_store_ps(pb + r * kKeyTile + c * 16, e);
      sum = _mm512_add_ps(sum, e);
    }
    float* lv = st.lv + r * 16;
    _mm512_store_ps(lv, _mm512_fmadd_ps(_mm512_load_ps(lv), _mm512_set1_ps(alpha[r]), sum));
  }
}

// O rows of a block = α·O + P·V, in register blocks of up to 4 vectors of d.
inline void pv_block_fused(const float* pb, const float* alpha, const float* v, int64_t vs, int nk, float* o,
                           int64_t Dp) {
  for (int64_t d0 = 0; d0 < Dp;) {
    switch (std::min<int64_t>((Dp - d0) / 16, 4)) {
      case 4: pv_fused<4>(pb, alpha, v + d0, vs, nk, o + d0, Dp); d0 += 64; break;
      case 3: pv_fused<3>(pb, alpha, v + d0, vs, nk, o + d0, Dp); d0 += 48; break;
      case 2: pv_fused<2>(pb, alpha, v + d0, vs, nk, o + d0, Dp); d0 += 32; break;
      default: pv_fused<1>(pb, alpha, v + d0, vs, nk, o + d0, Dp); d0 += 16; break;
    }
  }
}

}  // namespace tessera::cpu::attn::avx512
