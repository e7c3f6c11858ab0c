// Composite decoder steps: a whole stack of transformer blocks in one native
// call. At decode time a block is a dozen small ops (norms, GEMVs, RoPE, a
// cache append, attention); issued one by one from TypeScript, each costs a
// thread hop (~0.08 ms) that is larger than the op. Here they run back to
// back on the calling thread with pooled scratch, through the same public
// kernels (tessera/gemm.h, attention.h, norm.h), so the result is bit for bit
// the one the op-by-op path gives.
#pragma once
#include <cstdint>

#include "tessera/gemm.h"
#include "tessera/tensor.h"

namespace tessera {

// One pre-norm Llama block (LlamaGen's c2i GPT): RMSNorm, fused [q|k|v]
// projection, interleaved RoPE, KV-cache append, attention over the cache,
// output projection + residual, RMSNorm, SwiGLU (w2(silu(w1 h) * w3 h)) +
// residual.
struct LlamaLayer {
  const PackedWeight* qkv = nullptr;  // [dim + 2·kv_heads·head_dim, dim]: q | k | v
  const PackedWeight* wo = nullptr;   // [dim, dim]
  const PackedWeight* w1 = nullptr;   // [ffn, dim]
  const PackedWeight* w3 = nullptr;   // [ffn, dim]
  const PackedWeight* w2 = nullptr;   // [dim, ffn]
  TensorView attention_norm;          // [dim] f32
  TensorView ffn_norm;                // [dim] f32
  TensorView cache_k, cache_v;        // [rows, kv_heads, Lmax, head_dim] f32, bf16 or f16
  int32_t* lengths = nullptr;         // [rows] host: valid slots per row, advanced by n
};

struct LlamaBlocksArgs {
  TensorView x;                       // [rows·n, dim] f32 contiguous: inputs, replaced by the outputs
  const LlamaLayer* layers = nullptr;
  int32_t num_layers = 0;
  int32_t rows = 0, n = 0;            // sequences, new slots per sequence (row-major: row r, slot j = r·n + j)
  int32_t heads = 0, head_dim = 0;    // dim = heads · head_dim
  int32_t kv_heads = 0;               // key/value heads (grouped-query attention; 0 = heads), divides heads
  TensorView cos, sin;                // RoPE table [P, head_dim/2] f32 (interleaved pairs)
  TensorView positions;               // [n] int32: table row of each new slot
  uint32_t mask = 0;                  // kMaskNone or kMaskCausal (attention.h)
  float eps = 1e-5f;                  // RMSNorm epsilon
  // Optional head after the last block (all three or none): logits =
  // RMSNorm(x, final_norm) · headᵀ, so a decode step is one call. x still
  // receives the last block's output.
  TensorView final_norm;              // [dim] f32
  const PackedWeight* head = nullptr; // [V, dim]
  TensorView logits;                  // [rows·n, V] f32 contiguous
};

// Validates every layer before touching any cache (a bad layer leaves all
// caches and lengths unchanged), then runs the blocks in order. CPU only.
void llama_blocks(const LlamaBlocksArgs& args);

// Whether llama_blocks runs this (valid) call as one decode-team job (n = 1,
// head_dim a multiple of 32, every weight on the small-M streaming path, a
// pool of at least two threads; TESSERA_DECODE_TEAM=0 turns it off) rather
// than op by op. Both give bit-identical results; the team keeps the memory
// system busy across the joins between ops (core/decoder.cpp).
bool llama_blocks_uses_team(const LlamaBlocksArgs& args);

// Plain autoregressive decoding (LlamaGen's generate loop after the
// prefill) in one call: per step, sample one token per image from the
// current logits (CFG over the [conditional; null-class] row halves, the
// optional per-image logit bias, then sample() with seed + image and step
// first_step + t: what GuidedSampler.draw in lib/models/llamagen/generate.ts
// does), then embed the tokens and run llama_blocks with the head for the
// next logits. The thread hops and argument passing of a call per step are
// gone, which is most of what a decode step costs besides the weight reads.
struct LlamaDecodeArgs {
  // The stack and head: layers, rows, heads, head_dim, cos, sin, mask, eps,
  // final_norm and head as for llama_blocks; x, positions, logits and n are
  // the loop's own (n = 1) and must be left empty.
  LlamaBlocksArgs blocks;
  TensorView tok_embeddings;   // [V, dim] f32 contiguous, V = head rows
  TensorView logits;           // [rows, V] f32 contiguous: the current logits (prefill's); overwritten
  int32_t images = 0;          // B; rows = 2B with CFG (conditional rows first), else B
  float cfg_scale = 1.f;       // used when rows = 2B
  float temperature = 1.f;
  int32_t top_k = 0;
  float top_p = 1.f;
  uint64_t seed = 0;           // image b draws from seed + b
  uint64_t first_step = 0;     // RNG step of the first token (its index in the image)
  TensorView bias;             // optional [B, V] f32, added to both CFG rows of image b before sampling
  TensorView tokens;           // [B, steps] int32 contiguous (output); steps >= 1
  // Called after each step with the tokens emitted per image so far (on the
  // calling thread); may be empty.
  void (*on_step)(void* ctx, int32_t done) = nullptr;
  void* on_step_ctx = nullptr;
  // Optional: read before each step; non-zero ends the loop there (no error;
  // tokens of the steps not run stay unwritten). The binding raises it when
  // the JavaScript step callback throws.
  const int32_t* stop = nullptr;
};

// Validates everything first, including that every cache and the RoPE
// table hold the steps − 1 slots the loop appends, so a bad call changes
// nothing; then runs. CPU only.
void llama_decode(const LlamaDecodeArgs& args);

// One VAR block (spec/var.md section 2) on a scale's tokens: AdaLN LayerNorm
// (scale s1, shift b1), fused [q|k|v] projection, k and v written to the
// cache after `cache_length`, L2-normalised attention over the cache with the
// per-head multiplier (scale 1, no mask), proj + bias gated by g1 + residual,
// AdaLN LayerNorm (s2, b2), fc1 + GELU-tanh, fc2 + bias gated by g2 + residual.
struct VarLayer {
  const PackedWeight* qkv = nullptr;   // [3C, C]
  TensorView qkv_bias;                 // [3C] f32: q_bias, zeros (no k bias), v_bias
  const PackedWeight* proj = nullptr;  // [C, C]
  TensorView proj_bias;                // [C]
  const PackedWeight* fc1 = nullptr;   // [F, C]
  TensorView fc1_bias;                 // [F]
  const PackedWeight* fc2 = nullptr;   // [C, F]
  TensorView fc2_bias;                 // [C]
  const float* head_multiplier = nullptr;  // [heads] host, or null (= 1)
  TensorView s1, b1, s2, b2, g1, g2;   // AdaLN terms, each [rows, C] f32 (rows may be strided)
  TensorView cache_k, cache_v;         // [rows, Lmax, heads, head_dim] f32 (blhd), contiguous
};

struct VarBlocksArgs {
  TensorView x;                        // [rows, n, C] f32 contiguous: inputs, replaced by the outputs
  const VarLayer* layers = nullptr;
  int32_t num_layers = 0;
  int32_t heads = 0, head_dim = 0;     // C = heads · head_dim
  int64_t cache_length = 0;            // tokens already cached (every row and layer)
  float eps = 1e-6f;                   // LayerNorm epsilon
  // Optional AdaLN head (all or none): logits = LN(x; head_scale, head_shift)·headᵀ + head_bias.
  TensorView head_scale, head_shift;   // [rows, C]
  const PackedWeight* head = nullptr;  // [V, C]
  TensorView head_bias;                // [V]
  TensorView logits;                   // [rows·n, V] f32 contiguous
};

// Validates everything first (nothing is written on a bad call), then runs
// the blocks and the head. The caller advances its cache length by n. CPU only.
void var_blocks(const VarBlocksArgs& args);

}  // namespace tessera
