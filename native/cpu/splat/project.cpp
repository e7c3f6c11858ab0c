// Per-Gaussian preprocessing of the 3DGS rasterizer and its backward:
// covariance from scale and rotation, and the backward of the EWA projection
// with the 0.3 dilation, antialiasing compensation and SH colour (spec §1
// steps 2-9, §1b steps 2-3). The forward projection itself runs 16 Gaussians
// at a time in project_simd.h with the same formulas as ewa() and view_dir()
// here. Derivatives are written out by hand; each block cites the forward
// formula it differentiates.
#include <algorithm>
#include <cmath>

#include "cpu/splat/splat_cpu.h"
#include "cpu/splat/splat_math.h"

namespace tessera::cpu::splat {
namespace {

constexpr float kDilation = 0.3f;        // low-pass filter added to Σ2D's diagonal
constexpr float kMinCompensation2 = 0.000025f;  // floor of det ratio (= 0.005²)

const float* row(const TensorView& t, int64_t i) { return t.ptr<float>() + i * t.strides[0]; }

// Everything the forward computes for one camera that the backward reuses.
struct Ewa {
  float x, y, z, rz;          // view-space mean and 1/z
  float ux, uy;               // x/z, y/z after the guard-band clamp
  bool clamp_x, clamp_y;
  float T[2][3];              // J·W
  float TS[2][3];             // (J·W)·Σ
  float a0, b0, c0;           // Σ2D before dilation
  float a, b, c, det;         // after dilation
};

void ewa(const CameraFrame& cam, const float* m, const float* cov, Ewa* e) {
  const float* W = cam.W;
  e->x = W[0] * m[0] + W[1] * m[1] + W[2] * m[2] + cam.t[0];
  e->y = W[3] * m[0] + W[4] * m[1] + W[5] * m[2] + cam.t[1];
  e->z = W[6] * m[0] + W[7] * m[1] + W[8] * m[2] + cam.t[2];
  e->rz = 1.f / e->z;
  const float ux = e->x * e->rz, uy = e->y * e->rz;
  e->ux = std::clamp(ux, -cam.lim_x_neg, cam.lim_x_pos);
  e->uy = std::clamp(uy, -cam.lim_y_neg, cam.lim_y_pos);
  e->clamp_x = e->ux != ux;
  e->clamp_y = e->uy != uy;
  // J = [[fx/z, 0, -fx·tx/z²], [0, fy/z, -fy·ty/z²]] with tx = ux·z (spec §1.3).
  const float J00 = cam.fx * e->rz, J02 = -cam.fx * e->ux * e->rz;
  const float J11 = cam.fy * e->rz, J12 = -cam.fy * e->uy * e->rz;
  for (int j = 0; j < 3; ++j) {
    e->T[0][j] = J00 * W[j] + J02 * W[6 + j];
    e->T[1][j] = J11 * W[3 + j] + J12 * W[6 + j];
  }
  const float S[9] = {cov[0], cov[1], cov[2], cov[1], cov[3], cov[4], cov[2], cov[4], cov[5]};
  for (int r = 0; r < 2; ++r)
    for (int j = 0; j < 3; ++j) e->TS[r][j] = e->T[r][0] * S[j] + e->T[r][1] * S[3 + j] + e->T[r][2] * S[6 + j];
  e->a0 = e->TS[0][0] * e->T[0][0] + e->TS[0][1] * e->T[0][1] + e->TS[0][2] * e->T[0][2];
  e->b0 = e->TS[0][0] * e->T[1][0] + e->TS[0][1] * e->T[1][1] + e->TS[0][2] * e->T[1][2];
  e->c0 = e->TS[1][0] * e->T[1][0] + e->TS[1][1] * e->T[1][1] + e->TS[1][2] * e->T[1][2];
  e->a = e->a0 + kDilation;
  e->b = e->b0;
  e->c = e->c0 + kDilation;
  e->det = e->a * e->c - e->b * e->b;
}

// Direction from the camera centre to the mean, and its length.
void view_dir(const CameraFrame& cam, const float* m, float d[3], float* len) {
  const float v[3] = {m[0] - cam.campos[0], m[1] - cam.campos[1], m[2] - cam.campos[2]};
  *len = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  const float inv = *len > 0 ? 1.f / *len : 0.f;
  for (int k = 0; k < 3; ++k) d[k] = v[k] * inv;
}

}  // namespace

CameraFrame make_frame(const SplatCamera& c, float near_plane) {
  CameraFrame f{};
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 3; ++k) f.W[3 * r + k] = c.view[4 * r + k];
    f.t[r] = c.view[4 * r + 3];
  }
  // Camera centre = −Wᵀ·t (W is a rotation).
  for (int k = 0; k < 3; ++k) f.campos[k] = -(f.W[k] * f.t[0] + f.W[3 + k] * f.t[1] + f.W[6 + k] * f.t[2]);
  f.fx = c.fx; f.fy = c.fy; f.cx = c.cx; f.cy = c.cy;
  // Guard band 1.3×half-FOV, asymmetric for an off-centre principal point (gsplat form).
  const float tan_x = 0.5f * c.width / c.fx, tan_y = 0.5f * c.height / c.fy;
  f.lim_x_pos = (c.width - c.cx) / c.fx + 0.3f * tan_x;
  f.lim_x_neg = c.cx / c.fx + 0.3f * tan_x;
  f.lim_y_pos = (c.height - c.cy) / c.fy + 0.3f * tan_y;
  f.lim_y_neg = c.cy / c.fy + 0.3f * tan_y;
  f.width = c.width;
  f.height = c.height;
  f.tiles_x = (c.width + kSplatTile - 1) / kSplatTile;
  f.tiles_y = (c.height + kSplatTile - 1) / kSplatTile;
  f.near_plane = near_plane;
  return f;
}

