// NN op family: conv2d (every ISA, through the GEMM), group/layer/rms norms,
// resize, vq_nearest/embedding, sampling. Each output is compared with a plain
// float64 reference of the formula in the op's header by ‖out − ref‖/‖ref‖.
// Conv cases cover every route: 1×1 GEMM, direct (depthwise, Co ≤ 4 per
// group), im2col into packed panels (f32) and through linear() (bf16 weights).
// fp32 tolerance 1e-5: conv sums K ≤ 1440 fp32 products (error ~sqrt(K)·2^-24
// in practice), norms and resizes round a few operations per element.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <vector>

#include "harness.h"
#include "tessera/conv.h"
#include "tessera/cpu.h"
#include "tessera/dtype_convert.h"
#include "tessera/norm.h"
#include "tessera/resize.h"
#include "tessera/sampling.h"
#include "tessera/threadpool.h"
#include "tessera/vq.h"

using namespace tessera;

namespace {

constexpr double kTol = 1e-5;

// CHECK_REL whose failure message can be extended with <<.
#define CHECK_REL_AT(out, ref, n, tol) \
  CHECK(::th::rel_error((out), (ref), (n)) <= (tol)) << "rel error " << ::th::rel_error((out), (ref), (n)) << " > " << (tol)

template <class Fn>
void for_each_isa(Fn fn) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    set_isa_override(isa);
    if (active_isa() == isa) fn();
  }
  clear_isa_override();
}

std::vector<float> rand_vec(th::Rng& rng, size_t n, float lo = -1.f, float hi = 1.f) {
  std::vector<float> v(n);
  rng.fill(v.data(), n, lo, hi);
  return v;
}

std::vector<double> widen(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// ---- conv2d ---------------------------------------------------------------

struct ConvCase {
  int64_t N, Ci, H, W, Co, kh, kw;
  int sh = 1, sw = 1, pt = 0, pb = 0, pl = 0, pr = 0, dil = 1, groups = 1;
  bool bias = true, accumulate = false, packed = false, bf16 = false;
  int64_t x_pad = 0;  // extra elements per input row (a strided view)
  int up = 1;         // 2: the conv reads x through a nearest 2× upsample (H, W are x's)
};

std::string describe(const ConvCase& c) {
  std::ostringstream os;
  os << isa_name(active_isa()) << " N" << c.N << " Ci" << c.Ci << " " << c.H << "x" << c.W << " Co" << c.Co << " k"
     << c.kh << "x" << c.kw << " s" << c.sh << "," << c.sw << " pad" << c.pt << c.pb << c.pl << c.pr << " d" << c.dil
     << " g" << c.groups << " bias" << c.bias << " acc" << c.accumulate << " packed" << c.packed << " bf16" << c.bf16
     << " up" << c.up;
  return os.str();
}

// out[n,o,y,x] (+)= bias[o] + Σ w[o,c,i,j]·x[n, g·Cig+c, y·sh−pt+i·d, x·sw−pl+j·d]
void ref_conv(const ConvCase& c, const double* x, const double* w, const double* b, int64_t Ho, int64_t Wo,
              double* out) {
  const int64_t Cig = c.Ci / c.groups, Cog = c.Co / c.groups;
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.Co; ++o)
      for (int64_t y = 0; y < Ho; ++y)
        for (int64_t xx = 0; xx < Wo; ++xx) {
          double s = b ? b[o] : 0.0;
          for (int64_t ci = 0; ci < Cig; ++ci)
            for (int64_t i = 0; i < c.kh; ++i)
              for (int64_t j = 0; j < c.kw; ++j) {
                const int64_t iy = y * c.sh - c.pt + i * c.dil, ix = xx * c.sw - c.pl + j * c.dil;
                if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                const int64_t cin = (o / Cog) * Cig + ci;
                s += w[((o * Cig + ci) * c.kh + i) * c.kw + j] * x[((n * c.Ci + cin) * c.H + iy) * c.W + ix];
              }
          out[((n * c.Co + o) * Ho + y) * Wo + xx] += s;
        }
}

double run_conv(const ConvCase& c, uint64_t salt) {
  th::Rng rng(salt);
  const int64_t Cig = c.Ci / c.groups, K = Cig * c.kh * c.kw;
  const int64_t Hu = c.H * c.up, Wu = c.W * c.up;  // the conv's input size
  const int64_t Ho = (Hu + c.pt + c.pb - c.dil * (c.kh - 1) - 1) / c.sh + 1;
  const int64_t Wo = (Wu + c.pl + c.pr - c.dil * (c.kw - 1) - 1) / c.sw + 1;
  const int64_t ld = c.W + c.x_pad;
  std::vector<float> xs = rand_vec(rng, c.N * c.Ci * c.H * ld), w = rand_vec(rng, c.Co * K), b = rand_vec(rng, c.Co);
  std::vector<float> out = rand_vec(rng, c.N * c.Co * Ho * Wo);
  std::vector<uint16_t> w16(w.size());
  if (c.bf16)
    for (size_t i = 0; i < w.size(); ++i) w16[i] = f32_to_bf16(w[i]), w[i] = bf16_to_f32(w16[i]);
  // The reference convolves the upsampled map itself: xd[.., y, x] = x[.., y / up, x / up].
  std::vector<double> xd(c.N * c.Ci * Hu * Wu);
  for (int64_t r = 0; r < c.N * c.Ci * Hu; ++r)
    for (int64_t j = 0; j < Wu; ++j) xd[r * Wu + j] = xs[((r / Hu) * c.H + (r % Hu) / c.up) * ld + j / c.up];
  std::vector<double> ref(out.size(), 0.0);
  if (c.accumulate) ref = widen(out);
  ConvCase cu = c;
  cu.H = Hu, cu.W = Wu;
  ref_conv(cu, xd.data(), widen(w).data(), c.bias ? widen(b).data() : nullptr, Ho, Wo, ref.data());

  Conv2dArgs a;
  a.x = make_view(xs.data(), DType::kF32, {c.N, c.Ci, c.H, c.W});
  a.x.strides[2] = ld, a.x.strides[1] = c.H * ld, a.x.strides[0] = c.Ci * c.H * ld;
  a.weight = c.bf16 ? make_view(w16.data(), DType::kBF16, {c.Co, Cig, c.kh, c.kw})
                    : make_view(w.data(), DType::kF32, {c.Co, Cig, c.kh, c.kw});
  if (c.bias) a.bias = make_view(b.data(), DType::kF32, {c.Co});
  a.out = make_view(out.data(), DType::kF32, {c.N, c.Co, Ho, Wo});
  a.stride_h = c.sh, a.stride_w = c.sw, a.pad_top = c.pt, a.pad_bottom = c.pb, a.pad_left = c.pl, a.pad_right = c.pr;
  a.dilation_h = a.dilation_w = c.dil;
  a.groups = c.groups;
  a.accumulate = c.accumulate;
  a.upsample = c.up;
  PackedWeight* pw = nullptr;
  if (c.packed) pw = pack_weight(make_view(a.weight.data, a.weight.dtype, {c.Co, K}), c.bf16 ? DType::kBF16 : DType::kF32);
  a.packed = pw;
  conv2d(a);
  free_packed_weight(pw);
  return th::rel_error(out.data(), ref.data(), out.size());
}

}  // namespace

