// GroupNorm (+SiLU), LayerNorm (+affine, +AdaLN) and RMSNorm on the CPU.
// Statistics in float64 (nn_math.h), applied in float32 in passes over rows
// that are already in L1/L2, each pass a plain loop the compiler vectorises.
#include <algorithm>
#include <cmath>

#include "cpu/nn/nn_math.h"
#include "cpu/nn/nn_ops.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
namespace {

using nn::row_offset;
using nn::silu_f32;
using nn::sum_f64;
using nn::sum_sq_dev_f64;

// Rows per parallel chunk: about 16K elements each.
int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 16384 / C); }

// GroupNorm's per-channel passes, cloned per ISA (GCC/Clang ifunc dispatch at
// load time): this file is built for the baseline ISA, where the stats run 4
// lanes wide and SiLU's exp runs scalar-ish; the AVX2/AVX-512 clones of these
// plain loops run 8/16 lanes (the 256² decoder maps are ~10M values per call).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#define TESSERA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TESSERA_CLONES
#endif

// A channel's Σ v and Σ (v − c)² over its whole plane (up to 65536 values in
// the VQVAE decoder): 16 float64 accumulators, one per lane, so the loop is
// a widening add per 16 values (no float32 partial sums, no per-block
// reduction), and the order is fixed by n alone.
TESSERA_CLONES double gn_sum(const float* v, int64_t n) {
  double acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += v[i + j];
  for (int j = 0; i < n; ++i, ++j) acc[j] += v[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

TESSERA_CLONES double gn_sum_sq_dev(const float* v, int64_t n, float c) {
  double acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) {
      const double d = static_cast<double>(v[i + j]) - c;
      acc[j] += d * d;
    }
  for (int j = 0; i < n; ++i, ++j) {
    const double d = static_cast<double>(v[i]) - c;
    acc[j] += d * d;
  }
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

TESSERA_CLONES void gn_apply(const float* x, float* o, int64_t n, float mean, float scale, float shift, bool silu) {
  if (silu) {
    for (int64_t i = 0; i < n; ++i) o[i] = silu_f32((x[i] - mean) * scale + shift);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i] = (x[i] - mean) * scale + shift;
  }
}

// One LayerNorm row (C values, in L1): statistics, then the affine and AdaLN
// passes; cloned per ISA like the GroupNorm passes (VAR runs ~33 of these per
// scale over up to 512 rows of 1024).
TESSERA_CLONES void ln_row(const float* x, float* y, int64_t C, float eps, const float* w, const float* bias,
                           const float* scale, const float* shift) {
  const double sum = sum_f64(x, C);
  const float mean = static_cast<float>(sum / C);
  const double dm = sum / C - mean;
  const double var = std::max(0.0, sum_sq_dev_f64(x, C, mean) / C - dm * dm);
  const float rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
  if (!w && !bias && scale && shift) {
    // VAR's AdaLN (no affine): one pass over the row instead of three; the
    // compiler may fuse the last multiply-add (one rounding fewer than the
    // general path below).
    for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - mean) * rstd * (1.f + scale[c]) + shift[c];
    return;
  }
  for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - mean) * rstd;
  if (w)
    for (int64_t c = 0; c < C; ++c) y[c] *= w[c];
  if (bias)
    for (int64_t c = 0; c < C; ++c) y[c] += bias[c];
  if (scale)
    for (int64_t c = 0; c < C; ++c) y[c] *= 1.f + scale[c];
  if (shift)
    for (int64_t c = 0; c < C; ++c) y[c] += shift[c];
}

}  // namespace

void group_norm(const GroupNormArgs& a) {
  const int64_t N = a.x.shape[0], C = a.x.shape[1], G = a.num_groups, Cg = C / G;
  int64_t S = 1;
  for (int i = 2; i < a.x.rank; ++i) S *= a.x.shape[i];
  const float* w = a.weight.empty() ? nullptr : a.weight.ptr<float>();
  const float* b = a.bias.empty() ? nullptr : a.bias.ptr<float>();
  ThreadPool::global().parallel_for(N * G, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t n = p / G, g = p % G;
      const float* xg = a.x.ptr<float>() + n * a.x.strides[0];
      float* og = a.out.ptr<float>() + n * a.out.strides[0];
      const int64_t xs = a.x.strides[1], os = a.out.strides[1];
      double sum = 0;
      for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) sum += gn_sum(xg + c * xs, S);
      const double count = static_cast<double>(Cg * S);
      const float mean = static_cast<float>(sum / count);
      double ss = 0;
      for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) ss += gn_sum_sq_dev(xg + c * xs, S, mean);
      // The deviations were taken from the rounded mean; correct the variance
      // for the rounding (Σ(x−m')² = Σ(x−m)² + n(m−m')²).
      const double dm = sum / count - mean;
      const double var = std::max(0.0, ss / count - dm * dm);
      const float rstd = static_cast<float>(1.0 / std::sqrt(var + a.eps));
      for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
        const float scale = w ? rstd * w[c] : rstd, shift = b ? b[c] : 0.f;
        gn_apply(xg + c * xs, og + c * os, S, mean, scale, shift, a.silu);
      }
    }
  });
}

void layer_norm(const LayerNormArgs& a) {
  const int64_t C = a.x.shape[a.x.rank - 1], rows = a.x.numel() / C;
  const int64_t per_b = rows / a.x.shape[0];  // rows that share one scale/shift row
  const float* w = a.weight.empty() ? nullptr : a.weight.ptr<float>();
  const float* bias = a.bias.empty() ? nullptr : a.bias.ptr<float>();
  ThreadPool::global().parallel_for(rows, row_grain(C), [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = r / per_b;
      ln_row(a.x.ptr<float>() + row_offset(a.x, r), a.out.ptr<float>() + row_offset(a.out, r), C, a.eps, w, bias,
             a.scale.empty() ? nullptr : a.scale.ptr<float>() + b * a.scale.strides[0],
             a.shift.empty() ? nullptr : a.shift.ptr<float>() + b * a.shift.strides[0]);
    }
  });
}

void rms_norm(const RmsNormArgs& a) {
  const int64_t C = a.x.shape[a.x.rank - 1], rows = a.x.numel() / C;
  const float* w = a.weight.empty() ? nullptr : a.weight.ptr<float>();
  ThreadPool::global().parallel_for(rows, row_grain(C), [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* x = a.x.ptr<float>() + row_offset(a.x, r);
      float* y = a.out.ptr<float>() + row_offset(a.out, r);
      const double ms = sum_sq_dev_f64(x, C, 0.f) / C;
      const float rs = static_cast<float>(1.0 / std::sqrt(ms + a.eps));
      for (int64_t c = 0; c < C; ++c) y[c] = x[c] * rs;
      if (w)
        for (int64_t c = 0; c < C; ++c) y[c] *= w[c];
    }
  });
}

}  // namespace tessera::cpu
