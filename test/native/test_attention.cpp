// Attention against the float64 reference: every mask kind, both layouts,
// head dims, dtypes, GQA/MQA, VAR l2-norm, kv lengths, decode, every ISA
// present, and argument validation. A case builds random inputs, runs
// tessera::attention on each ISA and measures ‖out − ref‖/‖ref‖ against
// ref::attention computed from the inputs as the kernel sees them (16-bit
// inputs are rounded first, so the error measures the kernel alone).

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "harness.h"
#include "reference.h"
#include "tessera/attention.h"
#include "tessera/cpu.h"
#include "tessera/dtype_convert.h"

namespace attn_test {

using namespace tessera;

// Stores logical [B,H,L,D] values in dtype dt, laid out per `layout`.
struct Buf {
  std::vector<uint8_t> bytes;
  TensorView view;
  Buf() = default;
  Buf(DType dt, int64_t B, int64_t H, int64_t L, int64_t D, QkvLayout layout) {
    bytes.assign(static_cast<size_t>(B * H * L * D) * dtype_size(dt) + 64, 0);
    view = layout == QkvLayout::kBHLD ? make_view(bytes.data(), dt, {B, H, L, D})
                                      : make_view(bytes.data(), dt, {B, L, H, D});
  }
  int64_t offset(int64_t b, int64_t h, int64_t l, bool bhld) const {
    return bhld ? b * view.strides[0] + h * view.strides[1] + l * view.strides[2]
                : b * view.strides[0] + l * view.strides[1] + h * view.strides[2];
  }
};

inline float round_to(DType dt, float x) {
  if (dt == DType::kBF16) return bf16_to_f32(f32_to_bf16(x));
  if (dt == DType::kF16) return f16_to_f32(f32_to_f16(x));
  return x;
}

inline void put(DType dt, void* base, int64_t idx, float x) {
  if (dt == DType::kF32) static_cast<float*>(base)[idx] = x;
  else if (dt == DType::kBF16) static_cast<uint16_t*>(base)[idx] = f32_to_bf16(x);
  else static_cast<uint16_t*>(base)[idx] = f32_to_f16(x);
}

inline float get(DType dt, const void* base, int64_t idx) {
  if (dt == DType::kF32) return static_cast<const float*>(base)[idx];
  if (dt == DType::kBF16) return bf16_to_f32(static_cast<const uint16_t*>(base)[idx]);
  return f16_to_f32(static_cast<const uint16_t*>(base)[idx]);
}

// Fills a buffer with uniform [-1, 1) values; returns them (rounded) in BHLD doubles.
inline std::vector<double> fill(Buf& buf, th::Rng& rng, int64_t B, int64_t H, int64_t L, int64_t D, bool bhld) {
  std::vector<double> ref(B * H * L * D);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t d = 0; d < D; ++d) {
          const float x = round_to(buf.view.dtype, rng.uniform());
          put(buf.view.dtype, buf.view.data, buf.offset(b, h, l, bhld) + d, x);
          ref[((b * H + h) * L + l) * D + d] = x;
        }
  return ref;
}

struct Case {
  int64_t B = 1, Hq = 2, Hkv = 2, Lq = 7, Lk = 7, D = 64;
  QkvLayout layout = QkvLayout::kBHLD;
  DType qt = DType::kF32, kvt = DType::kF32, ot = DType::kF32;
  uint32_t mask = kMaskNone;
  std::vector<int64_t> blocks;   // block-causal lengths
  int segments = 0;              // > 0: contiguous windows of ids (plus random ids if seg_random)
  bool seg_random = false;
  int add_rank = 0;              // 0 none, 2 [Lq,Lk], 4 [B,Hq,Lq,Lk]
  std::vector<int32_t> kv_len;   // empty = Lk
  bool l2norm = false, multipliers = false, lse = false;
  float scale = 0;               // 0 → 1/√D
};

inline std::string describe(const Case& c) {
  return "B" + std::to_string(c.B) + " Hq" + std::to_string(c.Hq) + " Hkv" + std::to_string(c.Hkv) + " Lq" +
         std::to_string(c.Lq) + " Lk" + std::to_string(c.Lk) + " D" + std::to_string(c.D) + " mask" +
         std::to_string(c.mask) + " layout" + std::to_string(static_cast<int>(c.layout)) + " q:" +
         dtype_name(c.qt) + " kv:" + dtype_name(c.kvt) + " out:" + dtype_name(c.ot);
}

