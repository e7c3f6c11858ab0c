// Backends. The CPU backend is always linked in; the CUDA backend is a
// separately built shared library (libtessera_cuda.so) that is dlopen'd on
// first use, so the addon loads on machines with no GPU and no driver.
// The library exports one C function returning a table of entry points
// (ggml's backend-table idea); every entry returns a Code and fills `err`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/attention.h"
#include "tessera/gemm.h"
#include "tessera/status.h"

namespace tessera {

constexpr uint32_t kCudaAbiVersion = 1;

struct CudaDeviceProps {
  char name[256];
  uint64_t total_memory;
  uint64_t free_memory;
  int32_t cc_major, cc_minor;
  int32_t multiprocessors;
  int32_t driver_version;   // e.g. 13000
  int32_t runtime_version;  // e.g. 13000
};

struct ErrBuf {
  char msg[512];
};

struct CudaApi {
  uint32_t abi_version;
  const char* build_info;  // archs and nvcc version the library was built with
  int (*device_count)(int32_t* count, ErrBuf* err);
  int (*device_props)(int32_t device, CudaDeviceProps* props, ErrBuf* err);
  // Pooled device memory (stream-ordered allocator with a retained pool).
  int (*alloc)(int32_t device, size_t bytes, void** ptr, ErrBuf* err);
  int (*release)(int32_t device, void* ptr, ErrBuf* err);
  // kind: 0 host→device, 1 device→host, 2 device→device. Synchronous.
  int (*copy)(int32_t device, void* dst, const void* src, size_t bytes, int32_t kind, ErrBuf* err);
  int (*synchronize)(int32_t device, ErrBuf* err);
  int (*linear)(const LinearArgs* args, ErrBuf* err);
  int (*matmul)(const MatmulArgs* args, ErrBuf* err);
  int (*attention)(const AttentionArgs* args, ErrBuf* err);
  int (*rope_apply)(const RopeArgs* args, ErrBuf* err);
  int (*kv_append)(const KvAppendArgs* args, ErrBuf* err);
  int (*pack_weight)(const TensorView* weight, int32_t compute_dtype, PackedWeight** out, ErrBuf* err);
  int (*free_packed_weight)(PackedWeight* w, ErrBuf* err);
};

extern "C" typedef const CudaApi* (*CudaApiGetter)();
#define TESSERA_CUDA_API_SYMBOL "tessera_cuda_api"

// Directory the addon was loaded from (the bindings set it); the CUDA library
// is looked for there, or at $TESSERA_CUDA_LIB.
void set_module_dir(const std::string& dir);

struct BackendStatus {
  bool cuda_built = false;      // a CUDA library was found next to the addon
  bool cuda_loaded = false;     // it loaded and its ABI matches
  int32_t cuda_devices = 0;     // devices it reports (0 with no driver/GPU)
  std::string cuda_library;     // path tried
  std::string cuda_error;       // why CUDA is unavailable, if it is
  std::string cuda_build_info;
};

// Loads the CUDA backend once (thread-safe) and reports what it found.
const BackendStatus& backend_status();
// The CUDA table, or throws Error(kDevice) saying why CUDA is unavailable.
const CudaApi& cuda_api();
// Throws a tessera::Error built from a failed CUDA entry point.
void throw_cuda_error(int code, const ErrBuf& err);

}  // namespace tessera
