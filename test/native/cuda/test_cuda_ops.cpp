// Linear/matmul, RoPE, KV-cache append, memory entries and validation codes
// on CUDA, each against its float64 reference or an exact expectation.
#include <cmath>
#include <limits>

#include "attention_case.h"
#include "tessera/gemm.h"

using namespace tessera;
using namespace ct;

TEST(cuda_memory_roundtrip_and_oom) {
  std::vector<float> h(1000);
  for (size_t i = 0; i < h.size(); ++i) h[i] = float(i) * 0.5f;
  DevBuf a = to_device(h), b(h.size() * 4);
  call(api().copy, int32_t(0), b.p, static_cast<const void*>(a.p), h.size() * 4, int32_t(2));
  std::vector<float> back(h.size());
  b.download(back.data(), back.size() * 4);
  CHECK(back == h) << "device→device→host copy changed the data";
  void* p = nullptr;
  const int rc = code_of(api().alloc, int32_t(0), size_t(1) << 50, &p);  // 1 PiB
  CHECK(rc == int(Code::kOutOfMemory)) << "huge alloc returned " << rc;
  CudaDeviceProps props{};
  CHECK(code_of(api().device_props, int32_t(99), &props) == int(Code::kDevice));
}

TEST(cuda_linear_all_epilogues) {
  // bf16/f16 operands: the tensor-core kernel (K % 8 == 0) or the SIMT one (K = 13).
  struct Combo { DType x, w, out; };
  const Combo combos[] = {{DType::kF32, DType::kF32, DType::kF32},  {DType::kF32, DType::kBF16, DType::kF32},
                          {DType::kBF16, DType::kBF16, DType::kF32}, {DType::kBF16, DType::kBF16, DType::kBF16},
                          {DType::kF16, DType::kF16, DType::kF32},  {DType::kF16, DType::kF16, DType::kF16}};
  struct Shape { int64_t M, N, K; };
  const Shape shapes[] = {{1, 33, 40}, {7, 1, 8}, {130, 257, 512}, {200, 130, 13}};
  uint64_t salt = 20000;
  for (const auto& cb : combos)
    for (const auto& s : shapes)
      for (int act = 0; act <= 2; ++act)
        for (int extras = 0; extras < 4; ++extras) {
          th::Rng rng(++salt);
          const bool has_bias = extras & 1, has_res = extras & 2;
          HostData x = random_host(cb.x, s.M * s.K, rng), w = random_host(cb.w, s.N * s.K, rng);
          HostData bias = random_host(DType::kF32, s.N, rng), res = random_host(DType::kF32, s.M * s.N, rng);
          std::vector<double> ref(s.M * s.N);
          ref::linear(s.M, s.N, s.K, x.val.data(), w.val.data(), has_bias ? bias.val.data() : nullptr,
                      has_res ? res.val.data() : nullptr, act, ref.data());
          DevBuf dx = to_device(x), dw = to_device(w), db = to_device(bias), dr = to_device(res);
          DevBuf dout(s.M * s.N * dtype_size(cb.out));
          dout.poison();
          LinearArgs a;
          a.x = view(dx, cb.x, {s.M, s.K});
          a.weight = view(dw, cb.w, {s.N, s.K});
          if (has_bias) a.bias = view(db, DType::kF32, {s.N});
          if (has_res) a.residual = view(dr, DType::kF32, {s.M, s.N});
          a.out = view(dout, cb.out, {s.M, s.N});
          a.act = static_cast<Activation>(act);
          call(api().linear, &a);
          const auto got = fetch(dout, cb.out);
          const double tol = tol_for({cb.x, cb.w, cb.out});
          const double e = th::rel_error(got.data(), ref.data(), got.size());
          CHECK(e <= tol) << "linear M" << s.M << " N" << s.N << " K" << s.K << " x:" << dt_name(cb.x)
                          << " w:" << dt_name(cb.w) << " out:" << dt_name(cb.out) << " act" << act << " bias"
                          << has_bias << " res" << has_res << ": rel error " << e;
        }
}

