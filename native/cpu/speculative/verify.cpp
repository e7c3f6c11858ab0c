// verify_draft() on the CPU; the exact definition is in tessera/speculative.h.
// One row of the batch per task, drafts in order, float64 arithmetic; the
// residual weights are formed in per-thread scratch (V doubles).
#include <algorithm>

#include "cpu/speculative/speculative_cpu.h"
#include "tessera/sampling.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
namespace {

// First index whose running sum of w passes r·Σw (index order); −1 if Σw = 0.
int32_t draw_index(const double* w, int64_t V, double r) {
  double total = 0;
  for (int64_t i = 0; i < V; ++i) total += w[i];
  if (!(total > 0)) return -1;
  const double target = r * total;
  double acc = 0;
  int32_t last = -1;
  for (int64_t i = 0; i < V; ++i) {
    if (w[i] <= 0) continue;
    acc += w[i];
    last = static_cast<int32_t>(i);
    if (acc > target) break;
  }
  return last;
}

struct Row {
  const VerifyDraftArgs& a;
  int64_t b, L, V;
  const float* p(int64_t j) const { return a.p.ptr<float>() + b * a.p.strides[0] + j * a.p.strides[1]; }
  const float* q(int64_t j) const {
    return a.q.empty() ? nullptr : a.q.ptr<float>() + b * a.q.strides[0] + j * a.q.strides[1];
  }
  int32_t draft(int64_t j) const { return a.drafts.ptr<int32_t>()[b * L + j]; }
};

// LANTERN step 1: the number m of x's nearest neighbours (closest first) whose
// running p-mass stays within the bound, and that mass. The bound is δ, or
// for δ > 1 LANTERN++'s multiplicative form (δ − 1)·p(x) (δ acting as λ), as
// the official evaluate_posterior{,_v1} read lantern_delta.
int32_t relaxed_set(const VerifyDraftArgs& a, const float* p, int32_t x, double* mass) {
  *mass = 0;
  if (a.lantern_k <= 0 || !(a.lantern_delta > 0)) return 0;
  const double delta = a.lantern_delta;
  const double bound = delta > 1.0 ? (delta - 1.0) * static_cast<double>(p[x]) : delta;
  const int64_t K = a.neighbours.shape[1];
  const int32_t* nb = a.neighbours.ptr<int32_t>() + static_cast<int64_t>(x) * K;
  int32_t m = 0;
  for (; m < a.lantern_k && nb[m] >= 0; ++m) {
    const double next = *mass + p[nb[m]];
    if (next > bound) break;
    *mass = next;
  }
  return m;
}

// The residual weights max(0, p − q'), q' = q except that, when the relaxed
// set is not empty (m ≥ 1), q' is 0 on x's first min(k + 1, K) neighbours
// (LANTERN's rejection rule: the official code zeroes
// q[nearest[x, :k + 1]]); absent q is one-hot at x. With `plain`, w = p.
void fill_residual(const VerifyDraftArgs& a, const float* p, const float* q, int64_t V, int32_t x, int32_t m, bool plain,
                   double* w) {
  for (int64_t v = 0; v < V; ++v) w[v] = p[v];
  if (plain) return;
  if (q) {
    for (int64_t v = 0; v < V; ++v) w[v] = std::max(0.0, w[v] - static_cast<double>(q[v]));
  } else {
    w[x] = std::max(0.0, w[x] - 1.0);
  }
  if (m > 0 && q) {
    const int64_t K = a.neighbours.shape[1];
    const int32_t* nb = a.neighbours.ptr<int32_t>() + static_cast<int64_t>(x) * K;
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(a.lantern_k) + 1, K);
    for (int64_t i = 0; i < n && nb[i] >= 0; ++i) w[nb[i]] = p[nb[i]];
  }
}

void verify_row(const Row& row, double* w) {
  const VerifyDraftArgs& a = row.a;
  const uint64_t key = a.seed + static_cast<uint64_t>(row.b);
  float* stats = a.stats.empty() ? nullptr : a.stats.ptr<float>() + row.b * row.L * 2;
  if (stats) std::fill(stats, stats + row.L * 2, -1.f);
  int32_t accepted = 0, next = -1;
  for (int64_t j = 0; j < row.L; ++j) {
    const float* p = row.p(j);
    const float* q = row.q(j);
    const int32_t x = row.draft(j);
    double moved = 0;
    const int32_t m = relaxed_set(a, p, x, &moved);
    const double px = static_cast<double>(p[x]) + moved;
    const double qx = q ? static_cast<double>(q[x]) : 1.0;
    const double prob = qx > 0 ? std::min(1.0, px / qx) : (px > 0 ? 1.0 : 0.0);
    if (stats) { stats[2 * j] = static_cast<float>(prob); stats[2 * j + 1] = static_cast<float>(moved); }
    if (philox_uniform(key, a.rng_row, a.step + j) < prob) { ++accepted; continue; }
    // First rejection: the replacement follows norm(max(0, p − q')).
    const double r = philox_uniform(key, a.rng_row + 1, a.step + j);
    fill_residual(a, p, q, row.V, x, m, false, w);
    next = draw_index(w, row.V, r);
    if (next < 0) {
      fill_residual(a, p, q, row.V, x, m, true, w);
      next = draw_index(w, row.V, r);
    }
    break;
  }
  a.accepted.ptr<int32_t>()[row.b] = accepted;
  a.next.ptr<int32_t>()[row.b] = next;
}

}  // namespace

void verify_draft(const VerifyDraftArgs& a) {
  const int64_t B = a.p.shape[0], L = a.p.shape[1], V = a.p.shape[2];
  ThreadPool::global().parallel_for(B, 1, [&](int64_t lo, int64_t hi, int tid) {
    double* w = static_cast<double*>(thread_scratch(tid, 0, sizeof(double) * V));
    for (int64_t b = lo; b < hi; ++b) verify_row(Row{a, b, L, V}, w);
  });
}

}  // namespace tessera::cpu
