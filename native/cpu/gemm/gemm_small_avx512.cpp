// AVX-512 small-M GEMM (weight streaming, gemm_kernels.h SmallMArgs): up to
// 14 (f32 B) or 12 (bf16 B) rows of x against one 32-column B panel held in
// zmm accumulators, the panel read front to back once. bf16 pairs are widened
// in registers: the even k of a pair is the word shifted left by 16, the odd
// k the word with its low half cleared — two integer ops per 16 columns, no
// table and no second pass over memory.
#include <algorithm>
#include <array>
#include <utility>

#include "cpu/gemm/epilogue_avx512.h"

namespace tessera::cpu::gemm {
namespace {

constexpr int kRowsF32 = 14, kRowsBf16 = 12;  // accumulators 2R + B vectors (2 or 4) + broadcast ≤ 32 zmm
constexpr int64_t kKB = 256;                  // k rows per block when several row groups share a panel
// Software prefetch along the panel: into L1 3 KiB ahead, and into L2 32 KiB
// ahead (far enough to cover the memory latency when the tile has many rows
// and the stream advances slowly). In-process A/B runs against the packed-A
// driver on a loaded machine (1024×4096, M = 2, 8, 18; fp32): new/old was
// 1.04–1.37 without prefetch, 0.70–1.06 with the L1 one, 0.85–1.04 with both.
constexpr int64_t kPfWords = 768, kPfFarWords = 8192;

struct Call {
  const SmallMArgs* s;
  int64_t m0;
  const uint32_t* panel;  // start of the panel (f32 or pair words)
  int64_t k0, kc;
  float* acc;  // R × 32 partial sums
  bool load, prefetch;
  const Epilogue* epi;  // null: write acc
  int64_t n0;
  int cols;
};

// R rows × 32 columns over k in [k0, k0 + kc). Every sum is one FMA chain in
// k order, as in the packed driver's kernels, so a row's result does not
// depend on how many rows share the call (batch invariance: a request
// stepped in a cohort equals its solo run bit for bit). Splitting even and
// odd k into two chains would hide the FMA latency at R ≤ 3 but change the
// rounding; the stream is memory-bound there anyway (2R chains of 64 B per
// 4 cycles exceed one core's memory bandwidth).
template <int R, bool BF16>
void tile(const Call& c) {
  constexpr int S = 1;
  __m512 e0[R], e1[R], o0[R], o1[R];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    e0[i] = c.load ? _mm512_loadu_ps(c.acc + i * kNR) : _mm512_setzero_ps();
    e1[i] = c.load ? _mm512_loadu_ps(c.acc + i * kNR + 16) : _mm512_setzero_ps();
    o0[i] = o1[i] = _mm512_setzero_ps();
  }
  const int64_t ld = c.s->x_ld;
  const float* x = c.s->x + c.m0 * ld + c.k0;
  auto step = [&](const __m512& b0, const __m512& b1, const __m512& b2, const __m512& b3, int64_t k) {
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512 a0 = _mm512_set1_ps(x[i * ld + k]), a1 = _mm512_set1_ps(x[i * ld + k + 1]);
      e0[i] = _mm512_fmadd_ps(a0, b0, e0[i]);
      e1[i] = _mm512_fmadd_ps(a0, b1, e1[i]);
      if constexpr (S == 2) {
        o0[i] = _mm512_fmadd_ps(a1, b2, o0[i]);
        o1[i] = _mm512_fmadd_ps(a1, b3, o1[i]);
      } else {
        e0[i] = _mm512_fmadd_ps(a1, b2, e0[i]);
        e1[i] = _mm512_fmadd_ps(a1, b3, e1[i]);
      }
    }
  };
  auto single = [&](const __m512& b0, const __m512& b1, int64_t k) {
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512 a0 = _mm512_set1_ps(x[i * ld + k]);
      e0[i] = _mm512_fmadd_ps(a0, b0, e0[i]);
      e1[i] = _mm512_fmadd_ps(a0, b1, e1[i]);
    }
  };
  const int64_t pairs = c.kc / 2;
  if constexpr (BF16) {
    const uint32_t* b = c.panel + (c.k0 / 2) * kNR;
    const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
    for (int64_t p = 0; p < pairs; ++p) {
      if (c.prefetch) {
        const char* q = reinterpret_cast<const char*>(b + p * kNR);
        _mm_prefetch(q + 4 * kPfWords, _MM_HINT_T0);
        _mm_prefetch(q + 4 * kPfWords + 64, _MM_HINT_T0);
        _mm_prefetch(q + 4 * kPfFarWords, _MM_HINT_T1);
        _mm_prefetch(q + 4 * kPfFarWords + 64, _MM_HINT_T1);
      }
      const __m512i w0 = _mm512_loadu_si512(b + p * kNR), w1 = _mm512_loadu_si512(b + p * kNR + 16);
      step(_mm512_castsi512_ps(_mm512_slli_epi32(w0, 16)), _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16)),
           _mm512_castsi512_ps(_mm512_and_si512(w0, hi)), _mm512_castsi512_ps(_mm512_and_si512(w1, hi)), 2 * p);
    }
    if (c.kc & 1) {  // the last k alone (its pair partner is past K: zero in B, absent in x)
      const __m512i w0 = _mm512_loadu_si512(b + pairs * kNR), w1 = _mm512_loadu_si512(b + pairs * kNR + 16);
      single(_mm512_castsi512_ps(_mm512_slli_epi32(w0, 16)), _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16)),
             2 * pairs);
    }
  } else {
    const float* b = reinterpret_cast<const float*>(c.panel) + c.k0 * kNR;
    for (int64_t p = 0; p < pairs; ++p) {
      const float* bk = b + 2 * p * kNR;
      if (c.prefetch)
        for (int l = 0; l < 4; ++l) {
          _mm_prefetch(reinterpret_cast<const char*>(bk + kPfWords + 16 * l), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(bk + kPfFarWords + 16 * l), _MM_HINT_T1);
        }
      step(_mm512_loadu_ps(bk), _mm512_loadu_ps(bk + 16), _mm512_loadu_ps(bk + kNR), _mm512_loadu_ps(bk + kNR + 16),
           2 * p);
    }
    if (c.kc & 1) single(_mm512_loadu_ps(b + 2 * pairs * kNR), _mm512_loadu_ps(b + 2 * pairs * kNR + 16), 2 * pairs);
  }
  if constexpr (S == 2) {
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      e0[i] = _mm512_add_ps(e0[i], o0[i]);
      e1[i] = _mm512_add_ps(e1[i], o1[i]);
    }
  }
  const Tile t{c.m0, c.n0, R, c.cols};
  finish_tile_avx512<R>(t, e0, e1, c.acc, c.epi);
}

