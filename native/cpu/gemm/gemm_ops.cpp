// CPU entry points of the GEMM family (arguments already validated):
// choose the compute dtype and ISA, pack, and run the driver, the small-M
// weight-streaming kernel (SmallMArgs in gemm_kernels.h) or the GEMV.
#include <algorithm>

#include "core/packed_weight.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm/gemm_driver.h"
#include "cpu/gemm/gemm_pack.h"
#include "cpu/gemm/gemm_stream.h"
#include "tessera/pool.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
using namespace gemm;

namespace {

constexpr int kRunsPerThread = 4;

Src rows_of(const TensorView& t) { return Src{t.data, t.dtype, t.strides[0], 1}; }

// Small M with an unpacked weight: packing W would cost more than reading it
// once, so each weight row is dotted with the (≤ 4) input rows directly.
void linear_gemv(const LinearArgs& a, const IsaKernels& ker, DType round, const Epilogue& epi) {
  const int M = static_cast<int>(a.x.shape[0]);
  const int64_t K = a.x.shape[1], N = a.out.shape[1];
  GemvArgs g{M, K, a.x.ptr<float>(), a.x.strides[0], a.weight.data, a.weight.strides[0], a.weight.dtype, epi};
  const bool convert = a.x.dtype != DType::kF32 || round != DType::kF32;
  PooledBuffer xf(convert ? sizeof(float) * M * K : 0);
  if (convert) {  // A panels one row high are exactly x row-major in f32
    pack_a_all(rows_of(a.x), M, K, 1, DType::kF32, round, xf.p);
    g.x = static_cast<const float*>(xf.p);
    g.x_ld = K;
  }
  const int64_t chunks = (N + kGemvChunk - 1) / kGemvChunk;
  ThreadPool::global().parallel_for(chunks, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t c = b; c < e; ++c) ker.gemv(g, c * kGemvChunk, std::min(N, (c + 1) * kGemvChunk));
  });
}

Epilogue epilogue_of(const LinearArgs& a) {
  Epilogue epi;
  epi.bias = a.bias.empty() ? nullptr : a.bias.ptr<float>();
  epi.residual = a.residual.empty() ? nullptr : a.residual.ptr<float>();
  epi.res_ld = a.residual.empty() ? 0 : a.residual.strides[0];
  if (!a.gate.empty()) {
    epi.gate = a.gate.ptr<float>();
    epi.gate_ld = a.gate.strides[0];
    epi.gate_rows = std::max<int64_t>(1, a.x.shape[0] / a.gate.shape[0]);
  }
  epi.out = a.out.data;
  epi.out_ld = a.out.strides[0];
  epi.out_dtype = a.out.dtype;
  epi.act = a.act;
  return epi;
}

// Small M streams B with fp32 FMAs in k order, bit-identical per row to
// the packed f32 kernels, so the switch at small_m_max_f32 keeps rows
// batch-invariant. bf16 B takes it only where the bf16 products also run
// as fp32 FMAs; with a bf16 dot product (vdpbf16ps pairs k, its own
// rounding) the packed path reads the bf16 panels as they are.
bool takes_small_m(int64_t M, DType b_format, const IsaKernels& ker) {
  const bool dot_bf16 = ker.bf16 != nullptr;
  return M <= (b_format == DType::kBF16 ? (dot_bf16 ? 0 : kSmallMaxM) : ker.small_m_max_f32);
}

// x as the small-M kernel reads it: f32 rounded to the compute dtype.
bool small_m_converts(const LinearArgs& a, DType round) { return a.x.dtype != DType::kF32 || round != DType::kF32; }

void plan_small_m(const LinearArgs& a, const IsaKernels& ker, DType round, const void* b, DType b_format,
                  const Epilogue& epi, float* xbuf, StreamLinear& p) {
  const int64_t M = a.x.shape[0], K = a.x.shape[1], N = a.out.shape[1];
  p.s = SmallMArgs{M, N, K, a.x.ptr<float>(), a.x.strides[0], b, b_format, epi};
  p.run = ker.small_m;
  p.panels = (N + kNR - 1) / kNR;
  p.panel_bytes = static_cast<int64_t>(sizeof(uint32_t)) * (b_format == DType::kBF16 ? (K + 1) / 2 : K) * kNR;
  if (small_m_converts(a, round)) {
    if (a.x.dtype == DType::kF32 && ker.round_bf16) {
      for (int64_t m = 0; m < M; ++m) ker.round_bf16(a.x.ptr<float>() + m * a.x.strides[0], K, xbuf + m * K);
    } else {  // A panels one row high are exactly x row-major in f32
      pack_a_all(rows_of(a.x), M, K, 1, DType::kF32, round, xbuf);
    }
    p.s.x = xbuf;
    p.s.x_ld = K;
  }
}

// Small M over packed B (gemm_kernels.h SmallMArgs): the pool's threads claim
// contiguous runs of panels, each streamed front to back; four runs per
// thread let a thread that was descheduled on a shared machine hand its work
// on instead of stalling the call. x is used in place when it is already f32.
void linear_small_m(const LinearArgs& a, const IsaKernels& ker, DType round, const void* b, DType b_format,
                    const Epilogue& epi) {
  PooledBuffer xf(small_m_converts(a, round) ? sizeof(float) * a.x.shape[0] * a.x.shape[1] : 0);
  StreamLinear p;
  plan_small_m(a, ker, round, b, b_format, epi, static_cast<float*>(xf.p), p);
  const int64_t panels = p.panels;
  const int64_t runs = std::min<int64_t>(panels, kRunsPerThread * ThreadPool::global().num_threads());
  ThreadPool::global().parallel_for(runs, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) stream_linear_run(p, r * panels / runs, (r + 1) * panels / runs);
  });
}

}  // namespace

