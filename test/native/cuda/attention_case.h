// One attention check: random inputs in the case's dtypes and layout, the
// CUDA op, and ref::attention in float64 on the rounded inputs.
#pragma once
#include <cmath>
#include <string>

#include "cuda_util.h"
#include "reference.h"
#include "tessera/attention.h"

namespace ct {

struct AttnCase {
  int B = 1, Hq = 2, Hkv = 2, Lq = 7, Lk = 7, D = 64;
  tessera::DType qdt = tessera::DType::kF32, kvdt = tessera::DType::kF32, odt = tessera::DType::kF32;
  tessera::QkvLayout layout = tessera::QkvLayout::kBHLD;
  uint32_t mask = 0;
  std::vector<int64_t> blocks;  // block-causal lengths (sum Lk); empty = random partition
  int add_b = 1, add_h = 1;     // additive mask broadcast shape
  std::vector<int32_t> kv_len;
  bool l2norm = false, head_mult = false, lse = true;
  int64_t row_pad = 0;          // extra elements per position row (strided, unaligned views)
  std::string describe() const;
};

// Runs the case; CHECKs the relative error, exact zeros and -inf lse for
// rows with no visible key. Returns the relative error of out.
double run_attention_case(const AttnCase& c, uint64_t salt);

// Runs attention on device buffers already filled (used by the KV-cache test).
void attention_on_device(const tessera::TensorView& q, const tessera::TensorView& k, const tessera::TensorView& v,
                         const tessera::TensorView& out, uint32_t mask, float scale, const int32_t* kv_len, int B);

}  // namespace ct
