// Rotary position embedding: y[i0] = x[i0]·cos − x[i1]·sin,
// y[i1] = x[i0]·sin + x[i1]·cos for each pair (i0, i1) of the first R dims,
// with (i0, i1) = (2j, 2j+1) (interleaved) or (j, j + R/2) (half). Dims
// beyond R pass through. Computed in f32; out may be x itself.
#include "cpu/attention/row_convert.h"
#include "cpu/cpu_ops.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {

void rope_apply(const RopeArgs& a) {
  const bool bhld = a.layout == QkvLayout::kBHLD;
  const int64_t B = a.x.shape[0], H = bhld ? a.x.shape[1] : a.x.shape[2], L = bhld ? a.x.shape[2] : a.x.shape[1];
  const int64_t D = a.x.shape[3], R = a.rotary_dim == 0 ? D : a.rotary_dim, half = R / 2;
  const int64_t xb = a.x.strides[0], xh = a.x.strides[bhld ? 1 : 2], xl = a.x.strides[bhld ? 2 : 1];
  const int64_t yb = a.out.strides[0], yh = a.out.strides[bhld ? 1 : 2], yl = a.out.strides[bhld ? 2 : 1];
  const int64_t es = static_cast<int64_t>(dtype_size(a.x.dtype));
  const int64_t table_heads = a.cos.rank == 3 ? H : 1;
  const float* cosv = a.cos.ptr<const float>();
  const float* sinv = a.sin.ptr<const float>();
  const int32_t* pos = a.positions.empty() ? nullptr : a.positions.ptr<const int32_t>();
  const bool pos_per_batch = pos && a.positions.rank == 2;
  const bool interleaved = a.style == RopeStyle::kInterleaved;
  ThreadPool::global().parallel_for(B * L * H, 64, [&](int64_t i0, int64_t i1, int tid) {
    float* row = static_cast<float*>(thread_scratch(tid, 0, sizeof(float) * D));
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t h = it % H, l = (it / H) % L, b = it / (H * L);
      const int64_t p = pos ? pos[pos_per_batch ? b * L + l : l] : l;
      const float* c = cosv + (p * table_heads + (table_heads == 1 ? 0 : h)) * half;
      const float* s = sinv + (p * table_heads + (table_heads == 1 ? 0 : h)) * half;
      const char* src = static_cast<const char*>(a.x.data) + (b * xb + h * xh + l * xl) * es;
      char* dst = static_cast<char*>(a.out.data) + (b * yb + h * yh + l * yl) * es;
      widen_row(src, a.x.dtype, D, row);
      for (int64_t j = 0; j < half; ++j) {
        const int64_t e0 = interleaved ? 2 * j : j, e1 = interleaved ? 2 * j + 1 : j + half;
        const float x0 = row[e0], x1 = row[e1];
        row[e0] = x0 * c[j] - x1 * s[j];
        row[e1] = x0 * s[j] + x1 * c[j];
      }
      narrow_row(row, a.x.dtype, D, dst);
    }
  });
}

}  // namespace tessera::cpu
