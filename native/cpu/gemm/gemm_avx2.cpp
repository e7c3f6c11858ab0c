// AVX2+FMA kernels: a 6×16 register tile (12 ymm accumulators), run twice
// per 32-column panel, the decode GEMV, and the 8-lane fused epilogue.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "cpu/gemm/gemm_kernels.h"
#include "tessera/dtype_convert.h"

namespace tessera::cpu::gemm {
namespace {

constexpr int kMR = 6;

// e^x as in epilogue_avx512.h, with 2^n built in the exponent field; the
// clamp keeps n in [-126, 127] (e^88 is still finite, e^-87 still normal).
__m256 exp_avx2(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.f), _mm256_min_ps(_mm256_set1_ps(88.f), x));  // NaN passes
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// GELU-tanh = x·σ(2u), SiLU = x·σ(x) (see epilogue_avx512.h).
__m256 activate_avx2(Activation act, __m256 x) {
  if (act == Activation::kNone) return x;
  __m256 z = x;
  if (act == Activation::kGeluTanh) {
    const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    z = _mm256_mul_ps(_mm256_set1_ps(2.f * 0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
  }
  const __m256 d = _mm256_add_ps(_mm256_set1_ps(1.f), exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), z)));
  return _mm256_div_ps(x, d);
}

// Epilogue for 8 values of row m at columns n .. n+count−1 (count ≤ 8).
void store_avx2(const Epilogue& e, int64_t m, int64_t n, __m256 v, int count) {
  alignas(32) float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const bool full = count >= 8;
  auto load = [&](const float* p) {
    if (full) return _mm256_loadu_ps(p);
    std::memcpy(tmp, p, sizeof(float) * count);
    return _mm256_load_ps(tmp);
  };
  if (e.bias) v = _mm256_add_ps(v, load(e.bias + n));
  if (e.row_bias) v = _mm256_add_ps(v, _mm256_set1_ps(e.row_bias[m]));
  v = activate_avx2(e.act, v);
  if (e.gate) v = _mm256_mul_ps(v, load(e.gate + (m / e.gate_rows) * e.gate_ld + n));
  if (e.alpha != 1.f) v = _mm256_mul_ps(v, _mm256_set1_ps(e.alpha));
  if (e.residual) v = _mm256_fmadd_ps(_mm256_set1_ps(e.beta), load(e.residual + m * e.res_ld + n), v);
  const int64_t idx = m * e.out_ld + n;
  if (e.out_dtype == DType::kF32) {
    float* o = static_cast<float*>(e.out) + idx;
    if (full) return _mm256_storeu_ps(o, v);
    _mm256_store_ps(tmp, v);
    std::memcpy(o, tmp, sizeof(float) * count);
    return;
  }
  uint16_t h[8];
  if (e.out_dtype == DType::kF16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    _mm256_store_ps(tmp, v);
    for (int j = 0; j < 8; ++j) h[j] = f32_to_bf16(tmp[j]);
  }
  std::memcpy(static_cast<uint16_t*>(e.out) + idx, h, sizeof(uint16_t) * (full ? 8 : count));
}

// R rows × 16 columns of the 32-wide B panel, starting at column `half`·16.
template <int R>
void half_tile(const Tile& t, int half, int64_t kc, const float* a, const float* b, float* acc, bool load_acc,
               const Epilogue* epi) {
  __m256 c0[R], c1[R];
  float* ac = acc + half * 16;
  const float* bh = b + half * 16;
  for (int i = 0; i < R; ++i) {
    c0[i] = load_acc ? _mm256_loadu_ps(ac + i * kNR) : _mm256_setzero_ps();
    c1[i] = load_acc ? _mm256_loadu_ps(ac + i * kNR + 8) : _mm256_setzero_ps();
  }
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(bh + k * kNR), b1 = _mm256_loadu_ps(bh + k * kNR + 8);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + k * kMR + i);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
  }
  if (!epi) {
    for (int i = 0; i < R; ++i) {
      _mm256_storeu_ps(ac + i * kNR, c0[i]);
      _mm256_storeu_ps(ac + i * kNR + 8, c1[i]);
    }
    return;
  }
  const int cols = t.cols - half * 16;
  const int64_t n = t.n0 + half * 16;
  for (int i = 0; i < R; ++i) {
    store_avx2(*epi, t.m0 + i, n, c0[i], cols);
    if (cols > 8) store_avx2(*epi, t.m0 + i, n + 8, c1[i], cols - 8);
  }
}

