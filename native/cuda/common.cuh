// Shared pieces of the CUDA backend: error handling (every CUDA failure
// becomes a tessera::Error, never exit()), the per-device stream and pool,
// scratch buffers for small host arrays, and dtype load/store helpers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "tessera/backend.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

namespace tessera::cuda {

// Throws Error(kBackend) — or kOutOfMemory for allocation failures — naming
// the call that failed; the entry points turn it into a Code + ErrBuf.
void throw_on_error(cudaError_t e, const char* what);
#define TS_CUDA(call) ::tessera::cuda::throw_on_error((call), #call)
// After every launch: launch-configuration errors surface here.
#define TS_LAUNCHED(name) ::tessera::cuda::throw_on_error(cudaGetLastError(), name)

// Makes `device` current on this thread and returns its stream. Every op on a
// device runs on this one stream (non-blocking), so alloc → op → free stay
// ordered without host synchronisation.
cudaStream_t stream_for(int32_t device);

// The device a set of views lives on; throws kDevice if one is not on CUDA.
int32_t device_of(const TensorView& t, const char* name);
void require_same_device(const TensorView& t, int32_t dev, const char* name);

// Stream-ordered scratch memory for one call (freed in stream order when it
// goes out of scope, so the kernel that uses it finishes first).
class Scratch {
 public:
  Scratch(cudaStream_t s) : stream_(s) {}
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* alloc(size_t bytes);
  // Copies a small host array to the device (pageable copy: staged before return).
  template <class T> T* upload(const T* host, size_t n) {
    T* d = static_cast<T*>(alloc(n * sizeof(T)));
    TS_CUDA(cudaMemcpyAsync(d, host, n * sizeof(T), cudaMemcpyHostToDevice, stream_));
    return d;
  }
 private:
  cudaStream_t stream_;
  void* ptrs_[16] = {};
  int n_ = 0;
};

// Maximum dynamic shared memory a block may use on `device` (opt-in limit).
int max_smem_optin(int32_t device);
int multiprocessors(int32_t device);

// dtype codes used on the device side (values of tessera::DType).
enum : int { kDtF32 = 0, kDtF16 = 1, kDtBF16 = 2 };

__device__ __forceinline__ float load_as_float(const void* p, int dt, int64_t i) {
  if (dt == kDtF32) return static_cast<const float*>(p)[i];
  if (dt == kDtBF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  return __half2float(static_cast<const __half*>(p)[i]);
}

__device__ __forceinline__ void store_from_float(void* p, int dt, int64_t i, float v) {
  if (dt == kDtF32) static_cast<float*>(p)[i] = v;
  else if (dt == kDtBF16) static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  else static_cast<__half*>(p)[i] = __float2half_rn(v);
}

inline bool is_float_dtype(DType t) { return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16; }

inline unsigned ceil_div(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

// FlashAttention's BOOL_SWITCH idea: turn a runtime flag into a constexpr
// template argument for the body.
#define TS_BOOL_SWITCH(cond, NAME, ...)       \
  [&] {                                        \
    if (cond) {                                \
      constexpr bool NAME = true;              \
      return __VA_ARGS__();                    \
    } else {                                   \
      constexpr bool NAME = false;             \
      return __VA_ARGS__();                    \
    }                                          \
  }()

}  // namespace tessera::cuda
