// GEMM family: linear (fused epilogues, f32 and bf16 paths, packed weights),
// matmul, validation, pooled scratch, and the machine-ceiling probes.
// Every case runs on every ISA this CPU has (set_isa_override) and is
// compared with the float64 reference by ‖out − ref‖ / ‖ref‖.
#include <algorithm>
#include <cstring>
#include <vector>

#include "harness.h"
#include "reference.h"
#include "tessera/bench.h"
#include "tessera/cpu.h"
#include "tessera/dtype_convert.h"
#include "tessera/gemm.h"
#include "tessera/pool.h"

using namespace tessera;

namespace {

// fp32: K ≤ 1031 products summed in fp32 give relative error ~ sqrt(K)·2^-24
// ≈ 2e-6 at worst in practice; 1e-5 leaves room for the activation's few ulps.
constexpr double kTolF32 = 1e-5;
// bf16: inputs rounded to 8 significant bits (relative error 2^-9 each) and a
// bf16 output (another 2^-9): errors of ~4e-3 per value, so 1e-2.
constexpr double kTolBf16 = 1e-2;

const Isa kIsas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16};

// A row-major matrix stored in `dt` with row stride ld ≥ cols, plus the exact
// values it holds in double (after rounding to dt).
struct Mat {
  int64_t rows, cols, ld;
  DType dt;
  std::vector<uint8_t> bytes;
  std::vector<double> exact;  // dense rows × cols
  Mat(th::Rng& rng, int64_t r, int64_t c, DType d, int64_t pad = 0)
      : rows(r), cols(c), ld(c + pad), dt(d), bytes(dtype_size(d) * r * (c + pad)), exact(r * c) {
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < ld; ++j) set(i, j, rng.uniform());
  }
  void set(int64_t i, int64_t j, float v) {
    const int64_t idx = i * ld + j;
    if (dt == DType::kF32) reinterpret_cast<float*>(bytes.data())[idx] = v;
    if (dt == DType::kBF16) reinterpret_cast<uint16_t*>(bytes.data())[idx] = f32_to_bf16(v);
    if (dt == DType::kF16) reinterpret_cast<uint16_t*>(bytes.data())[idx] = f32_to_f16(v);
    if (j < cols) exact[i * cols + j] = get(i, j);
  }
  double get(int64_t i, int64_t j) const {
    const int64_t idx = i * ld + j;
    if (dt == DType::kF32) return reinterpret_cast<const float*>(bytes.data())[idx];
    const uint16_t h = reinterpret_cast<const uint16_t*>(bytes.data())[idx];
    return dt == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
  std::vector<double> dense() const {
    std::vector<double> d(rows * cols);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) d[i * cols + j] = get(i, j);
    return d;
  }
  TensorView view() {
    TensorView v = make_view(bytes.data(), dt, {rows, cols});
    v.strides[0] = ld;
    return v;
  }
};

struct LinearCase {
  int64_t M, N, K;
  DType x_dt = DType::kF32, w_dt = DType::kF32, out_dt = DType::kF32;
  DType compute = DType::kF32;  // for the packed run
  Activation act = Activation::kNone;
  bool bias = false, residual = false, packed = false, in_place = false;
  // x and W hold bf16-representable values (in whatever dtype): bf16 compute
  // then loses nothing to input rounding and must match fp32's tolerance.
  bool bf16_values = false;
  int64_t pad = 0;  // extra elements per row of x, out and residual
  int64_t gate = 0;  // rows G of a [G, N] gate (0: none)
};

std::string describe(const LinearCase& c) {
  std::ostringstream os;
  os << isa_name(active_isa()) << " M=" << c.M << " N=" << c.N << " K=" << c.K << " x=" << dtype_name(c.x_dt)
     << " w=" << dtype_name(c.w_dt) << " out=" << dtype_name(c.out_dt) << " act=" << static_cast<int>(c.act)
     << " bias=" << c.bias << " res=" << c.residual << " packed=" << c.packed << " inplace=" << c.in_place
     << " pad=" << c.pad << " gate=" << c.gate << " compute=" << dtype_name(c.compute)
     << " bf16_values=" << c.bf16_values;
  return os.str();
}

