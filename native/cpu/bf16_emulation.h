// Software stand-ins for the AVX512-BF16 instructions, for TESTS ONLY.
//
// The *_avx512bf16.cpp kernels run only on CPUs with AVX512-BF16 (Zen 4/5,
// Sapphire Rapids and later). To test their logic (pair layouts, packing,
// tails, masks) on AVX-512 CPUs without the extension, the test build
// compiles them a second time with TESSERA_BF16_EMULATION defined
// (CMakeLists.txt: tessera_bf16_emulation_tests), which includes this header
// and routes the two instructions they use through the functions below. The
// addon and the shipped binaries never define it.
//
// Semantics follow Intel's pseudocode for the instructions:
// - VDPBF16PS: per fp32 lane i, dst = src + a[2i+1]·b[2i+1], then
//   dst += a[2i]·b[2i]; the products of two bf16 values are exact in fp32,
//   each addition rounds to nearest even, denormal inputs and outputs are
//   flushed to zero (the instruction ignores MXCSR and behaves as DAZ/FTZ).
// - VCVTNE2PS2BF16: words 0..15 of the result from b, 16..31 from a; round
//   to nearest even, denormal inputs become signed zero, NaN stays a quiet NaN.
#pragma once
#ifndef TESSERA_BF16_EMULATION
#error "bf16_emulation.h is for the test build with TESSERA_BF16_EMULATION only"
#endif
#include <immintrin.h>

namespace tessera::cpu::bf16_emulation {

// Denormals (exponent bits zero, mantissa non-zero) to signed zero.
inline __m512 flush(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __mmask16 denormal = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
  return _mm512_castsi512_ps(_mm512_mask_and_epi32(u, denormal, u, _mm512_set1_epi32(static_cast<int>(0x80000000u))));
}

inline __m512 dpbf16_ps(__m512 src, __m512bh a, __m512bh b) {
  const __m512i ai = reinterpret_cast<__m512i>(a), bi = reinterpret_cast<__m512i>(b);
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  const __m512 a_odd = _mm512_castsi512_ps(_mm512_and_si512(ai, hi)), b_odd = _mm512_castsi512_ps(_mm512_and_si512(bi, hi));
  const __m512 a_even = _mm512_castsi512_ps(_mm512_slli_epi32(ai, 16)), b_even = _mm512_castsi512_ps(_mm512_slli_epi32(bi, 16));
  __m512 t = _mm512_add_ps(flush(src), _mm512_mul_ps(flush(a_odd), flush(b_odd)));
  t = flush(t);
  t = _mm512_add_ps(t, _mm512_mul_ps(flush(a_even), flush(b_even)));
  return flush(t);
}

// 16 floats to 16 bf16 words (in the low halves of 32-bit lanes).
inline __m512i to_bf16_words(__m512 x) {
  const __m512i u = _mm512_castps_si512(flush(x));
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_mask_mov_epi32(rounded, nan, quiet);
}

inline __m512bh cvtne2ps_pbh(__m512 a, __m512 b) {
  const __m256i lo = _mm512_cvtepi32_epi16(to_bf16_words(b)), hi = _mm512_cvtepi32_epi16(to_bf16_words(a));
  const __m512i words = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  return reinterpret_cast<__m512bh>(words);
}

}  // namespace tessera::cpu::bf16_emulation

#define _mm512_dpbf16_ps(src, a, b) ::tessera::cpu::bf16_emulation::dpbf16_ps((src), (a), (b))
#define _mm512_cvtne2ps_pbh(a, b) ::tessera::cpu::bf16_emulation::cvtne2ps_pbh((a), (b))
