// Float64 brute-force 3DGS renderer shared by the CPU and CUDA splat tests:
// every pixel walks every visible Gaussian in (float32 depth, index) order
// inside its 16×16 tile rectangle, with the reference constants (0.3
// dilation, 1/255, 0.99 clamp, 1e-4 transmittance) and the invalid-input rules
// of native/include/tessera/splat.h. Written from the spec, not from the kernels.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace splat_ref {

struct Scene {
  int n = 0, deg = 0, K = 1;
  std::vector<double> means, ls, rot, logit, sh;  // float64 master copy
};
struct Cam {
  double fx, fy, cx, cy;
  int W, H;
  double view[16];
};
struct Image {
  std::vector<double> rgb, alpha, depth;
  std::vector<int> count;
};

using M3 = std::array<double, 9>;
inline M3 mul(const M3& a, const M3& b) {
  M3 c{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) c[3 * i + j] += a[3 * i + k] * b[3 * k + j];
  return c;
}
inline M3 tr(const M3& a) { return {a[0], a[3], a[6], a[1], a[4], a[7], a[2], a[5], a[8]}; }

inline double sh_eval(int deg, const double* c /* [K,3] */, int ch, double x, double y, double z) {
  const double C0 = 0.28209479177387814, C1 = 0.4886025119029199;
  const double C2[] = {1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396};
  const double C3[] = {-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
                       -0.4570457994644658, 1.445305721320277, -0.5900435899266435};
  const double xx = x * x, yy = y * y, zz = z * z;
  const double Y[16] = {C0, -C1 * y, C1 * z, -C1 * x, C2[0] * x * y, C2[1] * y * z, C2[2] * (2 * zz - xx - yy),
                        C2[3] * x * z, C2[4] * (xx - yy), C3[0] * y * (3 * xx - yy), C3[1] * x * y * z,
                        C3[2] * y * (4 * zz - xx - yy), C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
                        C3[4] * x * (4 * zz - xx - yy), C3[5] * z * (xx - yy), C3[6] * x * (xx - 3 * yy)};
  double v = 0;
  for (int k = 0; k < (deg + 1) * (deg + 1); ++k) v += Y[k] * c[3 * k + ch];
  return v;
}

struct RefSplat {
  double mx, my, A, B, C, o, rgb[3], z;
  int rect[4];
  int idx;
};

