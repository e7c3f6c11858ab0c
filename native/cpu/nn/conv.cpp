// conv2d on the CPU. Five routes, chosen by shape:
//  - Winograd F(4×4, 3×3) for 3×3 stride-1 pad-1 f32 convs on maps with
//    Ho·Wo >= 2·Co (cpu/nn/conv_winograd.cpp): 36 multiplies per 144.
//  - channel-major (large f32 maps, see conv_channel_major below): the
//    weight as A, patch panels built inside the GEMM, tiles into NCHW.
//  - 1×1, stride 1, no padding, contiguous planes, f32 weight: per image one
//    matmul out[n] [Co, HW] = W [Co, Ci] · x[n] [Ci, HW] (no data movement).
//  - one input channel per group (depthwise), or at most 4 output channels
//    per group (conv_out to RGB): a direct loop over output rows, vectorised
//    along x; as a GEMM these would fill a sliver of the register tile.
//  - everything else: im2col. Output pixels of all images are cut into tiles;
//    each pixel's patch is gathered (in parallel) straight into the GEMM's
//    packed-A panels (layout in cpu/gemm/gemm_kernels.h), the GEMM driver
//    multiplies them with the weight packed ONCE per call (or `packed`), bias
//    fused in its epilogue, into Y [pixels, Cog], and Y is scattered
//    (transposed) into NCHW. A bf16 weight takes the same tiles through
//    linear() instead (its A panels are bf16 pairs on CPUs with a bf16 dot).
//    A and Y come from the host pool: no fresh pages in steady state.
// The GEMMs run on the thread pool themselves, so they are called from this
// thread between parallel gather/scatter passes, never from inside a pool job
// (nested pool calls run inline on tid 0 and would share its GEMM scratch).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/packed_weight.h"
#include "cpu/gemm/gemm_driver.h"
#include "cpu/gemm/gemm_pack.h"
#include "cpu/nn/conv_routes.h"
#include "cpu/nn/nn_ops.h"
#include "tessera/cpu.h"
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

// Output channels per group up to which the direct loop beats the GEMM.
constexpr int64_t kDirectMaxCog = 4;

// Direct convolution, one output row per task: acc[x] accumulates
// w[o, c, i, j]·in[c, iy, x·sw − pl + j·dw] over (c, i, j) with the x loop
// innermost (contiguous and vectorised when sw = 1). Used where a GEMM would
// waste its register tile: one input channel per group (depthwise), or very
// few output channels per group (VQVAE conv_out 160→3: N = 3 of a 32-wide tile).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#define TESSERA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TESSERA_CLONES
#endif

// Output rows [lo, hi) of conv_direct; cloned per ISA (this file is built for
// the baseline ISA, where the x loop runs 4 lanes wide).
TESSERA_CLONES void direct_rows(const Conv2dArgs& a, const Geom& g, int64_t lo, int64_t hi, float* acc) {
  const float* w = a.weight.ptr<float>();
  const float* bias = a.bias.empty() ? nullptr : a.bias.ptr<float>();
  const int64_t* xs = a.x.strides;
  const int64_t* os = a.out.strides;
  for (int64_t t = lo; t < hi; ++t) {
    const int64_t y = t % g.Ho, o = (t / g.Ho) % g.Co, n = t / (g.Ho * g.Co);
    const float* xb = a.x.ptr<float>() + n * xs[0] + (o / g.Cog) * g.Cig * xs[1];
    const float b = bias ? bias[o] : 0.f;
    for (int64_t x = 0; x < g.Wo; ++x) acc[x] = b;
    for (int64_t c = 0; c < g.Cig; ++c)
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t iy = y * g.sh - g.pt + i * g.dh;
        if (iy < 0 || iy >= g.H) continue;
        const float* row = xb + c * xs[1] + iy * xs[2];
        for (int64_t j = 0; j < g.kw; ++j) {
          const float wv = w[((o * g.Cig + c) * g.kh + i) * g.kw + j];
          const int64_t off = j * g.dw - g.pl;  // ix = x·sw + off must lie in [0, W)
          const int64_t x0 = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
          const int64_t x1 = std::min(g.Wo, g.W - off <= 0 ? 0 : (g.W - off + g.sw - 1) / g.sw);
          if (g.sw == 1 && xs[3] == 1) {
            const float* src = row + off;
            for (int64_t x = x0; x < x1; ++x) acc[x] += wv * src[x];
          } else {
            for (int64_t x = x0; x < x1; ++x) acc[x] += wv * row[(x * g.sw + off) * xs[3]];
          }
        }
      }
    float* dst = a.out.ptr<float>() + n * os[0] + o * os[1] + y * os[2];
    if (a.accumulate)
      for (int64_t x = 0; x < g.Wo; ++x) dst[x * os[3]] += acc[x];
    else
      for (int64_t x = 0; x < g.Wo; ++x) dst[x * os[3]] = acc[x];
  }
}

