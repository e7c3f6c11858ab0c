// The AVX-512 fp32 tiled attention task: same schedule as attention_tiled.h
// (task = (b, h, query chunk); key tiles outer and 6-row blocks inner, so one
// Kᵀ/V tile stays in L1 for the whole query tile; hidden tiles skipped; masks
// evaluated only on partly hidden tiles), with the fused register-resident
// softmax of attention_fused512.h. Queries are packed pre-multiplied by the
// logit scale, so S comes out of the FMAs already in base-2 logit units.
#pragma once
#include <algorithm>
#include <cfloat>

#include "cpu/attention/attention_fp32.h"
#include "cpu/attention/attention_fused512.h"

namespace tessera::cpu::attn::avx512 {

// Lane masks of the keys of tile j0 visible to the rows of a block: key limit
// (rows past `rows` see nothing) and, where the tile mixes segments, equal ids.
inline void block_keep(const int32_t* bl, int64_t rows, int64_t j0, const int32_t* kseg, const int32_t* qseg,
                       __mmask16* keep) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int r = 0; r < kRows; ++r) {
    const int32_t lim = r < rows ? static_cast<int32_t>(std::clamp<int64_t>(bl[r] - j0, 0, kKeyTile)) : 0;
    const __m512i lv = _mm512_set1_epi32(lim);
    for (int c = 0; c < kKv; ++c) {
      __mmask16 k = _mm512_cmplt_epi32_mask(_mm512_add_epi32(lane, _mm512_set1_epi32(16 * c)), lv);
      if (kseg) k &= _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(kseg + 16 * c), _mm512_set1_epi32(qseg[r]));
      keep[r * kKv + c] = k;
    }
  }
}