inline Image ref_render(const Scene& s, const Cam& cam, bool aa, const double bg[3]) {
  const M3 W = {cam.view[0], cam.view[1], cam.view[2], cam.view[4], cam.view[5], cam.view[6], cam.view[8], cam.view[9], cam.view[10]};
  const double t[3] = {cam.view[3], cam.view[7], cam.view[11]};
  double campos[3];
  for (int k = 0; k < 3; ++k) campos[k] = -(W[k] * t[0] + W[3 + k] * t[1] + W[6 + k] * t[2]);
  const int gx = (cam.W + 15) / 16, gy = (cam.H + 15) / 16;
  std::vector<RefSplat> vis;
  for (int i = 0; i < s.n; ++i) {
    const double* m = &s.means[3 * i];
    const double* q = &s.rot[4 * i];
    bool ok = std::isfinite(s.logit[i]);
    for (int k = 0; k < 3; ++k) ok = ok && std::isfinite(m[k]) && std::isfinite(s.ls[3 * i + k]);
    for (int k = 0; k < 4; ++k) ok = ok && std::isfinite(q[k]);
    for (int k = 0; k < 3 * (s.deg + 1) * (s.deg + 1); ++k) ok = ok && std::isfinite(s.sh[3 * s.K * i + k]);
    const double qn = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    if (!ok || qn < 1e-12) continue;
    const double w = q[0] / qn, x = q[1] / qn, y = q[2] / qn, z = q[3] / qn;
    const M3 R = {1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                  2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                  2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)};
    const double sx = std::exp(s.ls[3 * i]), sy = std::exp(s.ls[3 * i + 1]), sz = std::exp(s.ls[3 * i + 2]);
    const M3 S = {sx * sx, 0, 0, 0, sy * sy, 0, 0, 0, sz * sz};
    const M3 Sigma = mul(mul(R, S), tr(R));
    double p[3];
    for (int r = 0; r < 3; ++r) p[r] = W[3 * r] * m[0] + W[3 * r + 1] * m[1] + W[3 * r + 2] * m[2] + t[r];
    if (p[2] <= 0.2) continue;
    const double tanx = 0.5 * cam.W / cam.fx, tany = 0.5 * cam.H / cam.fy;
    const double ux = std::clamp(p[0] / p[2], -(cam.cx / cam.fx + 0.3 * tanx), (cam.W - cam.cx) / cam.fx + 0.3 * tanx);
    const double uy = std::clamp(p[1] / p[2], -(cam.cy / cam.fy + 0.3 * tany), (cam.H - cam.cy) / cam.fy + 0.3 * tany);
    const M3 J = {cam.fx / p[2], 0, -cam.fx * ux / p[2], 0, cam.fy / p[2], -cam.fy * uy / p[2], 0, 0, 0};
    const M3 cov2 = mul(mul(mul(J, W), Sigma), tr(mul(J, W)));
    const double a0 = cov2[0], b0 = cov2[1], c0 = cov2[4];
    const double a = a0 + 0.3, b = b0, c = c0 + 0.3, det = a * c - b * b;
    if (!(det > 0)) continue;
    RefSplat g;
    g.A = c / det; g.B = -b / det; g.C = a / det;
    g.o = 1 / (1 + std::exp(-s.logit[i]));
    if (aa) g.o *= std::sqrt(std::max(0.000025, (a0 * c0 - b0 * b0) / det));
    g.mx = cam.fx * p[0] / p[2] + cam.cx;
    g.my = cam.fy * p[1] / p[2] + cam.cy;
    const double mid = 0.5 * (a + c);
    const double radius = std::ceil(3 * std::sqrt(mid + std::sqrt(std::max(0.1, mid * mid - det))));
    const double px = g.mx - 0.5, py = g.my - 0.5;  // the reference's integer-centred pixels
    auto tl = [](double v, int lim) { return static_cast<int>(std::clamp(std::floor(v / 16), 0.0, double(lim))); };
    g.rect[0] = tl(px - radius, gx); g.rect[1] = tl(px + radius + 15, gx);
    g.rect[2] = tl(py - radius, gy); g.rect[3] = tl(py + radius + 15, gy);
    if (g.rect[0] >= g.rect[1] || g.rect[2] >= g.rect[3]) continue;
    double d[3] = {m[0] - campos[0], m[1] - campos[1], m[2] - campos[2]};
    const double len = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    for (double& v : d) v /= len;
    for (int ch = 0; ch < 3; ++ch) g.rgb[ch] = std::max(0.0, sh_eval(s.deg, &s.sh[3 * s.K * i], ch, d[0], d[1], d[2]) + 0.5);
    g.z = p[2];
    g.idx = i;
    vis.push_back(g);
  }
  std::stable_sort(vis.begin(), vis.end(), [](const RefSplat& u, const RefSplat& v) {
    return static_cast<float>(u.z) < static_cast<float>(v.z);  // the kernel sorts float32 depths
  });
  Image img;
  const size_t P = size_t(cam.W) * cam.H;
  img.rgb.resize(3 * P); img.alpha.resize(P); img.depth.resize(P); img.count.resize(P);
  for (int y = 0; y < cam.H; ++y)
    for (int x = 0; x < cam.W; ++x) {
      double T = 1, C[3] = {0, 0, 0}, N = 0, Wsum = 0;
      int cnt = 0;
      for (const RefSplat& g : vis) {
        if (x / 16 < g.rect[0] || x / 16 >= g.rect[1] || y / 16 < g.rect[2] || y / 16 >= g.rect[3]) continue;
        const double dx = g.mx - (x + 0.5), dy = g.my - (y + 0.5);
        const double power = -0.5 * (g.A * dx * dx + g.C * dy * dy) - g.B * dx * dy;
        if (power > 0) continue;
        const double al = std::min(0.99, g.o * std::exp(power));
        if (al < 1.0 / 255) continue;
        if (T * (1 - al) < 1e-4) break;
        for (int ch = 0; ch < 3; ++ch) C[ch] += g.rgb[ch] * al * T;
        N += g.z * al * T;
        Wsum += al * T;
        T *= 1 - al;
        ++cnt;
      }
      const size_t pix = size_t(y) * cam.W + x;
      for (int ch = 0; ch < 3; ++ch) img.rgb[3 * pix + ch] = C[ch] + T * bg[ch];
      img.alpha[pix] = 1 - T;
      img.depth[pix] = Wsum > 0 ? N / Wsum : 0;
      img.count[pix] = cnt;
    }
  return img;
}

}  // namespace splat_ref