TEST(cuda_linear_in_place_residual_and_packed) {
  th::Rng rng(21000);
  const int64_t M = 64, N = 96, K = 128;
  for (DType wdt : {DType::kBF16, DType::kF32}) {
    const DType xdt = wdt;
    HostData x = random_host(xdt, M * K, rng), w = random_host(wdt, N * K, rng);
    HostData res = random_host(DType::kF32, M * N, rng);
    std::vector<double> ref(M * N);
    ref::linear(M, N, K, x.val.data(), w.val.data(), nullptr, res.val.data(), 2, ref.data());
    DevBuf dx = to_device(x), dw = to_device(w), dr = to_device(res);
    PackedWeight* pw = nullptr;
    const TensorView wv = view(dw, wdt, {N, K});
    call(api().pack_weight, &wv, int32_t(wdt == DType::kBF16 ? DType::kBF16 : DType::kF32), &pw);
    LinearArgs a;
    a.x = view(dx, xdt, {M, K});
    a.packed = pw;
    a.residual = view(dr, DType::kF32, {M, N});
    a.out = a.residual;  // in place: out aliases residual exactly
    a.act = Activation::kSilu;
    call(api().linear, &a);
    const auto got = fetch(dr, DType::kF32);
    call(api().free_packed_weight, pw);
    const double e = th::rel_error(got.data(), ref.data(), got.size());
    CHECK(e <= tol_for({wdt})) << "packed " << dt_name(wdt) << " in-place: rel error " << e;
  }
}

TEST(cuda_matmul_transposes_alpha_beta) {
  uint64_t salt = 22000;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (float beta : {0.f, 0.5f}) {
        th::Rng rng(++salt);
        const int64_t M = 70, N = 45, K = 130;
        HostData A = random_host(DType::kF32, M * K, rng), B = random_host(DType::kF32, K * N, rng);
        HostData C = random_host(DType::kF32, M * N, rng);
        const float alpha = 1.5f;
        std::vector<double> ref(M * N);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k)
              s += A.val[ta ? k * M + m : m * K + k] * B.val[tb ? n * K + k : k * N + n];
            ref[m * N + n] = alpha * s + beta * C.val[m * N + n];
          }
        DevBuf dA = to_device(A), dB = to_device(B), dC = to_device(C);
        if (beta == 0.f) dC.poison();  // beta 0: C is not read (NaN there must not leak)
        MatmulArgs a;
        a.a = ta ? view(dA, DType::kF32, {K, M}) : view(dA, DType::kF32, {M, K});
        a.b = tb ? view(dB, DType::kF32, {N, K}) : view(dB, DType::kF32, {K, N});
        a.c = view(dC, DType::kF32, {M, N});
        a.trans_a = ta;
        a.trans_b = tb;
        a.alpha = alpha;
        a.beta = beta;
        call(api().matmul, &a);
        const auto got = fetch(dC, DType::kF32);
        const double e = th::rel_error(got.data(), ref.data(), got.size());
        CHECK(e <= 1e-5) << "matmul ta" << ta << " tb" << tb << " beta " << beta << ": rel error " << e;
      }
}

