// Per-Gaussian math of the 3DGS rasterizer (spec §1 steps 2-9 and §1b steps
// 2-3): rotation from a quaternion, the spherical-harmonics colour basis and
// their derivatives. Scalar float32; the per-pixel work is in raster_tile.h.
#pragma once
#include <cmath>

namespace tessera::cpu::splat {

// SH constants of the reference (spec §1 table).
constexpr float kShC0 = 0.28209479177387814f;
constexpr float kShC1 = 0.4886025119029199f;
constexpr float kShC2[5] = {1.0925484305920792f, -1.0925484305920792f, 0.31539156525252005f,
                            -1.0925484305920792f, 0.5462742152960396f};
constexpr float kShC3[7] = {-0.5900435899266435f, 2.890611442640554f, -0.4570457994644658f,
                            0.3731763325901154f, -0.4570457994644658f, 1.445305721320277f,
                            -0.5900435899266435f};

// The 16 basis values Y_k(d) for a unit direction d = (x, y, z); only the
// first (degree+1)² are written.
inline void sh_basis(int degree, float x, float y, float z, float* Y) {
  Y[0] = kShC0;
  if (degree < 1) return;
  Y[1] = -kShC1 * y;
  Y[2] = kShC1 * z;
  Y[3] = -kShC1 * x;
  if (degree < 2) return;
  const float xx = x * x, yy = y * y, zz = z * z;
  Y[4] = kShC2[0] * x * y;
  Y[5] = kShC2[1] * y * z;
  Y[6] = kShC2[2] * (2 * zz - xx - yy);
  Y[7] = kShC2[3] * x * z;
  Y[8] = kShC2[4] * (xx - yy);
  if (degree < 3) return;
  Y[9] = kShC3[0] * y * (3 * xx - yy);
  Y[10] = kShC3[1] * x * y * z;
  Y[11] = kShC3[2] * y * (4 * zz - xx - yy);
  Y[12] = kShC3[3] * z * (2 * zz - 3 * xx - 3 * yy);
  Y[13] = kShC3[4] * x * (4 * zz - xx - yy);
  Y[14] = kShC3[5] * z * (xx - yy);
  Y[15] = kShC3[6] * x * (xx - 3 * yy);
}

// ∂Y_k/∂(x, y, z) of the polynomials above (not yet projected onto the
// sphere; the caller chains through d = v/|v|). dY[k] = {∂x, ∂y, ∂z}.
inline void sh_basis_grad(int degree, float x, float y, float z, float (*dY)[3]) {
  auto set = [&](int k, float gx, float gy, float gz) { dY[k][0] = gx; dY[k][1] = gy; dY[k][2] = gz; };
  set(0, 0, 0, 0);
  if (degree < 1) return;
  set(1, 0, -kShC1, 0);
  set(2, 0, 0, kShC1);
  set(3, -kShC1, 0, 0);
  if (degree < 2) return;
  const float xx = x * x, yy = y * y, zz = z * z;
  set(4, kShC2[0] * y, kShC2[0] * x, 0);
  set(5, 0, kShC2[1] * z, kShC2[1] * y);
  set(6, -2 * kShC2[2] * x, -2 * kShC2[2] * y, 4 * kShC2[2] * z);
  set(7, kShC2[3] * z, 0, kShC2[3] * x);
  set(8, 2 * kShC2[4] * x, -2 * kShC2[4] * y, 0);
  if (degree < 3) return;
  set(9, kShC3[0] * 6 * x * y, kShC3[0] * (3 * xx - 3 * yy), 0);
  set(10, kShC3[1] * y * z, kShC3[1] * x * z, kShC3[1] * x * y);
  set(11, kShC3[2] * -2 * x * y, kShC3[2] * (4 * zz - xx - 3 * yy), kShC3[2] * 8 * y * z);
  set(12, kShC3[3] * -6 * x * z, kShC3[3] * -6 * y * z, kShC3[3] * (6 * zz - 3 * xx - 3 * yy));
  set(13, kShC3[4] * (4 * zz - 3 * xx - yy), kShC3[4] * -2 * x * y, kShC3[4] * 8 * x * z);
  set(14, kShC3[5] * 2 * x * z, kShC3[5] * -2 * y * z, kShC3[5] * (xx - yy));
  set(15, kShC3[6] * (3 * xx - 3 * yy), kShC3[6] * -6 * x * y, 0);
}

// Rotation matrix of a unit quaternion (w, x, y, z), row-major. T is float
// or a vector of floats (project_simd.h).
template <class T>
inline void quat_to_rot(const T* q, T R[9]) {
  const T w = q[0], x = q[1], y = q[2], z = q[3];
  R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z);     R[2] = 2 * (x * z + w * y);
  R[3] = 2 * (x * y + w * z);     R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
  R[6] = 2 * (x * z - w * y);     R[7] = 2 * (y * z + w * x);     R[8] = 1 - 2 * (x * x + y * y);
}

// dL/dq for R = quat_to_rot(q) given dL/dR (row-major), q unit.
inline void rot_to_quat_grad(const float* q, const float dR[9], float dq[4]) {
  const float w = q[0], x = q[1], y = q[2], z = q[3];
  dq[0] = 2 * (-z * dR[1] + y * dR[2] + z * dR[3] - x * dR[5] - y * dR[6] + x * dR[7]);
  dq[1] = 2 * (y * dR[1] + z * dR[2] + y * dR[3] - 2 * x * dR[4] - w * dR[5] + z * dR[6] + w * dR[7] - 2 * x * dR[8]);
  dq[2] = 2 * (-2 * y * dR[0] + x * dR[1] + w * dR[2] + x * dR[3] + z * dR[5] - w * dR[6] + z * dR[7] - 2 * y * dR[8]);
  dq[3] = 2 * (-2 * z * dR[0] - w * dR[1] + x * dR[2] + w * dR[3] - 2 * z * dR[4] + y * dR[5] + x * dR[6] + y * dR[7]);
}

}  // namespace tessera::cpu::splat