// Runs the case on each ISA present; checks out (and lse) against the reference.
inline void check_case(const Case& c, double tol, uint64_t salt) {
  th::Rng rng(salt);
  const bool bhld = c.layout == QkvLayout::kBHLD;
  Buf q(c.qt, c.B, c.Hq, c.Lq, c.D, c.layout), k(c.kvt, c.B, c.Hkv, c.Lk, c.D, c.layout),
      v(c.kvt, c.B, c.Hkv, c.Lk, c.D, c.layout), out(c.ot, c.B, c.Hq, c.Lq, c.D, c.layout);
  const auto qr = fill(q, rng, c.B, c.Hq, c.Lq, c.D, bhld);
  const auto kr = fill(k, rng, c.B, c.Hkv, c.Lk, c.D, bhld);
  const auto vr = fill(v, rng, c.B, c.Hkv, c.Lk, c.D, bhld);
  AttentionArgs a;
  a.q = q.view, a.k = k.view, a.v = v.view, a.out = out.view, a.layout = c.layout;
  a.scale = c.scale != 0 ? c.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.D)));
  a.mask = c.mask;
  ref::Mask m;
  m.flags = c.mask;
  if (c.mask & kMaskBlockCausal) {
    m.blocks = c.blocks;
    a.block_lengths = c.blocks.data();
    a.num_blocks = static_cast<int32_t>(c.blocks.size());
  }
  std::vector<int32_t> qs, ks;
  if (c.mask & kMaskSegment) {
    // Contiguous windows (octree windows, packed sequences) so whole tiles can
    // be skipped, with the query ids aligned to the keys' bottom-right end.
    auto id = [&](int64_t pos, int64_t L) {
      return c.seg_random ? static_cast<int32_t>(rng.randint(0, c.segments - 1))
                          : static_cast<int32_t>(pos * c.segments / std::max<int64_t>(L, 1));
    };
    for (int64_t b = 0; b < c.B; ++b) {
      for (int64_t i = 0; i < c.Lq; ++i) qs.push_back(id(c.Lk - c.Lq + i, c.Lk));
      for (int64_t j = 0; j < c.Lk; ++j) ks.push_back(id(j, c.Lk));
    }
    m.q_seg = qs, m.k_seg = ks;
    a.q_segments = make_view(qs.data(), DType::kI32, {c.B, c.Lq});
    a.k_segments = make_view(ks.data(), DType::kI32, {c.B, c.Lk});
  }
  std::vector<float> add;
  if (c.mask & kMaskAdditive) {
    const int64_t ab = c.add_rank == 4 ? c.B : 1, ah = c.add_rank == 4 ? c.Hq : 1;
    add.resize(ab * ah * c.Lq * c.Lk);
    for (float& x : add) x = rng.uniform() < -0.8f ? -std::numeric_limits<float>::infinity() : rng.uniform(-2, 2);
    m.additive.assign(add.begin(), add.end());
    m.add_b = ab, m.add_h = ah;
    a.additive = c.add_rank == 4 ? make_view(add.data(), DType::kF32, {ab, ah, c.Lq, c.Lk})
                                 : make_view(add.data(), DType::kF32, {c.Lq, c.Lk});
  }
  std::vector<int32_t> kvl = c.kv_len;
  if (!kvl.empty()) {
    m.kv_len = kvl;
    a.kv_lengths = make_view(kvl.data(), DType::kI32, {c.B});
  }
  std::vector<float> mult;
  std::vector<double> multd;
  if (c.multipliers) {
    for (int64_t h = 0; h < c.Hq; ++h) mult.push_back(rng.uniform(1.f, 12.f));
    multd.assign(mult.begin(), mult.end());
    a.head_multiplier = mult.data();
  }
  a.l2norm_qk = c.l2norm;
  std::vector<float> lse(c.B * c.Hq * c.Lq);
  if (c.lse) a.lse = make_view(lse.data(), DType::kF32, {c.B, c.Hq, c.Lq});

  std::vector<double> ref_out(c.B * c.Hq * c.Lq * c.D), ref_lse(c.B * c.Hq * c.Lq);
  ref::attention(c.B, c.Hq, c.Hkv, c.Lq, c.Lk, c.D, qr.data(), kr.data(), vr.data(), a.scale, m, c.l2norm,
                 c.multipliers ? multd.data() : nullptr, ref_out.data(), ref_lse.data());
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    set_isa_override(isa);
    if (active_isa() != isa) continue;  // this CPU lacks it
    std::fill(out.bytes.begin(), out.bytes.end(), 0xff);  // NaN-filled: every element must be written
    attention(a);
    std::vector<float> got(ref_out.size());
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < c.Hq; ++h)
        for (int64_t i = 0; i < c.Lq; ++i)
          for (int64_t d = 0; d < c.D; ++d)
            got[((b * c.Hq + h) * c.Lq + i) * c.D + d] = get(c.ot, out.view.data, out.offset(b, h, i, bhld) + d);
    const double e = th::rel_error(got.data(), ref_out.data(), got.size());
    CHECK(e <= tol) << isa_name(isa) << " " << describe(c) << ": rel error " << e << " > " << tol;
    if (c.lse) {
      double worst = 0;
      for (size_t r = 0; r < lse.size(); ++r) {
        if (std::isinf(ref_lse[r])) {
          CHECK(std::isinf(lse[r]) && lse[r] < 0) << "row " << r << " sees no key: lse must be -inf";
          continue;
        }
        worst = std::max(worst, std::fabs(lse[r] - ref_lse[r]) / std::max(1.0, std::fabs(ref_lse[r])));
      }
      CHECK(worst <= tol) << isa_name(isa) << " " << describe(c) << ": lse error " << worst;
    }
  }
  clear_isa_override();
}