void project_gaussian_backward(const SceneRef& s, int64_t i, const CameraFrame& cam, bool antialiased,
                               const Projected& p, const ProjectedGrad& g, float* d_mean, float* d_log_scale,
                               float* d_rot, float* d_logit, float* d_sh) {
  const Prepared& P = s.prep[i];
  const float* m = row(s.scene->means, i);
  Ewa e;
  ewa(cam, m, P.cov, &e);
  // Conic (A, B, C) = (c, −b, a)/det: partial derivatives over det².
  const float id2 = 1.f / (e.det * e.det);
  const float gA = g.conic[0], gB = g.conic[1], gC = g.conic[2];
  float da = (-e.c * e.c * gA + e.b * e.c * gB - e.b * e.b * gC) * id2;
  float db = (2 * e.b * e.c * gA - (e.a * e.c + e.b * e.b) * gB + 2 * e.a * e.b * gC) * id2;
  float dc = (-e.b * e.b * gA + e.a * e.b * gB - e.a * e.a * gC) * id2;
  // Opacity o = sigmoid(l)·comp, comp = sqrt(max(floor, det0/det)) when antialiased.
  float d_sig = g.opacity;
  if (antialiased) {
    const float det0 = e.a0 * e.c0 - e.b0 * e.b0, ratio = det0 / e.det;
    const float comp = std::sqrt(std::max(kMinCompensation2, ratio));
    d_sig = g.opacity * comp;
    if (ratio > kMinCompensation2) {
      const float dr = g.opacity * P.opacity * 0.5f / comp;  // d sqrt(r) = dr/(2·sqrt r)
      // r = det0/det, det0 = a0c0 − b0², det = (a0+.3)(c0+.3) − b0²
      da += dr * (e.c0 * e.det - det0 * e.c) * id2;
      dc += dr * (e.a0 * e.det - det0 * e.a) * id2;
      db += dr * 2 * e.b0 * (det0 - e.det) * id2;
    }
  }
  d_logit[0] += d_sig * P.opacity * (1 - P.opacity);
  // Σ2D = T·Σ·Tᵀ with G2 = [[da, db/2], [db/2, dc]] (b is one symmetric entry):
  // dΣ = Tᵀ·G2·T, dT = 2·G2·T·Σ.
  float dS[9];
  for (int j = 0; j < 3; ++j)
    for (int k = 0; k < 3; ++k)
      dS[3 * j + k] = da * e.T[0][j] * e.T[0][k] + 0.5f * db * (e.T[0][j] * e.T[1][k] + e.T[1][j] * e.T[0][k]) +
                      dc * e.T[1][j] * e.T[1][k];
  float dT[2][3];
  for (int j = 0; j < 3; ++j) {
    dT[0][j] = 2 * da * e.TS[0][j] + db * e.TS[1][j];
    dT[1][j] = db * e.TS[0][j] + 2 * dc * e.TS[1][j];
  }
  // T = J·W: dJ = dT·Wᵀ on J's non-zero entries.
  const float* W = cam.W;
  const float dJ00 = dT[0][0] * W[0] + dT[0][1] * W[1] + dT[0][2] * W[2];
  const float dJ02 = dT[0][0] * W[6] + dT[0][1] * W[7] + dT[0][2] * W[8];
  const float dJ11 = dT[1][0] * W[3] + dT[1][1] * W[4] + dT[1][2] * W[5];
  const float dJ12 = dT[1][0] * W[6] + dT[1][1] * W[7] + dT[1][2] * W[8];
  const float rz = e.rz, rz2 = rz * rz;
  float dp[3] = {0, 0, 0};
  dp[2] += -cam.fx * rz2 * dJ00 - cam.fy * rz2 * dJ11;  // J00 = fx/z, J11 = fy/z
  // J02 = −fx·x/z² unclamped; −fx·L/z when x/z is clamped to L (x has no effect then).
  if (!e.clamp_x) { dp[0] += -cam.fx * rz2 * dJ02; dp[2] += 2 * cam.fx * e.x * rz2 * rz * dJ02; }
  else dp[2] += cam.fx * e.ux * rz2 * dJ02;
  if (!e.clamp_y) { dp[1] += -cam.fy * rz2 * dJ12; dp[2] += 2 * cam.fy * e.y * rz2 * rz * dJ12; }
  else dp[2] += cam.fy * e.uy * rz2 * dJ12;
  // Mean in pixels: mx = fx·x/z + cx, my = fy·y/z + cy; depth = z.
  dp[0] += g.mx * cam.fx * rz;
  dp[1] += g.my * cam.fy * rz;
  dp[2] += -(g.mx * cam.fx * e.x + g.my * cam.fy * e.y) * rz2 + g.depth;
  for (int k = 0; k < 3; ++k) d_mean[k] += W[k] * dp[0] + W[3 + k] * dp[1] + W[6 + k] * dp[2];
  // Σ = M·Mᵀ, M = R·diag(s): dM = 2·dΣ·M; ds_j = Σ_i dM_ij·R_ij; dR_ij = dM_ij·s_j.
  // q̂ and s as the forward computed them (project_simd.h; Prepared keeps only Σ).
  const float* q = row(s.scene->rotations, i);
  const float* ls = row(s.scene->log_scales, i);
  const float qq = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
  const float qinv = 1.f / std::sqrt(qq);
  const float qn[4] = {q[0] * qinv, q[1] * qinv, q[2] * qinv, q[3] * qinv};
  const float scale[3] = {std::exp(ls[0]), std::exp(ls[1]), std::exp(ls[2])};
  float R[9];
  quat_to_rot(qn, R);
  float dR[9], ds[3] = {0, 0, 0};
  for (int r = 0; r < 3; ++r)
    for (int k = 0; k < 3; ++k) {
      float dM = 0;
      for (int j = 0; j < 3; ++j) dM += 2 * dS[3 * r + j] * R[3 * j + k] * scale[k];
      ds[k] += dM * R[3 * r + k];
      dR[3 * r + k] = dM * scale[k];
    }
  for (int k = 0; k < 3; ++k) d_log_scale[k] += ds[k] * scale[k];  // s = exp(log s)
  // Through q̂ = q/|q|: dq = (dq̂ − q̂(q̂·dq̂))/|q|.
  float dqn[4];
  rot_to_quat_grad(qn, dR, dqn);
  const float qnorm = std::sqrt(qq);
  const float proj = qn[0] * dqn[0] + qn[1] * dqn[1] + qn[2] * dqn[2] + qn[3] * dqn[3];
  for (int k = 0; k < 4; ++k) d_rot[k] += (dqn[k] - qn[k] * proj) / qnorm;
  // SH colour: dsh_k = Y_k·drgb on unclamped channels; d(direction) flows to the mean.
  float d[3], len;
  view_dir(cam, m, d, &len);
  const int deg = s.scene->sh_degree, K = (deg + 1) * (deg + 1);
  float Y[16], dY[16][3];
  sh_basis(deg, d[0], d[1], d[2], Y);
  sh_basis_grad(deg, d[0], d[1], d[2], dY);
  const float* sh = row(s.scene->sh, i);
  const int64_t ks = s.scene->sh.strides[1];
  float dd[3] = {0, 0, 0};
  for (int ch = 0; ch < 3; ++ch) {
    if (p.clamped & (1 << ch)) continue;
    const float gc = g.rgb[ch];
    for (int k = 0; k < K; ++k) {
      d_sh[3 * k + ch] += Y[k] * gc;
      const float w = gc * sh[k * ks + ch];
      dd[0] += w * dY[k][0]; dd[1] += w * dY[k][1]; dd[2] += w * dY[k][2];
    }
  }
  if (len > 0) {
    const float dot = d[0] * dd[0] + d[1] * dd[1] + d[2] * dd[2];
    for (int k = 0; k < 3; ++k) d_mean[k] += (dd[k] - d[k] * dot) / len;
  }
}

}  // namespace tessera::cpu::splat
