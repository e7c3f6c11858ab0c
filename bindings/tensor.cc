// Tensor storage across the boundary: descriptor parsing, pooled host
// ArrayBuffers, and CUDA device buffers (native handles with dispose()).
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "common.h"
#include "tessera/backend.h"
#include "tessera/pool.h"

namespace tessera::bindings {
namespace {

napi_typedarray_type typed_array_for(DType t) {
  switch (t) {
    case DType::kF32: return napi_float32_array;
    case DType::kF16: case DType::kBF16: return napi_uint16_array;
    case DType::kI32: return napi_int32_array;
    case DType::kI64: return napi_bigint64_array;
    case DType::kU8: case DType::kBool: return napi_uint8_array;
    case DType::kF64: return napi_float64_array;
  }
  return napi_float32_array;
}

const char* typed_array_name(DType t) {
  switch (t) {
    case DType::kF32: return "Float32Array";
    case DType::kF16: case DType::kBF16: return "Uint16Array";
    case DType::kI32: return "Int32Array";
    case DType::kI64: return "BigInt64Array";
    case DType::kU8: case DType::kBool: return "Uint8Array";
    case DType::kF64: return "Float64Array";
  }
  return "?";
}

// ---- CUDA device buffers --------------------------------------------------

class DeviceBuffer : public Napi::ObjectWrap<DeviceBuffer> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "DeviceBuffer",
                       {InstanceMethod<&DeviceBuffer::dispose>("dispose"),
                        InstanceAccessor<&DeviceBuffer::bytes_getter>("bytes"),
                        InstanceAccessor<&DeviceBuffer::device_getter>("deviceIndex"),
                        InstanceAccessor<&DeviceBuffer::disposed_getter>("disposed")});
  }

  // new DeviceBuffer(deviceIndex, bytes)
  explicit DeviceBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceBuffer>(info) {
    Napi::Env env = info.Env();
    device_ = info[0].As<Napi::Number>().Int32Value();
    bytes_ = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
    guarded(env, [&] {
      const CudaApi& api = cuda_api();
      ErrBuf err{};
      const int rc = api.alloc(device_, bytes_ ? bytes_ : 1, &ptr_, &err);
      if (rc != 0) throw_cuda_error(rc, err);
    });
    Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(bytes_));
  }

  ~DeviceBuffer() override { release(Env()); }

  void* ptr() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  int32_t device() const { return device_; }

 private:
  void release(Napi::Env env) {
    if (!ptr_) return;
    ErrBuf err{};
    cuda_api().release(device_, ptr_, &err);  // a failure here has nobody to report to
    ptr_ = nullptr;
    Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(bytes_));
  }
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    release(info.Env());
    return info.Env().Undefined();
  }
  Napi::Value bytes_getter(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(bytes_));
  }
  Napi::Value device_getter(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_); }
  Napi::Value disposed_getter(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), ptr_ == nullptr);
  }

  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  int32_t device_ = 0;
};

DeviceBuffer* as_device_buffer(Napi::Env env, const Napi::Value& v) {
  AddonData& d = addon_data(env);
  if (!v.IsObject() || d.device_buffer_class.IsEmpty()) return nullptr;
  Napi::Object o = v.As<Napi::Object>();
  if (!o.InstanceOf(d.device_buffer_class.Value())) return nullptr;
  return DeviceBuffer::Unwrap(o);
}

