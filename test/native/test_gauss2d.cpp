// 2D-Gaussian accumulated-sum renderer (tessera/gauss2d.h) against a float64
// per-pixel reference written from the spec (§3: GaussianImage's Cholesky
// parameterisation, C = Σ c·min(1, e^−σ) skipping σ < 0 and α < 1/255, clamp
// to [0, 1]; 3σ tile rectangles; the GSASR scale-aware footprint), and its
// gradients against central differences of that reference.
//
// Tolerances: a pixel sums at most a few dozen fp32 terms, so outputs agree to
// ~1e-6 relative, except that a (pixel, Gaussian) pair whose α lies within
// fp32 rounding of 1/255 may be kept by one side and dropped by the other (a
// jump of c/255 in one pixel, about 1e-4 of the image norm): 2e-4. The
// differences are taken with the set of contributing pairs and clamped pixels
// frozen at the base point (the derivative of the sum away from those
// measure-zero jumps, which is what the backward computes); fp32 sums over a
// few hundred pixels stay within 1e-3.
#include <algorithm>
#include <cmath>
#include <vector>

#include "harness.h"
#include "tessera/gauss2d.h"
#include "tessera/threadpool.h"

using namespace tessera;

// CHECK_REL with extra context streamed after it.
#define CHECK_REL_MSG(out, ref, n, tol) \
  CHECK(::th::rel_error((out), (ref), (n)) <= (tol)) << "rel error " << ::th::rel_error((out), (ref), (n)) << " > " << (tol)

