// Per-ISA peak loops: each runs `iters` rounds of independent multiply-adds
// and returns a value derived from every accumulator (so none is dead code).
#pragma once
#include <cstdint>

namespace tessera::cpu::bench {

// Flops one round of each loop performs (multiply + add counted as 2).
constexpr double kFlopsAvx512 = 24 * 16 * 2;      // 24 zmm FMA chains
constexpr double kFlopsAvx512Bf16 = 24 * 16 * 4;  // 24 vdpbf16ps: 2 products per lane
constexpr double kFlopsAvx2 = 12 * 8 * 2;         // 12 ymm FMA chains
constexpr double kFlopsScalar = 8 * 2;            // 8 scalar multiply-add chains

float peak_avx512(int64_t iters);
float peak_avx512bf16(int64_t iters);
float peak_avx2(int64_t iters);

// Streaming read of n floats (n a multiple of 64), returning their sum.
float read_sum_avx512(const float* p, int64_t n);

}  // namespace tessera::cpu::bench