// conv_direct for one group of at most 4 output channels, stride 1 and
// dilation 1 along x (VQVAE conv_out, 160 → 3 at 256²): all output channels
// of a 64-pixel run of one output row are accumulated at once in registers
// (4 channels × 4 vectors of 16) over every (c, i, j), reading each input row
// segment once per (c, i) from a zero-padded copy, instead of one pass over
// an accumulator row in memory per (o, c, i, j).
typedef float V16 __attribute__((vector_size(64)));
constexpr int64_t kFewRun = 64, kFewAhead = 4;

bool few_outputs_ok(const Conv2dArgs& a, const Geom& g) {
  return g.groups == 1 && g.Co <= 4 && g.sw == 1 && g.dw == 1 && (g.W == 1 || a.x.strides[3] == 1) &&
         g.kw <= 16;
}

// Tasks [lo, hi) of (n, y, run); buf holds kFewRun + 16 floats.
TESSERA_CLONES void few_outputs_runs(const Conv2dArgs& a, const Geom& g, int64_t lo, int64_t hi, float* buf) {
  const float* w = a.weight.ptr<float>();
  const float* bias = a.bias.empty() ? nullptr : a.bias.ptr<float>();
  const int64_t* xs = a.x.strides;
  const int64_t* os = a.out.strides;
  const int64_t runs = (g.Wo + kFewRun - 1) / kFewRun, K = g.Ci * g.kh * g.kw;
  for (int64_t t = lo; t < hi; ++t) {
    const int64_t r = t % runs, y = (t / runs) % g.Ho, n = t / (runs * g.Ho);
    const int64_t x0 = r * kFewRun, len = std::min(kFewRun, g.Wo - x0);
    V16 acc[4][4];
    for (int o = 0; o < 4; ++o)
      for (int v = 0; v < 4; ++v) acc[o][v] = V16{} + 0.f;
    for (int64_t c = 0; c < g.Ci; ++c)
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t iy = y * g.sh - g.pt + i * g.dh;
        if (iy < 0 || iy >= g.H) continue;
        // buf[k] = x[n, c, iy, x0 − pl + k], zero outside the row.
        const float* row = a.x.ptr<float>() + n * xs[0] + c * xs[1] + iy * xs[2];
        const int64_t span = len + g.kw - 1, first = x0 - g.pl;
        // Each (c, i) reads a few lines from another plane: ask for the same
        // row segment kFewAhead channels on, or every read waits on memory.
        if (c + kFewAhead < g.Ci)
          for (int64_t k = std::max<int64_t>(0, first); k < std::min(g.W, first + span); k += 16)
            __builtin_prefetch(row + kFewAhead * xs[1] + k, 0, 3);
        const int64_t k0 = std::clamp<int64_t>(-first, 0, span), k1 = std::clamp<int64_t>(g.W - first, k0, span);
        for (int64_t k = 0; k < k0; ++k) buf[k] = 0.f;
        for (int64_t k = k0; k < k1; ++k) buf[k] = row[first + k];
        for (int64_t k = k1; k < kFewRun + 16; ++k) buf[k] = 0.f;
        for (int64_t j = 0; j < g.kw; ++j) {
          V16 in[4];
          __builtin_memcpy(in, buf + j, sizeof(in));
          for (int o = 0; o < 4; ++o) {
            const float wv = o < g.Co ? w[o * K + (c * g.kh + i) * g.kw + j] : 0.f;
            for (int v = 0; v < 4; ++v) acc[o][v] += wv * in[v];
          }
        }
      }
    for (int64_t o = 0; o < g.Co; ++o) {
      float res[kFewRun];
      __builtin_memcpy(res, acc[o], sizeof(res));
      const float b = bias ? bias[o] : 0.f;
      float* dst = a.out.ptr<float>() + n * os[0] + o * os[1] + y * os[2] + x0 * os[3];
      if (a.accumulate)
        for (int64_t x = 0; x < len; ++x) dst[x * os[3]] += res[x] + b;
      else
        for (int64_t x = 0; x < len; ++x) dst[x * os[3]] = res[x] + b;
    }
  }
}

