// Winograd F(4×4, 3×3) for float32 3×3 convs with stride 1, dilation 1 and
// padding 1 on every side (the VQVAE decoder's convs; Lavin & Gray 2016,
// "Fast Algorithms for Convolutional Neural Networks"). Each 4×4 output tile
// is A^T·[(G·g·G^T) ⊙ (B^T·d·B)]·A over its 6×6 input patch d, so the 144
// multiplies per tile and channel pair become 36: for each of the 36
// transformed positions ξ = (k, l), M_ξ [Co, tiles] = U_ξ [Co, Ci] ·
// V_ξ [Ci, tiles], run on the GEMM's register tiles. The interpolation points
// are 0, ±1, ±2 and ∞:
//   B^T = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0;
//          0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//   G   = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
// Work is split into bands of up to 64 tiles (part of a tile row, or several
// short rows); a band's V (input transform), its 36 products and the output
// transform run on one thread, so V and M stay in its caches. The weights
// are transformed per call (36·Co·Ci values, in float64, rounded once).
//
// The input may be read through a nearest 2× upsample (Upsample2x followed by
// this conv, without the 4×-sized upsampled map): input row y, column x is
// x_low[y / 2][x / 2].
#include <algorithm>

#include "core/packed_weight.h"
#include "cpu/gemm/gemm_driver.h"
#include "cpu/nn/conv_routes.h"
#include "tessera/cpu.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#define TESSERA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TESSERA_CLONES
#endif

constexpr int64_t kNR = gemm::kNR;
// Tiles per band, by measurement (VQVAE decoder, one thread): at 160
// channels 64 tiles beat 32 and 128 by 5-10 %; where Ci + Co > 400, 32 keeps
// V and M (36 × channels × tiles floats each) near 1.5 MiB apiece.
constexpr int64_t kBandTilesSmall = 64, kBandTilesLarge = 32;
// Most bytes of transformed weights per pass over the map (see conv_winograd).
constexpr int64_t kPassBytes = int64_t{16} << 20;

struct Wino {
  int64_t Ci, Co, H, W, Ho, Wo, Th, Tw;  // H, W: the conv's input (after any upsample); Co: of this pass
  int64_t o0;                            // the pass's first output channel (a multiple of 32)
  int64_t bcols, brows, bx, by;          // tile columns / rows per band; bands across / down
  int64_t np;                            // 32-tile panels per band
  int mr;
  int64_t ap;  // A panels of U_ξ (mr rows of Co)
  int up;      // 1, or 2 for the fused nearest upsample
};

// U_ξ = G·g·G^T for every (o, c), stored as the A panels of each U_ξ
// (panel p, row c, lane r = U_ξ[mr·p + r][c]; lanes past Co zero).
// weight_block transforms 32 output channels of one input channel at once:
// g[(3i + j)·32 + r] = w[o0 + r][c][i][j] → u[ξ·32 + r] (float64 inside,
// rounded once).
TESSERA_CLONES void weight_block(const float* g, float* u) {
  double t[6][3][kNR];  // G·g
  for (int j = 0; j < 3; ++j)
    for (int r = 0; r < kNR; ++r) {
      const double g0 = g[j * kNR + r], g1 = g[(3 + j) * kNR + r], g2 = g[(6 + j) * kNR + r];
      t[0][j][r] = 0.25 * g0;
      t[1][j][r] = -(g0 + g1 + g2) * (1.0 / 6);
      t[2][j][r] = -(g0 - g1 + g2) * (1.0 / 6);
      t[3][j][r] = (g0 + 2 * g1 + 4 * g2) * (1.0 / 24);
      t[4][j][r] = (g0 - 2 * g1 + 4 * g2) * (1.0 / 24);
      t[5][j][r] = g2;
    }
  for (int k = 0; k < 6; ++k) {
    float* uk = u + k * 6 * kNR;
    for (int r = 0; r < kNR; ++r) {  // (G·g)·G^T
      const double a0 = t[k][0][r], a1 = t[k][1][r], a2 = t[k][2][r];
      uk[0 * kNR + r] = static_cast<float>(0.25 * a0);
      uk[1 * kNR + r] = static_cast<float>(-(a0 + a1 + a2) * (1.0 / 6));
      uk[2 * kNR + r] = static_cast<float>(-(a0 - a1 + a2) * (1.0 / 6));
      uk[3 * kNR + r] = static_cast<float>((a0 + 2 * a1 + 4 * a2) * (1.0 / 24));
      uk[4 * kNR + r] = static_cast<float>((a0 - 2 * a1 + 4 * a2) * (1.0 / 24));
      uk[5 * kNR + r] = static_cast<float>(a2);
    }
  }
}

