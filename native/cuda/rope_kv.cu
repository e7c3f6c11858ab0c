// Rotary embeddings and KV-cache appends: element-wise and bandwidth-bound,
// one thread per rotated pair / copied element, f32 arithmetic.
#include <vector>

#include "core/validate.h"
#include "cuda/entry.cuh"

namespace tessera::cuda {
namespace {

struct RopeParams {
  const void* x;
  void* out;
  int dt;
  int64_t x_sb, x_sh, x_sl, x_sd, o_sb, o_sh, o_sl, o_sd;
  const float* cos;
  const float* sin;
  int64_t c_sp, c_sh, c_sj;  // table strides (c_sh = 0 when shared by heads)
  const int* pos;
  int64_t pos_sb, pos_sl;    // pos_sb = 0 for a [L] table
  int64_t P;                 // table rows: device positions are clamped to [0, P)
  int H, L, D, R;
  int interleaved, copy_rest;  // copy_rest: out != x, so dims past R are copied
};

__global__ void rope_kernel(const RopeParams p, int64_t total) {
  const int half = p.R / 2, per_row = p.D - half;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int j = t % per_row;
    const int64_t row = t / per_row;
    const int l = row % p.L, h = (row / p.L) % p.H;
    const int64_t b = row / (int64_t(p.L) * p.H);
    const int64_t xb = b * p.x_sb + h * p.x_sh + l * p.x_sl, ob = b * p.o_sb + h * p.o_sh + l * p.o_sl;
    if (j < half) {
      // Device-resident positions cannot be range-checked on the host
      // (validate_rope): clamp, so a bad id never reads past the table.
      int64_t pos = p.pos ? p.pos[b * p.pos_sb + l * p.pos_sl] : l;
      pos = pos < 0 ? 0 : (pos >= p.P ? p.P - 1 : pos);
      const int64_t ti = pos * p.c_sp + h * p.c_sh + j * p.c_sj;
      const float c = p.cos[ti], s = p.sin[ti];
      const int i0 = p.interleaved ? 2 * j : j, i1 = p.interleaved ? 2 * j + 1 : j + half;
      const float x0 = load_as_float(p.x, p.dt, xb + i0 * p.x_sd), x1 = load_as_float(p.x, p.dt, xb + i1 * p.x_sd);
      store_from_float(p.out, p.dt, ob + i0 * p.o_sd, x0 * c - x1 * s);
      store_from_float(p.out, p.dt, ob + i1 * p.o_sd, x0 * s + x1 * c);
    } else if (p.copy_rest) {
      const int d = p.R + (j - half);
      store_from_float(p.out, p.dt, ob + d * p.o_sd, load_as_float(p.x, p.dt, xb + d * p.x_sd));
    }
  }
}

// Copies row b's first count[b] new tokens into the cache after start[b].
__global__ void kv_append_kernel(const void* src, int src_dt, int64_t s_sb, int64_t s_sh, int64_t s_sl, int64_t s_sd,
                                 void* cache, int cache_dt, int64_t c_sb, int64_t c_sh, int64_t c_sl, int64_t c_sd,
                                 const int* start, const int* count, int H, int Lnew, int D, int64_t total) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int d = t % D;
    const int64_t row = t / D;
    const int l = row % Lnew, h = (row / Lnew) % H;
    const int64_t b = row / (int64_t(Lnew) * H);
    if (l >= count[b]) continue;
    const float v = load_as_float(src, src_dt, b * s_sb + h * s_sh + l * s_sl + d * s_sd);
    store_from_float(cache, cache_dt, b * c_sb + h * c_sh + (start[b] + l) * c_sl + d * c_sd, v);
  }
}

unsigned grid_for(int64_t total, int threads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65536 * 8 ? (blocks > 0 ? blocks : 1) : 65536 * 8);
}

void bhld_strides(const TensorView& t, QkvLayout layout, int64_t* sb, int64_t* sh, int64_t* sl, int64_t* sd) {
  *sb = t.strides[0];
  *sd = t.strides[3];
  if (layout == QkvLayout::kBHLD) { *sh = t.strides[1]; *sl = t.strides[2]; }
  else { *sl = t.strides[1]; *sh = t.strides[2]; }
}

}  // namespace

