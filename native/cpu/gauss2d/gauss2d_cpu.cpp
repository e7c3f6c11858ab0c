// CPU entry points of the 2D-Gaussian renderer (arguments already
// validated): project → bin → per-tile sum, and for the backward per-tile
// gradients → fixed-order reduction per Gaussian → chain rule to the raw
// GaussianImage parameters (tessera/gauss2d.h has the maths).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "cpu/gauss2d/gauss2d_cpu.h"
#include "cpu/splat/splat_cpu.h"  // splat::Arena: call-lifetime pooled memory
#include "tessera/cpu.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
using namespace gauss2d;
using splat::Arena;

namespace {

const TileKernels& kernels() {
  switch (active_isa()) {
    case Isa::kAvx512Bf16:
    case Isa::kAvx512: return tile_kernels_avx512();
    case Isa::kAvx2: return tile_kernels_avx2();
    case Isa::kScalar: break;
  }
  return tile_kernels_scalar();
}

constexpr float kCholeskyOffset[3] = {0.5f, 0.f, 0.5f};  // GaussianImage's bound on L
constexpr int64_t kGrain = 2048;

// Raw parameters of Gaussian i (any row strides).
struct Raw {
  float x, y, l11, l21, l22, rgb[3];
};
Raw raw(const Gauss2dImage& im, int64_t i) {
  const float* xy = im.xy.ptr<float>() + i * im.xy.strides[0];
  const float* ch = im.cholesky.ptr<float>() + i * im.cholesky.strides[0];
  const float* co = im.color.ptr<float>() + i * im.color.strides[0];
  return {xy[0], xy[1], ch[0] + kCholeskyOffset[0], ch[1] + kCholeskyOffset[1], ch[2] + kCholeskyOffset[2],
          {co[0], co[1], co[2]}};
}

struct Scale {
  float sx, sy;  // output pixels per image pixel
};

// Projects Gaussian i into the output; returns false when invalid. The rect
// is empty when the Gaussian touches no tile.
bool project(const Gauss2dImage& im, int64_t i, const Frame& f, Scale s, Projected* p) {
  const Raw r = raw(im, i);
  const float v[8] = {r.x, r.y, r.l11, r.l21, r.l22, r.rgb[0], r.rgb[1], r.rgb[2]};
  for (float e : v)
    if (!std::isfinite(e)) return false;
  if (r.l11 == 0.f || r.l22 == 0.f) return false;
  // Σ_out = S·L·Lᵀ·S; det = (sx·sy·l11·l22)² without the cancellation of ac − b².
  const double a = double(s.sx) * s.sx * r.l11 * r.l11;
  const double b = double(s.sx) * s.sy * r.l11 * r.l21;
  const double c = double(s.sy) * s.sy * (double(r.l21) * r.l21 + double(r.l22) * r.l22);
  const double sd = double(s.sx) * s.sy * r.l11 * r.l22;
  const double det = sd * sd;
  if (!(det > 0) || !std::isfinite(det) || !std::isfinite(c)) return false;
  p->A = float(c / det);
  p->B = float(-b / det);
  p->C = float(a / det);
  p->ky = float(0.5 / c);  // ½(C − B²/A) = 1/(2Σyy)
  // GaussianImage's mean ½·W·(tanh + 1) is in coordinates where image pixel
  // j is sampled at j (its rasterizer's px = j); output pixel j' (sampled at
  // j' + 0.5 here) sits at (j' + 0.5)/s − 0.5 there, hence the ½·s offset.
  p->mx = 0.5f * f.width * (std::tanh(r.x) + 1.f) + 0.5f * s.sx;
  p->my = 0.5f * f.height * (std::tanh(r.y) + 1.f) + 0.5f * s.sy;
  for (int k = 0; k < 3; ++k) p->rgb[k] = r.rgb[k];
  const double mid = 0.5 * (a + c);
  const double lmax = mid + std::sqrt(std::max(0.1, mid * mid - det));
  const double rad = std::ceil(3.0 * std::sqrt(lmax));
  // Tile rectangle (spec §1.8), clamped before the conversion to int.
  auto clampd = [](double v, int hi) { return static_cast<int32_t>(std::min<double>(std::max<double>(v, 0.0), hi)); };
  // From the centre in pixel-index coordinates (mean − ½), as GaussianImage's
  // get_tile_bbox sees it.
  const double cx = double(p->mx) - 0.5, cy = double(p->my) - 0.5;
  p->rect[0] = clampd(std::floor((cx - rad) / kGauss2dTile), f.tiles_x);
  p->rect[1] = clampd(std::floor((cx + rad + kGauss2dTile - 1) / kGauss2dTile), f.tiles_x);
  p->rect[2] = clampd(std::floor((cy - rad) / kGauss2dTile), f.tiles_y);
  p->rect[3] = clampd(std::floor((cy + rad + kGauss2dTile - 1) / kGauss2dTile), f.tiles_y);
  return true;
}

int64_t rect_area(const Projected& p) {
  return int64_t(std::max(0, p.rect[1] - p.rect[0])) * std::max(0, p.rect[3] - p.rect[2]);
}

struct Pass {
  Frame frame;
  Scale scale;
  Projected* proj;
  Bins bins;
};

// Projects every Gaussian and builds the tile lists (Gaussians in index order
// within a tile, so every sum has a fixed order).
void project_and_bin(const Gauss2dImage& im, int64_t ho, int64_t wo, Arena* arena, Pass* pass, Gauss2dStats* st) {
  const int64_t n = im.xy.shape[0];
  Frame& f = pass->frame;
  f.width = static_cast<int32_t>(wo);
  f.height = static_cast<int32_t>(ho);
  f.tiles_x = (f.width + kGauss2dTile - 1) / kGauss2dTile;
  f.tiles_y = (f.height + kGauss2dTile - 1) / kGauss2dTile;
  pass->scale = {float(double(wo) / im.width), float(double(ho) / im.height)};
  pass->proj = arena->array<Projected>(n);
  std::atomic<int64_t> invalid{0};
  ThreadPool::global().parallel_for(n, kGrain, [&](int64_t b, int64_t e, int) {
    int64_t bad = 0;
    for (int64_t i = b; i < e; ++i) {
      if (!project(im, i, f, pass->scale, &pass->proj[i])) {
        bad++;
        std::memset(pass->proj[i].rect, 0, sizeof(pass->proj[i].rect));
      }
    }
    invalid += bad;
  });
  const int64_t tiles = int64_t(f.tiles_x) * f.tiles_y;
  Bins& bins = pass->bins;
  bins.offsets = arena->array<int64_t>(tiles + 1);
  bins.emit_begin = arena->array<int64_t>(n + 1);
  std::memset(bins.offsets, 0, sizeof(int64_t) * (tiles + 1));
  int64_t total = 0, visible = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Projected& p = pass->proj[i];
    bins.emit_begin[i] = total;
    const int64_t area = rect_area(p);
    total += area;
    visible += area > 0;
    for (int ty = p.rect[2]; ty < p.rect[3]; ++ty)
      for (int tx = p.rect[0]; tx < p.rect[1]; ++tx) bins.offsets[int64_t(ty) * f.tiles_x + tx + 1]++;
  }
  bins.emit_begin[n] = total;
  for (int64_t t = 0; t < tiles; ++t) bins.offsets[t + 1] += bins.offsets[t];
  bins.intersections = total;
  bins.list = arena->array<int32_t>(total);
  bins.slot = arena->array<int64_t>(total);
  int64_t* fill = arena->array<int64_t>(tiles);
  std::memcpy(fill, bins.offsets, sizeof(int64_t) * tiles);
  for (int64_t i = 0; i < n; ++i) {
    const Projected& p = pass->proj[i];
    int64_t e = bins.emit_begin[i];
    for (int ty = p.rect[2]; ty < p.rect[3]; ++ty)
      for (int tx = p.rect[0]; tx < p.rect[1]; ++tx) {
        const int64_t pos = fill[int64_t(ty) * f.tiles_x + tx]++;
        bins.list[pos] = static_cast<int32_t>(i);
        bins.slot[e++] = pos;
      }
  }
  st->gaussians = n;
  st->invalid = invalid.load();
  st->visible = visible;
  st->intersections = total;
}

