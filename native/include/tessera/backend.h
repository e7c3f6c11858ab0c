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
#include "tessera/octree.h"
#include "tessera/splat.h"
#include "tessera/status.h"

namespace tessera {

// 3: LinearArgs gained `gate` (an older library would ignore it).
constexpr uint32_t kCudaAbiVersion = 3;

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

// Octree construction on a CUDA device (native/cuda/octree_build.cu): the
// same tree as octree_build() on the CPU (tessera/octree.h), every array in
// device memory of `device`. Inputs are device pointers, contiguous.
struct CudaOctreeBuildArgs {
  int32_t device = 0;
  const float* points = nullptr;     // [n, 3]
  const float* normals = nullptr;    // [n, 3] or null
  const float* features = nullptr;   // [n, feature_channels] or null
  int32_t feature_channels = 0;
  const int32_t* batch_ids = nullptr;  // [n] in [0, batch_size), or null (all 0)
  int64_t n = 0;
  int32_t depth = 6, full_depth = 2, batch_size = 1;
  int32_t outside = 0;             // OctreeOutside: 0 drop (counted), 1 error
  int32_t neighbors = 0;           // 1: also the 27-slot table of every depth
};
struct CudaOctreeLevel {
  int64_t* keys = nullptr;         // [nnum] device, ocnn keys (batch << 48 | key), sorted
  int32_t* children = nullptr;     // [nnum] device, rank among non-empty nodes or -1
  int32_t* neighbors = nullptr;    // [nnum, 27] device (slot 9(dx+1)+3(dy+1)+(dz+1)) or null
  int64_t* batch_nnum = nullptr;         // [batch_size] device
  int64_t* batch_nnum_nempty = nullptr;  // [batch_size] device
  int64_t nnum = 0, nnum_nempty = 0;
};
struct CudaOctree {
  int32_t device = 0, depth = 0, full_depth = 0, batch_size = 1, feature_channels = 0;
  CudaOctreeLevel levels[kOctreeMaxDepth + 1];
  float* points = nullptr;    // [nnum_nempty(D), 3] device, mean point in cell units
  float* normals = nullptr;   // [nnum_nempty(D), 3] device or null
  float* features = nullptr;  // [nnum_nempty(D), feature_channels] device or null
  int32_t* point_node = nullptr;          // [n] device: depth-D non-empty node of each point, -1 if dropped
  int64_t* outside_per_sample = nullptr;  // [batch_size] device
  int64_t points_used = 0, points_outside = 0;
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
  // 3DGS rasterizer (tessera/splat.h) on CUDA tensors of one device; the same
  // validation and semantics as the CPU. The backward sums the per-Gaussian
  // screen-space gradients with float atomics (not bitwise deterministic).
  int (*splat_render)(const SplatRenderArgs* args, ErrBuf* err);
  int (*splat_backward)(const SplatBackwardArgs* args, ErrBuf* err);
  // Octree construction; *out is freed with octree_free.
  int (*octree_build)(const CudaOctreeBuildArgs* args, CudaOctree** out, ErrBuf* err);
  int (*octree_free)(CudaOctree* tree, ErrBuf* err);
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
