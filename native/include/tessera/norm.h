// Normalisations of the VAR and LlamaGen models, float32.
// Statistics are accumulated in float64 (two passes: mean, then the mean of
// squared deviations), so the result does not depend on the thread count.
#pragma once
#include <cstdint>

#include "tessera/tensor.h"

namespace tessera {

// GroupNorm (torch.nn.GroupNorm): for each sample n and group g of C/G channels,
//   y = (x − mean) / sqrt(var + eps) · weight[c] + bias[c]   (biased variance)
// then, if silu, y = y · sigmoid(y) (the VQVAEs' "swish" that follows every GN).
struct GroupNormArgs {
  TensorView x;       // [N, C, ...] float32, rank 2..8; the dims after C must be contiguous together
  TensorView weight;  // [C] float32, or empty (no affine)
  TensorView bias;    // [C] float32, or empty
  TensorView out;     // like x; may be x itself (same view), otherwise must not overlap it
  int32_t num_groups = 32;
  float eps = 1e-6f;
  bool silu = false;
};
void group_norm(const GroupNormArgs& args);

// LayerNorm over the last dimension with optional affine and AdaLN modulation:
//   y = (x − mean) / sqrt(var + eps) · weight[c] + bias[c]
//   y = y · (1 + scale[b, c]) + shift[b, c]
// where b is the index along x's first dimension (VAR: x [B, L, C], scale and
// shift [B, C] chunks of ada_lin's output, whose rows may be strided).
struct LayerNormArgs {
  TensorView x;       // [..., C] float32, last dim contiguous, other dims any stride
  TensorView weight;  // [C] float32, or empty
  TensorView bias;    // [C] float32, or empty
  TensorView scale;   // [B, C] float32 (B = x.shape[0], last dim contiguous), or empty
  TensorView shift;   // [B, C] float32, or empty
  TensorView out;     // like x; may be x itself, otherwise must not overlap any input
  float eps = 1e-6f;
};
void layer_norm(const LayerNormArgs& args);

// RMSNorm (LlamaGen): y = x / sqrt(mean(x²) + eps) · weight[c].
struct RmsNormArgs {
  TensorView x;       // [..., C] float32, last dim contiguous
  TensorView weight;  // [C] float32, or empty
  TensorView out;     // like x; may be x itself
  float eps = 1e-5f;
};
void rms_norm(const RmsNormArgs& args);

}  // namespace tessera
