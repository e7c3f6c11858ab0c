// attention() on CUDA: validation (shared with the CPU), the small host
// arrays moved to the device, the optional L2-normalisation pre-pass, and the
// choice between the tensor-core kernel and the SIMT kernel.
#include <vector>

#include "core/validate.h"
#include "cuda/attention_params.cuh"
#include "cuda/entry.cuh"

namespace tessera::cuda {
namespace {

// (b, h, l, d) element strides of a q/k/v/out view in either layout.
void strides_of(const TensorView& t, QkvLayout layout, int64_t* sb, int64_t* sh, int64_t* sl, int64_t* sd) {
  *sb = t.strides[0];
  *sd = t.strides[3];
  if (layout == QkvLayout::kBHLD) { *sh = t.strides[1]; *sl = t.strides[2]; }
  else { *sl = t.strides[1]; *sh = t.strides[2]; }
}

// VAR's l2norm: x / max(|x|, 1e-12) per (batch, head, position) row, written
// as a contiguous [B, H, L, D] copy in the input dtype. One warp per row.
__global__ void l2norm_rows_kernel(const void* x, int dt, int64_t sb, int64_t sh, int64_t sl, int64_t sd, int H,
                                   int L, int D, int64_t rows, void* y) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int l = row % L, h = (row / L) % H;
  const int64_t b = row / (int64_t(L) * H);
  const int64_t base = b * sb + h * sh + l * sl;
  float n2 = 0.f;
  for (int d = lane; d < D; d += 32) {
    const float v = load_as_float(x, dt, base + d * sd);
    n2 = fmaf(v, v, n2);
  }
  for (int o = 16; o; o >>= 1) n2 += __shfl_xor_sync(0xffffffffu, n2, o);
  const float inv = 1.f / fmaxf(sqrtf(n2), 1e-12f);
  for (int d = lane; d < D; d += 32) store_from_float(y, dt, row * D + d, load_as_float(x, dt, base + d * sd) * inv);
}

const void* l2norm_copy(Scratch& scratch, cudaStream_t s, const void* x, DType dt, int64_t* sb, int64_t* sh,
                        int64_t* sl, int64_t* sd, int B, int H, int L, int D) {
  const int64_t rows = int64_t(B) * H * L;
  void* y = scratch.alloc(size_t(rows) * D * dtype_size(dt));
  if (rows > 0) {
    l2norm_rows_kernel<<<ceil_div(rows * 32, 256), 256, 0, s>>>(x, static_cast<int>(dt), *sb, *sh, *sl, *sd, H, L, D,
                                                                rows, y);
    TS_LAUNCHED("l2norm_rows_kernel");
  }
  *sd = 1;
  *sl = D;
  *sh = int64_t(L) * D;
  *sb = int64_t(H) * L * D;
  return y;
}

}  // namespace

bool attention_mma_supported(const AttnParams& P) {
  if (P.q_dt != P.kv_dt || (P.q_dt != kDtBF16 && P.q_dt != kDtF16)) return false;
  if (P.D != 64 && P.D != 80 && P.D != 96 && P.D != 128) return false;
  // cp.async moves 16-byte chunks: rows contiguous along D and 16-byte aligned.
  auto aligned = [](const void* p, int64_t sb, int64_t sh, int64_t sl, int64_t sd) {
    return sd == 1 && reinterpret_cast<uintptr_t>(p) % 16 == 0 && sb % 8 == 0 && sh % 8 == 0 && sl % 8 == 0;
  };
  return aligned(P.q, P.q_sb, P.q_sh, P.q_sl, P.q_sd) && aligned(P.k, P.k_sb, P.k_sh, P.k_sl, P.k_sd) &&
         aligned(P.v, P.v_sb, P.v_sh, P.v_sl, P.v_sd);
}

void launch_attention_mma(const AttnParams& P, bool extra, int device, cudaStream_t s) {
  switch (P.D) {
    case 64: return launch_attention_mma_d<64>(P, extra, device, s);
    case 80: return launch_attention_mma_d<80>(P, extra, device, s);
    case 96: return launch_attention_mma_d<96>(P, extra, device, s);
    case 128: return launch_attention_mma_d<128>(P, extra, device, s);
  }
  throw Error(Code::kInternal, "no tensor-core attention kernel for this head dim");
}