// fp32 kernels differ from the float64 reference by fp32 rounding of dot
// products and exp2 (~1e-7 relative each), accumulated over ≤ 1031 keys.
constexpr double kTolF32 = 1e-5;
// 16-bit inputs are already rounded in the reference; what remains is the
// kernel's own 16-bit rounding: P (bf16 path, 2^-9 relative per weight), the
// l2-normalised q/k re-rounded to bf16, and a 16-bit output (2^-9 relative).
constexpr double kTol16 = 1e-2;

}  // namespace attn_test

using namespace attn_test;

namespace {
// VAR's scales 1,2,3,4,5,6,8,10,13,16: blocks of s² tokens, L = 680.
std::vector<int64_t> var_blocks() {
  std::vector<int64_t> b;
  for (int s : {1, 2, 3, 4, 5, 6, 8, 10, 13, 16}) b.push_back(s * s);
  return b;
}
// Blocks summing to L (uneven, crossing key tiles).
std::vector<int64_t> blocks_for(int64_t L) {
  std::vector<int64_t> b;
  for (int64_t left = L, n = 1; left > 0; n += 5) b.push_back(std::min(n, left)), left -= b.back();
  return b;
}
}  // namespace

TEST(attention_every_mask_kind_both_layouts_and_head_dims) {
  uint64_t salt = 100;
  for (QkvLayout layout : {QkvLayout::kBHLD, QkvLayout::kBLHD})
    for (int64_t D : {64, 80, 96, 128, 100, 33})
      for (int kind = 0; kind < 8; ++kind) {
        Case c;
        c.B = 2, c.Hq = 2, c.Hkv = 2, c.Lq = c.Lk = 70, c.D = D, c.layout = layout;
        switch (kind) {
          case 0: break;
          case 1: c.mask = kMaskCausal; break;
          case 2: c.mask = kMaskBlockCausal, c.blocks = blocks_for(c.Lk); break;
          case 3: c.mask = kMaskSegment, c.segments = 3; break;
          case 4: c.mask = kMaskAdditive, c.add_rank = 4; break;
          case 5: c.mask = kMaskSegment | kMaskCausal, c.segments = 4, c.seg_random = true; break;
          case 6: c.mask = kMaskAdditive | kMaskCausal, c.add_rank = 2; break;
          case 7: c.mask = kMaskSegment | kMaskBlockCausal | kMaskAdditive, c.segments = 2, c.add_rank = 2,
                  c.blocks = blocks_for(c.Lk); break;
        }
        check_case(c, kTolF32, ++salt);
      }
}

