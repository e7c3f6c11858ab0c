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
