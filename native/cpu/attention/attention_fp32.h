// fp32 tiled attention: operand packing and the register-blocked
// micro-kernels for S = Q·Kᵀ and O = α·O + P·V. Any input dtype is widened
// to fp32 while packing. Per-ISA like attention_vec.h.
#pragma once
#include <algorithm>

#include "cpu/attention/attention_vec.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::attn::TESSERA_ATTN_NS {

// Accumulators of the micro-kernels: kRows rows × NVK (NVD) vectors. AVX-512
// has 32 registers (24 accumulators + loads); 16-register ISAs take 12.
constexpr int kSVecs = W == 16 ? 4 : 2;
constexpr int kPvVecs = W == 16 ? 4 : 2;

// S[r][c] = Σ_d Q[r][d]·Kt[d][c] for kRows rows and NVK·W key columns.
// Kt is a packed tile [Dp][kKeyTile] (already offset to the first column).
template <int NVK>
inline void s_micro(const float* q, int64_t Dp, const float* kt, float* s) {
  vf acc[kRows][NVK];
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < NVK; ++c) acc[r][c] = vf{};
  for (int64_t d = 0; d < Dp; ++d) {
    vf kv[NVK];
    for (int c = 0; c < NVK; ++c) kv[c] = load(kt + d * kKeyTile + c * W);
    for (int r = 0; r < kRows; ++r) {
      const vf qb = splat(q[r * Dp + d]);
      for (int c = 0; c < NVK; ++c) acc[r][c] += qb * kv[c];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < NVK; ++c) store(s + r * kKeyTile + c * W, acc[r][c]);
}

// O[r][d0 .. d0 + NVD·W) = α_r·O[r][..] + Σ_{j<nk} P[r][j]·V[j][..].
template <int NVD>
inline void pv_micro(const float* pm, const float* alpha, const float* v, int64_t vs, int nk, float* o, int64_t os) {
  vf acc[kRows][NVD];
  for (int r = 0; r < kRows; ++r) {
    const vf a = splat(alpha[r]);
    for (int c = 0; c < NVD; ++c) acc[r][c] = load(o + r * os + c * W) * a;
  }
  for (int j = 0; j < nk; ++j) {
    vf vv[NVD];
    for (int c = 0; c < NVD; ++c) vv[c] = load(v + j * vs + c * W);
    for (int r = 0; r < kRows; ++r) {
      const vf pb = splat(pm[r * kKeyTile + j]);
      for (int c = 0; c < NVD; ++c) acc[r][c] += pb * vv[c];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < NVD; ++c) store(o + r * os + c * W, acc[r][c]);
}

#if TESSERA_ATTN_WIDTH == 16
// dst[c·ds + i] = rows[i][d0 + c] for i, c < 16: a 16×16 transpose in registers
// (pairs of rows interleaved, then pairs of pairs, then 128-bit lanes twice).
inline void transpose16(const float* const* rows, int64_t d0, float* dst, int64_t ds) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(rows[i] + d0);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[4g + c] holds rows 4g..4g+3 of columns 4k + c in 128-bit lane k.
  for (int g = 0; g < 4; ++g) {
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), e = _mm512_castps_pd(t[4 * g + 3]);
    r[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, e));
    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, e));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88), w = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
    const __m512 x = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88), y = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
    _mm512_storeu_ps(dst + (c + 0) * ds, _mm512_shuffle_f32x4(v, x, 0x88));
    _mm512_storeu_ps(dst + (c + 8) * ds, _mm512_shuffle_f32x4(v, x, 0xDD));
    _mm512_storeu_ps(dst + (c + 4) * ds, _mm512_shuffle_f32x4(w, y, 0x88));
    _mm512_storeu_ps(dst + (c + 12) * ds, _mm512_shuffle_f32x4(w, y, 0xDD));
  }
}
#endif

// One task's packed operands. Keys [0, kend) of the task's kv head are packed
// once (Kᵀ tiles; V only when it cannot be read in place) and reused by all
// query tiles of the task. Scratch slots: 0 Kᵀ, 1 V, 2 Q tile.
class F32Kernel {
 public:
  static constexpr bool kRoundP = false;
  const int64_t Dp;  // head dim padded to whole vectors (padding is zero)

