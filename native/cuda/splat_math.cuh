// Per-Gaussian math of the CUDA 3DGS rasterizer: the same formulas, order of
// operations and rules as the CPU rasterizer (native/cpu/splat/project.cpp,
// splat_math.h), written as __host__ __device__ functions so that they run in
// the projection kernels. Spec: shared/spec/gaussian-splatting.md §1 steps
// 1-9 and §1b steps 2-3. The CPU files are the semantic reference; any rule
// changed there (culling, rectangles, clamps) must change here too.
//
// Compiled with IEEE division/sqrt and denormals (CMakeLists.txt sets
// --prec-div/--prec-sqrt/--ftz for splat_*.cu), so only FMA contraction and
// libm rounding separate these values from the CPU's.
#pragma once
#include <cstdint>

#include "tessera/splat.h"

namespace tessera::cuda::splat {

#define TS_HD __host__ __device__ __forceinline__

constexpr float kDilation = 0.3f;
constexpr float kMinCompensation2 = 0.000025f;  // 0.005²
constexpr float kMaxAlpha = 0.99f;
constexpr float kMinAlpha = 1.0f / 255.0f;
constexpr float kMinTransmittance = 1e-4f;
constexpr float kMinPower = -12.f;  // below it α < 1/255 for any opacity (as the CPU clamps exp's argument)

constexpr float kShC0 = 0.28209479177387814f;
constexpr float kShC1 = 0.4886025119029199f;
#define TS_SH_C2_0 1.0925484305920792f
#define TS_SH_C2_1 -1.0925484305920792f
#define TS_SH_C2_2 0.31539156525252005f
#define TS_SH_C2_3 -1.0925484305920792f
#define TS_SH_C2_4 0.5462742152960396f
#define TS_SH_C3_0 -0.5900435899266435f
#define TS_SH_C3_1 2.890611442640554f
#define TS_SH_C3_2 -0.4570457994644658f
#define TS_SH_C3_3 0.3731763325901154f
#define TS_SH_C3_4 -0.4570457994644658f
#define TS_SH_C3_5 1.445305721320277f
#define TS_SH_C3_6 -0.5900435899266435f

enum : int32_t { kProjVisible = 0, kProjNear = 1, kProjOutside = 2, kProjInvalid = 3 };

// Camera-independent values of one Gaussian (CPU: splat::Prepared).
struct Prepared {
  float cov[6];    // Σ3D: xx, xy, xz, yy, yz, zz
  float qn[4];     // normalised quaternion
  float scale[3];  // exp(log-scale)
  float opacity;   // sigmoid(logit)
  int32_t valid;
};

// CPU: splat::CameraFrame.
struct Frame {
  float W[9], t[3], campos[3];
  float fx, fy, cx, cy;
  float lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg;
  int32_t width, height, tiles_x, tiles_y;
  float near_plane;
};

// One Gaussian in one camera (CPU: splat::Projected without the row-skip
// constants, which only speed up the CPU's SIMD rows).
struct Projected {
  float mx, my;
  float conic[3];
  float opacity;
  float rgb[3];
  float depth;
  int32_t rect[4];  // tiles [x0, x1) × [y0, y1)
  int32_t clamped;  // bit c: rgb[c] was clamped at 0
};

struct ProjGrad {  // same order as the CPU's ProjectedGrad (10 floats)
  float mx, my, conic[3], opacity, rgb[3], depth;
};

// Strided float32 scene rows (last dimension contiguous).
struct SceneDev {
  const float *means, *log_scales, *rot, *logit, *sh;
  int64_t s_means, s_ls, s_rot, s_logit, s_sh0, s_sh1;
  int32_t degree;
  int64_t n;
};

inline Frame make_frame(const SplatCamera& c, float near_plane) {
  Frame f{};
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 3; ++k) f.W[3 * r + k] = c.view[4 * r + k];
    f.t[r] = c.view[4 * r + 3];
  }
  for (int k = 0; k < 3; ++k) f.campos[k] = -(f.W[k] * f.t[0] + f.W[3 + k] * f.t[1] + f.W[6 + k] * f.t[2]);
  f.fx = c.fx; f.fy = c.fy; f.cx = c.cx; f.cy = c.cy;
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