namespace {

struct Params {
  int n = 0, W = 0, H = 0;
  std::vector<float> xy, ch, co;  // [n,2], [n,3], [n,3]
};

Params random_params(uint64_t salt, int n, int W, int H, float color_hi) {
  th::Rng rng(salt);
  Params p;
  p.n = n; p.W = W; p.H = H;
  for (int i = 0; i < n; ++i) {
    p.xy.push_back(std::atanh(rng.uniform(-0.95f, 0.95f)));
    p.xy.push_back(std::atanh(rng.uniform(-0.95f, 0.95f)));
    p.ch.push_back(rng.uniform(0.3f, 3.f));   // L11 = raw + 0.5
    p.ch.push_back(rng.uniform(-1.5f, 1.5f));
    p.ch.push_back(rng.uniform(0.3f, 3.f));
    for (int c = 0; c < 3; ++c) p.co.push_back(rng.uniform(-0.1f, color_hi));
  }
  return p;
}

// The contributing (pixel, Gaussian) pairs and clamped pixels of a render.
struct Frozen {
  std::vector<uint8_t> pair;     // [P·n]
  std::vector<uint8_t> clamped;  // [P·3]
};

// float64 reference. With `use`, contributions follow that frozen set (α
// unthresholded) and frozen-clamped pixels are constant; with `rec`, records it.
std::vector<double> ref_render(const Params& p, const std::vector<double>& q /* xy|ch|co as double */, int Wo, int Ho,
                               bool clamp, const Frozen* use, Frozen* rec) {
  const int n = p.n, P = Wo * Ho;
  const double sx = double(Wo) / p.W, sy = double(Ho) / p.H;
  const double *xy = q.data(), *ch = q.data() + 2 * n, *co = q.data() + 5 * n;
  struct G { double mx, my, A, B, C; int rect[4]; bool ok; };
  std::vector<G> gs(n);
  const int tx = (Wo + 15) / 16, ty = (Ho + 15) / 16;
  for (int i = 0; i < n; ++i) {
    G& g = gs[i];
    const double l11 = ch[3 * i] + 0.5, l21 = ch[3 * i + 1], l22 = ch[3 * i + 2] + 0.5;
    const double a = sx * sx * l11 * l11, b = sx * sy * l11 * l21, c = sy * sy * (l21 * l21 + l22 * l22);
    const double det = a * c - b * b;
    g.ok = det > 0;
    g.A = c / det; g.B = -b / det; g.C = a / det;
    // GaussianImage samples image pixel j at j: output pixel x sits at (x + 0.5)/s − 0.5.
    g.mx = 0.5 * Wo * (std::tanh(xy[2 * i]) + 1) + 0.5 * sx;
    g.my = 0.5 * Ho * (std::tanh(xy[2 * i + 1]) + 1) + 0.5 * sy;
    const double mid = 0.5 * (a + c), lmax = mid + std::sqrt(std::max(0.1, mid * mid - det));
    const double r = std::ceil(3 * std::sqrt(lmax));
    auto cl = [](double v, int hi) { return int(std::min<double>(std::max<double>(v, 0), hi)); };
    // Tiles from the centre in pixel-index coordinates (GaussianImage's get_tile_bbox).
    g.rect[0] = cl(std::floor((g.mx - 0.5 - r) / 16), tx);
    g.rect[1] = cl(std::floor((g.mx - 0.5 + r + 15) / 16), tx);
    g.rect[2] = cl(std::floor((g.my - 0.5 - r) / 16), ty);
    g.rect[3] = cl(std::floor((g.my - 0.5 + r + 15) / 16), ty);
  }
  if (rec) { rec->pair.assign(size_t(P) * n, 0); rec->clamped.assign(size_t(P) * 3, 0); }
  std::vector<double> out(size_t(P) * 3, 0.0);
  for (int y = 0; y < Ho; ++y)
    for (int x = 0; x < Wo; ++x) {
      const int pix = y * Wo + x, tix = x / 16, tiy = y / 16;
      double acc[3] = {0, 0, 0};
      for (int i = 0; i < n; ++i) {
        const G& g = gs[i];
        const double dx = x + 0.5 - g.mx, dy = y + 0.5 - g.my;
        const double sigma = 0.5 * (g.A * dx * dx + g.C * dy * dy) + g.B * dx * dy;
        const double alpha = std::min(1.0, std::exp(-sigma));
        bool take;
        if (use) {
          take = use->pair[size_t(pix) * n + i];
        } else {
          take = g.ok && tix >= g.rect[0] && tix < g.rect[1] && tiy >= g.rect[2] && tiy < g.rect[3] && sigma >= 0 &&
                 alpha >= 1.0 / 255;
        }
        if (!take) continue;
        if (rec) rec->pair[size_t(pix) * n + i] = 1;
        for (int c = 0; c < 3; ++c) acc[c] += co[3 * i + c] * alpha;
      }
      for (int c = 0; c < 3; ++c) {
        double v = acc[c];
        if (clamp) {
          const bool cut = use ? use->clamped[size_t(pix) * 3 + c] : (v < 0 || v > 1);
          if (rec && cut) rec->clamped[size_t(pix) * 3 + c] = 1;
          if (cut) v = use ? 0.0 : std::min(1.0, std::max(0.0, v));  // frozen: constant (no derivative)
        }
        out[size_t(pix) * 3 + c] = v;
      }
    }
  return out;
}

std::vector<double> as_double(const Params& p) {
  std::vector<double> q;
  for (float v : p.xy) q.push_back(v);
  for (float v : p.ch) q.push_back(v);
  for (float v : p.co) q.push_back(v);
  return q;
}

Gauss2dImage image_of(Params& p) {
  Gauss2dImage im;
  im.xy = make_view(p.xy.data(), DType::kF32, {p.n, 2});
  im.cholesky = make_view(p.ch.data(), DType::kF32, {p.n, 3});
  im.color = make_view(p.co.data(), DType::kF32, {p.n, 3});
  im.width = p.W;
  im.height = p.H;
  return im;
}

std::vector<float> render(Params& p, int Wo, int Ho, bool clamp, Gauss2dStats* st = nullptr) {
  std::vector<float> out(size_t(Wo) * Ho * 3, -7.f);
  Gauss2dRenderArgs a;
  a.image = image_of(p);
  a.rgb = make_view(out.data(), DType::kF32, {Ho, Wo, 3});
  a.clamp = clamp;
  a.stats = st;
  gauss2d_render(a);
  return out;
}

void check_forward(uint64_t salt, int n, int W, int H, int Wo, int Ho, bool clamp, float color_hi) {
  Params p = random_params(salt, n, W, H, color_hi);
  const std::vector<float> got = render(p, Wo, Ho, clamp);
  const std::vector<double> ref = ref_render(p, as_double(p), Wo, Ho, clamp, nullptr, nullptr);
  CHECK_REL_MSG(got.data(), ref.data(), ref.size(), 2e-4) << " (" << Wo << "x" << Ho << ", clamp " << clamp << ")";
}

}  // namespace

