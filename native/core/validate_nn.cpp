// Argument checks of the NN op family (conv, norms, resize, vq, sampling),
// shared by every backend. Kernels rely on what is checked here: ranks,
// shapes, dtypes, contiguity where stated in the headers, one device, and
// outputs that do not overlap inputs (except the documented in-place cases).
#include <cmath>
#include <string>

#include "core/packed_weight.h"
#include "cpu/nn/nn_ops.h"

namespace tessera {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

void present(const TensorView& t, const char* op, const char* name) {
  TESSERA_CHECK(!t.empty(), kInvalidArgument, std::string(op) + ": " + name + " is missing (null data)");
}

void f32(const TensorView& t, const char* op, const char* name) {
  TESSERA_CHECK(t.dtype == DType::kF32, kDtype,
                std::string(op) + ": " + name + " must be float32, got " + dtype_name(t.dtype));
}

void rank(const TensorView& t, int lo, int hi, const char* op, const char* name) {
  TESSERA_CHECK(t.rank >= lo && t.rank <= hi, kShape,
                std::string(op) + ": " + name + " must have rank " + (lo == hi ? S(lo) : S(lo) + ".." + S(hi)) +
                    ", got shape " + shape_str(t));
  for (int i = 0; i < t.rank; ++i)
    TESSERA_CHECK(t.shape[i] >= 1, kShape,
                  std::string(op) + ": " + name + " must have non-zero dimensions, got " + shape_str(t));
}

void last_contiguous(const TensorView& t, const char* op, const char* name) {
  TESSERA_CHECK(t.shape[t.rank - 1] == 1 || t.strides[t.rank - 1] == 1, kShape,
                std::string(op) + ": " + name + " must be contiguous along its last dimension (stride 1); "
                "make it contiguous first");
}

void contiguous(const TensorView& t, const char* op, const char* name) {
  TESSERA_CHECK(t.is_contiguous(), kShape,
                std::string(op) + ": " + name + " " + shape_str(t) + " must be contiguous; make it contiguous first");
}

// A [n] float32 per-channel vector (weight, bias), when present.
void channel_vector(const TensorView& t, int64_t n, const char* op, const char* name) {
  if (t.empty()) return;
  f32(t, op, name);
  TESSERA_CHECK(t.rank == 1 && t.shape[0] == n && (n == 1 || t.strides[0] == 1), kShape,
                std::string(op) + ": " + name + " must be a contiguous [" + S(n) + "], got " + shape_str(t));
}

bool same_shape(const TensorView& a, const TensorView& b) {
  if (a.rank != b.rank) return false;
  for (int i = 0; i < a.rank; ++i)
    if (a.shape[i] != b.shape[i]) return false;
  return true;
}

bool same_view(const TensorView& a, const TensorView& b) {
  if (a.data != b.data || a.dtype != b.dtype || !same_shape(a, b)) return false;
  for (int i = 0; i < a.rank; ++i)
    if (a.shape[i] != 1 && a.strides[i] != b.strides[i]) return false;
  return true;
}

void same_device(const TensorView& t, const TensorView& ref, const char* op, const char* name) {
  if (t.empty()) return;
  TESSERA_CHECK(t.device == ref.device, kDevice,
                std::string(op) + ": " + name + " is on a different device than the output; move all tensors to one device");
}

void no_alias(const TensorView& out, const TensorView& in, const char* op, const char* name) {
  TESSERA_CHECK(!overlaps(out, in), kAlias,
                std::string(op) + ": the output overlaps " + name + "; write the result to a separate buffer");
}

// In place is allowed only as the identical view.
void in_place_or_apart(const TensorView& out, const TensorView& in, const char* op, const char* name) {
  if (same_view(out, in)) return;
  TESSERA_CHECK(!overlaps(out, in), kAlias,
                std::string(op) + ": out overlaps " + name + " without being the same view; pass " + name +
                    " itself for an in-place call, or a separate buffer");
}

// Rows of a [N, C] or [B, L, C] view (everything but the last dimension).
int64_t rows_of(const TensorView& t) { return t.numel() / t.shape[t.rank - 1]; }

}  // namespace

