// The concrete form of tessera::PackedWeight (opaque in tessera/gemm.h).
//
// Contract between the public entry points (core/packed.cpp) and backends:
// - The backend that packs allocates the struct and fills every field below;
//   the same backend frees it (free_packed_weight of its table), so each side
//   may use its own allocator.
// - `device`, `compute`, `N`, `K` describe the weight [N, K] and the compute
//   dtype (kF32 or kBF16); validation of linear() reads only these.
// - `bytes` is the packed payload size, reported by packed_weight_bytes().
// - `data` and `impl` belong to the backend. The CPU backend keeps its panels
//   in `data` (host pool memory; layout in cpu/gemm/gemm_kernels.h) and leaves
//   `impl` null. The CUDA backend may keep device pointers, descriptors or a
//   struct of its own there; no other code looks inside either.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tessera/gemm.h"
#include "tessera/tensor.h"

namespace tessera {

struct PackedWeight {
  Device device{};
  DType compute = DType::kF32;
  int64_t N = 0, K = 0;
  size_t bytes = 0;
  void* data = nullptr;
  void* impl = nullptr;
};

}  // namespace tessera
