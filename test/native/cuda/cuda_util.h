// Helpers for the CUDA suites: the backend table (loaded the normal way,
// through backend.cpp's dlopen), device buffers, and host data in any float
// dtype kept beside its rounded float64 twin for the references.
#pragma once
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"
#include "tessera/backend.h"
#include "tessera/dtype_convert.h"
#include "tessera/tensor.h"

namespace ct {

inline const tessera::CudaApi& api() { return tessera::cuda_api(); }
inline constexpr tessera::Device kDev{tessera::DeviceKind::kCUDA, 0};

// Runs a table entry; on failure throws the tessera::Error it describes.
template <class Fn, class... A> void call(Fn fn, A... args) {
  tessera::ErrBuf err{};
  const int rc = fn(args..., &err);
  if (rc != 0) tessera::throw_cuda_error(rc, err);
}
// Returns the code (0 = ok) instead of throwing.
template <class Fn, class... A> int code_of(Fn fn, A... args) {
  tessera::ErrBuf err{};
  return fn(args..., &err);
}

struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  DevBuf() = default;
  explicit DevBuf(size_t n) : bytes(n) { call(api().alloc, int32_t(0), n, &p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr; }
  DevBuf& operator=(DevBuf&& o) noexcept { std::swap(p, o.p); std::swap(bytes, o.bytes); return *this; }
  ~DevBuf() {
    if (p) { tessera::ErrBuf e{}; api().release(0, p, &e); }
  }
  void upload(const void* host, size_t n) { call(api().copy, int32_t(0), p, host, n, int32_t(0)); }
  void download(void* host, size_t n) const { call(api().copy, int32_t(0), host, static_cast<const void*>(p), n, int32_t(1)); }
  // Fills with 0xFF bytes: NaN in every float format, so unwritten output fails.
  void poison() {
    std::vector<unsigned char> ff(bytes, 0xFF);
    upload(ff.data(), bytes);
  }
};

inline void sync() { call(api().synchronize, int32_t(0)); }

// Host data in dtype `dt` plus the exact values it holds, as doubles.
struct HostData {
  tessera::DType dt = tessera::DType::kF32;
  std::vector<unsigned char> raw;
  std::vector<double> val;
  size_t size() const { return val.size(); }
};

inline void set_elem(HostData& h, size_t i, double v) {
  using namespace tessera;
  const float f = static_cast<float>(v);
  switch (h.dt) {
    case DType::kF32: std::memcpy(&h.raw[i * 4], &f, 4); h.val[i] = f; break;
    case DType::kBF16: { const uint16_t u = f32_to_bf16(f); std::memcpy(&h.raw[i * 2], &u, 2); h.val[i] = bf16_to_f32(u); break; }
    case DType::kF16: { const uint16_t u = f32_to_f16(f); std::memcpy(&h.raw[i * 2], &u, 2); h.val[i] = f16_to_f32(u); break; }
    default: break;
  }
}

inline HostData make_host(tessera::DType dt, size_t n) {
  HostData h;
  h.dt = dt;
  h.raw.assign(n * tessera::dtype_size(dt), 0);
  h.val.assign(n, 0.0);
  return h;
}

inline HostData random_host(tessera::DType dt, size_t n, th::Rng& rng, float lo = -1.f, float hi = 1.f) {
  HostData h = make_host(dt, n);
  for (size_t i = 0; i < n; ++i) set_elem(h, i, rng.uniform(lo, hi));
  return h;
}

// Device bytes → doubles.
inline std::vector<double> to_doubles(tessera::DType dt, const std::vector<unsigned char>& raw) {
  using namespace tessera;
  const size_t n = raw.size() / dtype_size(dt);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (dt == DType::kF32) { float f; std::memcpy(&f, &raw[i * 4], 4); out[i] = f; }
    else { uint16_t u; std::memcpy(&u, &raw[i * 2], 2); out[i] = dt == DType::kBF16 ? bf16_to_f32(u) : f16_to_f32(u); }
  }
  return out;
}

inline DevBuf to_device(const HostData& h) {
  DevBuf d(h.raw.size());
  d.upload(h.raw.data(), h.raw.size());
  return d;
}
template <class T> DevBuf to_device(const std::vector<T>& v) {
  DevBuf d(v.size() * sizeof(T));
  d.upload(v.data(), v.size() * sizeof(T));
  return d;
}
inline std::vector<double> fetch(const DevBuf& d, tessera::DType dt) {
  std::vector<unsigned char> raw(d.bytes);
  d.download(raw.data(), raw.size());
  return to_doubles(dt, raw);
}

inline tessera::TensorView view(const DevBuf& d, tessera::DType dt, std::initializer_list<int64_t> shape) {
  return tessera::make_view(d.p, dt, shape, kDev);
}

inline const char* dt_name(tessera::DType d) { return tessera::dtype_name(d); }

// Relative-error tolerance by the narrowest dtype involved: f32 arithmetic
// lands far under 1e-5; bf16/f16 operands or outputs near 1e-3 (rounding of
// inputs to the tensor cores and of P), so 1e-2 leaves margin but still
// catches any indexing or masking error (those give errors near 1).
inline double tol_for(std::initializer_list<tessera::DType> dts) {
  for (auto d : dts)
    if (d != tessera::DType::kF32) return 1e-2;
  return 1e-5;
}

int run_bench();

}  // namespace ct