void winograd_weights(const Conv2dArgs& a, const Wino& w, float* U) {
  const int64_t Ci = w.Ci, Co = w.Co, mr = w.mr, K = Ci * 9;
  const float* raw = a.packed ? nullptr : a.weight.ptr<float>();
  const float* packed = a.packed ? static_cast<const float*>(a.packed->data) : nullptr;
  const int64_t blocks = (Co + kNR - 1) / kNR;
  ThreadPool::global().parallel_for(blocks, 1, [&](int64_t q0, int64_t q1, int) {
    alignas(64) float g[9 * kNR];
    alignas(64) float u[36 * kNR];
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t o0 = q * kNR, n = std::min(kNR, Co - o0);  // local to the pass
      for (int64_t c = 0; c < Ci; ++c) {
        if (packed) {
          // The packed weight's panel q holds row k = (c, i, j) as 32 output
          // channels (zero past Co): the block's g as it is.
          const float* src = packed + (w.o0 / kNR + q) * K * kNR + c * 9 * kNR;
          for (int64_t k = 0; k < 9 * kNR; ++k) g[k] = src[k];
        } else {
          for (int k = 0; k < 9; ++k)
            for (int64_t r = 0; r < kNR; ++r) g[k * kNR + r] = r < n ? raw[(w.o0 + o0 + r) * K + c * 9 + k] : 0.f;
        }
        weight_block(g, u);
        for (int xi = 0; xi < 36; ++xi)
          for (int64_t r0 = 0; r0 < n;) {  // runs of lanes within one A panel
            const int64_t o = o0 + r0, p = o / mr, lane = o % mr, len = std::min(n - r0, mr - lane);
            float* dst = U + ((xi * w.ap + p) * Ci + c) * mr + lane;
            for (int64_t r = 0; r < len; ++r) dst[r] = u[xi * kNR + r0 + r];
            r0 += len;
          }
      }
    }
  });
  // Lanes of the last A panel past Co.
  if (Co % mr)
    for (int xi = 0; xi < 36; ++xi)
      for (int64_t c = 0; c < Ci; ++c) {
        float* dst = U + ((xi * w.ap + w.ap - 1) * Ci + c) * mr;
        for (int64_t r = Co % mr; r < mr; ++r) dst[r] = 0.f;
      }
}

// Input row iy (of the conv's input, after any upsample) at columns
// x0 .. x0 + len − 1 into dst, zero outside the map.
inline void load_row(const Conv2dArgs& a, const Wino& w, int64_t n, int64_t c, int64_t iy, int64_t x0, int64_t len,
                     float* dst) {
  if (iy < 0 || iy >= w.H) {
    #pragma GCC ivdep
    for (int64_t k = 0; k < len; ++k) dst[k] = 0.f;
    return;
  }
  const int64_t* xs = a.x.strides;
  const float* row = a.x.ptr<float>() + n * xs[0] + c * xs[1] + (iy / w.up) * xs[2];
  const int64_t lo = std::clamp<int64_t>(-x0, 0, len), hi = std::clamp<int64_t>(w.W - x0, lo, len);
  #pragma GCC ivdep
  for (int64_t k = 0; k < lo; ++k) dst[k] = 0.f;
  if (w.up == 1) {
    #pragma GCC ivdep
    for (int64_t k = lo; k < hi; ++k) dst[k] = row[x0 + k];
  } else {
    #pragma GCC ivdep
    for (int64_t k = lo; k < hi; ++k) dst[k] = row[(x0 + k) >> 1];
  }
  #pragma GCC ivdep
  for (int64_t k = hi; k < len; ++k) dst[k] = 0.f;
}

