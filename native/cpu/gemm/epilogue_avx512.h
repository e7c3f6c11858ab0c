// AVX-512 fused epilogue, included only by files compiled with AVX-512 flags.
// Functions are `static` so each ISA's translation unit keeps its own copy
// (an inline function shared across TUs built with different -m flags could
// be resolved to the wrong ISA's body by the linker).
#pragma once
// GCC 12 reports false -Wmaybe-uninitialized inside its own AVX-512 headers
// (the _mm512_undefined_* idiom, GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/gemm/gemm_kernels.h"

namespace tessera::cpu::gemm {

// e^x: x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite split of ln2), e^r by its
// degree-7 Taylor polynomial (truncation r^8/8! < 6e-9, below fp32 rounding),
// then scalef by 2^n, which saturates to 0 / inf outside the float range.
static inline __m512 exp_avx512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.f), _mm512_min_ps(_mm512_set1_ps(89.f), x));  // NaN passes
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

// GELU-tanh = x·σ(2u), u = √(2/π)(x + 0.044715x³); SiLU = x·σ(x); σ(z) = 1/(1+e^−z).
static inline __m512 activate_avx512(Activation act, __m512 x) {
  if (act == Activation::kNone) return x;
  __m512 z = x;
  if (act == Activation::kGeluTanh) {
    const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    z = _mm512_mul_ps(_mm512_set1_ps(2.f * 0.7978845608028654f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
  }
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.f), exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), z)));
  return _mm512_div_ps(x, d);
}

// Round-to-nearest-even f32 → bf16 with quiet NaNs (as f32_to_bf16 does).
static inline __m256i to_bf16_avx512(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

// Applies the epilogue to 16 accumulators of row m, columns n .. n+15 (lanes in `mask`).
static inline void store_avx512(const Epilogue& e, int64_t m, int64_t n, __m512 v, __mmask16 mask) {
  if (e.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, e.bias + n));
  if (e.row_bias) v = _mm512_add_ps(v, _mm512_set1_ps(e.row_bias[m]));
  v = activate_avx512(e.act, v);
  if (e.gate) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mask, e.gate + (m / e.gate_rows) * e.gate_ld + n));
  if (e.alpha != 1.f) v = _mm512_mul_ps(v, _mm512_set1_ps(e.alpha));
  if (e.residual) {
    const __m512 r = _mm512_maskz_loadu_ps(mask, e.residual + m * e.res_ld + n);
    v = _mm512_fmadd_ps(_mm512_set1_ps(e.beta), r, v);
  }
  const int64_t idx = m * e.out_ld + n;
  if (e.out_dtype == DType::kF32) {
    _mm512_mask_storeu_ps(static_cast<float*>(e.out) + idx, mask, v);
    return;
  }
  const __m256i h = e.out_dtype == DType::kBF16 ? to_bf16_avx512(v)
                                                : _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  _mm256_mask_storeu_epi16(static_cast<uint16_t*>(e.out) + idx, mask, h);
}

static inline __mmask16 lane_mask(int count) {
  return count >= 16 ? __mmask16(0xffff) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

// Shared tail of the AVX-512 micro-kernels: R rows × 32 columns in c0/c1.
template <int R>
static inline void finish_tile_avx512(const Tile& t, const __m512* c0, const __m512* c1, float* acc,
                                      const Epilogue* epi) {
  if (!epi) {
    for (int i = 0; i < R; ++i) {
      _mm512_storeu_ps(acc + i * kNR, c0[i]);
      _mm512_storeu_ps(acc + i * kNR + 16, c1[i]);
    }
    return;
  }
  const __mmask16 m0 = lane_mask(t.cols), m1 = lane_mask(t.cols - 16);
  for (int i = 0; i < R; ++i) {
    store_avx512(*epi, t.m0 + i, t.n0, c0[i], m0);
    if (m1) store_avx512(*epi, t.m0 + i, t.n0 + 16, c1[i], m1);
  }
}

}  // namespace tessera::cpu::gemm
