// conv2d routes that live in their own files (cpu/nn/conv.cpp chooses).
#pragma once
#include "tessera/conv.h"

namespace tessera::cpu {

// Whether the Winograd route applies: float32 compute, one group, 3×3,
// stride 1, dilation 1, padding 1 on every side, unit stride along x, NCHW
// output planes without gaps.
bool winograd_ok(const Conv2dArgs& a);
// Winograd F(4×4, 3×3) (cpu/nn/conv_winograd.cpp). up = 2 reads the input
// through a nearest 2× upsample (a.x is the low-resolution map, a.out twice
// its size); up = 1 reads it as it is.
void conv_winograd(const Conv2dArgs& a, int up = 1);

}  // namespace tessera::cpu