void validate_conv2d(const Conv2dArgs& a) {
  const char* op = "conv2d";
  present(a.x, op, "x");
  present(a.out, op, "out");
  TESSERA_CHECK(a.packed || !a.weight.empty(), kInvalidArgument, "conv2d: weight is missing (null data)");
  rank(a.x, 4, 4, op, "x [N, Ci, H, W]");
  rank(a.weight, 4, 4, op, "weight [Co, Ci/groups, kh, kw]");
  rank(a.out, 4, 4, op, "out [N, Co, Ho, Wo]");
  f32(a.x, op, "x");
  f32(a.out, op, "out");
  TESSERA_CHECK(a.groups >= 1, kInvalidArgument, "conv2d: groups must be >= 1, got " + S(a.groups));
  TESSERA_CHECK(a.stride_h >= 1 && a.stride_w >= 1, kInvalidArgument,
                "conv2d: strides must be >= 1, got " + S(a.stride_h) + ", " + S(a.stride_w));
  TESSERA_CHECK(a.dilation_h >= 1 && a.dilation_w >= 1, kInvalidArgument,
                "conv2d: dilations must be >= 1, got " + S(a.dilation_h) + ", " + S(a.dilation_w));
  TESSERA_CHECK(a.pad_top >= 0 && a.pad_bottom >= 0 && a.pad_left >= 0 && a.pad_right >= 0, kInvalidArgument,
                "conv2d: padding must be >= 0 (top, bottom, left, right)");
  TESSERA_CHECK(a.upsample == 1 || a.upsample == 2, kInvalidArgument,
                "conv2d: upsample must be 1 or 2, got " + S(a.upsample));
  const int64_t N = a.x.shape[0], Ci = a.x.shape[1], H = a.x.shape[2] * a.upsample, W = a.x.shape[3] * a.upsample;
  const int64_t Co = a.weight.shape[0], Cig = a.weight.shape[1], kh = a.weight.shape[2], kw = a.weight.shape[3];
  TESSERA_CHECK(Ci % a.groups == 0 && Co % a.groups == 0, kShape,
                "conv2d: input channels " + S(Ci) + " and output channels " + S(Co) + " must be multiples of groups " +
                    S(a.groups));
  TESSERA_CHECK(Cig == Ci / a.groups, kShape,
                "conv2d: weight " + shape_str(a.weight) + " must have Ci/groups = " + S(Ci / a.groups) +
                    " input channels for x " + shape_str(a.x) + " and groups " + S(a.groups));
  const int64_t eh = H + a.pad_top + a.pad_bottom - a.dilation_h * (kh - 1) - 1;
  const int64_t ew = W + a.pad_left + a.pad_right - a.dilation_w * (kw - 1) - 1;
  TESSERA_CHECK(eh >= 0 && ew >= 0, kShape,
                "conv2d: the kernel " + S(kh) + "x" + S(kw) + " (with dilation) is larger than the padded input " +
                    S(H + a.pad_top + a.pad_bottom) + "x" + S(W + a.pad_left + a.pad_right));
  const int64_t Ho = eh / a.stride_h + 1, Wo = ew / a.stride_w + 1;
  TESSERA_CHECK(a.out.shape[0] == N && a.out.shape[1] == Co && a.out.shape[2] == Ho && a.out.shape[3] == Wo, kShape,
                "conv2d: out must be [" + S(N) + ", " + S(Co) + ", " + S(Ho) + ", " + S(Wo) + "] for x " +
                    shape_str(a.x) + " and weight " + shape_str(a.weight) + ", got " + shape_str(a.out));
  if (a.packed) {
    TESSERA_CHECK(a.groups == 1, kInvalidArgument, "conv2d: a packed weight needs groups == 1");
  } else {
    contiguous(a.weight, op, "weight");
    const bool f = a.weight.dtype == DType::kF32;
    const bool half = a.weight.dtype == DType::kBF16 || a.weight.dtype == DType::kF16;
    TESSERA_CHECK(f || (half && a.groups == 1), kDtype,
                  std::string("conv2d: weight must be float32 (bfloat16/float16 only with groups == 1), got ") +
                      dtype_name(a.weight.dtype));
    same_device(a.weight, a.out, op, "weight");
    no_alias(a.out, a.weight, op, "weight");
  }
  channel_vector(a.bias, Co, op, "bias");
  same_device(a.x, a.out, op, "x");
  same_device(a.bias, a.out, op, "bias");
  no_alias(a.out, a.x, op, "x");
  no_alias(a.out, a.bias, op, "bias");
  if (a.packed) {
    TESSERA_CHECK(a.packed->N == Co && a.packed->K == Cig * kh * kw, kShape,
                  "conv2d: the packed weight is [" + S(a.packed->N) + ", " + S(a.packed->K) + "] but weight " +
                      shape_str(a.weight) + " needs [" + S(Co) + ", " + S(Cig * kh * kw) +
                      "]; pack the weight viewed as [Co, Ci·kh·kw]");
    TESSERA_CHECK(a.packed->device == a.out.device, kDevice,
                  "conv2d: the packed weight is on a different device than out; pack it on the same device");
  }
  if (a.upsample == 2) {
    const bool f = a.packed ? a.packed->compute == DType::kF32 : a.weight.dtype == DType::kF32;
    const int64_t* os = a.out.strides;
    TESSERA_CHECK(f && a.groups == 1 && kh == 3 && kw == 3 && a.stride_h == 1 && a.stride_w == 1 &&
                      a.dilation_h == 1 && a.dilation_w == 1 && a.pad_top == 1 && a.pad_bottom == 1 &&
                      a.pad_left == 1 && a.pad_right == 1,
                  kInvalidArgument,
                  "conv2d: upsample = 2 needs a float32 3x3 conv with stride 1, padding 1, dilation 1 and groups 1");
    TESSERA_CHECK((a.x.shape[3] == 1 || a.x.strides[3] == 1) && (Wo == 1 || os[3] == 1) &&
                      (Ho == 1 || os[2] == Wo) && os[1] >= Ho * Wo,
                  kInvalidArgument,
                  "conv2d: upsample = 2 needs x with unit stride along W and out planes stored without gaps");
  }
}

