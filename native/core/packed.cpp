// Public pre-packing of weights: validate, then hand to the backend of the
// weight's device (contract in core/packed_weight.h).
#include <string>

#include "core/packed_weight.h"
#include "cpu/cpu_ops.h"
#include "tessera/backend.h"

namespace tessera {

PackedWeight* pack_weight(const TensorView& w, DType compute) {
  TESSERA_CHECK(!w.empty(), kInvalidArgument, "pack_weight: weight is missing (null data)");
  TESSERA_CHECK(w.rank == 2 && w.shape[0] >= 1 && w.shape[1] >= 1, kShape,
                "pack_weight: weight must be a non-empty 2-D [N, K], got " + shape_str(w));
  TESSERA_CHECK(w.shape[1] == 1 || w.strides[1] == 1, kShape,
                "pack_weight: weight must be contiguous along K (stride 1); make it contiguous first");
  TESSERA_CHECK(w.shape[0] == 1 || w.strides[0] >= w.shape[1], kShape,
                "pack_weight: weight row stride is smaller than K (rows would overlap)");
  TESSERA_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16 || w.dtype == DType::kF16, kDtype,
                std::string("pack_weight: weight must be float32, bfloat16 or float16, got ") + dtype_name(w.dtype));
  TESSERA_CHECK(compute == DType::kF32 || compute == DType::kBF16, kDtype,
                std::string("pack_weight: compute dtype must be float32 or bfloat16, got ") + dtype_name(compute));
  if (w.device.kind == DeviceKind::kCPU) return cpu::pack_weight(w, compute);
  ErrBuf err{};
  PackedWeight* out = nullptr;
  const int rc = cuda_api().pack_weight(&w, static_cast<int32_t>(compute), &out, &err);
  if (rc != 0) throw_cuda_error(rc, err);
  return out;
}

void free_packed_weight(PackedWeight* w) {
  if (!w) return;
  if (w->device.kind == DeviceKind::kCPU) return cpu::free_packed_weight(w);
  ErrBuf err{};
  const int rc = cuda_api().free_packed_weight(w, &err);
  if (rc != 0) throw_cuda_error(rc, err);
}

size_t packed_weight_bytes(const PackedWeight* w) {
  if (!w) return 0;
  if (w->device.kind == DeviceKind::kCPU) return cpu::packed_weight_bytes(w);
  return w->bytes;
}

}  // namespace tessera