TEST(conv2d_matches_reference_on_every_isa) {
  std::vector<ConvCase> cases = {
      {2, 5, 7, 9, 6, 1, 1},                                      // 1×1: one GEMM per image
      {2, 3, 11, 13, 17, 3, 3, 1, 1, 1, 1, 1, 1},                 // 3×3 pad 1 (conv_in)
      {1, 8, 16, 15, 9, 3, 3, 2, 2, 0, 1, 0, 1},                  // VAR/LlamaGen downsample: pad bottom/right 1, stride 2
      {2, 33, 9, 10, 40, 3, 3, 1, 1, 1, 1, 1, 1},                 // K = 297 > one GEMM K block
      {2, 160, 32, 32, 8, 3, 3, 1, 1, 1, 1, 1, 1},                // K = 1440: several pixel tiles
      {1, 6, 9, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2},              // groups = 2
      {2, 5, 8, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 5},              // depthwise
      {1, 4, 7, 6, 8, 3, 3, 2, 1, 1, 2, 0, 1, 1, 4},              // depthwise × 2, stride (2,1)
      {1, 3, 12, 11, 5, 3, 3, 1, 1, 2, 2, 2, 2, 2},               // dilation 2
      {2, 7, 9, 9, 3, 1, 1, 2, 2},                                // 1×1 stride 2 (im2col route)
      {1, 4, 13, 13, 6, 5, 5, 1, 1, 2, 2, 2, 2},                  // 5×5 pad 2
      {1, 3, 1, 1, 4, 3, 3, 1, 1, 1, 1, 1, 1},                    // 1×1 image, all padding
      {2, 16, 9, 10, 3, 3, 3, 1, 1, 1, 1, 1, 1},                  // conv_out to RGB: the direct route
      {1, 5, 12, 11, 2, 3, 3, 2, 2, 0, 1, 0, 1},                  // few channels, downsample padding
      {1, 7, 5, 150, 3, 3, 3, 1, 1, 1, 1, 1, 1},                  // ≤ 4 outputs: 64-pixel runs, the last partial
      {2, 5, 9, 70, 4, 3, 3, 2, 1, 1, 1, 1, 1},                   // ≤ 4 outputs, stride 2 along y only
      {1, 3, 8, 40, 2, 5, 5, 1, 1, 2, 2, 2, 2},                   // ≤ 4 outputs, 5×5 pad 2
  };
  ConvCase strided = cases[1];
  strided.x_pad = 3;
  cases.push_back(strided);
  ConvCase strided1x1 = cases[0];
  strided1x1.x_pad = 2;  // not plain planes: falls back to im2col
  cases.push_back(strided1x1);
  ConvCase stridedFew = cases[14];
  stridedFew.x_pad = 5;  // ≤ 4 outputs from strided input rows
  cases.push_back(stridedFew);
  for (size_t i = 0, n = cases.size(); i < n; ++i) {
    ConvCase c = cases[i];
    c.accumulate = true;
    c.bias = i % 2 == 0;
    cases.push_back(c);
  }
  ConvCase packed = cases[3];
  packed.packed = true;
  cases.push_back(packed);
  uint64_t salt = 100;
  for_each_isa([&] {
    for (const ConvCase& c : cases) {
      const double e = run_conv(c, ++salt);
      CHECK(e <= kTol) << describe(c) << " rel error " << e;
    }
  });
  // bf16 weights round x to bf16 in the GEMM: relative error ~2^-9 per product.
  for (bool pk : {false, true}) {
    ConvCase c = cases[3];
    c.bf16 = true;
    c.packed = pk;
    const double e = run_conv(c, ++salt);
    CHECK(e <= 1e-2) << describe(c) << " rel error " << e;
  }
}

// The channel-major route (weights as A panels, patch panels built on demand,
// tiles stored straight into NCHW with a per-row bias), forced by
// TESSERA_CONV_ROUTE=channel_major at sizes the automatic choice would send
// elsewhere, and in its automatic range (Ho·Wo >= Co) without the override.
TEST(conv2d_channel_major_route_matches_reference_on_every_isa) {
  std::vector<ConvCase> forced = {
      {2, 3, 11, 13, 17, 3, 3, 1, 1, 1, 1, 1, 1},     // panels of 32 pixels span output rows
      {1, 33, 9, 10, 40, 3, 3, 1, 1, 1, 1, 1, 1},     // K = 297: two K blocks
      {2, 5, 7, 9, 6, 1, 1},                          // 1×1
      {1, 4, 13, 13, 6, 5, 5, 1, 1, 2, 2, 2, 2},      // 5×5 pad 2
      {1, 3, 12, 11, 5, 3, 3, 1, 1, 2, 2, 2, 2, 2},   // dilation 2
      {1, 6, 15, 12, 7, 3, 3, 2, 1, 1, 1, 1, 1},      // stride 2 along y only
      {1, 3, 1, 1, 4, 3, 3, 1, 1, 1, 1, 1, 1},        // 1×1 image, all padding
      {1, 7, 6, 5, 350, 3, 3, 1, 1, 1, 1, 1, 1},      // Co > one unit of rows (336)
      {1, 5, 12, 11, 9, 3, 3, 1, 1, 0, 1, 0, 1},      // pad bottom/right only
  };
  std::vector<ConvCase> automatic = {
      {1, 40, 40, 37, 45, 3, 3, 1, 1, 1, 1, 1, 1},    // Ho·Wo >= 4·Co: the route's own range
      {2, 24, 33, 32, 20, 1, 1},                      // 1×1 over contiguous planes
  };
  for (auto* list : {&forced, &automatic}) {
    const size_t n = list->size();
    for (size_t i = 0; i < n; ++i) {
      ConvCase c = (*list)[i];
      c.accumulate = true;
      c.bias = i % 2 == 1;
      c.packed = i % 3 == 0;
      c.x_pad = i % 2 == 0 ? 3 : 0;  // strided input rows
      list->push_back(c);
    }
  }
  uint64_t salt = 900;
  for_each_isa([&] {
    setenv("TESSERA_CONV_ROUTE", "channel_major", 1);
    for (const ConvCase& c : forced) {
      const double e = run_conv(c, ++salt);
      CHECK(e <= kTol) << "channel_major " << describe(c) << " rel error " << e;
    }
    unsetenv("TESSERA_CONV_ROUTE");
    for (const ConvCase& c : automatic) {
      const double e = run_conv(c, ++salt);
      CHECK(e <= kTol) << "auto " << describe(c) << " rel error " << e;
    }
  });
  unsetenv("TESSERA_CONV_ROUTE");
}

