// Projection of 16 Gaussians at a time (spec §1 steps 1-9), written with the
// vector types of raster_tile.h and compiled per instruction set by
// raster_{avx512,avx2,scalar}.cpp (AVX-512 reads and writes whole rows,
// transposed in registers, where the others gather and store per lane). The formulas and their order are those of
// project.cpp's backward (ewa(), view_dir()), lane by lane; only FMA
// contraction differs between instruction sets. Included after
// raster_tile.h; the includer defines vsqrt (IEEE square root per lane),
// vgather (lane l reads base[idx[l]]) and vstream for its ISA.

static vf vsqrt(vf x);
static vf vgather(const float* base, vi idx);
static void vstream(float* dst, vf v);  // non-temporal store of 64 aligned bytes

constexpr float kDilation = 0.3f;               // low-pass filter added to Σ2D's diagonal
constexpr float kMinCompensation2 = 0.000025f;  // floor of the antialiasing det ratio (= 0.005²)

SPLAT_INLINE vf vmin(vf a, vf b) { return a < b ? a : b; }
SPLAT_INLINE vf vmax(vf a, vf b) { return a > b ? a : b; }
// std::clamp(v, lo, hi): NaN stays NaN.
SPLAT_INLINE vf vclamp(vf v, vf lo, vf hi) { return v < lo ? lo : (hi < v ? hi : v); }
SPLAT_INLINE vi finite(vf x) { return ((vi)x & 0x7f800000) != 0x7f800000; }
// floor for |x| < 2^31 (callers clamp first).
SPLAT_INLINE vf vfloor(vf x) {
  const vf t = __builtin_convertvector(__builtin_convertvector(x, vi), vf);  // truncation
  return t > x ? t - 1.f : t;
}
// ceil for x >= 0 (large values are already integers).
SPLAT_INLINE vf vceil_pos(vf x) {
  const vf c = x < 8388608.f ? x : splat1(0.f);
  const vf t = __builtin_convertvector(__builtin_convertvector(c, vi), vf);
  const vf r = t < c ? t + 1.f : t;
  return x < 8388608.f ? r : x;
}
// ln x for x in [1, 255]: x = m·2^e with m in [√½, √2), ln m = 2·atanh(s),
// s = (m−1)/(m+1), |s| < 0.172, series to s⁹ (error < 3e-10).
SPLAT_INLINE vf vlog(vf x) {
  vi bits = (vi)x;
  vi e = ((bits >> 23) & 255) - 127;
  vf m = (vf)((bits & 0x007fffff) | 0x3f800000);  // [1, 2)
  const vi big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e -= big;  // big lanes are −1: e + 1
  const vf s = (m - 1.f) / (m + 1.f), s2 = s * s;
  vf p = splat1(1.f / 9);
  p = p * s2 + 1.f / 7;
  p = p * s2 + 1.f / 5;
  p = p * s2 + 1.f / 3;
  p = p * s2 + 1.f;
  return __builtin_convertvector(e, vf) * 0.693147180559945309f + 2.f * s * p;
}

// e^x for any x (NaN in, NaN out): the range reduction of vexp, with 2^n
// applied in two factors so that n up to 128 and down to −150 stays exact
// (overflow gives inf, underflow 0 or a subnormal, as expf).
SPLAT_INLINE vf vexp_full(vf x) {
  const vf xc = vclamp(x, splat1(-104.f), splat1(89.f));
  const vf t = xc * 1.44269504088896341f + 12582912.f;
  const vf n = t - 12582912.f;
  const vf r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  vf p = splat1(1.f / 5040);
  p = p * r + 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const vi ni = __builtin_convertvector(n, vi), e1 = ni >> 1, e2 = ni - e1;
  return p * (vf)((e1 + 127) << 23) * (vf)((e2 + 127) << 23);
}

#if defined(__AVX512F__)
// AVX-512: the projection reads its rows with plain loads and transposes
// them in registers instead of gathering lane by lane (a 16-lane gather is
// 16 load uops; the SH rows alone were 48 gathers per 16 Gaussians), and
// writes its records the same way (transpose16 and kAll: raster_tile.h).

