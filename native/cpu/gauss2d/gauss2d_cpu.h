// CPU renderer of 2D image Gaussians (tessera/gauss2d.h), internal
// interfaces. Pipeline: project (per Gaussian: mean, conic, tile rectangle)
// → bin (tile lists in Gaussian index order) → per-tile sum, and for the
// backward: per-tile gradients per intersection → fixed-order reduction per
// Gaussian → chain rule to the raw parameters. No atomics anywhere, so every
// result is bitwise the same for any thread count.
#pragma once
#include <cstdint>

#include "tessera/gauss2d.h"

namespace tessera::cpu {
void gauss2d_render(const Gauss2dRenderArgs& a);
void gauss2d_backward(const Gauss2dBackwardArgs& a);
}  // namespace tessera::cpu

namespace tessera::cpu::gauss2d {

// One Gaussian in output pixels.
struct Projected {
  float mx, my;     // mean in output pixels (output pixel i sampled at i + 0.5)
  float A, B, C;    // conic Σ⁻¹ (σ = ½(A dx² + C dy²) + B dx dy)
  float rgb[3];
  float ky;         // ½(C − B²/A): a row at offset dy has σ >= dy²·ky
  int32_t rect[4];  // tiles [x0, x1) × [y0, y1); empty when not visible
};

// Output geometry.
struct Frame {
  int32_t width, height, tiles_x, tiles_y;
};

// tile t owns list[offsets[t] .. offsets[t+1]) (Gaussian indices, ascending);
// Gaussian i's j-th tile (rect order) is emission emit_begin[i] + j and
// landed at list position slot[emission].
struct Bins {
  int64_t* offsets = nullptr;
  int32_t* list = nullptr;
  int64_t* emit_begin = nullptr;  // [n + 1]
  int64_t* slot = nullptr;
  int64_t intersections = 0;
};

// Per-intersection gradient: d/d(mx, my, A, B, C, r, g, b).
constexpr int kGradFields = 8;

struct TileKernels {
  // Writes the tile's pixels of rgb ([Ho,Wo,3]); clamps when asked.
  void (*forward)(const Projected* p, const Bins& bins, const Frame& f, int64_t tile, int tid, bool clamp, float* rgb);
  // Writes kGradFields floats per list entry of the tile at grad[kGradFields·pos].
  void (*backward)(const Projected* p, const Bins& bins, const Frame& f, int64_t tile, int tid, bool clamp,
                   const float* grad_rgb, float* grad);
};
const TileKernels& tile_kernels_avx512();
const TileKernels& tile_kernels_avx2();
const TileKernels& tile_kernels_scalar();

}  // namespace tessera::cpu::gauss2d
