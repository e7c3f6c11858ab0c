// Row path for few query rows (decode, Lq <= 2): one task is (b, kv head, key
// split) and serves every query row of the kv head's q heads, so each key and
// value row is read from memory once per step, in place when it is fp32 and
// whole vectors wide. The key loop is bandwidth-bound; dot products reduce
// one vector per key. Per-ISA like attention_vec.h.
#pragma once
#include <algorithm>

#include "cpu/attention/attention_softmax.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::attn::TESSERA_ATTN_NS {

inline float dot(const float* a, const float* b, int64_t Dp) {
  vf s0 = vf{}, s1 = vf{};
  int64_t d = 0;
  for (; d + 2 * W <= Dp; d += 2 * W) {
    s0 += load(a + d) * load(b + d);
    s1 += load(a + d + W) * load(b + d + W);
  }
  if (d < Dp) s0 += load(a + d) * load(b + d);
  return hsum(s0 + s1);
}

inline void row_task(const Problem& p, int64_t task, int tid) {
  const int64_t split = task % p.splits, bk = task / p.splits;
  const int64_t b = bk / p.Hkv, hk = bk % p.Hkv;
  const int64_t rows = p.group * p.Lq, Dp = round_up(p.D, W);
  // Scratch slot 4: lim[Lq] | m | l | kseg | Q | O | S | key row | value row.
  const size_t floats = p.Lq + 2 * rows + kKeyTile + 2 * rows * Dp + rows * kKeyTile + 2 * Dp;
  int32_t* lim = static_cast<int32_t*>(thread_scratch(tid, 4, sizeof(float) * floats));
  float* m = reinterpret_cast<float*>(lim + p.Lq);
  float* l = m + rows;
  int32_t* kseg = reinterpret_cast<int32_t*>(l + rows);
  float* Q = reinterpret_cast<float*>(kseg + kKeyTile);
  float* O = Q + rows * Dp;
  float* S = O + rows * Dp;
  float* krow = S + rows * kKeyTile;
  float* vrow = krow + Dp;

  row_limits(p, b, 0, p.Lq, lim);
  const int64_t ks = split * p.split_keys;
  const int64_t ke = std::min<int64_t>(ks + p.split_keys, *std::max_element(lim, lim + p.Lq));
  const int64_t es_q = static_cast<int64_t>(dtype_size(p.q.dtype));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = hk * p.group + r / p.Lq, i = r % p.Lq;
    float* q = Q + r * Dp;
    load_row(p.q.data + (b * p.q.sb + h * p.q.sh + i * p.q.sl) * es_q, p.q.dtype, p.D, q);
    if (p.l2norm) l2_normalize(q, p.D);
    std::fill(q + p.D, q + Dp, 0.f);
    m[r] = kNegInf, l[r] = 0.f;
  }
  std::fill(O, O + rows * Dp, 0.f);
  std::fill(krow + p.D, krow + Dp, 0.f);
  std::fill(vrow + p.D, vrow + Dp, 0.f);
  const int64_t es_k = static_cast<int64_t>(dtype_size(p.k.dtype));
  const char* kb = p.k.data + (b * p.k.sb + hk * p.k.sh) * es_k;
  const char* vb = p.v.data + (b * p.v.sb + hk * p.v.sh) * es_k;
  const bool k_in_place = p.k.dtype == DType::kF32 && p.D == Dp && !p.l2norm;
  const bool v_in_place = p.v.dtype == DType::kF32 && p.D == Dp;

  for (int64_t j0 = ks; j0 < ke; j0 += kKeyTile) {
    const int nk = static_cast<int>(std::min<int64_t>(kKeyTile, ke - j0));
    for (int jj = 0; jj < nk; ++jj) {
      const char* src = kb + (j0 + jj) * p.k.sl * es_k;
      const float* kr = reinterpret_cast<const float*>(src);
      if (!k_in_place) {
        load_row(src, p.k.dtype, p.D, krow);
        if (p.l2norm) l2_normalize(krow, p.D);
        kr = krow;
      }
      for (int64_t r = 0; r < rows; ++r) S[r * kKeyTile + jj] = dot(Q + r * Dp, kr, Dp);
    }
    if (p.kseg)
      for (int jj = 0; jj < nk; ++jj) kseg[jj] = p.kseg[b * p.kseg_b + (j0 + jj) * p.kseg_l];
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t h = hk * p.group + r / p.Lq, i = r % p.Lq;
      RowMask rm;
      rm.lim = static_cast<int32_t>(std::clamp<int64_t>(lim[i] - j0, 0, nk));
      if (p.kseg) rm.kseg = kseg, rm.qseg = p.qseg[b * p.qseg_b + i * p.qseg_l];
      if (p.add) rm.add = p.add + b * p.add_b + h * p.add_h + i * p.add_i + j0 * p.add_j, rm.add_j = p.add_j;
      const bool partial = rm.lim < kKeyTile || p.kseg || p.add;
      const float a = softmax_step<false>(S + r * kKeyTile, p.head_scale[h], partial, rm, m + r, l + r);
      const vf av = splat(a);
      for (int64_t d = 0; d < Dp; d += W) store(O + r * Dp + d, load(O + r * Dp + d) * av);
    }
    for (int jj = 0; jj < nk; ++jj) {
      const char* src = vb + (j0 + jj) * p.v.sl * es_k;
      const float* vr = reinterpret_cast<const float*>(src);
      if (!v_in_place) {
        load_row(src, p.v.dtype, p.D, vrow);
        vr = vrow;
      }
      for (int64_t r = 0; r < rows; ++r) {
        const float pj = S[r * kKeyTile + jj];
        if (pj == 0.f) continue;
        const vf pv = splat(pj);
        float* o = O + r * Dp;
        for (int64_t d = 0; d < Dp; d += W) store(o + d, load(o + d) + pv * load(vr + d));
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = hk * p.group + r / p.Lq, i = r % p.Lq;
    if (p.splits == 1) {
      store_output(p, b, h, i, O + r * Dp, m[r], l[r]);
    } else {
      float* st = p.partial + (((b * p.Hq + h) * p.Lq + i) * p.splits + split) * (p.D + 2);
      st[0] = m[r], st[1] = l[r];
      std::copy(O + r * Dp, O + r * Dp + p.D, st + 2);
    }
  }
}

}  // namespace tessera::cpu::attn::TESSERA_ATTN_NS