// Runs one linear call and returns its relative error against float64.
double run_linear(const LinearCase& c, uint64_t salt) {
  th::Rng rng(salt);
  Mat x(rng, c.M, c.K, c.x_dt, c.pad), w(rng, c.N, c.K, c.w_dt), out(rng, c.M, c.N, c.out_dt, c.pad);
  if (c.bf16_values)
    for (Mat* m : {&x, &w})
      for (int64_t i = 0; i < m->rows; ++i)
        for (int64_t j = 0; j < m->ld; ++j) m->set(i, j, bf16_to_f32(f32_to_bf16(static_cast<float>(m->get(i, j)))));
  Mat bias(rng, 1, c.N, DType::kF32), res(rng, c.M, c.N, DType::kF32, c.pad);
  std::vector<double> ref(c.M * c.N);
  const std::vector<double> res_exact = res.exact;  // before an in-place call overwrites it
  ref::linear(c.M, c.N, c.K, x.exact.data(), w.exact.data(), c.bias ? bias.exact.data() : nullptr,
              c.residual && !c.gate ? res_exact.data() : nullptr, static_cast<int>(c.act), ref.data());
  // The gate (drawn after the other operands, so gate-free cases keep their
  // inputs): ref = gate[m / (M/G)] · act(x·Wᵀ + b) + residual, in float64.
  Mat gate(rng, std::max<int64_t>(c.gate, 1), c.N, DType::kF32, c.pad + 3);
  if (c.gate)
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n) {
        double& r = ref[m * c.N + n];
        r *= gate.exact[(m / (c.M / c.gate)) * c.N + n];
        if (c.residual) r += res_exact[m * c.N + n];
      }
  LinearArgs a;
  a.x = x.view();
  a.weight = w.view();
  a.act = c.act;
  if (c.bias) a.bias = make_view(bias.bytes.data(), DType::kF32, {c.N});
  if (c.residual) a.residual = res.view();
  if (c.gate) a.gate = gate.view();
  a.out = c.in_place ? res.view() : out.view();
  PackedWeight* pw = c.packed ? pack_weight(w.view(), c.compute) : nullptr;
  a.packed = pw;
  linear(a);
  free_packed_weight(pw);
  const std::vector<double> got = c.in_place ? res.dense() : out.dense();
  return th::rel_error(got.data(), ref.data(), got.size());
}

template <class Fn>
void for_each_isa(Fn fn) {
  for (Isa isa : kIsas) {
    set_isa_override(isa);
    if (active_isa() == isa) fn();  // ISAs this CPU lacks are capped: skip the repeat
  }
  clear_isa_override();
}

}  // namespace

// Sizes cover M ∈ {1,2,7,64,130}, N ∈ {1,7,33,257}, K ∈ {1,13,64,1031}: edge
// tiles in every dimension, K not a multiple of 16 or 2, N = 1, the GEMV path
// (M ≤ 4, unpacked) and the packed path; the epilogue rotates with the case.
#ifdef TESSERA_BF16_EMULATION_TESTS
// This program carries the bf16 kernels on software stand-ins
// (native/cpu/bf16_emulation.h): on any AVX-512 CPU the avx512bf16 tier must
// be selectable, or the bf16 cases would silently not run here.
TEST(bf16_emulation_tier_is_active_on_avx512) {
  set_isa_override(Isa::kAvx512);
  const bool avx512 = active_isa() == Isa::kAvx512;
  set_isa_override(Isa::kAvx512Bf16);
  const Isa got = active_isa();
  clear_isa_override();
  if (!avx512) {
    std::printf("  (no AVX-512 on this CPU: the emulated bf16 kernels cannot run)\n");
    return;
  }
  CHECK(got == Isa::kAvx512Bf16) << "the emulated avx512bf16 tier is not selectable";
}
#endif

TEST(gemm_linear_sizes_f32_and_bf16_every_isa) {
  const int64_t sizes[][3] = {{1, 1, 1},    {1, 257, 1031}, {2, 33, 64},  {2, 7, 13},    {7, 33, 1031},
                              {7, 257, 13}, {64, 7, 64},    {64, 1, 1031}, {130, 33, 1031}, {130, 257, 64},
                              {130, 1, 13}, {64, 257, 1}};
  uint64_t salt = 1;
  for_each_isa([&] {
    int i = 0;
    for (const auto& s : sizes) {
      for (int variant = 0; variant < 4; ++variant) {
        LinearCase c{s[0], s[1], s[2]};
        const bool bf16 = variant >= 2;
        c.packed = variant % 2 == 1;
        c.act = static_cast<Activation>((i + variant) % 3);
        c.bias = (i + variant) % 2 == 0;
        c.residual = (i + variant) % 4 < 2;
        c.pad = i % 3 == 0 ? 5 : 0;
        if (bf16) {
          c.x_dt = DType::kBF16;
          c.w_dt = i % 2 ? DType::kF16 : DType::kBF16;
          c.out_dt = DType::kBF16;
          c.compute = DType::kBF16;
        }
        const double e = run_linear(c, ++salt);
        CHECK(e <= (bf16 ? kTolBf16 : kTolF32)) << describe(c) << ": rel error " << e;
      }
      ++i;
    }
  });
}

