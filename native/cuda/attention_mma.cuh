// FlashAttention-2-style forward kernel on tensor cores (mma.sync m16n8k16).
//
// One block = 4 warps = 64 query rows of one (batch, head); each warp owns 16
// rows and keeps its Q fragments, S tile (16×64) and O accumulator (16×D) in
// registers. K/V tiles of 64 keys stream through shared memory with cp.async,
// double-buffered: tile t+1 loads while tile t is multiplied. Softmax is the
// online form in base 2 with f32 running max and sum (Dao 2023, Alg. 1).
// Named parts: load_tile (producer), qk_tile / pv_tile (main loop),
// mask_tile, softmax_tile, store_rows (epilogue). A Hopper wgmma main loop can
// replace qk_tile/pv_tile with the same producer and softmax around it.
#pragma once
#include <cuda_runtime.h>

#include "cuda/attention_params.cuh"
#include "cuda/common.cuh"
#include "cuda/mma_sm80.cuh"

namespace tessera::cuda::attn {

constexpr int kWarps = 4, kThreads = 32 * kWarps, kBr = 16 * kWarps, kBc = 64;

// Rows padded by 16 bytes: consecutive rows then start in different 16-byte
// bank groups (row bytes/16 is odd for D = 64, 80, 96, 128), so the 8 row
// addresses of one ldmatrix phase hit 8 distinct bank groups.
template <int kD> struct Smem {
  static constexpr int kStride = kD + 8;
  static constexpr int kQ = kBr * kStride;
  static constexpr int kKV = kBc * kStride;
  static constexpr size_t kBytes = size_t(kQ + 4 * kKV) * 2;
};

// Producer: rows [row0, row0+rows) of a [L, D] slab into shared memory; rows
// at or past `valid` are zero-filled (never read).
template <int kD, int kRows, class T>
__device__ __forceinline__ void load_tile(T* s, const T* g, int64_t stride, int row0, int valid) {
  constexpr int kChunks = kD / 8;
  for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool ok = row0 + r < valid;
    cp_async16(s + r * Smem<kD>::kStride + col, ok ? g + int64_t(row0 + r) * stride + col : g, ok);
  }
}

// S (16×64 per warp) = Q·Kᵀ from register Q fragments and a shared K tile.
template <int kD, class T>
__device__ __forceinline__ void qk_tile(float (&s)[kBc / 8][4], const uint32_t (&qf)[kD / 16][4], const T* sK) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int nt = 0; nt < kBc / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
#pragma unroll
    for (int jp = 0; jp < kBc / 16; ++jp) {
      uint32_t kb[4];
      // matrices: (keys 0-7, d 0-7) (keys 0-7, d 8-15) (keys 8-15, d 0-7) (keys 8-15, d 8-15)
      ldmatrix_x4(kb, sK + (jp * 16 + (lane % 8) + (lane / 16) * 8) * Smem<kD>::kStride + kk * 16 +
                          ((lane / 8) % 2) * 8);
      mma_16816<T>(s[2 * jp], qf[kk], kb[0], kb[1]);
      mma_16816<T>(s[2 * jp + 1], qf[kk], kb[2], kb[3]);
    }
  }
}