void validate_group_norm(const GroupNormArgs& a) {
  const char* op = "group_norm";
  present(a.x, op, "x");
  present(a.out, op, "out");
  rank(a.x, 2, kMaxRank, op, "x [N, C, ...]");
  f32(a.x, op, "x");
  f32(a.out, op, "out");
  TESSERA_CHECK(same_shape(a.x, a.out), kShape,
                "group_norm: out " + shape_str(a.out) + " must have the shape of x " + shape_str(a.x));
  const int64_t C = a.x.shape[1];
  TESSERA_CHECK(a.num_groups >= 1 && C % a.num_groups == 0, kInvalidArgument,
                "group_norm: num_groups " + S(a.num_groups) + " must be >= 1 and divide the channels " + S(C));
  TESSERA_CHECK(std::isfinite(a.eps) && a.eps >= 0, kInvalidArgument, "group_norm: eps must be finite and >= 0");
  for (const TensorView* t : {&a.x, &a.out}) {  // the dims after C flatten to one contiguous run
    int64_t s = 1;
    for (int i = t->rank - 1; i >= 2; --i) {
      TESSERA_CHECK(t->shape[i] == 1 || t->strides[i] == s, kShape,
                    "group_norm: the dimensions after C of " + std::string(t == &a.x ? "x" : "out") + " " +
                        shape_str(*t) + " must be contiguous; make it contiguous first");
      s *= t->shape[i];
    }
  }
  channel_vector(a.weight, C, op, "weight");
  channel_vector(a.bias, C, op, "bias");
  for (const TensorView* t : {&a.x, &a.weight, &a.bias}) same_device(*t, a.out, op, "an input");
  in_place_or_apart(a.out, a.x, op, "x");
  no_alias(a.out, a.weight, op, "weight");
  no_alias(a.out, a.bias, op, "bias");
}

namespace {
// Shared by layer_norm and rms_norm: x [..., C] with a contiguous last dim.
void check_last_dim_norm(const TensorView& x, const TensorView& out, const TensorView& weight, float eps,
                         const char* op) {
  present(x, op, "x");
  present(out, op, "out");
  rank(x, 1, kMaxRank, op, "x");
  f32(x, op, "x");
  f32(out, op, "out");
  TESSERA_CHECK(same_shape(x, out), kShape,
                std::string(op) + ": out " + shape_str(out) + " must have the shape of x " + shape_str(x));
  last_contiguous(x, op, "x");
  last_contiguous(out, op, "out");
  TESSERA_CHECK(std::isfinite(eps) && eps >= 0, kInvalidArgument, std::string(op) + ": eps must be finite and >= 0");
  channel_vector(weight, x.shape[x.rank - 1], op, "weight");
  same_device(x, out, op, "x");
  same_device(weight, out, op, "weight");
  in_place_or_apart(out, x, op, "x");
  no_alias(out, weight, op, "weight");
}
}  // namespace