// The Winograd F(4×4, 3×3) route (3×3, stride 1, padding 1), forced by
// TESSERA_CONV_ROUTE=winograd at odd sizes (partial tiles at the right and
// bottom edges, bands of several tile rows or parts of one, 32-tile panels
// across rows), in its automatic range, and with the nearest 2× upsample
// read by the conv (upsample = 2, which always takes this route).
// Tolerance: the transforms' coefficients reach 5 (B), 8 (A) and 1/24 (G),
// and each transformed value sums up to 6·6 terms, so a product carries more
// roundings of larger intermediates than the direct sum: measured
// ‖out − ref‖/‖ref‖ up to 4.6e-6 over these cases (eight runs of random
// inputs), against 1e-5 for the direct routes; 2e-5 leaves a 4× margin,
// and a wrong coefficient or tile offset gives errors of order 1.
constexpr double kWinogradTol = 2e-5;

TEST(conv2d_winograd_route_matches_reference_on_every_isa) {
  std::vector<ConvCase> forced = {
      {2, 3, 11, 13, 17, 3, 3, 1, 1, 1, 1, 1, 1},     // odd H and W
      {1, 33, 9, 10, 40, 3, 3, 1, 1, 1, 1, 1, 1},     // 33 input channels
      {1, 7, 1, 1, 5, 3, 3, 1, 1, 1, 1, 1, 1},        // 1×1 image
      {1, 5, 3, 3, 9, 3, 3, 1, 1, 1, 1, 1, 1},        // one partial tile
      {2, 6, 7, 7, 11, 3, 3, 1, 1, 1, 1, 1, 1},       // 2×2 tiles, the last ones partial
      {1, 5, 6, 70, 15, 3, 3, 1, 1, 1, 1, 1, 1},      // tile rows longer than one panel
      {1, 3, 9, 261, 7, 3, 3, 1, 1, 1, 1, 1, 1},      // 66 tiles per row: bands of part of a row
      {1, 300, 8, 8, 20, 3, 3, 1, 1, 1, 1, 1, 1},     // Ci > 256
      {1, 6, 7, 5, 350, 3, 3, 1, 1, 1, 1, 1, 1},      // Co spanning many A panels
      {1, 17, 33, 33, 19, 3, 3, 1, 1, 1, 1, 1, 1},    // 33×33: 9×9 tiles
      {1, 640, 5, 7, 200, 3, 3, 1, 1, 1, 1, 1, 1},    // 36·Co·Ci floats > 16 MiB: two passes over Co (160 + 40)
  };
  std::vector<ConvCase> automatic = {
      {1, 24, 40, 37, 20, 3, 3, 1, 1, 1, 1, 1, 1},    // Ho·Wo >= 2·Co
      {1, 300, 33, 40, 120, 3, 3, 1, 1, 1, 1, 1, 1},  // Ci + Co > 400: 32-tile bands
  };
  std::vector<ConvCase> upsampled;
  for (int64_t hw : {1, 3, 7, 33}) upsampled.push_back({1, 5, hw, hw, 7, 3, 3, 1, 1, 1, 1, 1, 1});
  upsampled.push_back({2, 19, 7, 5, 21, 3, 3, 1, 1, 1, 1, 1, 1});   // batch 2, H != W
  upsampled.push_back({1, 3, 5, 131, 6, 3, 3, 1, 1, 1, 1, 1, 1});   // 262 wide: bands of part of a row
  upsampled.push_back({1, 600, 3, 3, 180, 3, 3, 1, 1, 1, 1, 1, 1});  // two passes over Co (160 + 20)
  for (ConvCase& c : upsampled) c.up = 2;
  for (auto* list : {&forced, &automatic, &upsampled}) {
    const size_t n = list->size();
    for (size_t i = 0; i < n; ++i) {
      ConvCase c = (*list)[i];
      c.accumulate = true;
      c.bias = i % 2 == 1;
      c.packed = i % 3 == 0;
      c.x_pad = i % 2 == 0 ? 3 : 0;
      list->push_back(c);
    }
  }
  uint64_t salt = 1900;
  double worst = 0, best = 1;
  for_each_isa([&] {
    setenv("TESSERA_CONV_ROUTE", "winograd", 1);
    for (const ConvCase& c : forced) {
      const double e = run_conv(c, ++salt);
      worst = std::max(worst, e), best = std::min(best, e);
      CHECK(e <= kWinogradTol) << "winograd " << describe(c) << " rel error " << e;
    }
    unsetenv("TESSERA_CONV_ROUTE");
    for (auto* list : {&automatic, &upsampled})
      for (const ConvCase& c : *list) {
        const double e = run_conv(c, ++salt);
        worst = std::max(worst, e), best = std::min(best, e);
        CHECK(e <= kWinogradTol) << "auto " << describe(c) << " rel error " << e;
      }
  });
  unsetenv("TESSERA_CONV_ROUTE");
  std::printf("  winograd: rel error %.1e .. %.1e\n", best, worst);
}