int64_t num_tiles(const Frame& f) { return int64_t(f.tiles_x) * f.tiles_y; }

// Chain rule from (mx, my, A, B, C, rgb) of the output to the raw parameters.
void chain_rule(const Gauss2dImage& im, int64_t i, const Pass& pass, const float* g, float* dxy, float* dch, float* dco) {
  const Raw r = raw(im, i);
  const Projected& p = pass.proj[i];
  // mx = ½·Wo·(tanh x + 1) + ½·sx (the offset has no gradient)
  const float tx = std::tanh(r.x), ty = std::tanh(r.y);
  dxy[0] = g[0] * 0.5f * pass.frame.width * (1.f - tx * tx);
  dxy[1] = g[1] * 0.5f * pass.frame.height * (1.f - ty * ty);
  // Conic Q = Σ_out⁻¹: dL/dΣ_out = −Q·G·Q with G the per-entry gradient of Q
  // (the off-diagonal B appears twice, so each entry carries dL/dB / 2).
  const double A = p.A, B = p.B, C = p.C;
  const double g00 = g[2], g01 = 0.5 * g[3], g11 = g[4];
  // QG = Q·G, then −QG·Q (symmetric).
  const double qg00 = A * g00 + B * g01, qg01 = A * g01 + B * g11;
  const double qg10 = B * g00 + C * g01, qg11 = B * g01 + C * g11;
  double s00 = -(qg00 * A + qg01 * B), s01 = -(qg00 * B + qg01 * C), s11 = -(qg10 * B + qg11 * C);
  // Σ_out = S·Σ·S
  const double sx = pass.scale.sx, sy = pass.scale.sy;
  s00 *= sx * sx;
  s01 *= sx * sy;
  s11 *= sy * sy;
  // Σ = L·Lᵀ: dL/dL = 2·G_Σ·L on the lower triangle.
  dch[0] = float(2 * (s00 * r.l11 + s01 * r.l21));
  dch[1] = float(2 * (s01 * r.l11 + s11 * r.l21));
  dch[2] = float(2 * s11 * r.l22);
  dco[0] = g[5];
  dco[1] = g[6];
  dco[2] = g[7];
}

}  // namespace

