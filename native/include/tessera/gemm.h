// Linear layers in PyTorch weight layout: y = gate ⊙ act(x·Wᵀ + b) + r.
#pragma once
#include <cstdint>

#include "tessera/tensor.h"

namespace tessera {

enum class Activation : int32_t { kNone = 0, kGeluTanh = 1, kSilu = 2 };

struct PackedWeight;  // opaque, backend-specific pre-packed form of a weight

struct LinearArgs {
  TensorView x;         // [M, K]; f32, or bf16/f16 (then W must be 16-bit too and the bf16 path runs)
  TensorView weight;    // [N, K] (PyTorch nn.Linear layout); f32, bf16 or f16. Ignored if `packed` is set.
  const PackedWeight* packed = nullptr;  // optional: pack_weight() result for this weight
  TensorView bias;      // [N] f32, or empty
  TensorView residual;  // [M, N] f32, or empty; added after the activation (and the gate)
  // [G, N] f32, or empty: multiplies act(x·Wᵀ + b) before the residual is
  // added; G divides M and row m uses gate row m / (M / G) (one gate vector
  // per group of M/G consecutive rows: VAR's AdaLN gate, one per sample
  // broadcast over its tokens). Columns contiguous; must not overlap out.
  TensorView gate;
  TensorView out;       // [M, N]; f32 (or bf16/f16: rounded at the end). May alias `residual` exactly (in-place add), nothing else.
  Activation act = Activation::kNone;
};

// Rows of x, residual and out may be strided (strides[0] >= K or N); the last
// dimension must be contiguous (stride 1).
void linear(const LinearArgs& args);

// General matrix product C = alpha·op(A)·op(B) + beta·C, f32, strided.
// op(X) = Xᵀ when trans_X. Shapes after op: A [M,K], B [K,N], C [M,N].
struct MatmulArgs {
  TensorView a, b, c;
  bool trans_a = false, trans_b = false;
  float alpha = 1.f, beta = 0.f;
};
void matmul(const MatmulArgs& args);

// Pre-packs a weight [N, K] for repeated use by linear() on the weight's device.
// `compute` is kF32 or kBF16 (bf16 packing needs a bf16/f16/f32 weight and rounds f32).
PackedWeight* pack_weight(const TensorView& weight, DType compute);
void free_packed_weight(PackedWeight* w);
size_t packed_weight_bytes(const PackedWeight* w);

}  // namespace tessera
