// CUDA 3DGS rasterizer (CudaApi::splat_render / splat_backward) against
//  * the CPU rasterizer (tessera::splat_render / splat_backward on host
//    copies of the same inputs), and
//  * a float64 brute-force renderer written here from the spec (every pixel
//    walks every visible Gaussian in (depth, index) order inside its 16×16
//    tile rectangle), with central finite differences of it for gradients,
// with the CPU suite's tolerances (test/native/test_splat.cpp), at odd image
// sizes, several cameras, both modes and SH degrees 0-3.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda_util.h"
#include "splat_reference.h"
#include "tessera/splat.h"

using namespace tessera;

#define CHECK_REL_MSG(out, ref, n, tol) \
  CHECK(::th::rel_error((out), (ref), (n)) <= (tol)) << "rel error " << ::th::rel_error((out), (ref), (n)) << " > " << (tol)

namespace {

// ---- float64 reference ----------------------------------------------------
using namespace splat_ref;

Cam look_at(double ex, double ey, double ez, int W, int H, double f) {
  const double e[3] = {ex, ey, ez};
  double zf[3] = {-ex, -ey, -ez};
  double n = std::sqrt(zf[0] * zf[0] + zf[1] * zf[1] + zf[2] * zf[2]);
  for (double& v : zf) v /= n;
  const double up[3] = {0, -1, 0};
  double xr[3] = {zf[1] * up[2] - zf[2] * up[1], zf[2] * up[0] - zf[0] * up[2], zf[0] * up[1] - zf[1] * up[0]};
  n = std::sqrt(xr[0] * xr[0] + xr[1] * xr[1] + xr[2] * xr[2]);
  for (double& v : xr) v /= n;
  const double yd[3] = {zf[1] * xr[2] - zf[2] * xr[1], zf[2] * xr[0] - zf[0] * xr[2], zf[0] * xr[1] - zf[1] * xr[0]};
  Cam c{f, f * 1.05, W / 2.0 + 0.7, H / 2.0 - 0.4, W, H, {}};
  const double* rows[3] = {xr, yd, zf};
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 3; ++k) c.view[4 * r + k] = rows[r][k];
    c.view[4 * r + 3] = -(rows[r][0] * e[0] + rows[r][1] * e[1] + rows[r][2] * e[2]);
  }
  c.view[15] = 1;
  // float32-rounded, as the kernels see it
  c.fx = float(c.fx); c.fy = float(c.fy); c.cx = float(c.cx); c.cy = float(c.cy);
  for (double& v : c.view) v = float(v);
  return c;
}

Scene random_scene(th::Rng& rng, int n, int deg, int K, double ls_lo, double ls_hi, double radius) {
  Scene s;
  s.n = n; s.deg = deg; s.K = K;
  auto f = [&](double lo, double hi) { return static_cast<double>(static_cast<float>(rng.uniform(float(lo), float(hi)))); };
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 3; ++k) s.means.push_back(f(-radius, radius));
    for (int k = 0; k < 3; ++k) s.ls.push_back(f(ls_lo, ls_hi));
    for (int k = 0; k < 4; ++k) s.rot.push_back(f(-1, 1));
    s.logit.push_back(f(-1.5, 2.5));
    for (int k = 0; k < K; ++k)
      for (int ch = 0; ch < 3; ++ch) s.sh.push_back(k == 0 ? f(-1.2, 1.2) : f(-0.3, 0.3));
  }
  return s;
}

std::vector<SplatCamera> to_f32(const std::vector<Cam>& cams) {
  std::vector<SplatCamera> out;
  for (const Cam& c : cams) {
    SplatCamera k;
    k.fx = float(c.fx); k.fy = float(c.fy); k.cx = float(c.cx); k.cy = float(c.cy);
    k.width = c.W; k.height = c.H;
    for (int j = 0; j < 16; ++j) k.view[j] = float(c.view[j]);
    out.push_back(k);
  }
  return out;
}

// ---- the same scene on the host and on the device -----------------------------
// Means are stored with a row stride of 4 floats (a strided view), the rest
// contiguous, so both backends read strided rows.
struct Both {
  int64_t n = 0, K = 1;
  int deg = 0;
  std::vector<float> means4, ls, rot, logit, sh;
  ct::DevBuf d_means, d_ls, d_rot, d_logit, d_sh;
  SplatScene host, dev;
};