void validate_layer_norm(const LayerNormArgs& a) {
  const char* op = "layer_norm";
  check_last_dim_norm(a.x, a.out, a.weight, a.eps, op);
  const int64_t C = a.x.shape[a.x.rank - 1];
  channel_vector(a.bias, C, op, "bias");
  same_device(a.bias, a.out, op, "bias");
  no_alias(a.out, a.bias, op, "bias");
  for (const TensorView* t : {&a.scale, &a.shift}) {
    if (t->empty()) continue;
    const char* name = t == &a.scale ? "scale" : "shift";
    TESSERA_CHECK(a.x.rank >= 2, kShape, "layer_norm: AdaLN scale/shift need x of rank >= 2 ([B, ..., C])");
    f32(*t, op, name);
    TESSERA_CHECK(t->rank == 2 && t->shape[0] == a.x.shape[0] && t->shape[1] == C, kShape,
                  std::string("layer_norm: ") + name + " must be [" + S(a.x.shape[0]) + ", " + S(C) +
                      "] (one row per x.shape[0]), got " + shape_str(*t));
    last_contiguous(*t, op, name);
    same_device(*t, a.out, op, name);
    no_alias(a.out, *t, op, name);
  }
}

void validate_rms_norm(const RmsNormArgs& a) { check_last_dim_norm(a.x, a.out, a.weight, a.eps, "rms_norm"); }

void validate_resize(const ResizeArgs& a) {
  const char* op = "resize";
  present(a.x, op, "x");
  present(a.out, op, "out");
  rank(a.x, 4, 4, op, "x [N, C, H, W]");
  rank(a.out, 4, 4, op, "out [N, C, Ho, Wo]");
  f32(a.x, op, "x");
  f32(a.out, op, "out");
  const int32_t m = static_cast<int32_t>(a.mode);
  TESSERA_CHECK(m >= 0 && m <= 3, kInvalidArgument,
                "resize: mode must be 0 (nearest), 1 (area), 2 (bicubic) or 3 (bilinear), got " + S(m));
  TESSERA_CHECK(a.out.shape[0] == a.x.shape[0] && a.out.shape[1] == a.x.shape[1], kShape,
                "resize: out " + shape_str(a.out) + " must keep N and C of x " + shape_str(a.x));
  same_device(a.x, a.out, op, "x");
  no_alias(a.out, a.x, op, "x");
}

void validate_vq_nearest(const VqNearestArgs& a) {
  const char* op = "vq_nearest";
  present(a.z, op, "z");
  present(a.codebook, op, "codebook");
  present(a.indices, op, "indices");
  rank(a.z, 2, 3, op, "z [N, C] or [B, L, C]");
  rank(a.codebook, 2, 2, op, "codebook [V, C]");
  f32(a.z, op, "z");
  f32(a.codebook, op, "codebook");
  last_contiguous(a.codebook, op, "codebook");
  TESSERA_CHECK(a.codebook.shape[0] == 1 || a.codebook.strides[0] >= a.codebook.shape[1], kShape,
                "vq_nearest: codebook rows overlap (row stride smaller than C)");
  TESSERA_CHECK(a.codebook.shape[1] == a.z.shape[a.z.rank - 1], kShape,
                "vq_nearest: codebook " + shape_str(a.codebook) + " must have C = " + S(a.z.shape[a.z.rank - 1]) +
                    " columns like z " + shape_str(a.z));
  TESSERA_CHECK(a.codebook.shape[0] <= INT32_MAX, kShape, "vq_nearest: the codebook has more rows than int32 indexes");
  TESSERA_CHECK(a.indices.dtype == DType::kI32, kDtype,
                std::string("vq_nearest: indices must be int32, got ") + dtype_name(a.indices.dtype));
  contiguous(a.indices, op, "indices");
  TESSERA_CHECK(a.indices.numel() == rows_of(a.z), kShape,
                "vq_nearest: indices " + shape_str(a.indices) + " must hold one entry per row of z (" +
                    S(rows_of(a.z)) + ")");
  same_device(a.z, a.indices, op, "z");
  same_device(a.codebook, a.indices, op, "codebook");
  no_alias(a.indices, a.z, op, "z");
  no_alias(a.indices, a.codebook, op, "codebook");
}

void validate_embedding(const EmbeddingArgs& a) {
  const char* op = "embedding";
  present(a.table, op, "table");
  present(a.indices, op, "indices");
  present(a.out, op, "out");
  rank(a.table, 2, 2, op, "table [V, C]");
  rank(a.out, 2, 3, op, "out [N, C] or [B, L, C]");
  f32(a.table, op, "table");
  f32(a.out, op, "out");
  last_contiguous(a.table, op, "table");
  TESSERA_CHECK(a.indices.dtype == DType::kI32, kDtype,
                std::string("embedding: indices must be int32, got ") + dtype_name(a.indices.dtype));
  contiguous(a.indices, op, "indices");
  TESSERA_CHECK(a.out.shape[a.out.rank - 1] == a.table.shape[1], kShape,
                "embedding: out " + shape_str(a.out) + " must end in C = " + S(a.table.shape[1]) + " like table " +
                    shape_str(a.table));
  TESSERA_CHECK(a.indices.numel() == rows_of(a.out), kShape,
                "embedding: indices " + shape_str(a.indices) + " must hold one entry per row of out (" +
                    S(rows_of(a.out)) + ")");
  same_device(a.table, a.out, op, "table");
  same_device(a.indices, a.out, op, "indices");
  no_alias(a.out, a.table, op, "table");
  no_alias(a.out, a.indices, op, "indices");
}

