// 2-D convolution (PyTorch nn.Conv2d semantics, NCHW, cross-correlation).
//   out[n, o, y, x] = bias[o] + Σ_{c, i, j} weight[o, c, i, j] ·
//                     in[n, g·Cig + c, y·sh − pad_top + i·dh, x·sw − pad_left + j·dw]
// with g = o / Cog, Cig = Ci / groups, Cog = Co / groups, and zeros outside
// the input (so asymmetric padding such as LlamaGen's and VAR's "pad right and
// bottom by 1" is pad_top = pad_left = 0, pad_bottom = pad_right = 1).
// Ho = (H + pad_top + pad_bottom − dh·(kh − 1) − 1) / sh + 1, likewise Wo.
#pragma once
#include <cstdint>

#include "tessera/gemm.h"
#include "tessera/tensor.h"

namespace tessera {

struct Conv2dArgs {
  TensorView x;       // [N, Ci, H, W] float32, any strides
  TensorView weight;  // [Co, Ci/groups, kh, kw], contiguous; float32 (bfloat16/float16 when groups == 1)
  // Optional pack_weight() of `weight` viewed as [Co, Ci·kh·kw] (groups == 1
  // only). `weight` must still be given: its shape is read, its data is not.
  const PackedWeight* packed = nullptr;
  TensorView bias;    // [Co] float32, or empty
  TensorView out;     // [N, Co, Ho, Wo] float32, any strides; must not overlap x, weight or bias
  int32_t stride_h = 1, stride_w = 1;
  int32_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int32_t dilation_h = 1, dilation_w = 1;
  int32_t groups = 1;  // Ci and Co must be multiples of it
  // out += conv(x) + bias instead of out = conv(x) + bias: a residual that is
  // already in `out` (ResnetBlock's shortcut) is added without another pass.
  bool accumulate = false;
  // 2: x is read through a nearest 2× upsample (out[i] = in[i / 2] along H and
  // W; VAR/LDM's Upsample2x followed by this conv) without the upsampled map
  // being stored: H and W above are then 2·x's. Only for float32 3×3 convs
  // with stride 1, padding 1, dilation 1, one group, unit stride along x and
  // output planes without gaps (the Winograd route). 1: x as it is.
  int32_t upsample = 1;
};

// CPU: float32 3×3 stride-1 convs with padding 1 on maps with Ho·Wo >= 2·Co
// (and every upsample = 2 conv) use Winograd F(4×4, 3×3) (36 instead of 144
// multiplies per 4×4 tile and channel pair). Other float32 convs with unit stride along x and large maps
// (Ho·Wo >= 4·Co) run channel-major: the weight is the GEMM's A operand and the patches are
// built 32 pixels at a time inside the GEMM, tiles stored straight into NCHW.
// Otherwise a 1×1, stride-1, unpadded conv over contiguous planes is one
// float32 GEMM per image; grouped convs with one input channel per group
// (depthwise) run a direct loop; everything else goes through im2col tiles of
// pixels fed to linear() with the weight packed once per call (or `packed`).
// TESSERA_CONV_ROUTE=im2col|channel_major|winograd overrides the choice (tests, A/B;
// upsample = 2 convs always run Winograd).
void conv2d(const Conv2dArgs& args);

}  // namespace tessera