// V_ξ of one band: channel c, band tile t (row-major over the band's tile
// rows and columns) at V[((ξ·np + t/32)·Ci + c)·32 + t%32] (the GEMM's B
// panel layout). Per tile row: the 6 input rows are combined along y first
// (D_k = Σ_r B^T[k][r]·row_r, over contiguous columns), each D_k is split
// into its four column phases (D_k[4j + q]), and the combination along x
// reads tile j's six columns as phases 0..3 at j and 0..1 at j + 1.
TESSERA_CLONES void winograd_input(const Conv2dArgs& a, const Wino& w, int64_t n, int64_t ty0, int64_t rows,
                                   int64_t tx0, int64_t cols, float* V, float* tmp) {
  const int64_t Ci = w.Ci, np = w.np;
  const int64_t L = 4 * cols + 4;  // columns read per tile row (2 past the last tile, padded to a multiple of 4)
  float* R = tmp;                  // 6 rows of L
  float* D = R + 6 * L;            // 6 rows of L
  float* P = D + 6 * L;            // 4 phases of cols + 1
  const int64_t pl = cols + 1;
  // The band's rows of one channel are a few KiB in a plane far from the
  // previous channel's: ask for those of channel c + kAhead while c is
  // transformed (the hardware prefetcher misses the start of each short run).
  constexpr int64_t kAhead = 2;
  const int64_t* xs = a.x.strides;
  const int64_t y_lo = std::max<int64_t>(0, (4 * ty0 - 1) / w.up);
  const int64_t y_hi = std::min<int64_t>(a.x.shape[2], (4 * (ty0 + rows) + 1) / w.up + 1);
  const int64_t x_lo = std::max<int64_t>(0, (4 * tx0 - 1) / w.up);
  const int64_t x_hi = std::min<int64_t>(a.x.shape[3], (4 * tx0 - 1 + L) / w.up + 1);
  for (int64_t c = 0; c < Ci; ++c) {
    if (c + kAhead < Ci) {
      const float* next = a.x.ptr<float>() + n * xs[0] + (c + kAhead) * xs[1];
      for (int64_t iy = y_lo; iy < y_hi; ++iy)
        for (int64_t ix = x_lo; ix < x_hi; ix += 16) __builtin_prefetch(next + iy * xs[2] + ix, 0, 3);
    }
    for (int64_t tyl = 0; tyl < rows; ++tyl) {
      const int64_t ty = ty0 + tyl;
      for (int r = 0; r < 6; ++r) load_row(a, w, n, c, 4 * ty - 1 + r, 4 * tx0 - 1, L, R + r * L);
      const float* r0 = R;
      const float* r1 = R + L;
      const float* r2 = R + 2 * L;
      const float* r3 = R + 3 * L;
      const float* r4 = R + 4 * L;
      const float* r5 = R + 5 * L;
      #pragma GCC ivdep
      for (int64_t x = 0; x < L; ++x) {
        D[0 * L + x] = 4.f * r0[x] - 5.f * r2[x] + r4[x];
        D[1 * L + x] = -4.f * (r1[x] + r2[x]) + r3[x] + r4[x];
        D[2 * L + x] = 4.f * (r1[x] - r2[x]) - r3[x] + r4[x];
        D[3 * L + x] = 2.f * (r3[x] - r1[x]) - r2[x] + r4[x];
        D[4 * L + x] = 2.f * (r1[x] - r3[x]) - r2[x] + r4[x];
        D[5 * L + x] = 4.f * r1[x] - 5.f * r3[x] + r5[x];
      }
      for (int k = 0; k < 6; ++k) {
        const float* d = D + k * L;
        float* p0 = P;
        float* p1 = P + pl;
        float* p2 = P + 2 * pl;
        float* p3 = P + 3 * pl;
        #pragma GCC ivdep
        for (int64_t j = 0; j < pl; ++j) {
          p0[j] = d[4 * j];
          p1[j] = d[4 * j + 1];
          p2[j] = d[4 * j + 2];
          p3[j] = d[4 * j + 3];
        }
        for (int64_t j0 = 0; j0 < cols;) {
          const int64_t t0 = tyl * cols + j0, lane0 = t0 % kNR, pj = t0 / kNR;
          const int64_t len = std::min(cols - j0, kNR - lane0);
          float* v[6];
          for (int l = 0; l < 6; ++l) v[l] = V + ((((k * 6 + l) * np + pj) * Ci + c) * kNR) + lane0;
          const float* e0 = p0 + j0;
          const float* e1 = p1 + j0;
          const float* e2 = p2 + j0;
          const float* e3 = p3 + j0;
          const float* e4 = p0 + j0 + 1;
          const float* e5 = p1 + j0 + 1;
          #pragma GCC ivdep
          for (int64_t t = 0; t < len; ++t) {
            v[0][t] = 4.f * e0[t] - 5.f * e2[t] + e4[t];
            v[1][t] = -4.f * (e1[t] + e2[t]) + e3[t] + e4[t];
            v[2][t] = 4.f * (e1[t] - e2[t]) - e3[t] + e4[t];
            v[3][t] = 2.f * (e3[t] - e1[t]) - e2[t] + e4[t];
            v[4][t] = 2.f * (e1[t] - e3[t]) - e2[t] + e4[t];
            v[5][t] = 4.f * e1[t] - 5.f * e3[t] + e5[t];
          }
          j0 += len;
        }
      }
    }
  }
  // Lanes past the band's last tile: zero, so the products never see stale
  // (possibly denormal) values; their columns are not stored anyway.
  const int64_t tiles = rows * cols;
  if (tiles % kNR)
    for (int xi = 0; xi < 36; ++xi)
      for (int64_t c = 0; c < Ci; ++c) {
        float* v = V + (((xi * np + tiles / kNR) * Ci + c) * kNR);
        #pragma GCC ivdep
        for (int64_t t = tiles % kNR; t < kNR; ++t) v[t] = 0.f;
      }
}