// Columns of 16 consecutive rows of 3 floats (48 contiguous floats at p):
// out[k][l] = p[3l + k]. Per column one permute from the first 32 floats,
// then one that takes the lanes past them from the last 16.
SPLAT_INLINE void load_cols3(const float* p, vf out[3]) {
  const __m512 v0 = _mm512_maskz_loadu_ps(kAll, p), v1 = _mm512_maskz_loadu_ps(kAll, p + 16), v2 = _mm512_maskz_loadu_ps(kAll, p + 32);
  for (int k = 0; k < 3; ++k) {
    alignas(64) int32_t i01[16], i2[16];
    for (int l = 0; l < 16; ++l) {
      const int e = 3 * l + k;
      i01[l] = e < 32 ? e : 0;
      i2[l] = e < 32 ? l : 16 + e - 32;
    }
    const __m512 t = _mm512_maskz_permutex2var_ps(kAll, v0, _mm512_load_si512(i01), v1);
    out[k] = reinterpret_cast<vf>(_mm512_maskz_permutex2var_ps(kAll, t, _mm512_load_si512(i2), v2));
  }
}

// Columns of 16 consecutive rows of 4 floats (64 contiguous floats at p).
SPLAT_INLINE void load_cols4(const float* p, vf out[4]) {
  const __m512 v0 = _mm512_maskz_loadu_ps(kAll, p), v1 = _mm512_maskz_loadu_ps(kAll, p + 16), v2 = _mm512_maskz_loadu_ps(kAll, p + 32),
               v3 = _mm512_maskz_loadu_ps(kAll, p + 48);
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  for (int k = 0; k < 4; ++k) {
    const __m512i ik = _mm512_add_epi32(idx, _mm512_set1_epi32(k));
    // lanes 0..7: rows 0..7 from v0:v1; lanes 8..15: rows 8..15 from v2:v3
    out[k] = reinterpret_cast<vf>(
        _mm512_mask_blend_ps(0xff00, _mm512_maskz_permutex2var_ps(kAll, v0, ik, v1), _mm512_maskz_permutex2var_ps(kAll, v2, ik, v3)));
  }
}
#endif

// Tile index of pixel coordinate v: clamp(floor(v / 16), 0, lim), for finite v.
SPLAT_INLINE vi tile_of(vf v, float lim, float add = 0.f) {
  const vf t = vfloor(vclamp(v / float(kSplatTile), splat1(-2.f), splat1(lim + 2.f))) + add;
  return __builtin_convertvector(vclamp(t, splat1(0.f), splat1(lim)), vi);
}

// Projects Gaussians [i0, i0 + count), count <= 16, into the camera: its
// depth key (kNoDepthKey unless visible), and its Projected record and tile
// rectangle when visible; adds the kProj* codes, key range and area up into
// *sums (ProjectSums).
// kPrepare: also computes the camera-independent Prepared record from the
// raw parameters (spec §1.2; the first camera of a call), reading every
// input once; otherwise reads it from s.prep.
// Row layouts project_range checked (bits): the parameters are packed rows
// (means and log-scales 3 floats, rotations 4, opacity 1), so a full block
// reads them as contiguous vectors; the SH rows are [16][3] floats apart by
// at least 48 (degree 3), read as three vectors per row.
enum : int { kPackedParams = 1, kPackedSh = 2 };

// The AVX-512 path's running key range and area, per lane (reduced into
// ProjectSums by project_range).
struct LaneSums {
  vi kmin = vi{} + 0x7fffffff, kmax = vi{};
#if defined(__AVX512F__)
  __m512i area_lo = _mm512_setzero_si512(), area_hi = _mm512_setzero_si512();  // 8 lanes of int64 each
#endif
};

