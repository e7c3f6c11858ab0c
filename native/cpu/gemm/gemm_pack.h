// Packing of GEMM operands into the panel layouts of gemm_kernels.h. Portable
// code: packing moves O(MK + NK) bytes against O(MNK) flops.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tessera/tensor.h"

namespace tessera::cpu::gemm {

// A 2-D source read as element (r, c) = p[r·s0 + c·s1] of dtype dt (f32, bf16, f16).
struct Src {
  const void* p;
  DType dt;
  int64_t s0, s1;
};

// Rounding applied while packing to f32: kF32 keeps the value, kBF16 rounds it
// to bf16 first (the bf16 path on CPUs without a bf16 dot product).
size_t packed_b_bytes(int64_t N, int64_t K, DType compute);
// Panels [p0, p1) of B (rows n of the source are output columns).
void pack_b(const Src& w, int64_t N, int64_t K, DType compute, DType round, void* dst, int64_t p0, int64_t p1);
// All panels, in parallel on the global pool.
void pack_b_all(const Src& w, int64_t N, int64_t K, DType compute, DType round, void* dst);

size_t packed_a_bytes(int64_t M, int64_t K, int mr, DType compute);
// pack_a_all for f32 → f32 with the ISA's vectorised packer where it has one
// and the source is row-major with unit stride along K.
struct IsaKernels;
void pack_a_f32_for(const IsaKernels& ker, const Src& x, int64_t M, int64_t K, void* dst);
void pack_a_all(const Src& x, int64_t M, int64_t K, int mr, DType compute, DType round, void* dst);

// The f32 B panels of a weight W [N, K] (pack_b_all layout) rewritten as the
// f32 A panels (mr rows each) of W as an M = N row operand: dst receives
// packed_a_bytes(N, K, mr, kF32) bytes; in parallel on the global pool.
void repack_b_as_a(const float* b, int64_t N, int64_t K, int mr, float* dst);

// Widens rows [k0, k0 + kc) (k0 even) of a bf16 B panel to kc rows of 32 floats.
void unpack_bf16_panel(const uint32_t* panel, int64_t k0, int64_t kc, float* dst);

}  // namespace tessera::cpu::gemm