// copyDevice(kind, dst, src, bytes, dstByteOffset, srcByteOffset): kind 0 host→device,
// 1 device→host, 2 device→device. Host sides are TypedArrays.
class CopyWorker : public OpWorker {
 public:
  CopyWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    kind_ = info[0].As<Napi::Number>().Int32Value();
    bytes_ = static_cast<size_t>(info[3].As<Napi::Number>().Int64Value());
    const size_t dst_off = static_cast<size_t>(info[4].As<Napi::Number>().Int64Value());
    const size_t src_off = static_cast<size_t>(info[5].As<Napi::Number>().Int64Value());
    dst_ = endpoint(env, info[1], kind_ == 1, dst_off);
    src_ = endpoint(env, info[2], kind_ == 0, src_off);
  }

 private:
  void* endpoint(Napi::Env env, const Napi::Value& v, bool host, size_t off) {
    size_t cap = 0;
    char* base = nullptr;
    if (host) {
      if (!v.IsTypedArray()) throw_error(env, Code::kInvalidArgument, "copy: host side must be a TypedArray");
      Napi::TypedArray ta = v.As<Napi::TypedArray>();
      base = static_cast<char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      cap = ta.ByteLength();
    } else {
      DeviceBuffer* b = as_device_buffer(env, v);
      if (!b) throw_error(env, Code::kInvalidArgument, "copy: device side must be a DeviceBuffer");
      if (!b->ptr()) throw_error(env, Code::kInvalidArgument, "copy: the device buffer was disposed");
      base = static_cast<char*>(b->ptr());
      cap = b->bytes();
      device_ = b->device();
    }
    if (off > cap || bytes_ > cap - off)
      throw_error(env, Code::kShape, "copy: " + std::to_string(bytes_) + " bytes at offset " + std::to_string(off) +
                                         " exceed a buffer of " + std::to_string(cap) + " bytes");
    keep_.add(v.As<Napi::Object>());
    return base + off;
  }
  void run() override {
    const CudaApi& api = cuda_api();
    ErrBuf err{};
    const int rc = api.copy(device_, dst_, src_, bytes_, kind_, &err);
    if (rc != 0) throw_cuda_error(rc, err);
  }
  int32_t kind_ = 0, device_ = 0;
  size_t bytes_ = 0;
  void* dst_ = nullptr;
  void* src_ = nullptr;
};

// ---- pooled host memory ---------------------------------------------------

// Each pooled ArrayBuffer owns one pool block until either hostFree() (an
// explicit dispose) or its GC finalizer returns it. The pool reuses addresses,
// so a block is identified by (address, generation): a finalizer of an
// ArrayBuffer freed earlier by hostFree must not release the block's next owner.
struct HostBlock {
  void* ptr;
  uint64_t generation;
};
std::mutex g_blocks_mu;
std::unordered_map<void*, std::pair<uint64_t, size_t>> g_live_blocks;  // ptr -> (generation, capacity)
uint64_t g_next_generation = 1;

// Returns the capacity released, 0 if this owner no longer holds the block.
size_t release_block(void* ptr, uint64_t generation) {
  size_t cap = 0;
  {
    std::lock_guard<std::mutex> lk(g_blocks_mu);
    auto it = g_live_blocks.find(ptr);
    if (it == g_live_blocks.end() || (generation && it->second.first != generation)) return 0;
    cap = it->second.second;
    g_live_blocks.erase(it);
  }
  host_release(ptr);
  return cap;
}

// hostAlloc(bytes, zero) -> ArrayBuffer backed by a pool block.
Napi::Value host_alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double requested = info[0].As<Napi::Number>().DoubleValue();
  if (!(requested >= 0) || requested > 9.0e15)
    throw_error(env, Code::kInvalidArgument, "hostAlloc: byte length must be a non-negative integer");
  const size_t bytes = static_cast<size_t>(requested);
  const bool zero = info[1].ToBoolean().Value();
  size_t cap = 0;
  void* p = guarded(env, [&] { return host_acquire(bytes ? bytes : 1, &cap); });
  if (zero) std::memset(p, 0, bytes);
  auto* block = new HostBlock{p, 0};
  {
    std::lock_guard<std::mutex> lk(g_blocks_mu);
    block->generation = g_next_generation++;
    g_live_blocks[p] = {block->generation, cap};
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(cap));
  return Napi::ArrayBuffer::New(env, p, bytes, [](Napi::Env env, void*, HostBlock* b) {
    const size_t cap = release_block(b->ptr, b->generation);
    if (cap) Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(cap));
    delete b;
  }, block);
}