// out (+)= bias + A^T·M·A for the band's tiles; M_ξ row o at M + (ξ·Co + o)·ld.
TESSERA_CLONES void winograd_output(const Conv2dArgs& a, const Wino& w, int64_t n, int64_t ty0, int64_t rows,
                                    int64_t tx0, int64_t cols, const float* M, int64_t ld, float* tmp) {
  const int64_t* os = a.out.strides;
  const float* bias = a.bias.empty() ? nullptr : a.bias.ptr<float>();
  float* S = tmp;              // 6 rows of cols: row i of A^T applied along k, per l
  float* Y = S + 6 * cols;     // 4·cols: one output row of the band
  const int64_t x0 = 4 * tx0, xn = std::min(w.Wo - x0, 4 * cols);
  for (int64_t o = 0; o < w.Co; ++o) {
    const float bo = bias ? bias[w.o0 + o] : 0.f;
    float* plane = a.out.ptr<float>() + n * os[0] + (w.o0 + o) * os[1];
    for (int64_t tyl = 0; tyl < rows; ++tyl) {
      const float* m[36];
      for (int xi = 0; xi < 36; ++xi) m[xi] = M + (xi * w.Co + o) * ld + tyl * cols;
      for (int i = 0; i < 4; ++i) {
        const int64_t oy = 4 * (ty0 + tyl) + i;
        if (oy >= w.Ho) break;
        // S_l = Σ_k A^T[i][k]·M_(k,l)
        for (int l = 0; l < 6; ++l) {
          const float* q0 = m[l];
          const float* q1 = m[6 + l];
          const float* q2 = m[12 + l];
          const float* q3 = m[18 + l];
          const float* q4 = m[24 + l];
          const float* q5 = m[30 + l];
          float* s = S + l * cols;
          switch (i) {
            case 0:
              #pragma GCC ivdep
              for (int64_t j = 0; j < cols; ++j) s[j] = q0[j] + q1[j] + q2[j] + q3[j] + q4[j];
              break;
            case 1:
              #pragma GCC ivdep
              for (int64_t j = 0; j < cols; ++j) s[j] = q1[j] - q2[j] + 2.f * (q3[j] - q4[j]);
              break;
            case 2:
              #pragma GCC ivdep
              for (int64_t j = 0; j < cols; ++j) s[j] = q1[j] + q2[j] + 4.f * (q3[j] + q4[j]);
              break;
            default:
              #pragma GCC ivdep
              for (int64_t j = 0; j < cols; ++j) s[j] = q1[j] - q2[j] + 8.f * (q3[j] - q4[j]) + q5[j];
          }
        }
        const float* s0 = S;
        const float* s1 = S + cols;
        const float* s2 = S + 2 * cols;
        const float* s3 = S + 3 * cols;
        const float* s4 = S + 4 * cols;
        const float* s5 = S + 5 * cols;
        #pragma GCC ivdep
        for (int64_t j = 0; j < cols; ++j) {
          Y[4 * j] = s0[j] + s1[j] + s2[j] + s3[j] + s4[j] + bo;
          Y[4 * j + 1] = s1[j] - s2[j] + 2.f * (s3[j] - s4[j]) + bo;
          Y[4 * j + 2] = s1[j] + s2[j] + 4.f * (s3[j] + s4[j]) + bo;
          Y[4 * j + 3] = s1[j] - s2[j] + 8.f * (s3[j] - s4[j]) + s5[j] + bo;
        }
        float* row = plane + oy * os[2] + x0;
        if (a.accumulate)
          #pragma GCC ivdep
          for (int64_t x = 0; x < xn; ++x) row[x] += Y[x];
        else
          #pragma GCC ivdep
          for (int64_t x = 0; x < xn; ++x) row[x] = Y[x];
      }
    }
  }
}

}  // namespace

