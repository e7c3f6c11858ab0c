// Projection and tile blending kernels for Baseline x86-64 (SSE2): four xmm registers per 16-pixel tile row.
// The kernel text is raster_tile.h and project_simd.h; this file only picks the ISA (CMake
// gives *_scalar.cpp no extra flags).
#include <emmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cpu/splat/splat_cpu.h"
#include "cpu/splat/splat_math.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::splat {
namespace {
#include "cpu/splat/raster_tile.h"
#include "cpu/splat/project_simd.h"

bool any_lane(vi m) {
  typedef int32_t vi4 __attribute__((vector_size(16)));
#if __has_builtin(__builtin_shufflevector)
  const vi4 o = __builtin_shufflevector(m, m, 0, 1, 2, 3) | __builtin_shufflevector(m, m, 4, 5, 6, 7) |
                __builtin_shufflevector(m, m, 8, 9, 10, 11) | __builtin_shufflevector(m, m, 12, 13, 14, 15);
#else  // gcc < 12 (the bullseye release build): the same OR of the four quarters
  vi4 q[4];
  std::memcpy(q, &m, sizeof q);
  const vi4 o = q[0] | q[1] | q[2] | q[3];
#endif
  return _mm_movemask_ps(reinterpret_cast<__m128>(o)) != 0;
}
uint32_t lane_bits(vi m) {
  uint32_t b = 0;
  for (int j = 0; j < 4; ++j) {
    typedef int32_t vi4 __attribute__((vector_size(16)));
    vi4 v;
    for (int l = 0; l < 4; ++l) v[l] = m[4 * j + l] != 0 ? -1 : 0;
    b |= uint32_t(_mm_movemask_ps(reinterpret_cast<__m128>(v))) << (4 * j);
  }
  return b;
}
vf vsqrt(vf x) {
  typedef float vf4 __attribute__((vector_size(16)));
  vf r;
  for (int j = 0; j < 4; ++j) {
    vf4 v;
    for (int l = 0; l < 4; ++l) v[l] = x[4 * j + l];
    v = reinterpret_cast<vf4>(_mm_sqrt_ps(reinterpret_cast<__m128>(v)));
    for (int l = 0; l < 4; ++l) r[4 * j + l] = v[l];
  }
  return r;
}
vf vgather(const float* base, vi idx) {
  vf r;
  for (int l = 0; l < kLanes; ++l) r[l] = base[idx[l]];
  return r;
}
void vstream(float* dst, vf v) {
  __m128 q[4];
  std::memcpy(q, &v, sizeof v);
  for (int j = 0; j < 4; ++j) _mm_stream_ps(dst + 4 * j, q[j]);
}
}  // namespace

const RasterKernels& raster_kernels_scalar() {
  static const RasterKernels k{project_range, blend_chunk, finish_tile, backward_tile};
  return k;
}

}  // namespace tessera::cpu::splat
