// 2D image Gaussians (GaussianImage, Zhang et al. ECCV 2024) rendered by
// accumulated sum, forward and backward, at any output scale (the
// scale-aware footprint of GSASR). Spec: shared/spec/gaussian-splatting.md §3.
//
// Parameters (raw, as trained; float32, last dimension contiguous):
//  * xy [N,2]: the mean is (½·W·(tanh x + 1), ½·H·(tanh y + 1)) in the
//    coordinates of the W×H image the Gaussians were fitted to, where image
//    pixel (i, j) is sampled at (i, j), as GaussianImage's rasterizer does
//    (center = 0.5·W·x + 0.5·W, px = j).
//  * cholesky [N,3] = (l11, l21, l22) before the (0.5, 0, 0.5) offset:
//    L = [[l11 + 0.5, 0], [l21, l22 + 0.5]], Σ = L·Lᵀ in pixels².
//  * color [N,3]: linear RGB, no activation. Opacity is fixed at 1.
//
// Rendering into an output of Wo×Ho pixels (scale sx = Wo/W, sy = Ho/H):
// the image is a continuous function in those coordinates; output pixel
// (i, j) samples it where its centre falls, ((i+0.5)/sx − 0.5,
// (j+0.5)/sy − 0.5) (pixel centres aligned, as align_corners=False
// resizing). Equivalently, in output pixels sampled at their centres the
// mean becomes (½·Wo·(tanh x + 1) + ½·sx, ½·Ho·(tanh y + 1) + ½·sy) and Σ
// becomes S·Σ·S with S = diag(sx, sy): the footprint grows with the factor
// (GSASR's scale-aware rendering). At scale 1 this is GaussianImage's own
// render of the same parameters, and the fitting render.
//  * conic (A, B, C) = Σ⁻¹; σ = ½(A·dx² + C·dy²) + B·dx·dy with d = pixel − mean.
//  * radius = ceil(3·sqrt(λmax)), λmax = mid + sqrt(max(0.1, mid² − det)),
//    mid = (Σxx + Σyy)/2; a Gaussian is evaluated in the 16×16 tiles its
//    square [centre ± radius] touches, centre = mean − ½ in pixel-index
//    coordinates (tile rule of spec §1.8, GaussianImage's get_tile_bbox).
//  * per pixel C = Σ c·α over the Gaussians of its tile, α = min(1, e^−σ),
//    skipping σ < 0 and α < 1/255; then clamped to [0, 1] when `clamp`.
//    The sum is order independent; it is taken in Gaussian index order, so
//    the result is bitwise deterministic for any thread count.
// Invalid Gaussians (a NaN/Inf parameter, or a singular L: l11 + 0.5 = 0 or
// l22 + 0.5 = 0) are skipped, counted, and get zero gradients.
#pragma once
#include <cstdint>

#include "tessera/tensor.h"

namespace tessera {

constexpr int kGauss2dTile = 16;

struct Gauss2dImage {
  TensorView xy;        // [N,2] f32
  TensorView cholesky;  // [N,3] f32
  TensorView color;     // [N,3] f32
  int32_t width = 0, height = 0;  // the image the parameters describe
};

struct Gauss2dStats {
  int64_t gaussians = 0;
  int64_t invalid = 0;        // skipped by the rule above
  int64_t visible = 0;        // touching >= 1 tile of the output
  int64_t intersections = 0;  // (tile, Gaussian) pairs
};

struct Gauss2dRenderArgs {
  Gauss2dImage image;
  TensorView rgb;      // [Ho,Wo,3] f32 contiguous: the output, any size >= 1
  bool clamp = true;   // clamp to [0, 1] (GaussianImage does)
  Gauss2dStats* stats = nullptr;
};

// Backward of gauss2d_render for the same image, output size and clamp. The
// forward is recomputed (stateless). Where clamping was active (C < 0 or
// C > 1) the pixel passes no gradient. Outputs are overwritten.
struct Gauss2dBackwardArgs {
  Gauss2dImage image;
  TensorView grad_rgb;  // [Ho,Wo,3] f32 contiguous
  bool clamp = true;
  TensorView grad_xy, grad_cholesky, grad_color;  // contiguous f32, shapes of the parameters
  Gauss2dStats* stats = nullptr;
};

// Validation throws tessera::Error (kShape, kDtype, kInvalidArgument, kAlias, kDevice).
void gauss2d_render(const Gauss2dRenderArgs& args);
void gauss2d_backward(const Gauss2dBackwardArgs& args);

}  // namespace tessera