void conv_direct(const Conv2dArgs& a, const Geom& g) {
  auto& pool = ThreadPool::global();
  if (few_outputs_ok(a, g)) {
    PooledBuffer bufs(sizeof(float) * (kFewRun + 16) * pool.num_threads());
    const int64_t runs = (g.Wo + kFewRun - 1) / kFewRun;
    pool.parallel_for(g.N * g.Ho * runs, 1, [&](int64_t lo, int64_t hi, int tid) {
      few_outputs_runs(a, g, lo, hi, static_cast<float*>(bufs.p) + tid * (kFewRun + 16));
    });
    return;
  }
  PooledBuffer rows(sizeof(float) * g.Wo * pool.num_threads());
  pool.parallel_for(g.N * g.Co * g.Ho, std::max<int64_t>(1, 4096 / (g.Wo * g.Cig * g.kh * g.kw)),
                    [&](int64_t lo, int64_t hi, int tid) {
    direct_rows(a, g, lo, hi, static_cast<float*>(rows.p) + tid * g.Wo);
  });
}

// The patch of output pixel q (image n, position oy, ox) for group grp, in
// the weight's (c, i, j) order, written to dst[k·ds] (ds = 1 for a row of X,
// MR for a column of a packed-A panel); zeros where it leaves the input.
template <int KW>
void gather_inside(const float* xb, const int64_t* xs, const Geom& g, int64_t iy0, int64_t ix0, float* dst,
                   int64_t ds) {
  // Fast path: patch fully inside, width-contiguous input, no dilation; KW > 0
  // fixes the kernel width at compile time so the copies unroll.
  const int64_t kw = KW > 0 ? KW : g.kw;
  int64_t k = 0;
  for (int64_t c = 0; c < g.Cig; ++c) {
    const float* src = xb + c * xs[1] + iy0 * xs[2] + ix0;
    for (int64_t i = 0; i < g.kh; ++i, src += xs[2])
      for (int64_t j = 0; j < kw; ++j, ++k) dst[k * ds] = src[j];
  }
}

void gather_patch(const Conv2dArgs& a, const Geom& g, int64_t grp, int64_t q, float* dst, int64_t ds) {
  const int64_t* xs = a.x.strides;
  const int64_t hw = g.Ho * g.Wo;
  const int64_t n = q / hw, oy = (q % hw) / g.Wo, ox = q % g.Wo;
  const int64_t iy0 = oy * g.sh - g.pt, ix0 = ox * g.sw - g.pl;
  const float* xb = a.x.ptr<float>() + n * xs[0] + grp * g.Cig * xs[1];
  const bool inside = iy0 >= 0 && iy0 + g.dh * (g.kh - 1) < g.H && ix0 >= 0 && ix0 + g.dw * (g.kw - 1) < g.W;
  if (inside && g.dh == 1 && g.dw == 1 && (g.W == 1 || xs[3] == 1)) {
    if (g.kw == 3) return gather_inside<3>(xb, xs, g, iy0, ix0, dst, ds);
    if (g.kw == 1) return gather_inside<1>(xb, xs, g, iy0, ix0, dst, ds);
    return gather_inside<0>(xb, xs, g, iy0, ix0, dst, ds);
  }
  int64_t k = 0;
  for (int64_t c = 0; c < g.Cig; ++c) {
    const float* xc = xb + c * xs[1];
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t iy = iy0 + i * g.dh;
      if (iy < 0 || iy >= g.H) {
        for (int64_t j = 0; j < g.kw; ++j) dst[(k++) * ds] = 0.f;
        continue;
      }
      const float* src = xc + iy * xs[2];
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t ix = ix0 + j * g.dw;
        dst[(k++) * ds] = (ix >= 0 && ix < g.W) ? src[ix * xs[3]] : 0.f;
      }
    }
  }
}