void run_rope(const RopeArgs& a) {
  validate_rope(a);
  const int dev = device_of(a.out, "rope out");
  require_same_device(a.x, dev, "x");
  require_same_device(a.cos, dev, "cos");
  require_same_device(a.sin, dev, "sin");
  require_same_device(a.positions, dev, "positions");
  const bool bhld = a.layout == QkvLayout::kBHLD;
  RopeParams p{};
  const int B = static_cast<int>(a.x.shape[0]);
  p.H = static_cast<int>(bhld ? a.x.shape[1] : a.x.shape[2]);
  p.L = static_cast<int>(bhld ? a.x.shape[2] : a.x.shape[1]);
  p.D = static_cast<int>(a.x.shape[3]);
  p.R = a.rotary_dim ? a.rotary_dim : p.D;
  p.x = a.x.data;
  p.out = a.out.data;
  p.dt = static_cast<int>(a.x.dtype);
  bhld_strides(a.x, a.layout, &p.x_sb, &p.x_sh, &p.x_sl, &p.x_sd);
  bhld_strides(a.out, a.layout, &p.o_sb, &p.o_sh, &p.o_sl, &p.o_sd);
  p.cos = a.cos.ptr<float>();
  p.sin = a.sin.ptr<float>();
  if (a.cos.strides[0] != a.sin.strides[0] || a.cos.strides[a.cos.rank - 1] != a.sin.strides[a.sin.rank - 1] ||
      (a.cos.rank == 3 && a.cos.strides[1] != a.sin.strides[1]))
    throw Error(Code::kShape, "rope: cos and sin tables must have the same strides");
  p.c_sp = a.cos.strides[0];
  p.c_sj = a.cos.strides[a.cos.rank - 1];
  p.c_sh = a.cos.rank == 3 ? a.cos.strides[1] : 0;
  p.P = a.cos.shape[0];
  if (!a.positions.empty()) {
    p.pos = a.positions.ptr<int32_t>();
    p.pos_sb = a.positions.rank == 2 ? a.positions.strides[0] : 0;
    p.pos_sl = a.positions.strides[a.positions.rank - 1];
  }
  p.interleaved = a.style == RopeStyle::kInterleaved;
  p.copy_rest = a.out.data != a.x.data;
  const int64_t total = int64_t(B) * p.H * p.L * (p.D - p.R / 2);
  if (total == 0) return;
  if (p.pos && p.P == 0)  // no row to clamp to (host positions fail validation here)
    throw Error(Code::kInvalidArgument, "rope: positions index a table with no rows");
  cudaStream_t s = stream_for(dev);
  rope_kernel<<<grid_for(total, 256), 256, 0, s>>>(p, total);
  TS_LAUNCHED("rope_kernel");
}

void run_kv_append(const KvAppendArgs& a) {
  validate_kv_append(a);
  const int dev = device_of(a.cache_k, "cache_k");
  require_same_device(a.cache_v, dev, "cache_v");
  require_same_device(a.k_new, dev, "k_new");
  require_same_device(a.v_new, dev, "v_new");
  const bool bhld = a.layout == QkvLayout::kBHLD;
  const int B = static_cast<int>(a.cache_k.shape[0]), H = static_cast<int>(a.cache_k.shape[1]);
  const int64_t Lmax = a.cache_k.shape[2];
  const int D = static_cast<int>(a.cache_k.shape[3]);
  const int Lnew = static_cast<int>(bhld ? a.k_new.shape[2] : a.k_new.shape[1]);
  std::vector<int32_t> start(B), count(B);
  for (int b = 0; b < B; ++b) {
    start[b] = a.lengths[b];
    count[b] = a.counts ? a.counts[b] : Lnew;
    if (count[b] < 0 || count[b] > Lnew || start[b] < 0 || int64_t(start[b]) + count[b] > Lmax)
      throw Error(Code::kShape, "kv_append: row " + std::to_string(b) + " would exceed the cache (length " +
                                    std::to_string(start[b]) + " + " + std::to_string(count[b]) + " > " +
                                    std::to_string(Lmax) + ")");
  }
  const int64_t total = int64_t(B) * H * Lnew * D;
  if (total > 0) {
    cudaStream_t s = stream_for(dev);
    Scratch scratch(s);
    const int* d_start = scratch.upload(start.data(), B);
    const int* d_count = scratch.upload(count.data(), B);
    const TensorView* src[2] = {&a.k_new, &a.v_new};
    const TensorView* dst[2] = {&a.cache_k, &a.cache_v};
    for (int i = 0; i < 2; ++i) {
      int64_t sb, sh, sl, sd;
      bhld_strides(*src[i], a.layout, &sb, &sh, &sl, &sd);
      const TensorView& c = *dst[i];
      kv_append_kernel<<<grid_for(total, 256), 256, 0, s>>>(
          src[i]->data, static_cast<int>(src[i]->dtype), sb, sh, sl, sd, c.data, static_cast<int>(c.dtype),
          c.strides[0], c.strides[1], c.strides[2], c.strides[3], d_start, d_count, H, Lnew, D, total);
      TS_LAUNCHED("kv_append_kernel");
    }
  }
  for (int b = 0; b < B; ++b) a.lengths[b] += count[b];
}

}  // namespace tessera::cuda
