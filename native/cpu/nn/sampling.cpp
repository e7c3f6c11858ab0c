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
#include <type_traits>
#include <vector>

#include "cpu/gemm/gemm_driver.h"
#include "cpu/nn/nn_ops.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
namespace {

using gemm::PooledBuffer;

// The one CFG formula, shared by sample() and cfg_combine() so both round alike.
inline float cfg_mix(float c, float u, float s) { return u + s * (c - u); }

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Order-preserving key of a float or double (no NaN), an unsigned integer of
// its width: a < b iff key(a) < key(b), except that −0 sorts just below +0
// (they compare equal as floats).
template <class F>
using KeyOf = std::conditional_t<sizeof(F) == 8, uint64_t, uint32_t>;
template <class F>
inline KeyOf<F> order_key(F v) {
  using K = KeyOf<F>;
  constexpr K sign = K{1} << (8 * sizeof(K) - 1);
  K u;
  std::memcpy(&u, &v, sizeof u);
  return (u & sign) ? ~u : (u | sign);
}
template <class F>
inline F from_order_key(KeyOf<F> k) {
  using K = KeyOf<F>;
  constexpr K sign = K{1} << (8 * sizeof(K) - 1);
  const K u = (k & sign) ? (k & ~sign) : ~k;
  F v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// The k-th largest of keys[0..n) (1 <= k <= n), the value nth_element
// finds: a most-significant-digit-first radix select over the candidates
// still in play (compacted in place), 11-bit digits (three passes at most for
// 32-bit keys, six for 64-bit), the histogram in four copies so that runs of
// equal digits do not serialise on one counter. Clobbers keys.
template <class Key>
Key kth_key(Key* keys, int64_t n, int64_t k) {
  constexpr int kBits = 8 * sizeof(Key), kDigit = 11;
  for (int top = kBits; top > 0 && n > 1; top -= kDigit) {
    const int shift = std::max(0, top - kDigit);
    const Key mask = static_cast<Key>((Key{1} << (top - shift)) - 1);
    int32_t hist[4][1 << kDigit] = {};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (int j = 0; j < 4; ++j) ++hist[j][(keys[i + j] >> shift) & mask];
    for (; i < n; ++i) ++hist[0][(keys[i] >> shift) & mask];
    Key d = mask;
    int64_t above = 0;  // candidates with a larger digit
    for (;; --d) {
      const int64_t h = int64_t{hist[0][d]} + hist[1][d] + hist[2][d] + hist[3][d];
      if (above + h >= k || d == 0) break;
      above += h;
    }
    k -= above;
    int64_t m = 0;
    for (i = 0; i < n; ++i)
      if (((keys[i] >> shift) & mask) == d) keys[m++] = keys[i];
    n = m;
  }
  return keys[0];  // every remaining candidate has this key
}

// The first index of row r whose (CFG-mixed) logit is NaN or +Inf, for the
// error message; -1 if none.
int64_t first_bad(const float* lc, const float* lu, int64_t V, float s) {
  for (int64_t i = 0; i < V; ++i) {
    const float l = lu ? cfg_mix(lc[i], lu[i], s) : lc[i];
    if (std::isnan(l) || l == std::numeric_limits<float>::infinity()) return i;
  }
  return -1;
}

// How many of the kept entries top-p keeps: the entries order[0..kept) are
// ranked by x descending, ties by index ascending, and rank j is kept when
// j = 0 or the mass of ranks < j is ≤ limit. Only as much is sorted as the
// cut needs: the m largest (m = 64, 256, ...) are moved to the front and
// sorted; every entry left behind is below the m-th largest value, so it
// ranks after all of them and the front is the true prefix. On return
// order[0..k) holds the kept ranks.
int64_t top_p_cut(const double* x, const double* e, int32_t* order, int64_t kept, double limit) {
  auto before = [x](int32_t p, int32_t q) { return x[p] > x[q] || (x[p] == x[q] && p < q); };
  thread_local std::vector<uint64_t> keys;
  if (keys.size() < static_cast<size_t>(kept)) keys.resize(static_cast<size_t>(kept));
  for (int64_t m = 64;; m *= 4) {
    int64_t front = kept;
    if (m < kept) {
      for (int64_t j = 0; j < kept; ++j) keys[j] = order_key(x[order[j]]);
      const double thr = from_order_key<double>(kth_key(keys.data(), kept, m));
      front = std::partition(order, order + kept, [&](int32_t i) { return x[i] >= thr; }) - order;
    }
    std::sort(order, order + front, before);
    double cum = 0;
    for (int64_t j = 0; j < front; ++j) {
      if (j > 0 && cum > limit) return j;
      cum += e[order[j]];
    }
    if (front == kept) return kept;
    if (cum > limit) return front;  // rank `front` (the best of the rest) is the first cut
  }
}

// One row: fills e[0..V) with the unnormalised kept probabilities (0 = dropped),
// returns their sum. x and order are scratch of V entries.
double process_row(const SampleArgs& a, int64_t r, double* x, double* e, int32_t* order) {
  const int64_t V = a.logits.shape[1];
  const float* lc = a.logits.ptr<float>() + r * a.logits.strides[0];
  const float* lu = a.uncond.empty() ? nullptr : a.uncond.ptr<float>() + r * a.uncond.strides[0];
  const double inv_t = 1.0 / std::max(static_cast<double>(a.temperature), 1e-5);
  const float s = a.cfg_scale;
  const bool top_k = a.top_k > 0 && a.top_k < V;
  uint32_t* keys = reinterpret_cast<uint32_t*>(order);  // order is free until the kept list is built
  double mx = kNegInf;
  bool bad = false;
  for (int64_t i = 0; i < V; ++i) {
    const float l = lu ? cfg_mix(lc[i], lu[i], s) : lc[i];
    bad |= std::isnan(l) || l == std::numeric_limits<float>::infinity();
    x[i] = static_cast<double>(l) * inv_t;
    mx = std::max(mx, x[i]);
    if (top_k) keys[i] = order_key(l);
  }
  if (bad) {
    const int64_t i = first_bad(lc, lu, V, s);
    TESSERA_CHECK(false, kInvalidArgument,
                  "sample: logits row " + std::to_string(r) + " holds NaN or +Inf at index " + std::to_string(i));
  }
  TESSERA_CHECK(mx != kNegInf, kInvalidArgument,
                "sample: every logit of row " + std::to_string(r) + " is -Inf; nothing can be sampled");

  // top-k: the k-th largest value is the threshold (ties at it are kept).
  // x = double(l)·(1/T) is strictly increasing in the float l (distinct
  // floats stay distinct in double), so the k-th largest l gives it.
  double thr = kNegInf;
  if (top_k) thr = static_cast<double>(from_order_key<float>(kth_key(keys, V, a.top_k))) * inv_t;
  // Kept indices in index order; exp only for them (the dropped weigh 0).
  int64_t kept = 0;
  for (int64_t i = 0; i < V; ++i) {
    order[kept] = static_cast<int32_t>(i);
    kept += x[i] != kNegInf && x[i] >= thr;
  }
  std::memset(e, 0, sizeof(double) * V);
  for (int64_t j = 0; j < kept; ++j) e[order[j]] = std::exp(x[order[j]] - mx);
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += e[i];  // index order, as in the draw

  // top-p over the kept entries, by value descending then index ascending.
  if (a.top_p > 0.f && a.top_p < 1.f && kept > 1) {
    const double limit = static_cast<double>(a.top_p) * sum;
    const int64_t k = top_p_cut(x, e, order, kept, limit);
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
