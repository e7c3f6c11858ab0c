// Tile blending kernels for AVX-512: one zmm register per 16-pixel tile row.
// The kernel text is raster_tile.h; this file only picks the ISA (CMake
// gives *_avx512.cpp its flags by name).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu/splat/splat_cpu.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::splat {
namespace {
#include "cpu/splat/raster_tile.h"

bool any_lane(vi m) {
  return _mm512_test_epi32_mask(reinterpret_cast<__m512i>(m), reinterpret_cast<__m512i>(m)) != 0;
}
}  // namespace

const RasterKernels& raster_kernels_avx512() {
  static const RasterKernels k{forward_tile, backward_tile};
  return k;
}

}  // namespace tessera::cpu::splat