TEST(cuda_rope_styles_tables_positions) {
  uint64_t salt = 23000;
  const int64_t B = 2, H = 3, L = 9, D = 16, P = 20;
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF16})
    for (int style = 0; style < 2; ++style)
      for (int per_head = 0; per_head < 2; ++per_head)
        for (int R : {16, 8})
          for (int mode = 0; mode < 3; ++mode) {  // 0: positions [B,L], 1: [L], 2: none (token index)
            for (int in_place = 0; in_place < 2; ++in_place)
              for (QkvLayout lay : {QkvLayout::kBHLD, QkvLayout::kBLHD}) {
                th::Rng rng(++salt);
                HostData x = random_host(dt, B * H * L * D, rng);  // stored in `lay`
                const int64_t TH = per_head ? H : 1;
                HostData cs = random_host(DType::kF32, P * TH * (R / 2), rng, -1.f, 1.f);
                HostData sn = random_host(DType::kF32, P * TH * (R / 2), rng, -1.f, 1.f);
                std::vector<int32_t> pos(B * L);
                for (auto& p : pos) p = static_cast<int32_t>(rng.randint(0, P - 1));
                if (mode == 1)
                  for (int64_t l = 0; l < L; ++l) pos[L + l] = pos[l];  // [L] table: same for every row
                auto at = [&](int64_t b, int64_t h, int64_t l, int64_t d) {
                  return lay == QkvLayout::kBHLD ? ((b * H + h) * L + l) * D + d : ((b * L + l) * H + h) * D + d;
                };
                std::vector<double> xd(B * H * L * D), ref(B * H * L * D);
                for (int64_t b = 0; b < B; ++b)
                  for (int64_t h = 0; h < H; ++h)
                    for (int64_t l = 0; l < L; ++l)
                      for (int64_t d = 0; d < D; ++d) xd[((b * H + h) * L + l) * D + d] = x.val[at(b, h, l, d)];
                ref::rope(B, H, L, D, R, xd.data(), cs.val.data(), sn.val.data(), TH, mode == 2 ? nullptr : pos.data(),
                          style, ref.data());
                DevBuf dx = to_device(x), dc = to_device(cs), ds = to_device(sn), dp = to_device(pos);
                DevBuf dout(x.raw.size());
                dout.poison();
                RopeArgs a;
                a.x = lay == QkvLayout::kBHLD ? view(dx, dt, {B, H, L, D}) : view(dx, dt, {B, L, H, D});
                a.out = in_place ? a.x : (lay == QkvLayout::kBHLD ? view(dout, dt, {B, H, L, D}) : view(dout, dt, {B, L, H, D}));
                a.layout = lay;
                a.cos = per_head ? view(dc, DType::kF32, {P, H, R / 2}) : view(dc, DType::kF32, {P, R / 2});
                a.sin = per_head ? view(ds, DType::kF32, {P, H, R / 2}) : view(ds, DType::kF32, {P, R / 2});
                if (mode == 0) a.positions = view(dp, DType::kI32, {B, L});
                if (mode == 1) a.positions = view(dp, DType::kI32, {L});
                a.style = static_cast<RopeStyle>(style);
                a.rotary_dim = R == D ? 0 : R;
                call(api().rope_apply, &a);
                const auto raw = fetch(in_place ? dx : dout, dt);
                std::vector<double> got(raw.size());
                for (int64_t b = 0; b < B; ++b)
                  for (int64_t h = 0; h < H; ++h)
                    for (int64_t l = 0; l < L; ++l)
                      for (int64_t d = 0; d < D; ++d) got[((b * H + h) * L + l) * D + d] = raw[at(b, h, l, d)];
                const double e = th::rel_error(got.data(), ref.data(), got.size());
                // 16-bit outputs: one rounding of each result (≤ 2^-8 relative).
                CHECK(e <= tol_for({dt})) << "rope " << dt_name(dt) << " style" << style << " per_head" << per_head
                                          << " R" << R << " posmode" << mode << " in_place" << in_place << ": " << e;
              }
          }
}

TEST(cuda_kv_append_and_overflow) {
  th::Rng rng(24000);
  const int64_t B = 2, H = 2, Lmax = 10, D = 8, Lnew = 3;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    HostData cache = random_host(dt, B * H * Lmax * D, rng);
    HostData kn = random_host(DType::kF32, B * Lnew * H * D, rng);  // BLHD, f32 → converted
    DevBuf dck = to_device(cache), dcv = to_device(cache), dk = to_device(kn), dv = to_device(kn);
    int32_t lengths[2] = {4, 0};
    const int32_t counts[2] = {3, 2};
    KvAppendArgs a;
    a.cache_k = view(dck, dt, {B, H, Lmax, D});
    a.cache_v = view(dcv, dt, {B, H, Lmax, D});
    a.k_new = view(dk, DType::kF32, {B, Lnew, H, D});
    a.v_new = view(dv, DType::kF32, {B, Lnew, H, D});
    a.layout = QkvLayout::kBLHD;
    a.lengths = lengths;
    a.counts = counts;
    call(api().kv_append, &a);
    CHECK(lengths[0] == 7 && lengths[1] == 2);
    HostData expect = cache;
    const int32_t start[2] = {4, 0};
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < counts[b]; ++t)
          for (int64_t d = 0; d < D; ++d)
            set_elem(expect, ((b * H + h) * Lmax + start[b] + t) * D + d, kn.val[((b * Lnew + t) * H + h) * D + d]);
    const auto got = fetch(dck, dt);
    CHECK(got == expect.val) << "kv_append " << dt_name(dt) << " wrote the wrong elements";
    // Row 0 at length 7 + 3 new > 10: refused with kShape, nothing written, lengths kept.
    lengths[0] = 8;
    a.counts = nullptr;
    const auto before = fetch(dcv, dt);
    CHECK(code_of(api().kv_append, &a) == int(Code::kShape));
    CHECK(lengths[0] == 8 && lengths[1] == 2);
    CHECK(fetch(dcv, dt) == before) << "a refused append must write nothing";
  }
}