// Every activation × bias × residual on a tile with edges in M, N and K, for
// unpacked/packed weights and each output dtype.
TEST(gemm_linear_epilogues_every_isa) {
  uint64_t salt = 1000;
  for_each_isa([&] {
    for (int act = 0; act < 3; ++act)
      for (int flags = 0; flags < 4; ++flags)
        for (int variant = 0; variant < 4; ++variant) {
          LinearCase c{variant < 2 ? 3 : 33, 45, 300};  // K > 256 also crosses a K block
          c.act = static_cast<Activation>(act);
          c.bias = flags & 1;
          c.residual = flags & 2;
          c.packed = variant % 2;
          c.out_dt = variant == 2 ? DType::kF16 : variant == 3 ? DType::kBF16 : DType::kF32;
          const double tol = c.out_dt == DType::kF32 ? kTolF32 : kTolBf16;
          const double e = run_linear(c, ++salt);
          CHECK(e <= tol) << describe(c) << ": rel error " << e;
        }
  });
}

// bf16 compute from f32 inputs: x rounded while packing, W packed as bf16 pairs.
TEST(gemm_linear_bf16_compute_from_f32) {
  uint64_t salt = 2000;
  for_each_isa([&] {
    for (int64_t M : {1, 20, 130}) {
      LinearCase c{M, 70, 517};
      c.packed = true;
      c.compute = DType::kBF16;
      c.act = Activation::kSilu;
      c.bias = true;
      const double e = run_linear(c, ++salt);
      CHECK(e <= kTolBf16) << describe(c) << ": rel error " << e;
      c.w_dt = DType::kBF16;  // f32 x with a bf16 weight, unpacked: also the bf16 path
      c.packed = false;
      const double e2 = run_linear(c, ++salt);
      CHECK(e2 <= kTolBf16) << describe(c) << ": rel error " << e2;
    }
  });
}

TEST(gemm_linear_strided_and_in_place_residual) {
  uint64_t salt = 3000;
  for_each_isa([&] {
    for (int64_t M : {2, 37}) {
      LinearCase c{M, 50, 77};
      c.pad = 11;
      c.residual = true;
      c.in_place = true;
      c.bias = true;
      c.act = Activation::kGeluTanh;
      const double e = run_linear(c, ++salt);
      CHECK(e <= kTolF32) << describe(c) << ": rel error " << e;
    }
  });
}

// The gate epilogue (one gate row per group of M/G rows, VAR's AdaLN residual
// gate): GEMV (M ≤ 4, unpacked) and packed-panel paths, groups that end
// inside a register tile (M/G not a multiple of MR), K blocks, every
// activation, in place on the residual, strided rows, 16-bit outputs and bf16
// compute.
TEST(gemm_linear_gate_every_isa) {
  const int64_t cases[][4] = {{1, 45, 300, 1},  {3, 33, 13, 3},   {4, 257, 64, 2},   {6, 7, 1031, 2},
                              {130, 33, 1031, 2}, {130, 257, 64, 13}, {68, 45, 300, 4}, {9, 1, 17, 9}};
  uint64_t salt = 9000;
  for_each_isa([&] {
    int i = 0;
    for (const auto& s : cases) {
      for (int variant = 0; variant < 6; ++variant) {
        LinearCase c{s[0], s[1], s[2]};
        c.gate = s[3];
        c.act = static_cast<Activation>((i + variant) % 3);
        c.bias = (i + variant) % 2 == 0;
        c.residual = variant != 1;
        c.in_place = variant == 2 || variant == 5;
        c.packed = variant >= 3;
        c.pad = i % 2 ? 5 : 0;
        bool bf16 = false;
        if (variant == 4) {  // bf16 compute, bf16 output
          c.compute = DType::kBF16;
          c.out_dt = DType::kBF16;
          bf16 = true;
        }
        const double e = run_linear(c, ++salt);
        CHECK(e <= (bf16 ? kTolBf16 : kTolF32)) << describe(c) << ": rel error " << e;
      }
      ++i;
    }
  });
}

