#include "tessera/backend.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

namespace tessera {
namespace {
std::mutex g_mu;
std::string g_module_dir;
BackendStatus g_status;
const CudaApi* g_api = nullptr;
bool g_tried = false;

void try_load() {
  g_tried = true;
  std::string path;
  if (const char* e = std::getenv("TESSERA_CUDA_LIB"); e && *e) {
    path = e;
  } else if (!g_module_dir.empty()) {
    path = g_module_dir + "/libtessera_cuda.so";
  } else {
    path = "libtessera_cuda.so";
  }
  g_status.cuda_library = path;
  if (const char* b = std::getenv("TESSERA_BACKEND"); b && std::string(b) == "cpu") {
    g_status.cuda_error = "disabled by TESSERA_BACKEND=cpu";
    return;
  }
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* why = dlerror();
    g_status.cuda_error = std::string("CUDA backend not loaded: ") + (why ? why : "dlopen failed");
    return;
  }
  g_status.cuda_built = true;
  auto getter = reinterpret_cast<CudaApiGetter>(dlsym(h, TESSERA_CUDA_API_SYMBOL));
  if (!getter) {
    g_status.cuda_error = "CUDA library has no " TESSERA_CUDA_API_SYMBOL " entry point";
    return;
  }
  const CudaApi* api = getter();
  if (!api || api->abi_version != kCudaAbiVersion) {
    g_status.cuda_error = "CUDA library ABI version mismatch (rebuild with `npx tessera build --cuda`)";
    return;
  }
  g_status.cuda_build_info = api->build_info ? api->build_info : "";
  ErrBuf err{};
  int32_t count = 0;
  if (api->device_count(&count, &err) != 0) {
    g_status.cuda_error = std::string("CUDA library loaded but no usable device: ") + err.msg;
    g_status.cuda_loaded = true;
    g_api = api;
    return;
  }
  g_status.cuda_loaded = true;
  g_status.cuda_devices = count;
  if (count == 0) g_status.cuda_error = "CUDA library loaded but no CUDA device is present";
  g_api = api;
}
}  // namespace

void set_module_dir(const std::string& dir) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_module_dir = dir;
}

const BackendStatus& backend_status() {
  std::lock_guard<std::mutex> lk(g_mu);
  if (!g_tried) try_load();
  return g_status;
}

const CudaApi& cuda_api() {
  const BackendStatus& s = backend_status();
  if (!g_api || s.cuda_devices == 0)
    throw Error(Code::kDevice, s.cuda_error.empty() ? "CUDA backend unavailable" : s.cuda_error);
  return *g_api;
}

void throw_cuda_error(int code, const ErrBuf& err) {
  Code c = (code > 0 && code <= static_cast<int>(Code::kBackend)) ? static_cast<Code>(code) : Code::kBackend;
  throw Error(c, err.msg[0] ? err.msg : "CUDA backend error");
}

}  // namespace tessera
