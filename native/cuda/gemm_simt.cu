// General GEMM on CUDA cores (f32 arithmetic, any strides and float dtypes):
// matmul(), f32 linear layers and the shapes the tensor-core kernel declines.
// 128×128 block tile, k-slices of 8 through shared memory, 8×8 outputs per
// thread spread with stride 16 so shared reads are broadcast or conflict-free.
#include "cuda/gemm_common.cuh"

namespace tessera::cuda {
namespace {

constexpr int kTile = 128, kK = 8, kThreads = 256;

__global__ void __launch_bounds__(kThreads) gemm_simt_kernel(const SimtGemm g, const Epilogue e) {
  __shared__ float sA[kK][kTile];
  __shared__ float sB[kK][kTile];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  int64_t m0, n0;
  gemm_tile(g.N, kTile, kTile, &m0, &n0);
  // Coalescing: walk the operand's contiguous dimension with consecutive threads.
  const bool a_k_fast = g.a_sk == 1, b_k_fast = g.b_sk == 1;
  float acc[8][8] = {};
  for (int64_t k0 = 0; k0 < g.K; k0 += kK) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int eidx = tid + kThreads * r;
      const int mi = a_k_fast ? eidx / kK : eidx % kTile, ki = a_k_fast ? eidx % kK : eidx / kTile;
      const int64_t m = m0 + mi, k = k0 + ki;
      sA[ki][mi] = (m < g.M && k < g.K) ? load_as_float(g.a, g.a_dt, m * g.a_sm + k * g.a_sk) : 0.f;
      const int ni = b_k_fast ? eidx / kK : eidx % kTile, kj = b_k_fast ? eidx % kK : eidx / kTile;
      const int64_t n = n0 + ni, kb = k0 + kj;
      sB[kj][ni] = (n < g.N && kb < g.K) ? load_as_float(g.b, g.b_dt, kb * g.b_sk + n * g.b_sn) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kK; ++kk) {
      float av[8], bv[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) av[i] = sA[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 8; ++j) bv[j] = sB[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < g.M && n < g.N) epilogue_store(e, m, n, acc[i][j]);
    }
}

}  // namespace

void launch_gemm_simt(const SimtGemm& g, const Epilogue& e, cudaStream_t s) {
  if (g.M == 0 || g.N == 0) return;
  gemm_simt_kernel<<<gemm_grid(g.M, g.N, kTile, kTile), kThreads, 0, s>>>(g, e);
  TS_LAUNCHED("gemm_simt_kernel");
}

}  // namespace tessera::cuda