// Whether gather_panel_rows applies: unit stride and dilation along x, and
// unit-stride input rows (stride and dilation along y are free).
bool rows_gatherable(const Conv2dArgs& a, const Geom& g) {
  return g.sw == 1 && g.dw == 1 && (g.W == 1 || a.x.strides[3] == 1);
}

// The A panel of pixels q .. q+nr−1 (nr ≤ mr; lanes nr..mr−1 zero) when
// rows_gatherable: consecutive pixels of one output row read consecutive
// input columns, so each of the K panel rows is filled by short contiguous
// copies (one per output-row segment of the panel) instead of mr scattered
// single-float writes per patch element.
void gather_panel_rows(const Conv2dArgs& a, const Geom& g, int64_t grp, int64_t q, int64_t nr, int64_t mr,
                       float* panel) {
  const int64_t* xs = a.x.strides;
  const int64_t hw = g.Ho * g.Wo, K = g.Cig * g.kh * g.kw;
  if (nr < mr)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t r = nr; r < mr; ++r) panel[k * mr + r] = 0.f;
  for (int64_t r0 = 0; r0 < nr;) {
    const int64_t p = q + r0, n = p / hw, oy = (p % hw) / g.Wo, ox = p % g.Wo;
    const int64_t len = std::min(nr - r0, g.Wo - ox);
    const float* xb = a.x.ptr<float>() + n * xs[0] + grp * g.Cig * xs[1];
    const int64_t ix0 = ox - g.pl;  // input column of lane r0 at j = 0
    float* d = panel + r0;
    int64_t k = 0;
    for (int64_t c = 0; c < g.Cig; ++c)
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t iy = oy * g.sh - g.pt + i * g.dh;
        if (iy < 0 || iy >= g.H) {
          for (int64_t j = 0; j < g.kw; ++j, ++k)
            for (int64_t r = 0; r < len; ++r) d[k * mr + r] = 0.f;
          continue;
        }
        const float* row = xb + c * xs[1] + iy * xs[2];
        for (int64_t j = 0; j < g.kw; ++j, ++k) {
          const int64_t lo = ix0 + j;  // input column of the segment's first lane
          float* dk = d + k * mr;
          if (lo >= 0 && lo + len <= g.W) {
            const float* src = row + lo;
            for (int64_t r = 0; r < len; ++r) dk[r] = src[r];
          } else {
            for (int64_t r = 0; r < len; ++r) {
              const int64_t ix = lo + r;
              dk[r] = (ix >= 0 && ix < g.W) ? row[ix] : 0.f;
            }
          }
        }
      }
    r0 += len;
  }
}