// The small-M streaming path (M ≤ 32 with bf16 B; with f32 B M ≤ 14 on
// AVX-512, ≤ 32 on AVX2; packed or packed per call): M around the row-group
// limits (12/14 per group on AVX-512, 4/6 on AVX2, several groups from 13/15
// on) and past the thresholds (15, 33: the packed-A driver), N with a partial
// last panel and fewer panels than threads, odd K (a bf16 pair split at the
// end) below and across the K block; fp32 and bf16 weights; every
// activation, bias, residual (also in place), AdaLN gate, and 16-bit outputs.
// bf16 cases use bf16-representable inputs, so they are held to the fp32
// tolerance: a dropped or misplaced k (either half of a pair) would show.
TEST(gemm_linear_small_m_every_isa_and_epilogue) {
  const int64_t ms[] = {1, 2, 3, 7, 12, 13, 14, 15, 17, 25, 32, 33};
  const int64_t nk[][2] = {{33, 1031}, {45, 13}, {97, 255}, {7, 513}, {257, 66}};
  uint64_t salt = 12000;
  for_each_isa([&] {
    int i = 0;
    for (const int64_t M : ms)
      for (const auto& s : nk) {
        for (int variant = 0; variant < 4; ++variant, ++i) {
          LinearCase c{M, s[0], s[1]};
          c.packed = variant != 3;  // variant 3: W packed per call (f32 x, bf16 W → bf16 compute)
          c.compute = variant == 0 ? DType::kF32 : DType::kBF16;
          c.bf16_values = variant != 0;
          if (variant == 2) c.x_dt = DType::kBF16;
          if (variant == 3) c.w_dt = DType::kBF16;
          c.act = static_cast<Activation>(i % 3);
          c.bias = i % 2 == 0;
          c.residual = (i / 2) % 3 != 0;
          c.in_place = c.residual && i % 5 == 0;
          c.gate = (i / 3) % 4 == 0 ? (M % 3 == 0 ? 3 : 1) : 0;
          c.pad = i % 7 == 0 ? 5 : 0;
          c.out_dt = i % 11 == 4 ? DType::kBF16 : i % 11 == 8 ? DType::kF16 : DType::kF32;
          const double tol = c.out_dt == DType::kF32 ? kTolF32 : kTolBf16;
          const double e = run_linear(c, ++salt);
          CHECK(e <= tol) << describe(c) << ": rel error " << e;
        }
      }
  });
}

// bf16 weights at large M (B widened per K block by the ISA's widener) with
// bf16-representable inputs: the fp32 tolerance applies.
TEST(gemm_linear_bf16_weights_large_m_exact_inputs) {
  uint64_t salt = 13000;
  for_each_isa([&] {
    for (const int64_t M : {33, 64, 130})
      for (const int64_t K : {255, 1031}) {
        LinearCase c{M, 70, K};
        c.packed = true;
        c.compute = DType::kBF16;
        c.bf16_values = true;
        c.bias = true;
        c.act = Activation::kGeluTanh;
        const double e = run_linear(c, ++salt);
        CHECK(e <= kTolF32) << describe(c) << ": rel error " << e;
      }
  });
}