int64_t stream_linear_scratch(const LinearArgs& a) {
  const DType round = a.packed ? a.packed->compute : DType::kF32;
  return small_m_converts(a, round) ? static_cast<int64_t>(sizeof(float)) * a.x.shape[0] * a.x.shape[1] : 0;
}

bool stream_linear_supported(const PackedWeight* w, int64_t M) {
  return w != nullptr && w->device.kind == DeviceKind::kCPU && takes_small_m(M, w->compute, kernels_for(active_isa()));
}

bool stream_linear_plan(const LinearArgs& a, StreamLinear& p, float* xbuf) {
  if (!stream_linear_supported(a.packed, a.x.shape[0])) return false;
  const IsaKernels& ker = kernels_for(active_isa());
  const DType compute = a.packed->compute;
  plan_small_m(a, ker, compute, a.packed->data, compute, epilogue_of(a), xbuf, p);
  return true;
}

void linear(const LinearArgs& a) {
  const int64_t M = a.x.shape[0], K = a.x.shape[1], N = a.out.shape[1];
  const Epilogue epi = epilogue_of(a);
  const DType compute = a.packed ? a.packed->compute
                                 : (a.x.dtype != DType::kF32 || a.weight.dtype != DType::kF32 ? DType::kBF16
                                                                                               : DType::kF32);
  const IsaKernels& ker = kernels_for(active_isa());
  const bool dot_bf16 = compute == DType::kBF16 && ker.bf16 != nullptr;
  // Without a bf16 dot product the bf16 path rounds its inputs to bf16 and
  // runs the fp32 kernel: same inputs, same fp32 accumulation, slower.
  const DType round = compute;

  if (!a.packed && M <= kGemvMaxM) return linear_gemv(a, ker, round, epi);

  GemmJob job{&ker, M, N, K, nullptr, DType::kF32, nullptr, DType::kF32, epi};
  PooledBuffer bbuf(a.packed ? 0 : packed_b_bytes(N, K, dot_bf16 ? DType::kBF16 : DType::kF32));
  if (a.packed) {
    job.b = a.packed->data;
    job.b_format = a.packed->compute;
  } else {
    job.b_format = dot_bf16 ? DType::kBF16 : DType::kF32;
    pack_b_all(rows_of(a.weight), N, K, job.b_format, round, bbuf.p);
    job.b = bbuf.p;
  }
  if (takes_small_m(M, job.b_format, ker)) return linear_small_m(a, ker, round, job.b, job.b_format, epi);
  job.a_format = dot_bf16 && job.b_format == DType::kBF16 ? DType::kBF16 : DType::kF32;
  PooledBuffer abuf(packed_a_bytes(M, K, ker.mr, job.a_format));
  if (job.a_format == DType::kF32 && round == DType::kF32)
    pack_a_f32_for(ker, rows_of(a.x), M, K, abuf.p);
  else
    pack_a_all(rows_of(a.x), M, K, ker.mr, job.a_format, round, abuf.p);
  job.a = abuf.p;
  run_gemm(job);
}

void matmul(const MatmulArgs& a) {
  const int64_t M = a.c.shape[0], N = a.c.shape[1];
  const int64_t K = a.trans_a ? a.a.shape[0] : a.a.shape[1];
  const IsaKernels& ker = kernels_for(active_isa());
  Epilogue epi;
  epi.out = a.c.data;
  epi.out_ld = a.c.strides[0];
  epi.alpha = a.alpha;
  epi.beta = a.beta;
  if (a.beta != 0.f) {  // beta = 0 never reads C (it may hold NaN), as in BLAS
    epi.residual = a.c.ptr<float>();
    epi.res_ld = a.c.strides[0];
  }
  // op(A) element (m, k) and op(B)ᵀ element (n, k) as strided sources.
  const int64_t lda = a.a.strides[0], ldb = a.b.strides[0];
  const Src sa{a.a.data, DType::kF32, a.trans_a ? 1 : lda, a.trans_a ? lda : 1};
  const Src sb{a.b.data, DType::kF32, a.trans_b ? ldb : 1, a.trans_b ? 1 : ldb};
  PooledBuffer bbuf(packed_b_bytes(N, K, DType::kF32));
  pack_b_all(sb, N, K, DType::kF32, DType::kF32, bbuf.p);
  PooledBuffer abuf(packed_a_bytes(M, K, ker.mr, DType::kF32));
  pack_a_f32_for(ker, sa, M, K, abuf.p);
  run_gemm(GemmJob{&ker, M, N, K, abuf.p, DType::kF32, bbuf.p, DType::kF32, epi});
}

PackedWeight* pack_weight(const TensorView& w, DType compute) {
  auto* p = new PackedWeight;
  p->device = w.device;
  p->compute = compute;
  p->N = w.shape[0];
  p->K = w.shape[1];
  p->bytes = packed_b_bytes(p->N, p->K, compute);
  try {
    p->data = host_acquire(p->bytes);
    pack_b_all(rows_of(w), p->N, p->K, compute, compute, p->data);
  } catch (...) {
    host_release(p->data);
    delete p;
    throw;
  }
  return p;
}

void free_packed_weight(PackedWeight* w) {
  if (!w) return;
  host_release(w->data);
  delete w;
}

size_t packed_weight_bytes(const PackedWeight* w) { return w ? w->bytes : 0; }

}  // namespace tessera::cpu