TEST(conv2d_validation_codes) {
  std::vector<float> x(2 * 4 * 5 * 5, 1.f), w(6 * 4 * 3 * 3, 1.f), out(2 * 6 * 5 * 5), b(6);
  auto base = [&] {
    Conv2dArgs a;
    a.x = make_view(x.data(), DType::kF32, {2, 4, 5, 5});
    a.weight = make_view(w.data(), DType::kF32, {6, 4, 3, 3});
    a.out = make_view(out.data(), DType::kF32, {2, 6, 5, 5});
    a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = 1;
    return a;
  };
  conv2d(base());
  Conv2dArgs a = base();
  a.out.shape[2] = 4;
  CHECK_THROWS_CODE(conv2d(a), kShape);
  a = base();
  a.groups = 3;
  CHECK_THROWS_CODE(conv2d(a), kShape);
  a = base();
  a.stride_h = 0;
  CHECK_THROWS_CODE(conv2d(a), kInvalidArgument);
  a = base();
  a.bias = make_view(b.data(), DType::kF32, {5});
  CHECK_THROWS_CODE(conv2d(a), kShape);
  a = base();
  a.x.dtype = DType::kI32;
  CHECK_THROWS_CODE(conv2d(a), kDtype);
  a = base();
  a.out = make_view(x.data(), DType::kF32, {2, 6, 5, 5});
  CHECK_THROWS_CODE(conv2d(a), kAlias);
  a = base();
  a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = 0;
  a.x.shape[2] = a.x.shape[3] = 2;
  CHECK_THROWS_CODE(conv2d(a), kShape);  // kernel larger than the input
  // upsample = 2: out is twice x's size; only the Winograd route's convs.
  std::vector<float> out2(2 * 6 * 10 * 10);
  a = base();
  a.upsample = 2;
  a.out = make_view(out2.data(), DType::kF32, {2, 6, 10, 10});
  conv2d(a);
  a.upsample = 3;
  CHECK_THROWS_CODE(conv2d(a), kInvalidArgument);
  a.upsample = 2;
  a.out.shape[2] = a.out.shape[3] = 5;  // the size without the upsample
  CHECK_THROWS_CODE(conv2d(a), kShape);
  a = base();
  a.upsample = 2;
  a.out = make_view(out2.data(), DType::kF32, {2, 6, 8, 8});
  a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = 0;  // not padding 1
  CHECK_THROWS_CODE(conv2d(a), kInvalidArgument);
  std::vector<float> wide(2 * 6 * 10 * 20);
  a = base();
  a.upsample = 2;
  a.out = make_view(wide.data(), DType::kF32, {2, 6, 10, 10});
  a.out.strides[0] = 1200, a.out.strides[1] = 200, a.out.strides[2] = 20, a.out.strides[3] = 2;  // gaps along W
  CHECK_THROWS_CODE(conv2d(a), kInvalidArgument);
}

// ---- norms ----------------------------------------------------------------

namespace {

// Normalises `n` values at x[i·stride] in float64; returns (mean, 1/sqrt(var+eps)).
std::pair<double, double> ref_stats(const double* x, int64_t n, double eps, bool rms = false) {
  double m = 0, v = 0;
  for (int64_t i = 0; i < n; ++i) m += x[i];
  m /= n;
  for (int64_t i = 0; i < n; ++i) v += rms ? x[i] * x[i] : (x[i] - m) * (x[i] - m);
  v /= n;
  return {rms ? 0.0 : m, 1.0 / std::sqrt(v + eps)};
}

}  // namespace

TEST(group_norm_matches_reference) {
  struct Case {
    std::vector<int64_t> shape;
    int groups;
    bool affine, silu, in_place;
    float offset;  // a large common offset tests the variance numerics
  };
  const std::vector<Case> cases = {
      {{2, 64, 5, 7}, 32, true, false, false, 0.f}, {{2, 64, 5, 7}, 32, true, true, false, 0.f},
      {{1, 6, 33}, 3, false, true, true, 0.f},      {{3, 8, 1, 1}, 8, true, false, false, 0.f},
      {{1, 32, 9, 9}, 1, true, true, false, 100.f}, {{2, 160, 16, 16}, 32, true, true, false, 0.f},
  };
  uint64_t salt = 300;
  for (const Case& c : cases) {
    th::Rng rng(++salt);
    int64_t numel = 1;
    for (int64_t s : c.shape) numel *= s;
    const int64_t N = c.shape[0], C = c.shape[1], S = numel / (N * C), Cg = C / c.groups;
    std::vector<float> x = rand_vec(rng, numel, c.offset - 1.f, c.offset + 1.f), w = rand_vec(rng, C),
                       b = rand_vec(rng, C), out(numel);
    std::vector<double> xd = widen(x), ref(numel);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < c.groups; ++g) {
        const double* xg = xd.data() + (n * C + g * Cg) * S;
        const auto [m, r] = ref_stats(xg, Cg * S, 1e-6);
        for (int64_t i = 0; i < Cg * S; ++i) {
          const int64_t ch = g * Cg + i / S;
          double y = (xg[i] - m) * r;
          if (c.affine) y = y * w[ch] + b[ch];
          if (c.silu) y = y / (1 + std::exp(-y));
          ref[(n * C + g * Cg) * S + i] = y;
        }
      }
    GroupNormArgs a;
    a.x = make_view(x.data(), DType::kF32, {N, C, S});
    a.out = c.in_place ? a.x : make_view(out.data(), DType::kF32, {N, C, S});
    if (c.affine) a.weight = make_view(w.data(), DType::kF32, {C}), a.bias = make_view(b.data(), DType::kF32, {C});
    a.num_groups = c.groups;
    a.silu = c.silu;
    group_norm(a);
    CHECK_REL_AT(c.in_place ? x.data() : out.data(), ref.data(), numel, kTol) << " groups " << c.groups << " C " << C;
  }
  std::vector<float> x(2 * 6 * 4, 1.f);
  GroupNormArgs a;
  a.x = a.out = make_view(x.data(), DType::kF32, {2, 6, 4});
  a.num_groups = 4;
  CHECK_THROWS_CODE(group_norm(a), kInvalidArgument);
  a.num_groups = 2;
  a.out = make_view(x.data() + 1, DType::kF32, {2, 6, 4});
  CHECK_THROWS_CODE(group_norm(a), kAlias);
}

