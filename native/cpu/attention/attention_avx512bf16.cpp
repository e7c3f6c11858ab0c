// bf16 tiled attention for AVX512-BF16: q, k and v in bf16, products by
// _mm512_dpbf16_ps (two bf16 products per fp32 lane and instruction) with fp32
// accumulation, for S = Q·Kᵀ and for O += P·V with P rounded to bf16. Softmax,
// masks and scheduling are the shared ones (attention_tiled.h).
#include <immintrin.h>

#define TESSERA_ATTN_NS avx512bf16
#define TESSERA_ATTN_WIDTH 16
#include "cpu/attention/attention_tiled.h"
#ifdef TESSERA_BF16_EMULATION  // the test build only: see cpu/bf16_emulation.h
#include "cpu/bf16_emulation.h"
#endif

namespace tessera::cpu::attn {
namespace avx512bf16 {

inline __m512 dp(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
}

// Layouts (u32 = two bf16, the lower one first):
//   Q  [rows][np]           pairs (q[2t], q[2t+1]) of one row, np = ceil(D/2)
//   Kᵀ [tile][np][64]       pairs (k_j[2t], k_j[2t+1]) per key column j
//   V  [tile][32][Dp]       pairs (v_{2u}[d], v_{2u+1}[d]) per key pair u and column d
// so one dpbf16 adds two products: over head dims for S, over keys for P·V.
class Bf16Kernel {
 public:
  static constexpr bool kRoundP = true;
  const int64_t Dp;

  Bf16Kernel(const Problem& p, int tid, int64_t b, int64_t h, int64_t kend)
      : Dp(round_up(p.D, W)), np_((p.D + 1) / 2), p_(p), b_(b), h_(h) {
    const int64_t hk = h / p.group, ntiles = (kend + kKeyTile - 1) / kKeyTile;
    kt_ = static_cast<uint32_t*>(thread_scratch(tid, 0, 4 * (ntiles * np_ * kKeyTile + np_ + Dp)));
    uint32_t* row = kt_ + ntiles * np_ * kKeyTile;  // one key row as bf16 pairs
    float* wide = reinterpret_cast<float*>(row + np_);
    const char* kb = p.k.data + (b * p.k.sb + hk * p.k.sh) * 2;
    for (int64_t t = 0; t < ntiles; ++t) {
      uint32_t* tile = kt_ + t * np_ * kKeyTile;
      for (int jj = 0; jj < kKeyTile; ++jj) {
        const int64_t j = t * kKeyTile + jj;
        if (j < p.Lk) to_pairs(kb + j * p.k.sl * 2, wide, row);
        else std::fill(row, row + np_, 0u);
        for (int64_t u = 0; u < np_; ++u) tile[u * kKeyTile + jj] = row[u];
      }
    }
    const int64_t ntv = ntiles;
    vp_ = static_cast<uint32_t*>(thread_scratch(tid, 1, 4 * ntv * (kKeyTile / 2) * Dp));
    const uint16_t* vb = reinterpret_cast<const uint16_t*>(p.v.data) + b * p.v.sb + hk * p.v.sh;
    for (int64_t u = 0; u < ntv * kKeyTile / 2; ++u) {
      const int64_t j = 2 * u;
      uint32_t* dst = vp_ + u * Dp;
      const uint16_t* v0 = vb + j * p.v.sl;
      const uint16_t* v1 = v0 + p.v.sl;
      if (j + 1 < p.Lk) {
        for (int64_t d = 0; d < p.D; ++d) dst[d] = v0[d] | static_cast<uint32_t>(v1[d]) << 16;
      } else if (j < p.Lk) {
        for (int64_t d = 0; d < p.D; ++d) dst[d] = v0[d];
      } else {
        std::fill(dst, dst + p.D, 0u);
      }
      std::fill(dst + p.D, dst + Dp, 0u);
    }
    q_ = static_cast<uint32_t*>(thread_scratch(tid, 2, 4 * ((p.q_tile + kRows) * np_ + Dp)));
  }

  void pack_q(int64_t i0, int64_t n) {
    const char* qb = p_.q.data + (b_ * p_.q.sb + h_ * p_.q.sh) * 2;
    float* wide = reinterpret_cast<float*>(q_ + (p_.q_tile + kRows) * np_);
    const int64_t rows = round_up(n, kRows);
    for (int64_t r = 0; r < rows; ++r) {
      if (r < n) to_pairs(qb + (i0 + r) * p_.q.sl * 2, wide, q_ + r * np_);
      else std::fill(q_ + r * np_, q_ + (r + 1) * np_, 0u);
    }
  }

