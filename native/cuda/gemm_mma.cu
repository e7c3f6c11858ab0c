// Tensor-core GEMM for linear layers in PyTorch weight layout: Y = X·Wᵀ with
// X [M,K] and W [N,K] both K-contiguous, so both operands load with the same
// non-transposed ldmatrix (the Q·Kᵀ pattern of the attention kernel).
// 128×128 block tile, k-slices of 32, 3-stage cp.async pipeline, 8 warps as
// 2 (M) × 4 (N), 64×32 outputs per warp, f32 accumulators, fused epilogue.
#include "cuda/gemm_common.cuh"
#include "cuda/mma_sm80.cuh"

namespace tessera::cuda {
namespace {

constexpr int kBM = 128, kBN = 128, kBK = 32, kStages = 3, kThreads = 256;
constexpr int kStride = kBK + 8;  // 80-byte rows: 5 bank groups apart, odd, so ldmatrix phases don't conflict
constexpr int kStageElems = (kBM + kBN) * kStride;
constexpr size_t kSmemBytes = size_t(kStages) * kStageElems * 2;

template <class T>
__device__ __forceinline__ void load_stage(T* sA, T* sB, const MmaGemm& g, int64_t m0, int64_t n0, int64_t k0) {
  const T* x = static_cast<const T*>(g.x);
  const T* w = static_cast<const T*>(g.w);
  constexpr int kChunks = kBK / 8;
  for (int c = threadIdx.x; c < kBM * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const int64_t k = k0 + col;
    const bool okA = m0 + r < g.M && k < g.K;
    cp_async16(sA + r * kStride + col, okA ? x + (m0 + r) * g.lda + k : x, okA);
    const bool okB = n0 + r < g.N && k < g.K;
    cp_async16(sB + r * kStride + col, okB ? w + (n0 + r) * g.ldw + k : w, okB);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) gemm_mma_kernel(const MmaGemm g, const Epilogue e) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / 4, wn = warp % 4;
  int64_t m0, n0;
  gemm_tile(g.N, kBM, kBN, &m0, &n0);
  const int k_tiles = static_cast<int>((g.K + kBK - 1) / kBK);

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < k_tiles) load_stage<T>(smem + st * kStageElems, smem + st * kStageElems + kBM * kStride, g, m0, n0,
                                    int64_t(st) * kBK);
    cp_async_commit();
  }

  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<kStages - 2>();  // tile kt has landed
    __syncthreads();               // ... for every thread, and stage (kt-1) is free again
    const int pf = kt + kStages - 1;
    if (pf < k_tiles) {
      T* st = smem + (pf % kStages) * kStageElems;
      load_stage<T>(st, st + kBM * kStride, g, m0, n0, int64_t(pf) * kBK);
    }
    cp_async_commit();

    const T* sA = smem + (kt % kStages) * kStageElems;
    const T* sB = sA + kBM * kStride;
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t af[4][4], bf[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
        ldmatrix_x4(af[mi], sA + (wm * 64 + mi * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * kStride + kk * 16 +
                                (lane / 16) * 8);
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        uint32_t r[4];
        ldmatrix_x4(r, sB + (wn * 32 + np * 16 + (lane % 8) + (lane / 16) * 8) * kStride + kk * 16 +
                           ((lane / 8) % 2) * 8);
        bf[2 * np][0] = r[0];
        bf[2 * np][1] = r[1];
        bf[2 * np + 1][0] = r[2];
        bf[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma_16816<T>(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int e4 = 0; e4 < 4; ++e4) {
        const int64_t m = m0 + wm * 64 + mi * 16 + lane / 4 + (e4 >> 1) * 8;
        const int64_t n = n0 + wn * 32 + ni * 8 + (lane % 4) * 2 + (e4 & 1);
        if (m < g.M && n < g.N) epilogue_store(e, m, n, acc[mi][ni][e4]);
      }
}

template <class T> void launch_typed(const MmaGemm& g, const Epilogue& e, int device, cudaStream_t s) {
  auto kernel = gemm_mma_kernel<T>;
  if (static_cast<size_t>(max_smem_optin(device)) < kSmemBytes)
    throw Error(Code::kDevice, "device has too little shared memory for the GEMM kernel");
  TS_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemBytes)));
  kernel<<<gemm_grid(g.M, g.N, kBM, kBN), kThreads, kSmemBytes, s>>>(g, e);
  TS_LAUNCHED("gemm_mma_kernel");
}

}  // namespace

bool gemm_mma_supported(const MmaGemm& g) {
  if (g.dt != kDtBF16 && g.dt != kDtF16) return false;
  auto al = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return g.K % 8 == 0 && g.lda % 8 == 0 && g.ldw % 8 == 0 && al(g.x) && al(g.w);
}

void launch_gemm_mma(const MmaGemm& g, const Epilogue& e, int device, cudaStream_t s) {
  if (g.M == 0 || g.N == 0) return;
  if (g.dt == kDtBF16) launch_typed<__nv_bfloat16>(g, e, device, s);
  else launch_typed<__half>(g, e, device, s);
}

}  // namespace tessera::cuda
