// Per-tile kernels of the 2D-Gaussian accumulated sum (tessera/gauss2d.h),
// written once with GCC/Clang vector extensions over one 16-pixel tile row
// and compiled per instruction set by tile_{avx512,avx2,scalar}.cpp. Included
// inside an anonymous namespace of tessera::cpu::gauss2d.
//
// Forward, per pixel: C = Σ_k c_k·α_k over the tile's Gaussians in index
// order, α = e^−σ, skipping σ < 0 and α < 1/255 (spec §3); clamp to [0, 1].
// Backward, with g = dL/dC (zero where the clamp was active):
//   dL/dc_k = Σ_pix α·g,   dL/dσ = −α·(c_k·g),
//   dσ/dμ = −(A·dx + B·dy, B·dx + C·dy),  dσ/d(A, B, C) = (½dx², dx·dy, ½dy²)
// with d = pixel centre − μ.
#pragma GCC diagnostic ignored "-Wpsabi"
#define G2D_INLINE inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
constexpr int kLanes = 16;
static_assert(kLanes == kGauss2dTile, "one vector per tile row");

constexpr float kMinAlpha = 1.0f / 255.0f;
// A row whose smallest σ (dy²·ky) exceeds ln 255 has every α < 1/255 and is
// skipped; the margin keeps fp32 rounding from skipping a row the exact
// per-pixel test would keep.
constexpr float kRowSkip = 5.5412635f * 1.001f + 1e-3f;
// exp's argument is clamped here: e^−12 is far below 1/255.
constexpr float kMinExp = -12.f;

G2D_INLINE vf bcast(float s) { return vf{} + s; }

// e^x on [kMinExp, 0]: x = n·ln 2 + r with n = round(x/ln 2), |r| <= ln2/2,
// e^r by its degree-7 Taylor polynomial (truncation < 1e-8 relative), then
// scaled by 2^n through the exponent bits. ln 2 is split in two parts so
// n·ln2_hi is exact.
G2D_INLINE vf vexp(vf x) {
  const vf shifter = bcast(12582912.f);  // 1.5·2^23: adding it rounds to an integer
  const vf n = (x * 1.4426950408889634f + shifter) - shifter;
  const vf r = (x - n * 0.693145751953125f) - n * 1.4286068203094172e-06f;
  vf p = bcast(1.f / 5040);
  p = p * r + 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  return p * (vf)bits;  // same-size vector cast: a bit cast
}

