#include "common.h"

#include <cmath>
#include <cstring>
#include <exception>

namespace tessera::bindings {

AddonData& addon_data(Napi::Env env) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (!d) {
    d = new AddonData();
    env.SetInstanceData(d);  // deleted by node-addon-api at environment teardown
  }
  return *d;
}

Napi::Error make_error(Napi::Env env, Code code, const std::string& message) {
  AddonData& d = addon_data(env);
  Napi::Object err;
  if (!d.error_class.IsEmpty()) {
    err = d.error_class.New({Napi::String::New(env, code_name(code)), Napi::String::New(env, message)});
  } else {
    err = Napi::Error::New(env, message).Value();
    err.Set("code", Napi::String::New(env, code_name(code)));
  }
  return Napi::Error(env, err);
}

void throw_error(Napi::Env env, Code code, const std::string& message) {
  throw make_error(env, code, message);
}

DType parse_dtype(Napi::Env env, const Napi::Value& v, const char* what) {
  if (v.IsString()) {
    const std::string s = v.As<Napi::String>();
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kI32, DType::kI64, DType::kU8,
                    DType::kBool}) {
      if (s == dtype_name(t)) return t;
    }
  }
  throw_error(env, Code::kDtype,
              std::string(what) + ": dtype must be one of float32, float16, bfloat16, int32, int64, uint8, bool");
}

Device parse_device(Napi::Env env, const Napi::Value& v, const char* what) {
  if (v.IsUndefined()) return Device{};
  if (v.IsString()) {
    const std::string s = v.As<Napi::String>();
    if (s == "cpu") return Device{};
    if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9) {
      char* end = nullptr;
      const long idx = std::strtol(s.c_str() + 5, &end, 10);
      if (*end == '\0' && idx >= 0) return Device{DeviceKind::kCUDA, static_cast<int32_t>(idx)};
    }
  }
  throw_error(env, Code::kDevice, std::string(what) + ": device must be 'cpu' or 'cuda:N'");
}

int64_t get_int(Napi::Env env, const Napi::Object& o, const char* key, int64_t dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (v.IsBigInt()) {
    bool lossless = false;
    return v.As<Napi::BigInt>().Int64Value(&lossless);
  }
  if (!v.IsNumber()) throw_error(env, Code::kInvalidArgument, std::string(key) + " must be an integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d)
    throw_error(env, Code::kInvalidArgument, std::string(key) + " must be an integer");
  return static_cast<int64_t>(d);
}

int32_t get_i32(Napi::Env env, const Napi::Object& o, const char* key, int32_t dflt) {
  const int64_t v = get_int(env, o, key, dflt);
  if (v < INT32_MIN || v > INT32_MAX) throw_error(env, Code::kInvalidArgument, std::string(key) + " is out of range");
  return static_cast<int32_t>(v);
}

double get_number(Napi::Env env, const Napi::Object& o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) throw_error(env, Code::kInvalidArgument, std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool get_bool(const Napi::Object& o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  return v.ToBoolean().Value();
}

OpWorker::OpWorker(Napi::Env env) : Napi::AsyncWorker(env, "tessera"), deferred_(Napi::Promise::Deferred::New(env)) {}

Napi::Value OpWorker::start() {
  Napi::Promise p = deferred_.Promise();
  Queue();
  return p;
}

void OpWorker::Execute() {
  try {
    run();
  } catch (const Error& e) {
    code_ = e.code();
    SetError(e.what());
  } catch (const std::bad_alloc&) {
    code_ = Code::kOutOfMemory;
    SetError("out of memory");
  } catch (const std::exception& e) {
    code_ = Code::kInternal;
    SetError(std::string("internal error: ") + e.what());
  }
}

void OpWorker::OnOK() {
  Napi::HandleScope scope(Env());
  try {
    deferred_.Resolve(result(Env()));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  }
}

void OpWorker::OnError(const Napi::Error& e) {
  Napi::HandleScope scope(Env());
  deferred_.Reject(make_error(Env(), code_, e.Message()).Value());
}

// A non-negative integer below 2^64 from a Number (exact up to 2^53) or a BigInt.
uint64_t get_u64(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return 0;
  if (v.IsBigInt()) {
    bool lossless = false;
    const uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw_error(env, Code::kInvalidArgument, std::string(key) + " must be a BigInt in [0, 2^64)");
    return u;
  }
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d)
    throw_error(env, Code::kInvalidArgument,
                std::string(key) + " must be an integer in [0, 2^53) or a BigInt");
  return static_cast<uint64_t>(d);
}

}  // namespace tessera::bindings
