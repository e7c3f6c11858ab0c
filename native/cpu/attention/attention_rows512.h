// AVX-512 row path for few query rows (decode, Lq <= 2): one task is
// (b, kv head, key split) and serves every query row of the kv head's q heads,
// reading each key and value row once. Keys go 16 at a time: 16 per-key
// partial-product vectors are transpose-reduced into one vector of 16 logits,
// the online softmax runs on that vector, and O += Σ p_j·v_j follows with the
// 16 weights. The loop is bound by reading K and V, so the work per key is
// kept to a few vector instructions. Same task split and partial-state
// format as attention_rows.h (merged in attention.cpp).
#pragma once
#include <algorithm>
#include <cfloat>

#include "cpu/attention/attention_fused512.h"

namespace tessera::cpu::attn::avx512 {

// s[j] = Σ lanes of a[j] for 16 vectors: pairs, pairs of pairs, then the
// four 128-bit lanes (45 shuffles and adds instead of 16 horizontal sums).
inline __m512 reduce16(const __m512* a) {
  __m512 b[8], c[4];
  for (int i = 0; i < 8; ++i)
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {
    const __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
    c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  // c[i] lane k holds the partial sums over 128-bit lane k of keys 4i..4i+3.
  const __m512 d0 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xDD));
  const __m512 d1 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], 0x88), _mm512_shuffle_f32x4(c[2], c[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(d0, d1, 0x88), _mm512_shuffle_f32x4(d0, d1, 0xDD));
}

// Software prefetch in the key loop: rows [j + kPrefetchAhead, + kPrefetchRows).
constexpr int64_t kPrefetchAhead = 32, kPrefetchRows = 4;

// How the key loop reads a K or V row: fp32 in place (or a row already
// converted into scratch), or bf16 / f16 in place, widened in registers.
enum class RowKind { kF32, kBF16, kF16 };

// Vector c (16 values) of a row of kind RK, as fp32.
template <RowKind RK>
inline __m512 row_vec(const void* row, int64_t c) {
  if constexpr (RK == RowKind::kF32) {
    return _mm512_loadu_ps(static_cast<const float*>(row) + 16 * c);
  } else {
    const __m256i h = _mm256_loadu_si256(static_cast<const __m256i*>(row) + c);
    if constexpr (RK == RowKind::kBF16)
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    else
      return _mm512_cvtph_ps(h);
  }
}

