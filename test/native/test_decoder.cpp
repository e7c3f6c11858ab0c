// llama_blocks (tessera/decoder.h): a stack of LlamaGen blocks in one call,
// against a float64 model of the same blocks with its own float64 KV caches,
// over a prefill, single-slot decode steps and a multi-slot unmasked window;
// odd sizes, rows at different cache lengths, fp32 and bf16 packed weights;
// and the all-or-nothing validation (a bad layer leaves every cache as it was).
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "reference.h"
#include "tessera/attention.h"
#include "tessera/cpu.h"
#include "tessera/decoder.h"
#include "tessera/dtype_convert.h"
#include "tessera/gemm.h"
#include "tessera/sampling.h"
#include "tessera/threadpool.h"

using namespace tessera;

namespace {

struct RefLayer {
  std::vector<double> qkv, wo, w1, w3, w2, an, fn;  // weights as the packed form holds them
  std::vector<double> ck, cv;                        // [R, H, Lmax, hd]
};

struct Model {
  int64_t R, H, hd, d, ffn, Lmax, P, Hkv, kvd;
  std::vector<float> cosv, sinv;  // [P, hd/2]
  // Native side.
  std::vector<std::vector<float>> wq, wo, w1, w3, w2, an, fn, ck, cv;
  std::vector<std::vector<int32_t>> lengths;
  std::vector<PackedWeight*> packed;
  std::vector<LlamaLayer> layers;
  // Float64 side.
  std::vector<RefLayer> ref;
  std::vector<int32_t> ref_len;  // [R], shared by every layer

  Model(th::Rng& rng, int64_t layers_n, int64_t R_, int64_t H_, int64_t hd_, int64_t ffn_, int64_t Lmax_,
        DType compute, std::vector<int32_t> start, int64_t Hkv_ = 0)
      : R(R_), H(H_), hd(hd_), d(H_ * hd_), ffn(ffn_), Lmax(Lmax_), P(Lmax_ + 3), Hkv(Hkv_ ? Hkv_ : H_),
        kvd(Hkv * hd_) {
    cosv.resize(P * hd / 2);
    sinv.resize(P * hd / 2);
    for (int64_t p = 0; p < P; ++p)
      for (int64_t j = 0; j < hd / 2; ++j) {
        const double a = (p + 1) * std::pow(10.0, -static_cast<double>(j) / (hd / 2));
        cosv[p * hd / 2 + j] = static_cast<float>(std::cos(a));
        sinv[p * hd / 2 + j] = static_cast<float>(std::sin(a));
      }
    ref_len = start;
    auto rnd = [&](int64_t n, float scale) {
      std::vector<float> v(n);
      for (auto& e : v) e = rng.uniform() * scale;
      return v;
    };
    // The reference holds what the packed weight computes with (bf16-rounded for bf16).
    auto held = [&](const std::vector<float>& w) {
      std::vector<double> r(w.size());
      for (size_t i = 0; i < w.size(); ++i)
        r[i] = compute == DType::kBF16 ? bf16_to_f32(f32_to_bf16(w[i])) : w[i];
      return r;
    };
    for (int64_t i = 0; i < layers_n; ++i) {
      const float sd = 1.f / std::sqrt(static_cast<float>(d)), sf = 1.f / std::sqrt(static_cast<float>(ffn));
      wq.push_back(rnd((d + 2 * kvd) * d, sd)); wo.push_back(rnd(d * d, sd));
      w1.push_back(rnd(ffn * d, sd)); w3.push_back(rnd(ffn * d, sd)); w2.push_back(rnd(d * ffn, sf));
      std::vector<float> a = rnd(d, 0.5f), f = rnd(d, 0.5f);
      for (auto& e : a) e += 1.f;
      for (auto& e : f) e += 1.f;
      an.push_back(a); fn.push_back(f);
      // Caches hold random earlier slots; both sides start from the same ones.
      std::vector<float> k = rnd(R * Hkv * Lmax * hd, 1.f), v = rnd(R * Hkv * Lmax * hd, 1.f);
      ck.push_back(k); cv.push_back(v);
      lengths.push_back(start);
      RefLayer rl{held(wq.back()), held(wo.back()), held(w1.back()), held(w3.back()), held(w2.back()),
                  std::vector<double>(a.begin(), a.end()), std::vector<double>(f.begin(), f.end()),
                  std::vector<double>(k.begin(), k.end()), std::vector<double>(v.begin(), v.end())};
      ref.push_back(rl);
    }
    for (int64_t i = 0; i < layers_n; ++i) {
      auto pk = [&](std::vector<float>& w, int64_t N, int64_t K) {
        packed.push_back(pack_weight(make_view(w.data(), DType::kF32, {N, K}), compute));
        return packed.back();
      };
      LlamaLayer L;
      L.qkv = pk(wq[i], d + 2 * kvd, d); L.wo = pk(wo[i], d, d);
      L.w1 = pk(w1[i], ffn, d); L.w3 = pk(w3[i], ffn, d); L.w2 = pk(w2[i], d, ffn);
      L.attention_norm = make_view(an[i].data(), DType::kF32, {d});
      L.ffn_norm = make_view(fn[i].data(), DType::kF32, {d});
      L.cache_k = make_view(ck[i].data(), DType::kF32, {R, Hkv, Lmax, hd});
      L.cache_v = make_view(cv[i].data(), DType::kF32, {R, Hkv, Lmax, hd});
      L.lengths = lengths[i].data();
      layers.push_back(L);
    }
  }
  ~Model() {
    for (PackedWeight* p : packed) free_packed_weight(p);
  }

  LlamaBlocksArgs args(std::vector<float>& x, int64_t n, std::vector<int32_t>& pos, uint32_t mask) {
    LlamaBlocksArgs a;
    a.x = make_view(x.data(), DType::kF32, {R * n, d});
    a.layers = layers.data();
    a.num_layers = static_cast<int32_t>(layers.size());
    a.rows = static_cast<int32_t>(R); a.n = static_cast<int32_t>(n);
    a.heads = static_cast<int32_t>(H); a.head_dim = static_cast<int32_t>(hd);
    a.kv_heads = Hkv == H ? 0 : static_cast<int32_t>(Hkv);
    a.cos = make_view(cosv.data(), DType::kF32, {P, hd / 2});
    a.sin = make_view(sinv.data(), DType::kF32, {P, hd / 2});
    a.positions = make_view(pos.data(), DType::kI32, {n});
    a.mask = mask;
    a.eps = 1e-5f;
    return a;
  }

