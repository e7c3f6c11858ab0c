// GEMM pieces shared by the tensor-core and SIMT kernels: the fused epilogue
// (alpha, bias, activation, gate, residual, beta·C, output dtype) and launchers.
#pragma once
#include "cuda/common.cuh"

namespace tessera::cuda {

struct Epilogue {
  float alpha = 1.f, beta = 0.f;  // matmul: alpha·acc + beta·C (C read only when beta != 0)
  const float* bias = nullptr;    // [N]
  int act = 0;                    // tessera::Activation
  const float* residual = nullptr;
  int64_t r_sm = 0;               // residual row stride (columns contiguous)
  const float* gate = nullptr;    // linear: [G, N], row m uses gate row m / g_rows (columns contiguous)
  int64_t g_sm = 0, g_rows = 1;
  void* out = nullptr;
  int out_dt = kDtF32;
  int64_t o_sm = 0, o_sn = 1;
};

__device__ __forceinline__ void epilogue_store(const Epilogue& e, int64_t m, int64_t n, float acc) {
  float v = e.alpha * acc;
  if (e.bias) v += e.bias[n];
  if (e.act == 1) {
    // 0.5·v·(1 + tanh u) written as v·σ(2u), as the CPU does (gemm_scalar.cpp):
    // under --use_fast_math tanhf becomes tanh.approx.f32 (~2^-11 relative
    // error), far above the f32 path's 1e-5; expf stays within a few ulp.
    const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);  // sqrt(2/pi)
    v = v / (1.f + expf(-2.f * u));
  } else if (e.act == 2) {
    v = v / (1.f + expf(-v));
  }
  if (e.gate) v *= e.gate[(m / e.g_rows) * e.g_sm + n];
  if (e.residual) v += e.residual[m * e.r_sm + n];
  const int64_t oi = m * e.o_sm + n * e.o_sn;
  if (e.beta != 0.f) v += e.beta * load_as_float(e.out, e.out_dt, oi);
  store_from_float(e.out, e.out_dt, oi, v);
}

// C[m][n] = Σ_k A(m,k)·B(k,n) with A(m,k) = a[m·a_sm + k·a_sk] and
// B(k,n) = b[k·b_sk + n·b_sn], any float dtypes, f32 arithmetic.
struct SimtGemm {
  const void* a;
  int a_dt;
  int64_t a_sm, a_sk;
  const void* b;
  int b_dt;
  int64_t b_sk, b_sn;
  int64_t M, N, K;
};
void launch_gemm_simt(const SimtGemm& g, const Epilogue& e, cudaStream_t s);

// Output tiles on a one-dimensional grid, N tiles fastest (the order of the
// former (N tiles, M tiles) grid): grid y stops at 65535, which refused
// linear layers over more than 65535 row tiles (8.4M rows) that the CPU runs.
inline dim3 gemm_grid(int64_t M, int64_t N, int tile_m, int tile_n) {
  const int64_t blocks = ((M + tile_m - 1) / tile_m) * ((N + tile_n - 1) / tile_n);
  if (blocks > 0x7fffffff)
    throw Error(Code::kShape, "GEMM: " + std::to_string(blocks) + " output tiles exceed one CUDA launch (2^31 - 1)");
  return dim3(static_cast<unsigned>(blocks));
}
// (m0, n0) of this block's output tile.
__device__ __forceinline__ void gemm_tile(int64_t N, int tile_m, int tile_n, int64_t* m0, int64_t* n0) {
  const unsigned n_tiles = static_cast<unsigned>((N + tile_n - 1) / tile_n);
  *m0 = int64_t(blockIdx.x / n_tiles) * tile_m;
  *n0 = int64_t(blockIdx.x % n_tiles) * tile_n;
}

// Tensor-core path: x [M,K] (row stride lda) times W [N,K] (row stride ldw),
// both bf16 or both f16, K-contiguous, 16-byte aligned, K % 8 == 0.
struct MmaGemm {
  const void* x;
  int64_t lda;
  const void* w;
  int64_t ldw;
  int dt;
  int64_t M, N, K;
};
bool gemm_mma_supported(const MmaGemm& g);
void launch_gemm_mma(const MmaGemm& g, const Epilogue& e, int device, cudaStream_t s);

}  // namespace tessera::cuda