TEST(attention_lengths_1_7_and_query_fewer_than_keys) {
  uint64_t salt = 200;
  for (int64_t Lq : {1, 2, 7})
    for (int64_t Lk : {1, 7, 130})
      for (uint32_t mask : {0u, 1u * kMaskCausal}) {
        if (Lq > Lk) continue;
        Case c;
        c.B = 2, c.Hq = 3, c.Hkv = 3, c.Lq = Lq, c.Lk = Lk, c.mask = mask, c.lse = true;
        check_case(c, kTolF32, ++salt);
      }
}

TEST(attention_bf16_f16_and_mixed_dtypes) {
  uint64_t salt = 300;
  for (uint32_t mask : {0u, 1u * kMaskCausal, 1u * kMaskSegment, kMaskAdditive | kMaskCausal})
    for (int64_t D : {64, 128, 100}) {
      Case c;
      c.B = 2, c.Hq = 2, c.Hkv = 2, c.Lq = c.Lk = 131, c.D = D, c.mask = mask, c.segments = 3, c.add_rank = 2;
      c.qt = c.kvt = DType::kBF16;
      c.ot = mask == kMaskNone ? DType::kF32 : DType::kBF16;
      check_case(c, kTol16, ++salt);
    }
  Case f16;
  f16.B = 1, f16.Hq = 2, f16.Hkv = 1, f16.Lq = f16.Lk = 90, f16.D = 80, f16.mask = kMaskCausal;
  f16.qt = f16.kvt = f16.ot = DType::kF16;
  check_case(f16, kTol16, ++salt);
  // fp32 queries over a bf16 KV cache: products are exact in fp32, so the fp32 tolerance holds.
  Case mixed;
  mixed.B = 2, mixed.Hq = 4, mixed.Hkv = 2, mixed.Lq = mixed.Lk = 100, mixed.mask = kMaskCausal;
  mixed.kvt = DType::kBF16;
  check_case(mixed, kTolF32, ++salt);
  mixed.Lq = 1, mixed.kv_len = {77, 100};
  check_case(mixed, kTolF32, ++salt);
}

// Decode rows (Lq 1 and 2) over a bf16 or f16 KV cache: with D a multiple
// of 16 the AVX-512 row path widens K and V in registers, otherwise (D 80 is
// one, D 100 and l2norm are not) it converts rows into scratch first. fp32
// queries keep the fp32 tolerance: the widened keys and values are exact.
TEST(attention_decode_rows_over_bf16_and_f16_kv) {
  uint64_t salt = 350;
  for (DType kvt : {DType::kBF16, DType::kF16})
    for (int64_t D : {64, 128, 80, 96, 100})
      for (int64_t Lq : {1, 2}) {
        Case c;
        c.B = 2, c.Hq = 4, c.Hkv = 2, c.Lq = Lq, c.Lk = 173, c.D = D, c.kvt = kvt, c.lse = true;
        c.mask = Lq == 2 ? 1u * kMaskCausal : 0u;
        c.kv_len = {173, 41};
        check_case(c, kTolF32, ++salt);
        c.qt = c.ot = kvt;
        check_case(c, kTol16, ++salt);
      }
  Case c;  // one pair, many keys: the keys are split across threads; masks on the in-register path
  c.B = 1, c.Hq = 2, c.Hkv = 1, c.Lq = 1, c.Lk = 1031, c.D = 64, c.kvt = DType::kBF16, c.kv_len = {1019};
  check_case(c, kTolF32, ++salt);
  c.mask = kMaskAdditive, c.add_rank = 4, c.kvt = DType::kF16;
  check_case(c, kTolF32, ++salt);
  c.mask = kMaskSegment, c.segments = 3, c.seg_random = true, c.kvt = DType::kBF16, c.layout = QkvLayout::kBLHD;
  check_case(c, kTolF32, ++salt);
  c.l2norm = true, c.multipliers = true, c.mask = kMaskNone;
  check_case(c, kTolF32, ++salt);
}

TEST(attention_gqa_and_mqa) {
  uint64_t salt = 400;
  for (int64_t Hkv : {2, 1})
    for (int64_t Lq : {1, 50}) {
      Case c;
      c.B = 2, c.Hq = 4, c.Hkv = Hkv, c.Lq = Lq, c.Lk = 50, c.mask = kMaskCausal;
      check_case(c, kTolF32, ++salt);
      c.qt = c.kvt = DType::kBF16;
      check_case(c, kTol16, ++salt);
    }
}