template <int R>
void tile_f32(const Tile& t, int64_t kc, const float* a, const float* b, float* acc, bool load_acc,
              const Epilogue* epi) {
  half_tile<R>(t, 0, kc, a, b, acc, load_acc, epi);
  if (!epi || t.cols > 16) half_tile<R>(t, 1, kc, a, b, acc, load_acc, epi);
}

template <size_t... I>
constexpr std::array<GemmF32Fn, sizeof...(I)> make_table(std::index_sequence<I...>) {
  return {tile_f32<static_cast<int>(I) + 1>...};
}
constexpr auto kTiles = make_table(std::make_index_sequence<kMR>{});

void gemm_f32_avx2(const Tile& t, int64_t kc, const float* a, const float* b, float* acc, bool load_acc,
                   const Epilogue* epi) {
  kTiles[t.rows - 1](t, kc, a, b, acc, load_acc, epi);
}

// 8 weights widened to f32; the K tail goes through a zero-padded copy.
__m256 load_w8(const void* w, DType dt, int64_t idx, int count) {
  if (dt == DType::kF32) {
    const float* p = static_cast<const float*>(w) + idx;
    if (count >= 8) return _mm256_loadu_ps(p);
    alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(t, p, sizeof(float) * count);
    return _mm256_load_ps(t);
  }
  const uint16_t* p = static_cast<const uint16_t*>(w) + idx;
  __m128i h;
  if (count >= 8) {
    h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  } else {
    uint16_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(t, p, sizeof(uint16_t) * count);
    h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t));
  }
  if (dt == DType::kF16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Two weight rows against M ≤ 4 input rows (8 accumulators), W read once.
void gemv_avx2(const GemvArgs& g, int64_t n0, int64_t n1) {
  alignas(32) float y[kGemvMaxM][kGemvChunk];
  for (int64_t n = n0; n < n1; n += 2) {
    const int nr = n1 - n < 2 ? 1 : 2;
    __m256 s[2][kGemvMaxM];
    for (int r = 0; r < 2; ++r)
      for (int m = 0; m < kGemvMaxM; ++m) s[r][m] = _mm256_setzero_ps();
    for (int64_t k = 0; k < g.K; k += 8) {
      const int count = g.K - k < 8 ? static_cast<int>(g.K - k) : 8;
      __m256 x[kGemvMaxM];
      for (int m = 0; m < g.M; ++m) x[m] = load_w8(g.x + m * g.x_ld, DType::kF32, k, count);
      for (int r = 0; r < nr; ++r) {
        const __m256 w = load_w8(g.w, g.w_dtype, (n + r) * g.w_ld + k, count);
        for (int m = 0; m < g.M; ++m) s[r][m] = _mm256_fmadd_ps(x[m], w, s[r][m]);
      }
    }
    for (int r = 0; r < nr; ++r)
      for (int m = 0; m < g.M; ++m) y[m][n - n0 + r] = hsum(s[r][m]);
  }
  for (int m = 0; m < g.M; ++m)
    for (int64_t n = n0; n < n1; n += 8)
      store_avx2(g.epi, m, n, _mm256_load_ps(&y[m][n - n0]), static_cast<int>(n1 - n < 8 ? n1 - n : 8));
}

// Small-M streaming GEMM (gemm_kernels.h SmallMArgs). Sixteen ymm registers
// hold R ≤ 6 (f32 B) or 4 (bf16 B) rows × 16 columns, so each panel goes by
// in K blocks of 256 rows (32 KiB f32: L1) and every block is passed over
// per 16-column half and row group; partial sums live in a stack buffer.
// bf16 pairs are widened in registers (even k: word << 16, odd k: high half).
constexpr int kSmallRowsF32 = 6, kSmallRowsBf16 = 4;
constexpr int64_t kSmallKB = 256;
constexpr int64_t kSmallPfWords = 768, kSmallPfFarWords = 8192;  // prefetch to L1 3 KiB and to L2 32 KiB ahead

struct SmallCall {
  const SmallMArgs* s;
  int64_t m0;
  const uint32_t* panel;
  int64_t k0, kc;
  float* acc;  // rows of 32 partial sums
  bool load, prefetch;
  const Epilogue* epi;
  int64_t n0;
  int cols, half;
};

template <int R, bool BF16>
void small_tile(const SmallCall& c) {
  constexpr int S = 1;  // one FMA chain per sum in k order, as the packed kernels: batch-invariant rows (gemm_small_avx512.cpp)
  __m256 e0[R], e1[R], o0[R], o1[R];
  float* ac = c.acc + c.half * 16;
  for (int i = 0; i < R; ++i) {
    e0[i] = c.load ? _mm256_loadu_ps(ac + i * kNR) : _mm256_setzero_ps();
    e1[i] = c.load ? _mm256_loadu_ps(ac + i * kNR + 8) : _mm256_setzero_ps();
    o0[i] = o1[i] = _mm256_setzero_ps();
  }
  const int64_t ld = c.s->x_ld;
  const float* x = c.s->x + c.m0 * ld + c.k0;
  auto step = [&](__m256 b0, __m256 b1, __m256 b2, __m256 b3, int64_t k) {
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 a0 = _mm256_broadcast_ss(x + i * ld + k), a1 = _mm256_broadcast_ss(x + i * ld + k + 1);
      e0[i] = _mm256_fmadd_ps(a0, b0, e0[i]);
      e1[i] = _mm256_fmadd_ps(a0, b1, e1[i]);
      if constexpr (S == 2) {
        o0[i] = _mm256_fmadd_ps(a1, b2, o0[i]);
        o1[i] = _mm256_fmadd_ps(a1, b3, o1[i]);
      } else {
        e0[i] = _mm256_fmadd_ps(a1, b2, e0[i]);
        e1[i] = _mm256_fmadd_ps(a1, b3, e1[i]);
      }
    }
  };
  auto single = [&](__m256 b0, __m256 b1, int64_t k) {
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 a0 = _mm256_broadcast_ss(x + i * ld + k);
      e0[i] = _mm256_fmadd_ps(a0, b0, e0[i]);
      e1[i] = _mm256_fmadd_ps(a0, b1, e1[i]);
    }
  };
  const int64_t pairs = c.kc / 2;
  if constexpr (BF16) {
    const uint32_t* row = c.panel + (c.k0 / 2) * kNR;
    const __m256i hi = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
    for (int64_t p = 0; p < pairs; ++p) {
      const uint32_t* b = row + p * kNR;
      if (c.prefetch) {
        const char* q = reinterpret_cast<const char*>(b);
        _mm_prefetch(q + 4 * kSmallPfWords, _MM_HINT_T0);
        _mm_prefetch(q + 4 * kSmallPfWords + 64, _MM_HINT_T0);
        _mm_prefetch(q + 4 * kSmallPfFarWords, _MM_HINT_T1);
        _mm_prefetch(q + 4 * kSmallPfFarWords + 64, _MM_HINT_T1);
      }
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + c.half * 16));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + c.half * 16 + 8));
      step(_mm256_castsi256_ps(_mm256_slli_epi32(w0, 16)), _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16)),
           _mm256_castsi256_ps(_mm256_and_si256(w0, hi)), _mm256_castsi256_ps(_mm256_and_si256(w1, hi)), 2 * p);
    }
    if (c.kc & 1) {  // the last k alone (its partner is past K)
      const uint32_t* b = row + pairs * kNR + c.half * 16;
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 8));
      single(_mm256_castsi256_ps(_mm256_slli_epi32(w0, 16)), _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16)),
             2 * pairs);
    }
  } else {
    const float* row = reinterpret_cast<const float*>(c.panel) + c.k0 * kNR;
    for (int64_t p = 0; p < pairs; ++p) {
      const float* b = row + 2 * p * kNR;
      if (c.prefetch)
        for (int l = 0; l < 4; ++l) {
          _mm_prefetch(reinterpret_cast<const char*>(b + kSmallPfWords + 16 * l), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(b + kSmallPfFarWords + 16 * l), _MM_HINT_T1);
        }
      const float* bh = b + c.half * 16;
      step(_mm256_loadu_ps(bh), _mm256_loadu_ps(bh + 8), _mm256_loadu_ps(bh + kNR), _mm256_loadu_ps(bh + kNR + 8), 2 * p);
    }
    if (c.kc & 1) {
      const float* bh = row + 2 * pairs * kNR + c.half * 16;
      single(_mm256_loadu_ps(bh), _mm256_loadu_ps(bh + 8), 2 * pairs);
    }
  }
  if constexpr (S == 2) {
    for (int i = 0; i < R; ++i) {
      e0[i] = _mm256_add_ps(e0[i], o0[i]);
      e1[i] = _mm256_add_ps(e1[i], o1[i]);
    }
  }
  if (!c.epi) {
    for (int i = 0; i < R; ++i) {
      _mm256_storeu_ps(ac + i * kNR, e0[i]);
      _mm256_storeu_ps(ac + i * kNR + 8, e1[i]);
    }
    return;
  }
  const int cols = c.cols - c.half * 16;
  const int64_t n = c.n0 + c.half * 16;
  for (int i = 0; i < R; ++i) {
    store_avx2(*c.epi, c.m0 + i, n, e0[i], cols);
    if (cols > 8) store_avx2(*c.epi, c.m0 + i, n + 8, e1[i], cols - 8);
  }
}

