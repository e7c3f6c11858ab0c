// Row conversions between the float dtypes for the portable (plain-flag)
// files of the attention family: rope and the KV-cache append. Internal
// linkage, so no copy is shared with files built for another ISA.
#pragma once
#include <cstdint>
#include <cstring>

#include "tessera/dtype_convert.h"
#include "tessera/tensor.h"

namespace tessera::cpu {
namespace {

void widen_row(const void* src, DType dt, int64_t n, float* dst) {
  if (dt == DType::kF32) {
    std::memcpy(dst, src, sizeof(float) * n);
    return;
  }
  const uint16_t* s = static_cast<const uint16_t*>(src);
  if (dt == DType::kBF16)
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
  else
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
}

void narrow_row(const float* src, DType dt, int64_t n, void* dst) {
  if (dt == DType::kF32) {
    std::memcpy(dst, src, sizeof(float) * n);
    return;
  }
  uint16_t* d = static_cast<uint16_t*>(dst);
  if (dt == DType::kBF16)
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
  else
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
}

}  // namespace
}  // namespace tessera::cpu
