// linear()'s small-M weight-streaming path (gemm_kernels.h SmallMArgs), split
// so that a caller can run any range of B panels on its own thread: the
// decode team in core/decoder.cpp hands each thread its own panels and knows
// which weights it reads next. A panel range run here gives exactly the
// values linear() gives for those columns (same kernel, same k order).
#pragma once
#include <cstdint>

#include "cpu/gemm/gemm_kernels.h"

namespace tessera::cpu {

struct StreamLinear {
  gemm::SmallMArgs s{};
  gemm::SmallMFn run = nullptr;
  int64_t panels = 0;       // ceil(N / 32)
  int64_t panel_bytes = 0;  // bytes of one packed B panel
};

// Whether linear() runs M rows against w on the small-M path (CPU-packed w).
bool stream_linear_supported(const PackedWeight* w, int64_t M);

// Bytes of scratch a plan of `a` needs for x (0 when x is used in place).
int64_t stream_linear_scratch(const LinearArgs& a);

// When linear(a) (already validated) would run the small-M path over a.packed,
// fills p and returns true; x is converted into xbuf (stream_linear_scratch(a)
// bytes) where that path converts it. Otherwise returns false.
bool stream_linear_plan(const LinearArgs& a, StreamLinear& p, float* xbuf);

// Columns [32·j0, 32·j1) of the output, epilogue included.
inline void stream_linear_run(const StreamLinear& p, int64_t j0, int64_t j1) { p.run(p.s, j0, j1); }

}  // namespace tessera::cpu