  void s_block(int64_t rb, int64_t jt, float* s) const {
    const uint32_t* q = q_ + rb * kRows * np_;
    const uint32_t* kt = kt_ + jt * np_ * kKeyTile;
    __m512 acc[kRows][4];
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
    for (int64_t u = 0; u < np_; ++u) {
      __m512i kv[4];
      for (int c = 0; c < 4; ++c) kv[c] = _mm512_loadu_si512(kt + u * kKeyTile + c * 16);
      for (int r = 0; r < kRows; ++r) {
        const __m512i qb = _mm512_set1_epi32(static_cast<int>(q[r * np_ + u]));
        for (int c = 0; c < 4; ++c) acc[r][c] = dp(acc[r][c], qb, kv[c]);
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < 4; ++c) _mm512_storeu_ps(s + r * kKeyTile + c * 16, acc[r][c]);
  }

  void pv_block(int64_t jt, int nk, const float* pm, const float* alpha, float* o) const {
    // P rows are bf16-exact (softmax_step<true>), so this conversion is exact.
    alignas(64) uint32_t p2[kRows][kKeyTile / 2];
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kKeyTile; c += 32) {
        const __m512bh pr = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(pm + r * kKeyTile + c + 16),
                                                _mm512_loadu_ps(pm + r * kKeyTile + c));
        _mm512_store_si512(&p2[r][c / 2], reinterpret_cast<__m512i>(pr));
      }
    const uint32_t* v = vp_ + jt * (kKeyTile / 2) * Dp;
    const int nkp = (nk + 1) / 2;
    for (int64_t d0 = 0; d0 < Dp;) {
      const int64_t left = (Dp - d0) / W;
      switch (left >= 4 ? 4 : left) {
        case 4: pv<4>(p2, alpha, v + d0, nkp, o + d0); d0 += 64; break;
        case 3: pv<3>(p2, alpha, v + d0, nkp, o + d0); d0 += 48; break;
        case 2: pv<2>(p2, alpha, v + d0, nkp, o + d0); d0 += 32; break;
        default: pv<1>(p2, alpha, v + d0, nkp, o + d0); d0 += 16; break;
      }
    }
  }

 private:
  // A bf16 row (optionally l2-normalised, then re-rounded) as np_ bf16 pairs.
  void to_pairs(const char* src, float* wide, uint32_t* dst) const {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
    uint16_t* d16 = reinterpret_cast<uint16_t*>(dst);
    if (p_.l2norm) {
      load_row(src, DType::kBF16, p_.D, wide);
      l2_normalize(wide, p_.D);
      for (int64_t d = 0; d < p_.D; ++d) d16[d] = f32_to_bf16_bits(wide[d]);
    } else {
      std::copy(s, s + p_.D, d16);
    }
    if (p_.D % 2) d16[p_.D] = 0;
  }

  template <int NVD>
  void pv(const uint32_t (*p2)[kKeyTile / 2], const float* alpha, const uint32_t* v, int nkp, float* o) const {
    __m512 acc[kRows][NVD];
    for (int r = 0; r < kRows; ++r) {
      const __m512 a = _mm512_set1_ps(alpha[r]);
      for (int c = 0; c < NVD; ++c) acc[r][c] = _mm512_mul_ps(_mm512_loadu_ps(o + r * Dp + c * 16), a);
    }
    for (int u = 0; u < nkp; ++u) {
      __m512i vv[NVD];
      for (int c = 0; c < NVD; ++c) vv[c] = _mm512_loadu_si512(v + u * Dp + c * 16);
      for (int r = 0; r < kRows; ++r) {
        const __m512i pb = _mm512_set1_epi32(static_cast<int>(p2[r][u]));
        for (int c = 0; c < NVD; ++c) acc[r][c] = dp(acc[r][c], pb, vv[c]);
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < NVD; ++c) _mm512_storeu_ps(o + r * Dp + c * 16, acc[r][c]);
  }

  const int64_t np_;
  const Problem& p_;
  int64_t b_, h_;
  uint32_t* kt_ = nullptr;
  uint32_t* vp_ = nullptr;
  uint32_t* q_ = nullptr;
};

}  // namespace avx512bf16

KernelSet kernels_avx512bf16() {
  // Decode is bandwidth-bound and reads bf16 rows directly; the AVX-512 row path serves it.
  return {&avx512bf16::tile_task<avx512bf16::Bf16Kernel>, kernels_avx512().row_task};
}

}  // namespace tessera::cpu::attn