  // The float64 blocks on x [R·n, d], appending to the reference caches.
  void reference(std::vector<double>& x, int64_t n, const std::vector<int32_t>& pos, uint32_t mask) {
    const int64_t M = R * n;
    const int64_t W = d + 2 * kvd;
    std::vector<double> h(M * d), qkv(M * W), g(M * ffn), u(M * ffn), y(M * std::max(d, ffn));
    auto rms = [&](const std::vector<double>& w) {
      for (int64_t m = 0; m < M; ++m) {
        double s = 0;
        for (int64_t c = 0; c < d; ++c) s += x[m * d + c] * x[m * d + c];
        const double inv = 1.0 / std::sqrt(s / d + 1e-5);
        for (int64_t c = 0; c < d; ++c) h[m * d + c] = x[m * d + c] * inv * w[c];
      }
    };
    std::vector<double> cd(cosv.begin(), cosv.end()), sd(sinv.begin(), sinv.end());
    for (RefLayer& l : ref) {
      rms(l.an);
      ref::linear(M, W, d, h.data(), l.qkv.data(), nullptr, nullptr, 0, qkv.data());
      // q as [R, H, n, hd] and k, v as [R, Hkv, n, hd] (BHLD) for ref::rope and ref::attention.
      std::vector<double> q(M * d), k(M * kvd), v(M * kvd), qr(M * d), kr(M * kvd);
      std::vector<int32_t> posb(R * n);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < n; ++j) {
          posb[r * n + j] = pos[j];
          for (int64_t hh = 0; hh < H; ++hh)
            for (int64_t e = 0; e < hd; ++e) {
              const int64_t src = (r * n + j) * W + hh * hd + e, dst = ((r * H + hh) * n + j) * hd + e;
              q[dst] = qkv[src];
              if (hh < Hkv) {
                const int64_t kdst = ((r * Hkv + hh) * n + j) * hd + e;
                k[kdst] = qkv[src + d]; v[kdst] = qkv[src + d + kvd];
              }
            }
        }
      ref::rope(R, H, n, hd, hd, q.data(), cd.data(), sd.data(), 1, posb.data(), 0, qr.data());
      ref::rope(R, Hkv, n, hd, hd, k.data(), cd.data(), sd.data(), 1, posb.data(), 0, kr.data());
      for (int64_t r = 0; r < R; ++r)
        for (int64_t hh = 0; hh < Hkv; ++hh)
          for (int64_t j = 0; j < n; ++j)
            for (int64_t e = 0; e < hd; ++e) {
              const int64_t c = ((r * Hkv + hh) * Lmax + ref_len[r] + j) * hd + e, s = ((r * Hkv + hh) * n + j) * hd + e;
              l.ck[c] = kr[s]; l.cv[c] = v[s];
            }
      ref::Mask mk;
      mk.flags = mask;
      for (int64_t r = 0; r < R; ++r) mk.kv_len.push_back(ref_len[r] + static_cast<int32_t>(n));
      std::vector<double> o(M * d), ob(M * d);
      ref::attention(R, H, Hkv, n, Lmax, hd, qr.data(), l.ck.data(), l.cv.data(), 1.0 / std::sqrt(double(hd)), mk, false,
                     nullptr, o.data(), nullptr);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t hh = 0; hh < H; ++hh)
          for (int64_t j = 0; j < n; ++j)
            for (int64_t e = 0; e < hd; ++e) ob[(r * n + j) * d + hh * hd + e] = o[((r * H + hh) * n + j) * hd + e];
      ref::linear(M, d, d, ob.data(), l.wo.data(), nullptr, x.data(), 0, y.data());
      std::copy(y.begin(), y.begin() + M * d, x.begin());
      rms(l.fn);
      ref::linear(M, ffn, d, h.data(), l.w1.data(), nullptr, nullptr, 2, g.data());
      ref::linear(M, ffn, d, h.data(), l.w3.data(), nullptr, nullptr, 0, u.data());
      for (int64_t i = 0; i < M * ffn; ++i) u[i] *= g[i];
      ref::linear(M, d, ffn, u.data(), l.w2.data(), nullptr, x.data(), 0, y.data());
      std::copy(y.begin(), y.begin() + M * d, x.begin());
    }
    for (int64_t r = 0; r < R; ++r) ref_len[r] += static_cast<int32_t>(n);
  }

  // One step on both sides; returns ‖out−ref‖/‖ref‖ of the outputs.
  double step(th::Rng& rng, int64_t n, int32_t first_pos, uint32_t mask) {
    std::vector<float> x(R * n * d);
    rng.fill(x.data(), x.size());
    std::vector<double> xr(x.begin(), x.end());
    std::vector<int32_t> pos(n);
    for (int64_t j = 0; j < n; ++j) pos[j] = first_pos + static_cast<int32_t>(j);
    llama_blocks(args(x, n, pos, mask));
    reference(xr, n, pos, mask);
    return th::rel_error(x.data(), xr.data(), x.size());
  }

  bool lengths_are(const std::vector<int32_t>& want) const {
    for (const auto& l : lengths)
      if (l != want) return false;
    return true;
  }
};

void run_sequence(DType compute, double tol, uint64_t salt, int64_t heads = 3, int64_t kv_heads = 0) {
  th::Rng rng(salt);
  // dim heads·6 (18), ffn 37 (odd), two layers, rows at lengths 0 and 2.
  Model m(rng, 2, 2, heads, 6, 37, 12, compute, {0, 2}, kv_heads);
  double e = m.step(rng, 3, 0, kMaskCausal);  // prefill of three slots
  CHECK(e <= tol) << "prefill rel error " << e;
  for (int t = 0; t < 3; ++t) {
    e = m.step(rng, 1, 3 + t, kMaskCausal);  // decode steps
    CHECK(e <= tol) << "decode step " << t << " rel error " << e;
  }
  e = m.step(rng, 2, 6, kMaskNone);  // an unmasked two-slot window (NAR-style)
  CHECK(e <= tol) << "unmasked window rel error " << e;
  CHECK(m.lengths_are({8, 10}));
  // Every cached K/V the native side wrote equals the reference's.
  for (size_t i = 0; i < m.layers.size(); ++i) {
    CHECK_REL(m.ck[i].data(), m.ref[i].ck.data(), m.ck[i].size(), tol);
    CHECK_REL(m.cv[i].data(), m.ref[i].cv.data(), m.cv[i].size(), tol);
  }
}

}  // namespace

// fp32: a few fp32 roundings per op over two layers; errors ~1e-6.
TEST(llama_blocks_fp32_matches_float64_blocks_over_prefill_decode_and_window) {
  run_sequence(DType::kF32, 2e-5, 71);
}

// bf16 packed weights: activations are rounded to bf16 in the GEMMs (2^-9
// relative each), so ~1e-2 after two layers.
TEST(llama_blocks_bf16_weights_match_float64_blocks) {
  run_sequence(DType::kBF16, 3e-2, 72);
}

// Grouped-query attention (LlamaGen's n_kv_head < n_head): 6 query heads on 2
// and on 1 key/value heads; query head h reads kv head h / (heads / kv_heads).
TEST(llama_blocks_grouped_query_attention_matches_float64_blocks) {
  run_sequence(DType::kF32, 2e-5, 75, 6, 2);
  run_sequence(DType::kF32, 2e-5, 76, 6, 1);
}