TS_HD float fclamp(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }
TS_HD float fmaxf_(float a, float b) { return a > b ? a : b; }
TS_HD bool finite(float v) { return isfinite(v); }

TS_HD void sh_basis(int degree, float x, float y, float z, float* Y) {
  Y[0] = kShC0;
  if (degree < 1) return;
  Y[1] = -kShC1 * y;
  Y[2] = kShC1 * z;
  Y[3] = -kShC1 * x;
  if (degree < 2) return;
  const float xx = x * x, yy = y * y, zz = z * z;
  Y[4] = TS_SH_C2_0 * x * y;
  Y[5] = TS_SH_C2_1 * y * z;
  Y[6] = TS_SH_C2_2 * (2 * zz - xx - yy);
  Y[7] = TS_SH_C2_3 * x * z;
  Y[8] = TS_SH_C2_4 * (xx - yy);
  if (degree < 3) return;
  Y[9] = TS_SH_C3_0 * y * (3 * xx - yy);
  Y[10] = TS_SH_C3_1 * x * y * z;
  Y[11] = TS_SH_C3_2 * y * (4 * zz - xx - yy);
  Y[12] = TS_SH_C3_3 * z * (2 * zz - 3 * xx - 3 * yy);
  Y[13] = TS_SH_C3_4 * x * (4 * zz - xx - yy);
  Y[14] = TS_SH_C3_5 * z * (xx - yy);
  Y[15] = TS_SH_C3_6 * x * (xx - 3 * yy);
}

// ∂Y_k/∂(x, y, z) of the polynomials above.
TS_HD void sh_basis_grad(int degree, float x, float y, float z, float (*dY)[3]) {
#define TS_SET(k, gx, gy, gz) (dY[k][0] = (gx), dY[k][1] = (gy), dY[k][2] = (gz))
  TS_SET(0, 0.f, 0.f, 0.f);
  if (degree < 1) return;
  TS_SET(1, 0.f, -kShC1, 0.f);
  TS_SET(2, 0.f, 0.f, kShC1);
  TS_SET(3, -kShC1, 0.f, 0.f);
  if (degree < 2) return;
  const float xx = x * x, yy = y * y, zz = z * z;
  TS_SET(4, TS_SH_C2_0 * y, TS_SH_C2_0 * x, 0.f);
  TS_SET(5, 0.f, TS_SH_C2_1 * z, TS_SH_C2_1 * y);
  TS_SET(6, -2 * TS_SH_C2_2 * x, -2 * TS_SH_C2_2 * y, 4 * TS_SH_C2_2 * z);
  TS_SET(7, TS_SH_C2_3 * z, 0.f, TS_SH_C2_3 * x);
  TS_SET(8, 2 * TS_SH_C2_4 * x, -2 * TS_SH_C2_4 * y, 0.f);
  if (degree < 3) return;
  TS_SET(9, TS_SH_C3_0 * 6 * x * y, TS_SH_C3_0 * (3 * xx - 3 * yy), 0.f);
  TS_SET(10, TS_SH_C3_1 * y * z, TS_SH_C3_1 * x * z, TS_SH_C3_1 * x * y);
  TS_SET(11, TS_SH_C3_2 * -2 * x * y, TS_SH_C3_2 * (4 * zz - xx - 3 * yy), TS_SH_C3_2 * 8 * y * z);
  TS_SET(12, TS_SH_C3_3 * -6 * x * z, TS_SH_C3_3 * -6 * y * z, TS_SH_C3_3 * (6 * zz - 3 * xx - 3 * yy));
  TS_SET(13, TS_SH_C3_4 * (4 * zz - 3 * xx - yy), TS_SH_C3_4 * -2 * x * y, TS_SH_C3_4 * 8 * x * z);
  TS_SET(14, TS_SH_C3_5 * 2 * x * z, TS_SH_C3_5 * -2 * y * z, TS_SH_C3_5 * (xx - yy));
  TS_SET(15, TS_SH_C3_6 * (3 * xx - 3 * yy), TS_SH_C3_6 * -6 * x * y, 0.f);
#undef TS_SET
}

