// AVX-512 fp32 kernels: a 14×32 register tile (28 zmm accumulators, two B
// vectors and one broadcast A value per k step) and the decode GEMV.
#include <array>
#include <utility>

#include "cpu/gemm/epilogue_avx512.h"

namespace tessera::cpu::gemm {
namespace {

constexpr int kMR = 14;

template <int R>
void tile_f32(const Tile& t, int64_t kc, const float* a, const float* b, float* acc, bool load_acc,
              const Epilogue* epi) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    c0[i] = load_acc ? _mm512_loadu_ps(acc + i * kNR) : _mm512_setzero_ps();
    c1[i] = load_acc ? _mm512_loadu_ps(acc + i * kNR + 16) : _mm512_setzero_ps();
  }
  // L2 prefetch of t.pf: `per` lines per k step, spread from the start.
  const int64_t per = t.pf_lines > 0 ? (t.pf_lines + kc - 1) / kc : 0;
  const char* pf = t.pf;
  const char* pf_end = t.pf + t.pf_lines * 64;
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b + k * kNR), b1 = _mm512_loadu_ps(b + k * kNR + 16);
    _mm_prefetch(reinterpret_cast<const char*>(b + (k + 8) * kNR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + (k + 8) * kNR + 16), _MM_HINT_T0);
    for (int64_t q = 0; q < per && pf < pf_end; ++q, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512 ai = _mm512_set1_ps(a[k * kMR + i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
  }
  finish_tile_avx512<R>(t, c0, c1, acc, epi);
}

template <size_t... I>
constexpr std::array<GemmF32Fn, sizeof...(I)> make_table(std::index_sequence<I...>) {
  return {tile_f32<static_cast<int>(I) + 1>...};
}
constexpr auto kTiles = make_table(std::make_index_sequence<kMR>{});

// 16 weights of row `w` at element k, widened to f32 (bf16 is the top half of an f32).
template <DType D>
inline __m512 load_w16(const void* w, int64_t idx, __mmask16 mask) {
  if constexpr (D == DType::kF32) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(w) + idx);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(w) + idx);
    if constexpr (D == DType::kBF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    else return _mm512_cvtph_ps(h);
  }
}

// Four weight rows against M ≤ 4 input rows: 4·M independent accumulator
// chains hide the FMA latency; each weight row is read from memory once.
template <DType D, int M>
void gemv_rows(const GemvArgs& g, int64_t n0, int64_t n1, float (*y)[kGemvChunk]) {
  for (int64_t n = n0; n < n1; n += 4) {
    const int nr = n1 - n < 4 ? static_cast<int>(n1 - n) : 4;
    __m512 s[4][M];
    for (int r = 0; r < 4; ++r)
      for (int m = 0; m < M; ++m) s[r][m] = _mm512_setzero_ps();
    for (int64_t k = 0; k < g.K; k += 16) {
      const __mmask16 mask = lane_mask(static_cast<int>(g.K - k));
      __m512 x[M];
      for (int m = 0; m < M; ++m) x[m] = _mm512_maskz_loadu_ps(mask, g.x + m * g.x_ld + k);
      for (int r = 0; r < 4; ++r) {
        if (r >= nr) break;
        const __m512 w = load_w16<D>(g.w, (n + r) * g.w_ld + k, mask);
        for (int m = 0; m < M; ++m) s[r][m] = _mm512_fmadd_ps(x[m], w, s[r][m]);
      }
    }
    for (int r = 0; r < nr; ++r)
      for (int m = 0; m < M; ++m) y[m][n - n0 + r] = _mm512_reduce_add_ps(s[r][m]);
  }
}

template <DType D>
void gemv_dtype(const GemvArgs& g, int64_t n0, int64_t n1, float (*y)[kGemvChunk]) {
  switch (g.M) {
    case 1: return gemv_rows<D, 1>(g, n0, n1, y);
    case 2: return gemv_rows<D, 2>(g, n0, n1, y);
    case 3: return gemv_rows<D, 3>(g, n0, n1, y);
    default: return gemv_rows<D, 4>(g, n0, n1, y);
  }
}

}  // namespace

