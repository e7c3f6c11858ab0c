// Spatial resizing of NCHW float32 tensors with PyTorch's exact semantics
// (torch.nn.functional.interpolate, CPU, float32). Index and weight arithmetic
// is done in float32 the way PyTorch does it, so outputs agree with PyTorch to
// float32 rounding of the sums (test/fixtures/resize holds PyTorch's outputs).
//
//   kNearest  mode='nearest':  src = min(floor(dst · (in/out)), in − 1), scale in float32
//   kArea     mode='area' (adaptive_avg_pool2d): output i averages input
//             [floor(i·in/out), ceil((i+1)·in/out)) — bins overlap when out ∤ in
//   kBicubic  mode='bicubic', align_corners=False, no antialias:
//             src = (dst + 0.5)·(in/out) − 0.5 (not clamped), t = src − floor(src),
//             taps floor(src)−1 .. floor(src)+2 clamped to [0, in−1], Keys cubic A = −0.75
//   kBilinear mode='bilinear', align_corners=False, no antialias:
//             src = max((dst + 0.5)·(in/out) − 0.5, 0), taps floor(src) and +1 (clamped)
// Separable in H and W: weights per axis, y-weights outermost as in PyTorch.
#pragma once
#include <cstdint>

#include "tessera/tensor.h"

namespace tessera {

enum class ResizeMode : int32_t { kNearest = 0, kArea = 1, kBicubic = 2, kBilinear = 3 };

struct ResizeArgs {
  TensorView x;    // [N, C, H, W] float32, any strides
  TensorView out;  // [N, C, Ho, Wo] float32, any strides; must not overlap x
  ResizeMode mode = ResizeMode::kBicubic;
};
void resize(const ResizeArgs& args);

}  // namespace tessera
