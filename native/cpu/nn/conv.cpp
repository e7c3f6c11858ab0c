// conv2d on the CPU. Three routes, chosen by shape:
//  - 1×1, stride 1, no padding, contiguous planes, f32 weight: per image one
//    matmul out[n] [Co, HW] = W [Co, Ci] · x[n] [Ci, HW] (no data movement).
//  - one input channel per group (depthwise): a direct loop per output plane;
//    as a GEMM it would have K = kh·kw and a single output column.
//  - everything else: im2col. Output pixels of all images are cut into tiles;
//    a tile's patches are gathered into rows of X [pixels, Cig·kh·kw] (parallel
//    over pixels), linear() multiplies them with the weight packed ONCE per call
//    (bias fused in its epilogue) into Y [pixels, Cog], and Y is scattered
//    (transposed) into NCHW. The GEMM is the library's; X and Y come from the
//    host pool, so a call in steady state touches no fresh pages.
// The GEMMs run on the thread pool themselves, so they are called from this
// thread between parallel gather/scatter passes, never from inside a pool job
// (nested pool calls run inline on tid 0 and would share its GEMM scratch).
#include <algorithm>
#include <memory>

#include "cpu/gemm/gemm_driver.h"
#include "cpu/nn/nn_ops.h"
#include "tessera/gemm.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
namespace {

using gemm::PooledBuffer;

struct Geom {
  int64_t N, Ci, H, W, Co, Cig, Cog, kh, kw, Ho, Wo;
  int64_t sh, sw, pt, pl, dh, dw, groups;
};

Geom geom_of(const Conv2dArgs& a) {
  Geom g;
  g.N = a.x.shape[0], g.Ci = a.x.shape[1], g.H = a.x.shape[2], g.W = a.x.shape[3];
  g.Co = a.weight.shape[0], g.Cig = a.weight.shape[1], g.kh = a.weight.shape[2], g.kw = a.weight.shape[3];
  g.Ho = a.out.shape[2], g.Wo = a.out.shape[3];
  g.sh = a.stride_h, g.sw = a.stride_w, g.pt = a.pad_top, g.pl = a.pad_left;
  g.dh = a.dilation_h, g.dw = a.dilation_w, g.groups = a.groups;
  g.Cog = g.Co / g.groups;
  return g;
}

// Planes [H, W] stored row-major without gaps, channels apart by >= H·W.
bool plain_planes(const TensorView& t) {
  const int64_t hw = t.shape[2] * t.shape[3];
  return (t.shape[3] == 1 || t.strides[3] == 1) && (t.shape[2] == 1 || t.strides[2] == t.shape[3]) &&
         (t.shape[1] == 1 || t.strides[1] >= hw);
}

bool is_plain_1x1(const Conv2dArgs& a, const Geom& g) {
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && a.pad_top == 0 && a.pad_bottom == 0 &&
         a.pad_left == 0 && a.pad_right == 0 && g.groups == 1 && !a.packed && a.weight.dtype == DType::kF32 &&
         plain_planes(a.x) && plain_planes(a.out);
}

// out = bias (or out += bias when accumulating), plane by plane, so that the
// GEMM can then add into it with beta = 1.
void add_bias_planes(const Conv2dArgs& a, const Geom& g) {
  const float* bias = a.bias.ptr<float>();
  const int64_t hw = g.Ho * g.Wo;
  ThreadPool::global().parallel_for(g.N * g.Co, 4, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) {
      const int64_t n = p / g.Co, o = p % g.Co;
      float* dst = a.out.ptr<float>() + n * a.out.strides[0] + o * a.out.strides[1];
      const float v = bias[o];
      if (a.accumulate)
        for (int64_t i = 0; i < hw; ++i) dst[i] += v;
      else
        for (int64_t i = 0; i < hw; ++i) dst[i] = v;
    }
  });
}