// hostFree(arrayBuffer): returns the block to the pool now and detaches the
// buffer so JS can no longer reach the memory. Returns false if it was not
// (or no longer) a pooled block.
Napi::Value host_free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) throw_error(env, Code::kInvalidArgument, "hostFree: expects an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) return Napi::Boolean::New(env, false);
  void* p = ab.Data();
  {
    std::lock_guard<std::mutex> lk(g_blocks_mu);
    if (!g_live_blocks.count(p)) return Napi::Boolean::New(env, false);
  }
  ab.Detach();  // may run the finalizer at once; release_block tolerates either order
  const size_t cap = release_block(p, 0);
  if (cap) Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(cap));
  return Napi::Boolean::New(env, cap != 0);
}

Napi::Value host_pool_stats_js(const Napi::CallbackInfo& info) {
  const PoolStats s = host_pool_stats();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("bytesInUse", static_cast<double>(s.bytes_in_use));
  o.Set("bytesCached", static_cast<double>(s.bytes_cached));
  o.Set("allocations", static_cast<double>(s.allocations));
  o.Set("freshAllocations", static_cast<double>(s.fresh_allocations));
  return o;
}

Napi::Value host_pool_trim_js(const Napi::CallbackInfo& info) {
  host_pool_trim();
  return info.Env().Undefined();
}

// Native address of a TypedArray's first element, for tests of zero-copy.
Napi::Value data_address(const Napi::CallbackInfo& info) {
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  auto p = reinterpret_cast<uintptr_t>(static_cast<char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(p));
}

// readFloat32(desc, index): reads element `index` (flat, in view order) of a
// float32 CPU tensor through the native view, so tests can observe what the
// native side sees.
Napi::Value read_f32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TensorView t = parse_tensor(env, info[0], "tensor", nullptr);
  if (t.dtype != DType::kF32 || t.device.kind != DeviceKind::kCPU)
    throw_error(env, Code::kDtype, "readFloat32: needs a float32 CPU tensor");
  int64_t flat = info[1].As<Napi::Number>().Int64Value(), off = 0;
  if (flat < 0 || flat >= t.numel()) throw_error(env, Code::kShape, "readFloat32: index out of range");
  for (int i = t.rank - 1; i >= 0; --i) {
    off += (flat % t.shape[i]) * t.strides[i];
    flat /= t.shape[i];
  }
  return Napi::Number::New(env, t.ptr<float>()[off]);
}

}  // namespace

