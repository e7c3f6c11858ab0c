// Attention on CUDA against ref::attention (float64 on the rounded inputs):
// ‖out−ref‖/‖ref‖ ≤ 1e-5 when everything is f32 (SIMT kernel, f32
// arithmetic), ≤ 1e-2 with any bf16/f16 (tensor-core inputs and P rounded).
// Every case also checks that rows with no visible key are exact zeros.
#include "attention_case.h"

using namespace tessera;
using ct::AttnCase;

namespace {

constexpr uint32_t kMasks[] = {kMaskNone,
                               kMaskCausal,
                               kMaskBlockCausal,
                               kMaskSegment,
                               kMaskAdditive,
                               kMaskCausal | kMaskSegment | kMaskAdditive,
                               kMaskBlockCausal | kMaskAdditive};

// Every mask × both layouts × lengths 1, 7, 70 for one dtype and head dims.
void mask_sweep(DType dt, std::initializer_list<int> dims, uint64_t salt) {
  for (int D : dims)
    for (uint32_t mask : kMasks)
      for (int L : {1, 7, 70})
        for (QkvLayout lay : {QkvLayout::kBHLD, QkvLayout::kBLHD}) {
          AttnCase c;
          c.B = 2;
          c.Hq = 2;
          c.Hkv = 1;
          c.Lq = c.Lk = L;
          c.D = D;
          c.qdt = c.kvdt = c.odt = dt;
          c.layout = lay;
          c.mask = mask;
          c.add_b = (salt & 2) ? 2 : 1;
          c.add_h = (salt & 4) ? 2 : 1;  // [1, 1, Lq, Lk] also goes in as a rank-2 [Lq, Lk] view
          ct::run_attention_case(c, ++salt);
        }
}

}  // namespace

TEST(cuda_attention_f32_all_masks) { mask_sweep(DType::kF32, {64, 80, 33}, 100); }
TEST(cuda_attention_bf16_all_masks) { mask_sweep(DType::kBF16, {64, 80, 96, 128, 40}, 2000); }
TEST(cuda_attention_f16_all_masks) { mask_sweep(DType::kF16, {64, 80, 96, 128, 33}, 4000); }

TEST(cuda_attention_long_sequences) {
  struct L { int Lq, Lk, D; DType dt; uint32_t mask; QkvLayout lay; std::vector<int64_t> blocks; };
  const std::vector<int64_t> var10 = {1, 4, 9, 16, 25, 36, 64, 100, 169, 256};  // VAR 256px: 680 tokens
  const L cases[] = {
      {680, 680, 64, DType::kBF16, kMaskBlockCausal, QkvLayout::kBLHD, var10},
      {680, 680, 64, DType::kF32, kMaskBlockCausal, QkvLayout::kBHLD, var10},
      {1031, 1031, 128, DType::kBF16, kMaskCausal, QkvLayout::kBLHD, {}},
      {1031, 1031, 96, DType::kF16, kMaskNone, QkvLayout::kBHLD, {}},
      {680, 680, 80, DType::kF32, kMaskCausal, QkvLayout::kBHLD, {}},
      {1031, 1031, 64, DType::kBF16, kMaskSegment | kMaskCausal, QkvLayout::kBHLD, {}},
  };
  uint64_t salt = 6000;
  for (const auto& l : cases) {
    AttnCase c;
    c.Lq = l.Lq;
    c.Lk = l.Lk;
    c.D = l.D;
    c.qdt = c.kvdt = c.odt = l.dt;
    c.mask = l.mask;
    c.layout = l.lay;
    c.blocks = l.blocks;
    ct::run_attention_case(c, ++salt);
  }
}

TEST(cuda_attention_gqa) {
  uint64_t salt = 7000;
  for (DType dt : {DType::kBF16, DType::kF32, DType::kF16})
    for (auto [hq, hkv] : {std::pair{8, 2}, std::pair{4, 1}, std::pair{3, 3}}) {
      AttnCase c;
      c.Hq = hq;
      c.Hkv = hkv;
      c.Lq = c.Lk = 130;
      c.D = dt == DType::kF32 ? 64 : 128;
      c.qdt = c.kvdt = c.odt = dt;
      c.mask = kMaskCausal;
      ct::run_attention_case(c, ++salt);
    }
}

TEST(cuda_attention_kv_lengths_and_offsets) {
  // Lq < Lk: queries sit at the end of each row's valid keys (bottom-right);
  // keys past kv_len hold NaN and must never be read.
  uint64_t salt = 8000;
  for (DType dt : {DType::kF32, DType::kBF16})
    for (uint32_t mask : {uint32_t(kMaskNone), uint32_t(kMaskCausal), uint32_t(kMaskBlockCausal), uint32_t(kMaskSegment | kMaskCausal)})
      for (int Lq : {1, 7, 40}) {
        AttnCase c;
        c.B = 3;
        c.Lq = Lq;
        c.Lk = 100;
        c.D = 64;
        c.qdt = c.kvdt = c.odt = dt;
        c.mask = mask;
        c.kv_len = {100, 37, Lq > 5 ? 5 : 0};  // 5 < Lq: early causal rows see nothing; 0: nothing at all
        ct::run_attention_case(c, ++salt);
      }
}