TEST(layer_norm_with_adaln_matches_reference) {
  // VAR: x [B, L, C], scale/shift are column chunks of ada_lin's [B, 6C] output.
  for (const bool affine : {false, true})
    for (const bool in_place : {false, true}) {
      th::Rng rng(400 + affine * 2 + in_place);
      const int64_t B = 3, L = 5, C = 67;
      std::vector<float> x = rand_vec(rng, B * L * C, -2.f, 3.f), w = rand_vec(rng, C), b = rand_vec(rng, C);
      std::vector<float> ada = rand_vec(rng, B * 6 * C), out(B * L * C);
      std::vector<double> ref(B * L * C);
      for (int64_t r = 0; r < B * L; ++r) {
        const std::vector<double> xr(x.begin() + r * C, x.begin() + (r + 1) * C);
        const auto [m, rs] = ref_stats(xr.data(), C, 1e-6);
        const int64_t bb = r / L;
        for (int64_t c = 0; c < C; ++c) {
          double y = (xr[c] - m) * rs;
          if (affine) y = y * w[c] + b[c];
          ref[r * C + c] = y * (1 + static_cast<double>(ada[bb * 6 * C + 2 * C + c])) + ada[bb * 6 * C + 4 * C + c];
        }
      }
      LayerNormArgs a;
      a.x = make_view(x.data(), DType::kF32, {B, L, C});
      a.out = in_place ? a.x : make_view(out.data(), DType::kF32, {B, L, C});
      if (affine) a.weight = make_view(w.data(), DType::kF32, {C}), a.bias = make_view(b.data(), DType::kF32, {C});
      a.scale = make_view(ada.data() + 2 * C, DType::kF32, {B, C});
      a.scale.strides[0] = 6 * C;
      a.shift = make_view(ada.data() + 4 * C, DType::kF32, {B, C});
      a.shift.strides[0] = 6 * C;
      layer_norm(a);
      CHECK_REL_AT(in_place ? x.data() : out.data(), ref.data(), ref.size(), kTol) << " affine " << affine;
    }
  std::vector<float> x(12), s(8);
  LayerNormArgs a;
  a.x = a.out = make_view(x.data(), DType::kF32, {3, 4});
  a.scale = make_view(s.data(), DType::kF32, {2, 4});
  CHECK_THROWS_CODE(layer_norm(a), kShape);
}

TEST(rms_norm_matches_reference) {
  th::Rng rng(500);
  const int64_t R = 7, C = 129;
  // rows strided by C + 3: a view into a wider buffer
  std::vector<float> x = rand_vec(rng, R * (C + 3)), w = rand_vec(rng, C), out(R * C);
  std::vector<double> ref(R * C);
  for (int64_t r = 0; r < R; ++r) {
    const std::vector<double> xr(x.begin() + r * (C + 3), x.begin() + r * (C + 3) + C);
    const double rs = ref_stats(xr.data(), C, 1e-5, true).second;
    for (int64_t c = 0; c < C; ++c) ref[r * C + c] = xr[c] * rs * w[c];
  }
  RmsNormArgs a;
  a.x = make_view(x.data(), DType::kF32, {R, C});
  a.x.strides[0] = C + 3;
  a.weight = make_view(w.data(), DType::kF32, {C});
  a.out = make_view(out.data(), DType::kF32, {R, C});
  rms_norm(a);
  CHECK_REL_AT(out.data(), ref.data(), ref.size(), kTol);
}

// ---- resize ---------------------------------------------------------------

namespace {

double cubic_w(double d) {  // Keys kernel, A = −0.75, at distance |d|
  const double A = -0.75, t = std::fabs(d);
  if (t <= 1) return ((A + 2) * t - (A + 3)) * t * t + 1;
  if (t < 2) return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
  return 0;
}

// Float64 weights of output o along one axis, as (index, weight) pairs.
std::vector<std::pair<int64_t, double>> ref_taps(ResizeMode m, int64_t in, int64_t out, int64_t o) {
  const double scale = static_cast<double>(in) / out;
  std::vector<std::pair<int64_t, double>> t;
  auto clampi = [&](int64_t i) { return std::min(std::max<int64_t>(i, 0), in - 1); };
  if (m == ResizeMode::kNearest) {
    // PyTorch computes this index in float32 (floorf(o · (float)(in/out))); an
    // index is not continuous in its input, so the reference does the same.
    const float fs = static_cast<float>(in) / static_cast<float>(out);
    t.push_back({std::min<int64_t>(static_cast<int64_t>(std::floor(static_cast<float>(o) * fs)), in - 1), 1.0});
  } else if (m == ResizeMode::kArea) {
    const int64_t lo = (o * in) / out, hi = ((o + 1) * in + out - 1) / out;
    for (int64_t i = lo; i < hi; ++i) t.push_back({i, 1.0 / (hi - lo)});
  } else if (m == ResizeMode::kBilinear) {
    const double src = std::max((o + 0.5) * scale - 0.5, 0.0);
    const int64_t i0 = static_cast<int64_t>(std::floor(src));
    t.push_back({clampi(i0), 1 - (src - i0)});
    t.push_back({clampi(i0 + 1), src - i0});
  } else {
    const double src = (o + 0.5) * scale - 0.5;
    const int64_t i0 = static_cast<int64_t>(std::floor(src));
    for (int64_t j = -1; j <= 2; ++j) t.push_back({clampi(i0 + j), cubic_w(src - (i0 + j))});
  }
  return t;
}

}  // namespace

