// codebook_neighbours() on the CPU (definition in tessera/speculative.h).
// Blocks of kBlock rows: one GEMM gives the block's dot products with every
// code, squared distances follow from the norms, the K + kSlack smallest per
// row are preselected on those float32 values and then ranked on float64
// distances recomputed from the codes, so the order does not hinge on the
// GEMM's rounding (any near-tie beyond the slack is far below fp32 noise).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/speculative/speculative_cpu.h"
#include "tessera/gemm.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
namespace {

constexpr int64_t kBlock = 256;
constexpr int64_t kSlack = 16;

double exact_sq_distance(const float* a, const float* b, int64_t D) {
  double s = 0;
  for (int64_t d = 0; d < D; ++d) {
    const double t = static_cast<double>(a[d]) - b[d];
    s += t * t;
  }
  return s;
}

}  // namespace

void codebook_neighbours(const CodebookNeighboursArgs& a) {
  const int64_t V = a.codebook.shape[0], D = a.codebook.shape[1], K = a.out.shape[1];
  const int64_t C = std::min(V - 1, K + kSlack);
  const float* cb = a.codebook.ptr<float>();
  std::vector<float> norms(V);
  for (int64_t v = 0; v < V; ++v) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += static_cast<double>(cb[v * D + d]) * cb[v * D + d];
    norms[v] = static_cast<float>(s);
  }
  const double limit = static_cast<double>(a.max_distance) * a.max_distance;
  std::vector<float> dots(kBlock * V);
  auto& pool = ThreadPool::global();
  for (int64_t r0 = 0; r0 < V; r0 += kBlock) {
    const int64_t R = std::min(kBlock, V - r0);
    MatmulArgs mm;
    mm.a = make_view(const_cast<float*>(cb + r0 * D), DType::kF32, {R, D});
    mm.b = make_view(const_cast<float*>(cb), DType::kF32, {V, D});
    mm.trans_b = true;
    mm.c = make_view(dots.data(), DType::kF32, {R, V});
    matmul(mm);
    pool.parallel_for(R, 8, [&](int64_t lo, int64_t hi, int tid) {
      int32_t* idx = static_cast<int32_t*>(thread_scratch(tid, 0, sizeof(int32_t) * V));
      auto* ranked = static_cast<std::pair<double, int32_t>*>(thread_scratch(tid, 1, sizeof(std::pair<double, int32_t>) * C));
      for (int64_t i = lo; i < hi; ++i) {
        const int64_t v = r0 + i;
        const float* g = dots.data() + i * V;
        auto approx = [&](int32_t u) { return u == v ? std::numeric_limits<float>::infinity() : norms[v] + norms[u] - 2.f * g[u]; };
        for (int64_t u = 0; u < V; ++u) idx[u] = static_cast<int32_t>(u);
        auto closer = [&](int32_t x, int32_t y) { const float dx = approx(x), dy = approx(y); return dx < dy || (dx == dy && x < y); };
        std::nth_element(idx, idx + (C - 1), idx + V, closer);
        for (int64_t c = 0; c < C; ++c) ranked[c] = {exact_sq_distance(cb + v * D, cb + static_cast<int64_t>(idx[c]) * D, D), idx[c]};
        std::sort(ranked, ranked + C);  // by distance, then index
        int32_t* out = a.out.ptr<int32_t>() + v * K;
        float* dist = a.distances.empty() ? nullptr : a.distances.ptr<float>() + v * K;
        for (int64_t k = 0; k < K; ++k) {
          const bool ok = ranked[k].first <= limit;
          out[k] = ok ? ranked[k].second : -1;
          if (dist) dist[k] = ok ? static_cast<float>(std::sqrt(ranked[k].first)) : std::numeric_limits<float>::infinity();
        }
      }
    });
  }
}

}  // namespace tessera::cpu