void gemm_f32_avx512(const Tile& t, int64_t kc, const float* a, const float* b, float* acc, bool load_acc,
                     const Epilogue* epi) {
  kTiles[t.rows - 1](t, kc, a, b, acc, load_acc, epi);
}

void gemv_avx512(const GemvArgs& g, int64_t n0, int64_t n1) {
  alignas(64) float y[kGemvMaxM][kGemvChunk];
  if (g.w_dtype == DType::kF32) gemv_dtype<DType::kF32>(g, n0, n1, y);
  else if (g.w_dtype == DType::kBF16) gemv_dtype<DType::kBF16>(g, n0, n1, y);
  else gemv_dtype<DType::kF16>(g, n0, n1, y);
  for (int m = 0; m < g.M; ++m)
    for (int64_t n = n0; n < n1; n += 16)
      store_avx512(g.epi, m, n, _mm512_load_ps(&y[m][n - n0]), lane_mask(static_cast<int>(n1 - n)));
}

// 16 k values of 14 rows at a time: the rows' 16-float runs are transposed
// 16×16 in registers (rows 14, 15 zero) and the first 14 lanes of each result
// vector are one k row of the panel.
void pack_a_f32_avx512(const float* x, int64_t ld, int64_t M, int64_t K, int64_t p0, int64_t p1, float* dst) {
  for (int64_t p = p0; p < p1; ++p) {
    float* d = dst + p * K * kMR;
    const int64_t r0 = p * kMR;
    const int rows = static_cast<int>(M - r0 < kMR ? M - r0 : kMR);
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      const int nk = static_cast<int>(K - k0 < 16 ? K - k0 : 16);
      const __mmask16 km = lane_mask(nk);
      __m512 r[16];
      for (int c = 0; c < 16; ++c)
        r[c] = c < rows ? _mm512_maskz_loadu_ps(km, x + (r0 + c) * ld + k0) : _mm512_setzero_ps();
      // 16×16 transpose: pairs, quads, then 128-bit lanes.
      __m512 t[16];
      for (int c = 0; c < 16; c += 2) {
        t[c] = _mm512_unpacklo_ps(r[c], r[c + 1]);
        t[c + 1] = _mm512_unpackhi_ps(r[c], r[c + 1]);
      }
      for (int c = 0; c < 16; c += 4) {
        const __m512d a0 = _mm512_castps_pd(t[c]), a1 = _mm512_castps_pd(t[c + 1]);
        const __m512d b0 = _mm512_castps_pd(t[c + 2]), b1 = _mm512_castps_pd(t[c + 3]);
        r[c] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, b0));
        r[c + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, b0));
        r[c + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, b1));
        r[c + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, b1));
      }
      // r[4q + s] holds, in each 128-bit lane L, k = 4L + s of rows 4q .. 4q+3.
      for (int s = 0; s < 4; ++s) {
        const __m512 u0 = _mm512_shuffle_f32x4(r[s], r[4 + s], 0x44), u1 = _mm512_shuffle_f32x4(r[s], r[4 + s], 0xee);
        const __m512 u2 = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0x44), u3 = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0xee);
        t[s] = _mm512_shuffle_f32x4(u0, u2, 0x88);       // k = s
        t[4 + s] = _mm512_shuffle_f32x4(u0, u2, 0xdd);   // k = 4 + s
        t[8 + s] = _mm512_shuffle_f32x4(u1, u3, 0x88);   // k = 8 + s
        t[12 + s] = _mm512_shuffle_f32x4(u1, u3, 0xdd);  // k = 12 + s
      }
      for (int kk = 0; kk < nk; ++kk) _mm512_mask_storeu_ps(d + (k0 + kk) * kMR, 0x3fff, t[kk]);
    }
  }
}

const IsaKernels& kernels_avx512() {
  static const IsaKernels k{kMR,           gemm_f32_avx512, nullptr,           gemv_avx512,
                            pack_a_f32_avx512, small_m_avx512, round_bf16_avx512, widen_bf16_avx512};
  return k;
}

}  // namespace tessera::cpu::gemm