// Lane sum in a fixed order (deterministic).
G2D_INLINE float lane_sum(vf v) {
  float s = 0;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

struct Tile {
  int x0, y0, rows, cols;
  vf px;  // pixel-centre x of each lane
};

G2D_INLINE Tile tile_geometry(const Frame& f, int64_t tile) {
  Tile t;
  t.x0 = static_cast<int>(tile % f.tiles_x) * kGauss2dTile;
  t.y0 = static_cast<int>(tile / f.tiles_x) * kGauss2dTile;
  t.rows = f.height - t.y0 < kGauss2dTile ? f.height - t.y0 : kGauss2dTile;
  t.cols = f.width - t.x0 < kGauss2dTile ? f.width - t.x0 : kGauss2dTile;
  for (int i = 0; i < kLanes; ++i) t.px[i] = t.x0 + i + 0.5f;
  return t;
}

// α of Gaussian g along one row (zero where skipped), and the offsets.
struct RowAlpha {
  vf w, dx;
  float dy;
};
G2D_INLINE bool row_alpha(const Projected& g, const Tile& t, int r, RowAlpha* out) {
  const float dy = t.y0 + r + 0.5f - g.my;
  if (dy * dy * g.ky > kRowSkip) return false;
  const vf dx = t.px - g.mx;
  const vf sigma = 0.5f * (g.A * dx * dx + g.C * dy * dy) + g.B * dx * dy;
  const vf arg = -sigma;
  const vf alpha = vexp(arg < kMinExp ? bcast(kMinExp) : (arg > 0.f ? bcast(0.f) : arg));
  const vi ok = (sigma >= 0.f) & (alpha >= kMinAlpha);
  out->w = ok ? alpha : bcast(0.f);
  out->dx = dx;
  out->dy = dy;
  return true;
}

// The unclamped sums of the tile into acc[row][channel].
G2D_INLINE void accumulate(const Projected* p, const Bins& bins, int64_t tile, const Tile& t, vf (*acc)[3]) {
  for (int r = 0; r < kLanes; ++r) acc[r][0] = acc[r][1] = acc[r][2] = bcast(0.f);
  for (int64_t pos = bins.offsets[tile]; pos < bins.offsets[tile + 1]; ++pos) {
    const Projected& g = p[bins.list[pos]];
    for (int r = 0; r < t.rows; ++r) {
      RowAlpha a;
      if (!row_alpha(g, t, r, &a)) continue;
      acc[r][0] += a.w * g.rgb[0];
      acc[r][1] += a.w * g.rgb[1];
      acc[r][2] += a.w * g.rgb[2];
    }
  }
}

void forward_tile(const Projected* p, const Bins& bins, const Frame& f, int64_t tile, int, bool clamp, float* rgb) {
  const Tile t = tile_geometry(f, tile);
  vf acc[kLanes][3];
  accumulate(p, bins, tile, t, acc);
  for (int r = 0; r < t.rows; ++r) {
    float* row = rgb + (int64_t(t.y0 + r) * f.width + t.x0) * 3;
    for (int i = 0; i < t.cols; ++i)
      for (int c = 0; c < 3; ++c) {
        const float v = acc[r][c][i];
        row[3 * i + c] = clamp ? (v < 0.f ? 0.f : (v > 1.f ? 1.f : v)) : v;
      }
  }
}

void backward_tile(const Projected* p, const Bins& bins, const Frame& f, int64_t tile, int, bool clamp,
                   const float* grad_rgb, float* grad) {
  const Tile t = tile_geometry(f, tile);
  vf g[kLanes][3];
  accumulate(p, bins, tile, t, g);
  // Upstream gradient, zero outside the image and where the clamp was active.
  for (int r = 0; r < kLanes; ++r)
    for (int c = 0; c < 3; ++c) {
      vf v = bcast(0.f);
      if (r < t.rows) {
        const float* row = grad_rgb + (int64_t(t.y0 + r) * f.width + t.x0) * 3;
        for (int i = 0; i < t.cols; ++i) {
          const float out = g[r][c][i];
          v[i] = (!clamp || (out >= 0.f && out <= 1.f)) ? row[3 * i + c] : 0.f;
        }
      }
      g[r][c] = v;
    }
  for (int64_t pos = bins.offsets[tile]; pos < bins.offsets[tile + 1]; ++pos) {
    const Projected& q = p[bins.list[pos]];
    vf gmx = bcast(0.f), gmy = gmx, gA = gmx, gB = gmx, gC = gmx, gr = gmx, gg = gmx, gb = gmx;
    for (int r = 0; r < t.rows; ++r) {
      RowAlpha a;
      if (!row_alpha(q, t, r, &a)) continue;
      gr += a.w * g[r][0];
      gg += a.w * g[r][1];
      gb += a.w * g[r][2];
      const vf dsigma = -a.w * (q.rgb[0] * g[r][0] + q.rgb[1] * g[r][1] + q.rgb[2] * g[r][2]);
      gmx -= dsigma * (q.A * a.dx + q.B * a.dy);
      gmy -= dsigma * (q.B * a.dx + q.C * a.dy);
      gA += dsigma * (0.5f * a.dx * a.dx);
      gB += dsigma * (a.dx * a.dy);
      gC += dsigma * (0.5f * a.dy * a.dy);
    }
    float* o = grad + kGradFields * pos;
    o[0] = lane_sum(gmx); o[1] = lane_sum(gmy);
    o[2] = lane_sum(gA); o[3] = lane_sum(gB); o[4] = lane_sum(gC);
    o[5] = lane_sum(gr); o[6] = lane_sum(gg); o[7] = lane_sum(gb);
  }
}
