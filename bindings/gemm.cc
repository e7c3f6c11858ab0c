// GEMM family: linear layers (with epilogues), general matmul, packed weights.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.h"
#include "tessera/gemm.h"

#ifdef __linux__
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace tessera::bindings {
namespace {

// After a weight is packed from a mapped checkpoint, its source pages are
// resident twice: the packed copy and the file pages the packing read. This
// drops this process's mapping of the whole pages inside [p, p + bytes) that
// /proc/self/pagemap reports present AND file-backed (or shared memory, bit
// 61): their contents come back unchanged from the file (or the shared
// object) on the next access, so nothing can be lost. Anonymous or
// copied-on-write pages (a heap array, a mapped page someone wrote) have bit
// 61 clear and are left alone. Best effort: does nothing off Linux or if
// pagemap cannot be read.
void release_file_pages(const void* p, size_t bytes) {
#ifdef __linux__
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return;
  const uintptr_t ps = static_cast<uintptr_t>(page);
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + ps - 1) & ~(ps - 1);
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(ps - 1);
  if (hi <= lo) return;
  const int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::vector<uint64_t> ent(4096);
  uintptr_t run = 0;  // first page of the current run of droppable pages (0: none)
  auto flush = [&](uintptr_t end) {
    if (run) madvise(reinterpret_cast<void*>(run), end - run, MADV_DONTNEED);
    run = 0;
  };
  uintptr_t a = lo;
  while (a < hi) {
    const size_t n = std::min<size_t>(ent.size(), (hi - a) / ps);
    const ssize_t want = static_cast<ssize_t>(n * sizeof(uint64_t));
    if (pread(fd, ent.data(), want, static_cast<off_t>((a / ps) * sizeof(uint64_t))) != want) break;
    for (size_t i = 0; i < n; ++i, a += ps) {
      const bool present = (ent[i] >> 63) & 1, file = (ent[i] >> 61) & 1;
      if (present && file) {
        if (!run) run = a;
      } else {
        flush(a);
      }
    }
  }
  flush(a);
  close(fd);
#else
  (void)p;
  (void)bytes;
#endif
}

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

// linear({x, weight? | packed?, bias?, residual?, gate?, out, activation}) -> Promise<void>
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
    a_.gate = parse_optional_tensor(env, o.Get("gate"), "gate", &keep_);
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

// packWeight(weight, compute: 'float32' | 'bfloat16', releaseSource?: boolean) -> Promise<PackedWeight>
// releaseSource: after packing, drop the source's file-backed pages from this
// process (release_file_pages): for weights that are views of a mapped file
// and are used only through the packed copy from then on (re-reading them is
// correct, just slower).
class PackWorker : public OpWorker {
 public:
  explicit PackWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    weight_ = parse_tensor(env, info[0], "weight", &keep_);
    compute_ = parse_dtype(env, info[1], "compute");
    if (compute_ != DType::kF32 && compute_ != DType::kBF16)
      throw_error(env, Code::kDtype, "packWeight: compute must be float32 or bfloat16");
    release_ = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  }
  ~PackWorker() override {
    if (packed_) free_packed_weight(packed_);  // the promise was never resolved with it
  }

 private:
  void run() override {
    packed_ = pack_weight(weight_, compute_);
    if (release_ && weight_.device.kind == DeviceKind::kCPU && weight_.is_contiguous())
      release_file_pages(weight_.data, static_cast<size_t>(weight_.numel()) * dtype_size(weight_.dtype));
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object h = addon_data(env).packed_weight_class.New({Napi::External<PackedWeight>::New(env, packed_)});
    packed_ = nullptr;  // owned by the handle now
    return h;
  }
  TensorView weight_;
  DType compute_ = DType::kF32;
  bool release_ = false;
  PackedWeight* packed_ = nullptr;
};

}  // namespace

// The PackedWeight behind a JS handle from packWeight() (kept alive for the
// call by `keep`); throws if `v` is not one or was disposed. nn.cc uses it for
// conv2d's optional `packed`.
const PackedWeight* unwrap_packed_weight(Napi::Env env, Napi::Value v, KeepAlive* keep) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(env).packed_weight_class.Value()))
    throw_error(env, Code::kInvalidArgument, "packed must be a PackedWeight from packWeight()");
  PackedWeightHandle* h = PackedWeightHandle::Unwrap(v.As<Napi::Object>());
  if (!h->get()) throw_error(env, Code::kInvalidArgument, "packed weight was disposed");
  keep->add(v.As<Napi::Object>());
  return h->get();
}

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