// Packed and unpacked weights give the same result: bit for bit where both
// take the packed-panel path (M > 4); for M ≤ 4 the unpacked call takes the
// GEMV, which sums in another order, so equal to fp32 rounding.
// Batch invariance: a row's output does not depend on how many rows share
// the call. The serving cohorts (lib/server) stack requests into one call per
// step and promise bit-identical results to solo runs, so the small-M
// streaming path (M up to 14 or 32) and the packed driver must round every
// sum the same way. Packed fp32 and bf16 weights, bias + GELU + residual,
// every ISA; the prefix of M' rows of a 37-row call equals the M'-row call.
TEST(gemm_linear_rows_are_batch_invariant) {
  for_each_isa([&] {
    for (DType compute : {DType::kF32, DType::kBF16}) {
      th::Rng rng(7100 + static_cast<int>(compute));
      const int64_t Mfull = 37, N = 77, K = 301;
      Mat x(rng, Mfull, K, DType::kF32), w(rng, N, K, DType::kF32), res(rng, Mfull, N, DType::kF32),
          bias(rng, 1, N, DType::kF32), full(rng, Mfull, N, DType::kF32);
      PackedWeight* pw = pack_weight(w.view(), compute);
      auto run = [&](int64_t M, Mat& out) {
        LinearArgs a;
        a.x = x.view();
        a.x.shape[0] = M;
        a.weight = w.view();
        a.packed = pw;
        a.bias = make_view(bias.bytes.data(), DType::kF32, {N});
        a.residual = res.view();
        a.residual.shape[0] = M;
        a.act = Activation::kGeluTanh;
        a.out = out.view();
        a.out.shape[0] = M;
        linear(a);
      };
      run(Mfull, full);
      const auto f = full.dense();
      for (int64_t M : {1, 2, 3, 5, 13, 14, 15, 16, 31, 32, 33}) {
        Mat part(rng, Mfull, N, DType::kF32);
        run(M, part);
        const auto p = part.dense();
        int64_t differ = 0;
        for (int64_t i = 0; i < M * N; ++i) differ += p[i] != f[i];
        CHECK(differ == 0) << isa_name(active_isa()) << " " << dtype_name(compute) << " M=" << M << ": " << differ
                           << " of " << M * N << " outputs differ from the same rows in a " << Mfull << "-row call";
      }
      free_packed_weight(pw);
    }
  });
}

TEST(gemm_linear_packed_matches_unpacked) {
  for_each_isa([&] {
    for (int64_t M : {1, 9}) {
      th::Rng rng(4000 + M);
      Mat x(rng, M, 100, DType::kF32), w(rng, 40, 100, DType::kF32), o1(rng, M, 40, DType::kF32),
          o2(rng, M, 40, DType::kF32);
      LinearArgs a;
      a.x = x.view();
      a.weight = w.view();
      a.out = o1.view();
      linear(a);
      PackedWeight* pw = pack_weight(w.view(), DType::kF32);
      CHECK(packed_weight_bytes(pw) >= sizeof(float) * 40 * 100);
      a.packed = pw;
      a.out = o2.view();
      linear(a);
      free_packed_weight(pw);
      const auto d1 = o1.dense(), d2 = o2.dense();
      if (M > 4) CHECK(d1 == d2) << isa_name(active_isa()) << " M=" << M;
      else CHECK_REL(d2.data(), d1.data(), d1.size(), 1e-6);
    }
  });
}

TEST(gemm_matmul_transposes_alpha_beta) {
  uint64_t salt = 5000;
  for_each_isa([&] {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const int64_t M = 19, N = 40, K = 291;
        th::Rng rng(++salt);
        Mat A(rng, ta ? K : M, ta ? M : K, DType::kF32, 3), B(rng, tb ? N : K, tb ? K : N, DType::kF32, 2);
        Mat C(rng, M, N, DType::kF32, 1);
        const float alpha = 0.75f, beta = ta ? 0.f : -0.5f;
        std::vector<double> ref(M * N);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k)
              s += (ta ? A.exact[k * M + m] : A.exact[m * K + k]) * (tb ? B.exact[n * K + k] : B.exact[k * N + n]);
            ref[m * N + n] = alpha * s + beta * C.exact[m * N + n];
          }
        MatmulArgs a;
        a.a = A.view();
        a.b = B.view();
        a.c = C.view();
        a.trans_a = ta;
        a.trans_b = tb;
        a.alpha = alpha;
        a.beta = beta;
        matmul(a);
        const auto got = C.dense();
        const double e = th::rel_error(got.data(), ref.data(), got.size());
        CHECK(e <= kTolF32) << isa_name(active_isa()) << " ta=" << ta << " tb=" << tb << ": rel error " << e;
      }
  });
}

