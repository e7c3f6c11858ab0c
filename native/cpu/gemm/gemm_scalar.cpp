// Portable GEMM kernels (no -m flags): the fallback on any x86-64 and the
// reference semantics of the fused epilogue that the SIMD files mirror.
#include <cmath>

#include "cpu/gemm/gemm_kernels.h"
#include "tessera/dtype_convert.h"

namespace tessera::cpu::gemm {
namespace {

constexpr int kMR = 4;

// GELU-tanh as x·σ(2u) = 0.5x(1 + tanh u), u = √(2/π)(x + 0.044715x³): the
// sigmoid form has no cancellation for negative x. Evaluated in double.
double activate(Activation act, double x) {
  if (act == Activation::kGeluTanh) {
    const double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    return x / (1.0 + std::exp(-2.0 * u));
  }
  if (act == Activation::kSilu) return x / (1.0 + std::exp(-x));
  return x;
}

// The epilogue for one value: the semantics every ISA's vector version mirrors.
void store_scalar(const Epilogue& e, int64_t m, int64_t n, float acc) {
  double v = acc;
  if (e.bias) v += e.bias[n];
  if (e.row_bias) v += e.row_bias[m];
  v = activate(e.act, v);
  if (e.gate) v *= e.gate[(m / e.gate_rows) * e.gate_ld + n];
  v *= e.alpha;
  if (e.residual) v += static_cast<double>(e.beta) * e.residual[m * e.res_ld + n];
  const float f = static_cast<float>(v);
  const int64_t idx = m * e.out_ld + n;
  if (e.out_dtype == DType::kF32) static_cast<float*>(e.out)[idx] = f;
  else if (e.out_dtype == DType::kBF16) static_cast<uint16_t*>(e.out)[idx] = f32_to_bf16(f);
  else static_cast<uint16_t*>(e.out)[idx] = f32_to_f16(f);
}

void gemm_f32_scalar(const Tile& t, int64_t kc, const float* a, const float* b, float* acc, bool load_acc,
                     const Epilogue* epi) {
  float c[kMR][kNR];
  for (int i = 0; i < t.rows; ++i)
    for (int j = 0; j < kNR; ++j) c[i][j] = load_acc ? acc[i * kNR + j] : 0.f;
  for (int64_t k = 0; k < kc; ++k) {
    const float* bk = b + k * kNR;
    for (int i = 0; i < t.rows; ++i) {
      const float ai = a[k * kMR + i];
      for (int j = 0; j < kNR; ++j) c[i][j] += ai * bk[j];
    }
  }
  for (int i = 0; i < t.rows; ++i) {
    if (!epi) {
      for (int j = 0; j < kNR; ++j) acc[i * kNR + j] = c[i][j];
      continue;
    }
    for (int j = 0; j < t.cols; ++j) store_scalar(*epi, t.m0 + i, t.n0 + j, c[i][j]);
  }
}

float load_w(const void* w, DType dt, int64_t idx) {
  if (dt == DType::kF32) return static_cast<const float*>(w)[idx];
  const uint16_t h = static_cast<const uint16_t*>(w)[idx];
  return dt == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

void gemv_scalar(const GemvArgs& g, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    float s[kGemvMaxM] = {0.f, 0.f, 0.f, 0.f};
    for (int64_t k = 0; k < g.K; ++k) {
      const float w = load_w(g.w, g.w_dtype, n * g.w_ld + k);
      for (int m = 0; m < g.M; ++m) s[m] += g.x[m * g.x_ld + k] * w;
    }
    for (int m = 0; m < g.M; ++m) store_scalar(g.epi, m, n, s[m]);
  }
}

// Small-M GEMM over packed B: the reference loops (one row of 32 sums at a
// time, fp32 accumulation in k order, as the SIMD kernels per lane).
void small_m_scalar(const SmallMArgs& s, int64_t j0, int64_t j1) {
  const bool bf16 = s.b_format == DType::kBF16;
  const int64_t panel_words = (bf16 ? (s.K + 1) / 2 : s.K) * kNR;
  for (int64_t j = j0; j < j1; ++j) {
    const uint32_t* panel = static_cast<const uint32_t*>(s.b) + j * panel_words;
    const int cols = static_cast<int>(s.N - j * kNR < kNR ? s.N - j * kNR : kNR);
    for (int64_t m = 0; m < s.M; ++m) {
      float c[kNR] = {};
      for (int64_t k = 0; k < s.K; ++k) {
        const float a = s.x[m * s.x_ld + k];
        for (int n = 0; n < kNR; ++n) {
          float w;
          if (bf16) {
            const uint32_t word = panel[(k / 2) * kNR + n];
            w = bf16_to_f32(static_cast<uint16_t>((k & 1) ? word >> 16 : word & 0xffffu));
          } else {
            w = reinterpret_cast<const float*>(panel)[k * kNR + n];
          }
          c[n] += a * w;
        }
      }
      for (int n = 0; n < cols; ++n) store_scalar(s.epi, m, j * kNR + n, c[n]);
    }
  }
}

}  // namespace

const IsaKernels& kernels_scalar() {
  static const IsaKernels k{kMR, gemm_f32_scalar, nullptr, gemv_scalar, nullptr, small_m_scalar};
  return k;
}

}  // namespace tessera::cpu::gemm