// O (16×D per warp) += P·V with P taken straight from the S registers: the C
// layout of two adjacent n8 tiles is the A layout of one k16 step.
template <int kD, class T>
__device__ __forceinline__ void pv_tile(float (&o)[kD / 8][4], const float (&p)[kBc / 8][4], const T* sV) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int kk = 0; kk < kBc / 16; ++kk) {
    const uint32_t pa[4] = {pack2<T>(p[2 * kk][0], p[2 * kk][1]), pack2<T>(p[2 * kk][2], p[2 * kk][3]),
                            pack2<T>(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                            pack2<T>(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
    for (int dp = 0; dp < kD / 16; ++dp) {
      uint32_t vb[4];
      // transposed matrices: (keys 0-7, d 0-7) (keys 8-15, d 0-7) (keys 0-7, d 8-15) (keys 8-15, d 8-15)
      ldmatrix_x4_trans(vb, sV + (kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * Smem<kD>::kStride + dp * 16 +
                                (lane / 16) * 8);
      mma_16816<T>(o[2 * dp], pa, vb[0], vb[1]);
      mma_16816<T>(o[2 * dp + 1], pa, vb[2], vb[3]);
    }
  }
}

// Scales logits to base 2 and applies the mask to one S tile. Elements
// 0,1 of each n8 tile belong to row r0, elements 2,3 to row r0+8.
template <bool kExtra>
__device__ __forceinline__ void mask_tile(float (&s)[kBc / 8][4], const AttnParams& P, int b, int h, int r0,
                                          const int (&lim)[2], int j0, float sc, bool need_mask) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float x = s[nt][e] * sc;
      if (kExtra || need_mask) {
        const int col = j0 + nt * 8 + (lane % 4) * 2 + (e & 1);
        const int hr = e >> 1;
        if (col >= lim[hr]) x = -INFINITY;
        else if (kExtra) x = extra_logit(P, b, h, r0 + 8 * hr, col, x);
      }
      s[nt][e] = x;
    }
}

// Online softmax update for the thread's two rows: new running max (reduced
// over the 4 lanes sharing a row), rescale O and the partial sums, and turn S
// into unnormalised probabilities. A row that has seen only −inf keeps base 0
// so exp2 gives 0, never NaN.
template <int kD>
__device__ __forceinline__ void softmax_tile(float (&s)[kBc / 8][4], float (&o)[kD / 8][4], float (&m)[2],
                                             float (&l)[2]) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float mx = m[hr];
#pragma unroll
    for (int nt = 0; nt < kBc / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * hr], s[nt][2 * hr + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float base = mx == -INFINITY ? 0.f : mx;
    const float corr = exp2f(m[hr] - base);
    m[hr] = mx;
    float sum = 0.f;
#pragma unroll
    for (int nt = 0; nt < kBc / 8; ++nt) {
      s[nt][2 * hr] = exp2f(s[nt][2 * hr] - base);
      s[nt][2 * hr + 1] = exp2f(s[nt][2 * hr + 1] - base);
      sum += s[nt][2 * hr] + s[nt][2 * hr + 1];
    }
    l[hr] = l[hr] * corr + sum;
#pragma unroll
    for (int nt = 0; nt < kD / 8; ++nt) {
      o[nt][2 * hr] *= corr;
      o[nt][2 * hr + 1] *= corr;
    }
  }
}

// Epilogue: normalise by the row sums, write O (zeros for rows that saw no
// key) and the log-sum-exp in natural-log units.
template <int kD>
__device__ __forceinline__ void store_rows(const AttnParams& P, int b, int h, int r0, float (&o)[kD / 8][4],
                                           const float (&m)[2], float (&l)[2]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float sum = l[hr];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int row = r0 + 8 * hr;
    if (row >= P.Lq) continue;
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    const int64_t base = b * P.o_sb + h * P.o_sh + row * P.o_sl;
#pragma unroll
    for (int nt = 0; nt < kD / 8; ++nt) {
      const int col = nt * 8 + (lane % 4) * 2;
      store_from_float(P.out, P.out_dt, base + col * P.o_sd, o[nt][2 * hr] * inv);
      store_from_float(P.out, P.out_dt, base + (col + 1) * P.o_sd, o[nt][2 * hr + 1] * inv);
    }
    if (P.lse && lane % 4 == 0)
      P.lse[b * P.lse_sb + h * P.lse_sh + row * P.lse_sl] = sum > 0.f ? (m[hr] + __log2f(sum)) * kLn2 : -INFINITY;
  }
}

