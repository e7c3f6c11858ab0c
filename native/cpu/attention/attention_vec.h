// Vector helpers for the attention kernels, written once with GCC/Clang vector
// extensions and compiled per ISA: each including file defines
//   TESSERA_ATTN_NS     a namespace private to that file's ISA, and
//   TESSERA_ATTN_WIDTH  floats per vector (4 portable/SSE2, 8 AVX2, 16 AVX-512).
// Everything here lives in that namespace, so copies compiled with different
// -m flags never meet at link time (the one-definition rule would otherwise
// let the linker keep an AVX-512 copy for the portable path).
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/attention/attention_plan.h"
#if defined(__SSE2__)
#include <immintrin.h>
#endif
#if !defined(__F16C__)
#include "tessera/dtype_convert.h"
#endif

namespace tessera::cpu::attn::TESSERA_ATTN_NS {

constexpr int W = TESSERA_ATTN_WIDTH;
typedef float vf __attribute__((vector_size(W * 4)));
typedef int32_t vi __attribute__((vector_size(W * 4)));
typedef float vf_unaligned __attribute__((vector_size(W * 4), aligned(4)));
constexpr float kNegInf = -__builtin_inff();

inline vf load(const float* p) { return *reinterpret_cast<const vf_unaligned*>(p); }
inline void store(float* p, vf x) { *reinterpret_cast<vf_unaligned*>(p) = x; }
// x − (+0) is x for every x (unlike 0 + x, which turns −0 into +0), so the
// compiler folds it and emits a bare broadcast (or an embedded {1toW} operand).
inline vf splat(float x) { return x - vf{}; }
// Horizontal reductions. GCC does not fold shuffle masks built in a loop, so
// each width names its own instructions.
inline float hsum(vf x) {
#if TESSERA_ATTN_WIDTH == 16
  return _mm512_reduce_add_ps(x);
#elif TESSERA_ATTN_WIDTH == 8
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
#elif defined(__SSE2__)
  const __m128 q = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
#else
  float s = 0;
  for (int i = 0; i < W; ++i) s += x[i];
  return s;
#endif
}
inline float hmax(vf x) {
#if TESSERA_ATTN_WIDTH == 16
  return _mm512_reduce_max_ps(x);
#elif TESSERA_ATTN_WIDTH == 8
  const __m128 h = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  const __m128 q = _mm_max_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_max_ss(q, _mm_shuffle_ps(q, q, 1)));
#elif defined(__SSE2__)
  const __m128 q = _mm_max_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_max_ss(q, _mm_shuffle_ps(q, q, 1)));
#else
  float m = x[0];
  for (int i = 1; i < W; ++i) m = x[i] > m ? x[i] : m;
  return m;
#endif
}
// Lane indices 0, 1, ..., W−1.
inline vi iota() {
  alignas(64) static const int32_t k[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return *reinterpret_cast<const vi*>(k);
}
inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// 2^x for x <= 0, exactly 0 below -126 (so -inf logits of masked keys add
// nothing). x = n + f with n = round(x), f in [-1/2, 1/2]; 2^f = e^(f·ln2)
// by its Taylor series to degree 7, remainder < (ln2/2)^8/8! ≈ 5e-9, so the
// result is within ~2 ulp (≈1.2e-7 relative) of 2^x.
inline vf exp2_neg(vf x) {
  const vf magic = splat(12582912.f);  // 1.5·2^23: x + magic rounds x to an integer
  const vf lo = splat(-126.f);
  const vf xc = x < lo ? lo : x;
  const vf t = xc + magic;
  const vf n = t - magic;
  const vf f = xc - n;
  vf p = splat(1.5252733804059841e-05f);  // ln2^7/7!
  p = p * f + splat(1.5403530393381606e-04f);
  p = p * f + splat(1.3333558146428441e-03f);
  p = p * f + splat(9.6181291076284772e-03f);
  p = p * f + splat(5.5504108664821580e-02f);
  p = p * f + splat(2.4022650695910071e-01f);
  p = p * f + splat(6.9314718055994531e-01f);
  p = p * f + splat(1.f);
  const vi ni = (vi)t - (vi)magic;
  const vf two_n = (vf)((ni + 127) << 23);
  return x < lo ? vf{} : p * two_n;
}

inline float bf16_bits_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even bf16, kept in a float (NaN stays NaN).
inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float f16_bits_to_f32(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  return tessera::f16_to_f32(h);
#endif
}

inline uint16_t f32_to_f16_bits(float f) {
#if defined(__F16C__)
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
  return tessera::f32_to_f16(f);
#endif
}

// n elements of dtype dt at src → f32 dst.
inline void load_row(const char* src, DType dt, int64_t n, float* dst) {
  if (dt == DType::kF32) {
    std::memcpy(dst, src, sizeof(float) * n);
  } else if (dt == DType::kBF16) {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_bits_to_f32(s[i]);
  } else {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
    int64_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
#endif
    for (; i < n; ++i) dst[i] = f16_bits_to_f32(s[i]);
  }
}

// x / max(‖x‖, 1e-12) in place (F.normalize, as VAR applies it to q and k).
// The sum of squares is accumulated in f32 vectors (relative error ~1e-7).
inline void l2_normalize(float* x, int64_t n) {
  vf acc = vf{};
  int64_t i = 0;
  for (; i + W <= n; i += W) acc += load(x + i) * load(x + i);
  float s = hsum(acc);
  for (; i < n; ++i) s += x[i] * x[i];
  const float norm = __builtin_sqrtf(s);
  const float inv = 1.f / (norm > 1e-12f ? norm : 1e-12f);
  for (i = 0; i < n; ++i) x[i] *= inv;
}

// Writes output row (b, h, i) = o / l in the output dtype, and its lse.
inline void store_output(const Problem& p, int64_t b, int64_t h, int64_t i, const float* o, float m2, float l) {
  char* dst = p.out + (b * p.ob + h * p.oh + i * p.ol) * static_cast<int64_t>(p.out_dtype == DType::kF32 ? 4 : 2);
  if (!(l > 0)) {  // no visible key: zeros (o may hold anything then)
    std::memset(dst, 0, p.D * (p.out_dtype == DType::kF32 ? 4 : 2));
    if (p.lse) p.lse[b * p.lb + h * p.lh + i * p.ll] = kNegInf;
    return;
  }
  const float inv = 1.f / l;
  if (p.out_dtype == DType::kF32) {
    float* d = reinterpret_cast<float*>(dst);
    for (int64_t k = 0; k < p.D; ++k) d[k] = o[k] * inv;
  } else {
    uint16_t* d = reinterpret_cast<uint16_t*>(dst);
    const bool bf = p.out_dtype == DType::kBF16;
    for (int64_t k = 0; k < p.D; ++k) d[k] = bf ? f32_to_bf16_bits(o[k] * inv) : f32_to_f16_bits(o[k] * inv);
  }
  if (p.lse) p.lse[b * p.lb + h * p.lh + i * p.ll] = 0.69314718055994531f * (m2 + __builtin_log2f(l));
}

}  // namespace tessera::cpu::attn::TESSERA_ATTN_NS