// The optional head: logits = RMSNorm(x_out, final_norm)·headᵀ in the same call.
TEST(llama_blocks_head_gives_the_logits_of_the_last_block) {
  th::Rng rng(74);
  Model m(rng, 2, 3, 2, 4, 11, 7, DType::kF32, {0, 1, 3});
  const int64_t V = 29, n = 2, M = m.R * n;
  std::vector<float> head(V * m.d), fnorm(m.d), x(M * m.d), logits(M * V, NAN);
  rng.fill(head.data(), head.size());
  rng.fill(fnorm.data(), fnorm.size());
  rng.fill(x.data(), x.size());
  PackedWeight* hp = pack_weight(make_view(head.data(), DType::kF32, {V, m.d}), DType::kF32);
  std::vector<double> xr(x.begin(), x.end());
  std::vector<int32_t> pos{3, 4};
  LlamaBlocksArgs a = m.args(x, n, pos, kMaskCausal);
  a.final_norm = make_view(fnorm.data(), DType::kF32, {m.d});
  a.head = hp;
  a.logits = make_view(logits.data(), DType::kF32, {M, V});
  llama_blocks(a);
  m.reference(xr, n, pos, kMaskCausal);
  CHECK_REL(x.data(), xr.data(), x.size(), 2e-5);
  std::vector<double> h(M * m.d), hd(head.begin(), head.end()), want(M * V);
  for (int64_t r = 0; r < M; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < m.d; ++c) ss += xr[r * m.d + c] * xr[r * m.d + c];
    const double inv = 1.0 / std::sqrt(ss / m.d + 1e-5);
    for (int64_t c = 0; c < m.d; ++c) h[r * m.d + c] = xr[r * m.d + c] * inv * fnorm[c];
  }
  ref::linear(M, V, m.d, h.data(), hd.data(), nullptr, nullptr, 0, want.data());
  CHECK_REL(logits.data(), want.data(), want.size(), 2e-5);
  // Part of a head is refused before anything runs.
  a.logits = TensorView{};
  CHECK_THROWS_CODE(llama_blocks(a), kInvalidArgument);
  // So are logits of the wrong width.
  a.logits = make_view(logits.data(), DType::kF32, {M, V - 1});
  CHECK_THROWS_CODE(llama_blocks(a), kShape);
  CHECK(m.lengths_are({2, 3, 5}));
  free_packed_weight(hp);
}

TEST(llama_blocks_validates_every_layer_before_writing) {
  th::Rng rng(73);
  Model m(rng, 3, 2, 2, 4, 9, 6, DType::kF32, {1, 1});
  const std::vector<float> k0 = m.ck[0];
  std::vector<float> x(2 * 8);
  rng.fill(x.data(), x.size());
  std::vector<int32_t> pos{1};
  // The last layer's w2 has the wrong shape: nothing is written anywhere.
  std::vector<float> bad(8 * 8);
  rng.fill(bad.data(), bad.size());
  PackedWeight* pb = pack_weight(make_view(bad.data(), DType::kF32, {8, 8}), DType::kF32);
  const PackedWeight* keep = m.layers[2].w2;
  m.layers[2].w2 = pb;
  CHECK_THROWS_CODE(llama_blocks(m.args(x, 1, pos, kMaskCausal)), kShape);
  m.layers[2].w2 = keep;
  free_packed_weight(pb);
  CHECK(m.lengths_are({1, 1}));
  CHECK(std::memcmp(k0.data(), m.ck[0].data(), k0.size() * sizeof(float)) == 0);
  // A row whose cache is full.
  m.lengths[1][1] = 6;
  CHECK_THROWS_CODE(llama_blocks(m.args(x, 1, pos, kMaskCausal)), kShape);
  m.lengths[1][1] = 1;
  CHECK(m.lengths_are({1, 1}));
  // The last layer's cache in another dtype than float.
  std::vector<int32_t> icache(2 * 2 * 6 * 4);
  const TensorView keep_v = m.layers[2].cache_v;
  m.layers[2].cache_v = make_view(icache.data(), DType::kI32, {2, 2, 6, 4});
  CHECK_THROWS_CODE(llama_blocks(m.args(x, 1, pos, kMaskCausal)), kDtype);
  m.layers[2].cache_v = keep_v;
  CHECK(m.lengths_are({1, 1}));
  // Positions outside the RoPE table, masks it does not support, wrong x.
  std::vector<int32_t> far{static_cast<int32_t>(m.P)};
  CHECK_THROWS_CODE(llama_blocks(m.args(x, 1, far, kMaskCausal)), kInvalidArgument);
  CHECK_THROWS_CODE(llama_blocks(m.args(x, 1, pos, kMaskBlockCausal)), kInvalidArgument);
  LlamaBlocksArgs a = m.args(x, 1, pos, kMaskCausal);
  a.x = make_view(x.data(), DType::kF32, {1, 16});
  CHECK_THROWS_CODE(llama_blocks(a), kShape);
  // kv_heads that do not divide heads, or that the qkv weight and caches do not hold.
  a = m.args(x, 1, pos, kMaskCausal);
  a.kv_heads = 3;
  CHECK_THROWS_CODE(llama_blocks(a), kInvalidArgument);
  a.kv_heads = 1;
  CHECK_THROWS_CODE(llama_blocks(a), kShape);
  CHECK(m.lengths_are({1, 1}));
  CHECK(std::memcmp(k0.data(), m.ck[0].data(), k0.size() * sizeof(float)) == 0);
  // And the valid call still runs.
  llama_blocks(m.args(x, 1, pos, kMaskCausal));
  CHECK(m.lengths_are({2, 2}));
}