TensorView strided_means(void* p, int64_t n, Device dev) {
  TensorView v = make_view(p, DType::kF32, {n, 3}, dev);
  v.strides[0] = 4;
  return v;
}

void make_both(const Scene& s, Both* b) {
  b->n = s.n; b->K = s.K; b->deg = s.deg;
  b->means4.assign(4 * s.n, 0.f);
  for (int i = 0; i < s.n; ++i)
    for (int k = 0; k < 3; ++k) b->means4[4 * i + k] = float(s.means[3 * i + k]);
  auto cv = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  b->ls = cv(s.ls); b->rot = cv(s.rot); b->logit = cv(s.logit); b->sh = cv(s.sh);
  b->d_means = ct::to_device(b->means4);
  b->d_ls = ct::to_device(b->ls);
  b->d_rot = ct::to_device(b->rot);
  b->d_logit = ct::to_device(b->logit);
  b->d_sh = ct::to_device(b->sh);
  const int64_t n = s.n;
  auto fill = [&](SplatScene& v, void* m, void* l, void* r, void* o, void* h, Device dev) {
    v.means = strided_means(m, n, dev);
    v.log_scales = make_view(l, DType::kF32, {n, 3}, dev);
    v.rotations = make_view(r, DType::kF32, {n, 4}, dev);
    v.opacity_logits = make_view(o, DType::kF32, {n}, dev);
    v.sh = make_view(h, DType::kF32, {n, int64_t(s.K), 3}, dev);
    v.sh_degree = s.deg;
  };
  fill(b->host, b->means4.data(), b->ls.data(), b->rot.data(), b->logit.data(), b->sh.data(), Device{});
  fill(b->dev, b->d_means.p, b->d_ls.p, b->d_rot.p, b->d_logit.p, b->d_sh.p, ct::kDev);
}

struct Rendered {
  std::vector<float> rgb, alpha, depth;
  std::vector<int32_t> count;
  SplatStats stats;
};

Rendered render_cpu(const Both& b, const std::vector<SplatCamera>& cams, SplatMode mode, const float bg[3]) {
  const int64_t C = cams.size(), H = cams[0].height, W = cams[0].width;
  Rendered r;
  r.rgb.resize(C * H * W * 3); r.alpha.resize(C * H * W); r.depth.resize(C * H * W); r.count.resize(C * H * W);
  SplatRenderArgs a;
  a.scene = b.host;
  a.cameras = cams.data();
  a.num_cameras = int32_t(C);
  a.mode = mode;
  for (int k = 0; k < 3; ++k) a.background[k] = bg[k];
  a.rgb = make_view(r.rgb.data(), DType::kF32, {C, H, W, 3});
  a.alpha = make_view(r.alpha.data(), DType::kF32, {C, H, W});
  a.depth = make_view(r.depth.data(), DType::kF32, {C, H, W});
  a.contributors = make_view(r.count.data(), DType::kI32, {C, H, W});
  a.stats = &r.stats;
  splat_render(a);
  return r;
}

Rendered render_gpu(const Both& b, const std::vector<SplatCamera>& cams, SplatMode mode, const float bg[3]) {
  const int64_t C = cams.size(), H = cams[0].height, W = cams[0].width, P = C * H * W;
  ct::DevBuf rgb(P * 3 * 4), al(P * 4), de(P * 4), co(P * 4);
  rgb.poison(); al.poison(); de.poison(); co.poison();
  Rendered r;
  SplatRenderArgs a;
  a.scene = b.dev;
  a.cameras = cams.data();
  a.num_cameras = int32_t(C);
  a.mode = mode;
  for (int k = 0; k < 3; ++k) a.background[k] = bg[k];
  a.rgb = ct::view(rgb, DType::kF32, {C, H, W, 3});
  a.alpha = ct::view(al, DType::kF32, {C, H, W});
  a.depth = ct::view(de, DType::kF32, {C, H, W});
  a.contributors = ct::view(co, DType::kI32, {C, H, W});
  a.stats = &r.stats;
  ct::call(ct::api().splat_render, static_cast<const SplatRenderArgs*>(&a));
  r.rgb.resize(P * 3); r.alpha.resize(P); r.depth.resize(P); r.count.resize(P);
  rgb.download(r.rgb.data(), P * 12);
  al.download(r.alpha.data(), P * 4);
  de.download(r.depth.data(), P * 4);
  co.download(r.count.data(), P * 4);
  return r;
}

