// The table the addon gets from dlsym("tessera_cuda_api"): device queries,
// pooled memory, copies, and the ops. Every entry is wrapped by guarded().
#include "cuda/entry.cuh"

namespace tessera::cuda {
namespace {

#define TS_STR2(...) #__VA_ARGS__
#define TS_STR(...) TS_STR2(__VA_ARGS__)
#ifdef __CUDA_ARCH_LIST__
#define TS_ARCHS TS_STR(__CUDA_ARCH_LIST__)
#else
#define TS_ARCHS "unknown"
#endif
constexpr const char* kBuildInfo = "tessera_cuda: nvcc " TS_STR(__CUDACC_VER_MAJOR__) "." TS_STR(
    __CUDACC_VER_MINOR__) ", archs " TS_ARCHS ", static cudart, no cuBLAS";

int device_count(int32_t* count, ErrBuf* err) {
  return guarded(err, [&] {
    *count = 0;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    cudaGetLastError();  // do not leave the error sticky for later calls
    if (e == cudaErrorNoDevice) return;  // a driver but no GPU: zero, not an error
    if (e == cudaErrorInsufficientDriver) {
      int drv = 0;
      cudaDriverGetVersion(&drv);
      if (drv == 0)
        throw Error(Code::kDevice,
                    "no NVIDIA driver found (libcuda.so.1 could not be loaded); install the NVIDIA driver to use CUDA");
      throw Error(Code::kDevice, "the NVIDIA driver (CUDA " + std::to_string(drv / 1000) + "." +
                                     std::to_string(drv % 1000 / 10) +
                                     ") is older than the CUDA runtime this library was built with (" +
                                     TS_STR(__CUDACC_VER_MAJOR__) "." TS_STR(__CUDACC_VER_MINOR__) ")");
    }
    throw_on_error(e, "cudaGetDeviceCount");
    *count = n;
  });
}

int device_props(int32_t device, CudaDeviceProps* props, ErrBuf* err) {
  return guarded(err, [&] {
    std::memset(props, 0, sizeof(*props));
    stream_for(device);  // validates the index, makes it current
    cudaDeviceProp p;
    TS_CUDA(cudaGetDeviceProperties(&p, device));
    std::snprintf(props->name, sizeof(props->name), "%s", p.name);
    size_t free_b = 0, total_b = 0;
    TS_CUDA(cudaMemGetInfo(&free_b, &total_b));
    props->total_memory = total_b;
    props->free_memory = free_b;
    props->cc_major = p.major;
    props->cc_minor = p.minor;
    props->multiprocessors = p.multiProcessorCount;
    TS_CUDA(cudaDriverGetVersion(&props->driver_version));
    TS_CUDA(cudaRuntimeGetVersion(&props->runtime_version));
  });
}

int alloc(int32_t device, size_t bytes, void** ptr, ErrBuf* err) {
  return guarded(err, [&] {
    *ptr = nullptr;
    cudaStream_t s = stream_for(device);
    void* p = nullptr;
    const cudaError_t e = cudaMallocAsync(&p, bytes ? bytes : 1, s);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw Error(Code::kOutOfMemory, "CUDA device " + std::to_string(device) + " is out of memory (asked for " +
                                          std::to_string(bytes) + " bytes)");
    }
    throw_on_error(e, "cudaMallocAsync");
    *ptr = p;
  });
}

int release(int32_t device, void* ptr, ErrBuf* err) {
  return guarded(err, [&] {
    if (!ptr) return;
    TS_CUDA(cudaFreeAsync(ptr, stream_for(device)));
  });
}

int copy(int32_t device, void* dst, const void* src, size_t bytes, int32_t kind, ErrBuf* err) {
  return guarded(err, [&] {
    if (kind < 0 || kind > 2) throw Error(Code::kInvalidArgument, "copy kind must be 0, 1 or 2");
    if (bytes == 0) return;
    if (!dst || !src) throw Error(Code::kInvalidArgument, "copy with a null pointer");
    cudaStream_t s = stream_for(device);
    const cudaMemcpyKind k = kind == 0 ? cudaMemcpyHostToDevice
                             : kind == 1 ? cudaMemcpyDeviceToHost
                                         : cudaMemcpyDeviceToDevice;
    TS_CUDA(cudaMemcpyAsync(dst, src, bytes, k, s));
    TS_CUDA(cudaStreamSynchronize(s));
  });
}

int synchronize(int32_t device, ErrBuf* err) {
  return guarded(err, [&] { TS_CUDA(cudaStreamSynchronize(stream_for(device))); });
}

int linear(const LinearArgs* a, ErrBuf* err) { return guarded(err, [&] { run_linear(*a); }); }
int matmul(const MatmulArgs* a, ErrBuf* err) { return guarded(err, [&] { run_matmul(*a); }); }
int attention(const AttentionArgs* a, ErrBuf* err) { return guarded(err, [&] { run_attention(*a); }); }
int rope_apply(const RopeArgs* a, ErrBuf* err) { return guarded(err, [&] { run_rope(*a); }); }
int kv_append(const KvAppendArgs* a, ErrBuf* err) { return guarded(err, [&] { run_kv_append(*a); }); }

int pack_weight(const TensorView* w, int32_t compute, PackedWeight** out, ErrBuf* err) {
  return guarded(err, [&] { *out = run_pack_weight(*w, static_cast<DType>(compute)); });
}
int free_packed_weight(PackedWeight* w, ErrBuf* err) { return guarded(err, [&] { run_free_packed_weight(w); }); }

}  // namespace
// splat_raster.cu, octree_build.cu
void run_splat_render(const SplatRenderArgs& a);
void run_splat_backward(const SplatBackwardArgs& a);
CudaOctree* run_octree_build(const CudaOctreeBuildArgs& a);
void run_octree_free(CudaOctree* t);
namespace {

int splat_render(const SplatRenderArgs* a, ErrBuf* err) { return guarded(err, [&] { run_splat_render(*a); }); }
int splat_backward(const SplatBackwardArgs* a, ErrBuf* err) { return guarded(err, [&] { run_splat_backward(*a); }); }
int octree_build(const CudaOctreeBuildArgs* a, CudaOctree** out, ErrBuf* err) {
  return guarded(err, [&] {
    *out = nullptr;
    *out = run_octree_build(*a);
  });
}
int octree_free(CudaOctree* t, ErrBuf* err) { return guarded(err, [&] { run_octree_free(t); }); }

const CudaApi kApi = {
    kCudaAbiVersion, kBuildInfo, device_count, device_props, alloc,    release,    copy,         synchronize,
    linear,          matmul,     attention,    rope_apply,   kv_append, pack_weight, free_packed_weight,
    splat_render,    splat_backward, octree_build, octree_free,
};

}  // namespace
}  // namespace tessera::cuda

extern "C" __attribute__((visibility("default"))) const tessera::CudaApi* tessera_cuda_api() {
  return &tessera::cuda::kApi;
}
