// CPU attention entry: flattens validated arguments into a Problem, picks the
// kernels for the active ISA, schedules tasks on the global thread pool and,
// for split-key decode, merges the partial softmax states.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/attention/attention_plan.h"
#include "cpu/cpu_ops.h"
#include "tessera/cpu.h"
#include "tessera/dtype_convert.h"
#include "tessera/pool.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
namespace attn {

void row_limits(const Problem& p, int64_t b, int64_t i0, int64_t n, int32_t* lim) {
  const int64_t kvl = p.kv_len[b];
  for (int64_t r = 0; r < n; ++r) {
    const int64_t pos = kvl - p.Lq + i0 + r;  // bottom-right aligned query position
    int64_t l = kvl;
    if (p.mask & kMaskCausal) l = std::min(l, pos + 1);
    if (p.mask & kMaskBlockCausal) l = pos < 0 ? 0 : std::min<int64_t>(l, p.block_end[pos]);
    lim[r] = static_cast<int32_t>(std::max<int64_t>(l, 0));
  }
}

namespace {

Operand operand(const TensorView& t, QkvLayout layout) {
  Operand o;
  o.data = static_cast<const char*>(t.data);
  o.dtype = t.dtype;
  o.sb = t.strides[0];
  o.sh = layout == QkvLayout::kBHLD ? t.strides[1] : t.strides[2];
  o.sl = layout == QkvLayout::kBHLD ? t.strides[2] : t.strides[1];
  return o;
}

KernelSet pick_kernels(const AttentionArgs& a) {
  const Isa isa = active_isa();
  const bool all_bf16 = a.q.dtype == DType::kBF16 && a.k.dtype == DType::kBF16;
  if (isa == Isa::kAvx512Bf16 && all_bf16) return attn::kernels_avx512bf16();
  if (isa >= Isa::kAvx512) return attn::kernels_avx512();
  if (isa == Isa::kAvx2) return attn::kernels_avx2();
  return attn::kernels_scalar();
}

// Writes one output row from a merged softmax state (used by split-key decode).
void store_row(const Problem& p, int64_t b, int64_t h, int64_t i, float m2, float l, const float* o) {
  char* dst = p.out + (b * p.ob + h * p.oh + i * p.ol) * static_cast<int64_t>(dtype_size(p.out_dtype));
  const float inv = l > 0 ? 1.f / l : 0.f;
  for (int64_t d = 0; d < p.D; ++d) {
    const float y = o[d] * inv;
    if (p.out_dtype == DType::kF32) reinterpret_cast<float*>(dst)[d] = y;
    else if (p.out_dtype == DType::kBF16) reinterpret_cast<uint16_t*>(dst)[d] = f32_to_bf16(y);
    else reinterpret_cast<uint16_t*>(dst)[d] = f32_to_f16(y);
  }
  if (p.lse)
    p.lse[b * p.lb + h * p.lh + i * p.ll] =
        l > 0 ? static_cast<float>(M_LN2 * (m2 + std::log2(l))) : -std::numeric_limits<float>::infinity();
}

// Combines the per-split states (m₂ₛ, lₛ, oₛ) of one query row:
// m₂ = max m₂ₛ, l = Σ 2^(m₂ₛ−m₂)·lₛ, o = Σ 2^(m₂ₛ−m₂)·oₛ.
void merge_splits(const Problem& p) {
  const int64_t rows = p.B * p.Hq * p.Lq, D = p.D, stride = D + 2;
  ThreadPool::global().parallel_for(rows, 16, [&](int64_t r0, int64_t r1, int tid) {
    float* acc = static_cast<float*>(thread_scratch(tid, 0, sizeof(float) * D));
    for (int64_t r = r0; r < r1; ++r) {
      const float* part = p.partial + r * p.splits * stride;
      float m2 = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < p.splits; ++s) m2 = std::max(m2, part[s * stride]);
      float l = 0;
      std::fill(acc, acc + D, 0.f);
      if (m2 != -std::numeric_limits<float>::infinity()) {
        for (int64_t s = 0; s < p.splits; ++s) {
          const float* st = part + s * stride;
          if (st[1] == 0) continue;
          const float w = std::exp2(st[0] - m2);
          l += w * st[1];
          for (int64_t d = 0; d < D; ++d) acc[d] += w * st[2 + d];
        }
      }
      const int64_t i = r % p.Lq, h = (r / p.Lq) % p.Hq, b = r / (p.Lq * p.Hq);
      store_row(p, b, h, i, m2, l, acc);
    }
  });
}

}  // namespace
}  // namespace attn

bool attention_splits_keys(int64_t pairs, int64_t Lq, int64_t Lk) {
  const int64_t threads = ThreadPool::global().num_threads();
  return Lq <= 2 && pairs < 2 * threads && Lk >= 4 * attn::kKeyTile;
}