TEST(attention_var_l2norm_head_multipliers_block_causal_680) {
  Case c;
  c.B = 1, c.Hq = 2, c.Hkv = 2, c.Lq = c.Lk = 680, c.D = 64, c.mask = kMaskBlockCausal, c.blocks = var_blocks();
  c.l2norm = true, c.multipliers = true, c.scale = 1.f, c.lse = true;
  check_case(c, kTolF32, 500);
  c.qt = c.kvt = DType::kBF16;
  check_case(c, kTol16, 501);
}

TEST(attention_kv_lengths_differ_per_row) {
  uint64_t salt = 600;
  for (int64_t Lq : {1, 7})
    for (uint32_t mask : {0u, 1u * kMaskCausal, kMaskSegment | kMaskCausal}) {
      Case c;
      c.B = 3, c.Hq = 2, c.Hkv = 2, c.Lq = Lq, c.Lk = 200, c.mask = mask, c.segments = 2, c.lse = true;
      c.kv_len = {200, 3, 131};
      check_case(c, kTolF32, ++salt);
    }
  // Lq > kv length: the first rows sit at negative positions and see nothing.
  Case c;
  c.B = 2, c.Hq = 1, c.Hkv = 1, c.Lq = 9, c.Lk = 20, c.mask = kMaskCausal, c.kv_len = {4, 0}, c.lse = true;
  check_case(c, kTolF32, ++salt);
}

TEST(attention_long_1031_and_split_key_decode) {
  Case c;
  c.B = 1, c.Hq = 1, c.Hkv = 1, c.Lq = c.Lk = 1031, c.D = 64, c.mask = kMaskCausal, c.lse = true;
  check_case(c, kTolF32, 700);
  c.layout = QkvLayout::kBLHD, c.D = 100, c.qt = c.kvt = DType::kBF16;
  check_case(c, kTol16, 701);
  // One (b, kv head) pair and many keys: decode splits the keys across threads.
  Case d;
  d.B = 1, d.Hq = 2, d.Hkv = 1, d.Lq = 1, d.Lk = 1031, d.D = 96, d.kv_len = {1000}, d.lse = true;
  check_case(d, kTolF32, 702);
  d.mask = kMaskAdditive, d.add_rank = 4;
  check_case(d, kTolF32, 703);
}

TEST(attention_fully_masked_rows_give_zeros) {
  const int64_t L = 20, D = 16;
  th::Rng rng(800);
  std::vector<float> q(L * D), k(L * D), v(L * D), out(L * D, 7.f), add(L * L, 0.f), lse(L, 0.f);
  rng.fill(q.data(), q.size()), rng.fill(k.data(), k.size()), rng.fill(v.data(), v.size());
  for (int64_t j = 0; j < L; ++j) add[3 * L + j] = -std::numeric_limits<float>::infinity();  // row 3 hidden
  AttentionArgs a;
  a.q = make_view(q.data(), DType::kF32, {1, 1, L, D});
  a.k = make_view(k.data(), DType::kF32, {1, 1, L, D});
  a.v = make_view(v.data(), DType::kF32, {1, 1, L, D});
  a.out = make_view(out.data(), DType::kF32, {1, 1, L, D});
  a.lse = make_view(lse.data(), DType::kF32, {1, 1, L});
  a.additive = make_view(add.data(), DType::kF32, {L, L});
  a.mask = kMaskAdditive, a.scale = 0.25f;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    set_isa_override(isa);
    attention(a);
    for (int64_t d = 0; d < D; ++d) CHECK(out[3 * D + d] == 0.f) << isa_name(isa) << " d " << d;
    CHECK(std::isinf(lse[3]) && lse[3] < 0);
    CHECK(out[4 * D] != 0.f);
  }
  clear_isa_override();
}