TEST(cuda_attention_lq_differs_from_lk_without_kv_lengths) {
  // No kv_lengths: queries sit at positions Lk - Lq + i (bottom-right). Lq > Lk
  // leaves the first causal / block-causal rows with nothing visible; a key
  // count just past one tile (65 vs 64) and Lk = 1031 test the tile edges.
  uint64_t salt = 15000;
  const std::pair<int, int> lens[] = {{7, 100}, {100, 7}, {1, 1031}, {65, 64}, {64, 65}};
  for (DType dt : {DType::kBF16, DType::kF32})
    for (uint32_t mask : {uint32_t(kMaskNone), uint32_t(kMaskCausal), uint32_t(kMaskBlockCausal),
                          uint32_t(kMaskCausal | kMaskSegment | kMaskAdditive)})
      for (auto [lq, lk] : lens) {
        AttnCase c;
        c.B = 2;
        c.Hq = 4;
        c.Hkv = 2;
        c.Lq = lq;
        c.Lk = lk;
        c.D = dt == DType::kBF16 ? 96 : 80;
        c.qdt = c.kvdt = c.odt = dt;
        c.mask = mask;
        c.layout = (salt & 1) ? QkvLayout::kBLHD : QkvLayout::kBHLD;
        c.add_b = 2;
        ct::run_attention_case(c, ++salt);
      }
}

TEST(cuda_attention_decode) {
  uint64_t salt = 9000;
  for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
    AttnCase c;
    c.B = 4;
    c.Hq = 8;
    c.Hkv = 2;
    c.Lq = 1;
    c.Lk = 1024;
    c.D = 128;
    c.qdt = c.kvdt = c.odt = dt;
    c.mask = kMaskCausal;
    c.kv_len = {1024, 1, 513, 64};
    c.layout = QkvLayout::kBLHD;
    ct::run_attention_case(c, ++salt);
  }
}

TEST(cuda_attention_l2norm_head_multiplier) {
  uint64_t salt = 10000;
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF16})
    for (uint32_t mask : {uint32_t(kMaskNone), uint32_t(kMaskBlockCausal)}) {
      AttnCase c;
      c.Hq = c.Hkv = 4;
      c.Lq = c.Lk = 90;
      c.D = 64;
      c.qdt = c.kvdt = c.odt = dt;
      c.mask = mask;
      c.l2norm = true;
      c.head_mult = true;
      ct::run_attention_case(c, ++salt);
    }
}

TEST(cuda_attention_mixed_dtypes_and_f32_out) {
  uint64_t salt = 11000;
  const DType combos[][3] = {{DType::kF32, DType::kBF16, DType::kF32},
                             {DType::kBF16, DType::kBF16, DType::kF32},
                             {DType::kF16, DType::kF16, DType::kF32},
                             {DType::kBF16, DType::kF32, DType::kBF16},
                             {DType::kF16, DType::kBF16, DType::kF16}};
  for (const auto& d : combos) {
    AttnCase c;
    c.Lq = c.Lk = 75;
    c.D = 64;
    c.qdt = d[0];
    c.kvdt = d[1];
    c.odt = d[2];
    c.mask = kMaskCausal;
    ct::run_attention_case(c, ++salt);
  }
}

TEST(cuda_attention_strided_views_fall_back) {
  // Rows padded by 3 elements: not 16-byte aligned, so the SIMT kernel runs.
  uint64_t salt = 12000;
  for (DType dt : {DType::kBF16, DType::kF32})
    for (QkvLayout lay : {QkvLayout::kBHLD, QkvLayout::kBLHD}) {
      AttnCase c;
      c.Lq = c.Lk = 50;
      c.D = 64;
      c.qdt = c.kvdt = c.odt = dt;
      c.layout = lay;
      c.mask = kMaskCausal;
      c.row_pad = 3;
      ct::run_attention_case(c, ++salt);
    }
}

TEST(cuda_attention_head_dims_generic) {
  uint64_t salt = 13000;
  for (int D : {1, 8, 48, 112, 160, 256})
    for (DType dt : {DType::kBF16, DType::kF32}) {
      AttnCase c;
      c.Lq = c.Lk = 45;
      c.D = D;
      c.qdt = c.kvdt = c.odt = dt;
      c.mask = kMaskCausal;
      ct::run_attention_case(c, ++salt);
    }
}

TEST(cuda_attention_batch_and_heads_beyond_grid_yz_limit) {
  // Grid y and z stop at 65535: a decode batch of 70001 rows (tensor-core
  // kernel, per-row kv lengths incl. 0) and 66000 query heads on 2 kv heads
  // (SIMT kernel, BLHD) must run and match the reference, not fail to launch.
  {
    AttnCase c;
    c.B = 70001;
    c.Hq = c.Hkv = 1;
    c.Lq = 1;
    c.Lk = 9;
    c.D = 64;
    c.qdt = c.kvdt = c.odt = DType::kBF16;
    c.mask = kMaskCausal;
    for (int b = 0; b < c.B; ++b) c.kv_len.push_back(b % 10);
    ct::run_attention_case(c, 14001);
  }
  {
    AttnCase c;
    c.B = 1;
    c.Hq = 66000;
    c.Hkv = 2;
    c.Lq = 3;
    c.Lk = 5;
    c.D = 8;
    c.layout = QkvLayout::kBLHD;
    c.mask = kMaskCausal;
    ct::run_attention_case(c, 14002);
  }
}
