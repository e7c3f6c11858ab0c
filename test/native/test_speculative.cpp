// Speculative op family: verify_draft against a plain float64 twin of the
// header's definition (random p, q, drafts and LANTERN tables), the lossless
// property by frequencies (20000 independent keys, one position: the emitted
// token must follow p within 5 standard deviations), thread-count
// independence, LANTERN's δ = 0 / k = 0 reduction, and codebook_neighbours
// against a brute-force float64 ranking.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "harness.h"
#include "tessera/sampling.h"
#include "tessera/speculative.h"
#include "tessera/threadpool.h"

using namespace tessera;

namespace {

std::vector<float> random_rows(th::Rng& rng, int64_t rows, int64_t V, double zero_frac) {
  std::vector<float> out(rows * V);
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t v = 0; v < V; ++v) {
      const float e = rng.uniform(0.f, 1.f) < zero_frac ? 0.f : std::exp(rng.uniform(-3.f, 3.f));
      out[r * V + v] = e;
      s += e;
    }
    if (s == 0) out[r * V] = 1.f, s = 1;
    for (int64_t v = 0; v < V; ++v) out[r * V + v] = static_cast<float>(out[r * V + v] / s);
  }
  return out;
}

struct Verified {
  std::vector<int32_t> accepted, next;
  std::vector<float> stats;
};

Verified run_verify(const std::vector<float>& p, const std::vector<float>* q, const std::vector<int32_t>& drafts,
                    int64_t B, int64_t L, int64_t V, const std::vector<int32_t>* nb, int64_t K, int k, float delta,
                    uint64_t seed) {
  Verified r{std::vector<int32_t>(B), std::vector<int32_t>(B), std::vector<float>(B * L * 2)};
  VerifyDraftArgs a;
  a.p = make_view(const_cast<float*>(p.data()), DType::kF32, {B, L, V});
  if (q) a.q = make_view(const_cast<float*>(q->data()), DType::kF32, {B, L, V});
  a.drafts = make_view(const_cast<int32_t*>(drafts.data()), DType::kI32, {B, L});
  if (nb) a.neighbours = make_view(const_cast<int32_t*>(nb->data()), DType::kI32, {V, K});
  a.lantern_k = k, a.lantern_delta = delta;
  a.seed = seed, a.rng_row = 5, a.step = 100;
  a.accepted = make_view(r.accepted.data(), DType::kI32, {B});
  a.next = make_view(r.next.data(), DType::kI32, {B});
  a.stats = make_view(r.stats.data(), DType::kF32, {B, L, 2});
  verify_draft(a);
  return r;
}

// The header's definition, written out plainly in float64.
Verified twin(const std::vector<float>& p, const std::vector<float>* q, const std::vector<int32_t>& drafts, int64_t B,
              int64_t L, int64_t V, const std::vector<int32_t>* nb, int64_t K, int k, float delta, uint64_t seed) {
  Verified r{std::vector<int32_t>(B, 0), std::vector<int32_t>(B, -1), std::vector<float>(B * L * 2, -1.f)};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < L; ++j) {
      const int32_t x = drafts[b * L + j];
      std::vector<double> pt(V), qv(V, 0.0);
      for (int64_t v = 0; v < V; ++v) pt[v] = p[(b * L + j) * V + v], qv[v] = q ? (*q)[(b * L + j) * V + v] : (v == x);
      double c = 0;
      int walked = 0;
      if (k > 0 && delta > 0) {
        const double bound = delta > 1 ? (double(delta) - 1) * pt[x] : double(delta);
        for (; walked < k; ++walked) {
          const int32_t y = (*nb)[x * K + walked];
          if (y < 0 || c + pt[y] > bound) break;
          c += pt[y];
        }
      }
      // Rejection residual max(0, p − q'): q' = q without x's first k + 1 neighbours when any was walked.
      if (walked > 0)
        for (int64_t i = 0; i < std::min<int64_t>(k + 1, K) && (*nb)[x * K + i] >= 0; ++i) qv[(*nb)[x * K + i]] = q ? 0.0 : qv[(*nb)[x * K + i]];
      const double px = pt[x] + c;
      const double prob = qv[x] > 0 ? std::min(1.0, px / qv[x]) : (px > 0 ? 1.0 : 0.0);
      r.stats[(b * L + j) * 2] = static_cast<float>(prob);
      r.stats[(b * L + j) * 2 + 1] = static_cast<float>(c);
      if (philox_uniform(seed + b, 5, 100 + j) < prob) { r.accepted[b]++; continue; }
      std::vector<double> w(V);
      double tot = 0;
      for (int64_t v = 0; v < V; ++v) tot += (w[v] = std::max(0.0, pt[v] - qv[v]));
      if (tot <= 0) { w = pt; tot = std::accumulate(w.begin(), w.end(), 0.0); }
      const double u = philox_uniform(seed + b, 6, 100 + j) * tot;
      double acc = 0;
      for (int64_t v = 0; v < V; ++v) {
        if (w[v] <= 0) continue;
        acc += w[v];
        r.next[b] = static_cast<int32_t>(v);
        if (acc > u) break;
      }
      break;
    }
  return r;
}