// The decode team (n = 1 with head_dim a multiple of 32: one pool job for the
// whole stack, units owned per thread and stolen) gives exactly what the op
// by op path gives: x, logits, every cache slot and the lengths, bit for
// bit, over several steps; fp32 and bf16 weights, grouped-query attention,
// rows at different lengths, an odd ffn width and vocabulary, and 2 or 3
// pool threads (uneven shares). The op-by-op side runs on a one-thread pool,
// where the team is never taken and the kernels give the same values (the
// small-M GEMM per panel, attention per (row, kv head) without key splits).
TEST(llama_blocks_decode_team_equals_op_by_op) {
  ThreadPool& pool = ThreadPool::global();
  const int saved = pool.num_threads();
  // bf16 weights stream (and take the team) only without a bf16 dot product:
  // pin AVX-512 (capped by the CPU) so they do on an AVX512-BF16 CPU too.
  set_isa_override(Isa::kAvx512);
  struct Case {
    int64_t R, H, Hkv, hd, ffn, V;
    DType compute;
    int threads;
  };
  for (const Case c : {Case{2, 4, 4, 32, 75, 37, DType::kF32, 2}, Case{3, 4, 2, 64, 40, 70, DType::kF32, 3},
                       Case{2, 6, 1, 32, 33, 5, DType::kF32, 2}, Case{2, 2, 2, 32, 50, 33, DType::kBF16, 2},
                       Case{5, 3, 3, 32, 64, 40, DType::kBF16, 3}}) {
    const int64_t Lmax = 9, steps = 3, d = c.H * c.hd;
    std::vector<int32_t> start(c.R);
    for (int64_t r = 0; r < c.R; ++r) start[r] = static_cast<int32_t>(r % 3);
    th::Rng r1(300 + c.R * 7 + c.H), r2(300 + c.R * 7 + c.H), rx(400);
    Model team(r1, 2, c.R, c.H, c.hd, c.ffn, Lmax, c.compute, start, c.Hkv);
    Model ops(r2, 2, c.R, c.H, c.hd, c.ffn, Lmax, c.compute, start, c.Hkv);
    std::vector<float> head(c.V * d), fnorm(d);
    rx.fill(head.data(), head.size());
    rx.fill(fnorm.data(), fnorm.size());
    PackedWeight* hp = pack_weight(make_view(head.data(), DType::kF32, {c.V, d}), c.compute);
    for (int64_t t = 0; t < steps; ++t) {
      std::vector<float> x(c.R * d), lt(c.R * c.V, NAN), lo(c.R * c.V, NAN);
      rx.fill(x.data(), x.size());
      std::vector<float> xt = x, xo = x;
      std::vector<int32_t> pos{static_cast<int32_t>(3 + t)};
      LlamaBlocksArgs at = team.args(xt, 1, pos, kMaskCausal), ao = ops.args(xo, 1, pos, kMaskCausal);
      for (auto [a, l] : {std::pair{&at, &lt}, std::pair{&ao, &lo}}) {
        a->final_norm = make_view(fnorm.data(), DType::kF32, {d});
        a->head = hp;
        a->logits = make_view(l->data(), DType::kF32, {c.R, c.V});
      }
      pool.resize(c.threads);
      CHECK(llama_blocks_uses_team(at)) << "case R " << c.R << " H " << c.H << " hd " << c.hd;
      llama_blocks(at);
      pool.resize(1);
      CHECK(!llama_blocks_uses_team(ao));
      llama_blocks(ao);
      CHECK(std::memcmp(xt.data(), xo.data(), sizeof(float) * xt.size()) == 0) << "x differs, step " << t;
      CHECK(std::memcmp(lt.data(), lo.data(), sizeof(float) * lt.size()) == 0) << "logits differ, step " << t;
    }
    for (size_t i = 0; i < team.layers.size(); ++i) {
      CHECK(team.lengths[i] == ops.lengths[i]);
      CHECK(std::memcmp(team.ck[i].data(), ops.ck[i].data(), sizeof(float) * team.ck[i].size()) == 0);
      CHECK(std::memcmp(team.cv[i].data(), ops.cv[i].data(), sizeof(float) * team.cv[i].size()) == 0);
    }
    CHECK(team.lengths[0][0] == start[0] + steps);
    free_packed_weight(hp);
  }
  clear_isa_override();
  pool.resize(saved);
}

// The team path against the float64 blocks (head_dim 32: decode steps take
// the team on a pool of two or more threads).
TEST(llama_blocks_decode_team_matches_float64_blocks) {
  ThreadPool& pool = ThreadPool::global();
  const int saved = pool.num_threads();
  pool.resize(std::max(saved, 2));
  set_isa_override(Isa::kAvx512);  // bf16 weights take the team only without a bf16 dot product
  for (DType compute : {DType::kF32, DType::kBF16}) {
    th::Rng rng(compute == DType::kF32 ? 77 : 78);
    Model m(rng, 2, 2, 3, 32, 45, 10, compute, {0, 2}, 3);
    const double tol = compute == DType::kF32 ? 2e-5 : 3e-2;
    double e = m.step(rng, 2, 0, kMaskCausal);  // a two-slot prefill (op by op)
    CHECK(e <= tol) << "prefill rel error " << e;
    for (int t = 0; t < 4; ++t) {
      std::vector<float> x(m.R * m.d);
      std::vector<int32_t> pos{2 + t};
      CHECK(llama_blocks_uses_team(m.args(x, 1, pos, kMaskCausal)));
      e = m.step(rng, 1, 2 + t, kMaskCausal);
      CHECK(e <= tol) << "decode step " << t << " rel error " << e;
    }
    CHECK(m.lengths_are({6, 8}));
    for (size_t i = 0; i < m.layers.size(); ++i) {
      CHECK_REL(m.ck[i].data(), m.ref[i].ck.data(), m.ck[i].size(), tol);
      CHECK_REL(m.cv[i].data(), m.ref[i].cv.data(), m.cv[i].size(), tol);
    }
  }
  clear_isa_override();
  pool.resize(saved);
}