template <bool kPrepare>
SPLAT_INLINE void project_lanes(const SceneRef& s, int64_t i0, int count, const CameraFrame& cam, bool aa,
                                Projected* proj, uint32_t* depth_key, TileRect* rects,
                                ProjectSums* sums, LaneSums* lanes, int packed) {
  const SplatScene& sc = *s.scene;
  vi lane;
  for (int l = 0; l < kLanes; ++l) lane[l] = l < count ? l : 0;  // tail lanes read lane 0's (valid) memory
  auto rows = [&](const TensorView& t) { return lane * static_cast<int32_t>(t.strides[0]); };
  auto base = [&](const TensorView& t) { return t.ptr<float>() + i0 * t.strides[0]; };
  const float* mb = base(sc.means);
#if defined(__AVX512F__)
  const bool full = count == kLanes && (packed & kPackedParams);
#else
  constexpr bool full = false;
  (void)packed;
#endif
  vf m0, m1, m2;
  if (full) {
#if defined(__AVX512F__)
    vf m[3];
    load_cols3(mb, m);
    m0 = m[0]; m1 = m[1]; m2 = m[2];
#endif
  } else {
    const vi mrow = rows(sc.means);
    m0 = vgather(mb, mrow); m1 = vgather(mb + 1, mrow); m2 = vgather(mb + 2, mrow);
  }
  vf cov[6], opac;
  vi valid;
  if constexpr (kPrepare) {
    // Invalid (skipped) when any parameter used is NaN/Inf, the quaternion is
    // zero, or the covariance overflows (the rule in tessera/splat.h); the SH
    // coefficients are checked below where they are read.
    const float *lb = base(sc.log_scales), *qb = base(sc.rotations), *ob = base(sc.opacity_logits);
    vf ls[3], q[4], logit;
    if (full) {
#if defined(__AVX512F__)
      load_cols3(lb, ls);
      load_cols4(qb, q);
      logit = reinterpret_cast<vf>(_mm512_maskz_loadu_ps(kAll, ob));
#endif
    } else {
      const vi lrow = rows(sc.log_scales), qrow = rows(sc.rotations);
      for (int k = 0; k < 3; ++k) ls[k] = vgather(lb + k, lrow);
      for (int k = 0; k < 4; ++k) q[k] = vgather(qb + k, qrow);
      logit = vgather(ob, rows(sc.opacity_logits));
    }
    valid = finite(m0) & finite(m1) & finite(m2) & finite(logit);
    for (int k = 0; k < 3; ++k) valid &= finite(ls[k]);
    for (int k = 0; k < 4; ++k) valid &= finite(q[k]);
    const vf qq = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
    valid &= (qq > 1e-24f) & finite(qq);  // a zero quaternion has no rotation
    const vf inv = 1.f / vsqrt(valid ? qq : splat1(1.f));
    vf qn[4], scale[3];
    for (int k = 0; k < 4; ++k) qn[k] = q[k] * inv;
    vf R[9];
    quat_to_rot(qn, R);
    for (int k = 0; k < 3; ++k) scale[k] = vexp_full(ls[k]);
    vf M[9];  // M = R·diag(s), Σ = M·Mᵀ (spec §1.2)
    for (int r = 0; r < 3; ++r)
      for (int k = 0; k < 3; ++k) M[3 * r + k] = R[3 * r + k] * scale[k];
    auto dot = [&](int r0, int r1) { return M[3 * r0] * M[3 * r1] + M[3 * r0 + 1] * M[3 * r1 + 1] + M[3 * r0 + 2] * M[3 * r1 + 2]; };
    cov[0] = dot(0, 0); cov[1] = dot(0, 1); cov[2] = dot(0, 2);
    cov[3] = dot(1, 1); cov[4] = dot(1, 2); cov[5] = dot(2, 2);
    for (int k = 0; k < 6; ++k) valid &= finite(cov[k]);  // exp(s)² overflows for s > ~44: skipped, not a crash
    opac = 1.f / (1.f + vexp_full(-logit));
  } else {
    constexpr int32_t kPrep = sizeof(Prepared) / sizeof(float);
    static_assert(sizeof(Prepared) % sizeof(float) == 0, "Prepared is a float record");
    const float* pb = reinterpret_cast<const float*>(s.prep + i0);
    const vi prow = lane * kPrep;
    for (int k = 0; k < 6; ++k) cov[k] = vgather(pb + offsetof(Prepared, cov) / 4 + k, prow);
    opac = vgather(pb + offsetof(Prepared, opacity) / 4, prow);
    valid = (vi)vgather(pb + offsetof(Prepared, valid) / 4, prow) != 0;
  }

  // EWA (project.cpp ewa()).
  const float* W = cam.W;
  const vf x = W[0] * m0 + W[1] * m1 + W[2] * m2 + cam.t[0];
  const vf y = W[3] * m0 + W[4] * m1 + W[5] * m2 + cam.t[1];
  const vf z = W[6] * m0 + W[7] * m1 + W[8] * m2 + cam.t[2];
  const vi in_front = z > cam.near_plane;
  const vf zs = in_front ? z : splat1(1.f);  // keeps the culled lanes finite
  const vf rz = 1.f / zs;
  const vf ux = vclamp(x * rz, splat1(-cam.lim_x_neg), splat1(cam.lim_x_pos));
  const vf uy = vclamp(y * rz, splat1(-cam.lim_y_neg), splat1(cam.lim_y_pos));
  const vf J00 = cam.fx * rz, J02 = -cam.fx * ux * rz;
  const vf J11 = cam.fy * rz, J12 = -cam.fy * uy * rz;
  vf T0[3], T1[3];
  for (int j = 0; j < 3; ++j) {
    T0[j] = J00 * W[j] + J02 * W[6 + j];
    T1[j] = J11 * W[3 + j] + J12 * W[6 + j];
  }
  const vf S[9] = {cov[0], cov[1], cov[2], cov[1], cov[3], cov[4], cov[2], cov[4], cov[5]};
  vf TS0[3], TS1[3];
  for (int j = 0; j < 3; ++j) {
    TS0[j] = T0[0] * S[j] + T0[1] * S[3 + j] + T0[2] * S[6 + j];
    TS1[j] = T1[0] * S[j] + T1[1] * S[3 + j] + T1[2] * S[6 + j];
  }
  const vf a0 = TS0[0] * T0[0] + TS0[1] * T0[1] + TS0[2] * T0[2];
  const vf b0 = TS0[0] * T1[0] + TS0[1] * T1[1] + TS0[2] * T1[2];
  const vf c0 = TS1[0] * T1[0] + TS1[1] * T1[1] + TS1[2] * T1[2];
  const vf a = a0 + kDilation, b = b0, c = c0 + kDilation;
  const vf det = a * c - b * b;
  vi ok = valid & in_front & (det > 0.f) & finite(det);
  const vf id = 1.f / (ok ? det : splat1(1.f));
  const vf cA = c * id, cB = -b * id, cC = a * id;
  vf opacity = opac;
  if (aa) {  // spec §1.4: opacity ×= sqrt(max(0.000025, det Σ2D / det(Σ2D + 0.3 I)))
    const vf det0 = a0 * c0 - b0 * b0;
    opacity *= vsqrt(vmax(splat1(kMinCompensation2), det0 * id));
  }
  const vf mx = cam.fx * x * rz + cam.cx, my = cam.fy * y * rz + cam.cy;
  // Radius 3·sqrt(λmax) with the 0.1 floor on the discriminant (spec §1.6).
  const vf mid = 0.5f * (a + c);
  const vf lambda = mid + vsqrt(vmax(splat1(0.1f), mid * mid - det));
  const vf radius = vceil_pos(3.f * vsqrt(ok ? lambda : splat1(0.f)));
  // Tile rectangle in the reference's pixel frame (centres at integers, §1.8).
  const vf px = mx - 0.5f, py = my - 0.5f;
  ok &= finite(radius) & finite(px) & finite(py);
  const vf rr = ok ? radius : splat1(0.f), qx = ok ? px : splat1(0.f), qy = ok ? py : splat1(0.f);
  const float tx = float(cam.tiles_x), ty = float(cam.tiles_y);
  vi r0 = tile_of(qx - rr, tx), r1 = tile_of(qx + rr + float(kSplatTile - 1), tx);
  vi r2 = tile_of(qy - rr, ty), r3 = tile_of(qy + rr + float(kSplatTile - 1), ty);
  // Within that rectangle only the tiles where α can reach 1/255 matter: the
  // blend skips α < 1/255, so dropping the others changes no pixel. α >= 1/255
  // needs power >= −q/2 with q = 2·ln(255·o), i.e. the ellipse dᵀΣ⁻¹d <= q,
  // whose bounding box is |dx| <= sqrt(q·Σxx), |dy| <= sqrt(q·Σyy) (Σ = the
  // dilated 2D covariance). 1% + 0.05 px of margin absorbs fp32 rounding
  // (and the few-ulp error of vlog).
  ok &= !(opacity * 255.f < 0.999f);  // α <= o < 1/255 everywhere
  const vf q = 2.f * vlog(vclamp(opacity * 255.f, splat1(1.f), splat1(255.f)));
  const vf ex = vsqrt(q * (ok ? a : splat1(0.f))) * 1.01f + 0.05f;
  const vf ey = vsqrt(q * (ok ? c : splat1(0.f))) * 1.01f + 0.05f;
  // pixel i (centre i + 0.5) is in reach when px − e <= i <= px + e
  {
    const vi s0 = tile_of(qx - ex, tx), s1 = tile_of(qx + ex, tx, 1.f);
    const vi s2 = tile_of(qy - ey, ty), s3 = tile_of(qy + ey, ty, 1.f);
    r0 = r0 > s0 ? r0 : s0;
    r1 = r1 < s1 ? r1 : s1;
    r2 = r2 > s2 ? r2 : s2;
    r3 = r3 < s3 ? r3 : s3;
  }
  ok &= (r0 < r1) & (r2 < r3);
  // Row skipping in the blend (raster_tile.h): over a pixel row at vertical
  // offset dy the largest power is −dy²·ky with ky = (C − B²/A)/2 (the
  // quadratic's maximum in dx), so the row has α < 1/255 once dy²·ky > ln(255·o);
  // the threshold carries a margin so fp32 rounding never skips a pixel the blend would take.
  const vf bda = cB / (ok ? cA : splat1(1.f));
  const vf ky = 0.5f * (cC - cB * bda);
  const vf row_thr = 0.5f * q * 1.001f + 1e-3f;
  // Colour: Σ Y_k(d)·sh_k + 0.5, clamped at 0 per channel (§1.9), d the unit
  // direction from the camera centre (project.cpp view_dir()).
  const vf v0 = m0 - cam.campos[0], v1 = m1 - cam.campos[1], v2 = m2 - cam.campos[2];
  const vf len = vsqrt(v0 * v0 + v1 * v1 + v2 * v2);
  const vf inv = len > 0.f ? 1.f / (len > 0.f ? len : splat1(1.f)) : splat1(0.f);
  const vf dx = v0 * inv, dy = v1 * inv, dz = v2 * inv;
  const int deg = sc.sh_degree, K = (deg + 1) * (deg + 1);
  vf Y[16];
  Y[0] = splat1(kShC0);
  if (deg >= 1) {
    Y[1] = -kShC1 * dy;
    Y[2] = kShC1 * dz;
    Y[3] = -kShC1 * dx;
  }
  if (deg >= 2) {
    const vf xx = dx * dx, yy = dy * dy, zz = dz * dz;
    Y[4] = kShC2[0] * dx * dy;
    Y[5] = kShC2[1] * dy * dz;
    Y[6] = kShC2[2] * (2 * zz - xx - yy);
    Y[7] = kShC2[3] * dx * dz;
    Y[8] = kShC2[4] * (xx - yy);
    if (deg >= 3) {
      Y[9] = kShC3[0] * dy * (3 * xx - yy);
      Y[10] = kShC3[1] * dx * dy * dz;
      Y[11] = kShC3[2] * dy * (4 * zz - xx - yy);
      Y[12] = kShC3[3] * dz * (2 * zz - 3 * xx - 3 * yy);
      Y[13] = kShC3[4] * dx * (4 * zz - xx - yy);
      Y[14] = kShC3[5] * dz * (xx - yy);
      Y[15] = kShC3[6] * dx * (xx - 3 * yy);
    }
  }
  const int64_t ss = sc.sh.strides[0], ks = sc.sh.strides[1];
  const float* sb = sc.sh.ptr<float>() + i0 * ss;
  const vi srow = lane * static_cast<int32_t>(ss);
  vf rgb[3];
  vi clamped{};
#if defined(__AVX512F__)
  if (K == 16 && (packed & kPackedSh)) {
    // Three 16 × 16 blocks of the rows, transposed: coefficient e = 3k + ch
    // comes out in increasing e, so each channel still sums k = 0..15 in order.
    vf v[3] = {splat1(0.5f), splat1(0.5f), splat1(0.5f)};
    for (int b = 0; b < 3; ++b) {
      vf r[16];
      for (int l = 0; l < 16; ++l) r[l] = reinterpret_cast<vf>(_mm512_maskz_loadu_ps(kAll, sb + (l < count ? l : 0) * ss + 16 * b));
      transpose16(r);
      for (int j = 0; j < 16; ++j) {
        const int e = 16 * b + j;
        v[e % 3] += Y[e / 3] * r[j];
      }
    }
    if constexpr (kPrepare) {
      // A NaN/Inf coefficient makes its channel's sum NaN or ±Inf (Y_0 is
      // never 0, a 0 basis value times Inf is NaN, and NaN or Inf never turns
      // finite again in the sum), so lanes whose three sums are finite have
      // finite rows; the rows themselves are checked only in a block with a
      // non-finite sum (an invalid Gaussian, or finite coefficients whose sum
      // overflows, which stay valid).
      const __mmask16 sums_ok = _mm512_test_epi32_mask(reinterpret_cast<__m512i>(finite(v[0]) & finite(v[1]) & finite(v[2])),
                                                       reinterpret_cast<__m512i>(finite(v[0]) & finite(v[1]) & finite(v[2])));
      if (sums_ok != 0xffff) {
        vi bad{};
        for (int l = 0; l < count; ++l) {
          __mmask16 m = 0;
          for (int b = 0; b < 3; ++b) {
            const __m512i x = _mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(kAll, sb + l * ss + 16 * b)),
                                               _mm512_set1_epi32(0x7f800000));
            m |= _mm512_cmpeq_epi32_mask(x, _mm512_set1_epi32(0x7f800000));
          }
          bad[l] = m ? -1 : 0;
        }
        valid &= ~bad;
      }
    }
    for (int ch = 0; ch < 3; ++ch) {
      clamped |= (v[ch] < 0.f) & (1 << ch);
      rgb[ch] = vmax(v[ch], splat1(0.f));
    }
  } else
