// vq_nearest and embedding on the CPU.
//
// vq_nearest: the codebook E [V, C] is packed once per call; rows of z are
// taken in tiles whose scores S = z·Eᵀ − ½‖e‖² (bias in the epilogue) come
// from linear(). Per row, the best score and a rigorous bound δ on the f32
// error of every score give the candidate set {v : s_v ≥ best − 2δ}, which
// always contains the true argmin and all rows tied with it; candidates are
// re-scored as ‖z − e‖² in float64 and the smallest, lowest index first, wins.
// Usually the set has one member, so this costs one scan of S per row.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "cpu/gemm/gemm_driver.h"
#include "cpu/nn/nn_ops.h"
#include "tessera/gemm.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
namespace {

using gemm::PooledBuffer;
using nn::row_offset;

// Copies row r of a [.., C] view (any strides) to dst, L2-normalised
// (x / max(‖x‖, 1e-12), F.normalize) when asked; returns ‖dst‖ in float64.
double load_row(const TensorView& t, int64_t r, bool normalize, float* dst, const char* what) {
  const int64_t C = t.shape[t.rank - 1], s = t.strides[t.rank - 1];
  const float* src = t.ptr<float>() + row_offset(t, r);
  double n2 = 0;
  for (int64_t k = 0; k < C; ++k) {
    dst[k] = src[k * s];
    n2 += static_cast<double>(dst[k]) * dst[k];
  }
  TESSERA_CHECK(std::isfinite(n2), kInvalidArgument,
                std::string("vq_nearest: ") + what + " row " + std::to_string(r) + " holds NaN or Inf");
  if (!normalize) return std::sqrt(n2);
  const float inv = static_cast<float>(1.0 / std::max(std::sqrt(n2), 1e-12));
  n2 = 0;
  for (int64_t k = 0; k < C; ++k) {
    dst[k] *= inv;
    n2 += static_cast<double>(dst[k]) * dst[k];
  }
  return std::sqrt(n2);
}

double dist2_f64(const float* z, const float* e, int64_t C) {
  double d = 0;
  for (int64_t k = 0; k < C; ++k) {
    const double t = static_cast<double>(z[k]) - e[k];
    d += t * t;
  }
  return d;
}

// Rows of S per tile: about 1M floats (4 MiB), at least 16 rows.
constexpr int64_t kScoreFloats = int64_t{1} << 20;

}  // namespace

void vq_nearest(const VqNearestArgs& a) {
  const int64_t C = a.codebook.shape[1], V = a.codebook.shape[0];
  const int64_t R = a.z.numel() / C;
  auto& pool = ThreadPool::global();

  // The codebook as the GEMM and the re-scoring see it: contiguous [V, C]
  // float32 (normalised in l2 mode), its bias −½‖e‖² and the largest ‖e‖.
  PooledBuffer ebuf(sizeof(float) * V * C), bbuf(sizeof(float) * V);
  float* E = static_cast<float*>(ebuf.p);
  float* bias = static_cast<float*>(bbuf.p);
  const int nt = pool.num_threads();
  std::unique_ptr<double[]> emax_t(new double[nt]());
  pool.parallel_for(V, 256, [&](int64_t lo, int64_t hi, int tid) {
    for (int64_t v = lo; v < hi; ++v) {
      const double n = load_row(a.codebook, v, a.l2_normalize, E + v * C, "codebook");
      bias[v] = static_cast<float>(-0.5 * n * n);
      emax_t[tid] = std::max(emax_t[tid], n);
    }
  });
  const double emax = *std::max_element(emax_t.get(), emax_t.get() + nt);
  using Owned = std::unique_ptr<PackedWeight, void (*)(PackedWeight*)>;
  Owned packed(pack_weight(make_view(E, DType::kF32, {V, C}), DType::kF32), free_packed_weight);

  const int64_t rt = std::min(R, std::max<int64_t>(16, kScoreFloats / V));
  PooledBuffer zbuf(sizeof(float) * rt * C), sbuf(sizeof(float) * rt * V);
  float* Z = static_cast<float*>(zbuf.p);
  float* S = static_cast<float*>(sbuf.p);
  std::unique_ptr<double[]> znorm(new double[rt]);
  // γ-style bound on |fl(z·e − ½‖e‖²) − exact| for any summation order:
  // (C + 2)·u·(‖z‖‖e‖ + ½‖e‖²) with u = 2^-24, doubled for safety.
  const double unit = std::ldexp(1.0, -23) * static_cast<double>(C + 2);
  int32_t* out = a.indices.ptr<int32_t>();

  for (int64_t r0 = 0; r0 < R; r0 += rt) {
    const int64_t rows = std::min(rt, R - r0);
    pool.parallel_for(rows, 64, [&](int64_t lo, int64_t hi, int) {
      for (int64_t r = lo; r < hi; ++r) znorm[r] = load_row(a.z, r0 + r, a.l2_normalize, Z + r * C, "z");
    });
    LinearArgs l;
    l.x = make_view(Z, DType::kF32, {rows, C});
    l.packed = packed.get();
    l.bias = make_view(bias, DType::kF32, {V});
    l.out = make_view(S, DType::kF32, {rows, V});
    linear(l);
    pool.parallel_for(rows, 4, [&](int64_t lo, int64_t hi, int) {
      for (int64_t r = lo; r < hi; ++r) {
        const float* s = S + r * V;
        float best = s[0];
        for (int64_t v = 1; v < V; ++v) best = std::max(best, s[v]);
        const double delta = unit * (znorm[r] * emax + 0.5 * emax * emax);
        const double thr = static_cast<double>(best) - 2 * delta - 1e-30;
        double best_d = std::numeric_limits<double>::infinity();
        int64_t best_v = 0;
        for (int64_t v = 0; v < V; ++v) {
          if (static_cast<double>(s[v]) < thr) continue;
          const double d = dist2_f64(Z + r * C, E + v * C, C);
          if (d < best_d) best_d = d, best_v = v;  // strict: the lowest index keeps a tie
        }
        out[r0 + r] = static_cast<int32_t>(best_v);
      }
    });
  }
}

void embedding(const EmbeddingArgs& a) {
  const int64_t V = a.table.shape[0], C = a.table.shape[1];
  const int64_t R = a.indices.numel();
  const int32_t* idx = a.indices.ptr<int32_t>();
  for (int64_t r = 0; r < R; ++r)  // all indices first: nothing is written for a bad call
    TESSERA_CHECK(idx[r] >= 0 && idx[r] < V, kInvalidArgument,
                  "embedding: index " + std::to_string(idx[r]) + " at position " + std::to_string(r) +
                      " is outside the table's " + std::to_string(V) + " rows");
  const int64_t os = a.out.strides[a.out.rank - 1];
  ThreadPool::global().parallel_for(R, std::max<int64_t>(1, 4096 / C), [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* e = a.table.ptr<float>() + idx[r] * a.table.strides[0];
      float* y = a.out.ptr<float>() + row_offset(a.out, r);
      float inv = 1.f;
      if (a.l2_normalize) {
        double n2 = 0;
        for (int64_t k = 0; k < C; ++k) n2 += static_cast<double>(e[k]) * e[k];
        inv = static_cast<float>(1.0 / std::max(std::sqrt(n2), 1e-12));
      }
      for (int64_t k = 0; k < C; ++k) y[k * os] = a.l2_normalize ? e[k] * inv : e[k];
    }
  });
}

}  // namespace tessera::cpu