// llama_decode: the loop in one call draws what the same loop of public ops
// (sample per image, embedding rows, llama_blocks with the head) draws, with
// CFG and per-image bias; and it refuses a bad call before appending anything.
TEST(llama_decode_equals_the_loop_of_public_ops) {
  const int64_t V = 23, B = 2, steps = 5;
  for (bool guided : {true, false}) {
    th::Rng rng(guided ? 81 : 82);
    const int64_t R = guided ? 2 * B : B;
    // Two models with the same weights and caches (same Rng stream).
    th::Rng r1(90), r2(90);
    Model a(r1, 2, R, 2, 4, 13, 9, DType::kF32, std::vector<int32_t>(R, 1));
    Model b(r2, 2, R, 2, 4, 13, 9, DType::kF32, std::vector<int32_t>(R, 1));
    std::vector<float> head(V * a.d), fnorm(a.d), emb(V * a.d), bias(B * V, 0.f), logits(R * V);
    rng.fill(head.data(), head.size());
    rng.fill(fnorm.data(), fnorm.size());
    rng.fill(emb.data(), emb.size());
    for (int64_t v = 0; v < V; v += 3) bias[v] = 1.5f;  // image 0 favours every third id
    rng.fill(logits.data(), logits.size());
    std::vector<float> logits2 = logits;
    PackedWeight* hp = pack_weight(make_view(head.data(), DType::kF32, {V, a.d}), DType::kF32);
    const float cfg = 2.5f, T = 1.3f, top_p = 0.9f;
    const int top_k = 9;
    const uint64_t seed = 17, first = 3;

    std::vector<int32_t> tokens(B * steps, -1);
    LlamaDecodeArgs d;
    std::vector<float> unused;
    std::vector<int32_t> unused_pos;
    d.blocks = a.args(unused, 1, unused_pos, kMaskCausal);
    d.blocks.x = TensorView{};
    d.blocks.positions = TensorView{};
    d.blocks.final_norm = make_view(fnorm.data(), DType::kF32, {a.d});
    d.blocks.head = hp;
    d.tok_embeddings = make_view(emb.data(), DType::kF32, {V, a.d});
    d.logits = make_view(logits.data(), DType::kF32, {R, V});
    d.images = static_cast<int32_t>(B);
    d.cfg_scale = cfg, d.temperature = T, d.top_k = top_k, d.top_p = top_p, d.seed = seed, d.first_step = first;
    d.bias = make_view(bias.data(), DType::kF32, {B, V});
    d.tokens = make_view(tokens.data(), DType::kI32, {B, steps});
    std::vector<int32_t> seen;
    d.on_step = [](void* ctx, int32_t done) { static_cast<std::vector<int32_t>*>(ctx)->push_back(done); };
    d.on_step_ctx = &seen;

    // Bad calls first: nothing may be appended.
    LlamaDecodeArgs bad = d;
    bad.images = 3;
    CHECK_THROWS_CODE(llama_decode(bad), kInvalidArgument);
    bad = d;
    std::vector<int32_t> many(B * 10);
    bad.tokens = make_view(many.data(), DType::kI32, {B, 10});  // 9 more slots after 1 exceed Lmax 9
    CHECK_THROWS_CODE(llama_decode(bad), kShape);
    bad = d;
    bad.tok_embeddings = make_view(emb.data(), DType::kF32, {V - 1, a.d});
    CHECK_THROWS_CODE(llama_decode(bad), kShape);
    bad = d;
    bad.blocks.logits = d.logits;
    CHECK_THROWS_CODE(llama_decode(bad), kInvalidArgument);
    a.lengths[1][0] = 2;  // rows at different lengths
    CHECK_THROWS_CODE(llama_decode(d), kInvalidArgument);
    a.lengths[1][0] = 1;
    CHECK(a.lengths_are(std::vector<int32_t>(R, 1)));
    CHECK(seen.empty());

    // A stop flag raised by the step callback ends the loop before the next step.
    {
      th::Rng r3(90);
      Model c(r3, 2, R, 2, 4, 13, 9, DType::kF32, std::vector<int32_t>(R, 1));
      std::vector<float> lc = logits;
      std::vector<int32_t> tc(B * steps, -1);
      LlamaDecodeArgs e = d;
      e.blocks.layers = c.layers.data();
      e.logits = make_view(lc.data(), DType::kF32, {R, V});
      e.tokens = make_view(tc.data(), DType::kI32, {B, steps});
      struct Ctx { int32_t stop = 0; std::vector<int32_t> seen; } ctx;
      e.on_step = [](void* p, int32_t done) {
        auto* c = static_cast<Ctx*>(p);
        c->seen.push_back(done);
        if (done == 2) c->stop = 1;
      };
      e.on_step_ctx = &ctx;
      e.stop = &ctx.stop;
      llama_decode(e);
      CHECK(ctx.seen == std::vector<int32_t>({1, 2}));
      CHECK(c.lengths_are(std::vector<int32_t>(R, 3))) << "two steps appended two slots";
      for (int64_t i = 0; i < B; ++i) CHECK(tc[i * steps + 2] == -1 && tc[i * steps + 1] >= 0);
    }

    llama_decode(d);
    CHECK(a.lengths_are(std::vector<int32_t>(R, static_cast<int32_t>(steps))));
    CHECK(seen.size() == static_cast<size_t>(steps) && seen.back() == steps);

    // The same loop from public ops on model b.
    std::vector<int32_t> want(B * steps);
    std::vector<float> x(R * b.d);
    std::vector<int32_t> pos(1);
    for (int64_t t = 0; t < steps; ++t) {
      for (int64_t i = 0; i < B; ++i)
        for (int64_t r = i; r < R; r += B)
          for (int64_t v = 0; v < V; ++v) logits2[r * V + v] += bias[i * V + v];
      for (int64_t i = 0; i < B; ++i) {
        int32_t tok = -1;
        SampleArgs sa;
        sa.logits = make_view(&logits2[i * V], DType::kF32, {1, V});
        if (guided) sa.uncond = make_view(&logits2[(B + i) * V], DType::kF32, {1, V}), sa.cfg_scale = cfg;
        sa.temperature = T, sa.top_k = top_k, sa.top_p = top_p;
        sa.seed = seed + i, sa.step = first + t;
        sa.tokens = make_view(&tok, DType::kI32, {1});
        sample(sa);
        want[i * steps + t] = tok;
      }
      if (t == steps - 1) break;
      for (int64_t r = 0; r < R; ++r)
        std::memcpy(&x[r * b.d], &emb[want[(r % B) * steps + t] * b.d], sizeof(float) * b.d);
      pos[0] = static_cast<int32_t>(1 + t);
      LlamaBlocksArgs la = b.args(x, 1, pos, kMaskCausal);
      la.final_norm = make_view(fnorm.data(), DType::kF32, {b.d});
      la.head = hp;
      la.logits = make_view(logits2.data(), DType::kF32, {R, V});
      llama_blocks(la);
    }
    CHECK(tokens == want) << "guided " << guided;
    for (int32_t t : tokens) CHECK(t >= 0 && t < V);
    free_packed_weight(hp);
  }
}

// ---- var_blocks -------------------------------------------------------------

namespace {

struct VarModel {
  int64_t R, H, D, C, F, Lmax, V;
  // Per layer: weights (float32, as packed) and the AdaLN terms as strided
  // views of one [R, 6C] buffer per layer (as VAR's ada_lin output is split).
  std::vector<std::vector<float>> qkv, qkvb, proj, projb, fc1, fc1b, fc2, fc2b, ada, mult, ck, cv;
  std::vector<float> head, headb, hada;  // head [V, C], bias [V], head AdaLN [R, 2C]
  std::vector<PackedWeight*> packed;
  std::vector<VarLayer> layers;
  PackedWeight* headp = nullptr;
  std::vector<std::vector<double>> rk, rv;  // reference caches [R, Lmax, C]
  int64_t length = 0;

