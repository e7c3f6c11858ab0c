// 3D Gaussian-splatting rasterizer (3DGS), forward and backward.
//
// Semantics follow shared/spec/gaussian-splatting.md §1/§1b (the INRIA
// reference rasterizer), with these choices made explicit:
//  * Inputs are the training code's raw parameters: means [N,3], log-scales
//    [N,3], rotations [N,4] (w,x,y,z, normalised here), opacity logits [N],
//    SH coefficients [N,K,3] (K >= (degree+1)², degree 0..3). All float32,
//    any element strides with the last dimension contiguous.
//  * Camera: pinhole fx, fy, cx, cy in pixels, world-to-camera 4×4 in OpenCV
//    axes (x right, y down, z forward), row-major. Pixel (i, j) covers
//    [i, i+1)×[j, j+1) and is sampled at its centre (i+0.5, j+0.5), so a
//    centred camera has cx = W/2 (COLMAP/gsplat convention; equal to the
//    reference's integer-pixel sampling when cx = W/2).
//  * Near culling: view z <= near (0.2 as the reference). No side culling:
//    Gaussians whose 3σ tile rectangle is empty fall out (reference §1.8).
//    Within that rectangle only tiles where α can reach 1/255 are listed (the
//    bounding box of the ellipse o·e^power >= 1/255); the blend skips smaller
//    α anyway, so images equal the reference's. A Gaussian with opacity below
//    1/255 reaches no pixel and counts as culled_outside.
//  * EWA: tx/tz, ty/tz clamped to the 1.3×half-FOV guard band (asymmetric,
//    gsplat form), Σ2D = J·W·Σ·Wᵀ·Jᵀ + 0.3·I. Antialiased mode multiplies the
//    opacity by sqrt(max(0.000025, det Σ2D / det(Σ2D + 0.3 I))) computed
//    before/after the dilation.
//  * Colour: SH degree d with the reference constants, +0.5, clamped at 0.
//  * 16×16 tiles; per tile the Gaussians are ordered by (view z, index), so
//    equal depths break ties by index: the output is deterministic.
//  * Blending front to back: α = min(0.99, o·e^power), skip α < 1/255, stop
//    before a Gaussian that would take T below 1e-4 (reference constants).
//    rgb = Σ c·α·T + T_final·background.
//  * alpha = 1 − T_final. depth = Σ w·z / Σ w with w = α·T and z the view-space
//    z of the Gaussian mean (gsplat "ED", expected depth); 0 where Σ w = 0.
//  * contributors = number of Gaussians actually blended into the pixel (the
//    reference's n_contrib is instead the list position of the last one).
//
// Invalid Gaussians never crash the rasterizer (the reference does, on inf
// scales): a Gaussian is skipped and counted in SplatStats::invalid when any
// parameter it uses is NaN/Inf, its quaternion is zero, or its covariance
// overflows float32 (log-scale so large that exp(s)² is not finite). Scales
// are exp(log-scale) and so are never negative; an exp() that underflows to 0
// is a valid zero-size Gaussian (the 0.3 dilation still gives it a footprint).
// Opacity logits are unbounded by construction: any finite logit is valid.
// Skipped Gaussians get zero gradients.
#pragma once
#include <cstdint>

#include "tessera/tensor.h"

