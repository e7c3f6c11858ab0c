// OctFormer/OctGPT window plans, row gather/scatter and the depthwise octree
// convolution (CPE).
#include <algorithm>
#include <cstring>

#include "cpu/octree/octree_cpu.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::octree {

OctreeWindowPlan window_plan(const OctreeWindowArgs& a) {
  const int64_t K = a.window, Dl = a.dilation;
  const int64_t lead = a.shift ? K / 2 : 0;
  const int64_t block = K * Dl;
  const int64_t len = ((lead + a.n + block - 1) / block) * block;
  OctreeWindowPlan p;
  p.num_windows = len / K;
  p.perm.resize(len);
  p.segments.resize(len);
  for (int64_t pos = 0; pos < len; ++pos) {
    // Sequence position pos -> window slot: block, then (k, j) with pos = k·Dl + j
    // inside the block; window j of the block holds k = 0..K-1.
    const int64_t blk = pos / block, r = pos % block, k = r / Dl, j = r % Dl;
    const int64_t slot = blk * block + j * K + k;
    const int64_t tok = pos - lead;
    const bool real = tok >= 0 && tok < a.n;
    p.perm[slot] = real ? static_cast<int32_t>(tok) : -1;
    p.segments[slot] = real ? a.batch_ids[tok] : a.batch_size;
  }
  return p;
}

void rows(const RowGatherArgs& a) {
  const int64_t C = a.x.shape[1], M = a.index.shape[0];
  const int32_t* idx = a.index.ptr<int32_t>();
  const float* x = a.x.ptr<float>();
  float* out = a.out.ptr<float>();
  const size_t bytes = static_cast<size_t>(C) * sizeof(float);
  ThreadPool::global().parallel_for(M, std::max<int64_t>(1, 65536 / std::max<int64_t>(C, 1)),
                                    [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t j = idx[i];
      if (a.scatter) {
        if (j >= 0) std::memcpy(out + j * C, x + i * C, bytes);
      } else if (j >= 0) {
        std::memcpy(out + i * C, x + j * C, bytes);
      } else {
        std::memset(out + i * C, 0, bytes);
      }
    }
  });
}

void dwconv(const OctreeDwConvArgs& a) {
  const int64_t M = a.neighbors.shape[0], K = a.neighbors.shape[1], C = a.x.shape[1];
  const float* x = a.x.ptr<float>();
  const float* w = a.weight.ptr<float>();
  const float* bias = a.bias.empty() ? nullptr : a.bias.ptr<float>();
  const float* res = a.residual.empty() ? nullptr : a.residual.ptr<float>();
  const int32_t* nb = a.neighbors.ptr<int32_t>();
  float* out = a.out.ptr<float>();
  ThreadPool::global().parallel_for(M, std::max<int64_t>(1, 8192 / std::max<int64_t>(C, 1)),
                                    [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      float* o = out + i * C;
      for (int64_t c = 0; c < C; ++c) o[c] = bias ? bias[c] : 0.f;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t j = nb[i * K + k];
        if (j < 0) continue;
        const float* xr = x + j * C;
        const float* wr = w + k * C;
        for (int64_t c = 0; c < C; ++c) o[c] += wr[c] * xr[c];
      }
      if (res)
        for (int64_t c = 0; c < C; ++c) o[c] += res[i * C + c];
    }
  });
}

}  // namespace tessera::cpu::octree