  F32Kernel(const Problem& p, int tid, int64_t b, int64_t h, int64_t kend)
      : Dp(round_up(p.D, W)), p_(p), b_(b), h_(h) {
    const int64_t hk = h / p.group, ntiles = (kend + kKeyTile - 1) / kKeyTile;
    kt_ = static_cast<float*>(thread_scratch(tid, 0, sizeof(float) * (ntiles * Dp * kKeyTile + Dp)));
    float* row = kt_ + ntiles * Dp * kKeyTile;  // one widened key row
    const char* kb = p.k.data + (b * p.k.sb + hk * p.k.sh) * static_cast<int64_t>(dtype_size(p.k.dtype));
    (void)row;
    const int64_t es = static_cast<int64_t>(dtype_size(p.k.dtype));
#if TESSERA_ATTN_WIDTH == 16
    // 16 keys at a time: rows are read in place (fp32, whole vectors, no
    // l2-norm) or widened into a [16][Dp] buffer, then transposed 16×16 in registers.
    const bool in_place = p.k.dtype == DType::kF32 && p.D == Dp && !p.l2norm;
    float* wide = static_cast<float*>(thread_scratch(tid, 5, sizeof(float) * 17 * Dp));
    float* zero = wide + 16 * Dp;
    std::fill(zero, zero + Dp, 0.f);
    for (int64_t j0 = 0; j0 < ntiles * kKeyTile; j0 += 16) {
      const float* rows[16];
      for (int jj = 0; jj < 16; ++jj) {
        const int64_t j = j0 + jj;
        if (j >= p.Lk) {
          rows[jj] = zero;
        } else if (in_place) {
          rows[jj] = reinterpret_cast<const float*>(kb + j * p.k.sl * es);
        } else {
          float* w = wide + jj * Dp;
          load_row(kb + j * p.k.sl * es, p.k.dtype, p.D, w);
          if (p.l2norm) l2_normalize(w, p.D);
          std::fill(w + p.D, w + Dp, 0.f);
          rows[jj] = w;
        }
      }
      float* dst = kt_ + (j0 / kKeyTile) * Dp * kKeyTile + j0 % kKeyTile;
      for (int64_t d0 = 0; d0 < Dp; d0 += 16) transpose16(rows, d0, dst + d0 * kKeyTile, kKeyTile);
    }
#else
    for (int64_t t = 0; t < ntiles; ++t) {
      float* tile = kt_ + t * Dp * kKeyTile;
      for (int jj = 0; jj < kKeyTile; ++jj) {
        const int64_t j = t * kKeyTile + jj;
        if (j < p.Lk) {
          load_row(kb + j * p.k.sl * es, p.k.dtype, p.D, row);
          if (p.l2norm) l2_normalize(row, p.D);
        } else {
          std::fill(row, row + p.D, 0.f);
        }
        for (int64_t d = 0; d < p.D; ++d) tile[d * kKeyTile + jj] = row[d];
      }
      std::fill(tile + p.D * kKeyTile, tile + Dp * kKeyTile, 0.f);
    }
#endif
    const char* vb = p.v.data + (b * p.v.sb + hk * p.v.sh) * static_cast<int64_t>(dtype_size(p.v.dtype));
    if (p.v.dtype == DType::kF32 && p.D == Dp) {
      v_ = reinterpret_cast<const float*>(vb);
      vs_ = p.v.sl;
    } else {
      const int64_t nv = std::min<int64_t>(kend, p.Lk);
      float* vp = static_cast<float*>(thread_scratch(tid, 1, sizeof(float) * (nv * Dp + 1)));
      for (int64_t j = 0; j < nv; ++j) {
        load_row(vb + j * p.v.sl * static_cast<int64_t>(dtype_size(p.v.dtype)), p.v.dtype, p.D, vp + j * Dp);
        for (int64_t d = p.D; d < Dp; ++d) vp[j * Dp + d] = 0.f;
      }
      v_ = vp;
      vs_ = Dp;
    }
    q_ = static_cast<float*>(thread_scratch(tid, 2, sizeof(float) * (p.q_tile + kRows) * Dp));
  }

  // Widens (and l2-normalises, then multiplies by `scale`) query rows
  // [i0, i0 + n); rows up to the next multiple of kRows are zero.
  void pack_q(int64_t i0, int64_t n, float scale = 1.f) {
    const int64_t es = static_cast<int64_t>(dtype_size(p_.q.dtype));
    const char* qb = p_.q.data + (b_ * p_.q.sb + h_ * p_.q.sh) * es;
    const int64_t rows = round_up(n, kRows);
    for (int64_t r = 0; r < rows; ++r) {
      float* dst = q_ + r * Dp;
      if (r < n) {
        load_row(qb + (i0 + r) * p_.q.sl * es, p_.q.dtype, p_.D, dst);
        if (p_.l2norm) l2_normalize(dst, p_.D);
        if (scale != 1.f)
          for (int64_t d = 0; d < p_.D; ++d) dst[d] *= scale;
      }
      for (int64_t d = r < n ? p_.D : 0; d < Dp; ++d) dst[d] = 0.f;
    }
  }

  // S [kRows][kKeyTile] for row block rb and key tile jt.
  void s_block(int64_t rb, int64_t jt, float* s) const {
    const float* q = q_ + rb * kRows * Dp;
    const float* kt = kt_ + jt * Dp * kKeyTile;
    for (int c = 0; c < kKeyTile; c += kSVecs * W) s_micro<kSVecs>(q, Dp, kt + c, s + c);
  }

  // O rows of block rb (row stride Dp) = α·O + P·V over the first nk keys of tile jt.
  void pv_block(int64_t jt, int nk, const float* pm, const float* alpha, float* o) const {
    const float* v = v_ + jt * kKeyTile * vs_;
    for (int64_t d0 = 0; d0 < Dp;) {
      const int64_t left = (Dp - d0) / W;
      if (left >= kPvVecs) {
        pv_micro<kPvVecs>(pm, alpha, v + d0, vs_, nk, o + d0, Dp);
        d0 += kPvVecs * W;
      } else if (left == 3) {
        pv_micro<3>(pm, alpha, v + d0, vs_, nk, o + d0, Dp);
        d0 += 3 * W;
      } else if (left == 2) {
        pv_micro<2>(pm, alpha, v + d0, vs_, nk, o + d0, Dp);
        d0 += 2 * W;
      } else {
        pv_micro<1>(pm, alpha, v + d0, vs_, nk, o + d0, Dp);
        d0 += W;
      }
    }
  }

  const float* kt() const { return kt_; }  // Kᵀ tiles [ntiles][Dp][kKeyTile]
  const float* v() const { return v_; }    // value rows, stride vs()
  int64_t vs() const { return vs_; }
  const float* q() const { return q_; }    // packed query tile [rows][Dp]

 private:
  const Problem& p_;
  int64_t b_, h_;
  float* kt_ = nullptr;
  const float* v_ = nullptr;
  int64_t vs_ = 0;
  float* q_ = nullptr;
};

}  // namespace tessera::cpu::attn::TESSERA_ATTN_NS