TEST(cuda_kv_cache_decode_equals_full) {
  // Token-by-token decode through kv_append + attention(Lq=1, kv_lengths)
  // must match the rows of one causal attention over the whole sequence.
  for (DType dt : {DType::kF32, DType::kBF16}) {
    th::Rng rng(25000 + int(dt));
    const int64_t B = 2, H = 4, L = 40, D = 64, Lmax = 48;
    HostData q = random_host(dt, B * H * L * D, rng), k = random_host(dt, B * H * L * D, rng),
             v = random_host(dt, B * H * L * D, rng);
    DevBuf dq = to_device(q), dk = to_device(k), dv = to_device(v), dfull(q.raw.size());
    const float scale = 0.125f;
    attention_on_device(view(dq, dt, {B, H, L, D}), view(dk, dt, {B, H, L, D}), view(dv, dt, {B, H, L, D}),
                        view(dfull, dt, {B, H, L, D}), kMaskCausal, scale, nullptr, int(B));
    const auto full = fetch(dfull, dt);
    DevBuf ck(B * H * Lmax * D * dtype_size(dt)), cv(B * H * Lmax * D * dtype_size(dt));
    ck.poison();  // unwritten cache rows are NaN: decode must never read them
    cv.poison();
    int32_t lengths[2] = {0, 0};
    std::vector<double> dec(full.size());
    const size_t es = dtype_size(dt);
    for (int64_t t = 0; t < L; ++t) {
      // Token t of every (b, h) as [B, H, 1, D] views into the full q/k/v (strided).
      auto tok = [&](const DevBuf& buf) {
        TensorView tv = view(buf, dt, {B, H, 1, D});
        tv.data = static_cast<char*>(buf.p) + t * D * es;
        tv.strides[0] = H * L * D;
        tv.strides[1] = L * D;
        tv.strides[2] = D;
        return tv;
      };
      KvAppendArgs ka;
      ka.cache_k = view(ck, dt, {B, H, Lmax, D});
      ka.cache_v = view(cv, dt, {B, H, Lmax, D});
      ka.k_new = tok(dk);
      ka.v_new = tok(dv);
      ka.lengths = lengths;
      call(api().kv_append, &ka);
      DevBuf o1(B * H * D * es);
      attention_on_device(tok(dq), view(ck, dt, {B, H, Lmax, D}), view(cv, dt, {B, H, Lmax, D}),
                          view(o1, dt, {B, H, 1, D}), kMaskCausal, scale, lengths, int(B));
      const auto r = fetch(o1, dt);
      for (int64_t bh = 0; bh < B * H; ++bh)
        for (int64_t d = 0; d < D; ++d) dec[(bh * L + t) * D + d] = r[bh * D + d];
    }
    const double e = th::rel_error(dec.data(), full.data(), full.size());
    CHECK(e <= tol_for({dt})) << "decode vs full " << dt_name(dt) << ": rel error " << e;
  }
}

