// Vector quantisation: nearest codebook rows, and embedding lookup.
#pragma once
#include <cstdint>

#include "tessera/tensor.h"

namespace tessera {

// indices[r] = argmin_v ‖z_r − e_v‖² (VAR's VectorQuantizer2), or, with
// l2_normalize, the same over ẑ = z/max(‖z‖, 1e-12) and ê likewise
// (LlamaGen's VQ, F.normalize on both sides).
//
// How it is computed, and the tie rule: scores s_v = z·e_v − ½‖e_v‖² come
// from the float32 GEMM (argmax s = argmin distance, ‖z‖² is common to the
// row). Every v whose score is within a rigorous float32 error bound of the
// best score is then re-scored exactly as ‖z − e_v‖² in float64 (the inputs are
// float32, so this is the true distance up to one float64 rounding), and the
// smallest wins, the LOWEST index on an exact tie. So the answer is the
// float64 argmin with first-index ties, independent of ISA and thread count;
// duplicated codebook rows always give the first copy. (In the l2 mode the
// normalised vectors are the float32-rounded ones the kernel computed.)
struct VqNearestArgs {
  TensorView z;         // [N, C] or [B, L, C] float32, any strides (a [B, C, L] tensor viewed as [B, L, C] works)
  TensorView codebook;  // [V, C] float32, last dim contiguous
  TensorView indices;   // int32 with numel = rows of z, contiguous (shape [N] or [B, L])
  bool l2_normalize = false;
};
void vq_nearest(const VqNearestArgs& args);

// out[r, :] = table[indices[r], :]. Every index must be in [0, V): an index
// out of range throws kInvalidArgument naming it, before anything is written.
struct EmbeddingArgs {
  TensorView table;    // [V, C] float32, last dim contiguous
  TensorView indices;  // int32, contiguous, numel = rows of out
  TensorView out;      // [N, C] or [B, L, C] float32, any strides (e.g. [B, C, L] viewed as [B, L, C])
  // With l2_normalize, rows are written as e/max(‖e‖, 1e-12) (LlamaGen's decode_code).
  bool l2_normalize = false;
};
void embedding(const EmbeddingArgs& args);

}  // namespace tessera