template <int kD, class T, bool kExtra>
__global__ void __launch_bounds__(kThreads) attention_mma_kernel(const AttnParams P) {
  static_assert(kD % 16 == 0 && kD <= 128, "head dim must be a multiple of 16, at most 128");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sK = sQ + Smem<kD>::kQ;       // two buffers
  T* sV = sK + 2 * Smem<kD>::kKV;  // two buffers

  const AttnBlock blk = attn_block(P, kBr);  // longest causal tiles first (tail effect)
  const int h = blk.h, b = blk.b, hk = h / P.group;
  const int i0 = blk.qtile * kBr;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r0 = i0 + warp * 16 + lane / 4;

  const int lim_first = row_limit(P, b, i0);
  const int lim_last = row_limit(P, b, min(i0 + kBr, P.Lq) - 1);
  const int lim[2] = {row_limit(P, b, r0), row_limit(P, b, r0 + 8)};
  const int n_tiles = (lim_last + kBc - 1) / kBc;
  const float sc = P.scale_log2 * (P.head_mult ? P.head_mult[h] : 1.f);

  const T* gq = static_cast<const T*>(P.q) + b * P.q_sb + h * P.q_sh;
  const T* gk = static_cast<const T*>(P.k) + b * P.k_sb + hk * P.k_sh;
  const T* gv = static_cast<const T*>(P.v) + b * P.v_sb + hk * P.v_sh;

  // Keys past lim_last are zero-filled: a KV cache past its length may hold
  // garbage (even NaN), and 0·NaN would poison O.
  load_tile<kD, kBr>(sQ, gq, P.q_sl, i0, P.Lq);
  if (n_tiles > 0) {
    load_tile<kD, kBc>(sK, gk, P.k_sl, 0, lim_last);
    load_tile<kD, kBc>(sV, gv, P.v_sl, 0, lim_last);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  uint32_t qf[kD / 16][4];
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk)
    ldmatrix_x4(qf[kk], sQ + (warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * Smem<kD>::kStride + kk * 16 +
                            (lane / 16) * 8);

  float o[kD / 8][4];
#pragma unroll
  for (int nt = 0; nt < kD / 8; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  for (int t = 0; t < n_tiles; ++t) {
    const int buf = t & 1;
    if (t + 1 < n_tiles) {
      load_tile<kD, kBc>(sK + (buf ^ 1) * Smem<kD>::kKV, gk, P.k_sl, (t + 1) * kBc, lim_last);
      load_tile<kD, kBc>(sV + (buf ^ 1) * Smem<kD>::kKV, gv, P.v_sl, (t + 1) * kBc, lim_last);
    }
    cp_async_commit();
    cp_async_wait<1>();  // everything but the tile just issued has landed
    __syncthreads();

    float s[kBc / 8][4];
    qk_tile<kD, T>(s, qf, sK + buf * Smem<kD>::kKV);
    const int j0 = t * kBc;
    mask_tile<kExtra>(s, P, b, h, r0, lim, j0, sc, j0 + kBc > lim_first);
    softmax_tile<kD>(s, o, m, l);
    pv_tile<kD, T>(o, s, sV + buf * Smem<kD>::kKV);
    __syncthreads();  // buffer `buf` is refilled in the next iteration
  }
  store_rows<kD>(P, b, h, r0, o, m, l);
}

template <int kD, class T, bool kExtra>
void launch_kernel(const AttnParams& P, int device, cudaStream_t s) {
  auto kernel = attention_mma_kernel<kD, T, kExtra>;
  constexpr size_t smem = Smem<kD>::kBytes;
  if (static_cast<size_t>(max_smem_optin(device)) < smem)
    throw Error(Code::kDevice, "device has too little shared memory for the attention kernel");
  TS_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  kernel<<<attn_grid(P, kBr), kThreads, smem, s>>>(P);
  TS_LAUNCHED("attention_mma_kernel");
}

}  // namespace tessera::cuda::attn

namespace tessera::cuda {
template <int kD> void launch_attention_mma_d(const AttnParams& P, bool extra, int device, cudaStream_t s) {
  TS_BOOL_SWITCH(extra, kExtra, [&] {
    if (P.q_dt == kDtBF16) attn::launch_kernel<kD, __nv_bfloat16, kExtra>(P, device, s);
    else attn::launch_kernel<kD, __half, kExtra>(P, device, s);
  });
}
}  // namespace tessera::cuda