TS_HD void quat_to_rot(const float* q, float R[9]) {
  const float w = q[0], x = q[1], y = q[2], z = q[3];
  R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z);     R[2] = 2 * (x * z + w * y);
  R[3] = 2 * (x * y + w * z);     R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
  R[6] = 2 * (x * z - w * y);     R[7] = 2 * (y * z + w * x);     R[8] = 1 - 2 * (x * x + y * y);
}

TS_HD void rot_to_quat_grad(const float* q, const float dR[9], float dq[4]) {
  const float w = q[0], x = q[1], y = q[2], z = q[3];
  dq[0] = 2 * (-z * dR[1] + y * dR[2] + z * dR[3] - x * dR[5] - y * dR[6] + x * dR[7]);
  dq[1] = 2 * (y * dR[1] + z * dR[2] + y * dR[3] - 2 * x * dR[4] - w * dR[5] + z * dR[6] + w * dR[7] - 2 * x * dR[8]);
  dq[2] = 2 * (-2 * y * dR[0] + x * dR[1] + w * dR[2] + x * dR[3] + z * dR[5] - w * dR[6] + z * dR[7] - 2 * y * dR[8]);
  dq[3] = 2 * (-2 * z * dR[0] - w * dR[1] + x * dR[2] + w * dR[3] - 2 * z * dR[4] + y * dR[5] + x * dR[6] + y * dR[7]);
}

// CPU: prepare_gaussians (one Gaussian). exp/sigmoid in double, rounded to
// float (the CPU's float std::exp is correctly rounded in practice).
TS_HD void prepare_one(const SceneDev& s, int64_t i, Prepared* out) {
  Prepared P{};
  const float* m = s.means + i * s.s_means;
  const float* ls = s.log_scales + i * s.s_ls;
  const float* q = s.rot + i * s.s_rot;
  const float logit = s.logit[i * s.s_logit];
  const float* sh = s.sh + i * s.s_sh0;
  const int K = (s.degree + 1) * (s.degree + 1);
  bool ok = finite(logit);
  for (int k = 0; k < 3; ++k) ok = ok && finite(m[k]) && finite(ls[k]);
  for (int k = 0; k < 4; ++k) ok = ok && finite(q[k]);
  for (int k = 0; ok && k < K; ++k) ok = finite(sh[k * s.s_sh1]) && finite(sh[k * s.s_sh1 + 1]) && finite(sh[k * s.s_sh1 + 2]);
  const float qq = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
  ok = ok && qq > 1e-24f && finite(qq);
  if (ok) {
    const float inv = 1.f / sqrtf(qq);
    for (int k = 0; k < 4; ++k) P.qn[k] = q[k] * inv;
    float R[9], M[9];
    quat_to_rot(P.qn, R);
    for (int k = 0; k < 3; ++k) P.scale[k] = static_cast<float>(exp(static_cast<double>(ls[k])));
    for (int r = 0; r < 3; ++r)
      for (int k = 0; k < 3; ++k) M[3 * r + k] = R[3 * r + k] * P.scale[k];
#define TS_DOT(r0, r1) (M[3 * r0] * M[3 * r1] + M[3 * r0 + 1] * M[3 * r1 + 1] + M[3 * r0 + 2] * M[3 * r1 + 2])
    P.cov[0] = TS_DOT(0, 0); P.cov[1] = TS_DOT(0, 1); P.cov[2] = TS_DOT(0, 2);
    P.cov[3] = TS_DOT(1, 1); P.cov[4] = TS_DOT(1, 2); P.cov[5] = TS_DOT(2, 2);
#undef TS_DOT
    for (int k = 0; k < 6; ++k) ok = ok && finite(P.cov[k]);
    P.opacity = static_cast<float>(1.0 / (1.0 + exp(-static_cast<double>(logit))));
  }
  P.valid = ok ? 1 : 0;
  *out = P;
}