TEST(cuda_validation_codes_match_cpu_rules) {
  th::Rng rng(26000);
  HostData q = random_host(DType::kBF16, 2 * 8 * 64, rng);
  DevBuf dq = to_device(q), dk = to_device(q), dout(q.raw.size());
  AttentionArgs a;
  a.q = view(dq, DType::kBF16, {1, 2, 8, 64});
  a.k = view(dk, DType::kBF16, {1, 2, 8, 64});
  a.v = a.k;
  a.out = view(dout, DType::kBF16, {1, 2, 8, 64});
  a.scale = 0.125f;
  CHECK(code_of(api().attention, &a) == 0);
  AttentionArgs bad = a;
  bad.k = view(dk, DType::kBF16, {1, 2, 8, 32});  // head dim mismatch
  bad.v = bad.k;
  CHECK(code_of(api().attention, &bad) == int(Code::kShape));
  bad = a;
  bad.q.dtype = DType::kI32;
  CHECK(code_of(api().attention, &bad) == int(Code::kDtype));
  bad = a;
  bad.out = a.q;  // out overlaps q
  CHECK(code_of(api().attention, &bad) == int(Code::kAlias));
  LinearArgs l;
  l.x = view(dq, DType::kBF16, {16, 64});
  l.weight = view(dk, DType::kBF16, {16, 32});  // K mismatch
  l.out = view(dout, DType::kF32, {16, 16});
  CHECK(code_of(api().linear, &l) == int(Code::kShape));
  ErrBuf err{};
  const int rc = api().attention(&bad, &err);
  CHECK(rc != 0 && err.msg[0] != 0) << "a refused call must say why";
}

TEST(cuda_linear_gate_epilogue) {
  // out = gate[m / (M/G)] ⊙ act(x·Wᵀ + b) + residual, on the SIMT (f32, K = 13)
  // and tensor-core (bf16, K = 64) kernels.
  struct Case { DType dt; int64_t M, N, K, G; };
  const Case cases[] = {{DType::kF32, 12, 33, 13, 3}, {DType::kBF16, 130, 72, 64, 2}, {DType::kBF16, 7, 9, 16, 7}};
  uint64_t salt = 27000;
  for (const auto& c : cases)
    for (int act = 0; act <= 2; ++act) {
      th::Rng rng(++salt);
      HostData x = random_host(c.dt, c.M * c.K, rng), w = random_host(c.dt, c.N * c.K, rng);
      HostData bias = random_host(DType::kF32, c.N, rng), res = random_host(DType::kF32, c.M * c.N, rng);
      HostData gate = random_host(DType::kF32, c.G * c.N, rng);
      std::vector<double> ref(c.M * c.N);
      ref::linear(c.M, c.N, c.K, x.val.data(), w.val.data(), bias.val.data(), nullptr, act, ref.data());
      for (int64_t m = 0; m < c.M; ++m)
        for (int64_t n = 0; n < c.N; ++n)
          ref[m * c.N + n] = ref[m * c.N + n] * gate.val[(m / (c.M / c.G)) * c.N + n] + res.val[m * c.N + n];
      DevBuf dx = to_device(x), dw = to_device(w), db = to_device(bias), dr = to_device(res), dg = to_device(gate);
      DevBuf dout(c.M * c.N * 4);
      dout.poison();
      LinearArgs a;
      a.x = view(dx, c.dt, {c.M, c.K});
      a.weight = view(dw, c.dt, {c.N, c.K});
      a.bias = view(db, DType::kF32, {c.N});
      a.residual = view(dr, DType::kF32, {c.M, c.N});
      a.gate = view(dg, DType::kF32, {c.G, c.N});
      a.out = view(dout, DType::kF32, {c.M, c.N});
      a.act = static_cast<Activation>(act);
      call(api().linear, &a);
      const auto got = fetch(dout, DType::kF32);
      const double e = th::rel_error(got.data(), ref.data(), got.size());
      CHECK(e <= tol_for({c.dt})) << "gated linear " << dt_name(c.dt) << " M" << c.M << " G" << c.G << " act" << act
                                  << ": rel error " << e;
    }
}