namespace tessera {

enum class SplatMode : int32_t { kClassic = 0, kAntialiased = 1 };

struct SplatCamera {
  float fx = 0, fy = 0, cx = 0, cy = 0;
  int32_t width = 0, height = 0;
  float view[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};  // world→camera, row-major
};

constexpr int kSplatTile = 16;
constexpr float kSplatNear = 0.2f;

// Counts over all cameras of one call. A Gaussian counts once in `invalid`;
// the others count once per camera.
struct SplatStats {
  int64_t gaussians = 0;      // N
  int64_t invalid = 0;        // skipped by the rule above
  int64_t culled_near = 0;    // view z <= near
  int64_t culled_outside = 0; // no tile in reach (off-screen, or opacity < 1/255)
  int64_t visible = 0;        // projected into >= 1 tile
  int64_t intersections = 0;  // (tile, Gaussian) pairs blended
};

struct SplatScene {
  TensorView means;           // [N,3] f32
  TensorView log_scales;      // [N,3] f32
  TensorView rotations;       // [N,4] f32 (w,x,y,z)
  TensorView opacity_logits;  // [N] f32
  TensorView sh;              // [N,K,3] f32
  int32_t sh_degree = 0;      // 0..3, (degree+1)² <= K
};

struct SplatRenderArgs {
  SplatScene scene;
  const SplatCamera* cameras = nullptr;  // all of one size (width, height)
  int32_t num_cameras = 0;
  SplatMode mode = SplatMode::kClassic;
  float background[3] = {0, 0, 0};
  float near_plane = kSplatNear;
  // Outputs (f32 unless noted), C = num_cameras:
  TensorView rgb;           // [C,H,W,3]
  TensorView alpha;         // [C,H,W] or empty
  TensorView depth;         // [C,H,W] or empty
  TensorView contributors;  // [C,H,W] int32 or empty
  SplatStats* stats = nullptr;  // optional
};

// Renders every camera. Validation throws tessera::Error (kShape, kDtype,
// kInvalidArgument, kAlias, kDevice); invalid Gaussian values never throw.
void splat_render(const SplatRenderArgs& args);

// Backward of splat_render for the same scene, cameras and options. The
// forward is recomputed (it is cheap next to the backward and keeps the API
// stateless), so only the upstream gradients are needed. Gradients of all
// cameras are summed into the outputs (overwritten, not accumulated into).
// Where α was clamped at 0.99 its gradient is zero (the derivative of the
// clamped function, as gsplat; the reference keeps it).
struct SplatBackwardArgs {
  SplatScene scene;
  const SplatCamera* cameras = nullptr;
  int32_t num_cameras = 0;
  SplatMode mode = SplatMode::kClassic;
  float background[3] = {0, 0, 0};
  float near_plane = kSplatNear;
  TensorView grad_rgb;    // [C,H,W,3]
  TensorView grad_alpha;  // [C,H,W] or empty
  TensorView grad_depth;  // [C,H,W] or empty
  // Outputs, contiguous f32 with the scene's shapes.
  TensorView grad_means, grad_log_scales, grad_rotations, grad_opacity_logits, grad_sh;
  SplatStats* stats = nullptr;
};

void splat_backward(const SplatBackwardArgs& args);

// Stage timings of the CPU rasterizer, for benchmarks. Wall and process CPU
// milliseconds (CLOCK_PROCESS_CPUTIME_ID, all threads) per stage, summed over
// cameras: preparation (the backward's zeroing of its outputs; the
// camera-independent values are computed in the first camera's projection),
// projection, binning (depth sort and tile lists), forward blend, backward
// blend (with its forward recomputation), and the per-Gaussian reduction plus
// the projection's chain rule. Kept out of SplatStats, which the CUDA
// library's ABI fixes.
enum SplatStage : int32_t {
  kSplatStagePrepare = 0,
  kSplatStageProject = 1,
  kSplatStageBin = 2,
  kSplatStageBlend = 3,
  kSplatStageBlendBackward = 4,
  kSplatStageProjectBackward = 5,
};
constexpr int kSplatStages = 6;
constexpr const char* kSplatStageNames[kSplatStages] = {"prepare", "project", "bin", "blend", "blendBackward",
                                                       "projectBackward"};
struct SplatStageTimes {
  double wall_ms[kSplatStages] = {0, 0, 0, 0, 0, 0};
  double cpu_ms[kSplatStages] = {0, 0, 0, 0, 0, 0};
};
// The times of the calling thread's CPU splat_render/splat_backward calls
// since the last take (zeros after a CUDA call), and resets them.
SplatStageTimes splat_take_stage_times();

}  // namespace tessera
