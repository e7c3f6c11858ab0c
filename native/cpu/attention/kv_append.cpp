// KV-cache append: row b's new tokens go to cache positions
// [lengths[b], lengths[b] + counts[b]); validate_kv_append has already
// refused any row that would overflow, so nothing is written on error.
#include "cpu/attention/row_convert.h"
#include "cpu/cpu_ops.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {

void kv_append(const KvAppendArgs& a) {
  const int64_t B = a.cache_k.shape[0], H = a.cache_k.shape[1], D = a.cache_k.shape[3];
  const bool bhld = a.layout == QkvLayout::kBHLD;
  const int64_t Lnew = bhld ? a.k_new.shape[2] : a.k_new.shape[1];
  const int64_t nsb = a.k_new.strides[0], nsh = a.k_new.strides[bhld ? 1 : 2], nsl = a.k_new.strides[bhld ? 2 : 1];
  const int64_t vsb = a.v_new.strides[0], vsh = a.v_new.strides[bhld ? 1 : 2], vsl = a.v_new.strides[bhld ? 2 : 1];
  const size_t ces = dtype_size(a.cache_k.dtype), kes = dtype_size(a.k_new.dtype), ves = dtype_size(a.v_new.dtype);
  // One item per (b, h, new token); copies go through an f32 row unless the
  // dtypes match (then bytes are copied, bit-exact).
  ThreadPool::global().parallel_for(B * H * Lnew, 64, [&](int64_t i0, int64_t i1, int tid) {
    float* row = static_cast<float*>(thread_scratch(tid, 0, sizeof(float) * D));
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t t = it % Lnew, h = (it / Lnew) % H, b = it / (Lnew * H);
      const int64_t n = a.counts ? a.counts[b] : Lnew;
      if (t >= n) continue;
      const int64_t pos = a.lengths[b] + t;
      const struct {
        const TensorView& cache;
        const char* src;
        DType dt;
        size_t es;
      } pairs[] = {
          {a.cache_k, static_cast<const char*>(a.k_new.data) + (b * nsb + h * nsh + t * nsl) * kes, a.k_new.dtype, kes},
          {a.cache_v, static_cast<const char*>(a.v_new.data) + (b * vsb + h * vsh + t * vsl) * ves, a.v_new.dtype, ves}};
      for (const auto& pr : pairs) {
        const TensorView& c = pr.cache;
        char* dst = static_cast<char*>(c.data) +
                    (b * c.strides[0] + h * c.strides[1] + pos * c.strides[2]) * static_cast<int64_t>(ces);
        if (pr.dt == c.dtype) {
          std::memcpy(dst, pr.src, ces * D);
        } else {
          widen_row(pr.src, pr.dt, D, row);
          narrow_row(row, c.dtype, D, dst);
        }
      }
    }
  });
  for (int64_t b = 0; b < B; ++b) a.lengths[b] += static_cast<int32_t>(a.counts ? a.counts[b] : Lnew);
}

}  // namespace tessera::cpu