#endif
  for (int ch = 0; ch < 3; ++ch) {
    vf v = splat1(0.5f);
    for (int k = 0; k < K; ++k) {
      const vf c = vgather(sb + k * ks + ch, srow);
      if constexpr (kPrepare) valid &= finite(c);
      v += Y[k] * c;
    }
    clamped |= (v < 0.f) & (1 << ch);
    rgb[ch] = vmax(v, splat1(0.f));
  }
  // Status and records.
  const vi vis = vi{} + int32_t{kProjVisible}, out = vi{} + int32_t{kProjOutside};
  const vi nr = vi{} + int32_t{kProjNear}, inv_code = vi{} + int32_t{kProjInvalid};
  const vi code = valid ? (in_front ? (ok ? vis : out) : nr) : inv_code;
  const vi key = (vi)z;  // float bits, ordered like the floats (z > near > 0)
#if defined(__AVX512F__)
  {
    // Every lane's record, rectangle and key is written (the invisible
    // ones' records and rectangles are never read: their key says so,
    // kNoDepthKey). Records: the 16 field
    // vectors transposed into 16 rows, streamed past the caches (the array
    // is far larger than them and read back at random by the blend; no read
    // for ownership of the line); project_range fences after the last one.
    static_assert(sizeof(Projected) == sizeof(vf) && offsetof(Projected, bda) == 12 * sizeof(float) &&
                      offsetof(Projected, clamped) == 13 * sizeof(float), "Projected layout");
    const __mmask16 m = count == kLanes ? __mmask16(0xffff) : __mmask16((1u << count) - 1);
    if constexpr (kPrepare) {
      if (s.prep_out) {  // Prepared records (8 floats): the first half of each transposed row
        static_assert(sizeof(Prepared) == 8 * sizeof(float) && offsetof(Prepared, valid) == 7 * sizeof(float),
                      "Prepared layout");
        vf pr[16] = {cov[0], cov[1], cov[2], cov[3], cov[4], cov[5], opac, (vf)(valid & 1)};
        transpose16(pr);
        for (int l = 0; l < count; ++l)
          _mm512_mask_storeu_ps(reinterpret_cast<float*>(&s.prep_out[i0 + l]), 0xff, reinterpret_cast<__m512>(pr[l]));
      }
    }
    vf rec[16] = {mx, my, cA, cB, cC, opacity, rgb[0], rgb[1], rgb[2], z, ky, row_thr, bda, (vf)clamped, vf{}, vf{}};
    transpose16(rec);
    if (count == kLanes)
      for (int l = 0; l < kLanes; ++l) vstream(reinterpret_cast<float*>(&proj[i0 + l]), rec[l]);
    else
      for (int l = 0; l < count; ++l) vstream(reinterpret_cast<float*>(&proj[i0 + l]), rec[l]);
    _mm512_mask_storeu_epi32(depth_key + i0, m,
                             _mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(reinterpret_cast<__m512i>(code), _mm512_setzero_si512()),
                                                     _mm512_set1_epi32(static_cast<int32_t>(kNoDepthKey)), reinterpret_cast<__m512i>(key)));
    // TileRect {x0, x1, y0, y1} as int16: (x0 | x1 << 16) and (y0 | y1 << 16) interleaved.
    static_assert(sizeof(TileRect) == 8 && offsetof(TileRect, y0) == 4, "TileRect layout");
    const __m512i xs = reinterpret_cast<__m512i>((r0 & 0xffff) | (r1 << 16));
    const __m512i ys = reinterpret_cast<__m512i>((r2 & 0xffff) | (r3 << 16));
    const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    _mm512_mask_storeu_epi64(rects + i0, __mmask8(m), _mm512_maskz_permutex2var_epi32(kAll, xs, lo_idx, ys));
    _mm512_mask_storeu_epi64(rects + i0 + 8, __mmask8(m >> 8), _mm512_maskz_permutex2var_epi32(kAll, xs, hi_idx, ys));
    for (int c = 0; c < 4; ++c)
      sums->count[c] +=
          __builtin_popcount(m & _mm512_cmpeq_epi32_mask(reinterpret_cast<__m512i>(code), _mm512_set1_epi32(c)));
    // Visible keys are positive floats' bits (< 2^31): signed lane minima and maxima.
    const __mmask16 vm = m & _mm512_cmpeq_epi32_mask(reinterpret_cast<__m512i>(code), _mm512_set1_epi32(kProjVisible));
    const __m512i k = reinterpret_cast<__m512i>(key), lo = reinterpret_cast<__m512i>(lanes->kmin),
                  hi = reinterpret_cast<__m512i>(lanes->kmax);
    lanes->kmin = reinterpret_cast<vi>(_mm512_mask_min_epi32(lo, vm, lo, k));
    lanes->kmax = reinterpret_cast<vi>(_mm512_mask_max_epi32(hi, vm, hi, k));
    const __m512i area = _mm512_maskz_mullo_epi32(vm, reinterpret_cast<__m512i>(r1 - r0), reinterpret_cast<__m512i>(r3 - r2));
    for (int h = 0; h < 2; ++h) {
      __m512i& acc = h ? lanes->area_hi : lanes->area_lo;
      acc = _mm512_add_epi64(acc, _mm512_maskz_cvtepi32_epi64(0xff, _mm512_maskz_extracti64x4_epi64(0xf, area, h)));
    }
    return;
  }