void conv_1x1(const Conv2dArgs& a, const Geom& g) {
  const int64_t hw = g.H * g.W;
  if (!a.bias.empty()) add_bias_planes(a, g);
  const bool add = a.accumulate || !a.bias.empty();
  for (int64_t n = 0; n < g.N; ++n) {
    MatmulArgs m;
    m.a = make_view(a.weight.data, DType::kF32, {g.Co, g.Ci});
    m.b = make_view(a.x.ptr<float>() + n * a.x.strides[0], DType::kF32, {g.Ci, hw});
    m.b.strides[0] = g.Ci == 1 ? hw : a.x.strides[1];
    m.c = make_view(a.out.ptr<float>() + n * a.out.strides[0], DType::kF32, {g.Co, hw});
    m.c.strides[0] = g.Co == 1 ? hw : a.out.strides[1];
    m.beta = add ? 1.f : 0.f;
    matmul(m);
  }
}

// One input channel per group: out[n, o] = bias[o] + Σ w[o, 0, i, j]·x[n, o / Cog, ...].
void conv_depthwise(const Conv2dArgs& a, const Geom& g) {
  const float* w = a.weight.ptr<float>();
  const float* bias = a.bias.empty() ? nullptr : a.bias.ptr<float>();
  const int64_t* xs = a.x.strides;
  const int64_t* os = a.out.strides;
  ThreadPool::global().parallel_for(g.N * g.Co, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) {
      const int64_t n = p / g.Co, o = p % g.Co;
      const float* xp = a.x.ptr<float>() + n * xs[0] + (o / g.Cog) * xs[1];
      const float* wo = w + o * g.kh * g.kw;
      float* op = a.out.ptr<float>() + n * os[0] + o * os[1];
      for (int64_t y = 0; y < g.Ho; ++y) {
        for (int64_t x = 0; x < g.Wo; ++x) {
          float acc = bias ? bias[o] : 0.f;
          for (int64_t i = 0; i < g.kh; ++i) {
            const int64_t iy = y * g.sh - g.pt + i * g.dh;
            if (iy < 0 || iy >= g.H) continue;
            for (int64_t j = 0; j < g.kw; ++j) {
              const int64_t ix = x * g.sw - g.pl + j * g.dw;
              if (ix < 0 || ix >= g.W) continue;
              acc += wo[i * g.kw + j] * xp[iy * xs[2] + ix * xs[3]];
            }
          }
          float& dst = op[y * os[2] + x * os[3]];
          dst = a.accumulate ? dst + acc : acc;
        }
      }
    }
  });
}

// Row r of X = the patch of output pixel q (image n, position oy, ox) for group g,
// in the weight's (c, i, j) order; zeros where the patch leaves the input.
void gather_patch(const Conv2dArgs& a, const Geom& g, int64_t grp, int64_t q, float* row) {
  const int64_t* xs = a.x.strides;
  const int64_t hw = g.Ho * g.Wo;
  const int64_t n = q / hw, oy = (q % hw) / g.Wo, ox = q % g.Wo;
  const int64_t iy0 = oy * g.sh - g.pt, ix0 = ox * g.sw - g.pl;
  const float* xb = a.x.ptr<float>() + n * xs[0] + grp * g.Cig * xs[1];
  const bool inside = iy0 >= 0 && iy0 + g.dh * (g.kh - 1) < g.H && ix0 >= 0 && ix0 + g.dw * (g.kw - 1) < g.W;
  int64_t k = 0;
  for (int64_t c = 0; c < g.Cig; ++c) {
    const float* xc = xb + c * xs[1];
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t iy = iy0 + i * g.dh;
      if (inside) {
        const float* src = xc + iy * xs[2] + ix0 * xs[3];
        const int64_t step = g.dw * xs[3];
        for (int64_t j = 0; j < g.kw; ++j) row[k++] = src[j * step];
        continue;
      }
      if (iy < 0 || iy >= g.H) {
        for (int64_t j = 0; j < g.kw; ++j) row[k++] = 0.f;
        continue;
      }
      const float* src = xc + iy * xs[2];
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t ix = ix0 + j * g.dw;
        row[k++] = (ix >= 0 && ix < g.W) ? src[ix * xs[3]] : 0.f;
      }
    }
  }
}