const double kBg[3] = {0.25, 0.5, 0.75};
const float kBgF[3] = {0.25f, 0.5f, 0.75f};

// Image comparison in the CPU suite's form: tight on pixels whose contributor
// counts agree, looser on all pixels, few count disagreements.
void compare_images(const Rendered& r, const std::vector<double>& rgb, const std::vector<double>& alpha,
                    const std::vector<double>& depth, const std::vector<int>& count, double tight, double loose,
                    const char* what) {
  size_t differ = 0;
  std::vector<float> rs, as, ds;
  std::vector<double> rr, ar, dr;
  for (size_t i = 0; i < count.size(); ++i) {
    if (r.count[i] != count[i]) { ++differ; continue; }
    for (int k = 0; k < 3; ++k) { rs.push_back(r.rgb[3 * i + k]); rr.push_back(rgb[3 * i + k]); }
    as.push_back(r.alpha[i]); ar.push_back(alpha[i]);
    ds.push_back(r.depth[i]); dr.push_back(depth[i]);
  }
  CHECK(differ <= count.size() / 500) << what << ": " << differ << " of " << count.size() << " contributor counts differ";
  CHECK_REL_MSG(rs.data(), rr.data(), rr.size(), tight) << " " << what << " rgb";
  CHECK_REL_MSG(as.data(), ar.data(), ar.size(), tight) << " " << what << " alpha";
  CHECK_REL_MSG(ds.data(), dr.data(), dr.size(), tight) << " " << what << " depth";
  CHECK_REL_MSG(r.rgb.data(), rgb.data(), rgb.size(), loose) << " " << what << " rgb, all pixels";
  CHECK_REL_MSG(r.alpha.data(), alpha.data(), alpha.size(), loose) << " " << what << " alpha, all pixels";
  CHECK_REL_MSG(r.depth.data(), depth.data(), depth.size(), loose) << " " << what << " depth, all pixels";
}

void check_forward(int W, int H, int n, int deg, int K, SplatMode mode, uint64_t salt) {
  th::Rng rng(salt);
  const Scene s = random_scene(rng, n, deg, K, -3.2, -1.2, 1.0);
  const std::vector<Cam> cams = {look_at(0.3, -0.4, -3.0, W, H, 0.9 * W), look_at(-2.5, 0.6, -1.8, W, H, 1.1 * W),
                                 look_at(1.0, 1.5, 2.6, W, H, 0.8 * W)};
  Both b;
  make_both(s, &b);
  const std::vector<SplatCamera> kc = to_f32(cams);
  const Rendered g = render_gpu(b, kc, mode, kBgF);
  const Rendered c = render_cpu(b, kc, mode, kBgF);
  std::printf("    %dx%d N=%d deg %d %s: intersections gpu %lld cpu %lld, visible %lld/%lld\n", W, H, n, deg,
              mode == SplatMode::kAntialiased ? "aa" : "classic", (long long)g.stats.intersections,
              (long long)c.stats.intersections, (long long)g.stats.visible, (long long)c.stats.visible);
  // Against the CPU rasterizer: same rules in fp32; only FMA contraction and
  // libm rounding differ, so agreeing pixels match to ~1e-6.
  {
    std::vector<double> rgb(c.rgb.begin(), c.rgb.end()), alpha(c.alpha.begin(), c.alpha.end()),
        depth(c.depth.begin(), c.depth.end());
    std::vector<int> count(c.count.begin(), c.count.end());
    compare_images(g, rgb, alpha, depth, count, 1e-5, 1e-4, "vs CPU");
  }
  // Against float64: the CPU suite's bounds.
  {
    std::vector<double> rgb, alpha, depth;
    std::vector<int> count;
    for (const Cam& cam : cams) {
      Image img = ref_render(s, cam, mode == SplatMode::kAntialiased, kBg);
      rgb.insert(rgb.end(), img.rgb.begin(), img.rgb.end());
      alpha.insert(alpha.end(), img.alpha.begin(), img.alpha.end());
      depth.insert(depth.end(), img.depth.begin(), img.depth.end());
      count.insert(count.end(), img.count.begin(), img.count.end());
    }
    compare_images(g, rgb, alpha, depth, count, 4e-5, 2e-4, "vs float64");
  }
  CHECK(g.stats.gaussians == n && g.stats.invalid == 0) << g.stats.invalid;
  CHECK(g.stats.culled_near == c.stats.culled_near) << g.stats.culled_near << " vs " << c.stats.culled_near;
  CHECK(std::llabs(g.stats.visible - c.stats.visible) <= 1 + c.stats.visible / 200)
      << g.stats.visible << " vs " << c.stats.visible;
  CHECK(std::llabs(g.stats.intersections - c.stats.intersections) <= 2 + c.stats.intersections / 100)
      << g.stats.intersections << " vs " << c.stats.intersections;
  CHECK(g.stats.visible > 0 && g.stats.intersections >= g.stats.visible);
}

}  // namespace

