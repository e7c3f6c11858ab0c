#include <immintrin.h>

#include "cpu/bench/peak_loops.h"

namespace tessera::cpu::bench {

// 12 chains fill the 16 ymm registers with room for the two constants.
float peak_avx2(int64_t iters) {
  __m256 acc[12];
  const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float t[8];
  _mm256_store_ps(t, s);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

}  // namespace tessera::cpu::bench
