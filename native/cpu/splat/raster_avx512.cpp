// Projection and tile blending kernels for AVX-512: one zmm register per 16-pixel tile row.
// The kernel text is raster_tile.h and project_simd.h; this file only picks the ISA (CMake
// gives *_avx512.cpp its flags by name).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "cpu/splat/splat_cpu.h"
#include "cpu/splat/splat_math.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::splat {
namespace {
#include "cpu/splat/raster_tile.h"
#include "cpu/splat/project_simd.h"

bool any_lane(vi m) {
  return _mm512_test_epi32_mask(reinterpret_cast<__m512i>(m), reinterpret_cast<__m512i>(m)) != 0;
}
// The masked forms: GCC 12 warns that the plain ones' undefined source may be used.
uint32_t lane_bits(vi m) {
  return _mm512_test_epi32_mask(reinterpret_cast<__m512i>(m), reinterpret_cast<__m512i>(m));
}
vf vsqrt(vf x) { return reinterpret_cast<vf>(_mm512_maskz_sqrt_ps(0xffff, reinterpret_cast<__m512>(x))); }
vf vgather(const float* base, vi idx) {
  return reinterpret_cast<vf>(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xffff, reinterpret_cast<__m512i>(idx), base, 4));
}
void vstream(float* dst, vf v) { _mm512_stream_ps(dst, reinterpret_cast<__m512>(v)); }
}  // namespace

const RasterKernels& raster_kernels_avx512() {
  static const RasterKernels k{project_range, blend_chunk, finish_tile, backward_tile};
  return k;
}

}  // namespace tessera::cpu::splat
