// OctFormer's relative position bias (tessera/octree.h octree_rpe_bias):
// the additive logit bias [n, H, K, K] of a run of windows, parallel over the
// (window, query slot) rows. Per row the three clamped offset indices of
// every key slot are computed once, then each head's row is a branch-free
// sum of three lookups into that head's column of the table (transposed once
// per call to [H, 3R+1], the extra entry a zero that padding keys point at,
// so (0 + 0) + 0 = +0 as the JS reference leaves them). The float32 sums are
// taken in the reference's order, (x + y) + z, so results are bit-identical
// to a loop that rounds each addition (Math.fround in lib/models/octree).
#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/octree/octree_cpu.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::octree {

void rpe_bias(const OctreeRpeBiasArgs& a) {
  const int64_t K = a.window, n = a.n;
  if (n == 0) return;
  const int64_t H = a.table.shape[1], R = a.table.shape[0] / 3, B = (R - 1) / 2;
  const int64_t S = 3 * R + 1;  // per-head stride of the transposed table
  const int32_t zero_row = static_cast<int32_t>(3 * R);
  std::vector<float> tt(static_cast<size_t>(H * S));
  const float* table = a.table.ptr<float>();
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t r = 0; r < 3 * R; ++r) tt[h * S + r] = table[r * H + h];
    tt[h * S + 3 * R] = 0.f;
  }
  const int32_t* perm = a.perm.ptr<int32_t>() + a.w0 * K;
  const int32_t* xyz = a.xyz.ptr<int32_t>();
  float* out = a.out.ptr<float>();
  const int64_t KK = K * K;
  auto clamp_idx = [B](int64_t d) -> int32_t { return static_cast<int32_t>(d < -B ? 0 : d > B ? 2 * B : d + B); };
  ThreadPool::global().parallel_for(n * K, std::max<int64_t>(1, 16384 / (H * K)), [&](int64_t r0, int64_t r1, int) {
    std::vector<int32_t> ix(static_cast<size_t>(3 * K));
    int32_t* ixx = ix.data();
    int32_t* ixy = ixx + K;
    int32_t* ixz = ixy + K;
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t w = row / K, i = row % K;
      const int32_t* pw = perm + w * K;
      float* o = out + w * H * KK + i * K;  // head h's row at o + h·K·K
      const int32_t ti = pw[i];
      if (ti < 0) {
        for (int64_t h = 0; h < H; ++h) std::memset(o + h * KK, 0, static_cast<size_t>(K) * sizeof(float));
        continue;
      }
      const int64_t xi = xyz[3 * int64_t(ti)], yi = xyz[3 * int64_t(ti) + 1], zi = xyz[3 * int64_t(ti) + 2];
      for (int64_t j = 0; j < K; ++j) {
        const int32_t tj = pw[j];
        if (tj < 0) {
          ixx[j] = ixy[j] = ixz[j] = zero_row;
          continue;
        }
        const int32_t* pj = xyz + 3 * int64_t(tj);
        ixx[j] = clamp_idx(xi - pj[0]);
        ixy[j] = static_cast<int32_t>(R) + clamp_idx(yi - pj[1]);
        ixz[j] = static_cast<int32_t>(2 * R) + clamp_idx(zi - pj[2]);
      }
      for (int64_t h = 0; h < H; ++h) {
        const float* t = tt.data() + h * S;
        float* oh = o + h * KK;
        for (int64_t j = 0; j < K; ++j) oh[j] = (t[ixx[j]] + t[ixy[j]]) + t[ixz[j]];
      }
    }
  });
}

}  // namespace tessera::cpu::octree