std::vector<int32_t> ranked_neighbours(const std::vector<float>& cb, int64_t V, int64_t D, int64_t K) {
  std::vector<int32_t> out(V * K);
  for (int64_t v = 0; v < V; ++v) {
    std::vector<std::pair<double, int32_t>> d;
    for (int64_t u = 0; u < V; ++u) {
      if (u == v) continue;
      double s = 0;
      for (int64_t e = 0; e < D; ++e) s += (double(cb[v * D + e]) - cb[u * D + e]) * (double(cb[v * D + e]) - cb[u * D + e]);
      d.push_back({s, static_cast<int32_t>(u)});
    }
    std::sort(d.begin(), d.end());
    for (int64_t k = 0; k < K; ++k) out[v * K + k] = d[k].second;
  }
  return out;
}

}  // namespace

TEST(verify_draft_matches_the_float64_twin) {
  th::Rng rng(4242);
  const int64_t B = 7, L = 5, V = 40, K = 6;
  std::vector<float> cb(V * 3);
  rng.fill(cb.data(), cb.size());
  const std::vector<int32_t> nb = ranked_neighbours(cb, V, 3, K);
  for (int trial = 0; trial < 20; ++trial) {
    const bool with_q = trial % 2 == 0;
    std::vector<float> p = random_rows(rng, B * L, V, 0.3), q = random_rows(rng, B * L, V, 0.3);
    std::vector<int32_t> drafts(B * L);
    for (auto& d : drafts) d = static_cast<int32_t>(rng.randint(0, V - 1));
    if (trial % 4 == 0)  // drafts p likes: long accepted runs
      for (int64_t i = 0; i < B * L; ++i) drafts[i] = static_cast<int32_t>(std::max_element(&p[i * V], &p[i * V] + V) - &p[i * V]);
    const int k = trial < 10 ? 0 : 4;
    const float delta = trial < 10 ? 0.f : trial < 15 ? 0.15f : 1.6f;  // 1.6: LANTERN++ λ
    const Verified got = run_verify(p, with_q ? &q : nullptr, drafts, B, L, V, &nb, K, k, delta, 77 + trial);
    const Verified want = twin(p, with_q ? &q : nullptr, drafts, B, L, V, &nb, K, k, delta, 77 + trial);
    CHECK(got.accepted == want.accepted) << "trial " << trial;
    CHECK(got.next == want.next) << "trial " << trial;
    for (size_t i = 0; i < got.stats.size(); ++i)
      CHECK(std::fabs(got.stats[i] - want.stats[i]) <= 1e-6) << "trial " << trial << " stat " << i;
    for (int64_t b = 0; b < B; ++b) CHECK((got.next[b] < 0) == (got.accepted[b] == L)) << "row " << b;
  }
}

TEST(verify_draft_does_not_depend_on_the_thread_count) {
  th::Rng rng(31);
  const int64_t B = 33, L = 8, V = 300;
  std::vector<float> p = random_rows(rng, B * L, V, 0.5), q = random_rows(rng, B * L, V, 0.5);
  std::vector<int32_t> drafts(B * L);
  for (auto& d : drafts) d = static_cast<int32_t>(rng.randint(0, V - 1));
  const Verified many = run_verify(p, &q, drafts, B, L, V, nullptr, 0, 0, 0.f, 9);
  const int nt = ThreadPool::global().num_threads();
  ThreadPool::global().resize(1);
  const Verified one = run_verify(p, &q, drafts, B, L, V, nullptr, 0, 0, 0.f, 9);
  ThreadPool::global().resize(nt);
  CHECK(one.accepted == many.accepted && one.next == many.next && one.stats == many.stats);
}

TEST(verify_draft_emits_tokens_that_follow_p) {
  // One position, 20000 independent keys (row b uses seed + b): the draft is
  // drawn from q with its own Philox row, verified against p; the emitted
  // token (the draft if accepted, else the replacement) must follow p, with
  // and without a full q. 5 sd per token: false alarm ~1e-6 per check.
  const int64_t B = 20000, V = 6;
  const double pv[V] = {0.05, 0.3, 0.0, 0.25, 0.1, 0.3}, qv[V] = {0.4, 0.1, 0.2, 0.1, 0.2, 0.0};
  for (bool full_q : {true, false}) {
    std::vector<float> p(B * V), q(B * V);
    std::vector<int32_t> drafts(B);
    const uint64_t seed = th::run_seed();
    for (int64_t b = 0; b < B; ++b) {
      double u = philox_uniform(seed + b, 0, 1), acc = 0;
      drafts[b] = full_q ? -1 : static_cast<int32_t>(b % V);  // deterministic drafts: any token
      for (int64_t v = 0; v < V; ++v) {
        p[b * V + v] = static_cast<float>(pv[v]);
        q[b * V + v] = static_cast<float>(qv[v]);
        acc += qv[v];
        if (full_q && drafts[b] < 0 && acc > u) drafts[b] = static_cast<int32_t>(v);
      }
    }
    const Verified r = run_verify(p, full_q ? &q : nullptr, drafts, B, 1, V, nullptr, 0, 0, 0.f, seed);
    std::vector<int64_t> count(V, 0);
    for (int64_t b = 0; b < B; ++b) count[r.accepted[b] == 1 ? drafts[b] : r.next[b]]++;
    for (int64_t v = 0; v < V; ++v) {
      const double sd = std::sqrt(B * pv[v] * (1 - pv[v]));
      CHECK(std::fabs(count[v] - B * pv[v]) <= 5 * sd + 1e-9) << (full_q ? "q " : "one-hot ") << "token " << v << " count " << count[v];
    }
  }
}

