// Entry-point guard: every CudaApi function runs its body through guarded(),
// which turns exceptions into a Code and a message in the caller's ErrBuf.
#pragma once
#include <cstdio>
#include <exception>
#include <new>

#include "cuda/common.cuh"

namespace tessera::cuda {

inline void set_err(ErrBuf* err, const char* msg) {
  if (err) std::snprintf(err->msg, sizeof(err->msg), "%s", msg);
}

template <class F> int guarded(ErrBuf* err, F&& body) {
  try {
    body();
    if (err) err->msg[0] = 0;
    return static_cast<int>(Code::kOk);
  } catch (const Error& e) {
    set_err(err, e.what());
    return static_cast<int>(e.code());
  } catch (const std::bad_alloc&) {
    set_err(err, "host out of memory in the CUDA backend");
    return static_cast<int>(Code::kOutOfMemory);
  } catch (const std::exception& e) {
    set_err(err, e.what());
    return static_cast<int>(Code::kInternal);
  } catch (...) {
    set_err(err, "unknown exception in the CUDA backend");
    return static_cast<int>(Code::kInternal);
  }
}

// Op bodies, implemented in their own files; each validates and launches.
void run_attention(const AttentionArgs& a);
void run_rope(const RopeArgs& a);
void run_kv_append(const KvAppendArgs& a);
void run_linear(const LinearArgs& a);
void run_matmul(const MatmulArgs& a);
PackedWeight* run_pack_weight(const TensorView& w, DType compute);
void run_free_packed_weight(PackedWeight* w);

}  // namespace tessera::cuda