using SmallTileFn = void (*)(const SmallCall&);
template <bool BF16, size_t... I>
constexpr std::array<SmallTileFn, sizeof...(I)> make_small_table(std::index_sequence<I...>) {
  return {small_tile<static_cast<int>(I) + 1, BF16>...};
}
constexpr auto kSmallF32 = make_small_table<false>(std::make_index_sequence<kSmallRowsF32>{});
constexpr auto kSmallBf16 = make_small_table<true>(std::make_index_sequence<kSmallRowsBf16>{});

void small_m_avx2(const SmallMArgs& s, int64_t j0, int64_t j1) {
  const bool bf16 = s.b_format == DType::kBF16;
  const int rmax = bf16 ? kSmallRowsBf16 : kSmallRowsF32;
  const SmallTileFn* tiles = bf16 ? kSmallBf16.data() : kSmallF32.data();
  const int groups = static_cast<int>((s.M + rmax - 1) / rmax);
  const int rows = static_cast<int>((s.M + groups - 1) / groups);
  const int64_t panel_words = (bf16 ? (s.K + 1) / 2 : s.K) * kNR;
  alignas(32) float acc[kSmallMaxM * kNR];
  for (int64_t j = j0; j < j1; ++j) {
    SmallCall c{&s, 0, static_cast<const uint32_t*>(s.b) + j * panel_words, 0, 0, nullptr, false, true, nullptr,
                j * kNR, static_cast<int>(std::min<int64_t>(kNR, s.N - j * kNR)), 0};
    for (int64_t k0 = 0; k0 < s.K; k0 += kSmallKB) {
      c.k0 = k0;
      c.kc = std::min(kSmallKB, s.K - k0);
      c.load = k0 > 0;
      c.epi = k0 + c.kc >= s.K ? &s.epi : nullptr;
      for (c.half = 0; c.half < 2 && c.half * 16 < c.cols; ++c.half)
        for (int g = 0; g < groups; ++g) {
          c.m0 = static_cast<int64_t>(g) * rows;
          c.acc = acc + c.m0 * kNR;
          c.prefetch = g == 0 && c.half == 0;  // the other passes read the block from L1
          tiles[std::min<int64_t>(rows, s.M - c.m0) - 1](c);
        }
    }
  }
}

// Widens bf16 pair rows with the same two integer ops as the small-M kernel.
void widen_bf16_avx2(const uint32_t* panel, int64_t k0, int64_t kc, float* dst) {
  const uint32_t* src = panel + (k0 / 2) * kNR;
  const __m256i hi = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t k = 0; k < kc; k += 2) {
    const uint32_t* row = src + (k / 2) * kNR;
    for (int h = 0; h < kNR; h += 8) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + h));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k * kNR + h), _mm256_slli_epi32(w, 16));
      if (k + 1 < kc) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (k + 1) * kNR + h), _mm256_and_si256(w, hi));
    }
  }
}

}  // namespace

const IsaKernels& kernels_avx2() {
  static const IsaKernels k{kMR, gemm_f32_avx2, nullptr, gemv_avx2, nullptr, small_m_avx2, nullptr, widen_bf16_avx2, kSmallMaxM};
  return k;
}

}  // namespace tessera::cpu::gemm
