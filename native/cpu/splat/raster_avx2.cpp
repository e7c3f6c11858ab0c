// Projection and tile blending kernels for AVX2 + FMA: two ymm registers per 16-pixel tile row.
// The kernel text is raster_tile.h and project_simd.h; this file only picks the ISA (CMake
// gives *_avx2.cpp its flags by name).
#include <immintrin.h>

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
  typedef int32_t vi8 __attribute__((vector_size(32)));
#if __has_builtin(__builtin_shufflevector)
  const vi8 o = __builtin_shufflevector(m, m, 0, 1, 2, 3, 4, 5, 6, 7) | __builtin_shufflevector(m, m, 8, 9, 10, 11, 12, 13, 14, 15);
#else  // gcc < 12 (the bullseye release build): the same OR of the two halves
  vi8 lo, hi;
  std::memcpy(&lo, &m, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(&m) + sizeof lo, sizeof hi);
  const vi8 o = lo | hi;
#endif
  const __m256i v = reinterpret_cast<__m256i>(o);
  return !_mm256_testz_si256(v, v);
}
// 64-byte vectors as two 32-byte halves (memcpy, which GCC turns into
// register moves; __builtin_shufflevector is missing before gcc 12).
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
template <class H, class V>
void split(const V& v, H* lo, H* hi) {
  std::memcpy(lo, &v, sizeof(H));
  std::memcpy(hi, reinterpret_cast<const char*>(&v) + sizeof(H), sizeof(H));
}
template <class V, class H>
V join(const H& lo, const H& hi) {
  V v;
  std::memcpy(&v, &lo, sizeof(H));
  std::memcpy(reinterpret_cast<char*>(&v) + sizeof(H), &hi, sizeof(H));
  return v;
}
uint32_t lane_bits(vi m) {
  vi8 lo, hi;
  split(m, &lo, &hi);
  const vi8 zlo = lo != 0, zhi = hi != 0;
  return uint32_t(_mm256_movemask_ps(reinterpret_cast<__m256>(zlo))) |
         uint32_t(_mm256_movemask_ps(reinterpret_cast<__m256>(zhi))) << 8;
}
vf vsqrt(vf x) {
  vf8 lo, hi;
  split(x, &lo, &hi);
  return join<vf>(reinterpret_cast<vf8>(_mm256_sqrt_ps(reinterpret_cast<__m256>(lo))),
                  reinterpret_cast<vf8>(_mm256_sqrt_ps(reinterpret_cast<__m256>(hi))));
}
vf vgather(const float* base, vi idx) {
  vi8 lo, hi;
  split(idx, &lo, &hi);
  return join<vf>(reinterpret_cast<vf8>(_mm256_i32gather_ps(base, reinterpret_cast<__m256i>(lo), 4)),
                  reinterpret_cast<vf8>(_mm256_i32gather_ps(base, reinterpret_cast<__m256i>(hi), 4)));
}
void vstream(float* dst, vf v) {
  __m256 h[2];
  std::memcpy(h, &v, sizeof v);
  _mm256_stream_ps(dst, h[0]);
  _mm256_stream_ps(dst + 8, h[1]);
}
}  // namespace

const RasterKernels& raster_kernels_avx2() {
  static const RasterKernels k{project_range, blend_chunk, finish_tile, backward_tile};
  return k;
}

}  // namespace tessera::cpu::splat