// X tiles hold about this many floats (8 MiB): large enough that the GEMM's
// per-call A packing and scheduling are amortised over many rows.
constexpr int64_t kTileFloats = int64_t{1} << 21;

void conv_im2col(const Conv2dArgs& a, const Geom& g) {
  const int64_t K = g.Cig * g.kh * g.kw;
  const int64_t hw = g.Ho * g.Wo, total = g.N * hw;
  const int64_t pt = std::min(total, std::max<int64_t>(64, kTileFloats / K / 16 * 16));
  PooledBuffer xbuf(sizeof(float) * pt * K), ybuf(sizeof(float) * pt * g.Cog);
  float* X = static_cast<float*>(xbuf.p);
  float* Y = static_cast<float*>(ybuf.p);
  const int64_t* os = a.out.strides;
  auto& pool = ThreadPool::global();
  using Owned = std::unique_ptr<PackedWeight, void (*)(PackedWeight*)>;

  for (int64_t grp = 0; grp < g.groups; ++grp) {
    Owned owned(nullptr, free_packed_weight);
    const PackedWeight* pw = a.packed;
    if (!pw) {
      const size_t es = dtype_size(a.weight.dtype);
      TensorView w2 = make_view(static_cast<char*>(a.weight.data) + es * grp * g.Cog * K, a.weight.dtype, {g.Cog, K});
      owned.reset(pack_weight(w2, a.weight.dtype == DType::kF32 ? DType::kF32 : DType::kBF16));
      pw = owned.get();
    }
    for (int64_t q0 = 0; q0 < total; q0 += pt) {
      const int64_t rows = std::min(pt, total - q0);
      pool.parallel_for(rows, 16, [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r) gather_patch(a, g, grp, q0 + r, X + r * K);
      });
      LinearArgs l;
      l.x = make_view(X, DType::kF32, {rows, K});
      l.packed = pw;
      if (!a.bias.empty()) l.bias = make_view(a.bias.ptr<float>() + grp * g.Cog, DType::kF32, {g.Cog});
      l.out = make_view(Y, DType::kF32, {rows, g.Cog});
      linear(l);
      // Y [rows, Cog] → out[n, grp·Cog + o, oy, ox], 64 pixels per chunk.
      pool.parallel_for((rows + 63) / 64, 1, [&](int64_t b, int64_t e, int) {
        int64_t off[64];
        for (int64_t c = b; c < e; ++c) {
          const int64_t r0 = c * 64, nr = std::min<int64_t>(64, rows - r0);
          for (int64_t r = 0; r < nr; ++r) {
            const int64_t q = q0 + r0 + r, n = q / hw, oy = (q % hw) / g.Wo, ox = q % g.Wo;
            off[r] = n * os[0] + oy * os[2] + ox * os[3];
          }
          for (int64_t o = 0; o < g.Cog; ++o) {
            float* dst = a.out.ptr<float>() + (grp * g.Cog + o) * os[1];
            const float* src = Y + r0 * g.Cog + o;
            if (a.accumulate)
              for (int64_t r = 0; r < nr; ++r) dst[off[r]] += src[r * g.Cog];
            else
              for (int64_t r = 0; r < nr; ++r) dst[off[r]] = src[r * g.Cog];
          }
        }
      });
    }
  }
}

}  // namespace

void conv2d(const Conv2dArgs& a) {
  const Geom g = geom_of(a);
  if (is_plain_1x1(a, g)) return conv_1x1(a, g);
  if (g.Cig == 1 && g.groups > 1 && !a.packed) return conv_depthwise(a, g);
  conv_im2col(a, g);
}

}  // namespace tessera::cpu