void run_attention(const AttentionArgs& a) {
  validate_attention(a);
  const int dev = device_of(a.out, "attention out");
  require_same_device(a.q, dev, "q");
  require_same_device(a.k, dev, "k");
  require_same_device(a.v, dev, "v");
  require_same_device(a.lse, dev, "lse");
  require_same_device(a.q_segments, dev, "q_segments");
  require_same_device(a.k_segments, dev, "k_segments");
  require_same_device(a.additive, dev, "additive");
  const bool bhld = a.layout == QkvLayout::kBHLD;

  AttnParams P{};
  P.B = static_cast<int>(a.q.shape[0]);
  P.Hq = static_cast<int>(bhld ? a.q.shape[1] : a.q.shape[2]);
  P.Lq = static_cast<int>(bhld ? a.q.shape[2] : a.q.shape[1]);
  P.Hkv = static_cast<int>(bhld ? a.k.shape[1] : a.k.shape[2]);
  P.Lk = static_cast<int>(bhld ? a.k.shape[2] : a.k.shape[1]);
  P.D = static_cast<int>(a.q.shape[3]);
  if (P.B == 0 || P.Hq == 0 || P.Lq == 0 || P.D == 0) return;
  P.group = P.Hq / P.Hkv;
  P.q = a.q.data;
  P.k = a.k.data;
  P.v = a.v.data;
  P.out = a.out.data;
  P.q_dt = static_cast<int>(a.q.dtype);
  P.kv_dt = static_cast<int>(a.k.dtype);
  P.out_dt = static_cast<int>(a.out.dtype);
  strides_of(a.q, a.layout, &P.q_sb, &P.q_sh, &P.q_sl, &P.q_sd);
  strides_of(a.k, a.layout, &P.k_sb, &P.k_sh, &P.k_sl, &P.k_sd);
  strides_of(a.v, a.layout, &P.v_sb, &P.v_sh, &P.v_sl, &P.v_sd);
  strides_of(a.out, a.layout, &P.o_sb, &P.o_sh, &P.o_sl, &P.o_sd);
  if (!a.lse.empty()) {
    P.lse = a.lse.ptr<float>();
    P.lse_sb = a.lse.strides[0];
    P.lse_sh = a.lse.strides[1];
    P.lse_sl = a.lse.strides[2];
  }
  P.scale_log2 = a.scale * kLog2e;

  cudaStream_t s = stream_for(dev);
  Scratch scratch(s);
  if (a.head_multiplier) P.head_mult = scratch.upload(a.head_multiplier, P.Hq);
  if (!a.kv_lengths.empty()) {  // host [B] view, any stride (as the CPU reads it)
    std::vector<int32_t> kvl(P.B);
    for (int b = 0; b < P.B; ++b) kvl[b] = a.kv_lengths.ptr<const int32_t>()[b * a.kv_lengths.strides[0]];
    P.kv_len = scratch.upload(kvl.data(), kvl.size());
  }
  P.causal = (a.mask & kMaskCausal) ? 1 : 0;
  if ((a.mask & kMaskBlockCausal) && P.Lk > 0) {
    std::vector<int32_t> ends(P.Lk);
    int64_t pos = 0;
    for (int32_t bi = 0; bi < a.num_blocks; ++bi) {
      const int64_t end = pos + a.block_lengths[bi];
      for (; pos < end && pos < P.Lk; ++pos) ends[pos] = static_cast<int32_t>(end);
    }
    for (; pos < P.Lk; ++pos) ends[pos] = P.Lk;  // unreachable after validation (blocks sum to Lk)
    P.block_end = scratch.upload(ends.data(), ends.size());
  }
  if (a.mask & kMaskSegment) {
    P.qseg = a.q_segments.ptr<int32_t>();
    P.kseg = a.k_segments.ptr<int32_t>();
    P.qseg_sb = a.q_segments.strides[0];
    P.qseg_sl = a.q_segments.strides[1];
    P.kseg_sb = a.k_segments.strides[0];
    P.kseg_sl = a.k_segments.strides[1];
  }
  if (a.mask & kMaskAdditive) {
    const TensorView& m = a.additive;
    P.add = m.ptr<float>();
    const int r = m.rank;
    P.add_sq = m.strides[r - 2];
    P.add_sk = m.strides[r - 1];
    if (r == 4) {  // broadcast dims of size 1 read row 0
      P.add_sb = m.shape[0] == 1 ? 0 : m.strides[0];
      P.add_sh = m.shape[1] == 1 ? 0 : m.strides[1];
    }
  }
  if (a.l2norm_qk) {
    P.q = l2norm_copy(scratch, s, P.q, a.q.dtype, &P.q_sb, &P.q_sh, &P.q_sl, &P.q_sd, P.B, P.Hq, P.Lq, P.D);
    P.k = l2norm_copy(scratch, s, P.k, a.k.dtype, &P.k_sb, &P.k_sh, &P.k_sl, &P.k_sd, P.B, P.Hkv, P.Lk, P.D);
  }

  if (attention_mma_supported(P)) launch_attention_mma(P, P.qseg || P.add, dev, s);
  else launch_attention_simt(P, dev, s);
}

}  // namespace tessera::cuda
