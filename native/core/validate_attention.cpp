// Argument checks for attention, rope_apply and kv_append. Shared by the CPU
// and CUDA backends, so a call is accepted or refused identically on both.
// Kernels may assume everything checked here: rank-4 q/k/v/out with a
// contiguous last dimension (stride 1), 1 <= D <= kMaxHeadDim, consistent
// shapes, and masks that fit.
#include <cmath>
#include <string>

#include "core/validate.h"

namespace tessera {
namespace {

// Head dimensions above this are refused: the CPU kernels keep a q row, an
// output row and a packed key tile of this width per thread in L1/L2, and the
// CUDA kernels size shared memory for it.
constexpr int64_t kMaxHeadDim = 256;

std::string desc(const char* name, const TensorView& t) {
  return std::string(name) + " " + shape_str(t) + " " + dtype_name(t.dtype);
}

bool is_float(DType t) { return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16; }

void check_float_qkv(const char* name, const TensorView& t) {
  TESSERA_CHECK(!t.empty(), kInvalidArgument, std::string(name) + " is missing");
  TESSERA_CHECK(is_float(t.dtype), kDtype,
                std::string(name) + " must be float32, bfloat16 or float16, got " + dtype_name(t.dtype));
  TESSERA_CHECK(t.rank == 4, kShape, desc(name, t) + ": expected rank 4");
  for (int i = 0; i < 4; ++i)
    TESSERA_CHECK(t.shape[i] >= 0, kShape, desc(name, t) + ": negative dimension");
  TESSERA_CHECK(t.shape[3] <= 1 || t.strides[3] == 1, kShape,
                desc(name, t) + ": the last (head) dimension must be contiguous (stride 1)");
}

// (B, H, L, D) of a q/k/v-like tensor in the given layout.
struct Dims {
  int64_t b, h, l, d;
};
Dims dims_of(const TensorView& t, QkvLayout layout) {
  if (layout == QkvLayout::kBHLD) return {t.shape[0], t.shape[1], t.shape[2], t.shape[3]};
  return {t.shape[0], t.shape[2], t.shape[1], t.shape[3]};
}

void check_layout(QkvLayout layout) {
  TESSERA_CHECK(layout == QkvLayout::kBHLD || layout == QkvLayout::kBLHD, kInvalidArgument,
                "layout must be kBHLD (0) or kBLHD (1), got " + std::to_string(static_cast<int>(layout)));
}

void check_same_device(const char* name, const TensorView& t, const TensorView& ref) {
  TESSERA_CHECK(t.device == ref.device, kDevice,
                std::string(name) + " is on a different device than q; move it to q's device");
}

void check_no_overlap(const char* out_name, const TensorView& out, const char* in_name, const TensorView& in) {
  TESSERA_CHECK(!overlaps(out, in), kAlias,
                std::string(out_name) + " overlaps " + in_name + "; pass a separate output buffer");
}

void check_attention_masks(const AttentionArgs& a, const Dims& qd, const Dims& kd) {
  const uint32_t known = kMaskCausal | kMaskBlockCausal | kMaskSegment | kMaskAdditive;
  TESSERA_CHECK((a.mask & ~known) == 0, kInvalidArgument,
                "unknown mask flags " + std::to_string(a.mask & ~known));
  TESSERA_CHECK(!((a.mask & kMaskCausal) && (a.mask & kMaskBlockCausal)), kInvalidArgument,
                "causal and block-causal masks are exclusive; block-causal with blocks of 1 is causal");
  if (a.mask & kMaskBlockCausal) {
    TESSERA_CHECK(a.block_lengths != nullptr && a.num_blocks > 0, kInvalidArgument,
                  "block-causal mask needs block_lengths and num_blocks > 0");
    int64_t sum = 0;
    for (int32_t i = 0; i < a.num_blocks; ++i) {
      TESSERA_CHECK(a.block_lengths[i] > 0, kInvalidArgument,
                    "block_lengths[" + std::to_string(i) + "] = " + std::to_string(a.block_lengths[i]) +
                        ": block lengths must be positive");
      sum += a.block_lengths[i];
    }
    TESSERA_CHECK(sum == kd.l, kShape,
                  "block lengths sum to " + std::to_string(sum) + " but k has Lk = " + std::to_string(kd.l));
  }
  if (a.mask & kMaskSegment) {
    const struct { const char* name; const TensorView& t; int64_t len; } segs[] = {
        {"q_segments", a.q_segments, qd.l}, {"k_segments", a.k_segments, kd.l}};
    for (const auto& s : segs) {
      TESSERA_CHECK(!s.t.empty(), kInvalidArgument, std::string("segment mask needs ") + s.name);
      TESSERA_CHECK(s.t.dtype == DType::kI32, kDtype,
                    std::string(s.name) + " must be int32, got " + dtype_name(s.t.dtype));
      TESSERA_CHECK(s.t.rank == 2 && s.t.shape[0] == qd.b && s.t.shape[1] == s.len, kShape,
                    desc(s.name, s.t) + ": expected [" + std::to_string(qd.b) + ", " + std::to_string(s.len) + "]");
      check_same_device(s.name, s.t, a.q);
    }
  }
  if (a.mask & kMaskAdditive) {
    const TensorView& m = a.additive;
    TESSERA_CHECK(!m.empty(), kInvalidArgument, "additive mask flag set but `additive` is missing");
    TESSERA_CHECK(m.dtype == DType::kF32, kDtype, "additive mask must be float32, got " + std::string(dtype_name(m.dtype)));
    const std::string want = "[Lq, Lk] = [" + std::to_string(qd.l) + ", " + std::to_string(kd.l) + "] or [B|1, Hq|1, " +
                             std::to_string(qd.l) + ", " + std::to_string(kd.l) + "]";
    bool ok = false;
    if (m.rank == 2) ok = m.shape[0] == qd.l && m.shape[1] == kd.l;
    if (m.rank == 4)
      ok = (m.shape[0] == 1 || m.shape[0] == qd.b) && (m.shape[1] == 1 || m.shape[1] == qd.h) &&
           m.shape[2] == qd.l && m.shape[3] == kd.l;
    TESSERA_CHECK(ok, kShape, desc("additive", m) + ": expected " + want);
    check_same_device("additive", m, a.q);
  }
}

}  // namespace

void validate_attention(const AttentionArgs& a) {
  check_layout(a.layout);
  check_float_qkv("q", a.q);
  check_float_qkv("k", a.k);
  check_float_qkv("v", a.v);
  check_float_qkv("out", a.out);
  check_same_device("k", a.k, a.q);
  check_same_device("v", a.v, a.q);
  check_same_device("out", a.out, a.q);
  const Dims qd = dims_of(a.q, a.layout), kd = dims_of(a.k, a.layout), vd = dims_of(a.v, a.layout);
  TESSERA_CHECK(a.v.dtype == a.k.dtype, kDtype,
                std::string("v must have k's dtype (") + dtype_name(a.k.dtype) + "), got " + dtype_name(a.v.dtype));
  TESSERA_CHECK(a.out.dtype == DType::kF32 || a.out.dtype == a.q.dtype, kDtype,
                std::string("out must be float32 or q's dtype (") + dtype_name(a.q.dtype) + "), got " +
                    dtype_name(a.out.dtype));
  TESSERA_CHECK(kd.b == qd.b, kShape, desc("q", a.q) + " and " + desc("k", a.k) + ": batch sizes differ");
  TESSERA_CHECK(kd.h >= 1 && qd.h % kd.h == 0, kShape,
                desc("q", a.q) + ", " + desc("k", a.k) + ": q heads must be a multiple of k/v heads (GQA)");
  TESSERA_CHECK(kd.d == qd.d, kShape, desc("q", a.q) + " and " + desc("k", a.k) + ": head dims differ");
  TESSERA_CHECK(qd.d >= 1 && qd.d <= kMaxHeadDim, kShape,
                "head dim " + std::to_string(qd.d) + " is outside the supported range 1.." + std::to_string(kMaxHeadDim));
  TESSERA_CHECK(vd.b == kd.b && vd.h == kd.h && vd.l == kd.l && vd.d == kd.d, kShape,
                desc("v", a.v) + " must have k's shape " + shape_str(a.k));
  for (int i = 0; i < 4; ++i)
    TESSERA_CHECK(a.out.shape[i] == a.q.shape[i], kShape,
                  desc("out", a.out) + " must have q's shape " + shape_str(a.q));
  TESSERA_CHECK(std::isfinite(a.scale), kInvalidArgument, "scale must be finite");
  check_attention_masks(a, qd, kd);
  if (!a.kv_lengths.empty()) {
    const TensorView& kl = a.kv_lengths;
    TESSERA_CHECK(kl.dtype == DType::kI32, kDtype, "kv_lengths must be int32, got " + std::string(dtype_name(kl.dtype)));
    TESSERA_CHECK(kl.rank == 1 && kl.shape[0] == qd.b, kShape,
                  desc("kv_lengths", kl) + ": expected [" + std::to_string(qd.b) + "]");
    TESSERA_CHECK(kl.device.kind == DeviceKind::kCPU, kDevice, "kv_lengths must be in host memory");
    for (int64_t b = 0; b < qd.b; ++b) {
      const int32_t n = kl.ptr<const int32_t>()[b * kl.strides[0]];
      TESSERA_CHECK(n >= 0 && n <= kd.l, kInvalidArgument,
                    "kv_lengths[" + std::to_string(b) + "] = " + std::to_string(n) + " is outside [0, Lk = " +
                        std::to_string(kd.l) + "]");
    }
  }
  if (a.head_multiplier) {
    for (int64_t h = 0; h < qd.h; ++h)
      TESSERA_CHECK(std::isfinite(a.head_multiplier[h]), kInvalidArgument,
                    "head_multiplier[" + std::to_string(h) + "] is not finite");
  }
  check_no_overlap("out", a.out, "q", a.q);
  check_no_overlap("out", a.out, "k", a.k);
  check_no_overlap("out", a.out, "v", a.v);
  if (!a.lse.empty()) {
    TESSERA_CHECK(a.lse.dtype == DType::kF32, kDtype, "lse must be float32, got " + std::string(dtype_name(a.lse.dtype)));
    TESSERA_CHECK(a.lse.rank == 3 && a.lse.shape[0] == qd.b && a.lse.shape[1] == qd.h && a.lse.shape[2] == qd.l,
                  kShape,
                  desc("lse", a.lse) + ": expected [B, Hq, Lq] = [" + std::to_string(qd.b) + ", " +
                      std::to_string(qd.h) + ", " + std::to_string(qd.l) + "]");
    check_same_device("lse", a.lse, a.q);
    check_no_overlap("lse", a.lse, "q", a.q);
    check_no_overlap("lse", a.lse, "k", a.k);
    check_no_overlap("lse", a.lse, "v", a.v);
    check_no_overlap("lse", a.lse, "out", a.out);
  }
}

void validate_rope(const RopeArgs& a) {
  check_layout(a.layout);
  check_float_qkv("x", a.x);
  check_float_qkv("out", a.out);
  check_same_device("out", a.out, a.x);
  TESSERA_CHECK(a.out.dtype == a.x.dtype, kDtype, "out must have x's dtype " + std::string(dtype_name(a.x.dtype)));
  for (int i = 0; i < 4; ++i)
    TESSERA_CHECK(a.out.shape[i] == a.x.shape[i], kShape, desc("out", a.out) + " must have x's shape " + shape_str(a.x));
  bool same_view = a.out.data == a.x.data;
  for (int i = 0; i < 4 && same_view; ++i) same_view = a.out.strides[i] == a.x.strides[i];
  TESSERA_CHECK(same_view || !overlaps(a.out, a.x), kAlias,
                "out partially overlaps x; pass x itself (in place) or a separate buffer");
  const Dims xd = dims_of(a.x, a.layout);
  const int64_t R = a.rotary_dim == 0 ? xd.d : a.rotary_dim;
  TESSERA_CHECK(R >= 2 && R <= xd.d && R % 2 == 0, kInvalidArgument,
                "rotary_dim " + std::to_string(R) + " must be even and in [2, D = " + std::to_string(xd.d) + "]");
  for (const auto* t : {&a.cos, &a.sin}) {
    const char* name = t == &a.cos ? "cos" : "sin";
    TESSERA_CHECK(!t->empty(), kInvalidArgument, std::string(name) + " table is missing");
    TESSERA_CHECK(t->dtype == DType::kF32, kDtype, std::string(name) + " must be float32");
    TESSERA_CHECK(t->is_contiguous(), kShape, desc(name, *t) + ": the table must be contiguous");
    check_same_device(name, *t, a.x);
  }
  const TensorView& c = a.cos;
  const bool shared = c.rank == 2 && c.shape[1] == R / 2;
  const bool per_head = c.rank == 3 && c.shape[1] == xd.h && c.shape[2] == R / 2;
  TESSERA_CHECK(shared || per_head, kShape,
                desc("cos", c) + ": expected [P, R/2 = " + std::to_string(R / 2) + "] or [P, H = " +
                    std::to_string(xd.h) + ", R/2]");
  TESSERA_CHECK(a.sin.rank == c.rank && a.sin.shape[0] == c.shape[0] && a.sin.shape[1] == c.shape[1] &&
                    (c.rank == 2 || a.sin.shape[2] == c.shape[2]),
                kShape, desc("sin", a.sin) + " must have cos's shape " + shape_str(c));
  const int64_t P = c.shape[0];
  if (a.positions.empty()) {
    TESSERA_CHECK(xd.l <= P, kShape,
                  "without positions token l uses table row l, but the table has " + std::to_string(P) +
                      " rows for L = " + std::to_string(xd.l));
    return;
  }
  const TensorView& p = a.positions;
  TESSERA_CHECK(p.dtype == DType::kI32, kDtype, "positions must be int32, got " + std::string(dtype_name(p.dtype)));
  TESSERA_CHECK(p.is_contiguous() && ((p.rank == 1 && p.shape[0] == xd.l) ||
                                      (p.rank == 2 && p.shape[0] == xd.b && p.shape[1] == xd.l)),
                kShape, desc("positions", p) + ": expected contiguous [L] or [B, L] with B = " +
                            std::to_string(xd.b) + ", L = " + std::to_string(xd.l));
  check_same_device("positions", p, a.x);
  // Values can be range-checked only where they are readable (host memory);
  // the CUDA kernel clamps device-resident positions to the table.
  if (p.device.kind == DeviceKind::kCPU) {
    const int32_t* pp = p.ptr<const int32_t>();
    for (int64_t i = 0; i < p.numel(); ++i)
      TESSERA_CHECK(pp[i] >= 0 && pp[i] < P, kInvalidArgument,
                    "positions[" + std::to_string(i) + "] = " + std::to_string(pp[i]) + " is outside the table [0, " +
                        std::to_string(P) + ")");
  }
}

void validate_kv_append(const KvAppendArgs& a) {
  check_layout(a.layout);
  check_float_qkv("cache_k", a.cache_k);
  check_float_qkv("cache_v", a.cache_v);
  check_float_qkv("k_new", a.k_new);
  check_float_qkv("v_new", a.v_new);
  for (const auto& [name, t] : {std::pair<const char*, const TensorView&>{"cache_v", a.cache_v},
                                {"k_new", a.k_new}, {"v_new", a.v_new}})
    check_same_device(name, t, a.cache_k);
  TESSERA_CHECK(a.cache_v.dtype == a.cache_k.dtype, kDtype, "cache_v must have cache_k's dtype");
  for (int i = 0; i < 4; ++i) {
    TESSERA_CHECK(a.cache_v.shape[i] == a.cache_k.shape[i], kShape,
                  desc("cache_v", a.cache_v) + " must have cache_k's shape " + shape_str(a.cache_k));
    TESSERA_CHECK(a.v_new.shape[i] == a.k_new.shape[i], kShape,
                  desc("v_new", a.v_new) + " must have k_new's shape " + shape_str(a.k_new));
  }
  const Dims cd = dims_of(a.cache_k, QkvLayout::kBHLD), nd = dims_of(a.k_new, a.layout);
  TESSERA_CHECK(nd.b == cd.b && nd.h == cd.h && nd.d == cd.d, kShape,
                desc("k_new", a.k_new) + " does not fit cache " + shape_str(a.cache_k) +
                    " (cache is [B, Hkv, Lmax, D]; new tokens are laid out per `layout`)");
  for (const auto* in : {&a.k_new, &a.v_new}) {
    check_no_overlap("cache_k", a.cache_k, "new keys/values", *in);
    check_no_overlap("cache_v", a.cache_v, "new keys/values", *in);
  }
  check_no_overlap("cache_v", a.cache_v, "cache_k", a.cache_k);
  TESSERA_CHECK(a.lengths != nullptr, kInvalidArgument, "lengths (host int32 [B]) is missing");
  for (int64_t b = 0; b < cd.b; ++b) {
    const int64_t n = a.counts ? a.counts[b] : nd.l;
    TESSERA_CHECK(n >= 0 && n <= nd.l, kInvalidArgument,
                  "counts[" + std::to_string(b) + "] = " + std::to_string(n) + " is outside [0, Lnew = " +
                      std::to_string(nd.l) + "]");
    TESSERA_CHECK(a.lengths[b] >= 0, kInvalidArgument, "lengths[" + std::to_string(b) + "] is negative");
    TESSERA_CHECK(a.lengths[b] + n <= cd.l, kShape,
                  "row " + std::to_string(b) + " holds " + std::to_string(a.lengths[b]) + " tokens; appending " +
                      std::to_string(n) + " exceeds the cache capacity Lmax = " + std::to_string(cd.l));
  }
}

}  // namespace tessera