TEST(cuda_splat_forward_classic_matches_cpu_and_float64) {
  for (int deg = 0; deg <= 3; ++deg) check_forward(37, 23, 300, deg, (deg + 1) * (deg + 1), SplatMode::kClassic, 11 + deg);
  check_forward(64, 48, 500, 3, 16, SplatMode::kClassic, 21);
  check_forward(61, 45, 3000, 1, 16, SplatMode::kClassic, 22);  // > 256 Gaussians per tile; K > (deg+1)²
}

TEST(cuda_splat_forward_antialiased_matches_cpu_and_float64) {
  for (int deg = 0; deg <= 3; ++deg) check_forward(37, 23, 300, deg, (deg + 1) * (deg + 1), SplatMode::kAntialiased, 31 + deg);
  check_forward(64, 48, 500, 2, 9, SplatMode::kAntialiased, 41);
  check_forward(133, 77, 4000, 3, 16, SplatMode::kAntialiased, 42);
}

TEST(cuda_splat_forward_is_deterministic) {
  th::Rng rng(51);
  const Scene s = random_scene(rng, 2000, 3, 16, -3.0, -1.5, 1.0);
  Both b;
  make_both(s, &b);
  const std::vector<SplatCamera> kc = to_f32({look_at(0.2, 0.1, -3, 97, 61, 90)});
  const Rendered r1 = render_gpu(b, kc, SplatMode::kAntialiased, kBgF);
  const Rendered r2 = render_gpu(b, kc, SplatMode::kAntialiased, kBgF);
  CHECK(r1.rgb == r2.rgb && r1.depth == r2.depth && r1.count == r2.count) << "two renders differ";
}

TEST(cuda_splat_invalid_gaussians_are_skipped_and_counted) {
  th::Rng rng(61);
  Scene s = random_scene(rng, 60, 1, 4, -2.5, -1.5, 0.8);
  Scene expected = s;
  s.means[3 * 3] = NAN;
  s.ls[3 * 7 + 1] = INFINITY;
  s.ls[3 * 9] = 60;
  for (int k = 0; k < 4; ++k) s.rot[4 * 12 + k] = 0;
  s.sh[3 * s.K * 15 + 4] = NAN;
  s.logit[20] = -INFINITY;
  for (int i : {3, 7, 9, 12, 15, 20}) expected.logit[i] = -1e9;
  for (int k = 0; k < 4; ++k) expected.rot[4 * 12 + k] = k == 0 ? 1 : 0;
  Both bs, be;
  make_both(s, &bs);
  make_both(expected, &be);
  const std::vector<SplatCamera> kc = to_f32({look_at(0.0, 0.0, -3.0, 40, 30, 36)});
  const Rendered r = render_gpu(bs, kc, SplatMode::kClassic, kBgF);
  const Rendered e = render_gpu(be, kc, SplatMode::kClassic, kBgF);
  CHECK(r.stats.invalid == 6) << r.stats.invalid;
  CHECK(r.rgb == e.rgb) << "skipped Gaussians changed the image";
  for (float v : r.rgb) CHECK(std::isfinite(v));
  // Backward: finite everywhere, zero rows for the skipped Gaussians.
  const int64_t n = s.n, K = s.K, P = 40 * 30;
  std::vector<float> ones(3 * P, 1.f);
  ct::DevBuf gr = ct::to_device(ones), gm(n * 12), gl(n * 12), gq(n * 16), go(n * 4), gs(n * K * 12);
  gm.poison(); gl.poison(); gq.poison(); go.poison(); gs.poison();
  SplatBackwardArgs a;
  a.scene = bs.dev;
  a.cameras = kc.data();
  a.num_cameras = 1;
  for (int k = 0; k < 3; ++k) a.background[k] = kBgF[k];
  a.grad_rgb = ct::view(gr, DType::kF32, {1, 30, 40, 3});
  a.grad_means = ct::view(gm, DType::kF32, {n, 3});
  a.grad_log_scales = ct::view(gl, DType::kF32, {n, 3});
  a.grad_rotations = ct::view(gq, DType::kF32, {n, 4});
  a.grad_opacity_logits = ct::view(go, DType::kF32, {n});
  a.grad_sh = ct::view(gs, DType::kF32, {n, K, 3});
  ct::call(ct::api().splat_backward, static_cast<const SplatBackwardArgs*>(&a));
  std::vector<float> hm(n * 3);
  gm.download(hm.data(), hm.size() * 4);
  for (float v : hm) CHECK(std::isfinite(v));
  for (int i : {3, 7, 9, 12, 15, 20})
    for (int k = 0; k < 3; ++k) CHECK(hm[3 * i + k] == 0.f) << "gaussian " << i;
}