TEST(gauss2d_forward_matches_reference_scale1) {
  check_forward(1, 60, 40, 36, 40, 36, true, 0.6f);
  check_forward(2, 60, 40, 36, 40, 36, false, 0.6f);
  check_forward(3, 200, 70, 50, 70, 50, true, 1.0f);  // many pixels above 1: clamp active
  check_forward(4, 1, 5, 3, 5, 3, true, 0.6f);        // image smaller than a tile
}

TEST(gauss2d_forward_matches_reference_at_scale) {
  // Output sizes round(s·W): scale 2, 3.7 and a downscale; non-uniform via rounding.
  check_forward(5, 50, 30, 20, 60, 40, true, 0.6f);
  check_forward(6, 50, 30, 20, 111, 74, true, 0.6f);
  check_forward(7, 50, 30, 20, 15, 10, false, 0.6f);
}

TEST(gauss2d_scale_keeps_the_continuous_image) {
  // Upsampling by 2 samples the same continuous image: output pixel (2i+½, …)
  // centres fall between input centres, so a smooth image upsampled by 2 and
  // averaged over 2×2 blocks is close to the scale-1 render (wide Gaussians).
  Params p = random_params(8, 30, 32, 32, 0.3f);
  for (size_t i = 0; i < p.ch.size(); i += 3) { p.ch[i] += 4; p.ch[i + 2] += 4; }
  const std::vector<float> a = render(p, 32, 32, false), b = render(p, 64, 64, false);
  double num = 0, den = 0;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 3; ++c) {
        double s = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) s += b[((2 * y + dy) * 64 + 2 * x + dx) * 3 + c];
        const double d = s / 4 - a[(y * 32 + x) * 3 + c];
        num += d * d;
        den += double(a[(y * 32 + x) * 3 + c]) * a[(y * 32 + x) * 3 + c];
      }
  CHECK(std::sqrt(num / den) < 0.02) << "box-averaged 2x render differs by " << std::sqrt(num / den);
}

namespace {
void check_gradients(uint64_t salt, int n, int W, int H, int Wo, int Ho, bool clamp, float color_hi) {
  Params p = random_params(salt, n, W, H, color_hi);
  th::Rng rng(salt * 31 + 7);
  const size_t P = size_t(Wo) * Ho;
  std::vector<float> w(P * 3);
  rng.fill(w.data(), w.size());
  std::vector<float> gxy(2 * n, 9.f), gch(3 * n, 9.f), gco(3 * n, 9.f);
  Gauss2dBackwardArgs a;
  a.image = image_of(p);
  a.grad_rgb = make_view(w.data(), DType::kF32, {Ho, Wo, 3});
  a.clamp = clamp;
  a.grad_xy = make_view(gxy.data(), DType::kF32, {n, 2});
  a.grad_cholesky = make_view(gch.data(), DType::kF32, {n, 3});
  a.grad_color = make_view(gco.data(), DType::kF32, {n, 3});
  gauss2d_backward(a);
  std::vector<double> q = as_double(p);
  Frozen fz;
  ref_render(p, q, Wo, Ho, clamp, nullptr, &fz);
  auto loss = [&](const std::vector<double>& qq) {
    const std::vector<double> img = ref_render(p, qq, Wo, Ho, clamp, &fz, nullptr);
    double L = 0;
    for (size_t i = 0; i < img.size(); ++i) L += w[i] * img[i];
    return L;
  };
  std::vector<double> fd(q.size());
  const double h = 1e-5;
  for (size_t j = 0; j < q.size(); ++j) {
    std::vector<double> qp = q, qm = q;
    qp[j] += h;
    qm[j] -= h;
    fd[j] = (loss(qp) - loss(qm)) / (2 * h);
  }
  CHECK_REL_MSG(gxy.data(), fd.data(), 2 * n, 1e-3) << " d/dxy";
  CHECK_REL_MSG(gch.data(), fd.data() + 2 * n, 3 * n, 1e-3) << " d/dcholesky";
  CHECK_REL_MSG(gco.data(), fd.data() + 5 * n, 3 * n, 1e-3) << " d/dcolor";
}
}  // namespace

TEST(gauss2d_gradients_match_finite_differences) {
  check_gradients(11, 25, 34, 30, 34, 30, false, 0.6f);
  check_gradients(12, 40, 34, 30, 34, 30, true, 1.2f);  // clamped pixels pass no gradient
  check_gradients(13, 20, 24, 20, 41, 33, true, 0.6f);  // at scale ~1.7
}