inline void fused_tile_task(const Problem& p, int64_t task, int tid) {
  const int64_t chunk = task % p.chunks, bh = task / p.chunks;
  const int64_t b = bh / p.Hq, h = bh % p.Hq;
  const int64_t r0 = chunk * p.chunk_rows, r1 = std::min(p.Lq, r0 + p.chunk_rows);
  const int64_t Mq = p.q_tile, Mp = Mq + kRows, Dp = round_up(p.D, 16);
  // Scratch slot 3, in 64-byte pieces: lv | O | P | addb | alpha | m | lim | kseg.
  const int64_t fl = Mp * 16 + Mp * Dp + 2 * kRows * kKeyTile + 16 + round_up(Mp, 16) +
                     round_up(p.chunk_rows, 16) + kKeyTile;
  float* lv = static_cast<float*>(thread_scratch(tid, 3, sizeof(float) * fl));
  float* O = lv + Mp * 16;
  float* P = O + Mp * Dp;
  float* addb = P + kRows * kKeyTile;
  float* alpha = addb + kRows * kKeyTile;
  float* m = alpha + 16;
  int32_t* lim = reinterpret_cast<int32_t*>(m + round_up(Mp, 16));
  int32_t* kseg = lim + round_up(p.chunk_rows, 16);

  row_limits(p, b, r0, r1 - r0, lim);
  const int64_t kend = *std::max_element(lim, lim + (r1 - r0));
  if (kend == 0) {  // no row sees a key: zeros, lse = -inf
    for (int64_t i = r0; i < r1; ++i) store_output(p, b, h, i, O, kNegInf, 0.f);
    return;
  }
  F32Kernel kn(p, tid, b, h, kend);
  const int32_t* kseg_row = p.kseg ? p.kseg + b * p.kseg_b : nullptr;
  constexpr float kLog2e = 1.4426950408889634f;
  for (int64_t i0 = r0; i0 < r1; i0 += Mq) {
    const int64_t n = std::min(Mq, r1 - i0), nblk = (n + kRows - 1) / kRows;
    const int32_t* tl = lim + (i0 - r0);
    kn.pack_q(i0, n, p.head_scale[h]);
    std::fill(m, m + nblk * kRows, -FLT_MAX);
    std::fill(lv, lv + nblk * kRows * 16, 0.f);
    std::fill(O, O + nblk * kRows * Dp, 0.f);
    const int64_t tile_end = *std::max_element(tl, tl + n);
    int32_t qmin = 0, qmax = 0;
    int32_t qseg[128];  // segment id of each row of the tile (q_tile <= 96)
    if (p.qseg) {
      for (int64_t r = 0; r < nblk * kRows; ++r)
        qseg[r] = p.qseg[b * p.qseg_b + (i0 + std::min(r, n - 1)) * p.qseg_l];
      qmin = *std::min_element(qseg, qseg + n), qmax = *std::max_element(qseg, qseg + n);
    }
    for (int64_t j0 = 0, jt = 0; j0 < tile_end; j0 += kKeyTile, ++jt) {
      const int nk = static_cast<int>(std::min<int64_t>(kKeyTile, p.Lk - j0));
      bool seg_partial = false;
      if (kseg_row) {
        // Segment ranges of the tile's queries and keys: disjoint → skip the
        // tile; one shared id → no per-element segment test.
        int32_t kmin = kseg_row[j0 * p.kseg_l], kmax = kmin;
        for (int jj = 0; jj < kKeyTile; ++jj) {
          kseg[jj] = jj < nk ? kseg_row[(j0 + jj) * p.kseg_l] : 0;
          if (jj < nk) kmin = std::min(kmin, kseg[jj]), kmax = std::max(kmax, kseg[jj]);
        }
        if (kmax < qmin || kmin > qmax) continue;
        seg_partial = !(qmin == qmax && kmin == kmax && qmin == kmin);
      }
      const float* kt = kn.kt() + jt * Dp * kKeyTile;
      const float* vt = kn.v() + jt * kKeyTile * kn.vs();
      for (int64_t rb = 0; rb < nblk; ++rb) {
        const int64_t rows = std::min<int64_t>(kRows, n - rb * kRows);
        const int32_t* bl = tl + rb * kRows;
        const int64_t lo = *std::min_element(bl, bl + rows), hi = *std::max_element(bl, bl + rows);
        if (j0 >= hi) continue;  // every row of the block has this tile hidden
        const BlockState st{m + rb * kRows, lv + rb * kRows * 16};
        const float* q = kn.q() + rb * kRows * Dp;
        if (!seg_partial && !p.add && j0 + kKeyTile <= lo && rows == kRows) {
          s_softmax_block<false, kKv>(q, Dp, kt, BlockMask{}, st, P, alpha);
        } else {
          __mmask16 keep[kRows * kKv];
          block_keep(bl, rows, j0, seg_partial ? kseg : nullptr, qseg + rb * kRows, keep);
          BlockMask bm;
          bm.keep = keep;
          if (p.add) {
            for (int64_t r = 0; r < kRows; ++r) {
              float* ab = addb + r * kKeyTile;
              if (r >= rows) continue;  // hidden row: never read
              const float* a = p.add + b * p.add_b + h * p.add_h + (i0 + rb * kRows + r) * p.add_i + j0 * p.add_j;
              if (p.add_j == 1) {
                for (int c = 0; c < kKv; ++c)
                  _mm512_store_ps(ab + 16 * c, _mm512_mul_ps(_mm512_maskz_loadu_ps(keep[r * kKv + c], a + 16 * c),
                                                             _mm512_set1_ps(kLog2e)));
              } else {
                const int64_t lr = std::clamp<int64_t>(bl[r] - j0, 0, kKeyTile);
                for (int64_t jj = 0; jj < kKeyTile; ++jj) ab[jj] = jj < lr ? kLog2e * a[jj * p.add_j] : 0.f;
              }
            }
            bm.addb = addb;
          }
          // Key vectors that some row of the block can see.
          switch (std::min<int64_t>((hi - j0 + 15) / 16, kKv)) {
            case 1: s_softmax_block<true, 1>(q, Dp, kt, bm, st, P, alpha); break;
            case 2: s_softmax_block<true, 2>(q, Dp, kt, bm, st, P, alpha); break;
            case 3: s_softmax_block<true, 3>(q, Dp, kt, bm, st, P, alpha); break;
            default: s_softmax_block<true, kKv>(q, Dp, kt, bm, st, P, alpha); break;
          }
        }
        const int nkv = static_cast<int>(std::min<int64_t>(nk, hi - j0));
        pv_block_fused(P, alpha, vt, kn.vs(), nkv, O + rb * kRows * Dp, Dp);
      }
    }
    for (int64_t r = 0; r < n; ++r)
      store_output(p, b, h, i0 + r, O + r * Dp, m[r], _mm512_reduce_add_ps(_mm512_load_ps(lv + r * 16)));
  }
}

}  // namespace tessera::cpu::attn::avx512