// Y [rows, Cog] → out[n, grp·Cog + o, oy, ox] (+=), 64 pixels per chunk.
void scatter_tile(const Conv2dArgs& a, const Geom& g, int64_t grp, int64_t q0, int64_t rows, const float* Y) {
  const int64_t* os = a.out.strides;
  const int64_t hw = g.Ho * g.Wo;
  ThreadPool::global().parallel_for((rows + 63) / 64, 1, [&](int64_t b, int64_t e, int) {
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

// ---- channel-major route ----
// out[n] [Co, Ho·Wo] = Wa [Co, K] · P [K, Ho·Wo] per image, with the weight as
// the GEMM's A operand (mr-row panels) and the patch matrix P (k = (c, i, j))
// as B. P is never materialised: the driver asks for one 32-pixel × kc panel
// at a time (b_fill), built from input rows into an L1-sized buffer right
// before the register tiles that use it, so the 9× im2col expansion never
// leaves L1. Tiles are rows of output channels over runs of 32 pixels, stored
// straight into the NCHW planes (bias per row, `accumulate` as the residual).

struct PatchPanels {
  const float* x;       // image n, first input channel
  int64_t cs, rs;       // input channel and row strides (unit stride along x)
  int64_t H, W, Wo, P;  // input height/width, output width, output pixels per image
  int64_t kh, kw, sh, dh, pt, pl;
};

// Rows [k0, k0 + kc) of patch panel j: dst[k·32 + r] = P[k][32j + r] (zero
// outside the input and past the last pixel). Cloned per ISA like direct_rows.
TESSERA_CLONES void fill_patch_panel(const void* ctx, int64_t j, int64_t k0, int64_t kc, float* dst) {
  const PatchPanels& s = *static_cast<const PatchPanels*>(ctx);
  constexpr int64_t kN = gemm::kNR;
  // The panel's pixels as runs within one output row each.
  struct Run { int64_t lane, len, oy, ox; };
  Run runs[kN];
  int nruns = 0;
  const int64_t p0 = j * kN, valid = std::min(kN, s.P - p0);
  for (int64_t r = 0; r < valid;) {
    const int64_t p = p0 + r, oy = p / s.Wo, ox = p % s.Wo, len = std::min(valid - r, s.Wo - ox);
    runs[nruns++] = Run{r, len, oy, ox};
    r += len;
  }
  const int64_t khw = s.kh * s.kw;
  int64_t c = k0 / khw, i = (k0 / s.kw) % s.kh, jj = k0 % s.kw;
  for (int64_t k = 0; k < kc; ++k) {
    float* d = dst + k * kN;
    for (int64_t r = valid; r < kN; ++r) d[r] = 0.f;
    const float* plane = s.x + c * s.cs;
    for (int q = 0; q < nruns; ++q) {
      const Run& u = runs[q];
      float* dr = d + u.lane;
      const int64_t iy = u.oy * s.sh - s.pt + i * s.dh;
      if (iy < 0 || iy >= s.H) {
        for (int64_t r = 0; r < u.len; ++r) dr[r] = 0.f;
        continue;
      }
      const float* row = plane + iy * s.rs;
      const int64_t lo = u.ox - s.pl + jj;  // input column of the run's first lane
      // The next panel of this output row reads the next 32 columns of the
      // same input rows: ask for them now (to L2), they are far apart in memory.
      if (jj == 0 && q == nruns - 1) {
        __builtin_prefetch(row + lo + kN, 0, 2);
        __builtin_prefetch(row + lo + kN + 16, 0, 2);
      }
      if (u.len == kN && lo >= 0 && lo + kN <= s.W) {
        __builtin_memcpy(dr, row + lo, sizeof(float) * kN);
      } else {
        // Lanes [a, b) read inside the row, the others are padding.
        const int64_t a = std::clamp<int64_t>(-lo, 0, u.len), b = std::clamp<int64_t>(s.W - lo, a, u.len);
        for (int64_t r = 0; r < a; ++r) dr[r] = 0.f;
        for (int64_t r = a; r < b; ++r) dr[r] = row[lo + r];
        for (int64_t r = b; r < u.len; ++r) dr[r] = 0.f;
      }
    }
    if (++jj == s.kw) {
      jj = 0;
      if (++i == s.kh) {
        i = 0;
        ++c;
      }
    }
  }
}

// Whether the channel-major route applies: f32 compute, one group, unit
// stride and dilation along x, NCHW output planes without gaps, and at least
// four output pixels per image per output channel: the weight is repacked as
// A panels per call (Co·K floats) and each patch panel is shared by Co/mr
// register tiles, so small maps with many channels stay with im2col (measured
// at 32² × 320 channels: im2col 138, this route 129 GFLOP per CPU-second; at
// 128² × 160: 130 vs 139; at 256² × 160: 106 vs 135).
bool channel_major_ok(const Conv2dArgs& a, const Geom& g, bool any_size) {
  const bool f32 = a.packed ? a.packed->compute == DType::kF32 : a.weight.dtype == DType::kF32;
  const int64_t* os = a.out.strides;
  return f32 && g.groups == 1 && g.sw == 1 && g.dw == 1 && (g.W == 1 || a.x.strides[3] == 1) &&
         (g.Wo == 1 || os[3] == 1) && (g.Ho == 1 || os[2] == g.Wo) && os[1] >= g.Ho * g.Wo &&
         (any_size || g.Ho * g.Wo >= 4 * g.Co);
}

// TESSERA_CONV_ROUTE=im2col keeps every conv off the channel-major and
// Winograd routes; =channel_major or =winograd takes that route wherever it
// applies, whatever the size (tests, A/B).
enum class Route { kAuto, kIm2col, kChannelMajor, kWinograd };
Route conv_route() {
  const char* e = std::getenv("TESSERA_CONV_ROUTE");
  if (!e) return Route::kAuto;
  if (std::strcmp(e, "im2col") == 0) return Route::kIm2col;
  if (std::strcmp(e, "winograd") == 0) return Route::kWinograd;
  if (std::strcmp(e, "channel_major") == 0) return Route::kChannelMajor;
  return Route::kAuto;
}

// Rows of output channels per unit of work: all of them up to this many (each
// patch panel is then filled once per K block).
constexpr int64_t kChannelMajorRows = 336;

void conv_channel_major(const Conv2dArgs& a, const Geom& g) {
  const int64_t K = g.Cig * g.kh * g.kw, P = g.Ho * g.Wo;
  const gemm::IsaKernels& ker = gemm::kernels_for(active_isa());
  const int mr = ker.mr;
  PooledBuffer wa(gemm::packed_a_bytes(g.Co, K, mr, DType::kF32));
  if (a.packed) {
    gemm::repack_b_as_a(static_cast<const float*>(a.packed->data), g.Co, K, mr, static_cast<float*>(wa.p));
  } else {
    gemm::pack_a_f32_for(ker, gemm::Src{a.weight.data, DType::kF32, K, 1}, g.Co, K, wa.p);
  }
  const int64_t* xs = a.x.strides;
  const int64_t* os = a.out.strides;
  for (int64_t n = 0; n < g.N; ++n) {
    const PatchPanels src{a.x.ptr<float>() + n * xs[0], xs[1], xs[2], g.H, g.W, g.Wo, P,
                          g.kh, g.kw, g.sh, g.dh, g.pt, g.pl};
    gemm::Epilogue epi;
    epi.row_bias = a.bias.empty() ? nullptr : a.bias.ptr<float>();
    float* out = a.out.ptr<float>() + n * os[0];
    epi.out = out;
    epi.out_ld = os[1];
    if (a.accumulate) {
      epi.residual = out;
      epi.res_ld = os[1];
    }
    gemm::GemmJob job{&ker, g.Co, P, K, wa.p, DType::kF32, nullptr, DType::kF32, epi};
    job.b_fill = fill_patch_panel;
    job.b_ctx = &src;
    job.mc_rows = std::min(g.Co, kChannelMajorRows);
    gemm::run_gemm(job);
  }
}

// A tiles hold about this many floats (8 MiB): large enough that the GEMM's
// weight panels are streamed from memory rarely, per many output rows.
constexpr int64_t kTileFloats = int64_t{1} << 21;

void conv_im2col(const Conv2dArgs& a, const Geom& g) {
  const int64_t K = g.Cig * g.kh * g.kw;
  const int64_t total = g.N * g.Ho * g.Wo;
  const gemm::IsaKernels& ker = gemm::kernels_for(active_isa());
  const int64_t mr = ker.mr;
  const int64_t pt = std::min(total, std::max<int64_t>(4 * mr, kTileFloats / K / mr * mr));
  PooledBuffer abuf(gemm::packed_a_bytes(pt, K, static_cast<int>(mr), DType::kF32));
  PooledBuffer ybuf(sizeof(float) * pt * g.Cog);
  float* A = static_cast<float*>(abuf.p);
  float* Y = static_cast<float*>(ybuf.p);
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
    const bool f32 = pw->compute == DType::kF32;
    const float* bias = a.bias.empty() ? nullptr : a.bias.ptr<float>() + grp * g.Cog;
    for (int64_t q0 = 0; q0 < total; q0 += pt) {
      const int64_t rows = std::min(pt, total - q0);
      if (f32) {
        // Patches go straight into A panels: panel p holds pixels p·mr .. p·mr+mr−1
        // as K rows of mr floats; lanes past `rows` are zero.
        const int64_t panels = (rows + mr - 1) / mr;
        const bool by_rows = rows_gatherable(a, g);
        pool.parallel_for(panels, 2, [&](int64_t b, int64_t e, int) {
          for (int64_t p = b; p < e; ++p) {
            float* panel = A + p * K * mr;
            if (by_rows) {
              gather_panel_rows(a, g, grp, q0 + p * mr, std::min(mr, rows - p * mr), mr, panel);
              continue;
            }
            for (int64_t r = 0; r < mr; ++r) {
              if (p * mr + r < rows) {
                gather_patch(a, g, grp, q0 + p * mr + r, panel + r, mr);
              } else {
                for (int64_t k = 0; k < K; ++k) panel[k * mr + r] = 0.f;
              }
            }
          }
        });
        gemm::Epilogue epi;
        epi.bias = bias;
        epi.out = Y;
        epi.out_ld = g.Cog;
        gemm::run_gemm(gemm::GemmJob{&ker, rows, g.Cog, K, A, DType::kF32, pw->data, DType::kF32, epi});
      } else {
        pool.parallel_for(rows, 16, [&](int64_t b, int64_t e, int) {
          for (int64_t r = b; r < e; ++r) gather_patch(a, g, grp, q0 + r, A + r * K, 1);
        });
        LinearArgs l;
        l.x = make_view(A, DType::kF32, {rows, K});
        l.packed = pw;
        if (bias) l.bias = make_view(const_cast<float*>(bias), DType::kF32, {g.Cog});
        l.out = make_view(Y, DType::kF32, {rows, g.Cog});
        linear(l);
      }
      scatter_tile(a, g, grp, q0, rows, Y);
    }
  }
}

}  // namespace

void conv2d(const Conv2dArgs& a) {
  if (a.upsample == 2) return conv_winograd(a, 2);  // validated: the route applies
  const Geom g = geom_of(a);
  const bool direct_ok = !a.packed && a.weight.dtype == DType::kF32;
  const bool direct = direct_ok && ((g.Cig == 1 && g.groups > 1) || g.Cog <= kDirectMaxCog);
  const Route route = conv_route();
  // Winograd from Ho·Wo >= 2·Co: on smaller maps the per-call weight
  // transform (36·Co·Ci values) outweighs the saved multiplies (640 channels
  // at 16², one thread: im2col 13.3 CPU-ms, Winograd 33).
  if (!direct && winograd_ok(a) &&
      (route == Route::kWinograd || (route == Route::kAuto && g.Ho * g.Wo >= 2 * g.Co)))
    return conv_winograd(a);
  if (route != Route::kIm2col && route != Route::kWinograd && !direct && channel_major_ok(a, g, route == Route::kChannelMajor))
    return conv_channel_major(a, g);
  if (is_plain_1x1(a, g)) return conv_1x1(a, g);
  if (direct) return conv_direct(a, g);
  conv_im2col(a, g);
}

}  // namespace tessera::cpu