  VarModel(th::Rng& rng, int64_t nl, int64_t R_, int64_t H_, int64_t D_, int64_t F_, int64_t Lmax_, int64_t V_)
      : R(R_), H(H_), D(D_), C(H_ * D_), F(F_), Lmax(Lmax_), V(V_) {
    auto rnd = [&](int64_t n, float sc) {
      std::vector<float> v(n);
      for (auto& e : v) e = rng.uniform() * sc;
      return v;
    };
    const float sc = 1.f / std::sqrt(float(C)), sf = 1.f / std::sqrt(float(F));
    for (int64_t i = 0; i < nl; ++i) {
      qkv.push_back(rnd(3 * C * C, sc));
      std::vector<float> b = rnd(3 * C, 0.3f);
      std::fill(b.begin() + C, b.begin() + 2 * C, 0.f);  // VAR has no k bias
      qkvb.push_back(b);
      proj.push_back(rnd(C * C, sc)); projb.push_back(rnd(C, 0.3f));
      fc1.push_back(rnd(F * C, sc)); fc1b.push_back(rnd(F, 0.3f));
      fc2.push_back(rnd(C * F, sf)); fc2b.push_back(rnd(C, 0.3f));
      ada.push_back(rnd(R * 6 * C, 0.5f));
      std::vector<float> m = rnd(H, 1.f);
      for (auto& e : m) e = std::exp(e);  // exp(scale_mul), like the official clamp-then-exp
      mult.push_back(m);
      ck.push_back(rnd(R * Lmax * C, 1.f)); cv.push_back(rnd(R * Lmax * C, 1.f));
      rk.emplace_back(ck.back().begin(), ck.back().end());
      rv.emplace_back(cv.back().begin(), cv.back().end());
    }
    head = rnd(V * C, sc); headb = rnd(V, 0.3f); hada = rnd(R * 2 * C, 0.5f);
    auto pk = [&](std::vector<float>& w, int64_t N, int64_t K) {
      packed.push_back(pack_weight(make_view(w.data(), DType::kF32, {N, K}), DType::kF32));
      return packed.back();
    };
    for (int64_t i = 0; i < nl; ++i) {
      VarLayer l;
      l.qkv = pk(qkv[i], 3 * C, C); l.proj = pk(proj[i], C, C); l.fc1 = pk(fc1[i], F, C); l.fc2 = pk(fc2[i], C, F);
      l.qkv_bias = make_view(qkvb[i].data(), DType::kF32, {3 * C});
      l.proj_bias = make_view(projb[i].data(), DType::kF32, {C});
      l.fc1_bias = make_view(fc1b[i].data(), DType::kF32, {F});
      l.fc2_bias = make_view(fc2b[i].data(), DType::kF32, {C});
      l.head_multiplier = mult[i].data();
      TensorView* terms[] = {&l.g1, &l.g2, &l.s1, &l.s2, &l.b1, &l.b2};  // chunk order of ada_lin
      for (int t = 0; t < 6; ++t) *terms[t] = ada_view(ada[i].data(), t, 6);
      l.cache_k = make_view(ck[i].data(), DType::kF32, {R, Lmax, H, D});
      l.cache_v = make_view(cv[i].data(), DType::kF32, {R, Lmax, H, D});
      layers.push_back(l);
    }
    headp = pk(head, V, C);
  }
  ~VarModel() {
    for (PackedWeight* p : packed) free_packed_weight(p);
  }
  // Chunk t of a [R, parts·C] buffer: [R, C] with row stride parts·C.
  TensorView ada_view(float* base, int t, int parts) const {
    TensorView v = make_view(base + t * C, DType::kF32, {R, C});
    v.strides[0] = parts * C;
    return v;
  }
  VarBlocksArgs args(std::vector<float>& x, int64_t n, std::vector<float>& logits) {
    VarBlocksArgs a;
    a.x = make_view(x.data(), DType::kF32, {R, n, C});
    a.layers = layers.data();
    a.num_layers = static_cast<int32_t>(layers.size());
    a.heads = static_cast<int32_t>(H); a.head_dim = static_cast<int32_t>(D);
    a.cache_length = length;
    a.head_scale = ada_view(hada.data(), 0, 2);
    a.head_shift = ada_view(hada.data(), 1, 2);
    a.head = headp;
    a.head_bias = make_view(headb.data(), DType::kF32, {V});
    a.logits = make_view(logits.data(), DType::kF32, {R * n, V});
    return a;
  }

  // float64 blocks and head on x [R, n, C]; returns logits [R·n, V].
  std::vector<double> reference(std::vector<double>& x, int64_t n) {
    const int64_t M = R * n;
    std::vector<double> h(M * C), y(M * std::max(C, 3 * C)), f(M * F), logits(M * V);
    auto ln = [&](const float* scale, const float* shift, int64_t stride) {
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < n; ++j) {
          const double* xi = &x[(r * n + j) * C];
          double mean = 0, var = 0;
          for (int64_t c = 0; c < C; ++c) mean += xi[c];
          mean /= C;
          for (int64_t c = 0; c < C; ++c) var += (xi[c] - mean) * (xi[c] - mean);
          var /= C;
          const double inv = 1.0 / std::sqrt(var + 1e-6);
          for (int64_t c = 0; c < C; ++c)
            h[(r * n + j) * C + c] = (xi[c] - mean) * inv * (1.0 + scale[r * stride + c]) + shift[r * stride + c];
        }
    };
    auto dv = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
    for (size_t i = 0; i < layers.size(); ++i) {
      const float* A = ada[i].data();  // chunks g1 g2 s1 s2 b1 b2, row stride 6C
      ln(A + 2 * C, A + 4 * C, 6 * C);
      const std::vector<double> wq = dv(qkv[i]), bq = dv(qkvb[i]);
      ref::linear(M, 3 * C, C, h.data(), wq.data(), bq.data(), nullptr, 0, y.data());
      std::vector<double> q(M * C);  // [R, H, n, D] for ref::attention
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < n; ++j)
          for (int64_t c = 0; c < C; ++c) {
            const double* row = &y[(r * n + j) * 3 * C];
            q[((r * H + c / D) * n + j) * D + c % D] = row[c];
            rk[i][(r * Lmax + length + j) * C + c] = row[C + c];
            rv[i][(r * Lmax + length + j) * C + c] = row[2 * C + c];
          }
      // caches [R, Lmax, H, D] → [R, H, Lmax, D]
      std::vector<double> kb(R * Lmax * C), vb(R * Lmax * C), o(M * C), ob(M * C);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t t = 0; t < Lmax; ++t)
          for (int64_t c = 0; c < C; ++c) {
            kb[((r * H + c / D) * Lmax + t) * D + c % D] = rk[i][(r * Lmax + t) * C + c];
            vb[((r * H + c / D) * Lmax + t) * D + c % D] = rv[i][(r * Lmax + t) * C + c];
          }
      ref::Mask mk;
      mk.kv_len.assign(R, static_cast<int32_t>(length + n));
      const std::vector<double> hm = dv(mult[i]);
      ref::attention(R, H, H, n, Lmax, D, q.data(), kb.data(), vb.data(), 1.0, mk, true, hm.data(), o.data(), nullptr);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < n; ++j)
          for (int64_t c = 0; c < C; ++c) ob[(r * n + j) * C + c] = o[((r * H + c / D) * n + j) * D + c % D];
      const std::vector<double> wp = dv(proj[i]), bp = dv(projb[i]);
      ref::linear(M, C, C, ob.data(), wp.data(), bp.data(), nullptr, 0, y.data());
      for (int64_t m = 0; m < M; ++m)
        for (int64_t c = 0; c < C; ++c) x[m * C + c] += A[(m / n) * 6 * C + c] * y[m * C + c];  // g1
      ln(A + 3 * C, A + 5 * C, 6 * C);
      const std::vector<double> w1 = dv(fc1[i]), b1 = dv(fc1b[i]), w2 = dv(fc2[i]), b2 = dv(fc2b[i]);
      ref::linear(M, F, C, h.data(), w1.data(), b1.data(), nullptr, 1, f.data());
      ref::linear(M, C, F, f.data(), w2.data(), b2.data(), nullptr, 0, y.data());
      for (int64_t m = 0; m < M; ++m)
        for (int64_t c = 0; c < C; ++c) x[m * C + c] += A[(m / n) * 6 * C + C + c] * y[m * C + c];  // g2
    }
    ln(hada.data(), hada.data() + C, 2 * C);
    const std::vector<double> hw = dv(head), hb = dv(headb);
    ref::linear(M, V, C, h.data(), hw.data(), hb.data(), nullptr, 0, logits.data());
    length += n;
    return logits;
  }
};

}  // namespace

