// Machine ceilings measured at run time, the denominators of `tessera bench`
// (a kernel's GFLOP/s or GB/s is reported as a fraction of these).
#pragma once
#include <cstddef>

namespace tessera {

// Peak multiply-add throughput on `threads` threads of the global pool (capped
// at its size): independent accumulator chains of FMAs (bf16 = false) or
// vdpbf16ps (bf16 = true) for about 0.2 s, in the widest ISA active_isa()
// allows. Without AVX512-BF16 the bf16 figure is the fp32 one, since the bf16
// GEMM path then runs the fp32 kernel.
double measure_fma_peak_gflops(int threads, bool bf16);

// Copy bandwidth in GB/s counting bytes read + bytes written (2·bytes per
// pass, write-allocate traffic not counted), between two pooled, pre-touched
// buffers of `bytes` each, split across `threads` threads; median of passes.
double measure_copy_bandwidth_gbs(int threads, size_t bytes);

// Streaming read bandwidth in GB/s: one pooled, pre-touched buffer of `bytes`
// summed in `threads` contiguous slices (64-byte loads where AVX-512 is
// active, as the kernels read), as a weight-streaming GEMV reads its weights;
// median of passes. A machine may copy more bytes per second (reads plus
// writes) than it streams in by reads alone, so this is the tighter floor for
// kernels that only read.
double measure_read_bandwidth_gbs(int threads, size_t bytes);

}  // namespace tessera