#endif
  for (int l = 0; l < count; ++l) {
    const int64_t i = i0 + l;
    if constexpr (kPrepare) {
      if (s.prep_out) {
        Prepared& P = s.prep_out[i];
        for (int k = 0; k < 6; ++k) P.cov[k] = cov[k][l];
        P.opacity = opac[l];
        P.valid = valid[l] ? 1 : 0;
      }
    }
    ++sums->count[code[l]];
    if (code[l] != kProjVisible) {
      depth_key[i] = kNoDepthKey;
      continue;
    }
    sums->key_min = std::min<uint32_t>(sums->key_min, static_cast<uint32_t>(key[l]));
    sums->key_max = std::max<uint32_t>(sums->key_max, static_cast<uint32_t>(key[l]));
    sums->area += int64_t(r1[l] - r0[l]) * (r3[l] - r2[l]);
    // The record as one 64-byte vector, stored past the caches (the array is
    // far larger than them and read back at random by the blend): no read
    // for ownership of the line. project_range fences after the last one.
    static_assert(sizeof(Projected) == sizeof(vf) && offsetof(Projected, bda) == 12 * sizeof(float) &&
                      offsetof(Projected, clamped) == 13 * sizeof(float), "Projected layout");
    const vf rec = {mx[l], my[l], cA[l], cB[l], cC[l], opacity[l], rgb[0][l], rgb[1][l], rgb[2][l], z[l], ky[l],
                    row_thr[l], bda[l], __builtin_bit_cast(float, clamped[l]), 0.f, 0.f};
    vstream(reinterpret_cast<float*>(&proj[i]), rec);
    rects[i] = TileRect{static_cast<int16_t>(r0[l]), static_cast<int16_t>(r1[l]), static_cast<int16_t>(r2[l]),
                        static_cast<int16_t>(r3[l])};
    depth_key[i] = key[l];
  }
}

