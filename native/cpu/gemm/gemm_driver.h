// The packed-panel GEMM driver shared by linear() and matmul().
#pragma once
#include <cstddef>

#include "cpu/gemm/gemm_kernels.h"
#include "tessera/cpu.h"

namespace tessera::cpu::gemm {

struct GemmJob {
  const IsaKernels* ker;
  int64_t M, N, K;
  const void* a;   // packed A (mr = ker->mr), format a_format
  DType a_format;  // kF32, or kBF16 pairs (only when ker->bf16 exists)
  const void* b;   // packed B, format b_format (kF32 or kBF16 pairs)
  DType b_format;
  Epilogue epi;
  // Optional B produced on demand instead of read from `b` (kF32 only):
  // b_fill(b_ctx, j, k0, kc, dst) writes rows [k0, k0 + kc) of f32 panel j
  // (kc rows of 32 floats) to dst, right before the tiles that use it.
  void (*b_fill)(const void* ctx, int64_t j, int64_t k0, int64_t kc, float* dst) = nullptr;
  const void* b_ctx = nullptr;
  // Rows of A per unit of work (0: the default, 112). A unit spanning all of
  // M fills each on-demand B panel once per K block.
  int64_t mc_rows = 0;
};

const IsaKernels& kernels_for(Isa isa);
void run_gemm(const GemmJob& job);

// Host-pool memory for the duration of one call (reused across calls).
struct PooledBuffer {
  explicit PooledBuffer(size_t bytes);
  ~PooledBuffer();
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  void* p;
};

}  // namespace tessera::cpu::gemm
