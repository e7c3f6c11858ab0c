// A tensor is plain data: dtype, rank, shape, strides, data pointer, device.
// Nothing is owned here; owners live in the bindings (TypedArrays, pooled
// device buffers). Strides are in ELEMENTS, not bytes: every view Tessera
// accepts is element-aligned (TypedArrays are), so element strides keep the
// kernels' index arithmetic simple.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "tessera/status.h"

namespace tessera {

enum class DType : int32_t { kF32 = 0, kF16 = 1, kBF16 = 2, kI32 = 3, kI64 = 4, kU8 = 5, kBool = 6, kF64 = 7 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: case DType::kI32: return 4;
    case DType::kF16: case DType::kBF16: return 2;
    case DType::kI64: case DType::kF64: return 8;
    case DType::kU8: case DType::kBool: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    case DType::kI32: return "int32";
    case DType::kI64: return "int64";
    case DType::kU8: return "uint8";
    case DType::kBool: return "bool";
    case DType::kF64: return "float64";
  }
  return "?";
}

enum class DeviceKind : int32_t { kCPU = 0, kCUDA = 1 };

struct Device {
  DeviceKind kind = DeviceKind::kCPU;
  int32_t index = 0;
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

constexpr int kMaxRank = 8;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int32_t rank = 0;
  int64_t shape[kMaxRank] = {0};
  int64_t strides[kMaxRank] = {0};  // in elements
  Device device{};

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
  }
  bool empty() const { return data == nullptr; }
  bool is_contiguous() const {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != s) return false;
      s *= shape[i];
    }
    return true;
  }
  template <class T> T* ptr() const { return static_cast<T*>(data); }
  // Byte range [lo, hi) this view can touch (for alias checks).
  void byte_range(uintptr_t* lo, uintptr_t* hi) const {
    int64_t min_off = 0, max_off = 0;
    for (int i = 0; i < rank; ++i) {
      if (shape[i] == 0) { *lo = *hi = reinterpret_cast<uintptr_t>(data); return; }
      int64_t e = (shape[i] - 1) * strides[i];
      if (e < 0) min_off += e; else max_off += e;
    }
    const auto base = reinterpret_cast<uintptr_t>(data);
    const int64_t es = static_cast<int64_t>(dtype_size(dtype));
    *lo = base + min_off * es;
    *hi = base + (max_off + 1) * es;
  }
};

// A contiguous view over `data` with the given shape.
inline TensorView make_view(void* data, DType dt, std::initializer_list<int64_t> shape,
                            Device dev = {}) {
  TensorView v;
  v.data = data;
  v.dtype = dt;
  v.device = dev;
  v.rank = static_cast<int32_t>(shape.size());
  int i = 0;
  for (int64_t s : shape) v.shape[i++] = s;
  int64_t st = 1;
  for (int j = v.rank - 1; j >= 0; --j) { v.strides[j] = st; st *= v.shape[j]; }
  return v;
}

inline bool overlaps(const TensorView& a, const TensorView& b) {
  if (a.empty() || b.empty() || a.device != b.device) return false;
  uintptr_t alo, ahi, blo, bhi;
  a.byte_range(&alo, &ahi);
  b.byte_range(&blo, &bhi);
  return alo < bhi && blo < ahi;
}

std::string shape_str(const TensorView& t);

}  // namespace tessera
