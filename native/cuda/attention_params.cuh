// Kernel-side description of one attention call and the mask logic shared by
// the tensor-core and SIMT kernels.
//
// Masks reduce to a per-query-row key limit plus optional per-element terms:
//   limit(i) = number of leading keys query i may see: kv_len for no mask,
//   min(kv_len, p+1) causal, min(kv_len, block_end[p]) block-causal, with
//   p = kv_len − Lq + i (bottom-right alignment, attention.h). limit(i) is
//   non-decreasing in i, so a query tile's key range is [0, limit(last row))
//   and tiles wholly below limit(first row) need no per-element test.
//   Segment ids and the additive mask are per-element ("extra") terms.
#pragma once
#include <cstdint>
#include <string>

#include "cuda/common.cuh"

namespace tessera::cuda {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct AttnParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* lse;  // or null
  int q_dt, kv_dt, out_dt;
  int64_t q_sb, q_sh, q_sl, q_sd;  // element strides by (batch, head, position, dim)
  int64_t k_sb, k_sh, k_sl, k_sd;
  int64_t v_sb, v_sh, v_sl, v_sd;
  int64_t o_sb, o_sh, o_sl, o_sd;
  int64_t lse_sb, lse_sh, lse_sl;
  int B, Hq, Hkv, Lq, Lk, D, group;
  float scale_log2;       // scale · log2(e): the kernels work in base 2
  const float* head_mult; // [Hq] on the device, or null
  const int* kv_len;      // [B] on the device, or null (= Lk)
  const int* block_end;   // [Lk]: exclusive end of the block holding each position, or null
  int causal;
  const int* qseg;  // or null
  const int* kseg;
  int64_t qseg_sb, qseg_sl, kseg_sb, kseg_sl;
  const float* add;  // or null
  int64_t add_sb, add_sh, add_sq, add_sk;
};

__device__ __forceinline__ int row_limit(const AttnParams& P, int b, int i) {
  if (i >= P.Lq) return 0;
  const int kvl = P.kv_len ? P.kv_len[b] : P.Lk;
  const int p = kvl - P.Lq + i;
  int lim = kvl;
  if (P.causal) lim = min(lim, p + 1);
  if (P.block_end) lim = p < 0 ? 0 : min(lim, P.block_end[p]);
  return max(lim, 0);
}

// Segment and additive terms for one visible logit x (base-2 units).
__device__ __forceinline__ float extra_logit(const AttnParams& P, int b, int h, int i, int j, float x) {
  if (P.qseg && P.qseg[b * P.qseg_sb + i * P.qseg_sl] != P.kseg[b * P.kseg_sb + j * P.kseg_sl]) return -INFINITY;
  if (P.add) x += P.add[b * P.add_sb + h * P.add_sh + i * P.add_sq + j * P.add_sk] * kLog2e;
  return x;
}

// Launch grid: one-dimensional, blockIdx.x = (b·Hq + h)·tiles + (tiles − 1 −
// qtile), the order the former (tiles, Hq, B) grid ran in: a (b, h)'s query
// tiles run next to each other (its K/V stay in L2), its last tile first (the
// longest under a causal mask: tail effect). Grid y and z stop at 65535,
// which refused large decode batches or head counts; x allows 2^31 − 1.
struct AttnBlock {
  int qtile, h, b;
};
__device__ __forceinline__ AttnBlock attn_block(const AttnParams& P, int rows_per_block) {
  const unsigned tiles = (unsigned(P.Lq) + rows_per_block - 1) / rows_per_block;
  const unsigned bh = blockIdx.x / tiles;
  return {int(tiles - 1 - blockIdx.x % tiles), int(bh % unsigned(P.Hq)), int(bh / unsigned(P.Hq))};
}
inline dim3 attn_grid(const AttnParams& P, int rows_per_block) {
  const int64_t blocks = (int64_t(P.Lq) + rows_per_block - 1) / rows_per_block * P.B * P.Hq;
  if (blocks > 0x7fffffff)
    throw Error(Code::kShape, "attention: B·Hq·ceil(Lq/" + std::to_string(rows_per_block) + ") = " +
                                  std::to_string(blocks) +
                                  " thread blocks exceed one CUDA launch (2^31 - 1); split the batch");
  return dim3(static_cast<unsigned>(blocks));
}

// Launchers (one per kernel family). The tensor-core one returns false when
// it does not take this call (head dim, dtype, alignment), so the caller
// falls back to the SIMT kernel: support and choice are one decision.
bool attention_mma_supported(const AttnParams& P);
void launch_attention_mma(const AttnParams& P, bool extra, int device, cudaStream_t s);
void launch_attention_simt(const AttnParams& P, int device, cudaStream_t s);
template <int kD> void launch_attention_mma_d(const AttnParams& P, bool extra, int device, cudaStream_t s);

}  // namespace tessera::cuda
