// GEMM family: linear layers (with epilogues), general matmul, packed weights.
#include "common.h"
#include "tessera/gemm.h"

namespace tessera::bindings {
namespace {

// A pack_weight() result owned by JS: dispose() frees it now, GC otherwise.
class PackedWeightHandle : public Napi::ObjectWrap<PackedWeightHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "PackedWeight",
                       {InstanceMethod<&PackedWeightHandle::dispose>("dispose"),
                        InstanceAccessor<&PackedWeightHandle::bytes_getter>("bytes"),
                        InstanceAccessor<&PackedWeightHandle::disposed_getter>("disposed")});
  }
  // Constructed only from native code with an External<PackedWeight>.
  explicit PackedWeightHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PackedWeightHandle>(info) {
    if (!info[0].IsExternal())
      throw_error(info.Env(), Code::kInvalidArgument, "PackedWeight is created by packWeight()");
    packed_ = info[0].As<Napi::External<PackedWeight>>().Data();
    bytes_ = packed_weight_bytes(packed_);
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), static_cast<int64_t>(bytes_));
  }
  ~PackedWeightHandle() override { release(Env()); }
  const PackedWeight* get() const { return packed_; }

 private:
  void release(Napi::Env env) {
    if (!packed_) return;
    free_packed_weight(packed_);
    packed_ = nullptr;
    Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(bytes_));
  }
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    release(info.Env());
    return info.Env().Undefined();
  }
  Napi::Value bytes_getter(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(bytes_));
  }
  Napi::Value disposed_getter(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), packed_ == nullptr);
  }
  PackedWeight* packed_ = nullptr;
  size_t bytes_ = 0;
};

Activation parse_activation(Napi::Env env, const Napi::Object& o) {
  const int64_t v = get_int(env, o, "activation", 0);
  if (v < 0 || v > 2) throw_error(env, Code::kInvalidArgument, "activation must be 0 (none), 1 (gelu_tanh) or 2 (silu)");
  return static_cast<Activation>(v);
}

// linear({x, weight? | packed?, bias?, residual?, out, activation}) -> Promise<void>
class LinearWorker : public OpWorker {
 public:
  explicit LinearWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.x = parse_tensor(env, o.Get("x"), "x", &keep_);
    Napi::Value packed = o.Get("packed");
    if (!packed.IsUndefined() && !packed.IsNull()) {
      AddonData& d = addon_data(env);
      if (!packed.IsObject() || !packed.As<Napi::Object>().InstanceOf(d.packed_weight_class.Value()))
        throw_error(env, Code::kInvalidArgument, "packed must be a PackedWeight from packWeight()");
      PackedWeightHandle* h = PackedWeightHandle::Unwrap(packed.As<Napi::Object>());
      if (!h->get()) throw_error(env, Code::kInvalidArgument, "packed weight was disposed");
      a_.packed = h->get();
      keep_.add(packed.As<Napi::Object>());
    } else {
      a_.weight = parse_tensor(env, o.Get("weight"), "weight", &keep_);
    }
    a_.bias = parse_optional_tensor(env, o.Get("bias"), "bias", &keep_);
    a_.residual = parse_optional_tensor(env, o.Get("residual"), "residual", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    a_.act = parse_activation(env, o);
  }

 private:
  void run() override { linear(a_); }
  LinearArgs a_;
};

// matmul({a, b, c, transA?, transB?, alpha?, beta?}) -> Promise<void>
class MatmulWorker : public OpWorker {
 public:
  explicit MatmulWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.a = parse_tensor(env, o.Get("a"), "a", &keep_);
    a_.b = parse_tensor(env, o.Get("b"), "b", &keep_);
    a_.c = parse_tensor(env, o.Get("c"), "c", &keep_);
    a_.trans_a = get_bool(o, "transA", false);
    a_.trans_b = get_bool(o, "transB", false);
    a_.alpha = static_cast<float>(get_number(env, o, "alpha", 1.0));
    a_.beta = static_cast<float>(get_number(env, o, "beta", 0.0));
  }

 private:
  void run() override { matmul(a_); }
  MatmulArgs a_;
};

// packWeight(weight, compute: 'float32' | 'bfloat16') -> Promise<PackedWeight>
class PackWorker : public OpWorker {
 public:
  explicit PackWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    weight_ = parse_tensor(env, info[0], "weight", &keep_);
    compute_ = parse_dtype(env, info[1], "compute");
    if (compute_ != DType::kF32 && compute_ != DType::kBF16)
      throw_error(env, Code::kDtype, "packWeight: compute must be float32 or bfloat16");
  }
  ~PackWorker() override {
    if (packed_) free_packed_weight(packed_);  // the promise was never resolved with it
  }

 private:
  void run() override { packed_ = pack_weight(weight_, compute_); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object h = addon_data(env).packed_weight_class.New({Napi::External<PackedWeight>::New(env, packed_)});
    packed_ = nullptr;  // owned by the handle now
    return h;
  }
  TensorView weight_;
  DType compute_ = DType::kF32;
  PackedWeight* packed_ = nullptr;
};

}  // namespace

void init_gemm(Napi::Env env, Napi::Object exports) {
  Napi::Function packed = PackedWeightHandle::define(env);
  addon_data(env).packed_weight_class = Napi::Persistent(packed);
  exports.Set("PackedWeight", packed);
  exports.Set("linear", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new LinearWorker(info))->start();
  }));
  exports.Set("matmul", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new MatmulWorker(info))->start();
  }));
  exports.Set("packWeight", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new PackWorker(info))->start();
  }));
}

}  // namespace tessera::bindings