bool winograd_ok(const Conv2dArgs& a) {
  const bool f32 = a.packed ? a.packed->compute == DType::kF32 : a.weight.dtype == DType::kF32;
  const int64_t* os = a.out.strides;
  const int64_t Wo = a.out.shape[3], Ho = a.out.shape[2];
  return f32 && a.groups == 1 && a.weight.shape[2] == 3 && a.weight.shape[3] == 3 && a.stride_h == 1 &&
         a.stride_w == 1 && a.dilation_h == 1 && a.dilation_w == 1 && a.pad_top == 1 && a.pad_bottom == 1 &&
         a.pad_left == 1 && a.pad_right == 1 && (a.x.shape[3] == 1 || a.x.strides[3] == 1) &&
         (Wo == 1 || os[3] == 1) && (Ho == 1 || os[2] == Wo) && os[1] >= Ho * Wo;
}

void conv_winograd(const Conv2dArgs& a, int up) {
  const gemm::IsaKernels& ker = gemm::kernels_for(active_isa());
  Wino w;
  w.up = up;
  w.Ci = a.x.shape[1], w.Co = a.out.shape[1], w.H = a.x.shape[2] * up, w.W = a.x.shape[3] * up;
  w.Ho = a.out.shape[2], w.Wo = a.out.shape[3];
  w.Th = (w.Ho + 3) / 4, w.Tw = (w.Wo + 3) / 4;
  const int64_t target = w.Ci + w.Co > 400 ? kBandTilesLarge : kBandTilesSmall;
  if (w.Tw >= target) {
    w.bx = (w.Tw + target - 1) / target;
    w.bcols = (w.Tw + w.bx - 1) / w.bx;
    w.brows = 1;
  } else {
    w.bx = 1;
    w.bcols = w.Tw;
    w.brows = std::min(w.Th, std::max<int64_t>(1, target / w.Tw));
  }
  w.by = (w.Th + w.brows - 1) / w.brows;
  w.np = (w.brows * w.bcols + kNR - 1) / kNR;
  w.mr = ker.mr;
  // Output channels per pass: U holds 36·Co·Ci floats, transformed per call;
  // at 640 input channels that is 59 MiB for 640 outputs, more than the
  // pass's products need at the small maps where such convs run. Passes of
  // at most kPassBytes of U (multiples of 32 channels, the packed weight's
  // panels) keep it cache- and pool-friendly; the input transform is redone
  // per pass (a few % of the conv at those sizes).
  const int64_t Cout = a.out.shape[1];
  const int64_t per32 = 36 * 32 * w.Ci * static_cast<int64_t>(sizeof(float));
  const int64_t chunk = std::min(Cout, std::max<int64_t>(1, kPassBytes / per32) * 32);
  const int64_t ap_max = (chunk + w.mr - 1) / w.mr;
  const int64_t N = a.x.shape[0];
  gemm::PooledBuffer ubuf(sizeof(float) * 36 * ap_max * w.Ci * w.mr);
  float* U = static_cast<float*>(ubuf.p);
  const int64_t ld = w.np * kNR;  // M_ξ row length (tiles, padded to panels)
  const size_t v_floats = 36 * w.np * w.Ci * kNR, m_floats = 36 * chunk * ld;
  const int64_t L = 4 * w.bcols + 4;
  const size_t tmp_floats = std::max<size_t>(12 * L + 4 * (w.bcols + 1), 10 * w.bcols);
  const int64_t bands = w.bx * w.by;
  for (w.o0 = 0; w.o0 < Cout; w.o0 += chunk) {
    w.Co = std::min(chunk, Cout - w.o0);
    w.ap = (w.Co + w.mr - 1) / w.mr;
    winograd_weights(a, w, U);
    ThreadPool::global().parallel_for(N * bands, 1, [&](int64_t b0, int64_t b1, int tid) {
      float* V = static_cast<float*>(thread_scratch(tid, 2, sizeof(float) * v_floats));
      float* M = static_cast<float*>(thread_scratch(tid, 3, sizeof(float) * m_floats));
      float* tmp = static_cast<float*>(thread_scratch(tid, 4, sizeof(float) * tmp_floats));
      for (int64_t bi = b0; bi < b1; ++bi) {
        const int64_t n = bi / bands, by = (bi % bands) / w.bx, bx = bi % w.bx;
        const int64_t ty0 = by * w.brows, rows = std::min(w.brows, w.Th - ty0);
        const int64_t tx0 = bx * w.bcols, cols = std::min(w.bcols, w.Tw - tx0);
        const int64_t tiles = rows * cols;
        winograd_input(a, w, n, ty0, rows, tx0, cols, V, tmp);
        for (int xi = 0; xi < 36; ++xi) {
          gemm::Epilogue epi;
          epi.out = M + xi * w.Co * ld;
          epi.out_ld = ld;
          // Each A panel of U_ξ (mr·Ci floats) is read once per band, for all
          // of the band's B panels.
          for (int64_t i = 0; i < w.ap; ++i) {
            const float* ap = U + (xi * w.ap + i) * w.Ci * w.mr;
            const int nr = static_cast<int>(std::min<int64_t>(w.mr, w.Co - i * w.mr));
            for (int64_t j = 0; j * kNR < tiles; ++j) {
              const gemm::Tile t{i * w.mr, j * kNR, nr, static_cast<int>(std::min<int64_t>(kNR, tiles - j * kNR))};
              ker.f32(t, w.Ci, ap, V + (xi * w.np + j) * w.Ci * kNR, nullptr, false, &epi);
            }
          }
        }
        // M rows are `cols` apart per tile row of the band (ld spans the band).
        winograd_output(a, w, n, ty0, rows, tx0, cols, M, ld, tmp);
      }
    });
  }
}

}  // namespace tessera::cpu