TensorView parse_tensor(Napi::Env env, const Napi::Value& desc_value, const char* what, KeepAlive* keep) {
  if (!desc_value.IsObject())
    throw_error(env, Code::kInvalidArgument, std::string(what) + ": expected a tensor");
  Napi::Object desc = desc_value.As<Napi::Object>();
  TensorView t;
  t.dtype = parse_dtype(env, desc.Get("dtype"), what);
  t.device = parse_device(env, desc.Get("device"), what);

  Napi::Value shape_v = desc.Get("shape");
  if (!shape_v.IsArray()) throw_error(env, Code::kShape, std::string(what) + ": shape must be an array");
  Napi::Array shape = shape_v.As<Napi::Array>();
  if (shape.Length() > static_cast<uint32_t>(kMaxRank))
    throw_error(env, Code::kShape, std::string(what) + ": rank above " + std::to_string(kMaxRank));
  t.rank = static_cast<int32_t>(shape.Length());
  for (int i = 0; i < t.rank; ++i) {
    Napi::Value d = shape.Get(static_cast<uint32_t>(i));
    const double v = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (!(v >= 0) || v != static_cast<double>(static_cast<int64_t>(v)))
      throw_error(env, Code::kShape, std::string(what) + ": shape entries must be non-negative integers");
    t.shape[i] = static_cast<int64_t>(v);
  }
  Napi::Value strides_v = desc.Get("strides");
  if (strides_v.IsUndefined() || strides_v.IsNull()) {
    int64_t s = 1;
    for (int i = t.rank - 1; i >= 0; --i) { t.strides[i] = s; s *= t.shape[i]; }
  } else {
    if (!strides_v.IsArray() || strides_v.As<Napi::Array>().Length() != static_cast<uint32_t>(t.rank))
      throw_error(env, Code::kShape, std::string(what) + ": strides must be an array as long as shape");
    Napi::Array strides = strides_v.As<Napi::Array>();
    for (int i = 0; i < t.rank; ++i) {
      Napi::Value d = strides.Get(static_cast<uint32_t>(i));
      const double v = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
      if (!(v >= 0) || v != static_cast<double>(static_cast<int64_t>(v)))
        throw_error(env, Code::kShape, std::string(what) + ": strides must be non-negative integers (elements)");
      t.strides[i] = static_cast<int64_t>(v);
    }
  }
  const int64_t offset = get_int(env, desc, "offset", 0);
  if (offset < 0) throw_error(env, Code::kShape, std::string(what) + ": offset must be non-negative");

  // Highest element index the view reaches, relative to its first element.
  int64_t reach = 0;
  const bool empty_view = t.numel() == 0;
  for (int i = 0; i < t.rank; ++i) reach += (t.shape[i] > 0 ? t.shape[i] - 1 : 0) * t.strides[i];
  const size_t esize = dtype_size(t.dtype);

  Napi::Value data = desc.Get("data");
  char* base = nullptr;
  size_t capacity_elems = 0;
  if (t.device.kind == DeviceKind::kCPU) {
    if (!data.IsTypedArray())
      throw_error(env, Code::kInvalidArgument, std::string(what) + ": data of a cpu tensor must be a TypedArray");
    Napi::TypedArray ta = data.As<Napi::TypedArray>();
    if (ta.TypedArrayType() != typed_array_for(t.dtype))
      throw_error(env, Code::kDtype, std::string(what) + ": dtype " + dtype_name(t.dtype) + " needs a " +
                                         typed_array_name(t.dtype) + " as data");
    if (ta.ArrayBuffer().IsDetached())
      throw_error(env, Code::kInvalidArgument, std::string(what) + ": its memory was released (disposed tensor)");
    base = static_cast<char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    capacity_elems = ta.ElementLength();
  } else {
    DeviceBuffer* b = as_device_buffer(env, data);
    if (!b) throw_error(env, Code::kDevice, std::string(what) + ": data of a cuda tensor must be a DeviceBuffer");
    if (!b->ptr()) throw_error(env, Code::kInvalidArgument, std::string(what) + ": its device buffer was disposed");
    if (b->device() != t.device.index)
      throw_error(env, Code::kDevice, std::string(what) + ": buffer is on cuda:" + std::to_string(b->device()));
    base = static_cast<char*>(b->ptr());
    capacity_elems = b->bytes() / esize;
  }
  if (!empty_view && static_cast<uint64_t>(offset + reach) >= capacity_elems)
    throw_error(env, Code::kShape, std::string(what) + ": shape " + shape_str(t) + " with these strides needs " +
                                       std::to_string(offset + reach + 1) + " elements, its data holds " +
                                       std::to_string(capacity_elems));
  t.data = base + offset * esize;
  if (keep) keep->add(data.As<Napi::Object>());
  return t;
}

TensorView parse_optional_tensor(Napi::Env env, const Napi::Value& desc, const char* what, KeepAlive* keep) {
  if (desc.IsUndefined() || desc.IsNull()) return TensorView{};
  return parse_tensor(env, desc, what, keep);
}

void init_tensor(Napi::Env env, Napi::Object exports) {
  Napi::Function device_buffer = DeviceBuffer::define(env);
  addon_data(env).device_buffer_class = Napi::Persistent(device_buffer);
  exports.Set("DeviceBuffer", device_buffer);
  exports.Set("copyDevice", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new CopyWorker(info))->start();
  }));
  exports.Set("hostAlloc", Napi::Function::New(env, host_alloc));
  exports.Set("hostFree", Napi::Function::New(env, host_free));
  exports.Set("hostPoolStats", Napi::Function::New(env, host_pool_stats_js));
  exports.Set("hostPoolTrim", Napi::Function::New(env, host_pool_trim_js));
  exports.Set("dataAddress", Napi::Function::New(env, data_address));
  exports.Set("readFloat32", Napi::Function::New(env, read_f32));
}

}  // namespace tessera::bindings
