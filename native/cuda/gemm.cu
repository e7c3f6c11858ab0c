// linear(), matmul() and weight packing on CUDA: validation shared with the
// CPU, then the tensor-core kernel where it applies, else the SIMT kernel.
#include "core/packed_weight.h"
#include "core/validate.h"
#include "cuda/entry.cuh"
#include "cuda/gemm_common.cuh"

namespace tessera::cuda {
namespace {

// A packed CUDA weight is a contiguous [N, K] device copy in the compute
// dtype (f32 or bf16): strides and dtype conversions are paid once, and the
// bf16 copy is 16-byte aligned so the tensor-core kernel always applies.
__global__ void convert_rows_kernel(const void* src, int src_dt, int64_t ld, void* dst, int dst_dt, int64_t N,
                                    int64_t K) {
  const int64_t total = N * K;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x)
    store_from_float(dst, dst_dt, t, load_as_float(src, src_dt, (t / K) * ld + t % K));
}

TensorView packed_view(const PackedWeight& p) {
  TensorView v = make_view(p.data, p.compute, {p.N, p.K}, p.device);
  return v;
}

}  // namespace

PackedWeight* run_pack_weight(const TensorView& w, DType compute) {
  const int dev = device_of(w, "weight");
  if (compute != DType::kF32 && compute != DType::kBF16)
    throw Error(Code::kDtype, "pack_weight: compute dtype must be float32 or bfloat16");
  if (!is_float_dtype(w.dtype)) throw Error(Code::kDtype, "pack_weight: weight must be a float tensor");
  cudaStream_t s = stream_for(dev);
  auto* p = new PackedWeight{};
  p->device = w.device;
  p->compute = compute;
  p->N = w.shape[0];
  p->K = w.shape[1];
  p->bytes = size_t(p->N) * p->K * dtype_size(compute);
  try {
    TS_CUDA(cudaMallocAsync(&p->data, p->bytes, s));
    const int64_t total = p->N * p->K;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + 255) / 256, 65536));
    convert_rows_kernel<<<blocks, 256, 0, s>>>(w.data, static_cast<int>(w.dtype), w.strides[0], p->data,
                                               static_cast<int>(compute), p->N, p->K);
    TS_LAUNCHED("convert_rows_kernel");
  } catch (...) {
    if (p->data) cudaFreeAsync(p->data, s);
    delete p;
    throw;
  }
  return p;
}

void run_free_packed_weight(PackedWeight* w) {
  if (!w) return;
  if (w->device.kind != DeviceKind::kCUDA) throw Error(Code::kDevice, "free_packed_weight: not a CUDA packed weight");
  cudaStream_t s = stream_for(w->device.index);
  void* data = w->data;
  delete w;
  if (data) TS_CUDA(cudaFreeAsync(data, s));
}

void run_linear(const LinearArgs& a) {
  validate_linear(a);
  const int dev = device_of(a.out, "linear out");
  require_same_device(a.x, dev, "x");
  require_same_device(a.bias, dev, "bias");
  require_same_device(a.residual, dev, "residual");
  require_same_device(a.gate, dev, "gate");
  TensorView w;
  if (a.packed) {
    if (a.packed->device.kind != DeviceKind::kCUDA || a.packed->device.index != dev)
      throw Error(Code::kDevice, "linear: the packed weight is not on this CUDA device");
    w = packed_view(*a.packed);
  } else {
    require_same_device(a.weight, dev, "weight");
    w = a.weight;
  }
  const int64_t M = a.x.shape[0], K = a.x.shape[1], N = w.shape[0];
  Epilogue e;
  e.bias = a.bias.empty() ? nullptr : a.bias.ptr<float>();
  e.act = static_cast<int>(a.act);
  if (!a.residual.empty()) {
    e.residual = a.residual.ptr<float>();
    e.r_sm = a.residual.strides[0];
  }
  if (!a.gate.empty()) {
    e.gate = a.gate.ptr<float>();
    e.g_sm = a.gate.strides[0];
    e.g_rows = M / a.gate.shape[0] > 0 ? M / a.gate.shape[0] : 1;
  }
  e.out = a.out.data;
  e.out_dt = static_cast<int>(a.out.dtype);
  e.o_sm = a.out.strides[0];
  e.o_sn = a.out.strides[1];
  cudaStream_t s = stream_for(dev);
  const MmaGemm mg{a.x.data, a.x.strides[0], w.data, w.strides[0], static_cast<int>(a.x.dtype), M, N, K};
  if (a.x.dtype == w.dtype && gemm_mma_supported(mg)) return launch_gemm_mma(mg, e, dev, s);
  const SimtGemm g{a.x.data, static_cast<int>(a.x.dtype), a.x.strides[0], a.x.strides[1],
                   w.data,   static_cast<int>(w.dtype),   w.strides[1],    w.strides[0],
                   M,        N,                           K};
  launch_gemm_simt(g, e, s);
}

void run_matmul(const MatmulArgs& a) {
  validate_matmul(a);
  const int dev = device_of(a.c, "matmul c");
  require_same_device(a.a, dev, "a");
  require_same_device(a.b, dev, "b");
  SimtGemm g{};
  g.a = a.a.data;
  g.a_dt = static_cast<int>(a.a.dtype);
  g.a_sm = a.trans_a ? a.a.strides[1] : a.a.strides[0];
  g.a_sk = a.trans_a ? a.a.strides[0] : a.a.strides[1];
  g.b = a.b.data;
  g.b_dt = static_cast<int>(a.b.dtype);
  g.b_sk = a.trans_b ? a.b.strides[1] : a.b.strides[0];
  g.b_sn = a.trans_b ? a.b.strides[0] : a.b.strides[1];
  g.M = a.c.shape[0];
  g.N = a.c.shape[1];
  g.K = a.trans_a ? a.a.shape[0] : a.a.shape[1];
  Epilogue e;
  e.alpha = a.alpha;
  e.beta = a.beta;
  e.out = a.c.data;
  e.out_dt = static_cast<int>(a.c.dtype);
  e.o_sm = a.c.strides[0];
  e.o_sn = a.c.strides[1];
  launch_gemm_simt(g, e, stream_for(dev));
}

}  // namespace tessera::cuda
