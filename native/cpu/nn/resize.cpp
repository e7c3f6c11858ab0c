// resize() on the CPU with PyTorch's float32 index/weight arithmetic
// (ATen UpSample.h / AdaptivePooling.h semantics, reimplemented): per-axis tap
// tables are built once per call, then every output pixel of every (n, c)
// plane sums its taps, y taps outermost, in PyTorch's order.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/nn/nn_ops.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
namespace {

// For each output index: `taps` source indices and float32 weights.
struct Axis {
  int taps = 1;
  std::vector<int64_t> idx;
  std::vector<float> w;
};

// Keys' cubic convolution kernel, A = −0.75 (PyTorch's cubic_convolution1/2).
float cubic1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
float cubic2(float x, float A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

Axis make_axis(ResizeMode mode, int64_t in, int64_t out) {
  Axis ax;
  ax.taps = mode == ResizeMode::kBicubic ? 4 : mode == ResizeMode::kBilinear ? 2 : 1;
  ax.idx.resize(out * ax.taps);
  ax.w.resize(out * ax.taps);
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t* idx = &ax.idx[o * ax.taps];
    float* w = &ax.w[o * ax.taps];
    if (mode == ResizeMode::kNearest) {
      idx[0] = in == out ? o : out == 2 * in ? o >> 1
                                             : std::min(static_cast<int64_t>(std::floor(static_cast<float>(o) * scale)), in - 1);
      w[0] = 1.f;
    } else if (mode == ResizeMode::kBilinear) {
      if (in == out) {
        idx[0] = idx[1] = o;
        w[0] = 1.f, w[1] = 0.f;
        continue;
      }
      const float src = std::max(scale * (static_cast<float>(o) + 0.5f) - 0.5f, 0.f);
      const int64_t i0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
      const float l1 = std::min(std::max(src - static_cast<float>(i0), 0.f), 1.f);
      idx[0] = i0;
      idx[1] = i0 + (i0 < in - 1 ? 1 : 0);
      w[0] = 1.f - l1;
      w[1] = l1;
    } else {  // bicubic: src not clamped, so floor may be −1; the taps are clamped instead
      const float src = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
      const int64_t i0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
      const float t = std::min(std::max(src - static_cast<float>(i0), 0.f), 1.f);
      const float A = -0.75f;
      w[0] = cubic2(t + 1.f, A);
      w[1] = cubic1(t, A);
      const float t2 = 1.f - t;  // PyTorch's x2, so that x2 + 1 rounds as it does there
      w[2] = cubic1(t2, A);
      w[3] = cubic2(t2 + 1.f, A);
      for (int j = 0; j < 4; ++j) idx[j] = std::min(std::max<int64_t>(i0 - 1 + j, 0), in - 1);
    }
  }
  return ax;
}

// Adaptive average pooling bins: [floor(o·in/out), ceil((o+1)·in/out)).
void area_bins(int64_t in, int64_t out, std::vector<int64_t>* lo, std::vector<int64_t>* hi) {
  lo->resize(out);
  hi->resize(out);
  for (int64_t o = 0; o < out; ++o) {
    (*lo)[o] = (o * in) / out;
    (*hi)[o] = ((o + 1) * in + out - 1) / out;
  }
}

}  // namespace

void resize(const ResizeArgs& a) {
  const int64_t N = a.x.shape[0], C = a.x.shape[1], H = a.x.shape[2], W = a.x.shape[3];
  const int64_t Ho = a.out.shape[2], Wo = a.out.shape[3];
  const int64_t* xs = a.x.strides;
  const int64_t* os = a.out.strides;
  auto& pool = ThreadPool::global();
  const int64_t grain = std::max<int64_t>(1, 4096 / (Wo * (a.mode == ResizeMode::kBicubic ? 16 : 4)));

  if (a.mode == ResizeMode::kArea) {
    std::vector<int64_t> y0, y1, x0, x1;
    area_bins(H, Ho, &y0, &y1);
    area_bins(W, Wo, &x0, &x1);
    pool.parallel_for(N * C * Ho, grain, [&](int64_t lo, int64_t hi, int) {
      for (int64_t p = lo; p < hi; ++p) {
        const int64_t nc = p / Ho, oy = p % Ho, n = nc / C, c = nc % C;
        const float* xp = a.x.ptr<float>() + n * xs[0] + c * xs[1];
        float* op = a.out.ptr<float>() + n * os[0] + c * os[1] + oy * os[2];
        const float kh = static_cast<float>(y1[oy] - y0[oy]);
        for (int64_t ox = 0; ox < Wo; ++ox) {
          float sum = 0.f;
          for (int64_t iy = y0[oy]; iy < y1[oy]; ++iy)
            for (int64_t ix = x0[ox]; ix < x1[ox]; ++ix) sum += xp[iy * xs[2] + ix * xs[3]];
          op[ox * os[3]] = sum / kh / static_cast<float>(x1[ox] - x0[ox]);
        }
      }
    });
    return;
  }

  if (a.mode == ResizeMode::kNearest && Ho == 2 * H && Wo == 2 * W && (W == 1 || xs[3] == 1) && os[3] == 1) {
    // The decoder's 2× upsample: each input value twice along x, each row
    // twice along y (the same values the general path computes, x·1·1).
    pool.parallel_for(N * C * Ho, grain, [&](int64_t lo, int64_t hi, int) {
      for (int64_t p = lo; p < hi; ++p) {
        const int64_t nc = p / Ho, oy = p % Ho, n = nc / C, c = nc % C;
        const float* row = a.x.ptr<float>() + n * xs[0] + c * xs[1] + (oy >> 1) * xs[2];
        float* op = a.out.ptr<float>() + n * os[0] + c * os[1] + oy * os[2];
        for (int64_t x = 0; x < W; ++x) op[2 * x] = op[2 * x + 1] = row[x];
      }
    });
    return;
  }

  const Axis ay = make_axis(a.mode, H, Ho), ax = make_axis(a.mode, W, Wo);
  const int ty = ay.taps, tx = ax.taps;
  pool.parallel_for(N * C * Ho, grain, [&](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t nc = p / Ho, oy = p % Ho, n = nc / C, c = nc % C;
      const float* xp = a.x.ptr<float>() + n * xs[0] + c * xs[1];
      float* op = a.out.ptr<float>() + n * os[0] + c * os[1] + oy * os[2];
      const int64_t* iy = &ay.idx[oy * ty];
      const float* wy = &ay.w[oy * ty];
      for (int64_t ox = 0; ox < Wo; ++ox) {
        const int64_t* ix = &ax.idx[ox * tx];
        const float* wx = &ax.w[ox * tx];
        float acc = 0.f;
        for (int i = 0; i < ty; ++i) {
          const float* row = xp + iy[i] * xs[2];
          float t = row[ix[0] * xs[3]] * wx[0];
          for (int j = 1; j < tx; ++j) t += row[ix[j] * xs[3]] * wx[j];
          acc = i == 0 ? t * wy[0] : acc + t * wy[i];
        }
        op[ox * os[3]] = acc;
      }
    }
  });
}

}  // namespace tessera::cpu