namespace {
void check_logits(const TensorView& t, const char* op, const char* name) {
  present(t, op, name);
  rank(t, 2, 2, op, name);
  f32(t, op, name);
  last_contiguous(t, op, name);
}
}  // namespace

void validate_sample(const SampleArgs& a) {
  const char* op = "sample";
  check_logits(a.logits, op, "logits [B, V]");
  const int64_t B = a.logits.shape[0], V = a.logits.shape[1];
  TESSERA_CHECK(V <= INT32_MAX, kShape, "sample: the vocabulary is larger than int32 tokens can index");
  if (!a.uncond.empty()) {
    check_logits(a.uncond, op, "uncond [B, V]");
    TESSERA_CHECK(same_shape(a.uncond, a.logits), kShape,
                  "sample: uncond " + shape_str(a.uncond) + " must have the shape of logits " + shape_str(a.logits));
    TESSERA_CHECK(std::isfinite(a.cfg_scale), kInvalidArgument, "sample: cfg_scale must be finite");
  }
  TESSERA_CHECK(std::isfinite(a.temperature) && a.temperature >= 0, kInvalidArgument,
                "sample: temperature must be finite and >= 0 (it is clamped to at least 1e-5)");
  TESSERA_CHECK(!std::isnan(a.top_p), kInvalidArgument, "sample: top_p is NaN");
  TESSERA_CHECK(a.row_offset >= 0, kInvalidArgument, "sample: row_offset must be >= 0");
  present(a.tokens, op, "tokens");
  TESSERA_CHECK(a.tokens.dtype == DType::kI32, kDtype,
                std::string("sample: tokens must be int32, got ") + dtype_name(a.tokens.dtype));
  contiguous(a.tokens, op, "tokens");
  TESSERA_CHECK(a.tokens.numel() == B, kShape,
                "sample: tokens " + shape_str(a.tokens) + " must hold one entry per logits row (" + S(B) + ")");
  same_device(a.logits, a.tokens, op, "logits");
  same_device(a.uncond, a.tokens, op, "uncond");
  for (const TensorView* in : {&a.logits, &a.uncond}) no_alias(a.tokens, *in, op, "the logits");
  if (!a.probs.empty()) {
    rank(a.probs, 2, 2, op, "probs [B, V]");
    f32(a.probs, op, "probs");
    last_contiguous(a.probs, op, "probs");
    TESSERA_CHECK(same_shape(a.probs, a.logits), kShape,
                  "sample: probs " + shape_str(a.probs) + " must have the shape of logits " + shape_str(a.logits));
    same_device(a.probs, a.tokens, op, "probs");
    for (const TensorView* in : {&a.logits, &a.uncond, &a.tokens}) no_alias(a.probs, *in, op, "an input or tokens");
  }
}

void validate_cfg_combine(const CfgArgs& a) {
  const char* op = "cfg_combine";
  check_logits(a.cond, op, "cond [B, V]");
  check_logits(a.uncond, op, "uncond [B, V]");
  check_logits(a.out, op, "out [B, V]");
  TESSERA_CHECK(same_shape(a.cond, a.uncond) && same_shape(a.cond, a.out), kShape,
                "cfg_combine: cond " + shape_str(a.cond) + ", uncond " + shape_str(a.uncond) + " and out " +
                    shape_str(a.out) + " must have one shape");
  TESSERA_CHECK(std::isfinite(a.scale), kInvalidArgument, "cfg_combine: scale must be finite");
  TESSERA_CHECK(a.out.shape[0] == 1 || a.out.strides[0] >= a.out.shape[1], kShape,
                "cfg_combine: out rows overlap (row stride smaller than V)");
  same_device(a.cond, a.out, op, "cond");
  same_device(a.uncond, a.out, op, "uncond");
  in_place_or_apart(a.out, a.cond, op, "cond");
  in_place_or_apart(a.out, a.uncond, op, "uncond");
}

}  // namespace tessera