// An additive mask given as a transposed view (key stride != 1) must act like
// the same values stored contiguously: tiled path (Lq = 70) and row path (Lq = 2).
TEST(attention_additive_mask_as_strided_view) {
  for (int64_t Lq : {70, 2}) {
    const int64_t Lk = 70, D = 64;
    th::Rng rng(900 + Lq);
    std::vector<float> q(2 * Lq * D), k(2 * Lk * D), v(2 * Lk * D), add(Lq * Lk), add_t(Lq * Lk);
    rng.fill(q.data(), q.size()), rng.fill(k.data(), k.size()), rng.fill(v.data(), v.size());
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j < Lk; ++j) {
        const float x = rng.uniform() < -0.8f ? -std::numeric_limits<float>::infinity() : rng.uniform(-2, 2);
        add[i * Lk + j] = x, add_t[j * Lq + i] = x;
      }
    std::vector<float> out_c(q.size()), out_s(q.size()), lse_c(2 * Lq), lse_s(2 * Lq);
    AttentionArgs a;
    a.q = make_view(q.data(), DType::kF32, {1, 2, Lq, D});
    a.k = make_view(k.data(), DType::kF32, {1, 2, Lk, D});
    a.v = make_view(v.data(), DType::kF32, {1, 2, Lk, D});
    a.mask = kMaskAdditive | kMaskCausal, a.scale = 0.125f;
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
      set_isa_override(isa);
      a.additive = make_view(add.data(), DType::kF32, {Lq, Lk});
      a.out = make_view(out_c.data(), DType::kF32, {1, 2, Lq, D});
      a.lse = make_view(lse_c.data(), DType::kF32, {1, 2, Lq});
      attention(a);
      a.additive = make_view(add_t.data(), DType::kF32, {Lk, Lq});  // then swap to [Lq, Lk], strides (1, Lq)
      std::swap(a.additive.shape[0], a.additive.shape[1]);
      std::swap(a.additive.strides[0], a.additive.strides[1]);
      a.out = make_view(out_s.data(), DType::kF32, {1, 2, Lq, D});
      a.lse = make_view(lse_s.data(), DType::kF32, {1, 2, Lq});
      attention(a);
      for (size_t e = 0; e < out_c.size(); ++e)
        CHECK(std::fabs(out_c[e] - out_s[e]) <= 1e-6f) << isa_name(isa) << " Lq " << Lq << " element " << e;
      for (size_t e = 0; e < lse_c.size(); ++e)
        CHECK(lse_c[e] == lse_s[e] || std::fabs(lse_c[e] - lse_s[e]) <= 1e-6f) << isa_name(isa) << " lse " << e;
    }
    clear_isa_override();
  }
}