void attention(const AttentionArgs& a, bool split_keys) {
  using namespace attn;
  Problem p;
  const bool bhld = a.layout == QkvLayout::kBHLD;
  p.B = a.q.shape[0];
  p.Hq = bhld ? a.q.shape[1] : a.q.shape[2];
  p.Lq = bhld ? a.q.shape[2] : a.q.shape[1];
  p.Hkv = bhld ? a.k.shape[1] : a.k.shape[2];
  p.Lk = bhld ? a.k.shape[2] : a.k.shape[1];
  p.D = a.q.shape[3];
  p.group = p.Hq / p.Hkv;
  if (p.B == 0 || p.Hq == 0 || p.Lq == 0) return;
  p.q = operand(a.q, a.layout);
  p.k = operand(a.k, a.layout);
  p.v = operand(a.v, a.layout);
  const Operand o = operand(a.out, a.layout);
  p.out = const_cast<char*>(o.data);
  p.out_dtype = a.out.dtype;
  p.ob = o.sb, p.oh = o.sh, p.ol = o.sl;
  if (!a.lse.empty()) {
    p.lse = a.lse.ptr<float>();
    p.lb = a.lse.strides[0], p.lh = a.lse.strides[1], p.ll = a.lse.strides[2];
  }
  std::vector<float> head_scale(p.Hq);
  for (int64_t h = 0; h < p.Hq; ++h)
    head_scale[h] = static_cast<float>(static_cast<double>(a.scale) * (a.head_multiplier ? a.head_multiplier[h] : 1.0) *
                                       M_LOG2E);
  p.head_scale = head_scale.data();
  p.l2norm = a.l2norm_qk;
  p.mask = a.mask;
  std::vector<int32_t> kv_len(p.B, static_cast<int32_t>(p.Lk));
  if (!a.kv_lengths.empty())
    for (int64_t b = 0; b < p.B; ++b) kv_len[b] = a.kv_lengths.ptr<const int32_t>()[b * a.kv_lengths.strides[0]];
  p.kv_len = kv_len.data();
  std::vector<int32_t> block_end;
  if (a.mask & kMaskBlockCausal) {
    block_end.resize(p.Lk);
    int64_t start = 0;
    for (int32_t bi = 0; bi < a.num_blocks; ++bi) {
      const int64_t end = start + a.block_lengths[bi];
      for (int64_t t = start; t < end; ++t) block_end[t] = static_cast<int32_t>(end);
      start = end;
    }
    p.block_end = block_end.data();
  }
  if (a.mask & kMaskSegment) {
    p.qseg = a.q_segments.ptr<const int32_t>(), p.qseg_b = a.q_segments.strides[0], p.qseg_l = a.q_segments.strides[1];
    p.kseg = a.k_segments.ptr<const int32_t>(), p.kseg_b = a.k_segments.strides[0], p.kseg_l = a.k_segments.strides[1];
  }
  if (a.mask & kMaskAdditive) {
    const TensorView& m = a.additive;
    p.add = m.ptr<const float>();
    if (m.rank == 2) {
      p.add_i = m.strides[0], p.add_j = m.strides[1];
    } else {
      p.add_b = m.shape[0] == 1 ? 0 : m.strides[0];
      p.add_h = m.shape[1] == 1 ? 0 : m.strides[1];
      p.add_i = m.strides[2], p.add_j = m.strides[3];
    }
  }

  const KernelSet ks = pick_kernels(a);
  ThreadPool& pool = ThreadPool::global();
  const int64_t threads = pool.num_threads();
  // Few query rows (decode): the row path reads each key and value once per
  // kv head, with no packing; it splits the keys when (b, kv head) pairs are
  // too few to occupy every thread.
  if (p.Lq <= 2) {
    const int64_t pairs = p.B * p.Hkv;
    if (split_keys && attention_splits_keys(pairs, p.Lq, p.Lk)) {
      p.splits = std::min<int64_t>((4 * threads + pairs - 1) / pairs, p.Lk / (2 * kKeyTile));
    }
    p.split_keys = (p.Lk + p.splits - 1) / p.splits;
    void* partial = nullptr;
    if (p.splits > 1) {
      partial = host_acquire(sizeof(float) * p.B * p.Hq * p.Lq * p.splits * (p.D + 2));
      p.partial = static_cast<float*>(partial);
    }
    try {
      pool.parallel_for(pairs * p.splits, 1, [&](int64_t t0, int64_t t1, int tid) {
        for (int64_t t = t0; t < t1; ++t) ks.row_task(p, t, tid);
      });
      if (p.splits > 1) merge_splits(p);
    } catch (...) {
      host_release(partial);
      throw;
    }
    host_release(partial);
    return;
  }
  // Tiled path: tasks are (b, h, query chunk). A chunk packs its keys once and
  // walks its query tiles over them, so chunks are whole heads unless there
  // are too few heads to keep every thread busy with dynamic scheduling.
  p.q_tile = p.Lq >= 1024 ? 96 : 48;
  const int64_t tiles = (p.Lq + p.q_tile - 1) / p.q_tile;
  const int64_t want = std::clamp<int64_t>((4 * threads + p.B * p.Hq - 1) / (p.B * p.Hq), 1, tiles);
  p.chunk_rows = (tiles + want - 1) / want * p.q_tile;
  p.chunks = (p.Lq + p.chunk_rows - 1) / p.chunk_rows;
  pool.parallel_for(p.B * p.Hq * p.chunks, 1, [&](int64_t t0, int64_t t1, int tid) {
    for (int64_t t = t0; t < t1; ++t) ks.tile_task(p, t, tid);
  });
}

}  // namespace tessera::cpu
