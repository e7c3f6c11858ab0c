// Validation of linear() and matmul(): every backend accepts and refuses the
// same calls, with messages that say what to change.
#include <string>

#include "core/packed_weight.h"
#include "core/validate.h"

namespace tessera {
namespace {

bool is_float(DType t) { return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16; }

// A present 2-D matrix with unit stride along columns and rows that do not overlap.
void check_matrix(const TensorView& t, const char* op, const char* name) {
  const std::string who = std::string(op) + ": " + name;
  TESSERA_CHECK(!t.empty(), kInvalidArgument, who + " is missing (null data)");
  TESSERA_CHECK(t.rank == 2, kShape, who + " must be 2-D, got shape " + shape_str(t));
  TESSERA_CHECK(t.shape[0] >= 1 && t.shape[1] >= 1, kShape, who + " must have non-zero dimensions, got " + shape_str(t));
  TESSERA_CHECK(t.shape[1] == 1 || t.strides[1] == 1, kShape,
                who + " must be contiguous along its last dimension (stride 1), got stride " +
                    std::to_string(t.strides[1]) + "; make it contiguous first");
  TESSERA_CHECK(t.shape[0] == 1 || t.strides[0] >= t.shape[1], kShape,
                who + " row stride " + std::to_string(t.strides[0]) + " is smaller than its row length " +
                    std::to_string(t.shape[1]) + " (rows would overlap)");
}

void check_same_device(const TensorView& t, const TensorView& ref, const char* op, const char* name) {
  if (t.empty()) return;
  TESSERA_CHECK(t.device == ref.device, kDevice,
                std::string(op) + ": " + name + " is on a different device than out; move all tensors to one device");
}

bool same_view(const TensorView& a, const TensorView& b) {
  if (a.data != b.data || a.dtype != b.dtype || a.rank != b.rank) return false;
  for (int i = 0; i < a.rank; ++i)
    if (a.shape[i] != b.shape[i] || a.strides[i] != b.strides[i]) return false;
  return true;
}

void check_no_alias(const TensorView& out, const TensorView& in, const char* op, const char* name) {
  TESSERA_CHECK(!overlaps(out, in), kAlias,
                std::string(op) + ": out overlaps " + name + "; write the result to a separate buffer");
}

}  // namespace

void validate_linear(const LinearArgs& a) {
  const char* op = "linear";
  check_matrix(a.x, op, "x");
  check_matrix(a.out, op, "out");
  const int64_t M = a.x.shape[0], K = a.x.shape[1];
  TESSERA_CHECK(is_float(a.x.dtype), kDtype,
                std::string("linear: x must be float32, bfloat16 or float16, got ") + dtype_name(a.x.dtype));
  TESSERA_CHECK(is_float(a.out.dtype), kDtype,
                std::string("linear: out must be float32, bfloat16 or float16, got ") + dtype_name(a.out.dtype));
  TESSERA_CHECK(static_cast<int32_t>(a.act) >= 0 && static_cast<int32_t>(a.act) <= 2, kInvalidArgument,
                "linear: unknown activation " + std::to_string(static_cast<int32_t>(a.act)));
  int64_t N = 0;
  if (a.packed) {
    N = a.packed->N;
    TESSERA_CHECK(a.packed->K == K, kShape,
                  "linear: x " + shape_str(a.x) + " has K = " + std::to_string(K) + " but the packed weight is [" +
                      std::to_string(a.packed->N) + ", " + std::to_string(a.packed->K) + "]");
    TESSERA_CHECK(a.packed->device == a.out.device, kDevice,
                  "linear: the packed weight is on a different device than out; pack it on the same device");
  } else {
    check_matrix(a.weight, op, "weight");
    N = a.weight.shape[0];
    TESSERA_CHECK(is_float(a.weight.dtype), kDtype,
                  std::string("linear: weight must be float32, bfloat16 or float16, got ") + dtype_name(a.weight.dtype));
    TESSERA_CHECK(a.weight.shape[1] == K, kShape,
                  "linear: weight " + shape_str(a.weight) + " must be [N, K] with K = " + std::to_string(K) +
                      " to match x " + shape_str(a.x) + " (PyTorch nn.Linear layout)");
    TESSERA_CHECK(a.x.dtype == DType::kF32 || a.weight.dtype != DType::kF32, kDtype,
                  std::string("linear: x is ") + dtype_name(a.x.dtype) +
                      " but weight is float32; use a 16-bit weight, pack_weight(weight, bfloat16), or an f32 x");
    check_same_device(a.weight, a.out, op, "weight");
  }
  TESSERA_CHECK(a.out.shape[0] == M && a.out.shape[1] == N, kShape,
                "linear: out must be [" + std::to_string(M) + ", " + std::to_string(N) + "] for x " + shape_str(a.x) +
                    " and N = " + std::to_string(N) + ", got " + shape_str(a.out));
  if (!a.bias.empty()) {
    TESSERA_CHECK(a.bias.rank == 1 && a.bias.shape[0] == N && (N == 1 || a.bias.strides[0] == 1), kShape,
                  "linear: bias must be a contiguous [" + std::to_string(N) + "], got " + shape_str(a.bias));
    TESSERA_CHECK(a.bias.dtype == DType::kF32, kDtype,
                  std::string("linear: bias must be float32, got ") + dtype_name(a.bias.dtype));
  }
  if (!a.residual.empty()) {
    check_matrix(a.residual, op, "residual");
    TESSERA_CHECK(a.residual.shape[0] == M && a.residual.shape[1] == N, kShape,
                  "linear: residual must be [" + std::to_string(M) + ", " + std::to_string(N) + "] like out, got " +
                      shape_str(a.residual));
    TESSERA_CHECK(a.residual.dtype == DType::kF32, kDtype,
                  std::string("linear: residual must be float32, got ") + dtype_name(a.residual.dtype));
  }
  if (!a.gate.empty()) {
    check_matrix(a.gate, op, "gate");
    const int64_t G = a.gate.shape[0];
    TESSERA_CHECK(G >= 1 && M % G == 0 && a.gate.shape[1] == N, kShape,
                  "linear: gate must be [G, " + std::to_string(N) + "] with G dividing M = " + std::to_string(M) +
                      " (one gate row per group of M/G consecutive rows), got " + shape_str(a.gate));
    TESSERA_CHECK(a.gate.dtype == DType::kF32, kDtype,
                  std::string("linear: gate must be float32, got ") + dtype_name(a.gate.dtype));
  }
  check_same_device(a.x, a.out, op, "x");
  check_same_device(a.bias, a.out, op, "bias");
  check_same_device(a.residual, a.out, op, "residual");
  check_same_device(a.gate, a.out, op, "gate");
  check_no_alias(a.out, a.gate, op, "gate");
  check_no_alias(a.out, a.x, op, "x");
  if (!a.packed) check_no_alias(a.out, a.weight, op, "weight");
  check_no_alias(a.out, a.bias, op, "bias");
  if (!a.residual.empty() && !same_view(a.out, a.residual))
    TESSERA_CHECK(!overlaps(a.out, a.residual), kAlias,
                  "linear: out overlaps residual without being the same view; pass the identical "
                  "view for an in-place residual add, or a separate buffer");
}

void validate_matmul(const MatmulArgs& a) {
  const char* op = "matmul";
  check_matrix(a.a, op, "a");
  check_matrix(a.b, op, "b");
  check_matrix(a.c, op, "c");
  for (const TensorView* t : {&a.a, &a.b, &a.c})
    TESSERA_CHECK(t->dtype == DType::kF32, kDtype,
                  std::string("matmul: a, b and c must be float32, got ") + dtype_name(t->dtype));
  const int64_t M = a.trans_a ? a.a.shape[1] : a.a.shape[0];
  const int64_t K = a.trans_a ? a.a.shape[0] : a.a.shape[1];
  const int64_t KB = a.trans_b ? a.b.shape[1] : a.b.shape[0];
  const int64_t N = a.trans_b ? a.b.shape[0] : a.b.shape[1];
  TESSERA_CHECK(K == KB, kShape,
                "matmul: op(a) is [" + std::to_string(M) + ", " + std::to_string(K) + "] but op(b) is [" +
                    std::to_string(KB) + ", " + std::to_string(N) + "]; inner dimensions must match (check trans_a/trans_b)");
  TESSERA_CHECK(a.c.shape[0] == M && a.c.shape[1] == N, kShape,
                "matmul: c must be [" + std::to_string(M) + ", " + std::to_string(N) + "], got " + shape_str(a.c));
  check_same_device(a.a, a.c, op, "a");
  check_same_device(a.b, a.c, op, "b");
  check_no_alias(a.c, a.a, op, "a");
  check_no_alias(a.c, a.b, op, "b");
}

}  // namespace tessera