using TileFn = void (*)(const Call&);
template <bool BF16, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> make_table(std::index_sequence<I...>) {
  return {tile<static_cast<int>(I) + 1, BF16>...};
}
constexpr auto kF32Tiles = make_table<false>(std::make_index_sequence<kRowsF32>{});
constexpr auto kBf16Tiles = make_table<true>(std::make_index_sequence<kRowsBf16>{});

}  // namespace

// Panels [j0, j1) one after another (they are contiguous in memory, so a
// thread streams one block). Rows in balanced groups of ≤ 14 (12): one group
// runs the whole K in registers; several walk the panel in K blocks that stay
// in L1 while every group passes over them, partial sums in a stack buffer.
void small_m_avx512(const SmallMArgs& s, int64_t j0, int64_t j1) {
  const bool bf16 = s.b_format == DType::kBF16;
  const int rmax = bf16 ? kRowsBf16 : kRowsF32;
  const TileFn* tiles = bf16 ? kBf16Tiles.data() : kF32Tiles.data();
  const int groups = static_cast<int>((s.M + rmax - 1) / rmax);
  const int rows = static_cast<int>((s.M + groups - 1) / groups);
  const int64_t panel_words = (bf16 ? (s.K + 1) / 2 : s.K) * kNR;
  const int64_t kb = groups == 1 ? s.K : kKB;
  alignas(64) float acc[kSmallMaxM * kNR];
  for (int64_t j = j0; j < j1; ++j) {
    Call c{&s, 0, static_cast<const uint32_t*>(s.b) + j * panel_words, 0, 0, nullptr, false, true, nullptr,
           j * kNR, static_cast<int>(std::min<int64_t>(kNR, s.N - j * kNR))};
    for (int64_t k0 = 0; k0 < s.K; k0 += kb) {
      c.k0 = k0;
      c.kc = std::min(kb, s.K - k0);
      c.load = k0 > 0;
      c.epi = k0 + c.kc >= s.K ? &s.epi : nullptr;
      for (int g = 0; g < groups; ++g) {
        c.m0 = static_cast<int64_t>(g) * rows;
        c.acc = acc + c.m0 * kNR;
        c.prefetch = g == 0;  // later groups read the block from L1
        tiles[std::min<int64_t>(rows, s.M - c.m0) - 1](c);
      }
    }
  }
}

void round_bf16_avx512(const float* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lane_mask(static_cast<int>(std::min<int64_t>(16, n - i)));
    const __m256i h = to_bf16_avx512(_mm512_maskz_loadu_ps(m, src + i));
    _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
  }
}

void widen_bf16_avx512(const uint32_t* panel, int64_t k0, int64_t kc, float* dst) {
  const uint32_t* src = panel + (k0 / 2) * kNR;
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t k = 0; k < kc; k += 2) {
    const uint32_t* row = src + (k / 2) * kNR;
    for (int h = 0; h < kNR; h += 16) {
      const __m512i w = _mm512_loadu_si512(row + h);
      _mm512_storeu_si512(dst + k * kNR + h, _mm512_slli_epi32(w, 16));
      if (k + 1 < kc) _mm512_storeu_si512(dst + (k + 1) * kNR + h, _mm512_and_si512(w, hi));
    }
  }
}

}  // namespace tessera::cpu::gemm