TEST(resize_matches_reference) {
  const std::pair<int64_t, int64_t> sizes[] = {{16, 13}, {16, 10}, {16, 6}, {1, 16}, {2, 16}, {13, 16},
                                               {7, 3},   {3, 7},   {6, 16}, {5, 5},  {8, 16}, {16, 8}};
  uint64_t salt = 600;
  for (ResizeMode m : {ResizeMode::kNearest, ResizeMode::kArea, ResizeMode::kBicubic, ResizeMode::kBilinear})
    for (auto [hin, hout] : sizes) {
      const int64_t win = hout, wout = hin;  // the other direction along W
      th::Rng rng(++salt);
      const int64_t N = 2, C = 3;
      std::vector<float> x = rand_vec(rng, N * C * hin * win);
      std::vector<float> out(N * C * hout * wout * 2);  // a strided output: every other element
      std::vector<double> ref(N * C * hout * wout);
      std::vector<float> got(ref.size());
      for (int64_t p = 0; p < N * C; ++p)
        for (int64_t y = 0; y < hout; ++y)
          for (int64_t xx = 0; xx < wout; ++xx) {
            double s = 0;
            for (auto [iy, wy] : ref_taps(m, hin, hout, y))
              for (auto [ix, wx] : ref_taps(m, win, wout, xx)) s += wy * wx * x[(p * hin + iy) * win + ix];
            ref[(p * hout + y) * wout + xx] = s;
          }
      ResizeArgs a;
      a.x = make_view(x.data(), DType::kF32, {N, C, hin, win});
      a.out = make_view(out.data(), DType::kF32, {N, C, hout, wout});
      for (int d = 0; d < 4; ++d) a.out.strides[d] *= 2;
      a.mode = m;
      resize(a);
      for (size_t i = 0; i < got.size(); ++i) got[i] = out[2 * i];
      CHECK_REL_AT(got.data(), ref.data(), got.size(), kTol)
          << " mode " << static_cast<int>(m) << " " << hin << "x" << win << " -> " << hout << "x" << wout;
    }
}

// ---- vq_nearest, embedding -------------------------------------------------

namespace {

// argmin_v Σ (z − e_v)² in float64, first index on ties.
int32_t ref_nearest(const float* z, const float* E, int64_t V, int64_t C, double* best_out = nullptr) {
  double best = INFINITY;
  int32_t arg = 0;
  for (int64_t v = 0; v < V; ++v) {
    double d = 0;
    for (int64_t k = 0; k < C; ++k) d += (static_cast<double>(z[k]) - E[v * C + k]) * (static_cast<double>(z[k]) - E[v * C + k]);
    if (d < best) best = d, arg = static_cast<int32_t>(v);
  }
  if (best_out) *best_out = best;
  return arg;
}

std::vector<float> l2_rows(std::vector<float> v, int64_t C) {
  for (size_t r = 0; r < v.size() / C; ++r) {
    double n = 0;
    for (int64_t k = 0; k < C; ++k) n += static_cast<double>(v[r * C + k]) * v[r * C + k];
    const double inv = 1.0 / std::max(std::sqrt(n), 1e-12);
    for (int64_t k = 0; k < C; ++k) v[r * C + k] = static_cast<float>(v[r * C + k] * inv);
  }
  return v;
}

}  // namespace

TEST(vq_nearest_is_the_float64_argmin_with_first_index_ties) {
  for_each_isa([] {
    th::Rng rng(700);
    const int64_t B = 3, L = 37, C = 32, V = 301;
    std::vector<float> E = rand_vec(rng, V * C);
    // duplicated rows: the first copy must win
    for (int64_t k = 0; k < C; ++k) E[200 * C + k] = E[17 * C + k], E[250 * C + k] = E[17 * C + k];
    // z in channels-first layout [B, C, L], passed as a [B, L, C] view
    std::vector<float> zcf = rand_vec(rng, B * C * L);
    for (int64_t k = 0; k < C; ++k) zcf[(1 * C + k) * L + 4] = E[250 * C + k];  // token (1, 4) sits on row 17's copies
    std::vector<float> z(B * L * C);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t k = 0; k < C; ++k) z[(b * L + l) * C + k] = zcf[(b * C + k) * L + l];
    std::vector<int32_t> idx(B * L, -1);
    VqNearestArgs a;
    a.z = make_view(zcf.data(), DType::kF32, {B, L, C});
    a.z.strides[0] = C * L, a.z.strides[1] = 1, a.z.strides[2] = L;
    a.codebook = make_view(E.data(), DType::kF32, {V, C});
    a.indices = make_view(idx.data(), DType::kI32, {B, L});
    vq_nearest(a);
    for (int64_t r = 0; r < B * L; ++r)
      CHECK(idx[r] == ref_nearest(&z[r * C], E.data(), V, C)) << isa_name(active_isa()) << " row " << r;
    CHECK(idx[1 * L + 4] == 17) << "an exact match of duplicated rows 17/200/250 must give 17, got " << idx[1 * L + 4];

    // L2 mode (LlamaGen, C = 8): same argmin over normalised rows; where the
    // kernel's float32 normalisation differs from float64's, only a genuine
    // near tie (distance gap < 1e-6) may pick another row.
    const int64_t C8 = 8, V8 = 1000, N8 = 200;
    std::vector<float> E8 = rand_vec(rng, V8 * C8), z8 = rand_vec(rng, N8 * C8);
    std::vector<int32_t> i8(N8);
    VqNearestArgs b;
    b.z = make_view(z8.data(), DType::kF32, {N8, C8});
    b.codebook = make_view(E8.data(), DType::kF32, {V8, C8});
    b.indices = make_view(i8.data(), DType::kI32, {N8});
    b.l2_normalize = true;
    vq_nearest(b);
    const std::vector<float> En = l2_rows(E8, C8), zn = l2_rows(z8, C8);
    for (int64_t r = 0; r < N8; ++r) {
      double dbest = 0;
      const int32_t want = ref_nearest(&zn[r * C8], En.data(), V8, C8, &dbest);
      if (i8[r] == want) continue;
      double dgot = 0;
      ref_nearest(&zn[r * C8], &En[i8[r] * C8], 1, C8, &dgot);
      CHECK(dgot - dbest < 1e-6) << "row " << r << " got " << i8[r] << " want " << want;
    }
  });
}

