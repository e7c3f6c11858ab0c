// Generic attention kernel on CUDA cores, f32 arithmetic throughout: every
// dtype mix, any strides, head dims up to 256. It is the path for f32 inputs
// (exact to ~1e-7) and the fallback when the tensor-core kernel does not
// apply (other head dims, unaligned views, mixed q/kv dtypes).
//
// One block = 4 warps = 16 query rows; each warp owns 4 rows. Keys come in
// tiles of 32 through shared memory (as f32); lane j scores key j, the warp
// reduces max and sum, then each lane accumulates D/32 output columns.
#include "cuda/attention_params.cuh"
#include "cuda/common.cuh"

namespace tessera::cuda {
namespace {

constexpr int kRows = 16, kRowsPerWarp = 4, kKeys = 32, kMaxD = 256, kPerLane = kMaxD / 32;

size_t simt_smem(int D) { return size_t(kRows * D + kKeys * (D + 1) + kKeys * D) * sizeof(float); }

__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__global__ void __launch_bounds__(128) attention_simt_kernel(const AttnParams P) {
  extern __shared__ float smem[];
  const int D = P.D;
  float* sQ = smem;                  // [16][D]
  float* sK = sQ + kRows * D;        // [32][D+1]: padded so lanes reading different keys avoid one bank
  float* sV = sK + kKeys * (D + 1);  // [32][D]

  const AttnBlock blk = attn_block(P, kRows);  // longest causal tiles first
  const int h = blk.h, b = blk.b, hk = h / P.group;
  const int i0 = blk.qtile * kRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float sc = P.scale_log2 * (P.head_mult ? P.head_mult[h] : 1.f);
  const bool extra = P.qseg || P.add;

  for (int idx = threadIdx.x; idx < kRows * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D, i = i0 + r;
    sQ[idx] = i < P.Lq ? load_as_float(P.q, P.q_dt, b * P.q_sb + h * P.q_sh + i * P.q_sl + d * P.q_sd) : 0.f;
  }
  const int lim_last = row_limit(P, b, min(i0 + kRows, P.Lq) - 1);
  int lim[kRowsPerWarp];
  float o[kRowsPerWarp][kPerLane], m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    lim[rr] = row_limit(P, b, i0 + warp * kRowsPerWarp + rr);
    m[rr] = -INFINITY;
    l[rr] = 0.f;
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) o[rr][c] = 0.f;
  }

  for (int j0 = 0; j0 < lim_last; j0 += kKeys) {
    __syncthreads();  // the previous tile is consumed (and sQ written, first time)
    for (int idx = threadIdx.x; idx < kKeys * D; idx += blockDim.x) {
      const int r = idx / D, d = idx % D, j = j0 + r;
      const bool ok = j < lim_last;  // never read keys past the limit: cache rows there may be garbage
      sK[r * (D + 1) + d] = ok ? load_as_float(P.k, P.kv_dt, b * P.k_sb + hk * P.k_sh + j * P.k_sl + d * P.k_sd) : 0.f;
      sV[idx] = ok ? load_as_float(P.v, P.kv_dt, b * P.v_sb + hk * P.v_sh + j * P.v_sl + d * P.v_sd) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int rloc = warp * kRowsPerWarp + rr, i = i0 + rloc;
      if (j0 >= lim[rr]) continue;  // warp-uniform: this row sees nothing in this tile
      const float* q = sQ + rloc * D;
      const float* kr = sK + lane * (D + 1);
      float dot = 0.f;
      for (int d = 0; d < D; ++d) dot = fmaf(q[d], kr[d], dot);
      const int j = j0 + lane;
      float x = dot * sc;
      if (j >= lim[rr]) x = -INFINITY;
      else if (extra) x = extra_logit(P, b, h, i, j, x);
      const float mx = fmaxf(m[rr], warp_max(x));
      const float base = mx == -INFINITY ? 0.f : mx;
      const float corr = exp2f(m[rr] - base);
      const float p = exp2f(x - base);
      m[rr] = mx;
      l[rr] = l[rr] * corr + warp_sum(p);
#pragma unroll
      for (int c = 0; c < kPerLane; ++c) o[rr][c] *= corr;
      for (int jj = 0; jj < kKeys; ++jj) {
        const float pj = __shfl_sync(0xffffffffu, p, jj);
        const float* vr = sV + jj * D;
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) {
          const int d = lane + 32 * c;
          if (d < D) o[rr][c] = fmaf(pj, vr[d], o[rr][c]);
        }
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int i = i0 + warp * kRowsPerWarp + rr;
    if (i >= P.Lq) continue;
    const float inv = l[rr] > 0.f ? 1.f / l[rr] : 0.f;
    const int64_t base = b * P.o_sb + h * P.o_sh + i * P.o_sl;
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int d = lane + 32 * c;
      if (d < D) store_from_float(P.out, P.out_dt, base + d * P.o_sd, o[rr][c] * inv);
    }
    if (P.lse && lane == 0)
      P.lse[b * P.lse_sb + h * P.lse_sh + i * P.lse_sl] = l[rr] > 0.f ? (m[rr] + __log2f(l[rr])) * kLn2 : -INFINITY;
  }
}

}  // namespace

void launch_attention_simt(const AttnParams& P, int device, cudaStream_t s) {
  if (P.D > kMaxD)
    throw Error(Code::kInvalidArgument,
                "attention on CUDA supports head dims up to 256 (got " + std::to_string(P.D) + ")");
  const size_t smem = simt_smem(P.D);
  if (static_cast<size_t>(max_smem_optin(device)) < smem)
    throw Error(Code::kDevice, "device has too little shared memory for head dim " + std::to_string(P.D));
  TS_CUDA(cudaFuncSetAttribute(attention_simt_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(simt_smem(kMaxD))));
  attention_simt_kernel<<<attn_grid(P, kRows), 128, smem, s>>>(P);
  TS_LAUNCHED("attention_simt_kernel");
}

}  // namespace tessera::cuda
