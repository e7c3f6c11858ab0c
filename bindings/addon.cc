// Addon entry point: module registration, and the small synchronous queries
// (CPU features, ISA, thread pool, backends) that `tessera info` shows.
#include <dlfcn.h>

#include <string>

#include "common.h"
#include "tessera/backend.h"
#include "tessera/cpu.h"
#include "tessera/threadpool.h"

namespace tessera::bindings {
namespace {

// The directory holding this .node file, so the CUDA library beside it is found.
std::string addon_dir() {
  Dl_info dl{};
  if (dladdr(reinterpret_cast<void*>(&addon_dir), &dl) == 0 || !dl.dli_fname) return "";
  std::string path = dl.dli_fname;
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

Napi::Value set_error_class(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction())
    throw_error(info.Env(), Code::kInvalidArgument, "setErrorClass expects a constructor");
  addon_data(info.Env()).error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value cpu_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuFeatures& f = cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("brand", f.brand);
  o.Set("logicalCpus", f.logical_cpus);
  o.Set("physicalCores", f.physical_cores);
  Napi::Object feats = Napi::Object::New(env);
  feats.Set("sse42", f.sse42);
  feats.Set("avx", f.avx);
  feats.Set("avx2", f.avx2);
  feats.Set("fma", f.fma);
  feats.Set("f16c", f.f16c);
  feats.Set("avx512f", f.avx512f);
  feats.Set("avx512bw", f.avx512bw);
  feats.Set("avx512vl", f.avx512vl);
  feats.Set("avx512dq", f.avx512dq);
  feats.Set("avx512_bf16", f.avx512_bf16);
  feats.Set("avx512_vnni", f.avx512_vnni);
  o.Set("features", feats);
  o.Set("isa", isa_name(active_isa()));
  return o;
}

Isa parse_isa(Napi::Env env, const Napi::Value& v) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16})
    if (s == isa_name(isa)) return isa;
  throw_error(env, Code::kInvalidArgument, "isa must be one of scalar, avx2, avx512, avx512bf16");
}

// setIsa(name | null): overrides the kernel ISA (capped by the hardware); null clears.
Napi::Value set_isa(const Napi::CallbackInfo& info) {
  if (info[0].IsNull() || info[0].IsUndefined()) {
    clear_isa_override();
  } else {
    set_isa_override(parse_isa(info.Env(), info[0]));
  }
  return Napi::String::New(info.Env(), isa_name(active_isa()));
}

Napi::Value get_threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ThreadPool::global().num_threads());
}

Napi::Value set_threads(const Napi::CallbackInfo& info) {
  const int n = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  if (n < 1 || n > 1024) throw_error(info.Env(), Code::kInvalidArgument, "thread count must be in 1..1024");
  ThreadPool::global().resize(n);
  return Napi::Number::New(info.Env(), ThreadPool::global().num_threads());
}

Napi::Value backend_status_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const BackendStatus& s = backend_status();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cudaBuilt", s.cuda_built);
  o.Set("cudaLoaded", s.cuda_loaded);
  o.Set("cudaDevices", s.cuda_devices);
  o.Set("cudaLibrary", s.cuda_library);
  o.Set("cudaError", s.cuda_error);
  o.Set("cudaBuildInfo", s.cuda_build_info);
#ifdef TESSERA_BUILT_WITH_CUDA
  o.Set("compiledWithCuda", true);
#else
  o.Set("compiledWithCuda", false);
#endif
  return o;
}

// cudaDevice(index) -> {name, totalMemory, freeMemory, computeCapability, ...}
Napi::Value cuda_device_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t index = info[0].As<Napi::Number>().Int32Value();
  CudaDeviceProps p{};
  guarded(env, [&] {
    ErrBuf err{};
    const int rc = cuda_api().device_props(index, &p, &err);
    if (rc != 0) throw_cuda_error(rc, err);
  });
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", std::string(p.name));
  o.Set("totalMemory", static_cast<double>(p.total_memory));
  o.Set("freeMemory", static_cast<double>(p.free_memory));
  o.Set("computeCapability", std::to_string(p.cc_major) + "." + std::to_string(p.cc_minor));
  o.Set("multiprocessors", p.multiprocessors);
  o.Set("driverVersion", p.driver_version);
  o.Set("runtimeVersion", p.runtime_version);
  return o;
}

Napi::Object init_addon(Napi::Env env, Napi::Object exports) {
  set_module_dir(addon_dir());
  exports.Set("moduleDir", addon_dir());
  exports.Set("setErrorClass", Napi::Function::New(env, set_error_class));
  exports.Set("cpuInfo", Napi::Function::New(env, cpu_info));
  exports.Set("setIsa", Napi::Function::New(env, set_isa));
  exports.Set("getThreads", Napi::Function::New(env, get_threads));
  exports.Set("setThreads", Napi::Function::New(env, set_threads));
  exports.Set("backendStatus", Napi::Function::New(env, backend_status_js));
  exports.Set("cudaDevice", Napi::Function::New(env, cuda_device_js));
  init_tensor(env, exports);
  init_attention(env, exports);
  init_gemm(env, exports);
  init_bench(env, exports);
  init_nn(env, exports);
  init_io(env, exports);
  init_splat(env, exports);
  init_gauss2d(env, exports);
  init_speculative(env, exports);
  init_octree(env, exports);
  init_decoder(env, exports);
  return exports;
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) { return init_addon(env, exports); }

}  // namespace tessera::bindings

// NODE_API_MODULE needs a plain identifier.
static Napi::Object InitTessera(Napi::Env env, Napi::Object exports) {
  return tessera::bindings::init(env, exports);
}
NODE_API_MODULE(tessera, InitTessera)