TEST(embedding_gathers_rows_and_refuses_bad_indices) {
  th::Rng rng(800);
  const int64_t V = 50, C = 8, B = 2, L = 9;
  std::vector<float> table = rand_vec(rng, V * C);
  std::vector<int32_t> idx(B * L);
  for (auto& i : idx) i = static_cast<int32_t>(rng.randint(0, V - 1));
  for (bool l2 : {false, true}) {
    // out in [B, C, L] (channels first, like VAR's h = E[idx] → [B, 32, pn, pn]) as a [B, L, C] view
    std::vector<float> out(B * C * L, NAN);
    EmbeddingArgs a;
    a.table = make_view(table.data(), DType::kF32, {V, C});
    a.indices = make_view(idx.data(), DType::kI32, {B, L});
    a.out = make_view(out.data(), DType::kF32, {B, L, C});
    a.out.strides[0] = C * L, a.out.strides[1] = 1, a.out.strides[2] = L;
    a.l2_normalize = l2;
    embedding(a);
    const std::vector<float> t = l2 ? l2_rows(table, C) : table;
    std::vector<double> ref(out.size());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t k = 0; k < C; ++k) ref[(b * C + k) * L + l] = t[idx[b * L + l] * C + k];
    CHECK_REL_AT(out.data(), ref.data(), out.size(), 1e-6) << " l2 " << l2;
  }
  std::vector<float> out(B * L * C, 7.f);
  idx[5] = static_cast<int32_t>(V);
  EmbeddingArgs a;
  a.table = make_view(table.data(), DType::kF32, {V, C});
  a.indices = make_view(idx.data(), DType::kI32, {B * L});
  a.out = make_view(out.data(), DType::kF32, {B * L, C});
  CHECK_THROWS_CODE(embedding(a), kInvalidArgument);
  CHECK(out[0] == 7.f) << "nothing may be written when an index is bad";
}

// ---- sampling -----------------------------------------------------------------

namespace {

// Float64 reference of steps 0-4 in sampling.h: the kept probabilities.
std::vector<double> ref_probs(const float* l, const float* u, float s, int64_t V, double T, int k, double p) {
  std::vector<double> x(V);
  for (int64_t i = 0; i < V; ++i) x[i] = static_cast<double>(u ? u[i] + s * (l[i] - u[i]) : l[i]) / std::max(T, 1e-5);
  std::vector<bool> keep(V, true);
  if (k > 0 && k < V) {
    std::vector<double> sorted = x;
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    for (int64_t i = 0; i < V; ++i) keep[i] = x[i] >= sorted[k - 1];
  }
  const double mx = *std::max_element(x.begin(), x.end());
  std::vector<double> e(V);
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += e[i] = keep[i] ? std::exp(x[i] - mx) : 0;
  if (p > 0 && p < 1) {
    std::vector<int64_t> order;
    for (int64_t i = 0; i < V; ++i)
      if (keep[i]) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x[a] > x[b]; });
    double cum = 0;
    for (size_t r = 0; r < order.size(); ++r) {
      if (r > 0 && cum / sum > p) e[order[r]] = 0;
      cum += std::exp(x[order[r]] - mx);
    }
    sum = 0;
    for (double v : e) sum += v;
  }
  for (double& v : e) v /= sum;
  return e;
}

}  // namespace

TEST(philox_matches_the_random123_known_answers) {
  // Random123 kat_vectors: philox4x32_10 with counter and key all zero / all ones.
  const Philox4 a = philox4x32_10(0, 0, 0);
  CHECK(a.v[0] == 0x6627e8d5u && a.v[1] == 0xe169c58du && a.v[2] == 0xbc57ac4cu && a.v[3] == 0x9b00dbd8u);
  const Philox4 b = philox4x32_10(~0ull, ~0ull, ~0ull);
  CHECK(b.v[0] == 0x408f276du && b.v[1] == 0x41c83b0eu && b.v[2] == 0xa20bc7c6u && b.v[3] == 0x6d5451fdu);
}

TEST(sample_probs_match_reference_and_tokens_are_deterministic) {
  th::Rng rng(900);
  const int64_t B = 6, V = 1000;
  std::vector<float> lc = rand_vec(rng, B * V, -4.f, 4.f), lu = rand_vec(rng, B * V, -4.f, 4.f);
  lc[3 * V + 10] = -INFINITY;  // masked entries stay at probability 0
  struct Opt {
    float T;
    int k;
    float p;
    bool cfg;
  };
  for (const Opt o : {Opt{1.f, 0, 1.f, false}, Opt{0.7f, 50, 1.f, false}, Opt{1.3f, 0, 0.8f, false},
                      Opt{1.f, 200, 0.9f, true}, Opt{0.f, 0, 1.f, false}}) {
    std::vector<float> probs(B * V);
    std::vector<int32_t> tok(B), tok1(B);
    SampleArgs a;
    a.logits = make_view(lc.data(), DType::kF32, {B, V});
    if (o.cfg) a.uncond = make_view(lu.data(), DType::kF32, {B, V}), a.cfg_scale = 4.f;
    a.temperature = o.T, a.top_k = o.k, a.top_p = o.p;
    a.seed = 1234, a.step = 7;
    a.tokens = make_view(tok.data(), DType::kI32, {B});
    a.probs = make_view(probs.data(), DType::kF32, {B, V});
    sample(a);
    for (int64_t r = 0; r < B; ++r) {
      const std::vector<double> ref = ref_probs(&lc[r * V], o.cfg ? &lu[r * V] : nullptr, 4.f, V, o.T, o.k, o.p);
      CHECK_REL_AT(&probs[r * V], ref.data(), V, kTol) << " T " << o.T << " k " << o.k << " p " << o.p << " row " << r;
      CHECK(tok[r] >= 0 && tok[r] < V && ref[tok[r]] > 0) << "token " << tok[r] << " was filtered out";
    }
    // one thread or many: the same tokens
    const int nt = ThreadPool::global().num_threads();
    ThreadPool::global().resize(1);
    a.tokens = make_view(tok1.data(), DType::kI32, {B});
    a.probs = TensorView{};
    sample(a);
    ThreadPool::global().resize(nt);
    CHECK(tok == tok1) << "tokens depend on the thread count";
    if (o.T == 0.f) {  // temperature → 1e-5: the argmax, unless another logit is within ~1e-3 of it
      // (a near-tie: at T = 1e-5 a gap g leaves the runner-up weight e^(-g/1e-5), ~e^-100 at 1e-3)
      for (int64_t r = 0; r < B; ++r) {
        const float* row = &lc[r * V];
        const float top = *std::max_element(row, row + V);
        CHECK(row[tok[r]] >= top - 1e-3f) << "row " << r << ": logit " << row[tok[r]] << " vs max " << top;
        int64_t near = 0;
        for (int64_t v = 0; v < V; ++v) near += row[v] >= top - 1e-3f ? 1 : 0;
        if (near == 1) CHECK(tok[r] == std::max_element(row, row + V) - row) << "row " << r;
      }
    }
  }
}