// Two scales (1 token, then 4) over three rows against the float64 blocks:
// outputs, logits and every cached key/value.
TEST(var_blocks_match_float64_blocks_over_two_scales) {
  th::Rng rng(81);
  VarModel m(rng, 2, 3, 2, 6, 37, 9, 23);
  for (int64_t n : {1, 4}) {
    std::vector<float> x(m.R * n * m.C), logits(m.R * n * m.V, NAN);
    rng.fill(x.data(), x.size());
    std::vector<double> xr(x.begin(), x.end());
    VarBlocksArgs a = m.args(x, n, logits);
    var_blocks(a);
    const std::vector<double> want = m.reference(xr, n);
    CHECK_REL(x.data(), xr.data(), x.size(), 2e-5);
    CHECK_REL(logits.data(), want.data(), want.size(), 2e-5);
  }
  for (size_t i = 0; i < m.layers.size(); ++i) {
    CHECK_REL(m.ck[i].data(), m.rk[i].data(), m.ck[i].size(), 2e-5);
    CHECK_REL(m.cv[i].data(), m.rv[i].data(), m.cv[i].size(), 2e-5);
  }
}

TEST(var_blocks_validate_everything_before_writing) {
  th::Rng rng(82);
  VarModel m(rng, 3, 2, 2, 4, 16, 5, 7);
  std::vector<float> x(2 * 2 * 8), logits(4 * 7);
  rng.fill(x.data(), x.size());
  const std::vector<float> k0 = m.ck[0], x0 = x;
  // The last layer's s2 has the wrong width: nothing is written.
  VarBlocksArgs a = m.args(x, 2, logits);
  const TensorView keep = m.layers[2].s2;
  m.layers[2].s2 = make_view(m.ada[2].data(), DType::kF32, {2, 7});
  CHECK_THROWS_CODE(var_blocks(a), kShape);
  m.layers[2].s2 = keep;
  // More tokens than the caches hold.
  a.cache_length = 4;
  CHECK_THROWS_CODE(var_blocks(a), kShape);
  a.cache_length = 0;
  // Part of a head.
  a.head_bias = TensorView{};
  CHECK_THROWS_CODE(var_blocks(a), kInvalidArgument);
  a = m.args(x, 2, logits);
  // Logits overlapping x.
  a.logits = make_view(x.data(), DType::kF32, {4, 7});
  CHECK_THROWS_CODE(var_blocks(a), kInvalidArgument);
  CHECK(std::memcmp(k0.data(), m.ck[0].data(), k0.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(x0.data(), x.data(), x0.size() * sizeof(float)) == 0);
  var_blocks(m.args(x, 2, logits));  // the valid call runs
  CHECK(std::memcmp(k0.data(), m.ck[0].data(), k0.size() * sizeof(float)) != 0);
}

// ---------------------------------------------------------------------------
// Decode-team stress: the team against the op-by-op path under the shapes
// and schedules where a concurrency bug would show (review of the team in
// core/decoder.cpp). Each case decodes the same steps on two copies of one
// model: the team side on a pool of 2, 3 or 8 threads, the op side on a pool
// of one (TESSERA_DECODE_TEAM is read once per process), and every x, logits,
// cache byte and length must be equal. An ISA is pinned per case (capped by
// the CPU): where the CPU has a bf16 dot product, bf16 weights leave the
// small-M path and the team is not taken, so bf16 cases run on the AVX-512
// (or AVX2) kernels to reach it.
namespace {

struct TeamCase {
  int64_t R, H, Hkv, hd, ffn, V;
  DType compute;  // packed weights
  DType cache;    // KV caches: f32, bf16 or f16
  Isa isa;
};

// Every layer's caches of m held as bf16 or f16 (the float caches rounded).
struct HalfCaches {
  std::vector<std::vector<uint16_t>> k, v;
  HalfCaches(Model& m, DType dt) {
    auto cvt = [dt](const std::vector<float>& src) {
      std::vector<uint16_t> r(src.size());
      for (size_t j = 0; j < src.size(); ++j) r[j] = dt == DType::kBF16 ? f32_to_bf16(src[j]) : f32_to_f16(src[j]);
      return r;
    };
    for (size_t i = 0; i < m.layers.size(); ++i) k.push_back(cvt(m.ck[i])), v.push_back(cvt(m.cv[i]));
    for (size_t i = 0; i < m.layers.size(); ++i) {
      m.layers[i].cache_k = make_view(k[i].data(), dt, {m.R, m.Hkv, m.Lmax, m.hd});
      m.layers[i].cache_v = make_view(v[i].data(), dt, {m.R, m.Hkv, m.Lmax, m.hd});
    }
  }
};

// One model twice (same weights, caches, head and per-step inputs): `team`
// decodes with the team, `ops` op by op; compare() checks them bit for bit.
struct Twin {
  TeamCase c;
  int steps;
  int64_t d, Lmax;
  std::vector<int32_t> start;
  th::Rng r1, r2;
  Model team, ops;
  std::unique_ptr<HalfCaches> ht, ho;
  std::vector<float> head, fnorm;
  PackedWeight* hp = nullptr;
  std::vector<std::vector<float>> xt, xo, lt, lo;
  std::vector<std::vector<int32_t>> pos;

  static std::vector<int32_t> starts(int64_t R) {
    std::vector<int32_t> s(R);
    for (int64_t r = 0; r < R; ++r) s[r] = static_cast<int32_t>((r * 5) % 4);  // rows at lengths 0..3
    return s;
  }
  Twin(const TeamCase& c_, int steps_, uint64_t salt)
      : c(c_), steps(steps_), d(c_.H * c_.hd), Lmax(steps_ + 4), start(starts(c_.R)), r1(salt), r2(salt),
        team(r1, 2, c.R, c.H, c.hd, c.ffn, Lmax, c.compute, start, c.Hkv),
        ops(r2, 2, c.R, c.H, c.hd, c.ffn, Lmax, c.compute, start, c.Hkv) {
    if (c.cache != DType::kF32) {
      ht = std::make_unique<HalfCaches>(team, c.cache);
      ho = std::make_unique<HalfCaches>(ops, c.cache);
    }
    th::Rng rx(salt + 1);
    head.resize(c.V * d);
    fnorm.resize(d);
    rx.fill(head.data(), head.size());
    rx.fill(fnorm.data(), fnorm.size());
    hp = pack_weight(make_view(head.data(), DType::kF32, {c.V, d}), c.compute);
    for (int t = 0; t < steps; ++t) {
      std::vector<float> x(c.R * d);
      rx.fill(x.data(), x.size());
      xt.push_back(x), xo.push_back(x);
      lt.emplace_back(c.R * c.V, NAN), lo.emplace_back(c.R * c.V, NAN);
      pos.push_back({static_cast<int32_t>(3 + t)});
    }
  }
  ~Twin() { free_packed_weight(hp); }
  Twin(const Twin&) = delete;
  Twin& operator=(const Twin&) = delete;

  LlamaBlocksArgs args(bool team_side, int t) {
    Model& m = team_side ? team : ops;
    LlamaBlocksArgs a = m.args(team_side ? xt[t] : xo[t], 1, pos[t], kMaskCausal);
    a.final_norm = make_view(fnorm.data(), DType::kF32, {d});
    a.head = hp;
    a.logits = make_view((team_side ? lt[t] : lo[t]).data(), DType::kF32, {c.R, c.V});
    return a;
  }
  // Steps of the op side; the pool must have one thread.
  void run_ops() {
    for (int t = 0; t < steps; ++t) {
      const LlamaBlocksArgs a = args(false, t);
      CHECK(!llama_blocks_uses_team(a));
      llama_blocks(a);
    }
  }
  void compare(const char* what) {
    for (int t = 0; t < steps; ++t) {
      CHECK(std::memcmp(xt[t].data(), xo[t].data(), sizeof(float) * xt[t].size()) == 0)
          << what << ": x differs at step " << t << ", R " << c.R << " H " << c.H << " Hkv " << c.Hkv;
      CHECK(std::memcmp(lt[t].data(), lo[t].data(), sizeof(float) * lt[t].size()) == 0)
          << what << ": logits differ at step " << t << ", R " << c.R << " H " << c.H << " Hkv " << c.Hkv;
    }
    for (size_t i = 0; i < team.layers.size(); ++i) {
      CHECK(team.lengths[i] == ops.lengths[i]) << what << ": lengths of layer " << i;
      CHECK(team.lengths[i][0] == start[0] + steps) << what << ": layer " << i << " row 0 holds " << team.lengths[i][0];
      for (const auto& [p, q] : {std::pair{&team.layers[i].cache_k, &ops.layers[i].cache_k},
                                 std::pair{&team.layers[i].cache_v, &ops.layers[i].cache_v}})
        CHECK(std::memcmp(p->data, q->data, static_cast<size_t>(p->numel()) * dtype_size(p->dtype)) == 0)
            << what << ": cache bytes of layer " << i << " differ";
    }
  }
};

// Restores the pool size and the ISA when a test ends (also on a throw).
struct PoolAndIsa {
  int saved = ThreadPool::global().num_threads();
  ~PoolAndIsa() {
    ThreadPool::global().resize(saved);
    clear_isa_override();
  }
};

}  // namespace

// Many steps at 2, 3 and 8 threads over the shapes where members outnumber
// units: one kv head for five rows (phase A has one unit), a model of one
// head of 32 (every phase is a single unit: seven of eight members find
// nothing of their own and must steal or wait), 14 rows (the f32 small-M
// limit on AVX-512, every row's length array full), 32 rows on AVX2 (its f32
// limit, the team's row bound), bf16 and f16 KV caches (conversion on append
// and attention on narrow keys), bf16 weights, odd ffn and vocabulary widths.
TEST(llama_blocks_decode_team_stress_equals_op_by_op) {
  PoolAndIsa restore;
  ThreadPool& pool = ThreadPool::global();
  const TeamCase cases[] = {
      {5, 4, 1, 32, 75, 37, DType::kF32, DType::kF32, Isa::kAvx512},     // phase A: 1 unit
      {3, 1, 1, 32, 20, 9, DType::kF32, DType::kF32, Isa::kAvx512},      // every phase: 1 unit
      {14, 2, 2, 32, 45, 33, DType::kF32, DType::kBF16, Isa::kAvx512},   // f32 row limit, bf16 caches
      {4, 4, 2, 64, 50, 70, DType::kBF16, DType::kF16, Isa::kAvx512},    // bf16 weights, f16 caches
      {7, 6, 3, 32, 33, 5, DType::kBF16, DType::kBF16, Isa::kAvx512},    // all bf16, GQA
      {32, 2, 1, 32, 40, 20, DType::kF32, DType::kF32, Isa::kAvx2},      // 32 rows (AVX2 streams f32 to 32)
  };
  uint64_t salt = 900;
  for (const TeamCase& c : cases) {
    set_isa_override(c.isa);
    if (active_isa() != c.isa && c.R > 14) continue;  // 32 f32 rows stream on AVX2 only
    for (int threads : {2, 3, 8}) {
      Twin w(c, 12, salt++);
      pool.resize(threads);
      for (int t = 0; t < w.steps; ++t) {
        const LlamaBlocksArgs a = w.args(true, t);
        CHECK(llama_blocks_uses_team(a)) << "R " << c.R << " H " << c.H << " threads " << threads;
        llama_blocks(a);
      }
      pool.resize(1);
      w.run_ops();
      w.compare(("threads " + std::to_string(threads)).c_str());
    }
  }
  // Where the CPU has a bf16 dot product, bf16 weights leave the small-M
  // path: the team declines and the call goes op by op.
  set_isa_override(Isa::kAvx512Bf16);
  if (active_isa() == Isa::kAvx512Bf16) {
    pool.resize(2);
    Twin w({2, 2, 2, 32, 40, 9, DType::kBF16, DType::kF32, Isa::kAvx512Bf16}, 1, salt++);
    CHECK(!llama_blocks_uses_team(w.args(true, 0)));
  }
}

// A team issued from inside a pool job runs inline on that thread (the pool
// does not nest): two models decoded from two chunks of one outer job, so
// two inline teams may run at once on different threads (and tids), or one
// after the other on one; and two callers at once from their own threads
// (the pool serialises their jobs). Both give the op-by-op bits.
TEST(llama_blocks_decode_team_nested_and_concurrent_callers) {
  PoolAndIsa restore;
  ThreadPool& pool = ThreadPool::global();
  set_isa_override(Isa::kAvx512);
  const TeamCase a{3, 4, 2, 32, 50, 21, DType::kF32, DType::kF32, Isa::kAvx512};
  const TeamCase b{2, 2, 1, 64, 37, 40, DType::kF32, DType::kBF16, Isa::kAvx512};
  const int steps = 8;
  uint64_t salt = 950;
  for (int threads : {2, 8}) {
    // Nested: one outer job, chunk i decodes model i.
    Twin w0(a, steps, salt++), w1(b, steps, salt++);
    Twin* twins[2] = {&w0, &w1};
    pool.resize(threads);
    pool.stats(true);
    for (int t = 0; t < steps; ++t) {
      for (Twin* w : twins) CHECK(llama_blocks_uses_team(w->args(true, t)));
      pool.parallel_for(2, 1, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) llama_blocks(twins[i]->args(true, t));
      });
    }
    // Only the outer jobs reached the workers: the teams ran inline.
    CHECK(pool.stats(true).jobs == steps) << "threads " << threads;
    // Two callers at once, each a thread of its own.
    Twin c0(a, steps, salt++), c1(b, steps, salt++);
    {
      std::exception_ptr err[2];
      auto caller = [](Twin& w, std::exception_ptr& e) {
        try {
          for (int t = 0; t < w.steps; ++t) llama_blocks(w.args(true, t));
        } catch (...) {
          e = std::current_exception();
        }
      };
      std::thread t0(caller, std::ref(c0), std::ref(err[0])), t1(caller, std::ref(c1), std::ref(err[1]));
      t0.join();
      t1.join();
      for (auto& e : err)
        if (e) std::rethrow_exception(e);
    }
    pool.resize(1);
    for (Twin* w : {&w0, &w1, &c0, &c1}) w->run_ops();
    w0.compare("nested, model 0");
    w1.compare("nested, model 1");
    c0.compare("concurrent caller 0");
    c1.compare("concurrent caller 1");
  }
}
