// sample() and cfg_combine() on the CPU; the exact definition is in
// tessera/sampling.h. Each row is processed start to finish by one thread in a
// fixed order, so the output depends only on (logits, options, seed, row,
// step), never on the thread count. Scratch is one pooled block per call
// (float64 values and an index list per thread).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "cpu/gemm/gemm_driver.h"
#include "cpu/nn/nn_ops.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
namespace {

using gemm::PooledBuffer;

// The one CFG formula, shared by sample() and cfg_combine() so both round alike.
inline float cfg_mix(float c, float u, float s) { return u + s * (c - u); }

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Order-preserving 64-bit key of a double (no NaN): a < b iff key(a) < key(b),
// except that −0 sorts just below +0 (they compare equal as doubles).
inline uint64_t order_key(double v) {
  uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return (u >> 63) ? ~u : (u | (uint64_t{1} << 63));
}
inline double from_order_key(uint64_t k) {
  const uint64_t u = (k >> 63) ? (k & ~(uint64_t{1} << 63)) : ~k;
  double v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// The k-th largest of x[0..V) (1 <= k <= V), the value nth_element finds:
// a most-significant-digit-first radix select on order keys, 8 bits a pass,
// each pass over the candidates still in play (compacted in `keys`, V
// entries of scratch): about V + V/2 + ... key visits, no copy of x and no
// branchy partitioning.
double kth_largest(const double* x, int64_t V, int64_t k, uint64_t* keys) {
  for (int64_t i = 0; i < V; ++i) keys[i] = order_key(x[i]);
  int64_t n = V;
  for (int shift = 56; shift >= 0 && n > 1; shift -= 8) {
    int64_t hist[256] = {};
    for (int64_t i = 0; i < n; ++i) ++hist[(keys[i] >> shift) & 255];
    int d = 255;
    int64_t above = 0;  // candidates with a larger digit
    for (; d > 0 && above + hist[d] < k; --d) above += hist[d];
    k -= above;
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i)
      if (static_cast<int>((keys[i] >> shift) & 255) == d) keys[m++] = keys[i];
    n = m;
  }
  return from_order_key(keys[0]);  // every remaining candidate has this key
}

// One row: fills e[0..V) with the unnormalised kept probabilities (0 = dropped),
// returns their sum. x and order are scratch of V entries.
double process_row(const SampleArgs& a, int64_t r, double* x, double* e, int32_t* order) {
  const int64_t V = a.logits.shape[1];
  const float* lc = a.logits.ptr<float>() + r * a.logits.strides[0];
  const float* lu = a.uncond.empty() ? nullptr : a.uncond.ptr<float>() + r * a.uncond.strides[0];
  const double inv_t = 1.0 / std::max(static_cast<double>(a.temperature), 1e-5);
  double mx = kNegInf;
  for (int64_t i = 0; i < V; ++i) {
    const float l = lu ? cfg_mix(lc[i], lu[i], a.cfg_scale) : lc[i];
    TESSERA_CHECK(!std::isnan(l) && l != std::numeric_limits<float>::infinity(), kInvalidArgument,
                  "sample: logits row " + std::to_string(r) + " holds NaN or +Inf at index " + std::to_string(i));
    x[i] = static_cast<double>(l) * inv_t;
    mx = std::max(mx, x[i]);
  }
  TESSERA_CHECK(mx != kNegInf, kInvalidArgument,
                "sample: every logit of row " + std::to_string(r) + " is -Inf; nothing can be sampled");

  // top-k: the k-th largest value is the threshold (ties at it are kept).
  double thr = kNegInf;
  if (a.top_k > 0 && a.top_k < V) thr = kth_largest(x, V, a.top_k, reinterpret_cast<uint64_t*>(e));  // e as scratch
  double sum = 0;
  int64_t kept = 0;
  for (int64_t i = 0; i < V; ++i) {
    const bool keep = x[i] != kNegInf && x[i] >= thr;
    e[i] = keep ? std::exp(x[i] - mx) : 0.0;
    if (keep) order[kept++] = static_cast<int32_t>(i);
    sum += e[i];
  }

  // top-p over the kept entries, by value descending then index ascending.
  if (a.top_p > 0.f && a.top_p < 1.f && kept > 1) {
    std::sort(order, order + kept, [x](int32_t p, int32_t q) { return x[p] > x[q] || (x[p] == x[q] && p < q); });
    const double limit = static_cast<double>(a.top_p) * sum;
    double cum = 0;
    int64_t k = 0;
    for (; k < kept; ++k) {
      if (k > 0 && cum > limit) break;  // the mass before this rank already exceeds top_p
      cum += e[order[k]];
    }
    if (k < kept) {
      for (int64_t j = k; j < kept; ++j) e[order[j]] = 0.0;
      sum = 0;
      for (int64_t i = 0; i < V; ++i) sum += e[i];  // index order, as in the draw
    }
  }
  return sum;
}

}  // namespace

void sample(const SampleArgs& a) {
  const int64_t B = a.logits.shape[0], V = a.logits.shape[1];
  auto& pool = ThreadPool::global();
  const int nt = pool.num_threads();
  const size_t per_thread = (2 * sizeof(double) + sizeof(int32_t)) * V;
  PooledBuffer scratch(per_thread * nt);
  int32_t* tokens = a.tokens.ptr<int32_t>();
  pool.parallel_for(B, 1, [&](int64_t lo, int64_t hi, int tid) {
    char* base = static_cast<char*>(scratch.p) + per_thread * tid;
    double* x = reinterpret_cast<double*>(base);
    double* e = x + V;
    int32_t* order = reinterpret_cast<int32_t*>(e + V);
    for (int64_t r = lo; r < hi; ++r) {
      const double sum = process_row(a, r, x, e, order);
      if (!a.probs.empty()) {
        float* p = a.probs.ptr<float>() + r * a.probs.strides[0];
        const double inv = 1.0 / sum;
        for (int64_t i = 0; i < V; ++i) p[i] = static_cast<float>(e[i] * inv);
      }
      const double target = philox_uniform(a.seed, static_cast<uint64_t>(a.row_offset + r), a.step) * sum;
      double acc = 0;
      int64_t token = -1;
      for (int64_t i = 0; i < V; ++i) {
        if (e[i] == 0.0) continue;
        acc += e[i];
        token = i;
        if (acc > target) break;
      }
      tokens[r] = static_cast<int32_t>(token);
    }
  });
}

void cfg_combine(const CfgArgs& a) {
  const int64_t B = a.out.shape[0], V = a.out.shape[1];
  const float s = a.scale;
  ThreadPool::global().parallel_for(B, std::max<int64_t>(1, 16384 / V), [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* c = a.cond.ptr<float>() + r * a.cond.strides[0];
      const float* u = a.uncond.ptr<float>() + r * a.uncond.strides[0];
      float* o = a.out.ptr<float>() + r * a.out.strides[0];
      for (int64_t i = 0; i < V; ++i) o[i] = cfg_mix(c[i], u[i], s);
    }
  });
}

}  // namespace tessera::cpu