TEST(gemm_validation_codes) {
  th::Rng rng(6000);
  Mat x(rng, 4, 8, DType::kF32), w(rng, 6, 8, DType::kF32), out(rng, 4, 6, DType::kF32);
  Mat wrong_w(rng, 6, 9, DType::kF32), i32(rng, 4, 8, DType::kF32), xw(rng, 4, 16, DType::kF32);
  auto base = [&] {
    LinearArgs a;
    a.x = x.view();
    a.weight = w.view();
    a.out = out.view();
    return a;
  };
  LinearArgs a = base();
  a.weight = wrong_w.view();
  CHECK_THROWS_CODE(linear(a), kShape);
  a = base();
  a.out = make_view(out.bytes.data(), DType::kF32, {4, 5});
  CHECK_THROWS_CODE(linear(a), kShape);
  a = base();
  a.bias = make_view(out.bytes.data(), DType::kF32, {5});
  CHECK_THROWS_CODE(linear(a), kShape);
  a = base();
  a.x.dtype = DType::kI32;
  CHECK_THROWS_CODE(linear(a), kDtype);
  a = base();
  a.x = make_view(i32.bytes.data(), DType::kBF16, {4, 8});  // 16-bit x needs a 16-bit weight
  CHECK_THROWS_CODE(linear(a), kDtype);
  a = base();
  a.x.strides[1] = 2;
  CHECK_THROWS_CODE(linear(a), kShape);
  // out written over part of x: both are views into one [4, 16] buffer.
  a = base();
  a.x = make_view(xw.bytes.data(), DType::kF32, {4, 8});
  a.x.strides[0] = 16;
  a.out = make_view(xw.bytes.data(), DType::kF32, {4, 6});
  a.out.strides[0] = 16;
  a.out.data = reinterpret_cast<float*>(xw.bytes.data()) + 4;  // columns 4..9 of each row
  CHECK_THROWS_CODE(linear(a), kAlias);
  a = base();
  a.out = x.view();
  a.out.shape[1] = 6;
  CHECK_THROWS_CODE(linear(a), kAlias);
  // A residual that overlaps out without being the same view.
  Mat r(rng, 5, 6, DType::kF32);
  a = base();
  a.out = make_view(r.bytes.data(), DType::kF32, {4, 6});
  a.residual = make_view(reinterpret_cast<float*>(r.bytes.data()) + 6, DType::kF32, {4, 6});
  CHECK_THROWS_CODE(linear(a), kAlias);
  // Gates: G must divide M (4), N must match, float32 only, not over out.
  Mat g(rng, 3, 6, DType::kF32);
  a = base();
  a.gate = g.view();  // [3, 6]: 3 does not divide 4
  CHECK_THROWS_CODE(linear(a), kShape);
  a.gate.shape[0] = 2;
  a.gate.shape[1] = 5;
  CHECK_THROWS_CODE(linear(a), kShape);
  a.gate.shape[1] = 6;
  a.gate.dtype = DType::kF16;
  CHECK_THROWS_CODE(linear(a), kDtype);
  a = base();
  a.gate = make_view(out.bytes.data(), DType::kF32, {2, 6});
  CHECK_THROWS_CODE(linear(a), kAlias);
  a = base();
  a.gate = g.view();
  a.gate.shape[0] = 2;
  a.gate.device = Device{DeviceKind::kCUDA, 0};
  CHECK_THROWS_CODE(linear(a), kDevice);
  a = base();
  a.gate = g.view();
  a.gate.shape[0] = 2;
  linear(a);  // the valid form
  a = base();
  a.out.device = Device{DeviceKind::kCUDA, 0};
  CHECK_THROWS_CODE(linear(a), kDevice);
  MatmulArgs m;
  m.a = x.view();
  m.b = w.view();  // [6, 8]: needs trans_b
  m.c = out.view();
  CHECK_THROWS_CODE(matmul(m), kShape);
  m.trans_b = true;
  m.c = x.view();
  CHECK_THROWS_CODE(matmul(m), kShape);
  CHECK_THROWS_CODE(pack_weight(w.view(), DType::kF16), kDtype);
}

// A repeated call reuses its pooled buffers: no fresh host allocation.
TEST(gemm_linear_reuses_pooled_scratch) {
  LinearCase c{100, 300, 600};
  run_linear(c, 7000);
  const auto before = host_pool_stats();
  run_linear(c, 7001);
  const auto after = host_pool_stats();
  CHECK(after.fresh_allocations == before.fresh_allocations)
      << after.fresh_allocations - before.fresh_allocations << " fresh allocations";
}

TEST(gemm_bench_ceilings_are_positive) {
  CHECK(measure_fma_peak_gflops(1, false) > 1.0);
  CHECK(measure_copy_bandwidth_gbs(1, size_t(4) << 20) > 0.1);
  CHECK(measure_read_bandwidth_gbs(2, size_t(4) << 20) > 0.1);
  CHECK(measure_read_bandwidth_gbs(1, 4100) > 0.01);  // below one slice per thread, rounded down to 64 B
}