namespace {

struct Grads {
  std::vector<float> m, ls, q, o, sh;
};

Grads backward_cpu(const Both& b, const std::vector<SplatCamera>& kc, SplatMode mode, std::vector<float>& wr,
                   std::vector<float>& wa, std::vector<float>& wd) {
  const int64_t C = kc.size(), H = kc[0].height, W = kc[0].width, n = b.n;
  Grads g;
  g.m.resize(3 * n); g.ls.resize(3 * n); g.q.resize(4 * n); g.o.resize(n); g.sh.resize(3 * b.K * n);
  SplatBackwardArgs a;
  a.scene = b.host;
  a.cameras = kc.data();
  a.num_cameras = int32_t(C);
  a.mode = mode;
  for (int k = 0; k < 3; ++k) a.background[k] = kBgF[k];
  a.grad_rgb = make_view(wr.data(), DType::kF32, {C, H, W, 3});
  a.grad_alpha = make_view(wa.data(), DType::kF32, {C, H, W});
  a.grad_depth = make_view(wd.data(), DType::kF32, {C, H, W});
  a.grad_means = make_view(g.m.data(), DType::kF32, {n, 3});
  a.grad_log_scales = make_view(g.ls.data(), DType::kF32, {n, 3});
  a.grad_rotations = make_view(g.q.data(), DType::kF32, {n, 4});
  a.grad_opacity_logits = make_view(g.o.data(), DType::kF32, {n});
  a.grad_sh = make_view(g.sh.data(), DType::kF32, {n, b.K, 3});
  splat_backward(a);
  return g;
}

Grads backward_gpu(const Both& b, const std::vector<SplatCamera>& kc, SplatMode mode, const std::vector<float>& wr,
                   const std::vector<float>& wa, const std::vector<float>& wd) {
  const int64_t C = kc.size(), H = kc[0].height, W = kc[0].width, n = b.n;
  ct::DevBuf dwr = ct::to_device(wr), dwa = ct::to_device(wa), dwd = ct::to_device(wd);
  ct::DevBuf gm(n * 12), gl(n * 12), gq(n * 16), go(n * 4), gs(n * b.K * 12);
  gm.poison(); gl.poison(); gq.poison(); go.poison(); gs.poison();  // the backward must overwrite them
  SplatBackwardArgs a;
  a.scene = b.dev;
  a.cameras = kc.data();
  a.num_cameras = int32_t(C);
  a.mode = mode;
  for (int k = 0; k < 3; ++k) a.background[k] = kBgF[k];
  a.grad_rgb = ct::view(dwr, DType::kF32, {C, H, W, 3});
  a.grad_alpha = ct::view(dwa, DType::kF32, {C, H, W});
  a.grad_depth = ct::view(dwd, DType::kF32, {C, H, W});
  a.grad_means = ct::view(gm, DType::kF32, {n, 3});
  a.grad_log_scales = ct::view(gl, DType::kF32, {n, 3});
  a.grad_rotations = ct::view(gq, DType::kF32, {n, 4});
  a.grad_opacity_logits = ct::view(go, DType::kF32, {n});
  a.grad_sh = ct::view(gs, DType::kF32, {n, b.K, 3});
  ct::call(ct::api().splat_backward, static_cast<const SplatBackwardArgs*>(&a));
  Grads g;
  g.m.resize(3 * n); g.ls.resize(3 * n); g.q.resize(4 * n); g.o.resize(n); g.sh.resize(3 * b.K * n);
  gm.download(g.m.data(), g.m.size() * 4);
  gl.download(g.ls.data(), g.ls.size() * 4);
  gq.download(g.q.data(), g.q.size() * 4);
  go.download(g.o.data(), g.o.size() * 4);
  gs.download(g.sh.data(), g.sh.size() * 4);
  return g;
}

void compare_grads(const Grads& g, const Grads& ref, double tol, const char* what) {
  auto cmp = [&](const std::vector<float>& a, const std::vector<float>& r, const char* name) {
    std::vector<double> rd(r.begin(), r.end());
    CHECK_REL_MSG(a.data(), rd.data(), rd.size(), tol) << " " << what << " d" << name;
  };
  cmp(g.m, ref.m, "means");
  cmp(g.ls, ref.ls, "logScales");
  cmp(g.q, ref.q, "rotations");
  cmp(g.o, ref.o, "opacityLogits");
  cmp(g.sh, ref.sh, "sh");
}

// L = Σ wr·rgb + Σ wa·alpha + Σ wd·depth (float64 reference).
double ref_loss(const Scene& s, const std::vector<Cam>& cams, bool aa, const std::vector<float>& wr,
                const std::vector<float>& wa, const std::vector<float>& wd) {
  double v = 0;
  size_t o3 = 0, o1 = 0;
  for (const Cam& c : cams) {
    const Image img = ref_render(s, c, aa, kBg);
    for (size_t i = 0; i < img.rgb.size(); ++i) v += double(wr[o3 + i]) * img.rgb[i];
    for (size_t i = 0; i < img.alpha.size(); ++i) v += double(wa[o1 + i]) * img.alpha[i] + double(wd[o1 + i]) * img.depth[i];
    o3 += img.rgb.size();
    o1 += img.alpha.size();
  }
  return v;
}

}  // namespace

