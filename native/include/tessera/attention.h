// Fused scaled-dot-product attention (online softmax, tiled; no Lq×Lk matrix
// in memory), rotary embeddings and KV-cache appends. Same semantics on every
// backend; the float64 reference in test/native/reference.h is the spec.
#pragma once
#include <cstdint>

#include "tessera/tensor.h"

namespace tessera {

enum class QkvLayout : int32_t { kBHLD = 0, kBLHD = 1 };

enum MaskFlags : uint32_t {
  kMaskNone = 0,
  kMaskCausal = 1,       // key j visible to query position p iff j <= p
  kMaskBlockCausal = 2,  // iff block(j) <= block(p); exclusive with kMaskCausal
  kMaskSegment = 4,      // iff q_segments[b][i] == k_segments[b][j]
  kMaskAdditive = 8,     // add `additive` to the logits (may be -inf)
};

// Position convention (FlashAttention's bottom-right alignment): query i of
// batch row b sits at absolute position kv_len(b) - Lq + i, where kv_len(b)
// is kv_lengths[b] (or Lk). Keys j >= kv_len(b) are never visible. A query
// with no visible key gets an output of zeros (and lse = -inf).
struct AttentionArgs {
  TensorView q;    // [B,Hq,Lq,D] (kBHLD) or [B,Lq,Hq,D] (kBLHD); f32, bf16 or f16
  TensorView k;    // [B,Hkv,Lk,D] or [B,Lk,Hkv,D]; f32, bf16 or f16 (independent of q)
  TensorView v;    // same shape and dtype as k
  TensorView out;  // same shape as q; f32 or q's dtype. Must not overlap q, k or v.
  QkvLayout layout = QkvLayout::kBHLD;  // of q, k, v and out alike
  float scale = 0.f;                    // logit = scale · q·k (times head_multiplier[h] if given)
  uint32_t mask = kMaskNone;            // MaskFlags
  // Block-causal: lengths of consecutive blocks; they must sum to Lk.
  const int64_t* block_lengths = nullptr;
  int32_t num_blocks = 0;
  TensorView q_segments;  // [B, Lq] int32 (kMaskSegment)
  TensorView k_segments;  // [B, Lk] int32 (kMaskSegment)
  TensorView additive;    // f32, [Lq, Lk] or [B|1, Hq|1, Lq, Lk] (kMaskAdditive)
  TensorView kv_lengths;  // [B] int32 valid keys per row, or empty (= Lk); host memory on every backend
  // VAR: q and k are L2-normalised per head (x / max(|x|, 1e-12)) before the product.
  bool l2norm_qk = false;
  const float* head_multiplier = nullptr;  // [Hq] host array, or null (= 1)
  TensorView lse;  // optional out: [B, Hq, Lq] f32 natural-log sum-exp of the scaled logits
};

void attention(const AttentionArgs& args);

// Rotary position embedding applied to x (q or k). Angles come from a table
// of cos/sin rows; each token picks its row by position id.
enum class RopeStyle : int32_t {
  kInterleaved = 0,  // rotate pairs (2j, 2j+1)  (LlamaGen, Meta Llama)
  kHalf = 1,         // rotate pairs (j, j + R/2) (HF rotate_half, GPT-NeoX)
};

struct RopeArgs {
  TensorView x;       // [B,H,L,D] or [B,L,H,D]; f32, bf16 or f16
  TensorView out;     // same shape/dtype as x; may be x itself (in place)
  QkvLayout layout = QkvLayout::kBHLD;
  TensorView cos;     // f32 [P, R/2] (shared by heads) or [P, H, R/2] (per head, 3D RoPE)
  TensorView sin;     // same shape as cos
  TensorView positions;  // int32 [B, L] or [L]: row of the table for each token; empty = token index
  RopeStyle style = RopeStyle::kInterleaved;
  int32_t rotary_dim = 0;  // R: first R dims rotate, the rest pass through; 0 = D
};

void rope_apply(const RopeArgs& args);

// Table builders (host, f32). 1D: angle(p, j) = p · base^(-2j/R).
void rope_table_1d(int64_t num_positions, int32_t rotary_dim, double base, float* cos, float* sin);
// LlamaGen 2D: F = R/4 frequencies ω_k = base^(-2k/(R/2)); position p = r·grid + c
// (for p < grid²); pair j < F uses angle r·ω_j, pair j >= F uses c·ω_(j-F).
// Rows: num_prefix leading rows (class-token slots), then grid² cells. The
// prefix rows are cos = sin = 0, not angle 0: LlamaGen prepends zeros to its
// table, so q and k of the class token become zero vectors; we match that.
void rope_table_2d(int32_t grid, int32_t num_prefix, int32_t rotary_dim, double base, float* cos,
                   float* sin);
// 3D (OctGPT): per head h, angle(p, h, j) = Σ_axis xyz[p][axis] · freqs[h][j][axis].
// xyz: [P, 3] f32, freqs: [H, R/2, 3] f32. Output [P, H, R/2].
void rope_table_3d(int64_t num_positions, int32_t heads, int32_t rotary_dim, const float* xyz,
                   const float* freqs, float* cos, float* sin);

// KV cache append: writes new keys/values after each row's current length.
// cache_k/cache_v: [B, Hkv, Lmax, D] (kBHLD storage), f32/bf16/f16.
// k_new/v_new: [B, Hkv, Lnew, D] or [B, Lnew, Hkv, D] per `layout`, any float dtype.
// lengths: host int32 [B], read and then advanced by counts[b] (or Lnew).
// counts: host int32 [B] or null: row b appends its first counts[b] tokens.
// Errors (kShape) if a row would exceed Lmax; nothing is written then.
struct KvAppendArgs {
  TensorView cache_k, cache_v;
  TensorView k_new, v_new;
  QkvLayout layout = QkvLayout::kBHLD;
  int32_t* lengths = nullptr;
  const int32_t* counts = nullptr;
};
void kv_append(const KvAppendArgs& args);

}  // namespace tessera
