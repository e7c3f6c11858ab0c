// The tiled attention task (scheduler side of the kernel): one task is
// (b, h, query chunk). It walks query tiles × key tiles, skips tiles that the
// mask hides entirely, evaluates masks only on tiles that are partly hidden,
// and keeps the online-softmax state per row. The kernel class Kn supplies
// packing and the two micro-kernels (fp32 or bf16). Per-ISA like attention_vec.h.
#pragma once
#include <algorithm>

#include "cpu/attention/attention_softmax.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::attn::TESSERA_ATTN_NS {

template <class Kn>
void tile_task(const Problem& p, int64_t task, int tid) {
  const int64_t chunk = task % p.chunks, bh = task / p.chunks;
  const int64_t b = bh / p.Hq, h = bh % p.Hq;
  const int64_t r0 = chunk * p.chunk_rows, r1 = std::min(p.Lq, r0 + p.chunk_rows);
  const int64_t Mq = p.q_tile, Dp = round_up(p.D, W);
  // Row state and tiles, scratch slot 3: lim | m | l | alpha | kseg | S | O.
  const size_t floats = p.chunk_rows + 3 * (Mq + kRows) + kKeyTile + (Mq + kRows) * (kKeyTile + Dp);
  int32_t* lim = static_cast<int32_t*>(thread_scratch(tid, 3, sizeof(float) * floats));
  float* m = reinterpret_cast<float*>(lim + p.chunk_rows);
  float* l = m + Mq + kRows;
  float* alpha = l + Mq + kRows;
  int32_t* kseg = reinterpret_cast<int32_t*>(alpha + Mq + kRows);
  float* S = reinterpret_cast<float*>(kseg + kKeyTile);
  float* O = S + (Mq + kRows) * kKeyTile;

  row_limits(p, b, r0, r1 - r0, lim);
  const int64_t kend = *std::max_element(lim, lim + (r1 - r0));
  if (kend == 0) {  // no row sees a key: zeros, lse = -inf
    for (int64_t i = r0; i < r1; ++i) store_output(p, b, h, i, O, kNegInf, 0.f);
    return;
  }
  Kn kn(p, tid, b, h, kend);
  const float c = p.head_scale[h];
  const int32_t* kseg_row = p.kseg ? p.kseg + b * p.kseg_b : nullptr;
  for (int64_t i0 = r0; i0 < r1; i0 += Mq) {
    const int64_t n = std::min(Mq, r1 - i0), nblk = (n + kRows - 1) / kRows;
    const int32_t* tl = lim + (i0 - r0);
    kn.pack_q(i0, n);
    std::fill(m, m + nblk * kRows, kNegInf);
    std::fill(l, l + nblk * kRows, 0.f);
    std::fill(O, O + nblk * kRows * Dp, 0.f);
    const int64_t tile_end = *std::max_element(tl, tl + n);
    int32_t qmin = 0, qmax = 0;
    if (p.qseg) {
      qmin = qmax = p.qseg[b * p.qseg_b + i0 * p.qseg_l];
      for (int64_t r = 1; r < n; ++r) {
        const int32_t s = p.qseg[b * p.qseg_b + (i0 + r) * p.qseg_l];
        qmin = std::min(qmin, s), qmax = std::max(qmax, s);
      }
    }
    for (int64_t j0 = 0, jt = 0; j0 < tile_end; j0 += kKeyTile, ++jt) {
      const int nk = static_cast<int>(std::min<int64_t>(kKeyTile, p.Lk - j0));
      bool seg_partial = false;
      if (kseg_row) {
        // Segment ranges of the tile's queries and keys: disjoint → skip the
        // tile; one shared id → no per-element segment test.
        int32_t kmin = kseg_row[j0 * p.kseg_l], kmax = kmin;
        for (int jj = 0; jj < nk; ++jj) {
          kseg[jj] = kseg_row[(j0 + jj) * p.kseg_l];
          kmin = std::min(kmin, kseg[jj]), kmax = std::max(kmax, kseg[jj]);
        }
        if (kmax < qmin || kmin > qmax) continue;
        seg_partial = !(qmin == qmax && kmin == kmax && qmin == kmin);
      }
      for (int64_t rb = 0; rb < nblk; ++rb) {
        const int64_t rows = std::min<int64_t>(kRows, n - rb * kRows);
        const int32_t* bl = tl + rb * kRows;
        const int64_t lo = *std::min_element(bl, bl + rows), hi = *std::max_element(bl, bl + rows);
        if (j0 >= hi) continue;  // every row of the block has this tile masked
        const bool partial = seg_partial || p.add || j0 + kKeyTile > lo;
        float* Sb = S + rb * kRows * kKeyTile;
        kn.s_block(rb, jt, Sb);
        for (int64_t r = 0; r < kRows; ++r) {
          const int64_t row = rb * kRows + r;
          if (r >= rows) {  // padding row: contributes nothing
            std::fill(Sb + r * kKeyTile, Sb + (r + 1) * kKeyTile, 0.f);
            alpha[row] = 1.f;
            continue;
          }
          RowMask rm;
          rm.lim = static_cast<int32_t>(std::clamp<int64_t>(bl[r] - j0, 0, kKeyTile));
          if (kseg_row && seg_partial) {
            rm.kseg = kseg;
            rm.qseg = p.qseg[b * p.qseg_b + (i0 + row) * p.qseg_l];
          }
          if (p.add) {
            rm.add = p.add + b * p.add_b + h * p.add_h + (i0 + row) * p.add_i + j0 * p.add_j;
            rm.add_j = p.add_j;
          }
          alpha[row] = softmax_step<Kn::kRoundP>(Sb + r * kKeyTile, c, partial, rm, m + row, l + row);
        }
        const int nkv = static_cast<int>(std::min<int64_t>(nk, hi - j0));
        kn.pv_block(jt, nkv, Sb, alpha + rb * kRows, O + rb * kRows * Dp);
      }
    }
    for (int64_t r = 0; r < n; ++r) store_output(p, b, h, i0 + r, O + r * Dp, m[r], l[r]);
  }
}

}  // namespace tessera::cpu::attn::TESSERA_ATTN_NS