// Projects Gaussians [begin, end) and adds them up into *sums. With
// s.prep_out set, also fills the Prepared records there.
void project_range(const SceneRef& s, int64_t begin, int64_t end, const CameraFrame& cam, bool aa, Projected* proj,
                   uint32_t* depth_key, TileRect* rects, ProjectSums* sums) {
  // The gathers address lane l's row at l·stride in int32; a view with rows
  // too far apart for that goes one Gaussian per step (every lane reads row 0).
  const SplatScene& sc = *s.scene;
  int64_t stride = 0;
  for (const TensorView* t : {&sc.means, &sc.log_scales, &sc.rotations, &sc.opacity_logits, &sc.sh})
    stride = std::max(stride, t->strides[0] < 0 ? -t->strides[0] : t->strides[0]);
  const int64_t step = stride * (kLanes - 1) < (int64_t(1) << 31) ? kLanes : 1;
  auto packed_rows = [](const TensorView& t, int64_t w) {
    return t.strides[0] == w && (t.rank < 2 || t.shape[1] <= 1 || t.strides[1] == 1);
  };
  const int packed =
      (packed_rows(sc.means, 3) && packed_rows(sc.log_scales, 3) && packed_rows(sc.rotations, 4) &&
               packed_rows(sc.opacity_logits, 1) ? kPackedParams : 0) |
      (sc.sh.strides[0] >= 48 && sc.sh.strides[1] == 3 && sc.sh.strides[2] == 1 && step == kLanes ? kPackedSh : 0);
  // The loads and gathers of a block wait on its rows coming from memory (the
  // SH rows above all: 192 bytes per Gaussian at degree 3), so each block first asks
  // for later blocks' rows (views with positive strides of at most 1 KiB).
  // The SH rows are asked for three blocks ahead into L2 (prefetcht2: they
  // arrive in time without holding L1 fill buffers while the gathers of the
  // current block wait; measured against the next block into L1).
  auto prefetch = [&](const TensorView& t, int64_t row0, int64_t rows, bool l2 = false) {
    const int64_t st = t.strides[0];
    if (st <= 0 || st > 256 || rows <= 0) return;
    const char* p = reinterpret_cast<const char*>(t.ptr<float>() + row0 * st);
    for (int64_t o = 0, bytes = rows * st * int64_t(sizeof(float)); o < bytes; o += 64) {
      if (l2) __builtin_prefetch(p + o, 0, 1);
      else __builtin_prefetch(p + o);
    }
  };
  LaneSums lanes;
  for (int64_t i = begin; i < end; i += step) {
    const int count = static_cast<int>(std::min<int64_t>(step, end - i));
    if (step == kLanes) {
      const int64_t next = std::min<int64_t>(step, end - i - count);
      prefetch(sc.sh, i + 3 * step, std::min<int64_t>(step, end - i - 3 * step), true);
      prefetch(sc.means, i + count, next);
      if (s.first) {
        prefetch(sc.log_scales, i + count, next);
        prefetch(sc.rotations, i + count, next);
        prefetch(sc.opacity_logits, i + count, next);
      } else {
        const char* pp = reinterpret_cast<const char*>(s.prep + i + count);
        for (int64_t o = 0; o < next * int64_t(sizeof(Prepared)); o += 64) __builtin_prefetch(pp + o);
      }
    }
    if (s.first) project_lanes<true>(s, i, count, cam, aa, proj, depth_key, rects, sums, &lanes, packed);
    else project_lanes<false>(s, i, count, cam, aa, proj, depth_key, rects, sums, &lanes, packed);
  }
#if defined(__AVX512F__)
  alignas(64) int64_t area[16];
  _mm512_store_si512(area, lanes.area_lo);
  _mm512_store_si512(area + 8, lanes.area_hi);
  for (int l = 0; l < kLanes; ++l) {
    if (lanes.kmin[l] <= lanes.kmax[l]) {  // some visible Gaussian went through lane l
      sums->key_min = std::min(sums->key_min, static_cast<uint32_t>(lanes.kmin[l]));
      sums->key_max = std::max(sums->key_max, static_cast<uint32_t>(lanes.kmax[l]));
    }
    sums->area += area[l];
  }
#endif
  __builtin_ia32_sfence();  // the non-temporal record stores are visible before the pool's join

}
