// 2D-Gaussian tile kernels, AVX-512: one zmm per 16-pixel tile row.
// The kernel text is tile.h; this file only picks the ISA (CMake gives
// *_avx2.cpp / *_avx512.cpp their flags by name).
#include <cstdint>

#include "cpu/gauss2d/gauss2d_cpu.h"

namespace tessera::cpu::gauss2d {
namespace {
#include "cpu/gauss2d/tile.h"
}  // namespace

const TileKernels& tile_kernels_avx512() {
  static const TileKernels k{forward_tile, backward_tile};
  return k;
}

}  // namespace tessera::cpu::gauss2d