// Random scenes, many Gaussians per pixel: against the CPU backward. The CPU
// sums each Gaussian's per-pixel terms in a fixed order; here warps add them
// with float atomics in arbitrary order, and a pixel whose threshold decision
// (α vs 1/255, T vs 1e-4) flips between the backends moves a few terms, so
// the bound is 1e-3 of the gradient norm (an indexing error gives ~1).
TEST(cuda_splat_backward_matches_cpu) {
  for (int mode = 0; mode < 2; ++mode)
    for (int deg : {0, 1, 3}) {
      th::Rng rng(71 + 10 * mode + deg);
      const Scene s = random_scene(rng, 800, deg, 16, -3.0, -1.5, 1.0);
      Both b;
      make_both(s, &b);
      const int W = 71, H = 53;
      const std::vector<SplatCamera> kc = to_f32({look_at(0.3, -0.4, -3.0, W, H, 0.9 * W), look_at(-2.5, 0.6, -1.8, W, H, 1.1 * W)});
      const size_t P = size_t(W) * H * kc.size();
      std::vector<float> wr(3 * P), wa(P), wd(P);
      for (float& v : wr) v = rng.uniform();
      for (float& v : wa) v = rng.uniform();
      for (float& v : wd) v = 0.3f * rng.uniform();
      const SplatMode m = mode ? SplatMode::kAntialiased : SplatMode::kClassic;
      const Grads c = backward_cpu(b, kc, m, wr, wa, wd);
      const Grads g = backward_gpu(b, kc, m, wr, wa, wd);
      compare_grads(g, c, 1e-3, mode ? "aa" : "classic");
      std::printf("    deg %d %s: |dmeans| rel err %.2e\n", deg, mode ? "aa" : "classic",
                  th::rel_error(g.m.data(), std::vector<double>(c.m.begin(), c.m.end()).data(), c.m.size()));
    }
}