void gauss2d_render(const Gauss2dRenderArgs& a) {
  Arena arena;
  Pass pass;
  Gauss2dStats st;
  project_and_bin(a.image, a.rgb.shape[0], a.rgb.shape[1], &arena, &pass, &st);
  const TileKernels& k = kernels();
  float* out = a.rgb.ptr<float>();
  ThreadPool::global().parallel_for(num_tiles(pass.frame), 1, [&](int64_t b, int64_t e, int tid) {
    for (int64_t t = b; t < e; ++t) k.forward(pass.proj, pass.bins, pass.frame, t, tid, a.clamp, out);
  });
  if (a.stats) *a.stats = st;
}

void gauss2d_backward(const Gauss2dBackwardArgs& a) {
  const Gauss2dImage& im = a.image;
  const int64_t n = im.xy.shape[0];
  Arena arena;
  Pass pass;
  Gauss2dStats st;
  project_and_bin(im, a.grad_rgb.shape[0], a.grad_rgb.shape[1], &arena, &pass, &st);
  const TileKernels& k = kernels();
  const Bins& bins = pass.bins;
  float* igrad = arena.array<float>(kGradFields * bins.intersections);
  ThreadPool::global().parallel_for(num_tiles(pass.frame), 1, [&](int64_t b, int64_t e, int tid) {
    for (int64_t t = b; t < e; ++t) k.backward(pass.proj, bins, pass.frame, t, tid, a.clamp, a.grad_rgb.ptr<float>(), igrad);
  });
  float *dxy = a.grad_xy.ptr<float>(), *dch = a.grad_cholesky.ptr<float>(), *dco = a.grad_color.ptr<float>();
  // Each Gaussian sums its intersections in emission (tile-rectangle) order.
  ThreadPool::global().parallel_for(n, 256, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      float g[kGradFields] = {0};
      for (int64_t em = bins.emit_begin[i]; em < bins.emit_begin[i + 1]; ++em) {
        const float* src = igrad + kGradFields * bins.slot[em];
        for (int j = 0; j < kGradFields; ++j) g[j] += src[j];
      }
      if (bins.emit_begin[i] == bins.emit_begin[i + 1]) {  // invalid or off-screen: no gradient
        std::memset(dxy + 2 * i, 0, 2 * sizeof(float));
        std::memset(dch + 3 * i, 0, 3 * sizeof(float));
        std::memset(dco + 3 * i, 0, 3 * sizeof(float));
        continue;
      }
      chain_rule(im, i, pass, g, dxy + 2 * i, dch + 3 * i, dco + 3 * i);
    }
  });
  if (a.stats) *a.stats = st;
}

}  // namespace tessera::cpu