struct Ewa {
  float x, y, z, rz, ux, uy;
  bool clamp_x, clamp_y;
  float T[2][3], TS[2][3];
  float a0, b0, c0, a, b, c, det;
};

TS_HD void ewa(const Frame& cam, const float* m, const float* cov, Ewa* e) {
  const float* W = cam.W;
  e->x = W[0] * m[0] + W[1] * m[1] + W[2] * m[2] + cam.t[0];
  e->y = W[3] * m[0] + W[4] * m[1] + W[5] * m[2] + cam.t[1];
  e->z = W[6] * m[0] + W[7] * m[1] + W[8] * m[2] + cam.t[2];
  e->rz = 1.f / e->z;
  const float ux = e->x * e->rz, uy = e->y * e->rz;
  e->ux = fclamp(ux, -cam.lim_x_neg, cam.lim_x_pos);
  e->uy = fclamp(uy, -cam.lim_y_neg, cam.lim_y_pos);
  e->clamp_x = e->ux != ux;
  e->clamp_y = e->uy != uy;
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

TS_HD void view_dir(const Frame& cam, const float* m, float d[3], float* len) {
  const float v[3] = {m[0] - cam.campos[0], m[1] - cam.campos[1], m[2] - cam.campos[2]};
  *len = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  const float inv = *len > 0 ? 1.f / *len : 0.f;
  for (int k = 0; k < 3; ++k) d[k] = v[k] * inv;
}

TS_HD int32_t tile_of(float v, int lim) { return static_cast<int32_t>(fclamp(floorf(v / kSplatTile), 0.f, float(lim))); }

// CPU: project_gaussian. Returns a kProj* code; fills *out when visible.
TS_HD int32_t project_one(const SceneDev& s, const Prepared& P, int64_t i, const Frame& cam, bool antialiased,
                          Projected* out) {
  if (!P.valid) return kProjInvalid;
  const float* m = s.means + i * s.s_means;
  Ewa e;
  ewa(cam, m, P.cov, &e);
  if (!(e.z > cam.near_plane)) return kProjNear;
  if (!(e.det > 0) || !finite(e.det)) return kProjOutside;
  const float id = 1.f / e.det;
  out->conic[0] = e.c * id;
  out->conic[1] = -e.b * id;
  out->conic[2] = e.a * id;
  float opacity = P.opacity;
  if (antialiased) {
    const float det0 = e.a0 * e.c0 - e.b0 * e.b0;
    opacity *= sqrtf(fmaxf_(kMinCompensation2, det0 * id));
  }
  out->opacity = opacity;
  out->mx = cam.fx * e.x * e.rz + cam.cx;
  out->my = cam.fy * e.y * e.rz + cam.cy;
  out->depth = e.z;
  const float mid = 0.5f * (e.a + e.c);
  const float lambda = mid + sqrtf(fmaxf_(0.1f, mid * mid - e.det));
  const float radius = ceilf(3.f * sqrtf(lambda));
  const float px = out->mx - 0.5f, py = out->my - 0.5f;
  if (!finite(radius) || !finite(px) || !finite(py)) return kProjOutside;
  out->rect[0] = tile_of(px - radius, cam.tiles_x);
  out->rect[1] = tile_of(px + radius + kSplatTile - 1, cam.tiles_x);
  out->rect[2] = tile_of(py - radius, cam.tiles_y);
  out->rect[3] = tile_of(py + radius + kSplatTile - 1, cam.tiles_y);
  // Only tiles where α can reach 1/255 (bounding box of o·e^power >= 1/255),
  // with the CPU's margin; the blend skips smaller α, so no pixel changes.
  if (opacity * 255.f < 0.999f) return kProjOutside;
  const float q = 2.f * static_cast<float>(log(static_cast<double>(fmaxf_(opacity * 255.f, 1.f))));
  const float ex = sqrtf(q * e.a) * 1.01f + 0.05f, ey = sqrtf(q * e.c) * 1.01f + 0.05f;
  {
    const int32_t lo = tile_of(px - ex, cam.tiles_x);
    const int32_t hi = static_cast<int32_t>(fclamp(floorf((px + ex) / kSplatTile) + 1, 0.f, float(cam.tiles_x)));
    out->rect[0] = out->rect[0] > lo ? out->rect[0] : lo;
    out->rect[1] = out->rect[1] < hi ? out->rect[1] : hi;
  }
  {
    const int32_t lo = tile_of(py - ey, cam.tiles_y);
    const int32_t hi = static_cast<int32_t>(fclamp(floorf((py + ey) / kSplatTile) + 1, 0.f, float(cam.tiles_y)));
    out->rect[2] = out->rect[2] > lo ? out->rect[2] : lo;
    out->rect[3] = out->rect[3] < hi ? out->rect[3] : hi;
  }
  if (out->rect[0] >= out->rect[1] || out->rect[2] >= out->rect[3]) return kProjOutside;
  float d[3], len;
  view_dir(cam, m, d, &len);
  float Y[16];
  sh_basis(s.degree, d[0], d[1], d[2], Y);
  const int K = (s.degree + 1) * (s.degree + 1);
  const float* sh = s.sh + i * s.s_sh0;
  out->clamped = 0;
  for (int ch = 0; ch < 3; ++ch) {
    float v = 0.5f;
    for (int k = 0; k < K; ++k) v += Y[k] * sh[k * s.s_sh1 + ch];
    if (v < 0) out->clamped |= 1 << ch;
    out->rgb[ch] = fmaxf_(v, 0.f);
  }
  return kProjVisible;
}

// CPU: project_gaussian_backward. Adds into this Gaussian's gradient rows.
TS_HD void project_backward_one(const SceneDev& s, const Prepared& P, int64_t i, const Frame& cam, bool antialiased,
                                const Projected& p, const ProjGrad& g, float* d_mean, float* d_log_scale,
                                float* d_rot, float* d_logit, float* d_sh) {
  const float* m = s.means + i * s.s_means;
  Ewa e;
  ewa(cam, m, P.cov, &e);
  const float id2 = 1.f / (e.det * e.det);
  const float gA = g.conic[0], gB = g.conic[1], gC = g.conic[2];
  float da = (-e.c * e.c * gA + e.b * e.c * gB - e.b * e.b * gC) * id2;
  float db = (2 * e.b * e.c * gA - (e.a * e.c + e.b * e.b) * gB + 2 * e.a * e.b * gC) * id2;
  float dc = (-e.b * e.b * gA + e.a * e.b * gB - e.a * e.a * gC) * id2;
  float d_sig = g.opacity;
  if (antialiased) {
    const float det0 = e.a0 * e.c0 - e.b0 * e.b0, ratio = det0 / e.det;
    const float comp = sqrtf(fmaxf_(kMinCompensation2, ratio));
    d_sig = g.opacity * comp;
    if (ratio > kMinCompensation2) {
      const float dr = g.opacity * P.opacity * 0.5f / comp;
      da += dr * (e.c0 * e.det - det0 * e.c) * id2;
      dc += dr * (e.a0 * e.det - det0 * e.a) * id2;
      db += dr * 2 * e.b0 * (det0 - e.det) * id2;
    }
  }
  d_logit[0] += d_sig * P.opacity * (1 - P.opacity);
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
  const float* W = cam.W;
  const float dJ00 = dT[0][0] * W[0] + dT[0][1] * W[1] + dT[0][2] * W[2];
  const float dJ02 = dT[0][0] * W[6] + dT[0][1] * W[7] + dT[0][2] * W[8];
  const float dJ11 = dT[1][0] * W[3] + dT[1][1] * W[4] + dT[1][2] * W[5];
  const float dJ12 = dT[1][0] * W[6] + dT[1][1] * W[7] + dT[1][2] * W[8];
  const float rz = e.rz, rz2 = rz * rz;
  float dp[3] = {0, 0, 0};
  dp[2] += -cam.fx * rz2 * dJ00 - cam.fy * rz2 * dJ11;
  if (!e.clamp_x) { dp[0] += -cam.fx * rz2 * dJ02; dp[2] += 2 * cam.fx * e.x * rz2 * rz * dJ02; }
  else dp[2] += cam.fx * e.ux * rz2 * dJ02;
  if (!e.clamp_y) { dp[1] += -cam.fy * rz2 * dJ12; dp[2] += 2 * cam.fy * e.y * rz2 * rz * dJ12; }
  else dp[2] += cam.fy * e.uy * rz2 * dJ12;
  dp[0] += g.mx * cam.fx * rz;
  dp[1] += g.my * cam.fy * rz;
  dp[2] += -(g.mx * cam.fx * e.x + g.my * cam.fy * e.y) * rz2 + g.depth;
  for (int k = 0; k < 3; ++k) d_mean[k] += W[k] * dp[0] + W[3 + k] * dp[1] + W[6 + k] * dp[2];
  float R[9];
  quat_to_rot(P.qn, R);
  float dR[9], ds[3] = {0, 0, 0};
  for (int r = 0; r < 3; ++r)
    for (int k = 0; k < 3; ++k) {
      float dM = 0;
      for (int j = 0; j < 3; ++j) dM += 2 * dS[3 * r + j] * R[3 * j + k] * P.scale[k];
      ds[k] += dM * R[3 * r + k];
      dR[3 * r + k] = dM * P.scale[k];
    }
  for (int k = 0; k < 3; ++k) d_log_scale[k] += ds[k] * P.scale[k];
  float dqn[4];
  rot_to_quat_grad(P.qn, dR, dqn);
  const float* q = s.rot + i * s.s_rot;
  const float qnorm = sqrtf(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  const float proj = P.qn[0] * dqn[0] + P.qn[1] * dqn[1] + P.qn[2] * dqn[2] + P.qn[3] * dqn[3];
  for (int k = 0; k < 4; ++k) d_rot[k] += (dqn[k] - P.qn[k] * proj) / qnorm;
  float d[3], len;
  view_dir(cam, m, d, &len);
  const int deg = s.degree, K = (deg + 1) * (deg + 1);
  float Y[16], dY[16][3];
  sh_basis(deg, d[0], d[1], d[2], Y);
  sh_basis_grad(deg, d[0], d[1], d[2], dY);
  const float* sh = s.sh + i * s.s_sh0;
  float dd[3] = {0, 0, 0};
  for (int ch = 0; ch < 3; ++ch) {
    if (p.clamped & (1 << ch)) continue;
    const float gc = g.rgb[ch];
    for (int k = 0; k < K; ++k) {
      d_sh[3 * k + ch] += Y[k] * gc;
      const float w = gc * sh[k * s.s_sh1 + ch];
      dd[0] += w * dY[k][0]; dd[1] += w * dY[k][1]; dd[2] += w * dY[k][2];
    }
  }
  if (len > 0) {
    const float dot = d[0] * dd[0] + d[1] * dd[1] + d[2] * dd[2];
    for (int k = 0; k < 3; ++k) d_mean[k] += (dd[k] - d[k] * dot) / len;
  }
}

// e^x for x in [kMinPower, 0], the CPU blend's polynomial (raster_tile.h
// vexp): x = n·ln2 + r, degree-7 Taylor in r, scaled by 2^n.
TS_HD float exp_blend(float x) {
  x = x < kMinPower ? kMinPower : x;
  const float t = x * 1.44269504088896341f + 12582912.f;
  const float n = t - 12582912.f;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.f / 5040;
  p = p * r + 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
#ifdef __CUDA_ARCH__
  return p * __int_as_float(bits);
#else
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return p * f;
#endif
}

#undef TS_HD

}  // namespace tessera::cuda::splat