TEST(cuda_rope_device_positions_out_of_table_are_clamped) {
  // Device positions cannot be checked on the host: ids below 0 or past the
  // table read its first or last row, never memory outside it.
  th::Rng rng(28000);
  const int64_t B = 2, H = 2, L = 5, D = 8, P = 6;
  HostData x = random_host(DType::kF32, B * H * L * D, rng);
  HostData cs = random_host(DType::kF32, P * (D / 2), rng), sn = random_host(DType::kF32, P * (D / 2), rng);
  const std::vector<int32_t> pos = {0, -1, 5, 6, 1 << 30, -(1 << 30), 3, 7, 2, 100};
  std::vector<int32_t> clamped(pos);
  for (auto& p : clamped) p = p < 0 ? 0 : (p >= P ? int32_t(P - 1) : p);
  std::vector<double> ref(B * H * L * D);
  ref::rope(B, H, L, D, D, x.val.data(), cs.val.data(), sn.val.data(), 1, clamped.data(), 0, ref.data());
  DevBuf dx = to_device(x), dc = to_device(cs), ds = to_device(sn), dp = to_device(pos), dout(x.raw.size());
  RopeArgs a;
  a.x = view(dx, DType::kF32, {B, H, L, D});
  a.out = view(dout, DType::kF32, {B, H, L, D});
  a.cos = view(dc, DType::kF32, {P, D / 2});
  a.sin = view(ds, DType::kF32, {P, D / 2});
  a.positions = view(dp, DType::kI32, {B, L});
  call(api().rope_apply, &a);
  const auto got = fetch(dout, DType::kF32);
  const double e = th::rel_error(got.data(), ref.data(), got.size());
  CHECK(e <= 1e-6) << "rope with out-of-table device positions: rel error " << e;
}

TEST(cuda_op_after_out_of_memory_runs) {
  // An op whose device allocation fails reports kOutOfMemory; the failure
  // must not stay behind as the thread's last CUDA error and fail the next
  // call's launch check.
  DevBuf w(64);
  TensorView wv = view(w, DType::kBF16, {int64_t(1) << 24, int64_t(1) << 24});  // 512 TiB to pack: never read
  PackedWeight* pw = nullptr;
  CHECK(code_of(api().pack_weight, static_cast<const TensorView*>(&wv), int32_t(DType::kBF16), &pw) ==
        int(Code::kOutOfMemory));
  CHECK(pw == nullptr);
  th::Rng rng(29000);
  HostData x = random_host(DType::kF32, 4 * 8, rng), wt = random_host(DType::kF32, 3 * 8, rng);
  std::vector<double> ref(4 * 3);
  ref::linear(4, 3, 8, x.val.data(), wt.val.data(), nullptr, nullptr, 0, ref.data());
  DevBuf dx = to_device(x), dw = to_device(wt), dout(4 * 3 * 4);
  LinearArgs a;
  a.x = view(dx, DType::kF32, {4, 8});
  a.weight = view(dw, DType::kF32, {3, 8});
  a.out = view(dout, DType::kF32, {4, 3});
  CHECK(code_of(api().linear, &a) == 0) << "the call after an out-of-memory error failed";
  const auto got = fetch(dout, DType::kF32);
  CHECK(th::rel_error(got.data(), ref.data(), got.size()) <= 1e-6);
}

TEST(cuda_linear_rows_beyond_grid_y_limit) {
  // 65535 tiles of 128 rows was the most a grid's y dimension held: one row
  // more must run (the CPU takes any M), on the tensor-core kernel (bf16,
  // K % 8 == 0) and the SIMT one (f32).
  const int64_t M = 65535LL * 128 + 1, N = 3;
  uint64_t salt = 30000;
  for (auto [dt, K] : {std::pair{DType::kBF16, int64_t(8)}, std::pair{DType::kF32, int64_t(5)}}) {
    th::Rng rng(++salt);
    HostData x = random_host(dt, M * K, rng), w = random_host(dt, N * K, rng), bias = random_host(DType::kF32, N, rng);
    std::vector<double> ref(M * N);
    ref::linear(M, N, K, x.val.data(), w.val.data(), bias.val.data(), nullptr, 2, ref.data());
    DevBuf dx = to_device(x), dw = to_device(w), db = to_device(bias), dout(M * N * 4);
    dout.poison();
    LinearArgs a;
    a.x = view(dx, dt, {M, K});
    a.weight = view(dw, dt, {N, K});
    a.bias = view(db, DType::kF32, {N});
    a.out = view(dout, DType::kF32, {M, N});
    a.act = Activation::kSilu;
    call(api().linear, &a);
    const auto got = fetch(dout, DType::kF32);
    const double e = th::rel_error(got.data(), ref.data(), got.size());
    CHECK(e <= tol_for({dt})) << "linear M " << M << " " << dt_name(dt) << ": rel error " << e;
  }
}
