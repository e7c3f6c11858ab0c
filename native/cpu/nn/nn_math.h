// Small numeric helpers of the NN kernels, written so that the compiler
// vectorises them in any ISA's translation unit (no calls, no branches in the
// loops): float64 sums of float32 data, and exp for SiLU and softmax.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace tessera::cpu::nn {

// Σ v[i], and Σ (v[i] − c)², in float64: 8 float32 lanes sum blocks of 128
// values (16 per lane, relative error ≲ 1e-6 of the block), and the blocks are
// added in float64, so long rows do not lose precision and the result does not
// depend on how the work is split between threads.
inline double sum_f64(const float* v, int64_t n) {
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 128) {
    const int64_t i1 = std::min(n, i0 + 128);
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += v[i + j];
    float tail = 0;
    for (; i < i1; ++i) tail += v[i];
    total += static_cast<double>(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail;
  }
  return total;
}

inline double sum_sq_dev_f64(const float* v, int64_t n, float c) {
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 128) {
    const int64_t i1 = std::min(n, i0 + 128);
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8)
      for (int j = 0; j < 8; ++j) {
        const float d = v[i + j] - c;
        acc[j] += d * d;
      }
    float tail = 0;
    for (; i < i1; ++i) tail += (v[i] - c) * (v[i] - c);
    total += static_cast<double>(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail;
  }
  return total;
}

// e^x for float32, relative error ≲ 2e-7 on [-87, 88]; clamps outside (so
// e^(-large) is a tiny normal, never NaN). Cody–Waite reduction x = n·ln2 + r,
// |r| ≤ ln2/2, and the degree-6 Taylor polynomial of e^r (remainder < 1.3e-7).
inline float exp_f32(float x) {
  x = std::min(88.3f, std::max(-87.3f, x));
  const float n = (x * 1.44269504f + 12582912.f) - 12582912.f;  // round to nearest (|value| < 2^22)
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

inline float silu_f32(float x) { return x / (1.f + exp_f32(-x)); }

}  // namespace tessera::cpu::nn
