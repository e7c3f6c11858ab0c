// Shared glue for the op-family binding files: turning JS tensor descriptors
// into TensorViews, turning tessera::Error into TesseraError, and the
// Promise-returning worker every long-running op uses.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "tessera/gemm.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

namespace tessera::bindings {

// Per-environment state: the JS error class (registered by lib/native.ts so
// native errors are real TesseraError instances) and wrapped-class constructors.
struct AddonData {
  Napi::FunctionReference error_class;
  Napi::FunctionReference device_buffer_class;
  Napi::FunctionReference packed_weight_class;
};
AddonData& addon_data(Napi::Env env);

// A JS error object {code, message}; an instance of TesseraError when registered.
Napi::Error make_error(Napi::Env env, Code code, const std::string& message);
// Throws make_error(...) as a C++ exception (NAPI_CPP_EXCEPTIONS is on).
[[noreturn]] void throw_error(Napi::Env env, Code code, const std::string& message);

// Runs fn, turning a tessera::Error into a thrown TesseraError.
template <class Fn>
auto guarded(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw_error(env, e.code(), e.what());
  }
}

DType parse_dtype(Napi::Env env, const Napi::Value& v, const char* what);
Device parse_device(Napi::Env env, const Napi::Value& v, const char* what);

// Objects a worker must keep alive while native code uses their memory.
class KeepAlive {
 public:
  void add(const Napi::Object& o) { refs_.push_back(Napi::Persistent(o)); }
 private:
  std::vector<Napi::ObjectReference> refs_;
};

// Parses a tensor descriptor {data, dtype, shape, strides?, offset?, device}.
// `data` is a TypedArray matching dtype (CPU) or a DeviceBuffer (CUDA);
// strides and offset are in elements. Checks that every element the view can
// reach lies inside the buffer. The owning JS object is added to `keep`.
TensorView parse_tensor(Napi::Env env, const Napi::Value& desc, const char* what, KeepAlive* keep);
// Same, but an absent (undefined/null) descriptor gives an empty view.
TensorView parse_optional_tensor(Napi::Env env, const Napi::Value& desc, const char* what,
                                 KeepAlive* keep);

// The PackedWeight behind a JS handle from packWeight() (gemm.cc), kept alive
// for the call by `keep`; throws if `v` is not one or was disposed.
const PackedWeight* unwrap_packed_weight(Napi::Env env, Napi::Value v, KeepAlive* keep);

int64_t get_int(Napi::Env env, const Napi::Object& o, const char* key, int64_t dflt);
// get_int, refused with ERR_INVALID_ARGUMENT outside the int32 range.
int32_t get_i32(Napi::Env env, const Napi::Object& o, const char* key, int32_t dflt);
double get_number(Napi::Env env, const Napi::Object& o, const char* key, double dflt);
// A non-negative integer below 2^64 from a Number (exact up to 2^53) or a BigInt; absent = 0.
uint64_t get_u64(Napi::Env env, const Napi::Object& o, const char* key);
bool get_bool(const Napi::Object& o, const char* key, bool dflt);

// Base of every Promise-returning op: arguments are parsed on the main thread
// by the subclass constructor, run() executes on a libuv worker thread, and
// a tessera::Error becomes a rejected TesseraError with the same code.
class OpWorker : public Napi::AsyncWorker {
 public:
  explicit OpWorker(Napi::Env env);
  Napi::Promise promise() { return deferred_.Promise(); }
  // Queues the worker and returns its promise.
  Napi::Value start();

 protected:
  virtual void run() = 0;
  // Value the promise resolves with (main thread); undefined by default.
  virtual Napi::Value result(Napi::Env env) { return env.Undefined(); }
  KeepAlive keep_;

 private:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;
  Napi::Promise::Deferred deferred_;
  Code code_ = Code::kInternal;
};

// Registration helpers, one per binding file.
void init_tensor(Napi::Env env, Napi::Object exports);
void init_attention(Napi::Env env, Napi::Object exports);
void init_gemm(Napi::Env env, Napi::Object exports);
void init_bench(Napi::Env env, Napi::Object exports);
void init_io(Napi::Env env, Napi::Object exports);
void init_nn(Napi::Env env, Napi::Object exports);
void init_splat(Napi::Env env, Napi::Object exports);
void init_gauss2d(Napi::Env env, Napi::Object exports);
void init_speculative(Napi::Env env, Napi::Object exports);
void init_octree(Napi::Env env, Napi::Object exports);
void init_decoder(Napi::Env env, Napi::Object exports);

}  // namespace tessera::bindings