TEST(verify_draft_lantern_off_when_delta_or_k_is_zero_and_bounded_when_on) {
  th::Rng rng(5);
  const int64_t B = 50, L = 6, V = 30, K = 5;
  std::vector<float> cb(V * 2);
  rng.fill(cb.data(), cb.size());
  const std::vector<int32_t> nb = ranked_neighbours(cb, V, 2, K);
  std::vector<float> p = random_rows(rng, B * L, V, 0.2), q = random_rows(rng, B * L, V, 0.2);
  std::vector<int32_t> drafts(B * L);
  for (auto& d : drafts) d = static_cast<int32_t>(rng.randint(0, V - 1));
  const Verified plain = run_verify(p, &q, drafts, B, L, V, nullptr, 0, 0, 0.f, 3);
  const Verified d0 = run_verify(p, &q, drafts, B, L, V, &nb, K, K, 0.f, 3);
  const Verified k0 = run_verify(p, &q, drafts, B, L, V, &nb, K, 0, 0.5f, 3);
  for (const Verified* v : {&d0, &k0}) CHECK(v->accepted == plain.accepted && v->next == plain.next && v->stats == plain.stats);
  const Verified on = run_verify(p, &q, drafts, B, L, V, &nb, K, K, 0.2f, 3);
  int64_t more = 0, sum_on = 0, sum_plain = 0;
  for (int64_t i = 0; i < B * L; ++i) {
    if (on.stats[2 * i] < 0) continue;
    CHECK(on.stats[2 * i + 1] >= 0 && on.stats[2 * i + 1] <= 0.2f + 1e-6) << "moved mass " << on.stats[2 * i + 1];
    more += on.stats[2 * i] > plain.stats[2 * i] && plain.stats[2 * i] >= 0;
  }
  for (int64_t b = 0; b < B; ++b) sum_on += on.accepted[b], sum_plain += plain.accepted[b];
  CHECK(more > 0 && sum_on >= sum_plain) << "relaxed " << sum_on << " vs standard " << sum_plain;
}

TEST(verify_draft_refuses_bad_tokens_and_tables) {
  std::vector<float> p(2 * 4, 0.25f);
  std::vector<int32_t> drafts = {0, 4}, acc(1), next(1), nb(4 * 2, 0);
  VerifyDraftArgs a;
  a.p = make_view(p.data(), DType::kF32, {1, 2, 4});
  a.drafts = make_view(drafts.data(), DType::kI32, {1, 2});
  a.accepted = make_view(acc.data(), DType::kI32, {1});
  a.next = make_view(next.data(), DType::kI32, {1});
  CHECK_THROWS_CODE(verify_draft(a), kInvalidArgument);  // token 4 of V = 4
  drafts[1] = 3;
  a.lantern_k = 3, a.lantern_delta = 0.1f;
  a.neighbours = make_view(nb.data(), DType::kI32, {4, 2});
  CHECK_THROWS_CODE(verify_draft(a), kInvalidArgument);  // k above the table width
  a.lantern_k = 2;
  a.next = make_view(acc.data(), DType::kI32, {1});
  CHECK_THROWS_CODE(verify_draft(a), kAlias);
}

TEST(codebook_neighbours_match_a_brute_force_ranking) {
  th::Rng rng(12);
  for (const auto [V, D, K] : {std::array<int64_t, 3>{50, 8, 7}, std::array<int64_t, 3>{700, 8, 20}, std::array<int64_t, 3>{300, 3, 299}}) {
    std::vector<float> cb(V * D);
    rng.fill(cb.data(), cb.size());
    std::vector<int32_t> out(V * K);
    std::vector<float> dist(V * K);
    CodebookNeighboursArgs a;
    a.codebook = make_view(cb.data(), DType::kF32, {V, D});
    a.out = make_view(out.data(), DType::kI32, {V, K});
    a.distances = make_view(dist.data(), DType::kF32, {V, K});
    codebook_neighbours(a);
    CHECK(out == ranked_neighbours(cb, V, D, K)) << "V " << V << " D " << D << " K " << K;
    // A radius keeps exactly the codes within it, then pads with -1.
    const float radius = dist[K / 2];
    a.max_distance = radius;
    codebook_neighbours(a);
    for (int64_t k = 0; k < K; ++k) CHECK((out[k] >= 0) == (dist[k] <= radius)) << "k " << k;
  }
}