TEST(attention_validation_refuses_bad_arguments) {
  std::vector<float> q(2 * 4 * 8 * 16, 0.5f), k(2 * 2 * 8 * 16, 0.5f), v(k), out(q);
  std::vector<uint16_t> half(q.size());
  auto base = [&] {
    AttentionArgs a;
    a.q = make_view(q.data(), DType::kF32, {2, 4, 8, 16});
    a.k = make_view(k.data(), DType::kF32, {2, 2, 8, 16});
    a.v = make_view(v.data(), DType::kF32, {2, 2, 8, 16});
    a.out = make_view(out.data(), DType::kF32, {2, 4, 8, 16});
    a.scale = 0.25f;
    return a;
  };
  attention(base());  // the base call is valid
  { auto a = base(); a.q.dtype = DType::kI32; CHECK_THROWS_CODE(attention(a), kDtype); }
  { auto a = base(); a.out = make_view(half.data(), DType::kBF16, {2, 4, 8, 16}); CHECK_THROWS_CODE(attention(a), kDtype); }
  { auto a = base(); a.v.dtype = DType::kBF16; CHECK_THROWS_CODE(attention(a), kDtype); }
  { auto a = base(); a.q.rank = 3; CHECK_THROWS_CODE(attention(a), kShape); }
  { auto a = base(); a.k = make_view(k.data(), DType::kF32, {2, 3, 8, 16}); a.v = a.k; CHECK_THROWS_CODE(attention(a), kShape); }
  { auto a = base(); a.k = make_view(k.data(), DType::kF32, {2, 2, 16, 8}); a.v = a.k; CHECK_THROWS_CODE(attention(a), kShape); }
  { auto a = base(); a.v = make_view(v.data(), DType::kF32, {2, 2, 4, 16}); CHECK_THROWS_CODE(attention(a), kShape); }
  { auto a = base(); a.out = make_view(out.data(), DType::kF32, {2, 4, 8, 8}); CHECK_THROWS_CODE(attention(a), kShape); }
  { auto a = base(); a.q.strides[3] = 2; CHECK_THROWS_CODE(attention(a), kShape); }
  {
    std::vector<float> big(1 * 1 * 2 * 300);
    auto a = base();
    a.q = make_view(big.data(), DType::kF32, {1, 1, 2, 300});
    a.k = a.v = a.q;
    a.out = make_view(q.data(), DType::kF32, {1, 1, 2, 300});
    CHECK_THROWS_CODE(attention(a), kShape);  // head dim above 256
  }
  { auto a = base(); a.layout = static_cast<QkvLayout>(5); CHECK_THROWS_CODE(attention(a), kInvalidArgument); }
  { auto a = base(); a.mask = kMaskCausal | kMaskBlockCausal; CHECK_THROWS_CODE(attention(a), kInvalidArgument); }
  { auto a = base(); a.mask = 64; CHECK_THROWS_CODE(attention(a), kInvalidArgument); }
  {
    int64_t bl[] = {3, 4};
    auto a = base();
    a.mask = kMaskBlockCausal, a.block_lengths = bl, a.num_blocks = 2;
    CHECK_THROWS_CODE(attention(a), kShape);  // sums to 7, Lk = 8
    bl[1] = 0;
    CHECK_THROWS_CODE(attention(a), kInvalidArgument);
    a.block_lengths = nullptr;
    CHECK_THROWS_CODE(attention(a), kInvalidArgument);
  }
  {
    std::vector<int32_t> seg(2 * 8);
    std::vector<float> segf(2 * 8);
    auto a = base();
    a.mask = kMaskSegment;
    a.q_segments = make_view(seg.data(), DType::kI32, {2, 8});
    CHECK_THROWS_CODE(attention(a), kInvalidArgument);  // k_segments missing
    a.k_segments = make_view(seg.data(), DType::kI32, {2, 7});
    CHECK_THROWS_CODE(attention(a), kShape);
    a.k_segments = make_view(segf.data(), DType::kF32, {2, 8});
    CHECK_THROWS_CODE(attention(a), kDtype);
  }
  {
    std::vector<float> add(8 * 8);
    auto a = base();
    a.mask = kMaskAdditive;
    CHECK_THROWS_CODE(attention(a), kInvalidArgument);
    a.additive = make_view(add.data(), DType::kF32, {8, 7});
    CHECK_THROWS_CODE(attention(a), kShape);
    a.additive = make_view(add.data(), DType::kF32, {1, 3, 8, 8});
    CHECK_THROWS_CODE(attention(a), kShape);  // 3 heads broadcast to 4
  }
  {
    std::vector<int32_t> kl = {8, 9};
    auto a = base();
    a.kv_lengths = make_view(kl.data(), DType::kI32, {2});
    CHECK_THROWS_CODE(attention(a), kInvalidArgument);
    kl[1] = -1;
    CHECK_THROWS_CODE(attention(a), kInvalidArgument);
    a.kv_lengths = make_view(kl.data(), DType::kI32, {3});
    CHECK_THROWS_CODE(attention(a), kShape);
    a.kv_lengths = make_view(kl.data(), DType::kI32, {2}, Device{DeviceKind::kCUDA, 0});
    CHECK_THROWS_CODE(attention(a), kDevice);
  }
  { auto a = base(); a.k.device = Device{DeviceKind::kCUDA, 0}; CHECK_THROWS_CODE(attention(a), kDevice); }
  { auto a = base(); a.out = make_view(q.data(), DType::kF32, {2, 4, 8, 16}); CHECK_THROWS_CODE(attention(a), kAlias); }
  { auto a = base(); a.out = make_view(v.data() + 8, DType::kF32, {2, 4, 8, 16}); CHECK_THROWS_CODE(attention(a), kAlias); }
  {
    auto a = base();
    std::vector<float> lse(2 * 4 * 8);
    a.lse = make_view(lse.data(), DType::kF32, {2, 4, 7});
    CHECK_THROWS_CODE(attention(a), kShape);
    a.lse = make_view(out.data(), DType::kF32, {2, 4, 8});
    CHECK_THROWS_CODE(attention(a), kAlias);
  }
  { auto a = base(); a.scale = NAN; CHECK_THROWS_CODE(attention(a), kInvalidArgument); }
  try {
    auto a = base();
    a.k = make_view(k.data(), DType::kF32, {2, 3, 8, 16});
    a.v = a.k;
    attention(a);
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("[2, 3, 8, 16]") != std::string::npos) << "message shows shapes: " << e.what();
  }
}