// Smooth scenes (the CPU suite's set-up): against float64 central finite
// differences of the reference renderer, tolerance 1e-3 as on the CPU.
TEST(cuda_splat_backward_matches_float64_finite_differences) {
  for (int mode = 0; mode < 2; ++mode)
    for (int deg = 0; deg <= 3; ++deg) {
      th::Rng rng(81 + 10 * mode + deg);
      Scene s = random_scene(rng, 5, deg, (deg + 1) * (deg + 1), 0.7, 1.0, 0.25);
      for (double& l : s.logit) l = rng.uniform(-1.2f, 0.0f);
      const int W = 40, H = 30;
      const std::vector<Cam> cams = {look_at(0.2, -0.3, -3.5, W, H, 30), look_at(-2.6, 0.4, -2.4, W, H, 34)};
      const std::vector<SplatCamera> kc = to_f32(cams);
      const size_t P = size_t(W) * H * cams.size();
      std::vector<float> wr(3 * P), wa(P), wd(P);
      for (float& v : wr) v = rng.uniform();
      for (float& v : wa) v = rng.uniform();
      for (float& v : wd) v = 0.3f * rng.uniform();
      Both b;
      make_both(s, &b);
      const SplatMode m = mode ? SplatMode::kAntialiased : SplatMode::kClassic;
      const Grads g = backward_gpu(b, kc, m, wr, wa, wd);
      const bool aa = mode == 1;
      auto fd = [&](std::vector<double> Scene::*field, const std::vector<float>& got, const char* name) {
        std::vector<double> num(got.size());
        for (size_t j = 0; j < got.size(); ++j) {
          Scene sp = s, sm = s;
          const double h = 1e-5;
          (sp.*field)[j] += h;
          (sm.*field)[j] -= h;
          num[j] = (ref_loss(sp, cams, aa, wr, wa, wd) - ref_loss(sm, cams, aa, wr, wa, wd)) / (2 * h);
        }
        CHECK_REL_MSG(got.data(), num.data(), num.size(), 1e-3) << " d" << name << " deg " << deg << (aa ? " aa" : "");
      };
      fd(&Scene::means, g.m, "means");
      fd(&Scene::ls, g.ls, "logScales");
      fd(&Scene::rot, g.q, "rotations");
      fd(&Scene::logit, g.o, "opacityLogits");
      fd(&Scene::sh, g.sh, "sh");
    }
}

TEST(cuda_splat_empty_scene_gives_background) {
  Both b;
  Scene s;
  s.n = 0; s.deg = 0; s.K = 1;
  make_both(s, &b);
  const std::vector<SplatCamera> kc = to_f32({look_at(0, 0, -3, 19, 17, 20), look_at(1, 0, -3, 19, 17, 20)});
  const Rendered r = render_gpu(b, kc, SplatMode::kClassic, kBgF);
  bool ok = true;
  for (size_t i = 0; i < r.alpha.size(); ++i) {
    ok = ok && r.alpha[i] == 0.f && r.depth[i] == 0.f && r.count[i] == 0;
    for (int k = 0; k < 3; ++k) ok = ok && r.rgb[3 * i + k] == kBgF[k];
  }
  CHECK(ok) << "an empty scene must render the background";
}

TEST(cuda_splat_rejects_bad_arguments) {
  Both b;
  th::Rng rng(91);
  make_both(random_scene(rng, 2, 0, 1, -2, -1, 0.5), &b);
  ct::DevBuf out(3 * 16 * 4), al(16 * 4);
  SplatCamera cam;
  cam.fx = cam.fy = 4; cam.cx = cam.cy = 2; cam.width = cam.height = 4;
  cam.view[11] = 3;
  SplatRenderArgs a;
  a.scene = b.dev;
  a.cameras = &cam;
  a.num_cameras = 1;
  a.rgb = ct::view(out, DType::kF32, {1, 4, 4, 3});
  auto code = [](const SplatRenderArgs& x) { return ct::code_of(ct::api().splat_render, &x); };
  CHECK(code(a) == 0);
  SplatRenderArgs c = a;
  c.scene.sh_degree = 1;  // needs K >= 4
  CHECK(code(c) == int(Code::kShape)) << code(c);
  c = a;
  c.alpha = ct::view(al, DType::kF32, {1, 4, 3});
  CHECK(code(c) == int(Code::kShape)) << code(c);
  c = a;
  c.alpha = ct::view(out, DType::kF32, {1, 4, 4});
  CHECK(code(c) == int(Code::kAlias)) << code(c);
  SplatCamera bad = cam;
  bad.view[0] = 2;
  c = a;
  c.cameras = &bad;
  CHECK(code(c) == int(Code::kInvalidArgument)) << code(c);
  c = a;
  c.scene.rotations.dtype = DType::kF16;
  CHECK(code(c) == int(Code::kDtype)) << code(c);
  c = a;
  c.scene.means = b.host.means;  // a host tensor among device ones
  CHECK(code(c) == int(Code::kDevice)) << code(c);
  c = a;
  c.num_cameras = 0;
  CHECK(code(c) == int(Code::kInvalidArgument)) << code(c);
}