// NV: vectors per row (Dp / 16) when fixed at compile time (fully unrolled
// dot products and updates), 0 for any. RK: how K and V rows are read; a
// bf16 / f16 kind is only chosen when both K and V have that dtype, D is a
// multiple of 16 and k is not L2-normalised (row_task512 below), so no row
// is converted into scratch first.
template <int NV, RowKind RK>
void row_task512_nv(const Problem& p, int64_t task, int tid) {
  const int64_t split = task % p.splits, bk = task / p.splits;
  const int64_t b = bk / p.Hkv, hk = bk % p.Hkv;
  const int64_t rows = p.group * p.Lq, Dp = round_up(p.D, 16), nv = NV ? NV : Dp / 16;
  // Scratch slot 4, 64-byte pieces: Q | O | lv | K rows | V rows | zero row | P | alpha | m | lim | kseg.
  const int64_t fl = 2 * rows * Dp + rows * 16 + 33 * Dp + rows * 16 + 16 + round_up(rows, 16) + round_up(p.Lq, 16) + 16;
  float* Q = static_cast<float*>(thread_scratch(tid, 4, sizeof(float) * fl));
  float* O = Q + rows * Dp;
  float* lv = O + rows * Dp;
  float* kbuf = lv + rows * 16;
  float* vbuf = kbuf + 16 * Dp;
  float* zero = vbuf + 16 * Dp;
  float* P = zero + Dp;
  float* alpha = P + rows * 16;
  float* m = alpha + 16;
  int32_t* lim = reinterpret_cast<int32_t*>(m + round_up(rows, 16));
  int32_t* kseg = lim + round_up(p.Lq, 16);

  row_limits(p, b, 0, p.Lq, lim);
  const int64_t ks = split * p.split_keys;
  const int64_t ke = std::min<int64_t>(ks + p.split_keys, *std::max_element(lim, lim + p.Lq));
  const int64_t es_q = static_cast<int64_t>(dtype_size(p.q.dtype));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = hk * p.group + r / p.Lq, i = r % p.Lq;
    float* q = Q + r * Dp;
    load_row(p.q.data + (b * p.q.sb + h * p.q.sh + i * p.q.sl) * es_q, p.q.dtype, p.D, q);
    if (p.l2norm) l2_normalize(q, p.D);
    const float c = p.head_scale[h];  // logits come out in base-2 units
    for (int64_t d = 0; d < p.D; ++d) q[d] *= c;
    std::fill(q + p.D, q + Dp, 0.f);
    m[r] = -FLT_MAX;
  }
  std::fill(O, O + rows * Dp, 0.f);
  std::fill(lv, lv + rows * 16, 0.f);
  std::fill(zero, zero + Dp, 0.f);
  const int64_t es_k = static_cast<int64_t>(dtype_size(p.k.dtype)), es_v = static_cast<int64_t>(dtype_size(p.v.dtype));
  const char* kb = p.k.data + (b * p.k.sb + hk * p.k.sh) * es_k;
  const char* vb = p.v.data + (b * p.v.sb + hk * p.v.sh) * es_v;
  const bool k_in_place = RK != RowKind::kF32 || (p.k.dtype == DType::kF32 && p.D == Dp && !p.l2norm);
  const bool v_in_place = RK != RowKind::kF32 || (p.v.dtype == DType::kF32 && p.D == Dp);
  // The loop below prefetches kPrefetchAhead keys ahead; the first ones are
  // requested here, all at once, so a short task (a decode step early in the
  // sequence: a few KiB per kv head, cold in memory) does not wait for them
  // one stream at a time.
  for (int64_t j = ks, je = std::min<int64_t>(ks + kPrefetchAhead, ke); j < je; ++j) {
    const char* kp = kb + j * p.k.sl * es_k;
    const char* vp = vb + j * p.v.sl * es_v;
    for (int64_t c = 0; c < p.D * es_k; c += 64) _mm_prefetch(kp + c, _MM_HINT_T0);
    for (int64_t c = 0; c < p.D * es_v; c += 64) _mm_prefetch(vp + c, _MM_HINT_T0);
  }
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  constexpr float kLog2e = 1.4426950408889634f;

  for (int64_t j0 = ks; j0 < ke; j0 += 16) {
    const int nk = static_cast<int>(std::min<int64_t>(16, ke - j0));
    // The hardware streamers stop at 4 KiB pages (16 fp32 rows of D = 64):
    // touching the first rows two blocks ahead starts the next pages' streams
    // early (5-8 % on the decode benchmark; prefetching whole blocks is slower).
    for (int64_t j = j0 + kPrefetchAhead, je = std::min<int64_t>(j + kPrefetchRows, ke); j < je; ++j) {
      const char* kp = kb + j * p.k.sl * es_k;
      const char* vp = vb + j * p.v.sl * es_v;
      for (int64_t c = 0; c < p.D * es_k; c += 64) _mm_prefetch(kp + c, _MM_HINT_T0);
      for (int64_t c = 0; c < p.D * es_v; c += 64) _mm_prefetch(vp + c, _MM_HINT_T0);
    }
    const void* kr[16];
    const void* vr[16];
    for (int jj = 0; jj < 16; ++jj) {
      const int64_t j = j0 + jj;
      if (jj >= nk) {
        kr[jj] = vr[jj] = zero;
        continue;
      }
      const char* ksrc = kb + j * p.k.sl * es_k;
      const char* vsrc = vb + j * p.v.sl * es_v;
      if (k_in_place) {
        kr[jj] = ksrc;
      } else {
        float* w = kbuf + jj * Dp;
        load_row(ksrc, p.k.dtype, p.D, w);
        if (p.l2norm) l2_normalize(w, p.D);
        std::fill(w + p.D, w + Dp, 0.f);
        kr[jj] = w;
      }
      if (v_in_place) {
        vr[jj] = vsrc;
      } else {
        float* w = vbuf + jj * Dp;
        load_row(vsrc, p.v.dtype, p.D, w);
        std::fill(w + p.D, w + Dp, 0.f);
        vr[jj] = w;
      }
    }
    if (p.kseg)
      for (int jj = 0; jj < 16; ++jj) kseg[jj] = jj < nk ? p.kseg[b * p.kseg_b + (j0 + jj) * p.kseg_l] : 0;
    // Logits and online softmax, one query row at a time (keys stay in L1).
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t h = hk * p.group + r / p.Lq, i = r % p.Lq;
      const float* q = Q + r * Dp;
      __m512 a[16];
      for (int jj = 0; jj < 16; ++jj) {
        __m512 acc = _mm512_mul_ps(_mm512_load_ps(q), row_vec<RK>(kr[jj], 0));
        for (int64_t c = 1; c < nv; ++c) acc = _mm512_fmadd_ps(_mm512_load_ps(q + 16 * c), row_vec<RK>(kr[jj], c), acc);
        a[jj] = acc;
      }
      __m512 s = reduce16(a);
      const int32_t lr = static_cast<int32_t>(std::clamp<int64_t>(lim[i] - j0, 0, nk));
      __mmask16 keep = _mm512_cmplt_epi32_mask(lane, _mm512_set1_epi32(lr));
      if (p.kseg)
        keep &= _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(kseg), _mm512_set1_epi32(p.qseg[b * p.qseg_b + i * p.qseg_l]));
      if (p.add) {
        const float* ar = p.add + b * p.add_b + h * p.add_h + i * p.add_i + j0 * p.add_j;
        __m512 av;
        if (p.add_j == 1) {
          av = _mm512_maskz_loadu_ps(keep, ar);
        } else {
          alignas(64) float t[16];
          for (int jj = 0; jj < 16; ++jj) t[jj] = jj < lr ? ar[jj * p.add_j] : 0.f;
          av = _mm512_load_ps(t);
        }
        s = _mm512_mask_blend_ps(keep, s, _mm512_fmadd_ps(av, _mm512_set1_ps(kLog2e), s));
        keep &= _mm512_cmp_ps_mask(s, _mm512_set1_ps(kNegInf), _CMP_NEQ_UQ);
      }
      const float tmax = _mm512_mask_reduce_max_ps(keep, s);  // −inf when nothing is visible
      const float m_new = std::max(m[r], tmax);
      const __m512 d = _mm512_max_ps(_mm512_set1_ps(m[r] - m_new), _mm512_set1_ps(-125.f));
      const __m512 al = exp2_keep(d, 0xFFFF);
      const __m512 pr = exp2_keep(_mm512_sub_ps(s, _mm512_set1_ps(m_new)), keep);
      _mm512_store_ps(P + r * 16, pr);
      alpha[r] = _mm512_cvtss_f32(al);
      _mm512_store_ps(lv + r * 16, _mm512_fmadd_ps(_mm512_load_ps(lv + r * 16), al, pr));
      m[r] = m_new;
    }
    // O = α·O + Σ_j p_j·v_j, up to 8 vectors of d per pass.
    for (int64_t r = 0; r < rows; ++r) {
      const float* pr = P + r * 16;
      const __m512 al = _mm512_set1_ps(alpha[r]);
      for (int64_t c0 = 0; c0 < nv; c0 += 8) {
        const int64_t cn = NV ? std::min(8, NV) : std::min<int64_t>(8, nv - c0);
        __m512 acc[8];
        for (int64_t c = 0; c < cn; ++c) acc[c] = _mm512_mul_ps(_mm512_load_ps(O + r * Dp + 16 * (c0 + c)), al);
        for (int jj = 0; jj < (nk == 16 ? 16 : nk); ++jj) {
          const __m512 pj = _mm512_set1_ps(pr[jj]);
          for (int64_t c = 0; c < cn; ++c) acc[c] = _mm512_fmadd_ps(pj, row_vec<RK>(vr[jj], c0 + c), acc[c]);
        }
        for (int64_t c = 0; c < cn; ++c) _mm512_store_ps(O + r * Dp + 16 * (c0 + c), acc[c]);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = hk * p.group + r / p.Lq, i = r % p.Lq;
    const float l = _mm512_reduce_add_ps(_mm512_load_ps(lv + r * 16));
    if (p.splits == 1) {
      store_output(p, b, h, i, O + r * Dp, m[r], l);
    } else {
      float* st = p.partial + (((b * p.Hq + h) * p.Lq + i) * p.splits + split) * (p.D + 2);
      st[0] = l > 0 ? m[r] : kNegInf, st[1] = l;
      std::copy(O + r * Dp, O + r * Dp + p.D, st + 2);
    }
  }
}

template <RowKind RK>
void row_task512_kind(const Problem& p, int64_t task, int tid) {
  switch (round_up(p.D, 16) / 16) {
    case 4: row_task512_nv<4, RK>(p, task, tid); break;
    case 8: row_task512_nv<8, RK>(p, task, tid); break;
    default: row_task512_nv<0, RK>(p, task, tid); break;
  }
}

inline void row_task512(const Problem& p, int64_t task, int tid) {
  const bool direct = p.k.dtype == p.v.dtype && p.D % 16 == 0 && !p.l2norm;
  if (direct && p.k.dtype == DType::kBF16) return row_task512_kind<RowKind::kBF16>(p, task, tid);
  if (direct && p.k.dtype == DType::kF16) return row_task512_kind<RowKind::kF16>(p, task, tid);
  row_task512_kind<RowKind::kF32>(p, task, tid);
}

}  // namespace tessera::cpu::attn::avx512