TEST(gauss2d_deterministic_across_thread_counts) {
  Params p = random_params(21, 400, 90, 70, 0.4f);
  const int threads = ThreadPool::global().num_threads();
  std::vector<float> w(size_t(90) * 70 * 3);
  th::Rng(22).fill(w.data(), w.size());
  auto run = [&](int t, std::vector<float>* img, std::vector<float>* g) {
    ThreadPool::global().resize(t);
    *img = render(p, 90, 70, true);
    g->assign(8 * p.n, 0.f);
    Gauss2dBackwardArgs a;
    a.image = image_of(p);
    a.grad_rgb = make_view(w.data(), DType::kF32, {70, 90, 3});
    a.grad_xy = make_view(g->data(), DType::kF32, {p.n, 2});
    a.grad_cholesky = make_view(g->data() + 2 * p.n, DType::kF32, {p.n, 3});
    a.grad_color = make_view(g->data() + 5 * p.n, DType::kF32, {p.n, 3});
    gauss2d_backward(a);
  };
  std::vector<float> i1, g1, i3, g3;
  run(1, &i1, &g1);
  run(3, &i3, &g3);
  ThreadPool::global().resize(threads);
  CHECK(i1 == i3) << "render differs between 1 and 3 threads";
  CHECK(g1 == g3) << "gradients differ between 1 and 3 threads";
}

TEST(gauss2d_invalid_gaussians_are_skipped) {
  Params p = random_params(31, 12, 40, 40, 0.6f);
  Params clean = p;
  p.xy[0] = NAN;                  // Gaussian 0: NaN mean
  p.ch[3 * 1] = -0.5f;            // Gaussian 1: L11 = 0, singular
  p.co[3 * 2 + 1] = INFINITY;     // Gaussian 2: infinite colour
  Gauss2dStats st;
  const std::vector<float> got = render(p, 40, 40, true, &st);
  CHECK(st.invalid == 3) << st.invalid;
  CHECK(st.gaussians == 12);
  // Equal to the clean scene without those three (their colour zeroed).
  for (int i = 0; i < 3; ++i)
    for (int c = 0; c < 3; ++c) clean.co[3 * i + c] = 0;
  const std::vector<float> ref = render(clean, 40, 40, true);
  CHECK(got == ref);
  std::vector<float> w(40 * 40 * 3, 1.f), gxy(24, 5.f), gch(36, 5.f), gco(36, 5.f);
  Gauss2dBackwardArgs a;
  a.image = image_of(p);
  a.grad_rgb = make_view(w.data(), DType::kF32, {40, 40, 3});
  a.grad_xy = make_view(gxy.data(), DType::kF32, {12, 2});
  a.grad_cholesky = make_view(gch.data(), DType::kF32, {12, 3});
  a.grad_color = make_view(gco.data(), DType::kF32, {12, 3});
  gauss2d_backward(a);
  for (int i = 0; i < 3; ++i) CHECK(gxy[2 * i] == 0 && gch[3 * i] == 0 && gco[3 * i] == 0) << "Gaussian " << i;
  for (float v : gxy) CHECK(std::isfinite(v));
}

TEST(gauss2d_validation_codes) {
  Params p = random_params(41, 4, 16, 16, 0.5f);
  std::vector<float> out(16 * 16 * 3);
  Gauss2dRenderArgs a;
  a.image = image_of(p);
  a.rgb = make_view(out.data(), DType::kF32, {16, 16, 3});
  Gauss2dRenderArgs bad = a;
  bad.image.cholesky = make_view(p.ch.data(), DType::kF32, {4, 2});
  CHECK_THROWS_CODE(gauss2d_render(bad), kShape);
  bad = a;
  bad.image.color.dtype = DType::kF16;
  CHECK_THROWS_CODE(gauss2d_render(bad), kDtype);
  bad = a;
  bad.image.width = 0;
  CHECK_THROWS_CODE(gauss2d_render(bad), kInvalidArgument);
  bad = a;
  bad.rgb = make_view(out.data(), DType::kF32, {16, 16, 4});
  CHECK_THROWS_CODE(gauss2d_render(bad), kShape);
  bad = a;
  bad.rgb = make_view(p.co.data(), DType::kF32, {1, 4, 3});
  CHECK_THROWS_CODE(gauss2d_render(bad), kAlias);
  bad = a;
  bad.image.xy.device.kind = DeviceKind::kCUDA;
  CHECK_THROWS_CODE(gauss2d_render(bad), kDevice);
}
