// Float64 references: the executable specification of every op. Plain loops,
// dense row-major arrays, no tiling, no cleverness. Kernels on every backend
// are compared against these by ‖out−ref‖/‖ref‖.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace ref {

inline double gelu_tanh(double x) {
  const double c = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
}
inline double silu(double x) { return x / (1.0 + std::exp(-x)); }

// y[m][n] = act(Σ_k x[m][k]·w[n][k] + bias[n]) + residual[m][n]
// act: 0 none, 1 gelu-tanh, 2 silu (tessera::Activation values).
inline void linear(int64_t M, int64_t N, int64_t K, const double* x, const double* w, const double* bias,
                   const double* residual, int act, double* y) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += x[m * K + k] * w[n * K + k];
      if (act == 1) s = gelu_tanh(s);
      if (act == 2) s = silu(s);
      if (residual) s += residual[m * N + n];
      y[m * N + n] = s;
    }
}

struct Mask {
  uint32_t flags = 0;                 // tessera::MaskFlags
  std::vector<int64_t> blocks;        // block-causal lengths (sum = Lk)
  std::vector<int32_t> q_seg, k_seg;  // [B*Lq], [B*Lk]
  std::vector<double> additive;       // [AB, AH, Lq, Lk] with AB in {1,B}, AH in {1,Hq}
  int64_t add_b = 1, add_h = 1;
  std::vector<int32_t> kv_len;        // [B] or empty
};

// q [B,Hq,Lq,D], k/v [B,Hkv,Lk,D], out [B,Hq,Lq,D], lse [B,Hq,Lq] (may be null).
// Semantics: see native/include/tessera/attention.h.
inline void attention(int64_t B, int64_t Hq, int64_t Hkv, int64_t Lq, int64_t Lk, int64_t D,
                      const double* q, const double* k, const double* v, double scale, const Mask& m,
                      bool l2norm, const double* head_mult, double* out, double* lse) {
  std::vector<int64_t> block_of;
  if (m.flags & 2u) {
    for (size_t bi = 0; bi < m.blocks.size(); ++bi)
      for (int64_t t = 0; t < m.blocks[bi]; ++t) block_of.push_back(static_cast<int64_t>(bi));
  }
  const int64_t group = Hq / Hkv;
  std::vector<double> logits(Lk), qn(D), kn(D);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t kvl = m.kv_len.empty() ? Lk : m.kv_len[b];
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t hk = h / group;
      for (int64_t i = 0; i < Lq; ++i) {
        const int64_t p = kvl - Lq + i;
        const double* qi = q + ((b * Hq + h) * Lq + i) * D;
        for (int64_t d = 0; d < D; ++d) qn[d] = qi[d];
        if (l2norm) {
          double n2 = 0;
          for (int64_t d = 0; d < D; ++d) n2 += qn[d] * qn[d];
          const double n = std::max(std::sqrt(n2), 1e-12);
          for (int64_t d = 0; d < D; ++d) qn[d] /= n;
        }
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Lk; ++j) {
          bool vis = j < kvl;
          if ((m.flags & 1u) && j > p) vis = false;
          if ((m.flags & 2u) && vis) vis = p >= 0 && block_of[j] <= block_of[p];
          if ((m.flags & 4u) && m.q_seg[b * Lq + i] != m.k_seg[b * Lk + j]) vis = false;
          if (!vis) { logits[j] = -std::numeric_limits<double>::infinity(); continue; }
          const double* kj = k + ((b * Hkv + hk) * Lk + j) * D;
          for (int64_t d = 0; d < D; ++d) kn[d] = kj[d];
          if (l2norm) {
            double n2 = 0;
            for (int64_t d = 0; d < D; ++d) n2 += kn[d] * kn[d];
            const double n = std::max(std::sqrt(n2), 1e-12);
            for (int64_t d = 0; d < D; ++d) kn[d] /= n;
          }
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += qn[d] * kn[d];
          s *= scale * (head_mult ? head_mult[h] : 1.0);
          if (m.flags & 8u) {
            const int64_t ab = m.add_b == 1 ? 0 : b, ah = m.add_h == 1 ? 0 : h;
            s += m.additive[((ab * m.add_h + ah) * Lq + i) * Lk + j];
          }
          logits[j] = s;
          mx = std::max(mx, s);
        }
        double* o = out + ((b * Hq + h) * Lq + i) * D;
        for (int64_t d = 0; d < D; ++d) o[d] = 0;
        if (mx == -std::numeric_limits<double>::infinity()) {
          if (lse) lse[(b * Hq + h) * Lq + i] = -std::numeric_limits<double>::infinity();
          continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < Lk; ++j) {
          const double e = std::exp(logits[j] - mx);
          logits[j] = e;
          sum += e;
        }
        for (int64_t j = 0; j < Lk; ++j) {
          if (logits[j] == 0) continue;
          const double w = logits[j] / sum;
          const double* vj = v + ((b * Hkv + hk) * Lk + j) * D;
          for (int64_t d = 0; d < D; ++d) o[d] += w * vj[d];
        }
        if (lse) lse[(b * Hq + h) * Lq + i] = mx + std::log(sum);
      }
    }
  }
}

// Rotary embedding on x [B,H,L,D] (dense BHLD). Table rows cos/sin
// [P, TH, R/2] with TH in {1,H}; pos [B*L] (or null = token index).
// style 0 interleaved pairs (2j,2j+1); 1 half pairs (j, j+R/2).
inline void rope(int64_t B, int64_t H, int64_t L, int64_t D, int64_t R, const double* x, const double* cosv,
                 const double* sinv, int64_t TH, const int32_t* pos, int style, double* y) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t l = 0; l < L; ++l) {
        const double* xi = x + ((b * H + h) * L + l) * D;
        double* yi = y + ((b * H + h) * L + l) * D;
        for (int64_t d = 0; d < D; ++d) yi[d] = xi[d];
        const int64_t p = pos ? pos[b * L + l] : l;
        const int64_t th = TH == 1 ? 0 : h;
        for (int64_t j = 0; j < R / 2; ++j) {
          const double c = cosv[(p * TH + th) * (R / 2) + j], s = sinv[(p * TH + th) * (R / 2) + j];
          const int64_t i0 = style == 0 ? 2 * j : j, i1 = style == 0 ? 2 * j + 1 : j + R / 2;
          yi[i0] = xi[i0] * c - xi[i1] * s;
          yi[i1] = xi[i0] * s + xi[i1] * c;
        }
      }
}

}  // namespace ref