// top-k's threshold on logits full of ties, signed zeros and -inf: the kept
// set is exactly {x >= k-th largest}, for k inside and at the edges of tie groups.
TEST(sample_top_k_with_ties_keeps_exactly_the_k_th_largest_and_above) {
  th::Rng rng(905);
  const int64_t V = 777;
  std::vector<float> l(V);
  for (int64_t i = 0; i < V; ++i) {
    const int64_t r = rng.randint(0, 9);
    l[i] = r == 0 ? -INFINITY : r == 1 ? 0.f : r == 2 ? -0.f : static_cast<float>(rng.randint(-3, 3));
  }
  l[17] = 1e30f;
  l[18] = -1e-30f;
  for (int k : {1, 2, 3, 50, 200, 333, 500, 700, static_cast<int>(V - 1)}) {
    std::vector<float> probs(V);
    std::vector<int32_t> tok(1);
    SampleArgs a;
    a.logits = make_view(l.data(), DType::kF32, {1, V});
    a.top_k = k;
    a.seed = 5, a.step = static_cast<uint64_t>(k);
    a.tokens = make_view(tok.data(), DType::kI32, {1});
    a.probs = make_view(probs.data(), DType::kF32, {1, V});
    sample(a);
    const std::vector<double> ref = ref_probs(l.data(), nullptr, 1.f, V, 1.0, k, 1.0);
    for (int64_t i = 0; i < V; ++i) CHECK((probs[i] > 0) == (ref[i] > 0)) << "k " << k << " index " << i;
    CHECK_REL_AT(probs.data(), ref.data(), V, kTol) << " k " << k;
    CHECK(ref[tok[0]] > 0);
  }
}

// top-p sorts only as deep as its cut (the m largest first, m = 64, 256,
// ...): the kept set must still be exactly the reference's, for cuts inside
// and beyond each m, with tie groups straddling the cut and with top-k.
TEST(sample_top_p_keeps_exactly_the_reference_prefix) {
  th::Rng rng(907);
  const int64_t V = 4099;
  std::vector<float> l(V);
  for (int64_t i = 0; i < V; ++i) {
    const int64_t r = rng.randint(0, 7);  // many ties: a quarter of the entries share 8 values
    l[i] = r < 2 ? static_cast<float>(rng.randint(0, 7)) * 0.25f : rng.uniform(-6.f, 2.f);
  }
  for (int k : {0, 300}) {
    for (float p : {0.01f, 0.2f, 0.5f, 0.8f, 0.95f, 0.999f, 0.99999f}) {
      for (float T : {0.3f, 1.f, 3.f}) {
        std::vector<float> probs(V);
        std::vector<int32_t> tok(1);
        SampleArgs a;
        a.logits = make_view(l.data(), DType::kF32, {1, V});
        a.temperature = T, a.top_k = k, a.top_p = p;
        a.seed = 11, a.step = 3;
        a.tokens = make_view(tok.data(), DType::kI32, {1});
        a.probs = make_view(probs.data(), DType::kF32, {1, V});
        sample(a);
        const std::vector<double> ref = ref_probs(l.data(), nullptr, 1.f, V, T, k, p);
        int64_t kept = 0;
        for (int64_t i = 0; i < V; ++i) {
          CHECK((probs[i] > 0) == (ref[i] > 0)) << "k " << k << " p " << p << " T " << T << " index " << i;
          kept += ref[i] > 0;
        }
        CHECK_REL_AT(probs.data(), ref.data(), V, kTol) << " k " << k << " p " << p << " T " << T;
        CHECK(ref[tok[0]] > 0);
        if (k == 0 && T == 3.f && p == 0.99999f) CHECK(kept > 1024) << "the deep cut must sort past m = 1024, kept " << kept;
      }
    }
  }
}

TEST(sample_frequencies_follow_the_probabilities) {
  // 20000 rows of one distribution, each its own RNG row: every frequency
  // within 5 standard deviations of its probability.
  const int64_t B = 20000, V = 5;
  const float logits[V] = {0.f, 1.f, -1.f, 2.f, -INFINITY};
  std::vector<float> l(B * V);
  for (int64_t r = 0; r < B; ++r) std::memcpy(&l[r * V], logits, sizeof logits);
  std::vector<int32_t> tok(B);
  SampleArgs a;
  a.logits = make_view(l.data(), DType::kF32, {B, V});
  a.tokens = make_view(tok.data(), DType::kI32, {B});
  a.seed = th::run_seed();
  sample(a);
  const std::vector<double> p = ref_probs(logits, nullptr, 1.f, V, 1.0, 0, 1.0);
  std::vector<int64_t> count(V, 0);
  for (int32_t t : tok) count[t]++;
  for (int64_t i = 0; i < V; ++i) {
    const double sd = std::sqrt(B * p[i] * (1 - p[i]));
    CHECK(std::fabs(count[i] - B * p[i]) <= 5 * sd + 1e-9) << "token " << i << " count " << count[i] << " expected " << B * p[i];
  }
}

TEST(sample_refuses_nan_and_all_masked_rows) {
  std::vector<float> l = {0.f, NAN, 1.f, -INFINITY, -INFINITY, -INFINITY};
  std::vector<int32_t> tok(2);
  SampleArgs a;
  a.logits = make_view(l.data(), DType::kF32, {1, 3});
  a.tokens = make_view(tok.data(), DType::kI32, {1});
  CHECK_THROWS_CODE(sample(a), kInvalidArgument);
  a.logits = make_view(l.data() + 3, DType::kF32, {1, 3});
  CHECK_THROWS_CODE(sample(a), kInvalidArgument);
  a.tokens = make_view(tok.data(), DType::kI32, {2});
  CHECK_THROWS_CODE(sample(a), kShape);
}

TEST(cfg_combine_matches_reference_in_place) {
  th::Rng rng(950);
  const int64_t B = 3, V = 77;
  std::vector<float> both = rand_vec(rng, 2 * B * V);  // VAR: rows [cond; uncond] of one tensor
  std::vector<double> ref(B * V);
  for (int64_t i = 0; i < B * V; ++i) ref[i] = both[B * V + i] + 2.5 * (static_cast<double>(both[i]) - both[B * V + i]);
  CfgArgs a;
  a.cond = a.out = make_view(both.data(), DType::kF32, {B, V});
  a.uncond = make_view(both.data() + B * V, DType::kF32, {B, V});
  a.scale = 2.5f;
  cfg_combine(a);
  CHECK_REL_AT(both.data(), ref.data(), ref.size(), kTol);
}
